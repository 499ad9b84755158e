/*
 * test_fingerprint.c - the "pgproxy-norm v1" fingerprint (DESIGN §4.3):
 * pairs of statements that must share a fingerprint, pairs that must not,
 * the values hash (same shape, different literals), and a golden table of
 * fingerprints so that the spec cannot change without a version bump.
 */
#include "pgproxy/normalize.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fp_pair {
    const char *a, *b;
} fp_pair_t;

static uint64_t fp_of(const char *sql, uint64_t *values_hash)
{
    char out[1024];
    pgp_norm_result_t res;
    pgp_normalize(sql, strlen(sql), NULL, out, sizeof(out), NULL, &res);
    if (values_hash)
        *values_hash = res.values_hash;
    return res.fingerprint;
}

static const fp_pair_t same[] = {
    /* literal vs $n */
    {"SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE id = $1"},
    {"SELECT * FROM t WHERE a = 'x' AND b = 2", "SELECT * FROM t WHERE a = $1 AND b = $2"},
    {"SELECT * FROM t WHERE a = -1", "SELECT * FROM t WHERE a = $1"},
    {"SELECT * FROM t WHERE a = TRUE", "SELECT * FROM t WHERE a = $1"},
    {"UPDATE t SET a = NULL WHERE id = 3", "UPDATE t SET a = $1 WHERE id = $2"},
    /* case */
    {"SELECT * FROM t WHERE id = 1", "select * from T where ID = 1"},
    {"SELECT Name FROM Users", "select name from users"},
    /* whitespace and comments */
    {"SELECT * FROM t WHERE id = 1", "  SELECT *\n\tFROM t   WHERE id=1 ; "},
    {"SELECT * FROM t WHERE id = 1", "/* app='x' */ SELECT * FROM t -- c\n WHERE /* y */ id = 1"},
    {"SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE id = 1;"},
    {"SELECT a,b FROM t", "SELECT a , b FROM t"},
    /* IN / ARRAY / VALUES lengths */
    {"SELECT * FROM t WHERE id IN (1)", "SELECT * FROM t WHERE id IN (1, 2, 3, 4, 5)"},
    {"SELECT * FROM t WHERE id IN ($1, $2)", "SELECT * FROM t WHERE id IN (7,8,9)"},
    {"SELECT * FROM t WHERE id = ANY(ARRAY[1])", "SELECT * FROM t WHERE id = ANY(ARRAY[1, 2, 3])"},
    {"INSERT INTO t (a, b) VALUES (1, 2)", "INSERT INTO t (a, b) VALUES (1, 2), (3, 4), (5, 6)"},
    {"INSERT INTO t VALUES ($1, $2)", "INSERT INTO t VALUES ($1, $2), ($3, $4)"},
    {"SELECT * FROM t WHERE id IN (1, 2", "SELECT * FROM t WHERE id IN (1"},
    /* LIMIT values */
    {"SELECT * FROM t LIMIT 10", "SELECT * FROM t LIMIT 100"},
    {"SELECT * FROM t LIMIT 10 OFFSET 0", "SELECT * FROM t LIMIT $1 OFFSET $2"},
    /* string styles */
    {"SELECT * FROM t WHERE a = 'x'", "SELECT * FROM t WHERE a = E'x'"},
    {"SELECT * FROM t WHERE a = 'x'", "SELECT * FROM t WHERE a = $$x$$"},
    {"SELECT * FROM t WHERE a = 'x'", "SELECT * FROM t WHERE a = $q$x$q$"},
    {"SELECT * FROM t WHERE a = 'x'", "SELECT * FROM t WHERE a = N'x'"},
    {"SELECT * FROM t WHERE a = 'x'", "SELECT * FROM t WHERE a = U&'x'"},
    {"SELECT * FROM t WHERE a = 'x'", "SELECT * FROM t WHERE a = 'x'\n'y'"},
    {"SELECT * FROM t WHERE a = 1", "SELECT * FROM t WHERE a = 1.5e3"},
    {"SELECT * FROM t WHERE a = 1", "SELECT * FROM t WHERE a = 'x'"},
    /* != vs <> */
    {"SELECT * FROM t WHERE a != 1", "SELECT * FROM t WHERE a <> 1"},
    /* tags never count */
    {"/*controller='a'*/ SELECT 1", "/*controller='b'*/ SELECT 1"},
    /* casts kept, literal replaced */
    {"SELECT '1'::int", "SELECT $1::int"},
};

static const fp_pair_t differ[] = {
    {"SELECT * FROM t WHERE id = 1", "SELECT * FROM u WHERE id = 1"},
    {"SELECT a, b FROM t", "SELECT a FROM t"},
    {"SELECT a, b FROM t", "SELECT b, a FROM t"},
    {"INSERT INTO t (a, b) VALUES (1, 2)", "INSERT INTO t (b, a) VALUES (1, 2)"},
    {"SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE id > 1"},
    {"SELECT * FROM t WHERE id = 1", "SELECT * FROM t WHERE id <> 1"},
    {"SELECT * FROM t LIMIT 10", "SELECT * FROM t"},
    {"SELECT * FROM t WHERE id IN (1)", "SELECT * FROM t WHERE id = 1"},
    {"SELECT * FROM t WHERE id IN (1, 2)", "SELECT * FROM t WHERE id NOT IN (1, 2)"},
    {"SELECT a FROM t ORDER BY 1", "SELECT a FROM t ORDER BY 2"},
    {"SELECT a FROM t ORDER BY 1", "SELECT a FROM t ORDER BY a"},
    {"SELECT f(a, 1)", "SELECT f(1, a)"},
    {"SELECT f(1, 2)", "SELECT f(1)"},
    {"INSERT INTO t VALUES (1, 2)", "INSERT INTO t VALUES (1, 2, 3)"},
    {"INSERT INTO t VALUES (1)", "INSERT INTO t VALUES ((1))"},
    {"SELECT * FROM t WHERE a IS NULL", "SELECT * FROM t WHERE a = NULL"},
    {"SELECT * FROM t WHERE a IS NULL", "SELECT * FROM t WHERE a IS NOT NULL"},
    {"SELECT * FROM \"T\"", "SELECT * FROM t"},
    {"SELECT * FROM \"t\"", "SELECT * FROM t"},
    {"SELECT 1", "SELECT 1; SELECT 1"},
    {"SELECT '1'::int", "SELECT '1'::bigint"},
    {"SELECT * FROM t WHERE id IN (1, b)", "SELECT * FROM t WHERE id IN (1)"},
    {"SELECT * FROM t WHERE id IN (b, 1)", "SELECT * FROM t WHERE id IN (1, b)"},
    {"SELECT ARRAY[1]", "SELECT ARRAY[ARRAY[1]]"},
    {"SELECT a - 1 FROM t", "SELECT a, -1 FROM t"},
    {"SELECT x FROM a.b", "SELECT x FROM ab"},
    {"SELECT ab", "SELECT a b"},
    {"SELECT * FROM t WHERE a = 1 AND b = 2", "SELECT * FROM t WHERE a = 1 OR b = 2"},
    {"SELECT * FROM t WHERE id IN (SELECT 1)", "SELECT * FROM t WHERE id IN (SELECT 1 UNION SELECT 2)"},
    {"SELECT a FROM t GROUP BY 1", "SELECT a FROM t GROUP BY 2"},
};

START_TEST(test_same)
{
    const fp_pair_t *p = &same[_i];
    ck_assert_msg(fp_of(p->a, NULL) == fp_of(p->b, NULL), "should share: [%s] [%s]", p->a, p->b);
}
END_TEST

START_TEST(test_differ)
{
    const fp_pair_t *p = &differ[_i];
    ck_assert_msg(fp_of(p->a, NULL) != fp_of(p->b, NULL), "should differ: [%s] [%s]", p->a, p->b);
}
END_TEST

/* values_hash: same statement shape, tells different literals apart. */
START_TEST(test_values_hash)
{
    uint64_t v1, v2, v3, v4;
    uint64_t f1 = fp_of("SELECT * FROM t WHERE id = 1", &v1);
    uint64_t f2 = fp_of("SELECT * FROM t WHERE id = 2", &v2);
    uint64_t f3 = fp_of("select * from t where id=1", &v3);
    ck_assert_uint_eq(f1, f2);
    ck_assert_uint_eq(f1, f3);
    ck_assert_uint_ne(v1, v2);
    ck_assert_uint_eq(v1, v3);
    fp_of("SELECT * FROM t WHERE id = -1", &v4);
    ck_assert_uint_ne(v1, v4);
    fp_of("SELECT * FROM t WHERE a IN (1, 1)", &v1);
    fp_of("SELECT * FROM t WHERE a IN (1, 2)", &v2);
    ck_assert_uint_ne(v1, v2);
    fp_of("SELECT * FROM t WHERE a = 'x' AND b = 'y'", &v1);
    fp_of("SELECT * FROM t WHERE a = 'y' AND b = 'x'", &v2);
    ck_assert_uint_ne(v1, v2);
}
END_TEST

/*
 * Golden fingerprints of pgproxy-norm v1.  If one changes, the spec
 * changed: bump PGP_NORM_SPEC_VERSION and the seed, and update this table.
 */
static const struct {
    const char *sql;
    const char *hex;
} golden[] = {
    {"SELECT 1", "9e0a7580034e17ea"},
    {"SELECT * FROM users WHERE id = $1", "caa3b0eb608ba67b"},
    {"INSERT INTO t (a, b) VALUES (1, 'x'), (2, 'y')", "fc8075776caacdcb"},
    {"select a from t where x in (1, 2, 3) order by 1 limit 10", "a31e448a661c894a"},
    {"", "83b11abf9a93cad3"},
};

START_TEST(test_golden)
{
    char hex[17];
    pgp_fingerprint_format(fp_of(golden[_i].sql, NULL), hex);
    ck_assert_msg(strcmp(hex, golden[_i].hex) == 0, "[%s] is %s, golden %s", golden[_i].sql, hex,
                  golden[_i].hex);
}
END_TEST

START_TEST(test_format)
{
    char hex[17];
    pgp_fingerprint_format(0, hex);
    ck_assert_str_eq(hex, "0000000000000000");
    pgp_fingerprint_format(0x0123456789abcdefULL, hex);
    ck_assert_str_eq(hex, "0123456789abcdef");
    pgp_fingerprint_format(UINT64_MAX, hex);
    ck_assert_str_eq(hex, "ffffffffffffffff");
}
END_TEST

static Suite *fingerprint_suite(void)
{
    Suite *s = suite_create("fingerprint");
    TCase *tc = tcase_create("pairs");
    tcase_add_loop_test(tc, test_same, 0, (int)(sizeof(same) / sizeof(same[0])));
    tcase_add_loop_test(tc, test_differ, 0, (int)(sizeof(differ) / sizeof(differ[0])));
    tcase_add_test(tc, test_values_hash);
    suite_add_tcase(s, tc);
    tc = tcase_create("golden");
    tcase_add_loop_test(tc, test_golden, 0, (int)(sizeof(golden) / sizeof(golden[0])));
    tcase_add_test(tc, test_format);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fingerprint_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
