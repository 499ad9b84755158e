/*
 * dial.c - non-blocking connects to the upstream, and cancel requests.
 *
 * Name resolution runs on libuv's thread pool; the rest is callbacks.
 * The cancel sender is a tiny self-owned object on a relay peer: connect,
 * (when the upstream hop uses TLS: SSLRequest and a handshake, so the
 * cancel key never crosses the network in clear), write the CancelRequest,
 * close after the write, free in the close callbacks (the server answers
 * a cancel by closing, it never replies).
 */
#include "pgproxy/dial.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "pgproxy/log.h"
#include "pgproxy/proto.h"
#include "pgproxy/tls.h"

static void dial_finish(pgp_dial_t *d, int status)
{
    if (status == 0 && d->io->handle.type == UV_TCP) {
        /* Latency matters more than segment count for a query protocol. */
        (void)uv_tcp_nodelay(&d->io->tcp, 1);
        (void)uv_tcp_keepalive(&d->io->tcp, 1, 60);
    }
    d->cb(d, status);
}

static void on_dial_connect(uv_connect_t *req, int status)
{
    pgp_dial_t *d = req->data;
    dial_finish(d, d->aborted && status == 0 ? UV_ECANCELED : status);
}

static void on_dial_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    pgp_dial_t *d = req->data;
    d->resolving = false;
    if (d->aborted || status < 0 || res == NULL) {
        if (res)
            uv_freeaddrinfo(res);
        dial_finish(d, d->aborted ? UV_ECANCELED : (status < 0 ? status : UV_EAI_NONAME));
        return;
    }
    d->conn.data = d;
    int r = uv_tcp_connect(&d->conn, &d->io->tcp, res->ai_addr, on_dial_connect);
    uv_freeaddrinfo(res);
    if (r < 0)
        dial_finish(d, r);
}

int pgp_dial_start(pgp_dial_t *d, uv_loop_t *loop, const pgp_endpoint_t *ep, pgp_stream_t *io,
                   pgp_dial_cb cb, void *data)
{
    int r;
    memset(d, 0, sizeof(*d));
    d->ep = *ep;
    d->io = io;
    d->cb = cb;
    d->data = data;
    d->conn.data = d;
    d->gai.data = d;

    if (ep->is_unix) {
        char path[PGP_ENDPOINT_UNIX_PATH_MAX + 1];
        if (pgp_endpoint_socket_path(ep, path, sizeof(path)) < 0)
            return UV_ENAMETOOLONG;
        r = uv_pipe_init(loop, &io->pipe, 0);
        if (r < 0)
            return r;
        d->io_ready = true;
        uv_pipe_connect(&d->conn, &io->pipe, path, on_dial_connect);
        return 0;
    }

    r = uv_tcp_init(loop, &io->tcp);
    if (r < 0)
        return r;
    d->io_ready = true;
    struct sockaddr_storage ss;
    if (uv_ip4_addr(ep->host, ep->port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(ep->host, ep->port, (struct sockaddr_in6 *)&ss) == 0) {
        r = uv_tcp_connect(&d->conn, &io->tcp, (const struct sockaddr *)&ss, on_dial_connect);
        if (r < 0)
            goto fail;
        return 0;
    }
    char port[8];
    snprintf(port, sizeof(port), "%u", ep->port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    d->resolving = true;
    r = uv_getaddrinfo(loop, &d->gai, on_dial_resolved, ep->host, port, &hints);
    if (r < 0) {
        d->resolving = false;
        goto fail;
    }
    return 0;
fail:
    return r;
}

void pgp_dial_abort(pgp_dial_t *d)
{
    d->aborted = true;
    if (d->resolving)
        (void)uv_cancel((uv_req_t *)&d->gai);
}

/* A cancel in flight: owns itself. */
typedef struct cancel_job {
    pgp_dial_t dial;
    pgp_peer_t peer;
    uv_timer_t timer;
    pgp_tls_ctx_t *tls;      /* a reference, or NULL: plaintext */
    bool plain_fallback;     /* the server may answer 'N' (upstream_tls = prefer) */
    bool answered;           /* the server answered our SSLRequest */
    int refs;                /* open handles + the dial callback still to come */
    size_t len;
    uint8_t pkt[12 + PGP_PROTO_CANCEL_KEY_MAX_BYTES];
} cancel_job_t;

static void cancel_unref(cancel_job_t *j)
{
    if (--j->refs == 0) {
        pgp_tls_ctx_free(j->tls);
        free(j);
    }
}

static void on_cancel_handle_close(uv_handle_t *h)
{
    cancel_unref(h->data);
}

static void cancel_job_end(cancel_job_t *j)
{
    if (j->dial.io_ready)
        pgp_peer_close(&j->peer);
    if (!uv_is_closing((uv_handle_t *)&j->timer))
        uv_close((uv_handle_t *)&j->timer, on_cancel_handle_close);
}

/* Write the CancelRequest (encrypted when TLS is up) and close once it is out. */
static void cancel_job_send(cancel_job_t *j)
{
    if (pgp_peer_send_copy(&j->peer, j->pkt, j->len) < 0) {
        cancel_job_end(j);
        return;
    }
    pgp_peer_close_after_write(&j->peer);
}

static void on_cancel_data(pgp_peer_t *p, pgp_chunk_t *c, size_t n)
{
    cancel_job_t *j = p->owner;
    uint8_t answer = c->data[0];
    pgp_chunk_put(c);
    if (j->answered)
        return;   /* the server never answers a cancel; nothing else is expected */
    j->answered = true;
    if (answer == 'S' && n == 1) {
        pgp_tls_t *t = pgp_tls_new(j->tls, j->dial.ep.host, false);
        if (t == NULL || pgp_peer_tls_start(p, t, NULL, 0) < 0) {
            if (t == NULL)
                cancel_job_end(j);
        }
        return;
    }
    if (answer == 'N' && j->plain_fallback) {
        pgp_peer_read_stop(p);
        cancel_job_send(j);
        return;
    }
    pgp_log(PGP_LOG_WARN, "cancel request not sent: the upstream refused TLS", NULL);
    cancel_job_end(j);
}

static void on_cancel_tls(pgp_peer_t *p, bool ok)
{
    cancel_job_t *j = p->owner;
    if (!ok) {
        pgp_log(PGP_LOG_WARN, "cancel request not sent: TLS handshake with upstream failed",
                "error", pgp_tls_reason(p->tls), NULL);
        cancel_job_end(j);
        return;
    }
    pgp_peer_read_stop(p);
    cancel_job_send(j);
}

static void on_cancel_error(pgp_peer_t *p, int status)
{
    cancel_job_t *j = p->owner;
    if (status != UV_EOF)
        pgp_log(PGP_LOG_DEBUG, "cancel request failed", "error", uv_strerror(status), NULL);
    cancel_job_end(j);
}

static void on_cancel_peer_closed(pgp_peer_t *p)
{
    cancel_job_t *j = p->owner;
    cancel_job_end(j);   /* the timer, when the close came from a finished write */
    cancel_unref(j);
}

static const pgp_peer_events_t cancel_events = { on_cancel_data, on_cancel_error,
                                                 on_cancel_peer_closed, on_cancel_tls };

static void on_cancel_connected(pgp_dial_t *d, int status)
{
    cancel_job_t *j = d->data;
    if (status < 0) {
        if (status != UV_ECANCELED)
            pgp_log(PGP_LOG_WARN, "cancel request: upstream connect failed", "error",
                    uv_strerror(status), NULL);
        cancel_job_end(j);
    } else if (j->tls != NULL) {
        uint8_t req[8];
        pgp_put_be32(req, 8);
        pgp_put_be32(req + 4, PGP_PROTO_SSL_REQUEST_CODE);
        if (pgp_peer_send_copy(&j->peer, req, sizeof(req)) < 0 ||
            pgp_peer_read_start(&j->peer) < 0)
            cancel_job_end(j);
    } else {
        cancel_job_send(j);
    }
    cancel_unref(j);
}

static void on_cancel_timeout(uv_timer_t *t)
{
    cancel_job_t *j = t->data;
    pgp_dial_abort(&j->dial);
    cancel_job_end(j);
}

void pgp_dial_send_cancel(uv_loop_t *loop, const pgp_endpoint_t *ep, pgp_tls_ctx_t *tls,
                          bool plain_fallback, uint32_t pid, const uint8_t *key, uint32_t key_len)
{
    cancel_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return;
    j->len = pgp_proto_cancel_request(j->pkt, sizeof(j->pkt), pid, key, key_len);
    if (j->len == 0 || uv_timer_init(loop, &j->timer) < 0) {
        free(j);
        return;
    }
    j->timer.data = j;
    j->tls = tls != NULL ? pgp_tls_ctx_ref(tls) : NULL;
    j->plain_fallback = plain_fallback;
    j->refs = 1;
    int r = pgp_dial_start(&j->dial, loop, ep, &j->peer.io, on_cancel_connected, j);
    if (j->dial.io_ready) {
        pgp_peer_init(&j->peer, &cancel_events, j);
        j->refs++;
    }
    if (r < 0) {
        cancel_job_end(j);
        return;
    }
    j->refs++;   /* released in on_cancel_connected */
    (void)uv_timer_start(&j->timer, on_cancel_timeout, 10000, 0);
}

/* Non-blocking connect of fd to addr within timeout_ms; 0 or an errno. */
static int probe_connect(int fd, const struct sockaddr *addr, socklen_t len, int timeout_ms)
{
    int flags = fcntl(fd, F_GETFL, 0);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return errno;
    if (connect(fd, addr, len) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return errno;
    struct pollfd p = { .fd = fd, .events = POLLOUT };
    int n = poll(&p, 1, timeout_ms);
    if (n == 0)
        return ETIMEDOUT;
    if (n < 0)
        return errno;
    int err = 0;
    socklen_t elen = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
        return errno;
    return err;
}

int pgp_dial_probe(const pgp_endpoint_t *ep, int timeout_ms, char *why, size_t cap)
{
    int err;
    if (ep->is_unix) {
        struct sockaddr_un un;
        memset(&un, 0, sizeof(un));
        un.sun_family = AF_UNIX;
        if (pgp_endpoint_socket_path(ep, un.sun_path, sizeof(un.sun_path)) < 0) {
            snprintf(why, cap, "socket path too long");
            return -1;
        }
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        err = fd < 0 ? errno : probe_connect(fd, (struct sockaddr *)&un, sizeof(un), timeout_ms);
        if (fd >= 0)
            close(fd);
    } else {
        char port[8];
        snprintf(port, sizeof(port), "%u", ep->port);
        struct addrinfo hints, *res = NULL;
        memset(&hints, 0, sizeof(hints));
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        int g = getaddrinfo(ep->host, port, &hints, &res);
        if (g != 0 || res == NULL) {
            snprintf(why, cap, "cannot resolve %s: %s", ep->host, gai_strerror(g));
            return -1;
        }
        int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        err = fd < 0 ? errno : probe_connect(fd, res->ai_addr, res->ai_addrlen, timeout_ms);
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
    }
    if (err == 0)
        return 0;
    char where[300];
    pgp_endpoint_format(ep, where, sizeof(where));
    snprintf(why, cap, "upstream %s: %s", where, strerror(err));
    return -1;
}
