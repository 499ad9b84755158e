/*
 * nplus1.c - the N+1 / duplicate / batchable rules over one request's
 * events (DESIGN §4.5; contract in nplus1.h).
 *
 * Groups the eligible events by fingerprint with one sort of (fingerprint,
 * index) pairs, then walks each group once for the count, the distinct
 * values (a sort of the group's hashes), the longest run, the total time
 * and the examples.  It owns nothing but its scratch arrays and the
 * findings array it returns; it keeps no text (findings borrow from the
 * events) and never reads a clock.
 */
#include "pgproxy/nplus1.h"
#include "pgproxy/lex.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

const char *pgp_nplus1_type_name(pgp_nplus1_type_t type)
{
    switch (type) {
    case PGP_NPLUS1_N_PLUS_ONE: return "n_plus_one";
    case PGP_NPLUS1_DUPLICATE: return "duplicate";
    case PGP_NPLUS1_BATCHABLE: return "batchable";
    }
    return "unknown";
}

static bool ieq_prefix(const char *s, size_t n, const char *lit)
{
    size_t m = strlen(lit);   /* lit is our constant */
    if (n < m)
        return false;
    for (size_t i = 0; i < m; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != lit[i])
            return false;
    }
    return true;
}

static bool word_is(const pgp_lex_token_t *t, const char *lit)
{
    return t->kind == PGP_LEX_WORD && t->len == strlen(lit) && ieq_prefix(t->p, t->len, lit);
}

bool pgp_nplus1_is_catalog(const char *s, size_t len)
{
    if (s == NULL)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (ieq_prefix(s + i, len - i, "pg_catalog.") ||
            ieq_prefix(s + i, len - i, "information_schema."))
            return true;
    }
    pgp_lex_t lx;
    pgp_lex_token_t t;
    bool after_from = false;
    pgp_lex_init(&lx, s, len, false);
    for (pgp_lex_next(&lx, &t); t.kind != PGP_LEX_EOF; pgp_lex_next(&lx, &t)) {
        if (!pgp_lex_significant(t.kind))
            continue;
        if (after_from) {
            const char *name = t.p;
            size_t n = t.len;
            if (t.kind == PGP_LEX_QIDENT && n >= 2) {
                name++;
                n -= 2;
            }
            if ((t.kind == PGP_LEX_WORD || t.kind == PGP_LEX_QIDENT) && ieq_prefix(name, n, "pg_"))
                return true;
        }
        after_from = word_is(&t, "from") || word_is(&t, "join");
    }
    return false;
}

static bool ignored(const pgp_nplus1_rules_t *r, uint64_t fp)
{
    size_t lo = 0, hi = r->ignore_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->ignore[mid] == fp)
            return true;
        if (r->ignore[mid] < fp)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

static bool kind_eligible(pgp_norm_kind_t k)
{
    return k == PGP_NORM_KIND_SELECT || k == PGP_NORM_KIND_INSERT ||
           k == PGP_NORM_KIND_UPDATE || k == PGP_NORM_KIND_DELETE;
}

bool pgp_nplus1_excluded(const pgp_nplus1_event_t *ev, const pgp_nplus1_rules_t *rules)
{
    if (!kind_eligible(ev->kind))
        return true;
    if (rules->ignore_count > 0 && ignored(rules, ev->fingerprint))
        return true;
    return pgp_nplus1_is_catalog(ev->normalized, ev->normalized_len);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void pgp_nplus1_sort_ignore(uint64_t *fps, size_t n)
{
    if (n > 1)
        qsort(fps, n, sizeof(*fps), cmp_u64);
}

typedef struct item {
    uint64_t fp;
    uint32_t idx;
} item_t;

static int cmp_item(const void *a, const void *b)
{
    const item_t *x = a, *y = b;
    if (x->fp != y->fp)
        return x->fp < y->fp ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int cmp_finding(const void *a, const void *b)
{
    const pgp_nplus1_finding_t *x = a, *y = b;
    if (x->type != y->type)
        return x->type < y->type ? -1 : 1;
    if (x->total_ns != y->total_ns)
        return x->total_ns > y->total_ns ? -1 : 1;
    return x->first_index < y->first_index ? -1 : x->first_index > y->first_index;
}

/* Fills the evidence of f from the group g[0, m) (sorted by index). */
static void evidence(const pgp_nplus1_event_t *ev, const item_t *g, size_t m,
                     const pgp_nplus1_rules_t *rules, uint64_t *vh_scratch,
                     pgp_nplus1_finding_t *f)
{
    const pgp_nplus1_event_t *first = &ev[g[0].idx];
    f->fingerprint = g[0].fp;
    f->normalized = first->normalized;
    f->normalized_len = first->normalized_len;
    f->count = (uint32_t)m;
    f->first_index = g[0].idx;
    f->source_normalized = "";

    uint32_t run = 1, best = 1;
    uint64_t total = 0;
    for (size_t i = 0; i < m; i++) {
        total += ev[g[i].idx].duration_ns;
        vh_scratch[i] = ev[g[i].idx].values_hash;
        if (i > 0) {
            run = g[i].idx == g[i - 1].idx + 1 ? run + 1 : 1;
            if (run > best)
                best = run;
        }
    }
    f->total_ns = total;
    f->longest_run = best;
    f->estimated_saving_ns = total - total / m;

    qsort(vh_scratch, m, sizeof(*vh_scratch), cmp_u64);
    uint32_t distinct = 1;
    for (size_t i = 1; i < m; i++)
        if (vh_scratch[i] != vh_scratch[i - 1])
            distinct++;
    f->distinct_values = distinct;

    if (first->kind == PGP_NORM_KIND_SELECT)
        f->type = distinct >= 2 ? PGP_NPLUS1_N_PLUS_ONE : PGP_NPLUS1_DUPLICATE;
    else
        f->type = PGP_NPLUS1_BATCHABLE;

    for (uint32_t j = g[0].idx; j-- > 0;) {
        if (ev[j].rows >= 2 && ev[j].fingerprint != f->fingerprint) {
            f->has_source = true;
            f->source_fingerprint = ev[j].fingerprint;
            f->source_normalized = ev[j].normalized;
            f->source_normalized_len = ev[j].normalized_len;
            f->source_rows = ev[j].rows;
            break;
        }
    }

    if (!rules->examples)
        return;
    uint64_t seen[PGP_NPLUS1_EXAMPLES];
    for (size_t i = 0; i < m && f->example_count < PGP_NPLUS1_EXAMPLES; i++) {
        const pgp_nplus1_event_t *e = &ev[g[i].idx];
        bool dup = false;
        for (uint32_t k = 0; k < f->example_count; k++)
            dup = dup || seen[k] == e->values_hash;
        if (dup)
            continue;
        const char *text = e->params_len > 0 ? e->params : e->sql;
        uint32_t len = e->params_len > 0 ? e->params_len : e->sql_len;
        if (len == 0)
            continue;
        seen[f->example_count] = e->values_hash;
        f->example[f->example_count] = text;
        f->example_len[f->example_count] = len;
        f->example_count++;
    }
}

int pgp_nplus1_analyze(const pgp_nplus1_event_t *ev, size_t n, const pgp_nplus1_rules_t *rules,
                       pgp_nplus1_finding_t **out, size_t *count)
{
    *out = NULL;
    *count = 0;
    if (n == 0 || n > UINT32_MAX)
        return 0;
    uint32_t threshold = rules->threshold < 2 ? 2 : rules->threshold;
    int rc = 0;
    item_t *items = malloc(n * sizeof(*items));
    uint64_t *vh = malloc(n * sizeof(*vh));
    pgp_nplus1_finding_t *found = NULL;
    size_t m = 0, nf = 0;
    if (items == NULL || vh == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    /* Kind and ignore list per event; the catalog test (a lexer pass) once
     * per fingerprint that reaches the threshold: one fingerprint, one
     * token structure, so the same relations. */
    for (size_t i = 0; i < n; i++)
        if (kind_eligible(ev[i].kind) &&
            (rules->ignore_count == 0 || !ignored(rules, ev[i].fingerprint)))
            items[m++] = (item_t){.fp = ev[i].fingerprint, .idx = (uint32_t)i};
    qsort(items, m, sizeof(*items), cmp_item);

    size_t groups = 0;
    for (size_t i = 0; i < m;) {
        size_t j = i;
        while (j < m && items[j].fp == items[i].fp)
            j++;
        const pgp_nplus1_event_t *first = &ev[items[i].idx];
        if (j - i >= threshold && pgp_nplus1_is_catalog(first->normalized, first->normalized_len))
            for (size_t k = i; k < j; k++)
                items[k].idx = UINT32_MAX;   /* marks a catalog group */
        else if (j - i >= threshold)
            groups++;
        i = j;
    }
    if (groups == 0)
        goto out;
    found = calloc(groups, sizeof(*found));
    if (found == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < m;) {
        size_t j = i;
        while (j < m && items[j].fp == items[i].fp)
            j++;
        if (j - i >= threshold && items[i].idx != UINT32_MAX)
            evidence(ev, items + i, j - i, rules, vh, &found[nf++]);
        i = j;
    }
    qsort(found, nf, sizeof(*found), cmp_finding);
    *out = found;
    *count = nf;
    found = NULL;
out:
    free(items);
    free(vh);
    free(found);
    return rc;
}
