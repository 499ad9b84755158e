/*
 * relay.h - one side of a proxied connection ("peer") and zero-copy
 * forwarding between two peers with backpressure.
 *
 * Reads land in pooled 64 KiB chunks.  The owner of a peer gets each chunk
 * (taking ownership) and normally passes it on with pgp_peer_send(), which
 * first tries a direct write(2) and, when the kernel takes only part, moves
 * the chunk itself into a libuv write request - bytes are never copied on
 * the forwarding path.  While a peer's write queue is above the high
 * watermark, reading from the peer that feeds it is stopped; it resumes
 * below the low watermark, so a slow reader can't make pgproxy buffer a
 * large result.  The chunk pool is per thread.
 *
 * A peer may carry TLS (tls.c): reads are then decrypted before the owner
 * sees them and sends encrypted on the way out, so the owner deals in
 * plaintext either way.  The chunk holding ciphertext goes back to the
 * pool; plaintext lands in fresh chunks (one copy each way, in OpenSSL).
 *
 * This module knows nothing about PostgreSQL; session.c gives the bytes
 * their meaning.
 */
#ifndef PGPROXY_RELAY_H
#define PGPROXY_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define PGP_CHUNK_BYTES (64u * 1024u)
/* Write-queue watermarks (bytes) for pausing and resuming the feeding side. */
#define PGP_RELAY_HIGH_WATERMARK (256u * 1024u)
#define PGP_RELAY_LOW_WATERMARK (64u * 1024u)

/* A pooled read buffer; doubles as its own write request. */
typedef struct pgp_chunk {
    uv_write_t req;
    struct pgp_chunk *next_free;
    uint8_t data[PGP_CHUNK_BYTES];
} pgp_chunk_t;

/* Any stream handle a peer may use. */
typedef union pgp_stream {
    uv_handle_t handle;
    uv_stream_t stream;
    uv_tcp_t tcp;
    uv_pipe_t pipe;
} pgp_stream_t;

typedef struct pgp_peer pgp_peer_t;
struct pgp_tls;

/* What a peer reports to its owner.  All run on the loop thread. */
typedef struct pgp_peer_events {
    /* nread > 0 bytes arrived in chunk (takes ownership of chunk). */
    void (*on_data)(pgp_peer_t *p, pgp_chunk_t *chunk, size_t nread);
    /* EOF (UV_EOF) or a read/write error on this peer. */
    void (*on_error)(pgp_peer_t *p, int status);
    /* The handle is closed; the peer may be freed after this. */
    void (*on_close)(pgp_peer_t *p);
    /* TLS handshake finished: ok, or failed (pgp_tls_reason(p->tls) says why).
     * Required for peers that start TLS. */
    void (*on_tls)(pgp_peer_t *p, bool ok);
} pgp_peer_events_t;

struct pgp_peer {
    pgp_stream_t io;
    pgp_peer_t *dst;          /* the peer this one's bytes are forwarded to */
    const pgp_peer_events_t *ev;
    void *owner;
    struct pgp_tls *tls;      /* NULL: plaintext; owned, freed with the handle */
    uint64_t bytes_read;
    uint32_t pending_writes;  /* queued write requests on this peer */
    bool open;                /* handle initialized, close not yet requested */
    bool want_read;           /* owner wants reads */
    bool paused;              /* reads stopped: dst's write queue is full */
    bool close_after_write;   /* close once pending_writes drops to 0 */
    bool tls_broken;          /* TLS failed: nothing more is read or written through it */
    bool tls_draining;        /* delivering decrypted bytes (no re-entry) */
};

/* Get a chunk from this thread's pool, or NULL when out of memory. */
pgp_chunk_t *pgp_chunk_get(void);
/* Return a chunk to this thread's pool (NULL is ignored). */
void pgp_chunk_put(pgp_chunk_t *c);
/* Free this thread's pooled chunks (at thread or process exit). */
void pgp_chunk_pool_drain(void);

/* Prepare a peer whose io handle the caller has just initialized. */
void pgp_peer_init(pgp_peer_t *p, const pgp_peer_events_t *ev, void *owner);

/* Start or stop delivering reads (respects backpressure).  Returns 0 or a libuv error. */
__attribute__((warn_unused_result)) int pgp_peer_read_start(pgp_peer_t *p);
void pgp_peer_read_stop(pgp_peer_t *p);

/*
 * Write chunk->data[off, off+len) to p.  Takes ownership of chunk in every
 * case.  Returns 0 (written or queued) or a negative libuv error (the
 * caller should close the session).  May pause p->dst (backpressure).
 */
__attribute__((warn_unused_result)) int pgp_peer_send(pgp_peer_t *p, pgp_chunk_t *chunk, size_t off,
                                                      size_t len);

/* Write a copy of data (<= PGP_CHUNK_BYTES) to p.  Same returns as pgp_peer_send. */
__attribute__((warn_unused_result)) int pgp_peer_send_copy(pgp_peer_t *p, const void *data,
                                                           size_t len);

/*
 * Switch p to TLS: from now on reads are fed to tls and sends are
 * encrypted.  Takes ownership of tls.  `initial` (may be NULL) holds
 * ciphertext already read (a direct-TLS ClientHello).  Runs the first
 * handshake step (a client side sends its ClientHello now).  The result
 * comes through ev->on_tls, possibly before this returns.  Returns 0 or a
 * libuv error (tls then belongs to p all the same).
 */
__attribute__((warn_unused_result)) int pgp_peer_tls_start(pgp_peer_t *p, struct pgp_tls *tls,
                                                           const uint8_t *initial, size_t len);

/* True when p carries TLS and its handshake has completed (and nothing failed since). */
bool pgp_peer_tls_up(const pgp_peer_t *p);

/* Close now (pending writes are cancelled).  on_close follows.  Idempotent. */
void pgp_peer_close(pgp_peer_t *p);

/* Close once queued writes are flushed (now if none).  Stops reading. */
void pgp_peer_close_after_write(pgp_peer_t *p);

#endif
