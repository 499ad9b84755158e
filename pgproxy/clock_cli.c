/*
 * clock_cli.c - `pgproxy clock [--json]`: reports the tick source chosen
 * by clock.c, its calibrated frequency, the cost of one pgp_clock_now(),
 * its resolution, and an independent check of the calibration: ticks
 * converted to nanoseconds against CLOCK_MONOTONIC over a 200 ms sleep.
 * It only reads the clock module's public interface and writes stdout;
 * it changes nothing.  tests/bench/bench_clock.sh consumes --json.
 */
#include "pgproxy/clock.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_WINDOW_NS 200000000ull

static void usage(FILE *f)
{
    fputs("usage: pgproxy clock [--json]\n"
          "  Prints the timer source pgproxy uses (rdtsc, cntvct or clock_gettime),\n"
          "  its calibrated frequency, the cost of one read, its resolution, and the\n"
          "  calibration error against CLOCK_MONOTONIC over a 200 ms window.\n"
          "  --json   one JSON object instead of text\n"
          "Environment: " PGP_CLOCK_ENV "=monotonic forces clock_gettime(CLOCK_MONOTONIC);\n"
          "  " PGP_CLOCK_ENV "=auto (or unset) picks the cycle counter when it is usable.\n",
          f);
}

/* A JSON string: quotes, backslashes and control bytes escaped. */
static void put_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* JSON has no NaN or infinity. */
static double finite_or_zero(double v)
{
    return isfinite(v) ? v : 0.0;
}

typedef struct check_result {
    uint64_t window_ns;        /* CLOCK_MONOTONIC span of the check */
    double error_ppm;          /* (ticks in ns - monotonic ns) / monotonic ns */
    double uncertainty_ppm;    /* from the two pairs' bracket widths */
} check_result_t;

static int check_calibration(check_result_t *out)
{
    pgp_ticks_t t0, t1;
    uint64_t n0, n1, w0, w1;
    int rc = pgp_clock_pair(CLOCK_MONOTONIC, &t0, &n0, &w0);
    if (rc < 0)
        return rc;
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)CHECK_WINDOW_NS};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    rc = pgp_clock_pair(CLOCK_MONOTONIC, &t1, &n1, &w1);
    if (rc < 0)
        return rc;
    if (n1 <= n0)
        return -EIO;
    uint64_t tick_ns = pgp_clock_elapsed_ns(t0, t1);
    out->window_ns = n1 - n0;
    out->error_ppm = ((double)tick_ns - (double)out->window_ns) / (double)out->window_ns * 1e6;
    out->uncertainty_ppm = (double)(w0 + w1) / 2.0 / (double)out->window_ns * 1e6;
    return 0;
}

int pgp_clock_main(int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "pgproxy clock: unknown argument \"%s\"\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }

    int rc = pgp_clock_init();
    if (rc == -EINVAL) {
        fprintf(stderr, "pgproxy clock: %s=\"%s\": unknown value (use monotonic or auto)\n",
                PGP_CLOCK_ENV, getenv(PGP_CLOCK_ENV));
        return 2;
    }
    if (rc < 0) {
        fprintf(stderr, "pgproxy clock: cannot initialize the clock: %s\n", strerror(-rc));
        return 1;
    }

    pgp_clock_info_t info;
    pgp_clock_info(&info);
    check_result_t chk;
    rc = check_calibration(&chk);
    if (rc < 0) {
        fprintf(stderr, "pgproxy clock: calibration check failed: %s\n", strerror(-rc));
        return 1;
    }

    if (json) {
        fputs("{\"source\":", stdout);
        put_json_string(stdout, info.source_name);
        fputs(",\"reason\":", stdout);
        put_json_string(stdout, info.reason);
        printf(",\"frequency_hz\":%llu,\"read_cost_ns\":%.2f,\"resolution_ns\":%.3f,"
               "\"calibration_ns\":%llu,\"check_window_ns\":%llu,\"calibration_error_ppm\":%.3f,"
               "\"check_uncertainty_ppm\":%.3f,\"mult\":%llu,\"shift\":%u}\n",
               (unsigned long long)info.freq_hz, finite_or_zero(info.read_cost_ns),
               finite_or_zero(info.resolution_ns), (unsigned long long)info.calibration_ns,
               (unsigned long long)chk.window_ns, finite_or_zero(chk.error_ppm),
               finite_or_zero(chk.uncertainty_ppm), (unsigned long long)info.to_ns.mult,
               (unsigned)info.to_ns.shift);
    } else {
        printf("source       %s (%s)\n", info.source_name, info.reason);
        printf("frequency    %.3f MHz\n", (double)info.freq_hz / 1e6);
        printf("read cost    %.1f ns per read (CPU time, median of %d x %u reads)\n",
               info.read_cost_ns, PGP_CLOCK_COST_LOOPS, PGP_CLOCK_COST_READS);
        printf("resolution   %.2f ns\n", info.resolution_ns);
        printf("calibration  %+.2f ppm (%+.5f %%) vs CLOCK_MONOTONIC over %.1f ms"
               " (+/- %.2f ppm); calibrated in %.1f ms\n",
               chk.error_ppm, chk.error_ppm / 1e4, (double)chk.window_ns / 1e6,
               chk.uncertainty_ppm, (double)info.calibration_ns / 1e6);
    }
    return fflush(stdout) == 0 ? 0 : 1;
}
