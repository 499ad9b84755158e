/*
 * bench_normalize.c - ns per statement of pgp_normalize (a benchmark, not
 * a test; see BENCHMARKING.md).  Three workloads: typical ORM statements
 * (~150 bytes, a rotating set of 8), a 1 KB reporting query, and a 100 KB
 * multi-row INSERT … VALUES batch.  Each workload runs for at least 1 s
 * and 1 M statements (fewer for the batch) per run, after a warm-up; N
 * runs (default 5) are printed, then the median, the jitter
 * ((max - min) / median / 2 * 100) and ns per input byte (linearity).
 *
 *   bench_normalize [runs [workload]]     workload: orm, report or batch
 *
 * With PGP_BENCH_CPU=1 in the environment the clock is the thread's CPU
 * time (CLOCK_THREAD_CPUTIME_ID) instead of CLOCK_MONOTONIC: on a shared
 * machine that leaves out the time the benchmark was not running.
 */
#include "pgproxy/normalize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const orm[] = {
    "SELECT \"users\".* FROM \"users\" WHERE \"users\".\"id\" = $1 LIMIT $2 /*controller='users',action='show'*/",
    "SELECT users.id, users.email, users.name FROM users WHERE users.account_id = 42 AND users.deleted_at IS NULL ORDER BY users.id",
    "INSERT INTO events (user_id, kind, payload, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
    "UPDATE sessions SET last_seen_at = '2024-05-01 10:00:00', hits = hits + 1 WHERE token = 'abcdef0123456789'",
    "SELECT posts.* FROM posts WHERE posts.author_id IN (1, 2, 3, 4, 5, 6, 7, 8) AND posts.published = TRUE LIMIT 20",
    "SELECT COUNT(*) FROM orders o JOIN items i ON i.order_id = o.id WHERE o.status <> 'cancelled' AND o.total > 10.5",
    "DELETE FROM carts WHERE updated_at < NOW() - INTERVAL '30 days' AND user_id IS NULL",
    "SELECT \"products\".\"id\", \"products\".\"price\" FROM \"products\" WHERE \"products\".\"sku\" = E'AB\\'12' FOR UPDATE",
};

static clockid_t bench_clock = CLOCK_MONOTONIC;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(bench_clock, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static volatile uint64_t sink;

typedef struct work {
    const char *name;
    const char **sql;
    size_t *len;
    size_t n;
    size_t bytes;       /* average input size */
    uint64_t min_ops;
} work_t;

/* One run: ns per statement. */
static double run_once(const work_t *w, char *out, size_t out_cap)
{
    uint64_t ops = 0;
    pgp_norm_result_t res;
    pgp_norm_tags_t tags;
    double t0 = now_ns(), t;
    do {
        for (int k = 0; k < 64; k++) {
            size_t i = ops % w->n;
            pgp_normalize(w->sql[i], w->len[i], NULL, out, out_cap, &tags, &res);
            sink ^= res.fingerprint;
            ops++;
        }
        t = now_ns();
    } while (t - t0 < 1e9 || ops < w->min_ops);
    return (t - t0) / (double)ops;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 5;
    if (runs < 1 || runs > 100)
        runs = 5;
    const char *cpu = getenv("PGP_BENCH_CPU");
    if (cpu && cpu[0] == '1')
        bench_clock = CLOCK_THREAD_CPUTIME_ID;

    /* 1 KB: a reporting query */
    static char kb[2048];
    int kl = snprintf(kb, sizeof(kb),
        "/* application:Reports,controller:dashboard,action:index */ "
        "WITH recent AS (SELECT o.id, o.customer_id, o.total, o.created_at FROM orders o "
        "WHERE o.created_at >= '2024-01-01' AND o.created_at < '2024-02-01' AND o.status IN "
        "('paid', 'shipped', 'delivered') AND o.region_id = ANY(ARRAY[1, 2, 3, 4, 5])), "
        "agg AS (SELECT r.customer_id, count(*) AS n, sum(r.total) AS total, "
        "max(r.created_at) AS last_order FROM recent r GROUP BY 1 HAVING count(*) > 2) "
        "SELECT c.id, c.name, c.email, a.n, a.total, a.last_order, "
        "CASE WHEN a.total > 1000.00 THEN 'gold' WHEN a.total > 100 THEN 'silver' ELSE 'bronze' END AS tier, "
        "coalesce(c.phone, '') AS phone, extract(epoch FROM now() - a.last_order)::int AS age_s "
        "FROM agg a JOIN customers c ON c.id = a.customer_id LEFT JOIN addresses ad ON "
        "ad.customer_id = c.id AND ad.kind = 'billing' WHERE c.deleted_at IS NULL AND "
        "c.country <> 'XX' AND c.created_at > now() - interval '5 years' "
        "ORDER BY a.total DESC, c.id LIMIT 100 OFFSET 0");
    /* 100 KB: INSERT … VALUES batch */
    size_t bcap = 110 * 1024, bl = 0;
    char *batch = malloc(bcap);
    if (!batch)
        return 1;
    bl += (size_t)snprintf(batch, bcap, "INSERT INTO metrics (host, name, value, ts) VALUES ");
    for (int i = 0; bl < 100 * 1024; i++)
        bl += (size_t)snprintf(batch + bl, bcap - bl, "%s('host-%d', 'cpu.user', %d.%02d, %d)",
                               i ? ", " : "", i % 50, i % 100, i % 97, 1700000000 + i);

    const char *orm_sql[8];
    size_t orm_len[8], orm_bytes = 0;
    for (int i = 0; i < 8; i++) {
        orm_sql[i] = orm[i];
        orm_len[i] = strlen(orm[i]);
        orm_bytes += orm_len[i];
    }
    const char *kb_sql[1] = {kb};
    size_t kb_len[1] = {(size_t)kl};
    const char *b_sql[1] = {batch};
    size_t b_len[1] = {bl};
    work_t works[] = {
        {"orm ~150B", orm_sql, orm_len, 8, orm_bytes / 8, 1000000},
        {"report 1KB", kb_sql, kb_len, 1, (size_t)kl, 1000000},
        {"batch 100KB", b_sql, b_len, 1, bl, 1000},
    };
    char *out = malloc(bcap + 1);
    if (!out)
        return 1;

    printf("pgp_normalize: %d runs per workload, each >= 1 s (%s time)\n", runs,
           bench_clock == CLOCK_MONOTONIC ? "wall" : "thread CPU");
    for (size_t w = 0; w < sizeof(works) / sizeof(works[0]); w++) {
        double v[100];
        if (argc > 2 && strncmp(works[w].name, argv[2], strlen(argv[2])) != 0)
            continue;
        run_once(&works[w], out, bcap + 1);   /* warm-up */
        printf("%-12s (%6zu B):", works[w].name, works[w].bytes);
        for (int r = 0; r < runs; r++) {
            v[r] = run_once(&works[w], out, bcap + 1);
            printf(" %.1f", v[r]);
            fflush(stdout);
        }
        qsort(v, (size_t)runs, sizeof(double), cmp_double);
        double med = v[runs / 2];
        double jitter = (v[runs - 1] - v[0]) / med / 2 * 100;
        printf("  ns/stmt | median %.1f ns, jitter %.1f %%, %.2f ns/byte\n", med, jitter,
               med / (double)works[w].bytes);
    }
    free(batch);
    free(out);
    return 0;
}
