/*
 * slowlog.h - the slow-query log (DESIGN §5, §6, §7): a bounded queue
 * between the relay loops and a writer thread that persists slow
 * statements into the table hyper_slow_queries of an sqlite3 file or a
 * PostgreSQL database, plus an in-memory ring of the most recent ones for
 * /debug/slow-queries.
 *
 * The relay side (pgp_slowlog_submit) never blocks on I/O: it copies the
 * record into one allocation (capped), takes a mutex for an O(1) append
 * and returns; a full queue drops the record and counts it.  All sqlite3
 * and libpq calls happen on the writer thread, which writes in batches of
 * up to batch_size records per transaction, retries with exponential
 * backoff (retry_initial_ms doubling to retry_max_ms) while the sink is
 * down, keeps the failed batch queued (not lost, not duplicated), and
 * after 3 failed attempts of one batch writes its records one by one,
 * dropping (and counting) only those the store rejects as data errors
 * (PostgreSQL classes 22, 23, 54; sqlite CONSTRAINT/TOOBIG/MISMATCH) or
 * that fail 5 writes in a row on an open connection (so no record can
 * wedge the queue forever).
 * Every prune_interval_ms at most, and once at destroy, rows beyond
 * retention_rows are deleted, oldest (lowest id) first.
 *
 * Memory: at most queue_size queued records plus recent_size ring entries
 * (shared when both hold the same record), each at most
 * max_sql_bytes + 15 (marker) + normalized (capped at max_sql_bytes)
 * + 1 KiB params + 8 x 256 names + ~200 bytes.
 *
 * Threads: submit, get_stats, render_recent and clear_recent from any
 * thread; create and destroy from one owner thread (main).
 */
#ifndef PGPROXY_SLOWLOG_H
#define PGPROXY_SLOWLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgproxy/render.h"

#ifndef PGP_MUST_CHECK
#define PGP_MUST_CHECK __attribute__((warn_unused_result))
#endif

#define PGP_SLOWLOG_DEFAULT_QUEUE_SIZE 10000u
#define PGP_SLOWLOG_MAX_QUEUE_SIZE (1u << 24)
#define PGP_SLOWLOG_DEFAULT_MAX_SQL_BYTES 16384u
#define PGP_SLOWLOG_DEFAULT_RECENT_SIZE 200u
#define PGP_SLOWLOG_MAX_RECENT_SIZE 100000u
#define PGP_SLOWLOG_DEFAULT_BATCH_SIZE 100u
#define PGP_SLOWLOG_MAX_BATCH_SIZE 1000u
#define PGP_SLOWLOG_PARAMS_BYTES 1024u      /* params_summary cap */
#define PGP_SLOWLOG_NAME_BYTES 255u         /* cap of names, ids, labels, sqlstate */
#define PGP_SLOWLOG_TRUNC_MARKER "\xe2\x80\xa6[truncated]"   /* "…[truncated]" */
#define PGP_SLOWLOG_LINGER_MS 200u            /* a record waits this long for a batch to fill */
#define PGP_SLOWLOG_ATTEMPTS_BEFORE_SINGLE 3u   /* failed writes of one batch, then one by one */
#define PGP_SLOWLOG_MAX_RECORD_ATTEMPTS 5u      /* one by one: a record failing this often is dropped */

typedef struct pgp_slowlog pgp_slowlog_t;

typedef enum pgp_slowlog_sink_kind {
    PGP_SLOWLOG_NONE = 0,
    PGP_SLOWLOG_SQLITE,
    PGP_SLOWLOG_POSTGRES
} pgp_slowlog_sink_kind_t;

typedef struct pgp_slowlog_config {
    pgp_slowlog_sink_kind_t sink;
    const char *sqlite_path;       /* slow_log.sqlite_path (copied) */
    const char *dsn;               /* slow_log.dsn, libpq conninfo or URL (copied) */
    size_t queue_size;             /* slow_log.queue_size: records waiting; overflow dropped+counted (0 = 10000) */
    uint64_t retention_rows;       /* slow_log.retention_rows: prune oldest beyond this (0 = never) */
    size_t max_sql_bytes;          /* profiling.max_sql_bytes: sql_text capped, with a marker (0 = 16384) */
    const char *proxy_instance;    /* e.g. "hostname:6433" (copied; NULL -> SQL NULL) */
    size_t recent_size;            /* in-memory ring for /debug/slow-queries (0 = 200) */
    /* Tuning, zero = default (not config keys; tests shorten them). */
    size_t batch_size;             /* records per transaction (0 = 100, max 1000) */
    uint64_t retry_initial_ms;     /* first backoff after a sink failure (0 = 100) */
    uint64_t retry_max_ms;         /* backoff ceiling (0 = 10000) */
    uint64_t prune_interval_ms;    /* retention check at most this often (0 = 10000) */
} pgp_slowlog_config_t;

/* One slow statement; every pointer borrowed for the call (strings NUL-terminated unless a length
 * is given; NULL -> SQL NULL). */
typedef struct pgp_slow_record {
    const char *sql_text; size_t sql_len; bool sql_truncated;   /* raw SQL as captured */
    double duration_ms;
    const char *params_summary; size_t params_summary_len;      /* NULL -> NULL */
    uint64_t wall_ns;                                           /* statement start, Unix epoch ns -> "timestamp" (0 = now) */
    uint64_t fingerprint;                                       /* -> 16 lowercase hex digits */
    const char *normalized_sql; size_t normalized_len;          /* NULL -> NULL */
    const char *database_name, *user_name, *application_name, *client_addr;
    uint64_t session_id;
    const char *request_id, *request_label;
    int64_t rows;                                               /* -1 -> NULL */
    const char *sqlstate;                                       /* "" or NULL -> NULL */
} pgp_slow_record_t;

typedef struct pgp_slowlog_stats {
    uint64_t submitted_total;   /* slow statements seen (pgproxy_slow_queries_total) */
    uint64_t queue_depth;       /* waiting now, the batch being written included (pgproxy_slow_log_queue_depth) */
    uint64_t written_total;     /* committed by the sink (pgproxy_slow_log_written_total) */
    uint64_t dropped_total;     /* queue overflow + given up (pgproxy_slow_log_dropped_total) */
    uint64_t sink_errors_total; /* failed attempts (connect/insert) */
    bool sink_up;               /* last attempt succeeded */
    char last_error[256];       /* "" when none */
} pgp_slowlog_stats_t;

/*
 * Create the slow log.  cfg borrowed (strings copied).  Returns owned
 * (free with pgp_slowlog_destroy) or NULL with a message in err (cap
 * errcap): empty sqlite_path/dsn for the chosen sink, unknown sink kind,
 * queue_size or recent_size above their maxima, out of memory, thread
 * creation failure.  Starts the writer thread (not for sink NONE).
 * Opening/ensure_table happen on that thread and are retried with backoff:
 * a sink that is down at start is not an error.  Main thread.
 */
pgp_slowlog_t *pgp_slowlog_create(const pgp_slowlog_config_t *cfg, char *err, size_t errcap)
    PGP_MUST_CHECK;

/*
 * Record one slow statement.  rec borrowed (every pointer valid during the
 * call only).  Any thread; never blocks on I/O (a short mutex only).
 * Copies what it keeps (one allocation), capped: sql_text at max_sql_bytes
 * + PGP_SLOWLOG_TRUNC_MARKER (also appended when rec->sql_truncated),
 * cut on a UTF-8 boundary; normalized_sql at max_sql_bytes; params_summary
 * at 1 KiB; names 255 bytes.  Adds to the recent ring too (also with sink
 * NONE).  Returns false when the record was dropped (queue full, out of
 * memory, log shutting down), counted in dropped_total.
 */
bool pgp_slowlog_submit(pgp_slowlog_t *log, const pgp_slow_record_t *rec);

/* Copy the counters into *out.  Any thread. */
void pgp_slowlog_get_stats(pgp_slowlog_t *log, pgp_slowlog_stats_t *out);

/*
 * Flush and free: waits until everything queued before the call is written
 * or flush_timeout_ms passes (then the rest is counted as dropped), prunes
 * once when it finished in time, stops the thread, frees.  A sink call in
 * progress at the deadline is waited for (bounded by the sinks' defaults:
 * PostgreSQL connect_timeout 5 s, statement_timeout 30 s, tcp_user_timeout
 * 30 s; sqlite busy_timeout 5 s).  SIGTERM path.  Main thread.  NULL ok.
 */
void pgp_slowlog_destroy(pgp_slowlog_t *log, uint64_t flush_timeout_ms);

/*
 * Append to r a JSON array of the recent ring, newest first, at most
 * `limit` entries (0 = all): [{"sql","duration_ms","timestamp"(ISO-8601
 * UTC ms),"fingerprint","normalized","database","user","application_name",
 * "client_addr","session_id","request_id","request_label","rows",
 * "sqlstate","params"}]; absent values are null.  Text is made valid
 * UTF-8 by render.h.  The ring lock is held only to take references.
 * Returns pgp_render_error(r), or PGP_RENDER_ENOMEM (r untouched) when the
 * reference array cannot be allocated.  Any thread (the admin thread).
 */
int pgp_slowlog_render_recent(pgp_slowlog_t *log, size_t limit, pgp_render_t *r) PGP_MUST_CHECK;

/* Clear the recent ring (RESET STATS); counters keep going.  Any thread. */
void pgp_slowlog_clear_recent(pgp_slowlog_t *log);

#endif
