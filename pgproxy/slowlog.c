/*
 * slowlog.c - the slow-query log: the bounded queue the relay loops feed,
 * the writer thread that drains it into a sink (sink_sqlite.c,
 * sink_pg.c) with batching, retry/backoff and retention pruning, the ring
 * of recent slow statements and its JSON renderer.
 *
 * Owns every record it accepted (one allocation each, reference counted
 * because the queue and the recent ring may hold the same one), the queue
 * and ring arrays, the writer thread and the sink.  One mutex guards queue,
 * ring and counters; it is held for O(1) work on the submit path and never
 * across I/O.  The writer takes a batch by copying pointers from the queue
 * head, writes it unlocked, and only then pops it, so a failed batch stays
 * at the head (no loss, no duplicate: a batch is one transaction).
 * Deliberately not here: SQL, files, sockets (the sinks), config parsing,
 * metrics rendering (the lead's admin module reads pgp_slowlog_get_stats).
 */
#include "pgproxy/slowlog.h"

#include "pgproxy/log.h"
#include "pgproxy/sink.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_PER_MS UINT64_C(1000000)
#define DEFAULT_RETRY_INITIAL_MS 100u
#define DEFAULT_RETRY_MAX_MS 10000u
#define DEFAULT_PRUNE_INTERVAL_MS 10000u

struct pgp_slowlog {
    pgp_slowlog_sink_kind_t kind;
    size_t max_sql_bytes;
    size_t batch_size;
    uint64_t retention_rows;
    uint64_t retry_initial_ms, retry_max_ms, prune_interval_ms;
    pgp_sink_t *sink;              /* used by the writer thread only once it runs */
    pthread_t thread;
    bool thread_started;

    pthread_mutex_t mu;
    pthread_cond_t wake;           /* the writer waits on it (CLOCK_MONOTONIC) */
    /* --- everything below under mu --- */
    pgp_sink_record_t **queue;     /* ring buffer: head .. head+count */
    size_t queue_cap, queue_head, queue_count;
    pgp_sink_record_t **recent;    /* ring: next write at recent_next */
    size_t recent_cap, recent_next, recent_count;
    uint64_t submitted, written, dropped, errors;
    bool sink_up;
    bool writer_waiting;        /* in cond_wait for any new record */
    bool writer_lingering;      /* waiting for a batch to fill: wake only when it is full */
    uint64_t first_queued_ns;   /* when the queue last went from empty to not empty */
    bool stopping;
    uint64_t deadline_ns;          /* monotonic, valid when stopping */
    char last_error[PGP_SINK_ERROR_BYTES];
};

/* ------------------------------------------------------------------ helpers shared with sinks */

static void put_digits(char *p, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10u);
        v /= 10u;
    }
}

size_t pgp_sink_format_time(uint64_t wall_ns, bool pg_micros, char *out, size_t cap)
{
    char buf[40];
    time_t secs = (time_t)(wall_ns / UINT64_C(1000000000));
    unsigned frac_ns = (unsigned)(wall_ns % UINT64_C(1000000000));
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL)
        memset(&tm, 0, sizeof(tm));
    unsigned year = tm.tm_year + 1900 < 0 ? 0u : (unsigned)(tm.tm_year + 1900);
    if (year > 9999u)
        year = 9999u;
    put_digits(buf, year, 4);
    buf[4] = '-';
    put_digits(buf + 5, (unsigned)tm.tm_mon + 1u, 2);
    buf[7] = '-';
    put_digits(buf + 8, (unsigned)tm.tm_mday, 2);
    buf[10] = pg_micros ? ' ' : 'T';
    put_digits(buf + 11, (unsigned)tm.tm_hour, 2);
    buf[13] = ':';
    put_digits(buf + 14, (unsigned)tm.tm_min, 2);
    buf[16] = ':';
    put_digits(buf + 17, (unsigned)tm.tm_sec, 2);
    buf[19] = '.';
    size_t n;
    if (pg_micros) {
        put_digits(buf + 20, frac_ns / 1000u, 6);
        memcpy(buf + 26, "+00", 3);
        n = 29;
    } else {
        put_digits(buf + 20, frac_ns / 1000000u, 3);
        buf[23] = 'Z';
        n = 24;
    }
    if (cap == 0)
        return 0;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, buf, n);
    out[n] = '\0';
    return n;
}

void pgp_sink_format_fingerprint(uint64_t fp, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        out[i] = hex[fp & 0xfu];
        fp >>= 4;
    }
    out[16] = '\0';
}

void pgp_sink_set_error(pgp_sink_t *s, const char *what, const char *detail)
{
    size_t cap = sizeof(s->last_error), n = 0;
    const char *parts[3] = {what, detail != NULL ? ": " : NULL, detail};
    for (size_t p = 0; p < 3; p++) {
        const char *t = parts[p];
        if (t == NULL)
            continue;
        for (size_t i = 0; t[i] != '\0' && n + 1 < cap; i++) {
            char c = t[i];
            s->last_error[n++] = (c == '\n' || c == '\r' || c == '\t') ? ' ' : c;
        }
    }
    while (n > 0 && s->last_error[n - 1] == ' ')
        n--;
    s->last_error[n] = '\0';
}

/* ------------------------------------------------------------------ time */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static uint64_t wall_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

static void abs_timespec(uint64_t mono_deadline_ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(mono_deadline_ns / UINT64_C(1000000000));
    ts->tv_nsec = (long)(mono_deadline_ns % UINT64_C(1000000000));
}

/* ------------------------------------------------------------------ records */

static void record_release(pgp_sink_record_t *rec)
{
    if (rec != NULL && atomic_fetch_sub(&rec->refs, 1u) == 1u)
        free(rec);
}

/* Bytes of s[0..len) kept under `cap`, cut back so a UTF-8 sequence is not split. */
static size_t utf8_cut(const char *s, size_t len, size_t cap)
{
    if (len <= cap)
        return len;
    size_t keep = cap;
    for (int back = 0; back < 3 && keep > 0 && ((unsigned char)s[keep] & 0xC0u) == 0x80u; back++)
        keep--;
    if (keep > 0 && ((unsigned char)s[keep] & 0xC0u) == 0x80u)
        keep = cap;   /* not UTF-8 anyway: keep the bytes as they are */
    return keep;
}

typedef struct copy_plan {
    const char *src;
    size_t len;
    bool present;
} copy_plan_t;

static copy_plan_t plan_cstr(const char *s, size_t cap)
{
    copy_plan_t p = {s, 0, s != NULL};
    if (s != NULL)
        p.len = strnlen(s, cap);
    return p;
}

static copy_plan_t plan_bytes(const char *s, size_t len, size_t cap)
{
    copy_plan_t p = {s, 0, s != NULL};
    if (s != NULL)
        p.len = utf8_cut(s, len, cap);
    return p;
}

/* Copy a planned string to *cur; returns the copy or NULL when absent. */
static const char *emit(char **cur, const copy_plan_t *p)
{
    if (!p->present)
        return NULL;
    char *dst = *cur;
    if (p->len > 0)
        memcpy(dst, p->src, p->len);
    dst[p->len] = '\0';
    *cur += p->len + 1;
    return dst;
}

static pgp_sink_record_t *record_copy(const pgp_slowlog_t *log, const pgp_slow_record_t *in)
{
    static const char marker[] = PGP_SLOWLOG_TRUNC_MARKER;
    const size_t marker_len = sizeof(marker) - 1;
    const char *sql = in->sql_text != NULL ? in->sql_text : "";
    size_t sql_in = in->sql_text != NULL ? in->sql_len : 0;
    size_t sql_keep = utf8_cut(sql, sql_in, log->max_sql_bytes);
    bool truncated = in->sql_truncated || sql_keep < sql_in;

    enum { NORM, PARAMS, DB, USER, APP, ADDR, REQID, LABEL, STATE, NPLANS };
    copy_plan_t plan[NPLANS];
    plan[NORM] = plan_bytes(in->normalized_sql, in->normalized_len, log->max_sql_bytes);
    plan[PARAMS] = plan_bytes(in->params_summary, in->params_summary_len, PGP_SLOWLOG_PARAMS_BYTES);
    plan[DB] = plan_cstr(in->database_name, PGP_SLOWLOG_NAME_BYTES);
    plan[USER] = plan_cstr(in->user_name, PGP_SLOWLOG_NAME_BYTES);
    plan[APP] = plan_cstr(in->application_name, PGP_SLOWLOG_NAME_BYTES);
    plan[ADDR] = plan_cstr(in->client_addr, PGP_SLOWLOG_NAME_BYTES);
    plan[REQID] = plan_cstr(in->request_id, PGP_SLOWLOG_NAME_BYTES);
    plan[LABEL] = plan_cstr(in->request_label, PGP_SLOWLOG_NAME_BYTES);
    plan[STATE] = plan_cstr(in->sqlstate, PGP_SLOWLOG_NAME_BYTES);
    if (plan[STATE].present && plan[STATE].len == 0)
        plan[STATE].present = false;   /* "" -> NULL */

    size_t total = sizeof(pgp_sink_record_t) + sql_keep + (truncated ? marker_len : 0) + 1;
    for (size_t i = 0; i < NPLANS; i++)
        if (plan[i].present)
            total += plan[i].len + 1;

    pgp_sink_record_t *rec = malloc(total);
    if (rec == NULL)
        return NULL;
    char *cur = (char *)(rec + 1);
    atomic_init(&rec->refs, 1u);
    rec->sql_text = cur;
    if (sql_keep > 0)
        memcpy(cur, sql, sql_keep);
    if (truncated)
        memcpy(cur + sql_keep, marker, marker_len);
    rec->sql_len = sql_keep + (truncated ? marker_len : 0);
    cur[rec->sql_len] = '\0';
    cur += rec->sql_len + 1;

    rec->duration_ms = in->duration_ms;
    rec->params_summary = emit(&cur, &plan[PARAMS]);
    rec->params_summary_len = plan[PARAMS].len;
    rec->wall_ns = in->wall_ns != 0 ? in->wall_ns : wall_now_ns();
    rec->fingerprint = in->fingerprint;
    rec->normalized_sql = emit(&cur, &plan[NORM]);
    rec->normalized_len = plan[NORM].len;
    rec->database_name = emit(&cur, &plan[DB]);
    rec->user_name = emit(&cur, &plan[USER]);
    rec->application_name = emit(&cur, &plan[APP]);
    rec->client_addr = emit(&cur, &plan[ADDR]);
    rec->session_id = in->session_id;
    rec->request_id = emit(&cur, &plan[REQID]);
    rec->request_label = emit(&cur, &plan[LABEL]);
    rec->rows = in->rows < 0 ? -1 : in->rows;
    rec->sqlstate = emit(&cur, &plan[STATE]);
    return rec;
}

/* ------------------------------------------------------------------ submit and stats */

bool pgp_slowlog_submit(pgp_slowlog_t *log, const pgp_slow_record_t *in)
{
    pgp_sink_record_t *rec = record_copy(log, in);
    pgp_sink_record_t *evicted = NULL;
    bool queued = log->kind == PGP_SLOWLOG_NONE;
    if (rec != NULL && log->kind != PGP_SLOWLOG_NONE)
        atomic_store(&rec->refs, 2u);   /* the ring's reference and the queue's */

    pthread_mutex_lock(&log->mu);
    log->submitted++;
    if (rec == NULL) {
        log->dropped += log->kind != PGP_SLOWLOG_NONE;
        pthread_mutex_unlock(&log->mu);
        return false;
    }
    evicted = log->recent[log->recent_next];
    log->recent[log->recent_next] = rec;
    log->recent_next = (log->recent_next + 1) % log->recent_cap;
    if (log->recent_count < log->recent_cap)
        log->recent_count++;
    if (log->kind != PGP_SLOWLOG_NONE) {
        if (!log->stopping && log->queue_count < log->queue_cap) {
            log->queue[(log->queue_head + log->queue_count) % log->queue_cap] = rec;
            if (log->queue_count++ == 0)
                log->first_queued_ns = mono_ns();
            queued = true;
            if (log->writer_waiting ||
                (log->writer_lingering && log->queue_count >= log->batch_size))
                pthread_cond_signal(&log->wake);
        } else {
            log->dropped++;
        }
    }
    pthread_mutex_unlock(&log->mu);

    if (!queued)
        record_release(rec);   /* the queue's reference */
    record_release(evicted);
    return queued;
}

void pgp_slowlog_get_stats(pgp_slowlog_t *log, pgp_slowlog_stats_t *out)
{
    memset(out, 0, sizeof(*out));
    pthread_mutex_lock(&log->mu);
    out->submitted_total = log->submitted;
    out->queue_depth = log->queue_count;
    out->written_total = log->written;
    out->dropped_total = log->dropped;
    out->sink_errors_total = log->errors;
    out->sink_up = log->sink_up;
    memcpy(out->last_error, log->last_error, sizeof(out->last_error));
    pthread_mutex_unlock(&log->mu);
    out->last_error[sizeof(out->last_error) - 1] = '\0';
}

/* ------------------------------------------------------------------ writer thread */

typedef struct writer_state {
    pgp_sink_record_t *batch[PGP_SLOWLOG_MAX_BATCH_SIZE];
    uint64_t backoff_ms;        /* next wait after a failure */
    uint64_t retry_at_ns;       /* monotonic; 0 = no wait pending */
    unsigned batch_attempts;    /* failed attempts of the batch at the head */
    unsigned record_attempts;   /* single mode: failed writes of the record at the head */
    size_t single_left;         /* > 0: write this many records one by one */
    bool dirty;                 /* rows written since the last prune */
    uint64_t last_prune_ns;
} writer_state_t;

static bool prune_due(const pgp_slowlog_t *log, const writer_state_t *w, uint64_t now)
{
    return log->retention_rows > 0 && w->dirty &&
           now - w->last_prune_ns >= log->prune_interval_ms * NS_PER_MS;
}

/* Pop n records from the queue head into out (mu held). */
static void queue_pop(pgp_slowlog_t *log, size_t n, pgp_sink_record_t **out)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = log->queue[log->queue_head];
        log->queue[log->queue_head] = NULL;
        log->queue_head = (log->queue_head + 1) % log->queue_cap;
    }
    log->queue_count -= n;
}

static void log_transition(bool up, const pgp_slowlog_t *log, const char *err)
{
    if (up)
        pgp_log(PGP_LOG_INFO, "slow log sink up", "sink", log->sink->ops->name, NULL);
    else
        pgp_log(PGP_LOG_WARN, "slow log sink down", "sink", log->sink->ops->name, "error", err,
                NULL);
}

static void *writer_main(void *arg)
{
    pgp_slowlog_t *log = arg;
    pgp_sink_t *sink = log->sink;
    writer_state_t state;   /* ~8 KB: the batch array */
    writer_state_t *w = &state;
    memset(w, 0, sizeof(*w));
    int shown_up = -1;   /* the sink state last logged: -1 none yet, so a sink down at start is logged */
    w->backoff_ms = log->retry_initial_ms;
    w->last_prune_ns = mono_ns() - log->prune_interval_ms * NS_PER_MS;

    for (;;) {
        bool exit_now = false, do_prune = false;
        size_t n = 0;

        pthread_mutex_lock(&log->mu);
        for (;;) {
            uint64_t now = mono_ns();
            bool linger = false;
            if (log->stopping && (log->queue_count == 0 || now >= log->deadline_ns)) {
                exit_now = true;
                break;
            }
            uint64_t wait_until = 0;   /* 0 = no timeout */
            if (w->retry_at_ns > now) {
                wait_until = w->retry_at_ns;
            } else if (prune_due(log, w, now)) {   /* before the queue: a busy log prunes too */
                do_prune = true;
                break;
            } else if (log->queue_count >= log->batch_size || log->stopping ||
                       (log->queue_count > 0 &&
                        now >= log->first_queued_ns + PGP_SLOWLOG_LINGER_MS * NS_PER_MS)) {
                break;
            } else if (log->queue_count > 0) {
                /* Let a batch gather: one transaction per record would cost the sink's
                 * server far more than the records themselves (measured: 12 % of tps). */
                wait_until = log->first_queued_ns + PGP_SLOWLOG_LINGER_MS * NS_PER_MS;
                linger = true;
            } else if (log->retention_rows > 0 && w->dirty) {
                wait_until = w->last_prune_ns + log->prune_interval_ms * NS_PER_MS;
            }
            if (log->stopping && (wait_until == 0 || wait_until > log->deadline_ns))
                wait_until = log->deadline_ns;
            /* In a backoff new records need not wake us, nor while a batch gathers
             * (then only a full batch does): spare the submitter the signal. */
            log->writer_waiting = w->retry_at_ns <= now && !linger;
            log->writer_lingering = linger;
            if (wait_until == 0) {
                pthread_cond_wait(&log->wake, &log->mu);
            } else {
                struct timespec ts;
                abs_timespec(wait_until, &ts);
                (void)pthread_cond_timedwait(&log->wake, &log->mu, &ts);
            }
            log->writer_waiting = false;
            log->writer_lingering = false;
        }
        if (exit_now) {
            size_t left = log->queue_count;
            bool in_time = left == 0;
            log->dropped += left;
            pthread_mutex_unlock(&log->mu);
            /* Release outside the lock, in chunks (the batch array is the scratch). */
            while (left > 0) {
                size_t k = left < PGP_SLOWLOG_MAX_BATCH_SIZE ? left : PGP_SLOWLOG_MAX_BATCH_SIZE;
                pthread_mutex_lock(&log->mu);
                queue_pop(log, k, w->batch);
                pthread_mutex_unlock(&log->mu);
                for (size_t i = 0; i < k; i++)
                    record_release(w->batch[i]);
                left -= k;
            }
            if (in_time && log->retention_rows > 0 && w->dirty && sink->is_open)
                (void)sink->ops->prune(sink, log->retention_rows);
            break;
        }
        if (!do_prune) {
            n = log->queue_count < log->batch_size ? log->queue_count : log->batch_size;
            if (w->single_left > 0)
                n = 1;
            for (size_t i = 0; i < n; i++)
                w->batch[i] = log->queue[(log->queue_head + i) % log->queue_cap];
        }
        pthread_mutex_unlock(&log->mu);

        /* ---- I/O, unlocked ---- */
        bool attempted_write = false;
        int rc = 0;
        if (!sink->is_open)
            rc = sink->ops->open(sink);
        if (rc == 0 && n > 0) {
            attempted_write = true;
            rc = sink->ops->write_batch(sink, w->batch, n);
        } else if (rc == 0 && do_prune) {
            rc = sink->ops->prune(sink, log->retention_rows);
            w->last_prune_ns = mono_ns();
            if (rc == 0)
                w->dirty = false;
        }

        size_t npop = 0;
        bool now_up;
        char errcopy[PGP_SINK_ERROR_BYTES];
        pthread_mutex_lock(&log->mu);
        if (rc == 0) {
            npop = n;
            log->written += n;
            log->sink_up = true;
            log->last_error[0] = '\0';
            w->backoff_ms = log->retry_initial_ms;
            w->retry_at_ns = 0;
            w->batch_attempts = 0;
            w->record_attempts = 0;
            if (w->single_left > 0)
                w->single_left -= n;
            if (n > 0)
                w->dirty = true;
        } else {
            log->errors++;
            log->sink_up = false;
            memcpy(log->last_error, sink->last_error, sizeof(log->last_error));
            if (attempted_write && n == 1 && w->single_left > 0 && rc != PGP_SINK_EDATA)
                w->record_attempts++;
            if (attempted_write && n == 1 &&
                (rc == PGP_SINK_EDATA || w->record_attempts >= PGP_SLOWLOG_MAX_RECORD_ATTEMPTS)) {
                /* The store rejects this record itself (or keeps failing on it): give it up. */
                npop = 1;
                log->dropped++;
                if (w->single_left > 0)
                    w->single_left--;
                w->batch_attempts = 0;
                w->record_attempts = 0;
            } else if (attempted_write && w->single_left == 0 &&
                       (rc == PGP_SINK_EDATA ||
                        ++w->batch_attempts >= PGP_SLOWLOG_ATTEMPTS_BEFORE_SINGLE)) {
                w->single_left = n;   /* find the culprit: one by one */
                w->batch_attempts = 0;
            }
            if (rc != PGP_SINK_EDATA) {   /* the sink itself failed: wait before reconnecting */
                w->retry_at_ns = mono_ns() + w->backoff_ms * NS_PER_MS;
                w->backoff_ms = w->backoff_ms * 2 > log->retry_max_ms ? log->retry_max_ms
                                                                     : w->backoff_ms * 2;
            }
        }
        queue_pop(log, npop, w->batch);
        now_up = log->sink_up;
        memcpy(errcopy, log->last_error, sizeof(errcopy));
        pthread_mutex_unlock(&log->mu);

        if (rc != 0 && rc != PGP_SINK_EDATA)
            sink->ops->close(sink);   /* reconnect (and ensure_table again) next time */
        if (npop == 1 && rc != 0)
            pgp_log(PGP_LOG_WARN, "slow log record rejected by the sink, dropped", "sink",
                    sink->ops->name, "error", errcopy, NULL);
        else if (rc != PGP_SINK_EDATA && shown_up != (int)now_up) {
            log_transition(now_up, log, errcopy);
            shown_up = (int)now_up;
        }
        for (size_t i = 0; i < npop; i++)
            record_release(w->batch[i]);
    }
    sink->ops->close(sink);
    return NULL;
}

/* ------------------------------------------------------------------ create / destroy */

static void set_err(char *err, size_t errcap, const char *msg)
{
    if (err != NULL && errcap > 0)
        snprintf(err, errcap, "%s", msg);
}

pgp_slowlog_t *pgp_slowlog_create(const pgp_slowlog_config_t *cfg, char *err, size_t errcap)
{
    set_err(err, errcap, "");
    if (cfg->sink != PGP_SLOWLOG_NONE && cfg->sink != PGP_SLOWLOG_SQLITE &&
        cfg->sink != PGP_SLOWLOG_POSTGRES) {
        set_err(err, errcap, "slow_log.sink: unknown sink kind");
        return NULL;
    }
    if (cfg->sink == PGP_SLOWLOG_SQLITE && (cfg->sqlite_path == NULL || cfg->sqlite_path[0] == '\0')) {
        set_err(err, errcap, "slow_log.sqlite_path must not be empty with sink = \"sqlite\"");
        return NULL;
    }
    if (cfg->sink == PGP_SLOWLOG_POSTGRES && (cfg->dsn == NULL || cfg->dsn[0] == '\0')) {
        set_err(err, errcap, "slow_log.dsn must not be empty with sink = \"postgres\"");
        return NULL;
    }
    if (cfg->queue_size > PGP_SLOWLOG_MAX_QUEUE_SIZE) {
        set_err(err, errcap, "slow_log.queue_size too large (max 16777216)");
        return NULL;
    }
    if (cfg->recent_size > PGP_SLOWLOG_MAX_RECENT_SIZE) {
        set_err(err, errcap, "slow log recent ring too large (max 100000)");
        return NULL;
    }
    if (cfg->batch_size > PGP_SLOWLOG_MAX_BATCH_SIZE) {
        set_err(err, errcap, "slow log batch_size too large (max 1000)");
        return NULL;
    }

    pgp_slowlog_t *log = calloc(1, sizeof(*log));
    if (log == NULL) {
        set_err(err, errcap, "out of memory");
        return NULL;
    }
    log->kind = cfg->sink;
    log->max_sql_bytes = cfg->max_sql_bytes != 0 ? cfg->max_sql_bytes : PGP_SLOWLOG_DEFAULT_MAX_SQL_BYTES;
    log->batch_size = cfg->batch_size != 0 ? cfg->batch_size : PGP_SLOWLOG_DEFAULT_BATCH_SIZE;
    log->retention_rows = cfg->retention_rows;
    log->retry_initial_ms = cfg->retry_initial_ms != 0 ? cfg->retry_initial_ms : DEFAULT_RETRY_INITIAL_MS;
    log->retry_max_ms = cfg->retry_max_ms != 0 ? cfg->retry_max_ms : DEFAULT_RETRY_MAX_MS;
    if (log->retry_max_ms < log->retry_initial_ms)
        log->retry_max_ms = log->retry_initial_ms;
    log->prune_interval_ms = cfg->prune_interval_ms != 0 ? cfg->prune_interval_ms : DEFAULT_PRUNE_INTERVAL_MS;
    log->queue_cap = cfg->queue_size != 0 ? cfg->queue_size : PGP_SLOWLOG_DEFAULT_QUEUE_SIZE;
    log->recent_cap = cfg->recent_size != 0 ? cfg->recent_size : PGP_SLOWLOG_DEFAULT_RECENT_SIZE;

    pthread_condattr_t ca;
    bool mu_ok = false, cond_ok = false;
    if (pthread_mutex_init(&log->mu, NULL) == 0)
        mu_ok = true;
    if (mu_ok && pthread_condattr_init(&ca) == 0) {
        if (pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
            pthread_cond_init(&log->wake, &ca) == 0)
            cond_ok = true;
        pthread_condattr_destroy(&ca);
    }
    if (!cond_ok) {
        set_err(err, errcap, "slow log: mutex/condition init failed");
        goto fail;
    }
    log->recent = calloc(log->recent_cap, sizeof(*log->recent));
    if (log->recent == NULL) {
        set_err(err, errcap, "out of memory");
        goto fail;
    }
    if (log->kind == PGP_SLOWLOG_NONE)
        return log;

    log->queue = calloc(log->queue_cap, sizeof(*log->queue));
    if (log->queue == NULL) {
        set_err(err, errcap, "out of memory");
        goto fail;
    }
    log->sink = log->kind == PGP_SLOWLOG_SQLITE
                    ? pgp_sink_sqlite_new(cfg->sqlite_path, cfg->proxy_instance)
                    : pgp_sink_pg_new(cfg->dsn, cfg->proxy_instance);
    if (log->sink == NULL) {
        set_err(err, errcap, "out of memory");
        goto fail;
    }
    int prc = pthread_create(&log->thread, NULL, writer_main, log);
    if (prc != 0) {
        set_err(err, errcap, "slow log: cannot start the writer thread");
        goto fail;
    }
    log->thread_started = true;
    return log;

fail:
    if (log->sink != NULL)
        log->sink->ops->free(log->sink);
    free(log->queue);
    free(log->recent);
    if (cond_ok)
        pthread_cond_destroy(&log->wake);
    if (mu_ok)
        pthread_mutex_destroy(&log->mu);
    free(log);
    return NULL;
}

void pgp_slowlog_destroy(pgp_slowlog_t *log, uint64_t flush_timeout_ms)
{
    if (log == NULL)
        return;
    if (log->thread_started) {
        pthread_mutex_lock(&log->mu);
        log->stopping = true;
        log->deadline_ns = mono_ns() + flush_timeout_ms * NS_PER_MS;
        pthread_cond_signal(&log->wake);
        pthread_mutex_unlock(&log->mu);
        pthread_join(log->thread, NULL);
    }
    /* Whatever is still queued (writer gone without draining) counts as dropped. */
    for (size_t i = 0; i < log->queue_count; i++)
        record_release(log->queue[(log->queue_head + i) % log->queue_cap]);
    for (size_t i = 0; i < log->recent_cap; i++)
        record_release(log->recent[i]);
    if (log->sink != NULL)
        log->sink->ops->free(log->sink);
    free(log->queue);
    free(log->recent);
    pthread_cond_destroy(&log->wake);
    pthread_mutex_destroy(&log->mu);
    free(log);
}

/* ------------------------------------------------------------------ recent ring */

void pgp_slowlog_clear_recent(pgp_slowlog_t *log)
{
    pthread_mutex_lock(&log->mu);
    for (size_t i = 0; i < log->recent_cap; i++) {
        record_release(log->recent[i]);
        log->recent[i] = NULL;
    }
    log->recent_next = 0;
    log->recent_count = 0;
    pthread_mutex_unlock(&log->mu);
}

static void render_record(pgp_render_t *r, const pgp_sink_record_t *rec)
{
    char ts[40], fp[17];
    pgp_render_json_begin_object(r);
    pgp_render_json_key(r, "sql");
    pgp_render_json_string(r, rec->sql_text, rec->sql_len);
    pgp_render_json_key(r, "duration_ms");
    pgp_render_json_double(r, rec->duration_ms, 3);
    size_t tn = pgp_sink_format_time(rec->wall_ns, false, ts, sizeof(ts));
    pgp_render_json_key(r, "timestamp");
    pgp_render_json_string(r, ts, tn);
    pgp_sink_format_fingerprint(rec->fingerprint, fp);
    pgp_render_json_key(r, "fingerprint");
    pgp_render_json_string(r, fp, 16);
    pgp_render_json_key(r, "normalized");
    if (rec->normalized_sql != NULL)
        pgp_render_json_string(r, rec->normalized_sql, rec->normalized_len);
    else
        pgp_render_json_null(r);
    pgp_render_json_kv_str(r, "database", rec->database_name);
    pgp_render_json_kv_str(r, "user", rec->user_name);
    pgp_render_json_kv_str(r, "application_name", rec->application_name);
    pgp_render_json_kv_str(r, "client_addr", rec->client_addr);
    pgp_render_json_key(r, "session_id");
    pgp_render_json_uint(r, rec->session_id);
    pgp_render_json_kv_str(r, "request_id", rec->request_id);
    pgp_render_json_kv_str(r, "request_label", rec->request_label);
    pgp_render_json_key(r, "rows");
    if (rec->rows >= 0)
        pgp_render_json_int(r, rec->rows);
    else
        pgp_render_json_null(r);
    pgp_render_json_kv_str(r, "sqlstate", rec->sqlstate);
    pgp_render_json_key(r, "params");
    if (rec->params_summary != NULL)
        pgp_render_json_string(r, rec->params_summary, rec->params_summary_len);
    else
        pgp_render_json_null(r);
    pgp_render_json_end_object(r);
}

int pgp_slowlog_render_recent(pgp_slowlog_t *log, size_t limit, pgp_render_t *r)
{
    /* Take references under the lock, render without it. */
    pgp_sink_record_t **refs = malloc(log->recent_cap * sizeof(*refs));
    if (refs == NULL)
        return PGP_RENDER_ENOMEM;   /* r untouched */
    size_t n = 0;
    pthread_mutex_lock(&log->mu);
    size_t want = log->recent_count;
    if (limit != 0 && limit < want)
        want = limit;
    for (size_t i = 0; i < want; i++) {
        size_t idx = (log->recent_next + log->recent_cap - 1 - i) % log->recent_cap;
        pgp_sink_record_t *rec = log->recent[idx];
        if (rec == NULL)
            break;
        atomic_fetch_add(&rec->refs, 1u);
        refs[n++] = rec;
    }
    pthread_mutex_unlock(&log->mu);

    pgp_render_json_begin_array(r);
    for (size_t i = 0; i < n; i++)
        render_record(r, refs[i]);
    pgp_render_json_end_array(r);
    for (size_t i = 0; i < n; i++)
        record_release(refs[i]);
    free(refs);
    return pgp_render_error(r);
}
