"""python -m ft_utils.bench, the command line: a quick run of every suite with tiny counts,
what --json holds, --plot (where matplotlib is installed), --peers, the backends side by
side, the progress display, the combined table of make bench-all, and usage errors. The
figures themselves are not checked here (benchmarks are programs, not timed tests)."""

import contextlib
import io
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from ft_utils import _backend
from ft_utils.bench import harness, report
from ft_utils.bench.__main__ import SUITES, main
from ft_utils.bench.progress import Progress
from conftest import BACKENDS

ROOT = Path(__file__).resolve().parent.parent
TINY = ["--quick", "--ops", "300", "--repeats", "2", "--threads", "1,2", "--progress", "off"]


def run(argv):
    """main(argv) -> (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One quick run of every suite on the backends under test, with its JSON."""
    path = tmp_path_factory.mktemp("bench") / "out.json"
    code, out, err = run(TINY + ["--backends", ",".join(BACKENDS), "--json", str(path)])
    assert code == 0, err
    return out, json.loads(path.read_text())


@pytest.mark.timeout(90)
def test_quick_run_prints_every_suite_with_paired_ratios(quick):
    out, doc = quick
    for suite in SUITES:
        assert re.search(rf"^{suite}: .*\(M (ops|items)/s\)$", out, re.M), out
    # a block per group and thread count, with the probe before each round and after the last
    blocks = re.findall(r"^  (.+), (\d) threads?: 2 rounds; cache-line probe ((?:[\d*-]+ ){3})ns", out, re.M)
    assert len(blocks) == 5 * 2, out  # counter, 3 dict mixes, producers/consumers; 1 and 2 threads
    assert re.search(r"\d+\.\d\dx \[\d+\.\d\d-\d+\.\d\d\] vs Lock \+ int", out), out
    for backend in BACKENDS:
        assert f"AtomicInt64.incr [{backend}]" in out and f"ConcurrentDict [{backend}]" in out, out
        assert f"ConcurrentGatheringIterator [{backend}]" in out, out
    assert "wake-up latency" in out and "CPU of a consumer blocked" in out, out
    assert re.search(r"^machine: a cache line moves between two CPUs in \d+ ns", out, re.M), out


@pytest.mark.timeout(90)
def test_json_holds_every_sample_and_round(quick):
    out, doc = quick
    assert doc["schema"] == report.SCHEMA
    assert doc["options"]["quick"] is True and doc["options"]["repeats"] == 2 and doc["options"]["ops"] == 300
    assert doc["extras"]["queues"]["sizes"] == __import__("ft_utils.bench.queues").bench.queues.EXTRAS_SIZES["quick"]
    assert doc["interpreter"]["implementation"] == __import__("platform").python_implementation()
    assert doc["interpreter"]["version"] == __import__("platform").python_version()
    assert doc["ft_utils"]["backends"] == BACKENDS and doc["ft_utils"]["version"]
    assert doc["ft_utils"]["commit"] is None or re.fullmatch(r"[0-9a-f]{7,}(\+dirty)?", doc["ft_utils"]["commit"])
    assert doc["peers"] == {} and doc["machine"]["cpus"] == os.cpu_count()
    assert doc["machine_line"] in out
    assert len(doc["machine"]["line_transfer_ns"]) == 5 * 2 * 3  # blocks x (rounds + 1)
    assert len(doc["rounds"]) == 5 * 2 * 2
    variants = {(v["variant"], v["group"]) for s in doc["suites"].values() for v in s["variants"]}
    assert len(doc["samples"]) == sum(len(r["order"]) for r in doc["rounds"])
    assert {(s["variant"], s["group"]) for s in doc["samples"]} == variants
    threshold = doc["machine"]["slow_phase_ns"]
    for r in doc["rounds"]:
        # each round runs every variant of its group once, the order rotating by one
        assert sorted(r["order"]) == sorted(v for v, g in variants if g == r["group"])
        first = next(x for x in doc["rounds"] if (x["suite"], x["group"], x["threads"], x["round"]) ==
                     (r["suite"], r["group"], r["threads"], 0))
        shift = r["round"] % len(r["order"])
        assert r["order"] == first["order"][shift:] + first["order"][:shift]
        probes = (r["probe_before_ns"], r["probe_after_ns"])
        assert r["slow"] == any(p is None or p > threshold for p in probes)
    # every ratio is taken within a round, from that round's two samples
    rate = {(s["suite"], s["group"], s["threads"], s["round"], s["variant"]): s["rate"] for s in doc["samples"]}
    for row in doc["rows"]:
        assert row["rounds"] == 2
        for ratio in row["ratios"]:
            expected = [rate[(row["suite"], row["group"], row["threads"], i, row["variant"])] /
                        rate[(row["suite"], row["group"], row["threads"], i, ratio["baseline"])] for i in range(2)]
            assert ratio["per_round"] == pytest.approx(expected)
            assert ratio["median"] == pytest.approx(statistics.median(expected))
            assert ratio["min"] <= ratio["median"] <= ratio["max"]


def test_slow_rounds_are_marked(capsys):
    def worker(state, index, ops):
        state["n"] += ops

    def verify(state, threads, ops):
        assert state["n"] == threads * ops

    variants = [harness.Workload("a", lambda t, o: {"n": 0}, worker, verify),
                harness.Workload("b", lambda t, o: {"n": 0}, worker, verify, baseline="a")]
    readings = iter([40, 40, 40, 250, 250, 250, 40, 40, 40, None, None, None])
    rounds = harness.run_rounds("s", "g", variants, 1, 10, 3, probe=lambda hops, budget: next(readings))
    assert rounds.probes == [40, 250, 40, None]
    assert [rounds.slow(i) for i in range(3)] == [True, True, True]
    assert [rounds.slow(i, threshold_ns=300) for i in range(3)] == [False, False, True]
    rows = report.rows_of(rounds, variants)
    assert rows[1]["slow_rounds"] == 3 and rows[1]["ratios"][0]["fast_median"] is None
    report.print_block(rounds, rows, 100, sys.stdout)
    out = capsys.readouterr().out
    assert "cache-line probe 40 250* 40 - ns (* above 100 ns: rounds 1, 2, 3 of 3 in a slow phase)" in out, out
    assert [r["slow"] for r in report.rounds_records(rounds)[0]] == [True, True, True]


@pytest.mark.skipif(len(_backend.available()) < 2, reason="one backend on this interpreter")
@pytest.mark.timeout(60)
def test_every_backend_runs_in_the_same_rounds(tmp_path):
    path = tmp_path / "out.json"
    code, out, err = run(TINY + ["--only", "atomics", "--json", str(path)])
    assert code == 0, err
    doc = json.loads(path.read_text())
    assert doc["ft_utils"]["backends"] == _backend.available()
    for r in doc["rounds"]:
        assert {f"AtomicInt64.incr [{b}]" for b in _backend.available()} <= set(r["order"])


@pytest.mark.timeout(60)
def test_peers_are_measured_where_importable(tmp_path):
    path = tmp_path / "out.json"
    code, out, err = run(TINY + ["--only", "atomics", "--peers", "--json", str(path)])
    assert code == 0, err
    doc = json.loads(path.read_text())
    try:
        import cereggii  # noqa: F401
    except ImportError:
        assert doc["peers"] == {} and "--peers: none importable here" in out, out
        return
    assert doc["peers"]["cereggii"]
    assert "cereggii AtomicInt64.increment_and_get" in out and "vs cereggii AtomicRef CAS-incr" in out, out


@pytest.mark.timeout(90)
def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (ft_utils[bench]) is not installed here "
                                             "(scripts/bootstrap.sh installs it where PyPI has a wheel)")
    path = tmp_path / "out.png"
    code, out, err = run(TINY + ["--only", "atomics", "--plot", str(path)])
    assert code == 0, err
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert f"wrote {path}" in out


def test_plot_without_matplotlib_says_what_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    with pytest.raises(SystemExit) as exc:
        main(TINY + ["--plot", str(tmp_path / "out.png")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--plot needs matplotlib" in err and "pip install 'ft_utils[bench]'" in err, err


@pytest.mark.parametrize("argv, words", [
    (["--repeats", "0"], "must be a positive integer"),
    (["--ops", "-3"], "must be a positive integer"),
    (["--threads", "1,x"], "must be comma-separated integers"),
    (["--threads", "0,2"], "thread counts must be positive"),
    (["--only", "nope"], "invalid choice"),
    (["--backends", "nope"], "not available here"),
    (["--json", "/nonexistent-dir/out.json"], "does not exist"),
    (["--progress", "sometimes"], "invalid choice"),
    (["--no-such-option"], "unrecognized arguments"),
])
def test_bad_arguments_are_usage_errors(argv, words, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m ft_utils.bench") and words in err, err


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere():
    terminal, log = _Terminal(), io.StringIO()
    for stream in (terminal, log):
        progress = Progress(4, stream=stream)
        for i in range(4):
            progress.sample(1, "atomics", f"counter, 1 thread, round {i // 2 + 1}/2", "Lock + int", i % 2 == 1)
        progress.line("queues: idle CPU")
    assert terminal.getvalue().count("\r\x1b[K[#") == 4
    assert terminal.getvalue().endswith("Lock + int\r\x1b[K[bench] queues: idle CPU\n")  # the bar cleared first
    assert "[##########..........]  50% 0:00 left | atomics | counter, 1 thread, round 1/2, Lock + int" \
        in terminal.getvalue(), terminal.getvalue()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 3, lines  # one per round, one per stage
    assert re.fullmatch(r"\[bench\]  50% \d+:\d\d left \| atomics \| counter, 1 thread, round 1/2", lines[0]), lines
    off = io.StringIO()
    progress = Progress(1, stream=off, mode="off")
    progress.sample(1, "a", "b", "c", True)
    progress.line("d")
    assert off.getvalue() == ""


@pytest.mark.timeout(90)
def test_combined_table_of_several_runs(quick, tmp_path, capsys):
    from ft_utils.bench.report import combine_main

    out, doc = quick
    other = json.loads(json.dumps(doc))
    other["interpreter"]["label"] = "PyPy 9.9.9 (3.99)"
    other["ft_utils"]["backends"] = ["cffi"]
    for row in other["rows"]:
        row["backend"] = "cffi" if row["backend"] else None
    files = [tmp_path / "a.json", tmp_path / "b.json"]
    for path, d in zip(files, (doc, other)):
        path.write_text(json.dumps(d))
    assert combine_main([str(f) for f in files]) == 0
    table = capsys.readouterr().out
    label = doc["interpreter"]["label"]
    head = next(line for line in table.splitlines() if line.startswith("suite"))
    for backend in BACKENDS:
        assert f"{label} {backend}" in head, table
    assert "PyPy 9.9.9 (3.99) cffi" in head, table
    incr = [line for line in table.splitlines() if re.match(r"atomics +counter +AtomicInt64\.incr +2 ", line)]
    assert len(incr) == 1 and len(re.findall(r"\d+\.\d\dx \[", incr[0])) == len(BACKENDS) + 1, table
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(SystemExit):
        combine_main([str(bad)])
    assert "is not the JSON of python -m ft_utils.bench" in capsys.readouterr().err


def test_combine_draws_each_runs_plot(quick, tmp_path, capsys):
    """make bench-all's plots: one per run's JSON, drawn where matplotlib is (a PyPy run
    may have none)."""
    pytest.importorskip("matplotlib", reason="matplotlib (ft_utils[bench]) is not installed here "
                                             "(scripts/bootstrap.sh installs it where a wheel exists)")
    from ft_utils.bench.report import combine_main

    out, doc = quick
    path = tmp_path / "gil.json"
    path.write_text(json.dumps(doc))
    assert combine_main(["--plot", str(tmp_path / "plots"), str(path)]) == 0
    png = tmp_path / "plots" / "gil.png"
    assert f"plot: {png}" in capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


@pytest.mark.timeout(90)
def test_runs_as_a_module_with_plain_progress_lines(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT)] + sys.path))
    result = subprocess.run([sys.executable, "-m", "ft_utils.bench", "--quick", "--ops", "200", "--repeats", "1",
                             "--threads", "1", "--only", "atomics"],
                            capture_output=True, text=True, env=env, timeout=80)
    assert result.returncode == 0, result.stderr
    assert "atomics: every thread increments one shared counter" in result.stdout
    assert re.search(r"^\[bench\] 100% 0:00 left \| atomics \| counter, 1 thread, round 1/1$", result.stderr, re.M), \
        result.stderr
    assert "\r" not in result.stderr
