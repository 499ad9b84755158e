"""pgproxy's TLS and transports: real PostgreSQL 15 with ssl = on,
certificates made by `openssl` (tlsenv.Certs), real clients (psql, pgbench,
psycopg 3 / libpq, Python's ssl module for what libpq 15 cannot do: direct
TLS, half a ClientHello, garbage after 'S', gs2 flag 'y').

TlsCasesDirect runs every shared case against the server itself, which
validates the test and the environment (certificate names, verify texts,
hba); TlsCasesProxy runs the same cases through a pgproxy with TLS on both
hops.  The proxy-only classes cover what only a proxy has: the
client x upstream x auth matrix, upstream verification failures (08006),
mTLS toward the server, client_tls modes and direct TLS, SIGHUP certificate
rotation, Unix socket and IPv6 transports, the TLS fields of
/debug/connections and SHOW CONNECTIONS, pgproxy_tls_handshakes_total.

Run: PGPROXY_BIN=build/pgproxy /usr/bin/python3 -m unittest discover \
       -s tests/integration -t tests/integration -p test_tls.py -v
"""

import base64
import hashlib
import os
import shutil
import signal
import ssl
import struct
import tempfile
import threading
import time
import unittest

import psycopg
import psycopg.errors

import harness as h
import tlsenv as t
from test_relay import BIG_ROWS, BIG_SQL, big_expected_md5, copy_data

CERTS = None
CLUSTER = None
SKIP_PROXY = os.environ.get("PGPROXY_SKIP_PROXY") == "1"
MODULE_T0 = None
BENCH_DB = "tlsbench"
USERS = (h.TRUST_USER, h.MD5_USER, h.ADMIN_USER)   # trust, md5, scram
PG_STAT_SSL = "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def setUpModule():
    global CERTS, CLUSTER, MODULE_T0
    MODULE_T0 = time.monotonic()
    CERTS = t.Certs()
    CLUSTER = t.TlsCluster(CERTS)
    try:
        CLUSTER.init()
        CLUSTER.create_database(BENCH_DB)
        r = h.pgbench(CLUSTER.port, ["-i", "-s", "1", "-q"], dbname=BENCH_DB,
                      env={"PGSSLMODE": "disable"})
        if r.returncode != 0:
            raise RuntimeError("pgbench -i failed: %r" % r)
    except BaseException:
        h.LOGS.dump()
        CLUSTER.destroy()
        raise


def tearDownModule():
    CLUSTER.destroy()
    if not h.KEEP_TMP:
        shutil.rmtree(CERTS.dir, ignore_errors=True)
    h.log("TLS suite: %.1fs in total" % (time.monotonic() - MODULE_T0))


def pg_stat_ssl(conn):
    """(ssl, version) of the server backend of a psycopg connection."""
    return tuple(conn.execute(PG_STAT_SSL).fetchone())


def wait_backend(appname, timeout=5.0):
    def probe():
        with CLUSTER.connect(autocommit=True, sslmode="disable") as c:
            row = c.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s "
                            "AND state = 'active' AND query LIKE '%%pg_sleep%%'",
                            (appname,)).fetchone()
            return row[0] if row else None
    return h.wait_for(probe, timeout, 0.05, "backend of %s to be active" % appname)


def scram_first_with_flag(r, gs2_flag):
    """Drive a RawConn (after startup) to AuthenticationSASL and answer
    SASLInitialResponse with the given gs2 header flag ('n' or 'y').
    -> (mechanisms offered, first message after ours as (type, payload))."""
    while True:
        typ, p = r.read_message()
        if typ == "E":
            raise h.ServerError(h.parse_error_fields(p))
        if typ == "R" and struct.unpack("!I", p[:4])[0] == 10:
            mechs = [m.decode() for m in p[4:].split(b"\0") if m]
            break
    nonce = base64.b64encode(os.urandom(18)).decode()
    first = ("%s,,n=,r=%s" % (gs2_flag, nonce)).encode()
    r.send(h.message(b"p", b"SCRAM-SHA-256\0" + struct.pack("!I", len(first)) + first))
    return mechs, r.read_message()


class TlsTestCase(h.TestCase):
    """Helpers shared by every class: proxies with TLS settings, server
    certificate swaps undone at cleanup, and assertions."""

    def tls_proxy(self, upstream=None, listen=None, name=None, **tls):
        """A pgproxy of this test's own (stopped, exit 0 asserted, at cleanup).
        tls: tlsenv.tls_env keywords."""
        if SKIP_PROXY:
            self.skipTest("PGPROXY_SKIP_PROXY=1")
        p = t.TlsProxy(upstream or CLUSTER.upstream("127.0.0.1"), listen=listen,
                       env=t.tls_env(**tls), name=name or "pgproxy-" + self._testMethodName)
        self.addCleanup(p.cleanup)
        self.addCleanup(lambda: p.stop() if p.alive() else None)
        p.start()
        return p

    def server_cert(self, name):
        CLUSTER.use_server_cert(name)
        self.addCleanup(CLUSTER.use_server_cert, "server")

    def assert_fatal(self, fields, sqlstate, what=""):
        self.assertIsNotNone(fields, "%s: connection closed without ErrorResponse "
                             "(expected %s)" % (what, sqlstate))
        self.assertEqual(fields.get("C"), sqlstate, "%s: %r" % (what, fields))
        self.assertEqual(fields.get("V", fields.get("S")), "FATAL", "%s: %r" % (what, fields))

    def assert_contains_any(self, text, needles, what=""):
        low = text.lower()
        self.assertTrue(any(n.lower() in low for n in needles),
                        "%s: none of %r in %r" % (what, needles, text))


# --------------------------------------------------------------------------
# Shared cases: directly against the TLS server, and through pgproxy with
# TLS on both hops (client_tls=allow with pgproxy's certificate proxy_a,
# upstream_tls=verify-full to localhost with the server's CA).

class TlsCases:
    target = "direct"
    proxy = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls.target == "proxy":
            if SKIP_PROXY:
                raise unittest.SkipTest("PGPROXY_SKIP_PROXY=1")
            cls.proxy = t.TlsProxy(CLUSTER.upstream("localhost"), name="pgproxy-" + cls.__name__,
                                   env=t.tls_env(client_tls="allow", client_pair=CERTS.proxy_a,
                                                 upstream_tls="verify-full", ca=CERTS.ca))
            try:
                cls.proxy.start()
            except BaseException:
                h.LOGS.dump()
                cls.proxy.cleanup()
                raise
            cls.port = cls.proxy.port
            cls.client_ca, cls.wrong_client_ca = CERTS.proxy_ca, CERTS.ca
        else:
            cls.port = CLUSTER.port
            cls.client_ca, cls.wrong_client_ca = CERTS.ca, CERTS.proxy_ca

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

    def tls_kw(self, **kw):
        """psycopg keywords: verify-full against whoever terminates the
        client hop (the server directly, pgproxy's certificate via proxy)."""
        args = dict(mode="verify-full", ca=self.client_ca)
        args.update(kw)
        return t.libpq_tls(**args)

    def tls_env(self, **kw):
        args = dict(mode="verify-full", ca=self.client_ca)
        args.update(kw)
        return t.libpq_tls_env(**args)

    def connect(self, user=h.TRUST_USER, **kw):
        params = self.tls_kw(channel_binding="disable")
        params.update(kw)
        return h.connect(self.port, user=user, **params)

    # 3. psql over verify-full, pg_stat_ssl on the server hop -----------------
    def test_psql_verify_full_and_pg_stat_ssl(self):
        for user in (h.TRUST_USER, h.MD5_USER, h.ADMIN_USER):
            out = h.psql(self.port, PG_STAT_SSL, user=user,
                         env=self.tls_env(channel_binding="disable")).stdout
            self.assertRegex(out, r"^t\|TLSv1\.[23]\n$", user)
        # The client hop is really verified against the expected CA: the
        # other CA fails (proves whose certificate the client saw).
        p = h.psql(self.port, "SELECT 1", user=h.TRUST_USER, check=False,
                   env=self.tls_env(ca=self.wrong_client_ca))
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("certificate verify failed", p.stderr)
        # A plaintext client hop: the server hop keeps its own setting.
        out = h.psql(self.port, PG_STAT_SSL, user=h.TRUST_USER,
                     env={"PGSSLMODE": "disable"}).stdout
        if self.target == "proxy":
            self.assertRegex(out, r"^t\|TLSv1\.[23]\n$")
        else:
            self.assertEqual(out, "f|\n")

    def run_pgbench(self, mode):
        r = h.pgbench(self.port, ["-n", "-M", mode, "-c", "2", "-j", "2", "-T", "2"],
                      dbname=BENCH_DB, env=self.tls_env(channel_binding="disable"))
        h.log("  pgbench -M %s over TLS via %s: %s tps, %s transactions" % (
            mode, self.target, r.tps, r.processed))
        self.assertEqual(r.failed, 0, repr(r))
        self.assertTrue(r.ok(), repr(r))

    def test_pgbench_simple_tls(self):
        self.run_pgbench("simple")

    def test_pgbench_extended_tls(self):
        self.run_pgbench("extended")

    def test_pgbench_prepared_tls(self):
        self.run_pgbench("prepared")

    # 7. bulk data over TLS ---------------------------------------------------
    def test_large_result_20mb_over_tls(self):
        want = big_expected_md5(BIG_ROWS)
        with self.connect(h.ADMIN_USER) as conn:
            self.assertTrue(conn.pgconn.ssl_in_use)
            self.assertEqual(pg_stat_ssl(conn)[0], True)
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

    def test_copy_in_and_out_100k_rows_over_tls(self):
        table = "tls_copy_" + self.target
        data = copy_data(100000)
        want = hashlib.md5(data.encode()).hexdigest()
        env = self.tls_env(channel_binding="disable")
        h.psql(self.port, "DROP TABLE IF EXISTS %s; CREATE TABLE %s (id int, txt text)"
               % (table, table), env=env)
        self.addCleanup(h.psql, CLUSTER.port, "DROP TABLE IF EXISTS %s" % table,
                        env={"PGSSLMODE": "disable"})
        p = h.psql(self.port, "COPY %s FROM STDIN" % table, input=data, env=env)
        self.assertEqual(p.stderr, "")
        with CLUSTER.connect(sslmode="disable") as c:
            n, srv_md5 = c.execute(
                "SELECT count(*), md5(string_agg(id || E'\\t' || txt || E'\\n', '' ORDER BY id))"
                " FROM %s" % table).fetchone()
        self.assertEqual(n, 100000)
        self.assertEqual(srv_md5, want)
        out = h.psql(self.port, "COPY (SELECT * FROM %s ORDER BY id) TO STDOUT" % table,
                     env=env).stdout
        self.assertEqual(hashlib.md5(out.encode()).hexdigest(), want)
        with self.connect(h.ADMIN_USER) as conn:
            self.assertTrue(conn.pgconn.ssl_in_use)
            got = hashlib.md5()
            with conn.cursor().copy("COPY (SELECT * FROM %s ORDER BY id) TO STDOUT" % table) as cp:
                for chunk in cp:
                    got.update(chunk)
            self.assertEqual(got.hexdigest(), want)
            # COPY FROM STDIN through psycopg too (CopyData over TLS upward).
            conn.execute("TRUNCATE %s" % table)
            with conn.cursor().copy("COPY %s FROM STDIN" % table) as cp:
                for i in range(0, len(data), 65536):
                    cp.write(data[i:i + 65536])
            conn.commit()
            self.assertEqual(conn.execute(
                "SELECT md5(string_agg(id || E'\\t' || txt || E'\\n', '' ORDER BY id)) FROM %s"
                % table).fetchone()[0], want)

    # 8. cancel over TLS --------------------------------------------------------
    def test_cancel_over_tls_psycopg(self):
        with self.connect(autocommit=True) as conn:
            self.assertTrue(conn.pgconn.ssl_in_use)
            h.assert_cancel_ends_sleep(self, conn, 30)

    def test_cancel_request_inside_tls(self):
        """A CancelRequest sent after SSLRequest + handshake (what libpq 17's
        encrypted cancel does)."""
        ctx = t.client_context(ca=self.client_ca)
        app = "tlscancel_" + self.target
        with t.TlsRawConn(self.port) as victim:
            victim.starttls(ctx)
            victim.login(h.TRUST_USER, application_name=app)
            pid, key = victim.backend_key
            victim.send(h.query_message("SELECT pg_sleep(30)"))
            wait_backend(app)
            t0 = time.monotonic()
            with t.TlsRawConn(self.port) as c:
                c.starttls(t.client_context(ca=self.client_ca))
                c.send(h.cancel_request(pid, key))
                c.expect_closed()
            fields = victim.read_error_or_close(timeout=5)
            self.assertIsNotNone(fields, "no ErrorResponse: the cancel did not arrive")
            self.assertEqual(fields.get("C"), "57014", fields)
            self.assertLess(time.monotonic() - t0, 2.0)
            self.assertEqual(victim.read_message()[0], "Z")

    # 9. a stalled handshake does not delay others ------------------------------
    def test_half_client_hello_does_not_block_others(self):
        hello = t.client_hello()
        stalled = []
        try:
            r = t.TlsRawConn(self.port)
            stalled.append(r)
            self.assertEqual(r.ssl_request(), b"S")
            r.send(hello[:len(hello) // 2])
            if self.target == "proxy":   # PostgreSQL 15 has no direct TLS
                r = t.TlsRawConn(self.port)
                stalled.append(r)
                r.send(hello[:len(hello) // 2])
            time.sleep(0.2)

            def login_and_query():
                with self.connect(h.MD5_USER) as conn:
                    return conn.execute("SELECT 'not delayed'").fetchone()[0]
            value, exc, took = h.call_with_timeout(login_and_query, 10, "TLS login")
            self.assertIsNone(exc, repr(exc))
            self.assertEqual(value, "not delayed")
            self.assertLess(took, 2.0, "a TLS login took %.2fs next to a stalled handshake"
                            % took)
        finally:
            for r in stalled:
                r.close()

    # 10. garbage after 'S' -----------------------------------------------------
    def test_garbage_after_s_closes_that_connection(self):
        with t.TlsRawConn(self.port) as r:
            self.assertEqual(r.ssl_request(), b"S")
            try:
                r.send(b"GET / HTTP/1.1\r\nHost: pgproxy\r\n\r\n" * 8)
            except OSError:
                pass
            t.read_until_eof(r.plain_sock, timeout=5)
        with self.connect() as conn:
            self.assertEqual(conn.execute("SELECT 'other session fine'").fetchone()[0],
                             "other session fine")


class TestTlsCasesDirect(TlsCases, TlsTestCase):
    target = "direct"


class TestTlsCasesProxy(TlsCases, TlsTestCase):
    target = "proxy"


# --------------------------------------------------------------------------
# The environment itself, against the server directly (what the proxy
# classes below rely on).

class TestEnvironmentDirect(TlsTestCase):

    def test_server_certificate_failures_and_their_texts(self):
        """The reasons the proxy tests expect are what OpenSSL says for
        these certificates (Python's ssl reports OpenSSL's verify text)."""
        self.assertIsNone(t.verify_failure(CLUSTER.port, CERTS.ca))
        self.assertIsNone(t.verify_failure(CLUSTER.port, CERTS.ca, server_hostname="127.0.0.1"))
        self.server_cert("other_server")
        self.assert_contains_any(t.verify_failure(CLUSTER.port, CERTS.ca), t.REASONS_WRONG_CA)
        self.server_cert("wrong_name")
        self.assertIn(t.REASON_HOSTNAME, t.verify_failure(CLUSTER.port, CERTS.ca).lower())
        self.assertIn(t.REASON_IP, t.verify_failure(CLUSTER.port, CERTS.ca,
                                                    server_hostname="127.0.0.1").lower())
        # libpq agrees: verify-full fails, verify-ca (no name check) passes.
        with self.assertRaises(psycopg.OperationalError) as cm:
            h.connect(CLUSTER.port, user=h.TRUST_USER,
                      **t.libpq_tls(mode="verify-full", ca=CERTS.ca)).close()
        self.assertIn("does not match host name", str(cm.exception))
        with h.connect(CLUSTER.port, user=h.TRUST_USER,
                       **t.libpq_tls(mode="verify-ca", ca=CERTS.ca)) as c:
            self.assertEqual(pg_stat_ssl(c)[0], True)
        self.server_cert("expired")
        self.assertIn(t.REASON_EXPIRED, t.verify_failure(CLUSTER.port, CERTS.ca))
        with self.assertRaises(psycopg.OperationalError) as cm:
            h.connect(CLUSTER.port, user=h.TRUST_USER,
                      **t.libpq_tls(mode="verify-ca", ca=CERTS.ca)).close()
        self.assertIn("certificate verify failed", str(cm.exception))

    def test_matrix_directly(self):
        """Every user logs in with and without TLS; over TLS the server
        offers SCRAM-SHA-256-PLUS and refuses gs2 flag 'y' (what pgproxy
        must prevent by its own FATAL)."""
        for user in USERS:
            for mode in ("disable", "require"):
                with h.connect(CLUSTER.port, user=user, sslmode=mode) as c:
                    self.assertEqual(c.pgconn.ssl_in_use, mode == "require")
                    self.assertEqual(pg_stat_ssl(c)[0], mode == "require")
        with h.connect(CLUSTER.port, user=h.ADMIN_USER, sslmode="require",
                       channel_binding="require") as c:
            self.assertEqual(c.execute("SELECT 1").fetchone()[0], 1)
        with t.TlsRawConn(CLUSTER.port) as r:
            r.starttls()
            r.send(h.startup_packet(h.ADMIN_USER))
            mechs, (typ, payload) = scram_first_with_flag(r, "y")
            self.assertIn("SCRAM-SHA-256-PLUS", mechs)
            self.assertEqual(typ, "E")
            self.assertEqual(h.parse_error_fields(payload).get("C"), "28000")

    def test_mtls_directly(self):
        with h.connect(CLUSTER.port, user=t.MTLS_USER,
                       **t.libpq_tls(ca=CERTS.ca, cert=CERTS.client)) as c:
            self.assertEqual(c.execute("SELECT current_user").fetchone()[0], t.MTLS_USER)
            self.assertEqual(c.execute("SELECT client_dn FROM pg_stat_ssl WHERE pid = "
                                       "pg_backend_pid()").fetchone()[0], "/CN=" + t.MTLS_USER)
        with t.TlsRawConn(CLUSTER.port) as r:
            r.starttls()
            with self.assertRaises(h.ServerError) as cm:
                r.login(t.MTLS_USER)
            self.assertEqual(cm.exception.sqlstate, "28000")
            self.assertIn("certificate", cm.exception.fields.get("M", ""))
        with self.assertRaises(psycopg.OperationalError) as cm:
            h.connect(CLUSTER.port, user=t.MTLS_USER,
                      **t.libpq_tls(ca=CERTS.ca, cert=CERTS.client_other)).close()
        self.assertIn("certificate authentication failed", str(cm.exception))


# --------------------------------------------------------------------------
# 4. client {plain, TLS} x upstream {plain, TLS} x {trust, md5, scram}

@unittest.skipIf(SKIP_PROXY, "PGPROXY_SKIP_PROXY=1")
class TestMatrixProxy(TlsTestCase):

    def test_matrix(self):
        proxies = {
            up: self.tls_proxy(client_tls="allow", client_pair=CERTS.proxy_a,
                               upstream_tls=up, name="pgproxy-matrix-" + up)
            for up in ("disable", "require")}
        for up, p in proxies.items():
            for client in ("disable", "require"):
                for user in USERS:
                    cell = "client %s, upstream_tls=%s, user %s" % (client, up, user)
                    with self.subTest(cell):
                        self.check_cell(p, client, up, user)

    def check_cell(self, p, client, up, user):
        cell = "client %s, upstream_tls=%s, user %s" % (client, up, user)
        if client == "require" and up == "require" and user == h.ADMIN_USER:
            # libpq's default channel_binding=prefer sends gs2 flag 'y'.
            with self.assertRaises(psycopg.OperationalError, msg=cell) as cm:
                h.connect(p.port, user=user, sslmode="require").close()
            self.assertIn("channel_binding=disable", str(cm.exception), cell)
            with h.connect(p.port, user=user, sslmode="require",
                           channel_binding="disable") as c:
                self.assertTrue(c.pgconn.ssl_in_use)
                self.assertEqual(pg_stat_ssl(c)[0], True, cell)
            with self.assertRaises(psycopg.OperationalError, msg=cell):
                h.connect(p.port, user=user, sslmode="require",
                          channel_binding="require").close()
            return
        with h.connect(p.port, user=user, sslmode=client) as c:
            self.assertEqual(c.pgconn.ssl_in_use, client == "require", cell)
            self.assertEqual(c.execute("SELECT 1").fetchone()[0], 1, cell)
            self.assertEqual(c.execute("SELECT current_user").fetchone()[0], user, cell)
            self.assertEqual(pg_stat_ssl(c)[0], up == "require", cell)

    def test_scram_plus_stripped_and_gs2_y_refused(self):
        p = self.tls_proxy(client_tls="allow", client_pair=CERTS.proxy_a,
                           upstream_tls="require")
        # The raw FATAL: SQLSTATE 28000 naming the way out.
        with t.TlsRawConn(p.port) as r:
            r.starttls()
            r.send(h.startup_packet(h.ADMIN_USER))
            mechs, (typ, payload) = scram_first_with_flag(r, "y")
            self.assertIn("SCRAM-SHA-256", mechs)
            self.assertNotIn("SCRAM-SHA-256-PLUS", mechs)
            self.assertEqual(typ, "E", "expected FATAL after gs2 flag 'y', got %r" % typ)
            fields = h.parse_error_fields(payload)
            self.assert_fatal(fields, "28000", "gs2 flag y")
            self.assertIn("channel_binding=disable", fields.get("M", ""))
            r.expect_closed()
        # Flag 'n' over the same hops: the login goes through (our SCRAM
        # client does not bind).
        with t.TlsRawConn(p.port) as r:
            r.starttls()
            r.login(h.ADMIN_USER)
            self.assertEqual(r.auth_codes, [10, 11, 12, 0])
            self.assertNotIn("SCRAM-SHA-256-PLUS", t.sasl_mechanisms(r.messages))
            self.assertEqual(r.simple_query(PG_STAT_SSL.replace(", version", ""))[0], [[b"t"]])


# --------------------------------------------------------------------------
# 5. upstream verification failures: FATAL 08006 with OpenSSL's reason

@unittest.skipIf(SKIP_PROXY, "PGPROXY_SKIP_PROXY=1")
class TestUpstreamVerifyProxy(TlsTestCase):

    def assert_upstream_refused(self, p, reasons, what):
        mark = len(p.stderr())
        with h.RawConn(p.port) as r:
            r.send(h.startup_packet(h.TRUST_USER))
            fields = r.read_error_or_close(timeout=10)
            self.assert_fatal(fields, "08006", what)
            self.assert_contains_any(fields.get("M", ""), reasons, what + " (message)")
            r.expect_closed()
        with self.assertRaises(psycopg.OperationalError) as cm:
            h.connect(p.port, user=h.TRUST_USER, sslmode="disable").close()
        self.assert_contains_any(str(cm.exception), reasons, what + " (psycopg)")
        h.wait_for(lambda: any(x.lower() in p.stderr()[mark:].lower() for x in reasons), 3,
                   what="the reason (%s) in pgproxy's log" % "/".join(reasons))

    def works(self, p, want_ssl=True):
        with h.connect(p.port, user=h.TRUST_USER, sslmode="disable") as c:
            self.assertEqual(pg_stat_ssl(c)[0], want_ssl)

    def test_wrong_ca(self):
        self.server_cert("other_server")
        for mode in ("verify-ca", "verify-full"):
            p = self.tls_proxy(upstream=CLUSTER.upstream("localhost"), upstream_tls=mode,
                               ca=CERTS.ca, name="pgproxy-wrongca-" + mode)
            self.assert_upstream_refused(p, t.REASONS_WRONG_CA, "wrong CA, " + mode)
            p.check()
        # require does not verify: it logs in.
        self.works(self.tls_proxy(upstream_tls="require", name="pgproxy-wrongca-require"))
        # libpq's rules with a CA file: require then checks the chain, prefer never does.
        p = self.tls_proxy(upstream=CLUSTER.upstream("localhost"), upstream_tls="require",
                           ca=CERTS.ca, name="pgproxy-wrongca-require-ca")
        self.assert_upstream_refused(p, t.REASONS_WRONG_CA, "wrong CA, require with a CA file")
        self.works(self.tls_proxy(upstream=CLUSTER.upstream("localhost"), upstream_tls="prefer",
                                  ca=CERTS.ca, name="pgproxy-wrongca-prefer-ca"))

    def test_wrong_host_name_and_ip(self):
        self.server_cert("wrong_name")
        p = self.tls_proxy(upstream=CLUSTER.upstream("localhost"), upstream_tls="verify-full",
                           ca=CERTS.ca, name="pgproxy-wrongname-host")
        self.assert_upstream_refused(p, [t.REASON_HOSTNAME], "wrong name, via localhost")
        p = self.tls_proxy(upstream=CLUSTER.upstream("127.0.0.1"), upstream_tls="verify-full",
                           ca=CERTS.ca, name="pgproxy-wrongname-ip")
        self.assert_upstream_refused(p, [t.REASON_IP], "wrong name, via 127.0.0.1")
        # Metrics: two failed server handshakes (raw + psycopg; one address,
        # so one attempt each), none ok.
        p.wait_admin()
        want = {("server", "error"): 2, ("server", "ok"): 0}
        try:
            h.wait_for(lambda: all(t.handshake_metrics(p).get(k, 0) == v
                                   for k, v in want.items()), 3, 0.1, "handshake counters")
        except AssertionError:
            self.fail("pgproxy_tls_handshakes_total: %r, expected %r"
                      % (t.handshake_metrics(p), want))
        # The name is verify-full's business only.
        self.works(self.tls_proxy(upstream=CLUSTER.upstream("localhost"),
                                  upstream_tls="verify-ca", ca=CERTS.ca,
                                  name="pgproxy-wrongname-verifyca"))
        # The URL form carries sslmode/sslrootcert.
        url = "postgresql://localhost:%d/?sslmode=verify-full&sslrootcert=%s" % (
            CLUSTER.port, CERTS.ca)
        self.assert_upstream_refused(self.tls_proxy(upstream=url, name="pgproxy-url-wrongname"),
                                     [t.REASON_HOSTNAME], "wrong name, URL")
        CLUSTER.use_server_cert("server")
        self.works(self.tls_proxy(upstream=url, name="pgproxy-url-ok"))

    def test_expired(self):
        self.server_cert("expired")
        p = self.tls_proxy(upstream=CLUSTER.upstream("localhost"), upstream_tls="verify-full",
                           ca=CERTS.ca)
        self.assert_upstream_refused(p, [t.REASON_EXPIRED], "expired")

    def test_upstream_without_tls(self):
        CLUSTER.set_ssl(False)
        self.addCleanup(CLUSTER.set_ssl, True)
        for mode in ("require", "verify-full"):
            p = self.tls_proxy(upstream=CLUSTER.upstream("localhost"), upstream_tls=mode,
                               ca=CERTS.ca, name="pgproxy-nossl-" + mode)
            self.assert_upstream_refused(p, ["does not support TLS"], "server 'N', " + mode)
        # prefer falls back to plaintext, as libpq does.
        self.works(self.tls_proxy(upstream_tls="prefer", name="pgproxy-nossl-prefer"),
                   want_ssl=False)

    def test_prefer_uses_tls_when_offered(self):
        self.works(self.tls_proxy(upstream_tls="prefer"), want_ssl=True)
        self.works(self.tls_proxy(upstream_tls="disable", name="pgproxy-disable"),
                   want_ssl=False)


# --------------------------------------------------------------------------
# 6. mTLS toward the server

@unittest.skipIf(SKIP_PROXY, "PGPROXY_SKIP_PROXY=1")
class TestMtlsProxy(TlsTestCase):

    def test_client_certificate_toward_server(self):
        p = self.tls_proxy(upstream=CLUSTER.upstream("localhost"), upstream_tls="verify-full",
                           ca=CERTS.ca, upstream_pair=CERTS.client)
        for mode in ("disable",):
            with h.connect(p.port, user=t.MTLS_USER, sslmode=mode) as c:
                self.assertEqual(c.execute("SELECT current_user").fetchone()[0], t.MTLS_USER)
                self.assertEqual(c.execute("SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = "
                                           "pg_backend_pid()").fetchone(),
                                 (True, "/CN=" + t.MTLS_USER))
        # Other users are unaffected by the client certificate.
        with h.connect(p.port, user=h.MD5_USER, sslmode="disable") as c:
            self.assertEqual(c.execute("SELECT 1").fetchone()[0], 1)

    def test_without_client_certificate_server_refuses(self):
        p = self.tls_proxy(upstream=CLUSTER.upstream("localhost"), upstream_tls="verify-full",
                           ca=CERTS.ca)
        with h.RawConn(p.port) as r:
            r.send(h.startup_packet(t.MTLS_USER))
            fields = r.read_error_or_close(timeout=5)
            # The server's own error, relayed.
            self.assert_fatal(fields, "28000", "mtlsuser without a client certificate")
            self.assertIn("certificate", fields.get("M", ""))
        p2 = self.tls_proxy(upstream=CLUSTER.upstream("localhost"), upstream_tls="verify-full",
                            ca=CERTS.ca, upstream_pair=CERTS.client_other, name="pgproxy-nobody")
        with self.assertRaises(psycopg.OperationalError) as cm:
            h.connect(p2.port, user=t.MTLS_USER, sslmode="disable").close()
        self.assertIn("certificate authentication failed", str(cm.exception))


# --------------------------------------------------------------------------
# 10/11. client_tls modes, direct TLS

@unittest.skipIf(SKIP_PROXY, "PGPROXY_SKIP_PROXY=1")
class TestClientTlsModesProxy(TlsTestCase):

    def test_require(self):
        p = self.tls_proxy(client_tls="require", client_pair=CERTS.proxy_a)
        with h.RawConn(p.port) as r:
            r.send(h.startup_packet(h.TRUST_USER))
            fields = r.read_error_or_close()
            self.assert_fatal(fields, "28000", "plaintext startup, client_tls=require")
            self.assertIn("TLS", fields.get("M", ""))
            self.assertIn("required", fields.get("M", ""))
            r.expect_closed()
        pr = h.psql(p.port, "SELECT 1", user=h.TRUST_USER, check=False,
                    env={"PGSSLMODE": "disable"})
        self.assertNotEqual(pr.returncode, 0)
        self.assertIn("required", pr.stderr)
        out = h.psql(p.port, "SELECT 'tls ok'", user=h.TRUST_USER,
                     env=t.libpq_tls_env(ca=CERTS.proxy_ca)).stdout
        self.assertEqual(out, "tls ok\n")
        # libpq 15 cancels in plaintext: client_tls=require must still take it.
        with h.connect(p.port, user=h.TRUST_USER, autocommit=True,
                       **t.libpq_tls(ca=CERTS.proxy_ca)) as conn:
            timer = threading.Timer(0.5, conn.cancel)
            timer.start()
            try:
                _, exc, took = h.call_with_timeout(lambda: conn.execute("SELECT pg_sleep(30)"),
                                                   8, "cancel with client_tls=require")
            finally:
                timer.cancel()
            self.assertIsInstance(exc, psycopg.errors.QueryCanceled, repr(exc))
            self.assertLess(took, 2.5)

    def test_allow(self):
        p = self.tls_proxy(client_tls="allow", client_pair=CERTS.proxy_a, upstream_tls="require")
        for mode in ("disable", "verify-full"):
            with h.connect(p.port, user=h.TRUST_USER,
                           **t.libpq_tls(mode=mode, ca=CERTS.proxy_ca)) as c:
                self.assertEqual(c.pgconn.ssl_in_use, mode != "disable")
                self.assertEqual(c.execute("SELECT 'allow'").fetchone()[0], "allow")
        # Cancel with TLS on the upstream hop only (client plaintext).
        with h.connect(p.port, user=h.TRUST_USER, sslmode="disable", autocommit=True) as conn:
            timer = threading.Timer(0.5, conn.cancel)
            timer.start()
            try:
                _, exc, took = h.call_with_timeout(lambda: conn.execute("SELECT pg_sleep(30)"),
                                                   8, "cancel, upstream TLS only")
            finally:
                timer.cancel()
            self.assertIsInstance(exc, psycopg.errors.QueryCanceled, repr(exc))
            self.assertLess(took, 2.5)

    def test_disable_answers_n_and_garbage_after_n(self):
        p = self.tls_proxy(client_tls="disable")
        with t.TlsRawConn(p.port) as r:
            self.assertEqual(r.ssl_request(), b"N")
            r.login(h.TRUST_USER)
            self.assertEqual(r.simple_query("SELECT 5")[0], [[b"5"]])
        with t.TlsRawConn(p.port) as r:
            self.assertEqual(r.ssl_request(), b"N")
            r.send(b"\x00\x00\x00\x02")
            self.assert_fatal(r.read_error_or_close(), "08P01", "length 2 after 'N'")
            r.expect_closed()
        with self.assertRaises(psycopg.OperationalError) as cm:
            h.connect(p.port, user=h.TRUST_USER, sslmode="require").close()
        self.assertIn("does not support SSL", str(cm.exception))
        # Direct TLS to a proxy without client TLS: no handshake.
        with self.assertRaises((ssl.SSLError, OSError, h.ConnectionClosed)):
            with t.TlsRawConn(p.port) as r:
                r.direct_tls(t.client_context(alpn=["postgresql"]))
                r.login(h.TRUST_USER)
        with h.connect(p.port, user=h.TRUST_USER, sslmode="disable") as c:
            self.assertEqual(c.execute("SELECT 'fine'").fetchone()[0], "fine")

    def test_direct_tls_alpn(self):
        for mode in ("allow", "require"):
            p = self.tls_proxy(client_tls=mode, client_pair=CERTS.proxy_a, upstream_tls="require",
                               name="pgproxy-direct-" + mode)
            ctx = t.client_context(ca=CERTS.proxy_ca, alpn=["postgresql"])
            with t.TlsRawConn(p.port) as r:
                r.direct_tls(ctx)
                self.assertEqual(r.sock.selected_alpn_protocol(), "postgresql")
                self.assertIn(r.tls_version, ("TLSv1.2", "TLSv1.3"))
                r.login(h.TRUST_USER)
                self.assertEqual(r.auth_codes, [0])
                self.assertEqual(r.simple_query("SELECT ssl FROM pg_stat_ssl WHERE pid = "
                                                "pg_backend_pid()")[0], [[b"t"]])
            # Without ALPN "postgresql" the handshake fails.
            with self.assertRaises((ssl.SSLError, OSError, h.ConnectionClosed)) as cm:
                with t.TlsRawConn(p.port) as r:
                    r.direct_tls(t.client_context(ca=CERTS.proxy_ca))
                    r.login(h.TRUST_USER)
            h.log("  direct TLS without ALPN (%s): %r" % (mode, cm.exception))
            with t.TlsRawConn(p.port) as r:   # another session is fine
                r.direct_tls(t.client_context(ca=CERTS.proxy_ca, alpn=["postgresql"]))
                r.login(h.TRUST_USER)
                self.assertEqual(r.simple_query("SELECT 6")[0], [[b"6"]])


# --------------------------------------------------------------------------
# 12. SIGHUP re-reads certificate files

@unittest.skipIf(SKIP_PROXY, "PGPROXY_SKIP_PROXY=1")
class TestReloadProxy(TlsTestCase):

    def test_sighup_rotates_certificates(self):
        d = tempfile.mkdtemp(prefix="pgproxy-rotate-")
        self.addCleanup(shutil.rmtree, d, True)
        cur = t.KeyPair(os.path.join(d, "proxy.crt"), os.path.join(d, "proxy.key"))
        up = t.KeyPair(os.path.join(d, "upstream.crt"), os.path.join(d, "upstream.key"))

        def install(src, dst):
            for s, f in zip(src, dst):
                shutil.copyfile(s, f + ".new")
                os.chmod(f + ".new", 0o600)
                os.replace(f + ".new", f)
        install(CERTS.proxy_a, cur)
        install(CERTS.client, up)
        p = self.tls_proxy(client_tls="require", client_pair=cur,
                           upstream=CLUSTER.upstream("localhost"), upstream_tls="verify-full",
                           ca=CERTS.ca, upstream_pair=up)
        fp_a, fp_b = (t.cert_fingerprint(CERTS.proxy_a.cert),
                      t.cert_fingerprint(CERTS.proxy_b.cert))
        self.assertEqual(t.peer_fingerprint(p.port), fp_a)
        kw = t.libpq_tls(ca=CERTS.proxy_ca)
        session = h.connect(p.port, user=h.TRUST_USER, autocommit=True, **kw)
        self.addCleanup(session.close)
        self.assertEqual(session.execute("SELECT 1").fetchone()[0], 1)
        with h.connect(p.port, user=t.MTLS_USER, **kw) as c:
            self.assertEqual(c.execute("SELECT current_user").fetchone()[0], t.MTLS_USER)

        install(CERTS.proxy_b, cur)
        install(CERTS.client_other, up)
        p.signal(signal.SIGHUP)
        h.wait_for(lambda: t.peer_fingerprint(p.port) == fp_b, 3, 0.05,
                   "new sessions to see pgproxy's new certificate")
        self.assertEqual(session.execute("SELECT 2").fetchone()[0], 2)
        with self.assertRaises(psycopg.OperationalError) as cm:
            h.connect(p.port, user=t.MTLS_USER, **kw).close()
        self.assertIn("certificate authentication failed", str(cm.exception),
                      "the upstream client certificate was not re-read")

        with open(cur.cert, "w") as f, open(CERTS.garbage) as g:
            f.write(g.read())
        mark = len(p.stderr())
        p.signal(signal.SIGHUP)
        h.wait_for(lambda: cur.cert in p.stderr()[mark:], 3,
                   what="a log line naming the bad file %s" % cur.cert)
        p.check()
        self.assertEqual(t.peer_fingerprint(p.port), fp_b, "the bad file replaced the "
                         "certificate instead of keeping the old one")
        with h.connect(p.port, user=h.MD5_USER, **kw) as c:
            self.assertEqual(c.execute("SELECT 'after bad reload'").fetchone()[0],
                             "after bad reload")
        self.assertEqual(session.execute("SELECT 3").fetchone()[0], 3)


# --------------------------------------------------------------------------
# 13. Unix sockets and IPv6

@unittest.skipIf(SKIP_PROXY, "PGPROXY_SKIP_PROXY=1")
class TestTransportsProxy(TlsTestCase):

    def sockdir(self):
        d = tempfile.mkdtemp(prefix="pgproxy-sock-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def test_listen_unix_directory_default_mode(self):
        d = self.sockdir()
        p = self.tls_proxy(listen=d)
        self.assertTrue(os.path.exists(os.path.join(d, ".s.PGSQL.6433")))
        self.assertEqual(os.stat(p.socket_path).st_mode & 0o777, 0o770)
        out = h.psql(6433, "SELECT 'over unix'", user=h.MD5_USER, env={"PGHOST": d}).stdout
        self.assertEqual(out, "over unix\n")

    def test_listen_unix_socket_mode(self):
        d = self.sockdir()
        p = self.tls_proxy(listen=d, unix_socket_mode="0700")
        self.assertEqual(os.stat(p.socket_path).st_mode & 0o777, 0o700)
        out = h.psql(6433, "SELECT 1", user=h.TRUST_USER, env={"PGHOST": d}).stdout
        self.assertEqual(out, "1\n")

    def test_listen_unix_socket_file(self):
        path = os.path.join(self.sockdir(), "pgproxy.sock")
        p = self.tls_proxy(listen="unix:" + path)
        self.assertEqual(p.socket_path, path)
        with t.unix_raw_conn(path) as r:
            r.login(h.MD5_USER)
            self.assertEqual(r.simple_query("SELECT 'file socket'")[0], [[b"file socket"]])

    def test_upstream_unix_socket_ignores_upstream_tls(self):
        for upstream in ("postgresql:///postgres?host=%s&port=%d" % (CLUSTER.sockdir, CLUSTER.port),
                         "unix:%s/.s.PGSQL.%d" % (CLUSTER.sockdir, CLUSTER.port)):
            p = self.tls_proxy(upstream=upstream, upstream_tls="require",
                               name="pgproxy-upunix-" + upstream[:4])
            with h.connect(p.port, user=h.ADMIN_USER, sslmode="disable") as c:
                addr, ssl_on = c.execute(
                    "SELECT inet_server_addr(), ssl FROM pg_stat_ssl "
                    "WHERE pid = pg_backend_pid()").fetchone()
                self.assertIsNone(addr, "not a Unix socket upstream (%s)" % upstream)
                self.assertFalse(ssl_on)

    @unittest.skipUnless(t.ipv6_loopback(), "no IPv6 loopback")
    def test_ipv6_both_sides(self):
        if not CLUSTER.ipv6:
            self.skipTest("cluster has no ::1")
        p = self.tls_proxy(listen="[::1]", upstream=CLUSTER.upstream("::1"),
                           client_tls="allow", client_pair=CERTS.proxy_a,
                           upstream_tls="verify-full", ca=CERTS.ca)
        with h.connect(p.port, user=h.MD5_USER, host="::1", sslmode="disable") as c:
            self.assertEqual(c.execute("SELECT host(inet_server_addr()), "
                                       "host(inet_client_addr())").fetchone(), ("::1", "::1"))
            self.assertEqual(pg_stat_ssl(c)[0], True)
        # verify-full on the client hop checks IP:::1 in pgproxy's certificate.
        with h.connect(p.port, user=h.TRUST_USER, host="::1", sslmode="verify-full",
                       sslrootcert=CERTS.proxy_ca) as c:
            self.assertTrue(c.pgconn.ssl_in_use)


# --------------------------------------------------------------------------
# 14. /debug/connections, SHOW CONNECTIONS, pgproxy_tls_handshakes_total

TLS_KEYS = ("client_tls_version", "client_tls_cipher", "server_tls_version",
            "server_tls_cipher")


@unittest.skipIf(SKIP_PROXY, "PGPROXY_SKIP_PROXY=1")
class TestObservabilityProxy(TlsTestCase):

    def test_connection_fields_and_handshake_metrics(self):
        import json
        p = self.tls_proxy(client_tls="allow", client_pair=CERTS.proxy_a, upstream_tls="require")
        p.wait_admin()
        tls_c = h.connect(p.port, user=h.TRUST_USER, application_name="tls_app",
                          **t.libpq_tls(ca=CERTS.proxy_ca))
        self.addCleanup(tls_c.close)
        plain_c = h.connect(p.port, user=h.TRUST_USER, application_name="plain_app",
                            sslmode="disable")
        self.addCleanup(plain_c.close)
        for c in (tls_c, plain_c):
            self.assertEqual(c.execute("SELECT 1").fetchone()[0], 1)
        status, _, body = p.http_get("/debug/connections")
        self.assertEqual(status, 200, body)
        conns = {c.get("application_name"): c for c in json.loads(body)}
        tls_row, plain_row = conns["tls_app"], conns["plain_app"]
        for key in TLS_KEYS:
            self.assertIn(key, tls_row)
            self.assertIn(key, plain_row)
        self.assertRegex(tls_row["client_tls_version"], r"^TLSv1\.[23]$")
        self.assertRegex(tls_row["client_tls_cipher"], r"^[A-Z0-9_-]{8,}$")
        self.assertIsNone(plain_row["client_tls_version"])
        self.assertIsNone(plain_row["client_tls_cipher"])
        for row in (tls_row, plain_row):
            self.assertRegex(row["server_tls_version"], r"^TLSv1\.[23]$")
            self.assertRegex(row["server_tls_cipher"], r"^[A-Z0-9_-]{8,}$")
        # The same columns in the console.
        with psycopg.connect(host="127.0.0.1", port=p.port, dbname="pgproxy",
                             user=h.ADMIN_USER, password="unused", sslmode="disable",
                             autocommit=True) as con:
            cur = con.execute("SHOW CONNECTIONS")
            cols = [d.name for d in cur.description]
            rows = [dict(zip(cols, r)) for r in cur.fetchall()]
        for key in TLS_KEYS:
            self.assertIn(key, cols)
        crow = [r for r in rows if r.get("application_name") == "tls_app"]
        self.assertEqual(len(crow), 1, rows)
        self.assertEqual(crow[0]["client_tls_version"], tls_row["client_tls_version"])
        self.assertEqual(crow[0]["server_tls_cipher"], tls_row["server_tls_cipher"])

        # Two failed client handshakes: garbage after 'S', direct TLS without ALPN.
        with t.TlsRawConn(p.port) as r:
            self.assertEqual(r.ssl_request(), b"S")
            r.send(b"\x00garbage, not a ClientHello\r\n" * 4)
            t.read_until_eof(r.plain_sock)
        with self.assertRaises((ssl.SSLError, OSError, h.ConnectionClosed)):
            with t.TlsRawConn(p.port) as r:
                r.direct_tls(t.client_context())
                r.login(h.TRUST_USER)
        want = {("client", "ok"): 1, ("client", "error"): 2,
                ("server", "ok"): 2, ("server", "error"): 0}

        def settled():
            m = t.handshake_metrics(p)
            return m if all(m.get(k, 0) == v for k, v in want.items()) else None
        try:
            h.wait_for(settled, 3, 0.1, "pgproxy_tls_handshakes_total to reach %r" % want)
        except AssertionError:
            self.fail("pgproxy_tls_handshakes_total: %r, expected %r"
                      % (t.handshake_metrics(p), want))


if __name__ == "__main__":
    unittest.main()
