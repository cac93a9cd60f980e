"""Workloads for ConcurrentDict: threads sharing one dict of 4096 int keys.

Every thread runs its own pre-generated program of operations on random keys: 80%
lookups (d[k]), 10% stores (d[k] = k) and 10% delete-then-store (del d[k]; d[k] = k).
A lookup or delete may find its key missing for a moment (another thread is between
its delete and its store); that is counted as a normal outcome. At the end every key
must be present and map to itself, so a structure that loses a store fails.

Baselines: the built-in dict used directly (safe for single operations on free-threaded
CPython) and dict with every operation under one threading.Lock, the way code written
for a GIL protects a shared dict. The contender is ConcurrentDict used the same way.
"""

import random
import threading

from ft_utils.bench.harness import Workload
from ft_utils.concurrency import ConcurrentDict

KEY_COUNT = 4096
KEYS = list(range(KEY_COUNT))
_programs = {}


def program(index, ops):
    """The (op, key) pairs of thread ``index``: op 0-7 lookup, 8 store, 9 delete+store."""
    cached = _programs.get(index)
    if cached is None or len(cached) < ops:
        rng = random.Random(1000 + index)
        cached = [(rng.randrange(10), KEYS[rng.randrange(KEY_COUNT)]) for _ in range(ops)]
        _programs[index] = cached
    return cached if len(cached) == ops else cached[:ops]


def _filled(mapping):
    for key in KEYS:
        mapping[key] = key
    return mapping


def _run(d, ops):
    for op, key in ops:
        if op < 8:
            try:
                d[key]
            except KeyError:
                pass
        elif op == 8:
            d[key] = key
        else:
            try:
                del d[key]
            except KeyError:
                pass
            d[key] = key


def _run_locked(d, lock, ops):
    for op, key in ops:
        if op < 8:
            with lock:
                try:
                    d[key]
                except KeyError:
                    pass
        elif op == 8:
            with lock:
                d[key] = key
        else:
            with lock:
                try:
                    del d[key]
                except KeyError:
                    pass
                d[key] = key


def _setup(factory):
    def setup(threads, ops):
        for index in range(threads):  # generated before the clock starts
            program(index, ops)
        return {"d": _filled(factory())}

    return setup


def _worker(state, index, ops):
    _run(state["d"], program(index, ops))


def _locked_setup(threads, ops):
    state = _setup(dict)(threads, ops)
    state["lock"] = threading.Lock()
    return state


def _locked_worker(state, index, ops):
    _run_locked(state["d"], state["lock"], program(index, ops))


def _verify(state, threads, ops):
    d = state["d"]
    assert len(d) == KEY_COUNT, f"{len(d)} keys at the end, expected {KEY_COUNT}"
    for key in KEYS:
        assert d[key] == key, f"key {key} maps to {d[key]!r}"


DICT = "dict"
LOCKED = "dict + Lock"
WORKLOADS = [
    Workload(DICT, _setup(dict), _worker, _verify),
    Workload(LOCKED, _locked_setup, _locked_worker, _verify),
    Workload("ConcurrentDict", _setup(ConcurrentDict), _worker, _verify, baseline=(DICT, LOCKED)),
]
