/*
 * lex.h - a PostgreSQL SQL lexer over an explicit [begin, end) byte range.
 *
 * One token per call, following PostgreSQL's scan.l closely enough to
 * normalize statements (DESIGN §4.3): nested block comments, `--`
 * comments, every string form ('…' with '', E'', N'', B'', X'', U&''
 * with UESCAPE, backslash escapes when standard_conforming_strings is
 * off, continuation across whitespace containing a newline), dollar
 * quotes ($tag$ only at token start), $n parameters, PG16 numbers,
 * identifiers with bytes >= 0x80 and `$`, quoted identifiers (also U&"…"),
 * and PostgreSQL's operator rule (a multi-char operator ending in + or -
 * is cut unless it contains one of ~ ! @ # % ^ & | ` ?).
 *
 * It owns nothing: tokens point into the caller's buffer.  It never
 * allocates, never assumes a NUL terminator and never fails: malformed or
 * truncated input (unterminated strings, comments, dollar quotes) ends the
 * token at `end` with PGP_LEX_F_UNTERMINATED.  Control bytes other than
 * whitespace (NUL included) are lexed as whitespace.  It does not parse.
 */
#ifndef PGPROXY_LEX_H
#define PGPROXY_LEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum pgp_lex_kind {
    PGP_LEX_EOF = 0,
    PGP_LEX_SPACE,          /* whitespace run (PGP_LEX_F_NEWLINE if it has \n or \r) */
    PGP_LEX_LINE_COMMENT,   /* -- to the end of the line (newline not included) */
    PGP_LEX_BLOCK_COMMENT,  /* nested slash-star comment, delimiters included */
    PGP_LEX_WORD,           /* unquoted identifier or keyword */
    PGP_LEX_QIDENT,         /* "quoted identifier", U&"…" [UESCAPE '…'] */
    PGP_LEX_STRING,         /* any string constant, dollar quotes included */
    PGP_LEX_NUMBER,         /* integer or numeric constant (no sign) */
    PGP_LEX_PARAM,          /* $n */
    PGP_LEX_OP,             /* operator, after the +/- trailing rule; also .. and := */
    PGP_LEX_TYPECAST,       /* :: */
    PGP_LEX_LPAREN,
    PGP_LEX_RPAREN,
    PGP_LEX_LBRACKET,
    PGP_LEX_RBRACKET,
    PGP_LEX_COMMA,
    PGP_LEX_SEMI,
    PGP_LEX_DOT,
    PGP_LEX_COLON,
    PGP_LEX_OTHER,          /* any other single byte ({, }, \, a lone $, …) */
} pgp_lex_kind_t;

#define PGP_LEX_F_NEWLINE      0x1u   /* SPACE: contains a newline */
#define PGP_LEX_F_UNTERMINATED 0x2u   /* string/comment/identifier ran to end */

typedef struct pgp_lex_token {
    pgp_lex_kind_t kind;
    uint32_t flags;
    const char *p;          /* borrowed: points into the lexed buffer */
    size_t len;             /* > 0 except for EOF */
} pgp_lex_token_t;

typedef struct pgp_lex {
    const unsigned char *cur;
    const unsigned char *end;
    bool backslash_escapes; /* standard_conforming_strings = off */
} pgp_lex_t;

/*
 * Starts lexing sql[0, len).  sql is borrowed (valid while tokens are
 * used); it need not be NUL-terminated.  backslash_escapes: true when the
 * server's standard_conforming_strings is off ('…' then honours \').
 * Any thread; the state is the caller's.
 */
void pgp_lex_init(pgp_lex_t *lx, const char *sql, size_t len, bool backslash_escapes);

/*
 * Stores the next token in *tok and advances; PGP_LEX_EOF (len 0) at the
 * end, forever after.  Never fails, never reads outside [begin, end).
 */
void pgp_lex_next(pgp_lex_t *lx, pgp_lex_token_t *tok);

/* True for the token kinds that are neither whitespace nor comments. */
static inline bool pgp_lex_significant(pgp_lex_kind_t k)
{
    return k > PGP_LEX_BLOCK_COMMENT;
}

#endif
