/*
 * test_track.c - the tracker fed with recorded protocol conversations.
 *
 * Each case builds the client and server byte streams message by message,
 * feeds them through real framers into the tracker in the order they
 * would cross pgproxy (with a tick per step), and checks the events.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgproxy/proto.h"
#include "pgproxy/track.h"

#define MAX_EVENTS 16

typedef struct recorded {
    pgp_track_event_t ev;
    char sql[256];
    char statement[64];
    char summary[PGP_TRACK_SUMMARY_BYTES + 1];
} recorded_t;

static recorded_t events[MAX_EVENTS];
static int n_events;

static void on_event(void *ud, const pgp_track_event_t *ev)
{
    (void)ud;
    ck_assert_int_lt(n_events, MAX_EVENTS);
    recorded_t *r = &events[n_events++];
    r->ev = *ev;
    size_t n = ev->sql_len < sizeof(r->sql) - 1 ? ev->sql_len : sizeof(r->sql) - 1;
    memcpy(r->sql, ev->sql, n);
    r->sql[n] = '\0';
    snprintf(r->statement, sizeof(r->statement), "%s", ev->statement ? ev->statement : "(null)");
    r->ev.sql = r->sql;
    ck_assert_uint_le(ev->params_summary_len, PGP_TRACK_SUMMARY_BYTES);
    if (ev->params_summary != NULL)
        memcpy(r->summary, ev->params_summary, ev->params_summary_len);
    r->summary[ev->params_summary ? ev->params_summary_len : 0] = '\0';
    r->ev.params_summary = ev->params_summary ? r->summary : NULL;
}

/* A conversation: one tracker, two framers, a clock advanced per step. */
typedef struct conv {
    pgp_track_t *t;
    pgp_framer_t c2s, s2c;
    uint64_t now;
    uint8_t buf[4096];
    size_t len;
} conv_t;

static conv_t *conv_new(size_t max_sql)
{
    conv_t *c = calloc(1, sizeof(*c));
    c->t = pgp_track_create(max_sql, on_event, NULL);
    ck_assert_ptr_nonnull(c->t);
    pgp_framer_init(&c->c2s, 1u << 30);
    pgp_framer_init(&c->s2c, 1u << 30);
    c->now = 1000;
    n_events = 0;
    return c;
}

static void conv_free(conv_t *c)
{
    pgp_track_destroy(c->t);
    free(c);
}

/* Append one message: type, then body parts given as (ptr, len) pairs, ended by NULL. */
static void msg(conv_t *c, char type, ...)
{
    size_t start = c->len;
    c->buf[c->len++] = (uint8_t)type;
    c->len += 4;
    va_list ap;
    va_start(ap, type);
    for (;;) {
        const void *p = va_arg(ap, const void *);
        if (p == NULL)
            break;
        size_t n = va_arg(ap, size_t);
        memcpy(c->buf + c->len, p, n);
        c->len += n;
    }
    va_end(ap);
    pgp_put_be32(c->buf + start + 1, (uint32_t)(c->len - start - 1));
}

#define S(str) (str), sizeof(str)          /* a C string with its NUL */
#define B(str) (str), (sizeof(str) - 1)    /* bytes without the NUL */

/* Send what was built, from the client (1) or the server (0), at the next tick. */
static void flush(conv_t *c, int from_client)
{
    c->now += 100;
    pgp_track_set_now(c->t, c->now);
    size_t bad;
    int r = from_client
                ? pgp_framer_feed(&c->c2s, c->buf, c->len, &pgp_track_client_ops, c->t, &bad)
                : pgp_framer_feed(&c->s2c, c->buf, c->len, &pgp_track_server_ops, c->t, &bad);
    ck_assert_int_eq(r, PGP_FRAME_OK);
    c->len = 0;
}

static const uint8_t zero16[2] = { 0, 0 };
static const uint8_t maxrows0[4] = { 0, 0, 0, 0 };
static const uint8_t maxrows2[4] = { 0, 0, 0, 2 };

static void ready(conv_t *c, char status)
{
    msg(c, 'Z', &status, (size_t)1, NULL);
}

static void parse(conv_t *c, const char *name, const char *sql)
{
    msg(c, 'P', name, strlen(name) + 1, sql, strlen(sql) + 1, zero16, sizeof(zero16), NULL);
}

static void bind(conv_t *c, const char *portal, const char *stmt, const char *value)
{
    uint8_t params[64];
    size_t n = 0;
    params[n++] = 0; params[n++] = 0;              /* no format codes */
    params[n++] = 0; params[n++] = 1;              /* one parameter */
    size_t vl = strlen(value);
    pgp_put_be32(params + n, (uint32_t)vl);
    n += 4;
    memcpy(params + n, value, vl);
    n += vl;
    params[n++] = 0; params[n++] = 0;              /* result formats */
    msg(c, 'B', portal, strlen(portal) + 1, stmt, strlen(stmt) + 1, params, n, NULL);
}

static void execute(conv_t *c, const char *portal, const uint8_t rows[4])
{
    msg(c, 'E', portal, strlen(portal) + 1, rows, (size_t)4, NULL);
}

static void datarow(conv_t *c)
{
    static const uint8_t one_col[] = { 0, 1, 0, 0, 0, 1, '7' };
    msg(c, 'D', one_col, sizeof(one_col), NULL);
}

static void error(conv_t *c, const char *sqlstate)
{
    char f[16];
    snprintf(f, sizeof(f), "C%s", sqlstate);
    msg(c, 'E', S("SERROR"), f, strlen(f) + 1, S("Mboom"), S(""), NULL);
}

START_TEST(test_simple_query)
{
    conv_t *c = conv_new(1024);
    msg(c, 'Q', S("SELECT 1 FROM t"), NULL);
    flush(c, 1);
    uint64_t sent = c->now;
    msg(c, 'T', B("\0\0"), NULL);
    datarow(c);
    datarow(c);
    msg(c, 'C', S("SELECT 2"), NULL);
    ready(c, 'I');
    flush(c, 0);
    ck_assert_int_eq(n_events, 1);
    ck_assert_int_eq(events[0].ev.kind, PGP_TRACK_QUERY);
    ck_assert_str_eq(events[0].sql, "SELECT 1 FROM t");
    ck_assert_uint_eq(events[0].ev.rows, 2);
    ck_assert_uint_eq(events[0].ev.start_ticks, sent);
    ck_assert_uint_eq(events[0].ev.end_ticks, c->now);
    ck_assert_str_eq(events[0].ev.sqlstate, "");
    ck_assert_str_eq(events[0].statement, "(null)");
    ck_assert(events[0].ev.standard_strings);
    ck_assert(!events[0].ev.pipelined);
    conv_free(c);
}
END_TEST

START_TEST(test_multi_statement_with_error)
{
    conv_t *c = conv_new(1024);
    msg(c, 'Q', S("SELECT 1; SELECT x"), NULL);
    flush(c, 1);
    datarow(c);
    msg(c, 'C', S("SELECT 1"), NULL);
    msg(c, 'N', S("SWARNING"), S(""), NULL);   /* a notice is not a response */
    error(c, "42703");
    ready(c, 'I');
    flush(c, 0);
    ck_assert_int_eq(n_events, 1);
    ck_assert_str_eq(events[0].ev.sqlstate, "42703");
    ck_assert_uint_eq(events[0].ev.rows, 1);
    conv_free(c);
}
END_TEST

START_TEST(test_extended_unnamed)
{
    conv_t *c = conv_new(1024);
    parse(c, "", "SELECT * FROM a WHERE id = $1");
    bind(c, "", "", "42");
    msg(c, 'D', S("P"), NULL);
    execute(c, "", maxrows0);
    msg(c, 'S', NULL);
    flush(c, 1);
    uint64_t sent = c->now;
    msg(c, '1', NULL);
    msg(c, '2', NULL);
    msg(c, 'T', B("\0\0"), NULL);
    datarow(c);
    msg(c, 'C', S("SELECT 1"), NULL);
    ready(c, 'I');
    flush(c, 0);
    ck_assert_int_eq(n_events, 1);
    ck_assert_int_eq(events[0].ev.kind, PGP_TRACK_EXECUTE);
    ck_assert_str_eq(events[0].sql, "SELECT * FROM a WHERE id = $1");
    ck_assert_uint_eq(events[0].ev.start_ticks, sent);
    ck_assert_uint_eq(events[0].ev.rows, 1);
    ck_assert(!events[0].ev.pipelined);
    ck_assert_uint_ne(events[0].ev.params_hash, 0);
    conv_free(c);
}
END_TEST

START_TEST(test_named_statement_reused_and_params_hash)
{
    conv_t *c = conv_new(1024);
    parse(c, "s1", "SELECT name FROM users WHERE id = $1");
    msg(c, 'S', NULL);
    flush(c, 1);
    msg(c, '1', NULL);
    ready(c, 'I');
    flush(c, 0);
    ck_assert_int_eq(n_events, 0);
    const char *vals[3] = { "1", "2", "1" };
    for (int i = 0; i < 3; i++) {
        bind(c, "", "s1", vals[i]);
        execute(c, "", maxrows0);
        msg(c, 'S', NULL);
        flush(c, 1);
        msg(c, '2', NULL);
        datarow(c);
        msg(c, 'C', S("SELECT 1"), NULL);
        ready(c, 'I');
        flush(c, 0);
    }
    ck_assert_int_eq(n_events, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert_str_eq(events[i].sql, "SELECT name FROM users WHERE id = $1");
        ck_assert_str_eq(events[i].statement, "s1");
    }
    ck_assert_uint_ne(events[0].ev.params_hash, events[1].ev.params_hash);
    ck_assert_uint_eq(events[0].ev.params_hash, events[2].ev.params_hash);
    /* One memo per statement, shared by its Executes. */
    ck_assert_ptr_eq(events[0].ev.memo, events[1].ev.memo);
    ck_assert_ptr_nonnull(events[0].ev.memo);
    /* Close the statement: a later Execute can't be attributed any more. */
    msg(c, 'C', B("S"), S("s1"), NULL);
    msg(c, 'S', NULL);
    flush(c, 1);
    msg(c, '3', NULL);
    ready(c, 'I');
    flush(c, 0);
    bind(c, "", "s1", "3");
    execute(c, "", maxrows0);
    msg(c, 'S', NULL);
    flush(c, 1);
    error(c, "26000");
    ready(c, 'I');
    flush(c, 0);
    ck_assert_int_eq(n_events, 4);
    ck_assert_str_eq(events[3].sql, "");
    ck_assert_str_eq(events[3].ev.sqlstate, "26000");
    conv_free(c);
}
END_TEST

START_TEST(test_pipeline_batch)
{
    conv_t *c = conv_new(1024);
    parse(c, "", "INSERT INTO t VALUES ($1)");
    bind(c, "", "", "1");
    execute(c, "", maxrows0);
    bind(c, "", "", "2");
    execute(c, "", maxrows0);
    msg(c, 'S', NULL);
    flush(c, 1);
    msg(c, '1', NULL);
    msg(c, '2', NULL);
    msg(c, 'C', S("INSERT 0 1"), NULL);
    msg(c, '2', NULL);
    msg(c, 'C', S("INSERT 0 1"), NULL);
    ready(c, 'I');
    flush(c, 0);
    ck_assert_int_eq(n_events, 2);
    ck_assert(events[0].ev.pipelined);
    ck_assert(events[1].ev.pipelined);
    ck_assert_uint_eq(events[0].ev.rows, 1);
    ck_assert_uint_eq(events[1].ev.rows, 1);
    /* The second can't have started before the first ended. */
    ck_assert_uint_ge(events[1].ev.start_ticks, events[0].ev.end_ticks);
    ck_assert_str_eq(events[1].sql, "INSERT INTO t VALUES ($1)");
    conv_free(c);
}
END_TEST

START_TEST(test_error_mid_pipeline_skips_to_sync)
{
    conv_t *c = conv_new(1024);
    parse(c, "", "SELECT 1/0");
    bind(c, "", "", "x");
    execute(c, "", maxrows0);
    parse(c, "", "SELECT 2");
    bind(c, "", "", "y");
    execute(c, "", maxrows0);
    msg(c, 'S', NULL);
    flush(c, 1);
    msg(c, '1', NULL);
    msg(c, '2', NULL);
    error(c, "22012");
    ready(c, 'I');
    flush(c, 0);
    ck_assert_int_eq(n_events, 1);
    ck_assert_str_eq(events[0].ev.sqlstate, "22012");
    ck_assert_str_eq(events[0].sql, "SELECT 1/0");
    /* The session goes on normally. */
    msg(c, 'Q', S("SELECT 3"), NULL);
    flush(c, 1);
    msg(c, 'C', S("SELECT 0"), NULL);
    ready(c, 'I');
    flush(c, 0);
    ck_assert_int_eq(n_events, 2);
    ck_assert_str_eq(events[1].sql, "SELECT 3");
    ck_assert_str_eq(events[1].ev.sqlstate, "");
    pgp_track_stats_t st;
    pgp_track_get_stats(c->t, &st);
    ck_assert_uint_eq(st.desyncs, 0);
    conv_free(c);
}
END_TEST

START_TEST(test_parse_error_reported_on_its_execute)
{
    conv_t *c = conv_new(1024);
    parse(c, "", "SELEC oops");
    bind(c, "", "", "1");
    execute(c, "", maxrows0);
    msg(c, 'S', NULL);
    flush(c, 1);
    error(c, "42601");
    ready(c, 'I');
    flush(c, 0);
    ck_assert_int_eq(n_events, 1);
    ck_assert_str_eq(events[0].sql, "SELEC oops");
    ck_assert_str_eq(events[0].ev.sqlstate, "42601");
    conv_free(c);
}
END_TEST

START_TEST(test_error_before_sync_sent)
{
    /* The error comes back before the client sent Sync: the messages the
     * client sends until its Sync are discarded by the server. */
    conv_t *c = conv_new(1024);
    parse(c, "", "SELECT 1/0");
    bind(c, "", "", "1");
    execute(c, "", maxrows0);
    msg(c, 'H', NULL);   /* Flush */
    flush(c, 1);
    msg(c, '1', NULL);
    msg(c, '2', NULL);
    error(c, "22012");
    flush(c, 0);
    ck_assert_int_eq(n_events, 1);
    parse(c, "", "SELECT 2");
    bind(c, "", "", "1");
    execute(c, "", maxrows0);
    msg(c, 'S', NULL);
    flush(c, 1);
    ready(c, 'E');
    flush(c, 0);
    ck_assert_int_eq(n_events, 1);
    msg(c, 'Q', S("ROLLBACK"), NULL);
    flush(c, 1);
    msg(c, 'C', S("ROLLBACK"), NULL);
    ready(c, 'I');
    flush(c, 0);
    ck_assert_int_eq(n_events, 2);
    ck_assert_str_eq(events[1].sql, "ROLLBACK");
    conv_free(c);
}
END_TEST

START_TEST(test_portal_suspended)
{
    conv_t *c = conv_new(1024);
    parse(c, "", "SELECT * FROM big");
    bind(c, "cur", "", "1");
    execute(c, "cur", maxrows2);
    msg(c, 'H', NULL);
    flush(c, 1);
    msg(c, '1', NULL);
    msg(c, '2', NULL);
    datarow(c);
    datarow(c);
    msg(c, 's', NULL);
    flush(c, 0);
    ck_assert_int_eq(n_events, 1);
    ck_assert(events[0].ev.suspended);
    ck_assert_uint_eq(events[0].ev.rows, 2);
    execute(c, "cur", maxrows2);
    msg(c, 'S', NULL);
    flush(c, 1);
    datarow(c);
    msg(c, 'C', S("SELECT 1"), NULL);
    ready(c, 'I');
    flush(c, 0);
    ck_assert_int_eq(n_events, 2);
    ck_assert(!events[1].ev.suspended);
    ck_assert_str_eq(events[1].sql, "SELECT * FROM big");
    ck_assert_uint_eq(events[1].ev.rows, 1);
    conv_free(c);
}
END_TEST

START_TEST(test_copy_in_one_event)
{
    conv_t *c = conv_new(1024);
    msg(c, 'Q', S("COPY t FROM STDIN"), NULL);
    flush(c, 1);
    msg(c, 'G', B("\0\0\0"), NULL);
    flush(c, 0);
    msg(c, 'd', B("1\n2\n"), NULL);
    msg(c, 'd', B("3\n"), NULL);
    msg(c, 'c', NULL);
    flush(c, 1);
    msg(c, 'C', S("COPY 3"), NULL);
    ready(c, 'I');
    flush(c, 0);
    ck_assert_int_eq(n_events, 1);
    ck_assert_uint_eq(events[0].ev.rows, 3);
    ck_assert_uint_eq(events[0].ev.copy_bytes, 6);
    conv_free(c);
}
END_TEST

START_TEST(test_async_messages_and_parameters)
{
    conv_t *c = conv_new(1024);
    msg(c, 'S', S("application_name"), S("web-1"), NULL);
    msg(c, 'S', S("standard_conforming_strings"), S("off"), NULL);
    ready(c, 'I');
    flush(c, 0);
    ck_assert_str_eq(pgp_track_application_name(c->t), "web-1");
    ck_assert(!pgp_track_standard_strings(c->t));
    msg(c, 'Q', S("LISTEN x"), NULL);
    flush(c, 1);
    msg(c, 'A', B("\0\0\0\1"), S("x"), S(""), NULL);   /* notification mid-response */
    msg(c, 'S', S("application_name"), S("web-2"), NULL);
    msg(c, 'C', S("LISTEN"), NULL);
    ready(c, 'I');
    msg(c, 'A', B("\0\0\0\1"), S("x"), S("p"), NULL);   /* and while idle */
    flush(c, 0);
    ck_assert_int_eq(n_events, 1);
    ck_assert_uint_eq(events[0].ev.rows, 0);
    ck_assert(!events[0].ev.standard_strings);
    ck_assert_str_eq(pgp_track_application_name(c->t), "web-2");
    conv_free(c);
}
END_TEST

START_TEST(test_deallocate_all_and_discard)
{
    conv_t *c = conv_new(1024);
    parse(c, "a", "SELECT 1");
    msg(c, 'S', NULL);
    flush(c, 1);
    msg(c, '1', NULL);
    ready(c, 'I');
    flush(c, 0);
    msg(c, 'Q', S("  deallocate ALL"), NULL);
    flush(c, 1);
    msg(c, 'C', S("DEALLOCATE ALL"), NULL);
    ready(c, 'I');
    flush(c, 0);
    bind(c, "", "a", "1");
    execute(c, "", maxrows0);
    msg(c, 'S', NULL);
    flush(c, 1);
    error(c, "26000");
    ready(c, 'I');
    flush(c, 0);
    ck_assert_int_eq(n_events, 2);
    ck_assert_str_eq(events[1].sql, "");
    conv_free(c);
}
END_TEST

START_TEST(test_function_call)
{
    conv_t *c = conv_new(1024);
    msg(c, 'F', B("\0\0\0\1\0\0\0\0\0\0"), NULL);
    flush(c, 1);
    msg(c, 'V', B("\xff\xff\xff\xff"), NULL);
    ready(c, 'I');
    flush(c, 0);
    ck_assert_int_eq(n_events, 1);
    ck_assert_int_eq(events[0].ev.kind, PGP_TRACK_FUNCTION);
    conv_free(c);
}
END_TEST

START_TEST(test_sql_capped)
{
    conv_t *c = conv_new(8);
    msg(c, 'Q', S("SELECT 123456789"), NULL);
    flush(c, 1);
    msg(c, 'C', S("SELECT 1"), NULL);
    ready(c, 'I');
    flush(c, 0);
    ck_assert_int_eq(n_events, 1);
    ck_assert_str_eq(events[0].sql, "SELECT 1");
    ck_assert(events[0].ev.sql_truncated);
    conv_free(c);
}
END_TEST

START_TEST(test_desync_recovers)
{
    conv_t *c = conv_new(1024);
    msg(c, '1', NULL);   /* a ParseComplete nobody asked for */
    flush(c, 0);
    msg(c, 'Q', S("SELECT 1"), NULL);
    flush(c, 1);
    msg(c, 'C', S("SELECT 0"), NULL);
    ready(c, 'I');
    flush(c, 0);
    ck_assert_int_eq(n_events, 0);   /* given up while out of step */
    msg(c, 'Q', S("SELECT 2"), NULL);
    flush(c, 1);
    msg(c, 'C', S("SELECT 0"), NULL);
    ready(c, 'I');
    flush(c, 0);
    ck_assert_int_eq(n_events, 1);
    ck_assert_str_eq(events[0].sql, "SELECT 2");
    pgp_track_stats_t st;
    pgp_track_get_stats(c->t, &st);
    ck_assert_uint_eq(st.desyncs, 1);
    conv_free(c);
}
END_TEST

START_TEST(test_sql_prepare_execute)
{
    conv_t *c = conv_new(1024);
    msg(c, 'Q', S("PREPARE q1 (int) AS SELECT * FROM t WHERE id = $1;"), NULL);
    flush(c, 1);
    msg(c, 'C', S("PREPARE"), NULL);
    ready(c, 'I');
    flush(c, 0);
    const char *runs[3] = { "EXECUTE q1(1)", "execute Q1 (2)", "EXECUTE q1(1)" };
    for (int i = 0; i < 3; i++) {
        msg(c, 'Q', runs[i], strlen(runs[i]) + 1, NULL);
        flush(c, 1);
        datarow(c);
        msg(c, 'C', S("SELECT 1"), NULL);
        ready(c, 'I');
        flush(c, 0);
    }
    ck_assert_int_eq(n_events, 4);
    ck_assert_str_eq(events[0].sql, "PREPARE q1 (int) AS SELECT * FROM t WHERE id = $1;");
    for (int i = 1; i < 4; i++)
        ck_assert_str_eq(events[i].sql, "SELECT * FROM t WHERE id = $1");
    ck_assert_ptr_eq(events[1].ev.memo, events[2].ev.memo);
    ck_assert_uint_ne(events[1].ev.params_hash, events[2].ev.params_hash);
    ck_assert_uint_eq(events[1].ev.params_hash, events[3].ev.params_hash);
    /* DEALLOCATE forgets it: EXECUTE is then reported as written. */
    msg(c, 'Q', S("DEALLOCATE q1"), NULL);
    flush(c, 1);
    msg(c, 'C', S("DEALLOCATE"), NULL);
    ready(c, 'I');
    flush(c, 0);
    msg(c, 'Q', S("EXECUTE q1(3)"), NULL);
    flush(c, 1);
    error(c, "26000");
    ready(c, 'I');
    flush(c, 0);
    ck_assert_int_eq(n_events, 6);
    ck_assert_str_eq(events[5].sql, "EXECUTE q1(3)");
    conv_free(c);
}
END_TEST

/* Bind parameters summarized per profiling.params, pipelined portals keep their own. */
static void bind_raw(conv_t *c, const uint8_t *params, size_t n)
{
    msg(c, 'B', S(""), S("s"), params, n, NULL);
}

START_TEST(test_params_summary)
{
    static const struct {
        pgp_track_params_t mode;
        const char *want0, *want1;
    } cases[] = {
        { PGP_TRACK_PARAMS_OFF, NULL, NULL },
        { PGP_TRACK_PARAMS_VALUES, "$1='it''s', $2=NULL, $3=<binary 4 bytes>", "$1='x?y'" },
        { PGP_TRACK_PARAMS_TYPES, "$1:text(4 bytes), $2:NULL, $3:binary(4 bytes)",
          "$1:text(3 bytes)" },
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        conv_t *c = conv_new(1024);
        pgp_track_set_params(c->t, cases[k].mode);
        parse(c, "s", "SELECT $1, $2, $3");
        /* formats: text, text, binary; values: "it's", NULL, 4 bytes */
        static const uint8_t p0[] = { 0, 3, 0, 0, 0, 0, 0, 1, 0, 3,
                                      0, 0, 0, 4, 'i', 't', '\'', 's',
                                      0xff, 0xff, 0xff, 0xff,
                                      0, 0, 0, 4, 0, 0, 0, 42, 0, 0 };
        static const uint8_t p1[] = { 0, 0, 0, 1, 0, 0, 0, 3, 'x', '\n', 'y', 0, 0 };
        bind_raw(c, p0, sizeof(p0));
        execute(c, "", maxrows0);
        bind_raw(c, p1, sizeof(p1));   /* replaces the portal before the first answer */
        execute(c, "", maxrows0);
        msg(c, 'S', NULL);
        flush(c, 1);
        msg(c, '1', NULL);
        msg(c, '2', NULL);
        msg(c, 'C', S("SELECT 1"), NULL);
        msg(c, '2', NULL);
        msg(c, 'C', S("SELECT 1"), NULL);
        ready(c, 'I');
        flush(c, 0);
        ck_assert_int_eq(n_events, 2);
        if (cases[k].want0 == NULL) {
            ck_assert_ptr_null(events[0].ev.params_summary);
            ck_assert_ptr_null(events[1].ev.params_summary);
        } else {
            ck_assert_str_eq(events[0].summary, cases[k].want0);
            ck_assert_str_eq(events[1].summary, cases[k].want1);
        }
        conv_free(c);
    }
}
END_TEST

/* A long value is cut, the summary stays bounded, a malformed Bind gives none. */
START_TEST(test_params_summary_bounds)
{
    conv_t *c = conv_new(4096);
    pgp_track_set_params(c->t, PGP_TRACK_PARAMS_VALUES);
    parse(c, "s", "SELECT 1");
    uint8_t p[2048];
    size_t n = 0;
    p[n++] = 0; p[n++] = 0;
    p[n++] = 0; p[n++] = 10;
    for (int i = 0; i < 10; i++) {
        pgp_put_be32(p + n, 100);
        n += 4;
        memset(p + n, 'a' + i, 100);
        n += 100;
    }
    p[n++] = 0; p[n++] = 0;
    bind_raw(c, p, n);
    execute(c, "", maxrows0);
    static const uint8_t bad[] = { 0, 0, 0, 2, 0, 0, 0, 9, 'x' };   /* value overruns */
    bind_raw(c, bad, sizeof(bad));
    execute(c, "", maxrows0);
    msg(c, 'S', NULL);
    flush(c, 1);
    msg(c, '1', NULL);
    msg(c, '2', NULL);
    msg(c, 'C', S("SELECT 1"), NULL);
    msg(c, '2', NULL);
    msg(c, 'C', S("SELECT 1"), NULL);
    ready(c, 'I');
    flush(c, 0);
    ck_assert_int_eq(n_events, 2);
    ck_assert_uint_le(strlen(events[0].summary), PGP_TRACK_SUMMARY_BYTES);
    ck_assert_msg(strncmp(events[0].summary, "$1='aaaa", 8) == 0, "%s", events[0].summary);
    ck_assert_ptr_nonnull(strstr(events[0].summary, "...'"));
    ck_assert_ptr_nonnull(strstr(events[0].summary, "..."));
    ck_assert_ptr_null(events[1].ev.params_summary);
    conv_free(c);
}
END_TEST

static Suite *track_suite(void)
{
    Suite *s = suite_create("track");
    TCase *tc = tcase_create("conversations");
    tcase_add_test(tc, test_simple_query);
    tcase_add_test(tc, test_multi_statement_with_error);
    tcase_add_test(tc, test_extended_unnamed);
    tcase_add_test(tc, test_named_statement_reused_and_params_hash);
    tcase_add_test(tc, test_pipeline_batch);
    tcase_add_test(tc, test_error_mid_pipeline_skips_to_sync);
    tcase_add_test(tc, test_parse_error_reported_on_its_execute);
    tcase_add_test(tc, test_error_before_sync_sent);
    tcase_add_test(tc, test_portal_suspended);
    tcase_add_test(tc, test_copy_in_one_event);
    tcase_add_test(tc, test_async_messages_and_parameters);
    tcase_add_test(tc, test_deallocate_all_and_discard);
    tcase_add_test(tc, test_function_call);
    tcase_add_test(tc, test_sql_capped);
    tcase_add_test(tc, test_desync_recovers);
    tcase_add_test(tc, test_sql_prepare_execute);
    tcase_add_test(tc, test_params_summary);
    tcase_add_test(tc, test_params_summary_bounds);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(track_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
