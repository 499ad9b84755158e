/*
 * fuzz_profile.c - the profiler, the N+1 rules and the store fed arbitrary
 * statement sequences.  Input format: records [op byte][len byte][sql]:
 * op % 8 < 5 records the SQL (run through the real normalizer, so tags,
 * kinds and SET names are the normalizer's) after an idle gap of
 * (op >> 3) * 20 ms, with rows = op >> 4 and pipelined = op & 1; 5 is
 * ReadyForQuery 'I', 6 'T', 7 a tick.  Tiny caps (4 events, 160 text
 * bytes) so every cap is hit.  Every finished profile goes into a store of
 * 3; at the end every rendering is produced.  Checks: no crash, no leak
 * (ASan), complete JSON, collapsed lines `frames integer`, counters sane.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pgproxy/profile.h"
#include "pgproxy/store.h"

#define MS UINT64_C(1000000)

static void on_finish(void *ud, pgp_profile_t *p)
{
    size_t n;
    pgp_profile_events(p, &n);
    if (n > 4 || pgp_profile_sql_count(p) != n + pgp_profile_events_dropped(p))
        abort();
    if (pgp_profile_app_ns(p) > pgp_profile_total_ns(p))
        abort();
    char notice[64];
    (void)pgp_profile_notice_text(p, notice, sizeof(notice));
    if (strlen(notice) >= sizeof(notice))
        abort();
    pgp_profile_store_push(ud, p);
    pgp_profile_unref(p);
}

static void check_json(pgp_render_t *r, int rc)
{
    if (rc != 0 && rc != PGP_RENDER_ETOOBIG)
        abort();
    if (rc == 0 && !pgp_render_json_complete(r))
        abort();
    pgp_render_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pgp_profile_store_t *s = pgp_profile_store_create(3);
    if (s == NULL)
        return 0;
    pgp_profile_config_t cfg = {.request_gap_ns = 250 * MS, .n_plus_one_threshold = 2,
                                .max_events = 4, .max_text_bytes = 160,
                                .params = PGP_PARAMS_VALUES};
    pgp_profiler_t *pr = pgp_profiler_create(&cfg, 1, "db", "user", "addr", on_finish, s);
    if (pr == NULL) {
        pgp_profile_store_destroy(s);
        return 0;
    }
    static char norm[256 + 1];
    pgp_norm_tags_t tags;
    uint64_t now = 1000 * MS;
    size_t pos = 0;
    while (pos + 2 <= size) {
        uint8_t op = data[pos], len = data[pos + 1];
        pos += 2;
        if (len > size - pos)
            len = (uint8_t)(size - pos);
        const char *sql = (const char *)data + pos;
        pos += len;
        switch (op % 8) {
        case 5: pgp_profiler_note_ready(pr, 'I', now); break;
        case 6: pgp_profiler_note_ready(pr, 'T', now); break;
        case 7: pgp_profiler_tick(pr, now += (uint64_t)(op >> 3) * 20 * MS); break;
        default: {
            pgp_norm_result_t res;
            pgp_normalize(sql, len, NULL, norm, sizeof(norm), &tags, &res);
            now += (uint64_t)(op >> 3) * 20 * MS;
            pgp_profile_stmt_t st = {
                .start_ns = now, .end_ns = now + len, .start_wall_ns = now,
                .sql = sql, .sql_len = len, .normalized = norm, .normalized_len = res.out_len,
                .fingerprint = res.fingerprint, .values_hash = res.values_hash,
                .kind = res.kind, .set_local = res.set_local, .name = sql + res.name_off,
                .name_len = res.name_len, .tags = &tags, .params_summary = sql,
                .params_summary_len = len / 2, .rows = op >> 4, .sqlstate = "",
                .pipelined = op & 1, .application_name = "app"};
            pgp_profiler_record(pr, &st);
            now += len;
            const char *rid = pgp_profiler_current_request_id(pr);
            if (rid != NULL && strlen(rid) > PGP_PROFILE_REQUEST_ID_MAX)
                abort();
            if (pgp_profiler_current_label(pr) == NULL)
                abort();
        }
        }
    }
    pgp_profiler_destroy(pr);

    pgp_render_t r;
    pgp_render_init(&r, 1 << 20);
    check_json(&r, pgp_profile_store_render_list(s, "slowest", 10, &r));
    pgp_render_init(&r, 1 << 20);
    check_json(&r, pgp_profile_store_render_list(s, "recent", 10, &r));
    pgp_render_init(&r, 1 << 20);
    check_json(&r, pgp_profile_store_render_findings(s, 0, &r));
    pgp_render_init(&r, 1 << 20);
    check_json(&r, pgp_profile_store_render_session_findings(s, 1, &r));
    pgp_render_init(&r, 1 << 20);
    int rc = pgp_profile_store_render_collapsed(s, &r);
    if (rc != 0 && rc != PGP_RENDER_ETOOBIG)
        abort();
    if (rc == 0) {
        const char *t = pgp_render_data(&r);
        for (const char *line = t; *line != '\0';) {
            const char *nl = strchr(line, '\n');
            if (nl == NULL)
                abort();
            const char *sp = nl;
            while (sp > line && sp[-1] >= '0' && sp[-1] <= '9')
                sp--;
            if (sp == nl || sp == line || sp[-1] != ' ')
                abort();
            for (const char *c = line; c < nl; c++)
                if ((unsigned char)*c < 0x20)
                    abort();
            line = nl + 1;
        }
    }
    pgp_render_free(&r);
    pgp_profile_store_destroy(s);
    return 0;
}
