/*
 * lex_inline.h - internal to lex.c and normalize.c: lex.c's character
 * classes and the inline scanners that let the normalizer lex the common
 * tokens (whitespace, plain words, plain numbers, $n, '…' and "…" without
 * escapes, punctuation, short operators) in its own loop, without a call
 * per token.  Anything else goes through pgp_lex_next(), which stays
 * the one definition of every token; each helper here says which of its
 * results pgp_lex_next() would give for the same bytes.
 *
 * Not a public interface: no other module includes it.
 */
#ifndef PGPROXY_LEX_INLINE_H
#define PGPROXY_LEX_INLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum {
    PGP_LEX_CC_SPACE,   /* whitespace and control bytes */
    PGP_LEX_CC_ALPHA,   /* A-Z a-z _ and bytes >= 0x80 */
    PGP_LEX_CC_DIGIT,
    PGP_LEX_CC_QUOTE,   /* ' */
    PGP_LEX_CC_DQUOTE,  /* " */
    PGP_LEX_CC_DOLLAR,
    PGP_LEX_CC_OPCHAR,  /* ~ ! @ # ^ & | ` ? + * % < > = (and - / after their comment checks) */
    PGP_LEX_CC_MINUS,
    PGP_LEX_CC_SLASH,
    PGP_LEX_CC_LP, PGP_LEX_CC_RP, PGP_LEX_CC_LB, PGP_LEX_CC_RB, PGP_LEX_CC_COMMA,
    PGP_LEX_CC_SEMI, PGP_LEX_CC_DOT, PGP_LEX_CC_COLON,
    PGP_LEX_CC_OTHER,
};

/* The class of each byte value (defined in lex.c). */
extern const unsigned char pgp_lex_cclass[256];

/* 1 for scan.l's ident_cont bytes: letters, digits, _, $, >= 0x80 (lex.c). */
extern const unsigned char pgp_lex_ident_cont[256];

/* 1 for scan.l's op_chars (lex.c). */
extern const unsigned char pgp_lex_op_char[256];

/* The end of the identifier-continuation run starting at p (p <= end). */
static inline const unsigned char *pgp_lex_ident_end(const unsigned char *p,
                                                     const unsigned char *end)
{
    while (p < end && pgp_lex_ident_cont[*p])
        p++;
    return p;
}

/*
 * For 8 bytes packed little-endian in w: 0x80 in each byte that is not
 * ident_cont, 0 elsewhere (SWAR: range tests on the 7-bit values, bytes
 * >= 0x80 always ident_cont).  The first non-identifier byte is at
 * ctz(result) / 8.
 */
static inline uint64_t pgp_lex_nonident8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL, high = ones * 0x80;
    uint64_t x = w & ~high;
    uint64_t y = x | ones * 0x20;   /* A-Z to a-z; nothing else lands in a-z */
#define PGP_LEX_IN_(v, lo, hi) (((v) + ones * (0x80 - (lo))) & ~((v) + ones * (0x7f - (hi))))
    uint64_t ident = w | PGP_LEX_IN_(y, 'a', 'z') | PGP_LEX_IN_(x, '0', '9') |
                     PGP_LEX_IN_(x, '_', '_') | PGP_LEX_IN_(x, '$', '$');
#undef PGP_LEX_IN_
    return ~ident & high;
}

/* The 8 bytes at p as a little-endian word (p + 8 <= end is the caller's). */
static inline uint64_t pgp_lex_load8(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* 0x80 in each byte of w equal to the ASCII byte c (exact, SWAR). */
static inline uint64_t pgp_lex_eq8(uint64_t w, unsigned char c)
{
    const uint64_t ones = 0x0101010101010101ULL, high = ones * 0x80;
    uint64_t t = (w & ~high) ^ (ones * c);
    return ~(t + ones * 0x7f) & ~w & high;
}

/* 0x80 in each byte of w that is a control byte (< 0x20 or 0x7f). */
static inline uint64_t pgp_lex_ctrl8(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL, high = ones * 0x80;
    uint64_t x = w & ~high;
    return (~(x + ones * 0x60) | pgp_lex_eq8(w, 0x7f)) & ~w & high;
}

/* The first byte at or after p equal to c and, if stop_ctrl, the first
 * control byte; end when there is none. */
static inline const unsigned char *pgp_lex_find(const unsigned char *p, const unsigned char *end,
                                                unsigned char c, bool stop_ctrl)
{
    while (end - p >= 8) {
        uint64_t w = pgp_lex_load8(p);
        uint64_t m = pgp_lex_eq8(w, c) | (stop_ctrl ? pgp_lex_ctrl8(w) : 0);
        if (m)
            return p + (__builtin_ctzll(m) >> 3);
        p += 8;
    }
    while (p < end && *p != c && !(stop_ctrl && (*p < 0x20 || *p == 0x7f)))
        p++;
    return p;
}

/*
 * A quoted identifier "…" opening at p, without "" or control bytes
 * inside: returns its end, the token pgp_lex_next() gives (kind QIDENT).
 * NULL when pgp_lex_next() must decide (doubled quote, control byte,
 * unterminated).
 */
static inline const unsigned char *pgp_lex_qident_fast(const unsigned char *p,
                                                       const unsigned char *end)
{
    const unsigned char *r = pgp_lex_find(p + 1, end, '"', true);
    if (r >= end || *r != '"' || (r + 1 < end && r[1] == '"'))
        return NULL;
    return r + 1;
}

/*
 * A '…' string opening at p, standard_conforming_strings on, without ''
 * inside and not continued (scan.l's quotecontinue: no newline or -- after
 * the closing quote, before anything else than spaces): returns its end,
 * the token pgp_lex_next() gives (kind STRING).  NULL when pgp_lex_next()
 * must decide.
 */
static inline const unsigned char *pgp_lex_string_fast(const unsigned char *p,
                                                       const unsigned char *end)
{
    const unsigned char *r = pgp_lex_find(p + 1, end, '\'', false);
    if (r >= end || (r + 1 < end && r[1] == '\''))
        return NULL;
    const unsigned char *s = r + 1;
    while (s < end && (*s == ' ' || *s == '\t' || *s == '\f'))
        s++;
    if (s < end && (*s == '\n' || *s == '\r' || *s == '-'))
        return NULL;
    return r + 1;
}

/* The end of the run of the class-SPACE bytes starting at p. */
static inline const unsigned char *pgp_lex_space_end(const unsigned char *p,
                                                     const unsigned char *end)
{
    while (p < end && pgp_lex_cclass[*p] == PGP_LEX_CC_SPACE)
        p++;
    return p;
}

/* The end of the run of ASCII digits starting at p. */
static inline const unsigned char *pgp_lex_digits_end(const unsigned char *p,
                                                      const unsigned char *end)
{
    while (p < end && (unsigned)(*p - '0') < 10u)
        p++;
    return p;
}

/*
 * A word starting at p (class ALPHA) is a plain identifier, as
 * pgp_lex_next() lexes it, unless it may start a B'' E'' N'' X'' U&''
 * U&"" literal: true when the byte after it is neither ' nor &.
 */
static inline bool pgp_lex_plain_word_at(const unsigned char *p, const unsigned char *end)
{
    return p + 1 >= end || (p[1] != '\'' && p[1] != '&');
}

#endif
