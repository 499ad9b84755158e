/*
 * store.h - the ProfileStore: a ring of the last max_history finished
 * request profiles and the N+1 findings aggregated across requests
 * (DESIGN §4.4, §4.5; served by /debug/profiles, /debug/n-plus-one,
 * /debug/connections/{id}, /debug/flamegraph.txt).
 *
 * Profiles are shared by refcount (profile.h): the store holds one ref
 * per stored profile; readers take their own ref under the lock and
 * render after unlocking, so a profile evicted meanwhile stays valid for
 * them.  Findings are aggregated at push, keyed by (label, type,
 * fingerprint, source fingerprint), at most PGP_STORE_MAX_FINDING_KEYS
 * keys (the least recently seen key is evicted); texts kept per key are
 * copied and capped (label PGP_PROFILE_LABEL_MAX, normalized texts
 * PGP_STORE_FINDING_TEXT_MAX bytes).
 *
 * Threads: one mutex; any thread may call any function (the loops push,
 * the admin thread reads).  Critical sections are short: push is O(1)
 * plus a hash lookup per finding; readers copy pointers (and take refs)
 * or copy the top aggregated entries, and sort/render unlocked.  Leaf
 * module: no libuv.
 */
#ifndef PGPROXY_STORE_H
#define PGPROXY_STORE_H

#include "pgproxy/profile.h"
#include "pgproxy/render.h"

#include <stddef.h>
#include <stdint.h>

#ifndef PGP_MUST_CHECK
#define PGP_MUST_CHECK __attribute__((warn_unused_result))
/*
 * The normalized texts of the aggregated findings, most recently seen
 * first, at most limit (0 = all): a JSON array of strings (the dashboard's
 * recent_n_plus_one).  Returns pgp_render_error(r) or PGP_RENDER_ENOMEM.
 */
PGP_MUST_CHECK int pgp_profile_store_render_findings_normalized(pgp_profile_store_t *s,
                                                                size_t limit, pgp_render_t *r);

/*
 * The newest profiles, at most limit (0 acts as 1), in short: a JSON array
 * of {"id","session_id","label","request_id","total_ms","sql_ms",
 * "sql_count","n_plus_one","start"} (the dashboard's recent_profiles).
 */
PGP_MUST_CHECK int pgp_profile_store_render_summaries(pgp_profile_store_t *s, size_t limit,
                                                      pgp_render_t *r);

#endif

#define PGP_STORE_MAX_FINDING_KEYS 1000u
#define PGP_STORE_FINDING_TEXT_MAX 1024u
#define PGP_STORE_MAX_HISTORY_LIMIT 1000000u

typedef struct pgp_profile_store pgp_profile_store_t;

/*
 * A store keeping the last max_history profiles (1 ..
 * PGP_STORE_MAX_HISTORY_LIMIT; 0 acts as 1).  Returns owned (free with
 * pgp_profile_store_destroy), or NULL when out of memory.
 */
pgp_profile_store_t *pgp_profile_store_create(size_t max_history);

/* Drops every stored ref and frees s.  NULL is a no-op.  No other thread may use s. */
void pgp_profile_store_destroy(pgp_profile_store_t *s);

/*
 * Stores p (borrowed: the store takes its own ref; the caller keeps its
 * one) as the newest profile, evicting the oldest when full, and adds its
 * findings to the aggregate.  Never fails (the aggregate's slots are
 * allocated at create: PGP_STORE_MAX_FINDING_KEYS * ~2.4 KB, one calloc,
 * pages touched as keys are used).
 */
void pgp_profile_store_push(pgp_profile_store_t *s, pgp_profile_t *p);

/*
 * New ring size (SIGHUP), clamped like create; keeps the newest profiles.
 * If the new ring cannot be allocated the old size stays.
 */
void pgp_profile_store_set_max_history(pgp_profile_store_t *s, size_t n);

/* Drops every profile and aggregated finding and zeroes every counter of the stats. */
void pgp_profile_store_clear(pgp_profile_store_t *s);

/* The stored profile with this id: returns a ref (drop with pgp_profile_unref), or NULL. */
pgp_profile_t *pgp_profile_store_get(pgp_profile_store_t *s, uint64_t id);

/*
 * A JSON array of to_dict objects, order "recent" (newest first; also for
 * NULL or an unknown order) or "slowest" (total_ns descending, newest
 * first among equals), at most limit (0 acts as 1) entries.  Returns
 * pgp_render_error(r) or PGP_RENDER_ENOMEM.
 */
PGP_MUST_CHECK int pgp_profile_store_render_list(pgp_profile_store_t *s, const char *order,
                                                 size_t limit, pgp_render_t *r);

/*
 * Collapsed stacks over every stored profile, identical stacks merged
 * (counts summed), sorted by stack text: `frames ns\n` lines
 * (flamegraph.txt).  Returns pgp_render_error(r) or PGP_RENDER_ENOMEM.
 */
PGP_MUST_CHECK int pgp_profile_store_render_collapsed(pgp_profile_store_t *s, pgp_render_t *r);

/*
 * The aggregated findings, most occurrences first (then most recently
 * seen), at most limit (0 = all): a JSON array of {"label","type",
 * "fingerprint","normalized","source_fingerprint"(null),
 * "source_normalized"(null),"occurrences","max_count","total_count",
 * "total_ns","estimated_saving_ns","last_seen"(ISO-8601),
 * "last_profile_id"}.  Returns pgp_render_error(r) or PGP_RENDER_ENOMEM.
 */
PGP_MUST_CHECK int pgp_profile_store_render_findings(pgp_profile_store_t *s, size_t limit,
                                                     pgp_render_t *r);

/*
 * The findings of the stored profiles of one session, newest profile
 * first: a JSON array of finding objects (pgp_profile_render_finding_json)
 * each with "profile_id", "request_id", "label" and "start" added first.
 */
PGP_MUST_CHECK int pgp_profile_store_render_session_findings(pgp_profile_store_t *s,
                                                             uint64_t session_id,
                                                             pgp_render_t *r);

/*
 * requests_total: profiles pushed; findings_total: findings in them;
 * held: profiles stored now; evicted: profiles dropped by the ring (or by
 * a smaller max_history).  All four are reset by pgp_profile_store_clear.
 */
typedef struct pgp_profile_store_stats {
    uint64_t requests_total, findings_total, held, evicted;
    uint64_t profiled_queries_total;    /* sql_count of the profiles pushed (reset by clear) */
    uint64_t requests_ever, findings_ever;   /* like the first two, never reset (metrics) */
    uint64_t patterns;                  /* aggregated findings held (distinct patterns) */
} pgp_profile_store_stats_t;

void pgp_profile_store_stats(pgp_profile_store_t *s, pgp_profile_store_stats_t *out);

/*
 * The normalized texts of the aggregated findings, most recently seen
 * first, at most limit (0 = all): a JSON array of strings (the dashboard's
 * recent_n_plus_one).  Returns pgp_render_error(r) or PGP_RENDER_ENOMEM.
 */
PGP_MUST_CHECK int pgp_profile_store_render_findings_normalized(pgp_profile_store_t *s,
                                                                size_t limit, pgp_render_t *r);

/*
 * The newest profiles, at most limit (0 acts as 1), in short: a JSON array
 * of {"id","session_id","label","request_id","total_ms","sql_ms",
 * "sql_count","n_plus_one","start"} (the dashboard's recent_profiles).
 */
PGP_MUST_CHECK int pgp_profile_store_render_summaries(pgp_profile_store_t *s, size_t limit,
                                                      pgp_render_t *r);

#endif
