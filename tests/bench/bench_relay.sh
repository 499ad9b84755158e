#!/usr/bin/env bash
# Relay benchmark: pgbench -S (simple/extended/prepared, -c 1 and 8) direct vs
# pgbouncer (session mode) vs pgproxy, interleaved, 5 runs of 10 s each by
# default, printing every run, median, jitter, ratios and each proxy's CPU per
# transaction as a markdown table (for docs/PERFORMANCE.md).
#
#   bash tests/bench/bench_relay.sh [--seconds 10] [--runs 5] [--clients 1,8]
#        [--modes simple,extended,prepared] [--scale 10] [--warmup 3]
#        [--configs direct,pgbouncer,pgproxy,pgproxy-noprof]
#        [--pgproxy build/pgproxy] [--out FILE]
#
# The pgproxy columns appear only when the binary exists (PGPROXY_BIN or
# build/pgproxy). Default run: 3 modes x 2 client counts x 3 configs x 5 x 10 s
# plus warm-ups, about 16 minutes. A benchmark, not a test.
set -euo pipefail
exec /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/bench_relay.py" "$@"
