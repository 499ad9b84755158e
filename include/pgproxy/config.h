/*
 * config.h - pgproxy's configuration: defaults, config.toml, environment,
 * command-line flags, validation, and endpoint parsing.
 *
 * Every key is one row of a static table in config.c (section, name, type,
 * offset into pgp_config_t, default as text, range or allowed values,
 * validator); loading, environment, flags, validation and dump are
 * generic over that table (the libusual cfparser idea), and the TOML
 * syntax lives in toml.c.  Precedence is the caller's order of calls: pgp_config_init
 * (defaults) < pgp_config_load_file < pgp_config_apply_env <
 * pgp_config_set (flags), then pgp_config_finish.  Each load/env/set call
 * is all-or-nothing: on error the config is left exactly as it was, so a
 * SIGHUP reload can keep running on the old values.  Values are checked
 * (type, range, allowed values, endpoint syntax) when set, so errors name
 * the file and line, the variable or the flag.  This module does no I/O
 * besides reading the named file and writing the dump, keeps no global
 * state, and does not resolve host names.  Not thread-safe per config.
 */
#ifndef PGPROXY_CONFIG_H
#define PGPROXY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PGP_CONFIG_LISTEN_PORT 6433     /* proxy.listen when no port is given */
#define PGP_CONFIG_UPSTREAM_PORT 5432   /* proxy.upstream when no port is given */
#define PGP_CONFIG_ADMIN_PORT 9433      /* admin.listen when no port is given */
#define PGP_CONFIG_MAX_FILE_BYTES (16 * 1024 * 1024)
#define PGP_ENDPOINT_UNIX_PATH_MAX 107  /* sockaddr_un.sun_path minus its NUL */

typedef struct pgp_endpoint {
    char host[256];   /* hostname or IPv4/IPv6 literal without brackets; or a unix socket path */
    uint16_t port;
    bool is_unix;     /* host is a directory (libpq convention: socket = host/.s.PGSQL.<port>) or, with "unix:" prefix, a full socket path */
    bool is_socket_file;  /* is_unix only: host is the socket file itself ("unix:" form), port unused */
} pgp_endpoint_t;

/* A list of strings for array keys (admin.console_users, profiling.n_plus_one_ignore). */
typedef struct pgp_config_strlist {
    char **items;     /* owned, each NUL-terminated */
    size_t count;
} pgp_config_strlist_t;

typedef struct pgp_config {
    char *source_path;                 /* file loaded, or NULL */
    struct {
        char *listen;   pgp_endpoint_t listen_ep;    /* default "127.0.0.1:6433" */
        char *upstream; pgp_endpoint_t upstream_ep;  /* default "127.0.0.1:5432" */
        int64_t max_client_connections;  /* 1000, range 1..1000000 */
        int64_t connect_timeout_ms;      /* 5000, range 1..3600000 */
        int64_t shutdown_timeout_ms;     /* 30000, range 0..86400000 */
        int64_t max_message_bytes;       /* 1073741824 (1 GiB), range 1024..1073741824 */
        /* TLS toward the server (libpq's sslmode meanings).  A postgres:// URL in
         * proxy.upstream may carry sslmode, sslrootcert, sslcert, sslkey: after
         * pgp_config_finish these four hold the effective values.  Paths are
         * text only here: nothing is opened or checked on disk. */
        char *upstream_tls;              /* "disable": disable|prefer|require|verify-ca|
                                            verify-full */
        char *upstream_tls_ca_file;      /* "": CA bundle path, or "system" (system trust store);
                                            required by verify-ca / verify-full */
        char *upstream_tls_cert_file;    /* "": client certificate toward the server (mTLS) */
        char *upstream_tls_key_file;     /* "": its key; set both or neither */
        /* TLS for applications connecting to pgproxy. */
        char *client_tls;                /* "disable": disable|allow|require */
        char *client_tls_cert_file;      /* "": pgproxy's certificate for clients */
        char *client_tls_key_file;       /* "": its key; both needed unless client_tls = disable */
        char *unix_socket_mode;          /* "0770": octal, 3 or 4 digits 0-7, at most 0777 */
        int unix_socket_mode_bits;       /* not a key: unix_socket_mode parsed (0770 -> 504) */
    } proxy;
    struct {
        bool enabled;                    /* true: sessions track statements; false: pure relay */
        int64_t max_sql_bytes;           /* 16384, range 64..1048576: SQL captured per statement */
        char *preset;                    /* "development": development|production; sets the
                                            defaults of the three keys marked (preset) */
        double slow_query_threshold_ms;  /* (preset) dev 50, prod 200; range 0..86400000 */
        int64_t n_plus_one_threshold;    /* (preset) dev 3, prod 10; range 2..1000000 */
        int64_t max_history;             /* 1000, range 1..1000000: finished request profiles kept */
        int64_t request_gap_ms;          /* 250, range 1..3600000: idle gap closing a request */
        char *params;                    /* (preset) dev "values", prod "off": off|types|values */
        bool notify_client;              /* false: NoticeResponse to the app on an N+1 */
        pgp_config_strlist_t n_plus_one_ignore;  /* []: fingerprints (16 hex) the N+1 rules skip */
    } profiling;
    struct {
        char *sink;                      /* "sqlite": sqlite|postgres|none */
        char *sqlite_path;               /* "pgproxy.db" */
        char *dsn;                       /* "": libpq conninfo/URL of the postgres sink */
        int64_t queue_size;              /* 10000, range 1..10000000 */
        int64_t retention_rows;          /* 1000000, range 0 (never prune)..1e12 */
    } slow_log;
    struct {
        char *listen;   pgp_endpoint_t listen_ep;    /* default "127.0.0.1:9433"; "" disables;
                                                        TCP only (host:port, [v6]:port) */
        bool enabled;                                /* listen is not "" (set with listen_ep) */
        char *token;    /* "": no auth; else HTTP needs "Authorization: Bearer <token>" */
        char *dashboard_path;   /* (preset) dev "/debug/performance", prod "": HTML dashboard
                                   path ("" disables; JSON at <path>/json) */
        pgp_config_strlist_t console_users;  /* []: who may use the SQL console (database
                                                "pgproxy"); empty = any user, loopback only */
    } admin;
    struct {
        char *level;    /* "info": debug|info|warn|error */
        char *format;   /* "text": text|json */
    } log;
    /* Internal: which keys a file, the environment or a flag set (bit i = key i of the
     * table), so pgp_config_finish fills only the others from profiling.preset. */
    uint64_t explicit_keys[2];
} pgp_config_t;

/*
 * Fill `cfg` with the defaults (the *_ep fields are parsed too).  Strings
 * are owned by cfg (free with pgp_config_free).  Never fails; should an
 * allocation fail, the string stays NULL and pgp_config_finish reports it.
 */
void pgp_config_init(pgp_config_t *cfg);

/* Free what cfg owns and zero it; init again before reuse.  Idempotent. */
void pgp_config_free(pgp_config_t *cfg);

/*
 * Strict load of the TOML file `path` over the current values (keys not in
 * the file keep their value).  Returns 0 and sets cfg->source_path (owned
 * copy of path), or -1 with cfg unchanged and a one-line message in err:
 * "<path>:<line>: <what>" for content errors, e.g.
 *   config.toml:12: unknown key "listn" in [proxy] (did you mean "listen"?)
 *   config.toml:3: proxy.max_client_connections: expected an integer, got a string
 * or "<path>: <strerror>" when the file cannot be read.  `path` borrowed.
 */
int pgp_config_load_file(pgp_config_t *cfg, const char *path, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Same as pgp_config_load_file, from `len` bytes of `data` (any bytes,
 * embedded NULs are an error, not a crash); `name` (borrowed) is used in
 * messages.  cfg->source_path is not changed.
 */
int pgp_config_load_buffer(pgp_config_t *cfg, const char *name, const char *data, size_t len,
                           char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Apply PGPROXY_<SECTION>_<KEY> variables (upper case, e.g.
 * PGPROXY_PROXY_LISTEN, PGPROXY_LOG_LEVEL) and the alias PGPROXY_UPSTREAM
 * (= proxy.upstream; setting both to different values is an error) from
 * `envp`, a NULL-terminated environ-style array (borrowed).  Values are
 * text parsed by key type (see pgp_toml_parse_text).  Other variables are
 * ignored (DATABASE_URL is never read), and so is PGPROXY_CONFIG (main.c's
 * file name); any other unknown PGPROXY_* variable is an error with a
 * did-you-mean.  When a name appears twice the first wins, as with
 * getenv.  Returns 0, or -1 with cfg unchanged and e.g.
 *   environment PGPROXY_PROXY_MAX_CLIENT_CONNECTIONS: expected an integer, got "x"
 */
int pgp_config_apply_env(pgp_config_t *cfg, char *const *envp, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Set one key from text, e.g. ("proxy.listen", "127.0.0.1:7000"); both
 * non-NULL, borrowed.  The text is parsed by the key's type like an
 * environment value.  `origin` (borrowed, may be NULL = the key name)
 * names the source in messages, e.g. "--listen".  Returns 0, or -1 with
 * cfg unchanged and "<origin>: <what>".
 */
int pgp_config_set(pgp_config_t *cfg, const char *dotted_key, const char *value,
                   const char *origin, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Check every key (ranges, allowed values, endpoints) and parse
 * proxy.listen / proxy.upstream into listen_ep / upstream_ep (default ports
 * 6433 / 5432) and proxy.unix_socket_mode into unix_socket_mode_bits.
 * Also rejects listen == upstream (pgproxy would connect to itself).
 * When proxy.upstream is a postgres:// URL, its percent-decoded sslmode,
 * sslrootcert, sslcert and sslkey give proxy.upstream_tls,
 * upstream_tls_ca_file, upstream_tls_cert_file and upstream_tls_key_file;
 * a key that a source also set explicitly must agree with the URL.  Those
 * four keys, when no source set them, take the URL's value or else their
 * default (like the profiling.preset keys: set them with pgp_config_set,
 * not by editing the fields).  TLS cross-checks: cert and key files come in
 * pairs, client_tls other than "disable" needs pgproxy's cert and key,
 * verify-ca / verify-full need upstream_tls_ca_file.  No file is opened.
 * Returns 0, or -1 with a one-line message naming the key in err (e.g.
 * "proxy.upstream_tls = \"disable\" conflicts with sslmode=require in
 * proxy.upstream"); cfg may then be partly updated (free it).
 */
int pgp_config_finish(pgp_config_t *cfg, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/*
 * Parse a fingerprint as printed by pgproxy (exactly 16 hex digits, either
 * case) into *out.  Returns 0, or -1 (out untouched).  Any thread.
 */
int pgp_config_parse_fingerprint(const char *text, uint64_t *out)
    __attribute__((warn_unused_result));

/*
 * Print the effective config to f as TOML that pgp_config_load_* accepts:
 * one [section] per section, every key with its value.
 */
void pgp_config_dump(const pgp_config_t *cfg, FILE *f);

/*
 * Call fn(ud, section, name, value) for every key in table order; value is
 * the TOML text of the effective value (borrowed for the call), or
 * "(set, not shown)" for a secret (admin.token, slow_log.dsn) that is set.
 * Stops at the first nonzero return and returns it; 0 when done, -1 when
 * out of memory.  For SHOW CONFIG.
 */
typedef int (*pgp_config_visit_fn)(void *ud, const char *section, const char *name,
                                   const char *value);
int pgp_config_foreach(const pgp_config_t *cfg, pgp_config_visit_fn fn, void *ud);

/*
 * Parse an endpoint (text borrowed, *out written only on success):
 *   "host:port", "host" (port = default_port), "[v6]:port", "[v6]" (IPv6
 *   needs brackets: "::1:5432" would be ambiguous; "%zone" allowed),
 *   "/dir" (unix socket directory, libpq convention, port = default_port),
 *   "unix:/path/to/socket" (the socket file itself),
 *   "postgres://[user[:pw]@]host[:port][/db][?query]" or "postgresql://..."
 *   (host may be [v6] or a percent-encoded unix directory such as %2Ftmp;
 *   the query parameters host= and port= are honoured as in libpq, the
 *   rest is ignored here; pgp_config_finish reads sslmode, sslrootcert,
 *   sslcert and sslkey of proxy.upstream).
 * Host names are checked for syntax only (no DNS).  Returns 0, or -1 with
 * a message such as `invalid port in "x:99999"`.
 */
int pgp_endpoint_parse(const char *text, uint16_t default_port, pgp_endpoint_t *out,
                       char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Format for messages: "127.0.0.1:5432", "[::1]:5432", "/tmp/.s.PGSQL.5432",
 * "/run/pg.sock".  Always NUL-terminates when buflen > 0 (may truncate).
 */
void pgp_endpoint_format(const pgp_endpoint_t *ep, char *buf, size_t buflen);

/*
 * For a unix endpoint, write the socket file path ("dir/.s.PGSQL.<port>"
 * or the "unix:" path) into buf.  Returns 0, or -1 when ep is not unix or
 * the path does not fit in buflen or in PGP_ENDPOINT_UNIX_PATH_MAX.
 */
int pgp_endpoint_socket_path(const pgp_endpoint_t *ep, char *buf, size_t buflen)
    __attribute__((warn_unused_result));

#endif
