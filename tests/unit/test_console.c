/*
 * test_console.c - unit tests for pgproxy/console.c: the SQL admin
 * console's answers to simple Query messages, its welcome, and the table
 * layout of provider JSON.
 *
 * Every output is walked message by message by a strict checker written
 * here from the protocol documentation (lengths, field counts against the
 * RowDescription, text OID and format, exactly one ReadyForQuery at the
 * very end) and turned into a line-per-message transcript ("T a|b",
 * "D 1|<NULL>", "C SHOW", "E 42601 message", "Z I") that the case tables
 * match with fnmatch patterns.  A fake provider serves canned JSON per
 * source.  No sockets, no libuv.
 */
#include "pgproxy/console.h"

#include <check.h>
#include <fnmatch.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgproxy/proto.h"
#include "pgproxy/render.h"

/* ------------------------------------------------------------------ */
/* Message walker                                                      */
/* ------------------------------------------------------------------ */

typedef struct transcript {
    char *text;         /* malloc'd */
    size_t len, alloc;
    size_t n_msgs;
    size_t n_rows;      /* DataRows */
    bool notice;        /* a NoticeResponse was seen */
} transcript_t;

static void tr_add(transcript_t *t, const void *p, size_t n)
{
    if (t->len + n + 1 > t->alloc) {
        size_t a = t->alloc ? t->alloc : 256;
        while (a < t->len + n + 1)
            a *= 2;
        t->text = realloc(t->text, a);
        ck_assert_ptr_nonnull(t->text);
        t->alloc = a;
    }
    memcpy(t->text + t->len, p, n);
    t->len += n;
    t->text[t->len] = '\0';
}

static void tr_str(transcript_t *t, const char *s)
{
    tr_add(t, s, strlen(s));
}

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

/* A NUL-terminated string inside body[*at, n); returns it and moves *at past the NUL. */
static const char *body_cstr(const uint8_t *body, size_t n, size_t *at)
{
    const uint8_t *nul = memchr(body + *at, '\0', n - *at);
    ck_assert_msg(nul != NULL, "unterminated string in a message");
    const char *s = (const char *)body + *at;
    *at = (size_t)(nul - body) + 1;
    return s;
}

/*
 * Walk buf[0, len) strictly: every message well-formed, DataRows match the
 * last RowDescription, the sequence ends with one ReadyForQuery 'I' (when
 * want_ready).  Returns the transcript (free t->text).
 */
static transcript_t walk(const uint8_t *buf, size_t len, bool want_ready)
{
    transcript_t t = {0};
    size_t at = 0;
    long ncols = -1;
    bool ready_seen = false;
    while (at < len) {
        ck_assert_msg(!ready_seen, "bytes after ReadyForQuery");
        ck_assert_uint_ge(len - at, 5);
        uint8_t type = buf[at];
        uint32_t mlen = pgp_be32(buf + at + 1);
        ck_assert_uint_ge(mlen, 4);
        ck_assert_uint_le(mlen, len - at - 1);
        const uint8_t *body = buf + at + 5;
        size_t n = mlen - 4, p = 0;
        char line[128];
        t.n_msgs++;
        switch (type) {
        case PGP_BE_ROW_DESCRIPTION: {
            ck_assert_uint_ge(n, 2);
            ncols = be16(body);
            p = 2;
            tr_str(&t, "T ");
            for (long i = 0; i < ncols; i++) {
                const char *name = body_cstr(body, n, &p);
                ck_assert_uint_ge(n - p, 18);
                ck_assert_uint_eq(pgp_be32(body + p + 6), 25);           /* text */
                ck_assert_uint_eq(be16(body + p + 10), 0xFFFF);         /* typlen -1 */
                ck_assert_uint_eq(be16(body + p + 16), 0);              /* text format */
                p += 18;
                if (i > 0)
                    tr_str(&t, "|");
                tr_str(&t, name);
            }
            ck_assert_uint_eq(p, n);
            tr_str(&t, "\n");
            break;
        }
        case PGP_BE_DATA_ROW: {
            ck_assert_msg(ncols >= 0, "DataRow without RowDescription");
            ck_assert_uint_ge(n, 2);
            ck_assert_int_eq(be16(body), ncols);
            p = 2;
            tr_str(&t, "D ");
            for (long i = 0; i < ncols; i++) {
                ck_assert_uint_ge(n - p, 4);
                uint32_t cl = pgp_be32(body + p);
                p += 4;
                if (i > 0)
                    tr_str(&t, "|");
                if (cl == 0xFFFFFFFFu) {
                    tr_str(&t, "<NULL>");
                    continue;
                }
                ck_assert_uint_le(cl, n - p);
                ck_assert_ptr_null(memchr(body + p, '\0', cl));
                tr_add(&t, body + p, cl);
                p += cl;
            }
            ck_assert_uint_eq(p, n);
            tr_str(&t, "\n");
            t.n_rows++;
            break;
        }
        case PGP_BE_COMMAND_COMPLETE: {
            const char *tag = body_cstr(body, n, &p);
            ck_assert_uint_eq(p, n);
            tr_str(&t, "C ");
            tr_str(&t, tag);
            tr_str(&t, "\n");
            ncols = -1;
            break;
        }
        case PGP_BE_EMPTY_QUERY_RESPONSE:
            ck_assert_uint_eq(n, 0);
            tr_str(&t, "I\n");
            break;
        case PGP_BE_ERROR_RESPONSE:
        case PGP_BE_NOTICE_RESPONSE: {
            const char *code = "", *msg = "", *sev = "";
            for (;;) {
                ck_assert_uint_lt(p, n);
                uint8_t f = body[p++];
                if (f == 0)
                    break;
                const char *v = body_cstr(body, n, &p);
                if (f == 'C')
                    code = v;
                else if (f == 'M')
                    msg = v;
                else if (f == 'S')
                    sev = v;
            }
            ck_assert_uint_eq(p, n);
            ck_assert_uint_eq(strlen(code), 5);
            ck_assert_str_eq(sev, type == PGP_BE_ERROR_RESPONSE ? "ERROR" : "WARNING");
            tr_str(&t, type == PGP_BE_ERROR_RESPONSE ? "E " : "N ");
            tr_str(&t, code);
            tr_str(&t, " ");
            tr_str(&t, msg);
            tr_str(&t, "\n");
            if (type == PGP_BE_NOTICE_RESPONSE)
                t.notice = true;
            else
                ncols = -1;
            break;
        }
        case PGP_BE_READY_FOR_QUERY:
            ck_assert_uint_eq(n, 1);
            ck_assert_int_eq(body[0], 'I');
            tr_str(&t, "Z I\n");
            ready_seen = true;
            break;
        case PGP_BE_AUTHENTICATION:
            ck_assert_uint_eq(n, 4);
            snprintf(line, sizeof(line), "R %u\n", pgp_be32(body));
            tr_str(&t, line);
            break;
        case PGP_BE_PARAMETER_STATUS: {
            const char *name = body_cstr(body, n, &p);
            const char *value = body_cstr(body, n, &p);
            ck_assert_uint_eq(p, n);
            tr_str(&t, "S ");
            tr_str(&t, name);
            tr_str(&t, "=");
            tr_str(&t, value);
            tr_str(&t, "\n");
            break;
        }
        case PGP_BE_BACKEND_KEY_DATA:
            ck_assert_uint_eq(n, 8);
            snprintf(line, sizeof(line), "K %u %u\n", pgp_be32(body), pgp_be32(body + 4));
            tr_str(&t, line);
            break;
        default:
            ck_abort_msg("unexpected message type %u", type);
        }
        at += 1 + mlen;
    }
    ck_assert_uint_eq(at, len);
    if (want_ready)
        ck_assert_msg(ready_seen, "no ReadyForQuery at the end");
    if (t.text == NULL)
        tr_str(&t, "");
    return t;
}

/* ------------------------------------------------------------------ */
/* Fake provider                                                       */
/* ------------------------------------------------------------------ */

typedef struct fake {
    const char *docs[PGP_CONSOLE_SOURCE_COUNT_];
    size_t doc_len[PGP_CONSOLE_SOURCE_COUNT_];    /* 0: strlen */
    int json_rc;
    int reset_rc;
    int json_calls;
    int reset_calls;
    size_t seen_cap;
} fake_t;

static int fake_json(void *ud, pgp_console_source_t src, pgp_render_t *out)
{
    fake_t *f = ud;
    f->json_calls++;
    f->seen_cap = out->cap;
    ck_assert_uint_eq(pgp_render_len(out), 0);
    if (f->json_rc < 0)
        return f->json_rc;
    const char *d = f->docs[src];
    if (d == NULL)
        return -5;
    pgp_render_append(out, d, f->doc_len[src] ? f->doc_len[src] : strlen(d));
    return pgp_render_error(out) != 0 ? -1 : 0;
}

static int fake_reset(void *ud)
{
    fake_t *f = ud;
    f->reset_calls++;
    return f->reset_rc;
}

/* Canned documents. */
static const char STATS_DOC[] =
    "{\"total_queries\":42,\"avg_queries_per_request\":1.50,\"big\":1e3,"
    "\"name\":\"it's \\\"quoted\\\"\",\"none\":null,\"ok\":true,\"bad\":false,"
    "\"nested\":{\"a\":[1,\"x/y\",null]},\"neg\":-7}";
static const char QUERIES_DOC[] =
    "[{\"fingerprint\":\"ab12\",\"sql\":\"SELECT \\\"a\\\" FROM t WHERE b = 'x'\","
    "\"calls\":3,\"mean_ms\":0.25,\"tags\":[\"web\",\"api\"],\"note\":null},"
    "{\"sql\":\"caf\\u00e9 \xc3\xa9 \\ud83d\\ude00\",\"calls\":18446744073709551615,"
    "\"fingerprint\":\"cd34\",\"extra\":1},"
    "{\"fingerprint\":\"bad\xff\xfe utf8\",\"sql\":\"nul\\u0000byte\",\"mean_ms\":-0.5,"
    "\"tags\":{},\"note\":\"\\ud800 lone\"}]";
static const char CONFIG_DOC[] =
    "{\"proxy.listen\":\"127.0.0.1:6433\",\"proxy.max_connections\":100,"
    "\"slow_log.enabled\":true,\"admin.token\":null}";
static const char NPLUS1_DOC[] = "[\"SELECT * FROM a WHERE id = $1\", 7, null, [1]]";
static const char SLOW_DOC[] = "[]";
static const char CONN_DOC[] = "\"just a string\"";
static const char PROFILES_DOC[] = "[{\"id\":1,\"path\":\"/a\"}, 5, {\"path\":\"/b\"}, {}]";

static void fake_init(fake_t *f)
{
    memset(f, 0, sizeof(*f));
    f->docs[PGP_CONSOLE_STATS] = STATS_DOC;
    f->docs[PGP_CONSOLE_QUERIES] = QUERIES_DOC;
    f->docs[PGP_CONSOLE_SLOW_QUERIES] = SLOW_DOC;
    f->docs[PGP_CONSOLE_N_PLUS_ONE] = NPLUS1_DOC;
    f->docs[PGP_CONSOLE_CONNECTIONS] = CONN_DOC;
    f->docs[PGP_CONSOLE_PROFILES] = PROFILES_DOC;
    f->docs[PGP_CONSOLE_CONFIG] = CONFIG_DOC;
}

/* ------------------------------------------------------------------ */
/* Query cases                                                         */
/* ------------------------------------------------------------------ */

enum prov_mode { PROV_OK, PROV_NONE, PROV_JSON_FAILS, PROV_RESET_FAILS, PROV_BAD_JSON,
                 PROV_NO_CALLBACKS };

#define STATS_ROWS                                                                          \
    "T key|value\n"                                                                         \
    "D total_queries|42\n"                                                                  \
    "D avg_queries_per_request|1.50\n"                                                      \
    "D big|1e3\n"                                                                           \
    "D name|it's \"quoted\"\n"                                                              \
    "D none|<NULL>\n"                                                                       \
    "D ok|true\n"                                                                           \
    "D bad|false\n"                                                                         \
    "D nested|{\"a\":\\[1,\"x/y\",null\\]}\n"                                               \
    "D neg|-7\n"                                                                            \
    "C SHOW\n"
#define VERSION_ROWS "T version\nD pgproxy " PGP_VERSION "\nC SHOW\n"
#define UFFFD "\xef\xbf\xbd"
#define UNKNOWN_MSG                                                                         \
    "the pgproxy console knows: SHOW STATS, SHOW QUERIES, SHOW SLOW_QUERIES, "              \
    "SHOW N_PLUS_ONE, SHOW CONNECTIONS, SHOW PROFILES, SHOW CONFIG, SHOW VERSION, "         \
    "SHOW HELP, RESET STATS, SET (see SHOW HELP)"

typedef struct query_case {
    const char *name;
    const char *sql;
    size_t sql_len;          /* 0: strlen(sql) */
    enum prov_mode mode;
    const char *want;        /* fnmatch pattern over the transcript */
    int want_json_calls;     /* -1: don't care */
    int want_reset_calls;
} query_case_t;

static const query_case_t query_cases[] = {
    {"stats", "SHOW STATS", 0, PROV_OK, STATS_ROWS "Z I\n", 1, 0},
    {"stats lower, semicolon", "show stats;", 0, PROV_OK, STATS_ROWS "Z I\n", 1, 0},
    {"stats spacing", "  \n\tShOw \r\n  StAtS  ;  \n", 0, PROV_OK, STATS_ROWS "Z I\n", 1, 0},
    {"stats comments", "/* hi; */ SHOW -- x;\n STATS", 0, PROV_OK, STATS_ROWS "Z I\n", 1, 0},
    {"queries",
     "SHOW QUERIES",
     0,
     PROV_OK,
     "T fingerprint|sql|calls|mean_ms|tags|note\n"
     "D ab12|SELECT \"a\" FROM t WHERE b = 'x'|3|0.25|\\[\"web\",\"api\"\\]|<NULL>\n"
     "D cd34|caf\xc3\xa9 \xc3\xa9 \xf0\x9f\x98\x80|18446744073709551615|<NULL>|<NULL>|<NULL>\n"
     "D bad" UFFFD UFFFD " utf8|nul" UFFFD "byte|<NULL>|-0.5|{}|" UFFFD " lone\n"
     "C SHOW\nZ I\n",
     1, 0},
    {"config", "SHOW CONFIG", 0, PROV_OK,
     "T key|value\nD proxy.listen|127.0.0.1:6433\nD proxy.max_connections|100\n"
     "D slow_log.enabled|true\nD admin.token|<NULL>\nC SHOW\nZ I\n",
     1, 0},
    {"array of scalars", "SHOW N_PLUS_ONE", 0, PROV_OK,
     "T value\nD SELECT \\* FROM a WHERE id = $1\nD 7\nD <NULL>\nD \\[1\\]\nC SHOW\nZ I\n", 1, 0},
    {"empty array", "SHOW SLOW_QUERIES", 0, PROV_OK, "T \nC SHOW\nZ I\n", 1, 0},
    {"scalar", "SHOW CONNECTIONS", 0, PROV_OK, "T value\nD just a string\nC SHOW\nZ I\n", 1, 0},
    {"mixed array", "SHOW PROFILES", 0, PROV_OK,
     "T id|path\nD 1|/a\nD 5|<NULL>\nD <NULL>|/b\nD <NULL>|<NULL>\nC SHOW\nZ I\n", 1, 0},
    {"version", "SHOW VERSION", 0, PROV_NONE, VERSION_ROWS "Z I\n", -1, -1},
    {"help", "show help", 0, PROV_NONE,
     "T command\nD SHOW STATS\nD SHOW QUERIES\nD SHOW SLOW_QUERIES\nD SHOW N_PLUS_ONE\n"
     "D SHOW CONNECTIONS\nD SHOW PROFILES\nD SHOW CONFIG\nD SHOW VERSION\nD SHOW HELP\n"
     "D RESET STATS\nD SET\nC SHOW\nZ I\n",
     -1, -1},
    {"multi", "SHOW VERSION; SHOW STATS", 0, PROV_OK, VERSION_ROWS STATS_ROWS "Z I\n", 1, 0},
    {"multi, empty ones skipped", ";;SHOW VERSION;;; ;SHOW VERSION;", 0, PROV_OK,
     VERSION_ROWS VERSION_ROWS "Z I\n", 0, 0},
    {"error stops the string", "SHOW VERSION; FOO; SHOW STATS", 0, PROV_OK,
     VERSION_ROWS "E 42601 unknown command \"FOO\"; " UNKNOWN_MSG "\nZ I\n", 0, 0},
    {"empty", "", 0, PROV_OK, "I\nZ I\n", 0, 0},
    {"only spaces", " \n\t ", 0, PROV_OK, "I\nZ I\n", 0, 0},
    {"only semicolons", ";; ;", 0, PROV_OK, "I\nZ I\n", 0, 0},
    {"only a comment", "-- nothing here", 0, PROV_OK, "I\nZ I\n", 0, 0},
    {"trailing NUL", "SHOW VERSION\0garbage; FOO", 25, PROV_OK, VERSION_ROWS "Z I\n", 0, 0},
    {"NUL first", "\0SHOW VERSION", 13, PROV_OK, "I\nZ I\n", 0, 0},
    {"unknown command", "FOO", 0, PROV_OK,
     "E 42601 unknown command \"FOO\"; " UNKNOWN_MSG "\nZ I\n", 0, 0},
    {"unknown SHOW", "SHOW pools", 0, PROV_OK,
     "E 42601 unknown command SHOW \"pools\"; " UNKNOWN_MSG "\nZ I\n", 0, 0},
    {"bare SHOW", "SHOW", 0, PROV_OK, "E 42601 unknown command \"SHOW\"; *\nZ I\n", 0, 0},
    {"SELECT probe", "SELECT version()", 0, PROV_OK, "E 42601 *SELECT*RESET STATS*\nZ I\n", 0, 0},
    {"not a word", "'SHOW STATS'", 0, PROV_OK, "E 42601 unknown command \"'SHOW STATS'\"*\nZ I\n",
     0, 0},
    {"invalid UTF-8 echoed", "SH\xffOW", 0, PROV_OK,
     "E 42601 unknown command \"SH" UFFFD "OW\"*\nZ I\n", 0, 0},
    {"long word cut", "SHOW XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
     0, PROV_OK,
     "E 42601 unknown command SHOW \"XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\";*\nZ I\n",
     0, 0},
    {"SHOW with arguments", "SHOW QUERIES LIMIT 5", 0, PROV_OK,
     "E 0A000 the pgproxy console's SHOW commands take no arguments\nZ I\n", 0, 0},
    {"pgbouncer verb", "PAUSE", 0, PROV_OK, "E 0A000 this pgbouncer admin command*\nZ I\n", 0, 0},
    {"reset stats", "RESET STATS", 0, PROV_OK, "C RESET\nZ I\n", 0, 1},
    {"reset stats lower", " reset   stats ; ", 0, PROV_OK, "C RESET\nZ I\n", 0, 1},
    {"reset other", "RESET QUERIES", 0, PROV_OK,
     "E 0A000 the pgproxy console supports RESET STATS only\nZ I\n", 0, 0},
    {"reset all", "RESET", 0, PROV_OK, "E 0A000 *RESET STATS only\nZ I\n", 0, 0},
    {"reset fails", "RESET STATS; SHOW VERSION", 0, PROV_RESET_FAILS,
     "E XX000 RESET STATS: the data provider failed\nZ I\n", 0, 1},
    {"set", "SET client_encoding = 'UTF8'", 0, PROV_OK, "C SET\nZ I\n", 0, 0},
    {"set with quoted ;", "SET application_name = 'a;b'; SHOW VERSION", 0, PROV_OK,
     "C SET\n" VERSION_ROWS "Z I\n", 0, 0},
    {"provider fails", "SHOW STATS", 0, PROV_JSON_FAILS,
     "E XX000 SHOW STATS: the data provider failed\nZ I\n", 1, 0},
    {"provider bad JSON", "SHOW QUERIES", 0, PROV_BAD_JSON,
     "E XX000 SHOW QUERIES: the data provider's document is not valid JSON\nZ I\n", 1, 0},
    {"no provider", "SHOW VERSION; SHOW STATS", 0, PROV_NONE,
     VERSION_ROWS "E XX000 SHOW STATS: no data provider\nZ I\n", -1, -1},
    {"no callbacks", "RESET STATS", 0, PROV_NO_CALLBACKS,
     "E XX000 RESET STATS: no data provider\nZ I\n", -1, -1},
};
#define N_QUERY_CASES ((int)(sizeof(query_cases) / sizeof(query_cases[0])))

static const char *const bad_json_docs[] = {
    "[1,", "{\"a\":1} x", "", "[1,]", "{\"a\" 1}", "\"unterminated",
};

START_TEST(test_query_cases)
{
    const query_case_t *c = &query_cases[_i];
    fake_t f;
    fake_init(&f);
    pgp_console_providers_t prov = {.ud = &f, .json = fake_json, .reset = fake_reset};
    const pgp_console_providers_t *pp = &prov;
    switch (c->mode) {
    case PROV_NONE:
        pp = NULL;
        break;
    case PROV_JSON_FAILS:
        f.json_rc = -3;
        break;
    case PROV_RESET_FAILS:
        f.reset_rc = -1;
        break;
    case PROV_BAD_JSON:
        for (int i = 0; i < PGP_CONSOLE_SOURCE_COUNT_; i++)
            f.docs[i] = bad_json_docs[0];
        break;
    case PROV_NO_CALLBACKS:
        prov.json = NULL;
        prov.reset = NULL;
        break;
    case PROV_OK:
        break;
    }
    pgp_render_t out;
    pgp_render_init(&out, 1u << 20);
    size_t n = c->sql_len ? c->sql_len : strlen(c->sql);
    ck_assert_int_eq(pgp_console_query(pp, c->sql, n, &out), 0);
    transcript_t t = walk((const uint8_t *)pgp_render_data(&out), pgp_render_len(&out), true);
    ck_assert_msg(fnmatch(c->want, t.text, 0) == 0, "%s: got\n%s\nwant\n%s", c->name, t.text,
                  c->want);
    if (c->want_json_calls >= 0)
        ck_assert_int_eq(f.json_calls, c->want_json_calls);
    if (c->want_reset_calls >= 0)
        ck_assert_int_eq(f.reset_calls, c->want_reset_calls);
    if (f.json_calls > 0)
        ck_assert_uint_eq(f.seen_cap, out.cap);
    free(t.text);
    pgp_render_free(&out);
}
END_TEST

/* Every malformed document is XX000, never a table. */
START_TEST(test_bad_json)
{
    fake_t f;
    fake_init(&f);
    f.docs[PGP_CONSOLE_STATS] = bad_json_docs[_i];
    pgp_console_providers_t prov = {.ud = &f, .json = fake_json, .reset = fake_reset};
    pgp_render_t out;
    pgp_render_init(&out, 1u << 16);
    ck_assert_int_eq(pgp_console_query(&prov, "SHOW STATS", 10, &out), 0);
    transcript_t t = walk((const uint8_t *)pgp_render_data(&out), pgp_render_len(&out), true);
    ck_assert_str_eq(t.text,
                     "E XX000 SHOW STATS: the data provider's document is not valid JSON\nZ I\n");
    free(t.text);
    pgp_render_free(&out);
}
END_TEST

/* A document nested deeper than the limit is refused, not recursed into. */
START_TEST(test_deep_json)
{
    static char doc[2 * 200 + 1];
    size_t depth = _i == 0 ? 10 : 200;
    for (size_t i = 0; i < depth; i++) {
        doc[i] = '[';
        doc[2 * depth - 1 - i] = ']';
    }
    doc[2 * depth] = '\0';
    fake_t f;
    fake_init(&f);
    f.docs[PGP_CONSOLE_N_PLUS_ONE] = doc;
    pgp_console_providers_t prov = {.ud = &f, .json = fake_json, .reset = fake_reset};
    pgp_render_t out;
    pgp_render_init(&out, 1u << 16);
    ck_assert_int_eq(pgp_console_query(&prov, "SHOW N_PLUS_ONE", 15, &out), 0);
    transcript_t t = walk((const uint8_t *)pgp_render_data(&out), pgp_render_len(&out), true);
    if (_i == 0)
        ck_assert_str_eq(t.text, "T value\nD [[[[[[[[[]]]]]]]]]\nC SHOW\nZ I\n");
    else
        ck_assert_str_eq(t.text, "E XX000 SHOW N_PLUS_ONE: the data provider's document is not "
                                 "valid JSON\nZ I\n");
    free(t.text);
    pgp_render_free(&out);
}
END_TEST

/* json_cap_bytes bounds the document separately from the output. */
START_TEST(test_json_cap)
{
    static const size_t caps[] = {100, 100000};
    fake_t f;
    fake_init(&f);
    pgp_console_providers_t prov = {
        .ud = &f, .json = fake_json, .reset = fake_reset, .json_cap_bytes = caps[_i]};
    pgp_render_t out;
    pgp_render_init(&out, 4096);
    ck_assert_int_eq(pgp_console_query(&prov, "SHOW CONFIG", 11, &out), 0);
    ck_assert_uint_eq(f.seen_cap, caps[_i]);
    transcript_t t = walk((const uint8_t *)pgp_render_data(&out), pgp_render_len(&out), true);
    if (_i == 0)
        ck_assert_str_eq(t.text, "E 54000 SHOW CONFIG: the JSON document does not fit the "
                                 "console's 100-byte cap; the admin HTTP endpoints (/debug/...) "
                                 "serve everything\nZ I\n");
    else
        ck_assert_msg(fnmatch("T key|value\n*C SHOW\nZ I\n", t.text, 0) == 0, "%s", t.text);
    free(t.text);
    pgp_render_free(&out);
}
END_TEST

/* The response is appended after what out already holds. */
START_TEST(test_appends)
{
    pgp_render_t out;
    pgp_render_init(&out, 1u << 16);
    ck_assert_int_eq(pgp_console_ready(&out), 0);
    ck_assert_int_eq(pgp_console_query(NULL, "SHOW VERSION", 12, &out), 0);
    ck_assert_uint_eq(pgp_render_len(&out) > 6, 1);
    ck_assert_mem_eq(pgp_render_data(&out), "Z\0\0\0\5I", 6);
    transcript_t t = walk((const uint8_t *)pgp_render_data(&out) + 6, pgp_render_len(&out) - 6,
                          true);
    ck_assert_str_eq(t.text, VERSION_ROWS "Z I\n");
    free(t.text);
    pgp_render_free(&out);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Bounds                                                              */
/* ------------------------------------------------------------------ */

#define BIG_ROWS 500
#define BAD_BYTES 60

/*
 * An array of BIG_ROWS objects whose "sql" holds BAD_BYTES raw 0xFF bytes:
 * each becomes U+FFFD (3 bytes) on the wire, so the table is about 2.5
 * times the JSON and caps between the two cut rows.
 */
static char *big_doc(void)
{
    pgp_render_t r;
    pgp_render_init(&r, 1u << 20);
    pgp_render_char(&r, '[');
    for (int i = 0; i < BIG_ROWS; i++) {
        pgp_render_str(&r, i > 0 ? ",{\"id\":" : "{\"id\":");
        pgp_render_int(&r, i);
        pgp_render_str(&r, ",\"sql\":\"");
        for (int k = 0; k < BAD_BYTES; k++)
            pgp_render_char(&r, '\xff');
        pgp_render_str(&r, "\"}");
    }
    pgp_render_char(&r, ']');
    ck_assert_int_eq(pgp_render_error(&r), 0);
    size_t len;
    char *s = pgp_render_take(&r, &len);
    ck_assert_ptr_nonnull(s);
    return s;
}

enum overflow_want { ALL_ROWS, CUT_ROWS, TOO_BIG };

typedef struct overflow_case {
    size_t cap;          /* 0: exactly the JSON's length */
    enum overflow_want want;
} overflow_case_t;

static const overflow_case_t overflow_cases[] = {
    {1u << 20, ALL_ROWS}, {200000, ALL_ROWS}, {90000, CUT_ROWS}, {50000, CUT_ROWS},
    {0, CUT_ROWS},        {30000, TOO_BIG},   {2000, TOO_BIG},
};
#define N_OVERFLOW_CASES ((int)(sizeof(overflow_cases) / sizeof(overflow_cases[0])))

START_TEST(test_overflow_cut)
{
    char *doc = big_doc();
    fake_t f;
    fake_init(&f);
    f.docs[PGP_CONSOLE_QUERIES] = doc;
    pgp_console_providers_t prov = {.ud = &f, .json = fake_json, .reset = fake_reset};
    const overflow_case_t *c = &overflow_cases[_i];
    size_t cap = c->cap ? c->cap : strlen(doc);
    /* The JSON is rendered with the same cap: the case table must agree with its size. */
    ck_assert_int_eq(strlen(doc) <= cap, c->want != TOO_BIG);
    pgp_render_t out;
    pgp_render_init(&out, cap);
    const char *sql = "SHOW QUERIES; SET a = 1; SHOW VERSION";
    ck_assert_int_eq(pgp_console_query(&prov, sql, strlen(sql), &out), 0);
    ck_assert_uint_le(pgp_render_len(&out), cap);
    transcript_t t = walk((const uint8_t *)pgp_render_data(&out), pgp_render_len(&out), true);
    if (c->want == TOO_BIG) {
        char want[256];
        snprintf(want, sizeof(want), "E 54000 SHOW QUERIES: the JSON document does not fit the "
                 "console's %zu-byte cap; the admin HTTP endpoints (/debug/...) serve "
                 "everything\nZ I\n", cap);
        ck_assert_str_eq(t.text, want);
    } else if (c->want == ALL_ROWS) {
        ck_assert_uint_eq(t.n_rows, BIG_ROWS + 1);
        ck_assert(!t.notice);
        ck_assert_msg(fnmatch("T id|sql\n*C SHOW\nC SET\n" VERSION_ROWS "Z I\n", t.text, 0) == 0,
                      "%s", t.text);
    } else {
        /* Cut: some rows, the notice with the exact counts, SHOW; the string goes on. */
        ck_assert(t.notice);
        ck_assert_uint_gt(t.n_rows, 0);
        ck_assert_uint_lt(t.n_rows, BIG_ROWS);
        /* The rows used the space: less than one row plus the reserve is left. */
        ck_assert_uint_ge(pgp_render_len(&out) + PGP_CONSOLE_RESERVE_BYTES,
                          cap - 3 * BAD_BYTES - 20 - PGP_CONSOLE_RESERVE_BYTES);
        char want[256];
        snprintf(want, sizeof(want),
                 "T id|sql\n*N 01000 pgproxy console: result cut to %zu rows, %zu more did not "
                 "fit the %zu-byte output cap*\nC SHOW\nC SET\nE 54000 the table header *\nZ I\n",
                 t.n_rows, (size_t)BIG_ROWS - t.n_rows, cap);
        ck_assert_msg(fnmatch(want, t.text, 0) == 0, "%s", t.text);
    }
    free(t.text);
    pgp_render_free(&out);
    free(doc);
}
END_TEST

/* Many small statements after a cut table: each is checked, the string ends with a 54000. */
START_TEST(test_overflow_many_statements)
{
    pgp_render_t out;
    size_t cap = PGP_CONSOLE_RESERVE_BYTES + 200;
    pgp_render_init(&out, cap);
    pgp_render_t sql;
    pgp_render_init(&sql, 1u << 20);
    for (int i = 0; i < 2000; i++)
        pgp_render_str(&sql, _i == 0 ? "SET a = 1;" : "SHOW VERSION;");
    ck_assert_int_eq(pgp_render_error(&sql), 0);
    ck_assert_int_eq(pgp_console_query(NULL, pgp_render_data(&sql), pgp_render_len(&sql), &out),
                     0);
    ck_assert_uint_le(pgp_render_len(&out), cap);
    transcript_t t = walk((const uint8_t *)pgp_render_data(&out), pgp_render_len(&out), true);
    ck_assert_msg(fnmatch("*\nE 54000 * does not fit the console's 1224-byte output cap; the rest "
                          "of the query string was not run\nZ I\n", t.text, 0) == 0, "%s", t.text);
    free(t.text);
    pgp_render_free(&out);
    pgp_render_free(&sql);
}
END_TEST

/* One cell bigger than the cap: zero rows and the notice, not a broken row. */
START_TEST(test_overflow_huge_cell)
{
    size_t n = 20000;
    char *doc = malloc(n + 16);
    ck_assert_ptr_nonnull(doc);
    memcpy(doc, "[\"", 2);
    memset(doc + 2, 'x', n);
    memcpy(doc + 2 + n, "\"]", 3);
    fake_t f;
    fake_init(&f);
    f.docs[PGP_CONSOLE_N_PLUS_ONE] = doc;
    pgp_console_providers_t prov = {.ud = &f, .json = fake_json, .reset = fake_reset};
    pgp_render_t out;
    pgp_render_init(&out, n + 10);   /* the JSON fits, the row does not (reserve) */
    ck_assert_int_eq(pgp_console_query(&prov, "SHOW N_PLUS_ONE", 15, &out), 0);
    transcript_t t = walk((const uint8_t *)pgp_render_data(&out), pgp_render_len(&out), true);
    ck_assert_msg(fnmatch("T value\nN 01000 pgproxy console: result cut to 0 rows, 1 more *\n"
                          "C SHOW\nZ I\n", t.text, 0) == 0, "%s", t.text);
    free(t.text);
    pgp_render_free(&out);
    free(doc);
}
END_TEST

/* A cap below the reserve: -1 (the caller must not send), never a write past the cap. */
START_TEST(test_cap_too_small)
{
    pgp_render_t out;
    pgp_render_init(&out, 64);
    ck_assert_int_eq(pgp_console_query(NULL, "SHOW HELP", 9, &out), -1);
    pgp_render_free(&out);
    pgp_render_init(&out, 64);
    ck_assert_int_eq(pgp_console_welcome(1, 2, &out), -1);
    pgp_render_free(&out);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Welcome, unsupported messages                                       */
/* ------------------------------------------------------------------ */

typedef struct welcome_case {
    const char *app;
    const char *want_app;
} welcome_case_t;

static const welcome_case_t welcome_cases[] = {
    {NULL, ""},
    {"psql", "psql"},
    {"caf\xc3\xa9 \xff", "caf\xc3\xa9 " UFFFD},
    /* cut to 63 bytes on a character boundary (the 62nd..64th bytes are one character) */
    {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\xe2\x82\xac tail",
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"},
};

START_TEST(test_welcome)
{
    const welcome_case_t *c = &welcome_cases[_i];
    pgp_render_t out;
    pgp_render_init(&out, 4096);
    ck_assert_int_eq(pgp_console_welcome_ex(12345, 0xDEADBEEFu, c->app, &out), 0);
    transcript_t t = walk((const uint8_t *)pgp_render_data(&out), pgp_render_len(&out), true);
    char want[1024];
    snprintf(want, sizeof(want),
             "R 0\nS server_version=16.0 (pgproxy " PGP_VERSION ")\nS server_encoding=UTF8\n"
             "S client_encoding=UTF8\nS DateStyle=ISO, MDY\nS IntervalStyle=postgres\n"
             "S integer_datetimes=on\nS standard_conforming_strings=on\nS TimeZone=UTC\n"
             "S is_superuser=off\nS application_name=%s\nK 12345 3735928559\nZ I\n",
             c->want_app);
    ck_assert_str_eq(t.text, want);
    free(t.text);
    pgp_render_free(&out);
    if (c->app == NULL) {
        pgp_render_init(&out, 4096);
        ck_assert_int_eq(pgp_console_welcome(12345, 0xDEADBEEFu, &out), 0);
        t = walk((const uint8_t *)pgp_render_data(&out), pgp_render_len(&out), true);
        ck_assert_str_eq(t.text, want);
        free(t.text);
        pgp_render_free(&out);
    }
}
END_TEST

typedef struct unsupported_case {
    uint8_t type;
    const char *want;
} unsupported_case_t;

static const unsupported_case_t unsupported_cases[] = {
    {PGP_FE_PARSE, "E 0A000 the pgproxy console speaks the simple query protocol only (got "
                   "message type 'P')\n"},
    {PGP_FE_FUNCTION_CALL, "E 0A000 *(got message type 'F')\n"},
    {0x01, "E 0A000 *(got message type 0x01)\n"},
    {0xFF, "E 0A000 *(got message type 0xFF)\n"},
    {' ', "E 0A000 *(got message type 0x20)\n"},
};

START_TEST(test_unsupported)
{
    const unsupported_case_t *c = &unsupported_cases[_i];
    pgp_render_t out;
    pgp_render_init(&out, 4096);
    ck_assert_int_eq(pgp_console_unsupported(c->type, &out), 0);
    transcript_t t = walk((const uint8_t *)pgp_render_data(&out), pgp_render_len(&out), false);
    ck_assert_msg(fnmatch(c->want, t.text, 0) == 0, "%s", t.text);
    free(t.text);
    ck_assert_int_eq(pgp_console_ready(&out), 0);
    t = walk((const uint8_t *)pgp_render_data(&out), pgp_render_len(&out), true);
    free(t.text);
    pgp_render_free(&out);
}
END_TEST

START_TEST(test_source_names)
{
    static const char *const want[] = {"STATS", "QUERIES", "SLOW_QUERIES", "N_PLUS_ONE",
                                       "CONNECTIONS", "PROFILES", "CONFIG"};
    if (_i < PGP_CONSOLE_SOURCE_COUNT_)
        ck_assert_str_eq(pgp_console_source_name((pgp_console_source_t)_i), want[_i]);
    else
        ck_assert_ptr_null(pgp_console_source_name((pgp_console_source_t)_i));
}
END_TEST

static Suite *console_suite(void)
{
    Suite *s = suite_create("console");
    TCase *tc = tcase_create("query");
    tcase_add_loop_test(tc, test_query_cases, 0, N_QUERY_CASES);
    tcase_add_loop_test(tc, test_bad_json, 0,
                        (int)(sizeof(bad_json_docs) / sizeof(bad_json_docs[0])));
    tcase_add_loop_test(tc, test_deep_json, 0, 2);
    tcase_add_test(tc, test_appends);
    tcase_add_loop_test(tc, test_json_cap, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("bounds");
    tcase_add_loop_test(tc, test_overflow_cut, 0, N_OVERFLOW_CASES);
    tcase_add_loop_test(tc, test_overflow_many_statements, 0, 2);
    tcase_add_test(tc, test_overflow_huge_cell);
    tcase_add_test(tc, test_cap_too_small);
    suite_add_tcase(s, tc);

    tc = tcase_create("session");
    tcase_add_loop_test(tc, test_welcome, 0,
                        (int)(sizeof(welcome_cases) / sizeof(welcome_cases[0])));
    tcase_add_loop_test(tc, test_unsupported, 0,
                        (int)(sizeof(unsupported_cases) / sizeof(unsupported_cases[0])));
    tcase_add_loop_test(tc, test_source_names, 0, PGP_CONSOLE_SOURCE_COUNT_ + 2);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(console_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
