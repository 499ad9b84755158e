/*
 * fuzz_proto.c - libFuzzer target for pgproxy/proto.c.
 *
 * Input layout: byte 0 picks how the stream is cut into pieces, byte 1
 * picks the framer's max_len, the rest is the byte stream.  The stream is
 * framed three ways (one shot, in pieces with a checking observer, in
 * pieces without an observer) and the results are compared with each other
 * and with a tiny reference framer written here.  The same bytes also go
 * through the startup packet parser (as given, and with a correct length
 * prefix written over the first four bytes) and the ErrorResponse writer;
 * strings the parser returns are read to their NUL so ASan sees overreads.
 * The SASL guard's helpers get the bytes too: the SCRAM-SHA-256-PLUS
 * stripper (on the input, and on the input as the name list of an
 * AuthenticationSASL message) and the gs2 flag reader, both compared with
 * reference models written here.  Any disagreement aborts.
 */
#include "pgproxy/proto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                  \
    do {                                                           \
        fprintf(stderr, "fuzz_proto: " __VA_ARGS__);               \
        fputc('\n', stderr);                                       \
        abort();                                                   \
    } while (0)

typedef struct msg {
    uint8_t type;
    uint32_t len;
    size_t body_n;   /* body bytes seen */
    bool ended;
} msg_t;

typedef struct obs {
    msg_t *msgs;
    size_t n_msgs, cap_msgs;
    uint8_t *body;   /* every body byte, in order */
    size_t body_len, body_cap;
    bool open;
    bool dead;       /* the framer returned EBADLEN: no more callbacks */
    size_t n_end;
    uint32_t max_len;
    const uint8_t *chunk;
    size_t chunk_len;
} obs_t;

static void on_obs_begin(void *ud, uint8_t type, uint32_t len)
{
    obs_t *o = ud;
    if (o->dead)
        FAIL("begin after EBADLEN");
    if (o->open)
        FAIL("begin while a message is open");
    if (len < 4 || len > o->max_len)
        FAIL("begin with length %u (max %u)", len, o->max_len);
    if (o->n_msgs == o->cap_msgs)
        FAIL("more messages than the stream can hold");
    o->msgs[o->n_msgs++] = (msg_t){type, len, 0, false};
    o->open = true;
}

static void on_obs_body(void *ud, const uint8_t *p, size_t n)
{
    obs_t *o = ud;
    if (o->dead)
        FAIL("body after EBADLEN");
    if (!o->open)
        FAIL("body outside a message");
    if (n == 0)
        FAIL("empty body fragment");
    if (p < o->chunk || p + n > o->chunk + o->chunk_len)
        FAIL("fragment not borrowed from the chunk");
    msg_t *m = &o->msgs[o->n_msgs - 1];
    if (m->body_n + n > (size_t)m->len - 4)
        FAIL("body longer than the length field");
    if (o->body_len + n > o->body_cap)
        FAIL("more body than stream");
    memcpy(o->body + o->body_len, p, n);
    o->body_len += n;
    m->body_n += n;
}

static void on_obs_end(void *ud, uint8_t type)
{
    obs_t *o = ud;
    if (o->dead)
        FAIL("end after EBADLEN");
    if (!o->open)
        FAIL("end outside a message");
    msg_t *m = &o->msgs[o->n_msgs - 1];
    if (m->type != type)
        FAIL("end type differs from begin type");
    if (m->body_n != (size_t)m->len - 4)
        FAIL("end after %zu of %u body bytes", m->body_n, m->len - 4);
    m->ended = true;
    o->open = false;
    o->n_end++;
}

static const pgp_frame_ops_t obs_ops = {on_obs_begin, on_obs_body, on_obs_end};

static void obs_init(obs_t *o, size_t n, uint32_t max_len)
{
    memset(o, 0, sizeof(*o));
    o->cap_msgs = n / 5 + 1;
    o->msgs = calloc(o->cap_msgs, sizeof(*o->msgs));
    o->body_cap = n;
    o->body = malloc(n ? n : 1);
    o->max_len = max_len;
    if (!o->msgs || !o->body)
        abort();
}

static void obs_free(obs_t *o)
{
    free(o->msgs);
    free(o->body);
}

static void obs_same(const obs_t *a, const obs_t *b, const char *what)
{
    if (a->n_msgs != b->n_msgs || a->n_end != b->n_end || a->open != b->open ||
        a->body_len != b->body_len)
        FAIL("%s: %zu/%zu messages, %zu/%zu ends", what, a->n_msgs, b->n_msgs, a->n_end,
             b->n_end);
    for (size_t i = 0; i < a->n_msgs; i++)
        if (a->msgs[i].type != b->msgs[i].type || a->msgs[i].len != b->msgs[i].len ||
            a->msgs[i].body_n != b->msgs[i].body_n || a->msgs[i].ended != b->msgs[i].ended)
            FAIL("%s: message %zu differs", what, i);
    if (a->body_len && memcmp(a->body, b->body, a->body_len) != 0)
        FAIL("%s: bodies differ", what);
}

/* Piece sizes from a small PRNG seeded by the pattern byte. */
typedef struct cutter {
    uint64_t state;
    uint8_t mode;
    bool cut_done;   /* mode 3: the single cut has been made */
} cutter_t;

static size_t cutter_next(cutter_t *c, size_t left)
{
    c->state ^= c->state << 13;
    c->state ^= c->state >> 7;
    c->state ^= c->state << 17;
    size_t n;
    switch (c->mode & 3) {
    case 0:
        n = 1;
        break;
    case 1:   /* tiny pieces, some empty */
        n = (size_t)(c->state % 7);
        break;
    case 2:   /* up to 2^k */
        n = (size_t)(c->state % ((size_t)1 << ((c->mode >> 2) & 15))) + 1;
        break;
    default:  /* one cut anywhere, then the rest */
        n = c->cut_done ? left : (size_t)(c->state % (left + 1));
        c->cut_done = true;
        break;
    }
    return n < left ? n : left;
}

/*
 * Reference model: walk the headers of a stream.  Sets *bad to the offset
 * of the first invalid header (or SIZE_MAX), returns the number of complete
 * headers before it.
 */
static size_t model_count(const uint8_t *p, size_t n, uint32_t max_len, size_t *bad)
{
    size_t pos = 0, count = 0;
    *bad = SIZE_MAX;
    while (n - pos >= 5) {
        uint32_t len = pgp_be32(p + pos + 1);
        if (len < 4 || len > max_len) {
            *bad = pos;
            break;
        }
        count++;
        if ((uint64_t)len + 1 > n - pos)
            break;
        pos += 1 + (size_t)len;
    }
    return count;
}

static void frame_checks(const uint8_t *s, size_t n, uint8_t pattern, uint32_t max_len)
{
    obs_t one, cut;
    pgp_framer_t f1, f2, f3;
    size_t bad1 = SIZE_MAX, bad_model;

    obs_init(&one, n, max_len);
    obs_init(&cut, n, max_len);

    /* one shot */
    pgp_framer_init(&f1, max_len);
    one.chunk = s;
    one.chunk_len = n;
    int rc1 = pgp_framer_feed(&f1, s, n, &obs_ops, &one, &bad1);
    one.dead = rc1 != PGP_FRAME_OK;
    size_t model_msgs = model_count(s, n, max_len, &bad_model);
    if ((rc1 == PGP_FRAME_EBADLEN) != (bad_model != SIZE_MAX))
        FAIL("one-shot rc %d, model bad at %zu", rc1, bad_model);
    if (rc1 == PGP_FRAME_EBADLEN && bad1 != bad_model)
        FAIL("one-shot bad_at %zu, model %zu", bad1, bad_model);
    if (f1.msg_count != model_msgs || one.n_msgs != model_msgs)
        FAIL("one-shot %zu messages, model %zu", one.n_msgs, model_msgs);

    /* in pieces, with the observer */
    cutter_t c = {0x9e3779b97f4a7c15ull ^ ((uint64_t)pattern << 32) ^ n, pattern, false};
    cutter_t c3 = c;
    pgp_framer_init(&f2, max_len);
    int rc2 = PGP_FRAME_OK;
    size_t pos = 0;
    size_t ended_bytes = 0;   /* stream bytes covered by ended messages */
    size_t seen_ends = 0;
    do {
        size_t k = cutter_next(&c, n - pos);
        size_t bad = SIZE_MAX;
        cut.chunk = s + pos;
        cut.chunk_len = k;
        int rc = pgp_framer_feed(&f2, s + pos, k, &obs_ops, &cut, &bad);
        if (rc2 != PGP_FRAME_OK) {
            if (rc != PGP_FRAME_EBADLEN)
                FAIL("poisoned framer accepted a chunk");
        } else if (rc != PGP_FRAME_OK) {
            rc2 = rc;
            cut.dead = true;
            if (rc1 == PGP_FRAME_OK)
                FAIL("pieces refused what one shot accepted");
            /* refused in the chunk that completes the bad header */
            if (bad1 + 5 > pos + k || bad1 + 5 <= pos)
                FAIL("refused chunk %zu+%zu, bad header at %zu", pos, k, bad1);
            /* bad_at: the header's offset in this chunk, or 0 if it began earlier */
            size_t want = bad1 >= pos ? bad1 - pos : 0;
            if (bad != want)
                FAIL("bad_at %zu, expected %zu (header at %zu, chunk at %zu)", bad, want,
                     bad1, pos);
            if (pgp_framer_at_boundary(&f2))
                FAIL("poisoned framer at a boundary");
        } else {
            /* at a boundary exactly when every byte so far is in ended messages */
            while (seen_ends < cut.n_end) {
                ended_bytes += 1 + (size_t)cut.msgs[seen_ends].len;
                seen_ends++;
            }
            bool want_boundary = !cut.open && ended_bytes == pos + k;
            if (pgp_framer_at_boundary(&f2) != want_boundary)
                FAIL("at_boundary %d after %zu bytes, expected %d",
                     pgp_framer_at_boundary(&f2), pos + k, want_boundary);
            if (f2.msg_count != cut.n_msgs)
                FAIL("msg_count %llu, observer %zu", (unsigned long long)f2.msg_count,
                     cut.n_msgs);
        }
        pos += k;
    } while (pos < n);
    if (rc2 != PGP_FRAME_OK &&
        pgp_framer_feed(&f2, s, n ? 1 : 0, &obs_ops, &cut, NULL) != PGP_FRAME_EBADLEN)
        FAIL("poisoned framer accepted a later chunk");
    if (rc1 != rc2)
        FAIL("one shot rc %d, pieces rc %d", rc1, rc2);
    obs_same(&one, &cut, "one shot vs pieces");
    if (f1.msg_count != f2.msg_count)
        FAIL("msg_count differs");
    if (rc1 == PGP_FRAME_OK && pgp_framer_at_boundary(&f1) != pgp_framer_at_boundary(&f2))
        FAIL("at_boundary differs");

    /* in the same pieces, without an observer */
    pgp_framer_init(&f3, max_len);
    int rc3 = PGP_FRAME_OK;
    for (pos = 0; pos < n;) {
        size_t k = cutter_next(&c3, n - pos);
        int rc = pgp_framer_feed(&f3, s + pos, k, NULL, NULL, NULL);
        if (rc != PGP_FRAME_OK)
            rc3 = rc;
        else if (rc3 != PGP_FRAME_OK)
            FAIL("poisoned framer (no observer) accepted a chunk");
        pos += k;
    }
    if (rc3 != rc1 || f3.msg_count != f1.msg_count)
        FAIL("framing without an observer differs");

    obs_free(&one);
    obs_free(&cut);
}

static void touch_string(const char *s, const uint8_t *pkt, size_t n)
{
    if (s == NULL)
        return;
    if ((const uint8_t *)s < pkt || (const uint8_t *)s >= pkt + n)
        FAIL("startup string outside the packet");
    size_t len = strlen(s);   /* ASan reports a read past the packet */
    if ((const uint8_t *)s + len >= pkt + n)
        FAIL("startup string not terminated inside the packet");
}

static void startup_checks(const uint8_t *s, size_t n)
{
    /* exact-size heap copy so any overread is caught */
    uint8_t *pkt = calloc(n ? n : 1, 1);
    if (!pkt)
        abort();
    for (int pass = 0; pass < 2; pass++) {
        if (n)
            memcpy(pkt, s, n);
        if (pass == 1) {
            if (n < 4)
                break;
            pgp_put_be32(pkt, (uint32_t)n);
        }
        pgp_startup_t st;
        const char *why = NULL;
        int rc = pgp_startup_parse(pkt, n, &st, &why);
        if (rc != 0) {
            if (rc != -1 || why == NULL || why[0] == '\0')
                FAIL("startup refused without a reason");
            continue;
        }
        if (n < 8 || n > PGP_PROTO_STARTUP_MAX_BYTES || pgp_be32(pkt) != n ||
            pgp_startup_length(pkt) != n)
            FAIL("startup packet of bad length accepted");
        if (st.code != pgp_be32(pkt + 4))
            FAIL("startup code differs from the packet");
        switch (st.kind) {
        case PGP_STARTUP_MESSAGE:
            if (PGP_PROTO_MAJOR(st.code) != 3)
                FAIL("startup message with major %u", PGP_PROTO_MAJOR(st.code));
            if (st.user == NULL || st.user[0] == '\0' || st.database == NULL)
                FAIL("startup message without user/database");
            touch_string(st.user, pkt, n);
            touch_string(st.database, pkt, n);
            touch_string(st.application_name, pkt, n);
            if (pkt[n - 1] != 0 || st.param_count == 0)
                FAIL("startup message not terminated / no params");
            break;
        case PGP_STARTUP_SSL_REQUEST:
        case PGP_STARTUP_GSSENC_REQUEST:
            if (n != 8)
                FAIL("encryption request of %zu bytes", n);
            break;
        case PGP_STARTUP_CANCEL_REQUEST: {
            if (st.cancel_key_len < 4 || st.cancel_key_len > PGP_PROTO_CANCEL_KEY_MAX_BYTES ||
                st.cancel_key != pkt + 12 || 12 + (size_t)st.cancel_key_len != n)
                FAIL("cancel key of %u bytes", st.cancel_key_len);
            /* the writer must reproduce the packet byte for byte */
            uint8_t out[12 + PGP_PROTO_CANCEL_KEY_MAX_BYTES];
            size_t w = pgp_proto_cancel_request(out, sizeof(out), st.cancel_pid, st.cancel_key,
                                                st.cancel_key_len);
            if (w != n || memcmp(out, pkt, n) != 0)
                FAIL("cancel request does not round-trip");
            break;
        }
        default:
            FAIL("unknown startup kind %d", (int)st.kind);
        }
    }
    free(pkt);
}

/* The input's bytes as the ErrorResponse message, cap from the input size. */
static void error_response_checks(const uint8_t *s, size_t n, uint8_t capsel)
{
    char *msg = malloc(n + 1);
    if (!msg)
        abort();
    if (n)
        memcpy(msg, s, n);
    msg[n] = '\0';
    size_t cap = 20 + capsel;
    uint8_t *out = malloc(cap);
    if (!out)
        abort();
    size_t w = pgp_proto_error_response(out, cap, "ERROR", "08P01", msg);
    if (w > cap)
        FAIL("error response longer than cap");
    if (w != 0) {
        pgp_framer_t f;
        if (out[0] != PGP_BE_ERROR_RESPONSE || pgp_be32(out + 1) != w - 1 || out[w - 1] != 0)
            FAIL("bad error response header");
        pgp_framer_init(&f, (uint32_t)w);
        if (pgp_framer_feed(&f, out, w, NULL, NULL, NULL) != PGP_FRAME_OK ||
            f.msg_count != 1 || !pgp_framer_at_boundary(&f))
            FAIL("error response does not frame as one message");
        /* fields S, V, C, M in order; M is a prefix of msg */
        static const char tags[] = "SVCM";
        const char *want[] = {"ERROR", "ERROR", "08P01", msg};
        size_t p = 5;
        for (int i = 0; i < 4; i++) {
            if (p >= w - 1 || out[p] != (uint8_t)tags[i])
                FAIL("error response field %c missing", tags[i]);
            const uint8_t *nul = memchr(out + p + 1, 0, w - p - 1);
            if (nul == NULL)
                FAIL("error response field %c not terminated", tags[i]);
            size_t flen = (size_t)(nul - (out + p + 1));
            if (strncmp((const char *)out + p + 1, want[i], flen) != 0 ||
                (i < 3 && want[i][flen] != '\0'))
                FAIL("error response field %c differs", tags[i]);
            p += 2 + flen;
        }
        if (p != w - 1)
            FAIL("error response: %zu bytes after the fields", w - 1 - p);
        size_t full = 5 + 2 * 7 + 7 + 2 + strlen(msg) + 1;
        if (w != (full <= cap ? full : cap))
            FAIL("error response size %zu (cap %zu, full %zu)", w, cap, full);
    } else if (cap >= 5 + 2 * 7 + 7 + 2 + 1) {
        FAIL("error response refused with room for an empty message");
    }
    free(out);
    free(msg);
}

/*
 * Reference model of the SCRAM-SHA-256-PLUS stripper: the names of a
 * well-formed AuthenticationSASL message, without the PLUS ones, written
 * into out (room n); returns the new length, or 0 when the message is not
 * one the stripper may touch.
 */
static size_t model_strip(const uint8_t *m, size_t n, uint8_t *out)
{
    static const char plus[] = "SCRAM-SHA-256-PLUS";
    if (n < 10 || m[0] != PGP_BE_AUTHENTICATION || pgp_be32(m + 1) != n - 1 ||
        pgp_be32(m + 5) != PGP_PROTO_AUTH_SASL || m[n - 1] != 0)
        return 0;
    memcpy(out, m, 9);
    size_t o = 9, i = 9;
    while (i < n - 1) {
        size_t k = i;
        while (m[k] != 0)
            k++;
        if (k == i)
            return 0;   /* an empty name before the last byte: bytes after the list */
        size_t len = k - i + 1;
        if (len != sizeof(plus) || memcmp(m + i, plus, len) != 0) {
            memcpy(out + o, m + i, len);
            o += len;
        }
        i = k + 1;
    }
    if (i != n - 1)
        return 0;   /* the last name used the final NUL: no empty name ends the list */
    out[o++] = 0;
    pgp_put_be32(out + 1, (uint32_t)(o - 1));
    return o;
}

static void strip_check(const uint8_t *m, size_t n)
{
    uint8_t *msg = malloc(n ? n : 1);   /* exact size: ASan sees overreads */
    uint8_t *want = malloc(n ? n : 1);
    if (!msg || !want)
        abort();
    if (n)
        memcpy(msg, m, n);
    size_t w = model_strip(m, n, want);
    size_t r = pgp_proto_strip_scram_plus(msg, n);
    if (w == 0 || w == n) {
        if (r != n)
            FAIL("strip: %zu -> %zu where nothing may change", n, r);
        if (n && memcmp(msg, m, n) != 0)
            FAIL("strip: returned the length unchanged but rewrote the bytes");
    } else {
        if (r != w || memcmp(msg, want, w) != 0)
            FAIL("strip: %zu -> %zu, model %zu", n, r, w);
        if (pgp_proto_strip_scram_plus(msg, r) != r || memcmp(msg, want, w) != 0)
            FAIL("strip: not idempotent");
    }
    free(msg);
    free(want);
}

/* The gs2 flag: after the first NUL and a 4-byte length; any prefix gives 0 or the same flag. */
static void gs2_check(const uint8_t *s, size_t n)
{
    const uint8_t *nul = n ? memchr(s, 0, n) : NULL;
    size_t at = nul ? (size_t)(nul - s) + 5 : SIZE_MAX;
    int want = at < n && (s[at] == 'n' || s[at] == 'y' || s[at] == 'p') ? s[at] : 0;
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        abort();
    if (n)
        memcpy(b, s, n);
    int got = pgp_proto_sasl_gs2_flag(b, n);
    if (got != want)
        FAIL("gs2 flag %d, model %d", got, want);
    for (size_t k = n > 8 ? n - 8 : 0; k < n; k++) {
        int p = pgp_proto_sasl_gs2_flag(b, k);
        if (p != (k > at ? want : 0))
            FAIL("gs2 flag of prefix %zu: %d (whole: %d)", k, p, want);
    }
    free(b);
}

/* The input as given, and as the name list of an AuthenticationSASL message. */
static void sasl_checks(const uint8_t *s, size_t n)
{
    strip_check(s, n);
    gs2_check(s, n);
    uint8_t *m = malloc(n + 10);
    if (!m)
        abort();
    m[0] = PGP_BE_AUTHENTICATION;
    pgp_put_be32(m + 1, (uint32_t)(n + 9));
    pgp_put_be32(m + 5, PGP_PROTO_AUTH_SASL);
    if (n)
        memcpy(m + 9, s, n);
    m[n + 9] = 0;
    strip_check(m, n + 10);
    free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t pattern = data[0];
    uint8_t sel = data[1];
    /* 2^k plus a small offset: powers of two and their neighbours */
    uint64_t m = ((uint64_t)1 << (sel & 31)) + (sel >> 5);
    uint32_t max_len = m > 3 ? (uint32_t)(m - 3) : 1;
    const uint8_t *s = data + 2;
    size_t n = size - 2;

    frame_checks(s, n, pattern, max_len);
    startup_checks(s, n);
    error_response_checks(s, n, sel);
    sasl_checks(s, n);
    return 0;
}
