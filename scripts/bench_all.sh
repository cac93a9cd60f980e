#!/usr/bin/env bash
# make bench-all: python -m ft_utils.bench --peers on every interpreter (.venv/ft,
# .venv/gil, .venv/pypy; each measures every backend it has, side by side in the same
# rounds), then one table of them all (python -m ft_utils.bench.combine):
# interpreter x backend x workload x threads. Each run's report goes to
# build/bench/ENV.txt and its JSON to build/bench/ENV.json; the table to
# build/bench/combined.txt too, and each run's plot to build/bench/ENV.png (drawn from its
# JSON by the first environment that has matplotlib, the optional extra ft_utils[bench]:
# PyPy may have none). Arguments go to every run (e.g. --quick).
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
plot=()
for env in ${BENCH_ENVS:-ft gil pypy}; do
    if ".venv/$env/bin/python" -c "import matplotlib" 2>/dev/null; then
        python=".venv/$env/bin/python"
        plot=(--plot "$out")
        break
    fi
done
[ ${#plot[@]} -gt 0 ] || echo "no environment has matplotlib (pip install 'ft_utils[bench]'): no plots" >&2
"$python" -m ft_utils.bench.combine "${plot[@]}" "${files[@]}" | tee "$out/combined.txt"
