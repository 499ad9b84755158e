/*
 * digest.c - the bounded per-(database, user, fingerprint) digest table.
 *
 * Owns a preallocated array of slots (entries), a chained hash index over
 * it (uint32 slot indices, no per-entry allocation), an intrusive LRU list
 * through the slots, and one SQL buffer per slot that is reused when the
 * slot is recycled.  It does not render anything and does not know where
 * events come from; the caller gives the wall clock.  Recording never
 * allocates except the first time a slot needs a (larger) SQL buffer.
 */
#include "pgproxy/digest.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgproxy/histogram.h"

#define NIL UINT32_MAX
#define NAME_MAX_LEN (PGP_DIGEST_NAME_BYTES - 1u)

typedef struct digest_slot {
    uint64_t hash;
    uint64_t fingerprint;
    uint32_t chain_next;        /* next slot in the same hash bucket */
    uint32_t lru_newer;         /* towards the most recently recorded */
    uint32_t lru_older;         /* towards the least recently recorded */
    uint8_t db_len;
    uint8_t user_len;
    bool sql_truncated;
    char database[PGP_DIGEST_NAME_BYTES];
    char user[PGP_DIGEST_NAME_BYTES];
    uint64_t calls;
    uint64_t errors;
    uint64_t rows;
    uint64_t total_ns;
    double mean_ns;             /* Welford: running mean */
    double m2;                  /* Welford: sum of squared deviations */
    uint64_t first_seen_ns;
    uint64_t last_seen_ns;
    char *sql;                  /* NUL-terminated, sql_len bytes; NULL before first use */
    uint32_t sql_len;
    uint32_t sql_cap;           /* allocated bytes (incl. NUL); kept across reuse */
    pgp_histogram_t hist;       /* min/max of the durations live here */
} digest_slot_t;

struct pgp_digest_table {
    pthread_mutex_t mu;
    uint32_t max_entries;
    uint32_t max_sql_bytes;
    uint32_t used;              /* slots [0, used) hold entries */
    uint32_t mask;              /* bucket count - 1 */
    uint32_t lru_newest;
    uint32_t lru_oldest;
    uint32_t *buckets;
    digest_slot_t *slots;
    uint64_t evictions;
    uint64_t calls;
    uint64_t errors;
    uint64_t sql_truncated;
};

/* The key of an event, hashed before taking the lock. */
typedef struct digest_key {
    const char *db;
    const char *user;
    size_t db_len;
    size_t user_len;
    uint64_t fingerprint;
    uint64_t hash;
} digest_key_t;

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x *= UINT64_C(0xc4ceb9fe1a85ec53);
    x ^= x >> 33;
    return x;
}

/* Word-at-a-time hash of a short name: one multiply per 8 bytes, the length
 * mixed in so that ("ab", "c") and ("a", "bc") differ.  Finalised once, in
 * key_make; chains compare whole keys, so quality only affects chain length. */
static uint64_t hash_name(const char *s, size_t n, uint64_t h)
{
    const uint64_t k = UINT64_C(0x9e3779b97f4a7c15);
    h = (h ^ n) * k;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * k;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    if (n > 0) {
        uint64_t w = 0;
        memcpy(&w, s, n);
        h = (h ^ w) * k;
        h ^= h >> 29;
    }
    return h;
}

static void key_make(const pgp_digest_event_t *ev, digest_key_t *k)
{
    k->db = ev->database ? ev->database : "";
    k->user = ev->user ? ev->user : "";
    /* Bounded: names past 63 bytes are cut, as the server cuts them. */
    k->db_len = strnlen(k->db, NAME_MAX_LEN);
    k->user_len = strnlen(k->user, NAME_MAX_LEN);
    k->fingerprint = ev->fingerprint;
    uint64_t h = hash_name(k->db, k->db_len, ev->fingerprint);
    k->hash = mix64(hash_name(k->user, k->user_len, h));
}

static bool slot_matches(const digest_slot_t *s, const digest_key_t *k)
{
    return s->hash == k->hash && s->fingerprint == k->fingerprint &&
           s->db_len == k->db_len && s->user_len == k->user_len &&
           memcmp(s->database, k->db, k->db_len) == 0 &&
           memcmp(s->user, k->user, k->user_len) == 0;
}

size_t pgp_digest_slot_bytes(void)
{
    return sizeof(digest_slot_t);
}

static size_t bucket_count(size_t max_entries)
{
    size_t n = 1;
    while (n < 2 * max_entries)
        n <<= 1;
    return n;
}

size_t pgp_digest_max_bytes(size_t max_entries, size_t max_sql_bytes)
{
    return sizeof(struct pgp_digest_table) + max_entries * sizeof(digest_slot_t) +
           bucket_count(max_entries) * sizeof(uint32_t) + max_entries * (max_sql_bytes + 1);
}

pgp_digest_table_t *pgp_digest_create(size_t max_entries, size_t max_sql_bytes)
{
    if (max_entries == 0 || max_entries > PGP_DIGEST_MAX_ENTRIES_LIMIT ||
        max_sql_bytes >= UINT32_MAX)
        return NULL;
    pgp_digest_table_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    size_t nb = bucket_count(max_entries);
    /* calloc of a large block maps zero pages lazily: untouched slots cost nothing. */
    t->slots = calloc(max_entries, sizeof(digest_slot_t));
    t->buckets = malloc(nb * sizeof(uint32_t));
    if (t->slots == NULL || t->buckets == NULL || pthread_mutex_init(&t->mu, NULL) != 0) {
        free(t->slots);
        free(t->buckets);
        free(t);
        return NULL;
    }
    memset(t->buckets, 0xff, nb * sizeof(uint32_t));   /* every bucket NIL */
    t->max_entries = (uint32_t)max_entries;
    t->max_sql_bytes = (uint32_t)max_sql_bytes;
    t->mask = (uint32_t)(nb - 1);
    t->lru_newest = t->lru_oldest = NIL;
    return t;
}

void pgp_digest_destroy(pgp_digest_table_t *t)
{
    if (t == NULL)
        return;
    for (uint32_t i = 0; i < t->max_entries; i++)
        free(t->slots[i].sql);
    pthread_mutex_destroy(&t->mu);
    free(t->slots);
    free(t->buckets);
    free(t);
}

/* ---- LRU list and hash chains (caller holds the lock) ---------------- */

static void lru_unlink(pgp_digest_table_t *t, uint32_t i)
{
    digest_slot_t *s = &t->slots[i];
    if (s->lru_newer != NIL)
        t->slots[s->lru_newer].lru_older = s->lru_older;
    else
        t->lru_newest = s->lru_older;
    if (s->lru_older != NIL)
        t->slots[s->lru_older].lru_newer = s->lru_newer;
    else
        t->lru_oldest = s->lru_newer;
}

static void lru_push_newest(pgp_digest_table_t *t, uint32_t i)
{
    digest_slot_t *s = &t->slots[i];
    s->lru_newer = NIL;
    s->lru_older = t->lru_newest;
    if (t->lru_newest != NIL)
        t->slots[t->lru_newest].lru_newer = i;
    else
        t->lru_oldest = i;
    t->lru_newest = i;
}

static void chain_remove(pgp_digest_table_t *t, uint32_t i)
{
    uint32_t *link = &t->buckets[t->slots[i].hash & t->mask];
    while (*link != i)
        link = &t->slots[*link].chain_next;
    *link = t->slots[i].chain_next;
}

static uint32_t lookup(const pgp_digest_table_t *t, const digest_key_t *k)
{
    uint32_t i = t->buckets[k->hash & t->mask];
    while (i != NIL && !slot_matches(&t->slots[i], k))
        i = t->slots[i].chain_next;
    return i;
}

/* Keep at most max bytes of text, cut back to a UTF-8 character boundary
 * (at most 3 bytes) so that the kept prefix does not end mid-character. */
static size_t text_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t cut = max;
    while (cut > 0 && max - cut < 3 && ((unsigned char)s[cut] & 0xC0u) == 0x80u)
        cut--;
    return cut;
}

static void slot_set_text(pgp_digest_table_t *t, digest_slot_t *s, const char *sql,
                          size_t len)
{
    if (sql == NULL)
        len = 0;
    size_t keep = text_cut(sql, len, t->max_sql_bytes);
    s->sql_truncated = keep < len;
    s->sql_len = 0;
    if (s->sql_cap < keep + 1) {
        char *p = realloc(s->sql, keep + 1);
        if (p == NULL) {
            /* Keep the entry, drop its text: the observation is not lost. */
            s->sql_truncated = len > 0;
            if (s->sql != NULL)
                s->sql[0] = '\0';
            goto out;
        }
        s->sql = p;
        s->sql_cap = (uint32_t)(keep + 1);
    }
    if (keep > 0)
        memcpy(s->sql, sql, keep);
    s->sql[keep] = '\0';
    s->sql_len = (uint32_t)keep;
out:
    if (s->sql_truncated)
        t->sql_truncated++;
}

/* A slot for a new key: the next unused one, or the least recently recorded. */
static uint32_t slot_claim(pgp_digest_table_t *t, const digest_key_t *k,
                           const pgp_digest_event_t *ev)
{
    uint32_t i;
    if (t->used < t->max_entries) {
        i = t->used++;
    } else {
        i = t->lru_oldest;
        lru_unlink(t, i);
        chain_remove(t, i);
        t->evictions++;
    }
    digest_slot_t *s = &t->slots[i];
    s->hash = k->hash;
    s->fingerprint = k->fingerprint;
    s->db_len = (uint8_t)k->db_len;
    s->user_len = (uint8_t)k->user_len;
    memcpy(s->database, k->db, k->db_len);
    s->database[k->db_len] = '\0';
    memcpy(s->user, k->user, k->user_len);
    s->user[k->user_len] = '\0';
    s->calls = s->errors = s->rows = s->total_ns = 0;
    s->mean_ns = s->m2 = 0.0;
    s->first_seen_ns = ev->now_wall_ns;
    pgp_histogram_init(&s->hist);
    slot_set_text(t, s, ev->normalized, ev->normalized_len);

    uint32_t *head = &t->buckets[k->hash & t->mask];
    s->chain_next = *head;
    *head = i;
    lru_push_newest(t, i);
    return i;
}

void pgp_digest_record(pgp_digest_table_t *t, const pgp_digest_event_t *ev)
{
    digest_key_t k;
    key_make(ev, &k);
    double x = (double)ev->duration_ns;

    pthread_mutex_lock(&t->mu);
    uint32_t i = lookup(t, &k);
    if (i == NIL) {
        i = slot_claim(t, &k, ev);
    } else if (t->lru_newest != i) {
        lru_unlink(t, i);
        lru_push_newest(t, i);
    }
    digest_slot_t *s = &t->slots[i];
    s->calls++;
    s->rows += ev->rows;
    s->total_ns += ev->duration_ns;
    s->last_seen_ns = ev->now_wall_ns;
    /* Welford: numerically stable where sum/sum-of-squares would cancel. */
    double delta = x - s->mean_ns;
    s->mean_ns += delta / (double)s->calls;
    s->m2 += delta * (x - s->mean_ns);
    pgp_histogram_record(&s->hist, ev->duration_ns);
    t->calls++;
    if (ev->error) {
        s->errors++;
        t->errors++;
    }
    pthread_mutex_unlock(&t->mu);
}

void pgp_digest_reset(pgp_digest_table_t *t)
{
    pthread_mutex_lock(&t->mu);
    /* SQL buffers stay with their slots for reuse; the bound is unchanged. */
    memset(t->buckets, 0xff, ((size_t)t->mask + 1) * sizeof(uint32_t));
    t->used = 0;
    t->lru_newest = t->lru_oldest = NIL;
    t->evictions = t->calls = t->errors = t->sql_truncated = 0;
    pthread_mutex_unlock(&t->mu);
}

static void totals_locked(const pgp_digest_table_t *t, pgp_digest_totals_t *out)
{
    out->entries = t->used;
    out->max_entries = t->max_entries;
    out->evictions = t->evictions;
    out->calls = t->calls;
    out->errors = t->errors;
    out->sql_truncated = t->sql_truncated;
}

void pgp_digest_totals(pgp_digest_table_t *t, pgp_digest_totals_t *out)
{
    pthread_mutex_lock(&t->mu);
    totals_locked(t, out);
    pthread_mutex_unlock(&t->mu);
}

int pgp_digest_order_parse(const char *s, size_t len, pgp_digest_order_t *out)
{
    static const struct {
        const char *name;
        size_t len;
        pgp_digest_order_t order;
    } names[] = {
        {"total", 5, PGP_DIGEST_ORDER_TOTAL},
        {"mean", 4, PGP_DIGEST_ORDER_MEAN},
        {"calls", 5, PGP_DIGEST_ORDER_CALLS},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (len == names[i].len && memcmp(s, names[i].name, len) == 0) {
            *out = names[i].order;
            return 0;
        }
    }
    return -EINVAL;
}

/* ---- snapshot ------------------------------------------------------- */

/* Sort key: primary value (bigger first), then fingerprint, database, user
 * ascending, which is a total order because keys are unique.  A mean is a
 * non-negative double, whose bit pattern orders like the value. */
typedef struct sort_key {
    uint64_t value;
    uint64_t fingerprint;
    const char *database;
    const char *user;
    uint32_t slot;
} sort_key_t;

static int key_cmp(const sort_key_t *a, const sort_key_t *b)
{
    if (a->value != b->value)
        return a->value > b->value ? -1 : 1;
    if (a->fingerprint != b->fingerprint)
        return a->fingerprint < b->fingerprint ? -1 : 1;
    int c = strcmp(a->database, b->database);
    return c != 0 ? c : strcmp(a->user, b->user);
}

static uint64_t order_value(const digest_slot_t *s, pgp_digest_order_t order)
{
    uint64_t bits;
    switch (order) {
    case PGP_DIGEST_ORDER_MEAN:
        memcpy(&bits, &s->mean_ns, sizeof(bits));
        return bits;
    case PGP_DIGEST_ORDER_CALLS:
        return s->calls;
    case PGP_DIGEST_ORDER_TOTAL:
    default:
        return s->total_ns;
    }
}

static void key_swap(sort_key_t *a, sort_key_t *b)
{
    sort_key_t tmp = *a;
    *a = *b;
    *b = tmp;
}

/* Quickselect: afterwards keys[0..k) are the k first in key order (unsorted).
 * O(n) expected; the pivot is pseudo-random so no input order is quadratic. */
static void select_first(sort_key_t *keys, size_t n, size_t k)
{
    size_t lo = 0, hi = n;
    uint64_t rng = UINT64_C(0x9e3779b97f4a7c15);
    while (hi - lo > 1) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        key_swap(&keys[lo + rng % (hi - lo)], &keys[hi - 1]);
        size_t store = lo;
        for (size_t i = lo; i < hi - 1; i++)
            if (key_cmp(&keys[i], &keys[hi - 1]) < 0)
                key_swap(&keys[i], &keys[store++]);
        key_swap(&keys[store], &keys[hi - 1]);
        if (store == k)
            return;
        if (store < k)
            lo = store + 1;
        else
            hi = store;
    }
}

static const double snapshot_qs[3] = {0.50, 0.95, 0.99};

static void entry_copy(pgp_digest_entry_t *e, const digest_slot_t *s)
{
    memcpy(e->database, s->database, sizeof(e->database));
    memcpy(e->user, s->user, sizeof(e->user));
    e->fingerprint = s->fingerprint;
    e->normalized_len = s->sql_len;
    e->normalized_truncated = s->sql_truncated;
    e->calls = s->calls;
    e->errors = s->errors;
    e->rows = s->rows;
    e->total_ns = s->total_ns;
    e->min_ns = s->hist.min_ns;
    e->max_ns = s->hist.max_ns;
    e->mean_ns = s->mean_ns;
    e->stddev_ns = s->calls > 0 ? s->m2 / (double)s->calls : 0.0;   /* variance for now */
    e->first_seen_ns = s->first_seen_ns;
    e->last_seen_ns = s->last_seen_ns;
    uint64_t p[3];
    pgp_histogram_percentiles(&s->hist, snapshot_qs, p, 3);
    e->p50_ns = p[0];
    e->p95_ns = p[1];
    e->p99_ns = p[2];
}

/* qsort_r comparator (glibc/musl; _GNU_SOURCE): arg is the order. */
static int entry_qsort_cmp(const void *pa, const void *pb, void *arg)
{
    const pgp_digest_entry_t *a = pa, *b = pb;
    pgp_digest_order_t sort_order = *(const pgp_digest_order_t *)arg;
    sort_key_t ka = {0, a->fingerprint, a->database, a->user, 0};
    sort_key_t kb = {0, b->fingerprint, b->database, b->user, 0};
    switch (sort_order) {
    case PGP_DIGEST_ORDER_MEAN:
        memcpy(&ka.value, &a->mean_ns, sizeof(ka.value));
        memcpy(&kb.value, &b->mean_ns, sizeof(kb.value));
        break;
    case PGP_DIGEST_ORDER_CALLS:
        ka.value = a->calls;
        kb.value = b->calls;
        break;
    case PGP_DIGEST_ORDER_TOTAL:
    default:
        ka.value = a->total_ns;
        kb.value = b->total_ns;
        break;
    }
    return key_cmp(&ka, &kb);
}

int pgp_digest_snapshot(pgp_digest_table_t *t, pgp_digest_order_t order, size_t limit,
                        pgp_digest_snapshot_t *out)
{
    memset(out, 0, sizeof(*out));
    size_t cap = (limit == 0 || limit > t->max_entries) ? t->max_entries : limit;
    /* Allocate what can be allocated before taking the lock. */
    sort_key_t *keys = malloc((size_t)t->max_entries * sizeof(*keys));
    pgp_digest_entry_t *entries = malloc(cap * sizeof(*entries));
    char *text = NULL;
    int rc = -ENOMEM;
    if (keys == NULL || entries == NULL)
        goto out;
    /* Fault the pages in now, not while the relay may be waiting for the lock. */
    memset(keys, 0, (size_t)t->max_entries * sizeof(*keys));
    memset(entries, 0, cap * sizeof(*entries));

    struct timespec t0, t1;
    pthread_mutex_lock(&t->mu);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t n = t->used;
    for (uint32_t i = 0; i < n; i++) {
        const digest_slot_t *s = &t->slots[i];
        keys[i] = (sort_key_t){order_value(s, order), s->fingerprint, s->database, s->user,
                               i};
    }
    size_t k = n < cap ? n : cap;
    if (k < n)
        select_first(keys, n, k);
    size_t text_bytes = 0;
    for (size_t j = 0; j < k; j++)
        text_bytes += (size_t)t->slots[keys[j].slot].sql_len + 1;
    text = malloc(text_bytes > 0 ? text_bytes : 1);
    if (text == NULL) {
        pthread_mutex_unlock(&t->mu);
        goto out;
    }
    size_t off = 0;
    for (size_t j = 0; j < k; j++) {
        const digest_slot_t *s = &t->slots[keys[j].slot];
        entry_copy(&entries[j], s);
        if (s->sql_len > 0)
            memcpy(text + off, s->sql, s->sql_len);
        text[off + s->sql_len] = '\0';
        entries[j].normalized = text + off;
        off += (size_t)s->sql_len + 1;
    }
    totals_locked(t, &out->totals);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    pthread_mutex_unlock(&t->mu);
    out->lock_ns = (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000L + (t1.tv_nsec - t0.tv_nsec));

    for (size_t j = 0; j < k; j++)
        entries[j].stddev_ns = sqrt(entries[j].stddev_ns);
    qsort_r(entries, k, sizeof(*entries), entry_qsort_cmp, &order);
    out->entries = entries;
    out->count = k;
    out->text = text;
    entries = NULL;
    text = NULL;
    rc = 0;
out:
    free(keys);
    free(entries);
    free(text);
    return rc;
}

void pgp_digest_snapshot_free(pgp_digest_snapshot_t *s)
{
    free(s->entries);
    free(s->text);
    memset(s, 0, sizeof(*s));
}
