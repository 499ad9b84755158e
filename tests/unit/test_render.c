/*
 * test_render.c - the render module: JSON string escaping (every control
 * byte, each class of invalid UTF-8), JSON structure and misuse, the cap
 * and the sticky error, number formatting, HTML and Prometheus escaping.
 * Expected outputs are exact strings.
 */
#include "pgproxy/render.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define BIG (1u << 20)

/* "\xEF\xBF\xBD" is U+FFFD in UTF-8. */
#define FFFD "\xEF\xBF\xBD"

/* ---- JSON strings -------------------------------------------------------------- */

static const struct json_case {
    const char *in;
    size_t len;          /* 0: strlen(in) */
    const char *out;     /* the whole string value, quotes included */
} json_cases[] = {
    { "", 0, "\"\"" },
    { "plain text 123", 0, "\"plain text 123\"" },
    { "say \"hi\"", 0, "\"say \\\"hi\\\"\"" },
    { "back\\slash", 0, "\"back\\\\slash\"" },
    { "\b\f\n\r\t", 0, "\"\\b\\f\\n\\r\\t\"" },
    { "a\0b", 3, "\"a\\u0000b\"" },
    { "\x01\x1f", 0, "\"\\u0001\\u001f\"" },
    { "\x7f", 0, "\"\\u007f\"" },
    { "</script><script>alert(1)</script>", 0,
      "\"\\u003c/script\\u003e\\u003cscript\\u003ealert(1)\\u003c/script\\u003e\"" },
    { "a&b", 0, "\"a\\u0026b\"" },
    /* valid multibyte kept: 2, 3 and 4 bytes, the extremes of each length */
    { "caf\xC3\xA9", 0, "\"caf\xC3\xA9\"" },
    { "\xC2\x80\xDF\xBF", 0, "\"\xC2\x80\xDF\xBF\"" },
    { "\xE2\x82\xAC \xE0\xA0\x80 \xEF\xBF\xBF \xED\x9F\xBF", 0,
      "\"\xE2\x82\xAC \xE0\xA0\x80 \xEF\xBF\xBF \xED\x9F\xBF\"" },
    { "\xF0\x9F\x98\x80 \xF0\x90\x80\x80 \xF4\x8F\xBF\xBF", 0,
      "\"\xF0\x9F\x98\x80 \xF0\x90\x80\x80 \xF4\x8F\xBF\xBF\"" },
    /* U+2028/U+2029 break JavaScript string literals */
    { "\xE2\x80\xA8\xE2\x80\xA9", 0, "\"\\u2028\\u2029\"" },
    /* lone continuation bytes: one U+FFFD each */
    { "\x80", 0, "\"" FFFD "\"" },
    { "a\xBF\x80z", 0, "\"a" FFFD FFFD "z\"" },
    /* bytes that never appear in UTF-8 */
    { "\xC0\xC1\xF5\xFF", 0, "\"" FFFD FFFD FFFD FFFD "\"" },
    /* overlong encodings */
    { "\xC0\xAF", 0, "\"" FFFD FFFD "\"" },
    { "\xE0\x80\xAF", 0, "\"" FFFD FFFD FFFD "\"" },
    { "\xF0\x80\x80\xAF", 0, "\"" FFFD FFFD FFFD FFFD "\"" },
    /* UTF-16 surrogates encoded as UTF-8 (CESU) */
    { "\xED\xA0\x80", 0, "\"" FFFD FFFD FFFD "\"" },
    { "\xED\xBF\xBF", 0, "\"" FFFD FFFD FFFD "\"" },
    /* beyond U+10FFFF */
    { "\xF4\x90\x80\x80", 0, "\"" FFFD FFFD FFFD FFFD "\"" },
    /* truncated sequences: at the end, and followed by ASCII (one U+FFFD for the prefix) */
    { "x\xE2\x82", 0, "\"x" FFFD "\"" },
    { "x\xF0\x9F\x98", 0, "\"x" FFFD "\"" },
    { "x\xC3", 0, "\"x" FFFD "\"" },
    { "\xE2\x82z\"", 0, "\"" FFFD "z\\\"\"" },
    /* a truncated lead followed by a valid sequence keeps the valid one */
    { "\xE2\xC3\xA9", 0, "\"" FFFD "\xC3\xA9\"" },
};

START_TEST(test_json_string)
{
    const struct json_case *c = &json_cases[_i];
    pgp_render_t r;
    pgp_render_init(&r, BIG);
    pgp_render_json_string(&r, c->in, c->len ? c->len : strlen(c->in));
    ck_assert_int_eq(pgp_render_error(&r), 0);
    ck_assert_msg(strcmp(pgp_render_data(&r), c->out) == 0, "case %d: got [%s] want [%s]", _i,
                  pgp_render_data(&r), c->out);
    ck_assert_uint_eq(pgp_render_len(&r), strlen(c->out));
    pgp_render_free(&r);
}
END_TEST

/* Every byte value alone: ASCII printable kept (or escaped as listed), others escaped or U+FFFD. */
START_TEST(test_json_every_byte)
{
    unsigned char b = (unsigned char)_i;
    pgp_render_t r;
    char want[16];
    pgp_render_init(&r, BIG);
    pgp_render_json_escape(&r, &b, 1);
    ck_assert_int_eq(pgp_render_error(&r), 0);
    const char *got = pgp_render_data(&r);
    if (b == '"')
        strncpy(want, "\\\"", sizeof(want));
    else if (b == '\\')
        strncpy(want, "\\\\", sizeof(want));
    else if (b == '\b' || b == '\f' || b == '\n' || b == '\r' || b == '\t') {
        const char *m = "\b\\b\f\\f\n\\n\r\\r\t\\t";
        const char *p = strchr(m, b);
        want[0] = '\\';
        want[1] = p[2];
        want[2] = '\0';
    } else if (b < 0x20 || b == 0x7f || b == '<' || b == '>' || b == '&') {
        static const char hx[] = "0123456789abcdef";
        char u[7] = { '\\', 'u', '0', '0', hx[b >> 4], hx[b & 15], 0 };
        memcpy(want, u, sizeof(u));
    } else if (b < 0x80) {
        want[0] = (char)b;
        want[1] = '\0';
    } else {
        strncpy(want, FFFD, sizeof(want));
    }
    ck_assert_msg(strcmp(got, want) == 0, "byte 0x%02x: got [%s] want [%s]", b, got, want);
    pgp_render_free(&r);
}
END_TEST

/* ---- JSON structure -------------------------------------------------------------- */

START_TEST(test_json_document)
{
    pgp_render_t r;
    pgp_render_init(&r, BIG);
    pgp_render_json_begin_object(&r);
    pgp_render_json_key(&r, "status");
    pgp_render_json_cstr(&r, "ok");
    pgp_render_json_key(&r, "n");
    pgp_render_json_int(&r, INT64_MIN);
    pgp_render_json_key(&r, "u");
    pgp_render_json_uint(&r, UINT64_MAX);
    pgp_render_json_key(&r, "list");
    pgp_render_json_begin_array(&r);
    pgp_render_json_bool(&r, true);
    pgp_render_json_bool(&r, false);
    pgp_render_json_null(&r);
    pgp_render_json_double(&r, 1.25, 3);
    pgp_render_json_double(&r, NAN, 3);
    pgp_render_json_double(&r, -INFINITY, 3);
    pgp_render_json_begin_object(&r);
    pgp_render_json_end_object(&r);
    pgp_render_json_begin_array(&r);
    pgp_render_json_end_array(&r);
    pgp_render_json_cstr(&r, NULL);
    pgp_render_json_end_array(&r);
    pgp_render_json_key(&r, "k\"\n");
    pgp_render_json_int(&r, 0);
    pgp_render_json_end_object(&r);
    ck_assert_int_eq(pgp_render_error(&r), 0);
    ck_assert(pgp_render_json_complete(&r));
    ck_assert_str_eq(pgp_render_data(&r),
                     "{\"status\":\"ok\",\"n\":-9223372036854775808,\"u\":18446744073709551615,"
                     "\"list\":[true,false,null,1.25,null,null,{},[],null],\"k\\\"\\n\":0}");
    pgp_render_free(&r);
}
END_TEST

/* Misuse sets PGP_RENDER_EUSAGE, and nothing is written after it. */
enum { OP_BO, OP_EO, OP_BA, OP_EA, OP_KEY, OP_INT, OP_END };
static const struct misuse_case {
    int ops[8];
    const char *written;   /* output before the misuse */
} misuse_cases[] = {
    { { OP_BO, OP_INT, OP_END }, "{" },                    /* value without key */
    { { OP_BA, OP_KEY, OP_END }, "[" },                    /* key in an array */
    { { OP_KEY, OP_END }, "" },                            /* key at top level */
    { { OP_BO, OP_EA, OP_END }, "{" },                     /* wrong end */
    { { OP_BA, OP_EO, OP_END }, "[" },
    { { OP_EO, OP_END }, "" },                             /* end without begin */
    { { OP_BO, OP_KEY, OP_EO, OP_END }, "{\"k\":" },       /* key without value */
    { { OP_BO, OP_KEY, OP_KEY, OP_END }, "{\"k\":" },      /* two keys */
    { { OP_INT, OP_INT, OP_END }, "7" },                   /* two top-level values */
    { { OP_BA, OP_EA, OP_BA, OP_END }, "[]" },
};

START_TEST(test_json_misuse)
{
    const struct misuse_case *c = &misuse_cases[_i];
    pgp_render_t r;
    pgp_render_init(&r, BIG);
    for (int i = 0; c->ops[i] != OP_END; i++) {
        switch (c->ops[i]) {
        case OP_BO: pgp_render_json_begin_object(&r); break;
        case OP_EO: pgp_render_json_end_object(&r); break;
        case OP_BA: pgp_render_json_begin_array(&r); break;
        case OP_EA: pgp_render_json_end_array(&r); break;
        case OP_KEY: pgp_render_json_key(&r, "k"); break;
        case OP_INT: pgp_render_json_int(&r, 7); break;
        }
    }
    ck_assert_int_eq(pgp_render_error(&r), PGP_RENDER_EUSAGE);
    pgp_render_json_null(&r);
    pgp_render_str(&r, "more");
    ck_assert_str_eq(pgp_render_data(&r), c->written);
    pgp_render_free(&r);
}
END_TEST

START_TEST(test_json_depth)
{
    pgp_render_t r;
    pgp_render_init(&r, BIG);
    for (int i = 0; i < PGP_RENDER_JSON_MAX_DEPTH; i++)
        pgp_render_json_begin_array(&r);
    ck_assert_int_eq(pgp_render_error(&r), 0);
    ck_assert(!pgp_render_json_complete(&r));
    pgp_render_json_begin_array(&r);
    ck_assert_int_eq(pgp_render_error(&r), PGP_RENDER_EUSAGE);
    ck_assert_uint_eq(pgp_render_len(&r), PGP_RENDER_JSON_MAX_DEPTH);
    pgp_render_free(&r);

    pgp_render_init(&r, BIG);
    for (int i = 0; i < PGP_RENDER_JSON_MAX_DEPTH; i++)
        pgp_render_json_begin_array(&r);
    for (int i = 0; i < PGP_RENDER_JSON_MAX_DEPTH; i++)
        pgp_render_json_end_array(&r);
    ck_assert_int_eq(pgp_render_error(&r), 0);
    ck_assert(pgp_render_json_complete(&r));
    pgp_render_free(&r);
}
END_TEST

/* ---- cap and sticky error ------------------------------------------------------------ */

START_TEST(test_cap_sticky)
{
    pgp_render_t r;
    pgp_render_init(&r, 10);
    pgp_render_str(&r, "0123456789");     /* exactly the cap */
    ck_assert_int_eq(pgp_render_error(&r), 0);
    ck_assert_str_eq(pgp_render_data(&r), "0123456789");
    pgp_render_char(&r, 'x');             /* one past */
    ck_assert_int_eq(pgp_render_error(&r), PGP_RENDER_ETOOBIG);
    ck_assert_uint_eq(pgp_render_len(&r), 10);
    pgp_render_free(&r);

    /* A write that does not fit is not written in part, and later small ones are no-ops. */
    pgp_render_init(&r, 8);
    pgp_render_str(&r, "abc");
    pgp_render_str(&r, "defghi");
    ck_assert_int_eq(pgp_render_error(&r), PGP_RENDER_ETOOBIG);
    pgp_render_str(&r, "z");
    pgp_render_uint(&r, 1);
    ck_assert_str_eq(pgp_render_data(&r), "abc");
    size_t len = 99;
    ck_assert_ptr_null(pgp_render_take(&r, &len));
    ck_assert_uint_eq(len, 0);
    /* take resets: the buffer is usable again with the same cap */
    ck_assert_int_eq(pgp_render_error(&r), 0);
    pgp_render_str(&r, "12345678");
    ck_assert_int_eq(pgp_render_error(&r), 0);
    char *out = pgp_render_take(&r, &len);
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(len, 8);
    ck_assert_str_eq(out, "12345678");
    free(out);
    ck_assert_uint_eq(pgp_render_len(&r), 0);
    ck_assert_str_eq(pgp_render_data(&r), "");
    out = pgp_render_take(&r, &len);     /* empty, never written */
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(len, 0);
    ck_assert_str_eq(out, "");
    free(out);
    pgp_render_free(&r);
    pgp_render_free(&r);   /* idempotent */
}
END_TEST

/* Escaping expands: a 1-byte input that becomes 6 bytes must respect the cap too. */
START_TEST(test_cap_escape)
{
    pgp_render_t r;
    pgp_render_init(&r, 7);
    pgp_render_json_string(&r, "\x01", 1);   /* "\u0001" = 8 bytes */
    ck_assert_int_eq(pgp_render_error(&r), PGP_RENDER_ETOOBIG);
    ck_assert_uint_le(pgp_render_len(&r), 7);
    pgp_render_free(&r);

    /* Growth across many small writes, well past the first allocation. */
    pgp_render_init(&r, 100000);
    for (int i = 0; i < 10000; i++)
        pgp_render_json_escape(&r, "a\"", 2);
    ck_assert_int_eq(pgp_render_error(&r), 0);
    ck_assert_uint_eq(pgp_render_len(&r), 30000);
    ck_assert_int_eq(memcmp(pgp_render_data(&r) + 29997, "a\\\"", 3), 0);
    pgp_render_free(&r);
}
END_TEST

/* ---- numbers ------------------------------------------------------------------------- */

static const struct num_case {
    double v;
    int decimals;
    const char *fixed, *trimmed;
} num_cases[] = {
    { 0.0, 3, "0.000", "0" },
    { -0.0, 3, "0.000", "0" },
    { 1.5, 3, "1.500", "1.5" },
    { -1.5, 1, "-1.5", "-1.5" },
    { 0.005, 3, "0.005", "0.005" },
    { 2.0, 0, "2", "2" },
    { 2.5, 0, "3", "3" },
    { 0.9996, 3, "1.000", "1" },
    { 123456.789, 2, "123456.79", "123456.79" },
    { -0.0004, 3, "0.000", "0" },
    { -0.0006, 3, "-0.001", "-0.001" },
    { 1e-9, 9, "0.000000001", "0.000000001" },
    { 1.5, 12, "1.500000000", "1.5" },     /* decimals clamped to 9 */
    { 1.5, -2, "2", "2" },                /* and to 0 */
    { 9007199254740992.0, 1, "9007199254740992.0", "9007199254740992" },
    { 999999999999999872.0, 0, "999999999999999872", "999999999999999872" },
    { 1e18, 3, "1.000e+18", "1e+18" },
    { 1.25e20, 3, "1.250e+20", "1.25e+20" },
    { -2.5e300, 1, "-2.5e+300", "-2.5e+300" },
    { 9.9996e20, 3, "1.000e+21", "1e+21" },
    { NAN, 3, "NaN", "NaN" },
    { INFINITY, 3, "+Inf", "+Inf" },
    { -INFINITY, 3, "-Inf", "-Inf" },
};

START_TEST(test_numbers)
{
    const struct num_case *c = &num_cases[_i];
    pgp_render_t r;
    pgp_render_init(&r, BIG);
    pgp_render_double(&r, c->v, c->decimals);
    ck_assert_msg(strcmp(pgp_render_data(&r), c->fixed) == 0, "case %d: got [%s] want [%s]", _i,
                  pgp_render_data(&r), c->fixed);
    pgp_render_free(&r);
    pgp_render_double_trim(&r, c->v, c->decimals);
    ck_assert_msg(strcmp(pgp_render_data(&r), c->trimmed) == 0, "case %d: got [%s] want [%s]",
                  _i, pgp_render_data(&r), c->trimmed);
    pgp_render_free(&r);
}
END_TEST

START_TEST(test_integers)
{
    pgp_render_t r;
    pgp_render_init(&r, BIG);
    pgp_render_int(&r, 0);
    pgp_render_char(&r, ' ');
    pgp_render_int(&r, -42);
    pgp_render_char(&r, ' ');
    pgp_render_int(&r, INT64_MAX);
    pgp_render_char(&r, ' ');
    pgp_render_int(&r, INT64_MIN);
    pgp_render_char(&r, ' ');
    pgp_render_uint(&r, UINT64_MAX);
    ck_assert_str_eq(pgp_render_data(&r), "0 -42 9223372036854775807 -9223372036854775808 "
                                          "18446744073709551615");
    pgp_render_free(&r);
}
END_TEST

/* ---- HTML ------------------------------------------------------------------------------ */

static const struct html_case {
    const char *in, *out;
} html_cases[] = {
    { "</script><script>alert(1)</script>",
      "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" },
    { "a & b \"c\" 'd'", "a &amp; b &quot;c&quot; &#39;d&#39;" },
    { "&amp;", "&amp;amp;" },
    { "tab\tnl\ncr\r", "tab\tnl\ncr\r" },
    { "nul\x01" "del\x7f", "nul" FFFD "del" FFFD },
    { "caf\xC3\xA9 \xFF \xED\xA0\x80", "caf\xC3\xA9 " FFFD " " FFFD FFFD FFFD },
};

START_TEST(test_html)
{
    const struct html_case *c = &html_cases[_i];
    pgp_render_t r;
    pgp_render_init(&r, BIG);
    pgp_render_html(&r, c->in, strlen(c->in));
    ck_assert_int_eq(pgp_render_error(&r), 0);
    ck_assert_msg(strcmp(pgp_render_data(&r), c->out) == 0, "case %d: got [%s] want [%s]", _i,
                  pgp_render_data(&r), c->out);
    pgp_render_free(&r);
}
END_TEST

START_TEST(test_html_nul)
{
    pgp_render_t r;
    pgp_render_init(&r, BIG);
    pgp_render_html(&r, "a\0b", 3);
    ck_assert_str_eq(pgp_render_data(&r), "a" FFFD "b");
    pgp_render_free(&r);
}
END_TEST

/* ---- Prometheus --------------------------------------------------------------------- */

static const struct prom_case {
    const char *in, *out;
} prom_cases[] = {
    { "plain", "plain" },
    { "back\\slash", "back\\\\slash" },
    { "say \"hi\"", "say \\\"hi\\\"" },
    { "two\nlines", "two\\nlines" },
    { "\\\"\n", "\\\\\\\"\\n" },
    { "tab\tok", "tab\tok" },
    { "cr\r\x01\x1f", "cr" FFFD FFFD FFFD },
    { "caf\xC3\xA9\xFF", "caf\xC3\xA9" FFFD },
};

START_TEST(test_prom_label_value)
{
    const struct prom_case *c = &prom_cases[_i];
    pgp_render_t r;
    pgp_render_init(&r, BIG);
    pgp_render_prom_label_value(&r, c->in, strlen(c->in));
    ck_assert_msg(strcmp(pgp_render_data(&r), c->out) == 0, "case %d: got [%s] want [%s]", _i,
                  pgp_render_data(&r), c->out);
    pgp_render_free(&r);
}
END_TEST

START_TEST(test_prom_exposition)
{
    pgp_render_t r;
    pgp_render_init(&r, BIG);
    pgp_render_prom_family(&r, "pgproxy_bytes_total", "counter", "Bytes relayed \\ by\ndirection.");
    pgp_render_label_t in[] = { { "direction", "client_to_server" } };
    pgp_render_label_t odd[] = { { "a", "x\"y" }, { "b", "1\\2\n" } };
    pgp_render_prom_sample_uint(&r, "pgproxy_bytes_total", in, 1, 12345);
    pgp_render_prom_sample_uint(&r, "pgproxy_bytes_total", odd, 2, 0);
    pgp_render_prom_family(&r, "pgproxy_client_connections", "gauge", "Open client connections.");
    pgp_render_prom_sample(&r, "pgproxy_client_connections", NULL, 0, 3.0);
    pgp_render_prom_sample(&r, "pgproxy_x", NULL, 0, NAN);
    pgp_render_prom_family(&r, "pgproxy_query_duration_seconds", "histogram", "Statement time.");
    const double bounds[] = { 0.001, 0.01, 0.1 };
    const uint64_t counts[] = { 5, 0, 2 };
    pgp_render_prom_histogram(&r, "pgproxy_query_duration_seconds", NULL, 0, bounds, counts, 3,
                              0.25, 8);
    pgp_render_prom_histogram(&r, "h", in, 1, bounds, counts, 1, 1e-9, 5);
    ck_assert_int_eq(pgp_render_error(&r), 0);
    ck_assert_str_eq(pgp_render_data(&r),
        "# HELP pgproxy_bytes_total Bytes relayed \\\\ by\\ndirection.\n"
        "# TYPE pgproxy_bytes_total counter\n"
        "pgproxy_bytes_total{direction=\"client_to_server\"} 12345\n"
        "pgproxy_bytes_total{a=\"x\\\"y\",b=\"1\\\\2\\n\"} 0\n"
        "# HELP pgproxy_client_connections Open client connections.\n"
        "# TYPE pgproxy_client_connections gauge\n"
        "pgproxy_client_connections 3\n"
        "pgproxy_x NaN\n"
        "# HELP pgproxy_query_duration_seconds Statement time.\n"
        "# TYPE pgproxy_query_duration_seconds histogram\n"
        "pgproxy_query_duration_seconds_bucket{le=\"0.001\"} 5\n"
        "pgproxy_query_duration_seconds_bucket{le=\"0.01\"} 5\n"
        "pgproxy_query_duration_seconds_bucket{le=\"0.1\"} 7\n"
        "pgproxy_query_duration_seconds_bucket{le=\"+Inf\"} 8\n"
        "pgproxy_query_duration_seconds_sum 0.25\n"
        "pgproxy_query_duration_seconds_count 8\n"
        "h_bucket{direction=\"client_to_server\",le=\"0.001\"} 5\n"
        "h_bucket{direction=\"client_to_server\",le=\"+Inf\"} 5\n"
        "h_sum{direction=\"client_to_server\"} 0.000000001\n"
        "h_count{direction=\"client_to_server\"} 5\n");
    pgp_render_free(&r);
}
END_TEST

static Suite *render_suite(void)
{
    Suite *s = suite_create("render");
    TCase *tj = tcase_create("json");
    tcase_add_loop_test(tj, test_json_string, 0, N(json_cases));
    tcase_add_loop_test(tj, test_json_every_byte, 0, 256);
    tcase_add_test(tj, test_json_document);
    tcase_add_loop_test(tj, test_json_misuse, 0, N(misuse_cases));
    tcase_add_test(tj, test_json_depth);
    suite_add_tcase(s, tj);
    TCase *tb = tcase_create("buffer");
    tcase_add_test(tb, test_cap_sticky);
    tcase_add_test(tb, test_cap_escape);
    tcase_add_loop_test(tb, test_numbers, 0, N(num_cases));
    tcase_add_test(tb, test_integers);
    suite_add_tcase(s, tb);
    TCase *th = tcase_create("html_prom");
    tcase_add_loop_test(th, test_html, 0, N(html_cases));
    tcase_add_test(th, test_html_nul);
    tcase_add_loop_test(th, test_prom_label_value, 0, N(prom_cases));
    tcase_add_test(th, test_prom_exposition);
    suite_add_tcase(s, th);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(render_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
