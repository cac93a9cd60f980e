"""Every public operation of every type, with allocations failing in turn, on every
interpreter and backend, through two injectors:

- "core": the C core's own allocations (queue segments, the gatherer's table) fail, through
  its testing aid ``ftu_fail_allocations``;
- "interpreter": the interpreter's allocations fail (objects, ints, dicts, frames, cells,
  wrapper types; not the core's, which uses malloc), through ``_testcapi.set_nomemory``
  where the interpreter has it (CPython 3.11 and 3.13t; PyPy has no set_nomemory: skipped).

For n = 0, 1, 2, ... an operation runs with the allocations from the n-th on failing,
until it succeeds (at most LIMIT). Each attempt must succeed or raise MemoryError.
Afterwards the object must match a model of its contents (size, contents, order,
counters): unchanged after a MemoryError (nothing half done, nothing lost), changed as the
operation says after a success. That picture is taken from another thread, so a lock left
held by the failed call shows as a hang. The next operation on a new object must work.
Then the object is dropped and every object that went through it must be back to the
reference count it had before (none kept, none released too often), where the
interpreter counts references: counted before the object is made and after it and the
result are gone, with the MemoryError's traceback and chained exceptions released first
(they hold the call's frames, whose locals hold the objects), and the cycle collector run
if the counts differ (an object holding itself).

Only the operation itself runs with allocations failing (`attempt`): never the test's own
code, nor pytest's. The interpreter's hooks are removed in a `finally` by a C function
(it cannot fail for want of memory), and once more when the module ends. set_nomemory
makes every thread's allocations fail: the attempts run with no other Python thread
alive (checked), and pytest-timeout's method here is a signal (SIGALRM), not a thread;
faulthandler's watchdog thread only sleeps until its timeout.

What the interpreters themselves do wrong with allocations failing, and how the cases
keep clear of it (each seen here, reproduced without ft_utils):
- CPython 3.13t: PyList_New(n > 0) releases a half-made list when its item array cannot
  be allocated (a crash: it reads the stale items of a list from the free list). A list
  display ([x]) calls it, so no operation here builds a list display; the native
  ConcurrentDict no longer calls PyDict_Keys/Values/Items on 3.13 (they call it).
- CPython 3.11: a call that cannot make its function's closure cells keeps its
  arguments (a leak): no operation here is a closure over the test's objects, and the
  cffi backend's take and wait paths use functools.partial instead of lambdas.
- CPython 3.11: list((x,)) leaks the tuple when the list cannot grow.
- CPython 3.11: with memory gone for good, unwinding to an exception handler past the
  256th code unit of a function spins for ever (see FAILING_RUN).

FT_UTILS_ALLOC_REPORT=path appends one line per case: interpreter, backend, injector,
case, n: the number of allocations the operation made before it succeeded (each of which
was made to fail in turn).
"""

import gc
import itertools
import operator
import os
import sys
import threading
from dataclasses import dataclass
from functools import partial
from typing import Callable

import pytest

COUNTS_REFERENCES = sys.implementation.name == "cpython"
# More allocations than any one operation here makes (the most: ConcurrentDict.update of 100
# keys, 1029 on the cffi backend on CPython 3.11, about 10 per key: tickets, the (key, value)
# pair, the lookup's results; see FT_UTILS_ALLOC_REPORT).
LIMIT = 2000
SEGMENT = 1021  # items that fill a new queue's first core segment: the next push allocates
STATE_TIMEOUT = 30  # seconds: the picture of the contents, from another thread

_testcapi = None
if sys.implementation.name == "cpython":  # PyPy's _testcapi is built from C sources on import, if at all
    try:
        import _testcapi
    except ImportError:  # a CPython built without its test modules
        pass


@dataclass(frozen=True)
class Injector:
    start: Callable  # start(n): from now on, allocations from the n-th (0-based) fail
    stop: Callable  # stop(): allocations work again. A C function: it cannot fail itself.


def core_injector(backend):
    """The C core's allocations fail."""
    if backend.__name__.endswith("_native"):
        fail = backend._fail_core_allocations
    else:
        from ft_utils.cffi_backend._api import lib

        fail = lib.ftu_fail_allocations
    return Injector(fail, partial(fail, -1))


# How many allocations fail from the n-th on: more than any operation here makes after
# its n-th, so a success means the operation made no more than n (or recovered from each
# failure), and yet finite. With memory gone for good, CPython 3.11 spins for ever
# unwinding to an exception handler whose position it must box as an int that it cannot
# allocate (`raise` in any `except` past the 256th code unit of a function loops at 100%
# CPU: seen in ConcurrentGatheringIterator.insert on the cffi backend); each turn of that
# loop uses one failure, so a bounded run of failures ends it.
FAILING_RUN = 2000


def interpreter_injector():
    """The interpreter's allocations (PyMem_RawMalloc, PyMem_Malloc, PyObject_Malloc and
    their calloc/realloc) fail from the n-th on, FAILING_RUN of them:
    set_nomemory(n, n + FAILING_RUN) lets the next n through."""
    if _testcapi is None or not hasattr(_testcapi, "set_nomemory"):
        pytest.skip(f"{sys.implementation.name} {sys.version.split()[0]} has no _testcapi.set_nomemory: "
                    "interpreter allocations cannot be made to fail here (core allocations still are)")
    return Injector(_failing_run, _testcapi.remove_mem_hooks)


def _failing_run(n):
    _testcapi.set_nomemory(n, n + FAILING_RUN)


INJECTORS = {"core": core_injector, "interpreter": lambda backend: interpreter_injector()}


@pytest.fixture(scope="module", autouse=True)
def _tickets_past_the_small_ints():
    """The cffi backend's tickets (ints) count up from 1; CPython keeps the ints up to 256
    made in advance, so while the count is low, making a ticket's int allocates nothing,
    and a MemoryError there is never tried. A long-running program is past them: so are
    these tests."""
    try:
        from ft_utils.cffi_backend._blocking import TICKETS
    except ImportError:  # no cffi backend here
        return
    for _ in range(300):
        next(TICKETS)


@pytest.fixture(scope="module", autouse=True)
def _hooks_removed():
    """However the module ends, the interpreter's allocators are the real ones again."""
    yield
    if _testcapi is not None and hasattr(_testcapi, "remove_mem_hooks"):
        _testcapi.remove_mem_hooks()


class Item:
    """An object handed to a container, with a recognisable value."""

    __slots__ = ("n", "__weakref__")

    def __init__(self, n):
        self.n = n

    def __repr__(self):
        return f"Item({self.n})"


# Special methods that decide which wrapper type a LocalWrapper gets (its "profile").
_PROFILE_METHODS = {
    "__len__": lambda self: 1, "__iter__": lambda self: iter(()), "__contains__": lambda self, x: False,
    "__neg__": lambda self: self, "__pos__": lambda self: self, "__abs__": lambda self: self,
    "__invert__": lambda self: self, "__int__": lambda self: 0, "__float__": lambda self: 0.0,
    "__index__": lambda self: 0, "__round__": lambda self, n=None: 0, "__trunc__": lambda self: 0,
    "__floor__": lambda self: 0, "__ceil__": lambda self: 0, "__bytes__": lambda self: b"",
    "__complex__": lambda self: 0j, "__reversed__": lambda self: iter(()),
}
_kinds = itertools.count(1)


def fresh_item_class():
    """A subclass of Item with a set of special methods that no class in this process had
    before: the first LocalWrapper of one of its objects makes a new wrapper type (which
    allocates a lot), on both backends."""
    k = next(_kinds)
    names = [name for i, name in enumerate(_PROFILE_METHODS) if k >> i & 1]
    return type(f"Kind{k}", (Item,), {"__slots__": (), **{name: _PROFILE_METHODS[name] for name in names}})


@dataclass
class Case:
    setup: Callable  # (backend, items) -> obj, filled with the items
    op: Callable  # (obj, new) -> result; new is an Item the operation may store
    state: Callable  # obj -> a comparable picture of the contents (with allocations working)
    expect: Callable  # (state before, new, result) -> the state after a success
    kept_on_error: bool = False  # documented: a MemoryError after the change keeps it
    items: int = 3
    check: Callable = None  # (obj, items, new, succeeded, result): instead of state/expect
    model: Callable = None  # items -> the state before, without touching the object
    fresh: bool = False  # items of a class never wrapped before (see fresh_item_class)
    result: Callable = None  # (result, items, new) -> None: asserts about a success's result
    partial: Callable = None  # (before, now, new) -> whether now is a documented part-done state


# ---- pictures of the contents ------------------------------------------------------------


def queue_state(q):
    """(item numbers in order, unfinished tasks or None): taken out and put back, the
    counters as they were."""
    std = hasattr(q, "qsize")
    take, put = (q.get, q.put) if std else (q.pop, q.push)
    size = q.qsize() if std else q.size()
    unfinished = q.unfinished_tasks if std else None
    items = []
    while q.qsize() if std else q.size():
        items.append(take(timeout=0))
    assert len(items) == size, f"size() said {size}, the queue held {len(items)}"
    for item in items:
        put(item)
    if std:
        for _ in items:
            q.task_done()
        assert q.unfinished_tasks == unfinished
    return [item.n for item in items], unfinished


def fill_queue(make):
    def setup(backend, items):
        q = make(backend)
        put = getattr(q, "push", None) or q.put
        for item in items:
            put(item)
        return q

    return setup


def fill_dict(backend, items):
    d = backend.ConcurrentDict(4)
    for item in items:
        d[item.n] = item
    return d


def dict_state(d):
    return sorted((k, v.n) for k, v in d.as_dict().items()), len(d)


def fill_gatherer(backend, items):
    g = backend.ConcurrentGatheringIterator()
    for item in items:
        g.insert(item.n, item)  # keys 0 .. len(items) - 1; the operation inserts the next
    return g


def gatherer_check(g, items, new, succeeded, result):
    """A pass over every key gives the items, then new if the insert succeeded. An insert
    that failed (MemoryError included) marks the gatherer failed, as documented: its
    passes raise RuntimeError instead of waiting for a value that cannot come."""
    last = len(items)
    if succeeded:
        got = [v.n for v in g.iterator(last)]
        assert got == [item.n for item in items] + [new.n], got
    else:
        with pytest.raises(RuntimeError, match="failed"):
            list(g.iterator(last))


def gatherer_next_check(g, items, new, succeeded, result):
    """next() of a pass with clear=True took the first value, or took nothing: a pass
    over the rest (after putting the first back if it was taken) gives every item."""
    if succeeded:
        got = result.wrapped if hasattr(type(result), "wrapped") else result
        assert got is items[0], got
        g.insert(0, items[0])
    got = [v.n for v in g.iterator(len(items) - 1)]
    assert got == [item.n for item in items], got


def gatherer_keep_check(g, items, new, succeeded, result):
    """next() of a pass with clear=False takes nothing away."""
    if succeeded:
        got = result.wrapped if hasattr(type(result), "wrapped") else result
        assert got is items[0], got
    got = [v.n for v in g.iterator(len(items) - 1)]
    assert got == [item.n for item in items], got


def gatherer_untouched_check(g, items, new, succeeded, result):
    """Making a pass takes nothing."""
    got = [v.n for v in g.iterator(len(items) - 1)]
    assert got == [item.n for item in items], got


def _is(result, expected):
    assert result is expected, result


def unchanged(before, new, result):
    return before


def number(value):
    return lambda before, new, result: value


CASES = {}


# ---- constructors ----------------------------------------------------------------------------


def constructor(name, make, result=None):
    CASES[name] = Case(lambda b, items: b, lambda b, new: make(b, new), lambda b: None, unchanged, items=0,
                       result=result)


constructor("AtomicInt64()", lambda b, new: b.AtomicInt64(1 << 40))
constructor("AtomicReference()", lambda b, new: b.AtomicReference(new))
constructor("AtomicFlag()", lambda b, new: b.AtomicFlag(True))
constructor("ConcurrentQueue()", lambda b, new: b.ConcurrentQueue())
constructor("ConcurrentQueue(lock_free=True)", lambda b, new: b.ConcurrentQueue(lock_free=True))
constructor("StdConcurrentQueue(5)", lambda b, new: b.StdConcurrentQueue(5))
constructor("ConcurrentGatheringIterator()", lambda b, new: b.ConcurrentGatheringIterator())
constructor("ConcurrentDict(4)", lambda b, new: b.ConcurrentDict(4))
# The list is made before: list((new,)) under failing allocations leaks the tuple on
# CPython 3.11 (list_extend forgets the PySequence_Fast reference when it cannot grow).
CASES["LocalWrapper(list)"] = Case(lambda b, items: (b, list(items)), lambda o, new: o[0].LocalWrapper(o[1]),
                                   lambda o: None, unchanged, items=1,
                                   result=lambda result, items, new: _is(result[0], items[0]))


def wraps_new(result, items, new):
    """The wrapper has the protocols of what it wraps, even if making its type failed
    before (a wrong answer must not have been kept)."""
    assert result.wrapped is new
    has = {name for name in _PROFILE_METHODS if hasattr(type(new), name)}
    assert {name for name in _PROFILE_METHODS if hasattr(type(result), name)} == has


CASES["LocalWrapper(a new kind of object)"] = Case(
    lambda b, items: b, lambda b, new: b.LocalWrapper(new), lambda b: None, unchanged, items=0, fresh=True,
    result=wraps_new)

# ---- AtomicInt64, AtomicFlag, AtomicReference ------------------------------------------------

BIG = 1 << 40  # not a cached small int: reading and boxing it allocates
for name, op, after in [
    ("AtomicInt64.get", lambda x, new: x.get(), BIG),
    ("AtomicInt64.set", lambda x, new: x.set(BIG + 1), BIG + 1),
    ("AtomicInt64.incr", lambda x, new: x.incr(), BIG + 1),
    ("AtomicInt64.decr", lambda x, new: x.decr(), BIG - 1),
    ("AtomicInt64.add", lambda x, new: x.add(BIG), 2 * BIG),
    ("AtomicInt64.exchange", lambda x, new: x.exchange(BIG + 5), BIG + 5),
    ("AtomicInt64.compare_exchange", lambda x, new: x.compare_exchange(BIG, BIG + 7), BIG + 7),
    ("AtomicInt64 +=", lambda x, new: x.__iadd__(BIG), 2 * BIG),
    ("AtomicInt64 -=", lambda x, new: x.__isub__(3), BIG - 3),
    ("AtomicInt64 *=", lambda x, new: x.__imul__(3), 3 * BIG),
    ("AtomicInt64 //=", lambda x, new: x.__ifloordiv__(3), BIG // 3),
    ("AtomicInt64 %=", lambda x, new: x.__imod__(1000), BIG % 1000),
    ("AtomicInt64 **=", lambda x, new: x.__ipow__(1), BIG),
    ("AtomicInt64 <<=", lambda x, new: x.__ilshift__(2), BIG << 2),
    ("AtomicInt64 >>=", lambda x, new: x.__irshift__(2), BIG >> 2),
    ("AtomicInt64 &=", lambda x, new: x.__iand__(BIG | 1), BIG),
    ("AtomicInt64 |=", lambda x, new: x.__ior__(1), BIG | 1),
    ("AtomicInt64 ^=", lambda x, new: x.__ixor__(3), BIG ^ 3),
    ("AtomicInt64 + 1", lambda x, new: x + 1, BIG),
    ("AtomicInt64 divmod", lambda x, new: divmod(x, 7), BIG),
    ("AtomicInt64 int()", lambda x, new: int(x), BIG),
    ("AtomicInt64 float()", lambda x, new: float(x), BIG),
    ("AtomicInt64 format", lambda x, new: f"{x:,}", BIG),
    ("AtomicInt64 repr", lambda x, new: repr(x), BIG),
    ("AtomicInt64 <", lambda x, new: x < BIG + 1, BIG),
    ("AtomicInt64.__reduce__", lambda x, new: x.__reduce__(), BIG),
    ("AtomicInt64.__setstate__", lambda x, new: x.__setstate__((BIG + 9, None)), BIG + 9),
]:
    # A read-modify-write that returns an int and cannot box it: the change is made (as
    # documented), only the result is lost. The others (set, compare_exchange, the in-place
    # operators) either change nothing or change it all.
    writes_first = name in ("AtomicInt64.incr", "AtomicInt64.decr", "AtomicInt64.add", "AtomicInt64.exchange")
    CASES[name] = Case(lambda b, items: b.AtomicInt64(BIG), op, lambda x: x.get(), number(after),
                       kept_on_error=writes_first, items=0)

CASES["AtomicFlag.set"] = Case(lambda b, items: b.AtomicFlag(False), lambda f, new: f.set(True), bool,
                               lambda before, new, result: True, items=0)
CASES["AtomicFlag bool"] = Case(lambda b, items: b.AtomicFlag(True), lambda f, new: bool(f), bool,
                                unchanged, items=0)
CASES["AtomicFlag.__setstate__"] = Case(lambda b, items: b.AtomicFlag(False),
                                        lambda f, new: f.__setstate__((True, None)), bool,
                                        lambda before, new, result: True, items=0)


def reference_state(r):
    return r.get().n


def sets_reference(before, new, result):
    return new.n


for name, op, after in [
    ("AtomicReference.get", lambda r, new: r.get(), unchanged),
    ("AtomicReference.set", lambda r, new: r.set(new), sets_reference),
    ("AtomicReference.exchange", lambda r, new: r.exchange(new), sets_reference),
    ("AtomicReference.compare_exchange", lambda r, new: r.compare_exchange(r.get(), new), sets_reference),
    ("AtomicReference.__setstate__", lambda r, new: r.__setstate__((new, None)), sets_reference),
    ("AtomicReference.__reduce__", lambda r, new: r.__reduce__(), unchanged),
]:
    CASES[name] = Case(lambda b, items: b.AtomicReference(items[0]), op, reference_state, after, items=1)
CASES["AtomicReference repr (of a list)"] = Case(lambda b, items: b.AtomicReference(list(items)),
                                                lambda r, new: repr(r), lambda r: [x.n for x in r.get()], unchanged)
CASES["AtomicReference repr (of itself)"] = Case(lambda b, items: _holding_itself(b.AtomicReference(items[0])),
                                                 lambda r, new: repr(r), lambda r: r.get() is r, unchanged, items=1)


def _holding_itself(r):
    r.set(r)
    return r

# ---- queues ------------------------------------------------------------------------------------

from ft_utils._exceptions import Empty, ShutDown  # noqa: E402

QUEUES = {
    "ConcurrentQueue": (lambda b: b.ConcurrentQueue(), "push", "pop"),
    "ConcurrentQueue(lock_free=True)": (lambda b: b.ConcurrentQueue(lock_free=True), "push", "pop"),
    "StdConcurrentQueue": (lambda b: b.StdConcurrentQueue(), "put", "get"),
    "StdConcurrentQueue(maxsize)": (lambda b: b.StdConcurrentQueue(10 * SEGMENT), "put", "get"),
}


def unwrapped(result):
    return result.wrapped if hasattr(type(result), "wrapped") else result


def pushed(before, new, result):
    items, unfinished = before
    return items + [new.n], None if unfinished is None else unfinished + 1


def popped(before, new, result):
    items, unfinished = before
    assert unwrapped(result).n == items[0], f"popped {result!r}, the head was {items[0]}"
    return items[1:], unfinished


def popped_and_done(before, new, result):
    items, unfinished = popped(before, new, result)
    return items, unfinished - 1


def call(method, *args, **kwargs):
    return lambda obj, new: getattr(obj, method)(*args, **kwargs)


def call_new(method):
    return lambda obj, new: getattr(obj, method)(new)


def queue_model(items, std, skip=0):
    return [item.n for item in items[skip:]], len(items) if std else None


def past_first_segment(make, pop):
    """A queue whose next pop takes the last word of its first segment (and moves the head
    to the second one)."""
    def setup(backend, items):
        q = fill_queue(make)(backend, items)
        for _ in range(SEGMENT):
            getattr(q, pop)()
        return q

    return setup


def all_done(make):
    def setup(backend, items):
        q = fill_queue(make)(backend, items)
        for _ in items:
            q.task_done()
        return q

    return setup


def shut_state(q):
    """(shut down?, what a consumer can still take): destructive, for after the operation."""
    shut = "shut down" in repr(q)
    take = getattr(q, "pop", None) or q.get
    items = []
    while True:
        try:
            items.append(take(timeout=0).n)
        except (Empty, ShutDown):
            return shut, items


def shut_model(items):
    return False, [item.n for item in items]


def shut(immediate):
    return lambda before, new, result: (True, [] if immediate else before[1])


def get_and_done(q, new):
    item = q.get()
    q.task_done()
    return item


for kind, (make, push, pop) in QUEUES.items():
    std = push == "put"
    model = partial(queue_model, std=std)
    CASES[f"{kind}.{push}"] = Case(fill_queue(make), call_new(push), queue_state, pushed)
    CASES[f"{kind}.{push} into a new segment"] = Case(
        fill_queue(make), call_new(push), queue_state, pushed, items=SEGMENT, model=model)
    CASES[f"{kind}.{pop}"] = Case(fill_queue(make), call(pop), queue_state, popped)
    CASES[f"{kind}.{pop}(timeout=1)"] = Case(fill_queue(make), call(pop, timeout=1), queue_state, popped)
    CASES[f"{kind}.{pop}, the last of a segment"] = Case(
        past_first_segment(make, pop), call(pop), queue_state, popped, items=SEGMENT + 3,
        model=partial(queue_model, std=std, skip=SEGMENT))
    CASES[f"{kind}.shutdown()"] = Case(fill_queue(make), call("shutdown"), shut_state, shut(False),
                                       model=shut_model)
    CASES[f"{kind}.shutdown(immediate=True)"] = Case(fill_queue(make), call("shutdown", immediate=True),
                                                     shut_state, shut(True), model=shut_model,
                                                     kept_on_error=True)
    if not std:
        CASES[f"{kind}.pop_local"] = Case(fill_queue(make), call("pop_local"), queue_state, popped, fresh=True)
        CASES[f"{kind}.pop_local(timeout=1)"] = Case(fill_queue(make), call("pop_local", timeout=1), queue_state,
                                                     popped, fresh=True)
        CASES[f"{kind}.size"] = Case(fill_queue(make), call("size"), queue_state, unchanged)
        CASES[f"{kind}.empty"] = Case(fill_queue(make), call("empty"), queue_state, unchanged)
        CASES[f"{kind} repr"] = Case(fill_queue(make), lambda q, new: repr(q), queue_state, unchanged)
    else:
        CASES[f"{kind}.get + task_done"] = Case(fill_queue(make), get_and_done, queue_state, popped_and_done)
        CASES[f"{kind}.get_nowait"] = Case(fill_queue(make), call("get_nowait"), queue_state, popped)
        CASES[f"{kind}.put_nowait"] = Case(fill_queue(make), call_new("put_nowait"), queue_state, pushed)
        CASES[f"{kind}.qsize"] = Case(fill_queue(make), call("qsize"), queue_state, unchanged)
        CASES[f"{kind}.full"] = Case(fill_queue(make), call("full"), queue_state, unchanged)
        CASES[f"{kind}.unfinished_tasks"] = Case(fill_queue(make), lambda q, new: q.unfinished_tasks, queue_state,
                                                 unchanged)
        CASES[f"{kind}.join"] = Case(all_done(make), call("join"), queue_state, unchanged)
        CASES[f"{kind} repr"] = Case(fill_queue(make), lambda q, new: repr(q), queue_state, unchanged)

CASES["StdConcurrentQueue.maxsize = (bounding)"] = Case(
    fill_queue(QUEUES["StdConcurrentQueue"][0]), lambda q, new: setattr(q, "maxsize", BIG),
    lambda q: (queue_state(q), q.maxsize, q.full()), lambda before, new, result: (before[0], BIG, False))

# ---- ConcurrentGatheringIterator ------------------------------------------------------------

CASES["ConcurrentGatheringIterator.insert"] = Case(
    fill_gatherer, lambda g, new: g.insert(3, new), None, None, check=gatherer_check)
CASES["ConcurrentGatheringIterator.insert (growth)"] = Case(
    fill_gatherer, lambda g, new: g.insert(192, new), None, None, check=gatherer_check, items=192)
CASES["ConcurrentGatheringIterator.iterator()"] = Case(
    fill_gatherer, lambda g, new: g.iterator(2), None, None, check=gatherer_untouched_check)
CASES["ConcurrentGatheringIterator.iterator_local()"] = Case(
    fill_gatherer, lambda g, new: g.iterator_local(2), None, None, check=gatherer_untouched_check)
CASES["ConcurrentGatheringIterator next()"] = Case(
    fill_gatherer, lambda g, new: next(g.iterator(2)), None, None, check=gatherer_next_check)
CASES["ConcurrentGatheringIterator next(), clear=False"] = Case(
    fill_gatherer, lambda g, new: next(g.iterator(2, clear=False)), None, None, check=gatherer_keep_check)
CASES["ConcurrentGatheringIterator iterator_local next()"] = Case(
    fill_gatherer, lambda g, new: next(g.iterator_local(2)), None, None, check=gatherer_next_check, fresh=True)
CASES["ConcurrentGatheringIterator iterator_local next(), clear=False"] = Case(
    fill_gatherer, lambda g, new: next(g.iterator_local(2, clear=False)), None, None, check=gatherer_keep_check,
    fresh=True)


# ---- ConcurrentDict ---------------------------------------------------------------------------


def dict_set(*keys):
    def expect(before, new, result):
        pairs, _ = before
        after = sorted((dict(pairs) | {key: new.n for key in keys}).items())
        return after, len(after)

    return expect


def dict_without(key):
    def expect(before, new, result):
        pairs, size = before
        return [kv for kv in pairs if kv[0] != key], size - 1

    return expect


def cleared(before, new, result):
    return [], 0


def _keyword_dict(backend, items):
    d = backend.ConcurrentDict(4)
    for item in items:
        d[f"k{item.n}"] = item
    return d


def _keyword_state(d):
    return sorted((k, v.n) for k, v in d.as_dict().items())


def _concurrent_dict_like(d, new):
    other = type(d)(2)
    other[700] = new
    other[701] = new
    return other


CASES["ConcurrentDict[k]"] = Case(fill_dict, lambda d, new: d[1], dict_state, unchanged)
CASES["ConcurrentDict.get"] = Case(fill_dict, lambda d, new: d.get(1), dict_state, unchanged)
CASES["ConcurrentDict.get (missing, default)"] = Case(fill_dict, lambda d, new: d.get(BIG, new), dict_state,
                                                      unchanged)
CASES["ConcurrentDict in"] = Case(fill_dict, lambda d, new: BIG in d, dict_state, unchanged)
CASES["ConcurrentDict len"] = Case(fill_dict, lambda d, new: len(d), dict_state, unchanged)
CASES["ConcurrentDict[k] = v (new key)"] = Case(fill_dict, lambda d, new: d.__setitem__(1000, new), dict_state,
                                                dict_set(1000))
CASES["ConcurrentDict[k] = v (new big key)"] = Case(fill_dict, lambda d, new: d.__setitem__(BIG + 3, new),
                                                    dict_state, dict_set(BIG + 3))
CASES["ConcurrentDict[k] = v (replace)"] = Case(fill_dict, lambda d, new: d.__setitem__(1, new), dict_state,
                                                dict_set(1))
CASES["ConcurrentDict[k] = v (growth)"] = Case(fill_dict, lambda d, new: d.__setitem__(1000, new), dict_state,
                                               dict_set(1000), items=300)
CASES["ConcurrentDict.setdefault (new key)"] = Case(fill_dict, lambda d, new: d.setdefault(1000, new), dict_state,
                                                    dict_set(1000))
CASES["ConcurrentDict.setdefault (present)"] = Case(fill_dict, lambda d, new: d.setdefault(1, new), dict_state,
                                                    unchanged)
CASES["ConcurrentDict.compare_and_set"] = Case(fill_dict, lambda d, new: d.compare_and_set(1, d[1], new),
                                               dict_state, dict_set(1))
CASES["ConcurrentDict.pop"] = Case(fill_dict, lambda d, new: d.pop(1), dict_state, dict_without(1),
                                   result=lambda result, items, new: _is(result, items[1]))
CASES["ConcurrentDict.pop (missing, default)"] = Case(fill_dict, lambda d, new: d.pop(BIG, new), dict_state,
                                                      unchanged)
CASES["ConcurrentDict del"] = Case(fill_dict, lambda d, new: d.__delitem__(1), dict_state, dict_without(1))
CASES["ConcurrentDict.compare_and_delete"] = Case(fill_dict, lambda d, new: d.compare_and_delete(1, d[1]),
                                                  dict_state, dict_without(1))
def some_set(*keys):
    """update is not atomic (documented): a MemoryError may leave some of its pairs stored,
    never anything else."""
    def partial(before, now, new):
        pairs, _ = now
        return set(before[0]) <= set(pairs) and all(k in keys and v == new.n for k, v in set(pairs) - set(before[0])) \
            and now[1] == len(pairs)

    return partial


def some_removed(before, now, new):
    """clear is not atomic (documented): a MemoryError may leave some of the pairs there."""
    pairs, size = now
    return set(pairs) <= set(before[0]) and size == len(pairs)


CASES["ConcurrentDict.update"] = Case(fill_dict, lambda d, new: d.update(dict.fromkeys(range(500, 600), new)),
                                      dict_state, dict_set(*range(500, 600)), partial=some_set(*range(500, 600)))
CASES["ConcurrentDict.update (keywords)"] = Case(
    lambda b, items: _keyword_dict(b, items), lambda d, new: d.update(x=new), _keyword_state,
    lambda before, new, result: sorted(before + [("x", new.n)]))
CASES["ConcurrentDict.update (a ConcurrentDict)"] = Case(
    fill_dict, lambda d, new: d.update(_concurrent_dict_like(d, new)), dict_state, dict_set(700, 701),
    partial=some_set(700, 701))
CASES["ConcurrentDict.clear"] = Case(fill_dict, lambda d, new: d.clear(), dict_state, cleared, partial=some_removed)
for method in ("copy", "as_dict", "keys", "values", "items"):
    CASES[f"ConcurrentDict.{method}"] = Case(fill_dict, call(method), dict_state, unchanged)
CASES["ConcurrentDict iteration"] = Case(fill_dict, lambda d, new: list(d), dict_state, unchanged)
CASES["ConcurrentDict =="] = Case(fill_dict, lambda d, new: d == {}, dict_state, unchanged)
CASES["ConcurrentDict !="] = Case(fill_dict, lambda d, new: d != d.copy(), dict_state, unchanged)
CASES["ConcurrentDict repr"] = Case(fill_dict, lambda d, new: repr(d), dict_state, unchanged)
CASES["ConcurrentDict repr (holding itself)"] = Case(lambda b, items: _dict_holding_itself(fill_dict(b, items)),
                                                     lambda d, new: repr(d), lambda d: (d["self"] is d, len(d)),
                                                     unchanged)


def _dict_holding_itself(d):
    d["self"] = d
    return d

CASES["ConcurrentDict.__reduce__"] = Case(fill_dict, lambda d, new: d.__reduce__(), dict_state, unchanged)


# ---- LocalWrapper ------------------------------------------------------------------------------


def wrapper_state(w):
    return [item.n for item in w.wrapped]


def appended(before, new, result):
    return before + [new.n]


CASES["LocalWrapper attribute"] = Case(lambda b, items: b.LocalWrapper(list(items)), lambda w, new: w.append(new),
                                       wrapper_state, appended)
CASES["LocalWrapper +="] = Case(lambda b, items: b.LocalWrapper(list(items)), lambda w, new: operator.iadd(w, (new,)),
                                wrapper_state, appended,
                                result=lambda result, items, new: _is(result.wrapped[-1], new))
CASES["LocalWrapper +"] = Case(lambda b, items: b.LocalWrapper(list(items)), lambda w, new: w + w.wrapped,
                               wrapper_state, unchanged)
CASES["LocalWrapper []"] = Case(lambda b, items: b.LocalWrapper(list(items)), lambda w, new: w[0], wrapper_state,
                                unchanged)
CASES["LocalWrapper []="] = Case(lambda b, items: b.LocalWrapper(list(items)), lambda w, new: w.__setitem__(0, new),
                                 wrapper_state, lambda before, new, result: [new.n] + before[1:])
CASES["LocalWrapper len"] = Case(lambda b, items: b.LocalWrapper(list(items)), lambda w, new: len(w), wrapper_state,
                                 unchanged)
CASES["LocalWrapper iter"] = Case(lambda b, items: b.LocalWrapper(list(items)), lambda w, new: list(w),
                                  wrapper_state, unchanged)
CASES["LocalWrapper in"] = Case(lambda b, items: b.LocalWrapper(list(items)), lambda w, new: new in w,
                                wrapper_state, unchanged)
CASES["LocalWrapper =="] = Case(lambda b, items: b.LocalWrapper(list(items)), lambda w, new: w == (new,),
                                wrapper_state, unchanged)
CASES["LocalWrapper repr"] = Case(lambda b, items: b.LocalWrapper(list(items)), lambda w, new: repr(w),
                                  wrapper_state, unchanged)
CASES["LocalWrapper call"] = Case(lambda b, items: b.LocalWrapper(list(items)), lambda w, new: w.copy(),
                                  wrapper_state, unchanged)


# ---- the driver ----------------------------------------------------------------------------------


def attempt(injector, n, op, obj, new):
    """op(obj, new) with allocations failing from the n-th on: (True, result), or (False,
    None) after a MemoryError. Nothing but the call runs with allocations failing: the
    result is packed after stop()."""
    result = error = None
    injector.start(n)
    try:
        result = op(obj, new)
    except MemoryError as e:
        error = e
    finally:
        injector.stop()
    if error is None:
        return True, result
    # The tracebacks of the error and of those it chains (an exception being handled when
    # it was raised) hold the frames of the call, obj and new among their locals: release
    # them now, not whenever the exceptions go.
    while error is not None:
        error.__traceback__ = None
        chained = error.__context__ or error.__cause__
        error.__context__ = error.__cause__ = None
        error = chained
    return False, None


def in_thread(function, *args):
    """function(*args) in another thread: a lock the operation left held shows as a hang."""
    out = []
    worker = threading.Thread(target=lambda: out.append(function(*args)), daemon=True)
    worker.start()
    worker.join(STATE_TIMEOUT)
    assert not worker.is_alive(), f"{function.__name__} did not finish: a lock left held?"
    assert out, f"{function.__name__} raised (see the thread's traceback above)"
    return out[0]


def refcounts(objects):
    return [sys.getrefcount(x) for x in objects]


def exhaust(backend, case, injector):
    """Runs the case with n = 0, 1, ... failing, until it succeeds; returns n."""
    kind = fresh_item_class() if case.fresh else Item
    for n in range(LIMIT):
        items = [kind(i) for i in range(case.items)]
        new = kind(-1)
        watched = items + [new]
        counts = refcounts(watched) if COUNTS_REFERENCES else None
        obj = case.setup(backend, items)
        before = None if case.check is not None else case.model(items) if case.model else case.state(obj)
        assert threading.active_count() == 1, "set_nomemory would fail other threads' allocations too"
        succeeded, result = attempt(injector, n, case.op, obj, new)
        if case.check is not None:
            case.check(obj, items, new, succeeded, result)
        elif succeeded:
            now = in_thread(case.state, obj)
            assert now == case.expect(before, new, result), f"{n}: wrong contents after a success: {now!r}"
        else:
            now = in_thread(case.state, obj)
            allowed = [before] + ([case.expect(before, new, None)] if case.kept_on_error else [])
            assert now in allowed or (case.partial is not None and case.partial(before, now, new)), \
                f"{n}: a MemoryError left the object changed: {now!r}, was {before!r}"
        if succeeded and case.result is not None:
            case.result(result, items, new)
        # the same operation on a new object works (with Items: objects of a fresh kind
        # would make their wrapper type here, and the next attempts would not)
        again = case.setup(backend, [Item(i) for i in range(case.items)])
        case.op(again, Item(-2))
        del again, result, obj
        if COUNTS_REFERENCES:
            after = refcounts(watched)
            if after != counts:  # what only the collector frees (cycles through frames), then look again
                gc.collect()
                after = refcounts(watched)
            assert after == counts, f"{n}: reference counts {counts} became {after}"
        if succeeded:
            return n
    pytest.fail(f"still failing after {LIMIT} allocations")


def report(backend, injector_name, case_name, n):
    path = os.environ.get("FT_UTILS_ALLOC_REPORT")
    if path:
        interpreter = f"{sys.implementation.name}{sys.version_info[0]}.{sys.version_info[1]}" + (
            "t" if hasattr(sys, "_is_gil_enabled") and not sys._is_gil_enabled() else "")
        with open(path, "a") as out:
            out.write(f"{interpreter}\t{'cffi' if 'cffi' in backend.__name__ else 'native'}\t{injector_name}\t{case_name}\t{n}\n")


# Cases whose operation must reach an allocation of the core (so n > 0 with that injector):
# the case would otherwise test nothing.
CORE_ALLOCATES = {name for name in CASES if "into a new segment" in name or "Iterator.insert (growth)" in name} | {
    "ConcurrentQueue()", "ConcurrentQueue(lock_free=True)", "StdConcurrentQueue(5)", "ConcurrentGatheringIterator()"}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("injector_name", INJECTORS)
@pytest.mark.parametrize("name", CASES)
def test_allocations_failing(backend, name, injector_name):
    """Each allocation the operation makes fails in turn: MemoryError, nothing changed,
    nothing lost or leaked; then it succeeds."""
    injector = INJECTORS[injector_name](backend)  # skips where the interpreter cannot fail its allocations
    failures = exhaust(backend, CASES[name], injector)
    report(backend, injector_name, name, failures)
    if injector_name == "core" and name in CORE_ALLOCATES:
        assert failures > 0, "the core allocation was never reached: the case tests nothing"
    if injector_name == "interpreter" and CASES[name].fresh:
        assert failures > 0, "making the wrapper never allocated: the case tests nothing"
