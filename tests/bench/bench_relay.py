"""Relay benchmark: pgbench -S through nothing (direct), pgbouncer (session
mode) and pgproxy, interleaved, following docs' BENCHMARKING.md rule:
N >= 5 runs per configuration, each run printed, median and jitter
((max - min) / median / 2 x 100), ratios measured side by side, and each
proxy's own CPU per transaction (utime + stime delta / transactions).

Usage (see --help): /usr/bin/python3 tests/bench/bench_relay.py [options]
or bash tests/bench/bench_relay.sh [options]. Prints a markdown table for
docs/PERFORMANCE.md on stdout (and to --out FILE). A benchmark, not a test.
"""

import argparse
import datetime
import os
import platform
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

    def __init__(self, cluster):
        self.cluster = cluster
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
        with open(ini, "w") as f:
            f.write("\n".join([
                "[databases]",
                "* = host=127.0.0.1 port=%d" % self.cluster.port,
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
                "",
            ]))
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
    def __init__(self, name, port, pid=None):
        self.name, self.port, self.pid = name, port, pid


# --workload slow10: ten statements per transaction, one of which sleeps 1 ms, so with
# profiling.slow_query_threshold_ms = 1 a tenth of the statements are slow-query records.
SLOW10_SCRIPT = "\n".join(
    ["\\set aid random(1, 100000)"] +
    ["SELECT abalance FROM pgbench_accounts WHERE aid = :aid;"] * 9 +
    ["SELECT pg_sleep(0.001);"]) + "\n"
WORKLOAD = {"name": "select", "script": None}


def run_pgbench(cfg, mode, clients, seconds, dbname):
    args = ["-n", "-M", mode, "-c", str(clients), "-j", str(clients), "-T", str(seconds)]
    args += ["-f", WORKLOAD["script"]] if WORKLOAD["script"] else ["-S"]
    t0 = h.proc_cpu_ticks(cfg.pid) if cfg.pid else None
    r = h.pgbench(cfg.port, args, dbname=dbname, timeout=seconds * 3 + 60)
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
                         "(slow_log.sink = none)")
    ap.add_argument("--workload", default="select", choices=("select", "slow10"),
                    help="select: pgbench -S; slow10: 10 statements per transaction, one "
                         "sleeping 1 ms (slow-log configs then log 10 %% of the statements)")
    ap.add_argument("--pgproxy", default=h.default_pgproxy_bin(), help="pgproxy binary")
    ap.add_argument("--out", help="also write the markdown table to this file")
    opts = ap.parse_args()

    wanted = [c.strip() for c in opts.configs.split(",") if c.strip()]
    have_pgproxy = os.access(opts.pgproxy, os.X_OK)
    if have_pgproxy and "pgproxy-noprof" in wanted and \
            "profiling" not in h.config_sections(opts.pgproxy):
        log("note: this pgproxy has no [profiling] section yet: skipping pgproxy-noprof")
        wanted.remove("pgproxy-noprof")
    if not have_pgproxy:
        dropped = [c for c in wanted if c.startswith("pgproxy")]
        if dropped:
            log("note: no pgproxy binary at %s: skipping %s" % (opts.pgproxy, ", ".join(dropped)))
        wanted = [c for c in wanted if not c.startswith("pgproxy")]
    modes = opts.modes.split(",")
    if opts.workload == "slow10":
        fd, path = tempfile.mkstemp(prefix="pgproxy-bench-", suffix=".sql")
        with os.fdopen(fd, "w") as f:
            f.write(SLOW10_SCRIPT)
        WORKLOAD.update(name="slow10", script=path)
    clients = [int(c) for c in opts.clients.split(",")]

    cluster = h.Cluster(name="pgproxy-bench")
    started = []
    try:
        cluster.init()
        cluster.create_database("bench")
        cluster.create_database("slowlog")
        r = h.pgbench(cluster.port, ["-i", "-s", str(opts.scale), "-q"], dbname="bench",
                      timeout=600)
        if r.returncode != 0:
            raise RuntimeError("pgbench -i failed: %r" % r)
        configs = []
        for name in wanted:
            if name == "direct":
                configs.append(Config("direct", cluster.port))
            elif name == "pgbouncer":
                b = PgBouncer(cluster).start()
                started.append(b)
                configs.append(Config("pgbouncer", b.port, b.pid))
            elif name.startswith("pgproxy"):
                env = {
                    "pgproxy": {},
                    "pgproxy-noprof": {"PGPROXY_PROFILING_ENABLED": "false"},
                    "pgproxy-prod": {"PGPROXY_PROFILING_PRESET": "production"},
                    "pgproxy-pgsink": {"PGPROXY_SLOW_LOG_SINK": "postgres",
                                       "PGPROXY_SLOW_LOG_DSN": cluster.dsn(dbname="slowlog"),
                                       "PGPROXY_PROFILING_SLOW_QUERY_THRESHOLD_MS": "1"},
                    "pgproxy-nosink": {"PGPROXY_SLOW_LOG_SINK": "none",
                                       "PGPROXY_PROFILING_SLOW_QUERY_THRESHOLD_MS": "1"},
                }.get(name)
                if env is None:
                    raise SystemExit("unknown config %r" % name)
                p = h.Proxy(cluster, binary=opts.pgproxy, env=env, log_level="warn",
                            name="pgproxy-bench").start()
                started.append(p)
                configs.append(Config(name, p.port, p.pid))
            else:
                raise SystemExit("unknown config %r" % name)
        log("configs: " + ", ".join("%s(:%d)" % (c.name, c.port) for c in configs))

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

        lines = [
            "### Relay throughput: pgbench %s, %d s runs x %d, interleaved" % (
                "-S" if opts.workload == "select" else "slow10 (10 statements/tx, 1 sleeps 1 ms)",
                opts.seconds, opts.runs),
            "",
            machine_info(h.REPO, opts.pgproxy if have_pgproxy else None) + "; scale %d." % opts.scale,
            "",
            "| mode | clients | config | runs (tps) | median tps | jitter % "
            "| x direct | x pgbouncer | proxy CPU us/tx (median) |",
            "|---|---:|---|---|---:|---:|---:|---:|---:|",
        ]
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
                        fmt_ratio(med[cfg.name], med.get("pgbouncer"))
                        if cfg.name.startswith("pgproxy") else "–",
                        "%.1f" % statistics.median(cpus) if cpus else "–"))
        lines += ["", "jitter = (max - min) / median / 2 x 100; (!) marks jitter > 5 %: "
                  "no win may be claimed from that row."]
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


if __name__ == "__main__":
    main()
