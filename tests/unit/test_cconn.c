/*
 * test_cconn.c - the SQL console connection: who may enter, the password
 * step, queries, the extended protocol refused until Sync, oversized and
 * malformed messages.  Output bytes are walked message by message.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "pgproxy/cconn.h"

/* The message types of out, in order, as a string ("RSKZ"...). */
static void types_of(const pgp_render_t *out, char *buf, size_t cap)
{
    const uint8_t *p = (const uint8_t *)pgp_render_data(out);
    size_t n = pgp_render_len(out), i = 0, k = 0;
    while (i + 5 <= n && k + 1 < cap) {
        uint32_t len = pgp_be32(p + i + 1);
        ck_assert_uint_ge(len, 4);
        buf[k++] = (char)p[i];
        i += 1 + len;
    }
    ck_assert_uint_eq(i, n);
    buf[k] = '\0';
}

/* The SQLSTATE (C field) of the first E message in out, "" when none. */
static void sqlstate_of(const pgp_render_t *out, char st[6])
{
    const uint8_t *p = (const uint8_t *)pgp_render_data(out);
    size_t n = pgp_render_len(out), i = 0;
    st[0] = '\0';
    while (i + 5 <= n) {
        uint32_t len = pgp_be32(p + i + 1);
        if (p[i] == 'E') {
            for (size_t f = i + 5; f < i + 1 + len && p[f] != 0;) {
                size_t z = f + 1 + strlen((const char *)p + f + 1);
                if (p[f] == 'C')
                    memcpy(st, p + f + 1, 6);
                f = z + 1;
            }
            return;
        }
        i += 1 + len;
    }
}

static size_t msg(uint8_t *buf, char type, const char *body, size_t body_len)
{
    buf[0] = (uint8_t)type;
    pgp_put_be32(buf + 1, (uint32_t)(4 + body_len));
    memcpy(buf + 5, body, body_len);
    return 5 + body_len;
}

typedef struct cc_case {
    const char *users;        /* admin.console_users as a comma list, "" = empty */
    const char *token;
    const char *user;
    bool local;
    const char *want_types;   /* of the first answer */
    const char *want_state;   /* sqlstate of a refusal, "" */
} cc_case_t;

static const cc_case_t access_cases[] = {
    { "", "", "anyone", true, "RSSSSSSSSSSSKZ", "" },
    { "", "", "anyone", false, "E", "28000" },
    { "ops", "", "ops", true, "RSSSSSSSSSSSKZ", "" },
    { "ops", "", "dev", true, "E", "28000" },
    { "ops,dba", "t0k", "dba", false, "R", "" },
    { "", "t0k", "x", true, "R", "" },
};

static void config_for(pgp_config_t *cfg, const cc_case_t *c)
{
    char err[256];
    pgp_config_init(cfg);
    ck_assert_int_eq(pgp_config_set(cfg, "admin.console_users", c->users, NULL, err,
                                    sizeof(err)), 0);
    ck_assert_int_eq(pgp_config_set(cfg, "admin.token", c->token, NULL, err, sizeof(err)), 0);
}

START_TEST(test_access)
{
    const cc_case_t *c = &access_cases[_i];
    pgp_config_t cfg;
    config_for(&cfg, c);
    pgp_render_t out;
    pgp_render_init(&out, 1 << 20);
    pgp_cconn_next_t next;
    pgp_cconn_t *cc = pgp_cconn_start(&cfg, NULL, c->user, "psql", c->local, 7, 9, &out, &next);
    ck_assert_ptr_nonnull(cc);
    char types[64], st[6];
    types_of(&out, types, sizeof(types));
    sqlstate_of(&out, st);
    /* The ParameterStatus count belongs to console.c: compare the shape only. */
    ck_assert_int_eq(types[0], c->want_types[0]);
    ck_assert_int_eq(types[strlen(types) - 1], c->want_types[strlen(c->want_types) - 1]);
    ck_assert_str_eq(st, c->want_state);
    ck_assert_int_eq(next, c->want_state[0] ? PGP_CCONN_CLOSE : PGP_CCONN_CONTINUE);
    pgp_cconn_destroy(cc);
    pgp_render_free(&out);
    pgp_config_free(&cfg);
}
END_TEST

START_TEST(test_password)
{
    static const struct { const char *pw; size_t len; bool ok; } cases[] = {
        { "t0k", 4, true }, { "t0k", 3, true }, { "t0", 3, false }, { "t0kk", 5, false },
        { "", 1, false },
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        pgp_config_t cfg;
        config_for(&cfg, &access_cases[5]);
        pgp_render_t out;
        pgp_render_init(&out, 1 << 20);
        pgp_cconn_next_t next;
        pgp_cconn_t *cc = pgp_cconn_start(&cfg, NULL, "x", NULL, true, 1, 2, &out, &next);
        pgp_render_free(&out);
        uint8_t buf[64];
        size_t n = msg(buf, 'p', cases[k].pw, cases[k].len);
        pgp_render_init(&out, 1 << 20);
        next = pgp_cconn_feed(cc, buf, n, &out);
        char types[64], st[6];
        types_of(&out, types, sizeof(types));
        sqlstate_of(&out, st);
        if (cases[k].ok) {
            ck_assert_int_eq(next, PGP_CCONN_CONTINUE);
            ck_assert_int_eq(types[strlen(types) - 1], 'Z');
        } else {
            ck_assert_int_eq(next, PGP_CCONN_CLOSE);
            ck_assert_str_eq(st, "28P01");
        }
        pgp_render_free(&out);
        pgp_cconn_destroy(cc);
        pgp_config_free(&cfg);
    }
}
END_TEST

/* A query split at every byte, then the extended protocol refused until Sync. */
START_TEST(test_messages)
{
    pgp_config_t cfg;
    config_for(&cfg, &access_cases[0]);
    pgp_render_t out;
    pgp_render_init(&out, 1 << 20);
    pgp_cconn_next_t next;
    pgp_cconn_t *cc = pgp_cconn_start(&cfg, NULL, "x", NULL, true, 1, 2, &out, &next);
    pgp_render_free(&out);
    uint8_t buf[256];
    size_t n = msg(buf, 'Q', "SHOW VERSION", 13);
    pgp_render_init(&out, 1 << 20);
    for (size_t i = 0; i < n; i++)
        ck_assert_int_eq(pgp_cconn_feed(cc, buf + i, 1, &out), PGP_CCONN_CONTINUE);
    char types[64];
    types_of(&out, types, sizeof(types));
    ck_assert_str_eq(types, "TDCZ");
    pgp_render_free(&out);

    size_t k = msg(buf, 'P', "\0SELECT 1\0\0\0", 13);
    k += msg(buf + k, 'B', "\0\0\0\0\0\0\0\0", 8);
    k += msg(buf + k, 'E', "\0\0\0\0\0", 5);
    k += msg(buf + k, 'S', "", 0);
    pgp_render_init(&out, 1 << 20);
    ck_assert_int_eq(pgp_cconn_feed(cc, buf, k, &out), PGP_CCONN_CONTINUE);
    types_of(&out, types, sizeof(types));
    ck_assert_str_eq(types, "EZ");
    char st[6];
    sqlstate_of(&out, st);
    ck_assert_str_eq(st, "0A000");
    pgp_render_free(&out);

    k = msg(buf, 'X', "", 0);
    pgp_render_init(&out, 1 << 20);
    ck_assert_int_eq(pgp_cconn_feed(cc, buf, k, &out), PGP_CCONN_CLOSE);
    ck_assert_uint_eq(pgp_render_len(&out), 0);
    pgp_render_free(&out);
    pgp_cconn_destroy(cc);
    pgp_config_free(&cfg);
}
END_TEST

/* Too long, or a length that cannot be: FATAL and close, nothing else. */
START_TEST(test_bad_input)
{
    static const uint8_t bad_len[] = { 'Q', 0, 0, 0, 2 };
    uint8_t big_hdr[5] = { 'Q' };
    pgp_put_be32(big_hdr + 1, PGP_CCONN_MAX_MESSAGE_BYTES + 100);
    const struct { const uint8_t *p; size_t n; const char *state; } cases[] = {
        { bad_len, sizeof(bad_len), "08P01" },
        { big_hdr, sizeof(big_hdr), "08P01" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pgp_config_t cfg;
        config_for(&cfg, &access_cases[0]);
        pgp_render_t out;
        pgp_render_init(&out, 1 << 20);
        pgp_cconn_next_t next;
        pgp_cconn_t *cc = pgp_cconn_start(&cfg, NULL, "x", NULL, true, 1, 2, &out, &next);
        pgp_render_free(&out);
        pgp_render_init(&out, 1 << 20);
        ck_assert_int_eq(pgp_cconn_feed(cc, cases[i].p, cases[i].n, &out), PGP_CCONN_CLOSE);
        char st[6];
        sqlstate_of(&out, st);
        ck_assert_str_eq(st, cases[i].state);
        pgp_render_free(&out);
        /* Once closed, it stays closed. */
        pgp_render_init(&out, 1 << 20);
        ck_assert_int_eq(pgp_cconn_feed(cc, (const uint8_t *)"Q", 1, &out), PGP_CCONN_CLOSE);
        pgp_render_free(&out);
        pgp_cconn_destroy(cc);
        pgp_config_free(&cfg);
    }
}
END_TEST

static Suite *cconn_suite(void)
{
    Suite *s = suite_create("cconn");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_access, 0, sizeof(access_cases) / sizeof(access_cases[0]));
    tcase_add_test(tc, test_password);
    tcase_add_test(tc, test_messages);
    tcase_add_test(tc, test_bad_input);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cconn_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
