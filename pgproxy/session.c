/*
 * session.c - the life of one proxied connection, and its relay.
 *
 * States: STARTUP (buffering the client's startup packet) -> CONNECTING
 * (dialing the upstream, TLS toward it) -> RELAY (bytes forwarded both
 * ways as they arrive) -> CLOSING (handles closing; freed after the last
 * close callback); CONSOLE instead of CONNECTING/RELAY for the SQL
 * console.  The first two live in session_start.c; this file owns the
 * lifetime (references, close, drain), the relay and what it observes.
 * Callbacks from the peers only report events; the session decides.
 *
 * While relaying, both directions go through an incremental framer.  The
 * session watches just enough of the protocol to be safe: the backend's
 * cancel key (to cancel a query whose client vanished), the number of
 * Query/Sync/FunctionCall messages still waiting for ReadyForQuery (busy
 * or idle, for cancel and for the shutdown drain), and whether the stream
 * sits at a message boundary (so pgproxy's own ErrorResponse never lands
 * inside another message).
 *
 * Authentication passes through, so while it runs over a TLS upstream
 * both directions go through the authentication guard (authguard.c):
 * SCRAM-SHA-256-PLUS is removed from the mechanisms relayed (channel
 * binding cannot cross a proxy), and a client that still signals channel
 * binding (gs2 flag 'y') is told here why it cannot log in instead of the
 * server failing it obscurely.
 */
#include "pgproxy/session.h"

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgproxy/authguard.h"
#include "pgproxy/cconn.h"
#include "pgproxy/clock.h"
#include "pgproxy/dial.h"
#include "pgproxy/log.h"
#include "pgproxy/observe.h"
#include "pgproxy/profile.h"
#include "pgproxy/proto.h"
#include "pgproxy/registry.h"
#include "pgproxy/server.h"
#include "pgproxy/tls.h"
#include "pgproxy/track.h"

#include "session_int.h"




void session_log_open(pgp_session_t *s)
{
    char id[24];
    snprintf(id, sizeof(id), "%llu", (unsigned long long)s->id);
    s->logged_open = true;
    pgp_log(PGP_LOG_INFO, "session open", "session", id, "client", s->info.client_addr, "user",
            s->info.user, "database", s->info.database, "application_name",
            s->info.application_name, NULL);
}

static void session_log_close(pgp_session_t *s)
{
    char id[24], dur[32], in[24], out[24];
    uint64_t ms = uv_now(s->srv->loop) - s->started_ms;
    snprintf(id, sizeof(id), "%llu", (unsigned long long)s->id);
    snprintf(dur, sizeof(dur), "%llu", (unsigned long long)ms);
    snprintf(in, sizeof(in), "%llu", (unsigned long long)s->client.bytes_read);
    snprintf(out, sizeof(out), "%llu", (unsigned long long)s->server.bytes_read);
    pgp_log(s->logged_open ? PGP_LOG_INFO : PGP_LOG_DEBUG, "session close", "session", id,
            "client", s->info.client_addr, "user", s->info.user, "database", s->info.database,
            "application_name", s->info.application_name, "duration_ms", dur, "bytes_in", in,
            "bytes_out", out, "reason", s->close_reason, NULL);
}

/* ---- lifetime ---------------------------------------------------------- */

static void session_free(pgp_session_t *s)
{
    pgp_server_t *srv = s->srv;
    pgp_observe_conn_stats_t *cs = srv->conn_stats;
    session_log_close(s);
    pgp_observe_add(&cs->client_connections, (uint64_t)-1);
    if (s->server_counted)
        pgp_observe_add(&cs->server_connections, (uint64_t)-1);
    /* Finishes the open request, if any (the client is gone: no notice). */
    pgp_profiler_destroy(s->profiler);
    s->profiler = NULL;
    pgp_cconn_destroy(s->console);
    s->console = NULL;
    free(s->notice);
    s->notice = NULL;
    pgp_registry_t *reg = pgp_observer_registry(srv->observer);
    if (reg != NULL)
        pgp_registry_remove(reg, s->conn);
    s->conn = NULL;
    if (s->track != NULL) {
        pgp_track_stats_t ts;
        pgp_track_get_stats(s->track, &ts);
        if (ts.dropped)
            pgp_observer_count_dropped(srv->observer, ts.dropped);
        pgp_track_destroy(s->track);
    }
    if (s->prev)
        s->prev->next = s->next;
    else
        srv->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    pgp_chunk_put(s->startup.early);
    free(s->startup.pkt);
    pgp_authguard_free(&s->tls.guard);
    bool counted = s->counted;
    free(s);
    pgp_server_session_ended(srv, counted);
}

static void on_session_timer_close(uv_handle_t *h)
{
    pgp_session_t *s = h->data;
    if (--s->refs == 0)
        session_free(s);
}

/* Drop one reference; when only the timer is left, close it too. */
void session_unref(pgp_session_t *s)
{
    s->refs--;
    if (s->refs == 1 && s->state == PGP_SESSION_CLOSING &&
        !uv_is_closing((uv_handle_t *)&s->timer))
        uv_close((uv_handle_t *)&s->timer, on_session_timer_close);
}

static void on_peer_closed(pgp_peer_t *p)
{
    session_unref(p->owner);
}

static void on_linger_timeout(uv_timer_t *t)
{
    pgp_session_t *s = t->data;
    pgp_peer_close(&s->client);
    pgp_peer_close(&s->server);
}

void session_close(pgp_session_t *s, const char *reason)
{
    if (s->state == PGP_SESSION_CLOSING)
        return;
    s->state = PGP_SESSION_CLOSING;
    s->close_reason = reason;
    if (s->dial.resolving)
        pgp_dial_abort(&s->dial);
    /* Let already queued bytes (an error for the client, a Terminate for
     * the server) go out, but never wait for them longer than the linger. */
    pgp_peer_close_after_write(&s->client);
    pgp_peer_close_after_write(&s->server);
    (void)uv_timer_start(&s->timer, on_linger_timeout, PGP_SESSION_LINGER_MS, 0);
    session_unref(s);   /* the reference the open state held */
}

/* Send pgproxy's own ErrorResponse to the client (if the stream allows one), then close. */
void session_fail(pgp_session_t *s, const char *sqlstate, const char *message,
                         const char *reason)
{
    if (s->state == PGP_SESSION_CLOSING)
        return;
    if (s->client.open && pgp_framer_at_boundary(&s->s2c)) {
        uint8_t buf[512];
        size_t n = pgp_proto_error_response(buf, sizeof(buf), "FATAL", sqlstate, message);
        if (n > 0)
            best_effort(pgp_peer_send_copy(&s->client, buf, n));
    }
    session_close(s, reason);
}

/* A CancelRequest to the upstream, over TLS when the upstream hop uses it. */
void session_send_cancel(pgp_server_t *srv, uint32_t pid, const uint8_t *key,
                                uint32_t key_len)
{
    pgp_dial_send_cancel(srv->loop, &srv->cfg->proxy.upstream_ep, srv->upstream_tls,
                         srv->upstream_tls_mode == PGP_UPSTREAM_TLS_PREFER, pid, key, key_len);
}

/* Cancel the backend's running query: used when its client vanished. */
static void session_cancel_backend(pgp_session_t *s)
{
    if (s->be.key_len == 0 || s->be.pending == 0 || s->client_terminated)
        return;
    session_send_cancel(s->srv, s->be.pid, s->be.key, s->be.key_len);
}

static bool session_idle(const pgp_session_t *s)
{
    return s->state == PGP_SESSION_RELAY && s->be.pending == 0 && s->be.txn_status == 'I' &&
           pgp_framer_at_boundary(&s->c2s) && pgp_framer_at_boundary(&s->s2c);
}

/* Drain path: tell the client why, let the backend end cleanly. */
static void session_close_idle(pgp_session_t *s)
{
    static const uint8_t terminate[5] = { PGP_FE_TERMINATE, 0, 0, 0, 4 };
    best_effort(pgp_peer_send_copy(&s->server, terminate, sizeof(terminate)));
    session_fail(s, "57P01", "terminating connection because pgproxy is shutting down",
                 "shutdown");
}

/* ---- protocol observation ---------------------------------------------- */

/* A ReadyForQuery went by: the session's state for the admin surfaces, the profiler's txn end. */
static void session_note_ready(pgp_session_t *s)
{
    if (s->conn != NULL && s->be.pending == 0) {
        pgp_conn_state_t st = s->be.txn_status == 'T'   ? PGP_CONN_IDLE_IN_TXN
                              : s->be.txn_status == 'E' ? PGP_CONN_IDLE_IN_FAILED_TXN
                                                        : PGP_CONN_IDLE;
        pgp_registry_conn_state(s->conn, st);
    }
    if (s->profiler != NULL)
        pgp_profiler_note_ready(s->profiler, (char)s->be.txn_status,
                                pgp_clock_to_ns(pgp_clock_now()));
}

/* Send the pending notice if the client's stream is between two messages. */
static void session_flush_notice(pgp_session_t *s)
{
    if (s->notice == NULL || s->state != PGP_SESSION_RELAY ||
        !pgp_framer_at_boundary(&s->s2c))
        return;
    /* A failed write shows up as a read or write error on the client soon enough. */
    best_effort(pgp_peer_send_copy(&s->client, s->notice, s->notice_len));
    free(s->notice);
    s->notice = NULL;
}

/* profiling.notify_client: "WARNING 01000 pgproxy: N+1 ..." for the request just finished. */
static void session_queue_notice(pgp_session_t *s, const pgp_profile_t *p)
{
    char text[768];
    if (s->notice != NULL || s->state != PGP_SESSION_RELAY ||
        !pgp_profile_notice_text(p, text, sizeof(text)))
        return;
    size_t cap = sizeof(text) + 64;
    uint8_t *buf = malloc(cap);
    if (buf == NULL)
        return;
    size_t n = pgp_proto_notice_response(buf, cap, "WARNING", "01000", text);
    if (n == 0) {
        free(buf);
        return;
    }
    s->notice = buf;
    s->notice_len = n;
}

static void on_profile_finished(void *ud, pgp_profile_t *p)
{
    pgp_session_t *s = ud;
    if (s->srv->cfg->profiling.notify_client && pgp_profile_finding_count(p) > 0)
        session_queue_notice(s, p);
    pgp_observer_profile_finished(s->srv->observer, s->conn, p);
}

static void on_c2s_begin(void *ud, uint8_t type, uint32_t len)
{
    pgp_session_t *s = ud;
    if (s->track != NULL)
        pgp_track_client_ops.begin(s->track, type, len);
    switch (type) {
    case PGP_FE_QUERY:
    case PGP_FE_SYNC:
    case PGP_FE_FUNCTION_CALL:
        s->be.pending++;
        if (s->conn != NULL)
            pgp_registry_conn_state(s->conn, PGP_CONN_ACTIVE);
        break;
    case PGP_FE_TERMINATE:
        s->client_terminated = true;
        break;
    default:
        break;
    }
}

static void on_s2c_begin(void *ud, uint8_t type, uint32_t len)
{
    pgp_session_t *s = ud;
    if (s->track != NULL)
        pgp_track_server_ops.begin(s->track, type, len);
    s->be.last_type = type;
    if (type == PGP_BE_READY_FOR_QUERY || type == PGP_BE_BACKEND_KEY_DATA) {
        s->be.capturing = true;
        s->be.capture_len = 0;
    }
}

static void on_s2c_body(void *ud, const uint8_t *p, size_t n)
{
    pgp_session_t *s = ud;
    if (s->track != NULL)
        pgp_track_server_ops.body(s->track, p, n);
    if (!s->be.capturing)
        return;
    size_t room = sizeof(s->be.capture) - s->be.capture_len;
    if (n > room)
        n = room;
    memcpy(s->be.capture + s->be.capture_len, p, n);
    s->be.capture_len += (uint32_t)n;
}

static void on_s2c_end(void *ud, uint8_t type)
{
    pgp_session_t *s = ud;
    if (s->track != NULL)
        pgp_track_server_ops.end(s->track, type);
    if (!s->be.capturing)
        return;
    s->be.capturing = false;
    if (type == PGP_BE_READY_FOR_QUERY) {
        s->be.txn_status = s->be.capture_len >= 1 ? s->be.capture[0] : 0;
        if (s->be.pending > 0)
            s->be.pending--;
        session_note_ready(s);
    } else if (type == PGP_BE_BACKEND_KEY_DATA) {
        uint32_t key_len = s->be.capture_len >= 8 ? s->be.capture_len - 4 : 0;
        if (key_len >= 4 && key_len <= PGP_PROTO_CANCEL_KEY_MAX_BYTES) {
            s->be.pid = pgp_be32(s->be.capture);
            memcpy(s->be.key, s->be.capture + 4, key_len);
            s->be.key_len = key_len;
        }
    }
}

static void on_c2s_body(void *ud, const uint8_t *p, size_t n)
{
    pgp_session_t *s = ud;
    pgp_track_client_ops.body(s->track, p, n);
}

static void on_c2s_end(void *ud, uint8_t type)
{
    pgp_session_t *s = ud;
    pgp_track_client_ops.end(s->track, type);
}

/* While authentication is guarded the guard sees the client's messages too. */
static void on_c2s_guard_begin(void *ud, uint8_t type, uint32_t len)
{
    pgp_session_t *s = ud;
    on_c2s_begin(ud, type, len);
    pgp_authguard_client_begin(&s->tls.guard, type);
}

static void on_c2s_guard_body(void *ud, const uint8_t *p, size_t n)
{
    pgp_session_t *s = ud;
    if (s->track != NULL)
        pgp_track_client_ops.body(s->track, p, n);
    pgp_authguard_client_body(&s->tls.guard, p, n);
}

static void on_c2s_guard_end(void *ud, uint8_t type)
{
    pgp_session_t *s = ud;
    if (s->track != NULL)
        pgp_track_client_ops.end(s->track, type);
    pgp_authguard_client_end(&s->tls.guard);
}

/* Without profiling the client side needs message starts only. */
static const pgp_frame_ops_t c2s_ops = { on_c2s_begin, NULL, NULL };
static const pgp_frame_ops_t c2s_tracked_ops = { on_c2s_begin, on_c2s_body, on_c2s_end };
static const pgp_frame_ops_t c2s_guard_ops = { on_c2s_guard_begin, on_c2s_guard_body,
                                               on_c2s_guard_end };
static const pgp_frame_ops_t s2c_ops = { on_s2c_begin, on_s2c_body, on_s2c_end };

static void on_track_event(void *ud, const pgp_track_event_t *ev)
{
    pgp_session_t *s = ud;
    const char *app = pgp_track_application_name(s->track);
    pgp_observe_ctx_t ctx = {
        .session_id = s->id,
        .database = s->info.database,
        .user = s->info.user,
        .application_name = app[0] ? app : s->info.application_name,
        .client_addr = s->info.client_addr,
        .profiler = s->profiler,
        .conn = s->conn,
    };
    if (s->conn != NULL && app[0])
        pgp_registry_set_application_name(pgp_observer_registry(s->srv->observer), s->conn,
                                          app);
    pgp_observer_record(s->srv->observer, &ctx, ev);
}

/* The session's profiler, configured from the (reloadable) profiling.* keys. */
static void session_start_profiling(pgp_session_t *s)
{
    pgp_profile_config_t pc;
    pgp_session_profile_config(s->srv->cfg, &pc);
    pgp_track_set_params(s->track, (pgp_track_params_t)pc.params);
    s->profiler = pgp_profiler_create(&pc, s->id, s->info.database, s->info.user,
                                      s->info.client_addr, on_profile_finished, s);
    if (s->profiler == NULL)
        pgp_observer_count_dropped(s->srv->observer, 1);
}

/* ---- relay ------------------------------------------------------------- */

static void on_client_data(pgp_peer_t *p, pgp_chunk_t *c, size_t n);
static void on_server_data(pgp_peer_t *p, pgp_chunk_t *c, size_t n);
static void on_client_error(pgp_peer_t *p, int status);
static void on_server_error(pgp_peer_t *p, int status);

static const pgp_peer_events_t client_events = { on_client_data, on_client_error, on_peer_closed,
                                                 session_on_client_tls };
const pgp_peer_events_t session_server_events = { on_server_data, on_server_error, on_peer_closed,
                                                 session_on_server_tls };

#define CHANNEL_BINDING_MESSAGE                                                                \
    "pgproxy: the client asked for SCRAM channel binding, which cannot pass through pgproxy "  \
    "when both hops use TLS; connect with channel_binding=disable, or connect to pgproxy "     \
    "without TLS (loopback or a Unix socket, the sidecar default)"

static void relay_client_bytes(pgp_session_t *s, pgp_chunk_t *c, size_t off, size_t n)
{
    pgp_observe_add(&s->srv->conn_stats->bytes_client_to_server, n);
    const pgp_frame_ops_t *ops = &c2s_ops;
    if (s->track != NULL) {
        pgp_track_set_now(s->track, pgp_clock_now().t);
        ops = &c2s_tracked_ops;
    }
    if (pgp_authguard_active(&s->tls.guard))
        ops = &c2s_guard_ops;
    if (pgp_framer_feed(&s->c2s, c->data + off, n, ops, s, NULL) != PGP_FRAME_OK) {
        pgp_chunk_put(c);
        session_fail(s, "08P01", "invalid message length from client", "protocol violation");
        return;
    }
    if (pgp_authguard_refused(&s->tls.guard)) {
        pgp_chunk_put(c);
        pgp_log(PGP_LOG_INFO, "client refused: SCRAM channel binding through TLS on both hops",
                "client", s->info.client_addr, "user", s->info.user, NULL);
        session_fail(s, "28000", CHANNEL_BINDING_MESSAGE, "channel binding requested");
        return;
    }
    if (pgp_peer_send(&s->server, c, off, n) < 0)
        session_fail(s, "08006", "lost connection to the server", "server write failed");
}

static void relay_server_bytes(pgp_session_t *s, pgp_chunk_t *c, size_t n)
{
    size_t bad_at = 0;
    bool was_boundary = pgp_framer_at_boundary(&s->s2c);
    pgp_observe_add(&s->srv->conn_stats->bytes_server_to_client, n);
    if (s->track != NULL)
        pgp_track_set_now(s->track, pgp_clock_now().t);
    if (pgp_framer_feed(&s->s2c, c->data, n, &s2c_ops, s, &bad_at) != PGP_FRAME_OK) {
        /* A broken server stream: pass on the well-formed messages before the
         * bad header; if that leaves the client on a boundary, say why. */
        bool boundary = bad_at > 0 || was_boundary;
        if (bad_at > 0)
            best_effort(pgp_peer_send(&s->client, c, 0, bad_at));
        else
            pgp_chunk_put(c);
        if (boundary) {
            uint8_t buf[128];
            size_t k = pgp_proto_error_response(buf, sizeof(buf), "FATAL", "08P01",
                                                "pgproxy: invalid message length from server");
            best_effort(pgp_peer_send_copy(&s->client, buf, k));
        }
        session_close(s, "server protocol violation");
        return;
    }
    if (pgp_peer_send(&s->client, c, 0, n) < 0) {
        session_cancel_backend(s);
        session_close(s, "client write failed");
        return;
    }
    if (s->notice != NULL)
        session_flush_notice(s);
    if (s->draining && session_idle(s))
        session_close_idle(s);
}

/*
 * Authentication over a TLS upstream: the guard's output (whole messages,
 * SCRAM-SHA-256-PLUS taken out) is relayed in chunks of its own; once the
 * guard ends, the rest of this read flows as usual.
 */
static void guard_server_bytes(pgp_session_t *s, pgp_chunk_t *c, size_t n)
{
    size_t pos = 0;
    while (pos < n && pgp_authguard_active(&s->tls.guard)) {
        pgp_chunk_t *out = pgp_chunk_get();
        size_t out_len = 0;
        ptrdiff_t r = PGP_AUTHGUARD_ENOMEM;
        if (out != NULL)
            r = pgp_authguard_server(&s->tls.guard, c->data + pos, n - pos, out->data,
                                     PGP_CHUNK_BYTES, &out_len);
        if (r < 0) {
            pgp_chunk_put(c);
            pgp_chunk_put(out);
            if (r == PGP_AUTHGUARD_ENOMEM)
                session_fail(s, "53200", "pgproxy: out of memory", "out of memory");
            else
                session_fail(s, "08P01", "pgproxy: invalid authentication message from server",
                             "server protocol violation");
            return;
        }
        pos += (size_t)r;
        if (out_len == 0) {
            pgp_chunk_put(out);
            continue;
        }
        relay_server_bytes(s, out, out_len);
        if (s->state != PGP_SESSION_RELAY) {
            pgp_chunk_put(c);
            return;
        }
    }
    if (pos == n) {
        pgp_chunk_put(c);
        return;
    }
    memmove(c->data, c->data + pos, n - pos);
    relay_server_bytes(s, c, n - pos);
}


static void on_server_data(pgp_peer_t *p, pgp_chunk_t *c, size_t n)
{
    pgp_session_t *s = p->owner;
    if (s->state == PGP_SESSION_RELAY) {
        if (pgp_authguard_active(&s->tls.guard)) {
            guard_server_bytes(s, c, n);
            return;
        }
        relay_server_bytes(s, c, n);
        return;
    }
    if (s->state == PGP_SESSION_CONNECTING && s->tls.ssl_answer_pending) {
        session_upstream_ssl_answer(s, c, n);
        return;
    }
    pgp_chunk_put(c);
}

static void on_server_error(pgp_peer_t *p, int status)
{
    pgp_session_t *s = p->owner;
    if (s->state == PGP_SESSION_CLOSING)
        return;
    if (s->be.last_type == PGP_BE_ERROR_RESPONSE) {
        /* The server said why (FATAL) before closing: that is the client's error. */
        session_close(s, status == UV_EOF ? "server closed" : "server error");
        return;
    }
    session_fail(s, "08006",
                 status == UV_EOF ? "server closed the connection unexpectedly"
                                  : "lost connection to the server",
                 status == UV_EOF ? "server closed" : "server error");
}

static void on_client_error(pgp_peer_t *p, int status)
{
    pgp_session_t *s = p->owner;
    if (s->state == PGP_SESSION_CLOSING)
        return;
    if (s->state == PGP_SESSION_RELAY)
        session_cancel_backend(s);
    if (s->client_terminated)
        session_close(s, "client terminated");
    else
        session_close(s, status == UV_EOF ? "client closed" : "client error");
}

/* ---- relay begins ---------------------------------------------------- */

/* The upstream hop is ready (TLS or not): send the startup packet, relay both ways. */
void session_begin_relay(pgp_session_t *s)
{
    (void)uv_timer_stop(&s->timer);
    s->state = PGP_SESSION_RELAY;
    if (pgp_peer_tls_up(&s->server))
        pgp_authguard_start(&s->tls.guard);
    if (s->srv->cfg->profiling.enabled) {
        /* Without memory for a tracker the session is relayed unobserved. */
        s->track = pgp_track_create((size_t)s->srv->cfg->profiling.max_sql_bytes,
                                    on_track_event, s);
        if (s->track == NULL)
            pgp_observer_count_dropped(s->srv->observer, 1);
        else
            session_start_profiling(s);
    }
    pgp_registry_t *reg = pgp_observer_registry(s->srv->observer);
    if (reg != NULL) {
        s->conn = pgp_registry_add(reg, s->id, s->info.user, s->info.database,
                                   s->info.client_addr, s->info.application_name,
                                   pgp_clock_to_wall_ns(pgp_clock_now()));
        if (pgp_peer_tls_up(&s->client))
            pgp_registry_set_tls(reg, s->conn, PGP_REGISTRY_TLS_CLIENT,
                                 pgp_tls_version(s->client.tls), pgp_tls_cipher(s->client.tls));
        if (pgp_peer_tls_up(&s->server))
            pgp_registry_set_tls(reg, s->conn, PGP_REGISTRY_TLS_SERVER,
                                 pgp_tls_version(s->server.tls), pgp_tls_cipher(s->server.tls));
    }
    s->server.dst = &s->client;
    s->client.dst = &s->server;
    pgp_framer_init(&s->c2s, (uint32_t)s->srv->cfg->proxy.max_message_bytes);
    pgp_framer_init(&s->s2c, UINT32_MAX >> 1);

    if (pgp_peer_send_copy(&s->server, s->startup.pkt, s->startup.len) < 0) {
        session_fail(s, "08006", "lost connection to the server", "server write failed");
        return;
    }
    free(s->startup.pkt);
    s->startup.pkt = NULL;
    if (s->startup.early != NULL) {
        pgp_chunk_t *c = s->startup.early;
        s->startup.early = NULL;
        relay_client_bytes(s, c, s->startup.early_off, s->startup.early_len);
        if (s->state != PGP_SESSION_RELAY)
            return;
    }
    if (pgp_peer_read_start(&s->server) < 0 || pgp_peer_read_start(&s->client) < 0)
        session_fail(s, "08006", "pgproxy: could not read from the connection", "read failed");
}

static void on_client_data(pgp_peer_t *p, pgp_chunk_t *c, size_t n)
{
    pgp_session_t *s = p->owner;
    switch (s->state) {
    case PGP_SESSION_RELAY:
        relay_client_bytes(s, c, 0, n);
        return;
    case PGP_SESSION_STARTUP:
        session_on_startup_bytes(s, c, n);
        return;
    case PGP_SESSION_CONSOLE:
        session_on_console_bytes(s, c, n);
        return;
    case PGP_SESSION_CONNECTING:   /* reads are stopped; nothing should arrive */
    case PGP_SESSION_CLOSING:
        pgp_chunk_put(c);
        return;
    }
}

/* ---- public ------------------------------------------------------------ */

int pgp_session_accept(pgp_server_t *srv)
{
    pgp_session_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return UV_ENOMEM;
    int r;
    if (srv->listener.handle.type == UV_NAMED_PIPE)
        r = uv_pipe_init(srv->loop, &s->client.io.pipe, 0);
    else
        r = uv_tcp_init(srv->loop, &s->client.io.tcp);
    if (r < 0) {
        free(s);
        return r;
    }
    r = uv_accept(&srv->listener.stream, &s->client.io.stream);
    pgp_peer_init(&s->client, &client_events, s);
    s->srv = srv;
    s->id = ++srv->next_session_id;
    s->state = PGP_SESSION_STARTUP;
    s->started_ms = uv_now(srv->loop);
    s->refs = 3;   /* client handle, timer, the open state */
    (void)uv_timer_init(srv->loop, &s->timer);
    s->timer.data = s;
    s->next = srv->sessions;
    if (s->next)
        s->next->prev = s;
    srv->sessions = s;
    srv->session_count++;
    pgp_observe_conn_stats_t *cs = srv->conn_stats;
    pgp_observe_add(&cs->connections_total, 1);
    pgp_observe_add(&cs->client_connections, 1);
    if (srv->client_count < (uint64_t)srv->cfg->proxy.max_client_connections) {
        s->counted = true;
        srv->client_count++;
    }
    if (r < 0) {
        session_close(s, "accept failed");
        return 0;
    }

    if (s->client.io.handle.type == UV_TCP) {
        struct sockaddr_storage ss;
        int len = sizeof(ss);
        (void)uv_tcp_nodelay(&s->client.io.tcp, 1);
        (void)uv_tcp_keepalive(&s->client.io.tcp, 1, 60);
        if (uv_tcp_getpeername(&s->client.io.tcp, (struct sockaddr *)&ss, &len) == 0) {
            char host[48] = "";
            int port = 0;
            if (ss.ss_family == AF_INET6) {
                uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof(host));
                port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
                snprintf(s->info.client_addr, sizeof(s->info.client_addr), "[%s]:%d", host,
                         port);
                const struct in6_addr *a6 = &((struct sockaddr_in6 *)&ss)->sin6_addr;
                s->info.is_local = IN6_IS_ADDR_LOOPBACK(a6) ||
                                   (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127);
            } else {
                uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof(host));
                port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
                snprintf(s->info.client_addr, sizeof(s->info.client_addr), "%s:%d", host, port);
                s->info.is_local =
                    (ntohl(((struct sockaddr_in *)&ss)->sin_addr.s_addr) >> 24) == 127;
            }
        }
    } else {
        session_copy_field(s->info.client_addr, sizeof(s->info.client_addr), "unix");
        s->info.is_local = true;
    }

    /* Far beyond the limit: don't even read, just free the slot. */
    if (!s->counted &&
        srv->session_count > (uint64_t)srv->cfg->proxy.max_client_connections + 256) {
        pgp_observe_add(&cs->connections_refused, 1);
        session_close(s, "too many clients");
        return 0;
    }
    (void)uv_timer_start(&s->timer, session_on_startup_timeout, PGP_SESSION_STARTUP_TIMEOUT_MS, 0);
    if (pgp_peer_read_start(&s->client) < 0)
        session_close(s, "read failed");
    return 0;
}

void pgp_session_drain(pgp_session_t *s)
{
    if (s->state == PGP_SESSION_CLOSING)
        return;
    if (s->state != PGP_SESSION_RELAY) {
        session_fail(s, "57P01", "terminating connection because pgproxy is shutting down",
                     "shutdown");
        return;
    }
    s->draining = true;
    if (session_idle(s))
        session_close_idle(s);
}

void pgp_session_kill(pgp_session_t *s, const char *reason)
{
    if (s->state == PGP_SESSION_RELAY)
        session_cancel_backend(s);
    session_close(s, reason);
    pgp_peer_close(&s->client);
    pgp_peer_close(&s->server);
}

void pgp_session_profile_config(const pgp_config_t *cfg, pgp_profile_config_t *out)
{
    static uint64_t ignore[64];   /* loop thread only; copied by the profiler */
    size_t n = 0;
    for (size_t i = 0; i < cfg->profiling.n_plus_one_ignore.count && n < 64; i++)
        if (pgp_config_parse_fingerprint(cfg->profiling.n_plus_one_ignore.items[i],
                                         &ignore[n]) == 0)
            n++;
    memset(out, 0, sizeof(*out));
    out->request_gap_ns = (uint64_t)cfg->profiling.request_gap_ms * 1000000u;
    out->n_plus_one_threshold = (uint32_t)cfg->profiling.n_plus_one_threshold;
    out->max_events = PGP_SESSION_PROFILE_MAX_EVENTS;
    out->max_text_bytes = PGP_SESSION_PROFILE_TEXT_BYTES;
    out->params = strcmp(cfg->profiling.params, "values") == 0  ? PGP_PARAMS_VALUES
                  : strcmp(cfg->profiling.params, "types") == 0 ? PGP_PARAMS_TYPES
                                                                : PGP_PARAMS_OFF;
    out->ignore_fingerprints = ignore;
    out->ignore_count = n;
}

void pgp_session_tick(pgp_session_t *s, uint64_t now_ns, const pgp_profile_config_t *reloaded)
{
    if (s->profiler == NULL || s->state != PGP_SESSION_RELAY)
        return;
    if (reloaded != NULL) {
        pgp_profiler_set_config(s->profiler, reloaded);
        pgp_track_set_params(s->track, (pgp_track_params_t)reloaded->params);
    }
    if (pgp_profiler_has_open(s->profiler)) {
        pgp_profiler_tick(s->profiler, now_ns);
        if (s->notice != NULL)
            session_flush_notice(s);
    }
}

pgp_session_t *pgp_session_next(const pgp_session_t *s)
{
    return s->next;
}
