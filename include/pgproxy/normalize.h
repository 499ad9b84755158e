/*
 * normalize.h - SQL normalization, fingerprint, statement kind and tags
 * ("pgproxy-norm v1", DESIGN §4.3 and §4.4).
 *
 * pgp_normalize() makes one forward pass over a statement with the lexer
 * of lex.h (no parser) and produces: the normalized text (literals and $n
 * replaced by ?, IN/ARRAY/VALUES duplicates dropped, comments removed,
 * whitespace collapsed, trailing ; dropped), the 64-bit fingerprint of the
 * whole statement, a hash of the replaced literal texts, the statement
 * kind, and the sqlcommenter / marginalia tags found in block comments.
 * It never allocates, never fails and never reads outside [sql, sql+len):
 * any byte sequence gets a best-effort result.  A lone `?` operator in the
 * input hashes like a placeholder, so normalizing normalized text keeps
 * its fingerprint wherever each ? is delimited by space , ( ) [ ] (a ? glued
 * to operator characters, as in x=? from x=1, re-lexes as one operator).
 *
 * Leaf module: no libuv, no global state, every function is reentrant and
 * callable from any thread.  The fingerprint spec is versioned: changing
 * what is hashed changes PGP_NORM_SPEC_VERSION and the golden values in
 * tests/unit/test_fingerprint.c.
 */
#ifndef PGPROXY_NORMALIZE_H
#define PGPROXY_NORMALIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PGP_NORM_SPEC_VERSION 1          /* "pgproxy-norm v1" */

/*
 * The normalized text is never longer than the input (every replacement
 * is no longer than what it replaces, whitespace and comments only
 * shrink): out_cap = len + PGP_NORMALIZE_MAX_GROWTH + 1 (the NUL) always
 * holds the whole text.
 */
#define PGP_NORMALIZE_MAX_GROWTH 0

#define PGP_NORM_TAGS_MAX 16             /* tags kept per statement */
#define PGP_NORM_TAGS_BUF 1024           /* bytes for decoded keys + values */

typedef enum pgp_norm_kind {
    PGP_NORM_KIND_EMPTY = 0,   /* nothing but whitespace/comments/; */
    PGP_NORM_KIND_SELECT,      /* SELECT, WITH … SELECT, VALUES, TABLE, ( SELECT … */
    PGP_NORM_KIND_INSERT,      /* also WITH … INSERT (same for the next three) */
    PGP_NORM_KIND_UPDATE,
    PGP_NORM_KIND_DELETE,
    PGP_NORM_KIND_MERGE,
    PGP_NORM_KIND_COPY,
    PGP_NORM_KIND_BEGIN,       /* BEGIN, START TRANSACTION */
    PGP_NORM_KIND_COMMIT,      /* COMMIT, END, COMMIT PREPARED, PREPARE TRANSACTION */
    PGP_NORM_KIND_ROLLBACK,    /* ROLLBACK, ABORT, ROLLBACK PREPARED (not ROLLBACK TO) */
    PGP_NORM_KIND_SAVEPOINT,   /* SAVEPOINT, RELEASE, ROLLBACK TO */
    PGP_NORM_KIND_SET,         /* name = the parameter, set_local for SET LOCAL */
    PGP_NORM_KIND_RESET,       /* name = the parameter or ALL */
    PGP_NORM_KIND_SHOW,        /* name = the parameter or ALL */
    PGP_NORM_KIND_PREPARE,     /* name = the statement name */
    PGP_NORM_KIND_EXECUTE,     /* name = the statement name */
    PGP_NORM_KIND_DEALLOCATE,  /* name = the statement name or ALL */
    PGP_NORM_KIND_DISCARD,     /* name = ALL, PLANS, SEQUENCES or TEMP */
    PGP_NORM_KIND_DDL,         /* CREATE ALTER DROP TRUNCATE GRANT REVOKE COMMENT */
    PGP_NORM_KIND_OTHER,       /* EXPLAIN, VACUUM, CALL, DO, LISTEN, … */
    PGP_NORM_KIND_MULTI,       /* more than one statement */
    PGP_NORM_KIND_COUNT_
} pgp_norm_kind_t;

typedef struct pgp_norm_opts {
    /* The server's standard_conforming_strings (ParameterStatus): when
     * false, '…' strings take backslash escapes.  Mind that a zeroed
     * struct means off (a pre-9.1 server); NULL opts means on. */
    bool standard_conforming_strings;
} pgp_norm_opts_t;

typedef struct pgp_norm_result {
    uint64_t fingerprint;      /* over the whole statement, whatever out_cap */
    uint64_t values_hash;      /* over the replaced literal texts, in order */
    size_t out_len;            /* bytes written to out (NUL not counted) */
    size_t norm_len;           /* length of the whole normalized text */
    bool out_truncated;        /* norm_len > out_len */
    uint32_t literal_count;    /* literals and $n replaced by ? (before dedup) */
    uint32_t statement_count;  /* non-empty statements */
    pgp_norm_kind_t kind;      /* of the first statement, or MULTI */
    bool set_local;            /* SET LOCAL */
    /* The name token of PREPARE/EXECUTE/DEALLOCATE/DISCARD/SET/RESET/SHOW,
     * as an offset and length into the input (quotes kept for "names",
     * dotted names whole: pgproxy.request_id); name_len 0 when absent. */
    size_t name_off;
    size_t name_len;
} pgp_norm_result_t;

typedef struct pgp_norm_tag {
    uint16_t key_off, key_len; /* into pgp_norm_tags_t.buf */
    uint16_t val_off, val_len;
} pgp_norm_tag_t;

/* Tags from comments; zero it (or pgp_norm_tags_reset) before use. */
typedef struct pgp_norm_tags {
    uint32_t count;
    bool truncated;            /* a tag or some bytes did not fit */
    uint16_t buf_used;
    pgp_norm_tag_t tag[PGP_NORM_TAGS_MAX];
    char buf[PGP_NORM_TAGS_BUF];
} pgp_norm_tags_t;

/*
 * Normalizes sql[0, len) (borrowed, not NUL-terminated, any bytes).
 * opts: borrowed, NULL for the defaults.  out: out_cap bytes owned by the
 * caller, receives the normalized text, cut at out_cap - 1 bytes (on a
 * UTF-8 boundary) and NUL-terminated when out_cap > 0; out may be NULL
 * when out_cap is 0.  tags: NULL, or filled (reset first) with the tags of
 * every block comment.  res: always fully written.  Never fails, never
 * allocates; the normalized text never contains control bytes or
 * newlines (those in quoted identifiers are shown as ?).  Any thread.
 */
void pgp_normalize(const char *sql, size_t len, const pgp_norm_opts_t *opts,
                   char *out, size_t out_cap, pgp_norm_tags_t *tags,
                   pgp_norm_result_t *res);

/* Writes fp as 16 lowercase hex digits and a NUL into out.  Any thread. */
void pgp_fingerprint_format(uint64_t fp, char out[17]);

/* A static name for the kind ("select", "insert", …, "multi"). */
const char *pgp_norm_kind_name(pgp_norm_kind_t kind);

/* True for BEGIN, COMMIT, ROLLBACK and SAVEPOINT. */
static inline bool pgp_norm_kind_is_txn(pgp_norm_kind_t k)
{
    return k >= PGP_NORM_KIND_BEGIN && k <= PGP_NORM_KIND_SAVEPOINT;
}

/* Empties tags. */
void pgp_norm_tags_reset(pgp_norm_tags_t *tags);

/*
 * Parses one comment body (text between the delimiters, borrowed) as
 * sqlcommenter (key='value',… URL-decoded, \' unescaped, %%XX decoded as %XX,
 * a lone %% as %, + kept,
 * undecodable % kept) or marginalia (key:value,…) and merges the tags into
 * *tags, a later key replacing an earlier one.  A comment of neither form
 * is ignored.  Sets tags->truncated when something did not fit.
 */
void pgp_norm_tags_parse(pgp_norm_tags_t *tags, const char *body, size_t len);

/*
 * Looks key[0, key_len) up (exact bytes).  Returns true and points *val
 * (borrowed from tags, valid until tags changes) at the value, or false.
 */
bool pgp_norm_tags_get(const pgp_norm_tags_t *tags, const char *key, size_t key_len,
                       const char **val, size_t *val_len);

/*
 * `pgproxy normalize [--null] [FILE...]` (argv[0] is "normalize"): one
 * statement per line (per NUL-terminated record with --null) from stdin or
 * the files, prints "<fingerprint>\t<normalized>\n" for each.  Returns the
 * exit status: 0, 1 on I/O error, 2 on usage error.  Main thread.
 */
int pgp_normalize_main(int argc, char **argv);

#endif
