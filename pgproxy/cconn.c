/*
 * cconn.c - a client of the SQL console: access check, password step and
 * the message loop over pgp_console_query.
 *
 * Messages are framed incrementally (proto.c) and their bodies collected
 * into one bounded buffer; a message over PGP_CCONN_MAX_MESSAGE_BYTES is a
 * protocol error (FATAL 08P01, close), as is a bad length.  After an error
 * in the extended protocol the client gets ReadyForQuery at its Sync, as a
 * server would answer.  Owns its framer and body buffer; writes nothing but
 * into the caller's output buffer.
 */
#include "pgproxy/cconn.h"

#include <stdlib.h>
#include <string.h>

#define AUTH_CLEARTEXT 3u

typedef enum cconn_state {
    CCONN_PASSWORD = 0,     /* waiting for the PasswordMessage */
    CCONN_READY,            /* serving queries */
    CCONN_SKIP_TO_SYNC,     /* after an unsupported extended-protocol message */
    CCONN_DONE,
} cconn_state_t;

struct pgp_cconn {
    const pgp_console_providers_t *prov;
    cconn_state_t state;
    pgp_framer_t framer;
    uint8_t *body;          /* the current message's body */
    uint32_t body_len;
    bool body_over;         /* the current message outgrew the buffer */
    char *token;            /* copy of admin.token; NULL when none */
    char application_name[64];
    uint32_t pid, key;
    pgp_render_t *out;      /* during feed only */
    pgp_cconn_next_t next;
};

static void put_fatal(pgp_render_t *out, const char *sqlstate, const char *msg)
{
    uint8_t buf[512];
    size_t n = pgp_proto_error_response(buf, sizeof(buf), "FATAL", sqlstate, msg);
    pgp_render_append(out, buf, n);
}

static void put_auth(pgp_render_t *out, uint32_t code)
{
    uint8_t m[9] = { PGP_BE_AUTHENTICATION, 0, 0, 0, 8 };
    pgp_put_be32(m + 5, code);
    pgp_render_append(out, m, sizeof(m));
}

static bool user_listed(const pgp_config_strlist_t *l, const char *user)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i], user) == 0)
            return true;
    return false;
}

/* Constant-time comparison of what the client sent with the token. */
static bool token_matches(const char *token, const uint8_t *p, size_t n)
{
    size_t tl = strlen(token);
    /* The password message is the password and a NUL. */
    if (n > 0 && p[n - 1] == '\0')
        n--;
    unsigned diff = (unsigned)(n != tl);
    for (size_t i = 0; i < tl; i++)
        diff |= (unsigned)((unsigned char)token[i] ^ (i < n ? p[i] : 0));
    return diff == 0;
}

/* AuthenticationOk and the rest of the greeting (console.c). */
static void welcome(pgp_cconn_t *c, pgp_render_t *out)
{
    if (pgp_console_welcome_ex(c->pid, c->key, c->application_name, out) < 0)
        c->state = CCONN_DONE;
    else
        c->state = CCONN_READY;
}

pgp_cconn_t *pgp_cconn_start(const pgp_config_t *cfg, const pgp_console_providers_t *prov,
                             const char *user, const char *application_name, bool is_local,
                             uint32_t pid, uint32_t key, pgp_render_t *out,
                             pgp_cconn_next_t *next)
{
    pgp_cconn_t *c = calloc(1, sizeof(*c));
    if (c == NULL || (c->body = malloc(PGP_CCONN_MAX_MESSAGE_BYTES)) == NULL) {
        free(c);
        return NULL;
    }
    static const pgp_console_providers_t no_data = { NULL, NULL, NULL, 0 };
    c->prov = prov != NULL ? prov : &no_data;
    c->pid = pid;
    c->key = key;
    size_t an = application_name ? strnlen(application_name, sizeof(c->application_name) - 1)
                                 : 0;
    if (an > 0)
        memcpy(c->application_name, application_name, an);
    pgp_framer_init(&c->framer, PGP_CCONN_MAX_MESSAGE_BYTES + 4);
    *next = PGP_CCONN_CONTINUE;
    const char *token = cfg->admin.token;
    if (cfg->admin.console_users.count > 0 && !user_listed(&cfg->admin.console_users, user)) {
        put_fatal(out, "28000", "pgproxy: this user may not use the console "
                                "(admin.console_users)");
        *next = PGP_CCONN_CLOSE;
    } else if ((token == NULL || token[0] == '\0') && !is_local) {
        put_fatal(out, "28000", "pgproxy: the console accepts local clients only "
                                "(loopback or Unix socket) unless admin.token is set");
        *next = PGP_CCONN_CLOSE;
    } else if (token != NULL && token[0] != '\0') {
        if ((c->token = strdup(token)) == NULL) {
            pgp_cconn_destroy(c);
            return NULL;
        }
        put_auth(out, AUTH_CLEARTEXT);
        c->state = CCONN_PASSWORD;
    } else {
        welcome(c, out);
    }
    if (*next == PGP_CCONN_CLOSE)
        c->state = CCONN_DONE;
    return c;
}

void pgp_cconn_destroy(pgp_cconn_t *c)
{
    if (c == NULL)
        return;
    if (c->token != NULL) {
        memset(c->token, 0, strlen(c->token));
        free(c->token);
    }
    free(c->body);
    free(c);
}

/* ---- framing callbacks -------------------------------------------------------------- */

/* A console answer that did not fit even cut short: nothing sane is left to say. */
static void answered(pgp_cconn_t *c, int rc)
{
    if (rc < 0)
        c->next = PGP_CCONN_CLOSE;
}

static void on_begin(void *ud, uint8_t type, uint32_t len)
{
    pgp_cconn_t *c = ud;
    (void)type;
    (void)len;
    c->body_len = 0;
    c->body_over = false;
}

static void on_body(void *ud, const uint8_t *p, size_t n)
{
    pgp_cconn_t *c = ud;
    if (n > PGP_CCONN_MAX_MESSAGE_BYTES - c->body_len) {
        c->body_over = true;
        return;
    }
    memcpy(c->body + c->body_len, p, n);
    c->body_len += (uint32_t)n;
}

static void on_end(void *ud, uint8_t type)
{
    pgp_cconn_t *c = ud;
    pgp_render_t *out = c->out;
    if (c->next == PGP_CCONN_CLOSE)
        return;
    if (c->body_over) {
        put_fatal(out, "54000", "pgproxy: console message too long");
        c->next = PGP_CCONN_CLOSE;
        return;
    }
    if (type == PGP_FE_TERMINATE) {
        c->next = PGP_CCONN_CLOSE;
        return;
    }
    switch (c->state) {
    case CCONN_PASSWORD:
        if (type != PGP_FE_PASSWORD) {
            put_fatal(out, "08P01", "pgproxy: expected a password message");
            c->next = PGP_CCONN_CLOSE;
        } else if (!token_matches(c->token, c->body, c->body_len)) {
            put_fatal(out, "28P01", "pgproxy: password authentication failed for the console");
            c->next = PGP_CCONN_CLOSE;
        } else {
            welcome(c, out);
        }
        return;
    case CCONN_READY:
        if (type == PGP_FE_QUERY) {
            answered(c, pgp_console_query(c->prov, (const char *)c->body, c->body_len, out));
        } else if (type == PGP_FE_SYNC) {
            answered(c, pgp_console_ready(out));
        } else if (type != PGP_FE_FLUSH) {
            answered(c, pgp_console_unsupported(type, out));
            c->state = CCONN_SKIP_TO_SYNC;
        }
        return;
    case CCONN_SKIP_TO_SYNC:
        if (type == PGP_FE_SYNC) {
            answered(c, pgp_console_ready(out));
            c->state = CCONN_READY;
        } else if (type == PGP_FE_QUERY) {
            /* A simple Query ends an aborted pipeline too. */
            c->state = CCONN_READY;
            answered(c, pgp_console_query(c->prov, (const char *)c->body, c->body_len, out));
        }
        return;
    case CCONN_DONE:
        return;
    }
}

static const pgp_frame_ops_t cconn_ops = { on_begin, on_body, on_end };

pgp_cconn_next_t pgp_cconn_feed(pgp_cconn_t *c, const uint8_t *data, size_t n,
                                pgp_render_t *out)
{
    if (c->state == CCONN_DONE)
        return PGP_CCONN_CLOSE;
    c->out = out;
    c->next = PGP_CCONN_CONTINUE;
    if (pgp_framer_feed(&c->framer, data, n, &cconn_ops, c, NULL) != PGP_FRAME_OK) {
        if (c->next != PGP_CCONN_CLOSE)
            put_fatal(out, "08P01", "pgproxy: invalid message length");
        c->next = PGP_CCONN_CLOSE;
    }
    c->out = NULL;
    if (c->next == PGP_CCONN_CLOSE)
        c->state = CCONN_DONE;
    return c->next;
}
