#!/usr/bin/env bash
# Slow-log micro-benchmark: compiles tests/bench/bench_slowlog.c with cc -O2
# against <build>/libpgproxy_core.a and runs it: ns per submit, sqlite sink
# rows/s, and postgres sink rows/s when PGP_TEST_PG_DSN is set (e.g. run it
# through tests/unit/pg_env.sh's cluster by hand).  A benchmark, not a test.
#
#   bash tests/bench/bench_slowlog.sh [BUILD_DIR (default: build)] [RUNS]
set -euo pipefail
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
build="${1:-$src/build}"
runs="${2:-5}"
lib="$build/libpgproxy_core.a"
if [[ ! -f "$lib" ]]; then
    echo "bench_slowlog: $lib not found; build first: cmake -S $src -B $build && cmake --build $build" >&2
    exit 2
fi
read -r -a libs <<<"$(pkg-config --libs sqlite3 libpq)"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
cc -O2 -std=c11 -D_GNU_SOURCE -Wall -Wextra -I"$src/include" \
    -o "$out/bench_slowlog" "$src/tests/bench/bench_slowlog.c" "$lib" \
    "${libs[@]}" -lpthread -lm
"$out/bench_slowlog" "$runs" "$out"
