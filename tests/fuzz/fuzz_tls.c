/*
 * fuzz_tls.c - libFuzzer target for pgproxy/tls.c: the first bytes of a
 * TLS connection, from either side.
 *
 * Input layout: byte 0 picks the mode (bit 0: the accepting side demands
 * ALPN "postgresql", as for direct TLS; bit 1: play pgproxy's client and
 * treat the bytes as the server's answer to its ClientHello; bit 2: that
 * client verifies (verify-full for "localhost"); bits 3-7: how the bytes
 * are cut into pieces), the rest is what the peer sends.  The accepting
 * side is what any program that can reach pgproxy's listen port controls.
 *
 * At start-up the target makes a self-signed certificate with the OpenSSL
 * API, loads it through pgp_tls_ctx_server() from two temporary files
 * (removed at once), and builds the client contexts.  Checked on every
 * input: handshake statuses stay in range, a failure has a one-line reason
 * and sticks, version and cipher are "" until established, the output
 * queue's count matches what is taken, and no call leaves an error on
 * OpenSSL's per-thread queue (it would be blamed on the next caller).  Any
 * violation aborts.
 */
#include "pgproxy/tls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FAIL(...)                                                  \
    do {                                                           \
        fprintf(stderr, "fuzz_tls: " __VA_ARGS__);                 \
        fputc('\n', stderr);                                       \
        abort();                                                   \
    } while (0)

static pgp_tls_ctx_t *g_server, *g_client_none, *g_client_full;

/* A self-signed EC certificate for localhost, written to cert_path and key_path. */
static void make_cert(const char *cert_path, const char *key_path)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (key == NULL || x == NULL)
        FAIL("cannot make a key");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"localhost",
                               -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    if (X509_sign(x, key, EVP_sha256()) == 0)
        FAIL("cannot sign the certificate");
    FILE *c = fopen(cert_path, "w");
    FILE *k = fopen(key_path, "w");
    if (c == NULL || k == NULL || PEM_write_X509(c, x) != 1 ||
        PEM_write_PrivateKey(k, key, NULL, NULL, 0, NULL, NULL) != 1)
        FAIL("cannot write the certificate");
    fclose(c);
    fclose(k);
    X509_free(x);
    EVP_PKEY_free(key);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char dir[] = "/tmp/pgproxy-fuzz-tls-XXXXXX";
    if (mkdtemp(dir) == NULL)
        FAIL("mkdtemp");
    char cert[64], key[64], err[512];
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    make_cert(cert, key);
    g_server = pgp_tls_ctx_server(cert, key, err, sizeof(err));
    if (g_server == NULL)
        FAIL("server context: %s", err);
    g_client_none = pgp_tls_ctx_client(PGP_TLS_VERIFY_NONE, "", "", "", err, sizeof(err));
    if (g_client_none == NULL)
        FAIL("client context: %s", err);
    g_client_full = pgp_tls_ctx_client(PGP_TLS_VERIFY_FULL, cert, "", "", err, sizeof(err));
    if (g_client_full == NULL)
        FAIL("verifying client context: %s", err);
    unlink(cert);
    unlink(key);
    rmdir(dir);
    return 0;
}

static void check_queue(const char *after)
{
    unsigned long e = ERR_peek_error();
    if (e != 0) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof(buf));
        FAIL("%s left an OpenSSL error on the queue: %s", after, buf);
    }
}

static void check_reason(const pgp_tls_t *t)
{
    const char *r = pgp_tls_reason(t);
    if (r == NULL || r[0] == '\0')
        FAIL("failure without a reason");
    size_t n = strnlen(r, 512);
    if (n >= 512 || memchr(r, '\n', n) != NULL)
        FAIL("reason not one short line");
}

static void check_strings(const pgp_tls_t *t)
{
    const char *v = pgp_tls_version(t), *c = pgp_tls_cipher(t);
    if (v == NULL || c == NULL)
        FAIL("NULL version or cipher");
    if (!pgp_tls_established(t) && (v[0] != '\0' || c[0] != '\0'))
        FAIL("version \"%s\" / cipher \"%s\" before the handshake", v, c);
    if (pgp_tls_established(t) && (strncmp(v, "TLSv1.", 6) != 0 || c[0] == '\0'))
        FAIL("established with version \"%s\" / cipher \"%s\"", v, c);
}

/* Take everything queued for the peer (and drop it), checking the count. */
static void drain(pgp_tls_t *t, size_t piece)
{
    uint8_t buf[4096];
    size_t pending = pgp_tls_out_pending(t), taken = 0;
    if (piece == 0 || piece > sizeof(buf))
        piece = sizeof(buf);
    for (;;) {
        size_t n = pgp_tls_out_take(t, buf, piece);
        if (n > piece)
            FAIL("out_take returned %zu for cap %zu", n, piece);
        if (n == 0)
            break;
        taken += n;
    }
    if (taken != pending || pgp_tls_out_pending(t) != 0)
        FAIL("out_pending said %zu, %zu taken", pending, taken);
    check_queue("out_take");
}

static size_t piece_size(uint8_t sel, size_t i)
{
    switch (sel & 3) {
    case 0:
        return SIZE_MAX;                           /* everything at once */
    case 1:
        return 1;                                  /* byte by byte */
    case 2:
        return (size_t)1 << (sel >> 2);            /* 1..128 */
    default:
        return ((size_t)sel * 7 + i * 13) % 97 + 1;   /* uneven */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    bool require_alpn = mode & 1, client = mode & 2, verify = mode & 4;
    uint8_t cut = mode >> 3;
    const uint8_t *s = data + 1;
    size_t n = size - 1;

    pgp_tls_t *t = client ? pgp_tls_new(verify ? g_client_full : g_client_none, "localhost",
                                        false)
                          : pgp_tls_new(g_server, NULL, require_alpn);
    if (t == NULL)
        FAIL("pgp_tls_new");
    check_queue("pgp_tls_new");
    check_strings(t);
    if (pgp_tls_out_pending(t) != 0 || pgp_tls_has_input(t))
        FAIL("a new connection has bytes queued");
    if (client) {
        /* the ClientHello goes out first */
        if (pgp_tls_handshake(t) != PGP_TLS_WANT || pgp_tls_out_pending(t) == 0)
            FAIL("client did not start with a ClientHello");
        drain(t, 0);
    }

    pgp_tls_status_t st = PGP_TLS_WANT;
    size_t pos = 0;
    for (size_t i = 0; pos < n && st == PGP_TLS_WANT; i++) {
        size_t k = piece_size(cut, i);
        if (k > n - pos)
            k = n - pos;
        if (pgp_tls_feed(t, s + pos, k) != 0)
            FAIL("feed failed");
        check_queue("pgp_tls_feed");
        pos += k;
        st = pgp_tls_handshake(t);
        check_queue("pgp_tls_handshake");
        if (st != PGP_TLS_WANT && st != PGP_TLS_OK && st != PGP_TLS_FAIL)
            FAIL("handshake status %d", (int)st);
        if ((st == PGP_TLS_OK) != pgp_tls_established(t))
            FAIL("handshake %d but established %d", (int)st, pgp_tls_established(t));
        check_strings(t);
        drain(t, (size_t)cut + 1);
    }

    uint8_t buf[1024];
    size_t got = 0;
    switch (st) {
    case PGP_TLS_FAIL:
        check_reason(t);
        /* failure sticks, and nothing else breaks on a failed connection */
        if (pgp_tls_handshake(t) != PGP_TLS_FAIL)
            FAIL("handshake recovered after a failure");
        check_queue("pgp_tls_handshake (again)");
        check_reason(t);
        if (pgp_tls_read(t, buf, sizeof(buf), &got) == PGP_TLS_OK || got != 0)
            FAIL("read data from a failed connection");
        check_queue("pgp_tls_read (failed)");
        break;
    case PGP_TLS_OK:
        /* whatever follows the handshake in the input is records */
        for (int r = 0; r < 64; r++) {
            pgp_tls_status_t rs = pgp_tls_read(t, buf, sizeof(buf), &got);
            check_queue("pgp_tls_read");
            if (rs == PGP_TLS_OK ? got == 0 || got > sizeof(buf) : got != 0)
                FAIL("read %d with %zu bytes", (int)rs, got);
            if (rs == PGP_TLS_FAIL)
                check_reason(t);
            if (rs != PGP_TLS_OK)
                break;
        }
        (void)pgp_tls_write(t, (const uint8_t *)"N", 1);
        check_queue("pgp_tls_write");
        break;
    default:
        /* input ran out mid-handshake: nothing to read yet */
        if (pgp_tls_read(t, buf, sizeof(buf), &got) == PGP_TLS_OK || got != 0)
            FAIL("read data before the handshake");
        check_queue("pgp_tls_read (handshake)");
        break;
    }
    (void)pgp_tls_has_input(t);
    pgp_tls_shutdown(t);
    check_queue("pgp_tls_shutdown");
    drain(t, 0);
    check_strings(t);
    pgp_tls_free(t);
    return 0;
}
