/*
 * dial.h - connect a stream handle to an endpoint without blocking.
 *
 * TCP endpoints with a numeric address connect directly; host names are
 * resolved on libuv's thread pool (uv_getaddrinfo), never on the loop;
 * Unix endpoints connect a pipe (a directory means libpq's socket name
 * ".s.PGSQL.<port>" inside it).  The owner keeps the pgp_dial_t alive
 * until its callback has run - exactly once, also after pgp_dial_abort().
 */
#ifndef PGPROXY_DIAL_H
#define PGPROXY_DIAL_H

#include <stdbool.h>

#include "pgproxy/config.h"
#include "pgproxy/relay.h"

typedef struct pgp_dial pgp_dial_t;
struct pgp_tls_ctx;
/* status 0: io is connected (TCP_NODELAY and keepalive set); < 0: libuv error. */
typedef void (*pgp_dial_cb)(pgp_dial_t *d, int status);

struct pgp_dial {
    pgp_endpoint_t ep;
    pgp_stream_t *io;
    pgp_dial_cb cb;
    void *data;              /* the owner's */
    uv_getaddrinfo_t gai;
    uv_connect_t conn;
    bool io_ready;           /* *io was initialized: the owner must close it */
    bool resolving;
    bool aborted;
};

/*
 * Initialize *io on loop (TCP or pipe, per ep) and start connecting it.
 * Returns 0 (cb will run) or a libuv error (cb will not run).  Whenever
 * d->io_ready is true afterwards - also on failure - the caller owns the
 * initialized handle and must uv_close() it.
 */
__attribute__((warn_unused_result)) int pgp_dial_start(pgp_dial_t *d, uv_loop_t *loop,
                                                       const pgp_endpoint_t *ep, pgp_stream_t *io,
                                                       pgp_dial_cb cb, void *data);

/* Cancel a pending resolution; the callback still runs (with UV_ECANCELED). */
void pgp_dial_abort(pgp_dial_t *d);

/*
 * Fire-and-forget CancelRequest: opens a fresh connection to ep, writes
 * the packet, closes.  With tls (a context, referenced for the job's
 * life) the packet goes inside TLS after an SSLRequest; plain_fallback
 * lets it go in clear when the server answers 'N'.  Owns all its state;
 * failures are logged.
 */
void pgp_dial_send_cancel(uv_loop_t *loop, const pgp_endpoint_t *ep, struct pgp_tls_ctx *tls,
                          bool plain_fallback, uint32_t pid, const uint8_t *key,
                          uint32_t key_len);

/*
 * Blocking reachability check for the admin thread (never the loop):
 * connect to ep within timeout_ms, then close.  Returns 0, or -1 with a
 * short reason in why ("connection refused", "timeout", ...).  Host names
 * are resolved with getaddrinfo here.
 */
int pgp_dial_probe(const pgp_endpoint_t *ep, int timeout_ms, char *why, size_t cap);

#endif
