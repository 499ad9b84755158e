/*
 * test_admin.c - the admin HTTP server, over real sockets: routes, status
 * codes and content types, argument validation, bearer-token auth,
 * provider failures, request limits (bodies, oversized request line and
 * headers), a slowloris client that must not block others, stop() with a
 * client still connected, and start errors.  The server runs with fake
 * providers on 127.0.0.1 at a port the kernel picks; requests are written
 * by hand so that malformed ones are possible.
 */
#include "pgproxy/admin.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define RESP_MAX 65536

/* ---- fake providers --------------------------------------------------------------- */

typedef struct fake {
    int ready;             /* what ready() returns */
    const char *why;       /* its reason */
    int fail;              /* queries/metrics return this */
    int misuse;            /* queries writes broken JSON: 1 = key in array, 2 = unterminated */
    int calls;
} fake_t;

static int fake_metrics(void *ud, pgp_render_t *out)
{
    fake_t *f = ud;
    f->calls++;
    pgp_render_prom_family(out, "pgproxy_queries_total", "counter", "Statements seen.");
    pgp_render_prom_sample_uint(out, "pgproxy_queries_total", NULL, 0, 42);
    return f->fail;
}

static int fake_queries(void *ud, const pgp_admin_request_t *req,
                        const pgp_admin_queries_args_t *args, pgp_render_t *out)
{
    static const char *const orders[] = { "total", "mean", "calls" };
    fake_t *f = ud;
    f->calls++;
    if (f->misuse == 1) {
        pgp_render_json_begin_array(out);
        pgp_render_json_key(out, "x");
        return 0;
    }
    pgp_render_json_begin_object(out);
    pgp_render_json_key(out, "order");
    pgp_render_json_cstr(out, orders[args->order]);
    pgp_render_json_key(out, "limit");
    pgp_render_json_uint(out, args->limit);
    pgp_render_json_key(out, "path");
    pgp_render_json_cstr(out, req->path);
    if (f->misuse != 2)
        pgp_render_json_end_object(out);
    return f->fail;
}

static int fake_ready(void *ud, char *why, size_t cap)
{
    fake_t *f = ud;
    if (f->why != NULL)
        snprintf(why, cap, "%s", f->why);
    return f->ready;
}

/* An endpoint by hand: the config parser rightly refuses port 0, the kernel's "any free port". */
static pgp_endpoint_t make_ep(const char *host, uint16_t port)
{
    pgp_endpoint_t ep;
    memset(&ep, 0, sizeof(ep));
    snprintf(ep.host, sizeof(ep.host), "%s", host);
    ep.port = port;
    return ep;
}

static pgp_admin_t *start_server(fake_t *f, const char *token, uint16_t *port)
{
    pgp_endpoint_t ep = make_ep("127.0.0.1", 0);
    pgp_admin_t *a = NULL;
    pgp_admin_providers_t prov = { .ud = f, .metrics = fake_metrics, .queries = fake_queries,
                                   .ready = fake_ready };
    ck_assert_int_eq(pgp_admin_start(&a, &ep, token, &prov), 0);
    ck_assert_ptr_nonnull(a);
    *port = pgp_admin_port(a);
    ck_assert_uint_ne(*port, 0);
    return a;
}

/* ---- a tiny HTTP client ---------------------------------------------------------------- */

static int connect_to(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct timeval tv = { .tv_sec = 5 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;   /* the server may close early on bad requests: the reply says how */
        s += w;
        n -= (size_t)w;
    }
}

/* Read until EOF or timeout into buf (NUL-terminated); returns bytes read. */
static size_t read_all(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t r = recv(fd, buf + n, cap - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    return n;
}

typedef struct resp {
    int status;            /* 0 when no status line came back */
    char raw[RESP_MAX];
    const char *body;      /* into raw */
} resp_t;

static void parse_resp(resp_t *r)
{
    r->status = 0;
    r->body = "";
    if (strncmp(r->raw, "HTTP/1.", 7) == 0 && strlen(r->raw) > 12)
        r->status = (int)strtol(r->raw + 9, NULL, 10);
    const char *b = strstr(r->raw, "\r\n\r\n");
    if (b != NULL)
        r->body = b + 4;
}

/* Send a raw request on a new connection and read the whole reply. */
static void http_raw(uint16_t port, const char *req, size_t len, resp_t *r)
{
    int fd = connect_to(port);
    send_all(fd, req, len);
    read_all(fd, r->raw, sizeof(r->raw));
    close(fd);
    parse_resp(r);
}

static void http(uint16_t port, const char *method, const char *target, const char *headers,
                 resp_t *r)
{
    char req[4096];
    int n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: localhost\r\n%sConnection: close\r\n\r\n",
                     method, target, headers != NULL ? headers : "");
    ck_assert(n > 0 && (size_t)n < sizeof(req));
    http_raw(port, req, (size_t)n, r);
}

/* Case-insensitive search for a header line "name: value" (value as a prefix). */
static bool has_header(const resp_t *r, const char *line)
{
    const char *end = strstr(r->raw, "\r\n\r\n");
    size_t n = strlen(line);
    for (const char *p = strstr(r->raw, "\r\n"); p != NULL && p < end; p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, line, n) == 0)
            return true;
    return false;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- routes -------------------------------------------------------------------------- */

#define CT_JSON "Content-Type: application/json; charset=utf-8"
#define CT_PROM "Content-Type: text/plain; version=0.0.4; charset=utf-8"

static const struct route_case {
    const char *method, *target, *headers;
    int status;
    const char *body;      /* exact body, or NULL */
    const char *header;    /* a header line that must be present, or NULL */
} route_cases[] = {
    { "GET", "/healthz", NULL, 200, "{\"status\":\"ok\"}\n", CT_JSON },
    { "GET", "/readyz", NULL, 200, "{\"status\":\"ready\"}\n", CT_JSON },
    { "GET", "/metrics", NULL, 200,
      "# HELP pgproxy_queries_total Statements seen.\n# TYPE pgproxy_queries_total counter\n"
      "pgproxy_queries_total 42\n", CT_PROM },
    { "GET", "/debug/queries", NULL, 200,
      "{\"order\":\"total\",\"limit\":100,\"path\":\"/debug/queries\"}", CT_JSON },
    { "GET", "/debug/queries?order=mean&limit=5", NULL, 200,
      "{\"order\":\"mean\",\"limit\":5,\"path\":\"/debug/queries\"}", NULL },
    { "GET", "/debug/queries?limit=10000&order=calls", NULL, 200,
      "{\"order\":\"calls\",\"limit\":10000,\"path\":\"/debug/queries\"}", NULL },
    { "GET", "/debug/queries?limit=1", NULL, 200,
      "{\"order\":\"total\",\"limit\":1,\"path\":\"/debug/queries\"}", NULL },
    { "GET", "/debug/queries?limit=0", NULL, 400,
      "{\"error\":\"limit: expected an integer from 1 to 10000\"}\n", CT_JSON },
    { "GET", "/debug/queries?limit=10001", NULL, 400, NULL, NULL },
    { "GET", "/debug/queries?limit=-1", NULL, 400, NULL, NULL },
    { "GET", "/debug/queries?limit=abc", NULL, 400, NULL, NULL },
    { "GET", "/debug/queries?limit=", NULL, 400, NULL, NULL },
    { "GET", "/debug/queries?limit", NULL, 200,
      "{\"order\":\"total\",\"limit\":100,\"path\":\"/debug/queries\"}", NULL },
    { "GET", "/debug/queries?limit=%37", NULL, 200,
      "{\"order\":\"total\",\"limit\":7,\"path\":\"/debug/queries\"}", NULL },
    { "GET", "/debug/queries?limit=5x", NULL, 400, NULL, NULL },
    { "GET", "/debug/queries?limit=99999999999999999999", NULL, 400, NULL, NULL },
    { "GET", "/debug/queries?order=slowest", NULL, 400,
      "{\"error\":\"order: expected total, mean or calls\"}\n", NULL },
    { "GET", "/nope", NULL, 404, "{\"error\":\"not found\"}\n", CT_JSON },
    { "GET", "/healthz/", NULL, 404, NULL, NULL },
    { "GET", "/", NULL, 404, NULL, NULL },
    { "POST", "/healthz", NULL, 405, "{\"error\":\"method not allowed\"}\n", "Allow: GET, HEAD" },
    { "DELETE", "/metrics", NULL, 405, NULL, "Allow: GET, HEAD" },
    { "PUT", "/nope", NULL, 404, NULL, NULL },
    { "GET", "/healthz", "Content-Length: 5\r\n", 413,
      "{\"error\":\"request bodies are not accepted\"}\n", NULL },
    { "GET", "/healthz", "Transfer-Encoding: chunked\r\n", 413, NULL, NULL },
    { "GET", "/healthz", "Content-Length: 0\r\n", 200, NULL, NULL },
    { "HEAD", "/healthz", NULL, 200, "", CT_JSON },
    { "GET", "/healthz", NULL, 200, NULL, "Cache-Control: no-store" },
};

START_TEST(test_routes)
{
    const struct route_case *c = &route_cases[_i];
    fake_t f = { .ready = 1 };
    uint16_t port;
    pgp_admin_t *a = start_server(&f, NULL, &port);
    resp_t *r = malloc(sizeof(*r));
    ck_assert_ptr_nonnull(r);
    http(port, c->method, c->target, c->headers, r);
    ck_assert_msg(r->status == c->status, "case %d: status %d want %d\n%s", _i, r->status,
                  c->status, r->raw);
    if (c->body != NULL)
        ck_assert_msg(strcmp(r->body, c->body) == 0, "case %d: body [%s] want [%s]", _i, r->body,
                      c->body);
    if (c->header != NULL)
        ck_assert_msg(has_header(r, c->header), "case %d: no [%s] in\n%s", _i, c->header, r->raw);
    free(r);
    pgp_admin_stop(a);
}
END_TEST

/* ---- providers: not ready, missing, failing --------------------------------------------- */

static const struct prov_case {
    fake_t fake;
    bool no_providers;
    const char *target;
    int status;
    const char *body;
} prov_cases[] = {
    { { .ready = 0, .why = "upstream 127.0.0.1:5432: connection refused" }, false, "/readyz", 503,
      "{\"status\":\"not ready\",\"reason\":\"upstream 127.0.0.1:5432: connection refused\"}\n" },
    { { .ready = 0, .why = "bad \xff\"byte" }, false, "/readyz", 503,
      "{\"status\":\"not ready\",\"reason\":\"bad \xEF\xBF\xBD\\\"byte\"}\n" },
    { { .ready = -1 }, false, "/readyz", 500, "{\"error\":\"internal error\"}\n" },
    { { .ready = 1, .fail = -5 }, false, "/metrics", 500, "{\"error\":\"internal error\"}\n" },
    { { .ready = 1, .fail = -5 }, false, "/debug/queries", 500, "{\"error\":\"internal error\"}\n" },
    { { .ready = 1, .misuse = 1 }, false, "/debug/queries", 500, "{\"error\":\"internal error\"}\n" },
    { { .ready = 1, .misuse = 2 }, false, "/debug/queries", 500, "{\"error\":\"internal error\"}\n" },
    { { .ready = 0 }, true, "/readyz", 200, "{\"status\":\"ready\"}\n" },
    { { .ready = 0 }, true, "/metrics", 503, "{\"error\":\"not available\"}\n" },
    { { .ready = 0 }, true, "/debug/queries", 503, "{\"error\":\"not available\"}\n" },
};

START_TEST(test_providers)
{
    const struct prov_case *c = &prov_cases[_i];
    fake_t f = c->fake;
    pgp_endpoint_t ep = make_ep("127.0.0.1", 0);
    pgp_admin_t *a = NULL;
    pgp_admin_providers_t prov = { .ud = &f, .metrics = fake_metrics, .queries = fake_queries,
                                   .ready = fake_ready };
    ck_assert_int_eq(pgp_admin_start(&a, &ep, "", c->no_providers ? NULL : &prov), 0);
    resp_t *r = malloc(sizeof(*r));
    ck_assert_ptr_nonnull(r);
    http(pgp_admin_port(a), "GET", c->target, NULL, r);
    ck_assert_msg(r->status == c->status, "case %d: status %d want %d\n%s", _i, r->status,
                  c->status, r->raw);
    ck_assert_msg(strcmp(r->body, c->body) == 0, "case %d: body [%s] want [%s]", _i, r->body,
                  c->body);
    ck_assert(has_header(r, CT_JSON));
    free(r);
    pgp_admin_stop(a);
}
END_TEST

/* ---- bearer token ------------------------------------------------------------------------- */

static const struct auth_case {
    const char *target, *headers;
    int status;
} auth_cases[] = {
    { "/healthz", NULL, 401 },
    { "/nope", NULL, 401 },                      /* no route discovery without the token */
    { "/metrics", NULL, 401 },                   /* and no provider call */
    { "/healthz", "Authorization: Bearer wrong-token-123\r\n", 401 },
    { "/healthz", "Authorization: Bearer s3cret-tok\r\n", 401 },       /* a prefix */
    { "/healthz", "Authorization: Bearer s3cret-token!\r\n", 401 },    /* longer */
    { "/healthz", "Authorization: Bearer \r\n", 401 },
    { "/healthz", "Authorization: Basic czNjcmV0LXRva2Vu\r\n", 401 },
    { "/healthz", "Authorization: s3cret-token\r\n", 401 },
    { "/healthz", "Authorization: Bearer s3cret-token\r\n", 200 },
    { "/healthz", "Authorization: bearer s3cret-token\r\n", 200 },
    { "/nope", "Authorization: Bearer s3cret-token\r\n", 404 },
    { "/metrics", "Authorization: Bearer s3cret-token\r\n", 200 },
};

START_TEST(test_auth)
{
    const struct auth_case *c = &auth_cases[_i];
    fake_t f = { .ready = 1 };
    uint16_t port;
    pgp_admin_t *a = start_server(&f, "s3cret-token", &port);
    resp_t *r = malloc(sizeof(*r));
    ck_assert_ptr_nonnull(r);
    http(port, "GET", c->target, c->headers, r);
    ck_assert_msg(r->status == c->status, "case %d: status %d want %d\n%s", _i, r->status,
                  c->status, r->raw);
    if (c->status == 401) {
        ck_assert_msg(has_header(r, "WWW-Authenticate: Bearer"), "%s", r->raw);
        ck_assert_str_eq(r->body, "{\"error\":\"unauthorized\"}\n");
        ck_assert_int_eq(f.calls, 0);
    }
    free(r);
    pgp_admin_stop(a);
}
END_TEST

/* ---- limits --------------------------------------------------------------------------------- */

/* A client that sends half a request and idles must not keep others from being served. */
START_TEST(test_slowloris)
{
    fake_t f = { .ready = 1 };
    uint16_t port;
    pgp_admin_t *a = start_server(&f, NULL, &port);
    int slow[8];
    for (size_t i = 0; i < N(slow); i++) {
        slow[i] = connect_to(port);
        send_all(slow[i], "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow:", 39);
    }
    resp_t *r = malloc(sizeof(*r));
    ck_assert_ptr_nonnull(r);
    double t0 = now_s();
    http(port, "GET", "/healthz", NULL, r);
    double dt = now_s() - t0;
    ck_assert_int_eq(r->status, 200);
    ck_assert_msg(dt < 1.0, "served after %.3f s", dt);
    /* The slow clients got nothing: their request is not complete. */
    for (size_t i = 0; i < N(slow); i++) {
        char b[16];
        ck_assert_int_eq(recv(slow[i], b, sizeof(b), MSG_DONTWAIT), -1);
        ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);
        close(slow[i]);
    }
    free(r);
    pgp_admin_stop(a);
}
END_TEST

/*
 * Every connection slot held by idle half-requests: the next client is not
 * served (MHD stops accepting; the kernel queues it), and once the idle
 * timeout has closed the idle ones, that same client is served.
 */
START_TEST(test_connection_limit_and_timeout)
{
    fake_t f = { .ready = 1 };
    uint16_t port;
    pgp_admin_t *a = start_server(&f, NULL, &port);
    int idle[PGP_ADMIN_MAX_CONNECTIONS];
    for (size_t i = 0; i < N(idle); i++) {
        idle[i] = connect_to(port);
        send_all(idle[i], "GET /healthz HTTP/1.1\r\n", 23);
    }
    usleep(200 * 1000);   /* let the server accept them all */
    double t0 = now_s();
    int fd = connect_to(port);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    send_all(fd, req, strlen(req));
    char b[512];
    struct timeval tv = { .tv_sec = 1 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ck_assert_int_eq(recv(fd, b, sizeof(b), 0), -1);   /* nothing while the slots are full */
    ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);
    tv.tv_sec = PGP_ADMIN_TIMEOUT_S + 10;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ssize_t n = recv(fd, b, sizeof(b) - 1, 0);
    double dt = now_s() - t0;
    ck_assert_int_gt(n, 12);
    b[n] = '\0';
    ck_assert_msg(strncmp(b, "HTTP/1.1 200", 12) == 0, "%s", b);
    ck_assert_msg(dt > PGP_ADMIN_TIMEOUT_S - 2, "served after %.1f s: no limit?", dt);
    close(fd);
    /* The idle ones were closed by the server. */
    for (size_t i = 0; i < N(idle); i++) {
        ck_assert_int_le(recv(idle[i], b, sizeof(b), MSG_DONTWAIT), 0);
        close(idle[i]);
    }
    pgp_admin_stop(a);
}
END_TEST

START_TEST(test_oversized)
{
    fake_t f = { .ready = 1 };
    uint16_t port;
    pgp_admin_t *a = start_server(&f, NULL, &port);
    size_t big = 2 * PGP_ADMIN_CONN_MEMORY_BYTES;
    char *req = malloc(big + 256);
    resp_t *r = malloc(sizeof(*r));
    ck_assert_ptr_nonnull(req);
    ck_assert_ptr_nonnull(r);

    /* Request line longer than the connection's memory: 414 URI Too Long. */
    memcpy(req, "GET /", 5);
    memset(req + 5, 'a', big);
    int n = snprintf(req + 5 + big, 256, " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    http_raw(port, req, 5 + big + (size_t)n, r);
    ck_assert_msg(r->status == 414, "status %d\n%.200s", r->status, r->raw);

    /* One header that does not fit: 431 Request Header Fields Too Large. */
    n = snprintf(req, 256, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(req + n, 'b', big);
    memcpy(req + n + big, "\r\n\r\n", 4);
    http_raw(port, req, (size_t)n + big + 4, r);
    ck_assert_msg(r->status == 431, "status %d\n%.200s", r->status, r->raw);
    ck_assert_int_eq(f.calls, 0);

    /* The server is still fine. */
    http(port, "GET", "/healthz", NULL, r);
    ck_assert_int_eq(r->status, 200);
    free(req);
    free(r);
    pgp_admin_stop(a);
}
END_TEST

/* Garbage instead of HTTP: an error reply or a close, never a crash; others still served. */
START_TEST(test_garbage)
{
#define JUNK(s) { s, sizeof(s) - 1 }
    static const struct { const char *s; size_t n; } junk[] = {
        JUNK("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"),   /* TLS ClientHello */
        JUNK("GET\r\n\r\n"),
        JUNK("GET /healthz HTTP/9.9\r\n\r\n"),
        JUNK("GET /healthz HTTP/1.1\r\nNoColonHere\r\n\r\n"),
        JUNK("GET /he\0lthz HTTP/1.1\r\n\r\n"),
    };
    fake_t f = { .ready = 1 };
    uint16_t port;
    pgp_admin_t *a = start_server(&f, NULL, &port);
    resp_t *r = malloc(sizeof(*r));
    ck_assert_ptr_nonnull(r);
    for (size_t i = 0; i < N(junk); i++) {
        int fd = connect_to(port);
        send_all(fd, junk[i].s, junk[i].n);
        shutdown(fd, SHUT_WR);
        read_all(fd, r->raw, sizeof(r->raw));
        close(fd);
        parse_resp(r);
        ck_assert_msg(r->status == 0 || r->status >= 400, "junk %zu: %s", i, r->raw);
    }
    http(port, "GET", "/healthz", NULL, r);
    ck_assert_int_eq(r->status, 200);
    free(r);
    pgp_admin_stop(a);
}
END_TEST

/* Keep-alive: two requests on one connection. */
START_TEST(test_keepalive)
{
    fake_t f = { .ready = 1 };
    uint16_t port;
    pgp_admin_t *a = start_server(&f, NULL, &port);
    int fd = connect_to(port);
    const char *one = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    const char *two = "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    send_all(fd, one, strlen(one));
    send_all(fd, two, strlen(two));
    char *buf = malloc(RESP_MAX);
    ck_assert_ptr_nonnull(buf);
    read_all(fd, buf, RESP_MAX);
    close(fd);
    const char *p = strstr(buf, "{\"status\":\"ok\"}");
    ck_assert_msg(p != NULL, "%s", buf);
    ck_assert_msg(strstr(p, "HTTP/1.1 200") != NULL && strstr(p, "{\"status\":\"ready\"}") != NULL,
                  "%s", buf);
    free(buf);
    pgp_admin_stop(a);
}
END_TEST

/* stop() returns promptly with clients connected, and they see the connection end. */
START_TEST(test_stop_with_client)
{
    fake_t f = { .ready = 1 };
    uint16_t port;
    pgp_admin_t *a = start_server(&f, NULL, &port);
    int idle = connect_to(port);
    int partial = connect_to(port);
    send_all(partial, "GET /heal", 9);
    /* Make sure the server accepted both before stopping. */
    resp_t *r = malloc(sizeof(*r));
    ck_assert_ptr_nonnull(r);
    http(port, "GET", "/healthz", NULL, r);
    ck_assert_int_eq(r->status, 200);
    double t0 = now_s();
    pgp_admin_stop(a);
    double dt = now_s() - t0;
    ck_assert_msg(dt < 1.0, "stop took %.3f s", dt);
    char b[64];
    ck_assert_int_le(recv(partial, b, sizeof(b), 0), 0);   /* EOF or reset, not a timeout */
    ck_assert_int_le(recv(idle, b, sizeof(b), 0), 0);
    close(idle);
    close(partial);
    /* The port is free again: nothing listens. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), -1);
    ck_assert_int_eq(errno, ECONNREFUSED);
    close(fd);
    free(r);
}
END_TEST

/* ---- start errors and addresses --------------------------------------------------------------- */

START_TEST(test_start_errors)
{
    fake_t f = { .ready = 1 };
    uint16_t port;
    pgp_admin_t *a = start_server(&f, NULL, &port), *b = (pgp_admin_t *)&f;
    pgp_endpoint_t ep;
    char text[64];
    snprintf(text, sizeof(text), "127.0.0.1:%u", (unsigned)port);
    ck_assert_int_eq(pgp_endpoint_parse(text, 9433, &ep, NULL, 0), 0);
    ck_assert_int_eq(pgp_admin_start(&b, &ep, NULL, NULL), -EADDRINUSE);
    ck_assert_ptr_null(b);
    pgp_admin_stop(a);

    ck_assert_int_eq(pgp_endpoint_parse("/tmp", 9433, &ep, NULL, 0), 0);
    ck_assert_int_eq(pgp_admin_start(&b, &ep, NULL, NULL), PGP_ADMIN_EINVAL);
    ck_assert_int_eq(pgp_endpoint_parse("host.invalid:1", 9433, &ep, NULL, 0), 0);
    ck_assert_int_eq(pgp_admin_start(&b, &ep, NULL, NULL), PGP_ADMIN_EINVAL);
    /* 192.0.2.1 (TEST-NET-1) is not a local address. */
    ep = make_ep("192.0.2.1", 0);
    ck_assert_int_eq(pgp_admin_start(&b, &ep, NULL, NULL), -EADDRNOTAVAIL);
    pgp_admin_stop(NULL);
}
END_TEST

START_TEST(test_ipv6)
{
    pgp_endpoint_t ep = make_ep("::1", 0);
    pgp_admin_t *a = NULL;
    int rc = pgp_admin_start(&a, &ep, NULL, NULL);
    if (rc == -EADDRNOTAVAIL || rc == -EAFNOSUPPORT) {
        fprintf(stderr, "test_ipv6: no IPv6 loopback here, skipped\n");
        return;
    }
    ck_assert_int_eq(rc, 0);
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_port = htons(pgp_admin_port(a)),
                               .sin6_addr = IN6ADDR_LOOPBACK_INIT };
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    send_all(fd, req, strlen(req));
    resp_t *r = malloc(sizeof(*r));
    ck_assert_ptr_nonnull(r);
    read_all(fd, r->raw, sizeof(r->raw));
    close(fd);
    parse_resp(r);
    ck_assert_int_eq(r->status, 200);
    free(r);
    pgp_admin_stop(a);
}
END_TEST

static Suite *admin_suite(void)
{
    Suite *s = suite_create("admin");
    TCase *tr = tcase_create("routes");
    tcase_add_loop_test(tr, test_routes, 0, N(route_cases));
    tcase_add_loop_test(tr, test_providers, 0, N(prov_cases));
    tcase_add_loop_test(tr, test_auth, 0, N(auth_cases));
    suite_add_tcase(s, tr);
    TCase *tl = tcase_create("limits");
    tcase_set_timeout(tl, 30);
    tcase_add_test(tl, test_slowloris);
    tcase_add_test(tl, test_oversized);
    tcase_add_test(tl, test_connection_limit_and_timeout);
    tcase_add_test(tl, test_garbage);
    tcase_add_test(tl, test_keepalive);
    tcase_add_test(tl, test_stop_with_client);
    tcase_add_test(tl, test_start_errors);
    tcase_add_test(tl, test_ipv6);
    suite_add_tcase(s, tl);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(admin_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
