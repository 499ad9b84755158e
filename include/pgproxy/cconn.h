/*
 * cconn.h - one client connection to the SQL console (database "pgproxy"):
 * who may enter, the password step, then the message loop.
 *
 * The session hands over the client's bytes after its StartupMessage; this
 * module frames them (the same length guards as the relay), answers each
 * message through console.h (Query) or with an error (everything else,
 * ReadyForQuery at the next Sync), and appends every byte to send to a
 * caller-provided buffer.  It does no I/O and knows no libuv: the session
 * writes the bytes and closes when told to.
 *
 * Access (DESIGN §6, admin.console_users, admin.token): a user name not in
 * console_users (when that list is not empty) is refused with FATAL 28000;
 * without a token only local clients (loopback or Unix socket) may enter;
 * with a token the console asks for it as a cleartext password (fine on
 * loopback/Unix; remote console access is for TLS, which pgproxy does not
 * terminate yet) and a wrong one is FATAL 28P01.
 */
#ifndef PGPROXY_CCONN_H
#define PGPROXY_CCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgproxy/config.h"
#include "pgproxy/console.h"
#include "pgproxy/proto.h"
#include "pgproxy/render.h"

#define PGP_CCONN_MAX_MESSAGE_BYTES (64u * 1024u)   /* a console message (a query) at most */

typedef struct pgp_cconn pgp_cconn_t;

/* What the caller does after a call. */
typedef enum pgp_cconn_next {
    PGP_CCONN_CONTINUE = 0,     /* send out, keep reading */
    PGP_CCONN_CLOSE,            /* send out, then close (Terminate, refusal, protocol error) */
} pgp_cconn_next_t;

/*
 * A console connection for `user` from a client that is_local (loopback
 * or Unix socket).  cfg and prov borrowed (must outlive the connection;
 * cfg is read at start only).  pid/key: the BackendKeyData to show.
 * Appends the first answer to out: a FATAL refusal, the password request,
 * or the welcome (AuthenticationOk ... ReadyForQuery).  Returns owned (free
 * with pgp_cconn_destroy; NULL when out of memory) and *next.
 */
pgp_cconn_t *pgp_cconn_start(const pgp_config_t *cfg, const pgp_console_providers_t *prov,
                             const char *user, const char *application_name, bool is_local,
                             uint32_t pid, uint32_t key, pgp_render_t *out,
                             pgp_cconn_next_t *next);

/* Client bytes (borrowed).  Appends the answers to out.  Loop thread. */
pgp_cconn_next_t pgp_cconn_feed(pgp_cconn_t *c, const uint8_t *data, size_t n,
                                pgp_render_t *out);

void pgp_cconn_destroy(pgp_cconn_t *c);

#endif
