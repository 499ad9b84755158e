/*
 * server.c - listener, client limit, signals, graceful shutdown.
 *
 * The server owns the listening handle, the signal watchers and the drain
 * timer; sessions link themselves into srv->sessions and report back when
 * freed.  Shutdown: SIGTERM stops accepting and asks every session to
 * drain (idle ones close at once, busy ones at their next ReadyForQuery);
 * when the last session is gone, or proxy.shutdown_timeout_ms has passed,
 * the remaining handles close and pgp_server_run() returns.  SIGINT or a
 * second SIGTERM closes every session at once.  The server also holds the
 * TLS contexts sessions are made from, rebuilt from their files on SIGHUP.
 */
#include "pgproxy/server.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgproxy/clock.h"
#include "pgproxy/log.h"
#include "pgproxy/session.h"

/* Build the TLS contexts proxy.client_tls* and proxy.upstream_tls* ask for; 0 or -1 with err. */
static int tls_load(const pgp_config_t *cfg, pgp_tls_ctx_t **client, pgp_tls_ctx_t **upstream,
                    char *err, size_t errlen)
{
    char why[400];
    *client = *upstream = NULL;
    if (strcmp(cfg->proxy.client_tls, "disable") != 0) {
        *client = pgp_tls_ctx_server(cfg->proxy.client_tls_cert_file,
                                     cfg->proxy.client_tls_key_file, why, sizeof(why));
        if (*client == NULL) {
            snprintf(err, errlen, "proxy.client_tls: %s", why);
            return -1;
        }
    }
    const char *mode = cfg->proxy.upstream_tls;
    /* As libpq: TLS settings do not apply to a Unix-socket server. */
    if (strcmp(mode, "disable") != 0 && !cfg->proxy.upstream_ep.is_unix) {
        pgp_tls_verify_t v = strcmp(mode, "verify-full") == 0 ? PGP_TLS_VERIFY_FULL
                             : strcmp(mode, "verify-ca") == 0 ? PGP_TLS_VERIFY_CA
                                                              : PGP_TLS_VERIFY_NONE;
        /* As libpq: prefer never verifies; require verifies the chain when given a CA file. */
        const char *ca = strcmp(mode, "prefer") == 0 ? "" : cfg->proxy.upstream_tls_ca_file;
        *upstream = pgp_tls_ctx_client(v, ca,
                                       cfg->proxy.upstream_tls_cert_file,
                                       cfg->proxy.upstream_tls_key_file, why, sizeof(why));
        if (*upstream == NULL) {
            pgp_tls_ctx_free(*client);
            *client = NULL;
            snprintf(err, errlen, "proxy.upstream_tls: %s", why);
            return -1;
        }
    }
    return 0;
}

int pgp_server_reload_tls(pgp_server_t *srv)
{
    pgp_tls_ctx_t *client, *upstream;
    char err[512];
    if (srv->client_tls == NULL && srv->upstream_tls == NULL)
        return 0;
    if (tls_load(srv->cfg, &client, &upstream, err, sizeof(err)) < 0) {
        pgp_log(PGP_LOG_ERROR, "TLS reload failed, keeping the current certificates", "error",
                err, NULL);
        return -1;
    }
    pgp_tls_ctx_free(srv->client_tls);
    pgp_tls_ctx_free(srv->upstream_tls);
    srv->client_tls = client;
    srv->upstream_tls = upstream;
    pgp_log(PGP_LOG_INFO, "TLS certificates reloaded", NULL);
    return 0;
}

static void server_finish(pgp_server_t *srv)
{
    if (!uv_is_closing((uv_handle_t *)&srv->sig_term)) {
        uv_close((uv_handle_t *)&srv->sig_term, NULL);
        uv_close((uv_handle_t *)&srv->sig_int, NULL);
        uv_close((uv_handle_t *)&srv->sig_hup, NULL);
        uv_close((uv_handle_t *)&srv->drain_timer, NULL);
        uv_close((uv_handle_t *)&srv->sweep_timer, NULL);
    }
}

void pgp_server_session_ended(pgp_server_t *srv, bool counted)
{
    srv->session_count--;
    if (counted)
        srv->client_count--;
    if (srv->draining && srv->session_count == 0) {
        pgp_log(PGP_LOG_INFO, "shutdown complete", NULL);
        server_finish(srv);
    }
}

static void on_listener_connection(uv_stream_t *listener, int status)
{
    pgp_server_t *srv = listener->data;
    if (status < 0) {
        pgp_log(PGP_LOG_WARN, "accept failed", "error", uv_strerror(status), NULL);
        return;
    }
    int r = pgp_session_accept(srv);
    if (r < 0)
        pgp_log(PGP_LOG_WARN, "accept failed", "error", uv_strerror(r), NULL);
}

static void kill_all(pgp_server_t *srv, const char *reason)
{
    pgp_session_t *s = srv->sessions;
    while (s != NULL) {
        pgp_session_t *next = pgp_session_next(s);
        pgp_session_kill(s, reason);
        s = next;
    }
}

static void on_drain_timeout(uv_timer_t *t)
{
    pgp_server_t *srv = t->data;
    char n[16];
    snprintf(n, sizeof(n), "%u", srv->session_count);
    pgp_log(PGP_LOG_WARN, "shutdown timeout: closing busy sessions", "sessions", n, NULL);
    kill_all(srv, "shutdown timeout");
}

void pgp_server_drain(pgp_server_t *srv)
{
    if (srv->draining)
        return;
    srv->draining = true;
    if (srv->listening) {
        uv_close(&srv->listener.handle, NULL);
        srv->listening = false;
        if (srv->cfg->proxy.listen_ep.is_unix) {
            char path[PGP_ENDPOINT_UNIX_PATH_MAX + 1];
            if (pgp_endpoint_socket_path(&srv->cfg->proxy.listen_ep, path, sizeof(path)) == 0)
                (void)unlink(path);
        }
    }
    char n[16];
    snprintf(n, sizeof(n), "%u", srv->session_count);
    pgp_log(PGP_LOG_INFO, "shutdown: draining sessions", "sessions", n, NULL);
    if (srv->session_count == 0) {
        server_finish(srv);
        return;
    }
    (void)uv_timer_start(&srv->drain_timer, on_drain_timeout,
                         (uint64_t)srv->cfg->proxy.shutdown_timeout_ms, 0);
    pgp_session_t *s = srv->sessions;
    while (s != NULL) {
        pgp_session_t *next = pgp_session_next(s);
        pgp_session_drain(s);
        s = next;
    }
}

static void server_stop_now(pgp_server_t *srv)
{
    pgp_log(PGP_LOG_INFO, "immediate shutdown", NULL);
    if (!srv->draining)
        pgp_server_drain(srv);
    kill_all(srv, "immediate shutdown");
}

static void on_signal(uv_signal_t *h, int signum)
{
    pgp_server_t *srv = h->data;
    switch (signum) {
    case SIGTERM:
        if (srv->draining)
            server_stop_now(srv);
        else
            pgp_server_drain(srv);
        break;
    case SIGINT:
        server_stop_now(srv);
        break;
    case SIGHUP:
        pgp_log(PGP_LOG_INFO, "reload requested", NULL);
        if (srv->reload)
            srv->reload(srv->reload_ud);
        (void)pgp_server_reload_tls(srv);
        srv->reconfigured = true;
        break;
    default:
        break;
    }
}

static int listen_tcp(pgp_server_t *srv, const pgp_endpoint_t *ep)
{
    struct sockaddr_storage ss;
    int r;
    if (uv_ip4_addr(ep->host, ep->port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(ep->host, ep->port, (struct sockaddr_in6 *)&ss) != 0) {
        /* A host name: resolved once, before the loop serves anyone. */
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE;
        char port[8];
        snprintf(port, sizeof(port), "%u", ep->port);
        if (getaddrinfo(ep->host, port, &hints, &res) != 0 || res == NULL)
            return UV_EAI_NONAME;
        memcpy(&ss, res->ai_addr, res->ai_addrlen);
        freeaddrinfo(res);
    }
    r = uv_tcp_init(srv->loop, &srv->listener.tcp);
    if (r < 0)
        return r;
    srv->listening = true;
    r = uv_tcp_bind(&srv->listener.tcp, (const struct sockaddr *)&ss, 0);
    if (r < 0)
        return r;
    return uv_listen(&srv->listener.stream, 511, on_listener_connection);
}

static int listen_unix(pgp_server_t *srv, const pgp_endpoint_t *ep)
{
    char path[PGP_ENDPOINT_UNIX_PATH_MAX + 1];
    if (pgp_endpoint_socket_path(ep, path, sizeof(path)) < 0)
        return UV_ENAMETOOLONG;
    (void)unlink(path);   /* a stale socket from an earlier run */
    int r = uv_pipe_init(srv->loop, &srv->listener.pipe, 0);
    if (r < 0)
        return r;
    srv->listening = true;
    r = uv_pipe_bind(&srv->listener.pipe, path);
    if (r < 0)
        return r;
    if (chmod(path, (mode_t)srv->cfg->proxy.unix_socket_mode_bits) < 0)
        return uv_translate_sys_error(errno);
    return uv_listen(&srv->listener.stream, 511, on_listener_connection);
}

/*
 * Every few milliseconds: let each session close a request profile that
 * went idle (an inferred request has no other end), and hand out reloaded
 * profiler settings.  O(sessions) per tick, a few ns each when idle.
 */
static void on_sweep_timer(uv_timer_t *t)
{
    pgp_server_t *srv = t->data;
    pgp_profile_config_t pc, *reloaded = NULL;
    if (srv->reconfigured) {
        srv->reconfigured = false;
        pgp_session_profile_config(srv->cfg, &pc);
        reloaded = &pc;
    }
    uint64_t now_ns = pgp_clock_to_ns(pgp_clock_now());
    for (pgp_session_t *s = srv->sessions; s != NULL;) {
        pgp_session_t *next = pgp_session_next(s);
        pgp_session_tick(s, now_ns, reloaded);
        s = next;
    }
}

/* Sweep often enough that a request closes within ~1/4 gap of going idle. */
static uint64_t sweep_interval_ms(const pgp_config_t *cfg)
{
    uint64_t ms = (uint64_t)cfg->profiling.request_gap_ms / 4;
    return ms < 10 ? 10 : ms > 500 ? 500 : ms;
}

int pgp_server_start(pgp_server_t *srv, uv_loop_t *loop, const pgp_config_t *cfg,
                     pgp_observer_t *observer, pgp_server_reload_fn reload, void *ud)
{
    memset(srv, 0, sizeof(*srv));
    srv->loop = loop;
    srv->cfg = cfg;
    srv->observer = observer;
    srv->conn_stats = pgp_observer_conn_stats(observer);
    srv->reload = reload;
    srv->reload_ud = ud;

    char err[512];
    if (tls_load(cfg, &srv->client_tls, &srv->upstream_tls, err, sizeof(err)) < 0) {
        pgp_log(PGP_LOG_ERROR, "cannot set up TLS", "error", err, NULL);
        return UV_EINVAL;
    }
    srv->client_tls_mode = strcmp(cfg->proxy.client_tls, "require") == 0 ? PGP_CLIENT_TLS_REQUIRE
                           : strcmp(cfg->proxy.client_tls, "allow") == 0  ? PGP_CLIENT_TLS_ALLOW
                                                                          : PGP_CLIENT_TLS_DISABLE;
    srv->upstream_tls_mode = srv->upstream_tls == NULL ? PGP_UPSTREAM_TLS_DISABLE
                             : strcmp(cfg->proxy.upstream_tls, "prefer") == 0
                                 ? PGP_UPSTREAM_TLS_PREFER
                                 : PGP_UPSTREAM_TLS_REQUIRE;

    const pgp_endpoint_t *ep = &cfg->proxy.listen_ep;
    int r = ep->is_unix ? listen_unix(srv, ep) : listen_tcp(srv, ep);
    srv->listener.handle.data = srv;
    char where[300];
    pgp_endpoint_format(ep, where, sizeof(where));
    if (r < 0) {
        pgp_log(PGP_LOG_ERROR, "cannot listen", "listen", where, "error", uv_strerror(r), NULL);
        if (srv->listening) {
            uv_close(&srv->listener.handle, NULL);
            srv->listening = false;
            uv_run(loop, UV_RUN_NOWAIT);
        }
        return r;
    }
    uv_signal_init(loop, &srv->sig_term);
    uv_signal_init(loop, &srv->sig_int);
    uv_signal_init(loop, &srv->sig_hup);
    uv_timer_init(loop, &srv->drain_timer);
    uv_timer_init(loop, &srv->sweep_timer);
    srv->sig_term.data = srv->sig_int.data = srv->sig_hup.data = srv;
    srv->drain_timer.data = srv;
    srv->sweep_timer.data = srv;
    if (cfg->profiling.enabled) {
        uint64_t ms = sweep_interval_ms(cfg);
        uv_timer_start(&srv->sweep_timer, on_sweep_timer, ms, ms);
    }
    uv_unref((uv_handle_t *)&srv->sweep_timer);
    uv_signal_start(&srv->sig_term, on_signal, SIGTERM);
    uv_signal_start(&srv->sig_int, on_signal, SIGINT);
    uv_signal_start(&srv->sig_hup, on_signal, SIGHUP);
    /* Only the signal watchers and the listener keep the loop alive when idle. */
    uv_unref((uv_handle_t *)&srv->drain_timer);

    char upstream[300];
    pgp_endpoint_format(&cfg->proxy.upstream_ep, upstream, sizeof(upstream));
    pgp_log(PGP_LOG_INFO, "listening", "listen", where, "upstream", upstream, "version",
            PGP_VERSION, NULL);
    return 0;
}

void pgp_server_free(pgp_server_t *srv)
{
    pgp_tls_ctx_free(srv->client_tls);
    pgp_tls_ctx_free(srv->upstream_tls);
    srv->client_tls = srv->upstream_tls = NULL;
}

int pgp_server_run(pgp_server_t *srv)
{
    uv_run(srv->loop, UV_RUN_DEFAULT);
    return 0;
}
