/*
 * normalize.c - "pgproxy-norm v1": normalized text, fingerprint, values
 * hash and statement kind in one forward pass over lex.c's tokens
 * (DESIGN §4.3), in the manner of SQLite's sqlite3Normalize: the output is
 * rebuilt token by token, separated by one space wherever the input had
 * whitespace or a comment.
 *
 * Dropping things after they were written (a duplicate IN/ARRAY/VALUES
 * element, a minus folded into the literal after it, trailing semicolons)
 * is done by rewinding: the output length and the running fingerprint are
 * saved at the start of what may be dropped and restored if it is.  The
 * output is written through a logical length that may pass out_cap, so
 * the fingerprint never depends on the caller's buffer.  List elements are
 * compared by a hash of their normalized tokens (a list remembers up to
 * LIST_SEEN_MAX distinct elements).  Block comments go to tags.c.
 *
 * Speed (about 2.5 ns per input byte): the common tokens (words, plain
 * numbers, $n, '…' and "…" without escapes, punctuation, short operators)
 * are lexed in the main loop with lex_inline.h's table and 8-byte (SWAR)
 * scanners and handed to an inlined on_token() whose switch folds to one
 * case; anything else goes through pgp_lex_next(), the one definition of
 * every token.  Words are hashed from the same loads that found their end,
 * keywords are one probe of kw.c's perfect hash, fixed tokens' hashes are
 * compile-time constants.  tests/bench/norm_diff.sh checks that all of it
 * gives byte-identical results to a reference build.
 *
 * Owns nothing, allocates nothing; all state lives on the caller's stack.
 * It does not parse: keyword positions are judged from the previous
 * significant token and bracket depth only.
 */
#include "pgproxy/normalize.h"
#include "pgproxy/lex.h"
#include "pgproxy/lex_inline.h"
#include "pgproxy/kw.h"

#include <string.h>

#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

#define HK1 0x9E3779B97F4A7C15ULL
#define HK2 0xC2B2AE3D27D4EB4FULL

/* ------------------------------------------------------------------ */
/* Hashing                                                             */
/* ------------------------------------------------------------------ */

static inline uint64_t fmix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static inline uint64_t rotl64(uint64_t v, int r) { return (v << r) | (v >> (64 - r)); }

/* Order-sensitive combination of token hashes. */
static inline uint64_t combine(uint64_t h, uint64_t th)
{
    return (rotl64(h, 27) ^ th) * HK1;
}

static inline uint64_t load_le64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

/* ASCII A-Z to a-z in each byte of w (SWAR); other bytes unchanged. */
static inline uint64_t lower64(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t h7 = w & ~high;
    uint64_t ge_a = h7 + (0x80 - 'A') * ones;
    uint64_t gt_z = h7 + (0x7f - 'Z') * ones;
    uint64_t upper = (ge_a ^ gt_z) & ~w & high;
    return w | (upper >> 2);
}

/*
 * The n <= 8 bytes at p as a little-endian word, zero-padded; one load
 * when 8 bytes are readable before `limit` (the end of the input).
 */
static inline uint64_t load_part(const unsigned char *p, size_t n, const unsigned char *limit)
{
    if (limit - p >= 8) {
        uint64_t w = load_le64(p);
        return n >= 8 ? w : w & ((1ULL << (8 * n)) - 1);
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)p[i] << (8 * i);
    return w;
}

static inline uint64_t hash_step(uint64_t h, uint64_t w)
{
    h = (h ^ w) * HK1;
    return h ^ (h >> 29);
}

/*
 * Hash of one canonical token: kind byte, length, then the bytes in 8-byte
 * little-endian chunks (the last zero-padded), A-Z lower-cased when
 * `lower`.  s[0, len) is inside [.., limit).
 */
static uint64_t tok_hash_in(unsigned kind, const char *s, size_t len, bool lower,
                            const char *limit)
{
    const unsigned char *p = (const unsigned char *)s, *lim = (const unsigned char *)limit;
    uint64_t h = ((uint64_t)kind ^ ((uint64_t)len << 8)) * HK2;
    while (len > 0) {
        size_t k = len < 8 ? len : 8;
        uint64_t w = load_part(p, k, lim);
        h = hash_step(h, lower ? lower64(w) : w);
        p += k;
        len -= k;
    }
    return h ^ (h >> 32);
}

/*
 * tok_hash_in(kind, s, len, false, limit) with tokens of 1 to 16 bytes
 * (most literals, operators, identifiers) hashed inline in one or two
 * steps; longer (or empty) ones take the loop.
 */
static ALWAYS_INLINE uint64_t tok_hash_short(unsigned kind, const char *s, size_t len,
                                             const char *limit)
{
    if (len - 1 >= 16)
        return tok_hash_in(kind, s, len, false, limit);
    const unsigned char *p = (const unsigned char *)s, *lim = (const unsigned char *)limit;
    uint64_t h = ((uint64_t)kind ^ ((uint64_t)len << 8)) * HK2;
    if (len <= 8) {
        h = hash_step(h, load_part(p, len, lim));
    } else {
        h = hash_step(h, load_part(p, 8, lim));
        h = hash_step(h, load_part(p + 8, len - 8, lim));
    }
    return h ^ (h >> 32);
}

/*
 * The same hashes for fixed tokens, as integer constant expressions: a
 * kind byte, a length of at most 8 and the zero-padded little-endian word.
 */
#define TH_STEP_(h, w) ((((h) ^ (w)) * HK1) ^ ((((h) ^ (w)) * HK1) >> 29))
#define TH_FIN_(h) ((h) ^ ((h) >> 32))
#define TH_H0_(kind, len) (((uint64_t)(kind) ^ ((uint64_t)(len) << 8)) * HK2)
#define TH_WORD(kind, len, w) TH_FIN_(TH_STEP_(TH_H0_(kind, len), (uint64_t)(w)))
#define TH_BYTE(kind, c) TH_WORD(kind, 1, (unsigned char)(c))
/* tok_hash(0, "pgproxy-norm v1"): the fingerprint's seed */
#define TH_SEED TH_FIN_(TH_STEP_(TH_STEP_(TH_H0_(0, 15), 0x2d79786f72706770ULL), \
                                 0x003176206d726f6eULL))

/*
 * A word's canonical hash (kind 'w', lower-cased) and its keyword id, in
 * one pass: words up to 16 bytes are two loads.  Same hash as tok_hash_in.
 */
static unsigned word_hash(const char *s, size_t len, const char *limit, uint64_t *th)
{
    if (len > 16) {
        *th = tok_hash_in('w', s, len, true, limit);
        return PGP_KW_NONE;
    }
    const unsigned char *p = (const unsigned char *)s, *lim = (const unsigned char *)limit;
    uint64_t a = lower64(load_part(p, len < 8 ? len : 8, lim));
    uint64_t b = len > 8 ? lower64(load_part(p + 8, len - 8, lim)) : 0;
    uint64_t h = ((uint64_t)'w' ^ ((uint64_t)len << 8)) * HK2;
    h = hash_step(h, a);
    if (len > 8)
        h = hash_step(h, b);
    *th = h ^ (h >> 32);
    return pgp_kw_find(a, b);
}

/*
 * A plain word starting at p (its first byte is class ALPHA): stores its
 * end in *q and its hash in *th and returns its keyword id, as
 * pgp_lex_ident_end() and word_hash() would, but with the identifier bytes
 * found eight at a time and the words of up to 16 bytes hashed from the
 * same loads.
 */
static ALWAYS_INLINE unsigned scan_word(const unsigned char *p, const unsigned char *end,
                                        const unsigned char **q, uint64_t *th)
{
    if (end - p < 8) {
        *q = pgp_lex_ident_end(p + 1, end);
        return word_hash((const char *)p, (size_t)(*q - p), (const char *)end, th);
    }
    uint64_t w0 = load_le64(p), m = pgp_lex_nonident8(w0), a, b = 0, h;
    size_t len;
    if (m) {
        len = (size_t)__builtin_ctzll(m) >> 3;      /* 1 to 7: byte 0 is a letter */
        a = lower64(w0 & ((1ULL << (8 * len)) - 1));
        h = hash_step(((uint64_t)'w' ^ ((uint64_t)len << 8)) * HK2, a);
    } else if (end - p < 16) {
        *q = pgp_lex_ident_end(p + 8, end);
        return word_hash((const char *)p, (size_t)(*q - p), (const char *)end, th);
    } else {
        uint64_t w1 = load_le64(p + 8);
        m = pgp_lex_nonident8(w1);
        if (!m) {
            /* longer than 16: the general hash, no keyword */
            const unsigned char *r = p + 16;
            while (end - r >= 8 && !(m = pgp_lex_nonident8(load_le64(r))))
                r += 8;
            r = m ? r + (__builtin_ctzll(m) >> 3) : pgp_lex_ident_end(r, end);
            *q = r;
            *th = tok_hash_in('w', (const char *)p, (size_t)(r - p), true, (const char *)end);
            return PGP_KW_NONE;
        }
        size_t l1 = (size_t)__builtin_ctzll(m) >> 3;
        len = 8 + l1;
        a = lower64(w0);
        h = hash_step(((uint64_t)'w' ^ ((uint64_t)len << 8)) * HK2, a);
        if (l1) {
            b = lower64(w1 & ((1ULL << (8 * l1)) - 1));
            h = hash_step(h, b);
        }
    }
    *q = p + len;
    *th = h ^ (h >> 32);
    return pgp_kw_find(a, b);
}

/* pgp_kw_find for a word in the input (used on lookahead tokens). */
static unsigned kw_lookup(const char *s, size_t len, const char *limit)
{
    uint64_t th;
    return word_hash(s, len, limit, &th);
}

/* Token flag of the main loop's fast paths (the lexer's are 0x1, 0x2):
 * a QIDENT without control bytes. */
#define TF_CLEAN 0x100u

/* Kind bytes of the canonical tokens (part of the v1 spec). */
enum {
    FK_WORD = 'w', FK_QIDENT = 'q', FK_PLACEHOLDER = '?', FK_NUMBER = 'n',
    FK_OP = 'o', FK_PUNCT = 'p', FK_OTHER = 'x', FK_LIST = 'l', FK_VALUE = 'v',
};

/* ------------------------------------------------------------------ */
/* State                                                               */
/* ------------------------------------------------------------------ */

#define LIST_MAX 8          /* nested lists tracked; deeper ones are not collapsed */
#define LIST_SEEN_MAX 16    /* distinct elements remembered per list */

enum { LIST_IN = 1, LIST_ARRAY, LIST_VALUES };
enum { ROW_EXPECT = 0, ROW_IN, ROW_AFTER };

typedef struct nlist {
    uint8_t type;
    uint8_t row;            /* VALUES: ROW_* */
    bool open;              /* an element is being hashed */
    bool can_drop;          /* the rewind point below is valid */
    unsigned depth;         /* IN/ARRAY: depth inside the bracket; VALUES: outside the rows */
    unsigned nseen;
    uint64_t eh;            /* element hash in progress */
    uint64_t lh;            /* hash of the kept elements */
    size_t rw_olen;         /* rewind point: before the separator */
    uint64_t rw_fp;
    uint64_t seen[LIST_SEEN_MAX];
} nlist_t;

/* What the previous significant token was, for sign and value positions. */
enum { P_START, P_OPERAND, P_OP, P_OPEN, P_COMMA, P_KW, P_OTHER };

enum {
    CLS_DONE = 0,   /* 0: part of norm_t.rare */
    CLS_FIRST, CLS_WITH, CLS_ROLLBACK, CLS_SET, CLS_NAME, CLS_NAME_DOT,
    CLS_NAME_PART, CLS_NAME_DOTWORD, CLS_DEALLOC, CLS_PREPARE,
};

/*
 * The states that make a token more than "emit it and set prev": all 0
 * for most tokens, tested with one load (on_token).
 */
typedef union norm_rare {
    uint32_t any;
    struct {
        bool stmt_start;    /* the next token starts a statement */
        bool minus_pending; /* a sign - may fold into the next literal */
        bool semi_pending;  /* trailing ; may be dropped back to semi_olen */
        uint8_t cls;        /* classify() state, CLS_DONE once decided */
    } f;
} norm_rare_t;

_Static_assert(sizeof(norm_rare_t) == sizeof(uint32_t), "norm_rare_t: four bytes, no padding");

typedef struct norm {
    const char *sql;
    pgp_lex_t lx;
    char *out;
    size_t cap;             /* usable bytes (out_cap - 1) */
    size_t olen;            /* logical output length */
    bool gap;               /* whitespace or comment since the last token */
    uint64_t fp, vh;
    uint32_t lits, stmts;
    uint8_t prev, prev_kw;
    unsigned depth;
    uint64_t oby_mask;      /* bit d: ORDER/GROUP BY list open at depth d */
    bool minus_gap;
    size_t minus_olen;
    uint64_t minus_fp, minus_eh;
    size_t semi_olen;
    uint64_t semi_fp;
    unsigned nlists;        /* lists past LIST_MAX are not tracked (not collapsed) */
    nlist_t *top;           /* &lists[nlists - 1], NULL when nlists is 0 */
    norm_rare_t rare;
    pgp_norm_result_t *res;
    pgp_norm_tags_t *tags;
    nlist_t lists[LIST_MAX];
} norm_t;

/* ------------------------------------------------------------------ */
/* Output                                                              */
/* ------------------------------------------------------------------ */

/*
 * Copies len bytes exactly, without a library call for the short tokens
 * that make up most statements (two overlapping loads and stores).
 */
static inline void copy_bytes(char *dst, const char *src, size_t len)
{
    if (len >= 8 && len <= 16) {
        uint64_t a, b;
        memcpy(&a, src, 8);
        memcpy(&b, src + len - 8, 8);
        memcpy(dst, &a, 8);
        memcpy(dst + len - 8, &b, 8);
    } else if (len >= 4 && len < 8) {
        uint32_t a, b;
        memcpy(&a, src, 4);
        memcpy(&b, src + len - 4, 4);
        memcpy(dst, &a, 4);
        memcpy(dst + len - 4, &b, 4);
    } else if (len < 4) {
        if (len > 0) {
            dst[0] = src[0];
            dst[len - 1] = src[len - 1];
            if (len == 3)
                dst[1] = src[1];
        }
    } else {
        memcpy(dst, src, len);
    }
}

/*
 * Appends s[0, len), a token of the input.  While 16 bytes are readable in
 * the input and writable below cap, a token of up to 16 bytes is one
 * 16-byte copy: the bytes past it are scratch that the next tokens (or the
 * final NUL) overwrite, never past cap.
 */
static ALWAYS_INLINE void out_put(norm_t *n, const char *s, size_t len)
{
    if (len <= 16 && n->olen + 16 <= n->cap && (const char *)n->lx.end - s >= 16) {
        memcpy(n->out + n->olen, s, 16);
    } else if (n->olen + len <= n->cap) {
        copy_bytes(n->out + n->olen, s, len);
    } else if (n->olen < n->cap) {
        memcpy(n->out + n->olen, s, n->cap - n->olen);
    }
    n->olen += len;
}

static ALWAYS_INLINE void out_byte(norm_t *n, char c)
{
    if (n->olen < n->cap)
        n->out[n->olen] = c;
    n->olen++;
}

static inline nlist_t *top_list(norm_t *n)
{
    return n->top;
}

/* Mixes a token into the fingerprint and the element being hashed. */
static ALWAYS_INLINE void mix(norm_t *n, uint64_t th)
{
    n->fp = combine(n->fp, th);
    nlist_t *l = top_list(n);
    if (l && l->open)
        l->eh = combine(l->eh, th);
}

/* Writes one significant token (after one space if the input had a gap). */
static ALWAYS_INLINE void emit(norm_t *n, const char *text, size_t len, uint64_t th)
{
    if (n->gap && n->olen > 0)
        out_byte(n, ' ');
    n->gap = false;
    out_put(n, text, len);
    mix(n, th);
}

/* emit() for a one-byte token. */
static ALWAYS_INLINE void emit_byte(norm_t *n, char c, uint64_t th)
{
    if (n->gap && n->olen > 0)
        out_byte(n, ' ');
    n->gap = false;
    out_byte(n, c);
    mix(n, th);
}

/* Quoted identifiers may hold control bytes: shown as ?, hashed verbatim. */
static void emit_sanitized(norm_t *n, const char *text, size_t len, uint64_t th)
{
    size_t start = n->olen + (n->gap && n->olen > 0);
    emit(n, text, len, th);
    for (size_t i = 0; i < len && start + i < n->cap; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 || c == 0x7f)
            n->out[start + i] = '?';
    }
}

/* ------------------------------------------------------------------ */
/* Lists                                                               */
/* ------------------------------------------------------------------ */

static void list_push(norm_t *n, uint8_t type, bool open)
{
    if (n->nlists == LIST_MAX)
        return;
    nlist_t *l = &n->lists[n->nlists++];
    n->top = l;
    l->type = type;
    l->row = ROW_EXPECT;
    l->open = open;
    l->can_drop = false;
    l->depth = n->depth;
    l->nseen = 0;
    l->eh = 0;
    l->lh = 0;
}

static void list_pop(norm_t *n)
{
    if (n->nlists == 0)
        return;
    nlist_t *l = &n->lists[--n->nlists];
    nlist_t *parent = n->nlists ? l - 1 : NULL;
    n->top = parent;
    if (parent && parent->open)
        parent->eh = combine(parent->eh, fmix64(l->lh ^ FK_LIST));
}

/* Ends the element being hashed: dropped (rewound) if seen before. */
static void list_end_element(norm_t *n, nlist_t *l)
{
    uint64_t h = fmix64(l->eh);
    l->open = false;
    for (unsigned i = 0; i < l->nseen; i++) {
        if (l->seen[i] == h) {
            if (l->can_drop) {
                n->olen = l->rw_olen;
                n->fp = l->rw_fp;
            }
            return;
        }
    }
    if (l->nseen < LIST_SEEN_MAX)
        l->seen[l->nseen++] = h;
    l->lh = combine(l->lh, h);
}

/* A separator: the next element may be dropped back to here. */
static void list_separator(norm_t *n, nlist_t *l, const pgp_lex_token_t *t, uint64_t th)
{
    l->can_drop = true;
    l->rw_olen = n->olen;
    l->rw_fp = n->fp;
    emit(n, t->p, t->len, th);
}

/* End of statement or input inside lists: the open IN/ARRAY elements end
 * there (a truncated IN list still collapses). */
static void pop_all(norm_t *n)
{
    nlist_t *l;
    while ((l = top_list(n)) != NULL) {
        if (l->type != LIST_VALUES && l->open)
            list_end_element(n, l);
        list_pop(n);
    }
}

/* ------------------------------------------------------------------ */
/* Token handling                                                      */
/* ------------------------------------------------------------------ */

/* The next significant token after the current one (lexer copy). */
static void peek_sig(const norm_t *n, pgp_lex_token_t *t)
{
    pgp_lex_t lx = n->lx;
    do {
        pgp_lex_next(&lx, t);
    } while (t->kind != PGP_LEX_EOF && !pgp_lex_significant(t->kind));
}

static inline bool prev_is_value_position(const norm_t *n)
{
    switch (n->prev) {
    case P_OP: case P_OPEN: case P_COMMA:
        return true;
    case P_KW:
        return (pgp_kw_entries[n->prev_kw].flags & PGP_KWF_VALUEPOS) != 0;
    default:
        return false;
    }
}

static inline bool prev_is_sign_position(const norm_t *n)
{
    return n->prev != P_OPERAND && n->prev != P_OTHER;
}

static void set_prev(norm_t *n, uint8_t prev, unsigned kw)
{
    n->prev = prev;
    n->prev_kw = (uint8_t)kw;
}

/* A literal, $n, or TRUE/FALSE/NULL in value position: becomes ?. */
static ALWAYS_INLINE void emit_literal(norm_t *n, const pgp_lex_token_t *t)
{
    if (n->rare.f.minus_pending) {
        n->olen = n->minus_olen;
        n->fp = n->minus_fp;
        nlist_t *l = top_list(n);
        if (l && l->open)
            l->eh = n->minus_eh;
        n->gap = n->minus_gap;
        n->vh = combine(n->vh, TH_BYTE(FK_VALUE, '-'));
        n->rare.f.minus_pending = false;
    }
    emit_byte(n, '?', TH_BYTE(FK_PLACEHOLDER, '?'));
    n->lits++;
    n->vh = combine(n->vh, tok_hash_short(FK_VALUE, t->p, t->len, (const char *)n->lx.end));
    set_prev(n, P_OPERAND, PGP_KW_NONE);
}

/* A bare integer that is a whole ORDER BY / GROUP BY item: kept. */
static bool is_position_item(const norm_t *n, const pgp_lex_token_t *t)
{
    if (n->depth >= 64 || !((n->oby_mask >> n->depth) & 1) || n->rare.f.minus_pending)
        return false;
    if (!(n->prev == P_COMMA || (n->prev == P_KW && n->prev_kw == PGP_KW_BY)))
        return false;
    for (size_t i = 0; i < t->len; i++)
        if (t->p[i] < '0' || t->p[i] > '9')
            return false;
    pgp_lex_token_t nx;
    peek_sig(n, &nx);
    switch (nx.kind) {
    case PGP_LEX_EOF: case PGP_LEX_COMMA: case PGP_LEX_RPAREN: case PGP_LEX_SEMI:
    case PGP_LEX_WORD:
        return true;
    default:
        return false;
    }
}

static inline void clear_oby(norm_t *n, unsigned depth)
{
    if (depth < 64)
        n->oby_mask &= ~((uint64_t)1 << depth);
}

/*
 * Statement kind of the first statement, fed its significant tokens until
 * decided.  depth is the bracket depth before the token.
 */
static void classify(norm_t *n, const pgp_lex_token_t *t, unsigned kw)
{
    pgp_norm_result_t *r = n->res;
    bool word = t->kind == PGP_LEX_WORD;
    bool name = word || t->kind == PGP_LEX_QIDENT;

    switch (n->rare.f.cls) {
    case CLS_FIRST:
        n->rare.f.cls = CLS_DONE;
        if (t->kind == PGP_LEX_LPAREN) {
            r->kind = PGP_NORM_KIND_SELECT;
            return;
        }
        r->kind = PGP_NORM_KIND_OTHER;
        switch (kw) {
        case PGP_KW_SELECT: case PGP_KW_VALUES: case PGP_KW_TABLE: r->kind = PGP_NORM_KIND_SELECT; break;
        case PGP_KW_WITH: r->kind = PGP_NORM_KIND_SELECT; n->rare.f.cls = CLS_WITH; break;
        case PGP_KW_INSERT: r->kind = PGP_NORM_KIND_INSERT; break;
        case PGP_KW_UPDATE: r->kind = PGP_NORM_KIND_UPDATE; break;
        case PGP_KW_DELETE: r->kind = PGP_NORM_KIND_DELETE; break;
        case PGP_KW_MERGE: r->kind = PGP_NORM_KIND_MERGE; break;
        case PGP_KW_COPY: r->kind = PGP_NORM_KIND_COPY; break;
        case PGP_KW_BEGIN: case PGP_KW_START: r->kind = PGP_NORM_KIND_BEGIN; break;
        case PGP_KW_COMMIT: case PGP_KW_END: r->kind = PGP_NORM_KIND_COMMIT; break;
        case PGP_KW_ABORT: r->kind = PGP_NORM_KIND_ROLLBACK; break;
        case PGP_KW_ROLLBACK: r->kind = PGP_NORM_KIND_ROLLBACK; n->rare.f.cls = CLS_ROLLBACK; break;
        case PGP_KW_SAVEPOINT: case PGP_KW_RELEASE: r->kind = PGP_NORM_KIND_SAVEPOINT; break;
        case PGP_KW_SET: r->kind = PGP_NORM_KIND_SET; n->rare.f.cls = CLS_SET; break;
        case PGP_KW_RESET: r->kind = PGP_NORM_KIND_RESET; n->rare.f.cls = CLS_NAME_PART; break;
        case PGP_KW_SHOW: r->kind = PGP_NORM_KIND_SHOW; n->rare.f.cls = CLS_NAME_PART; break;
        case PGP_KW_PREPARE: r->kind = PGP_NORM_KIND_PREPARE; n->rare.f.cls = CLS_PREPARE; break;
        case PGP_KW_EXECUTE: r->kind = PGP_NORM_KIND_EXECUTE; n->rare.f.cls = CLS_NAME; break;
        case PGP_KW_DEALLOCATE: r->kind = PGP_NORM_KIND_DEALLOCATE; n->rare.f.cls = CLS_DEALLOC; break;
        case PGP_KW_DISCARD: r->kind = PGP_NORM_KIND_DISCARD; n->rare.f.cls = CLS_NAME; break;
        case PGP_KW_CREATE: case PGP_KW_ALTER: case PGP_KW_DROP: case PGP_KW_TRUNCATE: case PGP_KW_GRANT:
        case PGP_KW_REVOKE: case PGP_KW_COMMENT:
            r->kind = PGP_NORM_KIND_DDL;
            break;
        default: break;
        }
        return;
    case CLS_WITH:
        /* the main statement is the first of these at depth 0 after the CTEs */
        if (n->depth != 0)
            return;
        switch (kw) {
        case PGP_KW_SELECT: case PGP_KW_VALUES: case PGP_KW_TABLE: n->rare.f.cls = CLS_DONE; return;
        case PGP_KW_INSERT: r->kind = PGP_NORM_KIND_INSERT; n->rare.f.cls = CLS_DONE; return;
        case PGP_KW_UPDATE: r->kind = PGP_NORM_KIND_UPDATE; n->rare.f.cls = CLS_DONE; return;
        case PGP_KW_DELETE: r->kind = PGP_NORM_KIND_DELETE; n->rare.f.cls = CLS_DONE; return;
        case PGP_KW_MERGE: r->kind = PGP_NORM_KIND_MERGE; n->rare.f.cls = CLS_DONE; return;
        default: return;
        }
    case CLS_ROLLBACK:
        if (kw == PGP_KW_TO)
            r->kind = PGP_NORM_KIND_SAVEPOINT;
        n->rare.f.cls = CLS_DONE;
        return;
    case CLS_SET:
        if (kw == PGP_KW_SESSION)
            return;
        if (kw == PGP_KW_LOCAL) {
            r->set_local = true;
            return;
        }
        n->rare.f.cls = CLS_NAME_PART;
        classify(n, t, kw);
        return;
    case CLS_PREPARE:
        if (kw == PGP_KW_TRANSACTION) {
            r->kind = PGP_NORM_KIND_COMMIT;
            n->rare.f.cls = CLS_DONE;
            return;
        }
        n->rare.f.cls = CLS_NAME;
        classify(n, t, kw);
        return;
    case CLS_DEALLOC:
        n->rare.f.cls = CLS_NAME;
        if (kw == PGP_KW_PREPARE)
            return;
        classify(n, t, kw);
        return;
    case CLS_NAME:
    case CLS_NAME_PART:
        if (name) {
            r->name_off = (size_t)(t->p - n->sql);
            r->name_len = t->len;
        }
        n->rare.f.cls = name && n->rare.f.cls == CLS_NAME_PART ? CLS_NAME_DOT : CLS_DONE;
        return;
    case CLS_NAME_DOT:
        /* dotted parameter names (pgproxy.request_id) */
        n->rare.f.cls = t->kind == PGP_LEX_DOT ? CLS_NAME_DOTWORD : CLS_DONE;
        return;
    case CLS_NAME_DOTWORD:
        if (name) {
            r->name_len = (size_t)(t->p + t->len - (n->sql + r->name_off));
            n->rare.f.cls = CLS_NAME_DOT;
        } else {
            n->rare.f.cls = CLS_DONE;
        }
        return;
    default:
        return;
    }
}

/*
 * Handles one significant token; for a word, kw and wth are its keyword id
 * and hash (word_hash).  Inlined into each fast path of the main loop, so
 * that the switch below folds to the one case a constant kind takes.
 */
static ALWAYS_INLINE void on_token(norm_t *n, const pgp_lex_token_t *t, unsigned kw,
                                   uint64_t wth)
{
    const char *end = (const char *)n->lx.end;
    /* copies: t escapes to the helpers, so kind would be reloaded after
     * each call instead of folding to the caller's constant */
    const pgp_lex_kind_t kind = t->kind;
    const char *const tp = t->p;
    const size_t tlen = t->len;
    nlist_t *l;

    if (kind == PGP_LEX_SEMI) {
        n->rare.f.minus_pending = false;
        pop_all(n);
        if (!n->rare.f.semi_pending) {
            n->rare.f.semi_pending = true;
            n->semi_olen = n->olen;
            n->semi_fp = n->fp;
        }
        n->depth = 0;
        n->oby_mask = 0;
        emit_byte(n, ';', TH_BYTE(FK_PUNCT, ';'));
        set_prev(n, P_START, PGP_KW_NONE);
        n->rare.f.stmt_start = true;
        if (n->rare.f.cls != CLS_DONE && n->stmts == 1)
            n->rare.f.cls = CLS_DONE;
        return;
    }
    bool minus_was_pending = false;
    if (n->rare.any != 0) {
        n->rare.f.semi_pending = false;
        if (n->rare.f.stmt_start) {
            n->rare.f.stmt_start = false;
            n->stmts++;
        }
        /* the first statement's kind (cls is CLS_DONE once a ; ends it);
         * inside WITH only a keyword at depth 0 can decide it */
        if (n->rare.f.cls != CLS_DONE &&
            (n->rare.f.cls != CLS_WITH || (n->depth == 0 && kw != PGP_KW_NONE)))
            classify(n, t, kw);
        minus_was_pending = n->rare.f.minus_pending;
    }

    /* VALUES lists: between rows, anything but ( or , ends the list */
    while ((l = top_list(n)) != NULL && l->type == LIST_VALUES && l->depth == n->depth &&
           l->row != ROW_IN) {
        if (l->row == ROW_EXPECT && kind == PGP_LEX_LPAREN) {
            l->row = ROW_IN;
            l->open = true;
            l->eh = 0;
            break;
        }
        if (l->row == ROW_AFTER && kind == PGP_LEX_COMMA)
            break;
        list_pop(n);
    }

    switch (kind) {
    case PGP_LEX_NUMBER:
        if (is_position_item(n, t)) {
            emit(n, tp, tlen, tok_hash_short(FK_NUMBER, tp, tlen, end));
            set_prev(n, P_OPERAND, PGP_KW_NONE);
        } else {
            emit_literal(n, t);
        }
        break;
    case PGP_LEX_STRING:
    case PGP_LEX_PARAM:
        n->rare.f.minus_pending = false;
        emit_literal(n, t);
        break;
    case PGP_LEX_WORD:
        if ((kw == PGP_KW_TRUE || kw == PGP_KW_FALSE || kw == PGP_KW_NULL) && prev_is_value_position(n)) {
            n->rare.f.minus_pending = false;
            emit_literal(n, t);
            break;
        }
        emit(n, tp, tlen, wth);
        if (kw == PGP_KW_BY && (n->prev_kw == PGP_KW_ORDER || n->prev_kw == PGP_KW_GROUP) &&
            n->depth < 64)
            n->oby_mask |= (uint64_t)1 << n->depth;
        else if (kw && (pgp_kw_entries[kw].flags & PGP_KWF_OBY_END))
            clear_oby(n, n->depth);
        set_prev(n, kw && (pgp_kw_entries[kw].flags & PGP_KWF_NONOPERAND) ? P_KW : P_OPERAND, kw);
        if (kw == PGP_KW_VALUES)
            list_push(n, LIST_VALUES, false);
        break;
    case PGP_LEX_QIDENT:
        if (t->flags & TF_CLEAN)
            emit(n, tp, tlen, tok_hash_short(FK_QIDENT, tp, tlen, end));
        else
            emit_sanitized(n, tp, tlen, tok_hash_short(FK_QIDENT, tp, tlen, end));
        set_prev(n, P_OPERAND, PGP_KW_NONE);
        break;
    case PGP_LEX_OP: {
        bool sign = tlen == 1 && tp[0] == '-' && prev_is_sign_position(n);
        if (sign) {
            l = top_list(n);
            n->minus_olen = n->olen;
            n->minus_fp = n->fp;
            n->minus_eh = l ? l->eh : 0;
            n->minus_gap = n->gap;
        }
        if (tlen == 1 && tp[0] == '?') {
            /* a lone ? (already-normalized text) hashes as a placeholder,
             * so normalizing normalized text keeps the fingerprint */
            emit_byte(n, '?', TH_BYTE(FK_PLACEHOLDER, '?'));
            set_prev(n, P_OPERAND, PGP_KW_NONE);
            n->rare.f.minus_pending = false;
            break;
        }
        if (tlen == 2 && tp[0] == '!' && tp[1] == '=')
            emit(n, tp, tlen, TH_WORD(FK_OP, 2, '<' | '>' << 8));
        else if (tlen == 1)
            emit_byte(n, tp[0], tok_hash_short(FK_OP, tp, 1, end));
        else
            emit(n, tp, tlen, tok_hash_short(FK_OP, tp, tlen, end));
        set_prev(n, P_OP, PGP_KW_NONE);
        n->rare.f.minus_pending = sign;
        break;
    }
    case PGP_LEX_LPAREN:
    case PGP_LEX_LBRACKET: {
        uint8_t type = 0;
        if (kind == PGP_LEX_LPAREN && n->prev == P_KW && n->prev_kw == PGP_KW_IN) {
            pgp_lex_token_t nx;
            peek_sig(n, &nx);
            unsigned nkw = nx.kind == PGP_LEX_WORD
                               ? kw_lookup(nx.p, nx.len, end) : PGP_KW_NONE;
            if (!(nkw && (pgp_kw_entries[nkw].flags & PGP_KWF_SUBQUERY)))
                type = LIST_IN;
        } else if (kind == PGP_LEX_LBRACKET && n->prev_kw == PGP_KW_ARRAY &&
                   n->prev == P_OPERAND) {
            type = LIST_ARRAY;
        }
        if (kind == PGP_LEX_LPAREN)
            emit_byte(n, '(', TH_BYTE(FK_PUNCT, '('));
        else
            emit_byte(n, '[', TH_BYTE(FK_PUNCT, '['));
        n->depth++;
        clear_oby(n, n->depth);
        if (type)
            list_push(n, type, true);
        set_prev(n, P_OPEN, PGP_KW_NONE);
        break;
    }
    case PGP_LEX_RPAREN:
    case PGP_LEX_RBRACKET: {
        char c = kind == PGP_LEX_RPAREN ? ')' : ']';
        uint64_t th = kind == PGP_LEX_RPAREN ? TH_BYTE(FK_PUNCT, ')') : TH_BYTE(FK_PUNCT, ']');
        l = top_list(n);
        if (l && l->type != LIST_VALUES && l->depth == n->depth) {
            list_end_element(n, l);
            list_pop(n);
        }
        clear_oby(n, n->depth);
        if (n->depth > 0)
            n->depth--;
        emit_byte(n, c, th);
        l = top_list(n);
        if (l && l->type == LIST_VALUES && l->row == ROW_IN && l->depth == n->depth) {
            list_end_element(n, l);
            l->row = ROW_AFTER;
        }
        set_prev(n, P_OPERAND, PGP_KW_NONE);
        break;
    }
    case PGP_LEX_COMMA: {
        uint64_t th = TH_BYTE(FK_PUNCT, ',');
        l = top_list(n);
        if (l && l->type != LIST_VALUES && l->depth == n->depth) {
            list_end_element(n, l);
            list_separator(n, l, t, th);
            l->open = true;
            l->eh = 0;
        } else if (l && l->type == LIST_VALUES && l->depth == n->depth && l->row == ROW_AFTER) {
            list_separator(n, l, t, th);
            l->row = ROW_EXPECT;
        } else {
            emit_byte(n, ',', th);
        }
        set_prev(n, P_COMMA, PGP_KW_NONE);
        break;
    }
    case PGP_LEX_TYPECAST:
        emit(n, tp, 2, TH_WORD(FK_PUNCT, 2, ':' | ':' << 8));
        set_prev(n, P_OTHER, PGP_KW_NONE);
        break;
    case PGP_LEX_DOT:
        emit_byte(n, '.', TH_BYTE(FK_PUNCT, '.'));
        set_prev(n, P_OTHER, PGP_KW_NONE);
        break;
    case PGP_LEX_COLON:
        emit_byte(n, ':', TH_BYTE(FK_PUNCT, ':'));
        set_prev(n, P_OTHER, PGP_KW_NONE);
        break;
    default:
        emit(n, tp, tlen, tok_hash_short(FK_OTHER, tp, tlen, end));
        set_prev(n, P_OTHER, PGP_KW_NONE);
        break;
    }
    if (minus_was_pending && kind != PGP_LEX_OP)
        n->rare.f.minus_pending = false;
}

/* ------------------------------------------------------------------ */
/* Entry points                                                        */
/* ------------------------------------------------------------------ */

/* Cuts n bytes of out back to a UTF-8 character boundary. */
static size_t utf8_trim(const char *out, size_t len)
{
    size_t i = len;
    while (i > 0 && ((unsigned char)out[i - 1] & 0xC0) == 0x80 && len - i < 3)
        i--;
    if (i == 0)
        return len;
    unsigned char lead = (unsigned char)out[i - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    if (need > 1 && len - (i - 1) < need)
        return i - 1;
    return len;
}

void pgp_normalize(const char *sql, size_t len, const pgp_norm_opts_t *opts,
                   char *out, size_t out_cap, pgp_norm_tags_t *tags,
                   pgp_norm_result_t *res)
{
    norm_t n;
    pgp_lex_token_t t;

    memset(res, 0, sizeof(*res));
    n.sql = sql;
    pgp_lex_init(&n.lx, sql, len, opts ? !opts->standard_conforming_strings : false);
    n.out = out;
    n.cap = out_cap ? out_cap - 1 : 0;
    n.olen = 0;
    n.gap = false;
    n.fp = TH_SEED;
    n.vh = 0;
    n.lits = 0;
    n.stmts = 0;
    n.rare.any = 0;
    n.rare.f.stmt_start = true;
    n.prev = P_START;
    n.prev_kw = PGP_KW_NONE;
    n.depth = 0;
    n.oby_mask = 0;
    n.rare.f.minus_pending = false;
    n.minus_gap = false;
    n.minus_olen = 0;
    n.minus_fp = n.minus_eh = 0;
    n.rare.f.semi_pending = false;
    n.semi_olen = 0;
    n.semi_fp = 0;
    n.nlists = 0;
    n.top = NULL;
    n.rare.f.cls = CLS_FIRST;
    n.res = res;
    n.tags = tags;
    if (tags)
        pgp_norm_tags_reset(tags);

    /*
     * The common tokens are lexed here (lex_inline.h), each exactly as
     * pgp_lex_next() would lex it, and handed to an inlined on_token() of
     * constant kind; everything else (quotes, comments, longer operators
     * and numbers, prefixed strings) goes through pgp_lex_next().
     */
    const unsigned char *end = n.lx.end, *cur = n.lx.cur;
    while (cur < end) {
        /* the cursor is a local: n escapes, n.lx.cur is only written */
        const unsigned char *p = cur, *q;
        /* the single space between most tokens, without a dispatch */
        bool sp = *p == ' ';
        n.gap |= sp;
        p += sp;
        if (p >= end)
            break;
        uint64_t wth;
        unsigned kw;
        t.p = (const char *)p;
        t.flags = 0;
        switch (pgp_lex_cclass[*p]) {
        case PGP_LEX_CC_SPACE:
            n.lx.cur = cur = pgp_lex_space_end(p + 1, end);
            n.gap = true;
            continue;
        case PGP_LEX_CC_ALPHA:
            kw = scan_word(p, end, &q, &wth);
            /* B'' E'' N'' X'' U&'' U&"": their letter alone would be a word */
            if (q == p + 1 && !pgp_lex_plain_word_at(p, end))
                break;
            n.lx.cur = cur = q;
            t.kind = PGP_LEX_WORD;
            t.len = (size_t)(q - p);
            on_token(&n, &t, kw, wth);
            continue;
        case PGP_LEX_CC_DIGIT:
            /* 123 or 12.50; 0x 0o 0b, _, e, 1. and 1..2 go the long way */
            if (*p == '0' && p + 1 < end &&
                ((p[1] | 0x20) == 'x' || (p[1] | 0x20) == 'o' || (p[1] | 0x20) == 'b'))
                break;
            q = pgp_lex_digits_end(p + 1, end);
            if (q + 1 < end && *q == '.' && (unsigned)(q[1] - '0') < 10u)
                q = pgp_lex_digits_end(q + 2, end);   /* 12.50 */
            if (q < end && (*q == '.' || *q == '_' || (*q | 0x20) == 'e'))
                break;
            n.lx.cur = cur = q;
            t.kind = PGP_LEX_NUMBER;
            t.len = (size_t)(q - p);
            on_token(&n, &t, PGP_KW_NONE, 0);
            continue;
        case PGP_LEX_CC_DOLLAR:
            if (p + 1 >= end || (unsigned)(p[1] - '0') >= 10u)
                break;
            q = pgp_lex_digits_end(p + 2, end);
            n.lx.cur = cur = q;
            t.kind = PGP_LEX_PARAM;
            t.len = (size_t)(q - p);
            on_token(&n, &t, PGP_KW_NONE, 0);
            continue;
        case PGP_LEX_CC_OPCHAR:
        case PGP_LEX_CC_MINUS:
        case PGP_LEX_CC_SLASH:
            /* one or two operator characters (<> >= != ::=): not a comment
             * start, no third one, no trailing + or - to cut */
            q = p + 1;
            if (q < end && pgp_lex_op_char[*q]) {
                if (*q == '+' || *q == '-' || (*p == '/' && *q == '*') ||
                    (q + 1 < end && pgp_lex_op_char[q[1]]))
                    break;
                q++;
            }
            n.lx.cur = cur = q;
            t.kind = PGP_LEX_OP;
            t.len = (size_t)(q - p);
            on_token(&n, &t, PGP_KW_NONE, 0);
            continue;
        case PGP_LEX_CC_DQUOTE:
            q = pgp_lex_qident_fast(p, end);
            if (!q)
                break;
            n.lx.cur = cur = q;
            t.kind = PGP_LEX_QIDENT;
            t.flags = TF_CLEAN;
            t.len = (size_t)(q - p);
            on_token(&n, &t, PGP_KW_NONE, 0);
            continue;
        case PGP_LEX_CC_QUOTE:
            if (n.lx.backslash_escapes || !(q = pgp_lex_string_fast(p, end)))
                break;
            n.lx.cur = cur = q;
            t.kind = PGP_LEX_STRING;
            t.len = (size_t)(q - p);
            on_token(&n, &t, PGP_KW_NONE, 0);
            continue;
        case PGP_LEX_CC_LP:
            n.lx.cur = cur = p + 1;
            t.kind = PGP_LEX_LPAREN;
            t.len = 1;
            on_token(&n, &t, PGP_KW_NONE, 0);
            continue;
        case PGP_LEX_CC_RP:
            n.lx.cur = cur = p + 1;
            t.kind = PGP_LEX_RPAREN;
            t.len = 1;
            on_token(&n, &t, PGP_KW_NONE, 0);
            continue;
        case PGP_LEX_CC_SEMI:
            n.lx.cur = cur = p + 1;
            t.kind = PGP_LEX_SEMI;
            t.len = 1;
            kw = PGP_KW_NONE;
            wth = 0;
            goto rare_token;
        case PGP_LEX_CC_LB:
            n.lx.cur = cur = p + 1;
            t.kind = PGP_LEX_LBRACKET;
            t.len = 1;
            kw = PGP_KW_NONE;
            wth = 0;
            goto rare_token;
        case PGP_LEX_CC_RB:
            n.lx.cur = cur = p + 1;
            t.kind = PGP_LEX_RBRACKET;
            t.len = 1;
            kw = PGP_KW_NONE;
            wth = 0;
            goto rare_token;
        case PGP_LEX_CC_COLON:
            if (p + 1 < end && p[1] == ':') {
                n.lx.cur = cur = p + 2;
                t.kind = PGP_LEX_TYPECAST;
                t.len = 2;
                kw = PGP_KW_NONE;
                wth = 0;
                goto rare_token;
            }
            break;
        case PGP_LEX_CC_COMMA:
            n.lx.cur = cur = p + 1;
            t.kind = PGP_LEX_COMMA;
            t.len = 1;
            on_token(&n, &t, PGP_KW_NONE, 0);
            continue;
        case PGP_LEX_CC_DOT:
            if (p + 1 < end && (p[1] == '.' || (unsigned)(p[1] - '0') < 10u))
                break;
            n.lx.cur = cur = p + 1;
            t.kind = PGP_LEX_DOT;
            t.len = 1;
            on_token(&n, &t, PGP_KW_NONE, 0);
            continue;
        default:
            break;
        }
        n.lx.cur = p;
        pgp_lex_next(&n.lx, &t);
        cur = n.lx.cur;
        if (pgp_lex_significant(t.kind)) {
            kw = PGP_KW_NONE;
            wth = 0;
            if (t.kind == PGP_LEX_WORD)
                kw = word_hash(t.p, t.len, (const char *)end, &wth);
            /* the one generic copy of on_token(), also for the fast paths
             * of rare kinds (; [ ] ::) */
rare_token:
            on_token(&n, &t, kw, wth);
            continue;
        }
        n.gap = true;
        if (t.kind == PGP_LEX_BLOCK_COMMENT && tags) {
            size_t body = t.len - 2;
            if (!(t.flags & PGP_LEX_F_UNTERMINATED))
                body -= 2;
            pgp_norm_tags_parse(tags, t.p + 2, body);
        }
    }
    pop_all(&n);
    if (n.rare.f.semi_pending) {
        n.olen = n.semi_olen;
        n.fp = n.semi_fp;
    }

    res->fingerprint = fmix64(n.fp);
    res->values_hash = n.lits ? fmix64(n.vh) : 0;
    res->literal_count = n.lits;
    res->statement_count = n.stmts;
    res->norm_len = n.olen;
    res->out_truncated = n.olen > n.cap;
    res->out_len = res->out_truncated ? utf8_trim(out, n.cap) : n.olen;
    if (out_cap)
        out[res->out_len] = '\0';
    if (n.stmts == 0)
        res->kind = PGP_NORM_KIND_EMPTY;
    else if (n.stmts > 1)
        res->kind = PGP_NORM_KIND_MULTI;
}

void pgp_fingerprint_format(uint64_t fp, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--) {
        out[i] = hex[fp & 0xf];
        fp >>= 4;
    }
    out[16] = '\0';
}

const char *pgp_norm_kind_name(pgp_norm_kind_t kind)
{
    static const char *const names[PGP_NORM_KIND_COUNT_] = {
        [PGP_NORM_KIND_EMPTY] = "empty",       [PGP_NORM_KIND_SELECT] = "select",
        [PGP_NORM_KIND_INSERT] = "insert",     [PGP_NORM_KIND_UPDATE] = "update",
        [PGP_NORM_KIND_DELETE] = "delete",     [PGP_NORM_KIND_MERGE] = "merge",
        [PGP_NORM_KIND_COPY] = "copy",         [PGP_NORM_KIND_BEGIN] = "begin",
        [PGP_NORM_KIND_COMMIT] = "commit",     [PGP_NORM_KIND_ROLLBACK] = "rollback",
        [PGP_NORM_KIND_SAVEPOINT] = "savepoint", [PGP_NORM_KIND_SET] = "set",
        [PGP_NORM_KIND_RESET] = "reset",       [PGP_NORM_KIND_SHOW] = "show",
        [PGP_NORM_KIND_PREPARE] = "prepare",   [PGP_NORM_KIND_EXECUTE] = "execute",
        [PGP_NORM_KIND_DEALLOCATE] = "deallocate", [PGP_NORM_KIND_DISCARD] = "discard",
        [PGP_NORM_KIND_DDL] = "ddl",           [PGP_NORM_KIND_OTHER] = "other",
        [PGP_NORM_KIND_MULTI] = "multi",
    };
    if ((unsigned)kind >= PGP_NORM_KIND_COUNT_)
        return "unknown";
    return names[kind];
}
