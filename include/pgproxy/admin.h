/*
 * admin.h - the admin HTTP server (DESIGN §6): /healthz, /readyz, /metrics,
 * /debug/queries, and a route table for more.
 *
 * libmicrohttpd on its own internal polling thread (epoll), bound to
 * admin.listen, with a connection limit, a per-connection idle timeout and
 * a per-connection memory pool (which bounds the request line and headers);
 * request bodies are refused.  When a token is configured every request
 * needs "Authorization: Bearer <token>".  This module owns only HTTP: the
 * data comes from the caller through pgp_admin_providers_t, whose callbacks
 * run on the admin thread and must never touch libuv loop state directly
 * (copy a snapshot under a lock, or read atomics).  Callbacks are called
 * one at a time (the server has a single thread).
 */
#ifndef PGPROXY_ADMIN_H
#define PGPROXY_ADMIN_H

#include "pgproxy/config.h"
#include "pgproxy/render.h"

#include <stddef.h>
#include <stdint.h>

#define PGP_ADMIN_MAX_CONNECTIONS 64
#define PGP_ADMIN_TIMEOUT_S 10               /* idle time before a connection is closed */
#define PGP_ADMIN_CONN_MEMORY_BYTES (32 * 1024)   /* per connection: request line + headers */
#define PGP_ADMIN_MAX_BODY_BYTES (16 * 1024 * 1024)  /* cap on one response body */
#define PGP_ADMIN_DEFAULT_LIMIT 100          /* /debug/queries?limit= default */
#define PGP_ADMIN_MAX_LIMIT 10000

/* Error codes of pgp_admin_start besides negative errno values (-EADDRINUSE, ...). */
#define PGP_ADMIN_EINVAL (-1000)   /* unusable endpoint (unix socket, unresolvable host) */
#define PGP_ADMIN_EMHD (-1001)     /* libmicrohttpd refused to start */

typedef struct pgp_admin pgp_admin_t;

/* One request, borrowed by handlers and providers for the duration of the call. */
typedef struct pgp_admin_request {
    const char *method;   /* "GET", "HEAD", ... */
    const char *path;     /* decoded path without the query string, e.g. "/debug/queries" */
    const char *tail;     /* prefix routes: what follows the prefix ("" for exact routes) */
    void *conn;           /* opaque (the MHD connection), for pgp_admin_query_arg */
} pgp_admin_request_t;

typedef enum pgp_admin_order {
    PGP_ADMIN_ORDER_TOTAL = 0,   /* total time, descending (the default) */
    PGP_ADMIN_ORDER_MEAN,
    PGP_ADMIN_ORDER_CALLS,
} pgp_admin_order_t;

/* The parsed arguments of GET /debug/queries?order=total|mean|calls&limit=N. */
typedef struct pgp_admin_queries_args {
    pgp_admin_order_t order;
    uint32_t limit;          /* 1..PGP_ADMIN_MAX_LIMIT, default PGP_ADMIN_DEFAULT_LIMIT */
} pgp_admin_queries_args_t;

/*
 * Where the data comes from.  Every callback runs on the admin thread, may
 * be NULL (the endpoint then answers 503 {"error":"not available"}), and
 * returns 0, or a negative value for a 500 {"error":"internal error"}.
 * `out` (borrowed) is empty on entry; its cap is PGP_ADMIN_MAX_BODY_BYTES
 * and its sticky error is checked after the call (500 when set).
 */
/* What a route provider answers (content_type: a static string). */
typedef struct pgp_admin_response {
    unsigned status;            /* 200 on entry */
    const char *content_type;   /* JSON on entry */
    pgp_render_t *body;         /* borrowed, empty on entry */
} pgp_admin_response_t;

typedef struct pgp_admin_providers {
    void *ud;   /* passed back to every callback */
    /* GET /metrics: the whole Prometheus text exposition (pgp_render_prom_*). */
    int (*metrics)(void *ud, pgp_render_t *out);
    /* GET /debug/queries: one complete JSON value; args already validated. */
    int (*queries)(void *ud, const pgp_admin_request_t *req,
                   const pgp_admin_queries_args_t *args, pgp_render_t *out);
    /*
     * GET /readyz: 1 when ready, 0 when not (write a short reason into
     * why[0..cap), NUL-terminated), negative on failure.  NULL = always ready.
     */
    int (*ready)(void *ud, char *why, size_t cap);
    /*
     * Every other path, any method (HEAD is passed as GET): returns 1 when
     * the path is the provider's (resp filled: status, content type, body),
     * 0 for a 404, negative for a 500.  NULL = 404 for all.
     */
    int (*route)(void *ud, const pgp_admin_request_t *req, pgp_admin_response_t *resp);
    /*
     * One exact path GET without the token, or NULL: the dashboard page,
     * which holds no data (its script sends the token with its fetches).
     */
    const char *public_path;
} pgp_admin_providers_t;

#define PGP_ADMIN_CT_JSON "application/json; charset=utf-8"
#define PGP_ADMIN_CT_TEXT "text/plain; charset=utf-8"
#define PGP_ADMIN_CT_HTML "text/html; charset=utf-8"
#define PGP_ADMIN_CT_SVG "image/svg+xml" 

/*
 * Start the server on `listen` (borrowed; TCP host:port or [v6]:port; host
 * names are resolved here, once, with getaddrinfo; port 0 picks a free
 * port, see pgp_admin_port).  `token` (borrowed, copied; NULL or "" = no
 * auth).  `prov` is copied; prov->ud must stay valid until pgp_admin_stop
 * returns.  Returns 0 and *out (returns owned, free with pgp_admin_stop),
 * or a negative errno (-EADDRINUSE, -EACCES, -EADDRNOTAVAIL, ...),
 * PGP_ADMIN_EINVAL or PGP_ADMIN_EMHD, after one log line naming the
 * address.  Any thread; starts the admin thread.
 */
int pgp_admin_start(pgp_admin_t **out, const pgp_endpoint_t *listen, const char *token,
                    const pgp_admin_providers_t *prov) __attribute__((warn_unused_result));

/* The port actually bound (useful after port 0). */
uint16_t pgp_admin_port(const pgp_admin_t *a);

/*
 * Stop accepting, close every connection (clients still connected are cut
 * off), join the admin thread and free a.  NULL is a no-op.  Call from any
 * thread but the admin thread (never from a provider callback).
 */
void pgp_admin_stop(pgp_admin_t *a);

/*
 * The value of query argument `name` (URL-decoded; the first when
 * repeated), or NULL when absent or given without '=' ("?name"); "" for
 * "?name=".  Returns borrowed (valid during the handler or provider
 * call).  Admin thread only.
 */
const char *pgp_admin_query_arg(const pgp_admin_request_t *req, const char *name);

#endif
