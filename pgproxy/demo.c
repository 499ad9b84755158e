/*
 * demo.c - `pgproxy demo`: a throwaway PostgreSQL, pgproxy in front of it,
 * and a small web app's queries through it.
 *
 * Owns, for the duration of one call: a temporary directory (initdb data
 * directory, socket, logs), the PostgreSQL server started there with
 * pg_ctl, the pgproxy child process (this very binary, /proc/self/exe) and
 * one libpq connection through that child.  When running as root, initdb
 * and pg_ctl run as user postgres (or nobody), because PostgreSQL refuses
 * root.  Every child lives in its own process group, so a Ctrl-C at the
 * terminal reaches only this process, which then stops the children in
 * order (pgproxy first, so its exit status can be reported) and removes
 * the directory.  pgproxy also gets PR_SET_PDEATHSIG, so even a SIGKILL of
 * the demo does not leave it behind.
 *
 * Deliberately not done here: any profiling (the child does that), any
 * event loop (this is a short blocking program), any configuration
 * parsing (the child gets its listen/upstream addresses as flags).
 */
#include "pgproxy/demo.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <grp.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

/*
 * What the demo promises next.  Update this one place as features land
 * (and drop it once the dashboard serves real profiles).
 */
#define PGP_DEMO_ADMIN_PORT 9433

#define PGP_DEMO_DEFAULT_PORT 6433
#define PGP_DEMO_PORT_TRIES 100
#define PGP_DEMO_READY_TIMEOUT_MS 15000
#define PGP_DEMO_STOP_TIMEOUT_MS 10000
#define PGP_DEMO_POLL_MS 50
#define PGP_DEMO_SLOW_MS 100.0
#define PGP_DEMO_SQL_BYTES 1024

/* Set by the handler; every wait loop looks at it. */
static volatile sig_atomic_t g_stop_signal;

static void on_demo_signal(int sig)
{
    g_stop_signal = sig;
}

typedef struct demo {
    bool no_wait;
    bool keep;
    int port;                   /* --port, 0 = 6433 or the next free one */

    char bindir[PATH_MAX];
    char dir[PATH_MAX];         /* "" until created */
    char data[PATH_MAX];
    bool drop_privs;            /* initdb/pg_ctl run as run_as */
    char run_as[64];
    uid_t uid;
    gid_t gid;

    int pg_port;
    int proxy_port;
    int admin_port;
    bool pg_start_tried;        /* pg_ctl start ran: stop it in cleanup */
    pid_t proxy_pid;            /* 0 when not running (or reaped) */
    bool proxy_failed;          /* died early, or a nonzero exit status */
    char slow_db[PATH_MAX];     /* the sqlite slow-query log */
    int slow_expected;          /* statements the workload made slow on purpose */
} demo_t;

/* ---- small helpers -------------------------------------------------- */

static int fmt(char *buf, size_t size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

/* Bounded formatting: 0, or -1 when the result did not fit. */
static int fmt(char *buf, size_t size, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(buf, size, format, ap);
    va_end(ap);
    return (n < 0 || (size_t)n >= size) ? -1 : 0;
}

static void say(const char *format, ...) __attribute__((format(printf, 1, 2)));

static void say(const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    vfprintf(stdout, format, ap);
    va_end(ap);
    fflush(stdout);
}

static void complain(const char *format, ...) __attribute__((format(printf, 1, 2)));

static void complain(const char *format, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("pgproxy demo: ", stderr);
    va_start(ap, format);
    vfprintf(stderr, format, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);       /* a signal cuts it short: callers re-check */
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Print the last `max_bytes` of a log file to stderr, indented. */
static void show_log_tail(const char *path, long max_bytes)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size > max_bytes)
            fseek(f, size - max_bytes, SEEK_SET);
        else
            rewind(f);
    }
    fprintf(stderr, "---- %s (end) ----\n", path);
    char line[512];
    while (fgets(line, sizeof(line), f) != NULL)
        fprintf(stderr, "  %s", line);
    fprintf(stderr, "----\n");
    fclose(f);
}

static bool is_executable(const char *dir, const char *name)
{
    char path[PATH_MAX];
    return fmt(path, sizeof(path), "%s/%s", dir, name) == 0 && access(path, X_OK) == 0;
}

static bool has_server_binaries(const char *dir)
{
    return is_executable(dir, "initdb") && is_executable(dir, "pg_ctl") &&
           is_executable(dir, "postgres");
}

/* ---- options -------------------------------------------------------- */

static void print_usage(FILE *out)
{
    fputs("usage: pgproxy demo [--no-wait] [--keep] [--port N]\n"
          "\n"
          "Starts a throwaway PostgreSQL (initdb in a temporary directory), pgproxy\n"
          "in front of it, and runs a small web app's queries through pgproxy:\n"
          "tagged requests, one N+1, slow queries, a prepared statement, an error\n"
          "inside a transaction.  Then waits for Ctrl-C (when stdin is a terminal)\n"
          "and stops everything it started.\n"
          "\n"
          "  --no-wait   clean up right after the workload (for CI)\n"
          "  --keep      keep the temporary directory (data directory and logs)\n"
          "  --port N    pgproxy's listen port (default 6433, or the next free one)\n"
          "  --help      this text\n"
          "\n"
          "PostgreSQL server binaries come from $PGP_PG_BINDIR, `pg_config --bindir`\n"
          "or the newest /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql-15).\n",
          out);
}

static int parse_port(const char *s, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 1 || v > 65535)
        return -1;
    *out = (int)v;
    return 0;
}

/* 0 to run, 1 after --help, -1 on a usage error (already reported). */
static int parse_args(demo_t *d, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *port_arg = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_usage(stdout);
            return 1;
        } else if (strcmp(a, "--no-wait") == 0) {
            d->no_wait = true;
        } else if (strcmp(a, "--keep") == 0) {
            d->keep = true;
        } else if (strcmp(a, "--port") == 0) {
            if (i + 1 >= argc) {
                complain("--port needs a value");
                return -1;
            }
            port_arg = argv[++i];
        } else if (strncmp(a, "--port=", 7) == 0) {
            port_arg = a + 7;
        } else {
            complain("unknown argument \"%s\" (try: pgproxy demo --help)", a);
            return -1;
        }
        if (port_arg != NULL && parse_port(port_arg, &d->port) != 0) {
            complain("--port: \"%s\" is not a port number (1-65535)", port_arg);
            return -1;
        }
    }
    return 0;
}

/* ---- discovery ------------------------------------------------------ */

static int find_bindir(demo_t *d)
{
    const char *env = getenv("PGP_PG_BINDIR");
    if (env != NULL && env[0] != '\0') {
        if (!has_server_binaries(env)) {
            complain("PGP_PG_BINDIR=%s does not hold initdb, pg_ctl and postgres", env);
            return -1;
        }
        return fmt(d->bindir, sizeof(d->bindir), "%s", env);
    }

    /* libpq-dev's pg_config knows the server's bindir even when the server
     * package is missing, hence the check for the binaries themselves. */
    FILE *p = popen("pg_config --bindir 2>/dev/null", "r");
    if (p != NULL) {
        char line[PATH_MAX];
        bool got = fgets(line, sizeof(line), p) != NULL;
        pclose(p);
        if (got) {
            line[strcspn(line, "\r\n")] = '\0';
            if (line[0] != '\0' && has_server_binaries(line))
                return fmt(d->bindir, sizeof(d->bindir), "%s", line);
        }
    }

    glob_t g;
    long best_major = -1;
    if (glob("/usr/lib/postgresql/*/bin", GLOB_ONLYDIR, NULL, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; i++) {
            const char *path = g.gl_pathv[i];
            long major = strtol(path + sizeof("/usr/lib/postgresql/") - 1, NULL, 10);
            if (major > best_major && has_server_binaries(path) &&
                fmt(d->bindir, sizeof(d->bindir), "%s", path) == 0)
                best_major = major;
        }
        globfree(&g);
    }
    if (best_major >= 0)
        return 0;

    complain("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found.\n"
             "  Install them: apt-get install postgresql-15\n"
             "  (or point PGP_PG_BINDIR at a directory that holds them)");
    return -1;
}

/* PostgreSQL refuses to run as root: pick the account it will run as. */
static int resolve_run_as(demo_t *d)
{
    if (geteuid() != 0)
        return 0;
    static const char *const names[] = { "postgres", "nobody" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        struct passwd *pw = getpwnam(names[i]);
        if (pw != NULL && pw->pw_uid != 0) {
            d->drop_privs = true;
            d->uid = pw->pw_uid;
            d->gid = pw->pw_gid;
            return fmt(d->run_as, sizeof(d->run_as), "%s", names[i]);
        }
    }
    complain("running as root, but neither user \"postgres\" nor \"nobody\" exists to run "
             "PostgreSQL as (apt-get install postgresql-15 creates \"postgres\")");
    return -1;
}

static int make_tempdir(demo_t *d)
{
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    char tmpl[PATH_MAX];
    /* The server's socket is <dir>/.s.PGSQL.<port> and sun_path holds 107 bytes;
     * pg_ctl hands -o to a shell, so a quote in the path would break it. */
    if (fmt(tmpl, sizeof(tmpl), "%s/pgproxy-demo-XXXXXX", base) != 0 ||
        strlen(tmpl) > 90 || strchr(tmpl, '\'') != NULL) {
        complain("TMPDIR=%s is too long or contains a quote; try TMPDIR=/tmp", base);
        return -1;
    }
    if (mkdtemp(tmpl) == NULL) {
        complain("cannot create a directory in %s: %s", base, strerror(errno));
        return -1;
    }
    if (fmt(d->dir, sizeof(d->dir), "%s", tmpl) != 0 ||
        fmt(d->data, sizeof(d->data), "%s/data", tmpl) != 0)
        return -1;
    if (d->drop_privs && chown(d->dir, d->uid, d->gid) != 0) {
        complain("cannot hand %s to user %s: %s", d->dir, d->run_as, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- ports ---------------------------------------------------------- */

/* Bind 127.0.0.1:port with SO_REUSEADDR as libuv does; returns the bound
 * port (useful for port 0) or -1 when taken. */
static int try_bind(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    socklen_t len = sizeof(sa);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int got = -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == 0 &&
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        got = ntohs(sa.sin_port);
    close(fd);
    return got;
}

/* The admin HTTP port: 9433 when free, else any free one. */
static int choose_admin_port(demo_t *d)
{
    int p = PGP_DEMO_ADMIN_PORT;
    if (p == d->pg_port || p == d->proxy_port || try_bind(p) != p)
        p = try_bind(0);
    if (p < 0 || p == d->pg_port || p == d->proxy_port) {
        complain("cannot find a free port for the admin HTTP server");
        return -1;
    }
    d->admin_port = p;
    return 0;
}

static int choose_ports(demo_t *d)
{
    d->pg_port = try_bind(0);
    if (d->pg_port < 0) {
        complain("cannot find a free port on 127.0.0.1: %s", strerror(errno));
        return -1;
    }
    if (d->port != 0) {
        if (d->port == d->pg_port || try_bind(d->port) < 0) {
            complain("port %d on 127.0.0.1 is in use; choose another with --port", d->port);
            return -1;
        }
        d->proxy_port = d->port;
        return choose_admin_port(d);
    }
    for (int p = PGP_DEMO_DEFAULT_PORT; p < PGP_DEMO_DEFAULT_PORT + PGP_DEMO_PORT_TRIES; p++) {
        if (p != d->pg_port && try_bind(p) == p) {
            d->proxy_port = p;
            return choose_admin_port(d);
        }
    }
    complain("ports %d-%d on 127.0.0.1 are all in use; choose one with --port",
             PGP_DEMO_DEFAULT_PORT, PGP_DEMO_DEFAULT_PORT + PGP_DEMO_PORT_TRIES - 1);
    return -1;
}

/* ---- children ------------------------------------------------------- */

/*
 * Fork and exec `path` with `argv`, stdin from /dev/null, stdout+stderr
 * appended to `log_path`, cwd the temp dir, in its own process group.
 * drop: run as d->uid/gid.  Returns the pid, or -1.
 */
static pid_t spawn(const demo_t *d, const char *path, char *const argv[],
                   const char *log_path, bool drop, bool die_with_parent)
{
    pid_t pid = -1;
    int null_fd = -1;
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        complain("cannot open %s: %s", log_path, strerror(errno));
        goto out;
    }
    null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0) {
        complain("cannot open /dev/null: %s", strerror(errno));
        goto out;
    }
    pid_t parent = getpid();
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        complain("fork: %s", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        /* Child: only async-signal-safe calls from here to exec. */
        struct sigaction dfl = { .sa_handler = SIG_DFL };
        sigaction(SIGINT, &dfl, NULL);
        sigaction(SIGTERM, &dfl, NULL);
        sigaction(SIGHUP, &dfl, NULL);
        sigaction(SIGPIPE, &dfl, NULL);
        setpgid(0, 0);
        if (die_with_parent &&
            (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent))
            _exit(126);
        if (dup2(null_fd, STDIN_FILENO) < 0 || dup2(log_fd, STDOUT_FILENO) < 0 ||
            dup2(log_fd, STDERR_FILENO) < 0 || chdir(d->dir) != 0)
            _exit(126);
        if (drop && (setgroups(1, &d->gid) != 0 || setgid(d->gid) != 0 ||
                     setuid(d->uid) != 0 || getuid() != d->uid)) {
            dprintf(STDERR_FILENO, "pgproxy demo: cannot switch to uid %u\n", (unsigned)d->uid);
            _exit(126);
        }
        execv(path, argv);
        dprintf(STDERR_FILENO, "pgproxy demo: exec %s: %s\n", path, strerror(errno));
        _exit(127);
    }
out:
    if (log_fd >= 0)
        close(log_fd);
    if (null_fd >= 0)
        close(null_fd);
    return pid;
}

/* Describe a wait status into buf ("exit status 0", "signal 9"). */
static void describe_status(int status, char *buf, size_t size)
{
    if (WIFEXITED(status))
        fmt(buf, size, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        fmt(buf, size, "killed by signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
        fmt(buf, size, "wait status %d", status);
}

/*
 * Wait for a child.  When a stop signal arrives meanwhile and `interruptible`,
 * the child gets one SIGTERM and is still waited for.  Returns 0 when it
 * exited 0, -EINTR when a stop signal cut it short, -1 otherwise.
 */
static int wait_child(pid_t pid, bool interruptible)
{
    int status = 0;
    bool sent = false;
    for (;;) {
        pid_t r = waitpid(pid, &status, 0);
        if (r == pid)
            break;
        if (r < 0 && errno != EINTR)
            return -1;
        if (interruptible && g_stop_signal != 0 && !sent) {
            kill(pid, SIGTERM);
            sent = true;
        }
    }
    if (sent)
        return -EINTR;
    return (WIFEXITED(status) && WEXITSTATUS(status) == 0) ? 0 : -1;
}

/* Run a PostgreSQL tool to completion, output appended to <dir>/<log_name>. */
static int run_tool(const demo_t *d, const char *tool, char *const argv[],
                    const char *log_name, bool interruptible)
{
    char path[PATH_MAX], log_path[PATH_MAX];
    if (fmt(path, sizeof(path), "%s/%s", d->bindir, tool) != 0 ||
        fmt(log_path, sizeof(log_path), "%s/%s", d->dir, log_name) != 0)
        return -1;
    pid_t pid = spawn(d, path, argv, log_path, d->drop_privs, false);
    if (pid < 0)
        return -1;
    return wait_child(pid, interruptible);
}

/* ---- PostgreSQL ----------------------------------------------------- */

static int start_postgres(demo_t *d)
{
    char initdb[PATH_MAX], pg_ctl[PATH_MAX], log_path[PATH_MAX], opts[PATH_MAX + 128];
    if (fmt(initdb, sizeof(initdb), "%s/initdb", d->bindir) != 0 ||
        fmt(pg_ctl, sizeof(pg_ctl), "%s/pg_ctl", d->bindir) != 0 ||
        fmt(log_path, sizeof(log_path), "%s/postgres.log", d->dir) != 0 ||
        fmt(opts, sizeof(opts),
            "-p %d -k '%s' -c listen_addresses=127.0.0.1 -c fsync=off", d->pg_port, d->dir) != 0)
        return -1;

    /* --locale=C: no dependency on which locales the machine generated. */
    char *initdb_argv[] = { initdb, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8",
                            "--locale=C", "-D", d->data, NULL };
    int rc = run_tool(d, "initdb", initdb_argv, "initdb.log", true);
    if (rc != 0) {
        if (rc != -EINTR) {
            char log[PATH_MAX];
            if (d->drop_privs)
                complain("initdb failed running as user %s (it must be able to reach %s; "
                         "if TMPDIR is private, try TMPDIR=/tmp)", d->run_as, d->dir);
            else
                complain("initdb failed");
            if (fmt(log, sizeof(log), "%s/initdb.log", d->dir) == 0)
                show_log_tail(log, 2000);
        }
        return -1;
    }
    if (d->drop_privs)
        say("  initdb                %s (as user %s)\n", d->data, d->run_as);
    else
        say("  initdb                %s\n", d->data);

    char *start_argv[] = { pg_ctl, "-w", "-t", "60", "-D", d->data, "-l", log_path,
                           "-o", opts, "start", NULL };
    /* Not interruptible: a pg_ctl killed halfway could leave a postmaster
     * that has not written its pid file yet, invisible to the cleanup.
     * pg_ctl -t bounds the wait. */
    d->pg_start_tried = true;
    if (run_tool(d, "pg_ctl", start_argv, "pg_ctl.log", false) != 0) {
        complain("PostgreSQL did not start");
        show_log_tail(log_path, 2000);
        return -1;
    }
    if (g_stop_signal != 0)
        return -1;
    say("  postgres              127.0.0.1:%d (log: %s)\n", d->pg_port, log_path);
    return 0;
}

/* The postmaster's pid from its pid file, or 0 when no server is running. */
static pid_t postmaster_pid(const demo_t *d)
{
    char pidfile[PATH_MAX], line[64];
    long pid = 0;
    if (fmt(pidfile, sizeof(pidfile), "%s/postmaster.pid", d->data) != 0)
        return 0;
    FILE *f = fopen(pidfile, "r");
    if (f == NULL)
        return 0;
    if (fgets(line, sizeof(line), f) != NULL)
        pid = strtol(line, NULL, 10);
    fclose(f);
    return pid > 1 ? (pid_t)pid : 0;
}

/*
 * pg_ctl stop -m fast; should that fail, SIGQUIT (immediate shutdown, it
 * takes its children along) and at last SIGKILL to the postmaster.
 * Returns 0 stopped, 1 was not running, -1 had to be killed.
 */
static int stop_postgres(const demo_t *d)
{
    char pg_ctl[PATH_MAX];
    pid_t pid = postmaster_pid(d);
    if (pid == 0)
        return 1;
    if (fmt(pg_ctl, sizeof(pg_ctl), "%s/pg_ctl", d->bindir) != 0)
        return -1;
    char *argv[] = { pg_ctl, "-D", (char *)d->data, "-m", "fast", "-w", "-t", "30", "stop", NULL };
    if (run_tool(d, "pg_ctl", argv, "pg_ctl.log", false) == 0)
        return 0;
    kill(pid, SIGQUIT);
    for (int i = 0; i < 100 && kill(pid, 0) == 0; i++) {
        waitpid(pid, NULL, WNOHANG);    /* in case we are its reaper (pid 1) */
        sleep_ms(PGP_DEMO_POLL_MS);
    }
    if (kill(pid, 0) == 0)
        kill(pid, SIGKILL);
    return -1;
}

/* ---- pgproxy -------------------------------------------------------- */

static void proxy_conninfo(const demo_t *d, char *buf, size_t size)
{
    fmt(buf, size, "host=127.0.0.1 port=%d user=postgres dbname=postgres "
        "application_name=pgproxy-demo connect_timeout=5", d->proxy_port);
}

/* Reap the proxy if it has exited; true when it is gone. */
static bool proxy_exited(demo_t *d)
{
    int status;
    if (d->proxy_pid <= 0)
        return true;
    if (waitpid(d->proxy_pid, &status, WNOHANG) != d->proxy_pid)
        return false;
    char what[96], log[PATH_MAX];
    describe_status(status, what, sizeof(what));
    complain("pgproxy exited unexpectedly (%s)", what);
    if (fmt(log, sizeof(log), "%s/pgproxy.log", d->dir) == 0)
        show_log_tail(log, 3000);
    d->proxy_pid = 0;
    d->proxy_failed = true;
    return true;
}

static int start_proxy(demo_t *d)
{
    char listen[32], upstream[32], admin[32], log[PATH_MAX], conninfo[256];
    if (fmt(listen, sizeof(listen), "127.0.0.1:%d", d->proxy_port) != 0 ||
        fmt(upstream, sizeof(upstream), "127.0.0.1:%d", d->pg_port) != 0 ||
        fmt(admin, sizeof(admin), "127.0.0.1:%d", d->admin_port) != 0 ||
        fmt(log, sizeof(log), "%s/pgproxy.log", d->dir) != 0 ||
        fmt(d->slow_db, sizeof(d->slow_db), "%s/pgproxy.db", d->dir) != 0)
        return -1;
    char *argv[] = { "pgproxy", "--listen", listen, "--upstream", upstream,
                     "--admin", admin, NULL };
    /* The slow-query log goes into the demo's directory (the child inherits this). */
    if (setenv("PGPROXY_SLOW_LOG_SQLITE_PATH", d->slow_db, 1) != 0)
        return -1;
    /* /proc/self/exe: the very binary running this demo, wherever it lives. */
    d->proxy_pid = spawn(d, "/proc/self/exe", argv, log, false, true);
    if (d->proxy_pid < 0) {
        d->proxy_pid = 0;
        return -1;
    }

    /* Ready = a libpq connection attempt through it gets an answer. */
    proxy_conninfo(d, conninfo, sizeof(conninfo));
    double deadline = now_ms() + PGP_DEMO_READY_TIMEOUT_MS;
    for (;;) {
        if (g_stop_signal != 0 || proxy_exited(d))
            return -1;
        PGPing ping = PQping(conninfo);
        if (ping == PQPING_OK)
            break;
        if (ping == PQPING_NO_ATTEMPT || now_ms() > deadline) {
            complain("pgproxy did not accept connections on %s within %d s", listen,
                     PGP_DEMO_READY_TIMEOUT_MS / 1000);
            show_log_tail(log, 3000);
            d->proxy_failed = true;
            return -1;
        }
        sleep_ms(PGP_DEMO_POLL_MS);
    }
    say("  pgproxy               %s -> %s (pid %d, log: %s)\n", listen, upstream,
        (int)d->proxy_pid, log);
    return 0;
}

/*
 * SIGTERM, then wait; a second SIGTERM after the timeout (pgproxy drains
 * open sessions first, and a second signal means "now"), then SIGKILL.
 * Returns 0 when it exited with status 0.
 */
static int stop_proxy(demo_t *d)
{
    if (d->proxy_pid <= 0)
        return d->proxy_failed ? -1 : 0;
    int status = 0;
    pid_t pid = d->proxy_pid;
    int signals[] = { SIGTERM, SIGTERM, SIGKILL };
    bool reaped = false;
    for (size_t s = 0; s < sizeof(signals) / sizeof(signals[0]) && !reaped; s++) {
        if (s > 0)
            say("  pgproxy did not stop within %d s; sending %s\n",
                PGP_DEMO_STOP_TIMEOUT_MS / 1000, signals[s] == SIGKILL ? "SIGKILL" : "SIGTERM again");
        kill(pid, signals[s]);
        double deadline = now_ms() + PGP_DEMO_STOP_TIMEOUT_MS;
        while (!reaped && now_ms() < deadline) {
            pid_t r = waitpid(pid, &status, WNOHANG);
            if (r == pid)
                reaped = true;
            else if (r < 0 && errno != EINTR)
                break;
            else
                sleep_ms(10);
        }
    }
    d->proxy_pid = 0;
    if (!reaped) {
        complain("pgproxy (pid %d) could not be stopped", (int)pid);
        d->proxy_failed = true;
        return -1;
    }
    char what[96];
    describe_status(status, what, sizeof(what));
    bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    say("  pgproxy               stopped (%s)%s\n", what, ok ? "" : "  <-- FAILURE");
    if (!ok && !d->proxy_failed) {      /* else its log was shown already */
        char log[PATH_MAX];
        if (fmt(log, sizeof(log), "%s/pgproxy.log", d->dir) == 0)
            show_log_tail(log, 3000);
    }
    if (!ok)
        d->proxy_failed = true;
    return ok && !d->proxy_failed ? 0 : -1;
}

/* ---- the workload --------------------------------------------------- */

/* One simulated web request: its sqlcommenter tags and counters. */
typedef struct request {
    PGconn *conn;
    const char *controller;     /* NULL: a background job named by action */
    const char *action;
    int id;                     /* request_id='req-<id>' */
    bool *prepared;             /* the connection's book_by_id statement exists */
    int queries;
    int errors;                 /* expected errors seen */
} request_t;

/* Prefix sql with the request's sqlcommenter comment (as Rails 7.1,
 * Django and sqlcommenter middlewares do). */
static int tag_sql(const request_t *r, const char *sql, char *buf, size_t size)
{
    int rc = r->controller == NULL
                 ? fmt(buf, size, "/*job='%s'*/ %s", r->action, sql)
                 : fmt(buf, size, "/*controller='%s',action='%s',request_id='req-%d'*/ %s",
                       r->controller, r->action, r->id, sql);
    if (rc != 0) {
        complain("SQL too long: %s", sql);
        return -1;
    }
    return 0;
}

static int check_result(request_t *r, PGresult *res, const char *sql, const char *expect_sqlstate)
{
    ExecStatusType st = PQresultStatus(res);
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    if (expect_sqlstate != NULL) {
        if (st == PGRES_FATAL_ERROR && state != NULL && strcmp(state, expect_sqlstate) == 0) {
            r->errors++;
            return 0;
        }
        complain("req-%d: expected SQLSTATE %s from: %s\n  got: %s", r->id, expect_sqlstate,
                 sql, st == PGRES_FATAL_ERROR ? PQresultErrorMessage(res) : PQresStatus(st));
        return -1;
    }
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
        return 0;
    complain("req-%d: %s\n  %s", r->id, sql, PQresultErrorMessage(res));
    return -1;
}

/*
 * Run one tagged statement: simple protocol when there are no parameters,
 * extended (PQexecParams) otherwise.  *out (optional) returns owned (free
 * with PQclear); expect_sqlstate: the error this statement must raise.
 */
static int run_sql(request_t *r, const char *sql, int nparams, const char *const *params,
                   const char *expect_sqlstate, PGresult **out)
{
    char tagged[PGP_DEMO_SQL_BYTES];
    if (tag_sql(r, sql, tagged, sizeof(tagged)) != 0)
        return -1;
    PGresult *res = nparams == 0 ? PQexec(r->conn, tagged)
                                 : PQexecParams(r->conn, tagged, nparams, NULL, params, NULL,
                                                NULL, 0);
    r->queries++;
    int rc = check_result(r, res, sql, expect_sqlstate);
    if (rc == 0 && out != NULL)
        *out = res;
    else
        PQclear(res);
    return rc;
}

static int req_home(request_t *r, int arg)
{
    (void)arg;
    if (run_sql(r, "SELECT count(*) FROM books", 0, NULL, NULL, NULL) != 0)
        return -1;
    return run_sql(r, "SELECT count(*) FROM authors", 0, NULL, NULL, NULL);
}

static int req_authors_index(request_t *r, int arg)
{
    (void)arg;
    return run_sql(r, "SELECT a.id, a.name, count(b.id) AS books FROM authors a "
                      "LEFT JOIN books b ON b.author_id = a.id GROUP BY a.id, a.name "
                      "ORDER BY a.name", 0, NULL, NULL, NULL);
}

static int req_author_show(request_t *r, int arg)
{
    char id[16];
    const char *params[] = { id };
    if (fmt(id, sizeof(id), "%d", arg) != 0 ||
        run_sql(r, "SELECT * FROM authors WHERE id = $1", 1, params, NULL, NULL) != 0)
        return -1;
    return run_sql(r, "SELECT id, title, published FROM books WHERE author_id = $1 "
                      "ORDER BY published", 1, params, NULL, NULL);
}

/* Prepared once per connection, like a driver's statement cache.  Its text
 * is fixed at Parse time, so the request id travels in a session marker. */
static int req_book_show(request_t *r, int arg)
{
    static const char name[] = "book_by_id";
    static const char sql[] = "/*controller='books',action='show'*/ SELECT b.id, b.title, "
                              "a.name AS author FROM books b JOIN authors a ON a.id = "
                              "b.author_id WHERE b.id = $1";
    char set[96], id[16];
    const char *params[] = { id };
    if (fmt(set, sizeof(set), "SET pgproxy.request_id = 'req-%d'", r->id) != 0 ||
        fmt(id, sizeof(id), "%d", arg) != 0 || run_sql(r, set, 0, NULL, NULL, NULL) != 0)
        return -1;

    PGresult *res;
    if (!*r->prepared) {
        res = PQprepare(r->conn, name, sql, 1, NULL);
        int prc = check_result(r, res, sql, NULL);
        PQclear(res);
        if (prc != 0)
            return -1;
        *r->prepared = true;
    }
    res = PQexecPrepared(r->conn, name, 1, params, NULL, NULL, 0);
    r->queries++;
    int rc = check_result(r, res, sql, NULL);
    if (rc == 0 && PQntuples(res) != 1) {
        complain("req-%d: book %d not found", r->id, arg);
        rc = -1;
    }
    PQclear(res);
    if (rc != 0)
        return -1;
    return run_sql(r, "RESET pgproxy.request_id", 0, NULL, NULL, NULL);
}

static int req_book_create(request_t *r, int arg)
{
    char author[16], title[48];
    const char *params[] = { author, title, "2024" };
    if (fmt(author, sizeof(author), "%d", arg) != 0 ||
        fmt(title, sizeof(title), "New book from req-%d", r->id) != 0)
        return -1;
    if (run_sql(r, "BEGIN", 0, NULL, NULL, NULL) != 0 ||
        run_sql(r, "INSERT INTO books (author_id, title, published) VALUES ($1, $2, $3) "
                   "RETURNING id", 3, params, NULL, NULL) != 0)
        return -1;
    return run_sql(r, "COMMIT", 0, NULL, NULL, NULL);
}

static int req_book_search(request_t *r, int arg)
{
    char pattern[16];
    const char *params[] = { pattern };
    if (fmt(pattern, sizeof(pattern), "%%%d%%", arg) != 0)
        return -1;
    return run_sql(r, "SELECT id, title FROM books WHERE title ILIKE $1 ORDER BY id LIMIT 20",
                   1, params, NULL, NULL);
}

static int req_report(request_t *r, int arg)
{
    (void)arg;
    return run_sql(r, "SELECT pg_sleep(0.12), count(*) AS books FROM books b "
                      "JOIN authors a ON a.id = b.author_id", 0, NULL, NULL, NULL);
}

/* A foreign-key violation inside a transaction, then ROLLBACK. */
static int req_book_update(request_t *r, int arg)
{
    char id[16];
    const char *params[] = { "9999", id };
    if (fmt(id, sizeof(id), "%d", arg) != 0 || run_sql(r, "BEGIN", 0, NULL, NULL, NULL) != 0 ||
        run_sql(r, "UPDATE books SET author_id = $1 WHERE id = $2", 2, params, "23503",
                NULL) != 0)
        return -1;
    return run_sql(r, "ROLLBACK", 0, NULL, NULL, NULL);
}

/* The classic N+1: list 10 books, then fetch each book's author alone. */
static int req_books_index(request_t *r, int arg)
{
    PGresult *list = NULL;
    (void)arg;
    if (run_sql(r, "SELECT id, title, author_id FROM books ORDER BY id LIMIT 10", 0, NULL,
                NULL, &list) != 0)
        return -1;
    int rc = 0;
    for (int i = 0; i < PQntuples(list) && rc == 0; i++) {
        const char *params[] = { PQgetvalue(list, i, 2) };
        rc = run_sql(r, "SELECT * FROM authors WHERE id = $1", 1, params, NULL, NULL);
    }
    PQclear(list);
    return rc;
}

typedef struct request_kind {
    const char *controller;
    const char *action;
    int (*run)(request_t *r, int arg);
    const char *note;           /* printed after the timing; NULL: nothing */
} request_kind_t;

enum { HOME, AUTHORS, AUTHOR, BOOK, CREATE, SEARCH, REPORT, UPDATE, INDEX };

static const request_kind_t kinds[] = {
    [HOME] = { "home", "index", req_home, NULL },
    [AUTHORS] = { "authors", "index", req_authors_index, NULL },
    [AUTHOR] = { "authors", "show", req_author_show, NULL },
    [BOOK] = { "books", "show", req_book_show,
               "PQexecPrepared (PQprepare once per connection)" },
    [CREATE] = { "books", "create", req_book_create, "INSERT in a transaction" },
    [SEARCH] = { "books", "search", req_book_search, NULL },
    [REPORT] = { "reports", "monthly", req_report, "slow: pg_sleep(0.12)" },
    [UPDATE] = { "books", "update", req_book_update,
                 "error 23503 (foreign key) inside a transaction, then ROLLBACK" },
    [INDEX] = { "books", "index", req_books_index,
                "N+1: 1 list + 10 x SELECT * FROM authors WHERE id = $1" },
};

/* ~20 page views of a small bookshop app: {kind, argument}. */
static const int script[][2] = {
    { HOME, 0 },    { AUTHORS, 0 }, { BOOK, 3 },   { AUTHOR, 2 },  { CREATE, 4 },
    { BOOK, 7 },    { REPORT, 0 },  { AUTHOR, 5 }, { SEARCH, 1 },  { UPDATE, 3 },
    { HOME, 0 },    { BOOK, 12 },   { SEARCH, 2 }, { REPORT, 0 },  { AUTHORS, 0 },
    { CREATE, 8 },  { INDEX, 0 },   { AUTHOR, 9 }, { BOOK, 21 },   { HOME, 0 },
};

static const char *const schema_sql[] = {
    "CREATE TABLE authors (id int PRIMARY KEY, name text NOT NULL, born int)",
    "CREATE TABLE books (id serial PRIMARY KEY, author_id int NOT NULL REFERENCES authors (id), "
    "title text NOT NULL, published int NOT NULL)",
    "CREATE INDEX books_author_id_idx ON books (author_id)",
    "INSERT INTO authors (id, name, born) VALUES (1, 'Ursula K. Le Guin', 1929), "
    "(2, 'Italo Calvino', 1923), (3, 'Octavia E. Butler', 1947), (4, 'Jorge Luis Borges', 1899), "
    "(5, 'Toni Morrison', 1931), (6, 'Stanislaw Lem', 1921), (7, 'Clarice Lispector', 1920), "
    "(8, 'Chinua Achebe', 1930), (9, 'Wislawa Szymborska', 1923), (10, 'Haruki Murakami', 1949)",
    /* books 1-10 have 10 different authors: the N+1 sees 10 distinct values */
    "INSERT INTO books (author_id, title, published) SELECT 1 + (g - 1) % 10, 'Book ' || g, "
    "1960 + g FROM generate_series(1, 30) AS g",
};

static int run_workload(demo_t *d)
{
    char conninfo[256];
    proxy_conninfo(d, conninfo, sizeof(conninfo));
    PGconn *conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        complain("cannot connect through pgproxy: %s", PQerrorMessage(conn));
        PQfinish(conn);
        return -1;
    }
    say("\nWorkload through pgproxy (libpq, postgresql://postgres@127.0.0.1:%d/postgres):\n",
        d->proxy_port);

    int rc = 0, queries = 0, errors = 0, slow = 0;
    bool prepared = false;
    request_t setup = { conn, NULL, "db_seed", 0, &prepared, 0, 0 };
    for (size_t i = 0; i < sizeof(schema_sql) / sizeof(schema_sql[0]) && rc == 0; i++)
        rc = run_sql(&setup, schema_sql[i], 0, NULL, NULL, NULL);
    if (rc == 0)
        say("  schema                tables authors, books; 10 authors, 30 books\n");

    size_t nreq = sizeof(script) / sizeof(script[0]);
    for (size_t i = 0; i < nreq && rc == 0; i++) {
        if (g_stop_signal != 0 || proxy_exited(d)) {
            rc = -1;
            break;
        }
        const request_kind_t *k = &kinds[script[i][0]];
        request_t r = { conn, k->controller, k->action, (int)i + 1, &prepared, 0, 0 };
        double start = now_ms();
        rc = k->run(&r, script[i][1]);
        double ms = now_ms() - start;
        if (rc != 0)
            break;
        char label[64], id[16];
        fmt(label, sizeof(label), "%s#%s", k->controller, k->action);
        fmt(id, sizeof(id), "req-%d", r.id);
        say("  %-7s %-16s %2d quer%s %7.1f ms%s%s\n", id, label, r.queries,
            r.queries == 1 ? "y  " : "ies", ms, k->note != NULL ? "  " : "",
            k->note != NULL ? k->note : "");
        queries += r.queries;
        errors += r.errors;
        d->slow_expected += script[i][0] == REPORT;
        slow += ms >= PGP_DEMO_SLOW_MS;
    }
    if (rc == 0)
        say("  %zu requests, %d queries (%d with an expected error), %d slower than %.0f ms\n",
            nreq, queries, errors, slow, PGP_DEMO_SLOW_MS);
    PQfinish(conn);
    return rc;
}

/* ---- the end -------------------------------------------------------- */

/*
 * Rows in the slow-query log's sqlite file, once the writer thread has
 * caught up (it batches; give it a moment).  -1 when the file cannot be read.
 */
static int count_slow_rows(const demo_t *d, int expect)
{
    int rows = -1;
    double deadline = now_ms() + 3000;
    do {
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        if (sqlite3_open_v2(d->slow_db, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
            sqlite3_prepare_v2(db, "SELECT count(*) FROM hyper_slow_queries", -1, &st,
                               NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW)
            rows = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        if (rows >= expect)
            break;
        sleep_ms(100);
    } while (now_ms() < deadline);
    return rows;
}

/* Where to look next: keep this the one place that says so. */
static void print_where_to_look(const demo_t *d, int slow_expected)
{
    int a = d->admin_port;
    /* A request profile closes after profiling.request_gap_ms of quiet. */
    sleep_ms(400);
    int rows = count_slow_rows(d, slow_expected);
    say("\nWhat pgproxy saw:\n"
        "  Dashboard:              http://127.0.0.1:%d/debug/performance\n"
        "  The N+1 (books#index):  curl http://127.0.0.1:%d/debug/n-plus-one\n"
        "  Request profiles:       curl 'http://127.0.0.1:%d/debug/profiles?order=slowest&limit=5'\n"
        "  One as a header line:   curl 'http://127.0.0.1:%d/debug/profiles/1?format=header'\n"
        "  Flame graph:            http://127.0.0.1:%d/debug/flamegraph.svg\n"
        "  Per-query statistics:   curl 'http://127.0.0.1:%d/debug/queries?order=total&limit=10'\n"
        "  Prometheus metrics:     curl http://127.0.0.1:%d/metrics\n"
        "  Slow-query log:         %d row%s in %s\n"
        "      sqlite3 %s \\\n"
        "        'SELECT sql_text, duration_ms FROM hyper_slow_queries "
        "ORDER BY duration_ms DESC LIMIT 20'\n"
        "\nConnect through pgproxy:  psql \"postgresql://postgres@127.0.0.1:%d/postgres\"\n"
        "Fingerprint some SQL:     echo \"SELECT * FROM books WHERE id = 7\" | pgproxy normalize\n"
        "pgproxy log:              %s/pgproxy.log\n",
        a, a, a, a, a, a, a, rows < 0 ? 0 : rows, rows == 1 ? "" : "s", d->slow_db,
        d->slow_db, d->proxy_port, d->dir);
}

static void wait_for_ctrl_c(demo_t *d)
{
    say("\nPress Ctrl-C to stop pgproxy and PostgreSQL%s.\n",
        d->keep ? "" : " and remove the temporary directory");
    while (g_stop_signal == 0 && !proxy_exited(d))
        sleep_ms(200);
    say("\n");
}

static int on_remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        complain("cannot remove %s: %s", path, strerror(errno));
    return 0;                   /* keep going: remove what can be removed */
}

/* Stop what was started, in reverse order.  0, or -1 when pgproxy failed. */
static int cleanup(demo_t *d)
{
    int rc = stop_proxy(d);
    if (d->pg_start_tried) {
        int src = stop_postgres(d);
        say("  postgres              %s\n", src == 0 ? "stopped" : src > 0 ? "was not running"
                                             : "did not stop with pg_ctl: killed");
    }
    if (d->dir[0] != '\0') {
        if (d->keep) {
            say("  kept                  %s\n", d->dir);
        } else {
            nftw(d->dir, on_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
            say("  removed               %s\n", d->dir);
        }
    }
    return rc;
}

int pgp_demo_main(int argc, char **argv)
{
    demo_t d = { 0 };
    int prc = parse_args(&d, argc, argv);
    if (prc != 0)
        return prc > 0 ? 0 : 2;

    struct sigaction sa = { .sa_handler = on_demo_signal }, old_int, old_term, old_hup;
    sigemptyset(&sa.sa_mask);   /* no SA_RESTART: waits return EINTR */
    g_stop_signal = 0;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);

    int code = 1;
    say("pgproxy demo: a throwaway PostgreSQL, pgproxy in front of it, and a small web app's "
        "queries through it.\n\n");
    if (find_bindir(&d) != 0 || resolve_run_as(&d) != 0)
        goto out;
    say("  PostgreSQL binaries   %s\n", d.bindir);
    if (choose_ports(&d) != 0 || make_tempdir(&d) != 0 || start_postgres(&d) != 0 ||
        start_proxy(&d) != 0 || run_workload(&d) != 0)
        goto out;
    print_where_to_look(&d, d.slow_expected);
    if (!d.no_wait && isatty(STDIN_FILENO))
        wait_for_ctrl_c(&d);
    code = d.proxy_failed ? 1 : 0;
out:
    if (code != 0 && g_stop_signal != 0)
        complain("interrupted by signal %d; cleaning up", (int)g_stop_signal);
    if (d.dir[0] != '\0')
        say("\nCleaning up:\n");
    if (cleanup(&d) != 0)
        code = 1;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    say("%s\n", code == 0 ? "Demo finished." : "Demo FAILED (exit status 1).");
    return code;
}
