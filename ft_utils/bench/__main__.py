"""python -m ft_utils.bench [--repeats N] [--threads 1,2,4] [--ops N] [--only NAME]

Prints, per workload and thread count, the median rate over the repeats (operations per
second; items moved per second for the queues) and the ratio against its stdlib
baselines: the median of the ratios of each repeat (in which the workloads of a thread
count run back to back), with their spread. Each suite also prints how long moving a cache line between
two CPUs took around its repeats: a figure of the machine that threaded figures follow.
"""

import argparse
import platform
import statistics
import sys

import ft_utils
from ft_utils.bench import atomics, dicts, queues
from ft_utils.bench.harness import measure

SUITES = {"atomics": atomics.WORKLOADS, "dicts": dicts.WORKLOADS, "queues": queues.WORKLOADS}
# Figures that are not ops/s: run after a suite's throughput table.
EXTRAS = {"queues": queues.run_extras}


def _paired_ratio(result, base):
    """The median of the per-repeat ratios: each repeat runs every workload of a thread
    count back to back, so the two sides of one ratio were measured in the same phase of
    the machine; the spread of those ratios follows in brackets."""
    ratios = sorted(a / b for a, b in zip(result.ops_per_s, base.ops_per_s))
    text = f"{statistics.median(ratios):.2f}x"
    return text if len(ratios) < 2 else f"{text} ({ratios[0]:.2f}-{ratios[-1]:.2f})"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m ft_utils.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs of each measurement (median reported)")
    parser.add_argument("--threads", default="1,2,4", help="comma-separated thread counts")
    parser.add_argument("--ops", type=int, default=1_000_000, help="operations per thread per run")
    parser.add_argument("--only", choices=sorted(SUITES), action="append", help="run only these suites")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.ops < 1:
        parser.error("--repeats and --ops must be positive")
    try:
        thread_counts = [int(t) for t in args.threads.split(",")]
    except ValueError:
        parser.error(f"--threads must be comma-separated integers, not {args.threads!r}")
    if any(t < 1 for t in thread_counts):
        parser.error("thread counts must be positive")

    gil = sys._is_gil_enabled() if hasattr(sys, "_is_gil_enabled") else True
    print(f"ft_utils.bench: {platform.python_implementation()} {platform.python_version()}, "
          f"GIL {'enabled' if gil else 'disabled'}, backend {ft_utils.backend}, "
          f"{args.repeats} repeats x {args.ops} ops/thread, median reported")
    if gil:
        print("note: the GIL is enabled, so threads cannot run in parallel here; "
              "run on a free-threaded build (make bench) for the figures that matter")

    for suite in args.only or sorted(SUITES):
        workloads = SUITES[suite]
        transfers = []
        results = measure(workloads, thread_counts, args.ops, args.repeats,
                          progress=lambda done, total: print(f"  [{suite}] repeat {done}/{total}", file=sys.stderr),
                          transfers=transfers)
        print()
        if all(t is not None for t in transfers):
            print(f"{suite}: machine: a cache line moves between two CPUs in "
                  f"{' '.join(f'{t:.0f}' for t in transfers)} ns (one way, probed before each repeat "
                  f"and after the last; threaded figures drop when it rises)")
        unit = workloads[0].unit
        rate, spread_head = f"M{unit}/s", f"(min-max M{unit}/s)"
        width = max(26, *(len(w.name) for w in workloads))
        print(f"{suite}: {'workload':<{width}} {'threads':>7} {rate:>11}   {spread_head:<19}  vs baseline (per-repeat spread)")
        for w in workloads:
            for t in thread_counts:
                r = results[(w.name, t)]
                ratio = ", ".join(_paired_ratio(r, results[(b, t)]) + f" {b}" for b in w.baseline)
                spread = f"({min(r.ops_per_s) / 1e6:.2f}-{max(r.ops_per_s) / 1e6:.2f})"
                print(f"{'':{len(suite) + 2}}{w.name:<{width}} {t:>7} {r.median / 1e6:>11.2f}   {spread:<19}  {ratio}")
        if suite in EXTRAS:
            EXTRAS[suite](args.repeats, print)
    return 0


if __name__ == "__main__":
    sys.exit(main())
