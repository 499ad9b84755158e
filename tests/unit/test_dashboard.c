/*
 * test_dashboard.c - the dashboard page: size, the tiles and tables it
 * must show, no external references, no HTML sinks for data in its
 * script, token support, and the escaping of a hostile json_path.
 */
#include "pgproxy/dashboard.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

static size_t count_of(const char *hay, const char *needle)
{
    size_t k = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        k++;
    return k;
}

static void render(const char *path, pgp_render_t *r)
{
    pgp_render_init(r, 1u << 20);
    ck_assert_int_eq(pgp_dashboard_render(path, r), 0);
    ck_assert_int_eq(pgp_render_error(r), 0);
}

/* Text the page must contain: the five tiles, the tables, the data sources, the token path. */
static const char *const must_have[] = {
    "<!DOCTYPE html>",
    "<meta charset=\"utf-8\">",
    "name=\"viewport\"",
    ">Total Requests<",
    ">Total Queries<",
    ">Avg Queries/Req<",
    ">Slow Queries<",
    ">N+1 Patterns<",
    ">Recent Slow Queries<",
    ">N+1 Query Patterns<",
    ">Top fingerprints by total time<",
    ">Latency histogram ",
    ">Flame graph ",
    ">Live connections<",
    "data-json=\"/debug/performance/json\"",
    "data-flame=\"" PGP_DASHBOARD_FLAME_PATH "\"",
    "location.hash",
    "'Authorization'",
    "'Bearer '",
    "textContent",
    "setTimeout(poll, 2000)",
    "setTimeout(flame, 10000)",
    "text-overflow:ellipsis",
    "overflow-x:auto",
    "Content-Security-Policy",
    "</html>\n",
};

/* Text it must not: external references, HTML sinks, trigraph residue. */
static const char *const must_not[] = {
    "http://", "https://", "//cdn", "@import", "<link", "src=\"/", "innerHTML", "outerHTML",
    "insertAdjacentHTML", "document.write", "eval(", "new Function", "??", "@@",
};

START_TEST(test_contains)
{
    pgp_render_t r;
    render("/debug/performance/json", &r);
    ck_assert_msg(strstr(pgp_render_data(&r), must_have[_i]) != NULL, "missing [%s]", must_have[_i]);
    pgp_render_free(&r);
}
END_TEST

START_TEST(test_not_contains)
{
    pgp_render_t r;
    render(NULL, &r);
    ck_assert_msg(strstr(pgp_render_data(&r), must_not[_i]) == NULL, "found [%s]", must_not[_i]);
    pgp_render_free(&r);
}
END_TEST

START_TEST(test_size_and_default)
{
    pgp_render_t r;
    render(NULL, &r);
    ck_assert_uint_lt(pgp_render_len(&r), PGP_DASHBOARD_MAX_BYTES);
    ck_assert_uint_eq(strlen(pgp_render_data(&r)), pgp_render_len(&r));
    ck_assert_ptr_nonnull(strstr(pgp_render_data(&r), "data-json=\"" PGP_DASHBOARD_DEFAULT_JSON_PATH "\""));
    /* exactly one script, and it ends where it should */
    ck_assert_uint_eq(count_of(pgp_render_data(&r), "<script"), 1);
    ck_assert_uint_eq(count_of(pgp_render_data(&r), "</script"), 1);
    ck_assert_ptr_nonnull(strstr(pgp_render_data(&r), "}());\n</script>\n</body>"));
    pgp_render_free(&r);
}
END_TEST

static const struct path_case {
    const char *path;
    const char *attr;   /* the expected data-json attribute */
} path_cases[] = {
    { "/x/json", "data-json=\"/x/json\"" },
    { "\"</script><script>alert(1)</script>",
      "data-json=\"&quot;&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;\"" },
    { "/a?b=1&c='2'", "data-json=\"/a?b=1&amp;c=&#39;2&#39;\"" },
    { "/bad\xff/json", "data-json=\"/bad\xEF\xBF\xBD/json\"" },
    { "", "data-json=\"\"" },
};

START_TEST(test_json_path_escaped)
{
    const struct path_case *c = &path_cases[_i];
    pgp_render_t r;
    render(c->path, &r);
    const char *out = pgp_render_data(&r);
    ck_assert_msg(strstr(out, c->attr) != NULL, "missing [%s]", c->attr);
    ck_assert_uint_eq(count_of(out, "</script"), 1);
    ck_assert_uint_eq(count_of(out, "<script"), 1);
    ck_assert_ptr_null(strstr(out, "\xff"));
    pgp_render_free(&r);
}
END_TEST

START_TEST(test_cap)
{
    pgp_render_t r;
    pgp_render_init(&r, 4096);
    ck_assert_int_eq(pgp_dashboard_render(NULL, &r), -1);
    ck_assert_int_eq(pgp_render_error(&r), PGP_RENDER_ETOOBIG);
    pgp_render_free(&r);
    /* the documented cap is enough for the page and a reasonable path */
    pgp_render_init(&r, PGP_DASHBOARD_MAX_BYTES);
    ck_assert_int_eq(pgp_dashboard_render("/debug/performance/json", &r), 0);
    pgp_render_free(&r);
}
END_TEST

static Suite *dashboard_suite(void)
{
    Suite *s = suite_create("dashboard");
    TCase *tc = tcase_create("page");
    tcase_add_loop_test(tc, test_contains, 0, N(must_have));
    tcase_add_loop_test(tc, test_not_contains, 0, N(must_not));
    tcase_add_test(tc, test_size_and_default);
    tcase_add_loop_test(tc, test_json_path_escaped, 0, N(path_cases));
    tcase_add_test(tc, test_cap);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(dashboard_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
