"""An exception right after a call into the core changed a container (a push, a pop, a
gatherer insert, a dict write), raised by a signal handler or a MemoryError after a
finalizer or that handler made many calls of its own first: the interrupted call must
still know what it did, so that nothing is stranded (a ticket with no object behind it),
lost or kept alive out of sight.

On the cffi backend each such call has a record of its own (ft_utils/cffi_backend/_api.py,
"records"); a per-thread record of the last few calls is not enough, since the calls made
in between evict it (an outside review showed it with real signals: pops raising KeyError,
dict keys whose reads spin, objects kept alive). NESTED is more calls than any such
record held. The white-box tests fake the exception at the exact point; the subprocess
tests use real timer signals, on every backend."""

import gc
import os
import subprocess
import sys
import weakref

import pytest

from conftest import BACKENDS
from queue_helpers import Box, get, put, queues

NESTED = 20


@pytest.fixture
def cffi(backend):
    if "cffi" not in backend.__name__:
        pytest.skip("white box of the cffi backend")
    return backend


def _interrupt_after(module, name, monkeypatch, nested_calls, exception=KeyboardInterrupt):
    """Makes module.name raise `exception` right after its first call went through, once
    nested_calls() has run with the real function restored (as a signal handler or a
    finalizer would, between the call and the exception)."""
    real = getattr(module, name)

    def call_then_raise(*args):
        result = real(*args)
        monkeypatch.setattr(module, name, real)
        nested_calls()
        raise exception

    monkeypatch.setattr(module, name, call_then_raise)


@pytest.mark.parametrize("same", [True, False], ids=["same queue", "other queue"])
def test_a_push_interrupted_after_many_nested_pushes_keeps_its_object(cffi, monkeypatch, same):
    from ft_utils.cffi_backend import _object_queue

    for q in queues(cffi):
        target = q if same else cffi.ConcurrentQueue()
        _interrupt_after(_object_queue, "_push_now", monkeypatch,
                         lambda: [put(target, f"nested {n}") for n in range(NESTED)])
        with pytest.raises(KeyboardInterrupt):
            put(q, "first")
        monkeypatch.undo()
        expected = ["first"] + [f"nested {n}" for n in range(NESTED)] * same
        assert [get(q) for _ in range(len(expected))] == expected
        assert not q._ftu_queue.objects and q.empty()


@pytest.mark.parametrize("exception", [KeyboardInterrupt, MemoryError])
@pytest.mark.parametrize("same", [True, False], ids=["same queue", "other queue"])
def test_a_pop_interrupted_after_many_nested_pops_strands_and_keeps_nothing(cffi, monkeypatch, same, exception):
    """After a MemoryError the interrupted pop hands its value over; after another
    exception the value is dropped and released. The nested pops get theirs."""
    from ft_utils.cffi_backend import _object_queue

    for q in queues(cffi):
        target = q if same else cffi.ConcurrentQueue()
        boxes = [Box(n) for n in range(NESTED + 3)]
        for box in boxes:
            put(q, box)
        if not same:
            for n in range(NESTED):
                put(target, Box(100 + n))
        refs = [weakref.ref(box) for box in boxes]
        del boxes, box
        nested = []
        _interrupt_after(_object_queue, "_take", monkeypatch,
                         lambda: nested.extend(get(target).n for _ in range(NESTED)), exception)
        if exception is MemoryError:
            assert get(q).n == 0
        else:
            with pytest.raises(exception):
                get(q)
        monkeypatch.undo()
        assert nested == (list(range(1, NESTED + 1)) if same else list(range(100, 100 + NESTED)))
        rest = list(range(NESTED + 1, NESTED + 3)) if same else list(range(1, NESTED + 3))
        assert [get(q).n for _ in rest] == rest
        assert not q._ftu_queue.objects and q.empty()
        gc.collect()
        gc.collect()
        assert [r() for r in refs] == [None] * len(refs)


def test_an_insert_interrupted_after_many_nested_inserts_keeps_its_value(cffi, monkeypatch):
    """The interrupted insert's value went in: it arrives, and the gatherer is not failed
    (as it would be if the insert's handler thought the value had not gone in)."""
    from ft_utils.cffi_backend import concurrent_gathering_iterator as module

    g = cffi.ConcurrentGatheringIterator()
    _interrupt_after(module, "_insert", monkeypatch,
                     lambda: [g.insert(n, f"nested {n}") for n in range(1, NESTED + 1)])
    with pytest.raises(KeyboardInterrupt):
        g.insert(0, "first")
    monkeypatch.undo()
    assert list(g.iterator(NESTED)) == ["first"] + [f"nested {n}" for n in range(1, NESTED + 1)]
    assert not g._ftu_objects


def _new_key(key):
    """Another key of the same type as key (an exact int is stored through its own word)."""
    return key + 1000 if type(key) is int else ("new", key)


# Each dict write, by the C call it makes: (call, operation on d and key, what key holds after).
DICT_WRITES = {
    "set (one key of its hash)": ("_swap", lambda d, k: d.__setitem__(k, "new"), "new"),
    "set (a new key)": ("_add", lambda d, k: d.__setitem__(_new_key(k), "new"), "old"),
    "set (general path)": ("_replace", lambda d, k: d.compare_and_set(k, d[k], "new"), "new"),
    "insert (general path)": ("_insert", lambda d, k: d.setdefault(_new_key(k), "new"), "old"),
    "del (one key of its hash)": ("_drop", lambda d, k: d.__delitem__(k), None),
    "pop": ("_remove", lambda d, k: d.pop(k), None),
}


@pytest.mark.parametrize("same", [True, False], ids=["same dict", "other dict"])
@pytest.mark.parametrize("key", ["k", 7], ids=["str key", "int key"])
@pytest.mark.parametrize("case", DICT_WRITES)
def test_a_dict_write_interrupted_after_many_nested_writes_strands_no_pair(cffi, monkeypatch, case, key, same):
    """The nested writes replace and remove values (each lets a ticket go, and puts one
    in), NESTED times, before the exception."""
    from ft_utils.cffi_backend import concurrent_dict as module

    call, operation, after = DICT_WRITES[case]
    if type(key) is int and call in ("_swap", "_add"):
        call = "_put_word"  # an exact int key is stored in one call
    d = cffi.ConcurrentDict()
    target = d if same else cffi.ConcurrentDict()
    d[key] = old = Box("old")
    gone = weakref.ref(old)
    del old

    def nested_writes():
        for n in range(NESTED):
            target[("nested", n % 3)] = n
            if n % 3 == 2:
                del target[("nested", n % 3)]

    _interrupt_after(module, call, monkeypatch, nested_writes)
    with pytest.raises(KeyboardInterrupt):
        operation(d, key)
    monkeypatch.undo()
    if after == "old":  # the write added another key; key kept its value
        assert d[_new_key(key)] == "new" and d[key] is gone()
    elif after is None:
        assert key not in d
    else:
        assert d[key] == after
    assert dict(target.items()).items() >= {("nested", 0): 18, ("nested", 1): 19}.items()
    gc.collect()
    if after != "old":
        assert gone() is None, "the value the write replaced or removed is still kept alive"
    for each in (d, target):
        assert len(each._ftu_objects) == len(each), (dict(each._ftu_objects), each)
        assert all(each[k] is v for k, v in each.items())  # every entry's pair is there


# Real signals: a timer fires every 50 us; its handler makes NESTED calls of the kind the
# main thread is making (on another container), then raises. The main thread runs its
# loop for a second, counting interrupts; then the invariants are checked.
SIGNAL_SCRIPT = r"""
import faulthandler, os, signal, sys, time
faulthandler.dump_traceback_later(60, exit=True)
from ft_utils.concurrency import ConcurrentDict, ConcurrentQueue
what, nested = os.environ["WHAT"], int(os.environ["NESTED"])
cffi = os.environ["FT_UTILS_BACKEND"] == "cffi"
q, other_q = ConcurrentQueue(), ConcurrentQueue()
d, other_d = ConcurrentDict(), ConcurrentDict()
if what == "pop":
    for n in range(400000):
        q.push(n)
armed = busy = False

def handler(*args):
    global armed, busy
    if not armed or busy:
        return
    armed, busy = False, True
    try:
        for n in range(nested):
            if what == "push":
                other_q.push(n)
            elif what == "pop":
                other_q.push(n)
                other_q.pop(timeout=0)
            else:
                other_d[n % 4] = n
                if n % 4 == 3:
                    del other_d[n % 4]
    finally:
        busy = False
    raise KeyboardInterrupt

signal.signal(signal.SIGALRM, handler)
signal.setitimer(signal.ITIMER_REAL, 0.00005, 0.00005)
pushed, popped, interrupted, n = set(), [], 0, 0
keys = [f"k{i}" for i in range(64)] + list(range(64))
end = time.monotonic() + float(os.environ["SECONDS"])
while time.monotonic() < end:
    n += 1  # (a value is never pushed twice, interrupted or not)
    try:
        armed = True
        if what == "push":
            q.push(n)
            armed = False
            pushed.add(n)
        elif what == "pop":
            if q.empty():
                armed = False  # (a signal after the loop must not raise)
                break
            popped.append(q.pop(timeout=0))
            armed = False
        elif n % 3 == 2:
            d.pop(keys[n % len(keys)], None)
            armed = False
        else:
            d[keys[n % len(keys)]] = n
            armed = False
    except KeyboardInterrupt:
        armed = False
        interrupted += 1
signal.setitimer(signal.ITIMER_REAL, 0, 0)
signal.signal(signal.SIGALRM, signal.SIG_IGN)
problems = []
if what == "push":
    got = []
    while not q.empty():
        got.append(q.pop(timeout=0))  # a ticket with no object raises here
    if len(set(got)) != len(got) or not pushed <= set(got):
        problems.append("pushes lost or duplicated")
    stranded = len(q._ftu_queue.objects) if cffi else 0
elif what == "pop":
    if len(set(popped)) != len(popped):
        problems.append("a value popped twice")
    stranded = len(q._ftu_queue.objects) - q._ftu_queue.size() if cffi else 0
else:
    for key in keys:
        d.get(key)  # a read of a key whose pair is stranded spins here
    stranded = len(d._ftu_objects) - len(d) if cffi else 0
if stranded:
    problems.append(f"{stranded} objects held with no ticket in the container")
print(interrupted, n, "; ".join(problems) or "ok")
"""


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("what", ["push", "pop", "dict"])
def test_real_signals_that_make_many_calls_before_raising(backend_name, what):
    env = dict(os.environ, FT_UTILS_BACKEND=backend_name, WHAT=what, NESTED=str(NESTED), SECONDS="1")
    result = subprocess.run([sys.executable, "-c", SIGNAL_SCRIPT], capture_output=True, text=True, env=env,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    interrupted, calls, verdict = result.stdout.strip().split(" ", 2)
    assert verdict == "ok", f"{verdict} ({interrupted} interrupts in {calls} calls)"
    assert int(interrupted) > 20, f"only {interrupted} interrupts in {calls} calls: the test proves little"
