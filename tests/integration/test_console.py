"""The SQL admin console (issue #6): database "pgproxy" on the proxy port,
spoken to by real psql and psycopg: every SHOW prints a table, unknown
commands and the extended protocol get clear errors (and the connection
stays usable), RESET STATS zeroes the counts, admin.console_users and
admin.token decide who may enter.

Run: /usr/bin/python3 -m unittest discover -s tests/integration -p test_console.py -v
"""

import os
import re
import subprocess
import unittest

import psycopg
import psycopg.errors

import harness as h

CLUSTER = None
COMMANDS = ["SHOW STATS", "SHOW QUERIES", "SHOW SLOW_QUERIES", "SHOW N_PLUS_ONE",
            "SHOW CONNECTIONS", "SHOW PROFILES", "SHOW CONFIG", "SHOW VERSION"]


def setUpModule():
    global CLUSTER
    CLUSTER = h.Cluster(name="pgproxy-console")
    try:
        CLUSTER.init()
    except Exception:
        CLUSTER.destroy()
        raise


def tearDownModule():
    if CLUSTER is not None:
        CLUSTER.destroy()


def console_psql(port, sql, user=h.ADMIN_USER, password=None, extra_args=()):
    env = h.client_env(port, user=user, dbname="pgproxy", password=password or "unused")
    return subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", *extra_args, "-c", sql],
                          env=env, capture_output=True, text=True, timeout=30)


class TestConsole(h.TestCase):

    def proxy(self, **env):
        e = {"PGPROXY_PROFILING_SLOW_QUERY_THRESHOLD_MS": "50",
             "PGPROXY_PROFILING_REQUEST_GAP_MS": "100"}
        e.update(env)
        p = h.Proxy(CLUSTER, env=e, name="pgproxy-" + self._testMethodName)
        self.addCleanup(p.cleanup)
        self.addCleanup(lambda: p.stop() if p.alive() else None)
        p.start()
        return p

    def workload(self, p):
        with psycopg.connect(CLUSTER.dsn(p.port), autocommit=True,
                             application_name="shop") as c:
            c.execute("SET pgproxy.request_id = 'w1'")
            for i in range(1, 5):
                self.assertEqual(c.execute("SELECT %s::int * 2", (i,)).fetchone()[0], i * 2)
            c.execute("SELECT pg_sleep(0.06)")
            c.execute("RESET pgproxy.request_id")

    def test_every_show_prints_a_table(self):
        p = self.proxy()
        self.workload(p)
        h.wait_for(lambda: "| 1" in console_psql(p.port, "SHOW PROFILES").stdout or
                   "1 row" in console_psql(p.port, "SHOW PROFILES").stdout, 5,
                   what="the profile in the store")
        out = {}
        for cmd in COMMANDS:
            r = console_psql(p.port, cmd)
            self.assertEqual(r.returncode, 0, (cmd, r.stdout, r.stderr))
            self.assertRegex(r.stdout, r"\(\d+ rows?\)\n", (cmd, r.stdout))
            self.assertRegex(r.stdout.splitlines()[1], r"^-+(\+-+)*$", (cmd, r.stdout))
            out[cmd] = r.stdout
        stats = dict(re.findall(r"^ (\w+)\s+\| (\S*)$", out["SHOW STATS"], re.M))
        self.assertEqual(stats["queries"], "7")            # SET, 4 SELECT, sleep, RESET
        self.assertEqual(stats["requests"], "1")
        self.assertEqual(stats["n_plus_one_findings"], "1")
        self.assertEqual(stats["slow_queries"], "1")
        self.assertIn("SELECT ?::int * ?", out["SHOW QUERIES"])
        self.assertIn("pg_sleep(0.06)", out["SHOW SLOW_QUERIES"])
        self.assertIn("SELECT ?::int * ?", out["SHOW N_PLUS_ONE"])
        self.assertIn("w1", out["SHOW PROFILES"])
        self.assertIn("pgproxy", out["SHOW CONNECTIONS"])          # the console itself
        self.assertRegex(out["SHOW VERSION"], r"pgproxy \d+\.\d+\.\d+")
        cfg = dict(re.findall(r"^ ([\w.]+)\s+\| (.*)$", out["SHOW CONFIG"], re.M))
        self.assertEqual(cfg["profiling.slow_query_threshold_ms"].strip(), "50.0")
        # Case, spacing, a trailing ; and two statements in one string.
        r = console_psql(p.port, "  show   version ;  SHOW stats")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("queries", r.stdout)

    def test_reset_stats_and_errors(self):
        p = self.proxy()
        self.workload(p)
        with psycopg.connect(CLUSTER.dsn(p.port, dbname="pgproxy"), autocommit=True) as c:
            rows = dict(c.execute("SHOW STATS").fetchall())
            self.assertEqual(rows["queries"], "7")
            self.assertEqual(c.execute("RESET STATS").statusmessage, "RESET")
            rows = dict(c.execute("SHOW STATS").fetchall())
            self.assertEqual(rows["queries"], "0")
            self.assertEqual(rows["requests"], "0")
            self.assertEqual(c.execute("SHOW QUERIES").fetchall(), [])
            with self.assertRaises(psycopg.errors.SyntaxError) as cm:
                c.execute("SHOW TABLES")
            self.assertIn("SHOW STATS", str(cm.exception))
            # Parameters mean the extended protocol: refused, the connection lives on.
            with self.assertRaises(psycopg.Error) as cm:
                c.execute("SHOW STATS WHERE %s", (1,))
            self.assertEqual(cm.exception.sqlstate, "0A000")
            self.assertEqual(c.execute("SHOW VERSION").fetchone()[0][:8], "pgproxy ")
        # /metrics counters stay monotonic across RESET STATS.
        status, _, body = p.http_get("/metrics")
        self.assertEqual(status, 200)
        m = re.search(rb"^pgproxy_queries_total (\d+)$", body, re.M)
        self.assertGreaterEqual(int(m.group(1)), 7)

    def test_console_users(self):
        p = self.proxy(PGPROXY_ADMIN_CONSOLE_USERS="ops")
        r = console_psql(p.port, "SHOW VERSION", user=h.ADMIN_USER)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("may not use the console", r.stderr)
        with self.assertRaises(psycopg.OperationalError) as cm:
            psycopg.connect(CLUSTER.dsn(p.port, dbname="pgproxy"))
        self.assertIn("may not use the console", str(cm.exception))
        r = console_psql(p.port, "SHOW VERSION", user="ops")
        self.assertEqual(r.returncode, 0, r.stderr)
        # The proxy itself is untouched by console refusals.
        with psycopg.connect(CLUSTER.dsn(p.port), autocommit=True) as c:
            self.assertEqual(c.execute("SELECT 1").fetchone()[0], 1)

    def test_token_is_the_console_password(self):
        p = self.proxy(PGPROXY_ADMIN_TOKEN="s3cret-token")
        r = console_psql(p.port, "SHOW VERSION", password="wrong")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("password authentication failed", r.stderr)
        r = console_psql(p.port, "SHOW VERSION", password="s3cret-token")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("pgproxy", r.stdout)
        # SHOW CONFIG never shows the token.
        r = console_psql(p.port, "SHOW CONFIG", password="s3cret-token")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("s3cret-token", r.stdout)
        self.assertIn("(set, not shown)", r.stdout)


if __name__ == "__main__":
    unittest.main()
