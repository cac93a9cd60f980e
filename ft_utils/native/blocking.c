/*
 * What every blocking method of the native types shares: turning a Python timeout into
 * a core deadline, calling a core wait with the thread state detached (so that a
 * stop-the-world collection, or under a GIL another thread, is never held up by a
 * waiting thread) and letting signals in, and the queue exceptions.
 */
#include "native.h"

PyObject *ftu_Empty, *ftu_Full, *ftu_ShutDown;

int ftu_blocking_init(void) {
    PyObject *queue = PyImport_ImportModule("queue");
    if (queue == NULL) return -1;
    ftu_Empty = PyObject_GetAttrString(queue, "Empty");
    ftu_Full = PyObject_GetAttrString(queue, "Full");
    Py_DECREF(queue);
    /* queue.ShutDown on 3.13+, ours before: one class for both backends. */
    PyObject *exceptions = PyImport_ImportModule("ft_utils._exceptions");
    if (exceptions == NULL) return -1;
    ftu_ShutDown = PyObject_GetAttrString(exceptions, "ShutDown");
    Py_DECREF(exceptions);
    return ftu_Empty && ftu_Full && ftu_ShutDown ? 0 : -1;
}

int ftu_deadline(PyObject *timeout, int block, int64_t *deadline_ns) {
    if (!block) {
        *deadline_ns = FTU_NO_WAIT;
        return 0;
    }
    if (timeout == NULL || timeout == Py_None) {
        *deadline_ns = FTU_WAIT_FOREVER;
        return 0;
    }
    if (!PyNumber_Check(timeout) || PyComplex_Check(timeout)) {
        PyErr_Format(PyExc_TypeError, "'timeout' must be a number or None, not %.200s", Py_TYPE(timeout)->tp_name);
        return -1;
    }
    double seconds = PyFloat_AsDouble(timeout);
    if (seconds == -1.0 && PyErr_Occurred()) return -1;
    if (seconds < 0 || seconds != seconds) {
        PyErr_SetString(PyExc_ValueError, "'timeout' must be a non-negative number");
        return -1;
    }
    int64_t now = ftu_monotonic_ns();
    /* A timeout of about 290 years or more is forever. */
    *deadline_ns = seconds >= 9e9 ? FTU_WAIT_FOREVER : now + (int64_t)(seconds * 1e9) + 1;
    return 0;
}

int ftu_call_blocking(ftu_blocking_op op, void *arg, int64_t deadline_ns) {
    int status = op(arg, FTU_NO_WAIT); /* most calls need not wait: stay attached */
    if (status != FTU_TIMEOUT || deadline_ns == FTU_NO_WAIT) return status;
    for (;;) {
        Py_BEGIN_ALLOW_THREADS
        status = op(arg, deadline_ns);
        Py_END_ALLOW_THREADS
        if (status != FTU_INTERRUPTED) return status;
        /* A signal: run the handlers (Ctrl-C raises KeyboardInterrupt), else wait on. */
        if (PyErr_CheckSignals() < 0) return -1;
    }
}

int ftu_parse_fastcall(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, const char *function,
                       const char *const *names, Py_ssize_t required, PyObject **values) {
    Py_ssize_t count = 0;
    while (names[count] != NULL) count++;
    if (nargs > count) {
        PyErr_Format(PyExc_TypeError, "%s() takes at most %zd arguments (%zd given)", function, count, nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) values[i] = i < nargs ? args[i] : NULL;
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, k);
        Py_ssize_t i = 0;
        while (i < count && PyUnicode_CompareWithASCIIString(name, names[i]) != 0) i++;
        if (i == count) {
            PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%U'", function, name);
            return -1;
        }
        if (values[i] != NULL) {
            PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'", function, names[i]);
            return -1;
        }
        values[i] = args[nargs + k];
    }
    for (Py_ssize_t i = 0; i < required; i++) {
        if (values[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s'", function, names[i]);
            return -1;
        }
    }
    return 0;
}

int ftu_visit_object(uint64_t word, void *arg) {
    struct ftu_visit_context *context = arg;
    PyObject *obj = (PyObject *)(uintptr_t)word;
    return context->visit(obj, context->arg);
}
