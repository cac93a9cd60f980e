#!/usr/bin/env bash
# Runs the whole test matrix and prints what passed where:
#   C core tests: plain, under ThreadSanitizer, under AddressSanitizer+UBSan;
#   pytest on each interpreter x backend: ft/native, gil/native, gil/cffi, pypy/cffi;
#   the soak (tests/soak.py) for 30 s on ft/native and 15 s on each of the others.
# Exits non-zero if anything failed. `--c-only` runs just the C tests.
set -uo pipefail
cd "$(dirname "$0")/.."
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-$([ -n "${CI:-}" ] && echo ci || echo default)}"

declare -a rows=()
status=0
total_passed=0
total_failed=0

record() { # name, passed, failed, exit code
    rows+=("$(printf '%-22s %6s passed %4s failed  %s' "$1" "$2" "$3" "$([ "$4" = 0 ] && echo ok || echo "FAILED (exit $4)")")")
    total_passed=$((total_passed + $2))
    total_failed=$((total_failed + $3))
    [ "$4" = 0 ] || status=1
}

# ---- C tests ---------------------------------------------------------------------------
CC="${CC:-gcc}"
CFLAGS_COMMON=(-std=c11 -Wall -Wextra -Werror -Icsrc -pthread -DFTU_TEST_HOOKS)
mkdir -p build/c
c_suite() { # label, extra flags...: builds and runs every tests/c/test_*.c, adds up
    local label="$1"; shift
    local passed=0 failed=0 rc=0 test exe out line
    for test in tests/c/test_*.c; do
        exe="build/c/$(basename "$test" .c)-${label//[^a-z]/_}"
        if ! "$CC" "${CFLAGS_COMMON[@]}" "$@" csrc/*.c "$test" -o "$exe"; then
            failed=$((failed + 1)); rc=1; continue
        fi
        out=$(timeout 600 "$exe" 2>&1) || rc=$?
        echo "$out" | tail -n 20
        line=$(echo "$out" | grep -E '^[0-9]+ passed, [0-9]+ failed$' | tail -n1)
        if [ -z "$line" ]; then failed=$((failed + 1)); rc=${rc/#0/1}; continue; fi
        passed=$((passed + $(echo "$line" | awk '{print $1}')))
        failed=$((failed + $(echo "$line" | awk '{print $3}')))
    done
    record "C $label" "$passed" "$failed" "$rc"
}
echo "== C core tests"
c_suite "plain" -O2
c_suite "tsan" -O1 -g -fsanitize=thread
c_suite "asan+ubsan" -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

# ---- pytest matrix -------------------------------------------------------------------
py_suite() { # venv, backend
    local venv="$1" backend="$2" log="build/pytest-$1-$2.log"
    echo "== pytest on .venv/$venv, backend $backend"
    FT_UTILS_BACKEND="$backend" FT_UTILS_TEST_BACKENDS="$backend" \
        ".venv/$venv/bin/python" -X faulthandler -m pytest -p no:cacheprovider -q tests 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    local summary passed failed
    summary=$(tail -n 1 "$log")
    passed=$(echo "$summary" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || true)
    failed=$(echo "$summary" | grep -oE '[0-9]+ (failed|errors?)' | awk '{s += $1} END {print s + 0}')
    [ "$rc" != 0 ] && [ "$failed" = 0 ] && failed=1
    record "$venv/$backend" "${passed:-0}" "$failed" "$rc"
}

# ---- soak (tests/soak.py; `make soak` runs it for minutes) -----------------------------
soak_suite() { # venv, backend, seconds: its checks passed/failed as one row
    local venv="$1" backend="$2" seconds="$3" log="build/soak-test-$1-$2.log"
    echo "== soak on .venv/$venv, backend $backend, $seconds s"
    FT_UTILS_BACKEND="$backend" PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" \
        ".venv/$venv/bin/python" -X faulthandler tests/soak.py --seconds "$seconds" --progress 0 2>&1 | tee "$log"
    local rc=${PIPESTATUS[0]}
    local line passed failed
    line=$(grep -aE '^soak: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    passed=$(echo "$line" | awk '{print $2}')
    failed=$(echo "$line" | awk '{print $4}')
    [ "$rc" != 0 ] && [ "${failed:-0}" = 0 ] && failed=1
    record "soak $venv/$backend ${seconds}s" "${passed:-0}" "${failed:-0}" "$rc"
}

if [ "${1:-}" != "--c-only" ]; then
    py_suite ft native
    py_suite gil native
    py_suite gil cffi
    py_suite pypy cffi
    soak_suite ft native 30
    soak_suite gil native 15
    soak_suite gil cffi 15
    soak_suite pypy cffi 15
fi

echo
echo "== summary (hypothesis profile: $HYPOTHESIS_PROFILE)"
printf '%s\n' "${rows[@]}"
echo "$total_passed passed, $total_failed failed"
exit $status
