"""White box of the cffi queues' common case (ft_utils/cffi_backend/_object_queue.py): a
push or a pop with nothing to wait for makes one call into the core, which keeps the GIL
on CPython; a pop finds its ticket through the queue's hint, which may be wrong without
losing anything; an exception right after the take hands the value over (MemoryError)
or drops it (anything else), and strands nothing in the ticket dict."""

import gc
import sys
import weakref

import pytest

from queue_helpers import Box, get, put, queues

CPYTHON = sys.implementation.name == "cpython"


@pytest.fixture
def oq(backend):
    if "cffi" not in backend.__name__:
        pytest.skip("white box of the cffi backend")
    from ft_utils.cffi_backend import _object_queue

    return _object_queue


@pytest.mark.skipif(not CPYTHON, reason="cffi on PyPy: the interpreter decides")
def test_quick_calls_keep_the_gil_and_the_others_release_it(oq):
    from ft_utils._cffi import lib

    assert lib.ftu_cffi_quick_holds_gil() == 1
    assert lib.ftu_cffi_holds_gil() == 0


def test_the_common_case_makes_one_call_into_the_core(backend, oq, monkeypatch):
    calls = []

    def counted(name):
        real = getattr(oq, name)

        def call(*args):
            calls.append(name)
            return real(*args)

        return call

    for name in ("_push_now", "_push", "_take", "_took", "_peek", "_state", "_put_in", "_take_if"):
        monkeypatch.setattr(oq, name, counted(name))
    for q in queues(backend):
        put(q, 0)
        assert get(q) == 0  # (the hint is now spent: the queue is empty)
        for n in range(1, 4):
            del calls[:]
            put(q, n)
            assert calls == ["_push_now"]
            del calls[:]
            assert get(q) == n
            assert calls == ["_take"]
        # a backlog: each pop learns the next head from its take
        for n in range(10):
            put(q, n)
        del calls[:]
        assert [get(q) for _ in range(10)] == list(range(10))
        assert calls == ["_take"] * 10


@pytest.mark.parametrize("wrong", ["zero", "popped", "deeper", "other queue", "huge"])
def test_a_wrong_hint_loses_nothing(backend, oq, wrong):
    for q in queues(backend):
        inner = q._ftu_queue
        other = backend.ConcurrentQueue()
        other.push("x")
        put(q, "first")
        popped = inner.hint
        assert get(q) == "first"
        for n in range(5):
            put(q, n)
        head = inner.hint
        assert head and head in inner.objects
        inner.hint = {"zero": 0, "popped": popped, "deeper": max(inner.objects), "other queue": other._ftu_queue.hint,
                      "huge": 2**63 - 1}[wrong]
        assert [get(q) for _ in range(5)] == list(range(5))
        assert not inner.objects and q.empty()
        assert other.pop(timeout=0) == "x"


@pytest.mark.parametrize("exception", [KeyboardInterrupt, MemoryError])
def test_an_exception_right_after_the_take(backend, oq, monkeypatch, exception):
    """As if a signal handler raised, or the int of the next head could not be made, just
    after the core took the head: after a MemoryError the value is handed over all the
    same; after another exception it is dropped and released, not kept in the dict."""
    real = oq._take

    def take_then_raise(*args):
        real(*args)
        raise exception

    for q in queues(backend):
        boxes = [Box(n) for n in range(3)]
        for box in boxes:
            put(q, box)
        refs = [weakref.ref(box) for box in boxes]
        del boxes, box
        monkeypatch.setattr(oq, "_take", take_then_raise)
        if exception is MemoryError:
            got = get(q)
            assert got.n == 0
            del got
        else:
            with pytest.raises(exception):
                get(q)
        monkeypatch.setattr(oq, "_take", real)
        assert [get(q).n for _ in range(2)] == [1, 2]
        assert not q._ftu_queue.objects and q.empty()
        gc.collect()
        gc.collect()
        assert [r() for r in refs] == [None] * 3


def test_an_exception_before_the_take_takes_nothing(backend, oq, monkeypatch):
    """MemoryError or a signal handler's exception before the core was called: the value
    stays at the head."""
    real = oq._take

    def raise_instead(*args):
        raise MemoryError

    for q in queues(backend):
        for n in range(3):
            put(q, n)
        monkeypatch.setattr(oq, "_take", raise_instead)
        with pytest.raises(MemoryError):
            get(q)
        monkeypatch.setattr(oq, "_take", real)
        assert [get(q) for _ in range(3)] == [0, 1, 2]


def test_a_push_interrupted_after_a_nested_push_keeps_its_object(backend, oq, monkeypatch):
    """A signal handler (or a finalizer) pushes to the same queue right after a push went
    in, then raises: the first push's handler must still know that its ticket went in and
    keep its object, or a pop would find the ticket with nothing behind it."""
    real = oq._push_now

    for q in queues(backend):
        def push_nested_then_raise(*args):
            real(*args)
            monkeypatch.setattr(oq, "_push_now", real)
            put(q, "nested")
            raise KeyboardInterrupt

        monkeypatch.setattr(oq, "_push_now", push_nested_then_raise)
        with pytest.raises(KeyboardInterrupt):
            put(q, "first")
        monkeypatch.setattr(oq, "_push_now", real)
        assert [get(q) for _ in range(2)] == ["first", "nested"]
        assert not q._ftu_queue.objects and q.empty()
