"""Running many threads at once, bounded in time, with their failures reported."""

import gc
import sys
import threading
import time
import weakref

# Per-thread switch interval: on GIL interpreters, switch often so that threads really
# interleave inside the loops under test.
SWITCH_INTERVAL = 1e-6


def run_threads(count, target, timeout=60.0, args=(), switch_interval=SWITCH_INTERVAL):
    """Start ``count`` threads running ``target(index, *args)`` behind a barrier; join them
    within ``timeout`` seconds. Re-raises the first exception of any thread, fails if a
    thread is still running at the deadline. Returns the list of their return values."""
    barrier = threading.Barrier(count)
    results = [None] * count
    errors = []

    def body(index):
        try:
            barrier.wait(timeout)
            results[index] = target(index, *args)
        except BaseException as exc:  # reported to the test below
            errors.append(exc)

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval)
    try:
        threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + timeout  # one deadline for all, not one per thread
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        alive = [t.name for t in threads if t.is_alive()]
    finally:
        sys.setswitchinterval(old_interval)
    if errors:
        raise errors[0]
    assert not alive, f"threads still running after {timeout}s: {alive}"
    return results


def tracked_class():
    """A class of objects whose finalization is visible, for the garbage-collection tests.

    ``Tracked(n, cycle=False)`` carries the id ``n``, a weak reference to itself (``ref``)
    and a ``dead`` flag that its ``__del__`` sets; ``__del__`` also appends ``n`` to the
    class's ``finalized_ids`` (list.append is atomic on every interpreter we run). With
    ``cycle=True`` the object refers to itself, so only the cyclic collector can free it.
    ``Tracked.problem(obj)`` says what is wrong with an object someone holds: not a
    Tracked at all, finalized, or its weak reference cleared; None when it is sound.

    One class per test, so that a late finalizer of an earlier test (PyPy finalizes at its
    next collection) cannot be mistaken for one of this test's."""

    class Tracked:
        finalized_ids = []

        def __init__(self, n, cycle=False):
            self.n = n
            self.dead = False
            self.ref = weakref.ref(self)
            if cycle:
                self.cycle = self

        def __del__(self):
            self.dead = True
            Tracked.finalized_ids.append(self.n)

        @staticmethod
        def problem(obj):
            if type(obj) is not Tracked:
                return f"received {type(obj).__name__} {obj!r:.80}, not a tracked object"
            if obj.dead:
                return f"#{obj.n} was finalized (its __del__ ran) while held"
            if obj.ref() is not obj:
                return f"#{obj.n}: its weak reference was cleared while it was held"
            return None

    return Tracked


class GcFire:
    """Collections in a loop while worker threads run: ``run(workers, seconds)``.

    Each worker is called as ``worker(stop)`` in a thread of its own, ``stop`` a
    threading.Event set once ``seconds`` have passed and the collector thread has
    completed ``min_collections`` calls of gc.collect() (generations 0, 1, 2 and full in
    turn), or at ``hard_limit`` seconds whatever it completed; ``on_stop()`` is called
    right after (to shut queues down, say) while the collections go on. The collector
    thread stops once every worker has returned; it pauses after each collection for as
    long as the collection took (at most 20 ms). The automatic collector is made eager
    meanwhile (where gc.set_threshold exists), so that allocations in every thread start
    collections too. Returns the number of gc.collect() calls made; exceptions of the
    workers are re-raised (run_threads)."""

    def __init__(self, min_collections=3, hard_limit=None, ballast=0):
        self.min_collections = min_collections
        self.hard_limit = hard_limit
        self.ballast = ballast  # tracked objects kept alive meanwhile: each collection takes longer

    def run(self, workers, seconds, on_stop=None, timeout=60.0):
        stop = threading.Event()
        workers_done = threading.Event()
        remaining = [len(workers)]
        remaining_lock = threading.Lock()
        collections = [0]
        hard_limit = self.hard_limit if self.hard_limit is not None else max(4 * seconds, 10.0)

        def collector():
            generations = (None, 0, 1, 2)
            while not workers_done.is_set():
                generation = generations[collections[0] % len(generations)]
                started = time.monotonic()
                if generation is None:
                    gc.collect()
                else:
                    gc.collect(generation)
                collections[0] += 1
                # Collecting about half of the time leaves the workers the other half,
                # where a collection takes long and excludes them (PyPy, a GIL).
                workers_done.wait(min(time.monotonic() - started, 0.02))

        def controller():
            start = time.monotonic()
            while True:
                elapsed = time.monotonic() - start
                if elapsed >= hard_limit or (elapsed >= seconds and collections[0] >= self.min_collections):
                    break
                if workers_done.wait(0.01):
                    break
            stop.set()
            if on_stop is not None:
                on_stop()

        def body(index):
            if index == 0:
                return collector()
            if index == 1:
                return controller()
            try:
                return workers[index - 2](stop)
            finally:
                with remaining_lock:
                    remaining[0] -= 1
                    if remaining[0] == 0:
                        workers_done.set()

        ballast = [[] for _ in range(self.ballast)]  # noqa: F841  (alive until the end of run)
        old_threshold = gc.get_threshold() if hasattr(gc, "set_threshold") else None
        if old_threshold is not None:
            gc.set_threshold(100, 5, 5)
        try:
            # (PyPy's threads take 20 times longer for the same work when the GIL
            # changes hands every microsecond: a millisecond there.)
            switch_interval = 1e-3 if sys.implementation.name == "pypy" else SWITCH_INTERVAL
            run_threads(len(workers) + 2, body, timeout=timeout, switch_interval=switch_interval)
        finally:
            stop.set()
            workers_done.set()
            if old_threshold is not None:
                gc.set_threshold(*old_threshold)
        return collections[0]
