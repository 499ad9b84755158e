/*
 * fuzz_config.c - libFuzzer target for the config file parser, the text
 * value parser and the endpoint parser.
 *
 * Each input is loaded as a TOML file (any bytes, embedded NULs included)
 * into a fresh config; when it loads, the dump of the result must load
 * again to the same dump (a round-trip invariant, abort() otherwise); when
 * it also finishes, the reloaded dump must finish too, to the same dump (the
 * proxy.upstream URL's TLS parameters agree with the keys they filled).  A
 * NUL-terminated copy of the input is also fed to pgp_endpoint_parse, to
 * pgp_config_set on a string and an integer key, and to
 * pgp_toml_parse_text for every type; its lines become an environment for
 * pgp_config_apply_env.  Sanitizers catch crashes and leaks.
 */
#include "pgproxy/config.h"
#include "pgproxy/toml.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *dump(const pgp_config_t *cfg, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (f == NULL)
        abort();
    pgp_config_dump(cfg, f);
    if (fclose(f) != 0)
        abort();
    return buf;
}

static void check_roundtrip(const pgp_config_t *cfg)
{
    char err[512];
    size_t len1, len2;
    char *d1 = dump(cfg, &len1);
    pgp_config_t again;
    pgp_config_init(&again);
    if (pgp_config_load_buffer(&again, "dump", d1, len1, err, sizeof(err)) != 0) {
        fprintf(stderr, "dump does not reload: %s\n%s\n", err, d1);
        abort();
    }
    char *d2 = dump(&again, &len2);
    if (len1 != len2 || memcmp(d1, d2, len1) != 0) {
        fprintf(stderr, "dump changed on reload:\n%s\n---\n%s\n", d1, d2);
        abort();
    }
    free(d1);
    free(d2);
    pgp_config_free(&again);
}

/* cfg finished: its dump reloads, finishes, and dumps the same. */
static void check_refinish(const pgp_config_t *cfg)
{
    char err[512];
    size_t len1, len2;
    char *d1 = dump(cfg, &len1);
    pgp_config_t again;
    pgp_config_init(&again);
    if (pgp_config_load_buffer(&again, "dump", d1, len1, err, sizeof(err)) != 0 ||
        pgp_config_finish(&again, err, sizeof(err)) != 0) {
        fprintf(stderr, "finished dump does not finish again: %s\n%s\n", err, d1);
        abort();
    }
    char *d2 = dump(&again, &len2);
    if (len1 != len2 || memcmp(d1, d2, len1) != 0) {
        fprintf(stderr, "finished dump changed on reload:\n%s\n---\n%s\n", d1, d2);
        abort();
    }
    free(d1);
    free(d2);
    pgp_config_free(&again);
}

static void fuzz_text(const char *s)
{
    char err[512], buf[320];
    pgp_endpoint_t ep;
    if (pgp_endpoint_parse(s, 5432, &ep, err, sizeof(err)) == 0) {
        pgp_endpoint_format(&ep, buf, sizeof(buf));
        if (ep.is_unix && pgp_endpoint_socket_path(&ep, buf, sizeof(buf)) != 0)
            abort();   /* a parsed unix endpoint always has a usable socket path */
    }
    pgp_config_t cfg;
    pgp_config_init(&cfg);
    if (pgp_config_set(&cfg, "proxy.upstream", s, "--upstream", err, sizeof(err)) == 0) {
        if (pgp_config_finish(&cfg, err, sizeof(err)) == 0) {
            check_roundtrip(&cfg);
            check_refinish(&cfg);
        }
    }
    (void)pgp_config_set(&cfg, "proxy.max_client_connections", s, NULL, err, sizeof(err));
    (void)pgp_config_set(&cfg, s, "1", NULL, err, sizeof(err));
    pgp_config_free(&cfg);
    for (int t = PGP_TOML_STRING; t <= PGP_TOML_ARRAY; t++) {
        pgp_toml_value_t v;
        if (pgp_toml_parse_text((pgp_toml_type_t)t, s, &v, err, sizeof(err)) == 0)
            pgp_toml_value_free(&v);
    }
}

/* Lines of s (modified in place) as an environ-style array. */
static void fuzz_env(char *s)
{
    char *envp[17];
    size_t n = 0;
    char err[512];
    for (char *p = s; n < 16 && p != NULL && *p != '\0';) {
        envp[n++] = p;
        p = strchr(p, '\n');
        if (p != NULL)
            *p++ = '\0';
    }
    envp[n] = NULL;
    pgp_config_t cfg;
    pgp_config_init(&cfg);
    if (pgp_config_apply_env(&cfg, envp, err, sizeof(err)) == 0)
        check_roundtrip(&cfg);
    pgp_config_free(&cfg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    pgp_config_t cfg;
    pgp_config_init(&cfg);
    int loaded = pgp_config_load_buffer(&cfg, "fuzz.toml", (const char *)data, size, err,
                                        sizeof(err));
    if (loaded == 0) {
        check_roundtrip(&cfg);
        if (pgp_config_finish(&cfg, err, sizeof(err)) == 0)
            check_refinish(&cfg);
        else if (memchr(err, '\n', strlen(err)) != NULL)
            abort();
    } else if (memchr(err, '\n', strlen(err)) != NULL)
        abort();   /* messages are one line */
    pgp_config_free(&cfg);

    if (size > 4096)
        return 0;
    char *s = malloc(size + 1);
    if (s == NULL)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    fuzz_text(s);
    fuzz_env(s);
    free(s);
    return 0;
}
