/*
 * track.c - protocol tracking: statements, portals, the expected-response
 * FIFO, and one event per statement.
 *
 * Client messages push expectations (Parse -> ParseComplete, Bind ->
 * BindComplete, Describe -> RowDescription/NoData, Execute -> rows and a
 * completion, Close -> CloseComplete, Sync/Query/FunctionCall ->
 * ReadyForQuery); server messages pop them.  The head expectation owns
 * the response in progress (rows, COPY bytes, SQLSTATE).  When what the
 * server says no longer fits the FIFO (a message pgproxy doesn't model,
 * or a cap was hit), the tracker stops emitting events and waits until
 * every Sync/Query outstanding at that moment has been answered, then
 * starts afresh: it loses observations, never traffic.
 *
 * Statements are reference counted: an Execute in flight keeps the SQL of
 * its statement alive even if the client closes the statement behind it.
 */
#include "pgproxy/track.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TRACK_MAX_STATEMENTS 4096u   /* named statements + portals per session */
#define TRACK_FIFO_MAX 8192u         /* expectations in flight */
#define TRACK_NAME_BYTES 256u        /* longest statement/portal name captured */
#define TRACK_SERVER_CAPTURE 512u    /* CommandComplete, ErrorResponse, ParameterStatus */
#define TRACK_MAP_BUCKETS 64u

typedef struct stmt {
    uint32_t refs;
    bool truncated;
    uint32_t sql_len;
    const char *name;        /* the statement's name, inside this allocation; "" for Query */
    pgp_track_memo_t memo;
    char sql[];
} stmt_t;

typedef struct map_entry {
    struct map_entry *next;
    stmt_t *st;
    uint64_t params_hash;   /* portals: hash of their Bind */
    char *summary;          /* portals: their Bind's parameter summary (malloc'd) or NULL */
    char name[];
} map_entry_t;

typedef struct name_map {
    map_entry_t *buckets[TRACK_MAP_BUCKETS];
    uint32_t count;
} name_map_t;

typedef enum expect_kind {
    EXP_PARSE = 1,
    EXP_BIND,
    EXP_DESCRIBE,
    EXP_EXECUTE,
    EXP_CLOSE,
    EXP_SYNC,
    EXP_QUERY,
    EXP_FUNCTION,
} expect_kind_t;

typedef struct expect {
    uint8_t kind;
    uint64_t start_ticks;
    uint64_t params_hash;
    stmt_t *st;              /* EXECUTE, QUERY: a reference */
    char *summary;           /* EXECUTE: a copy of its portal's parameter summary, or NULL */
} expect_t;

/* A bounded copy of the current message's body. */
typedef struct capture {
    uint8_t *buf;
    uint32_t cap;
    uint32_t len;
    uint32_t total;          /* body bytes seen (may exceed cap) */
    bool on;
} capture_t;

struct pgp_track {
    pgp_track_event_cb cb;
    void *ud;
    size_t max_sql_bytes;
    uint64_t now;
    /* statements and portals */
    name_map_t stmts;
    name_map_t portals;
    /* FIFO of expectations (ring) */
    expect_t *fifo;
    uint32_t fifo_cap, fifo_head, fifo_len;
    /* the response in progress (belongs to the head) */
    uint64_t cur_rows_tag, cur_datarows, cur_copy_bytes;
    bool cur_has_tag;
    char cur_sqlstate[6];
    uint64_t prev_done_ticks;     /* when the last statement's response completed */
    uint64_t pending_start;       /* first Parse/Bind since the last Execute, 0 = none */
    bool skip_until_sync;         /* the server ignores messages after an error until Sync */
    bool desync;
    uint32_t desync_pending;      /* Sync/Query/FunctionCall still to be answered */
    /* message captures */
    capture_t cc, sc;
    uint64_t bind_hash;
    pgp_track_params_t params_mode;
    /* server parameters */
    char app_name[64];
    bool std_strings;
    pgp_track_stats_t stats;
};

/* ---- helpers ----------------------------------------------------------- */

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME 0x100000001b3ull

static uint64_t fnv1a(uint64_t h, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= FNV_PRIME;
    }
    return h;
}

static void stmt_release(stmt_t *st)
{
    if (st != NULL && --st->refs == 0) {
        free(st->memo.normalized);
        free(st->memo.consumer_data);
        free(st);
    }
}

static stmt_t *stmt_new(const uint8_t *sql, size_t len, size_t cap, bool truncated,
                        const uint8_t *name, size_t name_len)
{
    if (len > cap) {
        len = cap;
        truncated = true;
    }
    stmt_t *st = malloc(sizeof(*st) + len + 1 + name_len + 1);
    if (st == NULL)
        return NULL;
    st->refs = 1;
    memset(&st->memo, 0, sizeof(st->memo));
    st->truncated = truncated;
    st->sql_len = (uint32_t)len;
    memcpy(st->sql, sql, len);
    st->sql[len] = '\0';
    char *n = st->sql + len + 1;
    if (name_len)
        memcpy(n, name, name_len);
    n[name_len] = '\0';
    st->name = n;
    return st;
}

static unsigned map_bucket(const char *name, size_t len)
{
    return (unsigned)(fnv1a(FNV_OFFSET, (const uint8_t *)name, len) % TRACK_MAP_BUCKETS);
}

static map_entry_t **map_find(name_map_t *m, const char *name, size_t len)
{
    map_entry_t **pp = &m->buckets[map_bucket(name, len)];
    for (; *pp != NULL; pp = &(*pp)->next)
        if (strlen((*pp)->name) == len && memcmp((*pp)->name, name, len) == 0)
            return pp;
    return pp;
}

/* Bind name -> st (takes a reference of st, and ownership of summary, even on failure).
 * Returns false when the map is full. */
static bool map_put(name_map_t *m, const char *name, size_t len, stmt_t *st, uint64_t hash,
                    char *summary)
{
    map_entry_t **pp = map_find(m, name, len);
    if (*pp != NULL) {
        stmt_release((*pp)->st);
        free((*pp)->summary);
        (*pp)->st = st;
        (*pp)->params_hash = hash;
        (*pp)->summary = summary;
        return true;
    }
    if (m->count >= TRACK_MAX_STATEMENTS) {
        free(summary);
        return false;
    }
    map_entry_t *e = malloc(sizeof(*e) + len + 1);
    if (e == NULL) {
        free(summary);
        return false;
    }
    e->next = NULL;
    e->st = st;
    e->params_hash = hash;
    e->summary = summary;
    memcpy(e->name, name, len);
    e->name[len] = '\0';
    *pp = e;
    m->count++;
    return true;
}

static void map_remove(name_map_t *m, const char *name, size_t len)
{
    map_entry_t **pp = map_find(m, name, len);
    map_entry_t *e = *pp;
    if (e == NULL)
        return;
    *pp = e->next;
    stmt_release(e->st);
    free(e->summary);
    free(e);
    m->count--;
}

static void map_clear(name_map_t *m)
{
    for (unsigned i = 0; i < TRACK_MAP_BUCKETS; i++) {
        map_entry_t *e = m->buckets[i];
        while (e != NULL) {
            map_entry_t *next = e->next;
            stmt_release(e->st);
            free(e->summary);
            free(e);
            e = next;
        }
        m->buckets[i] = NULL;
    }
    m->count = 0;
}

/* Length of the NUL-terminated string at p[0..n), or n when unterminated. */
static size_t cstr_len(const uint8_t *p, size_t n)
{
    const uint8_t *z = memchr(p, 0, n);
    return z ? (size_t)(z - p) : n;
}

/* ---- the FIFO ---------------------------------------------------------- */

static expect_t *fifo_at(pgp_track_t *t, uint32_t i)
{
    return &t->fifo[(t->fifo_head + i) & (t->fifo_cap - 1)];
}

static void expect_clear(expect_t *e)
{
    stmt_release(e->st);
    e->st = NULL;
    free(e->summary);
    e->summary = NULL;
}

static void cur_reset(pgp_track_t *t)
{
    t->cur_rows_tag = t->cur_datarows = t->cur_copy_bytes = 0;
    t->cur_has_tag = false;
    t->cur_sqlstate[0] = '\0';
}

static void fifo_pop(pgp_track_t *t)
{
    expect_clear(fifo_at(t, 0));
    t->fifo_head = (t->fifo_head + 1) & (t->fifo_cap - 1);
    t->fifo_len--;
    cur_reset(t);
}

static void track_desync(pgp_track_t *t)
{
    uint32_t pending = 0;
    while (t->fifo_len > 0) {
        uint8_t k = fifo_at(t, 0)->kind;
        if (k == EXP_SYNC || k == EXP_QUERY || k == EXP_FUNCTION)
            pending++;
        fifo_pop(t);
    }
    t->desync = true;
    t->desync_pending = pending;
    t->skip_until_sync = false;
    t->pending_start = 0;
    t->stats.desyncs++;
    t->stats.dropped++;
}

/* Push an expectation; takes the references in e.  False (and desync) when full. */
static bool fifo_push(pgp_track_t *t, expect_t e)
{
    if (t->fifo_len == t->fifo_cap) {
        uint32_t ncap = t->fifo_cap ? t->fifo_cap * 2 : 16;
        expect_t *n = ncap <= TRACK_FIFO_MAX ? malloc(sizeof(*n) * ncap) : NULL;
        if (n == NULL) {
            expect_clear(&e);
            track_desync(t);
            t->desync_pending += (e.kind == EXP_SYNC || e.kind == EXP_QUERY ||
                                  e.kind == EXP_FUNCTION);
            return false;
        }
        for (uint32_t i = 0; i < t->fifo_len; i++)
            n[i] = *fifo_at(t, i);
        free(t->fifo);
        t->fifo = n;
        t->fifo_cap = ncap;
        t->fifo_head = 0;
    }
    *fifo_at(t, t->fifo_len) = e;
    t->fifo_len++;
    return true;
}

/* ---- events ------------------------------------------------------------ */

static void emit(pgp_track_t *t, const expect_t *e, bool suspended)
{
    pgp_track_event_t ev;
    memset(&ev, 0, sizeof(ev));
    ev.kind = e->kind == EXP_QUERY ? PGP_TRACK_QUERY
            : e->kind == EXP_FUNCTION ? PGP_TRACK_FUNCTION : PGP_TRACK_EXECUTE;
    ev.start_ticks = e->start_ticks;
    /* A pipelined item can't start before the server finished the one before. */
    if (t->prev_done_ticks > ev.start_ticks) {
        ev.start_ticks = t->prev_done_ticks;
        ev.pipelined = true;
    }
    ev.end_ticks = t->now >= ev.start_ticks ? t->now : ev.start_ticks;
    for (uint32_t i = 1; i < t->fifo_len && !ev.pipelined; i++) {
        uint8_t k = fifo_at(t, i)->kind;
        if (k == EXP_EXECUTE || k == EXP_QUERY)
            ev.pipelined = true;
    }
    pgp_track_memo_t scratch;
    memset(&scratch, 0, sizeof(scratch));
    ev.memo = &scratch;
    if (e->st != NULL) {
        ev.sql = e->st->sql;
        ev.sql_len = e->st->sql_len;
        ev.sql_truncated = e->st->truncated;
        ev.memo = &e->st->memo;
    } else {
        ev.sql = "";
    }
    ev.statement = e->kind != EXP_EXECUTE ? NULL : e->st ? e->st->name : "";
    ev.params_hash = e->params_hash;
    if (e->summary != NULL) {
        ev.params_summary = e->summary;
        ev.params_summary_len = strlen(e->summary);
    }
    ev.rows = t->cur_has_tag ? t->cur_rows_tag : t->cur_datarows;
    ev.copy_bytes = t->cur_copy_bytes;
    memcpy(ev.sqlstate, t->cur_sqlstate, sizeof(ev.sqlstate));
    ev.suspended = suspended;
    ev.standard_strings = t->std_strings;
    t->prev_done_ticks = ev.end_ticks;
    t->stats.events++;
    if (t->cb)
        t->cb(t->ud, &ev);
    free(scratch.normalized);
    free(scratch.consumer_data);
}

/* ---- client messages --------------------------------------------------- */

/* The offset of the first non-blank byte of q[i, n). */
static size_t skip_blanks(const uint8_t *q, size_t n, size_t i)
{
    while (i < n && (q[i] == ' ' || q[i] == '\t' || q[i] == '\n' || q[i] == '\r'))
        i++;
    return i;
}

static bool ascii_prefix_ci(const uint8_t *p, size_t n, const char *word, size_t *used)
{
    size_t i = 0;
    i = skip_blanks(p, n, i);
    size_t w = strlen(word);
    if (n - i < w)
        return false;
    for (size_t k = 0; k < w; k++) {
        uint8_t c = p[i + k];
        if (c >= 'A' && c <= 'Z')
            c = (uint8_t)(c + 32);
        if (c != (uint8_t)word[k])
            return false;
    }
    if (i + w < n && ((p[i + w] | 32) >= 'a' && (p[i + w] | 32) <= 'z'))
        return false;
    *used = i + w;
    return true;
}

/*
 * The SQL identifier starting at q[pos] (after blanks): quoted ones
 * verbatim, unquoted ones folded to lower case, as the server does.
 * Writes it to name (TRACK_NAME_BYTES), returns its length (0 = none) and
 * the offset just past it in *end.
 */
static size_t sql_identifier(const uint8_t *q, size_t n, size_t pos, char *name, size_t *end)
{
    size_t i = pos, len = 0;
    i = skip_blanks(q, n, i);
    if (i < n && q[i] == '"') {
        for (i++; i < n && len < TRACK_NAME_BYTES; i++) {
            if (q[i] == '"') {
                if (i + 1 < n && q[i + 1] == '"') {
                    i++;
                } else {
                    i++;
                    break;
                }
            }
            name[len++] = (char)q[i];
        }
    } else {
        for (; i < n && len < TRACK_NAME_BYTES; i++) {
            uint8_t c = q[i];
            if (!((c | 32) >= 'a' && (c | 32) <= 'z') && !(c >= '0' && c <= '9') && c != '_' &&
                c != '$' && c < 0x80)
                break;
            name[len++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
    }
    *end = i;
    return len;
}

/* SQL-level DEALLOCATE / DISCARD ALL also drop protocol-level statements. */
static void track_sql_side_effects(pgp_track_t *t, const uint8_t *q, size_t n)
{
    size_t used;
    if (ascii_prefix_ci(q, n, "discard", &used)) {
        size_t more;
        if (ascii_prefix_ci(q + used, n - used, "all", &more)) {
            map_clear(&t->stmts);
            map_clear(&t->portals);
        }
        return;
    }
    if (!ascii_prefix_ci(q, n, "deallocate", &used))
        return;
    size_t more;
    if (ascii_prefix_ci(q + used, n - used, "prepare", &more))
        used += more;
    if (ascii_prefix_ci(q + used, n - used, "all", &more)) {
        map_clear(&t->stmts);
        return;
    }
    char name[TRACK_NAME_BYTES];
    size_t len = sql_identifier(q, n, used, name, &used);
    if (len > 0)
        map_remove(&t->stmts, name, len);
}

/*
 * SQL-level prepared statements share the server's namespace with
 * protocol-level ones.  "PREPARE name [(types)] AS sql" registers the
 * statement (its own event is the PREPARE text); "EXECUTE name(args)" is
 * attributed to the prepared SQL, with its arguments as the values hash.
 * Returns true when e->st was set.
 */
static bool track_sql_prepared(pgp_track_t *t, const uint8_t *q, size_t n, expect_t *e)
{
    size_t used;
    char name[TRACK_NAME_BYTES];
    if (ascii_prefix_ci(q, n, "execute", &used)) {
        size_t len = sql_identifier(q, n, used, name, &used);
        if (len == 0)
            return false;
        map_entry_t **pp = map_find(&t->stmts, name, len);
        if (*pp == NULL || (*pp)->st == NULL)
            return false;
        e->st = (*pp)->st;
        e->st->refs++;
        e->params_hash = fnv1a(FNV_OFFSET, q + used, n - used);
        return true;
    }
    if (!ascii_prefix_ci(q, n, "prepare", &used))
        return false;
    size_t len = sql_identifier(q, n, used, name, &used);
    if (len == 0)
        return false;
    /* Skip an optional parenthesized type list, then AS. */
    size_t i = used;
    i = skip_blanks(q, n, i);
    if (i < n && q[i] == '(') {
        int depth = 0;
        for (; i < n; i++) {
            if (q[i] == '(')
                depth++;
            else if (q[i] == ')' && --depth == 0) {
                i++;
                break;
            }
        }
    }
    size_t as;
    if (!ascii_prefix_ci(q + i, n - i, "as", &as))
        return false;
    i += as;
    i = skip_blanks(q, n, i);
    size_t end = n;
    while (end > i && (q[end - 1] == ';' || q[end - 1] == ' ' || q[end - 1] == '\n'))
        end--;
    stmt_t *st = stmt_new(q + i, end - i, t->max_sql_bytes, false, (const uint8_t *)name, len);
    if (st == NULL || !map_put(&t->stmts, name, len, st, 0, NULL)) {
        stmt_release(st);
        t->stats.dropped++;
    }
    return false;   /* the PREPARE itself is reported with its own text */
}

static void on_client_query(pgp_track_t *t)
{
    const capture_t *c = &t->cc;
    size_t body = c->total > 0 ? c->total - 1 : 0;   /* drop the trailing NUL */
    size_t have = c->len < body ? c->len : body;
    track_sql_side_effects(t, c->buf, have);
    expect_t e = { .kind = EXP_QUERY, .start_ticks = t->now };
    if (!track_sql_prepared(t, c->buf, have, &e)) {
        e.st = stmt_new(c->buf, have, t->max_sql_bytes, body > have, NULL, 0);
        if (e.st == NULL)
            t->stats.dropped++;
    }
    (void)fifo_push(t, e);
}

static void on_client_parse(pgp_track_t *t)
{
    const capture_t *c = &t->cc;
    size_t nlen = cstr_len(c->buf, c->len);
    if (nlen >= c->len) {   /* name longer than the capture: can't follow it */
        t->stats.dropped++;
    } else {
        const uint8_t *sql = c->buf + nlen + 1;
        size_t avail = c->len - nlen - 1;
        size_t slen = cstr_len(sql, avail);
        bool truncated = slen == avail && c->total > c->len;
        stmt_t *st = stmt_new(sql, slen, t->max_sql_bytes, truncated, c->buf, nlen);
        if (st == NULL || !map_put(&t->stmts, (const char *)c->buf, nlen, st, 0, NULL)) {
            stmt_release(st);
            t->stats.dropped++;
        }
    }
    (void)fifo_push(t, (expect_t){ .kind = EXP_PARSE });
}

/* Bounded appender for the summary. */
typedef struct sumbuf {
    char b[PGP_TRACK_SUMMARY_BYTES + 4];
    size_t n;
    bool full;
} sumbuf_t;

static void sum_add(sumbuf_t *s, const char *p, size_t n)
{
    if (s->full)
        return;
    if (s->n + n > PGP_TRACK_SUMMARY_BYTES - 3) {
        s->full = true;
        memcpy(s->b + s->n, "...", 3);
        s->n += 3;
        return;
    }
    memcpy(s->b + s->n, p, n);
    s->n += n;
}

static void sum_str(sumbuf_t *s, const char *z) { sum_add(s, z, strlen(z)); }

static void sum_uint(sumbuf_t *s, uint64_t v)
{
    char tmp[24];
    int w = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    sum_add(s, tmp, (size_t)w);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/*
 * The parameters of a Bind (from its format codes on: p[0, n) borrowed) as
 * text for humans: "$1='abc', $2=<binary 4 bytes>, $3=NULL" (values mode, a
 * text value cut at PGP_TRACK_PARAM_VALUE_BYTES with "...", quotes doubled,
 * control bytes as '?') or "$1:text(3 bytes), ..." (types mode).  Returns
 * malloc'd, NULL when there are no parameters, the message is malformed, or
 * out of memory.
 */
static char *bind_summary(pgp_track_params_t mode, const uint8_t *p, size_t n)
{
    if (n < 2)
        return NULL;
    uint16_t nfmt = be16(p);
    size_t o = 2;
    if (n - o < (size_t)nfmt * 2 + 2)
        return NULL;
    const uint8_t *fmts = p + o;
    o += (size_t)nfmt * 2;
    uint16_t nparams = be16(p + o);
    o += 2;
    if (nparams == 0)
        return NULL;
    sumbuf_t s = { .n = 0 };
    for (uint16_t i = 0; i < nparams && !s.full; i++) {
        if (n - o < 4)
            return NULL;
        uint32_t len = be32(p + o);
        o += 4;
        bool is_null = len == 0xffffffffu;
        if (!is_null && n - o < len)
            return NULL;
        bool binary = nfmt == 1 ? be16(fmts) == 1 : i < nfmt && be16(fmts + 2 * i) == 1;
        if (i > 0)
            sum_add(&s, ", ", 2);
        sum_add(&s, "$", 1);
        sum_uint(&s, (uint64_t)i + 1);
        if (is_null) {
            sum_str(&s, mode == PGP_TRACK_PARAMS_TYPES ? ":NULL" : "=NULL");
            continue;
        }
        if (mode == PGP_TRACK_PARAMS_TYPES || binary) {
            sum_str(&s, mode == PGP_TRACK_PARAMS_TYPES ? (binary ? ":binary(" : ":text(")
                                                      : "=<binary ");
            sum_uint(&s, len);
            sum_str(&s, mode == PGP_TRACK_PARAMS_TYPES ? " bytes)" : " bytes>");
        } else {
            sum_add(&s, "='", 2);
            size_t shown = len < PGP_TRACK_PARAM_VALUE_BYTES ? len : PGP_TRACK_PARAM_VALUE_BYTES;
            for (size_t k = 0; k < shown && !s.full; k++) {
                char c = (char)p[o + k];
                if (c == '\'')
                    sum_add(&s, "''", 2);
                else if ((unsigned char)c < 0x20 || c == 0x7f)
                    sum_add(&s, "?", 1);
                else
                    sum_add(&s, &c, 1);
            }
            sum_str(&s, shown < len ? "...'" : "'");
        }
        if (!is_null)
            o += len;
    }
    s.b[s.n] = '\0';
    return strdup(s.b);
}

static void on_client_bind(pgp_track_t *t)
{
    const capture_t *c = &t->cc;
    size_t plen = cstr_len(c->buf, c->len);
    if (plen < c->len) {
        const uint8_t *sname = c->buf + plen + 1;
        size_t slen = cstr_len(sname, c->len - plen - 1);
        if (plen + 1 + slen < c->len) {
            map_entry_t **pp = map_find(&t->stmts, (const char *)sname, slen);
            stmt_t *st = *pp ? (*pp)->st : NULL;
            if (st)
                st->refs++;
            /* The portal remembers its statement's name for the event. */
            char *summary = NULL;
            if (t->params_mode != PGP_TRACK_PARAMS_OFF && c->total == c->len)
                summary = bind_summary(t->params_mode, c->buf + plen + 1 + slen + 1,
                                       c->len - plen - 1 - slen - 1);
            if (!map_put(&t->portals, (const char *)c->buf, plen, st, t->bind_hash, summary)) {
                stmt_release(st);
                t->stats.dropped++;
            }
        }
    } else {
        t->stats.dropped++;
    }
    (void)fifo_push(t, (expect_t){ .kind = EXP_BIND });
}

static void on_client_execute(pgp_track_t *t)
{
    const capture_t *c = &t->cc;
    size_t plen = cstr_len(c->buf, c->len);
    expect_t e = { .kind = EXP_EXECUTE };
    e.start_ticks = t->pending_start ? t->pending_start : t->now;
    t->pending_start = 0;
    map_entry_t **pp = map_find(&t->portals, (const char *)c->buf, plen);
    if (*pp != NULL) {
        e.st = (*pp)->st;
        if (e.st)
            e.st->refs++;
        e.params_hash = (*pp)->params_hash;
        if ((*pp)->summary != NULL)
            e.summary = strdup((*pp)->summary);
    }
    (void)fifo_push(t, e);
}

static void on_client_close(pgp_track_t *t)
{
    const capture_t *c = &t->cc;
    if (c->len >= 2) {
        size_t nlen = cstr_len(c->buf + 1, c->len - 1);
        if (c->buf[0] == 'S')
            map_remove(&t->stmts, (const char *)c->buf + 1, nlen);
        else if (c->buf[0] == 'P')
            map_remove(&t->portals, (const char *)c->buf + 1, nlen);
    }
    (void)fifo_push(t, (expect_t){ .kind = EXP_CLOSE });
}

static void capture_start(capture_t *c)
{
    c->len = 0;
    c->total = 0;
    c->on = true;
}

static void capture_add(capture_t *c, const uint8_t *p, size_t n)
{
    c->total += (uint32_t)n;
    if (!c->on || c->len >= c->cap)
        return;
    size_t room = c->cap - c->len;
    if (n > room)
        n = room;
    memcpy(c->buf + c->len, p, n);
    c->len += (uint32_t)n;
}

static void on_client_begin(void *ud, uint8_t type, uint32_t len)
{
    pgp_track_t *t = ud;
    t->cc.on = false;
    t->cc.len = t->cc.total = 0;
    switch (type) {
    case PGP_FE_PARSE:
    case PGP_FE_BIND:
        if (t->pending_start == 0)
            t->pending_start = t->now ? t->now : 1;
        if (type == PGP_FE_BIND)
            t->bind_hash = FNV_OFFSET;
        capture_start(&t->cc);
        break;
    case PGP_FE_QUERY:
    case PGP_FE_EXECUTE:
    case PGP_FE_CLOSE:
        capture_start(&t->cc);
        break;
    case PGP_FE_COPY_DATA:
        if (t->fifo_len > 0)
            t->cur_copy_bytes += len - 4;
        break;
    default:
        break;
    }
}

static void on_client_body(void *ud, const uint8_t *p, size_t n)
{
    pgp_track_t *t = ud;
    if (!t->cc.on)
        return;
    capture_add(&t->cc, p, n);
    t->bind_hash = fnv1a(t->bind_hash, p, n);
}

static void on_client_end(void *ud, uint8_t type)
{
    pgp_track_t *t = ud;
    t->cc.on = false;
    bool answers = type == PGP_FE_SYNC || type == PGP_FE_QUERY || type == PGP_FE_FUNCTION_CALL;
    if (t->desync) {
        if (answers)
            t->desync_pending++;
        return;
    }
    if (t->skip_until_sync && type != PGP_FE_SYNC && type != PGP_FE_QUERY &&
        type != PGP_FE_FUNCTION_CALL)
        return;   /* the server discards these after an error */
    switch (type) {
    case PGP_FE_QUERY:
        on_client_query(t);
        break;
    case PGP_FE_PARSE:
        on_client_parse(t);
        break;
    case PGP_FE_BIND:
        on_client_bind(t);
        break;
    case PGP_FE_DESCRIBE:
        (void)fifo_push(t, (expect_t){ .kind = EXP_DESCRIBE });
        break;
    case PGP_FE_EXECUTE:
        on_client_execute(t);
        break;
    case PGP_FE_CLOSE:
        on_client_close(t);
        break;
    case PGP_FE_SYNC:
        t->skip_until_sync = false;
        t->pending_start = 0;
        (void)fifo_push(t, (expect_t){ .kind = EXP_SYNC });
        break;
    case PGP_FE_FUNCTION_CALL:
        (void)fifo_push(t, (expect_t){ .kind = EXP_FUNCTION, .start_ticks = t->now });
        break;
    default:
        break;
    }
}

/* ---- server messages --------------------------------------------------- */

static expect_t *head(pgp_track_t *t)
{
    return t->fifo_len > 0 ? fifo_at(t, 0) : NULL;
}

/* Pop the head if it is `kind`; anything else means we lost the thread. */
static void expect_pop(pgp_track_t *t, uint8_t kind)
{
    expect_t *h = head(t);
    if (h == NULL || h->kind != kind) {
        track_desync(t);
        return;
    }
    fifo_pop(t);
}

static uint64_t tag_rows(const uint8_t *tag, size_t n)
{
    /* "SELECT 5", "INSERT 0 5", "UPDATE 5", "COPY 5", "FETCH 5": the last number. */
    size_t end = cstr_len(tag, n);
    size_t i = end;
    while (i > 0 && tag[i - 1] >= '0' && tag[i - 1] <= '9')
        i--;
    if (i == end || i == 0 || tag[i - 1] != ' ')
        return 0;
    uint64_t v = 0;
    for (; i < end; i++) {
        if (v > (UINT64_MAX - 9) / 10)
            return v;
        v = v * 10 + (uint64_t)(tag[i] - '0');
    }
    return v;
}

static bool tag_has_count(const uint8_t *tag, size_t n)
{
    size_t end = cstr_len(tag, n);
    return end > 0 && tag[end - 1] >= '0' && tag[end - 1] <= '9';
}

static void on_server_error(pgp_track_t *t)
{
    const capture_t *c = &t->sc;
    /* Fields: type byte + NUL-terminated value, list ends with a 0 byte. */
    char state[6] = "";
    for (size_t i = 0; i < c->len && c->buf[i] != 0;) {
        uint8_t f = c->buf[i++];
        size_t vlen = cstr_len(c->buf + i, c->len - i);
        if (f == 'C' && vlen == 5) {
            memcpy(state, c->buf + i, 5);
            state[5] = '\0';
            break;
        }
        i += vlen + 1;
    }
    expect_t *h = head(t);
    if (h == NULL)
        return;   /* a FATAL outside any statement (e.g. at shutdown) */
    if (t->cur_sqlstate[0] == '\0')
        memcpy(t->cur_sqlstate, state, sizeof(state));
    if (h->kind == EXP_QUERY || h->kind == EXP_FUNCTION)
        return;   /* the event ends at ReadyForQuery */
    /* Extended protocol: the failing step's Execute (if any) reports the
     * error; everything up to the Sync is skipped by the server. */
    char saved[6];
    memcpy(saved, t->cur_sqlstate, sizeof(saved));
    bool emitted = false;
    while (t->fifo_len > 0 && head(t)->kind != EXP_SYNC) {
        h = head(t);
        if (h->kind == EXP_EXECUTE && !emitted) {
            memcpy(t->cur_sqlstate, saved, sizeof(saved));
            emit(t, h, false);
            emitted = true;
        }
        fifo_pop(t);
    }
    if (t->fifo_len == 0)
        t->skip_until_sync = true;
    t->pending_start = 0;
}

static void on_server_ready(pgp_track_t *t, uint8_t status)
{
    if (t->desync) {
        if (t->desync_pending > 0)
            t->desync_pending--;
        if (t->desync_pending == 0)
            t->desync = false;
        return;
    }
    expect_t *h = head(t);
    if (h == NULL) {
        /* The ReadyForQuery that ends the startup phase. */
        if (status == 'I')
            map_clear(&t->portals);
        return;
    }
    if (h->kind == EXP_QUERY || h->kind == EXP_FUNCTION) {
        emit(t, h, false);
        fifo_pop(t);
    } else if (h->kind == EXP_SYNC) {
        fifo_pop(t);
    } else {
        track_desync(t);
        return;
    }
    if (status == 'I')
        map_clear(&t->portals);   /* portals end with their transaction */
}

static void on_server_param(pgp_track_t *t)
{
    const capture_t *c = &t->sc;
    size_t nlen = cstr_len(c->buf, c->len);
    if (nlen >= c->len)
        return;
    const char *name = (const char *)c->buf;
    const uint8_t *val = c->buf + nlen + 1;
    size_t vlen = cstr_len(val, c->len - nlen - 1);
    if (nlen == 16 && memcmp(name, "application_name", 16) == 0) {
        size_t n = vlen < sizeof(t->app_name) - 1 ? vlen : sizeof(t->app_name) - 1;
        memcpy(t->app_name, val, n);
        t->app_name[n] = '\0';
    } else if (nlen == 27 && memcmp(name, "standard_conforming_strings", 27) == 0) {
        t->std_strings = !(vlen == 3 && memcmp(val, "off", 3) == 0);
    }
}

static void on_server_begin(void *ud, uint8_t type, uint32_t len)
{
    pgp_track_t *t = ud;
    t->sc.on = false;
    t->sc.len = t->sc.total = 0;
    switch (type) {
    case PGP_BE_DATA_ROW:
        t->cur_datarows++;
        break;
    case PGP_BE_COPY_DATA:
        t->cur_copy_bytes += len - 4;
        break;
    case PGP_BE_COMMAND_COMPLETE:
    case PGP_BE_ERROR_RESPONSE:
    case PGP_BE_PARAMETER_STATUS:
    case PGP_BE_READY_FOR_QUERY:
        capture_start(&t->sc);
        break;
    default:
        break;
    }
}

static void on_server_body(void *ud, const uint8_t *p, size_t n)
{
    pgp_track_t *t = ud;
    if (t->sc.on)
        capture_add(&t->sc, p, n);
}

static void on_server_end(void *ud, uint8_t type)
{
    pgp_track_t *t = ud;
    t->sc.on = false;
    if (type == PGP_BE_PARAMETER_STATUS) {
        on_server_param(t);
        return;
    }
    if (type == PGP_BE_READY_FOR_QUERY) {
        on_server_ready(t, t->sc.len > 0 ? t->sc.buf[0] : 0);
        return;
    }
    if (t->desync)
        return;
    expect_t *h = head(t);
    switch (type) {
    case PGP_BE_PARSE_COMPLETE:
        expect_pop(t, EXP_PARSE);
        break;
    case PGP_BE_BIND_COMPLETE:
        expect_pop(t, EXP_BIND);
        break;
    case PGP_BE_CLOSE_COMPLETE:
        expect_pop(t, EXP_CLOSE);
        break;
    case PGP_BE_ROW_DESCRIPTION:
    case PGP_BE_NO_DATA:
        if (h != NULL && h->kind == EXP_DESCRIBE)
            fifo_pop(t);
        break;
    case PGP_BE_COMMAND_COMPLETE:
        if (tag_has_count(t->sc.buf, t->sc.len)) {
            t->cur_rows_tag += tag_rows(t->sc.buf, t->sc.len);
            t->cur_has_tag = true;
        }
        if (h != NULL && h->kind == EXP_EXECUTE) {
            emit(t, h, false);
            fifo_pop(t);
        }
        break;
    case PGP_BE_EMPTY_QUERY_RESPONSE:
        if (h != NULL && h->kind == EXP_EXECUTE) {
            emit(t, h, false);
            fifo_pop(t);
        }
        break;
    case PGP_BE_PORTAL_SUSPENDED:
        if (h != NULL && h->kind == EXP_EXECUTE) {
            emit(t, h, true);
            fifo_pop(t);
        }
        break;
    case PGP_BE_ERROR_RESPONSE:
        on_server_error(t);
        break;
    default:
        /* DataRow, CopyData, Copy*Response, ParameterDescription, Notice,
         * Notification, BackendKeyData, Authentication, FunctionCallResponse:
         * part of the head's response or not a response at all. */
        break;
    }
}

const pgp_frame_ops_t pgp_track_client_ops = { on_client_begin, on_client_body, on_client_end };
const pgp_frame_ops_t pgp_track_server_ops = { on_server_begin, on_server_body, on_server_end };

/* ---- public ------------------------------------------------------------ */

pgp_track_t *pgp_track_create(size_t max_sql_bytes, pgp_track_event_cb cb, void *ud)
{
    pgp_track_t *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    t->cb = cb;
    t->ud = ud;
    t->max_sql_bytes = max_sql_bytes;
    t->std_strings = true;
    /* Parse carries a name and the SQL: room for both, bounded. */
    t->cc.cap = (uint32_t)(max_sql_bytes + TRACK_NAME_BYTES + 2);
    t->cc.buf = malloc(t->cc.cap);
    t->sc.cap = TRACK_SERVER_CAPTURE;
    t->sc.buf = malloc(t->sc.cap);
    if (t->cc.buf == NULL || t->sc.buf == NULL) {
        pgp_track_destroy(t);
        return NULL;
    }
    return t;
}

void pgp_track_destroy(pgp_track_t *t)
{
    if (t == NULL)
        return;
    while (t->fifo_len > 0)
        fifo_pop(t);
    free(t->fifo);
    map_clear(&t->stmts);
    map_clear(&t->portals);
    free(t->cc.buf);
    free(t->sc.buf);
    free(t);
}

void pgp_track_set_params(pgp_track_t *t, pgp_track_params_t mode)
{
    t->params_mode = mode;
}

void pgp_track_set_now(pgp_track_t *t, uint64_t now_ticks)
{
    t->now = now_ticks;
}

const char *pgp_track_application_name(const pgp_track_t *t)
{
    return t->app_name;
}

bool pgp_track_standard_strings(const pgp_track_t *t)
{
    return t->std_strings;
}

void pgp_track_get_stats(const pgp_track_t *t, pgp_track_stats_t *out)
{
    *out = t->stats;
}
