/*
 * console.c - the SQL admin console's protocol side (DESIGN §6): parses
 * the commands of a simple Query message and answers with backend
 * messages; SHOW results are JSON documents from a provider, parsed with
 * json-c and laid out as text tables (shapes in console.h).
 *
 * Owns nothing beyond one call: the JSON buffer, the json-c tree and a
 * per-table cell array are freed before returning.  Every message is
 * written with a length placeholder patched at its end, into a capped
 * pgp_render_t.  Bounded output: rows are written only while the buffer
 * stays below cap - PGP_CONSOLE_RESERVE_BYTES; every other message checks
 * that an ErrorResponse and ReadyForQuery still fit after it (FINAL_BYTES),
 * so whatever the input the bytes form a valid sequence ending in
 * ReadyForQuery as long as the caller left the reserve free.
 *
 * It does not do I/O, authentication or the extended protocol.
 */
#include "pgproxy/console.h"

#include <json-c/json.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "pgproxy/lex.h"
#include "pgproxy/proto.h"

#ifndef PGP_VERSION
#define PGP_VERSION "unknown"
#endif

#define MSG_TEXT_BYTES 320u       /* an error/notice message text, NUL included */
#define FIELDS_BYTES 400u         /* the ErrorResponse/NoticeResponse carrying it */
#define FINAL_BYTES (FIELDS_BYTES + 6u)   /* one ErrorResponse + ReadyForQuery */
#define ECHO_BYTES 48u            /* of a client word quoted in an error */
#define NAME_BYTES 63u            /* application_name echo (NAMEDATALEN - 1) */
#define STMT_TOKENS 4u            /* significant tokens a statement keeps */
#define WIRE_MSG_MAX 0x3FFFFFFFu  /* largest message length we write (PostgreSQL's MaxAllocSize) */
#define FIELD_DESC_BYTES 18u      /* RowDescription per column, after the name's NUL */

_Static_assert(MSG_TEXT_BYTES + 40u <= FIELDS_BYTES, "ErrorResponse buffer too small");
_Static_assert(FIELDS_BYTES + 32u + FINAL_BYTES <= PGP_CONSOLE_RESERVE_BYTES,
               "the reserve must hold notice + CommandComplete + error + ReadyForQuery");

static const char *const source_names[PGP_CONSOLE_SOURCE_COUNT_] = {
    [PGP_CONSOLE_STATS] = "STATS",
    [PGP_CONSOLE_QUERIES] = "QUERIES",
    [PGP_CONSOLE_SLOW_QUERIES] = "SLOW_QUERIES",
    [PGP_CONSOLE_N_PLUS_ONE] = "N_PLUS_ONE",
    [PGP_CONSOLE_CONNECTIONS] = "CONNECTIONS",
    [PGP_CONSOLE_PROFILES] = "PROFILES",
    [PGP_CONSOLE_CONFIG] = "CONFIG",
};

/* Every command, for SHOW HELP and the 42601 message. */
static const char *const help_rows[] = {
    "SHOW STATS",       "SHOW QUERIES", "SHOW SLOW_QUERIES", "SHOW N_PLUS_ONE",
    "SHOW CONNECTIONS", "SHOW PROFILES", "SHOW CONFIG",      "SHOW VERSION",
    "SHOW HELP",        "RESET STATS",  "SET",
};
#define N_HELP (sizeof(help_rows) / sizeof(help_rows[0]))

/* pgbouncer admin verbs: known to operators, answered with 0A000. */
static const char *const bouncer_verbs[] = {
    "PAUSE", "RESUME", "RELOAD",  "DISABLE",  "ENABLE",     "RECONNECT",
    "KILL",  "SUSPEND", "SHUTDOWN", "WAIT_CLOSE", "KILL_CLIENT",
};

const char *pgp_console_source_name(pgp_console_source_t src)
{
    if ((unsigned)src >= PGP_CONSOLE_SOURCE_COUNT_)
        return NULL;
    return source_names[src];
}

/* ------------------------------------------------------------------ */
/* UTF-8: one decoder for the sanitizer (invalid sequences and NUL     */
/* become U+FFFD, one per maximal invalid subpart, as render.c does)   */
/* ------------------------------------------------------------------ */

static const char replacement[3] = {'\xEF', '\xBF', '\xBD'};

/* Bytes of the sequence at p[0..n) (n >= 1); *ok false when it is invalid (or NUL). */
static size_t utf8_step(const unsigned char *p, size_t n, bool *ok)
{
    unsigned char c = p[0];
    size_t need;
    unsigned char lo = 0x80, hi = 0xBF;
    *ok = false;
    if (c < 0x80) {
        *ok = c != 0;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0)
            lo = 0xA0;
        else if (c == 0xED)
            hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0)
            lo = 0x90;
        else if (c == 0xF4)
            hi = 0x8F;
    } else {
        return 1;
    }
    size_t i = 1;
    for (; i <= need; i++) {
        unsigned char blo = i == 1 ? lo : 0x80, bhi = i == 1 ? hi : 0xBF;
        if (i >= n || p[i] < blo || p[i] > bhi)
            return i;
    }
    *ok = true;
    return i;
}

/* The length of p[0..n) once sanitized. */
static size_t utf8_clean_len(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0, out = 0;
    while (i < n) {
        bool ok;
        size_t k = utf8_step(s + i, n - i, &ok);
        out += ok ? k : sizeof(replacement);
        i += k;
    }
    return out;
}

/*
 * Append p[0..n) sanitized, at most max bytes, never splitting a
 * character; returns the bytes appended.  Valid runs are copied in one go.
 */
static size_t utf8_clean_put(pgp_render_t *out, const char *p, size_t n, size_t max)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = 0, run = 0, put = 0;
    while (i < n) {
        bool ok;
        size_t k = utf8_step(s + i, n - i, &ok);
        size_t w = ok ? k : sizeof(replacement);
        if (put + w > max)
            break;
        if (ok) {
            i += k;
            put += k;
            continue;
        }
        pgp_render_append(out, p + run, i - run);
        pgp_render_append(out, replacement, sizeof(replacement));
        put += w;
        i += k;
        run = i;
    }
    pgp_render_append(out, p + run, i - run);
    return put;
}

/* ------------------------------------------------------------------ */
/* Message texts: a bounded stack buffer, NUL-terminated               */
/* ------------------------------------------------------------------ */

typedef struct text {
    char b[MSG_TEXT_BYTES];
    size_t n;
} text_t;

static void text_add(text_t *t, const char *s, size_t n)
{
    size_t room = sizeof(t->b) - 1 - t->n;
    if (n > room)
        n = room;
    memcpy(t->b + t->n, s, n);
    t->n += n;
    t->b[t->n] = '\0';
}

/* A constant of ours (never wire data). */
static void text_str(text_t *t, const char *s)
{
    text_add(t, s, strlen(s));
}

static void text_uint(text_t *t, uint64_t v)
{
    char d[20];
    size_t i = sizeof(d);
    do {
        d[--i] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0 && i > 0);
    text_add(t, d + i, sizeof(d) - i);
}

/* Client bytes, sanitized and cut to max (on a character boundary). */
static void text_echo(text_t *t, const char *p, size_t n, size_t max)
{
    size_t room = sizeof(t->b) - 1 - t->n;
    if (max > room)
        max = room;
    pgp_render_t tmp;
    pgp_render_init(&tmp, max);
    size_t put = utf8_clean_put(&tmp, p, n, max);
    if (pgp_render_error(&tmp) == 0)
        text_add(t, pgp_render_data(&tmp), put);
    pgp_render_free(&tmp);
}

/* ------------------------------------------------------------------ */
/* Wire writers                                                        */
/* ------------------------------------------------------------------ */

static size_t msg_begin(pgp_render_t *out, uint8_t type)
{
    char hdr[5] = {(char)type, 0, 0, 0, 0};
    size_t off = out->len;
    pgp_render_append(out, hdr, sizeof(hdr));
    return off;
}

/* Patch the length word of the message begun at off. */
static void msg_end(pgp_render_t *out, size_t off)
{
    if (pgp_render_error(out) != 0 || out->len < off + 5)
        return;
    pgp_put_be32((uint8_t *)out->buf + off + 1, (uint32_t)(out->len - off - 1));
}

static void put_be16(pgp_render_t *out, uint16_t v)
{
    char b[2] = {(char)(v >> 8), (char)v};
    pgp_render_append(out, b, 2);
}

static void put_be32(pgp_render_t *out, uint32_t v)
{
    uint8_t b[4];
    pgp_put_be32(b, v);
    pgp_render_append(out, b, 4);
}

/* A constant string of ours with its NUL. */
static void put_cstr(pgp_render_t *out, const char *s)
{
    pgp_render_append(out, s, strlen(s) + 1);
}

static void put_fields(pgp_render_t *out, uint8_t type, const char *severity, const char *sqlstate,
                       const text_t *t)
{
    uint8_t b[FIELDS_BYTES];
    size_t n = type == PGP_BE_ERROR_RESPONSE
                   ? pgp_proto_error_response(b, sizeof(b), severity, sqlstate, t->b)
                   : pgp_proto_notice_response(b, sizeof(b), severity, sqlstate, t->b);
    pgp_render_append(out, b, n);
}

static void put_error(pgp_render_t *out, const char *sqlstate, const text_t *t)
{
    put_fields(out, PGP_BE_ERROR_RESPONSE, "ERROR", sqlstate, t);
}

static void put_command_complete(pgp_render_t *out, const char *tag)
{
    size_t off = msg_begin(out, PGP_BE_COMMAND_COMPLETE);
    put_cstr(out, tag);
    msg_end(out, off);
}

static void put_ready(pgp_render_t *out)
{
    char z[6] = {(char)PGP_BE_READY_FOR_QUERY, 0, 0, 0, 5, 'I'};
    pgp_render_append(out, z, sizeof(z));
}

static void put_parameter_status(pgp_render_t *out, const char *name, const char *value)
{
    size_t off = msg_begin(out, PGP_BE_PARAMETER_STATUS);
    put_cstr(out, name);
    put_cstr(out, value);
    msg_end(out, off);
}

/* True when n more bytes still leave room for an ErrorResponse and ReadyForQuery. */
static bool room_for(const pgp_render_t *out, size_t n)
{
    return out->len <= out->cap && n <= out->cap - out->len &&
           FINAL_BYTES <= out->cap - out->len - n;
}

/* The highest out->len rows may reach. */
static size_t rows_limit(const pgp_render_t *out)
{
    return out->cap > PGP_CONSOLE_RESERVE_BYTES ? out->cap - PGP_CONSOLE_RESERVE_BYTES : 0;
}

/* ------------------------------------------------------------------ */
/* Tables                                                              */
/* ------------------------------------------------------------------ */

typedef struct cell {
    const char *p;    /* NULL: SQL NULL */
    size_t n;
} cell_t;

typedef struct table {
    pgp_render_t *out;
    size_t limit;         /* rows_limit(out) */
    size_t ncols;
    uint64_t rows_sent;
    uint64_t rows_cut;
} table_t;

/* RowDescription; false (nothing written) when it does not fit the row limit. */
static bool table_begin(table_t *t, pgp_render_t *out, const cell_t *names, size_t ncols)
{
    t->out = out;
    t->limit = rows_limit(out);
    t->ncols = ncols;
    t->rows_sent = 0;
    t->rows_cut = 0;
    size_t size = 7;
    for (size_t i = 0; i < ncols; i++) {
        size += utf8_clean_len(names[i].p, names[i].n) + 1 + FIELD_DESC_BYTES;
        if (size > WIRE_MSG_MAX)
            return false;
    }
    if (out->len > t->limit || size > t->limit - out->len)
        return false;
    size_t off = msg_begin(out, PGP_BE_ROW_DESCRIPTION);
    put_be16(out, (uint16_t)ncols);
    for (size_t i = 0; i < ncols; i++) {
        (void)utf8_clean_put(out, names[i].p, names[i].n, SIZE_MAX);
        pgp_render_char(out, '\0');
        put_be32(out, 0);                          /* table OID */
        put_be16(out, 0);                          /* column number */
        put_be32(out, PGP_CONSOLE_TEXT_OID);
        put_be16(out, 0xFFFFu);                    /* typlen -1: varlena */
        put_be32(out, 0xFFFFFFFFu);                /* typmod -1 */
        put_be16(out, 0);                          /* text format */
    }
    msg_end(out, off);
    return true;
}

/* One DataRow of t->ncols cells; once one row did not fit, the rest are only counted. */
static void table_row(table_t *t, const cell_t *cells)
{
    if (t->rows_cut > 0) {
        t->rows_cut++;
        return;
    }
    pgp_render_t *out = t->out;
    size_t size = 7;
    for (size_t i = 0; i < t->ncols; i++) {
        size += 4 + (cells[i].p != NULL ? utf8_clean_len(cells[i].p, cells[i].n) : 0);
        if (size > WIRE_MSG_MAX)
            break;
    }
    if (size > WIRE_MSG_MAX || out->len > t->limit || size > t->limit - out->len) {
        t->rows_cut++;
        return;
    }
    size_t off = msg_begin(out, PGP_BE_DATA_ROW);
    put_be16(out, (uint16_t)t->ncols);
    for (size_t i = 0; i < t->ncols; i++) {
        if (cells[i].p == NULL) {
            put_be32(out, 0xFFFFFFFFu);
            continue;
        }
        put_be32(out, (uint32_t)utf8_clean_len(cells[i].p, cells[i].n));
        (void)utf8_clean_put(out, cells[i].p, cells[i].n, SIZE_MAX);
    }
    msg_end(out, off);
    t->rows_sent++;
}

/* The notice about cut rows (it fits: rows stopped PGP_CONSOLE_RESERVE_BYTES early) and "SHOW". */
static void table_end(table_t *t)
{
    if (t->rows_cut > 0) {
        text_t m = {.n = 0};
        text_str(&m, "pgproxy console: result cut to ");
        text_uint(&m, t->rows_sent);
        text_str(&m, " rows, ");
        text_uint(&m, t->rows_cut);
        text_str(&m, " more did not fit the ");
        text_uint(&m, t->out->cap);
        text_str(&m, "-byte output cap; the admin HTTP endpoints (/debug/...) serve everything");
        put_fields(t->out, PGP_BE_NOTICE_RESPONSE, "WARNING", "01000", &m);
    }
    put_command_complete(t->out, "SHOW");
}

static void error_too_big(pgp_render_t *out, const char *what)
{
    text_t m = {.n = 0};
    text_str(&m, what);
    text_str(&m, " does not fit the console's ");
    text_uint(&m, out->cap);
    text_str(&m, "-byte output cap; the rest of the query string was not run");
    put_error(out, "54000", &m);
}

static void error_json_too_big(pgp_render_t *out, const char *src, size_t cap)
{
    text_t m = {.n = 0};
    text_str(&m, "SHOW ");
    text_str(&m, src);
    text_str(&m, ": the JSON document does not fit the console's ");
    text_uint(&m, cap);
    text_str(&m, "-byte cap; the admin HTTP endpoints (/debug/...) serve everything");
    put_error(out, "54000", &m);
}

/* A table of constant one-column rows (SHOW VERSION, SHOW HELP).  0 or -1 (error sent). */
static int show_static(pgp_render_t *out, const char *column, const char *const *rows, size_t n)
{
    table_t t;
    cell_t name = {column, strlen(column)};
    if (!table_begin(&t, out, &name, 1)) {
        error_too_big(out, "the table header");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        cell_t c = {rows[i], strlen(rows[i])};
        table_row(&t, &c);
    }
    table_end(&t);
    return 0;
}

/* ------------------------------------------------------------------ */
/* JSON -> table                                                       */
/* ------------------------------------------------------------------ */

/* A cell from a JSON value: strings are themselves, null is NULL, the rest compact JSON. */
static cell_t json_cell(struct json_object *v)
{
    cell_t c = {NULL, 0};
    switch (json_object_get_type(v)) {
    case json_type_null:
        break;
    case json_type_string:
        c.p = json_object_get_string(v);
        c.n = (size_t)json_object_get_string_len(v);
        if (c.p == NULL)
            c.n = 0;
        break;
    default:
        /* Owned by v, valid until v is serialized again or freed. */
        c.p = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
                                                    JSON_C_TO_STRING_NOSLASHESCAPE);
        c.n = c.p != NULL ? strlen(c.p) : 0;
        break;
    }
    return c;
}

static void error_text(pgp_render_t *out, const char *sqlstate, const char *src, const char *what)
{
    text_t m = {.n = 0};
    text_str(&m, "SHOW ");
    text_str(&m, src);
    text_str(&m, ": ");
    text_str(&m, what);
    put_error(out, sqlstate, &m);
}

/* Lay a parsed document out as a table.  0, or -1 with the ErrorResponse sent. */
static int json_table(pgp_render_t *out, const char *src, struct json_object *doc)
{
    static const char *const kv_names[2] = {"key", "value"};
    table_t t;
    cell_t *names = NULL;
    cell_t *cells = NULL;
    int rc = -1;
    enum json_type type = json_object_get_type(doc);

    if (type == json_type_object) {
        cell_t nm[2] = {{kv_names[0], 3}, {kv_names[1], 5}};
        if (!table_begin(&t, out, nm, 2)) {
            error_too_big(out, "the table header");
            return -1;
        }
        struct json_object_iterator it = json_object_iter_begin(doc);
        struct json_object_iterator end = json_object_iter_end(doc);
        for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
            const char *k = json_object_iter_peek_name(&it);
            cell_t row[2] = {{k, k != NULL ? strlen(k) : 0},
                             json_cell(json_object_iter_peek_value(&it))};
            table_row(&t, row);
        }
        table_end(&t);
        return 0;
    }
    if (type != json_type_array) {
        cell_t nm = {kv_names[1], 5};
        if (!table_begin(&t, out, &nm, 1)) {
            error_too_big(out, "the table header");
            return -1;
        }
        cell_t c = json_cell(doc);
        table_row(&t, &c);
        table_end(&t);
        return 0;
    }

    size_t n = json_object_array_length(doc);
    struct json_object *first = n > 0 ? json_object_array_get_idx(doc, 0) : NULL;
    bool objects = json_object_get_type(first) == json_type_object;
    size_t ncols = n == 0 ? 0 : 1;
    if (objects) {
        int nkeys = json_object_object_length(first);
        ncols = nkeys > 0 ? (size_t)nkeys : 0;
        if (ncols > PGP_CONSOLE_MAX_COLUMNS)
            ncols = PGP_CONSOLE_MAX_COLUMNS;
    }
    names = calloc(ncols + 1, sizeof(*names));
    cells = calloc(ncols + 1, sizeof(*cells));
    if (names == NULL || cells == NULL) {
        error_text(out, "XX000", src, "out of memory");
        goto out;
    }
    if (objects) {
        size_t i = 0;
        struct json_object_iterator it = json_object_iter_begin(first);
        struct json_object_iterator end = json_object_iter_end(first);
        for (; i < ncols && !json_object_iter_equal(&it, &end); json_object_iter_next(&it)) {
            const char *k = json_object_iter_peek_name(&it);
            names[i].p = k != NULL ? k : "";
            names[i].n = k != NULL ? strlen(k) : 0;
            i++;
        }
        ncols = i;
    } else if (ncols == 1) {
        names[0].p = kv_names[1];
        names[0].n = 5;
    }
    if (!table_begin(&t, out, names, ncols)) {
        error_too_big(out, "the table header");
        goto out;
    }
    for (size_t r = 0; r < n; r++) {
        struct json_object *e = json_object_array_get_idx(doc, r);
        if (t.rows_cut > 0) {
            t.rows_cut++;       /* only counting: skip serializing the cells */
            continue;
        }
        if (objects && json_object_get_type(e) == json_type_object) {
            for (size_t i = 0; i < ncols; i++) {
                struct json_object *v = NULL;
                /* Missing keys and JSON null are both NULL. */
                cells[i] = json_object_object_get_ex(e, names[i].p, &v) ? json_cell(v)
                                                                       : (cell_t){NULL, 0};
            }
        } else {
            for (size_t i = 0; i < ncols; i++)
                cells[i] = (cell_t){NULL, 0};
            if (ncols > 0)
                cells[0] = json_cell(e);
        }
        table_row(&t, cells);
    }
    table_end(&t);
    rc = 0;
out:
    free(names);
    free(cells);
    return rc;
}

/* SHOW <source>: render, parse, lay out.  0, or -1 with the ErrorResponse sent. */
static int show_json(const pgp_console_providers_t *prov, pgp_console_source_t src,
                     pgp_render_t *out)
{
    const char *name = source_names[src];
    if (prov == NULL || prov->json == NULL) {
        error_text(out, "XX000", name, "no data provider");
        return -1;
    }
    pgp_render_t js;
    pgp_render_init(&js, prov->json_cap_bytes != 0 ? prov->json_cap_bytes : out->cap);
    int prc = prov->json(prov->ud, src, &js);
    int jerr = pgp_render_error(&js);
    if (jerr == PGP_RENDER_ETOOBIG || (jerr == 0 && js.len > (size_t)INT_MAX - 1)) {
        pgp_render_free(&js);
        error_json_too_big(out, name, js.cap);
        return -1;
    }
    if (prc < 0 || jerr != 0) {
        pgp_render_free(&js);
        error_text(out, "XX000", name, "the data provider failed");
        return -1;
    }
    struct json_tokener *tok = json_tokener_new_ex(PGP_CONSOLE_JSON_MAX_DEPTH);
    if (tok == NULL) {
        pgp_render_free(&js);
        error_text(out, "XX000", name, "out of memory");
        return -1;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    /* The terminating NUL is passed too: it ends a top-level number or literal. */
    struct json_object *doc =
        json_tokener_parse_ex(tok, pgp_render_data(&js), (int)pgp_render_len(&js) + 1);
    enum json_tokener_error jte = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    bool whole = jte == json_tokener_success && end == pgp_render_len(&js);
    pgp_render_free(&js);
    if (!whole) {
        json_object_put(doc);
        error_text(out, "XX000", name, "the data provider's document is not valid JSON");
        return -1;
    }
    int rc = json_table(out, name, doc);
    json_object_put(doc);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Commands                                                            */
/* ------------------------------------------------------------------ */

typedef struct stmt {
    pgp_lex_token_t tok[STMT_TOKENS];
    size_t ntok;            /* significant tokens seen (may exceed STMT_TOKENS) */
} stmt_t;

/* ASCII case-insensitive match of a word token against an upper-case keyword. */
static bool word_is(const pgp_lex_token_t *t, const char *kw)
{
    if (t->kind != PGP_LEX_WORD)
        return false;
    size_t i = 0;
    for (; i < t->len; i++) {
        unsigned char c = (unsigned char)t->p[i];
        if (kw[i] == '\0')
            return false;
        if (c >= 'a' && c <= 'z')
            c = (unsigned char)(c - 'a' + 'A');
        if (c != (unsigned char)kw[i])
            return false;
    }
    return kw[i] == '\0';
}

static void error_unknown(pgp_render_t *out, const char *prefix, const pgp_lex_token_t *t)
{
    text_t m = {.n = 0};
    text_str(&m, "unknown command ");
    text_str(&m, prefix);
    text_str(&m, "\"");
    text_echo(&m, t->p, t->len, ECHO_BYTES);
    text_str(&m, "\"; the pgproxy console knows: ");
    for (size_t i = 0; i < N_HELP; i++) {
        text_str(&m, help_rows[i]);
        text_str(&m, i + 1 < N_HELP ? ", " : " (see SHOW HELP)");
    }
    put_error(out, "42601", &m);
}

static void error_unsupported(pgp_render_t *out, const char *what)
{
    text_t m = {.n = 0};
    text_str(&m, what);
    put_error(out, "0A000", &m);
}

/* One statement.  0 to go on with the next one, -1 when an ErrorResponse ended the string. */
static int run_stmt(const pgp_console_providers_t *prov, const stmt_t *st, pgp_render_t *out)
{
    static const char *const version_row[1] = {"pgproxy " PGP_VERSION};
    const pgp_lex_token_t *t0 = &st->tok[0];

    if (word_is(t0, "SET")) {
        if (!room_for(out, 9)) {
            error_too_big(out, "the response");
            return -1;
        }
        put_command_complete(out, "SET");
        return 0;
    }
    if (word_is(t0, "RESET")) {
        if (st->ntok != 2 || !word_is(&st->tok[1], "STATS")) {
            error_unsupported(out, "the pgproxy console supports RESET STATS only");
            return -1;
        }
        if (!room_for(out, 11)) {
            error_too_big(out, "the response");
            return -1;
        }
        if (prov == NULL || prov->reset == NULL || prov->reset(prov->ud) < 0) {
            text_t m = {.n = 0};
            text_str(&m, "RESET STATS: ");
            text_str(&m, prov == NULL || prov->reset == NULL ? "no data provider"
                                                             : "the data provider failed");
            put_error(out, "XX000", &m);
            return -1;
        }
        put_command_complete(out, "RESET");
        return 0;
    }
    if (word_is(t0, "SHOW")) {
        if (st->ntok < 2) {
            error_unknown(out, "", t0);
            return -1;
        }
        const pgp_lex_token_t *t1 = &st->tok[1];
        int which = -1;     /* a source, or COUNT_ for VERSION, COUNT_ + 1 for HELP */
        for (int i = 0; i < PGP_CONSOLE_SOURCE_COUNT_ && which < 0; i++)
            if (word_is(t1, source_names[i]))
                which = i;
        if (which < 0 && word_is(t1, "VERSION"))
            which = PGP_CONSOLE_SOURCE_COUNT_;
        if (which < 0 && word_is(t1, "HELP"))
            which = PGP_CONSOLE_SOURCE_COUNT_ + 1;
        if (which < 0) {
            error_unknown(out, "SHOW ", t1);
            return -1;
        }
        if (st->ntok > 2) {
            error_unsupported(out, "the pgproxy console's SHOW commands take no arguments");
            return -1;
        }
        if (which == PGP_CONSOLE_SOURCE_COUNT_)
            return show_static(out, "version", version_row, 1);
        if (which == PGP_CONSOLE_SOURCE_COUNT_ + 1)
            return show_static(out, "command", help_rows, N_HELP);
        return show_json(prov, (pgp_console_source_t)which, out);
    }
    for (size_t i = 0; i < sizeof(bouncer_verbs) / sizeof(bouncer_verbs[0]); i++) {
        if (word_is(t0, bouncer_verbs[i])) {
            error_unsupported(out, "this pgbouncer admin command has no pgproxy equivalent; "
                                   "see SHOW HELP");
            return -1;
        }
    }
    error_unknown(out, "", t0);
    return -1;
}

int pgp_console_query(const pgp_console_providers_t *prov, const char *sql, size_t len,
                      pgp_render_t *out)
{
    /* A Query body is one C string: whatever follows its NUL is not SQL. */
    const char *nul = len > 0 ? memchr(sql, '\0', len) : NULL;
    if (nul != NULL)
        len = (size_t)(nul - sql);

    pgp_lex_t lx;
    pgp_lex_token_t tok;
    stmt_t st = {.ntok = 0};
    bool any = false;
    pgp_lex_init(&lx, len > 0 ? sql : "", len, false);
    for (;;) {
        pgp_lex_next(&lx, &tok);
        if (tok.kind == PGP_LEX_SEMI || tok.kind == PGP_LEX_EOF) {
            if (st.ntok > 0) {
                any = true;
                if (run_stmt(prov, &st, out) != 0)
                    break;
            }
            st.ntok = 0;
            if (tok.kind == PGP_LEX_EOF)
                break;
            continue;
        }
        if (!pgp_lex_significant(tok.kind))
            continue;
        if (st.ntok < STMT_TOKENS)
            st.tok[st.ntok] = tok;
        st.ntok++;
    }
    if (!any) {
        char e[5] = {(char)PGP_BE_EMPTY_QUERY_RESPONSE, 0, 0, 0, 4};
        pgp_render_append(out, e, sizeof(e));
    }
    put_ready(out);
    return pgp_render_error(out) != 0 ? -1 : 0;
}

/* ------------------------------------------------------------------ */
/* Session start, other messages                                       */
/* ------------------------------------------------------------------ */

int pgp_console_welcome_ex(uint32_t pid, uint32_t key, const char *application_name,
                           pgp_render_t *out)
{
    char auth_ok[9] = {(char)PGP_BE_AUTHENTICATION, 0, 0, 0, 8, 0, 0, 0, 0};
    pgp_render_append(out, auth_ok, sizeof(auth_ok));
    put_parameter_status(out, "server_version",
                         PGP_CONSOLE_SERVER_VERSION " (pgproxy " PGP_VERSION ")");
    put_parameter_status(out, "server_encoding", "UTF8");
    put_parameter_status(out, "client_encoding", "UTF8");
    put_parameter_status(out, "DateStyle", "ISO, MDY");
    put_parameter_status(out, "IntervalStyle", "postgres");
    put_parameter_status(out, "integer_datetimes", "on");
    put_parameter_status(out, "standard_conforming_strings", "on");
    put_parameter_status(out, "TimeZone", "UTC");
    put_parameter_status(out, "is_superuser", "off");

    size_t off = msg_begin(out, PGP_BE_PARAMETER_STATUS);
    put_cstr(out, "application_name");
    if (application_name != NULL)
        (void)utf8_clean_put(out, application_name, strnlen(application_name, 4 * NAME_BYTES),
                             NAME_BYTES);
    pgp_render_char(out, '\0');
    msg_end(out, off);

    off = msg_begin(out, PGP_BE_BACKEND_KEY_DATA);
    put_be32(out, pid);
    put_be32(out, key);
    msg_end(out, off);
    put_ready(out);
    return pgp_render_error(out) != 0 ? -1 : 0;
}

int pgp_console_welcome(uint32_t pid, uint32_t key, pgp_render_t *out)
{
    return pgp_console_welcome_ex(pid, key, NULL, out);
}

int pgp_console_unsupported(uint8_t msg_type, pgp_render_t *out)
{
    static const char hex[] = "0123456789ABCDEF";
    text_t m = {.n = 0};
    text_str(&m, "the pgproxy console speaks the simple query protocol only (got message type ");
    if (msg_type >= 0x21 && msg_type < 0x7F) {
        char q[3] = {'\'', (char)msg_type, '\''};
        text_add(&m, q, sizeof(q));
    } else {
        char h[4] = {'0', 'x', hex[msg_type >> 4], hex[msg_type & 0xF]};
        text_add(&m, h, sizeof(h));
    }
    text_str(&m, ")");
    put_error(out, "0A000", &m);
    return pgp_render_error(out) != 0 ? -1 : 0;
}

int pgp_console_ready(pgp_render_t *out)
{
    put_ready(out);
    return pgp_render_error(out) != 0 ? -1 : 0;
}
