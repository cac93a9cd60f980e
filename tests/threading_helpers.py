"""Running many threads at once, bounded in time, with their failures reported; and the
checks of ordering that several test files share (docs/guarantees.md cites them)."""

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


def writes_before_publishing_are_seen(publish, receive, count=20000, timeout=60.0):
    """The message-passing pattern, through the object under test.

    A writer thread stores ``side[i] = i`` in a plain list, then calls ``publish(i)``, for
    i = 0, 1, ... count - 1. A reader thread calls ``receive()`` (an index published
    through the object, or None when it has none yet) until it gets the last index, and
    for each index i it receives reads ``side[i]``. Returns the indices the reader got
    before it could see the writer's ``side[i] = i`` (none, when the object orders what
    its writer did before a publish before what its reader does after the receive)."""
    side = [None] * count
    stale = []

    def work(index):
        if index == 0:
            for i in range(count):
                side[i] = i
                publish(i)
            return 0
        deadline = time.monotonic() + timeout
        received = 0
        while time.monotonic() < deadline:
            i = receive()
            if i is None:
                continue
            received += 1
            if side[i] != i:
                stale.append(i)
            if i == count - 1:
                return received
        raise AssertionError(f"the reader never received index {count - 1}")

    received = run_threads(2, work, timeout=timeout + 10)[1]
    assert received > 0
    return stale


def assert_real_time_order(operations):
    """``operations``: (start_ns, end_ns, rank) of calls made by many threads, timed with
    time.perf_counter_ns() just before each call and just after it returned; rank is where
    the call's effect landed in the object's one order (the value an incr() returned, the
    place a pushed value came out at). Linearizability of that order: a call that
    returned before another began is ranked first. Fails naming the first pair that is
    not."""
    by_end = sorted(operations, key=lambda op: op[1])
    latest = None  # of the calls that ended before the current one began, the highest ranked
    k = 0
    for op in sorted(operations, key=lambda op: op[0]):
        while k < len(by_end) and by_end[k][1] < op[0]:
            if latest is None or by_end[k][2] > latest[2]:
                latest = by_end[k]
            k += 1
        assert latest is None or latest[2] < op[2], (
            f"a call ranked {latest[2]} ended (at {latest[1]} ns) before a call ranked {op[2]} "
            f"began (at {op[0]} ns): the order does not follow real time"
        )


def fifo_follows_real_time_order(put, get, producers=3, per_producer=3000, timeout=60.0):
    """Producers put (producer, n) values, timing each put; one consumer gets them all.
    Asserts that values come out in the real-time order of their puts (a put that returned
    before another began comes out first), and that each comes out once."""
    spans = {}  # value -> (start_ns, end_ns)
    total = producers * per_producer
    clock = time.perf_counter_ns

    def work(index):
        if index < producers:
            mine = []
            for n in range(per_producer):
                value = (index, n)
                start = clock()
                put(value)
                mine.append((value, start, clock()))
            for value, start, end in mine:
                spans[value] = (start, end)  # one thread at a time per key: no race
            return None
        return [get() for _ in range(total)]

    out = run_threads(producers + 1, work, timeout=timeout)[producers]
    assert sorted(out) == sorted(spans), "values lost or duplicated"
    assert_real_time_order([(*spans[value], position) for position, value in enumerate(out)])
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
