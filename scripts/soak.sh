#!/usr/bin/env bash
# The soak test (tests/soak.py: every type at once under many threads, conservation and
# memory checked) on every interpreter and backend of the test matrix:
#   .venv/ft   native  SOAK_SECONDS (default 180): free-threaded CPython, the target
#   .venv/gil  native  a quarter of that (at least 15 s)
#   .venv/gil  cffi    a quarter
#   .venv/pypy cffi    a quarter
# SOAK_ARGS adds options (e.g. SOAK_ARGS="--threads 16 --seed 7"). Prints each report, then
# a summary; exits non-zero if any run failed. Reports are kept in build/soak-*.log.
set -uo pipefail
cd "$(dirname "$0")/.."

seconds="${SOAK_SECONDS:-180}"
share=$(( seconds / 4 ))
[ "$share" -ge 15 ] || share=15
mkdir -p build

declare -a rows=()
status=0

soak() { # venv, backend, seconds
    local venv="$1" backend="$2" secs="$3" log="build/soak-$1-$2.log"
    echo "== soak on .venv/$venv, backend $backend, $secs s"
    # shellcheck disable=SC2086
    FT_UTILS_BACKEND="$backend" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" \
        ".venv/$venv/bin/python" -X faulthandler tests/soak.py --seconds "$secs" ${SOAK_ARGS:-} 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    local line
    line=$(grep -aE '^soak: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    rows+=("$(printf '%-16s %5s s  %s  %s' "$venv/$backend" "$secs" "${line:-soak: no report}" \
        "$([ "$rc" = 0 ] && echo ok || echo "FAILED (exit $rc)")")")
    [ "$rc" = 0 ] || status=1
}

soak ft native "$seconds"
soak gil native "$share"
soak gil cffi "$share"
soak pypy cffi "$share"

echo
echo "== soak summary"
printf '%s\n' "${rows[@]}"
exit $status
