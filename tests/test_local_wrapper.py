"""LocalWrapper on every backend: each protocol forwards to the wrapped object."""

import copy
import gc
import math
import operator
import pickle
import weakref

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
    assert type(w) is backend.LocalWrapper
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
    assert type(w) is backend.LocalWrapper and w == 6 and w is not original
    assert original == 5  # the wrapper itself never changes
    for op, operand, expected in [
        (operator.isub, 3, 3), (operator.imul, 2, 12), (operator.ifloordiv, 3, 2),
        (operator.imod, 3, 0), (operator.ipow, 2, 36), (operator.ilshift, 2, 24),
        (operator.irshift, 2, 1), (operator.iand, 3, 2), (operator.ior, 1, 7),
        (operator.ixor, 3, 5), (operator.itruediv, 3, 2.0),
    ]:
        result = op(backend.LocalWrapper(6), operand)
        assert type(result) is backend.LocalWrapper and result == expected, op


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
