"""The slow-query log through pgproxy (issue #5), with real PostgreSQL 15
and real sqlite files: N slow statements give exactly N rows in each sink
with the right columns; the postgres sink's table is UNLOGGED with both
indexes and upgrades an older five-column table; rows survive a pgproxy
restart; quotes, backslashes and invalid UTF-8 are stored; a sink server
stopped mid-workload costs the workload nothing and writing resumes; a
SIGTERM flushes what is queued; /debug/slow-queries and the slow_* metrics.

The slow log goes to a second cluster ("sink") so it can be stopped while
the application's server keeps serving.

Run: /usr/bin/python3 -m unittest discover -s tests/integration -p test_slowlog.py -v
"""

import json
import os
import re
import signal
import sqlite3
import time
import unittest

import psycopg

import harness as h

APP = None
SINK = None
DB = "app"
ASCII_DB = "appascii"
SINK_DB = "slowlog"
THRESHOLD_MS = 50
SLEEP = 0.06


def setUpModule():
    global APP, SINK
    APP = h.Cluster(name="pgproxy-slow-app")
    SINK = h.Cluster(name="pgproxy-slow-sink")
    try:
        APP.init()
        APP.create_database(DB)
        APP.admin_sql_socket([
            "CREATE DATABASE %s ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' "
            "TEMPLATE template0" % ASCII_DB])
        r = h.pgbench(APP.port, ["-i", "-s", "1", "-q"], dbname=DB)
        if r.returncode != 0:
            raise RuntimeError("pgbench -i failed: %r" % r)
        SINK.init()
        SINK.create_database(SINK_DB)
    except Exception:
        APP.destroy()
        SINK.destroy()
        raise


def tearDownModule():
    for c in (APP, SINK):
        if c is not None:
            c.destroy()


def http_text(proxy, path):
    status, hdrs, body = proxy.http_get(path)
    return status, hdrs, body.decode() if isinstance(body, bytes) else body


def metrics(proxy):
    status, _, text = http_text(proxy, "/metrics")
    assert status == 200, text
    return {k: float(v) for k, v in re.findall(r"^(pgproxy_\w+) ([0-9.e+-]+)$", text, re.M)}


class SlowLogBase(h.TestCase):

    def proxy(self, sink, **env):
        e = {"PGPROXY_PROFILING_SLOW_QUERY_THRESHOLD_MS": str(THRESHOLD_MS),
             "PGPROXY_SLOW_LOG_SINK": sink}
        if sink == "postgres":
            e["PGPROXY_SLOW_LOG_DSN"] = SINK.dsn(dbname=SINK_DB)
        e.update(env)
        p = h.Proxy(APP, env=e, name="pgproxy-" + self._testMethodName)
        self.addCleanup(p.cleanup)
        self.addCleanup(lambda: p.stop() if p.alive() else None)
        p.start()
        p.wait_admin()
        return p

    def workload(self, proxy, n_slow, n_fast=5, app_name="slowtest", dbname=DB):
        with psycopg.connect(APP.dsn(proxy.port, dbname=dbname), autocommit=True,
                             application_name=app_name) as c:
            for i in range(n_fast):
                self.assertEqual(c.execute("SELECT %d" % i).fetchone()[0], i)
            for i in range(n_slow):
                c.execute("SELECT pg_sleep(%s), %d AS n" % (SLEEP, i))

    def wait_written(self, proxy, n, timeout=15):
        h.wait_for(lambda: metrics(proxy).get("pgproxy_slow_log_written_total", 0) >= n,
                   timeout, what="%d slow-log rows written" % n)

    def sink_rows(self, sql="SELECT sql_text, duration_ms, fingerprint, normalized_sql, "
                            "database_name, user_name, application_name, session_id, rows, "
                            "sqlstate, proxy_instance FROM hyper_slow_queries ORDER BY id"):
        with psycopg.connect(SINK.dsn(dbname=SINK_DB), autocommit=True) as c:
            return c.execute(sql).fetchall()

    def sink_reset(self):
        with psycopg.connect(SINK.dsn(dbname=SINK_DB), autocommit=True) as c:
            c.execute("DROP TABLE IF EXISTS hyper_slow_queries")

    def sqlite_rows(self, path, sql="SELECT sql_text, duration_ms, fingerprint, normalized_sql, "
                                    "database_name, user_name, application_name, session_id, "
                                    "rows, sqlstate, proxy_instance FROM hyper_slow_queries "
                                    "ORDER BY id"):
        db = sqlite3.connect(path)
        db.text_factory = bytes
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()


class TestSlowLog(SlowLogBase):

    def check_rows(self, rows, n, decode=lambda v: v):
        self.assertEqual(len(rows), n, rows)
        fps = set()
        for i, r in enumerate(rows):
            sql_text, dur, fp, norm, dbn, user, app, sid, nrows, sqlstate, inst = \
                [decode(v) for v in r]
            self.assertEqual(sql_text, "SELECT pg_sleep(%s), %d AS n" % (SLEEP, i))
            self.assertGreaterEqual(dur, SLEEP * 1000)
            self.assertLess(dur, SLEEP * 1000 * 10)
            self.assertRegex(fp, r"^[0-9a-f]{16}$")
            fps.add(fp)
            self.assertEqual(norm, "SELECT pg_sleep(?), ? AS n")
            self.assertEqual(dbn, DB)
            self.assertEqual(user, h.ADMIN_USER)
            self.assertEqual(app, "slowtest")
            self.assertGreater(sid, 0)
            self.assertEqual(nrows, 1)
            self.assertIsNone(sqlstate)
            self.assertTrue(inst)
        self.assertEqual(len(fps), 1)

    def test_postgres_sink_rows_table_and_restart(self):
        self.sink_reset()
        p = self.proxy("postgres")
        self.workload(p, 3)
        self.wait_written(p, 3)
        self.check_rows(self.sink_rows(), 3)
        # UNLOGGED with both indexes, exactly as DESIGN 5 says.
        with psycopg.connect(SINK.dsn(dbname=SINK_DB), autocommit=True) as c:
            self.assertEqual(c.execute("SELECT relpersistence FROM pg_class WHERE relname = "
                                       "'hyper_slow_queries'").fetchone()[0], "u")
            idx = {r[0] for r in c.execute("SELECT indexname FROM pg_indexes WHERE tablename = "
                                           "'hyper_slow_queries'")}
            self.assertLessEqual({"hyper_slow_queries_timestamp_idx",
                                  "hyper_slow_queries_duration_idx"}, idx)
            # The documented query works.
            top = c.execute("SELECT sql_text, duration_ms FROM hyper_slow_queries "
                            "ORDER BY duration_ms DESC LIMIT 20").fetchall()
            self.assertEqual(len(top), 3)
        m = metrics(p)
        self.assertEqual(m["pgproxy_slow_queries_total"], 3)
        self.assertEqual(m["pgproxy_slow_log_dropped_total"], 0)
        self.assertEqual(m["pgproxy_slow_log_queue_depth"], 0)
        status, _, body = http_text(p, "/debug/slow-queries?limit=10")
        self.assertEqual(status, 200)
        recent = json.loads(body)
        self.assertEqual(len(recent), 3)
        self.assertEqual(recent[0]["sql"], "SELECT pg_sleep(%s), 2 AS n" % SLEEP)
        self.assertGreaterEqual(recent[0]["duration_ms"], SLEEP * 1000)
        # Restart: earlier rows stay, ensure_table is idempotent, new rows append.
        p.stop()
        p2 = self.proxy("postgres")
        self.workload(p2, 1)
        self.wait_written(p2, 1)
        self.assertEqual(len(self.sink_rows()), 4)

    def test_postgres_sink_upgrades_old_table(self):
        self.sink_reset()
        with psycopg.connect(SINK.dsn(dbname=SINK_DB), autocommit=True) as c:
            c.execute("CREATE UNLOGGED TABLE hyper_slow_queries (id BIGSERIAL PRIMARY KEY, "
                      "sql_text TEXT NOT NULL, duration_ms REAL NOT NULL, params_summary TEXT, "
                      "timestamp TIMESTAMPTZ NOT NULL DEFAULT now())")
            c.execute("INSERT INTO hyper_slow_queries (sql_text, duration_ms) "
                      "VALUES ('old row', 123)")
        p = self.proxy("postgres")
        self.workload(p, 2)
        self.wait_written(p, 2)
        rows = self.sink_rows("SELECT sql_text, fingerprint FROM hyper_slow_queries ORDER BY id")
        self.assertEqual(rows[0], ("old row", None))
        self.assertEqual(len(rows), 3)
        self.assertRegex(rows[2][1], r"^[0-9a-f]{16}$")

    def test_sqlite_sink_rows_and_restart(self):
        p = self.proxy("sqlite")
        path = os.path.join(p.tmpdir, "pgproxy.db")
        self.workload(p, 3)
        self.wait_written(p, 3)
        self.check_rows(self.sqlite_rows(path), 3,
                        decode=lambda v: v.decode() if isinstance(v, bytes) else v)
        p.stop()
        p.start()
        p.wait_admin()
        self.workload(p, 1)
        self.wait_written(p, 1)
        self.assertEqual(len(self.sqlite_rows(path)), 4)
        db = sqlite3.connect(path)
        try:
            self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")
        finally:
            db.close()

    def test_junk_text_both_sinks(self):
        self.sink_reset()
        junk = b"SELECT pg_sleep(0.06), 'it''s \\ a \xff\xfe junk \x01 \xc3\xa9'"
        for sink in ("sqlite", "postgres"):
            p = self.proxy(sink)
            with psycopg.connect(APP.dsn(p.port, dbname=ASCII_DB), autocommit=True) as c:
                c.execute(junk)
            self.wait_written(p, 1)
            if sink == "sqlite":
                got = self.sqlite_rows(os.path.join(p.tmpdir, "pgproxy.db"),
                                       "SELECT sql_text FROM hyper_slow_queries")
                self.assertEqual(got, [(junk,)])
            else:
                got = self.sink_rows("SELECT sql_text FROM hyper_slow_queries")
                self.assertEqual(got, [(junk.decode("utf-8", "replace"),)])
            p.stop()

    def test_sink_down_workload_unaffected_then_resumes(self):
        self.sink_reset()
        p = self.proxy("postgres", PGPROXY_SLOW_LOG_QUEUE_SIZE="50",
                       PGPROXY_PROFILING_SLOW_QUERY_THRESHOLD_MS="0")
        self.workload(p, 0, n_fast=3)
        self.wait_written(p, 3)
        SINK.stop()
        try:
            # Every statement is "slow" (threshold 0): the queue overflows.
            r = h.pgbench(p.port, ["-n", "-S", "-T", "4", "-c", "2"], dbname=DB)
            self.assertEqual(r.returncode, 0, r)
            self.assertEqual(r.failed, 0, r)
            self.assertGreater(r.processed, 100, r)
            m = metrics(p)
            self.assertGreater(m["pgproxy_slow_log_dropped_total"], 0)
            self.assertEqual(m["pgproxy_slow_log_queue_depth"], 50)
            self.assertEqual(m["pgproxy_slow_log_sink_up"], 0)
            before = m["pgproxy_slow_log_written_total"]
        finally:
            SINK.start()
        # The 50 queued while the sink was down are written once it is back...
        h.wait_for(lambda: metrics(p)["pgproxy_slow_log_written_total"] >= before + 50, 30,
                   what="the queued records written")
        # ... and new slow statements land again.
        self.workload(p, 0, n_fast=2)
        h.wait_for(lambda: metrics(p)["pgproxy_slow_log_written_total"] >= before + 52, 15,
                   what="new records written")
        self.assertEqual(len(self.sink_rows()), 3 + 52)
        self.assertEqual(metrics(p)["pgproxy_slow_log_queue_depth"], 0)

    def test_sigterm_flushes_queue(self):
        self.sink_reset()
        p = self.proxy("postgres", PGPROXY_PROFILING_SLOW_QUERY_THRESHOLD_MS="0")
        self.workload(p, 0, n_fast=1)
        self.wait_written(p, 1)
        SINK.stop()
        try:
            with psycopg.connect(APP.dsn(p.port, dbname=DB), autocommit=True) as c:
                for i in range(300):
                    c.execute("SELECT %d" % i)
            m = metrics(p)
            queued = m["pgproxy_slow_log_queue_depth"]
            self.assertGreaterEqual(queued, 300)
        finally:
            SINK.start()
        total = metrics(p)["pgproxy_slow_queries_total"]
        p.stop()   # SIGTERM: exits 0 after writing the queue
        rows = self.sink_rows("SELECT count(*) FROM hyper_slow_queries")[0][0]
        self.assertEqual(rows, total)


if __name__ == "__main__":
    unittest.main()
