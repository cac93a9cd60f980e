/*
 * ConcurrentDict: a dict split into `scaling` shards by key hash.
 *
 * Each shard is a built-in dict plus a lock. Reads (d[k], get, in) take no lock of ours:
 * on the free-threaded build a dict lookup is already lock-free and returns a strong
 * reference. Every write to a shard happens under that shard's lock, so writes to
 * different shards run in parallel, and the compound operations (setdefault, pop,
 * compare_and_set, compare_and_delete) are atomic with respect to every other write.
 *
 * Why our own lock and not a critical section on the shard dict: the dict functions we
 * call take that critical section themselves, and 3.13 does not support nesting one on
 * the same object (the inner one suspends the outer, which would break atomicity).
 *
 * User code can still run while a shard lock is held: a key's __eq__ during the lookup,
 * the __del__ of a removed key, a finalizer the collector runs there. It may write to this
 * dict or another one, so two rules keep the locks free of deadlock whatever it does:
 *  - a value that a write replaces or removes is released after the lock is, so the
 *    common case (a value's __del__) runs under no lock of ours;
 *  - the shard locks a thread holds form a stack (shard_hold, below). Taking a shard the
 *    thread already holds goes through (recursion); a thread that has to *wait* for a
 *    shard lock first releases ("suspends") every shard lock it holds, and each is
 *    taken back, innermost first, when the operations nested inside it have finished.
 *    So no thread ever waits for a shard lock while holding one: no cycle of waiters.
 *    This is what CPython's critical sections do; the price is theirs too: an operation
 *    whose user code had to wait for another shard is not atomic across that wait.
 */
#include "native.h"

#include <stdatomic.h>

#define DEFAULT_SCALING 17
#define MAX_SCALING 65536

/* One shard, on its own cache line so that writers of neighbouring shards do not
 * contend for the line. */
union ftu_dict_shard {
    struct {
        PyObject *dict;              /* owned; never replaced while the object lives */
        ftu_mutex lock;              /* held by every write to dict */
        _Atomic(uintptr_t) owner;    /* thread holding lock, 0 when free or suspended */
    } s;
    char pad[64]; /* a power of two: the allocation rounds to it */
};
typedef union ftu_dict_shard ftu_dict_shard;

static inline ConcurrentDictObject *as_cd(PyObject *op) { return (ConcurrentDictObject *)op; }

static inline ftu_dict_shard *shards(ConcurrentDictObject *self) { return self->shards; }

/* Multiply-shift instead of a modulo (a 64-bit division costs more than the rest of a
 * lookup). The multiplier mixes every bit of the hash into the top 32, so int keys
 * 0, 1, 2, ... spread over all shards; the shard's dict then indexes by the low bits. */
static inline ftu_dict_shard *shard_of(ConcurrentDictObject *self, Py_hash_t hash) {
    uint64_t mixed = ((uint64_t)hash * UINT64_C(0x9E3779B97F4A7C15)) >> 32;
    return &shards(self)[(mixed * (uint64_t)self->nshards) >> 32];
}

/* The shard that holds key, or NULL with the error of key's __hash__. */
static inline ftu_dict_shard *shard_for_key(ConcurrentDictObject *self, PyObject *key) {
    Py_hash_t hash = PyObject_Hash(key);
    return hash == -1 ? NULL : shard_of(self, hash);
}

/* The identity of the running thread, cheaply: on 3.13 the same inline function the
 * reference counting of the free-threaded build uses. */
static inline uintptr_t thread_id(void) {
#if PY_VERSION_HEX >= 0x030D0000
    return _Py_ThreadId();
#else
    return (uintptr_t)PyThreadState_Get();
#endif
}

/* One shard lock taken by the running thread, in the frame of the function that took it.
 * The thread's entries form a stack, innermost on top. An entry that owns the mutex is
 * "held"; one whose shard the thread already held when it was pushed (recursion) owns
 * nothing; suspension makes every entry own nothing until it is taken back. */
typedef struct shard_hold {
    ftu_dict_shard *shard;
    struct shard_hold *outer;
    int owns; /* this entry took the mutex and has not released it */
} shard_hold;

/* The innermost shard lock of this thread (of any ConcurrentDict), or NULL. */
static _Thread_local shard_hold *held_top;

static void take_mutex(ftu_dict_shard *shard, shard_hold *hold, uintptr_t me) {
    ftu_mutex_lock(&shard->s.lock);
    atomic_store_explicit(&shard->s.owner, me, memory_order_relaxed);
    hold->owns = 1;
}

static void release_mutex(shard_hold *hold) {
    atomic_store_explicit(&hold->shard->s.owner, 0, memory_order_relaxed);
    hold->owns = 0;
    ftu_mutex_unlock(&hold->shard->s.lock);
}

/* Takes shard's lock for the running thread and pushes hold. Never waits while holding
 * a shard lock: if the mutex is busy, every lock of the thread is suspended first. */
static void shard_lock(ftu_dict_shard *shard, shard_hold *hold) {
    uintptr_t me = thread_id();
    hold->shard = shard;
    hold->outer = held_top;
    hold->owns = 0;
    if (atomic_load_explicit(&shard->s.owner, memory_order_relaxed) != me) {
        if (ftu_mutex_trylock(&shard->s.lock)) {
            atomic_store_explicit(&shard->s.owner, me, memory_order_relaxed);
            hold->owns = 1;
        } else {
            for (shard_hold *h = held_top; h != NULL; h = h->outer) {
                if (h->owns) release_mutex(h);
            }
            take_mutex(shard, hold, me);
        }
    }
    held_top = hold;
}

/* Pops hold (the innermost entry) and releases its lock if it owns it. If the entry below
 * was suspended meanwhile, takes it back before returning to its operation: every entry
 * below that one is suspended too, so this wait holds no lock of ours either. */
static void shard_unlock(shard_hold *hold) {
    if (hold->owns) release_mutex(hold);
    held_top = hold->outer;
    shard_hold *outer = held_top;
    if (outer != NULL) {
        uintptr_t me = thread_id();
        if (atomic_load_explicit(&outer->shard->s.owner, memory_order_relaxed) != me) take_mutex(outer->shard, outer, me);
    }
}

static void set_key_error(PyObject *key) {
    PyObject *args = PyTuple_Pack(1, key); /* so a tuple key is not taken as the args */
    if (args != NULL) {
        PyErr_SetObject(PyExc_KeyError, args);
        Py_DECREF(args);
    }
}

/* ---- fork ------------------------------------------------------------------------------- *
 * A shard lock may be held while Python code runs (a key's __eq__): under a GIL another
 * thread may run and fork meanwhile, and on the free-threaded build a fork stops every
 * thread at its next safe point, such as one inside that __eq__. fork() copies only the
 * calling thread, so in the child the lock would stay held by a thread that is not there,
 * and the next write to that shard would wait for ever. So every live dict is on a list,
 * and in the child (os.register_at_fork, see blocking.c) every shard lock held by another
 * thread than the one that forked is let go. Its dict is whole: the thread was stopped
 * in user code called by a dict operation, or before it, never inside one. A lock the
 * forking thread holds itself (it forked from a key's __eq__) stays held. */

static ftu_dict_link live_dicts = {&live_dicts, &live_dicts};
static ftu_pylock live_dicts_lock;

static void live_add(ConcurrentDictObject *self) {
    FTU_PYLOCK_ACQUIRE(live_dicts_lock);
    self->live.prev = &live_dicts;
    self->live.next = live_dicts.next;
    live_dicts.next->prev = &self->live;
    live_dicts.next = &self->live;
    FTU_PYLOCK_RELEASE(live_dicts_lock);
}

static void live_remove(ConcurrentDictObject *self) {
    if (self->live.next == NULL) return; /* never added */
    FTU_PYLOCK_ACQUIRE(live_dicts_lock);
    self->live.prev->next = self->live.next;
    self->live.next->prev = self->live.prev;
    FTU_PYLOCK_RELEASE(live_dicts_lock);
    self->live.prev = self->live.next = NULL;
}

/* Lets go of shard's lock if a thread other than `me` holds it (the child has no other
 * thread). */
static void free_if_held_by_another(ftu_dict_shard *shard, uintptr_t me) {
    uintptr_t owner = atomic_load_explicit(&shard->s.owner, memory_order_relaxed);
    if (owner == me && owner != 0) return; /* the forking thread's: it may be inside a write */
#ifdef Py_GIL_DISABLED
    /* The shard dict's own lock (its critical sections) too. A thread gives up its
     * critical sections whenever it detaches, so none is held by a thread stopped for the
     * fork, except one handed, as it was released, to a thread that had waited for it
     * detached and was stopped while attaching again, before its dict operation began
     * (CPython's PyMutex hands a lock over to a waiter after 1 ms; seen: a child stuck in
     * PyDict_Copy of a shard, about 1 fork in 200 with 3 threads writing). */
    if (shard->s.dict != NULL) shard->s.dict->ob_mutex._bits = 0;
#endif
#if PY_VERSION_HEX >= 0x030D0000
    if (shard->s.lock._bits == 0) return;
    atomic_store_explicit(&shard->s.owner, 0, memory_order_relaxed);
    shard->s.lock._bits = 0; /* locked, maybe with parked waiters: none of them is here */
#else
    if (ftu_mutex_trylock(&shard->s.lock)) { /* free */
        ftu_mutex_unlock(&shard->s.lock);
        return;
    }
    atomic_store_explicit(&shard->s.owner, 0, memory_order_relaxed);
    ftu_mutex_unlock(&shard->s.lock); /* a semaphore: any thread may release it */
#endif
}

void ftu_dict_after_fork_child(void) {
    memset(&live_dicts_lock, 0, sizeof(live_dicts_lock)); /* its holder, if any, is not here */
    uintptr_t me = thread_id();
    for (ftu_dict_link *link = live_dicts.next; link != &live_dicts; link = link->next) {
        ConcurrentDictObject *self = (ConcurrentDictObject *)((char *)link - offsetof(ConcurrentDictObject, live));
        for (Py_ssize_t i = 0; i < self->nshards; i++) free_if_held_by_another(&shards(self)[i], me);
    }
}

/* ---- life cycle ----------------------------------------------------------------------- */

static ConcurrentDictObject *alloc_dict(PyTypeObject *type, Py_ssize_t nshards, int with_dicts) {
    ConcurrentDictObject *self = (ConcurrentDictObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    /* One spare shard's worth of bytes to start the array on a cache-line boundary. */
    self->shards_memory = PyMem_Calloc((size_t)nshards + 1, sizeof(ftu_dict_shard));
    if (self->shards_memory == NULL) {
        Py_DECREF(self);
        PyErr_NoMemory();
        return NULL;
    }
    uintptr_t start = ((uintptr_t)self->shards_memory + sizeof(ftu_dict_shard) - 1) & ~(uintptr_t)(sizeof(ftu_dict_shard) - 1);
    self->shards = (ftu_dict_shard *)start;
    for (Py_ssize_t i = 0; i < nshards; i++) {
        ftu_dict_shard *shard = &self->shards[i];
        if (ftu_mutex_init(&shard->s.lock) < 0) {
            Py_DECREF(self);
            return NULL;
        }
        self->nshards = i + 1; /* dealloc finalises exactly the shards initialised */
        if (with_dicts && (shard->s.dict = PyDict_New()) == NULL) {
            Py_DECREF(self);
            return NULL;
        }
    }
    live_add(self);
    return self;
}

static PyObject *ConcurrentDict_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"scaling", NULL};
    PyObject *scaling_obj = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:ConcurrentDict", kwlist, &scaling_obj)) return NULL;
    Py_ssize_t scaling = DEFAULT_SCALING;
    if (scaling_obj != NULL) {
        if (PyBool_Check(scaling_obj) || !PyIndex_Check(scaling_obj)) {
            PyErr_Format(PyExc_TypeError, "ConcurrentDict() scaling must be an int, not %.200s",
                         Py_TYPE(scaling_obj)->tp_name);
            return NULL;
        }
        scaling = PyNumber_AsSsize_t(scaling_obj, NULL);
        if (scaling == -1 && PyErr_Occurred()) return NULL;
        if (scaling < 1 || scaling > MAX_SCALING) {
            PyErr_Format(PyExc_ValueError, "ConcurrentDict() scaling must be between 1 and %d, not %zd",
                         MAX_SCALING, scaling);
            return NULL;
        }
    }
    return (PyObject *)alloc_dict(type, scaling, 1);
}

static int ConcurrentDict_traverse(PyObject *op, visitproc visit, void *arg) {
    ConcurrentDictObject *self = as_cd(op);
    for (Py_ssize_t i = 0; i < self->nshards; i++) Py_VISIT(shards(self)[i].s.dict);
    return 0;
}

/* Only the collector calls this, on an unreachable object: no thread is inside one of
 * its methods, so the shard locks are free and not needed. */
static int ConcurrentDict_clear(PyObject *op) {
    ConcurrentDictObject *self = as_cd(op);
    for (Py_ssize_t i = 0; i < self->nshards; i++) {
        if (shards(self)[i].s.dict != NULL) PyDict_Clear(shards(self)[i].s.dict);
    }
    return 0;
}

static void ConcurrentDict_dealloc(PyObject *op) {
    ConcurrentDictObject *self = as_cd(op);
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    live_remove(self);
    if (self->weakreflist != NULL) PyObject_ClearWeakRefs(op);
    if (self->shards != NULL) {
        for (Py_ssize_t i = 0; i < self->nshards; i++) {
            Py_CLEAR(shards(self)[i].s.dict);
            ftu_mutex_fini(&shards(self)[i].s.lock);
        }
        self->shards = NULL;
    }
    PyMem_Free(self->shards_memory);
    self->shards_memory = NULL;
    type->tp_free(op);
}

/* ---- reads (lock-free) ------------------------------------------------------------------ */

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

static PyObject *ConcurrentDict_subscript(PyObject *op, PyObject *key) {
    ftu_dict_shard *shard = shard_for_key(as_cd(op), key);
    if (shard == NULL) return NULL;
    PyObject *value;
    int found = PyDict_GetItemRef(shard->s.dict, key, &value);
    return found == 0 ? missing_key(op, key) : value;
}

static int ConcurrentDict_contains(PyObject *op, PyObject *key) {
    ftu_dict_shard *shard = shard_for_key(as_cd(op), key);
    return shard == NULL ? -1 : PyDict_Contains(shard->s.dict, key);
}

static Py_ssize_t ConcurrentDict_length(PyObject *op) {
    ConcurrentDictObject *self = as_cd(op);
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < self->nshards; i++) total += PyDict_Size(shards(self)[i].s.dict);
    return total;
}

static PyObject *ConcurrentDict_get(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "get expected 1 or 2 arguments, got %zd", nargs);
        return NULL;
    }
    ftu_dict_shard *shard = shard_for_key(as_cd(op), args[0]);
    if (shard == NULL) return NULL;
    PyObject *value;
    int found = PyDict_GetItemRef(shard->s.dict, args[0], &value);
    if (found == 0) return Py_NewRef(nargs == 2 ? args[1] : Py_None);
    return value;
}

/* ---- writes (under the shard lock) ------------------------------------------------------ */

/* Every write keeps a reference to the value it replaces or removes (`old`) and releases
 * it after unlocking: that value's __del__ may write to this dict. */
static int ConcurrentDict_ass_subscript(PyObject *op, PyObject *key, PyObject *value) {
    ftu_dict_shard *shard = shard_for_key(as_cd(op), key);
    if (shard == NULL) return -1;
    PyObject *old;
    int result;
    shard_hold hold;
    shard_lock(shard, &hold);
    if (value != NULL) {
        /* One lookup to insert a new key; a present one is replaced by a second. */
        result = PyDict_SetDefaultRef(shard->s.dict, key, value, &old);
        if (result > 0) result = PyDict_SetItem(shard->s.dict, key, value);
    } else {
        result = PyDict_Pop(shard->s.dict, key, &old);
    }
    shard_unlock(&hold);
    Py_XDECREF(old);
    if (result == 0 && value == NULL) {
        set_key_error(key);
        return -1;
    }
    return result < 0 ? -1 : 0;
}

static PyObject *ConcurrentDict_pop(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "pop expected 1 or 2 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *key = args[0];
    ftu_dict_shard *shard = shard_for_key(as_cd(op), key);
    if (shard == NULL) return NULL;
    PyObject *value;
    shard_hold hold;
    shard_lock(shard, &hold);
    int found = PyDict_Pop(shard->s.dict, key, &value); /* value: ours, released by the caller */
    shard_unlock(&hold);
    if (found == 0) {
        if (nargs == 2) return Py_NewRef(args[1]);
        set_key_error(key);
    }
    return value;
}

static PyObject *ConcurrentDict_setdefault(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 1 || nargs > 2) {
        PyErr_Format(PyExc_TypeError, "setdefault expected 1 or 2 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *key = args[0], *default_value = nargs == 2 ? args[1] : Py_None;
    ftu_dict_shard *shard = shard_for_key(as_cd(op), key);
    if (shard == NULL) return NULL;
    PyObject *value;
    /* Lock-free fast path: most calls find the key. */
    int found = PyDict_GetItemRef(shard->s.dict, key, &value);
    if (found != 0) return value;
    shard_hold hold;
    shard_lock(shard, &hold);
    PyDict_SetDefaultRef(shard->s.dict, key, default_value, &value);
    shard_unlock(&hold);
    return value;
}

/* If key's value is expected, store value (NULL: delete key), as one step under the
 * shard lock. True if it did, False if not (also when key is absent). */
static PyObject *compare_and(PyObject *op, PyObject *key, PyObject *expected, PyObject *value) {
    ftu_dict_shard *shard = shard_for_key(as_cd(op), key);
    if (shard == NULL) return NULL;
    PyObject *current; /* the value replaced or removed, if it is expected */
    shard_hold hold;
    shard_lock(shard, &hold);
    int result = PyDict_GetItemRef(shard->s.dict, key, &current);
    if (result > 0) {
        result = current == expected;
        if (result && (value ? PyDict_SetItem(shard->s.dict, key, value) : PyDict_DelItem(shard->s.dict, key)) < 0)
            result = -1;
    }
    shard_unlock(&hold);
    Py_XDECREF(current);
    return result < 0 ? NULL : PyBool_FromLong(result);
}

static PyObject *ConcurrentDict_compare_and_set(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "compare_and_set expected 3 arguments, got %zd", nargs);
        return NULL;
    }
    return compare_and(op, args[0], args[1], args[2]);
}

static PyObject *ConcurrentDict_compare_and_delete(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "compare_and_delete expected 2 arguments, got %zd", nargs);
        return NULL;
    }
    return compare_and(op, args[0], args[1], NULL);
}

static PyObject *ConcurrentDict_clear_method(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    ConcurrentDictObject *self = as_cd(op);
    /* Copies keep the removed keys and values alive until every shard is cleared: their
     * finalizers run after clear() (a write they make is not wiped by it). */
    PyObject **removed = PyMem_Calloc((size_t)self->nshards, sizeof(PyObject *));
    if (removed == NULL) return PyErr_NoMemory();
    Py_ssize_t done = 0;
    for (; done < self->nshards; done++) {
        ftu_dict_shard *shard = &shards(self)[done];
        shard_hold hold;
        shard_lock(shard, &hold);
        removed[done] = PyDict_Copy(shard->s.dict);
        if (removed[done] != NULL) PyDict_Clear(shard->s.dict);
        shard_unlock(&hold);
        if (removed[done] == NULL) break;
    }
    for (Py_ssize_t i = 0; i < done; i++) Py_DECREF(removed[i]);
    PyMem_Free(removed);
    if (done < self->nshards) return NULL;
    Py_RETURN_NONE;
}

/* ---- whole-dict operations ------------------------------------------------------------- */

static int is_concurrent_dict(PyObject *op) { return PyObject_TypeCheck(op, &ConcurrentDict_Type); }

/* A copy of shard's dict, taken under its lock. Copying may run a key's __eq__ (when the
 * copy is built by inserting, with keys whose hashes collide), and under a GIL another
 * thread may then write to the shard: without the lock the copy would fail with
 * "dict mutated during update" (seen with 2 writers and as_dict, GIL CPython 3.11). */
static PyObject *shard_copy(ftu_dict_shard *shard) {
    shard_hold hold;
    shard_lock(shard, &hold);
    PyObject *copy = PyDict_Copy(shard->s.dict);
    shard_unlock(&hold);
    return copy;
}

static PyObject *ConcurrentDict_as_dict(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    ConcurrentDictObject *self = as_cd(op);
    PyObject *result = PyDict_New();
    if (result == NULL) return NULL;
    for (Py_ssize_t i = 0; i < self->nshards; i++) {
        /* Each shard as it is at one instant, merged from a private copy (the merge can
         * run a key's __eq__ too, and no other thread sees the copy). */
        PyObject *part = shard_copy(&shards(self)[i]);
        if (part == NULL || PyDict_Update(result, part) < 0) {
            Py_XDECREF(part);
            Py_DECREF(result);
            return NULL;
        }
        Py_DECREF(part);
    }
    return result;
}

/* Stores every pair of items_dict, a dict of our own that no other code can reach (so
 * walking it while user code runs, a key's __eq__ or a replaced value's __del__, is
 * safe; its references stay valid). */
static int set_all(PyObject *op, PyObject *items_dict) {
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(items_dict, &pos, &key, &value)) {
        if (ConcurrentDict_ass_subscript(op, key, value) < 0) return -1;
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

static PyObject *ConcurrentDict_copy(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    ConcurrentDictObject *self = as_cd(op);
    ConcurrentDictObject *copy = alloc_dict(&ConcurrentDict_Type, self->nshards, 0);
    if (copy == NULL) return NULL;
    for (Py_ssize_t i = 0; i < self->nshards; i++) {
        /* Same shard count, so every key belongs to the same shard in the copy. */
        if ((shards(copy)[i].s.dict = shard_copy(&shards(self)[i])) == NULL) {
            Py_DECREF(copy);
            return NULL;
        }
    }
    return (PyObject *)copy;
}

/* What a snapshot of a shard lists. */
enum { SNAP_KEYS, SNAP_VALUES, SNAP_ITEMS };

static PyObject *str_values, *str_items; /* "values", "items", interned */

/* Appends to list the keys, values or (key, value) items of dict, as they are at one
 * instant; -1 with an error. On 3.13+ list.extend of the dict or of its view, which holds
 * both objects' critical sections: not PyDict_Keys and co there, whose PyList_New(n) on
 * the free-threaded 3.13 releases a half-made list (a crash) when memory runs out. */
static int extend_snapshot(PyObject *list, PyObject *dict, int what) {
#if PY_VERSION_HEX >= 0x030D0000
    if (what == SNAP_KEYS) return PyList_Extend(list, dict);
    PyObject *view = PyObject_CallMethodNoArgs(dict, what == SNAP_VALUES ? str_values : str_items);
    if (view == NULL) return -1;
    int result = PyList_Extend(list, view);
    Py_DECREF(view);
    return result;
#else
    PyObject *part = what == SNAP_KEYS ? PyDict_Keys(dict) : what == SNAP_VALUES ? PyDict_Values(dict) : PyDict_Items(dict);
    if (part == NULL) return -1;
    int result = PyList_SetSlice(list, PY_SSIZE_T_MAX, PY_SSIZE_T_MAX, part);
    Py_DECREF(part);
    return result;
#endif
}

static PyObject *snapshot_list(PyObject *op, int what) {
    ConcurrentDictObject *self = as_cd(op);
    PyObject *result = PyList_New(0);
    if (result == NULL) return NULL;
    for (Py_ssize_t i = 0; i < self->nshards; i++) {
        if (extend_snapshot(result, shards(self)[i].s.dict, what) < 0) {
            Py_DECREF(result);
            return NULL;
        }
    }
    return result;
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
    return Py_BuildValue("O(On)NON", copyreg_newobj, (PyObject *)Py_TYPE(op), as_cd(op)->nshards, state, Py_None,
                         iterator);
}

static PyObject *ConcurrentDict_get_scaling(PyObject *op, void *Py_UNUSED(closure)) {
    return PyLong_FromSsize_t(as_cd(op)->nshards);
}

/* ---- iteration: one shard snapshot at a time -------------------------------------------- */

/* Iterator over the keys of a ConcurrentDict: walks the shards in order and takes a
 * snapshot of each shard's keys when it reaches it, so writes by other threads never
 * break it (weakly consistent: a key present throughout is seen exactly once).
 *
 * Threads may share one iterator: its fields change only under its lock, which is never
 * held across anything that runs Python code or waits (under the GIL those short steps
 * are atomic by themselves and the lock compiles away). Each key of a snapshot is handed
 * out once; the snapshot of the next shard is taken outside the lock, and when several
 * threads take it at once, the first to come back installs it and the others drop
 * theirs, so every shard is walked once. */
typedef struct {
    PyObject_HEAD
    ftu_pylock lock;
    PyObject *dict;     /* the ConcurrentDict, owned; NULL once exhausted */
    Py_ssize_t shard;   /* index of the shard the snapshot came from */
    PyObject *snapshot; /* list of that shard's keys, owned, or NULL */
    Py_ssize_t pos;     /* next index in snapshot */
} ConcurrentDictIteratorObject;

static PyTypeObject ConcurrentDictIterator_Type;

static PyObject *ConcurrentDict_iter(PyObject *op) {
    ConcurrentDictIteratorObject *it = PyObject_GC_New(ConcurrentDictIteratorObject, &ConcurrentDictIterator_Type);
    if (it == NULL) return NULL;
    memset(&it->lock, 0, sizeof(it->lock));
    it->dict = Py_NewRef(op);
    it->shard = -1;
    it->snapshot = NULL;
    it->pos = 0;
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

static PyObject *ConcurrentDictIterator_next(PyObject *op) {
    ConcurrentDictIteratorObject *it = (ConcurrentDictIteratorObject *)op;
    for (;;) {
        /* Under the lock: take the next key, or see which shard comes next. What the
         * iterator lets go of is released after the lock. */
        PyObject *key = NULL, *dict = NULL, *dropped_dict = NULL, *dropped_keys = NULL;
        FTU_PYLOCK_ACQUIRE(it->lock);
        Py_ssize_t next_shard = it->shard + 1;
        if (it->snapshot != NULL && it->pos < PyList_GET_SIZE(it->snapshot)) {
            key = Py_NewRef(PyList_GET_ITEM(it->snapshot, it->pos++));
        } else if (it->dict != NULL && next_shard < as_cd(it->dict)->nshards) {
            dict = Py_NewRef(it->dict);
        } else { /* every shard walked */
            dropped_dict = it->dict;
            dropped_keys = it->snapshot;
            it->dict = it->snapshot = NULL;
        }
        FTU_PYLOCK_RELEASE(it->lock);
        Py_XDECREF(dropped_dict);
        Py_XDECREF(dropped_keys);
        if (dict == NULL) return key; /* a key, or NULL at the end */

        PyObject *fresh = PyList_New(0);
        if (fresh != NULL && extend_snapshot(fresh, shards(as_cd(dict))[next_shard].s.dict, SNAP_KEYS) < 0)
            Py_CLEAR(fresh);
        Py_DECREF(dict);
        if (fresh == NULL) return NULL;
        FTU_PYLOCK_ACQUIRE(it->lock);
        if (it->dict != NULL && it->shard + 1 == next_shard) { /* first back: install it */
            dropped_keys = it->snapshot;
            it->snapshot = fresh;
            it->shard = next_shard;
            it->pos = 0;
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
    Py_VISIT(it->snapshot);
    return 0;
}

static void ConcurrentDictIterator_dealloc(PyObject *op) {
    ConcurrentDictIteratorObject *it = (ConcurrentDictIteratorObject *)op;
    PyObject_GC_UnTrack(op);
    Py_XDECREF(it->dict);
    Py_XDECREF(it->snapshot);
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
};

int concurrent_dict_module_init(PyObject *module) {
    if (str_missing == NULL && (str_missing = PyUnicode_InternFromString("__missing__")) == NULL) return -1;
    if (str_values == NULL && (str_values = PyUnicode_InternFromString("values")) == NULL) return -1;
    if (str_items == NULL && (str_items = PyUnicode_InternFromString("items")) == NULL) return -1;
    if (copyreg_newobj == NULL) {
        PyObject *copyreg = PyImport_ImportModule("copyreg");
        copyreg_newobj = copyreg == NULL ? NULL : PyObject_GetAttrString(copyreg, "__newobj__");
        Py_XDECREF(copyreg);
        if (copyreg_newobj == NULL) return -1;
    }
    if (PyType_Ready(&ConcurrentDictIterator_Type) < 0 || PyType_Ready(&ConcurrentDict_Type) < 0) return -1;
    /* Not reversible: the order is by shard, there is no insertion order to reverse.
     * None, as for any Python class, so that reversed() raises TypeError instead of
     * trying the sequence protocol, and collections.abc.Reversible says no. */
    if (PyDict_SetItemString(ConcurrentDict_Type.tp_dict, "__reversed__", Py_None) < 0) return -1;
    PyType_Modified(&ConcurrentDict_Type);
    return ftu_add_type(module, &ConcurrentDict_Type);
}
