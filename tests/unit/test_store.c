/*
 * test_store.c - unit tests for pgproxy/store.c: ring eviction and
 * get-by-id after eviction, recent and slowest orders with limits, clear
 * (profiles, findings, counters), refcounts (a profile rendered after the
 * store dropped it), findings aggregation counts and ordering, the bound
 * on aggregated keys, merged collapsed stacks, per-session findings,
 * shrinking max_history, JSON validity of every rendering, and a short
 * run of one thread pushing while another reads (run under ASan/TSan).
 */
#include "pgproxy/store.h"

#include "json_check.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define MS UINT64_C(1000000)
#define WALL0 UINT64_C(1764118714123000000)

typedef struct tstmt {
    pgp_profile_stmt_t st;
    pgp_norm_tags_t tags;
    char norm[4096];
} tstmt_t;

static void mk(tstmt_t *t, const char *sql, uint64_t start, uint64_t dur)
{
    pgp_norm_result_t res;
    size_t len = strlen(sql);
    pgp_normalize(sql, len, NULL, t->norm, sizeof(t->norm), &t->tags, &res);
    t->st = (pgp_profile_stmt_t){
        .start_ns = start, .end_ns = start + dur, .start_wall_ns = WALL0 + start,
        .sql = sql, .sql_len = len, .normalized = t->norm, .normalized_len = res.out_len,
        .fingerprint = res.fingerprint, .values_hash = res.values_hash, .kind = res.kind,
        .set_local = res.set_local, .name = sql + res.name_off, .name_len = res.name_len,
        .tags = t->tags.count > 0 ? &t->tags : NULL, .rows = 1, .sqlstate = "",
        .application_name = ""};
}

static void on_finish(void *ud, pgp_profile_t *p)
{
    pgp_profile_t **out = ud;
    ck_assert_ptr_null(*out);
    *out = p;
}

/*
 * One request of session `session` labelled by `route`: a list query
 * (rows 10), then `lookups` executions of "SELECT * FROM <table> WHERE id
 * = i" (an N+1 when >= 3), total time about total_us microseconds.
 * Returns the profile (one ref).
 */
static pgp_profile_t *make(uint64_t session, const char *route, const char *table, int lookups,
                           uint64_t total_us)
{
    pgp_profile_config_t cfg = {.request_gap_ns = 250 * MS, .n_plus_one_threshold = 3,
                                .max_events = 100, .max_text_bytes = 16384,
                                .params = PGP_PARAMS_VALUES};
    pgp_profile_t *p = NULL;
    pgp_profiler_t *pr = pgp_profiler_create(&cfg, session, "db", "u", "c", on_finish, &p);
    ck_assert_ptr_nonnull(pr);
    static tstmt_t t;
    char sql[256];
    snprintf(sql, sizeof(sql), "SELECT * FROM lists /*route='%s'*/", route);
    mk(&t, sql, 0, 1000);
    t.st.rows = 10;
    pgp_profiler_record(pr, &t.st);
    for (int i = 0; i < lookups; i++) {
        snprintf(sql, sizeof(sql), "SELECT * FROM %s WHERE id = %d /*route='%s'*/", table, i, route);
        mk(&t, sql, 2000 + (uint64_t)i * 1000, 500);
        pgp_profiler_record(pr, &t.st);
    }
    mk(&t, "SELECT 1", total_us * 1000 - 10, 10);
    pgp_profiler_record(pr, &t.st);
    pgp_profiler_destroy(pr);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* Push and drop our own ref; returns the id. */
static uint64_t push(pgp_profile_store_t *s, pgp_profile_t *p)
{
    uint64_t id = pgp_profile_id(p);
    pgp_profile_store_push(s, p);
    pgp_profile_unref(p);
    return id;
}

typedef enum { R_LIST_RECENT, R_LIST_SLOWEST, R_FINDINGS, R_COLLAPSED, R_SESSION } rkind_t;

/* Renders, checks JSON validity (not for collapsed); returns owned text. */
static char *render(pgp_profile_store_t *s, rkind_t k, size_t limit, uint64_t session)
{
    pgp_render_t r;
    pgp_render_init(&r, 1 << 24);
    int rc = 0;
    switch (k) {
    case R_LIST_RECENT: rc = pgp_profile_store_render_list(s, "recent", limit, &r); break;
    case R_LIST_SLOWEST: rc = pgp_profile_store_render_list(s, "slowest", limit, &r); break;
    case R_FINDINGS: rc = pgp_profile_store_render_findings(s, limit, &r); break;
    case R_COLLAPSED: rc = pgp_profile_store_render_collapsed(s, &r); break;
    case R_SESSION: rc = pgp_profile_store_render_session_findings(s, session, &r); break;
    }
    ck_assert_int_eq(rc, 0);
    size_t n;
    char *out = pgp_render_take(&r, &n);
    ck_assert_ptr_nonnull(out);
    if (k != R_COLLAPSED) {
        if (!json_valid(out, n))
            fprintf(stderr, "invalid JSON: %s\n", out);
        ck_assert(json_valid(out, n));
    }
    return out;
}

/* The values of "key":<uint> in order of appearance, as "a,b,c". */
static void values_of(const char *js, const char *key, char *out, size_t cap)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    out[0] = '\0';
    size_t used = 0;
    for (const char *p = strstr(js, pat); p != NULL; p = strstr(p + 1, pat)) {
        const char *v = p + strlen(pat);
        size_t n = strspn(v, "0123456789");
        if (n == 0)
            continue;
        ck_assert_uint_lt(used + n + 2, cap);
        if (used > 0)
            out[used++] = ',';
        memcpy(out + used, v, n);
        used += n;
        out[used] = '\0';
    }
}

START_TEST(test_ring_eviction)
{
    pgp_profile_store_t *s = pgp_profile_store_create(3);
    uint64_t id[5];
    for (int i = 0; i < 5; i++)
        id[i] = push(s, make(1, "/r", "users", 0, 10 + (uint64_t)i));
    pgp_profile_store_stats_t st;
    pgp_profile_store_stats(s, &st);
    ck_assert_uint_eq(st.held, 3);
    ck_assert_uint_eq(st.evicted, 2);
    ck_assert_uint_eq(st.requests_total, 5);
    ck_assert_ptr_null(pgp_profile_store_get(s, id[0]));
    ck_assert_ptr_null(pgp_profile_store_get(s, id[1]));
    ck_assert_ptr_null(pgp_profile_store_get(s, 0));
    for (int i = 2; i < 5; i++) {
        pgp_profile_t *p = pgp_profile_store_get(s, id[i]);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq(pgp_profile_id(p), id[i]);
        pgp_profile_unref(p);
    }
    char *js = render(s, R_LIST_RECENT, 10, 0);
    char got[256], want[256];
    values_of(js, "id", got, sizeof(got));
    snprintf(want, sizeof(want), "%llu,%llu,%llu", (unsigned long long)id[4],
             (unsigned long long)id[3], (unsigned long long)id[2]);
    ck_assert_str_eq(got, want);
    free(js);
    js = render(s, R_LIST_RECENT, 0, 0);   /* limit 0 acts as 1 */
    values_of(js, "id", got, sizeof(got));
    snprintf(want, sizeof(want), "%llu", (unsigned long long)id[4]);
    ck_assert_str_eq(got, want);
    free(js);
    pgp_profile_store_destroy(s);
}
END_TEST

static const struct {
    uint64_t totals_us[6];
    const char *order;
    size_t limit;
    const char *want_total_ns;
} order_cases[] = {
    {{30, 10, 50, 20}, "slowest", 10, "50000,30000,20000,10000"},
    {{30, 10, 50, 20}, "slowest", 2, "50000,30000"},
    {{30, 10, 50, 20}, "recent", 2, "20000,50000"},
    {{30, 10, 50, 20}, "bogus", 3, "20000,50000,10000"},
    {{5, 5, 7}, "slowest", 3, "7000,5000,5000"},
};

START_TEST(test_orders)
{
    pgp_profile_store_t *s = pgp_profile_store_create(100);
    for (size_t i = 0; i < 6 && order_cases[_i].totals_us[i] != 0; i++)
        push(s, make(1, "/r", "users", 0, order_cases[_i].totals_us[i]));
    char *js = render(s, strcmp(order_cases[_i].order, "slowest") == 0 ? R_LIST_SLOWEST
                                                                       : R_LIST_RECENT,
                      order_cases[_i].limit, 0);
    if (strcmp(order_cases[_i].order, "bogus") == 0) {
        free(js);
        pgp_render_t r;
        pgp_render_init(&r, 1 << 24);
        ck_assert_int_eq(pgp_profile_store_render_list(s, "bogus", order_cases[_i].limit, &r), 0);
        js = pgp_render_take(&r, &(size_t){0});
    }
    char got[256];
    values_of(js, "total_ns", got, sizeof(got));
    ck_assert_str_eq(got, order_cases[_i].want_total_ns);
    free(js);
    pgp_profile_store_destroy(s);
}
END_TEST

START_TEST(test_clear)
{
    pgp_profile_store_t *s = pgp_profile_store_create(10);
    uint64_t id = push(s, make(1, "/r", "users", 5, 100));
    push(s, make(1, "/r", "users", 5, 100));
    pgp_profile_store_stats_t st;
    pgp_profile_store_stats(s, &st);
    ck_assert_uint_eq(st.requests_total, 2);
    ck_assert_uint_eq(st.findings_total, 2);
    pgp_profile_store_clear(s);
    pgp_profile_store_stats(s, &st);
    ck_assert_uint_eq(st.requests_total, 0);
    ck_assert_uint_eq(st.findings_total, 0);
    ck_assert_uint_eq(st.held, 0);
    ck_assert_uint_eq(st.evicted, 0);
    ck_assert_ptr_null(pgp_profile_store_get(s, id));
    char *js = render(s, R_FINDINGS, 0, 0);
    ck_assert_str_eq(js, "[]");
    free(js);
    js = render(s, R_LIST_RECENT, 10, 0);
    ck_assert_str_eq(js, "[]");
    free(js);
    js = render(s, R_COLLAPSED, 0, 0);
    ck_assert_str_eq(js, "");
    free(js);
    /* usable after clear */
    push(s, make(1, "/r", "users", 5, 100));
    pgp_profile_store_stats(s, &st);
    ck_assert_uint_eq(st.held, 1);
    pgp_profile_store_destroy(s);
}
END_TEST

START_TEST(test_refcount_after_drop)
{
    pgp_profile_store_t *s = pgp_profile_store_create(2);
    uint64_t id = push(s, make(1, "/r", "users", 5, 100));
    pgp_profile_t *mine = pgp_profile_store_get(s, id);
    ck_assert_ptr_nonnull(mine);
    push(s, make(1, "/r", "users", 5, 100));
    push(s, make(1, "/r", "users", 5, 100));   /* evicts id */
    ck_assert_ptr_null(pgp_profile_store_get(s, id));
    pgp_profile_store_clear(s);
    pgp_profile_store_destroy(s);
    pgp_render_t r;
    pgp_render_init(&r, 1 << 20);
    ck_assert_int_eq(pgp_profile_render_json(mine, &r), 0);
    ck_assert_ptr_nonnull(strstr(pgp_render_data(&r), "\"type\":\"n_plus_one\""));
    pgp_render_free(&r);
    pgp_profile_unref(mine);
}
END_TEST

START_TEST(test_aggregation)
{
    pgp_profile_store_t *s = pgp_profile_store_create(2);
    push(s, make(1, "/users", "users", 5, 100));
    push(s, make(1, "/users", "users", 7, 100));
    push(s, make(2, "/orders", "items", 4, 100));
    uint64_t last = push(s, make(3, "/users", "users", 3, 100));
    push(s, make(1, "/users", "users", 2, 100));   /* below threshold: no finding */
    pgp_profile_store_stats_t st;
    pgp_profile_store_stats(s, &st);
    ck_assert_uint_eq(st.requests_total, 5);
    ck_assert_uint_eq(st.findings_total, 4);
    ck_assert_uint_eq(st.held, 2);
    char *js = render(s, R_FINDINGS, 0, 0);
    char got[256];
    values_of(js, "occurrences", got, sizeof(got));
    ck_assert_str_eq(got, "3,1");
    values_of(js, "max_count", got, sizeof(got));
    ck_assert_str_eq(got, "7,4");
    values_of(js, "total_count", got, sizeof(got));
    ck_assert_str_eq(got, "15,4");
    values_of(js, "total_ns", got, sizeof(got));
    ck_assert_str_eq(got, "7500,2000");
    values_of(js, "estimated_saving_ns", got, sizeof(got));
    ck_assert_str_eq(got, "6000,1500");   /* (2500-500)+(3500-500)+(1500-500); 2000-500 */
    values_of(js, "last_profile_id", got, sizeof(got));
    char want[64];
    snprintf(want, sizeof(want), "%llu,", (unsigned long long)last);
    ck_assert_msg(strncmp(got, want, strlen(want)) == 0, "%s", got);
    ck_assert_ptr_nonnull(strstr(js, "{\"label\":\"/users\",\"type\":\"n_plus_one\","));
    ck_assert_ptr_nonnull(strstr(js, "\"normalized\":\"SELECT * FROM users WHERE id = ?\","
                                     "\"source_fingerprint\":\""));
    ck_assert_ptr_nonnull(strstr(js, "\"source_normalized\":\"SELECT * FROM lists\""));
    ck_assert_ptr_nonnull(strstr(js, "\"last_seen\":\"2025-11-26T00:58:34.123Z\""));
    free(js);
    js = render(s, R_FINDINGS, 1, 0);
    values_of(js, "occurrences", got, sizeof(got));
    ck_assert_str_eq(got, "3");
    free(js);
    pgp_profile_store_destroy(s);
}
END_TEST

START_TEST(test_aggregation_bound)
{
    pgp_profile_store_t *s = pgp_profile_store_create(4);
    char table[32];
    for (unsigned i = 0; i < PGP_STORE_MAX_FINDING_KEYS + 5; i++) {
        snprintf(table, sizeof(table), "t%u", i);
        push(s, make(1, "/r", table, 3, 100));
    }
    /* t0 seen again: it becomes the newest key (it was already evicted: re-added) */
    push(s, make(1, "/r", "t0", 3, 100));
    char *js = render(s, R_FINDINGS, 0, 0);
    char got[16384];
    values_of(js, "occurrences", got, sizeof(got));
    size_t commas = 0;
    for (const char *p = got; *p; p++)
        commas += *p == ',';
    ck_assert_uint_eq(commas + 1, PGP_STORE_MAX_FINDING_KEYS);
    ck_assert_ptr_null(strstr(js, "FROM t1 WHERE"));
    ck_assert_ptr_null(strstr(js, "FROM t5 WHERE"));
    ck_assert_ptr_nonnull(strstr(js, "FROM t6 WHERE"));
    ck_assert_ptr_nonnull(strstr(js, "FROM t0 WHERE"));
    ck_assert_ptr_nonnull(strstr(js, "FROM t1004 WHERE"));
    free(js);
    pgp_profile_store_destroy(s);
}
END_TEST

START_TEST(test_collapsed_merge)
{
    pgp_profile_store_t *s = pgp_profile_store_create(10);
    push(s, make(1, "/a;b", "users", 3, 10));
    push(s, make(2, "/a;b", "users", 4, 10));
    push(s, make(2, "/c", "users", 1, 10));
    char *txt = render(s, R_COLLAPSED, 0, 0);
    ck_assert_str_eq(txt,
                     "request;/a:b;app 14480\n"
                     "request;/a:b;sql;SELECT * FROM lists 2000\n"
                     "request;/a:b;sql;SELECT * FROM users WHERE id = ? 3500\n"
                     "request;/a:b;sql;SELECT ? 20\n"
                     "request;/c;app 8490\n"
                     "request;/c;sql;SELECT * FROM lists 1000\n"
                     "request;/c;sql;SELECT * FROM users WHERE id = ? 500\n"
                     "request;/c;sql;SELECT ? 10\n");
    free(txt);
    pgp_profile_store_destroy(s);
}
END_TEST

START_TEST(test_session_findings)
{
    pgp_profile_store_t *s = pgp_profile_store_create(10);
    uint64_t a = push(s, make(1, "/a", "users", 3, 10));
    push(s, make(2, "/b", "users", 3, 10));
    push(s, make(1, "/c", "users", 1, 10));
    uint64_t c = push(s, make(1, "/d", "items", 5, 10));
    char *js = render(s, R_SESSION, 0, 1);
    char got[128], want[128];
    values_of(js, "profile_id", got, sizeof(got));
    snprintf(want, sizeof(want), "%llu,%llu", (unsigned long long)c, (unsigned long long)a);
    ck_assert_str_eq(got, want);
    ck_assert_ptr_nonnull(strstr(js, "\"request_id\":null,\"label\":\"/d\",\"start\":\""));
    ck_assert_ptr_nonnull(strstr(js, "\"type\":\"n_plus_one\",\"fingerprint\":\""));
    free(js);
    js = render(s, R_SESSION, 0, 99);
    ck_assert_str_eq(js, "[]");
    free(js);
    pgp_profile_store_destroy(s);
}
END_TEST

START_TEST(test_set_max_history)
{
    pgp_profile_store_t *s = pgp_profile_store_create(5);
    uint64_t id[5];
    for (int i = 0; i < 5; i++)
        id[i] = push(s, make(1, "/r", "users", 0, 10));
    pgp_profile_store_set_max_history(s, 2);
    pgp_profile_store_stats_t st;
    pgp_profile_store_stats(s, &st);
    ck_assert_uint_eq(st.held, 2);
    ck_assert_uint_eq(st.evicted, 3);
    ck_assert_ptr_null(pgp_profile_store_get(s, id[2]));
    pgp_profile_t *p = pgp_profile_store_get(s, id[4]);
    ck_assert_ptr_nonnull(p);
    pgp_profile_unref(p);
    pgp_profile_store_set_max_history(s, 4);
    uint64_t n = push(s, make(1, "/r", "users", 0, 10));
    push(s, make(1, "/r", "users", 0, 10));
    pgp_profile_store_stats(s, &st);
    ck_assert_uint_eq(st.held, 4);
    p = pgp_profile_store_get(s, id[3]);
    ck_assert_ptr_nonnull(p);
    pgp_profile_unref(p);
    p = pgp_profile_store_get(s, n);
    ck_assert_ptr_nonnull(p);
    pgp_profile_unref(p);
    pgp_profile_store_destroy(s);
}
END_TEST

typedef struct race {
    pgp_profile_store_t *s;
    int rounds;
} race_t;

static void *reader(void *arg)
{
    race_t *r = arg;
    for (int i = 0; i < r->rounds; i++) {
        char *t = render(r->s, (rkind_t)(i % 5), 5, 1);
        free(t);
        pgp_profile_t *p = pgp_profile_store_get(r->s, (uint64_t)i);
        pgp_profile_unref(p);
    }
    return NULL;
}

START_TEST(test_threads)
{
    race_t r = {pgp_profile_store_create(16), 300};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, reader, &r), 0);
    for (int i = 0; i < 600; i++) {
        push(r.s, make(1, i % 2 ? "/a" : "/b", "users", 3 + i % 4, 100));
        if (i % 100 == 0)
            pgp_profile_store_clear(r.s);
        if (i % 150 == 0)
            pgp_profile_store_set_max_history(r.s, 8 + (size_t)(i % 20));
    }
    ck_assert_int_eq(pthread_join(th, NULL), 0);
    pgp_profile_store_destroy(r.s);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *tc = tcase_create("store");
    tcase_add_test(tc, test_ring_eviction);
    tcase_add_loop_test(tc, test_orders, 0, (int)N_OF(order_cases));
    tcase_add_test(tc, test_clear);
    tcase_add_test(tc, test_refcount_after_drop);
    tcase_add_test(tc, test_aggregation);
    tcase_add_test(tc, test_aggregation_bound);
    tcase_add_test(tc, test_collapsed_merge);
    tcase_add_test(tc, test_session_findings);
    tcase_add_test(tc, test_set_max_history);
    tcase_add_test(tc, test_threads);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
