/*
 * test_histogram.c - unit tests for pgproxy/histogram.c: the bucket math of
 * the log-bucketed histogram (exact edges, clamping), percentiles against a
 * sorted copy of known distributions (nearest rank, within the documented
 * relative error), merge, saturation, and the exact cumulative counts of
 * the fixed-bound Prometheus histogram.  Expected values in the tables were
 * worked out by hand from the layout in histogram.h, not by this code.
 */
#include "pgproxy/histogram.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ------------------------------------------------------------------ */
/* Bucket math                                                         */
/* ------------------------------------------------------------------ */

static const struct {
    uint64_t ns;
    size_t index;
} index_cases[] = {
    {0, 0},                          /* below range: first bucket */
    {1, 0},
    {1023, 0},
    {1024, 0},                       /* [1024, 1088) */
    {1087, 0},
    {1088, 1},
    {2047, 15},
    {2048, 16},                      /* next power of two: [2048, 2176) */
    {3000, 23},                      /* 2048 + 7 * 128 = 2944 <= 3000 < 3072 */
    {65535, 95},
    {65536, 96},                     /* 2^16: (16 - 10) * 16 */
    {1000000, 158},                  /* 2^19 + 14 * 2^15 = 983040 <= 1e6 < 1015808 */
    {999999999, 317},                /* 2^29 + 13 * 2^25 */
    {(UINT64_C(1) << 40) - 1, 479},  /* last in range */
    {UINT64_C(1) << 40, 479},        /* above range: last bucket */
    {UINT64_MAX, 479},
};

START_TEST(test_bucket_index)
{
    ck_assert_uint_eq(pgp_histogram_bucket_index(index_cases[_i].ns), index_cases[_i].index);
}
END_TEST

static const struct {
    size_t index;
    uint64_t lower, upper;
} edge_cases[] = {
    {0, 1024, 1088},
    {1, 1088, 1152},
    {15, 1984, 2048},
    {16, 2048, 2176},
    {158, 983040, 1015808},
    {479, (UINT64_C(1) << 40) - (UINT64_C(1) << 35), UINT64_C(1) << 40},   /* [2^39, 2^40) / 16 */
};

START_TEST(test_bucket_edges)
{
    ck_assert_uint_eq(pgp_histogram_bucket_lower_ns(edge_cases[_i].index), edge_cases[_i].lower);
    ck_assert_uint_eq(pgp_histogram_bucket_upper_ns(edge_cases[_i].index), edge_cases[_i].upper);
}
END_TEST

/* Every bucket: contiguous with the next, its edges map back to it, and its
 * width is at most 1/16 of its lower edge (the source of the error bound). */
START_TEST(test_bucket_every_edge)
{
    ck_assert_uint_eq(PGP_HISTOGRAM_BUCKETS, 480);
    ck_assert_uint_eq(pgp_histogram_bucket_lower_ns(0), PGP_HISTOGRAM_MIN_NS);
    ck_assert_uint_eq(pgp_histogram_bucket_upper_ns(PGP_HISTOGRAM_BUCKETS - 1),
                      PGP_HISTOGRAM_MAX_NS);
    for (size_t i = 0; i < PGP_HISTOGRAM_BUCKETS; i++) {
        uint64_t lo = pgp_histogram_bucket_lower_ns(i);
        uint64_t hi = pgp_histogram_bucket_upper_ns(i);
        ck_assert_uint_lt(lo, hi);
        ck_assert_msg((hi - lo) * 16 <= lo, "bucket %zu [%llu, %llu) too wide", i,
                      (unsigned long long)lo, (unsigned long long)hi);
        ck_assert_uint_eq(pgp_histogram_bucket_index(lo), i);
        ck_assert_uint_eq(pgp_histogram_bucket_index(hi - 1), i);
        if (i + 1 < PGP_HISTOGRAM_BUCKETS)
            ck_assert_uint_eq(pgp_histogram_bucket_lower_ns(i + 1), hi);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* Percentiles on known distributions                                  */
/* ------------------------------------------------------------------ */

static uint64_t rng_state;

static uint64_t rng_next(void)
{
    /* splitmix64: fixed seed, same sequence on every machine */
    uint64_t z = (rng_state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static double rng_unit(void)
{
    return (double)(rng_next() >> 11) / 9007199254740992.0;   /* [0, 1) */
}

enum dist { D_CONSTANT, D_UNIFORM, D_EXPONENTIAL, D_LOGNORMAL, D_BIMODAL, D_SEQUENCE };

static const struct {
    const char *name;
    enum dist dist;
    size_t n;
} dist_cases[] = {
    {"constant 3ms", D_CONSTANT, 1000},
    {"uniform 10us..10ms", D_UNIFORM, 100000},
    {"exponential mean 2ms", D_EXPONENTIAL, 100000},
    {"lognormal median 500us", D_LOGNORMAL, 100000},
    {"bimodal 50us / 800ms", D_BIMODAL, 20000},
    {"sequence 1..1000 us", D_SEQUENCE, 1000},
    {"single value", D_UNIFORM, 1},
    {"seven values", D_EXPONENTIAL, 7},
};

static uint64_t draw(enum dist d, size_t i)
{
    switch (d) {
    case D_CONSTANT:
        return 3000000;
    case D_UNIFORM:
        return 10000 + (uint64_t)(rng_unit() * 9990000.0);
    case D_EXPONENTIAL:
        return 1024 + (uint64_t)(-log(1.0 - rng_unit()) * 2000000.0);
    case D_LOGNORMAL: {
        /* Box-Muller */
        double z = sqrt(-2.0 * log(1.0 - rng_unit())) * cos(2.0 * M_PI * rng_unit());
        return (uint64_t)(500000.0 * exp(1.2 * z)) + 1024;
    }
    case D_BIMODAL:
        return rng_unit() < 0.9 ? 50000 + rng_next() % 5000 : 800000000 + rng_next() % 1000000;
    case D_SEQUENCE:
        return (uint64_t)(i + 1) * 1000 + 1024;
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static const unsigned percent_cases[] = {1, 10, 25, 50, 75, 90, 95, 99, 100};

START_TEST(test_percentiles_known)
{
    rng_state = 42 + (uint64_t)_i;
    size_t n = dist_cases[_i].n;
    uint64_t *v = malloc(n * sizeof(*v));
    ck_assert_ptr_nonnull(v);
    pgp_histogram_t h;
    pgp_histogram_init(&h);
    for (size_t i = 0; i < n; i++) {
        v[i] = draw(dist_cases[_i].dist, i);
        pgp_histogram_record(&h, v[i]);
    }
    qsort(v, n, sizeof(*v), cmp_u64);
    ck_assert_uint_eq(h.count, n);
    ck_assert_uint_eq(h.min_ns, v[0]);
    ck_assert_uint_eq(h.max_ns, v[n - 1]);

    double qs[N_OF(percent_cases)];
    uint64_t got_all[N_OF(percent_cases)];
    for (size_t j = 0; j < N_OF(percent_cases); j++)
        qs[j] = percent_cases[j] / 100.0;
    pgp_histogram_percentiles(&h, qs, got_all, N_OF(percent_cases));

    for (size_t j = 0; j < N_OF(percent_cases); j++) {
        /* nearest rank, in integers: ceil(p * n / 100) */
        size_t rank = (percent_cases[j] * n + 99) / 100;
        if (rank < 1)
            rank = 1;
        uint64_t want = v[rank - 1];
        uint64_t got = pgp_histogram_percentile(&h, qs[j]);
        double err = fabs((double)got - (double)want) / (double)want;
        ck_assert_msg(err <= PGP_HISTOGRAM_REL_ERROR,
                      "%s p%u: got %llu want %llu (error %.4f > %.4f)", dist_cases[_i].name,
                      percent_cases[j], (unsigned long long)got, (unsigned long long)want, err,
                      PGP_HISTOGRAM_REL_ERROR);
        ck_assert_uint_eq(got_all[j], got);
    }
    ck_assert_uint_eq(pgp_histogram_percentile(&h, 1.0), v[n - 1]);   /* exact max */
    ck_assert_uint_eq(pgp_histogram_percentile(&h, 0.0), v[0]);       /* exact min */
    free(v);
}
END_TEST

/* A value exactly at a bucket's lower edge is reported as the bucket's
 * midpoint: the worst case of the bound, and exactly at it. */
START_TEST(test_percentile_error_is_tight)
{
    pgp_histogram_t h;
    pgp_histogram_init(&h);
    pgp_histogram_record(&h, 2048);      /* bucket [2048, 2176), midpoint 2112 */
    pgp_histogram_record(&h, 2048);
    pgp_histogram_record(&h, 1000000000);
    ck_assert_uint_eq(pgp_histogram_percentile(&h, 0.5), 2112);
    ck_assert(fabs(2112.0 - 2048.0) / 2048.0 <= PGP_HISTOGRAM_REL_ERROR);
    ck_assert(PGP_HISTOGRAM_REL_ERROR <= 0.05);
}
END_TEST

static const struct {
    uint64_t value;
    uint64_t p50;        /* with min = max = value, clamping gives the value */
} clamp_cases[] = {
    {0, 0}, {5, 5}, {1023, 1023}, {UINT64_C(1) << 40, UINT64_C(1) << 40},
    {UINT64_MAX, UINT64_MAX},
};

START_TEST(test_clamping)
{
    pgp_histogram_t h;
    pgp_histogram_init(&h);
    pgp_histogram_record(&h, clamp_cases[_i].value);
    pgp_histogram_record(&h, clamp_cases[_i].value);
    size_t b = clamp_cases[_i].value < PGP_HISTOGRAM_MIN_NS ? 0 : PGP_HISTOGRAM_BUCKETS - 1;
    ck_assert_uint_eq(h.buckets[b], 2);
    ck_assert_uint_eq(pgp_histogram_percentile(&h, 0.5), clamp_cases[_i].p50);
    ck_assert_uint_eq(pgp_histogram_percentile(&h, 0.99), clamp_cases[_i].p50);
}
END_TEST

/* Out-of-range values mixed with in-range ones: the clamped ones land in the
 * first/last bucket and percentiles stay inside [min, max]. */
START_TEST(test_clamping_mixed)
{
    pgp_histogram_t h;
    pgp_histogram_init(&h);
    for (int i = 0; i < 10; i++)
        pgp_histogram_record(&h, 100);                        /* below range */
    for (int i = 0; i < 80; i++)
        pgp_histogram_record(&h, 5000000);                    /* 5 ms */
    for (int i = 0; i < 10; i++)
        pgp_histogram_record(&h, UINT64_C(3000000000000));    /* 3000 s, above range */
    ck_assert_uint_eq(h.buckets[0], 10);
    ck_assert_uint_eq(h.buckets[PGP_HISTOGRAM_BUCKETS - 1], 10);
    ck_assert_uint_eq(pgp_histogram_percentile(&h, 0.05), 1056);   /* bucket 0 midpoint */
    uint64_t p50 = pgp_histogram_percentile(&h, 0.5);
    ck_assert(fabs((double)p50 - 5e6) / 5e6 <= PGP_HISTOGRAM_REL_ERROR);
    /* last bucket [2^40 - 2^35, 2^40): its midpoint is below max, reported as such */
    ck_assert_uint_eq(pgp_histogram_percentile(&h, 0.95),
                      (UINT64_C(1) << 40) - (UINT64_C(1) << 34));
    ck_assert_uint_eq(pgp_histogram_percentile(&h, 1.0), UINT64_C(3000000000000));
}
END_TEST

START_TEST(test_empty_and_odd_q)
{
    pgp_histogram_t h;
    pgp_histogram_init(&h);
    ck_assert_uint_eq(pgp_histogram_percentile(&h, 0.5), 0);
    pgp_histogram_record(&h, 7000);
    pgp_histogram_record(&h, 9000000);
    ck_assert_uint_eq(pgp_histogram_percentile(&h, -1.0), 7000);
    ck_assert_uint_eq(pgp_histogram_percentile(&h, NAN), 7000);
    ck_assert_uint_eq(pgp_histogram_percentile(&h, 2.0), 9000000);
    /* 0.5 * 2 = rank 1: the smaller value's bucket */
    uint64_t p50 = pgp_histogram_percentile(&h, 0.5);
    ck_assert(fabs((double)p50 - 7000.0) / 7000.0 <= PGP_HISTOGRAM_REL_ERROR);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Merge and saturation                                                */
/* ------------------------------------------------------------------ */

START_TEST(test_merge)
{
    pgp_histogram_t a, b, all;
    pgp_histogram_init(&a);
    pgp_histogram_init(&b);
    pgp_histogram_init(&all);
    rng_state = 7;
    for (int i = 0; i < 5000; i++) {
        uint64_t v = draw(D_LOGNORMAL, 0);
        pgp_histogram_record(i % 3 ? &a : &b, v);
        pgp_histogram_record(&all, v);
    }
    pgp_histogram_record(&b, 3);                  /* b alone holds the min */
    pgp_histogram_record(&all, 3);
    pgp_histogram_merge(&a, &b);
    ck_assert_mem_eq(&a, &all, sizeof(a));

    pgp_histogram_t empty;
    pgp_histogram_init(&empty);
    pgp_histogram_merge(&a, &empty);
    ck_assert_mem_eq(&a, &all, sizeof(a));
    pgp_histogram_merge(&empty, &all);
    ck_assert_mem_eq(&empty, &all, sizeof(a));
}
END_TEST

START_TEST(test_saturation)
{
    pgp_histogram_t h, g;
    pgp_histogram_init(&h);
    size_t b = pgp_histogram_bucket_index(50000);
    h.buckets[b] = UINT32_MAX - 1;
    h.count = UINT32_MAX - 1;
    pgp_histogram_record(&h, 50000);
    ck_assert_uint_eq(h.buckets[b], UINT32_MAX);
    ck_assert_uint_eq(h.saturated, 0);
    pgp_histogram_record(&h, 50000);
    ck_assert_uint_eq(h.buckets[b], UINT32_MAX);
    ck_assert_uint_eq(h.saturated, 1);
    ck_assert_uint_eq(h.count, UINT32_MAX);     /* still the sum of the buckets */

    pgp_histogram_init(&g);
    for (int i = 0; i < 5; i++)
        pgp_histogram_record(&g, 50000);
    pgp_histogram_record(&g, 70000);
    pgp_histogram_merge(&h, &g);
    ck_assert_uint_eq(h.buckets[b], UINT32_MAX);
    ck_assert_uint_eq(h.saturated, 6);
    ck_assert_uint_eq(h.count, (uint64_t)UINT32_MAX + 1);
    ck_assert_uint_eq(h.buckets[pgp_histogram_bucket_index(70000)], 1);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Prometheus                                                          */
/* ------------------------------------------------------------------ */

/* Each case records some values; expected cumulative counts per le. */
static const struct {
    const char *name;
    uint64_t values[6];
    size_t n;
    uint64_t cumulative[PGP_HISTOGRAM_PROM_BUCKETS];
} prom_cases[] = {
    {"zero", {0}, 1, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
    {"at 0.0005 (le is <=)", {500000}, 1, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
    {"just past 0.0005", {500001}, 1, {0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
    {"at 1 s", {1000000000}, 1, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1}},
    {"at 10 s", {10000000000u}, 1, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1}},
    {"past 10 s: +Inf only", {10000000001u}, 1, {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
    {"mixed",
     {2000000, 2500000, 2500001, 99999999, 250000000, UINT64_C(1) << 50},
     6,
     {0, 0, 2, 3, 3, 3, 3, 4, 5, 5, 5, 5, 5, 5, 6}},
};

START_TEST(test_prom_cumulative)
{
    pgp_histogram_prom_t p;
    memset(&p, 0, sizeof(p));
    uint64_t sum = 0;
    for (size_t i = 0; i < prom_cases[_i].n; i++) {
        pgp_histogram_prom_record(&p, prom_cases[_i].values[i]);
        sum += prom_cases[_i].values[i];
    }
    pgp_histogram_prom_view_t v;
    memset(&v, 0, sizeof(v));
    pgp_histogram_prom_accumulate(&p, &v);
    for (size_t b = 0; b < PGP_HISTOGRAM_PROM_BUCKETS; b++)
        ck_assert_msg(v.cumulative[b] == prom_cases[_i].cumulative[b],
                      "%s: le=%s got %llu want %llu", prom_cases[_i].name,
                      pgp_histogram_prom_le[b], (unsigned long long)v.cumulative[b],
                      (unsigned long long)prom_cases[_i].cumulative[b]);
    ck_assert_uint_eq(v.count, prom_cases[_i].n);
    ck_assert_uint_eq(v.sum_ns, sum);

    /* two instances (two workers) sum into one view */
    pgp_histogram_prom_accumulate(&p, &v);
    for (size_t b = 0; b < PGP_HISTOGRAM_PROM_BUCKETS; b++)
        ck_assert_uint_eq(v.cumulative[b], 2 * prom_cases[_i].cumulative[b]);
    ck_assert_uint_eq(v.count, 2 * prom_cases[_i].n);
    ck_assert_uint_eq(v.sum_ns, 2 * sum);
}
END_TEST

/* The le texts and the bounds describe the same numbers, ascending. */
START_TEST(test_prom_tables_agree)
{
    for (size_t b = 0; b + 1 < PGP_HISTOGRAM_PROM_BUCKETS; b++) {
        double secs = strtod(pgp_histogram_prom_le[b], NULL);
        ck_assert_msg(llround(secs * 1e9) == (long long)pgp_histogram_prom_bounds_ns[b],
                      "le %s vs %llu ns", pgp_histogram_prom_le[b],
                      (unsigned long long)pgp_histogram_prom_bounds_ns[b]);
        if (b > 0)
            ck_assert_uint_lt(pgp_histogram_prom_bounds_ns[b - 1],
                              pgp_histogram_prom_bounds_ns[b]);
    }
    ck_assert_str_eq(pgp_histogram_prom_le[PGP_HISTOGRAM_PROM_BUCKETS - 1], "+Inf");
}
END_TEST

/* One writer records while this thread accumulates views: every view is
 * internally consistent (cumulative counts ascend, count = +Inf bucket) and
 * grows; the last one sees everything.  Run by hand under TSan too. */
#define PROM_RACE_N 2000000u

static void *prom_writer(void *arg)
{
    pgp_histogram_prom_t *p = arg;
    for (uint32_t i = 0; i < PROM_RACE_N; i++)
        pgp_histogram_prom_record(p, (uint64_t)(i % 1000) * 20000000u);   /* 0 .. 19.98 s */
    return NULL;
}

START_TEST(test_prom_concurrent)
{
    static pgp_histogram_prom_t p;
    memset(&p, 0, sizeof(p));
    pthread_t w;
    ck_assert_int_eq(pthread_create(&w, NULL, prom_writer, &p), 0);
    uint64_t last = 0, views = 0;
    for (;;) {
        pgp_histogram_prom_view_t v;
        memset(&v, 0, sizeof(v));
        pgp_histogram_prom_accumulate(&p, &v);
        for (size_t b = 1; b < PGP_HISTOGRAM_PROM_BUCKETS; b++)
            ck_assert_uint_le(v.cumulative[b - 1], v.cumulative[b]);
        ck_assert_uint_eq(v.count, v.cumulative[PGP_HISTOGRAM_PROM_BUCKETS - 1]);
        ck_assert_uint_ge(v.count, last);
        last = v.count;
        views++;
        if (v.count == PROM_RACE_N)
            break;
    }
    ck_assert_int_eq(pthread_join(w, NULL), 0);
    pgp_histogram_prom_view_t v;
    memset(&v, 0, sizeof(v));
    pgp_histogram_prom_accumulate(&p, &v);
    /* i % 1000 * 20 ms: values <= 10 s are i % 1000 in 0..500, 501 of 1000 */
    ck_assert_uint_eq(v.cumulative[PGP_HISTOGRAM_PROM_BUCKETS - 2], PROM_RACE_N / 1000 * 501);
    ck_assert_uint_eq(v.sum_ns, (uint64_t)(PROM_RACE_N / 1000) * (999 * 1000 / 2) * 20000000u);
    ck_assert_uint_gt(views, 0);
}
END_TEST

static Suite *histogram_suite(void)
{
    Suite *s = suite_create("histogram");

    TCase *tc = tcase_create("buckets");
    tcase_add_loop_test(tc, test_bucket_index, 0, (int)N_OF(index_cases));
    tcase_add_loop_test(tc, test_bucket_edges, 0, (int)N_OF(edge_cases));
    tcase_add_test(tc, test_bucket_every_edge);
    tcase_add_loop_test(tc, test_clamping, 0, (int)N_OF(clamp_cases));
    tcase_add_test(tc, test_clamping_mixed);
    suite_add_tcase(s, tc);

    tc = tcase_create("percentiles");
    tcase_add_loop_test(tc, test_percentiles_known, 0, (int)N_OF(dist_cases));
    tcase_add_test(tc, test_percentile_error_is_tight);
    tcase_add_test(tc, test_empty_and_odd_q);
    suite_add_tcase(s, tc);

    tc = tcase_create("merge");
    tcase_add_test(tc, test_merge);
    tcase_add_test(tc, test_saturation);
    suite_add_tcase(s, tc);

    tc = tcase_create("prometheus");
    tcase_add_loop_test(tc, test_prom_cumulative, 0, (int)N_OF(prom_cases));
    tcase_add_test(tc, test_prom_tables_agree);
    tcase_add_test(tc, test_prom_concurrent);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(histogram_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
