/*
 * toml.h - a strict, generic parser for the TOML subset pgproxy's config uses.
 *
 * The parser knows nothing about pgproxy's keys: it walks a buffer and hands
 * each "[table]" header and each "key = value" line to a handler, which
 * decides what the names mean (config.c binds them to its key table, the
 * libusual cfparser idea).  Supported: comments, [table] headers, bare,
 * quoted and dotted keys, basic strings with escapes (\" \\ \b \t \n \f \r
 * \uXXXX \UXXXXXXXX), literal 'strings', integers (decimal with sign and
 * '_' separators, 0x/0o/0b), floats (incl. inf/nan), booleans, and arrays
 * of those scalars that may span lines, with comments and a trailing comma.
 * Rejected with a message naming the line: NUL bytes, invalid UTF-8, lines
 * longer than PGP_TOML_MAX_LINE_BYTES, control characters, unterminated
 * strings, bad escapes, integer overflow, trailing garbage after a value.
 * Not supported (rejected with a clear message): multi-line strings, inline
 * tables, arrays of tables, nested arrays, dates and times.
 * The parser does not detect duplicate keys or tables: the handler, which
 * knows the schema, does.  Floats are read with strtod(), which assumes the
 * "C" LC_NUMERIC locale (pgproxy never calls setlocale).  No global state;
 * any thread.
 */
#ifndef PGPROXY_TOML_H
#define PGPROXY_TOML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PGP_TOML_MAX_LINE_BYTES 65536   /* longest accepted line, newline excluded */
#define PGP_TOML_MAX_DEPTH 8            /* dotted parts in one key or table name */
#define PGP_TOML_MAX_ARRAY_ITEMS 65536

typedef enum pgp_toml_type {
    PGP_TOML_STRING = 0,
    PGP_TOML_INTEGER,
    PGP_TOML_FLOAT,
    PGP_TOML_BOOL,
    PGP_TOML_ARRAY,     /* of scalars (arrays do not nest) */
} pgp_toml_type_t;

typedef struct pgp_toml_value {
    pgp_toml_type_t type;
    union {
        char *s;        /* NUL-terminated valid UTF-8 without NUL bytes; owned by the value */
        int64_t i;
        double f;
        bool b;
        struct {
            struct pgp_toml_value *items;   /* owned by the value */
            size_t count;
        } a;
    } u;
} pgp_toml_value_t;

typedef enum pgp_toml_event_kind {
    PGP_TOML_TABLE = 0,   /* a "[a.b]" header: table/table_depth name it */
    PGP_TOML_KEYVAL,      /* "k.j = v" under the current table */
} pgp_toml_event_kind_t;

typedef struct pgp_toml_event {
    pgp_toml_event_kind_t kind;
    int line;                       /* 1-based line of the header or of the key */
    char *const *table;             /* current table path (empty before any header) */
    size_t table_depth;
    char *const *key;               /* PGP_TOML_KEYVAL: the (dotted) key, decoded */
    size_t key_depth;
    pgp_toml_value_t *value;        /* PGP_TOML_KEYVAL: the value, see pgp_toml_handler_fn */
} pgp_toml_event_t;

/*
 * Called once per header or key/value line, in file order.  Everything in
 * `ev` is borrowed (valid until the handler returns), except that the
 * handler may take ownership of `ev->value->u.s` or `ev->value->u.a.items`
 * by moving the pointer out and leaving NULL (and count 0) behind.
 * Returns 0 to go on, or negative after writing a one-line reason without
 * location (e.g. `unknown key "x"`) into `what`; the parser prefixes it
 * with "<name>:<line>: " and stops.
 */
typedef int (*pgp_toml_handler_fn)(void *ctx, const pgp_toml_event_t *ev,
                                   char *what, size_t whatlen);

/*
 * Parse `len` bytes of `data` (any bytes; no NUL terminator needed) and
 * feed `handler`.  `name` (borrowed) names the input in messages.
 * Returns 0, or -1 with "<name>:<line>: <reason>" in `err` (always
 * NUL-terminated when errlen > 0) on the first syntax error, on the first
 * handler error, or on allocation failure ("out of memory").
 * Everything the parser allocates is freed before it returns.
 */
int pgp_toml_parse(const char *name, const char *data, size_t len,
                   pgp_toml_handler_fn handler, void *ctx,
                   char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Parse a command-line or environment text as a value of `type`:
 *   STRING   the text itself (must be valid UTF-8);
 *   INTEGER  optional sign, decimal digits, '_' between digits (leading zeros
 *            ok, "010" is ten), or TOML's 0x/0o/0b forms;
 *   FLOAT    an integer or a TOML float ("1.5", "2e3", "inf");
 *   BOOL     true/false, yes/no, on/off, 1/0 (any case);
 *   ARRAY    comma-separated strings, blanks around items trimmed; "" = empty array.
 * `text` is borrowed.  On success returns 0 and `*out` is owned by the
 * caller (free with pgp_toml_value_free).  On error returns -1, `*out` is
 * left empty, and `what` holds e.g. `expected an integer, got "abc"`.
 */
int pgp_toml_parse_text(pgp_toml_type_t type, const char *text, pgp_toml_value_t *out,
                        char *what, size_t whatlen) __attribute__((warn_unused_result));

/* Free what `v` owns and leave it an empty string value.  NULL is a no-op. */
void pgp_toml_value_free(pgp_toml_value_t *v);

/* "a string", "an integer", "a float", "a boolean", "an array" (static). */
const char *pgp_toml_type_name(pgp_toml_type_t type);

/*
 * Write `s[0..len)` into buf as a double-quoted, escaped, one-line text for
 * messages; longer than ~60 bytes is cut with "...".  Always NUL-terminates
 * when buflen > 0.
 */
void pgp_toml_quote(const char *s, size_t len, char *buf, size_t buflen);

/* Write `s` (NUL-terminated; NULL is written as "") to f as a TOML basic string. */
void pgp_toml_write_string(FILE *f, const char *s);

/* Write `v` to f in TOML syntax, e.g. 1.0, inf, -3, true, ["a", "b"]. */
void pgp_toml_write_value(FILE *f, const pgp_toml_value_t *v);

#endif
