/*
 * json_check.h - for unit tests: a tiny RFC 8259 validator that also
 * checks UTF-8, written apart from render.c so it can catch its bugs.
 * Header-only (static functions): include it from one test file each.
 */
#ifndef PGPROXY_TEST_JSON_CHECK_H
#define PGPROXY_TEST_JSON_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* A tiny RFC 8259 validator that also checks UTF-8 (enough for the tests). */
typedef struct jp {
    const unsigned char *p, *e;
} jp_t;

static bool j_value(jp_t *j, int depth);

static void j_ws(jp_t *j)
{
    while (j->p < j->e && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r'))
        j->p++;
}

static bool j_string(jp_t *j)
{
    if (j->p >= j->e || *j->p != '"')
        return false;
    j->p++;
    while (j->p < j->e && *j->p != '"') {
        unsigned c = *j->p;
        if (c < 0x20)
            return false;
        if (c == '\\') {
            j->p++;
            if (j->p >= j->e)
                return false;
            if (*j->p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (j->p + i >= j->e || !strchr("0123456789abcdefABCDEF", j->p[i]))
                        return false;
                j->p += 5;
            } else if (strchr("\"\\/bfnrt", *j->p) && *j->p != '\0') {
                j->p++;
            } else {
                return false;
            }
        } else if (c < 0x80) {
            j->p++;
        } else {
            int n = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 0;
            if (n == 0 || j->e - j->p < n)
                return false;
            for (int i = 1; i < n; i++)
                if ((j->p[i] & 0xC0) != 0x80)
                    return false;
            j->p += n;
        }
    }
    if (j->p >= j->e)
        return false;
    j->p++;
    return true;
}

static bool j_value(jp_t *j, int depth)
{
    if (depth > 64)
        return false;
    j_ws(j);
    if (j->p >= j->e)
        return false;
    unsigned c = *j->p;
    if (c == '{' || c == '[') {
        unsigned close = c == '{' ? '}' : ']';
        j->p++;
        j_ws(j);
        if (j->p < j->e && *j->p == close) {
            j->p++;
            return true;
        }
        for (;;) {
            if (c == '{') {
                j_ws(j);
                if (!j_string(j))
                    return false;
                j_ws(j);
                if (j->p >= j->e || *j->p != ':')
                    return false;
                j->p++;
            }
            if (!j_value(j, depth + 1))
                return false;
            j_ws(j);
            if (j->p >= j->e)
                return false;
            if (*j->p == ',') {
                j->p++;
                continue;
            }
            if (*j->p == close) {
                j->p++;
                return true;
            }
            return false;
        }
    }
    if (c == '"')
        return j_string(j);
    static const char *const lits[] = {"true", "false", "null"};
    for (size_t i = 0; i < 3; i++) {
        size_t n = strlen(lits[i]);
        if ((size_t)(j->e - j->p) >= n && memcmp(j->p, lits[i], n) == 0) {
            j->p += n;
            return true;
        }
    }
    const unsigned char *s = j->p;
    if (*j->p == '-')
        j->p++;
    while (j->p < j->e && ((*j->p >= '0' && *j->p <= '9') || *j->p == '.' || *j->p == 'e' ||
                           *j->p == 'E' || *j->p == '+' || *j->p == '-'))
        j->p++;
    return j->p > s;
}

static bool json_valid(const char *s, size_t n)
{
    jp_t j = {(const unsigned char *)s, (const unsigned char *)s + n};
    if (!j_value(&j, 0))
        return false;
    j_ws(&j);
    return j.p == j.e;
}

#endif
