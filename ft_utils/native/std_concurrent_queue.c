/*
 * StdConcurrentQueue: queue.Queue's API over the core queue, with FIFO order and maxsize
 * exact (the core counts free places with the same claim-then-take scheme as items) and
 * the unfinished-task count kept by the core (FTU_QUEUE_TASKS).
 */
#include "native.h"

static inline ftu_queue *queue_of(PyObject *op) { return ((QueueObject *)op)->queue; }

static int as_maxsize(PyObject *value, int64_t *maxsize) {
    if (!PyLong_Check(value)) {
        PyErr_Format(PyExc_TypeError, "maxsize must be an int, not %.200s", Py_TYPE(value)->tp_name);
        return -1;
    }
    int overflow;
    long long n = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (n == -1 && PyErr_Occurred()) return -1;
    *maxsize = overflow > 0 ? 0 : (overflow < 0 || n < 0 ? 0 : n); /* <= 0 or huge: unbounded */
    return 0;
}

static PyObject *StdConcurrentQueue_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"maxsize", NULL};
    PyObject *maxsize_obj = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:StdConcurrentQueue", kwlist, &maxsize_obj)) return NULL;
    int64_t maxsize = 0;
    if (maxsize_obj != NULL && as_maxsize(maxsize_obj, &maxsize) < 0) return NULL;
    QueueObject *self = (QueueObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->queue = ftu_queue_new(maxsize, FTU_QUEUE_TASKS | FTU_QUEUE_PREFETCH);
    if (self->queue == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

/* block (truth value, default True) and timeout into a deadline. */
static int deadline_of(PyObject *block, PyObject *timeout, int64_t *deadline) {
    int blocking = block == NULL ? 1 : PyObject_IsTrue(block);
    if (blocking < 0) return -1;
    return ftu_deadline(timeout, blocking, deadline);
}

struct push_call {
    ftu_queue *queue;
    uint64_t word;
};

static int push_op(void *arg, int64_t deadline_ns) {
    struct push_call *call = arg;
    return ftu_queue_push(call->queue, call->word, deadline_ns);
}

static PyObject *put(PyObject *op, PyObject *item, int64_t deadline) {
    ftu_incref_handoff(item);
    struct push_call call = {queue_of(op), (uint64_t)(uintptr_t)item};
    int status = ftu_call_blocking(push_op, &call, deadline);
    if (status == FTU_OK) Py_RETURN_NONE;
    Py_DECREF(item);
    if (status == FTU_TIMEOUT) {
        PyErr_SetNone(ftu_Full);
    } else if (status == FTU_SHUTDOWN) {
        PyErr_SetNone(ftu_ShutDown);
    } else if (status == FTU_NO_MEMORY) {
        PyErr_NoMemory();
    }
    return NULL;
}

static PyObject *StdConcurrentQueue_put(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = {"item", "block", "timeout", NULL};
    PyObject *values[3];
    if (ftu_parse_fastcall(args, nargs, kwnames, "put", names, 1, values) < 0) return NULL;
    int64_t deadline;
    if (deadline_of(values[1], values[2], &deadline) < 0) return NULL;
    return put(op, values[0], deadline);
}

static PyObject *StdConcurrentQueue_put_nowait(PyObject *op, PyObject *item) { return put(op, item, FTU_NO_WAIT); }

static PyObject *StdConcurrentQueue_get(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = {"block", "timeout", NULL};
    PyObject *values[2];
    if (ftu_parse_fastcall(args, nargs, kwnames, "get", names, 0, values) < 0) return NULL;
    int64_t deadline;
    if (deadline_of(values[0], values[1], &deadline) < 0) return NULL;
    return ftu_queue_pop_object(queue_of(op), deadline);
}

static PyObject *StdConcurrentQueue_get_nowait(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    return ftu_queue_pop_object(queue_of(op), FTU_NO_WAIT);
}

static PyObject *StdConcurrentQueue_qsize(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromLongLong(ftu_queue_size(queue_of(op)));
}

static PyObject *StdConcurrentQueue_empty(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    return PyBool_FromLong(ftu_queue_size(queue_of(op)) == 0);
}

static PyObject *StdConcurrentQueue_full(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    int64_t maxsize = ftu_queue_capacity(queue_of(op));
    return PyBool_FromLong(maxsize > 0 && ftu_queue_size(queue_of(op)) >= maxsize);
}

static PyObject *StdConcurrentQueue_task_done(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    if (ftu_queue_task_done(queue_of(op)) == FTU_TOO_MANY) {
        PyErr_SetString(PyExc_ValueError, "task_done() called too many times");
        return NULL;
    }
    Py_RETURN_NONE;
}

static int join_op(void *arg, int64_t deadline_ns) { return ftu_queue_join(arg, deadline_ns); }

static PyObject *StdConcurrentQueue_join(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    if (ftu_call_blocking(join_op, queue_of(op), FTU_WAIT_FOREVER) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *StdConcurrentQueue_shutdown(PyObject *op, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"immediate", NULL};
    int immediate = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|p:shutdown", kwlist, &immediate)) return NULL;
    ftu_queue_shutdown(queue_of(op), immediate);
    if (immediate) ftu_queue_release_all(queue_of(op)); /* also ends their tasks */
    Py_RETURN_NONE;
}

static PyObject *StdConcurrentQueue_get_maxsize(PyObject *op, void *Py_UNUSED(closure)) {
    return PyLong_FromLongLong(ftu_queue_capacity(queue_of(op)));
}

static int StdConcurrentQueue_set_maxsize(PyObject *op, PyObject *value, void *Py_UNUSED(closure)) {
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete maxsize");
        return -1;
    }
    int64_t maxsize;
    if (as_maxsize(value, &maxsize) < 0) return -1;
    ftu_queue_set_capacity(queue_of(op), maxsize);
    return 0;
}

static PyObject *StdConcurrentQueue_get_unfinished_tasks(PyObject *op, void *Py_UNUSED(closure)) {
    return PyLong_FromLongLong(ftu_queue_unfinished(queue_of(op)));
}

static PyObject *StdConcurrentQueue_get_is_shutdown(PyObject *op, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(ftu_queue_state(queue_of(op)) != FTU_QUEUE_OPEN);
}

static PyObject *StdConcurrentQueue_repr(PyObject *op) {
    return PyUnicode_FromFormat("<%s maxsize=%lld qsize=%lld%s>", ftu_type_name(Py_TYPE(op)),
                                (long long)ftu_queue_capacity(queue_of(op)), (long long)ftu_queue_size(queue_of(op)),
                                ftu_queue_state(queue_of(op)) != FTU_QUEUE_OPEN ? " shut down" : "");
}

static PyMethodDef StdConcurrentQueue_methods[] = {
    {"put", (PyCFunction)(void (*)(void))StdConcurrentQueue_put, METH_FASTCALL | METH_KEYWORDS,
     DOC_StdConcurrentQueue_put},
    {"get", (PyCFunction)(void (*)(void))StdConcurrentQueue_get, METH_FASTCALL | METH_KEYWORDS,
     DOC_StdConcurrentQueue_get},
    {"put_nowait", StdConcurrentQueue_put_nowait, METH_O, DOC_StdConcurrentQueue_put_nowait},
    {"get_nowait", StdConcurrentQueue_get_nowait, METH_NOARGS, DOC_StdConcurrentQueue_get_nowait},
    {"qsize", StdConcurrentQueue_qsize, METH_NOARGS, DOC_StdConcurrentQueue_qsize},
    {"empty", StdConcurrentQueue_empty, METH_NOARGS, DOC_StdConcurrentQueue_empty},
    {"full", StdConcurrentQueue_full, METH_NOARGS, DOC_StdConcurrentQueue_full},
    {"task_done", StdConcurrentQueue_task_done, METH_NOARGS, DOC_StdConcurrentQueue_task_done},
    {"join", StdConcurrentQueue_join, METH_NOARGS, DOC_StdConcurrentQueue_join},
    {"shutdown", (PyCFunction)(void (*)(void))StdConcurrentQueue_shutdown, METH_VARARGS | METH_KEYWORDS,
     DOC_StdConcurrentQueue_shutdown},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, "See PEP 585."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef StdConcurrentQueue_getset[] = {
    {"maxsize", StdConcurrentQueue_get_maxsize, StdConcurrentQueue_set_maxsize, DOC_StdConcurrentQueue_maxsize, NULL},
    {"unfinished_tasks", StdConcurrentQueue_get_unfinished_tasks, NULL, DOC_StdConcurrentQueue_unfinished_tasks, NULL},
    {"is_shutdown", StdConcurrentQueue_get_is_shutdown, NULL, DOC_StdConcurrentQueue_is_shutdown, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject StdConcurrentQueue_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ft_utils.concurrency.StdConcurrentQueue",
    .tp_basicsize = sizeof(QueueObject),
    .tp_dealloc = QueueObject_dealloc,
    .tp_repr = StdConcurrentQueue_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = DOC_StdConcurrentQueue,
    .tp_traverse = QueueObject_traverse,
    .tp_clear = QueueObject_clear,
    .tp_weaklistoffset = offsetof(QueueObject, weakreflist),
    .tp_methods = StdConcurrentQueue_methods,
    .tp_getset = StdConcurrentQueue_getset,
    .tp_new = StdConcurrentQueue_new,
};

int std_concurrent_queue_module_init(PyObject *module) { return ftu_add_type(module, &StdConcurrentQueue_Type); }
