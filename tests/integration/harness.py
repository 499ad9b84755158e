"""Integration-test harness for pgproxy: a throwaway PostgreSQL cluster, the
proxy under test, real clients (psql, pgbench, psycopg 3) and a raw-socket
protocol client.

The idea is pgbouncer's test/utils.py: every run gets its own cluster made
with initdb in a temporary directory (fsync off, free port, loopback only),
and the logs of everything involved are printed when a test fails.  Nothing
here is mocked: tests talk to a real server through the real binary.

Runs on Debian's /usr/bin/python3 with the standard library and
python3-psycopg only.  When the harness runs as root, initdb/pg_ctl (which
refuse root) run as the `postgres` user via runuser.

Environment:
  PGPROXY_BIN         the pgproxy binary (default <repo>/build/pgproxy)
  PGPROXY_PG_BINDIR   PostgreSQL binaries (default: pg_config --bindir, then
                      the newest /usr/lib/postgresql/*/bin)
  PGPROXY_KEEP_TMP=1  keep temporary directories (cluster data, proxy logs)
  PGPROXY_TEST_LOG_LEVEL  --log-level given to pgproxy (default info)
"""

import atexit
import base64
import glob
import hashlib
import hmac
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import unittest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

ADMIN_USER = "postgres"
ADMIN_PASSWORD = "admin-secret-pw"
MD5_USER = "md5user"
MD5_PASSWORD = "md5-secret-pw"
TRUST_USER = "trustuser"
PASSWORDS = {ADMIN_USER: ADMIN_PASSWORD, MD5_USER: MD5_PASSWORD, TRUST_USER: None}

PROTOCOL_3_0 = 196608
PROTOCOL_3_2 = 196610
SSL_REQUEST_CODE = 80877103
GSSENC_REQUEST_CODE = 80877104
CANCEL_REQUEST_CODE = 80877102

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                     "runtime error:", "WARNING: ThreadSanitizer",
                     "ERROR: UndefinedBehaviorSanitizer")

KEEP_TMP = os.environ.get("PGPROXY_KEEP_TMP") == "1"

# A SIGTERM (e.g. from `timeout`) must still run the atexit hooks that stop
# the throwaway cluster and the proxies.
if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------
# Log registry: every log file a test may want to see when it fails.

class _LogRegistry:
    def __init__(self):
        self.files = {}  # path -> label

    def add(self, path, label):
        self.files[path] = label

    def marks(self):
        """Current size of every known log, to print only what a test wrote."""
        out = {}
        for path in self.files:
            try:
                out[path] = os.path.getsize(path)
            except OSError:
                out[path] = 0
        return out

    def dump(self, marks=None, limit=64 * 1024):
        for path, label in list(self.files.items()):
            start = (marks or {}).get(path, 0)
            try:
                with open(path, "rb") as f:
                    f.seek(0, os.SEEK_END)
                    end = f.tell()
                    if end <= start:
                        continue
                    begin = max(start, end - limit)
                    f.seek(begin)
                    data = f.read(end - begin)
            except OSError:
                continue
            log("----- %s (%s)%s -----" % (
                label, path, " [truncated]" if begin > start else ""))
            log(data.decode("utf-8", "replace").rstrip("\n"))
            log("----- end of %s -----" % label)


LOGS = _LogRegistry()


TEST_TIMEOUT = int(os.environ.get("PGPROXY_TEST_TIMEOUT", "120"))


class TestTimeout(AssertionError):
    pass


def _on_alarm(signum, frame):
    import faulthandler
    log("test timed out after %ds; threads:" % TEST_TIMEOUT)
    faulthandler.dump_traceback(all_threads=True)
    raise TestTimeout("test exceeded %ds (hung?)" % TEST_TIMEOUT)


class TestCase(unittest.TestCase):
    """unittest.TestCase that prints its duration, fails (instead of hanging
    the suite) after PGPROXY_TEST_TIMEOUT seconds, and when it fails prints
    the part of every registered log (server, proxies) written during it."""

    def run(self, result=None):
        old = signal.signal(signal.SIGALRM, _on_alarm)
        signal.alarm(TEST_TIMEOUT)
        try:
            return self._run_logged(result)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)

    def _run_logged(self, result):
        if result is None:
            result = self.defaultTestResult()
        before = len(result.failures) + len(result.errors)
        skipped = len(getattr(result, "skipped", ()))
        marks = LOGS.marks()
        t0 = time.monotonic()
        printed = []

        def print_time():
            # Cleanups run before the runner prints "ok", so the time lands
            # on the verdict's line; a failure or skip is printed earlier, so
            # its time goes below instead.
            if len(result.failures) + len(result.errors) == before and \
                    len(getattr(result, "skipped", ())) == skipped:
                sys.stderr.write("(%.2fs) " % (time.monotonic() - t0))
                printed.append(True)
        self.addCleanup(print_time)
        super().run(result)
        if not printed:
            sys.stderr.write("    (took %.2fs)\n" % (time.monotonic() - t0))
        if len(result.failures) + len(result.errors) > before:
            LOGS.dump(marks)
        return result


# --------------------------------------------------------------------------
# Small helpers

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tcp_listening(port, host="127.0.0.1"):
    """True when some socket is in LISTEN state on host:port (read from
    /proc/net/tcp, so probing creates no connection the proxy would log)."""
    want_port = "%04X" % port
    want_hosts = {socket.inet_aton(host)[::-1].hex().upper(), "00000000"}
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                fields = line.split()
                addr, p = fields[1].split(":")
                if p == want_port and fields[3] == "0A" and addr in want_hosts:
                    return True
    except OSError:
        pass
    return False


def wait_for(pred, timeout, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def pg_bindir():
    env = os.environ.get("PGPROXY_PG_BINDIR")
    if env:
        return env
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True,
                             text=True, check=True).stdout.strip()
        if os.path.exists(os.path.join(out, "initdb")):
            return out
    except (OSError, subprocess.CalledProcessError):
        pass
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[-3]) if p.split("/")[-3].isdigit() else 0)
    if not cands:
        raise RuntimeError("no PostgreSQL server binaries found (install postgresql-15)")
    return os.path.dirname(cands[-1])


def _ensure_service_user():
    """The OS user that owns the cluster when we are root."""
    for name in ("postgres", "pgproxytest"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            pass
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                    "/usr/sbin/nologin", "pgproxytest"], check=True)
    return "pgproxytest"


def _chown_tree(path, user):
    pw = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for n in files:
            os.chown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)


def client_env(port, user=ADMIN_USER, dbname="postgres", password=None,
               host="127.0.0.1", extra=None):
    """Environment for libpq clients: the caller's environment without any
    PG* variable, then the given connection parameters."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PG") and not k.startswith("PGPROXY")}
    env.update(PGHOST=host, PGPORT=str(port), PGUSER=user, PGDATABASE=dbname,
               PGCONNECT_TIMEOUT="10")
    if password is None:
        password = PASSWORDS.get(user)
    if password:
        env["PGPASSWORD"] = password
    if extra:
        env.update(extra)
    return env


def psql(port, sql=None, *, user=ADMIN_USER, dbname="postgres", password=None,
         input=None, args=(), env=None, timeout=120, check=True):
    """Run psql -X -A -t against 127.0.0.1:port. Returns CompletedProcess
    (text); raises AssertionError with stderr when check and it fails."""
    cmd = [os.path.join(pg_bindir(), "psql"), "-X", "-A", "-t", "-q",
           "-v", "ON_ERROR_STOP=1"]
    if sql is not None:
        cmd += ["-c", sql]
    cmd += list(args)
    p = subprocess.run(cmd, input=input, capture_output=True,
                       env=client_env(port, user, dbname, password, extra=env),
                       timeout=timeout, text=not isinstance(input, bytes))
    if check and p.returncode != 0:
        raise AssertionError("psql %r failed (rc=%d): %s" % (
            cmd[7:], p.returncode, p.stderr))
    return p


class PgbenchResult:
    def __init__(self, proc, stdout, stderr):
        self.returncode = proc.returncode if hasattr(proc, "returncode") else proc
        self.stdout = stdout
        self.stderr = stderr
        out = stdout + "\n" + stderr
        m = re.search(r"number of transactions actually processed: (\d+)", out)
        self.processed = int(m.group(1)) if m else None
        m = re.search(r"number of failed transactions: (\d+)", out)
        self.failed = int(m.group(1)) if m else None
        m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
        self.tps = float(m.group(1)) if m else None
        # Transactions aborted by errors also show up as client errors in
        # stderr ("client 0 script 0 aborted ...").
        self.aborted_clients = len(re.findall(r"client \d+ aborted", out))

    def ok(self):
        return (self.returncode == 0 and self.processed and self.processed > 0
                and self.failed == 0 and self.aborted_clients == 0)

    def __repr__(self):
        return "<pgbench rc=%s processed=%s failed=%s tps=%s>\n%s\n%s" % (
            self.returncode, self.processed, self.failed, self.tps,
            self.stdout[-3000:], self.stderr[-3000:])


def pgbench_cmd(args):
    return [os.path.join(pg_bindir(), "pgbench")] + list(args)


def pgbench(port, args, *, user=ADMIN_USER, dbname="postgres", password=None,
            env=None, timeout=300):
    p = subprocess.run(pgbench_cmd(args), capture_output=True, text=True,
                       env=client_env(port, user, dbname, password, extra=env),
                       timeout=timeout)
    return PgbenchResult(p, p.stdout, p.stderr)


def pgbench_start(port, args, *, user=ADMIN_USER, dbname="postgres",
                  password=None, env=None):
    """Start pgbench in the background; finish with pgbench_finish(proc)."""
    return subprocess.Popen(pgbench_cmd(args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env=client_env(port, user, dbname, password, extra=env))


def pgbench_finish(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    return PgbenchResult(proc, out, err)


def connect(port, user=ADMIN_USER, dbname="postgres", password=None, **kw):
    """psycopg 3 connection over TCP to 127.0.0.1:port."""
    import psycopg
    if password is None:
        password = PASSWORDS.get(user)
    params = dict(host="127.0.0.1", port=port, user=user, dbname=dbname,
                  connect_timeout=10)
    if password:
        params["password"] = password
    params.update(kw)
    return psycopg.connect(**params)


def proc_status(pid):
    """/proc/<pid>/status as a dict of kB values for the Vm* lines."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            v = v.strip()
            if v.endswith(" kB"):
                out[k] = int(v[:-3])
    return out


def proc_cpu_ticks(pid):
    """utime + stime of pid in clock ticks (/proc/<pid>/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    fields = data[data.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])


def binary_is_sanitized(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    return b"__asan_init" in data or b"__ubsan_handle" in data


# --------------------------------------------------------------------------
# Cluster

class Cluster:
    """A throwaway PostgreSQL cluster in a temporary directory.

    Roles: `postgres` (superuser, scram-sha-256 password), `md5user` (md5
    password, md5 hba line), `trustuser` (trust hba line). Connections over
    TCP on 127.0.0.1 only; the Unix socket lives in the temp directory."""

    def __init__(self, name="pgproxy-it"):
        self.bindir = pg_bindir()
        self.tmpdir = tempfile.mkdtemp(prefix=name + "-")
        os.chmod(self.tmpdir, 0o755)
        self.datadir = os.path.join(self.tmpdir, "data")
        self.sockdir = os.path.join(self.tmpdir, "sock")
        self.logfile = os.path.join(self.tmpdir, "postgres.log")
        os.mkdir(self.sockdir)
        self.port = free_port()
        self.host = "127.0.0.1"
        self.os_user = _ensure_service_user() if os.geteuid() == 0 else None
        if self.os_user:
            _chown_tree(self.tmpdir, self.os_user)
        LOGS.add(self.logfile, "postgres server log")
        self._running = False
        atexit.register(self._atexit)

    # -- process control ---------------------------------------------------
    def _run(self, cmd, timeout=120, check=True):
        full = [os.path.join(self.bindir, cmd[0])] + cmd[1:]
        if self.os_user:
            full = ["runuser", "-u", self.os_user, "--"] + full
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        p = subprocess.run(full, cwd=self.tmpdir, env=env, capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise RuntimeError("%s failed (rc=%d):\n%s\n%s" % (
                " ".join(full), p.returncode, p.stdout, p.stderr))
        return p

    def init(self):
        t0 = time.monotonic()
        self._run(["initdb", "-D", self.datadir, "-U", ADMIN_USER,
                   "--auth-local=trust", "--auth-host=scram-sha-256",
                   "--encoding=UTF8", "--no-locale", "--no-sync"])
        conf = [
            "listen_addresses = '127.0.0.1'",
            "port = %d" % self.port,
            "unix_socket_directories = '%s'" % self.sockdir,
            "max_connections = 200",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
            "ssl = off",
            "shared_buffers = 128MB",
            "password_encryption = 'scram-sha-256'",
            "log_line_prefix = '%m [%p] %q%u@%d/%a '",
            "log_connections = on",
            "log_disconnections = on",
            "log_min_duration_statement = -1",
        ]
        with open(os.path.join(self.datadir, "postgresql.conf"), "a") as f:
            f.write("\n# pgproxy integration harness\n" + "\n".join(conf) + "\n")
        hba = [
            "local all all trust",
            "host all %s 127.0.0.1/32 trust" % TRUST_USER,
            "host all %s 127.0.0.1/32 md5" % MD5_USER,
            "host all all 127.0.0.1/32 scram-sha-256",
        ]
        with open(os.path.join(self.datadir, "pg_hba.conf"), "w") as f:
            f.write("\n".join(hba) + "\n")
        self.start()
        self.admin_sql_socket([
            "ALTER ROLE %s PASSWORD '%s'" % (ADMIN_USER, ADMIN_PASSWORD),
            "SET password_encryption = 'md5'",
            "CREATE ROLE %s LOGIN PASSWORD '%s'" % (MD5_USER, MD5_PASSWORD),
            "RESET password_encryption",
            "CREATE ROLE %s LOGIN" % TRUST_USER,
        ])
        log("cluster: PostgreSQL in %s on port %d ready in %.1fs" % (
            self.tmpdir, self.port, time.monotonic() - t0))
        return self

    def admin_sql_socket(self, statements, dbname="postgres"):
        """Run statements as the superuser over the Unix socket (trust)."""
        cmd = [os.path.join(self.bindir, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
               "-h", self.sockdir, "-p", str(self.port), "-U", ADMIN_USER,
               "-d", dbname]
        for s in statements:
            cmd += ["-c", s]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("admin SQL failed: %s" % p.stderr)
        return p.stdout

    def create_database(self, name, owner=ADMIN_USER):
        self.admin_sql_socket(["CREATE DATABASE %s OWNER %s" % (name, owner)])

    def start(self):
        self._run(["pg_ctl", "-D", self.datadir, "-l", self.logfile, "-w",
                   "-t", "60", "-s", "start"])
        self._running = True

    def stop(self, mode="fast"):
        self._run(["pg_ctl", "-D", self.datadir, "-m", mode, "-w", "-t", "60",
                   "-s", "stop"])
        self._running = False

    def restart(self, mode="fast"):
        self.stop(mode)
        self.start()

    def is_running(self):
        p = self._run(["pg_ctl", "-D", self.datadir, "status"], check=False)
        return p.returncode == 0

    def dsn(self, port=None, user=ADMIN_USER, dbname="postgres", password=None):
        if password is None:
            password = PASSWORDS.get(user)
        s = "host=127.0.0.1 port=%d user=%s dbname=%s connect_timeout=10" % (
            port or self.port, user, dbname)
        if password:
            s += " password=%s" % password
        return s

    def connect(self, user=ADMIN_USER, dbname="postgres", **kw):
        """Direct (not through any proxy) psycopg connection."""
        return connect(self.port, user=user, dbname=dbname, **kw)

    def backend_alive(self, pid):
        with self.connect(autocommit=True) as c:
            return c.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s",
                             (pid,)).fetchone()[0] > 0

    def destroy(self):
        if self._running:
            try:
                self.stop("immediate")
            except Exception as e:  # noqa: BLE001 - best effort at teardown
                log("cluster stop failed: %s" % e)
        if KEEP_TMP:
            log("cluster: kept %s" % self.tmpdir)
        else:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def _atexit(self):
        if self._running:
            try:
                self.stop("immediate")
            except Exception:  # noqa: BLE001
                pass


# --------------------------------------------------------------------------
# Proxy

_SECTIONS = {}


def config_sections(binary):
    """Sections ("proxy", "admin", ...) that `binary --check-config` prints:
    pgproxy rejects unknown PGPROXY_* variables, so the harness only sets
    those the binary knows."""
    if binary not in _SECTIONS:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PGPROXY")}
        try:
            out = subprocess.run([binary, "--check-config"], env=env, cwd="/",
                                 capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        _SECTIONS[binary] = set(re.findall(r"^\[([a-z_]+)\]", out, re.M))
    return _SECTIONS[binary]


_HELP = {}


def binary_help(binary):
    """`binary --help` output (stdout and stderr), cached per binary: the
    harness passes flags such as --admin only to binaries that list them."""
    if binary not in _HELP:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PGPROXY")}
        try:
            p = subprocess.run([binary, "--help"], env=env, cwd="/",
                               capture_output=True, text=True, timeout=30)
            _HELP[binary] = p.stdout + p.stderr
        except (OSError, subprocess.TimeoutExpired):
            _HELP[binary] = ""
    return _HELP[binary]


def default_pgproxy_bin():
    return os.environ.get("PGPROXY_BIN") or os.path.join(REPO, "build", "pgproxy")


class Proxy:
    """pgproxy under test, listening on a free 127.0.0.1 port.

    stderr goes to a file registered for printing on failure. stop() sends
    SIGTERM and asserts exit code 0; check() asserts the process is alive
    and that no sanitizer report appeared.

    Admin HTTP: every proxy gets its own free admin port (admin_port, or
    the one given).  admin_via says how it is handed over: "auto" = the
    --admin flag when `pgproxy --help` lists it, and PGPROXY_ADMIN_LISTEN
    when the binary knows an [admin] section; "flag" / "env" = only that
    one; "none" = neither (a test configures it itself, e.g. in a config
    file).  http_get() talks to it."""

    def __init__(self, upstream, *, env=None, args=(), binary=None,
                 log_level=None, name="pgproxy", admin_port=None, admin_via="auto"):
        if isinstance(upstream, Cluster):
            upstream = "127.0.0.1:%d" % upstream.port
        self.upstream = upstream
        self.binary = binary or default_pgproxy_bin()
        self.extra_env = dict(env or {})
        self.extra_args = list(args)
        self.log_level = log_level or os.environ.get("PGPROXY_TEST_LOG_LEVEL", "info")
        self.tmpdir = tempfile.mkdtemp(prefix=name + "-")
        self.logfile = os.path.join(self.tmpdir, "stderr.log")
        self.port = None
        self.admin_port = None
        self._fixed_admin_port = admin_port
        if admin_via not in ("auto", "flag", "env", "none"):
            raise ValueError("admin_via: %r" % admin_via)
        self.admin_via = admin_via
        self.proc = None
        self.returncode = None
        self.sanitized = binary_is_sanitized(self.binary)
        LOGS.add(self.logfile, "%s stderr" % name)
        atexit.register(self._atexit)

    @property
    def pid(self):
        return self.proc.pid

    def start(self, timeout=15):
        if not os.access(self.binary, os.X_OK):
            raise AssertionError("pgproxy binary %s not found or not executable "
                                 "(build it, or set PGPROXY_BIN)" % self.binary)
        self.port = free_port()
        self.admin_port = self._fixed_admin_port or free_port()
        # The proxy gets a clean PGPROXY_* namespace: nothing from the caller's
        # environment (PGPROXY_BIN included) can change its configuration.
        env = {k: v for k, v in os.environ.items() if not k.startswith("PGPROXY")}
        if self.admin_via in ("auto", "env") and "admin" in config_sections(self.binary):
            # Never the default admin port: proxies of one run (or of two
            # runs on one machine) must not collide.
            env["PGPROXY_ADMIN_LISTEN"] = "127.0.0.1:%d" % self.admin_port
        if "slow_log" in config_sections(self.binary):
            # The default sqlite slow log is a file in the working directory:
            # keep each proxy's in its own temporary directory.
            env["PGPROXY_SLOW_LOG_SQLITE_PATH"] = os.path.join(self.tmpdir, "pgproxy.db")
        if self.sanitized:
            # Keep ASan's quarantine small so memory-bound tests measure the
            # proxy, not freed chunks parked by the sanitizer.
            env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") +
                                   ":quarantine_size_mb=8").lstrip(":")
        env.update(self.extra_env)
        cmd = [self.binary, "--listen", "127.0.0.1:%d" % self.port,
               "--upstream", self.upstream, "--log-level", self.log_level]
        if (self.admin_via in ("auto", "flag") and "--admin" not in self.extra_args
                and "--admin" in binary_help(self.binary)):
            cmd += ["--admin", "127.0.0.1:%d" % self.admin_port]
        cmd += self.extra_args
        self.cmd = cmd
        self._log = open(self.logfile, "ab")
        self._log.write(("$ %s\n" % " ".join(cmd)).encode())
        self._log.flush()
        # cwd is the temp dir: a relative slow_log.sqlite_path lands there.
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log,
                                     cwd=self.tmpdir, env=env)
        deadline = time.monotonic() + timeout
        while not tcp_listening(self.port):
            if self.proc.poll() is not None:
                self.returncode = self.proc.returncode
                raise AssertionError("pgproxy exited with %d before listening:\n%s" % (
                    self.proc.returncode, self.stderr()))
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("pgproxy not listening on %d after %ss:\n%s" % (
                    self.port, timeout, self.stderr()))
            time.sleep(0.01)
        return self

    def http(self, method, path, headers=None, timeout=10.0):
        """One HTTP request to the admin port -> (status, headers as a dict
        with lower-case names, body bytes)."""
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        try:
            c.request(method, path, headers=dict(headers or {}))
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def http_get(self, path, headers=None, timeout=10.0):
        return self.http("GET", path, headers, timeout)

    def wait_admin(self, timeout=10.0):
        """Wait until the admin port listens (it may come up after the proxy
        port)."""
        wait_for(lambda: tcp_listening(self.admin_port), timeout,
                 what="pgproxy admin port %d" % self.admin_port)

    def stderr(self):
        try:
            with open(self.logfile, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def check(self):
        """Assert the proxy is running and its stderr has no sanitizer report."""
        err = self.stderr()
        for m in SANITIZER_MARKERS:
            if m in err:
                raise AssertionError("sanitizer report in pgproxy stderr (%s)" % m)
        if not self.alive():
            raise AssertionError("pgproxy died (exit %s)" % self.proc.returncode)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout):
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def stop(self, timeout=10, expect_rc=0):
        """SIGTERM; assert exit within timeout with expect_rc and no sanitizer
        report. Returns seconds taken."""
        if self.proc is None:
            return 0.0
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        rc = self.wait(timeout)
        took = time.monotonic() - t0
        if rc is None:
            self.kill()
            raise AssertionError("pgproxy did not exit within %ss of SIGTERM" % timeout)
        self._log.close()
        err = self.stderr()
        for m in SANITIZER_MARKERS:
            if m in err:
                raise AssertionError("sanitizer report in pgproxy stderr (%s)" % m)
        if expect_rc is not None and rc != expect_rc:
            raise AssertionError("pgproxy exited with %d (expected %d)" % (rc, expect_rc))
        return took

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.returncode = self.proc.wait()

    def vm_hwm_kb(self):
        return proc_status(self.proc.pid)["VmHWM"]

    def vm_rss_kb(self):
        return proc_status(self.proc.pid)["VmRSS"]

    def cpu_ticks(self):
        return proc_cpu_ticks(self.proc.pid)

    def cleanup(self):
        self.kill()
        if getattr(self, "_log", None) is not None:
            self._log.close()
        if not KEEP_TMP:
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def _atexit(self):
        self.kill()


# --------------------------------------------------------------------------
# Raw protocol client

class ServerError(Exception):
    def __init__(self, fields):
        self.fields = fields
        super().__init__("%s %s: %s" % (fields.get("V") or fields.get("S"),
                                        fields.get("C"), fields.get("M")))

    @property
    def sqlstate(self):
        return self.fields.get("C")


class ConnectionClosed(Exception):
    pass


def parse_error_fields(payload):
    """ErrorResponse / NoticeResponse body -> {field code: value}."""
    fields = {}
    i = 0
    while i < len(payload) and payload[i] != 0:
        code = chr(payload[i])
        end = payload.index(b"\0", i + 1)
        fields[code] = payload[i + 1:end].decode("utf-8", "replace")
        i = end + 1
    return fields


def startup_packet(user, database="postgres", protocol=PROTOCOL_3_0, **params):
    body = struct.pack("!I", protocol)
    kv = dict(user=user, database=database)
    kv.update(params)
    for k, v in kv.items():
        body += k.encode() + b"\0" + str(v).encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


def ssl_request():
    return struct.pack("!II", 8, SSL_REQUEST_CODE)


def gssenc_request():
    return struct.pack("!II", 8, GSSENC_REQUEST_CODE)


def cancel_request(pid, key):
    return struct.pack("!IIII", 16, CANCEL_REQUEST_CODE, pid, key)


def message(type_byte, body=b""):
    return type_byte + struct.pack("!I", len(body) + 4) + body


def query_message(sql):
    return message(b"Q", sql.encode() + b"\0")


class RawConn:
    """A PostgreSQL protocol client on a plain socket, for what drivers will
    not send: garbage, SSLRequest pipelining, protocol 3.2, huge lengths."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0, rcvbuf=None):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect((host, port))
        self.buf = bytearray()
        self.pos = 0
        self.backend_key = None
        self.params = {}
        self.auth_codes = []
        self.messages = []  # (type, payload) seen during login

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def settimeout(self, t):
        self.sock.settimeout(t)

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n):
        """Make at least n unread bytes available in self.buf[self.pos:]."""
        while len(self.buf) - self.pos < n:
            try:
                chunk = self.sock.recv(max(65536, n - (len(self.buf) - self.pos)))
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise ConnectionClosed("connection closed by peer")
            if self.pos > (1 << 20):
                del self.buf[:self.pos]
                self.pos = 0
            self.buf += chunk

    def _take(self, n):
        out = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return out

    def recv_exact(self, n):
        self._fill(n)
        return self._take(n)

    def read_byte(self):
        return self.recv_exact(1)

    def read_message(self):
        """-> (type as 1-char str, payload bytes)."""
        self._fill(5)
        t = chr(self.buf[self.pos])
        (length,) = struct.unpack_from("!I", self.buf, self.pos + 1)
        if length < 4 or length > 1 << 30:
            raise AssertionError("server sent bad length %d" % length)
        self._fill(1 + length)
        self.pos += 5
        return t, self._take(length - 4)

    def read_error_or_close(self, timeout=5.0):
        """Read until an ErrorResponse (-> fields dict) or the peer closes
        (-> None). Raises AssertionError when neither happens in time."""
        self.sock.settimeout(timeout)
        try:
            while True:
                t, payload = self.read_message()
                if t == "E":
                    return parse_error_fields(payload)
        except ConnectionClosed:
            return None
        except socket.timeout:
            raise AssertionError("no ErrorResponse and no close within %.1fs" % timeout)

    def expect_closed(self, timeout=5.0):
        """Assert the peer closes the connection (EOF) within timeout,
        ignoring whatever it sends first."""
        self.sock.settimeout(timeout)
        try:
            while True:
                self.read_message()
        except ConnectionClosed:
            return True
        except socket.timeout:
            raise AssertionError("connection still open after %.1fs" % timeout)

    # -- login ---------------------------------------------------------------
    def login(self, user, password=None, database="postgres",
              protocol=PROTOCOL_3_0, send_startup=True, **params):
        """Startup + authentication (trust, cleartext, md5, SCRAM-SHA-256)
        until ReadyForQuery. Raises ServerError on an ErrorResponse."""
        if password is None:
            password = PASSWORDS.get(user)
        if send_startup:
            self.send(startup_packet(user, database, protocol, **params))
        scram = None
        while True:
            t, p = self.read_message()
            self.messages.append((t, p))
            if t == "E":
                raise ServerError(parse_error_fields(p))
            if t == "R":
                (code,) = struct.unpack("!I", p[:4])
                self.auth_codes.append(code)
                if code == 0:
                    pass
                elif code == 3:
                    self.send(message(b"p", password.encode() + b"\0"))
                elif code == 5:
                    salt = p[4:8]
                    inner = hashlib.md5((password + user).encode()).hexdigest()
                    outer = hashlib.md5(inner.encode() + salt).hexdigest()
                    self.send(message(b"p", b"md5" + outer.encode() + b"\0"))
                elif code == 10:
                    mechs = [m for m in p[4:].split(b"\0") if m]
                    if b"SCRAM-SHA-256" not in mechs:
                        raise AssertionError("no SCRAM-SHA-256 in %r" % mechs)
                    scram = _Scram(password)
                    first = scram.client_first()
                    self.send(message(b"p", b"SCRAM-SHA-256\0" +
                                      struct.pack("!I", len(first)) + first))
                elif code == 11:
                    self.send(message(b"p", scram.client_final(p[4:])))
                elif code == 12:
                    scram.verify_server_final(p[4:])
                else:
                    raise AssertionError("unsupported auth request %d" % code)
            elif t == "S":
                k, v, _ = p.split(b"\0", 2)
                self.params[k.decode()] = v.decode()
            elif t == "K":
                self.backend_key = struct.unpack("!II", p[:8])
            elif t == "Z":
                return self

    def simple_query(self, sql):
        """-> (rows as lists of bytes/None, command tags). ServerError on error
        (after draining to ReadyForQuery)."""
        self.send(query_message(sql))
        rows, tags, err = [], [], None
        while True:
            t, p = self.read_message()
            if t == "D":
                rows.append(parse_data_row(p))
            elif t == "C":
                tags.append(p.rstrip(b"\0").decode())
            elif t == "E":
                err = parse_error_fields(p)
            elif t == "Z":
                if err:
                    raise ServerError(err)
                return rows, tags


def parse_data_row(p):
    (n,) = struct.unpack("!H", p[:2])
    i, cols = 2, []
    for _ in range(n):
        (ln,) = struct.unpack("!i", p[i:i + 4])
        i += 4
        if ln < 0:
            cols.append(None)
        else:
            cols.append(p[i:i + ln])
            i += ln
    return cols


class _Scram:
    """Client side of SCRAM-SHA-256 (RFC 5802/7677), no channel binding."""

    def __init__(self, password):
        self.password = password.encode()
        self.nonce = base64.b64encode(os.urandom(18)).decode()

    def client_first(self):
        self.first_bare = "n=,r=" + self.nonce
        return ("n,," + self.first_bare).encode()

    def client_final(self, server_first):
        self.server_first = server_first.decode()
        attrs = dict(kv.split("=", 1) for kv in self.server_first.split(","))
        if not attrs["r"].startswith(self.nonce):
            raise AssertionError("SCRAM nonce mismatch")
        salted = hashlib.pbkdf2_hmac("sha256", self.password,
                                     base64.b64decode(attrs["s"]), int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = "c=biws,r=" + attrs["r"]
        self.auth_message = ",".join([self.first_bare, self.server_first,
                                      without_proof]).encode()
        sig = hmac.new(stored_key, self.auth_message, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, sig))
        self.server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        return (without_proof + ",p=" + base64.b64encode(proof).decode()).encode()

    def verify_server_final(self, data):
        attrs = dict(kv.split("=", 1) for kv in data.decode().split(","))
        expect = hmac.new(self.server_key, self.auth_message, "sha256").digest()
        if base64.b64decode(attrs.get("v", "")) != expect:
            raise AssertionError("SCRAM server signature mismatch")


def call_with_timeout(fn, timeout, what="call"):
    """Run fn() in a daemon thread so a hung client cannot hang the suite.
    -> (value, exception or None, seconds taken); AssertionError when fn is
    still running after timeout."""
    import threading
    box = {}

    def target():
        t0 = time.monotonic()
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box["exc"] = e
        box["took"] = time.monotonic() - t0

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(timeout)
    if th.is_alive():
        raise AssertionError("%s still running after %.1fs (hang)" % (what, timeout))
    return box.get("value"), box.get("exc"), box["took"]


def assert_cancel_ends_sleep(tc, conn, sleep_s):
    """On psycopg connection conn (autocommit), run SELECT pg_sleep(sleep_s)
    and conn.cancel() it 0.5 s in: the query must end with 57014 within 2 s
    of the cancel, and conn must stay usable (assertions on TestCase tc)."""
    import threading
    import psycopg
    fired = {}

    def cancel():
        fired["t"] = time.monotonic()
        conn.cancel()
    timer = threading.Timer(0.5, cancel)
    timer.start()
    try:
        _, exc, _ = call_with_timeout(
            lambda: conn.execute("SELECT pg_sleep(%s)" % sleep_s), 8, "cancelled pg_sleep")
    finally:
        timer.cancel()
    tc.assertIsInstance(exc, psycopg.errors.QueryCanceled, repr(exc))
    tc.assertEqual(exc.sqlstate, "57014")
    tc.assertLess(time.monotonic() - fired["t"], 2.0)
    tc.assertEqual(conn.execute("SELECT 'still usable'").fetchone()[0], "still usable")
