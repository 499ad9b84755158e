#!/usr/bin/env bash
# Clock benchmark: runs `pgproxy clock --json` N times (5 by default; each run
# is itself the median of 5 loops of 1M pgp_clock_now() reads) and prints every
# run's read cost, resolution, calibration error and calibration time, then the
# median and jitter of the read cost, as BENCHMARKING.md asks:
#   jitter = (max - min) / median / 2 x 100.
#
#   bash tests/bench/bench_clock.sh [PGPROXY_BINARY] [RUNS]
#
# PGPROXY_BINARY defaults to build/pgproxy; RUNS to 5 (at least 5).
# PGPROXY_CLOCK=monotonic in the environment benchmarks the clock_gettime
# fallback instead.  A benchmark, not a test: it exits non-zero only when the
# binary fails or prints something that is not the expected JSON.
set -euo pipefail

bin="${1:-build/pgproxy}"
runs="${2:-5}"
if [[ ! -x "$bin" ]]; then
    echo "bench_clock: $bin is not an executable (build first, or pass its path)" >&2
    exit 2
fi
if ! [[ "$runs" =~ ^[0-9]+$ ]] || (( runs < 5 )); then
    echo "bench_clock: RUNS must be an integer >= 5" >&2
    exit 2
fi

outputs=()
for ((i = 1; i <= runs; i++)); do
    outputs+=("$("$bin" clock --json)")
done

printf '%s\n' "${outputs[@]}" | /usr/bin/python3 -c '
import json, statistics, sys

rows = [json.loads(line) for line in sys.stdin if line.strip()]
src = {r["source"] for r in rows}
print("source: %s (%s), frequency %.3f MHz" % (
    ", ".join(sorted(src)), rows[0]["reason"], rows[0]["frequency_hz"] / 1e6))
print("%-4s %14s %14s %16s %15s" % ("run", "read_cost_ns", "resolution_ns",
                                     "cal_error_ppm", "calibrated_ms"))
for i, r in enumerate(rows, 1):
    print("%-4d %14.2f %14.3f %16.3f %15.1f" % (
        i, r["read_cost_ns"], r["resolution_ns"], r["calibration_error_ppm"],
        r["calibration_ns"] / 1e6))
cost = [r["read_cost_ns"] for r in rows]
med = statistics.median(cost)
jitter = (max(cost) - min(cost)) / med / 2 * 100 if med > 0 else float("nan")
err = [abs(r["calibration_error_ppm"]) for r in rows]
cal = [r["calibration_ns"] / 1e6 for r in rows]
print("read cost: median %.2f ns per read, min %.2f, max %.2f, jitter %.1f %% (%d runs)" % (
    med, min(cost), max(cost), jitter, len(rows)))
print("calibration: |error| median %.3f ppm (max %.3f) over 200 ms; init median %.1f ms (max %.1f)" % (
    statistics.median(err), max(err), statistics.median(cal), max(cal)))
if jitter > 5:
    print("note: jitter above 5 %: the machine was busy; do not compare these figures")
'
