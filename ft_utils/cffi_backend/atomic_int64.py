"""AtomicInt64 on the cffi backend: one int64 cell of the C core (ffi.new("int64_t *")).

Same contract as the native type: reading operators behave as the int value; writing
operations take integers only and use the core's checked operations, so a result outside
the int64 range raises OverflowError and leaves the value unchanged.
"""

import inspect
import numbers
import operator
import types

from ft_utils import _reconstruct
from ft_utils.cffi_backend._api import document, ffi, init_takes_arguments, lib, new_takes_arguments, parse_state

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

_load = lib.ftu_i64_load


def _to_int64(value, what):
    """An integer operand (int, AtomicInt64 or an object with __index__) as an int in the
    int64 range; TypeError or OverflowError naming ``what`` otherwise."""
    if isinstance(value, AtomicInt64):
        return _load(value._ftu_cell)
    if not isinstance(value, int):
        if not hasattr(type(value), "__index__"):
            raise TypeError(f"{what} must be an integer, not '{type(value).__name__}'")
        value = operator.index(value)
    if not INT64_MIN <= value <= INT64_MAX:
        raise OverflowError(f"{what} {int(value)!r} is outside the int64 range [-2**63, 2**63 - 1]")
    return int(value)


def _is_integer(value):
    return isinstance(value, (int, AtomicInt64)) or hasattr(type(value), "__index__")


def _raise_status(status, seen, symbol, operand):
    if status == lib.FTU_OVERFLOW:
        raise OverflowError(
            f"AtomicInt64: {seen} {symbol} {operand} is outside the int64 range; value left unchanged"
        )
    if status == lib.FTU_ZERO_DIVISION:
        raise ZeroDivisionError("integer division or modulo by zero")
    if status == lib.FTU_NEGATIVE_SHIFT:
        raise ValueError("negative shift count")
    if status == lib.FTU_NEGATIVE_EXPONENT:
        raise ValueError("AtomicInt64 **= needs a non-negative exponent (the result would not be an int)")
    raise SystemError(f"ft_utils core returned unknown status {status}")


_HEAPTYPE = 1 << 9
_MISSING = object()


def _type_name(tp):
    """A type's name as CPython's own error messages print it (tp_name: the module is
    part of the name of a type defined in C outside builtins, decimal.Decimal)."""
    if getattr(tp, "__flags__", _HEAPTYPE) & _HEAPTYPE or tp.__module__ == "builtins":
        return tp.__name__
    return f"{tp.__module__}.{tp.__name__}"


def _special(tp, name):
    """The special method ``name`` of type tp bound to nothing, found as the interpreter
    finds it (in the type's MRO, never on its metaclass), or None."""
    for klass in tp.__mro__:
        method = klass.__dict__.get(name, _MISSING)
        if method is not _MISSING:
            return method
    return None


def _call_special(method, obj, arg):
    if isinstance(method, _UNBOUND_METHODS):  # called with self first, as the slots do
        return method(obj, arg)
    get = getattr(type(method), "__get__", None)
    return (get(method, obj, type(obj)) if get is not None else method)(arg)


_UNBOUND_METHODS = (types.FunctionType, types.WrapperDescriptorType, types.MethodDescriptorType)


# A reading operator takes a snapshot of the value and then does exactly what that int
# would do with the other operand. With an int (bool and subclasses included) or an
# AtomicInt64: the int operation itself, through the full dispatch. With anything else,
# int's own methods answer NotImplemented, so the int's result is the other type's
# reflected method called with the int; if it declines too, we decline, and Python raises
# the TypeError it raises for an int (naming AtomicInt64), after the sequence fallbacks
# ("ab" * n), which take the AtomicInt64 through __index__ as they take an int.


def _binary(op, name):
    forward_name, reflected_name = f"__{name}__", f"__r{name}__"

    def forward(self, other):
        if isinstance(other, int):
            return op(_load(self._ftu_cell), other)
        if isinstance(other, AtomicInt64):
            return op(_load(self._ftu_cell), _load(other._ftu_cell))
        method = _special(type(other), reflected_name)
        return NotImplemented if method is None else _call_special(method, other, _load(self._ftu_cell))

    def reflected(self, other):
        if isinstance(other, int):
            return op(other, _load(self._ftu_cell))
        if isinstance(other, AtomicInt64):
            return op(_load(other._ftu_cell), _load(self._ftu_cell))
        method = _special(type(other), forward_name)
        return NotImplemented if method is None else _call_special(method, other, _load(self._ftu_cell))

    return forward, reflected


def _compare(op, reflected_name):
    def method(self, other):
        if isinstance(other, int):
            return op(_load(self._ftu_cell), other)
        if isinstance(other, AtomicInt64):
            return op(_load(self._ftu_cell), _load(other._ftu_cell))
        reflected = _special(type(other), reflected_name)
        return NotImplemented if reflected is None else _call_special(reflected, other, _load(self._ftu_cell))

    return method


def _pow_operand(value):
    return _load(value._ftu_cell) if isinstance(value, AtomicInt64) else value


def _inplace(core_op, symbol):
    # A non-integer operand is a TypeError here rather than NotImplemented: Python would
    # otherwise fall back to the reading operator and rebind the name (a *= "ab" would
    # make a a str through str's repeat).
    def method(self, other):
        if not _is_integer(other):
            raise TypeError(
                f"unsupported operand type(s) for {symbol}: '{type(self).__name__}' and '{_type_name(type(other))}'"
            )
        v = _to_int64(other, "operand of AtomicInt64 in-place operator")
        r = core_op(self._ftu_cell, v)
        if r.status:
            _raise_status(r.status, r.value, symbol, v)
        return self

    return method


def _arguments(value=0):
    return _to_int64(value, "AtomicInt64 value")


_arguments.__name__ = _arguments.__qualname__ = "AtomicInt64"  # for its error messages
_SIGNATURE = inspect.signature(lambda cls, value=0: None)


@document
class AtomicInt64:
    __slots__ = ("_ftu_cell", "__weakref__")

    # The arguments go to __new__ and __init__ alike (see new_takes_arguments), so a
    # subclass's __init__ may take arguments of its own and pass the value on to
    # super().__init__(value); __init__ stores it, as set() does.
    def __new__(cls, *args, **kwargs):
        value = _arguments(*args, **kwargs) if new_takes_arguments(cls, AtomicInt64) else 0
        self = object.__new__(cls)
        self._ftu_cell = ffi.new("int64_t *", value)
        return self

    def __init__(self, *args, **kwargs):
        if init_takes_arguments(type(self), AtomicInt64):
            lib.ftu_i64_store(self._ftu_cell, _arguments(*args, **kwargs))

    __new__.__signature__ = __init__.__signature__ = _SIGNATURE

    def get(self, /):
        return _load(self._ftu_cell)

    def set(self, value, /):
        lib.ftu_i64_store(self._ftu_cell, _to_int64(value, "AtomicInt64.set() value"))

    def incr(self, /):
        r = lib.ftu_i64_add(self._ftu_cell, 1)
        if r.status:
            _raise_status(r.status, r.value, "+", 1)
        return r.value

    def decr(self, /):
        r = lib.ftu_i64_sub(self._ftu_cell, 1)
        if r.status:
            _raise_status(r.status, r.value, "-", 1)
        return r.value

    def add(self, value, /):
        v = _to_int64(value, "AtomicInt64.add() value")
        r = lib.ftu_i64_add(self._ftu_cell, v)
        if r.status:
            _raise_status(r.status, r.value, "+", v)
        return r.value

    def exchange(self, value, /):
        return lib.ftu_i64_exchange(self._ftu_cell, _to_int64(value, "AtomicInt64.exchange() value"))

    def compare_exchange(self, expected, value, /):
        e = _to_int64(expected, "AtomicInt64.compare_exchange() expected")
        v = _to_int64(value, "AtomicInt64.compare_exchange() value")
        # the answer is a small int: once the cell has changed, nothing is allocated
        return lib.ftu_cffi_i64_cas(self._ftu_cell, e, v) == 1

    # ---- the numbers.Integral interface an int has ----------------------------------------
    @property
    def numerator(self):
        return _load(self._ftu_cell)

    @property
    def denominator(self):
        return 1

    @property
    def real(self):
        return _load(self._ftu_cell)

    @property
    def imag(self):
        return 0

    def conjugate(self, /):
        return _load(self._ftu_cell)

    # ---- conversion -------------------------------------------------------------------
    def __int__(self):
        return _load(self._ftu_cell)

    __index__ = __int__
    __pos__ = __int__

    def __float__(self):
        return float(_load(self._ftu_cell))

    def __bool__(self):
        return _load(self._ftu_cell) != 0

    def __repr__(self):
        return f"{type(self).__name__}({_load(self._ftu_cell)})"

    def __str__(self):
        return str(_load(self._ftu_cell))

    def __format__(self, format_spec):
        return format(_load(self._ftu_cell), format_spec)

    # Without these, math.floor(a) and friends would go through float and lose precision
    # above 2**53.
    def __round__(self, ndigits=None):
        return round(_load(self._ftu_cell), ndigits)

    __trunc__ = __floor__ = __ceil__ = __int__

    def __reduce__(self):
        return _reconstruct.reduce(self, AtomicInt64, _load(self._ftu_cell))

    def __setstate__(self, state):
        value, attributes = parse_state(state, "AtomicInt64")
        value = _to_int64(value, "AtomicInt64 value")
        _reconstruct.set_attributes(self, attributes)  # first: a failure changes nothing
        lib.ftu_i64_store(self._ftu_cell, value)

    # ---- reading operators ------------------------------------------------------------
    __add__, __radd__ = _binary(operator.add, "add")
    __sub__, __rsub__ = _binary(operator.sub, "sub")
    __mul__, __rmul__ = _binary(operator.mul, "mul")
    __matmul__, __rmatmul__ = _binary(operator.matmul, "matmul")
    __floordiv__, __rfloordiv__ = _binary(operator.floordiv, "floordiv")
    __truediv__, __rtruediv__ = _binary(operator.truediv, "truediv")
    __mod__, __rmod__ = _binary(operator.mod, "mod")
    __divmod__, __rdivmod__ = _binary(divmod, "divmod")
    __lshift__, __rlshift__ = _binary(operator.lshift, "lshift")
    __rshift__, __rrshift__ = _binary(operator.rshift, "rshift")
    __and__, __rand__ = _binary(operator.and_, "and")
    __or__, __ror__ = _binary(operator.or_, "or")
    __xor__, __rxor__ = _binary(operator.xor, "xor")
    _pow2, _rpow2 = _binary(pow, "pow")

    # Three-argument pow: what pow() gives with every AtomicInt64 replaced by its int.
    # (CPython before 3.14 never calls __rpow__ for it, so there only pow(a, x, m) reaches
    # this class; docs/atomic_int64.md.)
    def __pow__(self, other, mod=None):
        if mod is None:
            return AtomicInt64._pow2(self, other)
        return pow(_load(self._ftu_cell), _pow_operand(other), _pow_operand(mod))

    def __rpow__(self, other, mod=None):
        if mod is None:
            return AtomicInt64._rpow2(self, other)
        return pow(_pow_operand(other), _load(self._ftu_cell), _pow_operand(mod))

    def __neg__(self):
        return -_load(self._ftu_cell)

    def __abs__(self):
        return abs(_load(self._ftu_cell))

    def __invert__(self):
        return ~_load(self._ftu_cell)

    __eq__ = _compare(operator.eq, "__eq__")
    __ne__ = _compare(operator.ne, "__ne__")
    __lt__ = _compare(operator.lt, "__gt__")
    __le__ = _compare(operator.le, "__ge__")
    __gt__ = _compare(operator.gt, "__lt__")
    __ge__ = _compare(operator.ge, "__le__")
    __hash__ = None

    # ---- writing operators: atomic and checked ----------------------------------------
    __iadd__ = _inplace(lib.ftu_i64_add, "+=")
    __isub__ = _inplace(lib.ftu_i64_sub, "-=")
    __imul__ = _inplace(lib.ftu_i64_mul, "*=")
    __ifloordiv__ = _inplace(lib.ftu_i64_floordiv, "//=")
    __imod__ = _inplace(lib.ftu_i64_mod, "%=")
    __ilshift__ = _inplace(lib.ftu_i64_lshift, "<<=")
    __irshift__ = _inplace(lib.ftu_i64_rshift, ">>=")
    __iand__ = _inplace(lib.ftu_i64_and, "&=")
    __ior__ = _inplace(lib.ftu_i64_or, "|=")
    __ixor__ = _inplace(lib.ftu_i64_xor, "^=")
    _ipow = _inplace(lib.ftu_i64_pow, "**=")

    def __ipow__(self, other, mod=None):
        return NotImplemented if mod is not None else AtomicInt64._ipow(self, other)

    def __imatmul__(self, other):
        # An int has no @ with any integer: @= could only rebind the name.
        raise TypeError(
            f"unsupported operand type(s) for @=: '{type(self).__name__}' and '{_type_name(type(other))}'"
        )

    def __itruediv__(self, other):
        # Without this, a /= 2 would silently rebind a to a float.
        raise TypeError("AtomicInt64 holds an int: use //= for floor division, or read it with int()")


# Registered as a numbers.Integral, as int is: numeric code that asks (Fraction's **,
# Decimal's comparisons, Fraction(a)) then treats it as the int it reads.
numbers.Integral.register(AtomicInt64)
