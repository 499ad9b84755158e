/*
 * session_int.h - what session.c and session_start.c share (private to them).
 *
 * A session's life is split in two files: session_start.c takes a client
 * from its first byte to a ready upstream (startup packet, encryption
 * requests, TLS with the client, the SQL console, dialing the server, our
 * SSLRequest and TLS toward it); session.c owns the session's lifetime and
 * the relay from the moment the startup packet goes to the server.  Both
 * work on the one struct below; nothing outside them includes this file.
 */
#ifndef PGPROXY_SESSION_INT_H
#define PGPROXY_SESSION_INT_H

#include "pgproxy/authguard.h"
#include "pgproxy/cconn.h"
#include "pgproxy/dial.h"
#include "pgproxy/proto.h"
#include "pgproxy/registry.h"
#include "pgproxy/relay.h"
#include "pgproxy/server.h"
#include "pgproxy/session.h"
#include "pgproxy/track.h"

/* A request profile keeps this many statements and bytes of SQL text (then counts drops). */
#define PGP_SESSION_PROFILE_MAX_EVENTS 1000u
#define PGP_SESSION_PROFILE_TEXT_BYTES (64u * 1024u)
/* A console answer is capped here (console.c ends a longer result cleanly). */
#define PGP_SESSION_CONSOLE_OUTPUT_BYTES (16u * 1024u * 1024u)
/* How long a client may take to send its startup packet (PostgreSQL's authentication_timeout). */
#define PGP_SESSION_STARTUP_TIMEOUT_MS 60000
/* How long closing may wait for queued bytes to drain before the handles are cut. */
#define PGP_SESSION_LINGER_MS 5000
/* Largest body captured from a server message we need to read (BackendKeyData). */
#define PGP_SESSION_CAPTURE_BYTES (8 + PGP_PROTO_CANCEL_KEY_MAX_BYTES)

typedef enum pgp_session_state {
    PGP_SESSION_STARTUP,
    PGP_SESSION_CONNECTING,
    PGP_SESSION_RELAY,
    PGP_SESSION_CONSOLE,    /* the client talks to pgproxy's SQL console (cconn.c) */
    PGP_SESSION_CLOSING,
} pgp_session_state_t;

/* The client's startup phase. */
typedef struct startup_state {
    uint8_t *pkt;            /* PGP_PROTO_STARTUP_MAX_BYTES, allocated on first byte */
    uint32_t len;            /* bytes buffered */
    uint32_t need;           /* packet length once the length word is in, else 0 */
    bool ssl_answered;
    bool gss_answered;
    pgp_chunk_t *early;      /* bytes after the StartupMessage, held until connected */
    size_t early_off, early_len;
} startup_state_t;

/* Who is on the other end, for logs and (later) the admin surfaces. */
typedef struct session_info {
    char user[128];
    char database[128];
    char application_name[128];
    char client_addr[64];
    bool is_local;           /* loopback address or Unix socket (console access) */
} session_info_t;

/* What the session follows of the backend's side of the protocol. */
typedef struct backend_state {
    uint32_t pid;
    uint32_t key_len;         /* 0 until BackendKeyData was seen */
    uint8_t key[PGP_PROTO_CANCEL_KEY_MAX_BYTES];
    uint32_t pending;         /* Query/Sync/FunctionCall sent, ReadyForQuery not yet seen */
    uint8_t txn_status;       /* last ReadyForQuery status: 'I', 'T', 'E'; 0 before the first */
    uint8_t last_type;        /* type of the last server message begun */
    uint8_t capture[PGP_SESSION_CAPTURE_BYTES];
    uint32_t capture_len;
    bool capturing;
} backend_state_t;

/* TLS state the peers do not hold themselves (whether a hop is TLS: pgp_peer_tls_up). */
typedef struct session_tls {
    bool ssl_answer_pending; /* our SSLRequest is out, waiting for the server's 'S' or 'N' */
    pgp_authguard_t guard;   /* active while authentication runs over a TLS upstream */
} session_tls_t;

struct pgp_session {
    uint64_t id;
    pgp_server_t *srv;
    pgp_session_state_t state;
    pgp_peer_t client;
    pgp_peer_t server;
    pgp_framer_t c2s;
    pgp_framer_t s2c;
    pgp_track_t *track;       /* statement tracking; NULL when profiling is off */
    pgp_profiler_t *profiler; /* request profiles; NULL when profiling is off */
    pgp_conn_entry_t *conn;   /* this session in /debug/connections, or NULL */
    uint8_t *notice;          /* a NoticeResponse waiting for a message boundary, or NULL */
    size_t notice_len;
    pgp_cconn_t *console;     /* PGP_SESSION_CONSOLE only */
    uv_timer_t timer;
    pgp_dial_t dial;
    startup_state_t startup;
    session_info_t info;
    backend_state_t be;
    session_tls_t tls;
    uint64_t started_ms;
    const char *close_reason;
    int refs;                 /* live handles + a dial whose callback is pending */
    bool counted;             /* within max_client_connections */
    bool draining;            /* close when next idle */
    bool client_terminated;   /* the client sent Terminate */
    bool logged_open;
    bool server_counted;      /* counted in the server_connections gauge */
    pgp_session_t *prev, *next;
};

/* For writes just before a close: a failure changes nothing, the session is ending. */
static inline void best_effort(int status)
{
    (void)status;
}

/* ---- session.c ---------------------------------------------------------- */

/* Close both sides (queued bytes get PGP_SESSION_LINGER_MS to drain).  Idempotent. */
void session_close(pgp_session_t *s, const char *reason);
/* Send pgproxy's own FATAL to the client (when its stream allows one), then close. */
void session_fail(pgp_session_t *s, const char *sqlstate, const char *message,
                  const char *reason);
/* Drop one reference (a handle's close, a dial's callback); the last frees the session. */
void session_unref(pgp_session_t *s);
/* A CancelRequest to the upstream, over TLS when the upstream hop uses it. */
void session_send_cancel(pgp_server_t *srv, uint32_t pid, const uint8_t *key, uint32_t key_len);
/* The "session open" log line (user, database, application_name known). */
void session_log_open(pgp_session_t *s);
/* The upstream hop is ready: send the startup packet and relay both ways (state RELAY). */
void session_begin_relay(pgp_session_t *s);
/* The server peer's events (relay and TLS callbacks). */
extern const pgp_peer_events_t session_server_events;

/* ---- session_start.c ---------------------------------------------------- */

/* Client bytes in state STARTUP (takes the chunk). */
void session_on_startup_bytes(pgp_session_t *s, pgp_chunk_t *c, size_t n);
/* Client bytes in state CONSOLE (takes the chunk). */
void session_on_console_bytes(pgp_session_t *s, pgp_chunk_t *c, size_t n);
/* Server bytes while our SSLRequest waits for its answer (takes the chunk). */
void session_upstream_ssl_answer(pgp_session_t *s, pgp_chunk_t *c, size_t n);
/* TLS handshake results of the client and server peers. */
void session_on_client_tls(pgp_peer_t *p, bool ok);
void session_on_server_tls(pgp_peer_t *p, bool ok);
/* The client did not finish its startup within PGP_SESSION_STARTUP_TIMEOUT_MS. */
void session_on_startup_timeout(uv_timer_t *t);
/* Copy a NUL-terminated (or NULL) string into dst[cap], cut to fit. */
void session_copy_field(char *dst, size_t cap, const char *src);

#endif
