/*
 * AtomicReference: an object slot that threads read and replace atomically.
 *
 * Why a lock and not a bare atomic pointer: get() must load the pointer and incref the
 * object as one step, or a concurrent exchange() could decref the object to zero in
 * between (use-after-free). CPython 3.13 has no public try-incref, so the load+incref and
 * every store happen under a per-object lock (a spin lock, see pycompat.h; compiled away
 * under the GIL). Decrefs, which can run arbitrary __del__ code, always happen after the
 * lock is released.
 */
#include "native.h"

static int AtomicReference_init(PyObject *op, PyObject *args, PyObject *kwargs);
static PyObject *swap(AtomicReferenceObject *self, PyObject *new_obj);

static int parse_obj(PyObject *args, PyObject *kwargs, PyObject **obj) {
    static char *kwlist[] = {"obj", NULL};
    *obj = Py_None;
    return PyArg_ParseTupleAndKeywords(args, kwargs, "|O:AtomicReference", kwlist, obj) ? 0 : -1;
}

/* The arguments go to __new__ and __init__ alike (see ftu_new_takes_arguments), so a
 * subclass's __init__ may take arguments of its own and pass obj on to
 * super().__init__(obj). */
static PyObject *AtomicReference_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *obj = Py_None;
    if (ftu_new_takes_arguments(type, AtomicReference_new, AtomicReference_init) && parse_obj(args, kwargs, &obj) < 0)
        return NULL;
    AtomicReferenceObject *self = (AtomicReferenceObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->obj = Py_NewRef(obj);
    return (PyObject *)self;
}

/* Stores obj, as set() does (called again, it sets again). */
static int AtomicReference_init(PyObject *op, PyObject *args, PyObject *kwargs) {
    if (!ftu_init_takes_arguments(Py_TYPE(op), AtomicReference_new, AtomicReference_init)) return 0;
    PyObject *obj;
    if (parse_obj(args, kwargs, &obj) < 0) return -1;
    Py_DECREF(swap((AtomicReferenceObject *)op, Py_NewRef(obj)));
    return 0;
}

static int AtomicReference_traverse(PyObject *op, visitproc visit, void *arg) {
    AtomicReferenceObject *self = (AtomicReferenceObject *)op;
    Py_VISIT(self->obj);
    return 0;
}

/* Swaps in new (a reference the caller gives away); returns the old reference. */
static PyObject *swap(AtomicReferenceObject *self, PyObject *new_obj) {
    FTU_PYLOCK_ACQUIRE(self->lock);
    PyObject *old = self->obj;
    self->obj = new_obj;
    FTU_PYLOCK_RELEASE(self->lock);
    return old;
}

static int AtomicReference_clear(PyObject *op) {
    PyObject *old = swap((AtomicReferenceObject *)op, Py_NewRef(Py_None));
    Py_DECREF(old);
    return 0;
}

static void AtomicReference_dealloc(PyObject *op) {
    AtomicReferenceObject *self = (AtomicReferenceObject *)op;
    PyTypeObject *type = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    if (self->weakreflist != NULL) PyObject_ClearWeakRefs(op);
    Py_CLEAR(self->obj);
    type->tp_free(op); /* a heap subclass's type reference is dropped by subtype_dealloc */
}

static PyObject *AtomicReference_get(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    AtomicReferenceObject *self = (AtomicReferenceObject *)op;
    FTU_PYLOCK_ACQUIRE(self->lock);
    PyObject *obj = Py_NewRef(self->obj);
    FTU_PYLOCK_RELEASE(self->lock);
    return obj;
}

static PyObject *AtomicReference_set(PyObject *op, PyObject *obj) {
    PyObject *old = swap((AtomicReferenceObject *)op, Py_NewRef(obj));
    Py_DECREF(old);
    Py_RETURN_NONE;
}

static PyObject *AtomicReference_exchange(PyObject *op, PyObject *obj) {
    return swap((AtomicReferenceObject *)op, Py_NewRef(obj));
}

static PyObject *AtomicReference_compare_exchange(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    AtomicReferenceObject *self = (AtomicReferenceObject *)op;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "compare_exchange() takes exactly 2 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *expected = args[0], *desired = args[1];
    Py_INCREF(desired);
    FTU_PYLOCK_ACQUIRE(self->lock);
    if (self->obj == expected) {
        self->obj = desired;
        FTU_PYLOCK_RELEASE(self->lock);
        /* The slot's reference to expected: the caller still holds one, so this decref
         * cannot be the last while we run, but it may be once the caller lets go. */
        Py_DECREF(expected);
        Py_RETURN_TRUE;
    }
    FTU_PYLOCK_RELEASE(self->lock);
    Py_DECREF(desired);
    Py_RETURN_FALSE;
}

static PyObject *AtomicReference_repr(PyObject *op) {
    PyObject *obj = AtomicReference_get(op, NULL);
    if (obj == NULL) return NULL;
    PyObject *r;
    ftu_repr_entry entry;
    if (ftu_repr_enter(&entry, op)) {
        r = PyUnicode_FromString("..."); /* as reprlib.recursive_repr does */
    } else {
        r = PyUnicode_FromFormat("%s(%R)", ftu_type_name(Py_TYPE(op)), obj);
        ftu_repr_leave(&entry);
    }
    Py_DECREF(obj);
    return r;
}

/* Copies and pickles (see ft_utils/_reconstruct.py): the referent is restored after the
 * copy exists, so a reference may hold itself. */
static PyObject *AtomicReference_reduce(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    return ftu_reduce_atomic(op, &AtomicReference_Type, AtomicReference_get(op, NULL));
}

static PyObject *AtomicReference_setstate(PyObject *op, PyObject *state) {
    PyObject *attributes, *obj = ftu_parse_state(state, "AtomicReference", &attributes);
    if (obj == NULL) return NULL;
    if (ftu_set_attributes(op, attributes) < 0) return NULL; /* first: a failure changes nothing */
    Py_DECREF(swap((AtomicReferenceObject *)op, Py_NewRef(obj)));
    Py_RETURN_NONE;
}

static PyMethodDef AtomicReference_methods[] = {
    {"get", AtomicReference_get, METH_NOARGS, DOC_AtomicReference_get},
    {"set", AtomicReference_set, METH_O, DOC_AtomicReference_set},
    {"exchange", AtomicReference_exchange, METH_O, DOC_AtomicReference_exchange},
    {"compare_exchange", (PyCFunction)(void (*)(void))AtomicReference_compare_exchange, METH_FASTCALL,
     DOC_AtomicReference_compare_exchange},
    {"__reduce__", AtomicReference_reduce, METH_NOARGS, "Pickle and copy support."},
    {"__setstate__", AtomicReference_setstate, METH_O, "Pickle and copy support."},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, "See PEP 585."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject AtomicReference_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ft_utils.concurrency.AtomicReference",
    .tp_basicsize = sizeof(AtomicReferenceObject),
    .tp_dealloc = AtomicReference_dealloc,
    .tp_repr = AtomicReference_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = DOC_AtomicReference,
    .tp_traverse = AtomicReference_traverse,
    .tp_clear = AtomicReference_clear,
    .tp_weaklistoffset = offsetof(AtomicReferenceObject, weakreflist),
    .tp_methods = AtomicReference_methods,
    .tp_init = AtomicReference_init,
    .tp_new = AtomicReference_new,
};

int atomic_reference_module_init(PyObject *module) { return ftu_add_type(module, &AtomicReference_Type); }
