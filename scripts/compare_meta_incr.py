"""Our AtomicInt64 against Meta's ft_utils 0.2.0 on free-threaded CPython, in paired rounds.

Meta's ft_utils (PyPI, sdist only) has our import name, `ft_utils`, so the two never share
an environment or a process: build it into a venv of its own from the same interpreter,

    .venv/ft/bin/python -m venv /tmp/meta-ft-utils
    /tmp/meta-ft-utils/bin/pip install ft_utils==0.2.0

then, from the checkout (ours is imported from it, built in place or installed):

    .venv/ft/bin/python scripts/compare_meta_incr.py --peer /tmp/meta-ft-utils/bin/python

Each side is a child process (the parent imports neither package), new in every
round. A run is one operation (`--op`, default incr) at one thread count: N
new threads, started behind a barrier, each call the bound method `--ops` times on one
shared counter; the wall time is from the barrier to the last join, and the counter's
final value is checked. A round runs ours and the peer back to back at each thread count,
in an order that alternates from round to round; the ratio of a round is the peer's time
over ours (above 1: ours is faster). These VMs have phases of seconds in which a cache
line takes ~5x as long to move between CPUs, and other work on the machine takes CPUs
away, so only ratios taken within a round mean anything: the script prints, per thread
count, the median of the per-round ratios and their spread (quartiles, min..max), never
a ratio of medians. Beside the wall-clock ratio it prints the ratio of the threads' CPU
time, which time spent descheduled does not inflate (on a loaded machine the steadier of
the two at 1 thread). Each child also checks that the GIL stayed disabled after the import (a
module that does not declare itself free-threading safe turns it back on, and would then
be measured with a lock around every call).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

# Each body runs `ops` times on the shared AtomicInt64 `c` (both packages have these).
OPS = {
    "incr": "f = c.incr\n    for _ in range(ops): f()",
    "decr": "f = c.decr\n    for _ in range(ops): f()",
    "get": "f = c.get\n    for _ in range(ops): f()",
    "set": "f = c.set\n    for i in range(ops): f(i)",
    "iadd": "x = c\n    for _ in range(ops): x += 1",
    "bool": "for _ in range(ops): bool(c)",
}
# The counter's expected value after `threads` workers of `ops` each, per operation.
EXPECTED = {"incr": lambda t, n: t * n, "decr": lambda t, n: -t * n, "iadd": lambda t, n: t * n}


def serve() -> None:
    """The child: reads "op threads ops" lines, runs each, answers one JSON line each."""
    import ft_utils
    from ft_utils.concurrency import AtomicInt64

    works = {}
    for op, body in OPS.items():
        namespace: dict = {}
        exec(f"def work(c, ops):\n    {body}\n", namespace)
        works[op] = namespace["work"]
    for line in sys.stdin:
        op, threads, ops = line.split()[0], int(line.split()[1]), int(line.split()[2])
        work = works[op]
        counter = AtomicInt64(0)
        barrier = threading.Barrier(threads + 1)
        cpu = [0] * threads

        def worker(i: int) -> None:
            barrier.wait()
            start = time.thread_time_ns()
            work(counter, ops)
            cpu[i] = time.thread_time_ns() - start

        pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
        for t in pool:
            t.start()
        barrier.wait()
        start = time.perf_counter_ns()
        for t in pool:
            t.join()
        wall = time.perf_counter_ns() - start
        error = None
        if op in EXPECTED and counter.get() != EXPECTED[op](threads, ops):
            error = f"{op}: counter is {counter.get()}, expected {EXPECTED[op](threads, ops)}"
        gil = getattr(sys, "_is_gil_enabled", lambda: True)()
        print(json.dumps({"wall": wall, "cpu": sum(cpu), "file": ft_utils.__file__, "gil": gil, "error": error}),
              flush=True)


class Side:
    """A child process of one side, kept for the whole comparison."""

    def __init__(self, name: str, python: str, env: dict) -> None:
        self.name, self.python = name, python
        self.proc = subprocess.Popen([python, __file__, "--serve"], env=env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.file: str | None = None

    def run(self, op: str, threads: int, ops: int) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{op} {threads} {ops}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"{self.name} ({self.python}) died: exit status {self.proc.wait()}")
        result = json.loads(line)
        if result["error"]:
            raise SystemExit(f"{self.name}: {result['error']}")
        if result["gil"]:
            raise SystemExit(f"{self.name}: the GIL is enabled in {self.python}: not a free-threaded comparison")
        self.file = result["file"]
        return result

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


def main() -> None:
    if sys.argv[1:] == ["--serve"]:
        serve()
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--peer", required=True, help="python of the venv that has Meta's ft_utils 0.2.0")
    parser.add_argument("--ours", default=sys.executable, help="python that imports our ft_utils (default: this one)")
    parser.add_argument("--ours-root", default=REPO, help="checkout our ft_utils is imported from (default: this one)")
    parser.add_argument("--op", choices=sorted(OPS), default="incr")
    parser.add_argument("--threads", default="1,2,4", help="comma-separated thread counts (default 1,2,4)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--ops", type=int, default=2_000_000, help="calls per thread per run (default 2M)")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]

    # Ours: importable from this checkout. The peer: from its own venv only, with no
    # PYTHONPATH that could put our package first.
    path = os.pathsep.join(p for p in (args.ours_root, os.environ.get("PYTHONPATH")) if p)
    ours_env = dict(os.environ, PYTHONPATH=path)
    peer_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FT_UTILS_BACKEND")}
    print(f"{args.op}: {args.ops} calls per thread, {args.rounds} rounds; ratio = peer's time / ours "
          "(wall clock; cpu: the threads' CPU time)")
    wall: dict[int, list[float]] = {t: [] for t in threads}
    cpu: dict[int, list[float]] = {t: [] for t in threads}
    for r in range(args.rounds):
        # New processes every round: where a process's objects, stacks and heap land
        # moves its timings by a percent or two for its whole life, the same way in
        # every round it serves.
        sides = {"ours": Side("ours", args.ours, ours_env), "peer": Side("peer", args.peer, peer_env)}
        for side in sides.values():  # warm-up: the first calls of the op
            side.run(args.op, 1, min(args.ops, 50_000))
        if r == 0:
            if sides["ours"].file == sides["peer"].file:
                raise SystemExit(f"both sides imported {sides['ours'].file}")
            print(f"ours: {sides['ours'].file}\npeer: {sides['peer'].file}")
        order = ["ours", "peer"] if r % 2 == 0 else ["peer", "ours"]
        line = []
        for t in threads:
            res = {name: sides[name].run(args.op, t, args.ops) for name in order}
            wall[t].append(res["peer"]["wall"] / res["ours"]["wall"])
            cpu[t].append(res["peer"]["cpu"] / res["ours"]["cpu"])
            line.append(f"{t}T {res['ours']['wall'] / args.ops:6.1f}/{res['peer']['wall'] / args.ops:6.1f} ns"
                        f" = {wall[t][-1]:.3f} (cpu {cpu[t][-1]:.3f})")
        print(f"round {r + 1:2d} {'ours,peer' if order[0] == 'ours' else 'peer,ours'}: " + "  ".join(line),
              flush=True)
        for side in sides.values():
            side.close()
    def summary(rs: list[float]) -> str:
        q = statistics.quantiles(rs, n=4) if len(rs) > 1 else [rs[0]] * 3
        return f"{statistics.median(rs):6.3f}  {q[0]:.3f}..{q[2]:.3f}  {min(rs):.3f}..{max(rs):.3f}"

    print("threads | wall: median  quartiles     min..max     | cpu: median  quartiles     min..max")
    for t in threads:
        print(f"{t:7d} |       {summary(wall[t])} |      {summary(cpu[t])}")


if __name__ == "__main__":
    main()
