/*
 * registry.c - the list of live sessions for /debug/connections and
 * SHOW CONNECTIONS.
 *
 * A doubly linked list under one mutex, newest first.  Sessions add and
 * remove themselves (twice per connection) and rename rarely; the admin
 * thread walks the list under the same mutex to render or copy it.  Counters
 * and state are atomics the owning loop writes without the lock.  Owns the
 * entries; does not know about sessions, sockets or libuv.
 */
#include "pgproxy/registry.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct pgp_registry {
    pthread_mutex_t lock;
    pgp_conn_entry_t *head;
    size_t count;
};

pgp_registry_t *pgp_registry_create(void)
{
    pgp_registry_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    if (pthread_mutex_init(&r->lock, NULL) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

void pgp_registry_destroy(pgp_registry_t *r)
{
    if (r == NULL)
        return;
    pgp_conn_entry_t *e = r->head;
    while (e != NULL) {
        pgp_conn_entry_t *next = e->next;
        free(e);
        e = next;
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* Copy a NUL-terminated name, cut on a UTF-8 boundary to fit. */
static void copy_name(char dst[PGP_REGISTRY_NAME_BYTES], const char *src)
{
    size_t n = src ? strnlen(src, PGP_REGISTRY_NAME_BYTES - 1) : 0;
    if (src != NULL && src[n] != '\0')
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80)
            n--;
    if (n > 0)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

pgp_conn_entry_t *pgp_registry_add(pgp_registry_t *r, uint64_t id, const char *user,
                                   const char *database, const char *client_addr,
                                   const char *application_name, uint64_t connected_wall_ns)
{
    pgp_conn_entry_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->id = id;
    e->connected_wall_ns = connected_wall_ns;
    copy_name(e->user, user);
    copy_name(e->database, database);
    copy_name(e->client_addr, client_addr);
    copy_name(e->application_name, application_name);
    pthread_mutex_lock(&r->lock);
    e->next = r->head;
    if (r->head != NULL)
        r->head->prev = e;
    r->head = e;
    r->count++;
    pthread_mutex_unlock(&r->lock);
    return e;
}

void pgp_registry_remove(pgp_registry_t *r, pgp_conn_entry_t *e)
{
    if (e == NULL)
        return;
    pthread_mutex_lock(&r->lock);
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        r->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    r->count--;
    pthread_mutex_unlock(&r->lock);
    free(e);
}

void pgp_registry_set_application_name(pgp_registry_t *r, pgp_conn_entry_t *e, const char *name)
{
    /* Only the owner writes the name, so reading it here without the lock is safe. */
    if (e == NULL || strncmp(e->application_name, name, PGP_REGISTRY_NAME_BYTES - 1) == 0)
        return;
    pthread_mutex_lock(&r->lock);
    copy_name(e->application_name, name);
    pthread_mutex_unlock(&r->lock);
}

void pgp_registry_set_tls(pgp_registry_t *r, pgp_conn_entry_t *e, int side, const char *version,
                          const char *cipher)
{
    if (e == NULL || (side != PGP_REGISTRY_TLS_CLIENT && side != PGP_REGISTRY_TLS_SERVER))
        return;
    pthread_mutex_lock(&r->lock);
    copy_name(e->tls[side][0], version);
    copy_name(e->tls[side][1], cipher);
    pthread_mutex_unlock(&r->lock);
}

const char *pgp_conn_state_name(pgp_conn_state_t st)
{
    switch (st) {
    case PGP_CONN_IDLE: return "idle";
    case PGP_CONN_ACTIVE: return "active";
    case PGP_CONN_IDLE_IN_TXN: return "idle in transaction";
    case PGP_CONN_IDLE_IN_FAILED_TXN: return "idle in transaction (aborted)";
    }
    return "unknown";
}

size_t pgp_registry_count(pgp_registry_t *r)
{
    pthread_mutex_lock(&r->lock);
    size_t n = r->count;
    pthread_mutex_unlock(&r->lock);
    return n;
}

static uint64_t ld(_Atomic uint64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

static void row_of(pgp_conn_entry_t *e, pgp_conn_row_t *row)
{
    row->id = e->id;
    row->connected_wall_ns = e->connected_wall_ns;
    row->queries = ld(&e->queries);
    row->errors = ld(&e->errors);
    row->requests = ld(&e->requests);
    row->n_plus_one = ld(&e->n_plus_one);
    row->state = (pgp_conn_state_t)atomic_load_explicit(&e->state, memory_order_relaxed);
    memcpy(row->user, e->user, sizeof(row->user));
    memcpy(row->database, e->database, sizeof(row->database));
    memcpy(row->client_addr, e->client_addr, sizeof(row->client_addr));
    memcpy(row->application_name, e->application_name, sizeof(row->application_name));
    memcpy(row->tls, e->tls, sizeof(row->tls));
}

/* A TLS field: its text, or null for a plaintext hop. */
static void render_tls(pgp_render_t *out, const char *key, const char *v)
{
    if (v[0])
        pgp_render_json_kv_str(out, key, v);
    else {
        pgp_render_json_key(out, key);
        pgp_render_json_null(out);
    }
}

size_t pgp_registry_snapshot(pgp_registry_t *r, pgp_conn_row_t *rows, size_t cap)
{
    size_t n = 0;
    pthread_mutex_lock(&r->lock);
    for (pgp_conn_entry_t *e = r->head; e != NULL && n < cap; e = e->next)
        row_of(e, &rows[n++]);
    pthread_mutex_unlock(&r->lock);
    return n;
}

static void render_row(const pgp_conn_row_t *row, uint64_t now_wall_ns, pgp_render_t *out)
{
    pgp_render_json_begin_object(out);
    pgp_render_json_kv_uint(out, "id", row->id);
    pgp_render_json_kv_str(out, "user", row->user);
    pgp_render_json_kv_str(out, "database", row->database);
    pgp_render_json_kv_str(out, "application_name", row->application_name);
    pgp_render_json_kv_str(out, "client_addr", row->client_addr);
    pgp_render_json_kv_str(out, "state", pgp_conn_state_name(row->state));
    pgp_render_json_key(out, "connected_at");
    pgp_render_json_time(out, row->connected_wall_ns);
    pgp_render_json_key(out, "connected_s");
    pgp_render_json_double(out, now_wall_ns > row->connected_wall_ns
                                    ? (double)(now_wall_ns - row->connected_wall_ns) / 1e9
                                    : 0.0, 3);
    pgp_render_json_kv_uint(out, "queries", row->queries);
    pgp_render_json_kv_uint(out, "errors", row->errors);
    pgp_render_json_kv_uint(out, "requests", row->requests);
    pgp_render_json_kv_uint(out, "n_plus_one", row->n_plus_one);
    render_tls(out, "client_tls_version", row->tls[PGP_REGISTRY_TLS_CLIENT][0]);
    render_tls(out, "client_tls_cipher", row->tls[PGP_REGISTRY_TLS_CLIENT][1]);
    render_tls(out, "server_tls_version", row->tls[PGP_REGISTRY_TLS_SERVER][0]);
    render_tls(out, "server_tls_cipher", row->tls[PGP_REGISTRY_TLS_SERVER][1]);
    pgp_render_json_end_object(out);
}

int pgp_registry_render_list(pgp_registry_t *r, size_t limit, uint64_t now_wall_ns,
                             pgp_render_t *out)
{
    /* Copy under the lock, render outside it: rendering may allocate. */
    size_t cap = pgp_registry_count(r);
    if (cap > limit)
        cap = limit;
    pgp_conn_row_t *rows = cap ? malloc(cap * sizeof(*rows)) : NULL;
    if (cap && rows == NULL)
        return -1;
    size_t n = cap ? pgp_registry_snapshot(r, rows, cap) : 0;
    pgp_render_json_begin_array(out);
    for (size_t i = 0; i < n; i++)
        render_row(&rows[i], now_wall_ns, out);
    pgp_render_json_end_array(out);
    free(rows);
    return pgp_render_error(out) ? -1 : 0;
}

int pgp_registry_render_one(pgp_registry_t *r, uint64_t id, uint64_t now_wall_ns,
                            pgp_render_t *out)
{
    pgp_conn_row_t row;
    bool found = false;
    pthread_mutex_lock(&r->lock);
    for (pgp_conn_entry_t *e = r->head; e != NULL; e = e->next) {
        if (e->id == id) {
            row_of(e, &row);
            found = true;
            break;
        }
    }
    pthread_mutex_unlock(&r->lock);
    if (!found)
        return 0;
    render_row(&row, now_wall_ns, out);
    return pgp_render_error(out) ? -1 : 1;
}
