"""Interpreter exit and fork() with threads inside ft_utils.

Exit (in a child interpreter, one per backend, blocking call and way of exiting): daemon
threads blocked in every blocking call of the API, checked to be still blocked, while
the main thread returns, calls sys.exit(0), or returns while other daemon threads push
and pop in a loop; and an exit with objects still inside every container. The child must
end with status 0 and print nothing on stderr (no "Fatal Python error", no faulthandler
dump, no exception ignored in a destructor).

Fork (os.fork, in this process): threads blocked in every wait, and threads hammering one
type, so that at some fork one of them is inside an operation and may hold one of our
locks (a shard lock, a queue's or a gatherer's lock, an iterator's lock). The child then
uses every object it inherited, blocked-on ones included, through every operation: a
lock left held by a thread that does not exist in the child would hang it (a watchdog
dumps its threads and ends it), a waiter count that the child trusts would leave a pop
asleep beside a value.
"""

import faulthandler
import os
import random
import signal
import subprocess
import sys
import threading
import time
import traceback
import warnings

import pytest

from conftest import BACKENDS

# ---------------------------------------------------------------------------------------
# Exit
# ---------------------------------------------------------------------------------------

EXIT_SCRIPT = r"""
import os, sys, threading, time
import ft_utils
from ft_utils import concurrency as c
from ft_utils.local import LocalWrapper

assert ft_utils.backend == os.environ["FT_UTILS_BACKEND"], ft_utils.backend
WHAT, HOW = sys.argv[1], sys.argv[2]
keep = []  # what the blocked threads use, alive until the end


def full_std():
    q = c.StdConcurrentQueue(1)
    q.put("in")
    return q


def unfinished_std():
    q = c.StdConcurrentQueue()
    q.put("task")
    q.get()  # taken, not done
    return q


def gatherer_with_gap():
    g = c.ConcurrentGatheringIterator()
    g.insert(1, "one")  # key 0 never comes
    return g


def shared_iterator(g, max_key):
    it = g.iterator(max_key)
    return lambda: next(it)


# The blocking calls, by name; calls(name) makes the object and returns the call (run
# in two daemon threads, so that two waiters share the object).
BLOCKING = (
    "ConcurrentQueue.pop",
    "ConcurrentQueue.pop(timeout)",
    "ConcurrentQueue(lock_free).pop",
    "ConcurrentQueue(lock_free).pop(timeout)",
    "ConcurrentQueue.pop_local",
    "ConcurrentQueue(lock_free).pop_local(timeout)",
    "StdConcurrentQueue.get",
    "StdConcurrentQueue.get(timeout)",
    "StdConcurrentQueue.put(full)",
    "StdConcurrentQueue.put(full, timeout)",
    "StdConcurrentQueue.join",
    "ConcurrentGatheringIterator.iterator",
    "ConcurrentGatheringIterator.iterator_local",
    "ConcurrentGatheringIterator.iterator(shared)",
    "ConcurrentGatheringIterator.iterator(clear=False)",
)


def calls(what):
    if what.startswith("ConcurrentQueue"):
        q = c.ConcurrentQueue(lock_free="lock_free" in what)
        keep.append(q)
        if what.endswith("pop_local(timeout)"):
            return [lambda: q.pop_local(timeout=3600)]
        if what.endswith("pop_local"):
            return [q.pop_local]
        if what.endswith("pop(timeout)"):
            return [lambda: q.pop(timeout=3600)]
        return [q.pop]
    if what.startswith("StdConcurrentQueue"):
        if "put" in what:
            q = full_std()
            call = (lambda: q.put("more", timeout=3600)) if "timeout" in what else (lambda: q.put("more"))
        elif "join" in what:
            q = unfinished_std()
            call = q.join
        else:
            q = c.StdConcurrentQueue()
            call = (lambda: q.get(timeout=3600)) if "timeout" in what else q.get
        keep.append(q)
        return [call]
    g = gatherer_with_gap()
    keep.append(g)
    if what.endswith("(shared)"):
        return [shared_iterator(g, 5)]  # both threads wait on one iterator
    if what.endswith("(clear=False)"):
        return [lambda: next(g.iterator(5, clear=False))]
    if what.endswith("iterator_local"):
        return [lambda: next(g.iterator_local(5))]
    return [lambda: next(g.iterator(5))]


if WHAT == "all":
    blocking = [call for what in BLOCKING for call in calls(what)]
else:
    assert WHAT in BLOCKING, WHAT
    blocking = calls(WHAT)

started = []
returned = []


def blocked(call, event):
    event.set()
    result = call()
    returned.append(result)  # never: nothing wakes these threads


threads = []
for call in blocking:
    for _ in range(2):
        event = threading.Event()
        started.append(event)
        t = threading.Thread(target=blocked, args=(call, event), daemon=True)
        threads.append(t)
        t.start()
for event in started:
    assert event.wait(30), "a blocking thread did not start"
time.sleep(0.2)  # long enough to be inside the wait, asleep
assert not returned, f"a blocking call returned: {returned!r}"
assert all(t.is_alive() for t in threads), "a blocking thread ended"
print("BLOCKED", len(threads), flush=True)

busy_counts = []


def busy(index):
    # Each busy thread loops over operations of every type on objects of its own (the
    # queues shared in pairs, so that pops also wait and wake), never ending.
    q, sq, d, a, g = shared_busy[index // 2]
    n = 0
    key = index
    while True:
        n += 1
        if index % 2 == 0:
            q.push(n)
            sq.put(n)
            d[n % 97] = n
            a.incr()
            g.insert(key, n)
            key += 2
        else:
            try:
                q.pop(timeout=0.001)
            except c.Empty:
                pass
            try:
                sq.get(timeout=0.001)
            except c.Empty:
                pass
            d.get(n % 97)
            a.add(2)
        busy_counts[index] = n


def main():
    if HOW == "busy":
        global shared_busy
        shared_busy = [(c.ConcurrentQueue(lock_free=i % 2 == 1), c.StdConcurrentQueue(64), c.ConcurrentDict(),
                        c.AtomicInt64(), c.ConcurrentGatheringIterator()) for i in range(2)]
        busy_counts.extend([0] * 4)
        for i in range(4):
            threading.Thread(target=busy, args=(i,), daemon=True).start()
        deadline = time.monotonic() + 30
        while min(busy_counts) < 100:
            assert time.monotonic() < deadline, f"busy threads did not get going: {busy_counts}"
            time.sleep(0.01)
        print("BUSY", flush=True)
    if HOW == "sys.exit":
        sys.exit(0)
    # "return", "busy": main returns, the interpreter exits


main()
"""

WHATS = [
    "ConcurrentQueue.pop",
    "ConcurrentQueue.pop(timeout)",
    "ConcurrentQueue(lock_free).pop",
    "ConcurrentQueue(lock_free).pop(timeout)",
    "ConcurrentQueue.pop_local",
    "ConcurrentQueue(lock_free).pop_local(timeout)",
    "StdConcurrentQueue.get",
    "StdConcurrentQueue.get(timeout)",
    "StdConcurrentQueue.put(full)",
    "StdConcurrentQueue.put(full, timeout)",
    "StdConcurrentQueue.join",
    "ConcurrentGatheringIterator.iterator",
    "ConcurrentGatheringIterator.iterator_local",
    "ConcurrentGatheringIterator.iterator(shared)",
    "ConcurrentGatheringIterator.iterator(clear=False)",
]


def run_child(script, args, backend_name, timeout=60):
    env = dict(os.environ, FT_UTILS_BACKEND=backend_name)
    env.pop("PYTHONWARNINGS", None)
    try:
        return subprocess.run([sys.executable, "-X", "faulthandler", "-c", script, *args], capture_output=True,
                              text=True, env=env, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the child did not exit within {timeout} s; stdout: {exc.stdout!r}; stderr: {exc.stderr!r}")


def check_clean_exit(result, expected_stdout):
    report = f"exit status {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode == 0, report
    for line in expected_stdout:
        assert line in result.stdout.splitlines(), report
    assert "Fatal Python error" not in result.stderr, report
    assert result.stderr.strip() == "", report


def test_exit_script_knows_every_blocking_call():
    # The list above and the child's table name the same calls.
    namespace = {}
    table = EXIT_SCRIPT[EXIT_SCRIPT.index("BLOCKING = ("):EXIT_SCRIPT.index("\n)\n") + 3]
    exec(table, namespace)  # noqa: S102 - our own literal
    assert list(namespace["BLOCKING"]) == WHATS


@pytest.mark.parametrize("how", ["return", "sys.exit", "busy"])
@pytest.mark.parametrize("what", WHATS)
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_exit_with_daemon_threads_blocked(backend_name, what, how):
    result = run_child(EXIT_SCRIPT, [what, how], backend_name)
    check_clean_exit(result, ["BLOCKED 2"] + (["BUSY"] if how == "busy" else []))


@pytest.mark.parametrize("how", ["return", "sys.exit", "busy"])
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_exit_with_daemon_threads_blocked_in_every_call_at_once(backend_name, how):
    result = run_child(EXIT_SCRIPT, ["all", how], backend_name)
    check_clean_exit(result, [f"BLOCKED {2 * len(WHATS)}"] + (["BUSY"] if how == "busy" else []))


LEFT_INSIDE_SCRIPT = r"""
import gc, os, sys, threading
import ft_utils
from ft_utils import concurrency as c
from ft_utils.local import LocalWrapper

assert ft_utils.backend == os.environ["FT_UTILS_BACKEND"], ft_utils.backend
HOW = sys.argv[1]

q = c.ConcurrentQueue()
lq = c.ConcurrentQueue(lock_free=True)
sq = c.StdConcurrentQueue()
bq = c.StdConcurrentQueue(8)
g = c.ConcurrentGatheringIterator()
d = c.ConcurrentDict()
r = c.AtomicReference()
flag = c.AtomicFlag(True)
n = c.AtomicInt64(7)


class Busy:
    # Its destructor, run wherever the interpreter runs it at exit (or never), uses
    # other containers that may be half torn down by then.
    def __init__(self, tag):
        self.tag = tag
        self.me = self  # a cycle: freed by the collector, if at all

    def __del__(self):
        try:
            q.push(self.tag)
            d[self.tag] = self.tag
            n.incr()
            r.set(self.tag)
            sq.put_nowait(self.tag)
        except Exception:  # ShutDown, Full, NameError at teardown: all fine, a crash is not
            pass


for i in range(2000):
    q.push(Busy(("q", i)))
    lq.push([lq, i])  # refers back to its queue
    sq.put(Busy(("sq", i)))
    g.insert(2 * i + 1, Busy(("g", i)))  # key 0 never comes: all stay inside
    d[i] = Busy(("d", i))
    d[("self", i)] = d
for i in range(8):
    bq.put(Busy(("bq", i)))
r.set(Busy("r"))
wrapped = LocalWrapper(Busy("w"))
q.push(sq)
sq.put(q)
d["g"] = g
g.insert(10**9, d)
r.set([r, q, sq, g, d, wrapped])

# Threads blocked on the same containers: a pop of the one that will stay empty, a put
# into the full one, a gathering iterator waiting for key 0, a join.
empty = c.ConcurrentQueue()
started = []
for call in (empty.pop, lambda: bq.put("more"), lambda: next(g.iterator(5)), sq.join):
    event = threading.Event()
    started.append(event)
    threading.Thread(target=lambda call=call, event=event: (event.set(), call()), daemon=True).start()
for event in started:
    assert event.wait(30)
print("FILLED", flush=True)
if HOW == "collect":
    del Busy  # the class lives on in its instances
    gc.collect()
if HOW == "sys.exit":
    sys.exit(0)
"""


@pytest.mark.parametrize("how", ["return", "sys.exit", "collect"])
@pytest.mark.parametrize("backend_name", BACKENDS)
def test_exit_with_values_still_inside(backend_name, how):
    result = run_child(LEFT_INSIDE_SCRIPT, [how], backend_name)
    check_clean_exit(result, ["FILLED"])


# At exit CPython's last collection finds a queue, a dict and a gatherer in the same
# garbage as values whose __del__ uses them (through the module's globals). On cffi the
# core objects must outlive those __del__ (the collection runs no gc.callbacks there, so
# the binding's pins do not hold the handles: freed first, they were used after free:
# a hang on the queue's freed lock, a crash before that).
EXIT_GARBAGE_SCRIPT = r"""
import faulthandler
faulthandler.dump_traceback_later(30, exit=True)
from ft_utils.concurrency import ConcurrentDict, ConcurrentGatheringIterator, ConcurrentQueue

q, d, g = ConcurrentQueue(), ConcurrentDict(), ConcurrentGatheringIterator()


class Value:
    def __init__(self, n):
        self.n, self.me = n, self  # a cycle: only the collector frees it

    def __del__(self):
        q.push(self.n)
        d[self.n] = self.n
        g.insert(self.n, self.n)
        print("__del__", q.pop(timeout=0), d.pop(self.n), flush=True)


keep = [Value(n) for n in range(3)]
print("exiting", flush=True)
"""


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_exit_with_finalizers_that_use_containers_of_their_own_garbage(backend_name):
    result = run_child(EXIT_GARBAGE_SCRIPT, [], backend_name)
    check_clean_exit(result, ["exiting"])
    finalized = [line for line in result.stdout.splitlines() if line.startswith("__del__")]
    assert sorted(finalized) == [f"__del__ {n} {n}" for n in range(3)] or finalized == [], result.stdout


# ---------------------------------------------------------------------------------------
# Fork
# ---------------------------------------------------------------------------------------

FORKS = 20                # forks per test, with the hammering threads running
CHILD_TIMEOUT = 30        # seconds: the parent aborts a child still running past this
ROUND_KEYS = 64           # keys per round of the round gatherer (see _hammer_gather)

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


class CollidingKey:
    """A key whose hash collides with others' and whose __eq__ is Python code: a dict
    write runs it while holding the shard lock, so a thread switch (or, free-threaded, a
    stop of the world for fork) can find the lock held."""

    __slots__ = ("n",)

    def __init__(self, n):
        self.n = n

    def __hash__(self):
        return self.n % 41

    def __eq__(self, other):
        return isinstance(other, CollidingKey) and other.n == self.n

    def __repr__(self):
        return f"CollidingKey({self.n})"


class Objects:
    """One of everything, hammered by the parent's threads and used by the children."""

    def __init__(self, c, local_wrapper):
        self.c = c
        self.LocalWrapper = local_wrapper
        self.d = c.ConcurrentDict()
        self.d1 = c.ConcurrentDict(1)
        self.ai = c.AtomicInt64()
        self.ar = c.AtomicReference()
        self.af = c.AtomicFlag()
        self.q = c.ConcurrentQueue()
        self.qlf = c.ConcurrentQueue(lock_free=True)
        self.sq = c.StdConcurrentQueue()
        self.sqb = c.StdConcurrentQueue(4)
        self.g = c.ConcurrentGatheringIterator()  # keys 0..9 stay; hammered keys >= 10
        for k in range(10):
            self.g.insert(k, ("g", k))
        self.g_next = c.AtomicInt64(10)
        self.rounds = [c.ConcurrentGatheringIterator()]  # the round gatherer, replaced per round
        self.lw = local_wrapper([1, 2, 3])
        self.stop = False
        self.paused = False


class Blocked:
    """Objects with threads blocked in every wait for the whole test: the child inherits
    their waiter bookkeeping, without the waiters."""

    def __init__(self, c):
        self.q = c.ConcurrentQueue()
        self.qlf = c.ConcurrentQueue(lock_free=True)
        self.ql = c.ConcurrentQueue()
        self.sq = c.StdConcurrentQueue()
        self.sqf = c.StdConcurrentQueue(1)
        self.sqf.put("parent")
        self.sqj = c.StdConcurrentQueue()
        self.sqj.put("task")
        self.sqj.get()  # one unfinished task: join waits
        self.g = c.ConcurrentGatheringIterator()
        shared = self.g.iterator(3)
        self.calls = [
            self.q.pop, self.q.pop,
            lambda: self.qlf.pop(timeout=3600), lambda: self.qlf.pop(timeout=3600),
            self.ql.pop_local, lambda: self.ql.pop_local(timeout=3600),
            self.sq.get, lambda: self.sq.get(timeout=3600),
            lambda: self.sqf.put("blocked"), lambda: self.sqf.put("blocked", timeout=3600),
            self.sqj.join, self.sqj.join,
            lambda: list(self.g.iterator(3, clear=False)), lambda: list(self.g.iterator_local(3, clear=False)),
            lambda: list(shared), lambda: list(shared),
        ]
        self.started = [threading.Event() for _ in self.calls]
        self.threads = [threading.Thread(target=self._run, args=(call, event), daemon=True)
                        for call, event in zip(self.calls, self.started)]
        for t in self.threads:
            t.start()
        for event in self.started:
            assert event.wait(30)
        time.sleep(0.1)  # asleep in the waits
        assert all(t.is_alive() for t in self.threads)

    @staticmethod
    def _run(call, event):
        event.set()
        try:
            call()
        except Exception:  # ShutDown or RuntimeError (a failed gatherer) at the release below
            pass

    def release(self, c):
        """Ends every wait (shutdowns, the missing keys), joins the threads."""
        self.q.shutdown(immediate=True)
        self.qlf.shutdown(immediate=True)
        self.ql.shutdown(immediate=True)
        self.sq.shutdown(immediate=True)
        self.sqf.shutdown(immediate=True)
        self.sqj.task_done()
        self.g.insert(10, 0)  # past every pass: nobody takes it
        try:
            self.g.insert(10, 0)  # a duplicate fails the gatherer: every iterator raises
        except ValueError:
            pass
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads)


# ---- what the hammering threads do, by type (each runs until objs.stop) ---------------

def _hammering(objs):
    """Whether to go on; waits while the parent waits for a child (objs.paused), so that
    the child, not the hammering, gets the CPUs (free-threaded, the hammering threads
    took both and a child ran 20 times slower)."""
    while objs.paused and not objs.stop:
        time.sleep(0.0005)
    return not objs.stop


def _hammer_dict(objs, index):
    d, d1 = objs.d, objs.d1
    n = 0
    while _hammering(objs):
        n += 1
        k = CollidingKey(n % 200 + 1000 * index)
        d[k] = n
        d1[k] = n
        d[n % 301] = n
        d.setdefault(("s", n % 50), n)
        d.compare_and_set(k, n, n + 1)
        d.get(k)
        d1.pop(k, None)
        if n % 7 == 0:
            d.compare_and_delete(("s", n % 50), d.get(("s", n % 50)))
        if n % 50 == 0:
            list(d)
            d.items()
            d1.copy()
            d.as_dict()
            d1.update({CollidingKey(-i): i for i in range(5)})
        if n % 200 == 0:
            d1.clear()


def _hammer_queue(objs, index):
    queues = (objs.q, objs.qlf)
    c = objs.c
    n = 0
    while _hammering(objs):
        n += 1
        q = queues[n % 2]
        if index % 2 == 0:
            q.push(("x", n))
            if q.size() > 1000:
                time.sleep(0.001)
        else:
            try:
                if n % 3 == 0:
                    q.pop_local(timeout=0.002)
                else:
                    q.pop(timeout=0.002)
            except c.Empty:
                pass


def _hammer_std(objs, index):
    c = objs.c
    n = 0
    while _hammering(objs):
        n += 1
        q = objs.sqb if n % 2 else objs.sq
        try:
            if index % 2 == 0:
                q.put(n, timeout=0.002)
                if q.qsize() > 1000:
                    time.sleep(0.001)
            else:
                q.get(timeout=0.002)
                q.task_done()
        except (c.Empty, c.Full):
            pass


def _hammer_atomics(objs, index):
    ai, ar, af = objs.ai, objs.ar, objs.af
    n = 0
    while _hammering(objs):
        n += 1
        ai.incr()
        ai.add(3)
        ai.compare_exchange(ai.get(), n)
        ai.exchange(n)
        ai += 1
        old = ar.get()
        ar.compare_exchange(old, [n])
        ar.exchange((index, n))
        ar.set(n)
        af.set(n % 2)
        bool(af)


def _hammer_gather(objs, index):
    g = objs.g
    while _hammering(objs):
        if index == 0:
            # Rounds on a gatherer of their own: inserts in any order, a consumer waiting
            # for each key (which an insert or a notify wakes), then a new gatherer.
            rg = objs.c.ConcurrentGatheringIterator()
            objs.rounds[0] = rg
            keys = list(range(ROUND_KEYS))
            random.shuffle(keys)
            taker = threading.Thread(target=lambda: list(rg.iterator_local(ROUND_KEYS - 1)))
            taker.start()
            for k in keys:
                rg.insert(k, k)
            taker.join()
        elif index == 1:
            k = objs.g_next.incr()  # keys >= 10 that nobody takes
            g.insert(k, k)
        else:
            # Non-clearing passes over keys 0..9, alone and shared with another thread.
            assert list(g.iterator(9, clear=False)) == [("g", k) for k in range(10)]
            shared = g.iterator(9, clear=False)
            helper = threading.Thread(target=lambda: list(shared))
            helper.start()
            list(shared)
            helper.join()


HAMMERS = {
    "dict": (_hammer_dict, 3),
    "queue": (_hammer_queue, 4),
    "std": (_hammer_std, 4),
    "atomics": (_hammer_atomics, 3),
    "gather": (_hammer_gather, 3),
}


# ---- what the child does with every object it inherited ----------------------------------

def _expect_raises(exc, call, *args, **kwargs):
    try:
        call(*args, **kwargs)
    except exc:
        return
    raise AssertionError(f"{call!r} did not raise {exc.__name__}")


def _in_thread(call):
    """Starts call in a thread of the child; returns (thread, results list)."""
    results = []
    started = threading.Event()

    def body():
        started.set()
        results.append(call())

    t = threading.Thread(target=body)
    t.start()
    assert started.wait(10)
    time.sleep(0.005)  # likely asleep in the wait by now: the wake-up is what is tested
    return t, results


def _finish(t, results, expected):
    t.join(10)
    assert not t.is_alive(), "a wait in the child was not woken"
    assert results == [expected], results


def _use_dict(c, d):
    assert d == d and d.scaling >= 1
    d.clear()
    assert len(d) == 0 and list(d) == []
    keys = list(range(200)) + [CollidingKey(i) for i in range(60)] + [("t", i) for i in range(40)]
    for k in keys:  # enough keys for every shard
        d[k] = k
    assert len(d) == len(keys)
    for k in keys:
        assert d[k] == k and d.get(k) == k and k in d
    assert sorted(map(repr, d)) == sorted(map(repr, keys))
    assert sorted(map(repr, d.keys())) == sorted(map(repr, keys))
    assert sorted(map(repr, d.values())) == sorted(map(repr, keys))
    assert len(d.items()) == len(keys)
    assert d.as_dict() == {k: k for k in keys}
    copy = d.copy()
    assert copy == d and len(copy) == len(keys)
    assert d.setdefault("new", 1) == 1 and d.setdefault("new", 2) == 1
    assert d.compare_and_set("new", 1, 3) and not d.compare_and_set("new", 1, 4) and d["new"] == 3
    assert d.compare_and_delete("new", 3) and "new" not in d
    assert d.pop(0) == 0 and d.pop(0, "gone") == "gone"
    del d[1]
    _expect_raises(KeyError, d.__getitem__, 1)
    d.update({"a": 1}, b=2)
    d.update([("c", 3)])
    assert (d["a"], d["b"], d["c"]) == (1, 2, 3)
    it = iter(d)
    assert len(list(it)) == len(d)
    d.clear()
    assert len(d) == 0


def _use_atomics(c, ai, ar, af):
    ai.set(5)
    assert ai.get() == 5 and ai.incr() == 6 and ai.decr() == 5 and ai.add(10) == 15
    assert ai.exchange(3) == 15 and ai.compare_exchange(3, 4) and not ai.compare_exchange(3, 5)
    ai += 2
    assert int(ai) == 6 and ai == 6 and ai + 1 == 7
    x, y = object(), object()
    ar.set(x)
    assert ar.get() is x and ar.exchange(y) is x
    assert ar.compare_exchange(y, x) and not ar.compare_exchange(y, x) and ar.get() is x
    af.set(True)
    assert bool(af)
    af.set(False)
    assert not af


def _drain_queue(c, q):
    while True:
        try:
            q.pop(timeout=0)
        except c.Empty:
            break


def _use_queue(c, q):
    _drain_queue(c, q)
    assert q.size() == 0 and q.empty()
    for i in range(1100):  # more than a segment (1022 values)
        q.push(i)
    assert q.size() == 1100 and not q.empty()
    for i in range(1100):
        if i % 3 == 0:
            w = q.pop_local()
            assert w == i, (w, i)
        elif i % 3 == 1:
            assert q.pop(timeout=5) == i
        else:
            assert q.pop() == i
    assert q.size() == 0
    _expect_raises(c.Empty, q.pop, timeout=0.01)
    _expect_raises(c.Empty, q.pop_local, timeout=0.01)
    # A push in the child wakes a pop waiting in the child, with and without a timeout.
    for call in (q.pop, lambda: q.pop(timeout=30), lambda: q.pop_local(timeout=30) + 0):
        t, results = _in_thread(call)
        q.push(7)
        _finish(t, results, 7)
    q.push("left")
    q.shutdown()
    _expect_raises(c.ShutDown, q.push, 1)
    assert q.pop() == "left"
    _expect_raises(c.ShutDown, q.pop)
    repr(q)


def _drain_std(c, q):
    while True:
        try:
            q.get_nowait()
        except c.Empty:
            break
    while q.unfinished_tasks:
        q.task_done()


def _use_std(c, q):
    _drain_std(c, q)
    q.join()  # nothing unfinished: returns at once
    assert q.qsize() == 0 and q.empty() and not q.full()
    n = q.maxsize or 100
    for i in range(n):
        q.put(i) if i % 2 else q.put_nowait(i)
    assert q.qsize() == n and q.unfinished_tasks == n
    if q.maxsize:
        assert q.full()
        _expect_raises(c.Full, q.put_nowait, "x")
        _expect_raises(c.Full, q.put, "x", timeout=0.01)
        # a get in the child wakes a put waiting in the child
        t, results = _in_thread(lambda: q.put("late"))
        assert q.get() == 0
        q.task_done()
        _finish(t, results, None)
        expected = list(range(1, n)) + ["late"]
    else:
        expected = list(range(n))
    got = [q.get() if i % 2 else q.get_nowait() for i in range(len(expected))]
    assert got == expected, got
    _expect_raises(c.Empty, q.get, timeout=0.01)
    _expect_raises(c.Empty, q.get_nowait)
    # task_done in the child wakes a join waiting in the child
    t, results = _in_thread(q.join)
    for _ in expected:
        q.task_done()
    _finish(t, results, None)
    _expect_raises(ValueError, q.task_done)
    t, results = _in_thread(lambda: q.get(timeout=30))
    q.put("woken")
    _finish(t, results, "woken")
    q.task_done()
    q.shutdown()
    assert q.is_shutdown
    _expect_raises(c.ShutDown, q.put, 1)
    _expect_raises(c.ShutDown, q.get)


def _use_fresh_gatherer(c, g, first_key=0, count=4):
    """g holds no key from first_key on: an iterator waiting in the child is woken by
    inserts in the child; then the values are read again without clearing and cleared."""
    keys = range(first_key, first_key + count)
    it = g.iterator(first_key + count - 1, clear=False)
    for _ in range(first_key):
        next(it)  # keys before first_key are there
    t, results = _in_thread(lambda: list(it))
    for k in reversed(keys):
        g.insert(k, ("c", k))
    _finish(t, results, [("c", k) for k in keys])
    assert [w + () for w in g.iterator_local(first_key + count - 1, clear=False)][first_key:] == \
        [("c", k) for k in keys]
    assert list(g.iterator(first_key + count - 1))[first_key:] == [("c", k) for k in keys]


def _use_gatherers(c, objs):
    g = objs.g
    assert list(g.iterator(9, clear=False)) == [("g", k) for k in range(10)]
    assert [w + () for w in g.iterator_local(9, clear=False)] == [("g", k) for k in range(10)]
    shared = g.iterator(9, clear=False)
    t, results = _in_thread(lambda: list(shared))
    mine = list(shared)
    t.join(10)
    assert not t.is_alive() and sorted(mine + results[0]) == [("g", k) for k in range(10)]
    for k in range(2**40, 2**40 + 200):  # keys the parent never inserts: the table grows
        g.insert(k, k)
    # The round gatherer: keys the parent may have been inserting, and a pass it may
    # have been taking; a fresh one exercises the waits.
    rg = objs.rounds[0]
    for k in range(2**40, 2**40 + 10):
        rg.insert(k, k)
    _use_fresh_gatherer(c, c.ConcurrentGatheringIterator())
    # A failed insert (a duplicate) fails the gatherer: every iterator raises.
    _expect_raises(ValueError, g.insert, 0, "again")
    _expect_raises(RuntimeError, list, g.iterator(3))


def child_uses_everything(objs, blocked):
    c = objs.c
    _use_dict(c, objs.d)
    _use_dict(c, objs.d1)
    _use_atomics(c, objs.ai, objs.ar, objs.af)
    for q in (objs.q, objs.qlf, blocked.q, blocked.qlf, blocked.ql):
        _use_queue(c, q)
    for q in (objs.sq, objs.sqb, blocked.sq, blocked.sqf, blocked.sqj):
        _use_std(c, q)
    _use_gatherers(c, objs)
    # the blocked gatherer: the parent's iterators waited for key 0 (one of them shared)
    _use_fresh_gatherer(c, blocked.g)
    lw = objs.lw
    assert len(lw) == 3 and lw[0] == 1 and list(lw) == [1, 2, 3] and lw == [1, 2, 3]
    wrapped = objs.LocalWrapper(objs.d)
    wrapped["k"] = 1
    assert wrapped["k"] == 1 and len(wrapped) == 1


def _run_child(body):
    """In the child: body(); exit status 0 if it returned. The watchdog is the parent's
    (see _wait_child): faulthandler's own cannot be used in a child of a process that had
    one running (pytest's faulthandler_timeout), whose lock the child inherits held."""
    code = 1
    try:
        if not faulthandler.is_enabled():
            faulthandler.enable()  # so that the parent's SIGABRT shows where it hangs
        body()
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _wait_child(pid, timeout):
    """The child's wait status; a child still running after timeout is killed (SIGABRT
    first, so that faulthandler shows where it hangs) and reported as hung."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status, False
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGABRT)
            time.sleep(1)
            os.kill(pid, signal.SIGKILL)
            return os.waitpid(pid, 0)[1], True
        time.sleep(0.005)


def fork_many(forks, child_body, objs=None):
    """Forks `forks` times at slightly random moments; each child runs child_body. Fails
    with the first child that failed, crashed or hung. The hammering threads of objs run
    for a few milliseconds before each fork and pause while the child runs."""
    failures = []
    with warnings.catch_warnings():
        # 3.12+: "This process is multi-threaded, use of fork() may lead to deadlocks"
        warnings.simplefilter("ignore", DeprecationWarning)
        for i in range(forks):
            if objs is not None:
                objs.paused = False
            time.sleep(random.uniform(0.003, 0.012))
            pid = os.fork()
            if objs is not None and pid != 0:
                objs.paused = True
            if pid == 0:
                _run_child(child_body)
            try:
                status, hung = _wait_child(pid, CHILD_TIMEOUT)
            except BaseException:  # the test's own timeout: leave no child behind
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise
            if hung:
                failures.append(f"fork {i}: the child hung (killed after {CHILD_TIMEOUT} s)")
            elif os.WIFSIGNALED(status):
                failures.append(f"fork {i}: the child died of signal {os.WTERMSIG(status)}")
            elif os.WEXITSTATUS(status) != 0:
                failures.append(f"fork {i}: the child exited with {os.WEXITSTATUS(status)} (its stderr above)")
            if failures:
                break
    assert not failures, failures


@pytest.fixture
def blocked(backend):
    b = Blocked(backend)
    yield b
    b.release(backend)


def _start_hammers(objs, kind):
    target, count = HAMMERS[kind]
    errors = []

    def body(index):
        try:
            target(objs, index)
        except BaseException as exc:
            errors.append(exc)
            traceback.print_exc()

    threads = [threading.Thread(target=body, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    return threads, errors


@needs_fork
@pytest.mark.parametrize("kind", list(HAMMERS))
def test_fork_while_threads_hammer_and_wait(backend, blocked, kind):
    objs = Objects(backend, backend.LocalWrapper)
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # GIL interpreters: switch threads inside the operations
    threads, errors = _start_hammers(objs, kind)
    try:
        time.sleep(0.05)
        fork_many(FORKS, lambda: child_uses_everything(objs, blocked), objs)
    finally:
        objs.stop = True
        sys.setswitchinterval(old_interval)
        for q in (objs.sqb, objs.sq):  # a put waiting for room, a join
            _drain_std(backend, q)
        for t in threads:
            t.join(30)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)


@needs_fork
def test_fork_child_uses_everything_without_threads(backend, blocked):
    # The baseline: the child's checks pass when nothing else runs in the parent but the
    # blocked waiters (if this fails, the hammering tests say nothing).
    objs = Objects(backend, backend.LocalWrapper)
    fork_many(2, lambda: child_uses_everything(objs, blocked))
