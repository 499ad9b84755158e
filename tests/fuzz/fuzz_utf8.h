/*
 * fuzz_utf8.h - for fuzz targets: an independent UTF-8 validity check
 * (RFC 3629, table 3-7 of the Unicode standard), written apart from
 * render.c and console.c so it can catch their decoders' bugs.
 */
#ifndef PGPROXY_FUZZ_UTF8_H
#define PGPROXY_FUZZ_UTF8_H

#include <stddef.h>

/* True when p[0..n) is valid UTF-8. */
static int valid_utf8(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        size_t k;
        unsigned lo = 0x80, hi = 0xBF;
        if (c <= 0x7F) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
        } else if (c == 0xE0) {
            k = 2; lo = 0xA0;
        } else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
            k = 2;
        } else if (c == 0xED) {
            k = 2; hi = 0x9F;
        } else if (c == 0xF0) {
            k = 3; lo = 0x90;
        } else if (c >= 0xF1 && c <= 0xF3) {
            k = 3;
        } else if (c == 0xF4) {
            k = 3; hi = 0x8F;
        } else {
            return 0;
        }
        if (n - i <= k)
            return 0;
        if (p[i + 1] < lo || p[i + 1] > hi)
            return 0;
        for (size_t j = 2; j <= k; j++)
            if (p[i + j] < 0x80 || p[i + j] > 0xBF)
                return 0;
        i += k + 1;
    }
    return 1;
}

#endif
