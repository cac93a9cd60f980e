"""LocalWrapper on every backend: each protocol forwards to the wrapped object."""

import asyncio
import cmath
import collections.abc as abc
import contextlib
import copy
import enum
import gc
import math
import operator
import os
import pathlib
import pickle
import sys
import threading
import typing
import weakref
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from threading_helpers import run_threads


class Thing:
    """An object with attributes, a __getattr__ fallback, a call and a context."""

    def __init__(self):
        self.value = 1
        self.entered = self.exited = 0

    def __getattr__(self, name):
        return f"dynamic {name}"

    def __call__(self, *args, **kwargs):
        return args, kwargs

    def __enter__(self):
        self.entered += 1
        return "entered"

    def __exit__(self, *exc):
        self.exited += 1
        return True  # swallows the exception


def test_type_and_wrapped(backend):
    obj = [1]
    w = backend.LocalWrapper(obj)
    assert isinstance(w, backend.LocalWrapper) and type(w).__name__ == "LocalWrapper"
    assert type(w).__module__ == "ft_utils.local"
    assert w.wrapped is obj
    with pytest.raises(AttributeError, match="read-only"):
        w.wrapped = 2
    with pytest.raises(AttributeError, match="read-only"):
        del w.wrapped
    with pytest.raises(TypeError):
        backend.LocalWrapper()
    with pytest.raises(TypeError):
        backend.LocalWrapper(1, 2)


def test_not_subclassable(backend):
    with pytest.raises(TypeError):
        type("Sub", (backend.LocalWrapper,), {})
    with pytest.raises(TypeError):  # nor are the subtypes it makes per set of protocols
        type("Sub", (type(backend.LocalWrapper([1])),), {})


def test_attributes(backend):
    thing = Thing()
    w = backend.LocalWrapper(thing)
    assert w.value == 1
    assert w.missing == "dynamic missing"  # the wrapped object's __getattr__
    w.value = 5
    w.new = "n"
    assert thing.value == 5 and thing.new == "n"
    del w.new
    assert not hasattr(thing, "new") or thing.new == "dynamic new"
    assert isinstance(w, Thing)  # __class__ is forwarded too
    with pytest.raises(AttributeError):
        backend.LocalWrapper(1).nope


def test_call(backend):
    w = backend.LocalWrapper(Thing())
    assert w(1, 2, k=3) == ((1, 2), {"k": 3})
    assert backend.LocalWrapper(len)([1, 2]) == 2
    with pytest.raises(TypeError):
        backend.LocalWrapper(5)()


def test_context_manager(backend):
    thing = Thing()
    with backend.LocalWrapper(thing) as entered:
        assert entered == "entered"
        raise ValueError("swallowed by Thing.__exit__")
    assert thing.entered == thing.exited == 1


def test_containers(backend):
    items = [3, 1, 2]
    w = backend.LocalWrapper(items)
    assert len(w) == 3 and w[0] == 3 and w[-1] == 2 and w[0:2] == [3, 1]
    w[0] = 9
    del w[1]
    assert items == [9, 2]
    assert 9 in w and 5 not in w
    assert list(w) == [9, 2] and list(reversed(w)) == [2, 9]
    mapping = backend.LocalWrapper({"a": 1})
    assert mapping["a"] == 1 and "a" in mapping
    with pytest.raises(KeyError):
        mapping["b"]
    with pytest.raises(TypeError):
        len(backend.LocalWrapper(5))


def test_iterator(backend):
    w = backend.LocalWrapper(iter([1, 2]))
    assert next(w) == 1 and list(w) == [2]
    with pytest.raises(StopIteration):
        next(w)
    with pytest.raises(TypeError, match="not an iterator"):
        next(backend.LocalWrapper([1]))


def test_truth_hash_str_repr_format(backend):
    assert bool(backend.LocalWrapper([])) is False and bool(backend.LocalWrapper([0])) is True
    assert hash(backend.LocalWrapper("abc")) == hash("abc")
    with pytest.raises(TypeError):
        hash(backend.LocalWrapper([]))
    assert str(backend.LocalWrapper(1.5)) == "1.5" and repr(backend.LocalWrapper("x")) == "'x'"
    assert f"{backend.LocalWrapper(3.14159):.2f}" == "3.14"
    assert bytes(backend.LocalWrapper(b"ab")) == b"ab"
    assert {backend.LocalWrapper("k"): 1}["k"] == 1


def test_comparisons(backend):
    w = backend.LocalWrapper(5)
    assert w == 5 and 5 == w and w != 6
    assert w < 6 and w <= 5 and w > 4 and w >= 5
    assert w == backend.LocalWrapper(5)
    assert sorted([backend.LocalWrapper(3), 1, backend.LocalWrapper(2)]) == [1, 2, 3]


BINARY = [operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv,
          operator.mod, divmod, operator.pow, operator.lshift, operator.rshift,
          operator.and_, operator.or_, operator.xor]


@given(a=st.integers(-50, 50), b=st.integers(1, 8))
def test_arithmetic_matches_the_wrapped_object(backend, a, b):
    W = backend.LocalWrapper
    for op in BINARY:
        expected = op(a, b)
        assert op(W(a), b) == expected, op
        assert op(a, W(b)) == expected, op
        assert op(W(a), W(b)) == expected, op
    for op in (operator.neg, operator.pos, abs, operator.invert, int, float, operator.index):
        assert op(W(a)) == op(a)
    assert pow(W(a), b, 7) == pow(a, b, 7)
    assert round(W(a / b), 2) == round(a / b, 2) and round(W(2.5)) == 2
    assert math.trunc(W(a / b)) == math.trunc(a / b)
    assert math.floor(W(a / b)) == math.floor(a / b) and math.ceil(W(a / b)) == math.ceil(a / b)
    assert [10, 20, 30][W(1)] == 20


def test_arithmetic_errors_are_the_wrapped_objects(backend):
    with pytest.raises(ZeroDivisionError):
        backend.LocalWrapper(1) / 0
    with pytest.raises(TypeError):
        backend.LocalWrapper("a") - 1


def test_matmul(backend):
    class M:
        def __matmul__(self, other):
            return "matmul"

        def __rmatmul__(self, other):
            return "rmatmul"

    assert backend.LocalWrapper(M()) @ 1 == "matmul"
    assert 1 @ backend.LocalWrapper(M()) == "rmatmul"


def test_in_place_on_immutable_rebinds_to_a_new_wrapper(backend):
    w = original = backend.LocalWrapper(5)
    w += 1
    assert isinstance(w, backend.LocalWrapper) and w == 6 and w is not original
    assert original == 5  # the wrapper itself never changes
    for op, operand, expected in [
        (operator.isub, 3, 3), (operator.imul, 2, 12), (operator.ifloordiv, 3, 2),
        (operator.imod, 3, 0), (operator.ipow, 2, 36), (operator.ilshift, 2, 24),
        (operator.irshift, 2, 1), (operator.iand, 3, 2), (operator.ior, 1, 7),
        (operator.ixor, 3, 5), (operator.itruediv, 3, 2.0),
    ]:
        result = op(backend.LocalWrapper(6), operand)
        assert isinstance(result, backend.LocalWrapper) and result == expected, op
        assert type(result) is type(backend.LocalWrapper(expected)), op  # the result's protocols


def test_in_place_on_mutable_keeps_the_wrapper(backend):
    items = [1]
    w = original = backend.LocalWrapper(items)
    w += [2]
    assert w is original and items == [1, 2]
    w *= 2
    assert items == [1, 2, 1, 2]


def test_copy_and_pickle_give_the_wrapped_object(backend):
    items = [1, [2]]
    w = backend.LocalWrapper(items)
    for clone in (copy.copy(w), copy.deepcopy(w), pickle.loads(pickle.dumps(w))):
        assert clone == items


def test_wrapped_object_is_released(backend):
    thing = Thing()
    ref = weakref.ref(thing)
    w = backend.LocalWrapper(thing)
    wrapper_ref = weakref.ref(w)
    del thing
    assert ref() is not None
    del w
    gc.collect()
    assert ref() is None and wrapper_ref() is None


def test_cycle_through_the_wrapper_is_collected(backend):
    thing = Thing()
    thing.wrapper = backend.LocalWrapper(thing)
    ref = weakref.ref(thing)
    del thing
    gc.collect()
    assert ref() is None


@pytest.mark.stress
def test_threads_use_one_wrapper_each_around_a_shared_list(backend):
    """Each thread appends through its own wrapper: every append lands exactly once."""
    shared = []
    per_thread = 2000

    def work(index):
        local = backend.LocalWrapper(shared)
        for i in range(per_thread):
            local.append((index, i))
        return len(local) > 0

    assert all(run_threads(8, work))
    assert sorted(shared) == sorted((t, i) for t in range(8) for i in range(per_thread))


# ---- indistinguishable: every protocol the object has, and none it lacks ----------------


class OnlyFloat:
    def __float__(self):
        return 2.5


class OnlyIndex:
    def __index__(self):
        return 3


class OnlyGetitem:
    """Old-style sequence: iteration, `in` and reversed() go through __getitem__."""

    def __getitem__(self, i):
        if i >= 3:
            raise IndexError(i)
        return i * 10


class SizedSequence(OnlyGetitem):
    def __len__(self):
        return 3


class NotIterable:
    """Setting a special method to None says the protocol is absent."""

    __iter__ = None

    def __getitem__(self, i):
        return i


class Unhashable:
    def __eq__(self, other):
        return isinstance(other, Unhashable)


class Truthy:
    def __init__(self, value):
        self.value = value

    def __bool__(self):
        return self.value


class Rounding:
    def __round__(self, *args):
        return ("round", args)

    def __trunc__(self):
        return "trunc"

    def __floor__(self):
        return "floor"

    def __ceil__(self):
        return "ceil"


class Color(enum.Enum):
    RED = 1  # Enum's metaclass has __iter__ and __len__; a member has neither


class Counted:
    """Iterator with a length hint and a StopIteration value."""

    def __init__(self):
        self.n = 0

    def __iter__(self):
        return self

    def __next__(self):
        self.n += 1
        if self.n > 2:
            raise StopIteration("done")
        return self.n

    def __length_hint__(self):
        return max(0, 2 - self.n)


def generator():
    yield 1
    yield 2
    return "value"


def function(*args, **kwargs):
    return args, kwargs


# Each a factory, so that protocols that consume or change the object get a fresh one.
OBJECTS = {
    "int": lambda: 5, "negative int": lambda: -3, "bool": lambda: True, "float": lambda: 2.5,
    "nan": lambda: math.nan, "-0.0": lambda: -0.0, "complex": lambda: 1 + 2j,
    "Fraction": lambda: Fraction(3, 4), "Decimal": lambda: Decimal("2.5"), "str": lambda: "abc",
    "bytes": lambda: b"ab", "bytearray": lambda: bytearray(b"ab"), "list": lambda: [3, 1, 2],
    "tuple": lambda: (1, 2), "dict": lambda: {"a": 1, 0: "zero"}, "set": lambda: {1, 2},
    "frozenset": lambda: frozenset({1}), "range": lambda: range(5), "generator": generator,
    "list iterator": lambda: iter([1, 2]), "function": lambda: function, "builtin": lambda: len,
    "class": lambda: list, "None": lambda: None, "object": object, "only __float__": OnlyFloat,
    "only __index__": OnlyIndex, "only __getitem__": OnlyGetitem, "__len__ and __getitem__": SizedSequence,
    "__iter__ = None": NotIterable, "unhashable class": Unhashable, "__bool__": lambda: Truthy(False),
    "rounding": Rounding, "enum member": lambda: Color.RED, "iterator with hint": Counted,
    "path": lambda: pathlib.PurePosixPath("a/b"), "lock": threading.Lock,
}

CPYTHON_BEFORE_314 = sys.implementation.name == "cpython" and sys.version_info < (3, 14)


def _same(x, y):
    if type(x) is not type(y):
        return False
    if isinstance(x, (tuple, list)):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y))
    if isinstance(x, (float, complex, Decimal)):
        return repr(x) == repr(y)
    if isinstance(x, (dict, set, frozenset, str, bytes, bytearray, int, Fraction, range, type(None))):
        return x == y
    # Objects of the same kind made by the same factory, shown by identity: the same.
    return x is y or repr(x) == repr(y) or " at 0x" in repr(x)


def _outcome(func, obj):
    try:
        return "value", func(obj)
    except Exception as exc:  # noqa: BLE001
        return "raises", type(exc)


# Protocols: name -> (function of the object, whether it consumes or changes the object,
# so needs a fresh one). Results of iteration are listed so that they compare.
PROTOCOLS = {
    "math.floor": (math.floor, False), "math.ceil": (math.ceil, False), "math.trunc": (math.trunc, False),
    "round": (round, False), "round 1": (lambda x: round(x, 1), False), "round None": (lambda x: round(x, None), False),
    "complex": (complex, False), "float": (float, False), "int": (int, False), "index": (operator.index, False),
    "cmath.sqrt": (cmath.sqrt, False), "math.sqrt": (math.sqrt, False), "abs": (abs, False),
    "neg": (operator.neg, False), "pos": (operator.pos, False), "invert": (operator.invert, False),
    "bool": (bool, False), "hash": (hash, False), "len": (len, False), "iter": (lambda x: list(iter(x)), True),
    "next": (next, True), "next twice": (lambda x: (next(x), next(x)), True),
    "contains": (lambda x: 1 in x, True), "getitem 0": (lambda x: x[0], False),
    "getitem key": (lambda x: x["a"], False), "getitem slice": (lambda x: x[0:1], False),
    "setitem": (lambda x: operator.setitem(x, 0, 9), True), "delitem": (lambda x: operator.delitem(x, 0), True),
    "reversed": (lambda x: list(reversed(x)), True), "bytes": (bytes, True), "str": (str, False),
    "repr": (repr, False), "format": (lambda x: format(x, ""), False), "format .2f": (lambda x: format(x, ".2f"), False),
    "call": (lambda x: x(1), False), "length_hint": (lambda x: operator.length_hint(x, -1), True),
    "fspath": (os.fspath, False), "callable": (callable, False), "dir": (dir, False),
    "divmod": (lambda x: divmod(x, 2), False), "rdivmod": (lambda x: divmod(7, x), False),
    "pow3": (lambda x: pow(x, 2, 5), False), "pow": (lambda x: x**2, False), "rpow": (lambda x: 2**x, False),
    "add": (lambda x: x + 1, False), "radd": (lambda x: 1 + x, False), "mul": (lambda x: x * 2, False),
    "rmul": (lambda x: 2 * x, False), "sub": (lambda x: x - 1, False), "rsub": (lambda x: 1 - x, False),
    "truediv": (lambda x: x / 2, False), "rtruediv": (lambda x: 2 / x, False), "floordiv": (lambda x: x // 2, False),
    "mod": (lambda x: x % 2, False), "rmod": (lambda x: "%s" % (x,), False), "lshift": (lambda x: x << 1, False),
    "rlshift": (lambda x: 1 << x, False), "rshift": (lambda x: x >> 1, False), "and": (lambda x: x & 1, False),
    "rand": (lambda x: 3 & x, False), "or": (lambda x: x | 1, False), "xor": (lambda x: x ^ 1, False),
    "matmul": (lambda x: x @ x, False), "concat": (lambda x: [0] + x, False), "repeat": (lambda x: [0] * x, False),
    "eq": (lambda x: x == 1, False), "ne": (lambda x: x != 1, False), "lt": (lambda x: x < 2, False),
    "gt": (lambda x: 2 > x, False), "sort": (lambda x: sorted([x, 1]).index(1), False),
    "iadd": (lambda x: operator.iadd(x, [4]) if isinstance(x, list) else operator.iadd(x, 1), True),
    "imul": (lambda x: operator.imul(x, 2), True),
    "isinstance": (lambda x: isinstance([], x), False), "issubclass": (lambda x: issubclass(bool, x), False),
    "with": (lambda x: contextlib.ExitStack().enter_context(x), True),
}
# What a wrapper cannot do, because the interpreter checks the object's exact type rather
# than ask for a protocol (docs/local_wrapper.md): int(), float() and complex() parse a
# str or bytes; os.fspath() takes a str or bytes as it is; a class's [] is its
# __class_getitem__. Each is a TypeError through a wrapper.
KNOWN_DIFFERENCES = {
    *((kind, protocol) for kind in ("str", "bytes", "bytearray") for protocol in ("int", "float", "complex")),
    ("str", "fspath"), ("bytes", "fspath"),
    ("class", "getitem 0"), ("class", "getitem key"), ("class", "getitem slice"),
}
# int() and float() also parse any object with the buffer protocol, which native wrappers
# forward: wrapped bytes and bytearray convert as the objects do there.
BUFFER_PARSED = {(kind, protocol) for kind in ("bytes", "bytearray") for protocol in ("int", "float")}


def known_differences(backend):
    native = backend.__name__.endswith("_native")
    return KNOWN_DIFFERENCES - BUFFER_PARSED if native else KNOWN_DIFFERENCES


def _unwrapped_result(result):
    """A wrapper returned by an in-place operator stands for what it wraps."""
    return result.wrapped if type(result).__name__ == "LocalWrapper" else result


@pytest.mark.filterwarnings("ignore:The delegation of int:DeprecationWarning")  # int(x) -> __trunc__
@pytest.mark.filterwarnings("ignore:Bitwise inversion:DeprecationWarning")  # ~True on 3.12+
@pytest.mark.parametrize("protocol", list(PROTOCOLS))
@pytest.mark.parametrize("kind", list(OBJECTS))
def test_every_protocol_gives_what_the_object_gives(backend, kind, protocol):
    """The same result, or the same exception type, with and without the wrapper."""
    func, consumes = PROTOCOLS[protocol]
    make = OBJECTS[kind]
    obj = make()
    if (kind, protocol) in known_differences(backend):
        with pytest.raises(TypeError):
            func(backend.LocalWrapper(obj))
        return
    expected = _outcome(func, obj)
    if sys.implementation.name == "pypy" and (kind, protocol) == ("bool", "index"):
        expected = ("value", 1)  # PyPy's operator.index(True) is True itself, a wrapper's an int
    target = make() if consumes else obj
    got = _outcome(lambda o: _unwrapped_result(func(o)), backend.LocalWrapper(target))
    if expected[0] == "raises" or got[0] == "raises":
        assert got == expected, f"{kind} {protocol}: {got} with the wrapper, {expected} without"
    else:
        assert _same(got[1], expected[1]), f"{kind} {protocol}: {got[1]!r} with the wrapper, {expected[1]!r} without"
    if consumes and expected[0] == "value":  # the object changed the same way
        assert _state(target) == _state(obj), f"{kind} {protocol}"


def _state(obj):
    if isinstance(obj, abc.Iterator):
        return list(obj)  # what is left
    if " at 0x" in repr(obj):
        return getattr(obj, "__dict__", None)
    return repr(obj)


ABCS = [
    abc.Hashable, abc.Awaitable, abc.Coroutine, abc.AsyncIterable, abc.AsyncIterator, abc.Iterable,
    abc.Iterator, abc.Reversible, abc.Generator, abc.Sized, abc.Container, abc.Callable, abc.Collection,
    abc.Sequence, abc.MutableSequence, abc.Mapping, abc.MutableMapping, abc.Set, abc.MutableSet,
    os.PathLike, contextlib.AbstractContextManager, typing.SupportsInt, typing.SupportsFloat,
    typing.SupportsComplex, typing.SupportsBytes, typing.SupportsIndex, typing.SupportsAbs,
    typing.SupportsRound,
]


@pytest.mark.parametrize("kind", list(OBJECTS))
def test_claims_exactly_the_protocols_of_the_object(backend, kind):
    """isinstance() against every collections.abc ABC and typing protocol, and callable(),
    answer as for the object: the wrapper claims nothing the object lacks."""
    obj = OBJECTS[kind]()
    w = backend.LocalWrapper(obj)
    assert callable(w) == callable(obj)
    for cls in ABCS:
        if sys.implementation.name == "pypy" and cls is typing.SupportsComplex and isinstance(obj, complex):
            continue  # PyPy's complex lacks __complex__; a wrapper of one has it (docs)
        assert isinstance(w, cls) == isinstance(obj, cls), f"{kind}: isinstance(w, {cls.__name__})"
    assert isinstance(w, backend.LocalWrapper)


def test_examples_from_the_issue(backend):
    W = backend.LocalWrapper
    assert math.floor(W(OnlyFloat())) == 2 and math.ceil(W(OnlyFloat())) == 3
    with pytest.raises(TypeError):
        round(W(OnlyFloat()))  # as round(OnlyFloat()): no __round__
    assert complex(W(1 + 2j)) == 1 + 2j and complex(W(2.5)) == 2.5 + 0j
    assert cmath.sqrt(W(4.0)) == 2 + 0j and cmath.sqrt(W(-4 + 0j)) == 2j
    assert not isinstance(W([1]), abc.Iterator) and isinstance(W(iter([1])), abc.Iterator)
    assert not isinstance(W([1]), abc.Hashable) and isinstance(W(1), abc.Hashable)
    assert not callable(W(1)) and callable(W(len))
    with pytest.raises(TypeError):
        hash(W([1]))
    with pytest.raises(TypeError):
        W(1)()
    with pytest.raises(TypeError):
        iter(W(Color.RED))  # the metaclass's __iter__ is not the member's


def test_three_argument_pow_with_the_wrapper_anywhere(backend):
    W = backend.LocalWrapper
    assert pow(W(2), 3, 7) == 1 and pow(W(2), W(3), W(7)) == 1
    if "cffi" not in backend.__name__:
        assert pow(2, W(3), 7) == 1 and pow(2, 3, W(7)) == 1
        return
    # Three-argument pow asks a class written in Python only in some positions
    # (docs/local_wrapper.md): CPython before 3.14 only the first argument, PyPy the first
    # two.
    if CPYTHON_BEFORE_314:
        with pytest.raises(TypeError):
            pow(2, W(3), 7)
    else:
        assert pow(2, W(3), 7) == 1
    if CPYTHON_BEFORE_314 or sys.implementation.name == "pypy":
        with pytest.raises(TypeError):
            pow(2, 3, W(7))
    else:
        assert pow(2, 3, W(7)) == 1


def test_generator_protocol_and_return_value(backend):
    w = backend.LocalWrapper(generator())
    assert next(w) == 1 and w.send(None) == 2
    with pytest.raises(StopIteration) as info:
        next(w)
    assert info.value.value == "value"
    assert isinstance(w, abc.Generator)  # through __class__, as for the generator


def test_descriptor_protocol(backend):
    class Owner:
        method = backend.LocalWrapper(lambda self, x: (type(self).__name__, x))
        prop = backend.LocalWrapper(property(lambda self: "got", lambda self, v: setattr(self, "_v", v)))

    owner = Owner()
    assert owner.method(1) == ("Owner", 1)  # bound, as the function would be
    assert owner.prop == "got"
    owner.prop = 5
    assert owner._v == 5


def test_set_name_and_class_checks(backend):
    seen = []

    class Named:
        def __set_name__(self, owner, name):
            seen.append((owner.__name__, name))

    class Owner:
        attribute = backend.LocalWrapper(Named())

    assert seen == [("Owner", "attribute")]
    assert isinstance([], backend.LocalWrapper(list)) and issubclass(bool, backend.LocalWrapper(int))
    assert isinstance(3, backend.LocalWrapper(abc.Hashable))


def test_async_protocols(backend):
    W = backend.LocalWrapper

    async def value():
        return 42

    async def agen():
        yield 1
        yield 2

    class AsyncContext:
        async def __aenter__(self):
            return "in"

        async def __aexit__(self, *exc):
            return False

    async def main():
        got = [await W(value())]
        got.append([x async for x in W(agen())])
        async with W(AsyncContext()) as entered:
            got.append(entered)
        return got

    assert asyncio.run(main()) == [42, [1, 2], "in"]
    coro = value()
    assert isinstance(W(coro), abc.Awaitable)
    coro.close()


def test_copy_uses_the_wrapped_objects_copy(backend):
    class Copyable:
        def __copy__(self):
            return "copied"

    assert copy.copy(backend.LocalWrapper(Copyable())) == "copied"
    assert os.fspath(backend.LocalWrapper(pathlib.PurePosixPath("a/b"))) == "a/b"


def test_in_place_on_a_wrapper_rewraps_with_the_results_protocols(backend):
    w = backend.LocalWrapper(5)
    w /= 2  # an int becomes a float: the new wrapper has float's protocols
    assert w == 2.5 and math.floor(w) == 2 and isinstance(w, backend.LocalWrapper)
    assert not isinstance(w, typing.SupportsIndex)


def test_a_class_that_changes_gets_a_new_profile(backend):
    """The native backend sees a class change (its version tag); the cffi backend reads
    a class's special methods once (docs/local_wrapper.md)."""

    class Growing:
        pass

    before = backend.LocalWrapper(Growing())
    assert not callable(before)
    Growing.__call__ = lambda self: "called"
    w = backend.LocalWrapper(Growing())
    assert not callable(before)  # made earlier: keeps what it was made with
    if "cffi" in backend.__name__:
        assert not callable(w)
        return
    assert callable(w) and w() == "called"
    del Growing.__call__
    assert not callable(backend.LocalWrapper(Growing()))


@pytest.mark.stress
def test_threads_wrap_objects_of_many_classes_at_once(backend):
    """Wrappers made in many threads at once, for many new classes (each a new
    profile lookup) and a few common types, all get the right protocols."""
    classes = [type(f"C{i}", (), {"__len__": (lambda self, i=i: i)} if i % 2 else {}) for i in range(200)]

    def work(index):
        for i, cls in enumerate(classes):
            w = backend.LocalWrapper(cls())
            assert (len(w) == i) if i % 2 else not isinstance(w, abc.Sized)
            assert len(backend.LocalWrapper([index])) == 1 and backend.LocalWrapper(index) + 1 == index + 1
        return True

    assert all(run_threads(8, work))


def test_documented_limits(backend):
    """What docs/local_wrapper.md lists as out of a wrapper's reach stays as documented."""
    W = backend.LocalWrapper
    for convert in (int, float, complex):
        with pytest.raises(TypeError):
            convert(W("12"))
    with pytest.raises(TypeError):
        os.fspath(W("a/b"))
    if not backend.__name__.endswith("_native") and sys.version_info < (3, 12):
        with pytest.raises(TypeError):
            memoryview(W(b"ab"))
    with pytest.raises(TypeError):
        W(list)[int]
    x = original = [1]
    x += W([2])  # Python asks the wrapper's __radd__ before the list's in-place concatenation
    assert x == [1, 2] and original == [1]


def test_buffers_give_the_wrapped_objects_bytes(backend):
    """bytes(w) of an object with the buffer protocol used to iterate the wrapper:
    array('i', [1, 2]) gave b'\\x01\\x02' instead of its eight bytes."""
    import array

    for obj in (array.array("i", [1, 2]), memoryview(array.array("H", [258])), bytearray(b"ab"), b"xy"):
        w = backend.LocalWrapper(obj)
        assert bytes(w) == bytes(obj)
        if backend.__name__.endswith("_native") or sys.version_info >= (3, 12):
            assert bytearray(w) == bytearray(obj)
            assert memoryview(w).tobytes() == memoryview(obj).tobytes()
    assert not hasattr(backend.LocalWrapper([1]), "__bytes__")  # only where the object has a buffer
