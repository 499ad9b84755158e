/*
 * store.c - the ProfileStore (contract in store.h): a ring of refs to the
 * last finished request profiles and a bounded aggregate of their N+1
 * findings, behind one mutex.
 *
 * It owns one ref per stored profile and copies of the texts of each
 * aggregated finding key (capped).  Evicted profiles are unref'd after the
 * lock is released, and readers render from their own refs or copies
 * outside the lock.  It does not build profiles or decide findings
 * (profile.c, nplus1.c), and reads no clock (last_seen is the profile's
 * start wall time).
 */
#include "pgproxy/store.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define AGG_BUCKETS 2048u   /* power of two, >= 2 * PGP_STORE_MAX_FINDING_KEYS */
#define NIL (-1)

typedef struct agg {
    bool used;
    bool has_source;
    pgp_nplus1_type_t type;
    uint32_t hash;
    uint64_t fp, source_fp;
    uint64_t occurrences, max_count, total_count, total_ns, saving_ns;
    uint64_t last_seen_wall_ns, last_profile_id, seq;
    int32_t hnext, lprev, lnext;     /* hash chain; LRU list (lprev toward the oldest) */
    uint32_t normalized_len, source_normalized_len;
    char label[PGP_PROFILE_LABEL_MAX + 1];
    char normalized[PGP_STORE_FINDING_TEXT_MAX];
    char source_normalized[PGP_STORE_FINDING_TEXT_MAX];
} agg_t;

struct pgp_profile_store {
    pthread_mutex_t mu;
    pgp_profile_t **ring;
    size_t cap, head, count;         /* head: the oldest */
    uint64_t requests_total, findings_total, evicted, queries_total;
    uint64_t requests_ever, findings_ever;   /* never reset: the /metrics counters */
    agg_t *agg;                      /* PGP_STORE_MAX_FINDING_KEYS slots */
    int32_t bucket[AGG_BUCKETS];
    int32_t lru_old, lru_new, free_next;
    uint32_t agg_used;
    uint64_t agg_seq;
};

static size_t clamp_history(size_t n)
{
    if (n == 0)
        return 1;
    return n > PGP_STORE_MAX_HISTORY_LIMIT ? PGP_STORE_MAX_HISTORY_LIMIT : n;
}

static void agg_reset(pgp_profile_store_t *s)
{
    for (size_t i = 0; i < AGG_BUCKETS; i++)
        s->bucket[i] = NIL;
    s->lru_old = s->lru_new = NIL;
    s->agg_used = 0;
}

pgp_profile_store_t *pgp_profile_store_create(size_t max_history)
{
    pgp_profile_store_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->cap = clamp_history(max_history);
    s->ring = calloc(s->cap, sizeof(*s->ring));
    s->agg = calloc(PGP_STORE_MAX_FINDING_KEYS, sizeof(*s->agg));
    if (s->ring == NULL || s->agg == NULL || pthread_mutex_init(&s->mu, NULL) != 0) {
        free(s->ring);
        free(s->agg);
        free(s);
        return NULL;
    }
    agg_reset(s);
    return s;
}

void pgp_profile_store_destroy(pgp_profile_store_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->count; i++)
        pgp_profile_unref(s->ring[(s->head + i) % s->cap]);
    pthread_mutex_destroy(&s->mu);
    free(s->ring);
    free(s->agg);
    free(s);
}

/* ---- findings aggregate (under the lock) ---------------------------------- */

static uint32_t agg_hash(const char *label, pgp_nplus1_type_t type, uint64_t fp, uint64_t sfp)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (const unsigned char *p = (const unsigned char *)label; *p != '\0'; p++)
        h = (h ^ *p) * UINT64_C(0x100000001b3);
    h ^= fp * UINT64_C(0x9e3779b97f4a7c15);
    h ^= (sfp + (uint64_t)type) * UINT64_C(0xc2b2ae3d27d4eb4f);
    h ^= h >> 29;
    return (uint32_t)h;
}

static void lru_unlink(pgp_profile_store_t *s, int32_t i)
{
    agg_t *a = &s->agg[i];
    if (a->lprev != NIL)
        s->agg[a->lprev].lnext = a->lnext;
    else
        s->lru_old = a->lnext;
    if (a->lnext != NIL)
        s->agg[a->lnext].lprev = a->lprev;
    else
        s->lru_new = a->lprev;
}

static void lru_push_new(pgp_profile_store_t *s, int32_t i)
{
    agg_t *a = &s->agg[i];
    a->lnext = NIL;
    a->lprev = s->lru_new;
    if (s->lru_new != NIL)
        s->agg[s->lru_new].lnext = i;
    else
        s->lru_old = i;
    s->lru_new = i;
}

static void hash_unlink(pgp_profile_store_t *s, int32_t i)
{
    int32_t *pp = &s->bucket[s->agg[i].hash & (AGG_BUCKETS - 1)];
    while (*pp != NIL && *pp != i)
        pp = &s->agg[*pp].hnext;
    if (*pp == i)
        *pp = s->agg[i].hnext;
}

static void copy_text(char *dst, uint32_t *dst_len, const char *src, size_t n)
{
    if (n > PGP_STORE_FINDING_TEXT_MAX)
        n = PGP_STORE_FINDING_TEXT_MAX;
    /* Cut on a UTF-8 boundary. */
    if (n == PGP_STORE_FINDING_TEXT_MAX)
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    if (n > 0)
        memcpy(dst, src, n);
    *dst_len = (uint32_t)n;
}

static void agg_add(pgp_profile_store_t *s, const pgp_profile_t *p, const pgp_nplus1_finding_t *f)
{
    const char *label = pgp_profile_label(p);
    uint64_t sfp = f->has_source ? f->source_fingerprint : 0;
    uint32_t h = agg_hash(label, f->type, f->fingerprint, sfp);
    int32_t i;
    for (i = s->bucket[h & (AGG_BUCKETS - 1)]; i != NIL; i = s->agg[i].hnext) {
        const agg_t *a = &s->agg[i];
        if (a->hash == h && a->fp == f->fingerprint && a->type == f->type &&
            a->has_source == f->has_source && a->source_fp == sfp && strcmp(a->label, label) == 0)
            break;
    }
    if (i == NIL) {
        if (s->agg_used < PGP_STORE_MAX_FINDING_KEYS) {
            i = (int32_t)s->agg_used++;
        } else {
            i = s->lru_old;
            lru_unlink(s, i);
            hash_unlink(s, i);
        }
        agg_t *a = &s->agg[i];
        memset(a, 0, offsetof(agg_t, label));
        a->used = true;
        a->hash = h;
        a->fp = f->fingerprint;
        a->type = f->type;
        a->has_source = f->has_source;
        a->source_fp = sfp;
        size_t ll = strlen(label);   /* NUL-terminated within PGP_PROFILE_LABEL_MAX */
        memcpy(a->label, label, ll + 1);
        copy_text(a->normalized, &a->normalized_len, f->normalized, f->normalized_len);
        copy_text(a->source_normalized, &a->source_normalized_len, f->source_normalized,
                  f->has_source ? f->source_normalized_len : 0);
        a->hnext = s->bucket[h & (AGG_BUCKETS - 1)];
        s->bucket[h & (AGG_BUCKETS - 1)] = i;
    } else {
        lru_unlink(s, i);
    }
    lru_push_new(s, i);
    agg_t *a = &s->agg[i];
    a->occurrences++;
    if (f->count > a->max_count)
        a->max_count = f->count;
    a->total_count += f->count;
    a->total_ns += f->total_ns;
    a->saving_ns += f->estimated_saving_ns;
    a->last_seen_wall_ns = pgp_profile_start_wall_ns(p);
    a->last_profile_id = pgp_profile_id(p);
    a->seq = ++s->agg_seq;
}

/* ---- ring -------------------------------------------------------------------- */

void pgp_profile_store_push(pgp_profile_store_t *s, pgp_profile_t *p)
{
    pgp_profile_t *victim = NULL;
    size_t nf;
    const pgp_nplus1_finding_t *f = pgp_profile_findings(p, &nf);
    pgp_profile_ref(p);
    pthread_mutex_lock(&s->mu);
    if (s->count == s->cap) {
        victim = s->ring[s->head];
        s->ring[s->head] = p;
        s->head = (s->head + 1) % s->cap;
        s->evicted++;
    } else {
        s->ring[(s->head + s->count) % s->cap] = p;
        s->count++;
    }
    s->requests_total++;
    s->findings_total += nf;
    s->queries_total += pgp_profile_sql_count(p);
    s->requests_ever++;
    s->findings_ever += nf;
    for (size_t i = 0; i < nf; i++)
        agg_add(s, p, &f[i]);
    pthread_mutex_unlock(&s->mu);
    pgp_profile_unref(victim);
}

void pgp_profile_store_set_max_history(pgp_profile_store_t *s, size_t n)
{
    n = clamp_history(n);
    pgp_profile_t **ring = calloc(n, sizeof(*ring));
    if (ring == NULL)
        return;
    pgp_profile_t **drop = NULL;
    size_t ndrop = 0;
    pthread_mutex_lock(&s->mu);
    if (s->count > n) {
        ndrop = s->count - n;
        drop = malloc(ndrop * sizeof(*drop));
        if (drop == NULL) {
            pthread_mutex_unlock(&s->mu);
            free(ring);
            return;
        }
        for (size_t i = 0; i < ndrop; i++)
            drop[i] = s->ring[(s->head + i) % s->cap];
        s->evicted += ndrop;
    }
    size_t keep = s->count - ndrop;
    for (size_t i = 0; i < keep; i++)
        ring[i] = s->ring[(s->head + ndrop + i) % s->cap];
    pgp_profile_t **old = s->ring;
    s->ring = ring;
    s->cap = n;
    s->head = 0;
    s->count = keep;
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < ndrop; i++)
        pgp_profile_unref(drop[i]);
    free(drop);
    free(old);
}

void pgp_profile_store_clear(pgp_profile_store_t *s)
{
    pthread_mutex_lock(&s->mu);
    pgp_profile_t **old = s->ring;
    size_t cap = s->cap, head = s->head, count = s->count;
    pgp_profile_t **ring = calloc(cap, sizeof(*ring));
    if (ring == NULL) {
        /* Unref under the lock rather than fail the clear. */
        for (size_t i = 0; i < count; i++)
            pgp_profile_unref(old[(head + i) % cap]);
        old = NULL;
        ring = s->ring;
    } else {
        s->ring = ring;
    }
    s->head = s->count = 0;
    s->requests_total = s->findings_total = s->evicted = s->queries_total = 0;
    agg_reset(s);
    pthread_mutex_unlock(&s->mu);
    if (old != NULL) {
        for (size_t i = 0; i < count; i++)
            pgp_profile_unref(old[(head + i) % cap]);
        free(old);
    }
}

pgp_profile_t *pgp_profile_store_get(pgp_profile_store_t *s, uint64_t id)
{
    pgp_profile_t *found = NULL;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->count; i++) {
        pgp_profile_t *p = s->ring[(s->head + i) % s->cap];
        if (pgp_profile_id(p) == id) {
            pgp_profile_ref(p);
            found = p;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return found;
}

void pgp_profile_store_stats(pgp_profile_store_t *s, pgp_profile_store_stats_t *out)
{
    pthread_mutex_lock(&s->mu);
    out->requests_total = s->requests_total;
    out->findings_total = s->findings_total;
    out->profiled_queries_total = s->queries_total;
    out->patterns = s->agg_used;
    out->requests_ever = s->requests_ever;
    out->findings_ever = s->findings_ever;
    out->held = s->count;
    out->evicted = s->evicted;
    pthread_mutex_unlock(&s->mu);
}

/*
 * Refs to the stored profiles, newest first, at most max (0 = all), only
 * those of session_id when by_session.  Returns an owned array (free with
 * release) or NULL when out of memory (*n = 0, also NULL for none).
 */
static pgp_profile_t **snapshot(pgp_profile_store_t *s, size_t max, bool by_session,
                                uint64_t session_id, size_t *n, bool *oom)
{
    *n = 0;
    *oom = false;
    pthread_mutex_lock(&s->mu);
    size_t want = max == 0 || max > s->count ? s->count : max;
    pgp_profile_t **v = want == 0 ? NULL : malloc(want * sizeof(*v));
    if (want > 0 && v == NULL)
        *oom = true;
    for (size_t i = s->count; v != NULL && i-- > 0 && *n < want;) {
        pgp_profile_t *p = s->ring[(s->head + i) % s->cap];
        if (by_session && pgp_profile_session_id(p) != session_id)
            continue;
        pgp_profile_ref(p);
        v[(*n)++] = p;
    }
    pthread_mutex_unlock(&s->mu);
    return v;
}

static void release(pgp_profile_t **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pgp_profile_unref(v[i]);
    free(v);
}

static int cmp_slowest(const void *a, const void *b)
{
    const pgp_profile_t *x = *(pgp_profile_t *const *)a, *y = *(pgp_profile_t *const *)b;
    uint64_t tx = pgp_profile_total_ns(x), ty = pgp_profile_total_ns(y);
    if (tx != ty)
        return tx > ty ? -1 : 1;
    /* Equal times: newest (larger id) first, so the order is total. */
    uint64_t ix = pgp_profile_id(x), iy = pgp_profile_id(y);
    return ix > iy ? -1 : ix < iy;
}

int pgp_profile_store_render_list(pgp_profile_store_t *s, const char *order, size_t limit,
                                  pgp_render_t *r)
{
    bool slowest = order != NULL && strcmp(order, "slowest") == 0;
    if (limit == 0)
        limit = 1;
    size_t n;
    bool oom;
    pgp_profile_t **v = snapshot(s, slowest ? 0 : limit, false, 0, &n, &oom);
    if (oom)
        return PGP_RENDER_ENOMEM;
    if (slowest && n > 1)
        qsort(v, n, sizeof(*v), cmp_slowest);
    pgp_render_json_begin_array(r);
    for (size_t i = 0; i < n && i < limit; i++) {
        int rc = pgp_profile_render_json(v[i], r);
        (void)rc;   /* sticky: checked once below */
    }
    pgp_render_json_end_array(r);
    release(v, n);
    return pgp_render_error(r);
}

typedef struct stack {
    char *frames;
    size_t len;
    uint64_t ns;
} stack_t_;

typedef struct stacks {
    stack_t_ *v;
    size_t n, alloc;
} stacks_t;

static int collect_stack(void *ud, const char *frames, size_t len, uint64_t ns)
{
    stacks_t *st = ud;
    if (st->n == st->alloc) {
        size_t na = st->alloc == 0 ? 64 : st->alloc * 2;
        stack_t_ *nv = realloc(st->v, na * sizeof(*nv));
        if (nv == NULL)
            return PGP_RENDER_ENOMEM;
        st->v = nv;
        st->alloc = na;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return PGP_RENDER_ENOMEM;
    memcpy(copy, frames, len);
    copy[len] = '\0';
    st->v[st->n++] = (stack_t_){.frames = copy, .len = len, .ns = ns};
    return 0;
}

static int cmp_stack(const void *a, const void *b)
{
    const stack_t_ *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->frames, y->frames, n);
    if (c != 0)
        return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

int pgp_profile_store_render_collapsed(pgp_profile_store_t *s, pgp_render_t *r)
{
    size_t n;
    bool oom;
    pgp_profile_t **v = snapshot(s, 0, false, 0, &n, &oom);
    if (oom)
        return PGP_RENDER_ENOMEM;
    stacks_t st = {0};
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = pgp_profile_foreach_stack(v[i], collect_stack, &st);
    release(v, n);
    if (rc == 0) {
        if (st.n > 1)
            qsort(st.v, st.n, sizeof(*st.v), cmp_stack);
        for (size_t i = 0; i < st.n;) {
            size_t j = i;
            uint64_t ns = 0;
            while (j < st.n && cmp_stack(&st.v[i], &st.v[j]) == 0)
                ns += st.v[j++].ns;
            pgp_render_append(r, st.v[i].frames, st.v[i].len);
            pgp_render_char(r, ' ');
            pgp_render_uint(r, ns);
            pgp_render_char(r, '\n');
            i = j;
        }
        rc = pgp_render_error(r);
    }
    for (size_t i = 0; i < st.n; i++)
        free(st.v[i].frames);
    free(st.v);
    return rc;
}

typedef struct agg_rank {
    uint64_t occurrences, seq;
    int32_t idx;
} agg_rank_t;

static int cmp_rank(const void *a, const void *b)
{
    const agg_rank_t *x = a, *y = b;
    if (x->occurrences != y->occurrences)
        return x->occurrences > y->occurrences ? -1 : 1;
    return x->seq > y->seq ? -1 : x->seq < y->seq;
}

static void json_fp(pgp_render_t *r, uint64_t fp)
{
    char hex[17];
    pgp_fingerprint_format(fp, hex);
    pgp_render_json_string(r, hex, 16);
}

int pgp_profile_store_render_findings(pgp_profile_store_t *s, size_t limit, pgp_render_t *r)
{
    agg_rank_t *rank = malloc(PGP_STORE_MAX_FINDING_KEYS * sizeof(*rank));
    agg_t *copy = NULL;
    size_t n = 0;
    if (rank == NULL)
        return PGP_RENDER_ENOMEM;
    pthread_mutex_lock(&s->mu);
    for (int32_t i = s->lru_old; i != NIL; i = s->agg[i].lnext)
        rank[n++] = (agg_rank_t){.occurrences = s->agg[i].occurrences, .seq = s->agg[i].seq,
                                 .idx = i};
    if (n > 1)
        qsort(rank, n, sizeof(*rank), cmp_rank);
    if (limit > 0 && n > limit)
        n = limit;
    if (n > 0)
        copy = malloc(n * sizeof(*copy));
    for (size_t i = 0; copy != NULL && i < n; i++)
        copy[i] = s->agg[rank[i].idx];
    pthread_mutex_unlock(&s->mu);
    free(rank);
    if (n > 0 && copy == NULL)
        return PGP_RENDER_ENOMEM;

    pgp_render_json_begin_array(r);
    for (size_t i = 0; i < n; i++) {
        const agg_t *a = &copy[i];
        pgp_render_json_begin_object(r);
        pgp_render_json_key(r, "label");
        pgp_render_json_cstr(r, a->label);
        pgp_render_json_key(r, "type");
        pgp_render_json_cstr(r, pgp_nplus1_type_name(a->type));
        pgp_render_json_key(r, "fingerprint");
        json_fp(r, a->fp);
        pgp_render_json_key(r, "normalized");
        pgp_render_json_string(r, a->normalized, a->normalized_len);
        pgp_render_json_key(r, "source_fingerprint");
        if (a->has_source)
            json_fp(r, a->source_fp);
        else
            pgp_render_json_null(r);
        pgp_render_json_key(r, "source_normalized");
        if (a->has_source)
            pgp_render_json_string(r, a->source_normalized, a->source_normalized_len);
        else
            pgp_render_json_null(r);
        pgp_render_json_key(r, "occurrences");
        pgp_render_json_uint(r, a->occurrences);
        pgp_render_json_key(r, "max_count");
        pgp_render_json_uint(r, a->max_count);
        pgp_render_json_key(r, "total_count");
        pgp_render_json_uint(r, a->total_count);
        pgp_render_json_key(r, "total_ns");
        pgp_render_json_uint(r, a->total_ns);
        pgp_render_json_key(r, "estimated_saving_ns");
        pgp_render_json_uint(r, a->saving_ns);
        pgp_render_json_key(r, "last_seen");
        pgp_render_json_time(r, a->last_seen_wall_ns);
        pgp_render_json_key(r, "last_profile_id");
        pgp_render_json_uint(r, a->last_profile_id);
        pgp_render_json_end_object(r);
    }
    pgp_render_json_end_array(r);
    free(copy);
    return pgp_render_error(r);
}

int pgp_profile_store_render_session_findings(pgp_profile_store_t *s, uint64_t session_id,
                                              pgp_render_t *r)
{
    size_t n;
    bool oom;
    pgp_profile_t **v = snapshot(s, 0, true, session_id, &n, &oom);
    if (oom)
        return PGP_RENDER_ENOMEM;
    pgp_render_json_begin_array(r);
    for (size_t i = 0; i < n; i++) {
        size_t nf;
        const pgp_nplus1_finding_t *f = pgp_profile_findings(v[i], &nf);
        for (size_t j = 0; j < nf; j++) {
            pgp_render_json_begin_object(r);
            pgp_render_json_key(r, "profile_id");
            pgp_render_json_uint(r, pgp_profile_id(v[i]));
            pgp_render_json_key(r, "request_id");
            pgp_render_json_cstr(r, pgp_profile_request_id(v[i]));
            pgp_render_json_key(r, "label");
            pgp_render_json_cstr(r, pgp_profile_label(v[i]));
            pgp_render_json_key(r, "start");
            pgp_render_json_time(r, pgp_profile_start_wall_ns(v[i]));
            pgp_profile_render_finding_fields(&f[j], r);
            pgp_render_json_end_object(r);
        }
    }
    pgp_render_json_end_array(r);
    release(v, n);
    return pgp_render_error(r);
}

int pgp_profile_store_render_findings_normalized(pgp_profile_store_t *s, size_t limit,
                                                 pgp_render_t *r)
{
    /* Newest key first: walk the recency list from its new end, copying the texts. */
    size_t cap = limit == 0 || limit > PGP_STORE_MAX_FINDING_KEYS ? PGP_STORE_MAX_FINDING_KEYS
                                                                  : limit;
    typedef struct { char text[PGP_STORE_FINDING_TEXT_MAX]; uint32_t len; } text_t;
    text_t *v = malloc(cap * sizeof(*v));
    size_t n = 0;
    if (v == NULL)
        return PGP_RENDER_ENOMEM;
    pthread_mutex_lock(&s->mu);
    for (int32_t i = s->lru_new; i != NIL && n < cap; i = s->agg[i].lprev) {
        v[n].len = s->agg[i].normalized_len;
        memcpy(v[n].text, s->agg[i].normalized, v[n].len);
        n++;
    }
    pthread_mutex_unlock(&s->mu);
    pgp_render_json_begin_array(r);
    for (size_t i = 0; i < n; i++)
        pgp_render_json_string(r, v[i].text, v[i].len);
    pgp_render_json_end_array(r);
    free(v);
    return pgp_render_error(r);
}

int pgp_profile_store_render_summaries(pgp_profile_store_t *s, size_t limit, pgp_render_t *r)
{
    size_t n;
    bool oom;
    pgp_profile_t **v = snapshot(s, limit == 0 ? 1 : limit, false, 0, &n, &oom);
    if (oom)
        return PGP_RENDER_ENOMEM;
    pgp_render_json_begin_array(r);
    for (size_t i = 0; i < n; i++) {
        const pgp_profile_t *p = v[i];
        const char *rid = pgp_profile_request_id(p);
        pgp_render_json_begin_object(r);
        pgp_render_json_key(r, "id");
        pgp_render_json_uint(r, pgp_profile_id(p));
        pgp_render_json_key(r, "session_id");
        pgp_render_json_uint(r, pgp_profile_session_id(p));
        pgp_render_json_key(r, "label");
        pgp_render_json_cstr(r, pgp_profile_label(p));
        pgp_render_json_key(r, "request_id");
        if (rid != NULL)
            pgp_render_json_cstr(r, rid);
        else
            pgp_render_json_null(r);
        pgp_render_json_key(r, "total_ms");
        pgp_render_json_double(r, (double)pgp_profile_total_ns(p) / 1e6, 3);
        pgp_render_json_key(r, "sql_ms");
        pgp_render_json_double(r, (double)pgp_profile_sql_total_ns(p) / 1e6, 3);
        pgp_render_json_key(r, "sql_count");
        pgp_render_json_uint(r, pgp_profile_sql_count(p));
        pgp_render_json_key(r, "n_plus_one");
        pgp_render_json_uint(r, pgp_profile_finding_count(p));
        pgp_render_json_key(r, "start");
        pgp_render_json_time(r, pgp_profile_start_wall_ns(p));
        pgp_render_json_end_object(r);
    }
    pgp_render_json_end_array(r);
    release(v, n);
    return pgp_render_error(r);
}
