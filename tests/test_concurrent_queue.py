"""ConcurrentQueue on every backend and in both wait strategies: spec behaviour, shutdown,
timeouts that take nothing, wake-ups, object lifetimes, a hypothesis state machine
against a deque, and producers x consumers with every item delivered exactly once."""

import collections
import gc
import queue
import sys
import threading
import time
import weakref

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from threading_helpers import fifo_follows_real_time_order, run_threads, writes_before_publishing_are_seen

MODES = [False, True]  # lock_free


class Obj:
    pass


@pytest.fixture(params=MODES, ids=["park", "lock_free"])
def lock_free(request):
    return request.param


def test_spec_example(backend, lock_free):
    q = backend.ConcurrentQueue(lock_free=lock_free)
    q.push("value0")
    q.push("value1")
    q.push("value2")
    assert q.pop() == "value0"
    assert q.pop(timeout=0.1) == "value1"
    wrapped = q.pop_local()
    assert type(wrapped).__name__ == "LocalWrapper" and wrapped == "value2"
    q.shutdown()
    with pytest.raises(backend.ShutDown):
        q.pop()
    with pytest.raises(backend.ShutDown):
        q.push("value5")


def test_exceptions_are_the_stdlib_ones(backend):
    assert backend.Empty is queue.Empty and backend.Full is queue.Full
    if sys.version_info >= (3, 13):
        assert backend.ShutDown is queue.ShutDown
    assert issubclass(backend.ShutDown, Exception)


def test_fifo_size_empty(backend, lock_free):
    q = backend.ConcurrentQueue(lock_free=lock_free)
    assert q.empty() and q.size() == 0
    for i in range(3000):  # across several core segments
        q.push(i)
    assert q.size() == 3000 and not q.empty()
    assert [q.pop() for _ in range(3000)] == list(range(3000))
    assert q.empty()


def test_pop_timeout(backend, lock_free):
    q = backend.ConcurrentQueue(lock_free=lock_free)
    start = time.monotonic()
    with pytest.raises(queue.Empty):
        q.pop(timeout=0.05)
    assert time.monotonic() - start >= 0.045
    with pytest.raises(queue.Empty):
        q.pop(timeout=0)
    with pytest.raises(ValueError, match="non-negative"):
        q.pop(timeout=-1)
    with pytest.raises(TypeError, match="timeout"):
        q.pop(timeout="1")
    with pytest.raises(TypeError):
        q.pop(1, 2)


def test_scaling_argument(backend):
    backend.ConcurrentQueue(4)
    backend.ConcurrentQueue(scaling=None, lock_free=True)
    with pytest.raises(ValueError):
        backend.ConcurrentQueue(0)
    with pytest.raises(TypeError):
        backend.ConcurrentQueue("4")


def test_subclass_init_with_other_arguments(backend, lock_free):
    class Jobs(backend.ConcurrentQueue):
        def __new__(cls, name, lock_free=False):
            return super().__new__(cls, lock_free=lock_free)

        def __init__(self, name, lock_free=False):
            super().__init__(lock_free=lock_free)
            self.name = name

    q = Jobs("jobs", lock_free=lock_free)
    q.push(1)
    assert q.name == "jobs" and q.pop() == 1 and ("lock_free" in repr(q)) == lock_free


def test_lock_free_given_to_init_sets_the_wait_mode(backend):
    """A subclass's __init__ may pass lock_free on to super().__init__() (it used to be
    fixed by __new__, and a ValueError)."""

    class Jobs(backend.ConcurrentQueue):
        def __init__(self, name, lock_free=False):
            super().__init__(lock_free=lock_free)
            self.name = name

    assert "lock_free" not in repr(Jobs("plain"))
    fast = Jobs("fast", lock_free=True)
    assert fast.name == "fast" and "lock_free" in repr(fast)
    fast.push(1)
    assert fast.pop(timeout=1) == 1
    q = backend.ConcurrentQueue(lock_free=True)
    q.__init__()  # lock_free not given: the mode stays
    assert "lock_free" in repr(q)
    q.__init__(2, False)
    assert "lock_free" not in repr(q)
    with pytest.raises(ValueError, match="scaling must be at least 1"):
        q.__init__(0)


def test_shutdown_then_drain(backend, lock_free):
    q = backend.ConcurrentQueue(lock_free=lock_free)
    q.push(1)
    q.push(2)
    q.shutdown()
    with pytest.raises(backend.ShutDown):
        q.push(3)
    assert q.pop() == 1 and q.pop(timeout=1) == 2
    with pytest.raises(backend.ShutDown):
        q.pop(timeout=0)
    q.shutdown(immediate=True)  # allowed after a normal shutdown
    with pytest.raises(backend.ShutDown):
        q.pop()


def test_immediate_shutdown_releases_what_is_left(backend, lock_free):
    q = backend.ConcurrentQueue(lock_free=lock_free)
    items = [Obj() for _ in range(5)]
    refs = [weakref.ref(i) for i in items]
    for item in items:
        q.push(item)
    del items, item
    q.shutdown(immediate=True)
    gc.collect()
    assert all(r() is None for r in refs)
    assert q.size() == 0
    with pytest.raises(backend.ShutDown):
        q.pop()


def test_objects_left_in_a_dropped_queue_are_released(backend, lock_free):
    q = backend.ConcurrentQueue(lock_free=lock_free)
    item = Obj()
    ref = weakref.ref(item)
    q.push(item)
    q.push(q)  # a cycle through the queue
    del item, q
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize("event", ["push", "shutdown", "immediate"])
def test_blocked_pop_is_woken(backend, lock_free, event):
    q = backend.ConcurrentQueue(lock_free=lock_free)

    def later():
        time.sleep(0.05)
        if event == "push":
            q.push("item")
        else:
            q.shutdown(immediate=event == "immediate")

    threading.Thread(target=later).start()
    start = time.monotonic()
    if event == "push":
        assert q.pop(timeout=10) == "item"
    else:
        with pytest.raises(backend.ShutDown):
            q.pop(timeout=10)
    assert time.monotonic() - start < 5


def test_many_blocked_consumers_all_wake_on_shutdown(backend, lock_free):
    q = backend.ConcurrentQueue(lock_free=lock_free)

    def consume(index):
        try:
            q.pop(timeout=20)
        except backend.ShutDown:
            return "shutdown"
        return "item"

    def work(index):
        if index == 0:
            time.sleep(0.1)
            q.shutdown()
            return None
        return consume(index)

    results = run_threads(6, work, timeout=30)
    assert results[1:] == ["shutdown"] * 5


# ---- hypothesis: a deque model, with shutdown and timeouts --------------------------------


def make_machine(backend, lock_free):
    class QueueMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            self.q = backend.ConcurrentQueue(lock_free=lock_free)
            self.model = collections.deque()
            self.state = "open"

        @rule(value=st.integers())
        def push(self, value):
            if self.state == "open":
                self.q.push(value)
                self.model.append(value)
            else:
                with pytest.raises(backend.ShutDown):
                    self.q.push(value)

        @rule(local=st.booleans())
        def pop(self, local):
            pop = self.q.pop_local if local else self.q.pop
            if self.state == "immediate" or (self.state == "shut" and not self.model):
                with pytest.raises(backend.ShutDown):
                    pop(timeout=0)
            elif not self.model:
                with pytest.raises(backend.Empty):  # a timed-out pop takes nothing
                    pop(timeout=0.001)
            else:
                assert pop(timeout=0) == self.model.popleft()

        @rule(immediate=st.booleans())
        def shutdown(self, immediate):
            self.q.shutdown(immediate=immediate)
            if immediate:
                self.state = "immediate"
                self.model.clear()
            elif self.state == "open":
                self.state = "shut"

        @invariant()
        def size(self):
            assert self.q.size() == len(self.model)
            assert self.q.empty() == (not self.model)

    return QueueMachine


def test_state_machine_against_deque(backend, lock_free):
    run_state_machine_as_test(make_machine(backend, lock_free))


# ---- threads --------------------------------------------------------------------------------


def producers_and_consumers(backend, lock_free, producers, consumers, per_producer, pop_timeout=None):
    """Producers push (producer, n); the last one to finish shuts the queue down;
    consumers pop until ShutDown. Returns what each consumer got, in order."""
    q = backend.ConcurrentQueue(lock_free=lock_free)
    done = []
    lock = threading.Lock()

    def work(index):
        if index < producers:
            for n in range(per_producer):
                q.push((index, n))
            with lock:
                done.append(index)
                if len(done) == producers:
                    q.shutdown()
            return []
        got = []
        while True:
            try:
                got.append(q.pop(timeout=pop_timeout))
            except backend.Empty:
                continue
            except backend.ShutDown:
                return got

    return run_threads(producers + consumers, work, timeout=90)[producers:]


def check_exactly_once_in_order(results, producers, per_producer):
    everything = [item for got in results for item in got]
    assert len(everything) == producers * per_producer, "items lost or duplicated"
    assert set(everything) == {(p, n) for p in range(producers) for n in range(per_producer)}
    for got in results:  # each consumer sees each producer's items in push order
        last = {}
        for p, n in got:
            assert n > last.get(p, -1), f"producer {p}: {n} after {last[p]}"
            last[p] = n


@pytest.mark.stress
@pytest.mark.parametrize("producers, consumers", [(1, 1), (4, 4), (2, 6), (6, 2)])
def test_threads_every_item_once_in_order(backend, lock_free, producers, consumers):
    results = producers_and_consumers(backend, lock_free, producers, consumers, 3000)
    check_exactly_once_in_order(results, producers, 3000)


@pytest.mark.stress
def test_threads_consumers_that_time_out_take_nothing(backend, lock_free):
    """Consumers with tiny timeouts give up over and over while items flow: a timed-out
    pop must not swallow, skip or reorder anything."""
    results = producers_and_consumers(backend, lock_free, 3, 5, 2000, pop_timeout=0.0001)
    check_exactly_once_in_order(results, 3, 2000)


@pytest.mark.stress
def test_threads_immediate_shutdown_loses_nothing_silently(backend, lock_free):
    """Under an immediate shutdown racing producers and consumers: every item popped was
    pushed, none is popped twice, each producer's items come out in order, and the items
    not popped were released by the shutdown (weakrefs), not leaked."""
    q = backend.ConcurrentQueue(lock_free=lock_free)
    producers, consumers = 3, 3
    refs = [[] for _ in range(producers)]

    class Item:
        __slots__ = ("producer", "n", "__weakref__")

        def __init__(self, producer, n):
            self.producer, self.n = producer, n

    def work(index):
        if index < producers:
            try:
                for n in range(100000):
                    item = Item(index, n)
                    refs[index].append(weakref.ref(item))
                    q.push(item)
                    del item
            except backend.ShutDown:
                pass
            return []
        if index < producers + consumers:
            got = []
            try:
                while True:
                    item = q.pop()
                    got.append((item.producer, item.n))
            except backend.ShutDown:
                return got
        time.sleep(0.05)
        q.shutdown(immediate=True)
        return []

    results = run_threads(producers + consumers + 1, work, timeout=60)
    popped = [pair for got in results for pair in got]
    assert len(popped) == len(set(popped)), "an item was popped twice"
    for got in results:
        last = {}
        for p, n in got:
            assert n > last.get(p, -1)
            last[p] = n
    gc.collect()
    assert all(r() is None for rs in refs for r in rs), "items left in the queue were not released"
    assert q.size() == 0


@pytest.mark.stress
def test_threads_fifo_follows_the_real_time_order_of_pushes(backend, lock_free):
    """Across producers, not only within one: a push that returned before another push
    began comes out first."""
    q = backend.ConcurrentQueue(lock_free=lock_free)
    fifo_follows_real_time_order(q.push, lambda: q.pop(timeout=30))


@pytest.mark.stress
def test_threads_writes_before_a_push_are_seen_by_the_popper(backend, lock_free):
    """What a thread wrote before push(v) is visible to the thread whose pop() returned v."""
    q = backend.ConcurrentQueue(lock_free=lock_free)
    assert writes_before_publishing_are_seen(q.push, lambda: q.pop(timeout=30)) == []
