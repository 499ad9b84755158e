/*
 * test_profile.c - unit tests for pgproxy/profile.c: request grouping with
 * every key source and their precedence (statements built from real SQL
 * through pgp_normalize, so tags and kinds are the normalizer's), session
 * markers (sticky, RESET, RESET ALL, DISCARD ALL, LOCAL ending at COMMIT
 * and at ReadyForQuery 'I'), idle-gap and BEGIN-after-gap splitting, tag
 * quirks (Django sqlcommenter, Rails marginalia), time accounting with
 * overlapping pipelined statements, event and text caps with their
 * counters, the renderings (header exact, JSON parsed back by a small
 * validator, collapsed escaping), the notice text and refcounts.
 */
#include "pgproxy/profile.h"

#include "json_check.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define MS UINT64_C(1000000)
#define WALL0 UINT64_C(1764118714123000000)   /* 2025-11-26T00:58:34.123Z */

/* ------------------------------------------------------------------ */
/* helpers                                                              */
/* ------------------------------------------------------------------ */

typedef struct tstmt {
    pgp_profile_stmt_t st;
    pgp_norm_tags_t tags;
    char norm[8192];
} tstmt_t;

static void mk(tstmt_t *t, const char *sql, uint64_t start, uint64_t dur)
{
    pgp_norm_result_t res;
    size_t len = strlen(sql);
    pgp_normalize(sql, len, NULL, t->norm, sizeof(t->norm), &t->tags, &res);
    t->st = (pgp_profile_stmt_t){
        .start_ns = start, .end_ns = start + dur, .start_wall_ns = WALL0 + start,
        .sql = sql, .sql_len = len, .normalized = t->norm, .normalized_len = res.out_len,
        .fingerprint = res.fingerprint, .values_hash = res.values_hash, .kind = res.kind,
        .set_local = res.set_local, .name = sql + res.name_off, .name_len = res.name_len,
        .tags = t->tags.count > 0 ? &t->tags : NULL, .rows = 1, .sqlstate = "",
        .application_name = ""};
}

typedef struct sink {
    pgp_profile_t *p[64];
    size_t n;
} sink_t;

static void on_finish(void *ud, pgp_profile_t *p)
{
    sink_t *s = ud;
    ck_assert_uint_lt(s->n, N_OF(s->p));
    s->p[s->n++] = p;
}

static void sink_free(sink_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        pgp_profile_unref(s->p[i]);
    s->n = 0;
}

static pgp_profile_config_t default_cfg(void)
{
    return (pgp_profile_config_t){.request_gap_ns = 250 * MS, .n_plus_one_threshold = 3,
                                  .max_events = 1000, .max_text_bytes = 64 * 1024,
                                  .params = PGP_PARAMS_VALUES};
}

static char *render_json(const pgp_profile_t *p)
{
    pgp_render_t r;
    pgp_render_init(&r, 1 << 22);
    ck_assert_int_eq(pgp_profile_render_json(p, &r), 0);
    size_t n;
    char *s = pgp_render_take(&r, &n);
    ck_assert_ptr_nonnull(s);
    if (!json_valid(s, n))
        fprintf(stderr, "invalid JSON: %s\n", s);
    ck_assert(json_valid(s, n));
    return s;
}

/* ------------------------------------------------------------------ */
/* grouping scripts                                                     */
/* ------------------------------------------------------------------ */

#define TP "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
#define TP_ID "0af7651916cd43dd8448eb211c80319c"

typedef struct step {
    const char *sql;
    uint64_t gap_ms;        /* idle time before the statement (after the previous end) */
    char ready;             /* ReadyForQuery status after it, or 0 */
} step_t;

typedef struct group_case {
    const char *name;
    step_t steps[12];
    const char *want;       /* "<source>:<request_id or ->:<sql_count>:<label>|..." */
} group_case_t;

static const group_case_t group_cases[] = {
    {"precedence traceparent > request_id > marker > inferred",
     {{"SET pgproxy.request_id = 'm1'", 0, 0},
      {"SELECT 1 /*request_id='r1'*/", 0, 0},
      {"SELECT 2 /*traceparent='" TP "',request_id='r1'*/", 0, 0},
      {"SELECT 3", 0, 0},
      {"RESET pgproxy.request_id", 0, 0},
      {"SELECT 4", 0, 0}},
     "session:m1:1:unknown|request_id:r1:1:unknown|traceparent:" TP_ID ":1:unknown|"
     "session:m1:2:unknown|inferred:-:1:unknown"},
    {"marker sticky then RESET",
     {{"SET pgproxy.request_id TO 'a'", 0, 'I'},
      {"SELECT 1", 10, 'I'},
      {"SELECT 2", 10, 'I'},
      {"RESET pgproxy.request_id", 10, 'I'},
      {"SELECT 3", 10, 'I'}},
     "session:a:4:unknown|inferred:-:1:unknown"},
    {"marker changed",
     {{"SET pgproxy.request_id = 'a'", 0, 0},
      {"SELECT 1", 0, 0},
      {"SET pgproxy.request_id = 'b'", 0, 0},
      {"SELECT 1", 0, 0}},
     "session:a:2:unknown|session:b:2:unknown"},
    {"SET LOCAL ends at COMMIT, next BEGIN adopted",
     {{"BEGIN", 0, 'T'},
      {"SET LOCAL pgproxy.request_id = 'x'", 0, 'T'},
      {"SELECT 1", 0, 'T'},
      {"COMMIT", 0, 'I'},
      {"BEGIN", 0, 'T'},
      {"SET LOCAL pgproxy.request_id = 'y'", 0, 'T'},
      {"SELECT 2", 0, 'T'},
      {"ROLLBACK", 0, 'I'},
      {"SELECT 3", 0, 'I'}},
     "session:x:4:unknown|session:y:4:unknown|inferred:-:1:unknown"},
    {"SET LOCAL outside a transaction ends at ReadyForQuery I",
     {{"SET LOCAL pgproxy.request_id = 'z'", 0, 'I'},
      {"SELECT 1", 0, 'I'}},
     "session:z:1:unknown|inferred:-:1:unknown"},
    {"RESET ALL and DISCARD ALL end the marker",
     {{"SET pgproxy.request_id = 'a'", 0, 0},
      {"RESET ALL", 0, 0},
      {"SET pgproxy.request_id = 'b'", 0, 0},
      {"DISCARD ALL", 0, 0},
      {"SELECT 1", 0, 0}},
     "session:a:2:unknown|session:b:2:unknown|inferred:-:1:unknown"},
    {"marker name quoted and mixed case, E'' and dollar values",
     {{"SET \"PgProxy\".\"Request_Id\" = 'q1'", 0, 0},
      {"SET PGPROXY.REQUEST_ID TO E'q\\'2'", 0, 0},
      {"set session pgproxy.request_id = $$q3$$", 0, 0},
      {"SET pgproxy.request_id TO DEFAULT", 0, 0},
      {"SELECT 1", 0, 0}},
     "session:q1:1:unknown|session:q'2:1:unknown|session:q3:2:unknown|inferred:-:1:unknown"},
    {"other settings are not markers",
     {{"SET search_path = 'x'", 0, 0},
      {"SET pgproxy.request_idx = 'y'", 0, 0},
      {"SELECT 1", 0, 0}},
     "inferred:-:3:unknown"},
    {"idle gap splits inferred requests",
     {{"SELECT 1", 0, 0},
      {"SELECT 2", 100, 0},
      {"SELECT 3", 250, 0},
      {"SELECT 4", 249, 0}},
     "inferred:-:2:unknown|inferred:-:2:unknown"},
    {"BEGIN after an idle gap starts a request",
     {{"SELECT 1", 0, 0},
      {"BEGIN", 300, 0},
      {"SELECT 2", 1, 0},
      {"COMMIT", 1, 0}},
     "inferred:-:1:unknown|inferred:-:3:unknown"},
    {"idle gap splits explicit requests with the same id",
     {{"SELECT 1 /*request_id='r'*/", 0, 0},
      {"SELECT 2 /*request_id='r'*/", 300, 0}},
     "request_id:r:1:unknown|request_id:r:1:unknown"},
    {"keyless statements join the open request",
     {{"SELECT 1 /*request_id='r'*/", 0, 0},
      {"SELECT 2", 1, 0},
      {"SELECT 3 /*x_request_id='s'*/", 1, 0},
      {"SELECT 4", 1, 0}},
     "request_id:r:2:unknown|request_id:s:2:unknown"},
    {"invalid traceparent falls back to request_id",
     {{"SELECT 1 /*traceparent='01-" TP_ID "-b7ad6b7169203331-01',request_id='r'*/", 0, 0},
      {"SELECT 1 /*traceparent='00-00000000000000000000000000000000-b7ad6b7169203331-01',"
       "request_id='r'*/", 0, 0},
      {"SELECT 1 /*traceparent='00-" TP_ID "-b7ad6b716920333-01',request_id='r'*/", 0, 0},
      {"SELECT 1 /*traceparent='00-" TP_ID "-0000000000000000-01',request_id='r'*/", 0, 0},
      {"SELECT 1 /*traceparent='00-" TP_ID "-b7ad6b716920333g-01',request_id='r'*/", 0, 0},
      {"SELECT 1 /*traceparent='00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01'*/",
       0, 0}},
     "request_id:r:5:unknown|traceparent:" TP_ID ":1:unknown"},
    {"traceparent: same trace id, different spans = one request",
     {{"SELECT 1 /*traceparent='00-" TP_ID "-b7ad6b7169203331-01'*/", 0, 0},
      {"SELECT 1 /*traceparent='00-" TP_ID "-1111111111111111-00'*/", 0, 0}},
     "traceparent:" TP_ID ":2:unknown"},
    {"Rails marginalia endpoints",
     {{"SELECT 1 /*application:Shop,controller:users,action:index*/", 0, 0},
      {"SELECT 2 /*application:Shop,controller:users,action:index*/", 1, 0},
      {"SELECT 3 /*application:Shop,controller:users,action:show*/", 1, 0},
      {"SELECT 4", 1, 0}},
     "inferred:-:2:users#index|inferred:-:2:users#show"},
    {"Django sqlcommenter: route label, framework does not count",
     {{"SELECT 1 /*controller='index',framework='django%3A4.2',route='%%5Eusers%%24'*/", 0, 0},
      {"SELECT 2 /*controller='index',framework='django%3A5.0',route='%%5Eusers%%24'*/", 1, 0},
      {"SELECT 3 /*controller='index',framework='django%3A4.2',route='%%5Eorders%%24'*/", 1, 0}},
     "inferred:-:2:^users$|inferred:-:1:^orders$"},
    {"jobs and untagged starts adopt the first endpoint",
     {{"BEGIN", 0, 0},
      {"SELECT 1 /*job='Mailer'*/", 1, 0},
      {"SELECT 2 /*job='Mailer'*/", 1, 0},
      {"SELECT 3 /*job='Billing'*/", 1, 0}},
     "inferred:-:3:Mailer|inferred:-:1:Billing"},
    {"a BEGIN adopts the request_id that follows",
     {{"BEGIN", 0, 0},
      {"SELECT 1 /*request_id='r9'*/", 1, 0},
      {"COMMIT", 1, 0}},
     "request_id:r9:3:unknown"},
    {"a request with queries is not adopted",
     {{"SELECT 0", 0, 0},
      {"SELECT 1 /*request_id='r9'*/", 1, 0}},
     "inferred:-:1:unknown|request_id:r9:1:unknown"},
};

static void describe(const pgp_profile_t *p, char *out, size_t cap)
{
    const char *rid = pgp_profile_request_id(p);
    snprintf(out, cap, "%s:%s:%u:%s", pgp_profile_source_name(pgp_profile_source(p)),
             rid ? rid : "-", pgp_profile_sql_count(p), pgp_profile_label(p));
}

START_TEST(test_grouping)
{
    const group_case_t *c = &group_cases[_i];
    pgp_profile_config_t cfg = default_cfg();
    sink_t sink = {0};
    pgp_profiler_t *pr = pgp_profiler_create(&cfg, 7, "db", "u", "127.0.0.1", on_finish, &sink);
    ck_assert_ptr_nonnull(pr);
    uint64_t now = 1000 * MS;
    for (size_t i = 0; i < N_OF(c->steps) && c->steps[i].sql != NULL; i++) {
        tstmt_t *t = malloc(sizeof(*t));
        now += c->steps[i].gap_ms * MS;
        mk(t, c->steps[i].sql, now, 1000);
        now += 1000;
        pgp_profiler_record(pr, &t->st);
        if (c->steps[i].ready)
            pgp_profiler_note_ready(pr, c->steps[i].ready, now);
        free(t);
    }
    pgp_profiler_destroy(pr);
    char got[2048] = "", one[512];
    for (size_t i = 0; i < sink.n; i++) {
        describe(sink.p[i], one, sizeof(one));
        if (i > 0)
            strcat(got, "|");
        strcat(got, one);
        ck_assert(pgp_profile_inferred(sink.p[i]) ==
                  (pgp_profile_source(sink.p[i]) == PGP_PROFILE_SOURCE_INFERRED));
        ck_assert_uint_eq(pgp_profile_session_id(sink.p[i]), 7);
        free(render_json(sink.p[i]));
    }
    ck_assert_msg(strcmp(got, c->want) == 0, "%s\n got  %s\n want %s", c->name, got, c->want);
    sink_free(&sink);
}
END_TEST

START_TEST(test_ids_unique_increasing)
{
    pgp_profile_config_t cfg = default_cfg();
    sink_t sink = {0};
    pgp_profiler_t *pr = pgp_profiler_create(&cfg, 1, NULL, NULL, NULL, on_finish, &sink);
    tstmt_t t;
    for (int i = 0; i < 5; i++) {
        mk(&t, "SELECT 1", (uint64_t)i * 1000 * MS, 10);
        pgp_profiler_record(pr, &t.st);
    }
    pgp_profiler_destroy(pr);
    ck_assert_uint_eq(sink.n, 5);
    ck_assert_uint_ge(pgp_profile_id(sink.p[0]), 1);
    for (size_t i = 1; i < sink.n; i++)
        ck_assert_uint_gt(pgp_profile_id(sink.p[i]), pgp_profile_id(sink.p[i - 1]));
    sink_free(&sink);
}
END_TEST

START_TEST(test_tick_and_current)
{
    pgp_profile_config_t cfg = default_cfg();
    sink_t sink = {0};
    pgp_profiler_t *pr = pgp_profiler_create(&cfg, 1, "d", "u", "c", on_finish, &sink);
    ck_assert(!pgp_profiler_has_open(pr));
    ck_assert_ptr_null(pgp_profiler_current_request_id(pr));
    ck_assert_ptr_null(pgp_profiler_current_label(pr));
    tstmt_t t;
    mk(&t, "SELECT 1 /*request_id='abc',controller='users',action='show'*/", 0, 5 * MS);
    pgp_profiler_record(pr, &t.st);
    ck_assert(pgp_profiler_has_open(pr));
    ck_assert_str_eq(pgp_profiler_current_request_id(pr), "abc");
    ck_assert_str_eq(pgp_profiler_current_label(pr), "users#show");
    pgp_profiler_tick(pr, 5 * MS + 249 * MS);
    ck_assert(pgp_profiler_has_open(pr));
    ck_assert_uint_eq(sink.n, 0);
    pgp_profiler_tick(pr, 5 * MS + 250 * MS);
    ck_assert(!pgp_profiler_has_open(pr));
    ck_assert_uint_eq(sink.n, 1);
    /* A request closed by RESET still answers for its last statement. */
    mk(&t, "SET pgproxy.request_id = 'sess'", 1000 * MS, 1);
    pgp_profiler_record(pr, &t.st);
    mk(&t, "RESET pgproxy.request_id", 1000 * MS + 10, 1);
    pgp_profiler_record(pr, &t.st);
    ck_assert(!pgp_profiler_has_open(pr));
    ck_assert_str_eq(pgp_profiler_current_request_id(pr), "sess");
    ck_assert_str_eq(pgp_profiler_current_label(pr), "unknown");
    mk(&t, "SELECT 2", 1000 * MS + 20, 1);
    t.st.application_name = "billing-worker";
    pgp_profiler_record(pr, &t.st);
    ck_assert_ptr_null(pgp_profiler_current_request_id(pr));
    ck_assert_str_eq(pgp_profiler_current_label(pr), "billing-worker");
    pgp_profiler_destroy(pr);
    ck_assert_uint_eq(sink.n, 3);
    ck_assert_str_eq(pgp_profile_label(sink.p[2]), "billing-worker");
    sink_free(&sink);
}
END_TEST

/* ------------------------------------------------------------------ */
/* time accounting                                                      */
/* ------------------------------------------------------------------ */

static const struct {
    const char *name;
    uint64_t iv[6][2];      /* [start, end] in ns, {0,0} ends */
    uint64_t total, sql_total, app;
} time_cases[] = {
    {"sequential", {{100, 110}, {120, 150}, {200, 210}}, 110, 50, 60},
    {"overlapping pipelined", {{0, 10}, {5, 20}, {30, 40}}, 40, 35, 10},
    {"nested", {{0, 100}, {10, 20}, {30, 40}}, 100, 120, 0},
    {"one", {{50, 80}}, 30, 30, 0},
    {"zero length", {{50, 50}, {60, 60}}, 10, 0, 10},
};

START_TEST(test_times)
{
    pgp_profile_config_t cfg = default_cfg();
    sink_t sink = {0};
    pgp_profiler_t *pr = pgp_profiler_create(&cfg, 1, "d", "u", "c", on_finish, &sink);
    tstmt_t t;
    for (size_t i = 0; i < 6 && time_cases[_i].iv[i][1] != 0; i++) {
        mk(&t, "SELECT 1", time_cases[_i].iv[i][0] + 1,
           time_cases[_i].iv[i][1] - time_cases[_i].iv[i][0]);
        t.st.pipelined = true;
        pgp_profiler_record(pr, &t.st);
    }
    pgp_profiler_destroy(pr);
    ck_assert_uint_eq(sink.n, 1);
    ck_assert_uint_eq(pgp_profile_total_ns(sink.p[0]), time_cases[_i].total);
    ck_assert_uint_eq(pgp_profile_sql_total_ns(sink.p[0]), time_cases[_i].sql_total);
    ck_assert_uint_eq(pgp_profile_app_ns(sink.p[0]), time_cases[_i].app);
    sink_free(&sink);
}
END_TEST

/* ------------------------------------------------------------------ */
/* caps                                                                 */
/* ------------------------------------------------------------------ */

START_TEST(test_events_cap)
{
    pgp_profile_config_t cfg = default_cfg();
    cfg.max_events = 3;
    sink_t sink = {0};
    pgp_profiler_t *pr = pgp_profiler_create(&cfg, 1, "d", "u", "c", on_finish, &sink);
    tstmt_t t;
    char sql[64];
    mk(&t, "SELECT * FROM posts", 0, 100);
    t.st.rows = 10;
    pgp_profiler_record(pr, &t.st);
    for (int i = 0; i < 9; i++) {
        snprintf(sql, sizeof(sql), "SELECT * FROM users WHERE id = %d", i);
        mk(&t, sql, 1000 + (uint64_t)i * 1000, 100);
        pgp_profiler_record(pr, &t.st);
    }
    pgp_profiler_destroy(pr);
    ck_assert_uint_eq(sink.n, 1);
    pgp_profile_t *p = sink.p[0];
    size_t n;
    pgp_profile_events(p, &n);
    ck_assert_uint_eq(n, 3);
    ck_assert_uint_eq(pgp_profile_events_dropped(p), 7);
    ck_assert_uint_eq(pgp_profile_sql_count(p), 10);
    ck_assert_uint_eq(pgp_profile_sql_total_ns(p), 1000);
    /* Below the threshold in the kept events (2 < 3): not seen. */
    ck_assert_uint_eq(pgp_profile_finding_count(p), 0);
    sink_free(&sink);

    cfg.max_events = 4;
    pr = pgp_profiler_create(&cfg, 1, "d", "u", "c", on_finish, &sink);
    for (int i = 0; i < 9; i++) {
        snprintf(sql, sizeof(sql), "SELECT * FROM users WHERE id = %d", i);
        mk(&t, sql, 1000 + (uint64_t)i * 1000, 100);
        pgp_profiler_record(pr, &t.st);
    }
    pgp_profiler_destroy(pr);
    size_t nf;
    const pgp_nplus1_finding_t *f = pgp_profile_findings(sink.p[0], &nf);
    ck_assert_uint_eq(nf, 1);
    ck_assert_uint_eq(f[0].count, 9);         /* raised to the whole request */
    ck_assert_uint_eq(f[0].total_ns, 900);
    ck_assert_uint_eq(f[0].estimated_saving_ns, 800);
    ck_assert_uint_eq(f[0].distinct_values, 4);
    ck_assert_uint_eq(pgp_profile_fingerprint_count(sink.p[0], f[0].fingerprint), 9);
    free(render_json(sink.p[0]));
    sink_free(&sink);
}
END_TEST

START_TEST(test_text_cap)
{
    pgp_profile_config_t cfg = default_cfg();
    cfg.max_text_bytes = 200;   /* sql and params may use 150 bytes */
    sink_t sink = {0};
    pgp_profiler_t *pr = pgp_profiler_create(&cfg, 1, "d", "u", "c", on_finish, &sink);
    tstmt_t t;
    char sql[128];
    for (int i = 0; i < 8; i++) {
        snprintf(sql, sizeof(sql), "SELECT name FROM users WHERE id = %d", 100 + i);  /* 37 bytes */
        mk(&t, sql, (uint64_t)i * 1000, 100);
        pgp_profiler_record(pr, &t.st);
    }
    mk(&t, "SELECT other FROM t2", 10000, 10);
    pgp_profiler_record(pr, &t.st);
    pgp_profiler_destroy(pr);
    size_t n;
    const pgp_profile_event_t *ev = pgp_profile_events(sink.p[0], &n);
    ck_assert_uint_eq(n, 9);
    /* normalized (34 bytes + NUL) stored once and shared */
    ck_assert_str_eq(ev[0].normalized, "SELECT name FROM users WHERE id = ?");
    for (size_t i = 1; i < 8; i++)
        ck_assert_ptr_eq(ev[i].normalized, ev[0].normalized);
    /* 35 + 38 + 38 + 38 = 149 <= 150: three sql texts fit, then none */
    ck_assert_str_eq(ev[0].sql, "SELECT name FROM users WHERE id = 100");
    ck_assert_str_eq(ev[2].sql, "SELECT name FROM users WHERE id = 102");
    ck_assert(!ev[2].text_truncated);
    ck_assert_str_eq(ev[3].sql, "");
    ck_assert(ev[3].text_truncated);
    ck_assert_uint_eq(ev[3].sql_len, 0);
    ck_assert_uint_eq(ev[7].fingerprint, ev[0].fingerprint);
    /* a new normalized text still fits in the reserved quarter */
    ck_assert_str_eq(ev[8].normalized, "SELECT other FROM t2");
    ck_assert(ev[8].text_truncated);
    ck_assert_uint_eq(pgp_profile_text_dropped_bytes(sink.p[0]), 5 * 37 + 20);
    char *js = render_json(sink.p[0]);
    ck_assert_ptr_nonnull(strstr(js, "\"text_truncated\":true"));
    free(js);
    sink_free(&sink);
}
END_TEST

/* ------------------------------------------------------------------ */
/* renderings                                                           */
/* ------------------------------------------------------------------ */

static const struct {
    uint64_t ns;
    const char *want;
} dur_cases[] = {
    {0, "0ns"}, {850, "850ns"}, {999, "999ns"}, {1000, "1.0us"}, {12345, "12.3us"},
    {999949, "999.9us"}, {999950, "1.0ms"}, {1234567, "1.2ms"}, {999949999, "999.9ms"},
    {999950000, "1.00s"}, {3400000000u, "3.40s"}, {UINT64_C(125000000000), "125.00s"},
};

START_TEST(test_duration)
{
    pgp_render_t r;
    pgp_render_init(&r, 64);
    pgp_profile_render_duration(&r, dur_cases[_i].ns);
    ck_assert_int_eq(pgp_render_error(&r), 0);
    ck_assert_str_eq(pgp_render_data(&r), dur_cases[_i].want);
    pgp_render_free(&r);
}
END_TEST

static const struct {
    uint64_t ns;
    const char *want;
} iso_cases[] = {
    {0, "1970-01-01T00:00:00.000Z"},
    {WALL0, "2025-11-26T00:58:34.123Z"},
    {UINT64_C(951782400999999999), "2000-02-29T00:00:00.999Z"},
};

START_TEST(test_iso)
{
    pgp_render_t r;
    pgp_render_init(&r, 64);
    pgp_profile_render_iso_time(&r, iso_cases[_i].ns);
    ck_assert_int_eq(pgp_render_error(&r), 0);
    ck_assert_str_eq(pgp_render_data(&r), iso_cases[_i].want);
    pgp_render_free(&r);
}
END_TEST

/* An N+1 request: a list query then 12 lookups, with a SQL text full of traps. */
static pgp_profile_t *nplus1_profile(pgp_params_mode_t params)
{
    pgp_profile_config_t cfg = default_cfg();
    cfg.params = params;
    sink_t sink = {0};
    pgp_profiler_t *pr = pgp_profiler_create(&cfg, 42, "shop", "app\xff", "10.0.0.1:5555",
                                             on_finish, &sink);
    tstmt_t t;
    mk(&t, "SELECT * FROM posts /*controller='posts',action='index',route='/a;b'*/", 0, 400);
    t.st.rows = 12;
    t.st.application_name = "web";
    pgp_profiler_record(pr, &t.st);
    char sql[128], params_s[32];
    for (int i = 0; i < 12; i++) {
        snprintf(sql, sizeof(sql), "SELECT * FROM users WHERE id = %d AND note <> '</script>\xc3'",
                 i);
        snprintf(params_s, sizeof(params_s), "$1=%d", i);
        mk(&t, sql, 1000 + (uint64_t)i * 200, 100);
        t.st.params_summary = params_s;
        t.st.params_summary_len = strlen(params_s);
        t.st.application_name = "web";
        pgp_profiler_record(pr, &t.st);
    }
    mk(&t, "SELECT 1/0", 5000, 50);
    t.st.sqlstate = "22012";
    pgp_profiler_record(pr, &t.st);
    pgp_profiler_destroy(pr);
    ck_assert_uint_eq(sink.n, 1);
    return sink.p[0];
}

START_TEST(test_render_header)
{
    pgp_profile_t *p = nplus1_profile(PGP_PARAMS_VALUES);
    pgp_render_t r;
    pgp_render_init(&r, 256);
    ck_assert_int_eq(pgp_profile_render_header(p, &r), 0);
    /* total 0..5050, sql 400 + 1200 + 50 */
    ck_assert_str_eq(pgp_render_data(&r), "total=5.0us sql=1.6us(14q) app=3.4us n+1=1");
    pgp_render_free(&r);
    pgp_profile_unref(p);
}
END_TEST

START_TEST(test_render_json)
{
    pgp_profile_t *p = nplus1_profile(PGP_PARAMS_VALUES);
    char *js = render_json(p);
    static const char *const want[] = {
        "\"session_id\":42,\"request_id\":null,\"source\":\"inferred\",\"inferred\":true,"
        "\"label\":\"posts#index\",\"tags\":{\"controller\":\"posts\",\"action\":\"index\","
        "\"route\":\"/a;b\"},\"database\":\"shop\",\"user\":\"app\xef\xbf\xbd\"",
        "\"application_name\":\"web\",\"client_addr\":\"10.0.0.1:5555\","
        "\"start\":\"2025-11-26T00:58:34.123Z\",\"total_ns\":5050,\"total\":\"5.0us\","
        "\"sql_total_ns\":1650,\"sql_count\":14,\"app_ns\":3400,\"events_dropped\":0",
        "\"sql\":\"SELECT * FROM users WHERE id = 1 AND note \\u003c\\u003e '\\u003c/script\\u003e"
        "\xef\xbf\xbd'\"",
        "\"normalized\":\"SELECT * FROM users WHERE id = ? AND note \\u003c\\u003e ?\"",
        "\"duration_ns\":100,\"duration\":\"100ns\",\"rows\":1,\"sqlstate\":null,"
        "\"pipelined\":false,\"offset_ns\":1200",
        "\"sqlstate\":\"22012\"",
        "\"n_plus_one\":[{\"type\":\"n_plus_one\",",
        "\"count\":12,\"distinct_values\":12,\"longest_run\":12,\"total_ns\":1200,",
        "\"source_normalized\":\"SELECT * FROM posts\",\"source_rows\":12,"
        "\"examples\":[\"$1=0\",\"$1=1\",\"$1=2\"],\"estimated_saving_ns\":1100}]}",
    };
    for (size_t i = 0; i < N_OF(want); i++) {
        if (strstr(js, want[i]) == NULL)
            fprintf(stderr, "in %s\n", js);
        ck_assert_msg(strstr(js, want[i]) != NULL, "missing %s", want[i]);
    }
    free(js);
    pgp_profile_unref(p);

    p = nplus1_profile(PGP_PARAMS_OFF);
    js = render_json(p);
    ck_assert_ptr_null(strstr(js, "\"examples\""));
    ck_assert_ptr_nonnull(strstr(js, "\"type\":\"n_plus_one\""));
    free(js);
    pgp_profile_unref(p);
}
END_TEST

START_TEST(test_render_collapsed)
{
    pgp_profile_t *p = nplus1_profile(PGP_PARAMS_VALUES);
    pgp_render_t r;
    pgp_render_init(&r, 1 << 16);
    ck_assert_int_eq(pgp_profile_render_collapsed(p, &r), 0);
    ck_assert_str_eq(pgp_render_data(&r),
                     "request;posts#index;sql;SELECT * FROM posts 400\n"
                     "request;posts#index;sql;SELECT * FROM users WHERE id = ? AND note <> ? 1200\n"
                     "request;posts#index;sql;SELECT ?/? 50\n"
                     "request;posts#index;app 3400\n");
    pgp_render_free(&r);
    pgp_profile_unref(p);

    /* Escaping: ';' in the label and the SQL, newlines, tabs, invalid UTF-8. */
    pgp_profile_config_t cfg = default_cfg();
    sink_t sink = {0};
    pgp_profiler_t *pr = pgp_profiler_create(&cfg, 1, "d", "u", "c", on_finish, &sink);
    tstmt_t t;
    mk(&t, "SELECT 1; SELECT 2 /*route='/x;y\nz'*/", 0, 10);
    pgp_profiler_record(pr, &t.st);
    mk(&t, "SELECT 3", 20, 10);
    static const char weird[] = "SELECT \"a\nb\";\tX \xff\xc3\xa9";
    t.st.normalized = weird;
    t.st.normalized_len = sizeof(weird) - 1;
    t.st.fingerprint = 99;
    pgp_profiler_record(pr, &t.st);
    pgp_profiler_destroy(pr);
    pgp_render_init(&r, 1 << 16);
    ck_assert_int_eq(pgp_profile_render_collapsed(sink.p[0], &r), 0);
    ck_assert_str_eq(pgp_render_data(&r),
                     "request;/x:y z;sql;SELECT ?: SELECT ? 10\n"
                     "request;/x:y z;sql;SELECT \"a b\": X \xef\xbf\xbd\xc3\xa9 10\n"
                     "request;/x:y z;app 10\n");
    /* every line: frames, one space, an integer */
    const char *s = pgp_render_data(&r);
    for (const char *line = s; *line != '\0';) {
        const char *nl = strchr(line, '\n');
        ck_assert_ptr_nonnull(nl);
        const char *sp = nl;
        while (sp > line && sp[-1] >= '0' && sp[-1] <= '9')
            sp--;
        ck_assert(sp < nl && sp > line && sp[-1] == ' ');
        line = nl + 1;
    }
    pgp_render_free(&r);
    sink_free(&sink);
}
END_TEST

START_TEST(test_notice)
{
    pgp_profile_t *p = nplus1_profile(PGP_PARAMS_VALUES);
    char out[512];
    ck_assert(pgp_profile_notice_text(p, out, sizeof(out)));
    ck_assert_str_eq(out, "pgproxy: N+1 query detected in request posts#index: 12 executions of "
                          "\"SELECT * FROM users WHERE id = ? AND note <> ?\"");
    /* cut on a UTF-8 boundary: "…" never split */
    char small[20];
    ck_assert(pgp_profile_notice_text(p, small, sizeof(small)));
    ck_assert_str_eq(small, "pgproxy: N+1 query ");
    pgp_profile_unref(p);

    pgp_profile_config_t cfg = default_cfg();
    sink_t sink = {0};
    pgp_profiler_t *pr = pgp_profiler_create(&cfg, 1, "d", "u", "c", on_finish, &sink);
    tstmt_t t;
    mk(&t, "SELECT 1", 0, 10);
    pgp_profiler_record(pr, &t.st);
    pgp_profiler_destroy(pr);
    out[0] = 'x';
    ck_assert(!pgp_profile_notice_text(sink.p[0], out, sizeof(out)));
    ck_assert_str_eq(out, "");
    sink_free(&sink);

    /* A label and text with multibyte characters, cut mid-character. */
    pr = pgp_profiler_create(&cfg, 1, "d", "u", "c", on_finish, &sink);
    for (int i = 0; i < 3; i++) {
        mk(&t, "SELECT \"é\" FROM t /*job='Jöb'*/", (uint64_t)i * 10, 5);
        pgp_profiler_record(pr, &t.st);
    }
    pgp_profiler_destroy(pr);
    ck_assert(pgp_profile_notice_text(sink.p[0], out, sizeof(out)));
    ck_assert_str_eq(out, "pgproxy: duplicate query detected in request J\xc3\xb6"
                          "b: 3 executions of \"SELECT \"\xc3\xa9\" FROM t\"");
    char cut[48];   /* "…request J" + half of "ö" would be 48 bytes */
    ck_assert(pgp_profile_notice_text(sink.p[0], cut, sizeof(cut)));
    ck_assert_str_eq(cut, "pgproxy: duplicate query detected in request J");
    sink_free(&sink);
}
END_TEST

START_TEST(test_refcount)
{
    pgp_profile_t *p = nplus1_profile(PGP_PARAMS_VALUES);
    pgp_profile_ref(p);
    pgp_profile_unref(p);
    pgp_profile_ref(p);
    pgp_profile_ref(p);
    pgp_profile_unref(p);
    pgp_profile_unref(p);
    /* still ours: renders (ASan would catch a use after free) */
    free(render_json(p));
    pgp_profile_unref(p);
    pgp_profile_unref(NULL);
}
END_TEST

START_TEST(test_set_config_ignore)
{
    pgp_profile_config_t cfg = default_cfg();
    sink_t sink = {0};
    pgp_profiler_t *pr = pgp_profiler_create(&cfg, 1, "d", "u", "c", on_finish, &sink);
    tstmt_t t;
    for (int i = 0; i < 3; i++) {
        mk(&t, i == 0 ? "SELECT a FROM t WHERE id = 1" : "SELECT a FROM t WHERE id = 2",
           (uint64_t)i * 10, 5);
        pgp_profiler_record(pr, &t.st);
    }
    uint64_t ign[2] = {t.st.fingerprint, 12345};
    cfg.ignore_fingerprints = ign;
    cfg.ignore_count = 2;
    pgp_profiler_set_config(pr, &cfg);
    ign[0] = 0;   /* copied: changing it after the call does nothing */
    pgp_profiler_destroy(pr);
    ck_assert_uint_eq(pgp_profile_finding_count(sink.p[0]), 0);
    sink_free(&sink);
}
END_TEST

static Suite *profile_suite(void)
{
    Suite *s = suite_create("profile");
    TCase *tc = tcase_create("grouping");
    tcase_add_loop_test(tc, test_grouping, 0, (int)N_OF(group_cases));
    tcase_add_test(tc, test_ids_unique_increasing);
    tcase_add_test(tc, test_tick_and_current);
    suite_add_tcase(s, tc);
    tc = tcase_create("accounting");
    tcase_add_loop_test(tc, test_times, 0, (int)N_OF(time_cases));
    tcase_add_test(tc, test_events_cap);
    tcase_add_test(tc, test_text_cap);
    tcase_add_test(tc, test_set_config_ignore);
    suite_add_tcase(s, tc);
    tc = tcase_create("render");
    tcase_add_loop_test(tc, test_duration, 0, (int)N_OF(dur_cases));
    tcase_add_loop_test(tc, test_iso, 0, (int)N_OF(iso_cases));
    tcase_add_test(tc, test_render_header);
    tcase_add_test(tc, test_render_json);
    tcase_add_test(tc, test_render_collapsed);
    tcase_add_test(tc, test_notice);
    tcase_add_test(tc, test_refcount);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(profile_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
