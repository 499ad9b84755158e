/*
 * bench_slowlog.c - micro-benchmark of the slow-query log: ns per
 * pgp_slowlog_submit (the cost the relay thread pays per slow statement)
 * and sink throughput in rows/s for sqlite and, when PGP_TEST_PG_DSN is
 * set, PostgreSQL.
 *
 * submit is measured three ways: sink NONE (copy + recent ring), a sink
 * that stays down (copy + ring + queue, no writer competing for the lock
 * or the allocator), and a live sqlite sink (the writer draining
 * concurrently: lock and allocator contention included).  Throughput is
 * the time from the first submit of N records to written_total == N,
 * default batches of 100.  Each run prints its figures; then the median
 * and jitter = (max - min) / median / 2 x 100 (BENCHMARKING.md).  A
 * benchmark, not a test.
 *
 *   bench_slowlog [runs (default 5)] [dir for the sqlite file (default /tmp)]
 */
#include "pgproxy/slowlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS 32
#define SUBMIT_OPS 200000u
#define SINK_ROWS 50000u

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static const char sql[] =
    "SELECT u.id, u.email, u.created_at FROM users u JOIN orders o ON o.user_id = u.id "
    "WHERE o.status = 'pending' AND u.id = 424242 ORDER BY o.created_at DESC LIMIT 20";
static const char norm[] =
    "SELECT u.id, u.email, u.created_at FROM users u JOIN orders o ON o.user_id = u.id "
    "WHERE o.status = ? AND u.id = ? ORDER BY o.created_at DESC LIMIT ?";

static pgp_slow_record_t rec(uint64_t i)
{
    return (pgp_slow_record_t){.sql_text = sql, .sql_len = sizeof(sql) - 1,
                               .duration_ms = 123.0 + (double)(i % 100),
                               .params_summary = "$1 = 'pending'", .params_summary_len = 14,
                               .wall_ns = UINT64_C(1764118800000000000) + i * 1000u,
                               .fingerprint = 0x1234567890abcdefu + i % 7,
                               .normalized_sql = norm, .normalized_len = sizeof(norm) - 1,
                               .database_name = "app", .user_name = "app",
                               .application_name = "puma", .client_addr = "10.1.2.3:50000",
                               .session_id = i % 50, .request_id = "4bf92f3577b34da6a3ce929d0e0e4736",
                               .request_label = "orders#index", .rows = 20, .sqlstate = NULL};
}

static pgp_slowlog_t *make(pgp_slowlog_config_t cfg)
{
    char err[256];
    pgp_slowlog_t *log = pgp_slowlog_create(&cfg, err, sizeof(err));
    if (log == NULL) {
        fprintf(stderr, "bench_slowlog: create: %s\n", err);
        exit(1);
    }
    return log;
}

/* ns per submit */
static double bench_submit(pgp_slowlog_config_t cfg)
{
    pgp_slowlog_t *log = make(cfg);
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < SUBMIT_OPS; i++) {
        pgp_slow_record_t r = rec(i);
        (void)pgp_slowlog_submit(log, &r);
    }
    uint64_t t1 = now_ns();
    pgp_slowlog_destroy(log, 0);
    return (double)(t1 - t0) / SUBMIT_OPS;
}

/* rows/s from the first submit to the last row committed */
static double bench_sink(pgp_slowlog_config_t cfg)
{
    pgp_slowlog_t *log = make(cfg);
    /* Let the sink open (and create its table) before the clock starts. */
    pgp_slowlog_stats_t st;
    for (int t = 0; t < 1000; t++) {
        pgp_slowlog_get_stats(log, &st);
        if (st.sink_up)
            break;
        pgp_slow_record_t r = rec(0);
        if (t == 0)
            (void)pgp_slowlog_submit(log, &r);
        usleep(10000);
    }
    uint64_t base = st.written_total;
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < SINK_ROWS; i++) {
        pgp_slow_record_t r = rec(i);
        (void)pgp_slowlog_submit(log, &r);
    }
    do {
        usleep(200);
        pgp_slowlog_get_stats(log, &st);
    } while (st.written_total < base + SINK_ROWS && st.dropped_total == 0 &&
             now_ns() - t0 < UINT64_C(120000000000));
    uint64_t t1 = now_ns();
    if (st.written_total < base + SINK_ROWS)
        fprintf(stderr, "bench_slowlog: only %llu rows written (%s)\n",
                (unsigned long long)(st.written_total - base), st.last_error);
    pgp_slowlog_destroy(log, 10000);
    return (double)(st.written_total - base) / ((double)(t1 - t0) / 1e9);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void summary(const char *name, const char *unit, double *v, int n)
{
    double s[MAX_RUNS];
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof(double), cmp_double);
    double med = s[n / 2];
    printf("%-34s median %12.1f %-6s jitter %5.1f%%\n", name, med, unit,
           med > 0 ? (s[n - 1] - s[0]) / med / 2 * 100 : 0.0);
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 5;
    const char *dir = argc > 2 ? argv[2] : "/tmp";
    if (runs < 1 || runs > MAX_RUNS)
        runs = 5;
    const char *dsn = getenv("PGP_TEST_PG_DSN");
    char path[512];
    snprintf(path, sizeof(path), "%s/bench_slowlog_%d.db", dir, (int)getpid());

    enum { S_NONE, S_DOWN, S_LIVE, T_SQLITE, T_PG, NB };
    static const char *names[NB] = {"submit, sink none (ns)", "submit, sink down (ns)",
                                    "submit, sqlite draining (ns)", "sqlite sink (rows/s)",
                                    "postgres sink (rows/s)"};
    double res[NB][MAX_RUNS];
    for (int run = 0; run < runs; run++) {
        pgp_slowlog_config_t none = {.sink = PGP_SLOWLOG_NONE};
        pgp_slowlog_config_t down = {.sink = PGP_SLOWLOG_SQLITE,
                                     .sqlite_path = "/nonexistent-bench-dir/x.db",
                                     .queue_size = SUBMIT_OPS, .retry_initial_ms = 10000};
        pgp_slowlog_config_t live = {.sink = PGP_SLOWLOG_SQLITE, .sqlite_path = path,
                                     .queue_size = SUBMIT_OPS, .proxy_instance = "bench:6433"};
        res[S_NONE][run] = bench_submit(none);
        res[S_DOWN][run] = bench_submit(down);
        res[S_LIVE][run] = bench_submit(live);
        live.queue_size = SINK_ROWS + 10;
        res[T_SQLITE][run] = bench_sink(live);
        if (dsn != NULL && dsn[0] != '\0') {
            pgp_slowlog_config_t pg = {.sink = PGP_SLOWLOG_POSTGRES, .dsn = dsn,
                                       .queue_size = SINK_ROWS + 10,
                                       .proxy_instance = "bench:6433"};
            res[T_PG][run] = bench_sink(pg);
        }
        printf("run %d: none %.1f ns, down %.1f ns, draining %.1f ns, sqlite %.0f rows/s",
               run + 1, res[S_NONE][run], res[S_DOWN][run], res[S_LIVE][run], res[T_SQLITE][run]);
        if (dsn != NULL && dsn[0] != '\0')
            printf(", postgres %.0f rows/s", res[T_PG][run]);
        printf("\n");
        fflush(stdout);
        unlink(path);
        char side[600];
        snprintf(side, sizeof(side), "%s-wal", path);
        unlink(side);
        snprintf(side, sizeof(side), "%s-shm", path);
        unlink(side);
    }
    for (int b = 0; b < NB; b++) {
        if (b == T_PG && (dsn == NULL || dsn[0] == '\0')) {
            printf("%-34s skipped (PGP_TEST_PG_DSN unset)\n", names[b]);
            continue;
        }
        summary(names[b], b >= T_SQLITE ? "rows/s" : "ns", res[b], runs);
    }
    return 0;
}
