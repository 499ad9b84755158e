"""TLS environment for pgproxy's integration tests: certificates made with
the `openssl` command line tool, a PostgreSQL cluster with ssl = on whose
server certificate can be swapped at run time, a pgproxy launcher that
listens on any transport (TCP v4/v6, a Unix socket directory or file), and
small TLS client helpers (SSLRequest upgrade, PostgreSQL 17 direct TLS,
peer certificate fingerprints, a real ClientHello to send half of).

What it does not do: it mocks nothing.  The certificates are real X.509
files, the server is a real PostgreSQL, the clients are libpq (psql,
pgbench, psycopg) and Python's ssl module (OpenSSL underneath).

Certificates (Certs): CA "pgproxy-test-ca" signs the server's certificate
(SAN DNS:localhost, IP:127.0.0.1, IP:::1), one with a wrong name (SAN
DNS:wrong.example only), an expired one (made with `openssl ca` and
-startdate/-enddate in the past: OpenSSL 3.0's `x509 -req` cannot backdate),
and the client certificates CN=mtlsuser (mTLS) and CN=nobody.  An unrelated
CA signs `other_server` (good names, wrong CA).  A third CA,
"pgproxy-client-facing-ca", signs pgproxy's own certificates proxy_a and
proxy_b (two, to tell a SIGHUP rotation apart), so a client that verifies
against it can only succeed when it talks to pgproxy's TLS.
"""

import collections
import hashlib
import os
import re
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import time

import harness as h

KeyPair = collections.namedtuple("KeyPair", "cert key")

MTLS_USER = "mtlsuser"
SERVER_SANS = "DNS:localhost,IP:127.0.0.1,IP:::1"

# What OpenSSL says (X509_verify_cert_error_string) for each failure; the
# same strings Python's ssl module reports in verify_message, which is how
# test_tls validates them against PostgreSQL directly.
REASON_EXPIRED = "certificate has expired"
REASONS_WRONG_CA = ("unable to get local issuer certificate",
                    "self-signed certificate in certificate chain",
                    "self signed certificate in certificate chain")
REASON_HOSTNAME = "hostname mismatch"
REASON_IP = "ip address mismatch"


def ipv6_loopback():
    """True when a socket can bind and connect on [::1]."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
            s.listen(1)
            with socket.create_connection(("::1", s.getsockname()[1]), timeout=2):
                pass
        return True
    except OSError:
        return False


def free_port6():
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
        s.bind(("::1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------
# Certificates

def _openssl(args, cwd):
    p = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True,
                       text=True, timeout=60, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise RuntimeError("openssl %s failed (rc=%d):\n%s%s" % (
            " ".join(args), p.returncode, p.stdout, p.stderr))
    return p.stdout


_CA_CNF = """\
[ ca ]
default_ca = ca_default
[ ca_default ]
dir = {dir}
database = {dir}/index.txt
new_certs_dir = {dir}/newcerts
serial = {dir}/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
email_in_dn = no
[ policy_any ]
commonName = supplied
[ leaf ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = {eku}
{san}
"""


class Certs:
    """Every certificate and key the TLS tests use, made in directory d.
    Attributes are KeyPair(cert, key) paths; *_ca are certificate paths.
    All files are mode 0600 (libpq and PostgreSQL refuse keys readable by
    others); copy_to() hands a set to another owner."""

    def __init__(self, d=None):
        t0 = time.monotonic()
        self.dir = d or tempfile.mkdtemp(prefix="pgproxy-certs-")
        self.ca, self._ca_key = self._make_ca("ca", "pgproxy-test-ca")
        self.other_ca, self._other_ca_key = self._make_ca("otherca", "unrelated-test-ca")
        self.proxy_ca, self._proxy_ca_key = self._make_ca("proxyca", "pgproxy-client-facing-ca")
        self.server = self._leaf("server", "localhost", SERVER_SANS, "serverAuth")
        self.other_server = self._leaf("other_server", "localhost", SERVER_SANS, "serverAuth",
                                       ca=(self.other_ca, self._other_ca_key))
        self.wrong_name = self._leaf("wrong_name", "wrong.example", "DNS:wrong.example",
                                     "serverAuth")
        self.expired = self._leaf("expired", "localhost", SERVER_SANS, "serverAuth",
                                  expired=True)
        self.client = self._leaf("client_mtlsuser", MTLS_USER, None, "clientAuth")
        self.client_other = self._leaf("client_nobody", "nobody", None, "clientAuth")
        self.proxy_a = self._leaf("proxy_a", "localhost", SERVER_SANS, "serverAuth",
                                  ca=(self.proxy_ca, self._proxy_ca_key))
        self.proxy_b = self._leaf("proxy_b", "localhost", SERVER_SANS, "serverAuth",
                                  ca=(self.proxy_ca, self._proxy_ca_key))
        self.garbage = os.path.join(self.dir, "garbage.pem")
        with open(self.garbage, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nthis is not base64 at all !!!\n"
                    "-----END CERTIFICATE-----\n")
        for n in os.listdir(self.dir):
            p = os.path.join(self.dir, n)
            if os.path.isfile(p):
                os.chmod(p, 0o600)
        h.log("certs: made in %s in %.1fs" % (self.dir, time.monotonic() - t0))

    def _path(self, name):
        return os.path.join(self.dir, name)

    def _newkey_args(self, keyfile):
        # P-256: fast to generate, accepted by PostgreSQL, libpq and Python.
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", keyfile]

    def _make_ca(self, name, cn):
        crt, key = self._path(name + ".crt"), self._path(name + ".key")
        _openssl(["req", "-x509"] + self._newkey_args(key) +
                 ["-out", crt, "-days", "3650", "-subj", "/CN=" + cn,
                  "-addext", "basicConstraints=critical,CA:TRUE",
                  "-addext", "keyUsage=critical,keyCertSign,cRLSign"], self.dir)
        return crt, key

    def _leaf(self, name, cn, sans, eku, ca=None, expired=False):
        """A key and a certificate signed by ca (default: self.ca) through
        `openssl ca`, which alone takes explicit validity dates in 3.0."""
        ca_crt, ca_key = ca or (self.ca, self._ca_key)
        crt, key, csr = (self._path(name + ".crt"), self._path(name + ".key"),
                         self._path(name + ".csr"))
        _openssl(["req", "-new"] + self._newkey_args(key) +
                 ["-out", csr, "-subj", "/CN=" + cn], self.dir)
        cadir = self._path("cadb-" + name)
        os.mkdir(cadir)
        os.mkdir(os.path.join(cadir, "newcerts"))
        open(os.path.join(cadir, "index.txt"), "w").close()
        with open(os.path.join(cadir, "serial"), "w") as f:
            f.write("%032X\n" % int.from_bytes(os.urandom(15), "big"))
        cnf = os.path.join(cadir, "ca.cnf")
        with open(cnf, "w") as f:
            f.write(_CA_CNF.format(dir=cadir, eku=eku,
                                   san="subjectAltName = " + sans if sans else ""))
        if expired:
            dates = ["-startdate", "20200101000000Z", "-enddate", "20210101000000Z"]
        else:
            dates = ["-startdate", time.strftime("%Y%m%d%H%M%SZ",
                                                 time.gmtime(time.time() - 86400)),
                     "-days", "825"]
        _openssl(["ca", "-batch", "-config", cnf, "-cert", ca_crt, "-keyfile", ca_key,
                  "-in", csr, "-out", crt, "-extensions", "leaf", "-notext"] + dates,
                 self.dir)
        shutil.rmtree(cadir)
        os.unlink(csr)
        return KeyPair(crt, key)

    def copy_to(self, dest_dir, pairs, owner=None):
        """Copy the named KeyPairs (attribute names) into dest_dir as
        <name>.crt/.key, 0600, owned by owner (a user name) when given.
        -> {name: KeyPair of the copies}."""
        import pwd
        os.makedirs(dest_dir, exist_ok=True)
        out = {}
        for name in pairs:
            src = getattr(self, name)
            dst = KeyPair(os.path.join(dest_dir, name + ".crt"),
                          os.path.join(dest_dir, name + ".key"))
            for s, d in zip(src, dst):
                shutil.copyfile(s, d)
                os.chmod(d, 0o600)
                if owner:
                    pw = pwd.getpwnam(owner)
                    os.chown(d, pw.pw_uid, pw.pw_gid)
            out[name] = dst
        return out


def cert_fingerprint(path):
    """SHA-256 of the DER form of the (first) certificate in a PEM file."""
    with open(path) as f:
        pem = f.read()
    m = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", pem, re.S)
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(m.group(0))).hexdigest()


# --------------------------------------------------------------------------
# TLS clients

def client_context(ca=None, check_hostname=True, alpn=None, cert=None):
    """An ssl.SSLContext for a client: verifies against ca (a file) when
    given, else verifies nothing; alpn a list of protocol names; cert a
    KeyPair to present."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca:
        ctx.load_verify_locations(ca)
        ctx.check_hostname = check_hostname
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if cert:
        ctx.load_cert_chain(cert.cert, cert.key)
    return ctx


class TlsRawConn(h.RawConn):
    """harness.RawConn that can switch its socket to TLS: starttls() after
    an SSLRequest answered 'S', or direct_tls() right after connecting
    (PostgreSQL 17's sslnegotiation=direct).  Every RawConn method then
    speaks through the TLS layer."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        super().__init__(port, host=host, timeout=timeout)
        self.plain_sock = self.sock

    def ssl_request(self):
        """Send SSLRequest; -> the one-byte answer (b'S' or b'N')."""
        self.send(h.ssl_request())
        return self.read_byte()

    def starttls(self, ctx=None, server_hostname="localhost"):
        """SSLRequest, assert 'S', TLS handshake. -> self."""
        answer = self.ssl_request()
        if answer != b"S":
            raise AssertionError("SSLRequest answered %r, expected b'S'" % answer)
        return self._wrap(ctx, server_hostname)

    def direct_tls(self, ctx=None, server_hostname="localhost"):
        """TLS handshake as the very first bytes (ALPN is the caller's ctx's
        business; PostgreSQL requires "postgresql"). -> self."""
        return self._wrap(ctx, server_hostname)

    def _wrap(self, ctx, server_hostname):
        if self.pos != len(self.buf):
            raise AssertionError("bytes after the SSLRequest answer before TLS: %r"
                                 % bytes(self.buf[self.pos:]))
        ctx = ctx or client_context()
        self.sock = ctx.wrap_socket(self.plain_sock, server_hostname=server_hostname)
        return self

    @property
    def tls_version(self):
        return self.sock.version() if isinstance(self.sock, ssl.SSLSocket) else None

    def peer_fingerprint(self):
        return hashlib.sha256(self.sock.getpeercert(binary_form=True)).hexdigest()


def unix_raw_conn(path, timeout=10.0):
    """A harness.RawConn over a Unix socket file."""
    r = h.RawConn.__new__(TlsRawConn)
    r.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    r.sock.settimeout(timeout)
    r.sock.connect(path)
    r.buf, r.pos, r.backend_key, r.params = bytearray(), 0, None, {}
    r.auth_codes, r.messages, r.plain_sock = [], [], r.sock
    return r


def peer_fingerprint(port, host="127.0.0.1", direct=False, alpn=("postgresql",)):
    """SHA-256 of the certificate the server at host:port presents after an
    SSLRequest (or, direct=True, to a direct TLS ClientHello). No
    verification: this only asks who answers."""
    ctx = client_context(alpn=list(alpn) if direct else None)
    with TlsRawConn(port, host) as r:
        (r.direct_tls if direct else r.starttls)(ctx)
        return r.peer_fingerprint()


def verify_failure(port, ca, host="127.0.0.1", server_hostname="localhost"):
    """Handshake after SSLRequest verifying against ca and server_hostname
    (an IP address is checked as one). -> None when it verifies, else
    OpenSSL's reason (ssl.SSLCertVerificationError.verify_message)."""
    ctx = client_context(ca=ca)
    try:
        with TlsRawConn(port, host) as r:
            r.starttls(ctx, server_hostname)
        return None
    except ssl.SSLCertVerificationError as e:
        return e.verify_message


def client_hello(alpn=("postgresql",), server_hostname="localhost"):
    """The bytes of a real TLS ClientHello (what a client sends first)."""
    ctx = client_context(alpn=list(alpn) if alpn else None)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    data = outgoing.read()
    if not data or data[0] != 0x16:
        raise AssertionError("no ClientHello produced: %r" % data[:16])
    return data


def libpq_tls(mode="verify-full", ca=None, host="localhost", channel_binding=None,
              cert=None):
    """psycopg keyword arguments for a TLS client hop: host is the name
    checked by verify-full, hostaddr is where to connect (127.0.0.1, so a
    'localhost' resolving to ::1 first changes nothing)."""
    kw = dict(sslmode=mode, host=host)
    if host == "localhost":
        kw["hostaddr"] = "127.0.0.1"
    if ca:
        kw["sslrootcert"] = ca
    if channel_binding:
        kw["channel_binding"] = channel_binding
    if cert:
        kw["sslcert"], kw["sslkey"] = cert.cert, cert.key
    return kw


def libpq_tls_env(**kw):
    """The same as environment variables for psql and pgbench."""
    names = dict(sslmode="PGSSLMODE", host="PGHOST", hostaddr="PGHOSTADDR",
                 sslrootcert="PGSSLROOTCERT", channel_binding="PGCHANNELBINDING",
                 sslcert="PGSSLCERT", sslkey="PGSSLKEY")
    return {names[k]: v for k, v in libpq_tls(**kw).items()}


# --------------------------------------------------------------------------
# Cluster with ssl = on

SERVER_PAIRS = ("server", "other_server", "wrong_name", "expired")


class TlsCluster(h.Cluster):
    """harness.Cluster with ssl = on (server certificate signed by
    certs.ca, ssl_ca_file = certs.ca for client certificates), listening on
    127.0.0.1 and, when available, ::1 (same port), its Unix socket in
    sockdir.  hba: the harness's trust/md5/scram users on both addresses,
    and `hostssl all mtlsuser ... cert` before them."""

    def __init__(self, certs, name="pgproxy-tls"):
        super().__init__(name=name)
        self.certs = certs
        self.ipv6 = ipv6_loopback()
        self.tlsdir = os.path.join(self.tmpdir, "tls")
        self.server_cert = "server"

    def init(self):
        super().init()
        t0 = time.monotonic()
        self.pairs = self.certs.copy_to(self.tlsdir, SERVER_PAIRS, owner=self.os_user)
        ca = os.path.join(self.tlsdir, "root.crt")
        shutil.copyfile(self.certs.ca, ca)
        if self.os_user:
            h._chown_tree(self.tlsdir, self.os_user)
        addrs = "127.0.0.1,::1" if self.ipv6 else "127.0.0.1"
        conf = [
            "listen_addresses = '%s'" % addrs,
            "ssl = on",
            "ssl_cert_file = '%s'" % self.pairs["server"].cert,
            "ssl_key_file = '%s'" % self.pairs["server"].key,
            "ssl_ca_file = '%s'" % ca,
        ]
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write("\n# pgproxy TLS tests\n" + "\n".join(conf) + "\n")
        nets = ["127.0.0.1/32"] + (["::1/128"] if self.ipv6 else [])
        hba = ["local all all trust"]
        for net in nets:
            hba.append("hostssl all %s %s cert" % (MTLS_USER, net))
        for net in nets:
            hba += ["host all %s %s trust" % (h.TRUST_USER, net),
                    "host all %s %s md5" % (h.MD5_USER, net),
                    "host all all %s scram-sha-256" % net]
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as f:
            f.write("\n".join(hba) + "\n")
        self.restart()
        self.admin_sql_socket(["CREATE ROLE %s LOGIN" % MTLS_USER])
        if peer_fingerprint(self.port) != cert_fingerprint(self.certs.server.cert):
            raise RuntimeError("the TLS cluster does not present the server certificate")
        h.log("cluster: ssl = on, IPv6 %s, %.1fs more" % (
            "on" if self.ipv6 else "unavailable", time.monotonic() - t0))
        return self

    def use_server_cert(self, name, timeout=10.0):
        """Make the server present certificate `name` (one of SERVER_PAIRS)
        to new connections: ALTER SYSTEM + reload, then wait until a new
        handshake shows it."""
        pair = self.pairs[name]
        self.admin_sql_socket([
            "ALTER SYSTEM SET ssl_cert_file = '%s'" % pair.cert,
            "ALTER SYSTEM SET ssl_key_file = '%s'" % pair.key,
            "SELECT pg_reload_conf()"])
        want = cert_fingerprint(pair.cert)
        h.wait_for(lambda: peer_fingerprint(self.port) == want, timeout, 0.05,
                   "the server to present certificate %s" % name)
        self.server_cert = name

    def set_ssl(self, on, timeout=10.0):
        """ssl = on/off by ALTER SYSTEM + reload; waits until a new
        SSLRequest gets 'S' / 'N'."""
        self.admin_sql_socket(["ALTER SYSTEM SET ssl = %s" % ("on" if on else "off"),
                               "SELECT pg_reload_conf()"])
        want = b"S" if on else b"N"

        def answer():
            with TlsRawConn(self.port) as r:
                return r.ssl_request() == want
        h.wait_for(answer, timeout, 0.05, "the server to answer %r to SSLRequest" % want)

    def upstream(self, host="localhost"):
        """host:port for pgproxy's proxy.upstream ([::1] bracketed)."""
        if ":" in host:
            return "[%s]:%d" % (host, self.port)
        return "%s:%d" % (host, self.port)


# --------------------------------------------------------------------------
# pgproxy on any transport

def _tcp6_listening(port):
    want = "%04X" % port
    try:
        with open("/proc/net/tcp6") as f:
            next(f)
            for line in f:
                fields = line.split()
                addr, p = fields[1].split(":")
                if p == want and fields[3] == "0A" and addr in (
                        "00000000000000000000000001000000", "0" * 32):
                    return True
    except OSError:
        pass
    return False


def _unix_listening(path):
    """True when a listening Unix socket is bound at path (/proc/net/unix:
    flag __SO_ACCEPTCON, 0x10000)."""
    try:
        with open("/proc/net/unix") as f:
            next(f)
            for line in f:
                fields = line.split()
                if len(fields) >= 8 and fields[7] == path and int(fields[3], 16) & 0x10000:
                    return True
    except OSError:
        pass
    return False


class TlsProxy(h.Proxy):
    """harness.Proxy whose proxy.listen can be any transport:
      listen=None         127.0.0.1:<free port> (the harness default)
      listen="[::1]"      [::1]:<free port>
      listen="/dir"       Unix socket <dir>/.s.PGSQL.6433 (6433: the default
                          port; set port= to say which one the dir form uses)
      listen="unix:/f"    Unix socket file /f
    socket_path is the Unix socket's path (None for TCP); port the TCP port
    (or the port in the socket name)."""

    def __init__(self, upstream, *, listen=None, unix_port=6433, **kw):
        super().__init__(upstream, **kw)
        self.listen = listen
        self.unix_port = unix_port
        self.socket_path = None

    def start(self, timeout=15):
        if self.listen is None:
            return super().start(timeout)
        if not os.access(self.binary, os.X_OK):
            raise AssertionError("pgproxy binary %s not found or not executable "
                                 "(build it, or set PGPROXY_BIN)" % self.binary)
        if self.listen == "[::1]":
            self.port = free_port6()
            listen = "[::1]:%d" % self.port
            ready = lambda: _tcp6_listening(self.port)  # noqa: E731
        elif self.listen.startswith("unix:"):
            self.port = None
            listen = self.listen
            self.socket_path = self.listen[5:]
            ready = lambda: _unix_listening(self.socket_path)  # noqa: E731
        elif self.listen.startswith("/"):
            self.port = self.unix_port
            listen = self.listen
            self.socket_path = os.path.join(self.listen, ".s.PGSQL.%d" % self.port)
            ready = lambda: _unix_listening(self.socket_path)  # noqa: E731
        else:
            raise ValueError("listen: %r" % self.listen)
        self.admin_port = self._fixed_admin_port or h.free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PGPROXY")}
        if self.admin_via in ("auto", "env") and "admin" in h.config_sections(self.binary):
            env["PGPROXY_ADMIN_LISTEN"] = "127.0.0.1:%d" % self.admin_port
        if "slow_log" in h.config_sections(self.binary):
            env["PGPROXY_SLOW_LOG_SQLITE_PATH"] = os.path.join(self.tmpdir, "pgproxy.db")
        env.update(self.extra_env)
        cmd = [self.binary, "--listen", listen, "--upstream", self.upstream,
               "--log-level", self.log_level]
        if (self.admin_via in ("auto", "flag") and "--admin" not in self.extra_args
                and "--admin" in h.binary_help(self.binary)):
            cmd += ["--admin", "127.0.0.1:%d" % self.admin_port]
        cmd += self.extra_args
        self.cmd = cmd
        self._log = open(self.logfile, "ab")
        self._log.write(("$ %s\n" % " ".join(cmd)).encode())
        self._log.flush()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, cwd=self.tmpdir, env=env)
        deadline = time.monotonic() + timeout
        while not ready():
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise AssertionError("pgproxy exited with %d before listening:\n%s" % (
                    self.proc.returncode, self.stderr()))
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("pgproxy not listening on %s after %ss:\n%s" % (
                    listen, timeout, self.stderr()))
            time.sleep(0.01)
        return self


def tls_env(client_tls=None, client_pair=None, upstream_tls=None, ca=None,
            upstream_pair=None, **more):
    """PGPROXY_PROXY_* variables for the TLS keys (None = not set)."""
    env = {}
    if client_tls is not None:
        env["PGPROXY_PROXY_CLIENT_TLS"] = client_tls
    if client_pair is not None:
        env["PGPROXY_PROXY_CLIENT_TLS_CERT_FILE"] = client_pair.cert
        env["PGPROXY_PROXY_CLIENT_TLS_KEY_FILE"] = client_pair.key
    if upstream_tls is not None:
        env["PGPROXY_PROXY_UPSTREAM_TLS"] = upstream_tls
    if ca is not None:
        env["PGPROXY_PROXY_UPSTREAM_TLS_CA_FILE"] = ca
    if upstream_pair is not None:
        env["PGPROXY_PROXY_UPSTREAM_TLS_CERT_FILE"] = upstream_pair.cert
        env["PGPROXY_PROXY_UPSTREAM_TLS_KEY_FILE"] = upstream_pair.key
    for k, v in more.items():
        env["PGPROXY_PROXY_" + k.upper()] = v
    return env


def handshake_metrics(proxy):
    """{(side, result): value} of pgproxy_tls_handshakes_total."""
    status, _, body = proxy.http_get("/metrics")
    if status != 200:
        raise AssertionError("/metrics answered %d" % status)
    text = body.decode()
    out = {}
    for m in re.finditer(r'^pgproxy_tls_handshakes_total\{([^}]*)\} ([0-9.e+-]+)$', text, re.M):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        out[(labels.get("side"), labels.get("result"))] = float(m.group(2))
    return out


def read_until_eof(sock, timeout=5.0, limit=1 << 20):
    """Read raw bytes until the peer closes. -> bytes read; AssertionError
    when the connection is still open after timeout."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    try:
        while len(data) < limit:
            if time.monotonic() > deadline:
                raise socket.timeout()
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        return data
    except socket.timeout:
        raise AssertionError("connection still open after %.1fs" % timeout)
    raise AssertionError("peer sent more than %d bytes" % limit)


def sasl_mechanisms(msgs):
    """The AuthenticationSASL mechanism list in RawConn.messages, if any."""
    for t, p in msgs:
        if t == "R" and struct.unpack("!I", p[:4])[0] == 10:
            return [m.decode() for m in p[4:].split(b"\0") if m]
    return None
