/*
 * flame.h - render collapsed stacks as a self-contained flame graph SVG.
 *
 * Input is Brendan Gregg's collapsed format (what /debug/flamegraph.txt
 * serves, DESIGN §4.4): one stack per line, `frame1;frame2;frame3 <value>`
 * with an unsigned decimal integer value (nanoseconds for pgproxy).  Lines
 * are merged by common prefix into one tree under a synthetic root "all"
 * and drawn as a classic flame graph: the root at the bottom, callees
 * above their callers, widths proportional to value, siblings in byte
 * order of their names (flamegraph.pl's order).
 *
 * The SVG has no external references (no fonts, stylesheets or scripts
 * fetched); every frame is `<g class="f"><title>name (12.3 ms, 45.6 %)
 * </title><rect/><text/></g>`, and an inline script (optional: the graph is
 * complete without it, and <img> does not run it) zooms on click.  All
 * text from the input is XML-escaped and made valid UTF-8 (pgp_render_html,
 * plus U+FFFE/U+FFFF, which XML 1.0 forbids, become U+FFFD), so the document
 * is well-formed whatever bytes come in.
 *
 * Colors: the frame "app" (application time between statements) green,
 * the frame "sql" and every frame whose parent is "sql" (statements) blue,
 * everything else a warm palette; each shade is hashed from the name, so a
 * frame keeps its color across renders.
 *
 * Bounded: at most PGP_FLAME_MAX_FRAMES tree nodes and PGP_FLAME_MAX_DEPTH
 * levels are kept; a line whose stack needs more has its value credited to
 * the deepest node it reached (so widths and totals stay right) and the
 * frames are counted as dropped.  Frames narrower than 0.1 px are not
 * drawn.  Memory is O(min(input, PGP_FLAME_MAX_FRAMES)) per call, freed
 * before returning.  Leaf module: no I/O, no global state, reentrant.
 */
#ifndef PGPROXY_FLAME_H
#define PGPROXY_FLAME_H

#include <stddef.h>
#include <stdint.h>

#include "pgproxy/render.h"

#define PGP_FLAME_MAX_FRAMES 20000u      /* tree nodes kept, the root "all" included */
#define PGP_FLAME_MAX_DEPTH 128u         /* frames per stack kept (the root not counted) */
#define PGP_FLAME_DEFAULT_WIDTH 1200u    /* px */
#define PGP_FLAME_MIN_WIDTH 200u         /* width_px is clamped to [MIN, MAX] */
#define PGP_FLAME_MAX_WIDTH 20000u
#define PGP_FLAME_DEFAULT_TITLE "pgproxy: time per request"
#define PGP_FLAME_MIN_DRAW_PX 0.1        /* narrower frames are not drawn */
#define PGP_FLAME_PAD_PX 10u             /* left and right margin: the plot is width - 20 px */
#define PGP_FLAME_FRAME_PX 16u           /* height of one level */

typedef struct pgp_flame_opts {
    unsigned width_px;        /* 0: PGP_FLAME_DEFAULT_WIDTH */
    const char *title;        /* NULL: PGP_FLAME_DEFAULT_TITLE; any bytes, escaped */
    const char *unit;         /* NULL or "ns": values are nanoseconds, shown as ns/us/ms/s;
                                 otherwise shown as "<value> <unit>" */
} pgp_flame_opts_t;

/* What one render saw (for tests and logs). */
typedef struct pgp_flame_stats {
    uint64_t lines;            /* non-blank lines read */
    uint64_t malformed;        /* lines skipped: no value, value not an integer, empty stack */
    uint64_t total;            /* sum of the values (saturated at UINT64_MAX) */
    uint64_t frames_dropped;   /* frames not kept (node cap or depth cap) */
    uint32_t frames;           /* tree nodes kept, the root included */
    uint32_t frames_drawn;     /* of which drawn (>= PGP_FLAME_MIN_DRAW_PX wide) */
    uint32_t depth;            /* deepest level kept (0: only the root) */
} pgp_flame_stats_t;

/*
 * Parse collapsed[0, len) (borrowed for the call; any bytes, need not be
 * NUL-terminated; malformed lines are skipped and counted), merge
 * identical prefixes into a tree and append a complete SVG document to r
 * (borrowed).  Values parse as uint64 and saturate at UINT64_MAX, sums
 * too.  Empty input (or only zero values) gives a valid SVG saying "no
 * samples yet"; if the tree cannot be allocated the SVG says "out of
 * memory".  opts borrowed, may be NULL (defaults).  Returns 0, or -1 when
 * r is in error (overflowed its cap) afterwards.  Any thread, reentrant.
 */
int pgp_flame_render_svg(const char *collapsed, size_t len, const pgp_flame_opts_t *opts,
                         pgp_render_t *r) __attribute__((warn_unused_result));

/* The same, and fills *stats (borrowed, may be NULL) with what was seen. */
int pgp_flame_render_svg_stats(const char *collapsed, size_t len, const pgp_flame_opts_t *opts,
                               pgp_render_t *r, pgp_flame_stats_t *stats)
    __attribute__((warn_unused_result));

#endif
