/*
 * tls.c - OpenSSL behind memory BIOs (see tls.h).
 *
 * Each connection owns two memory BIOs: libuv's reads are written into
 * the input BIO, and whatever OpenSSL produces lands in the output BIO for
 * the caller to write to the socket.  OpenSSL's error queue is per thread;
 * every entry point clears it first, so a reason always belongs to the
 * call that failed.  Settings follow PostgreSQL's own server and libpq:
 * TLS 1.2 or later, no renegotiation, no session tickets or cache on the
 * accepting side, ALPN "postgresql" (PostgreSQL 17), SNI for host names.
 */
#include "pgproxy/tls.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* ALPN protocol list, wire format (length-prefixed names). */
static const unsigned char alpn_postgresql[] = "\x0apostgresql";
#define ALPN_POSTGRESQL_LEN 11u

struct pgp_tls_ctx {
    int refs;                /* loop thread only */
    SSL_CTX *ssl_ctx;
    pgp_tls_verify_t verify;
};

struct pgp_tls {
    SSL *ssl;
    BIO *in;                 /* ciphertext from the peer (owned by ssl) */
    BIO *out;                /* ciphertext for the peer (owned by ssl) */
    pgp_tls_verify_t verify;
    bool require_alpn;
    bool established;
    char reason[192];
};

/* The last OpenSSL error's reason, or fallback; clears the queue. */
static const char *openssl_reason(char *buf, size_t cap, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    if (e != 0 && r == NULL) {
        ERR_error_string_n(e, buf, cap);
        r = buf;
    } else if (r != NULL) {
        snprintf(buf, cap, "%s", r);
        r = buf;
    } else {
        snprintf(buf, cap, "%s", fallback);
        r = buf;
    }
    ERR_clear_error();
    return r;
}

static void ctx_error(char *err, size_t errlen, const char *what, const char *file)
{
    char r[160];
    openssl_reason(r, sizeof(r), "unknown error");
    if (file != NULL && file[0])
        snprintf(err, errlen, "%s \"%s\": %s", what, file, r);
    else
        snprintf(err, errlen, "%s: %s", what, r);
}

static SSL_CTX *ctx_common(const SSL_METHOD *method, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *c = SSL_CTX_new(method);
    if (c == NULL) {
        ctx_error(err, errlen, "TLS context", NULL);
        return NULL;
    }
    (void)SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    SSL_CTX_set_options(c, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    return c;
}

/* Load a certificate chain and its key into c; 0 or -1 with err. */
static int ctx_load_pair(SSL_CTX *c, const char *cert_file, const char *key_file, char *err,
                         size_t errlen)
{
    if (SSL_CTX_use_certificate_chain_file(c, cert_file) != 1) {
        ctx_error(err, errlen, "could not load certificate", cert_file);
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(c, key_file, SSL_FILETYPE_PEM) != 1) {
        ctx_error(err, errlen, "could not load private key", key_file);
        return -1;
    }
    if (SSL_CTX_check_private_key(c) != 1) {
        char r[160];
        openssl_reason(r, sizeof(r), "mismatch");
        snprintf(err, errlen, "private key \"%s\" does not match certificate \"%s\": %s",
                 key_file, cert_file, r);
        return -1;
    }
    return 0;
}

/* Server side: pick "postgresql" from the client's ALPN list, refuse any other. */
static int on_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    for (unsigned int i = 0; i < inlen;) {
        unsigned int n = in[i];
        if (i + 1 + n > inlen)
            break;
        if (n == ALPN_POSTGRESQL_LEN - 1 && memcmp(in + i + 1, "postgresql", n) == 0) {
            *out = in + i + 1;
            *outlen = (unsigned char)n;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

pgp_tls_ctx_t *pgp_tls_ctx_server(const char *cert_file, const char *key_file, char *err,
                                  size_t errlen)
{
    pgp_tls_ctx_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->refs = 1;
    t->ssl_ctx = ctx_common(TLS_server_method(), err, errlen);
    if (t->ssl_ctx == NULL) {
        free(t);
        return NULL;
    }
    SSL_CTX *c = t->ssl_ctx;
    SSL_CTX_set_options(c, SSL_OP_NO_TICKET | SSL_OP_CIPHER_SERVER_PREFERENCE);
    (void)SSL_CTX_set_num_tickets(c, 0);
    (void)SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_alpn_select_cb(c, on_alpn_select, NULL);
    if (ctx_load_pair(c, cert_file, key_file, err, errlen) < 0) {
        pgp_tls_ctx_free(t);
        return NULL;
    }
    return t;
}

pgp_tls_ctx_t *pgp_tls_ctx_client(pgp_tls_verify_t verify, const char *ca_file,
                                  const char *cert_file, const char *key_file, char *err,
                                  size_t errlen)
{
    bool have_ca = ca_file != NULL && ca_file[0];
    if (verify != PGP_TLS_VERIFY_NONE && !have_ca) {
        snprintf(err, errlen, "certificate verification needs a CA file (or \"system\")");
        return NULL;
    }
    pgp_tls_ctx_t *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    t->refs = 1;
    t->ssl_ctx = ctx_common(TLS_client_method(), err, errlen);
    if (t->ssl_ctx == NULL) {
        free(t);
        return NULL;
    }
    SSL_CTX *c = t->ssl_ctx;
    if (have_ca && verify == PGP_TLS_VERIFY_NONE)
        verify = PGP_TLS_VERIFY_CA;
    t->verify = verify;
    if (have_ca) {
        int ok = strcmp(ca_file, "system") == 0 ? SSL_CTX_set_default_verify_paths(c)
                                                : SSL_CTX_load_verify_locations(c, ca_file, NULL);
        if (ok != 1) {
            ctx_error(err, errlen, "could not load CA file", ca_file);
            pgp_tls_ctx_free(t);
            return NULL;
        }
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    }
    if (cert_file != NULL && cert_file[0] &&
        ctx_load_pair(c, cert_file, key_file != NULL ? key_file : "", err, errlen) < 0) {
        pgp_tls_ctx_free(t);
        return NULL;
    }
    return t;
}

pgp_tls_ctx_t *pgp_tls_ctx_ref(pgp_tls_ctx_t *ctx)
{
    ctx->refs++;
    return ctx;
}

void pgp_tls_ctx_free(pgp_tls_ctx_t *ctx)
{
    if (ctx == NULL || --ctx->refs > 0)
        return;
    SSL_CTX_free(ctx->ssl_ctx);   /* reference counted: live SSL objects keep it */
    free(ctx);
}

static bool is_ip_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

pgp_tls_t *pgp_tls_new(pgp_tls_ctx_t *ctx, const char *host, bool require_alpn)
{
    pgp_tls_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    ERR_clear_error();
    t->ssl = SSL_new(ctx->ssl_ctx);
    t->in = BIO_new(BIO_s_mem());
    t->out = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->in == NULL || t->out == NULL) {
        BIO_free(t->in);
        BIO_free(t->out);
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return NULL;
    }
    BIO_set_mem_eof_return(t->in, -1);   /* empty = "retry", not EOF */
    BIO_set_mem_eof_return(t->out, -1);
    SSL_set_bio(t->ssl, t->in, t->out);
    t->verify = ctx->verify;
    t->require_alpn = require_alpn;
    bool client = SSL_is_server(t->ssl) == 0;
    if (client) {
        SSL_set_connect_state(t->ssl);
        (void)SSL_set_alpn_protos(t->ssl, alpn_postgresql, ALPN_POSTGRESQL_LEN);
        bool ip = host != NULL && is_ip_literal(host);
        if (host != NULL && host[0] && !ip)
            (void)SSL_set_tlsext_host_name(t->ssl, host);
        if (t->verify == PGP_TLS_VERIFY_FULL && host != NULL) {
            int ok;
            if (ip) {
                ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host);
            } else {
                SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                ok = SSL_set1_host(t->ssl, host);
            }
            if (ok != 1) {
                pgp_tls_free(t);
                ERR_clear_error();
                return NULL;
            }
        }
    } else {
        SSL_set_accept_state(t->ssl);
    }
    return t;
}

void pgp_tls_free(pgp_tls_t *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl);   /* frees both BIOs */
    free(t);
}

int pgp_tls_feed(pgp_tls_t *t, const uint8_t *data, size_t len)
{
    size_t done = 0;
    while (done < len) {
        size_t n = 0;
        if (BIO_write_ex(t->in, data + done, len - done, &n) != 1 || n == 0) {
            ERR_clear_error();
            snprintf(t->reason, sizeof(t->reason), "out of memory");
            return -1;
        }
        done += n;
    }
    return 0;
}

/* Record why the connection failed, preferring the certificate verdict. */
static void note_failure(pgp_tls_t *t, int ssl_err)
{
    long vr = SSL_get_verify_result(t->ssl);
    if (t->verify != PGP_TLS_VERIFY_NONE && vr != X509_V_OK) {
        snprintf(t->reason, sizeof(t->reason), "%s", X509_verify_cert_error_string(vr));
        ERR_clear_error();
        return;
    }
    const char *fallback = ssl_err == SSL_ERROR_SYSCALL ? "unexpected end of TLS stream"
                                                        : "TLS protocol error";
    openssl_reason(t->reason, sizeof(t->reason), fallback);
}

pgp_tls_status_t pgp_tls_handshake(pgp_tls_t *t)
{
    if (t->established)
        return PGP_TLS_OK;
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        if (t->require_alpn) {
            const unsigned char *p = NULL;
            unsigned int n = 0;
            SSL_get0_alpn_selected(t->ssl, &p, &n);
            if (n == 0) {
                snprintf(t->reason, sizeof(t->reason),
                         "direct TLS connection without ALPN \"postgresql\"");
                return PGP_TLS_FAIL;
            }
        }
        t->established = true;
        return PGP_TLS_OK;
    }
    int e = SSL_get_error(t->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return PGP_TLS_WANT;
    }
    note_failure(t, e);
    return PGP_TLS_FAIL;
}

bool pgp_tls_established(const pgp_tls_t *t)
{
    return t->established;
}

pgp_tls_status_t pgp_tls_read(pgp_tls_t *t, uint8_t *out, size_t cap, size_t *got)
{
    *got = 0;
    ERR_clear_error();
    size_t n = 0;
    if (SSL_read_ex(t->ssl, out, cap, &n) == 1) {
        *got = n;
        return PGP_TLS_OK;
    }
    int e = SSL_get_error(t->ssl, 0);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        ERR_clear_error();
        return PGP_TLS_WANT;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return PGP_TLS_CLOSED;
    default:
        note_failure(t, e);
        return PGP_TLS_FAIL;
    }
}

bool pgp_tls_has_input(const pgp_tls_t *t)
{
    return SSL_pending(t->ssl) > 0 || BIO_ctrl_pending(t->in) > 0;
}

pgp_tls_status_t pgp_tls_write(pgp_tls_t *t, const uint8_t *data, size_t len)
{
    if (len == 0)
        return PGP_TLS_OK;
    ERR_clear_error();
    size_t n = 0;
    if (SSL_write_ex(t->ssl, data, len, &n) == 1 && n == len)
        return PGP_TLS_OK;
    note_failure(t, SSL_get_error(t->ssl, 0));
    return PGP_TLS_FAIL;
}

void pgp_tls_shutdown(pgp_tls_t *t)
{
    if (!t->established)
        return;
    ERR_clear_error();
    (void)SSL_shutdown(t->ssl);
    ERR_clear_error();
}

size_t pgp_tls_out_pending(const pgp_tls_t *t)
{
    return BIO_ctrl_pending(t->out);
}

size_t pgp_tls_out_take(pgp_tls_t *t, uint8_t *out, size_t cap)
{
    size_t n = 0;
    if (cap == 0 || BIO_read_ex(t->out, out, cap, &n) != 1)
        n = 0;
    ERR_clear_error();
    return n;
}

const char *pgp_tls_reason(const pgp_tls_t *t)
{
    return t->reason[0] ? t->reason : "TLS error";
}

const char *pgp_tls_version(const pgp_tls_t *t)
{
    return t->established ? SSL_get_version(t->ssl) : "";
}

const char *pgp_tls_cipher(const pgp_tls_t *t)
{
    const char *c = t->established ? SSL_get_cipher_name(t->ssl) : NULL;
    return c != NULL ? c : "";
}
