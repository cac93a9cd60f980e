"""ConcurrentGatheringIterator on every backend: key order, waiting for keys, failures,
lifetimes, and 8 inserting threads with the iterator yielding exactly 0..max_key."""

import gc
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import pytest

from threading_helpers import run_threads


class Obj:
    def __init__(self, n=0):
        self.n = n


def test_spec_example(backend):
    iterator = backend.ConcurrentGatheringIterator()
    iterator.insert(0, "value0")
    iterator.insert(1, "value1")
    iterator.insert(2, "value2")
    assert list(iterator.iterator(2)) == ["value0", "value1", "value2"]


def test_spec_thread_pool_example(backend):
    iterator = backend.ConcurrentGatheringIterator()
    atomic_index = backend.AtomicInt64(-1)

    def insert_value(value):
        iterator.insert(atomic_index.incr(), value)

    with ThreadPoolExecutor(max_workers=10) as executor:
        for i in range(100):
            executor.submit(insert_value, i)
    assert sorted(iterator.iterator(99)) == list(range(100))


def test_out_of_order_inserts_come_out_in_key_order(backend):
    g = backend.ConcurrentGatheringIterator(4)
    for key in [3, 1, 4, 0, 2]:
        g.insert(key, f"v{key}")
    assert list(g.iterator(4)) == ["v0", "v1", "v2", "v3", "v4"]
    assert list(g.iterator(-1)) == []


def test_clear_false_keeps_the_values(backend):
    g = backend.ConcurrentGatheringIterator()
    for key in range(3):
        g.insert(key, key * 10)
    assert list(g.iterator(2, clear=False)) == [0, 10, 20]
    assert list(g.iterator(2, clear=False)) == [0, 10, 20]
    assert list(g.iterator(2)) == [0, 10, 20]


def test_iterator_local_yields_wrappers(backend):
    g = backend.ConcurrentGatheringIterator()
    g.insert(0, [1, 2])
    (wrapped,) = list(g.iterator_local(0))
    assert type(wrapped).__name__ == "LocalWrapper" and wrapped == [1, 2]


def test_iterator_waits_for_the_next_key(backend):
    g = backend.ConcurrentGatheringIterator()
    g.insert(0, "first")

    def later():
        time.sleep(0.05)
        g.insert(1, "second")

    threading.Thread(target=later).start()
    start = time.monotonic()
    assert list(g.iterator(1)) == ["first", "second"]
    assert 0.03 < time.monotonic() - start < 5


@pytest.mark.parametrize("bad_key, error", [(-1, ValueError), ("1", TypeError), (1.0, TypeError), (2**64, ValueError)])
def test_bad_key_fails_the_inserter_and_the_iterators(backend, bad_key, error):
    g = backend.ConcurrentGatheringIterator()
    g.insert(0, "ok")
    with pytest.raises(error):
        g.insert(bad_key, "bad")
    with pytest.raises(RuntimeError, match="insert"):
        list(g.iterator(0))


def test_duplicate_key_fails(backend):
    g = backend.ConcurrentGatheringIterator()
    g.insert(0, "a")
    with pytest.raises(ValueError, match="already inserted"):
        g.insert(0, "b")
    with pytest.raises(RuntimeError):
        next(iter(g.iterator(0)))


def test_failure_wakes_a_waiting_iterator(backend):
    g = backend.ConcurrentGatheringIterator()

    def later():
        time.sleep(0.05)
        with pytest.raises(ValueError):
            g.insert(-5, None)

    thread = threading.Thread(target=later)
    thread.start()
    with pytest.raises(RuntimeError):
        list(g.iterator(3))
    thread.join()


def test_scaling_argument(backend):
    backend.ConcurrentGatheringIterator(scaling=8)
    with pytest.raises(ValueError):
        backend.ConcurrentGatheringIterator(0)


def test_values_are_released(backend):
    g = backend.ConcurrentGatheringIterator()
    taken, left = Obj(), Obj()
    refs = weakref.ref(taken), weakref.ref(left)
    g.insert(0, taken)
    g.insert(5, left)
    g.insert(6, g)  # a cycle through the gatherer
    del taken, left
    assert len(list(g.iterator(0))) == 1
    gc.collect()
    assert refs[0]() is None and refs[1]() is not None
    del g
    gc.collect()
    assert refs[1]() is None


@pytest.mark.stress
def test_threads_insert_iterator_yields_exactly_every_key_in_order(backend):
    """8 threads insert interleaved keys while the main thread iterates: exactly
    0..max_key, in order, each with its own value."""
    g = backend.ConcurrentGatheringIterator()
    threads, max_key = 8, 20000
    collected = []

    def work(index):
        if index == threads:
            collected.extend(g.iterator(max_key))
            return
        for key in range(index, max_key + 1, threads):
            g.insert(key, (key, index))

    run_threads(threads + 1, work, timeout=90)
    assert [k for k, _ in collected] == list(range(max_key + 1))
    assert all(index == key % threads for key, index in collected)
