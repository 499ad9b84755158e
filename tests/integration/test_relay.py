"""pgproxy relay integration tests (issue #2): real PostgreSQL 15, real
clients (psql, pgbench, psycopg 3, a raw-socket protocol client).

Every relay test runs twice: against the server directly (target = direct,
which validates the test itself) and through pgproxy (target = proxy).
Behaviours only a proxy has (08006, 53300, memory bound, SIGTERM) run
against the proxy only.

Run: /usr/bin/python3 -m unittest discover -s tests/integration -v
Set PGPROXY_BIN to the binary under test; PGPROXY_SKIP_PROXY=1 runs only
the direct target (to validate the tests without a binary).
"""

import hashlib
import os
import signal
import struct
import subprocess
import threading
import time
import unittest

import psycopg
import psycopg.errors

import harness as h

CLUSTER = None
SKIP_PROXY = os.environ.get("PGPROXY_SKIP_PROXY") == "1"
MODULE_T0 = None

# 20 000 rows x 1 KiB: a 20 MB result whose content the test can recompute.
BIG_ROWS = 20000
BIG_SQL = "SELECT repeat(md5(i::text), 32) FROM generate_series(1, %d) AS i"


def big_expected_md5(rows):
    m = hashlib.md5()
    for i in range(1, rows + 1):
        m.update(hashlib.md5(str(i).encode()).hexdigest().encode() * 32)
    return m.hexdigest()


def copy_data(rows=100000):
    return "".join("%d\t%s\n" % (i, hashlib.md5(str(i).encode()).hexdigest())
                   for i in range(rows))


def setUpModule():
    global CLUSTER, MODULE_T0
    MODULE_T0 = time.monotonic()
    CLUSTER = h.Cluster()
    try:
        CLUSTER.init()
        for db in ("bench", "pgbench_direct", "pgbench_proxy"):
            CLUSTER.create_database(db)
        # Background load for the abuse tests, initialized directly.
        r = h.pgbench(CLUSTER.port, ["-i", "-s", "1", "-q"], dbname="bench")
        if r.returncode != 0:
            raise RuntimeError("pgbench -i failed: %r" % r)
        with CLUSTER.connect(autocommit=True) as c:
            enc = c.execute("SELECT rolpassword FROM pg_authid WHERE rolname = %s",
                            (h.MD5_USER,)).fetchone()[0]
            if not enc.startswith("md5"):
                raise RuntimeError("md5user password is not md5-encrypted: %s" % enc[:8])
    except BaseException:
        h.LOGS.dump()
        CLUSTER.destroy()
        raise


def tearDownModule():
    CLUSTER.destroy()
    h.log("integration suite: %.1fs in total" % (time.monotonic() - MODULE_T0))


def wait_backend(appname, timeout=5.0, query_like="%pg_sleep%"):
    """pid of the active backend of application_name (direct connection)."""
    def probe():
        with CLUSTER.connect(autocommit=True) as c:
            row = c.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s "
                "AND state = 'active' AND query LIKE %s", (appname, query_like)).fetchone()
            return row[0] if row else None
    return h.wait_for(probe, timeout, 0.05, "backend of %s to be active" % appname)


def backend_gone_within(pid, timeout):
    t0 = time.monotonic()
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        if not CLUSTER.backend_alive(pid):
            return time.monotonic() - t0
        time.sleep(0.05)
    return None


# --------------------------------------------------------------------------
# Target plumbing

class TargetMixin:
    """Sets cls.port to the server (direct) or to a pgproxy started for the
    class (proxy); checks after every test that the proxy is still alive."""

    target = "direct"
    proxy = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls.target == "proxy":
            if SKIP_PROXY:
                raise unittest.SkipTest("PGPROXY_SKIP_PROXY=1")
            cls.proxy = h.Proxy(CLUSTER, name="pgproxy-" + cls.__name__)
            try:
                cls.proxy.start()
            except BaseException:
                h.LOGS.dump()
                cls.proxy.cleanup()
                raise
            cls.port = cls.proxy.port
        else:
            cls.port = CLUSTER.port

    @classmethod
    def tearDownClass(cls):
        if cls.proxy is not None:
            try:
                cls.proxy.stop()
            except BaseException:
                h.LOGS.dump()
                raise
            finally:
                cls.proxy.cleanup()
        super().tearDownClass()

    def tearDown(self):
        if self.proxy is not None:
            self.proxy.check()
        super().tearDown()

    @property
    def via_proxy(self):
        return self.target == "proxy"

    def fresh_proxy(self, **kw):
        """A pgproxy of its own for this test (stopped at cleanup)."""
        p = h.Proxy(kw.pop("upstream", CLUSTER), name="pgproxy-" + self._testMethodName, **kw)
        self.addCleanup(p.cleanup)
        p.start()
        return p

    def assert_fatal(self, fields, sqlstates, allow_close=False, what=""):
        if fields is None:
            if allow_close:
                return
            self.fail("%s: connection closed without ErrorResponse (expected %s)"
                      % (what, "/".join(sqlstates)))
        self.assertIn(fields.get("C"), sqlstates, "%s: %r" % (what, fields))
        self.assertEqual(fields.get("V", fields.get("S")), "FATAL", "%s: %r" % (what, fields))


# --------------------------------------------------------------------------
# Relay behaviour, direct and through the proxy

class RelayCases(TargetMixin):

    def test_psql_simple_query(self):
        out = h.psql(self.port, "SELECT 1 + 1").stdout
        self.assertEqual(out, "2\n")
        out = h.psql(self.port, "SELECT 'h\u00e9llo', NULL::text, 42").stdout
        self.assertEqual(out, "h\u00e9llo||42\n")

    def test_psql_multi_statement(self):
        out = h.psql(self.port, "SELECT 1; SELECT 'two'; SELECT 3").stdout
        self.assertEqual(out.split("\n"), ["1", "two", "3", ""])
        script = ("CREATE TEMP TABLE t (a int);\n"
                  "INSERT INTO t SELECT generate_series(1, 10);\n"
                  "SELECT sum(a) FROM t; SELECT count(*) FROM t;\n"
                  "SELECT string_agg(a::text, ',' ORDER BY a) FROM t WHERE a > 7;\n")
        out = h.psql(self.port, input=script, args=["-f", "-"]).stdout
        self.assertEqual(out.split("\n"), ["55", "10", "8,9,10", ""])

    def test_error_in_transaction_then_rollback(self):
        # psql: simple protocol.
        script = ("BEGIN;\nCREATE TEMP TABLE e (a int);\nINSERT INTO e VALUES (1);\n"
                  "SELECT 1/0;\nSELECT 'in-aborted';\nROLLBACK;\n"
                  "SELECT 'after:' || count(*) FROM pg_class WHERE relname = 'e';\n")
        p = h.psql(self.port, input=script, args=["-v", "ON_ERROR_STOP=0", "-f", "-"])
        self.assertIn("division by zero", p.stderr)
        self.assertIn("current transaction is aborted", p.stderr)
        self.assertNotIn("in-aborted", p.stdout)
        self.assertIn("after:0", p.stdout)
        # psycopg: extended protocol.
        with h.connect(self.port) as conn:
            conn.execute("CREATE TEMP TABLE e2 (a int)")
            conn.commit()
            conn.execute("INSERT INTO e2 VALUES (1)")
            with self.assertRaises(psycopg.errors.DivisionByZero) as cm:
                conn.execute("SELECT 1/0")
            self.assertEqual(cm.exception.sqlstate, "22012")
            with self.assertRaises(psycopg.errors.InFailedSqlTransaction):
                conn.execute("SELECT 1")
            conn.rollback()
            self.assertEqual(conn.execute("SELECT count(*) FROM e2").fetchone()[0], 0)
            self.assertEqual(conn.execute("SELECT 42").fetchone()[0], 42)

    def test_copy_in_and_out_100k_rows(self):
        table = "copy_" + self.target
        data = copy_data(100000)
        want = hashlib.md5(data.encode()).hexdigest()
        h.psql(self.port, "DROP TABLE IF EXISTS %s; CREATE TABLE %s (id int, txt text)"
               % (table, table))
        self.addCleanup(h.psql, CLUSTER.port, "DROP TABLE IF EXISTS %s" % table)
        p = h.psql(self.port, "COPY %s FROM STDIN" % table, input=data)
        self.assertEqual(p.stderr, "")
        with CLUSTER.connect() as c:  # what arrived, checked server side
            n, srv_md5 = c.execute(
                "SELECT count(*), md5(string_agg(id || E'\\t' || txt || E'\\n', '' ORDER BY id))"
                " FROM %s" % table).fetchone()
        self.assertEqual(n, 100000)
        self.assertEqual(srv_md5, want)
        out = h.psql(self.port, "COPY (SELECT * FROM %s ORDER BY id) TO STDOUT" % table).stdout
        self.assertEqual(hashlib.md5(out.encode()).hexdigest(), want)
        # psycopg drives COPY with the extended protocol's sibling path.
        with h.connect(self.port) as conn:
            got = hashlib.md5()
            with conn.cursor().copy("COPY (SELECT * FROM %s ORDER BY id) TO STDOUT" % table) as cp:
                for chunk in cp:
                    got.update(chunk)
            self.assertEqual(got.hexdigest(), want)

    def test_large_result_20mb_checksum(self):
        want = big_expected_md5(BIG_ROWS)
        with h.connect(self.port) as conn:
            got, n, size = hashlib.md5(), 0, 0
            with conn.cursor() as cur:
                cur.execute(BIG_SQL % BIG_ROWS)
                for (v,) in cur:
                    got.update(v.encode())
                    n += 1
                    size += len(v)
        self.assertEqual(n, BIG_ROWS)
        self.assertGreaterEqual(size, 20 * 1000 * 1000)
        self.assertEqual(got.hexdigest(), want)

    def test_slow_reader_backpressure(self):
        """A client that stops reading a 64 MB result: the server must end up
        blocked in ClientWrite (the proxy stopped reading from it) and the
        proxy's memory must stay far below the result size."""
        rows = 64000
        proxy = self.fresh_proxy() if self.via_proxy else None
        port = proxy.port if proxy else CLUSTER.port
        with h.RawConn(port, rcvbuf=32768, timeout=30) as r:
            r.login(h.ADMIN_USER, application_name="slowreader")
            pid = r.backend_key[0]
            base_kb = proxy.vm_hwm_kb() if proxy else 0
            r.send(h.query_message(BIG_SQL % rows))
            t, _ = r.read_message()
            self.assertEqual(t, "T")

            def blocked():
                with CLUSTER.connect(autocommit=True) as c:
                    return c.execute("SELECT wait_event FROM pg_stat_activity WHERE pid = %s",
                                     (pid,)).fetchone()[0] == "ClientWrite"
            h.wait_for(blocked, 10, 0.1, "the backend to block in ClientWrite (it never "
                       "did: someone read the whole result although the client stalled)")
            time.sleep(0.5)  # give a buffering proxy every chance to grow
            if proxy:
                grown_kb = proxy.vm_hwm_kb() - base_kb
                h.log("  proxy VmHWM grew by %d kB while the client stalled" % grown_kb)
                self.assertLess(grown_kb, 8 * 1024,
                                "pgproxy buffered the result instead of applying backpressure")
            got, n = hashlib.md5(), 0
            while True:
                t, p = r.read_message()
                if t == "D":
                    got.update(h.parse_data_row(p)[0])
                    n += 1
                elif t == "C":
                    self.assertEqual(p, b"SELECT %d\0" % rows)
                elif t == "Z":
                    break
                else:
                    self.fail("unexpected message %s" % t)
            self.assertEqual(n, rows)
            self.assertEqual(got.hexdigest(), big_expected_md5(rows))
        if proxy:
            proxy.stop()

    def test_listen_notify(self):
        got = []
        with h.connect(self.port, autocommit=True) as listener, \
                h.connect(self.port, autocommit=True) as notifier:
            listener.add_notify_handler(got.append)
            listener.execute("LISTEN pgproxy_chan")
            notifier.execute("NOTIFY pgproxy_chan, 'hello-1'")
            notifier.execute("SELECT pg_notify('pgproxy_chan', 'hello-2')")
            # The notification arrives while the listener is idle: the relay
            # must forward unsolicited server messages.
            import select
            r, _, _ = select.select([listener.fileno()], [], [], 5)
            self.assertTrue(r, "no NotificationResponse reached the idle listener")
            listener.execute("SELECT 1")
            self.assertEqual([(n.channel, n.payload) for n in got],
                             [("pgproxy_chan", "hello-1"), ("pgproxy_chan", "hello-2")])
            self.assertEqual(got[0].pid, notifier.info.backend_pid)

    def test_auth_trust_md5_scram(self):
        for user, codes in ((h.TRUST_USER, [0]), (h.MD5_USER, [5, 0]),
                            (h.ADMIN_USER, [10, 11, 12, 0])):
            with h.connect(self.port, user=user) as conn:
                self.assertEqual(conn.execute("SELECT current_user").fetchone()[0], user)
            with h.RawConn(self.port) as r:
                r.login(user)
                self.assertEqual(r.auth_codes, codes, "auth exchange for %s" % user)
                self.assertEqual(r.simple_query("SELECT session_user")[0], [[user.encode()]])
        for user in (h.MD5_USER, h.ADMIN_USER):
            with h.RawConn(self.port) as r:
                with self.assertRaises(h.ServerError) as cm:
                    r.login(user, password="wrong-password")
                self.assertEqual(cm.exception.sqlstate, "28P01")
                r.expect_closed()
            with self.assertRaises(psycopg.OperationalError) as cm:
                h.connect(self.port, user=user, password="wrong-password").close()
            self.assertIn("password authentication failed", str(cm.exception))

    def test_cancel_pg_sleep(self):
        with h.connect(self.port, autocommit=True) as conn:
            h.assert_cancel_ends_sleep(self, conn, 10)

    def test_client_killed_mid_query_ends_backend(self):
        appname = "killed_%s_%d" % (self.target, os.getpid())
        env = {"PGAPPNAME": appname}
        if not self.via_proxy:
            # Directly, only the server's own check notices a vanished client;
            # through the proxy the proxy must end the backend on its own.
            env["PGOPTIONS"] = "-c client_connection_check_interval=100"
        proc = subprocess.Popen(
            [os.path.join(h.pg_bindir(), "psql"), "-X", "-c", "SELECT pg_sleep(30)"],
            env=h.client_env(self.port, extra=env), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        try:
            pid = wait_backend(appname)
        finally:
            proc.kill()
            proc.wait()
        took = backend_gone_within(pid, 2.0)
        self.assertIsNotNone(took, "backend %d still in pg_stat_activity 2s after the "
                                   "client was killed" % pid)

    def test_ssl_request_answered_n_then_login(self):
        with h.RawConn(self.port) as r:
            r.send(h.ssl_request())
            self.assertEqual(r.read_byte(), b"N")
            r.login(h.ADMIN_USER)
            self.assertEqual(r.simple_query("SELECT 7")[0], [[b"7"]])

    def test_ssl_request_with_pipelined_startup_refused(self):
        with h.RawConn(self.port) as r:
            r.send(h.ssl_request() + h.startup_packet(h.TRUST_USER))
            # The server answers 'N' and then the error; a proxy may also
            # refuse before answering. Either way: 08P01, then close.
            r._fill(1)
            if r.buf[r.pos:r.pos + 1] == b"N":
                r.read_byte()
            fields = r.read_error_or_close()
            self.assert_fatal(fields, ["08P01"], what="SSLRequest + pipelined startup")
            r.expect_closed()

    def test_gssenc_request(self):
        with h.RawConn(self.port) as r:
            r.send(h.gssenc_request())
            answer = r.read_byte()
            if self.via_proxy:
                self.assertEqual(answer, b"N")
            else:
                # A GSSAPI-enabled server (Debian's) offers 'G' over TCP.
                self.assertIn(answer, (b"G", b"N"))
            if answer == b"N":
                r.login(h.TRUST_USER)
                self.assertEqual(r.simple_query("SELECT 8")[0], [[b"8"]])

    def login_types(self, port, protocol):
        with h.RawConn(port) as r:
            r.login(h.TRUST_USER, protocol=protocol)
            rows = r.simple_query("SELECT 9")[0]
            return [t for t, _ in r.messages], dict(r.messages).get("v"), rows

    def test_protocol_3_2_startup(self):
        types, v, rows = self.login_types(self.port, h.PROTOCOL_3_2)
        self.assertEqual(rows, [[b"9"]])
        self.assertEqual(types[0], "v", "expected NegotiateProtocolVersion first: %s" % types)
        # PostgreSQL 15 names the newest version it speaks (3.0) and no
        # unrecognized protocol options.
        newest, n_unrecognized = struct.unpack("!II", v[:8])
        self.assertEqual((newest, n_unrecognized), (h.PROTOCOL_3_0, 0))
        if self.via_proxy:
            d_types, d_v, _ = self.login_types(CLUSTER.port, h.PROTOCOL_3_2)
            self.assertEqual(types, d_types)
            self.assertEqual(v, d_v)

    def test_protocol_abuse_with_concurrent_pgbench(self):
        """Bad bytes from some clients only hurt those clients."""
        bench = h.pgbench_start(self.port, ["-n", "-c", "2", "-j", "2", "-T", "4", "-S"],
                                dbname="bench")
        try:
            time.sleep(0.5)
            self._abuse_startup()
            self._abuse_after_login()
        finally:
            res = h.pgbench_finish(bench)
        self.assertTrue(res.ok(), repr(res))
        self.assertEqual(h.psql(self.port, "SELECT 'alive'").stdout, "alive\n")

    def _abuse_startup(self):
        # (name, bytes, what the server itself answers)
        cases = [
            ("length 0x7fffffff", b"\x7f\xff\xff\xff" + struct.pack("!I", h.PROTOCOL_3_0), None),
            ("length 2", b"\x00\x00\x00\x02", None),
            ("unknown protocol code", struct.pack("!II", 8, 0x12345678), "0A000"),
            ("HTTP request", b"GET / HTTP/1.1\r\nHost: pgproxy\r\n\r\n", None),
        ]
        for name, data, direct_state in cases:
            with h.RawConn(self.port) as r:
                try:
                    r.send(data)
                except OSError:
                    pass
                fields = r.read_error_or_close()
                if self.via_proxy:
                    self.assert_fatal(fields, ["08P01"], what="startup " + name)
                    r.expect_closed()
                else:
                    self.assert_fatal(fields, [direct_state or "08P01"],
                                      allow_close=direct_state is None, what="startup " + name)

    def _abuse_after_login(self):
        cases = [
            ("Q with length 0x7fffffff", b"Q" + struct.pack("!I", 0x7FFFFFFF) + b"SELECT 1\0", None),
            ("Q with length 2", b"Q" + struct.pack("!I", 2), None),
            ("unknown message type", b"!" + struct.pack("!I", 8) + b"abcd", "08P01"),
        ]
        for name, data, direct_state in cases:
            with h.RawConn(self.port) as r:
                r.login(h.TRUST_USER)
                try:
                    r.send(data)
                except OSError:
                    pass
                fields = r.read_error_or_close()
                strict = self.via_proxy or direct_state is not None
                self.assert_fatal(fields, ["08P01"], allow_close=not strict,
                                  what="after login: " + name)
                r.expect_closed()


class TestRelayDirect(RelayCases, h.TestCase):
    target = "direct"


class TestRelayProxy(RelayCases, h.TestCase):
    target = "proxy"


# --------------------------------------------------------------------------
# pgbench: simple, extended, prepared

class PgbenchCases(TargetMixin):
    duration = os.environ.get("PGPROXY_IT_PGBENCH_SECONDS", "3")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.db = "pgbench_" + cls.target
        r = h.pgbench(cls.port, ["-i", "-s", "1", "-q"], dbname=cls.db)
        if r.returncode != 0:
            cls.tearDownClass()
            raise AssertionError("pgbench -i through %s failed: %r" % (cls.target, r))

    def run_mode(self, mode):
        r = h.pgbench(self.port, ["-n", "-M", mode, "-c", "4", "-j", "2", "-T", self.duration],
                      dbname=self.db)
        h.log("  pgbench -M %s via %s: %s tps, %s transactions" % (
            mode, self.target, r.tps, r.processed))
        self.assertEqual(r.failed, 0, repr(r))
        self.assertTrue(r.ok(), repr(r))

    def test_pgbench_simple(self):
        self.run_mode("simple")

    def test_pgbench_extended(self):
        self.run_mode("extended")

    def test_pgbench_prepared(self):
        self.run_mode("prepared")


class TestPgbenchDirect(PgbenchCases, h.TestCase):
    target = "direct"


class TestPgbenchProxy(PgbenchCases, h.TestCase):
    target = "proxy"


# --------------------------------------------------------------------------
# Upstream stopped mid-session

class UpstreamRestartCases(TargetMixin):

    def test_upstream_stopped_mid_session(self):
        idle = h.connect(self.port, autocommit=True)
        busy = h.connect(self.port, autocommit=True, application_name="busy_" + self.target)
        self.addCleanup(idle.close)
        self.addCleanup(busy.close)
        self.assertEqual(idle.execute("SELECT 1").fetchone()[0], 1)
        busy_result = {}

        def run_busy():
            t0 = time.monotonic()
            try:
                busy.execute("SELECT pg_sleep(30)")
                busy_result["exc"] = None
            except Exception as e:  # noqa: BLE001
                busy_result["exc"] = e
            busy_result["t"] = time.monotonic() - t0
        th = threading.Thread(target=run_busy, daemon=True)
        th.start()
        wait_backend("busy_" + self.target)
        t_stop = time.monotonic()
        CLUSTER.stop("fast")
        try:
            stop_took = time.monotonic() - t_stop
            th.join(3.0)
            self.assertFalse(th.is_alive(), "busy query still running 3s after the "
                             "upstream stopped (pg_ctl stop took %.1fs)" % stop_took)
            self.assertIsInstance(busy_result["exc"], psycopg.OperationalError)
            _, exc, took = h.call_with_timeout(lambda: idle.execute("SELECT 1"), 5,
                                               "query on a session whose upstream stopped")
            self.assertIsInstance(exc, psycopg.OperationalError, repr(exc))
            self.assertLess(took, 2.0)
            if self.via_proxy:
                self.proxy.check()
                # Upstream down: a new session gets FATAL 08006 naming it.
                with h.RawConn(self.port) as r:
                    r.send(h.startup_packet(h.TRUST_USER))
                    fields = r.read_error_or_close()
                    self.assert_fatal(fields, ["08006"], what="new session, upstream down")
                    self.assertIn("127.0.0.1:%d" % CLUSTER.port, fields.get("M", ""))
        finally:
            CLUSTER.start()
        out = h.wait_for(lambda: h.psql(self.port, "SELECT 'back'", check=False).stdout,
                         2.0, 0.1, "a new session after the upstream restarted")
        self.assertEqual(out, "back\n")
        if self.via_proxy:
            self.proxy.check()


class TestUpstreamRestartDirect(UpstreamRestartCases, h.TestCase):
    target = "direct"


class TestUpstreamRestartProxy(UpstreamRestartCases, h.TestCase):
    target = "proxy"


# --------------------------------------------------------------------------
# Proxy-only behaviour

@unittest.skipIf(SKIP_PROXY, "PGPROXY_SKIP_PROXY=1")
class TestProxyOnly(TargetMixin, h.TestCase):
    target = "none"  # every test starts the proxy it needs

    def test_upstream_unreachable_08006(self):
        closed_port = h.free_port()
        p = self.fresh_proxy(upstream="127.0.0.1:%d" % closed_port)
        with h.RawConn(p.port) as r:
            r.send(h.startup_packet(h.TRUST_USER))
            fields = r.read_error_or_close(timeout=10)
            self.assert_fatal(fields, ["08006"], what="upstream unreachable")
            self.assertIn("127.0.0.1:%d" % closed_port, fields.get("M", ""))
            r.expect_closed()
        with self.assertRaises(psycopg.OperationalError) as cm:
            h.connect(p.port).close()
        self.assertIn("127.0.0.1:%d" % closed_port, str(cm.exception))
        p.check()
        p.stop()

    def test_max_client_connections_53300(self):
        p = self.fresh_proxy(env={"PGPROXY_PROXY_MAX_CLIENT_CONNECTIONS": "2"})
        c1 = h.connect(p.port, autocommit=True)
        c2 = h.connect(p.port, autocommit=True)
        try:
            with h.RawConn(p.port) as r:
                try:
                    r.send(h.startup_packet(h.TRUST_USER))
                except OSError:
                    pass
                fields = r.read_error_or_close()
                self.assert_fatal(fields, ["53300"], what="third session")
            self.assertEqual(c1.execute("SELECT 1").fetchone()[0], 1)
            self.assertEqual(c2.execute("SELECT 2").fetchone()[0], 2)
        finally:
            c1.close()
        # A slot is free again: a new session gets in (the close is async).
        out = h.wait_for(lambda: h.psql(p.port, "SELECT 'slot'", check=False).stdout,
                         3.0, 0.1, "a session after one closed")
        self.assertEqual(out, "slot\n")
        c2.close()
        p.stop()

    def test_max_message_bytes_08P01(self):
        p = self.fresh_proxy(env={"PGPROXY_PROXY_MAX_MESSAGE_BYTES": "8192"})
        with h.RawConn(p.port) as ok:
            ok.login(h.TRUST_USER)
            self.assertEqual(ok.simple_query("SELECT length('%s')" % ("x" * 4000))[0],
                             [[b"4000"]])
            with h.RawConn(p.port) as r:
                r.login(h.TRUST_USER)
                r.send(h.query_message("SELECT length('%s')" % ("x" * 20000)))
                self.assert_fatal(r.read_error_or_close(), ["08P01"], what="oversized Query")
                r.expect_closed()
            # The other session goes on.
            self.assertEqual(ok.simple_query("SELECT 'other'")[0], [[b"other"]])
        p.stop()

    def test_session_log_lines(self):
        p = self.fresh_proxy()
        h.psql(p.port, "SELECT 1")
        h.wait_for(lambda: p.stderr().count("session close") >= 1, 2.0,
                   what="a 'session close' log line")
        err = p.stderr()
        self.assertEqual(err.count("session open"), 1, err)
        self.assertEqual(err.count("session close"), 1, err)
        p.stop()

    def test_sigterm_idle_session_exits_promptly(self):
        p = self.fresh_proxy()
        conn = h.connect(p.port, autocommit=True)
        self.addCleanup(conn.close)
        self.assertEqual(conn.execute("SELECT 1").fetchone()[0], 1)
        took = p.stop(timeout=10)
        self.assertLess(took, 2.0, "SIGTERM with an idle session took %.1fs" % took)
        _, exc, _ = h.call_with_timeout(lambda: conn.execute("SELECT 1"), 5, "query after exit")
        self.assertIsInstance(exc, psycopg.OperationalError)

    def test_sigterm_drains_busy_session(self):
        p = self.fresh_proxy(env={"PGPROXY_PROXY_SHUTDOWN_TIMEOUT_MS": "10000"})
        conn = h.connect(p.port, autocommit=True, application_name="draining")
        self.addCleanup(conn.close)
        box = {}
        th = threading.Thread(target=lambda: box.update(
            v=conn.execute("SELECT 'drained' FROM pg_sleep(1.5)").fetchone()[0]), daemon=True)
        th.start()
        wait_backend("draining")
        t0 = time.monotonic()
        p.signal(signal.SIGTERM)
        h.wait_for(lambda: not h.tcp_listening(p.port), 1.0, what="the listener to close")
        th.join(5)
        self.assertEqual(box.get("v"), "drained", "the busy query did not complete")
        rc = p.wait(5)
        self.assertEqual(rc, 0)
        self.assertLess(time.monotonic() - t0, 5.0)
        p.stop()  # sanitizer check

    def test_sigterm_drain_timeout_closes_busy_session(self):
        p = self.fresh_proxy(env={"PGPROXY_PROXY_SHUTDOWN_TIMEOUT_MS": "500"})
        conn = h.connect(p.port, autocommit=True, application_name="overdue")
        self.addCleanup(conn.close)
        box = {}

        def run():
            try:
                conn.execute("SELECT pg_sleep(20)")
            except Exception as e:  # noqa: BLE001
                box["exc"] = e
        th = threading.Thread(target=run, daemon=True)
        th.start()
        pid = wait_backend("overdue")
        took = p.stop(timeout=5)
        self.assertLess(took, 3.0)
        th.join(3)
        self.assertIsInstance(box.get("exc"), psycopg.OperationalError)
        self.assertIsNotNone(backend_gone_within(pid, 3.0),
                             "backend survived the proxy's shutdown")

    def test_sigint_exits_at_once(self):
        p = self.fresh_proxy()
        conn = h.connect(p.port, autocommit=True, application_name="interrupted")
        self.addCleanup(conn.close)
        th = threading.Thread(target=lambda: self._swallow(conn, "SELECT pg_sleep(20)"),
                              daemon=True)
        th.start()
        wait_backend("interrupted")
        t0 = time.monotonic()
        p.signal(signal.SIGINT)
        self.assertIsNotNone(p.wait(2.0), "pgproxy still running 2s after SIGINT")
        self.assertLess(time.monotonic() - t0, 2.0)

    @staticmethod
    def _swallow(conn, sql):
        try:
            conn.execute(sql)
        except Exception:  # noqa: BLE001
            pass

    def test_check_config_defaults(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith("PGPROXY")}
        p = subprocess.run([h.default_pgproxy_bin(), "--check-config"], env=env,
                           capture_output=True, text=True, timeout=30, cwd="/")
        self.assertEqual(p.returncode, 0, p.stderr)
        env["PGPROXY_PROXY_MAX_CLIENT_CONNECTIONS"] = "not-a-number"
        p = subprocess.run([h.default_pgproxy_bin(), "--check-config"], env=env,
                           capture_output=True, text=True, timeout=30, cwd="/")
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)


if __name__ == "__main__":
    unittest.main()
