"""Garbage collection under fire: no object is finalized while one of our containers or a
consumer still holds it.

Per type, worker threads run every operation of the type (the blocking ones with short
timeouts, or ended by a shutdown) on tracked objects while another thread calls
gc.collect() in a loop (generations 0, 1, 2 and full in turn) and the automatic collector
is made eager, so that collections also start in the workers. test_gc_handoff.py looks at
one narrow case of this (a blocked taker); this file puts every operation under the same
pressure.

The tracked objects (threading_helpers.tracked_class) record their finalization in a flag
and a list, carry a weak reference to themselves, and half of them refer to themselves,
so that only the cyclic collector frees them once dropped. What is checked:

- every object a worker receives (pop, get, a lookup, an iteration, a snapshot, a copy,
  an exchange...) is a live tracked object, checked when received and again when the
  worker lets go of it (each worker keeps the last few it received in hand);
- the books balance: every object put in is, at the end, exactly one of: taken out by a
  worker (consumed), dropped by the workload itself (a value replaced, a key deleted, an
  AtomicReference overwritten: the one case where it may be finalized), or still inside,
  where it is drained and checked, and nothing still inside was finalized;
- once everything is dropped, a few collections finalize every object exactly once (no
  leak, no double finalization).

FT_UTILS_GC_SECONDS (default 3) sets how long each workload runs, FT_UTILS_GC_SEED the
seed of the workers' random choices (printed on failure), FT_UTILS_GC_BALLAST how many
tracked objects stay alive meanwhile.

Checked to fail: on 3.13t, against the native extension before issue 10's "wait
detached, take attached" (both queue tests report objects finalized in the consumers'
hands, the gathering test hangs on that version's shared-iterator defect and fails at its
deadline), and against scratch builds that take from a queue or swap an AtomicReference
while detached (the queue, std queue, gathering, AtomicReference and LocalWrapper tests
report finalized objects); on cffi (3.11 and PyPy), against a queue that holds its
objects weakly (lost objects). Under a GIL the wait-detached race is hard to hit with
this many threads on a loaded machine: test_gc_handoff.py is the sharper test there.
"""

import collections
import gc
import os
import random
import sys
import threading
import time

import pytest

from ft_utils._exceptions import Empty, Full, ShutDown
from threading_helpers import GcFire, tracked_class

SECONDS = float(os.environ.get("FT_UTILS_GC_SECONDS", "3"))
SEED = int(os.environ.get("FT_UTILS_GC_SEED", str(random.randrange(1 << 30))))
PYPY = sys.implementation.name == "pypy"
WORKERS = 4  # besides the collector and the controller
# Tracked objects kept alive during each workload, so that a collection takes a while:
# the window in which a reference moved behind the collector's back gets it wrong.
BALLAST = int(os.environ.get("FT_UTILS_GC_BALLAST", "10000"))
HAND = 8  # objects a worker keeps in hand (and checks again when it lets go)
ID_SPACE = 10**8  # ids are worker index * ID_SPACE + count


class Books:
    """What one test's workers put in and took out, and what went wrong.

    Each worker has a Ledger of its own (plain lists, no lock); Books adds them up."""

    def __init__(self, Tracked, wrapper_type=None):
        self.Tracked = Tracked
        self.wrapper_type = wrapper_type  # LocalWrapper: a wrapper in hand is checked through
        self.violations = []  # list.append: atomic
        self.ledgers = []

    def ledger(self, index):
        ledger = Ledger(self, index)
        self.ledgers.append(ledger)
        return ledger

    def total(self, attribute):
        return [n for ledger in self.ledgers for n in getattr(ledger, attribute)]

    def settle(self, inside, what=""):
        """The final checks, given the objects still inside the containers (drained by the
        caller after the workers stopped); then the caller drops everything and calls
        all_finalized()."""
        Tracked = self.Tracked
        for ledger in self.ledgers:
            ledger.let_go_of_all()
        for obj in inside:
            problem = Tracked.problem(obj)
            if problem:
                self.violations.append(f"drained at the end: {problem}")
        inside_ids = [obj.n for obj in inside]
        finalized_before_end = set(Tracked.finalized_ids)
        inserted = self.total("inserted")
        consumed = self.total("consumed")
        dropped = self.total("dropped")
        discarded = self.total("discarded")
        created = sum(ledger.count for ledger in self.ledgers)
        header = f"seed {SEED}{what}: "
        assert not self.violations, header + f"{len(self.violations)} violations, first ones: {self.violations[:8]}"
        duplicates = [n for n, c in collections.Counter(inserted).items() if c > 1]
        assert not duplicates, header + f"put in more than once: {duplicates[:8]}"
        out = collections.Counter(consumed + dropped + inside_ids)
        twice = [n for n, c in out.items() if c > 1]
        assert not twice, header + f"found more than once (taken, dropped or still inside): {twice[:8]}"
        assert set(out) == set(inserted), header + (
            f"lost: {sorted(set(inserted) - set(out))[:8]}, never put in: {sorted(set(out) - set(inserted))[:8]}"
        )
        assert not set(discarded) & set(inserted), header + "an object refused by a container was found in it"
        assert len(inserted) + len(discarded) == created, header + "an object created was neither put in nor refused"
        early = finalized_before_end & set(inside_ids)
        assert not early, header + f"{len(early)} objects still inside were finalized: {sorted(early)[:8]}"
        assert len(inserted) >= 20, header + f"the workload put only {len(inserted)} objects in"
        self.header = header
        self.expected = set(inserted) | set(discarded)
        return dict(inserted=len(inserted), consumed=len(consumed), dropped=len(dropped), inside=len(inside_ids))

    def all_finalized(self):
        """Once the test dropped the containers and what it drained from them: a few
        collections finalize every object it created, each once."""
        Tracked, header = self.Tracked, self.header
        for _ in range(4 if PYPY else 2):
            gc.collect()
        finalized = collections.Counter(Tracked.finalized_ids)
        twice = [n for n, c in finalized.items() if c > 1]
        assert not twice, header + f"finalized twice: {twice[:8]}"
        leaked = self.expected - set(finalized)
        assert not leaked, header + f"{len(leaked)} objects never finalized once dropped: {sorted(leaked)[:8]}"


class Ledger:
    """One worker's books, its random choices and the objects it holds in hand."""

    def __init__(self, books, index):
        self.books = books
        self.index = index
        self.rng = random.Random(SEED * 1000 + index)
        self.count = 0
        self.inserted = []  # ids put into a container (once each)
        self.consumed = []  # ids this worker took out of a container
        self.dropped = []  # ids the workload dropped while inside (replaced, deleted)
        self.discarded = []  # ids of objects created but refused (never inside)
        self.hand = collections.deque()

    def new(self, cycle_share=0.5):
        """A fresh tracked object; about half of them in a reference cycle."""
        self.count += 1
        return self.books.Tracked(self.index * ID_SPACE + self.count, cycle=self.rng.random() < cycle_share)

    def check(self, obj, where):
        """Record a violation if ``obj`` (received from ``where``) is not sound."""
        if self.books.wrapper_type is not None and isinstance(obj, self.books.wrapper_type):
            obj = obj.wrapped
        problem = self.books.Tracked.problem(obj)
        if problem:
            self.books.violations.append(f"{where}: {problem}")
            return False
        return True

    def hold(self, obj, where):
        """Check ``obj`` and keep it in hand for a while; the one let go of is checked again."""
        self.check(obj, where)
        self.hand.append((obj, where))
        if len(self.hand) > HAND:
            old, old_where = self.hand.popleft()
            self.check(old, old_where + ", checked again later in the worker's hand")

    def take(self, obj, where):
        """``obj`` was taken out of a container by this worker: check it, count it, hold it."""
        self.consumed.append(obj.n)
        self.hold(obj, where)

    def let_go_of_all(self):
        while self.hand:
            obj, where = self.hand.popleft()
            self.check(obj, where + ", checked again at the end")


def hand_over_and_collect():
    """Called by a producer right after it put an object into an empty container: a
    consumer waiting there is waking up to take it, and a collection starts at once. (Under
    a GIL, the collector thread alone seldom starts a collection in that instant.)"""
    HANDED_OVER.append(None)
    gc.collect()


HANDED_OVER = []  # one entry per call of hand_over_and_collect (printed by each test)


def fire(workers, on_stop=None):
    HANDED_OVER.clear()
    collections_made = GcFire(min_collections=3, ballast=BALLAST).run(workers, SECONDS, on_stop=on_stop)
    assert collections_made >= 1, "the collector thread never completed a collection"
    return collections_made


# ---------------------------------------------------------------------------------------
# ConcurrentDict


@pytest.mark.stress
def test_concurrent_dict_under_gc(backend):
    """Every ConcurrentDict operation on tracked keys and values.

    Each worker owns 8 str keys (it alone writes them, so it knows what each holds: set,
    update in its three forms, del, setdefault, get, pop, compare_and_set,
    compare_and_delete); all workers share tracked keys (produced with fresh values, taken
    by pop, compare_and_delete or a successful compare_and_set of the value), and read
    everything through items/keys/values/iteration/as_dict/copy; a copy is sometimes
    cleared or refilled by update before it is dropped."""
    Tracked = tracked_class()
    books = Books(Tracked)
    d = backend.ConcurrentDict()

    def worker_for(index):
        ledger = books.ledger(index)
        rng = ledger.rng
        own = [f"own{index}_{j}" for j in range(8)]
        mirror = [None] * 8  # the id each own key holds, None when absent

        def put_own(j, value, how):
            key = own[j]
            if how == 0:
                d[key] = value
            elif how == 1:
                d.update({key: value})
            elif how == 2:
                d.update([(key, value)])
            else:
                d.update(**{key: value})
            if mirror[j] is not None:
                ledger.dropped.append(mirror[j])
            mirror[j] = value.n
            ledger.inserted.append(value.n)

        def own_op(op):
            j = rng.randrange(8)
            key = own[j]
            if op == 0:
                put_own(j, ledger.new(), rng.randrange(4))
            elif op == 1:
                if mirror[j] is None:
                    with pytest.raises(KeyError):
                        del d[key]
                else:
                    del d[key]
                    ledger.dropped.append(mirror[j])
                    mirror[j] = None
            elif op == 2:
                value = ledger.new()
                got = d.setdefault(key, value)
                if mirror[j] is None:
                    assert got is value
                    mirror[j] = value.n
                    ledger.inserted.append(value.n)
                else:
                    ledger.discarded.append(value.n)
                    if ledger.check(got, "setdefault (present)"):
                        assert got.n == mirror[j]
                    ledger.hold(got, "setdefault (present)")
            elif op == 3:
                got = d.get(key) if rng.random() < 0.5 else d.get(key, None)
                if mirror[j] is None:
                    assert got is None
                else:
                    if ledger.check(got, "get"):
                        assert got.n == mirror[j]
                    ledger.hold(got, "get")
            elif op == 4:
                got = d.pop(key, None)
                if mirror[j] is None:
                    assert got is None
                else:
                    if ledger.check(got, "pop"):
                        assert got.n == mirror[j]
                    ledger.take(got, "pop")
                    mirror[j] = None
            elif op == 5 and mirror[j] is not None:
                current = d[key]
                ledger.check(current, "d[k]")
                if rng.random() < 0.5:
                    value = ledger.new()
                    assert d.compare_and_set(key, current, value)
                    mirror[j] = value.n
                    ledger.inserted.append(value.n)
                    ledger.take(current, "d[k] then compare_and_set")
                else:
                    assert d.compare_and_delete(key, current)
                    mirror[j] = None
                    ledger.take(current, "d[k] then compare_and_delete")

        def tracked_keys():
            return [k for k in d.keys() if type(k) is Tracked]

        def shared_op(op):
            if op <= 1:
                if len(d) < 300:
                    key, value = ledger.new(), ledger.new()
                    d[key] = value
                    ledger.inserted += [key.n, value.n]
                return
            keys = tracked_keys()
            if not keys:
                return
            key = rng.choice(keys)
            ledger.check(key, "keys()")
            del keys
            if op == 2:
                value = d.pop(key, None)
                if value is not None:
                    ledger.take(value, "pop (shared key)")
                    ledger.take(key, "key of a pop")
                else:
                    ledger.hold(key, "key seen in keys(), popped by another worker")
                return
            value = d.get(key)
            if value is None:
                ledger.hold(key, "key seen in keys(), gone at get")
                return
            ledger.hold(value, "get (shared key)")
            if op == 3:
                if d.compare_and_delete(key, value):
                    ledger.consumed += [value.n, key.n]
                    ledger.hold(key, "key of a compare_and_delete")
            else:
                new = ledger.new()
                if d.compare_and_set(key, value, new):
                    ledger.consumed.append(value.n)
                    ledger.inserted.append(new.n)
                else:
                    ledger.discarded.append(new.n)
                ledger.hold(key, "key of a compare_and_set")

        def read_op(op):
            if op == 0:
                pairs = d.items()
            elif op == 1:
                pairs = [(k, None) for k in d.keys()] + [(None, v) for v in d.values()]
            elif op == 2:
                pairs = [(k, None) for k in d]
            elif op == 3:
                pairs = list(d.as_dict().items())
            else:
                c = d.copy()
                choice = rng.randrange(3)
                if choice == 1:
                    c.clear()  # releases references d holds too
                elif choice == 2:
                    c.update(d)
                pairs = c.items()
                del c
            for k, v in pairs:
                if type(k) is not str and k is not None:
                    ledger.check(k, f"key read by read op {op}")
                if v is not None:
                    ledger.check(v, f"value read by read op {op}")
            seen = [obj for pair in pairs for obj in pair if obj is not None and type(obj) is not str]
            if seen:
                ledger.hold(rng.choice(seen), f"kept from read op {op}")

        def worker(stop):
            while not stop.is_set():
                kind = rng.random()
                if kind < 0.45:
                    own_op(rng.randrange(6))
                elif kind < 0.9:
                    shared_op(rng.randrange(5))
                else:
                    read_op(rng.randrange(5))
            return mirror

        return worker

    made = fire([worker_for(i) for i in range(WORKERS)])
    inside = [obj for pair in d.items() for obj in pair if type(obj) is not str]
    print(made, "collections,", len(HANDED_OVER), "handed over;", books.settle(inside))
    del inside, d
    books.all_finalized()


# ---------------------------------------------------------------------------------------
# ConcurrentQueue (default and lock_free)


@pytest.mark.stress
def test_concurrent_queue_under_gc(backend):
    """A default and a lock_free ConcurrentQueue. A flooding producer pushes runs of up to
    20 objects (some refer to the queue that holds them), mostly into the lock_free one; a
    handing producer pushes one object into an empty queue, mostly the default one, and
    collects at once; a waiting consumer takes with pop(), pop(timeout), pop_local() and
    pop_local(timeout), mostly from the default queue; another consumer does all of that
    and pop(timeout=0), runs of them, size() and empty(), mostly on the lock_free queue. At the end both queues
    are shut down (waking a pop() that waits for ever) and what is left is drained and
    checked."""
    Tracked = tracked_class()
    books = Books(Tracked, backend.LocalWrapper)
    handed, flooded = backend.ConcurrentQueue(), backend.ConcurrentQueue(lock_free=True)
    queues = [handed, flooded]

    def producer_for(index, handing):
        ledger = books.ledger(index)
        rng = ledger.rng

        def push(q, obj):
            if rng.random() < 0.1:
                obj.home = q  # a cycle through the queue
            try:
                q.push(obj)
            except ShutDown:
                ledger.discarded.append(obj.n)
                return False
            ledger.inserted.append(obj.n)
            return True

        def producer(stop):
            while not stop.is_set():
                if handing:
                    q = handed if rng.random() < 0.8 else flooded
                    if not q.empty():
                        time.sleep(0.0002)
                    elif push(q, ledger.new()):
                        hand_over_and_collect()
                    else:
                        return
                else:
                    q = flooded if rng.random() < 0.8 else handed
                    if q.size() > 200:
                        time.sleep(0.0005)
                        continue
                    for _ in range(rng.randrange(1, 21)):
                        if not push(q, ledger.new()):
                            return

        return producer

    def consumer_for(index, waiting):
        ledger = books.ledger(index)
        rng = ledger.rng

        def consumer(stop):
            while not stop.is_set():
                if waiting:
                    q = handed if rng.random() < 0.8 else flooded
                    op = rng.randrange(4)
                else:
                    q = flooded if rng.random() < 0.8 else handed
                    op = rng.randrange(7)
                if op in (0, 2) and q is not (handed if waiting else flooded):
                    op += 1  # a wait for ever only where this consumer's producer puts most
                try:
                    if op == 0:
                        ledger.take(q.pop(), "pop()")
                    elif op == 1:
                        ledger.take(q.pop(timeout=rng.choice((0.0001, 0.001, 0.01, 0.05))), "pop(timeout)")
                    elif op in (2, 3):
                        wrapper = q.pop_local() if op == 2 else q.pop_local(timeout=rng.choice((0.001, 0.05)))
                        ledger.consumed.append(wrapper.wrapped.n)
                        ledger.hold(wrapper, "pop_local()" if op == 2 else "pop_local(timeout)")
                    elif op == 4:
                        ledger.take(q.pop(timeout=0), "pop(timeout=0)")
                    elif op == 5:
                        q.size(), q.empty()
                    else:
                        for _ in range(rng.randrange(1, 30)):
                            ledger.take(q.pop(timeout=0), "pop(timeout=0) in a run")
                except Empty:
                    pass
                except ShutDown:
                    return

        return consumer

    def shut_down():
        for q in queues:
            q.shutdown()

    workers = [producer_for(0, False), producer_for(1, True), consumer_for(2, True), consumer_for(3, False)]
    made = fire(workers, on_stop=shut_down)
    inside = []
    for q in queues:
        while True:
            try:
                inside.append(q.pop(timeout=0))
            except (Empty, ShutDown):
                break
    print(made, "collections,", len(HANDED_OVER), "handed over;", books.settle(inside))
    del inside, q, queues, handed, flooded
    books.all_finalized()


# ---------------------------------------------------------------------------------------
# StdConcurrentQueue (unbounded and bounded)


@pytest.mark.stress
def test_std_concurrent_queue_under_gc(backend):
    """An unbounded and a bounded (maxsize 8) StdConcurrentQueue. A flooding producer puts
    with put() (waiting on the full bounded queue), put(timeout) (Full),
    put(block=False) and put_nowait(), mostly into the bounded one; a handing producer puts
    one object into the empty unbounded queue (sometimes the bounded one) and collects at
    once; a waiting consumer takes with get(timeout) from the unbounded queue (sometimes
    get() from the bounded one); another consumer does get(), get(timeout),
    get(block=False), get_nowait() and looks at qsize/empty/full/unfinished_tasks, mostly
    on the bounded queue. Every get is followed by task_done(); a joiner per queue calls
    join() in a loop. At the end the queues are shut down: the consumers drain them (get
    returns what is left, then ShutDown), a put waiting on the full queue gets ShutDown,
    and the last join() returns.

    A get() that waits for ever only ever waits on the bounded queue, where no put can wait
    at the same time (it is empty), so no producer and consumer wait for ever on different
    queues."""
    Tracked = tracked_class()
    books = Books(Tracked)
    handed, bounded = backend.StdConcurrentQueue(), backend.StdConcurrentQueue(maxsize=8)
    queues = [handed, bounded]

    def producer_for(index, handing):
        ledger = books.ledger(index)
        rng = ledger.rng

        def producer(stop):
            while not stop.is_set():
                mostly, sometimes = (handed, bounded) if handing else (bounded, handed)
                q = mostly if rng.random() < 0.8 else sometimes
                if handing and not q.empty():
                    time.sleep(0.0002)
                    continue
                if q.qsize() > 200:
                    time.sleep(0.0005)
                    continue
                obj = ledger.new()
                if rng.random() < 0.1:
                    obj.home = q
                op = 0 if handing else rng.randrange(4)
                try:
                    if op == 0:
                        q.put(obj)
                    elif op == 1:
                        q.put(obj, timeout=rng.choice((0.0001, 0.001)))
                    elif op == 2:
                        q.put(obj, block=False)
                    else:
                        q.put_nowait(obj)
                except Full:
                    ledger.discarded.append(obj.n)
                    continue
                except ShutDown:
                    ledger.discarded.append(obj.n)
                    return
                ledger.inserted.append(obj.n)
                del obj
                if handing:
                    hand_over_and_collect()

        return producer

    def consumer_for(index, waiting):
        ledger = books.ledger(index)
        rng = ledger.rng

        def consumer(stop):
            # No look at `stop`: a consumer ends at ShutDown, once the queues are empty.
            finished = set()
            while len(finished) < len(queues):
                if waiting:
                    q = handed if rng.random() < 0.8 else bounded
                    op = 0 if q is bounded else 1
                else:
                    q = bounded if rng.random() < 0.8 else handed
                    op = rng.randrange(5)
                try:
                    if op == 0 and q is bounded:
                        obj = q.get()
                    elif op <= 1:
                        obj = q.get(timeout=rng.choice((0.0001, 0.001, 0.01, 0.05)))
                    elif op == 2:
                        obj = q.get(block=False)
                    elif op == 3:
                        obj = q.get_nowait()
                    else:
                        q.qsize(), q.empty(), q.full(), q.unfinished_tasks
                        continue
                except Empty:
                    continue
                except ShutDown:
                    finished.add(id(q))
                    continue
                ledger.take(obj, f"get, op {op}")
                q.task_done()

        return consumer

    def joiner_for(q):
        def joiner(stop):
            joins = 0
            while True:
                last = stop.is_set()
                q.join()
                joins += 1
                if last:
                    return joins
                time.sleep(0.001)

        return joiner

    def shut_down():
        for q in queues:
            q.shutdown()

    workers = [producer_for(0, False), producer_for(1, True), consumer_for(2, True), consumer_for(3, False)]
    made = fire(workers + [joiner_for(q) for q in queues], on_stop=shut_down)
    for q in queues:
        assert q.qsize() == 0 and q.unfinished_tasks == 0
    print(made, "collections,", len(HANDED_OVER), "handed over;", books.settle([]))
    del q, queues, handed, bounded
    books.all_finalized()


# ---------------------------------------------------------------------------------------
# AtomicReference


@pytest.mark.stress
def test_atomic_reference_under_gc(backend):
    """Each worker owns an AtomicReference it alone sets (so it knows what the set drops)
    and reads; all workers get, exchange and compare_exchange on three shared ones, and
    make short-lived AtomicReferences around a fresh object (sometimes in a cycle with
    it) that they drop."""
    Tracked = tracked_class()
    books = Books(Tracked)
    setup = books.ledger(WORKERS)
    shared = []
    for _ in range(3):
        obj = setup.new()
        shared.append(backend.AtomicReference(obj))
        setup.inserted.append(obj.n)
    owned = []
    for _ in range(WORKERS):
        obj = setup.new()
        owned.append(backend.AtomicReference(obj))
        setup.inserted.append(obj.n)
    mirrors = [r.get().n for r in owned]
    del obj

    def worker_for(index):
        ledger = books.ledger(index)
        rng = ledger.rng
        mine = owned[index]

        def worker(stop):
            while not stop.is_set():
                op = rng.randrange(7)
                if op == 0:
                    obj = ledger.new()
                    mine.set(obj)
                    ledger.dropped.append(mirrors[index])
                    mirrors[index] = obj.n
                    ledger.inserted.append(obj.n)
                elif op == 1:
                    got = mine.get()
                    if ledger.check(got, "get (own)"):
                        assert got.n == mirrors[index]
                    ledger.hold(got, "get (own)")
                elif op == 2:
                    ledger.hold(rng.choice(owned + shared).get(), "get")
                elif op == 3:
                    obj = ledger.new()
                    old = rng.choice(shared).exchange(obj)
                    ledger.inserted.append(obj.n)
                    ledger.take(old, "exchange")
                elif op == 4:
                    r = rng.choice(shared)
                    current = r.get()
                    ledger.hold(current, "get before compare_exchange")
                    obj = ledger.new()
                    if r.compare_exchange(current, obj):
                        ledger.consumed.append(current.n)
                        ledger.inserted.append(obj.n)
                    else:
                        ledger.discarded.append(obj.n)
                elif op == 5:
                    obj = ledger.new()
                    r = backend.AtomicReference(obj)
                    ledger.inserted.append(obj.n)
                    if rng.random() < 0.5:
                        obj.home = r  # dropped together: only the collector frees them
                    ledger.hold(r.get(), "get from a short-lived AtomicReference")
                    ledger.dropped.append(obj.n)
                    del r
                else:
                    # A value that was not in the reference: nothing swapped.
                    r = rng.choice(shared)
                    obj = ledger.new()
                    assert not r.compare_exchange(obj, obj)
                    ledger.discarded.append(obj.n)

        return worker

    made = fire([worker_for(i) for i in range(WORKERS)])
    inside = [r.get() for r in shared + owned]
    print(made, "collections,", len(HANDED_OVER), "handed over;", books.settle(inside))
    del inside, shared, owned
    books.all_finalized()


# ---------------------------------------------------------------------------------------
# ConcurrentGatheringIterator


@pytest.mark.stress
def test_concurrent_gathering_iterator_under_gc(backend):
    """Rounds of 256 keys, until the time is up. Two producers insert each key (in a
    shuffled order) into two gatherers: two consumers split the first one between them
    through one shared iterator (iterator(), or iterator_local() every other round,
    clear=True); a reader walks the second one with its own iterators (clear=False), which
    keep the values in; the second one is drained at the end of the round. Some values
    refer to their gatherer. (An iterator has no timeout: each round is bounded because
    the producers always insert every key.)"""
    Tracked = tracked_class()
    books = Books(Tracked, backend.LocalWrapper)
    keys = 256
    ledgers = [books.ledger(i) for i in range(5)]
    drainer = books.ledger(5)
    inside = []
    rounds = []  # the current round: (taking gatherer, its shared iterator, keeping gatherer, local?)

    def next_round(stop):
        if rounds:
            kept = rounds[-1][2]
            for obj in kept.iterator(keys - 1):  # clear=True: the round's values leave it
                drainer.check(obj, "drained from a gatherer at the end of its round")
                inside.append(obj)
        if stop.is_set():
            rounds.append(None)
            return
        local = len(rounds) % 2 == 1
        taking, kept = backend.ConcurrentGatheringIterator(), backend.ConcurrentGatheringIterator()
        passage = taking.iterator_local(keys - 1) if local else taking.iterator(keys - 1)
        rounds.append((taking, passage, kept, local))

    stop_box = []
    barrier = threading.Barrier(5, action=lambda: next_round(stop_box[0]))

    def worker_for(index):
        ledger = ledgers[index]
        rng = ledger.rng

        def worker(stop):
            stop_box[:] = [stop]
            try:
                while True:
                    barrier.wait(60)
                    current = rounds[-1]
                    if current is None:
                        return
                    taking, passage, kept, local = current
                    del current
                    if index < 2:  # producers
                        # Shuffled within runs of 8 keys: the iterators often wait for
                        # the next key, which a producer then inserts.
                        mine = []
                        for start in range(0, keys, 8):
                            run = list(range(start + index, start + 8, 2))
                            rng.shuffle(run)
                            mine += run
                        for key in mine:
                            for gatherer in (taking, kept):
                                obj = ledger.new()
                                if rng.random() < 0.05:
                                    obj.home = gatherer
                                gatherer.insert(key, obj)
                                ledger.inserted.append(obj.n)
                                del obj
                            if rng.random() < 1 / 16:
                                hand_over_and_collect()
                    elif index < 4:  # consumers sharing one iterator
                        for value in passage:
                            obj = value.wrapped if local else value
                            ledger.take(obj, "shared iterator_local" if local else "shared iterator")
                    else:  # reader of the kept values
                        for _ in range(2):
                            if rng.random() < 0.5:
                                for value in kept.iterator(keys - 1, clear=False):
                                    ledger.hold(value, "iterator(clear=False)")
                            else:
                                for value in kept.iterator_local(keys - 1, clear=False):
                                    ledger.hold(value.wrapped, "iterator_local(clear=False)")
                    del taking, passage, kept
            except BaseException:
                barrier.abort()
                raise

        return worker

    made = fire([worker_for(i) for i in range(5)])
    assert rounds and rounds[-1] is None
    print(made, "collections,", len(HANDED_OVER), "handed over;", len(rounds) - 1, "rounds;", books.settle(inside))
    del inside, rounds[:]
    books.all_finalized()


# ---------------------------------------------------------------------------------------
# LocalWrapper


@pytest.mark.stress
def test_local_wrapper_under_gc(backend):
    """Objects held only through a LocalWrapper: producers wrap fresh objects (sometimes in a
    cycle with their wrapper) and pass the wrappers on through a ConcurrentQueue and an
    AtomicReference; consumers reach the object through the wrapper (wrapped, forwarded
    attributes) and keep wrappers in hand; workers also write and read a ConcurrentDict
    through a LocalWrapper of it."""
    Tracked = tracked_class()
    LocalWrapper = backend.LocalWrapper
    books = Books(Tracked, LocalWrapper)
    q = backend.ConcurrentQueue()
    slot = backend.AtomicReference(None)
    d = backend.ConcurrentDict()

    def unwrap(wrapper, ledger, where):
        """Check a wrapper received from ``where`` and the object behind it."""
        obj = wrapper.wrapped
        if ledger.check(obj, where):
            if wrapper.n != obj.n or wrapper.dead or wrapper.ref() is not obj:
                books.violations.append(f"{where}: the wrapper of #{obj.n} forwards wrongly")
        return obj

    def worker_for(index):
        ledger = books.ledger(index)
        rng = ledger.rng
        dw = LocalWrapper(d)
        my_keys = []

        def wrap_new():
            obj = ledger.new()
            wrapper = LocalWrapper(obj)
            if rng.random() < 0.3:
                obj.wrapper = wrapper  # object -> wrapper -> object
            ledger.inserted.append(obj.n)
            return wrapper

        def worker(stop):
            while not stop.is_set():
                op = rng.randrange(6)
                if op == 0 and q.size() < 300:
                    q.push(wrap_new())
                elif op == 1:
                    try:
                        wrapper = q.pop(timeout=rng.choice((0, 0.001)))
                    except Empty:
                        continue
                    ledger.consumed.append(unwrap(wrapper, ledger, "a wrapper popped from a queue").n)
                    ledger.hold(wrapper, "a wrapper popped from a queue")  # held through the wrapper only
                elif op == 2:
                    old = slot.exchange(wrap_new())
                    if old is not None:
                        obj = unwrap(old, ledger, "a wrapper from AtomicReference.exchange")
                        ledger.take(obj, "exchange of a wrapper")
                elif op == 3:
                    current = slot.get()
                    if current is not None:
                        obj = unwrap(current, ledger, "a wrapper from AtomicReference.get")
                        ledger.hold(obj, "wrapped in the slot")
                elif op == 4:
                    # A ConcurrentDict used through a wrapper: own keys, known contents.
                    if len(my_keys) < 20 or rng.random() < 0.5:
                        key = f"w{index}_{ledger.count}"
                        wrapper = wrap_new()
                        dw[key] = wrapper
                        my_keys.append(key)
                    else:
                        key = my_keys.pop(rng.randrange(len(my_keys)))
                        wrapper = dw.pop(key)
                        obj = unwrap(wrapper, ledger, "a wrapper popped from a dict through a wrapper")
                        ledger.take(obj, "dict pop")
                else:
                    for key in rng.sample(my_keys, min(3, len(my_keys))):
                        wrapper = dw.get(key)
                        ledger.hold(unwrap(wrapper, ledger, "dw.get"), "dw.get")

        return worker

    made = fire([worker_for(i) for i in range(WORKERS)])
    wrappers = []
    while True:
        try:
            wrappers.append(q.pop(timeout=0))
        except Empty:
            break
    wrappers += d.values()
    if slot.get() is not None:
        wrappers.append(slot.get())
    inside = [w.wrapped for w in wrappers]
    print(made, "collections,", len(HANDED_OVER), "handed over;", books.settle(inside))
    del inside, wrappers, q, slot, d
    books.all_finalized()
