/*
 * ConcurrentGatheringIterator: values inserted under keys 0, 1, 2, ... by any thread,
 * read back in key order by iterators that sleep until the next key arrives.
 *
 * The gatherer holds one strong reference per value, as a word of the core gatherer
 * (csrc/ftu_gather.c). An iterator with clear=True takes that reference over; one with
 * clear=False increfs the value while still holding `lock`, which every take holds, so
 * a concurrent clearing take cannot release the value in between. Waiting for a key
 * happens in the core with the thread state detached, without taking anything; takes
 * happen attached (see blocking.c).
 *
 * One pass (the iterator that iterator() returns) may be shared by several threads:
 * each value goes to exactly one of them, in key order, and all of them stop after
 * max_key. The pass's next key is a cell: a thread takes that key and moves the cell on
 * under `lock`, then wakes the pass's other waiters (ftu_gather_notify), who re-read it.
 */
#include "native.h"

typedef struct {
    PyObject_HEAD
    ftu_gather *gather;
    PyObject *weakreflist;
    /* Every insert() call writes this object's reference count (the call holds a
     * reference to it) from the inserting thread; the padding keeps the lock that every
     * take holds off that cache line, so inserters and iterators do not take turns on it. */
    char padding[64];
    ftu_pylock lock; /* held by every take, never while waiting */
} GathererObject;

/* One pass over keys 0..max_key, which threads may share. */
typedef struct {
    PyObject_HEAD
    PyObject *owner;    /* the ConcurrentGatheringIterator: owned, kept until the pass dies
                           (a thread may still be inside a take when another ends the pass) */
    ftu_gather *gather; /* owner's, read here so that a take does not read owner's first line */
    int64_t next_key;   /* a cell: ftu_i64_* only, changed under owner's lock */
    int64_t max_key;
    int clear;
    int local; /* yield LocalWrappers */
} GatheringPassObject;

static PyTypeObject GatheringPass_Type;

static inline ftu_gather *gather_of(PyObject *op) { return ((GathererObject *)op)->gather; }

static int Gatherer_init(PyObject *op, PyObject *args, PyObject *kwargs);

static int check_arguments(PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"scaling", NULL};
    PyObject *scaling = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:ConcurrentGatheringIterator", kwlist, &scaling)) return -1;
    return ftu_check_scaling(scaling, "ConcurrentGatheringIterator");
}

/* The arguments go to __new__ and __init__ alike (see ftu_new_takes_arguments); scaling
 * is only checked. */
static PyObject *Gatherer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (ftu_new_takes_arguments(type, Gatherer_new, Gatherer_init) && check_arguments(args, kwargs) < 0) return NULL;
    GathererObject *self = (GathererObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->gather = ftu_gather_new();
    if (self->gather == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static int Gatherer_init(PyObject *op, PyObject *args, PyObject *kwargs) {
    if (!ftu_init_takes_arguments(Py_TYPE(op), Gatherer_new, Gatherer_init)) return 0;
    return check_arguments(args, kwargs);
}

static void release_all(ftu_gather *gather) {
    int64_t key;
    uint64_t word;
    while (ftu_gather_drain(gather, &key, &word) == FTU_OK) Py_DECREF((PyObject *)(uintptr_t)word);
}

static int Gatherer_traverse(PyObject *op, visitproc visit, void *arg) {
    if (gather_of(op) == NULL) return 0;
    struct ftu_visit_context context = {visit, arg};
    return ftu_gather_visit(gather_of(op), ftu_visit_object, &context);
}

static int Gatherer_clear(PyObject *op) {
    if (gather_of(op) != NULL) release_all(gather_of(op));
    return 0;
}

static void Gatherer_dealloc(PyObject *op) {
    GathererObject *self = (GathererObject *)op;
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    if (self->weakreflist != NULL) PyObject_ClearWeakRefs(op);
    if (self->gather != NULL) {
        release_all(self->gather);
        ftu_gather_free(self->gather);
        self->gather = NULL;
    }
    type->tp_free(op);
}

/* Marks the gatherer failed (its iterators raise RuntimeError) and returns NULL with the
 * caller's exception set. */
static PyObject *fail(PyObject *op) {
    ftu_gather_fail(gather_of(op));
    return NULL;
}

/* Keyword arguments are taken only to be refused here: a call the interpreter refused
 * before reaching insert() would not fail the gatherer, and an iterator would wait for
 * the value for ever. */
static PyObject *Gatherer_insert(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        PyErr_SetString(PyExc_TypeError, "insert() takes no keyword arguments");
        return fail(op);
    }
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "insert() takes exactly 2 arguments (%zd given)", nargs);
        return fail(op);
    }
    PyObject *key_obj = args[0], *value = args[1];
    if (!PyLong_Check(key_obj)) {
        PyErr_Format(PyExc_TypeError, "insert() key must be an int, not %.200s", Py_TYPE(key_obj)->tp_name);
        return fail(op);
    }
    int overflow;
    long long key = PyLong_AsLongLongAndOverflow(key_obj, &overflow);
    if (key == -1 && PyErr_Occurred()) return fail(op);
    if (overflow || key < 0) {
        PyErr_Format(PyExc_ValueError, "insert() key must be between 0 and 2**63 - 1, not %R", key_obj);
        return fail(op);
    }
    ftu_incref_handoff(value);
    int status = ftu_gather_insert(gather_of(op), key, (uint64_t)(uintptr_t)value);
    if (status == FTU_OK) Py_RETURN_NONE;
    Py_DECREF(value);
    if (status == FTU_DUPLICATE) {
        PyErr_Format(PyExc_ValueError, "insert() key %lld was already inserted", key);
    } else {
        PyErr_NoMemory();
    }
    return fail(op);
}

/* max_key: an int (or an object with __index__, not a bool... as range() takes it) that
 * fits in int64; a negative one makes an empty pass. Keys stop at 2**63 - 1, so a
 * larger max_key could never be reached: OverflowError at once, not a pass that hangs. */
static int as_max_key(PyObject *value, const char *function, long long *max_key) {
    PyObject *index = PyNumber_Index(value);
    if (index == NULL) {
        if (PyErr_ExceptionMatches(PyExc_TypeError)) {
            PyErr_Format(PyExc_TypeError, "%s() max_key must be an int, not %.200s", function,
                         Py_TYPE(value)->tp_name);
        }
        return -1;
    }
    int overflow;
    *max_key = PyLong_AsLongLongAndOverflow(index, &overflow);
    Py_DECREF(index);
    if (*max_key == -1 && PyErr_Occurred()) return -1;
    if (overflow) {
        PyErr_Format(PyExc_OverflowError, "%s() max_key must be between -2**63 and 2**63 - 1, not %R", function,
                     value);
        return -1;
    }
    return 0;
}

static PyObject *make_pass(PyObject *op, PyObject *args, PyObject *kwargs, int local) {
    static char *kwlist[] = {"max_key", "clear", NULL};
    PyObject *max_key_obj;
    int clear = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, local ? "O|p:iterator_local" : "O|p:iterator", kwlist,
                                     &max_key_obj, &clear))
        return NULL;
    long long max_key;
    if (as_max_key(max_key_obj, local ? "iterator_local" : "iterator", &max_key) < 0) return NULL;
    GatheringPassObject *pass = PyObject_GC_New(GatheringPassObject, &GatheringPass_Type);
    if (pass == NULL) return NULL;
    pass->owner = Py_NewRef(op);
    pass->gather = gather_of(op);
    pass->next_key = 0;
    pass->max_key = max_key;
    pass->clear = clear;
    pass->local = local;
    PyObject_GC_Track(pass);
    return (PyObject *)pass;
}

static PyObject *Gatherer_iterator(PyObject *op, PyObject *args, PyObject *kwargs) {
    return make_pass(op, args, kwargs, 0);
}

static PyObject *Gatherer_iterator_local(PyObject *op, PyObject *args, PyObject *kwargs) {
    return make_pass(op, args, kwargs, 1);
}

/* ---- the pass: an iterator over keys 0..max_key ----------------------------------------- */

#define PASS_OVER FTU_SHUTDOWN /* take's status once the pass is past max_key */

struct pass_call {
    GatheringPassObject *pass;
    PyObject *value; /* set by a take that succeeds: a new reference */
};

/* Reads the pass's next key if it is there (attached, under the gatherer's lock): with
 * take, takes it (clearing it if the pass clears) and moves the pass on; without, only
 * looks (a peek), and *key says which key was read. *value gets a new reference. */
static int pass_read(GatheringPassObject *pass, int take, PyObject **value, int64_t *key) {
    GathererObject *owner = (GathererObject *)pass->owner;
    uint64_t word;
    FTU_PYLOCK_ACQUIRE(owner->lock);
    *key = ftu_i64_load_inline(&pass->next_key);
    int status = PASS_OVER;
    if (*key <= pass->max_key) {
        status = ftu_gather_take(pass->gather, *key, take && pass->clear, &word, FTU_NO_WAIT);
        if (status == FTU_OK) {
            *value = (PyObject *)(uintptr_t)word;
            if (!(take && pass->clear)) Py_INCREF(*value);
            if (take) ftu_i64_store_inline(&pass->next_key, *key + 1);
        }
    }
    FTU_PYLOCK_RELEASE(owner->lock);
    if (take && status == FTU_OK) ftu_gather_notify(pass->gather); /* threads sharing the pass move on */
    return status;
}

static int pass_take(void *arg) {
    struct pass_call *call = arg;
    int64_t key;
    return pass_read(call->pass, 1, &call->value, &key);
}

static int pass_wait(void *arg, int64_t deadline_ns) {
    struct pass_call *call = arg;
    return ftu_gather_wait(call->pass->gather, &call->pass->next_key, call->pass->max_key, deadline_ns);
}

static PyObject *pass_failed(int status) {
    if (status == FTU_FAILED) {
        PyErr_SetString(PyExc_RuntimeError,
                        "an insert into this ConcurrentGatheringIterator failed, so the values cannot all arrive");
    }
    return NULL; /* PASS_OVER: StopIteration; -1: a signal handler's exception */
}

/* For iterator_local: reads the pass's next key without taking it or moving the pass on,
 * holding a reference to the value (taken under the gatherer's lock, so that a clearing
 * take cannot release it meanwhile); call->key says which key. */
struct peek_call {
    GatheringPassObject *pass;
    PyObject *value;
    int64_t key;
};

static int pass_peek(void *arg) {
    struct peek_call *call = arg;
    return pass_read(call->pass, 0, &call->value, &call->key);
}

static int peek_wait(void *arg, int64_t deadline_ns) {
    struct peek_call *call = arg;
    return ftu_gather_wait(call->pass->gather, &call->pass->next_key, call->pass->max_key, deadline_ns);
}

/* Takes the key peeked (its value is the one peeked) and moves the pass on, if no other
 * thread did first; returns whether it did. */
static int pass_commit(struct peek_call *call) {
    GatheringPassObject *pass = call->pass;
    GathererObject *owner = (GathererObject *)pass->owner;
    /* One step of the core: a failure of the gatherer cannot come between the check and
     * the take (it did, with two takes: the key stayed in the gatherer while its
     * reference was let go). The gatherer's lock still excludes a peek's incref. */
    FTU_PYLOCK_ACQUIRE(owner->lock);
    int status = ftu_gather_advance(pass->gather, &pass->next_key, call->key, (uint64_t)(uintptr_t)call->value,
                                    pass->clear);
    FTU_PYLOCK_RELEASE(owner->lock);
    return status == FTU_OK; /* (the advance woke the threads sharing the pass) */
}

/* next() of an iterator_local pass. The wrapper is made before the value is taken (made
 * after, a failure would lose a value already out of the gatherer, or skip its key): peek,
 * wrap, then take the key if the pass is still at it; else drop the wrapper and look again. */
static PyObject *local_next(GatheringPassObject *pass) {
    for (;;) {
        struct peek_call call = {pass, NULL, 0};
        int status = ftu_call_taking(pass_peek, peek_wait, &call, FTU_WAIT_FOREVER);
        if (status != FTU_OK) return pass_failed(status);
        PyObject *wrapper = ftu_local_wrap(call.value);
        if (wrapper == NULL) {
            Py_DECREF(call.value);
            return NULL; /* nothing taken, the pass did not move */
        }
        if (pass_commit(&call)) {
            if (pass->clear) Py_DECREF(call.value); /* the gatherer's reference */
            Py_DECREF(call.value);                  /* the one peek took: the wrapper holds its own */
            return wrapper;
        }
        Py_DECREF(wrapper);
        Py_DECREF(call.value);
    }
}

static PyObject *GatheringPass_next(PyObject *op) {
    GatheringPassObject *pass = (GatheringPassObject *)op;
    if (pass->owner == NULL) return NULL; /* cleared by the collector */
    if (pass->local) return local_next(pass);
    struct pass_call call = {pass, NULL};
    int status = ftu_call_taking(pass_take, pass_wait, &call, FTU_WAIT_FOREVER);
    if (status == FTU_OK) return call.value;
    return pass_failed(status);
}

static int GatheringPass_traverse(PyObject *op, visitproc visit, void *arg) {
    Py_VISIT(((GatheringPassObject *)op)->owner);
    return 0;
}

/* Only for an unreachable pass: no thread is inside its next(). */
static int GatheringPass_clear(PyObject *op) {
    Py_CLEAR(((GatheringPassObject *)op)->owner);
    return 0;
}

static void GatheringPass_dealloc(PyObject *op) {
    PyObject_GC_UnTrack(op);
    Py_XDECREF(((GatheringPassObject *)op)->owner);
    PyObject_GC_Del(op);
}

static PyMethodDef GatheringPass_methods[] = {
    {"__reduce__", ftu_refuse_reduce, METH_NOARGS, FTU_REFUSE_REDUCE_DOC},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject GatheringPass_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ft_utils.concurrency.ConcurrentGatheringIteratorPass",
    .tp_basicsize = sizeof(GatheringPassObject),
    .tp_dealloc = GatheringPass_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .tp_traverse = GatheringPass_traverse,
    .tp_clear = GatheringPass_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = GatheringPass_next,
    .tp_methods = GatheringPass_methods,
};

static PyMethodDef Gatherer_methods[] = {
    {"insert", (PyCFunction)(void (*)(void))Gatherer_insert, METH_FASTCALL | METH_KEYWORDS,
     DOC_ConcurrentGatheringIterator_insert},
    {"iterator", (PyCFunction)(void (*)(void))Gatherer_iterator, METH_VARARGS | METH_KEYWORDS,
     DOC_ConcurrentGatheringIterator_iterator},
    {"iterator_local", (PyCFunction)(void (*)(void))Gatherer_iterator_local, METH_VARARGS | METH_KEYWORDS,
     DOC_ConcurrentGatheringIterator_iterator_local},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, "See PEP 585."},
    {"__reduce__", ftu_refuse_reduce, METH_NOARGS, FTU_REFUSE_REDUCE_DOC},
    {NULL, NULL, 0, NULL},
};

PyTypeObject ConcurrentGatheringIterator_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ft_utils.concurrency.ConcurrentGatheringIterator",
    .tp_basicsize = sizeof(GathererObject),
    .tp_dealloc = Gatherer_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = DOC_ConcurrentGatheringIterator,
    .tp_traverse = Gatherer_traverse,
    .tp_clear = Gatherer_clear,
    .tp_weaklistoffset = offsetof(GathererObject, weakreflist),
    .tp_methods = Gatherer_methods,
    .tp_init = Gatherer_init,
    .tp_new = Gatherer_new,
};

int concurrent_gathering_iterator_module_init(PyObject *module) {
    if (PyType_Ready(&GatheringPass_Type) < 0) return -1;
    return ftu_add_type(module, &ConcurrentGatheringIterator_Type);
}
