/*
 * fuzz_render.c - libFuzzer target for the render escapers.
 *
 * Arbitrary bytes go through the JSON string writer; the output must be
 * valid UTF-8 (checked by an independent RFC 3629 validator below), valid
 * JSON string syntax (quotes, no raw control characters, only legal
 * escapes), and, when the input itself was valid UTF-8, decode back to
 * exactly the input.  The same bytes go through the HTML and Prometheus
 * label escapers (valid UTF-8, no raw metacharacters) and, under a cap
 * taken from the first byte, the buffer must never exceed its cap and must
 * report PGP_RENDER_ETOOBIG exactly when the uncapped output is larger.
 * Any violation abort()s; sanitizers catch the rest.
 */
#include "pgproxy/render.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#include "fuzz_utf8.h"

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/*
 * Check the JSON string s[0..n) ("..." with escapes) and decode it into
 * out (room for 4*n bytes); returns the decoded length, abort()s on bad
 * syntax.  pgproxy never emits surrogate escapes, so \uD800-\uDFFF is bad.
 */
static size_t json_decode(const unsigned char *s, size_t n, unsigned char *out)
{
    size_t o = 0;
    if (n < 2 || s[0] != '"' || s[n - 1] != '"')
        abort();
    for (size_t i = 1; i < n - 1; i++) {
        unsigned char c = s[i];
        if (c < 0x20 || c == 0x7F || c == '"' || c == '<' || c == '>' || c == '&')
            abort();   /* must have been escaped */
        if (c != '\\') {
            out[o++] = c;
            continue;
        }
        if (++i >= n - 1)
            abort();
        switch (s[i]) {
        case '"': out[o++] = '"'; break;
        case '\\': out[o++] = '\\'; break;
        case '/': out[o++] = '/'; break;
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            if (i + 4 >= n - 1)
                abort();
            unsigned cp = 0;
            for (int k = 1; k <= 4; k++) {
                int h = hexval(s[i + k]);
                if (h < 0)
                    abort();
                cp = cp << 4 | (unsigned)h;
            }
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDFFF)
                abort();
            if (cp < 0x80) {
                out[o++] = (unsigned char)cp;
            } else if (cp < 0x800) {
                out[o++] = (unsigned char)(0xC0 | cp >> 6);
                out[o++] = (unsigned char)(0x80 | (cp & 0x3F));
            } else {
                out[o++] = (unsigned char)(0xE0 | cp >> 12);
                out[o++] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
                out[o++] = (unsigned char)(0x80 | (cp & 0x3F));
            }
            break;
        }
        default:
            abort();
        }
    }
    return o;
}

static void check_json(const uint8_t *data, size_t size)
{
    pgp_render_t r;
    pgp_render_init(&r, SIZE_MAX);
    pgp_render_json_string(&r, data, size);
    if (pgp_render_error(&r) != 0)
        abort();
    const unsigned char *s = (const unsigned char *)pgp_render_data(&r);
    size_t n = pgp_render_len(&r);
    if (!valid_utf8(s, n) || strlen((const char *)s) != n)
        abort();
    unsigned char *dec = malloc(4 * n + 1);
    if (dec == NULL)
        abort();
    size_t dn = json_decode(s, n, dec);
    if (!valid_utf8(dec, dn))
        abort();
    if (valid_utf8(data, size) && (dn != size || memcmp(dec, data, size) != 0))
        abort();   /* valid input must come back unchanged */
    free(dec);

    /* The same writes under a cap: never beyond it, an error exactly when it did not fit. */
    size_t cap = size > 0 ? data[0] : 0;
    pgp_render_t c;
    pgp_render_init(&c, cap);
    pgp_render_json_string(&c, data, size);
    if (pgp_render_len(&c) > cap)
        abort();
    if ((n > cap) != (pgp_render_error(&c) == PGP_RENDER_ETOOBIG))
        abort();
    if (pgp_render_error(&c) == 0 && memcmp(pgp_render_data(&c), s, n) != 0)
        abort();
    pgp_render_free(&c);
    pgp_render_free(&r);
}

static void check_html(const uint8_t *data, size_t size)
{
    pgp_render_t r;
    pgp_render_init(&r, SIZE_MAX);
    pgp_render_html(&r, data, size);
    const unsigned char *s = (const unsigned char *)pgp_render_data(&r);
    size_t n = pgp_render_len(&r);
    if (pgp_render_error(&r) != 0 || !valid_utf8(s, n))
        abort();
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '<' || s[i] == '>' || s[i] == '"' || s[i] == '\'' || s[i] == 0)
            abort();
        if (s[i] == '&' && !(strncmp((const char *)s + i, "&amp;", 5) == 0 ||
                             strncmp((const char *)s + i, "&lt;", 4) == 0 ||
                             strncmp((const char *)s + i, "&gt;", 4) == 0 ||
                             strncmp((const char *)s + i, "&quot;", 6) == 0 ||
                             strncmp((const char *)s + i, "&#39;", 5) == 0))
            abort();
    }
    pgp_render_free(&r);
}

static void check_prom(const uint8_t *data, size_t size)
{
    pgp_render_t r;
    pgp_render_init(&r, SIZE_MAX);
    pgp_render_prom_label_value(&r, data, size);
    const unsigned char *s = (const unsigned char *)pgp_render_data(&r);
    size_t n = pgp_render_len(&r);
    if (pgp_render_error(&r) != 0 || !valid_utf8(s, n))
        abort();
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\n' || s[i] == '"')
            abort();
        if (s[i] == '\\') {
            if (i + 1 >= n || (s[i + 1] != '\\' && s[i + 1] != '"' && s[i + 1] != 'n'))
                abort();
            i++;
        }
    }
    pgp_render_free(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_json(data, size);
    check_html(data, size);
    check_prom(data, size);
    return 0;
}
