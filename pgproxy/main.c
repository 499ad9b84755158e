/*
 * main.c - the pgproxy command: argument parsing, configuration assembly
 * (defaults < file < environment < flags), subcommand dispatch, and the
 * proxy's event loop.  Exit codes: 0 ok, 1 runtime failure, 2 usage or
 * configuration error.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "pgproxy/admin.h"
#include "pgproxy/api.h"
#include "pgproxy/clock.h"
#include "pgproxy/config.h"
#include "pgproxy/demo.h"
#include "pgproxy/dial.h"
#include "pgproxy/log.h"
#include "pgproxy/normalize.h"
#include "pgproxy/observe.h"
#include "pgproxy/relay.h"
#include "pgproxy/registry.h"
#include "pgproxy/server.h"
#include "pgproxy/slowlog.h"
#include "pgproxy/store.h"
#include <sys/resource.h>
#include <unistd.h>

extern char **environ;

/* A command-line flag that sets a config key. */
typedef struct flag_setting {
    const char *key;
    const char *value;
    const char *origin;
} flag_setting_t;

#define MAX_FLAG_SETTINGS 16

/* Everything needed to build (and on SIGHUP rebuild) the configuration. */
typedef struct config_sources {
    const char *path;
    flag_setting_t flags[MAX_FLAG_SETTINGS];
    int flag_count;
} config_sources_t;

static void usage(FILE *f)
{
    fputs("usage: pgproxy [-c FILE] [--listen HOST:PORT] [--upstream HOST:PORT|postgres://...]\n"
          "               [--admin HOST:PORT] [--log-level LEVEL] [--log-format text|json]\n"
          "       pgproxy --check-config [-c FILE]   validate and print the effective config\n"
          "       pgproxy normalize [--null] [FILE...]\n"
          "                                          fingerprint and normalized text per SQL\n"
          "       pgproxy clock [--json]             timer source, frequency, read cost\n"
          "       pgproxy demo [--no-wait] [--keep] [--port N]\n"
          "                                          throwaway Postgres + pgproxy + a workload\n"
          "       pgproxy --version | --help\n"
          "\n"
          "Configuration: defaults < FILE < PGPROXY_<SECTION>_<KEY> environment < flags.\n"
          "PGPROXY_CONFIG names the file when -c is not given.  See config.toml.\n",
          f);
}

/* Build a finished config from the sources; on failure print why and return -1. */
static int build_config(const config_sources_t *src, pgp_config_t *cfg)
{
    char err[512];
    pgp_config_init(cfg);
    if (src->path != NULL && pgp_config_load_file(cfg, src->path, err, sizeof(err)) < 0)
        goto fail;
    if (pgp_config_apply_env(cfg, environ, err, sizeof(err)) < 0)
        goto fail;
    for (int i = 0; i < src->flag_count; i++) {
        const flag_setting_t *f = &src->flags[i];
        if (pgp_config_set(cfg, f->key, f->value, f->origin, err, sizeof(err)) < 0)
            goto fail;
    }
    if (pgp_config_finish(cfg, err, sizeof(err)) < 0)
        goto fail;
    return 0;
fail:
    fprintf(stderr, "pgproxy: %s\n", err);
    pgp_config_free(cfg);
    return -1;
}

static int apply_log_config(const pgp_config_t *cfg)
{
    pgp_log_level_t level;
    pgp_log_format_t format;
    if (pgp_log_level_parse(cfg->log.level, &level) < 0 ||
        pgp_log_format_parse(cfg->log.format, &format) < 0)
        return -1;
    pgp_log_configure(level, format);
    return 0;
}

typedef struct reload_ctx {
    const config_sources_t *src;
    pgp_config_t *live;
    pgp_observer_t *obs;
    pgp_profile_store_t *store;
} reload_ctx_t;

static void swap_str(char **a, char **b)
{
    char *t = *a;
    *a = *b;
    *b = t;
}

static uint64_t slow_threshold_ns(const pgp_config_t *cfg)
{
    return (uint64_t)(cfg->profiling.slow_query_threshold_ms * 1e6);
}

/* The TLS modes and file names (the files themselves are re-read on SIGHUP by the server). */
static bool tls_settings_differ(const pgp_config_t *a, const pgp_config_t *b)
{
    const char *const x[] = { a->proxy.upstream_tls, a->proxy.upstream_tls_ca_file,
                              a->proxy.upstream_tls_cert_file, a->proxy.upstream_tls_key_file,
                              a->proxy.client_tls, a->proxy.client_tls_cert_file,
                              a->proxy.client_tls_key_file, a->proxy.unix_socket_mode };
    const char *const y[] = { b->proxy.upstream_tls, b->proxy.upstream_tls_ca_file,
                              b->proxy.upstream_tls_cert_file, b->proxy.upstream_tls_key_file,
                              b->proxy.client_tls, b->proxy.client_tls_cert_file,
                              b->proxy.client_tls_key_file, b->proxy.unix_socket_mode };
    for (size_t i = 0; i < sizeof(x) / sizeof(x[0]); i++)
        if (strcmp(x[i], y[i]) != 0)
            return true;
    return false;
}

/* SIGHUP: rebuild from the same sources; apply what can change live. */
static void on_reload(void *ud)
{
    reload_ctx_t *ctx = ud;
    pgp_config_t fresh;
    if (build_config(ctx->src, &fresh) < 0) {
        pgp_log(PGP_LOG_ERROR, "reload failed: keeping the current configuration", NULL);
        return;
    }
    pgp_config_t *live = ctx->live;
    if (strcmp(fresh.proxy.listen, live->proxy.listen) != 0 ||
        strcmp(fresh.proxy.upstream, live->proxy.upstream) != 0 ||
        strcmp(fresh.admin.listen, live->admin.listen) != 0 ||
        strcmp(fresh.admin.token, live->admin.token) != 0)
        pgp_log(PGP_LOG_WARN, "proxy.listen, proxy.upstream and admin.* change only on restart",
                NULL);
    if (tls_settings_differ(&fresh, live))
        pgp_log(PGP_LOG_WARN,
                "proxy.*tls* settings change only on restart (SIGHUP re-reads the files they name)",
                NULL);
    swap_str(&live->log.level, &fresh.log.level);
    swap_str(&live->log.format, &fresh.log.format);
    live->proxy.max_client_connections = fresh.proxy.max_client_connections;
    live->proxy.connect_timeout_ms = fresh.proxy.connect_timeout_ms;
    live->proxy.shutdown_timeout_ms = fresh.proxy.shutdown_timeout_ms;
    live->proxy.max_message_bytes = fresh.proxy.max_message_bytes;
    live->profiling.enabled = fresh.profiling.enabled;
    live->profiling.max_sql_bytes = fresh.profiling.max_sql_bytes;
    swap_str(&live->profiling.preset, &fresh.profiling.preset);
    live->profiling.slow_query_threshold_ms = fresh.profiling.slow_query_threshold_ms;
    live->profiling.n_plus_one_threshold = fresh.profiling.n_plus_one_threshold;
    live->profiling.max_history = fresh.profiling.max_history;
    live->profiling.request_gap_ms = fresh.profiling.request_gap_ms;
    swap_str(&live->profiling.params, &fresh.profiling.params);
    live->profiling.notify_client = fresh.profiling.notify_client;
    pgp_config_strlist_t ignore = live->profiling.n_plus_one_ignore;
    live->profiling.n_plus_one_ignore = fresh.profiling.n_plus_one_ignore;
    fresh.profiling.n_plus_one_ignore = ignore;
    if (strcmp(fresh.slow_log.sink, live->slow_log.sink) != 0 ||
        strcmp(fresh.slow_log.sqlite_path, live->slow_log.sqlite_path) != 0 ||
        strcmp(fresh.slow_log.dsn, live->slow_log.dsn) != 0 ||
        fresh.slow_log.queue_size != live->slow_log.queue_size ||
        fresh.slow_log.retention_rows != live->slow_log.retention_rows)
        pgp_log(PGP_LOG_WARN, "slow_log.* changes only on restart", NULL);
    pgp_config_free(&fresh);
    pgp_observer_set_slow_threshold_ns(ctx->obs, slow_threshold_ns(live));
    if (ctx->store != NULL)
        pgp_profile_store_set_max_history(ctx->store, (size_t)live->profiling.max_history);
    (void)apply_log_config(live);
    pgp_log(PGP_LOG_INFO, "configuration reloaded", "log_level", live->log.level, NULL);
}

static int add_flag(config_sources_t *src, const char *key, const char *value,
                    const char *origin)
{
    if (src->flag_count >= MAX_FLAG_SETTINGS) {
        fprintf(stderr, "pgproxy: too many options\n");
        return -1;
    }
    src->flags[src->flag_count++] = (flag_setting_t){ key, value, origin };
    return 0;
}

/* What the admin thread may read: the observer (locked/atomic) and immutable config. */
typedef struct admin_ctx {
    pgp_observer_t *obs;
    const pgp_config_t *cfg;
    pgp_api_t api;
} admin_ctx_t;

static int provide_route(void *ud, const pgp_admin_request_t *req, pgp_admin_response_t *resp)
{
    admin_ctx_t *a = ud;
    return pgp_api_route(&a->api, req, resp);
}

static int provide_metrics(void *ud, pgp_render_t *out)
{
    admin_ctx_t *a = ud;
    return pgp_observer_render_metrics(a->obs, out);
}

static int provide_queries(void *ud, const pgp_admin_request_t *req,
                           const pgp_admin_queries_args_t *args, pgp_render_t *out)
{
    admin_ctx_t *a = ud;
    static const char *const orders[] = { "total", "mean", "calls" };
    (void)req;
    return pgp_observer_render_queries(a->obs, orders[args->order], args->limit, out);
}

/* Ready = the upstream accepts connections (a TCP/unix connect from the admin thread). */
static int provide_ready(void *ud, char *why, size_t cap)
{
    admin_ctx_t *a = ud;
    return pgp_dial_probe(&a->cfg->proxy.upstream_ep, 1000, why, cap) == 0 ? 1 : 0;
}

/*
 * Every client session holds two descriptors (client and upstream), the
 * admin server up to PGP_ADMIN_MAX_CONNECTIONS more: raise the soft
 * RLIMIT_NOFILE toward the hard limit so proxy.max_client_connections is
 * reachable, and say so when even the hard limit is too low.
 */
static void raise_fd_limit(const pgp_config_t *cfg)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)cfg->proxy.max_client_connections * 2 + PGP_ADMIN_MAX_CONNECTIONS + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rlim_t cur = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        rl.rlim_cur = cur;
    if (rl.rlim_cur < want) {
        char have[24], need[24];
        snprintf(have, sizeof(have), "%llu", (unsigned long long)rl.rlim_cur);
        snprintf(need, sizeof(need), "%llu", (unsigned long long)want);
        pgp_log(PGP_LOG_WARN, "open-file limit below what proxy.max_client_connections needs",
                "limit", have, "needed", need, NULL);
    }
}

/* How long SIGTERM waits for the slow-query sink to write what is queued. */
#define SLOWLOG_FLUSH_TIMEOUT_MS 10000u

/* The slow-query log the config asks for; NULL (after a log line) when it cannot be made. */
static pgp_slowlog_t *open_slowlog(const pgp_config_t *cfg)
{
    char host[128] = "", instance[300], err[256] = "";
    if (gethostname(host, sizeof(host) - 1) != 0)
        snprintf(host, sizeof(host), "pgproxy");
    snprintf(instance, sizeof(instance), "%s:%u", host, cfg->proxy.listen_ep.port);
    pgp_slowlog_config_t sc = {
        .sink = strcmp(cfg->slow_log.sink, "postgres") == 0 ? PGP_SLOWLOG_POSTGRES
                : strcmp(cfg->slow_log.sink, "sqlite") == 0 ? PGP_SLOWLOG_SQLITE
                                                            : PGP_SLOWLOG_NONE,
        .sqlite_path = cfg->slow_log.sqlite_path,
        .dsn = cfg->slow_log.dsn,
        .queue_size = (size_t)cfg->slow_log.queue_size,
        .retention_rows = (uint64_t)cfg->slow_log.retention_rows,
        .max_sql_bytes = (size_t)cfg->profiling.max_sql_bytes,
        .proxy_instance = instance,
        .recent_size = 200,
    };
    pgp_slowlog_t *log = pgp_slowlog_create(&sc, err, sizeof(err));
    if (log == NULL)
        pgp_log(PGP_LOG_ERROR, "slow-query log", "sink", cfg->slow_log.sink, "error", err, NULL);
    return log;
}

static int run_proxy(const config_sources_t *src)
{
    pgp_config_t cfg;
    pgp_observer_t *obs = NULL;
    pgp_admin_t *admin = NULL;
    pgp_registry_t *registry = NULL;
    pgp_profile_store_t *store = NULL;
    pgp_slowlog_t *slowlog = NULL;
    uv_loop_t loop;
    int code = 1;

    if (build_config(src, &cfg) < 0)
        return 2;
    if (apply_log_config(&cfg) < 0) {
        pgp_config_free(&cfg);
        return 2;
    }
    int crc = pgp_clock_init();
    if (crc == -EINVAL) {
        pgp_log(PGP_LOG_WARN, "clock: unknown PGPROXY_CLOCK value ignored (use monotonic or auto)",
                NULL);
    } else if (crc < 0) {
        pgp_log(PGP_LOG_ERROR, "clock: CLOCK_MONOTONIC unreadable", NULL);
        pgp_config_free(&cfg);
        return 1;
    }
    pgp_log(PGP_LOG_INFO, "clock", "source", pgp_clock_describe(), NULL);
    raise_fd_limit(&cfg);
    obs = pgp_observer_create((size_t)cfg.profiling.max_sql_bytes, PGP_OBSERVE_MAX_FINGERPRINTS);
    registry = pgp_registry_create();
    if (cfg.profiling.enabled) {
        store = pgp_profile_store_create((size_t)cfg.profiling.max_history);
        slowlog = open_slowlog(&cfg);
    }
    if (obs == NULL || registry == NULL || (cfg.profiling.enabled && store == NULL) ||
        (cfg.profiling.enabled && slowlog == NULL) || uv_loop_init(&loop) < 0) {
        pgp_slowlog_destroy(slowlog, 0);
        pgp_profile_store_destroy(store);
        pgp_registry_destroy(registry);
        pgp_observer_destroy(obs);
        pgp_config_free(&cfg);
        return 1;
    }
    pgp_observer_attach(obs, store, slowlog, registry);
    pgp_observer_set_slow_threshold_ns(obs, slow_threshold_ns(&cfg));
    reload_ctx_t ctx = { src, &cfg, obs, store };
    pgp_server_t srv;
    if (pgp_server_start(&srv, &loop, &cfg, obs, on_reload, &ctx) != 0)
        goto out;
    admin_ctx_t actx = { obs, &cfg, { obs, &cfg, cfg.admin.dashboard_path,
                                      pgp_clock_to_wall_ns(pgp_clock_now()) } };
    /* 4 MiB of JSON per SHOW bounds a console query near 50 MB (json-c's tree). */
    pgp_console_providers_t console = { &actx.api, pgp_api_console_json, pgp_api_console_reset,
                                        4u << 20 };
    srv.console = &console;
    if (cfg.admin.enabled) {
        pgp_admin_providers_t prov;
        memset(&prov, 0, sizeof(prov));
        prov.ud = &actx;
        prov.metrics = provide_metrics;
        prov.queries = provide_queries;
        prov.ready = provide_ready;
        prov.route = provide_route;
        prov.public_path = cfg.admin.dashboard_path;
        if (pgp_admin_start(&admin, &cfg.admin.listen_ep, cfg.admin.token, &prov) < 0) {
            pgp_server_drain(&srv);
            goto out;
        }
    }
    code = pgp_server_run(&srv);
out:
    /* Let every close callback run before the loop goes away. */
    uv_run(&loop, UV_RUN_DEFAULT);
    (void)uv_loop_close(&loop);
    pgp_server_free(&srv);
    if (admin != NULL)
        pgp_admin_stop(admin);
    pgp_chunk_pool_drain();
    /* Sessions are gone (their profiles are in the store): write what is queued. */
    pgp_slowlog_destroy(slowlog, SLOWLOG_FLUSH_TIMEOUT_MS);
    pgp_observer_attach(obs, NULL, NULL, NULL);
    pgp_profile_store_destroy(store);
    pgp_registry_destroy(registry);
    pgp_observer_destroy(obs);
    pgp_config_free(&cfg);
    return code;
}

enum { OPT_LISTEN = 256, OPT_UPSTREAM, OPT_ADMIN, OPT_LOG_LEVEL, OPT_LOG_FORMAT, OPT_CHECK, OPT_VERSION };

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);

    if (argc >= 2 && strcmp(argv[1], "demo") == 0)
        return pgp_demo_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "clock") == 0)
        return pgp_clock_main(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "normalize") == 0)
        return pgp_normalize_main(argc - 1, argv + 1);

    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "listen", required_argument, NULL, OPT_LISTEN },
        { "upstream", required_argument, NULL, OPT_UPSTREAM },
        { "admin", required_argument, NULL, OPT_ADMIN },
        { "log-level", required_argument, NULL, OPT_LOG_LEVEL },
        { "log-format", required_argument, NULL, OPT_LOG_FORMAT },
        { "check-config", no_argument, NULL, OPT_CHECK },
        { "version", no_argument, NULL, OPT_VERSION },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    config_sources_t src;
    memset(&src, 0, sizeof(src));
    src.path = getenv("PGPROXY_CONFIG");
    if (src.path != NULL && src.path[0] == '\0')
        src.path = NULL;
    bool check = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        int r = 0;
        switch (c) {
        case 'c':
            src.path = optarg;
            break;
        case OPT_LISTEN:
            r = add_flag(&src, "proxy.listen", optarg, "--listen");
            break;
        case OPT_UPSTREAM:
            r = add_flag(&src, "proxy.upstream", optarg, "--upstream");
            break;
        case OPT_ADMIN:
            r = add_flag(&src, "admin.listen", optarg, "--admin");
            break;
        case OPT_LOG_LEVEL:
            r = add_flag(&src, "log.level", optarg, "--log-level");
            break;
        case OPT_LOG_FORMAT:
            r = add_flag(&src, "log.format", optarg, "--log-format");
            break;
        case OPT_CHECK:
            check = true;
            break;
        case OPT_VERSION:
            printf("pgproxy %s\n", PGP_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (r < 0)
            return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "pgproxy: unknown command \"%s\"\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (check) {
        pgp_config_t cfg;
        if (build_config(&src, &cfg) < 0)
            return 2;
        pgp_config_dump(&cfg, stdout);
        pgp_config_free(&cfg);
        return 0;
    }
    return run_proxy(&src);
}
