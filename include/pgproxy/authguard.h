/*
 * authguard.h - authentication over a TLS upstream.
 *
 * Authentication passes through pgproxy, so SCRAM channel binding cannot
 * work when the upstream hop uses TLS: the server binds to pgproxy's TLS
 * session, not the client's.  While authentication runs over a TLS
 * upstream the session feeds both directions through a guard that
 *  - server -> client: assembles each server message whole (at most
 *    PGP_AUTHGUARD_MESSAGE_MAX_BYTES, type byte included; a longer or a
 *    too short length field is a protocol error) and takes
 *    SCRAM-SHA-256-PLUS out of AuthenticationSASL, until AuthenticationOk
 *    or an ErrorResponse ends the guard; the bytes after that message are
 *    left to flow on unchanged;
 *  - client -> server: reads the gs2 flag of the first client message
 *    after an AuthenticationSASL (the SASLInitialResponse) and notes a
 *    client that still asks for channel binding ('y').
 * Refusing such a client is the session's job; the guard only tells.
 *
 * Leaf module: no libuv, no I/O.  It allocates one assembly buffer of
 * PGP_AUTHGUARD_MESSAGE_MAX_BYTES on the first server bytes and frees it
 * when the guard ends (or in pgp_authguard_free).  One guard belongs to one
 * session; not thread-safe.
 */
#ifndef PGPROXY_AUTHGUARD_H
#define PGPROXY_AUTHGUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgproxy/proto.h"

/* Longest server message accepted while guarded, type byte included. */
#define PGP_AUTHGUARD_MESSAGE_MAX_BYTES (16u * 1024u)
/* How much of the SASLInitialResponse body is read to find its gs2 flag. */
#define PGP_AUTHGUARD_PROBE_BYTES 48u

/* pgp_authguard_server error returns. */
#define PGP_AUTHGUARD_EPROTO (-1)   /* a server length field < 4 or over the maximum */
#define PGP_AUTHGUARD_ENOMEM (-2)   /* the assembly buffer could not be allocated */

/*
 * Guard state, embedded in the session.  A zeroed guard is inactive and
 * holds nothing.  Fields are private to authguard.c.
 */
typedef struct pgp_authguard {
    bool active;            /* started and authentication not finished */
    bool ending;            /* the message being written out ends the guard */
    bool sasl_offered;      /* an AuthenticationSASL went out: probe the next client message */
    bool probing;           /* reading the start of the SASLInitialResponse */
    bool refused;           /* ... and it asked for channel binding */
    uint8_t probe_len;
    uint8_t probe[PGP_AUTHGUARD_PROBE_BYTES];
    uint8_t *msg;           /* the server message being assembled, or NULL */
    uint32_t msg_len;       /* bytes of it assembled */
    uint32_t emit_len;      /* > 0: msg is whole, rewritten to this many bytes */
    uint32_t emit_off;      /* bytes of the rewritten message written out so far */
} pgp_authguard_t;

/*
 * Start guarding (the upstream hop has just finished its TLS handshake and
 * the startup packet goes out next).  g must be zeroed or have been
 * started before; any previous state is dropped.
 */
void pgp_authguard_start(pgp_authguard_t *g);

/* Free the assembly buffer and make g inactive.  Idempotent; g stays usable for start. */
void pgp_authguard_free(pgp_authguard_t *g);

/* True from pgp_authguard_start until the message that ends the guard has been written out. */
bool pgp_authguard_active(const pgp_authguard_t *g);

/*
 * Feed server bytes while active.  Whole messages, rewritten, are appended
 * to out[*out_len, cap) and *out_len is advanced; a message may be split
 * across calls when out is short.  Returns how many bytes of `in` were
 * consumed (in and out borrowed for the call):
 *  - n: everything fed so far is in out or held as an incomplete message;
 *  - less than n: either out is full (make room, then call again with
 *    in + the return value: a message's last byte stays unconsumed until
 *    the whole rewritten message is in out), or the guard has just ended
 *    (pgp_authguard_active is false) and in[return, n) are bytes after the
 *    ending message, for the caller to relay unchanged;
 *  - PGP_AUTHGUARD_EPROTO or PGP_AUTHGUARD_ENOMEM: the stream cannot be
 *    guarded; the session must end (g keeps its buffer until
 *    pgp_authguard_free).  What this call appended to out before the
 *    error is valid output (the session drops it anyway).
 * Progress needs room in out (a call with *out_len == cap may return 0);
 * a call with n = 0 can only write out.  Inactive: returns 0, writes
 * nothing.  The session's thread only, like every function here.
 */
PGP_MUST_CHECK ptrdiff_t pgp_authguard_server(pgp_authguard_t *g, const uint8_t *in, size_t n,
                                              uint8_t *out, size_t cap, size_t *out_len);

/*
 * Client messages while active, as the framer reports them (begin with
 * the type byte, the body in fragments, borrowed for the call, then end).
 * Only the first client message after an AuthenticationSASL is read, and
 * only if it is a 'p' (SASLInitialResponse).
 */
void pgp_authguard_client_begin(pgp_authguard_t *g, uint8_t type);
void pgp_authguard_client_body(pgp_authguard_t *g, const uint8_t *p, size_t n);
void pgp_authguard_client_end(pgp_authguard_t *g);

/* True once the client's SASLInitialResponse carried gs2 flag 'y' (it stays true). */
bool pgp_authguard_refused(const pgp_authguard_t *g);

#endif
