"""pgproxy statement-tracking integration tests (issue #3): per-fingerprint
digests on GET /debug/queries, /metrics, /healthz, /readyz and the admin
token, checked with real PostgreSQL 15 and real clients (psql, pgbench,
psycopg 3 incl. pipeline mode and server-side cursors, asyncpg, a
raw-socket protocol client for max-rows Executes and odd bytes).

Two halves:
- TestWorkloadsDirect runs every workload straight against the server and
  checks, with pg_stat_statements as the oracle, that the clients really
  execute what the proxy tests expect (N statements, R rows, what a failed
  pipeline skips).  It needs no pgproxy binary: it validates the tests.
- TestProfilingProxy runs the same workloads, each through a pgproxy of
  its own (so digests start empty), and asserts the exact digest values:
  calls, errors, rows, timing (DESIGN 4.2), normalization (4.3), the JSON
  and Prometheus renderings (6).

Run: /usr/bin/python3 -m unittest discover -s tests/integration -v
     (or -p test_profiling.py).  PGPROXY_BIN selects the binary;
     PGPROXY_SKIP_PROXY=1 runs only the direct half.
"""

import asyncio
import importlib.util
import json
import logging
import math
import os
import re
import shutil
import struct
import subprocess
import time
import unittest

import psycopg
import psycopg.errors
from psycopg import sql

import harness as h

# psycopg logs a warning when a pipeline whose error was already raised
# ends; the tests check that error themselves.
logging.getLogger("psycopg").setLevel(logging.ERROR)

CLUSTER = None
PSS = False          # pg_stat_statements loaded (the direct half's oracle)
SKIP_PROXY = os.environ.get("PGPROXY_SKIP_PROXY") == "1"
MODULE_T0 = None

DB = "prof"          # most workloads
BENCH_DB = "profbench"
ASCII_DB = "profascii"
ESC_DB = 'prof"esc\\db'             # a quote and a backslash
ESC_USER = 'esc"role\\\x01'         # ... and a control character
ESC_PASSWORD = "esc-secret-pw"

PGBENCH_CLIENTS = 2
PGBENCH_TX = 200

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")
FINGERPRINT = re.compile(r"^[0-9a-f]{16}$")
INT_FIELDS = ("calls", "errors", "rows")
MS_FIELDS = ("total_ms", "mean_ms", "min_ms", "max_ms", "stddev_ms",
             "p50_ms", "p95_ms", "p99_ms")
REQUIRED_METRICS = {
    "pgproxy_client_connections": "gauge",
    "pgproxy_server_connections": "gauge",
    "pgproxy_connections_total": "counter",
    "pgproxy_queries_total": "counter",
    "pgproxy_query_errors_total": "counter",
    "pgproxy_query_duration_seconds": "histogram",
    "pgproxy_bytes_total": "counter",
}


def setUpModule():
    global CLUSTER, PSS, MODULE_T0
    MODULE_T0 = time.monotonic()
    CLUSTER = h.Cluster(name="pgproxy-prof")
    try:
        CLUSTER.init()
        # pg_stat_statements: the server's own count of what ran, to check
        # the workloads (direct half).  Optional: without it those checks
        # skip, the proxy half does not need it.
        # Debian: /usr/lib/postgresql/15/bin -> /usr/share/postgresql/15.
        major = os.path.basename(os.path.dirname(os.path.normpath(CLUSTER.bindir)))
        if os.path.exists("/usr/share/postgresql/%s/extension/pg_stat_statements.control"
                          % major):
            with open(os.path.join(CLUSTER.datadir, "postgresql.conf"), "a") as f:
                f.write("shared_preload_libraries = 'pg_stat_statements'\n"
                        "pg_stat_statements.track_utility = on\n")
            CLUSTER.restart()
            CLUSTER.admin_sql_socket(["CREATE EXTENSION pg_stat_statements"])
            PSS = True
        CLUSTER.create_database(DB)
        CLUSTER.admin_sql_socket([
            "CREATE DATABASE %s ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' "
            "TEMPLATE template0" % ASCII_DB])
        CLUSTER.admin_sql_socket([
            "CREATE TABLE t (id int PRIMARY KEY, v text)",
            "INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 10) AS i",
            "GRANT SELECT ON t TO %s" % h.TRUST_USER,
        ], dbname=DB)
        with CLUSTER.connect(autocommit=True) as c:
            c.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(ESC_USER), sql.Literal(ESC_PASSWORD)))
            c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(ESC_DB)))
        CLUSTER.create_database(BENCH_DB)
        r = h.pgbench(CLUSTER.port, ["-i", "-s", "1", "-q"], dbname=BENCH_DB)
        if r.returncode != 0:
            raise RuntimeError("pgbench -i failed: %r" % r)
    except BaseException:
        h.LOGS.dump()
        CLUSTER.destroy()
        raise


def tearDownModule():
    CLUSTER.destroy()
    h.log("profiling suite: %.1fs in total" % (time.monotonic() - MODULE_T0))


# --------------------------------------------------------------------------
# Extended-protocol messages for RawConn

def msg_parse(sql, name=b"", oids=()):
    body = name + b"\0" + sql + b"\0" + struct.pack("!H", len(oids))
    body += b"".join(struct.pack("!I", o) for o in oids)
    return h.message(b"P", body)


def msg_bind(params=(), portal=b"", stmt=b"", result_formats=()):
    body = portal + b"\0" + stmt + b"\0" + struct.pack("!H", 0)
    body += struct.pack("!H", len(params))
    for p in params:
        if p is None:
            body += struct.pack("!i", -1)
        else:
            body += struct.pack("!i", len(p)) + p
    body += struct.pack("!H", len(result_formats))
    body += b"".join(struct.pack("!H", f) for f in result_formats)
    return h.message(b"B", body)


def msg_execute(portal=b"", max_rows=0):
    return h.message(b"E", portal + b"\0" + struct.pack("!I", max_rows))


MSG_SYNC = h.message(b"S")
MSG_FLUSH = h.message(b"H")


def read_until(conn, stop):
    """Messages up to and including the first whose type is in stop."""
    out = []
    while True:
        t, p = conn.read_message()
        out.append((t, p))
        if t in stop:
            return out


def raw_login(port, dbname=DB, user=h.ADMIN_USER, **params):
    c = h.RawConn(port)
    try:
        c.login(user, database=dbname, **params)
    except BaseException:
        c.close()
        raise
    return c


def raw_simple(conn, sql_bytes):
    """Simple Query with raw bytes -> (messages, bytes sent, bytes received)."""
    data = h.message(b"Q", sql_bytes + b"\0")
    conn.send(data)
    msgs = read_until(conn, ("Z",))
    return msgs, len(data), sum(5 + len(p) for _, p in msgs)


# --------------------------------------------------------------------------
# Workloads: each runs against a port (the server or a proxy) and returns
# what the client saw, so both halves can check the client's view too.

SIMPLE_LITERALS = list(range(3, 10))        # 7 statements "SELECT n + 1 AS lit_sum"
SIMPLE_SERIES_RUNS = 3                      # "SELECT generate_series(1,5) AS five"
SIMPLE_SLEEP_RUNS = 2                       # "SELECT pg_sleep(0.2) AS slept"


def workload_psql_simple(port):
    script = "".join("SELECT %d + 1 AS lit_sum;\n" % n for n in SIMPLE_LITERALS)
    script += "SELECT generate_series(1,5) AS five;\n" * SIMPLE_SERIES_RUNS
    script += "SELECT pg_sleep(0.2) AS slept;\n" * SIMPLE_SLEEP_RUNS
    out = h.psql(port, input=script, args=["-f", "-"], dbname=DB).stdout
    err = h.psql(port, "SELECT 1/0 AS boom", dbname=DB, check=False)
    multi = h.psql(port, "SELECT 1 AS multi_a; SELECT 2 AS multi_b", dbname=DB).stdout
    # (::text: pg_stat_statements ignores aliases, the cast keeps this
    # apart from "slept" in the direct half's oracle.)
    msleep = h.psql(port, "SELECT pg_sleep(0.1)::text AS ms_a; "
                    "SELECT pg_sleep(0.1)::text AS ms_b", dbname=DB).stdout
    return dict(out=out, err=err, multi=multi, msleep=msleep)


def expected_psql_simple_out():
    return ("".join("%d\n" % (n + 1) for n in SIMPLE_LITERALS) +
            "1\n2\n3\n4\n5\n" * SIMPLE_SERIES_RUNS + "\n" * SIMPLE_SLEEP_RUNS)


def workload_pgbench(port, mode):
    r = h.pgbench(port, ["-n", "-S", "-M", mode, "-c", str(PGBENCH_CLIENTS),
                         "-t", str(PGBENCH_TX)], dbname=BENCH_DB)
    return r


# Pipeline: a sequence counts what the server executed (nextval survives
# the rollback of the implicit transaction a failed pipeline ends in).
PIPE_A = "SELECT nextval('pipe_seq') + %b::int AS pipe_a"       # 3, before the error
PIPE_B = "SELECT nextval('pipe_seq') / %b::int AS pipe_b"       # 1, fails (x / 0)
PIPE_C = "SELECT nextval('pipe_seq') - %b::int AS pipe_c"       # 2, skipped by the server
PIPE_D = "SELECT nextval('pipe_seq') * %b::int AS pipe_d"       # 2, after the Sync


def workload_pipeline(port):
    with CLUSTER.connect(dbname=DB, autocommit=True) as c:
        c.execute("DROP SEQUENCE IF EXISTS pipe_seq")
        c.execute("CREATE SEQUENCE pipe_seq")
    seen = dict(a=[], d=[], error=None, aborted=0)
    with h.connect(port, dbname=DB, autocommit=True) as conn:
        curs = []
        try:
            with conn.pipeline() as p:
                for i in (1, 2, 3):
                    curs.append(("a", conn.execute(PIPE_A, (i,), binary=True)))
                curs.append(("b", conn.execute(PIPE_B, (0,), binary=True)))
                for i in (1, 2):
                    curs.append(("c", conn.execute(PIPE_C, (i,), binary=True)))
                try:
                    p.sync()
                except psycopg.errors.DivisionByZero as e:
                    seen["error"] = type(e).__name__
        except psycopg.errors.DivisionByZero as e:
            seen["error"] = type(e).__name__
        for kind, cur in curs:
            if kind == "a":
                seen["a"].append(cur.fetchone()[0])
        with conn.pipeline():
            ds = [conn.execute(PIPE_D, (i,), binary=True) for i in (1, 2)]
        seen["d"] = [cur.fetchone()[0] for cur in ds]
    with CLUSTER.connect(dbname=DB, autocommit=True) as c:
        seen["seq"] = c.execute("SELECT last_value FROM pipe_seq").fetchone()[0]
    return seen


def workload_asyncpg(port):
    import asyncpg

    async def run():
        conn = await asyncpg.connect(host="127.0.0.1", port=port, user=h.ADMIN_USER,
                                     password=h.ADMIN_PASSWORD, database=DB)
        try:
            stmt = await conn.prepare("SELECT $1::int + 1 AS apg_val")
            vals = [await stmt.fetchval(i) for i in range(10)]
            stmt2 = await conn.prepare("SELECT $1::int * 3 AS apg_rows")
            rows = [len(await stmt2.fetch(i)) for i in range(10)]
            return vals, rows
        finally:
            await conn.close()
    return asyncio.run(run())


def workload_server_cursor(port):
    out = {}
    with h.connect(port, dbname=DB) as conn:
        with conn.cursor(name="fetch_iter") as cur:
            cur.itersize = 100
            cur.execute("SELECT g FROM generate_series(1, 1000) AS g")
            out["iter"] = sum(r[0] for r in cur)
        conn.commit()
        with conn.cursor(name="fetch_many") as cur:
            cur.execute("SELECT g FROM generate_series(1, 1000) AS g")
            total, batches = 0, 0
            while True:
                rows = cur.fetchmany(100)
                if not rows:
                    break
                batches += 1
                total += sum(r[0] for r in rows)
            out["many"] = (total, batches)
        conn.commit()
    return out


MAXROWS_BATCH_SQL = b"SELECT g AS maxrows_batch FROM generate_series(1, 250) AS g"
MAXROWS_FLUSH_SQL = b"SELECT g AS maxrows_flush FROM generate_series(1, 250) AS g"


def workload_max_rows(port):
    """One portal of 250 rows read with Execute(max_rows=100) three times:
    all in one pipeline, then with a Flush and a wait after each."""
    out = {}
    with raw_login(port) as c:
        c.send(msg_parse(MAXROWS_BATCH_SQL) + msg_bind() + msg_execute(max_rows=100) * 3 +
               MSG_SYNC)
        msgs = read_until(c, ("Z",))
        out["batch"] = [t for t, _ in msgs if t != "D"]
        out["batch_rows"] = sum(1 for t, _ in msgs if t == "D")
        out["batch_tags"] = [p.rstrip(b"\0").decode() for t, p in msgs if t == "C"]
        c.send(msg_parse(MAXROWS_FLUSH_SQL) + msg_bind() + MSG_FLUSH)
        types = [t for t, _ in read_until(c, ("2",))]
        rows = 0
        for _ in range(3):
            c.send(msg_execute(max_rows=100) + MSG_FLUSH)
            msgs = read_until(c, ("s", "C", "E"))
            rows += sum(1 for t, _ in msgs if t == "D")
            types += [t for t, _ in msgs if t != "D"]
        c.send(MSG_SYNC)
        types += [t for t, _ in read_until(c, ("Z",))]
        out["flush"] = types
        out["flush_rows"] = rows
    return out


def workload_fingerprint_forms(port):
    """The same statement as a literal (simple protocol), as $1 through
    psycopg, and as $1 through a raw Parse/Bind/Execute."""
    a = h.psql(port, "SELECT * FROM t WHERE id = 5", dbname=DB).stdout
    with h.connect(port, dbname=DB, autocommit=True) as conn:
        b = conn.execute("select * from t where id=%s", (5,)).fetchall()
        # A different operator must be a different fingerprint.
        g = conn.execute("SELECT * FROM t WHERE id > 5").fetchall()
    with raw_login(port) as c:
        c.send(msg_parse(b"select * from t where id=$1") + msg_bind([b"5"]) +
               msg_execute() + MSG_SYNC)
        msgs = read_until(c, ("Z",))
        raw_rows = sum(1 for t, _ in msgs if t == "D")
    return dict(psql=a, psycopg=b, greater=len(g), raw_rows=raw_rows)


# --------------------------------------------------------------------------
# pg_stat_statements (direct half)

def pss_reset():
    with CLUSTER.connect(autocommit=True) as c:
        c.execute("SELECT pg_stat_statements_reset()")


def pss(like, dbname=DB):
    """(calls, rows) summed over pg_stat_statements entries whose query
    text matches the LIKE pattern, in dbname."""
    with CLUSTER.connect(autocommit=True) as c:
        row = c.execute(
            "SELECT coalesce(sum(calls), 0)::int, coalesce(sum(rows), 0)::int "
            "FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
            "WHERE d.datname = %s AND s.query ILIKE %s", (dbname, like)).fetchone()
    return tuple(row)


# --------------------------------------------------------------------------
# Admin HTTP helpers (proxy half)

def get_json(proxy, path, headers=None):
    """GET path -> (status, headers, document).  The body must be strict
    UTF-8 and strict JSON (raw control characters are rejected)."""
    status, hdrs, body = proxy.http_get(path, headers)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise AssertionError("GET %s: body is not valid UTF-8 (%s): %r" % (path, e, body[:300]))
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise AssertionError("GET %s: body is not JSON (%s): %r" % (path, e, text[:500]))
    return status, hdrs, doc


def describe(doc):
    return "\n".join("  %s calls=%s errors=%s rows=%s db=%s user=%s total_ms=%s %r" % (
        e.get("fingerprint"), e.get("calls"), e.get("errors"), e.get("rows"),
        e.get("database"), e.get("user"), e.get("total_ms"), e.get("normalized"))
        for e in doc.get("queries", [])) or "  (no entries)"


def parse_metrics(text):
    """Prometheus text -> ({family: type}, {(name, frozenset(labels)): value})."""
    types, samples = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(None, 3)
            types[name] = typ.strip()
            continue
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s+(\S+)(\s+\S+)?$', line)
        if not m:
            raise AssertionError("unparseable metrics line: %r" % line)
        labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                      m.group(3) or ""))
        samples[(m.group(1), labels)] = float(m.group(4))
    return types, samples


def metric(samples, name, **labels):
    key = (name, frozenset(labels.items()))
    if key not in samples:
        raise AssertionError("metric %s%r missing" % (name, labels))
    return samples[key]


def binary_has_admin(binary):
    return "--admin" in h.binary_help(binary) or "admin" in h.config_sections(binary)


# --------------------------------------------------------------------------
# Direct half: the workloads do what the proxy half expects

class TestWorkloadsDirect(h.TestCase):

    def setUp(self):
        if not PSS:
            self.skipTest("pg_stat_statements not available")
        pss_reset()

    def test_psql_simple(self):
        r = workload_psql_simple(CLUSTER.port)
        self.assertEqual(r["out"], expected_psql_simple_out())
        self.assertIn("division by zero", r["err"].stderr)
        self.assertEqual(r["multi"], "1\n2\n")
        self.assertEqual(pss("SELECT $1 + $2 AS lit_sum%"), (len(SIMPLE_LITERALS),
                                                             len(SIMPLE_LITERALS)))
        self.assertEqual(pss("SELECT generate_series($1,$2) AS five%"),
                         (SIMPLE_SERIES_RUNS, 5 * SIMPLE_SERIES_RUNS))
        self.assertEqual(pss("SELECT pg_sleep($1) AS slept%"), (SIMPLE_SLEEP_RUNS,
                                                               SIMPLE_SLEEP_RUNS))

    def _pgbench(self, mode):
        r = workload_pgbench(CLUSTER.port, mode)
        self.assertTrue(r.ok(), r)
        self.assertEqual(r.processed, PGBENCH_CLIENTS * PGBENCH_TX, r)
        n = PGBENCH_CLIENTS * PGBENCH_TX
        self.assertEqual(pss("SELECT abalance FROM pgbench_accounts WHERE aid = $1%",
                             BENCH_DB), (n, n))

    def test_pgbench_simple(self):
        self._pgbench("simple")

    def test_pgbench_extended(self):
        self._pgbench("extended")

    def test_pgbench_prepared(self):
        self._pgbench("prepared")

    def test_pipeline_error(self):
        seen = workload_pipeline(CLUSTER.port)
        self.assertEqual(seen["error"], "DivisionByZero")
        self.assertEqual(seen["a"], [2, 4, 6])
        self.assertEqual(seen["d"], [5, 12])
        # 3 (a) + 1 (b, failed after nextval) + 0 (c, skipped) + 2 (d)
        self.assertEqual(seen["seq"], 6)
        self.assertEqual(pss("%AS pipe_a"), (3, 3))
        self.assertEqual(pss("%AS pipe_b"), (0, 0))
        self.assertEqual(pss("%AS pipe_c"), (0, 0))
        self.assertEqual(pss("%AS pipe_d"), (2, 2))

    def test_asyncpg_prepared(self):
        if importlib.util.find_spec("asyncpg") is None:
            self.skipTest("asyncpg not importable (apt-get install python3-asyncpg)")
        vals, rows = workload_asyncpg(CLUSTER.port)
        self.assertEqual(vals, list(range(1, 11)))
        self.assertEqual(rows, [1] * 10)
        self.assertEqual(pss("%AS apg_val"), (10, 10))
        self.assertEqual(pss("%AS apg_rows"), (10, 10))

    def test_server_cursor(self):
        out = workload_server_cursor(CLUSTER.port)
        self.assertEqual(out["iter"], 500500)
        self.assertEqual(out["many"], (500500, 10))
        # 10 full batches and the empty one that ends the loop.
        self.assertEqual(pss('FETCH FORWARD 100 FROM "fetch_iter"'), (11, 1000))
        self.assertEqual(pss('FETCH FORWARD 100 FROM "fetch_many"'), (11, 1000))

    def test_max_rows(self):
        out = workload_max_rows(CLUSTER.port)
        self.assertEqual(out["batch"], ["1", "2", "s", "s", "C", "Z"])
        self.assertEqual(out["batch_rows"], 250)
        self.assertEqual(out["batch_tags"], ["SELECT 50"])
        self.assertEqual(out["flush"], ["1", "2", "s", "s", "C", "Z"])
        self.assertEqual(out["flush_rows"], 250)

    def test_fingerprint_forms(self):
        out = workload_fingerprint_forms(CLUSTER.port)
        self.assertEqual(out["psql"], "5|v5\n")
        self.assertEqual(out["psycopg"], [(5, "v5")])
        self.assertEqual(out["greater"], 5)
        self.assertEqual(out["raw_rows"], 1)
        self.assertEqual(pss("%from t where id%=%"), (3, 3))


# --------------------------------------------------------------------------
# Proxy half

class TestProfilingProxy(h.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if SKIP_PROXY:
            raise unittest.SkipTest("PGPROXY_SKIP_PROXY=1")
        binary = h.default_pgproxy_bin()
        if not os.access(binary, os.X_OK):
            raise unittest.SkipTest("no pgproxy binary at %s" % binary)
        if not binary_has_admin(binary):
            raise unittest.SkipTest("%s has no admin HTTP (--admin not in --help)" % binary)

    def setUp(self):
        self.proxies = []

    def tearDown(self):
        for p in self.proxies:
            p.check()
        super().tearDown()

    def proxy(self, **kw):
        """A pgproxy of this test's own: its digests start empty."""
        p = h.Proxy(kw.pop("upstream", CLUSTER), name="pgproxy-" + self._testMethodName, **kw)
        self.addCleanup(p.cleanup)
        self.addCleanup(lambda: p.stop() if p.alive() else None)
        p.start()
        p.wait_admin()
        self.proxies.append(p)
        return p

    # -- /debug/queries ------------------------------------------------------
    def digests(self, proxy, order="calls"):
        status, hdrs, doc = get_json(proxy, "/debug/queries?order=%s&limit=10000" % order)
        self.assertEqual(status, 200, doc)
        self.assertTrue(hdrs.get("content-type", "").startswith("application/json"),
                        hdrs.get("content-type"))
        self.assertIsInstance(doc, dict)
        self.assertIsInstance(doc.get("queries"), list, doc)
        for k in ("entries", "evictions"):
            self.assertIsInstance(doc.get(k), int, "%s in %r" % (k, {k: doc.get(k)}))
        self.assertGreaterEqual(doc["entries"], len(doc["queries"]))
        for e in doc["queries"]:
            self.check_entry(e)
        return doc

    def check_entry(self, e):
        """Shape and internal consistency of one digest entry."""
        what = "digest entry %r" % e
        for k in ("fingerprint", "normalized", "database", "user", "first_seen", "last_seen"):
            self.assertIsInstance(e.get(k), str, "%s: %s" % (k, what))
        self.assertRegex(e["fingerprint"], FINGERPRINT, what)
        for k in INT_FIELDS:
            self.assertTrue(isinstance(e.get(k), int) and not isinstance(e[k], bool),
                            "%s: %s" % (k, what))
            self.assertGreaterEqual(e[k], 0, what)
        for k in MS_FIELDS:
            v = e.get(k)
            self.assertTrue(isinstance(v, (int, float)) and not isinstance(v, bool)
                            and math.isfinite(v) and v >= 0, "%s: %s" % (k, what))
        self.assertRegex(e["first_seen"], ISO_UTC, what)
        self.assertRegex(e["last_seen"], ISO_UTC, what)
        self.assertLessEqual(e["first_seen"], e["last_seen"], what)
        self.assertGreaterEqual(e["calls"], 1, what)
        self.assertLessEqual(e["errors"], e["calls"], what)
        eps = 0.002  # the JSON has three decimals
        self.assertLessEqual(e["min_ms"], e["mean_ms"] + eps, what)
        self.assertLessEqual(e["mean_ms"], e["max_ms"] + eps, what)
        self.assertAlmostEqual(e["total_ms"], e["mean_ms"] * e["calls"],
                               delta=eps * e["calls"] + 1e-6 * e["total_ms"], msg=what)
        for a, b in (("min_ms", "p50_ms"), ("p50_ms", "p95_ms"), ("p95_ms", "p99_ms"),
                     ("p99_ms", "max_ms")):
            self.assertLessEqual(e[a], e[b] + eps, "%s <= %s: %s" % (a, b, what))
        # A standard deviation (population or sample) is at most
        # (max - min) / 2 * sqrt(n / (n - 1)); a variance in ms^2 is not.
        n = e["calls"]
        bound = (e["max_ms"] - e["min_ms"]) / 2 * (math.sqrt(n / (n - 1)) if n > 1 else 1)
        self.assertLessEqual(e["stddev_ms"], bound + eps,
                             "stddev_ms exceeds (max-min)/2*sqrt(n/(n-1)) = %.3f: %s"
                             % (bound, what))

    def find(self, doc, needles, database=None, user=None):
        return [e for e in doc["queries"]
                if all(n in e["normalized"] for n in needles)
                and (database is None or e["database"] == database)
                and (user is None or e["user"] == user)]

    def entry(self, proxy, *needles, calls=None, database=DB, user=h.ADMIN_USER,
              timeout=5.0):
        """The single digest entry whose normalized text contains every
        needle.  With calls: waits (up to timeout) until it has at least
        that many, then reads again a moment later so that overcounting
        shows too."""
        deadline = time.monotonic() + timeout
        while True:
            doc = self.digests(proxy)
            found = self.find(doc, needles, database, user)
            if found and (calls is None or sum(e["calls"] for e in found) >= calls):
                break
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        time.sleep(0.1)
        doc = self.digests(proxy)
        found = self.find(doc, needles, database, user)
        self.assertEqual(len(found), 1, "expected one digest entry containing %r "
                         "(database=%s user=%s), found %d; all entries:\n%s" % (
                             needles, database, user, len(found), describe(doc)))
        self.last_doc = doc
        return found[0]

    def assert_counts(self, e, calls, errors=0, rows=None):
        got = dict(calls=e["calls"], errors=e["errors"])
        want = dict(calls=calls, errors=errors)
        if rows is not None:
            got["rows"], want["rows"] = e["rows"], rows
        self.assertEqual(got, want, "digest %r\nall entries:\n%s" % (
            e["normalized"], describe(self.last_doc)))

    def no_entry(self, proxy, *needles, database=DB):
        doc = self.digests(proxy)
        found = self.find(doc, needles, database)
        self.assertEqual(found, [], "statements the server never executed have a digest "
                         "entry (%r):\n%s" % (needles, describe(doc)))

    def assert_ms(self, e, field, lo, hi):
        self.assertTrue(lo <= e[field] <= hi, "%s of %r = %.3f ms, expected %g..%g ms" % (
            field, e["normalized"], e[field], lo, hi))

    # -- 1. psql, simple protocol ----------------------------------------------
    def test_psql_simple_calls_errors_rows_timing(self):
        p = self.proxy()
        r = workload_psql_simple(p.port)
        self.assertEqual(r["out"], expected_psql_simple_out())
        self.assertIn("division by zero", r["err"].stderr)

        e = self.entry(p, "AS lit_sum", calls=len(SIMPLE_LITERALS))
        self.assertEqual(e["normalized"], "SELECT ? + ? AS lit_sum")
        self.assert_counts(e, calls=7, errors=0, rows=7)

        e = self.entry(p, "AS boom", calls=1)
        self.assertEqual(e["normalized"], "SELECT ?/? AS boom")
        self.assert_counts(e, calls=1, errors=1)

        e = self.entry(p, "AS five", calls=SIMPLE_SERIES_RUNS)
        self.assertEqual(e["normalized"], "SELECT generate_series(?,?) AS five")
        self.assert_counts(e, calls=3, errors=0, rows=15)

        e = self.entry(p, "AS slept", calls=SIMPLE_SLEEP_RUNS)
        self.assertEqual(e["normalized"], "SELECT pg_sleep(?) AS slept")
        self.assert_counts(e, calls=2, errors=0, rows=2)
        # pg_sleep(0.2): never shorter; the upper bound leaves room for a loaded CI
        # machine (a 2-core run measured 249.7 ms) while still catching time that is
        # not the statement's (think time, the next statement).
        for k in ("mean_ms", "min_ms", "max_ms", "p50_ms", "p99_ms"):
            self.assert_ms(e, k, 180, 350)
        self.assert_ms(e, "total_ms", 360, 700)

        # A multi-statement Query is one event, timed to its ReadyForQuery.
        e = self.entry(p, "AS multi_a", calls=1)
        self.assertEqual(e["normalized"], "SELECT ? AS multi_a; SELECT ? AS multi_b")
        self.assert_counts(e, calls=1, errors=0)
        e = self.entry(p, "AS ms_a", calls=1)
        self.assert_counts(e, calls=1, errors=0)
        self.assert_ms(e, "mean_ms", 180, 300)

        doc = self.last_doc
        self.assertEqual(doc["evictions"], 0)
        self.assertEqual(doc["entries"], len(doc["queries"]), describe(doc))

    def test_timing_extended_and_stddev(self):
        p = self.proxy()
        with h.connect(p.port, dbname=DB, autocommit=True) as conn:
            conn.execute("SELECT pg_sleep(%s) AS ext_sleep", (0.2,))
            # Two durations of one fingerprint: mean 100 ms, stddev 50 ms
            # (population) or 70.7 ms (sample).
            conn.execute("SELECT pg_sleep(%s) AS sd_sleep", (0.05,))
            conn.execute("SELECT pg_sleep(%s) AS sd_sleep", (0.15,))
            # Pipelined: answered in one flush; the batch total is exact
            # (DESIGN 4.2), so the two events add up to ~200 ms, not ~400.
            with conn.pipeline():
                conn.execute("SELECT pg_sleep(%s) AS batch_sleep", (0.1,))
                conn.execute("SELECT pg_sleep(%s) AS batch_sleep", (0.1,))
        e = self.entry(p, "AS ext_sleep", calls=1)
        self.assert_counts(e, calls=1, errors=0, rows=1)
        # Lower bounds are exact (never shorter than the sleep); upper bounds leave
        # room for a loaded 2-core CI machine but still tell the cases apart.
        self.assert_ms(e, "mean_ms", 180, 300)
        e = self.entry(p, "AS sd_sleep", calls=2)
        self.assert_counts(e, calls=2, errors=0, rows=2)
        self.assert_ms(e, "mean_ms", 90, 150)
        self.assert_ms(e, "min_ms", 45, 95)
        self.assert_ms(e, "max_ms", 135, 220)
        self.assert_ms(e, "stddev_ms", 40, 90)
        e = self.entry(p, "AS batch_sleep", calls=2)
        self.assert_counts(e, calls=2, errors=0, rows=2)
        self.assert_ms(e, "total_ms", 180, 320)   # ~400 would mean each timed alone

    def test_fingerprint_literal_vs_parameter(self):
        p = self.proxy()
        out = workload_fingerprint_forms(p.port)
        self.assertEqual(out["psql"], "5|v5\n")
        self.assertEqual(out["psycopg"], [(5, "v5")])
        self.assertEqual(out["raw_rows"], 1)
        doc = self.digests(p)
        eq = [e for e in doc["queries"] if e["database"] == DB and
              re.search(r"(?i)from t where id ?= ?\?$", e["normalized"])]
        self.assertEqual(len(eq), 1, "`id = 5`, `id=$1` (psycopg) and `id=$1` (raw "
                         "Parse) must share one entry:\n%s" % describe(doc))
        self.last_doc = doc
        self.assert_counts(eq[0], calls=3, errors=0, rows=3)
        gt = self.entry(p, "id > ?", calls=1)
        self.assertNotEqual(gt["fingerprint"], eq[0]["fingerprint"])
        self.assert_counts(gt, calls=1, errors=0, rows=5)
        # The `pgproxy normalize` subcommand gives the same fingerprint.
        cli = subprocess.run([p.binary, "normalize"], capture_output=True, text=True,
                             input="SELECT * FROM t WHERE id = 5\n"
                                   "select * from t where id=$1\n", timeout=30)
        if cli.returncode == 0 and cli.stdout.count("\t") == 2:
            fps = [line.split("\t", 1)[0] for line in cli.stdout.splitlines()]
            self.assertEqual(fps, [eq[0]["fingerprint"]] * 2, cli.stdout)

    def test_key_is_database_user_fingerprint(self):
        p = self.proxy()
        h.psql(p.port, "SELECT 42 AS per_key", dbname=DB)
        h.psql(p.port, "SELECT 43 AS per_key", dbname=DB)
        h.psql(p.port, "SELECT 44 AS per_key", dbname=DB, user=h.TRUST_USER)
        h.psql(p.port, "SELECT 45 AS per_key", dbname="postgres")
        a = self.entry(p, "AS per_key", calls=2)
        self.assert_counts(a, calls=2)
        b = self.entry(p, "AS per_key", calls=1, user=h.TRUST_USER)
        self.assert_counts(b, calls=1)
        c = self.entry(p, "AS per_key", calls=1, database="postgres")
        self.assert_counts(c, calls=1)
        self.assertEqual(a["fingerprint"], b["fingerprint"])
        self.assertEqual(a["fingerprint"], c["fingerprint"])
        doc = self.digests(p)
        self.assertEqual(len(self.find(doc, ["AS per_key"])), 3, describe(doc))

    def test_order_limit_and_bad_arguments(self):
        p = self.proxy()
        script = ("SELECT 1 AS ord_many;\n" * 4 + "SELECT pg_sleep(0.2) AS ord_slow;\n" +
                  "SELECT 2 AS ord_two;\n" * 2)
        h.psql(p.port, input=script, args=["-f", "-"], dbname=DB)
        self.entry(p, "AS ord_two", calls=2)
        for order, key, first in (("calls", "calls", "ord_many"),
                                  ("total", "total_ms", "ord_slow"),
                                  ("mean", "mean_ms", "ord_slow")):
            status, _, doc = get_json(p, "/debug/queries?order=%s&limit=100" % order)
            self.assertEqual(status, 200)
            vals = [e[key] for e in doc["queries"]]
            self.assertEqual(vals, sorted(vals, reverse=True), "order=%s:\n%s" % (
                order, describe(doc)))
            self.assertIn(first, doc["queries"][0]["normalized"], "order=%s:\n%s" % (
                order, describe(doc)))
        status, _, doc = get_json(p, "/debug/queries?order=calls&limit=1")
        self.assertEqual(status, 200)
        self.assertEqual(len(doc["queries"]), 1, describe(doc))
        self.assertIn("ord_many", doc["queries"][0]["normalized"])
        self.assertGreaterEqual(doc["entries"], 3)
        status, _, doc = get_json(p, "/debug/queries")
        self.assertEqual(status, 200)
        self.assertGreaterEqual(len(doc["queries"]), 3)
        for q in ("order=bogus", "order=", "limit=abc", "limit=-1", "limit=1x",
                  "limit=0", "order=calls&limit=2.5"):
            status, hdrs, doc = get_json(p, "/debug/queries?" + q)
            self.assertEqual(status, 400, "?%s -> %d %r" % (q, status, doc))
            self.assertTrue(hdrs.get("content-type", "").startswith("application/json"),
                            "?%s: %s" % (q, hdrs.get("content-type")))
            self.assertIsInstance(doc, dict)
            self.assertIsInstance(doc.get("error"), str, "?%s: %r" % (q, doc))

    def test_profiling_disabled(self):
        p = self.proxy(env={"PGPROXY_PROFILING_ENABLED": "false"})
        out = h.psql(p.port, input="SELECT 1 AS off_a;\nSELECT 2 AS off_a;\n",
                     args=["-f", "-"], dbname=DB).stdout
        self.assertEqual(out, "1\n2\n")
        with h.connect(p.port, dbname=DB, autocommit=True) as conn:
            self.assertEqual(conn.execute("SELECT %s::int AS off_b", (3,)).fetchone(), (3,))
        time.sleep(0.3)
        doc = self.digests(p)
        self.assertEqual(doc["queries"], [], describe(doc))
        self.assertEqual(doc["entries"], 0)

    # -- 2. pgbench --------------------------------------------------------------
    def _pgbench(self, mode):
        p = self.proxy()
        r = workload_pgbench(p.port, mode)
        self.assertTrue(r.ok(), r)
        n = PGBENCH_CLIENTS * PGBENCH_TX
        self.assertEqual(r.processed, n, r)
        e = self.entry(p, "pgbench_accounts", "abalance", calls=n, database=BENCH_DB)
        self.assertEqual(re.sub(r"\s+", " ", e["normalized"]).rstrip(";"),
                         "SELECT abalance FROM pgbench_accounts WHERE aid = ?")
        self.assert_counts(e, calls=n, errors=0, rows=n)
        self.assertGreater(e["total_ms"], 0)

    def test_pgbench_simple(self):
        self._pgbench("simple")

    def test_pgbench_extended(self):
        self._pgbench("extended")

    def test_pgbench_prepared(self):
        self._pgbench("prepared")

    # -- 3. psycopg pipeline, binary parameters, an error mid-pipeline -----------
    def test_pipeline_binary_error_mid_pipeline(self):
        p = self.proxy()
        seen = workload_pipeline(p.port)
        self.assertEqual(seen["error"], "DivisionByZero")
        self.assertEqual(seen["a"], [2, 4, 6])
        self.assertEqual(seen["d"], [5, 12])
        self.assertEqual(seen["seq"], 6)
        self.assert_counts(self.entry(p, "AS pipe_a", calls=3), calls=3, errors=0, rows=3)
        self.assert_counts(self.entry(p, "AS pipe_b", calls=1), calls=1, errors=1, rows=0)
        self.assert_counts(self.entry(p, "AS pipe_d", calls=2), calls=2, errors=0, rows=2)
        # The server skipped these (error before the Sync): not executed.
        self.no_entry(p, "AS pipe_c")
        e = self.entry(p, "AS pipe_a")
        self.assertEqual(e["normalized"], "SELECT nextval(?) + ?::int AS pipe_a")

    # -- 4. asyncpg prepared statements -----------------------------------------
    def test_asyncpg_prepared(self):
        if importlib.util.find_spec("asyncpg") is None:
            self.skipTest("asyncpg not importable (apt-get install python3-asyncpg)")
        p = self.proxy()
        vals, rows = workload_asyncpg(p.port)
        self.assertEqual(vals, list(range(1, 11)))
        self.assertEqual(rows, [1] * 10)
        e = self.entry(p, "AS apg_val", calls=10)
        self.assertEqual(e["normalized"], "SELECT ?::int + ? AS apg_val")
        self.assert_counts(e, calls=10, errors=0, rows=10)
        self.assert_counts(self.entry(p, "AS apg_rows", calls=10), calls=10, errors=0, rows=10)

    # -- 5. fetch sizes: server-side cursors and Execute max_rows ----------------
    def test_server_cursor_fetch(self):
        p = self.proxy()
        out = workload_server_cursor(p.port)
        self.assertEqual(out["iter"], 500500)
        self.assertEqual(out["many"], (500500, 10))
        for name in ("fetch_iter", "fetch_many"):
            e = self.entry(p, "FETCH", name, calls=11)
            self.assertEqual(e["normalized"], 'FETCH FORWARD ? FROM "%s"' % name)
            self.assert_counts(e, calls=11, errors=0, rows=1000)

    def test_execute_max_rows_portal_suspended(self):
        p = self.proxy()
        out = workload_max_rows(p.port)
        self.assertEqual(out["batch"], ["1", "2", "s", "s", "C", "Z"])
        self.assertEqual(out["batch_rows"], 250)
        self.assertEqual(out["flush"], ["1", "2", "s", "s", "C", "Z"])
        self.assertEqual(out["flush_rows"], 250)
        for alias in ("maxrows_batch", "maxrows_flush"):
            e = self.entry(p, "AS " + alias, calls=3)
            self.assertEqual(e["normalized"],
                             "SELECT g AS %s FROM generate_series(?, ?) AS g" % alias)
            self.assert_counts(e, calls=3, errors=0, rows=250)

    # -- 6. /metrics ---------------------------------------------------------------
    def metrics(self, proxy):
        status, hdrs, body = proxy.http_get("/metrics")
        self.assertEqual(status, 200, body[:500])
        self.assertTrue(hdrs.get("content-type", "").startswith("text/plain"),
                        hdrs.get("content-type"))
        text = body.decode("utf-8")
        types, samples = parse_metrics(text)
        return text, types, samples

    def test_metrics_promtool_and_exact_counters(self):
        p = self.proxy()
        text, types, samples = self.metrics(p)
        promtool = shutil.which("promtool")
        if promtool:
            r = subprocess.run([promtool, "check", "metrics"], input=text,
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, "promtool check metrics failed:\n%s%s\n"
                             "--- exposition ---\n%s" % (r.stdout, r.stderr, text))
        for name, typ in REQUIRED_METRICS.items():
            self.assertEqual(types.get(name), typ, "# TYPE of %s" % name)
        for d in ("client_to_server", "server_to_client"):
            metric(samples, "pgproxy_bytes_total", direction=d)
        self.assertEqual(metric(samples, "pgproxy_connections_total"), 0)
        self.assertEqual(metric(samples, "pgproxy_queries_total"), 0)

        c = raw_login(p.port)
        self.addCleanup(c.close)

        def snapshot():
            return self.metrics(p)[2]

        def stable():
            a = snapshot()
            time.sleep(0.05)
            b = snapshot()
            return b if a == b else None
        m0 = h.wait_for(stable, 5, 0.05, "quiet metrics")
        self.assertEqual(metric(m0, "pgproxy_client_connections"), 1)
        self.assertEqual(metric(m0, "pgproxy_server_connections"), 1)
        self.assertEqual(metric(m0, "pgproxy_connections_total"), 1)

        sent = received = 0
        for i in range(5):
            msgs, s, r = raw_simple(c, b"SELECT %d AS quiet" % i)
            self.assertIn("C", [t for t, _ in msgs])
            sent += s
            received += r
        msgs, s, r = raw_simple(c, b"SELECT 1/0 AS quiet_err")
        self.assertIn("E", [t for t, _ in msgs])
        sent += s
        received += r

        def after():
            m = snapshot()
            return m if metric(m, "pgproxy_queries_total") >= \
                metric(m0, "pgproxy_queries_total") + 6 else None
        try:
            h.wait_for(after, 5, 0.05, "pgproxy_queries_total to grow by 6")
        except AssertionError:
            pass
        time.sleep(0.1)
        m1 = snapshot()

        def delta(name, **labels):
            return metric(m1, name, **labels) - metric(m0, name, **labels)
        got = dict(
            queries=delta("pgproxy_queries_total"),
            errors=delta("pgproxy_query_errors_total"),
            histogram_count=delta("pgproxy_query_duration_seconds_count"),
            histogram_inf=delta("pgproxy_query_duration_seconds_bucket", le="+Inf"),
            bytes_c2s=delta("pgproxy_bytes_total", direction="client_to_server"),
            bytes_s2c=delta("pgproxy_bytes_total", direction="server_to_client"),
            connections_total=delta("pgproxy_connections_total"))
        self.assertEqual(got, dict(queries=6, errors=1, histogram_count=6, histogram_inf=6,
                                   bytes_c2s=sent, bytes_s2c=received,
                                   connections_total=0))
        self.assertGreater(delta("pgproxy_query_duration_seconds_sum"), 0)
        # Cumulative buckets: non-decreasing in le, +Inf equals _count.
        buckets = sorted((float(dict(k[1])["le"]), v) for k, v in m1.items()
                         if k[0] == "pgproxy_query_duration_seconds_bucket")
        counts = [v for _, v in buckets]
        self.assertEqual(counts, sorted(counts), buckets)
        self.assertEqual(buckets[-1], (math.inf, metric(m1, "pgproxy_query_duration_seconds_count")))

        c.close()
        h.wait_for(lambda: metric(snapshot(), "pgproxy_client_connections") == 0 and
                   metric(snapshot(), "pgproxy_server_connections") == 0,
                   5, 0.05, "client and server connection gauges back to 0")

    # -- 7. JSON escaping ---------------------------------------------------------
    def test_json_escaping_quotes_backslash_control_invalid_utf8(self):
        p = self.proxy()
        with raw_login(p.port) as c:
            msgs, _, _ = raw_simple(c, b'SELECT 1 AS "we""ird\\x"')
            self.assertIn("C", [t for t, _ in msgs])
            msgs, _, _ = raw_simple(c, b'SELECT 2 AS "ctl\x01\x1f\tid"')
            self.assertIn("C", [t for t, _ in msgs])
            msgs, _, _ = raw_simple(c, b'SELECT 3 AS "</script><b>&amp;"')
            self.assertIn("C", [t for t, _ in msgs])
            # UTF8 database: the server refuses the bytes (22021), the
            # proxy has seen them all the same.
            msgs, _, _ = raw_simple(c, b'SELECT 4 AS "badutf\xff\xfe\xc3id"')
            errs = [h.parse_error_fields(pl) for t, pl in msgs if t == "E"]
            self.assertEqual([e.get("C") for e in errs], ["22021"], errs)
        with raw_login(p.port, dbname=ASCII_DB) as c:
            msgs, _, _ = raw_simple(c, b'SELECT 5 AS "ascii\xe9\xffid"')
            self.assertIn("C", [t for t, _ in msgs], msgs)
        # User and database names are copied from the startup packet as
        # they are: quote, backslash and a control character in both.
        with raw_login(p.port, dbname=ESC_DB, user=ESC_USER, password=ESC_PASSWORD) as c:
            msgs, _, _ = raw_simple(c, b"SELECT 6 AS esc_names")
            self.assertIn("C", [t for t, _ in msgs], msgs)

        e = self.entry(p, "we", calls=1)
        self.assertEqual(e["normalized"], 'SELECT ? AS "we""ird\\x"')
        self.assert_counts(e, calls=1, errors=0, rows=1)
        e = self.entry(p, "ctl", calls=1)
        # Verbatim (JSON-escaped), or with each control byte shown as '?'
        # (what pgproxy-norm does today); anything else is a rendering bug.
        self.assertIn(e["normalized"], ('SELECT ? AS "ctl\x01\x1f\tid"',
                                        'SELECT ? AS "ctl???id"'))
        e = self.entry(p, "</script>", calls=1)
        self.assertEqual(e["normalized"], 'SELECT ? AS "</script><b>&amp;"')
        e = self.entry(p, "badutf", calls=1)
        self.assert_counts(e, calls=1, errors=1)
        self.assertTrue(e["normalized"].startswith('SELECT ? AS "badutf'), e)
        self.assertTrue(e["normalized"].endswith('id"'), e)
        self.assertIn("\ufffd", e["normalized"])
        e = self.entry(p, "ascii", calls=1, database=ASCII_DB)
        self.assert_counts(e, calls=1, errors=0, rows=1)
        self.assertIn("\ufffd", e["normalized"])
        e = self.entry(p, "AS esc_names", calls=1, database=ESC_DB, user=ESC_USER)
        self.assert_counts(e, calls=1, errors=0, rows=1)
        # The raw body: control characters escaped, never literal.
        status, _, body = p.http_get("/debug/queries?limit=10000")
        self.assertEqual(status, 200)
        self.assertIsNone(re.search(rb"[\x00-\x1f]", body.replace(b"\n", b"")),
                          "raw control character in the JSON body")
        self.assertIn(b"\\u0001", body)

    # -- 8. health, readiness, token ----------------------------------------------
    def test_healthz_readyz_follow_upstream(self):
        p = self.proxy()
        status, hdrs, doc = get_json(p, "/healthz")
        self.assertEqual((status, doc), (200, {"status": "ok"}))
        self.assertTrue(hdrs.get("content-type", "").startswith("application/json"))
        status, _, doc = get_json(p, "/readyz")
        self.assertEqual(status, 200, doc)
        CLUSTER.stop()
        try:
            status, hdrs, doc = get_json(p, "/readyz")
            self.assertEqual(status, 503, doc)
            self.assertTrue(hdrs.get("content-type", "").startswith("application/json"))
            self.assertIsInstance(doc, dict)
            reason = doc.get("reason")
            self.assertTrue(isinstance(reason, str) and reason, "no reason in %r" % doc)
            status, _, doc = get_json(p, "/healthz")
            self.assertEqual((status, doc), (200, {"status": "ok"}))
        finally:
            CLUSTER.start()

        def ready():
            return get_json(p, "/readyz")[0] == 200
        h.wait_for(ready, 10, 0.1, "/readyz 200 after the cluster restarted")
        self.assertEqual(h.psql(p.port, "SELECT 'back'", dbname=DB).stdout, "back\n")

    def test_readyz_unreachable_upstream(self):
        p = self.proxy(upstream="127.0.0.1:%d" % h.free_port())
        status, _, doc = get_json(p, "/readyz")
        self.assertEqual(status, 503, doc)
        self.assertTrue(isinstance(doc.get("reason"), str) and doc["reason"], doc)

    def test_admin_token(self):
        p = self.proxy(env={"PGPROXY_ADMIN_TOKEN": "secret"})
        h.psql(p.port, "SELECT 1 AS tok", dbname=DB)
        for path in ("/debug/queries", "/metrics"):
            for hdrs in ({}, {"Authorization": "Bearer wrong"},
                         {"Authorization": "Bearer secretX"},
                         {"Authorization": "Bearer secre"},
                         {"Authorization": "Basic c2VjcmV0"}):
                status, _, body = p.http_get(path, hdrs)
                self.assertEqual(status, 401, "%s with %r -> %d %r" % (path, hdrs, status,
                                                                        body[:200]))
                self.assertNotIn(b"tok", body)
            status, _, body = p.http_get(path, {"Authorization": "Bearer secret"})
            self.assertEqual(status, 200, "%s with the token -> %d %r" % (path, status,
                                                                         body[:200]))
        status, _, doc = get_json(p, "/debug/queries", {"Authorization": "Bearer secret"})
        self.assertEqual(len(self.find(doc, ["AS tok"])), 1, describe(doc))

    def test_admin_listen_flag_env_config(self):
        # Flag: what every other test uses (when --help lists --admin).
        if "--admin" in h.binary_help(h.default_pgproxy_bin()):
            p = self.proxy(admin_via="flag")
            self.assertIn("--admin", p.cmd)
            self.assertEqual(get_json(p, "/healthz")[0], 200)
        port = h.free_port()
        p = self.proxy(admin_via="none", admin_port=port,
                       env={"PGPROXY_ADMIN_LISTEN": "127.0.0.1:%d" % port})
        self.assertEqual(get_json(p, "/healthz")[0], 200)
        port = h.free_port()
        cfg = os.path.join(CLUSTER.tmpdir, "admin-%d.toml" % port)
        with open(cfg, "w") as f:
            f.write('[admin]\nlisten = "127.0.0.1:%d"\n' % port)
        p = self.proxy(admin_via="none", admin_port=port, args=["-c", cfg])
        self.assertEqual(get_json(p, "/healthz")[0], 200)

    def test_admin_default_is_loopback(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PGPROXY")}
        out = subprocess.run([h.default_pgproxy_bin(), "--check-config"], env=env, cwd="/",
                             capture_output=True, text=True, timeout=30).stdout
        m = re.search(r"^\[admin\]\n((?:[^\[].*\n?)*)", out, re.M)
        self.assertIsNotNone(m, out)
        listen = re.search(r'^listen\s*=\s*"([^"]*)"', m.group(1), re.M)
        self.assertIsNotNone(listen, m.group(1))
        self.assertRegex(listen.group(1), r"^(127\.0\.0\.1|\[::1\]|localhost):\d+$")


if __name__ == "__main__":
    unittest.main()
