/*
 * What every blocking method of the native types shares: turning a Python timeout into
 * a core deadline, calling a core wait with the thread state detached (so that a
 * stop-the-world collection, or under a GIL another thread, is never held up by a
 * waiting thread) and letting signals in, and the queue exceptions.
 *
 * Wait detached, take attached: a reference taken out of a container the collector
 * traverses (a queue, a gatherer) must move while the thread state is attached. A
 * detached thread runs on during a collection (3.13t: stop-the-world stops only attached
 * threads; with the GIL: the collector holds the GIL, which a detached thread does not
 * need), and if the reference left the container between the collector's count of
 * internal references and its marking of what is reachable, the object would be taken
 * for garbage: its weak references cleared, its __del__ run, and then handed to the
 * caller. So the core calls that take never run detached (ftu_call_taking); only waits
 * do. Adding to a container detached is safe (ftu_call_blocking with a push): the caller
 * holds its own reference to the object throughout.
 */
#include "native.h"

PyObject *ftu_Empty, *ftu_Full, *ftu_ShutDown;

/* The thread that runs Python's signal handlers. In a forked child, the thread that
 * called fork becomes the main thread: os.register_at_fork keeps this up to date.
 * The core's own locks are taken care of by the core (csrc/ftu_fork.h). */
static unsigned long main_thread_ident;

static PyObject *after_fork_in_child(PyObject *self, PyObject *unused) {
    (void)self, (void)unused;
    main_thread_ident = PyThread_get_thread_ident();
    ftu_local_wrapper_after_fork_child();
    Py_RETURN_NONE;
}

static PyMethodDef after_fork_in_child_def = {"_after_fork_in_child", after_fork_in_child, METH_NOARGS, NULL};

static int main_thread_init(void) {
    PyObject *main_thread = NULL, *ident = NULL, *hook = NULL, *result = NULL;
    PyObject *threading = PyImport_ImportModule("threading");
    PyObject *os = PyImport_ImportModule("os");
    int ok = -1;
    if (threading == NULL || os == NULL) goto done;
    main_thread = PyObject_CallMethod(threading, "main_thread", NULL);
    if (main_thread == NULL) goto done;
    ident = PyObject_GetAttrString(main_thread, "ident");
    if (ident == NULL) goto done;
    main_thread_ident = PyLong_AsUnsignedLong(ident);
    if (main_thread_ident == (unsigned long)-1 && PyErr_Occurred()) goto done;
    hook = PyCFunction_New(&after_fork_in_child_def, NULL);
    if (hook == NULL) goto done;
    PyObject *register_at_fork = PyObject_GetAttrString(os, "register_at_fork");
    if (register_at_fork == NULL) goto done;
    PyObject *args = PyTuple_New(0);
    PyObject *kwargs = Py_BuildValue("{sO}", "after_in_child", hook);
    if (args != NULL && kwargs != NULL) result = PyObject_Call(register_at_fork, args, kwargs);
    Py_XDECREF(args);
    Py_XDECREF(kwargs);
    Py_DECREF(register_at_fork);
    ok = result == NULL ? -1 : 0;
done:
    Py_XDECREF(result);
    Py_XDECREF(hook);
    Py_XDECREF(ident);
    Py_XDECREF(main_thread);
    Py_XDECREF(os);
    Py_XDECREF(threading);
    return ok;
}

int ftu_blocking_init(void) {
    if (main_thread_init() < 0) return -1;
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

/* The main thread sleeps in slices: a signal that came while the core call was on its
 * way to sleep (spinning, yielding) interrupted nothing, and is seen at the end of the
 * slice instead of at the next wake-up, which may never come. 0 for other threads. */
static int64_t first_slice(void) {
    return PyThread_get_thread_ident() == main_thread_ident ? FTU_SIGNAL_SLICE_FIRST_NS : 0;
}

/* The end of the next wait: the deadline, or sooner, the end of the slice. */
static int64_t next_until(int64_t deadline_ns, int64_t *slice) {
    int64_t until = deadline_ns;
    if (*slice) {
        int64_t slice_end = ftu_monotonic_ns() + *slice;
        if (until == FTU_WAIT_FOREVER || until > slice_end) until = slice_end;
        *slice = *slice * 4 < FTU_SIGNAL_SLICE_MAX_NS ? *slice * 4 : FTU_SIGNAL_SLICE_MAX_NS;
    }
    return until;
}

int ftu_call_blocking(ftu_blocking_op op, void *arg, int64_t deadline_ns) {
    int status = op(arg, FTU_NO_WAIT); /* most calls need not wait: stay attached */
    if (status != FTU_TIMEOUT || deadline_ns == FTU_NO_WAIT) return status;
    int64_t slice = first_slice();
    for (;;) {
        int64_t until = next_until(deadline_ns, &slice);
        Py_BEGIN_ALLOW_THREADS
        status = op(arg, until);
        Py_END_ALLOW_THREADS
        if (status == FTU_TIMEOUT && until != deadline_ns) status = FTU_INTERRUPTED; /* slice over */
        if (status != FTU_INTERRUPTED) return status;
        /* Run the handlers (Ctrl-C raises KeyboardInterrupt), else wait on. */
        if (PyErr_CheckSignals() < 0) return -1;
    }
}

int ftu_call_taking(ftu_take_op take, ftu_blocking_op wait, void *arg, int64_t deadline_ns) {
    int status = take(arg);
    if (status != FTU_TIMEOUT || deadline_ns == FTU_NO_WAIT) return status;
    int64_t slice = first_slice();
    for (;;) {
        int64_t until = next_until(deadline_ns, &slice);
        int waited;
        Py_BEGIN_ALLOW_THREADS
        waited = wait(arg, until); /* takes nothing */
        Py_END_ALLOW_THREADS
        if (waited == FTU_TIMEOUT && until != deadline_ns) waited = FTU_INTERRUPTED; /* slice over */
        /* Handlers first: one that raises leaves with nothing taken. */
        if (waited == FTU_INTERRUPTED && PyErr_CheckSignals() < 0) return -1;
        status = take(arg); /* attached: no collection runs while the reference moves */
        if (status != FTU_TIMEOUT || waited == FTU_TIMEOUT) return status;
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
