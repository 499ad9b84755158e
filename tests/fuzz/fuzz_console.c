/*
 * fuzz_console.c - libFuzzer target for the SQL console (console.c).
 *
 * Input: byte 0 picks the output cap (always at least the documented
 * reserve), byte 1 the provider's behaviour (serve the document, fail,
 * fail reset, no provider; and its JSON cap), the rest is the Query body handed to pgp_console_query
 * as is; whatever follows its first NUL is also the JSON document the
 * fake provider serves for every SHOW.  The output must be a sequence of
 * well-formed backend messages (lengths exact, DataRow field counts equal
 * to the RowDescription's, text columns, valid UTF-8 in every name, cell
 * and message, no NUL inside cells) of the types the console writes,
 * ending with exactly one ReadyForQuery 'I', within the cap, and the call
 * must return 0.  Any violation abort()s; sanitizers catch the rest.
 */
#include "pgproxy/console.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgproxy/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)        \
    do {                   \
        if (!(cond))       \
            abort();       \
    } while (0)

#include "fuzz_utf8.h"

/* A NUL-terminated, valid UTF-8 string in b[*at, n); moves *at past the NUL. */
static void cstr(const uint8_t *b, size_t n, size_t *at)
{
    const uint8_t *nul = memchr(b + *at, '\0', n - *at);
    CHECK(nul != NULL);
    CHECK(valid_utf8(b + *at, (size_t)(nul - (b + *at))));
    *at = (size_t)(nul - b) + 1;
}

static void walk(const uint8_t *buf, size_t len)
{
    size_t at = 0;
    long ncols = -1;
    int ready = 0;
    while (at < len) {
        CHECK(!ready);
        CHECK(len - at >= 5);
        uint8_t type = buf[at];
        uint32_t mlen = pgp_be32(buf + at + 1);
        CHECK(mlen >= 4 && mlen <= len - at - 1);
        const uint8_t *b = buf + at + 5;
        size_t n = mlen - 4, p = 0;
        switch (type) {
        case PGP_BE_ROW_DESCRIPTION:
            CHECK(n >= 2);
            ncols = (b[0] << 8) | b[1];
            p = 2;
            for (long i = 0; i < ncols; i++) {
                cstr(b, n, &p);
                CHECK(n - p >= 18);
                CHECK(pgp_be32(b + p + 6) == PGP_CONSOLE_TEXT_OID);
                CHECK(b[p + 16] == 0 && b[p + 17] == 0);
                p += 18;
            }
            CHECK(p == n);
            break;
        case PGP_BE_DATA_ROW:
            CHECK(ncols >= 0 && n >= 2);
            CHECK(((b[0] << 8) | b[1]) == ncols);
            p = 2;
            for (long i = 0; i < ncols; i++) {
                CHECK(n - p >= 4);
                uint32_t cl = pgp_be32(b + p);
                p += 4;
                if (cl == 0xFFFFFFFFu)
                    continue;
                CHECK(cl <= n - p);
                CHECK(memchr(b + p, '\0', cl) == NULL);
                CHECK(valid_utf8(b + p, cl));
                p += cl;
            }
            CHECK(p == n);
            break;
        case PGP_BE_COMMAND_COMPLETE:
            cstr(b, n, &p);
            CHECK(p == n);
            ncols = -1;
            break;
        case PGP_BE_EMPTY_QUERY_RESPONSE:
            CHECK(n == 0);
            break;
        case PGP_BE_ERROR_RESPONSE:
        case PGP_BE_NOTICE_RESPONSE:
            for (;;) {
                CHECK(p < n);
                if (b[p++] == 0)
                    break;
                cstr(b, n, &p);
            }
            CHECK(p == n);
            if (type == PGP_BE_ERROR_RESPONSE)
                ncols = -1;
            break;
        case PGP_BE_READY_FOR_QUERY:
            CHECK(n == 1 && b[0] == 'I');
            ready = 1;
            break;
        default:
            abort();
        }
        at += 1 + mlen;
    }
    CHECK(at == len);
    CHECK(ready);
}

typedef struct fake {
    const uint8_t *doc;
    size_t doc_len;
    uint8_t mode;
} fake_t;

static int fake_json(void *ud, pgp_console_source_t src, pgp_render_t *out)
{
    fake_t *f = ud;
    (void)src;
    if (f->mode % 4 == 1)
        return -1;
    pgp_render_append(out, f->doc, f->doc_len);
    return pgp_render_error(out) != 0 ? -1 : 0;
}

static int fake_reset(void *ud)
{
    fake_t *f = ud;
    return f->mode % 4 == 2 ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t caps[8] = {
        PGP_CONSOLE_RESERVE_BYTES, PGP_CONSOLE_RESERVE_BYTES + 40, 1500, 2048,
        4096, 16384, 65536, 1u << 20,
    };
    if (size < 2)
        return 0;
    size_t cap = caps[data[0] % 8];
    fake_t f = {.mode = data[1]};
    const char *sql = (const char *)data + 2;
    size_t sql_len = size - 2;
    const uint8_t *nul = memchr(sql, '\0', sql_len);
    f.doc = nul != NULL ? nul + 1 : (const uint8_t *)"";
    f.doc_len = nul != NULL ? (size_t)((const uint8_t *)sql + sql_len - (nul + 1)) : 0;
    static const size_t json_caps[4] = {0, 64, 1024, 65536};
    pgp_console_providers_t prov = {.ud = &f, .json = fake_json, .reset = fake_reset,
                                    .json_cap_bytes = json_caps[(f.mode / 4) % 4]};

    pgp_render_t out;
    pgp_render_init(&out, cap);
    int rc = pgp_console_query(f.mode % 4 == 3 ? NULL : &prov, sql, sql_len, &out);
    CHECK(rc == 0);
    CHECK(pgp_render_len(&out) <= cap);
    walk((const uint8_t *)pgp_render_data(&out), pgp_render_len(&out));
    pgp_render_free(&out);
    return 0;
}
