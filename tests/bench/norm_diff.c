/*
 * norm_diff.c - differential driver for the normalizer (not a test: run by
 * norm_diff.sh against two builds, old and new, whose outputs must be
 * byte-identical).  Reads records from stdin (a 4-byte
 * little-endian length, then the bytes: norm_corpus.py); for each one
 * prints everything pgp_normalize() returns (text, fingerprint, values
 * hash, counts, kind, name span, set_local, tags) with
 * standard_conforming_strings on and off, the text and result for a
 * short output buffer, and a digest of the lexer's token stream.  Each
 * record is copied into a malloc'd buffer of exactly its length so that
 * ASan builds see any read past the end.
 *
 *   norm_diff < records
 */
#include "pgproxy/lex.h"
#include "pgproxy/normalize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void put_text(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '\\')
            printf("\\x%02x", c);
        else
            putchar(c);
    }
}

static void one(const char *sql, size_t len, const pgp_norm_opts_t *opts, char *out,
                size_t cap, bool with_tags)
{
    pgp_norm_result_t r;
    pgp_norm_tags_t tags;
    if (out)
        memset(out, 0x5a, cap ? cap : 1);
    pgp_normalize(sql, len, opts, out, cap, with_tags ? &tags : NULL, &r);
    char fp[17];
    pgp_fingerprint_format(r.fingerprint, fp);
    printf("%s\t%016llx\t%zu/%zu/%d\tl%u s%u k%d/%d n%zu+%zu\t", fp,
           (unsigned long long)r.values_hash, r.out_len, r.norm_len, r.out_truncated,
           r.literal_count, r.statement_count, (int)r.kind, r.set_local, r.name_off,
           r.name_len);
    if (cap)
        put_text(out, r.out_len + 1 <= cap ? r.out_len + 1 : cap); /* NUL included */
    if (with_tags) {
        printf("\tT%u/%d/%u", tags.count, tags.truncated, tags.buf_used);
        for (uint32_t i = 0; i < tags.count && i < PGP_NORM_TAGS_MAX; i++) {
            putchar(' ');
            put_text(tags.buf + tags.tag[i].key_off, tags.tag[i].key_len);
            putchar('=');
            put_text(tags.buf + tags.tag[i].val_off, tags.tag[i].val_len);
        }
    }
    putchar('\n');
}

static void lex_digest(const char *sql, size_t len, bool bs)
{
    pgp_lex_t lx;
    pgp_lex_token_t t;
    uint64_t h = 1469598103934665603ULL;
    unsigned count = 0;
    pgp_lex_init(&lx, sql, len, bs);
    do {
        pgp_lex_next(&lx, &t);
        uint64_t v = (uint64_t)t.kind | (uint64_t)t.flags << 8 |
                     (uint64_t)(t.p - sql) << 16 | (uint64_t)t.len << 40;
        h = (h ^ v) * 1099511628211ULL;
        count++;
    } while (t.kind != PGP_LEX_EOF && count < 1000000);
    printf("L%d %u %016llx\n", bs, count, (unsigned long long)h);
}

int main(void)
{
    size_t cap = 1 << 20, n = 0;
    char *rec = malloc(cap);
    char *out = malloc(cap + 1);
    if (!rec || !out)
        return 1;
    pgp_norm_opts_t off = {.standard_conforming_strings = false};
    pgp_norm_opts_t on = {.standard_conforming_strings = true};
    unsigned long nrec = 0;
    unsigned char hdr[4];
    while (fread(hdr, 1, 4, stdin) == 4) {
        n = (size_t)hdr[0] | (size_t)hdr[1] << 8 | (size_t)hdr[2] << 16 | (size_t)hdr[3] << 24;
        if (n > cap || fread(rec, 1, n, stdin) != n)
            return 1;
        char *sql = malloc(n ? n : 1);
        if (!sql)
            return 1;
        memcpy(sql, rec, n);
        printf("#%lu %zu\n", nrec++, n);
        one(sql, n, NULL, out, n + 1, true);
        one(sql, n, &on, out, n + 1, false);
        one(sql, n, &off, out, n + 1, true);
        one(sql, n, NULL, out, n / 3 + 1, false);
        one(sql, n, &off, out, n / 2, true);
        one(sql, n, NULL, NULL, 0, false);
        lex_digest(sql, n, false);
        lex_digest(sql, n, true);
        free(sql);
    }
    free(rec);
    free(out);
    return 0;
}
