#!/usr/bin/env python3
"""Soak test of ft_utils: every type at once, under many threads, for minutes.

    python tests/soak.py --seconds 600 [--threads 12] [--seed S]

It uses the backend FT_UTILS_BACKEND selects (ft_utils/_backend.py), on any interpreter
ft_utils runs on (with ft_utils importable: installed, or the checkout on PYTHONPATH).
`make soak` and `make test` run it (scripts/soak.sh, scripts/run_tests.sh).

What runs at the same time:

- Queue arenas. ConcurrentQueue, StdConcurrentQueue and ConcurrentGatheringIterator each
  go through lifecycles, one after the other: a new one; producer and consumer threads
  of its own doing random operations with random timeouts (pop, pop_local, get with and
  without block, put with timeouts on a bounded queue, put_nowait, task_done, join; for
  the gatherer: inserts in random order, one iterator shared by several threads, or one
  per thread, or an insert that fails); a shutdown, normal or immediate, at a random
  moment or once the producers are done; a drain; the conservation check; then the next
  one. So shutdowns happen hundreds of times a minute.
- Mixer threads share one AtomicInt64 counter, a compare-and-swap counter, an exchange
  slot (AtomicInt64 and AtomicReference), an AtomicReference updated by CAS, AtomicFlags
  and a ConcurrentDict, part of the time through LocalWrappers, in rounds; at the end of
  each round they all stop at a barrier and a checker verifies everything.
- The main thread runs lifecycles of its own (a queue or a gatherer shared with a
  producer and a consumer thread) while a helper thread sends it SIGINT at random
  moments; it catches the KeyboardInterrupt and goes on (see MainThread for why its
  bookkeeping is exact); between lifecycles it reads the mixers' objects (iterating their
  ConcurrentDict among them) and writes a ConcurrentDict of its own, under the same fire.
- A monitor samples RSS and watches for hangs.

What is checked (each check is counted per type in the report):

- Conservation: every item is a unique token; every token pushed was popped exactly
  once or drained after the shutdown, or released by an immediate shutdown; none came
  out twice, none came out that was not pushed, none that a failed push offered; for
  each consumer, each producer's tokens came out in the order pushed. Every token is
  freed at the end of its lifecycle (weak references), so nothing is kept alive out of
  sight. StdConcurrentQueue also: join() returns, unfinished_tasks ends at 0, qsize()
  never above maxsize. The gatherer: each key comes out exactly once, in order.
- Counters: the AtomicInt64 counter equals the sum of each thread's own tally; the CAS
  counter and the AtomicReference CAS chain equal the number of successful swaps, and
  each thread sees them only grow; exchanged values are conserved (every value put into
  an exchange slot came out of exactly one exchange, or is still in it).
- ConcurrentDict: keys owned by one thread hold exactly that thread's model (the same
  objects), checked at every read and at each round's end; shared keys are changed only
  by compare_and_set, carry a version that each thread sees only grow and that ends
  equal to the number of successful swaps; an iteration sees each shared key once; a
  popped prize goes to exactly one thread; racing setdefaults agree on one winner.
- Memory: RSS (/proc/self/statm) after the warm-up and at the end, when everything is
  joined and collected; fails if it grew by more than --rss-bound MiB.

Exit status: 0 when every check passed, 1 on a violation or an unexpected exception
(the message says which type and what), 3 when an arena made no progress for --hang
seconds (every thread's traceback is printed first).
"""

import argparse
import faulthandler
import gc
import os
import platform
import random
import signal
import sys
import threading
import time
import traceback
import weakref
from collections import Counter
from itertools import count
from functools import partial
from operator import methodcaller

import ft_utils
from ft_utils import _backend
from ft_utils.concurrency import (
    AtomicFlag,
    AtomicInt64,
    AtomicReference,
    ConcurrentDict,
    ConcurrentGatheringIterator,
    ConcurrentQueue,
    Empty,
    Full,
    ShutDown,
    StdConcurrentQueue,
)
from ft_utils.local import LocalWrapper

IS_PYPY = platform.python_implementation() == "PyPy"
GIL_ENABLED = sys._is_gil_enabled() if hasattr(sys, "_is_gil_enabled") else True
# On the native backend every method is one C call, so the main thread's bookkeeping is
# exact even around a KeyboardInterrupt (see MainThread); on cffi, methods are Python code
# and an interrupt can strike between a take and the return (documented in
# docs/concurrent_queue.md): those few values are classified, counted and checked freed.
EXACT_MAIN = ft_utils.backend == "native"

TYPES = _backend.PUBLIC_NAMES  # every public type, in the order the report lists them
RANGE_BITS = 24  # a producer's tokens are base + seq, seq < 2**RANGE_BITS


class _Missing:
    def __repr__(self):
        return "<missing>"


MISSING = _Missing()
CALL = methodcaller("__call__")
MASK = (1 << 64) - 1
OWNED_KEYS = 48
SHARED_KEYS = 16
MIB = 1024 * 1024


class Token:
    """A unique item: n identifies it; a weak reference tells whether it was freed."""

    __slots__ = ("n", "__weakref__")

    def __init__(self, n):
        self.n = n

    def __repr__(self):
        return f"Token({self.n:#x})"


class TokenRef(weakref.ref):
    """A weak reference to a token that remembers its number."""

    __slots__ = ("n",)

    def __new__(cls, token, callback=None):
        self = super().__new__(cls, token, callback)
        self.n = token.n
        return self

    def __init__(self, token, callback=None):
        super().__init__(token, callback)


class Releases:
    """Which tokens an immediate shutdown released: those that die in the thread calling
    shutdown(immediate=True), during the call. Exact where objects die when their last
    reference goes (CPython), and once no producer holds a token it pushed (the
    producers have finished): then every token left in the queue dies right there, and
    one lost anywhere else dies elsewhere or never."""

    def __init__(self):
        self.thread = None
        self.released = []

    def died(self, ref):
        if self.thread == threading.get_ident():
            self.released.append(ref.n)

    def shutdown_immediately(self, q):
        self.thread = threading.get_ident()
        try:
            q.shutdown(immediate=True)
        finally:
            self.thread = None


class Violation(Exception):
    """An invariant of ft_utils did not hold."""


def mix(value):
    """A 64-bit scramble of an int, for sums that tell multisets apart."""
    value = (value * 0x9E3779B97F4A7C15) & MASK
    return value ^ (value >> 29)


def read_rss():
    """Resident set size in bytes, or None where /proc/self/statm is missing."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def still_alive(refs):
    """The weak references whose object is still alive once garbage is collected (the
    cyclic collector and, on PyPy, the only one; on free-threaded CPython, references
    dropped by other threads are merged by their owner thread soon after)."""
    alive = [r for r in refs if r() is not None]
    for attempt in range(6):
        if not alive:
            break
        gc.collect()
        if attempt:
            time.sleep(0.02 * attempt)
        alive = [r for r in alive if r() is not None]
    return alive


def unwrap(value):
    """A token from pop_local()/iterator_local() comes in a LocalWrapper."""
    if type(value) is Token:
        return value
    if not isinstance(value, LocalWrapper):
        raise Violation(f"LocalWrapper: a *_local call gave {type(value).__name__}, not a LocalWrapper")
    token = value.wrapped
    if type(token) is not Token:
        raise Violation(f"LocalWrapper: wraps {type(token).__name__}, not the token")
    return token


def check_order(sequence, type_name, who):
    """For one consumer: each producer's tokens (same base) in increasing order."""
    last = {}
    for n in sequence:
        base = n >> RANGE_BITS
        if n <= last.get(base, -1):
            raise Violation(f"{type_name}: {who} got token {n:#x} after {last[base]:#x} of the same producer (FIFO)")
        last[base] = n


class Soak:
    """What the threads share: stop, counters of operations and checks, failures."""

    def __init__(self, args):
        self.args = args
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ops = Counter()
        self.checks = Counter()
        self.lifecycles = Counter()
        self.notes = Counter()
        self.failures = []
        self.progress = {}
        self.activity = {}
        self.ranges = 0
        self.injected = set()
        mixers = max(2, args.threads // 4)
        self.mixers = mixers
        self.share = max(2, (args.threads - mixers) // 3)

    def new_base(self):
        with self.lock:
            self.ranges += 1
            return self.ranges << RANGE_BITS

    def expect(self, type_name, condition, message):
        if not condition:
            raise Violation(f"{type_name}: {message() if callable(message) else message}")
        with self.lock:
            self.checks[type_name] += 1

    def add_ops(self, counter):
        with self.lock:
            self.ops.update(counter)

    def count(self, counter, key, n=1):
        with self.lock:
            counter[key] += n

    def inject(self, fault):
        """True once for the fault --inject names (the soak's self-test)."""
        if self.args.inject != fault:
            return False
        with self.lock:
            if fault in self.injected:
                return False
            self.injected.add(fault)
            return True

    def made_progress(self, arena):
        self.progress[arena] = time.monotonic()

    def doing(self, arena, describe):
        """describe() says what the arena is doing, should it hang."""
        self.activity[arena] = describe

    def fail(self, where, exc):
        if isinstance(exc, Violation):
            text = f"VIOLATION in {where}: {exc}"
        else:
            text = f"UNEXPECTED {type(exc).__name__} in {where}:\n" + "".join(
                traceback.format_exception(type(exc), exc, exc.__traceback__))
        with self.lock:
            self.failures.append(text)
        print(text, file=sys.stderr, flush=True)
        self.stop.set()

    def thread(self, name, target, *args):
        """Starts target(*args) in a thread whose exception fails the soak."""

        def body():
            try:
                target(*args)
            except BaseException as exc:  # reported, and everything stops
                self.fail(name, exc)

        thread = threading.Thread(target=body, name=name, daemon=True)
        thread.start()
        return thread

    def rng(self, label):
        return random.Random(f"{self.args.seed}/{label}")


def join_all(threads):
    for t in threads:
        t.join()


# ---- ConcurrentQueue ------------------------------------------------------------------

def produce(soak, push, base, count, pushed, failed, refs, rng, ops, type_name, stop=None, releases=None):
    """Pushes Token(base + seq) for seq < count; pushed gets each n that went in, failed
    the one a ShutDown (or, with stop set, a Full) refused."""
    put_ops = 0
    died = None if releases is None else releases.died
    for seq in range(count):
        token = Token(base + seq)
        refs.append(TokenRef(token, died))
        while True:
            try:
                push(token, rng)
            except ShutDown:
                failed.append(token.n)
                ops[type_name] += put_ops + 1
                return
            except Full:
                put_ops += 1
                if stop is not None and stop.is_set():
                    failed.append(token.n)
                    ops[type_name] += put_ops
                    return
                continue
            break
        pushed.append(token.n)
        put_ops += 1
        if stop is not None and stop.is_set():
            break
        if rng.random() < 0.02:
            time.sleep(rng.random() * 0.002)
    ops[type_name] += put_ops


def cq_push(q, token, rng):
    q.push(token)


def cq_take(q, rng, local=True):
    """One pop, or raises Empty/ShutDown. Never Empty when waiting without a timeout.
    local=False leaves pop_local out (see cq_lifecycle)."""
    timeout = rng.choice((None, 0, 0.0001, 0.002, 0.02))
    how = rng.random()
    try:
        if how < 0.3 and local:
            return unwrap(q.pop_local(timeout=timeout))
        if how < 0.4 and timeout is None:
            return q.pop()
        return q.pop(timeout=timeout)
    except Empty:
        if timeout is None:
            raise Violation("ConcurrentQueue: pop() without a timeout raised Empty")
        raise


def consume(soak, take, got, rng, ops, type_name, after=None, inject=None, limit=None):
    """Takes until ShutDown (or, given a limit, until it took that many); got gets each
    token's n."""
    n_ops = 0
    while limit is None or len(got) < limit:
        n_ops += 1
        try:
            token = take(rng)
        except Empty:
            continue
        except ShutDown:
            break
        got.append(token.n)
        if inject in ("drop", "duplicate", "leak") and len(got) == 10 and soak.inject(inject):
            if inject == "drop":
                got.pop()  # the soak's self-test: forget one item
            elif inject == "duplicate":
                got.append(token.n)
            elif inject == "leak":
                soak.leaked = token  # keep one alive
        if after is not None:
            after(rng)
        del token
    ops[type_name] += n_ops


def drain(take_now):
    """What is left after a normal shutdown, as token numbers; asserts that the end is
    ShutDown, not Empty."""
    left = []
    while True:
        try:
            left.append(take_now().n)
        except ShutDown:
            return left
        except Empty:
            raise Violation("a shut-down queue said Empty instead of ShutDown once drained")


def check_conservation(soak, type_name, where, pushed, failed, seen, immediate, refs, released=None):
    """pushed: n of every token that went in; failed: offered but refused; seen: n of
    every token taken out (consumers, then the drain); immediate: whether the rest was
    released by an immediate shutdown rather than drained; released: the tokens that
    shutdown released, where that can be told exactly (see Releases), else None."""
    seen_set = set(seen)
    pushed_set = set(pushed)
    soak.expect(type_name, len(seen_set) == len(seen), lambda: f"{where}: {len(seen) - len(seen_set)} items came out "
                f"twice, e.g. {[n for n, c in Counter(seen).items() if c > 1][:5]}")
    soak.expect(type_name, seen_set <= pushed_set, lambda: f"{where}: {len(seen_set - pushed_set)} items came out that "
                f"were never pushed, e.g. {sorted(seen_set - pushed_set)[:5]}")
    soak.expect(type_name, not (seen_set & set(failed)), lambda: f"{where}: items whose push failed came out")
    if not immediate:
        missing = pushed_set - seen_set
        soak.expect(type_name, not missing, lambda: f"{where}: {len(missing)} items pushed were neither popped nor "
                    f"left in the queue, e.g. {sorted(missing)[:5]}")
    elif released is not None:
        released_set = set(released)
        missing = pushed_set - seen_set - released_set
        soak.expect(type_name, not missing and len(released_set) == len(released) and not (released_set & seen_set)
                    and released_set <= pushed_set,
                    lambda: f"{where}: {len(missing)} items pushed were neither popped nor released by the immediate "
                    f"shutdown, e.g. {sorted(missing)[:5]} ({len(released)} released, {len(released_set & seen_set)} "
                    f"of them also popped)")
    alive = still_alive(refs)
    soak.expect(type_name, not alive, lambda: f"{where}: {len(alive)} items are still alive after the queue, "
                f"its consumers and the drain are done (kept out of sight), e.g. {[r() for r in alive[:5]]}")


def cq_lifecycle(soak, rng, number):
    lock_free = rng.random() < 0.5
    q = ConcurrentQueue(lock_free=lock_free)
    n_prod = rng.randint(1, soak.share - 1)
    n_cons = soak.share - n_prod
    mode = rng.choice(("shutdown after", "shutdown during", "immediate after", "immediate during"))
    immediate = mode.startswith("immediate")
    # consumers that quit early leave items for the drain (or for the immediate shutdown)
    limit = rng.randint(0, soak.args.items) if rng.random() < 0.3 else None
    where = f"lifecycle {number} ({'lock_free, ' if lock_free else ''}{mode}, {n_prod}P/{n_cons}C" \
            f"{f', consumers quit after {limit}' if limit is not None else ''})"
    releases = Releases() if mode == "immediate after" and not IS_PYPY else None
    soak.doing("ConcurrentQueue", lambda: where)
    ops = Counter()
    pushed = [[] for _ in range(n_prod)]
    failed = [[] for _ in range(n_prod)]
    refs = [[] for _ in range(n_prod)]
    got = [[] for _ in range(n_cons)]
    try:
        # With Releases, no pop_local: one that had wrapped a token the shutdown then took
        # holds it until it gives up, so the token dies in the consumer's thread, where
        # Releases cannot tell it from a token lost.
        consumers = [soak.thread(f"cq{number}-consumer{i}", consume, soak, partial(cq_take, q, local=releases is None),
                                 got[i], soak.rng(f"cq{number}c{i}"), ops, "ConcurrentQueue", None,
                                 # (a lost item is visible where the rest is drained, or its release seen)
                                 soak.args.inject if i == 0 and (not immediate or releases) else None, limit)
                     for i in range(n_cons)]
        producers = [soak.thread(f"cq{number}-producer{i}", produce, soak, partial(cq_push, q), soak.new_base(),
                                 rng.randint(1, soak.args.items), pushed[i], failed[i], refs[i],
                                 soak.rng(f"cq{number}p{i}"), ops, "ConcurrentQueue", None, releases)
                     for i in range(n_prod)]
        if mode.endswith("during"):
            time.sleep(rng.random() * 0.05)
        else:
            join_all(producers)
        size = q.size()
        soak.expect("ConcurrentQueue", size >= 0, f"{where}: size() {size}")
        if releases is not None:
            releases.shutdown_immediately(q)
        else:
            q.shutdown(immediate=immediate)
        ops["ConcurrentQueue"] += 2
        join_all(producers)
        join_all(consumers)
    except BaseException:
        q.shutdown(immediate=True)  # wakes every consumer
        raise
    if soak.stop.is_set():
        return
    left = [] if immediate else drain(partial(q.pop, timeout=0))
    try:
        q.pop(timeout=0)
        raise Violation(f"ConcurrentQueue: {where}: pop() after the shutdown and the drain returned")
    except ShutDown:
        pass
    try:
        q.push(Token(-1))
        raise Violation(f"ConcurrentQueue: {where}: push() after the shutdown went through")
    except ShutDown:
        pass
    soak.expect("ConcurrentQueue", q.size() == 0 and q.empty(), f"{where}: size() {q.size()} after the drain")
    for i, sequence in enumerate(got):
        check_order(sequence, "ConcurrentQueue", f"{where} consumer {i}")
    soak.expect("ConcurrentQueue", True, "")  # the order checks above
    queue_ref = weakref.ref(q)
    del q
    check_conservation(soak, "ConcurrentQueue", where, sum(pushed, []), sum(failed, []), sum(got, []) + left,
                       immediate, sum(refs, []) + [queue_ref], releases and releases.released)
    soak.add_ops(ops)
    soak.count(soak.lifecycles, ("ConcurrentQueue", "immediate" if immediate else "shutdown"))


# ---- StdConcurrentQueue ---------------------------------------------------------------

def sq_put(q, token, rng):
    how = rng.random()
    if how < 0.2:
        q.put_nowait(token)
    elif how < 0.3:
        q.put(token, block=False)
    elif how < 0.6:
        q.put(token, timeout=rng.choice((0, 0.0005, 0.005, 0.05)))
    elif how < 0.7:
        q.put(item=token, block=True, timeout=None)
    else:
        q.put(token)


def sq_take(q, bound, violations, rng):
    how = rng.random()
    if bound and rng.random() < 0.1:
        size = q.qsize()
        if size > bound:
            violations.append(size)
    if how < 0.2:
        return q.get_nowait()
    if how < 0.3:
        return q.get(block=False)
    if how < 0.7:
        return q.get(timeout=rng.choice((0, 0.0005, 0.005, 0.05)))
    try:
        return q.get()
    except Empty:
        raise Violation("StdConcurrentQueue: get() without a timeout raised Empty")


def sq_lifecycle(soak, rng, number):
    maxsize = rng.choice((0, 0, 1, 2, 2.5, 7, 64, 1000))
    bound = -(-maxsize // 1) if maxsize > 0 else 0  # ceil: 2.5 holds 3
    q = StdConcurrentQueue(maxsize)
    n_prod = rng.randint(1, soak.share - 1)
    n_cons = soak.share - n_prod
    mode = rng.choice(("shutdown after", "shutdown during", "immediate after", "immediate during"))
    immediate = mode.startswith("immediate")
    joiner_wanted = rng.random() < 0.5
    # consumers that quit early leave items for the drain; only when nobody waits for
    # them all to be done (join) and the shutdown does not wait for the producers
    limit = None
    if mode.endswith("during") and not joiner_wanted and rng.random() < 0.4:
        limit = rng.randint(0, soak.args.items)
    releases = Releases() if mode == "immediate after" and not IS_PYPY else None
    where = f"lifecycle {number} (maxsize {maxsize}, {mode}, {n_prod}P/{n_cons}C" \
            f"{', joiner' if joiner_wanted else ''}{f', consumers quit after {limit}' if limit is not None else ''})"
    soak.doing("StdConcurrentQueue", lambda: where)
    ops = Counter()
    pushed = [[] for _ in range(n_prod)]
    failed = [[] for _ in range(n_prod)]
    refs = [[] for _ in range(n_prod)]
    got = [[] for _ in range(n_cons)]
    over = []
    produced = threading.Event()
    joined = []
    try:
        consumers = [soak.thread(f"sq{number}-consumer{i}", consume, soak, partial(sq_take, q, bound, over), got[i],
                                 soak.rng(f"sq{number}c{i}"), ops, "StdConcurrentQueue", lambda _: q.task_done(),
                                 None, limit) for i in range(n_cons)]
        # a queue of 1 to 7 places hands over item by item: fewer items keep the lifecycle short
        most = soak.args.items if not bound or bound > 7 else max(1, soak.args.items // 8)
        producers = [soak.thread(f"sq{number}-producer{i}", produce, soak, partial(sq_put, q), soak.new_base(),
                                 rng.randint(1, most), pushed[i], failed[i], refs[i],
                                 soak.rng(f"sq{number}p{i}"), ops, "StdConcurrentQueue", None, releases)
                     for i in range(n_prod)]

        def join_when_produced():
            produced.wait()
            q.join()
            joined.append(True)

        joiner = soak.thread(f"sq{number}-joiner", join_when_produced) if joiner_wanted else None
        if mode.endswith("during"):
            time.sleep(rng.random() * 0.05)
        else:
            join_all(producers)
            produced.set()
            if not immediate:  # (an immediate shutdown comes while the consumers still work)
                q.join()  # returns once the consumers have called task_done for everything
                ops["StdConcurrentQueue"] += 1
                soak.expect("StdConcurrentQueue", q.unfinished_tasks == 0 and q.qsize() == 0,
                            lambda: f"{where}: join() returned with unfinished_tasks {q.unfinished_tasks}, "
                            f"qsize {q.qsize()}")
        if releases is not None:
            releases.shutdown_immediately(q)
        else:
            q.shutdown(immediate=immediate)
        ops["StdConcurrentQueue"] += 1
        soak.expect("StdConcurrentQueue", q.is_shutdown, f"{where}: is_shutdown false after shutdown()")
        join_all(producers)
        produced.set()
        join_all(consumers)
        if joiner is not None:
            joiner.join()
            soak.expect("StdConcurrentQueue", joined == [True], f"{where}: join() did not return")
    except BaseException:
        produced.set()
        q.shutdown(immediate=True)  # wakes every thread
        raise
    if soak.stop.is_set():
        return
    left = []
    if not immediate:
        left = drain(q.get_nowait)
        for _ in left:
            q.task_done()
    soak.expect("StdConcurrentQueue", q.unfinished_tasks == 0,
                lambda: f"{where}: unfinished_tasks {q.unfinished_tasks} at the end (every item was task_done'd "
                f"or released by the immediate shutdown)")
    try:
        q.task_done()
        raise Violation(f"StdConcurrentQueue: {where}: task_done() once too often did not raise")
    except ValueError:
        pass
    for call in (q.get_nowait, partial(q.get, timeout=0.001), partial(q.put, Token(-1))):
        try:
            call()
            raise Violation(f"StdConcurrentQueue: {where}: {call} after the shutdown went through")
        except ShutDown:
            pass
    call = None  # it held the queue
    soak.expect("StdConcurrentQueue", not over, lambda: f"{where}: qsize() {max(over)} above maxsize {maxsize}")
    for i, sequence in enumerate(got):
        check_order(sequence, "StdConcurrentQueue", f"{where} consumer {i}")
    soak.expect("StdConcurrentQueue", True, "")
    queue_ref = weakref.ref(q)
    del q
    check_conservation(soak, "StdConcurrentQueue", where, sum(pushed, []), sum(failed, []), sum(got, []) + left,
                       immediate, sum(refs, []) + [queue_ref], releases and releases.released)
    soak.add_ops(ops)
    soak.count(soak.lifecycles, ("StdConcurrentQueue", "immediate" if immediate else "shutdown"))


# ---- ConcurrentGatheringIterator ------------------------------------------------------

def insert_keys(soak, g, keys, base, refs, rng, ops, fail_at=None):
    for position, key in enumerate(keys):
        if position == fail_at:
            try:
                g.insert(-1, Token(-1))
            except ValueError:
                ops["ConcurrentGatheringIterator"] += position + 1
                return  # the gatherer is failed; the rest of these keys never come
            raise Violation("ConcurrentGatheringIterator: insert(-1, ...) did not raise ValueError")
        token = Token(base + key)
        refs.append(weakref.ref(token))
        g.insert(key, token)
        del token
        if rng.random() < 0.02:
            time.sleep(rng.random() * 0.002)
    ops["ConcurrentGatheringIterator"] += len(keys)


def read_values(iterator, base, got, outcome, ops):
    n = 0
    try:
        for value in iterator:
            got.append(unwrap(value).n - base)
            n += 1
        outcome.append("done")
    except RuntimeError:
        outcome.append("failed")
    finally:
        ops["ConcurrentGatheringIterator"] += n + 1


def gather_lifecycle(soak, rng, number):
    n_keys = rng.randint(1, soak.args.items)
    max_key = n_keys - 1
    g = ConcurrentGatheringIterator()
    mode = rng.choice(("shared", "shared local", "separate", "separate local", "failure"))
    n_ins = rng.randint(1, soak.share - 1)
    n_read = soak.share - n_ins
    where = f"lifecycle {number} ({mode}, {n_keys} keys, {n_ins} inserters, {n_read} readers)"
    soak.doing("ConcurrentGatheringIterator", lambda: where)
    keys = list(range(n_keys))
    rng.shuffle(keys)
    parts = [keys[i::n_ins] for i in range(n_ins)]
    base = soak.new_base()
    refs = [[] for _ in range(n_ins)]
    got = [[] for _ in range(n_read)]
    outcome = [[] for _ in range(n_read)]
    ops = Counter()
    local = mode.endswith("local")
    if mode.startswith("separate"):
        iterators = [(g.iterator_local if local else g.iterator)(max_key, clear=False) for _ in range(n_read)]
    else:
        shared = (g.iterator_local if local else g.iterator)(max_key)
        iterators = [shared] * n_read
        del shared
    fail_at = rng.randrange(len(parts[0])) if mode == "failure" else None
    readers = [soak.thread(f"g{number}-reader{i}", read_values, iterators[i], base, got[i], outcome[i], ops)
               for i in range(n_read)]
    del iterators
    inserters = [soak.thread(f"g{number}-inserter{i}", insert_keys, soak, g, parts[i], base, refs[i],
                             soak.rng(f"g{number}i{i}"), ops, fail_at if i == 0 else None) for i in range(n_ins)]
    join_all(inserters)
    join_all(readers)
    if soak.stop.is_set():
        return
    t = "ConcurrentGatheringIterator"
    for i, sequence in enumerate(got):
        soak.expect(t, all(a < b for a, b in zip(sequence, sequence[1:])),
                    lambda: f"{where}: reader {i} got keys out of order: {sequence[:20]}")
    if mode == "failure":
        soak.expect(t, all(o == ["failed"] for o in outcome),
                    lambda: f"{where}: after a failed insert the readers ended with {outcome}, not RuntimeError")
        union = sorted(sum(got, []))
        soak.expect(t, union == list(range(len(union))),
                    lambda: f"{where}: before the failure the readers got {union[:20]}..., not keys 0, 1, 2, ...")
    elif mode.startswith("separate"):
        for i, sequence in enumerate(got):
            soak.expect(t, sequence == keys_in_order(n_keys) and outcome[i] == ["done"],
                        lambda: f"{where}: reader {i} of its own iterator got {len(sequence)} of {n_keys} keys "
                        f"({outcome[i]})")
    else:
        union = sorted(sum(got, []))
        soak.expect(t, union == keys_in_order(n_keys) and all(o == ["done"] for o in outcome),
                    lambda: f"{where}: the readers of one iterator got {len(union)} values for {n_keys} keys "
                    f"(each once expected; duplicates: {[k for k, c in Counter(union).items() if c > 1][:5]})")
    gatherer_ref = weakref.ref(g)
    del g
    alive = still_alive(sum(refs, []) + [gatherer_ref])
    soak.expect(t, not alive, lambda: f"{where}: {len(alive)} values still alive after the gatherer is gone")
    if local:
        soak.expect("LocalWrapper", True, "")  # every value came in a LocalWrapper around its token (unwrap)
    soak.add_ops(ops)
    soak.count(soak.lifecycles, (t, mode))


def keys_in_order(n):
    return list(range(n))


# ---- atomics, the dict and LocalWrapper: mixer threads in rounds ----------------------

class Shared:
    """The objects the mixer threads share for the whole run."""

    def __init__(self, rng):
        self.counter = AtomicInt64(0)
        self.cas = AtomicInt64(0)
        self.xchg = AtomicInt64(1)
        self.xchg_first = 1
        first = Token(2)
        self.ref = AtomicReference(first)
        self.ref_first = 2
        self.chain = AtomicReference((0, -1))
        self.round_stop = AtomicFlag(False)
        self.scratch = AtomicFlag(True)
        self.d = ConcurrentDict(rng.choice((1, 4, 17, 64)))
        for j in range(SHARED_KEYS):
            self.d[("s", j)] = (0, -1)
        self.round = 0
        self.finished = False


class Mixer:
    """One mixer thread's own tallies and models (read by the checker between rounds)."""

    def __init__(self, soak, shared, index):
        self.soak = soak
        self.s = shared
        self.index = index
        self.rng = soak.rng(f"mixer{index}")
        self.tally = 0
        self.cas_wins = 0
        self.cas_seen = 0
        self.xchg = [0, 0, 0, 0]  # sum in, mix in, sum out, mix out
        self.ref = [0, 0, 0, 0]
        self.chain_wins = 0
        self.chain_seen = 0
        self.shared_wins = [0] * SHARED_KEYS
        self.shared_seen = [0] * SHARED_KEYS
        self.model = {}
        self.seq = 0
        self.ops = Counter()
        self.prize = None
        self.setdefault_winner = None
        self.used_wrappers = False
        self.wrapped_counter = LocalWrapper(shared.counter)
        self.wrapped_dict = LocalWrapper(shared.d)

    def unique(self):
        self.seq += 1
        return (self.index + 1) << 40 | self.seq

    def run(self, barrier):
        try:
            self.rounds(barrier)
        except threading.BrokenBarrierError:
            if not self.soak.stop.is_set():
                raise
        except BaseException:
            barrier.abort()  # the checker must not wait for this thread
            raise

    def rounds(self, barrier):
        s = self.s
        while True:
            barrier.wait()  # round start
            if self.soak.stop.is_set() or s.finished:
                return
            n = 0
            while not s.round_stop:
                self.step()
                n += 1
            self.ops["AtomicFlag"] += n + 1
            if self.soak.inject("dict"):
                self.model[0] = Token(-2)  # the soak's self-test: a write the dict never saw
            round_number = s.round
            self.prize = s.d.pop(("p", round_number), None)
            self.setdefault_winner = s.d.setdefault(("w", round_number), Token(self.unique()))
            self.ops["ConcurrentDict"] += 2
            barrier.wait()  # round end: the checker looks
            self.soak.add_ops(self.ops)
            self.ops = Counter()

    def step(self):
        s, rng, ops = self.s, self.rng, self.ops
        r = rng.random()
        if r < 0.12:  # the counter: the sum of every thread's tally
            how = rng.random()
            if how < 0.3:
                s.counter.incr()
                self.tally += 1
            elif how < 0.5:
                s.counter.decr()
                self.tally -= 1
            elif how < 0.8:
                k = rng.randint(-1000, 1000)
                s.counter.add(k)
                self.tally += k
            else:
                k = rng.randint(-5, 5)
                self.wrapped_counter.add(k)
                self.tally += k
                self.used_wrappers = True
                ops["LocalWrapper"] += 1
            ops["AtomicInt64"] += 1
        elif r < 0.2:  # CAS counter: only grows; ends at the number of successful swaps
            seen = s.cas.get()
            if seen < self.cas_seen:
                raise Violation(f"AtomicInt64: the CAS counter went back from {self.cas_seen} to {seen}")
            self.cas_seen = seen
            if s.cas.compare_exchange(seen, seen + 1):
                self.cas_wins += 1
            ops["AtomicInt64"] += 2
        elif r < 0.28:  # exchange: every value put in comes out exactly once
            value = self.unique()
            old = s.xchg.exchange(value)
            x = self.xchg
            x[0] += value
            x[1] = (x[1] + mix(value)) & MASK
            x[2] += old
            x[3] = (x[3] + mix(old)) & MASK
            ops["AtomicInt64"] += 1
        elif r < 0.34:  # AtomicReference exchange: the same, with objects
            token = Token(self.unique())
            old = s.ref.exchange(token)
            x = self.ref
            x[0] += token.n
            x[1] = (x[1] + mix(token.n)) & MASK
            x[2] += old.n
            x[3] = (x[3] + mix(old.n)) & MASK
            ops["AtomicReference"] += 1
        elif r < 0.42:  # AtomicReference CAS chain: versions only grow
            current = s.chain.get()
            if current[0] < self.chain_seen:
                raise Violation(f"AtomicReference: the CAS chain went back from {self.chain_seen} to {current[0]}")
            self.chain_seen = current[0]
            if s.chain.compare_exchange(current, (current[0] + 1, self.index)):
                self.chain_wins += 1
            if rng.random() < 0.1:
                other = Token(-1)
                if s.ref.compare_exchange(other, other):
                    raise Violation("AtomicReference: compare_exchange succeeded with an object that was never stored")
            ops["AtomicReference"] += 2
        elif r < 0.46:
            s.scratch.set(rng.random() < 0.5)
            if bool(s.scratch) not in (True, False):
                raise Violation("AtomicFlag: bool() not a bool")
            ops["AtomicFlag"] += 2
        elif r < 0.88:
            self.dict_owned()
        elif r < 0.998:
            self.dict_shared()
        else:
            self.dict_iterate()

    def dict_owned(self):
        """Keys only this thread writes: every read must give this thread's model."""
        rng, model, ops = self.rng, self.model, self.ops
        k = rng.randrange(OWNED_KEYS)
        key = ("o", self.index, k)
        d = self.s.d
        if rng.random() < 0.15:
            d = self.wrapped_dict
            self.used_wrappers = True
            ops["LocalWrapper"] += 1
        expected = model.get(k, MISSING)
        how = rng.random()
        if how < 0.25:
            token = Token(self.unique())
            d[key] = token
            model[k] = token
        elif how < 0.45:
            got = d.get(key, MISSING)
            if got is not expected:
                raise Violation(f"ConcurrentDict: get({key}) gave {got!r}, its only writer stored {expected!r}")
        elif how < 0.52:
            if (key in d) != (expected is not MISSING):
                raise Violation(f"ConcurrentDict: `{key} in d` is {key in d}, its only writer says "
                                f"{expected is not MISSING}")
        elif how < 0.6:
            try:
                got = d[key]
            except KeyError:
                got = MISSING
            if got is not expected:
                raise Violation(f"ConcurrentDict: d[{key}] gave {got!r}, its only writer stored {expected!r}")
        elif how < 0.66:
            try:
                del d[key]
                deleted = True
            except KeyError:
                deleted = False
            if deleted != (expected is not MISSING):
                raise Violation(f"ConcurrentDict: del d[{key}] {'worked' if deleted else 'raised KeyError'}, "
                                f"its only writer stored {expected!r}")
            model.pop(k, None)
        elif how < 0.72:
            got = d.pop(key, MISSING)
            if got is not expected:
                raise Violation(f"ConcurrentDict: pop({key}) gave {got!r}, its only writer stored {expected!r}")
            model.pop(k, None)
        elif how < 0.8:
            token = Token(self.unique())
            got = d.setdefault(key, token)
            want = model.setdefault(k, token)
            if got is not want:
                raise Violation(f"ConcurrentDict: setdefault({key}) gave {got!r}, expected {want!r}")
        elif how < 0.9:
            token = Token(self.unique())
            if expected is MISSING:
                if d.compare_and_set(key, Token(-1), token):
                    raise Violation(f"ConcurrentDict: compare_and_set on missing {key} succeeded")
            else:
                if d.compare_and_set(key, Token(expected.n), token):
                    raise Violation(f"ConcurrentDict: compare_and_set({key}) succeeded with another object")
                if not d.compare_and_set(key, expected, token):
                    raise Violation(f"ConcurrentDict: compare_and_set({key}) with the stored object failed")
                model[k] = token
            ops["ConcurrentDict"] += 1
        elif how < 0.95:
            if expected is not MISSING:
                if not d.compare_and_delete(key, expected):
                    raise Violation(f"ConcurrentDict: compare_and_delete({key}) with the stored object failed")
                del model[k]
            elif d.compare_and_delete(key, Token(-1)):
                raise Violation(f"ConcurrentDict: compare_and_delete on missing {key} succeeded")
        else:
            other = rng.randrange(OWNED_KEYS)
            a, b = Token(self.unique()), Token(self.unique())
            if other == k:
                d.update({key: a})
            else:
                d.update([(key, a), (("o", self.index, other), b)])
                model[other] = b
            model[k] = a
        ops["ConcurrentDict"] += 1

    def dict_shared(self):
        """Shared keys: changed only by compare_and_set; versions only grow."""
        j = self.rng.randrange(SHARED_KEYS)
        key = ("s", j)
        d = self.s.d
        current = d[key]
        if current[0] < self.shared_seen[j]:
            raise Violation(f"ConcurrentDict: {key} went back from version {self.shared_seen[j]} to {current[0]}")
        self.shared_seen[j] = current[0]
        if d.compare_and_set(key, current, (current[0] + 1, self.index)):
            self.shared_wins[j] += 1
        self.ops["ConcurrentDict"] += 2

    def dict_iterate(self):
        """Shared keys are there all along: an iteration sees each exactly once."""
        d = self.s.d
        how = self.rng.random()
        if how < 0.5:
            keys = [k for k in d]
        elif how < 0.8:
            keys = [k for k, _ in d.items()]
        else:
            keys = list(d.copy().as_dict())
        seen = Counter(k for k in keys if k[0] == "s")
        if sorted(seen) != [("s", j) for j in range(SHARED_KEYS)] or set(seen.values()) != {1}:
            raise Violation(f"ConcurrentDict: an iteration saw the shared keys {dict(seen)}, each once expected")
        self.ops["ConcurrentDict"] += 1


def mixer_arena(soak, s, stop_at):
    rng = soak.rng("mixer-checker")
    mixers = [Mixer(soak, s, i) for i in range(soak.mixers)]
    barrier = threading.Barrier(len(mixers) + 1)
    threads = [soak.thread(f"mixer{i}", m.run, barrier) for i, m in enumerate(mixers)]
    soak.mixer_threads = threads
    try:
        while True:
            s.round += 1
            s.d[("p", s.round)] = prize = Token(-3)
            s.round_stop.set(False)
            last = soak.stop.is_set() or time.monotonic() >= stop_at
            s.finished = last
            barrier.wait()  # start (or, when stopping, release them to return)
            if last:
                return
            soak.stop.wait(rng.uniform(0.05, 1.0))
            s.round_stop.set(True)
            barrier.wait()  # they have stopped
            check_round(soak, s, mixers, prize)
            del prize
            soak.made_progress("mixers")
            soak.count(soak.lifecycles, ("mixers", "round"))
    except threading.BrokenBarrierError:
        if not soak.stop.is_set():
            raise
    except BaseException:
        barrier.abort()  # no mixer must wait for the checker
        raise


def check_round(soak, s, mixers, prize):
    expect = soak.expect
    total = sum(m.tally for m in mixers)
    if soak.inject("counter"):
        total += 1  # the soak's self-test: a tally that is off by one
    value = s.counter.get()
    expect("AtomicInt64", value == total, lambda: f"round {s.round}: counter {value}, the threads' tallies add up "
           f"to {total}")
    wins = sum(m.cas_wins for m in mixers)
    expect("AtomicInt64", s.cas.get() == wins,
           lambda: f"round {s.round}: CAS counter {s.cas.get()}, successful swaps {wins}")
    for name, slot, first, of in (("AtomicInt64", s.xchg, s.xchg_first, lambda m: m.xchg),
                                  ("AtomicReference", s.ref, s.ref_first, lambda m: m.ref)):
        final = slot.get()
        final = final if isinstance(final, int) else final.n
        put_in = first + sum(of(m)[0] for m in mixers)
        mixed_in = (mix(first) + sum(of(m)[1] for m in mixers)) & MASK
        came_out = final + sum(of(m)[2] for m in mixers)
        mixed_out = (mix(final) + sum(of(m)[3] for m in mixers)) & MASK
        expect(name, put_in == came_out and mixed_in == mixed_out,
               f"round {s.round}: exchange does not conserve values: what went in and what came out (plus the "
               f"final value) differ")
    chain = s.chain.get()
    wins = sum(m.chain_wins for m in mixers)
    expect("AtomicReference", chain[0] == wins, lambda: f"round {s.round}: CAS chain at version {chain[0]}, "
           f"successful swaps {wins}")
    expect("AtomicFlag", bool(s.round_stop) is True, f"round {s.round}: the stop flag reads false after set(True)")
    d = s.d
    winners = [m for m in mixers if m.prize is not None]
    expect("ConcurrentDict", len(winners) == 1 and winners[0].prize is prize,
           lambda: f"round {s.round}: {len(winners)} threads popped the one prize")
    winner = d.get(("w", s.round))
    expect("ConcurrentDict", all(m.setdefault_winner is winner for m in mixers),
           lambda: f"round {s.round}: racing setdefault() calls returned different objects")
    del d[("w", s.round)]
    expected = {}
    for m in mixers:
        for k in range(OWNED_KEYS):
            want = m.model.get(k, MISSING)
            got = d.get(("o", m.index, k), MISSING)
            expect("ConcurrentDict", got is want, lambda: f"round {s.round}: key {('o', m.index, k)} holds "
                   f"{got!r}, its only writer stored {want!r}")
            if want is not MISSING:
                expected[("o", m.index, k)] = want
        if m.used_wrappers:
            soak.expect("LocalWrapper", True, "")  # its model, built partly through wrappers, matched
            m.used_wrappers = False
    for j in range(SHARED_KEYS):
        wins = sum(m.shared_wins[j] for m in mixers)
        version = d[("s", j)][0]
        expect("ConcurrentDict", version == wins, lambda: f"round {s.round}: shared key {j} at version {version}, "
               f"successful compare_and_set {wins}")
        expected[("s", j)] = d[("s", j)]
    expect("ConcurrentDict", len(d) == len(expected) and d == expected,
           lambda: f"round {s.round}: the dict has {len(d)} keys, the models {len(expected)}")
    for m in mixers:
        m.prize = m.setdefault_winner = None


# ---- the main thread, interrupted ------------------------------------------------------

def in_import_machinery(frame):
    while frame is not None:
        if "importlib" in frame.f_code.co_filename and "_bootstrap" in frame.f_code.co_filename:
            return True
        frame = frame.f_back
    return False


class MainThread:
    """The main thread's own lifecycles, under SIGINT from a helper thread.

    The handler raises KeyboardInterrupt only while the main thread is inside attempt()
    (armed); SIGINTs that land elsewhere (its own bookkeeping, a few lines) run the
    handler, which returns. attempt(f) calls f with out.extend(map(CALL, (f,))): the call
    and the store of its result into `out` happen inside list.extend, in C, with no
    bytecode between them, so no signal handler can run there. Whenever the interrupt
    strikes - before the call, inside a blocking wait, or right after the call returned -
    `out` says exactly whether f returned: an item taken is in `out`, a push is known to
    have happened or not. This is exact on the native backend, whose methods are single C
    calls that take nothing and put nothing when a wait is interrupted (the guarantee
    of docs/concurrent_queue.md). On the cffi backend methods are Python code, and the
    interpreter can raise between the take and the return, or after a push went in: the
    main thread then counts each interrupted pop as one value possibly lost and each
    interrupted push as maybe in; the check allows exactly that many, requires every
    lost value to be freed, and the report shows how many there were.
    """

    def __init__(self, soak, shared_reads):
        self.soak = soak
        self.rng = soak.rng("main")
        self.armed = False
        self.raised = 0
        self.caught = 0
        self.landed_outside = 0
        self.in_import_machinery = 0
        self.counter = AtomicInt64(0)
        self.counter_tally = 0
        self.counter_maybe = 0
        self.reads = shared_reads
        self.ops = Counter()
        self.own = ConcurrentDict(2)
        self.own_model = {}
        self.own_tokens = count(1)

    def on_sigint(self, signum, frame):
        if self.armed and in_import_machinery(frame):
            # The collector ran a weakref callback of importlib inside our operation. Its
            # `_imp.acquire_lock()` comes right before a `try:`, so an exception raised
            # between them leaves the global import lock held, and every later import in
            # another thread hangs (seen on PyPy 3.9, which runs such callbacks at any
            # collection). That is the interpreter's hazard, not ours: stay armed.
            self.in_import_machinery += 1
            return
        if self.armed:
            self.armed = False
            self.raised += 1
            raise KeyboardInterrupt
        self.landed_outside += 1

    def attempt(self, f):
        """(out, error type, interrupted): out is [f's result] if f returned."""
        out = []
        error = None
        interrupted = False
        try:
            try:
                self.armed = True
                out.extend(map(CALL, (f,)))
            finally:
                self.armed = False
        except KeyboardInterrupt:
            interrupted = True
            self.caught += 1
        except Exception as exc:
            error = type(exc)
        return out, error, interrupted

    def calm(self, f):
        """Calls f until it returns (retrying after interrupts); its result."""
        while True:
            out, error, interrupted = self.attempt(f)
            if out:
                return out[0]
            if error is not None:
                raise Violation(f"main thread: {f} raised {error.__name__}")

    def join(self, threads):
        """Not interruptible: a KeyboardInterrupt inside Thread.join can leave the thread
        marked as stopped while it still runs (CPython 3.11's _wait_for_tstate_lock then
        releases the lock the running thread holds), and the soak would go on with it."""
        for t in threads:
            t.join()

    def side_step(self):
        """Something else, interruptible: reads of the mixers' objects, a counter, a nap."""
        rng = self.rng
        how = rng.random()
        if how < 0.4:  # the main thread's counter, checked exactly at each lifecycle end
            out, error, interrupted = self.attempt(self.counter.incr)
            if out:
                self.counter_tally += 1
            elif interrupted and not EXACT_MAIN:
                self.counter_maybe += 1
            self.ops["AtomicInt64"] += 1
        elif how < 0.8 and self.reads is not None:
            s = self.reads
            reads = [("AtomicInt64", s.counter.get), ("AtomicReference", s.chain.get), ("AtomicReference", s.ref.get),
                     ("AtomicFlag", partial(bool, s.scratch)), ("ConcurrentDict", s.d.__len__),
                     ("ConcurrentDict", partial(s.d.get, ("s", rng.randrange(SHARED_KEYS))))]
            reads.append(("ConcurrentDict", partial(sum, map(bool, s.d))))  # an iteration, perhaps cut short
            type_name, f = rng.choice(reads)
            self.attempt(f)
            self.ops[type_name] += 1
        elif how < 0.9:
            self.own_dict_write()
        else:
            self.attempt(partial(time.sleep, rng.random() * 0.005))

    def own_dict_write(self):
        """A write to the main thread's own ConcurrentDict, perhaps interrupted. What each
        key may hold is tracked: exactly, or (an interrupted write, on cffi) either the
        value before or the one written; checked at the end of the next lifecycle."""
        rng, d, model = self.rng, self.own, self.own_model
        key = ("m", rng.randrange(16))
        allowed = model.setdefault(key, {MISSING})
        value = next(self.own_tokens)
        op = rng.choice(("set", "pop", "setdefault", "compare_and_set", "compare_and_delete"))
        current = d.get(key, MISSING)
        if op == "set":
            out, error, interrupted = self.attempt(partial(d.__setitem__, key, value))
            after = {value}
        elif op == "pop":
            out, error, interrupted = self.attempt(partial(d.pop, key, MISSING))
            after = {MISSING}
        elif op == "setdefault":
            out, error, interrupted = self.attempt(partial(d.setdefault, key, value))
            after = {current if current is not MISSING else value}
        elif op == "compare_and_set":
            out, error, interrupted = self.attempt(partial(d.compare_and_set, key, current, value))
            after = {value if current is not MISSING else MISSING}
        else:
            out, error, interrupted = self.attempt(partial(d.compare_and_delete, key, current))
            after = {MISSING}
        self.ops["ConcurrentDict"] += 1
        if error is not None:
            self.soak.fail("main thread", Violation(f"own ConcurrentDict: {op} raised {error.__name__}"))
        if out:
            model[key] = after
        elif interrupted and not EXACT_MAIN:
            model[key] = allowed | after  # it may have happened, or not
        if op == "pop" and out:
            self.soak.expect("ConcurrentDict", out[0] in allowed,
                             lambda: f"main thread: own ConcurrentDict: pop({key}) returned {out[0]!r}, "
                             f"the key could hold {allowed!r}")

    def check_own_dict(self):
        d, model = self.own, self.own_model
        present = 0
        for key, allowed in sorted(model.items()):
            now = d.get(key, MISSING)
            present += now is not MISSING
            self.soak.expect("ConcurrentDict", now in allowed,
                             lambda: f"main thread: own ConcurrentDict: {key} holds {now!r}, it could hold {allowed!r}")
            model[key] = {now}
        size = len(d)
        self.soak.expect("ConcurrentDict", size == present,
                         lambda: f"main thread: own ConcurrentDict: len() {size}, {present} keys present")
        objects = getattr(d, "_ftu_objects", None)  # cffi: the pairs kept alive by ticket
        if objects is not None:
            kept = len(objects)
            self.soak.expect("ConcurrentDict", kept == size,
                             lambda: f"main thread: own ConcurrentDict: its ticket dict keeps {kept} pairs for "
                             f"{size} entries (a write interrupted between the core and the ticket dict stranded "
                             f"a pair)")

    def lifecycle(self, number):
        kind = self.rng.choice(("ConcurrentQueue", "StdConcurrentQueue", "ConcurrentGatheringIterator"))
        if kind == "ConcurrentGatheringIterator":
            self.gather_lifecycle(number)
        else:
            self.queue_lifecycle(number, kind)
        expected = self.counter_tally
        value = self.counter.get()
        self.soak.expect("AtomicInt64", expected <= value <= expected + self.counter_maybe,
                         lambda: f"main thread: its counter is {value}, its tally {expected}"
                         f"{f' (+ {self.counter_maybe} interrupted)' if self.counter_maybe else ''}")
        # an interrupted incr on cffi either happened or not: settle it before the next lifecycle
        self.counter_tally = value
        self.counter_maybe = 0
        self.check_own_dict()
        self.soak.add_ops(self.ops)
        self.ops = Counter()
        self.soak.made_progress("main")

    def queue_lifecycle(self, number, kind):
        soak, rng = self.soak, self.rng
        t = kind
        if kind == "ConcurrentQueue":
            q = ConcurrentQueue(lock_free=rng.random() < 0.5)
            bound = 0
            pushes = (q.push,)
            takes = (q.pop, q.pop_local)
            take_now = partial(q.pop, timeout=0)
        else:
            maxsize = rng.choice((0, 1, 3, 50))
            bound = maxsize
            q = StdConcurrentQueue(maxsize)
            pushes = (q.put, q.put_nowait) if bound else (q.put,)
            takes = (q.get,)
            take_now = q.get_nowait
        immediate = rng.random() < 0.4
        where = f"main lifecycle {number} ({kind}{f' maxsize {bound}' if bound else ''}, " \
                f"{'immediate' if immediate else 'normal'} shutdown)"
        soak.doing("main", lambda: where)
        stop = threading.Event()
        ops = Counter()
        w_pushed, w_failed, w_refs, w_got = [], [], [], []
        task_done = (lambda _: q.task_done()) if kind == "StdConcurrentQueue" else None

        def worker_push(q_, token, rng_):
            if kind == "ConcurrentQueue":
                q.push(token)
            else:
                q.put(token, timeout=0.01)
            if rng_.random() < 0.05:
                time.sleep(0.001)

        def worker_take(rng_):
            if kind == "ConcurrentQueue":
                return q.pop(timeout=rng_.choice((None, 0.01)))
            return q.get(timeout=rng_.choice((None, 0.01)))

        producer = soak.thread(f"main{number}-producer", produce, soak, partial(worker_push, q), soak.new_base(),
                               1 << 20, w_pushed, w_failed, w_refs, soak.rng(f"m{number}p"), ops, t, stop)
        consumer = soak.thread(f"main{number}-consumer", consume, soak, worker_take, w_got, soak.rng(f"m{number}c"),
                               ops, t, task_done)
        base = soak.new_base()
        m_pushed, m_maybe, m_failed, m_got, refs = [], [], [], [], []
        interrupted_takes = 0
        end = time.monotonic() + rng.uniform(0.1, 1.0)
        seq = 0
        try:
            while time.monotonic() < end and not soak.stop.is_set():
                how = rng.random()
                if how < 0.35:
                    seq += 1
                    token = Token(base + seq)
                    refs.append(weakref.ref(token))
                    push = rng.choice(pushes)
                    if bound and push == q.put:
                        f = partial(push, token, timeout=rng.choice((None, 0, 0.01, 0.2)))
                    else:
                        f = partial(push, token)
                    out, error, interrupted = self.attempt(f)
                    del f
                    if out:
                        m_pushed.append(token.n)
                    elif interrupted and not EXACT_MAIN:
                        m_maybe.append(token.n)
                    else:  # Full, or interrupted on native: not in the queue
                        m_failed.append(token.n)
                        if error not in (None, Full):
                            raise Violation(f"{t}: {where}: the main thread's push raised {error.__name__}")
                    del token
                    ops[t] += 1
                elif how < 0.75:
                    take = rng.choice(takes)
                    timeout = rng.choice((0, 0.001, 0.02, 0.1, 0.3))
                    out, error, interrupted = self.attempt(partial(take, timeout=timeout))
                    if out:
                        m_got.append(unwrap(out[0]).n)
                        if task_done is not None:
                            q.task_done()
                    elif interrupted:
                        interrupted_takes += 1
                    elif error is not Empty:
                        raise Violation(f"{t}: {where}: the main thread's take raised {error}")
                    del out
                    ops[t] += 1
                else:
                    self.side_step()
            stop.set()
            self.calm(partial(q.shutdown, immediate=immediate))
            self.join((producer, consumer))
        except BaseException:
            stop.set()
            q.shutdown(immediate=True)  # wakes the workers
            raise
        if soak.stop.is_set():
            return
        left = [] if immediate else drain(take_now)
        if task_done is not None:
            for _ in left:
                q.task_done()
        seen = w_got + m_got + left
        seen_set = set(seen)
        exact = set(w_pushed) | set(m_pushed)
        soak.expect(t, len(seen_set) == len(seen), f"{where}: items came out twice")
        soak.expect(t, seen_set <= exact | set(m_maybe), lambda: f"{where}: items came out that were never pushed "
                    f"(or whose push was interrupted before it went in, on native): "
                    f"{sorted(seen_set - exact - set(m_maybe))[:5]}")
        soak.expect(t, not (seen_set & (set(w_failed) | set(m_failed))),
                    lambda: f"{where}: items whose push failed (Full, ShutDown, or an interrupt on native) came out")
        allowance = 0 if EXACT_MAIN else interrupted_takes
        lost = exact - seen_set if not immediate else set()
        soak.expect(t, len(lost) <= allowance, lambda: f"{where}: {len(lost)} items pushed never came out "
                    f"({interrupted_takes} takes of the main thread were interrupted; allowed: {allowance}), "
                    f"e.g. {sorted(lost)[:5]}")
        if kind == "StdConcurrentQueue":
            unfinished = q.unfinished_tasks
            maybe_lost = len(set(m_maybe) - seen_set)
            soak.expect(t, len(lost) <= unfinished <= allowance and unfinished <= len(lost) + maybe_lost +
                        (allowance if immediate else 0),
                        lambda: f"{where}: unfinished_tasks {unfinished} at the end; items lost in an interrupted "
                        f"hand-over {len(lost)}, allowed {allowance}")
        check_order(m_got, t, f"{where} main thread")
        check_order(w_got, t, f"{where} consumer")
        queue_ref = weakref.ref(q)
        push = take = None  # the bound methods of the last step hold the queue
        del q, pushes, takes, take_now, task_done, push, take
        alive = still_alive(refs + w_refs + [queue_ref])
        soak.expect(t, not alive, lambda: f"{where}: {len(alive)} items still alive at the end (kept out of sight)")
        soak.add_ops(ops)
        soak.count(soak.notes, "interrupted takes", interrupted_takes)
        soak.count(soak.notes, "pushes maybe in (cffi)", len(m_maybe))
        soak.count(soak.notes, "values lost in an interrupted hand-over (cffi)", len(lost))
        soak.count(soak.lifecycles, ("main thread", kind))

    def gather_lifecycle(self, number):
        soak, rng = self.soak, self.rng
        t = "ConcurrentGatheringIterator"
        n_keys = rng.randint(1, 1500)
        g = ConcurrentGatheringIterator()
        local = rng.random() < 0.3
        it = (g.iterator_local if local else g.iterator)(n_keys - 1)
        base = soak.new_base()
        keys = list(range(n_keys))
        rng.shuffle(keys)
        refs, w_got, outcome = [], [], []
        ops = Counter()

        def slow_insert(soak_, g_, keys_, base_, refs_, rng_, ops_):
            for key in keys_:
                token = Token(base_ + key)
                refs_.append(weakref.ref(token))
                g_.insert(key, token)
                del token
                if rng_.random() < 0.05:
                    time.sleep(rng_.random() * 0.002)
            ops_[t] += len(keys_)

        inserter = soak.thread(f"main{number}-inserter", slow_insert, soak, g, keys, base, refs,
                               soak.rng(f"m{number}i"), ops)
        reader = soak.thread(f"main{number}-reader", read_values, it, base, w_got, outcome, ops) \
            if rng.random() < 0.5 else None
        m_got = []
        interrupted_takes = 0
        step = partial(next, it)
        del it
        soak.doing("main", lambda: f"main lifecycle {number} (gatherer, {n_keys} keys{', local' if local else ''}): "
                   f"the main thread got {len(m_got)} values ({interrupted_takes} next() calls interrupted), "
                   f"the reader thread {len(w_got) if reader else '-'} ({outcome}), the inserter "
                   f"{'is running' if inserter.is_alive() else 'is done'}")
        try:
            while not soak.stop.is_set():
                if rng.random() < 0.2:
                    self.side_step()
                    continue
                out, error, interrupted = self.attempt(step)
                self.ops[t] += 1
                if out:
                    m_got.append(unwrap(out[0]).n - base)
                elif interrupted:
                    interrupted_takes += 1
                elif error is None:
                    break  # the iterator is exhausted (map ended on StopIteration)
                else:
                    raise Violation(f"{t}: main lifecycle {number}: next() raised {error.__name__}")
                del out
            self.join([th for th in (inserter, reader) if th is not None])
        finally:
            stopped = soak.stop.is_set()
        if stopped:
            return
        where = f"main lifecycle {number} (gatherer, {n_keys} keys{', local' if local else ''}, " \
                f"{'shared with a reader thread' if reader else 'main thread alone'})"
        soak.expect(t, outcome in ([], ["done"]), f"{where}: the reader thread ended with {outcome}")
        for who, sequence in (("main thread", m_got), ("reader", w_got)):
            soak.expect(t, all(a < b for a, b in zip(sequence, sequence[1:])),
                        lambda: f"{where}: the {who} got keys out of order")
        union = m_got + w_got
        union_set = set(union)
        lost = set(range(n_keys)) - union_set
        allowance = 0 if EXACT_MAIN else interrupted_takes
        soak.expect(t, len(union) == len(union_set) and union_set <= set(range(n_keys)) and len(lost) <= allowance,
                    lambda: f"{where}: {len(lost)} keys never came out, {len(union) - len(union_set)} twice "
                    f"({interrupted_takes} interrupted next() calls, allowed {allowance})")
        del step
        gatherer_ref = weakref.ref(g)
        del g
        alive = still_alive(refs + [gatherer_ref])
        soak.expect(t, not alive, lambda: f"{where}: {len(alive)} values still alive at the end")
        soak.add_ops(ops)
        soak.count(soak.notes, "interrupted takes", interrupted_takes)
        soak.count(soak.notes, "values lost in an interrupted hand-over (cffi)", len(lost))
        soak.count(soak.lifecycles, ("main thread", t))


def interrupter(soak, main_ident, stop, sent):
    rng = soak.rng("interrupter")
    while not stop.wait(rng.uniform(0.0005, 0.03)):
        if hasattr(signal, "pthread_kill"):
            signal.pthread_kill(main_ident, signal.SIGINT)
        else:
            import _thread
            _thread.interrupt_main()
        sent[0] += 1


# ---- the arenas, the monitor, the report -----------------------------------------------

def arena(soak, name, lifecycle, stop_at):
    rng = soak.rng(name)
    number = 0
    while not soak.stop.is_set() and time.monotonic() < stop_at:
        number += 1
        lifecycle(soak, rng, number)
        soak.made_progress(name)


def monitor(soak, started, warmup_at, hang, quit_event, rss):
    last_report = started
    while not quit_event.wait(1.0):
        now = time.monotonic()
        if rss["start"] is None and now >= warmup_at:
            gc.collect()
            rss["start"] = read_rss()
        value = read_rss()
        if value is not None and rss["start"] is not None:
            rss["peak"] = max(rss["peak"] or 0, value)
        stalled = [f"{name} ({now - t:.0f} s)" for name, t in list(soak.progress.items()) if now - t > hang]
        if stalled:
            print(f"\nHANG: no progress in {', '.join(stalled)}; every thread's traceback follows", file=sys.stderr,
                  flush=True)
            for name, describe in list(soak.activity.items()):
                try:
                    print(f"  {name}: {describe()}", file=sys.stderr, flush=True)
                except Exception as exc:  # a description must not hide the tracebacks
                    print(f"  {name}: ({exc!r})", file=sys.stderr, flush=True)
            faulthandler.dump_traceback(all_threads=True)
            os._exit(3)
        # the backstop, should this thread itself be stuck
        faulthandler.dump_traceback_later(hang + 60, exit=True)
        if soak.args.progress and now - last_report >= soak.args.progress:
            last_report = now
            with soak.lock:
                total = sum(soak.ops.values())
                checks = sum(soak.checks.values())
            mib = f", RSS {value / MIB:.1f} MiB" if value else ""
            print(f"  {now - started:6.0f} s: {total:,} operations, {checks:,} checks passed{mib}", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60, help="how long the arenas run (default 60)")
    parser.add_argument("--threads", type=int, default=12, help="worker threads (default 12; see the report)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random choices (default: from the clock)")
    parser.add_argument("--items", type=int, default=2000, help="most items per producer per lifecycle")
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds before the first RSS figure (default: a tenth of the run, 3 to 60 s; "
                        "on PyPy a third, 10 to 120 s, as its JIT keeps compiling for a minute or so)")
    parser.add_argument("--rss-bound", type=float, default=None,
                        help="MiB the RSS may grow after the warm-up (default 8; on PyPy 16)")
    parser.add_argument("--hang", type=float, default=120.0, help="seconds without progress that count as a hang")
    parser.add_argument("--progress", type=float, default=60.0, help="seconds between progress lines (0: none)")
    parser.add_argument("--no-interrupts", action="store_true", help="do not send SIGINT to the main thread")
    parser.add_argument("--inject", choices=("drop", "duplicate", "leak", "counter", "dict", "memory"),
                        help="the soak's self-test: break one invariant on purpose (it must then fail)")
    args = parser.parse_args()
    if args.seed is None:
        args.seed = int(time.time() * 1000) % 1000000
    if args.threads < 4:
        parser.error("--threads must be at least 4")
    if args.warmup is None:
        args.warmup = min(120.0, max(10.0, args.seconds / 3)) if IS_PYPY else min(60.0, max(3.0, args.seconds / 10))
    warmup = args.warmup
    if args.rss_bound is None:
        args.rss_bound = 16.0 if IS_PYPY else 8.0
    soak = Soak(args)
    soak.leaked = None
    faulthandler.enable()
    if GIL_ENABLED:
        sys.setswitchinterval(1e-4)  # interleave the threads often under a GIL

    gil = "GIL enabled" if GIL_ENABLED else "free-threaded, GIL disabled"
    print(f"ft_utils soak: backend {ft_utils.backend}, {platform.python_implementation()} "
          f"{platform.python_version()} ({gil}), {args.seconds:g} s, seed {args.seed}", flush=True)
    print(f"  threads: {soak.mixers} mixers; per lifecycle {soak.share} in each of the ConcurrentQueue, "
          f"StdConcurrentQueue and gatherer arenas (+ a joiner); 2 beside the main thread; "
          f"4 arena drivers, the interrupter, the monitor", flush=True)

    started = time.monotonic()
    stop_at = started + args.seconds
    rss = {"start": None, "peak": None}
    for name in ("ConcurrentQueue", "StdConcurrentQueue", "ConcurrentGatheringIterator", "mixers", "main"):
        soak.made_progress(name)
    quit_monitor = threading.Event()
    monitor_thread = threading.Thread(target=monitor, args=(soak, started, started + warmup, args.hang,
                                                            quit_monitor, rss), daemon=True)
    monitor_thread.start()
    drivers = [soak.thread(f"{name} arena", arena, soak, name, lifecycle, stop_at) for name, lifecycle in (
        ("ConcurrentQueue", cq_lifecycle), ("StdConcurrentQueue", sq_lifecycle),
        ("ConcurrentGatheringIterator", gather_lifecycle))]
    shared = Shared(soak.rng("shared"))
    drivers.append(soak.thread("mixer arena", mixer_arena, soak, shared, stop_at))

    main_thread = MainThread(soak, shared)
    old_handler = signal.signal(signal.SIGINT, main_thread.on_sigint)
    stop_interrupts = threading.Event()
    sent = [0]
    if not args.no_interrupts:
        interrupter_thread = threading.Thread(target=interrupter, args=(soak, threading.get_ident(),
                                                                        stop_interrupts, sent), daemon=True)
        interrupter_thread.start()
    ballast = []
    number = 0
    try:
        while not soak.stop.is_set() and time.monotonic() < stop_at:
            number += 1
            main_thread.lifecycle(number)
            if args.inject == "memory":
                # the soak's self-test: a leak of 1 MiB per lifecycle and at least 4 bounds' worth
                # per second after the warm-up, so that it outgrows whatever the run itself frees
                # meanwhile (lifecycles can be few and slow)
                owed = max(len(ballast) + 1, int(4 * args.rss_bound * (time.monotonic() - started - warmup)))
                while len(ballast) < owed:
                    ballast.append(b"\x01" * MIB)
    except BaseException as exc:  # noqa: B036 - reported as a failure
        soak.fail("the main thread", exc)
    stop_interrupts.set()
    if not args.no_interrupts:
        interrupter_thread.join()
    signal.signal(signal.SIGINT, old_handler)
    deadline = time.monotonic() + args.hang + 30  # the monitor reports a hang before that
    for t in drivers:
        t.join(max(0.0, deadline - time.monotonic()))
    still = [t.name for t in drivers if t.is_alive()]
    if still:
        soak.failures.append(f"arena drivers still running {args.hang + 30:.0f} s after the end: {still}")
    for t in getattr(soak, "mixer_threads", []):
        t.join(10)
    quit_monitor.set()
    monitor_thread.join()
    faulthandler.cancel_dump_traceback_later()
    elapsed = time.monotonic() - started
    soak.leaked = None
    gc.collect()
    gc.collect()
    rss_end = read_rss()

    print(f"\n  {'type':<30}{'operations':>16}{'checks passed':>16}")
    for name in TYPES:
        print(f"  {name:<30}{soak.ops[name]:>16,}{soak.checks[name]:>16,}")
    print(f"  {'total':<30}{sum(soak.ops.values()):>16,}{sum(soak.checks.values()):>16,}")
    per_kind = Counter()
    for (kind, how), n in soak.lifecycles.items():
        per_kind[kind] += n
    print("\n  lifecycles: " + "; ".join(
        f"{kind} {per_kind[kind]:,} ({', '.join(f'{how} {n:,}' for (k, how), n in sorted(soak.lifecycles.items()) if k == kind)})"
        for kind in per_kind))
    swallowed = main_thread.raised - main_thread.caught
    print(f"  main thread: {sent[0]:,} SIGINT sent; {main_thread.raised:,} KeyboardInterrupts raised inside its "
          f"operations, {main_thread.caught:,} caught there"
          f"{f' ({swallowed} raised in a weakref callback or finalizer the collector ran, where the interpreter ignores them)' if swallowed else ''}"
          f", {main_thread.landed_outside:,} SIGINTs landed between operations"
          f"{f', {main_thread.in_import_machinery:,} in the import machinery (not raised)' if main_thread.in_import_machinery else ''}; "
          + ", ".join(f"{key} {n:,}" for key, n in sorted(soak.notes.items())))
    rss_status = "not measured (no /proc/self/statm)"
    if rss_end is not None and rss["start"] is None:
        rss_status = f"not measured: the run ended before the warm-up ({warmup:g} s); end {rss_end / MIB:.1f} MiB"
    elif rss_end is not None:
        growth = (rss_end - rss["start"]) / MIB
        rss_status = (f"after the warm-up ({warmup:g} s) {rss['start'] / MIB:.1f} MiB, at the end {rss_end / MIB:.1f} "
                      f"MiB (growth {growth:+.1f} MiB, bound {args.rss_bound:g} MiB; peak meanwhile "
                      f"{(rss['peak'] or 0) / MIB:.1f} MiB)")
        if growth > args.rss_bound:
            soak.failures.append(f"VIOLATION: RSS grew by {growth:.1f} MiB after the warm-up, more than "
                                 f"{args.rss_bound:g} MiB")
        else:
            soak.checks["RSS"] += 1
    print(f"  RSS: {rss_status}")
    print(f"  {elapsed:.0f} s in all")
    passed = sum(soak.checks.values())
    if soak.failures:
        print("\nFAILED:", file=sys.stderr)
        for text in soak.failures:
            print(text, file=sys.stderr)
    print(f"soak: {passed} passed, {len(soak.failures)} failed", flush=True)
    sys.stderr.flush()
    # Threads of a failed run may still be blocked; do not wait for them at exit.
    os._exit(1 if soak.failures else 0)


if __name__ == "__main__":
    main()
