/*
 * profile.c - request profiles (DESIGN §4.4; contract in profile.h): the
 * per-session profiler that groups statements into requests, the profile
 * object built while a request is open and frozen when it finishes, and
 * its renderings (header, to_dict JSON, collapsed stacks, notice text).
 *
 * It owns each open profile (events array, text arena in chunks so that
 * copied texts never move, a small open-addressing table of per-
 * fingerprint counts) until the finish callback takes it; finished
 * profiles are shared by refcount.  It does not read clocks (times come
 * in the statements), does not store profiles (store.c) and does not
 * decide what an N+1 is (nplus1.c).
 */
#include "pgproxy/profile.h"
#include "pgproxy/lex.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ENDPOINT_MAX 512
#define ARENA_CHUNK 4096

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    char data[];
} chunk_t;

typedef struct fp_slot {
    uint64_t fp;
    uint64_t total_ns;
    const char *norm;           /* arena copy of its first kept normalized text, or NULL */
    uint32_t norm_len;
    uint32_t count;
    uint32_t order;             /* first-seen order, from 1; 0 = free slot */
} fp_slot_t;

struct pgp_profile {
    atomic_uint refs;
    uint64_t id, session_id;
    pgp_profile_source_t source;
    bool has_request_id;
    char request_id[PGP_PROFILE_REQUEST_ID_MAX + 1];
    char label[PGP_PROFILE_LABEL_MAX + 1];
    char database[PGP_PROFILE_NAME_MAX + 1];
    char user[PGP_PROFILE_NAME_MAX + 1];
    char application_name[PGP_PROFILE_NAME_MAX + 1];
    char client_addr[PGP_PROFILE_NAME_MAX + 1];
    pgp_norm_tags_t tags;
    uint64_t start_wall_ns, first_start_ns, last_end_ns;
    uint64_t covered_ns, cover_end_ns;
    uint64_t total_ns, sql_total_ns, app_ns, text_dropped_bytes;
    uint32_t sql_count, events_dropped;
    uint32_t max_events;
    pgp_nplus1_event_t *events;
    uint32_t nevents, events_alloc;
    chunk_t *chunks;
    size_t text_used, text_cap;
    fp_slot_t *fps;
    uint32_t fp_alloc, fp_used;
    pgp_nplus1_finding_t *findings;
    size_t nfindings;
};

struct pgp_profiler {
    pgp_profile_config_t cfg;   /* cfg.ignore_fingerprints points at ignore */
    uint64_t *ignore;
    uint64_t session_id;
    char database[PGP_PROFILE_NAME_MAX + 1];
    char user[PGP_PROFILE_NAME_MAX + 1];
    char client_addr[PGP_PROFILE_NAME_MAX + 1];
    pgp_profile_finish_cb cb;
    void *ud;
    pgp_profile_t *open;
    bool open_provisional;      /* no key yet, only BEGIN/SET-like statements */
    bool open_has_endpoint;
    size_t open_endpoint_len;
    char open_endpoint[ENDPOINT_MAX];
    bool marker, marker_local;
    size_t marker_len;
    char marker_val[PGP_PROFILE_REQUEST_ID_MAX + 1];
    bool last_any, last_has_id;
    char last_id[PGP_PROFILE_REQUEST_ID_MAX + 1];
    char last_label[PGP_PROFILE_LABEL_MAX + 1];
};

static atomic_uint_fast64_t next_profile_id = 1;

/* ---- small text helpers ------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s[0, n), or 0 when invalid. */
static size_t utf8_valid_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t min;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    uint32_t cp = c & (0x7Fu >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

/* The longest prefix of s[0, n) of at most max bytes not ending inside a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    size_t k = max;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    return k;
}

/* Copies a NUL-terminated s (NULL = "") into dst[cap], cut on a UTF-8 boundary. */
static void copy_name(char *dst, size_t cap, const char *s)
{
    size_t n = s == NULL ? 0 : strnlen(s, cap);
    n = utf8_cut(s, n, cap - 1);
    if (n > 0)
        memcpy(dst, s, n);
    dst[n] = '\0';
}

static void copy_bytes(char *dst, size_t cap, const char *s, size_t n)
{
    n = utf8_cut(s, n, cap - 1);
    if (n > 0)
        memcpy(dst, s, n);
    dst[n] = '\0';
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool ieq(const char *s, size_t n, const char *lit)
{
    size_t m = strlen(lit);   /* our constant */
    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower(s[i]) != lit[i])
            return false;
    return true;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* ---- text arena ----------------------------------------------------------- */

static const char *arena_copy(pgp_profile_t *p, const char *s, size_t n, size_t limit)
{
    if (n >= limit || p->text_used > limit - n - 1)
        return NULL;
    chunk_t *c = p->chunks;
    if (c == NULL || c->cap - c->used < n + 1) {
        /* Small caps get a small chunk: the arena never holds more than
         * text_cap bytes plus one chunk's slack. */
        size_t cap = ARENA_CHUNK < p->text_cap ? ARENA_CHUNK : p->text_cap;
        if (cap < n + 1)
            cap = n + 1;
        c = malloc(sizeof(*c) + cap);
        if (c == NULL)
            return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = p->chunks;
        p->chunks = c;
    }
    char *dst = c->data + c->used;
    if (n > 0)
        memcpy(dst, s, n);
    dst[n] = '\0';
    c->used += n + 1;
    p->text_used += n + 1;
    return dst;
}

/* ---- per-fingerprint table -------------------------------------------------- */

static uint32_t fp_hash(uint64_t fp)
{
    fp ^= fp >> 33;
    fp *= UINT64_C(0xff51afd7ed558ccd);
    fp ^= fp >> 33;
    return (uint32_t)fp;
}

static fp_slot_t *fp_find(const pgp_profile_t *p, uint64_t fp)
{
    if (p->fp_alloc == 0)
        return NULL;
    uint32_t mask = p->fp_alloc - 1;
    for (uint32_t i = fp_hash(fp) & mask;; i = (i + 1) & mask) {
        if (p->fps[i].order == 0)
            return NULL;
        if (p->fps[i].fp == fp)
            return &p->fps[i];
    }
}

static fp_slot_t *fp_get(pgp_profile_t *p, uint64_t fp)
{
    fp_slot_t *s = fp_find(p, fp);
    if (s != NULL)
        return s;
    if (p->fp_used >= PGP_PROFILE_MAX_FINGERPRINTS || p->fp_used >= p->max_events)
        return NULL;
    if ((p->fp_used + 1) * 2 > p->fp_alloc) {
        uint32_t na = p->fp_alloc == 0 ? 16 : p->fp_alloc * 2;
        fp_slot_t *ns = calloc(na, sizeof(*ns));
        if (ns == NULL)
            return NULL;
        for (uint32_t i = 0; i < p->fp_alloc; i++) {
            if (p->fps[i].order == 0)
                continue;
            uint32_t j = fp_hash(p->fps[i].fp) & (na - 1);
            while (ns[j].order != 0)
                j = (j + 1) & (na - 1);
            ns[j] = p->fps[i];
        }
        free(p->fps);
        p->fps = ns;
        p->fp_alloc = na;
    }
    uint32_t mask = p->fp_alloc - 1;
    uint32_t i = fp_hash(fp) & mask;
    while (p->fps[i].order != 0)
        i = (i + 1) & mask;
    p->fp_used++;
    p->fps[i] = (fp_slot_t){.fp = fp, .order = p->fp_used};
    return &p->fps[i];
}

/* ---- the profile object ------------------------------------------------------- */

static pgp_profile_t *profile_new(const pgp_profiler_t *pr)
{
    pgp_profile_t *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    atomic_init(&p->refs, 1u);
    p->session_id = pr->session_id;
    p->source = PGP_PROFILE_SOURCE_INFERRED;
    memcpy(p->database, pr->database, sizeof(p->database));
    memcpy(p->user, pr->user, sizeof(p->user));
    memcpy(p->client_addr, pr->client_addr, sizeof(p->client_addr));
    p->max_events = pr->cfg.max_events;
    p->text_cap = pr->cfg.max_text_bytes;
    return p;
}

static void profile_free(pgp_profile_t *p)
{
    chunk_t *c = p->chunks;
    while (c != NULL) {
        chunk_t *next = c->next;
        free(c);
        c = next;
    }
    free(p->events);
    free(p->fps);
    free(p->findings);
    free(p);
}

void pgp_profile_ref(pgp_profile_t *p)
{
    atomic_fetch_add_explicit(&p->refs, 1u, memory_order_relaxed);
}

void pgp_profile_unref(pgp_profile_t *p)
{
    if (p != NULL && atomic_fetch_sub_explicit(&p->refs, 1u, memory_order_acq_rel) == 1u)
        profile_free(p);
}

/* Adds the tags of src missing from dst (the first value of a key wins). */
static void tags_merge(pgp_norm_tags_t *dst, const pgp_norm_tags_t *src)
{
    for (uint32_t i = 0; i < src->count; i++) {
        const pgp_norm_tag_t *t = &src->tag[i];
        const char *k = src->buf + t->key_off, *v = src->buf + t->val_off;
        const char *dv;
        size_t dl;
        if (pgp_norm_tags_get(dst, k, t->key_len, &dv, &dl))
            continue;
        if (dst->count >= PGP_NORM_TAGS_MAX ||
            (size_t)dst->buf_used + t->key_len + t->val_len > PGP_NORM_TAGS_BUF) {
            dst->truncated = true;
            continue;
        }
        pgp_norm_tag_t *n = &dst->tag[dst->count++];
        n->key_off = dst->buf_used;
        n->key_len = t->key_len;
        memcpy(dst->buf + dst->buf_used, k, t->key_len);
        dst->buf_used = (uint16_t)(dst->buf_used + t->key_len);
        n->val_off = dst->buf_used;
        n->val_len = t->val_len;
        memcpy(dst->buf + dst->buf_used, v, t->val_len);
        dst->buf_used = (uint16_t)(dst->buf_used + t->val_len);
    }
    if (src->truncated)
        dst->truncated = true;
}

static bool tag(const pgp_norm_tags_t *t, const char *key, const char **v, size_t *n)
{
    return t != NULL && pgp_norm_tags_get(t, key, strlen(key), v, n) && *n > 0;
}

/* The label of a request: controller#action, route, job, application_name or "unknown". */
static void make_label(const pgp_norm_tags_t *t, const char *app, char *out)
{
    const char *c, *a, *v;
    size_t cl, al, vl;
    size_t cap = PGP_PROFILE_LABEL_MAX + 1;
    if (tag(t, "controller", &c, &cl) && tag(t, "action", &a, &al)) {
        size_t n = utf8_cut(c, cl, PGP_PROFILE_LABEL_MAX - 1);
        memcpy(out, c, n);
        out[n] = '#';
        copy_bytes(out + n + 1, cap - n - 1, a, al);
    } else if (tag(t, "route", &v, &vl) || tag(t, "job", &v, &vl)) {
        copy_bytes(out, cap, v, vl);
    } else if (app[0] != '\0') {
        copy_name(out, cap, app);
    } else {
        copy_name(out, cap, "unknown");
    }
}

static bool room_for_text(const pgp_profile_t *p, size_t n)
{
    size_t limit = p->text_cap - p->text_cap / 4;
    return n < limit && p->text_used <= limit - n - 1;
}

static void profile_add(pgp_profile_t *p, const pgp_profile_stmt_t *st, pgp_params_mode_t params)
{
    uint64_t start = st->start_ns, end = st->end_ns < st->start_ns ? st->start_ns : st->end_ns;
    uint64_t dur = end - start;
    if (p->sql_count == 0 || start < p->first_start_ns) {
        if (p->sql_count == 0) {
            p->last_end_ns = end;
            p->cover_end_ns = start;
        }
        p->first_start_ns = start;
        p->start_wall_ns = st->start_wall_ns;
    }
    if (end > p->last_end_ns)
        p->last_end_ns = end;
    /* Union of the statement intervals, so overlapping (pipelined)
     * statements count once in the time not spent in the app. */
    if (start >= p->cover_end_ns) {
        p->covered_ns += dur;
        p->cover_end_ns = end;
    } else if (end > p->cover_end_ns) {
        p->covered_ns += end - p->cover_end_ns;
        p->cover_end_ns = end;
    }
    p->sql_count++;
    p->sql_total_ns += dur;
    if (st->tags != NULL)
        tags_merge(&p->tags, st->tags);
    if (p->application_name[0] == '\0' && st->application_name != NULL)
        copy_name(p->application_name, sizeof(p->application_name), st->application_name);

    fp_slot_t *slot = fp_get(p, st->fingerprint);
    if (slot != NULL) {
        slot->count++;
        slot->total_ns += dur;
    }

    if (p->nevents >= p->max_events) {
        p->events_dropped++;
        return;
    }
    if (p->nevents == p->events_alloc) {
        uint32_t na = p->events_alloc == 0 ? 16 : p->events_alloc * 2;
        if (na > p->max_events)
            na = p->max_events;
        pgp_nplus1_event_t *ne = realloc(p->events, na * sizeof(*ne));
        if (ne == NULL) {
            p->events_dropped++;
            return;
        }
        p->events = ne;
        p->events_alloc = na;
    }
    pgp_nplus1_event_t *ev = &p->events[p->nevents++];
    *ev = (pgp_nplus1_event_t){.start_ns = start, .duration_ns = dur,
                               .fingerprint = st->fingerprint, .values_hash = st->values_hash,
                               .rows = st->rows, .sql = "", .normalized = "", .params = "",
                               .kind = st->kind, .pipelined = st->pipelined,
                               .sql_truncated = st->sql_truncated};
    if (st->sqlstate != NULL)
        copy_name(ev->sqlstate, sizeof(ev->sqlstate), st->sqlstate);

    size_t nl = st->normalized == NULL ? 0 : st->normalized_len;
    if (nl > UINT32_MAX)
        nl = UINT32_MAX;
    if (nl > 0) {
        const char *norm = NULL;
        if (slot != NULL && slot->norm != NULL && slot->norm_len == nl &&
            memcmp(slot->norm, st->normalized, nl) == 0)
            norm = slot->norm;
        else
            norm = arena_copy(p, st->normalized, nl, p->text_cap);
        if (norm != NULL) {
            ev->normalized = norm;
            ev->normalized_len = (uint32_t)nl;
            if (slot != NULL && slot->norm == NULL) {
                slot->norm = norm;
                slot->norm_len = (uint32_t)nl;
            }
        } else {
            ev->text_truncated = true;
            p->text_dropped_bytes += nl;
        }
    }
    size_t sl = st->sql == NULL ? 0 : st->sql_len;
    if (sl > 0) {
        const char *sql = room_for_text(p, sl) ? arena_copy(p, st->sql, sl, p->text_cap) : NULL;
        if (sql != NULL) {
            ev->sql = sql;
            ev->sql_len = (uint32_t)sl;
        } else {
            ev->text_truncated = true;
            p->text_dropped_bytes += sl;
        }
    }
    size_t pl = st->params_summary == NULL || params == PGP_PARAMS_OFF ? 0 : st->params_summary_len;
    if (pl > 0) {
        const char *par = room_for_text(p, pl) ? arena_copy(p, st->params_summary, pl, p->text_cap)
                                               : NULL;
        if (par != NULL) {
            ev->params = par;
            ev->params_len = (uint32_t)pl;
        } else {
            ev->text_truncated = true;
            p->text_dropped_bytes += pl;
        }
    }
}

/* ---- the profiler ------------------------------------------------------------- */

static void apply_config(pgp_profiler_t *pr, const pgp_profile_config_t *cfg)
{
    uint64_t *ign = NULL;
    size_t nign = cfg->ignore_fingerprints == NULL ? 0 : cfg->ignore_count;
    bool ok = true;
    if (nign > 0) {
        ign = malloc(nign * sizeof(*ign));
        if (ign == NULL) {
            ok = false;
        } else {
            memcpy(ign, cfg->ignore_fingerprints, nign * sizeof(*ign));
            pgp_nplus1_sort_ignore(ign, nign);
        }
    }
    uint64_t *old = pr->ignore;
    size_t old_count = pr->cfg.ignore_count;
    pr->cfg = *cfg;
    if (pr->cfg.max_events == 0)
        pr->cfg.max_events = 1;
    if (pr->cfg.max_events > PGP_PROFILE_MAX_EVENTS_LIMIT)
        pr->cfg.max_events = PGP_PROFILE_MAX_EVENTS_LIMIT;
    if (pr->cfg.n_plus_one_threshold < 2)
        pr->cfg.n_plus_one_threshold = 2;
    if (ok) {
        free(old);
        pr->ignore = ign;
        pr->cfg.ignore_count = nign;
    } else {
        pr->ignore = old;
        pr->cfg.ignore_count = old_count;
    }
    pr->cfg.ignore_fingerprints = pr->ignore;
}

pgp_profiler_t *pgp_profiler_create(const pgp_profile_config_t *cfg, uint64_t session_id,
                                    const char *database, const char *user,
                                    const char *client_addr, pgp_profile_finish_cb cb, void *ud)
{
    pgp_profiler_t *pr = calloc(1, sizeof(*pr));
    if (pr == NULL)
        return NULL;
    apply_config(pr, cfg);
    if (cfg->ignore_count > 0 && cfg->ignore_fingerprints != NULL && pr->ignore == NULL) {
        free(pr);
        return NULL;
    }
    pr->session_id = session_id;
    copy_name(pr->database, sizeof(pr->database), database);
    copy_name(pr->user, sizeof(pr->user), user);
    copy_name(pr->client_addr, sizeof(pr->client_addr), client_addr);
    pr->cb = cb;
    pr->ud = ud;
    return pr;
}

void pgp_profiler_set_config(pgp_profiler_t *p, const pgp_profile_config_t *cfg)
{
    apply_config(p, cfg);
}

static void finish(pgp_profiler_t *pr)
{
    pgp_profile_t *p = pr->open;
    if (p == NULL)
        return;
    pr->open = NULL;
    p->total_ns = p->last_end_ns - p->first_start_ns;
    p->app_ns = p->covered_ns >= p->total_ns ? 0 : p->total_ns - p->covered_ns;
    make_label(&p->tags, p->application_name, p->label);

    pgp_nplus1_rules_t rules = {.threshold = pr->cfg.n_plus_one_threshold,
                                .examples = pr->cfg.params != PGP_PARAMS_OFF,
                                .ignore = pr->ignore, .ignore_count = pr->cfg.ignore_count};
    if (pgp_nplus1_analyze(p->events, p->nevents, &rules, &p->findings, &p->nfindings) != 0) {
        p->findings = NULL;   /* out of memory: a profile without findings */
        p->nfindings = 0;
    }
    /* Kept events may be fewer than executed ones: count the whole request. */
    for (size_t i = 0; i < p->nfindings; i++) {
        pgp_nplus1_finding_t *f = &p->findings[i];
        const fp_slot_t *s = fp_find(p, f->fingerprint);
        if (s != NULL && s->count > f->count) {
            f->count = s->count;
            f->total_ns = s->total_ns;
            f->estimated_saving_ns = s->total_ns - s->total_ns / s->count;
        }
    }
    p->id = atomic_fetch_add(&next_profile_id, 1);
    pr->cb(pr->ud, p);
}

void pgp_profiler_destroy(pgp_profiler_t *p)
{
    if (p == NULL)
        return;
    finish(p);
    free(p->ignore);
    free(p);
}

bool pgp_profiler_has_open(const pgp_profiler_t *p)
{
    return p->open != NULL;
}

const char *pgp_profiler_current_request_id(const pgp_profiler_t *p)
{
    return p->last_any && p->last_has_id ? p->last_id : NULL;
}

const char *pgp_profiler_current_label(const pgp_profiler_t *p)
{
    return p->last_any ? p->last_label : NULL;
}

void pgp_profiler_tick(pgp_profiler_t *p, uint64_t now_ns)
{
    if (p->open != NULL && p->cfg.request_gap_ns > 0 && now_ns >= p->open->last_end_ns &&
        now_ns - p->open->last_end_ns >= p->cfg.request_gap_ns)
        finish(p);
}

/* Ends the session marker; the request it keyed is over. */
static void marker_end(pgp_profiler_t *p)
{
    p->marker = false;
    p->marker_local = false;
    if (p->open != NULL && p->open->source == PGP_PROFILE_SOURCE_SESSION)
        finish(p);
}

void pgp_profiler_note_ready(pgp_profiler_t *p, char txn_status, uint64_t now_ns)
{
    (void)now_ns;
    if (txn_status == 'I' && p->marker && p->marker_local)
        marker_end(p);
}

/* The trace id of a W3C traceparent value (version 00), lower-cased into out[33]. */
static bool traceparent_id(const char *v, size_t n, char *out)
{
    if (n != 55 || v[0] != '0' || v[1] != '0' || v[2] != '-' || v[35] != '-' || v[52] != '-')
        return false;
    bool trace_zero = true, parent_zero = true;
    for (size_t i = 3; i < 55; i++) {
        if (i == 35 || i == 52)
            continue;
        if (!is_hex(v[i]))
            return false;
        if (i < 35 && v[i] != '0')
            trace_zero = false;
        if (i > 35 && i < 52 && v[i] != '0')
            parent_zero = false;
    }
    if (trace_zero || parent_zero)
        return false;
    for (size_t i = 0; i < 32; i++)
        out[i] = lower(v[3 + i]);
    out[32] = '\0';
    return true;
}

/* True when name (as written: quotes, any case) is pgproxy.request_id. */
static bool name_is_marker(const char *name, size_t n)
{
    static const char want[] = "pgproxy.request_id";
    char buf[sizeof(want)];
    size_t k = 0;
    bool quoted = false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c == '"') {
            if (quoted && i + 1 < n && name[i + 1] == '"') {
                i++;
            } else {
                quoted = !quoted;
                continue;
            }
        } else if (!quoted && (c == ' ' || c == '\t' || c == '\n' || c == '\r')) {
            continue;
        }
        if (k >= sizeof(want) - 1)
            return false;
        buf[k++] = lower(c);
    }
    return k == sizeof(want) - 1 && memcmp(buf, want, k) == 0;
}

/*
 * The value of `SET [LOCAL|SESSION] name {=|TO} value` read with the
 * lexer: a string ('' doubled quotes undone, E'' backslashes undone,
 * dollar quotes), a word or a number.  *is_default for DEFAULT.  False
 * when no value could be read.
 */
static bool marker_value(const char *sql, size_t len, char *out, size_t cap, size_t *out_len,
                         bool *is_default)
{
    pgp_lex_t lx;
    pgp_lex_token_t t;
    int state = 0;   /* 0 before SET, 1 in the name, 2 value due */
    *is_default = false;
    pgp_lex_init(&lx, sql, len, false);
    for (pgp_lex_next(&lx, &t); t.kind != PGP_LEX_EOF; pgp_lex_next(&lx, &t)) {
        if (!pgp_lex_significant(t.kind))
            continue;
        if (state == 0) {
            if (t.kind != PGP_LEX_WORD || !ieq(t.p, t.len, "set"))
                return false;
            state = 1;
        } else if (state == 1) {
            if ((t.kind == PGP_LEX_OP && t.len == 1 && t.p[0] == '=') ||
                (t.kind == PGP_LEX_WORD && ieq(t.p, t.len, "to")))
                state = 2;
        } else {
            size_t n = 0;
            if (t.kind == PGP_LEX_WORD && ieq(t.p, t.len, "default")) {
                *is_default = true;
                *out_len = 0;
                return true;
            }
            if (t.kind == PGP_LEX_WORD || t.kind == PGP_LEX_NUMBER) {
                n = utf8_cut(t.p, t.len, cap - 1);
                memcpy(out, t.p, n);
            } else if (t.kind == PGP_LEX_STRING && !(t.flags & PGP_LEX_F_UNTERMINATED)) {
                const char *s = t.p, *e = t.p + t.len;
                if (s[0] == '$') {
                    const char *q = memchr(s + 1, '$', (size_t)(e - s - 1));
                    if (q == NULL)
                        return false;
                    size_t tl = (size_t)(q - s) + 1;
                    s += tl;
                    e -= tl;
                    while (s < e && n < cap - 1)
                        out[n++] = *s++;
                } else {
                    bool esc = s[0] == 'E' || s[0] == 'e';
                    if (s[0] != '\'' && !esc)
                        return false;   /* B'', X'', U&'' ...: not a request id */
                    s += esc ? 2 : 1;
                    e -= 1;
                    while (s < e && n < cap - 1) {
                        if (s[0] == '\'' && s + 1 < e && s[1] == '\'') {
                            out[n++] = '\'';
                            s += 2;
                        } else if (esc && s[0] == '\\' && s + 1 < e) {
                            out[n++] = s[1];
                            s += 2;
                        } else {
                            out[n++] = *s++;
                        }
                    }
                    n = utf8_cut(out, n, cap - 1);
                }
            } else {
                return false;
            }
            out[n] = '\0';
            *out_len = n;
            return true;
        }
    }
    return false;
}

typedef struct stmt_key {
    pgp_profile_source_t source;
    bool is_explicit;
    const char *key;
    size_t len;
    bool has_endpoint;
    size_t endpoint_len;
    char endpoint[ENDPOINT_MAX];
    char trace[33];
} stmt_key_t;

static void endpoint_add(stmt_key_t *k, char code, const char *v, size_t n)
{
    size_t room = sizeof(k->endpoint) - k->endpoint_len;
    if (room < 3)
        return;
    k->endpoint[k->endpoint_len++] = code;
    if (n > room - 2)
        n = room - 2;
    memcpy(k->endpoint + k->endpoint_len, v, n);
    k->endpoint_len += n;
    k->endpoint[k->endpoint_len++] = '\x1f';
    k->has_endpoint = true;
}

static void stmt_key(const pgp_profiler_t *pr, const pgp_profile_stmt_t *st, stmt_key_t *k)
{
    const pgp_norm_tags_t *t = st->tags;
    const char *v;
    size_t n;
    k->is_explicit = true;
    k->has_endpoint = false;
    k->endpoint_len = 0;
    if (tag(t, "traceparent", &v, &n) && traceparent_id(v, n, k->trace)) {
        k->source = PGP_PROFILE_SOURCE_TRACEPARENT;
        k->key = k->trace;
        k->len = 32;
        return;
    }
    if (tag(t, "request_id", &v, &n) || tag(t, "x_request_id", &v, &n)) {
        k->source = PGP_PROFILE_SOURCE_REQUEST_ID;
        k->key = v;
        k->len = utf8_cut(v, n, PGP_PROFILE_REQUEST_ID_MAX);
        return;
    }
    if (pr->marker) {
        k->source = PGP_PROFILE_SOURCE_SESSION;
        k->key = pr->marker_val;
        k->len = pr->marker_len;
        return;
    }
    k->is_explicit = false;
    k->source = PGP_PROFILE_SOURCE_INFERRED;
    k->key = NULL;
    k->len = 0;
    const char *a;
    size_t an;
    if (tag(t, "controller", &v, &n) && tag(t, "action", &a, &an)) {
        endpoint_add(k, 'c', v, n);
        endpoint_add(k, 'a', a, an);
    }
    if (tag(t, "route", &v, &n))
        endpoint_add(k, 'r', v, n);
    if (tag(t, "job", &v, &n))
        endpoint_add(k, 'j', v, n);
}

static void set_key(pgp_profile_t *p, const stmt_key_t *k)
{
    p->source = k->source;
    p->has_request_id = k->is_explicit;
    if (k->is_explicit) {
        memcpy(p->request_id, k->key, k->len);
        p->request_id[k->len] = '\0';
    }
}

static void set_endpoint(pgp_profiler_t *pr, const stmt_key_t *k)
{
    pr->open_has_endpoint = k->has_endpoint;
    pr->open_endpoint_len = k->endpoint_len;
    memcpy(pr->open_endpoint, k->endpoint, k->endpoint_len);
}

static bool setup_kind(pgp_norm_kind_t kind)
{
    switch (kind) {
    case PGP_NORM_KIND_EMPTY: case PGP_NORM_KIND_BEGIN: case PGP_NORM_KIND_SAVEPOINT:
    case PGP_NORM_KIND_SET: case PGP_NORM_KIND_RESET: case PGP_NORM_KIND_SHOW:
    case PGP_NORM_KIND_DISCARD:
        return true;
    default:
        return false;
    }
}

/* Joins st to the open request, adopts its key, or closes the open request. */
static void attribute(pgp_profiler_t *pr, const stmt_key_t *k)
{
    pgp_profile_t *o = pr->open;
    if (o == NULL)
        return;
    if (k->is_explicit) {
        if (o->has_request_id) {
            if (o->source != k->source || strlen(o->request_id) != k->len ||
                memcmp(o->request_id, k->key, k->len) != 0)
                finish(pr);
        } else if (pr->open_provisional) {
            set_key(o, k);
            pr->open_provisional = false;
        } else {
            finish(pr);
        }
    } else if (k->has_endpoint && !o->has_request_id) {
        if (!pr->open_has_endpoint)
            set_endpoint(pr, k);
        else if (pr->open_endpoint_len != k->endpoint_len ||
                 memcmp(pr->open_endpoint, k->endpoint, k->endpoint_len) != 0)
            finish(pr);
    }
}

void pgp_profiler_record(pgp_profiler_t *pr, const pgp_profile_stmt_t *st)
{
    if (pr->open != NULL && pr->cfg.request_gap_ns > 0 && st->start_ns >= pr->open->last_end_ns &&
        st->start_ns - pr->open->last_end_ns >= pr->cfg.request_gap_ns)
        finish(pr);

    bool ok = st->sqlstate == NULL || st->sqlstate[0] == '\0';
    bool ends_marker = false;
    const char *name = st->name_len > 0 ? st->name : NULL;
    if (ok && st->kind == PGP_NORM_KIND_SET && name != NULL && name_is_marker(name, st->name_len)) {
        char val[PGP_PROFILE_REQUEST_ID_MAX + 1];
        size_t vlen = 0;
        bool is_default = false;
        if (st->sql != NULL &&
            marker_value(st->sql, st->sql_len, val, sizeof(val), &vlen, &is_default)) {
            if (vlen == 0) {
                ends_marker = true;
            } else {
                pr->marker = true;
                pr->marker_local = st->set_local;
                memcpy(pr->marker_val, val, vlen + 1);
                pr->marker_len = vlen;
            }
        }
    } else if (ok && st->kind == PGP_NORM_KIND_RESET && name != NULL &&
               (name_is_marker(name, st->name_len) || ieq(name, st->name_len, "all"))) {
        ends_marker = true;
    } else if (ok && st->kind == PGP_NORM_KIND_DISCARD && name != NULL &&
               ieq(name, st->name_len, "all")) {
        ends_marker = true;
    }

    stmt_key_t k;
    stmt_key(pr, st, &k);
    attribute(pr, &k);
    if (pr->open == NULL) {
        pr->open = profile_new(pr);
        if (pr->open != NULL) {
            set_key(pr->open, &k);
            set_endpoint(pr, &k);
            pr->open_provisional = !k.is_explicit;
        }
    }
    pgp_profile_t *o = pr->open;
    pr->last_any = true;
    if (o != NULL) {
        profile_add(o, st, pr->cfg.params);
        if (!setup_kind(st->kind))
            pr->open_provisional = false;
        pr->last_has_id = o->has_request_id;
        memcpy(pr->last_id, o->request_id, sizeof(pr->last_id));
        make_label(&o->tags, o->application_name, pr->last_label);
    } else {
        pr->last_has_id = false;
        copy_name(pr->last_label, sizeof(pr->last_label), "unknown");
    }

    bool txn_end = st->kind == PGP_NORM_KIND_COMMIT || st->kind == PGP_NORM_KIND_ROLLBACK;
    if (ends_marker || (txn_end && pr->marker && pr->marker_local))
        marker_end(pr);
}

/* ---- accessors ------------------------------------------------------------------ */

uint64_t pgp_profile_id(const pgp_profile_t *p) { return p->id; }
uint64_t pgp_profile_session_id(const pgp_profile_t *p) { return p->session_id; }
uint64_t pgp_profile_total_ns(const pgp_profile_t *p) { return p->total_ns; }
uint64_t pgp_profile_sql_total_ns(const pgp_profile_t *p) { return p->sql_total_ns; }
uint64_t pgp_profile_app_ns(const pgp_profile_t *p) { return p->app_ns; }
uint64_t pgp_profile_start_wall_ns(const pgp_profile_t *p) { return p->start_wall_ns; }
uint32_t pgp_profile_sql_count(const pgp_profile_t *p) { return p->sql_count; }
uint32_t pgp_profile_events_dropped(const pgp_profile_t *p) { return p->events_dropped; }
uint64_t pgp_profile_text_dropped_bytes(const pgp_profile_t *p) { return p->text_dropped_bytes; }
uint32_t pgp_profile_finding_count(const pgp_profile_t *p) { return (uint32_t)p->nfindings; }
bool pgp_profile_inferred(const pgp_profile_t *p) { return p->source == PGP_PROFILE_SOURCE_INFERRED; }
pgp_profile_source_t pgp_profile_source(const pgp_profile_t *p) { return p->source; }
const char *pgp_profile_label(const pgp_profile_t *p) { return p->label; }
const pgp_norm_tags_t *pgp_profile_tags(const pgp_profile_t *p) { return &p->tags; }

const char *pgp_profile_request_id(const pgp_profile_t *p)
{
    return p->has_request_id ? p->request_id : NULL;
}

const char *pgp_profile_source_name(pgp_profile_source_t source)
{
    switch (source) {
    case PGP_PROFILE_SOURCE_TRACEPARENT: return "traceparent";
    case PGP_PROFILE_SOURCE_REQUEST_ID: return "request_id";
    case PGP_PROFILE_SOURCE_SESSION: return "session";
    case PGP_PROFILE_SOURCE_INFERRED: return "inferred";
    }
    return "inferred";
}

const pgp_profile_event_t *pgp_profile_events(const pgp_profile_t *p, size_t *n)
{
    *n = p->nevents;
    return p->events;
}

const pgp_nplus1_finding_t *pgp_profile_findings(const pgp_profile_t *p, size_t *n)
{
    *n = p->nfindings;
    return p->findings;
}

uint32_t pgp_profile_fingerprint_count(const pgp_profile_t *p, uint64_t fp)
{
    const fp_slot_t *s = fp_find(p, fp);
    return s == NULL ? 0 : s->count;
}

/* ---- renderings ------------------------------------------------------------------ */

void pgp_profile_render_duration(pgp_render_t *r, uint64_t ns)
{
    /* Thresholds where rounding would print 1000.0 of the smaller unit. */
    if (ns < 1000) {
        pgp_render_uint(r, ns);
        pgp_render_str(r, "ns");
    } else if (ns < 999950) {
        pgp_render_double(r, (double)ns / 1e3, 1);
        pgp_render_str(r, "us");
    } else if (ns < 999950000) {
        pgp_render_double(r, (double)ns / 1e6, 1);
        pgp_render_str(r, "ms");
    } else {
        pgp_render_double(r, (double)ns / 1e9, 2);
        pgp_render_char(r, 's');
    }
}

void pgp_profile_render_iso_time(pgp_render_t *r, uint64_t wall_ns)
{
    char buf[PGP_RENDER_TIME_BYTES];
    size_t n = pgp_render_format_time(wall_ns, buf);
    pgp_render_append(r, buf, n);
}

static void json_fp(pgp_render_t *r, uint64_t fp)
{
    char hex[17];
    pgp_fingerprint_format(fp, hex);
    pgp_render_json_string(r, hex, 16);
}

void pgp_profile_render_finding_json(const pgp_nplus1_finding_t *f, pgp_render_t *r)
{
    pgp_render_json_begin_object(r);
    pgp_profile_render_finding_fields(f, r);
    pgp_render_json_end_object(r);
}

void pgp_profile_render_finding_fields(const pgp_nplus1_finding_t *f, pgp_render_t *r)
{
    pgp_render_json_key(r, "type");
    pgp_render_json_cstr(r, pgp_nplus1_type_name(f->type));
    pgp_render_json_key(r, "fingerprint");
    json_fp(r, f->fingerprint);
    pgp_render_json_key(r, "normalized");
    pgp_render_json_string(r, f->normalized, f->normalized_len);
    pgp_render_json_key(r, "count");
    pgp_render_json_uint(r, f->count);
    pgp_render_json_key(r, "distinct_values");
    pgp_render_json_uint(r, f->distinct_values);
    pgp_render_json_key(r, "longest_run");
    pgp_render_json_uint(r, f->longest_run);
    pgp_render_json_key(r, "total_ns");
    pgp_render_json_uint(r, f->total_ns);
    pgp_render_json_key(r, "source_fingerprint");
    if (f->has_source)
        json_fp(r, f->source_fingerprint);
    else
        pgp_render_json_null(r);
    pgp_render_json_key(r, "source_normalized");
    if (f->has_source)
        pgp_render_json_string(r, f->source_normalized, f->source_normalized_len);
    else
        pgp_render_json_null(r);
    pgp_render_json_key(r, "source_rows");
    if (f->has_source)
        pgp_render_json_uint(r, f->source_rows);
    else
        pgp_render_json_null(r);
    if (f->example_count > 0) {
        pgp_render_json_key(r, "examples");
        pgp_render_json_begin_array(r);
        for (uint32_t i = 0; i < f->example_count; i++)
            pgp_render_json_string(r, f->example[i],
                                   utf8_cut(f->example[i], f->example_len[i],
                                            PGP_NPLUS1_EXAMPLE_BYTES));
        pgp_render_json_end_array(r);
    }
    pgp_render_json_key(r, "estimated_saving_ns");
    pgp_render_json_uint(r, f->estimated_saving_ns);
}

int pgp_profile_render_json(const pgp_profile_t *p, pgp_render_t *r)
{
    pgp_render_json_begin_object(r);
    pgp_render_json_kv_uint(r, "id", p->id);
    pgp_render_json_kv_uint(r, "session_id", p->session_id);
    pgp_render_json_kv_str(r, "request_id", pgp_profile_request_id(p));
    pgp_render_json_kv_str(r, "source", pgp_profile_source_name(p->source));
    pgp_render_json_key(r, "inferred");
    pgp_render_json_bool(r, p->source == PGP_PROFILE_SOURCE_INFERRED);
    pgp_render_json_kv_str(r, "label", p->label);
    pgp_render_json_key(r, "tags");
    pgp_render_json_begin_object(r);
    for (uint32_t i = 0; i < p->tags.count; i++) {
        const pgp_norm_tag_t *t = &p->tags.tag[i];
        /* Keys must be NUL-terminated: copy (a tag key is short). */
        char key[PGP_NORM_TAGS_BUF + 1];
        memcpy(key, p->tags.buf + t->key_off, t->key_len);
        key[t->key_len] = '\0';
        pgp_render_json_key(r, key);
        pgp_render_json_string(r, p->tags.buf + t->val_off, t->val_len);
    }
    pgp_render_json_end_object(r);
    pgp_render_json_kv_str(r, "database", p->database);
    pgp_render_json_kv_str(r, "user", p->user);
    pgp_render_json_kv_str(r, "application_name", p->application_name);
    pgp_render_json_kv_str(r, "client_addr", p->client_addr);
    pgp_render_json_key(r, "start");
    pgp_render_json_time(r, p->start_wall_ns);
    pgp_render_json_kv_uint(r, "total_ns", p->total_ns);
    pgp_render_json_key(r, "total");
    pgp_render_t tmp;
    pgp_render_init(&tmp, 64);
    pgp_profile_render_duration(&tmp, p->total_ns);
    pgp_render_json_string(r, pgp_render_data(&tmp), pgp_render_len(&tmp));
    pgp_render_free(&tmp);
    pgp_render_json_kv_uint(r, "sql_total_ns", p->sql_total_ns);
    pgp_render_json_kv_uint(r, "sql_count", p->sql_count);
    pgp_render_json_kv_uint(r, "app_ns", p->app_ns);
    pgp_render_json_kv_uint(r, "events_dropped", p->events_dropped);
    pgp_render_json_kv_uint(r, "text_dropped_bytes", p->text_dropped_bytes);
    pgp_render_json_key(r, "queries");
    pgp_render_json_begin_array(r);
    for (uint32_t i = 0; i < p->nevents; i++) {
        const pgp_nplus1_event_t *e = &p->events[i];
        pgp_render_json_begin_object(r);
        pgp_render_json_key(r, "sql");
        pgp_render_json_string(r, e->sql, e->sql_len);
        pgp_render_json_key(r, "normalized");
        pgp_render_json_string(r, e->normalized, e->normalized_len);
        pgp_render_json_key(r, "fingerprint");
        json_fp(r, e->fingerprint);
        pgp_render_json_kv_uint(r, "duration_ns", e->duration_ns);
        pgp_render_json_key(r, "duration");
        pgp_render_init(&tmp, 64);
        pgp_profile_render_duration(&tmp, e->duration_ns);
        pgp_render_json_string(r, pgp_render_data(&tmp), pgp_render_len(&tmp));
        pgp_render_free(&tmp);
        pgp_render_json_kv_uint(r, "rows", e->rows);
        pgp_render_json_kv_str(r, "sqlstate", e->sqlstate[0] != '\0' ? e->sqlstate : NULL);
        pgp_render_json_key(r, "pipelined");
        pgp_render_json_bool(r, e->pipelined);
        pgp_render_json_kv_uint(r, "offset_ns",
                      e->start_ns >= p->first_start_ns ? e->start_ns - p->first_start_ns : 0);
        pgp_render_json_key(r, "sql_truncated");
        pgp_render_json_bool(r, e->sql_truncated);
        pgp_render_json_key(r, "text_truncated");
        pgp_render_json_bool(r, e->text_truncated);
        pgp_render_json_end_object(r);
    }
    pgp_render_json_end_array(r);
    pgp_render_json_key(r, "n_plus_one");
    pgp_render_json_begin_array(r);
    for (size_t i = 0; i < p->nfindings; i++)
        pgp_profile_render_finding_json(&p->findings[i], r);
    pgp_render_json_end_array(r);
    pgp_render_json_end_object(r);
    return pgp_render_error(r);
}

int pgp_profile_render_header(const pgp_profile_t *p, pgp_render_t *r)
{
    pgp_render_str(r, "total=");
    pgp_profile_render_duration(r, p->total_ns);
    pgp_render_str(r, " sql=");
    pgp_profile_render_duration(r, p->sql_total_ns);
    pgp_render_char(r, '(');
    pgp_render_uint(r, p->sql_count);
    pgp_render_str(r, "q) app=");
    pgp_profile_render_duration(r, p->app_ns);
    pgp_render_str(r, " n+1=");
    pgp_render_uint(r, p->nfindings);
    return pgp_render_error(r);
}

void pgp_profile_render_frame(pgp_render_t *r, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        size_t run = i;
        while (run < n && u[run] >= 0x20 && u[run] < 0x7F && u[run] != ';')
            run++;
        if (run > i) {
            pgp_render_append(r, s + i, run - i);
            i = run;
            continue;
        }
        if (u[i] == ';') {
            pgp_render_char(r, ':');
            i++;
        } else if (u[i] < 0x20 || u[i] == 0x7F) {
            pgp_render_char(r, ' ');
            i++;
        } else {
            size_t l = utf8_valid_len(u + i, n - i);
            if (l == 0) {
                pgp_render_str(r, "\xEF\xBF\xBD");
                i++;
            } else {
                pgp_render_append(r, s + i, l);
                i += l;
            }
        }
    }
}

static int cmp_slot_order(const void *a, const void *b)
{
    const fp_slot_t *x = *(const fp_slot_t *const *)a, *y = *(const fp_slot_t *const *)b;
    return x->order < y->order ? -1 : x->order > y->order;
}

int pgp_profile_foreach_stack(const pgp_profile_t *p, pgp_profile_stack_cb cb, void *ud)
{
    pgp_render_t line;
    int rc = 0;
    const fp_slot_t **order = NULL;
    uint64_t counted = 0;
    if (p->fp_used > 0) {
        order = malloc(p->fp_used * sizeof(*order));
        if (order == NULL)
            return PGP_RENDER_ENOMEM;
        size_t k = 0;
        for (uint32_t i = 0; i < p->fp_alloc; i++)
            if (p->fps[i].order != 0)
                order[k++] = &p->fps[i];
        qsort(order, k, sizeof(*order), cmp_slot_order);
    }
    pgp_render_init(&line, 64 * 1024);
    for (uint32_t i = 0; i <= p->fp_used && rc == 0; i++) {
        uint64_t ns;
        pgp_render_free(&line);
        pgp_render_str(&line, "request;");
        pgp_profile_render_frame(&line, p->label, strlen(p->label));
        if (i < p->fp_used) {
            const fp_slot_t *s = order[i];
            pgp_render_str(&line, ";sql;");
            if (s->norm != NULL) {
                pgp_profile_render_frame(&line, s->norm, s->norm_len);
            } else {
                char hex[17];
                pgp_fingerprint_format(s->fp, hex);
                pgp_render_str(&line, hex);
            }
            ns = s->total_ns;
            counted += ns;
        } else {
            /* Statements whose fingerprint did not fit in the table. */
            if (counted >= p->sql_total_ns)
                break;
            pgp_render_str(&line, ";sql;(other)");
            ns = p->sql_total_ns - counted;
        }
        rc = pgp_render_error(&line);
        if (rc == 0)
            rc = cb(ud, pgp_render_data(&line), pgp_render_len(&line), ns);
    }
    if (rc == 0) {
        pgp_render_free(&line);
        pgp_render_str(&line, "request;");
        pgp_profile_render_frame(&line, p->label, strlen(p->label));
        pgp_render_str(&line, ";app");
        rc = pgp_render_error(&line);
        if (rc == 0)
            rc = cb(ud, pgp_render_data(&line), pgp_render_len(&line), p->app_ns);
    }
    pgp_render_free(&line);
    free(order);
    return rc;
}

static int stack_to_render(void *ud, const char *frames, size_t len, uint64_t ns)
{
    pgp_render_t *r = ud;
    pgp_render_append(r, frames, len);
    pgp_render_char(r, ' ');
    pgp_render_uint(r, ns);
    pgp_render_char(r, '\n');
    return pgp_render_error(r);
}

int pgp_profile_render_collapsed(const pgp_profile_t *p, pgp_render_t *r)
{
    int rc = pgp_profile_foreach_stack(p, stack_to_render, r);
    return rc != 0 ? rc : pgp_render_error(r);
}

/* ---- notice ---------------------------------------------------------------------- */

typedef struct sbuf {
    char *out;
    size_t cap, len;
    bool full;
} sbuf_t;

/* Appends s[0, n) with invalid UTF-8 and control bytes as '?', stopping whole at cap. */
static void sb_put(sbuf_t *b, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n && !b->full;) {
        size_t l = utf8_valid_len(u + i, n - i);
        const char *src = s + i;
        if (l == 0 || (l == 1 && (u[i] < 0x20 || u[i] == 0x7F))) {
            src = "?";
            l = 1;
            i++;
        } else {
            i += l;
        }
        if (b->len + l + 1 > b->cap) {
            b->full = true;
            break;
        }
        memcpy(b->out + b->len, src, l);
        b->len += l;
    }
    b->out[b->len] = '\0';
}

static void sb_str(sbuf_t *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

bool pgp_profile_notice_text(const pgp_profile_t *p, char *out, size_t cap)
{
    if (cap > 0)
        out[0] = '\0';
    if (p->nfindings == 0)
        return false;
    if (cap == 0)
        return true;
    const pgp_nplus1_finding_t *f = &p->findings[0];
    sbuf_t b = {.out = out, .cap = cap};
    sb_str(&b, "pgproxy: ");
    sb_str(&b, f->type == PGP_NPLUS1_N_PLUS_ONE  ? "N+1 query detected"
               : f->type == PGP_NPLUS1_DUPLICATE ? "duplicate query detected"
                                                 : "batchable writes detected");
    sb_str(&b, " in request ");
    sb_str(&b, p->label);
    sb_str(&b, ": ");
    char num[24];
    size_t k = sizeof(num);
    uint32_t c = f->count;
    do {
        num[--k] = (char)('0' + c % 10);
        c /= 10;
    } while (c > 0);
    sb_put(&b, num + k, sizeof(num) - k);
    sb_str(&b, " executions of \"");
    size_t n = utf8_cut(f->normalized, f->normalized_len, 200);
    sb_put(&b, f->normalized, n);
    if (n < f->normalized_len)
        sb_str(&b, "\xE2\x80\xA6");
    sb_str(&b, "\"");
    return true;
}
