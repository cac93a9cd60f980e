"""The measuring part: threads behind a barrier, timing, the machine probe, and paired
rounds with their per-round ratios."""

import statistics
import threading
import time
import types
from dataclasses import dataclass, field

#: A round is taken in a slow phase of the machine when the cache-line probe before or
#: after it reads more than this many nanoseconds. On the 2-CPU VMs this project runs on,
#: a line moves between the CPUs in ~35-60 ns in the usual phase and in 180-380 ns in the
#: slow ones, which last seconds to minutes; 100 ns sits well apart from both.
SLOW_PHASE_NS = 100


def own_copy(function, variant):
    """A copy of ``function`` with a code object of its own. PyPy's JIT compiles a loop
    per code object and specialises it to the types it meets: a loop shared by the
    variants would be compiled for the first and take slower side exits for the others.
    Each variant runs its own copy, as the one loop of a program that uses that type."""
    code = function.__code__.replace(co_name=f"{function.__name__}_{variant}".replace(" ", "_"))
    return types.FunctionType(code, function.__globals__, code.co_name, function.__defaults__,
                              function.__closure__)


@dataclass
class Workload:
    """One variant of a workload. ``setup(threads, ops)`` returns a state (untimed);
    ``worker(state, index, ops)`` does ``ops`` operations in one thread; ``verify(state,
    threads, ops)`` raises AssertionError if the result is wrong. The variants of one
    ``group`` run in the same rounds; ``baseline`` names the variants of the group this
    one is compared with (empty for a baseline). ``kind`` is "baseline", "ours" or
    "peer"; ``backend`` is the ft_utils backend an "ours" variant runs on.
    ``done(threads, ops)`` counts what one run does, in ``unit``s (default: every
    thread's ops)."""

    name: str
    setup: object
    worker: object
    verify: object
    baseline: tuple = ()
    unit: str = "ops"
    done: object = None
    group: str = ""
    kind: str = ""
    backend: str = None

    def __post_init__(self):
        if isinstance(self.baseline, str):
            self.baseline = (self.baseline,) if self.baseline else ()
        if not self.kind:
            self.kind = "ours" if self.backend else "peer" if self.baseline else "baseline"
        self.worker = own_copy(self.worker, self.label)

    @property
    def label(self) -> str:
        """The name the report shows: the backend follows the name of ours."""
        return f"{self.name} [{self.backend}]" if self.backend else self.name


def run_once(workload: Workload, threads: int, ops: int) -> float:
    """Runs ``threads`` threads of ``ops`` operations each; returns the seconds from the
    first thread's start to the last one's end (the result is verified first)."""
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
    return max(ends) - min(starts)


def units(workload: Workload, threads: int, ops: int) -> int:
    """What one run of ``workload`` does, in its units."""
    return workload.done(threads, ops) if workload.done else threads * ops


def line_transfer_ns(probes=3, probe=None):
    """Nanoseconds one CPU takes to get a cache line another has just written (median of
    a few probes of the C core's ping-pong), or None where it cannot be measured (the
    other thread did not start in time: a loaded machine). Threaded figures follow it: on
    a virtual machine it can change several-fold between minutes."""
    if probe is None:
        import ft_utils

        probe = ft_utils._implementation._probe_line_transfer_ns
    values = [probe(20_000, 500_000_000) for _ in range(probes)]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def is_slow(probe_ns, threshold_ns=SLOW_PHASE_NS):
    """Whether a probe reading says the machine was in a slow phase (no reading: the
    probe's thread did not even start in time, which is no better)."""
    return probe_ns is None or probe_ns > threshold_ns


def rotation(variants, round_index):
    """The order of the variants in round ``round_index``: each round starts one further
    along, so that every variant runs first (and last) equally often."""
    shift = round_index % len(variants)
    return variants[shift:] + variants[:shift]


@dataclass
class Rounds:
    """The paired rounds of one group of variants at one thread count."""

    suite: str
    group: str
    threads: int
    ops: int
    variants: list
    orders: list = field(default_factory=list)  # per round, the labels in run order
    seconds: list = field(default_factory=list)  # per round, {label: seconds}
    rates: list = field(default_factory=list)  # per round, {label: units per second}
    probes: list = field(default_factory=list)  # ns, before each round and after the last

    def slow(self, index, threshold_ns=SLOW_PHASE_NS):
        """Whether round ``index`` was taken in a slow phase: the probe before or after it
        read above the threshold."""
        return is_slow(self.probes[index], threshold_ns) or is_slow(self.probes[index + 1], threshold_ns)

    def ratios(self, label, baseline):
        """The per-round ratios of ``label``'s rate to ``baseline``'s."""
        return [r[label] / r[baseline] for r in self.rates]


def run_rounds(suite, group, variants, threads, ops, repeats, probe=None, on_sample=None, warmup=False):
    """``repeats`` paired rounds of ``variants`` (one group's Workloads) at ``threads``
    threads: every round runs each variant once, back to back, in a rotating order, with
    the cache-line probe before each round and after the last. ``on_sample(rounds,
    round_index, workload, round_done)`` is called after each sample. With ``warmup``, every variant
    first runs once with a fifth of the ops, unrecorded (a JIT compiles its loops then)."""
    rounds = Rounds(suite, group, threads, ops, [w.label for w in variants])
    if warmup:
        for w in variants:
            run_once(w, threads, max(1, ops // 5))
    for index in range(repeats):
        rounds.probes.append(line_transfer_ns(probe=probe))
        order = rotation(list(variants), index)
        seconds, rates = {}, {}
        for position, w in enumerate(order):
            elapsed = run_once(w, threads, ops)
            seconds[w.label] = elapsed
            rates[w.label] = units(w, threads, ops) / elapsed
            if on_sample:
                on_sample(rounds, index, w, position == len(order) - 1)
        rounds.orders.append([w.label for w in order])
        rounds.seconds.append(seconds)
        rounds.rates.append(rates)
    rounds.probes.append(line_transfer_ns(probe=probe))
    return rounds


def spread(values):
    """(median, min, max) of a non-empty list."""
    return statistics.median(values), min(values), max(values)


def threads_text(threads):
    """'1 thread', '2 threads'."""
    return f"{threads} thread{'s' if threads > 1 else ''}"
