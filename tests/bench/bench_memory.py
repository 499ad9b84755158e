"""Memory per idle connection and per stored request profile (issue #4).

Starts a throwaway PostgreSQL and one pgproxy (profiling on, defaults),
then measures pgproxy's resident memory (VmRSS, /proc) :
  1. per idle client session: open N connections through pgproxy, run one
     statement on each, let them sit idle; (RSS after - RSS before) / N;
  2. per stored profile: on one connection, run R requests of S statements
     each, told apart by SET pgproxy.request_id; once they are all in the
     store, (RSS after - RSS before) / R.
  3. with --tls, the same idle sessions with TLS on both hops (the cluster
     runs with ssl = on, pgproxy with client_tls = allow and upstream_tls =
     require), plaintext alongside, and both again after every session has
     read a 200 KB result (what stays allocated once traffic has passed).
Each figure is the median of --runs repetitions (a fresh pgproxy each), with
its jitter, as a markdown table.  A benchmark, not a test.

  /usr/bin/python3 tests/bench/bench_memory.py [--pgproxy build/pgproxy]
      [--connections 200] [--requests 1000] [--statements 10] [--runs 3] [--tls]
"""

import argparse
import os
import statistics
import sys
import time

import psycopg

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "integration"))
import harness as h  # noqa: E402
import tlsenv as t  # noqa: E402


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for %d" % pid)


def settle(pid, seconds=0.5):
    time.sleep(seconds)
    return rss_kb(pid)


def jitter(values):
    med = statistics.median(values)
    return (max(values) - min(values)) / med / 2 * 100 if med else 0.0


def per_connection(cluster, binary, n):
    p = h.Proxy(cluster, binary=binary, log_level="warn", name="pgproxy-mem").start()
    try:
        warm = psycopg.connect(cluster.dsn(p.port), autocommit=True)
        warm.execute("SELECT 1")
        before = settle(p.pid)
        conns = []
        for _ in range(n):
            c = psycopg.connect(cluster.dsn(p.port), autocommit=True)
            c.execute("SELECT 1")
            conns.append(c)
        after = settle(p.pid)
        for c in conns:
            c.close()
        warm.close()
        return (after - before) * 1024.0 / n
    finally:
        p.stop()
        p.cleanup()


def per_connection_tls(cluster, binary, n, tls, big):
    """Bytes per idle session (after a 200 KB result each when big), TLS on both hops or not."""
    env, dsn_extra = {}, " sslmode=disable"
    if tls:
        env = t.tls_env(client_tls="allow", client_pair=cluster.certs.proxy_a,
                        upstream_tls="require")
        # Channel binding cannot cross pgproxy (README, "SCRAM through pgproxy").
        dsn_extra = " sslmode=require channel_binding=disable"
    p = h.Proxy(cluster, binary=binary, env=env, log_level="warn", name="pgproxy-mem").start()
    try:
        def one():
            c = psycopg.connect(cluster.dsn(p.port) + dsn_extra, autocommit=True)
            c.execute("SELECT 1")
            if big:
                c.execute("SELECT repeat('x', 200000)").fetchall()
            return c
        warm = one()
        before = settle(p.pid)
        conns = [one() for _ in range(n)]
        after = settle(p.pid)
        for c in conns + [warm]:
            c.close()
        return (after - before) * 1024.0 / n
    finally:
        p.stop()
        p.cleanup()


def tls_rows(opts):
    cluster = t.TlsCluster(t.Certs(), name="pgproxy-bench-mem-tls")
    rows = []
    try:
        cluster.init()
        with open(os.path.join(cluster.datadir, "postgresql.conf"), "a") as f:
            f.write("max_connections = %d\n" % (opts.connections + 20))
        cluster.restart()
        for big in (False, True):
            for tls in (False, True):
                v = [per_connection_tls(cluster, opts.pgproxy, opts.connections, tls, big)
                     for _ in range(opts.runs)]
                rows.append(("idle client session, %s%s" % (
                    "TLS on both hops" if tls else "plaintext",
                    ", after a 200 KB result" if big else ""), v))
    finally:
        cluster.destroy()
    return rows


def per_profile(cluster, binary, requests, statements):
    env = {"PGPROXY_PROFILING_MAX_HISTORY": str(requests)}
    p = h.Proxy(cluster, binary=binary, env=env, log_level="warn", name="pgproxy-mem").start()
    try:
        with psycopg.connect(cluster.dsn(p.port), autocommit=True) as c:
            # One request first: the store and arenas exist before the baseline.
            c.execute("SET pgproxy.request_id = 'warm'")
            c.execute("SELECT 1")
            c.execute("RESET pgproxy.request_id")
            before = settle(p.pid)
            for r in range(requests):
                c.execute("SET pgproxy.request_id = 'r%d'" % r)
                for i in range(statements - 2):
                    c.execute("SELECT %s::int + 1 AS n, 'some text' AS t", (i,))
                c.execute("RESET pgproxy.request_id")
            after = settle(p.pid, 1.0)
        return (after - before) * 1024.0 / requests
    finally:
        p.stop()
        p.cleanup()


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pgproxy", default=h.default_pgproxy_bin())
    ap.add_argument("--connections", type=int, default=200)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--statements", type=int, default=10)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tls", action="store_true",
                    help="only the TLS rows: idle sessions with TLS on both hops vs plaintext")
    opts = ap.parse_args()
    if opts.tls:
        rows = tls_rows(opts)
        print("### pgproxy memory per session, TLS (VmRSS deltas, %d open, %d runs)\n" % (
            opts.connections, opts.runs))
        print("| what | runs (bytes each) | median | jitter % |")
        print("|---|---|---:|---:|")
        for what, v in rows:
            print("| %s | %s | %.0f B | %.1f |" % (what, " ".join("%.0f" % x for x in v),
                                                statistics.median(v), jitter(v)))
        return
    cluster = h.Cluster(name="pgproxy-bench-mem")
    try:
        cluster.init()
        with open(os.path.join(cluster.datadir, "postgresql.conf"), "a") as f:
            f.write("max_connections = %d\n" % (opts.connections + 20))
        cluster.restart()
        conn = [per_connection(cluster, opts.pgproxy, opts.connections)
                for _ in range(opts.runs)]
        prof = [per_profile(cluster, opts.pgproxy, opts.requests, opts.statements)
                for _ in range(opts.runs)]
        print("### pgproxy memory (VmRSS deltas, %d runs)\n" % opts.runs)
        print("| what | runs (bytes each) | median | jitter % |")
        print("|---|---|---:|---:|")
        print("| idle client session (%d open, one statement each) | %s | %.0f B | %.1f |" % (
            opts.connections, " ".join("%.0f" % v for v in conn), statistics.median(conn),
            jitter(conn)))
        print("| stored request profile (%d requests of %d statements) | %s | %.0f B | %.1f |" % (
            opts.requests, opts.statements, " ".join("%.0f" % v for v in prof),
            statistics.median(prof), jitter(prof)))
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
