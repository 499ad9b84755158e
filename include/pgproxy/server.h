/*
 * server.h - the listener, the session list, limits and signals.
 *
 * The server accepts clients on proxy.listen, counts them against
 * proxy.max_client_connections, and turns SIGTERM into a drain (stop
 * accepting, close idle sessions, wait for busy ones up to
 * proxy.shutdown_timeout_ms), SIGINT or a second SIGTERM into an
 * immediate exit, and SIGHUP into a reload through a callback.
 */
#ifndef PGPROXY_SERVER_H
#define PGPROXY_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "pgproxy/config.h"
#include "pgproxy/console.h"
#include "pgproxy/observe.h"
#include "pgproxy/relay.h"
#include "pgproxy/session.h"
#include "pgproxy/tls.h"

/* proxy.client_tls and proxy.upstream_tls, parsed (verification levels live in the context). */
typedef enum { PGP_CLIENT_TLS_DISABLE, PGP_CLIENT_TLS_ALLOW, PGP_CLIENT_TLS_REQUIRE } pgp_client_tls_t;
typedef enum { PGP_UPSTREAM_TLS_DISABLE, PGP_UPSTREAM_TLS_PREFER, PGP_UPSTREAM_TLS_REQUIRE } pgp_upstream_tls_t;

/* SIGHUP handler: updates the reloadable fields of the live config in place. */
typedef void (*pgp_server_reload_fn)(void *ud);

struct pgp_server {
    uv_loop_t *loop;
    const pgp_config_t *cfg;         /* borrowed; reloads update it in place */
    pgp_stream_t listener;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t drain_timer;
    uv_timer_t sweep_timer;          /* closes idle request profiles (profiling only) */
    bool reconfigured;               /* a reload happened: sessions pick it up at the next sweep */
    pgp_session_t *sessions;         /* all live sessions */
    uint32_t session_count;          /* all live sessions */
    uint32_t client_count;           /* sessions within the client limit */
    uint64_t next_session_id;
    pgp_server_reload_fn reload;
    void *reload_ud;
    pgp_observer_t *observer;        /* borrowed; metrics and statement digests */
    const pgp_console_providers_t *console;  /* borrowed; the SQL console's data (set by main) */
    pgp_observe_conn_stats_t *conn_stats;   /* the observer's, looked up once */
    pgp_tls_ctx_t *client_tls;       /* TLS for apps; NULL when proxy.client_tls = disable */
    pgp_tls_ctx_t *upstream_tls;     /* TLS toward the server; NULL when off or over a Unix socket */
    pgp_client_tls_t client_tls_mode;
    pgp_upstream_tls_t upstream_tls_mode;
    bool draining;
    bool listening;
};

/*
 * Bind proxy.listen and install signal handlers on loop.  cfg and
 * observer are borrowed and must outlive the server; sessions track
 * statements when cfg says profiling is enabled.
 * Returns 0 or a libuv error (with a log line naming the address).
 */
__attribute__((warn_unused_result)) int pgp_server_start(pgp_server_t *srv, uv_loop_t *loop,
                                                         const pgp_config_t *cfg,
                                                         pgp_observer_t *observer,
                                                         pgp_server_reload_fn reload, void *ud);

/*
 * SIGHUP: read the certificate and key files again.  New sessions use the
 * new contexts; live sessions keep theirs.  When a file is bad the current
 * contexts stay and the log says why.  Returns 0 or -1.
 */
int pgp_server_reload_tls(pgp_server_t *srv);

/* After the loop has finished (every session closed): free the TLS contexts. */
void pgp_server_free(pgp_server_t *srv);

/* Run the loop until the server has shut down; returns the exit code (0). */
int pgp_server_run(pgp_server_t *srv);

/* Begin the graceful shutdown (what SIGTERM does). */
void pgp_server_drain(pgp_server_t *srv);

/* A session was freed (session.c calls this; it unlinks itself first). */
void pgp_server_session_ended(pgp_server_t *srv, bool counted);

#endif
