/*
 * relay.c - peers, the chunk pool, zero-copy forwarding, backpressure.
 *
 * Fast path per chunk: one read(2) into a pooled chunk, one write(2) of
 * the same bytes with uv_try_write(), chunk back to the pool.  Only when
 * the kernel does not take everything does the chunk become a queued
 * write request (its uv_write_t is embedded), freed by its callback
 * whatever the status - as libuv's echo-server does.  With TLS the same
 * path carries ciphertext: plaintext from the owner is encrypted into the
 * connection's output buffer and moved into chunks for the socket, and
 * ciphertext read is decrypted into fresh chunks before the owner sees it.
 * Decryption stops while the owner is not reading (backpressure, or a
 * session waiting for its upstream) and resumes where it left off when
 * reading starts again.  A handle is only
 * reported closed from its close callback, after libuv has cancelled and
 * called back every queued write, so the owner may free the peer then.
 */
#include "pgproxy/relay.h"

#include <stdlib.h>
#include <string.h>

#include "pgproxy/tls.h"

/* Free chunks kept per thread; beyond this they go back to malloc. */
#define PGP_CHUNK_POOL_MAX 64u

static _Thread_local pgp_chunk_t *pool_head;
static _Thread_local unsigned pool_count;

pgp_chunk_t *pgp_chunk_get(void)
{
    pgp_chunk_t *c = pool_head;
    if (c != NULL) {
        pool_head = c->next_free;
        pool_count--;
        return c;
    }
    return malloc(sizeof(pgp_chunk_t));
}

void pgp_chunk_put(pgp_chunk_t *c)
{
    if (c == NULL)
        return;
    if (pool_count >= PGP_CHUNK_POOL_MAX) {
        free(c);
        return;
    }
    c->next_free = pool_head;
    pool_head = c;
    pool_count++;
}

void pgp_chunk_pool_drain(void)
{
    while (pool_head != NULL) {
        pgp_chunk_t *c = pool_head;
        pool_head = c->next_free;
        free(c);
    }
    pool_count = 0;
}

static pgp_chunk_t *chunk_of(char *base)
{
    return (pgp_chunk_t *)(void *)(base - offsetof(pgp_chunk_t, data));
}

void pgp_peer_init(pgp_peer_t *p, const pgp_peer_events_t *ev, void *owner)
{
    /* io comes first and was initialized by the caller: keep it. */
    memset((char *)p + offsetof(pgp_peer_t, dst), 0, sizeof(*p) - offsetof(pgp_peer_t, dst));
    p->io.handle.data = p;
    p->ev = ev;
    p->owner = owner;
    p->open = true;
}

static void on_peer_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    pgp_chunk_t *c = pgp_chunk_get();
    if (c == NULL) {
        *buf = uv_buf_init(NULL, 0);   /* libuv reports UV_ENOBUFS */
        return;
    }
    *buf = uv_buf_init((char *)c->data, PGP_CHUNK_BYTES);
}

static int peer_try_write(pgp_peer_t *p, const uint8_t *data, size_t len);
static int peer_queue(pgp_peer_t *p, pgp_chunk_t *c, size_t off, size_t len);
static int peer_send_raw(pgp_peer_t *p, pgp_chunk_t *c, size_t off, size_t len);

/*
 * Send everything TLS has produced for the peer (handshake, records,
 * alerts): straight from TLS's buffer when the socket takes it, as a
 * queued chunk otherwise.
 */
static int peer_tls_flush(pgp_peer_t *p)
{
    const uint8_t *data;
    size_t len;
    while ((len = pgp_tls_out_peek(p->tls, &data)) > 0) {
        if (!p->open || p->close_after_write)
            return UV_EPIPE;
        int n = peer_try_write(p, data, len);
        if (n < 0)
            return n;
        if (n > 0) {
            pgp_tls_out_consume(p->tls, (size_t)n);
            continue;
        }
        pgp_chunk_t *c = pgp_chunk_get();
        if (c == NULL)
            return UV_ENOMEM;
        size_t k = len < PGP_CHUNK_BYTES ? len : PGP_CHUNK_BYTES;
        memcpy(c->data, data, k);
        pgp_tls_out_consume(p->tls, k);
        int r = peer_queue(p, c, 0, k);
        if (r < 0)
            return r;
    }
    return 0;
}

static void peer_tls_fail(pgp_peer_t *p, int status)
{
    p->tls_broken = true;
    if (p->open)
        p->ev->on_error(p, status);
}

/* Hand decrypted bytes to the owner, a chunk at a time, while it reads. */
static void peer_tls_drain(pgp_peer_t *p)
{
    if (p->tls_draining)
        return;
    p->tls_draining = true;
    while (p->open && p->want_read && !p->paused && !p->tls_broken) {
        pgp_chunk_t *c = pgp_chunk_get();
        if (c == NULL) {
            peer_tls_fail(p, UV_ENOMEM);
            break;
        }
        size_t fill = 0;
        pgp_tls_status_t st = PGP_TLS_OK;
        while (fill < PGP_CHUNK_BYTES) {
            size_t got = 0;
            st = pgp_tls_read(p->tls, c->data + fill, PGP_CHUNK_BYTES - fill, &got);
            if (st != PGP_TLS_OK)
                break;
            fill += got;
            if (!pgp_tls_has_input(p->tls)) {
                st = PGP_TLS_WANT;   /* spare OpenSSL a read that can only say "want more" */
                break;
            }
        }
        if (fill > 0)
            p->ev->on_data(p, c, fill);
        else
            pgp_chunk_put(c);
        if (st == PGP_TLS_OK)
            continue;   /* the chunk filled up: there may be more */
        if (p->open && pgp_tls_out_pending(p->tls) > 0 && peer_tls_flush(p) < 0) {
            peer_tls_fail(p, UV_EPIPE);
            break;
        }
        if (st != PGP_TLS_WANT)
            peer_tls_fail(p, st == PGP_TLS_CLOSED ? UV_EOF : UV_EPROTO);
        break;
    }
    p->tls_draining = false;
}

/* One handshake step; reports the outcome to the owner once it is known. */
static void peer_tls_handshake(pgp_peer_t *p)
{
    pgp_tls_status_t st = pgp_tls_handshake(p->tls);
    int w = peer_tls_flush(p);
    if (st == PGP_TLS_WANT) {
        if (w < 0)
            peer_tls_fail(p, w);
        return;
    }
    if (st != PGP_TLS_OK)
        p->tls_broken = true;
    p->ev->on_tls(p, st == PGP_TLS_OK);
    if (st == PGP_TLS_OK)
        peer_tls_drain(p);
}

/* Ciphertext read from the socket; data is only borrowed for this call. */
static void peer_tls_input(pgp_peer_t *p, const uint8_t *data, size_t n)
{
    if (p->tls_broken)
        return;
    pgp_tls_feed_borrowed(p->tls, data, n);
    if (!pgp_tls_established(p->tls))
        peer_tls_handshake(p);
    else
        peer_tls_drain(p);
    /* Whatever is left (reading paused) is copied before the chunk goes back. */
    if (p->tls != NULL && pgp_tls_feed_end(p->tls) < 0)
        peer_tls_fail(p, UV_ENOMEM);
}

static void on_peer_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    pgp_peer_t *p = s->data;
    pgp_chunk_t *c = buf->base ? chunk_of(buf->base) : NULL;

    if (nread > 0) {
        p->bytes_read += (uint64_t)nread;
        if (p->tls != NULL) {
            peer_tls_input(p, c->data, (size_t)nread);
            pgp_chunk_put(c);
            return;
        }
        p->ev->on_data(p, c, (size_t)nread);
        return;
    }
    pgp_chunk_put(c);
    if (nread < 0)
        p->ev->on_error(p, (int)nread);
}

static int peer_apply_read(pgp_peer_t *p)
{
    if (!p->open)
        return 0;
    if (p->want_read && !p->paused) {
        int r = uv_read_start(&p->io.stream, on_peer_alloc, on_peer_read);
        if (r == UV_EALREADY)
            r = 0;   /* already reading (a TLS peer reads during its handshake) */
        /* Plaintext decrypted earlier but not yet delivered: no socket read may come for it. */
        if (r == 0 && pgp_peer_tls_up(p) && pgp_tls_has_input(p->tls))
            peer_tls_drain(p);
        return r;
    }
    return uv_read_stop(&p->io.stream);
}

int pgp_peer_read_start(pgp_peer_t *p)
{
    p->want_read = true;
    return peer_apply_read(p);
}

void pgp_peer_read_stop(pgp_peer_t *p)
{
    p->want_read = false;
    (void)peer_apply_read(p);
}

static void on_peer_handle_close(uv_handle_t *h)
{
    pgp_peer_t *p = h->data;
    pgp_tls_free(p->tls);
    p->tls = NULL;
    p->ev->on_close(p);
}

void pgp_peer_close(pgp_peer_t *p)
{
    if (!p->open)
        return;
    p->open = false;
    p->want_read = false;
    uv_close(&p->io.handle, on_peer_handle_close);
}

void pgp_peer_close_after_write(pgp_peer_t *p)
{
    if (!p->open)
        return;
    pgp_peer_read_stop(p);
    if (pgp_peer_tls_up(p) && !p->close_after_write) {
        pgp_tls_shutdown(p->tls);   /* close_notify, as PostgreSQL and libpq send */
        (void)peer_tls_flush(p);
    }
    if (p->pending_writes == 0)
        pgp_peer_close(p);
    else
        p->close_after_write = true;
}

static void on_peer_write(uv_write_t *req, int status)
{
    pgp_chunk_t *c = (pgp_chunk_t *)(void *)req;
    pgp_peer_t *p = req->data;

    pgp_chunk_put(c);
    p->pending_writes--;
    if (status < 0) {
        if (status != UV_ECANCELED && p->open)
            p->ev->on_error(p, status);
        return;
    }
    if (p->close_after_write && p->pending_writes == 0) {
        pgp_peer_close(p);
        return;
    }
    pgp_peer_t *src = p->dst;
    if (src != NULL && src->paused && p->io.stream.write_queue_size < PGP_RELAY_LOW_WATERMARK) {
        src->paused = false;
        if (peer_apply_read(src) < 0)
            src->ev->on_error(src, UV_EIO);
    }
}

int pgp_peer_send(pgp_peer_t *p, pgp_chunk_t *c, size_t off, size_t len)
{
    if (p->tls == NULL)
        return peer_send_raw(p, c, off, len);
    /* Nothing goes out in clear once TLS has begun, nor before it is up. */
    if (!p->open || p->close_after_write || !pgp_peer_tls_up(p)) {
        pgp_chunk_put(c);
        return UV_EPIPE;
    }
    pgp_tls_status_t st = pgp_tls_write(p->tls, c->data + off, len);
    pgp_chunk_put(c);
    if (st != PGP_TLS_OK) {
        p->tls_broken = true;
        return UV_EPROTO;
    }
    return peer_tls_flush(p);
}

bool pgp_peer_tls_up(const pgp_peer_t *p)
{
    return p->tls != NULL && !p->tls_broken && pgp_tls_established(p->tls);
}

int pgp_peer_tls_start(pgp_peer_t *p, struct pgp_tls *tls, const uint8_t *initial, size_t len)
{
    p->tls = tls;
    if (len > 0 && pgp_tls_feed(tls, initial, len) < 0) {
        p->tls_broken = true;
        return UV_ENOMEM;
    }
    peer_tls_handshake(p);
    return 0;
}

/*
 * When nothing is queued on p, write(2) directly: the bytes the kernel
 * took (0 when it took none), or a libuv error.
 */
static int peer_try_write(pgp_peer_t *p, const uint8_t *data, size_t len)
{
    if (p->pending_writes > 0)
        return 0;   /* order: the queue goes first */
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    int n = uv_try_write(&p->io.stream, &b, 1);
    return n == UV_EAGAIN || n == UV_ENOSYS ? 0 : n;
}

/* Queue chunk->data[off, off+len) as a write request (takes the chunk); pauses p->dst if full. */
static int peer_queue(pgp_peer_t *p, pgp_chunk_t *c, size_t off, size_t len)
{
    uv_buf_t b = uv_buf_init((char *)c->data + off, (unsigned)len);
    c->req.data = p;
    int r = uv_write(&c->req, &p->io.stream, &b, 1, on_peer_write);
    if (r < 0) {
        pgp_chunk_put(c);
        return r;
    }
    p->pending_writes++;
    pgp_peer_t *src = p->dst;
    if (src != NULL && !src->paused && p->io.stream.write_queue_size > PGP_RELAY_HIGH_WATERMARK) {
        src->paused = true;
        (void)peer_apply_read(src);
    }
    return 0;
}

static int peer_send_raw(pgp_peer_t *p, pgp_chunk_t *c, size_t off, size_t len)
{
    if (!p->open || p->close_after_write) {
        pgp_chunk_put(c);
        return UV_EPIPE;
    }
    int n = peer_try_write(p, c->data + off, len);
    if (n < 0 || (size_t)n == len) {
        pgp_chunk_put(c);
        return n < 0 ? n : 0;
    }
    return peer_queue(p, c, off + (size_t)n, len - (size_t)n);
}

int pgp_peer_send_copy(pgp_peer_t *p, const void *data, size_t len)
{
    if (len > PGP_CHUNK_BYTES)
        return UV_EINVAL;
    pgp_chunk_t *c = pgp_chunk_get();
    if (c == NULL)
        return UV_ENOMEM;
    memcpy(c->data, data, len);
    return pgp_peer_send(p, c, 0, len);
}
