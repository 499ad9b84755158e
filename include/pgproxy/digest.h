/*
 * digest.h - per-fingerprint statement digests (DESIGN §4.6).
 *
 * A bounded table keyed by (database, user, fingerprint).  Each entry
 * keeps calls, errors, rows, total/min/max/mean/stddev of the duration
 * (Welford's online algorithm, population stddev, nanoseconds),
 * first/last seen (wall clock given by the caller), the normalized SQL of
 * its first call (copied, capped at max_sql_bytes, with a truncated flag)
 * and a pgp_histogram_t for p50/p95/p99.  Every call counts in calls and
 * in the durations, failed ones too; errors counts the failed ones.
 *
 * Bounded like Redis' slowlog: what is kept is copied and capped, what is
 * dropped is counted.  At most max_entries entries; when full, recording a
 * new key evicts the least recently recorded entry (an intrusive LRU list,
 * O(1)) and counts an eviction.  Recency is the order of the record calls:
 * now_wall_ns is stored, not trusted for ordering (the wall clock may step
 * back).  Lookup is O(1): chained hashing over a power-of-two bucket array
 * at load <= 0.5.  Database and user names are compared exactly on their
 * first 63 bytes (PostgreSQL's NAMEDATALEN - 1: the server itself cuts
 * longer names there).
 *
 * Memory: the slots are one calloc of max_entries * pgp_digest_slot_bytes()
 * (about 2.2 KB each: 1952 of them the histogram) plus 4 bytes per hash
 * bucket, touched only as entries are used; each entry's SQL buffer is
 * allocated at its first use and reused after eviction, at most
 * max_sql_bytes + 1.  pgp_digest_max_bytes() gives the bound; for 5000
 * entries it is about 11 MB + 5000 * (max_sql_bytes + 1), i.e. 21 MB with
 * 2 KiB of SQL per entry, 93 MB with 16 KiB.
 *
 * Threads: one pthread mutex.  Any thread may record (the relay loops) or
 * take snapshots (the admin thread); record holds it for an O(1) update,
 * snapshot for an O(n) copy (selection of the top `limit` included; the
 * final sort runs after unlocking).  Measured (tests/bench/bench_digest.sh,
 * 2-core VM, uncontended): record 50 ns on a hit, 89 ns inserting with an
 * eviction; a snapshot of a full 5000-entry table holds the lock ~40 us for
 * the top 50 and ~1 ms for all 5000 (so the admin side should pass a
 * limit).  Leaf module: no libuv.
 */
#ifndef PGPROXY_DIGEST_H
#define PGPROXY_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef PGP_MUST_CHECK
#define PGP_MUST_CHECK __attribute__((warn_unused_result))
#endif

#define PGP_DIGEST_NAME_BYTES 64u            /* database/user storage incl. NUL: 63 bytes kept */
#define PGP_DIGEST_DEFAULT_MAX_ENTRIES 5000u
#define PGP_DIGEST_MAX_ENTRIES_LIMIT (1u << 24)

typedef struct pgp_digest_table pgp_digest_table_t;

/* One finished statement.  Every pointer borrowed (valid during the call). */
typedef struct pgp_digest_event {
    const char *database;       /* NUL-terminated (read up to 64 bytes); NULL = "" */
    const char *user;           /* NUL-terminated (read up to 64 bytes); NULL = "" */
    uint64_t fingerprint;
    const char *normalized;     /* normalized_len bytes, not necessarily NUL-terminated */
    size_t normalized_len;
    uint64_t duration_ns;
    uint64_t rows;
    bool error;
    uint64_t now_wall_ns;       /* Unix epoch ns */
} pgp_digest_event_t;

typedef enum pgp_digest_order {
    PGP_DIGEST_ORDER_TOTAL = 0, /* total_ns descending */
    PGP_DIGEST_ORDER_MEAN,      /* mean_ns descending */
    PGP_DIGEST_ORDER_CALLS,     /* calls descending */
} pgp_digest_order_t;

typedef struct pgp_digest_totals {
    uint64_t entries;           /* entries held now */
    uint64_t max_entries;
    uint64_t evictions;         /* entries evicted to make room, since create/reset */
    uint64_t calls;             /* records since create/reset (evicted entries' too) */
    uint64_t errors;            /* records with error set, since create/reset */
    uint64_t sql_truncated;     /* entries whose SQL was cut at max_sql_bytes */
} pgp_digest_totals_t;

/* One entry of a snapshot. */
typedef struct pgp_digest_entry {
    char database[PGP_DIGEST_NAME_BYTES];   /* NUL-terminated */
    char user[PGP_DIGEST_NAME_BYTES];       /* NUL-terminated */
    uint64_t fingerprint;
    const char *normalized;     /* NUL-terminated, owned by the snapshot */
    size_t normalized_len;      /* bytes kept, <= max_sql_bytes */
    bool normalized_truncated;  /* the first call's text was longer than what is kept */
    uint64_t calls;
    uint64_t errors;
    uint64_t rows;
    uint64_t total_ns;
    uint64_t min_ns;
    uint64_t max_ns;
    double mean_ns;
    double stddev_ns;           /* population: sqrt(M2 / calls) */
    uint64_t p50_ns;            /* within PGP_HISTOGRAM_REL_ERROR, see histogram.h */
    uint64_t p95_ns;
    uint64_t p99_ns;
    uint64_t first_seen_ns;
    uint64_t last_seen_ns;
} pgp_digest_entry_t;

/* An owned, consistent copy of the table (all fields taken under one lock). */
typedef struct pgp_digest_snapshot {
    pgp_digest_entry_t *entries;   /* `count` entries, sorted by the order asked */
    size_t count;
    pgp_digest_totals_t totals;    /* at the moment of the copy */
    uint64_t lock_ns;              /* how long the copy held the table lock (CLOCK_MONOTONIC) */
    char *text;                    /* private: storage of the entries' SQL */
} pgp_digest_snapshot_t;

/*
 * Create a table for at most max_entries entries (1 ..
 * PGP_DIGEST_MAX_ENTRIES_LIMIT) keeping at most max_sql_bytes of each
 * normalized text (0 keeps none).  Returns owned (free with
 * pgp_digest_destroy), or NULL on bad arguments or out of memory.  Any
 * thread.
 */
pgp_digest_table_t *pgp_digest_create(size_t max_entries, size_t max_sql_bytes);

/* Free the table (NULL is a no-op).  Takes ownership; no other thread may use it. */
void pgp_digest_destroy(pgp_digest_table_t *t);

/*
 * Count one statement into its (database, user, fingerprint) entry,
 * creating it (and evicting the least recently recorded one when full).
 * Never fails: if the SQL buffer cannot be allocated, the entry keeps no
 * text and is marked truncated.  t and ev borrowed.  Any thread.
 */
void pgp_digest_record(pgp_digest_table_t *t, const pgp_digest_event_t *ev);

/*
 * Copy the `limit` first entries (0 = all) in `order` into *out, with
 * their p50/p95/p99.  Returns 0, or -ENOMEM (then *out is empty and need
 * not be freed, though freeing it is harmless).  t borrowed; *out returns
 * owned (free with pgp_digest_snapshot_free).  Any thread.
 */
PGP_MUST_CHECK int pgp_digest_snapshot(pgp_digest_table_t *t, pgp_digest_order_t order,
                                       size_t limit, pgp_digest_snapshot_t *out);

/* Free what a snapshot owns and empty it (idempotent).  s borrowed. */
void pgp_digest_snapshot_free(pgp_digest_snapshot_t *s);

/* Drop every entry and zero the counters (RESET STATS).  t borrowed.  Any thread. */
void pgp_digest_reset(pgp_digest_table_t *t);

/* The counters, without copying entries.  Both borrowed.  Any thread. */
void pgp_digest_totals(pgp_digest_table_t *t, pgp_digest_totals_t *out);

/*
 * Parse "total", "mean" or "calls" (len bytes, no NUL needed) into *out.
 * Returns 0, or -EINVAL for anything else.  s borrowed.
 */
PGP_MUST_CHECK int pgp_digest_order_parse(const char *s, size_t len, pgp_digest_order_t *out);

/* Bytes of one entry slot (histogram included, SQL excluded). */
size_t pgp_digest_slot_bytes(void);

/* Upper bound of the memory a table created with these arguments can hold. */
size_t pgp_digest_max_bytes(size_t max_entries, size_t max_sql_bytes);

#endif
