/*
 * test_clock.c - unit tests for pgproxy/clock.c and the inlines of clock.h.
 *
 * Checks the conversion arithmetic against a table of exact products
 * (computed with arbitrary-precision integers, including days-long deltas
 * and the saturation edge), both the 128-bit and the portable split form;
 * then the live clock: calibration agrees with CLOCK_MONOTONIC within 1 %
 * over ~100 ms, reads never go backwards, the wall-clock base matches
 * CLOCK_REALTIME within 50 ms, and the source choice (automatic, forced by
 * PGPROXY_CLOCK=monotonic, bad value, concurrent init).  Source choice is
 * decided once per process, so those cases re-execute this binary with
 * "--child MODE" and a prepared environment: they hold under CK_FORK=no
 * and valgrind too.  Sanity bounds only; no timing targets.
 */
#include "pgproxy/clock.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define NS_PER_SEC 1000000000ull

static uint64_t posix_ns(clockid_t id)
{
    struct timespec ts;
    ck_assert_int_eq(clock_gettime(id, &ts), 0);
    return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void init_clock(void)
{
    int rc = pgp_clock_init();
    ck_assert_msg(rc == 0, "pgp_clock_init() = %d", rc);
}

/* The source pgp_clock_init() should pick with no override, decided independently. */
static pgp_clock_source_t expected_auto_source(void)
{
#if defined(__x86_64__)
    unsigned a, b, c, d;
    if ((unsigned)__get_cpuid_max(0x80000000u, NULL) >= 0x80000007u &&
        __get_cpuid(0x80000007u, &a, &b, &c, &d) && ((d >> 8) & 1u))
        return PGP_CLOCK_SOURCE_RDTSC;
    return PGP_CLOCK_SOURCE_CLOCK_GETTIME;
#elif defined(__aarch64__)
    return PGP_CLOCK_SOURCE_CNTVCT;
#else
    return PGP_CLOCK_SOURCE_CLOCK_GETTIME;
#endif
}

/* ------------------------------------------------------------------ */
/* Conversion arithmetic                                               */
/* ------------------------------------------------------------------ */

typedef struct mul_case {
    uint64_t v, mult;
    uint32_t shift;
    uint64_t want;   /* min((v * mult) >> shift, 2^64 - 1), computed exactly */
    const char *name;
} mul_case_t;

static const mul_case_t mul_cases[] = {
    {0x0ull, 0x3039ull, 7, 0x0ull, "zero ticks"},
    {0x1ull, 0x4000000000000000ull, 62, 0x1ull, "identity scale (clock_gettime)"},
    {0x1b69b4bacd05f15ull, 0x4000000000000000ull, 62, 0x1b69b4bacd05f15ull,
     "identity scale, large"},
    {0xffffffffffffffffull, 0x4000000000000000ull, 62, 0xffffffffffffffffull,
     "identity scale, max fits exactly"},
    {0x3b9aca00ull, 0x100000000ull, 32, 0x3b9aca00ull, "1.0 at shift 32"},
    {0x7ull, 0x9ull, 1, 0x1full, "small odd: 63 >> 1"},
    {0x3ull, 0x2aaaaaaaaaaaaaaaull, 63, 0x0ull, "truncation: 3 * floor(2^63/3) >> 63"},
    {0xebbdb3ed0000ull, 0x1555555555555555ull, 62, 0x4e94914effffull, "1 day at 3 GHz"},
    {0x3893edbe0000ull, 0x5355555555555555ull, 57, 0x935690741ffffull,
     "30 days at 24 MHz (cntvct)"},
    {0x122ddc9ce8ac480ull, 0x314ddb5fcdd64800ull, 63, 0x7009d32da2ffffull,
     "1 year at 2596.131471 MHz"},
    {0xffffffffull, 0xffffffffull, 0, 0xfffffffe00000001ull, "32x32 product, no shift"},
    {0x123456789abcdef0ull, 0xfedcba987654321ull, 61, 0x90fd0056bbeba11ull, "all limbs carry"},
    {0xffffffffffffull, 0xffffffffffffull, 32, 0xfffffffffffe0000ull, "mid-word carries"},
    {0x8000000000000000ull, 0x2ull, 1, 0x8000000000000000ull, "2^64 >> 1 fits"},
    {0x8000000000000000ull, 0x2ull, 0, 0xffffffffffffffffull, "2^64 saturates"},
    {0x100000000ull, 0x100000000ull, 0, 0xffffffffffffffffull, "2^64 saturates (limbs)"},
    {0xffffffffffffffffull, 0x2ull, 0, 0xffffffffffffffffull, "overflow saturates"},
    {0xffffffffffffffffull, 0xffffffffffffffffull, 0, 0xffffffffffffffffull, "max*max saturates"},
    {0xffffffffffffffffull, 0xffffffffffffffffull, 63, 0xffffffffffffffffull,
     "max*max >> 63 saturates"},
    {0x8000000000000000ull, 0x8000000000000000ull, 62, 0xffffffffffffffffull,
     "2^126 >> 62 = 2^64 saturates"},
    {0x8000000000000000ull, 0x8000000000000000ull, 63, 0x8000000000000000ull, "2^126 >> 63 = 2^63"},
};

START_TEST(test_mul_shift_table)
{
    const mul_case_t *c = &mul_cases[_i];
    uint64_t got = pgp_clock_mul_shift(c->v, c->mult, c->shift);
    ck_assert_msg(got == c->want, "%s: mul_shift = %#llx, want %#llx", c->name,
                  (unsigned long long)got, (unsigned long long)c->want);
    got = pgp_clock_mul_shift_split(c->v, c->mult, c->shift);
    ck_assert_msg(got == c->want, "%s: mul_shift_split = %#llx, want %#llx", c->name,
                  (unsigned long long)got, (unsigned long long)c->want);
}
END_TEST

static uint64_t xorshift64(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The two forms agree on random operands of every magnitude. */
START_TEST(test_mul_shift_forms_agree)
{
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < 200000; i++) {
        uint64_t v = xorshift64(&seed) >> (xorshift64(&seed) % 64);
        uint64_t m = xorshift64(&seed) >> (xorshift64(&seed) % 64);
        uint32_t s = (uint32_t)(xorshift64(&seed) % 64);
        uint64_t a = pgp_clock_mul_shift(v, m, s), b = pgp_clock_mul_shift_split(v, m, s);
        ck_assert_msg(a == b, "v=%#llx m=%#llx s=%u: %#llx vs split %#llx", (unsigned long long)v,
                      (unsigned long long)m, s, (unsigned long long)a, (unsigned long long)b);
    }
}
END_TEST

START_TEST(test_elapsed_saturates)
{
    pgp_ticks_t early = {1000}, late = {5000};
    ck_assert_uint_eq(pgp_clock_elapsed(early, late).t, 4000);
    ck_assert_uint_eq(pgp_clock_elapsed(late, early).t, 0);
    ck_assert_uint_eq(pgp_clock_elapsed_ns(late, early), 0);
    ck_assert_uint_eq(pgp_clock_elapsed_ns(early, early), 0);
}
END_TEST

/* Durations (ns) pushed through from_ns then to_ns with the calibrated scale. */
static const uint64_t roundtrip_ns[] = {
    1000ull, 1000000ull, NS_PER_SEC, 3600ull * NS_PER_SEC, 86400ull * NS_PER_SEC,
    30ull * 86400ull * NS_PER_SEC, 365ull * 86400ull * NS_PER_SEC,
};

START_TEST(test_scale_roundtrip)
{
    init_clock();
    pgp_clock_info_t info;
    pgp_clock_info(&info);
    uint64_t ns = roundtrip_ns[_i];
    uint64_t back = pgp_clock_to_ns(pgp_clock_from_ns(ns));
    uint64_t err = back > ns ? back - ns : ns - back;
    /* two truncations, each well under one tick (<= 1 us at 1 MHz) plus 1 ppb */
    ck_assert_msg(err <= 1000 + ns / 1000000000u, "%llu ns -> %llu ns", (unsigned long long)ns,
                  (unsigned long long)back);
    /* freq_hz ticks are one second, however long the duration: no overflow */
    uint64_t secs = ns / NS_PER_SEC;
    if (secs > 0) {
        uint64_t got = pgp_clock_to_ns((pgp_ticks_t){info.freq_hz * secs});
        uint64_t want = secs * NS_PER_SEC;
        uint64_t diff = got > want ? got - want : want - got;
        ck_assert_msg(diff <= want / 1000000u, "%llu s of ticks = %llu ns",
                      (unsigned long long)secs, (unsigned long long)got);
    }
}
END_TEST

/* ------------------------------------------------------------------ */
/* The live clock                                                      */
/* ------------------------------------------------------------------ */

/* Over ~100 ms, ticks converted to ns agree with CLOCK_MONOTONIC within 1 %. */
START_TEST(test_calibration_sanity)
{
    init_clock();
    uint64_t a0 = posix_ns(CLOCK_MONOTONIC);
    pgp_ticks_t t0 = pgp_clock_now();
    uint64_t a1 = posix_ns(CLOCK_MONOTONIC);
    sleep_ms(100);
    uint64_t b0 = posix_ns(CLOCK_MONOTONIC);
    pgp_ticks_t t1 = pgp_clock_now();
    uint64_t b1 = posix_ns(CLOCK_MONOTONIC);
    double mono = (double)(b0 + b1) / 2 - (double)(a0 + a1) / 2;
    double ticks_ns = (double)pgp_clock_elapsed_ns(t0, t1);
    ck_assert_msg(mono >= 100e6, "slept %.0f ns", mono);
    double err = (ticks_ns - mono) / mono;
    ck_assert_msg(err > -0.01 && err < 0.01, "ticks say %.0f ns, CLOCK_MONOTONIC %.0f ns (%.4f %%)",
                  ticks_ns, mono, err * 100);
}
END_TEST

START_TEST(test_reads_non_decreasing)
{
    init_clock();
    pgp_ticks_t prev = pgp_clock_now(), first = prev;
    for (int i = 0; i < 200000; i++) {
        pgp_ticks_t cur = pgp_clock_now();
        ck_assert_msg(cur.t >= prev.t, "read %d went back: %llu after %llu", i,
                      (unsigned long long)cur.t, (unsigned long long)prev.t);
        prev = cur;
    }
    sleep_ms(2);
    ck_assert_uint_gt(pgp_clock_elapsed_ns(first, pgp_clock_now()), 1000000);
}
END_TEST

START_TEST(test_wall_base)
{
    init_clock();
    uint64_t real = posix_ns(CLOCK_REALTIME);
    pgp_ticks_t now = pgp_clock_now();
    uint64_t wall = pgp_clock_to_wall_ns(now);
    uint64_t diff = wall > real ? wall - real : real - wall;
    ck_assert_msg(diff < 50000000u, "wall %llu vs CLOCK_REALTIME %llu", (unsigned long long)wall,
                  (unsigned long long)real);
    /* Instants before and after the base pair convert consistently. */
    pgp_ticks_t sec = pgp_clock_from_ns(NS_PER_SEC);
    uint64_t before = pgp_clock_to_wall_ns((pgp_ticks_t){now.t - sec.t});
    uint64_t after = pgp_clock_to_wall_ns((pgp_ticks_t){now.t + sec.t});
    ck_assert_uint_lt(before, wall);
    ck_assert_uint_gt(after, wall);
    ck_assert_uint_le(wall - before, NS_PER_SEC + 1000);
    ck_assert_uint_ge(wall - before, NS_PER_SEC - 1000);
    ck_assert_uint_le(after - wall, NS_PER_SEC + 1000);
    ck_assert_uint_ge(after - wall, NS_PER_SEC - 1000);
    /* Saturation at both ends rather than wrap-around. */
    ck_assert_uint_eq(pgp_clock_to_wall_ns((pgp_ticks_t){0}) <= wall, 1);
    ck_assert_uint_eq(pgp_clock_to_wall_ns((pgp_ticks_t){UINT64_MAX}) >= wall, 1);
}
END_TEST

START_TEST(test_info)
{
    init_clock();
    pgp_clock_info_t info;
    pgp_clock_info(&info);
    ck_assert_int_eq(info.source, pgp_clock_source());
    ck_assert_str_eq(info.source_name, pgp_clock_source_name(info.source));
    ck_assert_ptr_nonnull(info.reason);
    ck_assert_uint_gt(info.freq_hz, 0);
    ck_assert_msg(info.read_cost_ns > 0, "read cost %f", info.read_cost_ns);
    ck_assert_msg(info.resolution_ns > 0, "resolution %f", info.resolution_ns);
    ck_assert_uint_eq(info.to_ns.mult, pgp_clock_state.to_ns.mult);
    const char *d = pgp_clock_describe();
    ck_assert_msg(strncmp(d, info.source_name, strlen(info.source_name)) == 0, "describe: %s", d);
    if (info.source == PGP_CLOCK_SOURCE_CLOCK_GETTIME)
        ck_assert_uint_eq(info.freq_hz, NS_PER_SEC);
    else
        ck_assert_uint_gt(info.calibration_ns, 0);
    /* A second call returns the cached measurement. */
    pgp_clock_info_t again;
    pgp_clock_info(&again);
    ck_assert(again.read_cost_ns == info.read_cost_ns);
}
END_TEST

START_TEST(test_source_names)
{
    ck_assert_str_eq(pgp_clock_source_name(PGP_CLOCK_SOURCE_RDTSC), "rdtsc");
    ck_assert_str_eq(pgp_clock_source_name(PGP_CLOCK_SOURCE_CNTVCT), "cntvct");
    ck_assert_str_eq(pgp_clock_source_name(PGP_CLOCK_SOURCE_CLOCK_GETTIME), "clock_gettime");
}
END_TEST

START_TEST(test_init_idempotent)
{
    init_clock();
    pgp_clock_state_t first = pgp_clock_state;
    init_clock();
    ck_assert_int_eq(pgp_clock_state.source, first.source);
    ck_assert_uint_eq(pgp_clock_state.to_ns.mult, first.to_ns.mult);
    ck_assert_uint_eq(pgp_clock_state.to_ns.shift, first.to_ns.shift);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Source choice, in a fresh process per case                          */
/* ------------------------------------------------------------------ */

typedef enum child_mode {
    CHILD_SOURCE,    /* init, then compare the source with the expected one */
    CHILD_THREADS,   /* init from 4 threads at once */
} child_mode_t;

typedef struct env_case {
    const char *value;   /* PGPROXY_CLOCK, NULL = unset */
    child_mode_t mode;
    int want_rc;
    bool want_fallback;  /* clock_gettime; else the automatic choice */
} env_case_t;

static const env_case_t env_cases[] = {
    {"monotonic", CHILD_SOURCE, 0, true},
    {NULL, CHILD_SOURCE, 0, false},
    {"auto", CHILD_SOURCE, 0, false},
    {"", CHILD_SOURCE, 0, false},
    {"bogus", CHILD_SOURCE, -EINVAL, false},
    {"MONOTONIC", CHILD_SOURCE, -EINVAL, false},
    {NULL, CHILD_THREADS, 0, false},
    {"monotonic", CHILD_THREADS, 0, true},
};

#define CHILD_FAIL(code, ...)                                                                      \
    do {                                                                                           \
        fprintf(stderr, "child: " __VA_ARGS__);                                                    \
        fputc('\n', stderr);                                                                       \
        return (code);                                                                             \
    } while (0)

static void *init_thread(void *arg)
{
    *(int *)arg = pgp_clock_init();
    return NULL;
}

/* Runs in the re-executed binary; returns its exit status (0 = as expected). */
static int child_main(child_mode_t mode, int want_rc, bool want_fallback)
{
    int rc;
    if (mode == CHILD_THREADS) {
        pthread_t th[4];
        int rcs[4];
        for (int i = 0; i < 4; i++)
            if (pthread_create(&th[i], NULL, init_thread, &rcs[i]) != 0)
                CHILD_FAIL(10, "pthread_create");
        for (int i = 0; i < 4; i++)
            pthread_join(th[i], NULL);
        for (int i = 1; i < 4; i++)
            if (rcs[i] != rcs[0])
                CHILD_FAIL(11, "threads saw %d and %d", rcs[0], rcs[i]);
        rc = rcs[0];
    } else {
        rc = pgp_clock_init();
    }
    if (rc != want_rc)
        CHILD_FAIL(12, "pgp_clock_init() = %d, want %d", rc, want_rc);
    if (rc == -EINVAL && strstr(pgp_clock_describe(), "ignored") == NULL)
        CHILD_FAIL(17, "describe does not say the value was ignored: %s", pgp_clock_describe());
    pgp_clock_source_t want =
        want_fallback ? PGP_CLOCK_SOURCE_CLOCK_GETTIME : expected_auto_source();
    if (pgp_clock_source() != want)
        CHILD_FAIL(13, "source %s, want %s (%s)", pgp_clock_source_name(pgp_clock_source()),
                   pgp_clock_source_name(want), pgp_clock_describe());
    if (pgp_clock_source() == PGP_CLOCK_SOURCE_CLOCK_GETTIME) {
        /* Ticks are CLOCK_MONOTONIC nanoseconds, converted one to one. */
        struct timespec ts;
        pgp_ticks_t t = pgp_clock_now();
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t mono = (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
        if (t.t > mono || mono - t.t > 100000000u)
            CHILD_FAIL(14, "ticks %llu vs CLOCK_MONOTONIC %llu", (unsigned long long)t.t,
                       (unsigned long long)mono);
        if (pgp_clock_to_ns((pgp_ticks_t){123456789012345ull}) != 123456789012345ull ||
            pgp_clock_from_ns(987654321ull).t != 987654321ull)
            CHILD_FAIL(15, "clock_gettime ticks are not nanoseconds");
        if (want_fallback && strstr(pgp_clock_describe(), PGP_CLOCK_ENV) == NULL)
            CHILD_FAIL(16, "describe does not say it was forced: %s", pgp_clock_describe());
    }
    return 0;
}

START_TEST(test_env_source)
{
    const env_case_t *c = &env_cases[_i];
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    ck_assert_int_gt(n, 0);
    self[n] = '\0';
    char mode[16], want_rc[16], fallback[4];
    snprintf(mode, sizeof(mode), "%d", (int)c->mode);
    snprintf(want_rc, sizeof(want_rc), "%d", c->want_rc);
    snprintf(fallback, sizeof(fallback), "%d", c->want_fallback ? 1 : 0);

    fflush(NULL);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        if (c->value == NULL)
            unsetenv(PGP_CLOCK_ENV);
        else
            setenv(PGP_CLOCK_ENV, c->value, 1);
        char *args[] = {self, "--child", mode, want_rc, fallback, NULL};
        execv(self, args);
        _exit(127);
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status), "child died (status %#x)", status);
    ck_assert_msg(WEXITSTATUS(status) == 0, "PGPROXY_CLOCK=%s mode %d: child exit %d",
                  c->value ? c->value : "(unset)", (int)c->mode, WEXITSTATUS(status));
}
END_TEST

static Suite *clock_suite(void)
{
    Suite *s = suite_create("clock");

    TCase *tm = tcase_create("math");
    tcase_add_loop_test(tm, test_mul_shift_table, 0, N(mul_cases));
    tcase_add_test(tm, test_mul_shift_forms_agree);
    tcase_add_test(tm, test_elapsed_saturates);
    tcase_add_test(tm, test_source_names);
    suite_add_tcase(s, tm);

    TCase *tl = tcase_create("live");
    tcase_set_timeout(tl, 60);
    tcase_add_loop_test(tl, test_scale_roundtrip, 0, N(roundtrip_ns));
    tcase_add_test(tl, test_calibration_sanity);
    tcase_add_test(tl, test_reads_non_decreasing);
    tcase_add_test(tl, test_wall_base);
    tcase_add_test(tl, test_info);
    tcase_add_test(tl, test_init_idempotent);
    suite_add_tcase(s, tl);

    TCase *te = tcase_create("source");
    tcase_set_timeout(te, 60);
    tcase_add_loop_test(te, test_env_source, 0, N(env_cases));
    suite_add_tcase(s, te);
    return s;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "--child") == 0)
        return child_main((child_mode_t)strtol(argv[2], NULL, 10), (int)strtol(argv[3], NULL, 10),
                          strcmp(argv[4], "1") == 0);
    SRunner *sr = srunner_create(clock_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
