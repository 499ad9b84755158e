/*
 * api.h - the admin HTTP endpoints beyond /healthz, /readyz, /metrics and
 * /debug/queries (DESIGN §6): request profiles, N+1 findings, connections,
 * flame graphs, slow queries, and the HTML dashboard with its JSON.
 *
 * pgp_api_route is an admin.h route provider: it runs on the admin thread
 * and reads only what is safe there (the profile store, the slow-query
 * log's ring, the registry, the digest table, atomics) — never loop state.
 */
#ifndef PGPROXY_API_H
#define PGPROXY_API_H

#include <stdint.h>

#include "pgproxy/admin.h"
#include "pgproxy/config.h"
#include "pgproxy/console.h"
#include "pgproxy/observe.h"

typedef struct pgp_api {
    pgp_observer_t *obs;            /* borrowed: store, slow log, registry hang off it */
    const pgp_config_t *cfg;        /* borrowed: SHOW CONFIG */
    const char *dashboard_path;     /* borrowed; "" = no dashboard */
    uint64_t started_wall_ns;       /* for uptime */
} pgp_api_t;

/* The admin route provider (ud = pgp_api_t *).  See pgp_admin_providers_t.route. */
int pgp_api_route(void *ud, const pgp_admin_request_t *req, pgp_admin_response_t *resp);

/*
 * The SQL console's providers (pgp_console_providers_t, ud = pgp_api_t *):
 * each SHOW's JSON, and RESET STATS.  Thread-safe (the console runs on the
 * loop thread; everything read here is locked or atomic).
 */
int pgp_api_console_json(void *ud, pgp_console_source_t src, pgp_render_t *out);
int pgp_api_console_reset(void *ud);

#endif
