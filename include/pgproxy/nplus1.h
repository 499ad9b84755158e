/*
 * nplus1.h - N+1, duplicate-query and batchable-write detection over the
 * statements of one finished request (DESIGN §4.5).
 *
 * Pure functions over an array of events: no clock, no globals, no libuv;
 * the only allocation is the scratch space and the findings array of
 * pgp_nplus1_analyze.  Rules, for the statements that are not excluded
 * (transaction control, SET/RESET/SHOW and every kind but SELECT, INSERT,
 * UPDATE, DELETE; catalog queries; fingerprints of the ignore list):
 *   - a SELECT fingerprint executed >= threshold times with >= 2 distinct
 *     values_hash is an "n_plus_one" finding, with one value a "duplicate";
 *   - an INSERT/UPDATE/DELETE fingerprint executed >= threshold times
 *     (whatever the values) is a "batchable" finding.
 * Each fingerprint yields at most one finding.  Evidence: the source (the
 * nearest statement before the fingerprint's first execution that returned
 * >= 2 rows and has another fingerprint), the longest consecutive run (in
 * the event list, any statement in between breaks it), the total time, up
 * to PGP_NPLUS1_EXAMPLES example texts (params summary, else raw SQL, of
 * the first executions with distinct values; only when rules->examples)
 * and estimated_saving_ns = total_ns - total_ns / count.  Every function
 * is reentrant and may run on any thread.
 */
#ifndef PGPROXY_NPLUS1_H
#define PGPROXY_NPLUS1_H

#include "pgproxy/normalize.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef PGP_MUST_CHECK
#define PGP_MUST_CHECK __attribute__((warn_unused_result))
#endif

#define PGP_NPLUS1_EXAMPLES 3            /* examples kept per finding */
#define PGP_NPLUS1_EXAMPLE_BYTES 200     /* an example is cut there (UTF-8 boundary) when rendered */

/*
 * One statement of a request as the profile keeps it.  Texts are
 * NUL-terminated and never NULL ("" when absent or not kept); *_len are
 * their lengths.  Owned by whoever holds the array (the profile's arena).
 */
typedef struct pgp_nplus1_event {
    uint64_t start_ns;          /* monotonic */
    uint64_t duration_ns;
    uint64_t fingerprint;
    uint64_t values_hash;
    uint64_t rows;
    const char *sql;            /* raw SQL ("" when the text cap was reached) */
    const char *normalized;
    const char *params;         /* Bind values summary, "" when none / params off */
    uint32_t sql_len, normalized_len, params_len;
    pgp_norm_kind_t kind;
    char sqlstate[6];           /* "" when ok */
    bool pipelined;
    bool sql_truncated;         /* the captured SQL was already cut by the tracker */
    bool text_truncated;        /* sql (or normalized) not kept: the profile's text cap */
} pgp_nplus1_event_t;

typedef enum pgp_nplus1_type {
    PGP_NPLUS1_N_PLUS_ONE = 0,
    PGP_NPLUS1_DUPLICATE,
    PGP_NPLUS1_BATCHABLE,
} pgp_nplus1_type_t;

typedef struct pgp_nplus1_finding {
    pgp_nplus1_type_t type;
    uint64_t fingerprint;
    const char *normalized;     /* borrowed from the events (first execution) */
    uint32_t normalized_len;
    uint32_t count;             /* executions */
    uint32_t distinct_values;   /* distinct values_hash among them */
    uint32_t longest_run;
    uint32_t first_index;       /* index of the first execution in the events */
    uint64_t total_ns;          /* sum of the executions' durations */
    uint64_t estimated_saving_ns;
    bool has_source;
    uint64_t source_fingerprint;
    const char *source_normalized;   /* borrowed from the events; "" without source */
    uint32_t source_normalized_len;
    uint64_t source_rows;
    uint32_t example_count;
    const char *example[PGP_NPLUS1_EXAMPLES];        /* borrowed from the events */
    uint32_t example_len[PGP_NPLUS1_EXAMPLES];       /* full length; cut when rendered */
} pgp_nplus1_finding_t;

typedef struct pgp_nplus1_rules {
    uint32_t threshold;              /* >= 2 (smaller values act as 2) */
    bool examples;                   /* profiling.params != off */
    const uint64_t *ignore;          /* borrowed, sorted ascending (see pgp_nplus1_sort_ignore) */
    size_t ignore_count;
} pgp_nplus1_rules_t;

/* "n_plus_one", "duplicate" or "batchable" (static). */
const char *pgp_nplus1_type_name(pgp_nplus1_type_t type);

/*
 * True when normalized[0, len) (borrowed) reads a catalog: mentions
 * pg_catalog. or information_schema. (any case), or has FROM/JOIN followed
 * by a relation whose name starts with pg_.  Any thread.
 */
bool pgp_nplus1_is_catalog(const char *normalized, size_t len);

/* True when ev (borrowed) takes no part in the rules (see the file comment). */
bool pgp_nplus1_excluded(const pgp_nplus1_event_t *ev, const pgp_nplus1_rules_t *rules);

/* Sorts fps[0, n) ascending in place, as rules->ignore wants it. */
void pgp_nplus1_sort_ignore(uint64_t *fps, size_t n);

/*
 * Runs the rules over events[0, n) (borrowed, in execution order).  On
 * success returns 0 and *out is an owned array of *count findings (free
 * with free(); NULL when *count is 0), ordered n_plus_one, duplicate,
 * batchable, each by total_ns descending.  The findings borrow their texts
 * from the events.  Returns -ENOMEM (then *out = NULL, *count = 0).  Any
 * thread.
 */
PGP_MUST_CHECK int pgp_nplus1_analyze(const pgp_nplus1_event_t *events, size_t n,
                                      const pgp_nplus1_rules_t *rules,
                                      pgp_nplus1_finding_t **out, size_t *count);

#endif
