/*
 * observe.h - what pgproxy learns from the statements it sees.
 *
 * The observer turns query events from every session's tracker into
 * per-fingerprint digests (normalized once per prepared statement), global
 * counters and the query-duration histogram, and renders them for the
 * admin surfaces.  Recording runs on the loop thread; rendering runs on
 * the admin thread and reads consistent copies (the digest table has its
 * own lock; counters are atomics).  It never touches relayed bytes.
 */
#ifndef PGPROXY_OBSERVE_H
#define PGPROXY_OBSERVE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "pgproxy/profile.h"
#include "pgproxy/registry.h"
#include "pgproxy/slowlog.h"
#include "pgproxy/store.h"
#include "pgproxy/track.h"

/* Digest entries kept: (database, user, fingerprint) triples; least recently seen evicted. */
#define PGP_OBSERVE_MAX_FINGERPRINTS 5000u

typedef struct pgp_observer pgp_observer_t;
typedef struct pgp_render pgp_render_t;

/* Who ran the statement (borrowed for the call). */
typedef struct pgp_observe_ctx {
    uint64_t session_id;
    const char *database;
    const char *user;
    const char *application_name;
    const char *client_addr;
    pgp_profiler_t *profiler;   /* the session's request profiler, or NULL */
    pgp_conn_entry_t *conn;     /* the session's registry entry, or NULL */
} pgp_observe_ctx_t;

/* Connection-level gauges and counters the relay keeps (atomics, any thread reads). */
typedef struct pgp_observe_conn_stats {
    _Atomic uint64_t client_connections;   /* gauge: live client sessions */
    _Atomic uint64_t server_connections;   /* gauge: live upstream connections */
    _Atomic uint64_t connections_total;    /* accepted client connections */
    _Atomic uint64_t connections_refused;  /* refused: over proxy.max_client_connections */
    _Atomic uint64_t bytes_client_to_server;
    _Atomic uint64_t bytes_server_to_client;
    /* TLS handshakes: [0 client hop, 1 server hop][0 ok, 1 error]. */
    _Atomic uint64_t tls_handshakes[2][2];
} pgp_observe_conn_stats_t;

/*
 * Create an observer.  max_sql_bytes caps the normalized text kept per
 * digest entry; max_entries bounds the digest table.  Returns owned (free
 * with pgp_observer_destroy) or NULL when out of memory.
 */
pgp_observer_t *pgp_observer_create(size_t max_sql_bytes, size_t max_entries);
void pgp_observer_destroy(pgp_observer_t *o);

/* The connection counters (owned by the observer, updated by the relay). */
pgp_observe_conn_stats_t *pgp_observer_conn_stats(pgp_observer_t *o);

/* Add to a counter that only the calling (loop) thread writes: no locked instruction. */
static inline void pgp_observe_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* Record one event (loop thread).  Normalizes on the statement's first event only. */
void pgp_observer_record(pgp_observer_t *o, const pgp_observe_ctx_t *ctx,
                         const pgp_track_event_t *ev);

/*
 * Where finished profiles, slow statements and live sessions go (all
 * borrowed, may be NULL, must outlive the observer's use; call before the
 * first record).  Main thread.
 */
void pgp_observer_attach(pgp_observer_t *o, pgp_profile_store_t *store, pgp_slowlog_t *slowlog,
                         pgp_registry_t *registry);
pgp_profile_store_t *pgp_observer_store(pgp_observer_t *o);
pgp_slowlog_t *pgp_observer_slowlog(pgp_observer_t *o);
pgp_registry_t *pgp_observer_registry(pgp_observer_t *o);

/* profiling.slow_query_threshold_ms, in ns (SIGHUP may change it; any thread). */
void pgp_observer_set_slow_threshold_ns(pgp_observer_t *o, uint64_t ns);

/*
 * A session's profiler finished a request: keep it in the store (which
 * takes its own reference), count it for the session.  Takes ownership of
 * the caller's reference.  Loop thread.
 */
void pgp_observer_profile_finished(pgp_observer_t *o, pgp_conn_entry_t *conn, pgp_profile_t *p);

/* Statements observed since start (or the last reset). */
uint64_t pgp_observer_queries_total(pgp_observer_t *o);

/* Count an observation given up by a tracker (any thread). */
void pgp_observer_count_dropped(pgp_observer_t *o, uint64_t n);

/* Renderers for the admin thread; return 0 or -1 when the output overflowed. */
__attribute__((warn_unused_result)) int pgp_observer_render_metrics(pgp_observer_t *o,
                                                                    pgp_render_t *out);
/* order: "total", "mean" or "calls"; limit >= 1. */
__attribute__((warn_unused_result)) int pgp_observer_render_queries(pgp_observer_t *o,
                                                                    const char *order,
                                                                    size_t limit,
                                                                    pgp_render_t *out);

/* The top `limit` digests as a bare JSON array (the dashboard's top_queries). */
__attribute__((warn_unused_result)) int pgp_observer_render_top(pgp_observer_t *o,
                                                                const char *order, size_t limit,
                                                                pgp_render_t *out);
/* {"buckets":[{"le_ms","count"(cumulative)},…,{"le_ms":null,"count"}],"count","sum_ms"}. */
__attribute__((warn_unused_result)) int pgp_observer_render_histogram(pgp_observer_t *o,
                                                                      pgp_render_t *out);

/*
 * SHOW STATS: one JSON object of counters (statements, errors, requests,
 * findings and slow queries since the last reset; connections, bytes and
 * slow-log state since start).  Any thread.
 */
__attribute__((warn_unused_result)) int pgp_observer_render_stats(pgp_observer_t *o,
                                                                  pgp_render_t *out);

/*
 * RESET STATS: empty the digests, the profile store and the recent slow
 * queries, and start SHOW STATS' counts from zero.  The Prometheus
 * counters keep counting (they are monotonic by contract).  Any thread.
 */
void pgp_observer_reset_stats(pgp_observer_t *o);

#endif
