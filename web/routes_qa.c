/* The call-quality routes: QA forms (admin), evaluations of a call or a
 * source range (annotate), the QA and announcement reports (JSON and CSV),
 * calibration between auditors, and the lists of calls whose announcement
 * is missing or disputed. The rules live in calls/qa.c, the SQL in
 * index/qa.c. Every evaluation created or viewed and every report run is an
 * audit row (DESIGN.md invariant 6). */
#include "web/web_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calls/qa.h"
#include "core/errors.h"
#include "core/util.h"

#define DAY_US (86400LL * 1000000)
/* An office visit or a call is evaluated over at most a day of recording. */
#define MAX_RANGE_US DAY_US
/* A report covers at most a year (bounded work per request). */
#define MAX_REPORT_US (366 * DAY_US)
#define LIST_DEFAULT 100
#define LIST_MAX 500

static int parse_id(const char *text, int64_t *id)
{
    char *end = NULL;
    if (!text || !*text || strlen(text) > 18)
        return VG_EINVAL;
    long long v = strtoll(text, &end, 10);
    if (*end || v <= 0)
        return VG_EINVAL;
    *id = v;
    return VG_OK;
}

static int query_limit(web_req_t *r, size_t *limit)
{
    const char *l = web_query_get(&r->target, "limit");
    int64_t v = LIST_DEFAULT;
    if (l && (parse_id(l, &v) != VG_OK || v > LIST_MAX)) {
        web_reply_error(r, 400, "invalid_query", "limit is 1 to %d", LIST_MAX);
        return VG_EINVAL;
    }
    *limit = (size_t)v;
    return VG_OK;
}

/* The name an evaluation records for its author. */
static const char *auditor_name(const web_req_t *r)
{
    return r->who.kind == 'u' ? r->who.name : r->who.actor;
}

static json_t *json_text_parsed(const char *text)
{
    json_t *v = text ? json_loads(text, 0, NULL) : NULL;
    return v ? v : json_null();
}

/* ---- forms ---- */

static json_t *form_json(const idx_qa_form_t *f)
{
    json_t *def = json_text_parsed(f->definition);
    json_t *o = json_pack("{sI ss si so ss so sb}", "id", (json_int_t)f->id, "key", f->key,
                          "version", f->version, "title", web_json_text(f->title), "created_by",
                          f->created_by, "created", web_time_json(f->created_us), "used",
                          f->used);
    if (json_is_object(def))
        json_object_set(o, "sections", json_object_get(def, "sections"));
    json_decref(def);
    return o;
}

typedef struct {
    idx_qa_form_t *form;
    int must_be_new, must_exist, added;
} form_put_t;

static int do_form_put(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    form_put_t *c = arg;
    int rc = idx_qa_form_put(idx, c->form, c->must_be_new, c->must_exist, &c->added);
    if (rc == VG_OK && n)
        snprintf(rows[0].detail, sizeof(rows[0].detail), "version=%d%s", c->form->version,
                 c->added ? "" : " (unused version replaced)");
    return rc;
}

/* POST (key in the body) and PUT (key in the path) share this. */
static void form_store(web_req_t *r, const char *path_key)
{
    static const web_field_t post_fields[] = {{"key", WEB_F_STRING, 1, 0},
                                              {"title", WEB_F_STRING, 1, 0},
                                              {"sections", WEB_F_ARRAY, 1, 0},
                                              {NULL, 0, 0, 0}};
    static const web_field_t put_fields[] = {{"title", WEB_F_STRING, 1, 0},
                                             {"sections", WEB_F_ARRAY, 1, 0},
                                             {NULL, 0, 0, 0}};
    json_t *body = web_req_body(r, path_key ? put_fields : post_fields), *def = NULL;
    char err[192], object[96];
    idx_qa_form_t f = {0};
    if (!body)
        return;
    const char *key = path_key ? path_key : json_string_value(json_object_get(body, "key"));
    const char *title = json_string_value(json_object_get(body, "title"));
    if (!call_qa_key_valid(key)) {
        web_reply_error(r, path_key ? 404 : 400, path_key ? "not_found" : "invalid_field",
                        "a form key is 1-63 of a-z, 0-9, _ and -, starting with a letter");
        goto cleanup;
    }
    if (!*title || strlen(title) >= sizeof(f.title) || !vg_utf8_valid(title, strlen(title))) {
        web_reply_error(r, 400, "invalid_field", "title is 1-%zu bytes of text",
                        sizeof(f.title) - 1);
        goto cleanup;
    }
    if (call_qa_form_check(json_object_get(body, "sections"), &def, err, sizeof(err)) != VG_OK) {
        web_reply_error(r, 400, "invalid_form", "%s", err);
        goto cleanup;
    }
    snprintf(f.key, sizeof(f.key), "%s", key);
    snprintf(f.title, sizeof(f.title), "%s", title);
    snprintf(f.created_by, sizeof(f.created_by), "%s", auditor_name(r));
    f.created_us = r->now_us;
    f.definition = json_dumps(def, JSON_COMPACT);
    snprintf(object, sizeof(object), "qa_form:%s", key);
    idx_audit_t row;
    web_audit_row(r, &row, NULL, path_key ? "qa.form.update" : "qa.form.create", object, 0, 0,
                  "ok", "");
    form_put_t change = {&f, !path_key, path_key != NULL, 0};
    int rc = web_change(r, do_form_put, &change, &row);
    if (rc == VG_EAUDIT)
        goto cleanup;
    if (rc == VG_EEXIST) {
        web_reply_error(r, 409, "exists", "form \"%s\" exists: PUT /api/v1/qa/forms/%s makes "
                                          "its next version", key, key);
        goto cleanup;
    }
    if (rc == VG_ENOTFOUND) {
        web_reply_error(r, 404, "not_found", "no such form");
        goto cleanup;
    }
    if (rc != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot store the form");
        goto cleanup;
    }
    json_t *out = form_json(&f);
    json_object_set_new(out, "new_version", json_boolean(change.added));
    web_reply_json(r, path_key ? 200 : 201, out);

cleanup:
    free(f.definition);
    json_decref(def);
    json_decref(body);
}

void web_h_qa_form_add(web_req_t *r)
{
    form_store(r, NULL);
}

void web_h_qa_form_put(web_req_t *r)
{
    form_store(r, r->params[0]);
}

void web_h_qa_forms(web_req_t *r)
{
    idx_qa_form_t *f = NULL;
    size_t n = 0;
    if (idx_qa_form_list(r->idx, &f, &n) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot read the forms");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, form_json(&f[i]));
    idx_qa_forms_free(f, n);
    web_reply_json(r, 200, json_pack("{so}", "forms", arr));
}

/* GET /qa/forms/{id or key}: that version (or the newest) and every
 * version of its key. */
void web_h_qa_form_get(web_req_t *r)
{
    idx_qa_form_t f = {0}, *all = NULL;
    size_t n = 0;
    int64_t id;
    int rc = parse_id(r->params[0], &id) == VG_OK ? idx_qa_form_get(r->idx, id, &f)
             : call_qa_key_valid(r->params[0]) ? idx_qa_form_latest(r->idx, r->params[0], &f)
                                               : VG_ENOTFOUND;
    if (rc == VG_ENOTFOUND) {
        web_reply_error(r, 404, "not_found", "no such form");
        return;
    }
    if (rc != VG_OK || idx_qa_form_versions(r->idx, f.key, &all, &n) != VG_OK) {
        free(f.definition);
        web_reply_error(r, 500, "internal", "cannot read the form");
        return;
    }
    json_t *out = form_json(&f), *versions = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(versions, json_pack("{sI si so ss sb}", "id", (json_int_t)all[i].id,
                                                  "version", all[i].version, "created",
                                                  web_time_json(all[i].created_us), "created_by",
                                                  all[i].created_by, "used", all[i].used));
    json_object_set_new(out, "versions", versions);
    free(f.definition);
    idx_qa_forms_free(all, n);
    web_reply_json(r, 200, out);
}

/* ---- evaluations ---- */

static json_t *eval_json(const idx_qa_eval_t *e)
{
    return json_pack("{sI s{sI ss si} so so so so ss ss ss so sf sb so si so so so}", "id",
                     (json_int_t)e->id, "form", "id", (json_int_t)e->form_id, "key", e->form_key,
                     "version", e->form_version, "call",
                     e->call_id ? json_integer(e->call_id) : json_null(), "source",
                     e->source[0] ? json_string(e->source) : json_null(), "from",
                     web_time_json(e->from_us), "to", web_time_json(e->to_us), "auditor",
                     e->auditor, "agent", e->agent, "queue", e->queue, "answers",
                     json_text_parsed(e->answers), "score", e->score, "critical_failed",
                     e->critical_failed, "comments", json_text_parsed(e->comments), "version",
                     e->version, "supersedes",
                     e->supersedes ? json_integer(e->supersedes) : json_null(), "superseded_by",
                     e->superseded_by ? json_integer(e->superseded_by) : json_null(), "created",
                     web_time_json(e->created_us));
}

/* Whether the caller may see the recording an evaluation is about: its
 * source visible and readable (calls for a line, playback for a camera). */
static int eval_visible(web_req_t *r, const char *source)
{
    char kbuf[8];
    if (!source[0])
        return r->who.all_sources;
    const char *kind = web_source_kind(r->cfg, r->idx, source, kbuf, sizeof(kbuf));
    return kind && web_source_visible(&r->who, source, kind) &&
           web_has(&r->who, strcmp(kind, "audio") == 0 ? WEB_PERM_CALLS : WEB_PERM_PLAYBACK);
}

typedef struct {
    idx_qa_eval_t *e;
} eval_add_t;

static int do_eval_add(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    eval_add_t *c = arg;
    int rc = idx_qa_eval_add(idx, c->e);
    if (rc == VG_OK && n) {
        snprintf(rows[0].object, sizeof(rows[0].object), "qa_evaluation:%" PRId64, c->e->id);
        snprintf(rows[0].detail, sizeof(rows[0].detail),
                 "form=%s v%d score=%.4f critical_failed=%d version=%d%s%.40s", c->e->form_key,
                 c->e->form_version, c->e->score, c->e->critical_failed, c->e->version,
                 c->e->call_id ? " call=" : " source=", c->e->call_id ? "" : c->e->source);
        if (c->e->call_id) {
            size_t len = strlen(rows[0].detail);
            snprintf(rows[0].detail + len, sizeof(rows[0].detail) - len, "%" PRId64,
                     c->e->call_id);
        }
    }
    return rc;
}

/* Scores answers against form and stores e (its subject already set). */
static void eval_store(web_req_t *r, idx_qa_eval_t *e, const idx_qa_form_t *form,
                       const json_t *answers, const json_t *comments)
{
    json_t *def = json_loads(form->definition, 0, NULL), *cm = NULL;
    char err[192];
    if (!def) {
        web_reply_error(r, 500, "internal", "the stored form cannot be read");
        goto cleanup;
    }
    if (call_qa_score(def, answers, &e->score, &e->critical_failed, err, sizeof(err)) != VG_OK) {
        web_reply_error(r, 400, "invalid_answers", "%s", err);
        goto cleanup;
    }
    if (call_qa_comments_check(comments, (double)(e->to_us - e->from_us) / 1e6, &cm, err,
                               sizeof(err)) != VG_OK) {
        web_reply_error(r, 400, "invalid_comments", "%s", err);
        goto cleanup;
    }
    e->form_id = form->id;
    snprintf(e->form_key, sizeof(e->form_key), "%s", form->key);
    e->form_version = form->version;
    snprintf(e->auditor, sizeof(e->auditor), "%s", auditor_name(r));
    e->answers = json_dumps(answers, JSON_COMPACT | JSON_SORT_KEYS);
    e->comments = json_dumps(cm, JSON_COMPACT);
    e->created_us = r->now_us;
    idx_audit_t row;
    web_audit_row(r, &row, NULL, "qa.evaluate", "qa_evaluation", e->from_us, e->to_us, "ok", "");
    eval_add_t change = {e};
    int rc = web_change(r, do_eval_add, &change, &row);
    if (rc == VG_EAUDIT)
        goto cleanup;
    if (rc == VG_EEXIST) {
        web_reply_error(r, 409, "superseded", "this version already has a correction: correct "
                                              "the newest version");
        goto cleanup;
    }
    if (rc == VG_ENOTFOUND) {
        web_reply_error(r, 404, "not_found", "no such evaluation");
        goto cleanup;
    }
    if (rc != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot store the evaluation");
        goto cleanup;
    }
    idx_qa_eval_t stored = {0};
    if (idx_qa_eval_get(r->idx, e->id, &stored) == VG_OK) {
        web_reply_json(r, 201, eval_json(&stored));
        free(stored.answers);
        free(stored.comments);
    } else {
        web_reply_json(r, 201, json_pack("{sI}", "id", (json_int_t)e->id));
    }

cleanup:
    json_decref(def);
    json_decref(cm);
}

/* The subject of a new evaluation: a call (its interval, agent, queue) or
 * a source range the caller may read. 0 with the answer set on error. */
static int eval_subject(web_req_t *r, const json_t *body, idx_qa_eval_t *e)
{
    const json_t *call = json_object_get(body, "call"), *source = json_object_get(body, "source");
    const json_t *from = json_object_get(body, "from"), *to = json_object_get(body, "to");
    if ((call != NULL) == (source != NULL)) {
        web_reply_error(r, 400, "invalid_field", "give either call or source with from and to");
        return 0;
    }
    if (call) {
        if (from || to) {
            web_reply_error(r, 400, "invalid_field", "a call's interval is its own: no from/to");
            return 0;
        }
        e->call_id = json_integer_value(call);
        int rc = e->call_id > 0 ? idx_qa_call_info(r->idx, e->call_id, e->source, &e->from_us,
                                                   &e->to_us, e->agent, e->queue)
                                : VG_ENOTFOUND;
        if (rc == VG_OK && !eval_visible(r, e->source))
            rc = VG_ENOTFOUND;
        if (rc == VG_OK && e->to_us <= e->from_us) {
            web_reply_error(r, 400, "invalid_field", "the call has no duration to evaluate");
            return 0;
        }
        if (rc != VG_OK) {
            web_reply_error(r, 404, "not_found", "no such ended call");
            return 0;
        }
        return 1;
    }
    const char *name = json_string_value(source);
    if (!from || !to || web_json_time(from, &e->from_us) != VG_OK ||
        web_json_time(to, &e->to_us) != VG_OK) {
        web_reply_error(r, 400, "invalid_field", "a source range needs from and to");
        return 0;
    }
    if (e->to_us <= e->from_us || e->to_us - e->from_us > MAX_RANGE_US) {
        web_reply_error(r, 400, "invalid_range", "from must be before to, at most a day apart");
        return 0;
    }
    int found = 0;
    if (!vg_source_name_valid(name) || idx_source_exists(r->idx, name, &found) != VG_OK ||
        !found || !eval_visible(r, name)) {
        web_reply_error(r, 404, "not_found", "no such source");
        return 0;
    }
    snprintf(e->source, sizeof(e->source), "%s", name);
    return 1;
}

void web_h_qa_eval_add(web_req_t *r)
{
    static const web_field_t fields[] = {
        {"form", WEB_F_STRING, 1, 0}, {"call", WEB_F_INT, 0, 0},
        {"source", WEB_F_STRING, 0, 0}, {"from", WEB_F_TIME, 0, 0},
        {"to", WEB_F_TIME, 0, 0},     {"answers", WEB_F_OBJECT, 1, 0},
        {"comments", WEB_F_ARRAY, 0, 1}, {NULL, 0, 0, 0}};
    json_t *body = web_req_body(r, fields);
    idx_qa_eval_t e = {0};
    idx_qa_form_t form = {0};
    if (!body || !eval_subject(r, body, &e))
        goto cleanup;
    const char *key = json_string_value(json_object_get(body, "form"));
    int rc = call_qa_key_valid(key) ? idx_qa_form_latest(r->idx, key, &form) : VG_ENOTFOUND;
    if (rc != VG_OK) {
        web_reply_error(r, rc == VG_ENOTFOUND ? 400 : 500,
                        rc == VG_ENOTFOUND ? "invalid_field" : "internal", "no such form");
        goto cleanup;
    }
    eval_store(r, &e, &form, json_object_get(body, "answers"), json_object_get(body, "comments"));

cleanup:
    free(e.answers);
    free(e.comments);
    free(form.definition);
    json_decref(body);
}

/* POST /qa/evaluations/{id}/versions: a correction by its author (or an
 * admin), scored on the same form version as the evaluation it corrects. */
void web_h_qa_eval_correct(web_req_t *r)
{
    static const web_field_t fields[] = {{"answers", WEB_F_OBJECT, 1, 0},
                                         {"comments", WEB_F_ARRAY, 0, 1},
                                         {NULL, 0, 0, 0}};
    idx_qa_eval_t old = {0}, e = {0};
    idx_qa_form_t form = {0};
    json_t *body = NULL;
    int64_t id;
    if (parse_id(r->params[0], &id) != VG_OK || idx_qa_eval_get(r->idx, id, &old) != VG_OK ||
        !eval_visible(r, old.source)) {
        web_reply_error(r, 404, "not_found", "no such evaluation");
        goto cleanup;
    }
    if (strcmp(old.auditor, auditor_name(r)) != 0 && !web_has(&r->who, WEB_PERM_ADMIN)) {
        web_reply_error(r, 403, "forbidden", "only its auditor or an admin corrects an evaluation");
        goto cleanup;
    }
    if (!(body = web_req_body(r, fields)))
        goto cleanup;
    if (idx_qa_form_get(r->idx, old.form_id, &form) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot read the form");
        goto cleanup;
    }
    e.call_id = old.call_id;
    snprintf(e.source, sizeof(e.source), "%s", old.source);
    e.from_us = old.from_us;
    e.to_us = old.to_us;
    snprintf(e.agent, sizeof(e.agent), "%s", old.agent);
    snprintf(e.queue, sizeof(e.queue), "%s", old.queue);
    e.supersedes = old.id;
    eval_store(r, &e, &form, json_object_get(body, "answers"), json_object_get(body, "comments"));

cleanup:
    free(old.answers);
    free(old.comments);
    free(e.answers);
    free(e.comments);
    free(form.definition);
    json_decref(body);
}

void web_h_qa_eval_get(web_req_t *r)
{
    idx_qa_eval_t e = {0}, *hist = NULL;
    size_t n = 0;
    int64_t id;
    char object[48];
    if (parse_id(r->params[0], &id) != VG_OK || idx_qa_eval_get(r->idx, id, &e) != VG_OK ||
        !eval_visible(r, e.source)) {
        web_reply_error(r, 404, "not_found", "no such evaluation");
        goto cleanup;
    }
    if (idx_qa_eval_history(r->idx, id, &hist, &n) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot read the evaluation");
        goto cleanup;
    }
    json_t *out = eval_json(&e), *h = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(h, eval_json(&hist[i]));
    json_object_set_new(out, "history", h);
    snprintf(object, sizeof(object), "qa_evaluation:%" PRId64, id);
    web_audit(r, "qa.view", object, e.from_us, e.to_us, "ok", "");
    web_reply_json(r, 200, out);

cleanup:
    free(e.answers);
    free(e.comments);
    idx_qa_evals_free(hist, n);
}

/* from/to of a list or report: default the last 30 days, at most a year. */
static int report_range(web_req_t *r, int64_t *from, int64_t *to)
{
    if (web_req_range(r, r->now_us - 30 * DAY_US, r->now_us + DAY_US, from, to) != VG_OK)
        return VG_EINVAL;
    if (*to - *from > MAX_REPORT_US) {
        web_reply_error(r, 400, "invalid_range", "a report covers at most 366 days");
        return VG_EINVAL;
    }
    return VG_OK;
}

static int query_id(web_req_t *r, const char *key, int64_t *id)
{
    const char *v = web_query_get(&r->target, key);
    *id = 0;
    if (v && parse_id(v, id) != VG_OK) {
        web_reply_error(r, 400, "invalid_query", "%s is a positive id", key);
        return VG_EINVAL;
    }
    return VG_OK;
}

void web_h_qa_evals(web_req_t *r)
{
    idx_qa_eval_filter_t f = {0};
    idx_qa_eval_t *e = NULL;
    size_t n = 0;
    char detail[256];
    if (query_id(r, "call", &f.call_id) != VG_OK || query_id(r, "after", &f.before_id) != VG_OK ||
        query_limit(r, &f.limit) != VG_OK)
        return;
    /* An evaluation's range may start years back: the default is all time. */
    if (web_req_range(r, 0, INT64_MAX, &f.from_us, &f.to_us) != VG_OK)
        return;
    f.source = web_query_get(&r->target, "source");
    f.auditor = web_query_get(&r->target, "auditor");
    f.agent = web_query_get(&r->target, "agent");
    if (idx_qa_eval_list(r->idx, &f, &e, &n) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot read the evaluations");
        return;
    }
    json_t *arr = json_array();
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        if (eval_visible(r, e[i].source)) {
            json_array_append_new(arr, eval_json(&e[i]));
            shown++;
        }
    }
    json_t *next = n == f.limit && n ? json_integer(e[n - 1].id) : json_null();
    snprintf(detail, sizeof(detail), "%zu evaluation(s) call=%" PRId64 " source=%.40s agent=%.60s",
             shown, f.call_id, f.source ? f.source : "", f.agent ? f.agent : "");
    web_audit(r, "qa.view", "qa_evaluations", f.from_us, f.to_us == INT64_MAX ? 0 : f.to_us, "ok",
              detail);
    idx_qa_evals_free(e, n);
    web_reply_json(r, 200, json_pack("{so so}", "evaluations", arr, "next", next));
}

/* ---- reports ---- */

/* One CSV field: quoted, quotes doubled, and a leading = + - @ (a
 * spreadsheet formula in a name a PBX sent) defused with a quote. */
static void csv_field(web_buf_t *b, const char *text, int last)
{
    WEB_BUF_LIT(b, "\"");
    if (strchr("=+-@\t\r", text[0]) && text[0])
        WEB_BUF_LIT(b, "'");
    for (const char *p = text; *p; p++) {
        if (*p == '"')
            WEB_BUF_LIT(b, "\"\"");
        else
            web_buf_lit(b, p, 1);
    }
    web_buf_printf(b, "\"%s", last ? "\r\n" : ",");
}

static int report_args(web_req_t *r, const char *const *groups, const char *def, const char **group,
                       int *csv, int64_t *from, int64_t *to)
{
    const char *g = web_query_get(&r->target, "group");
    const char *format = web_query_get(&r->target, "format");
    *group = NULL;
    for (size_t i = 0; groups[i]; i++) {
        if (strcmp(g ? g : def, groups[i]) == 0)
            *group = groups[i];
    }
    if (!*group) {
        web_reply_error(r, 400, "invalid_query", "group is one of %s, %s, %s or %s", groups[0],
                        groups[1], groups[2], groups[3]);
        return VG_EINVAL;
    }
    if (format && strcmp(format, "csv") != 0 && strcmp(format, "json") != 0) {
        web_reply_error(r, 400, "invalid_query", "format is json or csv");
        return VG_EINVAL;
    }
    *csv = format && strcmp(format, "csv") == 0;
    return report_range(r, from, to);
}

static void report_audit(web_req_t *r, const char *name, const char *group, int64_t from,
                         int64_t to, size_t n)
{
    char detail[96];
    snprintf(detail, sizeof(detail), "group=%s groups=%zu", group, n);
    web_audit(r, "report.run", name, from, to, "ok", detail);
}

/* The lines and cameras a report may count for this caller: an account
 * limited to some sources sees figures of those only (NULL: all). */
static const char *report_sources(const web_req_t *r)
{
    return r->who.all_sources ? NULL : r->who.sources;
}

void web_h_report_qa(web_req_t *r)
{
    static const char *const groups[] = {"agent", "queue", "form", "auditor", NULL};
    const char *group;
    int csv, cut;
    int64_t from, to;
    idx_qa_report_row_t *rows = NULL;
    size_t n = 0;
    if (report_args(r, groups, "agent", &group, &csv, &from, &to) != VG_OK)
        return;
    if (idx_qa_report(r->idx, from, to, group, report_sources(r), &rows, &n, &cut) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot run the report");
        return;
    }
    report_audit(r, "report:qa", group, from, to, n);
    if (csv) {
        web_buf_t b = {0};
        web_buf_printf(&b, "\"%s\",\"count\",\"mean_score\",\"0-20%%\",\"20-40%%\","
                                      "\"40-60%%\",\"60-80%%\",\"80-100%%\",\"critical_failed\"\r\n",
                       group);
        for (size_t i = 0; i < n; i++) {
            csv_field(&b, rows[i].group, 0);
            web_buf_printf(&b, "%" PRId64 ",%.4f", rows[i].count, rows[i].mean);
            for (int k = 0; k < IDX_QA_BUCKETS; k++)
                web_buf_printf(&b, ",%" PRId64, rows[i].buckets[k]);
            web_buf_printf(&b, ",%" PRId64 "\r\n", rows[i].critical_failed);
        }
        free(rows);
        web_reply_text(r, 200, "text/csv; charset=utf-8", b.p, b.len);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *dist = json_array();
        for (int k = 0; k < IDX_QA_BUCKETS; k++)
            json_array_append_new(dist, json_integer(rows[i].buckets[k]));
        json_array_append_new(arr, json_pack("{so sI sf so sI}", "group",
                                             web_json_text(rows[i].group), "count",
                                             (json_int_t)rows[i].count, "mean_score",
                                             rows[i].mean, "distribution", dist,
                                             "critical_failed",
                                             (json_int_t)rows[i].critical_failed));
    }
    free(rows);
    web_reply_json(r, 200,
                   json_pack("{ss so so s[fffff] so sb}", "group", group, "from",
                             web_time_json(from), "to", web_time_json(to), "buckets", 0.0, 0.2,
                             0.4, 0.6, 0.8, "rows", arr, "cut", cut));
}

/* Two or more auditors' evaluations of one call (call=ID) or of one
 * source range (source, from, to exactly as evaluated). */
void web_h_report_qa_calibration(web_req_t *r)
{
    idx_qa_eval_filter_t f = {.limit = LIST_MAX};
    idx_qa_eval_t *e = NULL, *pick = NULL;
    idx_qa_form_t form = {0};
    size_t n = 0, k = 0;
    char object[96];
    if (query_id(r, "call", &f.call_id) != VG_OK)
        return;
    f.source = web_query_get(&r->target, "source");
    if (!f.call_id == !f.source) {
        web_reply_error(r, 400, "invalid_query", "give call=ID, or source with from and to");
        return;
    }
    if (f.source && (!web_query_get(&r->target, "from") || !web_query_get(&r->target, "to"))) {
        web_reply_error(r, 400, "invalid_query", "a source range needs from and to");
        return;
    }
    if (web_req_range(r, 0, INT64_MAX, &f.from_us, &f.to_us) != VG_OK)
        return;
    int64_t want_from = f.from_us, want_to = f.to_us;
    if (idx_qa_eval_list(r->idx, &f, &e, &n) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot read the evaluations");
        return;
    }
    /* The newest evaluation's form version decides what is compared (an
     * edited form may have other questions); each auditor's newest
     * evaluation with that same version counts once. */
    pick = vg_calloc(n ? n : 1, sizeof(*pick));
    for (size_t i = 0; i < n; i++) {
        int dup = 0;
        if (!eval_visible(r, e[i].source) ||
            (f.source && (e[i].from_us != want_from || e[i].to_us != want_to)) ||
            (k && e[i].form_id != pick[0].form_id))
            continue;
        for (size_t j = 0; j < k && !dup; j++)
            dup = strcmp(pick[j].auditor, e[i].auditor) == 0;
        if (!dup)
            pick[k++] = e[i];
    }
    if (!k) {
        web_reply_error(r, 404, "not_found", "no evaluation of this call or range");
        goto cleanup;
    }
    if (idx_qa_form_get(r->idx, pick[0].form_id, &form) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot read the form");
        goto cleanup;
    }
    json_t *def = json_text_parsed(form.definition);
    json_t *out = call_qa_calibration(def, pick, k);
    json_decref(def);
    json_object_set_new(out, "form", json_string(form.key));
    json_object_set_new(out, "call", f.call_id ? json_integer(f.call_id) : json_null());
    json_object_set_new(out, "source", f.source ? json_string(pick[0].source) : json_null());
    if (f.call_id)
        snprintf(object, sizeof(object), "call:%" PRId64, f.call_id);
    else
        snprintf(object, sizeof(object), "source:%s", pick[0].source);
    web_audit(r, "report.run", object, pick[0].from_us, pick[0].to_us, "ok", "qa calibration");
    web_reply_json(r, 200, out);

cleanup:
    free(pick); /* its items' strings belong to e */
    idx_qa_evals_free(e, n);
    free(form.definition);
}

static json_t *rate_json(const idx_ann_report_row_t *a)
{
    int64_t decided = a->present + a->absent + a->partial;
    return decided ? json_real((double)a->present / (double)decided) : json_null();
}

/* Groups by source hide the lines the caller may not see. */
static int ann_group_visible(web_req_t *r, const char *group, const char *value)
{
    return strcmp(group, "source") != 0 || eval_visible(r, value);
}

void web_h_report_announcement(web_req_t *r)
{
    static const char *const groups[] = {"source", "queue", "agent", "day", NULL};
    const char *group;
    int csv, cut;
    int64_t from, to;
    idx_ann_report_row_t *rows = NULL;
    size_t n = 0;
    if (report_args(r, groups, "day", &group, &csv, &from, &to) != VG_OK)
        return;
    if (idx_ann_report(r->idx, from, to, group, report_sources(r), &rows, &n, &cut) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot run the report");
        return;
    }
    report_audit(r, "report:announcement", group, from, to, n);
    web_buf_t b = {0};
    json_t *arr = json_array();
    if (csv)
        web_buf_printf(&b, "\"%s\",\"calls\",\"present\",\"absent\",\"partial\",\"unknown\","
                           "\"rate\"\r\n", group);
    for (size_t i = 0; i < n; i++) {
        const idx_ann_report_row_t *a = &rows[i];
        if (!ann_group_visible(r, group, a->group))
            continue;
        json_t *rate = rate_json(a);
        if (csv) {
            csv_field(&b, a->group, 0);
            web_buf_printf(&b, "%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ",%" PRId64 ",",
                           a->calls, a->present, a->absent, a->partial, a->unknown);
            if (json_is_real(rate))
                web_buf_printf(&b, "%.4f", json_real_value(rate));
            WEB_BUF_LIT(&b, "\r\n");
            json_decref(rate);
            continue;
        }
        json_array_append_new(arr, json_pack("{so sI sI sI sI sI so}", "group",
                                             web_json_text(a->group), "calls",
                                             (json_int_t)a->calls, "present",
                                             (json_int_t)a->present, "absent",
                                             (json_int_t)a->absent, "partial",
                                             (json_int_t)a->partial, "unknown",
                                             (json_int_t)a->unknown, "rate", rate));
    }
    free(rows);
    if (csv) {
        json_decref(arr);
        web_reply_text(r, 200, "text/csv; charset=utf-8", b.p, b.len);
        return;
    }
    web_reply_json(r, 200, json_pack("{ss so so so sf sb}", "group", group, "from",
                                     web_time_json(from), "to", web_time_json(to), "rows", arr,
                                     "min_rate", r->cfg->announcement_min_rate, "cut",
                                     cut));
}

static void ann_calls(web_req_t *r, char which, const char *name)
{
    int64_t from, to, before;
    size_t limit, n = 0;
    idx_ann_call_t *c = NULL;
    if (report_range(r, &from, &to) != VG_OK || query_id(r, "after", &before) != VG_OK ||
        query_limit(r, &limit) != VG_OK)
        return;
    if (idx_ann_calls(r->idx, which, from, to, before, limit, &c, &n) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot read the calls");
        return;
    }
    json_t *arr = json_array();
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        if (!eval_visible(r, c[i].source))
            continue;
        shown++;
        json_array_append_new(
            arr, json_pack("{sI so ss so so so so ss so so so so}", "id", (json_int_t)c[i].id,
                           "call_id", web_json_text(c[i].call_id), "source", c[i].source, "start",
                           web_time_json(c[i].start_us), "end", web_time_json(c[i].end_us),
                           "agent", web_json_text(c[i].agent), "queue",
                           web_json_text(c[i].queue), "state", c[i].state, "detected",
                           c[i].detected[0] ? json_string(c[i].detected) : json_null(), "pbx",
                           c[i].pbx < 0 ? json_null() : json_boolean(c[i].pbx), "score",
                           c[i].detected[0] ? json_real(c[i].score) : json_null(), "offset_s",
                           c[i].offset_us >= 0 ? json_real((double)c[i].offset_us / 1e6)
                                               : json_null()));
    }
    json_t *next = n == limit && n ? json_integer(c[n - 1].id) : json_null();
    free(c);
    char detail[48];
    snprintf(detail, sizeof(detail), "%zu call(s)", shown);
    web_audit(r, "report.run", name, from, to, "ok", detail);
    web_reply_json(r, 200, json_pack("{so so}", "calls", arr, "next", next));
}

void web_h_report_announcement_missing(web_req_t *r)
{
    ann_calls(r, 'm', "report:announcement-missing");
}

void web_h_report_announcement_disagreements(web_req_t *r)
{
    ann_calls(r, 'd', "report:announcement-disagreements");
}
