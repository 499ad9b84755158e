/*
 * test_proto.c - unit tests for pgproxy/proto.c: the incremental framer,
 * the startup packet parser, the ErrorResponse / CancelRequest writers and
 * the SASL guard's helpers (SCRAM-SHA-256-PLUS stripping, the gs2 flag).
 *
 * The framer is checked against streams built here from real protocol
 * messages (the builder knows every message's type, length and offset, so
 * the framer's output is compared with ground truth, not only with itself),
 * fed in every two-piece split, byte by byte and in pseudo-random pieces.
 * An observer records what the framer reports and flags any violation of
 * the callback contract (begin/body/end order, fragment sizes, fragments
 * borrowed from the chunk being fed).  No libuv, no sockets.
 */
#include "pgproxy/proto.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Stream builder                                                      */
/* ------------------------------------------------------------------ */

#define STREAM_CAP 16384
#define STREAM_MAX_MSGS 256

typedef struct stream_msg {
    uint8_t type;
    uint32_t len;   /* the length field */
    size_t off;     /* offset of the type byte */
} stream_msg_t;

typedef struct stream {
    uint8_t buf[STREAM_CAP];
    size_t len;
    stream_msg_t msgs[STREAM_MAX_MSGS];
    size_t n_msgs;
    uint8_t body[STREAM_CAP];   /* body of the message under construction */
    size_t body_len;
} stream_t;

static void body_bytes(stream_t *s, const void *p, size_t n)
{
    ck_assert_uint_le(s->body_len + n, sizeof(s->body));
    memcpy(s->body + s->body_len, p, n);
    s->body_len += n;
}

static void body_be16(stream_t *s, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    body_bytes(s, b, 2);
}

static void body_be32(stream_t *s, uint32_t v)
{
    uint8_t b[4];
    pgp_put_be32(b, v);
    body_bytes(s, b, 4);
}

static void body_cstr(stream_t *s, const char *str)
{
    body_bytes(s, str, strlen(str) + 1);
}

/* Appends the message under construction with the given type. */
static void stream_emit(stream_t *s, uint8_t type)
{
    ck_assert_uint_lt(s->n_msgs, STREAM_MAX_MSGS);
    ck_assert_uint_le(s->len + 5 + s->body_len, sizeof(s->buf));
    stream_msg_t *m = &s->msgs[s->n_msgs++];
    m->type = type;
    m->len = (uint32_t)(4 + s->body_len);
    m->off = s->len;
    s->buf[s->len] = type;
    pgp_put_be32(s->buf + s->len + 1, m->len);
    memcpy(s->buf + s->len + 5, s->body, s->body_len);
    s->len += 5 + s->body_len;
    s->body_len = 0;
}

/* A RowDescription field in text format. */
static void body_field(stream_t *s, const char *name, uint32_t type_oid, uint16_t typlen,
                       uint16_t attnum)
{
    body_cstr(s, name);
    body_be32(s, 16384);        /* table oid */
    body_be16(s, attnum);
    body_be32(s, type_oid);
    body_be16(s, typlen);
    body_be32(s, 0xffffffffu);  /* typmod -1 */
    body_be16(s, 0);            /* text format */
}

static void body_column(stream_t *s, const char *val, size_t n)
{
    body_be32(s, (uint32_t)n);
    body_bytes(s, val, n);
}

/* What a server sends from authentication to the end of two queries. */
static void build_server_stream(stream_t *s)
{
    static const char *const params[][2] = {
        {"application_name", "psql"}, {"client_encoding", "UTF8"},
        {"DateStyle", "ISO, MDY"},    {"integer_datetimes", "on"},
        {"server_version", "17.2"},   {"TimeZone", "Etc/UTC"},
    };
    char text[700];

    body_be32(s, 0);   /* AuthenticationOk */
    stream_emit(s, PGP_BE_AUTHENTICATION);
    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        body_cstr(s, params[i][0]);
        body_cstr(s, params[i][1]);
        stream_emit(s, PGP_BE_PARAMETER_STATUS);
    }
    body_be32(s, 4242);
    body_be32(s, 0xdeadbeefu);
    stream_emit(s, PGP_BE_BACKEND_KEY_DATA);
    body_bytes(s, "I", 1);
    stream_emit(s, PGP_BE_READY_FOR_QUERY);

    /* Simple query: SELECT id, name FROM t */
    body_be16(s, 2);
    body_field(s, "id", 23, 4, 1);
    body_field(s, "name", 25, 0xffff, 2);
    stream_emit(s, PGP_BE_ROW_DESCRIPTION);
    for (int row = 0; row < 40; row++) {
        int n = snprintf(text, sizeof(text), "%d", row * 37);
        body_be16(s, 2);
        body_column(s, text, (size_t)n);
        if (row % 7 == 3) {
            body_be32(s, 0xffffffffu);   /* NULL */
        } else {
            size_t w = row == 20 ? 600 : (size_t)(row * 13) % 97;
            for (size_t k = 0; k < w; k++)
                text[k] = (char)('a' + (k + (size_t)row) % 26);
            body_column(s, text, w);
        }
        stream_emit(s, PGP_BE_DATA_ROW);
    }
    body_cstr(s, "SELECT 40");
    stream_emit(s, PGP_BE_COMMAND_COMPLETE);
    body_bytes(s, "I", 1);
    stream_emit(s, PGP_BE_READY_FOR_QUERY);

    /* Extended query: empty-body messages between the others. */
    stream_emit(s, PGP_BE_PARSE_COMPLETE);
    stream_emit(s, PGP_BE_BIND_COMPLETE);
    body_be16(s, 1);
    body_column(s, "42", 2);
    stream_emit(s, PGP_BE_DATA_ROW);
    body_cstr(s, "SELECT 1");
    stream_emit(s, PGP_BE_COMMAND_COMPLETE);
    body_bytes(s, "T", 1);
    stream_emit(s, PGP_BE_READY_FOR_QUERY);

    /* Empty query string. */
    stream_emit(s, PGP_BE_EMPTY_QUERY_RESPONSE);
    body_bytes(s, "I", 1);
    stream_emit(s, PGP_BE_READY_FOR_QUERY);
}

/* What a client sends after startup: simple and extended queries. */
static void build_client_stream(stream_t *s)
{
    char big[3000];

    body_cstr(s, "SELECT id, name FROM t");
    stream_emit(s, PGP_FE_QUERY);

    body_cstr(s, "");
    body_cstr(s, "SELECT $1::int");
    body_be16(s, 1);
    body_be32(s, 23);
    stream_emit(s, PGP_FE_PARSE);
    body_cstr(s, "");
    body_cstr(s, "");
    body_be16(s, 1);
    body_be16(s, 0);
    body_be16(s, 1);
    body_column(s, "42", 2);
    body_be16(s, 1);
    body_be16(s, 0);
    stream_emit(s, PGP_FE_BIND);
    body_bytes(s, "P", 1);
    body_cstr(s, "");
    stream_emit(s, PGP_FE_DESCRIBE);
    body_cstr(s, "");
    body_be32(s, 0);
    stream_emit(s, PGP_FE_EXECUTE);
    stream_emit(s, PGP_FE_SYNC);

    memset(big, 'x', sizeof(big) - 1);
    memcpy(big, "SELECT '", 8);
    memcpy(big + sizeof(big) - 3, "';", 2);
    big[sizeof(big) - 1] = '\0';
    body_cstr(s, big);
    stream_emit(s, PGP_FE_QUERY);
    stream_emit(s, PGP_FE_FLUSH);
    stream_emit(s, PGP_FE_TERMINATE);
}

/* Back-to-back headers: every split lands in or between headers. */
static void build_tight_stream(stream_t *s)
{
    stream_emit(s, PGP_FE_SYNC);
    stream_emit(s, PGP_FE_SYNC);
    body_bytes(s, "x", 1);
    stream_emit(s, PGP_FE_PASSWORD);
    stream_emit(s, PGP_FE_FLUSH);
    body_bytes(s, "ab", 2);
    stream_emit(s, PGP_FE_COPY_DATA);
    stream_emit(s, PGP_FE_COPY_DONE);
    stream_emit(s, PGP_FE_SYNC);
    stream_emit(s, PGP_FE_TERMINATE);
}

typedef struct stream_case {
    const char *name;
    void (*build)(stream_t *s);
} stream_case_t;

static const stream_case_t stream_cases[] = {
    {"server", build_server_stream},
    {"client", build_client_stream},
    {"tight", build_tight_stream},
};
#define N_STREAM_CASES ((int)(sizeof(stream_cases) / sizeof(stream_cases[0])))

static stream_t *stream_new(int which)
{
    stream_t *s = calloc(1, sizeof(*s));
    ck_assert_ptr_nonnull(s);
    stream_cases[which].build(s);
    return s;
}

/* boundary[i] is true when offset i is the start of the stream or a message end. */
static bool *stream_boundaries(const stream_t *s)
{
    bool *b = calloc(s->len + 1, sizeof(*b));
    ck_assert_ptr_nonnull(b);
    b[0] = true;
    for (size_t i = 0; i < s->n_msgs; i++)
        b[s->msgs[i].off + 1 + s->msgs[i].len] = true;
    return b;
}

/* ------------------------------------------------------------------ */
/* Recording observer                                                  */
/* ------------------------------------------------------------------ */

#define REC_MAX_MSGS 256

typedef struct rec_msg {
    uint8_t type;
    uint32_t len;
    size_t body_off;     /* into rec.body */
    size_t body_n;
    bool ended;
    uint64_t last_feed;  /* feed that delivered the latest fragment */
} rec_msg_t;

typedef struct rec {
    rec_msg_t msgs[REC_MAX_MSGS];
    size_t n_msgs;
    size_t n_end;
    size_t n_calls;      /* callbacks of any kind */
    bool open;
    uint8_t body[STREAM_CAP];
    size_t body_len;
    const uint8_t *chunk;   /* the chunk being fed */
    size_t chunk_len;
    uint64_t feed_id;
    char err[200];          /* first contract violation, "" if none */
} rec_t;

static void rec_violation(rec_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void rec_violation(rec_t *r, const char *fmt, ...)
{
    if (r->err[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err, sizeof(r->err), fmt, ap);
    va_end(ap);
}

static void on_rec_begin(void *ud, uint8_t type, uint32_t len)
{
    rec_t *r = ud;
    r->n_calls++;
    if (r->open)
        rec_violation(r, "begin '%c' while message %zu is open", type, r->n_msgs - 1);
    if (r->n_msgs == REC_MAX_MSGS) {
        rec_violation(r, "too many messages");
        return;
    }
    rec_msg_t *m = &r->msgs[r->n_msgs++];
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->len = len;
    m->body_off = r->body_len;
    m->last_feed = UINT64_MAX;
    r->open = true;
}

static void on_rec_body(void *ud, const uint8_t *p, size_t n)
{
    rec_t *r = ud;
    r->n_calls++;
    if (!r->open || r->n_msgs == 0) {
        rec_violation(r, "body fragment outside a message");
        return;
    }
    rec_msg_t *m = &r->msgs[r->n_msgs - 1];
    if (n == 0)
        rec_violation(r, "empty body fragment in message %zu", r->n_msgs - 1);
    if (r->chunk == NULL || p < r->chunk || p + n > r->chunk + r->chunk_len)
        rec_violation(r, "fragment of message %zu is not borrowed from the chunk",
                      r->n_msgs - 1);
    if (m->last_feed == r->feed_id)
        rec_violation(r, "message %zu got two fragments from one chunk", r->n_msgs - 1);
    m->last_feed = r->feed_id;
    if (m->body_n + n > (size_t)m->len - 4) {
        rec_violation(r, "message %zu: %zu body bytes for length %u", r->n_msgs - 1,
                      m->body_n + n, m->len);
        return;
    }
    if (r->body_len + n > sizeof(r->body)) {
        rec_violation(r, "recorder body overflow");
        return;
    }
    memcpy(r->body + r->body_len, p, n);
    r->body_len += n;
    m->body_n += n;
}

static void on_rec_end(void *ud, uint8_t type)
{
    rec_t *r = ud;
    r->n_calls++;
    if (!r->open || r->n_msgs == 0) {
        rec_violation(r, "end '%c' outside a message", type);
        return;
    }
    rec_msg_t *m = &r->msgs[r->n_msgs - 1];
    if (type != m->type)
        rec_violation(r, "end '%c' for message '%c'", type, m->type);
    if (m->body_n != (size_t)m->len - 4)
        rec_violation(r, "end of message %zu after %zu of %u body bytes", r->n_msgs - 1,
                      m->body_n, m->len - 4);
    m->ended = true;
    r->open = false;
    r->n_end++;
}

static const pgp_frame_ops_t rec_ops = {on_rec_begin, on_rec_body, on_rec_end};

static rec_t *rec_new(void)
{
    rec_t *r = calloc(1, sizeof(*r));
    ck_assert_ptr_nonnull(r);
    return r;
}

static void rec_reset(rec_t *r)
{
    memset(r, 0, offsetof(rec_t, body));
    r->body_len = 0;
    r->chunk = NULL;
    r->chunk_len = 0;
    r->feed_id = 0;
    r->err[0] = '\0';
}

static int rec_feed(rec_t *r, pgp_framer_t *f, const uint8_t *p, size_t n, size_t *bad_at)
{
    r->feed_id++;
    r->chunk = p;
    r->chunk_len = n;
    int rc = pgp_framer_feed(f, p, n, &rec_ops, r, bad_at);
    r->chunk = NULL;
    r->chunk_len = 0;
    return rc;
}

/* The recorder saw exactly the first `count` messages of s, all complete. */
static void rec_check_stream(const rec_t *r, const stream_t *s, size_t count, const char *ctx)
{
    ck_assert_msg(r->err[0] == '\0', "%s: %s", ctx, r->err);
    ck_assert_msg(r->n_msgs == count, "%s: %zu messages, expected %zu", ctx, r->n_msgs, count);
    ck_assert_msg(r->n_end == count, "%s: %zu ends, expected %zu", ctx, r->n_end, count);
    ck_assert_msg(!r->open, "%s: a message is still open", ctx);
    for (size_t i = 0; i < count; i++) {
        const rec_msg_t *m = &r->msgs[i];
        const stream_msg_t *e = &s->msgs[i];
        ck_assert_msg(m->type == e->type && m->len == e->len,
                      "%s: message %zu is '%c'/%u, expected '%c'/%u", ctx, i, m->type, m->len,
                      e->type, e->len);
        ck_assert_msg(m->ended, "%s: message %zu not ended", ctx, i);
        ck_assert_msg(m->body_n == e->len - 4u, "%s: message %zu body %zu bytes", ctx, i,
                      m->body_n);
        ck_assert_msg(memcmp(r->body + m->body_off, s->buf + e->off + 5, m->body_n) == 0,
                      "%s: message %zu body differs", ctx, i);
    }
}

/* Two recordings report the same messages, bodies and end count. */
static void rec_check_equal(const rec_t *a, const rec_t *b, const char *ctx)
{
    ck_assert_msg(b->err[0] == '\0', "%s: %s", ctx, b->err);
    ck_assert_msg(a->n_msgs == b->n_msgs, "%s: %zu messages vs %zu", ctx, b->n_msgs,
                  a->n_msgs);
    ck_assert_msg(a->n_end == b->n_end, "%s: %zu ends vs %zu", ctx, b->n_end, a->n_end);
    ck_assert_msg(a->open == b->open, "%s: open state differs", ctx);
    ck_assert_msg(a->body_len == b->body_len, "%s: %zu body bytes vs %zu", ctx, b->body_len,
                  a->body_len);
    for (size_t i = 0; i < a->n_msgs; i++) {
        const rec_msg_t *x = &a->msgs[i], *y = &b->msgs[i];
        ck_assert_msg(x->type == y->type && x->len == y->len && x->body_n == y->body_n &&
                          x->ended == y->ended,
                      "%s: message %zu differs", ctx, i);
    }
    ck_assert_msg(memcmp(a->body, b->body, a->body_len) == 0, "%s: bodies differ", ctx);
}

/* Fixed-seed xorshift64, so failures reproduce. */
static uint64_t rng_next(uint64_t *st)
{
    uint64_t x = *st;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *st = x;
    return x;
}

/* One-shot reference, itself checked against the builder's ground truth. */
static rec_t *reference(const stream_t *s, int which)
{
    rec_t *ref = rec_new();
    pgp_framer_t f;
    size_t bad_at = 12345;
    char ctx[64];

    pgp_framer_init(&f, 1u << 20);
    ck_assert(pgp_framer_at_boundary(&f));
    ck_assert_int_eq(rec_feed(ref, &f, s->buf, s->len, &bad_at), PGP_FRAME_OK);
    snprintf(ctx, sizeof(ctx), "%s one-shot", stream_cases[which].name);
    rec_check_stream(ref, s, s->n_msgs, ctx);
    ck_assert(pgp_framer_at_boundary(&f));
    ck_assert_uint_eq(f.msg_count, s->n_msgs);
    /* One chunk: each non-empty body arrives as one fragment. */
    for (size_t i = 0; i < ref->n_msgs; i++)
        ck_assert_uint_eq(ref->msgs[i].last_feed, ref->msgs[i].body_n ? 1 : UINT64_MAX);
    return ref;
}

/* ------------------------------------------------------------------ */
/* Framing                                                             */
/* ------------------------------------------------------------------ */

START_TEST(test_frame_every_split)
{
    stream_t *s = stream_new(_i);
    bool *boundary = stream_boundaries(s);
    rec_t *ref = reference(s, _i);
    rec_t *r = rec_new();
    char ctx[80];

    for (size_t p = 0; p <= s->len; p++) {
        pgp_framer_t f;
        size_t bad_at;
        snprintf(ctx, sizeof(ctx), "%s split at %zu", stream_cases[_i].name, p);
        pgp_framer_init(&f, 1u << 20);
        rec_reset(r);
        ck_assert_msg(rec_feed(r, &f, s->buf, p, &bad_at) == PGP_FRAME_OK, "%s", ctx);
        ck_assert_msg(r->err[0] == '\0', "%s: %s", ctx, r->err);
        ck_assert_msg(pgp_framer_at_boundary(&f) == boundary[p], "%s: at_boundary %d", ctx,
                      pgp_framer_at_boundary(&f));
        ck_assert_msg(f.msg_count == r->n_msgs, "%s: msg_count", ctx);
        ck_assert_msg(rec_feed(r, &f, s->buf + p, s->len - p, &bad_at) == PGP_FRAME_OK, "%s",
                      ctx);
        ck_assert_msg(pgp_framer_at_boundary(&f), "%s: not at boundary at the end", ctx);
        ck_assert_msg(f.msg_count == s->n_msgs, "%s: msg_count", ctx);
        rec_check_equal(ref, r, ctx);
        rec_check_stream(r, s, s->n_msgs, ctx);
    }
    free(r);
    free(ref);
    free(boundary);
    free(s);
}
END_TEST

START_TEST(test_frame_byte_by_byte)
{
    stream_t *s = stream_new(_i);
    bool *boundary = stream_boundaries(s);
    rec_t *ref = reference(s, _i);
    rec_t *r = rec_new();
    pgp_framer_t f;
    size_t bad_at;

    pgp_framer_init(&f, 1u << 20);
    for (size_t i = 0; i < s->len; i++) {
        ck_assert_int_eq(rec_feed(r, &f, s->buf + i, 1, &bad_at), PGP_FRAME_OK);
        ck_assert_msg(r->err[0] == '\0', "byte %zu: %s", i, r->err);
        ck_assert_msg(pgp_framer_at_boundary(&f) == boundary[i + 1], "byte %zu: at_boundary",
                      i);
        ck_assert_uint_eq(f.msg_count, r->n_msgs);
        /* an empty chunk changes nothing */
        size_t calls = r->n_calls;
        ck_assert_int_eq(rec_feed(r, &f, s->buf + i + 1, 0, &bad_at), PGP_FRAME_OK);
        ck_assert_uint_eq(r->n_calls, calls);
        ck_assert(pgp_framer_at_boundary(&f) == boundary[i + 1]);
    }
    rec_check_equal(ref, r, "byte by byte");
    rec_check_stream(r, s, s->n_msgs, "byte by byte");
    free(r);
    free(ref);
    free(boundary);
    free(s);
}
END_TEST

START_TEST(test_frame_random_pieces)
{
    static const size_t max_piece[] = {2, 7, 64, 600, STREAM_CAP};
    stream_t *s = stream_new(_i);
    bool *boundary = stream_boundaries(s);
    rec_t *ref = reference(s, _i);
    rec_t *r = rec_new();
    uint64_t seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)_i;
    char ctx[80];

    for (int round = 0; round < 400; round++) {
        pgp_framer_t f;
        size_t bad_at, pos = 0, maxp = max_piece[round % 5];
        snprintf(ctx, sizeof(ctx), "%s round %d", stream_cases[_i].name, round);
        pgp_framer_init(&f, 1u << 20);
        rec_reset(r);
        while (pos < s->len) {
            uint64_t x = rng_next(&seed);
            size_t n = (x & 7) == 0 ? 0 : 1 + (size_t)((x >> 3) % maxp);
            if (n > s->len - pos)
                n = s->len - pos;
            ck_assert_msg(rec_feed(r, &f, s->buf + pos, n, &bad_at) == PGP_FRAME_OK,
                          "%s at %zu", ctx, pos);
            pos += n;
            ck_assert_msg(pgp_framer_at_boundary(&f) == boundary[pos],
                          "%s: at_boundary after %zu", ctx, pos);
            ck_assert_msg(f.msg_count == r->n_msgs, "%s: msg_count", ctx);
        }
        rec_check_equal(ref, r, ctx);
        rec_check_stream(r, s, s->n_msgs, ctx);
    }
    free(r);
    free(ref);
    free(boundary);
    free(s);
}
END_TEST

/* No observer, or one with only NULL callbacks: same counts and boundaries. */
START_TEST(test_frame_without_observer)
{
    static const pgp_frame_ops_t null_ops = {NULL, NULL, NULL};
    stream_t *s = stream_new(_i);
    bool *boundary = stream_boundaries(s);
    uint64_t seed = 0x1234567ull + (uint64_t)_i;

    for (int variant = 0; variant < 2; variant++) {
        const pgp_frame_ops_t *ops = variant == 0 ? NULL : &null_ops;
        for (int round = 0; round < 50; round++) {
            pgp_framer_t f;
            size_t pos = 0;
            pgp_framer_init(&f, 1u << 20);
            while (pos < s->len) {
                size_t n = 1 + (size_t)(rng_next(&seed) % 40);
                if (n > s->len - pos)
                    n = s->len - pos;
                ck_assert_int_eq(pgp_framer_feed(&f, s->buf + pos, n, ops, NULL, NULL),
                                 PGP_FRAME_OK);
                pos += n;
                ck_assert(pgp_framer_at_boundary(&f) == boundary[pos]);
            }
            ck_assert_uint_eq(f.msg_count, s->n_msgs);
        }
    }
    free(boundary);
    free(s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Length guards                                                       */
/* ------------------------------------------------------------------ */

typedef struct guard_case {
    const char *name;
    uint32_t max_len;
    uint32_t len;      /* the length field under test */
    bool ok;
} guard_case_t;

static const guard_case_t guard_cases[] = {
    {"len 0", 1u << 20, 0, false},
    {"len 1", 1u << 20, 1, false},
    {"len 2", 1u << 20, 2, false},
    {"len 3", 1u << 20, 3, false},
    {"len 4, empty body", 1u << 20, 4, true},
    {"len 5", 1u << 20, 5, true},
    {"len == max", 300, 300, true},
    {"len == max + 1", 300, 301, false},
    {"len 260 < max (big-endian read)", 300, 260, true},
    {"len 0x04000000 > max (big-endian read)", 1u << 20, 0x04000000u, false},
    {"max 4, len 4", 4, 4, true},
    {"max 4, len 5", 4, 5, false},
    {"len 0x7fffffff", 1u << 30, 0x7fffffffu, false},
    {"len 0x80000000", 1u << 30, 0x80000000u, false},
    {"len 0xffffffff", 1u << 30, 0xffffffffu, false},
    {"len 0xffffffff, max 0x7fffffff", 0x7fffffffu, 0xffffffffu, false},
    {"len 0x7fffffff == max", 0x7fffffffu, 0x7fffffffu, true},
};
#define N_GUARD_CASES ((int)(sizeof(guard_cases) / sizeof(guard_cases[0])))

/*
 * Builds [prefix of good messages (if with_prefix)] [header under test]
 * [what follows].  For a refused header, "what follows" is well-formed
 * messages that must never be reported.  Returns the header offset.
 */
static size_t build_guard_stream(stream_t *s, const guard_case_t *gc, bool with_prefix,
                                 size_t *n_prefix_msgs)
{
    /* messages with bodies only when max_len lets them through */
    bool roomy = gc->max_len >= 64;
    if (with_prefix) {
        stream_emit(s, PGP_FE_SYNC);
        if (roomy) {
            body_cstr(s, "SELECT 1");
            stream_emit(s, PGP_FE_QUERY);
            body_be16(s, 1);
            body_column(s, "hello", 5);
            stream_emit(s, PGP_BE_DATA_ROW);
        }
        stream_emit(s, PGP_FE_FLUSH);
    }
    *n_prefix_msgs = s->n_msgs;
    size_t h = s->len;
    s->buf[s->len] = PGP_FE_QUERY;
    pgp_put_be32(s->buf + s->len + 1, gc->len);
    s->len += 5;
    if (gc->ok && gc->len - 4u <= 1024) {
        /* the whole body, then one more message */
        s->msgs[s->n_msgs++] = (stream_msg_t){PGP_FE_QUERY, gc->len, h};
        for (uint32_t i = 0; i < gc->len - 4u; i++)
            s->buf[s->len++] = (uint8_t)('a' + i % 26);
    } else if (gc->ok) {
        /* a huge body: only its first bytes are here */
        for (int i = 0; i < 10; i++)
            s->buf[s->len++] = (uint8_t)i;
        return h;
    }
    stream_emit(s, PGP_FE_SYNC);
    if (roomy) {
        body_cstr(s, "SELECT 2");
        stream_emit(s, PGP_FE_QUERY);
    }
    return h;
}

/* A poisoned framer refuses everything and reports nothing. */
static void check_poisoned(pgp_framer_t *f, rec_t *r, const char *ctx)
{
    static const uint8_t sync[5] = {PGP_FE_SYNC, 0, 0, 0, 4};
    size_t calls = r->n_calls, bad_at;
    ck_assert_msg(!pgp_framer_at_boundary(f), "%s: poisoned framer at a boundary", ctx);
    ck_assert_msg(rec_feed(r, f, sync, sizeof(sync), &bad_at) == PGP_FRAME_EBADLEN,
                  "%s: feed after poisoning accepted", ctx);
    ck_assert_msg(rec_feed(r, f, sync, 1, &bad_at) == PGP_FRAME_EBADLEN,
                  "%s: 1-byte feed after poisoning accepted", ctx);
    ck_assert_msg(rec_feed(r, f, sync, 0, &bad_at) == PGP_FRAME_EBADLEN,
                  "%s: empty feed after poisoning accepted", ctx);
    ck_assert_msg(pgp_framer_feed(f, sync, sizeof(sync), NULL, NULL, NULL) ==
                      PGP_FRAME_EBADLEN,
                  "%s: feed without observer after poisoning accepted", ctx);
    ck_assert_msg(r->n_calls == calls, "%s: callbacks after poisoning", ctx);
    ck_assert_msg(!pgp_framer_at_boundary(f), "%s: poisoned framer at a boundary", ctx);
}

START_TEST(test_frame_length_guard)
{
    const guard_case_t *gc = &guard_cases[_i / 2];
    bool with_prefix = _i % 2;
    stream_t *s = calloc(1, sizeof(*s));
    rec_t *r = rec_new();
    size_t n_prefix, bad_at;
    char ctx[160];

    ck_assert_ptr_nonnull(s);
    size_t h = build_guard_stream(s, gc, with_prefix, &n_prefix);

    if (gc->ok) {
        /* accepted: every split gives the same begin/body/end sequence */
        for (size_t p = 0; p <= s->len; p++) {
            pgp_framer_t f;
            snprintf(ctx, sizeof(ctx), "%s%s, split at %zu", gc->name,
                     with_prefix ? " after prefix" : "", p);
            pgp_framer_init(&f, gc->max_len);
            rec_reset(r);
            ck_assert_msg(rec_feed(r, &f, s->buf, p, &bad_at) == PGP_FRAME_OK, "%s", ctx);
            ck_assert_msg(rec_feed(r, &f, s->buf + p, s->len - p, &bad_at) == PGP_FRAME_OK,
                          "%s", ctx);
            ck_assert_msg(r->err[0] == '\0', "%s: %s", ctx, r->err);
            if (gc->len - 4u <= 1024) {
                rec_check_stream(r, s, s->n_msgs, ctx);
                ck_assert_msg(pgp_framer_at_boundary(&f), "%s", ctx);
            } else {
                ck_assert_msg(r->n_msgs == n_prefix + 1 && r->open, "%s", ctx);
                ck_assert_msg(r->msgs[n_prefix].len == gc->len, "%s", ctx);
                ck_assert_msg(r->msgs[n_prefix].body_n == 10, "%s", ctx);
                ck_assert_msg(!pgp_framer_at_boundary(&f), "%s", ctx);
            }
        }
        goto out;
    }

    /* refused: one two-piece feed per split position */
    for (size_t p = 0; p <= s->len; p++) {
        pgp_framer_t f;
        snprintf(ctx, sizeof(ctx), "%s%s, split at %zu (header at %zu)", gc->name,
                 with_prefix ? " after prefix" : "", p, h);
        pgp_framer_init(&f, gc->max_len);
        rec_reset(r);
        bad_at = 99999;
        int rc1 = rec_feed(r, &f, s->buf, p, &bad_at);
        if (p >= h + 5) {
            ck_assert_msg(rc1 == PGP_FRAME_EBADLEN, "%s: first piece accepted", ctx);
            ck_assert_msg(bad_at == h, "%s: bad_at %zu", ctx, bad_at);
        } else {
            ck_assert_msg(rc1 == PGP_FRAME_OK, "%s: first piece refused", ctx);
            bad_at = 99999;
            int rc2 = rec_feed(r, &f, s->buf + p, s->len - p, &bad_at);
            ck_assert_msg(rc2 == PGP_FRAME_EBADLEN, "%s: second piece accepted", ctx);
            size_t want = p <= h ? h - p : 0;
            ck_assert_msg(bad_at == want, "%s: bad_at %zu, expected %zu", ctx, bad_at, want);
        }
        /* everything before the bad header, nothing after it */
        rec_check_stream(r, s, n_prefix, ctx);
        ck_assert_msg(f.msg_count == n_prefix, "%s: msg_count %llu", ctx,
                      (unsigned long long)f.msg_count);
        check_poisoned(&f, r, ctx);
    }

    /* byte by byte: the header always straddles, so bad_at is 0 */
    {
        pgp_framer_t f;
        int rc = PGP_FRAME_OK;
        size_t i;
        snprintf(ctx, sizeof(ctx), "%s%s, byte by byte", gc->name,
                 with_prefix ? " after prefix" : "");
        pgp_framer_init(&f, gc->max_len);
        rec_reset(r);
        for (i = 0; i < s->len; i++) {
            bad_at = 99999;
            rc = rec_feed(r, &f, s->buf + i, 1, &bad_at);
            if (rc != PGP_FRAME_OK)
                break;
        }
        ck_assert_msg(rc == PGP_FRAME_EBADLEN && i == h + 4, "%s: refused at byte %zu", ctx,
                      i);
        ck_assert_msg(bad_at == 0, "%s: bad_at %zu", ctx, bad_at);
        rec_check_stream(r, s, n_prefix, ctx);
        check_poisoned(&f, r, ctx);
    }

    /* without an observer or bad_at pointer */
    {
        pgp_framer_t f;
        pgp_framer_init(&f, gc->max_len);
        ck_assert_int_eq(pgp_framer_feed(&f, s->buf, s->len, NULL, NULL, NULL),
                         PGP_FRAME_EBADLEN);
        ck_assert_uint_eq(f.msg_count, n_prefix);
        ck_assert(!pgp_framer_at_boundary(&f));
    }
out:
    free(r);
    free(s);
}
END_TEST

/* A poisoned framer stays poisoned even when the next chunk is a clean stream. */
START_TEST(test_frame_poison_sticks)
{
    stream_t *s = stream_new(0);
    rec_t *r = rec_new();
    pgp_framer_t f;
    static const uint8_t bad[5] = {PGP_BE_DATA_ROW, 0, 0, 0, 3};
    size_t bad_at = 1;

    pgp_framer_init(&f, 1u << 20);
    ck_assert_int_eq(rec_feed(r, &f, bad, sizeof(bad), &bad_at), PGP_FRAME_EBADLEN);
    ck_assert_uint_eq(bad_at, 0);
    for (size_t p = 0; p < s->len; p += 97)
        ck_assert_int_eq(rec_feed(r, &f, s->buf + p, s->len - p, &bad_at), PGP_FRAME_EBADLEN);
    ck_assert_uint_eq(r->n_calls, 0);
    ck_assert_uint_eq(f.msg_count, 0);
    free(r);
    free(s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Startup packets                                                     */
/* ------------------------------------------------------------------ */

#define V30 0x00030000u
#define V32 0x00030002u
#define B(s) s, sizeof(s) - 1
#define PATTERN NULL   /* payload generated: pid + key bytes */

typedef struct startup_case {
    const char *name;
    uint32_t code;
    const char *payload;   /* bytes after the code, or PATTERN */
    size_t payload_len;
    int len_delta;         /* length field = real length + len_delta */
    int rc;
    pgp_startup_kind_t kind;
    const char *user, *database, *app;
    uint32_t param_count;
} startup_case_t;

static const startup_case_t startup_cases[] = {
    {"3.0 user/database/application_name", V30,
     B("user\0alice\0database\0shop\0application_name\0psql\0\0"), 0, 0, PGP_STARTUP_MESSAGE,
     "alice", "shop", "psql", 3},
    {"3.2 with extra parameters", V32,
     B("client_encoding\0UTF8\0user\0bob\0application_name\0app\0database\0db1\0"
       "_pq_.x\0y\0\0"),
     0, 0, PGP_STARTUP_MESSAGE, "bob", "db1", "app", 5},
    {"3.0 database defaults to user", V30, B("user\0carol\0\0"), 0, 0, PGP_STARTUP_MESSAGE,
     "carol", "carol", NULL, 1},
    {"3.0 empty database defaults to user", V30, B("database\0\0user\0dave\0\0"), 0, 0,
     PGP_STARTUP_MESSAGE, "dave", "dave", NULL, 2},
    {"3.0 empty values elsewhere", V30, B("user\0u\0options\0\0application_name\0\0\0"), 0, 0,
     PGP_STARTUP_MESSAGE, "u", "u", "", 3},
    {"3.1 minor version accepted", 0x00030001u, B("user\0e\0\0"), 0, 0, PGP_STARTUP_MESSAGE,
     "e", "e", NULL, 1},
    {"missing user", V30, B("database\0shop\0\0"), 0, -1, 0, NULL, NULL, NULL, 0},
    {"empty user", V30, B("user\0\0database\0shop\0\0"), 0, -1, 0, NULL, NULL, NULL, 0},
    {"'username' is not 'user'", V30, B("username\0x\0\0"), 0, -1, 0, NULL, NULL, NULL, 0},
    {"'user' as a value only", V30, B("database\0user\0\0"), 0, -1, 0, NULL, NULL, NULL, 0},
    {"no parameters at all", V30, B(""), 0, -1, 0, NULL, NULL, NULL, 0},
    {"only the terminator", V30, B("\0"), 0, -1, 0, NULL, NULL, NULL, 0},
    {"unterminated list", V30, B("user\0alice\0"), 0, -1, 0, NULL, NULL, NULL, 0},
    {"unterminated value", V30, B("user\0ali"), 0, -1, 0, NULL, NULL, NULL, 0},
    {"unterminated name", V30, B("user\0alice\0datab"), 0, -1, 0, NULL, NULL, NULL, 0},
    {"name without value", V30, B("user\0alice\0database\0"), 0, -1, 0, NULL, NULL, NULL, 0},
    {"trailing byte after terminator", V30, B("user\0alice\0\0x"), 0, -1, 0, NULL, NULL, NULL,
     0},
    {"two terminators", V30, B("user\0alice\0\0\0"), 0, -1, 0, NULL, NULL, NULL, 0},
    {"protocol 2.0", 0x00020000u, B("user\0alice\0\0"), 0, -1, 0, NULL, NULL, NULL, 0},
    {"protocol 4.0", 0x00040000u, B("user\0alice\0\0"), 0, -1, 0, NULL, NULL, NULL, 0},
    {"protocol 0.0", 0, B("user\0alice\0\0"), 0, -1, 0, NULL, NULL, NULL, 0},
    {"unknown request 1234.5681", 80877105u, B(""), 0, -1, 0, NULL, NULL, NULL, 0},
    {"length field one more than buffer", V30, B("user\0alice\0\0"), 1, -1, 0, NULL, NULL,
     NULL, 0},
    {"length field one less than buffer", V30, B("user\0alice\0\0"), -1, -1, 0, NULL, NULL,
     NULL, 0},
    {"SSLRequest", PGP_PROTO_SSL_REQUEST_CODE, B(""), 0, 0, PGP_STARTUP_SSL_REQUEST, NULL,
     NULL, NULL, 0},
    {"SSLRequest length 12", PGP_PROTO_SSL_REQUEST_CODE, B("\0\0\0\0"), 0, -1, 0, NULL, NULL,
     NULL, 0},
    {"GSSENCRequest", PGP_PROTO_GSSENC_REQUEST_CODE, B(""), 0, 0, PGP_STARTUP_GSSENC_REQUEST,
     NULL, NULL, NULL, 0},
    {"GSSENCRequest length 12", PGP_PROTO_GSSENC_REQUEST_CODE, B("\0\0\0\0"), 0, -1, 0, NULL,
     NULL, NULL, 0},
    {"CancelRequest 3.0 (4-byte key)", PGP_PROTO_CANCEL_REQUEST_CODE, PATTERN, 8, 0, 0,
     PGP_STARTUP_CANCEL_REQUEST, NULL, NULL, NULL, 0},
    {"CancelRequest 3.2 (32-byte key)", PGP_PROTO_CANCEL_REQUEST_CODE, PATTERN, 4 + 32, 0, 0,
     PGP_STARTUP_CANCEL_REQUEST, NULL, NULL, NULL, 0},
    {"CancelRequest 12 + 256", PGP_PROTO_CANCEL_REQUEST_CODE, PATTERN, 4 + 256, 0, 0,
     PGP_STARTUP_CANCEL_REQUEST, NULL, NULL, NULL, 0},
    {"CancelRequest 12 + 257", PGP_PROTO_CANCEL_REQUEST_CODE, PATTERN, 4 + 257, 0, -1, 0,
     NULL, NULL, NULL, 0},
    {"CancelRequest 15 (3-byte key)", PGP_PROTO_CANCEL_REQUEST_CODE, PATTERN, 4 + 3, 0, -1,
     0, NULL, NULL, NULL, 0},
    {"CancelRequest 12 (no key)", PGP_PROTO_CANCEL_REQUEST_CODE, PATTERN, 4, 0, -1, 0, NULL,
     NULL, NULL, 0},
    {"CancelRequest 8 (no pid)", PGP_PROTO_CANCEL_REQUEST_CODE, PATTERN, 0, 0, -1, 0, NULL,
     NULL, NULL, 0},
    {"CancelRequest length field != buffer", PGP_PROTO_CANCEL_REQUEST_CODE, PATTERN, 8, 4, -1,
     0, NULL, NULL, NULL, 0},
};
#define N_STARTUP_CASES ((int)(sizeof(startup_cases) / sizeof(startup_cases[0])))

static uint8_t pattern_byte(size_t i)
{
    return (uint8_t)(i * 7 + 1);
}

/* Exactly-sized heap copy, so ASan builds catch any read past the packet. */
static uint8_t *startup_packet(const startup_case_t *c, size_t *len)
{
    size_t n = 8 + c->payload_len;
    uint8_t *pkt = malloc(n);
    ck_assert_ptr_nonnull(pkt);
    pgp_put_be32(pkt, (uint32_t)((long)n + c->len_delta));
    pgp_put_be32(pkt + 4, c->code);
    for (size_t i = 0; i < c->payload_len; i++)
        pkt[8 + i] = c->payload ? (uint8_t)c->payload[i] : pattern_byte(i);
    *len = n;
    return pkt;
}

/* s is NULL, or a NUL-terminated string that lies inside the packet. */
static void check_inside(const char *what, const char *s, const uint8_t *pkt, size_t len,
                         const char *want)
{
    if (want == NULL) {
        ck_assert_msg(s == NULL, "%s: expected NULL, got \"%s\"", what, s);
        return;
    }
    ck_assert_msg(s != NULL, "%s: NULL, expected \"%s\"", what, want);
    ck_assert_msg((const uint8_t *)s >= pkt + 8 && (const uint8_t *)s < pkt + len,
                  "%s: points outside the packet", what);
    size_t room = (size_t)(pkt + len - (const uint8_t *)s);
    ck_assert_msg(strnlen(s, room) < room, "%s: not terminated inside the packet", what);
    ck_assert_str_eq(s, want);
}

START_TEST(test_startup_parse)
{
    const startup_case_t *c = &startup_cases[_i];
    size_t len;
    uint8_t *pkt = startup_packet(c, &len);
    pgp_startup_t st;
    const char *why = "untouched";

    int rc = pgp_startup_parse(pkt, len, &st, &why);
    ck_assert_msg(rc == c->rc, "%s: rc %d (why: %s)", c->name, rc, why ? why : "NULL");
    if (rc != 0) {
        ck_assert_msg(why != NULL && why[0] != '\0' && strcmp(why, "untouched") != 0,
                      "%s: no reason given", c->name);
        goto out;
    }
    ck_assert_int_eq(st.kind, c->kind);
    ck_assert_uint_eq(st.code, c->code);
    switch (c->kind) {
    case PGP_STARTUP_MESSAGE:
        check_inside("user", st.user, pkt, len, c->user);
        check_inside("database", st.database, pkt, len, c->database);
        check_inside("application_name", st.application_name, pkt, len, c->app);
        ck_assert_uint_eq(st.param_count, c->param_count);
        break;
    case PGP_STARTUP_CANCEL_REQUEST: {
        uint8_t pid[4] = {pattern_byte(0), pattern_byte(1), pattern_byte(2), pattern_byte(3)};
        ck_assert_uint_eq(st.cancel_pid, pgp_be32(pid));
        ck_assert_uint_eq(st.cancel_key_len, c->payload_len - 4);
        ck_assert_ptr_eq(st.cancel_key, pkt + 12);
        for (size_t i = 0; i < st.cancel_key_len; i++)
            ck_assert_uint_eq(st.cancel_key[i], pattern_byte(i + 4));
        ck_assert_ptr_null(st.user);
        break;
    }
    default:
        ck_assert_ptr_null(st.user);
        ck_assert_ptr_null(st.database);
        ck_assert_uint_eq(st.cancel_key_len, 0);
        break;
    }
out:
    free(pkt);
}
END_TEST

/* Startup packets at and around the 10000-byte limit. */
START_TEST(test_startup_size_limit)
{
    static const struct {
        size_t len;
        int rc;
    } cases[] = {{10000, 0}, {10001, -1}, {9999, 0}};
    size_t n = cases[_i].len;
    uint8_t *pkt = malloc(n);
    pgp_startup_t st;
    const char *why;

    ck_assert_ptr_nonnull(pkt);
    /* user\0alice\0application_name\0xxxx...\0\0 filling the packet exactly */
    static const char head[] = "user\0alice\0application_name";
    pgp_put_be32(pkt, (uint32_t)n);
    pgp_put_be32(pkt + 4, V30);
    memcpy(pkt + 8, head, sizeof(head));   /* includes the NUL after the name */
    size_t vpos = 8 + sizeof(head);
    memset(pkt + vpos, 'x', n - vpos - 2);
    pkt[n - 2] = 0;
    pkt[n - 1] = 0;

    int rc = pgp_startup_parse(pkt, n, &st, &why);
    ck_assert_msg(rc == cases[_i].rc, "len %zu: rc %d", n, rc);
    if (rc == 0) {
        ck_assert_str_eq(st.user, "alice");
        ck_assert_str_eq(st.database, "alice");
        ck_assert_uint_eq(strlen(st.application_name), n - vpos - 2);
    }
    free(pkt);
}
END_TEST

/* Buffers shorter than 8 bytes are refused without reading past them. */
START_TEST(test_startup_short_buffer)
{
    size_t n = (size_t)_i;   /* 0..7 */
    uint8_t *pkt = malloc(n ? n : 1);
    pgp_startup_t st;
    const char *why = NULL;

    ck_assert_ptr_nonnull(pkt);
    memset(pkt, 0, n ? n : 1);
    if (n >= 4)
        pgp_put_be32(pkt, (uint32_t)n);
    ck_assert_int_eq(pgp_startup_parse(pkt, n, &st, &why), -1);
    ck_assert_ptr_nonnull(why);
    free(pkt);
}
END_TEST

static const struct {
    uint32_t field;
    uint32_t want;
} startup_length_cases[] = {
    {0, 0},          {4, 0},           {7, 0},      {8, 8},           {9, 9},
    {16, 16},        {9999, 9999},     {10000, 10000}, {10001, 0},    {65544, 0},
    {0x00000800, 2048}, {0x08000000, 0}, {0x80000008u, 0}, {0xffffffffu, 0},
};

START_TEST(test_startup_length)
{
    uint8_t hdr[4];
    pgp_put_be32(hdr, startup_length_cases[_i].field);
    ck_assert_msg(pgp_startup_length(hdr) == startup_length_cases[_i].want,
                  "field %u: got %u, expected %u", startup_length_cases[_i].field,
                  pgp_startup_length(hdr), startup_length_cases[_i].want);
}
END_TEST

/* ------------------------------------------------------------------ */
/* ErrorResponse writer                                                */
/* ------------------------------------------------------------------ */

enum { CAP_ABS, CAP_FULL, CAP_FIXED };

typedef struct err_case {
    const char *name;
    const char *severity, *sqlstate, *message;
    int cap_kind;   /* cap = value, or full size + value, or empty-message size + value */
    long cap;
} err_case_t;

static const err_case_t err_cases[] = {
    {"roomy", "FATAL", "08P01", "invalid length of startup packet", CAP_FULL, 100},
    {"exact fit", "ERROR", "53300", "too many connections", CAP_FULL, 0},
    {"one short: cut by one", "ERROR", "53300", "too many connections", CAP_FULL, -1},
    {"cut to 3 bytes", "FATAL", "57P01", "terminating connection", CAP_FIXED, 3},
    {"cut to empty", "FATAL", "57P01", "terminating connection", CAP_FIXED, 0},
    {"one below empty: 0", "FATAL", "57P01", "terminating connection", CAP_FIXED, -1},
    {"empty message", "ERROR", "XX000", "", CAP_FULL, 10},
    {"empty message exact", "ERROR", "XX000", "", CAP_FULL, 0},
    {"cap 0", "ERROR", "XX000", "m", CAP_ABS, 0},
    {"cap 1", "ERROR", "XX000", "m", CAP_ABS, 1},
    {"cap 5 (header only)", "ERROR", "XX000", "m", CAP_ABS, 5},
    {"cap 20", "ERROR", "XX000", "m", CAP_ABS, 20},
};
#define N_ERR_CASES ((int)(sizeof(err_cases) / sizeof(err_cases[0])))

/* Reads a field tag + C string at *pos, staying inside [0, total). */
static const char *read_field(const uint8_t *buf, size_t total, size_t *pos, char tag)
{
    ck_assert_msg(*pos < total, "field '%c' missing", tag);
    ck_assert_msg(buf[*pos] == (uint8_t)tag, "field '%c' expected, got 0x%02x", tag,
                  buf[*pos]);
    const char *s = (const char *)buf + *pos + 1;
    size_t room = total - *pos - 1;
    size_t n = strnlen(s, room);
    ck_assert_msg(n < room, "field '%c' not terminated", tag);
    *pos += 2 + n;
    return s;
}

START_TEST(test_error_response)
{
    const err_case_t *c = &err_cases[_i];
    size_t sev = strlen(c->severity), code = strlen(c->sqlstate), msg = strlen(c->message);
    size_t fixed = 5 + 2 * (2 + sev) + (2 + code) + 2 + 1;
    size_t full = fixed + msg;
    long capl = c->cap_kind == CAP_ABS ? c->cap
                : c->cap_kind == CAP_FULL ? (long)full + c->cap : (long)fixed + c->cap;
    ck_assert_int_ge(capl, 0);
    size_t cap = (size_t)capl;
    size_t want = cap >= full ? full : cap >= fixed ? cap : 0;
    uint8_t *buf = malloc(cap + 32);
    ck_assert_ptr_nonnull(buf);
    memset(buf, 0xA5, cap + 32);

    size_t n = pgp_proto_error_response(buf, cap, c->severity, c->sqlstate, c->message);
    ck_assert_msg(n == want, "%s: cap %zu: wrote %zu, expected %zu", c->name, cap, n, want);
    for (size_t i = n; i < cap + 32; i++)
        ck_assert_msg(buf[i] == 0xA5, "%s: byte %zu written beyond the result", c->name, i);
    if (n == 0)
        goto out;

    ck_assert_uint_eq(buf[0], PGP_BE_ERROR_RESPONSE);
    ck_assert_uint_eq(pgp_be32(buf + 1), n - 1);
    size_t pos = 5;
    ck_assert_str_eq(read_field(buf, n, &pos, 'S'), c->severity);
    ck_assert_str_eq(read_field(buf, n, &pos, 'V'), c->severity);
    ck_assert_str_eq(read_field(buf, n, &pos, 'C'), c->sqlstate);
    const char *m = read_field(buf, n, &pos, 'M');
    size_t mlen = want - fixed;
    ck_assert_uint_eq(strlen(m), mlen);
    ck_assert(strncmp(m, c->message, mlen) == 0);
    ck_assert_uint_eq(pos, n - 1);
    ck_assert_uint_eq(buf[n - 1], 0);

    /* and the framer reads it as exactly one message */
    {
        rec_t *r = rec_new();
        pgp_framer_t f;
        size_t bad_at;
        pgp_framer_init(&f, 8192);
        ck_assert_int_eq(rec_feed(r, &f, buf, n, &bad_at), PGP_FRAME_OK);
        ck_assert_str_eq(r->err, "");
        ck_assert_uint_eq(r->n_msgs, 1);
        ck_assert_uint_eq(r->msgs[0].type, PGP_BE_ERROR_RESPONSE);
        ck_assert_uint_eq(r->msgs[0].len, n - 1);
        ck_assert(r->msgs[0].ended && pgp_framer_at_boundary(&f));
        free(r);
    }
out:
    free(buf);
}
END_TEST

/* ------------------------------------------------------------------ */
/* CancelRequest writer                                                */
/* ------------------------------------------------------------------ */

typedef struct cancel_case {
    uint32_t key_len;
    int cap_delta;   /* cap = 12 + key_len + cap_delta */
    bool ok;
} cancel_case_t;

static const cancel_case_t cancel_cases[] = {
    {4, 0, true},    {4, 50, true},  {4, -1, false}, {8, 0, true},   {32, 0, true},
    {32, -1, false}, {255, 0, true}, {256, 0, true}, {256, -1, false}, {257, 0, false},
    {257, 100, false}, {1000, 2000, false},
    /* 3.2 keys are 4..256 bytes; what the writer writes, the parser must accept */
    {3, 0, false},   {0, 0, false},
};
#define N_CANCEL_CASES ((int)(sizeof(cancel_cases) / sizeof(cancel_cases[0])))

START_TEST(test_cancel_request)
{
    const cancel_case_t *c = &cancel_cases[_i];
    size_t cap = (size_t)((long)12 + c->key_len + c->cap_delta);
    uint8_t *key = malloc(c->key_len + 1);
    uint8_t *buf = malloc(cap + 16);
    const uint32_t pid = 0x01020304u + (uint32_t)_i;

    ck_assert_ptr_nonnull(key);
    ck_assert_ptr_nonnull(buf);
    for (uint32_t i = 0; i < c->key_len; i++)
        key[i] = (uint8_t)(0xC0 ^ i);
    memset(buf, 0xA5, cap + 16);

    size_t n = pgp_proto_cancel_request(buf, cap, pid, key, c->key_len);
    for (size_t i = n; i < cap + 16; i++)
        ck_assert_msg(buf[i] == 0xA5, "key_len %u: byte %zu written beyond the result",
                      c->key_len, i);
    if (!c->ok) {
        ck_assert_msg(n == 0, "key_len %u cap %zu: wrote %zu bytes, expected 0", c->key_len,
                      cap, n);
        goto out;
    }
    ck_assert_uint_eq(n, 12 + c->key_len);

    pgp_startup_t st;
    const char *why = NULL;
    ck_assert_msg(pgp_startup_parse(buf, n, &st, &why) == 0, "key_len %u: %s", c->key_len,
                  why);
    ck_assert_int_eq(st.kind, PGP_STARTUP_CANCEL_REQUEST);
    ck_assert_uint_eq(st.code, PGP_PROTO_CANCEL_REQUEST_CODE);
    ck_assert_uint_eq(st.cancel_pid, pid);
    ck_assert_uint_eq(st.cancel_key_len, c->key_len);
    ck_assert_mem_eq(st.cancel_key, key, c->key_len);
    ck_assert_uint_eq(pgp_startup_length(buf), n);
out:
    free(buf);
    free(key);
}
END_TEST

/* ------------------------------------------------------------------ */
/* SASL guard: SCRAM-SHA-256-PLUS stripping, the gs2 flag              */
/* ------------------------------------------------------------------ */

#define PLUS "SCRAM-SHA-256-PLUS"
#define SHA "SCRAM-SHA-256"

/* An AuthenticationSASL message offering names (NULL-terminated list); returns owned. */
static uint8_t *sasl_offer(const char *const *names, size_t *len)
{
    size_t n = 9;
    for (const char *const *p = names; *p != NULL; p++)
        n += strlen(*p) + 1;
    n += 1;
    uint8_t *m = malloc(n);
    ck_assert_ptr_nonnull(m);
    m[0] = PGP_BE_AUTHENTICATION;
    pgp_put_be32(m + 1, (uint32_t)(n - 1));
    pgp_put_be32(m + 5, PGP_PROTO_AUTH_SASL);
    size_t at = 9;
    for (const char *const *p = names; *p != NULL; p++) {
        memcpy(m + at, *p, strlen(*p) + 1);
        at += strlen(*p) + 1;
    }
    m[at] = 0;
    *len = n;
    return m;
}

typedef struct strip_case {
    const char *in[6];    /* offered, NULL-terminated */
    const char *out[6];   /* what the client must see */
    bool changed;
} strip_case_t;

static const strip_case_t strip_cases[] = {
    {{PLUS, SHA, NULL}, {SHA, NULL}, true},
    {{SHA, PLUS, NULL}, {SHA, NULL}, true},
    {{PLUS, NULL}, {NULL}, true},
    {{PLUS, PLUS, SHA, NULL}, {SHA, NULL}, true},
    {{"OAUTHBEARER", PLUS, "X-FUTURE", NULL}, {"OAUTHBEARER", "X-FUTURE", NULL}, true},
    {{SHA, NULL}, {SHA, NULL}, false},
    {{NULL}, {NULL}, false},
    {{"SCRAM-SHA-256-PLUSX", SHA, NULL}, {"SCRAM-SHA-256-PLUSX", SHA, NULL}, false},
    {{"SCRAM-SHA-256-PLU", "scram-sha-256-plus", NULL},
     {"SCRAM-SHA-256-PLU", "scram-sha-256-plus", NULL}, false},
    {{"SCRAM-SHA-512-PLUS", NULL}, {"SCRAM-SHA-512-PLUS", NULL}, false},
};
#define N_STRIP_CASES ((int)(sizeof(strip_cases) / sizeof(strip_cases[0])))

START_TEST(test_strip_scram_plus)
{
    const strip_case_t *c = &strip_cases[_i];
    size_t len, want_len;
    uint8_t *msg = sasl_offer(c->in, &len);
    uint8_t *want = sasl_offer(c->out, &want_len);
    size_t got = pgp_proto_strip_scram_plus(msg, len);
    ck_assert_uint_eq(got, want_len);
    ck_assert_uint_eq(got == len, !c->changed);
    ck_assert_mem_eq(msg, want, want_len);   /* type, fixed length field, code, names */
    ck_assert_uint_eq(pgp_be32(msg + 1), got - 1);
    /* stripping is idempotent */
    ck_assert_uint_eq(pgp_proto_strip_scram_plus(msg, got), got);
    ck_assert_mem_eq(msg, want, want_len);
    /* and the result frames as one whole message */
    pgp_framer_t f;
    pgp_framer_init(&f, 1024);
    ck_assert_int_eq(pgp_framer_feed(&f, msg, got, NULL, NULL, NULL), PGP_FRAME_OK);
    ck_assert_uint_eq(f.msg_count, 1);
    ck_assert(pgp_framer_at_boundary(&f));
    free(msg);
    free(want);
}
END_TEST

/* Messages that must come back untouched: other messages, other codes, broken offers. */
typedef struct keep_case {
    const char *what;
    const char *bytes;
    size_t len;
} keep_case_t;

static const keep_case_t keep_cases[] = {
    {"empty", "", 0},
    {"header only", "R\x00\x00\x00\x04", 5},
    {"AuthenticationOk", "R\x00\x00\x00\x08\x00\x00\x00\x00", 9},
    {"AuthenticationMD5Password", "R\x00\x00\x00\x0c\x00\x00\x00\x05salt", 13},
    {"AuthenticationSASLContinue naming PLUS",
     "R\x00\x00\x00\x1c\x00\x00\x00\x0b" PLUS "\x00\x00", 29},
    {"AuthenticationSASLFinal naming PLUS",
     "R\x00\x00\x00\x1c\x00\x00\x00\x0c" PLUS "\x00\x00", 29},
    {"ErrorResponse with SASL's bytes", "E\x00\x00\x00\x1c\x00\x00\x00\x0a" PLUS "\x00\x00",
     29},
    {"length field too large", "R\x00\x00\x00\x1d\x00\x00\x00\x0a" PLUS "\x00\x00", 29},
    {"length field too small", "R\x00\x00\x00\x1b\x00\x00\x00\x0a" PLUS "\x00\x00", 29},
    {"SASL without names", "R\x00\x00\x00\x08\x00\x00\x00\x0a", 9},
    {"name not terminated", "R\x00\x00\x00\x20\x00\x00\x00\x0a" PLUS "\x00SCRAM", 33},
    {"PLUS alone, list not terminated", "R\x00\x00\x00\x1b\x00\x00\x00\x0a" PLUS "\x00", 28},
    /* after a PLUS was seen: the rest does not parse, nothing may have moved */
    {"list not terminated after PLUS",
     "R\x00\x00\x00\x29\x00\x00\x00\x0a" PLUS "\x00" SHA "\x00", 42},
    {"bytes after the list",
     "R\x00\x00\x00\x2b\x00\x00\x00\x0a" PLUS "\x00" SHA "\x00\x00x", 44},
    {"unterminated name after PLUS",
     "R\x00\x00\x00\x28\x00\x00\x00\x0a" PLUS "\x00" SHA, 41},
};
#define N_KEEP_CASES ((int)(sizeof(keep_cases) / sizeof(keep_cases[0])))

START_TEST(test_strip_scram_plus_keeps)
{
    const keep_case_t *c = &keep_cases[_i];
    uint8_t *msg = malloc(c->len ? c->len : 1);   /* exact size: ASan sees overreads */
    ck_assert_ptr_nonnull(msg);
    memcpy(msg, c->bytes, c->len);
    size_t got = pgp_proto_strip_scram_plus(msg, c->len);
    ck_assert_msg(got == c->len, "%s: returned %zu of %zu", c->what, got, c->len);
    ck_assert_msg(memcmp(msg, c->bytes, c->len) == 0, "%s: bytes changed", c->what);
    free(msg);
}
END_TEST

/* Every prefix of an offer containing PLUS: only the whole message is rewritten. */
START_TEST(test_strip_scram_plus_prefixes)
{
    static const char *const names[] = {PLUS, SHA, "X", NULL};
    size_t len;
    uint8_t *full = sasl_offer(names, &len);
    for (size_t k = 0; k < len; k++) {
        uint8_t *msg = malloc(k ? k : 1);
        ck_assert_ptr_nonnull(msg);
        memcpy(msg, full, k);
        if (k >= 5)
            pgp_put_be32(msg + 1, (uint32_t)(k - 1));   /* consistent length, cut list */
        uint8_t *orig = malloc(k ? k : 1);
        ck_assert_ptr_nonnull(orig);
        memcpy(orig, msg, k);
        ck_assert_uint_eq(pgp_proto_strip_scram_plus(msg, k), k);
        ck_assert_msg(k == 0 || memcmp(msg, orig, k) == 0, "prefix %zu of %zu changed", k,
                      len);
        free(msg);
        free(orig);
    }
    ck_assert_uint_eq(pgp_proto_strip_scram_plus(full, len), len - sizeof(PLUS));
    free(full);
}
END_TEST

/* A SASLInitialResponse body: mechanism, NUL, int32 length, client-first-message. */
static uint8_t *sasl_initial(const char *mech, int32_t n_field, const char *data, size_t *len)
{
    size_t ml = strlen(mech) + 1, dl = strlen(data);
    *len = ml + 4 + dl;
    uint8_t *b = malloc(*len);
    ck_assert_ptr_nonnull(b);
    memcpy(b, mech, ml);
    pgp_put_be32(b + ml, (uint32_t)n_field);
    memcpy(b + ml + 4, data, dl);
    return b;
}

typedef struct gs2_case {
    const char *mech;
    int32_t n_field;   /* -2: the data's length */
    const char *data;
    int flag;
} gs2_case_t;

static const gs2_case_t gs2_cases[] = {
    {SHA, -2, "y,,n=,r=rOprNGfwEbeRWgbNEkqO", 'y'},
    {SHA, -2, "n,,n=,r=rOprNGfwEbeRWgbNEkqO", 'n'},
    {PLUS, -2, "p=tls-server-end-point,,n=,r=rOprNGfwEbeRWgbNEkqO", 'p'},
    {SHA, -2, "y", 'y'},
    {"", -2, "n,,n=,r=x", 'n'},
    {SHA, -2, "x,,n=,r=x", 0},
    {SHA, -2, "Y,,n=,r=x", 0},
    {SHA, -2, ",,n=,r=x", 0},
    {SHA, -2, "", 0},
    {SHA, -1, "", 0},   /* no initial response */
};
#define N_GS2_CASES ((int)(sizeof(gs2_cases) / sizeof(gs2_cases[0])))

START_TEST(test_sasl_gs2_flag)
{
    const gs2_case_t *c = &gs2_cases[_i];
    size_t len;
    int32_t nf = c->n_field == -2 ? (int32_t)strlen(c->data) : c->n_field;
    uint8_t *full = sasl_initial(c->mech, nf, c->data, &len);
    size_t flag_at = strlen(c->mech) + 1 + 4;
    /* every prefix: 0 until the flag byte is in, then the flag */
    for (size_t k = 0; k <= len; k++) {
        uint8_t *b = malloc(k ? k : 1);   /* exact size: ASan sees overreads */
        ck_assert_ptr_nonnull(b);
        memcpy(b, full, k);
        int want = k > flag_at ? c->flag : 0;
        ck_assert_msg(pgp_proto_sasl_gs2_flag(b, k) == want, "case %d prefix %zu: %d, want %d",
                      _i, k, pgp_proto_sasl_gs2_flag(b, k), want);
        free(b);
    }
    free(full);
}
END_TEST

START_TEST(test_sasl_gs2_flag_garbage)
{
    static const struct {
        const char *bytes;
        size_t len;
    } g[] = {
        {"", 0},
        {"SCRAM-SHA-256", 13},             /* no NUL */
        {"y,,n=,r=abc", 11},               /* no mechanism */
        {"\x00\x00\x00\x00", 4},           /* the flag would be the 5th byte */
        {"\x00\x00\x00\x00\x00\x00", 6},   /* NUL where the flag goes */
        {"\x00\xff\xff\xff\xff\x00", 6},
    };
    for (size_t i = 0; i < sizeof(g) / sizeof(g[0]); i++) {
        uint8_t *b = malloc(g[i].len ? g[i].len : 1);
        ck_assert_ptr_nonnull(b);
        memcpy(b, g[i].bytes, g[i].len);
        ck_assert_msg(pgp_proto_sasl_gs2_flag(b, g[i].len) == 0, "garbage %zu", i);
        free(b);
    }
}
END_TEST

static Suite *proto_suite(void)
{
    Suite *s = suite_create("proto");

    TCase *tc = tcase_create("framing");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_frame_every_split, 0, N_STREAM_CASES);
    tcase_add_loop_test(tc, test_frame_byte_by_byte, 0, N_STREAM_CASES);
    tcase_add_loop_test(tc, test_frame_random_pieces, 0, N_STREAM_CASES);
    tcase_add_loop_test(tc, test_frame_without_observer, 0, N_STREAM_CASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("length_guard");
    tcase_add_loop_test(tc, test_frame_length_guard, 0, 2 * N_GUARD_CASES);
    tcase_add_test(tc, test_frame_poison_sticks);
    suite_add_tcase(s, tc);

    tc = tcase_create("startup");
    tcase_add_loop_test(tc, test_startup_parse, 0, N_STARTUP_CASES);
    tcase_add_loop_test(tc, test_startup_size_limit, 0, 3);
    tcase_add_loop_test(tc, test_startup_short_buffer, 0, 8);
    tcase_add_loop_test(tc, test_startup_length, 0,
                        (int)(sizeof(startup_length_cases) / sizeof(startup_length_cases[0])));
    suite_add_tcase(s, tc);

    tc = tcase_create("writers");
    tcase_add_loop_test(tc, test_error_response, 0, N_ERR_CASES);
    tcase_add_loop_test(tc, test_cancel_request, 0, N_CANCEL_CASES);
    suite_add_tcase(s, tc);

    tc = tcase_create("sasl_guard");
    tcase_add_loop_test(tc, test_strip_scram_plus, 0, N_STRIP_CASES);
    tcase_add_loop_test(tc, test_strip_scram_plus_keeps, 0, N_KEEP_CASES);
    tcase_add_test(tc, test_strip_scram_plus_prefixes);
    tcase_add_loop_test(tc, test_sasl_gs2_flag, 0, N_GS2_CASES);
    tcase_add_test(tc, test_sasl_gs2_flag_garbage);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(proto_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
