/*
 * bench_digest.c - micro-benchmark of the digest table and histograms:
 * ns per pgp_digest_record on the hit path (1000 hot keys) and on the
 * insert-with-eviction path (every key new, table full), ns per
 * pgp_digest_snapshot of a full 5000-entry table (all entries, and the
 * top 50), ns per pgp_histogram_record / pgp_histogram_prom_record, and
 * how long a snapshot holds the table lock (the longest a relay thread can
 * wait in pgp_digest_record because of the admin thread), as reported by
 * the snapshot itself.
 *
 * Configurations are interleaved within each run (A B C ... A B C ...),
 * every run is printed, then median and jitter = (max - min) / median / 2
 * x 100 (BENCHMARKING.md).  Single thread, no contention: the lock is
 * taken uncontended, which is the relay's common case.  A benchmark, not a
 * test: it prints figures and always exits 0 unless an allocation fails.
 *
 *   bench_digest [runs (default 7)]
 */
#include "pgproxy/digest.h"
#include "pgproxy/histogram.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_RUNS 32
#define HOT_KEYS 1000u
#define TABLE_ENTRIES 5000u
#define HIT_OPS 5000000u
#define EVICT_OPS 2000000u
#define HIST_OPS 20000000u
#define SNAP_ALL_OPS 300u
#define SNAP_TOP_OPS 1000u

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_state = 12345;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* Durations spread over ~50 us .. ~50 ms, like a mixed workload. */
static uint64_t duration(void)
{
    uint64_t r = rng_next();
    return (UINT64_C(50000) << (r % 10)) + (r >> 40) % 50000;
}

static const char sql_text[] =
    "SELECT \"users\".* FROM \"users\" WHERE \"users\".\"account_id\" = ? AND "
    "\"users\".\"deleted_at\" IS NULL ORDER BY \"users\".\"id\" ASC LIMIT ?";
static const char *users[] = {"web", "worker", "admin", "report"};

static pgp_digest_event_t event(uint64_t fp, uint64_t d, uint64_t now)
{
    return (pgp_digest_event_t){.database = "app_production", .user = users[fp & 3],
                                .fingerprint = fp * UINT64_C(0x9e3779b97f4a7c15),
                                .normalized = sql_text, .normalized_len = sizeof(sql_text) - 1,
                                .duration_ns = d, .rows = 1, .error = false, .now_wall_ns = now};
}

static uint64_t durations[4096];

static double bench_hit(pgp_digest_table_t *t)
{
    uint64_t t0 = now_ns();
    for (uint32_t i = 0; i < HIT_OPS; i++) {
        pgp_digest_event_t ev = event(i % HOT_KEYS, durations[i & 4095], i);
        pgp_digest_record(t, &ev);
    }
    return (double)(now_ns() - t0) / HIT_OPS;
}

static uint64_t next_new_key = UINT64_C(1) << 32;

static double bench_evict(pgp_digest_table_t *t)
{
    uint64_t t0 = now_ns();
    for (uint32_t i = 0; i < EVICT_OPS; i++) {
        pgp_digest_event_t ev = event(next_new_key++, durations[i & 4095], i);
        pgp_digest_record(t, &ev);
    }
    return (double)(now_ns() - t0) / EVICT_OPS;
}

static double bench_snapshot(pgp_digest_table_t *t, size_t limit, unsigned ops)
{
    uint64_t t0 = now_ns();
    for (unsigned i = 0; i < ops; i++) {
        pgp_digest_snapshot_t s;
        if (pgp_digest_snapshot(t, (pgp_digest_order_t)(i % 3), limit, &s) != 0) {
            fprintf(stderr, "snapshot: out of memory\n");
            exit(1);
        }
        pgp_digest_snapshot_free(&s);
    }
    return (double)(now_ns() - t0) / ops;
}

static pgp_histogram_t hist;
static pgp_histogram_prom_t prom;

static double bench_hist(void)
{
    uint64_t t0 = now_ns();
    for (uint32_t i = 0; i < HIST_OPS; i++)
        pgp_histogram_record(&hist, durations[i & 4095]);
    return (double)(now_ns() - t0) / HIST_OPS;
}

static double bench_prom(void)
{
    uint64_t t0 = now_ns();
    for (uint32_t i = 0; i < HIST_OPS; i++)
        pgp_histogram_prom_record(&prom, durations[i & 4095]);
    return (double)(now_ns() - t0) / HIST_OPS;
}

/* Median time (us) the snapshots of `limit` entries held the table lock. */
static double bench_lock_hold(pgp_digest_table_t *t, size_t limit, unsigned ops)
{
    double v[64];
    unsigned n = ops < 64 ? ops : 64;
    for (unsigned i = 0; i < n; i++) {
        pgp_digest_snapshot_t s;
        if (pgp_digest_snapshot(t, (pgp_digest_order_t)(i % 3), limit, &s) != 0)
            exit(1);
        v[i] = (double)s.lock_ns / 1000.0;
        pgp_digest_snapshot_free(&s);
    }
    for (unsigned i = 1; i < n; i++)            /* insertion sort: n <= 64 */
        for (unsigned j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double x = v[j];
            v[j] = v[j - 1];
            v[j - 1] = x;
        }
    return v[n / 2];
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *name, const char *unit, double *v, int runs)
{
    printf("%-34s", name);
    for (int r = 0; r < runs; r++)
        printf(" %9.1f", v[r]);
    qsort(v, (size_t)runs, sizeof(*v), cmp_double);
    double med = runs % 2 ? v[runs / 2] : (v[runs / 2 - 1] + v[runs / 2]) / 2;
    printf(" | median %9.1f %s  jitter %4.1f %%\n", med, unit,
           (v[runs - 1] - v[0]) / med / 2 * 100);
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 7;
    if (runs < 1 || runs > MAX_RUNS)
        runs = 7;
    for (size_t i = 0; i < 4096; i++)
        durations[i] = duration();

    pgp_digest_table_t *hit = pgp_digest_create(TABLE_ENTRIES, 2048);
    pgp_digest_table_t *evict = pgp_digest_create(TABLE_ENTRIES, 2048);
    pgp_digest_table_t *full = pgp_digest_create(TABLE_ENTRIES, 2048);
    if (hit == NULL || evict == NULL || full == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    /* A full table whose entries have realistic histograms (~200 calls each). */
    for (uint32_t i = 0; i < TABLE_ENTRIES * 200; i++) {
        pgp_digest_event_t ev = event(i % TABLE_ENTRIES, durations[(i * 7) & 4095], i);
        pgp_digest_record(full, &ev);
    }
    pgp_histogram_init(&hist);
    /* warm-up: fill the eviction table, touch every page of the hit table */
    bench_hit(hit);
    bench_evict(evict);
    bench_snapshot(full, 0, 20);

    double v_hit[MAX_RUNS], v_evict[MAX_RUNS], v_all[MAX_RUNS], v_top[MAX_RUNS];
    double v_hist[MAX_RUNS], v_prom[MAX_RUNS], v_lock_all[MAX_RUNS], v_lock_top[MAX_RUNS];
    for (int r = 0; r < runs; r++) {
        v_hit[r] = bench_hit(hit);
        v_evict[r] = bench_evict(evict);
        v_all[r] = bench_snapshot(full, 0, SNAP_ALL_OPS) / 1000.0;
        v_top[r] = bench_snapshot(full, 50, SNAP_TOP_OPS) / 1000.0;
        v_hist[r] = bench_hist();
        v_prom[r] = bench_prom();
        v_lock_all[r] = bench_lock_hold(full, 0, 63);
        v_lock_top[r] = bench_lock_hold(full, 50, 63);
    }
    pgp_digest_totals_t tot;
    pgp_digest_totals(evict, &tot);
    printf("runs=%d  hit: %u ops/run over %u keys; evict: %u ops/run (evictions so far %llu); "
           "snapshot: %u (all) / %u (top 50) per run of a %u-entry table\n",
           runs, HIT_OPS, HOT_KEYS, EVICT_OPS, (unsigned long long)tot.evictions,
           SNAP_ALL_OPS, SNAP_TOP_OPS, TABLE_ENTRIES);
    report("record, hit", "ns", v_hit, runs);
    report("record, insert + evict", "ns", v_evict, runs);
    report("snapshot 5000 entries, all", "us", v_all, runs);
    report("snapshot 5000 entries, top 50", "us", v_top, runs);
    report("pgp_histogram_record", "ns", v_hist, runs);
    report("pgp_histogram_prom_record", "ns", v_prom, runs);
    report("lock held by snapshot, all", "us", v_lock_all, runs);
    report("lock held by snapshot, top 50", "us", v_lock_top, runs);
    printf("slot %zu bytes; bound at 5000 entries with 2 KiB SQL: %zu bytes\n",
           pgp_digest_slot_bytes(), pgp_digest_max_bytes(TABLE_ENTRIES, 2048));
    /* keep the histogram work observable */
    if (pgp_histogram_percentile(&hist, 0.5) == 0 || prom.sum_ns == 0)
        printf("(unexpected empty histogram)\n");
    pgp_digest_destroy(hit);
    pgp_digest_destroy(evict);
    pgp_digest_destroy(full);
    return 0;
}
