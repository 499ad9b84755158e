/*
 * lex.c - PostgreSQL SQL lexer (see lex.h), modelled on SQLite's
 * tokenize.c: a 256-entry character-class table picks the rule for the
 * first byte, each rule scans forward with explicit bounds checks against
 * `end`.  The rules mirror PostgreSQL's scan.l; where scan.l raises an
 * error (unterminated literal, junk after a number, a lone `$`) this lexer
 * returns its best guess and keeps going.  No allocation, no NUL
 * assumption, no state beyond the cursor.  The class tables are shared
 * with normalize.c's fast paths through lex_inline.h.
 */
#define _GNU_SOURCE 1
#include "pgproxy/lex.h"
#include "pgproxy/lex_inline.h"

#include <string.h>

/* Character classes, one per byte value (the aiClass[] idea); the enum
 * and the fast-path helpers built on it are in lex_inline.h. */
#define SP PGP_LEX_CC_SPACE
#define AL PGP_LEX_CC_ALPHA
#define DI PGP_LEX_CC_DIGIT
#define OP PGP_LEX_CC_OPCHAR
#define OT PGP_LEX_CC_OTHER
const unsigned char pgp_lex_cclass[256] = {
    /* 0x00-0x1f: control bytes lex as whitespace */
    SP, SP, SP, SP, SP, SP, SP, SP, SP, SP, SP, SP, SP, SP, SP, SP,
    SP, SP, SP, SP, SP, SP, SP, SP, SP, SP, SP, SP, SP, SP, SP, SP,
    /* ' ' ! " # $ % & ' */
    SP, OP, PGP_LEX_CC_DQUOTE, OP, PGP_LEX_CC_DOLLAR, OP, OP, PGP_LEX_CC_QUOTE,
    /* ( ) * + , - . / */
    PGP_LEX_CC_LP, PGP_LEX_CC_RP, OP, OP, PGP_LEX_CC_COMMA, PGP_LEX_CC_MINUS, PGP_LEX_CC_DOT,
    PGP_LEX_CC_SLASH,
    /* 0-9 : ; < = > ? */
    DI, DI, DI, DI, DI, DI, DI, DI, DI, DI, PGP_LEX_CC_COLON, PGP_LEX_CC_SEMI, OP, OP, OP, OP,
    /* @ A-O */
    OP, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL,
    /* P-Z [ \ ] ^ _ */
    AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, PGP_LEX_CC_LB, OT, PGP_LEX_CC_RB, OP, AL,
    /* ` a-o */
    OP, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL,
    /* p-z { | } ~ DEL */
    AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, OT, OP, OT, OP, SP,
    /* 0x80-0xff: identifier bytes, as in scan.l's ident_start */
#define A16 AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL, AL
    A16, A16, A16, A16, A16, A16, A16, A16,
#undef A16
};
#undef SP
#undef AL
#undef DI
#undef OP
#undef OT

/* scan.l ident_cont: A-Z a-z 0-9 _ $ and bytes >= 0x80, by byte value */
const unsigned char pgp_lex_ident_cont[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

/* scan.l op_chars: ~ ! @ # ^ & | ` ? + - * / % < > =, by byte value */
const unsigned char pgp_lex_op_char[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 1, 0, 1, 0, 1, 1, 0, 0, 0, 1, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1,
    1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0,
    1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

static inline bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* ident_cont: letters, digits, _, $, bytes >= 0x80. */
static inline bool is_ident_cont(unsigned char c)
{
    return pgp_lex_ident_cont[c] != 0;
}

/* scan.l's op_chars. */
static inline bool is_op_char(unsigned char c)
{
    return pgp_lex_op_char[c] != 0;
}

static inline bool is_newline(unsigned char c) { return c == '\n' || c == '\r'; }

static inline bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

void pgp_lex_init(pgp_lex_t *lx, const char *sql, size_t len, bool backslash_escapes)
{
    lx->cur = (const unsigned char *)sql;
    lx->end = lx->cur + len;
    lx->backslash_escapes = backslash_escapes;
}

/* Skips a `--` comment starting at p; returns the newline (or end). */
static const unsigned char *skip_line_comment(const unsigned char *p, const unsigned char *end)
{
    while (p < end && !is_newline(*p))
        p++;
    return p;
}

/*
 * After a closing quote at q: scan.l's quotecontinue, i.e. horizontal
 * whitespace or -- comments, a newline, then whitespace (a -- comment
 * there must end with a newline), then a quote.  Returns the byte after
 * that quote, or NULL when the literal does not continue.
 */
static const unsigned char *quote_continue(const unsigned char *q, const unsigned char *end)
{
    const unsigned char *p = q;
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\f'))
            p++;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-')
            p = skip_line_comment(p, end);
        else
            break;
    }
    if (p >= end || !is_newline(*p))
        return NULL;
    p++;
    for (;;) {
        if (p < end && is_space(*p)) {
            p++;
        } else if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
            p = skip_line_comment(p, end);
            if (p >= end)
                return NULL;
            p++;
        } else {
            break;
        }
    }
    if (p < end && *p == '\'')
        return p + 1;
    return NULL;
}

/*
 * Scans the body of a quoted literal whose opening quote is at p[-1]:
 * `quote` doubled is an escaped quote, `\` escapes the next byte when
 * backslash is set; string literals (quote == '\'') continue across a
 * newline.  Returns the byte after the closing quote, or end (and sets
 * *unterminated).
 */
static const unsigned char *scan_quoted(const unsigned char *p, const unsigned char *end,
                                        unsigned char quote, bool backslash, bool *unterminated)
{
    for (;;) {
        const unsigned char *q = p;
        if (!backslash) {
            q = memchr(p, quote, (size_t)(end - p));
            if (!q) {
                *unterminated = true;
                return end;
            }
        } else {
            while (q < end && *q != quote) {
                if (*q == '\\')
                    q++;
                if (q < end)
                    q++;
            }
            if (q >= end) {
                *unterminated = true;
                return end;
            }
        }
        /* q is a quote */
        if (q + 1 < end && q[1] == quote) {
            p = q + 2;
            continue;
        }
        if (quote == '\'') {
            const unsigned char *c = quote_continue(q + 1, end);
            if (c) {
                p = c;
                continue;
            }
        }
        return q + 1;
    }
}

/* Case-insensitive match of an ASCII keyword at p (kw lower case). */
static bool match_word(const unsigned char *p, const unsigned char *end, const char *kw, size_t n)
{
    if ((size_t)(end - p) < n)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((p[i] | 0x20) != (unsigned char)kw[i])
            return false;
    return n == (size_t)(end - p) || !is_ident_cont(p[n]);
}

/* Whitespace and comments (of any kind); returns the first other byte. */
static const unsigned char *skip_blank(const unsigned char *p, const unsigned char *end)
{
    for (;;) {
        if (p < end && pgp_lex_cclass[*p] == PGP_LEX_CC_SPACE) {
            p++;
        } else if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
            p = skip_line_comment(p, end);
        } else if (end - p >= 2 && p[0] == '/' && p[1] == '*') {
            int depth = 1;
            p += 2;
            while (p < end && depth > 0) {
                if (end - p >= 2 && p[0] == '*' && p[1] == '/') {
                    depth--;
                    p += 2;
                } else if (end - p >= 2 && p[0] == '/' && p[1] == '*') {
                    depth++;
                    p += 2;
                } else {
                    p++;
                }
            }
        } else {
            return p;
        }
    }
}

/* After a U&'…' or U&"…" token ending at p: an optional UESCAPE '…'. */
static const unsigned char *scan_uescape(const unsigned char *p, const unsigned char *end)
{
    const unsigned char *q = skip_blank(p, end);
    if (!match_word(q, end, "uescape", 7))
        return p;
    q = skip_blank(q + 7, end);
    if (q >= end || *q != '\'')
        return p;
    bool unterminated = false;
    return scan_quoted(q + 1, end, '\'', false, &unterminated);
}

/* Numbers: decinteger, 0x/0o/0b, numeric, real, with _ separators. */
static const unsigned char *scan_digits(const unsigned char *p, const unsigned char *end, int base)
{
    for (;;) {
        const unsigned char *q = p;
        if (q < end && *q == '_')
            q++;
        if (q >= end)
            return p;
        unsigned char c = *q;
        bool ok;
        if (base == 16)
            ok = is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
        else if (base == 8)
            ok = c >= '0' && c <= '7';
        else if (base == 2)
            ok = c == '0' || c == '1';
        else
            ok = is_digit(c);
        if (!ok)
            return p;
        p = q + 1;
    }
}

/* p is a digit, or a "." followed by a digit. */
static const unsigned char *scan_number(const unsigned char *p, const unsigned char *end)
{
    if (*p == '0' && end - p >= 3) {
        unsigned char x = p[1] | 0x20;
        int base = x == 'x' ? 16 : x == 'o' ? 8 : x == 'b' ? 2 : 0;
        if (base) {
            const unsigned char *q = scan_digits(p + 2, end, base);
            if (q > p + 2)
                return q;
        }
    }
    if (*p == '.') {
        p = scan_digits(p + 2, end, 10);
    } else {
        p = scan_digits(p + 1, end, 10);
        if (p < end && *p == '.') {
            if (p + 1 < end && p[1] == '.')
                return p;   /* 1..10: an integer, then .. */
            p++;
            if (p < end && is_digit(*p))
                p = scan_digits(p + 1, end, 10);
        }
    }
    if (p < end && (*p | 0x20) == 'e') {
        const unsigned char *q = p + 1;
        if (q < end && (*q == '+' || *q == '-'))
            q++;
        if (q < end && is_digit(*q))
            p = scan_digits(q + 1, end, 10);
    }
    return p;
}

static bool is_dolq_start(unsigned char c) { return pgp_lex_cclass[c] == PGP_LEX_CC_ALPHA; }

void pgp_lex_next(pgp_lex_t *lx, pgp_lex_token_t *tok)
{
    const unsigned char *p = lx->cur, *end = lx->end, *q;
    bool unterminated = false;

    tok->flags = 0;
    tok->p = (const char *)p;
    if (p >= end) {
        tok->kind = PGP_LEX_EOF;
        tok->len = 0;
        return;
    }
    unsigned char c = *p;
    switch (pgp_lex_cclass[c]) {
    case PGP_LEX_CC_SPACE:
        q = p;
        while (q < end && pgp_lex_cclass[*q] == PGP_LEX_CC_SPACE) {
            if (is_newline(*q))
                tok->flags |= PGP_LEX_F_NEWLINE;
            q++;
        }
        tok->kind = PGP_LEX_SPACE;
        break;
    case PGP_LEX_CC_ALPHA: {
        unsigned char lc = c | 0x20;
        if (p + 1 < end && p[1] == '\'' && c < 0x80 &&
            (lc == 'b' || lc == 'x' || lc == 'e' || lc == 'n')) {
            bool bs = lc == 'e' || (lc == 'n' && lx->backslash_escapes);
            q = scan_quoted(p + 2, end, '\'', bs, &unterminated);
            tok->kind = PGP_LEX_STRING;
            break;
        }
        if (lc == 'u' && end - p >= 3 && p[1] == '&' && (p[2] == '\'' || p[2] == '"')) {
            q = scan_quoted(p + 3, end, p[2], false, &unterminated);
            if (!unterminated)
                q = scan_uescape(q, end);
            tok->kind = p[2] == '\'' ? PGP_LEX_STRING : PGP_LEX_QIDENT;
            break;
        }
        q = p + 1;
        while (q < end && is_ident_cont(*q))
            q++;
        tok->kind = PGP_LEX_WORD;
        break;
    }
    case PGP_LEX_CC_DIGIT:
        q = scan_number(p, end);
        tok->kind = PGP_LEX_NUMBER;
        break;
    case PGP_LEX_CC_QUOTE:
        q = scan_quoted(p + 1, end, '\'', lx->backslash_escapes, &unterminated);
        tok->kind = PGP_LEX_STRING;
        break;
    case PGP_LEX_CC_DQUOTE:
        q = scan_quoted(p + 1, end, '"', false, &unterminated);
        tok->kind = PGP_LEX_QIDENT;
        break;
    case PGP_LEX_CC_DOLLAR:
        if (p + 1 < end && is_digit(p[1])) {
            q = p + 2;
            while (q < end && is_digit(*q))
                q++;
            tok->kind = PGP_LEX_PARAM;
            break;
        }
        q = p + 1;
        if (q < end && is_dolq_start(*q)) {
            while (q < end && (pgp_lex_cclass[*q] == PGP_LEX_CC_ALPHA || is_digit(*q)))
                q++;
        }
        if (q < end && *q == '$') {
            size_t tag_len = (size_t)(q + 1 - p);
            const unsigned char *body = q + 1;
            const unsigned char *close = memmem(body, (size_t)(end - body), p, tag_len);
            if (close) {
                q = close + tag_len;
            } else {
                q = end;
                unterminated = true;
            }
            tok->kind = PGP_LEX_STRING;
            break;
        }
        q = p + 1;   /* scan.l's dolqfailed: a lone $ */
        tok->kind = PGP_LEX_OTHER;
        break;
    case PGP_LEX_CC_MINUS:
    case PGP_LEX_CC_SLASH:
        if (p + 1 < end && c == '-' && p[1] == '-') {
            q = skip_line_comment(p, end);
            tok->kind = PGP_LEX_LINE_COMMENT;
            break;
        }
        if (p + 1 < end && c == '/' && p[1] == '*') {
            int depth = 1;
            q = p + 2;
            while (q < end && depth > 0) {
                if (end - q >= 2 && q[0] == '*' && q[1] == '/') {
                    depth--;
                    q += 2;
                } else if (end - q >= 2 && q[0] == '/' && q[1] == '*') {
                    depth++;
                    q += 2;
                } else {
                    q++;
                }
            }
            if (depth > 0)
                unterminated = true;
            tok->kind = PGP_LEX_BLOCK_COMMENT;
            break;
        }
        /* fall through */
    case PGP_LEX_CC_OPCHAR: {
        q = p + 1;
        while (q < end && is_op_char(*q)) {
            if (end - q >= 2 && ((q[0] == '/' && q[1] == '*') || (q[0] == '-' && q[1] == '-')))
                break;
            q++;
        }
        size_t n = (size_t)(q - p);
        if (n > 1 && (p[n - 1] == '+' || p[n - 1] == '-')) {
            bool keep = false;
            for (size_t i = 0; i + 1 < n; i++) {
                unsigned char o = p[i];
                if (o == '~' || o == '!' || o == '@' || o == '#' || o == '^' || o == '&' ||
                    o == '|' || o == '`' || o == '?' || o == '%') {
                    keep = true;
                    break;
                }
            }
            if (!keep) {
                do {
                    n--;
                } while (n > 1 && (p[n - 1] == '+' || p[n - 1] == '-'));
            }
        }
        q = p + n;
        tok->kind = PGP_LEX_OP;
        break;
    }
    case PGP_LEX_CC_DOT:
        if (p + 1 < end && is_digit(p[1])) {
            q = scan_number(p, end);
            tok->kind = PGP_LEX_NUMBER;
        } else if (p + 1 < end && p[1] == '.') {
            q = p + 2;
            tok->kind = PGP_LEX_OP;
        } else {
            q = p + 1;
            tok->kind = PGP_LEX_DOT;
        }
        break;
    case PGP_LEX_CC_COLON:
        if (p + 1 < end && p[1] == ':') {
            q = p + 2;
            tok->kind = PGP_LEX_TYPECAST;
        } else if (p + 1 < end && p[1] == '=') {
            q = p + 2;
            tok->kind = PGP_LEX_OP;
        } else {
            q = p + 1;
            tok->kind = PGP_LEX_COLON;
        }
        break;
    case PGP_LEX_CC_LP: q = p + 1; tok->kind = PGP_LEX_LPAREN; break;
    case PGP_LEX_CC_RP: q = p + 1; tok->kind = PGP_LEX_RPAREN; break;
    case PGP_LEX_CC_LB: q = p + 1; tok->kind = PGP_LEX_LBRACKET; break;
    case PGP_LEX_CC_RB: q = p + 1; tok->kind = PGP_LEX_RBRACKET; break;
    case PGP_LEX_CC_COMMA: q = p + 1; tok->kind = PGP_LEX_COMMA; break;
    case PGP_LEX_CC_SEMI: q = p + 1; tok->kind = PGP_LEX_SEMI; break;
    default: q = p + 1; tok->kind = PGP_LEX_OTHER; break;
    }
    if (unterminated)
        tok->flags |= PGP_LEX_F_UNTERMINATED;
    tok->len = (size_t)(q - p);
    lx->cur = q;
}
