#!/usr/bin/env bash
# Prepares one test environment, from nothing: system packages, interpreter, virtual
# environment with the test tools, and ft_utils built and installed into it.
#
#   scripts/bootstrap.sh ft     .venv/ft   free-threaded CPython 3.13t (native backend)
#   scripts/bootstrap.sh gil    .venv/gil  the machine's python3 (native and cffi)
#   scripts/bootstrap.sh pypy   .venv/pypy PyPy from Debian (cffi)
#
# Each step is skipped when its result is already there; the package itself is
# reinstalled every time (the Makefile calls this only when sources changed). The install
# is editable: the compiled modules land in ft_utils/ beside the sources, one per
# interpreter (their file names carry the ABI tag), so the checkout itself imports.
set -euo pipefail
cd "$(dirname "$0")/.."
name="$1"
venv=".venv/$name"
log() { echo "[bootstrap $name] $*" >&2; }

need_apt=()
want() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$1"); }
case "$name" in
    ft)   for p in build-essential pkg-config libssl-dev libffi-dev zlib1g-dev libbz2-dev liblzma-dev \
                   libsqlite3-dev libreadline-dev libncurses-dev uuid-dev libgdbm-dev xz-utils; do want "$p"; done ;;
    gil)  for p in build-essential libffi-dev; do want "$p"; done ;;
    pypy) for p in pypy3 pypy3-venv pypy3-dev build-essential libffi-dev; do want "$p"; done ;;
    *) echo "usage: $0 ft|gil|pypy" >&2; exit 2 ;;
esac
if [ "${#need_apt[@]}" -gt 0 ]; then
    log "installing from Debian: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq "${need_apt[@]}" >&2
fi

case "$name" in
    ft)   python=$(scripts/build_freethreaded_cpython.sh | tail -n1) ;;
    gil)  python=$(command -v python3) ;;
    pypy) python=$(command -v pypy3) ;;
esac

deps_ok='import pytest, hypothesis, pytest_timeout, setuptools; assert int(setuptools.__version__.split(".")[0]) >= 77'
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "$deps_ok" 2>/dev/null; then
    log "creating $venv from $python"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
    "${pip[@]}" --upgrade pip >&2
    deps=("setuptools>=77" wheel pytest pytest-timeout hypothesis)
    [ "$name" = gil ] && deps+=(cffi)
    # Wheels only: newer hypothesis releases carry a Rust part that would have to be
    # compiled for 3.13t (and cannot be here); pip then takes the newest pure wheel.
    "${pip[@]}" --upgrade --only-binary=:all: "${deps[@]}" >&2
fi

log "building and installing ft_utils"
rm -rf build
require_cffi=0
[ "$name" != ft ] && require_cffi=1
FT_UTILS_REQUIRE_CFFI=$require_cffi "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    --no-build-isolation --no-deps --editable . >&2
rm -rf build
"$venv/bin/python" - <<'PY'
import sys
from ft_utils import _backend
print(f"[bootstrap] {sys.executable}: {sys.implementation.name} {sys.version.split()[0]}, "
      f"backends {_backend.available()}", file=sys.stderr)
PY
