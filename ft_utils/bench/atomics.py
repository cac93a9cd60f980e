"""Workloads for the atomics: a shared counter incremented by every thread.

Baseline: an int in a list guarded by threading.Lock, the way Python code protects a
shared counter today. Contenders: AtomicInt64.incr() and the spec's compare-and-swap
increment loop on an AtomicReference.
"""

import threading

from ft_utils.bench.harness import Workload
from ft_utils.concurrency import AtomicInt64, AtomicReference


def _lock_setup(threads, ops):
    return {"lock": threading.Lock(), "counter": [0]}


def _lock_worker(state, index, ops):
    lock, counter = state["lock"], state["counter"]
    for _ in range(ops):
        with lock:
            counter[0] += 1


def _lock_verify(state, threads, ops):
    assert state["counter"][0] == threads * ops, "lock-protected counter lost increments"


def _incr_setup(threads, ops):
    return AtomicInt64(0)


def _incr_worker(state, index, ops):
    incr = state.incr
    for _ in range(ops):
        incr()


def _incr_verify(state, threads, ops):
    assert state.get() == threads * ops, f"AtomicInt64 lost increments: {state.get()} != {threads * ops}"


def _cas_setup(threads, ops):
    return AtomicReference(0)


def _cas_worker(state, index, ops):
    get, cas = state.get, state.compare_exchange
    for _ in range(ops):
        while True:
            current = get()
            if cas(current, current + 1):
                break


def _cas_verify(state, threads, ops):
    assert state.get() == threads * ops, "AtomicReference CAS loop lost increments"


LOCK = "Lock + int"
WORKLOADS = [
    Workload(LOCK, _lock_setup, _lock_worker, _lock_verify),
    Workload("AtomicInt64.incr", _incr_setup, _incr_worker, _incr_verify, baseline=LOCK),
    Workload("AtomicReference CAS-incr", _cas_setup, _cas_worker, _cas_verify, baseline=LOCK),
]
