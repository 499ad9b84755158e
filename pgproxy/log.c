/*
 * log.c - structured log lines on stderr (logfmt or JSON).
 *
 * Each call assembles the whole line in a stack buffer and writes it with
 * one write(2), so lines from several threads never interleave.  Values
 * are escaped for the output format: logfmt quotes values containing
 * spaces, quotes, '=' or control bytes; JSON escapes per RFC 8259 and
 * replaces invalid UTF-8 by U+FFFD.  Nothing here allocates.
 */
#include "pgproxy/log.h"

#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PGP_LOG_LINE_BYTES 4096

static _Atomic int g_level = PGP_LOG_INFO;
static _Atomic int g_format = PGP_LOG_TEXT;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

int pgp_log_level_parse(const char *name, pgp_log_level_t *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (pgp_log_level_t)i;
            return 0;
        }
    }
    if (strcmp(name, "warning") == 0) {
        *out = PGP_LOG_WARN;
        return 0;
    }
    return -1;
}

int pgp_log_format_parse(const char *name, pgp_log_format_t *out)
{
    if (strcmp(name, "text") == 0 || strcmp(name, "logfmt") == 0) {
        *out = PGP_LOG_TEXT;
        return 0;
    }
    if (strcmp(name, "json") == 0) {
        *out = PGP_LOG_JSON;
        return 0;
    }
    return -1;
}

void pgp_log_configure(pgp_log_level_t level, pgp_log_format_t format)
{
    atomic_store(&g_level, (int)level);
    atomic_store(&g_format, (int)format);
}

bool pgp_log_enabled(pgp_log_level_t level)
{
    return (int)level >= atomic_load(&g_level);
}

/* A bounded line under construction; overflow makes further appends no-ops. */
typedef struct line {
    char buf[PGP_LOG_LINE_BYTES];
    size_t len;
} line_t;

static void put(line_t *l, const char *s, size_t n)
{
    size_t room = sizeof(l->buf) - 1 - l->len;   /* keep one byte for '\n' */
    if (n > room)
        n = room;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void putc_(line_t *l, char c) { put(l, &c, 1); }

static void put_str(line_t *l, const char *s) { put(l, s, strlen(s)); }

/* Length of a valid UTF-8 sequence at s (max n bytes), 0 if invalid. */
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

static void put_json_string(line_t *l, const char *v)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)v;
    size_t n = strlen(v);
    putc_(l, '"');
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\') {
            putc_(l, '\\');
            putc_(l, (char)c);
            i++;
        } else if (c < 0x20) {
            char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            put(l, esc, sizeof(esc));
            i++;
        } else {
            size_t k = utf8_len(s + i, n - i);
            if (k == 0) {
                put(l, "\xEF\xBF\xBD", 3);
                i++;
            } else {
                put(l, (const char *)s + i, k);
                i += k;
            }
        }
    }
    putc_(l, '"');
}

static void put_logfmt_value(line_t *l, const char *v)
{
    static const char hex[] = "0123456789abcdef";
    bool quote = (*v == '\0');
    for (const unsigned char *p = (const unsigned char *)v; *p && !quote; p++)
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
            quote = true;
    if (!quote) {
        put_str(l, v);
        return;
    }
    putc_(l, '"');
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p == '"' || *p == '\\') {
            putc_(l, '\\');
            putc_(l, (char)*p);
        } else if (*p == '\n') {
            put(l, "\\n", 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            char esc[4] = { '\\', 'x', hex[*p >> 4], hex[*p & 15] };
            put(l, esc, sizeof(esc));
        } else {
            putc_(l, (char)*p);
        }
    }
    putc_(l, '"');
}

void pgp_logv(pgp_log_level_t level, const char *msg, va_list ap)
{
    if (!pgp_log_enabled(level))
        return;
    bool json = atomic_load(&g_format) == PGP_LOG_JSON;
    line_t l;
    l.len = 0;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char tbuf[40];
    size_t tn = strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%S", &tm);
    char frac[8] = { '.', 0, 0, 0, 'Z', 0 };
    long ms = ts.tv_nsec / 1000000;
    frac[1] = (char)('0' + ms / 100);
    frac[2] = (char)('0' + ms / 10 % 10);
    frac[3] = (char)('0' + ms % 10);
    memcpy(tbuf + tn, frac, 6);

    const char *lvl = level_names[(int)level & 3];
    if (json) {
        put_str(&l, "{\"ts\":\"");
        put_str(&l, tbuf);
        put_str(&l, "\",\"level\":\"");
        put_str(&l, lvl);
        put_str(&l, "\",\"msg\":");
        put_json_string(&l, msg);
    } else {
        put_str(&l, "ts=");
        put_str(&l, tbuf);
        put_str(&l, " level=");
        put_str(&l, lvl);
        put_str(&l, " msg=");
        put_logfmt_value(&l, msg);
    }
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (k == NULL)
            break;
        const char *v = va_arg(ap, const char *);
        if (v == NULL)
            v = "";
        if (json) {
            putc_(&l, ',');
            put_json_string(&l, k);
            putc_(&l, ':');
            put_json_string(&l, v);
        } else {
            putc_(&l, ' ');
            put_str(&l, k);
            putc_(&l, '=');
            put_logfmt_value(&l, v);
        }
    }
    if (json)
        putc_(&l, '}');
    l.buf[l.len++] = '\n';
    ssize_t off = 0;
    while (off < (ssize_t)l.len) {
        ssize_t w = write(STDERR_FILENO, l.buf + off, l.len - (size_t)off);
        if (w <= 0)
            break;
        off += w;
    }
}

void pgp_log(pgp_log_level_t level, const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    pgp_logv(level, msg, ap);
    va_end(ap);
}
