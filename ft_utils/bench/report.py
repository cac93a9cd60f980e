"""What a run reports: the text tables, the JSON document, the plot, and the table that
combines the JSON of several runs (make bench-all)."""

import json
import os
import platform
import sys

from ft_utils.bench.harness import SLOW_PHASE_NS, spread, threads_text

SCHEMA = "ft_utils.bench/1"


# ---- rows: the summary of paired rounds ----------------------------------------------------


def rows_of(rounds, workloads, threshold_ns=SLOW_PHASE_NS):
    """The summary of one Rounds: per variant its rate (median, min, max over the rounds)
    and, against each of its baselines, the per-round ratios with their median, min, max
    and the median over the rounds taken outside slow phases (None if there were none)."""
    slow = [rounds.slow(i, threshold_ns) for i in range(len(rounds.rates))]
    rows = []
    for w in workloads:
        rates = [r[w.label] for r in rounds.rates]
        ratios = []
        for base in w.baseline:
            per_round = rounds.ratios(w.label, base)
            fast = [r for r, s in zip(per_round, slow) if not s]
            median, low, high = spread(per_round)
            ratios.append({"baseline": base, "per_round": per_round, "median": median, "min": low, "max": high,
                           "fast_median": spread(fast)[0] if fast else None})
        median, low, high = spread(rates)
        rows.append({"suite": rounds.suite, "group": rounds.group, "threads": rounds.threads,
                     "variant": w.label, "name": w.name, "backend": w.backend, "kind": w.kind, "unit": w.unit,
                     "rate": {"median": median, "min": low, "max": high}, "rounds": len(rates),
                     "slow_rounds": sum(slow), "slow_per_round": slow, "ratios": ratios})
    return rows


def rounds_records(rounds, threshold_ns=SLOW_PHASE_NS):
    """The JSON records of every round and every sample of one Rounds."""
    records, samples = [], []
    for i, (order, seconds, rates) in enumerate(zip(rounds.orders, rounds.seconds, rounds.rates)):
        where = {"suite": rounds.suite, "group": rounds.group, "threads": rounds.threads, "round": i}
        records.append({**where, "ops": rounds.ops, "order": order, "probe_before_ns": rounds.probes[i],
                        "probe_after_ns": rounds.probes[i + 1], "slow": rounds.slow(i, threshold_ns)})
        samples += [{**where, "position": p, "variant": label, "seconds": seconds[label], "rate": rates[label]}
                    for p, label in enumerate(order)]
    return records, samples


# ---- text -----------------------------------------------------------------------------------


def ratio_text(ratio):
    """1.64x [1.50-1.80] vs queue.Queue: the median of the per-round ratios, their spread."""
    text = f"{ratio['median']:.2f}x"
    if len(ratio["per_round"]) > 1:
        text += f" [{ratio['min']:.2f}-{ratio['max']:.2f}]"
    return f"{text} vs {ratio['baseline']}"


def _probe_text(ns, threshold_ns):
    return "-" if ns is None else f"{ns:.0f}{'*' if ns > threshold_ns else ''}"


def print_block(rounds, rows, threshold_ns, out):
    """One group at one thread count: the probe line (slow rounds marked), then a row per
    variant."""
    n = len(rounds.rates)
    slow = [i + 1 for i in range(n) if rounds.slow(i, threshold_ns)]
    probes = " ".join(_probe_text(p, threshold_ns) for p in rounds.probes)
    phase = (f"round{'s' if len(slow) > 1 else ''} {', '.join(map(str, slow))} of {n} in a slow phase" if slow
             else "no round in a slow phase")
    print(f"  {rounds.group}, {threads_text(rounds.threads)}: {n} rounds; "
          f"cache-line probe {probes} ns (* above {threshold_ns} ns: {phase})", file=out)
    width = max(34, *(len(r["variant"]) for r in rows))
    for row in rows:
        rate = row["rate"]
        ratios = ", ".join(ratio_text(r) for r in row["ratios"]) or "baseline"
        low_high = "({:.2f}-{:.2f})".format(rate["min"] / 1e6, rate["max"] / 1e6)
        print(f"    {row['variant']:<{width}} {rate['median'] / 1e6:>9.2f} {low_high:<17} {ratios}", file=out)


# ---- JSON -----------------------------------------------------------------------------------


def interpreter_info():
    gil = sys._is_gil_enabled() if hasattr(sys, "_is_gil_enabled") else True
    import sysconfig

    free_threaded = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    version = platform.python_version()
    implementation = platform.python_implementation()
    short = ".".join(version.split(".")[:2]) + ("t" if free_threaded else "")
    label = f"{implementation} {short}"
    if implementation == "PyPy":
        pypy = ".".join(map(str, sys.pypy_version_info[:3]))
        label = f"PyPy {pypy} ({short})"
    return {"implementation": implementation, "version": version, "free_threaded_build": free_threaded,
            "gil_enabled": gil, "executable": sys.executable, "label": label}


def machine_info(probes, threshold_ns):
    return {"platform": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "line_transfer_ns": probes, "slow_phase_ns": threshold_ns}


def machine_line(probes, slow_rounds, rounds, threshold_ns):
    """The machine in one line: what the cache-line probe read over the run."""
    known = sorted(p for p in probes if p is not None)
    if not known:
        return "the cache-line probe could not run (its thread never started in time)"
    median = known[len(known) // 2]
    return (f"a cache line moves between two CPUs in {median:.0f} ns (median of {len(probes)} probes, "
            f"{known[0]:.0f}-{known[-1]:.0f}); {slow_rounds} of {rounds} rounds in a slow phase (> {threshold_ns} ns)")


def write_json(path, document):
    with open(path, "w") as f:
        json.dump(document, f, indent=1)
        f.write("\n")


# ---- plot -----------------------------------------------------------------------------------

MISSING_MATPLOTLIB = ("--plot needs matplotlib, which is not importable here; install the optional extra: "
                      "pip install 'ft_utils[bench]' (or pip install matplotlib)")


def matplotlib_missing():
    """None if matplotlib can be imported, else the message that says what to install."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return MISSING_MATPLOTLIB
    return None


def plot(path, rows, title):
    """One panel per (suite, group): each variant's ratio to its first baseline per thread
    count (median, a bar from min to max, a dot per round and a cross per round taken in
    a slow phase), on a log scale with 1x marked."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    with warnings.catch_warnings():  # an older matplotlib with a newer pyparsing warns of its own use of it
        warnings.simplefilter("ignore", DeprecationWarning)
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    panels = []
    for row in rows:
        if (row["suite"], row["group"]) not in panels:
            panels.append((row["suite"], row["group"]))
    columns = min(3, len(panels))
    lines = (len(panels) + columns - 1) // columns
    fig, axes = plt.subplots(lines, columns, figsize=(5.5 * columns, 4.2 * lines), squeeze=False)
    for ax, (suite, group) in zip(axes.flat, panels):
        mine = [r for r in rows if (r["suite"], r["group"]) == (suite, group) and r["ratios"]]
        threads = sorted({r["threads"] for r in mine})
        variants = list(dict.fromkeys(r["variant"] for r in mine))
        for k, variant in enumerate(variants):
            points = [r for r in mine if r["variant"] == variant]
            ratio = [r["ratios"][0] for r in points]
            x = [threads.index(r["threads"]) + (k - (len(variants) - 1) / 2) * 0.06 for r in points]
            medians = [q["median"] for q in ratio]
            errors = [[m - q["min"] for m, q in zip(medians, ratio)], [q["max"] - m for m, q in zip(medians, ratio)]]
            line = ax.errorbar(x, medians, yerr=errors, marker="o", capsize=3,
                               label=f"{variant} / {ratio[0]['baseline']}")
            for xi, q, r in zip(x, ratio, points):
                for value, slow in zip(q["per_round"], r["slow_per_round"]):
                    ax.plot([xi + 0.025], [value], "x" if slow else ".", color=line[0].get_color(), alpha=0.6)
        ax.axhline(1.0, color="grey", linewidth=0.8)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xticks(range(len(threads)))
        ax.set_xticklabels([str(t) for t in threads])
        ax.set_xlabel("threads")
        ax.set_ylabel("ratio to the baseline")
        ax.set_title(f"{suite}: {group}")
        ax.legend(fontsize="x-small")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.suptitle(f"{title}\nmedian of the per-round ratios, bar: min-max over the rounds, "
                 f"dots: the rounds (x: taken in a slow phase)", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---- the combined table of several runs -----------------------------------------------------


def combined_table(documents):
    """One table of several runs' JSON documents: a row per (suite, group, workload,
    threads), a column per (interpreter, backend). A cell of ours holds the median
    per-round ratio to the row's first baseline with its spread; a baseline's or a peer's
    row (measured once per interpreter) repeats its figure under each backend of it."""
    columns = [(doc["interpreter"]["label"], b) for doc in documents for b in doc["ft_utils"]["backends"]]
    cells, order, versus = {}, [], {}
    for doc in documents:
        interp = doc["interpreter"]["label"]
        for row in doc["rows"]:
            key = (row["suite"], row["group"], row["name"], str(row["threads"]))
            if key not in order:
                order.append(key)
            if row["ratios"]:
                r = row["ratios"][0]
                versus[key] = r["baseline"]
                text = f"{r['median']:.2f}x [{r['min']:.2f}-{r['max']:.2f}]"
            else:
                versus[key] = f"M {row['unit']}/s"
                text = f"{row['rate']['median'] / 1e6:.2f}"
            for column in columns:
                if column[0] == interp and row["backend"] in (None, column[1]):
                    cells[key + column] = text
    head = ["suite", "group", "workload", "threads", "vs"] + [f"{i} {b}" for i, b in columns]
    table = [head] + [list(key) + [versus[key]] + [cells.get(key + c, "") for c in columns] for key in order]
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table)


def combine_main(argv=None):
    """python -m ft_utils.bench.combine FILE.json...: prints the combined table."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ft_utils.bench.combine",
                                     description="One table of several `python -m ft_utils.bench --json` runs.")
    parser.add_argument("files", nargs="+", help="JSON files written by --json")
    parser.add_argument("--plot", metavar="DIR",
                        help="also draw each run's plot, as its --plot would have, into DIR/NAME.png (NAME: the "
                             "JSON file's name): a run on an interpreter without matplotlib gets its plot here")
    args = parser.parse_args(argv)
    if args.plot is not None:
        missing = matplotlib_missing()
        if missing is not None:
            parser.error(missing)
    documents = []
    for name in args.files:
        try:
            with open(name) as f:
                doc = json.load(f)
        except (OSError, ValueError) as exc:
            parser.error(f"cannot read {name}: {exc}")
        if doc.get("schema") != SCHEMA:
            parser.error(f"{name} is not the JSON of python -m ft_utils.bench ({SCHEMA})")
        documents.append(doc)
    for doc in documents:
        i = doc["interpreter"]
        print(f"{i['label']}: {doc['machine_line']}")
    print()
    print(combined_table(documents))
    if args.plot is not None:
        os.makedirs(args.plot, exist_ok=True)
        for name, doc in zip(args.files, documents):
            path = os.path.join(args.plot, os.path.splitext(os.path.basename(name))[0] + ".png")
            plot(path, doc["rows"], f"{doc['interpreter']['label']}: {doc['machine_line']}")
            print(f"plot: {path}")
    return 0
