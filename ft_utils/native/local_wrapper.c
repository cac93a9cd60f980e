/*
 * LocalWrapper: a thin proxy that forwards every operation to the object it wraps.
 *
 * Its use on a free-threaded build: a thread that holds a wrapper around a shared object
 * works on the wrapper's reference count (which it owns) instead of contending for the
 * shared object's. The wrapper never changes after construction, so it needs no lock:
 * an in-place operator returns a new wrapper around the result (or the same wrapper
 * when the result is the wrapped object itself, as for list +=).
 *
 * One wrapper type per protocol profile. A wrapper must have exactly the protocols of
 * the object it wraps: callable(), iter(), len(), hash(), the numbers and the
 * collections.abc checks (Iterator, Hashable, Sized, ...) all look at the *type* of the
 * wrapper, and a single type that filled every slot would claim all of them. So
 * LocalWrapper itself (never instantiated) holds only what every object has (attributes,
 * repr/str/format/dir, comparisons) and the binary operators (needed whatever the object
 * is: x + w must unwrap w on the right), and LocalWrapper(obj) makes an instance of a
 * subtype that adds the slots and special methods type(obj) has: its "profile", read
 * from type(obj)'s MRO the way the abc checks read it. A special method set to None
 * ("not available") is mirrored too: the wrapper's type gets the forwarding slot, which
 * raises as the object does, and None under the name, so that the checks say no.
 *
 * The subtypes are static types (not heap types) created once per profile and kept for
 * the life of the process: instances of a static type do not touch their type's
 * reference count, which on the free-threaded build would be one more count shared by
 * every thread that makes wrappers (pop_local()). Which profile a type has is cached by
 * its version tag (tp_version_tag: unique per type and per state of the type, reset
 * when the type or a base changes), so LocalWrapper(obj) costs one table lookup on top
 * of the allocation, and a class that gains or loses special methods gets a new profile.
 */
#include "native.h"

#include <stdatomic.h>

static inline PyObject *wrapped_of(PyObject *op) { return ((LocalWrapperObject *)op)->wrapped; }

/* Every wrapper's type is a direct subtype of LocalWrapper made here (LocalWrapper has
 * no Py_TPFLAGS_BASETYPE, so nobody else can subclass it). */
#define LocalWrapper_Check(op) (Py_TYPE(op)->tp_base == &LocalWrapper_Type)

/* The object an operand stands for: a wrapper stands for its wrapped object. */
static inline PyObject *unwrap(PyObject *op) { return LocalWrapper_Check(op) ? wrapped_of(op) : op; }

/* ---- features: the protocols a type has ------------------------------------------------- */

enum {
    F_HASH, F_CALL, F_ITER, F_NEXT, F_LEN, F_CONTAINS, F_GETITEM, F_SETITEM, F_BOOL,
    F_NEG, F_POS, F_ABS, F_INVERT, F_INT, F_FLOAT, F_INDEX,
    F_GET, F_SET, F_AWAIT, F_AITER, F_ANEXT,
    F_ROUND, F_TRUNC, F_FLOOR, F_CEIL, F_COMPLEX, F_BYTES, F_REVERSED,
    F_ENTER, F_EXIT, F_AENTER, F_AEXIT, F_LENGTH_HINT, F_FSPATH, F_COPY,
    F_INSTANCECHECK, F_SUBCLASSCHECK, F_SET_NAME,
    F_NAMED_COUNT,
    /* Not special methods but C slots the type has (for PySequence_Check and the
     * sequence fallbacks of iter(), reversed() and `in`): */
    F_SQ_ITEM = F_NAMED_COUNT, F_SQ_ASS_ITEM,
    F_BUFFER, /* the buffer protocol: bytes(), bytearray(), memoryview() see the object's bytes */
    F_COUNT
};

#define BIT(f) (UINT64_C(1) << (f))

/* The special methods that give each feature (either one, for two names). */
static const char *const feature_names[F_NAMED_COUNT][2] = {
    [F_HASH] = {"__hash__", NULL},
    [F_CALL] = {"__call__", NULL},
    [F_ITER] = {"__iter__", NULL},
    [F_NEXT] = {"__next__", NULL},
    [F_LEN] = {"__len__", NULL},
    [F_CONTAINS] = {"__contains__", NULL},
    [F_GETITEM] = {"__getitem__", NULL},
    [F_SETITEM] = {"__setitem__", "__delitem__"}, /* one C slot does both */
    [F_BOOL] = {"__bool__", NULL},
    [F_NEG] = {"__neg__", NULL},
    [F_POS] = {"__pos__", NULL},
    [F_ABS] = {"__abs__", NULL},
    [F_INVERT] = {"__invert__", NULL},
    [F_INT] = {"__int__", NULL},
    [F_FLOAT] = {"__float__", NULL},
    [F_INDEX] = {"__index__", NULL},
    [F_GET] = {"__get__", NULL},
    [F_SET] = {"__set__", "__delete__"}, /* one C slot does both */
    [F_AWAIT] = {"__await__", NULL},
    [F_AITER] = {"__aiter__", NULL},
    [F_ANEXT] = {"__anext__", NULL},
    [F_ROUND] = {"__round__", NULL},
    [F_TRUNC] = {"__trunc__", NULL},
    [F_FLOOR] = {"__floor__", NULL},
    [F_CEIL] = {"__ceil__", NULL},
    [F_COMPLEX] = {"__complex__", NULL},
    [F_BYTES] = {"__bytes__", NULL},
    [F_REVERSED] = {"__reversed__", NULL},
    [F_ENTER] = {"__enter__", NULL},
    [F_EXIT] = {"__exit__", NULL},
    [F_AENTER] = {"__aenter__", NULL},
    [F_AEXIT] = {"__aexit__", NULL},
    [F_LENGTH_HINT] = {"__length_hint__", NULL},
    [F_FSPATH] = {"__fspath__", NULL},
    [F_COPY] = {"__copy__", NULL},
    [F_INSTANCECHECK] = {"__instancecheck__", NULL},
    [F_SUBCLASSCHECK] = {"__subclasscheck__", NULL},
    [F_SET_NAME] = {"__set_name__", NULL},
};

/* The names above as interned str, made once by local_wrapper_module_init. */
static PyObject *feature_strs[F_NAMED_COUNT][2];

/* A new reference to the attribute `name` of type's MRO (not of its metaclass), or NULL
 * without an error. */
static PyObject *type_lookup(PyTypeObject *type, PyObject *name) {
#if PY_VERSION_HEX >= 0x030D0000
    return _PyType_LookupRef(type, name);
#else
    PyObject *found = _PyType_Lookup(type, name); /* borrowed: safe under the GIL */
    Py_XINCREF(found);
    return found;
#endif
}

/* 1 if type has special method `name` (found, and not None), -1 if it is set to None, 0
 * if not found. */
static int type_has(PyTypeObject *type, PyObject *name) {
    PyObject *found = type_lookup(type, name);
    int has = found == NULL ? 0 : found == Py_None ? -1 : 1;
    Py_XDECREF(found);
    return has;
}

/* What a type has: `features` it has, and `blocked` ones, set to None ("the operation is
 * not available": the abc checks say no, but the slot exists and raises TypeError, and
 * e.g. iteration does not fall back to __getitem__). A wrapper of such a type gets the
 * forwarding slot and None for the name. A blocked __hash__ is simply no hash. */
typedef struct {
    uint64_t features, blocked;
} Protocols;

static Protocols protocols_of(PyTypeObject *type) {
    Protocols p = {0, 0};
    for (int f = 0; f < F_NAMED_COUNT; f++) {
        int has = type_has(type, feature_strs[f][0]);
        if (has <= 0 && feature_strs[f][1] != NULL) {
            int other = type_has(type, feature_strs[f][1]);
            has = other != 0 ? other : has;
        }
        if (has > 0) p.features |= BIT(f);
        else if (has < 0 && f != F_HASH) p.blocked |= BIT(f);
    }
    uint64_t either = p.features | p.blocked;
    PySequenceMethods *sq = type->tp_as_sequence;
    if ((either & BIT(F_GETITEM)) && sq != NULL && sq->sq_item != NULL) p.features |= BIT(F_SQ_ITEM);
    if ((either & BIT(F_SETITEM)) && sq != NULL && sq->sq_ass_item != NULL) p.features |= BIT(F_SQ_ASS_ITEM);
    if (type->tp_as_buffer != NULL && type->tp_as_buffer->bf_getbuffer != NULL) p.features |= BIT(F_BUFFER);
    return p;
}

/* ---- forwarding ------------------------------------------------------------------------- */

static PyObject *LocalWrapper_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    return PyObject_Vectorcall(wrapped_of(op), args, nargsf, kwnames);
}

/* Calls the special method `name` of the wrapped object as the interpreter calls one:
 * looked up on its type, bound to it. The wrapper has the method only if that type has,
 * but the object's __class__ may have changed since. */
static PyObject *call_special(PyObject *op, int feature, PyObject *const *args, Py_ssize_t nargs) {
    PyObject *obj = wrapped_of(op), *name = feature_strs[feature][0];
    PyObject *method = type_lookup(Py_TYPE(obj), name);
    if (method == NULL || method == Py_None) {
        Py_XDECREF(method);
        if (!PyErr_Occurred())
            PyErr_Format(PyExc_AttributeError, "'%.200s' object has no attribute '%U'", Py_TYPE(obj)->tp_name, name);
        return NULL;
    }
    PyObject *stack[4];
    PyObject *result;
    if (nargs < 4 && PyType_HasFeature(Py_TYPE(method), Py_TPFLAGS_METHOD_DESCRIPTOR)) {
        stack[0] = obj; /* an unbound method: self first, no bound method made */
        for (Py_ssize_t i = 0; i < nargs; i++) stack[i + 1] = args[i];
        result = PyObject_Vectorcall(method, stack, (size_t)nargs + 1, NULL);
    } else {
        descrgetfunc get = Py_TYPE(method)->tp_descr_get;
        PyObject *bound = get != NULL ? get(method, obj, (PyObject *)Py_TYPE(obj)) : Py_NewRef(method);
        result = bound == NULL ? NULL : PyObject_Vectorcall(bound, args, (size_t)nargs, NULL);
        Py_XDECREF(bound);
    }
    Py_DECREF(method);
    return result;
}

static PyObject *wrap(PyObject *obj);

PyObject *ftu_local_wrap(PyObject *obj) { return wrap(obj); }

static PyObject *LocalWrapper_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"wrapped", NULL};
    PyObject *obj;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:LocalWrapper", kwlist, &obj)) return NULL;
    (void)type; /* the subtype is chosen by what obj's type has */
    return wrap(obj);
}

/* LocalWrapper(obj) without building an argument tuple. */
static PyObject *LocalWrapper_construct(PyObject *type, PyObject *const *args, size_t nargsf, PyObject *kwnames) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (kwnames == NULL && nargs == 1) return wrap(args[0]);
    PyObject *tuple = PyTuple_New(nargs), *kwargs = NULL, *result = NULL;
    if (tuple == NULL) return NULL;
    for (Py_ssize_t i = 0; i < nargs; i++) PyTuple_SET_ITEM(tuple, i, Py_NewRef(args[i]));
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        if ((kwargs = PyDict_New()) == NULL) goto done;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++)
            if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) goto done;
    }
    result = LocalWrapper_new((PyTypeObject *)type, tuple, kwargs);
done:
    Py_DECREF(tuple);
    Py_XDECREF(kwargs);
    return result;
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
    PyObject_GC_Del(op); /* the type is static: no reference to release */
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

/* ---- what every object has ---------------------------------------------------------------- */

static PyObject *LocalWrapper_repr(PyObject *op) { return PyObject_Repr(wrapped_of(op)); }
static PyObject *LocalWrapper_str(PyObject *op) { return PyObject_Str(wrapped_of(op)); }

static PyObject *LocalWrapper_richcompare(PyObject *a, PyObject *b, int opid) {
    return PyObject_RichCompare(unwrap(a), unwrap(b), opid);
}

static PyObject *LocalWrapper_format(PyObject *op, PyObject *spec) { return PyObject_Format(wrapped_of(op), spec); }

static PyObject *LocalWrapper_dir(PyObject *op, PyObject *Py_UNUSED(ignored)) { return PyObject_Dir(wrapped_of(op)); }

static PyObject *LocalWrapper_get_wrapped(PyObject *op, void *Py_UNUSED(closure)) {
    return Py_NewRef(wrapped_of(op));
}

/* ---- binary operators (every wrapper: the other operand may be the one that answers) ----- */

#define BINARY(name, function) \
    static PyObject *LocalWrapper_##name(PyObject *a, PyObject *b) { return function(unwrap(a), unwrap(b)); }

/* The in-place result replaces the wrapper, as it would replace a plain variable. */
static PyObject *rewrap(PyObject *wrapper, PyObject *result) {
    if (result == NULL || result == wrapped_of(wrapper)) {
        Py_XDECREF(result);
        return result == NULL ? NULL : Py_NewRef(wrapper);
    }
    PyObject *new_wrapper = wrap(result);
    Py_DECREF(result);
    return new_wrapper;
}

#define INPLACE(name, function) \
    static PyObject *LocalWrapper_##name(PyObject *a, PyObject *b) { return rewrap(a, function(wrapped_of(a), unwrap(b))); }

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

static PyObject *LocalWrapper_power(PyObject *a, PyObject *b, PyObject *c) {
    return PyNumber_Power(unwrap(a), unwrap(b), unwrap(c));
}

static PyObject *LocalWrapper_inplace_power(PyObject *a, PyObject *b, PyObject *c) {
    return rewrap(a, PyNumber_InPlacePower(wrapped_of(a), unwrap(b), unwrap(c)));
}

/* ---- the protocols a wrapper has only when the wrapped object's type has them ----------- */

static Py_hash_t LocalWrapper_hash(PyObject *op) { return PyObject_Hash(wrapped_of(op)); }

static PyObject *LocalWrapper_iter(PyObject *op) { return PyObject_GetIter(wrapped_of(op)); }

static PyObject *LocalWrapper_iternext(PyObject *op) {
    PyObject *wrapped = wrapped_of(op);
    if (!PyIter_Check(wrapped)) {
        PyErr_Format(PyExc_TypeError, "'%.200s' object is not an iterator", Py_TYPE(wrapped)->tp_name);
        return NULL;
    }
    return Py_TYPE(wrapped)->tp_iternext(wrapped); /* keeps a StopIteration's value */
}

static Py_ssize_t LocalWrapper_length(PyObject *op) { return PyObject_Size(wrapped_of(op)); }

static PyObject *LocalWrapper_getitem(PyObject *op, PyObject *key) { return PyObject_GetItem(wrapped_of(op), key); }

static int LocalWrapper_setitem(PyObject *op, PyObject *key, PyObject *value) {
    return value == NULL ? PyObject_DelItem(wrapped_of(op), key) : PyObject_SetItem(wrapped_of(op), key, value);
}

static PyObject *LocalWrapper_sq_item(PyObject *op, Py_ssize_t i) { return PySequence_GetItem(wrapped_of(op), i); }

static int LocalWrapper_sq_ass_item(PyObject *op, Py_ssize_t i, PyObject *value) {
    return value == NULL ? PySequence_DelItem(wrapped_of(op), i) : PySequence_SetItem(wrapped_of(op), i, value);
}

static int LocalWrapper_contains(PyObject *op, PyObject *item) { return PySequence_Contains(wrapped_of(op), item); }

static int LocalWrapper_bool(PyObject *op) { return PyObject_IsTrue(wrapped_of(op)); }

#define UNARY(name, function) \
    static PyObject *LocalWrapper_##name(PyObject *a) { return function(wrapped_of(a)); }
UNARY(negative, PyNumber_Negative)
UNARY(positive, PyNumber_Positive)
UNARY(absolute, PyNumber_Absolute)
UNARY(invert, PyNumber_Invert)

/* int(), float() and operator.index() check the result of the slot they call: forward
 * the wrapped object's slot itself, so that the check (and any warning) happens once, on
 * exactly what the object returned. */
#define CONVERSION(name, slot, fallback)                                         \
    static PyObject *LocalWrapper_##name(PyObject *a) {                          \
        PyObject *obj = wrapped_of(a);                                           \
        PyNumberMethods *nb = Py_TYPE(obj)->tp_as_number;                        \
        return nb != NULL && nb->slot != NULL ? nb->slot(obj) : fallback(obj);   \
    }
CONVERSION(int, nb_int, PyNumber_Long)
CONVERSION(float, nb_float, PyNumber_Float)
CONVERSION(index, nb_index, PyNumber_Index)

static PyObject *LocalWrapper_descr_get(PyObject *op, PyObject *obj, PyObject *type) {
    PyObject *wrapped = wrapped_of(op);
    descrgetfunc get = Py_TYPE(wrapped)->tp_descr_get;
    if (get == NULL) return Py_NewRef(wrapped);
    return get(wrapped, obj, type);
}

static int LocalWrapper_descr_set(PyObject *op, PyObject *obj, PyObject *value) {
    PyObject *wrapped = wrapped_of(op);
    descrsetfunc set = Py_TYPE(wrapped)->tp_descr_set;
    if (set == NULL) {
        PyErr_Format(PyExc_AttributeError, "'%.200s' object has no attribute '%s'", Py_TYPE(wrapped)->tp_name,
                     value == NULL ? "__delete__" : "__set__");
        return -1;
    }
    return set(wrapped, obj, value);
}

#define ASYNC(name, slot, what)                                                                          \
    static PyObject *LocalWrapper_##name(PyObject *op) {                                                  \
        PyObject *wrapped = wrapped_of(op);                                                               \
        PyAsyncMethods *am = Py_TYPE(wrapped)->tp_as_async;                                               \
        if (am == NULL || am->slot == NULL) {                                                             \
            PyErr_Format(PyExc_TypeError, "'%.200s' object " what, Py_TYPE(wrapped)->tp_name);            \
            return NULL;                                                                                  \
        }                                                                                                 \
        return am->slot(wrapped);                                                                         \
    }
ASYNC(await, am_await, "can't be used in 'await' expression")
ASYNC(aiter, am_aiter, "is not an async iterable")
ASYNC(anext, am_anext, "is not an async iterator")

/* Special methods found by lookup on the type (round(), math.floor(), with, ...). */
#define SPECIAL_NOARGS(name, feature)                                              \
    static PyObject *LocalWrapper_##name(PyObject *op, PyObject *Py_UNUSED(ignored)) { \
        return call_special(op, feature, NULL, 0);                                 \
    }
#define SPECIAL_ONEARG(name, feature)                                 \
    static PyObject *LocalWrapper_##name(PyObject *op, PyObject *arg) { \
        return call_special(op, feature, &arg, 1);                    \
    }
#define SPECIAL_ARGS(name, feature)                                                                   \
    static PyObject *LocalWrapper_##name(PyObject *op, PyObject *const *args, Py_ssize_t nargs) {     \
        return call_special(op, feature, args, nargs);                                                \
    }
SPECIAL_ARGS(round, F_ROUND)
SPECIAL_NOARGS(trunc, F_TRUNC)
SPECIAL_NOARGS(floor, F_FLOOR)
SPECIAL_NOARGS(ceil, F_CEIL)
SPECIAL_NOARGS(complex, F_COMPLEX)
SPECIAL_NOARGS(bytes, F_BYTES)
SPECIAL_NOARGS(reversed, F_REVERSED)
SPECIAL_NOARGS(enter, F_ENTER)
SPECIAL_ARGS(exit, F_EXIT)
SPECIAL_NOARGS(aenter, F_AENTER)
SPECIAL_ARGS(aexit, F_AEXIT)
SPECIAL_NOARGS(length_hint, F_LENGTH_HINT)
SPECIAL_NOARGS(fspath, F_FSPATH)
SPECIAL_NOARGS(copy, F_COPY)
SPECIAL_ONEARG(instancecheck, F_INSTANCECHECK)
SPECIAL_ONEARG(subclasscheck, F_SUBCLASSCHECK)
SPECIAL_ARGS(set_name, F_SET_NAME)

#define FASTCALL(f) (PyCFunction)(void (*)(void))(f)

/* The special methods of the profiles, with the feature that brings each. */
static const struct {
    int feature;
    PyMethodDef def;
} special_methods[] = {
    {F_ROUND, {"__round__", FASTCALL(LocalWrapper_round), METH_FASTCALL, "round() of the wrapped object."}},
    {F_TRUNC, {"__trunc__", LocalWrapper_trunc, METH_NOARGS, "math.trunc() of the wrapped object."}},
    {F_FLOOR, {"__floor__", LocalWrapper_floor, METH_NOARGS, "math.floor() of the wrapped object."}},
    {F_CEIL, {"__ceil__", LocalWrapper_ceil, METH_NOARGS, "math.ceil() of the wrapped object."}},
    {F_COMPLEX, {"__complex__", LocalWrapper_complex, METH_NOARGS, "complex() of the wrapped object."}},
    {F_BYTES, {"__bytes__", LocalWrapper_bytes, METH_NOARGS, "bytes() of the wrapped object."}},
    {F_REVERSED, {"__reversed__", LocalWrapper_reversed, METH_NOARGS, "reversed() of the wrapped object."}},
    {F_ENTER, {"__enter__", LocalWrapper_enter, METH_NOARGS, "The wrapped object's __enter__."}},
    {F_EXIT, {"__exit__", FASTCALL(LocalWrapper_exit), METH_FASTCALL, "The wrapped object's __exit__."}},
    {F_AENTER, {"__aenter__", LocalWrapper_aenter, METH_NOARGS, "The wrapped object's __aenter__."}},
    {F_AEXIT, {"__aexit__", FASTCALL(LocalWrapper_aexit), METH_FASTCALL, "The wrapped object's __aexit__."}},
    {F_LENGTH_HINT, {"__length_hint__", LocalWrapper_length_hint, METH_NOARGS, "The wrapped object's __length_hint__."}},
    {F_FSPATH, {"__fspath__", LocalWrapper_fspath, METH_NOARGS, "os.fspath() of the wrapped object."}},
    {F_COPY, {"__copy__", LocalWrapper_copy, METH_NOARGS, "copy.copy() of the wrapped object."}},
    {F_INSTANCECHECK, {"__instancecheck__", LocalWrapper_instancecheck, METH_O, "isinstance() against the wrapped class."}},
    {F_SUBCLASSCHECK, {"__subclasscheck__", LocalWrapper_subclasscheck, METH_O, "issubclass() against the wrapped class."}},
    {F_SET_NAME, {"__set_name__", FASTCALL(LocalWrapper_set_name), METH_FASTCALL, "The wrapped object's __set_name__."}},
};
#define N_SPECIAL_METHODS (sizeof(special_methods) / sizeof(special_methods[0]))

/* ---- LocalWrapper: the common base -------------------------------------------------------- */

static PyNumberMethods LocalWrapper_as_number = {
    .nb_add = LocalWrapper_add,
    .nb_subtract = LocalWrapper_subtract,
    .nb_multiply = LocalWrapper_multiply,
    .nb_remainder = LocalWrapper_remainder,
    .nb_divmod = LocalWrapper_divmod,
    .nb_power = LocalWrapper_power,
    .nb_lshift = LocalWrapper_lshift,
    .nb_rshift = LocalWrapper_rshift,
    .nb_and = LocalWrapper_and,
    .nb_xor = LocalWrapper_xor,
    .nb_or = LocalWrapper_or,
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
    .nb_matrix_multiply = LocalWrapper_matrix_multiply,
    .nb_inplace_matrix_multiply = LocalWrapper_inplace_matrix_multiply,
};

static PyMethodDef LocalWrapper_methods[] = {
    {"__format__", LocalWrapper_format, METH_O, "Format the wrapped object."},
    {"__dir__", LocalWrapper_dir, METH_NOARGS, "dir() of the wrapped object."},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS, "See PEP 585."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef LocalWrapper_getset[] = {
    {"wrapped", LocalWrapper_get_wrapped, NULL, DOC_LocalWrapper_wrapped, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

/* LocalWrapper has no hash (tp_richcompare without tp_hash: PyType_Ready sets __hash__ to
 * None), no iteration, no call, no unary number slots; its subtypes add them. */
PyTypeObject LocalWrapper_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ft_utils.local.LocalWrapper",
    .tp_basicsize = sizeof(LocalWrapperObject),
    .tp_dealloc = LocalWrapper_dealloc,
    .tp_repr = LocalWrapper_repr,
    .tp_as_number = &LocalWrapper_as_number,
    .tp_str = LocalWrapper_str,
    .tp_getattro = LocalWrapper_getattro,
    .tp_setattro = LocalWrapper_setattro,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .tp_doc = DOC_LocalWrapper,
    .tp_traverse = LocalWrapper_traverse,
    .tp_clear = LocalWrapper_clear,
    .tp_richcompare = LocalWrapper_richcompare,
    .tp_weaklistoffset = offsetof(LocalWrapperObject, weakreflist),
    .tp_methods = LocalWrapper_methods,
    .tp_getset = LocalWrapper_getset,
    .tp_new = LocalWrapper_new,
    .tp_vectorcall = LocalWrapper_construct,
};

/* The wrapped object's buffer: the view's owner is the object itself, so releasing the
 * view goes to the object's bf_releasebuffer, not through the wrapper. */
static int LocalWrapper_getbuffer(PyObject *op, Py_buffer *view, int flags) {
    return PyObject_GetBuffer(wrapped_of(op), view, flags);
}

static PyBufferProcs LocalWrapper_as_buffer = {.bf_getbuffer = LocalWrapper_getbuffer};

/* ---- the profiles: one static subtype per feature set -------------------------------------- */

typedef struct {
    PyTypeObject type;
    PyNumberMethods number;
    PySequenceMethods sequence;
    PyMappingMethods mapping;
    PyAsyncMethods async;
    PyMethodDef methods[N_SPECIAL_METHODS + 1];
    Protocols protocols;
} Profile;

/* Copied into each profile before PyType_Ready: the header of a statically allocated
 * object (immortal on 3.12+), the slots every wrapper has. */
static const PyTypeObject profile_template = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ft_utils.local.LocalWrapper",
    .tp_basicsize = sizeof(LocalWrapperObject),
    .tp_dealloc = LocalWrapper_dealloc,
    .tp_repr = LocalWrapper_repr,
    .tp_str = LocalWrapper_str,
    .tp_getattro = LocalWrapper_getattro,
    .tp_setattro = LocalWrapper_setattro,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .tp_doc = DOC_LocalWrapper,
    .tp_traverse = LocalWrapper_traverse,
    .tp_clear = LocalWrapper_clear,
    .tp_richcompare = LocalWrapper_richcompare, /* set, so that tp_hash is not inherited */
    .tp_weaklistoffset = offsetof(LocalWrapperObject, weakreflist),
    .tp_base = &LocalWrapper_Type,
    .tp_new = LocalWrapper_new,
    .tp_vectorcall = LocalWrapper_construct,
};

/* Profiles are never freed. A program would need thousands of classes with different
 * sets of special methods to fill the table. */
#define MAX_PROFILES 4096
static Profile *_Atomic profiles[MAX_PROFILES];
static _Atomic int nprofiles;
/* PyType_Ready may wait for a lock of the interpreter, detached: a PyMutex, not an
 * ftu_pylock. Free again in a forked child (ftu_local_wrapper_after_fork_child). */
#ifdef Py_GIL_DISABLED
static PyMutex profiles_lock;
#define PROFILES_LOCK() PyMutex_Lock(&profiles_lock)
#define PROFILES_UNLOCK() PyMutex_Unlock(&profiles_lock)
#else
#define PROFILES_LOCK() ((void)0)
#define PROFILES_UNLOCK() ((void)0)
#endif

void ftu_local_wrapper_after_fork_child(void) {
#ifdef Py_GIL_DISABLED
    memset(&profiles_lock, 0, sizeof(profiles_lock)); /* its holder is not in the child */
#endif
}

/* type version tag -> profile index: ((uint64_t)tag << 32) | index, 0 when empty. A tag
 * is never 0 and never reused, so the tag in an entry names the type state it holds. */
#define TYPE_CACHE_SIZE 1024
static _Atomic uint64_t type_cache[TYPE_CACHE_SIZE];

static Profile *make_profile(Protocols protocols) {
    Profile *p = PyMem_RawCalloc(1, sizeof(Profile));
    if (p == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(&p->type, &profile_template, sizeof(PyTypeObject));
    p->protocols = protocols;
    uint64_t f = protocols.features | protocols.blocked; /* the slots */
    PyTypeObject *t = &p->type;
    PyNumberMethods *nb = &p->number;
    *nb = LocalWrapper_as_number;
    if (f & BIT(F_BOOL)) nb->nb_bool = LocalWrapper_bool;
    if (f & BIT(F_NEG)) nb->nb_negative = LocalWrapper_negative;
    if (f & BIT(F_POS)) nb->nb_positive = LocalWrapper_positive;
    if (f & BIT(F_ABS)) nb->nb_absolute = LocalWrapper_absolute;
    if (f & BIT(F_INVERT)) nb->nb_invert = LocalWrapper_invert;
    if (f & BIT(F_INT)) nb->nb_int = LocalWrapper_int;
    if (f & BIT(F_FLOAT)) nb->nb_float = LocalWrapper_float;
    if (f & BIT(F_INDEX)) nb->nb_index = LocalWrapper_index;
    t->tp_as_number = nb;
    if (f & BIT(F_LEN)) {
        p->sequence.sq_length = LocalWrapper_length;
        p->mapping.mp_length = LocalWrapper_length;
    }
    if (f & BIT(F_CONTAINS)) p->sequence.sq_contains = LocalWrapper_contains;
    if (f & BIT(F_GETITEM)) p->mapping.mp_subscript = LocalWrapper_getitem;
    if (f & BIT(F_SQ_ITEM)) p->sequence.sq_item = LocalWrapper_sq_item;
    if (f & BIT(F_SETITEM)) p->mapping.mp_ass_subscript = LocalWrapper_setitem;
    if (f & BIT(F_SQ_ASS_ITEM)) p->sequence.sq_ass_item = LocalWrapper_sq_ass_item;
    t->tp_as_sequence = &p->sequence;
    t->tp_as_mapping = &p->mapping;
    if (f & BIT(F_AWAIT)) p->async.am_await = LocalWrapper_await;
    if (f & BIT(F_AITER)) p->async.am_aiter = LocalWrapper_aiter;
    if (f & BIT(F_ANEXT)) p->async.am_anext = LocalWrapper_anext;
    t->tp_as_async = &p->async;
    if (f & BIT(F_HASH)) t->tp_hash = LocalWrapper_hash;
    if (f & BIT(F_CALL)) {
        t->tp_call = PyVectorcall_Call;
        t->tp_vectorcall_offset = offsetof(LocalWrapperObject, vectorcall);
        t->tp_flags |= Py_TPFLAGS_HAVE_VECTORCALL;
    }
    if (f & BIT(F_ITER)) t->tp_iter = LocalWrapper_iter;
    if (f & BIT(F_NEXT)) t->tp_iternext = LocalWrapper_iternext;
    if (f & BIT(F_GET)) t->tp_descr_get = LocalWrapper_descr_get;
    if (f & BIT(F_SET)) t->tp_descr_set = LocalWrapper_descr_set;
    if (f & BIT(F_BUFFER)) t->tp_as_buffer = &LocalWrapper_as_buffer;
    size_t n = 0;
    for (size_t i = 0; i < N_SPECIAL_METHODS; i++)
        if (protocols.features & BIT(special_methods[i].feature)) p->methods[n++] = special_methods[i].def;
    t->tp_methods = p->methods;
    if (PyType_Ready(t) < 0) return NULL; /* not freed: the base may already list it */
    if (protocols.blocked != 0) {
#if PY_VERSION_HEX >= 0x030C0000
        PyObject *dict = PyType_GetDict(t);
#else
        PyObject *dict = Py_NewRef(t->tp_dict);
#endif
        for (int b = 0; b < F_NAMED_COUNT; b++) {
            if (!(protocols.blocked & BIT(b))) continue;
            for (int k = 0; k < 2; k++) {
                if (feature_strs[b][k] != NULL && PyDict_SetItem(dict, feature_strs[b][k], Py_None) < 0) {
                    Py_DECREF(dict);
                    return NULL; /* the half-made type is not published; it leaks */
                }
            }
        }
        Py_DECREF(dict);
        PyType_Modified(t);
    }
    return p;
}

static inline int same_protocols(const Profile *p, Protocols q) {
    return p->protocols.features == q.features && p->protocols.blocked == q.blocked;
}

/* The index of the profile for q, made if new; -1 with an error. */
static int profile_index(Protocols q) {
    int n = atomic_load_explicit(&nprofiles, memory_order_acquire);
    for (int i = 0; i < n; i++)
        if (same_protocols(atomic_load_explicit(&profiles[i], memory_order_relaxed), q)) return i;
    /* PyType_Ready runs no Python code (3.12+ collect only at eval-breaker checks; under
     * the 3.11 GIL the lock is compiled away, and a collection that made the same
     * profile meanwhile is caught by the second search). */
    PROFILES_LOCK();
    int found = -1;
    n = atomic_load_explicit(&nprofiles, memory_order_relaxed);
    for (int i = 0; i < n && found < 0; i++)
        if (same_protocols(atomic_load_explicit(&profiles[i], memory_order_relaxed), q)) found = i;
    if (found < 0 && n < MAX_PROFILES) {
        Profile *p = make_profile(q);
        if (p != NULL) {
            n = atomic_load_explicit(&nprofiles, memory_order_relaxed);
            for (int i = 0; i < n && found < 0; i++)
                if (same_protocols(atomic_load_explicit(&profiles[i], memory_order_relaxed), q)) found = i;
            if (found < 0 && n < MAX_PROFILES) {
                atomic_store_explicit(&profiles[n], p, memory_order_relaxed);
                atomic_store_explicit(&nprofiles, n + 1, memory_order_release);
                found = n;
            } /* else: a twin made during PyType_Ready under the GIL; this one is unused */
        }
    }
    PROFILES_UNLOCK();
    if (found < 0 && !PyErr_Occurred())
        PyErr_Format(PyExc_RuntimeError, "LocalWrapper: more than %d different sets of special methods", MAX_PROFILES);
    return found;
}

static inline unsigned int version_tag(PyTypeObject *type) {
    return __atomic_load_n(&type->tp_version_tag, __ATOMIC_RELAXED);
}

#if defined(__GNUC__)
#define FTU_COLD __attribute__((noinline, cold))
#else
#define FTU_COLD
#endif

/* Give the type a version tag if it has none, then read what it has; cache the answer
 * only if the type did not change meanwhile. Kept out of line: wrap() stays small. */
static FTU_COLD PyTypeObject *profile_slow(PyTypeObject *type) {
    unsigned int tag;
#if PY_VERSION_HEX >= 0x030C0000
    PyUnstable_Type_AssignVersionTag(type);
#else
    Py_XDECREF(type_lookup(type, feature_strs[F_HASH][0])); /* assigns one as a side effect */
#endif
    tag = version_tag(type);
    int index = profile_index(protocols_of(type));
    if (index < 0) return NULL;
    if (tag != 0 && version_tag(type) == tag)
        atomic_store_explicit(&type_cache[tag % TYPE_CACHE_SIZE], ((uint64_t)tag << 32) | (uint32_t)index,
                              memory_order_release);
    return &atomic_load_explicit(&profiles[index], memory_order_relaxed)->type;
}

/* The wrapper type for objects of the given type. */
static inline PyTypeObject *profile_for(PyTypeObject *type) {
    unsigned int tag = version_tag(type);
    if (tag != 0) {
        uint64_t entry = atomic_load_explicit(&type_cache[tag % TYPE_CACHE_SIZE], memory_order_acquire);
        if ((unsigned int)(entry >> 32) == tag)
            return &atomic_load_explicit(&profiles[(uint32_t)entry], memory_order_relaxed)->type;
    }
    return profile_slow(type);
}

static PyObject *wrap(PyObject *obj) {
    PyTypeObject *type = profile_for(Py_TYPE(obj));
    if (type == NULL) return NULL;
    LocalWrapperObject *self = PyObject_GC_New(LocalWrapperObject, type);
    if (self == NULL) return NULL;
    self->wrapped = Py_NewRef(obj);
    self->vectorcall = LocalWrapper_vectorcall;
    self->weakreflist = NULL;
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

int local_wrapper_module_init(PyObject *module) {
    for (int f = 0; f < F_NAMED_COUNT; f++) {
        for (int k = 0; k < 2; k++) {
            if (feature_names[f][k] == NULL || feature_strs[f][k] != NULL) continue;
            feature_strs[f][k] = PyUnicode_InternFromString(feature_names[f][k]);
            if (feature_strs[f][k] == NULL) return -1;
        }
    }
    return ftu_add_type(module, &LocalWrapper_Type);
}
