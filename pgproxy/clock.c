/*
 * clock.c - chooses and calibrates the tick source behind pgp_clock_now().
 *
 * Modeled on Redis src/monotonic.c: the source is picked once at init
 * (rdtsc with an invariant TSC on x86-64, cntvct_el0 on arm64, else
 * clock_gettime(CLOCK_MONOTONIC)), with a fallback and a one-line
 * description.  Unlike Redis it does not read the frequency from
 * /proc/cpuinfo: hardware counters are calibrated against CLOCK_MONOTONIC
 * over a few short sleeps (arm64's advertised cntfrq_el0 is used only when
 * the calibration agrees with it).  It owns the process-wide clock state
 * (written only by pgp_clock_init) and the cached measurements of
 * pgp_clock_info().  It does not log, allocate, or use libuv; it never
 * executes rdtscp.
 */
#include "pgproxy/clock.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#define NS_PER_SEC 1000000000ull
/* Attempts per pgp_clock_pair(); the tightest bracket wins. */
#define PAIR_TRIES 7
/* Windows further than this from their median mean the counter is not steady. */
#define CAL_MAX_SPREAD 0.05
/* The whole span is used when it agrees with the median window this well. */
#define CAL_SPAN_AGREE 1e-3
/* cntfrq_el0 is trusted when the calibration agrees with it this well. */
#define CNTFRQ_AGREE 0.01
#define FREQ_MIN_HZ 1e6
#define FREQ_MAX_HZ 1e11
/* Consecutive reads examined for the resolution. */
#define RESOLUTION_READS 200000u

/* 64-byte aligned: read on every pgp_clock_now(), written once. */
_Alignas(64) pgp_clock_state_t pgp_clock_state = {
    .source = PGP_CLOCK_SOURCE_CLOCK_GETTIME,
    .to_ns = {.mult = 1ull << 62, .shift = 62},
    .from_ns = {.mult = 1ull << 62, .shift = 62},
};

/* Everything else pgp_clock_init() decides; written once, under init_once. */
static struct {
    int result;
    double freq_hz;
    const char *reason;
    uint64_t calibration_ns;
    uint64_t base_ticks;
    uint64_t base_wall_ns;
    char describe[160];
} g = {.freq_hz = 1e9, .reason = "not initialized", .describe = "clock_gettime (not initialized)"};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_once_t measure_once = PTHREAD_ONCE_INIT;
static double g_read_cost_ns;
static double g_resolution_ns;
/* Keeps the measuring loops from being optimized away. */
static volatile uint64_t g_sink;

static int read_ns(clockid_t id, uint64_t *out)
{
    struct timespec ts;
    if (clock_gettime(id, &ts) != 0)
        return -errno;
    *out = (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
    return 0;
}

pgp_ticks_t pgp_clock_now_fallback(void)
{
    struct timespec ts;
    /* CLOCK_MONOTONIC cannot fail once pgp_clock_init() has read it. */
    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (pgp_ticks_t){(uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec};
}

/* Raw read of the hardware counter, whatever pgp_clock_state says. */
static uint64_t read_hw(pgp_clock_source_t src)
{
#if defined(__x86_64__)
    if (src == PGP_CLOCK_SOURCE_RDTSC) {
        uint32_t lo, hi;
        __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
        return ((uint64_t)hi << 32) | lo;
    }
#elif defined(__aarch64__)
    if (src == PGP_CLOCK_SOURCE_CNTVCT) {
        uint64_t v;
        __asm__ __volatile__("isb\n\tmrs %0, cntvct_el0" : "=r"(v) : : "memory");
        return v;
    }
#endif
    return pgp_clock_now_fallback().t;
}

/* Bracket one counter read between two reads of `id`; keep the tightest. */
static int pair_of(pgp_clock_source_t src, clockid_t id, uint64_t *ticks, uint64_t *ns,
                   uint64_t *width_ns)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < PAIR_TRIES; i++) {
        uint64_t a = 0, b = 0, t;
        int rc = read_ns(id, &a);
        if (rc < 0)
            return rc;
        t = read_hw(src);
        rc = read_ns(id, &b);
        if (rc < 0)
            return rc;
        if (b < a)   /* CLOCK_REALTIME stepped backwards between the reads */
            continue;
        if (b - a < best) {
            best = b - a;
            *ticks = t;
            *ns = a + (b - a) / 2;
        }
    }
    if (best == UINT64_MAX)
        return -EAGAIN;
    if (width_ns != NULL)
        *width_ns = best;
    return 0;
}

int pgp_clock_pair(clockid_t id, pgp_ticks_t *ticks, uint64_t *clock_ns, uint64_t *width_ns)
{
    return pair_of(pgp_clock_state.source, id, &ticks->t, clock_ns, width_ns);
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / NS_PER_SEC), .tv_nsec = (long)(ns % NS_PER_SEC)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/*
 * Measure the counter's frequency against CLOCK_MONOTONIC over
 * PGP_CLOCK_CAL_WINDOWS consecutive windows.  The median window rejects a
 * disturbed one; the whole span, when it agrees, is ~5x more precise.
 * Returns 0 with *freq_hz, or a negative errno, or 1 with *why when the
 * counter does not behave like a steady clock.
 */
static int calibrate(pgp_clock_source_t src, double *freq_hz, const char **why)
{
    uint64_t t[PGP_CLOCK_CAL_WINDOWS + 1], n[PGP_CLOCK_CAL_WINDOWS + 1];
    double f[PGP_CLOCK_CAL_WINDOWS];
    for (int i = 0; i <= PGP_CLOCK_CAL_WINDOWS; i++) {
        if (i > 0)
            sleep_ns(PGP_CLOCK_CAL_WINDOW_NS);
        int rc = pair_of(src, CLOCK_MONOTONIC, &t[i], &n[i], NULL);
        if (rc < 0)
            return rc;
        if (i > 0) {
            if (t[i] <= t[i - 1] || n[i] <= n[i - 1]) {
                *why = "counter did not advance during calibration";
                return 1;
            }
            f[i - 1] = (double)(t[i] - t[i - 1]) * 1e9 / (double)(n[i] - n[i - 1]);
        }
    }
    double sorted[PGP_CLOCK_CAL_WINDOWS];
    memcpy(sorted, f, sizeof(sorted));
    qsort(sorted, PGP_CLOCK_CAL_WINDOWS, sizeof(sorted[0]), cmp_double);
    double median = sorted[PGP_CLOCK_CAL_WINDOWS / 2];
    if (!(median >= FREQ_MIN_HZ && median <= FREQ_MAX_HZ)) {
        *why = "calibrated frequency out of range";
        return 1;
    }
    for (int i = 0; i < PGP_CLOCK_CAL_WINDOWS; i++) {
        if (fabs(f[i] - median) / median > CAL_MAX_SPREAD) {
            *why = "counter rate unsteady during calibration";
            return 1;
        }
    }
    double span = (double)(t[PGP_CLOCK_CAL_WINDOWS] - t[0]) * 1e9 /
                  (double)(n[PGP_CLOCK_CAL_WINDOWS] - n[0]);
    *freq_hz = fabs(span - median) / median <= CAL_SPAN_AGREE ? span : median;
    return 0;
}

/* Fixed-point scale for `ratio` output units per input unit: the largest shift with mult < 2^63. */
static pgp_clock_scale_t scale_for(double ratio)
{
    uint32_t shift = 63;
    while (shift > 0 && ldexp(ratio, (int)shift) >= 0x1p63)
        shift--;
    return (pgp_clock_scale_t){.mult = (uint64_t)llround(ldexp(ratio, (int)shift)), .shift = shift};
}

#if defined(__x86_64__)
static bool cpu_has_invariant_tsc(void)
{
    unsigned a, b, c, d;
    if ((unsigned)__get_cpuid_max(0x80000000u, NULL) < 0x80000007u)
        return false;
    if (!__get_cpuid(0x80000007u, &a, &b, &c, &d))
        return false;
    return (d >> 8) & 1u;
}
#endif

#if defined(__aarch64__)
static uint64_t read_cntfrq(void)
{
    uint64_t v;
    __asm__ __volatile__("mrs %0, cntfrq_el0" : "=r"(v));
    return v;
}
#endif

/* The hardware source this machine offers, or clock_gettime with *why. */
static pgp_clock_source_t hw_candidate(const char **why)
{
#if defined(__x86_64__)
    if (cpu_has_invariant_tsc()) {
        *why = "invariant TSC";
        return PGP_CLOCK_SOURCE_RDTSC;
    }
    *why = "cpuid reports no invariant TSC";
    return PGP_CLOCK_SOURCE_CLOCK_GETTIME;
#elif defined(__aarch64__)
    *why = "arm64 generic timer";
    return PGP_CLOCK_SOURCE_CNTVCT;
#else
    *why = "no cycle counter support for this architecture";
    return PGP_CLOCK_SOURCE_CLOCK_GETTIME;
#endif
}

static void init_locked(void)
{
    uint64_t start_ns = 0, end_ns = 0;
    int rc = read_ns(CLOCK_MONOTONIC, &start_ns);
    if (rc < 0) {
        g.result = rc;
        g.reason = "CLOCK_MONOTONIC unreadable";
        return;
    }

    int result = 0;
    const char *why = NULL;
    pgp_clock_source_t src = hw_candidate(&why);
    const char *env = getenv(PGP_CLOCK_ENV);
    if (env != NULL && strcmp(env, "monotonic") == 0) {
        src = PGP_CLOCK_SOURCE_CLOCK_GETTIME;
        why = "forced by " PGP_CLOCK_ENV "=monotonic";
    } else if (env != NULL && env[0] != '\0' && strcmp(env, "auto") != 0) {
        result = -EINVAL;
    }

    double freq = 1e9;
    if (src != PGP_CLOCK_SOURCE_CLOCK_GETTIME) {
        const char *bad = NULL;
        rc = calibrate(src, &freq, &bad);
        if (rc < 0) {
            g.result = rc;
            return;
        }
        if (rc > 0) {
            src = PGP_CLOCK_SOURCE_CLOCK_GETTIME;
            why = bad;
            freq = 1e9;
        }
#if defined(__aarch64__)
        if (src == PGP_CLOCK_SOURCE_CNTVCT) {
            uint64_t nominal = read_cntfrq();
            if (nominal != 0 && fabs((double)nominal - freq) / freq <= CNTFRQ_AGREE) {
                freq = (double)nominal;
                why = "arm64 generic timer, cntfrq_el0 confirmed";
            } else {
                why = "arm64 generic timer, cntfrq_el0 disagrees: calibrated";
            }
        }
#endif
    }

    if (src == PGP_CLOCK_SOURCE_CLOCK_GETTIME) {
        pgp_clock_state.to_ns = (pgp_clock_scale_t){.mult = 1ull << 62, .shift = 62};
        pgp_clock_state.from_ns = pgp_clock_state.to_ns;
    } else {
        pgp_clock_state.to_ns = scale_for(1e9 / freq);
        pgp_clock_state.from_ns = scale_for(freq / 1e9);
    }
    pgp_clock_state.source = src;
    g.freq_hz = freq;
    g.reason = why;
    const char *note = result == -EINVAL ? "; unknown " PGP_CLOCK_ENV " value ignored" : "";
    if (src == PGP_CLOCK_SOURCE_CLOCK_GETTIME)
        snprintf(g.describe, sizeof(g.describe), "clock_gettime CLOCK_MONOTONIC (%s%s)", why, note);
    else
        snprintf(g.describe, sizeof(g.describe), "%s %.3f MHz (%s%s)", pgp_clock_source_name(src),
                 freq / 1e6, why, note);

    uint64_t base_ticks = 0, base_wall = 0;
    rc = pair_of(src, CLOCK_REALTIME, &base_ticks, &base_wall, NULL);
    if (rc < 0) {
        g.result = rc;
        return;
    }
    g.base_ticks = base_ticks;
    g.base_wall_ns = base_wall;
    if (read_ns(CLOCK_MONOTONIC, &end_ns) == 0 && end_ns >= start_ns)
        g.calibration_ns = end_ns - start_ns;
    g.result = result;
}

int pgp_clock_init(void)
{
    /* pthread_once also publishes the state to threads that call this. */
    int rc = pthread_once(&init_once, init_locked);
    if (rc != 0)
        return -rc;
    return g.result;
}

pgp_clock_source_t pgp_clock_source(void)
{
    return pgp_clock_state.source;
}

const char *pgp_clock_source_name(pgp_clock_source_t source)
{
    switch (source) {
    case PGP_CLOCK_SOURCE_RDTSC:
        return "rdtsc";
    case PGP_CLOCK_SOURCE_CNTVCT:
        return "cntvct";
    case PGP_CLOCK_SOURCE_CLOCK_GETTIME:
        break;
    }
    return "clock_gettime";
}

const char *pgp_clock_describe(void)
{
    return g.describe;
}

uint64_t pgp_clock_to_wall_ns(pgp_ticks_t t)
{
    if (t.t >= g.base_ticks) {
        uint64_t d = pgp_clock_to_ns((pgp_ticks_t){t.t - g.base_ticks});
        return d > UINT64_MAX - g.base_wall_ns ? UINT64_MAX : g.base_wall_ns + d;
    }
    uint64_t d = pgp_clock_to_ns((pgp_ticks_t){g.base_ticks - t.t});
    return d > g.base_wall_ns ? 0 : g.base_wall_ns - d;
}

/*
 * Read cost: median over loops of pgp_clock_now(), timed in this thread's
 * CPU time so that being descheduled on a busy machine is not counted as
 * cost (CLOCK_MONOTONIC if the CPU-time clock is unavailable).
 */
static void measure_locked(void)
{
    double cost[PGP_CLOCK_COST_LOOPS];
    uint64_t sink = 0, probe;
    clockid_t timer = read_ns(CLOCK_THREAD_CPUTIME_ID, &probe) == 0 ? CLOCK_THREAD_CPUTIME_ID
                                                                    : CLOCK_MONOTONIC;
    for (int l = 0; l < PGP_CLOCK_COST_LOOPS; l++) {
        uint64_t a = 0, b = 0;
        int ra = read_ns(timer, &a);
        for (uint32_t i = 0; i < PGP_CLOCK_COST_READS; i++)
            sink += pgp_clock_now().t;
        int rb = read_ns(timer, &b);
        cost[l] = (ra == 0 && rb == 0 && b > a) ? (double)(b - a) / PGP_CLOCK_COST_READS : 0.0;
    }
    qsort(cost, PGP_CLOCK_COST_LOOPS, sizeof(cost[0]), cmp_double);
    g_read_cost_ns = cost[PGP_CLOCK_COST_LOOPS / 2];

    uint64_t min_delta = UINT64_MAX;
    pgp_ticks_t prev = pgp_clock_now();
    for (uint32_t i = 0; i < RESOLUTION_READS; i++) {
        pgp_ticks_t cur = pgp_clock_now();
        if (cur.t > prev.t && cur.t - prev.t < min_delta)
            min_delta = cur.t - prev.t;
        prev = cur;
    }
    g_sink = sink + prev.t;
    g_resolution_ns = min_delta == UINT64_MAX ? 0.0 : (double)min_delta * 1e9 / g.freq_hz;
}

void pgp_clock_info(pgp_clock_info_t *out)
{
    int rc = pgp_clock_init();
    (void)rc;   /* -EINVAL still leaves a working clock; the caller checked init */
    (void)pthread_once(&measure_once, measure_locked);
    *out = (pgp_clock_info_t){
        .source = pgp_clock_state.source,
        .source_name = pgp_clock_source_name(pgp_clock_state.source),
        .reason = g.reason,
        .freq_hz = (uint64_t)llround(g.freq_hz),
        .read_cost_ns = g_read_cost_ns,
        .resolution_ns = g_resolution_ns,
        .calibration_ns = g.calibration_ns,
        .to_ns = pgp_clock_state.to_ns,
    };
}
