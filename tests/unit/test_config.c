/*
 * test_config.c - unit tests for config.c (key table, file, environment,
 * flags, validation, dump) and toml.c (the generic parser underneath).
 *
 * Mostly case tables run with tcase_add_loop_test: good TOML snippets with
 * the values they must produce, bad snippets with the message (line number
 * and did-you-mean included) they must produce, environment arrays,
 * endpoint texts.  The shipped config.toml is loaded from $PGP_SOURCE_DIR
 * and must equal the built-in defaults key for key.
 */
#include "pgproxy/config.h"
#include "pgproxy/toml.h"

#include <check.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define ERRLEN 512

/* ---- helpers --------------------------------------------------------------- */

static void assert_ep_eq(const pgp_endpoint_t *a, const pgp_endpoint_t *b)
{
    ck_assert_str_eq(a->host, b->host);
    ck_assert_uint_eq(a->port, b->port);
    ck_assert_int_eq(a->is_unix, b->is_unix);
    ck_assert_int_eq(a->is_socket_file, b->is_socket_file);
}

/* Every key, compared one by one (extend with each new key). */
static void assert_cfg_eq(const pgp_config_t *a, const pgp_config_t *b)
{
    ck_assert_str_eq(a->proxy.listen, b->proxy.listen);
    ck_assert_str_eq(a->proxy.upstream, b->proxy.upstream);
    assert_ep_eq(&a->proxy.listen_ep, &b->proxy.listen_ep);
    assert_ep_eq(&a->proxy.upstream_ep, &b->proxy.upstream_ep);
    ck_assert_int_eq(a->proxy.max_client_connections, b->proxy.max_client_connections);
    ck_assert_int_eq(a->proxy.connect_timeout_ms, b->proxy.connect_timeout_ms);
    ck_assert_int_eq(a->proxy.shutdown_timeout_ms, b->proxy.shutdown_timeout_ms);
    ck_assert_int_eq(a->proxy.max_message_bytes, b->proxy.max_message_bytes);
    ck_assert_str_eq(a->proxy.upstream_tls, b->proxy.upstream_tls);
    ck_assert_str_eq(a->proxy.upstream_tls_ca_file, b->proxy.upstream_tls_ca_file);
    ck_assert_str_eq(a->proxy.upstream_tls_cert_file, b->proxy.upstream_tls_cert_file);
    ck_assert_str_eq(a->proxy.upstream_tls_key_file, b->proxy.upstream_tls_key_file);
    ck_assert_str_eq(a->proxy.client_tls, b->proxy.client_tls);
    ck_assert_str_eq(a->proxy.client_tls_cert_file, b->proxy.client_tls_cert_file);
    ck_assert_str_eq(a->proxy.client_tls_key_file, b->proxy.client_tls_key_file);
    ck_assert_str_eq(a->proxy.unix_socket_mode, b->proxy.unix_socket_mode);
    ck_assert_int_eq(a->proxy.unix_socket_mode_bits, b->proxy.unix_socket_mode_bits);
    ck_assert_int_eq(a->profiling.enabled, b->profiling.enabled);
    ck_assert_int_eq(a->profiling.max_sql_bytes, b->profiling.max_sql_bytes);
    ck_assert_str_eq(a->profiling.preset, b->profiling.preset);
    ck_assert_double_eq(a->profiling.slow_query_threshold_ms, b->profiling.slow_query_threshold_ms);
    ck_assert_int_eq(a->profiling.n_plus_one_threshold, b->profiling.n_plus_one_threshold);
    ck_assert_int_eq(a->profiling.max_history, b->profiling.max_history);
    ck_assert_int_eq(a->profiling.request_gap_ms, b->profiling.request_gap_ms);
    ck_assert_str_eq(a->profiling.params, b->profiling.params);
    ck_assert_int_eq(a->profiling.notify_client, b->profiling.notify_client);
    ck_assert_uint_eq(a->profiling.n_plus_one_ignore.count, b->profiling.n_plus_one_ignore.count);
    for (size_t i = 0; i < a->profiling.n_plus_one_ignore.count; i++)
        ck_assert_str_eq(a->profiling.n_plus_one_ignore.items[i],
                         b->profiling.n_plus_one_ignore.items[i]);
    ck_assert_str_eq(a->slow_log.sink, b->slow_log.sink);
    ck_assert_str_eq(a->slow_log.sqlite_path, b->slow_log.sqlite_path);
    ck_assert_str_eq(a->slow_log.dsn, b->slow_log.dsn);
    ck_assert_int_eq(a->slow_log.queue_size, b->slow_log.queue_size);
    ck_assert_int_eq(a->slow_log.retention_rows, b->slow_log.retention_rows);
    ck_assert_str_eq(a->admin.dashboard_path, b->admin.dashboard_path);
    ck_assert_uint_eq(a->admin.console_users.count, b->admin.console_users.count);
    for (size_t i = 0; i < a->admin.console_users.count; i++)
        ck_assert_str_eq(a->admin.console_users.items[i], b->admin.console_users.items[i]);
    ck_assert_str_eq(a->admin.listen, b->admin.listen);
    assert_ep_eq(&a->admin.listen_ep, &b->admin.listen_ep);
    ck_assert_int_eq(a->admin.enabled, b->admin.enabled);
    ck_assert_str_eq(a->admin.token, b->admin.token);
    ck_assert_str_eq(a->log.level, b->log.level);
    ck_assert_str_eq(a->log.format, b->log.format);
}

/* A non-default value for every key, in table order; used to prove a source sets them all. */
static const struct { const char *key, *value; } every_key_changed[] = {
    { "proxy.listen", "127.0.0.2:1111" },
    { "proxy.upstream", "127.0.0.3:2222" },
    { "proxy.max_client_connections", "7" },
    { "proxy.connect_timeout_ms", "8" },
    { "proxy.shutdown_timeout_ms", "9" },
    { "proxy.max_message_bytes", "4096" },
    { "proxy.upstream_tls", "verify-ca" },
    { "proxy.upstream_tls_ca_file", "/etc/pgproxy/ca.pem" },
    { "proxy.upstream_tls_cert_file", "/etc/pgproxy/client.crt" },
    { "proxy.upstream_tls_key_file", "/etc/pgproxy/client.key" },
    { "proxy.client_tls", "require" },
    { "proxy.client_tls_cert_file", "/etc/pgproxy/server.crt" },
    { "proxy.client_tls_key_file", "/etc/pgproxy/server.key" },
    { "proxy.unix_socket_mode", "0600" },
    { "profiling.enabled", "false" },
    { "profiling.max_sql_bytes", "100" },
    { "profiling.preset", "production" },
    { "profiling.slow_query_threshold_ms", "12.5" },
    { "profiling.n_plus_one_threshold", "4" },
    { "profiling.max_history", "5" },
    { "profiling.request_gap_ms", "6" },
    { "profiling.params", "types" },
    { "profiling.notify_client", "true" },
    { "profiling.n_plus_one_ignore", "0123456789abcdef" },
    { "slow_log.sink", "postgres" },
    { "slow_log.sqlite_path", "/tmp/x.db" },
    { "slow_log.dsn", "host=db user=slow" },
    { "slow_log.queue_size", "77" },
    { "slow_log.retention_rows", "88" },
    { "admin.listen", "127.0.0.4:3333" },
    { "admin.token", "s3cret" },
    { "admin.dashboard_path", "/perf" },
    { "admin.console_users", "ops, dba" },
    { "log.level", "error" },
    { "log.format", "json" },
};
#define EVERY_KEY_COUNT (sizeof(every_key_changed) / sizeof(every_key_changed[0]))

/* Keys whose default follows profiling.preset, or the proxy.upstream URL: the
 * shipped config.toml leaves them commented out. */
static bool is_derived_key(const char *key)
{
    return strcmp(key, "profiling.slow_query_threshold_ms") == 0 ||
           strcmp(key, "profiling.n_plus_one_threshold") == 0 ||
           strcmp(key, "profiling.params") == 0 || strcmp(key, "admin.dashboard_path") == 0 ||
           strncmp(key, "proxy.upstream_tls", 18) == 0;
}

static void set_every_key_but_derived(pgp_config_t *cfg)
{
    char err[ERRLEN];
    for (size_t i = 0; i < EVERY_KEY_COUNT; i++) {
        if (is_derived_key(every_key_changed[i].key))
            continue;
        ck_assert_msg(pgp_config_set(cfg, every_key_changed[i].key, every_key_changed[i].value,
                                     NULL, err, sizeof(err)) == 0, "%s", err);
    }
}

static void set_every_key(pgp_config_t *cfg)
{
    char err[ERRLEN];
    for (size_t i = 0; i < EVERY_KEY_COUNT; i++)
        ck_assert_msg(pgp_config_set(cfg, every_key_changed[i].key, every_key_changed[i].value,
                                     NULL, err, sizeof(err)) == 0, "%s", err);
}

static char *dump_to_string(const pgp_config_t *cfg, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    ck_assert_ptr_nonnull(f);
    pgp_config_dump(cfg, f);
    ck_assert_int_eq(fclose(f), 0);
    if (len != NULL)
        *len = n;
    return buf;
}

static char *source_file(const char *rel)
{
    const char *dir = getenv("PGP_SOURCE_DIR");
    char *path = NULL;
    ck_assert_msg(dir != NULL, "PGP_SOURCE_DIR is not set");
    ck_assert_int_ge(asprintf(&path, "%s/%s", dir, rel), 0);
    return path;
}

/* ---- defaults and the shipped file --------------------------------------- */

START_TEST(test_defaults)
{
    pgp_config_t cfg;
    char err[ERRLEN];
    pgp_config_init(&cfg);
    ck_assert_ptr_null(cfg.source_path);
    ck_assert_str_eq(cfg.proxy.listen, "127.0.0.1:6433");
    ck_assert_str_eq(cfg.proxy.upstream, "127.0.0.1:5432");
    ck_assert_int_eq(cfg.proxy.max_client_connections, 1000);
    ck_assert_int_eq(cfg.proxy.connect_timeout_ms, 5000);
    ck_assert_int_eq(cfg.proxy.shutdown_timeout_ms, 30000);
    ck_assert_int_eq(cfg.proxy.max_message_bytes, 1073741824);
    ck_assert_str_eq(cfg.proxy.upstream_tls, "disable");
    ck_assert_str_eq(cfg.proxy.upstream_tls_ca_file, "");
    ck_assert_str_eq(cfg.proxy.upstream_tls_cert_file, "");
    ck_assert_str_eq(cfg.proxy.upstream_tls_key_file, "");
    ck_assert_str_eq(cfg.proxy.client_tls, "disable");
    ck_assert_str_eq(cfg.proxy.client_tls_cert_file, "");
    ck_assert_str_eq(cfg.proxy.client_tls_key_file, "");
    ck_assert_str_eq(cfg.proxy.unix_socket_mode, "0770");
    ck_assert_int_eq(cfg.proxy.unix_socket_mode_bits, 0770);
    ck_assert_str_eq(cfg.log.level, "info");
    ck_assert_str_eq(cfg.log.format, "text");
    ck_assert(cfg.profiling.enabled);
    ck_assert_int_eq(cfg.profiling.max_sql_bytes, 16384);
    ck_assert_str_eq(cfg.profiling.preset, "development");
    ck_assert_double_eq(cfg.profiling.slow_query_threshold_ms, 50);
    ck_assert_int_eq(cfg.profiling.n_plus_one_threshold, 3);
    ck_assert_int_eq(cfg.profiling.max_history, 1000);
    ck_assert_int_eq(cfg.profiling.request_gap_ms, 250);
    ck_assert_str_eq(cfg.profiling.params, "values");
    ck_assert(!cfg.profiling.notify_client);
    ck_assert_uint_eq(cfg.profiling.n_plus_one_ignore.count, 0);
    ck_assert_str_eq(cfg.slow_log.sink, "sqlite");
    ck_assert_str_eq(cfg.slow_log.sqlite_path, "pgproxy.db");
    ck_assert_str_eq(cfg.slow_log.dsn, "");
    ck_assert_int_eq(cfg.slow_log.queue_size, 10000);
    ck_assert_int_eq(cfg.slow_log.retention_rows, 1000000);
    ck_assert_str_eq(cfg.admin.dashboard_path, "/debug/performance");
    ck_assert_uint_eq(cfg.admin.console_users.count, 0);
    ck_assert_str_eq(cfg.admin.listen, "127.0.0.1:9433");
    ck_assert_str_eq(cfg.admin.token, "");
    ck_assert(cfg.admin.enabled);
    ck_assert_str_eq(cfg.admin.listen_ep.host, "127.0.0.1");
    ck_assert_uint_eq(cfg.admin.listen_ep.port, 9433);
    /* init already parses the endpoints; finish agrees. */
    ck_assert_str_eq(cfg.proxy.listen_ep.host, "127.0.0.1");
    ck_assert_uint_eq(cfg.proxy.listen_ep.port, 6433);
    ck_assert_uint_eq(cfg.proxy.upstream_ep.port, 5432);
    ck_assert_msg(pgp_config_finish(&cfg, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(cfg.proxy.upstream_ep.host, "127.0.0.1");
    ck_assert(!cfg.proxy.upstream_ep.is_unix);
    ck_assert_str_eq(cfg.proxy.upstream_tls, "disable");
    ck_assert_int_eq(cfg.proxy.unix_socket_mode_bits, 504);
    pgp_config_free(&cfg);
    pgp_config_free(&cfg);   /* idempotent */
}
END_TEST

START_TEST(test_shipped_config_toml)
{
    pgp_config_t def, cfg;
    char err[ERRLEN];
    char *path = source_file("config.toml");
    pgp_config_init(&def);
    ck_assert_int_eq(pgp_config_finish(&def, err, sizeof(err)), 0);
    /* Start from non-defaults everywhere: the file must set every key back
     * (but the preset-driven ones, which it leaves commented out so that
     * profiling.preset keeps its meaning, and the upstream TLS keys, so that
     * a proxy.upstream URL can set them). */
    pgp_config_init(&cfg);
    set_every_key_but_derived(&cfg);
    ck_assert_msg(pgp_config_load_file(&cfg, path, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(pgp_config_finish(&cfg, err, sizeof(err)) == 0, "%s", err);
    assert_cfg_eq(&cfg, &def);
    ck_assert_str_eq(cfg.source_path, path);
    pgp_config_free(&cfg);

    /* The container case: the shipped file, then the upstream URL with its TLS settings. */
    char *const env[] = { "PGPROXY_UPSTREAM=postgres://db:5432/app?sslmode=verify-full"
                          "&sslrootcert=system", NULL };
    pgp_config_init(&cfg);
    ck_assert_msg(pgp_config_load_file(&cfg, path, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(pgp_config_apply_env(&cfg, env, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(pgp_config_finish(&cfg, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(cfg.proxy.upstream_tls, "verify-full");
    ck_assert_str_eq(cfg.proxy.upstream_tls_ca_file, "system");
    pgp_config_free(&cfg);
    pgp_config_free(&def);
    free(path);
}
END_TEST

/* profiling.preset fills only what no source set, whatever the order of sources. */
START_TEST(test_preset)
{
    pgp_config_t cfg;
    char err[ERRLEN];
    pgp_config_init(&cfg);
    ck_assert_int_eq(pgp_config_set(&cfg, "profiling.preset", "production", NULL, err,
                                    sizeof(err)), 0);
    ck_assert_msg(pgp_config_finish(&cfg, err, sizeof(err)) == 0, "%s", err);
    ck_assert_double_eq(cfg.profiling.slow_query_threshold_ms, 200);
    ck_assert_int_eq(cfg.profiling.n_plus_one_threshold, 10);
    ck_assert_str_eq(cfg.profiling.params, "off");
    ck_assert_str_eq(cfg.admin.dashboard_path, "");
    pgp_config_free(&cfg);

    /* An explicit value wins over the preset, in the file or the environment. */
    pgp_config_init(&cfg);
    const char *text = "[profiling]\nslow_query_threshold_ms = 5\npreset = \"production\"\n";
    ck_assert_msg(pgp_config_load_buffer(&cfg, "t.toml", text, strlen(text), err,
                                         sizeof(err)) == 0, "%s", err);
    char *envp[] = { "PGPROXY_ADMIN_DASHBOARD_PATH=/perf", NULL };
    ck_assert_msg(pgp_config_apply_env(&cfg, envp, err, sizeof(err)) == 0, "%s", err);
    ck_assert_msg(pgp_config_finish(&cfg, err, sizeof(err)) == 0, "%s", err);
    ck_assert_double_eq(cfg.profiling.slow_query_threshold_ms, 5);
    ck_assert_int_eq(cfg.profiling.n_plus_one_threshold, 10);
    ck_assert_str_eq(cfg.admin.dashboard_path, "/perf");
    pgp_config_free(&cfg);

    /* Cross-key checks. */
    static const struct { const char *key, *value, *msg; } bad[] = {
        { "slow_log.sink", "postgres", "slow_log.dsn: empty" },
        { "profiling.n_plus_one_ignore", "0123", "not a fingerprint" },
        { "profiling.n_plus_one_ignore", "0123456789abcdefg", "not a fingerprint" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        pgp_config_init(&cfg);
        ck_assert_int_eq(pgp_config_set(&cfg, bad[i].key, bad[i].value, NULL, err,
                                        sizeof(err)), 0);
        ck_assert_int_eq(pgp_config_finish(&cfg, err, sizeof(err)), -1);
        ck_assert_msg(strstr(err, bad[i].msg) != NULL, "%s", err);
        pgp_config_free(&cfg);
    }
    pgp_config_init(&cfg);
    ck_assert_int_eq(pgp_config_set(&cfg, "admin.dashboard_path", "/x/", NULL, err,
                                    sizeof(err)), -1);
    ck_assert_int_eq(pgp_config_set(&cfg, "admin.dashboard_path", "x", NULL, err,
                                    sizeof(err)), -1);
    ck_assert_int_eq(pgp_config_set(&cfg, "admin.dashboard_path", "", NULL, err,
                                    sizeof(err)), 0);
    pgp_config_free(&cfg);
}
END_TEST

/* The test's key list must cover the table: a new key forces updating this file. */
START_TEST(test_every_key_listed)
{
    pgp_config_t cfg;
    size_t assignments = 0;
    pgp_config_init(&cfg);
    char *text = dump_to_string(&cfg, NULL);
    for (char *p = text; (p = strstr(p, " = ")) != NULL; p += 3)
        assignments++;
    ck_assert_uint_eq(assignments, EVERY_KEY_COUNT);
    free(text);
    pgp_config_free(&cfg);
}
END_TEST

/* ---- good snippets ----------------------------------------------------------- */

static const struct good_case {
    const char *toml;
    const char *kv[4][2];   /* expected: these keys set (as if by pgp_config_set), rest default */
} good_cases[] = {
    { "", { { NULL } } },
    { "# only a comment\n\n   \t\n# another\n", { { NULL } } },
    { "[proxy]\nlisten = \"0.0.0.0:7000\"\n", { { "proxy.listen", "0.0.0.0:7000" } } },
    { "[proxy]\r\nlisten = '0.0.0.0:7000'\r\n", { { "proxy.listen", "0.0.0.0:7000" } } },
    { "\xEF\xBB\xBF[log]\nlevel = \"debug\"", { { "log.level", "debug" } } },
    { "  [ proxy ]  # header comment\n  listen=\"[::1]:7000\"# no space\n",
      { { "proxy.listen", "[::1]:7000" } } },
    { "[proxy]\nlisten = \"\\u0030.0.0.0:7\\u0030\\u00300\"\n", { { "proxy.listen", "0.0.0.0:7000" } } },
    { "[proxy]\nmax_client_connections = 1_000_0\nconnect_timeout_ms = +250\n"
      "shutdown_timeout_ms = 0\nmax_message_bytes = 0x10_00\n",
      { { "proxy.max_client_connections", "10000" }, { "proxy.connect_timeout_ms", "250" },
        { "proxy.shutdown_timeout_ms", "0" }, { "proxy.max_message_bytes", "4096" } } },
    { "[proxy]\nshutdown_timeout_ms = 86400000\nmax_message_bytes = 1024\n",
      { { "proxy.shutdown_timeout_ms", "86400000" }, { "proxy.max_message_bytes", "1024" } } },
    { "proxy.listen = \"127.0.0.1:1\"\nlog . level = \"warn\"\n",
      { { "proxy.listen", "127.0.0.1:1" }, { "log.level", "warn" } } },
    { "[\"proxy\"]\n\"listen\" = \"h:1\"\n'upstream' = \"h:2\"\n",
      { { "proxy.listen", "h:1" }, { "proxy.upstream", "h:2" } } },
    { "[log]\nformat = \"json\"\n[proxy]\nupstream = \"/var/run/postgresql\"\n",
      { { "log.format", "json" }, { "proxy.upstream", "/var/run/postgresql" } } },
    { "[proxy]\nupstream = \"postgres://app:s3cr%40t@db.example.com:6543/app?sslmode=require\"\n",
      { { "proxy.upstream", "postgres://app:s3cr%40t@db.example.com:6543/app?sslmode=require" } } },
    { "[proxy]\nlisten = \"unix:/tmp/pgproxy.sock\"\n", { { "proxy.listen", "unix:/tmp/pgproxy.sock" } } },
    { "[proxy]\n\n\n[log]\n", { { NULL } } },
};

START_TEST(test_good_snippets)
{
    const struct good_case *c = &good_cases[_i];
    pgp_config_t got, want;
    char err[ERRLEN];
    pgp_config_init(&got);
    pgp_config_init(&want);
    ck_assert_msg(pgp_config_load_buffer(&got, "t.toml", c->toml, strlen(c->toml), err,
                                         sizeof(err)) == 0, "case %d: %s", _i, err);
    for (int k = 0; k < 4 && c->kv[k][0] != NULL; k++)
        ck_assert_msg(pgp_config_set(&want, c->kv[k][0], c->kv[k][1], NULL, err, sizeof(err)) == 0,
                      "%s", err);
    ck_assert_msg(pgp_config_finish(&got, err, sizeof(err)) == 0, "case %d: %s", _i, err);
    ck_assert_int_eq(pgp_config_finish(&want, err, sizeof(err)), 0);
    assert_cfg_eq(&got, &want);
    ck_assert_ptr_null(got.source_path);
    pgp_config_free(&got);
    pgp_config_free(&want);
}
END_TEST

/* ---- bad snippets ------------------------------------------------------------ */

static const struct bad_case {
    const char *toml;
    size_t len;           /* 0 = strlen */
    const char *expect;   /* substring of the message */
} bad_cases[] = {
    { "[proxy]\nlistn = \"x:1\"\n", 0,
      "t.toml:2: unknown key \"listn\" in [proxy] (did you mean \"listen\"?)" },
    { "[proxy]\nMAX_CLIENT_CONNECTION = 5\n", 0,
      "t.toml:2: unknown key \"MAX_CLIENT_CONNECTION\" in [proxy] (did you mean \"max_client_connections\"?)" },
    { "[proxy]\nzzz = 1\n", 0, "t.toml:2: unknown key \"zzz\" in [proxy]" },
    { "# c\n[proxi]\n", 0, "t.toml:2: unknown section [proxi] (did you mean [proxy]?)" },
    { "\n\n[profiling]\nslow_query_treshold_ms = 5\n", 0,
      "t.toml:4: unknown key \"slow_query_treshold_ms\" in [profiling]" },
    { "\n\n[profilng]\nenabled = true\n", 0, "t.toml:3: unknown section [profilng] (did you mean [profiling]?)" },
    { "[profiling]\nenabled = 1\n", 0, "t.toml:2: profiling.enabled: expected a boolean, got an integer" },
    { "[profiling]\nmax_sql_bytes = 10\n", 0, "t.toml:2: profiling.max_sql_bytes" },
    { "[proxy.tls]\n", 0, "t.toml:1: unknown section [proxy.tls]" },
    { "nosuch.enabled = true\n", 0, "t.toml:1: unknown section [nosuch] in key \"nosuch.enabled\"" },
    { "listen = \"x:1\"\n", 0, "t.toml:1: unknown key \"listen\" at top level (did you mean \"proxy.listen\"?)" },
    { "[log]\nupstream = \"x:1\"\n", 0,
      "t.toml:2: unknown key \"upstream\" in [log] (did you mean \"proxy.upstream\"?)" },
    { "[proxy]\nlisten.x = \"a\"\n", 0, "t.toml:2: unknown key \"listen.x\" in [proxy]" },
    { "[proxy]\nlisten = \"a:1\"\n\nlisten = \"b:2\"\n", 0,
      "t.toml:4: duplicate key \"listen\" in [proxy] (first set on line 2)" },
    { "[proxy]\nlisten = \"a:1\"\n[log]\n[proxy]\n", 0, "t.toml:4: duplicate section [proxy] (first on line 1)" },
    { "proxy.listen = \"a:1\"\n[proxy]\nlisten = \"b:1\"\n", 0,
      "t.toml:3: duplicate key \"listen\" in [proxy] (first set on line 1)" },
    { "[proxy]\nlisten = 1\n", 0, "t.toml:2: proxy.listen: expected a string, got an integer" },
    { "[proxy]\n\n\nmax_client_connections = \"10\"\n", 0,
      "t.toml:4: proxy.max_client_connections: expected an integer, got a string" },
    { "[proxy]\nmax_client_connections = 1.5\n", 0, "expected an integer, got a float" },
    { "[proxy]\nmax_client_connections = true\n", 0, "expected an integer, got a boolean" },
    { "[proxy]\nlisten = [\"a:1\"]\n", 0, "t.toml:2: proxy.listen: expected a string, got an array" },
    { "[proxy]\nmax_client_connections = 0\n", 0,
      "t.toml:2: proxy.max_client_connections: 0 is out of range (1..1000000)" },
    { "[proxy]\nmax_client_connections = 1000001\n", 0, "1000001 is out of range (1..1000000)" },
    { "[proxy]\nshutdown_timeout_ms = -1\n", 0, "proxy.shutdown_timeout_ms: -1 is out of range (0..86400000)" },
    { "[proxy]\nmax_message_bytes = 1073741825\n", 0, "out of range (1024..1073741824)" },
    { "[proxy]\nmax_client_connections = 9223372036854775808\n", 0,
      "t.toml:2: integer \"9223372036854775808\" does not fit in 64 bits" },
    { "[proxy]\nmax_client_connections = -9_223_372_036_854_775_809\n", 0, "does not fit in 64 bits" },
    { "[proxy]\nmax_client_connections = 0x8000000000000000\n", 0, "does not fit in 64 bits" },
    { "[proxy]\nmax_client_connections = 0100\n", 0, "t.toml:2: leading zeros are not allowed" },
    { "[proxy]\nmax_client_connections = 1__0\n", 0, "invalid value \"1__0\"" },
    { "[proxy]\nmax_client_connections = 10_\n", 0, "invalid value \"10_\"" },
    { "[log]\nlevel = \"verbose\"\n", 0,
      "t.toml:2: log.level: \"verbose\" is not one of debug, info, warn, error" },
    { "[log]\nlevel = \"warning\"\n", 0, "is not one of debug, info, warn, error (did you mean \"warn\"?)" },
    { "[log]\nformat = \"JSON\"\n", 0, "log.format: \"JSON\" is not one of text, json (did you mean \"json\"?)" },
    { "[proxy]\nupstream = \"x:99999\"\n", 0, "t.toml:2: proxy.upstream: invalid port in \"x:99999\"" },
    { "[proxy]\nlisten = \"\"\n", 0, "t.toml:2: proxy.listen: empty endpoint" },
    { "[proxy]\nlisten = \"a:1\" x\n", 0, "t.toml:2: unexpected 'x' after value" },
    { "[proxy]\nlisten = \"a:1\" \"b\"\n", 0, "t.toml:2: unexpected '\"' after value" },
    { "[proxy] x\n", 0, "t.toml:1: unexpected 'x' after table header" },
    { "[proxy]\nmax_client_connections = 1 2\n", 0, "t.toml:2: unexpected '2' after value" },
    { "[proxy]\nlisten = \"abc\n", 0, "t.toml:2: unterminated string" },
    { "[proxy]\nlisten = \"abc\r\n", 0, "t.toml:2: unterminated string" },
    { "[proxy]\nlisten = \"abc\\\"\n", 0, "t.toml:2: unterminated string" },
    { "[proxy]\nlisten = 'abc\n", 0, "t.toml:2: unterminated string" },
    { "[proxy]\nlisten = \"abc", 0, "t.toml:2: unterminated string" },
    { "[proxy]\nlisten = \"a\\qb\"\n", 0, "t.toml:2: invalid escape \\q" },
    { "[proxy]\nlisten = \"a\\u00\"\n", 0, "\\u escape needs 4 hex digits" },
    { "[proxy]\nlisten = \"a\\u0000\"\n", 0, "t.toml:2: NUL (\\u0000) is not allowed" },
    { "[proxy]\nlisten = \"a\\uD800\"\n", 0, "not a Unicode scalar value" },
    { "[proxy]\nlisten = \"a\\U00110000\"\n", 0, "not a Unicode scalar value" },
    { "[proxy]\nlisten = \"a\tb\x01\"\n", 0, "t.toml:2: control character 0x01 in string" },
    { "[proxy]\n# bell \x07\n", 0, "t.toml:2: control character 0x07 in comment" },
    { "[proxy]\nlisten = \"a\xff\"\n", 0, "t.toml:2: invalid UTF-8" },
    { "[proxy]\nlisten = \"\xc0\xaf\"\n", 0, "t.toml:2: invalid UTF-8" },
    { "[proxy]\n\nlisten = \"a\0b\"\n", 22, "t.toml:3: NUL byte in input" },
    { "\0", 1, "t.toml:1: NUL byte in input" },
    { "[proxy]\nlisten =\n", 0, "t.toml:2: missing value" },
    { "[proxy]\nlisten = # nothing\n", 0, "t.toml:2: missing value" },
    { "[proxy]\nlisten = localhost:5432\n", 0,
      "t.toml:2: invalid value \"localhost:5432\" (strings must be quoted)" },
    { "[proxy]\nlisten = 127.0.0.1:5432\n", 0, "(strings must be quoted)" },
    { "[proxy]\nlisten \"x\"\n", 0, "t.toml:2: expected '=' after the key, got '\"'" },
    { "[proxy]\n= \"x\"\n", 0, "t.toml:2: expected a key, got '='" },
    { "[proxy\nlisten = \"x\"\n", 0, "t.toml:1: expected ']' to close the table header, got end of line" },
    { "[]\n", 0, "t.toml:1: expected a key, got ']'" },
    { "[[proxy]]\n", 0, "t.toml:1: arrays of tables ([[...]]) are not supported" },
    { "[proxy]\nlisten = { a = 1 }\n", 0, "t.toml:2: inline tables are not supported" },
    { "[proxy]\nlisten = \"\"\"x\"\"\"\n", 0, "t.toml:2: multi-line strings (\"\"\") are not supported" },
    { "[proxy]\nlisten = '''x'''\n", 0, "multi-line strings (''') are not supported" },
    { "[proxy]\nlisten = 1979-05-27\n", 0, "t.toml:2: dates and times are not supported" },
    { "[proxy]\nlisten = [\"a\",\n  \"b\"\n", 0, "t.toml:4: unterminated array" },
    { "[proxy]\nlisten = [\"a\"\n \"b\"]\n", 0, "t.toml:3: expected ',' or ']' in array, got '\"'" },
    { "[proxy]\nlisten = [[\"a\"]]\n", 0, "t.toml:2: nested arrays are not supported" },
    { "[proxy]\nlisten = [,]\n", 0, "t.toml:2: expected a value, got ','" },
    { "a.b.c.d.e.f.g.h.i = 1\n", 0, "t.toml:1: key has more than 8 dotted parts" },
    { "[proxy]\nlisten = \"a:1\"\r\r\n", 0, "t.toml:2: unexpected byte 0x0d after value" },
    { "\"a\nb\" = 1\n", 0, "t.toml:1: unterminated string" },
    { "[\"pro\\txy\"]\n", 0, "t.toml:1: unknown section [\"pro\\x09xy\"]" },
};

START_TEST(test_bad_snippets)
{
    const struct bad_case *c = &bad_cases[_i];
    pgp_config_t cfg;
    char err[ERRLEN];
    size_t len = c->len != 0 ? c->len : strlen(c->toml);
    pgp_config_init(&cfg);
    memset(err, 'x', sizeof(err));
    ck_assert_msg(pgp_config_load_buffer(&cfg, "t.toml", c->toml, len, err, sizeof(err)) == -1,
                  "case %d loaded", _i);
    ck_assert_msg(strstr(err, c->expect) != NULL, "case %d: got [%s], want [%s]", _i, err,
                  c->expect);
    ck_assert_ptr_null(strchr(err, '\n'));
    /* All or nothing: the config is untouched. */
    pgp_config_t def;
    pgp_config_init(&def);
    assert_cfg_eq(&cfg, &def);
    pgp_config_free(&def);
    pgp_config_free(&cfg);
}
END_TEST

/* An expected message that ends the suggestion-free case: no "(did you mean". */
START_TEST(test_no_far_suggestion)
{
    pgp_config_t cfg;
    char err[ERRLEN];
    pgp_config_init(&cfg);
    ck_assert_int_eq(pgp_config_load_buffer(&cfg, "t", "[proxy]\nzzzzzzzz = 1\n", 21, err,
                                            sizeof(err)), -1);
    ck_assert_ptr_null(strstr(err, "did you mean"));
    pgp_config_free(&cfg);
}
END_TEST

START_TEST(test_long_lines)
{
    pgp_config_t cfg;
    char err[ERRLEN];
    size_t n = PGP_TOML_MAX_LINE_BYTES + 64;
    char *buf = malloc(n + 1);
    pgp_config_init(&cfg);
    /* A comment line of exactly the limit is fine. */
    memset(buf, ' ', n);
    buf[0] = '#';
    buf[PGP_TOML_MAX_LINE_BYTES] = '\n';
    memcpy(buf + PGP_TOML_MAX_LINE_BYTES + 1, "[proxy]\n", 8);
    ck_assert_msg(pgp_config_load_buffer(&cfg, "t", buf, PGP_TOML_MAX_LINE_BYTES + 9, err,
                                         sizeof(err)) == 0, "%s", err);
    /* One byte more is not, and the line is named. */
    memset(buf, ' ', n);
    memcpy(buf, "[proxy]\n#", 9);
    buf[8 + PGP_TOML_MAX_LINE_BYTES + 1] = '\n';
    ck_assert_int_eq(pgp_config_load_buffer(&cfg, "t", buf, n, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "t:2: line longer than 65536 bytes");
    /* Same without a final newline. */
    ck_assert_int_eq(pgp_config_load_buffer(&cfg, "t", buf, 8 + PGP_TOML_MAX_LINE_BYTES + 1, err,
                                            sizeof(err)), -1);
    ck_assert_str_eq(err, "t:2: line longer than 65536 bytes");
    free(buf);
    pgp_config_free(&cfg);
}
END_TEST

START_TEST(test_error_buffer_edges)
{
    pgp_config_t cfg;
    char small[8];
    pgp_config_init(&cfg);
    ck_assert_int_eq(pgp_config_load_buffer(&cfg, "t", "x", 1, NULL, 0), -1);
    ck_assert_int_eq(pgp_config_load_buffer(&cfg, "t", "x", 1, small, sizeof(small)), -1);
    ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
    ck_assert_int_eq(pgp_config_load_buffer(&cfg, "t", NULL, 0, small, sizeof(small)), 0);
    pgp_config_free(&cfg);
}
END_TEST

/* ---- files ----------------------------------------------------------------- */

START_TEST(test_load_file_errors)
{
    pgp_config_t cfg;
    char err[ERRLEN];
    char *bad = source_file("tests/unit/data/config/bad_type.toml");
    char *good = source_file("tests/unit/data/config/good.toml");
    char *want = NULL;
    pgp_config_init(&cfg);
    ck_assert_int_eq(pgp_config_load_file(&cfg, "/nonexistent/pgproxy.toml", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "/nonexistent/pgproxy.toml: No such file or directory");
    ck_assert_int_eq(pgp_config_load_file(&cfg, "/", err, sizeof(err)), -1);
    ck_assert_str_eq(err, "/: Is a directory");
    ck_assert_int_eq(pgp_config_load_file(&cfg, bad, err, sizeof(err)), -1);
    ck_assert_int_ge(asprintf(&want, "%s:9: proxy.max_client_connections: expected an integer, "
                              "got a string", bad), 0);
    ck_assert_str_eq(err, want);
    ck_assert_ptr_null(cfg.source_path);
    ck_assert_msg(pgp_config_load_file(&cfg, good, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(cfg.source_path, good);
    ck_assert_str_eq(cfg.proxy.listen, "0.0.0.0:6433");
    ck_assert_str_eq(cfg.proxy.upstream, "/var/run/postgresql");
    ck_assert_int_eq(cfg.proxy.max_client_connections, 200);
    ck_assert_str_eq(cfg.log.format, "json");
    ck_assert_int_eq(pgp_config_finish(&cfg, err, sizeof(err)), 0);
    ck_assert(cfg.proxy.upstream_ep.is_unix);
    /* A failed reload keeps the previous values and source. */
    ck_assert_int_eq(pgp_config_load_file(&cfg, bad, err, sizeof(err)), -1);
    ck_assert_str_eq(cfg.source_path, good);
    ck_assert_int_eq(cfg.proxy.max_client_connections, 200);
    free(want);
    free(bad);
    free(good);
    pgp_config_free(&cfg);
}
END_TEST

/* ---- environment ------------------------------------------------------------ */

static const struct env_case {
    const char *env[6];
    const char *expect_err;   /* NULL = success */
    const char *kv[3][2];     /* expected keys on success */
} env_cases[] = {
    { .env = { "HOME=/root", "PGPROXY_PROXY_LISTEN=0.0.0.0:7000", "PGPROXY_LOG_LEVEL=debug", NULL },
      .kv = { { "proxy.listen", "0.0.0.0:7000" }, { "log.level", "debug" } } },
    { .env = { "PGPROXY_UPSTREAM=postgres://app:pw@db.internal:5433/app?sslmode=disable", NULL },
      .kv = { { "proxy.upstream", "postgres://app:pw@db.internal:5433/app?sslmode=disable" } } },
    { .env = { "PGPROXY_PROXY_MAX_CLIENT_CONNECTIONS=1_500", "PGPROXY_PROXY_CONNECT_TIMEOUT_MS=0042", NULL },
      .kv = { { "proxy.max_client_connections", "1500" }, { "proxy.connect_timeout_ms", "42" } } },
    /* DATABASE_URL is the app's variable, possibly pointing at pgproxy itself. */
    { .env = { "DATABASE_URL=postgres://u@127.0.0.1:6433/app", "PGPROXY_CONFIG=/etc/pgproxy.toml", NULL },
      .kv = { { NULL } } },
    { .env = { "PGPROXY_LOG_LEVEL=warn", "PGPROXY_LOG_LEVEL=error", NULL }, .kv = { { "log.level", "warn" } } },
    { .env = { "PGPROXY_UPSTREAM=h:1", "PGPROXY_PROXY_UPSTREAM=h:1", NULL },
      .kv = { { "proxy.upstream", "h:1" } } },
    { .env = { "PGPROXY_UPSTREAM=h:1", "PGPROXY_PROXY_UPSTREAM=h:2", NULL },
      .expect_err = "environment PGPROXY_PROXY_UPSTREAM and PGPROXY_UPSTREAM disagree; set only one" },
    { .env = { "PGPROXY_PROXY_MAX_CLIENT_CONNECTIONS=lots", NULL },
      .expect_err = "environment PGPROXY_PROXY_MAX_CLIENT_CONNECTIONS: expected an integer, got \"lots\"" },
    { .env = { "PGPROXY_PROXY_MAX_CLIENT_CONNECTIONS=", NULL },
      .expect_err = "environment PGPROXY_PROXY_MAX_CLIENT_CONNECTIONS: expected an integer, got \"\"" },
    { .env = { "PGPROXY_PROXY_MAX_CLIENT_CONNECTIONS= 5", NULL }, .expect_err = "expected an integer, got \" 5\"" },
    { .env = { "PGPROXY_PROXY_MAX_CLIENT_CONNECTIONS=0", NULL },
      .expect_err = "environment PGPROXY_PROXY_MAX_CLIENT_CONNECTIONS: 0 is out of range (1..1000000)" },
    { .env = { "PGPROXY_PROXY_LISTN=x:1", NULL },
      .expect_err = "environment PGPROXY_PROXY_LISTN: unknown variable (did you mean PGPROXY_PROXY_LISTEN?)" },
    { .env = { "PGPROXY_LISTEN=x:1", NULL },
      .expect_err = "environment PGPROXY_LISTEN: unknown variable (did you mean PGPROXY_PROXY_LISTEN?)" },
    { .env = { "PGPROXY_WHATEVER_ELSE=1", NULL }, .expect_err = "environment PGPROXY_WHATEVER_ELSE: unknown variable" },
    { .env = { "PGPROXY_LOG_LEVEL=loud", NULL },
      .expect_err = "environment PGPROXY_LOG_LEVEL: \"loud\" is not one of debug, info, warn, error" },
    { .env = { "PGPROXY_UPSTREAM=postgres://h:0/db", NULL },
      .expect_err = "environment PGPROXY_UPSTREAM: invalid port in \"postgres://h:0/db\"" },
    { .env = { "PGPROXY_PROXY_LISTEN=a:1", "PGPROXY_LOG_FORMAT=xml", NULL }, .expect_err = "PGPROXY_LOG_FORMAT" },
};

START_TEST(test_env)
{
    const struct env_case *c = &env_cases[_i];
    pgp_config_t got, want;
    char err[ERRLEN];
    pgp_config_init(&got);
    pgp_config_init(&want);
    int rc = pgp_config_apply_env(&got, (char *const *)c->env, err, sizeof(err));
    if (c->expect_err != NULL) {
        ck_assert_int_eq(rc, -1);
        ck_assert_msg(strstr(err, c->expect_err) != NULL, "case %d: got [%s]", _i, err);
    } else {
        ck_assert_msg(rc == 0, "case %d: %s", _i, err);
        for (int k = 0; k < 3 && c->kv[k][0] != NULL; k++)
            ck_assert_int_eq(pgp_config_set(&want, c->kv[k][0], c->kv[k][1], NULL, err,
                                            sizeof(err)), 0);
    }
    /* On error nothing changed (want is still the defaults). */
    assert_cfg_eq(&got, &want);
    pgp_config_free(&got);
    pgp_config_free(&want);
}
END_TEST

START_TEST(test_env_upstream_url_endpoint)
{
    pgp_config_t cfg;
    char err[ERRLEN];
    char *const env[] = { "PGPROXY_UPSTREAM=postgresql://app:p%40ss@[2001:db8::5]:6543/app"
                          "?sslmode=verify-full&application_name=x&sslrootcert=system", NULL };
    pgp_config_init(&cfg);
    ck_assert_int_eq(pgp_config_apply_env(&cfg, env, err, sizeof(err)), 0);
    ck_assert_msg(pgp_config_finish(&cfg, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(cfg.proxy.upstream_ep.host, "2001:db8::5");
    ck_assert_uint_eq(cfg.proxy.upstream_ep.port, 6543);
    ck_assert_str_eq(cfg.proxy.upstream_tls, "verify-full");
    ck_assert_str_eq(cfg.proxy.upstream_tls_ca_file, "system");
    ck_assert_int_eq(pgp_config_apply_env(&cfg, NULL, err, sizeof(err)), 0);
    pgp_config_free(&cfg);
}
END_TEST

/* defaults < file < environment < flags */
START_TEST(test_precedence)
{
    pgp_config_t cfg;
    char err[ERRLEN];
    const char *file = "[proxy]\nlisten = \"127.0.0.1:1001\"\nupstream = \"10.0.0.1:5432\"\n"
                       "connect_timeout_ms = 111\n[log]\nlevel = \"debug\"\n";
    char *const env[] = { "PGPROXY_PROXY_LISTEN=127.0.0.1:1002", "PGPROXY_LOG_LEVEL=warn", NULL };
    pgp_config_init(&cfg);
    ck_assert_int_eq(pgp_config_load_buffer(&cfg, "f", file, strlen(file), err, sizeof(err)), 0);
    ck_assert_int_eq(pgp_config_apply_env(&cfg, env, err, sizeof(err)), 0);
    ck_assert_int_eq(pgp_config_set(&cfg, "proxy.listen", "127.0.0.1:1003", "--listen", err,
                                    sizeof(err)), 0);
    ck_assert_int_eq(pgp_config_finish(&cfg, err, sizeof(err)), 0);
    ck_assert_str_eq(cfg.proxy.listen, "127.0.0.1:1003");           /* flag */
    ck_assert_uint_eq(cfg.proxy.listen_ep.port, 1003);
    ck_assert_str_eq(cfg.log.level, "warn");                        /* env */
    ck_assert_str_eq(cfg.proxy.upstream, "10.0.0.1:5432");          /* file */
    ck_assert_int_eq(cfg.proxy.connect_timeout_ms, 111);            /* file */
    ck_assert_int_eq(cfg.proxy.shutdown_timeout_ms, 30000);         /* default */
    ck_assert_str_eq(cfg.log.format, "text");                       /* default */
    pgp_config_free(&cfg);
}
END_TEST

/* ---- set and finish ------------------------------------------------------------- */

static const struct set_case {
    const char *key, *value, *origin, *expect;
} set_cases[] = {
    { "proxy.listen", "127.0.0.1:7000", "--listen", NULL },
    { "proxy.listen", "x:99999", "--listen", "--listen: invalid port in \"x:99999\"" },
    { "proxy.listen", "x:99999", NULL, "proxy.listen: invalid port in \"x:99999\"" },
    { "proxy.lisen", "x:1", "--listen", "--listen: unknown key \"proxy.lisen\" (did you mean \"proxy.listen\"?)" },
    { "listen", "x:1", NULL, "listen: unknown key \"listen\"" },
    { "proxy.", "x:1", NULL, "unknown key \"proxy.\"" },
    { "", "x:1", NULL, "unknown key \"\"" },
    { "log.level", "DEBUG", "--log-level", "--log-level: \"DEBUG\" is not one of debug, info, warn, error (did you mean \"debug\"?)" },
    { "proxy.max_message_bytes", "1023", NULL, "proxy.max_message_bytes: 1023 is out of range (1024..1073741824)" },
    { "proxy.max_message_bytes", "99999999999999999999", NULL, "does not fit in 64 bits" },
    { "proxy.max_message_bytes", "1e6", NULL, "expected an integer, got \"1e6\"" },
    { "proxy.upstream", "postgres://%2Fvar%2Frun%2Fpostgresql:5433/db", "--upstream", NULL },
    { "proxy.upstream", "\xff", "--upstream", "--upstream: invalid UTF-8 in \"\\xff\"" },
    { "admin.listen", "", "--admin", NULL },
    { "admin.listen", "[::1]:9999", "--admin", NULL },
    { "admin.listen", "/tmp", "--admin", "--admin: unix sockets are not supported here" },
    { "admin.listen", "postgres://h:1", NULL, "admin.listen: expected host:port or [v6]:port, not a URL" },
    { "admin.listen", "h:0x", NULL, "admin.listen: invalid port" },
    { "admin.token", "t0k", NULL, NULL },
};

START_TEST(test_set)
{
    const struct set_case *c = &set_cases[_i];
    pgp_config_t cfg, def;
    char err[ERRLEN];
    pgp_config_init(&cfg);
    pgp_config_init(&def);
    int rc = pgp_config_set(&cfg, c->key, c->value, c->origin, err, sizeof(err));
    if (c->expect == NULL) {
        ck_assert_msg(rc == 0, "case %d: %s", _i, err);
    } else {
        ck_assert_int_eq(rc, -1);
        ck_assert_msg(strstr(err, c->expect) != NULL, "case %d: got [%s]", _i, err);
        assert_cfg_eq(&cfg, &def);
    }
    pgp_config_free(&cfg);
    pgp_config_free(&def);
}
END_TEST

/* admin.listen = "" disables the HTTP server; a host without port gets 9433. */
START_TEST(test_admin_listen)
{
    pgp_config_t cfg;
    char err[ERRLEN];
    pgp_config_init(&cfg);
    ck_assert_int_eq(pgp_config_set(&cfg, "admin.listen", "", NULL, err, sizeof(err)), 0);
    ck_assert_msg(pgp_config_finish(&cfg, err, sizeof(err)) == 0, "%s", err);
    ck_assert(!cfg.admin.enabled);
    ck_assert_int_eq(pgp_config_set(&cfg, "admin.listen", "[::1]", NULL, err, sizeof(err)), 0);
    ck_assert_msg(pgp_config_finish(&cfg, err, sizeof(err)) == 0, "%s", err);
    ck_assert(cfg.admin.enabled);
    ck_assert_str_eq(cfg.admin.listen_ep.host, "::1");
    ck_assert_uint_eq(cfg.admin.listen_ep.port, 9433);
    pgp_config_free(&cfg);
}
END_TEST

START_TEST(test_finish_checks)
{
    pgp_config_t cfg;
    char err[ERRLEN];

    pgp_config_init(&cfg);
    cfg.proxy.max_client_connections = 0;   /* edited directly: finish still checks */
    ck_assert_int_eq(pgp_config_finish(&cfg, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "proxy.max_client_connections: 0 is out of range (1..1000000)");
    pgp_config_free(&cfg);

    pgp_config_init(&cfg);
    free(cfg.log.format);
    cfg.log.format = strdup("yaml");
    ck_assert_int_eq(pgp_config_finish(&cfg, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "log.format: \"yaml\" is not one of text, json");
    pgp_config_free(&cfg);

    pgp_config_init(&cfg);
    ck_assert_int_eq(pgp_config_set(&cfg, "proxy.upstream", "127.0.0.1:6433", NULL, err,
                                    sizeof(err)), 0);
    ck_assert_int_eq(pgp_config_finish(&cfg, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "proxy.upstream: same endpoint as proxy.listen (127.0.0.1:6433); "
                          "pgproxy would connect to itself");
    pgp_config_free(&cfg);

    pgp_config_init(&cfg);
    ck_assert_int_eq(pgp_config_set(&cfg, "proxy.listen", "/tmp", NULL, err, sizeof(err)), 0);
    ck_assert_int_eq(pgp_config_set(&cfg, "proxy.upstream", "/tmp/", NULL, err, sizeof(err)), 0);
    ck_assert_int_eq(pgp_config_finish(&cfg, err, sizeof(err)), 0);   /* .6433 vs .5432 */
    ck_assert_int_eq(pgp_config_set(&cfg, "proxy.upstream", "unix:/tmp/.s.PGSQL.6433", NULL, err,
                                    sizeof(err)), 0);
    ck_assert_int_eq(pgp_config_finish(&cfg, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "(/tmp/.s.PGSQL.6433)"));
    pgp_config_free(&cfg);
}
END_TEST

/* ---- TLS and transport keys ------------------------------------------------------ */

/* Each new key from a file and from its environment variable, read back from its field. */
static const struct tls_key_case {
    const char *key, *env, *value;
    size_t offset;   /* of the char * field */
} tls_key_cases[] = {
    { "upstream_tls", "PGPROXY_PROXY_UPSTREAM_TLS", "verify-full",
      offsetof(pgp_config_t, proxy.upstream_tls) },
    { "upstream_tls", "PGPROXY_PROXY_UPSTREAM_TLS", "prefer",
      offsetof(pgp_config_t, proxy.upstream_tls) },
    { "upstream_tls_ca_file", "PGPROXY_PROXY_UPSTREAM_TLS_CA_FILE", "/etc/ssl/ca.pem",
      offsetof(pgp_config_t, proxy.upstream_tls_ca_file) },
    { "upstream_tls_ca_file", "PGPROXY_PROXY_UPSTREAM_TLS_CA_FILE", "system",
      offsetof(pgp_config_t, proxy.upstream_tls_ca_file) },
    { "upstream_tls_cert_file", "PGPROXY_PROXY_UPSTREAM_TLS_CERT_FILE", "/c/client.crt",
      offsetof(pgp_config_t, proxy.upstream_tls_cert_file) },
    { "upstream_tls_key_file", "PGPROXY_PROXY_UPSTREAM_TLS_KEY_FILE", "/c/client.key",
      offsetof(pgp_config_t, proxy.upstream_tls_key_file) },
    { "client_tls", "PGPROXY_PROXY_CLIENT_TLS", "allow", offsetof(pgp_config_t, proxy.client_tls) },
    { "client_tls", "PGPROXY_PROXY_CLIENT_TLS", "require", offsetof(pgp_config_t, proxy.client_tls) },
    { "client_tls_cert_file", "PGPROXY_PROXY_CLIENT_TLS_CERT_FILE", "/s/server.crt",
      offsetof(pgp_config_t, proxy.client_tls_cert_file) },
    { "client_tls_key_file", "PGPROXY_PROXY_CLIENT_TLS_KEY_FILE", "/s/server.key",
      offsetof(pgp_config_t, proxy.client_tls_key_file) },
    { "unix_socket_mode", "PGPROXY_PROXY_UNIX_SOCKET_MODE", "0700",
      offsetof(pgp_config_t, proxy.unix_socket_mode) },
};

static const char *field_at(const pgp_config_t *cfg, size_t offset)
{
    return *(char *const *)((const char *)cfg + offset);
}

START_TEST(test_tls_key_sources)
{
    const struct tls_key_case *c = &tls_key_cases[_i];
    pgp_config_t cfg, want;
    char err[ERRLEN], *toml = NULL, *var = NULL;
    ck_assert_int_ge(asprintf(&toml, "[proxy]\n%s = \"%s\"\n", c->key, c->value), 0);
    ck_assert_int_ge(asprintf(&var, "%s=%s", c->env, c->value), 0);
    char *const envp[] = { var, NULL };
    char dotted[64];
    snprintf(dotted, sizeof(dotted), "proxy.%s", c->key);
    pgp_config_init(&want);
    ck_assert_msg(pgp_config_set(&want, dotted, c->value, NULL, err, sizeof(err)) == 0, "%s", err);

    pgp_config_init(&cfg);
    ck_assert_msg(pgp_config_load_buffer(&cfg, "t.toml", toml, strlen(toml), err,
                                         sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(field_at(&cfg, c->offset), c->value);
    assert_cfg_eq(&cfg, &want);
    pgp_config_free(&cfg);

    pgp_config_init(&cfg);
    ck_assert_msg(pgp_config_apply_env(&cfg, envp, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(field_at(&cfg, c->offset), c->value);
    assert_cfg_eq(&cfg, &want);
    pgp_config_free(&cfg);
    pgp_config_free(&want);
    free(toml);
    free(var);
}
END_TEST

/* Values rejected where they are set, with the whole message. */
static const struct tls_bad_case {
    const char *how;     /* "file", "env" or the origin of pgp_config_set */
    const char *key;     /* proxy.<key> */
    const char *value;
    const char *expect;  /* exact message */
} tls_bad_cases[] = {
    { "file", "upstream_tls", "allow",
      "t.toml:2: proxy.upstream_tls: \"allow\" is not one of disable, prefer, require, verify-ca, "
      "verify-full (did you mean \"prefer\"?)" },
    { "file", "upstream_tls", "verify_full",
      "t.toml:2: proxy.upstream_tls: \"verify_full\" is not one of disable, prefer, require, "
      "verify-ca, verify-full (did you mean \"verify-full\"?)" },
    { "env", "upstream_tls", "on",
      "environment PGPROXY_PROXY_UPSTREAM_TLS: \"on\" is not one of disable, prefer, require, "
      "verify-ca, verify-full" },
    { "file", "client_tls", "verify-full",
      "t.toml:2: proxy.client_tls: \"verify-full\" is not one of disable, allow, require" },
    { "env", "client_tls", "prefer",
      "environment PGPROXY_PROXY_CLIENT_TLS: \"prefer\" is not one of disable, allow, require" },
    { "file", "unix_socket_mode", "0999",
      "t.toml:2: proxy.unix_socket_mode: expected an octal mode such as \"0770\" (3 or 4 digits "
      "0-7, at most 0777), got \"0999\"" },
    { "file", "unix_socket_mode", "77777",
      "t.toml:2: proxy.unix_socket_mode: expected an octal mode such as \"0770\" (3 or 4 digits "
      "0-7, at most 0777), got \"77777\"" },
    { "env", "unix_socket_mode", "abc",
      "environment PGPROXY_PROXY_UNIX_SOCKET_MODE: expected an octal mode such as \"0770\" "
      "(3 or 4 digits 0-7, at most 0777), got \"abc\"" },
    { "env", "unix_socket_mode", "",
      "environment PGPROXY_PROXY_UNIX_SOCKET_MODE: expected an octal mode such as \"0770\" "
      "(3 or 4 digits 0-7, at most 0777), got \"\"" },
    { "--mode", "unix_socket_mode", "1777",
      "--mode: expected an octal mode such as \"0770\" (3 or 4 digits 0-7, at most 0777), "
      "got \"1777\"" },
    { "--mode", "unix_socket_mode", "77",
      "--mode: expected an octal mode such as \"0770\" (3 or 4 digits 0-7, at most 0777), "
      "got \"77\"" },
    { "--mode", "unix_socket_mode", "0o770",
      "--mode: expected an octal mode such as \"0770\" (3 or 4 digits 0-7, at most 0777), "
      "got \"0o770\"" },
    { "--upstream", "upstream", "postgres://db/app?sslmode=allow",
      "--upstream: sslmode=allow is not supported (did you mean sslmode=prefer?)" },
    { "--upstream", "upstream", "postgres://db/app?sslmode=verify_full",
      "--upstream: sslmode=verify_full is not one of disable, prefer, require, verify-ca, "
      "verify-full (did you mean \"verify-full\"?)" },
    { "file", "upstream", "postgresql://db/app?sslmode=bogus%0a",
      "t.toml:2: proxy.upstream: sslmode=\"bogus\\x0a\" is not one of disable, prefer, require, "
      "verify-ca, verify-full" },
    { "env", "upstream", "postgres://db/app?sslrootcert=%2Fetc%zz",
      "environment PGPROXY_PROXY_UPSTREAM: invalid sslrootcert value (bad percent-encoding, "
      "%00, or longer than 4096 bytes)" },
    { "env", "upstream", "postgres://db/app?sslkey=%00",
      "environment PGPROXY_PROXY_UPSTREAM: invalid sslkey value (bad percent-encoding, "
      "%00, or longer than 4096 bytes)" },
    { "env", "upstream", "postgres://db/app?sslcert=%FF",
      "environment PGPROXY_PROXY_UPSTREAM: sslcert: invalid UTF-8 in \"\\xff\"" },
};

START_TEST(test_tls_bad_values)
{
    const struct tls_bad_case *c = &tls_bad_cases[_i];
    pgp_config_t cfg, def;
    char err[ERRLEN], *text = NULL, dotted[64];
    int rc;
    pgp_config_init(&cfg);
    pgp_config_init(&def);
    if (strcmp(c->how, "file") == 0) {
        ck_assert_int_ge(asprintf(&text, "[proxy]\n%s = \"%s\"\n", c->key, c->value), 0);
        rc = pgp_config_load_buffer(&cfg, "t.toml", text, strlen(text), err, sizeof(err));
    } else if (strcmp(c->how, "env") == 0) {
        char up[64];
        snprintf(up, sizeof(up), "PGPROXY_PROXY_%s", c->key);
        for (char *p = up; *p != '\0'; p++)
            if (*p >= 'a' && *p <= 'z')
                *p = (char)(*p - 'a' + 'A');
        ck_assert_int_ge(asprintf(&text, "%s=%s", up, c->value), 0);
        char *const envp[] = { text, NULL };
        rc = pgp_config_apply_env(&cfg, envp, err, sizeof(err));
    } else {
        snprintf(dotted, sizeof(dotted), "proxy.%s", c->key);
        rc = pgp_config_set(&cfg, dotted, c->value, c->how, err, sizeof(err));
    }
    ck_assert_msg(rc == -1, "case %d accepted", _i);
    ck_assert_str_eq(err, c->expect);
    assert_cfg_eq(&cfg, &def);
    free(text);
    pgp_config_free(&cfg);
    pgp_config_free(&def);
}
END_TEST

static const struct mode_case {
    const char *text;
    int bits;
} mode_cases[] = {
    { "0770", 0770 }, { "600", 0600 }, { "0600", 0600 }, { "777", 0777 }, { "0777", 0777 },
    { "000", 0 }, { "0000", 0 }, { "0755", 493 },
};

START_TEST(test_unix_socket_mode)
{
    const struct mode_case *c = &mode_cases[_i];
    pgp_config_t cfg;
    char err[ERRLEN];
    pgp_config_init(&cfg);
    ck_assert_int_eq(cfg.proxy.unix_socket_mode_bits, 0770);
    ck_assert_msg(pgp_config_set(&cfg, "proxy.unix_socket_mode", c->text, NULL, err,
                                 sizeof(err)) == 0, "%s", err);
    ck_assert_msg(pgp_config_finish(&cfg, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(cfg.proxy.unix_socket_mode, c->text);
    ck_assert_int_eq(cfg.proxy.unix_socket_mode_bits, c->bits);
    pgp_config_free(&cfg);

    /* finish checks the text again when the field was edited directly. */
    pgp_config_init(&cfg);
    free(cfg.proxy.unix_socket_mode);
    cfg.proxy.unix_socket_mode = strdup("0999");
    ck_assert_int_eq(pgp_config_finish(&cfg, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "proxy.unix_socket_mode: expected an octal mode such as \"0770\" "
                          "(3 or 4 digits 0-7, at most 0777), got \"0999\"");
    pgp_config_free(&cfg);
}
END_TEST

/*
 * Cross-key rules and the proxy.upstream URL, checked by pgp_config_finish.
 * Keys are set in order with pgp_config_set (explicit); on success the four
 * upstream TLS fields must hold `tls`.
 */
static const struct finish_tls_case {
    const char *set[5][2];
    const char *expect;   /* exact message; NULL = success */
    const char *tls[4];   /* upstream_tls, ca_file, cert_file, key_file */
} finish_tls_cases[] = {
    /* pairing, rules on the keys alone */
    { { { "proxy.upstream_tls_cert_file", "/c.crt" } },
      "proxy.upstream_tls_key_file: empty, but proxy.upstream_tls_cert_file is set (a client "
      "certificate toward the server needs both; give both or neither)", { NULL } },
    { { { "proxy.upstream_tls", "require" }, { "proxy.upstream_tls_key_file", "/c.key" } },
      "proxy.upstream_tls_cert_file: empty, but proxy.upstream_tls_key_file is set (a client "
      "certificate toward the server needs both; give both or neither)", { NULL } },
    { { { "proxy.upstream_tls", "require" }, { "proxy.upstream_tls_cert_file", "/c.crt" },
        { "proxy.upstream_tls_key_file", "/c.key" } },
      NULL, { "require", "", "/c.crt", "/c.key" } },
    { { { "proxy.client_tls", "require" } },
      "proxy.client_tls = require needs proxy.client_tls_cert_file and proxy.client_tls_key_file "
      "(pgproxy's certificate and key for clients)", { NULL } },
    { { { "proxy.client_tls", "allow" } },
      "proxy.client_tls = allow needs proxy.client_tls_cert_file and proxy.client_tls_key_file "
      "(pgproxy's certificate and key for clients)", { NULL } },
    { { { "proxy.client_tls", "require" }, { "proxy.client_tls_cert_file", "/s.crt" } },
      "proxy.client_tls_key_file: empty, but proxy.client_tls_cert_file is set (pgproxy's "
      "certificate for clients needs both; give both or neither)", { NULL } },
    { { { "proxy.client_tls", "require" }, { "proxy.client_tls_cert_file", "/s.crt" },
        { "proxy.client_tls_key_file", "/s.key" } },
      NULL, { "disable", "", "", "" } },
    /* cert and key with client_tls = "disable": harmless */
    { { { "proxy.client_tls_cert_file", "/s.crt" }, { "proxy.client_tls_key_file", "/s.key" } },
      NULL, { "disable", "", "", "" } },
    { { { "proxy.upstream_tls", "verify-full" } },
      "proxy.upstream_tls = verify-full needs proxy.upstream_tls_ca_file (a CA file, or \"system\")", { NULL } },
    { { { "proxy.upstream_tls", "verify-ca" } },
      "proxy.upstream_tls = verify-ca needs proxy.upstream_tls_ca_file (a CA file, or \"system\")", { NULL } },
    { { { "proxy.upstream_tls", "verify-full" }, { "proxy.upstream_tls_ca_file", "system" } },
      NULL, { "verify-full", "system", "", "" } },
    { { { "proxy.upstream_tls", "prefer" } }, NULL, { "prefer", "", "", "" } },
    /* the URL sets the keys (percent-decoded) */
    { { { "proxy.upstream", "postgres://u@db:5433/app?sslmode=verify-full"
                            "&sslrootcert=%2Fetc%2Fca.pem&sslcert=%2Fc%2Fa%20b.crt&sslkey=/c/k.key" } },
      NULL, { "verify-full", "/etc/ca.pem", "/c/a b.crt", "/c/k.key" } },
    { { { "proxy.upstream", "postgresql://db/app?application_name=x&sslmode=require&connect_timeout=3" } },
      NULL, { "require", "", "", "" } },
    { { { "proxy.upstream", "postgres://db/app?sslmode=disable&sslmode=prefer" } },
      NULL, { "prefer", "", "", "" } },   /* the last one wins, as in libpq */
    { { { "proxy.upstream", "postgres://db/app?sslmode=&sslrootcert=" } },
      NULL, { "disable", "", "", "" } },   /* empty = not given */
    { { { "proxy.upstream", "postgres://db/app#x?sslmode=require" } },
      NULL, { "disable", "", "", "" } },   /* a fragment is not a query */
    { { { "proxy.upstream", "postgres://%2Fvar%2Frun%2Fpostgresql/app?sslmode=require" } },
      NULL, { "require", "", "", "" } },   /* kept for a unix socket; the TLS module ignores it */
    { { { "proxy.upstream", "db:5432" }, { "proxy.upstream_tls", "require" } },
      NULL, { "require", "", "", "" } },
    { { { "proxy.upstream", "postgres://db/app?sslmode=verify-ca" } },
      "proxy.upstream_tls = verify-ca needs proxy.upstream_tls_ca_file (a CA file, or \"system\")", { NULL } },
    { { { "proxy.upstream", "postgres://db/app?sslcert=/c.crt" } },
      "proxy.upstream_tls_key_file: empty, but proxy.upstream_tls_cert_file is set (a client "
      "certificate toward the server needs both; give both or neither)", { NULL } },
    /* URL and explicit keys: equal is fine, different is an error naming both */
    { { { "proxy.upstream_tls", "disable" }, { "proxy.upstream", "postgres://db/app?sslmode=require" } },
      "proxy.upstream_tls = \"disable\" conflicts with sslmode=require in proxy.upstream", { NULL } },
    { { { "proxy.upstream", "postgres://db/app?sslmode=require" }, { "proxy.upstream_tls", "require" } },
      NULL, { "require", "", "", "" } },
    { { { "proxy.upstream", "postgres://db/app?sslmode=verify-full&sslrootcert=%2Fa.pem" },
        { "proxy.upstream_tls_ca_file", "/b.pem" } },
      "proxy.upstream_tls_ca_file = \"/b.pem\" conflicts with sslrootcert=/a.pem in proxy.upstream", { NULL } },
    { { { "proxy.upstream", "postgres://db/app?sslmode=verify-full&sslrootcert=%2Fa.pem" },
        { "proxy.upstream_tls_ca_file", "/a.pem" } },
      NULL, { "verify-full", "/a.pem", "", "" } },
    { { { "proxy.upstream", "postgres://db/app?sslcert=/x.crt&sslkey=/x.key" },
        { "proxy.upstream_tls_cert_file", "/y.crt" } },
      "proxy.upstream_tls_cert_file = \"/y.crt\" conflicts with sslcert=/x.crt in proxy.upstream", { NULL } },
    { { { "proxy.upstream", "postgres://db/app?sslcert=/x.crt&sslkey=/x%20y.key" },
        { "proxy.upstream_tls_key_file", "/y.key" } },
      "proxy.upstream_tls_key_file = \"/y.key\" conflicts with sslkey=\"/x y.key\" in proxy.upstream", { NULL } },
    /* The URL gives the mode, an explicit key the CA: both apply. */
    { { { "proxy.upstream", "postgres://db/app?sslmode=verify-full" },
        { "proxy.upstream_tls_ca_file", "system" } },
      NULL, { "verify-full", "system", "", "" } },
    /* An explicit key the URL does not mention is kept. */
    { { { "proxy.upstream_tls", "verify-ca" }, { "proxy.upstream_tls_ca_file", "/ca.pem" },
        { "proxy.upstream", "postgres://db/app?sslcert=/x.crt&sslkey=/x.key" } },
      NULL, { "verify-ca", "/ca.pem", "/x.crt", "/x.key" } },
};

START_TEST(test_finish_tls)
{
    const struct finish_tls_case *c = &finish_tls_cases[_i];
    pgp_config_t cfg;
    char err[ERRLEN];
    pgp_config_init(&cfg);
    for (int k = 0; k < 5 && c->set[k][0] != NULL; k++)
        ck_assert_msg(pgp_config_set(&cfg, c->set[k][0], c->set[k][1], NULL, err,
                                     sizeof(err)) == 0, "case %d: %s", _i, err);
    int rc = pgp_config_finish(&cfg, err, sizeof(err));
    if (c->expect != NULL) {
        ck_assert_msg(rc == -1, "case %d finished", _i);
        ck_assert_str_eq(err, c->expect);
    } else {
        ck_assert_msg(rc == 0, "case %d: %s", _i, err);
        ck_assert_str_eq(cfg.proxy.upstream_tls, c->tls[0]);
        ck_assert_str_eq(cfg.proxy.upstream_tls_ca_file, c->tls[1]);
        ck_assert_str_eq(cfg.proxy.upstream_tls_cert_file, c->tls[2]);
        ck_assert_str_eq(cfg.proxy.upstream_tls_key_file, c->tls[3]);
        /* Finishing again changes nothing. */
        pgp_config_t again;
        pgp_config_init(&again);
        ck_assert_msg(pgp_config_finish(&cfg, err, sizeof(err)) == 0, "case %d: %s", _i, err);
        ck_assert_str_eq(cfg.proxy.upstream_tls, c->tls[0]);
        ck_assert_str_eq(cfg.proxy.upstream_tls_ca_file, c->tls[1]);
        /* The dump of the effective values loads and finishes to the same config. */
        size_t len;
        char *text = dump_to_string(&cfg, &len);
        ck_assert_msg(pgp_config_load_buffer(&again, "dump", text, len, err, sizeof(err)) == 0,
                      "case %d: %s", _i, err);
        ck_assert_msg(pgp_config_finish(&again, err, sizeof(err)) == 0, "case %d: %s", _i, err);
        assert_cfg_eq(&again, &cfg);
        free(text);
        pgp_config_free(&again);
    }
    pgp_config_free(&cfg);
}
END_TEST

static int find_visit(void *ud, const char *section, const char *name, const char *value)
{
    const char **want = ud;   /* { "section.name", result } */
    char full[96];
    snprintf(full, sizeof(full), "%s.%s", section, name);
    if (strcmp(full, want[0]) == 0)
        want[1] = strdup(value);
    return 0;
}

/* The URL's values are what SHOW CONFIG shows; a URL removed later leaves nothing behind. */
START_TEST(test_upstream_url_effective)
{
    pgp_config_t cfg;
    char err[ERRLEN];
    const char *want[2] = { "proxy.upstream_tls_ca_file", NULL };
    const char *file = "[proxy]\nupstream = \"postgres://db:5433/app?sslmode=verify-ca&"
                       "sslrootcert=%2Fetc%2Fpgproxy%2Fca.pem\"\n";
    pgp_config_init(&cfg);
    ck_assert_int_eq(pgp_config_load_buffer(&cfg, "t.toml", file, strlen(file), err,
                                            sizeof(err)), 0);
    ck_assert_msg(pgp_config_finish(&cfg, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(cfg.proxy.upstream_tls, "verify-ca");
    ck_assert_int_eq(pgp_config_foreach(&cfg, find_visit, want), 0);
    ck_assert_ptr_nonnull(want[1]);
    ck_assert_str_eq(want[1], "\"/etc/pgproxy/ca.pem\"");
    free((char *)want[1]);
    ck_assert_int_eq(pgp_config_set(&cfg, "proxy.upstream", "db:5433", NULL, err, sizeof(err)), 0);
    ck_assert_msg(pgp_config_finish(&cfg, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(cfg.proxy.upstream_tls, "disable");
    ck_assert_str_eq(cfg.proxy.upstream_tls_ca_file, "");
    pgp_config_free(&cfg);

    /* The environment's explicit key against the environment's URL. */
    char *const env[] = { "PGPROXY_UPSTREAM=postgres://db/app?sslmode=require",
                          "PGPROXY_PROXY_UPSTREAM_TLS=prefer", NULL };
    pgp_config_init(&cfg);
    ck_assert_int_eq(pgp_config_apply_env(&cfg, env, err, sizeof(err)), 0);
    ck_assert_int_eq(pgp_config_finish(&cfg, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "proxy.upstream_tls = \"prefer\" conflicts with sslmode=require in "
                          "proxy.upstream");
    pgp_config_free(&cfg);
}
END_TEST

/* ---- dump ---------------------------------------------------------------------- */

START_TEST(test_dump_roundtrip)
{
    pgp_config_t a, b;
    char err[ERRLEN];
    size_t len;
    pgp_config_init(&a);
    set_every_key(&a);
    /* A string that needs escaping: the URL's ignored query may hold anything. */
    ck_assert_int_eq(pgp_config_set(&a, "proxy.upstream",
                                    "postgres://db:5432/x?application_name=a\"b\\c\td\x7f\xc3\xa9",
                                    NULL, err, sizeof(err)), 0);
    char *text = dump_to_string(&a, &len);
    ck_assert_ptr_nonnull(strstr(text, "\n[proxy]\nlisten = \"127.0.0.2:1111\"\n"));
    ck_assert_ptr_nonnull(strstr(text, "application_name=a\\\"b\\\\c\\td\\u007F\xc3\xa9\""));
    ck_assert_ptr_nonnull(strstr(text, "\nmax_message_bytes = 4096\n"));
    ck_assert_ptr_nonnull(strstr(text, "\n[log]\nlevel = \"error\"\nformat = \"json\"\n"));
    pgp_config_init(&b);
    ck_assert_msg(pgp_config_load_buffer(&b, "dump", text, len, err, sizeof(err)) == 0, "%s\n%s",
                  err, text);
    ck_assert_int_eq(pgp_config_finish(&a, err, sizeof(err)), 0);
    ck_assert_int_eq(pgp_config_finish(&b, err, sizeof(err)), 0);
    assert_cfg_eq(&a, &b);
    free(text);
    pgp_config_free(&a);
    pgp_config_free(&b);
}
END_TEST

/* ---- endpoints ------------------------------------------------------------------ */

static const struct ep_case {
    const char *text;
    uint16_t default_port;
    const char *host;       /* NULL = must fail */
    uint16_t port;
    bool is_unix, is_file;
    const char *formatted;  /* or, on failure, the expected message */
} ep_cases[] = {
    { "127.0.0.1:5432", 1, "127.0.0.1", 5432, false, false, "127.0.0.1:5432" },
    { "127.0.0.1", 5432, "127.0.0.1", 5432, false, false, "127.0.0.1:5432" },
    { "db.example.com:6000", 1, "db.example.com", 6000, false, false, "db.example.com:6000" },
    { "localhost", 6433, "localhost", 6433, false, false, "localhost:6433" },
    { "my_db-1:65535", 1, "my_db-1", 65535, false, false, "my_db-1:65535" },
    { "[::1]:5432", 1, "::1", 5432, false, false, "[::1]:5432" },
    { "[::1]", 6433, "::1", 6433, false, false, "[::1]:6433" },
    { "[fe80::1%eth0]:7", 1, "fe80::1%eth0", 7, false, false, "[fe80::1%eth0]:7" },
    { "[2001:db8::1]:1", 1, "2001:db8::1", 1, false, false, "[2001:db8::1]:1" },
    { "/var/run/postgresql", 5432, "/var/run/postgresql", 5432, true, false,
      "/var/run/postgresql/.s.PGSQL.5432" },
    { "/tmp//", 6433, "/tmp", 6433, true, false, "/tmp/.s.PGSQL.6433" },
    { "/", 5432, "/", 5432, true, false, "/.s.PGSQL.5432" },
    { "unix:/run/pgproxy.sock", 6433, "/run/pgproxy.sock", 6433, true, true, "/run/pgproxy.sock" },
    { "postgres://db:5433/app", 5432, "db", 5433, false, false, "db:5433" },
    { "postgresql://db/app", 5432, "db", 5432, false, false, "db:5432" },
    { "postgres://db", 5432, "db", 5432, false, false, "db:5432" },
    { "postgres://user:p%40ss:w@db.example.com:6543/app?sslmode=require&connect_timeout=3",
      5432, "db.example.com", 6543, false, false, "db.example.com:6543" },
    { "postgres://user@[::1]:6000/db", 5432, "::1", 6000, false, false, "[::1]:6000" },
    { "postgres://[2001:db8::2]/db", 5432, "2001:db8::2", 5432, false, false, "[2001:db8::2]:5432" },
    { "postgres://%2Fvar%2Frun%2Fpostgresql/db", 5432, "/var/run/postgresql", 5432, true, false,
      "/var/run/postgresql/.s.PGSQL.5432" },
    { "postgres://%2ftmp:5499/db", 5432, "/tmp", 5499, true, false, "/tmp/.s.PGSQL.5499" },
    { "postgres:///app?host=/var/run/postgresql&port=5433", 5432, "/var/run/postgresql", 5433,
      true, false, "/var/run/postgresql/.s.PGSQL.5433" },
    { "postgresql://u@ignored:1/db?host=other&sslmode=disable", 5432, "other", 1, false, false,
      "other:1" },
    { "postgres://db:5432/app#frag", 1, "db", 5432, false, false, "db:5432" },
    /* failures */
    { "", 1, NULL, 0, false, false, "empty endpoint" },
    { "x:99999", 1, NULL, 0, false, false, "invalid port in \"x:99999\"" },
    { "x:0", 1, NULL, 0, false, false, "invalid port in \"x:0\"" },
    { "x:", 1, NULL, 0, false, false, "invalid port in \"x:\"" },
    { "x:12a", 1, NULL, 0, false, false, "invalid port in \"x:12a\"" },
    { "x:-1", 1, NULL, 0, false, false, "invalid port" },
    { "x:000001", 1, NULL, 0, false, false, "invalid port" },
    { ":5432", 1, NULL, 0, false, false, "missing host in \":5432\"" },
    { "::1:5432", 1, NULL, 0, false, false, "invalid address in \"::1:5432\" (write IPv6 as [addr] or [addr]:port)" },
    { "::1", 1, NULL, 0, false, false, "write IPv6 as [addr]" },
    { "fe80::zz", 1, NULL, 0, false, false, "write IPv6 as [addr] or [addr]:port" },
    { "[::1", 1, NULL, 0, false, false, "invalid IPv6 address in \"[::1\"" },
    { "[::1]x", 1, NULL, 0, false, false, "invalid IPv6 address" },
    { "[::1]:", 1, NULL, 0, false, false, "invalid port" },
    { "[nothex]:1", 1, NULL, 0, false, false, "invalid" },
    { "[1.2.3.4]:1", 1, NULL, 0, false, false, "invalid IPv6 address" },
    { "999.1.1.1:5", 1, NULL, 0, false, false, "invalid host in \"999.1.1.1:5\"" },
    { "bad host:5", 1, NULL, 0, false, false, "invalid host" },
    { "-x:5", 1, NULL, 0, false, false, "invalid host" },
    { "unix:", 1, NULL, 0, false, false, "unix socket path must be 1..107 bytes" },
    { "http://x:1", 1, NULL, 0, false, false, "unsupported URL scheme in \"http://x:1\"" },
    { "postgres://", 1, NULL, 0, false, false, "missing host in \"postgres://\"" },
    { "postgres:///db", 1, NULL, 0, false, false, "missing host" },
    { "postgres://a,b/db", 1, NULL, 0, false, false, "multiple hosts are not supported" },
    { "postgres://h:99999/db", 1, NULL, 0, false, false, "invalid port in \"postgres://h:99999/db\"" },
    { "postgres://h/db?port=x", 1, NULL, 0, false, false, "invalid port" },
    { "postgres://%zz/db", 1, NULL, 0, false, false, "invalid host" },
    { "postgres://%00/db", 1, NULL, 0, false, false, "invalid host" },
    { "postgres://h%2/db", 1, NULL, 0, false, false, "invalid host" },
    { "postgres://[::1/db", 1, NULL, 0, false, false, "invalid IPv6 address" },
    { "postgres://[x]:1/db", 1, NULL, 0, false, false, "invalid IPv6 address" },
    { "postgres://[::1]x/db", 1, NULL, 0, false, false, "invalid IPv6 address" },
    { "/a/very/long/directory/name/that/goes/on/and/on/and/on/and/on/and/on/and/on/and/on/and/on/and/on/x",
      1, NULL, 0, false, false, "unix socket path too long (max 107 bytes)" },
};

START_TEST(test_endpoints)
{
    const struct ep_case *c = &ep_cases[_i];
    pgp_endpoint_t ep;
    char err[ERRLEN] = "", buf[300];
    memset(&ep, 0x5a, sizeof(ep));
    int rc = pgp_endpoint_parse(c->text, c->default_port, &ep, err, sizeof(err));
    if (c->host == NULL) {
        ck_assert_msg(rc == -1, "case %d (%s) parsed", _i, c->text);
        ck_assert_msg(strstr(err, c->formatted) != NULL, "case %d: got [%s] want [%s]", _i, err,
                      c->formatted);
        ck_assert_uint_eq((unsigned char)ep.host[0], 0x5a);   /* out untouched */
        return;
    }
    ck_assert_msg(rc == 0, "case %d (%s): %s", _i, c->text, err);
    ck_assert_str_eq(ep.host, c->host);
    ck_assert_uint_eq(ep.port, c->port);
    ck_assert_int_eq(ep.is_unix, c->is_unix);
    ck_assert_int_eq(ep.is_socket_file, c->is_file);
    pgp_endpoint_format(&ep, buf, sizeof(buf));
    ck_assert_str_eq(buf, c->formatted);
    if (c->is_unix) {
        ck_assert_int_eq(pgp_endpoint_socket_path(&ep, buf, sizeof(buf)), 0);
        ck_assert_str_eq(buf, c->formatted);
    } else {
        ck_assert_int_eq(pgp_endpoint_socket_path(&ep, buf, sizeof(buf)), -1);
    }
}
END_TEST

START_TEST(test_endpoint_limits)
{
    pgp_endpoint_t ep;
    char err[ERRLEN], text[400], buf[8];
    /* unix: path of exactly 107 bytes fits sun_path; 108 does not. */
    memcpy(text, "unix:/", 6);
    memset(text + 6, 'a', 106);
    text[112] = '\0';
    ck_assert_int_eq(pgp_endpoint_parse(text, 1, &ep, err, sizeof(err)), 0);
    ck_assert_uint_eq(strlen(ep.host), 107);
    text[112] = 'a';
    text[113] = '\0';
    ck_assert_int_eq(pgp_endpoint_parse(text, 1, &ep, err, sizeof(err)), -1);
    /* Host names longer than 253 bytes are rejected, not truncated. */
    memset(text, 'h', 300);
    text[300] = '\0';
    ck_assert_int_eq(pgp_endpoint_parse(text, 1, &ep, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "host too long"));
    text[253] = '\0';
    ck_assert_int_eq(pgp_endpoint_parse(text, 1, &ep, err, sizeof(err)), 0);
    /* Formatting truncates safely. */
    pgp_endpoint_format(&ep, buf, sizeof(buf));
    ck_assert_str_eq(buf, "hhhhhhh");
    ck_assert_int_eq(pgp_endpoint_parse(NULL, 1, &ep, err, sizeof(err)), -1);
}
END_TEST

/* ---- the generic TOML layer ---------------------------------------------------- */

typedef struct collect {
    char text[1024];   /* "path=value;" per key, rendered with pgp_toml_write_value */
} collect_t;

static int collect_line(void *ctx, const pgp_toml_event_t *ev, char *what, size_t whatlen)
{
    collect_t *c = ctx;
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    (void)what;
    (void)whatlen;
    for (size_t i = 0; i < ev->table_depth; i++)
        fprintf(f, "%s%s", i ? "." : "[", ev->table[i]);
    if (ev->kind == PGP_TOML_TABLE) {
        fputs("];", f);
    } else {
        if (ev->table_depth > 0)
            fputs("]", f);
        for (size_t i = 0; i < ev->key_depth; i++)
            fprintf(f, "%s%s", i ? "." : "", ev->key[i]);
        fputc('=', f);
        pgp_toml_write_value(f, ev->value);
        fprintf(f, "@%d;", ev->line);
    }
    fclose(f);
    size_t used = strlen(c->text);
    ck_assert_uint_lt(used + n, sizeof(c->text));
    memcpy(c->text + used, buf, n + 1);
    free(buf);
    return 0;
}

static const struct toml_case {
    const char *in;
    const char *out;   /* collected events, or for errors the message */
    bool ok;
} toml_cases[] = {
    { "x = 1.5", "x=1.5@1;", true },
    { "x = -0.25e-2", "x=-0.0025@1;", true },
    { "x = 1e3\ny = 6.02E+23\nz = 1_000.000_1", "x=1000.0@1;y=6.02e+23@2;z=1000.0001@3;", true },
    { "x = inf\ny = -inf\nz = +nan", "x=inf@1;y=-inf@2;z=nan@3;", true },
    { "x = 0.1", "x=0.1@1;", true },
    { "t = true\nf = false", "t=true@1;f=false@2;", true },
    { "x = -9223372036854775808\ny = 9223372036854775807",
      "x=-9223372036854775808@1;y=9223372036854775807@2;", true },
    { "x = 0xDEAD_beef\ny = 0o755\nz = 0b1010", "x=3735928559@1;y=493@2;z=10@3;", true },
    { "x = -0\ny = +0", "x=0@1;y=0@2;", true },
    { "a = [ \"x\", 'y', ]", "a=[\"x\", \"y\"]@1;", true },
    { "a = []\nb = [ ]", "a=[]@1;b=[]@2;", true },
    { "a = [\n  \"x\", # first\n\n  # between\n  \"y\"\n,]\nb = 1",
      "a=[\"x\", \"y\"]@1;b=1@7;", true },
    { "a = [1, 2.5, true, \"s\"]", "a=[1, 2.5, true, \"s\"]@1;", true },
    { "s = \"q\\\"b\\\\n\\n\\t\\b\\f\\r\\u00e9\\U0001F600\"",
      "s=\"q\\\"b\\\\n\\n\\t\\b\\f\\r\xc3\xa9\xf0\x9f\x98\x80\"@1;", true },
    { "s = 'C:\\path\\\"raw'", "s=\"C:\\\\path\\\\\\\"raw\"@1;", true },
    { "s = \"\"\ne = ''", "s=\"\"@1;e=\"\"@2;", true },
    { "[a.b]\nc.d = 1\n[\"x y\" . 'z']\n", "[a.b];[a.b]c.d=1@2;[x y.z];", true },
    { "x=1#c\n", "x=1@1;", true },
    { "1234 = 5\n-_ = 6", "1234=5@1;-_=6@2;", true },
    { "x = 1.", "t:1: invalid value \"1.\"", false },
    { "x = .5", "t:1: invalid value \".5\"", false },
    { "x = 1e", "t:1: invalid value \"1e\"", false },
    { "x = 1.5.", "invalid value", false },
    { "x = +0x10", "invalid value", false },
    { "x = 0x", "invalid value", false },
    { "x = 0b102", "invalid value", false },
    { "x = 00.5", "leading zeros are not allowed", false },
    { "x = 1e999", "t:1: float \"1e999\" is out of range", false },
    { "x = _1", "invalid value", false },
    { "x = infinity", "invalid value", false },
    { "x = True", "invalid value \"True\" (strings must be quoted)", false },
    { "x = 07:32:00", "dates and times are not supported", false },
    { "a = [1 2]", "t:1: expected ',' or ']' in array, got '2'", false },
    { "a = [1,,2]", "expected a value, got ','", false },
    { "a = [1", "t:1: unterminated array", false },
    { "a = [1] x", "unexpected 'x' after value", false },
};

START_TEST(test_toml_values)
{
    const struct toml_case *c = &toml_cases[_i];
    collect_t col;
    char err[ERRLEN] = "";
    col.text[0] = '\0';
    int rc = pgp_toml_parse("t", c->in, strlen(c->in), collect_line, &col, err, sizeof(err));
    if (c->ok) {
        ck_assert_msg(rc == 0, "case %d: %s", _i, err);
        ck_assert_str_eq(col.text, c->out);
    } else {
        ck_assert_int_eq(rc, -1);
        ck_assert_msg(strstr(err, c->out) != NULL, "case %d: got [%s] want [%s]", _i, err, c->out);
    }
}
END_TEST

static int reject_second(void *ctx, const pgp_toml_event_t *ev, char *what, size_t whatlen)
{
    int *count = ctx;
    if (++*count == 2) {
        snprintf(what, whatlen, "no thanks (line %d)", ev->line);
        return -1;
    }
    return 0;
}

START_TEST(test_toml_handler_error)
{
    int count = 0;
    char err[ERRLEN];
    const char *in = "a = [\n1,\n2]\nb = 'x'\nc = 3\n";
    ck_assert_int_eq(pgp_toml_parse("h.toml", in, strlen(in), reject_second, &count, err,
                                    sizeof(err)), -1);
    /* The handler's message gets the line of the key, not of the cursor. */
    ck_assert_str_eq(err, "h.toml:4: no thanks (line 4)");
    ck_assert_int_eq(count, 2);
}
END_TEST

static const struct text_case {
    pgp_toml_type_t type;
    const char *in;
    const char *out;   /* rendered value, or the error message */
    bool ok;
} text_cases[] = {
    { PGP_TOML_INTEGER, "42", "42", true },
    { PGP_TOML_INTEGER, "-42", "-42", true },
    { PGP_TOML_INTEGER, "+7", "7", true },
    { PGP_TOML_INTEGER, "007", "7", true },
    { PGP_TOML_INTEGER, "1_000_000", "1000000", true },
    { PGP_TOML_INTEGER, "-9223372036854775808", "-9223372036854775808", true },
    { PGP_TOML_INTEGER, "9223372036854775808", "integer \"9223372036854775808\" does not fit in 64 bits", false },
    { PGP_TOML_INTEGER, "abc", "expected an integer, got \"abc\"", false },
    { PGP_TOML_INTEGER, "1.0", "expected an integer, got \"1.0\"", false },
    { PGP_TOML_INTEGER, "5 ", "expected an integer, got \"5 \"", false },
    { PGP_TOML_INTEGER, "", "expected an integer, got \"\"", false },
    { PGP_TOML_FLOAT, "2", "2.0", true },
    { PGP_TOML_FLOAT, "0.5", "0.5", true },
    { PGP_TOML_FLOAT, "-1e-3", "-0.001", true },
    { PGP_TOML_FLOAT, "fast", "expected a number, got \"fast\"", false },
    { PGP_TOML_FLOAT, "1e999", "float \"1e999\" is out of range", false },
    { PGP_TOML_BOOL, "true", "true", true },
    { PGP_TOML_BOOL, "YES", "true", true },
    { PGP_TOML_BOOL, "on", "true", true },
    { PGP_TOML_BOOL, "1", "true", true },
    { PGP_TOML_BOOL, "False", "false", true },
    { PGP_TOML_BOOL, "no", "false", true },
    { PGP_TOML_BOOL, "OFF", "false", true },
    { PGP_TOML_BOOL, "0", "false", true },
    { PGP_TOML_BOOL, "maybe", "expected a boolean (true/false), got \"maybe\"", false },
    { PGP_TOML_STRING, "any \"text\"\n", "\"any \\\"text\\\"\\n\"", true },
    { PGP_TOML_STRING, "", "\"\"", true },
    { PGP_TOML_STRING, "\xc3\x28", "invalid UTF-8 in \"\\xc3(\"", false },
    { PGP_TOML_ARRAY, "", "[]", true },
    { PGP_TOML_ARRAY, "  ", "[]", true },
    { PGP_TOML_ARRAY, "alice", "[\"alice\"]", true },
    { PGP_TOML_ARRAY, " alice ,\tbob, ", "[\"alice\", \"bob\"]", true },
    { PGP_TOML_ARRAY, "a,,b", "empty element in list \"a,,b\"", false },
    { PGP_TOML_ARRAY, ",a", "empty element in list", false },
};

START_TEST(test_toml_text)
{
    const struct text_case *c = &text_cases[_i];
    pgp_toml_value_t v;
    char err[ERRLEN] = "";
    int rc = pgp_toml_parse_text(c->type, c->in, &v, err, sizeof(err));
    if (!c->ok) {
        ck_assert_msg(rc == -1, "case %d parsed", _i);
        ck_assert_msg(strstr(err, c->out) != NULL, "case %d: got [%s]", _i, err);
        pgp_toml_value_free(&v);   /* left empty: harmless */
        return;
    }
    ck_assert_msg(rc == 0, "case %d: %s", _i, err);
    ck_assert_int_eq(v.type, c->type);
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    pgp_toml_write_value(f, &v);
    fclose(f);
    ck_assert_str_eq(buf, c->out);
    free(buf);
    pgp_toml_value_free(&v);
}
END_TEST

START_TEST(test_toml_quote)
{
    char buf[128], tiny[8];
    char longs[200];
    pgp_toml_quote("a\"b\\c\n\x01", 7, buf, sizeof(buf));
    ck_assert_str_eq(buf, "\"a\\\"b\\\\c\\x0a\\x01\"");
    memset(longs, 'z', sizeof(longs));
    pgp_toml_quote(longs, sizeof(longs), buf, sizeof(buf));
    ck_assert_uint_eq(strlen(buf), 1 + 60 + 1 + 3);
    ck_assert_str_eq(buf + 62, "...");
    pgp_toml_quote(longs, sizeof(longs), tiny, sizeof(tiny));
    ck_assert_uint_lt(strlen(tiny), sizeof(tiny));
    ck_assert_str_eq(pgp_toml_type_name(PGP_TOML_BOOL), "a boolean");
}
END_TEST

/* ---- suite ------------------------------------------------------------------------ */

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_shipped_config_toml);
    tcase_add_test(tc, test_every_key_listed);
    tcase_add_test(tc, test_preset);
    tcase_add_loop_test(tc, test_good_snippets, 0, N(good_cases));
    tcase_add_loop_test(tc, test_bad_snippets, 0, N(bad_cases));
    tcase_add_test(tc, test_no_far_suggestion);
    tcase_add_test(tc, test_long_lines);
    tcase_add_test(tc, test_error_buffer_edges);
    tcase_add_test(tc, test_load_file_errors);
    tcase_add_loop_test(tc, test_env, 0, N(env_cases));
    tcase_add_test(tc, test_env_upstream_url_endpoint);
    tcase_add_test(tc, test_precedence);
    tcase_add_loop_test(tc, test_set, 0, N(set_cases));
    tcase_add_test(tc, test_admin_listen);
    tcase_add_test(tc, test_finish_checks);
    tcase_add_loop_test(tc, test_tls_key_sources, 0, N(tls_key_cases));
    tcase_add_loop_test(tc, test_tls_bad_values, 0, N(tls_bad_cases));
    tcase_add_loop_test(tc, test_unix_socket_mode, 0, N(mode_cases));
    tcase_add_loop_test(tc, test_finish_tls, 0, N(finish_tls_cases));
    tcase_add_test(tc, test_upstream_url_effective);
    tcase_add_test(tc, test_dump_roundtrip);
    tcase_add_loop_test(tc, test_endpoints, 0, N(ep_cases));
    tcase_add_test(tc, test_endpoint_limits);
    suite_add_tcase(s, tc);

    TCase *tt = tcase_create("toml");
    tcase_add_loop_test(tt, test_toml_values, 0, N(toml_cases));
    tcase_add_test(tt, test_toml_handler_error);
    tcase_add_loop_test(tt, test_toml_text, 0, N(text_cases));
    tcase_add_test(tt, test_toml_quote);
    suite_add_tcase(s, tt);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
