/*
 * StdConcurrentQueue: queue.Queue's API over the core queue, with FIFO order and maxsize
 * exact (the core counts free places with the same claim-then-take scheme as items) and
 * the unfinished-task count kept by the core (FTU_QUEUE_TASKS).
 *
 * A drop-in: the arguments are read the way queue.Queue reads them (Lib/queue.py), in the
 * same order, so the same calls succeed and the same calls fail with the same exception:
 * maxsize is kept as given and bounds the queue when maxsize > 0 (at ceil(maxsize)); a
 * put looks at block and timeout only if the queue is bounded, a get whenever block is
 * true; a timeout is checked with `timeout < 0` and taken as `time() + timeout` does.
 * docs/std_concurrent_queue.md lists what still differs, and why.
 */
#include "native.h"

#include <math.h>

/* The queue (QueueObject first, so the shared traverse / clear / dealloc apply) and the
 * maxsize object as given; lock keeps maxsize and the core capacity in step. */
typedef struct {
    QueueObject base;
    PyObject *maxsize; /* owned, never NULL; under lock */
    ftu_pylock lock;
} StdQueueObject;

/* From this capacity on a queue is unbounded: no memory holds 2**60 items. */
#define UNBOUNDED_FROM ((int64_t)1 << 60)

static PyObject *int_zero, *float_zero; /* 0 and 0.0, for queue.Queue's comparisons */

static inline ftu_queue *queue_of(PyObject *op) { return ((QueueObject *)op)->queue; }

static int capacity_of_int(PyObject *value, int64_t *capacity) {
    int overflow;
    long long n = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (n == -1 && PyErr_Occurred()) return -1;
    *capacity = overflow != 0 || n <= 0 || n >= UNBOUNDED_FROM ? 0 : n; /* huge: unbounded too */
    return 0;
}

/* The core capacity for maxsize (0: unbounded). queue.Queue is bounded when maxsize > 0
 * and full when qsize() >= maxsize, that is at ceil(maxsize) items. TypeError when
 * maxsize is not a real number (queue.Queue takes it, and fails at the first put). */
static int capacity_of(PyObject *maxsize, int64_t *capacity) {
    /* Exact types only: a subclass may compare its own way, and is asked as Queue asks */
    if (PyLong_CheckExact(maxsize)) return capacity_of_int(maxsize, capacity);
    if (PyFloat_CheckExact(maxsize)) {
        double d = PyFloat_AS_DOUBLE(maxsize);
        /* NaN and inf: never full in queue.Queue either */
        *capacity = !(d > 0) || d >= (double)UNBOUNDED_FROM ? 0 : (int64_t)ceil(d);
        return 0;
    }
    if (!PyNumber_Check(maxsize) || PyComplex_Check(maxsize)) {
        PyErr_Format(PyExc_TypeError, "maxsize must be a real number, not %.200s", Py_TYPE(maxsize)->tp_name);
        return -1;
    }
    int positive = PyObject_RichCompareBool(maxsize, int_zero, Py_GT);
    if (positive <= 0) {
        *capacity = 0;
        return positive;
    }
    PyObject *math = PyImport_ImportModule("math");
    if (math == NULL) return -1;
    PyObject *ceiling = PyObject_CallMethod(math, "ceil", "O", maxsize);
    Py_DECREF(math);
    if (ceiling == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError)) return -1;
        PyErr_Clear(); /* an infinity (Decimal('Infinity')): never full */
        *capacity = 0;
        return 0;
    }
    int status = PyLong_Check(ceiling) ? capacity_of_int(ceiling, capacity) : -1;
    if (status < 0 && !PyErr_Occurred())
        PyErr_Format(PyExc_TypeError, "maxsize must be a real number, not %.200s", Py_TYPE(maxsize)->tp_name);
    Py_DECREF(ceiling);
    return status;
}

/* Sets maxsize (kept as given) and the core capacity together. */
static int set_maxsize(PyObject *op, PyObject *value) {
    StdQueueObject *self = (StdQueueObject *)op;
    int64_t capacity;
    if (capacity_of(value, &capacity) < 0) return -1;
    Py_INCREF(value);
    FTU_PYLOCK_ACQUIRE(self->lock);
    PyObject *old = self->maxsize;
    self->maxsize = value;
    ftu_queue_set_capacity(queue_of(op), capacity);
    FTU_PYLOCK_RELEASE(self->lock);
    Py_DECREF(old); /* after the lock: its __del__ may run */
    return 0;
}

static PyObject *get_maxsize(PyObject *op) {
    StdQueueObject *self = (StdQueueObject *)op;
    FTU_PYLOCK_ACQUIRE(self->lock);
    PyObject *maxsize = Py_NewRef(self->maxsize);
    FTU_PYLOCK_RELEASE(self->lock);
    return maxsize;
}

/* As object.__new__ for queue.Queue: the arguments are __init__'s, so a subclass's
 * __init__ may take any. The queue starts unbounded. */
static PyObject *StdConcurrentQueue_new(PyTypeObject *type, PyObject *Py_UNUSED(args), PyObject *Py_UNUSED(kwargs)) {
    StdQueueObject *self = (StdQueueObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->maxsize = Py_NewRef(int_zero);
    self->base.queue = ftu_queue_new(0, FTU_QUEUE_TASKS | FTU_QUEUE_PREFETCH);
    if (self->base.queue == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

/* queue.Queue.__init__(maxsize=0). Called again, it changes maxsize only. */
static int StdConcurrentQueue_init(PyObject *op, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"maxsize", NULL};
    PyObject *maxsize = int_zero;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:StdConcurrentQueue", kwlist, &maxsize)) return -1;
    return set_maxsize(op, maxsize);
}

static int StdConcurrentQueue_traverse(PyObject *op, visitproc visit, void *arg) {
    Py_VISIT(((StdQueueObject *)op)->maxsize);
    return QueueObject_traverse(op, visit, arg);
}

static int StdConcurrentQueue_clear(PyObject *op) {
    StdQueueObject *self = (StdQueueObject *)op;
    FTU_PYLOCK_ACQUIRE(self->lock);
    PyObject *old = self->maxsize;
    self->maxsize = Py_NewRef(int_zero);
    ftu_queue_set_capacity(queue_of(op), 0);
    FTU_PYLOCK_RELEASE(self->lock);
    Py_DECREF(old);
    return QueueObject_clear(op);
}

static void StdConcurrentQueue_dealloc(PyObject *op) {
    PyObject_GC_UnTrack(op);
    Py_CLEAR(((StdQueueObject *)op)->maxsize);
    QueueObject_dealloc(op);
}

/* A timeout as queue.Queue reads it when it may wait: `timeout < 0` raises ValueError,
 * and the seconds are what `time() + timeout` adds (TypeError for a Decimal, as there). */
static int seconds_of(PyObject *timeout, double *seconds) {
    int negative = PyObject_RichCompareBool(timeout, int_zero, Py_LT);
    if (negative < 0) return -1;
    if (negative) {
        PyErr_SetString(PyExc_ValueError, "'timeout' must be a non-negative number");
        return -1;
    }
    PyObject *sum = PyNumber_Add(float_zero, timeout);
    if (sum == NULL) return -1;
    *seconds = PyFloat_AsDouble(sum);
    Py_DECREF(sum);
    return *seconds == -1.0 && PyErr_Occurred() ? -1 : 0;
}

/* block and timeout into a core deadline. A timeout of NaN, or too long for the
 * interpreter's locks, waits without limit (queue.Queue spins for ever on NaN and raises
 * OverflowError from its lock on the others; see the docs). */
static int deadline_of(PyObject *block, PyObject *timeout, int64_t *deadline) {
    int blocking = block == NULL ? 1 : PyObject_IsTrue(block);
    if (blocking < 0) return -1;
    if (!blocking) {
        *deadline = FTU_NO_WAIT;
        return 0;
    }
    if (timeout == NULL || timeout == Py_None) {
        *deadline = FTU_WAIT_FOREVER;
        return 0;
    }
    double seconds;
    if (seconds_of(timeout, &seconds) < 0) return -1;
    if (seconds != seconds || seconds >= 9e9) {
        *deadline = FTU_WAIT_FOREVER;
    } else if (seconds <= 0) {
        *deadline = FTU_NO_WAIT;
    } else {
        *deadline = ftu_monotonic_ns() + (int64_t)(seconds * 1e9) + 1;
    }
    return 0;
}

/* After block or timeout were found wrong: queue.Queue looks at the shutdown first, so a
 * shut-down queue raises ShutDown instead (for get: once it is also empty). */
static PyObject *shut_down_first(PyObject *op, int for_get) {
    int state = ftu_queue_state(queue_of(op));
    if (state == FTU_QUEUE_SHUT_IMMEDIATE ||
        (state == FTU_QUEUE_SHUT && (!for_get || ftu_queue_size(queue_of(op)) == 0))) {
        PyErr_Clear();
        PyErr_SetNone(ftu_ShutDown);
    }
    return NULL;
}

struct push_call {
    ftu_queue *queue;
    uint64_t word;
};

static int push_op(void *arg, int64_t deadline_ns) {
    struct push_call *call = arg;
    return ftu_queue_push(call->queue, call->word, deadline_ns);
}

/* queue.Queue.put: the shutdown first; block and timeout only if the queue is bounded
 * (then whether or not it is full). */
static PyObject *put(PyObject *op, PyObject *item, PyObject *block, PyObject *timeout) {
    int64_t deadline = FTU_NO_WAIT; /* unbounded: a put never waits */
    int bounded = ftu_queue_capacity(queue_of(op)) > 0;
    if (bounded && deadline_of(block, timeout, &deadline) < 0) return shut_down_first(op, 0);
    ftu_incref_handoff(item);
    struct push_call call = {queue_of(op), (uint64_t)(uintptr_t)item};
    int status = ftu_call_blocking(push_op, &call, deadline);
    if (status == FTU_TIMEOUT && !bounded) {
        /* maxsize was set meanwhile and the queue is full: a put into a bounded queue */
        if (deadline_of(block, timeout, &deadline) < 0) {
            Py_DECREF(item);
            return shut_down_first(op, 0);
        }
        status = ftu_call_blocking(push_op, &call, deadline);
    }
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
    return put(op, values[0], values[1], values[2]);
}

static PyObject *StdConcurrentQueue_put_nowait(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                                               PyObject *kwnames) {
    static const char *const names[] = {"item", NULL};
    PyObject *item;
    if (ftu_parse_fastcall(args, nargs, kwnames, "put_nowait", names, 1, &item) < 0) return NULL;
    return put(op, item, Py_False, NULL);
}

/* queue.Queue.get: ShutDown if shut down and empty; then block, and the timeout if
 * block is true (whether or not an item is there). */
static PyObject *StdConcurrentQueue_get(PyObject *op, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames) {
    static const char *const names[] = {"block", "timeout", NULL};
    PyObject *values[2];
    if (ftu_parse_fastcall(args, nargs, kwnames, "get", names, 0, values) < 0) return NULL;
    int64_t deadline;
    if (deadline_of(values[0], values[1], &deadline) < 0) return shut_down_first(op, 1);
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
    int64_t capacity = ftu_queue_capacity(queue_of(op));
    return PyBool_FromLong(capacity > 0 && ftu_queue_size(queue_of(op)) >= capacity);
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

static PyObject *StdConcurrentQueue_get_maxsize(PyObject *op, void *Py_UNUSED(closure)) { return get_maxsize(op); }

static int StdConcurrentQueue_set_maxsize(PyObject *op, PyObject *value, void *Py_UNUSED(closure)) {
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete maxsize");
        return -1;
    }
    return set_maxsize(op, value);
}

static PyObject *StdConcurrentQueue_get_unfinished_tasks(PyObject *op, void *Py_UNUSED(closure)) {
    return PyLong_FromLongLong(ftu_queue_unfinished(queue_of(op)));
}

static PyObject *StdConcurrentQueue_get_is_shutdown(PyObject *op, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(ftu_queue_state(queue_of(op)) != FTU_QUEUE_OPEN);
}

static PyObject *StdConcurrentQueue_repr(PyObject *op) {
    PyObject *maxsize = get_maxsize(op);
    PyObject *repr = PyUnicode_FromFormat("<%s maxsize=%R qsize=%lld%s>", ftu_type_name(Py_TYPE(op)), maxsize,
                                          (long long)ftu_queue_size(queue_of(op)),
                                          ftu_queue_state(queue_of(op)) != FTU_QUEUE_OPEN ? " shut down" : "");
    Py_DECREF(maxsize);
    return repr;
}

static PyMethodDef StdConcurrentQueue_methods[] = {
    {"put", (PyCFunction)(void (*)(void))StdConcurrentQueue_put, METH_FASTCALL | METH_KEYWORDS,
     DOC_StdConcurrentQueue_put},
    {"get", (PyCFunction)(void (*)(void))StdConcurrentQueue_get, METH_FASTCALL | METH_KEYWORDS,
     DOC_StdConcurrentQueue_get},
    {"put_nowait", (PyCFunction)(void (*)(void))StdConcurrentQueue_put_nowait, METH_FASTCALL | METH_KEYWORDS,
     DOC_StdConcurrentQueue_put_nowait},
    {"get_nowait", StdConcurrentQueue_get_nowait, METH_NOARGS, DOC_StdConcurrentQueue_get_nowait},
    {"qsize", StdConcurrentQueue_qsize, METH_NOARGS, DOC_StdConcurrentQueue_qsize},
    {"empty", StdConcurrentQueue_empty, METH_NOARGS, DOC_StdConcurrentQueue_empty},
    {"full", StdConcurrentQueue_full, METH_NOARGS, DOC_StdConcurrentQueue_full},
    {"task_done", StdConcurrentQueue_task_done, METH_NOARGS, DOC_StdConcurrentQueue_task_done},
    {"join", StdConcurrentQueue_join, METH_NOARGS, DOC_StdConcurrentQueue_join},
    {"shutdown", (PyCFunction)(void (*)(void))StdConcurrentQueue_shutdown, METH_VARARGS | METH_KEYWORDS,
     DOC_StdConcurrentQueue_shutdown},
    {"__reduce__", ftu_refuse_reduce, METH_NOARGS, FTU_REFUSE_REDUCE_DOC},
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
    .tp_basicsize = sizeof(StdQueueObject),
    .tp_dealloc = StdConcurrentQueue_dealloc,
    .tp_repr = StdConcurrentQueue_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = DOC_StdConcurrentQueue,
    .tp_traverse = StdConcurrentQueue_traverse,
    .tp_clear = StdConcurrentQueue_clear,
    .tp_weaklistoffset = offsetof(QueueObject, weakreflist),
    .tp_methods = StdConcurrentQueue_methods,
    .tp_getset = StdConcurrentQueue_getset,
    .tp_init = StdConcurrentQueue_init,
    .tp_new = StdConcurrentQueue_new,
};

int std_concurrent_queue_module_init(PyObject *module) {
    if (int_zero == NULL) int_zero = PyLong_FromLong(0);
    if (float_zero == NULL) float_zero = PyFloat_FromDouble(0.0);
    if (int_zero == NULL || float_zero == NULL) return -1;
    return ftu_add_type(module, &StdConcurrentQueue_Type);
}
