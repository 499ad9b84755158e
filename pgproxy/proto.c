/*
 * proto.c - incremental PostgreSQL v3 framing and startup packets.
 *
 * The framer is a small state machine over (header bytes seen, body bytes
 * left).  Bodies are never copied: they are skipped in O(1) per chunk, and
 * shown to the observer as borrowed fragments.  Lengths are checked the
 * moment the 5-byte header is complete, as pgbouncer's get_header() does.
 * Startup packets, which have no type byte, are parsed whole by the
 * session once it has buffered them (they are capped at 10000 bytes).
 */
#include "pgproxy/proto.h"

#include <string.h>

void pgp_framer_init(pgp_framer_t *f, uint32_t max_len)
{
    memset(f, 0, sizeof(*f));
    f->max_len = max_len;
}

bool pgp_framer_at_boundary(const pgp_framer_t *f)
{
    return f->hdr_len == 0 && f->body_left == 0 && !f->in_body;
}

/* Marks the framer poisoned: max_len 0 makes every header invalid. */
static int framer_poison(pgp_framer_t *f)
{
    f->max_len = 0;
    f->hdr_len = 5;   /* never at a boundary again */
    return PGP_FRAME_EBADLEN;
}

int pgp_framer_feed(pgp_framer_t *f, const uint8_t *data, size_t len,
                    const pgp_frame_ops_t *ops, void *ud, size_t *bad_at)
{
    size_t pos = 0;

    if (f->max_len == 0) {
        if (bad_at)
            *bad_at = 0;
        return PGP_FRAME_EBADLEN;
    }
    while (pos < len) {
        if (f->in_body) {
            size_t n = len - pos;
            if (n > f->body_left)
                n = f->body_left;
            if (n > 0 && ops && ops->body)
                ops->body(ud, data + pos, n);
            pos += n;
            f->body_left -= (uint32_t)n;
            if (f->body_left == 0) {
                f->in_body = false;
                if (ops && ops->end)
                    ops->end(ud, f->cur_type);
            }
            continue;
        }

        /* Header: fast path when all 5 bytes are in this chunk. */
        size_t hdr_start = pos;
        uint8_t type;
        uint32_t mlen;
        if (f->hdr_len == 0 && len - pos >= 5) {
            type = data[pos];
            mlen = pgp_be32(data + pos + 1);
            pos += 5;
        } else {
            size_t need = 5u - f->hdr_len;
            size_t n = len - pos < need ? len - pos : need;
            if (f->hdr_len > 0)
                hdr_start = 0;   /* the header began in an earlier chunk */
            memcpy(f->hdr + f->hdr_len, data + pos, n);
            f->hdr_len = (uint8_t)(f->hdr_len + n);
            pos += n;
            if (f->hdr_len < 5)
                break;
            type = f->hdr[0];
            mlen = pgp_be32(f->hdr + 1);
            f->hdr_len = 0;
        }
        if (mlen < 4 || mlen > f->max_len) {
            if (bad_at)
                *bad_at = hdr_start;
            return framer_poison(f);
        }
        f->msg_count++;
        f->cur_type = type;
        f->body_left = mlen - 4;
        f->in_body = true;
        if (ops && ops->begin)
            ops->begin(ud, type, mlen);
        if (f->body_left == 0) {
            f->in_body = false;
            if (ops && ops->end)
                ops->end(ud, type);
        }
    }
    return PGP_FRAME_OK;
}

uint32_t pgp_startup_length(const uint8_t hdr[4])
{
    uint32_t len = pgp_be32(hdr);
    if (len < 8 || len > PGP_PROTO_STARTUP_MAX_BYTES)
        return 0;
    return len;
}

static int parse_params(const uint8_t *p, size_t n, pgp_startup_t *out, const char **why)
{
    /* Pairs of NUL-terminated strings, the list closed by an empty name. */
    size_t pos = 0;
    for (;;) {
        if (pos >= n) {
            *why = "startup packet parameters are not terminated";
            return -1;
        }
        if (p[pos] == 0) {
            if (pos + 1 != n) {
                *why = "unexpected bytes after the startup packet parameters";
                return -1;
            }
            break;
        }
        const uint8_t *name_end = memchr(p + pos, 0, n - pos);
        if (name_end == NULL) {
            *why = "startup packet parameter name is not terminated";
            return -1;
        }
        const char *name = (const char *)p + pos;
        pos = (size_t)(name_end - p) + 1;
        const uint8_t *val_end = pos < n ? memchr(p + pos, 0, n - pos) : NULL;
        if (val_end == NULL) {
            *why = "startup packet parameter value is not terminated";
            return -1;
        }
        const char *val = (const char *)p + pos;
        pos = (size_t)(val_end - p) + 1;
        out->param_count++;
        if (strcmp(name, "user") == 0)
            out->user = val;
        else if (strcmp(name, "database") == 0)
            out->database = val;
        else if (strcmp(name, "application_name") == 0)
            out->application_name = val;
    }
    if (out->user == NULL || out->user[0] == '\0') {
        *why = "no PostgreSQL user name specified in startup packet";
        return -1;
    }
    if (out->database == NULL || out->database[0] == '\0')
        out->database = out->user;
    return 0;
}

int pgp_startup_parse(const uint8_t *pkt, size_t len, pgp_startup_t *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    *why = NULL;
    if (len < 8 || len > PGP_PROTO_STARTUP_MAX_BYTES || pgp_be32(pkt) != len) {
        *why = "invalid length of startup packet";
        return -1;
    }
    uint32_t code = pgp_be32(pkt + 4);
    out->code = code;
    switch (code) {
    case PGP_PROTO_SSL_REQUEST_CODE:
    case PGP_PROTO_GSSENC_REQUEST_CODE:
        if (len != 8) {
            *why = "invalid length of encryption request";
            return -1;
        }
        out->kind = code == PGP_PROTO_SSL_REQUEST_CODE ? PGP_STARTUP_SSL_REQUEST
                                                       : PGP_STARTUP_GSSENC_REQUEST;
        return 0;
    case PGP_PROTO_CANCEL_REQUEST_CODE:
        /* pid + a key of 4 bytes (3.0) up to 256 bytes (3.2). */
        if (len < 16 || len > 12 + PGP_PROTO_CANCEL_KEY_MAX_BYTES) {
            *why = "invalid length of cancel request";
            return -1;
        }
        out->kind = PGP_STARTUP_CANCEL_REQUEST;
        out->cancel_pid = pgp_be32(pkt + 8);
        out->cancel_key = pkt + 12;
        out->cancel_key_len = (uint32_t)(len - 12);
        return 0;
    default:
        break;
    }
    if (PGP_PROTO_MAJOR(code) != 3) {
        *why = "unsupported frontend protocol";
        return -1;
    }
    out->kind = PGP_STARTUP_MESSAGE;
    return parse_params(pkt + 8, len - 8, out, why);
}

static size_t put_field(uint8_t *out, size_t pos, size_t cap, char tag, const char *s,
                        size_t max)
{
    size_t n = strnlen(s, max);
    if (pos + 2 + n > cap)
        return 0;
    out[pos++] = (uint8_t)tag;
    memcpy(out + pos, s, n);
    pos += n;
    out[pos++] = 0;
    return pos;
}

/* ErrorResponse and NoticeResponse share their layout. */
static size_t fields_message(uint8_t type, uint8_t *out, size_t cap, const char *severity,
                             const char *sqlstate, const char *message)
{
    /* type + length + S,V,C fields + M tag/NUL + final NUL */
    size_t fixed = 5 + 2 * (2 + strnlen(severity, 16)) + 2 + strnlen(sqlstate, 5) + 2 + 1;
    if (cap < fixed)
        return 0;
    size_t pos = 5;
    pos = put_field(out, pos, cap, 'S', severity, 16);
    pos = put_field(out, pos, cap, 'V', severity, 16);
    pos = put_field(out, pos, cap, 'C', sqlstate, 5);
    pos = put_field(out, pos, cap, 'M', message, cap - fixed);
    out[pos++] = 0;
    out[0] = type;
    pgp_put_be32(out + 1, (uint32_t)(pos - 1));
    return pos;
}

size_t pgp_proto_error_response(uint8_t *out, size_t cap, const char *severity,
                                const char *sqlstate, const char *message)
{
    return fields_message(PGP_BE_ERROR_RESPONSE, out, cap, severity, sqlstate, message);
}

size_t pgp_proto_notice_response(uint8_t *out, size_t cap, const char *severity,
                                 const char *sqlstate, const char *message)
{
    return fields_message(PGP_BE_NOTICE_RESPONSE, out, cap, severity, sqlstate, message);
}

size_t pgp_proto_cancel_request(uint8_t *out, size_t cap, uint32_t pid, const uint8_t *key,
                                uint32_t key_len)
{
    size_t len = 12u + key_len;
    if (key_len < 4 || key_len > PGP_PROTO_CANCEL_KEY_MAX_BYTES || cap < len)
        return 0;
    pgp_put_be32(out, (uint32_t)len);
    pgp_put_be32(out + 4, PGP_PROTO_CANCEL_REQUEST_CODE);
    pgp_put_be32(out + 8, pid);
    memcpy(out + 12, key, key_len);
    return len;
}

size_t pgp_proto_strip_scram_plus(uint8_t *msg, size_t len)
{
    static const char plus[] = "SCRAM-SHA-256-PLUS";
    if (len < 9 || msg[0] != PGP_BE_AUTHENTICATION || pgp_be32(msg + 1) != len - 1 ||
        pgp_be32(msg + 5) != PGP_PROTO_AUTH_SASL)
        return len;
    /* Parse the whole list before writing: a message we do not understand goes out as it came. */
    size_t at = 9;
    for (;;) {
        const uint8_t *nul = at < len ? memchr(msg + at, 0, len - at) : NULL;
        if (nul == NULL)
            return len;   /* names not terminated: leave it to the client to refuse */
        size_t n = (size_t)(nul - (msg + at)) + 1;
        at += n;
        if (n == 1)
            break;   /* the empty name ends the list */
    }
    if (at != len)
        return len;   /* bytes after the list: not a message we understand */
    size_t in = 9, out = 9;
    while (msg[in] != 0) {
        size_t n = (size_t)((const uint8_t *)memchr(msg + in, 0, len - in) - (msg + in)) + 1;
        if (n != sizeof(plus) || memcmp(msg + in, plus, n) != 0) {
            memmove(msg + out, msg + in, n);
            out += n;
        }
        in += n;
    }
    msg[out++] = 0;
    pgp_put_be32(msg + 1, (uint32_t)(out - 1));
    return out;
}

int pgp_proto_sasl_gs2_flag(const uint8_t *body, size_t n)
{
    const uint8_t *nul = memchr(body, 0, n);
    if (nul == NULL)
        return 0;
    size_t at = (size_t)(nul - body) + 1 + 4;   /* past the name and the int32 length */
    if (at >= n)
        return 0;
    int flag = body[at];
    return flag == 'n' || flag == 'y' || flag == 'p' ? flag : 0;
}
