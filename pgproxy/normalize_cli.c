/*
 * normalize_cli.c - `pgproxy normalize [--null] [FILE...]`: the normalizer
 * as a filter, for checking fingerprints by hand and in scripts.
 *
 * Reads one statement per line (per NUL-terminated record with --null)
 * from stdin or each FILE in turn, and prints "<16-hex fingerprint>\t
 * <normalized text>\n" for every record, empty ones included, so output
 * line N belongs to input record N.  The normalized text never contains
 * a newline (whitespace collapses and control bytes in quoted identifiers
 * print as ?), so the output is one line per record even with --null.
 * A final record without its terminator still counts.  Owns only its read
 * and output buffers; no libuv.
 */
#include "pgproxy/normalize.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fputs("usage: pgproxy normalize [--null] [FILE...]\n"
          "  Prints \"<fingerprint>\\t<normalized SQL>\" for each input line\n"
          "  (each NUL-terminated record with --null), from FILEs or stdin.\n",
          f);
}

/* Normalizes every record of in; returns 0, or -1 on a read/write error. */
static int run_stream(FILE *in, const char *name, int delim)
{
    char *line = NULL, *out = NULL;
    size_t line_cap = 0, out_cap = 0;
    int rc = 0;

    for (;;) {
        errno = 0;
        ssize_t n = getdelim(&line, &line_cap, delim, in);
        if (n < 0) {
            if (ferror(in)) {
                fprintf(stderr, "pgproxy normalize: %s: read error: %s\n", name,
                        strerror(errno));
                rc = -1;
            }
            break;
        }
        size_t len = (size_t)n;
        if (len > 0 && line[len - 1] == (char)delim)
            len--;
        if (out_cap < len + PGP_NORMALIZE_MAX_GROWTH + 1) {
            size_t cap = len + PGP_NORMALIZE_MAX_GROWTH + 1;
            char *p = realloc(out, cap);
            if (!p) {
                fprintf(stderr, "pgproxy normalize: out of memory\n");
                rc = -1;
                break;
            }
            out = p;
            out_cap = cap;
        }
        pgp_norm_result_t res;
        char fp[17];
        pgp_normalize(line, len, NULL, out, out_cap, NULL, &res);
        pgp_fingerprint_format(res.fingerprint, fp);
        fputs(fp, stdout);
        fputc('\t', stdout);
        fwrite(out, 1, res.out_len, stdout);
        if (fputc('\n', stdout) == EOF) {
            rc = -1;
            break;
        }
    }
    free(line);
    free(out);
    return rc;
}

int pgp_normalize_main(int argc, char **argv)
{
    int delim = '\n';
    int first = 1;
    int rc = 0;

    while (first < argc && argv[first][0] == '-' && argv[first][1] != '\0') {
        if (strcmp(argv[first], "--null") == 0 || strcmp(argv[first], "-0") == 0) {
            delim = '\0';
        } else if (strcmp(argv[first], "--help") == 0 || strcmp(argv[first], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[first], "--") == 0) {
            first++;
            break;
        } else {
            fprintf(stderr, "pgproxy normalize: unknown option %s\n", argv[first]);
            usage(stderr);
            return 2;
        }
        first++;
    }
    if (first == argc) {
        rc = run_stream(stdin, "<stdin>", delim) < 0 ? 1 : 0;
    } else {
        for (int i = first; i < argc; i++) {
            FILE *f = strcmp(argv[i], "-") == 0 ? stdin : fopen(argv[i], "rb");
            if (!f) {
                fprintf(stderr, "pgproxy normalize: %s: %s\n", argv[i], strerror(errno));
                rc = 1;
                continue;
            }
            if (run_stream(f, argv[i], delim) < 0)
                rc = 1;
            if (f != stdin)
                fclose(f);
        }
    }
    if (fflush(stdout) != 0)
        rc = 1;
    return rc;
}
