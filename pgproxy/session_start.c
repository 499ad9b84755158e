/*
 * session_start.c - a session from the client's first byte to a ready upstream.
 *
 * The startup packet is buffered (capped) and parsed here: an SSLRequest
 * is answered 'S' and TLS begins when proxy.client_tls allows it ('N'
 * otherwise), a ClientHello as the first bytes is PostgreSQL 17's direct
 * TLS (ALPN "postgresql" required), a GSSENCRequest gets 'N', a
 * CancelRequest goes on to the server, database "pgproxy" is the SQL
 * console.  A StartupMessage makes the session dial the upstream; when
 * the upstream hop uses TLS, pgproxy sends its own SSLRequest and
 * handshakes before handing over to session.c's relay with the startup
 * packet.  Every failure here is a clean FATAL for the client: 08006 with
 * the upstream's address and OpenSSL's reason, 28000 for plaintext under
 * proxy.client_tls = require, 08P01 for a malformed packet.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgproxy/clock.h"
#include "pgproxy/log.h"
#include "pgproxy/observe.h"
#include "pgproxy/tls.h"
#include "session_int.h"

/* An upstream problem: the client gets FATAL 08006 "pgproxy: <what> <host:port>[: why]". */
static void session_upstream_failed(pgp_session_t *s, const char *what, const char *why,
                                    const char *reason)
{
    char where[300], msg[600];
    pgp_endpoint_format(&s->srv->cfg->proxy.upstream_ep, where, sizeof(where));
    if (why != NULL)
        snprintf(msg, sizeof(msg), "pgproxy: %s %s: %s", what, where, why);
    else
        snprintf(msg, sizeof(msg), "pgproxy: %s %s", what, where);
    pgp_log(PGP_LOG_WARN, reason, "upstream", where, "error", why != NULL ? why : what, NULL);
    session_fail(s, "08006", msg, reason);
}

/* The server's one-byte answer to our SSLRequest. */
void session_upstream_ssl_answer(pgp_session_t *s, pgp_chunk_t *c, size_t n)
{
    uint8_t answer = c->data[0];
    pgp_chunk_put(c);
    s->tls.ssl_answer_pending = false;
    if (answer == 'S' && n > 1) {
        /* Bytes before the handshake could be injected (CVE-2021-23222). */
        session_upstream_failed(s, "unencrypted data after the TLS answer of upstream", NULL,
                                "upstream TLS failed");
        return;
    }
    if (answer == 'S') {
        pgp_tls_t *t = pgp_tls_new(s->srv->upstream_tls, s->srv->cfg->proxy.upstream_ep.host,
                                   false);
        if (t == NULL) {
            /* Out of memory, or a host name OpenSSL cannot check a certificate against. */
            session_upstream_failed(s, "could not set up TLS toward upstream",
                                    "out of memory or an unusable host name",
                                    "upstream TLS failed");
            return;
        }
        if (pgp_peer_tls_start(&s->server, t, NULL, 0) < 0)
            session_fail(s, "53200", "pgproxy: out of memory", "out of memory");
        return;
    }
    if (answer == 'N' && s->srv->upstream_tls_mode == PGP_UPSTREAM_TLS_PREFER) {
        session_begin_relay(s);   /* prefer: plaintext on the same connection, as libpq */
        return;
    }
    session_upstream_failed(s, "upstream",
                            answer == 'N' ? "the server does not support TLS, which "
                                            "proxy.upstream_tls requires"
                                          : "the server refused the TLS request",
                            "upstream TLS failed");
}

static void count_handshake(pgp_session_t *s, int side, bool ok)
{
    pgp_observe_add(&s->srv->conn_stats->tls_handshakes[side][ok ? 0 : 1], 1);
}

void session_on_server_tls(pgp_peer_t *p, bool ok)
{
    pgp_session_t *s = p->owner;
    count_handshake(s, PGP_REGISTRY_TLS_SERVER, ok);
    if (s->state != PGP_SESSION_CONNECTING)
        return;
    if (!ok) {
        session_upstream_failed(s, "TLS handshake failed with upstream", pgp_tls_reason(p->tls),
                                "upstream TLS handshake failed");
        return;
    }
    session_begin_relay(s);
}

void session_on_client_tls(pgp_peer_t *p, bool ok)
{
    pgp_session_t *s = p->owner;
    count_handshake(s, PGP_REGISTRY_TLS_CLIENT, ok);
    if (s->state != PGP_SESSION_STARTUP)
        return;
    if (!ok) {
        /* The client expects TLS: nothing we could say would reach it in clear. */
        pgp_log(PGP_LOG_INFO, "client TLS handshake failed", "client", s->info.client_addr,
                "error", pgp_tls_reason(p->tls), NULL);
        session_close(s, "client TLS handshake failed");
        return;
    }
}

static void on_upstream_connected(pgp_dial_t *d, int status)
{
    pgp_session_t *s = d->data;
    if (s->state != PGP_SESSION_CONNECTING) {
        session_unref(s);   /* the dial's reference */
        return;
    }
    if (status < 0) {
        session_upstream_failed(s, "could not connect to upstream", uv_strerror(status),
                                "upstream unreachable");
        session_unref(s);
        return;
    }
    session_unref(s);   /* the dial's reference; the handle keeps its own */
    s->server_counted = true;
    pgp_observe_add(&s->srv->conn_stats->server_connections, 1);
    if (s->srv->upstream_tls == NULL) {
        session_begin_relay(s);
        return;
    }
    /* TLS first: our own SSLRequest; the connect timeout covers the handshake too. */
    uint8_t req[8];
    pgp_put_be32(req, 8);
    pgp_put_be32(req + 4, PGP_PROTO_SSL_REQUEST_CODE);
    s->tls.ssl_answer_pending = true;
    if (pgp_peer_send_copy(&s->server, req, sizeof(req)) < 0 ||
        pgp_peer_read_start(&s->server) < 0)
        session_fail(s, "08006", "lost connection to the server", "server write failed");
}

static void on_connect_timeout(uv_timer_t *t)
{
    pgp_session_t *s = t->data;
    char where[300], msg[400];
    pgp_endpoint_format(&s->srv->cfg->proxy.upstream_ep, where, sizeof(where));
    snprintf(msg, sizeof(msg), "pgproxy: timeout connecting to upstream %s", where);
    pgp_log(PGP_LOG_WARN, "upstream connect timeout", "upstream", where, NULL);
    session_fail(s, "08006", msg, "upstream connect timeout");
}

static void session_connect_upstream(pgp_session_t *s)
{
    const pgp_config_t *cfg = s->srv->cfg;
    s->state = PGP_SESSION_CONNECTING;
    pgp_peer_read_stop(&s->client);
    int r = pgp_dial_start(&s->dial, s->srv->loop, &cfg->proxy.upstream_ep, &s->server.io,
                           on_upstream_connected, s);
    if (s->dial.io_ready) {
        pgp_peer_init(&s->server, &session_server_events, s);
        s->refs++;
    }
    if (r < 0) {
        char msg[200];
        snprintf(msg, sizeof(msg), "pgproxy: could not connect to upstream: %s", uv_strerror(r));
        session_fail(s, "08006", msg, "upstream unreachable");
        return;
    }
    s->refs++;   /* the dial's callback */
    (void)uv_timer_start(&s->timer, on_connect_timeout, (uint64_t)cfg->proxy.connect_timeout_ms,
                         0);
}

/* ---- startup ----------------------------------------------------------- */

void session_copy_field(char *dst, size_t cap, const char *src)
{
    size_t n = src ? strnlen(src, cap - 1) : 0;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Send what the console wrote; close when it says so.  The output buffer is reused. */
static void session_console_flush(pgp_session_t *s, pgp_render_t *out, pgp_cconn_next_t next)
{
    if (pgp_render_len(out) > 0 &&
        pgp_peer_send_copy(&s->client, pgp_render_data(out), pgp_render_len(out)) < 0)
        next = PGP_CCONN_CLOSE;
    pgp_render_free(out);
    if (next == PGP_CCONN_CLOSE)
        session_close(s, "console closed");
}

/* database "pgproxy": no upstream, pgproxy answers (cconn.c, console.c). */
static void session_start_console(pgp_session_t *s, const uint8_t *early, size_t early_len)
{
    pgp_render_t out;
    pgp_cconn_next_t next;
    pgp_render_init(&out, PGP_SESSION_CONSOLE_OUTPUT_BYTES);
    (void)uv_timer_stop(&s->timer);
    s->state = PGP_SESSION_CONSOLE;
    s->console = pgp_cconn_start(s->srv->cfg, s->srv->console, s->info.user,
                                 s->info.application_name, s->info.is_local,
                                 (uint32_t)s->id, (uint32_t)(s->id * 2654435761u), &out, &next);
    if (s->console == NULL) {
        pgp_render_free(&out);
        session_fail(s, "53200", "pgproxy: out of memory", "out of memory");
        return;
    }
    if (next == PGP_CCONN_CONTINUE && early_len > 0)
        next = pgp_cconn_feed(s->console, early, early_len, &out);
    /* Console clients are listed too (SHOW CONNECTIONS shows who is looking). */
    pgp_registry_t *reg = pgp_observer_registry(s->srv->observer);
    if (reg != NULL && next == PGP_CCONN_CONTINUE)
        s->conn = pgp_registry_add(reg, s->id, s->info.user, s->info.database,
                                   s->info.client_addr, s->info.application_name,
                                   pgp_clock_to_wall_ns(pgp_clock_now()));
    session_console_flush(s, &out, next);
}

void session_on_console_bytes(pgp_session_t *s, pgp_chunk_t *c, size_t n)
{
    pgp_render_t out;
    pgp_render_init(&out, PGP_SESSION_CONSOLE_OUTPUT_BYTES);
    pgp_cconn_next_t next = pgp_cconn_feed(s->console, c->data, n, &out);
    pgp_chunk_put(c);
    session_console_flush(s, &out, next);
}

/*
 * Start TLS with the client: after answering 'S' to its SSLRequest, or at
 * once when its first bytes are a ClientHello (direct TLS: `hello` holds
 * them, and ALPN "postgresql" is required, as PostgreSQL 17 does).
 */
static void session_client_tls_begin(pgp_session_t *s, const uint8_t *hello, size_t len)
{
    static const uint8_t yes = 'S';
    if (hello == NULL && pgp_peer_send_copy(&s->client, &yes, 1) < 0) {
        session_close(s, "client write failed");
        return;
    }
    pgp_tls_t *t = pgp_tls_new(s->srv->client_tls, NULL, hello != NULL);
    if (t == NULL) {
        session_close(s, "out of memory");
        return;
    }
    if (pgp_peer_tls_start(&s->client, t, hello, len) < 0)
        session_close(s, "out of memory");
}

/* Handle one complete startup packet; `more` = bytes already read behind it. */
static void session_startup_packet(pgp_session_t *s, pgp_chunk_t *c, size_t rest_off,
                                   size_t more, bool *chunk_taken)
{
    pgp_startup_t st;
    const char *why = NULL;
    if (pgp_startup_parse(s->startup.pkt, s->startup.len, &st, &why) < 0) {
        char msg[200];
        snprintf(msg, sizeof(msg), "pgproxy: %s", why);
        session_fail(s, "08P01", msg,
                     "bad startup packet");
        return;
    }
    switch (st.kind) {
    case PGP_STARTUP_SSL_REQUEST:
    case PGP_STARTUP_GSSENC_REQUEST: {
        bool *answered = st.kind == PGP_STARTUP_SSL_REQUEST ? &s->startup.ssl_answered
                                                            : &s->startup.gss_answered;
        if (more > 0) {
            /* Bytes sent before our answer may be an injection (CVE-2021-23214). */
            session_fail(s, "08P01", "received unencrypted data after SSL request",
                         "data after encryption request");
            return;
        }
        if (*answered) {
            session_fail(s, "08P01", "pgproxy: duplicate encryption request",
                         "bad startup packet");
            return;
        }
        *answered = true;
        s->startup.len = 0;
        s->startup.need = 0;
        if (st.kind == PGP_STARTUP_SSL_REQUEST && s->srv->client_tls != NULL) {
            session_client_tls_begin(s, NULL, 0);
            return;
        }
        static const uint8_t no = 'N';
        if (pgp_peer_send_copy(&s->client, &no, 1) < 0)
            session_close(s, "client write failed");
        return;
    }
    case PGP_STARTUP_CANCEL_REQUEST:
        /* Forward on a fresh upstream connection; the server never answers. */
        session_send_cancel(s->srv, st.cancel_pid, st.cancel_key, st.cancel_key_len);
        session_close(s, "cancel request");
        return;
    case PGP_STARTUP_MESSAGE:
        break;
    }
    session_copy_field(s->info.user, sizeof(s->info.user), st.user);
    session_copy_field(s->info.database, sizeof(s->info.database), st.database);
    session_copy_field(s->info.application_name, sizeof(s->info.application_name),
               st.application_name);
    if (s->srv->client_tls_mode == PGP_CLIENT_TLS_REQUIRE && !pgp_peer_tls_up(&s->client) &&
        s->client.io.handle.type == UV_TCP) {
        session_fail(s, "28000",
                     "pgproxy: TLS is required (proxy.client_tls = require); connect with "
                     "sslmode=require or stronger",
                     "TLS required");
        return;
    }
    if (!s->counted) {
        pgp_observe_add(&s->srv->conn_stats->connections_refused, 1);
        session_fail(s, "53300", "sorry, too many clients already", "too many clients");
        return;
    }
    session_log_open(s);
    if (strcmp(s->info.database, PGP_CONSOLE_DATABASE) == 0) {
        session_start_console(s, c->data + rest_off, more);
        return;
    }
    if (more > 0) {
        s->startup.early = c;
        s->startup.early_off = rest_off;
        s->startup.early_len = more;
        *chunk_taken = true;
    }
    session_connect_upstream(s);
}

void session_on_startup_bytes(pgp_session_t *s, pgp_chunk_t *c, size_t n)
{
    size_t pos = 0;
    bool taken = false;
    if (s->startup.pkt == NULL) {
        s->startup.pkt = malloc(PGP_PROTO_STARTUP_MAX_BYTES);
        if (s->startup.pkt == NULL) {
            pgp_chunk_put(c);
            session_close(s, "out of memory");
            return;
        }
    }
    if (s->startup.len == 0 && !s->startup.ssl_answered && s->client.tls == NULL &&
        c->data[0] == PGP_PROTO_TLS_HANDSHAKE_BYTE && s->srv->client_tls != NULL) {
        s->startup.ssl_answered = true;
        session_client_tls_begin(s, c->data, n);
        pgp_chunk_put(c);
        return;
    }
    while (pos < n && s->state == PGP_SESSION_STARTUP) {
        uint32_t want = s->startup.need ? s->startup.need : 4;
        size_t k = n - pos;
        if (k > want - s->startup.len)
            k = want - s->startup.len;
        memcpy(s->startup.pkt + s->startup.len, c->data + pos, k);
        s->startup.len += (uint32_t)k;
        pos += k;
        if (s->startup.len < want)
            break;
        if (s->startup.need == 0) {
            s->startup.need = pgp_startup_length(s->startup.pkt);
            if (s->startup.need == 0) {
                session_fail(s, "08P01", "pgproxy: invalid length of startup packet",
                             "bad startup packet");
                break;
            }
            continue;
        }
        session_startup_packet(s, c, pos, n - pos, &taken);
    }
    if (!taken)
        pgp_chunk_put(c);
}

void session_on_startup_timeout(uv_timer_t *t)
{
    pgp_session_t *s = t->data;
    session_fail(s, "08P01", "pgproxy: timeout waiting for the startup packet",
                 "startup timeout");
}
