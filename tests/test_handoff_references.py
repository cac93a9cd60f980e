"""References handed between threads through the queues and the gatherer: counted exactly.

On the free-threaded build, the native backend counts the reference a queue holds in the
object's shared reference count (see ft_utils/native/pycompat.h, ftu_incref_handoff), so
that the consumer's release does not send the object back to its owner thread. These
tests check that the count stays balanced whoever pushes and pops, and that an object
lives exactly as long as someone holds it: not freed early while its producer still holds
it, freed once the last holder lets go."""

import gc
import platform
import sys
import threading
import weakref

import pytest

from threading_helpers import run_threads

CPYTHON = platform.python_implementation() == "CPython"


class Obj:
    pass


def channel(backend, kind):
    """(put, get) for one queue type; the gatherer hands keys 0, 1, 2... in order."""
    if kind == "ConcurrentQueue":
        q = backend.ConcurrentQueue()
        return q.push, q.pop
    if kind == "ConcurrentQueue lock_free":
        q = backend.ConcurrentQueue(lock_free=True)
        return q.push, q.pop
    if kind == "StdConcurrentQueue":
        q = backend.StdConcurrentQueue()
        return q.put, q.get
    g = backend.ConcurrentGatheringIterator()
    keys = iter(range(10**9))
    lock = threading.Lock()

    def insert(value):
        with lock:
            key = next(keys)
        g.insert(key, value)

    values = g.iterator(10**9 - 1)
    return insert, lambda: next(values)


KINDS = ["ConcurrentQueue", "ConcurrentQueue lock_free", "StdConcurrentQueue", "ConcurrentGatheringIterator"]


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.mark.skipif(not CPYTHON, reason="sys.getrefcount is CPython's")
def test_reference_count_is_balanced_in_one_thread(backend, kind):
    put, get = channel(backend, kind)
    obj = Obj()
    before = sys.getrefcount(obj)
    for _ in range(100):
        put(obj)
    assert sys.getrefcount(obj) == before + 100
    for _ in range(100):
        assert get() is obj
    assert sys.getrefcount(obj) == before


@pytest.mark.skipif(not CPYTHON, reason="sys.getrefcount is CPython's")
def test_reference_count_is_balanced_across_threads(backend, kind):
    """An object of the main thread goes through the queue 20000 times, pushed by one
    thread and popped by another: its count ends where it started."""
    put, get = channel(backend, kind)
    obj = Obj()
    before = sys.getrefcount(obj)
    n = 20000

    def work(index):
        if index == 0:
            for _ in range(n):
                put(obj)
        else:
            for _ in range(n):
                assert get() is obj

    run_threads(2, work, timeout=60)
    assert sys.getrefcount(obj) == before


@pytest.mark.parametrize("last", ["producer", "consumer"])
def test_an_object_lives_while_anyone_holds_it(backend, kind, last):
    """The producer makes objects and pushes them, the consumer pops them; whichever of
    the two lets go last, the objects live until then and die after."""
    put, get = channel(backend, kind)
    n = 2000
    refs = []
    kept = {}
    produced, consumed, release = threading.Event(), threading.Event(), threading.Event()

    def producer():
        mine = [Obj() for _ in range(n)]
        refs.extend(weakref.ref(o) for o in mine)
        for o in mine:
            put(o)
        produced.set()
        if last == "producer":
            release.wait(30)
        del mine[:]

    def consumer():
        held = [get() for _ in range(n)]
        consumed.set()
        if last == "consumer":
            kept["held"] = held

    threads = [threading.Thread(target=producer), threading.Thread(target=consumer)]
    for t in threads:
        t.start()
    assert produced.wait(30) and consumed.wait(30)
    if last == "producer":
        threads[1].join(30)  # the consumer has dropped everything it popped
        gc.collect()
        assert all(r() is not None for r in refs), "freed while the producer still holds it"
        release.set()
    threads[0].join(30)
    threads[1].join(30)
    if last == "consumer":
        gc.collect()
        assert all(r() is not None for r in refs), "freed while the consumer still holds it"
        assert [r() for r in refs] == kept["held"]
        del kept["held"]
    gc.collect()
    assert all(r() is None for r in refs), "not freed once nobody holds it"
