/*
 * console.h - the SQL admin console's protocol side (DESIGN §6): what a
 * client connected to the proxy port with database "pgproxy" hears back.
 *
 * pgbouncer's convention: operators type `SHOW STATS` in psql.  This
 * module answers simple-protocol Query messages with complete backend
 * message sequences (RowDescription, DataRow..., CommandComplete or
 * ErrorResponse, ReadyForQuery) written into a capped pgp_render_t used
 * as a byte buffer.  Every SHOW is backed by a JSON document that a
 * provider renders with pgproxy's existing JSON renderers; this module
 * parses it (json-c) and turns it into a table:
 *   - an array of objects: one column per key of the first object (in
 *     order), one row per element; keys missing from an element are NULL,
 *     keys the first object lacks are ignored; an element that is not an
 *     object puts its JSON text in the first column and NULL elsewhere;
 *   - an array of non-objects (first element not an object): one column
 *     "value"; an empty array: a table with no columns and no rows;
 *   - an object: columns "key" and "value", one row per member;
 *   - a scalar: one column "value", one row.
 * Cells: strings are the string, numbers their JSON text (json-c keeps the
 * text of non-integers; integers are printed back, clamped to the
 * int64/uint64 range), true/false are "true"/"false", null is SQL NULL,
 * nested arrays/objects their compact JSON text.  Cell and column-name
 * text is made valid UTF-8 (invalid sequences and NUL become U+FFFD).
 * All columns are text (OID 25), text format.
 *
 * Bounds: a response never grows past the caller's cap.  The last
 * PGP_CONSOLE_RESERVE_BYTES of the cap are kept for the closing messages,
 * so when rows do not fit the table is cut cleanly: the rows that fit, a
 * NoticeResponse saying how many were cut, CommandComplete; a header that
 * does not fit is an ErrorResponse 54000.  The JSON document is rendered
 * into a buffer capped at json_cap_bytes (default: the same cap) and
 * parsed into a json-c tree (about ten times its size: 16 MB of digest
 * JSON peaked at 170 MB RSS and took 0.85 s), freed before returning.
 *
 * It does not read sockets, decide who may enter, or know where the data
 * comes from: the session feeds it message bodies and sends its bytes.
 * No libuv, no global state: every function runs on any thread,
 * reentrant (the provider decides its own locking).
 */
#ifndef PGPROXY_CONSOLE_H
#define PGPROXY_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include "pgproxy/render.h"

#ifndef PGP_MUST_CHECK
#define PGP_MUST_CHECK __attribute__((warn_unused_result))
#endif

#define PGP_CONSOLE_DATABASE "pgproxy"      /* the virtual database name */
#define PGP_CONSOLE_RESERVE_BYTES 1024u     /* cap kept for Notice/Error + CommandComplete + Z */
#define PGP_CONSOLE_MAX_COLUMNS 1600u       /* keys beyond this are ignored (PostgreSQL: 1664) */
#define PGP_CONSOLE_JSON_MAX_DEPTH 64       /* deeper documents are a provider error */
#define PGP_CONSOLE_TEXT_OID 25u
/* server_version's number: libpq reads 160000; psql 15 prints a major-version warning interactively. */
#define PGP_CONSOLE_SERVER_VERSION "16.0"

typedef enum pgp_console_source {
    PGP_CONSOLE_STATS = 0,      /* SHOW STATS: one object of counters -> key/value rows */
    PGP_CONSOLE_QUERIES,        /* SHOW QUERIES: array (per-fingerprint digests) */
    PGP_CONSOLE_SLOW_QUERIES,   /* SHOW SLOW_QUERIES: array */
    PGP_CONSOLE_N_PLUS_ONE,     /* SHOW N_PLUS_ONE: array */
    PGP_CONSOLE_CONNECTIONS,    /* SHOW CONNECTIONS: array */
    PGP_CONSOLE_PROFILES,       /* SHOW PROFILES: array */
    PGP_CONSOLE_CONFIG,         /* SHOW CONFIG: object {"section.key": value} -> key/value rows */
    PGP_CONSOLE_SOURCE_COUNT_
} pgp_console_source_t;

typedef struct pgp_console_providers {
    void *ud;
    /*
     * Render the source's JSON into out (empty, capped at json_cap_bytes
     * or else the console output's cap; borrowed for the call).  Returns 0, or negative ->
     * ErrorResponse XX000 (54000 when out reports PGP_RENDER_ETOOBIG).
     * Called on the thread that called pgp_console_query.  May be NULL
     * (every SHOW backed by JSON is then XX000).
     */
    int (*json)(void *ud, pgp_console_source_t src, pgp_render_t *out);
    /* RESET STATS: zero the counters/digests/recent lists.  0 or negative (-> XX000).  May be NULL. */
    int (*reset)(void *ud);
    /*
     * Cap of the buffer json renders into; 0: the console output's cap.
     * Parsing takes about ten times the document's size (json-c tree), so
     * this bounds a console query's memory: cap + ~11 x json_cap_bytes.
     */
    size_t json_cap_bytes;
} pgp_console_providers_t;

/*
 * The SHOW name of a source ("STATS", "QUERIES", ...): a static string, or
 * NULL for a value outside the enum.  Any thread.
 */
const char *pgp_console_source_name(pgp_console_source_t src);

/*
 * The bytes a console session starts with, after the client's
 * StartupMessage: AuthenticationOk; ParameterStatus server_version
 * PGP_CONSOLE_SERVER_VERSION " (pgproxy <PGP_VERSION>)", server_encoding and client_encoding
 * UTF8, DateStyle "ISO, MDY", IntervalStyle postgres, integer_datetimes
 * on, standard_conforming_strings on, TimeZone UTC, is_superuser off,
 * application_name (the client's, made valid UTF-8 and cut to 63 bytes;
 * "" when NULL); BackendKeyData (pid, key given by the caller);
 * ReadyForQuery 'I'.  application_name is borrowed for the call (a
 * NUL-terminated string from the startup packet).  Appends to out;
 * returns 0, or -1 when out is (or became) in error: then the bytes are
 * not to be sent.  Any thread.
 */
PGP_MUST_CHECK int pgp_console_welcome_ex(uint32_t pid, uint32_t key, const char *application_name,
                                          pgp_render_t *out);

/* pgp_console_welcome_ex with no application_name. */
PGP_MUST_CHECK int pgp_console_welcome(uint32_t pid, uint32_t key, pgp_render_t *out);

/*
 * Answer one simple Query message.  sql/len: the message body (the SQL
 * text, with or without its trailing NUL; bytes after a NUL are ignored);
 * borrowed for the call, any bytes.  prov borrowed for the call; may be
 * NULL (SHOW VERSION, SHOW HELP and SET still work).
 *
 * Appends the full response to out: for each ;-separated statement
 * (statements are split with pgproxy's SQL lexer, so ';' inside quotes or
 * comments does not split; empty statements are skipped, and a string
 * with no statement at all gets one EmptyQueryResponse), either
 * RowDescription + DataRow... + CommandComplete "SHOW" (SHOW ...),
 * CommandComplete "RESET" (RESET STATS), CommandComplete "SET" (SET ...,
 * ignored), or an ErrorResponse, which ends processing of the string:
 *   42601  unknown command (the message lists the commands)
 *   0A000  a known command in an unsupported form (SHOW X with arguments,
 *          RESET of anything but STATS, pgbouncer-only commands)
 *   XX000  provider missing or failing, document not valid JSON
 *   54000  the document or a table header does not fit the cap
 * and then ReadyForQuery 'I'.  Commands are case-insensitive and
 * whitespace/comment tolerant.  Commands: SHOW STATS, SHOW QUERIES,
 * SHOW SLOW_QUERIES, SHOW N_PLUS_ONE, SHOW CONNECTIONS, SHOW PROFILES,
 * SHOW CONFIG, SHOW VERSION, SHOW HELP, RESET STATS, SET ....
 *
 * Rows that do not fit out's cap (minus PGP_CONSOLE_RESERVE_BYTES) are
 * cut: NoticeResponse (01000) with the counts, then CommandComplete; the
 * output stays a valid message sequence.  Returns 0, or -1 only when out
 * overflowed anyway (its free space was below PGP_CONSOLE_RESERVE_BYTES,
 * or out of memory): the bytes are then not to be sent.  Any thread,
 * reentrant; calls prov->json / prov->reset on the calling thread.
 */
PGP_MUST_CHECK int pgp_console_query(const pgp_console_providers_t *prov, const char *sql,
                                     size_t len, pgp_render_t *out);

/*
 * For any frontend message other than Query/Terminate (extended protocol,
 * function call, copy): appends an ErrorResponse 0A000 "the pgproxy
 * console speaks the simple query protocol only" naming msg_type.  The
 * caller sends it and a ReadyForQuery at the next Sync (see
 * pgp_console_ready).  Returns 0, or -1 when out is in error.  Any thread.
 */
PGP_MUST_CHECK int pgp_console_unsupported(uint8_t msg_type, pgp_render_t *out);

/* Appends ReadyForQuery 'I'.  Returns 0, or -1 when out is in error.  Any thread. */
PGP_MUST_CHECK int pgp_console_ready(pgp_render_t *out);

#endif
