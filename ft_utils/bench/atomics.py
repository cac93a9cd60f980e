"""Workloads for the atomics: a shared counter incremented by every thread.

Baseline: an int in a list guarded by threading.Lock, the way Python code protects a
shared counter today. Contenders, on each backend measured: AtomicInt64.incr() and the
spec's compare-and-swap increment loop on an AtomicReference. Peers (--peers, where
cereggii is installed): cereggii's AtomicInt64.increment_and_get() and the same CAS loop
on its AtomicRef.
"""

import threading

from ft_utils.bench.harness import Workload

UNIT = "ops"
DESCRIPTION = "every thread increments one shared counter"
GROUP = "counter"
LOCK = "Lock + int"


def _lock_setup(threads, ops):
    return {"lock": threading.Lock(), "counter": [0]}


def _lock_worker(state, index, ops):
    lock, counter = state["lock"], state["counter"]
    for _ in range(ops):
        with lock:
            counter[0] += 1


def _lock_verify(state, threads, ops):
    assert state["counter"][0] == threads * ops, "lock-protected counter lost increments"


def _incr_worker_for(method):
    def worker(state, index, ops):
        incr = getattr(state, method)
        for _ in range(ops):
            incr()

    return worker


def _cas_worker_for(method):
    def worker(state, index, ops):
        get, cas = state.get, getattr(state, method)
        for _ in range(ops):
            while True:
                current = get()
                if cas(current, current + 1):
                    break

    return worker


def _verify(state, threads, ops):
    assert state.get() == threads * ops, f"the counter lost increments: {state.get()} != {threads * ops}"


def workloads(backends, peers):
    """The variants: ``backends`` maps backend names to their modules, ``peers`` maps peer
    package names to their modules (cereggii). Ours are compared with the lock and with
    the peer that does the same, where there is one."""
    incr_peer, cas_peer = "cereggii AtomicInt64.increment_and_get", "cereggii AtomicRef CAS-incr"
    cereggii = peers.get("cereggii")
    peer_workloads = [] if cereggii is None else [
        Workload(incr_peer, lambda t, o: cereggii.AtomicInt64(0), _incr_worker_for("increment_and_get"), _verify,
                 baseline=LOCK, group=GROUP),
        Workload(cas_peer, lambda t, o: cereggii.AtomicRef(0), _cas_worker_for("compare_and_set"), _verify,
                 baseline=LOCK, group=GROUP),
    ]
    beside = (lambda peer: (LOCK, peer)) if cereggii is not None else (lambda peer: (LOCK,))
    result = [Workload(LOCK, _lock_setup, _lock_worker, _lock_verify, group=GROUP)]
    for name, module in backends.items():
        result += [
            Workload("AtomicInt64.incr", lambda t, o, m=module: m.AtomicInt64(0), _incr_worker_for("incr"), _verify,
                     baseline=beside(incr_peer), group=GROUP, backend=name),
            Workload("AtomicReference CAS-incr", lambda t, o, m=module: m.AtomicReference(0),
                     _cas_worker_for("compare_exchange"), _verify, baseline=beside(cas_peer), group=GROUP,
                     backend=name),
        ]
    return result + peer_workloads
