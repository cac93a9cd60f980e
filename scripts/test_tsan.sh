#!/usr/bin/env bash
# make test-tsan: the native extension under ThreadSanitizer, in a free-threaded CPython
# that is itself built with ThreadSanitizer (scripts/build_freethreaded_cpython.sh --tsan,
# cached beside the other build), running the tests that start threads.
#
# TSan stops the process at its first report (halt_on_error=1), so a run either passes or
# fails on a race. tests/tsan/suppressions.txt silences reports inside CPython only, each
# with its reason; none is allowed for ft_utils code.
#
# The extension is installed into .venv/tsan (not in place: the checkout's cp313t module
# belongs to .venv/ft). PYTHONSAFEPATH keeps the checkout off sys.path in pytest and in
# every child interpreter the tests start (a child run from the checkout would otherwise
# import the uninstrumented module, whose atomics TSan cannot see, and report races that
# are not there); the run checks that the installed module is the one imported.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { echo "[test-tsan] $*" >&2; }

python=$(scripts/build_freethreaded_cpython.sh --tsan | tail -n1)
venv=.venv/tsan
if ! "$venv/bin/python" -c 'import pytest, hypothesis, pytest_timeout, setuptools' 2>/dev/null; then
    log "creating $venv from $python"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade --only-binary=:all: \
        "setuptools>=77" wheel pytest pytest-timeout hypothesis >&2
fi
log "building ft_utils with -fsanitize=thread (the interpreter's own flags)"
rm -rf build
"$venv/bin/python" -m pip install -q --disable-pip-version-check --no-build-isolation --no-deps \
    --force-reinstall . >&2
rm -rf build

# Reports go to files (pytest captures the process's stderr, and a halted process never
# prints what was captured); they are shown at the end.
reports=build/tsan
rm -rf "$reports"; mkdir -p "$reports"
# history_size=7: the largest, so that the stack of the earlier access can be restored
# (a report without it cannot be matched by a suppression, nor understood).
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 history_size=7 suppressions=${TSAN_SUPPRESSIONS:-$PWD/tests/tsan/suppressions.txt} log_path=$PWD/$reports/report"
export FT_UTILS_BACKEND=native FT_UTILS_TEST_BACKENDS=native
export PYTHONSAFEPATH=1
imported=$("$venv/bin/python" -c 'import ft_utils._native as m; print(m.__file__)')
case "$imported" in
    "$PWD/$venv/"*) log "testing $imported" ;;
    *) log "the tests would import $imported, not the instrumented build in $venv"; exit 1 ;;
esac
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-default}"
# The selection: every test that starts a thread (conftest.py's --threaded-only reads each
# test's code, and the helpers and child scripts it uses, for a thread being started), on
# every file. Not the signal storms: TSan delivers a signal at its next interception
# point, always inside the next wait there, so a storm interrupts nearly every wait and
# tests TSan rather than us. Not tests/test_exit_and_fork.py nor the other fork tests:
# ThreadSanitizer cannot start a thread in the child of a process that had several (it
# stops the child), and their children do; the core's fork handling runs under TSan in
# tests/c/test_fork.c, and an exit with daemon threads races only inside CPython (see the
# suppressions). Not tests/test_allocation_failures.py: _testcapi.set_nomemory swaps
# CPython's allocator, which PyMem_SetAllocator allows only while no other thread runs,
# and pytest's faulthandler watchdog thread always does (TSan reported that race inside
# CPython at the first case); its own thread only watches for a hang.
# Everything runs 5-15 times slower under TSan, so the per-test
# timeout is 400 s instead of 120 (a hung test still fails, with every thread's stack).
# Arguments are added to pytest's (-v, -x, a --deselect, test paths to narrow the run).
selection=(--threaded-only -k "not storm and not fork and not allocations_failing" -o timeout=400 -o faulthandler_timeout=390 "$@")
log "pytest ${selection[*]}"
status=0
"$venv/bin/python" -X faulthandler -m pytest -p no:cacheprovider -q "${selection[@]}" || status=$?
count=$(cat "$reports"/report.* 2>/dev/null | grep -c '^WARNING: ThreadSanitizer' || true)
if [ "$count" != 0 ]; then
    cat "$reports"/report.* >&2
    log "$count ThreadSanitizer report(s), above (also in $reports/)"
    status=1
fi
log "pytest exit status $status, $count ThreadSanitizer reports"
exit $status
