/*
 * ConcurrentGatheringIterator: values inserted under keys 0, 1, 2, ... by any thread,
 * read back in key order by iterators that sleep until the next key arrives.
 *
 * The gatherer holds one strong reference per value, as a word of the core gatherer
 * (csrc/ftu_gather.c). An iterator with clear=True takes that reference over; one with
 * clear=False increfs the value while still holding `lock`, which every take holds, so
 * a concurrent clearing take cannot release the value in between. Waiting for a key
 * happens in the core with the thread state detached, without taking anything.
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

/* One pass over keys 0..max_key. */
typedef struct {
    PyObject_HEAD
    PyObject *owner; /* the ConcurrentGatheringIterator */
    ftu_gather *gather; /* owner's, read here so that a take does not read owner's first line */
    int64_t next_key;
    int64_t max_key;
    int clear;
    int local; /* yield LocalWrappers */
} GatheringPassObject;

static PyTypeObject GatheringPass_Type;

static inline ftu_gather *gather_of(PyObject *op) { return ((GathererObject *)op)->gather; }

static PyObject *Gatherer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"scaling", NULL};
    PyObject *scaling = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:ConcurrentGatheringIterator", kwlist, &scaling)) return NULL;
    if (ftu_check_scaling(scaling, "ConcurrentGatheringIterator") < 0) return NULL;
    GathererObject *self = (GathererObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->gather = ftu_gather_new();
    if (self->gather == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
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

static PyObject *Gatherer_insert(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
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

static PyObject *make_pass(PyObject *op, PyObject *args, PyObject *kwargs, int local) {
    static char *kwlist[] = {"max_key", "clear", NULL};
    long long max_key;
    int clear = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, local ? "L|p:iterator_local" : "L|p:iterator", kwlist, &max_key,
                                     &clear))
        return NULL;
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

struct wait_call {
    ftu_gather *gather;
    int64_t key;
};

static int wait_for_key(void *arg, int64_t deadline_ns) {
    struct wait_call *call = arg;
    uint64_t ignored;
    return ftu_gather_take(call->gather, call->key, 0, &ignored, deadline_ns); /* takes nothing */
}

static PyObject *GatheringPass_next(PyObject *op) {
    GatheringPassObject *pass = (GatheringPassObject *)op;
    if (pass->owner == NULL || pass->next_key > pass->max_key) {
        Py_CLEAR(pass->owner);
        return NULL;
    }
    GathererObject *owner = (GathererObject *)pass->owner;
    PyObject *value = NULL;
    for (;;) {
        uint64_t word;
        FTU_PYLOCK_ACQUIRE(owner->lock);
        int status = ftu_gather_take(pass->gather, pass->next_key, pass->clear, &word, FTU_NO_WAIT);
        if (status == FTU_OK) {
            value = (PyObject *)(uintptr_t)word;
            if (!pass->clear) Py_INCREF(value);
        }
        FTU_PYLOCK_RELEASE(owner->lock);
        if (status == FTU_OK) break;
        if (status == FTU_TIMEOUT) {
            struct wait_call call = {pass->gather, pass->next_key};
            status = ftu_call_blocking(wait_for_key, &call, FTU_WAIT_FOREVER);
            if (status < 0) return NULL; /* a signal handler raised */
        }
        if (status == FTU_FAILED) {
            PyErr_SetString(PyExc_RuntimeError,
                            "an insert into this ConcurrentGatheringIterator failed, so the values cannot all arrive");
            return NULL;
        }
    }
    pass->next_key++;
    if (!pass->local) return value;
    PyObject *wrapper = ftu_local_wrap(value);
    Py_DECREF(value);
    return wrapper;
}

static int GatheringPass_traverse(PyObject *op, visitproc visit, void *arg) {
    Py_VISIT(((GatheringPassObject *)op)->owner);
    return 0;
}

static void GatheringPass_dealloc(PyObject *op) {
    PyObject_GC_UnTrack(op);
    Py_XDECREF(((GatheringPassObject *)op)->owner);
    PyObject_GC_Del(op);
}

static PyTypeObject GatheringPass_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ft_utils.concurrency.ConcurrentGatheringIteratorPass",
    .tp_basicsize = sizeof(GatheringPassObject),
    .tp_dealloc = GatheringPass_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .tp_traverse = GatheringPass_traverse,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = GatheringPass_next,
};

static PyMethodDef Gatherer_methods[] = {
    {"insert", (PyCFunction)(void (*)(void))Gatherer_insert, METH_FASTCALL, DOC_ConcurrentGatheringIterator_insert},
    {"iterator", (PyCFunction)(void (*)(void))Gatherer_iterator, METH_VARARGS | METH_KEYWORDS,
     DOC_ConcurrentGatheringIterator_iterator},
    {"iterator_local", (PyCFunction)(void (*)(void))Gatherer_iterator_local, METH_VARARGS | METH_KEYWORDS,
     DOC_ConcurrentGatheringIterator_iterator_local},
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
    .tp_new = Gatherer_new,
};

int concurrent_gathering_iterator_module_init(PyObject *module) {
    if (PyType_Ready(&GatheringPass_Type) < 0) return -1;
    return ftu_add_type(module, &ConcurrentGatheringIterator_Type);
}
