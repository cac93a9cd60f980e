/*
 * ft_utils._native: the CPython extension over the C core. It declares that it does not
 * need the GIL (Py_mod_gil = Py_MOD_GIL_NOT_USED), so importing it keeps a free-threaded
 * interpreter free-threaded.
 */
#include "native.h"

#include <string.h>

const char *ftu_type_name(PyTypeObject *type) {
    const char *dot = strrchr(type->tp_name, '.');
    return dot ? dot + 1 : type->tp_name;
}

/* ft_utils._reconstruct, imported when first needed (copies and pickles are rare). */
static PyObject *reconstruct(void) {
    static PyObject *module; /* kept for the process: the module object lives that long */
    if (module == NULL) module = PyImport_ImportModule("ft_utils._reconstruct");
    return module;
}

PyObject *ftu_reduce_atomic(PyObject *op, PyTypeObject *base, PyObject *value) {
    PyObject *module = reconstruct();
    if (module == NULL || value == NULL) {
        Py_XDECREF(value);
        return NULL;
    }
    /* Not "N": a call that fails before building its arguments (no memory for the method
     * name) would not release value. */
    PyObject *result = PyObject_CallMethod(module, "reduce", "OOO", op, (PyObject *)base, value);
    Py_DECREF(value);
    return result;
}

int ftu_set_attributes(PyObject *op, PyObject *attributes) {
    if (attributes == Py_None) return 0;
    PyObject *module = reconstruct();
    if (module == NULL) return -1;
    PyObject *result = PyObject_CallMethod(module, "set_attributes", "OO", op, attributes);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

PyObject *ftu_parse_state(PyObject *state, const char *type_name, PyObject **attributes) {
    if (!PyTuple_Check(state) || PyTuple_GET_SIZE(state) != 2) {
        PyErr_Format(PyExc_TypeError, "%s.__setstate__() takes a (value, attributes) tuple, not %.200s", type_name,
                     Py_TYPE(state)->tp_name);
        return NULL;
    }
    *attributes = PyTuple_GET_ITEM(state, 1);
    return PyTuple_GET_ITEM(state, 0);
}

/* The reprs in progress on this thread, innermost first (see native.h). */
static _Thread_local ftu_repr_entry *repr_innermost;

int ftu_repr_enter(ftu_repr_entry *entry, PyObject *op) {
    for (ftu_repr_entry *e = repr_innermost; e != NULL; e = e->outer)
        if (e->op == op) return 1;
    entry->op = op;
    entry->outer = repr_innermost;
    repr_innermost = entry;
    return 0;
}

void ftu_repr_leave(ftu_repr_entry *entry) { repr_innermost = entry->outer; }

int ftu_add_type(PyObject *module, PyTypeObject *type) {
    if (PyType_Ready(type) < 0) return -1;
    return PyModule_AddObjectRef(module, ftu_type_name(type), (PyObject *)type);
}

/* _probe_line_transfer_ns(hops, budget_ns): ftu_probe_line_transfer_ns for the benchmark
 * (a figure of the machine, not of ft_utils); None where it could not measure. */
static PyObject *probe_line_transfer_ns(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "_probe_line_transfer_ns() takes 2 arguments (hops, budget_ns), %zd given",
                     nargs);
        return NULL;
    }
    long long hops = PyLong_AsLongLong(args[0]);
    if (hops == -1 && PyErr_Occurred()) return NULL;
    long long budget_ns = PyLong_AsLongLong(args[1]);
    if (budget_ns == -1 && PyErr_Occurred()) return NULL;
    if (hops < 4 || budget_ns <= 0) {
        PyErr_SetString(PyExc_ValueError, "_probe_line_transfer_ns() needs hops >= 4 and budget_ns > 0");
        return NULL;
    }
    int64_t ns;
    Py_BEGIN_ALLOW_THREADS
    ns = ftu_probe_line_transfer_ns(hops, budget_ns);
    Py_END_ALLOW_THREADS
    if (ns < 0) Py_RETURN_NONE;
    return PyLong_FromLongLong(ns);
}

/* _fail_core_allocations(after): ftu_fail_allocations, for the allocation-failure tests. */
static PyObject *fail_core_allocations(PyObject *module, PyObject *after) {
    (void)module;
    long long n = PyLong_AsLongLong(after);
    if (n == -1 && PyErr_Occurred()) return NULL;
    ftu_fail_allocations(n);
    Py_RETURN_NONE;
}

static PyMethodDef native_methods[] = {
    {"_probe_line_transfer_ns", (PyCFunction)(void (*)(void))probe_line_transfer_ns, METH_FASTCALL,
     "_probe_line_transfer_ns(hops, budget_ns)\n--\n\nNanoseconds for a CPU to get a cache line another has "
     "just written (a measurement of the machine, for benchmarks); None if it could not measure."},
    {"_fail_core_allocations", fail_core_allocations, METH_O,
     "_fail_core_allocations(after)\n--\n\nTesting aid: the C core's next `after` allocations succeed and every "
     "later one fails, until called with after < 0."},
    {NULL, NULL, 0, NULL},
};

static int native_exec(PyObject *module) {
    if (atomic_int64_module_init(module) < 0) return -1;
    if (atomic_reference_module_init(module) < 0) return -1;
    if (atomic_flag_module_init(module) < 0) return -1;
    if (concurrent_dict_module_init(module) < 0) return -1;
    if (local_wrapper_module_init(module) < 0) return -1;
    if (ftu_blocking_init() < 0) return -1;
    if (concurrent_queue_module_init(module) < 0) return -1;
    if (std_concurrent_queue_module_init(module) < 0) return -1;
    if (concurrent_gathering_iterator_module_init(module) < 0) return -1;
    if (PyModule_AddObjectRef(module, "Empty", ftu_Empty) < 0) return -1;
    if (PyModule_AddObjectRef(module, "Full", ftu_Full) < 0) return -1;
    if (PyModule_AddObjectRef(module, "ShutDown", ftu_ShutDown) < 0) return -1;
    return 0;
}

static PyModuleDef_Slot native_slots[] = {
    {Py_mod_exec, native_exec},
#ifdef Py_mod_multiple_interpreters
    /* The types are static: one interpreter at a time. */
    {Py_mod_multiple_interpreters, Py_MOD_MULTIPLE_INTERPRETERS_NOT_SUPPORTED},
#endif
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ft_utils._native",
    .m_doc = "The native (CPython extension) backend of ft_utils.",
    .m_size = 0,
    .m_methods = native_methods,
    .m_slots = native_slots,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModuleDef_Init(&native_module); }
