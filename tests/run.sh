#!/usr/bin/env bash
# shellcheck disable=SC2317  # the step functions are called through step()
# pgproxy's test command: build, unit tests (ctest), integration tests against
# a throwaway PostgreSQL 15 cluster.  Runs as root on a fresh Debian 12 (it
# installs what is missing) or as any user once the packages are present.
#
#   bash tests/run.sh                 build/ (RelWithDebInfo), unit + integration
#   bash tests/run.sh --sanitize      the same in build-asan/ with ASan + UBSan
#   bash tests/run.sh --fuzz SECONDS  build-fuzz/ with clang, every fuzz_* target
#                                     for SECONDS on a copy of its seed corpus
# Options: --no-deps (skip the package check), --unit-only, -h/--help.
# Environment: JOBS (parallel build jobs), PGPROXY_KEEP_TMP=1 (keep test dirs),
# PGPROXY_BUILD_ROOT (where build*/ go; default: the repository).
# Exit status is nonzero when any step failed; a summary is printed last.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=/usr/bin/python3
JOBS=${JOBS:-$(nproc 2>/dev/null || echo 2)}
BROOT=${PGPROXY_BUILD_ROOT:-$ROOT}
MODE=normal
FUZZ_SECONDS=
DEPS=1
UNIT_ONLY=0

usage() { sed -n '3,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --sanitize) MODE=sanitize ;;
        --fuzz)
            MODE=fuzz
            FUZZ_SECONDS=${2:-}
            case "$FUZZ_SECONDS" in
                ''|*[!0-9]*) echo "run.sh: --fuzz needs a number of seconds" >&2; exit 2 ;;
            esac
            shift ;;
        --no-deps) DEPS=0 ;;
        --unit-only) UNIT_ONLY=1 ;;
        -h|--help) usage; exit 0 ;;
        *) echo "run.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
    esac
    shift
done

# ---------------------------------------------------------------- reporting
STEPS=()
FAILED=0
T_START=$(date +%s)

step() {   # step NAME COMMAND... : run, time and record one step
    local name=$1; shift
    local t0 rc
    t0=$(date +%s)
    echo
    echo "==== $name"
    "$@"
    rc=$?
    local dt=$(( $(date +%s) - t0 ))
    if [ $rc -eq 0 ]; then
        STEPS+=("ok    ${dt}s	$name")
    else
        STEPS+=("FAIL  ${dt}s	$name (exit $rc)")
        FAILED=1
    fi
    return $rc
}

summary() {
    echo
    echo "==== summary ($MODE, $(( $(date +%s) - T_START ))s)"
    local s
    for s in "${STEPS[@]}"; do echo "  $s"; done
    if [ $FAILED -eq 0 ]; then echo "  => all passed"; else echo "  => FAILED"; fi
}

finish() { summary; exit $FAILED; }

# ---------------------------------------------------------------- packages
PACKAGES=(build-essential cmake pkg-config libuv1-dev check libpq-dev openssl
          libsqlite3-dev sqlite3 libssl-dev libjson-c-dev postgresql-15 postgresql-client-15
          python3-psycopg python3-psycopg2 python3-django python3-asyncpg pgbouncer clang libclang-rt-14-dev libmicrohttpd-dev
          prometheus chromium fonts-dejavu-core)

ensure_packages() {
    if ! command -v dpkg >/dev/null 2>&1; then
        echo "no dpkg: not Debian, assuming the dependencies are installed"
        return 0
    fi
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -eq 0 ]; then
        echo "all ${#PACKAGES[@]} packages present"
        return 0
    fi
    echo "missing packages: ${missing[*]}"
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            echo "not root and no passwordless sudo: install them first:" >&2
            echo "  apt-get install -y ${missing[*]}" >&2
            return 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -q </dev/null &&
    "${sudo[@]}" apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" </dev/null
}

# ---------------------------------------------------------------- steps
configure_build() {   # configure_build DIR [cmake args...]
    local dir=$1; shift
    cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" &&
    cmake --build "$dir" -j "$JOBS"
}

unit_tests() {   # unit_tests DIR
    # A throwaway PostgreSQL for the unit tests that need one (the slow
    # log's postgres sink): pg_env.sh starts it, exports PGP_TEST_PG_DSN,
    # runs ctest and removes it.
    bash "$ROOT/tests/unit/pg_env.sh" "$1" --output-on-failure -j "$JOBS" --timeout 300 </dev/null
}

integration_tests() {   # integration_tests BINARY
    if [ ! -x "$1" ]; then
        echo "no pgproxy binary at $1" >&2
        return 1
    fi
    # Run from the repo root: tests must not depend on the caller's cwd.
    (cd "$ROOT" && PYTHONDONTWRITEBYTECODE=1 PGPROXY_BIN=$1 timeout 900 "$PY" -m unittest discover \
        -s tests/integration -t tests/integration -v </dev/null)
}

fuzz_targets() {   # the fuzz_* names that have a source file
    local f
    for f in "$ROOT"/tests/fuzz/fuzz_*.c; do
        [ -e "$f" ] || continue
        basename "$f" .c
    done
}

fuzz_build() {   # fuzz_build DIR TARGETS...
    local dir=$1; shift
    CC=clang cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPGP_FUZZ=ON &&
    cmake --build "$dir" -j "$JOBS" --target "$@"
}

fuzz_run() {   # fuzz_run DIR TARGET SECONDS
    local dir=$1 name=$2 secs=$3
    local bin="$dir/$name" corpus_src="$ROOT/tests/fuzz/corpus/${name#fuzz_}"
    local work
    work=$(mktemp -d "${TMPDIR:-/tmp}/pgproxy-$name-XXXXXX") || return 1
    mkdir -p "$work/corpus" "$work/artifacts"
    if [ -d "$corpus_src" ]; then
        cp -a "$corpus_src/." "$work/corpus/"
    else
        echo "note: no seed corpus at $corpus_src"
    fi
    echo "$name: $(find "$work/corpus" -type f | wc -l) seed inputs, ${secs}s"
    local rc=0
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
        "$work/corpus" >"$work/fuzz.log" 2>&1 </dev/null || rc=$?
    tail -n 25 "$work/fuzz.log"
    if [ "$rc" -ne 0 ] || [ -n "$(ls -A "$work/artifacts")" ]; then
        mkdir -p "$dir/artifacts/$name"
        cp -a "$work/artifacts/." "$dir/artifacts/$name/" 2>/dev/null || true
        cp "$work/fuzz.log" "$dir/artifacts/$name/fuzz.log"
        echo "$name FAILED (exit $rc); artifacts and log in $dir/artifacts/$name" >&2
        rm -rf "$work"
        return 1
    fi
    rm -rf "$work"
}

# ---------------------------------------------------------------- main
cd "$ROOT" || exit 1

if [ $DEPS -eq 1 ]; then
    step "dependencies" ensure_packages || finish
fi

case $MODE in
    normal)
        step "build (build/)" configure_build "$BROOT/build" || finish
        step "unit tests" unit_tests "$BROOT/build"
        if [ $UNIT_ONLY -eq 0 ]; then
            step "integration tests" integration_tests "$BROOT/build/pgproxy"
        fi
        ;;
    sanitize)
        export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
        export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
        step "build (build-asan/, ASan+UBSan)" configure_build "$BROOT/build-asan" -DPGP_SANITIZE=ON || finish
        step "unit tests (sanitized)" unit_tests "$BROOT/build-asan"
        if [ $UNIT_ONLY -eq 0 ]; then
            step "integration tests (sanitized)" integration_tests "$BROOT/build-asan/pgproxy"
        fi
        ;;
    fuzz)
        mapfile -t TARGETS < <(fuzz_targets)
        if [ ${#TARGETS[@]} -eq 0 ]; then
            echo "no tests/fuzz/fuzz_*.c targets found" >&2
            STEPS+=("FAIL  0s	fuzz: no targets")
            FAILED=1
            finish
        fi
        step "build (build-fuzz/, clang libFuzzer)" fuzz_build "$BROOT/build-fuzz" "${TARGETS[@]}" || finish
        for t in "${TARGETS[@]}"; do
            step "fuzz $t (${FUZZ_SECONDS}s)" fuzz_run "$BROOT/build-fuzz" "$t" "$FUZZ_SECONDS"
        done
        ;;
esac

finish
