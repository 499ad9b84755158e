/*
 * test_tls.c - unit tests for pgproxy/tls.c: OpenSSL behind memory BIOs.
 *
 * An unchecked fixture makes a throwaway directory of certificates with the
 * openssl command line (a CA, a server certificate signed by it for
 * localhost and 127.0.0.1, an unrelated CA, an expired certificate, a
 * client certificate, a key that matches nothing, a PEM file that is not
 * one).  Two endpoints - pgproxy's engine on both sides, or pgproxy's
 * engine against a plain OpenSSL endpoint built here when a test needs
 * something pgproxy never does (no ALPN, a demand for a client
 * certificate) - are joined by a pump that moves pgp_tls_out_take() bytes
 * into the other side's pgp_tls_feed().  Nothing touches a socket.
 */
#include "pgproxy/tls.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

/* ------------------------------------------------------------------ */
/* Certificates (unchecked fixture: made once per test case group)     */
/* ------------------------------------------------------------------ */

static char g_dir[64];
static bool g_setup_ok;
static bool g_have_expired;

/* The fixture's script; $1 is the directory.  EC P-256 keys: fast to make. */
static const char gen_script[] =
    "set -e\n"
    "cd \"$1\"\n"
    "cat > openssl.cnf <<'EOF'\n"
    "[req]\n"
    "distinguished_name = dn\n"
    "[dn]\n"
    "[v3_ca]\n"
    "basicConstraints = critical,CA:TRUE\n"
    "keyUsage = critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier = hash\n"
    "[v3_leaf]\n"
    "basicConstraints = CA:FALSE\n"
    "subjectAltName = DNS:localhost,IP:127.0.0.1\n"
    "[v3_client]\n"
    "basicConstraints = CA:FALSE\n"
    "extendedKeyUsage = clientAuth\n"
    "[ca]\n"
    "default_ca = test_ca\n"
    "[test_ca]\n"
    "database = db/index.txt\n"
    "new_certs_dir = db\n"
    "serial = db/serial\n"
    "default_md = sha256\n"
    "policy = any_cn\n"
    "unique_subject = no\n"
    "x509_extensions = v3_leaf\n"
    "[any_cn]\n"
    "commonName = supplied\n"
    "EOF\n"
    "export OPENSSL_CONF=\"$PWD/openssl.cnf\"\n"
    "ec='-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes'\n"
    "openssl req -x509 $ec -keyout ca.key -out ca.crt -days 3650 -extensions v3_ca "
    "-subj '/CN=pgproxy test CA'\n"
    "openssl req -x509 $ec -keyout ca2.key -out ca2.crt -days 3650 -extensions v3_ca "
    "-subj '/CN=pgproxy unrelated CA'\n"
    "openssl req $ec -keyout server.key -out server.csr -subj '/CN=localhost'\n"
    "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -set_serial 2 -days 3650 "
    "-extfile openssl.cnf -extensions v3_leaf -out server.crt\n"
    "openssl req $ec -keyout client.key -out client.csr -subj '/CN=pgproxy'\n"
    "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -set_serial 3 -days 3650 "
    "-extfile openssl.cnf -extensions v3_client -out client.crt\n"
    "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key\n"
    "printf -- '-----BEGIN CERTIFICATE-----\\nbm90IGEgY2VydGlmaWNhdGU=\\n"
    "-----END CERTIFICATE-----\\n' > garbage.pem\n"
    /* Expired: `openssl ca` takes explicit dates (x509 -req has no -not_after in 3.0). */
    "( mkdir -p db && : > db/index.txt && echo 10 > db/serial &&\n"
    "  openssl ca -batch -notext -cert ca.crt -keyfile ca.key -in server.csr -out expired.crt "
    "-startdate 20200101000000Z -enddate 20200102000000Z ) || rm -f expired.crt\n";

/* name inside the fixture directory (a few rotating buffers: several per call are fine). */
static const char *P(const char *name)
{
    static char bufs[8][128];
    static unsigned next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof(bufs[0]), "%s/%s", g_dir, name);
    return b;
}

static void certs_setup(void)
{
    g_setup_ok = false;
    snprintf(g_dir, sizeof(g_dir), "/tmp/pgproxy-test-tls-XXXXXX");
    if (mkdtemp(g_dir) == NULL) {
        perror("mkdtemp");
        return;
    }
    FILE *f = fopen(P("gen.sh"), "w");
    if (f == NULL || fputs(gen_script, f) < 0 || fclose(f) != 0) {
        perror("gen.sh");
        return;
    }
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "sh '%s' '%s' >'%s' 2>&1", P("gen.sh"), g_dir, P("gen.log"));
    int rc = system(cmd);
    if (rc != 0) {
        snprintf(cmd, sizeof(cmd), "cat '%s' >&2", P("gen.log"));
        (void)system(cmd);
        fprintf(stderr, "test_tls: certificate generation failed (%d)\n", rc);
        return;
    }
    g_have_expired = access(P("expired.crt"), R_OK) == 0;
    g_setup_ok = true;
}

static void certs_teardown(void)
{
    if (g_dir[0] == '\0' || strncmp(g_dir, "/tmp/pgproxy-test-tls-", 22) != 0)
        return;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    (void)system(cmd);
}

#define NEED_CERTS() ck_assert_msg(g_setup_ok, "certificate fixture failed (see stderr)")

/* ------------------------------------------------------------------ */
/* Endpoints and the pump                                              */
/* ------------------------------------------------------------------ */

typedef struct peer {
    pgp_tls_t *t;     /* pgproxy's engine, or */
    SSL *ssl;         /* a plain OpenSSL endpoint on memory BIOs */
    BIO *in, *out;
    int st;           /* handshake status so far (PGP_TLS_*) */
    char why[256];    /* the plain endpoint's failure */
} peer_t;

static peer_t pgp_peer(pgp_tls_t *t)
{
    ck_assert_ptr_nonnull(t);
    return (peer_t){.t = t, .st = PGP_TLS_WANT};
}

static peer_t raw_peer(SSL_CTX *c, bool server)
{
    peer_t p = {.st = PGP_TLS_WANT};
    p.ssl = SSL_new(c);
    p.in = BIO_new(BIO_s_mem());
    p.out = BIO_new(BIO_s_mem());
    ck_assert(p.ssl != NULL && p.in != NULL && p.out != NULL);
    BIO_set_mem_eof_return(p.in, -1);
    BIO_set_mem_eof_return(p.out, -1);
    SSL_set_bio(p.ssl, p.in, p.out);
    if (server)
        SSL_set_accept_state(p.ssl);
    else
        SSL_set_connect_state(p.ssl);
    return p;
}

static void peer_free(peer_t *p)
{
    pgp_tls_free(p->t);
    SSL_free(p->ssl);
    memset(p, 0, sizeof(*p));
}

static const char *peer_reason(const peer_t *p)
{
    return p->t != NULL ? pgp_tls_reason(p->t) : p->why;
}

static void raw_note_error(peer_t *p)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    snprintf(p->why, sizeof(p->why), "%s", r != NULL ? r : "error");
    ERR_clear_error();
}

static void peer_step(peer_t *p)
{
    if (p->st != PGP_TLS_WANT)
        return;
    if (p->t != NULL) {
        p->st = pgp_tls_handshake(p->t);
        return;
    }
    ERR_clear_error();
    int r = SSL_do_handshake(p->ssl);
    if (r == 1) {
        p->st = PGP_TLS_OK;
        return;
    }
    int e = SSL_get_error(p->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        return;
    }
    raw_note_error(p);
    p->st = PGP_TLS_FAIL;
}

/* Move everything from's output holds into to's input, in pieces of at most piece bytes. */
static size_t peer_move_pieces(peer_t *from, peer_t *to, size_t piece)
{
    uint8_t buf[16384];
    if (piece == 0 || piece > sizeof(buf))
        piece = sizeof(buf);
    size_t total = 0;
    for (;;) {
        size_t n;
        if (from->t != NULL) {
            n = pgp_tls_out_take(from->t, buf, piece);
        } else if (BIO_read_ex(from->out, buf, piece, &n) != 1) {
            n = 0;
        }
        if (n == 0)
            break;
        if (to->t != NULL) {
            ck_assert_int_eq(pgp_tls_feed(to->t, buf, n), 0);
        } else {
            size_t w = 0;
            ck_assert_int_eq(BIO_write_ex(to->in, buf, n, &w), 1);
            ck_assert_uint_eq(w, n);
        }
        total += n;
    }
    return total;
}

static size_t peer_move(peer_t *from, peer_t *to)
{
    return peer_move_pieces(from, to, 0);
}

/* Drive both handshakes until neither has anything left to say. */
static void pump(peer_t *client, peer_t *server)
{
    for (int i = 0; i < 64; i++) {
        peer_step(client);
        size_t moved = peer_move(client, server);
        peer_step(server);
        moved += peer_move(server, client);
        if (moved == 0)
            return;
    }
    ck_abort_msg("handshake did not settle in 64 rounds");
}

static pgp_tls_status_t peer_write(peer_t *p, const uint8_t *data, size_t len)
{
    if (p->t != NULL)
        return pgp_tls_write(p->t, data, len);
    size_t n = 0;
    return SSL_write_ex(p->ssl, data, len, &n) == 1 && n == len ? PGP_TLS_OK : PGP_TLS_FAIL;
}

/* Read until the peer has nothing more: appends to buf (room cap), returns the last status. */
static pgp_tls_status_t peer_read_all(peer_t *p, uint8_t *buf, size_t cap, size_t *len,
                                      size_t piece)
{
    for (;;) {
        size_t room = cap - *len, got = 0;
        size_t want = piece != 0 && piece < room ? piece : room;
        pgp_tls_status_t st;
        if (p->t != NULL) {
            st = pgp_tls_read(p->t, buf + *len, want, &got);
        } else {
            ERR_clear_error();
            if (SSL_read_ex(p->ssl, buf + *len, want, &got) == 1) {
                st = PGP_TLS_OK;
            } else {
                int e = SSL_get_error(p->ssl, 0);
                st = e == SSL_ERROR_WANT_READ ? PGP_TLS_WANT
                     : e == SSL_ERROR_ZERO_RETURN ? PGP_TLS_CLOSED
                                                   : PGP_TLS_FAIL;
                if (st == PGP_TLS_FAIL)
                    raw_note_error(p);
                ERR_clear_error();
            }
        }
        if (st != PGP_TLS_OK) {
            ck_assert_uint_eq(got, 0);
            return st;
        }
        ck_assert_uint_gt(got, 0);
        ck_assert_uint_le(got, want);
        *len += got;
        if (*len == cap)
            return PGP_TLS_OK;
    }
}

/* One message from a to b, checked byte for byte. */
static void roundtrip(peer_t *a, peer_t *b, const char *msg)
{
    size_t n = strlen(msg);
    ck_assert_int_eq(peer_write(a, (const uint8_t *)msg, n), PGP_TLS_OK);
    ck_assert_uint_gt(peer_move(a, b), n);   /* encrypted: header and tag on top */
    uint8_t buf[256];
    size_t got = 0;
    ck_assert_int_eq(peer_read_all(b, buf, sizeof(buf), &got, 0), PGP_TLS_WANT);
    ck_assert_uint_eq(got, n);
    ck_assert_mem_eq(buf, msg, n);
}

static pgp_tls_ctx_t *server_ctx(const char *cert, const char *key)
{
    char err[512] = "";
    pgp_tls_ctx_t *c = pgp_tls_ctx_server(P(cert), P(key), err, sizeof(err));
    ck_assert_msg(c != NULL, "server context: %s", err);
    return c;
}

static pgp_tls_ctx_t *client_ctx(pgp_tls_verify_t v, const char *ca)
{
    char err[512] = "";
    const char *ca_path = ca[0] == '\0' || strcmp(ca, "system") == 0 ? ca : P(ca);
    pgp_tls_ctx_t *c = pgp_tls_ctx_client(v, ca_path, "", "", err, sizeof(err));
    ck_assert_msg(c != NULL, "client context: %s", err);
    return c;
}

/* ------------------------------------------------------------------ */
/* Handshakes that succeed                                             */
/* ------------------------------------------------------------------ */

typedef struct ok_case {
    pgp_tls_verify_t verify;
    const char *ca;     /* fixture file, "" or "system" */
    const char *host;   /* NULL: none */
} ok_case_t;

static const ok_case_t ok_cases[] = {
    {PGP_TLS_VERIFY_NONE, "", "localhost"},
    {PGP_TLS_VERIFY_NONE, "", NULL},
    {PGP_TLS_VERIFY_NONE, "", "wrong.example"},   /* no verification at all */
    {PGP_TLS_VERIFY_NONE, "ca.crt", "localhost"}, /* upgraded to verify-ca: right CA */
    {PGP_TLS_VERIFY_CA, "ca.crt", "localhost"},
    {PGP_TLS_VERIFY_CA, "ca.crt", "wrong.example"},   /* verify-ca ignores the name */
    {PGP_TLS_VERIFY_FULL, "ca.crt", "localhost"},
    {PGP_TLS_VERIFY_FULL, "ca.crt", "LOCALHOST"},     /* DNS names compare without case */
    {PGP_TLS_VERIFY_FULL, "ca.crt", "127.0.0.1"},
};
#define N_OK_CASES ((int)(sizeof(ok_cases) / sizeof(ok_cases[0])))

START_TEST(test_handshake_ok)
{
    NEED_CERTS();
    const ok_case_t *c = &ok_cases[_i];
    pgp_tls_ctx_t *sctx = server_ctx("server.crt", "server.key");
    pgp_tls_ctx_t *cctx = client_ctx(c->verify, c->ca);
    peer_t cl = pgp_peer(pgp_tls_new(cctx, c->host, false));
    peer_t sv = pgp_peer(pgp_tls_new(sctx, NULL, false));

    ck_assert_str_eq(pgp_tls_version(cl.t), "");
    ck_assert_str_eq(pgp_tls_cipher(cl.t), "");
    ck_assert_str_eq(pgp_tls_version(sv.t), "");
    ck_assert_str_eq(pgp_tls_cipher(sv.t), "");
    ck_assert(!pgp_tls_established(cl.t));
    ck_assert_uint_eq(pgp_tls_out_pending(sv.t), 0);

    pump(&cl, &sv);
    ck_assert_msg(cl.st == PGP_TLS_OK, "case %d client: %d %s", _i, cl.st, peer_reason(&cl));
    ck_assert_msg(sv.st == PGP_TLS_OK, "case %d server: %d %s", _i, sv.st, peer_reason(&sv));
    ck_assert(pgp_tls_established(cl.t) && pgp_tls_established(sv.t));
    ck_assert_int_eq(pgp_tls_handshake(cl.t), PGP_TLS_OK);   /* idempotent once done */
    ck_assert_str_eq(pgp_tls_version(cl.t), "TLSv1.3");
    ck_assert_str_eq(pgp_tls_version(sv.t), "TLSv1.3");
    ck_assert_str_ne(pgp_tls_cipher(cl.t), "");
    ck_assert_str_eq(pgp_tls_cipher(cl.t), pgp_tls_cipher(sv.t));
    /* the server sends no session tickets: nothing left over after the handshake */
    ck_assert_uint_eq(pgp_tls_out_pending(sv.t), 0);
    ck_assert(!pgp_tls_has_input(cl.t));

    roundtrip(&cl, &sv, "Q select 1");
    roundtrip(&sv, &cl, "T row description");
    roundtrip(&cl, &sv, "x");

    peer_free(&cl);
    peer_free(&sv);
    pgp_tls_ctx_free(cctx);
    pgp_tls_ctx_free(sctx);
}
END_TEST

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* 1 MiB each way, written, moved and read in pseudo-random pieces. */
START_TEST(test_bulk_both_ways)
{
    NEED_CERTS();
    enum { TOTAL = 1 << 20 };
    pgp_tls_ctx_t *sctx = server_ctx("server.crt", "server.key");
    pgp_tls_ctx_t *cctx = client_ctx(PGP_TLS_VERIFY_FULL, "ca.crt");
    peer_t cl = pgp_peer(pgp_tls_new(cctx, "localhost", false));
    peer_t sv = pgp_peer(pgp_tls_new(sctx, NULL, false));
    pump(&cl, &sv);
    ck_assert(cl.st == PGP_TLS_OK && sv.st == PGP_TLS_OK);

    uint8_t *src[2], *dst[2];
    size_t sent[2] = {0, 0}, recvd[2] = {0, 0};
    uint64_t rng = 0x243f6a8885a308d3ull + (uint64_t)_i;
    for (int d = 0; d < 2; d++) {
        src[d] = malloc(TOTAL);
        dst[d] = malloc(TOTAL);
        ck_assert(src[d] != NULL && dst[d] != NULL);
        for (size_t k = 0; k < TOTAL; k++)
            src[d][k] = (uint8_t)(xorshift(&rng) >> 24);
    }
    peer_t *from[2] = {&cl, &sv}, *to[2] = {&sv, &cl};
    while (recvd[0] < TOTAL || recvd[1] < TOTAL) {
        for (int d = 0; d < 2; d++) {
            if (recvd[d] == TOTAL)
                continue;
            size_t w = (size_t)(xorshift(&rng) % 40000) + 1;
            if (w > TOTAL - sent[d])
                w = TOTAL - sent[d];
            if (w > 0)
                ck_assert_int_eq(pgp_tls_write(from[d]->t, src[d] + sent[d], w), PGP_TLS_OK);
            sent[d] += w;
            size_t piece = (size_t)(xorshift(&rng) % 9000) + 1;
            peer_move_pieces(from[d], to[d], piece);
            size_t rpiece = (size_t)(xorshift(&rng) % 20000) + 1;
            pgp_tls_status_t st = peer_read_all(to[d], dst[d], TOTAL, &recvd[d], rpiece);
            ck_assert_int_eq(st, recvd[d] == TOTAL ? PGP_TLS_OK : PGP_TLS_WANT);
            ck_assert_uint_eq(recvd[d], sent[d]);   /* everything moved is readable */
        }
    }
    for (int d = 0; d < 2; d++) {
        ck_assert_msg(memcmp(src[d], dst[d], TOTAL) == 0, "direction %d differs", d);
        free(src[d]);
        free(dst[d]);
    }
    peer_free(&cl);
    peer_free(&sv);
    pgp_tls_ctx_free(cctx);
    pgp_tls_ctx_free(sctx);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Verification failures                                               */
/* ------------------------------------------------------------------ */

typedef struct fail_case {
    pgp_tls_verify_t verify;
    const char *ca;
    const char *cert, *key;   /* the server's */
    const char *host;
    const char *reason;       /* expected in the client's pgp_tls_reason() */
} fail_case_t;

static const fail_case_t fail_cases[] = {
    {PGP_TLS_VERIFY_FULL, "ca.crt", "server.crt", "server.key", "wrong.example",
     "hostname mismatch"},
    {PGP_TLS_VERIFY_FULL, "ca.crt", "server.crt", "server.key", "local",
     "hostname mismatch"},
    {PGP_TLS_VERIFY_FULL, "ca.crt", "server.crt", "server.key", "127.0.0.2",
     "IP address mismatch"},
    {PGP_TLS_VERIFY_FULL, "ca.crt", "server.crt", "server.key", "::1", "IP address mismatch"},
    {PGP_TLS_VERIFY_CA, "ca2.crt", "server.crt", "server.key", "localhost",
     "unable to get local issuer certificate"},
    {PGP_TLS_VERIFY_FULL, "ca2.crt", "server.crt", "server.key", "localhost",
     "unable to get local issuer certificate"},
    /* a CA file with verify=none is libpq's "require + root cert": verify-ca */
    {PGP_TLS_VERIFY_NONE, "ca2.crt", "server.crt", "server.key", "localhost",
     "unable to get local issuer certificate"},
    /* the system store does not know pgproxy's test CA */
    {PGP_TLS_VERIFY_CA, "system", "server.crt", "server.key", "localhost",
     "unable to get local issuer certificate"},
    /* a self-signed server certificate */
    {PGP_TLS_VERIFY_CA, "ca.crt", "ca2.crt", "ca2.key", "localhost", "self-signed"},
    {PGP_TLS_VERIFY_CA, "ca.crt", "expired.crt", "server.key", "localhost",
     "certificate has expired"},
    {PGP_TLS_VERIFY_FULL, "ca.crt", "expired.crt", "server.key", "localhost",
     "certificate has expired"},
};
#define N_FAIL_CASES ((int)(sizeof(fail_cases) / sizeof(fail_cases[0])))

START_TEST(test_handshake_verify_fails)
{
    NEED_CERTS();
    const fail_case_t *c = &fail_cases[_i];
    if (strcmp(c->cert, "expired.crt") == 0 && !g_have_expired) {
        fprintf(stderr, "test_tls: skipped case %d: openssl could not make an expired "
                        "certificate (see gen.log)\n", _i);
        return;
    }
    pgp_tls_ctx_t *sctx = server_ctx(c->cert, c->key);
    pgp_tls_ctx_t *cctx = client_ctx(c->verify, c->ca);
    peer_t cl = pgp_peer(pgp_tls_new(cctx, c->host, false));
    peer_t sv = pgp_peer(pgp_tls_new(sctx, NULL, false));
    pump(&cl, &sv);
    ck_assert_msg(cl.st == PGP_TLS_FAIL, "case %d: client %d", _i, cl.st);
    ck_assert_msg(strstr(pgp_tls_reason(cl.t), c->reason) != NULL,
                  "case %d: client reason \"%s\", expected \"%s\"", _i, pgp_tls_reason(cl.t),
                  c->reason);
    ck_assert(!pgp_tls_established(cl.t));
    ck_assert_str_eq(pgp_tls_version(cl.t), "");
    /* the client's alert reaches the server, which fails too (and says why) */
    ck_assert_msg(sv.st == PGP_TLS_FAIL, "case %d: server %d", _i, sv.st);
    ck_assert_msg(strstr(pgp_tls_reason(sv.t), "alert") != NULL, "case %d: server reason %s",
                  _i, pgp_tls_reason(sv.t));
    peer_free(&cl);
    peer_free(&sv);
    pgp_tls_ctx_free(cctx);
    pgp_tls_ctx_free(sctx);
}
END_TEST

/*
 * verify-full without a host name to check must not quietly become
 * verify-ca: with no name every certificate from the CA would pass.
 */
START_TEST(test_verify_full_needs_host)
{
    NEED_CERTS();
    static const char *const hosts[] = {NULL, ""};
    pgp_tls_ctx_t *sctx = server_ctx("server.crt", "server.key");
    pgp_tls_ctx_t *cctx = client_ctx(PGP_TLS_VERIFY_FULL, "ca.crt");
    pgp_tls_t *t = pgp_tls_new(cctx, hosts[_i], false);
    if (t != NULL) {   /* refusing the connection outright is as good as failing it */
        peer_t cl = pgp_peer(t);
        peer_t sv = pgp_peer(pgp_tls_new(sctx, NULL, false));
        pump(&cl, &sv);
        ck_assert_msg(cl.st == PGP_TLS_FAIL,
                      "verify-full with host %s%s%s accepted a certificate it cannot check",
                      hosts[_i] ? "\"" : "", hosts[_i] ? hosts[_i] : "NULL",
                      hosts[_i] ? "\"" : "");
        peer_free(&cl);
        peer_free(&sv);
    }
    pgp_tls_ctx_free(cctx);
    pgp_tls_ctx_free(sctx);
}
END_TEST

/* ------------------------------------------------------------------ */
/* ALPN, SNI, TLS 1.2, client certificates (plain OpenSSL peers)       */
/* ------------------------------------------------------------------ */

static SSL_CTX *raw_client_ctx(const unsigned char *alpn, unsigned alpn_len)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    ck_assert_ptr_nonnull(c);
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, NULL);
    if (alpn != NULL)
        ck_assert_int_eq(SSL_CTX_set_alpn_protos(c, alpn, alpn_len), 0);
    return c;
}

typedef struct alpn_case {
    const char *alpn;   /* wire format; NULL: no ALPN extension */
    unsigned alpn_len;
    bool require_alpn;
    bool ok;
    const char *reason;   /* expected in the server's reason when !ok */
} alpn_case_t;

static const alpn_case_t alpn_cases[] = {
    {NULL, 0, false, true, NULL},   /* after an SSLRequest, ALPN is optional */
    {NULL, 0, true, false, "ALPN"},
    {"\x08http/1.1", 9, true, false, "no application protocol"},
    {"\x08http/1.1", 9, false, false, "no application protocol"},   /* as PostgreSQL does */
    {"\x0apostgresql", 11, true, true, NULL},
    {"\x08http/1.1\x0apostgresql", 20, true, true, NULL},
    {"\x0apostgresqX", 11, true, false, "no application protocol"},
};
#define N_ALPN_CASES ((int)(sizeof(alpn_cases) / sizeof(alpn_cases[0])))

START_TEST(test_alpn_raw_client)
{
    NEED_CERTS();
    const alpn_case_t *c = &alpn_cases[_i];
    pgp_tls_ctx_t *sctx = server_ctx("server.crt", "server.key");
    SSL_CTX *rc = raw_client_ctx((const unsigned char *)c->alpn, c->alpn_len);
    peer_t cl = raw_peer(rc, false);
    peer_t sv = pgp_peer(pgp_tls_new(sctx, NULL, c->require_alpn));
    pump(&cl, &sv);
    if (c->ok) {
        ck_assert_msg(sv.st == PGP_TLS_OK, "case %d: server %d %s", _i, sv.st,
                      peer_reason(&sv));
        ck_assert_int_eq(cl.st, PGP_TLS_OK);
        const unsigned char *p = NULL;
        unsigned n = 0;
        SSL_get0_alpn_selected(cl.ssl, &p, &n);
        if (c->alpn != NULL) {
            ck_assert_uint_eq(n, 10);
            ck_assert_mem_eq(p, "postgresql", 10);
        } else {
            ck_assert_uint_eq(n, 0);
        }
        roundtrip(&cl, &sv, "hello");
    } else {
        ck_assert_msg(sv.st == PGP_TLS_FAIL, "case %d: server %d", _i, sv.st);
        ck_assert_msg(strstr(pgp_tls_reason(sv.t), c->reason) != NULL,
                      "case %d: server reason \"%s\", expected \"%s\"", _i,
                      pgp_tls_reason(sv.t), c->reason);
        ck_assert(!pgp_tls_established(sv.t));
    }
    peer_free(&cl);
    peer_free(&sv);
    SSL_CTX_free(rc);
    pgp_tls_ctx_free(sctx);
}
END_TEST

/* pgproxy's own client always offers ALPN "postgresql": direct TLS servers accept it. */
START_TEST(test_alpn_pgp_client)
{
    NEED_CERTS();
    pgp_tls_ctx_t *sctx = server_ctx("server.crt", "server.key");
    pgp_tls_ctx_t *cctx = client_ctx(PGP_TLS_VERIFY_NONE, "");
    peer_t cl = pgp_peer(pgp_tls_new(cctx, "localhost", false));
    peer_t sv = pgp_peer(pgp_tls_new(sctx, NULL, true));
    pump(&cl, &sv);
    ck_assert_msg(sv.st == PGP_TLS_OK, "server: %s", peer_reason(&sv));
    ck_assert_int_eq(cl.st, PGP_TLS_OK);
    roundtrip(&sv, &cl, "S");
    peer_free(&cl);
    peer_free(&sv);
    pgp_tls_ctx_free(cctx);
    pgp_tls_ctx_free(sctx);
}
END_TEST

static int on_raw_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)ssl;
    (void)arg;
    static const unsigned char mine[] = "\x0apostgresql";
    unsigned char *o = NULL;
    if (SSL_select_next_proto(&o, outlen, mine, sizeof(mine) - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    *out = o;
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *raw_server_ctx(bool want_client_cert, int max_version)
{
    SSL_CTX *c = SSL_CTX_new(TLS_server_method());
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(SSL_CTX_use_certificate_chain_file(c, P("server.crt")), 1);
    ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(c, P("server.key"), SSL_FILETYPE_PEM), 1);
    SSL_CTX_set_alpn_select_cb(c, on_raw_alpn, NULL);
    if (max_version != 0)
        ck_assert_int_eq(SSL_CTX_set_max_proto_version(c, max_version), 1);
    if (want_client_cert) {
        ck_assert_int_eq(SSL_CTX_load_verify_locations(c, P("ca.crt"), NULL), 1);
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return c;
}

/* What the server sees: ALPN "postgresql" always, SNI for names but not for IP literals. */
typedef struct sni_case {
    const char *host;
    const char *sni;   /* NULL: none expected */
    int max_version;
    const char *version;
} sni_case_t;

static const sni_case_t sni_cases[] = {
    {"localhost", "localhost", 0, "TLSv1.3"},
    {"127.0.0.1", NULL, 0, "TLSv1.3"},
    {"::1", NULL, 0, "TLSv1.3"},
    {NULL, NULL, 0, "TLSv1.3"},
    {"localhost", "localhost", TLS1_2_VERSION, "TLSv1.2"},
};
#define N_SNI_CASES ((int)(sizeof(sni_cases) / sizeof(sni_cases[0])))

START_TEST(test_sni_alpn_version_seen_by_server)
{
    NEED_CERTS();
    const sni_case_t *c = &sni_cases[_i];
    SSL_CTX *rs = raw_server_ctx(false, c->max_version);
    pgp_tls_ctx_t *cctx = client_ctx(PGP_TLS_VERIFY_CA, "ca.crt");
    peer_t cl = pgp_peer(pgp_tls_new(cctx, c->host, false));
    peer_t sv = raw_peer(rs, true);
    pump(&cl, &sv);
    ck_assert_msg(cl.st == PGP_TLS_OK && sv.st == PGP_TLS_OK, "case %d: %d %s / %d %s", _i,
                  cl.st, peer_reason(&cl), sv.st, peer_reason(&sv));
    const char *sni = SSL_get_servername(sv.ssl, TLSEXT_NAMETYPE_host_name);
    if (c->sni == NULL)
        ck_assert_msg(sni == NULL, "case %d: SNI \"%s\" sent for an IP literal", _i, sni);
    else
        ck_assert_str_eq(sni != NULL ? sni : "(none)", c->sni);
    const unsigned char *p = NULL;
    unsigned n = 0;
    SSL_get0_alpn_selected(sv.ssl, &p, &n);
    ck_assert_uint_eq(n, 10);
    ck_assert_mem_eq(p, "postgresql", 10);
    ck_assert_str_eq(pgp_tls_version(cl.t), c->version);
    ck_assert_str_ne(pgp_tls_cipher(cl.t), "");
    roundtrip(&cl, &sv, "ping");
    roundtrip(&sv, &cl, "pong");
    peer_free(&cl);
    peer_free(&sv);
    pgp_tls_ctx_free(cctx);
    SSL_CTX_free(rs);
}
END_TEST

/* A server that demands a client certificate: accepted with one, refused without. */
START_TEST(test_client_certificate)
{
    NEED_CERTS();
    bool with_cert = _i == 0;
    SSL_CTX *rs = raw_server_ctx(true, 0);
    char err[512] = "";
    pgp_tls_ctx_t *cctx =
        pgp_tls_ctx_client(PGP_TLS_VERIFY_FULL, P("ca.crt"), with_cert ? P("client.crt") : "",
                           with_cert ? P("client.key") : "", err, sizeof(err));
    ck_assert_msg(cctx != NULL, "%s", err);
    peer_t cl = pgp_peer(pgp_tls_new(cctx, "localhost", false));
    peer_t sv = raw_peer(rs, true);
    pump(&cl, &sv);
    if (with_cert) {
        ck_assert_msg(cl.st == PGP_TLS_OK && sv.st == PGP_TLS_OK, "%d %s / %d %s", cl.st,
                      peer_reason(&cl), sv.st, peer_reason(&sv));
        X509 *peer = SSL_get1_peer_certificate(sv.ssl);
        ck_assert_ptr_nonnull(peer);
        char cn[64] = "";
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn,
                                  sizeof(cn));
        X509_free(peer);
        ck_assert_str_eq(cn, "pgproxy");
        roundtrip(&cl, &sv, "startup");
    } else {
        ck_assert_msg(sv.st == PGP_TLS_FAIL, "server accepted a client without certificate");
        /*
         * TLS 1.3: the client finishes its side before the server judges
         * its (empty) certificate; the refusal arrives as an alert on the
         * first read.
         */
        if (cl.st == PGP_TLS_OK) {
            uint8_t buf[64];
            size_t got = 0;
            ck_assert_int_eq(pgp_tls_read(cl.t, buf, sizeof(buf), &got), PGP_TLS_FAIL);
            ck_assert_uint_eq(got, 0);
        }
        ck_assert_msg(strstr(pgp_tls_reason(cl.t), "certificate required") != NULL,
                      "client reason \"%s\"", pgp_tls_reason(cl.t));
    }
    peer_free(&cl);
    peer_free(&sv);
    pgp_tls_ctx_free(cctx);
    SSL_CTX_free(rs);
}
END_TEST

/* ------------------------------------------------------------------ */
/* Context errors                                                      */
/* ------------------------------------------------------------------ */

typedef struct ctx_err_case {
    bool server;
    pgp_tls_verify_t verify;
    const char *ca, *cert, *key;   /* fixture names; "" none; "missing" a path that does not exist */
    const char *want1, *want2;     /* expected in err (a "@" prefix: the path of that file) */
} ctx_err_case_t;

static const ctx_err_case_t ctx_err_cases[] = {
    {true, 0, "", "missing.crt", "server.key", "@missing.crt", NULL},
    {true, 0, "", "server.crt", "missing.key", "@missing.key", NULL},
    {true, 0, "", "server.crt", "other.key", "@other.key", "mismatch"},
    {true, 0, "", "garbage.pem", "server.key", "@garbage.pem", NULL},
    {true, 0, "", "server.crt", "garbage.pem", "@garbage.pem", NULL},
    {true, 0, "", "", "", "certificate", NULL},
    {false, PGP_TLS_VERIFY_CA, "", "", "", "CA", NULL},
    {false, PGP_TLS_VERIFY_FULL, "", "", "", "CA", NULL},
    {false, PGP_TLS_VERIFY_CA, "missing.crt", "", "", "@missing.crt", NULL},
    {false, PGP_TLS_VERIFY_FULL, "garbage.pem", "", "", "@garbage.pem", NULL},
    {false, PGP_TLS_VERIFY_NONE, "", "client.crt", "other.key", "@other.key", "mismatch"},
    {false, PGP_TLS_VERIFY_NONE, "", "client.crt", "", "private key", NULL},
    {false, PGP_TLS_VERIFY_NONE, "", "missing.crt", "client.key", "@missing.crt", NULL},
};
#define N_CTX_ERR_CASES ((int)(sizeof(ctx_err_cases) / sizeof(ctx_err_cases[0])))

static const char *fixture_path(const char *name)
{
    return name[0] == '\0' ? "" : P(name);
}

START_TEST(test_ctx_errors)
{
    NEED_CERTS();
    const ctx_err_case_t *c = &ctx_err_cases[_i];
    char err[512];
    memset(err, 'x', sizeof(err) - 1);
    err[sizeof(err) - 1] = '\0';
    pgp_tls_ctx_t *t =
        c->server ? pgp_tls_ctx_server(fixture_path(c->cert), fixture_path(c->key), err,
                                       sizeof(err))
                  : pgp_tls_ctx_client(c->verify, fixture_path(c->ca), fixture_path(c->cert),
                                       fixture_path(c->key), err, sizeof(err));
    ck_assert_msg(t == NULL, "case %d: context made", _i);
    ck_assert_msg(err[0] != 'x' && err[0] != '\0' && strchr(err, '\n') == NULL,
                  "case %d: no one-line reason: \"%s\"", _i, err);
    const char *wants[2] = {c->want1, c->want2};
    for (int k = 0; k < 2; k++) {
        if (wants[k] == NULL)
            continue;
        const char *w = wants[k][0] == '@' ? P(wants[k] + 1) : wants[k];
        ck_assert_msg(strstr(err, w) != NULL, "case %d: \"%s\" lacks \"%s\"", _i, err, w);
    }
    /* a failed load leaves nothing behind on the thread's error queue */
    ck_assert_uint_eq(ERR_peek_error(), 0);
}
END_TEST

/* An err buffer too small for the reason still gets a NUL-terminated (truncated) one. */
START_TEST(test_ctx_error_short_buffer)
{
    NEED_CERTS();
    char err[8];
    memset(err, 'x', sizeof(err));
    ck_assert_ptr_null(pgp_tls_ctx_server(P("missing.crt"), P("server.key"), err, sizeof(err)));
    ck_assert_uint_lt(strnlen(err, sizeof(err)), sizeof(err));
}
END_TEST

/* ------------------------------------------------------------------ */
/* Lifetimes, garbage, close_notify, buffered input                   */
/* ------------------------------------------------------------------ */

/* Connections keep their context: drop every wrapper reference first, then handshake. */
START_TEST(test_ctx_outlived_by_connections)
{
    NEED_CERTS();
    pgp_tls_ctx_t *sctx = server_ctx("server.crt", "server.key");
    pgp_tls_ctx_t *cctx = client_ctx(PGP_TLS_VERIFY_FULL, "ca.crt");
    ck_assert_ptr_eq(pgp_tls_ctx_ref(sctx), sctx);
    ck_assert_ptr_eq(pgp_tls_ctx_ref(sctx), sctx);
    peer_t cl = pgp_peer(pgp_tls_new(cctx, "localhost", false));
    peer_t sv = pgp_peer(pgp_tls_new(sctx, NULL, false));
    pgp_tls_ctx_free(sctx);
    pgp_tls_ctx_free(sctx);
    /* still one reference: a new connection works */
    peer_t sv2 = pgp_peer(pgp_tls_new(sctx, NULL, false));
    pgp_tls_ctx_free(sctx);
    pgp_tls_ctx_free(cctx);
    pgp_tls_ctx_free(NULL);

    pump(&cl, &sv);
    ck_assert_msg(cl.st == PGP_TLS_OK && sv.st == PGP_TLS_OK, "%s / %s", peer_reason(&cl),
                  peer_reason(&sv));
    roundtrip(&cl, &sv, "after the context was freed");
    pgp_tls_ctx_t *cctx2 = client_ctx(PGP_TLS_VERIFY_NONE, "");
    peer_t cl2 = pgp_peer(pgp_tls_new(cctx2, NULL, false));
    pgp_tls_ctx_free(cctx2);
    pump(&cl2, &sv2);
    ck_assert(cl2.st == PGP_TLS_OK && sv2.st == PGP_TLS_OK);
    roundtrip(&sv2, &cl2, "second");
    peer_free(&cl);
    peer_free(&sv);
    peer_free(&cl2);
    peer_free(&sv2);
    pgp_tls_free(NULL);
}
END_TEST

typedef struct garbage_case {
    const char *bytes;
    size_t len;
    bool to_server;   /* else: what a "server" answers a pgproxy client */
} garbage_case_t;

static const garbage_case_t garbage_cases[] = {
    {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27, true},
    {"\x00\x00\x00\x08\x04\xd2\x16\x2f", 8, true},           /* an SSLRequest, sent again */
    {"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00", 10, true},  /* a ClientHello far too short */
    {"\x16\x03\x01\xff\xff\x01", 6, true},                   /* record longer than allowed */
    {"\x15\x03\x03\x00\x02\x02\x28", 7, true},               /* a fatal alert */
    {"\x17\x03\x03\x00\x05hello", 10, true},                 /* application data first */
    {"E\x00\x00\x00\x10SFATAL\x00\x00\x00\x00", 16, false},  /* an ErrorResponse */
    {"\x16\x03\x03\x00\x04\x02\x00\x00\x00", 9, false},      /* an empty ServerHello */
    {"\x15\x03\x03\x00\x02\x02\x46", 7, false},              /* protocol_version alert */
};
#define N_GARBAGE_CASES ((int)(sizeof(garbage_cases) / sizeof(garbage_cases[0])))

START_TEST(test_garbage_fails_cleanly)
{
    NEED_CERTS();
    const garbage_case_t *c = &garbage_cases[_i];
    pgp_tls_ctx_t *ctx = c->to_server ? server_ctx("server.crt", "server.key")
                                      : client_ctx(PGP_TLS_VERIFY_NONE, "");
    pgp_tls_t *t = pgp_tls_new(ctx, "localhost", false);
    ck_assert_ptr_nonnull(t);
    uint8_t out[4096];
    if (!c->to_server) {
        ck_assert_int_eq(pgp_tls_handshake(t), PGP_TLS_WANT);   /* writes the ClientHello */
        ck_assert_uint_gt(pgp_tls_out_take(t, out, sizeof(out)), 0);
    }
    ck_assert_int_eq(pgp_tls_feed(t, (const uint8_t *)c->bytes, c->len), 0);
    ck_assert(pgp_tls_has_input(t));
    ck_assert_int_eq(pgp_tls_handshake(t), PGP_TLS_FAIL);
    const char *r = pgp_tls_reason(t);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(r[0] != '\0' && strcmp(r, "TLS error") != 0, "case %d: reason \"%s\"", _i, r);
    ck_assert(!pgp_tls_established(t));
    ck_assert_str_eq(pgp_tls_version(t), "");
    /* the failed connection stays inert: more calls fail, nothing crashes */
    (void)pgp_tls_out_take(t, out, sizeof(out));
    ck_assert_int_eq(pgp_tls_feed(t, (const uint8_t *)c->bytes, c->len), 0);
    ck_assert_int_eq(pgp_tls_handshake(t), PGP_TLS_FAIL);
    size_t got = 99;
    ck_assert_int_ne(pgp_tls_read(t, out, sizeof(out), &got), PGP_TLS_OK);
    ck_assert_uint_eq(got, 0);
    pgp_tls_shutdown(t);   /* not established: nothing queued */
    ck_assert_uint_eq(ERR_peek_error(), 0);
    pgp_tls_free(t);
    pgp_tls_ctx_free(ctx);
}
END_TEST

/* A ClientHello in pieces: WANT until it is whole, whatever the cut. */
START_TEST(test_handshake_in_small_pieces)
{
    NEED_CERTS();
    size_t piece = (size_t)_i + 1;
    pgp_tls_ctx_t *sctx = server_ctx("server.crt", "server.key");
    pgp_tls_ctx_t *cctx = client_ctx(PGP_TLS_VERIFY_FULL, "ca.crt");
    peer_t cl = pgp_peer(pgp_tls_new(cctx, "localhost", false));
    peer_t sv = pgp_peer(pgp_tls_new(sctx, NULL, true));
    for (int round = 0; round < 4096 && (cl.st == PGP_TLS_WANT || sv.st == PGP_TLS_WANT);
         round++) {
        peer_step(&cl);
        uint8_t buf[64];
        size_t n = pgp_tls_out_take(cl.t, buf, piece);
        if (n > 0)
            ck_assert_int_eq(pgp_tls_feed(sv.t, buf, n), 0);
        peer_step(&sv);
        n = pgp_tls_out_take(sv.t, buf, piece);
        if (n > 0)
            ck_assert_int_eq(pgp_tls_feed(cl.t, buf, n), 0);
    }
    ck_assert_msg(cl.st == PGP_TLS_OK && sv.st == PGP_TLS_OK, "piece %zu: %d %s / %d %s",
                  piece, cl.st, peer_reason(&cl), sv.st, peer_reason(&sv));
    roundtrip(&cl, &sv, "pieces");
    peer_free(&cl);
    peer_free(&sv);
    pgp_tls_ctx_free(cctx);
    pgp_tls_ctx_free(sctx);
}
END_TEST

static void established_pair(pgp_tls_ctx_t **sctx, pgp_tls_ctx_t **cctx, peer_t *cl,
                             peer_t *sv)
{
    *sctx = server_ctx("server.crt", "server.key");
    *cctx = client_ctx(PGP_TLS_VERIFY_FULL, "ca.crt");
    *cl = pgp_peer(pgp_tls_new(*cctx, "localhost", false));
    *sv = pgp_peer(pgp_tls_new(*sctx, NULL, false));
    pump(cl, sv);
    ck_assert(cl->st == PGP_TLS_OK && sv->st == PGP_TLS_OK);
}

/* close_notify: data written before it arrives first, then CLOSED; either side may close. */
START_TEST(test_close_notify)
{
    NEED_CERTS();
    pgp_tls_ctx_t *sctx, *cctx;
    peer_t cl, sv;
    established_pair(&sctx, &cctx, &cl, &sv);
    peer_t *closer = _i == 0 ? &cl : &sv, *other = _i == 0 ? &sv : &cl;

    ck_assert_int_eq(pgp_tls_write(closer->t, (const uint8_t *)"bye", 3), PGP_TLS_OK);
    pgp_tls_shutdown(closer->t);
    ck_assert_uint_gt(pgp_tls_out_pending(closer->t), 3);
    peer_move(closer, other);
    uint8_t buf[64];
    size_t got = 0;
    ck_assert_int_eq(peer_read_all(other, buf, sizeof(buf), &got, 0), PGP_TLS_CLOSED);
    ck_assert_uint_eq(got, 3);
    ck_assert_mem_eq(buf, "bye", 3);
    ck_assert_int_eq(pgp_tls_read(other->t, buf, sizeof(buf), &got), PGP_TLS_CLOSED);
    ck_assert_uint_eq(got, 0);
    /* the other side answers with its own close_notify */
    pgp_tls_shutdown(other->t);
    peer_move(other, closer);
    ck_assert_int_eq(pgp_tls_read(closer->t, buf, sizeof(buf), &got), PGP_TLS_CLOSED);
    peer_free(&cl);
    peer_free(&sv);
    pgp_tls_ctx_free(cctx);
    pgp_tls_ctx_free(sctx);
}
END_TEST

START_TEST(test_has_input)
{
    NEED_CERTS();
    pgp_tls_ctx_t *sctx, *cctx;
    peer_t cl, sv;
    established_pair(&sctx, &cctx, &cl, &sv);
    uint8_t buf[64];
    size_t got = 0;

    ck_assert(!pgp_tls_has_input(sv.t));
    ck_assert_int_eq(pgp_tls_read(sv.t, buf, sizeof(buf), &got), PGP_TLS_WANT);
    ck_assert_int_eq(pgp_tls_write(cl.t, (const uint8_t *)"0123456789", 10), PGP_TLS_OK);
    ck_assert_int_eq(pgp_tls_write(cl.t, (const uint8_t *)"abc", 3), PGP_TLS_OK);
    peer_move(&cl, &sv);
    ck_assert(pgp_tls_has_input(sv.t));   /* ciphertext fed, nothing read */
    ck_assert_int_eq(pgp_tls_read(sv.t, buf, 4, &got), PGP_TLS_OK);
    ck_assert_uint_eq(got, 4);
    ck_assert(pgp_tls_has_input(sv.t));   /* decrypted bytes left in the record */
    ck_assert_int_eq(pgp_tls_read(sv.t, buf + 4, 6, &got), PGP_TLS_OK);
    ck_assert_uint_eq(got, 6);
    ck_assert(pgp_tls_has_input(sv.t));   /* the second record, not decrypted yet */
    ck_assert_int_eq(pgp_tls_read(sv.t, buf + 10, sizeof(buf) - 10, &got), PGP_TLS_OK);
    ck_assert_uint_eq(got, 3);
    ck_assert_mem_eq(buf, "0123456789abc", 13);
    ck_assert(!pgp_tls_has_input(sv.t));
    ck_assert_int_eq(pgp_tls_read(sv.t, buf, sizeof(buf), &got), PGP_TLS_WANT);

    /* half a record: input, but nothing to read yet */
    ck_assert_int_eq(pgp_tls_write(cl.t, (const uint8_t *)"split", 5), PGP_TLS_OK);
    size_t n = pgp_tls_out_take(cl.t, buf, 8);
    ck_assert_uint_eq(n, 8);
    ck_assert_int_eq(pgp_tls_feed(sv.t, buf, n), 0);
    ck_assert(pgp_tls_has_input(sv.t));
    ck_assert_int_eq(pgp_tls_read(sv.t, buf, sizeof(buf), &got), PGP_TLS_WANT);
    peer_move(&cl, &sv);
    ck_assert(pgp_tls_has_input(sv.t));
    ck_assert_int_eq(pgp_tls_read(sv.t, buf, sizeof(buf), &got), PGP_TLS_OK);
    ck_assert_uint_eq(got, 5);
    ck_assert_mem_eq(buf, "split", 5);

    /* out_take: cap 0 takes nothing; pending counts down to 0 */
    ck_assert_int_eq(pgp_tls_write(sv.t, (const uint8_t *)"R", 1), PGP_TLS_OK);
    size_t pending = pgp_tls_out_pending(sv.t);
    ck_assert_uint_gt(pending, 1);
    ck_assert_uint_eq(pgp_tls_out_take(sv.t, buf, 0), 0);
    ck_assert_uint_eq(pgp_tls_out_pending(sv.t), pending);
    ck_assert_int_eq(pgp_tls_write(sv.t, NULL, 0), PGP_TLS_OK);
    ck_assert_uint_eq(pgp_tls_out_pending(sv.t), pending);
    peer_free(&cl);
    peer_free(&sv);
    pgp_tls_ctx_free(cctx);
    pgp_tls_ctx_free(sctx);
}
END_TEST

/* A record tampered with in flight fails the connection with a reason. */
START_TEST(test_tampered_record)
{
    NEED_CERTS();
    pgp_tls_ctx_t *sctx, *cctx;
    peer_t cl, sv;
    established_pair(&sctx, &cctx, &cl, &sv);
    ck_assert_int_eq(pgp_tls_write(cl.t, (const uint8_t *)"secret", 6), PGP_TLS_OK);
    uint8_t buf[256];
    size_t n = pgp_tls_out_take(cl.t, buf, sizeof(buf));
    ck_assert_uint_gt(n, 10);
    buf[n - 1 - (size_t)_i] ^= 0x01;
    ck_assert_int_eq(pgp_tls_feed(sv.t, buf, n), 0);
    size_t got = 0;
    ck_assert_int_eq(pgp_tls_read(sv.t, buf, sizeof(buf), &got), PGP_TLS_FAIL);
    ck_assert_uint_eq(got, 0);
    ck_assert_msg(strstr(pgp_tls_reason(sv.t), "bad record mac") != NULL ||
                      strstr(pgp_tls_reason(sv.t), "decrypt") != NULL,
                  "reason \"%s\"", pgp_tls_reason(sv.t));
    peer_free(&cl);
    peer_free(&sv);
    pgp_tls_ctx_free(cctx);
    pgp_tls_ctx_free(sctx);
}
END_TEST

static Suite *tls_suite(void)
{
    Suite *s = suite_create("tls");

    TCase *tc = tcase_create("handshake");
    tcase_add_unchecked_fixture(tc, certs_setup, certs_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_handshake_ok, 0, N_OK_CASES);
    tcase_add_loop_test(tc, test_bulk_both_ways, 0, 2);
    tcase_add_loop_test(tc, test_handshake_in_small_pieces, 0, 7);
    suite_add_tcase(s, tc);

    tc = tcase_create("verify");
    tcase_add_unchecked_fixture(tc, certs_setup, certs_teardown);
    tcase_add_loop_test(tc, test_handshake_verify_fails, 0, N_FAIL_CASES);
    tcase_add_loop_test(tc, test_verify_full_needs_host, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("peers");
    tcase_add_unchecked_fixture(tc, certs_setup, certs_teardown);
    tcase_add_loop_test(tc, test_alpn_raw_client, 0, N_ALPN_CASES);
    tcase_add_test(tc, test_alpn_pgp_client);
    tcase_add_loop_test(tc, test_sni_alpn_version_seen_by_server, 0, N_SNI_CASES);
    tcase_add_loop_test(tc, test_client_certificate, 0, 2);
    suite_add_tcase(s, tc);

    tc = tcase_create("contexts");
    tcase_add_unchecked_fixture(tc, certs_setup, certs_teardown);
    tcase_add_loop_test(tc, test_ctx_errors, 0, N_CTX_ERR_CASES);
    tcase_add_test(tc, test_ctx_error_short_buffer);
    tcase_add_test(tc, test_ctx_outlived_by_connections);
    suite_add_tcase(s, tc);

    tc = tcase_create("records");
    tcase_add_unchecked_fixture(tc, certs_setup, certs_teardown);
    tcase_add_loop_test(tc, test_garbage_fails_cleanly, 0, N_GARBAGE_CASES);
    tcase_add_loop_test(tc, test_close_notify, 0, 2);
    tcase_add_test(tc, test_has_input);
    tcase_add_loop_test(tc, test_tampered_record, 0, 3);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(tls_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
