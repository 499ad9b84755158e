/*
 * test_authguard.c - unit tests for pgproxy/authguard.c, the guard on
 * authentication over a TLS upstream.
 *
 * Server side: streams built here from real authentication exchanges
 * (SCRAM, trust, md5, a failed login) are fed the way session.c feeds
 * them: in pieces (every two-piece split, 1-byte pieces, pseudo-random
 * pieces), with output buffers from 1 byte to a relay chunk, the bytes
 * the guard leaves unconsumed after it ends relayed unchanged.  After
 * every piece the bytes relayed so far are compared with ground truth
 * computed by the builder (SCRAM-SHA-256-PLUS removed, everything else
 * identical), so output held back by the guard fails as well as wrong
 * output.  Length fields < 4 or over the maximum must fail.
 *
 * Client side: the client's messages go through the real framer
 * (proto.c) into the guard's callbacks, split at every point, to check
 * when a client asking for channel binding is refused and when not.
 * No libuv, no sockets.
 */
#include "pgproxy/authguard.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------ */
/* Stream builder                                                      */
/* ------------------------------------------------------------------ */

/*
 * check records every passing assertion (a write per call): in the hot
 * loops below only failures go through it.
 */
#define REQUIRE(cond, ...)                    \
    do {                                      \
        if (!(cond))                          \
            ck_abort_msg(__VA_ARGS__);        \
    } while (0)

#define STREAM_CAP (40u * 1024u)
#define STREAM_MAX_MSGS 32
#define RELAY_CHUNK_BYTES (64u * 1024u)   /* session.c's PGP_CHUNK_BYTES */

typedef struct stream {
    uint8_t in[STREAM_CAP];        /* what the server sends */
    size_t in_len;
    uint8_t out[STREAM_CAP];       /* what the client must receive */
    size_t out_len;
    size_t in_end[STREAM_MAX_MSGS];    /* end offset of each message in `in` */
    size_t out_end[STREAM_MAX_MSGS];   /* ... and of its rewritten form in `out` */
    size_t n_msgs;
    size_t guard_end;              /* offset in `in` where the guard ends; SIZE_MAX: never */
    uint8_t body[STREAM_CAP];      /* body of the message under construction */
    size_t body_len;
} stream_t;

static stream_t *stream_new(void)
{
    stream_t *s = calloc(1, sizeof(*s));
    REQUIRE(s != NULL, "out of memory");
    s->guard_end = SIZE_MAX;
    return s;
}

static void body_bytes(stream_t *s, const void *p, size_t n)
{
    REQUIRE(s->body_len + n <= sizeof(s->body), "body too long");
    memcpy(s->body + s->body_len, p, n);
    s->body_len += n;
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

static void put_msg(uint8_t *dst, size_t *len, uint8_t type, const uint8_t *body, size_t n)
{
    REQUIRE(*len + 5 + n <= STREAM_CAP, "stream too long");
    dst[*len] = type;
    pgp_put_be32(dst + *len + 1, (uint32_t)(4 + n));
    memcpy(dst + *len + 5, body, n);
    *len += 5 + n;
}

/*
 * Append the message under construction; the client must get it as is,
 * or as `type` + `rewritten` when that is not NULL.  ends_guard: the
 * guard stops after it.
 */
static void stream_emit_as(stream_t *s, uint8_t type, const uint8_t *rewritten,
                           size_t rewritten_len, bool ends_guard)
{
    REQUIRE(s->n_msgs < STREAM_MAX_MSGS, "too many messages");
    put_msg(s->in, &s->in_len, type, s->body, s->body_len);
    if (s->guard_end != SIZE_MAX)
        put_msg(s->out, &s->out_len, type, s->body, s->body_len);
    else if (rewritten != NULL)
        put_msg(s->out, &s->out_len, type, rewritten, rewritten_len);
    else
        put_msg(s->out, &s->out_len, type, s->body, s->body_len);
    s->in_end[s->n_msgs] = s->in_len;
    s->out_end[s->n_msgs] = s->out_len;
    s->n_msgs++;
    if (ends_guard && s->guard_end == SIZE_MAX)
        s->guard_end = s->in_len;
    s->body_len = 0;
}

static void stream_emit(stream_t *s, uint8_t type)
{
    stream_emit_as(s, type, NULL, 0, false);
}

/* AuthenticationSASL offering `mechs`; the client must see `expect` (NULL-terminated lists). */
static void emit_sasl(stream_t *s, const char *const *mechs, const char *const *expect)
{
    uint8_t want[256];
    size_t want_len = 0;
    pgp_put_be32(want, PGP_PROTO_AUTH_SASL);
    want_len = 4;
    for (size_t i = 0; expect[i] != NULL; i++) {
        size_t n = strlen(expect[i]) + 1;
        memcpy(want + want_len, expect[i], n);
        want_len += n;
    }
    want[want_len++] = 0;
    body_be32(s, PGP_PROTO_AUTH_SASL);
    for (size_t i = 0; mechs[i] != NULL; i++)
        body_cstr(s, mechs[i]);
    body_bytes(s, "", 1);
    stream_emit_as(s, PGP_BE_AUTHENTICATION, want, want_len, false);
}

static void emit_auth(stream_t *s, uint32_t code, const char *data)
{
    body_be32(s, code);
    if (data != NULL)
        body_bytes(s, data, strlen(data));
    stream_emit_as(s, PGP_BE_AUTHENTICATION, NULL, 0, code == PGP_PROTO_AUTH_OK);
}

static void emit_error(stream_t *s, const char *sqlstate, const char *message)
{
    body_bytes(s, "S", 1);
    body_cstr(s, "FATAL");
    body_bytes(s, "V", 1);
    body_cstr(s, "FATAL");
    body_bytes(s, "C", 1);
    body_cstr(s, sqlstate);
    body_bytes(s, "M", 1);
    body_cstr(s, message);
    body_bytes(s, "", 1);
    stream_emit_as(s, PGP_BE_ERROR_RESPONSE, NULL, 0, true);
}

/* What follows AuthenticationOk: ParameterStatus x3, BackendKeyData, ReadyForQuery. */
static void emit_after_ok(stream_t *s)
{
    static const char *const params[][2] = {
        {"server_version", "17.2"}, {"client_encoding", "UTF8"}, {"TimeZone", "Etc/UTC"}};
    for (size_t i = 0; i < 3; i++) {
        body_cstr(s, params[i][0]);
        body_cstr(s, params[i][1]);
        stream_emit(s, PGP_BE_PARAMETER_STATUS);
    }
    body_be32(s, 4242);
    body_be32(s, 0xdeadbeefu);
    stream_emit(s, PGP_BE_BACKEND_KEY_DATA);
    body_bytes(s, "I", 1);
    stream_emit(s, PGP_BE_READY_FOR_QUERY);
}

static const char *const MECHS_BOTH[] = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", NULL};
static const char *const MECHS_PLAIN[] = {"SCRAM-SHA-256", NULL};

/* The SCRAM exchange of a PostgreSQL 17 server over TLS, then the session's start. */
static void build_scram(stream_t *s)
{
    emit_sasl(s, MECHS_BOTH, MECHS_PLAIN);
    emit_auth(s, 11, "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096");
    emit_auth(s, 12, "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
    emit_auth(s, PGP_PROTO_AUTH_OK, NULL);
    emit_after_ok(s);
}

/* SCRAM with a wrong password: the server's FATAL ends the guard; the server closes. */
static void build_scram_failed(stream_t *s)
{
    emit_sasl(s, MECHS_BOTH, MECHS_PLAIN);
    emit_auth(s, 11, "r=abc,s=QSXCR+Q6sek8bf92,i=4096");
    emit_error(s, "28P01", "password authentication failed for user \"app\"");
    /* Bytes a confused server might still send: they must pass unchanged. */
    emit_sasl(s, MECHS_BOTH, MECHS_BOTH);
}

/* trust: AuthenticationOk first. */
static void build_trust(stream_t *s)
{
    emit_auth(s, PGP_PROTO_AUTH_OK, NULL);
    emit_after_ok(s);
}

/* md5 with a NoticeResponse of the largest size accepted in between. */
static void build_md5_big_notice(stream_t *s)
{
    static char text[PGP_AUTHGUARD_MESSAGE_MAX_BYTES];
    emit_auth(s, 5, "\x01\x02\x03\x04");
    /* 1 + 4 + "S" "WARNING\0" "M" text "\0" "\0" = the maximum. */
    size_t fixed = 1 + 4 + 1 + 8 + 1 + 1 + 1;
    size_t n = PGP_AUTHGUARD_MESSAGE_MAX_BYTES - fixed;
    memset(text, 'w', n);
    text[n] = '\0';
    body_bytes(s, "S", 1);
    body_cstr(s, "WARNING");
    body_bytes(s, "M", 1);
    body_cstr(s, text);
    body_bytes(s, "", 1);
    stream_emit(s, PGP_BE_NOTICE_RESPONSE);
    ck_assert_uint_eq(s->in_end[1] - s->in_end[0], PGP_AUTHGUARD_MESSAGE_MAX_BYTES);
    emit_auth(s, PGP_PROTO_AUTH_OK, NULL);
    emit_after_ok(s);
}

/* SASL only, the exchange still running (the guard must stay on). */
static void build_sasl_only(stream_t *s)
{
    emit_sasl(s, MECHS_BOTH, MECHS_PLAIN);
    emit_sasl(s, (const char *const[]){"SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", NULL},
              MECHS_PLAIN);
    emit_sasl(s, (const char *const[]){"SCRAM-SHA-256-PLUS", NULL},
              (const char *const[]){NULL});
    emit_auth(s, 11, "r=x");
}

typedef struct stream_case {
    const char *name;
    void (*build)(stream_t *s);
    bool all_splits;   /* every two-piece split (small streams only) */
} stream_case_t;

static const stream_case_t stream_cases[] = {
    {"scram", build_scram, true},
    {"scram_failed", build_scram_failed, true},
    {"trust", build_trust, true},
    {"md5_big_notice", build_md5_big_notice, false},
    {"sasl_only", build_sasl_only, true},
};
#define N_STREAM_CASES ((int)(sizeof(stream_cases) / sizeof(stream_cases[0])))

/* Output buffer sizes, as a session's relay chunk and far below a message. */
static const size_t caps[] = {RELAY_CHUNK_BYTES, PGP_AUTHGUARD_MESSAGE_MAX_BYTES, 100, 13, 7, 2, 1};
#define N_CAPS ((int)(sizeof(caps) / sizeof(caps[0])))

/* ------------------------------------------------------------------ */
/* Driver: what session.c does with each read                          */
/* ------------------------------------------------------------------ */

typedef struct relay {
    pgp_authguard_t g;
    uint8_t *sent;          /* every byte the client got */
    size_t sent_len;
    size_t checked;         /* sent bytes already compared with the expected ones */
    size_t fed;             /* input bytes fed so far */
    size_t guarded;         /* input bytes the guard consumed */
    size_t cap;
    size_t prefill;         /* bytes already in each output buffer before the call */
} relay_t;

static void relay_init(relay_t *r, size_t cap)
{
    memset(r, 0, sizeof(*r));
    r->sent = malloc(STREAM_CAP);
    REQUIRE(r->sent != NULL, "out of memory");
    r->cap = cap;
    pgp_authguard_start(&r->g);
}

static void relay_free(relay_t *r)
{
    pgp_authguard_free(&r->g);
    pgp_authguard_free(&r->g);   /* idempotent */
    REQUIRE(!pgp_authguard_active(&r->g), "active after free");
    free(r->sent);
}

static void relay_send(relay_t *r, const uint8_t *p, size_t n)
{
    REQUIRE(r->sent_len + n <= STREAM_CAP, "client stream too long");
    memcpy(r->sent + r->sent_len, p, n);
    r->sent_len += n;
}

/* One read of n bytes; returns 0 or the guard's error. */
static ptrdiff_t relay_read(relay_t *r, const uint8_t *in, size_t n)
{
    /* Exactly cap bytes on the heap: ASan sees a write past cap. */
    uint8_t *out = malloc(r->cap);
    REQUIRE(out != NULL, "out of memory");
    size_t pos = 0;
    r->fed += n;
    while (pos < n && pgp_authguard_active(&r->g)) {
        size_t out_len = r->prefill < r->cap ? r->prefill : 0;
        memset(out, 0xA5, out_len);
        ptrdiff_t k = pgp_authguard_server(&r->g, in + pos, n - pos, out, r->cap, &out_len);
        if (k < 0) {
            free(out);
            return k;
        }
        size_t pre = r->prefill < r->cap ? r->prefill : 0;
        for (size_t i = 0; i < pre; i++)
            REQUIRE(out[i] == 0xA5, "bytes before *out_len changed");
        REQUIRE((size_t)k <= n - pos, "consumed %td of %zu", k, n - pos);
        REQUIRE(out_len <= r->cap, "out_len %zu past cap %zu", out_len, r->cap);
        REQUIRE(k > 0 || out_len > pre, "no progress");
        /* Short of n while still active: only because out is full. */
        REQUIRE((size_t)k == n - pos || !pgp_authguard_active(&r->g) || out_len == r->cap,
                "stopped short with room left");
        relay_send(r, out + pre, out_len - pre);
        pos += (size_t)k;
        r->guarded += (size_t)k;
    }
    relay_send(r, in + pos, n - pos);   /* after the guard: unchanged */
    free(out);
    return 0;
}

/* What the client must have received once the first `fed` bytes were read. */
static size_t expected_sent(const stream_t *s, size_t fed)
{
    if (fed >= s->guard_end) {
        size_t i = 0;
        while (s->in_end[i] != s->guard_end)
            i++;
        return s->out_end[i] + (fed - s->guard_end);
    }
    size_t n = 0;
    for (size_t i = 0; i < s->n_msgs && s->in_end[i] <= fed; i++)
        n = s->out_end[i];
    return n;
}

static void relay_check(relay_t *r, const stream_t *s, const char *what)
{
    size_t want = expected_sent(s, r->fed);
    REQUIRE(r->sent_len == want, "%s: after %zu bytes the client got %zu, want %zu", what,
            r->fed, r->sent_len, want);
    REQUIRE(memcmp(r->sent + r->checked, s->out + r->checked, want - r->checked) == 0,
            "%s: wrong bytes after %zu", what, r->fed);
    r->checked = want;
    bool ended = r->fed >= s->guard_end;
    REQUIRE(pgp_authguard_active(&r->g) == !ended, "%s: active after %zu bytes", what, r->fed);
    REQUIRE(r->guarded == (ended ? s->guard_end : r->fed), "%s: guard consumed %zu of %zu", what,
            r->guarded, r->fed);
}

/* Feed the stream in pieces; `cut` lists piece ends (strictly increasing, the last = in_len). */
static void run_pieces(const stream_t *s, size_t cap, size_t prefill, const size_t *cut,
                       size_t n_cut, const char *what)
{
    relay_t r;
    relay_init(&r, cap);
    r.prefill = prefill;
    size_t from = 0;
    for (size_t i = 0; i < n_cut; i++) {
        REQUIRE(relay_read(&r, s->in + from, cut[i] - from) == 0, "%s: guard error", what);
        relay_check(&r, s, what);
        from = cut[i];
    }
    REQUIRE(from == s->in_len, "pieces do not cover the stream");
    relay_free(&r);
}

/* ------------------------------------------------------------------ */
/* Server side                                                         */
/* ------------------------------------------------------------------ */

START_TEST(test_server_every_split)
{
    const stream_case_t *c = &stream_cases[_i / N_CAPS];
    size_t cap = caps[_i % N_CAPS];
    stream_t *s = stream_new();
    c->build(s);
    char what[96];
    snprintf(what, sizeof(what), "%s cap %zu", c->name, cap);
    if (c->all_splits) {
        for (size_t at = 0; at <= s->in_len; at++) {
            size_t cut[2] = {at, s->in_len};
            if (at == 0 || at == s->in_len)
                run_pieces(s, cap, 0, cut + 1, 1, what);
            else
                run_pieces(s, cap, 0, cut, 2, what);
        }
    } else {
        /* Splits around every message boundary. */
        for (size_t m = 0; m < s->n_msgs; m++)
            for (size_t d = 0; d < 7; d++) {
                size_t at = s->in_end[m] + d >= 3 ? s->in_end[m] + d - 3 : 0;
                if (at == 0 || at >= s->in_len)
                    continue;
                size_t cut[2] = {at, s->in_len};
                run_pieces(s, cap, 0, cut, 2, what);
            }
    }
    free(s);
}
END_TEST

START_TEST(test_server_byte_by_byte)
{
    const stream_case_t *c = &stream_cases[_i / N_CAPS];
    size_t cap = caps[_i % N_CAPS];
    stream_t *s = stream_new();
    c->build(s);
    size_t *cut = malloc(s->in_len * sizeof(*cut));
    ck_assert_ptr_nonnull(cut);
    for (size_t i = 0; i < s->in_len; i++)
        cut[i] = i + 1;
    char what[96];
    snprintf(what, sizeof(what), "%s bytewise cap %zu", c->name, cap);
    run_pieces(s, cap, 0, cut, s->in_len, what);
    free(cut);
    free(s);
}
END_TEST

START_TEST(test_server_random_pieces)
{
    const stream_case_t *c = &stream_cases[_i];
    stream_t *s = stream_new();
    c->build(s);
    size_t *cut = malloc(s->in_len * sizeof(*cut));
    ck_assert_ptr_nonnull(cut);
    uint32_t seed = 2463534242u + (uint32_t)_i;
    for (int round = 0; round < 200; round++) {
        size_t n = 0, at = 0;
        while (at < s->in_len) {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            at += 1 + seed % 97;
            cut[n++] = at < s->in_len ? at : s->in_len;
        }
        size_t cap = 1 + (seed >> 8) % 300;
        size_t prefill = round % 3 == 0 ? (seed >> 4) % 5 : 0;   /* *out_len starts > 0 */
        char what[96];
        snprintf(what, sizeof(what), "%s random round %d cap %zu prefill %zu", c->name, round,
                 cap, prefill);
        run_pieces(s, cap + prefill, prefill, cut, n, what);
    }
    free(cut);
    free(s);
}
END_TEST

/* A tiny out buffer: partial consumption, one call at a time, by hand. */
START_TEST(test_server_tiny_cap_by_hand)
{
    stream_t *s = stream_new();
    build_trust(s);   /* AuthenticationOk (9 bytes) first */
    pgp_authguard_t g = {0};
    pgp_authguard_start(&g);
    uint8_t out[4];
    size_t out_len = 0;
    /* 4 of AuthenticationOk's 9 bytes fit: none of the input is done with. */
    ptrdiff_t k = pgp_authguard_server(&g, s->in, s->in_len, out, sizeof(out), &out_len);
    ck_assert_int_eq(k, 8);   /* the message's last byte waits for the rest of it to go out */
    ck_assert_uint_eq(out_len, 4);
    ck_assert_mem_eq(out, s->in, 4);
    ck_assert(pgp_authguard_active(&g));
    /* No room at all: nothing happens. */
    k = pgp_authguard_server(&g, s->in + 8, s->in_len - 8, out, sizeof(out), &out_len);
    ck_assert_int_eq(k, 0);
    ck_assert_uint_eq(out_len, 4);
    out_len = 0;
    k = pgp_authguard_server(&g, s->in + 8, s->in_len - 8, out, sizeof(out), &out_len);
    ck_assert_int_eq(k, 0);
    ck_assert_uint_eq(out_len, 4);
    ck_assert_mem_eq(out, s->in + 4, 4);
    ck_assert(pgp_authguard_active(&g));
    /* The rest goes out even with no input, but the held byte is only consumed when passed. */
    out_len = 0;
    k = pgp_authguard_server(&g, s->in + 8, 0, out, sizeof(out), &out_len);
    ck_assert_int_eq(k, 0);
    ck_assert_uint_eq(out_len, 1);
    ck_assert_uint_eq(out[0], s->in[8]);
    ck_assert(pgp_authguard_active(&g));
    out_len = 0;
    k = pgp_authguard_server(&g, s->in + 8, s->in_len - 8, out, sizeof(out), &out_len);
    ck_assert_int_eq(k, 1);   /* the last byte; what follows is not the guard's */
    ck_assert_uint_eq(out_len, 0);
    ck_assert(!pgp_authguard_active(&g));
    ck_assert_ptr_null(g.msg);   /* the buffer goes with the guard */
    /* Inactive: consumes nothing. */
    out_len = 0;
    k = pgp_authguard_server(&g, s->in + 9, s->in_len - 9, out, sizeof(out), &out_len);
    ck_assert_int_eq(k, 0);
    ck_assert_uint_eq(out_len, 0);
    pgp_authguard_free(&g);
    free(s);
}
END_TEST

/* Length fields the guard must refuse, and the largest it accepts. */
static const struct {
    uint32_t len;
    bool ok;
} length_cases[] = {
    {0, false},
    {3, false},
    {4, true},
    {PGP_AUTHGUARD_MESSAGE_MAX_BYTES - 1, true},
    {PGP_AUTHGUARD_MESSAGE_MAX_BYTES, false},
    {1u << 20, false},
    {0x7fffffffu, false},
    {0xffffffffu, false},
};
#define N_LENGTH_CASES ((int)(sizeof(length_cases) / sizeof(length_cases[0])))

START_TEST(test_server_length_guard)
{
    uint32_t len = length_cases[_i / 2].len;
    bool ok = length_cases[_i / 2].ok;
    bool after_sasl = _i % 2 == 1;   /* the bad header follows a good message in the same read */
    stream_t *s = stream_new();
    if (after_sasl)
        emit_sasl(s, MECHS_BOTH, MECHS_PLAIN);
    size_t hdr_at = s->in_len;
    /* A NoticeResponse with that length field (the body only if it is accepted). */
    s->in[s->in_len] = PGP_BE_NOTICE_RESPONSE;
    pgp_put_be32(s->in + s->in_len + 1, len);
    s->in_len += 5;
    if (ok) {
        memset(s->in + s->in_len, 'x', len - 4);
        s->in_len += len - 4;
    }

    /* Whole, and split just before, inside and just after the header. */
    for (size_t at = hdr_at; at <= hdr_at + 5; at++) {
        pgp_authguard_t g = {0};
        pgp_authguard_start(&g);
        uint8_t *out = malloc(RELAY_CHUNK_BYTES);
        ck_assert_ptr_nonnull(out);
        size_t out_len = 0;
        ptrdiff_t k = at > 0 ? pgp_authguard_server(&g, s->in, at, out, RELAY_CHUNK_BYTES,
                                                    &out_len)
                             : 0;
        if (at < hdr_at + 5) {
            ck_assert_int_eq(k, (ptrdiff_t)at);   /* not known yet */
            ck_assert_uint_eq(out_len, after_sasl && at >= hdr_at ? s->out_len : 0);
            k = pgp_authguard_server(&g, s->in + at, s->in_len - at, out, RELAY_CHUNK_BYTES,
                                     &out_len);
        }
        if (ok) {
            ck_assert_int_ge(k, 0);
            ck_assert(pgp_authguard_active(&g));
        } else {
            /* Refused the moment the header is complete, even at the end of a read. */
            ck_assert_int_eq(k, PGP_AUTHGUARD_EPROTO);
        }
        pgp_authguard_free(&g);
        free(out);
    }
    free(s);
}
END_TEST

/* start drops whatever a previous run left; free may be called any number of times. */
START_TEST(test_server_restart)
{
    stream_t *s = stream_new();
    build_scram(s);
    pgp_authguard_t g = {0};
    pgp_authguard_free(&g);   /* a zeroed guard */
    ck_assert(!pgp_authguard_active(&g));
    pgp_authguard_start(&g);
    uint8_t out[64];
    size_t out_len = 0;
    ptrdiff_t k = pgp_authguard_server(&g, s->in, 7, out, sizeof(out), &out_len);
    ck_assert_int_eq(k, 7);
    ck_assert_uint_eq(out_len, 0);
    pgp_authguard_start(&g);   /* half a message held: dropped */
    relay_t r;
    relay_init(&r, RELAY_CHUNK_BYTES);
    pgp_authguard_free(&r.g);
    r.g = g;
    ck_assert_int_eq(relay_read(&r, s->in, s->in_len), 0);
    relay_check(&r, s, "restarted");
    relay_free(&r);
    free(s);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Client side                                                         */
/* ------------------------------------------------------------------ */

static void cb_begin(void *ud, uint8_t type, uint32_t len)
{
    (void)len;
    pgp_authguard_client_begin(ud, type);
}

static void cb_body(void *ud, const uint8_t *p, size_t n)
{
    pgp_authguard_client_body(ud, p, n);
}

static void cb_end(void *ud, uint8_t type)
{
    (void)type;
    pgp_authguard_client_end(ud);
}

static const pgp_frame_ops_t guard_ops = {cb_begin, cb_body, cb_end};

/* The server's side up to the client's first answer: `offer` SASL or md5. */
static void guard_after_server(pgp_authguard_t *g, bool offer_sasl)
{
    stream_t *s = stream_new();
    if (offer_sasl)
        emit_sasl(s, MECHS_BOTH, MECHS_PLAIN);
    else
        emit_auth(s, 5, "\x01\x02\x03\x04");
    pgp_authguard_start(g);
    uint8_t out[256];
    size_t out_len = 0;
    REQUIRE(pgp_authguard_server(g, s->in, s->in_len, out, sizeof(out), &out_len) ==
                (ptrdiff_t)s->in_len,
            "server side not consumed");
    REQUIRE(out_len == s->out_len && memcmp(out, s->out, out_len) == 0, "server side rewritten");
    free(s);
}

/* SASLInitialResponse: mechanism, int32 length, client-first-message. */
static size_t sasl_initial(uint8_t *dst, size_t at, const char *mech, const char *first)
{
    stream_t *s = stream_new();
    body_cstr(s, mech);
    body_be32(s, (uint32_t)strlen(first));
    body_bytes(s, first, strlen(first));
    put_msg(dst, &at, PGP_FE_PASSWORD, s->body, s->body_len);
    free(s);
    return at;
}

static size_t password_msg(uint8_t *dst, size_t at, const void *body, size_t n)
{
    put_msg(dst, &at, PGP_FE_PASSWORD, body, n);
    return at;
}

typedef struct client_case {
    const char *name;
    bool offer_sasl;     /* the server sent AuthenticationSASL (else md5) */
    int kind;            /* what the client sends, see build_client */
    bool refused;
} client_case_t;

enum {
    CLIENT_Y,            /* SASLInitialResponse, gs2 'y' */
    CLIENT_N,            /* ... 'n' */
    CLIENT_P,            /* ... 'p=tls-server-end-point' */
    CLIENT_Y_PLUS,       /* 'y' naming the -PLUS mechanism the guard removed */
    CLIENT_N_THEN_Y,     /* 'n', then a SASLResponse whose bytes would read as 'y' */
    CLIENT_MD5_LIKE_Y,   /* a password message whose bytes would read as 'y' */
    CLIENT_LONG_MECH,    /* a mechanism name longer than the probe, then 'y' */
    CLIENT_QUERY_Y_LIKE, /* not a 'p' first, with bytes that would read as 'y'; then 'y' */
};

static const client_case_t client_cases[] = {
    {"sasl y", true, CLIENT_Y, true},
    {"sasl n", true, CLIENT_N, false},
    {"sasl p", true, CLIENT_P, false},
    {"sasl y plus", true, CLIENT_Y_PLUS, true},
    {"sasl n then y-like", true, CLIENT_N_THEN_Y, false},
    {"md5 y-like", false, CLIENT_MD5_LIKE_Y, false},
    {"md5 sasl y", false, CLIENT_Y, false},
    {"long mechanism", true, CLIENT_LONG_MECH, false},
    {"query first", true, CLIENT_QUERY_Y_LIKE, false},
};
#define N_CLIENT_CASES ((int)(sizeof(client_cases) / sizeof(client_cases[0])))

static size_t build_client(uint8_t *buf, int kind)
{
    size_t n = 0;
    switch (kind) {
    case CLIENT_Y:
        return sasl_initial(buf, 0, "SCRAM-SHA-256", "y,,n=,r=rOprNGfwEbeRWgbNEkqO");
    case CLIENT_N:
        return sasl_initial(buf, 0, "SCRAM-SHA-256", "n,,n=,r=rOprNGfwEbeRWgbNEkqO");
    case CLIENT_P:
        return sasl_initial(buf, 0, "SCRAM-SHA-256-PLUS",
                            "p=tls-server-end-point,,n=,r=rOprNGfwEbeRWgbNEkqO");
    case CLIENT_Y_PLUS:
        return sasl_initial(buf, 0, "SCRAM-SHA-256-PLUS", "y,,n=,r=rOprNGfwEbeRWgbNEkqO");
    case CLIENT_N_THEN_Y:
        n = sasl_initial(buf, 0, "SCRAM-SHA-256", "n,,n=,r=rOprNGfwEbeRWgbNEkqO");
        /* SASLResponse bytes shaped like an initial response with 'y'. */
        return sasl_initial(buf, n, "c=biws", "y,,r=rOprNGfwEbeRWgbNEkqO");
    case CLIENT_MD5_LIKE_Y: {
        static const uint8_t body[] = {'m', 0, 0, 0, 0, 9, 'y', ',', ',', 0};
        return password_msg(buf, 0, body, sizeof(body));
    }
    case CLIENT_LONG_MECH: {
        char mech[64];
        memset(mech, 'M', sizeof(mech) - 1);
        mech[sizeof(mech) - 1] = '\0';
        return sasl_initial(buf, 0, mech, "y,,n=,r=rOprNGfwEbeRWgbNEkqO");
    }
    case CLIENT_QUERY_Y_LIKE: {
        static const uint8_t body[] = {'m', 0, 0, 0, 0, 9, 'y', ',', ',', 0};
        put_msg(buf, &n, PGP_FE_QUERY, body, sizeof(body));
        return sasl_initial(buf, n, "SCRAM-SHA-256", "y,,n=,r=rOprNGfwEbeRWgbNEkqO");
    }
    }
    ck_abort_msg("unknown client case");
    return 0;
}

static bool client_refused(const client_case_t *c, const uint8_t *buf, size_t len,
                           const size_t *cut, size_t n_cut)
{
    pgp_authguard_t g = {0};
    pgp_framer_t f;
    guard_after_server(&g, c->offer_sasl);
    pgp_framer_init(&f, 1u << 20);
    size_t from = 0;
    for (size_t i = 0; i < n_cut; i++) {
        REQUIRE(pgp_framer_feed(&f, buf + from, cut[i] - from, &guard_ops, &g, NULL) ==
                    PGP_FRAME_OK,
                "framing");
        from = cut[i];
    }
    REQUIRE(from == len, "pieces do not cover the stream");
    REQUIRE(pgp_framer_at_boundary(&f), "framer not at a boundary");
    bool refused = pgp_authguard_refused(&g);
    pgp_authguard_free(&g);
    return refused;
}

START_TEST(test_client_every_split)
{
    const client_case_t *c = &client_cases[_i];
    uint8_t buf[512];
    size_t len = build_client(buf, c->kind);
    for (size_t at = 0; at <= len; at++) {
        size_t cut[2] = {at, len};
        bool whole = at == 0 || at == len;
        REQUIRE(client_refused(c, buf, len, whole ? cut + 1 : cut, whole ? 1 : 2) == c->refused,
                "%s split at %zu", c->name, at);
    }
    size_t cut[512];
    for (size_t i = 0; i < len; i++)
        cut[i] = i + 1;
    ck_assert_msg(client_refused(c, buf, len, cut, len) == c->refused, "%s bytewise", c->name);
}
END_TEST

/* Before any server bytes (nothing offered) a client 'y' is not refused either. */
START_TEST(test_client_without_offer)
{
    uint8_t buf[512];
    size_t len = build_client(buf, CLIENT_Y);
    pgp_authguard_t g = {0};
    pgp_framer_t f;
    pgp_authguard_start(&g);
    pgp_framer_init(&f, 1u << 20);
    ck_assert_int_eq(pgp_framer_feed(&f, buf, len, &guard_ops, &g, NULL), PGP_FRAME_OK);
    ck_assert(!pgp_authguard_refused(&g));
    pgp_authguard_free(&g);
}
END_TEST

static Suite *authguard_suite(void)
{
    Suite *s = suite_create("authguard");

    TCase *tc = tcase_create("server");
    tcase_set_timeout(tc, 240);
    tcase_add_loop_test(tc, test_server_every_split, 0, N_STREAM_CASES * N_CAPS);
    tcase_add_loop_test(tc, test_server_byte_by_byte, 0, N_STREAM_CASES * N_CAPS);
    tcase_add_loop_test(tc, test_server_random_pieces, 0, N_STREAM_CASES);
    tcase_add_test(tc, test_server_tiny_cap_by_hand);
    tcase_add_loop_test(tc, test_server_length_guard, 0, 2 * N_LENGTH_CASES);
    tcase_add_test(tc, test_server_restart);
    suite_add_tcase(s, tc);

    tc = tcase_create("client");
    tcase_add_loop_test(tc, test_client_every_split, 0, N_CLIENT_CASES);
    tcase_add_test(tc, test_client_without_offer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(authguard_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
