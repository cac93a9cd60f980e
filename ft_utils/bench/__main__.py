"""python -m ft_utils.bench: ft_utils against the standard library (and peers), in paired rounds.

Every workload (a shared counter, a shared dict in three mixes, a producer/consumer
queue) is measured in rounds: a round runs each variant of the workload once (the stdlib
baselines, ft_utils on every backend this interpreter has, the peers with --peers), back
to back, in an order that rotates from round to round. Ratios are taken within each round
and the report gives the median of the per-round ratios with their spread [min-max].
The machine's cache-line transfer time is probed before each round and after the last;
rounds next to a reading above the slow-phase threshold are marked. See
docs/benchmarks.md.
"""

import argparse
import datetime
import importlib
import os
import sys
import time

import ft_utils
from ft_utils import _backend
from ft_utils.bench import atomics, dicts, queues, report
from ft_utils.bench.harness import SLOW_PHASE_NS, run_rounds, threads_text
from ft_utils.bench.progress import Progress

SUITES = {"atomics": atomics, "dicts": dicts, "queues": queues}
# Figures that are not paired throughput: run after a suite's table.
EXTRAS = {"queues": queues.run_extras}
#: Peers measured with --peers when importable: package -> what of it is measured.
PEERS = {"cereggii": "AtomicInt64, AtomicRef (atomics), AtomicDict (dicts)"}
DEFAULTS = {"repeats": 5, "ops": 1_000_000, "threads": "1,2,4"}
QUICK = {"repeats": 3, "ops": 40_000, "threads": "1,2,4"}


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text!r}")
    return value


def _thread_counts(text):
    try:
        counts = [int(t) for t in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be comma-separated integers, not {text!r}") from None
    if any(t < 1 for t in counts):
        raise argparse.ArgumentTypeError(f"thread counts must be positive, not {text!r}")
    return counts


def parser():
    p = argparse.ArgumentParser(prog="python -m ft_utils.bench", description=__doc__.split("\n\n")[0],
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help=f"every suite with small counts ({QUICK['repeats']} rounds x {QUICK['ops']} ops/thread, "
                        "short extras): a check that takes well under a minute, not figures to quote")
    p.add_argument("--only", choices=sorted(SUITES), action="append", help="run only this suite (repeatable)")
    p.add_argument("--threads", type=_thread_counts, help=f"comma-separated thread counts (default {DEFAULTS['threads']})")
    p.add_argument("--repeats", type=_positive_int, help=f"paired rounds per workload and thread count "
                                                         f"(default {DEFAULTS['repeats']}, --quick {QUICK['repeats']})")
    p.add_argument("--ops", type=_positive_int, help=f"operations per thread per run "
                                                     f"(default {DEFAULTS['ops']}, --quick {QUICK['ops']})")
    p.add_argument("--backends", help="comma-separated ft_utils backends to measure (default: every one that "
                                      "loads here, side by side in the same rounds)")
    p.add_argument("--peers", action="store_true",
                   help="also measure the peers that are importable: " + "; ".join(f"{k}: {v}" for k, v in PEERS.items()))
    p.add_argument("--json", metavar="FILE", help="write every sample and round, the machine, the interpreter, "
                                                  "the backends and the versions to FILE")
    p.add_argument("--plot", metavar="FILE.png", help="draw each workload's ratio to its baseline per thread count, "
                                                      "with the per-round spread (needs matplotlib: ft_utils[bench])")
    p.add_argument("--slow-ns", type=_positive_int, default=SLOW_PHASE_NS,
                   help=f"probe reading above which a round counts as taken in a slow phase (default {SLOW_PHASE_NS})")
    p.add_argument("--progress", choices=["auto", "bar", "lines", "off"], default="auto",
                   help="progress on stderr: a bar on a terminal, plain lines otherwise (auto)")
    return p


def _backends(p, text):
    available = _backend.available()
    if text is None:
        return {name: _backend.load(name) for name in available}
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        p.error(f"--backends: {', '.join(unknown) or text!r} not available here (available: {', '.join(available)})")
    return {name: _backend.load(name) for name in names}


def _peers(wanted):
    found = {}
    if wanted:
        for name in PEERS:
            try:
                found[name] = importlib.import_module(name)
            except ImportError:
                continue
    return found


def _version(package):
    try:
        from importlib.metadata import version

        return version(package)
    except Exception:
        return getattr(sys.modules.get(package), "__version__", "unknown")


def _commit():
    """The git commit ft_utils was imported from (with "+dirty" when the tree has changes),
    or None outside a git checkout."""
    import subprocess

    tree = os.path.dirname(os.path.dirname(os.path.abspath(ft_utils.__file__)))
    try:
        head = subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              timeout=10)
        dirty = subprocess.run(["git", "-C", tree, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _check_output_path(p, option, path):
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        p.error(f"{option}: directory {directory} does not exist")


def main(argv=None):
    p = parser()
    args = p.parse_args(argv)
    sizes = QUICK if args.quick else DEFAULTS
    repeats = args.repeats or sizes["repeats"]
    ops = args.ops or sizes["ops"]
    thread_counts = args.threads or _thread_counts(sizes["threads"])
    if args.plot:
        missing = report.matplotlib_missing()
        if missing:
            p.error(missing)
        _check_output_path(p, "--plot", args.plot)
    if args.json:
        _check_output_path(p, "--json", args.json)
    backends = _backends(p, args.backends)
    peers = _peers(args.peers)
    suites = args.only or list(SUITES)
    threshold = args.slow_ns
    out = sys.stdout

    interpreter = report.interpreter_info()
    versions = {"ft_utils": ft_utils.__version__, **{name: _version(name) for name in peers}}
    print(f"ft_utils.bench: {interpreter['label']} ({interpreter['version']}), "
          f"GIL {'enabled' if interpreter['gil_enabled'] else 'disabled'}; backends {', '.join(backends)}; "
          f"peers {', '.join(f'{n} {versions[n]}' for n in peers) or 'none'}; "
          f"{repeats} paired rounds x {ops} ops/thread{' (--quick)' if args.quick else ''}", file=out)
    if args.peers and not peers:
        print(f"note: --peers: none importable here ({', '.join(PEERS)} not installed)", file=out)
    if interpreter["gil_enabled"]:
        print("note: the GIL is enabled, so threads cannot run in parallel here; "
              "run on a free-threaded build (make bench) for the figures that matter", file=out)
    print(f"Rates in M units/s: median (min-max) over the rounds. Ratios: median of the per-round ratios "
          f"[min-max]. * marks a probe above {threshold} ns: the rounds beside it ran in a slow phase.", file=out)

    plan = {suite: SUITES[suite].workloads(backends, peers) for suite in suites}
    total = sum(len(ws) * t * repeats for ws in plan.values() for t in thread_counts)
    progress = Progress(total, mode=args.progress)
    started, clock = datetime.datetime.now(datetime.timezone.utc), time.monotonic()
    document = {"schema": report.SCHEMA, "started_utc": started.isoformat(timespec="seconds"),
                "command": ["python", "-m", "ft_utils.bench"] + list(sys.argv[1:] if argv is None else argv),
                "options": {"quick": args.quick, "repeats": repeats, "ops": ops, "threads": thread_counts,
                            "suites": suites, "peers": args.peers, "slow_phase_ns": threshold},
                "interpreter": interpreter,
                "ft_utils": {"version": ft_utils.__version__, "commit": _commit(), "backends": list(backends),
                             "default_backend": ft_utils.backend, "path": os.path.dirname(ft_utils.__file__)},
                "peers": {name: versions[name] for name in peers},
                "suites": {}, "rounds": [], "samples": [], "rows": [], "extras": {}}
    document["machine"] = report.machine_info([], threshold)
    probe = next(iter(backends.values()))._probe_line_transfer_ns

    for suite in suites:
        _run_suite(suite, plan[suite], thread_counts, ops, repeats, args, backends, probe, progress, document)
    out.flush()
    slow_rounds = sum(r["slow"] for r in document["rounds"])
    probes = document["machine"]["line_transfer_ns"]
    document["machine_line"] = report.machine_line(probes, slow_rounds, len(document["rounds"]), threshold)
    document["seconds"] = round(time.monotonic() - clock, 3)
    print(f"\nmachine: {document['machine_line']}", file=out)
    print(f"took {document['seconds']:.0f} s", file=out)
    if args.json:
        report.write_json(args.json, document)
        print(f"wrote {args.json}", file=out)
    if args.plot:
        report.plot(args.plot, document["rows"], f"ft_utils.bench on {interpreter['label']}, backends "
                    f"{', '.join(backends)}: {repeats} rounds x {ops} ops/thread")
        print(f"wrote {args.plot}", file=out)
    return 0


def _run_suite(suite, workloads, thread_counts, ops, repeats, args, backends, probe, progress, document):
    """Every group of the suite at every thread count in paired rounds, then its report
    (and the queues' extras); what it measured goes into ``document``."""
    module, out, threshold = SUITES[suite], sys.stdout, args.slow_ns
    groups = list(dict.fromkeys(w.group for w in workloads))
    document["suites"][suite] = {"description": module.DESCRIPTION, "unit": module.UNIT, "groups": groups,
                                 "variants": [{"variant": w.label, "name": w.name, "group": w.group, "kind": w.kind,
                                               "backend": w.backend, "baselines": list(w.baseline)}
                                              for w in workloads]}

    def on_sample(rounds, index, w, round_done):
        progress.sample(rounds.threads, suite, f"{rounds.group}, {threads_text(rounds.threads)}, "
                        f"round {index + 1}/{repeats}", w.label, round_done)

    blocks = []
    for group in groups:
        variants = [w for w in workloads if w.group == group]
        for threads in thread_counts:
            rounds = run_rounds(suite, group, variants, threads, ops, repeats, probe=probe, on_sample=on_sample,
                                warmup=threads == thread_counts[0])
            blocks.append((rounds, variants))
    progress.clear()
    print(f"\n{suite}: {module.DESCRIPTION} (M {module.UNIT}/s)", file=out)
    for rounds, variants in blocks:
        rows = report.rows_of(rounds, variants, threshold)
        report.print_block(rounds, rows, threshold, out)
        records, samples = report.rounds_records(rounds, threshold)
        document["rows"] += rows
        document["rounds"] += records
        document["samples"] += samples
        document["machine"]["line_transfer_ns"] += rounds.probes
    if suite in EXTRAS:
        document["extras"][suite] = EXTRAS[suite](backends, 1 if args.quick else repeats,
                                                  lambda text: print(text, file=out),
                                                  size="quick" if args.quick else "full",
                                                  progress=lambda stage: progress.line(f"{suite}: {stage}"))


if __name__ == "__main__":
    sys.exit(main())
