"""Workloads for ConcurrentDict: threads sharing one dict of 4096 keys.

Every thread runs its own pre-generated program of operations on random keys, in three
mixes:

- "int keys": 80% lookups (d[k]), 10% stores (d[k] = k) and 10% delete-then-store
  (del d[k]; d[k] = k), on the ints 0..4095;
- "str keys": the same on 4096 strings (the common key type of real programs);
- "read-mostly": 98% lookups, 1% stores, 1% delete-then-store, on the ints.

A lookup or delete may find its key missing for a moment (another thread is between its
delete and its store); that is counted as a normal outcome. At the end every key must be
present and map to itself, so a structure that loses a store fails.

Baselines: the built-in dict used directly (safe for single operations on free-threaded
CPython) and dict with every operation under one threading.Lock, the way code written
for a GIL protects a shared dict. The contender is ConcurrentDict used the same way, on
each backend measured; with --peers, where cereggii is installed (a peer with a
lock-free AtomicDict; not a dependency of ft_utils), its AtomicDict runs the same
programs beside it.
"""

import random
import threading

from ft_utils.bench.harness import Workload, own_copy

UNIT = "ops"
DESCRIPTION = "threads share one dict of 4096 keys, each running its own random program"

KEY_COUNT = 4096
KEYS = {"int keys": list(range(KEY_COUNT)), "str keys": [f"key-{i:04d}" for i in range(KEY_COUNT)]}
# (mix name, key kind, lookups per 100 operations); the rest is split evenly between
# stores and delete-then-store
MIXES = [("int keys", "int keys", 80), ("str keys", "str keys", 80), ("read-mostly", "int keys", 98)]
_programs = {}


def program(mix, index, ops):
    """The (op, key) pairs of thread ``index`` in ``mix``: op 0 lookup, 1 store, 2
    delete+store."""
    name, kind, reads = next(m for m in MIXES if m[0] == mix)
    cached = _programs.get((mix, index))
    if cached is None or len(cached) < ops:
        rng = random.Random(1000 + index)
        keys = KEYS[kind]
        writes = (100 - reads) / 2
        cached = []
        for _ in range(ops):
            roll = rng.randrange(100)
            op = 0 if roll < reads else 1 if roll < reads + writes else 2
            cached.append((op, keys[rng.randrange(KEY_COUNT)]))
        _programs[(mix, index)] = cached
    return cached if len(cached) == ops else cached[:ops]


def _run(d, ops):
    for op, key in ops:
        if op == 0:
            try:
                d[key]
            except KeyError:
                pass
        elif op == 1:
            d[key] = key
        else:
            try:
                del d[key]
            except KeyError:
                pass
            d[key] = key


def _run_locked(d, lock, ops):
    for op, key in ops:
        if op == 0:
            with lock:
                try:
                    d[key]
                except KeyError:
                    pass
        elif op == 1:
            with lock:
                d[key] = key
        else:
            with lock:
                try:
                    del d[key]
                except KeyError:
                    pass
                d[key] = key


def _workloads(mix, backends, AtomicDict):
    kind = next(m[1] for m in MIXES if m[0] == mix)
    keys = KEYS[kind]

    def setup(factory, locked=False):
        def make(threads, ops):
            for index in range(threads):  # generated before the clock starts
                program(mix, index, ops)
            mapping = factory()
            for key in keys:
                mapping[key] = key
            state = {"d": mapping}
            if locked:
                state["lock"] = threading.Lock()
            return state

        return make

    def worker_for(variant, run=_run):
        run = own_copy(run, variant)

        def worker(state, index, ops):
            run(state["d"], program(mix, index, ops))

        return worker

    def locked_worker(state, index, ops):
        _run_locked(state["d"], state["lock"], program(mix, index, ops))

    def verify(state, threads, ops):
        d = state["d"]
        assert len(d) == KEY_COUNT, f"{len(d)} keys at the end, expected {KEY_COUNT}"
        for key in keys:
            assert d[key] == key, f"key {key!r} maps to {d[key]!r}"

    plain, locked, peer = "dict", "dict + Lock", "cereggii AtomicDict"
    workloads = [Workload(plain, setup(dict), worker_for("dict"), verify, group=mix),
                 Workload(locked, setup(dict, True), locked_worker, verify, group=mix)]
    baselines = (plain, locked)
    if AtomicDict is not None:
        workloads.append(Workload(peer, setup(AtomicDict), worker_for("AtomicDict"), verify, baseline=baselines,
                                  group=mix))
        baselines += (peer,)
    for name, module in backends.items():
        workloads.append(Workload("ConcurrentDict", setup(module.ConcurrentDict), worker_for(f"ConcurrentDict_{name}"),
                                  verify, baseline=baselines, group=mix, backend=name))
    return workloads


def workloads(backends, peers):
    """The variants of every mix: ``backends`` maps backend names to their modules,
    ``peers`` maps peer package names to their modules (cereggii)."""
    atomic_dict = getattr(peers.get("cereggii"), "AtomicDict", None)
    return [w for mix, _, _ in MIXES for w in _workloads(mix, backends, atomic_dict)]
