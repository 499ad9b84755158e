/*
 * tls.h - TLS for both hops, driven through memory buffers.
 *
 * pgproxy never lets OpenSSL touch a socket: ciphertext read by libuv is
 * fed in with pgp_tls_feed(), plaintext comes out of pgp_tls_read(), and
 * what OpenSSL wants to send (handshake records, encrypted data, alerts)
 * is collected with pgp_tls_out_take() and written by the caller.  No call
 * here blocks or does I/O, so the event loop drives handshakes and records
 * from its read and write callbacks.
 *
 * A context (pgp_tls_ctx_t) holds the certificate, key and trust settings
 * of one side; it is built from files at startup and again on SIGHUP.  A
 * connection (pgp_tls_t) keeps the context it was made from alive, so
 * replacing a context never disturbs live sessions.  Contexts are shared
 * read-only between sessions of one loop thread.
 */
#ifndef PGPROXY_TLS_H
#define PGPROXY_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pgp_tls_ctx pgp_tls_ctx_t;
typedef struct pgp_tls pgp_tls_t;

/* What pgproxy checks of the server's certificate (libpq's sslmode levels). */
typedef enum pgp_tls_verify {
    PGP_TLS_VERIFY_NONE,   /* prefer, require (encryption only) */
    PGP_TLS_VERIFY_CA,     /* verify-ca: chain up to a trusted CA */
    PGP_TLS_VERIFY_FULL,   /* verify-full: chain, and the host name or IP in the certificate */
} pgp_tls_verify_t;

typedef enum pgp_tls_status {
    PGP_TLS_FAIL = -1,     /* handshake or record error: see pgp_tls_reason() */
    PGP_TLS_OK = 0,        /* done (handshake) / bytes produced (read) */
    PGP_TLS_WANT = 1,      /* needs more input from the peer */
    PGP_TLS_CLOSED = 2,    /* the peer sent close_notify */
} pgp_tls_status_t;

/*
 * Context for accepting clients: pgproxy's certificate (chain file, PEM)
 * and key.  TLS 1.2 or later, no session tickets, ALPN "postgresql"
 * accepted.  Returns NULL with a one-line reason in err naming the file.
 */
pgp_tls_ctx_t *pgp_tls_ctx_server(const char *cert_file, const char *key_file, char *err,
                                  size_t errlen);

/*
 * Context for connecting to the server.  ca_file: "" (none), "system" (the
 * system trust store) or a PEM bundle; required for VERIFY_CA/FULL.  A CA
 * file given with VERIFY_NONE upgrades it to VERIFY_CA (libpq's sslmode =
 * require with a root certificate).  cert_file/key_file: "" or a client
 * certificate and key (both).  Returns NULL with a reason in err.
 */
pgp_tls_ctx_t *pgp_tls_ctx_client(pgp_tls_verify_t verify, const char *ca_file,
                                  const char *cert_file, const char *key_file, char *err,
                                  size_t errlen);

/* Take another reference to ctx (for work that may outlive a reload); returns ctx. */
pgp_tls_ctx_t *pgp_tls_ctx_ref(pgp_tls_ctx_t *ctx);

/* Drop the caller's reference; connections made from ctx keep it alive.  NULL is ignored. */
void pgp_tls_ctx_free(pgp_tls_ctx_t *ctx);

/*
 * A connection on ctx.  For a client context, host (borrowed) is the
 * server's name as configured: sent as SNI (when not an IP literal) and
 * checked against the certificate under VERIFY_FULL.  For a server
 * context, require_alpn demands that the client offered ALPN "postgresql"
 * (PostgreSQL 17's direct TLS).  Returns NULL when out of memory.
 */
pgp_tls_t *pgp_tls_new(pgp_tls_ctx_t *ctx, const char *host, bool require_alpn);
void pgp_tls_free(pgp_tls_t *t);

/* Ciphertext received from the peer, copied.  Returns 0, or -1 when out of memory. */
int pgp_tls_feed(pgp_tls_t *t, const uint8_t *data, size_t len);

/*
 * The same without a copy: data must stay valid and unchanged until
 * pgp_tls_feed_end(), which copies whatever OpenSSL has not read yet
 * (usually nothing) so the caller can reuse its buffer.
 */
void pgp_tls_feed_borrowed(pgp_tls_t *t, const uint8_t *data, size_t len);
int pgp_tls_feed_end(pgp_tls_t *t);   /* 0, or -1 when out of memory */

/* Advance the handshake: OK (done), WANT (send pgp_tls_out_take, feed more) or FAIL. */
pgp_tls_status_t pgp_tls_handshake(pgp_tls_t *t);

/* True once the handshake has completed. */
bool pgp_tls_established(const pgp_tls_t *t);

/*
 * Decrypt into out[0, cap): OK with *got > 0, or WANT (nothing buffered),
 * CLOSED or FAIL with *got = 0.  Call until it stops returning OK.
 */
pgp_tls_status_t pgp_tls_read(pgp_tls_t *t, uint8_t *out, size_t cap, size_t *got);

/* True when fed ciphertext or decrypted bytes are waiting for pgp_tls_read(). */
bool pgp_tls_has_input(const pgp_tls_t *t);

/* Encrypt len bytes (all of them) into the output buffer.  OK or FAIL. */
pgp_tls_status_t pgp_tls_write(pgp_tls_t *t, const uint8_t *data, size_t len);

/* Queue a close_notify alert (best effort). */
void pgp_tls_shutdown(pgp_tls_t *t);

/* Bytes waiting to be sent to the peer. */
size_t pgp_tls_out_pending(const pgp_tls_t *t);

/* Move up to cap waiting bytes into out; returns how many. */
size_t pgp_tls_out_take(pgp_tls_t *t, uint8_t *out, size_t cap);

/* The waiting bytes in place (valid until the next call on t), and dropping n of them once sent. */
size_t pgp_tls_out_peek(const pgp_tls_t *t, const uint8_t **data);
void pgp_tls_out_consume(pgp_tls_t *t, size_t n);

/*
 * Why the last call failed, for the client and the log: the certificate
 * verification result ("certificate has expired", "hostname mismatch",
 * ...) when there was one, else OpenSSL's reason ("wrong version number",
 * "tlsv1 alert unknown ca", ...).  Never NULL.
 */
const char *pgp_tls_reason(const pgp_tls_t *t);

/* Negotiated protocol ("TLSv1.3") and cipher ("TLS_AES_256_GCM_SHA384"), or "" before. */
const char *pgp_tls_version(const pgp_tls_t *t);
const char *pgp_tls_cipher(const pgp_tls_t *t);

#endif
