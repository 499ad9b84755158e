/*
 * authguard.c - the authentication guard for sessions over a TLS upstream.
 *
 * Server side: a message is assembled in one buffer (the header first,
 * its length checked the moment it is complete, then the body), rewritten
 * when whole (SCRAM-SHA-256-PLUS out of AuthenticationSASL, through
 * proto.c), then copied out, in pieces if the caller's buffer is short.
 * The message's last input byte is consumed only once the whole rewritten
 * message is out: so a return below n always means "call again", and a
 * guard that ends stops exactly after its ending message.  Authentication
 * messages are small, so assembling them costs nothing worth measuring.
 *
 * Client side: the start of the SASLInitialResponse body is copied into a
 * small probe until its gs2 flag can be read.  The guard never writes to
 * the client stream; the session decides what a refusal looks like.
 */
#include "pgproxy/authguard.h"

#include <stdlib.h>
#include <string.h>

void pgp_authguard_free(pgp_authguard_t *g)
{
    free(g->msg);
    memset(g, 0, sizeof(*g));
}

void pgp_authguard_start(pgp_authguard_t *g)
{
    pgp_authguard_free(g);
    g->active = true;
}

bool pgp_authguard_active(const pgp_authguard_t *g)
{
    return g->active;
}

bool pgp_authguard_refused(const pgp_authguard_t *g)
{
    return g->refused;
}

/* msg holds one whole message: rewrite it, note what it means, make it ready to write out. */
static void guard_message_whole(pgp_authguard_t *g)
{
    size_t len = g->msg_len;
    if (g->msg[0] == PGP_BE_AUTHENTICATION && len >= 9) {
        uint32_t code = pgp_be32(g->msg + 5);
        if (code == PGP_PROTO_AUTH_SASL) {
            len = pgp_proto_strip_scram_plus(g->msg, len);
            g->sasl_offered = true;
        } else if (code == PGP_PROTO_AUTH_OK) {
            g->ending = true;
        }
    } else if (g->msg[0] == PGP_BE_ERROR_RESPONSE) {
        g->ending = true;
    }
    g->emit_len = (uint32_t)len;
    g->emit_off = 0;
}

/* The message is out and its last byte consumed: ready for the next one, or done. */
static void guard_message_done(pgp_authguard_t *g)
{
    g->msg_len = 0;
    g->emit_len = 0;
    g->emit_off = 0;
    if (g->ending) {
        /* The client side may still be reading a probe: keep its state. */
        free(g->msg);
        g->msg = NULL;
        g->ending = false;
        g->active = false;
    }
}

ptrdiff_t pgp_authguard_server(pgp_authguard_t *g, const uint8_t *in, size_t n, uint8_t *out,
                               size_t cap, size_t *out_len)
{
    size_t pos = 0;
    if (!g->active)
        return 0;
    if (g->msg == NULL) {
        g->msg = malloc(PGP_AUTHGUARD_MESSAGE_MAX_BYTES);
        if (g->msg == NULL)
            return PGP_AUTHGUARD_ENOMEM;
    }
    while (g->active) {
        if (g->emit_len > 0) {
            size_t room = cap > *out_len ? cap - *out_len : 0;
            size_t k = g->emit_len - g->emit_off;
            if (k > room)
                k = room;
            memcpy(out + *out_len, g->msg + g->emit_off, k);
            *out_len += k;
            g->emit_off += (uint32_t)k;
            /* Out is full, or the caller has not passed the last byte again yet. */
            if (g->emit_off < g->emit_len || pos == n)
                break;
            pos++;   /* the message's last byte, held back until now */
            guard_message_done(g);
            continue;
        }
        if (pos == n)
            break;
        uint32_t need = g->msg_len < 5 ? 5 : 1 + pgp_be32(g->msg + 1);
        size_t k = n - pos < need - g->msg_len ? n - pos : need - g->msg_len;
        memcpy(g->msg + g->msg_len, in + pos, k);
        g->msg_len += (uint32_t)k;
        if (g->msg_len < need) {
            pos += k;
            continue;
        }
        if (need == 5) {
            /* The header is complete: check its length before reading on. */
            uint32_t len = pgp_be32(g->msg + 1);
            if (len < 4 || len > PGP_AUTHGUARD_MESSAGE_MAX_BYTES - 1)
                return PGP_AUTHGUARD_EPROTO;
            if (len > 4) {
                pos += k;
                continue;
            }
        }
        pos += k - 1;
        guard_message_whole(g);
    }
    return (ptrdiff_t)pos;
}

void pgp_authguard_client_begin(pgp_authguard_t *g, uint8_t type)
{
    g->probing = type == PGP_FE_PASSWORD && g->sasl_offered;
    g->sasl_offered = false;   /* only the first client message after the offer */
    g->probe_len = 0;
}

void pgp_authguard_client_body(pgp_authguard_t *g, const uint8_t *p, size_t n)
{
    if (!g->probing)
        return;
    size_t room = sizeof(g->probe) - g->probe_len;
    if (n > room)
        n = room;
    memcpy(g->probe + g->probe_len, p, n);
    g->probe_len += (uint8_t)n;
    int flag = pgp_proto_sasl_gs2_flag(g->probe, g->probe_len);
    if (flag != 0 || g->probe_len == sizeof(g->probe)) {
        g->probing = false;
        if (flag == 'y')
            g->refused = true;
    }
}

void pgp_authguard_client_end(pgp_authguard_t *g)
{
    g->probing = false;
}
