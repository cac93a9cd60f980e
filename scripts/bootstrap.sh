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

die() { log "error: $*"; exit 1; }

apt_updated=0
apt_install() { # packages...: installs from Debian those that dpkg does not list as installed
    local missing=() package
    for package in "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    [ "${#missing[@]}" -gt 0 ] || return 0
    log "installing from Debian: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    if [ "$apt_updated" = 0 ]; then apt-get update -qq >&2; apt_updated=1; fi
    apt-get install -y -qq "${missing[@]}" >&2
}

# What an interpreter lacks for a test environment, judged by what it can do rather than
# by package names (the machine's python3 may be Debian's, or pyenv's, or any other):
#   headers  Python.h is not in sysconfig's include directory: no C extension can build;
#   venv     `python -m venv` cannot make an environment with pip in it (probed when the
#            environment is to be created: Debian ships ensurepip and pip's wheel apart).
lacks() { # python, probe_venv (0/1) -> prints the missing capabilities, space-separated
    local python="$1" probe_venv="$2" missing=() probe
    "$python" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null \
        || missing+=(headers)
    if [ "$probe_venv" = 1 ]; then
        probe=$(mktemp -d)
        { "$python" -m venv "$probe/venv" && "$probe/venv/bin/python" -m pip --version; } >/dev/null 2>&1 \
            || missing+=(venv)
        rm -rf "$probe"
    fi
    echo "${missing[*]}"
}

# The Debian packages that give an interpreter of a Debian package what it lacks: the
# package owning the executable (python3.11-minimal, pypy3) names them (python3.11-venv and
# python3.11-dev, which python3-venv and python3-dev stand for; pypy3-venv, pypy3-dev).
# Prints nothing when the interpreter is not Debian's: apt-get cannot complete it then.
debian_packages_for() { # python, missing capabilities
    local real owner what
    real=$("$1" -c 'import os, sys; print(os.path.realpath(sys.executable))')
    owner=$(dpkg-query -S "$real" 2>/dev/null | head -n1 | cut -d: -f1 || true)
    [ -n "$owner" ] || return 0
    for what in $2; do
        case "$what" in
            venv) echo "${owner%-minimal}-venv" ;;
            headers) echo "${owner%-minimal}-dev" ;;
        esac
    done
}

explain() { # missing capabilities -> what they mean, as one clause
    local what said=()
    for what in $1; do
        case "$what" in
            venv) said+=("it cannot create a virtual environment with pip (python -m venv, ensurepip)") ;;
            headers) said+=("it has no C headers (no Python.h in sysconfig's include directory)") ;;
        esac
    done
    local IFS=";"
    echo "${said[*]}" | sed 's/;/; /g'
}

case "$name" in
    ft)   apt_install build-essential pkg-config libssl-dev libffi-dev zlib1g-dev libbz2-dev liblzma-dev \
                      libsqlite3-dev libreadline-dev libncurses-dev uuid-dev libgdbm-dev xz-utils ;;
    gil)  apt_install build-essential libffi-dev
          # No python3 at all (a minimal Debian): Debian's, with what stock Debian splits out.
          command -v python3 >/dev/null || apt_install python3 python3-venv python3-dev ;;
    pypy) apt_install build-essential libffi-dev
          command -v pypy3 >/dev/null || apt_install pypy3 pypy3-venv pypy3-dev ;;
    *) echo "usage: $0 ft|gil|pypy" >&2; exit 2 ;;
esac

case "$name" in
    ft)   python=$(scripts/build_freethreaded_cpython.sh | tail -n1) ;;
    gil)  python=$(command -v python3 || true) ;;
    pypy) python=$(command -v pypy3 || true) ;;
esac
[ -n "$python" ] || die "no interpreter for $venv (python3 for gil, pypy3 for pypy) on PATH"

create_venv=0
"$venv/bin/python" -c pass 2>/dev/null || create_venv=1
missing=$(lacks "$python" "$create_venv")
if [ -n "$missing" ]; then
    real=$("$python" -c 'import os, sys; print(os.path.realpath(sys.executable))')
    packages=$(debian_packages_for "$python" "$missing")
    if [ -z "$packages" ]; then
        die "$python ($real) will not do: $(explain "$missing"); and it is not an interpreter of a" \
            "Debian package, so apt-get cannot add that. Complete it the way it was installed" \
            "(pyenv: rebuild it with the build dependencies installed), or put Debian's first on" \
            "PATH (apt-get install python3 python3-venv python3-dev; pypy3 pypy3-venv pypy3-dev)."
    fi
    log "$python ($real): $(explain "$missing"); installing what Debian ships apart for it"
    # shellcheck disable=SC2086  # one package per word
    apt_install $packages
    missing=$(lacks "$python" "$create_venv")
    [ -z "$missing" ] || die "$python ($real) still will not do with $(echo $packages) installed: $(explain "$missing")"
fi

if [ "$create_venv" = 1 ]; then
    log "creating $venv from $python"
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi
# The test tools; an environment that lacks one (made before it was added) gets it here.
pip=("$venv/bin/python" -m pip install -q --disable-pip-version-check)
deps_ok='import pytest, hypothesis, pytest_timeout, mypy.build, setuptools; assert int(setuptools.__version__.split(".")[0]) >= 77'
if ! "$venv/bin/python" -c "$deps_ok" 2>/dev/null; then
    log "installing the test tools into $venv"
    "${pip[@]}" --upgrade pip >&2
    # mypy 1.19's pure wheel imports librt, which its metadata leaves out on PyPy and
    # which has no PyPy build: 1.18 there.
    mypy=mypy
    [ "$name" = pypy ] && mypy="mypy<1.19"
    deps=("setuptools>=77" wheel pytest pytest-timeout hypothesis "$mypy")
    [ "$name" = gil ] && deps+=(cffi)
    # Wheels only: newer hypothesis releases carry a Rust part that would have to be
    # compiled for 3.13t (and cannot be here); pip then takes the newest pure wheel (mypy
    # too: its compiled wheels exist for some interpreters, a pure one for all).
    "${pip[@]}" --upgrade --only-binary=:all: "${deps[@]}" >&2
fi
# matplotlib, what the optional extra ft_utils[bench] adds (pyproject.toml) for
# `python -m ft_utils.bench --plot`, and what its test needs: from a wheel only, so an
# interpreter PyPI has none for goes without it (the test is skipped there) rather than
# building it from source. A marker file keeps later runs from asking PyPI again.
if ! "$venv/bin/python" -c 'import matplotlib' 2>/dev/null && [ ! -e "$venv/.no-matplotlib-wheel" ]; then
    log "installing matplotlib (ft_utils[bench], for --plot) into $venv, from a wheel"
    if ! "${pip[@]}" --only-binary=:all: matplotlib >&2; then
        log "no matplotlib wheel for this interpreter: --plot and its test are skipped in $venv"
        touch "$venv/.no-matplotlib-wheel"
    fi
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
