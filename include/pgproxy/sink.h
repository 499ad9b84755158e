/*
 * sink.h - the internal interface between the slow-query log (slowlog.c)
 * and its storage back ends: sink_sqlite.c (embedded sqlite3 file) and
 * sink_pg.c (a PostgreSQL table through libpq).
 *
 * A sink is driven by exactly one thread, the slow-log writer thread, and
 * its calls block (file I/O, network round trips): never call them from an
 * event loop.  The cycle is open (connect + ensure_table) -> write_batch /
 * prune ... -> close, and again open after a failure; free releases it.
 * Both sinks store DESIGN §5's table hyper_slow_queries with the same
 * columns.  Values are always bound as parameters, never spliced into SQL.
 *
 * Records are the slow log's owned copies (pgp_sink_record_t): the sink
 * borrows them for the duration of a call and never keeps a pointer.
 * Deliberately not here: queueing, retry timing, counters (slowlog.c).
 */
#ifndef PGPROXY_SINK_H
#define PGPROXY_SINK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef PGP_MUST_CHECK
#define PGP_MUST_CHECK __attribute__((warn_unused_result))
#endif

#define PGP_SINK_EDOWN  (-1)   /* transient: cannot connect/open, I/O, lost connection, busy */
#define PGP_SINK_EDATA  (-2)   /* the values themselves were rejected (PG class 22/23/54; sqlite
                                  CONSTRAINT/TOOBIG/MISMATCH/RANGE); the connection is fine */
#define PGP_SINK_ENOMEM (-3)   /* allocation failed (treated as transient) */

#define PGP_SINK_ERROR_BYTES 256u
#define PGP_SINK_TABLE "hyper_slow_queries"

/*
 * One slow statement as the slow log keeps it: a single allocation holding
 * this struct and every string (NUL-terminated, lengths given for those
 * that may be long).  NULL string = SQL NULL.  rows < 0 = NULL.
 * Shared between the queue and the recent ring by reference count.
 */
typedef struct pgp_sink_record {
    atomic_uint refs;
    const char *sql_text;
    size_t sql_len;
    double duration_ms;
    const char *params_summary;     /* NULL -> NULL */
    size_t params_summary_len;
    uint64_t wall_ns;               /* statement start, Unix epoch ns */
    uint64_t fingerprint;           /* stored as 16 lowercase hex digits */
    const char *normalized_sql;     /* NULL -> NULL */
    size_t normalized_len;
    const char *database_name, *user_name, *application_name, *client_addr;
    uint64_t session_id;
    const char *request_id, *request_label;
    int64_t rows;
    const char *sqlstate;           /* NULL -> NULL (never "") */
} pgp_sink_record_t;

typedef struct pgp_sink pgp_sink_t;

typedef struct pgp_sink_ops {
    const char *name;   /* "sqlite", "postgres" */
    /* Connect/open and ensure_table (idempotent).  0, PGP_SINK_EDOWN or _ENOMEM. */
    int (*open)(pgp_sink_t *s);
    /* Insert recs[0..n) in one transaction: all rows or none.  0 or PGP_SINK_E*. */
    int (*write_batch)(pgp_sink_t *s, pgp_sink_record_t *const *recs, size_t n);
    /* Delete all but the newest keep_rows rows (by id).  0 or PGP_SINK_E*. */
    int (*prune)(pgp_sink_t *s, uint64_t keep_rows);
    /* Disconnect/close; open may be called again.  Idempotent. */
    void (*close)(pgp_sink_t *s);
    /* close + free the sink itself. */
    void (*free)(pgp_sink_t *s);
} pgp_sink_ops_t;

/* The common head of every sink; implementations embed it first. */
struct pgp_sink {
    const pgp_sink_ops_t *ops;
    bool is_open;
    char last_error[PGP_SINK_ERROR_BYTES];   /* "" when none; set by the failing call */
};

/*
 * Create a sink (nothing is opened yet).  Strings are copied.  `path` /
 * `dsn` must be non-empty; `proxy_instance` may be NULL (stored as NULL).
 * Returns owned (free with s->ops->free) or NULL when out of memory.
 */
pgp_sink_t *pgp_sink_sqlite_new(const char *path, const char *proxy_instance) PGP_MUST_CHECK;
pgp_sink_t *pgp_sink_pg_new(const char *dsn, const char *proxy_instance) PGP_MUST_CHECK;

/*
 * Format wall_ns (Unix epoch ns) as UTC ISO-8601 into out (>= 32 bytes):
 * "YYYY-MM-DDTHH:MM:SS.mmmZ" (millis, sqlite and JSON) or, with micros,
 * "YYYY-MM-DD HH:MM:SS.uuuuuu+00" (PostgreSQL timestamptz input).
 * Returns the length written (without the NUL).
 */
size_t pgp_sink_format_time(uint64_t wall_ns, bool pg_micros, char *out, size_t cap);

/* 16 lowercase hex digits + NUL into out[17]. */
void pgp_sink_format_fingerprint(uint64_t fp, char out[17]);

/* Set s->last_error to "<what>: <detail>" (detail may be NULL; newlines folded). */
void pgp_sink_set_error(pgp_sink_t *s, const char *what, const char *detail);

#endif
