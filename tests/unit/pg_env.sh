#!/usr/bin/env bash
# Run unit tests with a throwaway PostgreSQL 15 cluster, so the postgres
# cases of test_slowlog run (they are skipped, with a message, when
# PGP_TEST_PG_DSN is unset).  Starts initdb + postgres in a mktemp dir
# (fsync=off, a free port, the Unix socket in that dir, no TCP), exports
#   PGP_TEST_PG_DSN        host=<dir> port=<port> user=postgres dbname=postgres
#   PGP_TEST_PG_STOP_CMD   stops the cluster (the outage case)
#   PGP_TEST_PG_START_CMD  starts it again
# runs ctest in BUILD_DIR with the remaining arguments, stops the cluster
# and removes the dir (PGPROXY_KEEP_TMP=1 keeps it).  As root, the server
# runs as user postgres through runuser.
#
#   bash tests/unit/pg_env.sh BUILD_DIR [ctest args...]
#   bash tests/unit/pg_env.sh --run COMMAND [args...]   (any command instead of ctest)
#   e.g. bash tests/unit/pg_env.sh build -R slowlog --output-on-failure
#        bash tests/unit/pg_env.sh --run bash tests/bench/bench_slowlog.sh build
# shellcheck disable=SC2317  # cleanup runs from the EXIT trap
set -euo pipefail
build=${1:?usage: pg_env.sh BUILD_DIR [ctest args...] | --run COMMAND [args...]}
shift
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/pgproxy-pgenv-XXXXXX")
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$tmp"
    as_pg=(runuser -u postgres --)
fi
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

cleanup() {
    "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true
    if [ "${PGPROXY_KEEP_TMP:-0}" = 1 ]; then
        echo "pg_env: kept $tmp"
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT

"${as_pg[@]}" "$PGBIN/initdb" -D "$tmp/data" -U postgres -A trust --no-sync >"$tmp/initdb.log" 2>&1 ||
    { cat "$tmp/initdb.log" >&2; exit 1; }
opts="-p $port -k $tmp -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
start_cmd=$(printf '%q ' "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$tmp/data" -o "$opts" -l "$tmp/server.log" -w -t 30 start)
stop_cmd=$(printf '%q ' "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$tmp/data" -m fast -w stop)
eval "$start_cmd" >/dev/null || { cat "$tmp/server.log" >&2; exit 1; }

export PGP_TEST_PG_DSN="host=$tmp port=$port user=postgres dbname=postgres"
export PGP_TEST_PG_STOP_CMD="$stop_cmd >/dev/null"
export PGP_TEST_PG_START_CMD="$start_cmd >/dev/null"
echo "pg_env: PostgreSQL on $tmp port $port"
rc=0
if [ "$build" = "--run" ]; then
    "$@" || rc=$?
else
    PGP_SOURCE_DIR=$src ctest --test-dir "$build" "$@" || rc=$?
fi
if [ $rc -ne 0 ]; then
    echo "---- server log (last 40 lines)"
    tail -n 40 "$tmp/server.log" || true
fi
exit $rc
