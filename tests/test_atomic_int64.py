"""AtomicInt64 on every backend: behaviour against Python ints, overflow and type
errors, a hypothesis state machine with the int64 bounds, and exact counts under threads."""

import cmath
import copy
import gc
import math
import numbers
import operator
import pickle
import sys
import time
import weakref
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from threading_helpers import assert_real_time_order, run_threads, writes_before_publishing_are_seen

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
int64s = st.integers(INT64_MIN, INT64_MAX)
small = st.integers(-1000, 1000)
any_int64 = st.one_of(int64s, small, st.sampled_from([0, 1, -1, INT64_MIN, INT64_MAX, 2**31, 2**32]))


class Index:
    """Not an int, but usable as one through __index__ (like numpy integers)."""

    def __init__(self, value):
        self.value = value

    def __index__(self):
        return self.value


def outcome(func, *args):
    """(result, None) or (None, exception type), to compare behaviours."""
    try:
        return func(*args), None
    except Exception as exc:  # noqa: BLE001
        return None, type(exc)


# ---- construction and plain methods ----------------------------------------------------


def test_default_is_zero(backend):
    assert backend.AtomicInt64().get() == 0


@pytest.mark.parametrize("value", [0, 1, -1, 42, INT64_MIN, INT64_MAX, True, Index(7)])
def test_construct_and_get(backend, value):
    a = backend.AtomicInt64(value)
    assert a.get() == int(value.__index__())
    assert type(a.get()) is int
    assert backend.AtomicInt64(value=value).get() == a.get()


def test_construct_from_atomic(backend):
    assert backend.AtomicInt64(backend.AtomicInt64(-5)).get() == -5


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**30])
def test_construct_out_of_range(backend, value):
    with pytest.raises(OverflowError, match="int64 range"):
        backend.AtomicInt64(value)


@pytest.mark.parametrize("value", [1.0, "1", None, [1], 1j])
def test_construct_wrong_type(backend, value):
    with pytest.raises(TypeError, match="must be an integer"):
        backend.AtomicInt64(value)


def test_set(backend):
    a = backend.AtomicInt64(1)
    assert a.set(INT64_MIN) is None
    assert a.get() == INT64_MIN
    a.set(Index(3))
    assert a.get() == 3
    with pytest.raises(OverflowError):
        a.set(2**63)
    with pytest.raises(TypeError, match="float"):
        a.set(2.0)
    assert a.get() == 3


def test_incr_decr_add_return_new_value(backend):
    a = backend.AtomicInt64(10)
    assert a.incr() == 11
    assert a.decr() == 10
    assert a.add(5) == 15
    assert a.add(-20) == -5
    assert a.get() == -5


def test_spec_example(backend):
    i = backend.AtomicInt64(10)
    assert i.get() == 10
    i.incr()
    assert i.get() == 11
    i.add(5)
    assert i.get() == 16


def test_overflow_leaves_value_unchanged(backend):
    a = backend.AtomicInt64(INT64_MAX)
    with pytest.raises(OverflowError, match="unchanged"):
        a.incr()
    with pytest.raises(OverflowError):
        a.add(1)
    with pytest.raises(OverflowError):
        a += 1
    assert a.get() == INT64_MAX
    b = backend.AtomicInt64(INT64_MIN)
    with pytest.raises(OverflowError):
        b.decr()
    with pytest.raises(OverflowError):
        b -= 1
    with pytest.raises(OverflowError):
        b *= -1
    with pytest.raises(OverflowError):
        b //= -1
    assert b.get() == INT64_MIN


def test_add_operand_out_of_range(backend):
    a = backend.AtomicInt64(-5)
    with pytest.raises(OverflowError, match="int64 range"):
        a.add(2**63)
    with pytest.raises(OverflowError):
        a += 2**64
    assert a.get() == -5


def test_exchange_and_compare_exchange(backend):
    a = backend.AtomicInt64(1)
    assert a.exchange(2) == 1
    assert a.compare_exchange(2, 3) is True
    assert a.compare_exchange(2, 4) is False
    assert a.get() == 3
    assert a.compare_exchange(backend.AtomicInt64(3), Index(9)) is True
    assert a.get() == 9
    with pytest.raises(TypeError):
        a.compare_exchange(9, 1.5)
    with pytest.raises(TypeError):
        a.compare_exchange(9)
    assert a.get() == 9


# ---- conversions and protocols -----------------------------------------------------


def test_conversions(backend):
    a = backend.AtomicInt64(-42)
    assert int(a) == -42 and type(int(a)) is int
    assert float(a) == -42.0
    assert operator.index(a) == -42
    assert [10, 20, 30][backend.AtomicInt64(1)] == 20
    assert bool(a) is True and bool(backend.AtomicInt64(0)) is False
    assert repr(a) == "AtomicInt64(-42)"
    assert str(a) == "-42"
    assert f"{a:05d}" == "-0042"
    assert f"{backend.AtomicInt64(255):#x}" == "0xff"
    assert format(a) == "-42"
    assert hex(backend.AtomicInt64(255)) == "0xff"


def test_rounding_is_exact(backend):
    big = 2**62 + 1  # not representable as a float
    a = backend.AtomicInt64(big)
    assert math.floor(a) == big and math.ceil(a) == big and math.trunc(a) == big
    assert round(a) == big and type(round(a)) is int
    assert round(backend.AtomicInt64(1234), -2) == 1200


def test_unhashable(backend):
    with pytest.raises(TypeError):
        hash(backend.AtomicInt64(1))


def test_copy_and_pickle(backend):
    a = backend.AtomicInt64(77)
    for b in (copy.copy(a), copy.deepcopy(a)):
        assert b is not a and b.get() == 77
        b.incr()
        assert a.get() == 77


def test_pickle_through_public_module():
    from ft_utils.concurrency import AtomicInt64

    assert pickle.loads(pickle.dumps(AtomicInt64(-9))).get() == -9


def test_weakref_and_subclass(backend):
    class Counter(backend.AtomicInt64):
        pass

    c = Counter(3)
    assert c.incr() == 4
    assert isinstance(c, backend.AtomicInt64)
    assert repr(c) == "Counter(4)"
    r = weakref.ref(c)
    assert r() is c
    del c
    gc.collect()  # PyPy has no reference counting
    assert r() is None


# ---- operators compared with int -----------------------------------------------------

BINARY = [
    operator.add, operator.sub, operator.mul, operator.floordiv, operator.truediv,
    operator.mod, divmod, operator.lshift, operator.rshift, operator.and_, operator.or_,
    operator.xor, operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge,
]


@pytest.mark.parametrize("op", BINARY, ids=lambda op: op.__name__)
@given(a=any_int64, b=any_int64)
def test_binary_operators_behave_as_int(backend, op, a, b):
    if op in (operator.lshift,) and not 0 <= b < 200:
        b = abs(b) % 200
    A, B = backend.AtomicInt64(a), backend.AtomicInt64(b)
    expected = outcome(op, a, b)
    assert outcome(op, A, b) == expected
    assert outcome(op, a, B) == expected
    assert outcome(op, A, B) == expected
    assert A.get() == a and B.get() == b  # reading operators never store


@given(a=small, b=st.integers(0, 40), m=st.integers(1, 1000))
def test_power_behaves_as_int(backend, a, b, m):
    A = backend.AtomicInt64(a)
    assert A**b == a**b
    assert pow(A, b, m) == pow(a, b, m)
    assert pow(A, backend.AtomicInt64(b), backend.AtomicInt64(m)) == pow(a, b, m)
    assert b ** backend.AtomicInt64(2) == b**2


@given(a=any_int64)
def test_unary_operators_behave_as_int(backend, a):
    A = backend.AtomicInt64(a)
    assert -A == -a and +A == a and abs(A) == abs(a) and ~A == ~a
    assert type(-A) is int and type(+A) is int


def test_comparisons_with_big_ints(backend):
    a = backend.AtomicInt64(INT64_MAX)
    assert a < 2**63 and a != 2**63 and not a > 2**100
    assert backend.AtomicInt64(INT64_MIN) > -(2**63) - 1


# ---- reading operators with any other operand: exactly what the int gives ------------


class Tagged:
    """Answers every operator, forward and reflected, but only when given a plain int
    (as int's own reflected calls give it); NotImplemented otherwise. It shows that the
    operand a reading operator hands on is the int, not the AtomicInt64."""

    def _answer(name):
        def method(self, other):
            return (name, other) if type(other) is int else NotImplemented

        return method

    for _name in ("add", "sub", "mul", "matmul", "truediv", "floordiv", "mod", "divmod",
                  "pow", "lshift", "rshift", "and", "or", "xor"):
        locals()[f"__{_name}__"] = _answer(_name)
        locals()[f"__r{_name}__"] = _answer("r" + _name)
    for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
        locals()[f"__{_name}__"] = _answer(_name)
    del _name, _answer
    __hash__ = None

    def __repr__(self):
        return "Tagged()"


class Declines:
    """Returns NotImplemented from every operator."""

    def _decline(self, *args):
        return NotImplemented

    for _name in ("add", "sub", "mul", "matmul", "truediv", "floordiv", "mod", "divmod",
                  "pow", "lshift", "rshift", "and", "or", "xor"):
        locals()[f"__{_name}__"] = locals()[f"__r{_name}__"] = _decline
    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = _decline
    del _name
    __hash__ = None

    def __repr__(self):
        return "Declines()"


class IntSubclass(int):
    """An int subclass with its own reflected methods: for an int, Python asks them first.
    (As a left operand its methods see the AtomicInt64 itself, as for any class: like
    int's, they decline what is not an int.)"""

    def __radd__(self, other):
        return ("radd", type(other).__name__, other) if type(other) is int else NotImplemented

    def __gt__(self, other):
        return ("gt", type(other).__name__, other) if type(other) is int else NotImplemented

    def __repr__(self):
        return f"IntSubclass({int(self)})"


OTHERS = st.one_of(
    st.integers(-(2**200), 2**200),
    st.sampled_from([0, 1, -1, 2, 63, 64, 2**63, -(2**63) - 1, 2**64, 10**30]),
    st.booleans(),
    st.floats(),
    st.sampled_from([0.0, -0.0, math.nan, math.inf, -math.inf, 0.5, 2.0**53, 2.0**63, -(2.0**63), 1e308]),
    st.fractions(),
    st.sampled_from([Fraction(7), Fraction(-1, 3), Fraction(2**70, 3)]),
    st.decimals(),
    st.sampled_from([Decimal("7"), Decimal("7.0"), Decimal("-0"), Decimal("NaN"), Decimal("Infinity"), Decimal("1E+30")]),
    st.complex_numbers(),
    st.sampled_from([7 + 0j, 1j, complex(math.nan, 0), complex(math.inf, 1)]),
    st.sampled_from([Tagged(), Declines(), "ab", None, [1], (), Index(3), IntSubclass(3), IntSubclass(-2)]),
)

READING = [
    operator.add, operator.sub, operator.mul, operator.matmul, operator.truediv,
    operator.floordiv, operator.mod, divmod, operator.pow, operator.lshift, operator.rshift,
    operator.and_, operator.or_, operator.xor, operator.eq, operator.ne, operator.lt,
    operator.le, operator.gt, operator.ge,
]


def _same(x, y):
    """Equal values of the same type; nan equals nan and -0.0 differs from 0.0."""
    if type(x) is not type(y):
        return False
    if isinstance(x, (tuple, list)):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y))
    if isinstance(x, (float, complex, Decimal)):
        return repr(x) == repr(y)
    return x == y


def _normalized(message):
    return message.replace("ft_utils.concurrency.AtomicInt64", "int").replace("AtomicInt64", "int")


def assert_same_outcome(func, got_args, int_args):
    """func(*got_args) and func(*int_args) give the same value, or raise the same
    exception type with the same message once 'AtomicInt64' reads 'int'."""
    try:
        expected, expected_error = func(*int_args), None
    except Exception as exc:  # noqa: BLE001
        expected, expected_error = None, exc
    try:
        got, got_error = func(*got_args), None
    except Exception as exc:  # noqa: BLE001
        got, got_error = None, exc
    if expected_error is None:
        assert got_error is None, f"{func} raised {got_error!r}, the int gave {expected!r}"
        assert _same(got, expected), f"{func}: {got!r} != {expected!r}"
    else:
        assert got_error is not None, f"{func} gave {got!r}, the int raised {expected_error!r}"
        assert type(got_error) is type(expected_error)
        assert _normalized(str(got_error)) == _normalized(str(expected_error))


def _too_costly(op, left, right):
    """Operations that would take minutes or gigabytes, for the int and for us alike."""
    if op is operator.mul:
        for seq, count in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(count, int) and abs(count) > 100:
                return True
    if op is operator.pow and isinstance(left, (int, Fraction)) and isinstance(right, (int, Fraction)):
        return right.denominator == 1 and abs(right) > 200 and left not in (0, 1, -1)
    if op is operator.lshift and isinstance(left, int) and isinstance(right, int):
        return right > 200 and left != 0
    return False


@pytest.mark.parametrize("op", READING, ids=lambda op: op.__name__)
@given(value=any_int64, other=OTHERS)
def test_reading_operators_with_any_operand_behave_as_int(backend, op, value, other):
    """AtomicInt64(v) OP x and x OP AtomicInt64(v) give what v OP x and x OP v give:
    floats (nan, inf, -0.0), Fractions, Decimals, complex numbers, huge ints, bools,
    classes with reflected operators, and unsupported operands alike."""
    a = backend.AtomicInt64(value)
    if not _too_costly(op, value, other):
        assert_same_outcome(op, (a, other), (value, other))
    if not _too_costly(op, other, value):
        assert_same_outcome(op, (other, a), (other, value))
    assert a.get() == value  # a reading operator never stores


def test_mixed_examples_from_the_issue(backend):
    a = backend.AtomicInt64(7)
    assert (a == 7.0) is True and (7.0 == a) is True and (a < 7.5) is True and (a != 7.5) is True
    assert a + 0.5 == 7.5 and 0.5 + a == 7.5 and a * Fraction(1, 2) == Fraction(7, 2)
    assert a / Decimal(2) == Decimal("3.5") and a + 1j == 7 + 1j
    assert (a == Decimal(7)) is True and (a == Fraction(14, 2)) is True and (a == 7 + 0j) is True
    assert (a < math.nan) is False and (a == math.nan) is False and (a < math.inf) is True
    big = backend.AtomicInt64(2**53 + 1)
    assert big != 2.0**53 and big > 2.0**53  # compared exactly, as ints compare with floats
    with pytest.raises(TypeError, match="not supported between instances of"):
        a < 1j
    with pytest.raises(TypeError, match="unsupported operand"):
        a << 1.0


def test_is_a_numbers_integral_like_int(backend):
    """Registered as numbers.Integral, with the members int has for it: numeric code that
    asks (Fraction's **, Fraction(), Decimal comparisons) treats it as the int it reads."""
    a = backend.AtomicInt64(7)
    assert isinstance(a, numbers.Integral) and isinstance(a, numbers.Number)
    assert (a.numerator, a.denominator, a.real, a.imag, a.conjugate()) == (7, 1, 7, 0, 7)
    assert all(type(v) is int for v in (a.numerator, a.denominator, a.real, a.imag, a.conjugate()))
    assert Fraction(a) == Fraction(7) and type(Fraction(a)) is Fraction
    result = Fraction(-1) ** backend.AtomicInt64(0)
    assert result == Fraction(1) and type(result) is Fraction  # not 1.0 through float
    assert Fraction(2, 3) ** backend.AtomicInt64(2) == Fraction(4, 9)
    assert Decimal("7.5") > a and Decimal(7) == a


@pytest.mark.parametrize(
    "func",
    [operator.neg, operator.pos, abs, operator.invert, int, float, complex, operator.index,
     bool, math.floor, math.ceil, math.trunc, round, math.sqrt, cmath.sqrt, str, hex, oct, bin,
     lambda n: round(n, 2), lambda n: round(n, -2), lambda n: round(n, None),
     lambda n: round(n, 1.5), lambda n: divmod(n, 7), lambda n: pow(n, 3, 1000),
     lambda n: pow(n, -1, 97), lambda n: pow(n, 2, 0), lambda n: pow(n, 2.0, 5)],
    ids=lambda f: getattr(f, "__name__", "lambda"),
)
@given(value=any_int64)
def test_unary_operations_and_conversions_behave_as_int(backend, func, value):
    assert_same_outcome(func, (backend.AtomicInt64(value),), (value,))


@pytest.mark.parametrize("spec", ["", "d", "x", "#o", "b", ".3f", "e", "%", ",", "_", "+", "c", "s", "10", "<5", "=+8d"])
@given(value=st.one_of(small, any_int64))
def test_format_behaves_as_int(backend, spec, value):
    assert_same_outcome(format, (backend.AtomicInt64(value), spec), (value, spec))


def _name_in_messages(obj):
    """The name the interpreter's own messages give type(obj) ('decimal.Decimal' on
    CPython, where that type is written in C)."""
    try:
        object() @ obj
    except TypeError as exc:
        return str(exc).rsplit("'", 2)[1]
    raise AssertionError(f"object() @ {obj!r} did not fail")


CPYTHON_BEFORE_314 = sys.implementation.name == "cpython" and sys.version_info < (3, 14)


@given(value=small, x=st.one_of(st.integers(-50, 50), st.floats(-4, 4), st.fractions(-8, 8, max_denominator=5), st.none()),
       m=st.one_of(st.integers(-50, 50), st.floats(-4, 4), st.none()))
def test_three_argument_pow_behaves_as_int(backend, value, x, m):
    a = backend.AtomicInt64(value)
    assert_same_outcome(pow, (a, x, m), (value, x, m))
    # Three-argument pow asks a class written in Python only in some positions
    # (docs/atomic_int64.md): CPython before 3.14 only the first argument, PyPy the first
    # two. The native type takes part in any position.
    cffi = "cffi" in backend.__name__
    three_ints = m is not None and isinstance(x, int) and isinstance(m, int)
    if cffi and CPYTHON_BEFORE_314 and three_ints:
        with pytest.raises(TypeError):
            pow(x, a, m)
    else:
        assert_same_outcome(pow, (x, a, m), (x, value, m))
    if cffi and (CPYTHON_BEFORE_314 or sys.implementation.name == "pypy") and three_ints:
        with pytest.raises(TypeError):
            pow(x, m, a)
    elif m is not None:
        assert_same_outcome(pow, (x, m, a), (x, m, value))


@pytest.mark.parametrize("symbol", ["+=", "-=", "*=", "//=", "%=", "**=", "<<=", ">>=", "&=", "|=", "^=", "@="])
@pytest.mark.parametrize("other", [1.5, math.nan, Fraction(2), Decimal(2), 2 + 0j, Tagged(), "ab", None, [1]])
def test_inplace_operators_take_integers_only(backend, symbol, other):
    """The in-place operators store into the int64 cell: a non-integer operand is a
    TypeError naming both types (never a fallback that would rebind the name to a float
    or a str), and the value is left as it was."""
    a = backend.AtomicInt64(6)
    namespace = {"a": a, "other": other}
    with pytest.raises(TypeError) as info:
        exec(f"a {symbol} other", namespace)
    assert str(info.value) == f"unsupported operand type(s) for {symbol}: 'AtomicInt64' and '{_name_in_messages(other)}'"
    assert namespace["a"] is a and a.get() == 6


INPLACE = {
    "+=": (operator.iadd, operator.add),
    "-=": (operator.isub, operator.sub),
    "*=": (operator.imul, operator.mul),
    "//=": (operator.ifloordiv, operator.floordiv),
    "%=": (operator.imod, operator.mod),
    "<<=": (operator.ilshift, operator.lshift),
    ">>=": (operator.irshift, operator.rshift),
    "&=": (operator.iand, operator.and_),
    "|=": (operator.ior, operator.or_),
    "^=": (operator.ixor, operator.xor),
    "**=": (operator.ipow, operator.pow),
}


def model_inplace(op, a, b):
    """What an in-place operator must do: (new value, None) or (a, exception type)."""
    if op is operator.pow and b < 0:
        return a, ValueError
    if op is operator.lshift and b > 200:
        return a, (OverflowError if a else None)
    if op is operator.pow and abs(a) > 1 and b > 64:
        return a, OverflowError
    result, error = outcome(op, a, b)
    if error is not None:
        return a, error
    if not INT64_MIN <= result <= INT64_MAX:
        return a, OverflowError
    return result, None


@pytest.mark.parametrize("symbol", list(INPLACE))
@given(a=any_int64, b=any_int64)
def test_inplace_operators_are_checked(backend, symbol, a, b):
    iop, op = INPLACE[symbol]
    if op in (operator.lshift, operator.rshift, operator.pow):
        b = b % 70 - 3
    A = backend.AtomicInt64(a)
    expected_value, expected_error = model_inplace(op, a, b)
    if expected_error is None:
        result = iop(A, b)
        assert result is A
        assert A.get() == expected_value
    else:
        with pytest.raises(expected_error):
            iop(A, b)
        assert A.get() == a, "a failed in-place operation must leave the value unchanged"


@pytest.mark.parametrize("symbol", list(INPLACE))
def test_inplace_operators_reject_non_integers(backend, symbol):
    iop, _ = INPLACE[symbol]
    a = backend.AtomicInt64(6)
    for other in (1.5, "2", None):
        with pytest.raises(TypeError):
            iop(a, other)
    assert a.get() == 6
    assert iop(a, Index(1)) is a  # __index__ operands are integers


def test_inplace_true_division_is_refused(backend):
    a = backend.AtomicInt64(6)
    with pytest.raises(TypeError, match="//="):
        a /= 2
    assert isinstance(a, backend.AtomicInt64) and a.get() == 6
    assert a / 4 == 1.5  # the reading operator still works


def test_inplace_shift_and_power_errors(backend):
    a = backend.AtomicInt64(3)
    with pytest.raises(ValueError, match="negative shift"):
        a <<= -1
    with pytest.raises(ValueError, match="negative shift"):
        a >>= -1
    with pytest.raises(ValueError, match="exponent"):
        a **= -1
    with pytest.raises(ZeroDivisionError):
        a %= 0
    with pytest.raises(ZeroDivisionError):
        a //= 0
    assert a.get() == 3
    a **= 2
    assert a.get() == 9


# ---- state machine against a Python int model ----------------------------------------


class AtomicInt64Machine(RuleBasedStateMachine):
    """Random sequences of operations on one AtomicInt64 and on a plain int that models
    it, with the int64 bounds: results, exceptions and values must agree at every step."""

    backend_module = None

    @initialize(value=any_int64)
    def start(self, value):
        self.atomic = self.backend_module.AtomicInt64(value)
        self.model = value

    @rule(value=any_int64)
    def set(self, value):
        self.atomic.set(value)
        self.model = value

    @rule()
    def incr(self):
        if self.model == INT64_MAX:
            with pytest.raises(OverflowError):
                self.atomic.incr()
        else:
            self.model += 1
            assert self.atomic.incr() == self.model

    @rule()
    def decr(self):
        if self.model == INT64_MIN:
            with pytest.raises(OverflowError):
                self.atomic.decr()
        else:
            self.model -= 1
            assert self.atomic.decr() == self.model

    @rule(value=any_int64)
    def add(self, value):
        if INT64_MIN <= self.model + value <= INT64_MAX:
            self.model += value
            assert self.atomic.add(value) == self.model
        else:
            with pytest.raises(OverflowError):
                self.atomic.add(value)

    @rule(value=any_int64)
    def exchange(self, value):
        assert self.atomic.exchange(value) == self.model
        self.model = value

    @rule(expected=any_int64, value=any_int64, use_current=st.booleans())
    def compare_exchange(self, expected, value, use_current):
        if use_current:
            expected = self.model
        swapped = self.atomic.compare_exchange(expected, value)
        assert swapped == (expected == self.model)
        if swapped:
            self.model = value

    @rule(symbol=st.sampled_from(list(INPLACE)), operand=any_int64)
    def inplace(self, symbol, operand):
        iop, op = INPLACE[symbol]
        if op in (operator.lshift, operator.rshift, operator.pow):
            operand = operand % 70 - 3
        new_value, error = model_inplace(op, self.model, operand)
        if error is None:
            assert iop(self.atomic, operand) is self.atomic
            self.model = new_value
        else:
            with pytest.raises(error):
                iop(self.atomic, operand)

    @precondition(lambda self: hasattr(self, "atomic"))
    @invariant()
    def agrees_with_model(self):
        assert self.atomic.get() == self.model
        assert INT64_MIN <= self.atomic.get() <= INT64_MAX


def test_state_machine(backend):
    machine = type("Machine", (AtomicInt64Machine,), {"backend_module": backend})
    machine.TestCase().runTest()


# ---- many threads ------------------------------------------------------------------

THREADS = 8


@pytest.mark.stress
def test_threads_incr_exact(backend):
    """8 threads x 20000 incr: nothing lost, every returned value unique."""
    a = backend.AtomicInt64(0)
    n = 20000

    def work(_):
        return [a.incr() for _ in range(n)]

    seen = [v for chunk in run_threads(THREADS, work) for v in chunk]
    assert a.get() == THREADS * n
    assert sorted(seen) == list(range(1, THREADS * n + 1)), "each incr returned a distinct new value"


@pytest.mark.stress
def test_threads_mixed_updates_exact(backend):
    """incr, decr, add and += from many threads: the final value is exact."""
    a = backend.AtomicInt64(0)
    n = 5000

    def work(index):
        x = a
        for i in range(n):
            a.incr()
            a.add(3)
            x += 2
            a.decr()
            x -= 1
        return None

    run_threads(THREADS, work)
    assert a.get() == THREADS * n * (1 + 3 + 2 - 1 - 1)


@pytest.mark.stress
def test_threads_compare_exchange_loop_exact(backend):
    a = backend.AtomicInt64(0)
    n = 5000

    def work(_):
        retries = 0
        for _ in range(n):
            while True:
                current = a.get()
                if a.compare_exchange(current, current + 1):
                    break
                retries += 1
        return retries

    run_threads(THREADS, work)
    assert a.get() == THREADS * n


@pytest.mark.stress
def test_threads_exchange_conserves_values(backend):
    """Each thread swaps in its own distinct tokens: what comes out plus what is left
    equals what went in (nothing lost, nothing duplicated)."""
    a = backend.AtomicInt64(-1)
    n = 5000

    def work(index):
        return [a.exchange(index * n + i) for i in range(n)]

    taken = [v for chunk in run_threads(THREADS, work) for v in chunk] + [a.get()]
    assert sorted(taken) == [-1] + list(range(THREADS * n))


@pytest.mark.stress
def test_threads_overflow_is_exact(backend):
    """Threads race to add 1 near INT64_MAX: exactly `room` succeed, the rest raise
    OverflowError, and the value ends at INT64_MAX (never wraps)."""
    room = 3000
    a = backend.AtomicInt64(INT64_MAX - room)

    def work(_):
        ok = 0
        for _ in range(1000):
            try:
                a.incr()
                ok += 1
            except OverflowError:
                pass
        return ok

    assert sum(run_threads(THREADS, work)) == room
    assert a.get() == INT64_MAX


@pytest.mark.stress
def test_threads_incr_is_linearizable(backend):
    """incr() from 4 threads, each call timed: an incr that returned before another began
    returned the smaller value (the values follow real time, not just some order)."""
    a = backend.AtomicInt64(0)
    clock = time.perf_counter_ns

    def work(_):
        spans = []
        for _ in range(5000):
            start = clock()
            value = a.incr()
            spans.append((start, clock(), value))
        return spans

    spans = [span for chunk in run_threads(4, work) for span in chunk]
    assert sorted(value for _, _, value in spans) == list(range(1, len(spans) + 1))
    assert_real_time_order(spans)


@pytest.mark.stress
def test_threads_writes_before_an_update_are_seen_by_its_reader(backend):
    """What a thread wrote before an incr() is visible to a thread that read the new value
    with get() (the pattern of a counter that says how many slots are filled)."""
    a = backend.AtomicInt64(0)

    def receive():
        filled = a.get()
        return filled - 1 if filled else None

    assert writes_before_publishing_are_seen(lambda i: a.incr(), receive) == []
