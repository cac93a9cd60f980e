/*
 * ConcurrentDict on the core's hash table (csrc/ftu_map.c).
 *
 * The table holds one owned reference per key and per value, as words. It never compares
 * keys: a lookup hands back the entries with the key's hash, and this file decides which
 * stored key is equal to the one asked for, the way dict does (the same object, or
 * ==). Writes then name the entry by its stored key object, so a comparison made outside
 * the table stays valid: if that entry was replaced or removed meanwhile, the write
 * changes nothing and says "look again" (FTU_RETRY), and an insert says so if any key of
 * the same stripe came or went since the lookup. So no lock of ours is ever held while
 * Python code runs (a key's __eq__, a finalizer): re-entrant use of the same dict from
 * __eq__ or __del__ cannot deadlock, and every compound operation (setdefault, pop,
 * compare_and_set, compare_and_delete) is one step of the table, atomic with respect to
 * every other write.
 *
 * Safe loads: a reader pins itself (ftu_map_enter) from the lookup until it has taken its
 * references; the table hands a replaced or removed word back for release (Py_DECREF)
 * only when no pinned reader can still be holding it. Released words come back in a
 * ftu_map_release after each write, and are let go after the call, when no lock is held.
 * Nothing runs Python code while pinned, except the comparisons of exact str, int and
 * float keys, which are plain C (no allocation, no callback).
 */
#include "native.h"
#include "ftu_map_impl.h"

#include <string.h>

#define DEFAULT_SCALING 17
#define MAX_SCALING 65536
#define MAX_SIZE_HINT 65536 /* entries a table is first sized for, at most */
#define CANDIDATES 8 /* entries of one hash looked at without allocating */
#define SCAN_BATCH 32

static inline ConcurrentDictObject *as_cd(PyObject *op) { return (ConcurrentDictObject *)op; }
static inline PyObject *obj(uint64_t word) { return (PyObject *)(uintptr_t)word; }
static inline uint64_t word(PyObject *o) { return (uint64_t)(uintptr_t)o; }

static void set_key_error(PyObject *key) {
    PyObject *args = PyTuple_Pack(1, key); /* so a tuple key is not taken as the args */
    if (args != NULL) {
        PyErr_SetObject(PyExc_KeyError, args);
        Py_DECREF(args);
    }
}

/* Lets go of the references a write handed back. No lock is held: finalizers may do
 * anything, including writing to this dict. */
static void release(ftu_map_release *out) {
    for (int64_t i = 0; i < out->count; i++) Py_DECREF(obj(out->words[i]));
    out->count = 0;
}

/* Lets go of whatever earlier writes left waiting for readers and no reader can still
 * take (clear() and the end of a dict's life: a value removed while another thread was
 * reading goes then at the latest). */
static void reclaim(ConcurrentDictObject *self) {
    ftu_map_release out;
    do {
        ftu_map_reclaim(self->map, &out);
        int64_t count = out.count;
        release(&out);
        if (count < FTU_MAP_RELEASE_MAX) break;
    } while (1);
}

static int pin(void) {
    if (ftu_map_enter() != FTU_OK) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* ---- finding a key ---------------------------------------------------------------------- */

/* Equality of two keys that can be decided in plain C, without running Python code or
 * allocating: 1 or 0; -1 when it cannot (the caller then uses ==). */
static inline int plain_equal(PyObject *a, PyObject *b) {
    PyTypeObject *ta = Py_TYPE(a), *tb = Py_TYPE(b);
    if (ta != tb) return -1;
    if (ta == &PyUnicode_Type) {
        Py_ssize_t n = PyUnicode_GET_LENGTH(a);
        return n == PyUnicode_GET_LENGTH(b) && PyUnicode_KIND(a) == PyUnicode_KIND(b) &&
               memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b), (size_t)n * PyUnicode_KIND(a)) == 0;
    }
    if (ta == &PyLong_Type || ta == &PyFloat_Type) return PyObject_RichCompareBool(a, b, Py_EQ);
    return -1;
}

typedef struct {
    uint64_t version;  /* for an insert if absent */
    PyObject *key;     /* the stored key (a new reference) if found */
    PyObject *value;   /* its value (a new reference) if found and asked for */
} found_entry;

/* Looks key (of hash) up: 1 found (with want_key, e->key is a new reference to the stored
 * key, and with want_value e->value one to its value; NULL otherwise), 0 absent, -1 with an
 * exception (a key's __eq__ raised, or no memory). A read takes no reference to the key:
 * one less write to a line other threads read. */
static int find_entry(ConcurrentDictObject *self, PyObject *key, Py_hash_t hash, int want_key, int want_value,
                      found_entry *e, uint64_t *version) {
    uint64_t keys_buf[CANDIDATES], values_buf[CANDIDATES];
    uint64_t *keys = keys_buf, *values = values_buf;
    int64_t cap = CANDIDATES;
    for (;;) {
        if (pin() < 0) return -1;
        int64_t n = ftu_map_lookup(self->map, (uint64_t)hash, keys, values, cap, version);
        if (n < 0) {
            ftu_map_leave();
            PyErr_NoMemory();
            goto failed;
        }
        if (n > cap) { /* many keys share this hash: make room and look again */
            ftu_map_leave();
            if (keys != keys_buf) PyMem_Free(keys);
            if (values != values_buf) PyMem_Free(values);
            cap = n * 2;
            keys = PyMem_Malloc((size_t)cap * sizeof(uint64_t));
            values = PyMem_Malloc((size_t)cap * sizeof(uint64_t));
            if (keys == NULL || values == NULL) {
                PyErr_NoMemory();
                goto failed;
            }
            continue;
        }
        /* The same object, or keys that compare in plain C: decided while pinned. */
        int64_t slow = 0;
        for (int64_t i = 0; i < n; i++) {
            PyObject *k = obj(keys[i]);
            int eq = k == key ? 1 : plain_equal(k, key);
            if (eq == 1) {
                e->key = want_key ? Py_NewRef(k) : NULL;
                e->value = want_value ? Py_NewRef(obj(values[i])) : NULL;
                ftu_map_leave();
                goto done_found;
            }
            if (eq < 0) keys[slow++] = keys[i], values[slow - 1] = values[i];
        }
        if (slow == 0) {
            ftu_map_leave();
            goto done_absent;
        }
        /* The others through ==, which may run Python code: not pinned then, holding
         * references. */
        for (int64_t i = 0; i < slow; i++) {
            Py_INCREF(obj(keys[i]));
            Py_INCREF(obj(values[i]));
        }
        ftu_map_leave();
        int result = 0;
        int64_t match = -1;
        for (int64_t i = 0; i < slow && result == 0; i++) {
            result = PyObject_RichCompareBool(obj(keys[i]), key, Py_EQ);
            if (result > 0) match = i;
        }
        for (int64_t i = 0; i < slow; i++) {
            if (i == match) continue;
            Py_DECREF(obj(keys[i]));
            Py_DECREF(obj(values[i]));
        }
        if (result < 0) goto failed;
        if (match < 0) goto done_absent;
        if (want_key) {
            e->key = obj(keys[match]);
        } else {
            e->key = NULL;
            Py_DECREF(obj(keys[match]));
        }
        if (want_value) {
            e->value = obj(values[match]);
        } else {
            e->value = NULL;
            Py_DECREF(obj(values[match]));
        }
        goto done_found;
    }
done_found:
    if (keys != keys_buf) PyMem_Free(keys);
    if (values != values_buf) PyMem_Free(values);
    return 1;
done_absent:
    if (keys != keys_buf) PyMem_Free(keys);
    if (values != values_buf) PyMem_Free(values);
    e->key = e->value = NULL;
    return 0;
failed:
    if (keys != keys_buf) PyMem_Free(keys);
    if (values != values_buf) PyMem_Free(values);
    e->key = e->value = NULL;
    return -1;
}

static void found_clear(found_entry *e) {
    Py_CLEAR(e->key);
    Py_CLEAR(e->value);
}

/* For a write: e->version is set too. */
static inline int find(ConcurrentDictObject *self, PyObject *key, Py_hash_t hash, int want_value, found_entry *e) {
    return find_entry(self, key, hash, 1, want_value, e, &e->version);
}

/* For a read (no version: the stripe's line, which writers write, is not touched; no
 * reference to the key: e->key is NULL). */
static inline int find_read(ConcurrentDictObject *self, PyObject *key, Py_hash_t hash, int want_value,
                            found_entry *e) {
    return find_entry(self, key, hash, 0, want_value, e, NULL);
}

/* ---- life cycle ------------------------------------------------------------------------- */

static ConcurrentDictObject *alloc_dict(PyTypeObject *type, Py_ssize_t scaling, Py_ssize_t size_hint) {
    ConcurrentDictObject *self = (ConcurrentDictObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->scaling = scaling;
    self->map = ftu_map_new(size_hint, scaling, 0);
    if (self->map == NULL) {
        Py_DECREF(self);
        PyErr_NoMemory();
        return NULL;
    }
    return self;
}

static int set_item(ConcurrentDictObject *self, PyObject *key, Py_hash_t hash, PyObject *value);
static PyObject *ConcurrentDict_update(PyObject *op, PyObject *args, PyObject *kwargs);
static int ConcurrentDict_init(PyObject *op, PyObject *args, PyObject *kwargs);

/* scaling as an int between 1 and MAX_SCALING: 0, or -1 with TypeError / ValueError. */
static int parse_scaling(PyObject *scaling_obj, Py_ssize_t *scaling) {
    if (PyBool_Check(scaling_obj) || !PyIndex_Check(scaling_obj)) {
        PyErr_Format(PyExc_TypeError, "ConcurrentDict() scaling must be an int, not %.200s",
                     Py_TYPE(scaling_obj)->tp_name);
        return -1;
    }
    PyObject *index = PyNumber_Index(scaling_obj);
    if (index == NULL) return -1;
    int overflow;
    long long value = PyLong_AsLongLongAndOverflow(index, &overflow);
    if (value == -1 && PyErr_Occurred()) {
        Py_DECREF(index);
        return -1;
    }
    if (overflow != 0 || value < 1 || value > MAX_SCALING) {
        PyErr_Format(PyExc_ValueError, "ConcurrentDict() scaling must be between 1 and %d, not %R", MAX_SCALING,
                     index);
        Py_DECREF(index);
        return -1;
    }
    Py_DECREF(index);
    *scaling = (Py_ssize_t)value;
    return 0;
}

/* The arguments go to __new__ and __init__ as dict's do (see ftu_new_takes_arguments):
 * __new__ makes the table for scaling (and sized for the initial contents), __init__
 * stores the contents. A subclass whose __init__ takes arguments of its own gets the
 * default scaling (its super().__init__(scaling) only checks it), unless it overrides
 * __new__ too. */
static PyObject *ConcurrentDict_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    Py_ssize_t scaling = DEFAULT_SCALING, size_hint = 0;
    if (ftu_new_takes_arguments(type, ConcurrentDict_new, ConcurrentDict_init)) {
        static char *kwlist[] = {"scaling", "dictionary", NULL};
        PyObject *scaling_obj = NULL, *initial = NULL;
        if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:ConcurrentDict", kwlist, &scaling_obj, &initial))
            return NULL;
        if (scaling_obj != NULL && parse_scaling(scaling_obj, &scaling) < 0) return NULL;
        if (initial != NULL && initial != Py_None) {
            /* a hint only, capped: a length that lies (or an iterable of the wrong kind, which
             * update then refuses) must not make a huge table; growth does the rest */
            size_hint = PyObject_LengthHint(initial, 0);
            if (size_hint < 0) {
                PyErr_Clear();
                size_hint = 0;
            }
            if (size_hint > MAX_SIZE_HINT) size_hint = MAX_SIZE_HINT;
        }
    }
    return (PyObject *)alloc_dict(type, scaling, size_hint);
}

static int ConcurrentDict_init(PyObject *op, PyObject *args, PyObject *kwargs) {
    if (!ftu_init_takes_arguments(Py_TYPE(op), ConcurrentDict_new, ConcurrentDict_init)) return 0;
    static char *kwlist[] = {"scaling", "dictionary", NULL};
    PyObject *scaling_obj = NULL, *initial = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:ConcurrentDict", kwlist, &scaling_obj, &initial)) return -1;
    Py_ssize_t scaling;
    if (scaling_obj != NULL && parse_scaling(scaling_obj, &scaling) < 0) return -1;
    if (initial == NULL || initial == Py_None) return 0;
    PyObject *update_args = PyTuple_Pack(1, initial);
    PyObject *done = update_args == NULL ? NULL : ConcurrentDict_update(op, update_args, NULL);
    Py_XDECREF(update_args);
    if (done == NULL) return -1;
    Py_DECREF(done);
    return 0;
}

static int visit_word(uint64_t w, void *arg) {
    void **pair = arg;
    visitproc visit = (visitproc)pair[0];
    return visit(obj(w), pair[1]);
}

/* The collector stops every other thread (3.13t) or holds the GIL, so no write is half
 * done: the table is walked without its locks. */
static int ConcurrentDict_traverse(PyObject *op, visitproc visit, void *arg) {
    ConcurrentDictObject *self = as_cd(op);
    if (self->map == NULL) return 0;
    void *pair[2] = {(void *)visit, arg};
    return ftu_map_visit(self->map, visit_word, pair);
}

/* Empties the table of a dict no other code can reach (the collector's tp_clear, dealloc). */
static void drain(ConcurrentDictObject *self) {
    if (self->map == NULL) return;
    uint64_t words[64];
    int64_t n;
    while ((n = ftu_map_drain(self->map, words, 64)) > 0) {
        for (int64_t i = 0; i < n; i++) Py_DECREF(obj(words[i]));
    }
}

static int ConcurrentDict_clear(PyObject *op) {
    drain(as_cd(op));
    return 0;
}

static void ConcurrentDict_dealloc(PyObject *op) {
    ConcurrentDictObject *self = as_cd(op);
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    if (self->weakreflist != NULL) PyObject_ClearWeakRefs(op);
    drain(self);
    ftu_map_free(self->map);
    self->map = NULL;
    type->tp_free(op);
}

/* ---- reads -------------------------------------------------------------------------------- */

static PyObject *str_missing; /* "__missing__", interned */

/* d[key] for an absent key: as dict does, a subclass's __missing__ (looked up on the type,
 * bound like a method) gives the result; otherwise KeyError. */
static PyObject *missing_key(PyObject *op, PyObject *key) {
    PyTypeObject *type = Py_TYPE(op);
    if (type != &ConcurrentDict_Type) {
#if PY_VERSION_HEX >= 0x030D0000
        PyObject *missing = _PyType_LookupRef(type, str_missing);
#else
        PyObject *missing = _PyType_Lookup(type, str_missing);
        Py_XINCREF(missing);
#endif
        if (missing != NULL) {
            descrgetfunc bind = Py_TYPE(missing)->tp_descr_get;
            if (bind != NULL) Py_SETREF(missing, bind(missing, op, (PyObject *)type));
            PyObject *result = missing == NULL ? NULL : PyObject_CallOneArg(missing, key);
            Py_XDECREF(missing);
            return result;
        }
    }
    set_key_error(key);
    return NULL;
}

/* The entry of key found inline (no call into the core), for a caller that is pinned: the
 * common cases, where every key of the hash is the very object looked up or compares in
 * plain C. Its node (valid, with its key and value words, until the caller unpins), NULL
 * if absent, UNDECIDED if a key of the hash needs == (find_entry decides then). */
#define UNDECIDED ((ftu_map_node *)1)
static inline ftu_map_node *find_inline(ConcurrentDictObject *self, PyObject *key, Py_hash_t hash) {
    uint64_t mixed = ftu_map_mix((uint64_t)hash);
    for (ftu_map_node *n = ftu_map_first(self->map, mixed); n != NULL; n = ftu_map_load_next(n)) {
        if (n->mixed != mixed) continue;
        PyObject *k = obj(atomic_load_explicit(&n->key, memory_order_acquire));
        int eq = k == key ? 1 : plain_equal(k, key);
        if (eq == 1) return n;
        if (eq < 0) return UNDECIDED;
    }
    return NULL;
}

/* A read through find_inline: 1 found (with `value`, *value is a new reference), 0 absent,
 * -1 undecided (or the thread's epoch record could not be made): find_read() decides. */
static inline int read_inline(ConcurrentDictObject *self, PyObject *key, Py_hash_t hash, PyObject **value) {
    ftu_epoch_rec *rec = ftu_epoch_enter();
    if (rec == NULL) return -1;
    ftu_map_node *n = find_inline(self, key, hash);
    if (n != NULL && n != UNDECIDED && value != NULL)
        *value = Py_NewRef(obj(atomic_load_explicit(&n->value, memory_order_acquire)));
    ftu_epoch_leave(rec);
    return n == NULL ? 0 : n == UNDECIDED ? -1 : 1;
}

/* The value of key (a new reference), NULL with no exception if absent, NULL with one on
 * error. */
static PyObject *get_value(ConcurrentDictObject *self, PyObject *key) {
    Py_hash_t hash = PyObject_Hash(key);
    if (hash == -1) return NULL;
    PyObject *value;
    int found = read_inline(self, key, hash, &value);
    if (found >= 0) return found ? value : NULL;
    found_entry e;
    found = find_read(self, key, hash, 1, &e);
    return found <= 0 ? NULL : e.value;
}

static PyObject *ConcurrentDict_subscript(PyObject *op, PyObject *key) {
    PyObject *value = get_value(as_cd(op), key);
    if (value == NULL && !PyErr_Occurred()) return missing_key(op, key);
    return value;
}

static int ConcurrentDict_contains(PyObject *op, PyObject *key) {
    Py_hash_t hash = PyObject_Hash(key);
    if (hash == -1) return -1;
    int found = read_inline(as_cd(op), key, hash, NULL);
    if (found >= 0) return found;
    found_entry e;
    found = find_read(as_cd(op), key, hash, 0, &e);
    found_clear(&e);
    return found;
}

static Py_ssize_t ConcurrentDict_length(PyObject *op) {
    int64_t n = ftu_map_size(as_cd(op)->map);
    return n < 0 ? 0 : (Py_ssize_t)n;
}

static PyObject *ConcurrentDict_get(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "get expected 1 or 2 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *value = get_value(as_cd(op), args[0]);
    if (value == NULL && !PyErr_Occurred()) return Py_NewRef(nargs == 2 ? args[1] : Py_None);
    return value;
}

/* ---- writes ------------------------------------------------------------------------------- */

/* d[key] = value: replaces the value of an equal key, or adds key. 0, or -1 with an
 * exception. */
static int set_item(ConcurrentDictObject *self, PyObject *key, Py_hash_t hash, PyObject *value) {
    ftu_map_release out;
    /* The common cases in one step of the table: the stored key is this very object, or
     * no key has this hash. */
    int added;
    /* The table's reference to the key is taken before the key is published: once in the
     * table, another thread may remove it and release that reference at any moment. */
    Py_INCREF(key);
    int status = ftu_map_put(self->map, (uint64_t)hash, word(key), word(Py_NewRef(value)), &added, &out);
    if (!added) Py_DECREF(key); /* not stored (the caller's reference keeps it alive) */
    if (status == FTU_OK) {
        release(&out);
        return 0;
    }
    Py_DECREF(value);
    release(&out);
    if (status == FTU_NO_MEMORY) {
        PyErr_NoMemory();
        return -1;
    }
    for (;;) { /* keys with this hash that are not this object: compare them */
        found_entry e;
        int found = find(self, key, hash, 0, &e);
        if (found < 0) return -1;
        int status;
        if (found) {
            uint64_t previous;
            status = ftu_map_replace(self->map, (uint64_t)hash, word(e.key), word(Py_NewRef(value)), 0, 0, &previous,
                                     &out);
            if (status != FTU_OK) Py_DECREF(value);
        } else {
            status = ftu_map_insert(self->map, (uint64_t)hash, word(Py_NewRef(key)), word(Py_NewRef(value)),
                                    e.version, &out);
            if (status != FTU_OK) {
                Py_DECREF(key);
                Py_DECREF(value);
            }
        }
        found_clear(&e);
        release(&out);
        if (status == FTU_OK) return 0;
        if (status == FTU_NO_MEMORY) {
            PyErr_NoMemory();
            return -1;
        }
        /* FTU_RETRY: the entry or the stripe changed since the lookup */
    }
}

/* What the status of a remove means for remove_item: 1 removed, 0 not (another value),
 * -1 out of memory (with the exception), RETRY (the entry changed: look again). */
#define RETRY 2
static int removal(int status) {
    if (status == FTU_OK) return 1;
    if (status == FTU_MISMATCH) return 0;
    if (status == FTU_NO_MEMORY) {
        PyErr_NoMemory();
        return -1;
    }
    return RETRY;
}

/* Removes key if present (and, with check, only if its value is `expected`). With
 * `value_out`, stores a new reference to the value removed there. 1 removed, 0 absent
 * (or another value, with check), -1 with an exception. */
static int remove_item(ConcurrentDictObject *self, PyObject *key, Py_hash_t hash, int check, PyObject *expected,
                       PyObject **value_out) {
    ftu_map_release out;
    /* The common cases: the stored key found inline, and removed by its word while still
     * pinned (so that word cannot be released and reused by another key meanwhile, and the
     * value removed is not released before it is ours). */
    ftu_epoch_rec *rec = ftu_epoch_enter();
    if (rec != NULL) {
        ftu_map_node *n = find_inline(self, key, hash);
        if (n == NULL) {
            ftu_epoch_leave(rec);
            return 0;
        }
        if (n != UNDECIDED) {
            uint64_t previous;
            int status = ftu_map_remove(self->map, (uint64_t)hash, atomic_load_explicit(&n->key, memory_order_relaxed),
                                        check, word(expected), &previous, &out);
            if (status == FTU_OK && value_out != NULL) *value_out = Py_NewRef(obj(previous));
            ftu_epoch_leave(rec);
            release(&out);
            int result = removal(status);
            if (result != RETRY) return result; /* else the entry went since the walk: look again below */
        } else {
            ftu_epoch_leave(rec);
        }
    }
    for (;;) {
        found_entry e;
        int found = find(self, key, hash, 0, &e);
        if (found <= 0) return found;
        uint64_t previous;
        /* Pinned from before the remove until the value removed is ours: until then its
         * reference may be handed back for release (to this thread or another). */
        if (value_out != NULL && pin() < 0) {
            found_clear(&e);
            return -1;
        }
        int status = ftu_map_remove(self->map, (uint64_t)hash, word(e.key), check, word(expected), &previous, &out);
        if (value_out != NULL) {
            if (status == FTU_OK) *value_out = Py_NewRef(obj(previous));
            ftu_map_leave();
        }
        found_clear(&e);
        release(&out);
        int result = removal(status);
        if (result != RETRY) return result;
    }
}

static int ConcurrentDict_ass_subscript(PyObject *op, PyObject *key, PyObject *value) {
    Py_hash_t hash = PyObject_Hash(key);
    if (hash == -1) return -1;
    if (value != NULL) return set_item(as_cd(op), key, hash, value);
    int removed = remove_item(as_cd(op), key, hash, 0, NULL, NULL);
    if (removed == 0) set_key_error(key);
    return removed > 0 ? 0 : -1;
}

static PyObject *ConcurrentDict_pop(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "pop expected 1 or 2 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *key = args[0];
    Py_hash_t hash = PyObject_Hash(key);
    if (hash == -1) return NULL;
    PyObject *value = NULL;
    int removed = remove_item(as_cd(op), key, hash, 0, NULL, &value);
    if (removed < 0) return NULL;
    if (removed == 0) {
        if (nargs == 2) return Py_NewRef(args[1]);
        set_key_error(key);
        return NULL;
    }
    return value;
}

static PyObject *ConcurrentDict_setdefault(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "setdefault expected 1 or 2 arguments, got %zd", nargs);
        return NULL;
    }
    ConcurrentDictObject *self = as_cd(op);
    PyObject *key = args[0], *default_value = nargs == 2 ? args[1] : Py_None;
    Py_hash_t hash = PyObject_Hash(key);
    if (hash == -1) return NULL;
    ftu_map_release out;
    for (;;) {
        found_entry e;
        int found = find(self, key, hash, 1, &e);
        if (found < 0) return NULL;
        if (found) {
            Py_DECREF(e.key);
            return e.value;
        }
        int status = ftu_map_insert(self->map, (uint64_t)hash, word(Py_NewRef(key)), word(Py_NewRef(default_value)),
                                    e.version, &out);
        if (status != FTU_OK) {
            Py_DECREF(key);
            Py_DECREF(default_value);
        }
        release(&out);
        if (status == FTU_OK) return Py_NewRef(default_value);
        if (status == FTU_NO_MEMORY) return PyErr_NoMemory();
    }
}

/* Stores value in key's entry if it holds `expected` (by identity). 1 stored, 0 not
 * (another value, or key absent), -1 with an exception. */
static int replace_if(ConcurrentDictObject *self, PyObject *key, PyObject *expected, PyObject *value) {
    Py_hash_t hash = PyObject_Hash(key);
    if (hash == -1) return -1;
    ftu_map_release out;
    for (;;) {
        found_entry e;
        int found = find(self, key, hash, 0, &e);
        if (found <= 0) return found;
        uint64_t previous;
        int status = ftu_map_replace(self->map, (uint64_t)hash, word(e.key), word(Py_NewRef(value)), 1,
                                     word(expected), &previous, &out);
        if (status != FTU_OK) Py_DECREF(value);
        found_clear(&e);
        release(&out);
        int result = removal(status);
        if (result != RETRY) return result;
    }
}

static PyObject *ConcurrentDict_compare_and_set(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "compare_and_set expected 3 arguments, got %zd", nargs);
        return NULL;
    }
    int result = replace_if(as_cd(op), args[0], args[1], args[2]);
    return result < 0 ? NULL : PyBool_FromLong(result);
}

static PyObject *ConcurrentDict_compare_and_delete(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "compare_and_delete expected 2 arguments, got %zd", nargs);
        return NULL;
    }
    Py_hash_t hash = PyObject_Hash(args[0]);
    if (hash == -1) return NULL;
    int result = remove_item(as_cd(op), args[0], hash, 1, args[1], NULL);
    return result < 0 ? NULL : PyBool_FromLong(result);
}

/* ---- walking the table ------------------------------------------------------------------ */

/* One batch of a weakly consistent walk: new references to up to SCAN_BATCH entries'
 * keys (and values), their hashes; the count, or -1 with an exception. */
typedef struct {
    uint64_t cursor;
    int done;
    int64_t count;
    uint64_t hashes[SCAN_BATCH], keys[SCAN_BATCH], values[SCAN_BATCH];
} scan_batch;

static int scan_next(ConcurrentDictObject *self, scan_batch *b, int with_values) {
    if (pin() < 0) return -1;
    int64_t n = ftu_map_scan(self->map, &b->cursor, &b->done, b->hashes, b->keys, b->values, SCAN_BATCH);
    for (int64_t i = 0; i < n; i++) {
        Py_INCREF(obj(b->keys[i]));
        if (with_values) Py_INCREF(obj(b->values[i]));
    }
    ftu_map_leave();
    if (n == -1) {
        PyErr_NoMemory();
        return -1;
    }
    if (n < -1) return -2; /* more keys share the next hash than a batch holds */
    b->count = n;
    return 0;
}

/* The next group of keys that share one hash and do not fit in a batch: a PyMem block
 * of 3 * *cap words (hashes, keys, values; new references to the keys, and to the
 * values with with_values) in *mem, and their count; -1 with an exception. */
static int64_t scan_group(ConcurrentDictObject *self, uint64_t *cursor, int *done, int with_values, uint64_t **mem,
                          int64_t *cap) {
    *cap = SCAN_BATCH;
    for (;;) {
        *cap *= 4;
        *mem = PyMem_Malloc((size_t)*cap * 3 * sizeof(uint64_t));
        if (*mem == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        if (pin() < 0) {
            PyMem_Free(*mem);
            return -1;
        }
        uint64_t *m = *mem;
        int64_t n = ftu_map_scan(self->map, cursor, done, m, m + *cap, m + 2 * *cap, *cap);
        for (int64_t i = 0; i < n; i++) {
            Py_INCREF(obj(m[*cap + i]));
            if (with_values) Py_INCREF(obj(m[2 * *cap + i]));
        }
        ftu_map_leave();
        if (n >= 0) return n;
        PyMem_Free(*mem);
        if (n == -1) {
            PyErr_NoMemory();
            return -1;
        }
    }
}

static void batch_release(scan_batch *b, int with_values) {
    for (int64_t i = 0; i < b->count; i++) {
        Py_DECREF(obj(b->keys[i]));
        if (with_values) Py_DECREF(obj(b->values[i]));
    }
    b->count = 0;
}

/* Calls each(arg, hash, key, value) for every entry (borrowed references, valid during
 * the call), a batch at a time: weakly consistent. Groups of keys sharing a hash larger
 * than a batch are fetched whole into a bigger buffer. Stops at the first non-zero
 * result of each and returns it (-1: with an exception); 0 once every entry was seen. */
static int walk_from(ConcurrentDictObject *self, uint64_t cursor, int with_values,
                     int (*each)(void *arg, uint64_t hash, PyObject *key, PyObject *value), void *arg) {
    scan_batch b;
    b.cursor = cursor;
    b.done = 0;
    b.count = 0;
    while (!b.done) {
        int r = scan_next(self, &b, with_values);
        if (r == -1) return -1;
        if (r == -2) { /* a group bigger than a batch */
            uint64_t *mem;
            int64_t cap, n = scan_group(self, &b.cursor, &b.done, with_values, &mem, &cap);
            if (n < 0) return -1;
            int result = 0;
            for (int64_t i = 0; i < n; i++) {
                if (result == 0) result = each(arg, mem[i], obj(mem[cap + i]), with_values ? obj(mem[2 * cap + i]) : NULL);
                Py_DECREF(obj(mem[cap + i]));
                if (with_values) Py_DECREF(obj(mem[2 * cap + i]));
            }
            PyMem_Free(mem);
            if (result != 0) return result;
            continue;
        }
        int result = 0;
        for (int64_t i = 0; i < b.count && result == 0; i++)
            result = each(arg, b.hashes[i], obj(b.keys[i]), with_values ? obj(b.values[i]) : NULL);
        batch_release(&b, with_values);
        if (result != 0) return result;
    }
    return 0;
}

static int walk(ConcurrentDictObject *self, int with_values,
                int (*each)(void *arg, uint64_t hash, PyObject *key, PyObject *value), void *arg) {
    return walk_from(self, 0, with_values, each, arg);
}

/* ---- whole-dict operations ------------------------------------------------------------ */

static int is_concurrent_dict(PyObject *op) { return PyObject_TypeCheck(op, &ConcurrentDict_Type); }

static int each_into_dict(void *arg, uint64_t hash, PyObject *key, PyObject *value) {
    (void)hash;
    return PyDict_SetItem((PyObject *)arg, key, value);
}

static PyObject *ConcurrentDict_as_dict(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    PyObject *result = PyDict_New();
    if (result == NULL) return NULL;
    if (walk(as_cd(op), 1, each_into_dict, result) < 0) Py_CLEAR(result);
    return result;
}

/* Removed keys and values are kept until clear() ends, so their finalizers run after it
 * (a write they make is not wiped by it); if keeping one fails it is let go at once. */
typedef struct {
    ConcurrentDictObject *self;
    PyObject *kept;
} clear_state;

static int each_remove(void *arg, uint64_t hash, PyObject *key, PyObject *value) {
    (void)value;
    clear_state *c = arg;
    ftu_map_release out;
    uint64_t previous;
    int status = ftu_map_remove(c->self->map, hash, word(key), 0, 0, &previous, &out);
    for (int64_t i = 0; i < out.count; i++) {
        PyObject *o = obj(out.words[i]);
        if (PyList_Append(c->kept, o) < 0) PyErr_Clear();
        Py_DECREF(o);
    }
    if (status == FTU_NO_MEMORY) {
        PyErr_NoMemory();
        return -1;
    }
    return 0; /* FTU_RETRY: another thread removed it first */
}

static PyObject *ConcurrentDict_clear_method(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    clear_state c = {as_cd(op), PyList_New(0)};
    if (c.kept == NULL) return NULL;
    /* Entries added after the walk passed their place stay (clear is not atomic as a
     * whole, as before). */
    int result = walk(c.self, 0, each_remove, &c);
    Py_DECREF(c.kept);
    if (result < 0) return NULL;
    reclaim(c.self);
    Py_RETURN_NONE;
}

/* Stores every pair of items_dict, a dict of our own that no other code can reach (so
 * walking it while user code runs, a key's __eq__ or a replaced value's __del__, is
 * safe; its references stay valid). */
static int set_all(PyObject *op, PyObject *items_dict) {
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(items_dict, &pos, &key, &value)) {
        Py_hash_t hash = PyObject_Hash(key);
        if (hash == -1 || set_item(as_cd(op), key, hash, value) < 0) return -1;
    }
    return 0;
}

static PyObject *ConcurrentDict_update(PyObject *op, PyObject *args, PyObject *kwargs) {
    if (PyTuple_GET_SIZE(args) > 1) {
        PyErr_Format(PyExc_TypeError, "update expected at most 1 positional argument, got %zd",
                     PyTuple_GET_SIZE(args));
        return NULL;
    }
    PyObject *source;
    if (PyTuple_GET_SIZE(args) == 1 && is_concurrent_dict(PyTuple_GET_ITEM(args, 0))) {
        source = ConcurrentDict_as_dict(PyTuple_GET_ITEM(args, 0), NULL);
        if (source != NULL && kwargs != NULL && PyDict_Update(source, kwargs) < 0) Py_CLEAR(source);
    } else {
        /* dict(...) accepts exactly what dict.update accepts, with the same errors, and
         * fails before anything is stored here if an element or a hash is bad. */
        source = PyObject_Call((PyObject *)&PyDict_Type, args, kwargs);
    }
    if (source == NULL) return NULL;
    int result = set_all(op, source);
    Py_DECREF(source);
    if (result < 0) return NULL;
    Py_RETURN_NONE;
}

static int each_into_copy(void *arg, uint64_t hash, PyObject *key, PyObject *value) {
    return set_item((ConcurrentDictObject *)arg, key, (Py_hash_t)hash, value);
}

static PyObject *ConcurrentDict_copy(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    ConcurrentDictObject *self = as_cd(op);
    ConcurrentDictObject *copy = alloc_dict(&ConcurrentDict_Type, self->scaling, ftu_map_size(self->map));
    if (copy == NULL) return NULL;
    if (walk(self, 1, each_into_copy, copy) < 0) Py_CLEAR(copy);
    return (PyObject *)copy;
}

/* What a snapshot lists. */
enum { SNAP_KEYS, SNAP_VALUES, SNAP_ITEMS };

typedef struct {
    PyObject *list;
    int what;
} snapshot_state;

static int each_into_list(void *arg, uint64_t hash, PyObject *key, PyObject *value) {
    (void)hash;
    snapshot_state *s = arg;
    if (s->what == SNAP_KEYS) return PyList_Append(s->list, key);
    if (s->what == SNAP_VALUES) return PyList_Append(s->list, value);
    PyObject *pair = PyTuple_Pack(2, key, value);
    if (pair == NULL) return -1;
    int result = PyList_Append(s->list, pair);
    Py_DECREF(pair);
    return result;
}

static PyObject *snapshot_list(PyObject *op, int what) {
    snapshot_state s = {PyList_New(0), what};
    if (s.list == NULL) return NULL;
    if (walk(as_cd(op), what != SNAP_KEYS, each_into_list, &s) < 0) Py_CLEAR(s.list);
    return s.list;
}

static PyObject *ConcurrentDict_keys(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    return snapshot_list(op, SNAP_KEYS);
}

static PyObject *ConcurrentDict_values(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    return snapshot_list(op, SNAP_VALUES);
}

static PyObject *ConcurrentDict_items(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    return snapshot_list(op, SNAP_ITEMS);
}

static PyObject *ConcurrentDict_richcompare(PyObject *op, PyObject *other, int opid) {
    if ((opid != Py_EQ && opid != Py_NE) || !(PyDict_Check(other) || is_concurrent_dict(other))) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    PyObject *mine = ConcurrentDict_as_dict(op, NULL);
    if (mine == NULL) return NULL;
    PyObject *theirs = is_concurrent_dict(other) ? ConcurrentDict_as_dict(other, NULL) : Py_NewRef(other);
    PyObject *result = theirs == NULL ? NULL : PyObject_RichCompare(mine, theirs, opid);
    Py_DECREF(mine);
    Py_XDECREF(theirs);
    return result;
}

static PyObject *ConcurrentDict_repr(PyObject *op) {
    const char *name = ftu_type_name(Py_TYPE(op));
    ftu_repr_entry entry;
    if (ftu_repr_enter(&entry, op)) return PyUnicode_FromFormat("%s({...})", name);
    PyObject *snapshot = ConcurrentDict_as_dict(op, NULL);
    PyObject *result = snapshot == NULL ? NULL : PyUnicode_FromFormat("%s(%R)", name, snapshot);
    Py_XDECREF(snapshot);
    ftu_repr_leave(&entry);
    return result;
}

/* The attributes of a subclass instance (its __dict__ and slots), as a dict subclass
 * pickles them: whatever __getstate__ returns (object's from 3.11, or the subclass's). */
static PyObject *instance_state(PyObject *op) {
    if (Py_TYPE(op) == &ConcurrentDict_Type) return Py_NewRef(Py_None);
#if PY_VERSION_HEX >= 0x030B0000
    return PyObject_CallMethod(op, "__getstate__", NULL);
#else
    PyObject *state = PyObject_GetAttrString(op, "__dict__");
    if (state == NULL && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        state = Py_NewRef(Py_None);
    }
    return state;
#endif
}

static PyObject *copyreg_newobj; /* copyreg.__newobj__ */

/* Rebuilt as dict subclasses are: cls.__new__(cls, scaling) through copyreg.__newobj__
 * (no __init__ call), then the state, then the pairs through d[k] = v. */
static PyObject *ConcurrentDict_reduce(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    PyObject *state = instance_state(op);
    if (state == NULL) return NULL;
    PyObject *items = ConcurrentDict_items(op, NULL);
    PyObject *iterator = items == NULL ? NULL : PyObject_GetIter(items);
    Py_XDECREF(items);
    if (iterator == NULL) {
        Py_DECREF(state);
        return NULL;
    }
    return Py_BuildValue("O(On)NON", copyreg_newobj, (PyObject *)Py_TYPE(op), as_cd(op)->scaling, state, Py_None,
                         iterator);
}

static PyObject *ConcurrentDict_get_scaling(PyObject *op, void *Py_UNUSED(closure)) {
    return PyLong_FromSsize_t(as_cd(op)->scaling);
}

/* popitem: removes the first entry of the walk that no other thread removes first. */
typedef struct {
    ConcurrentDictObject *self;
    PyObject *pair;
    uint64_t hash; /* of the entry removed */
} popitem_state;

static int each_popitem(void *arg, uint64_t hash, PyObject *key, PyObject *value) {
    (void)value;
    popitem_state *p = arg;
    ftu_map_release out;
    uint64_t previous;
    if (pin() < 0) return -1;
    int status = ftu_map_remove(p->self->map, hash, word(key), 0, 0, &previous, &out);
    PyObject *removed = status == FTU_OK ? Py_NewRef(obj(previous)) : NULL;
    ftu_map_leave();
    release(&out);
    if (status == FTU_NO_MEMORY) {
        PyErr_NoMemory();
        return -1;
    }
    if (removed == NULL) return 0; /* another thread removed it first: the next one */
    p->hash = hash;
    p->pair = PyTuple_Pack(2, key, removed);
    Py_DECREF(removed); /* a failed pack drops the pair, as a failed return would */
    return p->pair == NULL ? -1 : 1;
}

/* Walks from where the last popitem() took its item, then from the start: emptying a
 * dict with popitem() does not walk the emptied part of the table again each time. */
static PyObject *ConcurrentDict_popitem(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    popitem_state p = {as_cd(op), NULL, 0};
    uint64_t hint = atomic_load_explicit(&p.self->pop_hint, memory_order_relaxed);
    int result = walk_from(p.self, hint, 0, each_popitem, &p);
    if (result == 0 && hint != 0) result = walk_from(p.self, 0, 0, each_popitem, &p);
    if (result < 0) return NULL;
    if (result > 0) atomic_store_explicit(&p.self->pop_hint, ftu_map_mix(p.hash), memory_order_relaxed);
    if (result == 0) {
        PyErr_SetString(PyExc_KeyError, "popitem(): dictionary is empty");
        return NULL;
    }
    return p.pair;
}

static PyObject *ConcurrentDict_fromkeys(PyObject *cls, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "fromkeys expected 1 or 2 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *value = nargs == 2 ? args[1] : Py_None;
    PyObject *iterator = PyObject_GetIter(args[0]);
    if (iterator == NULL) return NULL;
    PyObject *result = PyObject_CallNoArgs(cls);
    PyObject *key;
    while (result != NULL && (key = PyIter_Next(iterator)) != NULL) {
        if (PyObject_SetItem(result, key, value) < 0) Py_CLEAR(result); /* as dict: through __setitem__ */
        Py_DECREF(key);
    }
    Py_DECREF(iterator);
    if (result != NULL && PyErr_Occurred()) Py_CLEAR(result);
    return result;
}

static PyObject *mapping_abc; /* collections.abc.Mapping */

/* What | takes: a dict, a ConcurrentDict or another Mapping. 1, 0, or -1 with an error. */
static int is_mapping(PyObject *op) {
    if (PyDict_Check(op) || is_concurrent_dict(op)) return 1;
    return PyObject_IsInstance(op, mapping_abc);
}

static int update_from(PyObject *target, PyObject *source) {
    PyObject *args = PyTuple_Pack(1, source);
    PyObject *done = args == NULL ? NULL : ConcurrentDict_update(target, args, NULL);
    Py_XDECREF(args);
    Py_XDECREF(done);
    return done == NULL ? -1 : 0;
}

/* d | other: a new ConcurrentDict (as d.copy()) with other's pairs over d's; other | d
 * (other a mapping that is not a ConcurrentDict): one with d's pairs over other's. */
static PyObject *ConcurrentDict_or(PyObject *left, PyObject *right) {
    int ours = is_concurrent_dict(left);
    int ok = is_mapping(ours ? right : left);
    if (ok <= 0) {
        if (ok < 0) return NULL;
        Py_RETURN_NOTIMPLEMENTED;
    }
    PyObject *result = ours ? ConcurrentDict_copy(left, NULL)
                            : (PyObject *)alloc_dict(&ConcurrentDict_Type, as_cd(right)->scaling, 0);
    if (result == NULL) return NULL;
    if ((!ours && update_from(result, left) < 0) || update_from(result, right) < 0) Py_CLEAR(result);
    return result;
}

/* d |= other: d.update(other) (other: a mapping or an iterable of pairs, as dict's |=). */
static PyObject *ConcurrentDict_ior(PyObject *left, PyObject *right) {
    if (update_from(left, right) < 0) return NULL;
    return Py_NewRef(left);
}

static PyNumberMethods ConcurrentDict_as_number = {
    .nb_or = ConcurrentDict_or,
    .nb_inplace_or = ConcurrentDict_ior,
};

/* ---- iteration: a batch of keys at a time ------------------------------------------------ */

/* Iterator over the keys of a ConcurrentDict: walks the table in the order of the hashes
 * (ftu_map_scan), a batch of keys at a time, so writes by other threads never break it
 * (weakly consistent: a key present throughout is seen exactly once).
 *
 * Threads may share one iterator: its fields change only under its lock, which is never
 * held across anything that runs Python code or waits. Each key of a batch is handed out
 * once; the next batch is fetched outside the lock, and when several threads fetch it at
 * once, the first to come back installs it and the others drop theirs. */
typedef struct {
    PyObject_HEAD
    ftu_pylock lock;
    PyObject *dict;   /* the ConcurrentDict, owned; NULL once exhausted */
    uint64_t cursor;  /* where the next batch starts */
    int done;         /* no batch after the current one */
    uint64_t fetches; /* batches installed: a fetch that started before one was installed is stale */
    PyObject *batch;  /* tuple of keys, owned, or NULL */
    Py_ssize_t pos;   /* next index in batch */
} ConcurrentDictIteratorObject;

static PyTypeObject ConcurrentDictIterator_Type;

static PyObject *ConcurrentDict_iter(PyObject *op) {
    ConcurrentDictIteratorObject *it = PyObject_GC_New(ConcurrentDictIteratorObject, &ConcurrentDictIterator_Type);
    if (it == NULL) return NULL;
    memset(&it->lock, 0, sizeof(it->lock));
    it->dict = Py_NewRef(op);
    it->cursor = 0;
    it->done = 0;
    it->fetches = 0;
    it->batch = NULL;
    it->pos = 0;
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

static PyObject *ConcurrentDictIterator_next(PyObject *op) {
    ConcurrentDictIteratorObject *it = (ConcurrentDictIteratorObject *)op;
    for (;;) {
        PyObject *key = NULL, *dict = NULL, *dropped_dict = NULL, *dropped_keys = NULL;
        uint64_t cursor = 0, fetches = 0;
        FTU_PYLOCK_ACQUIRE(it->lock);
        if (it->batch != NULL && it->pos < PyTuple_GET_SIZE(it->batch)) {
            key = Py_NewRef(PyTuple_GET_ITEM(it->batch, it->pos++));
        } else if (it->dict != NULL && !it->done) {
            dict = Py_NewRef(it->dict);
            cursor = it->cursor;
            fetches = it->fetches;
        } else { /* the walk is over */
            dropped_dict = it->dict;
            dropped_keys = it->batch;
            it->dict = it->batch = NULL;
        }
        FTU_PYLOCK_RELEASE(it->lock);
        Py_XDECREF(dropped_dict);
        Py_XDECREF(dropped_keys);
        if (dict == NULL) return key; /* a key, or NULL at the end */

        /* The next batch, from a private cursor. */
        scan_batch b;
        b.cursor = cursor;
        b.done = 0;
        b.count = 0;
        PyObject *fresh = NULL;
        int r = scan_next(as_cd(dict), &b, 0);
        if (r == -2) { /* a group of keys sharing one hash, bigger than a batch */
            uint64_t *mem;
            int64_t cap, n = scan_group(as_cd(dict), &b.cursor, &b.done, 0, &mem, &cap);
            if (n >= 0) {
                fresh = PyTuple_New(n);
                for (int64_t i = 0; i < n; i++) {
                    if (fresh != NULL) PyTuple_SET_ITEM(fresh, i, obj(mem[cap + i])); /* steals */
                    else Py_DECREF(obj(mem[cap + i]));
                }
                PyMem_Free(mem);
            }
        } else if (r == 0) {
            /* A tuple: on 3.13t PyList_New(n) frees a half-made list when its array cannot
             * be allocated (a crash). */
            fresh = PyTuple_New(b.count);
            if (fresh == NULL) {
                batch_release(&b, 0);
            } else {
                for (int64_t i = 0; i < b.count; i++) PyTuple_SET_ITEM(fresh, i, obj(b.keys[i])); /* steals */
                b.count = 0;
            }
        }
        Py_DECREF(dict);
        if (fresh == NULL) return NULL;
        FTU_PYLOCK_ACQUIRE(it->lock);
        if (it->dict != NULL && it->fetches == fetches) { /* first back: install it */
            dropped_keys = it->batch;
            it->batch = fresh;
            it->pos = 0;
            it->cursor = b.cursor;
            it->done = b.done;
            it->fetches++;
            fresh = NULL;
        }
        FTU_PYLOCK_RELEASE(it->lock);
        Py_XDECREF(dropped_keys);
        Py_XDECREF(fresh);
    }
}

static int ConcurrentDictIterator_traverse(PyObject *op, visitproc visit, void *arg) {
    ConcurrentDictIteratorObject *it = (ConcurrentDictIteratorObject *)op;
    Py_VISIT(it->dict);
    Py_VISIT(it->batch);
    return 0;
}

static void ConcurrentDictIterator_dealloc(PyObject *op) {
    ConcurrentDictIteratorObject *it = (ConcurrentDictIteratorObject *)op;
    PyObject_GC_UnTrack(op);
    Py_XDECREF(it->dict);
    Py_XDECREF(it->batch);
    PyObject_GC_Del(op);
}

static PyTypeObject ConcurrentDictIterator_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ft_utils.concurrency.ConcurrentDictIterator",
    .tp_basicsize = sizeof(ConcurrentDictIteratorObject),
    .tp_dealloc = ConcurrentDictIterator_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .tp_traverse = ConcurrentDictIterator_traverse,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = ConcurrentDictIterator_next,
};

/* ---- type ------------------------------------------------------------------------------- */

static PyMappingMethods ConcurrentDict_as_mapping = {
    .mp_length = ConcurrentDict_length,
    .mp_subscript = ConcurrentDict_subscript,
    .mp_ass_subscript = ConcurrentDict_ass_subscript,
};

static PySequenceMethods ConcurrentDict_as_sequence = {
    .sq_contains = ConcurrentDict_contains,
};

static PyMethodDef ConcurrentDict_methods[] = {
    {"get", (PyCFunction)(void (*)(void))ConcurrentDict_get, METH_FASTCALL, DOC_ConcurrentDict_get},
    {"pop", (PyCFunction)(void (*)(void))ConcurrentDict_pop, METH_FASTCALL, DOC_ConcurrentDict_pop},
    {"setdefault", (PyCFunction)(void (*)(void))ConcurrentDict_setdefault, METH_FASTCALL,
     DOC_ConcurrentDict_setdefault},
    {"compare_and_set", (PyCFunction)(void (*)(void))ConcurrentDict_compare_and_set, METH_FASTCALL,
     DOC_ConcurrentDict_compare_and_set},
    {"compare_and_delete", (PyCFunction)(void (*)(void))ConcurrentDict_compare_and_delete, METH_FASTCALL,
     DOC_ConcurrentDict_compare_and_delete},
    {"update", (PyCFunction)(void (*)(void))ConcurrentDict_update, METH_VARARGS | METH_KEYWORDS,
     DOC_ConcurrentDict_update},
    {"popitem", ConcurrentDict_popitem, METH_NOARGS, DOC_ConcurrentDict_popitem},
    {"fromkeys", (PyCFunction)(void (*)(void))ConcurrentDict_fromkeys, METH_FASTCALL | METH_CLASS,
     DOC_ConcurrentDict_fromkeys},
    {"clear", ConcurrentDict_clear_method, METH_NOARGS, DOC_ConcurrentDict_clear},
    {"copy", ConcurrentDict_copy, METH_NOARGS, DOC_ConcurrentDict_copy},
    {"as_dict", ConcurrentDict_as_dict, METH_NOARGS, DOC_ConcurrentDict_as_dict},
    {"keys", ConcurrentDict_keys, METH_NOARGS, DOC_ConcurrentDict_keys},
    {"values", ConcurrentDict_values, METH_NOARGS, DOC_ConcurrentDict_values},
    {"items", ConcurrentDict_items, METH_NOARGS, DOC_ConcurrentDict_items},
    {"__reduce__", ConcurrentDict_reduce, METH_NOARGS, "Pickle and copy support."},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, "See PEP 585."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef ConcurrentDict_getset[] = {
    {"scaling", ConcurrentDict_get_scaling, NULL, DOC_ConcurrentDict_scaling, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject ConcurrentDict_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ft_utils.concurrency.ConcurrentDict",
    .tp_basicsize = sizeof(ConcurrentDictObject),
    .tp_dealloc = ConcurrentDict_dealloc,
    .tp_repr = ConcurrentDict_repr,
    .tp_as_number = &ConcurrentDict_as_number,
    .tp_as_sequence = &ConcurrentDict_as_sequence,
    .tp_as_mapping = &ConcurrentDict_as_mapping,
    .tp_hash = PyObject_HashNotImplemented,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = DOC_ConcurrentDict,
    .tp_traverse = ConcurrentDict_traverse,
    .tp_clear = ConcurrentDict_clear,
    .tp_richcompare = ConcurrentDict_richcompare,
    .tp_weaklistoffset = offsetof(ConcurrentDictObject, weakreflist),
    .tp_iter = ConcurrentDict_iter,
    .tp_methods = ConcurrentDict_methods,
    .tp_getset = ConcurrentDict_getset,
    .tp_new = ConcurrentDict_new,
    .tp_init = ConcurrentDict_init,
};

int concurrent_dict_module_init(PyObject *module) {
    if (str_missing == NULL && (str_missing = PyUnicode_InternFromString("__missing__")) == NULL) return -1;
    if (copyreg_newobj == NULL) {
        PyObject *copyreg = PyImport_ImportModule("copyreg");
        copyreg_newobj = copyreg == NULL ? NULL : PyObject_GetAttrString(copyreg, "__newobj__");
        Py_XDECREF(copyreg);
        if (copyreg_newobj == NULL) return -1;
    }
    if (mapping_abc == NULL) {
        PyObject *abc = PyImport_ImportModule("collections.abc");
        mapping_abc = abc == NULL ? NULL : PyObject_GetAttrString(abc, "Mapping");
        Py_XDECREF(abc);
        if (mapping_abc == NULL) return -1;
    }
    if (PyType_Ready(&ConcurrentDictIterator_Type) < 0 || PyType_Ready(&ConcurrentDict_Type) < 0) return -1;
    /* Not reversible: the order is by hash, there is no insertion order to reverse.
     * None, as for any Python class, so that reversed() raises TypeError instead of
     * trying the sequence protocol, and collections.abc.Reversible says no. */
    if (PyDict_SetItemString(ConcurrentDict_Type.tp_dict, "__reversed__", Py_None) < 0) return -1;
    PyType_Modified(&ConcurrentDict_Type);
    return ftu_add_type(module, &ConcurrentDict_Type);
}
