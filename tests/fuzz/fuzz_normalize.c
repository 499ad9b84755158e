/*
 * fuzz_normalize.c - libFuzzer target for pgproxy/normalize.c, lex.c and
 * tags.c.
 *
 * Byte 0 picks the options (bit 0: standard_conforming_strings off) and
 * the output buffer size (exact, or cut short); the rest is the SQL,
 * copied into a buffer of exactly its length so ASan sees any read past
 * it.  Checked, aborting on failure: the output fits the documented bound
 * and holds no control bytes; the fingerprint and values hash do not
 * depend on the output buffer size and are deterministic; a cut output is
 * a prefix of the whole one; tags stay within their bounds; and
 * normalizing the normalized text again is stable (see the note at
 * check_idempotent for the one case where the spec makes it impossible).
 */
#include "pgproxy/normalize.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FAIL(...)                                                  \
    do {                                                           \
        fprintf(stderr, "fuzz_normalize: " __VA_ARGS__);           \
        fputc('\n', stderr);                                       \
        abort();                                                   \
    } while (0)

/*
 * Normalizing twice: the normalized text normalizes to itself, with the
 * same fingerprint (a lone ? hashes as a placeholder), when every ? in it
 * is delimited by space , ( ) [ ] or an end.  It cannot hold in general,
 * and the spec makes that impossible to force: ? is an operator character,
 * so x=? (from x=1) or ?e (from 1e) re-lex as other operators, and the
 * output may not grow to add spaces.  Quoted identifiers with control
 * bytes print them as ?, so inputs with " are skipped too.
 */
static bool safe_for_second_pass(const char *s, size_t n)
{
    /* Empty list elements (",,": malformed SQL) let the list collapse drop the
     * separator after an ORDER BY position, which then no longer ends its
     * item on a second pass (found by this target; the normalizer before the
     * fast paths behaves the same; noted on issue 3). */
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == ',' && s[i + 1] == ',')
            return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '?')
            continue;
        char b = i ? s[i - 1] : ' ', a = i + 1 < n ? s[i + 1] : ' ';
        if (!strchr(" ,([", b) || !strchr(" ,)]", a))
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    size_t len = size - 1;
    char *sql = malloc(len ? len : 1);
    char *out = malloc(len + PGP_NORMALIZE_MAX_GROWTH + 1);
    char *cut = malloc(len + PGP_NORMALIZE_MAX_GROWTH + 1);
    if (!sql || !out || !cut)
        abort();
    memcpy(sql, data + 1, len);
    pgp_norm_opts_t opts = {.standard_conforming_strings = !(ctl & 1)};

    pgp_norm_result_t r1, r2, r3;
    pgp_norm_tags_t tags;
    pgp_normalize(sql, len, &opts, out, len + PGP_NORMALIZE_MAX_GROWTH + 1, &tags, &r1);
    if (r1.out_truncated || r1.out_len != r1.norm_len)
        FAIL("exact buffer truncated: %zu of %zu (input %zu)", r1.out_len, r1.norm_len, len);
    if (r1.out_len > len + PGP_NORMALIZE_MAX_GROWTH)
        FAIL("output %zu longer than input %zu", r1.out_len, len);
    if (out[r1.out_len] != '\0')
        FAIL("not NUL-terminated");
    for (size_t i = 0; i < r1.out_len; i++)
        if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] == 0x7f)
            FAIL("control byte in output at %zu", i);
    if (r1.out_len && out[0] == ' ')
        FAIL("leading space");
    /* (an unterminated "quoted identifier" may end with its own space) */
    if (r1.out_len && out[r1.out_len - 1] == ' ' && !memchr(sql, '"', len))
        FAIL("trailing space");
    if (tags.count > PGP_NORM_TAGS_MAX || tags.buf_used > PGP_NORM_TAGS_BUF)
        FAIL("tags out of bounds");
    for (uint32_t i = 0; i < tags.count; i++) {
        const pgp_norm_tag_t *t = &tags.tag[i];
        if ((size_t)t->key_off + t->key_len > tags.buf_used ||
            (size_t)t->val_off + t->val_len > tags.buf_used)
            FAIL("tag %u outside the buffer", i);
    }
    if ((unsigned)r1.kind >= PGP_NORM_KIND_COUNT_)
        FAIL("bad kind");
    if (r1.name_len && r1.name_off + r1.name_len > len)
        FAIL("name span outside the input");

    /* a short buffer: same hashes, a prefix of the text */
    size_t cap = (size_t)(ctl >> 1) % (len + 2);
    pgp_normalize(sql, len, &opts, cut, cap, NULL, &r2);
    if (r2.fingerprint != r1.fingerprint || r2.values_hash != r1.values_hash ||
        r2.norm_len != r1.norm_len || r2.literal_count != r1.literal_count || r2.kind != r1.kind)
        FAIL("result depends on out_cap %zu", cap);
    if (cap) {
        if (r2.out_len >= cap || memcmp(cut, out, r2.out_len) != 0 || cut[r2.out_len] != '\0')
            FAIL("cut output is not a prefix (cap %zu)", cap);
        if (r2.out_truncated != (r1.norm_len > cap - 1))
            FAIL("truncation flag");
    }

    /* deterministic */
    pgp_normalize(sql, len, &opts, NULL, 0, NULL, &r3);
    if (r3.fingerprint != r1.fingerprint || r3.values_hash != r1.values_hash)
        FAIL("not deterministic");

    /* second pass over the normalized text */
    if (safe_for_second_pass(out, r1.out_len) && memchr(sql, '"', len) == NULL) {
        char *again = malloc(r1.out_len + 1);
        if (!again)
            abort();
        pgp_norm_result_t r4;
        pgp_normalize(out, r1.out_len, &opts, again, r1.out_len + 1, NULL, &r4);
        if (r4.out_len != r1.out_len || memcmp(again, out, r1.out_len) != 0)
            FAIL("second pass changed the text: [%s] -> [%s]", out, again);
        if (r4.fingerprint != r1.fingerprint)
            FAIL("second pass changed the fingerprint: [%s]", out);
        free(again);
    }
    free(sql);
    free(out);
    free(cut);
    return 0;
}
