/*
 * api.c - routing and composition of the admin endpoints that show request
 * profiles, N+1 findings, live connections, flame graphs, slow queries and
 * the dashboard.
 *
 * Each endpoint validates its arguments (a bad one is a 400 with a JSON
 * error naming it), then asks the module that owns the data to render
 * itself: the profile store (store.c), the slow-query log (slowlog.c), the
 * registry (registry.c), the observer (digests, histogram), the flame
 * graph renderer (flame.c) and the dashboard page (dashboard.c).  What is
 * here is HTTP shape only: paths, methods, status codes, content types.
 */
#include "pgproxy/api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgproxy/clock.h"
#include "pgproxy/dashboard.h"
#include "pgproxy/flame.h"

#define API_DEFAULT_LIMIT 100u
#define API_MAX_LIMIT 10000u
#define API_DASH_LIMIT 20u
#define API_FLAME_INPUT_BYTES (8u * 1024u * 1024u)

typedef int (*api_handler_t)(pgp_api_t *api, const pgp_admin_request_t *req, const char *tail,
                             pgp_admin_response_t *resp);

static int bad_request(pgp_admin_response_t *resp, const char *msg)
{
    resp->status = 400;
    resp->content_type = PGP_ADMIN_CT_JSON;
    pgp_render_json_begin_object(resp->body);
    pgp_render_json_key(resp->body, "error");
    pgp_render_json_cstr(resp->body, msg);
    pgp_render_json_end_object(resp->body);
    return 1;
}

static int not_found(pgp_admin_response_t *resp, const char *msg)
{
    bad_request(resp, msg);
    resp->status = 404;
    return 1;
}

static int method_not_allowed(pgp_admin_response_t *resp)
{
    bad_request(resp, "method not allowed");
    resp->status = 405;
    return 1;
}

static int unavailable(pgp_admin_response_t *resp)
{
    bad_request(resp, "not available (profiling is off)");
    resp->status = 503;
    return 1;
}

/* Decimal 1..max from text; -1 when it is not one. */
static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 19)
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (i == 0 || v < 1 || v > max)
        return -1;
    *out = v;
    return 0;
}

/* ?limit=N (1..API_MAX_LIMIT), default def; false (and a 400 written) when invalid. */
static bool get_limit(const pgp_admin_request_t *req, size_t def, size_t *out,
                      pgp_admin_response_t *resp)
{
    const char *s = pgp_admin_query_arg(req, "limit");
    uint64_t v = def;
    if (s != NULL && parse_uint(s, API_MAX_LIMIT, &v) < 0) {
        bad_request(resp, "limit: expected an integer from 1 to 10000");
        return false;
    }
    *out = (size_t)v;
    return true;
}

static int finish(pgp_admin_response_t *resp, int rc)
{
    return rc < 0 || pgp_render_error(resp->body) ? -1 : 1;
}

/* ---- /debug/profiles ------------------------------------------------------ */

static int api_profiles(pgp_api_t *api, const pgp_admin_request_t *req, const char *tail,
                        pgp_admin_response_t *resp)
{
    pgp_profile_store_t *store = pgp_observer_store(api->obs);
    if (store == NULL)
        return unavailable(resp);
    if (tail[0] == '\0') {
        if (strcmp(req->method, "DELETE") == 0) {
            pgp_profile_store_clear(store);
            pgp_render_json_begin_object(resp->body);
            pgp_render_json_key(resp->body, "cleared");
            pgp_render_json_bool(resp->body, true);
            pgp_render_json_end_object(resp->body);
            return finish(resp, 0);
        }
        if (strcmp(req->method, "GET") != 0)
            return method_not_allowed(resp);
        size_t limit;
        if (!get_limit(req, API_DEFAULT_LIMIT, &limit, resp))
            return 1;
        const char *order = pgp_admin_query_arg(req, "order");
        if (order == NULL)
            order = "recent";
        if (strcmp(order, "recent") != 0 && strcmp(order, "slowest") != 0)
            return bad_request(resp, "order: expected recent or slowest");
        return finish(resp, pgp_profile_store_render_list(store, order, limit, resp->body));
    }
    if (strcmp(req->method, "GET") != 0)
        return method_not_allowed(resp);
    uint64_t id;
    if (tail[0] != '/' || parse_uint(tail + 1, UINT64_MAX / 10, &id) < 0)
        return not_found(resp, "no such profile");
    const char *format = pgp_admin_query_arg(req, "format");
    if (format == NULL)
        format = "json";
    if (strcmp(format, "json") != 0 && strcmp(format, "header") != 0 &&
        strcmp(format, "collapsed") != 0)
        return bad_request(resp, "format: expected json, header or collapsed");
    pgp_profile_t *p = pgp_profile_store_get(store, id);
    if (p == NULL)
        return not_found(resp, "no such profile (finished profiles are kept up to "
                               "profiling.max_history)");
    int rc;
    if (strcmp(format, "json") == 0) {
        rc = pgp_profile_render_json(p, resp->body);
    } else {
        resp->content_type = PGP_ADMIN_CT_TEXT;
        rc = strcmp(format, "header") == 0 ? pgp_profile_render_header(p, resp->body)
                                           : pgp_profile_render_collapsed(p, resp->body);
        pgp_render_char(resp->body, '\n');
    }
    pgp_profile_unref(p);
    return finish(resp, rc);
}

/*
 * The preamble of an exact-path GET endpoint whose data comes from `source`:
 * false when the handler is done and *rc is its answer (0 = not this path,
 * 1 = an error written), true to go on.
 */
static bool exact_get(const pgp_admin_request_t *req, const char *tail, const void *source,
                      pgp_admin_response_t *resp, int *rc)
{
    if (tail[0] != '\0')
        *rc = 0;
    else if (strcmp(req->method, "GET") != 0)
        *rc = method_not_allowed(resp);
    else if (source == NULL)
        *rc = unavailable(resp);
    else
        return true;
    return false;
}

/* ---- /debug/n-plus-one, /debug/slow-queries ------------------------------- */

static int api_n_plus_one(pgp_api_t *api, const pgp_admin_request_t *req, const char *tail,
                          pgp_admin_response_t *resp)
{
    pgp_profile_store_t *store = pgp_observer_store(api->obs);
    int rc;
    if (!exact_get(req, tail, store, resp, &rc))
        return rc;
    size_t limit;
    if (!get_limit(req, API_DEFAULT_LIMIT, &limit, resp))
        return 1;
    return finish(resp, pgp_profile_store_render_findings(store, limit, resp->body));
}

static int api_slow_queries(pgp_api_t *api, const pgp_admin_request_t *req, const char *tail,
                            pgp_admin_response_t *resp)
{
    pgp_slowlog_t *log = pgp_observer_slowlog(api->obs);
    int rc;
    if (!exact_get(req, tail, log, resp, &rc))
        return rc;
    size_t limit;
    if (!get_limit(req, API_DEFAULT_LIMIT, &limit, resp))
        return 1;
    return finish(resp, pgp_slowlog_render_recent(log, limit, resp->body));
}

/* ---- /debug/connections ---------------------------------------------------- */

static int api_connections(pgp_api_t *api, const pgp_admin_request_t *req, const char *tail,
                           pgp_admin_response_t *resp)
{
    pgp_registry_t *reg = pgp_observer_registry(api->obs);
    if (strcmp(req->method, "GET") != 0)
        return method_not_allowed(resp);
    if (reg == NULL)
        return unavailable(resp);
    uint64_t now = pgp_clock_to_wall_ns(pgp_clock_now());
    if (tail[0] == '\0') {
        size_t limit;
        if (!get_limit(req, API_MAX_LIMIT, &limit, resp))
            return 1;
        return finish(resp, pgp_registry_render_list(reg, limit, now, resp->body));
    }
    uint64_t id;
    if (tail[0] != '/' || parse_uint(tail + 1, UINT64_MAX / 10, &id) < 0)
        return not_found(resp, "no such connection");
    /* Look first, so a session that is gone is a clean 404 rather than half an object. */
    pgp_render_t probe;
    pgp_render_init(&probe, 64 * 1024);
    int found = pgp_registry_render_one(reg, id, now, &probe);
    pgp_render_free(&probe);
    if (found <= 0)
        return found < 0 ? -1 : not_found(resp, "no such connection (not live)");
    pgp_render_json_begin_object(resp->body);
    pgp_render_json_key(resp->body, "connection");
    if (pgp_registry_render_one(reg, id, now, resp->body) == 0)
        pgp_render_json_null(resp->body);   /* it closed in between */
    pgp_render_json_key(resp->body, "n_plus_one");
    pgp_profile_store_t *store = pgp_observer_store(api->obs);
    int rc = 0;
    if (store != NULL)
        rc = pgp_profile_store_render_session_findings(store, id, resp->body);
    else
        pgp_render_json_null(resp->body);
    pgp_render_json_end_object(resp->body);
    return finish(resp, rc);
}

/* ---- flame graphs ----------------------------------------------------------- */

static int api_flame_txt(pgp_api_t *api, const pgp_admin_request_t *req, const char *tail,
                         pgp_admin_response_t *resp)
{
    pgp_profile_store_t *store = pgp_observer_store(api->obs);
    int rc;
    if (!exact_get(req, tail, store, resp, &rc))
        return rc;
    resp->content_type = PGP_ADMIN_CT_TEXT;
    return finish(resp, pgp_profile_store_render_collapsed(store, resp->body));
}

static int api_flame_svg(pgp_api_t *api, const pgp_admin_request_t *req, const char *tail,
                         pgp_admin_response_t *resp)
{
    pgp_profile_store_t *store = pgp_observer_store(api->obs);
    int rc;
    if (!exact_get(req, tail, store, resp, &rc))
        return rc;
    pgp_render_t stacks;
    pgp_render_init(&stacks, API_FLAME_INPUT_BYTES);
    rc = pgp_profile_store_render_collapsed(store, &stacks);
    if (rc == 0 && !pgp_render_error(&stacks)) {
        pgp_flame_opts_t opts = { .width_px = 1200, .title = NULL, .unit = "ns" };
        resp->content_type = PGP_ADMIN_CT_SVG;
        rc = pgp_flame_render_svg(pgp_render_data(&stacks), pgp_render_len(&stacks), &opts,
                                  resp->body);
    } else {
        rc = -1;
    }
    pgp_render_free(&stacks);
    return finish(resp, rc);
}

/* ---- the dashboard ------------------------------------------------------------ */

static int dashboard_json(pgp_api_t *api, pgp_render_t *r)
{
    pgp_profile_store_t *store = pgp_observer_store(api->obs);
    pgp_slowlog_t *log = pgp_observer_slowlog(api->obs);
    pgp_registry_t *reg = pgp_observer_registry(api->obs);
    pgp_profile_store_stats_t ps;
    pgp_slowlog_stats_t ss;
    memset(&ps, 0, sizeof(ps));
    memset(&ss, 0, sizeof(ss));
    if (store != NULL)
        pgp_profile_store_stats(store, &ps);
    if (log != NULL)
        pgp_slowlog_get_stats(log, &ss);
    uint64_t now = pgp_clock_to_wall_ns(pgp_clock_now());
    uint64_t queries = pgp_observer_queries_total(api->obs);
    int rc = 0;

    pgp_render_json_begin_object(r);
    pgp_render_json_key(r, "version");
    pgp_render_json_cstr(r, PGP_VERSION);
    pgp_render_json_key(r, "uptime_s");
    pgp_render_json_double(r, now > api->started_wall_ns
                                  ? (double)(now - api->started_wall_ns) / 1e9 : 0.0, 1);
    pgp_render_json_kv_uint(r, "total_requests", ps.requests_total);
    pgp_render_json_kv_uint(r, "total_queries", queries);
    pgp_render_json_key(r, "avg_queries_per_request");
    pgp_render_json_double(r, ps.requests_total ? (double)ps.profiled_queries_total /
                                                      (double)ps.requests_total : 0.0, 2);
    pgp_render_json_kv_uint(r, "slow_query_count", ss.submitted_total);
    /* The tile says "N+1 Patterns": distinct (label, query, source) patterns. */
    pgp_render_json_kv_uint(r, "n_plus_one_count", ps.patterns);
    pgp_render_json_kv_uint(r, "n_plus_one_findings", ps.findings_total);
    pgp_render_json_key(r, "recent_slow_queries");
    if (log != NULL)
        rc |= pgp_slowlog_render_recent(log, API_DASH_LIMIT, r);
    else
        pgp_render_str(r, "[]");
    pgp_render_json_key(r, "recent_n_plus_one");
    if (store != NULL)
        rc |= pgp_profile_store_render_findings_normalized(store, API_DASH_LIMIT, r);
    else
        pgp_render_str(r, "[]");
    pgp_render_json_key(r, "n_plus_one");
    if (store != NULL)
        rc |= pgp_profile_store_render_findings(store, API_DASH_LIMIT, r);
    else
        pgp_render_str(r, "[]");
    pgp_render_json_key(r, "top_queries");
    rc |= pgp_observer_render_top(api->obs, "total", API_DASH_LIMIT, r);
    pgp_render_json_key(r, "histogram");
    rc |= pgp_observer_render_histogram(api->obs, r);
    pgp_render_json_key(r, "connections");
    if (reg != NULL)
        rc |= pgp_registry_render_list(reg, 100, now, r);
    else
        pgp_render_str(r, "[]");
    pgp_render_json_key(r, "recent_profiles");
    if (store != NULL)
        rc |= pgp_profile_store_render_summaries(store, API_DASH_LIMIT, r);
    else
        pgp_render_str(r, "[]");
    pgp_render_json_end_object(r);
    return rc != 0 ? -1 : 0;
}

static int api_dashboard(pgp_api_t *api, const pgp_admin_request_t *req, const char *tail,
                         pgp_admin_response_t *resp)
{
    if (strcmp(req->method, "GET") != 0)
        return method_not_allowed(resp);
    if (tail[0] == '\0') {
        char json_path[256];
        size_t n = strlen(api->dashboard_path);
        if (n + sizeof("/json") > sizeof(json_path))
            return -1;
        memcpy(json_path, api->dashboard_path, n);
        memcpy(json_path + n, "/json", sizeof("/json"));
        resp->content_type = PGP_ADMIN_CT_HTML;
        return finish(resp, pgp_dashboard_render(json_path, resp->body));
    }
    if (strcmp(tail, "/json") == 0)
        return finish(resp, dashboard_json(api, resp->body));
    return 0;
}

/* ---- routing ---------------------------------------------------------------------- */

/* Exact paths, or prefixes whose tail is "" or starts with '/'. */
static const struct {
    const char *path;
    api_handler_t handler;
} api_routes[] = {
    { "/debug/profiles", api_profiles },
    { "/debug/n-plus-one", api_n_plus_one },
    { "/debug/slow-queries", api_slow_queries },
    { "/debug/connections", api_connections },
    { "/debug/flamegraph.txt", api_flame_txt },
    { "/debug/flamegraph.svg", api_flame_svg },
};

/* The tail of path after prefix, when path is prefix or prefix + "/..."; else NULL. */
static const char *path_tail(const char *path, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(path, prefix, n) != 0 || (path[n] != '\0' && path[n] != '/'))
        return NULL;
    return path + n;
}

int pgp_api_route(void *ud, const pgp_admin_request_t *req, pgp_admin_response_t *resp)
{
    pgp_api_t *api = ud;
    for (size_t i = 0; i < sizeof(api_routes) / sizeof(api_routes[0]); i++) {
        const char *tail = path_tail(req->path, api_routes[i].path);
        if (tail != NULL)
            return api_routes[i].handler(api, req, tail, resp);
    }
    if (api->dashboard_path != NULL && api->dashboard_path[0] != '\0') {
        const char *tail = path_tail(req->path, api->dashboard_path);
        if (tail != NULL)
            return api_dashboard(api, req, tail, resp);
    }
    return 0;
}

/* ---- the SQL console's data (console.h providers; any thread) ---------------------- */

static int config_member(void *ud, const char *section, const char *name, const char *value)
{
    pgp_render_t *r = ud;
    char key[128];
    snprintf(key, sizeof(key), "%s.%s", section, name);
    pgp_render_json_kv_str(r, key, value);
    return 0;
}

int pgp_api_console_json(void *ud, pgp_console_source_t src, pgp_render_t *out)
{
    pgp_api_t *api = ud;
    pgp_profile_store_t *store = pgp_observer_store(api->obs);
    pgp_slowlog_t *log = pgp_observer_slowlog(api->obs);
    pgp_registry_t *reg = pgp_observer_registry(api->obs);
    uint64_t now = pgp_clock_to_wall_ns(pgp_clock_now());
    switch (src) {
    case PGP_CONSOLE_STATS:
        return pgp_observer_render_stats(api->obs, out);
    case PGP_CONSOLE_QUERIES:
        return pgp_observer_render_top(api->obs, "total", API_DEFAULT_LIMIT, out);
    case PGP_CONSOLE_SLOW_QUERIES:
        if (log == NULL)
            break;
        return pgp_slowlog_render_recent(log, API_DEFAULT_LIMIT, out) ? -1 : 0;
    case PGP_CONSOLE_N_PLUS_ONE:
        if (store == NULL)
            break;
        return pgp_profile_store_render_findings(store, API_DEFAULT_LIMIT, out) ? -1 : 0;
    case PGP_CONSOLE_CONNECTIONS:
        if (reg == NULL)
            break;
        return pgp_registry_render_list(reg, API_MAX_LIMIT, now, out);
    case PGP_CONSOLE_PROFILES:
        if (store == NULL)
            break;
        return pgp_profile_store_render_summaries(store, API_DEFAULT_LIMIT, out) ? -1 : 0;
    case PGP_CONSOLE_CONFIG:
        if (api->cfg == NULL)
            break;
        pgp_render_json_begin_object(out);
        if (pgp_config_foreach(api->cfg, config_member, out) != 0)
            return -1;
        pgp_render_json_end_object(out);
        return pgp_render_error(out) ? -1 : 0;
    case PGP_CONSOLE_SOURCE_COUNT_:
        break;
    }
    /* Profiling is off: an empty table rather than an error. */
    pgp_render_str(out, "[]");
    return 0;
}

int pgp_api_console_reset(void *ud)
{
    pgp_api_t *api = ud;
    pgp_observer_reset_stats(api->obs);
    return 0;
}
