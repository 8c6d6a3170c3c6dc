/* QA forms and scores (calls/qa.c): form validation, the weighted score with
 * N/A and critical questions, comments, calibration; and the index side
 * (index/qa.c) on a real SQLite file: form versions frozen once used,
 * evaluations immutable, corrections chained. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "calls/qa.h"
#include "core/errors.h"
#include "core/util.h"
#include "index/index.h"

static json_t *J(const char *text)
{
    json_error_t e;
    json_t *v = json_loads(text, 0, &e);
    ck_assert_msg(v != NULL, "bad test JSON: %s", e.text);
    return v;
}

/* A form: greet (yes/no, weight 1), solve (scale, weight 3), upsell (yes/no,
 * N/A allowed, weight 2), privacy (yes/no, critical). */
static const char *FORM =
    "[{\"title\":\"Opening\",\"questions\":["
    "{\"id\":\"greet\",\"text\":\"Greeted\",\"type\":\"yesno\"},"
    "{\"id\":\"privacy\",\"text\":\"Checked identity\",\"type\":\"yesno\",\"critical\":true}]},"
    "{\"title\":\"Body\",\"questions\":["
    "{\"id\":\"solve\",\"text\":\"Solved\",\"type\":\"scale\",\"weight\":3},"
    "{\"id\":\"upsell\",\"text\":\"Offered\",\"type\":\"yesno\",\"na\":true,\"weight\":2}]}]";

static json_t *form_def(void)
{
    json_t *sections = J(FORM), *def = NULL;
    char err[192];
    ck_assert_int_eq(call_qa_form_check(sections, &def, err, sizeof(err)), VG_OK);
    json_decref(sections);
    return def;
}

static double score_of(const char *answers, int *critical, int *rc)
{
    json_t *def = form_def(), *a = J(answers);
    double score = -1;
    char err[192] = "";
    *rc = call_qa_score(def, a, &score, critical, err, sizeof(err));
    json_decref(def);
    json_decref(a);
    return score;
}

START_TEST(test_form_defaults_written_out)
{
    json_t *def = form_def();
    json_t *q = json_array_get(json_object_get(json_array_get(json_object_get(def, "sections"), 0),
                                               "questions"),
                               0);
    ck_assert(json_is_false(json_object_get(q, "na")));
    ck_assert(json_is_false(json_object_get(q, "critical")));
    ck_assert(fabs(json_number_value(json_object_get(q, "weight")) - 1.0) < 1e-9);
    json_decref(def);
}
END_TEST

START_TEST(test_form_keys)
{
    ck_assert(call_qa_key_valid("calls"));
    ck_assert(call_qa_key_valid("office-visit_2"));
    ck_assert(!call_qa_key_valid("123")); /* would read as an id */
    ck_assert(!call_qa_key_valid("Calls"));
    ck_assert(!call_qa_key_valid(""));
    ck_assert(!call_qa_key_valid("a b"));
    ck_assert(!call_qa_key_valid(NULL));
    char long_key[80];
    memset(long_key, 'a', sizeof(long_key) - 1);
    long_key[sizeof(long_key) - 1] = '\0';
    ck_assert(!call_qa_key_valid(long_key));
}
END_TEST

START_TEST(test_form_rejects)
{
    static const char *const bad[] = {
        "[]",
        "{}",
        "[{\"title\":\"A\",\"questions\":[]}]",
        "[{\"title\":\"\",\"questions\":[{\"id\":\"a\",\"text\":\"t\",\"type\":\"yesno\"}]}]",
        "[{\"title\":\"A\",\"questions\":[{\"id\":\"a\",\"text\":\"t\",\"type\":\"stars\"}]}]",
        "[{\"title\":\"A\",\"questions\":[{\"id\":\"A B\",\"text\":\"t\",\"type\":\"yesno\"}]}]",
        "[{\"title\":\"A\",\"questions\":[{\"id\":\"a\",\"text\":\"t\",\"type\":\"yesno\"},"
        "{\"id\":\"a\",\"text\":\"u\",\"type\":\"yesno\"}]}]",
        "[{\"title\":\"A\",\"questions\":[{\"id\":\"a\",\"text\":\"t\",\"type\":\"yesno\","
        "\"weight\":0}]}]",
        "[{\"title\":\"A\",\"questions\":[{\"id\":\"a\",\"text\":\"t\",\"type\":\"yesno\","
        "\"weight\":\"2\"}]}]",
        "[{\"title\":\"A\",\"questions\":[{\"id\":\"a\",\"text\":\"t\",\"type\":\"yesno\","
        "\"na\":1}]}]",
        "[{\"title\":\"A\",\"questions\":[{\"id\":\"a\",\"text\":\"t\",\"type\":\"yesno\","
        "\"colour\":\"red\"}]}]",
        "[{\"title\":\"A\",\"questions\":[{\"id\":\"a\",\"type\":\"yesno\"}]}]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *s = J(bad[i]), *def = NULL;
        char err[192] = "";
        ck_assert_msg(call_qa_form_check(s, &def, err, sizeof(err)) == VG_EINVAL, "accepted %s",
                      bad[i]);
        ck_assert_msg(err[0] && def == NULL, "no reason for %s", bad[i]);
        json_decref(s);
    }
}
END_TEST

START_TEST(test_form_too_many_questions)
{
    json_t *qs = json_array();
    for (int i = 0; i <= CALL_QA_QUESTIONS_MAX; i++) {
        char id[16];
        snprintf(id, sizeof(id), "q%d", i);
        json_array_append_new(qs, json_pack("{ss ss ss}", "id", id, "text", "t", "type", "yesno"));
    }
    json_t *s = json_pack("[{ss so}]", "title", "A", "questions", qs), *def = NULL;
    char err[192];
    ck_assert_int_eq(call_qa_form_check(s, &def, err, sizeof(err)), VG_EINVAL);
    json_decref(s);
}
END_TEST

START_TEST(test_score_all_yes_top)
{
    int crit, rc;
    double s = score_of("{\"greet\":\"yes\",\"privacy\":\"yes\",\"solve\":5,\"upsell\":\"yes\"}",
                        &crit, &rc);
    ck_assert_int_eq(rc, VG_OK);
    ck_assert_int_eq(crit, 0);
    ck_assert(fabs(s - 1.0) < 1e-9);
}
END_TEST

/* Weights: greet 1 x 0, privacy 1 x 1, solve 3 x (4-1)/4, upsell 2 x 0:
 * (0 + 1 + 2.25 + 0) / 7. */
START_TEST(test_score_weighted)
{
    int crit, rc;
    double s = score_of("{\"greet\":\"no\",\"privacy\":\"yes\",\"solve\":4,\"upsell\":\"no\"}",
                        &crit, &rc);
    ck_assert_int_eq(rc, VG_OK);
    ck_assert_int_eq(crit, 0);
    ck_assert(fabs(s - 3.25 / 7.0) < 1e-6);
}
END_TEST

/* N/A leaves the question out of both sums: (1 + 1 + 3 x 0.5) / 5. */
START_TEST(test_score_na_excluded)
{
    int crit, rc;
    double s = score_of("{\"greet\":\"yes\",\"privacy\":\"yes\",\"solve\":3,\"upsell\":\"na\"}",
                        &crit, &rc);
    ck_assert_int_eq(rc, VG_OK);
    ck_assert(fabs(s - 3.5 / 5.0) < 1e-6);
}
END_TEST

START_TEST(test_score_na_refused_where_not_allowed)
{
    int crit, rc;
    score_of("{\"greet\":\"na\",\"privacy\":\"yes\",\"solve\":3,\"upsell\":\"yes\"}", &crit, &rc);
    ck_assert_int_eq(rc, VG_EINVAL);
}
END_TEST

START_TEST(test_score_critical_zeroes)
{
    int crit, rc;
    double s = score_of("{\"greet\":\"yes\",\"privacy\":\"no\",\"solve\":5,\"upsell\":\"yes\"}",
                        &crit, &rc);
    ck_assert_int_eq(rc, VG_OK);
    ck_assert_int_eq(crit, 1);
    ck_assert(s == 0.0);
}
END_TEST

START_TEST(test_score_bad_answers)
{
    static const char *const bad[] = {
        "{\"greet\":\"yes\",\"privacy\":\"yes\",\"solve\":5}",                       /* missing */
        "{\"greet\":\"yes\",\"privacy\":\"yes\",\"solve\":6,\"upsell\":\"yes\"}",    /* range */
        "{\"greet\":\"yes\",\"privacy\":\"yes\",\"solve\":0,\"upsell\":\"yes\"}",
        "{\"greet\":\"yes\",\"privacy\":\"yes\",\"solve\":2.5,\"upsell\":\"yes\"}",
        "{\"greet\":true,\"privacy\":\"yes\",\"solve\":5,\"upsell\":\"yes\"}",
        "{\"greet\":\"yes\",\"privacy\":\"yes\",\"solve\":\"yes\",\"upsell\":\"yes\"}",
        "{\"greet\":\"yes\",\"privacy\":\"yes\",\"solve\":5,\"upsell\":\"yes\",\"x\":\"yes\"}",
        "[]",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int crit, rc;
        score_of(bad[i], &crit, &rc);
        ck_assert_msg(rc == VG_EINVAL, "accepted %s", bad[i]);
    }
}
END_TEST

START_TEST(test_score_all_na_refused)
{
    json_t *s = J("[{\"title\":\"A\",\"questions\":[{\"id\":\"a\",\"text\":\"t\",\"type\":"
                  "\"yesno\",\"na\":true}]}]"),
           *def = NULL, *a = J("{\"a\":\"na\"}");
    char err[192];
    double score;
    int crit;
    ck_assert_int_eq(call_qa_form_check(s, &def, err, sizeof(err)), VG_OK);
    ck_assert_int_eq(call_qa_score(def, a, &score, &crit, err, sizeof(err)), VG_EINVAL);
    json_decref(s);
    json_decref(def);
    json_decref(a);
}
END_TEST

START_TEST(test_comments)
{
    json_t *c = J("[{\"offset_s\":12.5,\"text\":\"late\"},{\"offset_s\":3,\"text\":\"hello\"}]");
    json_t *out = NULL;
    char err[192];
    ck_assert_int_eq(call_qa_comments_check(c, 60.0, &out, err, sizeof(err)), VG_OK);
    ck_assert_int_eq(json_array_size(out), 2);
    /* sorted by time */
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(out, 0), "text")), "hello");
    json_decref(out);
    json_decref(c);
    c = J("[{\"offset_s\":61,\"text\":\"past the end\"}]");
    ck_assert_int_eq(call_qa_comments_check(c, 60.0, &out, err, sizeof(err)), VG_EINVAL);
    json_decref(c);
    c = J("[{\"offset_s\":-1,\"text\":\"before\"}]");
    ck_assert_int_eq(call_qa_comments_check(c, 60.0, &out, err, sizeof(err)), VG_EINVAL);
    json_decref(c);
    c = J("[{\"offset_s\":1,\"text\":\"\"}]");
    ck_assert_int_eq(call_qa_comments_check(c, 60.0, &out, err, sizeof(err)), VG_EINVAL);
    json_decref(c);
}
END_TEST

START_TEST(test_calibration)
{
    json_t *def = form_def();
    idx_qa_eval_t e[2] = {0};
    e[0].id = 1;
    snprintf(e[0].auditor, sizeof(e[0].auditor), "anna");
    e[0].answers = "{\"greet\":\"yes\",\"privacy\":\"yes\",\"solve\":4,\"upsell\":\"na\"}";
    e[0].score = 0.8;
    e[1].id = 2;
    snprintf(e[1].auditor, sizeof(e[1].auditor), "boris");
    e[1].answers = "{\"greet\":\"yes\",\"privacy\":\"yes\",\"solve\":3,\"upsell\":\"na\"}";
    e[1].score = 0.7;
    json_t *c = call_qa_calibration(def, e, 2);
    /* greet, privacy, upsell agree; solve does not: 3 of 4 */
    ck_assert(fabs(json_real_value(json_object_get(c, "agreement")) - 0.75) < 1e-9);
    ck_assert(fabs(json_real_value(json_object_get(c, "score_spread")) - 0.1) < 1e-6);
    json_t *qs = json_object_get(c, "questions");
    ck_assert_int_eq(json_array_size(qs), 4);
    for (size_t i = 0; i < 4; i++) {
        json_t *q = json_array_get(qs, i);
        int agree = json_is_true(json_object_get(q, "agree"));
        ck_assert_int_eq(agree, strcmp(json_string_value(json_object_get(q, "id")), "solve") != 0);
    }
    json_decref(c);
    json_decref(def);
}
END_TEST

/* ---- index/qa.c on a real file ---- */

static char g_dir[64];
static idx_t *g_idx;

static void db_setup(void)
{
    char path[128];
    snprintf(g_dir, sizeof(g_dir), "/tmp/test_qa.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
    snprintf(path, sizeof(path), "%s/index.db", g_dir);
    ck_assert_int_eq(idx_open(path, 0, &g_idx), VG_OK);
    ck_assert_int_eq(idx_source_register(g_idx, "line-1", "audio"), VG_OK);
}

static void db_teardown(void)
{
    char cmd[128];
    idx_close(g_idx);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    ck_assert_int_eq(system(cmd), 0);
}

static int64_t put_form(const char *title, int must_be_new, int *version, int *added)
{
    idx_qa_form_t f = {0};
    snprintf(f.key, sizeof(f.key), "calls");
    snprintf(f.title, sizeof(f.title), "%s", title);
    snprintf(f.created_by, sizeof(f.created_by), "admin");
    f.definition = "{\"sections\":[]}";
    ck_assert_int_eq(idx_qa_form_put(g_idx, &f, must_be_new, 0, added), VG_OK);
    *version = f.version;
    return f.id;
}

static int64_t add_eval(int64_t form_id, int64_t supersedes, int *rc)
{
    idx_qa_eval_t e = {0};
    e.form_id = form_id;
    snprintf(e.source, sizeof(e.source), "line-1");
    e.from_us = 1000000;
    e.to_us = 61000000;
    snprintf(e.auditor, sizeof(e.auditor), "anna");
    e.answers = "{}";
    e.comments = "[]";
    e.score = 0.5;
    e.supersedes = supersedes;
    *rc = idx_qa_eval_add(g_idx, &e);
    return e.id;
}

START_TEST(test_index_form_versions)
{
    int v, added, rc;
    int64_t id1 = put_form("first", 1, &v, &added);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(added, 1);
    /* unused: edited in place */
    int64_t id1b = put_form("first, edited", 0, &v, &added);
    ck_assert_int_eq(id1b, id1);
    ck_assert_int_eq(v, 1);
    ck_assert_int_eq(added, 0);
    add_eval(id1, 0, &rc);
    ck_assert_int_eq(rc, VG_OK);
    /* used: the edit is version 2, version 1 stays as it was */
    int64_t id2 = put_form("second", 0, &v, &added);
    ck_assert_int_ne(id2, id1);
    ck_assert_int_eq(v, 2);
    idx_qa_form_t f = {0};
    ck_assert_int_eq(idx_qa_form_get(g_idx, id1, &f), VG_OK);
    ck_assert_str_eq(f.title, "first, edited");
    ck_assert_int_eq(f.used, 1);
    free(f.definition);
    idx_qa_form_t n = {0};
    snprintf(n.key, sizeof(n.key), "calls");
    ck_assert_int_eq(idx_qa_form_put(g_idx, &n, 1, 0, &added), VG_EEXIST);
}
END_TEST

START_TEST(test_index_evaluation_chain)
{
    int v, added, rc;
    int64_t form = put_form("f", 1, &v, &added);
    int64_t a = add_eval(form, 0, &rc);
    ck_assert_int_eq(rc, VG_OK);
    int64_t b = add_eval(form, a, &rc);
    ck_assert_int_eq(rc, VG_OK);
    /* a second correction of the same version is refused */
    add_eval(form, a, &rc);
    ck_assert_int_eq(rc, VG_EEXIST);
    add_eval(form, 999, &rc);
    ck_assert_int_eq(rc, VG_ENOTFOUND);
    idx_qa_eval_t *h = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_qa_eval_history(g_idx, a, &h, &n), VG_OK);
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(h[0].id, a);
    ck_assert_int_eq(h[0].superseded_by, b);
    ck_assert_int_eq(h[1].version, 2);
    idx_qa_evals_free(h, n);
    /* only the current version is listed */
    idx_qa_eval_filter_t f = {.from_us = 0, .to_us = INT64_MAX, .limit = 10};
    ck_assert_int_eq(idx_qa_eval_list(g_idx, &f, &h, &n), VG_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(h[0].id, b);
    ck_assert_str_eq(h[0].source, "line-1");
    idx_qa_evals_free(h, n);
}
END_TEST

/* ---- the announcement report's rollup against a brute-force scan ---- */

#define T_BASE (1700000000LL * 1000000) /* 2023-11-14 22:13:20 UTC */
#define T_DAY (86400LL * 1000000)
#define N_SPAN 10                      /* days the calls start in */

static uint64_t g_rng = 17;

static uint32_t rnd(uint32_t n)
{
    g_rng = g_rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(g_rng >> 33) % n;
}

static int64_t rnd_time(int64_t lo, int64_t span)
{
    return lo + (int64_t)(((uint64_t)rnd(1u << 30) << 20 | rnd(1u << 20)) % (uint64_t)span);
}

static void pick(char *dst, size_t size, const char *const *names, size_t n)
{
    snprintf(dst, size, "%s", names[rnd((uint32_t)n)]);
}

static const char *const LINES[] = {"line-1", "line-2", "line-3"};
static const char *const QUEUES[] = {"", "cards", "credit"};
static const char *const AGENTS[] = {"", "anna", "boris", "vera"};
static const char *const STATES[] = {"present", "absent", "partial", "unknown"};

/* Both answers of one period, grouping and line filter, row by row. */
static void compare_reports(int64_t from, int64_t to, const char *group, const char *sources)
{
    idx_ann_report_row_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    int ca = 0, cb = 0;
    ck_assert_int_eq(idx_ann_report(g_idx, from, to, group, sources, &a, &na, &ca), VG_OK);
    ck_assert_int_eq(idx_ann_report_scan(g_idx, from, to, group, sources, &b, &nb, &cb), VG_OK);
    ck_assert_msg(na == nb, "%s [%lld, %lld) %s: %zu groups, scan %zu", group, (long long)from,
                  (long long)to, sources ? sources : "all", na, nb);
    for (size_t i = 0; i < na; i++) {
        ck_assert_str_eq(a[i].group, b[i].group);
        ck_assert_msg(a[i].calls == b[i].calls && a[i].present == b[i].present &&
                          a[i].absent == b[i].absent && a[i].partial == b[i].partial &&
                          a[i].unknown == b[i].unknown,
                      "%s %s [%lld, %lld): %lld/%lld/%lld/%lld/%lld, scan %lld/%lld/%lld/%lld/%lld",
                      group, a[i].group, (long long)from, (long long)to, (long long)a[i].calls,
                      (long long)a[i].present, (long long)a[i].absent, (long long)a[i].partial,
                      (long long)a[i].unknown, (long long)b[i].calls, (long long)b[i].present,
                      (long long)b[i].absent, (long long)b[i].partial, (long long)b[i].unknown);
    }
    free(a);
    free(b);
}

/* Random periods: any instants, office-day starts, and a period inside one day. */
static void compare_random_periods(int rounds)
{
    static const char *const groups[] = {"source", "queue", "agent", "day"};
    for (int i = 0; i < rounds; i++) {
        int64_t from = rnd_time(T_BASE - T_DAY, (N_SPAN + 2) * T_DAY);
        int64_t to = from + rnd_time(1, (rnd(3) ? N_SPAN : 1) * T_DAY);
        if (rnd(3) == 0)
            ck_assert_int_eq(idx_ann_day_start(g_idx, from, 0, &from), VG_OK);
        if (rnd(3) == 0)
            ck_assert_int_eq(idx_ann_day_start(g_idx, to, -1, &to), VG_OK);
        const char *sources = rnd(2) ? NULL : rnd(2) ? "line-1,line-3" : "line-2";
        compare_reports(from, to, groups[rnd(4)], sources);
    }
}

static int64_t add_random_call(int k)
{
    idx_call_t c;
    idx_call_init(&c);
    snprintf(c.call_id, sizeof(c.call_id), "r%d", k);
    pick(c.source, sizeof(c.source), LINES, 3);
    c.start_us = rnd_time(T_BASE, N_SPAN * T_DAY);
    c.end_us = rnd(5) ? c.start_us + rnd_time(0, 3600LL * 1000000) : 0;
    pick(c.queue, sizeof(c.queue), QUEUES, 3);
    pick(c.agent, sizeof(c.agent), AGENTS, 4);
    c.ann_pbx = (int)rnd(3) - 1;
    snprintf(c.origin, sizeof(c.origin), "pbx");
    c.created_us = c.updated_us = T_BASE;
    int64_t id = 0;
    int created = 0;
    ck_assert_int_eq(idx_call_upsert(g_idx, &c, &id, &created), VG_OK);
    return id;
}

/* Offsets with a forward and a backward step away from midnight, and a
 * half-hour one, so office days are neither UTC days nor whole hours. */
static void set_zone(const char *name, int32_t first)
{
    int64_t at[2] = {T_BASE / 1000000 + 3 * 86400 + 3600, T_BASE / 1000000 + 6 * 86400 + 7200};
    int32_t off[2] = {first + 9000, first + 5400};
    int rebuilt = 0;
    ck_assert_int_eq(idx_ann_zone_set(g_idx, name, first, at, off, 2, &rebuilt), VG_OK);
    ck_assert_int_eq(rebuilt, 1);
    ck_assert_int_eq(idx_ann_zone_set(g_idx, name, first, at, off, 2, &rebuilt), VG_OK);
    ck_assert_int_eq(rebuilt, 0); /* the same zone: nothing to do */
}

START_TEST(test_ann_rollup_matches_scan)
{
    int64_t ids[400];
    size_t n = 0;
    ck_assert_int_eq(idx_source_register(g_idx, "line-2", "audio"), VG_OK);
    ck_assert_int_eq(idx_source_register(g_idx, "line-3", "audio"), VG_OK);
    set_zone("test-a", 3 * 3600);
    for (int round = 0; round < 6; round++) {
        for (int op = 0; op < 50; op++) {
            int what = n < 20 ? 0 : (int)rnd(8);
            int64_t id = n ? ids[rnd((uint32_t)n)] : 0;
            idx_call_t c;
            idx_call_init(&c);
            /* retention may have taken it */
            int gone = id && idx_call_get(g_idx, id, &c) == VG_ENOTFOUND;
            if (what > 1 && what < 6 && gone)
                continue;
            if (what <= 1 && n < sizeof(ids) / sizeof(ids[0])) {
                ids[n] = add_random_call((int)n);
                n++;
            } else if (what == 2) { /* the detector's verdict */
                ck_assert_int_eq(idx_call_set_announcement(g_idx, id, STATES[rnd(4)], -1, -1,
                                                           T_BASE),
                                 VG_OK);
            } else if (what == 3) { /* a PATCH of queue, agent, PBX flag */
                pick(c.queue, sizeof(c.queue), QUEUES, 3);
                pick(c.agent, sizeof(c.agent), AGENTS, 4);
                c.ann_pbx = (int)rnd(2);
                c.updated_us = T_BASE;
                ck_assert_int_eq(idx_call_update(g_idx, id, &c,
                                                 IDX_CALL_F_QUEUE | IDX_CALL_F_AGENT |
                                                     IDX_CALL_F_ANN_PBX),
                                 VG_OK);
            } else if (what == 4) { /* moved in time, ended */
                c.start_us = rnd_time(T_BASE, N_SPAN * T_DAY);
                c.end_us = c.start_us + rnd_time(0, 600LL * 1000000);
                c.updated_us = T_BASE;
                ck_assert_int_eq(idx_call_update(g_idx, id, &c, IDX_CALL_F_START | IDX_CALL_F_END),
                                 VG_OK);
            } else if (what == 5) { /* an import row merging into a known call */
                if (!c.end_us)
                    c.end_us = c.start_us + 1000000;
                c.ann_pbx = (int)rnd(2);
                snprintf(c.origin, sizeof(c.origin), "import");
                int64_t same = 0;
                int created = 1;
                ck_assert_int_eq(idx_call_upsert(g_idx, &c, &same, &created), VG_OK);
                ck_assert_int_eq(created, 0);
            } else if (what == 6) { /* recheck of a period */
                int64_t from = rnd_time(T_BASE, N_SPAN * T_DAY), cleared = 0;
                ck_assert_int_eq(idx_call_clear_announcement(g_idx, from, from + T_DAY / 4,
                                                             &cleared),
                                 VG_OK);
            } else { /* retention: metadata of calls ended before a cutoff */
                int64_t deleted = 0;
                int64_t cut = T_BASE + (int64_t)round * T_DAY / 2 + rnd_time(0, T_DAY / 4);
                ck_assert_int_eq(idx_call_sweep(g_idx, cut, cut, T_BASE + 100 * T_DAY, 5,
                                                &deleted),
                                 VG_OK);
            }
        }
        compare_random_periods(40);
    }
    /* a new office zone: the rollup is rebuilt from the calls */
    set_zone("test-b", -(4 * 3600 + 1800));
    compare_random_periods(60);
    /* whole days only, every grouping */
    int64_t day0 = 0;
    ck_assert_int_eq(idx_ann_day_start(g_idx, T_BASE + T_DAY, 0, &day0), VG_OK);
    compare_reports(day0, day0 + 3 * T_DAY, "day", NULL);
    compare_reports(day0, day0 + 3 * T_DAY, "agent", "line-2");
}
END_TEST

START_TEST(test_ann_zone_refused)
{
    int64_t at[2] = {100, 50};
    int32_t off[2] = {3600, 7200};
    int rebuilt = 0;
    ck_assert_int_eq(idx_ann_zone_set(g_idx, "x", 0, at, off, 2, &rebuilt), VG_EINVAL);
    at[1] = 200;
    off[1] = 30 * 3600;
    ck_assert_int_eq(idx_ann_zone_set(g_idx, "x", 0, at, off, 2, &rebuilt), VG_EINVAL);
    idx_ann_report_row_t *rows = NULL;
    size_t n = 0;
    int cut = 0;
    ck_assert_int_eq(idx_ann_report(g_idx, 0, T_BASE, "caller", NULL, &rows, &n, &cut), VG_EINVAL);
}
END_TEST

static Suite *qa_suite(void)
{
    Suite *s = suite_create("qa");
    TCase *tc = tcase_create("rules");
    tcase_add_test(tc, test_form_defaults_written_out);
    tcase_add_test(tc, test_form_keys);
    tcase_add_test(tc, test_form_rejects);
    tcase_add_test(tc, test_form_too_many_questions);
    tcase_add_test(tc, test_score_all_yes_top);
    tcase_add_test(tc, test_score_weighted);
    tcase_add_test(tc, test_score_na_excluded);
    tcase_add_test(tc, test_score_na_refused_where_not_allowed);
    tcase_add_test(tc, test_score_critical_zeroes);
    tcase_add_test(tc, test_score_bad_answers);
    tcase_add_test(tc, test_score_all_na_refused);
    tcase_add_test(tc, test_comments);
    tcase_add_test(tc, test_calibration);
    suite_add_tcase(s, tc);
    tc = tcase_create("index");
    tcase_add_checked_fixture(tc, db_setup, db_teardown);
    tcase_add_test(tc, test_index_form_versions);
    tcase_add_test(tc, test_index_evaluation_chain);
    tcase_add_test(tc, test_ann_rollup_matches_scan);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_ann_zone_refused);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(qa_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
