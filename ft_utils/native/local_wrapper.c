/*
 * LocalWrapper: a thin proxy that forwards every operation to the object it wraps.
 *
 * Its use on a free-threaded build: a thread that holds a wrapper around a shared object
 * works on the wrapper's reference count (which it owns) instead of contending for the
 * shared object's. The wrapper never changes after construction, so it needs no lock:
 * an in-place operator returns a new wrapper around the result (or the same wrapper
 * when the result is the wrapped object itself, as for list +=).
 */
#include "native.h"

static inline PyObject *wrapped_of(PyObject *op) { return ((LocalWrapperObject *)op)->wrapped; }

#define LocalWrapper_Check(op) Py_IS_TYPE(op, &LocalWrapper_Type)

/* The object an operand stands for: a wrapper stands for its wrapped object. */
static inline PyObject *unwrap(PyObject *op) { return LocalWrapper_Check(op) ? wrapped_of(op) : op; }

static PyObject *LocalWrapper_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    return PyObject_Vectorcall(wrapped_of(op), args, nargsf, kwnames);
}

static PyObject *wrap(PyObject *obj) {
    LocalWrapperObject *self = PyObject_GC_New(LocalWrapperObject, &LocalWrapper_Type);
    if (self == NULL) return NULL;
    self->wrapped = Py_NewRef(obj);
    self->vectorcall = LocalWrapper_vectorcall;
    self->weakreflist = NULL;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

PyObject *ftu_local_wrap(PyObject *obj) { return wrap(obj); }

static PyObject *LocalWrapper_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"wrapped", NULL};
    PyObject *obj;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:LocalWrapper", kwlist, &obj)) return NULL;
    (void)type; /* final type */
    return wrap(obj);
}

static int LocalWrapper_traverse(PyObject *op, visitproc visit, void *arg) {
    Py_VISIT(wrapped_of(op));
    return 0;
}

/* Only the collector calls this, on an unreachable wrapper. */
static int LocalWrapper_clear(PyObject *op) {
    LocalWrapperObject *self = (LocalWrapperObject *)op;
    PyObject *old = self->wrapped;
    self->wrapped = Py_NewRef(Py_None);
    Py_DECREF(old);
    return 0;
}

static void LocalWrapper_dealloc(PyObject *op) {
    LocalWrapperObject *self = (LocalWrapperObject *)op;
    PyObject_GC_UnTrack(op);
    if (self->weakreflist != NULL) PyObject_ClearWeakRefs(op);
    Py_CLEAR(self->wrapped);
    PyObject_GC_Del(op);
}

/* ---- attributes: everything but "wrapped" belongs to the wrapped object ----------------- */

static int is_wrapped_name(PyObject *name) {
    return PyUnicode_Check(name) && PyUnicode_CompareWithASCIIString(name, "wrapped") == 0;
}

static PyObject *LocalWrapper_getattro(PyObject *op, PyObject *name) {
    if (is_wrapped_name(name)) return Py_NewRef(wrapped_of(op));
    return PyObject_GetAttr(wrapped_of(op), name);
}

static int LocalWrapper_setattro(PyObject *op, PyObject *name, PyObject *value) {
    if (is_wrapped_name(name)) {
        PyErr_SetString(PyExc_AttributeError, "LocalWrapper.wrapped is read-only");
        return -1;
    }
    return PyObject_SetAttr(wrapped_of(op), name, value);
}

/* ---- object protocol -------------------------------------------------------------------- */

static PyObject *LocalWrapper_repr(PyObject *op) { return PyObject_Repr(wrapped_of(op)); }
static PyObject *LocalWrapper_str(PyObject *op) { return PyObject_Str(wrapped_of(op)); }
static Py_hash_t LocalWrapper_hash(PyObject *op) { return PyObject_Hash(wrapped_of(op)); }

static PyObject *LocalWrapper_richcompare(PyObject *a, PyObject *b, int opid) {
    return PyObject_RichCompare(unwrap(a), unwrap(b), opid);
}

static PyObject *LocalWrapper_iter(PyObject *op) { return PyObject_GetIter(wrapped_of(op)); }

static PyObject *LocalWrapper_iternext(PyObject *op) {
    PyObject *wrapped = wrapped_of(op);
    if (!PyIter_Check(wrapped)) {
        PyErr_Format(PyExc_TypeError, "'%.200s' object is not an iterator", Py_TYPE(wrapped)->tp_name);
        return NULL;
    }
    return Py_TYPE(wrapped)->tp_iternext(wrapped);
}

/* ---- containers ------------------------------------------------------------------------- */

static Py_ssize_t LocalWrapper_length(PyObject *op) { return PyObject_Size(wrapped_of(op)); }

static PyObject *LocalWrapper_getitem(PyObject *op, PyObject *key) { return PyObject_GetItem(wrapped_of(op), key); }

static int LocalWrapper_setitem(PyObject *op, PyObject *key, PyObject *value) {
    return value == NULL ? PyObject_DelItem(wrapped_of(op), key) : PyObject_SetItem(wrapped_of(op), key, value);
}

static int LocalWrapper_contains(PyObject *op, PyObject *item) { return PySequence_Contains(wrapped_of(op), item); }

/* ---- numbers ---------------------------------------------------------------------------- */

#define BINARY(name, function) \
    static PyObject *LocalWrapper_##name(PyObject *a, PyObject *b) { return function(unwrap(a), unwrap(b)); }

/* The in-place result replaces the wrapper, as it would replace a plain variable. */
#define INPLACE(name, function)                                                   \
    static PyObject *LocalWrapper_##name(PyObject *a, PyObject *b) {              \
        PyObject *result = function(wrapped_of(a), unwrap(b));                    \
        if (result == NULL || result == wrapped_of(a)) {                          \
            Py_XDECREF(result);                                                   \
            return result == NULL ? NULL : Py_NewRef(a);                          \
        }                                                                         \
        PyObject *wrapper = wrap(result);                                         \
        Py_DECREF(result);                                                        \
        return wrapper;                                                           \
    }

#define UNARY(name, function) \
    static PyObject *LocalWrapper_##name(PyObject *a) { return function(wrapped_of(a)); }

BINARY(add, PyNumber_Add)
BINARY(subtract, PyNumber_Subtract)
BINARY(multiply, PyNumber_Multiply)
BINARY(remainder, PyNumber_Remainder)
BINARY(divmod, PyNumber_Divmod)
BINARY(lshift, PyNumber_Lshift)
BINARY(rshift, PyNumber_Rshift)
BINARY(and, PyNumber_And)
BINARY(xor, PyNumber_Xor)
BINARY(or, PyNumber_Or)
BINARY(floor_divide, PyNumber_FloorDivide)
BINARY(true_divide, PyNumber_TrueDivide)
BINARY(matrix_multiply, PyNumber_MatrixMultiply)
INPLACE(inplace_add, PyNumber_InPlaceAdd)
INPLACE(inplace_subtract, PyNumber_InPlaceSubtract)
INPLACE(inplace_multiply, PyNumber_InPlaceMultiply)
INPLACE(inplace_remainder, PyNumber_InPlaceRemainder)
INPLACE(inplace_lshift, PyNumber_InPlaceLshift)
INPLACE(inplace_rshift, PyNumber_InPlaceRshift)
INPLACE(inplace_and, PyNumber_InPlaceAnd)
INPLACE(inplace_xor, PyNumber_InPlaceXor)
INPLACE(inplace_or, PyNumber_InPlaceOr)
INPLACE(inplace_floor_divide, PyNumber_InPlaceFloorDivide)
INPLACE(inplace_true_divide, PyNumber_InPlaceTrueDivide)
INPLACE(inplace_matrix_multiply, PyNumber_InPlaceMatrixMultiply)
UNARY(negative, PyNumber_Negative)
UNARY(positive, PyNumber_Positive)
UNARY(absolute, PyNumber_Absolute)
UNARY(invert, PyNumber_Invert)
UNARY(int, PyNumber_Long)
UNARY(float, PyNumber_Float)
UNARY(index, PyNumber_Index)

static PyObject *LocalWrapper_power(PyObject *a, PyObject *b, PyObject *c) {
    return PyNumber_Power(unwrap(a), unwrap(b), unwrap(c));
}

static PyObject *LocalWrapper_inplace_power(PyObject *a, PyObject *b, PyObject *c) {
    PyObject *result = PyNumber_InPlacePower(wrapped_of(a), unwrap(b), unwrap(c));
    if (result == NULL || result == wrapped_of(a)) {
        Py_XDECREF(result);
        return result == NULL ? NULL : Py_NewRef(a);
    }
    PyObject *wrapper = wrap(result);
    Py_DECREF(result);
    return wrapper;
}

static int LocalWrapper_bool(PyObject *op) { return PyObject_IsTrue(wrapped_of(op)); }

/* ---- methods found by special-method lookup on the type --------------------------------- */

static PyObject *call_method(PyObject *op, const char *name, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *method = PyObject_GetAttrString(wrapped_of(op), name);
    if (method == NULL) return NULL;
    PyObject *result = PyObject_Vectorcall(method, args, (size_t)nargs, NULL);
    Py_DECREF(method);
    return result;
}

static PyObject *LocalWrapper_enter(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    return call_method(op, "__enter__", NULL, 0);
}

static PyObject *LocalWrapper_exit(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    return call_method(op, "__exit__", args, nargs);
}

static PyObject *LocalWrapper_format(PyObject *op, PyObject *spec) { return PyObject_Format(wrapped_of(op), spec); }

static PyObject *LocalWrapper_bytes(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    return PyObject_Bytes(wrapped_of(op));
}

static PyObject *LocalWrapper_reversed(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    return PyObject_CallOneArg((PyObject *)&PyReversed_Type, wrapped_of(op));
}

static PyObject *LocalWrapper_round(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {
    return call_method(op, "__round__", args, nargs);
}

static PyObject *LocalWrapper_trunc(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    return call_method(op, "__trunc__", NULL, 0);
}

static PyObject *LocalWrapper_floor(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    return call_method(op, "__floor__", NULL, 0);
}

static PyObject *LocalWrapper_ceil(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    return call_method(op, "__ceil__", NULL, 0);
}

static PyObject *LocalWrapper_get_wrapped(PyObject *op, void *Py_UNUSED(closure)) {
    return Py_NewRef(wrapped_of(op));
}

static PyNumberMethods LocalWrapper_as_number = {
    .nb_add = LocalWrapper_add,
    .nb_subtract = LocalWrapper_subtract,
    .nb_multiply = LocalWrapper_multiply,
    .nb_remainder = LocalWrapper_remainder,
    .nb_divmod = LocalWrapper_divmod,
    .nb_power = LocalWrapper_power,
    .nb_negative = LocalWrapper_negative,
    .nb_positive = LocalWrapper_positive,
    .nb_absolute = LocalWrapper_absolute,
    .nb_bool = LocalWrapper_bool,
    .nb_invert = LocalWrapper_invert,
    .nb_lshift = LocalWrapper_lshift,
    .nb_rshift = LocalWrapper_rshift,
    .nb_and = LocalWrapper_and,
    .nb_xor = LocalWrapper_xor,
    .nb_or = LocalWrapper_or,
    .nb_int = LocalWrapper_int,
    .nb_float = LocalWrapper_float,
    .nb_inplace_add = LocalWrapper_inplace_add,
    .nb_inplace_subtract = LocalWrapper_inplace_subtract,
    .nb_inplace_multiply = LocalWrapper_inplace_multiply,
    .nb_inplace_remainder = LocalWrapper_inplace_remainder,
    .nb_inplace_power = LocalWrapper_inplace_power,
    .nb_inplace_lshift = LocalWrapper_inplace_lshift,
    .nb_inplace_rshift = LocalWrapper_inplace_rshift,
    .nb_inplace_and = LocalWrapper_inplace_and,
    .nb_inplace_xor = LocalWrapper_inplace_xor,
    .nb_inplace_or = LocalWrapper_inplace_or,
    .nb_floor_divide = LocalWrapper_floor_divide,
    .nb_true_divide = LocalWrapper_true_divide,
    .nb_inplace_floor_divide = LocalWrapper_inplace_floor_divide,
    .nb_inplace_true_divide = LocalWrapper_inplace_true_divide,
    .nb_index = LocalWrapper_index,
    .nb_matrix_multiply = LocalWrapper_matrix_multiply,
    .nb_inplace_matrix_multiply = LocalWrapper_inplace_matrix_multiply,
};

static PyMappingMethods LocalWrapper_as_mapping = {
    .mp_length = LocalWrapper_length,
    .mp_subscript = LocalWrapper_getitem,
    .mp_ass_subscript = LocalWrapper_setitem,
};

static PySequenceMethods LocalWrapper_as_sequence = {
    .sq_length = LocalWrapper_length,
    .sq_contains = LocalWrapper_contains,
};

static PyMethodDef LocalWrapper_methods[] = {
    {"__enter__", LocalWrapper_enter, METH_NOARGS, "Forward to the wrapped object's __enter__."},
    {"__exit__", (PyCFunction)(void (*)(void))LocalWrapper_exit, METH_FASTCALL,
     "Forward to the wrapped object's __exit__."},
    {"__format__", LocalWrapper_format, METH_O, "Format the wrapped object."},
    {"__bytes__", LocalWrapper_bytes, METH_NOARGS, "bytes() of the wrapped object."},
    {"__reversed__", LocalWrapper_reversed, METH_NOARGS, "reversed() of the wrapped object."},
    {"__round__", (PyCFunction)(void (*)(void))LocalWrapper_round, METH_FASTCALL,
     "round() of the wrapped object."},
    {"__trunc__", LocalWrapper_trunc, METH_NOARGS, "math.trunc() of the wrapped object."},
    {"__floor__", LocalWrapper_floor, METH_NOARGS, "math.floor() of the wrapped object."},
    {"__ceil__", LocalWrapper_ceil, METH_NOARGS, "math.ceil() of the wrapped object."},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, "See PEP 585."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef LocalWrapper_getset[] = {
    {"wrapped", LocalWrapper_get_wrapped, NULL, DOC_LocalWrapper_wrapped, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject LocalWrapper_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ft_utils.local.LocalWrapper",
    .tp_basicsize = sizeof(LocalWrapperObject),
    .tp_dealloc = LocalWrapper_dealloc,
    .tp_vectorcall_offset = offsetof(LocalWrapperObject, vectorcall),
    .tp_repr = LocalWrapper_repr,
    .tp_as_number = &LocalWrapper_as_number,
    .tp_as_sequence = &LocalWrapper_as_sequence,
    .tp_as_mapping = &LocalWrapper_as_mapping,
    .tp_hash = LocalWrapper_hash,
    .tp_call = PyVectorcall_Call,
    .tp_str = LocalWrapper_str,
    .tp_getattro = LocalWrapper_getattro,
    .tp_setattro = LocalWrapper_setattro,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = DOC_LocalWrapper,
    .tp_traverse = LocalWrapper_traverse,
    .tp_clear = LocalWrapper_clear,
    .tp_richcompare = LocalWrapper_richcompare,
    .tp_weaklistoffset = offsetof(LocalWrapperObject, weakreflist),
    .tp_iter = LocalWrapper_iter,
    .tp_iternext = LocalWrapper_iternext,
    .tp_methods = LocalWrapper_methods,
    .tp_getset = LocalWrapper_getset,
    .tp_new = LocalWrapper_new,
};

int local_wrapper_module_init(PyObject *module) { return ftu_add_type(module, &LocalWrapper_Type); }
