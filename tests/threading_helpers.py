"""Running many threads at once, bounded in time, with their failures reported; and the
checks of ordering that several test files share (docs/guarantees.md cites them)."""

import sys
import threading
import time

# Per-thread switch interval: on GIL interpreters, switch often so that threads really
# interleave inside the loops under test.
SWITCH_INTERVAL = 1e-6


def run_threads(count, target, timeout=60.0, args=()):
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
    sys.setswitchinterval(SWITCH_INTERVAL)
    try:
        threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout)
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
