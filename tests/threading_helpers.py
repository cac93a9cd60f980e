"""Running many threads at once, bounded in time, with their failures reported."""

import sys
import threading

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
