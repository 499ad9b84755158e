/*
 * config.c - pgproxy's key table and the generic machinery over it.
 *
 * One row of `keys[]` per configuration key: section, name, type, offset in
 * pgp_config_t, default as text, range or allowed values, an optional
 * validator and environment alias.  Defaults, file loading (via toml.c),
 * environment, flags, validation, copying and dumping are written once
 * against the table, so a future key (a float, a bool, an array of strings)
 * is one more row and one more struct field.  Every change is made on a
 * staging copy that replaces the caller's config only on success.  Also
 * here: endpoint syntax (host:port, [v6]:port, unix directories and paths,
 * postgres:// URLs, whose sslmode/sslrootcert/sslcert/sslkey fill the
 * upstream TLS keys at pgp_config_finish), which checks text only: it never
 * resolves names and never opens certificate files.
 */
#include "pgproxy/config.h"

#include "pgproxy/toml.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

typedef struct cfg_key {
    const char *section;
    const char *name;
    pgp_toml_type_t type;      /* STRING -> char *, INTEGER -> int64_t, FLOAT -> double,
                                  BOOL -> bool, ARRAY -> pgp_config_strlist_t */
    size_t offset;             /* of the field in pgp_config_t */
    const char *def;           /* default, as text (parsed like an environment value) */
    int64_t min, max;          /* INTEGER range, inclusive */
    double fmin, fmax;         /* FLOAT range, inclusive */
    const char *const *choices;   /* STRING: allowed values, NULL-terminated; NULL = any */
    int (*check)(const char *value, char *what, size_t whatlen);   /* STRING: extra check */
    const char *env_alias;     /* extra environment name, or NULL */
    bool preset;               /* default comes from profiling.preset (see apply_preset) */
    bool secret;               /* STRING: pgp_config_foreach hides a non-empty value */
} cfg_key_t;

#define KEY(sec, key, ty, def_, ...)                                           \
    { .section = #sec, .name = #key, .type = (ty),                             \
      .offset = offsetof(pgp_config_t, sec.key), .def = (def_), __VA_ARGS__ }

static int check_listen(const char *value, char *what, size_t whatlen);
static int check_upstream(const char *value, char *what, size_t whatlen);
static int check_admin_listen(const char *value, char *what, size_t whatlen);
static int check_upstream_tls(const char *value, char *what, size_t whatlen);
static int check_socket_mode(const char *value, char *what, size_t whatlen);
static int parse_socket_mode(const char *text, int *bits);

static const char *const log_levels[] = { "debug", "info", "warn", "error", NULL };
static const char *const log_formats[] = { "text", "json", NULL };
static const char *const presets[] = { "development", "production", NULL };
static const char *const params_modes[] = { "off", "types", "values", NULL };
static const char *const sinks[] = { "sqlite", "postgres", "none", NULL };
/* libpq's sslmode values, less "allow" (plaintext first, TLS only if the server insists). */
static const char *const upstream_tls_modes[] = { "disable", "prefer", "require", "verify-ca",
                                                  "verify-full", NULL };
static const char *const client_tls_modes[] = { "disable", "allow", "require", NULL };
static int check_dashboard_path(const char *value, char *what, size_t whatlen);

/* The order here is the order of sections and keys in messages and dumps. */
static const cfg_key_t keys[] = {
    KEY(proxy, listen, PGP_TOML_STRING, "127.0.0.1:6433", .check = check_listen),
    KEY(proxy, upstream, PGP_TOML_STRING, "127.0.0.1:5432", .check = check_upstream,
        .env_alias = "PGPROXY_UPSTREAM"),
    KEY(proxy, max_client_connections, PGP_TOML_INTEGER, "1000", .min = 1, .max = 1000000),
    KEY(proxy, connect_timeout_ms, PGP_TOML_INTEGER, "5000", .min = 1, .max = 3600000),
    KEY(proxy, shutdown_timeout_ms, PGP_TOML_INTEGER, "30000", .min = 0, .max = 86400000),
    KEY(proxy, max_message_bytes, PGP_TOML_INTEGER, "1073741824",
        .min = 1024, .max = 1073741824),
    KEY(proxy, upstream_tls, PGP_TOML_STRING, "disable", .check = check_upstream_tls),
    KEY(proxy, upstream_tls_ca_file, PGP_TOML_STRING, ""),
    KEY(proxy, upstream_tls_cert_file, PGP_TOML_STRING, ""),
    KEY(proxy, upstream_tls_key_file, PGP_TOML_STRING, ""),
    KEY(proxy, client_tls, PGP_TOML_STRING, "disable", .choices = client_tls_modes),
    KEY(proxy, client_tls_cert_file, PGP_TOML_STRING, ""),
    KEY(proxy, client_tls_key_file, PGP_TOML_STRING, ""),
    KEY(proxy, unix_socket_mode, PGP_TOML_STRING, "0770", .check = check_socket_mode),
    KEY(profiling, enabled, PGP_TOML_BOOL, "true"),
    KEY(profiling, max_sql_bytes, PGP_TOML_INTEGER, "16384", .min = 64, .max = 1048576),
    KEY(profiling, preset, PGP_TOML_STRING, "development", .choices = presets),
    KEY(profiling, slow_query_threshold_ms, PGP_TOML_FLOAT, "50", .fmin = 0, .fmax = 86400000,
        .preset = true),
    KEY(profiling, n_plus_one_threshold, PGP_TOML_INTEGER, "3", .min = 2, .max = 1000000,
        .preset = true),
    KEY(profiling, max_history, PGP_TOML_INTEGER, "1000", .min = 1, .max = 1000000),
    KEY(profiling, request_gap_ms, PGP_TOML_INTEGER, "250", .min = 1, .max = 3600000),
    KEY(profiling, params, PGP_TOML_STRING, "values", .choices = params_modes, .preset = true),
    KEY(profiling, notify_client, PGP_TOML_BOOL, "false"),
    KEY(profiling, n_plus_one_ignore, PGP_TOML_ARRAY, ""),
    KEY(slow_log, sink, PGP_TOML_STRING, "sqlite", .choices = sinks),
    KEY(slow_log, sqlite_path, PGP_TOML_STRING, "pgproxy.db"),
    KEY(slow_log, dsn, PGP_TOML_STRING, "", .secret = true),
    KEY(slow_log, queue_size, PGP_TOML_INTEGER, "10000", .min = 1, .max = 10000000),
    KEY(slow_log, retention_rows, PGP_TOML_INTEGER, "1000000", .min = 0,
        .max = 1000000000000),
    KEY(admin, listen, PGP_TOML_STRING, "127.0.0.1:9433", .check = check_admin_listen),
    KEY(admin, token, PGP_TOML_STRING, "", .secret = true),
    KEY(admin, dashboard_path, PGP_TOML_STRING, "/debug/performance",
        .check = check_dashboard_path, .preset = true),
    KEY(admin, console_users, PGP_TOML_ARRAY, ""),
    KEY(log, level, PGP_TOML_STRING, "info", .choices = log_levels),
    KEY(log, format, PGP_TOML_STRING, "text", .choices = log_formats),
};

#define KEY_COUNT (sizeof(keys) / sizeof(keys[0]))

#define ENV_PREFIX "PGPROXY_"
#define SUGGEST_MAX_DISTANCE 3

/*
 * The TLS parameters a postgres:// URL in proxy.upstream may carry, and the
 * key each one sets (DESIGN 3.1).  Other query parameters are ignored.
 */
static const struct { const char *param, *key; } url_tls_params[] = {
    { "sslmode", "upstream_tls" },
    { "sslrootcert", "upstream_tls_ca_file" },
    { "sslcert", "upstream_tls_cert_file" },
    { "sslkey", "upstream_tls_key_file" },
};
#define URL_TLS_COUNT (sizeof(url_tls_params) / sizeof(url_tls_params[0]))
#define URL_VALUE_MAX 4096   /* decoded bytes of one URL parameter (a path) */

typedef struct url_tls {
    bool found[URL_TLS_COUNT];                  /* present with a non-empty value */
    char value[URL_TLS_COUNT][URL_VALUE_MAX + 1];   /* percent-decoded */
} url_tls_t;

static int url_tls_read(const char *text, url_tls_t *out, char *what, size_t whatlen);
static void show_value(const char *s, char *buf, size_t n);

static void msgf(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void msgf(char *buf, size_t n, const char *fmt, ...)
{
    if (buf == NULL || n == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
}

static void *slot(pgp_config_t *cfg, const cfg_key_t *k) { return (char *)cfg + k->offset; }

static const void *cslot(const pgp_config_t *cfg, const cfg_key_t *k)
{
    return (const char *)cfg + k->offset;
}

/* ---- did-you-mean ---------------------------------------------------- */

static char ascii_lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

/* Levenshtein distance, ASCII case-insensitive; SIZE_MAX when too long to bother. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[81];
    if (la > 64 || lb >= sizeof(row) / sizeof(row[0]))
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (ascii_lower(a[i - 1]) != ascii_lower(b[j - 1]));
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

typedef struct suggestion {
    char text[96];
    size_t dist;
} suggestion_t;

static void suggest_init(suggestion_t *s)
{
    s->text[0] = '\0';
    s->dist = SIZE_MAX;
}

/* Keep `cand` (formatted like "[proxy]" or "\"listen\"") if it is the closest so far. */
static void suggest_consider(suggestion_t *s, const char *input, const char *cmp,
                             const char *shown)
{
    size_t d = edit_distance(input, cmp);
    if (d <= SUGGEST_MAX_DISTANCE && d < s->dist) {
        size_t n = strnlen(shown, sizeof(s->text) - 1);
        s->dist = d;
        memcpy(s->text, shown, n);
        s->text[n] = '\0';
    }
}

/* " (did you mean X?)" or "" */
static void suggest_render(const suggestion_t *s, char *buf, size_t n)
{
    if (s->dist == SIZE_MAX)
        msgf(buf, n, "%s", "");
    else
        msgf(buf, n, " (did you mean %s?)", s->text);
}

/* ---- table lookups ----------------------------------------------------- */

/* Index of the first key of section `name`, or -1.  Sections are named by that index. */
static int find_section(const char *name)
{
    for (size_t i = 0; i < KEY_COUNT; i++)
        if (strcmp(keys[i].section, name) == 0)
            return (int)i;
    return -1;
}

static bool is_section_start(size_t i)
{
    return i == 0 || strcmp(keys[i - 1].section, keys[i].section) != 0;
}

static int find_key(const char *section, const char *name)
{
    for (size_t i = 0; i < KEY_COUNT; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* "PGPROXY_PROXY_LISTEN" */
static void env_name(const cfg_key_t *k, char *buf, size_t n)
{
    size_t o = 0;
    const char *parts[3] = { ENV_PREFIX, k->section, k->name };
    for (int p = 0; p < 3; p++) {
        if (p == 2 && o + 1 < n)
            buf[o++] = '_';
        for (const char *c = parts[p]; *c != '\0' && o + 1 < n; c++)
            buf[o++] = *c >= 'a' && *c <= 'z' ? (char)(*c - 'a' + 'A') : *c;
    }
    buf[o] = '\0';
}

/* A section or key name for messages: bare names as-is, others quoted and escaped. */
static void show_name(const char *s, char *buf, size_t n)
{
    bool bare = *s != '\0' && strlen(s) <= 60;
    for (const char *c = s; *c != '\0' && bare; c++)
        bare = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
               (*c >= '0' && *c <= '9') || *c == '_' || *c == '-' || *c == '.';
    if (bare)
        msgf(buf, n, "%s", s);
    else
        pgp_toml_quote(s, strlen(s), buf, n);
}

/* ---- per-key value handling ------------------------------------------- */

static const char *expected_name(const cfg_key_t *k)
{
    switch (k->type) {
    case PGP_TOML_FLOAT: return "a number";
    case PGP_TOML_ARRAY: return "an array of strings";
    default: return pgp_toml_type_name(k->type);
    }
}

static void strlist_free(pgp_config_strlist_t *l)
{
    for (size_t i = 0; i < l->count; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

static void key_free(pgp_config_t *cfg, const cfg_key_t *k)
{
    if (k->type == PGP_TOML_STRING) {
        char **s = slot(cfg, k);
        free(*s);
        *s = NULL;
    } else if (k->type == PGP_TOML_ARRAY) {
        strlist_free(slot(cfg, k));
    }
}

/*
 * 0 when s is one of choices (NULL-terminated); else -1 and
 * `"x" is not one of a, b, c (did you mean "a"?)` in what.  `shown_as`
 * (NULL = `"x"` quoted) replaces the value's rendering, `closest` (NULL =
 * nearest by edit distance) the suggestion.
 */
static int check_choice(const char *s, const char *const *choices, const char *shown_as,
                        const char *closest, char *what, size_t n)
{
    char q[96], list[256] = "", hint[128];
    suggestion_t sg;
    size_t o = 0;
    suggest_init(&sg);
    for (const char *const *c = choices; *c != NULL; c++) {
        if (strcmp(s, *c) == 0)
            return 0;
        int w = snprintf(list + o, sizeof(list) - o, "%s%s", o ? ", " : "", *c);
        if (w > 0 && (size_t)w < sizeof(list) - o)
            o += (size_t)w;
        char shown[80];
        pgp_toml_quote(*c, strlen(*c), shown, sizeof(shown));
        if (closest == NULL)
            suggest_consider(&sg, s, *c, shown);
        else if (strcmp(closest, *c) == 0)
            suggest_consider(&sg, *c, *c, shown);
    }
    if (shown_as != NULL)
        msgf(q, sizeof(q), "%s", shown_as);
    else
        pgp_toml_quote(s, strlen(s), q, sizeof(q));
    suggest_render(&sg, hint, sizeof(hint));
    msgf(what, n, "%s is not one of %s%s", q, list, hint);
    return -1;
}

/* Check the stored value of k: range, allowed values, validator. */
static int key_check(const pgp_config_t *cfg, const cfg_key_t *k, char *what, size_t n)
{
    switch (k->type) {
    case PGP_TOML_STRING: {
        const char *s = *(char *const *)cslot(cfg, k);
        if (s == NULL) {
            msgf(what, n, "out of memory");
            return -1;
        }
        if (k->choices != NULL)
            return check_choice(s, k->choices, NULL, NULL, what, n);
        if (k->check != NULL)
            return k->check(s, what, n);
        return 0;
    }
    case PGP_TOML_INTEGER: {
        int64_t v = *(const int64_t *)cslot(cfg, k);
        if (v < k->min || v > k->max) {
            msgf(what, n, "%" PRId64 " is out of range (%" PRId64 "..%" PRId64 ")", v, k->min,
                 k->max);
            return -1;
        }
        return 0;
    }
    case PGP_TOML_FLOAT: {
        double v = *(const double *)cslot(cfg, k);
        if (!(v >= k->fmin && v <= k->fmax)) {
            msgf(what, n, "%g is out of range (%g..%g)", v, k->fmin, k->fmax);
            return -1;
        }
        return 0;
    }
    case PGP_TOML_BOOL:
    case PGP_TOML_ARRAY:
        return 0;
    }
    return 0;
}

/*
 * Store v into k's field (moving strings out of v), then check it.  On
 * error the field may hold the rejected value: callers work on a staging copy.
 */
static int key_store(pgp_config_t *cfg, const cfg_key_t *k, pgp_toml_value_t *v, char *what,
                     size_t n)
{
    if (k->type == PGP_TOML_FLOAT && v->type == PGP_TOML_INTEGER) {
        double d = (double)v->u.i;
        v->type = PGP_TOML_FLOAT;
        v->u.f = d;
    }
    if (v->type != k->type) {
        msgf(what, n, "expected %s, got %s", expected_name(k), pgp_toml_type_name(v->type));
        return -1;
    }
    switch (k->type) {
    case PGP_TOML_STRING: {
        char **s = slot(cfg, k);
        free(*s);
        *s = v->u.s;
        v->u.s = NULL;
        break;
    }
    case PGP_TOML_INTEGER: *(int64_t *)slot(cfg, k) = v->u.i; break;
    case PGP_TOML_FLOAT: *(double *)slot(cfg, k) = v->u.f; break;
    case PGP_TOML_BOOL: *(bool *)slot(cfg, k) = v->u.b; break;
    case PGP_TOML_ARRAY: {
        pgp_config_strlist_t *l = slot(cfg, k);
        char **items = NULL;
        size_t count = v->u.a.count;
        for (size_t i = 0; i < count; i++) {
            if (v->u.a.items[i].type != PGP_TOML_STRING) {
                msgf(what, n, "expected an array of strings, got an array containing %s",
                     pgp_toml_type_name(v->u.a.items[i].type));
                return -1;
            }
        }
        if (count > 0 && (items = calloc(count, sizeof(*items))) == NULL) {
            msgf(what, n, "out of memory");
            return -1;
        }
        for (size_t i = 0; i < count; i++) {
            items[i] = v->u.a.items[i].u.s;
            v->u.a.items[i].u.s = NULL;
        }
        strlist_free(l);
        l->items = items;
        l->count = count;
        break;
    }
    }
    return key_check(cfg, k, what, n);
}

/* Parse text by k's type and store it. */
static int key_set_text(pgp_config_t *cfg, const cfg_key_t *k, const char *text, char *what,
                        size_t n)
{
    pgp_toml_value_t v;
    if (pgp_toml_parse_text(k->type, text, &v, what, n) < 0)
        return -1;
    int rc = key_store(cfg, k, &v, what, n);
    pgp_toml_value_free(&v);
    return rc;
}

/* ---- whole-config operations ------------------------------------------ */

_Static_assert(KEY_COUNT <= 128, "explicit_keys holds 128 bits");

static void mark_explicit(pgp_config_t *cfg, size_t ki)
{
    cfg->explicit_keys[ki / 64] |= UINT64_C(1) << (ki % 64);
}

static bool is_explicit(const pgp_config_t *cfg, size_t ki)
{
    return (cfg->explicit_keys[ki / 64] >> (ki % 64)) & 1u;
}

/*
 * profiling.preset: the defaults of the keys marked .preset, per preset.
 * development is what the key table says; production is quieter and keeps
 * parameter values and the HTML dashboard out.
 */
static const struct { const char *key, *development, *production; } preset_values[] = {
    { "slow_query_threshold_ms", "50", "200" },
    { "n_plus_one_threshold", "3", "10" },
    { "params", "values", "off" },
    { "dashboard_path", "/debug/performance", "" },
};

/* Give every .preset key the chosen preset's value unless a source set it. */
static int apply_preset(pgp_config_t *cfg, char *err, size_t errlen)
{
    bool prod = cfg->profiling.preset != NULL && strcmp(cfg->profiling.preset, "production") == 0;
    char what[256];
    for (size_t i = 0; i < KEY_COUNT; i++) {
        if (!keys[i].preset || is_explicit(cfg, i))
            continue;
        const char *text = NULL;
        for (size_t j = 0; j < sizeof(preset_values) / sizeof(preset_values[0]); j++)
            if (strcmp(preset_values[j].key, keys[i].name) == 0)
                text = prod ? preset_values[j].production : preset_values[j].development;
        if (text == NULL)
            continue;
        int rc = key_set_text(cfg, &keys[i], text, what, sizeof(what));
        if (rc < 0) {
            msgf(err, errlen, "%s.%s: %s", keys[i].section, keys[i].name, what);
            return -1;
        }
    }
    return 0;
}

void pgp_config_free(pgp_config_t *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < KEY_COUNT; i++)
        key_free(cfg, &keys[i]);
    free(cfg->source_path);
    memset(cfg, 0, sizeof(*cfg));
}

static void parse_derived(pgp_config_t *cfg);

void pgp_config_init(pgp_config_t *cfg)
{
    char what[256];
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < KEY_COUNT; i++) {
        /* Defaults are code, not input: only allocation can fail here. */
        if (key_set_text(cfg, &keys[i], keys[i].def, what, sizeof(what)) < 0)
            key_free(cfg, &keys[i]);
    }
    parse_derived(cfg);
}

/* Deep copy src into dst (uninitialized).  Returns 0, or -1 (dst zeroed). */
static int cfg_clone(pgp_config_t *dst, const pgp_config_t *src)
{
    *dst = *src;
    dst->source_path = NULL;
    for (size_t i = 0; i < KEY_COUNT; i++) {
        if (keys[i].type == PGP_TOML_STRING)
            *(char **)slot(dst, &keys[i]) = NULL;
        else if (keys[i].type == PGP_TOML_ARRAY)
            memset(slot(dst, &keys[i]), 0, sizeof(pgp_config_strlist_t));
    }
    if (src->source_path != NULL && (dst->source_path = strdup(src->source_path)) == NULL)
        goto oom;
    for (size_t i = 0; i < KEY_COUNT; i++) {
        const cfg_key_t *k = &keys[i];
        if (k->type == PGP_TOML_STRING) {
            const char *s = *(char *const *)cslot(src, k);
            if (s != NULL && (*(char **)slot(dst, k) = strdup(s)) == NULL)
                goto oom;
        } else if (k->type == PGP_TOML_ARRAY) {
            const pgp_config_strlist_t *from = cslot(src, k);
            pgp_config_strlist_t *to = slot(dst, k);
            if (from->count == 0)
                continue;
            if ((to->items = calloc(from->count, sizeof(char *))) == NULL)
                goto oom;
            to->count = from->count;
            for (size_t j = 0; j < from->count; j++)
                if ((to->items[j] = strdup(from->items[j])) == NULL)
                    goto oom;
        }
    }
    return 0;
oom:
    pgp_config_free(dst);
    return -1;
}

/* Replace *cfg by *staged (consumed). */
static void cfg_commit(pgp_config_t *cfg, pgp_config_t *staged)
{
    pgp_config_free(cfg);
    *cfg = *staged;
    memset(staged, 0, sizeof(*staged));
}

/* ---- TOML input ---------------------------------------------------------- */

typedef struct load_ctx {
    pgp_config_t *cfg;             /* staging copy */
    int key_line[KEY_COUNT];       /* line that set each key, 0 = not yet */
    int section_line[KEY_COUNT];   /* line of each [section] header, by section index */
} load_ctx_t;

/* Join path parts with '.' for messages. */
static void join_path(char *const *parts, size_t n, char *buf, size_t buflen)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && o + 1 < buflen; i++) {
        int w = snprintf(buf + o, buflen - o, "%s%s", i ? "." : "", parts[i]);
        if (w < 0)
            break;
        o += (size_t)w < buflen - o ? (size_t)w : buflen - o - 1;
    }
}

static int unknown_section(const char *name, const char *in_key, char *what, size_t n)
{
    char shown[128], hint[160];
    suggestion_t sg;
    suggest_init(&sg);
    for (size_t i = 0; i < KEY_COUNT; i++) {
        if (!is_section_start(i))
            continue;
        char cand[80];
        msgf(cand, sizeof(cand), "[%s]", keys[i].section);
        suggest_consider(&sg, name, keys[i].section, cand);
    }
    show_name(name, shown, sizeof(shown));
    suggest_render(&sg, hint, sizeof(hint));
    if (in_key != NULL) {
        char qk[96];
        pgp_toml_quote(in_key, strlen(in_key), qk, sizeof(qk));
        msgf(what, n, "unknown section [%s] in key %s%s", shown, qk, hint);
    } else {
        msgf(what, n, "unknown section [%s]%s", shown, hint);
    }
    return -1;
}

/* `name` is not a key of section `sec` (NULL = top level). */
static int unknown_key(const char *sec, const char *name, char *what, size_t n)
{
    char q[96], hint[160], cand[96];
    suggestion_t sg;
    suggest_init(&sg);
    for (size_t i = 0; i < KEY_COUNT; i++) {
        if (sec != NULL && strcmp(keys[i].section, sec) == 0) {
            msgf(cand, sizeof(cand), "\"%s\"", keys[i].name);
            suggest_consider(&sg, name, keys[i].name, cand);
        }
    }
    /* The right name in the wrong section: point at the full name. */
    for (size_t i = 0; i < KEY_COUNT && sg.dist == SIZE_MAX; i++) {
        if (edit_distance(name, keys[i].name) == 0) {
            msgf(cand, sizeof(cand), "\"%s.%s\"", keys[i].section, keys[i].name);
            suggest_consider(&sg, name, keys[i].name, cand);
        }
    }
    pgp_toml_quote(name, strlen(name), q, sizeof(q));
    suggest_render(&sg, hint, sizeof(hint));
    if (sec != NULL)
        msgf(what, n, "unknown key %s in [%s]%s", q, sec, hint);
    else
        msgf(what, n, "unknown key %s at top level%s", q, hint);
    return -1;
}

static int load_table(load_ctx_t *lc, const pgp_toml_event_t *ev, char *what, size_t n)
{
    char joined[256], shown[128];
    join_path(ev->table, ev->table_depth, joined, sizeof(joined));
    int si = ev->table_depth == 1 ? find_section(ev->table[0]) : -1;
    if (si < 0)
        return unknown_section(joined, NULL, what, n);
    if (lc->section_line[si] != 0) {
        show_name(joined, shown, sizeof(shown));
        msgf(what, n, "duplicate section [%s] (first on line %d)", shown, lc->section_line[si]);
        return -1;
    }
    lc->section_line[si] = ev->line;
    return 0;
}

static int load_keyval(load_ctx_t *lc, const pgp_toml_event_t *ev, char *what, size_t n)
{
    char *full[2 * PGP_TOML_MAX_DEPTH];
    size_t depth = 0;
    char joined[256], reason[384];
    for (size_t i = 0; i < ev->table_depth; i++)
        full[depth++] = ev->table[i];
    for (size_t i = 0; i < ev->key_depth; i++)
        full[depth++] = ev->key[i];
    if (depth == 1)
        return unknown_key(NULL, full[0], what, n);
    int si = find_section(full[0]);
    if (si < 0) {
        join_path(full, depth, joined, sizeof(joined));
        return unknown_section(full[0], joined, what, n);
    }
    const char *sec = keys[si].section;
    join_path(full + 1, depth - 1, joined, sizeof(joined));
    int ki = depth == 2 ? find_key(sec, full[1]) : -1;
    if (ki < 0)
        return unknown_key(sec, joined, what, n);
    const cfg_key_t *k = &keys[ki];
    if (lc->key_line[ki] != 0) {
        msgf(what, n, "duplicate key \"%s\" in [%s] (first set on line %d)", k->name, sec,
             lc->key_line[ki]);
        return -1;
    }
    lc->key_line[ki] = ev->line;
    if (key_store(lc->cfg, k, ev->value, reason, sizeof(reason)) < 0) {
        msgf(what, n, "%s.%s: %s", sec, k->name, reason);
        return -1;
    }
    mark_explicit(lc->cfg, (size_t)ki);
    return 0;
}

static int handle_toml_line(void *ctx, const pgp_toml_event_t *ev, char *what, size_t n)
{
    load_ctx_t *lc = ctx;
    if (ev->kind == PGP_TOML_TABLE)
        return load_table(lc, ev, what, n);
    return load_keyval(lc, ev, what, n);
}

/* Load into a staging copy; on success commit it, with source_path set when given. */
static int load_common(pgp_config_t *cfg, const char *name, const char *data, size_t len,
                       const char *source_path, char *err, size_t errlen)
{
    load_ctx_t lc;
    pgp_config_t staged;
    memset(&lc, 0, sizeof(lc));
    if (cfg_clone(&staged, cfg) < 0) {
        msgf(err, errlen, "%s: out of memory", name);
        return -1;
    }
    lc.cfg = &staged;
    if (pgp_toml_parse(name, data, len, handle_toml_line, &lc, err, errlen) < 0)
        goto fail;
    if (source_path != NULL) {
        char *dup = strdup(source_path);
        if (dup == NULL) {
            msgf(err, errlen, "%s: out of memory", name);
            goto fail;
        }
        free(staged.source_path);
        staged.source_path = dup;
    }
    parse_derived(&staged);
    cfg_commit(cfg, &staged);
    return 0;
fail:
    pgp_config_free(&staged);
    return -1;
}

int pgp_config_load_buffer(pgp_config_t *cfg, const char *name, const char *data, size_t len,
                           char *err, size_t errlen)
{
    return load_common(cfg, name != NULL ? name : "(buffer)", data, len, NULL, err, errlen);
}

int pgp_config_load_file(pgp_config_t *cfg, const char *path, char *err, size_t errlen)
{
    char ebuf[128];
    char *data = NULL;
    size_t len = 0, cap = 0;
    int rc = -1;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        msgf(err, errlen, "%s: %s", path, strerror_r(errno, ebuf, sizeof(ebuf)));
        return -1;
    }
    /* Read in a loop rather than trusting st_size: pipes and /dev/stdin work too. */
    for (;;) {
        if (len == cap) {
            size_t ncap = cap == 0 ? 8192 : cap * 2;
            if (cap >= PGP_CONFIG_MAX_FILE_BYTES + 1) {
                msgf(err, errlen, "%s: file larger than %d bytes", path, PGP_CONFIG_MAX_FILE_BYTES);
                goto out;
            }
            if (ncap > PGP_CONFIG_MAX_FILE_BYTES + 1)
                ncap = PGP_CONFIG_MAX_FILE_BYTES + 1;
            char *g = realloc(data, ncap);
            if (g == NULL) {
                msgf(err, errlen, "%s: out of memory", path);
                goto out;
            }
            data = g;
            cap = ncap;
        }
        size_t got = fread(data + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                msgf(err, errlen, "%s: %s", path, strerror_r(errno, ebuf, sizeof(ebuf)));
                goto out;
            }
            break;
        }
    }
    if (len > PGP_CONFIG_MAX_FILE_BYTES) {
        msgf(err, errlen, "%s: file larger than %d bytes", path, PGP_CONFIG_MAX_FILE_BYTES);
        goto out;
    }
    rc = load_common(cfg, path, data, len, path, err, errlen);
out:
    free(data);
    fclose(f);
    return rc;
}

/* ---- environment and flags --------------------------------------------- */

/* PGPROXY_* variables that are not config keys (read by main.c). */
static bool is_env_not_key(const char *name, size_t n)
{
    static const char *const names[] = { "PGPROXY_CONFIG", "PGPROXY_CLOCK" };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strlen(names[i]) == n && memcmp(names[i], name, n) == 0)
            return true;
    return false;
}

int pgp_config_apply_env(pgp_config_t *cfg, char *const *envp, char *err, size_t errlen)
{
    const size_t plen = strlen(ENV_PREFIX);
    const char *set_by[KEY_COUNT] = { 0 };   /* the envp entry that set each key */
    char what[384], name[128];
    pgp_config_t staged;
    if (envp == NULL)
        return 0;
    if (cfg_clone(&staged, cfg) < 0) {
        msgf(err, errlen, "environment: out of memory");
        return -1;
    }
    for (size_t i = 0; envp[i] != NULL; i++) {
        const char *e = envp[i];
        const char *eq = strchr(e, '=');
        if (strncmp(e, ENV_PREFIX, plen) != 0 || eq == NULL)
            continue;
        size_t nlen = (size_t)(eq - e);
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strncmp(envp[j], e, nlen + 1) == 0;
        if (seen || is_env_not_key(e, nlen))
            continue;   /* getenv() semantics: the first definition wins */
        int shown = nlen > 100 ? 100 : (int)nlen;
        int ki = -1;
        suggestion_t sg;
        suggest_init(&sg);
        char var[128];
        msgf(var, sizeof(var), "%.*s", shown, e);
        for (char *c = var; *c != '\0'; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7F)
                *c = '?';   /* keep the message one printable line */
        for (size_t k = 0; k < KEY_COUNT && ki < 0; k++) {
            env_name(&keys[k], name, sizeof(name));
            if (strlen(name) == nlen && memcmp(name, e, nlen) == 0)
                ki = (int)k;
            else if (keys[k].env_alias != NULL && strlen(keys[k].env_alias) == nlen &&
                     memcmp(keys[k].env_alias, e, nlen) == 0)
                ki = (int)k;
            else {
                /* "PGPROXY_LISTEN" is a likely slip for "PGPROXY_PROXY_LISTEN". */
                char shortname[128];
                msgf(shortname, sizeof(shortname), "%s%s", ENV_PREFIX, keys[k].name);
                suggest_consider(&sg, var, shortname, name);
                suggest_consider(&sg, var, name, name);
            }
        }
        if (ki < 0) {
            char hint[160];
            suggest_render(&sg, hint, sizeof(hint));
            msgf(err, errlen, "environment %s: unknown variable%s", var, hint);
            goto fail;
        }
        if (set_by[ki] != NULL) {
            /* Canonical name and alias both present: fine only when they agree. */
            const char *other = set_by[ki];
            const char *oeq = strchr(other, '=');
            if (strcmp(oeq + 1, eq + 1) == 0)
                continue;
            msgf(err, errlen, "environment %s and %.*s disagree; set only one", var,
                 (int)(oeq - other), other);
            goto fail;
        }
        set_by[ki] = e;
        if (key_set_text(&staged, &keys[ki], eq + 1, what, sizeof(what)) < 0) {
            msgf(err, errlen, "environment %s: %s", var, what);
            goto fail;
        }
        mark_explicit(&staged, (size_t)ki);
    }
    parse_derived(&staged);
    cfg_commit(cfg, &staged);
    return 0;
fail:
    pgp_config_free(&staged);
    return -1;
}

int pgp_config_set(pgp_config_t *cfg, const char *dotted_key, const char *value,
                   const char *origin, char *err, size_t errlen)
{
    char what[384];
    const char *who = origin != NULL ? origin : dotted_key;
    const char *dot = strchr(dotted_key, '.');
    int ki = -1;
    for (size_t i = 0; i < KEY_COUNT && dot != NULL && ki < 0; i++) {
        size_t sl = strlen(keys[i].section);
        if (sl == (size_t)(dot - dotted_key) && memcmp(keys[i].section, dotted_key, sl) == 0 &&
            strcmp(keys[i].name, dot + 1) == 0)
            ki = (int)i;
    }
    if (ki < 0) {
        char q[96], hint[160], full[96], cand[100];
        suggestion_t sg;
        suggest_init(&sg);
        for (size_t i = 0; i < KEY_COUNT; i++) {
            msgf(full, sizeof(full), "%s.%s", keys[i].section, keys[i].name);
            msgf(cand, sizeof(cand), "\"%s\"", full);
            suggest_consider(&sg, dotted_key, full, cand);
        }
        pgp_toml_quote(dotted_key, strlen(dotted_key), q, sizeof(q));
        suggest_render(&sg, hint, sizeof(hint));
        msgf(err, errlen, "%s: unknown key %s%s", who, q, hint);
        return -1;
    }
    pgp_config_t staged;
    if (cfg_clone(&staged, cfg) < 0) {
        msgf(err, errlen, "%s: out of memory", who);
        return -1;
    }
    if (key_set_text(&staged, &keys[ki], value, what, sizeof(what)) < 0) {
        msgf(err, errlen, "%s: %s", who, what);
        pgp_config_free(&staged);
        return -1;
    }
    mark_explicit(&staged, (size_t)ki);
    parse_derived(&staged);
    cfg_commit(cfg, &staged);
    return 0;
}

/* ---- validation and output --------------------------------------------- */

/* Best effort: fill the *_ep fields and unix_socket_mode_bits from the strings
 * (checked where they were set; pgp_config_finish checks again). */
static void parse_derived(pgp_config_t *cfg)
{
    pgp_endpoint_t ep;
    int bits;
    if (cfg->proxy.unix_socket_mode != NULL &&
        parse_socket_mode(cfg->proxy.unix_socket_mode, &bits) == 0)
        cfg->proxy.unix_socket_mode_bits = bits;
    if (cfg->proxy.listen != NULL &&
        pgp_endpoint_parse(cfg->proxy.listen, PGP_CONFIG_LISTEN_PORT, &ep, NULL, 0) == 0)
        cfg->proxy.listen_ep = ep;
    if (cfg->proxy.upstream != NULL &&
        pgp_endpoint_parse(cfg->proxy.upstream, PGP_CONFIG_UPSTREAM_PORT, &ep, NULL, 0) == 0)
        cfg->proxy.upstream_ep = ep;
    cfg->admin.enabled = cfg->admin.listen != NULL && cfg->admin.listen[0] != '\0';
    if (!cfg->admin.enabled)
        memset(&cfg->admin.listen_ep, 0, sizeof(cfg->admin.listen_ep));
    else if (pgp_endpoint_parse(cfg->admin.listen, PGP_CONFIG_ADMIN_PORT, &ep, NULL, 0) == 0)
        cfg->admin.listen_ep = ep;
}

/*
 * The TLS parameters of a proxy.upstream URL into the upstream TLS keys.  A
 * key a source set must agree with the URL; the others take the URL's value
 * or their default, so finishing again after a change gives the same result.
 */
static int apply_upstream_url(pgp_config_t *cfg, char *err, size_t errlen)
{
    char what[384], have_q[96], url_v[96];
    int rc = -1;
    url_tls_t *u = malloc(sizeof(*u));
    if (u == NULL) {
        msgf(err, errlen, "proxy.upstream: out of memory");
        return -1;
    }
    if (url_tls_read(cfg->proxy.upstream, u, what, sizeof(what)) < 0) {
        msgf(err, errlen, "proxy.upstream: %s", what);
        goto out;
    }
    for (size_t i = 0; i < URL_TLS_COUNT; i++) {
        int ki = find_key("proxy", url_tls_params[i].key);
        const cfg_key_t *k = &keys[ki];
        const char *have = *(char *const *)cslot(cfg, k);
        if (is_explicit(cfg, (size_t)ki)) {
            if (u->found[i] && strcmp(have, u->value[i]) != 0) {
                pgp_toml_quote(have, strlen(have), have_q, sizeof(have_q));
                show_value(u->value[i], url_v, sizeof(url_v));
                msgf(err, errlen, "proxy.%s = %s conflicts with %s=%s in proxy.upstream",
                     k->name, have_q, url_tls_params[i].param, url_v);
                goto out;
            }
            continue;
        }
        const char *want = u->found[i] ? u->value[i] : k->def;
        if (strcmp(have, want) != 0 && key_set_text(cfg, k, want, what, sizeof(what)) < 0) {
            msgf(err, errlen, "proxy.%s: %s", k->name, what);
            goto out;
        }
    }
    rc = 0;
out:
    free(u);
    return rc;
}

/* Cross-key TLS rules; files are the TLS module's business, only the text is checked. */
static int check_tls_keys(const pgp_config_t *c, char *err, size_t errlen)
{
    static const struct { const char *cert_key, *key_key, *what; } pairs[] = {
        { "upstream_tls_cert_file", "upstream_tls_key_file",
          "a client certificate toward the server" },
        { "client_tls_cert_file", "client_tls_key_file", "pgproxy's certificate for clients" },
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        const char *cert = *(char *const *)cslot(c, &keys[find_key("proxy", pairs[i].cert_key)]);
        const char *key = *(char *const *)cslot(c, &keys[find_key("proxy", pairs[i].key_key)]);
        if ((cert[0] == '\0') != (key[0] == '\0')) {
            msgf(err, errlen, "proxy.%s: empty, but proxy.%s is set (%s needs both; "
                 "give both or neither)", cert[0] == '\0' ? pairs[i].cert_key : pairs[i].key_key,
                 cert[0] == '\0' ? pairs[i].key_key : pairs[i].cert_key, pairs[i].what);
            return -1;
        }
    }
    if (strcmp(c->proxy.client_tls, "disable") != 0 && c->proxy.client_tls_cert_file[0] == '\0') {
        msgf(err, errlen, "proxy.client_tls = %s needs proxy.client_tls_cert_file and "
             "proxy.client_tls_key_file (pgproxy's certificate and key for clients)",
             c->proxy.client_tls);
        return -1;
    }
    if (strncmp(c->proxy.upstream_tls, "verify-", 7) == 0 &&
        c->proxy.upstream_tls_ca_file[0] == '\0') {
        msgf(err, errlen, "proxy.upstream_tls = %s needs proxy.upstream_tls_ca_file "
             "(a CA file, or \"system\")", c->proxy.upstream_tls);
        return -1;
    }
    return 0;
}

int pgp_config_finish(pgp_config_t *cfg, char *err, size_t errlen)
{
    char what[384], a[300], b[300];
    if (apply_preset(cfg, err, errlen) < 0)
        return -1;
    for (size_t i = 0; i < cfg->profiling.n_plus_one_ignore.count; i++) {
        uint64_t fp;
        const char *item = cfg->profiling.n_plus_one_ignore.items[i];
        if (pgp_config_parse_fingerprint(item, &fp) < 0) {
            char q[80];
            pgp_toml_quote(item, strlen(item), q, sizeof(q));   /* one line, whatever it holds */
            msgf(err, errlen, "profiling.n_plus_one_ignore: %s is not a fingerprint "
                 "(16 hex digits, as /debug/queries shows them)", q);
            return -1;
        }
    }
    if (strcmp(cfg->slow_log.sink, "postgres") == 0 && cfg->slow_log.dsn[0] == '\0') {
        msgf(err, errlen, "slow_log.dsn: empty, but slow_log.sink is \"postgres\" "
             "(give a libpq connection string or URL)");
        return -1;
    }
    if (strcmp(cfg->slow_log.sink, "sqlite") == 0 && cfg->slow_log.sqlite_path[0] == '\0') {
        msgf(err, errlen, "slow_log.sqlite_path: empty, but slow_log.sink is \"sqlite\"");
        return -1;
    }
    for (size_t i = 0; i < KEY_COUNT; i++) {
        if (key_check(cfg, &keys[i], what, sizeof(what)) < 0) {
            msgf(err, errlen, "%s.%s: %s", keys[i].section, keys[i].name, what);
            return -1;
        }
    }
    if (apply_upstream_url(cfg, err, errlen) < 0 || check_tls_keys(cfg, err, errlen) < 0)
        return -1;
    /* Checked by key_check above. */
    (void)parse_socket_mode(cfg->proxy.unix_socket_mode, &cfg->proxy.unix_socket_mode_bits);
    if (pgp_endpoint_parse(cfg->proxy.listen, PGP_CONFIG_LISTEN_PORT, &cfg->proxy.listen_ep,
                           what, sizeof(what)) < 0) {
        msgf(err, errlen, "proxy.listen: %s", what);
        return -1;
    }
    if (pgp_endpoint_parse(cfg->proxy.upstream, PGP_CONFIG_UPSTREAM_PORT,
                           &cfg->proxy.upstream_ep, what, sizeof(what)) < 0) {
        msgf(err, errlen, "proxy.upstream: %s", what);
        return -1;
    }
    pgp_endpoint_format(&cfg->proxy.listen_ep, a, sizeof(a));
    pgp_endpoint_format(&cfg->proxy.upstream_ep, b, sizeof(b));
    if (strcmp(a, b) == 0) {
        msgf(err, errlen, "proxy.upstream: same endpoint as proxy.listen (%s); "
             "pgproxy would connect to itself", a);
        return -1;
    }
    cfg->admin.enabled = cfg->admin.listen[0] != '\0';
    memset(&cfg->admin.listen_ep, 0, sizeof(cfg->admin.listen_ep));
    if (cfg->admin.enabled &&
        pgp_endpoint_parse(cfg->admin.listen, PGP_CONFIG_ADMIN_PORT, &cfg->admin.listen_ep,
                           what, sizeof(what)) < 0) {
        msgf(err, errlen, "admin.listen: %s", what);
        return -1;
    }
    return 0;
}

/* Write k's value as TOML. */
static void write_value(const pgp_config_t *cfg, const cfg_key_t *k, FILE *f)
{
    pgp_toml_value_t v = { .type = k->type };
    switch (k->type) {
    case PGP_TOML_STRING:
        pgp_toml_write_string(f, *(char *const *)cslot(cfg, k));
        break;
    case PGP_TOML_INTEGER:
        v.u.i = *(const int64_t *)cslot(cfg, k);
        pgp_toml_write_value(f, &v);
        break;
    case PGP_TOML_FLOAT:
        v.u.f = *(const double *)cslot(cfg, k);
        pgp_toml_write_value(f, &v);
        break;
    case PGP_TOML_BOOL:
        v.u.b = *(const bool *)cslot(cfg, k);
        pgp_toml_write_value(f, &v);
        break;
    case PGP_TOML_ARRAY: {
        const pgp_config_strlist_t *l = cslot(cfg, k);
        fputc('[', f);
        for (size_t j = 0; j < l->count; j++) {
            if (j > 0)
                fputs(", ", f);
            pgp_toml_write_string(f, l->items[j]);
        }
        fputc(']', f);
        break;
    }
    }
}

void pgp_config_dump(const pgp_config_t *cfg, FILE *f)
{
    fputs("# pgproxy effective configuration (defaults < file < environment < flags)\n", f);
    for (size_t i = 0; i < KEY_COUNT; i++) {
        const cfg_key_t *k = &keys[i];
        if (is_section_start(i))
            fprintf(f, "\n[%s]\n", k->section);
        fprintf(f, "%s = ", k->name);
        write_value(cfg, k, f);
        fputc('\n', f);
    }
}

int pgp_config_foreach(const pgp_config_t *cfg, pgp_config_visit_fn fn, void *ud)
{
    for (size_t i = 0; i < KEY_COUNT; i++) {
        const cfg_key_t *k = &keys[i];
        char *text = NULL;
        size_t len = 0;
        if (k->secret && (*(char *const *)cslot(cfg, k))[0] != '\0') {
            text = strdup("\"(set, not shown)\"");
            len = text ? strlen(text) : 0;
        } else {
            FILE *f = open_memstream(&text, &len);
            if (f == NULL)
                return -1;
            write_value(cfg, k, f);
            if (fclose(f) != 0) {
                free(text);
                return -1;
            }
        }
        if (text == NULL)
            return -1;
        int rc = fn(ud, k->section, k->name, text);
        free(text);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int check_listen(const char *value, char *what, size_t whatlen)
{
    pgp_endpoint_t ep;
    return pgp_endpoint_parse(value, PGP_CONFIG_LISTEN_PORT, &ep, what, whatlen);
}

/* proxy.upstream: an endpoint; a URL's TLS parameters are checked here too, so a
 * bad sslmode is reported with the file line, variable or flag that set it. */
static int check_upstream(const char *value, char *what, size_t whatlen)
{
    pgp_endpoint_t ep;
    if (pgp_endpoint_parse(value, PGP_CONFIG_UPSTREAM_PORT, &ep, what, whatlen) < 0)
        return -1;
    url_tls_t *u = malloc(sizeof(*u));
    if (u == NULL) {
        msgf(what, whatlen, "out of memory");
        return -1;
    }
    int rc = url_tls_read(value, u, what, whatlen);
    free(u);
    return rc;
}

/* proxy.upstream_tls: libpq's modes; "allow" gets a pointer to the nearest one we have. */
static int check_upstream_tls(const char *value, char *what, size_t whatlen)
{
    return check_choice(value, upstream_tls_modes, NULL,
                        strcmp(value, "allow") == 0 ? "prefer" : NULL, what, whatlen);
}

/* "0770" -> 0770: 3 or 4 octal digits, no bits above 0777.  -1 otherwise. */
static int parse_socket_mode(const char *text, int *bits)
{
    size_t n = strlen(text);
    int v = 0;
    if (n < 3 || n > 4)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (text[i] < '0' || text[i] > '7')
            return -1;
        v = v * 8 + (text[i] - '0');
    }
    if (v > 0777)
        return -1;
    *bits = v;
    return 0;
}

static int check_socket_mode(const char *value, char *what, size_t whatlen)
{
    int bits;
    char q[80];
    if (parse_socket_mode(value, &bits) == 0)
        return 0;
    pgp_toml_quote(value, strlen(value), q, sizeof(q));
    msgf(what, whatlen, "expected an octal mode such as \"0770\" (3 or 4 digits 0-7, "
         "at most 0777), got %s", q);
    return -1;
}

/* admin.listen: "" (disabled) or a TCP endpoint; the HTTP server binds no unix sockets. */
static int check_admin_listen(const char *value, char *what, size_t whatlen)
{
    pgp_endpoint_t ep;
    if (value[0] == '\0')
        return 0;
    if (strstr(value, "://") != NULL) {
        msgf(what, whatlen, "expected host:port or [v6]:port, not a URL");
        return -1;
    }
    if (pgp_endpoint_parse(value, PGP_CONFIG_ADMIN_PORT, &ep, what, whatlen) < 0)
        return -1;
    if (ep.is_unix) {
        msgf(what, whatlen, "unix sockets are not supported here; use host:port or \"\" to disable");
        return -1;
    }
    return 0;
}

/* admin.dashboard_path: "" (off) or an absolute path without query, fragment or trailing /. */
static int check_dashboard_path(const char *value, char *what, size_t whatlen)
{
    size_t n = strlen(value);
    if (n == 0)
        return 0;
    if (value[0] != '/' || n < 2 || value[n - 1] == '/' || n > 200 ||
        strpbrk(value, "?#%\\ \t\"'<>") != NULL) {
        msgf(what, whatlen, "expected \"\" or a path such as \"/debug/performance\" "
             "(starts with /, no trailing /, no query)");
        return -1;
    }
    return 0;
}

int pgp_config_parse_fingerprint(const char *text, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;
    for (; text[i] != '\0'; i++) {
        char c = text[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            d = (unsigned)(c - 'A' + 10);
        else
            return -1;
        if (i >= 16)
            return -1;
        v = v << 4 | d;
    }
    if (i != 16)
        return -1;
    *out = v;
    return 0;
}

/* ---- endpoints ----------------------------------------------------------- */

/* Parse a decimal port 1..65535 from p[0..n). */
static int parse_port(const char *p, size_t n, uint16_t *out)
{
    unsigned v = 0;
    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    *out = (uint16_t)v;
    return 0;
}

/* IPv6 literal, optionally with a %zone. */
static bool valid_ipv6(const char *s)
{
    char addr[64];
    struct in6_addr a6;
    const char *pct = strchr(s, '%');
    size_t n = pct != NULL ? (size_t)(pct - s) : strlen(s);
    if (n == 0 || n >= sizeof(addr))
        return false;
    memcpy(addr, s, n);
    addr[n] = '\0';
    if (pct != NULL) {
        if (pct[1] == '\0')
            return false;
        for (const char *z = pct + 1; *z != '\0'; z++)
            if (!((*z >= 'a' && *z <= 'z') || (*z >= 'A' && *z <= 'Z') ||
                  (*z >= '0' && *z <= '9') || *z == '_' || *z == '.' || *z == '-'))
                return false;
    }
    return inet_pton(AF_INET6, addr, &a6) == 1;
}

/* Hostname (letters, digits, '.', '-', '_') or dotted-quad IPv4. */
static bool valid_hostname(const char *s)
{
    size_t n = strlen(s);
    bool numeric = true;
    struct in_addr a4;
    if (n == 0 || n > 253 || s[0] == '-' || s[0] == '.')
        return false;
    for (const char *c = s; *c != '\0'; c++) {
        bool digit = *c >= '0' && *c <= '9';
        if (!(digit || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || *c == '.' ||
              *c == '-' || *c == '_'))
            return false;
        numeric = numeric && (digit || *c == '.');
    }
    return !numeric || inet_pton(AF_INET, s, &a4) == 1;
}

/* Fill ep from a decoded host (no brackets) and port: unix dir, IPv6 or host name. */
static int endpoint_from_host(const char *host, uint16_t port, const char *q,
                              pgp_endpoint_t *ep, char *err, size_t errlen)
{
    size_t n = strlen(host);
    char path[PGP_ENDPOINT_UNIX_PATH_MAX + 2];
    memset(ep, 0, sizeof(*ep));
    ep->port = port;
    if (n == 0) {
        msgf(err, errlen, "missing host in %s", q);
        return -1;
    }
    if (n >= sizeof(ep->host)) {
        msgf(err, errlen, "host too long in %s", q);
        return -1;
    }
    if (host[0] == '/') {
        while (n > 1 && host[n - 1] == '/')
            n--;   /* "/tmp/" names the same directory as "/tmp" */
        memcpy(ep->host, host, n);
        ep->host[n] = '\0';
        ep->is_unix = true;
        if (pgp_endpoint_socket_path(ep, path, sizeof(path)) < 0) {
            msgf(err, errlen, "unix socket path too long (max %d bytes) in %s",
                 PGP_ENDPOINT_UNIX_PATH_MAX, q);
            return -1;
        }
        return 0;
    }
    if (strchr(host, ':') != NULL ? !valid_ipv6(host) : !valid_hostname(host)) {
        msgf(err, errlen, "invalid host in %s", q);
        return -1;
    }
    memcpy(ep->host, host, n + 1);
    return 0;
}

static int hex_val(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) into buf; -1 on a bad escape, a NUL, or overflow. */
static int percent_decode(const char *s, size_t n, char *buf, size_t buflen)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hex_val(s[i + 1]) : -1;
            int lo = i + 2 < n ? hex_val(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= buflen)
            return -1;
        buf[o++] = c;
    }
    buf[o] = '\0';
    return 0;
}

/* For "postgres://..." or "postgresql://...": what follows "://"; else NULL. */
static const char *pg_url_rest(const char *text)
{
    if (strncmp(text, "postgres://", 11) == 0)
        return text + 11;
    if (strncmp(text, "postgresql://", 13) == 0)
        return text + 13;
    return NULL;
}

/* The query of a URL (rest = past "://") as [*begin, *end), without '?' and '#...'. */
static bool url_query(const char *rest, const char **begin, const char **end)
{
    const char *q = rest + strcspn(rest, "?#");
    if (*q != '?')
        return false;
    *begin = q + 1;
    *end = *begin + strcspn(*begin, "#");
    return true;
}

/* For messages: a URL parameter value bare when it is plain, else quoted and escaped. */
static void show_value(const char *s, char *buf, size_t n)
{
    bool bare = *s != '\0' && strlen(s) <= 60;
    for (const char *c = s; *c != '\0' && bare; c++)
        bare = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
               (*c >= '0' && *c <= '9') || strchr("._-/+:~@", *c) != NULL;
    if (bare)
        msgf(buf, n, "%s", s);
    else
        pgp_toml_quote(s, strlen(s), buf, n);
}

/*
 * Read the TLS parameters (url_tls_params) of `text` when it is a postgres://
 * URL: percent-decoded, the last occurrence wins (as in libpq), an empty
 * value counts as absent.  Checks their text: decoding, UTF-8, sslmode's
 * value.  Returns 0 (out->found all false for a non-URL), or -1 and a
 * message in what.
 */
static int url_tls_read(const char *text, url_tls_t *out, char *what, size_t whatlen)
{
    const char *rest = pg_url_rest(text), *qbegin, *qend;
    memset(out->found, 0, sizeof(out->found));
    if (rest == NULL || !url_query(rest, &qbegin, &qend))
        return 0;
    for (const char *p = qbegin; p < qend;) {
        const char *amp = memchr(p, '&', (size_t)(qend - p));
        const char *e = amp != NULL ? amp : qend;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        for (size_t i = 0; i < URL_TLS_COUNT && eq != NULL; i++) {
            const char *name = url_tls_params[i].param;
            if ((size_t)(eq - p) != strlen(name) || memcmp(p, name, (size_t)(eq - p)) != 0)
                continue;
            if (percent_decode(eq + 1, (size_t)(e - eq - 1), out->value[i],
                               sizeof(out->value[i])) < 0) {
                msgf(what, whatlen, "invalid %s value (bad percent-encoding, %%00, or longer "
                     "than %d bytes)", name, URL_VALUE_MAX);
                return -1;
            }
            out->found[i] = out->value[i][0] != '\0';
        }
        p = amp != NULL ? amp + 1 : qend;
    }
    for (size_t i = 0; i < URL_TLS_COUNT; i++) {
        pgp_toml_value_t v;
        char why[256];
        if (!out->found[i])
            continue;
        if (pgp_toml_parse_text(PGP_TOML_STRING, out->value[i], &v, why, sizeof(why)) < 0) {
            msgf(what, whatlen, "%s: %s", url_tls_params[i].param, why);
            return -1;
        }
        pgp_toml_value_free(&v);
    }
    if (out->found[0]) {
        char shown[96], v[80];
        if (strcmp(out->value[0], "allow") == 0) {
            msgf(what, whatlen, "sslmode=allow is not supported (did you mean sslmode=prefer?)");
            return -1;
        }
        show_value(out->value[0], v, sizeof(v));
        msgf(shown, sizeof(shown), "sslmode=%s", v);
        return check_choice(out->value[0], upstream_tls_modes, shown, NULL, what, whatlen);
    }
    return 0;
}

/* postgres://[user[:pw]@][host][:port][/db][?k=v&...]; text points past "://". */
static int parse_url(const char *s, uint16_t default_port, const char *q, pgp_endpoint_t *out,
                     char *err, size_t errlen)
{
    char host[sizeof(out->host)] = "";
    const char *port = NULL;
    size_t port_len = 0;
    size_t alen = strcspn(s, "/?#");
    const char *hp = s;
    for (const char *at = s; at < s + alen; at++)
        if (*at == '@')
            hp = at + 1;   /* the last '@' ends the user info */
    size_t hlen = (size_t)(s + alen - hp);
    if (memchr(hp, ',', hlen) != NULL) {
        msgf(err, errlen, "multiple hosts are not supported in %s", q);
        return -1;
    }
    const char *hend = hp + hlen;
    if (hlen > 0 && hp[0] == '[') {
        const char *close = memchr(hp, ']', hlen);
        if (close == NULL || (close + 1 < hend && close[1] != ':')) {
            msgf(err, errlen, "invalid IPv6 address in %s", q);
            return -1;
        }
        if (percent_decode(hp + 1, (size_t)(close - hp - 1), host, sizeof(host)) < 0 ||
            strchr(host, ':') == NULL) {
            msgf(err, errlen, "invalid IPv6 address in %s", q);
            return -1;
        }
        if (close + 1 < hend) {
            port = close + 2;
            port_len = (size_t)(hend - port);
        }
    } else {
        const char *colon = memchr(hp, ':', hlen);
        size_t n = colon != NULL ? (size_t)(colon - hp) : hlen;
        if (percent_decode(hp, n, host, sizeof(host)) < 0) {
            msgf(err, errlen, "invalid host in %s", q);
            return -1;
        }
        if (colon != NULL) {
            port = colon + 1;
            port_len = (size_t)(hend - port);
        }
    }
    /* libpq honours host= and port= in the query, over the authority. */
    const char *qbegin, *qend;
    if (url_query(s, &qbegin, &qend)) {
        for (const char *p = qbegin; p < qend;) {
            const char *amp = memchr(p, '&', (size_t)(qend - p));
            const char *e = amp != NULL ? amp : qend;
            const char *eq = memchr(p, '=', (size_t)(e - p));
            if (eq != NULL && eq - p == 4 && memcmp(p, "host", 4) == 0) {
                if (percent_decode(eq + 1, (size_t)(e - eq - 1), host, sizeof(host)) < 0) {
                    msgf(err, errlen, "invalid host in %s", q);
                    return -1;
                }
            } else if (eq != NULL && eq - p == 4 && memcmp(p, "port", 4) == 0) {
                port = eq + 1;
                port_len = (size_t)(e - eq - 1);
            }
            p = amp != NULL ? amp + 1 : qend;
        }
    }
    uint16_t pv = default_port;
    if (port != NULL && parse_port(port, port_len, &pv) < 0) {
        msgf(err, errlen, "invalid port in %s", q);
        return -1;
    }
    return endpoint_from_host(host, pv, q, out, err, errlen);
}

int pgp_endpoint_parse(const char *text, uint16_t default_port, pgp_endpoint_t *out,
                       char *err, size_t errlen)
{
    char q[96], host[sizeof(out->host)];
    pgp_endpoint_t ep;
    size_t n = text != NULL ? strlen(text) : 0;
    uint16_t port = default_port;
    pgp_toml_quote(text != NULL ? text : "", n, q, sizeof(q));
    if (n == 0) {
        msgf(err, errlen, "empty endpoint");
        return -1;
    }
    if (strncmp(text, "unix:", 5) == 0) {
        if (n == 5 || n - 5 > PGP_ENDPOINT_UNIX_PATH_MAX) {
            msgf(err, errlen, "unix socket path must be 1..%d bytes in %s",
                 PGP_ENDPOINT_UNIX_PATH_MAX, q);
            return -1;
        }
        memset(&ep, 0, sizeof(ep));
        memcpy(ep.host, text + 5, n - 5 + 1);
        ep.port = default_port;
        ep.is_unix = ep.is_socket_file = true;
        *out = ep;
        return 0;
    }
    if (pg_url_rest(text) != NULL) {
        if (parse_url(pg_url_rest(text), default_port, q, &ep, err, errlen) < 0)
            return -1;
        *out = ep;
        return 0;
    }
    if (strstr(text, "://") != NULL) {
        msgf(err, errlen, "unsupported URL scheme in %s (use postgres://)", q);
        return -1;
    }
    if (text[0] == '/') {
        if (endpoint_from_host(text, port, q, &ep, err, errlen) < 0)
            return -1;
        *out = ep;
        return 0;
    }
    const char *colon = strrchr(text, ':');
    size_t hlen = n;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':')) {
            msgf(err, errlen, "invalid IPv6 address in %s (write [addr]:port)", q);
            return -1;
        }
        if (close[1] == ':' && parse_port(close + 2, strlen(close + 2), &port) < 0) {
            msgf(err, errlen, "invalid port in %s", q);
            return -1;
        }
        text++;
        hlen = (size_t)(close - text);
        if (memchr(text, ':', hlen) == NULL) {
            msgf(err, errlen, "invalid IPv6 address in %s", q);
            return -1;
        }
    } else if (colon != NULL && strchr(text, ':') == colon) {
        if (parse_port(colon + 1, strlen(colon + 1), &port) < 0) {
            msgf(err, errlen, "invalid port in %s", q);
            return -1;
        }
        hlen = (size_t)(colon - text);
    } else if (colon != NULL) {
        /* Bare IPv6 is ambiguous ("::1:5432" is a valid address): brackets required. */
        msgf(err, errlen, "invalid address in %s (write IPv6 as [addr] or [addr]:port)", q);
        return -1;
    }
    if (hlen >= sizeof(host)) {
        msgf(err, errlen, "host too long in %s", q);
        return -1;
    }
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    if (host[0] == '/') {
        msgf(err, errlen, "invalid host in %s", q);
        return -1;
    }
    if (endpoint_from_host(host, port, q, &ep, err, errlen) < 0)
        return -1;
    *out = ep;
    return 0;
}

int pgp_endpoint_socket_path(const pgp_endpoint_t *ep, char *buf, size_t buflen)
{
    int w;
    if (!ep->is_unix || buflen == 0)
        return -1;
    if (ep->is_socket_file)
        w = snprintf(buf, buflen, "%s", ep->host);
    else
        w = snprintf(buf, buflen, "%s/.s.PGSQL.%u", strcmp(ep->host, "/") == 0 ? "" : ep->host,
                     (unsigned)ep->port);
    if (w < 0 || (size_t)w >= buflen || w > PGP_ENDPOINT_UNIX_PATH_MAX)
        return -1;
    return 0;
}

void pgp_endpoint_format(const pgp_endpoint_t *ep, char *buf, size_t buflen)
{
    if (buflen == 0)
        return;
    if (ep->is_socket_file)
        snprintf(buf, buflen, "%s", ep->host);
    else if (ep->is_unix)
        snprintf(buf, buflen, "%s/.s.PGSQL.%u", strcmp(ep->host, "/") == 0 ? "" : ep->host,
                 (unsigned)ep->port);
    else if (strchr(ep->host, ':') != NULL)
        snprintf(buf, buflen, "[%s]:%u", ep->host, (unsigned)ep->port);
    else
        snprintf(buf, buflen, "%s:%u", ep->host, (unsigned)ep->port);
}
