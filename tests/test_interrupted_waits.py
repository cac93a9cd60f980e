"""A wait interrupted by an exception (a signal handler that raises, as Ctrl-C does)
loses and leaks nothing: a put that raises leaves nothing behind, a pop that raises takes
nothing, and an iterator whose wait raised goes on where it was.

Each case runs in a child interpreter whose main thread receives timer signals
(SIGPROF, so as not to disturb the test runner's own alarms), on every backend.
"""

import os
import subprocess
import sys

import pytest

from conftest import BACKENDS

SCRIPT = r"""
import gc, os, signal, sys, threading, time, weakref
from ft_utils.concurrency import ConcurrentQueue, StdConcurrentQueue, ConcurrentGatheringIterator
from ft_utils._exceptions import Empty, ShutDown


class Interrupt(Exception):
    pass


def raise_interrupt(signum, frame):
    raise Interrupt


class Item:
    def __init__(self, n):
        self.n = n


def timer(seconds, interval=0.0):
    signal.signal(signal.SIGPROF, raise_interrupt)
    signal.setitimer(signal.ITIMER_PROF, seconds, interval)


def stop_timer():
    while True:  # a last signal may still strike while stopping
        try:
            signal.setitimer(signal.ITIMER_PROF, 0)
            # one already delivered (maybe to another thread) may not have run yet
            signal.signal(signal.SIGPROF, lambda signum, frame: None)
            return
        except Interrupt:
            pass


def busy_until(event):
    # ITIMER_PROF counts CPU time: keep the process busy while the main thread waits
    while not event.is_set():
        pass


case = os.environ["CASE"]

if case == "put interrupted":
    # A blocking put on a full queue, interrupted: the item is not kept anywhere.
    q = StdConcurrentQueue(1)
    q.put("first")
    item = Item(1)
    ref = weakref.ref(item)
    done = threading.Event()
    threading.Thread(target=busy_until, args=(done,), daemon=True).start()
    for timeout in (None, 30):
        timer(0.05)
        try:
            q.put(item, timeout=timeout)
        except Interrupt:
            pass
        else:
            sys.exit("the put returned")
        stop_timer()
    done.set()
    del item
    gc.collect()
    assert ref() is None, "the interrupted put kept its item alive"
    assert q.qsize() == 1 and q.get_nowait() == "first" and q.empty()
    assert q.unfinished_tasks == 1  # the first put's task only

elif case == "gathering wait interrupted":
    # An iterator whose wait raised goes on where it was (it used to be closed).
    g = ConcurrentGatheringIterator()
    values = g.iterator(2)
    done = threading.Event()
    threading.Thread(target=busy_until, args=(done,), daemon=True).start()
    timer(0.05)
    try:
        next(values)
    except Interrupt:
        pass
    else:
        sys.exit("next() returned")
    stop_timer()
    done.set()
    for k in range(3):
        g.insert(k, k)
    got = list(values)
    assert got == [0, 1, 2], got

elif case.startswith("storm"):
    # Pops under a storm of signals whose handler raises: an item that is neither
    # received nor left in the queue may only have been dropped, never kept alive (the
    # cffi backend used to strand such items in its ticket dict).
    kind = case.split()[1]
    q = StdConcurrentQueue() if kind == "get" else ConcurrentQueue()
    put = q.put if kind == "get" else q.push
    take = q.get if kind == "get" else q.pop
    total = 30000
    refs = []
    started = threading.Event()

    def produce():
        started.set()
        for n in range(total):
            item = Item(n)
            refs.append(weakref.ref(item))
            put(item)
            del item
            if n % 64 == 0:
                time.sleep(0)  # let the consumer wait now and then

    producer = threading.Thread(target=produce)
    producer.start()
    started.wait()
    received = set()
    armed = [False]

    def interrupt_once(signum, frame):
        # raises only inside the take (armed there), and once per arming, so that the
        # loop below never sees an exception outside its try
        if armed[0]:
            armed[0] = False
            raise Interrupt

    signal.signal(signal.SIGPROF, interrupt_once)
    signal.setitimer(signal.ITIMER_PROF, 0.0002, 0.0002)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            armed[0] = True
            try:
                value = take(timeout=0.05)
            finally:
                armed[0] = False
        except Interrupt:
            continue
        except Empty:
            if not producer.is_alive():
                break
            continue
        received.add(value.n)
        del value
    stop_timer()
    producer.join()
    left = set()
    while True:
        try:
            left.add((q.get_nowait() if kind == "get" else q.pop(timeout=0)).n)
        except Empty:
            break
    gc.collect()
    missing = set(range(total)) - received - left
    alive = [n for n in missing if refs[n]() is not None]
    assert not alive, f"{len(alive)} items neither received nor in the queue are kept alive: {alive[:10]}"
    print(f"received {len(received)}, left {len(left)}, dropped {len(missing)}", file=sys.stderr)

else:
    sys.exit(f"unknown case {case}")
print("ok")
"""

CASES = ["put interrupted", "gathering wait interrupted", "storm pop", "storm get"]


@pytest.mark.skipif(not hasattr(__import__("signal"), "setitimer"), reason="needs signal.setitimer")
@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("case", CASES)
def test_an_interrupted_wait_loses_and_leaks_nothing(backend_name, case):
    env = dict(os.environ, FT_UTILS_BACKEND=backend_name, CASE=case)
    result = subprocess.run([sys.executable, "-X", "faulthandler", "-c", SCRIPT], capture_output=True, text=True,
                            env=env, timeout=100)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr
