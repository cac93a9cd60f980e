/*
 * AtomicFlag: a boolean in an int64 cell of the C core (0 or 1).
 */
#include "native.h"

static inline int64_t *cell(PyObject *self) { return &((AtomicFlagObject *)self)->value; }

static int AtomicFlag_init(PyObject *op, PyObject *args, PyObject *kwargs);

/* The truth of value, 0 or 1 (-1 with an error): True and False without a call into the
 * interpreter, anything else through its __bool__ or __len__. */
static inline int truth_of(PyObject *value) {
    if (value == Py_True) return 1;
    if (value == Py_False) return 0;
    return PyObject_IsTrue(value);
}

/* The truth of the value argument (default False), or -1 with an error. */
static int parse_value(PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"value", NULL};
    PyObject *value = Py_False;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:AtomicFlag", kwlist, &value)) return -1;
    return truth_of(value);
}

/* The arguments go to __new__ and __init__ alike (see ftu_new_takes_arguments). */
static PyObject *AtomicFlag_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    int truth = 0;
    if (ftu_new_takes_arguments(type, AtomicFlag_new, AtomicFlag_init) && (truth = parse_value(args, kwargs)) < 0)
        return NULL;
    AtomicFlagObject *self = (AtomicFlagObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    ftu_i64_store_inline(&self->value, truth);
    return (PyObject *)self;
}

/* Stores the value, as set() does (called again, it sets again). */
static int AtomicFlag_init(PyObject *op, PyObject *args, PyObject *kwargs) {
    if (!ftu_init_takes_arguments(Py_TYPE(op), AtomicFlag_new, AtomicFlag_init)) return 0;
    int truth = parse_value(args, kwargs);
    if (truth < 0) return -1;
    ftu_i64_store_inline(cell(op), truth);
    return 0;
}

static void AtomicFlag_dealloc(PyObject *self) {
    PyTypeObject *type = Py_TYPE(self);
    if (((AtomicFlagObject *)self)->weakreflist != NULL) PyObject_ClearWeakRefs(self);
    type->tp_free(self);
}

static int AtomicFlag_bool(PyObject *self) { return ftu_i64_load_inline(cell(self)) != 0; }

static PyObject *AtomicFlag_set(PyObject *self, PyObject *value) {
    int truth = truth_of(value); /* may run __bool__: before the store */
    if (truth < 0) return NULL;
    ftu_i64_store_inline(cell(self), truth);
    Py_RETURN_NONE;
}

static PyObject *AtomicFlag_str(PyObject *self) {
    return PyUnicode_FromString(AtomicFlag_bool(self) ? "True" : "False");
}

static PyObject *AtomicFlag_repr(PyObject *self) {
    return PyUnicode_FromFormat("%s(%s)", ftu_type_name(Py_TYPE(self)), AtomicFlag_bool(self) ? "True" : "False");
}

/* Copies and pickles: see ft_utils/_reconstruct.py. */
static PyObject *AtomicFlag_reduce(PyObject *self, PyObject *Py_UNUSED(ignored)) {
    return ftu_reduce_atomic(self, &AtomicFlag_Type, PyBool_FromLong(AtomicFlag_bool(self)));
}

static PyObject *AtomicFlag_setstate(PyObject *self, PyObject *state) {
    PyObject *attributes, *value = ftu_parse_state(state, "AtomicFlag", &attributes);
    if (value == NULL) return NULL;
    int truth = truth_of(value);
    if (truth < 0) return NULL;
    if (ftu_set_attributes(self, attributes) < 0) return NULL; /* first: a failure changes nothing */
    ftu_i64_store_inline(cell(self), truth);
    Py_RETURN_NONE;
}

static PyNumberMethods AtomicFlag_as_number = {
    .nb_bool = AtomicFlag_bool,
};

static PyMethodDef AtomicFlag_methods[] = {
    {"set", AtomicFlag_set, METH_O, DOC_AtomicFlag_set},
    {"__reduce__", AtomicFlag_reduce, METH_NOARGS, "Pickle and copy support."},
    {"__setstate__", AtomicFlag_setstate, METH_O, "Pickle and copy support."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject AtomicFlag_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ft_utils.concurrency.AtomicFlag",
    .tp_basicsize = sizeof(AtomicFlagObject),
    .tp_dealloc = AtomicFlag_dealloc,
    .tp_repr = AtomicFlag_repr,
    .tp_as_number = &AtomicFlag_as_number,
    .tp_str = AtomicFlag_str,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE,
    .tp_doc = DOC_AtomicFlag,
    .tp_weaklistoffset = offsetof(AtomicFlagObject, weakreflist),
    .tp_methods = AtomicFlag_methods,
    .tp_init = AtomicFlag_init,
    .tp_new = AtomicFlag_new,
};

int atomic_flag_module_init(PyObject *module) { return ftu_add_type(module, &AtomicFlag_Type); }
