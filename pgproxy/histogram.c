/*
 * histogram.c - log-bucketed latency histogram and the fixed-bound
 * Prometheus histogram (see histogram.h for the bucket layout and the
 * error bound).
 *
 * Owns nothing but the caller's struct; allocates nothing; takes no lock.
 * Rendering (Prometheus text, JSON) is the renderer's job, not this one's.
 */
#include "pgproxy/histogram.h"

#include <string.h>

#define SUB_MASK (PGP_HISTOGRAM_SUB_COUNT - 1u)

void pgp_histogram_init(pgp_histogram_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min_ns = UINT64_MAX;
}

size_t pgp_histogram_bucket_index(uint64_t ns)
{
    if (ns < PGP_HISTOGRAM_MIN_NS)
        return 0;
    if (ns >= PGP_HISTOGRAM_MAX_NS)
        return PGP_HISTOGRAM_BUCKETS - 1;
    /* ns >= 2^10 here, so clzll is defined and exp is in [10, 40). */
    unsigned exp = 63u - (unsigned)__builtin_clzll(ns);
    size_t sub = (size_t)(ns >> (exp - PGP_HISTOGRAM_SUB_BITS)) & SUB_MASK;
    return ((size_t)(exp - PGP_HISTOGRAM_MIN_EXP) << PGP_HISTOGRAM_SUB_BITS) | sub;
}

uint64_t pgp_histogram_bucket_lower_ns(size_t i)
{
    unsigned exp = PGP_HISTOGRAM_MIN_EXP + (unsigned)(i >> PGP_HISTOGRAM_SUB_BITS);
    uint64_t sub = (uint64_t)(i & SUB_MASK);
    return (PGP_HISTOGRAM_SUB_COUNT + sub) << (exp - PGP_HISTOGRAM_SUB_BITS);
}

uint64_t pgp_histogram_bucket_upper_ns(size_t i)
{
    unsigned exp = PGP_HISTOGRAM_MIN_EXP + (unsigned)(i >> PGP_HISTOGRAM_SUB_BITS);
    return pgp_histogram_bucket_lower_ns(i) + (UINT64_C(1) << (exp - PGP_HISTOGRAM_SUB_BITS));
}

void pgp_histogram_record(pgp_histogram_t *h, uint64_t ns)
{
    size_t i = pgp_histogram_bucket_index(ns);
    if (h->buckets[i] != UINT32_MAX) {
        h->buckets[i]++;
        h->count++;
    } else {
        h->saturated++;
    }
    if (ns < h->min_ns)
        h->min_ns = ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
}

void pgp_histogram_merge(pgp_histogram_t *dst, const pgp_histogram_t *src)
{
    if (src->count == 0 && src->saturated == 0)
        return;
    for (size_t i = 0; i < PGP_HISTOGRAM_BUCKETS; i++) {
        uint64_t sum = (uint64_t)dst->buckets[i] + src->buckets[i];
        uint64_t kept = sum > UINT32_MAX ? UINT32_MAX : sum;
        dst->count += kept - dst->buckets[i];
        dst->saturated += sum - kept;
        dst->buckets[i] = (uint32_t)kept;
    }
    dst->saturated += src->saturated;
    if (src->min_ns < dst->min_ns)
        dst->min_ns = src->min_ns;
    if (src->max_ns > dst->max_ns)
        dst->max_ns = src->max_ns;
}

/*
 * Nearest rank of quantile q among n: ceil(q * n), at least 1.  The
 * product is rounded down when it is within 1e-9 of an integer, so that
 * 0.95 * 100 (94.99999999999999 in binary) is rank 95, not 96.
 */
static uint64_t rank_of(double q, uint64_t n)
{
    if (!(q > 0.0))         /* also NaN */
        return 1;
    if (q >= 1.0)
        return n;
    double r = q * (double)n;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r - 1e-9)
        rank++;
    if (rank < 1)
        rank = 1;
    return rank > n ? n : rank;
}

static uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

void pgp_histogram_percentiles(const pgp_histogram_t *h, const double *qs, uint64_t *out,
                               size_t n)
{
    size_t k = 0;
    if (h->count == 0 || n == 0) {
        for (; k < n; k++)
            out[k] = 0;
        return;
    }
    /* Exact answers at the ends; the walk starts at min's bucket. */
    size_t first = pgp_histogram_bucket_index(h->min_ns);
    size_t last = pgp_histogram_bucket_index(h->max_ns);
    uint64_t cum = 0;
    uint64_t target = rank_of(qs[0], h->count);
    for (size_t i = first; i <= last && k < n; i++) {
        cum += h->buckets[i];
        while (k < n && cum >= target) {
            if (!(qs[k] > 0.0)) {
                out[k] = h->min_ns;
            } else if (qs[k] >= 1.0) {
                out[k] = h->max_ns;
            } else {
                uint64_t lo = pgp_histogram_bucket_lower_ns(i);
                uint64_t mid = lo + (pgp_histogram_bucket_upper_ns(i) - lo) / 2;
                out[k] = clamp_u64(mid, h->min_ns, h->max_ns);
            }
            k++;
            if (k < n)
                target = rank_of(qs[k], h->count);
        }
    }
    /* Only reachable if buckets and count disagree (a hand-edited struct). */
    for (; k < n; k++)
        out[k] = h->max_ns;
}

uint64_t pgp_histogram_percentile(const pgp_histogram_t *h, double q)
{
    uint64_t v;
    pgp_histogram_percentiles(h, &q, &v, 1);
    return v;
}

/* ------------------------------------------------------------------ */
/* Prometheus fixed bounds                                             */
/* ------------------------------------------------------------------ */

const uint64_t pgp_histogram_prom_bounds_ns[PGP_HISTOGRAM_PROM_BUCKETS - 1] = {
    500000u,     1000000u,    2500000u,    5000000u,    10000000u,
    25000000u,   50000000u,   100000000u,  250000000u,  500000000u,
    1000000000u, 2500000000u, 5000000000u, 10000000000u,
};

const char *const pgp_histogram_prom_le[PGP_HISTOGRAM_PROM_BUCKETS] = {
    "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
    "0.25",   "0.5",   "1",      "2.5",   "5",     "10",   "+Inf",
};

void pgp_histogram_prom_record(pgp_histogram_prom_t *p, uint64_t ns)
{
    size_t i = 0;
    /* Most statements are fast: a linear scan exits within a few compares. */
    while (i < PGP_HISTOGRAM_PROM_BUCKETS - 1 && ns > pgp_histogram_prom_bounds_ns[i])
        i++;
    /* Single writer: a relaxed load + store is enough (no locked add), and
     * keeps concurrent readers free of data races. */
    __atomic_store_n(&p->counts[i], __atomic_load_n(&p->counts[i], __ATOMIC_RELAXED) + 1,
                     __ATOMIC_RELAXED);
    __atomic_store_n(&p->sum_ns, __atomic_load_n(&p->sum_ns, __ATOMIC_RELAXED) + ns,
                     __ATOMIC_RELAXED);
}

void pgp_histogram_prom_accumulate(const pgp_histogram_prom_t *p,
                                   pgp_histogram_prom_view_t *view)
{
    uint64_t cum = 0;
    for (size_t i = 0; i < PGP_HISTOGRAM_PROM_BUCKETS; i++) {
        cum += __atomic_load_n(&p->counts[i], __ATOMIC_RELAXED);
        view->cumulative[i] += cum;
    }
    view->count = view->cumulative[PGP_HISTOGRAM_PROM_BUCKETS - 1];
    view->sum_ns += __atomic_load_n(&p->sum_ns, __ATOMIC_RELAXED);
}
