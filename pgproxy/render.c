/*
 * render.c - the capped output buffer with a sticky error, and the JSON,
 * HTML and Prometheus writers over it.
 *
 * Owns only the bytes of each pgp_render_t.  Every writer funnels into
 * put(), which checks the sticky error first, so after a failure nothing
 * more is written and the partial output is never sent (the caller checks
 * once).  The escape functions share one UTF-8 decoder that reports
 * invalid input as U+FFFD per maximal subpart, so the three languages agree
 * on what a bad byte becomes.  Numbers are formatted by hand: no printf,
 * no locale.  Deliberately not here: I/O, HTTP, any knowledge of what is
 * being rendered.
 */
#include "pgproxy/render.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RENDER_MIN_ALLOC 256

void pgp_render_init(pgp_render_t *r, size_t cap_bytes)
{
    memset(r, 0, sizeof(*r));
    r->cap = cap_bytes;
}

void pgp_render_free(pgp_render_t *r)
{
    size_t cap = r->cap;
    free(r->buf);
    pgp_render_init(r, cap);
}

int pgp_render_error(const pgp_render_t *r) { return r->err; }

const char *pgp_render_data(const pgp_render_t *r) { return r->buf != NULL ? r->buf : ""; }

size_t pgp_render_len(const pgp_render_t *r) { return r->len; }

static void fail(pgp_render_t *r, int err)
{
    if (r->err == 0)
        r->err = err;
}

char *pgp_render_take(pgp_render_t *r, size_t *len)
{
    char *out;
    if (r->err != 0) {
        pgp_render_free(r);
        *len = 0;
        return NULL;
    }
    out = r->buf != NULL ? r->buf : calloc(1, 1);
    *len = out != NULL ? r->len : 0;
    r->buf = NULL;
    pgp_render_free(r);
    return out;
}

/* Make room for n more bytes plus the NUL; false (error set) when it cannot. */
static bool reserve(pgp_render_t *r, size_t n)
{
    if (r->err != 0)
        return false;
    if (n > r->cap - r->len) {
        fail(r, PGP_RENDER_ETOOBIG);
        return false;
    }
    size_t need = r->len + n + 1;
    if (need <= r->alloc)
        return true;
    size_t a = r->alloc < RENDER_MIN_ALLOC ? RENDER_MIN_ALLOC : r->alloc;
    while (a < need)
        a = a > SIZE_MAX / 2 ? need : a * 2;
    if (r->cap < SIZE_MAX && a > r->cap + 1)
        a = r->cap + 1;   /* never allocate beyond what the cap can use */
    char *p = realloc(r->buf, a);
    if (p == NULL) {
        fail(r, PGP_RENDER_ENOMEM);
        return false;
    }
    r->buf = p;
    r->alloc = a;
    return true;
}

static void put(pgp_render_t *r, const void *data, size_t n)
{
    if (n == 0 || !reserve(r, n))
        return;
    memcpy(r->buf + r->len, data, n);
    r->len += n;
    r->buf[r->len] = '\0';
}

void pgp_render_append(pgp_render_t *r, const void *data, size_t n) { put(r, data, n); }

void pgp_render_str(pgp_render_t *r, const char *s)
{
    if (s != NULL)
        put(r, s, strlen(s));
}

void pgp_render_char(pgp_render_t *r, char c) { put(r, &c, 1); }

/* ---- numbers ------------------------------------------------------------------- */

/* Digits of v right-aligned in tmp[24]; returns the index of the first digit. */
static size_t u64_digits(uint64_t v, char tmp[24])
{
    size_t i = 24;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return i;
}

void pgp_render_uint(pgp_render_t *r, uint64_t v)
{
    char tmp[24];
    size_t i = u64_digits(v, tmp);
    put(r, tmp + i, 24 - i);
}

void pgp_render_int(pgp_render_t *r, int64_t v)
{
    if (v < 0) {
        pgp_render_char(r, '-');
        /* -(v + 1) + 1 avoids overflowing on INT64_MIN. */
        pgp_render_uint(r, (uint64_t)(-(v + 1)) + 1);
    } else {
        pgp_render_uint(r, (uint64_t)v);
    }
}

static const uint64_t pow10_u64[PGP_RENDER_MAX_DECIMALS + 1] = {
    1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000, 1000000000,
};

/*
 * Format finite a (0 <= a < 1e18) with `decimals` digits into out; returns
 * the length.  When `trim`, trailing zeros and a bare point are dropped.
 */
static size_t fixed_digits(double a, int decimals, bool trim, char out[48])
{
    uint64_t scale = pow10_u64[decimals];
    double ip = floor(a);
    uint64_t whole = (uint64_t)ip;
    uint64_t frac = (uint64_t)llround((a - ip) * (double)scale);
    if (frac >= scale) {   /* 0.9999 rounds up into the integer part */
        frac -= scale;
        whole++;
    }
    char tmp[24];
    size_t i = u64_digits(whole, tmp), n = 24 - i;
    memcpy(out, tmp + i, n);
    if (decimals > 0) {
        out[n++] = '.';
        for (int d = decimals - 1; d >= 0; d--)
            out[n++] = (char)('0' + (frac / pow10_u64[d]) % 10);
        if (trim) {
            while (out[n - 1] == '0')
                n--;
            if (out[n - 1] == '.')
                n--;
        }
    }
    return n;
}

static void render_double(pgp_render_t *r, double v, int decimals, bool trim)
{
    char out[64];
    size_t n = 0;
    if (decimals < 0)
        decimals = 0;
    if (decimals > PGP_RENDER_MAX_DECIMALS)
        decimals = PGP_RENDER_MAX_DECIMALS;
    if (isnan(v)) {
        pgp_render_str(r, "NaN");
        return;
    }
    if (isinf(v)) {
        pgp_render_str(r, v > 0 ? "+Inf" : "-Inf");
        return;
    }
    double a = fabs(v);
    if (v < 0) {
        /* No "-0.000": a negative that rounds to zero is written as zero. */
        double half = 0.5 / (double)pow10_u64[decimals];
        if (a >= half)
            out[n++] = '-';
    }
    if (a < 1e18) {
        n += fixed_digits(a, decimals, trim, out + n);
        put(r, out, n);
        return;
    }
    int e = (int)floor(log10(a));
    double m = a / pow(10.0, e);
    if (m >= 10.0) {   /* log10 rounding at exact powers of ten */
        m /= 10.0;
        e++;
    } else if (m < 1.0) {
        m *= 10.0;
        e--;
    }
    size_t mn = fixed_digits(m, decimals, trim, out + n);
    if (out[n] == '1' && out[n + 1] == '0' && (mn == 2 || out[n + 2] == '.')) {
        /* The mantissa rounded up to 10: redo as 1.000 with the next exponent. */
        e++;
        mn = fixed_digits(1.0, decimals, trim, out + n);
    }
    n += mn;
    out[n++] = 'e';
    out[n++] = '+';
    char tmp[24];
    size_t i = u64_digits((uint64_t)e, tmp);
    memcpy(out + n, tmp + i, 24 - i);
    n += 24 - i;
    put(r, out, n);
}

void pgp_render_double(pgp_render_t *r, double v, int decimals)
{
    render_double(r, v, decimals, false);
}

void pgp_render_double_trim(pgp_render_t *r, double v, int max_decimals)
{
    render_double(r, v, max_decimals, true);
}

/* ---- UTF-8 --------------------------------------------------------------------- */

#define REPLACEMENT 0xFFFDu

/*
 * Decode one code point at p[0..n) (n >= 1).  Returns the bytes consumed
 * and the code point in *cp, or U+FFFD for the maximal invalid subpart
 * (a lead byte and the continuation bytes that were still possible), so a
 * truncated sequence is one U+FFFD and each stray byte is one.
 */
static size_t utf8_next(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned char c = p[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;   /* range of the second byte */
    uint32_t v;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
        v = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        v = c & 0x0F;
        if (c == 0xE0)
            lo = 0xA0;          /* overlong */
        else if (c == 0xED)
            hi = 0x9F;          /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        v = c & 0x07;
        if (c == 0xF0)
            lo = 0x90;          /* overlong */
        else if (c == 0xF4)
            hi = 0x8F;          /* > U+10FFFF */
    } else {
        *cp = REPLACEMENT;      /* continuation byte, C0, C1, F5..FF */
        return 1;
    }
    size_t i = 1;
    for (; i <= need; i++) {
        unsigned char b = i < n ? p[i] : 0;
        unsigned char blo = i == 1 ? lo : 0x80, bhi = i == 1 ? hi : 0xBF;
        if (i >= n || b < blo || b > bhi) {
            *cp = REPLACEMENT;
            return i;
        }
        v = (v << 6) | (b & 0x3F);
    }
    *cp = v;
    return i;
}

static void put_utf8(pgp_render_t *r, uint32_t cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    put(r, b, n);
}

static const char hexdig[] = "0123456789abcdef";

/* ---- JSON ---------------------------------------------------------------------- */

static void put_u_escape(pgp_render_t *r, uint32_t cp)
{
    char b[6] = { '\\', 'u', hexdig[(cp >> 12) & 0xF], hexdig[(cp >> 8) & 0xF],
                  hexdig[(cp >> 4) & 0xF], hexdig[cp & 0xF] };
    put(r, b, sizeof(b));
}

void pgp_render_json_escape(pgp_render_t *r, const void *s, size_t n)
{
    const unsigned char *p = s;
    size_t i = 0;
    while (i < n && r->err == 0) {
        /* Copy the longest run that needs nothing in one put. */
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x7F && p[run] != '"' && p[run] != '\\' &&
               p[run] != '<' && p[run] != '>' && p[run] != '&')
            run++;
        if (run > i) {
            put(r, p + i, run - i);
            i = run;
            continue;
        }
        uint32_t cp;
        size_t used = utf8_next(p + i, n - i, &cp);
        i += used;
        switch (cp) {
        case '"': put(r, "\\\"", 2); break;
        case '\\': put(r, "\\\\", 2); break;
        case '\b': put(r, "\\b", 2); break;
        case '\f': put(r, "\\f", 2); break;
        case '\n': put(r, "\\n", 2); break;
        case '\r': put(r, "\\r", 2); break;
        case '\t': put(r, "\\t", 2); break;
        default:
            if (cp < 0x20 || cp == 0x7F || cp == '<' || cp == '>' || cp == '&' ||
                cp == 0x2028 || cp == 0x2029)
                put_u_escape(r, cp);
            else
                put_utf8(r, cp);
            break;
        }
    }
}

/* Before a value: the comma in an array, the check that a key came first in an object. */
static void json_value_prefix(pgp_render_t *r)
{
    if (r->err != 0)
        return;
    if (r->depth == 0) {
        if (r->len != 0)
            fail(r, PGP_RENDER_EUSAGE);   /* a second top-level value */
        return;
    }
    uint64_t bit = (uint64_t)1 << (r->depth - 1);
    if (r->in_object & bit) {
        if (!r->after_key)
            fail(r, PGP_RENDER_EUSAGE);
        r->after_key = false;
        return;
    }
    if (r->has_items & bit)
        pgp_render_char(r, ',');
    r->has_items |= bit;
}

static void json_begin(pgp_render_t *r, bool object)
{
    json_value_prefix(r);
    if (r->err != 0)
        return;
    if (r->depth >= PGP_RENDER_JSON_MAX_DEPTH) {
        fail(r, PGP_RENDER_EUSAGE);
        return;
    }
    uint64_t bit = (uint64_t)1 << r->depth;
    r->depth++;
    if (object)
        r->in_object |= bit;
    else
        r->in_object &= ~bit;
    r->has_items &= ~bit;
    pgp_render_char(r, object ? '{' : '[');
}

static void json_end(pgp_render_t *r, bool object)
{
    if (r->err != 0)
        return;
    if (r->depth == 0 || r->after_key) {
        fail(r, PGP_RENDER_EUSAGE);
        return;
    }
    uint64_t bit = (uint64_t)1 << (r->depth - 1);
    if (((r->in_object & bit) != 0) != object) {
        fail(r, PGP_RENDER_EUSAGE);
        return;
    }
    r->depth--;
    pgp_render_char(r, object ? '}' : ']');
}

void pgp_render_json_begin_object(pgp_render_t *r) { json_begin(r, true); }
void pgp_render_json_end_object(pgp_render_t *r) { json_end(r, true); }
void pgp_render_json_begin_array(pgp_render_t *r) { json_begin(r, false); }
void pgp_render_json_end_array(pgp_render_t *r) { json_end(r, false); }

bool pgp_render_json_complete(const pgp_render_t *r) { return r->depth == 0 && !r->after_key; }

void pgp_render_json_key(pgp_render_t *r, const char *key)
{
    if (r->err != 0)
        return;
    uint64_t bit = r->depth > 0 ? (uint64_t)1 << (r->depth - 1) : 0;
    if (r->depth == 0 || !(r->in_object & bit) || r->after_key) {
        fail(r, PGP_RENDER_EUSAGE);
        return;
    }
    if (r->has_items & bit)
        pgp_render_char(r, ',');
    r->has_items |= bit;
    pgp_render_char(r, '"');
    pgp_render_json_escape(r, key, key != NULL ? strlen(key) : 0);
    put(r, "\":", 2);
    r->after_key = true;
}

void pgp_render_json_string(pgp_render_t *r, const void *s, size_t n)
{
    json_value_prefix(r);
    pgp_render_char(r, '"');
    pgp_render_json_escape(r, s, n);
    pgp_render_char(r, '"');
}

void pgp_render_json_cstr(pgp_render_t *r, const char *s)
{
    if (s == NULL)
        pgp_render_json_null(r);
    else
        pgp_render_json_string(r, s, strlen(s));
}

void pgp_render_json_int(pgp_render_t *r, int64_t v)
{
    json_value_prefix(r);
    pgp_render_int(r, v);
}

void pgp_render_json_uint(pgp_render_t *r, uint64_t v)
{
    json_value_prefix(r);
    pgp_render_uint(r, v);
}

void pgp_render_json_double(pgp_render_t *r, double v, int decimals)
{
    json_value_prefix(r);
    if (!isfinite(v))
        pgp_render_str(r, "null");
    else
        render_double(r, v, decimals, true);
}

void pgp_render_json_bool(pgp_render_t *r, bool v)
{
    json_value_prefix(r);
    pgp_render_str(r, v ? "true" : "false");
}

void pgp_render_json_null(pgp_render_t *r)
{
    json_value_prefix(r);
    pgp_render_str(r, "null");
}

/* ---- HTML ---------------------------------------------------------------------- */

void pgp_render_html(pgp_render_t *r, const void *s, size_t n)
{
    const unsigned char *p = s;
    size_t i = 0;
    while (i < n && r->err == 0) {
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x7F && p[run] != '&' && p[run] != '<' &&
               p[run] != '>' && p[run] != '"' && p[run] != '\'')
            run++;
        if (run > i) {
            put(r, p + i, run - i);
            i = run;
            continue;
        }
        uint32_t cp;
        i += utf8_next(p + i, n - i, &cp);
        switch (cp) {
        case '&': pgp_render_str(r, "&amp;"); break;
        case '<': pgp_render_str(r, "&lt;"); break;
        case '>': pgp_render_str(r, "&gt;"); break;
        case '"': pgp_render_str(r, "&quot;"); break;
        case '\'': pgp_render_str(r, "&#39;"); break;
        case '\t': case '\n': case '\r': put_utf8(r, cp); break;
        default:
            put_utf8(r, cp < 0x20 || cp == 0x7F ? REPLACEMENT : cp);
            break;
        }
    }
}

/* ---- Prometheus ---------------------------------------------------------------- */

/*
 * Escape \ and newline (both contexts), and " when `quote` (label values);
 * other control characters but tab become U+FFFD.
 */
static void prom_escape(pgp_render_t *r, const unsigned char *p, size_t n, bool quote)
{
    size_t i = 0;
    while (i < n && r->err == 0) {
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '\\' &&
               !(quote && p[run] == '"'))
            run++;
        if (run > i) {
            put(r, p + i, run - i);
            i = run;
            continue;
        }
        uint32_t cp;
        i += utf8_next(p + i, n - i, &cp);
        if (cp == '\\')
            put(r, "\\\\", 2);
        else if (cp == '\n')
            put(r, "\\n", 2);
        else if (cp == '"')
            put(r, "\\\"", 2);
        else if (cp < 0x20 && cp != '\t')
            put_utf8(r, REPLACEMENT);   /* a NUL or CR would confuse line-based parsers */
        else
            put_utf8(r, cp);
    }
}

void pgp_render_prom_family(pgp_render_t *r, const char *name, const char *type,
                            const char *help)
{
    pgp_render_str(r, "# HELP ");
    pgp_render_str(r, name);
    pgp_render_char(r, ' ');
    if (help != NULL)
        prom_escape(r, (const unsigned char *)help, strlen(help), false);
    pgp_render_str(r, "\n# TYPE ");
    pgp_render_str(r, name);
    pgp_render_char(r, ' ');
    pgp_render_str(r, type);
    pgp_render_char(r, '\n');
}

void pgp_render_prom_label_value(pgp_render_t *r, const void *s, size_t n)
{
    prom_escape(r, s, n, true);
}

/* name{labels[,extra_name="extra_value"]} -- extra (an le bound) may be NULL. */
static void prom_series(pgp_render_t *r, const char *name, const char *suffix,
                        const pgp_render_label_t *labels, size_t nlabels, const char *extra_name,
                        double extra_le)
{
    pgp_render_str(r, name);
    pgp_render_str(r, suffix);
    if (nlabels == 0 && extra_name == NULL)
        return;
    pgp_render_char(r, '{');
    for (size_t i = 0; i < nlabels; i++) {
        if (i > 0)
            pgp_render_char(r, ',');
        pgp_render_str(r, labels[i].name);
        put(r, "=\"", 2);
        const char *v = labels[i].value != NULL ? labels[i].value : "";
        prom_escape(r, (const unsigned char *)v, strlen(v), true);
        pgp_render_char(r, '"');
    }
    if (extra_name != NULL) {
        if (nlabels > 0)
            pgp_render_char(r, ',');
        pgp_render_str(r, extra_name);
        put(r, "=\"", 2);
        render_double(r, extra_le, PGP_RENDER_MAX_DECIMALS, true);
        pgp_render_char(r, '"');
    }
    pgp_render_char(r, '}');
}

void pgp_render_prom_sample(pgp_render_t *r, const char *name, const pgp_render_label_t *labels,
                            size_t nlabels, double value)
{
    prom_series(r, name, "", labels, nlabels, NULL, 0);
    pgp_render_char(r, ' ');
    render_double(r, value, PGP_RENDER_MAX_DECIMALS, true);
    pgp_render_char(r, '\n');
}

void pgp_render_prom_sample_uint(pgp_render_t *r, const char *name,
                                 const pgp_render_label_t *labels, size_t nlabels,
                                 uint64_t value)
{
    prom_series(r, name, "", labels, nlabels, NULL, 0);
    pgp_render_char(r, ' ');
    pgp_render_uint(r, value);
    pgp_render_char(r, '\n');
}

void pgp_render_prom_histogram(pgp_render_t *r, const char *name,
                               const pgp_render_label_t *labels, size_t nlabels,
                               const double *bounds, const uint64_t *bucket_counts,
                               size_t nbuckets, double sum, uint64_t count)
{
    uint64_t cum = 0;
    for (size_t i = 0; i < nbuckets; i++) {
        cum += bucket_counts[i];
        prom_series(r, name, "_bucket", labels, nlabels, "le", bounds[i]);
        pgp_render_char(r, ' ');
        pgp_render_uint(r, cum);
        pgp_render_char(r, '\n');
    }
    prom_series(r, name, "_bucket", labels, nlabels, "le", INFINITY);
    pgp_render_char(r, ' ');
    pgp_render_uint(r, count);
    pgp_render_char(r, '\n');
    prom_series(r, name, "_sum", labels, nlabels, NULL, 0);
    pgp_render_char(r, ' ');
    render_double(r, sum, PGP_RENDER_MAX_DECIMALS, true);
    pgp_render_char(r, '\n');
    prom_series(r, name, "_count", labels, nlabels, NULL, 0);
    pgp_render_char(r, ' ');
    pgp_render_uint(r, count);
    pgp_render_char(r, '\n');
}

size_t pgp_render_format_time(uint64_t wall_ns, char *buf)
{
    time_t sec = (time_t)(wall_ns / 1000000000u);
    struct tm tm;
    if (gmtime_r(&sec, &tm) == NULL)
        memset(&tm, 0, sizeof(tm));
    size_t n = strftime(buf, PGP_RENDER_TIME_BYTES - 5, "%Y-%m-%dT%H:%M:%S", &tm);
    unsigned ms = (unsigned)(wall_ns / 1000000u % 1000u);
    buf[n++] = '.';
    buf[n++] = (char)('0' + ms / 100);
    buf[n++] = (char)('0' + ms / 10 % 10);
    buf[n++] = (char)('0' + ms % 10);
    buf[n++] = 'Z';
    buf[n] = '\0';
    return n;
}

void pgp_render_json_time(pgp_render_t *r, uint64_t wall_ns)
{
    char buf[PGP_RENDER_TIME_BYTES];
    size_t n = pgp_render_format_time(wall_ns, buf);
    pgp_render_json_string(r, buf, n);
}

void pgp_render_json_kv_str(pgp_render_t *r, const char *key, const char *val)
{
    pgp_render_json_key(r, key);
    pgp_render_json_cstr(r, val);
}

void pgp_render_json_kv_uint(pgp_render_t *r, const char *key, uint64_t v)
{
    pgp_render_json_key(r, key);
    pgp_render_json_uint(r, v);
}
