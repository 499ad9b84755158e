/*
 * test_flame.c - the flame graph renderer: prefix merging and widths
 * (exact rect geometry for known inputs), malformed lines, escaping of
 * hostile names, well-formed XML (every document is parsed by Python's
 * minidom, or xmllint when Python is missing), the frame and depth caps,
 * saturating values, empty input, the output cap, labels and colors.
 */
#include "pgproxy/flame.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define BIG (64u << 20)

/* Render in into *r (initialised here); fails the test on a render error. */
static void render(const char *in, size_t len, const pgp_flame_opts_t *o, pgp_render_t *r,
                   pgp_flame_stats_t *st)
{
    pgp_render_init(r, BIG);
    ck_assert_int_eq(pgp_flame_render_svg_stats(in, len, o, r, st), 0);
    ck_assert_int_eq(pgp_render_error(r), 0);
}

/* True when the document parses as XML (python3 minidom, else xmllint). */
static int well_formed(const pgp_render_t *r)
{
    char path[] = "/tmp/test_flame_XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    FILE *f = fdopen(fd, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(pgp_render_data(r), 1, pgp_render_len(r), f), pgp_render_len(r));
    ck_assert_int_eq(fclose(f), 0);
    char cmd[256];
    if (access("/usr/bin/python3", X_OK) == 0)
        snprintf(cmd, sizeof(cmd),
                 "/usr/bin/python3 -c 'import xml.dom.minidom,sys; xml.dom.minidom.parse(sys.argv[1])'"
                 " %s", path);
    else
        snprintf(cmd, sizeof(cmd), "xmllint --noout %s", path);
    int rc = system(cmd);
    unlink(path);
    return rc == 0;
}

/* The attribute `attr` of the rect of the frame whose title starts with "<name> (". */
static double frame_attr(const pgp_render_t *r, const char *name, const char *attr)
{
    char key[512], a[32];
    snprintf(key, sizeof(key), "<title>%s (", name);
    const char *p = strstr(pgp_render_data(r), key);
    ck_assert_msg(p != NULL, "no frame %s", name);
    p = strstr(p, "<rect ");
    ck_assert_ptr_nonnull(p);
    snprintf(a, sizeof(a), " %s=\"", attr);
    p = strstr(p, a);
    ck_assert_ptr_nonnull(p);
    return strtod(p + strlen(a), NULL);
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t k = 0;
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        k++;
    return k;
}

/* ---- geometry ------------------------------------------------------------------- */

/* Width 1200 -> plot 1180 px from x = 10; siblings in byte order of names. */
static const struct geo_case {
    const char *in;
    const char *frame;
    double x, w;
} geo_cases[] = {
    { "a;b 1\na;c 3\n", "all", 10, 1180 },
    { "a;b 1\na;c 3\n", "a", 10, 1180 },
    { "a;b 1\na;c 3\n", "b", 10, 295 },
    { "a;b 1\na;c 3\n", "c", 305, 885 },
    /* input order does not matter; identical stacks merge */
    { "a;c 1\na;b 1\na;c 2\n", "b", 10, 295 },
    { "a;c 1\na;b 1\na;c 2\n", "c", 305, 885 },
    /* a parent with self time: children are left-aligned, the rest is the parent's own */
    { "x 2\nx;y 1\nz 1\n", "x", 10, 885 },
    { "x 2\nx;y 1\nz 1\n", "y", 10, 295 },
    { "x 2\nx;y 1\nz 1\n", "z", 895, 295 },
    /* CRLF, trailing blanks, blank lines, no final newline */
    { "p;q 10\r\n\n  \nr 30   \r\n", "q", 10, 295 },
    { "p;q 10\r\n\n  \nr 30   \r\n", "r", 305, 885 },
    /* a tab before the value; spaces inside frame names */
    { "GET /x;SELECT 1\t5\nGET /x;SELECT 2 15", "SELECT 2", 305, 885 },
};

START_TEST(test_geometry)
{
    const struct geo_case *c = &geo_cases[_i];
    pgp_render_t r;
    render(c->in, strlen(c->in), NULL, &r, NULL);
    ck_assert_double_eq_tol(frame_attr(&r, c->frame, "x"), c->x, 0.006);
    ck_assert_double_eq_tol(frame_attr(&r, c->frame, "width"), c->w, 0.006);
    pgp_render_free(&r);
}
END_TEST

START_TEST(test_merge_and_levels)
{
    const char *in = "r;a;b 1\nr;a;b 2\nr;a 3\nr;c 2\n";
    pgp_render_t r;
    pgp_flame_stats_t st;
    render(in, strlen(in), NULL, &r, &st);
    ck_assert_uint_eq(st.lines, 4);
    ck_assert_uint_eq(st.malformed, 0);
    ck_assert_uint_eq(st.total, 8);
    ck_assert_uint_eq(st.frames, 5);   /* all, r, a, b, c */
    ck_assert_uint_eq(st.frames_drawn, 5);
    ck_assert_uint_eq(st.depth, 3);
    ck_assert_uint_eq(count_of(pgp_render_data(&r), "<g class=\"f\">"), 5);
    ck_assert_ptr_nonnull(strstr(pgp_render_data(&r), "<title>b (3 ns, 37.5 %)</title>"));
    ck_assert_ptr_nonnull(strstr(pgp_render_data(&r), "<title>all (8 ns, 100 %)</title>"));
    /* classic flame graph: the root at the bottom, each level 16 px above its parent */
    double y_all = frame_attr(&r, "all", "y"), y_r = frame_attr(&r, "r", "y");
    double y_a = frame_attr(&r, "a", "y"), y_b = frame_attr(&r, "b", "y");
    ck_assert_double_eq_tol(y_all - y_r, 16, 1e-9);
    ck_assert_double_eq_tol(y_r - y_a, 16, 1e-9);
    ck_assert_double_eq_tol(y_a - y_b, 16, 1e-9);
    ck_assert_double_eq_tol(frame_attr(&r, "c", "y"), y_a, 1e-9);
    ck_assert(well_formed(&r));
    pgp_render_free(&r);
}
END_TEST

/* ---- malformed input -------------------------------------------------------------- */

static const struct bad_case {
    const char *in;
    uint64_t lines, malformed, total;
} bad_cases[] = {
    { "nospace\n", 1, 1, 0 },
    { "a;b x1\n", 1, 1, 0 },
    { "a;b 1.5\n", 1, 1, 0 },
    { "a;b -1\n", 1, 1, 0 },
    { "a;b 12abc\n", 1, 1, 0 },
    { " 5\n", 1, 1, 0 },
    { "\t \t5\n", 1, 1, 0 },
    { "a;b\n", 1, 1, 0 },
    { "42\n", 1, 1, 0 },
    { "\n\n \r\n", 0, 0, 0 },
    { "a 0\n", 1, 0, 0 },
    { "ok 7\nbad\nok;x 3\n;;; y\n", 4, 2, 10 },
};

START_TEST(test_malformed)
{
    const struct bad_case *c = &bad_cases[_i];
    pgp_render_t r;
    pgp_flame_stats_t st;
    render(c->in, strlen(c->in), NULL, &r, &st);
    ck_assert_uint_eq(st.lines, c->lines);
    ck_assert_uint_eq(st.malformed, c->malformed);
    ck_assert_uint_eq(st.total, c->total);
    if (c->total == 0)
        ck_assert_ptr_nonnull(strstr(pgp_render_data(&r), "no samples yet"));
    else if (c->malformed > 0)
        ck_assert_ptr_nonnull(strstr(pgp_render_data(&r), "2 malformed lines skipped"));
    ck_assert(well_formed(&r));
    pgp_render_free(&r);
}
END_TEST

START_TEST(test_empty)
{
    pgp_render_t r;
    pgp_flame_stats_t st;
    render("", 0, NULL, &r, &st);
    ck_assert_ptr_nonnull(strstr(pgp_render_data(&r), "no samples yet"));
    ck_assert_ptr_nonnull(strstr(pgp_render_data(&r), PGP_FLAME_DEFAULT_TITLE));
    ck_assert_ptr_null(strstr(pgp_render_data(&r), "<g class=\"f\">"));
    ck_assert_uint_eq(st.frames_drawn, 0);
    ck_assert(well_formed(&r));
    pgp_render_free(&r);
    render(NULL, 123, NULL, &r, &st);   /* NULL input is empty input */
    ck_assert_ptr_nonnull(strstr(pgp_render_data(&r), "no samples yet"));
    pgp_render_free(&r);
}
END_TEST

/* ---- escaping and well-formedness --------------------------------------------------- */

static const struct esc_case {
    const char *name;
    size_t len;             /* 0: strlen */
    const char *must_not;   /* raw text that must not appear in the output */
    const char *must;       /* escaped text that must */
} esc_cases[] = {
    { "</script><script>alert(1)</script>", 0, "<script>alert", "&lt;/script&gt;&lt;script&gt;" },
    { "a&b<c", 0, "a&b", "a&amp;b&lt;c" },
    { "\"quoted\" 'single'", 0, "\"quoted\"", "&quot;quoted&quot; &#39;single&#39;" },
    { "]]> <!-- -->", 0, "]]> <!--", "]]&gt; &lt;!-- --&gt;" },
    { "bad\xff\xfe utf8 \xC3", 0, "\xff", "bad\xEF\xBF\xBD\xEF\xBF\xBD utf8 \xEF\xBF\xBD" },
    { "nonchar \xEF\xBF\xBF \xEF\xBF\xBE", 0, "\xEF\xBF\xBF", "nonchar \xEF\xBF\xBD \xEF\xBF\xBD" },
    { "nul\0ctl\x01\x1b", 9, "\x01", "nul\xEF\xBF\xBD" "ctl\xEF\xBF\xBD\xEF\xBF\xBD" },
    { "surrogate \xED\xA0\x80", 0, "\xED\xA0\x80", "surrogate \xEF\xBF\xBD" },
    { "caf\xC3\xA9 \xF0\x9F\x98\x80", 0, "\xff", "caf\xC3\xA9 \xF0\x9F\x98\x80" },
};

START_TEST(test_escaping)
{
    const struct esc_case *c = &esc_cases[_i];
    size_t len = c->len ? c->len : strlen(c->name);
    char in[256];
    ck_assert_uint_lt(len + 32, sizeof(in));
    /* as a SQL statement (blue), as a label (warm), and in the title */
    memcpy(in, "request;", 8);
    memcpy(in + 8, c->name, len);
    memcpy(in + 8 + len, ";sql;", 5);
    memcpy(in + 13 + len, c->name, len);
    memcpy(in + 13 + 2 * len, " 1000\n", 6);
    char title[128];
    ck_assert_uint_lt(len, sizeof(title));
    memcpy(title, c->name, len);
    title[len] = '\0';   /* the title stops at a NUL: it is a C string */
    pgp_flame_opts_t o = { .width_px = 4000, .title = title, .unit = "ns" };
    pgp_render_t r;
    pgp_flame_stats_t st;
    render(in, 13 + 2 * len + 6, &o, &r, &st);
    ck_assert_uint_eq(st.frames, 5);
    const char *out = pgp_render_data(&r);
    ck_assert_msg(strstr(out, c->must_not) == NULL, "raw [%s] in output", c->must_not);
    ck_assert_msg(strstr(out, c->must) != NULL, "no [%s] in output", c->must);
    ck_assert_uint_eq(strlen(out), pgp_render_len(&r));   /* no NUL bytes */
    ck_assert(well_formed(&r));
    pgp_render_free(&r);
}
END_TEST

/* Pseudo-random bytes (fixed seeds) always give a well-formed document. */
START_TEST(test_random_bytes_well_formed)
{
    uint64_t s = 0x9E3779B97F4A7C15ull * (uint64_t)(_i + 1);
    size_t len = 200 + (size_t)_i * 97;
    char *in = malloc(len);
    ck_assert_ptr_nonnull(in);
    for (size_t i = 0; i < len; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        unsigned b = (unsigned)(s >> 32) & 0xFF;
        /* bias toward the format's own bytes so stacks actually parse */
        static const char fmt[] = ";;;  \n\n123456789";
        in[i] = (b & 1) ? fmt[(b >> 1) % (sizeof(fmt) - 1)] : (char)b;
    }
    pgp_render_t r;
    render(in, len, NULL, &r, NULL);
    ck_assert(well_formed(&r));
    pgp_render_free(&r);
    free(in);
}
END_TEST

/* ---- bounds ----------------------------------------------------------------------- */

START_TEST(test_frame_cap)
{
    const unsigned lines = PGP_FLAME_MAX_FRAMES + 10000;
    size_t cap = (size_t)lines * 16, len = 0;
    char *in = malloc(cap);
    ck_assert_ptr_nonnull(in);
    for (unsigned i = 0; i < lines; i++)
        len += (size_t)snprintf(in + len, cap - len, "f%u 1\n", i);
    pgp_render_t r;
    pgp_flame_stats_t st;
    render(in, len, NULL, &r, &st);
    ck_assert_uint_eq(st.frames, PGP_FLAME_MAX_FRAMES);
    ck_assert_uint_eq(st.frames_dropped, lines - (PGP_FLAME_MAX_FRAMES - 1));
    ck_assert_uint_eq(st.total, lines);   /* dropped frames' values stay with the root */
    ck_assert_uint_le(st.frames_drawn, st.frames);
    ck_assert_ptr_nonnull(strstr(pgp_render_data(&r), " frames dropped (cap)"));
    ck_assert(well_formed(&r));
    pgp_render_free(&r);
    free(in);
}
END_TEST

START_TEST(test_depth_cap)
{
    const unsigned depth = PGP_FLAME_MAX_DEPTH + 72;
    char *in = malloc((size_t)depth * 8 + 16);
    size_t len = 0;
    ck_assert_ptr_nonnull(in);
    for (unsigned i = 0; i < depth; i++)
        len += (size_t)snprintf(in + len, 8, i ? ";d%u" : "d%u", i);
    memcpy(in + len, " 5\n", 3);
    len += 3;
    pgp_render_t r;
    pgp_flame_stats_t st;
    render(in, len, NULL, &r, &st);
    ck_assert_uint_eq(st.depth, PGP_FLAME_MAX_DEPTH);
    ck_assert_uint_eq(st.frames, PGP_FLAME_MAX_DEPTH + 1);
    ck_assert_uint_eq(st.frames_dropped, depth - PGP_FLAME_MAX_DEPTH);
    ck_assert_uint_eq(st.frames_drawn, PGP_FLAME_MAX_DEPTH + 1);
    ck_assert(well_formed(&r));
    pgp_render_free(&r);
    free(in);
}
END_TEST

/* Values at and beyond 2^63: sums saturate, children never spill out of the plot. */
START_TEST(test_huge_values)
{
    const char *in = "a;x 9223372036854775808\n"
                     "a;y 9223372036854775808\n"
                     "b 5\n"
                     "c 99999999999999999999999999\n";
    pgp_render_t r;
    pgp_flame_stats_t st;
    render(in, strlen(in), NULL, &r, &st);
    ck_assert_uint_eq(st.malformed, 0);
    ck_assert_uint_eq(st.total, UINT64_MAX);
    ck_assert_ptr_nonnull(strstr(pgp_render_data(&r), "(saturated)"));
    double wa = frame_attr(&r, "a", "width"), xa = frame_attr(&r, "a", "x");
    double wx = frame_attr(&r, "x", "width"), wy = frame_attr(&r, "y", "width");
    double xy = frame_attr(&r, "y", "x");
    ck_assert(xa >= 10 && xa + wa <= 1190.01);
    ck_assert(wx + wy <= wa + 0.02);          /* clamped to the parent */
    ck_assert(xy + wy <= xa + wa + 0.02);
    ck_assert(well_formed(&r));
    pgp_render_free(&r);

    /* exactly 2^63 alone: shown in seconds */
    render("q 9223372036854775808\n", 22, NULL, &r, &st);
    ck_assert_uint_eq(st.total, UINT64_C(9223372036854775808));
    ck_assert_ptr_nonnull(strstr(pgp_render_data(&r), "<title>q (9223372036.85 s, 100 %)"));
    pgp_render_free(&r);
}
END_TEST

START_TEST(test_output_cap)
{
    const char *in = "a;b 1\na;c 3\n";
    pgp_render_t r;
    pgp_render_init(&r, 300);
    ck_assert_int_eq(pgp_flame_render_svg(in, strlen(in), NULL, &r), -1);
    ck_assert_int_eq(pgp_render_error(&r), PGP_RENDER_ETOOBIG);
    ck_assert_uint_le(pgp_render_len(&r), 300);
    pgp_render_free(&r);
}
END_TEST

/* ---- labels, units, colors ------------------------------------------------------- */

START_TEST(test_labels)
{
    /* 1180 px plot, total 10000: "wide" 1167 px (labelled in full), "tiny" 1.18 px and
     * "mid" 11.8 px (fewer than 3 glyphs fit: no <text>) */
    const char *in = "wide_frame_name 9890\n"
                     "tiny_frame_name 10\n"
                     "mid_frame_name_that_is_long 100\n";
    pgp_render_t r;
    render(in, strlen(in), NULL, &r, NULL);
    const char *out = pgp_render_data(&r);
    ck_assert_ptr_nonnull(strstr(out, ">wide_frame_name</text>"));
    /* tiny: 1.18 px wide -> no label at all */
    const char *t = strstr(out, "<title>tiny_frame_name (");
    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_nonnull(strstr(t, "</g>"));
    ck_assert(strstr(t, "<text") == NULL || strstr(t, "<text") > strstr(t, "</g>"));
    /* mid: 11.8 px -> (11.8 - 6) / 7 < 3 chars -> no label either */
    const char *m = strstr(out, "<title>mid_frame_name_that_is_long (");
    ck_assert_ptr_nonnull(m);
    ck_assert(strstr(m, "<text") == NULL || strstr(m, "<text") > strstr(m, "</g>"));
    pgp_render_free(&r);

    /* 100 px plot share: (x - 6) / 7 chars with ".." */
    pgp_flame_opts_t o = { .width_px = 220, .title = NULL, .unit = NULL };   /* plot 200 px */
    render("abcdefghijklmnopqrstuvwxyz0123456789 1\nz 1\n", 43, &o, &r, NULL);
    /* 100 px -> 13 chars: 11 + ".." */
    ck_assert_ptr_nonnull(strstr(pgp_render_data(&r), ">abcdefghijk..</text>"));
    pgp_render_free(&r);

    /* truncation never splits a UTF-8 sequence: 13 chars of 2-byte letters */
    render("\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9"
           "\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9 1\nz 1\n", 37, &o, &r, NULL);
    ck_assert_ptr_nonnull(strstr(pgp_render_data(&r),
        ">\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9\xC3\xA9..</text>"));
    pgp_render_free(&r);
}
END_TEST

static const struct unit_case {
    const char *in;
    const char *unit;
    const char *title;
} unit_cases[] = {
    { "x 999\n", "ns", "<title>x (999 ns, 100 %)" },
    { "x 1500\n", NULL, "<title>x (1.5 \xC2\xB5s, 100 %)" },
    { "x 12345678\n", "ns", "<title>x (12.35 ms, 100 %)" },
    { "x 2000000000\n", "ns", "<title>x (2 s, 100 %)" },
    { "x 3\ny 1\n", "ns", "<title>y (1 ns, 25 %)" },
    { "x 42\n", "samples", "<title>x (42 samples, 100 %)" },
    { "x 42\n", "<u>", "<title>x (42 &lt;u&gt;, 100 %)" },
};

START_TEST(test_units)
{
    const struct unit_case *c = &unit_cases[_i];
    pgp_flame_opts_t o = { .width_px = 0, .title = NULL, .unit = c->unit };
    pgp_render_t r;
    render(c->in, strlen(c->in), &o, &r, NULL);
    ck_assert_msg(strstr(pgp_render_data(&r), c->title) != NULL, "want %s", c->title);
    pgp_render_free(&r);
}
END_TEST

/* The rgb() of the frame titled "<name> (". */
static void frame_rgb(const pgp_render_t *r, const char *name, unsigned rgb[3])
{
    char key[128];
    snprintf(key, sizeof(key), "<title>%s (", name);
    const char *p = strstr(pgp_render_data(r), key);
    ck_assert_ptr_nonnull(p);
    p = strstr(p, "fill=\"rgb(");
    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(sscanf(p, "fill=\"rgb(%u,%u,%u)", &rgb[0], &rgb[1], &rgb[2]), 3);
}

START_TEST(test_colors)
{
    const char *in = "request;users#index;sql;SELECT 1 10\n"
                     "request;users#index;app 10\n"
                     "request;users#index;sqlish 10\n";
    pgp_render_t r;
    render(in, strlen(in), NULL, &r, NULL);
    unsigned c[3];
    frame_rgb(&r, "SELECT 1", c);      /* statement: blue */
    ck_assert(c[2] >= 215 && c[0] < c[2] && c[1] < c[2]);
    frame_rgb(&r, "sql", c);
    ck_assert(c[2] >= 215 && c[0] < c[2]);
    frame_rgb(&r, "app", c);           /* app time: green */
    ck_assert(c[1] >= 185 && c[0] < c[1] && c[2] < c[1]);
    frame_rgb(&r, "users#index", c);   /* warm */
    ck_assert(c[0] >= 205 && c[2] <= 55);
    frame_rgb(&r, "sqlish", c);
    ck_assert(c[0] >= 205 && c[2] <= 55);
    /* same name, same color, across renders */
    unsigned again[3];
    pgp_render_t r2;
    render(in, strlen(in), NULL, &r2, NULL);
    frame_rgb(&r, "users#index", c);
    frame_rgb(&r2, "users#index", again);
    ck_assert(memcmp(c, again, sizeof(c)) == 0);
    pgp_render_free(&r2);
    /* nothing external: the only URI is the SVG namespace */
    ck_assert_uint_eq(count_of(pgp_render_data(&r), "http"), 1);
    ck_assert_ptr_nonnull(strstr(pgp_render_data(&r), "xmlns=\"http://www.w3.org/2000/svg\""));
    ck_assert_ptr_null(strstr(pgp_render_data(&r), "href"));
    pgp_render_free(&r);
}
END_TEST

static Suite *flame_suite(void)
{
    Suite *s = suite_create("flame");
    TCase *tg = tcase_create("parse");
    tcase_add_loop_test(tg, test_geometry, 0, N(geo_cases));
    tcase_add_test(tg, test_merge_and_levels);
    tcase_add_loop_test(tg, test_malformed, 0, N(bad_cases));
    tcase_add_test(tg, test_empty);
    suite_add_tcase(s, tg);
    TCase *te = tcase_create("xml");
    tcase_add_loop_test(te, test_escaping, 0, N(esc_cases));
    tcase_add_loop_test(te, test_random_bytes_well_formed, 0, 24);
    suite_add_tcase(s, te);
    TCase *tb = tcase_create("bounds");
    tcase_add_test(tb, test_frame_cap);
    tcase_add_test(tb, test_depth_cap);
    tcase_add_test(tb, test_huge_values);
    tcase_add_test(tb, test_output_cap);
    suite_add_tcase(s, tb);
    TCase *tl = tcase_create("look");
    tcase_add_test(tl, test_labels);
    tcase_add_loop_test(tl, test_units, 0, N(unit_cases));
    tcase_add_test(tl, test_colors);
    suite_add_tcase(s, tl);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(flame_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
