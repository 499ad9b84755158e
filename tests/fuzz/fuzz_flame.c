/*
 * fuzz_flame.c - libFuzzer target for the flame graph renderer.
 *
 * Arbitrary bytes are rendered twice: uncapped (must succeed, produce
 * NUL-free output that starts with the XML declaration and ends with
 * </svg>, and keep its counters consistent) and under a small cap taken
 * from the first byte (must fail exactly when the uncapped output does not
 * fit, and never write past the cap).  Well-formedness as XML is checked
 * by tests/unit/test_flame.c with a real parser; sanitizers catch the rest.
 */
#include "pgproxy/flame.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char head[] = "<?xml ";
    static const char tail[] = "</svg>\n";
    pgp_flame_opts_t o = { .width_px = size > 1 ? 150u + data[1] * 8u : 0, .title = NULL,
                           .unit = NULL };
    pgp_flame_stats_t st;
    pgp_render_t r;
    pgp_render_init(&r, SIZE_MAX);
    if (pgp_flame_render_svg_stats((const char *)data, size, &o, &r, &st) != 0)
        abort();
    const char *s = pgp_render_data(&r);
    size_t n = pgp_render_len(&r);
    if (strlen(s) != n || n < sizeof(head) + sizeof(tail))
        abort();
    if (memcmp(s, head, sizeof(head) - 1) != 0 || memcmp(s + n - (sizeof(tail) - 1), tail,
                                                         sizeof(tail) - 1) != 0)
        abort();
    if (st.malformed > st.lines || st.frames > PGP_FLAME_MAX_FRAMES ||
        st.frames_drawn > st.frames || st.depth > PGP_FLAME_MAX_DEPTH)
        abort();

    size_t cap = size > 0 ? (size_t)data[0] * 64u : 0;
    pgp_render_t c;
    pgp_render_init(&c, cap);
    int rc = pgp_flame_render_svg((const char *)data, size, &o, &c);
    if (pgp_render_len(&c) > cap || (rc != 0) != (n > cap))
        abort();
    if (rc == 0 && memcmp(pgp_render_data(&c), s, n) != 0)
        abort();
    pgp_render_free(&c);
    pgp_render_free(&r);
    return 0;
}
