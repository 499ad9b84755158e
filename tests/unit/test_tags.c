/*
 * test_tags.c - tags from SQL comments (DESIGN §4.4, pgproxy/tags.c):
 * sqlcommenter as each emitter writes it (OpenTelemetry/Google libraries
 * URL-encode, Django/Flask double %, Java leaves +, Rails 7.1 does not
 * encode), the Rails/marginalia legacy form, override order, bounds, and
 * that tags never touch the fingerprint.
 */
#include "pgproxy/normalize.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct tag_case {
    const char *sql;
    const char *want;   /* "k=v;k2=v2" in tag order, "" for none */
    bool truncated;
} tag_case_t;

static const tag_case_t cases[] = {
    /* sqlcommenter, spec form (URL-encoded, trailing comment) */
    {"SELECT 1 /*action='index',controller='users',framework='rails%3A7.0'*/",
     "action=index;controller=users;framework=rails:7.0", false},
    {"SELECT 1 /*traceparent='00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01'*/",
     "traceparent=00-5bd66ef5095369c7b0d1f8f4bd33716a-c532cb4098ac3dd2-01", false},
    {"SELECT 1 /*route='%2Fusers%2F%3Cid%3E',db_driver='psycopg2'*/",
     "route=/users/<id>;db_driver=psycopg2", false},
    {"SELECT 1 /* a='1' , b='2' */", "a=1;b=2", false},
    {"SELECT 1 /*a='it\\'s'*/", "a=it's", false},
    {"SELECT 1 /*a='back\\\\slash'*/", "a=back\\slash", false},
    {"SELECT 1 /*a%20b='x'*/", "a b=x", false},
    /* Django / Flask: % doubled */
    {"SELECT 1 /*controller='index',framework='django%%3A4.2',route='%%5Eapi%%2F'*/",
     "controller=index;framework=django:4.2;route=^api/", false},
    {"SELECT 1 /*x='100%%'*/", "x=100%", false},
    /* Java: + stays */
    {"SELECT 1 /*action='a+b',db_driver='jdbc'*/", "action=a+b;db_driver=jdbc", false},
    /* Rails 7.1 unencoded values */
    {"SELECT 1 /*application='MyApp',controller='users',action='show',job='Some::Job'*/",
     "application=MyApp;controller=users;action=show;job=Some::Job", false},
    {"SELECT 1 /*source_location='app/models/user.rb:12:in `find`',x='50% off'*/",
     "source_location=app/models/user.rb:12:in `find`;x=50% off", false},
    {"SELECT 1 /*a='x,y=z'*/", "a=x,y=z", false},
    {"SELECT 1 /*a='%zz%4'*/", "a=%zz%4", false},
    {"SELECT 1 /*a=''*/", "a=", false},
    /* marginalia legacy */
    {"SELECT 1 /*application:BlogApp,controller:posts,action:index*/",
     "application=BlogApp;controller=posts;action=index", false},
    {"/*application:BlogApp,controller:posts,action:index,line:/app/x.rb:3:in `show'*/ SELECT 1",
     "application=BlogApp;controller=posts;action=index;line=/app/x.rb:3:in `show'", false},
    {"SELECT 1 /* application:App , job:Worker */", "application=App;job=Worker", false},
    /* later comments override earlier keys, order of first appearance kept */
    {"/*controller='a',action='x'*/ SELECT 1 /*controller='b'*/", "controller=b;action=x", false},
    {"/*application:A*/ SELECT /* application='B' */ 1", "application=B", false},
    /* not tags */
    {"SELECT 1 /* just a comment */", "", false},
    {"SELECT 1 -- controller='x'", "", false},
    {"SELECT 'a /*b=''c''*/'", "", false},
    {"SELECT 1 /**/", "", false},
    {"SELECT 1 /* = 'x' */", "", false},
    {"SELECT 1 /*a=x*/", "", false},
    /* malformed: what parsed before the error stays */
    {"SELECT 1 /*a='1',b='2*/", "a=1", false},
    {"SELECT 1 /*a='1' b='2'*/", "a=1", false},
    {"SELECT 1 /*a='1',b=*/", "a=1", false},
    {"SELECT 1 /*a='1'", "a=1", false},
    /* nested comment: the outer body as a whole */
    {"SELECT 1 /* a='1' /* inner */ */", "a=1", false},
};

static void render(const pgp_norm_tags_t *tags, char *buf, size_t cap)
{
    size_t n = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < tags->count; i++) {
        const pgp_norm_tag_t *t = &tags->tag[i];
        int w = snprintf(buf + n, cap - n, "%s%.*s=%.*s", i ? ";" : "", (int)t->key_len,
                         tags->buf + t->key_off, (int)t->val_len, tags->buf + t->val_off);
        ck_assert_int_ge(w, 0);
        ck_assert_uint_lt(n + (size_t)w, cap);
        n += (size_t)w;
    }
}

START_TEST(test_tag_case)
{
    const tag_case_t *c = &cases[_i];
    pgp_norm_tags_t tags;
    memset(&tags, 0xAB, sizeof(tags));   /* pgp_normalize resets it */
    char out[512], got[1024];
    pgp_norm_result_t res;
    pgp_normalize(c->sql, strlen(c->sql), NULL, out, sizeof(out), &tags, &res);
    render(&tags, got, sizeof(got));
    ck_assert_msg(strcmp(got, c->want) == 0, "[%s]\n got  [%s]\n want [%s]", c->sql, got, c->want);
    ck_assert(tags.truncated == c->truncated);
}
END_TEST

START_TEST(test_tags_get)
{
    pgp_norm_tags_t tags;
    char out[256];
    pgp_norm_result_t res;
    const char *sql = "SELECT 1 /*request_id='r-42',controller='users'*/";
    pgp_normalize(sql, strlen(sql), NULL, out, sizeof(out), &tags, &res);
    const char *v;
    size_t vl;
    ck_assert(pgp_norm_tags_get(&tags, "request_id", 10, &v, &vl));
    ck_assert_uint_eq(vl, 4);
    ck_assert(memcmp(v, "r-42", 4) == 0);
    ck_assert(!pgp_norm_tags_get(&tags, "request", 7, &v, &vl));
    ck_assert(!pgp_norm_tags_get(&tags, "action", 6, &v, &vl));
    ck_assert_str_eq(out, "SELECT ?");
}
END_TEST

/* More than PGP_NORM_TAGS_MAX keys: the first ones kept, truncated set. */
START_TEST(test_tags_too_many)
{
    char sql[2048];
    size_t n = (size_t)snprintf(sql, sizeof(sql), "SELECT 1 /*");
    for (int i = 0; i < PGP_NORM_TAGS_MAX + 4; i++)
        n += (size_t)snprintf(sql + n, sizeof(sql) - n, "%sk%d='v%d'", i ? "," : "", i, i);
    n += (size_t)snprintf(sql + n, sizeof(sql) - n, "*/");
    pgp_norm_tags_t tags;
    char out[2048];
    pgp_norm_result_t res;
    pgp_normalize(sql, n, NULL, out, sizeof(out), &tags, &res);
    ck_assert_uint_eq(tags.count, PGP_NORM_TAGS_MAX);
    ck_assert(tags.truncated);
    const char *v;
    size_t vl;
    ck_assert(pgp_norm_tags_get(&tags, "k0", 2, &v, &vl));
    ck_assert(!pgp_norm_tags_get(&tags, "k16", 3, &v, &vl));
}
END_TEST

/* Values that overflow the buffer; overrides reclaim space by compaction. */
START_TEST(test_tags_buffer)
{
    static char sql[8192];
    char big[700];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    pgp_norm_tags_t tags;
    char out[8192];
    pgp_norm_result_t res;
    /* two 699-byte values do not fit in 1 KB: the second is dropped */
    int n = snprintf(sql, sizeof(sql), "/*a='%s',b='%s'*/ SELECT 1", big, big);
    pgp_normalize(sql, (size_t)n, NULL, out, sizeof(out), &tags, &res);
    ck_assert_uint_eq(tags.count, 1);
    ck_assert(tags.truncated);
    /* the same key rewritten many times: compaction keeps it fitting */
    n = snprintf(sql, sizeof(sql), "/*a='%s'*/ /*a='%s'*/ /*a='%s'*/ /*a='y'*/ SELECT 1", big, big, big);
    pgp_normalize(sql, (size_t)n, NULL, out, sizeof(out), &tags, &res);
    ck_assert_uint_eq(tags.count, 1);
    ck_assert(!tags.truncated);
    const char *v;
    size_t vl;
    ck_assert(pgp_norm_tags_get(&tags, "a", 1, &v, &vl));
    ck_assert_uint_eq(vl, 1);
    ck_assert_int_eq(v[0], 'y');
    /* a value longer than the buffer */
    static char huge[3000];
    memset(huge, 'z', sizeof(huge) - 1);
    n = snprintf(sql, sizeof(sql), "/*a='%s'*/ SELECT 1", huge);
    pgp_normalize(sql, (size_t)n, NULL, out, sizeof(out), &tags, &res);
    ck_assert_uint_eq(tags.count, 0);
    ck_assert(tags.truncated);
}
END_TEST

/* Direct use of the parser on one body; reset empties. */
START_TEST(test_tags_parse_direct)
{
    pgp_norm_tags_t tags;
    pgp_norm_tags_reset(&tags);
    const char *body = "controller='a'";
    pgp_norm_tags_parse(&tags, body, strlen(body));
    ck_assert_uint_eq(tags.count, 1);
    pgp_norm_tags_parse(&tags, "action:b", 8);
    ck_assert_uint_eq(tags.count, 2);
    pgp_norm_tags_parse(&tags, "controller='c'", 6);   /* cut short: "contro" */
    ck_assert_uint_eq(tags.count, 2);
    pgp_norm_tags_reset(&tags);
    ck_assert_uint_eq(tags.count, 0);
    ck_assert(!tags.truncated);
}
END_TEST

START_TEST(test_tags_not_in_fingerprint)
{
    char out[256];
    pgp_norm_result_t a, b;
    pgp_norm_tags_t ta, tb;
    const char *s1 = "/*controller='users',action='show'*/ SELECT * FROM t WHERE id = 1";
    const char *s2 = "SELECT * FROM t WHERE id = 2 /*application:X,controller:posts*/";
    pgp_normalize(s1, strlen(s1), NULL, out, sizeof(out), &ta, &a);
    pgp_normalize(s2, strlen(s2), NULL, out, sizeof(out), &tb, &b);
    ck_assert_uint_eq(a.fingerprint, b.fingerprint);
    ck_assert_uint_eq(ta.count, 2);
    ck_assert_uint_eq(tb.count, 2);
    ck_assert_str_eq(out, "SELECT * FROM t WHERE id = ?");
}
END_TEST

static Suite *tags_suite(void)
{
    Suite *s = suite_create("tags");
    TCase *tc = tcase_create("tags");
    tcase_add_loop_test(tc, test_tag_case, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, test_tags_get);
    tcase_add_test(tc, test_tags_too_many);
    tcase_add_test(tc, test_tags_buffer);
    tcase_add_test(tc, test_tags_parse_direct);
    tcase_add_test(tc, test_tags_not_in_fingerprint);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tags_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
