#!/usr/bin/env bash
# Relay benchmark: pgbench -S (simple/extended/prepared, -c 1 and 8) direct vs
# pgbouncer (session mode) vs pgproxy, interleaved, 5 runs of 10 s each by
# default, printing every run, median, jitter, ratios and each proxy's CPU per
# transaction as a markdown table (for docs/PERFORMANCE.md).
#
#   bash tests/bench/bench_relay.sh [--seconds 10] [--runs 5] [--clients 1,8]
#        [--modes simple,extended,prepared] [--scale 10] [--warmup 3]
#        [--configs direct,pgbouncer,pgproxy,pgproxy-noprof,pgproxy-unix,...]
#        [--workload select|slow10] [--tls] [--pgproxy build/pgproxy] [--out FILE]
#
# --tls: TLS on every hop. The cluster runs with ssl = on (throwaway CA and
# server certificate made with openssl); clients use sslmode=require;
# pgbouncer client_tls_sslmode and server_tls_sslmode = require; pgproxy
# proxy.client_tls = "allow", proxy.upstream_tls = "require". Each config is
# checked once through psql (client hop and pg_stat_ssl) before its runs and
# the benchmark stops if a hop is not TLS. The table title says "TLS on every
# hop". Needs a pgproxy that knows proxy.client_tls / proxy.upstream_tls.
#
# Unix-socket upstream: any proxied config with the suffix -unix
# (pgproxy-unix, pgbouncer-unix, pgproxy-noprof-unix, ...) is the same proxy
# reaching PostgreSQL over the cluster's Unix socket instead of 127.0.0.1, so
# TCP and Unix upstreams run interleaved in one session and the table ends
# with each X-unix / X ratio. Not combinable with --tls (PostgreSQL has no TLS
# on Unix sockets).
#
# Examples:
#   bash tests/bench/bench_relay.sh --tls --clients 8 --configs direct,pgbouncer,pgproxy
#   bash tests/bench/bench_relay.sh --clients 8 \
#        --configs pgproxy,pgproxy-unix,pgbouncer,pgbouncer-unix
#
# The pgproxy columns appear only when the binary exists (PGPROXY_BIN or
# build/pgproxy). Default run: 3 modes x 2 client counts x 3 configs x 5 x 10 s
# plus warm-ups, about 16 minutes. A benchmark, not a test.
set -euo pipefail
exec /usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/bench_relay.py" "$@"
