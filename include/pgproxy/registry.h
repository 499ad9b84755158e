/*
 * registry.h - the live client sessions, as the admin surfaces show them.
 *
 * Each session registers one entry when it starts relaying and removes it
 * when it closes.  What never changes (id, user, database, client address,
 * start time) is copied at registration; what changes is either an atomic
 * (state, counters: written by the session's loop thread, read by anyone)
 * or, for application_name, a short copy under the registry's mutex.  The
 * admin thread renders the list (GET /debug/connections, SHOW CONNECTIONS)
 * under that mutex in O(sessions), without touching loop state.
 *
 * Leaf module: no libuv.  Bounded by the number of sessions (one ~400-byte
 * entry each).
 */
#ifndef PGPROXY_REGISTRY_H
#define PGPROXY_REGISTRY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgproxy/render.h"

#define PGP_REGISTRY_NAME_BYTES 64u

typedef struct pgp_registry pgp_registry_t;

/* Session states shown to users. */
typedef enum pgp_conn_state {
    PGP_CONN_IDLE = 0,          /* waiting for the client, no transaction */
    PGP_CONN_ACTIVE,            /* a query or a pipeline is running */
    PGP_CONN_IDLE_IN_TXN,       /* waiting for the client inside a transaction */
    PGP_CONN_IDLE_IN_FAILED_TXN,
} pgp_conn_state_t;

/* One live session.  The owner writes the atomics with pgp_registry_conn_add/_state. */
typedef struct pgp_conn_entry {
    uint64_t id;
    uint64_t connected_wall_ns;
    char user[PGP_REGISTRY_NAME_BYTES];
    char database[PGP_REGISTRY_NAME_BYTES];
    char client_addr[PGP_REGISTRY_NAME_BYTES];
    char application_name[PGP_REGISTRY_NAME_BYTES];   /* under the registry mutex */
    char tls[2][2][PGP_REGISTRY_NAME_BYTES];   /* [client|server][version|cipher]; "" plaintext */
    _Atomic uint8_t state;          /* pgp_conn_state_t */
    _Atomic uint64_t queries;       /* statements finished */
    _Atomic uint64_t errors;        /* statements that failed */
    _Atomic uint64_t requests;      /* request profiles finished */
    _Atomic uint64_t n_plus_one;    /* N+1 / duplicate / batchable findings */
    struct pgp_conn_entry *prev, *next;
} pgp_conn_entry_t;

/* TLS sides and fields for pgp_registry_set_tls. */
enum { PGP_REGISTRY_TLS_CLIENT = 0, PGP_REGISTRY_TLS_SERVER = 1 };

/* Returns owned (free with pgp_registry_destroy, after every entry left) or NULL (ENOMEM). */
pgp_registry_t *pgp_registry_create(void);
void pgp_registry_destroy(pgp_registry_t *r);

/*
 * Register a session (any thread).  Strings borrowed, copied (cut at 63
 * bytes).  Returns owned (give back with pgp_registry_remove) or NULL when
 * out of memory (the session then just is not listed).
 */
pgp_conn_entry_t *pgp_registry_add(pgp_registry_t *r, uint64_t id, const char *user,
                                   const char *database, const char *client_addr,
                                   const char *application_name, uint64_t connected_wall_ns);
/* Unlist and free e (NULL ok).  Any thread. */
void pgp_registry_remove(pgp_registry_t *r, pgp_conn_entry_t *e);

/* Set the shown application_name when it differs (a short lock only then).  Owner thread. */
void pgp_registry_set_application_name(pgp_registry_t *r, pgp_conn_entry_t *e, const char *name);

/*
 * Record one hop's TLS protocol and cipher (side = PGP_REGISTRY_TLS_*;
 * strings borrowed, "" = plaintext, the default).  Shown as
 * client_tls_version/_cipher, server_tls_version/_cipher (null when
 * plaintext).  e may be NULL.
 */
void pgp_registry_set_tls(pgp_registry_t *r, pgp_conn_entry_t *e, int side, const char *version,
                          const char *cipher);

/* Owner-thread writers (relaxed atomics, no locked instructions). */
static inline void pgp_registry_conn_add(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void pgp_registry_conn_state(pgp_conn_entry_t *e, pgp_conn_state_t st)
{
    atomic_store_explicit(&e->state, (uint8_t)st, memory_order_relaxed);
}

/* "idle", "active", "idle in transaction", "idle in transaction (aborted)" (pg_stat_activity's words). */
const char *pgp_conn_state_name(pgp_conn_state_t st);

/* Sessions listed now. */
size_t pgp_registry_count(pgp_registry_t *r);

/*
 * One JSON object per session, newest first, at most limit: {"id","user","database",
 * "application_name","client_addr","state","connected_at"(ISO),"connected_s","queries",
 * "errors","requests","n_plus_one"}.  pgp_registry_render_list writes an array;
 * pgp_registry_render_one writes the object of session id and returns 1, or
 * returns 0 (nothing written) when it is not live.  now_wall_ns for connected_s.
 * Admin thread (any thread); returns -1 when r overflowed.
 */
int pgp_registry_render_list(pgp_registry_t *r, size_t limit, uint64_t now_wall_ns,
                             pgp_render_t *out);
int pgp_registry_render_one(pgp_registry_t *r, uint64_t id, uint64_t now_wall_ns,
                            pgp_render_t *out);

/* A copy of the rows, for the SQL console.  Fills at most cap rows; returns the count. */
typedef struct pgp_conn_row {
    uint64_t id, connected_wall_ns, queries, errors, requests, n_plus_one;
    pgp_conn_state_t state;
    char user[PGP_REGISTRY_NAME_BYTES], database[PGP_REGISTRY_NAME_BYTES];
    char client_addr[PGP_REGISTRY_NAME_BYTES], application_name[PGP_REGISTRY_NAME_BYTES];
    char tls[2][2][PGP_REGISTRY_NAME_BYTES];
} pgp_conn_row_t;
size_t pgp_registry_snapshot(pgp_registry_t *r, pgp_conn_row_t *rows, size_t cap);

#endif
