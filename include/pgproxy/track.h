/*
 * track.h - from framed protocol messages to one event per statement.
 *
 * The tracker consumes the framed messages of both directions of one
 * session (it plugs into the framer as two pgp_frame_ops_t) and emits a
 * query event per statement, following DESIGN §4.2: a simple Query (even
 * a multi-statement one) is one event from the Query to its ReadyForQuery;
 * in the extended protocol every Execute is one event, matched to its
 * response through a FIFO of expected responses (pgbouncer's model), with
 * named and unnamed statements and portals tracked so an Execute is
 * attributed to the SQL parsed for it.  An ErrorResponse drops every
 * expectation up to the next Sync.  COPY is one event; FunctionCall too;
 * NoticeResponse, ParameterStatus and NotificationResponse are never
 * responses.
 *
 * Leaf module: no libuv, no clock reads (the caller stamps each chunk with
 * pgp_track_set_now), bounded memory: captured SQL is capped at
 * max_sql_bytes per statement, the statement map and the FIFO are capped;
 * past a cap the tracker drops the observation and counts it (it never
 * touches the bytes being relayed: it only watches).
 */
#ifndef PGPROXY_TRACK_H
#define PGPROXY_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgproxy/proto.h"

/* What produced the event. */
typedef enum pgp_track_kind {
    PGP_TRACK_QUERY = 1,     /* simple Query */
    PGP_TRACK_EXECUTE,       /* extended protocol Execute */
    PGP_TRACK_FUNCTION,      /* FunctionCall */
} pgp_track_kind_t;

/*
 * Per-statement memo for the event consumer: a prepared statement's SQL is
 * normalized once (at its first event) and the result kept here for every
 * later Execute of it.  Zeroed when the statement is (re)parsed.
 */
typedef struct pgp_track_memo {
    uint64_t fingerprint;
    uint64_t values_hash;       /* hash of the literals the normalizer replaced */
    char *normalized;           /* malloc'd by the consumer; the tracker free()s it */
    uint32_t normalized_len;
    uint32_t flags;             /* the consumer's (e.g. statement kind) */
    uint32_t name_off, name_len;/* the consumer's (e.g. a span of the SQL) */
    void *consumer_data;        /* malloc'd by the consumer or NULL; the tracker free()s it */
    bool valid;
} pgp_track_memo_t;

/* What a Bind's parameters look like in events (profiling.params). */
typedef enum pgp_track_params {
    PGP_TRACK_PARAMS_OFF = 0,   /* no summary */
    PGP_TRACK_PARAMS_TYPES,     /* $1:text(3 bytes), $2:binary(4 bytes), $3:NULL */
    PGP_TRACK_PARAMS_VALUES,    /* $1='abc', $2=<binary 4 bytes>, $3=NULL; each value cut */
} pgp_track_params_t;

#define PGP_TRACK_PARAM_VALUE_BYTES 64u    /* a value's bytes shown at most */
#define PGP_TRACK_SUMMARY_BYTES 256u       /* a summary's bytes at most (then "...") */

/* One statement, as seen on the wire.  Borrowed: valid during the callback only. */
typedef struct pgp_track_event {
    pgp_track_kind_t kind;
    uint64_t start_ticks;       /* see DESIGN §4.2 for where it starts */
    uint64_t end_ticks;         /* CommandComplete/EmptyQuery/PortalSuspended/Error or ReadyForQuery */
    const char *sql;            /* captured SQL (not NUL-terminated), may be "" */
    size_t sql_len;
    bool sql_truncated;         /* the statement was longer than max_sql_bytes */
    const char *statement;      /* prepared statement name ("" = unnamed), NULL for Query */
    uint64_t params_hash;       /* hash of the Bind message (formats + values); 0 for Query */
    const char *params_summary; /* the Bind's parameters per pgp_track_set_params, or NULL */
    size_t params_summary_len;
    uint64_t rows;              /* from CommandComplete tags (summed), or DataRows counted */
    uint64_t copy_bytes;        /* CopyData payload bytes, both directions */
    char sqlstate[6];           /* "" when no error */
    bool pipelined;             /* answered together with other pipelined Executes */
    bool suspended;             /* ended by PortalSuspended (a fetch-size cursor) */
    bool standard_strings;      /* the server's standard_conforming_strings when it ran */
    pgp_track_memo_t *memo;     /* the statement's memo (never NULL; writable by the consumer) */
} pgp_track_event_t;

typedef void (*pgp_track_event_cb)(void *ud, const pgp_track_event_t *ev);

/* Counters of what the tracker could not follow. */
typedef struct pgp_track_stats {
    uint64_t events;
    uint64_t dropped;           /* observations given up (FIFO or map full, desync) */
    uint64_t desyncs;           /* times the FIFO no longer matched the server */
} pgp_track_stats_t;

typedef struct pgp_track pgp_track_t;

/*
 * Create a tracker for one session.  max_sql_bytes caps captured SQL per
 * statement.  cb/ud receive events (loop thread, synchronously from the
 * frame callbacks).  Returns owned (free with pgp_track_destroy) or NULL
 * when out of memory.
 */
pgp_track_t *pgp_track_create(size_t max_sql_bytes, pgp_track_event_cb cb, void *ud);
void pgp_track_destroy(pgp_track_t *t);

/* Whether and how Execute events summarize their Bind parameters (default off). */
void pgp_track_set_params(pgp_track_t *t, pgp_track_params_t mode);

/* Stamp the chunk about to be fed (the time it was read). */
void pgp_track_set_now(pgp_track_t *t, uint64_t now_ticks);

/* Frame observers to pass to pgp_framer_feed, with the tracker as ud. */
extern const pgp_frame_ops_t pgp_track_client_ops;
extern const pgp_frame_ops_t pgp_track_server_ops;

/* The application_name last reported by the server (ParameterStatus); "" if none. */
const char *pgp_track_application_name(const pgp_track_t *t);
/* The server's standard_conforming_strings (true unless it reported "off"). */
bool pgp_track_standard_strings(const pgp_track_t *t);
void pgp_track_get_stats(const pgp_track_t *t, pgp_track_stats_t *out);

#endif
