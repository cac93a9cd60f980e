"""StdConcurrentQueue on every backend: queue.Queue's behaviour (and CPython's own
queue.Queue test-suite where the interpreter ships it), exact maxsize and FIFO under
threads, tasks, a hypothesis state machine against a deque."""

import collections
import gc
import queue
import sys
import threading
import time
import unittest
import weakref

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from conftest import BACKENDS
from ft_utils import _backend
from threading_helpers import fifo_follows_real_time_order, run_threads, writes_before_publishing_are_seen


class Obj:
    pass


def test_basic_put_get(backend):
    q = backend.StdConcurrentQueue()
    assert q.maxsize == 0 and q.empty() and not q.full() and q.qsize() == 0
    for i in range(5):
        q.put(i)
    q.put_nowait(5)
    assert q.qsize() == 6
    assert [q.get() for _ in range(3)] == [0, 1, 2]
    assert q.get(block=False) == 3 and q.get(timeout=1) == 4 and q.get_nowait() == 5
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.01)


def test_maxsize(backend):
    q = backend.StdConcurrentQueue(2)
    q.put(1)
    q.put(2)
    assert q.full()
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.01)
    with pytest.raises(queue.Full):
        q.put(3, block=False)
    q.maxsize = 3
    q.put_nowait(3)
    assert q.full() and q.maxsize == 3
    q.maxsize = 0
    q.put_nowait(4)
    assert not q.full()
    negative = backend.StdConcurrentQueue(-5)  # as queue.Queue: read back as given, unbounded
    assert negative.maxsize == -5 and not negative.full()
    for n in range(5):
        negative.put_nowait(n)
    with pytest.raises(TypeError, match="maxsize must be a real number, not str"):
        backend.StdConcurrentQueue("3")
    with pytest.raises(TypeError, match="maxsize must be a real number, not NoneType"):
        q.maxsize = None
    assert q.maxsize == 0  # unchanged by the failed assignment


def test_timeouts_are_checked(backend):
    q = backend.StdConcurrentQueue(1)
    with pytest.raises(ValueError, match="non-negative"):
        q.get(timeout=-1)
    q.put(1)
    with pytest.raises(ValueError, match="non-negative"):
        q.put(2, timeout=-1)
    with pytest.raises(TypeError):
        q.get(True, "soon")


def test_maxsize_is_kept_as_given_and_bounds_at_its_ceiling(backend):
    q = backend.StdConcurrentQueue(maxsize=2.5)
    assert q.maxsize == 2.5 and "maxsize=2.5" in repr(q)
    for n in range(3):
        q.put_nowait(n)
    assert q.full()
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    q.maxsize = 2**70  # never fills, reads back as given
    assert q.maxsize == 2**70 and not q.full()
    q.put_nowait(3)
    q.maxsize = 4
    assert q.full()


def test_reinit_changes_maxsize_only(backend):
    q = backend.StdConcurrentQueue(1)
    q.put(1)
    q.__init__(3)
    assert q.maxsize == 3 and q.qsize() == 1 and q.unfinished_tasks == 1
    q.__init__()
    assert q.maxsize == 0 and q.get_nowait() == 1


def test_maxsize_in_a_cycle_is_collected(backend):
    class Size(float):
        pass

    size = Size(2.0)
    q = backend.StdConcurrentQueue(size)
    size.queue = q  # queue -> maxsize -> queue
    ref = weakref.ref(q)
    del q, size
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), 1e10, 1e300])
def test_timeouts_without_end_wait_until_an_item_comes(backend, timeout):
    """queue.Queue raises OverflowError (or spins a CPU for ever on NaN) when such a
    timeout has to wait; here it waits without limit (docs/std_concurrent_queue.md)."""
    q = backend.StdConcurrentQueue(1)
    later = threading.Timer(0.1, q.put, ("item",))
    later.start()
    try:
        assert q.get(timeout=timeout) == "item"
    finally:
        later.join()
    q.put("first")
    later = threading.Timer(0.1, q.get)
    later.start()
    try:
        q.put("second", timeout=timeout)  # waits for the Timer's get to make room
    finally:
        later.join()
    assert q.get_nowait() == "second"


def test_put_blocks_when_the_queue_became_bounded_meanwhile(backend):
    """A put that finds the queue unbounded does not look at block and timeout; if maxsize
    is set and the queue is full before it adds its item, it must wait as a put into a
    bounded queue does, not raise Full. (Under a GIL the native put cannot be caught in
    between; the cffi one and the free-threaded one can.)"""
    q = backend.StdConcurrentQueue()
    stop = threading.Event()

    def toggle():
        while not stop.is_set():
            q.maxsize = 1
            q.maxsize = 0

    toggler = threading.Thread(target=toggle)
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    toggler.start()
    count, end = 0, time.monotonic() + 1.0  # (without the fix: ~1 Full per 200 puts on 3.13t)
    try:
        while count < 400000 and time.monotonic() < end:
            q.put(count, timeout=30)  # the queue holds items, full whenever maxsize is 1:
            count += 1  # waits for maxsize 0 again; never Full
    finally:
        stop.set()
        toggler.join(60)
        sys.setswitchinterval(old_interval)
    q.maxsize = 0
    assert [q.get_nowait() for _ in range(count)] == list(range(count))


@pytest.mark.stress
def test_threads_set_and_read_maxsize(backend):
    """maxsize objects made and dropped by setters while readers take them (a read that
    raced the setter's release crashed a version without the lock in 3 of 3 runs of 3 s
    on 3.13t): every read is one of the values set, and maxsize and the bound agree at
    the end."""
    q = backend.StdConcurrentQueue()
    values = {0.5 + n for n in range(8)}
    end = time.monotonic() + 2.0

    def work(index):
        if index < 2:
            half, n = 0.5, 0
            while time.monotonic() < end:
                for _ in range(100):
                    q.maxsize = half + n % 8  # a new float object each time
                    n += 1
            return None
        seen = set()
        while time.monotonic() < end:
            for _ in range(100):
                seen.add(q.maxsize)
        return seen

    results = run_threads(5, work, timeout=120)
    for seen in results[2:]:
        assert seen <= values | {0}
    q.maxsize = 2.5
    for n in range(3):
        q.put_nowait(n)
    assert q.full() and q.maxsize == 2.5


def test_tasks(backend):
    q = backend.StdConcurrentQueue()
    with pytest.raises(ValueError, match="too many"):
        q.task_done()
    q.put("a")
    q.put("b")
    assert q.unfinished_tasks == 2
    finished = []

    def worker():
        for _ in range(2):
            item = q.get()
            time.sleep(0.01)
            finished.append(item)  # before task_done: join must not return earlier
            q.task_done()

    thread = threading.Thread(target=worker)
    thread.start()
    q.join()
    assert finished == ["a", "b"] and q.unfinished_tasks == 0
    thread.join()


def test_shutdown(backend):
    q = backend.StdConcurrentQueue()
    assert q.is_shutdown is False
    q.put(1)
    q.shutdown()
    assert q.is_shutdown is True
    with pytest.raises(backend.ShutDown):
        q.put(2)
    assert q.get() == 1
    with pytest.raises(backend.ShutDown):
        q.get()
    q2 = backend.StdConcurrentQueue()
    items = [Obj(), Obj()]
    refs = [weakref.ref(i) for i in items]
    for item in items:
        q2.put(item)
    del items, item
    q2.shutdown(immediate=True)
    gc.collect()
    assert all(r() is None for r in refs) and q2.qsize() == 0 and q2.unfinished_tasks == 0
    q2.join()  # the immediate shutdown ended the removed items' tasks


def test_generic_alias_and_repr(backend):
    assert backend.StdConcurrentQueue[int].__origin__ is backend.StdConcurrentQueue
    assert "maxsize=3" in repr(backend.StdConcurrentQueue(3))


def test_objects_left_in_a_dropped_queue_are_released(backend):
    q = backend.StdConcurrentQueue()
    item = Obj()
    ref = weakref.ref(item)
    q.put(item)
    q.put(q)
    del item, q
    gc.collect()
    assert ref() is None


# ---- CPython's own queue.Queue test-suite --------------------------------------------------

# Whatever version of the suite the interpreter ships: 3.13's has 24 tests (shutdown
# included), 3.11's has 6. PyPy from Debian ships none.
try:
    from test import test_queue as cpython_test_queue

    HAVE_SUITE = hasattr(cpython_test_queue, "BaseQueueTestMixin")
except Exception:  # interpreters without the test package
    HAVE_SUITE = False

if HAVE_SUITE:

    def _suite_for(name):
        # The suite picks the expected order from the class name: "Queue" means FIFO.
        Queue = type("Queue", (_backend.load(name).StdConcurrentQueue,), {})

        class Suite(cpython_test_queue.BaseQueueTestMixin, unittest.TestCase):
            queue = queue

            def setUp(self):
                self.type2test = Queue
                super().setUp()

        Suite.__name__ = Suite.__qualname__ = f"TestCPythonQueueSuite_{name}"
        return Suite

    for _name in BACKENDS:
        globals()[f"TestCPythonQueueSuite_{_name}"] = _suite_for(_name)
    del _name
else:

    def test_cpython_suite_is_available_where_it_matters():
        pytest.skip("this interpreter does not ship CPython's test.test_queue")


# ---- threads --------------------------------------------------------------------------------


@pytest.mark.stress
def test_threads_maxsize_is_never_exceeded_and_nothing_is_lost(backend):
    q = backend.StdConcurrentQueue(4)
    producers, consumers, per_producer = 4, 4, 2000
    over = []

    def work(index):
        if index < producers:
            for n in range(per_producer):
                q.put((index, n))
                size = q.qsize()
                if size > 4:
                    over.append(size)
            return []
        got = []
        while len(got) < per_producer:  # as many gets as one producer's puts
            got.append(q.get(timeout=30))
            q.task_done()
        return got

    results = run_threads(producers + consumers, work, timeout=90)
    q.join()
    everything = [item for got in results for item in got]
    assert not over, f"qsize went over maxsize: {over[:5]}"
    assert sorted(everything) == sorted((p, n) for p in range(producers) for n in range(per_producer))
    for got in results[producers:]:
        last = {}
        for p, n in got:
            assert n > last.get(p, -1)
            last[p] = n


# ---- hypothesis: a deque model ---------------------------------------------------------------


def make_machine(backend, maxsize):
    class StdQueueMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.q = backend.StdConcurrentQueue(maxsize)
            self.model = collections.deque()
            self.unfinished = 0
            self.state = "open"

        @rule(value=st.integers())
        def put(self, value):
            if self.state != "open":
                with pytest.raises(backend.ShutDown):
                    self.q.put_nowait(value)
            elif maxsize and len(self.model) >= maxsize:
                with pytest.raises(queue.Full):
                    self.q.put(value, timeout=0.001)
            else:
                self.q.put(value, block=False)
                self.model.append(value)
                self.unfinished += 1

        @rule()
        def get(self):
            if self.state == "immediate" or (self.state == "shut" and not self.model):
                with pytest.raises(backend.ShutDown):
                    self.q.get_nowait()
            elif not self.model:
                with pytest.raises(queue.Empty):
                    self.q.get(timeout=0.001)
            else:
                assert self.q.get_nowait() == self.model.popleft()

        @rule()
        def task_done(self):
            if self.unfinished == 0:
                with pytest.raises(ValueError):
                    self.q.task_done()
            else:
                self.q.task_done()
                self.unfinished -= 1

        @precondition(lambda self: self.state == "open")
        @rule(immediate=st.booleans())
        def shutdown(self, immediate):
            self.q.shutdown(immediate=immediate)
            self.state = "immediate" if immediate else "shut"
            if immediate:
                self.unfinished = max(0, self.unfinished - len(self.model))
                self.model.clear()

        @invariant()
        def agrees(self):
            assert self.q.qsize() == len(self.model)
            assert self.q.empty() == (not self.model)
            assert self.q.full() == bool(maxsize and len(self.model) >= maxsize)
            assert self.q.unfinished_tasks == self.unfinished
            assert self.q.is_shutdown == (self.state != "open")

    return StdQueueMachine


@pytest.mark.parametrize("maxsize", [0, 3])
def test_state_machine_against_deque(backend, maxsize):
    run_state_machine_as_test(make_machine(backend, maxsize))


@pytest.mark.stress
@pytest.mark.parametrize("maxsize", [0, 5])
def test_threads_fifo_follows_the_real_time_order_of_puts(backend, maxsize):
    """Across producers, not only within one: a put that returned before another put
    began comes out first (bounded or not)."""
    q = backend.StdConcurrentQueue(maxsize)
    fifo_follows_real_time_order(lambda value: q.put(value, timeout=30), lambda: q.get(timeout=30))


@pytest.mark.stress
def test_threads_writes_before_a_put_are_seen_by_the_getter(backend):
    """What a thread wrote before put(v) is visible to the thread whose get() returned v."""
    q = backend.StdConcurrentQueue()
    assert writes_before_publishing_are_seen(q.put, lambda: q.get(timeout=30)) == []


BLOCKED_CALLS = {
    # name: (queue, the blocking call, the shutdown, what the call ends with)
    "put on a full queue": (lambda b: _filled(b.StdConcurrentQueue(1), 1), lambda q: q.put("x"), False, "ShutDown"),
    "get on an empty queue": (lambda b: b.StdConcurrentQueue(), lambda q: q.get(), False, "ShutDown"),
    "get, immediate": (lambda b: b.StdConcurrentQueue(), lambda q: q.get(), True, "ShutDown"),
    "join, immediate": (lambda b: _filled(b.StdConcurrentQueue(), 2), lambda q: q.join(), True, None),
}


def _filled(q, count):
    for n in range(count):
        q.put(n)
    return q


@pytest.mark.parametrize("call", BLOCKED_CALLS)
def test_a_blocked_call_is_woken_by_shutdown(backend, call):
    """A thread blocked in put, get or join wakes at a shutdown, as in queue.Queue of 3.13:
    put and get raise ShutDown; join returns once an immediate shutdown has ended the
    tasks of the items it removed."""
    make, blocking, immediate, expected = BLOCKED_CALLS[call]
    q = make(backend)
    outcome = []

    def run():
        try:
            outcome.append(blocking(q))
        except backend.ShutDown:
            outcome.append("ShutDown")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(0.1)  # let it block (it is woken whether or not it got there)
    q.shutdown(immediate=immediate)
    thread.join(30)
    assert outcome == [expected], f"{call}: {outcome or 'still blocked 30 s after the shutdown'}"
