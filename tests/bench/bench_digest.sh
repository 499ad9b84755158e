#!/usr/bin/env bash
# Digest/histogram micro-benchmark: compiles tests/bench/bench_digest.c with
# cc -O2 against <build>/libpgproxy_core.a and runs it (7 interleaved runs by
# default; each run printed, then median and jitter).  A benchmark, not a test.
#
#   bash tests/bench/bench_digest.sh [BUILD_DIR (default: build)] [RUNS]
set -euo pipefail
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$src/build}"
runs="${2:-7}"
lib="$build/libpgproxy_core.a"
if [[ ! -f "$lib" ]]; then
    echo "bench_digest: $lib not found; build first: cmake -S $src -B $build && cmake --build $build" >&2
    exit 2
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -I"$src/include" \
    -o "$out/bench_digest" "$src/tests/bench/bench_digest.c" "$lib" -lpthread -lm
"$out/bench_digest" "$runs"
