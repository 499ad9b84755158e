/*
 * kw.h - internal to normalize.c: the keywords the normalizer looks at
 * (statement kinds, value and sign positions, list and ORDER BY
 * boundaries), their flags, and a perfect-hash lookup of a lower-cased
 * word (the tables are in kw.c).
 *
 * A word is given as its first 16 bytes lower-cased, zero-padded and read
 * little-endian (a = bytes 0-7, b = bytes 8-15), the form normalize.c
 * hashes anyway.  Comparing (a, b) compares lengths too: no identifier
 * byte is 0.  Not a public interface; no allocation, no state.
 */
#ifndef PGPROXY_KW_H
#define PGPROXY_KW_H

#include <stdint.h>

#define PGP_KWF_VALUEPOS   0x1u   /* TRUE/FALSE/NULL after it are values */
#define PGP_KWF_NONOPERAND 0x2u   /* a - after it is a sign */
#define PGP_KWF_OBY_END    0x4u   /* ends an ORDER BY / GROUP BY list */
#define PGP_KWF_SUBQUERY   0x8u   /* IN ( followed by it is a subquery */

typedef struct pgp_kw_entry {
    uint64_t a, b;            /* lower-case bytes 0-7 and 8-15, little-endian */
    uint8_t len;
    uint8_t flags;
} pgp_kw_entry_t;

enum pgp_kw_id {
    PGP_KW_NONE = 0,
    PGP_KW_SELECT,
    PGP_KW_WITH,
    PGP_KW_VALUES,
    PGP_KW_TABLE,
    PGP_KW_INSERT,
    PGP_KW_UPDATE,
    PGP_KW_DELETE,
    PGP_KW_MERGE,
    PGP_KW_COPY,
    PGP_KW_BEGIN,
    PGP_KW_START,
    PGP_KW_COMMIT,
    PGP_KW_END,
    PGP_KW_ROLLBACK,
    PGP_KW_ABORT,
    PGP_KW_SAVEPOINT,
    PGP_KW_RELEASE,
    PGP_KW_SET,
    PGP_KW_RESET,
    PGP_KW_SHOW,
    PGP_KW_PREPARE,
    PGP_KW_EXECUTE,
    PGP_KW_DEALLOCATE,
    PGP_KW_DISCARD,
    PGP_KW_CREATE,
    PGP_KW_ALTER,
    PGP_KW_DROP,
    PGP_KW_TRUNCATE,
    PGP_KW_GRANT,
    PGP_KW_REVOKE,
    PGP_KW_COMMENT,
    PGP_KW_TO,
    PGP_KW_PREPARED,
    PGP_KW_TRANSACTION,
    PGP_KW_SESSION,
    PGP_KW_LOCAL,
    PGP_KW_IN,
    PGP_KW_ARRAY,
    PGP_KW_ORDER,
    PGP_KW_GROUP,
    PGP_KW_BY,
    PGP_KW_TRUE,
    PGP_KW_FALSE,
    PGP_KW_NULL,
    PGP_KW_IS,
    PGP_KW_NOT,
    PGP_KW_ON,
    PGP_KW_THEN,
    PGP_KW_ELSE,
    PGP_KW_AND,
    PGP_KW_OR,
    PGP_KW_DEFAULT,
    PGP_KW_RETURNING,
    PGP_KW_WHEN,
    PGP_KW_WHERE,
    PGP_KW_LIKE,
    PGP_KW_ILIKE,
    PGP_KW_BETWEEN,
    PGP_KW_LIMIT,
    PGP_KW_OFFSET,
    PGP_KW_HAVING,
    PGP_KW_CASE,
    PGP_KW_RETURN,
    PGP_KW_WINDOW,
    PGP_KW_FETCH,
    PGP_KW_FOR,
    PGP_KW_UNION,
    PGP_KW_INTERSECT,
    PGP_KW_EXCEPT,
    PGP_KW_DISTINCT,
    PGP_KW_ALL,
    PGP_KW_FROM,
    PGP_KW_EXPLAIN,
    PGP_KW_COUNT_
};

/* slot = ((a ^ b * PGP_KW_MIX) * PGP_KW_MUL) >> 56: no two keywords share a
 * slot (tests/bench/kw_gen.py finds the multiplier and writes kw.c). */
#define PGP_KW_MIX 0xC2B2AE3D27D4EB4FULL
#define PGP_KW_MUL 0x2de0dd4874f437f9ULL

/* By id (PGP_KW_NONE is all 0). */
extern const pgp_kw_entry_t pgp_kw_entries[PGP_KW_COUNT_];

/* By slot: the id (0 = empty) and the id's (a, b), one load each. */
extern const uint8_t pgp_kw_slots[256];
extern const uint64_t pgp_kw_slot_a[256];
extern const uint64_t pgp_kw_slot_b[256];

/*
 * The keyword id of the lower-cased, zero-padded word (a, b), or
 * PGP_KW_NONE: one probe of the perfect hash; the slot's own copy of the
 * words saves a dependent load.  Any thread.
 */
static inline unsigned pgp_kw_find(uint64_t a, uint64_t b)
{
    unsigned slot = (unsigned)(((a ^ b * PGP_KW_MIX) * PGP_KW_MUL) >> 56);
    if (pgp_kw_slot_a[slot] == a && pgp_kw_slot_b[slot] == b)
        return pgp_kw_slots[slot];
    return PGP_KW_NONE;
}

#endif
