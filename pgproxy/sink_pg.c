/*
 * sink_pg.c - the PostgreSQL slow-log sink: DESIGN §5's UNLOGGED table
 * hyper_slow_queries through libpq.
 *
 * Owns one PGconn, used only by the slow-log writer thread (libpq's
 * blocking calls are fine there, never on a loop).  The DSN may be a URL
 * or key=value conninfo (PQconnectdbParams with expand_dbname).  Forced:
 * application_name 'pgproxy-slowlog' and client_encoding UTF8 (what the
 * values are cleaned to; a non-UTF8 database converts, or rejects a
 * character with 22P05, which drops that record).  Defaults the DSN may
 * override: connect_timeout 5 s, TCP keepalives and tcp_user_timeout 30 s
 * (a dead server is noticed), statement_timeout 30 s (options).
 * ensure_table runs DESIGN §5's statements verbatim, retrying a CREATE (up
 * to twice) when a concurrent sidecar won the race (23505
 * unique_violation, 42P07 duplicate_table, 42710 duplicate_object for the
 * row type), then adds the columns an older five-column table lacks (ALTER
 * TABLE ... ADD COLUMN IF NOT EXISTS, only when pg_attribute shows one
 * missing, so the usual connect takes no ACCESS EXCLUSIVE lock).  A batch
 * is one multi-row INSERT with $n parameters (one statement = one
 * transaction); every text value is made valid UTF-8 first (invalid bytes
 * and NUL -> U+FFFD, one per maximal invalid subpart, as render.c does).
 * Retention: DELETE of every id at or below the (keep+1)-th newest, an
 * index scan of keep rows (measured: 41 ms with 1M rows kept, PG 15 on
 * this 2-core VM; every 10 s at most).
 * Deliberately not here: queueing, retries (slowlog.c), TLS settings
 * beyond what the DSN says.
 */
#include "pgproxy/sink.h"

#include <libpq-fe.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NCOLS 16
#define NUM_BYTES 32   /* a formatted number or timestamp */

typedef struct pg_sink {
    pgp_sink_t base;
    char *dsn;
    char *instance;   /* NULL -> SQL NULL */
    PGconn *conn;
} pg_sink_t;

static const char create_table_sql[] =
    "CREATE UNLOGGED TABLE IF NOT EXISTS hyper_slow_queries (\n"
    "  id BIGSERIAL PRIMARY KEY, sql_text TEXT NOT NULL, duration_ms REAL NOT NULL,\n"
    "  params_summary TEXT, timestamp TIMESTAMPTZ NOT NULL DEFAULT now(),\n"
    "  fingerprint TEXT, normalized_sql TEXT, database_name TEXT, user_name TEXT,\n"
    "  application_name TEXT, client_addr TEXT, session_id BIGINT, request_id TEXT,\n"
    "  request_label TEXT, rows BIGINT, sqlstate TEXT, proxy_instance TEXT)";
static const char create_ts_index_sql[] =
    "CREATE INDEX IF NOT EXISTS hyper_slow_queries_timestamp_idx ON hyper_slow_queries "
    "(timestamp DESC)";
static const char create_dur_index_sql[] =
    "CREATE INDEX IF NOT EXISTS hyper_slow_queries_duration_idx ON hyper_slow_queries "
    "(duration_ms DESC)";

static const char *const added_columns[] = {
    "fingerprint", "normalized_sql", "database_name", "user_name", "application_name",
    "client_addr", "session_id", "request_id", "request_label", "rows", "sqlstate",
    "proxy_instance",
};
#define N_ADDED (sizeof(added_columns) / sizeof(added_columns[0]))

static const char add_columns_sql[] =
    "ALTER TABLE hyper_slow_queries"
    " ADD COLUMN IF NOT EXISTS fingerprint TEXT, ADD COLUMN IF NOT EXISTS normalized_sql TEXT,"
    " ADD COLUMN IF NOT EXISTS database_name TEXT, ADD COLUMN IF NOT EXISTS user_name TEXT,"
    " ADD COLUMN IF NOT EXISTS application_name TEXT, ADD COLUMN IF NOT EXISTS client_addr TEXT,"
    " ADD COLUMN IF NOT EXISTS session_id BIGINT, ADD COLUMN IF NOT EXISTS request_id TEXT,"
    " ADD COLUMN IF NOT EXISTS request_label TEXT, ADD COLUMN IF NOT EXISTS rows BIGINT,"
    " ADD COLUMN IF NOT EXISTS sqlstate TEXT, ADD COLUMN IF NOT EXISTS proxy_instance TEXT";

static const char columns_sql[] =
    "SELECT attname FROM pg_attribute WHERE attrelid = 'hyper_slow_queries'::regclass"
    " AND attnum > 0 AND NOT attisdropped";

static const char insert_head[] =
    "INSERT INTO hyper_slow_queries (sql_text, duration_ms, params_summary, timestamp,"
    " fingerprint, normalized_sql, database_name, user_name, application_name, client_addr,"
    " session_id, request_id, request_label, rows, sqlstate, proxy_instance) VALUES ";

static const char prune_sql[] =
    "DELETE FROM hyper_slow_queries WHERE id <= (SELECT id FROM hyper_slow_queries"
    " ORDER BY id DESC OFFSET $1 LIMIT 1)";

/* ------------------------------------------------------------------ UTF-8 */

/* Length of the valid UTF-8 sequence at s[0..n), or 0 when invalid; *sub = bytes of its maximal
 * invalid subpart (>= 1) in that case. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *sub)
{
    unsigned char c = s[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    *sub = 1;
    if (c >= 0x01 && c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 0;   /* NUL, stray continuation, C0/C1, F5..FF */
    }
    for (size_t i = 1; i < need; i++) {
        if (i >= n)
            return 0;
        unsigned char b = s[i];
        unsigned char l = i == 1 ? lo : 0x80, h = i == 1 ? hi : 0xBF;
        if (b < l || b > h)
            return 0;
        *sub = i + 1;
    }
    return need;
}

/* Copy s[0..n) to out (room for 3n+1) as valid UTF-8 without NUL; returns out's length. */
static size_t utf8_sanitize(const char *s, size_t n, char *out)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < n) {
        size_t sub, len = utf8_seq(p + i, n - i, &sub);
        if (len > 0) {
            memcpy(out + o, p + i, len);
            o += len;
            i += len;
        } else {
            memcpy(out + o, "\xef\xbf\xbd", 3);
            o += 3;
            i += sub;
        }
    }
    out[o] = '\0';
    return o;
}

/* ------------------------------------------------------------------ errors */

static bool is_class(const char *sqlstate, const char *cls)
{
    return sqlstate != NULL && sqlstate[0] == cls[0] && sqlstate[0] != '\0' &&
           sqlstate[1] == cls[1];
}

static bool sqlstate_is(const PGresult *res, const char *code)
{
    const char *st = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return st != NULL && strcmp(st, code) == 0;
}

/* Record the error of res (may be NULL) and classify it. */
static int fail_res(pg_sink_t *s, const char *what, PGresult *res)
{
    const char *msg = res != NULL ? PQresultErrorMessage(res) : NULL;
    if (msg == NULL || msg[0] == '\0')
        msg = PQerrorMessage(s->conn);
    pgp_sink_set_error(&s->base, what, msg);
    if (res == NULL)
        return PGP_SINK_ENOMEM;
    if (PQstatus(s->conn) != CONNECTION_OK)
        return PGP_SINK_EDOWN;
    const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    /* data exception, integrity violation, program limit exceeded: the values' fault */
    if (is_class(st, "22") || is_class(st, "23") || is_class(st, "54"))
        return PGP_SINK_EDATA;
    return PGP_SINK_EDOWN;
}

/* Run a utility statement; when a concurrent CREATE won the race (23505 unique_violation in a
 * catalog, 42P07 duplicate_table, 42710 duplicate_object: "type ... already exists") retry:
 * IF NOT EXISTS then sees the committed object. */
#define DDL_ATTEMPTS 3
static int exec_ddl(pg_sink_t *s, const char *sql, const char *what)
{
    for (int attempt = 0; attempt < DDL_ATTEMPTS; attempt++) {
        PGresult *res = PQexec(s->conn, sql);
        if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK) {
            PQclear(res);
            return 0;
        }
        bool race = sqlstate_is(res, "23505") || sqlstate_is(res, "42P07") ||
                    sqlstate_is(res, "42710");
        if (!race || attempt == DDL_ATTEMPTS - 1) {
            int rc = fail_res(s, what, res);
            PQclear(res);
            return rc == PGP_SINK_EDATA ? PGP_SINK_EDOWN : rc;
        }
        PQclear(res);
    }
    return PGP_SINK_EDOWN;
}

/* ------------------------------------------------------------------ open / close */

static void pg_close(pgp_sink_t *base)
{
    pg_sink_t *s = (pg_sink_t *)base;
    if (s->conn != NULL)
        PQfinish(s->conn);
    s->conn = NULL;
    base->is_open = false;
}

static int add_missing_columns(pg_sink_t *s)
{
    PGresult *res = PQexec(s->conn, columns_sql);
    if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK) {
        int rc = fail_res(s, "postgres columns", res);
        PQclear(res);
        return rc == PGP_SINK_EDATA ? PGP_SINK_EDOWN : rc;
    }
    size_t found = 0;
    for (size_t i = 0; i < N_ADDED; i++)
        for (int row = 0; row < PQntuples(res); row++)
            if (strcmp(PQgetvalue(res, row, 0), added_columns[i]) == 0) {
                found++;
                break;
            }
    PQclear(res);
    if (found == N_ADDED)
        return 0;
    return exec_ddl(s, add_columns_sql, "postgres add columns");
}

/* The server's NOTICEs ("relation already exists, skipping") are expected: not for stderr. */
static void on_pg_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static int pg_open(pgp_sink_t *base)
{
    pg_sink_t *s = (pg_sink_t *)base;
    pg_close(base);
    /* Keywords before dbname are overridden by the expanded DSN, those after override it. */
    /* A hung server must not hold the writer (and SIGTERM's flush) forever. */
    const char *const keys[] = {"connect_timeout", "keepalives_idle", "keepalives_interval",
                                "keepalives_count", "tcp_user_timeout", "options",
                                "dbname", "application_name", "client_encoding", NULL};
    const char *const vals[] = {"5", "10", "5", "3", "30000", "-c statement_timeout=30000",
                                s->dsn, "pgproxy-slowlog", "UTF8", NULL};
    s->conn = PQconnectdbParams(keys, vals, 1);
    if (s->conn == NULL) {
        pgp_sink_set_error(base, "postgres connect", "out of memory");
        return PGP_SINK_ENOMEM;
    }
    if (PQstatus(s->conn) != CONNECTION_OK) {
        pgp_sink_set_error(base, "postgres connect", PQerrorMessage(s->conn));
        pg_close(base);
        return PGP_SINK_EDOWN;
    }
    PQsetNoticeProcessor(s->conn, on_pg_notice, NULL);
    int rc = exec_ddl(s, create_table_sql, "postgres create table");
    if (rc == 0)
        rc = exec_ddl(s, create_ts_index_sql, "postgres create index");
    if (rc == 0)
        rc = exec_ddl(s, create_dur_index_sql, "postgres create index");
    if (rc == 0)
        rc = add_missing_columns(s);
    if (rc != 0) {
        pg_close(base);
        return rc;
    }
    base->is_open = true;
    base->last_error[0] = '\0';
    return 0;
}

/* ------------------------------------------------------------------ writes */

/* Arena bytes for a text value of len bytes after sanitizing (NULL needs none). */
static size_t text_room(const char *v, size_t len)
{
    return v == NULL ? 0 : 3 * len + 1;
}

static size_t cstr_room(const char *v)
{
    return v == NULL ? 0 : 3 * strnlen(v, 4096) + 1;
}

static const char *put_text(char **cur, const char *v, size_t len)
{
    if (v == NULL)
        return NULL;
    char *out = *cur;
    *cur += utf8_sanitize(v, len, out) + 1;
    return out;
}

static const char *put_cstr(char **cur, const char *v)
{
    return v == NULL ? NULL : put_text(cur, v, strnlen(v, 4096));
}

static const char *put_num(char **cur, const char *fmt_kind, int64_t iv, double dv)
{
    char *out = *cur;
    int k;
    if (fmt_kind[0] == 'd') {
        if (isnan(dv))
            k = snprintf(out, NUM_BYTES, "NaN");
        else if (isinf(dv))
            k = snprintf(out, NUM_BYTES, "%s", dv > 0 ? "Infinity" : "-Infinity");
        else
            k = snprintf(out, NUM_BYTES, "%.9g", dv);
    } else {
        k = snprintf(out, NUM_BYTES, "%lld", (long long)iv);
    }
    if (k < 0)
        k = 0;
    *cur += (size_t)k + 1;
    return out;
}

static int pg_write_batch(pgp_sink_t *base, pgp_sink_record_t *const *recs, size_t n)
{
    pg_sink_t *s = (pg_sink_t *)base;
    if (s->conn == NULL) {
        pgp_sink_set_error(base, "postgres", "not connected");
        return PGP_SINK_EDOWN;
    }
    size_t nparams = n * NCOLS;
    /* "($1,...,$16)," per row: at most 16 * 8 + 3 bytes */
    size_t sql_cap = sizeof(insert_head) + n * (NCOLS * 8 + 3) + 1;
    size_t arena_cap = 0;
    size_t inst_room = cstr_room(s->instance);
    for (size_t i = 0; i < n; i++) {
        const pgp_sink_record_t *r = recs[i];
        arena_cap += text_room(r->sql_text, r->sql_len) + text_room(r->params_summary, r->params_summary_len) +
                     text_room(r->normalized_sql, r->normalized_len) + cstr_room(r->database_name) +
                     cstr_room(r->user_name) + cstr_room(r->application_name) +
                     cstr_room(r->client_addr) + cstr_room(r->request_id) +
                     cstr_room(r->request_label) + cstr_room(r->sqlstate) + inst_room +
                     5 * NUM_BYTES;
    }
    char *sql = malloc(sql_cap);
    char *arena = malloc(arena_cap);
    const char **values = malloc(nparams * sizeof(*values));
    int rc = 0;
    if (sql == NULL || arena == NULL || values == NULL) {
        pgp_sink_set_error(base, "postgres insert", "out of memory");
        rc = PGP_SINK_ENOMEM;
        goto out;
    }

    size_t len = sizeof(insert_head) - 1;
    memcpy(sql, insert_head, len);
    char *cur = arena;
    for (size_t i = 0; i < n; i++) {
        const pgp_sink_record_t *r = recs[i];
        const char **v = values + i * NCOLS;
        sql[len++] = i == 0 ? '(' : ',';
        if (i > 0)
            sql[len++] = '(';
        for (size_t c = 0; c < NCOLS; c++) {
            int k = snprintf(sql + len, sql_cap - len, "%s$%zu", c == 0 ? "" : ",", i * NCOLS + c + 1);
            len += (size_t)(k > 0 ? k : 0);
        }
        sql[len++] = ')';
        v[0] = put_text(&cur, r->sql_text, r->sql_len);
        v[1] = put_num(&cur, "d", 0, r->duration_ms);
        v[2] = put_text(&cur, r->params_summary, r->params_summary_len);
        v[3] = cur;
        cur += pgp_sink_format_time(r->wall_ns, true, cur, NUM_BYTES) + 1;
        v[4] = cur;
        pgp_sink_format_fingerprint(r->fingerprint, cur);
        cur += 17;
        v[5] = put_text(&cur, r->normalized_sql, r->normalized_len);
        v[6] = put_cstr(&cur, r->database_name);
        v[7] = put_cstr(&cur, r->user_name);
        v[8] = put_cstr(&cur, r->application_name);
        v[9] = put_cstr(&cur, r->client_addr);
        v[10] = put_num(&cur, "i", (int64_t)r->session_id, 0);
        v[11] = put_cstr(&cur, r->request_id);
        v[12] = put_cstr(&cur, r->request_label);
        v[13] = r->rows >= 0 ? put_num(&cur, "i", r->rows, 0) : NULL;
        v[14] = put_cstr(&cur, r->sqlstate);
        v[15] = put_cstr(&cur, s->instance);
    }
    sql[len] = '\0';

    PGresult *res = PQexecParams(s->conn, sql, (int)nparams, NULL, values, NULL, NULL, 0);
    if (res != NULL && PQresultStatus(res) == PGRES_COMMAND_OK)
        rc = 0;
    else
        rc = fail_res(s, "postgres insert", res);
    PQclear(res);
out:
    free(values);
    free(arena);
    free(sql);
    return rc;
}

static int pg_prune(pgp_sink_t *base, uint64_t keep_rows)
{
    pg_sink_t *s = (pg_sink_t *)base;
    if (s->conn == NULL) {
        pgp_sink_set_error(base, "postgres", "not connected");
        return PGP_SINK_EDOWN;
    }
    char num[NUM_BYTES];
    snprintf(num, sizeof(num), "%llu",
             (unsigned long long)(keep_rows > (uint64_t)INT64_MAX ? (uint64_t)INT64_MAX : keep_rows));
    const char *vals[1] = {num};
    PGresult *res = PQexecParams(s->conn, prune_sql, 1, NULL, vals, NULL, NULL, 0);
    int rc = 0;
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = fail_res(s, "postgres prune", res);
        if (rc == PGP_SINK_EDATA)
            rc = PGP_SINK_EDOWN;
    }
    PQclear(res);
    return rc;
}

static void pg_free(pgp_sink_t *base)
{
    pg_sink_t *s = (pg_sink_t *)base;
    if (s == NULL)
        return;
    pg_close(base);
    free(s->dsn);
    free(s->instance);
    free(s);
}

static const pgp_sink_ops_t pg_ops = {
    .name = "postgres",
    .open = pg_open,
    .write_batch = pg_write_batch,
    .prune = pg_prune,
    .close = pg_close,
    .free = pg_free,
};

pgp_sink_t *pgp_sink_pg_new(const char *dsn, const char *proxy_instance)
{
    pg_sink_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->base.ops = &pg_ops;
    s->dsn = strdup(dsn);
    s->instance = proxy_instance != NULL ? strdup(proxy_instance) : NULL;
    if (s->dsn == NULL || (proxy_instance != NULL && s->instance == NULL)) {
        pg_free(&s->base);
        return NULL;
    }
    return &s->base;
}
