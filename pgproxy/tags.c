/*
 * tags.c - key/value tags from SQL comments (DESIGN §4.4): sqlcommenter
 * (key='value',… with URL-encoded keys and values and \' escapes; %% is
 * read as % for Django/Flask, + is left alone for Java, a % that starts no
 * escape is kept for unencoded Rails 7.1 values) and the Rails/marginalia
 * legacy form (key:value,… with raw values).
 *
 * The tags live in the caller's fixed pgp_norm_tags_t (PGP_NORM_TAGS_MAX
 * tags, PGP_NORM_TAGS_BUF bytes of decoded text); a later key replaces an
 * earlier one, and whatever does not fit sets `truncated`.  Decoding goes
 * through a stack scratch buffer; nothing is allocated.  A comment of
 * neither form is ignored: this module never guesses beyond the two forms.
 */
#include "pgproxy/normalize.h"

#include <string.h>

void pgp_norm_tags_reset(pgp_norm_tags_t *tags)
{
    tags->count = 0;
    tags->truncated = false;
    tags->buf_used = 0;
}

bool pgp_norm_tags_get(const pgp_norm_tags_t *tags, const char *key, size_t key_len,
                       const char **val, size_t *val_len)
{
    for (uint32_t i = 0; i < tags->count; i++) {
        const pgp_norm_tag_t *t = &tags->tag[i];
        if (t->key_len == key_len && memcmp(tags->buf + t->key_off, key, key_len) == 0) {
            *val = tags->buf + t->val_off;
            *val_len = t->val_len;
            return true;
        }
    }
    return false;
}

/* Rewrites buf with only the live keys and values; `skip` loses its value. */
static void tags_compact(pgp_norm_tags_t *tags, uint32_t skip)
{
    char tmp[PGP_NORM_TAGS_BUF];
    uint16_t used = 0;
    for (uint32_t i = 0; i < tags->count; i++) {
        pgp_norm_tag_t *t = &tags->tag[i];
        memcpy(tmp + used, tags->buf + t->key_off, t->key_len);
        t->key_off = used;
        used = (uint16_t)(used + t->key_len);
        if (i == skip) {
            t->val_off = used;
            t->val_len = 0;
            continue;
        }
        memcpy(tmp + used, tags->buf + t->val_off, t->val_len);
        t->val_off = used;
        used = (uint16_t)(used + t->val_len);
    }
    memcpy(tags->buf, tmp, used);
    tags->buf_used = used;
}

static void tags_put(pgp_norm_tags_t *tags, const char *key, size_t kl, const char *val, size_t vl)
{
    uint32_t idx = tags->count;
    for (uint32_t i = 0; i < tags->count; i++) {
        if (tags->tag[i].key_len == kl && memcmp(tags->buf + tags->tag[i].key_off, key, kl) == 0) {
            idx = i;
            break;
        }
    }
    bool existing = idx < tags->count;
    if (!existing && tags->count == PGP_NORM_TAGS_MAX) {
        tags->truncated = true;
        return;
    }
    size_t need = (existing ? 0 : kl) + vl;
    if (tags->buf_used + need > PGP_NORM_TAGS_BUF) {
        tags_compact(tags, existing ? idx : UINT32_MAX);
        if (tags->buf_used + need > PGP_NORM_TAGS_BUF) {
            tags->truncated = true;
            return;
        }
    }
    pgp_norm_tag_t *t = &tags->tag[idx];
    if (!existing) {
        memcpy(tags->buf + tags->buf_used, key, kl);
        t->key_off = tags->buf_used;
        t->key_len = (uint16_t)kl;
        tags->buf_used = (uint16_t)(tags->buf_used + kl);
        tags->count++;
    }
    memcpy(tags->buf + tags->buf_used, val, vl);
    t->val_off = tags->buf_used;
    t->val_len = (uint16_t)vl;
    tags->buf_used = (uint16_t)(tags->buf_used + vl);
}

static inline bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static inline int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Marginalia / sqlcommenter key characters. */
static inline bool is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-' || c == '.' || c == '%';
}

/* Scratch output with a cap; overflow only sets a flag. */
typedef struct scratch {
    char *p;
    size_t len, cap;
    bool over;
} scratch_t;

static inline void sc_put(scratch_t *s, char c)
{
    if (s->len < s->cap)
        s->p[s->len++] = c;
    else
        s->over = true;
}

/* URL-decodes src[0,n) (%XX, %%XX, %% -> %, a stray % kept, + kept) into s. */
static void url_decode(scratch_t *s, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '%' && i + 1 < n && src[i + 1] == '%') {
            /* Django/Flask double the % of an escape: %%3A is %3A is ':' */
            if (i + 3 < n && hexval(src[i + 2]) >= 0 && hexval(src[i + 3]) >= 0) {
                sc_put(s, (char)(hexval(src[i + 2]) * 16 + hexval(src[i + 3])));
                i += 3;
            } else {
                sc_put(s, '%');
                i++;
            }
        } else if (c == '%' && i + 2 < n && hexval(src[i + 1]) >= 0 && hexval(src[i + 2]) >= 0) {
            sc_put(s, (char)(hexval(src[i + 1]) * 16 + hexval(src[i + 2])));
            i += 2;
        } else {
            sc_put(s, c);
        }
    }
}

/* sqlcommenter: key='value'[,key='value']… starting at p. */
static void parse_sqlcommenter(pgp_norm_tags_t *tags, const char *p, const char *end)
{
    char kbuf[256], vbuf[PGP_NORM_TAGS_BUF];
    while (p < end) {
        const char *k = p;
        while (p < end && is_key_char(*p))
            p++;
        const char *kend = p;
        while (p < end && is_blank(*p))
            p++;
        if (k == kend || p >= end || *p != '=')
            return;
        p++;
        while (p < end && is_blank(*p))
            p++;
        if (p >= end || *p != '\'')
            return;
        p++;
        /* the value: \x is x (sqlcommenter escapes ' and \), then URL-decoding */
        scratch_t v = {vbuf, 0, sizeof(vbuf), false};
        const char *seg = p;
        bool closed = false;
        while (p < end) {
            if (*p == '\\' && p + 1 < end) {
                url_decode(&v, seg, (size_t)(p - seg));
                sc_put(&v, p[1]);
                p += 2;
                seg = p;
            } else if (*p == '\'') {
                closed = true;
                break;
            } else {
                p++;
            }
        }
        if (!closed)
            return;
        url_decode(&v, seg, (size_t)(p - seg));
        p++;
        scratch_t key = {kbuf, 0, sizeof(kbuf), false};
        url_decode(&key, k, (size_t)(kend - k));
        if (key.over || v.over)
            tags->truncated = true;
        else
            tags_put(tags, key.p, key.len, v.p, v.len);
        while (p < end && is_blank(*p))
            p++;
        if (p >= end || *p != ',')
            return;
        p++;
        while (p < end && is_blank(*p))
            p++;
    }
}

/* marginalia: key:value[,key:value]…, raw values, trimmed. */
static void parse_marginalia(pgp_norm_tags_t *tags, const char *p, const char *end)
{
    while (p < end) {
        while (p < end && is_blank(*p))
            p++;
        const char *k = p;
        while (p < end && is_key_char(*p))
            p++;
        const char *kend = p;
        if (k == kend || p >= end || *p != ':')
            return;
        p++;
        const char *v = p;
        while (p < end && *p != ',')
            p++;
        const char *vend = p;
        while (v < vend && is_blank(*v))
            v++;
        while (vend > v && is_blank(vend[-1]))
            vend--;
        if ((size_t)(kend - k) > 255 || (size_t)(vend - v) > PGP_NORM_TAGS_BUF)
            tags->truncated = true;
        else
            tags_put(tags, k, (size_t)(kend - k), v, (size_t)(vend - v));
        if (p < end)
            p++;
    }
}

void pgp_norm_tags_parse(pgp_norm_tags_t *tags, const char *body, size_t len)
{
    const char *p = body, *end = body + len;
    while (p < end && is_blank(*p))
        p++;
    while (end > p && is_blank(end[-1]))
        end--;
    const char *q = p;
    while (q < end && is_key_char(*q))
        q++;
    if (q == p)
        return;
    const char *r = q;
    while (r < end && is_blank(*r))
        r++;
    if (r < end && *r == '=') {
        r++;
        while (r < end && is_blank(*r))
            r++;
        if (r < end && *r == '\'')
            parse_sqlcommenter(tags, p, end);
    } else if (q < end && *q == ':') {
        parse_marginalia(tags, p, end);
    }
}
