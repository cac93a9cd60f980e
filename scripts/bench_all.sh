#!/usr/bin/env bash
# make bench-all: python -m ft_utils.bench --peers on every interpreter (.venv/ft,
# .venv/gil, .venv/pypy; each measures every backend it has, side by side in the same
# rounds), then one table of them all (python -m ft_utils.bench.combine):
# interpreter x backend x workload x threads. Each run's report goes to
# build/bench/ENV.txt and its JSON to build/bench/ENV.json; the table to
# build/bench/combined.txt too. Arguments go to every run (e.g. --quick).
# BENCH_ENVS="ft gil" picks the environments.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/bench
mkdir -p "$out"
files=()
for env in ${BENCH_ENVS:-ft gil pypy}; do
    python=".venv/$env/bin/python"
    echo "== .venv/$env: python -m ft_utils.bench --peers $* (report: $out/$env.txt)" >&2
    "$python" -m ft_utils.bench --peers --json "$out/$env.json" "$@" > "$out/$env.txt"
    grep -E '^(machine|took)' "$out/$env.txt" >&2
    files+=("$out/$env.json")
done
echo >&2
"$python" -m ft_utils.bench.combine "${files[@]}" | tee "$out/combined.txt"
