"""AtomicReference on every backend: identity semantics, GC, release of objects, and
get() racing set()/exchange() from many threads without crashes or leaks."""

import copy
import gc
import os
import platform
import subprocess
import sys
import threading
import time
import weakref

import pytest

from conftest import BACKENDS
from threading_helpers import assert_real_time_order, run_threads, writes_before_publishing_are_seen


class Obj:
    """A weak-referenceable object with an identity but a permissive __eq__."""

    def __init__(self, value=0):
        self.value = value

    def __eq__(self, other):  # equal to everything: CAS must not use ==
        return True

    __hash__ = object.__hash__


def test_default_is_none(backend):
    assert backend.AtomicReference().get() is None


def test_get_set_exchange(backend):
    a, b = Obj(), Obj()
    r = backend.AtomicReference(a)
    assert r.get() is a
    assert r.set(b) is None
    assert r.get() is b
    assert r.exchange(a) is b
    assert r.get() is a
    assert backend.AtomicReference(obj=b).get() is b


def test_compare_exchange_is_by_identity(backend):
    a, b, c = Obj(), Obj(), Obj()
    r = backend.AtomicReference(a)
    assert a == b  # equal, yet not the same object
    assert r.compare_exchange(b, c) is False
    assert r.get() is a
    assert r.compare_exchange(a, c) is True
    assert r.get() is c
    if platform.python_implementation() == "CPython":  # PyPy's `is` compares ints by value
        big = 10**30
        r.set(big)
        assert r.compare_exchange(10**30 + 0 * int("1"), 1) is False  # an equal, distinct int


def test_compare_exchange_argument_count(backend):
    r = backend.AtomicReference()
    with pytest.raises(TypeError):
        r.compare_exchange(None)
    with pytest.raises(TypeError):
        r.set()


def test_spec_example(backend):
    r = backend.AtomicReference(0)

    def increment(r):
        while True:
            current = r.get()
            if r.compare_exchange(current, current + 1):
                break

    increment(r)
    assert r.get() == 1


def test_repr(backend):
    r = backend.AtomicReference([1, 2])
    assert repr(r) == "AtomicReference([1, 2])"
    r.set(r)
    assert repr(r) == "AtomicReference(...)"
    r.set(None)


def test_copy(backend):
    inner = [1]
    r = backend.AtomicReference(inner)
    assert copy.copy(r).get() is inner
    deep = copy.deepcopy(r).get()
    assert deep == inner and deep is not inner


def test_objects_are_released(backend):
    a, b = Obj(), Obj()
    wa, wb = weakref.ref(a), weakref.ref(b)
    r = backend.AtomicReference(a)
    del a
    assert wa() is not None
    r.set(b)
    gc.collect()  # PyPy has no reference counting
    assert wa() is None, "set() releases the previous object"
    del b
    assert wb() is not None
    del r
    gc.collect()
    assert wb() is None, "the reference releases its object when it dies"


def test_reference_cycle_is_collected(backend):
    class Holder:
        pass

    h = Holder()
    h.ref = backend.AtomicReference(h)  # h -> ref -> h
    w = weakref.ref(h)
    del h
    gc.collect()
    assert w() is None


def test_self_cycle_is_collected(backend):
    r = backend.AtomicReference()
    r.set(r)
    w = weakref.ref(r)
    del r
    gc.collect()
    assert w() is None


def test_del_that_touches_the_same_reference(backend):
    """Releasing the old object runs its __del__, which may use the reference: no
    deadlock, no crash."""
    r = backend.AtomicReference()
    seen = []

    class Touchy:
        def __del__(self):
            seen.append(r.get())
            r.compare_exchange(None, "from __del__")

    r.set(Touchy())
    r.set(None)
    gc.collect()  # PyPy has no reference counting
    assert len(seen) == 1 and r.get() == "from __del__"


# ---- many threads ------------------------------------------------------------------

THREADS = 8


@pytest.mark.stress
def test_threads_cas_increment_exact(backend):
    """The spec's CAS loop from 8 threads: every increment counted exactly once."""
    r = backend.AtomicReference(0)
    n = 3000

    def work(_):
        for _ in range(n):
            while True:
                current = r.get()
                if r.compare_exchange(current, current + 1):
                    break

    run_threads(THREADS, work)
    assert r.get() == THREADS * n


@pytest.mark.stress
def test_threads_get_races_set_and_exchange(backend):
    """Readers get() while writers set() and exchange() fresh objects whose only
    reference is the slot: a load+incref racing a decref would crash or read a freed
    object. Every object read must be intact, and all are released at the end."""
    r = backend.AtomicReference(Obj(-1))
    n = 20000
    refs = []
    refs_lock = threading.Lock()
    stop = threading.Event()

    def work(index):
        if index % 2 == 0:  # writer
            for i in range(n):
                o = Obj(i)
                if i % 64 == 0:
                    with refs_lock:
                        refs.append(weakref.ref(o))
                if i % 2:
                    r.set(o)
                else:
                    r.exchange(o)
                del o
            return 0
        reads = 0
        while not stop.is_set() or reads < n:
            o = r.get()
            assert isinstance(o, Obj) and isinstance(o.value, int)
            reads += 1
            if reads >= 4 * n:
                break
        return reads

    writers_done = []

    def run(index):
        try:
            return work(index)
        finally:
            if index % 2 == 0:
                writers_done.append(index)
                if len(writers_done) == THREADS // 2:
                    stop.set()

    run_threads(THREADS, run, timeout=90)
    r.set(None)
    gc.collect()
    alive = [w for w in refs if w() is not None]
    assert not alive, f"{len(alive)} objects leaked"


@pytest.mark.stress
def test_threads_exchange_conserves_objects(backend):
    """Objects swapped through exchange(): each comes out exactly once."""
    r = backend.AtomicReference(("start",))
    n = 3000

    def work(index):
        return [r.exchange((index, i)) for i in range(n)]

    taken = [v for chunk in run_threads(THREADS, work) for v in chunk] + [r.get()]
    expected = [("start",)] + [(t, i) for t in range(THREADS) for i in range(n)]
    assert sorted(taken, key=repr) == sorted(expected, key=repr)


@pytest.mark.stress
def test_threads_writes_before_set_are_seen_by_the_getter(backend):
    """What a thread wrote before set(obj) is visible to a thread whose get() returned obj."""
    r = backend.AtomicReference(None)
    assert writes_before_publishing_are_seen(r.set, r.get) == []


def test_a_finalizer_still_running_holds_no_lock(backend):
    """set() releases the object it replaces after the swap: while that object's __del__
    is still running (here: waiting for the main thread), other threads' get, set,
    exchange and compare_exchange on the same reference go through."""
    r = backend.AtomicReference()
    entered, leave = threading.Event(), threading.Event()

    class Slow:
        def __del__(self):
            entered.set()
            leave.wait(30)

    # The replacer makes the object too: on free-threaded CPython an object dropped by
    # a thread other than the one that made it may be finalized later in its maker's
    # thread (here the main thread, which would then wait in __del__ itself).
    replacer = threading.Thread(target=lambda: (r.set(Slow()), r.set("replaced"), gc.collect()), daemon=True)
    replacer.start()
    try:
        assert entered.wait(30), "the finalizer did not run"
        done = []

        def others():
            current = r.get()
            r.set("other")
            r.exchange("exchanged")
            done.append((current, r.compare_exchange(r.get(), "swapped")))

        other = threading.Thread(target=others, daemon=True)
        other.start()
        other.join(10)
        assert done == [("replaced", True)], "an operation waited for the finalizer"
        assert r.get() == "swapped"
    finally:
        leave.set()
        replacer.join(30)


@pytest.mark.stress
def test_threads_exchange_is_linearizable(backend):
    """Threads exchange() tokens of their own in, each call timed. Each call returns the
    token the previous one stored, so the returns chain all the calls into the one order
    the reference went through: it must hold every call once, and a call that returned
    before another began must come first in it."""
    r = backend.AtomicReference("start")
    clock = time.perf_counter_ns

    def work(index):
        calls = []
        for n in range(3000):
            token = (index, n)
            start = clock()
            previous = r.exchange(token)
            calls.append((start, clock(), token, previous))
        return calls

    calls = [call for chunk in run_threads(4, work) for call in chunk]
    following = {previous: (start, end, token) for start, end, token, previous in calls}
    assert len(following) == len(calls), "two calls returned the same token"
    order, current = [], "start"
    while current in following:
        start, end, current = following[current]
        order.append((start, end, len(order)))
    assert len(order) == len(calls) and current == r.get(), "the calls do not form one chain"
    assert_real_time_order(order)


REENTRY_SCRIPT = r"""
import faulthandler, signal, sys, time
faulthandler.dump_traceback_later(30, exit=True)  # a deadlock fails, with the stack
from ft_utils.concurrency import AtomicReference

r = AtomicReference(0)
inside, calls = [False], [0]


def handler(signum, frame):
    if inside[0]:
        return
    inside[0] = True
    try:
        r.set("handler")
        r.exchange("handler")
        r.compare_exchange(r.get(), "handler")
        calls[0] += 1
    finally:
        inside[0] = False


signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)
end, n = time.monotonic() + 2, 0
while time.monotonic() < end or calls[0] < 100:
    r.set(n)
    r.exchange(n)
    r.compare_exchange(n, n + 1)
    n += 1
signal.setitimer(signal.ITIMER_REAL, 0)
print("ok", calls[0])
"""


@pytest.mark.skipif(not hasattr(__import__("signal"), "setitimer"), reason="needs signal.setitimer")
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_a_handler_using_the_reference_inside_an_operation_does_not_deadlock(backend_name):
    """Python code can run in the middle of an operation on the same thread: a signal
    handler, or on PyPy a finalizer, runs between any two steps of Python code (of the
    cffi backend's methods). If it calls set, exchange or compare_exchange on the same
    reference, it goes through instead of waiting for a lock its own thread holds (PyPy
    deadlocked here within seconds)."""
    env = dict(os.environ, FT_UTILS_BACKEND=backend_name)
    result = subprocess.run([sys.executable, "-c", REENTRY_SCRIPT], capture_output=True, text=True, env=env,
                            timeout=90)
    assert result.returncode == 0 and result.stdout.startswith("ok"), result.stdout + result.stderr[-3000:]
