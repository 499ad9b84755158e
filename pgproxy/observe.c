/*
 * observe.c - query events into digests, counters and the duration
 * histogram; the /metrics and /debug/queries renderings.
 *
 * Recording happens on the loop thread, once per statement execution:
 * convert the tick interval to nanoseconds, look up (or compute, once per
 * prepared statement) the fingerprint and normalized text, and update the
 * digest table (which has its own short lock) and the counters (single
 * writer, relaxed atomics: the admin thread reads them without a lock).
 * Rendering happens on the admin thread from a digest snapshot.
 */
#include "pgproxy/observe.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgproxy/clock.h"
#include "pgproxy/digest.h"
#include "pgproxy/histogram.h"
#include "pgproxy/normalize.h"
#include "pgproxy/render.h"

#define PGP_OBSERVE_DIGEST_SQL_BYTES 4096u
#define MEMO_KIND_MASK 0xffu
#define MEMO_SET_LOCAL 0x100u

struct pgp_observer {
    pgp_digest_table_t *digests;
    pgp_profile_store_t *store;      /* borrowed, may be NULL */
    pgp_slowlog_t *slowlog;          /* borrowed, may be NULL */
    pgp_registry_t *registry;        /* borrowed, may be NULL */
    _Atomic uint64_t slow_ns;
    size_t max_sql_bytes;
    pgp_observe_conn_stats_t conn;
    _Atomic uint64_t queries_total;
    _Atomic uint64_t query_errors_total;
    _Atomic uint64_t observations_dropped_total;
    pgp_histogram_prom_t duration;   /* written by the loop thread only */
    /* SHOW STATS counts from the last RESET STATS: the counters' values then. */
    _Atomic uint64_t base_queries, base_errors, base_requests, base_findings, base_slow;
    _Atomic uint64_t reset_wall_ns;
};

pgp_observer_t *pgp_observer_create(size_t max_sql_bytes, size_t max_entries)
{
    pgp_observer_t *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->max_sql_bytes = max_sql_bytes;
    atomic_init(&o->slow_ns, UINT64_MAX);
    /* Digest texts are for reading, not replay: a few KiB each keeps the
     * table's bound near 30 MB at 5000 entries. */
    o->digests = pgp_digest_create(max_entries, max_sql_bytes < PGP_OBSERVE_DIGEST_SQL_BYTES
                                                    ? max_sql_bytes
                                                    : PGP_OBSERVE_DIGEST_SQL_BYTES);
    if (o->digests == NULL) {
        free(o);
        return NULL;
    }
    return o;
}

void pgp_observer_destroy(pgp_observer_t *o)
{
    if (o == NULL)
        return;
    pgp_digest_destroy(o->digests);
    free(o);
}

pgp_observe_conn_stats_t *pgp_observer_conn_stats(pgp_observer_t *o)
{
    return &o->conn;
}

void pgp_observer_attach(pgp_observer_t *o, pgp_profile_store_t *store, pgp_slowlog_t *slowlog,
                         pgp_registry_t *registry)
{
    o->store = store;
    o->slowlog = slowlog;
    o->registry = registry;
}

pgp_profile_store_t *pgp_observer_store(pgp_observer_t *o) { return o->store; }
pgp_slowlog_t *pgp_observer_slowlog(pgp_observer_t *o) { return o->slowlog; }
pgp_registry_t *pgp_observer_registry(pgp_observer_t *o) { return o->registry; }

void pgp_observer_set_slow_threshold_ns(pgp_observer_t *o, uint64_t ns)
{
    atomic_store_explicit(&o->slow_ns, ns, memory_order_relaxed);
}

uint64_t pgp_observer_queries_total(pgp_observer_t *o)
{
    return atomic_load_explicit(&o->queries_total, memory_order_relaxed);
}

void pgp_observer_profile_finished(pgp_observer_t *o, pgp_conn_entry_t *conn, pgp_profile_t *p)
{
    if (conn != NULL) {
        pgp_registry_conn_add(&conn->requests, 1);
        pgp_registry_conn_add(&conn->n_plus_one, pgp_profile_finding_count(p));
    }
    if (o->store != NULL)
        pgp_profile_store_push(o->store, p);
    pgp_profile_unref(p);
}

void pgp_observer_count_dropped(pgp_observer_t *o, uint64_t n)
{
    atomic_fetch_add_explicit(&o->observations_dropped_total, n, memory_order_relaxed);
}

/* Normalize the statement's SQL into its memo (once per prepared statement). */
static void memo_fill(pgp_observer_t *o, const pgp_track_event_t *ev)
{
    pgp_track_memo_t *m = ev->memo;
    size_t cap = ev->sql_len + PGP_NORMALIZE_MAX_GROWTH + 1;
    char *out = malloc(cap);
    pgp_norm_result_t res;
    pgp_norm_opts_t opts;
    pgp_norm_tags_t tags;
    memset(&opts, 0, sizeof(opts));
    /* With it off, the server reads backslash escapes in '...' too. */
    opts.standard_conforming_strings = ev->standard_strings;
    tags.count = 0;
    pgp_normalize(ev->sql, ev->sql_len, &opts, out, out ? cap : 0, &tags, &res);
    m->fingerprint = res.fingerprint;
    m->values_hash = res.values_hash;
    m->flags = (uint32_t)res.kind | (res.set_local ? MEMO_SET_LOCAL : 0u);
    m->name_off = (uint32_t)res.name_off;
    m->name_len = (uint32_t)res.name_len;
    /* Tags are rare and needed per event: keep a copy only when there are some. */
    if (tags.count > 0) {
        size_t used = offsetof(pgp_norm_tags_t, buf) + tags.buf_used;
        pgp_norm_tags_t *keep = malloc(sizeof(*keep));
        if (keep != NULL)
            memcpy(keep, &tags, used);
        m->consumer_data = keep;
    }
    m->normalized = out;
    m->normalized_len = out ? (uint32_t)(res.out_len < o->max_sql_bytes ? res.out_len
                                                                          : o->max_sql_bytes)
                            : 0;
    m->valid = true;
}

void pgp_observer_record(pgp_observer_t *o, const pgp_observe_ctx_t *ctx,
                         const pgp_track_event_t *ev)
{
    if (!ev->memo->valid)
        memo_fill(o, ev);
    const pgp_track_memo_t *m = ev->memo;
    uint64_t ns = pgp_clock_elapsed_ns((pgp_ticks_t){ ev->start_ticks },
                                       (pgp_ticks_t){ ev->end_ticks });
    bool error = ev->sqlstate[0] != '\0';

    pgp_observe_add(&o->queries_total, 1);
    if (error)
        pgp_observe_add(&o->query_errors_total, 1);
    pgp_histogram_prom_record(&o->duration, ns);

    pgp_digest_event_t de = {
        .database = ctx->database,
        .user = ctx->user,
        .fingerprint = m->fingerprint,
        .normalized = m->normalized ? m->normalized : "",
        .normalized_len = m->normalized_len,
        .duration_ns = ns,
        .rows = ev->rows,
        .error = error,
        .now_wall_ns = pgp_clock_to_wall_ns((pgp_ticks_t){ ev->end_ticks }),
    };
    pgp_digest_record(o->digests, &de);
    if (ctx->conn != NULL) {
        pgp_registry_conn_add(&ctx->conn->queries, 1);
        if (error)
            pgp_registry_conn_add(&ctx->conn->errors, 1);
    }
    /* Bind values and the literals in the text both tell executions apart. */
    uint64_t values = m->values_hash ^ (ev->params_hash * 0x9e3779b97f4a7c15ull);
    uint64_t start_ns = pgp_clock_to_ns((pgp_ticks_t){ ev->start_ticks });
    uint64_t start_wall_ns = pgp_clock_to_wall_ns((pgp_ticks_t){ ev->start_ticks });
    if (ctx->profiler != NULL) {
        pgp_profile_stmt_t st = {
            .start_ns = start_ns,
            .end_ns = start_ns + ns,
            .start_wall_ns = start_wall_ns,
            .sql = ev->sql,
            .sql_len = ev->sql_len,
            .sql_truncated = ev->sql_truncated,
            .normalized = de.normalized,
            .normalized_len = de.normalized_len,
            .fingerprint = m->fingerprint,
            .values_hash = values,
            .kind = (pgp_norm_kind_t)(m->flags & MEMO_KIND_MASK),
            .set_local = (m->flags & MEMO_SET_LOCAL) != 0,
            .name = m->name_len && m->name_off + m->name_len <= ev->sql_len
                        ? ev->sql + m->name_off : NULL,
            .name_len = m->name_off + m->name_len <= ev->sql_len ? m->name_len : 0,
            .tags = m->consumer_data,
            .params_summary = ev->params_summary,
            .params_summary_len = ev->params_summary_len,
            .rows = ev->rows,
            .sqlstate = ev->sqlstate,
            .pipelined = ev->pipelined,
            .application_name = ctx->application_name ? ctx->application_name : "",
        };
        pgp_profiler_record(ctx->profiler, &st);
    }
    if (ns >= atomic_load_explicit(&o->slow_ns, memory_order_relaxed) && o->slowlog != NULL) {
        char fp[17];
        pgp_fingerprint_format(m->fingerprint, fp);
        pgp_slow_record_t rec = {
            .sql_text = ev->sql,
            .sql_len = ev->sql_len,
            .sql_truncated = ev->sql_truncated,
            .duration_ms = (double)ns / 1e6,
            .params_summary = ev->params_summary,
            .params_summary_len = ev->params_summary_len,
            .wall_ns = start_wall_ns,
            .fingerprint = m->fingerprint,
            .normalized_sql = de.normalized,
            .normalized_len = de.normalized_len,
            .database_name = ctx->database,
            .user_name = ctx->user,
            .application_name = ctx->application_name,
            .client_addr = ctx->client_addr,
            .session_id = ctx->session_id,
            .request_id = ctx->profiler ? pgp_profiler_current_request_id(ctx->profiler) : NULL,
            .request_label = ctx->profiler ? pgp_profiler_current_label(ctx->profiler) : NULL,
            .rows = (int64_t)ev->rows,
            .sqlstate = ev->sqlstate,
        };
        (void)pgp_slowlog_submit(o->slowlog, &rec);
    }
}

/* ---- rendering (admin thread) ------------------------------------------- */

static uint64_t load(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static void metric(pgp_render_t *r, const char *name, const char *type, const char *help,
                   uint64_t v)
{
    pgp_render_prom_family(r, name, type, help);
    pgp_render_prom_sample_uint(r, name, NULL, 0, v);
}

int pgp_observer_render_metrics(pgp_observer_t *o, pgp_render_t *r)
{
    pgp_observe_conn_stats_t *c = &o->conn;
    metric(r, "pgproxy_client_connections", "gauge", "Client sessions open now.",
           load(&c->client_connections));
    metric(r, "pgproxy_server_connections", "gauge", "Upstream connections open now.",
           load(&c->server_connections));
    metric(r, "pgproxy_connections_total", "counter", "Client connections accepted.",
           load(&c->connections_total));
    metric(r, "pgproxy_connections_refused_total", "counter",
           "Client connections refused over proxy.max_client_connections.",
           load(&c->connections_refused));
    pgp_render_prom_family(r, "pgproxy_bytes_total", "counter", "Bytes relayed, by direction.");
    pgp_render_label_t l1 = { "direction", "client_to_server" };
    pgp_render_prom_sample_uint(r, "pgproxy_bytes_total", &l1, 1,
                                load(&c->bytes_client_to_server));
    pgp_render_label_t l2 = { "direction", "server_to_client" };
    pgp_render_prom_sample_uint(r, "pgproxy_bytes_total", &l2, 1,
                                load(&c->bytes_server_to_client));
    pgp_render_prom_family(r, "pgproxy_tls_handshakes_total", "counter",
                           "TLS handshakes, by hop (client: apps to pgproxy, server: pgproxy to "
                           "the upstream) and result.");
    static const char *const sides[2] = { "client", "server" };
    static const char *const results[2] = { "ok", "error" };
    for (int side = 0; side < 2; side++)
        for (int res = 0; res < 2; res++) {
            pgp_render_label_t l[2] = { { "side", sides[side] }, { "result", results[res] } };
            pgp_render_prom_sample_uint(r, "pgproxy_tls_handshakes_total", l, 2,
                                        load(&c->tls_handshakes[side][res]));
        }
    metric(r, "pgproxy_queries_total", "counter", "Statements observed.",
           load(&o->queries_total));
    metric(r, "pgproxy_query_errors_total", "counter", "Statements that ended in an error.",
           load(&o->query_errors_total));
    metric(r, "pgproxy_observations_dropped_total", "counter",
           "Observations given up to keep memory bounded (traffic is never dropped).",
           load(&o->observations_dropped_total));
    pgp_profile_store_stats_t ps;
    memset(&ps, 0, sizeof(ps));
    if (o->store != NULL)
        pgp_profile_store_stats(o->store, &ps);
    metric(r, "pgproxy_requests_total", "counter", "Request profiles finished.",
           ps.requests_ever);
    metric(r, "pgproxy_n_plus_one_total", "counter",
           "N+1, duplicate-query and batchable-write findings in finished requests.",
           ps.findings_ever);
    pgp_slowlog_stats_t ss;
    memset(&ss, 0, sizeof(ss));
    if (o->slowlog != NULL)
        pgp_slowlog_get_stats(o->slowlog, &ss);
    metric(r, "pgproxy_slow_queries_total", "counter",
           "Statements at or over profiling.slow_query_threshold_ms.", ss.submitted_total);
    metric(r, "pgproxy_slow_log_queue_depth", "gauge",
           "Slow-query records waiting for the sink.", ss.queue_depth);
    metric(r, "pgproxy_slow_log_written_total", "counter",
           "Slow-query records committed by the sink.", ss.written_total);
    metric(r, "pgproxy_slow_log_dropped_total", "counter",
           "Slow-query records dropped (queue full or given up).", ss.dropped_total);
    metric(r, "pgproxy_slow_log_sink_up", "gauge",
           "1 when the slow-query sink's last attempt succeeded.", ss.sink_up ? 1 : 0);

    pgp_histogram_prom_view_t v;
    memset(&v, 0, sizeof(v));
    pgp_histogram_prom_accumulate(&o->duration, &v);
    double bounds[PGP_HISTOGRAM_PROM_BUCKETS - 1];
    uint64_t counts[PGP_HISTOGRAM_PROM_BUCKETS - 1];
    uint64_t prev = 0;
    for (size_t i = 0; i < PGP_HISTOGRAM_PROM_BUCKETS - 1; i++) {
        bounds[i] = (double)pgp_histogram_prom_bounds_ns[i] / 1e9;
        counts[i] = v.cumulative[i] - prev;
        prev = v.cumulative[i];
    }
    pgp_render_prom_family(r, "pgproxy_query_duration_seconds", "histogram",
                           "Statement duration as seen from pgproxy (DESIGN 4.2).");
    pgp_render_prom_histogram(r, "pgproxy_query_duration_seconds", NULL, 0, bounds, counts,
                              PGP_HISTOGRAM_PROM_BUCKETS - 1, (double)v.sum_ns / 1e9, v.count);
    return pgp_render_error(r) ? -1 : 0;
}

static void json_ms(pgp_render_t *r, const char *key, double ns)
{
    pgp_render_json_key(r, key);
    pgp_render_json_double(r, ns / 1e6, 3);
}

static void json_time(pgp_render_t *r, const char *key, uint64_t wall_ns)
{
    pgp_render_json_key(r, key);
    pgp_render_json_time(r, wall_ns);
}

/* The digest entries of snap as a JSON array. */
static void render_digest_array(const pgp_digest_snapshot_t *snap, pgp_render_t *r)
{
    pgp_render_json_begin_array(r);
    for (size_t i = 0; i < snap->count; i++) {
        const pgp_digest_entry_t *e = &snap->entries[i];
        char fp[17];
        pgp_fingerprint_format(e->fingerprint, fp);
        pgp_render_json_begin_object(r);
        pgp_render_json_key(r, "fingerprint");
        pgp_render_json_cstr(r, fp);
        pgp_render_json_key(r, "normalized");
        pgp_render_json_string(r, e->normalized, e->normalized_len);
        pgp_render_json_key(r, "normalized_truncated");
        pgp_render_json_bool(r, e->normalized_truncated);
        pgp_render_json_key(r, "database");
        pgp_render_json_cstr(r, e->database);
        pgp_render_json_key(r, "user");
        pgp_render_json_cstr(r, e->user);
        pgp_render_json_key(r, "calls");
        pgp_render_json_uint(r, e->calls);
        pgp_render_json_key(r, "errors");
        pgp_render_json_uint(r, e->errors);
        pgp_render_json_key(r, "rows");
        pgp_render_json_uint(r, e->rows);
        json_ms(r, "total_ms", (double)e->total_ns);
        json_ms(r, "mean_ms", e->mean_ns);
        json_ms(r, "min_ms", (double)e->min_ns);
        json_ms(r, "max_ms", (double)e->max_ns);
        json_ms(r, "stddev_ms", e->stddev_ns);
        json_ms(r, "p50_ms", (double)e->p50_ns);
        json_ms(r, "p95_ms", (double)e->p95_ns);
        json_ms(r, "p99_ms", (double)e->p99_ns);
        pgp_render_json_key(r, "total_ns");
        pgp_render_json_uint(r, e->total_ns);
        json_time(r, "first_seen", e->first_seen_ns);
        json_time(r, "last_seen", e->last_seen_ns);
        pgp_render_json_end_object(r);
    }
    pgp_render_json_end_array(r);
}

static pgp_digest_order_t digest_order(const char *order)
{
    if (strcmp(order, "mean") == 0)
        return PGP_DIGEST_ORDER_MEAN;
    if (strcmp(order, "calls") == 0)
        return PGP_DIGEST_ORDER_CALLS;
    return PGP_DIGEST_ORDER_TOTAL;
}

int pgp_observer_render_queries(pgp_observer_t *o, const char *order, size_t limit,
                                pgp_render_t *r)
{
    pgp_digest_snapshot_t snap;
    if (pgp_digest_snapshot(o->digests, digest_order(order), limit, &snap) < 0)
        return -1;
    pgp_render_json_begin_object(r);
    pgp_render_json_key(r, "queries");
    render_digest_array(&snap, r);
    pgp_render_json_key(r, "entries");
    pgp_render_json_uint(r, snap.totals.entries);
    pgp_render_json_key(r, "evictions");
    pgp_render_json_uint(r, snap.totals.evictions);
    pgp_render_json_end_object(r);
    pgp_digest_snapshot_free(&snap);
    return pgp_render_error(r) ? -1 : 0;
}

int pgp_observer_render_top(pgp_observer_t *o, const char *order, size_t limit, pgp_render_t *r)
{
    pgp_digest_snapshot_t snap;
    if (pgp_digest_snapshot(o->digests, digest_order(order), limit, &snap) < 0)
        return -1;
    render_digest_array(&snap, r);
    pgp_digest_snapshot_free(&snap);
    return pgp_render_error(r) ? -1 : 0;
}

int pgp_observer_render_histogram(pgp_observer_t *o, pgp_render_t *r)
{
    pgp_histogram_prom_view_t v;
    memset(&v, 0, sizeof(v));
    pgp_histogram_prom_accumulate(&o->duration, &v);
    pgp_render_json_begin_object(r);
    pgp_render_json_key(r, "buckets");
    pgp_render_json_begin_array(r);
    for (size_t i = 0; i < PGP_HISTOGRAM_PROM_BUCKETS - 1; i++) {
        pgp_render_json_begin_object(r);
        pgp_render_json_key(r, "le_ms");
        pgp_render_json_double(r, (double)pgp_histogram_prom_bounds_ns[i] / 1e6, 3);
        pgp_render_json_key(r, "count");
        pgp_render_json_uint(r, v.cumulative[i]);
        pgp_render_json_end_object(r);
    }
    pgp_render_json_begin_object(r);
    pgp_render_json_key(r, "le_ms");
    pgp_render_json_null(r);
    pgp_render_json_key(r, "count");
    pgp_render_json_uint(r, v.count);
    pgp_render_json_end_object(r);
    pgp_render_json_end_array(r);
    pgp_render_json_key(r, "count");
    pgp_render_json_uint(r, v.count);
    json_ms(r, "sum_ms", (double)v.sum_ns);
    pgp_render_json_end_object(r);
    return pgp_render_error(r) ? -1 : 0;
}

static void stat_kv(pgp_render_t *r, const char *k, uint64_t now, _Atomic uint64_t *base)
{
    uint64_t b = load(base);
    pgp_render_json_kv_uint(r, k, now >= b ? now - b : 0);
}

int pgp_observer_render_stats(pgp_observer_t *o, pgp_render_t *r)
{
    pgp_observe_conn_stats_t *c = &o->conn;
    pgp_profile_store_stats_t ps;
    pgp_slowlog_stats_t ss;
    pgp_digest_totals_t dt;
    memset(&ps, 0, sizeof(ps));
    memset(&ss, 0, sizeof(ss));
    if (o->store != NULL)
        pgp_profile_store_stats(o->store, &ps);
    if (o->slowlog != NULL)
        pgp_slowlog_get_stats(o->slowlog, &ss);
    pgp_digest_totals(o->digests, &dt);
    pgp_render_json_begin_object(r);
    stat_kv(r, "queries", load(&o->queries_total), &o->base_queries);
    stat_kv(r, "query_errors", load(&o->query_errors_total), &o->base_errors);
    stat_kv(r, "requests", ps.requests_ever, &o->base_requests);
    stat_kv(r, "n_plus_one_findings", ps.findings_ever, &o->base_findings);
    stat_kv(r, "slow_queries", ss.submitted_total, &o->base_slow);
    pgp_render_json_kv_uint(r, "fingerprints", dt.entries);
    pgp_render_json_kv_uint(r, "profiles_held", ps.held);
    pgp_render_json_kv_uint(r, "client_connections", load(&c->client_connections));
    pgp_render_json_kv_uint(r, "server_connections", load(&c->server_connections));
    pgp_render_json_kv_uint(r, "connections_total", load(&c->connections_total));
    pgp_render_json_kv_uint(r, "connections_refused", load(&c->connections_refused));
    pgp_render_json_kv_uint(r, "bytes_client_to_server", load(&c->bytes_client_to_server));
    pgp_render_json_kv_uint(r, "bytes_server_to_client", load(&c->bytes_server_to_client));
    pgp_render_json_kv_uint(r, "slow_log_queue_depth", ss.queue_depth);
    pgp_render_json_kv_uint(r, "slow_log_written", ss.written_total);
    pgp_render_json_kv_uint(r, "slow_log_dropped", ss.dropped_total);
    pgp_render_json_kv_str(r, "slow_log_sink", ss.sink_up ? "up" : o->slowlog ? "down" : "none");
    pgp_render_json_kv_uint(r, "observations_dropped", load(&o->observations_dropped_total));
    pgp_render_json_key(r, "since");
    uint64_t since = load(&o->reset_wall_ns);
    if (since != 0)
        pgp_render_json_time(r, since);
    else
        pgp_render_json_cstr(r, "start");
    pgp_render_json_end_object(r);
    return pgp_render_error(r) ? -1 : 0;
}

void pgp_observer_reset_stats(pgp_observer_t *o)
{
    pgp_profile_store_stats_t ps;
    pgp_slowlog_stats_t ss;
    memset(&ps, 0, sizeof(ps));
    memset(&ss, 0, sizeof(ss));
    if (o->store != NULL) {
        pgp_profile_store_stats(o->store, &ps);
        pgp_profile_store_clear(o->store);
    }
    if (o->slowlog != NULL) {
        pgp_slowlog_get_stats(o->slowlog, &ss);
        pgp_slowlog_clear_recent(o->slowlog);
    }
    pgp_digest_reset(o->digests);
    atomic_store(&o->base_queries, load(&o->queries_total));
    atomic_store(&o->base_errors, load(&o->query_errors_total));
    atomic_store(&o->base_requests, ps.requests_ever);
    atomic_store(&o->base_findings, ps.findings_ever);
    atomic_store(&o->base_slow, ss.submitted_total);
    atomic_store(&o->reset_wall_ns, pgp_clock_to_wall_ns(pgp_clock_now()));
}
