/*
 * test_digest.c - unit tests for pgproxy/digest.c: Welford statistics
 * against a two-pass computation on random data, keying by (database,
 * user, fingerprint), LRU eviction checked against a reference model,
 * SQL capping, snapshot ordering and limits, reset, and a one-second run
 * of one thread recording while another takes snapshots (run it under the
 * ASan/UBSan build, and by hand under TSan).
 */
#include "pgproxy/digest.h"
#include "pgproxy/histogram.h"

#include <check.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static pgp_digest_event_t ev_make(const char *db, const char *user, uint64_t fp,
                                  uint64_t duration_ns, uint64_t now)
{
    static const char sql[] = "SELECT ?";
    return (pgp_digest_event_t){.database = db, .user = user, .fingerprint = fp,
                                .normalized = sql, .normalized_len = sizeof(sql) - 1,
                                .duration_ns = duration_ns, .rows = 1, .error = false,
                                .now_wall_ns = now};
}

static pgp_digest_snapshot_t snap(pgp_digest_table_t *t, pgp_digest_order_t order, size_t limit)
{
    pgp_digest_snapshot_t s;
    ck_assert_int_eq(pgp_digest_snapshot(t, order, limit, &s), 0);
    return s;
}

static const pgp_digest_entry_t *find(const pgp_digest_snapshot_t *s, const char *db,
                                      const char *user, uint64_t fp)
{
    for (size_t i = 0; i < s->count; i++)
        if (s->entries[i].fingerprint == fp && strcmp(s->entries[i].database, db) == 0 &&
            strcmp(s->entries[i].user, user) == 0)
            return &s->entries[i];
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Welford vs two-pass                                                 */
/* ------------------------------------------------------------------ */

static const struct {
    const char *name;
    uint64_t base;       /* large offsets make naive sum-of-squares cancel */
    uint64_t spread;
    size_t n;
} welford_cases[] = {
    {"small", 1000, 1000000, 10000},
    {"wide", 0, 5000000000u, 10000},
    {"big offset, tiny spread", 100000000000u, 1000, 50000},
    {"two values", 20000, 1, 2},
    {"one value", 123456, 0, 1},
};

START_TEST(test_welford)
{
    rng_state = 1000 + (uint64_t)_i;
    size_t n = welford_cases[_i].n;
    uint64_t *v = malloc(n * sizeof(*v));
    ck_assert_ptr_nonnull(v);
    pgp_digest_table_t *t = pgp_digest_create(4, 64);
    ck_assert_ptr_nonnull(t);
    uint64_t min = UINT64_MAX, max = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t spread = welford_cases[_i].spread;
        v[i] = welford_cases[_i].base + (spread ? rng_next() % (spread + 1) : 0);
        pgp_digest_event_t ev = ev_make("db", "u", 77, v[i], 1000 + i);
        ev.rows = i;
        ev.error = i % 10 == 3;
        pgp_digest_record(t, &ev);
        min = v[i] < min ? v[i] : min;
        max = v[i] > max ? v[i] : max;
        total += v[i];
    }
    /* two-pass, in long double */
    long double mean = 0, m2 = 0;
    for (size_t i = 0; i < n; i++)
        mean += v[i];
    mean /= n;
    for (size_t i = 0; i < n; i++)
        m2 += ((long double)v[i] - mean) * ((long double)v[i] - mean);
    double stddev = (double)sqrtl(m2 / n);

    pgp_digest_snapshot_t s = snap(t, PGP_DIGEST_ORDER_TOTAL, 0);
    ck_assert_uint_eq(s.count, 1);
    const pgp_digest_entry_t *e = &s.entries[0];
    ck_assert_uint_eq(e->calls, n);
    ck_assert_uint_eq(e->total_ns, total);
    ck_assert_uint_eq(e->min_ns, min);
    ck_assert_uint_eq(e->max_ns, max);
    ck_assert_uint_eq(e->rows, (uint64_t)n * (n - 1) / 2);
    ck_assert_uint_eq(e->errors, (n + 6) / 10);
    ck_assert_uint_eq(e->first_seen_ns, 1000);
    ck_assert_uint_eq(e->last_seen_ns, 1000 + n - 1);
    ck_assert_msg(fabs(e->mean_ns - (double)mean) <= 1e-9 * (double)mean + 1e-6,
                  "%s: mean %.6f vs %.6Lf", welford_cases[_i].name, e->mean_ns, mean);
    ck_assert_msg(fabs(e->stddev_ns - stddev) <= 1e-6 * stddev + 1e-3,
                  "%s: stddev %.6f vs %.6f", welford_cases[_i].name, e->stddev_ns, stddev);
    ck_assert(e->min_ns <= e->p50_ns && e->p50_ns <= e->p95_ns && e->p95_ns <= e->p99_ns &&
              e->p99_ns <= e->max_ns);
    pgp_digest_snapshot_free(&s);
    pgp_digest_destroy(t);
    free(v);
}
END_TEST

/* p50/p95/p99 of an entry agree with a histogram fed the same values. */
START_TEST(test_entry_percentiles)
{
    pgp_digest_table_t *t = pgp_digest_create(8, 64);
    ck_assert_ptr_nonnull(t);
    pgp_histogram_t h;
    pgp_histogram_init(&h);
    for (uint64_t i = 1; i <= 1000; i++) {
        pgp_digest_event_t ev = ev_make("db", "u", 5, i * 10000, i);
        pgp_digest_record(t, &ev);
        pgp_histogram_record(&h, i * 10000);
    }
    pgp_digest_snapshot_t s = snap(t, PGP_DIGEST_ORDER_TOTAL, 0);
    ck_assert_uint_eq(s.entries[0].p50_ns, pgp_histogram_percentile(&h, 0.50));
    ck_assert_uint_eq(s.entries[0].p95_ns, pgp_histogram_percentile(&h, 0.95));
    ck_assert_uint_eq(s.entries[0].p99_ns, pgp_histogram_percentile(&h, 0.99));
    /* true values 5 ms, 9.5 ms, 9.9 ms */
    ck_assert(fabs((double)s.entries[0].p50_ns - 5e6) / 5e6 <= PGP_HISTOGRAM_REL_ERROR);
    ck_assert(fabs((double)s.entries[0].p95_ns - 9.5e6) / 9.5e6 <= PGP_HISTOGRAM_REL_ERROR);
    ck_assert(fabs((double)s.entries[0].p99_ns - 9.9e6) / 9.9e6 <= PGP_HISTOGRAM_REL_ERROR);
    pgp_digest_snapshot_free(&s);
    pgp_digest_destroy(t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Keying                                                              */
/* ------------------------------------------------------------------ */

#define LONG63 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static const struct {
    const char *name;
    const char *db1, *user1;
    uint64_t fp1;
    const char *db2, *user2;
    uint64_t fp2;
    size_t entries;
} key_cases[] = {
    {"same key", "app", "alice", 1, "app", "alice", 1, 1},
    {"same fp, other user", "app", "alice", 1, "app", "bob", 1, 2},
    {"same fp, other database", "app", "alice", 1, "app2", "alice", 1, 2},
    {"other fp", "app", "alice", 1, "app", "alice", 2, 2},
    {"db/user boundary moved", "ab", "c", 1, "a", "bc", 1, 2},
    {"prefix of a name", "app", "alice", 1, "app", "alic", 1, 2},
    {"NULL is the empty name", NULL, NULL, 9, "", "", 9, 1},
    {"differ at byte 63 (kept)", LONG63, "u", 1, LONG63 "x", "u", 1, 1},
    {"differ at byte 62", LONG63, "u", 1, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
     "u", 1, 2},
    {"name longer than 64, cut alike", LONG63 "xyz" LONG63, "u", 1, LONG63 "qrs", "u", 1, 1},
};

START_TEST(test_keying)
{
    pgp_digest_table_t *t = pgp_digest_create(16, 64);
    ck_assert_ptr_nonnull(t);
    pgp_digest_event_t a = ev_make(key_cases[_i].db1, key_cases[_i].user1, key_cases[_i].fp1,
                                   1000, 1);
    pgp_digest_event_t b = ev_make(key_cases[_i].db2, key_cases[_i].user2, key_cases[_i].fp2,
                                   3000, 2);
    pgp_digest_record(t, &a);
    pgp_digest_record(t, &b);
    pgp_digest_record(t, &a);
    pgp_digest_snapshot_t s = snap(t, PGP_DIGEST_ORDER_CALLS, 0);
    ck_assert_msg(s.count == key_cases[_i].entries, "%s: %zu entries", key_cases[_i].name,
                  s.count);
    ck_assert_uint_eq(s.totals.entries, key_cases[_i].entries);
    ck_assert_uint_eq(s.totals.calls, 3);
    if (s.count == 2) {
        ck_assert_uint_eq(s.entries[0].calls, 2);   /* a */
        ck_assert_uint_eq(s.entries[1].calls, 1);
        ck_assert_uint_eq(s.entries[1].total_ns, 3000);
    }
    for (size_t i = 0; i < s.count; i++) {
        ck_assert_uint_le(strlen(s.entries[i].database), 63);
        ck_assert_uint_le(strlen(s.entries[i].user), 63);
    }
    pgp_digest_snapshot_free(&s);
    pgp_digest_destroy(t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Eviction                                                            */
/* ------------------------------------------------------------------ */

/* Scripted: capacity 3; the letters are fingerprints. */
START_TEST(test_eviction_order)
{
    pgp_digest_table_t *t = pgp_digest_create(3, 64);
    ck_assert_ptr_nonnull(t);
    const char *script = "ABCAD";   /* D evicts B (A was touched after B) */
    for (size_t i = 0; script[i]; i++) {
        pgp_digest_event_t ev = ev_make("db", "u", (uint64_t)script[i], 1000, i);
        pgp_digest_record(t, &ev);
    }
    pgp_digest_snapshot_t s = snap(t, PGP_DIGEST_ORDER_TOTAL, 0);
    ck_assert_uint_eq(s.count, 3);
    ck_assert_ptr_nonnull(find(&s, "db", "u", 'A'));
    ck_assert_ptr_null(find(&s, "db", "u", 'B'));
    ck_assert_ptr_nonnull(find(&s, "db", "u", 'C'));
    ck_assert_ptr_nonnull(find(&s, "db", "u", 'D'));
    ck_assert_uint_eq(find(&s, "db", "u", 'A')->calls, 2);
    ck_assert_uint_eq(s.totals.evictions, 1);
    pgp_digest_snapshot_free(&s);

    /* B comes back as a new entry (first_seen restarts), C is evicted */
    pgp_digest_event_t ev = ev_make("db", "u", 'B', 5000, 100);
    pgp_digest_record(t, &ev);
    s = snap(t, PGP_DIGEST_ORDER_TOTAL, 0);
    ck_assert_ptr_null(find(&s, "db", "u", 'C'));
    ck_assert_uint_eq(find(&s, "db", "u", 'B')->calls, 1);
    ck_assert_uint_eq(find(&s, "db", "u", 'B')->first_seen_ns, 100);
    ck_assert_uint_eq(find(&s, "db", "u", 'B')->min_ns, 5000);
    ck_assert_uint_eq(s.totals.evictions, 2);
    ck_assert_uint_eq(s.totals.calls, 6);
    pgp_digest_snapshot_free(&s);
    pgp_digest_destroy(t);
}
END_TEST

/* Random keys against a reference LRU (an array ordered by recency). */
static const struct {
    size_t capacity;
    uint64_t key_space;
    size_t records;
} lru_cases[] = {
    {1, 3, 2000}, {4, 6, 5000}, {64, 100, 20000}, {64, 10000, 20000}, {500, 600, 30000},
};

START_TEST(test_eviction_model)
{
    rng_state = 77 + (uint64_t)_i;
    size_t cap = lru_cases[_i].capacity;
    pgp_digest_table_t *t = pgp_digest_create(cap, 16);
    ck_assert_ptr_nonnull(t);
    uint64_t *model = calloc(cap, sizeof(*model));      /* model[0] most recent */
    uint64_t *calls = calloc(cap, sizeof(*calls));
    ck_assert(model != NULL && calls != NULL);
    size_t held = 0;
    uint64_t evictions = 0;
    static const char *users[] = {"alice", "bob"};
    for (size_t r = 0; r < lru_cases[_i].records; r++) {
        uint64_t key = rng_next() % lru_cases[_i].key_space;
        /* the user is part of the key: key parity picks it */
        pgp_digest_event_t ev = ev_make("db", users[key & 1], key >> 1, 1000, r);
        pgp_digest_record(t, &ev);
        size_t pos = 0;
        while (pos < held && model[pos] != key)
            pos++;
        uint64_t c = 0;
        if (pos < held) {
            c = calls[pos];
        } else if (held < cap) {
            pos = held++;
        } else {
            pos = held - 1;    /* the least recent falls off */
            evictions++;
        }
        memmove(&model[1], &model[0], pos * sizeof(*model));
        memmove(&calls[1], &calls[0], pos * sizeof(*calls));
        model[0] = key;
        calls[0] = c + 1;
    }
    pgp_digest_snapshot_t s = snap(t, PGP_DIGEST_ORDER_CALLS, 0);
    ck_assert_uint_eq(s.count, held);
    ck_assert_uint_eq(s.totals.evictions, evictions);
    ck_assert_uint_eq(s.totals.calls, lru_cases[_i].records);
    for (size_t i = 0; i < held; i++) {
        const pgp_digest_entry_t *e = find(&s, "db", users[model[i] & 1], model[i] >> 1);
        ck_assert_msg(e != NULL, "key %llu missing", (unsigned long long)model[i]);
        ck_assert_uint_eq(e->calls, calls[i]);
        /* recency agrees: the model's order is the order of last_seen */
        if (i > 0) {
            const pgp_digest_entry_t *newer =
                find(&s, "db", users[model[i - 1] & 1], model[i - 1] >> 1);
            ck_assert_uint_gt(newer->last_seen_ns, e->last_seen_ns);
        }
    }
    pgp_digest_snapshot_free(&s);
    free(model);
    free(calls);
    pgp_digest_destroy(t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* SQL text                                                            */
/* ------------------------------------------------------------------ */

static const struct {
    const char *name;
    size_t max_sql;
    const char *text;
    size_t len;            /* bytes given */
    const char *kept;
    bool truncated;
} text_cases[] = {
    {"fits", 16, "SELECT ?", 8, "SELECT ?", false},
    {"exactly the cap", 8, "SELECT ?", 8, "SELECT ?", false},
    {"cut", 6, "SELECT ?", 8, "SELECT", true},
    {"len, not NUL", 64, "SELECT ?; garbage", 8, "SELECT ?", false},
    {"cap 0 keeps none", 0, "SELECT ?", 8, "", true},
    {"empty text", 16, "", 0, "", false},
    {"NULL text", 16, NULL, 0, "", false},
    /* "é" is C3 A9: a cut inside it backs off to the character boundary */
    {"utf-8 cut inside a char", 8, "SELECT \xc3\xa9x", 10, "SELECT ", true},
    {"utf-8 char ends at the cap", 9, "SELECT \xc3\xa9x", 10, "SELECT \xc3\xa9", true},
    {"utf-8 fits", 9, "SELECT\xc3\xa9x", 9, "SELECT\xc3\xa9x", false},
    /* U+1F600 is F0 9F 98 80: cuts after 1, 2 or 3 of its bytes all back off */
    {"utf-8 4-byte, 1 kept", 3, "ab\xf0\x9f\x98\x80", 6, "ab", true},
    {"utf-8 4-byte, 3 kept", 5, "ab\xf0\x9f\x98\x80", 6, "ab", true},
    {"utf-8 cut after char", 8, "SELECT\xc3\xa9x", 9, "SELECT\xc3\xa9", true},
    {"invalid utf-8 left alone", 4, "\x80\x80\x80\x80\x80\x80", 6, "\x80", true},
};

START_TEST(test_sql_text)
{
    pgp_digest_table_t *t = pgp_digest_create(4, text_cases[_i].max_sql);
    ck_assert_ptr_nonnull(t);
    pgp_digest_event_t ev = ev_make("db", "u", 1, 1000, 1);
    ev.normalized = text_cases[_i].text;
    ev.normalized_len = text_cases[_i].len;
    pgp_digest_record(t, &ev);
    /* the text is set on the first record only */
    ev.normalized = "SELECT 2";
    ev.normalized_len = 8;
    pgp_digest_record(t, &ev);
    pgp_digest_snapshot_t s = snap(t, PGP_DIGEST_ORDER_TOTAL, 0);
    ck_assert_uint_eq(s.count, 1);
    const pgp_digest_entry_t *e = &s.entries[0];
    ck_assert_msg(strcmp(e->normalized, text_cases[_i].kept) == 0, "%s: kept \"%s\"",
                  text_cases[_i].name, e->normalized);
    ck_assert_uint_eq(e->normalized_len, strlen(text_cases[_i].kept));
    ck_assert_uint_le(e->normalized_len, text_cases[_i].max_sql);
    ck_assert_int_eq(e->normalized_truncated, text_cases[_i].truncated);
    ck_assert_uint_eq(s.totals.sql_truncated, text_cases[_i].truncated ? 1 : 0);
    pgp_digest_snapshot_free(&s);
    pgp_digest_destroy(t);
}
END_TEST

/* A recycled slot takes the new entry's text (buffer reuse, longer and shorter). */
START_TEST(test_sql_text_reuse)
{
    pgp_digest_table_t *t = pgp_digest_create(1, 64);
    ck_assert_ptr_nonnull(t);
    static const char *texts[] = {"SELECT 1", "SELECT a, b, c FROM t WHERE x = ?", "S", ""};
    for (size_t i = 0; i < N_OF(texts); i++) {
        pgp_digest_event_t ev = ev_make("db", "u", i, 1000, i);
        ev.normalized = texts[i];
        ev.normalized_len = strlen(texts[i]);
        pgp_digest_record(t, &ev);
        pgp_digest_snapshot_t s = snap(t, PGP_DIGEST_ORDER_TOTAL, 0);
        ck_assert_uint_eq(s.count, 1);
        ck_assert_str_eq(s.entries[0].normalized, texts[i]);
        ck_assert_uint_eq(s.entries[0].fingerprint, i);
        pgp_digest_snapshot_free(&s);
    }
    pgp_digest_destroy(t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Snapshot order and limit                                            */
/* ------------------------------------------------------------------ */

/* Five fingerprints chosen so the three orders differ:
 * fp  calls  each    total   mean
 * 1   1      900us   900us   900us
 * 2   10     10us    100us   10us
 * 3   4      100us   400us   100us
 * 4   2      500us   1000us  500us
 * 5   4      100us   400us   100us   (ties with 3: fingerprint ascending) */
static const uint64_t order_calls[] = {1, 10, 4, 2, 4};
static const uint64_t order_each_us[] = {900, 10, 100, 500, 100};

static const struct {
    pgp_digest_order_t order;
    size_t limit;
    size_t count;
    uint64_t fps[5];
} order_cases[] = {
    {PGP_DIGEST_ORDER_TOTAL, 0, 5, {4, 1, 3, 5, 2}},
    {PGP_DIGEST_ORDER_MEAN, 0, 5, {1, 4, 3, 5, 2}},
    {PGP_DIGEST_ORDER_CALLS, 0, 5, {2, 3, 5, 4, 1}},
    {PGP_DIGEST_ORDER_TOTAL, 2, 2, {4, 1}},
    {PGP_DIGEST_ORDER_MEAN, 3, 3, {1, 4, 3}},
    {PGP_DIGEST_ORDER_CALLS, 1, 1, {2}},
    {PGP_DIGEST_ORDER_CALLS, 2, 2, {2, 3}},
    {PGP_DIGEST_ORDER_TOTAL, 4, 4, {4, 1, 3, 5}},
    {PGP_DIGEST_ORDER_TOTAL, 5, 5, {4, 1, 3, 5, 2}},
    {PGP_DIGEST_ORDER_MEAN, 99, 5, {1, 4, 3, 5, 2}},
};

START_TEST(test_snapshot_order)
{
    pgp_digest_table_t *t = pgp_digest_create(16, 64);
    ck_assert_ptr_nonnull(t);
    /* interleave the records so insertion order says nothing */
    uint64_t now = 0;
    for (uint64_t round = 0; round < 10; round++)
        for (size_t f = N_OF(order_calls); f-- > 0;)
            if (round < order_calls[f]) {
                pgp_digest_event_t ev = ev_make("db", "u", f + 1, order_each_us[f] * 1000, ++now);
                pgp_digest_record(t, &ev);
            }
    pgp_digest_snapshot_t s = snap(t, order_cases[_i].order, order_cases[_i].limit);
    ck_assert_uint_eq(s.count, order_cases[_i].count);
    ck_assert_uint_eq(s.totals.entries, 5);
    for (size_t i = 0; i < s.count; i++)
        ck_assert_msg(s.entries[i].fingerprint == order_cases[_i].fps[i],
                      "case %d position %zu: fp %llu want %llu", _i, i,
                      (unsigned long long)s.entries[i].fingerprint,
                      (unsigned long long)order_cases[_i].fps[i]);
    pgp_digest_snapshot_free(&s);
    pgp_digest_snapshot_free(&s);   /* idempotent */
    pgp_digest_destroy(t);
}
END_TEST

/* Top-k selection on many entries equals a full sort cut to k. */
START_TEST(test_snapshot_limit_large)
{
    static const size_t limits[] = {1, 7, 100, 999, 1000};
    rng_state = 5;
    pgp_digest_table_t *t = pgp_digest_create(1000, 8);
    ck_assert_ptr_nonnull(t);
    for (int r = 0; r < 20000; r++) {
        /* few distinct durations: many ties, broken by fingerprint */
        pgp_digest_event_t ev = ev_make("db", "u", rng_next() % 1000, 1000 * (1 + rng_next() % 8), r);
        pgp_digest_record(t, &ev);
    }
    pgp_digest_order_t order = (pgp_digest_order_t)(_i % 3);
    pgp_digest_snapshot_t all = snap(t, order, 0);
    ck_assert_uint_eq(all.count, 1000);
    for (size_t j = 0; j < N_OF(limits); j++) {
        pgp_digest_snapshot_t s = snap(t, order, limits[j]);
        ck_assert_uint_eq(s.count, limits[j]);
        for (size_t i = 0; i < s.count; i++) {
            ck_assert_uint_eq(s.entries[i].fingerprint, all.entries[i].fingerprint);
            ck_assert_str_eq(s.entries[i].normalized, all.entries[i].normalized);
        }
        pgp_digest_snapshot_free(&s);
    }
    pgp_digest_snapshot_free(&all);
    pgp_digest_destroy(t);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Reset, arguments, totals                                            */
/* ------------------------------------------------------------------ */

START_TEST(test_reset)
{
    pgp_digest_table_t *t = pgp_digest_create(2, 64);
    ck_assert_ptr_nonnull(t);
    for (uint64_t i = 0; i < 5; i++) {
        pgp_digest_event_t ev = ev_make("db", "u", i, 1000, i);
        ev.error = true;
        pgp_digest_record(t, &ev);
    }
    pgp_digest_totals_t tot;
    pgp_digest_totals(t, &tot);
    ck_assert_uint_eq(tot.entries, 2);
    ck_assert_uint_eq(tot.max_entries, 2);
    ck_assert_uint_eq(tot.evictions, 3);
    ck_assert_uint_eq(tot.calls, 5);
    ck_assert_uint_eq(tot.errors, 5);
    pgp_digest_reset(t);
    pgp_digest_totals(t, &tot);
    ck_assert_uint_eq(tot.entries + tot.evictions + tot.calls + tot.errors, 0);
    pgp_digest_snapshot_t s = snap(t, PGP_DIGEST_ORDER_TOTAL, 0);
    ck_assert_uint_eq(s.count, 0);
    pgp_digest_snapshot_free(&s);
    /* the old keys are gone from the index too: re-recording one is a new entry */
    pgp_digest_event_t ev = ev_make("db", "u", 4, 7000, 50);
    pgp_digest_record(t, &ev);
    s = snap(t, PGP_DIGEST_ORDER_TOTAL, 0);
    ck_assert_uint_eq(s.count, 1);
    ck_assert_uint_eq(s.entries[0].calls, 1);
    ck_assert_uint_eq(s.entries[0].errors, 0);
    ck_assert_uint_eq(s.entries[0].min_ns, 7000);
    ck_assert_uint_eq(s.entries[0].first_seen_ns, 50);
    pgp_digest_snapshot_free(&s);
    pgp_digest_destroy(t);
}
END_TEST

static const struct {
    size_t max_entries, max_sql;
    bool ok;
} create_cases[] = {
    {0, 100, false},
    {1, 0, true},
    {PGP_DIGEST_DEFAULT_MAX_ENTRIES, 16384, true},
    {PGP_DIGEST_MAX_ENTRIES_LIMIT + 1, 100, false},
    {10, (size_t)UINT32_MAX, false},
};

START_TEST(test_create_args)
{
    pgp_digest_table_t *t = pgp_digest_create(create_cases[_i].max_entries,
                                              create_cases[_i].max_sql);
    ck_assert_int_eq(t != NULL, create_cases[_i].ok);
    pgp_digest_destroy(t);
}
END_TEST

START_TEST(test_order_parse)
{
    pgp_digest_order_t o = PGP_DIGEST_ORDER_CALLS;
    ck_assert_int_eq(pgp_digest_order_parse("total", 5, &o), 0);
    ck_assert_int_eq(o, PGP_DIGEST_ORDER_TOTAL);
    ck_assert_int_eq(pgp_digest_order_parse("mean", 4, &o), 0);
    ck_assert_int_eq(o, PGP_DIGEST_ORDER_MEAN);
    ck_assert_int_eq(pgp_digest_order_parse("callsX", 5, &o), 0);
    ck_assert_int_eq(o, PGP_DIGEST_ORDER_CALLS);
    ck_assert_int_eq(pgp_digest_order_parse("call", 4, &o), -EINVAL);
    ck_assert_int_eq(pgp_digest_order_parse("TOTAL", 5, &o), -EINVAL);
    ck_assert_int_eq(pgp_digest_order_parse("", 0, &o), -EINVAL);
}
END_TEST

START_TEST(test_memory_bound)
{
    size_t slot = pgp_digest_slot_bytes();
    ck_assert_uint_ge(slot, sizeof(pgp_histogram_t) + 2 * PGP_DIGEST_NAME_BYTES);
    ck_assert_uint_le(slot, sizeof(pgp_histogram_t) + 2 * PGP_DIGEST_NAME_BYTES + 256);
    size_t b = pgp_digest_max_bytes(5000, 2048);
    ck_assert_uint_ge(b, 5000 * (slot + 2049));
    ck_assert_uint_le(b, 5000 * (slot + 2049) + 16384 * 4 + 1024);
    printf("digest: %zu bytes per slot; 5000 entries: %zu bytes with 2 KiB SQL, %zu with 16 KiB\n",
           slot, b, pgp_digest_max_bytes(5000, 16384));
}
END_TEST

/* ------------------------------------------------------------------ */
/* Concurrency                                                         */
/* ------------------------------------------------------------------ */

typedef struct race {
    pgp_digest_table_t *t;
    int stop;
    uint64_t recorded;
} race_t;

static void *race_writer(void *arg)
{
    race_t *r = arg;
    uint64_t n = 0;
    while (!__atomic_load_n(&r->stop, __ATOMIC_RELAXED)) {
        /* 200 keys fit in 256 entries: no evictions, so calls must add up */
        pgp_digest_event_t ev = ev_make("db", (n / 7) & 1 ? "a" : "b", n % 100,
                                        1000 + (n % 5000) * 100, n);
        pgp_digest_record(r->t, &ev);
        n++;
    }
    r->recorded = n;
    return NULL;
}

START_TEST(test_concurrent_record_snapshot)
{
    race_t r = {.t = pgp_digest_create(256, 64), .stop = 0};
    ck_assert_ptr_nonnull(r.t);
    pthread_t w;
    ck_assert_int_eq(pthread_create(&w, NULL, race_writer, &r), 0);
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t last_calls = 0, snapshots = 0;
    do {
        pgp_digest_snapshot_t s = snap(r.t, (pgp_digest_order_t)(snapshots % 3),
                                       snapshots % 2 ? 10 : 0);
        uint64_t sum = 0;
        for (size_t i = 0; i < s.count; i++) {
            const pgp_digest_entry_t *e = &s.entries[i];
            sum += e->calls;
            ck_assert(e->min_ns <= e->p50_ns && e->p50_ns <= e->p95_ns &&
                      e->p95_ns <= e->p99_ns && e->p99_ns <= e->max_ns);
            ck_assert(e->mean_ns >= (double)e->min_ns && e->mean_ns <= (double)e->max_ns);
            ck_assert_str_eq(e->normalized, "SELECT ?");
        }
        /* a consistent copy: the entries' calls add up to the total taken with them */
        if (s.count == s.totals.entries)
            ck_assert_uint_eq(sum, s.totals.calls);
        ck_assert_uint_ge(s.totals.calls, last_calls);
        ck_assert_uint_eq(s.totals.evictions, 0);
        last_calls = s.totals.calls;
        pgp_digest_snapshot_free(&s);
        snapshots++;
        clock_gettime(CLOCK_MONOTONIC, &now);
    } while ((now.tv_sec - t0.tv_sec) * 1000000000L + (now.tv_nsec - t0.tv_nsec) < 1000000000L);
    __atomic_store_n(&r.stop, 1, __ATOMIC_RELAXED);
    ck_assert_int_eq(pthread_join(w, NULL), 0);
    pgp_digest_totals_t tot;
    pgp_digest_totals(r.t, &tot);
    ck_assert_uint_eq(tot.calls, r.recorded);
    ck_assert_uint_eq(tot.entries, 200);
    printf("concurrent: %llu records, %llu snapshots in 1 s\n", (unsigned long long)r.recorded,
           (unsigned long long)snapshots);
    ck_assert_uint_gt(snapshots, 10);
    ck_assert_uint_gt(r.recorded, 1000);
    pgp_digest_destroy(r.t);
}
END_TEST

static Suite *digest_suite(void)
{
    Suite *s = suite_create("digest");

    TCase *tc = tcase_create("stats");
    tcase_add_loop_test(tc, test_welford, 0, (int)N_OF(welford_cases));
    tcase_add_test(tc, test_entry_percentiles);
    suite_add_tcase(s, tc);

    tc = tcase_create("keys");
    tcase_add_loop_test(tc, test_keying, 0, (int)N_OF(key_cases));
    tcase_add_test(tc, test_eviction_order);
    tcase_add_loop_test(tc, test_eviction_model, 0, (int)N_OF(lru_cases));
    suite_add_tcase(s, tc);

    tc = tcase_create("text");
    tcase_add_loop_test(tc, test_sql_text, 0, (int)N_OF(text_cases));
    tcase_add_test(tc, test_sql_text_reuse);
    suite_add_tcase(s, tc);

    tc = tcase_create("snapshot");
    tcase_add_loop_test(tc, test_snapshot_order, 0, (int)N_OF(order_cases));
    tcase_add_loop_test(tc, test_snapshot_limit_large, 0, 3);
    tcase_add_test(tc, test_reset);
    tcase_add_loop_test(tc, test_create_args, 0, (int)N_OF(create_cases));
    tcase_add_test(tc, test_order_parse);
    tcase_add_test(tc, test_memory_bound);
    suite_add_tcase(s, tc);

    tc = tcase_create("threads");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_concurrent_record_snapshot);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(digest_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
