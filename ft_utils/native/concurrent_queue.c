/*
 * ConcurrentQueue: an unbounded FIFO of objects over the core queue (csrc/ftu_queue.c).
 *
 * The queue holds one strong reference per object, as a word; pop hands that reference
 * to the caller. Waiting happens in the core with the thread state detached; taking,
 * attached (see blocking.c: wait detached, take attached).
 */
#include "native.h"

static inline ftu_queue *queue_of(PyObject *op) { return ((QueueObject *)op)->queue; }

int ftu_check_scaling(PyObject *scaling, const char *type_name) {
    if (scaling == NULL || scaling == Py_None) return 0;
    if (PyBool_Check(scaling) || !PyIndex_Check(scaling)) {
        PyErr_Format(PyExc_TypeError, "%s() scaling must be an int or None, not %.200s", type_name,
                     Py_TYPE(scaling)->tp_name);
        return -1;
    }
    Py_ssize_t value = PyNumber_AsSsize_t(scaling, NULL);
    if (value == -1 && PyErr_Occurred()) return -1;
    if (value < 1) {
        PyErr_Format(PyExc_ValueError, "%s() scaling must be at least 1, not %zd", type_name, value);
        return -1;
    }
    return 0;
}

/* ConcurrentQueue(scaling=None, lock_free=False): *lock_free_given says whether lock_free
 * was passed. */
static int parse_arguments(PyObject *args, PyObject *kwargs, int *lock_free, int *lock_free_given) {
    static char *kwlist[] = {"scaling", "lock_free", NULL};
    PyObject *scaling = Py_None, *lock_free_obj = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:ConcurrentQueue", kwlist, &scaling, &lock_free_obj)) return -1;
    if (ftu_check_scaling(scaling, "ConcurrentQueue") < 0) return -1;
    *lock_free_given = lock_free_obj != NULL;
    *lock_free = lock_free_obj == NULL ? 0 : PyObject_IsTrue(lock_free_obj);
    return *lock_free < 0 ? -1 : 0;
}

static int ConcurrentQueue_init(PyObject *op, PyObject *args, PyObject *kwargs);

/* The arguments go to __new__ and __init__ alike, as for any class; each takes them as its
 * own unless a subclass overrides the other (object.__new__ and object.__init__ do the
 * same), so a subclass's own __init__ may take any arguments, and pass lock_free on to
 * super().__init__(). */
static PyObject *ConcurrentQueue_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    int lock_free = 0, given = 0;
    if (ftu_new_takes_arguments(type, ConcurrentQueue_new, ConcurrentQueue_init) &&
        parse_arguments(args, kwargs, &lock_free, &given) < 0)
        return NULL;
    QueueObject *self = (QueueObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->queue = ftu_queue_new(0, FTU_QUEUE_PREFETCH | (lock_free ? FTU_QUEUE_SPIN : 0));
    if (self->queue == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

/* Checks the arguments; lock_free, if given, sets the wait mode (a subclass's __init__
 * may pass it on to super().__init__()). */
static int ConcurrentQueue_init(PyObject *op, PyObject *args, PyObject *kwargs) {
    if (!ftu_init_takes_arguments(Py_TYPE(op), ConcurrentQueue_new, ConcurrentQueue_init)) return 0;
    int lock_free, given;
    if (parse_arguments(args, kwargs, &lock_free, &given) < 0) return -1;
    if (given) ftu_queue_set_spin(queue_of(op), lock_free);
    return 0;
}

PyObject *ftu_refuse_reduce(PyObject *op, PyObject *Py_UNUSED(unused)) {
    PyErr_Format(PyExc_TypeError, "cannot pickle '%s' object", ftu_type_name(Py_TYPE(op)));
    return NULL;
}

/* Releases every object left in q. */
void ftu_queue_release_all(ftu_queue *q) {
    uint64_t word;
    while (ftu_queue_drain(q, &word) == FTU_OK) Py_DECREF((PyObject *)(uintptr_t)word);
}

int QueueObject_traverse(PyObject *op, visitproc visit, void *arg) {
    if (queue_of(op) == NULL) return 0;
    struct ftu_visit_context context = {visit, arg};
    return ftu_queue_visit(queue_of(op), ftu_visit_object, &context);
}

int QueueObject_clear(PyObject *op) {
    if (queue_of(op) != NULL) ftu_queue_release_all(queue_of(op));
    return 0;
}

void QueueObject_dealloc(PyObject *op) {
    QueueObject *self = (QueueObject *)op;
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    if (self->weakreflist != NULL) PyObject_ClearWeakRefs(op);
    if (self->queue != NULL) {
        ftu_queue_release_all(self->queue);
        ftu_queue_free(self->queue);
        self->queue = NULL;
    }
    type->tp_free(op);
}

/* ---- push / pop ----------------------------------------------------------------------- */

static PyObject *ConcurrentQueue_push(PyObject *op, PyObject *value) {
    ftu_incref_handoff(value);
    int status = ftu_queue_push(queue_of(op), (uint64_t)(uintptr_t)value, FTU_NO_WAIT);
    if (status == FTU_OK) Py_RETURN_NONE;
    Py_DECREF(value);
    if (status == FTU_SHUTDOWN) {
        PyErr_SetNone(ftu_ShutDown);
    } else {
        PyErr_NoMemory();
    }
    return NULL;
}

struct pop_call {
    ftu_queue *queue;
    uint64_t word;
};

static int pop_take(void *arg) {
    struct pop_call *call = arg;
    return ftu_queue_pop(call->queue, &call->word, FTU_NO_WAIT);
}

static int pop_wait(void *arg, int64_t deadline_ns) {
    struct pop_call *call = arg;
    return ftu_queue_wait_pop(call->queue, deadline_ns);
}

/* The popped object (a new reference), or NULL with Empty / ShutDown / a signal's error. */
PyObject *ftu_queue_pop_object(ftu_queue *queue, int64_t deadline_ns) {
    struct pop_call call = {queue, 0};
    int status = ftu_call_taking(pop_take, pop_wait, &call, deadline_ns);
    switch (status) {
    case FTU_OK:
        return (PyObject *)(uintptr_t)call.word;
    case FTU_TIMEOUT:
        PyErr_SetNone(ftu_Empty);
        return NULL;
    case FTU_SHUTDOWN:
        PyErr_SetNone(ftu_ShutDown);
        return NULL;
    default: /* -1: a signal handler raised */
        return NULL;
    }
}

static PyObject *pop(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, const char *name) {
    static const char *const names[] = {"timeout", NULL};
    if (nargs == 0 && kwnames == NULL) return ftu_queue_pop_object(queue_of(op), FTU_WAIT_FOREVER); /* pop() */
    PyObject *timeout;
    if (ftu_parse_fastcall(args, nargs, kwnames, name, names, 0, &timeout) < 0) return NULL;
    int64_t deadline;
    if (ftu_deadline(timeout, 1, &deadline) < 0) return NULL;
    return ftu_queue_pop_object(queue_of(op), deadline);
}

static PyObject *ConcurrentQueue_pop(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    return pop(op, args, nargs, kwnames, "pop");
}

/* Keeps the object a peeked word stands for alive (called under the queue's consumer
 * lock, before another consumer can take and release it). */
static void hold_object(uint64_t word, void *arg) {
    (void)arg;
    Py_INCREF((PyObject *)(uintptr_t)word);
}

static int peek_take(void *arg) {
    struct pop_call *call = arg;
    return ftu_queue_peek(call->queue, &call->word, hold_object, NULL);
}

/* The wrapper is made before the object is taken: made after, a failure (MemoryError)
 * would lose the object, already out of the queue. So: peek at the head (holding a
 * reference), wrap it, then take it only if it is still the head; if another consumer
 * was first, drop the wrapper and look again. */
static PyObject *ConcurrentQueue_pop_local(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                                           PyObject *kwnames) {
    static const char *const names[] = {"timeout", NULL};
    int64_t deadline = FTU_WAIT_FOREVER;
    if (nargs != 0 || kwnames != NULL) {
        PyObject *timeout;
        if (ftu_parse_fastcall(args, nargs, kwnames, "pop_local", names, 0, &timeout) < 0) return NULL;
        if (ftu_deadline(timeout, 1, &deadline) < 0) return NULL;
    }
    ftu_queue *queue = queue_of(op);
    for (;;) {
        struct pop_call call = {queue, 0};
        int status = ftu_call_taking(peek_take, pop_wait, &call, deadline);
        if (status != FTU_OK) {
            if (status == FTU_TIMEOUT) PyErr_SetNone(ftu_Empty);
            else if (status == FTU_SHUTDOWN) PyErr_SetNone(ftu_ShutDown);
            return NULL; /* -1: a signal handler's exception; nothing held */
        }
        PyObject *value = (PyObject *)(uintptr_t)call.word; /* held: a reference of ours */
        PyObject *wrapper = ftu_local_wrap(value);
        if (wrapper == NULL) {
            Py_DECREF(value);
            return NULL; /* nothing taken */
        }
        status = ftu_queue_pop_if(queue, call.word);
        if (status == FTU_OK) {
            Py_DECREF(value); /* the queue's reference: the wrapper holds its own */
            Py_DECREF(value);
            return wrapper;
        }
        Py_DECREF(wrapper);
        Py_DECREF(value);
        if (status == FTU_SHUTDOWN) {
            PyErr_SetNone(ftu_ShutDown);
            return NULL;
        }
        /* FTU_TIMEOUT: another consumer took it first */
    }
}

static PyObject *ConcurrentQueue_shutdown(PyObject *op, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"immediate", NULL};
    int immediate = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|p:shutdown", kwlist, &immediate)) return NULL;
    ftu_queue_shutdown(queue_of(op), immediate);
    if (immediate) ftu_queue_release_all(queue_of(op));
    Py_RETURN_NONE;
}

static PyObject *ConcurrentQueue_size(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromLongLong(ftu_queue_size(queue_of(op)));
}

static PyObject *ConcurrentQueue_empty(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    return PyBool_FromLong(ftu_queue_size(queue_of(op)) == 0);
}

static PyObject *ConcurrentQueue_repr(PyObject *op) {
    QueueObject *self = (QueueObject *)op;
    static const char *const states[] = {"", ", shut down", ", shut down immediately"};
    return PyUnicode_FromFormat("<%s size=%lld%s%s>", ftu_type_name(Py_TYPE(op)),
                                (long long)ftu_queue_size(self->queue), ftu_queue_spins(self->queue) ? ", lock_free" : "",
                                states[ftu_queue_state(self->queue)]);
}

static PyMethodDef ConcurrentQueue_methods[] = {
    {"push", ConcurrentQueue_push, METH_O, DOC_ConcurrentQueue_push},
    {"pop", (PyCFunction)(void (*)(void))ConcurrentQueue_pop, METH_FASTCALL | METH_KEYWORDS, DOC_ConcurrentQueue_pop},
    {"pop_local", (PyCFunction)(void (*)(void))ConcurrentQueue_pop_local, METH_FASTCALL | METH_KEYWORDS,
     DOC_ConcurrentQueue_pop_local},
    {"shutdown", (PyCFunction)(void (*)(void))ConcurrentQueue_shutdown, METH_VARARGS | METH_KEYWORDS,
     DOC_ConcurrentQueue_shutdown},
    {"size", ConcurrentQueue_size, METH_NOARGS, DOC_ConcurrentQueue_size},
    {"empty", ConcurrentQueue_empty, METH_NOARGS, DOC_ConcurrentQueue_empty},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, "See PEP 585."},
    {"__reduce__", ftu_refuse_reduce, METH_NOARGS, FTU_REFUSE_REDUCE_DOC},
    {NULL, NULL, 0, NULL},
};

PyTypeObject ConcurrentQueue_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ft_utils.concurrency.ConcurrentQueue",
    .tp_basicsize = sizeof(QueueObject),
    .tp_dealloc = QueueObject_dealloc,
    .tp_repr = ConcurrentQueue_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = DOC_ConcurrentQueue,
    .tp_traverse = QueueObject_traverse,
    .tp_clear = QueueObject_clear,
    .tp_weaklistoffset = offsetof(QueueObject, weakreflist),
    .tp_methods = ConcurrentQueue_methods,
    .tp_init = ConcurrentQueue_init,
    .tp_new = ConcurrentQueue_new,
};

int concurrent_queue_module_init(PyObject *module) { return ftu_add_type(module, &ConcurrentQueue_Type); }
