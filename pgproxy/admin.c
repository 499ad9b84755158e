/*
 * admin.c - the admin HTTP server on libmicrohttpd.
 *
 * Owns the listening socket (bound here, so errors such as EADDRINUSE come
 * back as codes and the port is known before the server runs), the MHD
 * daemon and its thread, the copied token and providers.  Requests go
 * through one access callback: authentication, then the route table
 * (method, path or prefix, handler), then the handler, which fills a
 * pgp_render_t, a status and a content type.  Handlers own HTTP only;
 * everything pgproxy knows comes from the providers.
 *
 * Why one internal polling thread on epoll: a thread per connection would
 * let slow clients hold threads; one event-driven thread serves every other
 * client while a slowloris client idles, needs no FD_SETSIZE bound, and
 * calls the providers one at a time, so they need no locking among
 * themselves.  poll() is the fallback where epoll is missing.
 *
 * Deliberately not here: rendering of pgproxy data (providers), TLS,
 * request bodies (refused), keep-alive tuning beyond MHD's defaults.
 */
#include "pgproxy/admin.h"

#include "pgproxy/log.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CT_JSON PGP_ADMIN_CT_JSON
#define CT_METRICS "text/plain; version=0.0.4; charset=utf-8"
#define LISTEN_BACKLOG 64

struct pgp_admin {
    struct MHD_Daemon *daemon;
    char *token;              /* NULL: no auth */
    size_t token_len;
    pgp_admin_providers_t prov;
    uint16_t port;
    char addr[320];           /* for log lines */
};

/* What a handler produces. */
typedef struct admin_reply {
    unsigned status;
    const char *content_type;
    pgp_render_t body;
} admin_reply_t;

typedef void (*admin_handler_t)(pgp_admin_t *a, const pgp_admin_request_t *req,
                                admin_reply_t *rep);

typedef struct admin_route {
    const char *method;       /* GET routes also answer HEAD */
    const char *path;
    bool prefix;              /* path is a prefix; the rest is req->tail */
    admin_handler_t handler;
} admin_route_t;

static void handle_healthz(pgp_admin_t *a, const pgp_admin_request_t *req, admin_reply_t *rep);
static void handle_readyz(pgp_admin_t *a, const pgp_admin_request_t *req, admin_reply_t *rep);
static void handle_metrics(pgp_admin_t *a, const pgp_admin_request_t *req, admin_reply_t *rep);
static void handle_queries(pgp_admin_t *a, const pgp_admin_request_t *req, admin_reply_t *rep);

/* Add a route: one row here and a handler below (prefix rows see the rest in req->tail). */
static const admin_route_t routes[] = {
    { "GET", "/healthz", false, handle_healthz },
    { "GET", "/readyz", false, handle_readyz },
    { "GET", "/metrics", false, handle_metrics },
    { "GET", "/debug/queries", false, handle_queries },
};

#define ROUTE_COUNT (sizeof(routes) / sizeof(routes[0]))

static void handle_provided(pgp_admin_t *a, const pgp_admin_request_t *req, admin_reply_t *rep);
/* Whatever the table does not name goes to the providers' route callback. */
static const admin_route_t provided_route = { "*", "", true, handle_provided };

/* ---- replies --------------------------------------------------------------- */

/* Replace whatever the reply holds by {"error": msg}. */
static void reply_error(admin_reply_t *rep, unsigned status, const char *msg)
{
    pgp_render_free(&rep->body);
    rep->status = status;
    rep->content_type = CT_JSON;
    pgp_render_json_begin_object(&rep->body);
    pgp_render_json_key(&rep->body, "error");
    pgp_render_json_cstr(&rep->body, msg);
    pgp_render_json_end_object(&rep->body);
    pgp_render_char(&rep->body, '\n');
}

/*
 * Send rep (its body is handed to MHD) with an optional extra header.
 * Returns MHD_NO when MHD could not take it, which closes the connection.
 */
static enum MHD_Result reply_send(struct MHD_Connection *conn, admin_reply_t *rep,
                                  const char *hname, const char *hvalue)
{
    size_t len;
    char *body = pgp_render_take(&rep->body, &len);
    if (body == NULL)
        return MHD_NO;
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, rep->content_type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (hname != NULL)
        MHD_add_response_header(resp, hname, hvalue);
    enum MHD_Result rc = MHD_queue_response(conn, rep->status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *msg,
                                  const char *hname, const char *hvalue)
{
    admin_reply_t rep;
    pgp_render_init(&rep.body, PGP_ADMIN_MAX_BODY_BYTES);
    reply_error(&rep, status, msg);
    return reply_send(conn, &rep, hname, hvalue);
}

/* After a provider call: a failure or a render error becomes a 500 (logged once here). */
static void reply_check(admin_reply_t *rep, const pgp_admin_request_t *req, int rc)
{
    int rerr = pgp_render_error(&rep->body);
    if (rc >= 0 && rerr == 0)
        return;
    char code[16];
    snprintf(code, sizeof(code), "%d", rc < 0 ? rc : rerr);
    pgp_log(PGP_LOG_WARN, "admin request failed", "path", req->path,
            "error", rc < 0 ? "provider" : "render", "code", code, NULL);
    reply_error(rep, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error");
}

/* ---- handlers --------------------------------------------------------------- */

static void handle_healthz(pgp_admin_t *a, const pgp_admin_request_t *req, admin_reply_t *rep)
{
    (void)a;
    (void)req;
    pgp_render_json_begin_object(&rep->body);
    pgp_render_json_key(&rep->body, "status");
    pgp_render_json_cstr(&rep->body, "ok");
    pgp_render_json_end_object(&rep->body);
    pgp_render_char(&rep->body, '\n');
}

static void handle_readyz(pgp_admin_t *a, const pgp_admin_request_t *req, admin_reply_t *rep)
{
    char why[256] = "";
    int rc = 1;
    if (a->prov.ready != NULL)
        rc = a->prov.ready(a->prov.ud, why, sizeof(why));
    why[sizeof(why) - 1] = '\0';
    if (rc < 0) {
        reply_check(rep, req, rc);
        return;
    }
    if (rc == 0)
        rep->status = MHD_HTTP_SERVICE_UNAVAILABLE;
    pgp_render_json_begin_object(&rep->body);
    pgp_render_json_key(&rep->body, "status");
    pgp_render_json_cstr(&rep->body, rc > 0 ? "ready" : "not ready");
    if (rc == 0) {
        pgp_render_json_key(&rep->body, "reason");
        pgp_render_json_string(&rep->body, why, strnlen(why, sizeof(why)));
    }
    pgp_render_json_end_object(&rep->body);
    pgp_render_char(&rep->body, '\n');
    reply_check(rep, req, 0);
}

static void handle_metrics(pgp_admin_t *a, const pgp_admin_request_t *req, admin_reply_t *rep)
{
    if (a->prov.metrics == NULL) {
        reply_error(rep, MHD_HTTP_SERVICE_UNAVAILABLE, "not available");
        return;
    }
    rep->content_type = CT_METRICS;
    int rc = a->prov.metrics(a->prov.ud, &rep->body);
    reply_check(rep, req, rc);
}

/* Parse a decimal in [min, max] from text borrowed from the request; -1 when it is not one. */
static int parse_bounded(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 10)
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (i == 0 || v < min || v > max)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static void handle_queries(pgp_admin_t *a, const pgp_admin_request_t *req, admin_reply_t *rep)
{
    pgp_admin_queries_args_t args = { PGP_ADMIN_ORDER_TOTAL, PGP_ADMIN_DEFAULT_LIMIT };
    const char *order = pgp_admin_query_arg(req, "order");
    const char *limit = pgp_admin_query_arg(req, "limit");
    if (order != NULL) {
        if (strcmp(order, "total") == 0)
            args.order = PGP_ADMIN_ORDER_TOTAL;
        else if (strcmp(order, "mean") == 0)
            args.order = PGP_ADMIN_ORDER_MEAN;
        else if (strcmp(order, "calls") == 0)
            args.order = PGP_ADMIN_ORDER_CALLS;
        else {
            reply_error(rep, MHD_HTTP_BAD_REQUEST, "order: expected total, mean or calls");
            return;
        }
    }
    if (limit != NULL && parse_bounded(limit, 1, PGP_ADMIN_MAX_LIMIT, &args.limit) < 0) {
        reply_error(rep, MHD_HTTP_BAD_REQUEST, "limit: expected an integer from 1 to 10000");
        return;
    }
    if (a->prov.queries == NULL) {
        reply_error(rep, MHD_HTTP_SERVICE_UNAVAILABLE, "not available");
        return;
    }
    int rc = a->prov.queries(a->prov.ud, req, &args, &rep->body);
    if (rc >= 0 && !pgp_render_json_complete(&rep->body))
        rc = -1;   /* a half-written document is a provider bug, not a response */
    reply_check(rep, req, rc);
}

static void handle_provided(pgp_admin_t *a, const pgp_admin_request_t *req, admin_reply_t *rep)
{
    pgp_admin_request_t r = *req;
    r.tail = "";
    if (strcmp(r.method, "HEAD") == 0)
        r.method = "GET";   /* MHD leaves the body out of HEAD replies */
    pgp_admin_response_t resp = { MHD_HTTP_OK, CT_JSON, &rep->body };
    int rc = a->prov.route(a->prov.ud, &r, &resp);
    if (rc == 0) {
        reply_error(rep, MHD_HTTP_NOT_FOUND, "not found");
        return;
    }
    rep->status = resp.status;
    rep->content_type = resp.content_type;
    if (rc < 0 || pgp_render_error(&rep->body) != 0)
        reply_error(rep, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error");
}

/* ---- request entry ----------------------------------------------------------------- */

/* True when the request carries the right bearer token; compares in constant time. */
static bool authorized(const pgp_admin_t *a, struct MHD_Connection *conn)
{
    const char *v = NULL;
    size_t n = 0;
    if (a->token == NULL)
        return true;
    if (MHD_lookup_connection_value_n(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION,
                                      strlen(MHD_HTTP_HEADER_AUTHORIZATION), &v, &n) != MHD_YES ||
        v == NULL)
        return false;
    static const char scheme[] = "bearer ";
    const size_t sl = sizeof(scheme) - 1;
    if (n < sl || strncasecmp(v, scheme, sl) != 0)
        return false;
    v += sl;
    n -= sl;
    /* Time depends on the token's length only, never on where a mismatch is. */
    unsigned diff = (unsigned)(n != a->token_len);
    for (size_t i = 0; i < a->token_len; i++)
        diff |= (unsigned)((unsigned char)a->token[i] ^ (unsigned char)(i < n ? v[i] : 0));
    return diff == 0;
}

/* A body is announced by Content-Length (other than 0) or Transfer-Encoding. */
static bool has_body(struct MHD_Connection *conn)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL && strcmp(cl, "0") != 0)
        return true;
    return MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                       MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL;
}

static bool method_matches(const char *route_method, const char *method)
{
    return strcmp(route_method, method) == 0 ||
           (strcmp(route_method, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

/* Append "m" to the Allow list (", "-separated) unless present; silently stops when full. */
static void allow_add(char *allow, size_t cap, const char *m)
{
    size_t len = strnlen(allow, cap), ml = strlen(m);
    for (const char *p = allow; (p = strstr(p, m)) != NULL; p += ml)
        if ((p == allow || p[-1] == ' ') && (p[ml] == ',' || p[ml] == '\0'))
            return;
    if (len + ml + 3 > cap)
        return;
    if (len > 0) {
        memcpy(allow + len, ", ", 2);
        len += 2;
    }
    memcpy(allow + len, m, ml + 1);
}

/* The route for (url, method), or NULL with the allowed methods of the path in allow (maybe ""). */
static const admin_route_t *route_find(const char *url, const char *method, char *allow,
                                       size_t allow_cap, const char **tail)
{
    for (size_t i = 0; i < ROUTE_COUNT; i++) {
        const admin_route_t *r = &routes[i];
        size_t pl = strlen(r->path);
        bool path_ok = r->prefix ? strncmp(url, r->path, pl) == 0 : strcmp(url, r->path) == 0;
        if (!path_ok)
            continue;
        if (method_matches(r->method, method)) {
            *tail = r->prefix ? url + pl : "";
            return r;
        }
        allow_add(allow, allow_cap, r->method);
        if (strcmp(r->method, "GET") == 0)
            allow_add(allow, allow_cap, "HEAD");
    }
    return NULL;
}

/*
 * MHD calls this once when the headers are in (*con_cls NULL), then per
 * body chunk, then once with *upload_data_size 0.  Refusals (401, 404,
 * 405, 413) are answered on the first call, which makes MHD close the
 * connection afterwards (it has not read what may follow); accepted
 * requests are answered on the last call, so keep-alive works.
 */
static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    pgp_admin_t *a = cls;
    (void)version;
    (void)upload_data;
    pgp_admin_request_t req = { .method = method, .path = url, .tail = "", .conn = conn };
    if (*con_cls == NULL) {
        bool public_page = a->prov.public_path != NULL && a->prov.public_path[0] != '\0' &&
                           strcmp(url, a->prov.public_path) == 0 &&
                           (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0);
        if (!public_page && !authorized(a, conn))
            return send_error(conn, MHD_HTTP_UNAUTHORIZED, "unauthorized",
                              MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"pgproxy\"");
        char allow[64] = "";
        const admin_route_t *hit = route_find(url, method, allow, sizeof(allow), &req.tail);
        if (hit == NULL && allow[0] != '\0')
            return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed",
                              MHD_HTTP_HEADER_ALLOW, allow);
        if (hit == NULL && a->prov.route != NULL)
            hit = &provided_route;
        if (hit == NULL)
            return send_error(conn, MHD_HTTP_NOT_FOUND, "not found", NULL, NULL);
        if (has_body(conn))
            return send_error(conn, MHD_HTTP_CONTENT_TOO_LARGE,
                              "request bodies are not accepted", NULL, NULL);
        *con_cls = (void *)hit;
        return MHD_YES;
    }
    if (*upload_data_size != 0)
        return MHD_NO;   /* body bytes despite no announced body: drop the connection */
    const admin_route_t *hit = *con_cls;
    if (hit->prefix && hit != &provided_route)
        req.tail = url + strlen(hit->path);
    admin_reply_t rep = { .status = MHD_HTTP_OK, .content_type = CT_JSON };
    pgp_render_init(&rep.body, PGP_ADMIN_MAX_BODY_BYTES);
    hit->handler(a, &req, &rep);
    if (pgp_render_error(&rep.body) != 0)   /* e.g. out of memory writing the error itself */
        reply_error(&rep, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal error");
    return reply_send(conn, &rep, NULL, NULL);
}

const char *pgp_admin_query_arg(const pgp_admin_request_t *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

/* MHD's own diagnostics (malformed requests, resource limits): debug lines. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    const pgp_admin_t *a = cls;
    char line[512];
    if (!pgp_log_enabled(PGP_LOG_DEBUG))
        return;
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strnlen(line, sizeof(line));
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    pgp_log(PGP_LOG_DEBUG, "admin http", "listen", a->addr, "detail", line, NULL);
}

/* ---- start and stop ------------------------------------------------------------------ */

/* Resolve, bind and listen; returns the socket, or a negative errno / PGP_ADMIN_EINVAL. */
static int open_listener(const pgp_endpoint_t *ep, uint16_t *port_out)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_PASSIVE | AI_NUMERICSERV };
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)ep->port);
    if (ep->is_unix || getaddrinfo(ep->host, port, &hints, &res) != 0 || res == NULL)
        return PGP_ADMIN_EINVAL;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int rc = fd < 0 ? -errno : 0;
    int one = 1;
    if (rc == 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        rc = -errno;
    if (rc == 0 && bind(fd, res->ai_addr, res->ai_addrlen) < 0)
        rc = -errno;
    if (rc == 0 && listen(fd, LISTEN_BACKLOG) < 0)
        rc = -errno;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (rc == 0 && getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
        rc = -errno;
    freeaddrinfo(res);
    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        return rc;
    }
    *port_out = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

int pgp_admin_start(pgp_admin_t **out, const pgp_endpoint_t *listen_ep, const char *token,
                    const pgp_admin_providers_t *prov)
{
    pgp_admin_t *a = calloc(1, sizeof(*a));
    int fd = -1, rc;
    *out = NULL;
    if (a == NULL)
        return -ENOMEM;
    pgp_endpoint_format(listen_ep, a->addr, sizeof(a->addr));
    if (prov != NULL)
        a->prov = *prov;
    if (token != NULL && token[0] != '\0') {
        a->token_len = strlen(token);
        if ((a->token = strdup(token)) == NULL) {
            rc = -ENOMEM;
            goto fail;
        }
    }
    fd = open_listener(listen_ep, &a->port);
    if (fd < 0) {
        rc = fd;
        fd = -1;
        goto fail;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL
                                                                     : MHD_USE_POLL;
    a->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, a,
        MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)PGP_ADMIN_MAX_CONNECTIONS,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)PGP_ADMIN_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)PGP_ADMIN_CONN_MEMORY_BYTES,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, a,
        MHD_OPTION_END);
    if (a->daemon == NULL) {
        rc = PGP_ADMIN_EMHD;
        goto fail;
    }
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)a->port);
    pgp_log(PGP_LOG_INFO, "admin listening", "listen", a->addr, "port", port,
            "auth", a->token != NULL ? "bearer" : "none", NULL);
    *out = a;
    return 0;

fail:
    {
        char code[16];
        snprintf(code, sizeof(code), "%d", rc);
        pgp_log(PGP_LOG_ERROR, "admin cannot listen", "listen", a->addr, "error",
                rc == PGP_ADMIN_EINVAL ? "cannot resolve or unsupported address"
                : rc == PGP_ADMIN_EMHD ? "libmicrohttpd failed to start"
                                       : strerror(-rc),
                "code", code, NULL);
    }
    if (fd >= 0)
        close(fd);
    free(a->token);
    free(a);
    return rc;
}

uint16_t pgp_admin_port(const pgp_admin_t *a) { return a->port; }

void pgp_admin_stop(pgp_admin_t *a)
{
    if (a == NULL)
        return;
    /* Closes the listen socket and every connection, then joins the thread. */
    MHD_stop_daemon(a->daemon);
    if (a->token != NULL)
        memset(a->token, 0, a->token_len);
    free(a->token);
    free(a);
}
