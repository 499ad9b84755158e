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

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgproxy/clock.h"
#include "pgproxy/digest.h"
#include "pgproxy/histogram.h"
#include "pgproxy/normalize.h"
#include "pgproxy/render.h"

#define PGP_OBSERVE_DIGEST_SQL_BYTES 4096u

struct pgp_observer {
    pgp_digest_table_t *digests;
    size_t max_sql_bytes;
    pgp_observe_conn_stats_t conn;
    _Atomic uint64_t queries_total;
    _Atomic uint64_t query_errors_total;
    _Atomic uint64_t observations_dropped_total;
    pgp_histogram_prom_t duration;   /* written by the loop thread only */
};

pgp_observer_t *pgp_observer_create(size_t max_sql_bytes, size_t max_entries)
{
    pgp_observer_t *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->max_sql_bytes = max_sql_bytes;
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
    memset(&opts, 0, sizeof(opts));
    /* With it off, the server reads backslash escapes in '...' too. */
    opts.standard_conforming_strings = ev->standard_strings;
    pgp_normalize(ev->sql, ev->sql_len, &opts, out, out ? cap : 0, NULL, &res);
    m->fingerprint = res.fingerprint;
    m->values_hash = res.values_hash;
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
    metric(r, "pgproxy_queries_total", "counter", "Statements observed.",
           load(&o->queries_total));
    metric(r, "pgproxy_query_errors_total", "counter", "Statements that ended in an error.",
           load(&o->query_errors_total));
    metric(r, "pgproxy_observations_dropped_total", "counter",
           "Observations given up to keep memory bounded (traffic is never dropped).",
           load(&o->observations_dropped_total));

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
    char buf[40];
    time_t sec = (time_t)(wall_ns / 1000000000u);
    struct tm tm;
    gmtime_r(&sec, &tm);
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    unsigned ms = (unsigned)(wall_ns / 1000000u % 1000u);
    buf[n++] = '.';
    buf[n++] = (char)('0' + ms / 100);
    buf[n++] = (char)('0' + ms / 10 % 10);
    buf[n++] = (char)('0' + ms % 10);
    buf[n++] = 'Z';
    buf[n] = '\0';
    pgp_render_json_key(r, key);
    pgp_render_json_cstr(r, buf);
}

int pgp_observer_render_queries(pgp_observer_t *o, const char *order, size_t limit,
                                pgp_render_t *r)
{
    pgp_digest_order_t ord = PGP_DIGEST_ORDER_TOTAL;
    if (strcmp(order, "mean") == 0)
        ord = PGP_DIGEST_ORDER_MEAN;
    else if (strcmp(order, "calls") == 0)
        ord = PGP_DIGEST_ORDER_CALLS;
    pgp_digest_snapshot_t snap;
    if (pgp_digest_snapshot(o->digests, ord, limit, &snap) < 0)
        return -1;
    pgp_render_json_begin_object(r);
    pgp_render_json_key(r, "queries");
    pgp_render_json_begin_array(r);
    for (size_t i = 0; i < snap.count; i++) {
        const pgp_digest_entry_t *e = &snap.entries[i];
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
    pgp_render_json_key(r, "entries");
    pgp_render_json_uint(r, snap.totals.entries);
    pgp_render_json_key(r, "evictions");
    pgp_render_json_uint(r, snap.totals.evictions);
    pgp_render_json_end_object(r);
    pgp_digest_snapshot_free(&snap);
    return pgp_render_error(r) ? -1 : 0;
}
