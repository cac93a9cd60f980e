/*
 * AtomicInt64: a Python type over one int64 cell of the C core.
 *
 * Reading operators (a + 1, a < b, int(a), ...) read the value once and then behave
 * exactly as the int they read. Writing operations (set, add, incr, in-place operators)
 * take integers only and go through the core's checked operations: a result outside the
 * int64 range raises OverflowError and leaves the value unchanged. The core's operations
 * are inlined here (ftu_atomic_impl.h): a method is its atomic instructions plus the
 * conversions, with no call into another translation unit.
 */
#include "native.h"

static inline int64_t *cell(PyObject *self) { return &((AtomicInt64Object *)self)->value; }
static inline int64_t load(PyObject *self) { return ftu_i64_load_inline(cell(self)); }

/* Converts an integer operand (int, AtomicInt64 or an object with __index__) to int64.
 * what names the operand in error messages. Returns 0, or -1 with TypeError or
 * OverflowError set. */
static int operand_to_int64(PyObject *obj, int64_t *out, const char *what) {
    if (ftu_compact_int(obj, out)) return 0;
    if (AtomicInt64_Check(obj)) {
        *out = load(obj);
        return 0;
    }
    PyObject *index;
    if (PyLong_Check(obj)) {
        index = Py_NewRef(obj);
    } else {
        PyNumberMethods *nb = Py_TYPE(obj)->tp_as_number;
        if (nb == NULL || nb->nb_index == NULL) {
            PyErr_Format(PyExc_TypeError, "%s must be an integer, not '%.200s'", what, Py_TYPE(obj)->tp_name);
            return -1;
        }
        index = PyNumber_Index(obj);
        if (index == NULL) return -1;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(index, &overflow);
    if (overflow) {
        PyErr_Format(PyExc_OverflowError, "%s %R is outside the int64 range [-2**63, 2**63 - 1]", what, index);
        Py_DECREF(index);
        return -1;
    }
    Py_DECREF(index);
    if (v == -1 && PyErr_Occurred()) return -1;
    *out = (int64_t)v;
    return 0;
}

/* Turns a failed core status into a Python exception. */
static PyObject *raise_status(int status, int64_t seen, const char *op, int64_t operand) {
    switch (status) {
    case FTU_OVERFLOW:
        PyErr_Format(PyExc_OverflowError,
                     "AtomicInt64: %lld %s %lld is outside the int64 range; value left unchanged",
                     (long long)seen, op, (long long)operand);
        break;
    case FTU_ZERO_DIVISION:
        PyErr_SetString(PyExc_ZeroDivisionError, "integer division or modulo by zero");
        break;
    case FTU_NEGATIVE_SHIFT:
        PyErr_SetString(PyExc_ValueError, "negative shift count");
        break;
    case FTU_NEGATIVE_EXPONENT:
        PyErr_SetString(PyExc_ValueError,
                        "AtomicInt64 **= needs a non-negative exponent (the result would not be an int)");
        break;
    default:
        PyErr_Format(PyExc_SystemError, "ft_utils core returned unknown status %d", status);
    }
    return NULL;
}

/* ---- construction, conversion ------------------------------------------------------ */

static int AtomicInt64_init(PyObject *op, PyObject *args, PyObject *kwargs);

static int parse_value(PyObject *args, PyObject *kwargs, int64_t *value) {
    static char *kwlist[] = {"value", NULL};
    PyObject *obj = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:AtomicInt64", kwlist, &obj)) return -1;
    *value = 0;
    return obj == NULL ? 0 : operand_to_int64(obj, value, "AtomicInt64 value");
}

/* The arguments go to __new__ and __init__ alike (see ftu_new_takes_arguments), so a
 * subclass's __init__ may take arguments of its own and pass the value on to
 * super().__init__(value). */
static PyObject *AtomicInt64_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    int64_t initial = 0;
    if (ftu_new_takes_arguments(type, AtomicInt64_new, AtomicInt64_init) && parse_value(args, kwargs, &initial) < 0)
        return NULL;
    AtomicInt64Object *self = (AtomicInt64Object *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    ftu_i64_store_inline(&self->value, initial);
    return (PyObject *)self;
}

/* Stores the value, as set() does (called again, it sets again). */
static int AtomicInt64_init(PyObject *op, PyObject *args, PyObject *kwargs) {
    if (!ftu_init_takes_arguments(Py_TYPE(op), AtomicInt64_new, AtomicInt64_init)) return 0;
    int64_t value;
    if (parse_value(args, kwargs, &value) < 0) return -1;
    ftu_i64_store_inline(cell(op), value);
    return 0;
}

static void AtomicInt64_dealloc(PyObject *self) {
    PyTypeObject *type = Py_TYPE(self);
    if (((AtomicInt64Object *)self)->weakreflist != NULL) PyObject_ClearWeakRefs(self);
    type->tp_free(self);
}

static PyObject *AtomicInt64_repr(PyObject *self) {
    return PyUnicode_FromFormat("%s(%lld)", ftu_type_name(Py_TYPE(self)), (long long)load(self));
}

static PyObject *AtomicInt64_str(PyObject *self) {
    PyObject *v = PyLong_FromLongLong(load(self));
    if (v == NULL) return NULL;
    PyObject *s = PyObject_Str(v);
    Py_DECREF(v);
    return s;
}

static PyObject *AtomicInt64_int(PyObject *self) { return PyLong_FromLongLong(load(self)); }
static PyObject *AtomicInt64_float(PyObject *self) { return PyFloat_FromDouble((double)load(self)); }
static int AtomicInt64_bool(PyObject *self) { return load(self) != 0; }

/* ---- methods --------------------------------------------------------------------- */

static PyObject *AtomicInt64_get(PyObject *self, PyObject *Py_UNUSED(ignored)) {
    return PyLong_FromLongLong(load(self));
}

static PyObject *AtomicInt64_set(PyObject *self, PyObject *value) {
    int64_t v;
    if (operand_to_int64(value, &v, "AtomicInt64.set() value") < 0) return NULL;
    ftu_i64_store_inline(cell(self), v);
    Py_RETURN_NONE;
}

static PyObject *checked_add(PyObject *self, int64_t operand) {
    ftu_i64_result r = ftu_i64_add_inline(cell(self), operand);
    if (r.status != FTU_OK) return raise_status(r.status, r.value, "+", operand);
    return PyLong_FromLongLong(r.value);
}

static PyObject *AtomicInt64_incr(PyObject *self, PyObject *Py_UNUSED(ignored)) { return checked_add(self, 1); }

static PyObject *AtomicInt64_decr(PyObject *self, PyObject *Py_UNUSED(ignored)) {
    ftu_i64_result r = ftu_i64_sub_inline(cell(self), 1);
    if (r.status != FTU_OK) return raise_status(r.status, r.value, "-", 1);
    return PyLong_FromLongLong(r.value);
}

static PyObject *AtomicInt64_add(PyObject *self, PyObject *value) {
    int64_t v;
    if (operand_to_int64(value, &v, "AtomicInt64.add() value") < 0) return NULL;
    return checked_add(self, v);
}

static PyObject *AtomicInt64_exchange(PyObject *self, PyObject *value) {
    int64_t v;
    if (operand_to_int64(value, &v, "AtomicInt64.exchange() value") < 0) return NULL;
    return PyLong_FromLongLong(ftu_i64_exchange_inline(cell(self), v));
}

static PyObject *AtomicInt64_compare_exchange(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "compare_exchange() takes exactly 2 arguments (%zd given)", nargs);
        return NULL;
    }
    int64_t expected, desired;
    if (operand_to_int64(args[0], &expected, "AtomicInt64.compare_exchange() expected") < 0) return NULL;
    if (operand_to_int64(args[1], &desired, "AtomicInt64.compare_exchange() value") < 0) return NULL;
    return PyBool_FromLong(ftu_i64_compare_exchange_inline(cell(self), expected, desired) == expected);
}

static PyObject *AtomicInt64_format(PyObject *self, PyObject *spec) {
    PyObject *v = PyLong_FromLongLong(load(self));
    if (v == NULL) return NULL;
    PyObject *s = PyObject_Format(v, spec);
    Py_DECREF(v);
    return s;
}

/* round(a, ndigits) as int.__round__ does; without these, math.floor(a) and friends would
 * go through float and lose precision above 2**53. */
static PyObject *AtomicInt64_round(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs > 1) {
        PyErr_Format(PyExc_TypeError, "__round__() takes at most 1 argument (%zd given)", nargs);
        return NULL;
    }
    PyObject *v = PyLong_FromLongLong(load(self));
    if (v == NULL || nargs == 0 || args[0] == Py_None) return v;
    PyObject *r = PyObject_CallMethod(v, "__round__", "O", args[0]);
    Py_DECREF(v);
    return r;
}

/* Copies and pickles: see ft_utils/_reconstruct.py. */
static PyObject *AtomicInt64_reduce(PyObject *self, PyObject *Py_UNUSED(ignored)) {
    return ftu_reduce_atomic(self, &AtomicInt64_Type, PyLong_FromLongLong(load(self)));
}

static PyObject *AtomicInt64_setstate(PyObject *self, PyObject *state) {
    PyObject *attributes, *value = ftu_parse_state(state, "AtomicInt64", &attributes);
    int64_t v;
    if (value == NULL || operand_to_int64(value, &v, "AtomicInt64 value") < 0) return NULL;
    if (ftu_set_attributes(self, attributes) < 0) return NULL; /* first: a failure changes nothing */
    ftu_i64_store_inline(cell(self), v);
    Py_RETURN_NONE;
}

/* ---- reading operators: behave as the int value ------------------------------------ */

/* A reading operator takes a snapshot of the value and then does exactly what that int
 * would do with the other operand:
 *  - with an int (bool and int subclasses included) or another AtomicInt64: the int
 *    operation itself, through the full dispatch (an int subclass's reflected method
 *    still comes first, as it does for an int);
 *  - with anything else: int's own slots answer NotImplemented to every non-int, so the
 *    int's result is whatever the other type's slot makes of (int, other) or (other,
 *    int). That slot is called here with the snapshot; if it declines too, we decline
 *    and Python raises the TypeError it raises for an int (naming AtomicInt64), after
 *    trying the sequence fallbacks ("ab" * n) with the AtomicInt64 itself, which has
 *    __index__ as an int does. */

/* The snapshot of a if it is an AtomicInt64, else a new reference to a. */
static PyObject *snapshot(PyObject *a) {
    return AtomicInt64_Check(a) ? PyLong_FromLongLong(load(a)) : Py_NewRef(a);
}

#define NB_SLOT(type, offset) \
    ((type)->tp_as_number == NULL ? NULL : *(binaryfunc *)(((char *)(type)->tp_as_number) + (offset)))

static PyObject *binary(PyObject *a, PyObject *b, binaryfunc int_op, size_t slot_offset) {
    int a_atomic = AtomicInt64_Check(a);
    PyObject *other = a_atomic ? b : a;
    int other_atomic = 0; /* the int test first: it is the common case, and a flag test */
    binaryfunc slot = NULL;
    if (!PyLong_Check(other) && !(other_atomic = AtomicInt64_Check(other))) {
        slot = NB_SLOT(Py_TYPE(other), slot_offset);
        if (slot == NULL) Py_RETURN_NOTIMPLEMENTED;
    }
    PyObject *x = a_atomic ? PyLong_FromLongLong(load(a)) : Py_NewRef(a);
    if (x == NULL) return NULL;
    PyObject *y = !a_atomic || other_atomic ? PyLong_FromLongLong(load(b)) : Py_NewRef(b);
    if (y == NULL) {
        Py_DECREF(x);
        return NULL;
    }
    PyObject *result = slot != NULL ? slot(x, y) : int_op(x, y);
    Py_DECREF(x);
    Py_DECREF(y);
    return result;
}

#define BINARY(name, func)                                             \
    static PyObject *AtomicInt64_##name(PyObject *a, PyObject *b) {    \
        return binary(a, b, func, offsetof(PyNumberMethods, name));    \
    }
BINARY(nb_add, PyNumber_Add)
BINARY(nb_subtract, PyNumber_Subtract)
BINARY(nb_multiply, PyNumber_Multiply)
BINARY(nb_floor_divide, PyNumber_FloorDivide)
BINARY(nb_true_divide, PyNumber_TrueDivide)
BINARY(nb_remainder, PyNumber_Remainder)
BINARY(nb_divmod, PyNumber_Divmod)
BINARY(nb_lshift, PyNumber_Lshift)
BINARY(nb_rshift, PyNumber_Rshift)
BINARY(nb_and, PyNumber_And)
BINARY(nb_or, PyNumber_Or)
BINARY(nb_xor, PyNumber_Xor)
BINARY(nb_matrix_multiply, PyNumber_MatrixMultiply)

static PyObject *AtomicInt64_nb_power(PyObject *a, PyObject *b, PyObject *mod) {
    if (mod == Py_None) {
        PyObject *other = AtomicInt64_Check(a) ? b : a;
        if (!AtomicInt64_Check(other) && !PyLong_Check(other)) {
            ternaryfunc slot = Py_TYPE(other)->tp_as_number ? Py_TYPE(other)->tp_as_number->nb_power : NULL;
            if (slot == NULL) Py_RETURN_NOTIMPLEMENTED;
            PyObject *x = snapshot(a), *y = x ? snapshot(b) : NULL, *result = NULL;
            if (y != NULL) result = slot(x, y, Py_None);
            Py_XDECREF(x);
            Py_XDECREF(y);
            return result;
        }
    }
    /* Two ints, or three-argument pow (we may be any of the three): what pow() gives
     * with every AtomicInt64 replaced by its int. */
    PyObject *x = snapshot(a), *y = NULL, *m = NULL, *result = NULL;
    if (x == NULL || (y = snapshot(b)) == NULL || (m = snapshot(mod)) == NULL) goto done;
    result = PyNumber_Power(x, y, m);
done:
    Py_XDECREF(x);
    Py_XDECREF(y);
    Py_XDECREF(m);
    return result;
}

#define UNARY(name, func)                                  \
    static PyObject *AtomicInt64_##name(PyObject *self) {  \
        PyObject *v = PyLong_FromLongLong(load(self));     \
        if (v == NULL) return NULL;                        \
        PyObject *r = func(v);                             \
        Py_DECREF(v);                                      \
        return r;                                          \
    }
UNARY(nb_negative, PyNumber_Negative)
UNARY(nb_absolute, PyNumber_Absolute)
UNARY(nb_invert, PyNumber_Invert)

static const int swapped_op[] = {Py_GT, Py_GE, Py_EQ, Py_NE, Py_LT, Py_LE};

static PyObject *AtomicInt64_richcompare(PyObject *self, PyObject *other, int op) {
    int64_t a = load(self), b;
    if (ftu_compact_int(other, &b)) Py_RETURN_RICHCOMPARE(a, b, op);
    if (PyLong_CheckExact(other) || PyBool_Check(other)) {
        int overflow = 0;
        b = PyLong_AsLongLongAndOverflow(other, &overflow);
        if (overflow) { /* any int64 is below 2**63 and above -2**63 - 1 */
            a = 0;
            b = overflow;
        } else if (b == -1 && PyErr_Occurred()) {
            return NULL;
        }
    } else if (AtomicInt64_Check(other)) {
        b = load(other);
    } else {
        /* As for the binary operators: an int subclass compares with the int through
         * the full dispatch; for anything else the int's answer is the other type's
         * reflected comparison (int itself answers NotImplemented), or NotImplemented. */
        richcmpfunc reflected = Py_TYPE(other)->tp_richcompare;
        if (!PyLong_Check(other) && reflected == NULL) Py_RETURN_NOTIMPLEMENTED;
        PyObject *x = PyLong_FromLongLong(a);
        if (x == NULL) return NULL;
        PyObject *result = PyLong_Check(other) ? PyObject_RichCompare(x, other, op)
                                               : reflected(other, x, swapped_op[op]);
        Py_DECREF(x);
        return result;
    }
    Py_RETURN_RICHCOMPARE(a, b, op);
}

/* ---- writing operators: atomic, checked, integers only ----------------------------- */

/* A non-integer operand is a TypeError here rather than NotImplemented: Python would
 * otherwise fall back to the reading operator and rebind the name (a *= "ab" would make
 * a a str through str's repeat). */
static int inplace_operand(PyObject *self, PyObject *other, int64_t *out, const char *symbol) {
    PyNumberMethods *nb = Py_TYPE(other)->tp_as_number;
    if (!AtomicInt64_Check(other) && !PyLong_Check(other) && (nb == NULL || nb->nb_index == NULL)) {
        PyErr_Format(PyExc_TypeError, "unsupported operand type(s) for %s: '%s' and '%.200s'", symbol,
                     ftu_type_name(Py_TYPE(self)), Py_TYPE(other)->tp_name);
        return -1;
    }
    return operand_to_int64(other, out, "operand of AtomicInt64 in-place operator");
}

#define INPLACE(name, core_op, symbol)                                                       \
    static PyObject *AtomicInt64_##name(PyObject *self, PyObject *other) {                  \
        int64_t v;                                                                           \
        if (inplace_operand(self, other, &v, symbol) < 0) return NULL;                       \
        ftu_i64_result r = core_op(cell(self), v);                                           \
        if (r.status != FTU_OK) return raise_status(r.status, r.value, symbol, v);           \
        return Py_NewRef(self);                                                              \
    }
INPLACE(nb_inplace_add, ftu_i64_add_inline, "+=")
INPLACE(nb_inplace_subtract, ftu_i64_sub_inline, "-=")
INPLACE(nb_inplace_multiply, ftu_i64_mul_inline, "*=")
INPLACE(nb_inplace_floor_divide, ftu_i64_floordiv_inline, "//=")
INPLACE(nb_inplace_remainder, ftu_i64_mod_inline, "%=")
INPLACE(nb_inplace_lshift, ftu_i64_lshift_inline, "<<=")
INPLACE(nb_inplace_rshift, ftu_i64_rshift_inline, ">>=")
INPLACE(nb_inplace_and, ftu_i64_and_inline, "&=")
INPLACE(nb_inplace_or, ftu_i64_or_inline, "|=")
INPLACE(nb_inplace_xor, ftu_i64_xor_inline, "^=")
INPLACE(nb_inplace_power_2, ftu_i64_pow_inline, "**=")

static PyObject *AtomicInt64_nb_inplace_power(PyObject *self, PyObject *other, PyObject *mod) {
    if (mod != Py_None) Py_RETURN_NOTIMPLEMENTED;
    return AtomicInt64_nb_inplace_power_2(self, other);
}

/* Without this, a /= 2 would silently rebind a to a float. */
static PyObject *AtomicInt64_nb_inplace_true_divide(PyObject *self, PyObject *other) {
    (void)self;
    (void)other;
    PyErr_SetString(PyExc_TypeError, "AtomicInt64 holds an int: use //= for floor division, or read it with int()");
    return NULL;
}

/* An int has no @ with any integer, so @= could only rebind the name to something else
 * (another type's __rmatmul__ result): refused like every non-integer operand. */
static PyObject *AtomicInt64_nb_inplace_matrix_multiply(PyObject *self, PyObject *other) {
    PyErr_Format(PyExc_TypeError, "unsupported operand type(s) for @=: '%s' and '%.200s'", ftu_type_name(Py_TYPE(self)),
                 Py_TYPE(other)->tp_name);
    return NULL;
}

/* ---- type ------------------------------------------------------------------------ */

static PyNumberMethods AtomicInt64_as_number = {
    .nb_add = AtomicInt64_nb_add,
    .nb_subtract = AtomicInt64_nb_subtract,
    .nb_multiply = AtomicInt64_nb_multiply,
    .nb_remainder = AtomicInt64_nb_remainder,
    .nb_divmod = AtomicInt64_nb_divmod,
    .nb_power = AtomicInt64_nb_power,
    .nb_negative = AtomicInt64_nb_negative,
    .nb_positive = AtomicInt64_int,
    .nb_absolute = AtomicInt64_nb_absolute,
    .nb_bool = AtomicInt64_bool,
    .nb_invert = AtomicInt64_nb_invert,
    .nb_lshift = AtomicInt64_nb_lshift,
    .nb_rshift = AtomicInt64_nb_rshift,
    .nb_and = AtomicInt64_nb_and,
    .nb_xor = AtomicInt64_nb_xor,
    .nb_or = AtomicInt64_nb_or,
    .nb_int = AtomicInt64_int,
    .nb_float = AtomicInt64_float,
    .nb_inplace_add = AtomicInt64_nb_inplace_add,
    .nb_inplace_subtract = AtomicInt64_nb_inplace_subtract,
    .nb_inplace_multiply = AtomicInt64_nb_inplace_multiply,
    .nb_inplace_remainder = AtomicInt64_nb_inplace_remainder,
    .nb_inplace_power = AtomicInt64_nb_inplace_power,
    .nb_inplace_lshift = AtomicInt64_nb_inplace_lshift,
    .nb_inplace_rshift = AtomicInt64_nb_inplace_rshift,
    .nb_inplace_and = AtomicInt64_nb_inplace_and,
    .nb_inplace_xor = AtomicInt64_nb_inplace_xor,
    .nb_inplace_or = AtomicInt64_nb_inplace_or,
    .nb_floor_divide = AtomicInt64_nb_floor_divide,
    .nb_true_divide = AtomicInt64_nb_true_divide,
    .nb_inplace_floor_divide = AtomicInt64_nb_inplace_floor_divide,
    .nb_inplace_true_divide = AtomicInt64_nb_inplace_true_divide,
    .nb_index = AtomicInt64_int,
    .nb_matrix_multiply = AtomicInt64_nb_matrix_multiply,
    .nb_inplace_matrix_multiply = AtomicInt64_nb_inplace_matrix_multiply,
};

/* The numbers.Integral interface an int has (Fraction and Decimal use numerator and
 * denominator of a Rational operand). */
static PyObject *AtomicInt64_get_value(PyObject *self, void *Py_UNUSED(closure)) {
    return PyLong_FromLongLong(load(self));
}
static PyObject *AtomicInt64_get_one(PyObject *self, void *Py_UNUSED(closure)) {
    (void)self;
    return PyLong_FromLong(1);
}
static PyObject *AtomicInt64_get_zero(PyObject *self, void *Py_UNUSED(closure)) {
    (void)self;
    return PyLong_FromLong(0);
}

static PyGetSetDef AtomicInt64_getset[] = {
    {"numerator", AtomicInt64_get_value, NULL, DOC_AtomicInt64_numerator, NULL},
    {"denominator", AtomicInt64_get_one, NULL, DOC_AtomicInt64_denominator, NULL},
    {"real", AtomicInt64_get_value, NULL, DOC_AtomicInt64_real, NULL},
    {"imag", AtomicInt64_get_zero, NULL, DOC_AtomicInt64_imag, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef AtomicInt64_methods[] = {
    {"conjugate", AtomicInt64_get, METH_NOARGS, DOC_AtomicInt64_conjugate},
    {"get", AtomicInt64_get, METH_NOARGS, DOC_AtomicInt64_get},
    {"set", AtomicInt64_set, METH_O, DOC_AtomicInt64_set},
    {"incr", AtomicInt64_incr, METH_NOARGS, DOC_AtomicInt64_incr},
    {"decr", AtomicInt64_decr, METH_NOARGS, DOC_AtomicInt64_decr},
    {"add", AtomicInt64_add, METH_O, DOC_AtomicInt64_add},
    {"exchange", AtomicInt64_exchange, METH_O, DOC_AtomicInt64_exchange},
    {"compare_exchange", (PyCFunction)(void (*)(void))AtomicInt64_compare_exchange, METH_FASTCALL,
     DOC_AtomicInt64_compare_exchange},
    {"__format__", AtomicInt64_format, METH_O, "Format the value as int.__format__ does."},
    {"__round__", (PyCFunction)(void (*)(void))AtomicInt64_round, METH_FASTCALL, "round() of the value, as an int."},
    {"__trunc__", AtomicInt64_get, METH_NOARGS, "math.trunc() of the value: the value."},
    {"__floor__", AtomicInt64_get, METH_NOARGS, "math.floor() of the value: the value."},
    {"__ceil__", AtomicInt64_get, METH_NOARGS, "math.ceil() of the value: the value."},
    {"__reduce__", AtomicInt64_reduce, METH_NOARGS, "Pickle and copy support."},
    {"__setstate__", AtomicInt64_setstate, METH_O, "Pickle and copy support."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject AtomicInt64_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ft_utils.concurrency.AtomicInt64",
    .tp_basicsize = sizeof(AtomicInt64Object),
    .tp_dealloc = AtomicInt64_dealloc,
    .tp_repr = AtomicInt64_repr,
    .tp_as_number = &AtomicInt64_as_number,
    .tp_hash = PyObject_HashNotImplemented,
    .tp_str = AtomicInt64_str,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_IMMUTABLETYPE,
    .tp_doc = DOC_AtomicInt64,
    .tp_richcompare = AtomicInt64_richcompare,
    .tp_weaklistoffset = offsetof(AtomicInt64Object, weakreflist),
    .tp_methods = AtomicInt64_methods,
    .tp_getset = AtomicInt64_getset,
    .tp_init = AtomicInt64_init,
    .tp_new = AtomicInt64_new,
};

/* Registered as a numbers.Integral, as int is: numeric code that asks (Fraction's **,
 * Decimal's comparisons, Fraction(a)) then treats it as the int it reads. */
int atomic_int64_module_init(PyObject *module) {
    if (ftu_add_type(module, &AtomicInt64_Type) < 0) return -1;
    PyObject *numbers = PyImport_ImportModule("numbers");
    if (numbers == NULL) return -1;
    PyObject *integral = PyObject_GetAttrString(numbers, "Integral");
    Py_DECREF(numbers);
    if (integral == NULL) return -1;
    PyObject *result = PyObject_CallMethod(integral, "register", "O", (PyObject *)&AtomicInt64_Type);
    Py_DECREF(integral);
    if (result == NULL) return -1;
    Py_DECREF(result);
    return 0;
}
