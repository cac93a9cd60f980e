"""Every public operation of every type, with each of the C core's allocations failing in
turn (queue segments, the gatherer's table), through the core's testing aid
``ftu_fail_allocations``, on every interpreter and backend.

For n = 0, 1, 2, ... an operation runs with every core allocation from the n-th on
failing, until it succeeds. (Failing the interpreter's own allocations too, with
``_testcapi.set_nomemory``, is the next step: `exhaust` takes any injector.)

Each attempt must succeed or raise MemoryError. Afterwards the object must match a model
of its contents: unchanged after a MemoryError (nothing half done, nothing lost), changed
as the operation says after a success. The next operation must work. Then the object is
dropped and every object that went through it must be back to the reference count it had
before (none kept, none released too often), where the interpreter counts references.
"""

import gc
import sys
from dataclasses import dataclass
from typing import Callable

import pytest

COUNTS_REFERENCES = sys.implementation.name == "cpython"
LIMIT = 500  # more allocations than any one operation here makes
SEGMENT = 1021  # items that fill a new queue's first core segment: the next push allocates


def core_injector(backend):
    """f(n): the C core's allocations fail from the n-th on (n < 0: none fail)."""
    if backend.__name__.endswith("_native"):
        return backend._fail_core_allocations
    from ft_utils.cffi_backend._api import lib

    return lib.ftu_fail_allocations


class Item:
    """An object handed to a container, with a recognisable value."""

    __slots__ = ("n", "__weakref__")

    def __init__(self, n):
        self.n = n

    def __repr__(self):
        return f"Item({self.n})"


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


def queue_state(q):
    """The contents in order, as item numbers (taken out and put back)."""
    take = getattr(q, "pop", None) or q.get
    put = getattr(q, "push", None) or q.put
    items = []
    while q.qsize() if hasattr(q, "qsize") else q.size():
        items.append(take(timeout=0))
    for item in items:
        put(item)
    return [item.n for item in items]


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
    return sorted((k, v.n) for k, v in d.as_dict().items())


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
    """next() of a pass with clear=True: it took the first value, or took nothing."""
    if succeeded:
        assert result is items[0]
    got = [v.n for v in g.iterator(len(items) - 1)] if not succeeded else \
        [v.n for v in (g.insert(0, items[0]) or g.iterator(len(items) - 1))]
    assert got == [item.n for item in items], got


def unchanged(before, new, result):
    return before


def number(value):
    return lambda before, new, result: value


CASES = {}


def constructor(name, make):
    CASES[name] = Case(lambda b, items: b, lambda b, new: make(b, new), lambda b: None, unchanged, items=0)


constructor("AtomicInt64()", lambda b, new: b.AtomicInt64(1 << 40))
constructor("AtomicReference()", lambda b, new: b.AtomicReference(new))
constructor("AtomicFlag()", lambda b, new: b.AtomicFlag(True))
constructor("ConcurrentQueue()", lambda b, new: b.ConcurrentQueue())
constructor("ConcurrentQueue(lock_free=True)", lambda b, new: b.ConcurrentQueue(lock_free=True))
constructor("StdConcurrentQueue(5)", lambda b, new: b.StdConcurrentQueue(5))
constructor("ConcurrentGatheringIterator()", lambda b, new: b.ConcurrentGatheringIterator())
constructor("ConcurrentDict(4)", lambda b, new: b.ConcurrentDict(4))
constructor("LocalWrapper(list)", lambda b, new: b.LocalWrapper([new]))

BIG = 1 << 40  # not a cached small int: reading and boxing it allocates
for name, op, after in [
    ("AtomicInt64.get", lambda x, new: x.get(), BIG),
    ("AtomicInt64.set", lambda x, new: x.set(BIG + 1), BIG + 1),
    ("AtomicInt64.incr", lambda x, new: x.incr(), BIG + 1),
    ("AtomicInt64.add", lambda x, new: x.add(BIG), 2 * BIG),
    ("AtomicInt64.exchange", lambda x, new: x.exchange(BIG + 5), BIG + 5),
    ("AtomicInt64.compare_exchange", lambda x, new: x.compare_exchange(BIG, BIG + 7), BIG + 7),
    ("AtomicInt64 +=", lambda x, new: x.__iadd__(BIG), 2 * BIG),
    ("AtomicInt64 *=", lambda x, new: x.__imul__(3), 3 * BIG),
    ("AtomicInt64 + 1", lambda x, new: x + 1, BIG),
]:
    CASES[name] = Case(lambda b, items: b.AtomicInt64(BIG), op, lambda x: x.get(), number(after),
                       kept_on_error=name not in ("AtomicInt64.set", "AtomicInt64.get", "AtomicInt64 + 1"),
                       items=0)

CASES["AtomicReference.set"] = Case(lambda b, items: b.AtomicReference(items[0]), lambda r, new: r.set(new),
                                    lambda r: r.get().n, lambda before, new, result: new.n, items=1)
CASES["AtomicReference.exchange"] = Case(lambda b, items: b.AtomicReference(items[0]),
                                         lambda r, new: r.exchange(new), lambda r: r.get().n,
                                         lambda before, new, result: new.n, items=1)
CASES["AtomicReference.compare_exchange"] = Case(
    lambda b, items: b.AtomicReference(items[0]), lambda r, new: r.compare_exchange(r.get(), new),
    lambda r: r.get().n, lambda before, new, result: new.n, items=1)
CASES["AtomicFlag.set"] = Case(lambda b, items: b.AtomicFlag(False), lambda f, new: f.set(True), bool,
                               lambda before, new, result: True, items=0)

QUEUES = {
    "ConcurrentQueue": (lambda b: b.ConcurrentQueue(), "push", "pop"),
    "ConcurrentQueue(lock_free=True)": (lambda b: b.ConcurrentQueue(lock_free=True), "push", "pop"),
    "StdConcurrentQueue": (lambda b: b.StdConcurrentQueue(), "put", "get"),
    "StdConcurrentQueue(maxsize)": (lambda b: b.StdConcurrentQueue(10 * SEGMENT), "put", "get"),
}
for kind, (make, push, pop) in QUEUES.items():
    def pushed(before, new, result):
        return before + [new.n]

    def popped(before, new, result):
        assert result.n == before[0]
        return before[1:]

    CASES[f"{kind}.{push}"] = Case(fill_queue(make), (lambda push: lambda q, new: getattr(q, push)(new))(push),
                                   queue_state, pushed)
    CASES[f"{kind}.{push} into a new segment"] = Case(
        fill_queue(make), (lambda push: lambda q, new: getattr(q, push)(new))(push), queue_state,
        pushed, items=SEGMENT, model=lambda items: [item.n for item in items])
    CASES[f"{kind}.{pop}"] = Case(fill_queue(make), (lambda pop: lambda q, new: getattr(q, pop)())(pop),
                                  queue_state, popped)
    CASES[f"{kind}.{pop}(timeout=1)"] = Case(
        fill_queue(make), (lambda pop: lambda q, new: getattr(q, pop)(timeout=1))(pop), queue_state, popped)
    if push == "push":
        CASES[f"{kind}.pop_local"] = Case(fill_queue(make), lambda q, new: q.pop_local(), queue_state, popped)
    else:
        def get_and_done(q, new):
            item = q.get()
            q.task_done()
            return item

        CASES[f"{kind}.get + task_done"] = Case(fill_queue(make), get_and_done, queue_state, popped)

CASES["ConcurrentGatheringIterator.insert"] = Case(
    fill_gatherer, lambda g, new: g.insert(3, new), None, None, check=gatherer_check)
CASES["ConcurrentGatheringIterator.insert (growth)"] = Case(
    fill_gatherer, lambda g, new: g.insert(192, new), None, None, check=gatherer_check, items=192)
CASES["ConcurrentGatheringIterator next()"] = Case(
    fill_gatherer, lambda g, new: next(g.iterator(2)), None, None, check=gatherer_next_check)
CASES["ConcurrentGatheringIterator iterator_local next()"] = Case(
    fill_gatherer, lambda g, new: next(g.iterator_local(2)).wrapped, None, None, check=gatherer_next_check)

def dict_set(key):
    return lambda before, new, result: sorted((dict(before) | {key: new.n}).items())


def dict_without(key):
    return lambda before, new, result: [kv for kv in before if kv[0] != key]


CASES["ConcurrentDict[k] = v (new key)"] = Case(fill_dict, lambda d, new: d.__setitem__(1000, new), dict_state,
                                                dict_set(1000))
CASES["ConcurrentDict[k] = v (replace)"] = Case(fill_dict, lambda d, new: d.__setitem__(1, new), dict_state,
                                                dict_set(1))
CASES["ConcurrentDict[k] = v (growth)"] = Case(fill_dict, lambda d, new: d.__setitem__(1000, new), dict_state,
                                               dict_set(1000), items=300)
CASES["ConcurrentDict.setdefault"] = Case(fill_dict, lambda d, new: d.setdefault(1000, new), dict_state,
                                          dict_set(1000))
CASES["ConcurrentDict.compare_and_set"] = Case(fill_dict, lambda d, new: d.compare_and_set(1, d[1], new),
                                               dict_state, dict_set(1))
CASES["ConcurrentDict.pop"] = Case(fill_dict, lambda d, new: d.pop(1), dict_state, dict_without(1))
CASES["ConcurrentDict del"] = Case(fill_dict, lambda d, new: d.__delitem__(1), dict_state, dict_without(1))
CASES["ConcurrentDict.compare_and_delete"] = Case(fill_dict, lambda d, new: d.compare_and_delete(1, d[1]),
                                                  dict_state, dict_without(1))
CASES["ConcurrentDict.update"] = Case(fill_dict, lambda d, new: d.update({k: new for k in range(500, 600)}),
                                      dict_state, lambda before, new, result: sorted(
                                          (dict(before) | {k: new.n for k in range(500, 600)}).items()))
CASES["ConcurrentDict.copy"] = Case(fill_dict, lambda d, new: d.copy(), dict_state, unchanged)
CASES["ConcurrentDict iteration"] = Case(fill_dict, lambda d, new: list(d), dict_state, unchanged)
CASES["ConcurrentDict ==" ] = Case(fill_dict, lambda d, new: d == {}, dict_state, unchanged)


def attempt(inject, n, op, obj, new):
    """op(obj, new) with allocations failing from the n-th on: (True, result) or
    (False, None) after a MemoryError."""
    inject(n)
    try:
        return True, op(obj, new)
    except MemoryError:
        return False, None
    finally:
        inject(-1)


def exhaust(backend, case, inject):
    """Runs the case with n = 0, 1, ... failing, until it succeeds; returns n."""
    for n in range(LIMIT):
        items = [Item(i) for i in range(case.items)]
        new = Item(-1)
        watched = items + [new]
        counts = [sys.getrefcount(x) for x in watched] if COUNTS_REFERENCES else None
        obj = case.setup(backend, items)
        before = None if case.check is not None else case.model(items) if case.model else case.state(obj)
        succeeded, result = attempt(inject, n, case.op, obj, new)
        if case.check is not None:
            case.check(obj, items, new, succeeded, result)
            now = None
        else:
            now = case.state(obj)
        if case.check is None and succeeded:
            assert now == case.expect(before, new, result), f"{n}: wrong contents after a success"
        elif case.check is None:
            allowed = [before] + ([case.expect(before, new, None)] if case.kept_on_error else [])
            assert now in allowed, f"{n}: a MemoryError left the object changed: {now!r}, was {before!r}"
        # the object still works
        again = case.setup(backend, [Item(i) for i in range(case.items)])
        case.op(again, Item(-2))
        del again, result, obj
        gc.collect()
        if COUNTS_REFERENCES:
            after = [sys.getrefcount(x) for x in watched]
            assert after == counts, f"{n}: reference counts {counts} became {after}"
        if succeeded:
            return n
    pytest.fail(f"still failing after {LIMIT} allocations")


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", CASES)
def test_core_allocations_failing(backend, name):
    """The C core's allocations (queue segments, the gatherer's table) fail in turn."""
    failures = exhaust(backend, CASES[name], core_injector(backend))
    allocates = "into a new segment" in name or "Iterator.insert (growth)" in name or name in (
        "ConcurrentQueue()", "ConcurrentQueue(lock_free=True)", "StdConcurrentQueue(5)", "ConcurrentGatheringIterator()")
    if allocates:
        assert failures > 0, "the core allocation was never reached: the case tests nothing"
