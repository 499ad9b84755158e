/*
 * relay.c - peers, the chunk pool, zero-copy forwarding, backpressure.
 *
 * Fast path per chunk: one read(2) into a pooled chunk, one write(2) of
 * the same bytes with uv_try_write(), chunk back to the pool.  Only when
 * the kernel does not take everything does the chunk become a queued
 * write request (its uv_write_t is embedded), freed by its callback
 * whatever the status - as libuv's echo-server does.  A handle is only
 * reported closed from its close callback, after libuv has cancelled and
 * called back every queued write, so the owner may free the peer then.
 */
#include "pgproxy/relay.h"

#include <stdlib.h>
#include <string.h>

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

static void on_peer_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    pgp_peer_t *p = s->data;
    pgp_chunk_t *c = buf->base ? chunk_of(buf->base) : NULL;

    if (nread > 0) {
        p->bytes_read += (uint64_t)nread;
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
    if (p->want_read && !p->paused)
        return uv_read_start(&p->io.stream, on_peer_alloc, on_peer_read);
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
    if (!p->open || p->close_after_write) {
        pgp_chunk_put(c);
        return UV_EPIPE;
    }
    if (p->pending_writes == 0) {
        uv_buf_t b = uv_buf_init((char *)c->data + off, (unsigned)len);
        int n = uv_try_write(&p->io.stream, &b, 1);
        if (n == (int)len) {
            pgp_chunk_put(c);
            return 0;
        }
        if (n > 0) {
            off += (size_t)n;
            len -= (size_t)n;
        } else if (n != UV_EAGAIN && n != UV_ENOSYS) {
            pgp_chunk_put(c);
            return n;
        }
    }
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
