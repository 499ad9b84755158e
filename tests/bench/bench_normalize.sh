#!/usr/bin/env bash
# Normalizer micro-benchmark (not a test): compiles tests/bench/bench_normalize.c
# with cc -O2 against the built core library and runs it.
#
#   bash tests/bench/bench_normalize.sh [BUILD_DIR] [RUNS]
#
# BUILD_DIR defaults to ./build and must hold libpgproxy_core.a (cmake --build).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$root/build}"
runs="${2:-5}"
lib="$build/libpgproxy_core.a"
[ -f "$lib" ] || { echo "bench_normalize: $lib not found (build first)" >&2; exit 2; }
bin="$(mktemp -d)/bench_normalize"
trap 'rm -rf "$(dirname "$bin")"' EXIT
${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -I"$root/include" \
    "$root/tests/bench/bench_normalize.c" "$lib" -o "$bin"
"$bin" "$runs"
