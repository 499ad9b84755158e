/*
 * tls.c - OpenSSL behind memory buffers (see tls.h).
 *
 * Each connection has one BIO of pgproxy's own kind.  Its read side hands
 * OpenSSL the ciphertext libuv just read, straight from the caller's
 * buffer (a borrowed window); only bytes OpenSSL has not taken when the
 * caller is done are copied, and that copy is freed once read.  Its write
 * side appends what OpenSSL produces to an output buffer that the relay
 * writes to the socket directly from there.  Idle connections therefore
 * hold no buffers but OpenSSL's own, which SSL_MODE_RELEASE_BUFFERS also
 * frees between records.  OpenSSL's error queue is per thread: every path
 * that may leave an error there clears it after reading the reason, so the
 * queue is empty whenever a call starts and a reason always belongs to the
 * call that failed (the record calls rely on that instead of clearing).  Settings follow PostgreSQL's own server and libpq:
 * TLS 1.2 or later, no renegotiation, no session tickets or cache on the
 * accepting side, ALPN "postgresql" (PostgreSQL 17), SNI for host names.
 */
#include "pgproxy/tls.h"

#include <arpa/inet.h>
#include <pthread.h>
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

/* A growable byte buffer: data[off, len) is unread; freed when empty and large. */
typedef struct tls_buf {
    uint8_t *data;
    size_t off, len, cap;
} tls_buf_t;

/* Buffers up to this size stay allocated when drained (small messages reuse them). */
#define TLS_BUF_KEEP_BYTES 4096u

struct pgp_tls {
    SSL *ssl;
    const uint8_t *win;      /* borrowed ciphertext from the caller (pgp_tls_feed_borrowed) */
    size_t win_len;
    tls_buf_t held;          /* ciphertext fed by copy, or left over from a window */
    tls_buf_t out;           /* ciphertext for the peer */
    pgp_tls_verify_t verify;
    bool require_alpn;
    bool established;
    bool refused;            /* fails at the first handshake step, reason set */
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
    (void)SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);   /* idle sessions hold no record buffers */
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

/* ---- the BIO ----------------------------------------------------------- */

static int buf_append(tls_buf_t *b, const uint8_t *data, size_t len)
{
    if (len == 0)
        return 0;
    if (b->off > 0 && b->off == b->len)
        b->off = b->len = 0;
    if (b->len + len > b->cap) {
        if (b->off > 0) {   /* make room by moving the unread part to the front */
            memmove(b->data, b->data + b->off, b->len - b->off);
            b->len -= b->off;
            b->off = 0;
        }
        if (b->len + len > b->cap) {
            size_t cap = b->cap ? b->cap : 1024;
            while (cap < b->len + len)
                cap *= 2;
            uint8_t *d = realloc(b->data, cap);
            if (d == NULL)
                return -1;
            b->data = d;
            b->cap = cap;
        }
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static void buf_consume(tls_buf_t *b, size_t n)
{
    b->off += n;
    if (b->off < b->len)
        return;
    b->off = b->len = 0;
    if (b->cap > TLS_BUF_KEEP_BYTES) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
}

/* Ciphertext fed and not yet read by OpenSSL (copied, then borrowed). */
static size_t input_pending(const pgp_tls_t *t)
{
    return t->held.len - t->held.off + t->win_len;
}

static int bio_read_ex(BIO *bio, char *out, size_t len, size_t *got)
{
    pgp_tls_t *t = BIO_get_data(bio);
    size_t n = 0;
    BIO_clear_retry_flags(bio);
    size_t held = t->held.len - t->held.off;
    if (held > 0) {
        n = held < len ? held : len;
        memcpy(out, t->held.data + t->held.off, n);
        buf_consume(&t->held, n);
    }
    if (n < len && t->win_len > 0) {
        size_t k = t->win_len < len - n ? t->win_len : len - n;
        memcpy(out + n, t->win, k);
        t->win += k;
        t->win_len -= k;
        n += k;
    }
    if (n == 0) {
        BIO_set_retry_read(bio);
        *got = 0;
        return 0;
    }
    *got = n;
    return 1;
}

static int bio_write_ex(BIO *bio, const char *data, size_t len, size_t *written)
{
    pgp_tls_t *t = BIO_get_data(bio);
    BIO_clear_retry_flags(bio);
    if (buf_append(&t->out, (const uint8_t *)data, len) < 0) {
        *written = 0;
        return 0;
    }
    *written = len;
    return 1;
}

static long bio_ctrl(BIO *bio, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    pgp_tls_t *t = BIO_get_data(bio);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
        return t != NULL ? (long)input_pending(t) : 0;
    case BIO_CTRL_WPENDING:
        return t != NULL ? (long)(t->out.len - t->out.off) : 0;
    default:
        return 0;
    }
}

static int bio_create(BIO *bio)
{
    BIO_set_init(bio, 1);
    return 1;
}

static BIO_METHOD *bio_method;

static void bio_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "pgproxy");
    if (m == NULL)
        return;
    if (BIO_meth_set_read_ex(m, bio_read_ex) != 1 || BIO_meth_set_write_ex(m, bio_write_ex) != 1 ||
        BIO_meth_set_ctrl(m, bio_ctrl) != 1 || BIO_meth_set_create(m, bio_create) != 1) {
        BIO_meth_free(m);
        return;
    }
    bio_method = m;
}

/* ---- connections ------------------------------------------------------- */

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
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    (void)pthread_once(&once, bio_method_init);
    ERR_clear_error();
    t->ssl = bio_method != NULL ? SSL_new(ctx->ssl_ctx) : NULL;
    BIO *bio = t->ssl != NULL ? BIO_new(bio_method) : NULL;
    if (bio == NULL) {
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return NULL;
    }
    BIO_set_data(bio, t);
    SSL_set_bio(t->ssl, bio, bio);   /* one BIO both ways: ssl owns it */
    t->verify = ctx->verify;
    t->require_alpn = require_alpn;
    bool client = SSL_is_server(t->ssl) == 0;
    if (client) {
        SSL_set_connect_state(t->ssl);
        (void)SSL_set_alpn_protos(t->ssl, alpn_postgresql, ALPN_POSTGRESQL_LEN);
        bool ip = host != NULL && is_ip_literal(host);
        if (host != NULL && host[0] && !ip)
            (void)SSL_set_tlsext_host_name(t->ssl, host);
        if (t->verify == PGP_TLS_VERIFY_FULL && (host == NULL || !host[0])) {
            /* As libpq: verify-full with no name to check fails, it never becomes verify-ca. */
            snprintf(t->reason, sizeof(t->reason),
                     "host name must be specified for a verified TLS connection");
            t->refused = true;
        } else if (t->verify == PGP_TLS_VERIFY_FULL) {
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
    SSL_free(t->ssl);   /* frees the BIO */
    free(t->held.data);
    free(t->out.data);
    free(t);
}

int pgp_tls_feed(pgp_tls_t *t, const uint8_t *data, size_t len)
{
    if (pgp_tls_feed_end(t) < 0 || buf_append(&t->held, data, len) < 0) {
        snprintf(t->reason, sizeof(t->reason), "out of memory");
        return -1;
    }
    return 0;
}

void pgp_tls_feed_borrowed(pgp_tls_t *t, const uint8_t *data, size_t len)
{
    if (t->win_len > 0 && pgp_tls_feed_end(t) < 0) {
        /* Out of memory keeping the old window: OpenSSL sees a gap and fails the record. */
        t->win_len = 0;
    }
    t->win = data;
    t->win_len = len;
}

int pgp_tls_feed_end(pgp_tls_t *t)
{
    if (t->win_len == 0)
        return 0;
    int r = buf_append(&t->held, t->win, t->win_len);
    t->win = NULL;
    t->win_len = 0;
    if (r < 0)
        snprintf(t->reason, sizeof(t->reason), "out of memory");
    return r;
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
    if (t->refused)
        return PGP_TLS_FAIL;
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
    /* The queue is empty here (every failure path clears it), so the hot
     * path skips ERR_clear_error(): measured at ~2 % of pgproxy's CPU. */
    *got = 0;
    size_t n = 0;
    if (SSL_read_ex(t->ssl, out, cap, &n) == 1) {
        *got = n;
        return PGP_TLS_OK;
    }
    int e = SSL_get_error(t->ssl, 0);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
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
    return SSL_pending(t->ssl) > 0 || input_pending(t) > 0;
}

pgp_tls_status_t pgp_tls_write(pgp_tls_t *t, const uint8_t *data, size_t len)
{
    if (len == 0)
        return PGP_TLS_OK;
    size_t n = 0;   /* no ERR_clear_error(): see pgp_tls_read */
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
    return t->out.len - t->out.off;
}

size_t pgp_tls_out_take(pgp_tls_t *t, uint8_t *out, size_t cap)
{
    const uint8_t *p;
    size_t n = pgp_tls_out_peek(t, &p);
    if (n == 0)
        return 0;   /* the buffer may not even exist */
    if (n > cap)
        n = cap;
    memcpy(out, p, n);
    pgp_tls_out_consume(t, n);
    return n;
}

size_t pgp_tls_out_peek(const pgp_tls_t *t, const uint8_t **data)
{
    size_t n = t->out.len - t->out.off;
    *data = n > 0 ? t->out.data + t->out.off : NULL;
    return n;
}

void pgp_tls_out_consume(pgp_tls_t *t, size_t n)
{
    buf_consume(&t->out, n);
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
