"""The measuring part: threads behind a barrier, timing, repeats, medians."""

import statistics
import threading
import time
from dataclasses import dataclass, field

import ft_utils


@dataclass
class Workload:
    """One thing to measure. ``setup(threads, ops)`` returns a state (untimed);
    ``worker(state, index, ops)`` does ``ops`` operations in one thread; ``verify(state,
    threads, ops)`` raises AssertionError if the result is wrong. ``baseline`` names the
    workload(s) this one is compared with; empty for a baseline. ``done(threads, ops)``
    counts what one run does, in ``unit``s (default: every thread's ops)."""

    name: str
    setup: object
    worker: object
    verify: object
    baseline: tuple = ()
    unit: str = "ops"
    done: object = None

    def __post_init__(self):
        if isinstance(self.baseline, str):
            self.baseline = (self.baseline,) if self.baseline else ()


@dataclass
class Result:
    workload: str
    threads: int
    ops_per_s: list = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.ops_per_s)


def run_once(workload: Workload, threads: int, ops: int) -> float:
    """Runs ``threads`` threads of ``ops`` operations each; returns the workload's units
    per second."""
    state = workload.setup(threads, ops)
    barrier = threading.Barrier(threads + 1)
    starts = [0.0] * threads
    ends = [0.0] * threads
    errors = []

    def body(index):
        try:
            barrier.wait()
            starts[index] = time.perf_counter()
            workload.worker(state, index, ops)
            ends[index] = time.perf_counter()
        except BaseException as exc:  # reported below
            errors.append(exc)

    pool = [threading.Thread(target=body, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    workload.verify(state, threads, ops)
    elapsed = max(ends) - min(starts)
    done = workload.done(threads, ops) if workload.done else threads * ops
    return done / elapsed


def line_transfer_ns(probes=3):
    """Nanoseconds one CPU takes to get a cache line another has just written (median of
    a few probes of the C core's ping-pong), or None where it cannot be measured. Threaded
    figures follow it: on a virtual machine it can change several-fold between minutes."""
    probe = ft_utils._implementation._probe_line_transfer_ns
    values = [probe(20_000, 500_000_000) for _ in range(probes)]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def measure(workloads, thread_counts, ops, repeats, progress=None, transfers=None):
    """Every workload at every thread count, ``repeats`` times, interleaved. If
    ``transfers`` is a list, line_transfer_ns() is appended to it before each repeat and
    after the last."""
    results = {(w.name, t): Result(w.name, t) for w in workloads for t in thread_counts}
    for repeat in range(repeats):
        if transfers is not None:
            transfers.append(line_transfer_ns())
        for threads in thread_counts:
            for w in workloads:
                results[(w.name, threads)].ops_per_s.append(run_once(w, threads, ops))
        if progress:
            progress(repeat + 1, repeats)
    if transfers is not None:
        transfers.append(line_transfer_ns())
    return results
