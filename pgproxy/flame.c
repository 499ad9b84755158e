/*
 * flame.c - collapsed stacks to a flame graph SVG (flame.h).
 *
 * One call parses the input line by line into a prefix tree (nodes in one
 * array, children found through an open-addressing table keyed by parent
 * and name), lays the tree out breadth first (siblings sorted by name,
 * x from the running sum of earlier siblings' values) and writes the SVG
 * into the caller's pgp_render_t.  Names are borrowed from the input for
 * the duration of the call; the tree and the table are freed before
 * returning.  Deliberately not here: producing the stacks (the profile
 * store does), HTTP, any state between calls.
 */
#include "pgproxy/flame.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX
#define TOP_PX 52.0          /* title and subtitle */
#define BOTTOM_PX 10.0
#define GLYPH_PX 7.0         /* Verdana 12 px, average advance */
#define LABEL_PAD_PX 6.0     /* 3 px each side of a label */
#define MIN_LABEL_CHARS 3

typedef struct node {
    const unsigned char *name;   /* borrowed from the input */
    uint32_t name_len;
    uint32_t parent;
    uint32_t first_child;
    uint32_t next_sibling;
    uint32_t depth;              /* 0 for the root */
    uint64_t value;              /* saturated sum of the lines through this node */
    double x, w;                 /* px, from the layout */
} node_t;

typedef struct tree {
    node_t *nodes;
    uint32_t n, cap;
    uint32_t *slots;             /* node index + 1, 0 = empty */
    uint32_t mask;
    pgp_flame_stats_t st;
} tree_t;

static uint64_t sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

static uint32_t hash_name(const unsigned char *p, size_t n, uint32_t parent)
{
    uint32_t h = 2166136261u ^ (parent * 0x9E3779B1u);   /* FNV-1a, seeded with the parent */
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h ^ (h >> 15);
}

static bool name_is(const node_t *nd, const char *lit, size_t n)
{
    return nd->name_len == n && memcmp(nd->name, lit, n) == 0;
}

/* The child of `parent` called name[0, n), created if absent; NONE when the node cap is reached. */
static uint32_t child_of(tree_t *t, uint32_t parent, const unsigned char *name, size_t n)
{
    uint32_t i = hash_name(name, n, parent) & t->mask;
    for (;;) {
        uint32_t s = t->slots[i];
        if (s == 0)
            break;
        node_t *c = &t->nodes[s - 1];
        if (c->parent == parent && c->name_len == n && memcmp(c->name, name, n) == 0)
            return s - 1;
        i = (i + 1) & t->mask;
    }
    if (t->n >= t->cap)
        return NONE;
    uint32_t k = t->n++;
    node_t *c = &t->nodes[k];
    node_t *p = &t->nodes[parent];
    memset(c, 0, sizeof(*c));
    c->name = name;
    c->name_len = (uint32_t)n;
    c->parent = parent;
    c->first_child = NONE;
    c->next_sibling = p->first_child;
    c->depth = p->depth + 1;
    p->first_child = k;
    t->slots[i] = k + 1;
    if (c->depth > t->st.depth)
        t->st.depth = c->depth;
    return k;
}

static bool is_blank(unsigned char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

static uint64_t count_frames(const unsigned char *p, size_t n)
{
    uint64_t k = 1;
    for (size_t i = 0; i < n; i++)
        k += p[i] == ';';
    return k;
}

/* One line without its '\n'. */
static void add_line(tree_t *t, const unsigned char *p, size_t n)
{
    while (n > 0 && is_blank(p[n - 1]))
        n--;
    if (n == 0)
        return;
    t->st.lines++;
    size_t sp = n;
    while (sp > 0 && p[sp - 1] != ' ' && p[sp - 1] != '\t')
        sp--;
    if (sp == 0 || sp == n) {
        t->st.malformed++;
        return;
    }
    uint64_t v = 0;
    for (size_t i = sp; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            t->st.malformed++;
            return;
        }
        unsigned d = (unsigned)(p[i] - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
    }
    size_t se = sp - 1;
    while (se > 0 && is_blank(p[se - 1]))
        se--;
    if (se == 0) {
        t->st.malformed++;
        return;
    }
    if (v == 0)
        return;
    t->st.total = sat_add(t->st.total, v);
    t->nodes[0].value = sat_add(t->nodes[0].value, v);
    uint32_t cur = 0;
    size_t start = 0;
    for (size_t i = 0; i <= se; i++) {
        if (i < se && p[i] != ';')
            continue;
        uint32_t c = NONE;
        if (t->nodes[cur].depth < PGP_FLAME_MAX_DEPTH)
            c = child_of(t, cur, p + start, i - start);
        if (c == NONE) {
            /* the value stays with `cur`, which already has it */
            t->st.frames_dropped = sat_add(t->st.frames_dropped, count_frames(p + start, se - start));
            return;
        }
        t->nodes[c].value = sat_add(t->nodes[c].value, v);
        cur = c;
        start = i + 1;
    }
}

static int cmp_nodes(const void *a, const void *b)
{
    const node_t *x = *(const node_t *const *)a;
    const node_t *y = *(const node_t *const *)b;
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = n > 0 ? memcmp(x->name, y->name, n) : 0;
    if (c != 0)
        return c;
    return (x->name_len > y->name_len) - (x->name_len < y->name_len);
}

/*
 * Breadth-first layout into order[0, t->n); returns the deepest drawn level.
 * A child's width is clamped to what is left of its parent, so saturated
 * sums never spill out of the parent's box.
 */
static uint32_t layout(tree_t *t, node_t **order, double left, double plot_w)
{
    double scale = t->nodes[0].value > 0 ? plot_w / (double)t->nodes[0].value : 0.0;
    uint32_t head = 0, tail = 1, maxd = 0;
    order[0] = &t->nodes[0];
    t->nodes[0].x = left;
    t->nodes[0].w = plot_w;
    while (head < tail) {
        node_t *u = order[head++];
        if (u->w >= PGP_FLAME_MIN_DRAW_PX && u->depth > maxd)
            maxd = u->depth;
        uint32_t first = tail;
        for (uint32_t c = u->first_child; c != NONE; c = t->nodes[c].next_sibling)
            order[tail++] = &t->nodes[c];
        if (tail - first > 1)
            qsort(order + first, tail - first, sizeof(order[0]), cmp_nodes);
        uint64_t cum = 0;
        for (uint32_t i = first; i < tail; i++) {
            node_t *c = order[i];
            uint64_t take = c->value < u->value - cum ? c->value : u->value - cum;
            c->x = u->x + (double)cum * scale;
            c->w = (double)take * scale;
            cum += take;
        }
    }
    return maxd;
}

/* XML character data: pgp_render_html, and U+FFFE/U+FFFF (not XML Chars) as U+FFFD. */
static void xml_text(pgp_render_t *r, const unsigned char *p, size_t n)
{
    size_t from = 0;
    for (size_t i = 0; i + 2 < n; i++) {
        if (p[i] == 0xEF && p[i + 1] == 0xBF && (p[i + 2] == 0xBE || p[i + 2] == 0xBF)) {
            pgp_render_html(r, p + from, i - from);
            pgp_render_str(r, "\xEF\xBF\xBD");
            i += 2;
            from = i + 1;
        }
    }
    pgp_render_html(r, p + from, n - from);
}

static void xml_cstr(pgp_render_t *r, const char *s)
{
    xml_text(r, (const unsigned char *)s, strlen(s));   /* configuration, not wire data */
}

static void put_px(pgp_render_t *r, double v) { pgp_render_double_trim(r, v, 2); }

static void put_value(pgp_render_t *r, uint64_t v, const char *unit)
{
    if (unit != NULL && strcmp(unit, "ns") != 0) {
        pgp_render_uint(r, v);
        pgp_render_char(r, ' ');
        xml_cstr(r, unit);
        return;
    }
    double d = (double)v;
    if (v < 1000u) {
        pgp_render_uint(r, v);
        pgp_render_str(r, " ns");
    } else if (v < 1000000u) {
        pgp_render_double_trim(r, d / 1e3, 2);
        pgp_render_str(r, " \xC2\xB5s");
    } else if (v < 1000000000u) {
        pgp_render_double_trim(r, d / 1e6, 2);
        pgp_render_str(r, " ms");
    } else {
        pgp_render_double_trim(r, d / 1e9, 2);
        pgp_render_str(r, " s");
    }
}

/* 0..255 from one byte of the hash. */
static unsigned shade(uint32_t h, unsigned shift, unsigned base, unsigned span)
{
    return base + (((h >> shift) & 0xFFu) * span) / 255u;
}

static void put_color(pgp_render_t *r, const tree_t *t, const node_t *nd)
{
    uint32_t h = hash_name(nd->name, nd->name_len, 0);
    unsigned cr, cg, cb;
    bool sql = name_is(nd, "sql", 3) ||
               (nd->depth > 0 && name_is(&t->nodes[nd->parent], "sql", 3));
    if (name_is(nd, "app", 3)) {
        cr = shade(h, 0, 90, 50); cg = shade(h, 8, 185, 45); cb = shade(h, 16, 90, 40);
    } else if (sql) {
        cr = shade(h, 0, 95, 50); cg = shade(h, 8, 150, 50); cb = shade(h, 16, 215, 40);
    } else {   /* flamegraph.pl's "hot" */
        cr = shade(h, 0, 205, 50); cg = shade(h, 8, 0, 230); cb = shade(h, 16, 0, 55);
    }
    pgp_render_str(r, "rgb(");
    pgp_render_uint(r, cr);
    pgp_render_char(r, ',');
    pgp_render_uint(r, cg);
    pgp_render_char(r, ',');
    pgp_render_uint(r, cb);
    pgp_render_char(r, ')');
}

/* Bytes of the first `chars` code points (a code point starts at a non-continuation byte). */
static size_t prefix_bytes(const unsigned char *p, size_t n, size_t chars)
{
    size_t seen = 0;
    for (size_t i = 0; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            if (seen == chars)
                return i;
            seen++;
        }
    }
    return n;
}

static size_t count_chars(const unsigned char *p, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += (p[i] & 0xC0) != 0x80;
    return k;
}

static void put_frame(pgp_render_t *r, const tree_t *t, const node_t *nd, double y,
                      const char *unit)
{
    static const unsigned char all[] = "all";
    const unsigned char *name = nd->depth == 0 ? all : nd->name;
    size_t len = nd->depth == 0 ? 3 : nd->name_len;
    double pct = t->st.total > 0 ? 100.0 * (double)nd->value / (double)t->st.total : 0.0;

    pgp_render_str(r, "<g class=\"f\"><title>");
    xml_text(r, name, len);
    pgp_render_str(r, " (");
    put_value(r, nd->value, unit);
    pgp_render_str(r, ", ");
    pgp_render_double_trim(r, pct, 1);
    pgp_render_str(r, " %)</title><rect x=\"");
    put_px(r, nd->x);
    pgp_render_str(r, "\" y=\"");
    put_px(r, y);
    pgp_render_str(r, "\" width=\"");
    put_px(r, nd->w);
    pgp_render_str(r, "\" height=\"15\" rx=\"2\" fill=\"");
    put_color(r, t, nd);
    pgp_render_str(r, "\"/>");
    double fit = (nd->w - LABEL_PAD_PX) / GLYPH_PX;
    if (fit >= MIN_LABEL_CHARS) {
        size_t chars = fit > 1e6 ? 1000000 : (size_t)fit;
        pgp_render_str(r, "<text x=\"");
        put_px(r, nd->x + 3.0);
        pgp_render_str(r, "\" y=\"");
        put_px(r, y + 11.5);
        pgp_render_str(r, "\">");
        if (count_chars(name, len) <= chars) {
            xml_text(r, name, len);
        } else {
            xml_text(r, name, prefix_bytes(name, len, chars - 2));
            pgp_render_str(r, "..");
        }
        pgp_render_str(r, "</text>");
    }
    pgp_render_str(r, "</g>\n");
}

/*
 * Click-to-zoom: a frame's ancestors stretch to the full width, its
 * subtree is rescaled, everything else hides; clicking the root resets.
 * Labels are refitted from the <title> (the name before " (...)").
 * Optional: the graph is complete without it.
 */
static const char zoom_script[] =
    "<script type=\"text/ecmascript\"><![CDATA[\n"
    "(function(){var s=document.documentElement,L=+s.getAttribute('data-left'),"
    "W=+s.getAttribute('data-plot-w'),e=0.02,N=s.namespaceURI;\n"
    "var fs=[].slice.call(s.querySelectorAll('g.f')).map(function(g){var r=g.querySelector('rect');"
    "return{g:g,r:r,t:g.querySelector('text'),x:+r.getAttribute('x'),w:+r.getAttribute('width'),"
    "y:+r.getAttribute('y'),n:g.querySelector('title').textContent.replace(/ \\([^()]*\\)$/,'')};});\n"
    "function show(f,x,w){f.g.style.display='';f.r.setAttribute('x',x);f.r.setAttribute('width',w);"
    "var c=Math.floor((w-6)/7),a=Array.from(f.n);if(!f.t){if(c<3)return;"
    "f.t=document.createElementNS(N,'text');f.t.setAttribute('y',f.y+11.5);f.g.appendChild(f.t);}"
    "f.t.setAttribute('x',x+3);f.t.textContent=c<3?'':(a.length<=c?f.n:a.slice(0,c-2).join('')+'..');}\n"
    "function zoom(z){fs.forEach(function(f){if(z.w>=W-e){show(f,f.x,f.w);return;}"
    "if(f.y>z.y){if(f.x<=z.x+e&&f.x+f.w>=z.x+z.w-e)show(f,L,W);else f.g.style.display='none';}"
    "else if(f.x>=z.x-e&&f.x+f.w<=z.x+z.w+e){var k=W/z.w;show(f,L+(f.x-z.x)*k,f.w*k);}"
    "else f.g.style.display='none';});}\n"
    "fs.forEach(function(f){f.g.addEventListener('click',function(){zoom(f);});});})();\n"
    "]]></script>\n";

static void put_head(pgp_render_t *r, unsigned width, double height, double plot_w,
                     const char *title)
{
    pgp_render_str(r, "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
                      "<svg version=\"1.1\" xmlns=\"http://www.w3.org/2000/svg\" width=\"");
    pgp_render_uint(r, width);
    pgp_render_str(r, "\" height=\"");
    put_px(r, height);
    pgp_render_str(r, "\" viewBox=\"0 0 ");
    pgp_render_uint(r, width);
    pgp_render_char(r, ' ');
    put_px(r, height);
    pgp_render_str(r, "\" data-left=\"");
    pgp_render_uint(r, PGP_FLAME_PAD_PX);
    pgp_render_str(r, "\" data-plot-w=\"");
    put_px(r, plot_w);
    pgp_render_str(r, "\">\n<style>text{font-family:Verdana,'DejaVu Sans',sans-serif;"
                      "font-size:12px;fill:#000}.t{font-size:17px}.s{fill:#555}.m{fill:#777}"
                      "g.f{cursor:pointer}g.f:hover rect{stroke:#000;stroke-width:0.5}</style>\n"
                      "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"#fcfcfa\"/>\n"
                      "<text class=\"t\" x=\"");
    put_px(r, width / 2.0);
    pgp_render_str(r, "\" y=\"24\" text-anchor=\"middle\">");
    xml_cstr(r, title);
    pgp_render_str(r, "</text>\n");
}

static void put_subtitle(pgp_render_t *r, const tree_t *t, unsigned width, const char *unit)
{
    pgp_render_str(r, "<text class=\"s\" x=\"");
    put_px(r, width / 2.0);
    pgp_render_str(r, "\" y=\"43\" text-anchor=\"middle\">total ");
    put_value(r, t->st.total, unit);
    if (t->st.total == UINT64_MAX)
        pgp_render_str(r, " (saturated)");
    pgp_render_str(r, ", ");
    pgp_render_uint(r, t->st.lines - t->st.malformed);
    pgp_render_str(r, " stacks");
    if (t->st.malformed > 0) {
        pgp_render_str(r, ", ");
        pgp_render_uint(r, t->st.malformed);
        pgp_render_str(r, " malformed lines skipped");
    }
    if (t->st.frames_dropped > 0) {
        pgp_render_str(r, ", ");
        pgp_render_uint(r, t->st.frames_dropped);
        pgp_render_str(r, " frames dropped (cap)");
    }
    pgp_render_str(r, "</text>\n");
}

static void put_message_doc(pgp_render_t *r, unsigned width, const char *title, const char *msg)
{
    put_head(r, width, 120.0, width - 2.0 * PGP_FLAME_PAD_PX, title);
    pgp_render_str(r, "<text class=\"m\" x=\"");
    put_px(r, width / 2.0);
    pgp_render_str(r, "\" y=\"80\" text-anchor=\"middle\">");
    pgp_render_str(r, msg);
    pgp_render_str(r, "</text>\n</svg>\n");
}

int pgp_flame_render_svg_stats(const char *collapsed, size_t len, const pgp_flame_opts_t *opts,
                               pgp_render_t *r, pgp_flame_stats_t *stats)
{
    unsigned width = opts != NULL && opts->width_px != 0 ? opts->width_px : PGP_FLAME_DEFAULT_WIDTH;
    const char *title = opts != NULL && opts->title != NULL ? opts->title : PGP_FLAME_DEFAULT_TITLE;
    const char *unit = opts != NULL ? opts->unit : NULL;
    const unsigned char *in = (const unsigned char *)collapsed;
    tree_t t;
    node_t **order = NULL;

    if (width < PGP_FLAME_MIN_WIDTH)
        width = PGP_FLAME_MIN_WIDTH;
    if (width > PGP_FLAME_MAX_WIDTH)
        width = PGP_FLAME_MAX_WIDTH;
    if (in == NULL)
        len = 0;
    memset(&t, 0, sizeof(t));

    /* Size the tree by an upper bound on the frames the input can name. */
    uint64_t bound = 1;
    for (size_t i = 0; i < len && bound < PGP_FLAME_MAX_FRAMES; i++)
        bound += in[i] == ';' || in[i] == '\n';
    bound += 1;
    t.cap = bound < PGP_FLAME_MAX_FRAMES ? (uint32_t)bound : PGP_FLAME_MAX_FRAMES;
    uint32_t nslots = 16;
    while (nslots < 2u * t.cap)
        nslots <<= 1;
    t.mask = nslots - 1;
    t.nodes = malloc(sizeof(node_t) * t.cap);
    t.slots = calloc(nslots, sizeof(uint32_t));
    order = malloc(sizeof(node_t *) * t.cap);
    if (t.nodes == NULL || t.slots == NULL || order == NULL) {
        put_message_doc(r, width, title, "out of memory");
        goto out;
    }
    memset(&t.nodes[0], 0, sizeof(node_t));
    t.nodes[0].first_child = NONE;
    t.nodes[0].next_sibling = NONE;
    t.nodes[0].parent = NONE;
    t.n = 1;

    for (size_t pos = 0; pos < len;) {
        const unsigned char *nl = memchr(in + pos, '\n', len - pos);
        size_t end = nl != NULL ? (size_t)(nl - in) : len;
        add_line(&t, in + pos, end - pos);
        pos = end + 1;
    }
    t.st.frames = t.n;

    if (t.st.total == 0) {
        put_message_doc(r, width, title, "no samples yet");
        goto out;
    }

    double plot_w = width - 2.0 * PGP_FLAME_PAD_PX;
    uint32_t maxd = layout(&t, order, PGP_FLAME_PAD_PX, plot_w);
    double height = TOP_PX + (maxd + 1) * (double)PGP_FLAME_FRAME_PX + BOTTOM_PX;
    put_head(r, width, height, plot_w, title);
    put_subtitle(r, &t, width, unit);
    for (uint32_t i = 0; i < t.n; i++) {
        const node_t *nd = order[i];
        if (nd->w < PGP_FLAME_MIN_DRAW_PX || nd->depth > maxd)
            continue;
        double y = TOP_PX + (double)(maxd - nd->depth) * PGP_FLAME_FRAME_PX;
        put_frame(r, &t, nd, y, unit);
        t.st.frames_drawn++;
    }
    pgp_render_str(r, zoom_script);
    pgp_render_str(r, "</svg>\n");

out:
    if (stats != NULL)
        *stats = t.st;
    free(order);
    free(t.slots);
    free(t.nodes);
    return pgp_render_error(r) != 0 ? -1 : 0;
}

int pgp_flame_render_svg(const char *collapsed, size_t len, const pgp_flame_opts_t *opts,
                         pgp_render_t *r)
{
    return pgp_flame_render_svg_stats(collapsed, len, opts, r, NULL);
}
