/*
 * histogram.h - latency histograms over nanoseconds.
 *
 * Two types live here:
 *
 * pgp_histogram_t, a log-bucketed histogram for percentiles (one per
 * digest entry, DESIGN §4.6).  Buckets cover [2^10 ns, 2^40 ns), about
 * 1.02 us to 1099.5 s: 30 powers of two, each split into 16 equal
 * sub-buckets (480 buckets, uint32 counts).  A value is placed with one
 * count-leading-zeros and two shifts (no division, O(1)); values below
 * 2^10 ns fall into the first bucket, values at or above 2^40 ns into the
 * last one.  A percentile is reported as the midpoint of the bucket that
 * holds the requested rank, clamped to the exact observed [min, max]:
 * a bucket [lo, lo + w) with w = lo_pow2 / 16 is at most 1/16 of the
 * smallest value it holds wide, so for values inside the range the
 * reported value is within +-1/32 = 3.125 % of the true value of that rank
 * (PGP_HISTOGRAM_REL_ERROR).  Outside the range only the clamping to
 * [min, max] bounds the answer.  Counts saturate at UINT32_MAX; a dropped
 * increment is counted in `saturated` and leaves `count` equal to the sum
 * of the buckets, so percentiles stay consistent.
 *
 * pgp_histogram_prom_t, a fixed-bound counter for the Prometheus metric
 * pgproxy_query_duration_seconds.  Its bounds (0.0005 s ... 10 s, +Inf)
 * do not coincide with log-bucket edges (0.0005 s = 500000 ns is not of
 * the form (16 + j) * 2^k), so cumulative Prometheus counts cannot be
 * derived exactly from a pgp_histogram_t; this type counts them exactly
 * (a value equal to a bound counts in that bound's bucket: `le` is <=).
 *
 * Leaf module: no libuv, no allocation, no locks.  A pgp_histogram_t is
 * owned by one thread at a time (its owner locks if it shares it).
 */
#ifndef PGPROXY_HISTOGRAM_H
#define PGPROXY_HISTOGRAM_H

#include <stddef.h>
#include <stdint.h>

#define PGP_HISTOGRAM_SUB_BITS 4u                           /* 16 sub-buckets per power of two */
#define PGP_HISTOGRAM_SUB_COUNT (1u << PGP_HISTOGRAM_SUB_BITS)
#define PGP_HISTOGRAM_MIN_EXP 10u                           /* first bucket starts at 1024 ns */
#define PGP_HISTOGRAM_MAX_EXP 40u                           /* last bucket ends at 2^40 ns */
#define PGP_HISTOGRAM_BUCKETS \
    ((PGP_HISTOGRAM_MAX_EXP - PGP_HISTOGRAM_MIN_EXP) * PGP_HISTOGRAM_SUB_COUNT)   /* 480 */
#define PGP_HISTOGRAM_MIN_NS (UINT64_C(1) << PGP_HISTOGRAM_MIN_EXP)
#define PGP_HISTOGRAM_MAX_NS (UINT64_C(1) << PGP_HISTOGRAM_MAX_EXP)
/* Bound on |reported - true| / true for a percentile inside [MIN_NS, MAX_NS). */
#define PGP_HISTOGRAM_REL_ERROR (1.0 / (2.0 * PGP_HISTOGRAM_SUB_COUNT))

/* 1952 bytes.  Plain data: copy with memcpy or assignment. */
typedef struct pgp_histogram {
    uint64_t count;       /* observations held in the buckets (their sum) */
    uint64_t saturated;   /* observations dropped because their bucket was full */
    uint64_t min_ns;      /* exact smallest recorded value (UINT64_MAX when empty) */
    uint64_t max_ns;      /* exact largest recorded value (0 when empty) */
    uint32_t buckets[PGP_HISTOGRAM_BUCKETS];
} pgp_histogram_t;

/* Make *h empty.  h borrowed.  Any thread (the owner of h). */
void pgp_histogram_init(pgp_histogram_t *h);

/* Bucket index of a value in [0, PGP_HISTOGRAM_BUCKETS): O(1), no division. */
size_t pgp_histogram_bucket_index(uint64_t ns);

/* Inclusive lower and exclusive upper edge of bucket i (i < PGP_HISTOGRAM_BUCKETS). */
uint64_t pgp_histogram_bucket_lower_ns(size_t i);
uint64_t pgp_histogram_bucket_upper_ns(size_t i);

/* Count one observation of `ns`.  O(1).  h borrowed.  The owner's thread. */
void pgp_histogram_record(pgp_histogram_t *h, uint64_t ns);

/*
 * Add every observation of src into dst (bucket counts saturate, the excess
 * is added to dst->saturated; min/max combine).  Both borrowed; they may not
 * alias.  The thread that owns both.
 */
void pgp_histogram_merge(pgp_histogram_t *dst, const pgp_histogram_t *src);

/*
 * The value at quantile q (0 <= q <= 1; out-of-range q is clamped, NaN is 0)
 * by the nearest-rank definition: the smallest recorded value v such that
 * at least ceil(q * count) observations are <= v (rank at least 1).
 * Returns the midpoint of the bucket holding that rank clamped to
 * [min_ns, max_ns], within PGP_HISTOGRAM_REL_ERROR of the true value for
 * values inside the range; returns 0 for an empty histogram.  q = 0 gives
 * min_ns and q = 1 gives max_ns exactly.  h borrowed.
 */
uint64_t pgp_histogram_percentile(const pgp_histogram_t *h, double q);

/*
 * Several quantiles in one pass: qs[0..n) must be ascending; out[i] gets
 * the value pgp_histogram_percentile(h, qs[i]) would return.  Walks only
 * the buckets between min_ns and max_ns.  Both arrays borrowed.
 */
void pgp_histogram_percentiles(const pgp_histogram_t *h, const double *qs, uint64_t *out,
                               size_t n);

/* ------------------------------------------------------------------ */
/* Prometheus fixed-bound histogram (pgproxy_query_duration_seconds)   */
/* ------------------------------------------------------------------ */

#define PGP_HISTOGRAM_PROM_BUCKETS 15u   /* 14 finite bounds + "+Inf" */

/* The finite upper bounds in nanoseconds: 500000, 1000000, ... 10000000000. */
extern const uint64_t pgp_histogram_prom_bounds_ns[PGP_HISTOGRAM_PROM_BUCKETS - 1];
/* The `le` label texts, "0.0005" ... "10", "+Inf", for the renderer. */
extern const char *const pgp_histogram_prom_le[PGP_HISTOGRAM_PROM_BUCKETS];

/*
 * Per-bucket (non-cumulative) counts and the sum.  Zero-initialise it
 * (static storage or memset).  One writer thread per instance; any thread
 * may read it at the same time through pgp_histogram_prom_accumulate (the
 * fields are accessed with relaxed atomics, so there is no data race and
 * no lock; a reader may see the sum lag the counts by the observation in
 * flight).  With several event loops, keep one instance per loop and
 * accumulate them all at scrape time.
 */
typedef struct pgp_histogram_prom {
    uint64_t counts[PGP_HISTOGRAM_PROM_BUCKETS];
    uint64_t sum_ns;
} pgp_histogram_prom_t;

/* What a scrape renders: cumulative counts, count (= cumulative[+Inf]) and sum. */
typedef struct pgp_histogram_prom_view {
    uint64_t cumulative[PGP_HISTOGRAM_PROM_BUCKETS];
    uint64_t count;
    uint64_t sum_ns;     /* render as sum_ns / 1e9 seconds */
} pgp_histogram_prom_view_t;

/* Count one observation.  p borrowed.  Only the instance's writer thread. */
void pgp_histogram_prom_record(pgp_histogram_prom_t *p, uint64_t ns);

/*
 * Add p's counts into *view (cumulative per bound; count and sum too), so
 * several instances can be summed into one zeroed view.  view->count is
 * always view->cumulative[PGP_HISTOGRAM_PROM_BUCKETS - 1].  p borrowed,
 * view borrowed.  Any thread, concurrently with the writer.
 */
void pgp_histogram_prom_accumulate(const pgp_histogram_prom_t *p,
                                   pgp_histogram_prom_view_t *view);

#endif
