/* Routes for retention figures and actions (storage, holds, destruction
 * log), accounts (users, tokens) and the audit trail itself. Every change
 * leaves an audit row; reading the audit trail does too. */
#include "web/web_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"
#include "retention/retention.h"

#include <sodium.h>

#define MAX_LIST IDX_LIST_MAX
#define AUDIT_DEFAULT_LIMIT 1000
/* One answer holds at most this many rows (a few MiB of JSON); more are
 * fetched page by page with after=NEXT. */
#define AUDIT_MAX_LIMIT 10000

/* "a,b" -> ["a","b"]; "" -> []. */
static json_t *csv_json(const char *csv)
{
    json_t *arr = json_array();
    for (const char *p = csv; *p;) {
        size_t k = strcspn(p, ",");
        json_array_append_new(arr, json_stringn(p, k));
        p += k;
        if (*p == ',')
            p++;
    }
    return arr;
}

static int parse_id(const char *text, int64_t *id)
{
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (!*text || *end || v <= 0)
        return VG_EINVAL;
    *id = v;
    return VG_OK;
}

/* ---- storage ---- */

void web_h_storage(web_req_t *r)
{
    ret_disk_t disk;
    ret_storage_t st;
    if (ret_disk_read(r->cfg, r->idx, 0, &disk) != VG_OK ||
        ret_storage(r->idx, r->cfg, r->now_us, &disk, &st) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot read storage figures");
        return;
    }
    json_t *sources = json_array(), *alarms = json_array();
    for (size_t i = 0; i < st.n_sources; i++) {
        const ret_source_figures_t *f = &st.sources[i];
        json_array_append_new(
            sources, json_pack("{ss ss si sI sI so so sf sf sI sf}", "source", f->source, "kind",
                               f->kind, "keep_days", f->keep_days, "segments",
                               (json_int_t)f->segments, "bytes", (json_int_t)f->bytes, "oldest",
                               web_time_json(f->oldest_us), "newest", web_time_json(f->newest_us),
                               "depth_days", f->depth_days, "bytes_per_day", f->bytes_per_day,
                               "held_bytes", (json_int_t)f->held_bytes, "projected_days",
                               f->projected_days));
    }
    for (size_t i = 0; i < st.n_alarms; i++) {
        const ret_alarm_t *a = &st.alarms[i];
        /* An alarm may quote what an attacker sent (an account name tried) */
        json_array_append_new(alarms, json_pack("{ss ss so so so}", "kind", a->kind, "severity",
                                                a->severity, "sources", web_json_text(a->sources),
                                                "message", web_json_text(a->message), "raised",
                                                web_time_json(a->raised_us)));
    }
    ret_storage_free(&st);
    /* The writers' alarms live in memory: a failing index cannot hold them. */
    const web_config_t *c = &r->w->cfg;
    json_t *live = c->live_alarms ? c->live_alarms(c->status_ctx) : NULL;
    size_t i;
    json_t *a;
    json_array_foreach(live, i, a) {
        json_object_set_new(a, "raised", json_null());
        json_array_append(alarms, a);
    }
    json_decref(live);
    web_reply_json(r, 200, json_pack("{sI sI sI sI so so}", "capacity_bytes",
                                     (json_int_t)disk.capacity_bytes, "free_bytes",
                                     (json_int_t)disk.free_bytes, "reserve_bytes",
                                     (json_int_t)disk.reserve_bytes, "exports_bytes",
                                     (json_int_t)disk.exports_bytes, "sources", sources, "alarms",
                                     alarms));
}

/* ---- holds ---- */

/* Case numbers and reasons come from people (vigilctl takes any bytes). */
static json_t *hold_json(const idx_hold_t *h)
{
    return json_pack("{sI so so so so so so so so so* so* so}", "id", (json_int_t)h->id, "case",
                     web_json_text(h->case_no), "reason", web_json_text(h->reason), "created_by",
                     web_json_text(h->created_by), "created", web_time_json(h->created_us),
                     "from", web_time_json(h->from_us), "to", web_time_json(h->to_us), "until",
                     web_time_json(h->until_us), "released", web_time_json(h->released_us),
                     "released_by", h->released_us ? web_json_text(h->released_by) : NULL,
                     "release_reason", h->released_us ? web_json_text(h->release_reason) : NULL,
                     "sources", csv_json(h->sources));
}

/* calls: a hold made for calls lists them ("calls": [id, ...]). */
static json_t *hold_json_calls(web_req_t *r, const idx_hold_t *h)
{
    json_t *o = hold_json(h);
    int64_t *ids = NULL;
    size_t n = 0;
    json_t *arr = json_array();
    if (idx_hold_calls(r->idx, h->id, &ids, &n) == VG_OK) {
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_integer(ids[i]));
    }
    free(ids);
    json_object_set_new(o, "calls", arr);
    return o;
}

/* A hold is shown only to callers who may see every source it covers. */
static int hold_visible(web_req_t *r, const idx_hold_t *h)
{
    char kind[8];
    int ok = 1;
    char *list = vg_strdup(h->sources);
    for (char *save = NULL, *s = strtok_r(list, ",", &save); s && ok;
         s = strtok_r(NULL, ",", &save)) {
        const char *k = web_source_kind(r->cfg, r->idx, s, kind, sizeof(kind));
        ok = k && web_source_visible(&r->who, s, k);
    }
    free(list);
    return ok;
}

void web_h_holds(web_req_t *r)
{
    const char *all = web_query_get(&r->target, "all");
    if (all && strcmp(all, "1") != 0 && strcmp(all, "true") != 0 && strcmp(all, "0") != 0 &&
        strcmp(all, "false") != 0) {
        web_reply_error(r, 400, "invalid_query", "all takes 1, 0, true or false");
        return;
    }
    idx_hold_t *holds = NULL;
    size_t n = 0;
    int show_all = all && (strcmp(all, "1") == 0 || strcmp(all, "true") == 0);
    if (idx_hold_list(r->idx, show_all, r->now_us, &holds, &n) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot list holds");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (hold_visible(r, &holds[i]))
            json_array_append_new(arr, hold_json_calls(r, &holds[i]));
    }
    free(holds);
    web_reply_json(r, 200, json_pack("{so}", "holds", arr));
}

/* Fills names[] from a JSON array of visible source names; answers 404 for
 * one the caller may not see. */
static int hold_sources(web_req_t *r, json_t *arr, const char **names, size_t *n)
{
    size_t i;
    json_t *v;
    char kind[8];
    *n = 0;
    if (json_array_size(arr) == 0 || json_array_size(arr) > MAX_LIST) {
        web_reply_error(r, 400, "invalid_field", "sources must list 1 to %d names", MAX_LIST);
        return VG_EINVAL;
    }
    json_array_foreach(arr, i, v) {
        const char *s = json_string_value(v);
        const char *k = web_source_kind(r->cfg, r->idx, s, kind, sizeof(kind));
        if (!k || !web_source_visible(&r->who, s, k)) {
            web_reply_error(r, 404, "not_found", "no such source '%.64s'", s);
            return VG_ENOTFOUND;
        }
        int dup = 0; /* a name listed twice is held once */
        for (size_t j = 0; j < *n && !dup; j++)
            dup = strcmp(names[j], s) == 0;
        if (!dup)
            names[(*n)++] = s;
    }
    return VG_OK;
}

static int hold_text(web_req_t *r, json_t *body, const char *key, char *dst, size_t size)
{
    const char *v = json_string_value(json_object_get(body, key));
    if (!*v || strlen(v) >= size) {
        web_reply_error(r, 400, "invalid_field", "%s must be 1 to %zu characters", key, size - 1);
        return VG_EINVAL;
    }
    snprintf(dst, size, "%s", v);
    return VG_OK;
}

static int hold_until(json_t *body, idx_hold_t *h)
{
    json_t *until = json_object_get(body, "until");
    if (until && !json_is_null(until))
        web_json_time(until, &h->until_us);
    return VG_OK;
}

static int hold_times(web_req_t *r, json_t *body, idx_hold_t *h)
{
    json_t *until = json_object_get(body, "until");
    web_json_time(json_object_get(body, "from"), &h->from_us);
    web_json_time(json_object_get(body, "to"), &h->to_us);
    if (until && !json_is_null(until))
        web_json_time(until, &h->until_us);
    if (h->from_us >= h->to_us) {
        web_reply_error(r, 400, "invalid_range", "from must be before to");
        return VG_EINVAL;
    }
    return VG_OK;
}

typedef struct {
    idx_hold_t *h;
    const char *const *names;
    size_t n;
    const int64_t *calls; /* calls: the calls the hold is made for */
    size_t n_calls;
} hold_add_t;

static int do_hold_add(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    hold_add_t *c = arg;
    (void)n;
    int rc = idx_hold_add(idx, c->h, c->names, c->n);
    if (rc == VG_OK && c->n_calls)
        rc = idx_hold_call_add(idx, c->h->id, c->calls, c->n_calls);
    if (rc == VG_OK)
        snprintf(rows[0].object, sizeof(rows[0].object), "hold:%lld", (long long)c->h->id);
    return rc;
}

/* calls: adds name to names[] unless it is there (VG_EINVAL when full). */
static int add_name(const char **names, size_t *n, const char *name)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(names[i], name) == 0)
            return VG_OK;
    }
    if (*n == MAX_LIST)
        return VG_EINVAL;
    names[(*n)++] = name;
    return VG_OK;
}

/* calls: "calls": [id, ...] holds each call's interval on its line and on
 * the cameras of the line's desks. One hold has one range: the hull of the
 * calls' intervals (and of from/to when given) over the union of their
 * sources, which holds more than the calls, never less. Each call must be
 * one the caller may see (else 404). call_src keeps the names alive. */
static int hold_calls(web_req_t *r, json_t *arr, idx_hold_t *h, int has_range, const char **names,
                      size_t *n, int64_t *ids, size_t *n_ids, char (*call_src)[64])
{
    size_t i;
    json_t *v;
    idx_call_t *c = vg_malloc(sizeof(*c));
    int rc = VG_OK;
    *n_ids = 0;
    if (json_array_size(arr) > MAX_LIST) {
        web_reply_error(r, 400, "invalid_field", "calls lists at most %d calls", MAX_LIST);
        rc = VG_EINVAL;
        goto cleanup;
    }
    json_array_foreach(arr, i, v) {
        json_int_t id = json_integer_value(v);
        if (id <= 0 || idx_call_get(r->idx, id, c) != VG_OK ||
            !web_has(&r->who, WEB_PERM_CALLS) || !web_source_visible(&r->who, c->source, "audio")) {
            web_reply_error(r, 404, "not_found", "no such call %lld", (long long)id);
            rc = VG_ENOTFOUND;
            goto cleanup;
        }
        int64_t end = c->end_us ? c->end_us : r->now_us;
        if (end <= c->start_us)
            end = c->start_us + 1;
        if (!has_range && *n_ids == 0) {
            h->from_us = c->start_us;
            h->to_us = end;
        }
        h->from_us = c->start_us < h->from_us ? c->start_us : h->from_us;
        h->to_us = end > h->to_us ? end : h->to_us;
        ids[(*n_ids)++] = id;
        snprintf(call_src[i], 64, "%s", c->source);
        rc = add_name(names, n, call_src[i]);
        for (size_t d = 0; rc == VG_OK && d < r->cfg->n_desks; d++) {
            const vg_desk_config_t *desk = &r->cfg->desks[d];
            int has = 0;
            for (size_t k = 0; k < desk->n_lines && !has; k++)
                has = strcmp(desk->lines[k], c->source) == 0;
            for (size_t k = 0; has && rc == VG_OK && k < desk->n_cameras; k++) {
                if (web_source_visible(&r->who, desk->cameras[k], "video"))
                    rc = add_name(names, n, desk->cameras[k]);
            }
        }
        if (rc != VG_OK) {
            web_reply_error(r, 400, "invalid_field", "the calls span more than %d sources",
                            MAX_LIST);
            goto cleanup;
        }
    }

cleanup:
    free(c);
    return rc;
}

void web_h_hold_add(web_req_t *r)
{
    /* calls: with "calls", sources, from and to may be left out */
    static const web_field_t fields[] = {
        {"case", WEB_F_STRING, 1, 0},  {"reason", WEB_F_STRING, 1, 0},
        {"sources", WEB_F_STRINGS, 0, 0}, {"from", WEB_F_TIME, 0, 0},
        {"to", WEB_F_TIME, 0, 0},      {"until", WEB_F_TIME, 0, 1},
        {"calls", WEB_F_INTS, 0, 0},   {NULL, 0, 0, 0}};
    json_t *body = web_req_body(r, fields);
    idx_hold_t h = {0};
    const char *names[MAX_LIST];
    int64_t call_ids[MAX_LIST];
    char call_src[MAX_LIST][64];
    size_t n = 0, n_calls = 0;
    char detail[256], list[160] = "";
    idx_audit_t row;
    if (!body)
        goto cleanup;
    json_t *calls = json_object_get(body, "calls");
    int with_calls = json_array_size(calls) > 0;
    int has_range = json_object_get(body, "from") || json_object_get(body, "to");
    if (!with_calls && (!json_object_get(body, "sources") || !json_object_get(body, "from") ||
                        !json_object_get(body, "to"))) {
        web_reply_error(r, 400, "missing_field", "sources, from and to are required (or calls)");
        goto cleanup;
    }
    if (has_range && (!json_object_get(body, "from") || !json_object_get(body, "to"))) {
        web_reply_error(r, 400, "missing_field", "from and to go together");
        goto cleanup;
    }
    if (hold_text(r, body, "case", h.case_no, sizeof(h.case_no)) != VG_OK ||
        hold_text(r, body, "reason", h.reason, sizeof(h.reason)) != VG_OK ||
        (has_range && hold_times(r, body, &h) != VG_OK) ||
        (!has_range && hold_until(body, &h) != VG_OK) ||
        (json_object_get(body, "sources") &&
         hold_sources(r, json_object_get(body, "sources"), names, &n) != VG_OK) ||
        (with_calls &&
         hold_calls(r, calls, &h, has_range, names, &n, call_ids, &n_calls, call_src) != VG_OK))
        goto cleanup;
    snprintf(h.created_by, sizeof(h.created_by), "%.63s", r->who.actor);
    h.created_us = r->now_us;
    for (size_t i = 0; i < n; i++)
        vg_list_append(list, sizeof(list), names[i]);
    snprintf(detail, sizeof(detail), "case=%.100s sources=%.120s", h.case_no, list);
    web_audit_row(r, &row, NULL, "hold.create", "", h.from_us, h.to_us, "ok", detail);
    hold_add_t change = {&h, names, n, call_ids, n_calls};
    int rc = web_change(r, do_hold_add, &change, &row);
    if (rc == VG_EAUDIT)
        goto cleanup;
    if (rc != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot add the hold");
        goto cleanup;
    }
    idx_hold_get(r->idx, h.id, &h);
    web_reply_json(r, 201, hold_json_calls(r, &h));

cleanup:
    json_decref(body);
}

typedef struct {
    int64_t id;
    const char *by, *reason;
    int64_t at_us;
} hold_release_t;

static int do_hold_release(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    hold_release_t *c = arg;
    (void)rows;
    (void)n;
    return idx_hold_release(idx, c->id, c->by, c->reason, c->at_us);
}

void web_h_hold_release(web_req_t *r)
{
    static const web_field_t fields[] = {{"reason", WEB_F_STRING, 1, 0}, {NULL, 0, 0, 0}};
    int64_t id = 0;
    idx_hold_t h;
    char reason[256], object[48];
    idx_audit_t row;
    json_t *body = NULL;
    if (parse_id(r->params[0], &id) != VG_OK || idx_hold_get(r->idx, id, &h) != VG_OK ||
        !hold_visible(r, &h)) {
        web_reply_error(r, 404, "not_found", "no such hold");
        return;
    }
    body = web_req_body(r, fields);
    if (!body || hold_text(r, body, "reason", reason, sizeof(reason)) != VG_OK)
        goto cleanup;
    snprintf(object, sizeof(object), "hold:%lld", (long long)id);
    web_audit_row(r, &row, NULL, "hold.release", object, h.from_us, h.to_us, "ok", reason);
    hold_release_t change = {id, r->who.actor, reason, r->now_us};
    int rc = web_change(r, do_hold_release, &change, &row);
    if (rc == VG_EAUDIT)
        goto cleanup;
    if (rc == VG_EINVAL) {
        web_reply_error(r, 409, "already_released", "the hold is already released");
        goto cleanup;
    }
    if (rc != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot release the hold");
        goto cleanup;
    }
    idx_hold_get(r->idx, id, &h);
    web_reply_json(r, 200, hold_json_calls(r, &h));

cleanup:
    json_decref(body);
}

void web_h_destruction_log(web_req_t *r)
{
    int64_t from, to;
    idx_destruction_row_t *rows = NULL;
    size_t n = 0;
    if (web_req_range(r, 0, r->now_us + 1, &from, &to) != VG_OK)
        return;
    if (idx_destruction_log(r->idx, from, to, &rows, &n) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot read the destruction log");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const idx_destruction_row_t *d = &rows[i];
        json_array_append_new(
            arr, json_pack("{sI so ss ss sI sI so so}", "run", (json_int_t)d->run_id, "at",
                           web_time_json(d->at_us), "reason", d->reason, "source", d->source,
                           "segments", (json_int_t)d->segments, "bytes", (json_int_t)d->bytes,
                           "from", web_time_json(d->from_us), "to", web_time_json(d->to_us)));
    }
    free(rows);
    web_reply_json(r, 200, json_pack("{so}", "runs", arr));
}

/* ---- users ---- */

static json_t *user_json(const idx_account_t *a)
{
    return json_pack("{ss ss so so}", "name", a->name, "role", a->role, "sources",
                     a->all_sources ? json_null() : csv_json(a->sources), "created",
                     web_time_json(a->created_us));
}

void web_h_users(web_req_t *r)
{
    idx_account_t *users = NULL;
    size_t n = 0;
    if (idx_account_list(r->idx, &users, &n) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot list users");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, user_json(&users[i]));
    free(users);
    web_reply_json(r, 200, json_pack("{so}", "users", arr));
}

/* An account's source list: known source names only. */
static int user_sources(web_req_t *r, json_t *arr, const char **names, size_t *n)
{
    size_t i;
    json_t *v;
    char kind[8];
    *n = 0;
    if (json_array_size(arr) > MAX_LIST) {
        web_reply_error(r, 400, "invalid_field", "at most %d sources", MAX_LIST);
        return VG_EINVAL;
    }
    json_array_foreach(arr, i, v) {
        const char *s = json_string_value(v);
        if (!web_source_kind(r->cfg, r->idx, s, kind, sizeof(kind))) {
            web_reply_error(r, 400, "unknown_source", "no source named '%.64s'", s);
            return VG_EINVAL;
        }
        names[(*n)++] = s;
    }
    return VG_OK;
}

static int check_password(web_req_t *r, const char *pw, char hash[128])
{
    if (strlen(pw) < WEB_PASSWORD_MIN || strlen(pw) > WEB_PASSWORD_MAX) {
        web_reply_error(r, 400, "weak_password", "passwords have %d to %d characters",
                        WEB_PASSWORD_MIN, WEB_PASSWORD_MAX);
        return VG_EINVAL;
    }
    web_hash_begin(r->w);
    int rc = web_password_hash(pw, hash);
    web_hash_end(r->w);
    if (rc != VG_OK)
        web_reply_error(r, 500, "internal", "cannot hash the password");
    return rc;
}

static int check_role(web_req_t *r, const char *role)
{
    unsigned perms;
    if (web_role_perms(role, &perms) != VG_OK) {
        web_reply_error(r, 400, "invalid_field",
                        "role must be security, auditor, investigator, officer or admin");
        return VG_EINVAL;
    }
    return VG_OK;
}

typedef struct {
    idx_account_t *a;
    const char *const *names;
    size_t n;
} user_add_t;

static int do_user_add(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    user_add_t *c = arg;
    (void)rows;
    (void)n;
    return idx_account_add(idx, c->a, c->names, c->n);
}

void web_h_user_add(web_req_t *r)
{
    static const web_field_t fields[] = {
        {"name", WEB_F_STRING, 1, 0}, {"role", WEB_F_STRING, 1, 0},
        {"password", WEB_F_STRING, 1, 0}, {"sources", WEB_F_STRINGS, 0, 1}, {NULL, 0, 0, 0}};
    json_t *body = web_req_body(r, fields);
    idx_account_t a = {0};
    const char *names[MAX_LIST];
    size_t n = 0;
    char object[96], detail[256];
    idx_audit_t row;
    if (!body)
        return;
    const char *name = json_string_value(json_object_get(body, "name"));
    const char *role = json_string_value(json_object_get(body, "role"));
    json_t *sources = json_object_get(body, "sources");
    if (!web_user_name_valid(name)) {
        web_reply_error(r, 400, "invalid_field", "names are [a-z0-9][a-z0-9._-]{0,62}");
        goto cleanup;
    }
    a.all_sources = !sources || json_is_null(sources);
    if (check_role(r, role) != VG_OK ||
        (!a.all_sources && user_sources(r, sources, names, &n) != VG_OK) ||
        check_password(r, json_string_value(json_object_get(body, "password")), a.pwhash) !=
            VG_OK)
        goto cleanup;
    snprintf(a.name, sizeof(a.name), "%s", name);
    snprintf(a.role, sizeof(a.role), "%s", role);
    a.created_us = r->now_us;
    snprintf(object, sizeof(object), "user:%s", name);
    char list[200] = "";
    for (size_t i = 0; i < n; i++)
        vg_list_append(list, sizeof(list), names[i]);
    snprintf(detail, sizeof(detail), "role=%s sources=%.200s", role, a.all_sources ? "all" : list);
    web_audit_row(r, &row, NULL, "user.create", object, 0, 0, "ok", detail);
    user_add_t change = {&a, names, n};
    int rc = web_change(r, do_user_add, &change, &row);
    if (rc == VG_EAUDIT)
        goto cleanup;
    if (rc == VG_EEXIST) {
        web_reply_error(r, 409, "conflict", "a user with this name exists");
        goto cleanup;
    }
    if (rc != VG_OK || idx_account_get(r->idx, name, &a) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot add the user");
        goto cleanup;
    }
    web_reply_json(r, 201, user_json(&a));

cleanup:
    json_decref(body);
}

/* A change to one account, made with its audit row in one transaction.
 * The last-admin rule is checked inside it: two admins demoting each other
 * at once cannot both see the other still there. */
typedef struct {
    const char *name;
    int deleting;
    const char *role, *pwhash; /* NULL: unchanged */
    idx_sources_mode_t mode;
    const char *const *names;
    size_t n;
    int last_admin;            /* set when refused by the rule */
} user_change_t;

static int keeps_an_admin(idx_t *idx, user_change_t *c)
{
    int rc = idx_account_keeps_admin(idx, c->name, c->deleting, c->role);
    if (rc == VG_EBUSY)
        c->last_admin = 1;
    return rc;
}

static int do_user_change(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    user_change_t *c = arg;
    (void)rows;
    (void)n;
    int rc = keeps_an_admin(idx, c);
    if (rc != VG_OK)
        return rc;
    if (c->deleting)
        return idx_account_delete(idx, c->name);
    return idx_account_update(idx, c->name, c->role, c->pwhash, c->mode, c->names, c->n);
}

/* Answers a failed account change (web_change answered VG_EAUDIT). */
static void user_change_failed(web_req_t *r, const user_change_t *c, int rc, const char *what)
{
    if (rc == VG_EAUDIT)
        return;
    if (c->last_admin)
        web_reply_error(r, 409, "last_admin", "this is the last admin account");
    else if (rc == VG_ENOTFOUND)
        web_reply_error(r, 404, "not_found", "no such user");
    else
        web_reply_error(r, 500, "internal", "cannot %s the user", what);
}

static int find_user(web_req_t *r, idx_account_t *a)
{
    if (!web_user_name_valid(r->params[0]) || idx_account_get(r->idx, r->params[0], a) != VG_OK) {
        web_reply_error(r, 404, "not_found", "no such user");
        return VG_ENOTFOUND;
    }
    return VG_OK;
}

void web_h_user_patch(web_req_t *r)
{
    static const web_field_t fields[] = {{"role", WEB_F_STRING, 0, 0},
                                         {"password", WEB_F_STRING, 0, 0},
                                         {"sources", WEB_F_STRINGS, 0, 1},
                                         {NULL, 0, 0, 0}};
    idx_account_t a;
    const char *names[MAX_LIST];
    size_t n = 0;
    char hash[128], object[96], detail[256], list[160] = "";
    idx_audit_t row;
    json_t *body = NULL;
    if (find_user(r, &a) != VG_OK || !(body = web_req_body(r, fields)))
        return;
    const char *role = json_string_value(json_object_get(body, "role"));
    const char *pw = json_string_value(json_object_get(body, "password"));
    json_t *sources = json_object_get(body, "sources");
    idx_sources_mode_t mode = !sources ? IDX_SOURCES_KEEP
                              : json_is_null(sources) ? IDX_SOURCES_ALL
                                                      : IDX_SOURCES_LIST;
    if (!role && !pw && !sources) {
        web_reply_error(r, 400, "missing_field", "give role, password or sources");
        goto cleanup;
    }
    if ((role && check_role(r, role) != VG_OK) ||
        (mode == IDX_SOURCES_LIST && user_sources(r, sources, names, &n) != VG_OK) ||
        (pw && check_password(r, pw, hash) != VG_OK))
        goto cleanup;
    for (size_t i = 0; i < n; i++)
        vg_list_append(list, sizeof(list), names[i]);
    snprintf(object, sizeof(object), "user:%s", a.name);
    snprintf(detail, sizeof(detail), "%s%s%s%s%s%.150s", role ? "role=" : "", role ? role : "",
             pw ? " password" : "", mode != IDX_SOURCES_KEEP ? " sources=" : "",
             mode == IDX_SOURCES_ALL ? "all" : "", mode == IDX_SOURCES_LIST ? list : "");
    web_audit_row(r, &row, NULL, "user.update", object, 0, 0, "ok", detail);
    user_change_t change = {.name = a.name, .role = role, .pwhash = pw ? hash : NULL,
                            .mode = mode, .names = names, .n = n};
    int rc = web_change(r, do_user_change, &change, &row);
    if (rc != VG_OK) {
        user_change_failed(r, &change, rc, "update");
        goto cleanup;
    }
    if (idx_account_get(r->idx, a.name, &a) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot read the user back");
        goto cleanup;
    }
    web_reply_json(r, 200, user_json(&a));

cleanup:
    json_decref(body);
}

void web_h_user_delete(web_req_t *r)
{
    idx_account_t a;
    char object[96];
    idx_audit_t row;
    if (find_user(r, &a) != VG_OK)
        return;
    snprintf(object, sizeof(object), "user:%s", a.name);
    web_audit_row(r, &row, NULL, "user.delete", object, 0, 0, "ok", "");
    user_change_t change = {.name = a.name, .deleting = 1};
    int rc = web_change(r, do_user_change, &change, &row);
    if (rc != VG_OK) {
        user_change_failed(r, &change, rc, "delete");
        return;
    }
    web_reply_json(r, 200, json_pack("{ss}", "deleted", a.name));
}

/* ---- tokens ---- */

static json_t *token_json(const idx_token_t *t)
{
    return json_pack("{sI ss so so so so}", "id", (json_int_t)t->id, "name", t->name,
                     "permissions", csv_json(t->perms), "created_by", web_json_text(t->created_by),
                     "created",
                     web_time_json(t->created_us), "revoked", web_time_json(t->revoked_us));
}

void web_h_tokens(web_req_t *r)
{
    idx_token_t *tokens = NULL;
    size_t n = 0;
    if (idx_token_list(r->idx, &tokens, &n) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot list tokens");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, token_json(&tokens[i]));
    free(tokens);
    web_reply_json(r, 200, json_pack("{so}", "tokens", arr));
}

static int perms_of(web_req_t *r, json_t *arr, unsigned *perms)
{
    size_t i;
    json_t *v;
    *perms = 0;
    json_array_foreach(arr, i, v) {
        unsigned bit = 0;
        const char *name = json_string_value(v);
        if (strchr(name, ',') || web_perms_parse(name, &bit) != VG_OK) {
            web_reply_error(r, 400, "invalid_field", "unknown permission '%.32s'", name);
            return VG_EINVAL;
        }
        *perms |= bit;
    }
    if (!*perms) {
        web_reply_error(r, 400, "invalid_field", "a token needs at least one permission");
        return VG_EINVAL;
    }
    return VG_OK;
}

typedef struct {
    const char *name, *by;
    unsigned perms;
    int64_t now_us;
    char *secret;
    int64_t id;
} token_add_t;

static int do_token_add(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    token_add_t *c = arg;
    (void)n;
    int rc = web_token_create(idx, c->name, c->perms, c->by, c->now_us, c->secret, &c->id);
    if (rc == VG_OK)
        snprintf(rows[0].object, sizeof(rows[0].object), "token:%lld", (long long)c->id);
    return rc;
}

void web_h_token_add(web_req_t *r)
{
    static const web_field_t fields[] = {
        {"name", WEB_F_STRING, 1, 0}, {"permissions", WEB_F_STRINGS, 1, 0}, {NULL, 0, 0, 0}};
    json_t *body = web_req_body(r, fields);
    unsigned perms = 0;
    char secret[WEB_TOKEN_TEXT_MAX], detail[256], plist[128];
    idx_token_t t;
    idx_audit_t row;
    if (!body || perms_of(r, json_object_get(body, "permissions"), &perms) != VG_OK)
        goto cleanup;
    const char *name = json_string_value(json_object_get(body, "name"));
    if (!web_user_name_valid(name)) {
        web_reply_error(r, 400, "invalid_field", "names are [a-z0-9][a-z0-9._-]{0,62}");
        goto cleanup;
    }
    web_perms_format(perms, plist, sizeof(plist));
    snprintf(detail, sizeof(detail), "name=%s permissions=%s", name, plist);
    web_audit_row(r, &row, NULL, "token.create", "", 0, 0, "ok", detail);
    token_add_t change = {.name = name, .by = r->who.actor, .perms = perms,
                          .now_us = r->now_us, .secret = secret};
    int rc = web_change(r, do_token_add, &change, &row);
    if (rc == VG_EAUDIT)
        goto cleanup;
    if (rc != VG_OK || idx_token_get(r->idx, change.id, &t) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot create the token");
        goto cleanup;
    }
    json_t *out = token_json(&t);
    /* The only time the secret leaves vigil: only its hash is stored. */
    json_object_set_new(out, "token", json_string(secret));
    web_reply_json(r, 201, out);

cleanup:
    sodium_memzero(secret, sizeof(secret));
    json_decref(body);
}

typedef struct {
    int64_t id, now_us;
} token_revoke_t;

static int do_token_revoke(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    token_revoke_t *c = arg;
    (void)rows;
    (void)n;
    return idx_token_revoke(idx, c->id, c->now_us);
}

void web_h_token_revoke(web_req_t *r)
{
    int64_t id = 0;
    char object[48];
    idx_audit_t row;
    if (parse_id(r->params[0], &id) != VG_OK) {
        web_reply_error(r, 404, "not_found", "no such token");
        return;
    }
    snprintf(object, sizeof(object), "token:%lld", (long long)id);
    web_audit_row(r, &row, NULL, "token.revoke", object, 0, 0, "ok", "");
    token_revoke_t change = {id, r->now_us};
    int rc = web_change(r, do_token_revoke, &change, &row);
    if (rc == VG_EAUDIT)
        return;
    if (rc == VG_ENOTFOUND) {
        web_reply_error(r, 404, "not_found", "no such token");
        return;
    }
    if (rc == VG_EINVAL) {
        web_reply_error(r, 409, "already_revoked", "the token is already revoked");
        return;
    }
    if (rc != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot revoke the token");
        return;
    }
    web_reply_json(r, 200, json_pack("{sI}", "revoked", (json_int_t)id));
}

/* ---- audit ---- */

/* Rows carry request text, and rows written before it was made valid
 * UTF-8 (or by another writer) may not be: each text goes through
 * web_json_text, so no row can make the list fail or go missing. */
static json_t *audit_json(const idx_audit_t *a)
{
    return json_pack("{sI so so so so so so so so so so so}", "id", (json_int_t)a->id, "ts",
                     web_time_json(a->ts_us), "actor", web_json_text(a->actor), "ip",
                     web_json_text(a->ip), "action", web_json_text(a->action), "object",
                     web_json_text(a->object), "from", web_time_json(a->from_us), "to",
                     web_time_json(a->to_us), "result", web_json_text(a->result), "detail",
                     web_json_text(a->detail), "prev_hash", web_json_text(a->prev_hash), "hash",
                     web_json_text(a->hash));
}

/* RFC 4180: every field quoted, quotes doubled. The file is declared
 * UTF-8, so a row with other bytes (stored by an older version) gets U+FFFD.
 * A cell starting with = + - @ TAB or CR is a formula to a spreadsheet
 * (a hold reason "=HYPERLINK(...)" would run on the auditor's desk): a
 * leading ' keeps it text (OWASP "CSV injection"). */
static void csv_field(char **buf, size_t *len, size_t *cap, const char *text, int last)
{
    char *fixed = NULL;
    if (!vg_utf8_valid(text, strlen(text)))
        text = fixed = vg_utf8_dup(text);
    size_t need = *len + strlen(text) * 2 + 5;
    if (need > *cap) {
        *cap = need * 2;
        *buf = vg_realloc(*buf, *cap);
    }
    char *o = *buf + *len;
    *o++ = '"';
    if (*text && strchr("=+-@\t\r", *text))
        *o++ = '\'';
    for (const char *c = text; *c; c++) {
        if (*c == '"')
            *o++ = '"';
        *o++ = *c;
    }
    *o++ = '"';
    *o++ = last ? '\n' : ',';
    *len = (size_t)(o - *buf);
    free(fixed);
}

static void audit_csv(web_req_t *r, const idx_audit_t *rows, size_t n)
{
    static const char *const head[] = {"id", "ts", "actor", "ip", "action", "object", "from",
                                       "to", "result", "detail", "prev_hash", "hash"};
    size_t len = 0, cap = 4096;
    char *buf = vg_malloc(cap);
    for (size_t i = 0; i < 12; i++)
        csv_field(&buf, &len, &cap, head[i], i == 11);
    for (size_t k = 0; k < n; k++) {
        const idx_audit_t *a = &rows[k];
        char id[24], ts[VG_TIME_TEXT_MAX], from[VG_TIME_TEXT_MAX] = "", to[VG_TIME_TEXT_MAX] = "";
        snprintf(id, sizeof(id), "%lld", (long long)a->id);
        vg_time_format(a->ts_us, ts);
        if (a->from_us)
            vg_time_format(a->from_us, from);
        if (a->to_us)
            vg_time_format(a->to_us, to);
        const char *f[] = {id, ts, a->actor, a->ip, a->action, a->object, from, to, a->result,
                           a->detail, a->prev_hash, a->hash};
        for (size_t i = 0; i < 12; i++)
            csv_field(&buf, &len, &cap, f[i], i == 11);
    }
    web_reply_text(r, 200, "text/csv; charset=utf-8", buf, len);
}

static int audit_filter(web_req_t *r, idx_audit_filter_t *f, int *csv)
{
    const char *format = web_query_get(&r->target, "format");
    const char *limit = web_query_get(&r->target, "limit");
    const char *after = web_query_get(&r->target, "after");
    int64_t v = 0;
    memset(f, 0, sizeof(*f));
    if (web_req_range(r, 0, INT64_MAX, &f->from_us, &f->to_us) != VG_OK)
        return VG_EINVAL;
    if (format && strcmp(format, "csv") != 0 && strcmp(format, "json") != 0) {
        web_reply_error(r, 400, "invalid_query", "format is json or csv");
        return VG_EINVAL;
    }
    *csv = format && strcmp(format, "csv") == 0;
    f->limit = AUDIT_DEFAULT_LIMIT;
    if (limit && (parse_id(limit, &v) != VG_OK || v > AUDIT_MAX_LIMIT)) {
        web_reply_error(r, 400, "invalid_query", "limit is 1 to %d", AUDIT_MAX_LIMIT);
        return VG_EINVAL;
    }
    if (limit)
        f->limit = (size_t)v;
    if (after && parse_id(after, &f->after_id) != VG_OK) {
        web_reply_error(r, 400, "invalid_query", "after is a row id");
        return VG_EINVAL;
    }
    f->actor = web_query_get(&r->target, "actor");
    f->action = web_query_get(&r->target, "action");
    return VG_OK;
}

void web_h_audit(web_req_t *r)
{
    idx_audit_filter_t f;
    int csv = 0;
    idx_audit_t *rows = NULL;
    size_t n = 0;
    char detail[64];
    if (audit_filter(r, &f, &csv) != VG_OK)
        return;
    if (idx_audit_list(r->idx, &f, &rows, &n) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot read the audit trail");
        return;
    }
    snprintf(detail, sizeof(detail), "%zu row(s)%s", n, csv ? " csv" : "");
    web_audit(r, "audit.read", "audit", f.from_us, f.to_us == INT64_MAX ? 0 : f.to_us, "ok",
              detail);
    if (csv) {
        audit_csv(r, rows, n);
    } else {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, audit_json(&rows[i]));
        /* A full page may have a successor: its cursor is the last id. */
        json_t *next = n && n == f.limit ? json_integer(rows[n - 1].id) : json_null();
        web_reply_json(r, 200, json_pack("{so so}", "rows", arr, "next", next));
    }
    free(rows);
}

void web_h_audit_verify(web_req_t *r)
{
    int64_t checked = 0, bad = 0;
    char detail[64];
    if (idx_audit_verify(r->idx, &checked, &bad) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot read the audit trail");
        return;
    }
    snprintf(detail, sizeof(detail), bad ? "broken at row %lld" : "intact (%lld rows)",
             bad ? (long long)bad : (long long)checked);
    web_audit(r, "audit.verify", "audit", 0, 0, bad ? "error" : "ok", detail);
    web_reply_json(r, 200, json_pack("{sb sI so}", "ok", !bad, "rows_checked",
                                     (json_int_t)checked, "first_bad_id",
                                     bad ? json_integer(bad) : json_null()));
}

/* The signed checkpoints of the chain head (index/anchor.c) with the public
 * key that verifies them, for the central point to collect and keep off the
 * appliance: `after` is the last seq it already has. */
void web_h_audit_checkpoints(web_req_t *r)
{
    const char *after = web_query_get(&r->target, "after");
    const char *limit = web_query_get(&r->target, "limit");
    int64_t after_seq = 0, max = AUDIT_DEFAULT_LIMIT;
    idx_checkpoint_t *cps = NULL;
    size_t n = 0;
    vg_key_t key;
    char pub[VG_KEY_PUB_TEXT_MAX], id[VG_KEY_ID_HEX], detail[64];
    if ((after && strcmp(after, "0") != 0 && parse_id(after, &after_seq) != VG_OK) ||
        (limit && (parse_id(limit, &max) != VG_OK || max > AUDIT_MAX_LIMIT))) {
        web_reply_error(r, 400, "invalid_query", "after is a checkpoint seq, limit 1 to %d",
                        AUDIT_MAX_LIMIT);
        return;
    }
    int rc = vg_key_load_public(r->w->cfg.data_dir, &key);
    if (rc != VG_OK && rc != VG_ENOTFOUND) {
        web_reply_error(r, 500, "internal", "cannot read the appliance's public key");
        return;
    }
    int have_key = rc == VG_OK;
    rc = idx_checkpoints_read(r->w->cfg.data_dir, after_seq, (size_t)max, &cps, &n, NULL);
    if (rc != VG_OK && rc != VG_ENOTFOUND) {
        web_reply_error(r, 500, "internal", "cannot read the checkpoints");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        const idx_checkpoint_t *c = &cps[i];
        json_array_append_new(arr, json_pack("{sI sI ss so sI ss ss}", "seq", (json_int_t)c->seq,
                                             "row", (json_int_t)c->row_id, "hash", c->hash,
                                             "ts", web_time_json(c->ts_us), "ts_us",
                                             (json_int_t)c->ts_us, "key_id", c->key_id, "sig",
                                             c->sig));
    }
    free(cps);
    if (have_key) {
        vg_key_public_text(&key, pub, sizeof(pub));
        vg_key_id_hex(&key, id);
    }
    snprintf(detail, sizeof(detail), "%zu checkpoint(s) after %lld", n, (long long)after_seq);
    web_audit(r, "audit.checkpoints", "audit", 0, 0, "ok", detail);
    web_reply_json(r, 200, json_pack("{ss* ss* so}", "public_key", have_key ? pub : NULL,
                                     "key_id", have_key ? id : NULL, "checkpoints", arr));
}
