#!/usr/bin/env bash
# Builds CPython 3.13 with --disable-gil from Debian's python3.13 source package and
# installs it into a cache outside the checkout, keyed by version. A second run finds the
# cached interpreter and does nothing.
#
# The archive mirror is read from the machine's own apt configuration; apt runs with a
# private state directory so the system's sources and lists are left untouched.
#
# `--tsan` builds a second one, configured --with-thread-sanitizer, into its own cache
# directory (…t-tsan), for `make test-tsan`.
#
# Prints the path of the interpreter (…/bin/python3.13t) on its last line.
set -euo pipefail

flavor="" configure_extra=()
case "${1:-}" in
    "") ;;
    --tsan) flavor="-tsan"; configure_extra=(--with-thread-sanitizer) ;;
    *) echo "usage: $0 [--tsan]" >&2; exit 2 ;;
esac

cache_root="${FT_UTILS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ft_utils}"
mkdir -p "$cache_root"

# An interpreter already built (any 3.13.x) is reused.
for existing in "$cache_root"/cpython-3.13.*t"$flavor"/bin/python3.13t; do
    if [ -x "$existing" ] && "$existing" -c 'import sys; assert not sys._is_gil_enabled()' 2>/dev/null; then
        echo "free-threaded CPython found in cache: $existing" >&2
        echo "$existing"
        exit 0
    fi
done

log() { echo "[build-cpython-ft] $*" >&2; }

# --- the archive mirror, from the machine's apt configuration -------------------------
mirror=""
for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822 stanzas: the first URIs line of a stanza that is the main archive (not security)
    uri=$(awk '/^URIs:/ {print $2}' "$f" | grep -v -- '-security' | head -n1 || true)
    if [ -n "$uri" ]; then mirror="$uri"; break; fi
done
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list ]; then
    mirror=$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; exit}}' /etc/apt/sources.list)
fi
[ -n "$mirror" ] || { log "no Debian archive URI found in the apt configuration"; exit 1; }
log "Debian archive from apt configuration: $mirror"

# --- a private apt setup for deb-src ---------------------------------------------------
work="$cache_root/apt-src"
mkdir -p "$work/sources" "$work/lists/partial" "$work/cache/archives/partial" "$work/download"
# Suites to try, newest 3.13 first; the stable suite last.
suites=(forky trixie)
: > "$work/sources/ft_utils-src.sources"
for s in "${suites[@]}"; do
    cat >> "$work/sources/ft_utils-src.sources" <<SRC
Types: deb-src
URIs: $mirror
Suites: $s
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

SRC
done
apt_opts=(-o Dir::Etc::SourceList=/dev/null
          -o "Dir::Etc::SourceParts=$work/sources"
          -o "Dir::State::Lists=$work/lists"
          -o "Dir::Cache=$work/cache"
          -o APT::Sandbox::User=root)
log "apt-get update (private deb-src lists)"
apt-get "${apt_opts[@]}" update >&2 || log "apt-get update reported errors; trying what was fetched"

# Candidate versions of python3.13 as the source index lists them, newest first.
mapfile -t versions < <(apt-cache "${apt_opts[@]}" showsrc python3.13 2>/dev/null \
    | awk '/^Package: python3.13$/ {p=1} /^Package:/ && $2 != "python3.13" {p=0} p && /^Version:/ {print $2}' \
    | sort -rV | uniq)
[ "${#versions[@]}" -gt 0 ] || { log "no python3.13 source package listed in ${suites[*]}"; exit 1; }
log "python3.13 source versions listed: ${versions[*]}"

orig=""
for v in "${versions[@]}"; do
    log "downloading python3.13=$v"
    rm -rf "$work/download"/*
    if (cd "$work/download" && apt-get "${apt_opts[@]}" source --download-only "python3.13=$v" >&2); then
        orig=$(ls "$work/download"/python3.13_*.orig.tar.* 2>/dev/null | head -n1 || true)
        [ -n "$orig" ] && break
    fi
    log "python3.13=$v could not be downloaded; trying the next candidate"
done
[ -n "$orig" ] || { log "no python3.13 source could be downloaded"; exit 1; }

upstream=$(basename "$orig" | sed -E 's/^python3\.13_([0-9.]+)[^.]*\.orig.*/\1/')
prefix="$cache_root/cpython-${upstream}t$flavor"
log "building CPython $upstream (free-threaded${flavor:+, ThreadSanitizer}) into $prefix"

build="$cache_root/build-$upstream$flavor"
rm -rf "$build"; mkdir -p "$build"
tar -xf "$orig" -C "$build" --strip-components=1
cd "$build"
./configure --disable-gil "${configure_extra[@]}" --prefix="$prefix" --with-ensurepip=install >"$build/configure.log" 2>&1 \
    || { tail -n 40 "$build/configure.log" >&2; exit 1; }
make -j"$(nproc)" >"$build/make.log" 2>&1 || { tail -n 60 "$build/make.log" >&2; exit 1; }
make install >"$build/install.log" 2>&1 || { tail -n 60 "$build/install.log" >&2; exit 1; }
cd "$cache_root"; rm -rf "$build" "$work/download"
"$prefix/bin/python3.13t" -c 'import sys; assert not sys._is_gil_enabled(), "GIL is enabled"'
log "done: $prefix/bin/python3.13t"
echo "$prefix/bin/python3.13t"
