/*
 * toml.c - strict TOML-subset parser feeding a handler (see toml.h).
 *
 * Two passes over an explicit [data, data+len) range, no NUL assumption:
 * a prescan rejects NUL bytes, invalid UTF-8 and over-long lines up front,
 * so the recursive-descent pass below can treat every line as bounded text.
 * The parser owns only the current table path, key path and value, all
 * freed before pgp_toml_parse returns; it never knows what keys mean.
 */
#include "pgproxy/toml.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define NUMBER_TOKEN_MAX 128   /* longest numeric token (digits + punctuation) */

typedef struct parser {
    const char *name;
    const char *p;        /* cursor */
    const char *end;
    int line;
    char *err;
    size_t errlen;
    pgp_toml_handler_fn handler;
    void *ctx;
    char *table[PGP_TOML_MAX_DEPTH];
    size_t table_depth;
    char *key[PGP_TOML_MAX_DEPTH];
    size_t key_depth;
    pgp_toml_value_t value;
} parser_t;

static void whatf(char *what, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(parser_t *ps, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void whatf(char *what, size_t n, const char *fmt, ...)
{
    if (what == NULL || n == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, n, fmt, ap);
    va_end(ap);
}

/* Record "<name>:<line>: <reason>" and return -1. */
static int fail(parser_t *ps, const char *fmt, ...)
{
    char what[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (ps->err != NULL && ps->errlen > 0)
        snprintf(ps->err, ps->errlen, "%s:%d: %s", ps->name, ps->line, what);
    return -1;
}

/* ---- small helpers ---------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t need;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) { need = 2; cp = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) { need = 3; cp = c & 0x0F; }
    else if (c >= 0xF0 && c <= 0xF4) { need = 4; cp = c & 0x07; }
    else return 0;
    if (n < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((need == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (need == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return need;
}

static bool utf8_valid(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = utf8_len((const unsigned char *)s + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

static size_t utf8_encode(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static bool is_control(unsigned char c)
{
    return (c < 0x20 && c != '\t') || c == 0x7F;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

static bool is_bare_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
           c == '_' || c == '-';
}

/* Characters a bare value token (number, boolean, mistaken unquoted text) may span. */
static bool is_token_char(char c)
{
    return is_bare_key_char(c) || c == '+' || c == '.' || c == ':';
}

static char *dup_range(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

void pgp_toml_quote(const char *s, size_t len, char *buf, size_t buflen)
{
    static const char hex[] = "0123456789abcdef";
    const size_t limit = 60;
    size_t o = 0;
    if (buf == NULL || buflen == 0)
        return;
    /* Reserve room for the closing quote, "..." and the NUL. */
    if (buflen < 8) {
        buf[0] = '\0';
        return;
    }
    buf[o++] = '"';
    size_t i = 0;
    for (; i < len && i < limit; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[4];
        size_t k = 0;
        if (c == '"' || c == '\\') {
            esc[k++] = '\\';
            esc[k++] = (char)c;
        } else if (c < 0x20 || c == 0x7F ||
                   (c >= 0x80 && utf8_len((const unsigned char *)s + i, len - i) == 0)) {
            esc[k++] = '\\';
            esc[k++] = 'x';
            esc[k++] = hex[c >> 4];
            esc[k++] = hex[c & 15];
        } else if (c >= 0x80) {
            /* A whole valid UTF-8 sequence, kept as is (never cut in the middle). */
            size_t u = utf8_len((const unsigned char *)s + i, len - i);
            if (o + u + 5 > buflen)
                break;
            memcpy(buf + o, s + i, u);
            o += u;
            i += u - 1;
            continue;
        } else {
            esc[k++] = (char)c;
        }
        if (o + k + 5 > buflen)
            break;
        memcpy(buf + o, esc, k);
        o += k;
    }
    buf[o++] = '"';
    if (i < len) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = '\0';
}

/* Describe the byte at p for "unexpected X" messages. */
static void describe(const parser_t *ps, char *buf, size_t n)
{
    if (ps->p >= ps->end) {
        snprintf(buf, n, "end of input");
        return;
    }
    unsigned char c = (unsigned char)*ps->p;
    if (c == '\n' || (c == '\r' && ps->p + 1 < ps->end && ps->p[1] == '\n'))
        snprintf(buf, n, "end of line");
    else if (c > 0x20 && c < 0x7F)
        snprintf(buf, n, "'%c'", c);
    else
        snprintf(buf, n, "byte 0x%02x", c);
}

/* ---- numbers ------------------------------------------------------------- */

/*
 * Read digits of `radix` with '_' allowed only between two digits; append
 * the digits to clean[*o].  Returns the number of digits, or -1 on a
 * misplaced '_'.
 */
static int digit_run(const char *t, size_t len, size_t *i, int radix, char *clean, size_t *o)
{
    int count = 0;
    bool prev_digit = false;
    while (*i < len) {
        char c = t[*i];
        int d;
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else if (c == '_') {
            if (!prev_digit || *i + 1 >= len)
                return -1;
            prev_digit = false;
            (*i)++;
            continue;
        } else break;
        if (d >= radix)
            break;
        clean[(*o)++] = c;
        prev_digit = true;
        count++;
        (*i)++;
    }
    if (count > 0 && !prev_digit)
        return -1;   /* trailing '_' */
    return count;
}

static int digit_value(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return c - 'A' + 10;
}

/*
 * Parse a numeric token t[0..len).  `leading_zeros` allows "007" (text
 * from the environment); TOML itself forbids it.  Returns 0 with an
 * INTEGER or FLOAT in *v; -1 when the token is not a number; -2 when it is
 * one but is unacceptable (overflow, leading zeros).  `what` says why.
 */
static int parse_number(const char *t, size_t len, bool leading_zeros, pgp_toml_value_t *v,
                        char *what, size_t whatlen)
{
    char q[80];
    char clean[NUMBER_TOKEN_MAX + 8];
    size_t i = 0, o = 0;
    bool neg = false, is_float = false;

    pgp_toml_quote(t, len, q, sizeof(q));
    if (len == 0 || len > NUMBER_TOKEN_MAX)
        goto invalid;
    if (t[0] == '+' || t[0] == '-') {
        neg = t[0] == '-';
        clean[o++] = t[0];
        i++;
    }
    if (len - i == 3 && (memcmp(t + i, "inf", 3) == 0 || memcmp(t + i, "nan", 3) == 0)) {
        v->type = PGP_TOML_FLOAT;
        v->u.f = t[i] == 'i' ? (neg ? -INFINITY : INFINITY) : NAN;
        return 0;
    }
    if (o == 0 && len - i > 2 && t[i] == '0' && (t[i + 1] == 'x' || t[i + 1] == 'o' || t[i + 1] == 'b')) {
        int radix = t[i + 1] == 'x' ? 16 : t[i + 1] == 'o' ? 8 : 2;
        i += 2;
        if (digit_run(t, len, &i, radix, clean, &o) <= 0 || i != len)
            goto invalid;
        uint64_t acc = 0;
        for (size_t k = 0; k < o; k++) {
            unsigned d = (unsigned)digit_value(clean[k]);
            if (acc > ((uint64_t)INT64_MAX - d) / (unsigned)radix)
                goto overflow;
            acc = acc * (unsigned)radix + d;
        }
        v->type = PGP_TOML_INTEGER;
        v->u.i = (int64_t)acc;
        return 0;
    }
    size_t int_start = o;
    int n = digit_run(t, len, &i, 10, clean, &o);
    if (n <= 0)
        goto invalid;
    if (!leading_zeros && n > 1 && clean[int_start] == '0') {
        whatf(what, whatlen, "leading zeros are not allowed in %s", q);
        return -2;
    }
    size_t int_end = o;
    if (i < len && t[i] == '.') {
        clean[o++] = t[i++];
        if (digit_run(t, len, &i, 10, clean, &o) <= 0)
            goto invalid;
        is_float = true;
    }
    if (i < len && (t[i] == 'e' || t[i] == 'E')) {
        clean[o++] = t[i++];
        if (i < len && (t[i] == '+' || t[i] == '-'))
            clean[o++] = t[i++];
        if (digit_run(t, len, &i, 10, clean, &o) <= 0)
            goto invalid;
        is_float = true;
    }
    if (i != len)
        goto invalid;
    clean[o] = '\0';
    if (is_float) {
        errno = 0;
        double d = strtod(clean, NULL);
        if (errno == ERANGE && isinf(d)) {
            whatf(what, whatlen, "float %s is out of range", q);
            return -2;
        }
        v->type = PGP_TOML_FLOAT;
        v->u.f = d;
        return 0;
    }
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1u : (uint64_t)INT64_MAX;
    uint64_t acc = 0;
    for (size_t k = int_start; k < int_end; k++) {
        unsigned d = (unsigned)(clean[k] - '0');
        if (acc > (limit - d) / 10u)
            goto overflow;
        acc = acc * 10u + d;
    }
    v->type = PGP_TOML_INTEGER;
    /* -2^63 has no positive counterpart: negate in unsigned arithmetic. */
    v->u.i = neg ? (int64_t)(0u - acc) : (int64_t)acc;
    return 0;

overflow:
    whatf(what, whatlen, "integer %s does not fit in 64 bits", q);
    return -2;
invalid:
    whatf(what, whatlen, "invalid value %s (strings must be quoted)", q);
    return -1;
}

/* ---- values ------------------------------------------------------------ */

void pgp_toml_value_free(pgp_toml_value_t *v)
{
    if (v == NULL)
        return;
    if (v->type == PGP_TOML_STRING) {
        free(v->u.s);
    } else if (v->type == PGP_TOML_ARRAY) {
        for (size_t i = 0; i < v->u.a.count; i++)
            pgp_toml_value_free(&v->u.a.items[i]);
        free(v->u.a.items);
    }
    memset(v, 0, sizeof(*v));
    v->type = PGP_TOML_STRING;
}

const char *pgp_toml_type_name(pgp_toml_type_t type)
{
    switch (type) {
    case PGP_TOML_STRING: return "a string";
    case PGP_TOML_INTEGER: return "an integer";
    case PGP_TOML_FLOAT: return "a float";
    case PGP_TOML_BOOL: return "a boolean";
    case PGP_TOML_ARRAY: return "an array";
    }
    return "a value";
}

/* Append one value to an array value; takes ownership of *item on success. */
static int array_push(pgp_toml_value_t *arr, pgp_toml_value_t *item)
{
    size_t n = arr->u.a.count;
    /* Capacity is implicit: 4, then doubled whenever count reaches a power of two. */
    if (n == 0 || (n >= 4 && (n & (n - 1)) == 0)) {
        size_t cap = n == 0 ? 4 : n * 2;
        pgp_toml_value_t *g = realloc(arr->u.a.items, cap * sizeof(*g));
        if (g == NULL)
            return -1;
        arr->u.a.items = g;
    }
    arr->u.a.items[n] = *item;
    arr->u.a.count = n + 1;
    memset(item, 0, sizeof(*item));
    return 0;
}

/* ---- lexing ------------------------------------------------------------ */

static void skip_blank(parser_t *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t'))
        ps->p++;
}

static bool at_newline(const parser_t *ps)
{
    return ps->p < ps->end &&
           (*ps->p == '\n' || (*ps->p == '\r' && ps->p + 1 < ps->end && ps->p[1] == '\n'));
}

static void take_newline(parser_t *ps)
{
    ps->p += *ps->p == '\r' ? 2 : 1;
    ps->line++;
}

/* At '#': skip to (not past) the end of line; control characters are errors. */
static int skip_comment(parser_t *ps)
{
    for (ps->p++; ps->p < ps->end && !at_newline(ps); ps->p++)
        if (is_control((unsigned char)*ps->p))
            return fail(ps, "control character 0x%02x in comment", (unsigned char)*ps->p);
    return 0;
}

/* After a header or value: blanks, an optional comment, then end of line/input. */
static int end_line(parser_t *ps, const char *after)
{
    char d[32];
    skip_blank(ps);
    if (ps->p < ps->end && *ps->p == '#' && skip_comment(ps) < 0)
        return -1;
    if (ps->p >= ps->end)
        return 0;
    if (at_newline(ps)) {
        take_newline(ps);
        return 0;
    }
    describe(ps, d, sizeof(d));
    return fail(ps, "unexpected %s after %s", d, after);
}

/* Pointer to the end of the current line (the '\n' or end of input). */
static const char *line_end(const parser_t *ps)
{
    const char *nl = memchr(ps->p, '\n', (size_t)(ps->end - ps->p));
    return nl != NULL ? nl : ps->end;
}

static int hex_escape(parser_t *ps, const char *q, const char *lim, int digits, uint32_t *cp)
{
    uint32_t v = 0;
    if (lim - q < digits)
        return fail(ps, "\\%c escape needs %d hex digits", digits == 4 ? 'u' : 'U', digits);
    for (int k = 0; k < digits; k++) {
        char c = q[k];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return fail(ps, "\\%c escape needs %d hex digits", digits == 4 ? 'u' : 'U', digits);
        v = v * 16u + (uint32_t)digit_value(c);
    }
    if (v == 0)
        return fail(ps, "NUL (\\u0000) is not allowed in strings");
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return fail(ps, "escape \\%c%.*s is not a Unicode scalar value", digits == 4 ? 'u' : 'U',
                    digits, q);
    *cp = v;
    return 0;
}

/* At '"': decode a one-line basic string into *out (owned by the caller). */
static int parse_basic_string(parser_t *ps, char **out)
{
    if (ps->end - ps->p >= 3 && ps->p[1] == '"' && ps->p[2] == '"')
        return fail(ps, "multi-line strings (\"\"\") are not supported");
    const char *q = ps->p + 1;
    const char *lim = line_end(ps);
    /* Decoding never grows the text: the raw span bounds the output. */
    char *buf = malloc((size_t)(lim - q) + 1);
    size_t o = 0;
    if (buf == NULL)
        return fail(ps, "out of memory");
    while (q < lim && *q != '"') {
        unsigned char c = (unsigned char)*q;
        if (c == '\\') {
            if (q + 1 >= lim || (q[1] == '\r' && q + 2 >= lim))
                break;
            char e = q[1];
            uint32_t cp = 0;
            q += 2;
            switch (e) {
            case 'b': buf[o++] = '\b'; break;
            case 't': buf[o++] = '\t'; break;
            case 'n': buf[o++] = '\n'; break;
            case 'f': buf[o++] = '\f'; break;
            case 'r': buf[o++] = '\r'; break;
            case '"': buf[o++] = '"'; break;
            case '\\': buf[o++] = '\\'; break;
            case 'u':
            case 'U': {
                int digits = e == 'u' ? 4 : 8;
                if (hex_escape(ps, q, lim, digits, &cp) < 0)
                    goto fail;
                o += utf8_encode(cp, buf + o);
                q += digits;
                break;
            }
            default:
                if ((unsigned char)e > 0x20 && (unsigned char)e < 0x7F)
                    fail(ps, "invalid escape \\%c in string", e);
                else
                    fail(ps, "invalid escape in string (backslash before byte 0x%02x)",
                         (unsigned char)e);
                goto fail;
            }
            continue;
        }
        if (c == '\r' && q + 1 == lim)
            break;   /* CRLF: the string ends without its quote */
        if (is_control(c)) {
            fail(ps, "control character 0x%02x in string (use an escape)", c);
            goto fail;
        }
        buf[o++] = (char)c;
        q++;
    }
    if (q >= lim || *q != '"') {
        fail(ps, "unterminated string");
        goto fail;
    }
    buf[o] = '\0';
    ps->p = q + 1;
    *out = buf;
    return 0;
fail:
    free(buf);
    return -1;
}

/* At '\'': a one-line literal string, no escapes. */
static int parse_literal_string(parser_t *ps, char **out)
{
    if (ps->end - ps->p >= 3 && ps->p[1] == '\'' && ps->p[2] == '\'')
        return fail(ps, "multi-line strings (''') are not supported");
    const char *s = ps->p + 1;
    const char *lim = line_end(ps);
    const char *q = s;
    for (; q < lim && *q != '\''; q++) {
        if (*q == '\r' && q + 1 == lim)
            break;
        if (is_control((unsigned char)*q))
            return fail(ps, "control character 0x%02x in string", (unsigned char)*q);
    }
    if (q >= lim || *q != '\'')
        return fail(ps, "unterminated string");
    *out = dup_range(s, (size_t)(q - s));
    if (*out == NULL)
        return fail(ps, "out of memory");
    ps->p = q + 1;
    return 0;
}

static int parse_simple_key(parser_t *ps, char **out)
{
    char d[32];
    if (ps->p < ps->end && *ps->p == '"')
        return parse_basic_string(ps, out);
    if (ps->p < ps->end && *ps->p == '\'')
        return parse_literal_string(ps, out);
    const char *s = ps->p;
    while (ps->p < ps->end && is_bare_key_char(*ps->p))
        ps->p++;
    if (ps->p == s) {
        describe(ps, d, sizeof(d));
        return fail(ps, "expected a key, got %s", d);
    }
    *out = dup_range(s, (size_t)(ps->p - s));
    if (*out == NULL)
        return fail(ps, "out of memory");
    return 0;
}

/* A dotted key: simple-key ( '.' simple-key )*, blanks allowed around dots. */
static int parse_key(parser_t *ps, char **path, size_t *depth)
{
    for (;;) {
        if (*depth == PGP_TOML_MAX_DEPTH)
            return fail(ps, "key has more than %d dotted parts", PGP_TOML_MAX_DEPTH);
        if (parse_simple_key(ps, &path[*depth]) < 0)
            return -1;
        (*depth)++;
        skip_blank(ps);
        if (ps->p >= ps->end || *ps->p != '.')
            return 0;
        ps->p++;
        skip_blank(ps);
    }
}

static void free_path(char **path, size_t *depth)
{
    for (size_t i = 0; i < *depth; i++)
        free(path[i]);
    *depth = 0;
}

static int parse_value(parser_t *ps, pgp_toml_value_t *v, bool in_array);

/* Inside an array: blanks, newlines and comments between elements. */
static int skip_array_space(parser_t *ps)
{
    for (;;) {
        skip_blank(ps);
        if (ps->p >= ps->end)
            return 0;
        if (at_newline(ps))
            take_newline(ps);
        else if (*ps->p == '#') {
            if (skip_comment(ps) < 0)
                return -1;
        } else
            return 0;
    }
}

static int parse_array(parser_t *ps, pgp_toml_value_t *v)
{
    char d[32];
    ps->p++;   /* '[' */
    v->type = PGP_TOML_ARRAY;
    v->u.a.items = NULL;
    v->u.a.count = 0;
    for (;;) {
        if (skip_array_space(ps) < 0)
            return -1;
        if (ps->p >= ps->end)
            return fail(ps, "unterminated array (missing ']')");
        if (*ps->p == ']') {
            ps->p++;
            return 0;
        }
        if (v->u.a.count >= PGP_TOML_MAX_ARRAY_ITEMS)
            return fail(ps, "array has more than %d elements", PGP_TOML_MAX_ARRAY_ITEMS);
        pgp_toml_value_t item = { .type = PGP_TOML_STRING, .u.s = NULL };
        if (parse_value(ps, &item, true) < 0) {
            pgp_toml_value_free(&item);
            return -1;
        }
        if (array_push(v, &item) < 0) {
            pgp_toml_value_free(&item);
            return fail(ps, "out of memory");
        }
        if (skip_array_space(ps) < 0)
            return -1;
        if (ps->p >= ps->end)
            return fail(ps, "unterminated array (missing ']')");
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p == ']') {
            ps->p++;
            return 0;
        }
        describe(ps, d, sizeof(d));
        return fail(ps, "expected ',' or ']' in array, got %s", d);
    }
}

/* True for tokens shaped like a TOML date or time: 1979-05-27, 07:32:00. */
static bool looks_like_datetime(const char *t, size_t n)
{
    if (n >= 5 && is_digit(t[0]) && is_digit(t[1]) && is_digit(t[2]) && is_digit(t[3]) &&
        t[4] == '-')
        return true;
    return n >= 3 && is_digit(t[0]) && is_digit(t[1]) && t[2] == ':';
}

/* Parse one value at the cursor into *v (which the caller frees on error too). */
static int parse_value(parser_t *ps, pgp_toml_value_t *v, bool in_array)
{
    char d[32];
    char what[256];
    if (ps->p >= ps->end || at_newline(ps) || *ps->p == '#')
        return fail(ps, "missing value");
    switch (*ps->p) {
    case '"':
        v->type = PGP_TOML_STRING;
        return parse_basic_string(ps, &v->u.s);
    case '\'':
        v->type = PGP_TOML_STRING;
        return parse_literal_string(ps, &v->u.s);
    case '[':
        if (in_array)
            return fail(ps, "nested arrays are not supported");
        return parse_array(ps, v);
    case '{':
        return fail(ps, "inline tables are not supported");
    default:
        break;
    }
    const char *s = ps->p;
    while (ps->p < ps->end && is_token_char(*ps->p))
        ps->p++;
    size_t n = (size_t)(ps->p - s);
    if (n == 0) {
        describe(ps, d, sizeof(d));
        return fail(ps, "expected a value, got %s", d);
    }
    if ((n == 4 && memcmp(s, "true", 4) == 0) || (n == 5 && memcmp(s, "false", 5) == 0)) {
        v->type = PGP_TOML_BOOL;
        v->u.b = n == 4;
        return 0;
    }
    if (looks_like_datetime(s, n))
        return fail(ps, "dates and times are not supported (quote the value)");
    if (parse_number(s, n, false, v, what, sizeof(what)) < 0)
        return fail(ps, "%s", what);
    return 0;
}

/* "[a.b]" */
static int parse_header(parser_t *ps)
{
    char d[32];
    int line = ps->line;
    ps->p++;
    if (ps->p < ps->end && *ps->p == '[')
        return fail(ps, "arrays of tables ([[...]]) are not supported");
    free_path(ps->table, &ps->table_depth);
    skip_blank(ps);
    if (parse_key(ps, ps->table, &ps->table_depth) < 0)
        return -1;
    if (ps->p >= ps->end || *ps->p != ']') {
        describe(ps, d, sizeof(d));
        return fail(ps, "expected ']' to close the table header, got %s", d);
    }
    ps->p++;
    if (end_line(ps, "table header") < 0)
        return -1;
    pgp_toml_event_t ev = {
        .kind = PGP_TOML_TABLE, .line = line,
        .table = ps->table, .table_depth = ps->table_depth,
    };
    char what[512] = "";
    if (ps->handler(ps->ctx, &ev, what, sizeof(what)) < 0) {
        ps->line = line;
        return fail(ps, "%s", what);
    }
    return 0;
}

/* "key = value" */
static int parse_keyval(parser_t *ps)
{
    char d[32];
    int line = ps->line;
    int rc = -1;
    if (parse_key(ps, ps->key, &ps->key_depth) < 0)
        goto out;
    if (ps->p >= ps->end || *ps->p != '=') {
        describe(ps, d, sizeof(d));
        fail(ps, "expected '=' after the key, got %s", d);
        goto out;
    }
    ps->p++;
    skip_blank(ps);
    if (parse_value(ps, &ps->value, false) < 0)
        goto out;
    if (end_line(ps, "value") < 0)
        goto out;
    pgp_toml_event_t ev = {
        .kind = PGP_TOML_KEYVAL, .line = line,
        .table = ps->table, .table_depth = ps->table_depth,
        .key = ps->key, .key_depth = ps->key_depth,
        .value = &ps->value,
    };
    char what[512] = "";
    if (ps->handler(ps->ctx, &ev, what, sizeof(what)) < 0) {
        ps->line = line;
        fail(ps, "%s", what);
        goto out;
    }
    rc = 0;
out:
    free_path(ps->key, &ps->key_depth);
    pgp_toml_value_free(&ps->value);
    return rc;
}

/* Whole-input checks, so the parser proper may assume bounded, clean lines. */
static int prescan(parser_t *ps)
{
    const unsigned char *s = (const unsigned char *)ps->p;
    size_t n = (size_t)(ps->end - ps->p);
    size_t line_start = 0;
    ps->line = 1;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c == '\n') {
            if (i - line_start > PGP_TOML_MAX_LINE_BYTES)
                return fail(ps, "line longer than %d bytes", PGP_TOML_MAX_LINE_BYTES);
            ps->line++;
            line_start = ++i;
            continue;
        }
        if (c == 0)
            return fail(ps, "NUL byte in input");
        size_t k = utf8_len(s + i, n - i);
        if (k == 0)
            return fail(ps, "invalid UTF-8");
        i += k;
    }
    if (n - line_start > PGP_TOML_MAX_LINE_BYTES)
        return fail(ps, "line longer than %d bytes", PGP_TOML_MAX_LINE_BYTES);
    ps->line = 1;
    return 0;
}

int pgp_toml_parse(const char *name, const char *data, size_t len,
                   pgp_toml_handler_fn handler, void *ctx, char *err, size_t errlen)
{
    parser_t ps;
    memset(&ps, 0, sizeof(ps));
    ps.name = name != NULL ? name : "(input)";
    ps.p = data != NULL ? data : "";
    ps.end = ps.p + (data != NULL ? len : 0);
    ps.line = 1;
    ps.err = err;
    ps.errlen = errlen;
    ps.handler = handler;
    ps.ctx = ctx;
    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (len > (size_t)INT_MAX / 2)
        return fail(&ps, "input too large");   /* keeps line numbers in an int */
    int rc = prescan(&ps);
    if (rc < 0)
        return -1;
    if (ps.end - ps.p >= 3 && memcmp(ps.p, "\xEF\xBB\xBF", 3) == 0)
        ps.p += 3;   /* UTF-8 byte order mark */
    while (rc == 0) {
        skip_blank(&ps);
        if (ps.p >= ps.end)
            break;
        if (*ps.p == '#' || at_newline(&ps))
            rc = end_line(&ps, "comment");
        else if (*ps.p == '[')
            rc = parse_header(&ps);
        else
            rc = parse_keyval(&ps);
    }
    free_path(ps.table, &ps.table_depth);
    return rc < 0 ? -1 : 0;
}

/* ---- text values (environment, command line) ------------------------- */

static bool word_is(const char *t, const char *w)
{
    return strcasecmp(t, w) == 0;
}

int pgp_toml_parse_text(pgp_toml_type_t type, const char *text, pgp_toml_value_t *out,
                        char *what, size_t whatlen)
{
    char q[80];
    size_t n = strlen(text);
    memset(out, 0, sizeof(*out));
    out->type = PGP_TOML_STRING;
    pgp_toml_quote(text, n, q, sizeof(q));
    if (!utf8_valid(text, n)) {
        whatf(what, whatlen, "invalid UTF-8 in %s", q);
        return -1;
    }
    switch (type) {
    case PGP_TOML_STRING:
        out->u.s = dup_range(text, n);
        if (out->u.s == NULL)
            goto oom;
        return 0;
    case PGP_TOML_INTEGER:
    case PGP_TOML_FLOAT: {
        pgp_toml_value_t v;
        char why[160];
        int rc = parse_number(text, n, true, &v, why, sizeof(why));
        bool ok = rc == 0;
        if (ok && v.type == PGP_TOML_INTEGER && type == PGP_TOML_FLOAT) {
            v.type = PGP_TOML_FLOAT;
            v.u.f = (double)v.u.i;
        }
        if (!ok || v.type != type) {
            /* Overflow is worth saying; other failures are just "not a number". */
            if (rc == -2)
                whatf(what, whatlen, "%s", why);
            else
                whatf(what, whatlen, "expected %s, got %s",
                      type == PGP_TOML_INTEGER ? "an integer" : "a number", q);
            return -1;
        }
        *out = v;
        return 0;
    }
    case PGP_TOML_BOOL:
        if (word_is(text, "true") || word_is(text, "yes") || word_is(text, "on") ||
            strcmp(text, "1") == 0) {
            out->type = PGP_TOML_BOOL;
            out->u.b = true;
            return 0;
        }
        if (word_is(text, "false") || word_is(text, "no") || word_is(text, "off") ||
            strcmp(text, "0") == 0) {
            out->type = PGP_TOML_BOOL;
            out->u.b = false;
            return 0;
        }
        whatf(what, whatlen, "expected a boolean (true/false), got %s", q);
        return -1;
    case PGP_TOML_ARRAY: {
        pgp_toml_value_t arr = { .type = PGP_TOML_ARRAY };
        const char *p = text, *end = text + n;
        for (;;) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *s = p, *t = comma != NULL ? comma : end;
            while (s < t && (*s == ' ' || *s == '\t'))
                s++;
            while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
                t--;
            if (t == s) {
                /* "" (empty list) and a trailing comma are fine; "a,,b" is a typo. */
                if (comma == NULL && (arr.u.a.count > 0 || p == text))
                    break;
                pgp_toml_value_free(&arr);
                whatf(what, whatlen, "empty element in list %s", q);
                return -1;
            }
            if (arr.u.a.count >= PGP_TOML_MAX_ARRAY_ITEMS) {
                pgp_toml_value_free(&arr);
                whatf(what, whatlen, "list has more than %d elements", PGP_TOML_MAX_ARRAY_ITEMS);
                return -1;
            }
            pgp_toml_value_t item = { .type = PGP_TOML_STRING, .u.s = dup_range(s, (size_t)(t - s)) };
            if (item.u.s == NULL || array_push(&arr, &item) < 0) {
                pgp_toml_value_free(&item);
                pgp_toml_value_free(&arr);
                goto oom;
            }
            if (comma == NULL)
                break;
            p = comma + 1;
        }
        *out = arr;
        return 0;
    }
    }
    whatf(what, whatlen, "unsupported type");
    return -1;
oom:
    whatf(what, whatlen, "out of memory");
    return -1;
}

/* ---- output ------------------------------------------------------------ */

void pgp_toml_write_string(FILE *f, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s != NULL ? s : ""); *p; p++) {
        switch (*p) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\b': fputs("\\b", f); break;
        case '\t': fputs("\\t", f); break;
        case '\n': fputs("\\n", f); break;
        case '\f': fputs("\\f", f); break;
        case '\r': fputs("\\r", f); break;
        default:
            if (*p < 0x20 || *p == 0x7F) {
                char esc[7] = { '\\', 'u', '0', '0', hex[*p >> 4], hex[*p & 15], 0 };
                fputs(esc, f);
            } else {
                fputc(*p, f);
            }
        }
    }
    fputc('"', f);
}

void pgp_toml_write_value(FILE *f, const pgp_toml_value_t *v)
{
    switch (v->type) {
    case PGP_TOML_STRING:
        pgp_toml_write_string(f, v->u.s);
        break;
    case PGP_TOML_INTEGER:
        fprintf(f, "%lld", (long long)v->u.i);
        break;
    case PGP_TOML_FLOAT: {
        char buf[64];
        if (isnan(v->u.f)) {
            fputs("nan", f);
            break;
        }
        if (isinf(v->u.f)) {
            fputs(v->u.f < 0 ? "-inf" : "inf", f);
            break;
        }
        if (v->u.f == floor(v->u.f) && fabs(v->u.f) < 1e15) {
            snprintf(buf, sizeof(buf), "%.1f", v->u.f);
        } else {
            /* Shortest %g text that reads back to the same double. */
            for (int prec = 1; prec <= 17; prec++) {
                snprintf(buf, sizeof(buf), "%.*g", prec, v->u.f);
                if (strtod(buf, NULL) == v->u.f)
                    break;
            }
        }
        fputs(buf, f);
        if (strpbrk(buf, ".eE") == NULL)
            fputs(".0", f);
        break;
    }
    case PGP_TOML_BOOL:
        fputs(v->u.b ? "true" : "false", f);
        break;
    case PGP_TOML_ARRAY:
        fputc('[', f);
        for (size_t i = 0; i < v->u.a.count; i++) {
            if (i > 0)
                fputs(", ", f);
            pgp_toml_write_value(f, &v->u.a.items[i]);
        }
        fputc(']', f);
        break;
    }
}
