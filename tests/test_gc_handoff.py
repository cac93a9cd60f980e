"""A consumer blocked in a take never receives an object the garbage collector has
already finalized.

The race this guards against: a thread waiting in pop() (or get(), or a gathering
iterator's next()) is woken by a push while another thread runs gc.collect(). If the
woken thread moved the object's only reference out of the queue while the collector was
between counting the queue's references and marking what is reachable, the object looked
unreachable: its weak references were cleared and its __del__ ran, and then the consumer
received it (a file arrived closed). Waiting happens detached; taking must happen with the
thread state attached, which a collection excludes.

Each round: a consumer blocks; the main thread pushes an object carrying a weak reference
and a __del__, drops its own reference and collects at once, with enough tracked objects
alive that the collection takes a while. Before the fix nearly every round failed.
"""

import gc
import os
import sys
import threading
import time

import pytest

from ft_utils._exceptions import Empty
from threading_helpers import tracked_class

# Enough rounds to fail almost surely when the race exists (it hit 195 rounds of 200),
# few enough to stay in seconds (each takes a collection through the ballast: 0.17 s on
# free-threaded CPython); FT_UTILS_GC_ROUNDS=1000 for a longer proof.
# (PyPy's collector is not the one this is about, and each collection there is slow.)
ROUNDS = int(os.environ.get("FT_UTILS_GC_ROUNDS", "15" if sys.implementation.name == "pypy" else "40"))
BALLAST = int(os.environ.get("FT_UTILS_GC_BALLAST", "50000"))  # tracked objects: a collection then takes milliseconds


def _takers(backend):
    """name -> (make a container, put an item in, a blocking take)."""

    def queue_pop(timeout=None):
        return (backend.ConcurrentQueue, lambda q, x: q.push(x), lambda q: q.pop(timeout=timeout))

    def poll(make, put, take_nowait):
        def take(q):
            while True:
                try:
                    return take_nowait(q)
                except Empty:
                    time.sleep(0)

        return make, put, take

    class Gatherer:
        """One key per round, read back by one pass."""

        def __init__(self, clear):
            self.gatherer = backend.ConcurrentGatheringIterator()
            self.values = self.gatherer.iterator(ROUNDS - 1, clear=clear)
            self.key = 0

        def insert(self, value):
            self.gatherer.insert(self.key, value)
            self.key += 1

    def make_gatherer():
        return Gatherer(True)

    def make_gatherer_keep():
        return Gatherer(False)

    def gather_take(g):
        return next(g.values)

    return {
        "ConcurrentQueue.pop": queue_pop(),
        "ConcurrentQueue.pop(timeout)": queue_pop(30.0),
        "ConcurrentQueue(lock_free).pop": (
            lambda: backend.ConcurrentQueue(lock_free=True),
            lambda q, x: q.push(x),
            lambda q: q.pop(),
        ),
        "ConcurrentQueue.pop_local": (backend.ConcurrentQueue, lambda q, x: q.push(x), lambda q: q.pop_local().wrapped),
        "StdConcurrentQueue.get": (backend.StdConcurrentQueue, lambda q, x: q.put(x), lambda q: q.get()),
        "StdConcurrentQueue.get(timeout)": (
            backend.StdConcurrentQueue,
            lambda q, x: q.put(x),
            lambda q: q.get(timeout=30.0),
        ),
        "StdConcurrentQueue.get(timeout=0) polled": poll(
            backend.StdConcurrentQueue, lambda q, x: q.put(x), lambda q: q.get(timeout=0)
        ),
        "ConcurrentQueue.pop(timeout=0) polled": poll(
            backend.ConcurrentQueue, lambda q, x: q.push(x), lambda q: q.pop(timeout=0)
        ),
        "gathering iterator": (make_gatherer, lambda g, x: g.insert(x), gather_take),
        "gathering iterator, clear=False": (make_gatherer_keep, lambda g, x: g.insert(x), gather_take),
    }


TAKERS = [
    "ConcurrentQueue.pop",
    "ConcurrentQueue.pop(timeout)",
    "ConcurrentQueue(lock_free).pop",
    "ConcurrentQueue.pop_local",
    "StdConcurrentQueue.get",
    "StdConcurrentQueue.get(timeout)",
    "StdConcurrentQueue.get(timeout=0) polled",
    "ConcurrentQueue.pop(timeout=0) polled",
    "gathering iterator",
    "gathering iterator, clear=False",
]


@pytest.mark.stress
@pytest.mark.timeout(300)
@pytest.mark.parametrize("taker", TAKERS)
def test_blocked_taker_never_receives_a_finalized_object(backend, taker):
    takers = _takers(backend)
    assert sorted(takers) == sorted(TAKERS)
    make, put, take = takers[taker]
    # The container is made before the ballast and lives through every round, as in a
    # program with a long-lived queue: the collector then reaches it early in its walk.
    container = make()
    ballast = [[] for _ in range(BALLAST)]  # noqa: F841  (kept alive: slows each collection)
    Item = tracked_class()  # __del__ sets item.dead; item.ref is a weak reference to it
    received = []
    blocked = threading.Semaphore(0)

    def consume():
        for _ in range(ROUNDS):
            blocked.release()
            item = take(container)
            # What the consumer can rely on: the object is alive and not finalized.
            received.append((item.n, item.dead, item.ref() is None))
            del item

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    try:
        for n in range(ROUNDS):
            assert blocked.acquire(timeout=30), f"round {n}: the consumer is stuck"
            time.sleep(0.001)  # let it block in the take
            item = Item(n)
            put(container, item)
            del item
            gc.collect()
    finally:
        consumer.join(30)
    assert not consumer.is_alive(), "the consumer never received the last item"
    assert [n for n, _, _ in received] == list(range(ROUNDS))
    bad = [(n, finalized, dead_ref) for n, finalized, dead_ref in received if finalized or dead_ref]
    assert not bad, f"{len(bad)} of {ROUNDS} objects were finalized before the consumer got them: {bad[:5]}"
