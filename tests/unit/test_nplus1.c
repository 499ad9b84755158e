/*
 * test_nplus1.c - unit tests for pgproxy/nplus1.c: N+1 vs duplicate vs
 * batchable classification over event tables, the threshold edge, the
 * exclusions (transaction control, SET/SHOW, catalog queries, the ignore
 * list), source evidence, longest run, ordering, examples (params off,
 * params summaries, raw SQL) and the estimated saving.
 */
#include "pgproxy/nplus1.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

typedef struct tev {
    pgp_norm_kind_t kind;
    uint64_t fp, vh, rows;
    const char *norm;       /* NULL: "SELECT x FROM t WHERE id = ?" */
} tev_t;

#define SEL PGP_NORM_KIND_SELECT
#define INS PGP_NORM_KIND_INSERT
#define UPD PGP_NORM_KIND_UPDATE
#define DEL PGP_NORM_KIND_DELETE

typedef struct rule_case {
    const char *name;
    uint32_t threshold;
    tev_t ev[12];
    const char *want;   /* "<type>:<fp>:<count>:<distinct>:<run>:<source fp or ->|..." */
} rule_case_t;

static const rule_case_t rule_cases[] = {
    {"n+1 with its source", 3,
     {{SEL, 1, 0, 10, "SELECT * FROM posts"}, {SEL, 2, 1, 1, 0}, {SEL, 2, 2, 1, 0}, {SEL, 2, 3, 1, 0}},
     "n_plus_one:2:3:3:3:1"},
    {"duplicate", 3,
     {{SEL, 2, 7, 1, 0}, {SEL, 2, 7, 1, 0}, {SEL, 2, 7, 1, 0}},
     "duplicate:2:3:1:3:-"},
    {"two values is n+1", 3,
     {{SEL, 2, 7, 1, 0}, {SEL, 2, 7, 1, 0}, {SEL, 2, 8, 1, 0}},
     "n_plus_one:2:3:2:3:-"},
    {"batchable writes, any values", 3,
     {{INS, 3, 1, 1, "INSERT INTO t VALUES (?)"}, {INS, 3, 1, 1, "INSERT INTO t VALUES (?)"},
      {INS, 3, 2, 1, "INSERT INTO t VALUES (?)"}, {UPD, 4, 1, 1, "UPDATE t SET a = ?"},
      {UPD, 4, 1, 1, "UPDATE t SET a = ?"}, {UPD, 4, 1, 1, "UPDATE t SET a = ?"},
      {DEL, 5, 1, 1, "DELETE FROM t WHERE id = ?"}, {DEL, 5, 2, 1, "DELETE FROM t WHERE id = ?"},
      {DEL, 5, 3, 1, "DELETE FROM t WHERE id = ?"}},
     "batchable:3:3:2:3:-|batchable:4:3:1:3:-|batchable:5:3:3:3:-"},
    {"threshold - 1: nothing", 3,
     {{SEL, 2, 1, 1, 0}, {SEL, 2, 2, 1, 0}, {INS, 3, 1, 1, 0}, {INS, 3, 2, 1, 0}},
     ""},
    {"threshold 2 (and below acts as 2)", 1,
     {{SEL, 2, 1, 1, 0}, {SEL, 2, 2, 1, 0}, {SEL, 9, 1, 1, 0}},
     "n_plus_one:2:2:2:2:-"},
    {"transaction control, SET, SHOW, MERGE, COPY are not counted", 2,
     {{PGP_NORM_KIND_BEGIN, 10, 0, 0, "BEGIN"}, {PGP_NORM_KIND_BEGIN, 10, 0, 0, "BEGIN"},
      {PGP_NORM_KIND_SAVEPOINT, 11, 1, 0, "SAVEPOINT a"}, {PGP_NORM_KIND_SAVEPOINT, 11, 2, 0, "SAVEPOINT a"},
      {PGP_NORM_KIND_SET, 12, 1, 0, "SET a = ?"}, {PGP_NORM_KIND_SET, 12, 2, 0, "SET a = ?"},
      {PGP_NORM_KIND_SHOW, 13, 1, 0, "SHOW a"}, {PGP_NORM_KIND_SHOW, 13, 1, 0, "SHOW a"},
      {PGP_NORM_KIND_MERGE, 14, 1, 0, "MERGE"}, {PGP_NORM_KIND_MERGE, 14, 2, 0, "MERGE"},
      {PGP_NORM_KIND_COPY, 15, 1, 0, "COPY"}, {PGP_NORM_KIND_COPY, 15, 2, 0, "COPY"}},
     ""},
    {"catalog queries are not counted", 2,
     {{SEL, 20, 1, 1, "SELECT oid FROM pg_class WHERE relname = ?"},
      {SEL, 20, 2, 1, "SELECT oid FROM pg_class WHERE relname = ?"},
      {SEL, 21, 1, 1, "SELECT typname FROM PG_CATALOG.pg_type WHERE oid = ?"},
      {SEL, 21, 2, 1, "SELECT typname FROM PG_CATALOG.pg_type WHERE oid = ?"},
      {SEL, 22, 1, 1, "SELECT * FROM information_schema.columns WHERE table_name = ?"},
      {SEL, 22, 2, 1, "SELECT * FROM information_schema.columns WHERE table_name = ?"},
      {SEL, 23, 1, 1, "SELECT c.x FROM t c JOIN \"pg_namespace\" n ON n.oid = ?"},
      {SEL, 23, 2, 1, "SELECT c.x FROM t c JOIN \"pg_namespace\" n ON n.oid = ?"},
      {SEL, 24, 1, 1, "SELECT * FROM pgusers WHERE id = ?"},
      {SEL, 24, 2, 1, "SELECT * FROM pgusers WHERE id = ?"}},
     "n_plus_one:24:2:2:2:-"},
    {"ignore list", 2,
     {{SEL, 777, 1, 1, 0}, {SEL, 777, 2, 1, 0}, {INS, 778, 1, 1, 0}, {INS, 778, 1, 1, 0},
      {SEL, 2, 1, 1, 0}, {SEL, 2, 1, 1, 0}},
     "duplicate:2:2:1:2:-"},
    {"nearest earlier source with >= 2 rows and another fingerprint", 3,
     {{SEL, 1, 0, 10, "SELECT * FROM a"}, {SEL, 6, 0, 3, "SELECT * FROM b"}, {SEL, 7, 0, 1, "SELECT 1"},
      {SEL, 2, 1, 1, 0}, {SEL, 2, 2, 5, 0}, {SEL, 8, 0, 9, "SELECT * FROM c"}, {SEL, 2, 3, 1, 0}},
     "n_plus_one:2:3:3:2:6"},
    {"no source: only later or same-fingerprint results", 3,
     {{SEL, 2, 1, 5, 0}, {SEL, 1, 0, 10, "SELECT * FROM a"}, {SEL, 2, 2, 1, 0}, {SEL, 2, 3, 1, 0}},
     "n_plus_one:2:3:3:2:-"},
    {"longest run and order: n+1, duplicate, batchable", 3,
     {{INS, 3, 1, 1, 0}, {SEL, 2, 1, 1, 0}, {SEL, 9, 4, 1, 0}, {INS, 3, 1, 1, 0},
      {SEL, 2, 2, 1, 0}, {SEL, 2, 3, 1, 0}, {SEL, 9, 4, 1, 0}, {INS, 3, 1, 1, 0},
      {SEL, 2, 4, 1, 0}, {SEL, 9, 4, 1, 0}, {SEL, 9, 4, 1, 0}},
     "n_plus_one:2:4:4:2:-|duplicate:9:4:1:2:-|batchable:3:3:1:1:-"},
};

static size_t build(const tev_t *src, size_t max, pgp_nplus1_event_t *out)
{
    size_t n = 0;
    for (; n < max && src[n].kind != PGP_NORM_KIND_EMPTY; n++) {
        const char *norm = src[n].norm ? src[n].norm : "SELECT x FROM t WHERE id = ?";
        out[n] = (pgp_nplus1_event_t){.start_ns = n * 100, .duration_ns = 10,
                                      .fingerprint = src[n].fp, .values_hash = src[n].vh,
                                      .rows = src[n].rows, .sql = "", .normalized = norm,
                                      .params = "", .normalized_len = (uint32_t)strlen(norm),
                                      .kind = src[n].kind};
    }
    return n;
}

START_TEST(test_rules)
{
    const rule_case_t *c = &rule_cases[_i];
    pgp_nplus1_event_t ev[12];
    size_t n = build(c->ev, N_OF(c->ev), ev);
    uint64_t ignore[] = {778, 777};
    pgp_nplus1_sort_ignore(ignore, 2);
    pgp_nplus1_rules_t rules = {.threshold = c->threshold, .examples = false,
                                .ignore = ignore, .ignore_count = 2};
    pgp_nplus1_finding_t *f;
    size_t nf;
    ck_assert_int_eq(pgp_nplus1_analyze(ev, n, &rules, &f, &nf), 0);
    char got[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < nf; i++) {
        char src[24] = "-";
        if (f[i].has_source)
            snprintf(src, sizeof(src), "%llu", (unsigned long long)f[i].source_fingerprint);
        int w = snprintf(got + used, sizeof(got) - used, "%s%s:%llu:%u:%u:%u:%s", i ? "|" : "",
                         pgp_nplus1_type_name(f[i].type), (unsigned long long)f[i].fingerprint,
                         f[i].count, f[i].distinct_values, f[i].longest_run, src);
        ck_assert_int_gt(w, 0);
        used += (size_t)w;
        ck_assert_uint_eq(f[i].example_count, 0);
        ck_assert_uint_eq(f[i].total_ns, 10u * f[i].count);
        ck_assert_ptr_eq(f[i].normalized, ev[f[i].first_index].normalized);
        if (!f[i].has_source)
            ck_assert_str_eq(f[i].source_normalized, "");
    }
    ck_assert_msg(strcmp(got, c->want) == 0, "%s\n got  %s\n want %s", c->name, got, c->want);
    free(f);
}
END_TEST

START_TEST(test_evidence_and_examples)
{
    static const char *const sqls[] = {
        "SELECT * FROM posts",
        "SELECT * FROM users WHERE id = 1", "SELECT * FROM users WHERE id = 1",
        "SELECT * FROM users WHERE id = 2", "SELECT * FROM users WHERE id = 3",
        "SELECT * FROM users WHERE id = 4",
    };
    static const char *const params[] = {"", "$1='1'", "$1='1'", "", "$1='3'", "$1='4'"};
    pgp_nplus1_event_t ev[6];
    uint64_t durs[] = {500, 10, 20, 30, 40, 100};
    for (size_t i = 0; i < 6; i++) {
        ev[i] = (pgp_nplus1_event_t){.start_ns = i * 1000, .duration_ns = durs[i],
                                     .fingerprint = i == 0 ? 1 : 2,
                                     .values_hash = i == 0 ? 0 : (i == 2 ? 1 : i),
                                     .rows = i == 0 ? 5 : 1, .sql = sqls[i],
                                     .sql_len = (uint32_t)strlen(sqls[i]),
                                     .normalized = i == 0 ? "SELECT * FROM posts"
                                                          : "SELECT * FROM users WHERE id = ?",
                                     .params = params[i],
                                     .params_len = (uint32_t)strlen(params[i]),
                                     .kind = PGP_NORM_KIND_SELECT};
        ev[i].normalized_len = (uint32_t)strlen(ev[i].normalized);
    }
    pgp_nplus1_rules_t rules = {.threshold = 5, .examples = true};
    pgp_nplus1_finding_t *f;
    size_t nf;
    ck_assert_int_eq(pgp_nplus1_analyze(ev, 6, &rules, &f, &nf), 0);
    ck_assert_uint_eq(nf, 1);
    ck_assert_int_eq(f[0].type, PGP_NPLUS1_N_PLUS_ONE);
    ck_assert_uint_eq(f[0].count, 5);
    ck_assert_uint_eq(f[0].distinct_values, 4);
    ck_assert_uint_eq(f[0].longest_run, 5);
    ck_assert_uint_eq(f[0].first_index, 1);
    ck_assert_uint_eq(f[0].total_ns, 200);
    ck_assert_uint_eq(f[0].estimated_saving_ns, 160);   /* 200 - 200/5 */
    ck_assert(f[0].has_source);
    ck_assert_uint_eq(f[0].source_fingerprint, 1);
    ck_assert_uint_eq(f[0].source_rows, 5);
    ck_assert_str_eq(f[0].source_normalized, "SELECT * FROM posts");
    /* first distinct values: #1 (params), #3 (no params: raw SQL), #4 (params) */
    ck_assert_uint_eq(f[0].example_count, 3);
    ck_assert_str_eq(f[0].example[0], "$1='1'");
    ck_assert_str_eq(f[0].example[1], "SELECT * FROM users WHERE id = 2");
    ck_assert_uint_eq(f[0].example_len[1], strlen("SELECT * FROM users WHERE id = 2"));
    ck_assert_str_eq(f[0].example[2], "$1='3'");
    free(f);

    rules.threshold = 6;
    ck_assert_int_eq(pgp_nplus1_analyze(ev, 6, &rules, &f, &nf), 0);
    ck_assert_uint_eq(nf, 0);
    ck_assert_ptr_null(f);
    ck_assert_int_eq(pgp_nplus1_analyze(ev, 0, &rules, &f, &nf), 0);
    ck_assert_uint_eq(nf, 0);
}
END_TEST

static const struct {
    const char *sql;
    bool catalog;
} catalog_cases[] = {
    {"SELECT * FROM pg_class", true},
    {"select * from PG_STAT_ACTIVITY", true},
    {"SELECT * FROM t JOIN pg_namespace n ON ?", true},
    {"SELECT pg_catalog.format_type(?, ?)", true},
    {"SELECT * FROM information_schema.tables", true},
    {"SELECT * FROM \"pg_class\"", true},
    {"SELECT * FROM users", false},
    {"SELECT pg_sleep(?)", false},
    {"SELECT * FROM pgbench_accounts WHERE aid = ?", false},
    {"SELECT * FROM users WHERE name = ?", false},
    {"SELECT * FROM t, pg_class", false},   /* only the first relation is looked at */
    {"", false},
};

START_TEST(test_catalog)
{
    const char *s = catalog_cases[_i].sql;
    ck_assert_msg(pgp_nplus1_is_catalog(s, strlen(s)) == catalog_cases[_i].catalog, "%s", s);
}
END_TEST

static Suite *nplus1_suite(void)
{
    Suite *s = suite_create("nplus1");
    TCase *tc = tcase_create("rules");
    tcase_add_loop_test(tc, test_rules, 0, (int)N_OF(rule_cases));
    tcase_add_test(tc, test_evidence_and_examples);
    tcase_add_loop_test(tc, test_catalog, 0, (int)N_OF(catalog_cases));
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(nplus1_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
