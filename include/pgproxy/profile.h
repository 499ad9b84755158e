/*
 * profile.h - request profiles (DESIGN §4.4): a per-connection profiler
 * that groups one session's statements into requests, and the finished,
 * immutable, refcounted profile with its renderings (to_header, to_dict
 * JSON, collapsed stacks) and N+1 findings (nplus1.h).
 *
 * Grouping, first match wins per statement: (1) the trace id of a valid
 * `traceparent` tag (00-<32 hex>-<16 hex>-<2 hex>, ids not all zero; hex
 * of either case, the key is lower-cased);
 * (2) a `request_id` / `x_request_id` tag; (3) the session marker `SET
 * [LOCAL|SESSION] pgproxy.request_id = '…'` / `TO …` (the SET belongs to
 * the new request; sticky until changed, `SET … TO DEFAULT` / '' /
 * `RESET pgproxy.request_id` / `RESET ALL` / `DISCARD ALL`; a LOCAL one
 * ends at COMMIT/ROLLBACK or ReadyForQuery 'I'); (4) inferred from the
 * endpoint tags (route, controller+action, job).  A statement without any
 * of these joins the open request, or starts an inferred one.  An open
 * request that so far holds only transaction control and SET/RESET/SHOW/
 * DISCARD statements (typically a BEGIN) adopts the key of the next
 * statement instead of being split from it; an inferred request without
 * endpoint tags adopts the first endpoint that comes.  A request closes
 * when the key (or the endpoint of an inferred one) changes, after the
 * RESET/DISCARD or transaction end that ends its session marker, when idle
 * for >= request_gap_ns (pgp_profiler_tick, and checked at every record:
 * so a BEGIN after an idle gap starts a new request), and at destroy.
 * SET pgproxy.request_id inside a multi-statement simple query is not
 * seen (kind MULTI).
 *
 * Bounded capture (Redis slowlog): at most max_events events per request
 * (later ones counted in events_dropped, still counted in sql_count,
 * sql_total_ns and the per-fingerprint counts), texts copied into a
 * per-request arena of max_text_bytes: raw SQL and params summaries stop
 * being copied once 3/4 of it is used (the last quarter is kept for
 * normalized texts of new fingerprints), identical normalized texts are
 * stored once; an event whose text was not kept has text_truncated and
 * the bytes not kept are counted in text_dropped_bytes.  The N+1 rules run
 * over the kept events only (a finding's count and total_ns are then
 * raised to the per-fingerprint totals of the whole request).  Distinct
 * fingerprints counted per request: min(max_events,
 * PGP_PROFILE_MAX_FINGERPRINTS); the time of the others shows as one
 * `sql;(other)` stack.  Memory of one request: about 2 KB fixed (tags,
 * names), max_events * sizeof(pgp_profile_event_t) (96 bytes), the text
 * arena (max_text_bytes, in chunks of at most 4 KiB or one text), and
 * 40 bytes per counting slot (2 per fingerprint): about 245 KB for 1000
 * events and 64 KiB of text.
 *
 * Threads: a profiler belongs to its session's loop thread.  A finished
 * profile is immutable; its refcount is atomic, so any thread holding a
 * ref may read and render it.  Leaf module: no libuv, no clock reads.
 */
#ifndef PGPROXY_PROFILE_H
#define PGPROXY_PROFILE_H

#include "pgproxy/nplus1.h"
#include "pgproxy/normalize.h"
#include "pgproxy/render.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef PGP_MUST_CHECK
#define PGP_MUST_CHECK __attribute__((warn_unused_result))
#endif

#define PGP_PROFILE_REQUEST_ID_MAX 128   /* bytes of a request id kept (cut beyond) */
#define PGP_PROFILE_LABEL_MAX 256        /* bytes of a label kept */
#define PGP_PROFILE_NAME_MAX 64          /* database, user, application_name, client_addr */
#define PGP_PROFILE_MAX_EVENTS_LIMIT 1000000u
#define PGP_PROFILE_MAX_FINGERPRINTS 4096u /* distinct fingerprints counted per request */

typedef enum pgp_params_mode { PGP_PARAMS_OFF = 0, PGP_PARAMS_TYPES, PGP_PARAMS_VALUES } pgp_params_mode_t;

typedef enum pgp_profile_source {
    PGP_PROFILE_SOURCE_TRACEPARENT = 0,
    PGP_PROFILE_SOURCE_REQUEST_ID,
    PGP_PROFILE_SOURCE_SESSION,
    PGP_PROFILE_SOURCE_INFERRED,
} pgp_profile_source_t;

typedef struct pgp_profile pgp_profile_t;
typedef struct pgp_profiler pgp_profiler_t;
typedef pgp_nplus1_event_t pgp_profile_event_t;

/* One statement; every pointer borrowed for the duration of pgp_profiler_record. */
typedef struct pgp_profile_stmt {
    uint64_t start_ns, end_ns;        /* monotonic nanoseconds, end_ns >= start_ns */
    uint64_t start_wall_ns;           /* Unix epoch ns of start_ns */
    const char *sql; size_t sql_len;  /* captured SQL text (raw, may contain anything) */
    bool sql_truncated;
    const char *normalized; size_t normalized_len;
    uint64_t fingerprint;
    uint64_t values_hash;             /* equal parameter/literal values <=> equal hash */
    pgp_norm_kind_t kind;             /* statement kind from the normalizer */
    bool set_local;                   /* SET LOCAL */
    const char *name; size_t name_len;/* SET/RESET/DISCARD parameter name as written; len 0 when none */
    const pgp_norm_tags_t *tags;      /* tags from the statement's comments, NULL when none */
    const char *params_summary; size_t params_summary_len; /* NULL if none */
    uint64_t rows;
    const char *sqlstate;             /* "" (or NULL) when ok, else 5 chars */
    bool pipelined;
    const char *application_name;     /* the session's current one, "" (or NULL) if none */
} pgp_profile_stmt_t;

typedef struct pgp_profile_config {
    uint64_t request_gap_ns;          /* profiling.request_gap_ms; 0 = never split on idle */
    uint32_t n_plus_one_threshold;    /* >= 2 (smaller acts as 2) */
    uint32_t max_events;              /* events kept per request, 1 .. PGP_PROFILE_MAX_EVENTS_LIMIT */
    size_t max_text_bytes;            /* text arena per request */
    pgp_params_mode_t params;         /* off: no params copied, no examples in findings */
    const uint64_t *ignore_fingerprints; size_t ignore_count;  /* borrowed, copied by the profiler */
} pgp_profile_config_t;

/* Called with a finished profile; the callee takes ownership of one ref.  Loop thread. */
typedef void (*pgp_profile_finish_cb)(void *ud, pgp_profile_t *profile);

/* ---- profiler (the session's loop thread) ------------------------------- */

/*
 * A profiler for one client session.  cfg, database, user, client_addr
 * borrowed (copied; NULL = "").  cb (not NULL) receives each finished
 * profile.  Returns owned (free with pgp_profiler_destroy), or NULL when
 * out of memory.
 */
pgp_profiler_t *pgp_profiler_create(const pgp_profile_config_t *cfg, uint64_t session_id,
                                    const char *database, const char *user,
                                    const char *client_addr, pgp_profile_finish_cb cb, void *ud);

/* Finishes the open request (cb called), then frees p.  NULL is a no-op. */
void pgp_profiler_destroy(pgp_profiler_t *p);

/*
 * New configuration (SIGHUP), cfg borrowed (copied).  max_events and
 * max_text_bytes apply from the next request on; the gap, threshold,
 * params mode and ignore list at once (the rules run at finish).  If the
 * ignore list cannot be copied (out of memory), the old one stays.
 */
void pgp_profiler_set_config(pgp_profiler_t *p, const pgp_profile_config_t *cfg);

/*
 * Attributes one finished statement (st borrowed) to a request, opening
 * or closing requests as the grouping rules say (cb may be called, more
 * than once).  Never fails: when memory runs out the statement is counted
 * but not kept as an event (or, if no profile could be allocated, lost).
 */
void pgp_profiler_record(pgp_profiler_t *p, const pgp_profile_stmt_t *st);

/* Every ReadyForQuery ('I', 'T', 'E'); 'I' ends a SET LOCAL marker. */
void pgp_profiler_note_ready(pgp_profiler_t *p, char txn_status, uint64_t now_ns);

/* Closes the open request when idle (now_ns - its last statement end) >= request_gap_ns. */
void pgp_profiler_tick(pgp_profiler_t *p, uint64_t now_ns);

/* True while a request is open (the session runs its idle timer only then). */
bool pgp_profiler_has_open(const pgp_profiler_t *p);

/*
 * The request id / label of the request the last recorded statement was
 * attributed to: borrowed, valid until the next call on p.  The id is
 * NULL for an inferred request or before any statement; the label NULL
 * before any statement.
 */
const char *pgp_profiler_current_request_id(const pgp_profiler_t *p);
const char *pgp_profiler_current_label(const pgp_profiler_t *p);

/* ---- finished profiles (any thread holding a ref) ----------------------- */

/* Takes one more ref on p (the caller must already hold one).  Any thread. */
void pgp_profile_ref(pgp_profile_t *p);
/* Drops one ref; the last one frees the profile.  NULL is a no-op.  Any thread. */
void pgp_profile_unref(pgp_profile_t *p);

uint64_t pgp_profile_id(const pgp_profile_t *p);
uint64_t pgp_profile_session_id(const pgp_profile_t *p);
uint64_t pgp_profile_total_ns(const pgp_profile_t *p);
uint64_t pgp_profile_sql_total_ns(const pgp_profile_t *p);
uint64_t pgp_profile_app_ns(const pgp_profile_t *p);
uint64_t pgp_profile_start_wall_ns(const pgp_profile_t *p);
uint32_t pgp_profile_sql_count(const pgp_profile_t *p);
uint32_t pgp_profile_events_dropped(const pgp_profile_t *p);
uint64_t pgp_profile_text_dropped_bytes(const pgp_profile_t *p);
uint32_t pgp_profile_finding_count(const pgp_profile_t *p);
bool pgp_profile_inferred(const pgp_profile_t *p);
pgp_profile_source_t pgp_profile_source(const pgp_profile_t *p);
/* "traceparent", "request_id", "session" or "inferred" (static). */
const char *pgp_profile_source_name(pgp_profile_source_t source);
/* Borrowed, valid while the caller holds a ref.  request_id is NULL for inferred requests. */
const char *pgp_profile_label(const pgp_profile_t *p);
const char *pgp_profile_request_id(const pgp_profile_t *p);
const pgp_norm_tags_t *pgp_profile_tags(const pgp_profile_t *p);
/* The kept events (*n of them, in order) and the findings: borrowed while a ref is held. */
const pgp_profile_event_t *pgp_profile_events(const pgp_profile_t *p, size_t *n);
const pgp_nplus1_finding_t *pgp_profile_findings(const pgp_profile_t *p, size_t *n);
/* Executions of fingerprint fp in the whole request (dropped events included; 0 if unknown). */
uint32_t pgp_profile_fingerprint_count(const pgp_profile_t *p, uint64_t fp);

/*
 * The NoticeResponse text for profiling.notify_client about the first
 * finding, e.g. `pgproxy: N+1 query detected in request users#index: 12
 * executions of "SELECT … WHERE id = ?"` (duplicate: "duplicate query
 * detected", batchable: "batchable writes detected"); the normalized text
 * is cut at 200 bytes with "…".  Returns false (out = "" when cap > 0)
 * when there is no finding.  out: cap bytes, NUL-terminated, cut at cap
 * on a UTF-8 boundary, invalid UTF-8 and control bytes shown as '?'.
 */
bool pgp_profile_notice_text(const pgp_profile_t *p, char *out, size_t cap);

/*
 * Renderings into r (borrowed).  They return pgp_render_error(r) after
 * writing (0 or a PGP_RENDER_E*).
 *  - header: `total=1.2ms sql=0.3ms(2q) app=0.9ms n+1=1` (n+1 = findings);
 *  - json: the to_dict object (DESIGN §4.4; see pgp_profile_render_finding_json);
 *  - collapsed: `request;<label>;sql;<normalized> <ns>` per fingerprint
 *    (its first kept normalized text, or its 16 hex digits when no text
 *    was kept; the time of every execution, dropped events included;
 *    first-seen order), `request;<label>;sql;(other) <ns>` for fingerprints
 *    beyond the counting table, then `request;<label>;app <app_ns>`, one
 *    line each, frames escaped as pgp_profile_render_frame.
 */
PGP_MUST_CHECK int pgp_profile_render_header(const pgp_profile_t *p, pgp_render_t *r);
PGP_MUST_CHECK int pgp_profile_render_json(const pgp_profile_t *p, pgp_render_t *r);
PGP_MUST_CHECK int pgp_profile_render_collapsed(const pgp_profile_t *p, pgp_render_t *r);

/*
 * The finding JSON object: {"type","fingerprint","normalized","count",
 * "distinct_values","longest_run","total_ns","source_fingerprint",
 * "source_normalized","source_rows","examples" (only when examples were
 * kept, i.e. params != off),"estimated_saving_ns"}.  Written as a value
 * (in an array, or after a key).  f borrowed.
 */
void pgp_profile_render_finding_json(const pgp_nplus1_finding_t *f, pgp_render_t *r);
/* The same members without the braces, into an object the caller has begun. */
void pgp_profile_render_finding_fields(const pgp_nplus1_finding_t *f, pgp_render_t *r);

/*
 * One collapsed-stack frame text: ';' becomes ':', tab/CR/LF and other
 * control bytes a space, invalid UTF-8 U+FFFD.
 */
void pgp_profile_render_frame(pgp_render_t *r, const char *s, size_t n);

/* Human duration: "850ns", "12.3us", "1.2ms", "3.40s". */
void pgp_profile_render_duration(pgp_render_t *r, uint64_t ns);

/* ISO-8601 UTC with milliseconds: "2026-11-26T00:58:34.123Z". */
void pgp_profile_render_iso_time(pgp_render_t *r, uint64_t wall_ns);

/*
 * Calls cb once per collapsed-stack line of p (the frames text, escaped,
 * without the count; borrowed for the call, not NUL-terminated) with its
 * nanoseconds.  Returns 0, a render error, or what cb returned when not 0
 * (iteration stops).
 */
typedef int (*pgp_profile_stack_cb)(void *ud, const char *frames, size_t len, uint64_t ns);
PGP_MUST_CHECK int pgp_profile_foreach_stack(const pgp_profile_t *p, pgp_profile_stack_cb cb,
                                             void *ud);

#endif
