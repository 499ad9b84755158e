/*
 * sink_sqlite.c - the embedded slow-log sink: DESIGN §5's table
 * hyper_slow_queries in an sqlite3 file.
 *
 * Owns one sqlite3 connection and its prepared INSERT, used only by the
 * slow-log writer thread (blocking calls are expected there).  Types map
 * to sqlite's: id INTEGER PRIMARY KEY AUTOINCREMENT, REAL, TEXT, INTEGER;
 * the timestamp is ISO-8601 UTC text with milliseconds and a Z, so
 * ORDER BY timestamp sorts by time.  Text is bound with its exact bytes
 * (sqlite does not validate UTF-8).  The file runs in WAL mode with
 * synchronous=NORMAL and a busy timeout so readers (the sqlite3 CLI) and
 * other sidecars may share it.  Tables created by older versions with only
 * the first five columns get the missing ones (sqlite has no ADD COLUMN IF
 * NOT EXISTS: pragma table_info, inside one IMMEDIATE transaction).
 * Retention deletes every id at or below the (keep+1)-th newest (measured:
 * 30 ms with 1M rows kept).
 * Deliberately not here: queueing, retries (slowlog.c).
 */
#include "pgproxy/sink.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define SQLITE_BUSY_TIMEOUT_MS 5000
#define NCOLS 16

typedef struct sqlite_sink {
    pgp_sink_t base;
    char *path;
    char *instance;          /* NULL -> SQL NULL */
    sqlite3 *db;
    sqlite3_stmt *insert;
} sqlite_sink_t;

/* The columns added after the first five (id, sql_text, duration_ms, params_summary, timestamp). */
static const struct {
    const char *name;
    const char *type;
} added_columns[] = {
    {"fingerprint", "TEXT"},  {"normalized_sql", "TEXT"},   {"database_name", "TEXT"},
    {"user_name", "TEXT"},    {"application_name", "TEXT"}, {"client_addr", "TEXT"},
    {"session_id", "INTEGER"}, {"request_id", "TEXT"},      {"request_label", "TEXT"},
    {"rows", "INTEGER"},      {"sqlstate", "TEXT"},         {"proxy_instance", "TEXT"},
};
#define N_ADDED (sizeof(added_columns) / sizeof(added_columns[0]))

static const char create_sql[] =
    "CREATE TABLE IF NOT EXISTS " PGP_SINK_TABLE " ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, sql_text TEXT NOT NULL, duration_ms REAL NOT NULL,"
    " params_summary TEXT,"
    " timestamp TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),"
    " fingerprint TEXT, normalized_sql TEXT, database_name TEXT, user_name TEXT,"
    " application_name TEXT, client_addr TEXT, session_id INTEGER, request_id TEXT,"
    " request_label TEXT, rows INTEGER, sqlstate TEXT, proxy_instance TEXT)";

static const char index_sql[] =
    "CREATE INDEX IF NOT EXISTS " PGP_SINK_TABLE "_timestamp_idx ON " PGP_SINK_TABLE
    " (timestamp DESC);"
    "CREATE INDEX IF NOT EXISTS " PGP_SINK_TABLE "_duration_idx ON " PGP_SINK_TABLE
    " (duration_ms DESC)";

static const char insert_sql[] =
    "INSERT INTO " PGP_SINK_TABLE " (sql_text, duration_ms, params_summary, timestamp,"
    " fingerprint, normalized_sql, database_name, user_name, application_name, client_addr,"
    " session_id, request_id, request_label, rows, sqlstate, proxy_instance)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";

static const char prune_sql[] =
    "DELETE FROM " PGP_SINK_TABLE " WHERE id <= (SELECT id FROM " PGP_SINK_TABLE
    " ORDER BY id DESC LIMIT 1 OFFSET ?1)";

/* Map an sqlite result code to the sink's: values rejected vs everything else. */
static int classify(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:
    case SQLITE_TOOBIG:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
        return PGP_SINK_EDATA;
    case SQLITE_NOMEM:
        return PGP_SINK_ENOMEM;
    default:
        return PGP_SINK_EDOWN;
    }
}

static int fail_db(sqlite_sink_t *s, const char *what, int rc)
{
    pgp_sink_set_error(&s->base, what, s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
    return classify(rc);
}

static int exec(sqlite_sink_t *s, const char *sql, const char *what)
{
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : fail_db(s, what, rc);
}

static void sqlite_close(pgp_sink_t *base)
{
    sqlite_sink_t *s = (sqlite_sink_t *)base;
    sqlite3_finalize(s->insert);
    s->insert = NULL;
    if (s->db != NULL)
        sqlite3_close_v2(s->db);
    s->db = NULL;
    base->is_open = false;
}

/* Add the columns an older table lacks; inside the caller's transaction. */
static int add_missing_columns(sqlite_sink_t *s)
{
    bool have[N_ADDED] = {false};
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "PRAGMA table_info(" PGP_SINK_TABLE ")", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return fail_db(s, "sqlite table_info", rc);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *name = sqlite3_column_text(st, 1);
        for (size_t i = 0; name != NULL && i < N_ADDED; i++)
            if (sqlite3_stricmp((const char *)name, added_columns[i].name) == 0)
                have[i] = true;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return fail_db(s, "sqlite table_info", rc);
    for (size_t i = 0; i < N_ADDED; i++) {
        if (have[i])
            continue;
        char sql[160];
        /* Constant names and types from the table above: no value is spliced. */
        sqlite3_snprintf((int)sizeof(sql), sql, "ALTER TABLE %s ADD COLUMN %s %s", PGP_SINK_TABLE,
                         added_columns[i].name, added_columns[i].type);
        int erc = exec(s, sql, "sqlite add column");
        if (erc != 0)
            return erc;
    }
    return 0;
}

static int sqlite_open(pgp_sink_t *base)
{
    sqlite_sink_t *s = (sqlite_sink_t *)base;
    sqlite_close(base);
    int rc = sqlite3_open_v2(s->path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        int out = fail_db(s, "sqlite open", rc);
        sqlite_close(base);
        return out == PGP_SINK_EDATA ? PGP_SINK_EDOWN : out;
    }
    sqlite3_busy_timeout(s->db, SQLITE_BUSY_TIMEOUT_MS);
    int erc = exec(s, "PRAGMA journal_mode=WAL", "sqlite journal_mode");
    if (erc == 0)
        erc = exec(s, "PRAGMA synchronous=NORMAL", "sqlite synchronous");
    if (erc == 0)
        erc = exec(s, "BEGIN IMMEDIATE", "sqlite begin");
    if (erc == 0) {
        erc = exec(s, create_sql, "sqlite create table");
        if (erc == 0)
            erc = add_missing_columns(s);
        if (erc == 0)
            erc = exec(s, index_sql, "sqlite create index");
        if (erc == 0)
            erc = exec(s, "COMMIT", "sqlite commit");
        else
            (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    }
    if (erc == 0) {
        rc = sqlite3_prepare_v2(s->db, insert_sql, -1, &s->insert, NULL);
        if (rc != SQLITE_OK)
            erc = fail_db(s, "sqlite prepare insert", rc);
    }
    if (erc != 0) {
        sqlite_close(base);
        return erc == PGP_SINK_EDATA ? PGP_SINK_EDOWN : erc;
    }
    base->is_open = true;
    base->last_error[0] = '\0';
    return 0;
}

static int bind_text(sqlite3_stmt *st, int idx, const char *s, size_t len)
{
    if (s == NULL)
        return sqlite3_bind_null(st, idx);
    if (len > (size_t)INT_MAX)
        return SQLITE_TOOBIG;
    return sqlite3_bind_text(st, idx, s, (int)len, SQLITE_STATIC);
}

static int bind_cstr(sqlite3_stmt *st, int idx, const char *s)
{
    return s == NULL ? sqlite3_bind_null(st, idx) : sqlite3_bind_text(st, idx, s, -1, SQLITE_STATIC);
}

static int insert_one(sqlite_sink_t *s, const pgp_sink_record_t *r)
{
    sqlite3_stmt *st = s->insert;
    char ts[40], fp[17];
    size_t tn = pgp_sink_format_time(r->wall_ns, false, ts, sizeof(ts));
    pgp_sink_format_fingerprint(r->fingerprint, fp);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    int rc = bind_text(st, 1, r->sql_text, r->sql_len);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_double(st, 2, r->duration_ms);
    if (rc == SQLITE_OK)
        rc = bind_text(st, 3, r->params_summary, r->params_summary_len);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 4, ts, (int)tn, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 5, fp, 16, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK)
        rc = bind_text(st, 6, r->normalized_sql, r->normalized_len);
    if (rc == SQLITE_OK)
        rc = bind_cstr(st, 7, r->database_name);
    if (rc == SQLITE_OK)
        rc = bind_cstr(st, 8, r->user_name);
    if (rc == SQLITE_OK)
        rc = bind_cstr(st, 9, r->application_name);
    if (rc == SQLITE_OK)
        rc = bind_cstr(st, 10, r->client_addr);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 11, (sqlite3_int64)r->session_id);
    if (rc == SQLITE_OK)
        rc = bind_cstr(st, 12, r->request_id);
    if (rc == SQLITE_OK)
        rc = bind_cstr(st, 13, r->request_label);
    if (rc == SQLITE_OK)
        rc = r->rows >= 0 ? sqlite3_bind_int64(st, 14, r->rows) : sqlite3_bind_null(st, 14);
    if (rc == SQLITE_OK)
        rc = bind_cstr(st, 15, r->sqlstate);
    if (rc == SQLITE_OK)
        rc = bind_cstr(st, 16, s->instance);
    if (rc != SQLITE_OK) {
        sqlite3_reset(st);
        return fail_db(s, "sqlite bind", rc);
    }
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        int out = fail_db(s, "sqlite insert", rc);
        sqlite3_reset(st);
        return out;
    }
    sqlite3_reset(st);
    return 0;
}

static int sqlite_write_batch(pgp_sink_t *base, pgp_sink_record_t *const *recs, size_t n)
{
    sqlite_sink_t *s = (sqlite_sink_t *)base;
    if (s->db == NULL) {
        pgp_sink_set_error(base, "sqlite", "not open");
        return PGP_SINK_EDOWN;
    }
    int erc = exec(s, "BEGIN IMMEDIATE", "sqlite begin");
    if (erc != 0)
        return erc == PGP_SINK_EDATA ? PGP_SINK_EDOWN : erc;
    for (size_t i = 0; i < n && erc == 0; i++)
        erc = insert_one(s, recs[i]);
    if (erc == 0)
        erc = exec(s, "COMMIT", "sqlite commit");
    if (erc != 0) {
        (void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return erc;
    }
    return 0;
}

static int sqlite_prune(pgp_sink_t *base, uint64_t keep_rows)
{
    sqlite_sink_t *s = (sqlite_sink_t *)base;
    if (s->db == NULL) {
        pgp_sink_set_error(base, "sqlite", "not open");
        return PGP_SINK_EDOWN;
    }
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, prune_sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 1, keep_rows > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)keep_rows);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    int out = rc == SQLITE_OK ? 0 : fail_db(s, "sqlite prune", rc);
    sqlite3_finalize(st);
    return out == PGP_SINK_EDATA ? PGP_SINK_EDOWN : out;
}

static void sqlite_free(pgp_sink_t *base)
{
    sqlite_sink_t *s = (sqlite_sink_t *)base;
    if (s == NULL)
        return;
    sqlite_close(base);
    free(s->path);
    free(s->instance);
    free(s);
}

static const pgp_sink_ops_t sqlite_ops = {
    .name = "sqlite",
    .open = sqlite_open,
    .write_batch = sqlite_write_batch,
    .prune = sqlite_prune,
    .close = sqlite_close,
    .free = sqlite_free,
};

pgp_sink_t *pgp_sink_sqlite_new(const char *path, const char *proxy_instance)
{
    sqlite_sink_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->base.ops = &sqlite_ops;
    s->path = strdup(path);
    s->instance = proxy_instance != NULL ? strdup(proxy_instance) : NULL;
    if (s->path == NULL || (proxy_instance != NULL && s->instance == NULL)) {
        sqlite_free(&s->base);
        return NULL;
    }
    return &s->base;
}
