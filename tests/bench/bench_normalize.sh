#!/usr/bin/env bash
# Normalizer micro-benchmark (not a test): compiles tests/bench/bench_normalize.c
# with cc -O2 against the built core library and runs it.
#
#   bash tests/bench/bench_normalize.sh [BUILD_DIR] [RUNS] [WORKLOAD]
#   bash tests/bench/bench_normalize.sh --ab BUILD_A BUILD_B [ROUNDS] [WORKLOAD]
#
# BUILD_DIR defaults to ./build and must hold libpgproxy_core.a (cmake --build).
# WORKLOAD: orm, report or batch (default: all three).  --ab compares two
# builds interleaved in one session (A B A B ..., BENCHMARKING.md): ROUNDS
# (default 5) rounds of one run each, then each side's median and jitter
# and the ratio B / A of the medians.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
compile() {   # build_dir out_binary
    [ -f "$1/libpgproxy_core.a" ] || { echo "bench_normalize: $1/libpgproxy_core.a not found (build first)" >&2; exit 2; }
    ${CC:-cc} -std=c11 -D_GNU_SOURCE -O2 -I"$root/include" \
        "$root/tests/bench/bench_normalize.c" "$1/libpgproxy_core.a" -o "$2"
}
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
if [ "${1:-}" = "--ab" ]; then
    compile "${2:?build A}" "$tmp/a"
    compile "${3:?build B}" "$tmp/b"
    rounds="${4:-5}"
    work="${5:-orm}"
    for ((i = 0; i < rounds; i++)); do
        "$tmp/a" 1 "$work" | awk -v s=A '/ns\/stmt/ {print s, $0}'
        "$tmp/b" 1 "$work" | awk -v s=B '/ns\/stmt/ {print s, $0}'
    done | tee "$tmp/ab"
    /usr/bin/python3 - "$tmp/ab" <<'PY'
import re, statistics, sys
v = {"A": [], "B": []}
for line in open(sys.argv[1]):
    m = re.search(r"median ([0-9.]+) ns", line)
    v[line[0]].append(float(m.group(1)))
med = {}
for k in "AB":
    x = sorted(v[k]); med[k] = statistics.median(x)
    print(f"{k}: median {med[k]:.1f} ns, jitter {(x[-1] - x[0]) / med[k] / 2 * 100:.1f} %, runs {x}")
print(f"B / A = {med['B'] / med['A']:.3f}")
PY
    exit 0
fi
build="${1:-$root/build}"
runs="${2:-5}"
compile "$build" "$tmp/bench_normalize"
"$tmp/bench_normalize" "$runs" ${3:+"$3"}
