/*
 * clock.h - the cycle-counter clock (DESIGN 4.1): a cheap monotonic tick
 * read for the hot path, and the conversions from ticks to nanoseconds.
 *
 * The tick source is chosen once, by pgp_clock_init(), as Redis's
 * monotonic.c does: `rdtsc` on x86-64 when cpuid reports an invariant TSC
 * (CPUID.80000007H:EDX[8]), `cntvct_el0` on arm64, and
 * clock_gettime(CLOCK_MONOTONIC) otherwise (then one tick is one
 * nanosecond).  Hardware counters are calibrated against CLOCK_MONOTONIC
 * in a few short windows at start; /proc/cpuinfo is not parsed.  `rdtscp`
 * is never used (it may run without being advertised, and valgrind kills a
 * program that executes it).
 *
 * Environment: PGPROXY_CLOCK=monotonic forces the clock_gettime source
 * (for a machine whose TSC misbehaves, or to compare); PGPROXY_CLOCK=auto
 * or unset chooses as above.  Any other value makes pgp_clock_init()
 * return -EINVAL (the automatic choice is still made).
 *
 * Ticks (pgp_ticks_t) and nanoseconds (uint64_t, names ending in _ns) are
 * different types; convert once, at the edge, with the functions below
 * (a precomputed multiplier and shift: no division, no floating point).
 * A pgp_ticks_t holds either an instant or a duration; two instants from
 * this process may be compared with `<` on their .t fields.
 *
 * This module is a leaf: no libuv, no allocation, no logging.
 */
#ifndef PGPROXY_CLOCK_H
#define PGPROXY_CLOCK_H

#include <stdint.h>
#include <time.h>

#ifndef PGP_MUST_CHECK
#define PGP_MUST_CHECK __attribute__((warn_unused_result))
#endif

/* A reading of the tick counter, or a difference of two readings. */
typedef struct pgp_ticks {
    uint64_t t;
} pgp_ticks_t;

typedef enum pgp_clock_source {
    PGP_CLOCK_SOURCE_CLOCK_GETTIME = 0,   /* "clock_gettime": CLOCK_MONOTONIC, 1 tick = 1 ns */
    PGP_CLOCK_SOURCE_RDTSC = 1,           /* "rdtsc": x86-64 invariant TSC */
    PGP_CLOCK_SOURCE_CNTVCT = 2,          /* "cntvct": arm64 virtual counter */
} pgp_clock_source_t;

/* Environment variable that overrides the source choice. */
#define PGP_CLOCK_ENV "PGPROXY_CLOCK"

/* Calibration: PGP_CLOCK_CAL_WINDOWS windows of PGP_CLOCK_CAL_WINDOW_NS each. */
#define PGP_CLOCK_CAL_WINDOWS 5
#define PGP_CLOCK_CAL_WINDOW_NS 7000000u
/* pgp_clock_info() read cost: median of this many loops of this many reads. */
#define PGP_CLOCK_COST_LOOPS 5
#define PGP_CLOCK_COST_READS 1000000u

/* out = (v * mult) >> shift, a fixed-point scale; shift is 0..63. */
typedef struct pgp_clock_scale {
    uint64_t mult;
    uint32_t shift;
} pgp_clock_scale_t;

/*
 * What the inline functions below read.  Private to clock.c, which writes
 * it only inside pgp_clock_init(); everyone else only reads it.  Before
 * pgp_clock_init() it describes the clock_gettime source.
 */
typedef struct pgp_clock_state {
    pgp_clock_source_t source;
    pgp_clock_scale_t to_ns;     /* ticks -> ns */
    pgp_clock_scale_t from_ns;   /* ns -> ticks */
} pgp_clock_state_t;

extern pgp_clock_state_t pgp_clock_state;

/*
 * Choose the source, calibrate it against CLOCK_MONOTONIC (under 50 ms:
 * PGP_CLOCK_CAL_WINDOWS sleeps of PGP_CLOCK_CAL_WINDOW_NS, median window
 * checked against the whole span), and record a (ticks, CLOCK_REALTIME)
 * base pair for pgp_clock_to_wall_ns().  Idempotent: later calls return
 * the first call's result at once.  Returns 0; -EINVAL when PGPROXY_CLOCK
 * holds an unknown value (the clock is still usable); or a negative errno
 * when CLOCK_MONOTONIC itself cannot be read.  Call it from main before
 * starting threads (it is safe under concurrent calls: pthread_once).
 * Ticks read before it returns are not comparable with ticks read after.
 */
PGP_MUST_CHECK int pgp_clock_init(void);

/* The source chosen by pgp_clock_init() (clock_gettime before it).  Any thread. */
pgp_clock_source_t pgp_clock_source(void);

/* "rdtsc", "cntvct" or "clock_gettime": returns a static string. */
const char *pgp_clock_source_name(pgp_clock_source_t source);

/*
 * One line for a start-up log, like Redis's monotonicInfoString(): e.g.
 * "rdtsc 2994.372 MHz (invariant TSC)".  Returns a static string, valid
 * for the life of the process, set by pgp_clock_init().  Any thread.
 */
const char *pgp_clock_describe(void);

typedef struct pgp_clock_info {
    pgp_clock_source_t source;
    const char *source_name;   /* static: "rdtsc", "cntvct", "clock_gettime" */
    const char *reason;        /* static: why this source was chosen */
    uint64_t freq_hz;          /* calibrated ticks per second (1e9 for clock_gettime) */
    double read_cost_ns;       /* pgp_clock_now() CPU cost, median of PGP_CLOCK_COST_LOOPS loops */
    double resolution_ns;      /* smallest nonzero delta between consecutive reads */
    uint64_t calibration_ns;   /* how long pgp_clock_init() calibrated */
    pgp_clock_scale_t to_ns;   /* the ticks -> ns scale in use */
} pgp_clock_info_t;

/*
 * Fill *out (borrowed).  The first call measures the read cost and the
 * resolution (about PGP_CLOCK_COST_LOOPS x PGP_CLOCK_COST_READS reads:
 * some 60 ms with rdtsc, longer under valgrind); later calls copy the
 * cached figures.  Calls pgp_clock_init() if it has not run.  Any thread.
 */
void pgp_clock_info(pgp_clock_info_t *out);

/*
 * Read `id` (e.g. CLOCK_MONOTONIC, CLOCK_REALTIME) and the tick counter as
 * close together as possible: the tightest of a few bracketing attempts.
 * Writes *ticks and *clock_ns (borrowed); *width_ns (may be NULL) gets
 * the bracket width, the uncertainty of the pair.  Returns 0, or a
 * negative errno when clock_gettime(id) fails.  Any thread.
 */
PGP_MUST_CHECK int pgp_clock_pair(clockid_t id, pgp_ticks_t *ticks, uint64_t *clock_ns,
                                  uint64_t *width_ns);

/*
 * Unix-epoch nanoseconds of the instant `t`, from the (ticks,
 * CLOCK_REALTIME) pair recorded by pgp_clock_init(): for event
 * timestamps.  Later changes to the wall clock (NTP steps) are not seen.
 * Saturates at 0 and UINT64_MAX.  Any thread.
 */
uint64_t pgp_clock_to_wall_ns(pgp_ticks_t t);

/* Internal: the clock_gettime read behind pgp_clock_now(), out of line. */
pgp_ticks_t pgp_clock_now_fallback(void);

/*
 * `pgproxy clock [--json]` (argv[0] is "clock"): prints the source, the
 * calibrated frequency, the read cost, the resolution and the calibration
 * error against CLOCK_MONOTONIC over a 200 ms window.  Returns the exit
 * code: 0 ok, 1 when the clock cannot be read, 2 on a usage error or an
 * unknown PGPROXY_CLOCK.  Main thread; writes stdout/stderr.
 */
int pgp_clock_main(int argc, char **argv);

/* ---- inline hot path ------------------------------------------------- */

/*
 * The current tick count: one predictable branch, then `rdtsc` or
 * `mrs cntvct_el0` (about 12 ns with rdtsc on the reference machines), or
 * a call to clock_gettime(CLOCK_MONOTONIC).  Non-decreasing within a
 * thread.  Any thread.
 */
static inline pgp_ticks_t pgp_clock_now(void)
{
#if defined(__x86_64__)
    if (__builtin_expect(pgp_clock_state.source == PGP_CLOCK_SOURCE_RDTSC, 1)) {
        uint32_t lo, hi;
        __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
        return (pgp_ticks_t){((uint64_t)hi << 32) | lo};
    }
#elif defined(__aarch64__)
    if (__builtin_expect(pgp_clock_state.source == PGP_CLOCK_SOURCE_CNTVCT, 1)) {
        uint64_t v;
        /* isb: without it the counter may be read early, out of program order. */
        __asm__ __volatile__("isb\n\tmrs %0, cntvct_el0" : "=r"(v) : : "memory");
        return (pgp_ticks_t){v};
    }
#endif
    return pgp_clock_now_fallback();
}

/*
 * (v * mult) >> shift without overflow, saturated to UINT64_MAX; shift
 * must be 0..63.  Portable form (four 32x32 products), used where the
 * compiler has no 128-bit integer; public so tests can check both forms.
 */
static inline uint64_t pgp_clock_mul_shift_split(uint64_t v, uint64_t mult, uint32_t shift)
{
    shift &= 63u;
    uint64_t vl = (uint32_t)v, vh = v >> 32, ml = (uint32_t)mult, mh = mult >> 32;
    uint64_t ll = vl * ml, lh = vl * mh, hl = vh * ml, hh = vh * mh;
    uint64_t mid = (ll >> 32) + (uint32_t)lh + (uint32_t)hl;   /* < 3 * 2^32 */
    uint64_t lo = (mid << 32) | (uint32_t)ll;
    uint64_t hi = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
    if (shift == 0)
        return hi != 0 ? UINT64_MAX : lo;
    if ((hi >> shift) != 0)
        return UINT64_MAX;
    return (hi << (64 - shift)) | (lo >> shift);
}

/* (v * mult) >> shift without overflow, saturated to UINT64_MAX; shift 0..63. */
static inline uint64_t pgp_clock_mul_shift(uint64_t v, uint64_t mult, uint32_t shift)
{
#if defined(__SIZEOF_INT128__)
    __extension__ typedef unsigned __int128 pgp_u128_t;
    /* The mask tells the compiler that shift < 64. */
    pgp_u128_t p = ((pgp_u128_t)v * mult) >> (shift & 63u);
    return (p >> 64) != 0 ? UINT64_MAX : (uint64_t)p;
#else
    return pgp_clock_mul_shift_split(v, mult, shift);
#endif
}

/* end - start, or 0 ticks when end is earlier (e.g. read on another CPU). */
static inline pgp_ticks_t pgp_clock_elapsed(pgp_ticks_t start, pgp_ticks_t end)
{
    return (pgp_ticks_t){end.t > start.t ? end.t - start.t : 0};
}

/* Nanoseconds in a duration of `d` ticks (saturated).  Any thread, after init. */
static inline uint64_t pgp_clock_to_ns(pgp_ticks_t d)
{
    return pgp_clock_mul_shift(d.t, pgp_clock_state.to_ns.mult, pgp_clock_state.to_ns.shift);
}

/* Ticks in a duration of `ns` nanoseconds (saturated), e.g. a threshold. */
static inline pgp_ticks_t pgp_clock_from_ns(uint64_t ns)
{
    return (pgp_ticks_t){
        pgp_clock_mul_shift(ns, pgp_clock_state.from_ns.mult, pgp_clock_state.from_ns.shift)};
}

/* Nanoseconds from start to end (0 when end is earlier). */
static inline uint64_t pgp_clock_elapsed_ns(pgp_ticks_t start, pgp_ticks_t end)
{
    return pgp_clock_to_ns(pgp_clock_elapsed(start, end));
}

#endif
