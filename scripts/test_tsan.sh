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
# belongs to .venv/ft) and the tests run with -P, so that they import that one.
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
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 history_size=7 suppressions=$PWD/tests/tsan/suppressions.txt log_path=$PWD/$reports/report"
export FT_UTILS_BACKEND=native FT_UTILS_TEST_BACKENDS=native
export HYPOTHESIS_PROFILE="${HYPOTHESIS_PROFILE:-default}"
# The selection: the stress tests (many threads checking an invariant) and every test
# whose name says it starts threads, in the files of the types (not the docs, typing,
# bootstrap or benchmark files, which start none). Not the signal storms: TSan delivers a
# signal at its next interception point, always inside the next wait there, so a storm
# interrupts nearly every wait and tests TSan rather than us. Arguments are added to
# pytest's (-v, -x, a --deselect, or test paths to run as well).
selection=(
    -k "(stress or threads or shared or blocked or woken or handoff or deadlock or ring or race) and not storm and not signal"
    --ignore=tests/test_backends.py --ignore=tests/test_docs.py --ignore=tests/test_docs_claims.py
    --ignore=tests/test_typing.py --ignore=tests/test_bootstrap.py --ignore=tests/test_bench.py
    --ignore=tests/test_allocation_failures.py tests "$@")
log "pytest ${selection[*]}"
status=0
"$venv/bin/python" -P -X faulthandler -m pytest -p no:cacheprovider -q "${selection[@]}" || status=$?
count=$(cat "$reports"/report.* 2>/dev/null | grep -c '^WARNING: ThreadSanitizer' || true)
if [ "$count" != 0 ]; then
    cat "$reports"/report.* >&2
    log "$count ThreadSanitizer report(s), above (also in $reports/)"
    status=1
fi
log "pytest exit status $status, $count ThreadSanitizer reports"
exit $status
