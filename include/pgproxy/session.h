/*
 * session.h - one client connection and its upstream connection.
 *
 * A session reads the client's startup packet (answering SSLRequest and
 * GSSENCRequest with 'N', forwarding CancelRequest), dials the upstream,
 * forwards the startup packet, then relays both directions byte for byte
 * while framing them to follow the protocol state it needs: the backend's
 * cancel key, ReadyForQuery status, outstanding Sync/Query count.  It owns
 * its two peers and a timer; the server owns the list of sessions.
 */
#ifndef PGPROXY_SESSION_H
#define PGPROXY_SESSION_H

#include <stdbool.h>
#include <stdint.h>

#include "pgproxy/config.h"
#include "pgproxy/profile.h"
#include "pgproxy/relay.h"

typedef struct pgp_server pgp_server_t;
typedef struct pgp_session pgp_session_t;

/*
 * Accept one pending connection on the server's listener and start its
 * session.  Returns 0, or a libuv error (nothing is left allocated).
 * Loop thread.
 */
__attribute__((warn_unused_result)) int pgp_session_accept(pgp_server_t *srv);

/*
 * Shutdown request (SIGTERM): an idle session is closed now (the client
 * gets FATAL 57P01, the server a Terminate); a busy one is closed the next
 * time it becomes idle.  Loop thread.
 */
void pgp_session_drain(pgp_session_t *s);

/* Close now, whatever the state; `reason` is a static string for the log. */
void pgp_session_kill(pgp_session_t *s, const char *reason);

/*
 * The profiler settings the profiling.* keys of cfg give (ignore list
 * parsed; out->ignore_fingerprints points at static storage valid until
 * the next call).  Loop thread.
 */
void pgp_session_profile_config(const pgp_config_t *cfg, pgp_profile_config_t *out);

/*
 * Periodic work (the server's sweep timer): close a request profile idle
 * for profiling.request_gap_ms (sending a pending notice), and, when
 * `reloaded` is not NULL, apply new profiler settings.  Loop thread.
 */
void pgp_session_tick(pgp_session_t *s, uint64_t now_ns, const pgp_profile_config_t *reloaded);

/* The next session in the server's list (NULL at the end). */
pgp_session_t *pgp_session_next(const pgp_session_t *s);

#endif
