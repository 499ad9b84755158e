"""Relay benchmark: pgbench -S through nothing (direct), pgbouncer (session
mode) and pgproxy, interleaved, following docs' BENCHMARKING.md rule:
N >= 5 runs per configuration, each run printed, median and jitter
((max - min) / median / 2 x 100), ratios measured side by side, and each
proxy's own CPU per transaction (utime + stime delta / transactions).

Usage (see --help): /usr/bin/python3 tests/bench/bench_relay.py [options]
or bash tests/bench/bench_relay.sh [options]. Prints a markdown table for
docs/PERFORMANCE.md on stdout (and to --out FILE). A benchmark, not a test.

Upstream over the Unix socket: every proxied config (pgbouncer, pgproxy and
its variants) also exists with a "-unix" suffix, e.g. pgproxy-unix or
pgbouncer-unix: the same proxy, but it reaches PostgreSQL through the
cluster's Unix socket (pgproxy: proxy.upstream = "unix:<dir>/.s.PGSQL.<port>";
pgbouncer: host=<dir> port=<port>) instead of 127.0.0.1. The client side stays
loopback TCP. So TCP and Unix upstreams are compared interleaved in one
session: --configs pgproxy,pgproxy-unix,pgbouncer,pgbouncer-unix. For a -unix
row the "x pgbouncer" column compares against pgbouncer-unix when that ran,
and a line under the table gives each X-unix / X ratio.

--tls: the cluster runs with ssl = on (a throwaway CA and a server
certificate for DNS:localhost, IP:127.0.0.1, made with the openssl CLI) and
every hop is TLS: pgbench and psql connect with sslmode=require (and the
throwaway CA as sslrootcert, so the certificate is checked too); pgbouncer
gets client_tls_sslmode = require and server_tls_sslmode = require; pgproxy
gets proxy.client_tls = "allow" with the same certificate and
proxy.upstream_tls = "require". Before its runs each config is checked once
through psql: \\conninfo must report an SSL connection (the client hop) and
pg_stat_ssl for the backend must say ssl = t (the hop into PostgreSQL), or
the benchmark stops. PostgreSQL has no TLS on Unix sockets, so --tls refuses
the -unix configs. pgbench -S keeps its connections for the whole run, so
the numbers measure encrypted relaying, not handshakes.
"""

import argparse
import datetime
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness as h  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


class PgBouncer:
    """pgbouncer from the Debian package, session mode, scram auth with a
    plaintext auth_file (so it can also log in to the server with scram),
    run as a non-root user because pgbouncer refuses root."""

    def __init__(self, cluster, tls=None, unix=False):
        self.cluster = cluster
        self.tls = tls        # TlsFiles: client_tls and server_tls = require
        self.unix = unix      # reach the cluster over its Unix socket
        self.tmpdir = tempfile.mkdtemp(prefix="pgbouncer-bench-")
        os.chmod(self.tmpdir, 0o755)
        self.port = h.free_port()
        self.pidfile = os.path.join(self.tmpdir, "pgbouncer.pid")
        self.logfile = os.path.join(self.tmpdir, "pgbouncer.log")
        self.proc = None
        self.pid = None

    def start(self):
        ini = os.path.join(self.tmpdir, "pgbouncer.ini")
        users = os.path.join(self.tmpdir, "userlist.txt")
        with open(users, "w") as f:
            f.write('"%s" "%s"\n' % (h.ADMIN_USER, h.ADMIN_PASSWORD))
        if self.unix:
            target = "host=%s port=%d" % (self.cluster.sockdir, self.cluster.port)
        else:
            target = "host=127.0.0.1 port=%d" % self.cluster.port
        tls = []
        if self.tls:
            tls = [
                "client_tls_sslmode = require",
                "client_tls_key_file = %s" % self.tls.key,
                "client_tls_cert_file = %s" % self.tls.cert,
                "server_tls_sslmode = require",
            ]
        with open(ini, "w") as f:
            f.write("\n".join([
                "[databases]",
                "* = " + target,
                "[pgbouncer]",
                "listen_addr = 127.0.0.1",
                "listen_port = %d" % self.port,
                "unix_socket_dir =",
                "auth_type = scram-sha-256",
                "auth_file = %s" % users,
                "pool_mode = session",
                "max_client_conn = 200",
                "default_pool_size = 50",
                "logfile = %s" % self.logfile,
                "pidfile = %s" % self.pidfile,
                "log_connections = 0",
                "log_disconnections = 0",
                "ignore_startup_parameters = extra_float_digits",
            ] + tls + [""]))
        cmd = [shutil.which("pgbouncer") or "/usr/sbin/pgbouncer", ini]
        if os.geteuid() == 0:
            user = self.cluster.os_user
            h._chown_tree(self.tmpdir, user)
            cmd = ["runuser", "-u", user, "--"] + cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     cwd=self.tmpdir)
        deadline = time.monotonic() + 15
        while not (h.tcp_listening(self.port) and os.path.exists(self.pidfile)):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("pgbouncer did not start:\n" + self.log_text())
            time.sleep(0.05)
        with open(self.pidfile) as f:
            self.pid = int(f.read().strip())
        return self

    def log_text(self):
        try:
            with open(self.logfile) as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
        if self.proc:
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.tmpdir, ignore_errors=True)


class Config:
    """One thing pgbench talks to: port on 127.0.0.1, the proxy's pid (for
    its CPU; None for direct), the libpq environment the clients use (TLS),
    and whether the proxy reaches PostgreSQL over the Unix socket."""

    def __init__(self, name, port, pid=None, client_env=None, unix=False):
        self.name, self.port, self.pid = name, port, pid
        self.client_env = dict(client_env or {})
        self.unix = unix


class TlsFiles:
    """A throwaway CA and a server certificate (SAN DNS:localhost,
    IP:127.0.0.1) signed by it, made with the openssl CLI in dirpath. When
    owner is given (the cluster runs as another user) the files are chowned
    to it; the key is 0600 as PostgreSQL requires. The same certificate
    serves PostgreSQL, pgbouncer and pgproxy."""

    def __init__(self, dirpath, owner=None):
        os.makedirs(dirpath, mode=0o755, exist_ok=True)
        self.dir = dirpath
        self.ca = os.path.join(dirpath, "ca.crt")
        self.ca_key = os.path.join(dirpath, "ca.key")
        self.cert = os.path.join(dirpath, "server.crt")
        self.key = os.path.join(dirpath, "server.key")
        csr = os.path.join(dirpath, "server.csr")
        ext = os.path.join(dirpath, "server.ext")
        with open(ext, "w") as f:
            f.write("basicConstraints = CA:FALSE\n"
                    "keyUsage = digitalSignature, keyEncipherment\n"
                    "extendedKeyUsage = serverAuth\n"
                    "subjectAltName = DNS:localhost, IP:127.0.0.1\n")
        self._openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                       "-subj", "/CN=pgproxy bench CA", "-keyout", self.ca_key,
                       "-out", self.ca])
        self._openssl(["req", "-new", "-newkey", "rsa:2048", "-nodes",
                       "-subj", "/CN=localhost", "-keyout", self.key, "-out", csr])
        self._openssl(["x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.ca_key,
                       "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", self.cert])
        if owner:
            h._chown_tree(dirpath, owner)
        for path in (self.key, self.ca_key):
            os.chmod(path, 0o600)
        for path in (self.ca, self.cert):
            os.chmod(path, 0o644)

    @staticmethod
    def _openssl(args):
        p = subprocess.run(["openssl"] + args, capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("openssl %s failed:\n%s" % (" ".join(args), p.stderr))

    def client_env(self):
        """libpq settings for a client: TLS or nothing, and the throwaway CA
        (also keeps a ~/.postgresql/root.crt from getting in the way)."""
        return {"PGSSLMODE": "require", "PGSSLROOTCERT": self.ca}

    def pgproxy_env(self):
        return {"PGPROXY_PROXY_CLIENT_TLS": "allow",
                "PGPROXY_PROXY_CLIENT_TLS_CERT_FILE": self.cert,
                "PGPROXY_PROXY_CLIENT_TLS_KEY_FILE": self.key,
                "PGPROXY_PROXY_UPSTREAM_TLS": "require"}


# The [proxy] keys --tls sets on pgproxy (PGPROXY_PROXY_<KEY>).
PGPROXY_TLS_KEYS = ("client_tls", "client_tls_cert_file", "client_tls_key_file", "upstream_tls")


def config_keys(binary):
    """"section.key" names that `binary --check-config` prints."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGPROXY")}
    try:
        out = subprocess.run([binary, "--check-config"], env=env, cwd="/",
                             capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return set()
    keys, section = set(), None
    for line in out.splitlines():
        m = re.match(r"^\[([a-z_]+)\]", line)
        if m:
            section = m.group(1)
            continue
        m = re.match(r"^([a-z_]+)\s*=", line)
        if m and section:
            keys.add(section + "." + m.group(1))
    return keys


def enable_cluster_tls(cluster, tls):
    """ssl = on with tls's certificate, then a restart. The settings are
    appended, so they override the harness's ssl = off."""
    conf = os.path.join(cluster.datadir, "postgresql.conf")
    with open(conf, "a") as f:
        f.write("\n# bench_relay --tls\nssl = on\nssl_cert_file = '%s'\n"
                "ssl_key_file = '%s'\n" % (tls.cert, tls.key))
    cluster.restart()


def check_connection(cfg, tls, dbname):
    """Once per config, through it: how the client hop (psql's \\conninfo)
    and the hop into PostgreSQL (pg_stat_ssl, inet_server_addr) look.
    Raises RuntimeError when --tls is on and either hop is not TLS, or when
    a -unix config's backend was reached over TCP (or the other way round).
    Returns (ssl, version, cipher) of the hop into PostgreSQL."""
    sql = ("select s.ssl, coalesce(s.version, ''), coalesce(s.cipher, ''), "
           "coalesce(host(inet_server_addr()), 'unix') "
           "from pg_stat_ssl s where s.pid = pg_backend_pid()")
    r = h.psql(cfg.port, args=["-c", "\\conninfo", "-c", sql], dbname=dbname,
               env=cfg.client_env, timeout=60)
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    client_hop = next((ln for ln in lines if ln.startswith("SSL connection")), None)
    row = next((ln for ln in lines if ln.count("|") == 3), None)
    if row is None:
        raise RuntimeError("connection check via %s: unexpected psql output:\n%s%s" % (
            cfg.name, r.stdout, r.stderr))
    ssl, version, cipher, addr = row.split("|")
    log("  check %-15s client hop: %s; into PostgreSQL: ssl=%s %s %s via %s" % (
        cfg.name, client_hop or "no TLS", ssl, version, cipher,
        "Unix socket" if addr == "unix" else addr))
    if tls and (client_hop is None or ssl != "t"):
        raise RuntimeError("--tls: %s is not TLS on every hop (client hop: %s; "
                           "pg_stat_ssl.ssl = %s)" % (cfg.name, client_hop or "plain", ssl))
    if cfg.unix != (addr == "unix"):
        raise RuntimeError("%s reached PostgreSQL over %s, expected %s" % (
            cfg.name, "the Unix socket" if addr == "unix" else "TCP (%s)" % addr,
            "the Unix socket" if cfg.unix else "TCP"))
    return ssl == "t", version, cipher


# --workload slow10: ten statements per transaction, one of which sleeps 1 ms, so with
# profiling.slow_query_threshold_ms = 1 a tenth of the statements are slow-query records.
SLOW10_SCRIPT = "\n".join(
    ["\\set aid random(1, 100000)"] +
    ["SELECT abalance FROM pgbench_accounts WHERE aid = :aid;"] * 9 +
    ["SELECT pg_sleep(0.001);"]) + "\n"
WORKLOAD = {"name": "select", "script": None}


# pgproxy configs: name -> PGPROXY_* settings (pgproxy-pgsink's DSN is added at start).
PROXY_ENV = {
    "pgproxy": {},
    "pgproxy-noprof": {"PGPROXY_PROFILING_ENABLED": "false"},
    "pgproxy-prod": {"PGPROXY_PROFILING_PRESET": "production"},
    "pgproxy-pgsink": {"PGPROXY_SLOW_LOG_SINK": "postgres",
                       "PGPROXY_PROFILING_SLOW_QUERY_THRESHOLD_MS": "1"},
    "pgproxy-nosink": {"PGPROXY_SLOW_LOG_SINK": "none",
                       "PGPROXY_PROFILING_SLOW_QUERY_THRESHOLD_MS": "1"},
}


def unix_base(name):
    """pgproxy-unix -> pgproxy: the config a -unix config is the Unix-socket twin of."""
    return name[:-len("-unix")] if name.endswith("-unix") else name


def run_pgbench(cfg, mode, clients, seconds, dbname):
    args = ["-n", "-M", mode, "-c", str(clients), "-j", str(clients), "-T", str(seconds)]
    args += ["-f", WORKLOAD["script"]] if WORKLOAD["script"] else ["-S"]
    t0 = h.proc_cpu_ticks(cfg.pid) if cfg.pid else None
    r = h.pgbench(cfg.port, args, dbname=dbname, env=cfg.client_env,
                  timeout=seconds * 3 + 60)
    t1 = h.proc_cpu_ticks(cfg.pid) if cfg.pid else None
    if not r.ok():
        raise RuntimeError("pgbench via %s failed: %r" % (cfg.name, r))
    cpu_us_per_tx = None
    if cfg.pid:
        cpu_us_per_tx = (t1 - t0) / CLK_TCK * 1e6 / r.processed
    return r.tps, r.processed, cpu_us_per_tx


def jitter(values):
    med = statistics.median(values)
    return (max(values) - min(values)) / med / 2 * 100 if med else float("nan")


def fmt_ratio(a, b):
    return "%.3f" % (a / b) if a and b else "–"


def machine_info(repo, pgproxy_bin):
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    rev = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True).stdout.strip() or "uncommitted"
    pgv = subprocess.run([os.path.join(h.pg_bindir(), "postgres"), "--version"],
                         capture_output=True, text=True).stdout.strip()
    pbv = subprocess.run(["pgbouncer", "--version"], capture_output=True,
                         text=True).stdout.split("\n")[0].strip()
    return ("%s; %d cores (%s); kernel %s; %s; %s; pgproxy %s (%s)" % (
        datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), os.cpu_count(), cpu,
        platform.release(), pgv, pbv, rev, pgproxy_bin or "not built"))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=10, help="pgbench -T per run (10)")
    ap.add_argument("--runs", type=int, default=5, help="runs per configuration (5)")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up seconds per configuration (3)")
    ap.add_argument("--clients", default="1,8", help="client counts, -j matches (1,8)")
    ap.add_argument("--modes", default="simple,extended,prepared", help="pgbench -M modes")
    ap.add_argument("--scale", type=int, default=10, help="pgbench -i scale (10)")
    ap.add_argument("--configs", default="direct,pgbouncer,pgproxy",
                    help="comma list of direct, pgbouncer, pgproxy, pgproxy-noprof, "
                         "pgproxy-prod (profiling.preset = production), "
                         "pgproxy-pgsink (slow log into PostgreSQL), pgproxy-nosink "
                         "(slow_log.sink = none); any of them but direct with the "
                         "suffix -unix (e.g. pgproxy-unix, pgbouncer-unix): the proxy "
                         "reaches PostgreSQL over its Unix socket")
    ap.add_argument("--workload", default="select", choices=("select", "slow10"),
                    help="select: pgbench -S; slow10: 10 statements per transaction, one "
                         "sleeping 1 ms (slow-log configs then log 10 %% of the statements)")
    ap.add_argument("--tls", action="store_true",
                    help="TLS on every hop: cluster ssl = on, clients sslmode=require, "
                         "pgbouncer client/server TLS, pgproxy client_tls = allow and "
                         "upstream_tls = require (not with -unix configs)")
    ap.add_argument("--pgproxy", default=h.default_pgproxy_bin(), help="pgproxy binary")
    ap.add_argument("--out", help="also write the markdown table to this file")
    opts = ap.parse_args()

    wanted = [c.strip() for c in opts.configs.split(",") if c.strip()]
    for name in wanted:
        if unix_base(name) not in PROXY_ENV and unix_base(name) not in ("direct", "pgbouncer") \
                or name == "direct-unix":
            raise SystemExit("unknown config %r" % name)
    if opts.tls and any(name.endswith("-unix") for name in wanted):
        raise SystemExit("--tls: PostgreSQL has no TLS on Unix sockets; drop the -unix configs")
    have_pgproxy = os.access(opts.pgproxy, os.X_OK)
    if have_pgproxy and "profiling" not in h.config_sections(opts.pgproxy):
        for name in ("pgproxy-noprof", "pgproxy-noprof-unix"):
            if name in wanted:
                log("note: this pgproxy has no [profiling] section yet: skipping " + name)
                wanted.remove(name)
    if not have_pgproxy:
        dropped = [c for c in wanted if c.startswith("pgproxy")]
        if dropped:
            log("note: no pgproxy binary at %s: skipping %s" % (opts.pgproxy, ", ".join(dropped)))
        wanted = [c for c in wanted if not c.startswith("pgproxy")]
    if opts.tls and any(c.startswith("pgproxy") for c in wanted):
        missing = [k for k in PGPROXY_TLS_KEYS
                   if "proxy." + k not in config_keys(opts.pgproxy)]
        if missing:
            raise SystemExit("--tls: %s does not know proxy.%s (no TLS in this build?); "
                             "use a pgproxy with TLS or drop the pgproxy configs" % (
                                 opts.pgproxy, ", proxy.".join(missing)))
    modes = opts.modes.split(",")
    if opts.workload == "slow10":
        fd, path = tempfile.mkstemp(prefix="pgproxy-bench-", suffix=".sql")
        with os.fdopen(fd, "w") as f:
            f.write(SLOW10_SCRIPT)
        WORKLOAD.update(name="slow10", script=path)
    clients = [int(c) for c in opts.clients.split(",")]

    cluster = h.Cluster(name="pgproxy-bench")
    started = []
    tls = None
    tls_seen = set()  # (version, cipher) of the hops into PostgreSQL
    try:
        cluster.init()
        if opts.tls:
            tls = TlsFiles(os.path.join(cluster.tmpdir, "tls"), owner=cluster.os_user)
            enable_cluster_tls(cluster, tls)
        client_env = tls.client_env() if tls else {}
        cluster.create_database("bench")
        cluster.create_database("slowlog")
        r = h.pgbench(cluster.port, ["-i", "-s", str(opts.scale), "-q"], dbname="bench",
                      timeout=600)
        if r.returncode != 0:
            raise RuntimeError("pgbench -i failed: %r" % r)
        configs = []
        for name in wanted:
            base, unix = unix_base(name), name.endswith("-unix")
            if name == "direct":
                configs.append(Config("direct", cluster.port, client_env=client_env))
            elif base == "pgbouncer":
                b = PgBouncer(cluster, tls=tls, unix=unix).start()
                started.append(b)
                configs.append(Config(name, b.port, b.pid, client_env=client_env, unix=unix))
            else:
                env = dict(PROXY_ENV[base])
                if base == "pgproxy-pgsink":
                    env["PGPROXY_SLOW_LOG_DSN"] = cluster.dsn(dbname="slowlog")
                if tls:
                    env.update(tls.pgproxy_env())
                upstream = cluster
                if unix:
                    upstream = "unix:%s/.s.PGSQL.%d" % (cluster.sockdir, cluster.port)
                p = h.Proxy(upstream, binary=opts.pgproxy, env=env, log_level="warn",
                            name="pgproxy-bench").start()
                started.append(p)
                penv = dict(client_env)
                if tls:
                    # SCRAM channel binding cannot cross a TLS-terminating proxy: libpq's
                    # default (prefer) would be refused (README, "SCRAM through pgproxy").
                    # pgbouncer 1.18 does not check the gs2 flag, so its clients need nothing.
                    penv["PGCHANNELBINDING"] = "disable"
                configs.append(Config(name, p.port, p.pid, client_env=penv, unix=unix))
        log("configs: " + ", ".join("%s(:%d)" % (c.name, c.port) for c in configs))
        for cfg in configs:
            ssl, version, cipher = check_connection(cfg, tls is not None, "bench")
            if ssl:
                tls_seen.add("%s %s" % (version, cipher))

        results = {}  # (mode, clients, config) -> list of (tps, tx, cpu)
        for mode in modes:
            for nc in clients:
                for cfg in configs:
                    if opts.warmup > 0:
                        run_pgbench(cfg, mode, nc, opts.warmup, "bench")
                for run in range(opts.runs):
                    for cfg in configs:  # interleaved: A B C A B C ...
                        tps, tx, cpu = run_pgbench(cfg, mode, nc, opts.seconds, "bench")
                        results.setdefault((mode, nc, cfg.name), []).append((tps, tx, cpu))
                        log("  -M %-8s -c %d  run %d  %-15s %10.1f tps%s" % (
                            mode, nc, run + 1, cfg.name, tps,
                            "  %.1f us CPU/tx" % cpu if cpu is not None else ""))
        for p in started:
            if isinstance(p, h.Proxy):
                try:
                    p.stop()
                except AssertionError as e:
                    log("warning: %s\n%s" % (e, p.stderr()[-4000:]))

        names = [c.name for c in configs]
        lines = [
            "### Relay throughput: pgbench %s, %s%d s runs x %d, interleaved" % (
                "-S" if opts.workload == "select" else "slow10 (10 statements/tx, 1 sleeps 1 ms)",
                "TLS on every hop, " if tls else "", opts.seconds, opts.runs),
            "",
            machine_info(h.REPO, opts.pgproxy if have_pgproxy else None) + "; scale %d." % opts.scale,
            "",
        ]
        if tls:
            how = ["pgbench connects with sslmode=require (sslrootcert = a throwaway CA; "
                   "RSA 2048 server certificate)"]
            if any(unix_base(n) == "pgbouncer" for n in names):
                how.append("pgbouncer: client_tls_sslmode = require, server_tls_sslmode = require")
            if any(n.startswith("pgproxy") for n in names):
                how.append("pgproxy: proxy.client_tls = \"allow\", proxy.upstream_tls = "
                           "\"require\"")
            lines += [
                "**TLS on every hop**: %s; before its runs each config was checked (psql "
                "through it) to be TLS on both hops. Negotiated: %s." % (
                    "; ".join(how), ", ".join(sorted(tls_seen))),
                "",
            ]
        else:
            lines += ["TLS off (plain connections on every hop).", ""]
        if any(c.unix for c in configs):
            lines += ["-unix configs: the proxy reaches PostgreSQL over its Unix socket; "
                      "the others over 127.0.0.1. For -unix rows \"x pgbouncer\" is against "
                      "pgbouncer-unix when that ran.", ""]
        lines += [
            "| mode | clients | config | runs (tps) | median tps | jitter % "
            "| x direct | x pgbouncer | proxy CPU us/tx (median) |",
            "|---|---:|---|---|---:|---:|---:|---:|---:|",
        ]
        unix_pairs = []  # (mode, clients, name, ratio X-unix / X)
        for mode in modes:
            for nc in clients:
                med = {c.name: statistics.median(t for t, _, _ in results[(mode, nc, c.name)])
                       for c in configs}
                for cfg in configs:
                    rs = results[(mode, nc, cfg.name)]
                    tps = [t for t, _, _ in rs]
                    j = jitter(tps)
                    cpus = [c for _, _, c in rs if c is not None]
                    lines.append("| %s | %d | %s | %s | %.0f | %.1f%s | %s | %s | %s |" % (
                        mode, nc, cfg.name, " ".join("%.0f" % t for t in tps), med[cfg.name],
                        j, " (!)" if j > 5 else "",
                        fmt_ratio(med[cfg.name], med.get("direct")) if cfg.name != "direct" else "1",
                        fmt_ratio(med[cfg.name], med.get(
                            "pgbouncer-unix" if cfg.unix and "pgbouncer-unix" in med
                            else "pgbouncer"))
                        if cfg.name.startswith("pgproxy") else "–",
                        "%.1f" % statistics.median(cpus) if cpus else "–"))
                    if cfg.unix and unix_base(cfg.name) in names:
                        unix_pairs.append((mode, nc, cfg.name,
                                           fmt_ratio(med[cfg.name], med[unix_base(cfg.name)])))
        lines += ["", "jitter = (max - min) / median / 2 x 100; (!) marks jitter > 5 %: "
                  "no win may be claimed from that row."]
        if unix_pairs:
            lines += ["", "Unix socket vs TCP upstream (median tps ratio, same session):", ""]
            lines += ["- -M %s -c %d: %s / %s = %s" % (mode, nc, name, unix_base(name), r)
                      for mode, nc, name, r in unix_pairs]
        text = "\n".join(lines) + "\n"
        sys.stdout.write(text)
        if opts.out:
            with open(opts.out, "w") as f:
                f.write(text)
    finally:
        for p in started:
            if isinstance(p, h.Proxy):
                p.cleanup()
            else:
                p.stop()
        cluster.destroy()
        if WORKLOAD["script"]:
            os.unlink(WORKLOAD["script"])


if __name__ == "__main__":
    main()
