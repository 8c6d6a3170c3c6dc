/* The call routes (README "Contact centre"): PBX events (POST and PATCH
 * /calls), the CDR import, search, one call with its segments and its
 * desk's cameras, its audio and peaks, desks, a camera's calls, and
 * subject-access requests. SQL is index/calls.c's, numbers and CDR parsing
 * calls/'s; this file checks the request, decides who may see what and
 * writes the audit rows.
 *
 * Who sees a call: the caller needs `calls` and must see its line (the
 * account's source list); a call of a line it may not see is a 404, like a
 * source it may not see. */
#include "web/web_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calls/calls.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define SEARCH_DEFAULT_LIMIT 50
#define SEARCH_MAX_LIMIT 500
#define RANGE_MAX_CALLS 2000
#define CALL_SEGMENTS_MAX 4000
/* notes over the API: the body parser's longest string (4096 bytes) */
#define WEB_CALL_NOTES_MAX 4097

/* ---- shared ---- */

/* A positive decimal id of up to 18 digits. */
static int parse_id(const char *text, int64_t *id)
{
    size_t n = text ? strlen(text) : 0;
    if (n == 0 || n > 18 || strspn(text, "0123456789") != n)
        return VG_EINVAL;
    *id = strtoll(text, NULL, 10);
    return *id > 0 ? VG_OK : VG_EINVAL;
}

static json_t *opt_text(const char *s)
{
    return s && *s ? web_json_text(s) : json_null();
}

static json_t *call_json(const idx_call_t *c)
{
    json_t *tags = json_loads(c->tags[0] ? c->tags : "[]", 0, NULL);
    if (!json_is_array(tags)) {
        json_decref(tags);
        tags = json_array();
    }
    json_t *ann = json_null();
    if (c->ann_state[0]) {
        ann = json_pack("{ss so so so}", "state", c->ann_state, "offset_s",
                        c->ann_offset_us >= 0 ? json_real((double)c->ann_offset_us / 1e6)
                                              : json_null(),
                        "score", c->ann_score >= 0 ? json_real(c->ann_score) : json_null(),
                        "checked", web_time_json(c->ann_checked_us));
    }
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(c->id));
    json_object_set_new(o, "call_id", opt_text(c->call_id));
    json_object_set_new(o, "source", json_string(c->source));
    json_object_set_new(o, "start", web_time_json(c->start_us));
    json_object_set_new(o, "end", web_time_json(c->end_us));
    json_object_set_new(o, "duration_s", c->end_us ? json_real((double)(c->end_us - c->start_us) / 1e6)
                                                   : json_null());
    json_object_set_new(o, "direction", opt_text(c->direction));
    json_object_set_new(o, "caller", opt_text(c->caller));
    json_object_set_new(o, "caller_raw", opt_text(c->caller_raw));
    json_object_set_new(o, "callee", opt_text(c->callee));
    json_object_set_new(o, "callee_raw", opt_text(c->callee_raw));
    json_object_set_new(o, "agent", opt_text(c->agent));
    json_object_set_new(o, "queue", opt_text(c->queue));
    json_object_set_new(o, "account", opt_text(c->account));
    json_object_set_new(o, "disposition", opt_text(c->disposition));
    json_object_set_new(o, "tags", tags);
    json_object_set_new(o, "notes", web_json_text(c->notes));
    json_object_set_new(o, "origin", json_string(c->origin));
    json_object_set_new(o, "announcement", ann);
    json_object_set_new(o, "announcement_pbx", c->ann_pbx < 0 ? json_null()
                                                              : json_boolean(c->ann_pbx));
    json_object_set_new(o, "created", web_time_json(c->created_us));
    json_object_set_new(o, "updated", web_time_json(c->updated_us));
    return o;
}

/* Whether name is in the caller's source list (or it has all sources). */
static int in_sources(const web_principal_t *who, const char *name)
{
    if (who->all_sources)
        return 1;
    size_t n = strlen(name);
    for (const char *p = who->sources; *p;) {
        size_t k = strcspn(p, ",");
        if (k == n && strncmp(p, name, n) == 0)
            return 1;
        p += k + (p[k] == ',');
    }
    return 0;
}

/* Whether the caller may see calls of this line: `calls` and the line in
 * its source list. */
static int line_visible(web_req_t *r, const char *source)
{
    return web_has(&r->who, WEB_PERM_CALLS) && in_sources(&r->who, source);
}

/* Whether the caller may change calls of this line: the PBX's token, or
 * who may see them (annotate: notes and tags). */
static int line_writable(web_req_t *r, const char *source)
{
    return (web_has(&r->who, WEB_PERM_PBX) && in_sources(&r->who, source)) ||
           line_visible(r, source);
}

/* The call of the path if the caller may see it (writing: change it);
 * else 404 (unknown and invisible alike) and NULL. out is the caller's. */
static idx_call_t *visible_call(web_req_t *r, const char *action, idx_call_t *out, int reading)
{
    int64_t id = 0;
    char object[48];
    if (parse_id(r->params[0], &id) != VG_OK) {
        web_reply_error(r, 404, "not_found", "no such call");
        return NULL;
    }
    int rc = idx_call_get(r->idx, id, out);
    if (rc != VG_OK && rc != VG_ENOTFOUND) {
        web_reply_error(r, 500, "internal", "cannot read the index");
        return NULL;
    }
    int ok = rc == VG_OK && (reading ? line_visible(r, out->source) : line_writable(r, out->source));
    if (!ok) {
        if (rc == VG_OK) {
            snprintf(object, sizeof(object), "call:%" PRId64, id);
            web_audit(r, action, object, 0, 0, "denied", "call not visible to this account");
        }
        web_reply_error(r, 404, "not_found", "no such call");
        return NULL;
    }
    return out;
}

/* ---- PBX events ---- */

static const web_field_t event_fields[] = {
    {"call_id", WEB_F_STRING, 0, 1},     {"source", WEB_F_STRING, 0, 0},
    {"start", WEB_F_TIME, 0, 0},         {"end", WEB_F_TIME, 0, 1},
    {"direction", WEB_F_STRING, 0, 1},   {"caller", WEB_F_STRING, 0, 1},
    {"callee", WEB_F_STRING, 0, 1},      {"agent", WEB_F_STRING, 0, 1},
    {"queue", WEB_F_STRING, 0, 1},       {"account", WEB_F_STRING, 0, 1},
    {"disposition", WEB_F_STRING, 0, 1}, {"tags", WEB_F_STRINGS, 0, 1},
    {"notes", WEB_F_STRING, 0, 1},       {"announcement", WEB_F_BOOL, 0, 1},
    {NULL, 0, 0, 0}};

/* Copies a string member (absent or null: "") into dst; 400 when longer. */
static int take_text(web_req_t *r, json_t *body, const char *key, char *dst, size_t size,
                     int *present)
{
    json_t *v = json_object_get(body, key);
    if (present)
        *present = v != NULL;
    dst[0] = '\0';
    if (!v || json_is_null(v))
        return VG_OK;
    const char *s = json_string_value(v);
    if (strlen(s) >= size) {
        web_reply_error(r, 400, "invalid_field", "%s is longer than %zu bytes", key, size - 1);
        return VG_EINVAL;
    }
    for (const char *p = s; *p; p++) {
        /* Notes may hold line breaks; nothing else holds control bytes. */
        if ((unsigned char)*p < 0x20 && !(strcmp(key, "notes") == 0 && (*p == '\n' || *p == '\t'))) {
            web_reply_error(r, 400, "invalid_field", "%s holds control characters", key);
            return VG_EINVAL;
        }
    }
    snprintf(dst, size, "%s", s);
    return VG_OK;
}

static int take_number(web_req_t *r, json_t *body, const char *key, char *num, char *raw,
                       int *present)
{
    if (take_text(r, body, key, raw, IDX_CALL_NUM_MAX, present) != VG_OK)
        return VG_EINVAL;
    num[0] = '\0';
    /* Text that is not a number ("Anonymous") is kept raw, unsearchable. */
    if (raw[0])
        call_number_normalize(raw, num, IDX_CALL_NUM_MAX);
    return VG_OK;
}

/* tags: at most 32 strings of 1 to 64 bytes, stored as a JSON array. */
static int take_tags(web_req_t *r, json_t *body, char *dst, size_t size, int *present)
{
    json_t *v = json_object_get(body, "tags");
    size_t i;
    json_t *e;
    *present = v != NULL;
    snprintf(dst, size, "[]");
    if (!v || json_is_null(v))
        return VG_OK;
    if (json_array_size(v) > 32) {
        web_reply_error(r, 400, "invalid_field", "tags holds at most 32 tags");
        return VG_EINVAL;
    }
    json_array_foreach(v, i, e) {
        size_t n = json_string_length(e);
        if (n == 0 || n > 64) {
            web_reply_error(r, 400, "invalid_field", "a tag is 1 to 64 bytes");
            return VG_EINVAL;
        }
    }
    char *text = json_dumps(v, JSON_COMPACT);
    int fits = text && strlen(text) < size;
    if (fits)
        snprintf(dst, size, "%s", text);
    free(text);
    if (!fits) {
        web_reply_error(r, 400, "invalid_field", "tags are too long");
        return VG_EINVAL;
    }
    return VG_OK;
}

static const char *const directions[] = {"in", "out", "internal", NULL};

/* Reads the event's fields into c; *mask gets the fields present. */
static int take_event(web_req_t *r, json_t *body, idx_call_t *c, unsigned *mask)
{
    int p = 0;
    *mask = 0;
    json_t *start = json_object_get(body, "start");
    json_t *end = json_object_get(body, "end");
    if (start) {
        web_json_time(start, &c->start_us);
        *mask |= IDX_CALL_F_START;
        if (c->start_us <= 0) {
            web_reply_error(r, 400, "invalid_time", "start must be after 1970");
            return VG_EINVAL;
        }
    }
    if (end) {
        c->end_us = 0;
        if (!json_is_null(end))
            web_json_time(end, &c->end_us);
        *mask |= IDX_CALL_F_END;
        if (!json_is_null(end) && c->end_us <= 0) {
            web_reply_error(r, 400, "invalid_time", "end must be after 1970");
            return VG_EINVAL;
        }
    }
    if (take_text(r, body, "direction", c->direction, sizeof(c->direction), &p) != VG_OK)
        return VG_EINVAL;
    if (p) {
        *mask |= IDX_CALL_F_DIRECTION;
        int ok = !c->direction[0];
        for (size_t i = 0; directions[i] && !ok; i++)
            ok = strcmp(directions[i], c->direction) == 0;
        if (!ok) {
            web_reply_error(r, 400, "invalid_field", "direction is in, out or internal");
            return VG_EINVAL;
        }
    }
#define TEXT(key, field, bit)                                                   \
    if (take_text(r, body, key, c->field, sizeof(c->field), &p) != VG_OK)       \
        return VG_EINVAL;                                                       \
    if (p)                                                                      \
        *mask |= (bit);
    TEXT("agent", agent, IDX_CALL_F_AGENT)
    TEXT("queue", queue, IDX_CALL_F_QUEUE)
    TEXT("account", account, IDX_CALL_F_ACCOUNT)
    TEXT("disposition", disposition, IDX_CALL_F_DISPOSITION)
#undef TEXT
    if (take_text(r, body, "notes", c->notes, WEB_CALL_NOTES_MAX, &p) != VG_OK)
        return VG_EINVAL;
    if (p)
        *mask |= IDX_CALL_F_NOTES;
    if (take_number(r, body, "caller", c->caller, c->caller_raw, &p) != VG_OK)
        return VG_EINVAL;
    if (p)
        *mask |= IDX_CALL_F_CALLER;
    if (take_number(r, body, "callee", c->callee, c->callee_raw, &p) != VG_OK)
        return VG_EINVAL;
    if (p)
        *mask |= IDX_CALL_F_CALLEE;
    if (take_tags(r, body, c->tags, sizeof(c->tags), &p) != VG_OK)
        return VG_EINVAL;
    if (p)
        *mask |= IDX_CALL_F_TAGS;
    json_t *ann = json_object_get(body, "announcement");
    if (ann) {
        c->ann_pbx = json_is_null(ann) ? -1 : json_is_true(ann);
        *mask |= IDX_CALL_F_ANN_PBX;
    }
    return VG_OK;
}

/* A PBX event waiting for the group commit (web_change_queued): the
 * request owns it until it ends. */
typedef struct {
    idx_call_t c;      /* the event */
    int64_t id;        /* the call's id once stored */
    int created;
    unsigned mask;     /* PATCH: the fields it changes */
    idx_call_t after;  /* PATCH: the call as committed */
    int have_after;
} event_job_t;

static int do_upsert(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    event_job_t *u = arg;
    (void)n;
    int rc = idx_call_upsert(idx, &u->c, &u->id, &u->created);
    if (rc == VG_OK) {
        snprintf(rows[0].object, sizeof(rows[0].object), "call:%" PRId64, u->id);
        if (!u->created)
            snprintf(rows[0].action, sizeof(rows[0].action), "call.update");
    }
    return rc;
}

/* The line of an event: configured (or known to the index) and audio;
 * anything else is the sender's mistake (400), decided before any write. */
static int event_source(web_req_t *r, const char *name)
{
    char kind[8];
    const char *k = name[0] ? web_source_kind(r->cfg, r->idx, name, kind, sizeof(kind)) : NULL;
    if (!k || !in_sources(&r->who, name)) {
        web_reply_error(r, 400, "unknown_source", "source '%.64s' is not a line of this recorder",
                        name);
        return VG_ENOTFOUND;
    }
    if (strcmp(k, "audio") != 0) {
        web_reply_error(r, 400, "not_audio", "source '%.64s' is a camera, not an audio line",
                        name);
        return VG_EINVAL;
    }
    return VG_OK;
}

/* POST /calls, once the event is committed (or not). */
static void call_add_done(web_req_t *r, int rc)
{
    event_job_t *u = r->change_arg;
    if (rc == VG_EEXIST)
        web_reply_error(r, 409, "call_id_conflict", "call_id %.64s is a call of another line",
                        u->c.call_id);
    else if (rc == VG_EINVAL)
        web_reply_error(r, 400, "invalid_range", "end is before the call's start");
    else if (rc == VG_ENOTFOUND)
        web_reply_error(r, 400, "unknown_source", "source '%.64s' is not registered yet",
                        u->c.source);
    else if (rc != VG_OK)
        web_reply_error(r, rc == VG_EBUSY ? 503 : 500, "internal", "cannot store the call");
    else
        web_reply_json(r, u->created ? 201 : 200,
                       json_pack("{sI sb}", "id", (json_int_t)u->id, "created", u->created));
}

void web_h_call_add(web_req_t *r)
{
    json_t *body = web_req_body(r, event_fields);
    event_job_t *u = vg_calloc(1, sizeof(*u));
    idx_call_t *c = &u->c;
    unsigned mask = 0;
    idx_audit_t row;
    char detail[160];
    idx_call_init(c);
    if (!body)
        goto cleanup;
    if (!json_object_get(body, "source") || !json_object_get(body, "start")) {
        web_reply_error(r, 400, "missing_field", "source and start are required");
        goto cleanup;
    }
    if (take_text(r, body, "call_id", c->call_id, sizeof(c->call_id), NULL) != VG_OK ||
        take_text(r, body, "source", c->source, sizeof(c->source), NULL) != VG_OK ||
        take_event(r, body, c, &mask) != VG_OK || event_source(r, c->source) != VG_OK)
        goto cleanup;
    if (c->end_us && c->end_us < c->start_us) {
        web_reply_error(r, 400, "invalid_range", "end is before start");
        goto cleanup;
    }
    snprintf(c->origin, sizeof(c->origin), "pbx");
    c->created_us = c->updated_us = r->now_us;
    snprintf(detail, sizeof(detail), "source=%s call_id=%.64s", c->source, c->call_id);
    web_audit_row(r, &row, NULL, "call.create", "", c->start_us, c->end_us, "ok", detail);
    /* Many events a second, each durable before its answer: they share the
     * group commit's transactions (one fsync for many). */
    web_change_queued(r, do_upsert, u, free, &row, call_add_done);
    u = NULL;

cleanup:
    json_decref(body);
    free(u);
}

static int do_update(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    event_job_t *u = arg;
    (void)rows;
    (void)n;
    int rc = idx_call_update(idx, u->id, &u->c, u->mask);
    /* The answer is the call as committed: read in the same transaction. */
    if (rc == VG_OK)
        u->have_after = idx_call_get(idx, u->id, &u->after) == VG_OK;
    return rc;
}

/* PATCH /calls/{id}, once the change is committed (or not). */
static void call_patch_done(web_req_t *r, int rc)
{
    event_job_t *u = r->change_arg;
    if (rc == VG_EINVAL)
        web_reply_error(r, 400, "invalid_field", "the change does not fit the call");
    else if (rc == VG_ENOTFOUND)
        web_reply_error(r, 404, "not_found", "no such call");
    else if (rc != VG_OK)
        web_reply_error(r, 500, "internal", "cannot store the change");
    else if (u->have_after)
        web_reply_json(r, 200, call_json(&u->after));
    else
        web_reply_error(r, 404, "not_found", "no such call");
}

void web_h_call_patch(web_req_t *r)
{
    idx_call_t *old = vg_malloc(sizeof(*old));
    event_job_t *u = vg_calloc(1, sizeof(*u));
    idx_call_t *c = &u->c;
    json_t *body = NULL;
    unsigned mask = 0;
    char object[48], detail[160];
    idx_audit_t row;
    idx_call_init(c);
    if (!visible_call(r, "call.update", old, 0))
        goto cleanup;
    if (!(body = web_req_body(r, event_fields)))
        goto cleanup;
    if (json_object_get(body, "source") || json_object_get(body, "call_id")) {
        web_reply_error(r, 400, "invalid_field", "source and call_id cannot change");
        goto cleanup;
    }
    if (take_event(r, body, c, &mask) != VG_OK)
        goto cleanup;
    /* annotate may add notes and tags; everything else is the PBX's. */
    if ((mask & ~(unsigned)(IDX_CALL_F_NOTES | IDX_CALL_F_TAGS)) &&
        !web_has(&r->who, WEB_PERM_PBX)) {
        web_reply_error(r, 403, "forbidden", "with annotate only notes and tags may change");
        goto cleanup;
    }
    if (mask == 0) {
        web_reply_error(r, 400, "missing_field", "nothing to change");
        goto cleanup;
    }
    int64_t start = mask & IDX_CALL_F_START ? c->start_us : old->start_us;
    int64_t end = mask & IDX_CALL_F_END ? c->end_us : old->end_us;
    if (end && end < start) {
        web_reply_error(r, 400, "invalid_range", "end is before start");
        goto cleanup;
    }
    if (mask & IDX_CALL_F_END && !(mask & IDX_CALL_F_START)) {
        /* idx_call_update checks the end against the start it is given */
        c->start_us = old->start_us;
        mask |= IDX_CALL_F_START;
    }
    c->updated_us = r->now_us;
    snprintf(object, sizeof(object), "call:%" PRId64, old->id);
    snprintf(detail, sizeof(detail), "fields=0x%x", mask);
    web_audit_row(r, &row, NULL, "call.update", object, start, end, "ok", detail);
    u->id = old->id;
    u->mask = mask;
    web_change_queued(r, do_update, u, free, &row, call_patch_done);
    u = NULL;

cleanup:
    json_decref(body);
    free(old);
    free(u);
}

/* ---- search ---- */

/* A non-negative number of seconds (digits, optional fraction). */
static int parse_seconds(const char *text, int64_t *us)
{
    char *end = NULL;
    if (!text || !*text || strlen(text) > 12 || strspn(text, "0123456789.") != strlen(text))
        return VG_EINVAL;
    double s = strtod(text, &end);
    if (*end || s < 0 || s > 1e7)
        return VG_EINVAL;
    *us = (int64_t)(s * 1e6);
    return VG_OK;
}

/* "after" is the cursor of the previous page: "START_US.ID". */
static int parse_cursor(const char *text, int64_t *start, int64_t *id)
{
    char a[24], b[24];
    const char *dot = text ? strchr(text, '.') : NULL;
    if (!dot || dot == text || (size_t)(dot - text) >= sizeof(a) || strlen(dot + 1) >= sizeof(b))
        return VG_EINVAL;
    snprintf(a, sizeof(a), "%.*s", (int)(dot - text), text);
    snprintf(b, sizeof(b), "%s", dot + 1);
    if (parse_id(a, start) != VG_OK || parse_id(b, id) != VG_OK)
        return VG_EINVAL;
    return VG_OK;
}

/* The user's words as an FTS5 query: each word a quoted string (quotes
 * doubled), all of them required. FTS5 operators and column filters in the
 * text are thereby plain words, so no input is a syntax error. */
static char *fts_query(const char *text)
{
    web_buf_t b = {0};
    const char *p = text;
    int words = 0;
    while (*p) {
        p += strspn(p, " \t");
        size_t n = strcspn(p, " \t");
        if (!n)
            break;
        web_buf_printf(&b, "%s\"", words++ ? " " : "");
        for (size_t i = 0; i < n; i++) {
            if (p[i] == '"')
                WEB_BUF_LIT(&b, "\"\"");
            else
                web_buf_lit(&b, p + i, 1);
        }
        WEB_BUF_LIT(&b, "\"");
        p += n;
    }
    if (!words) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

typedef struct {
    json_t *arr;
    int64_t last_start, last_id;
} page_t;

static void on_call(void *ctx, const idx_call_t *c)
{
    page_t *p = ctx;
    json_array_append_new(p->arr, call_json(c));
    p->last_start = c->start_us;
    p->last_id = c->id;
}

void web_h_calls(web_req_t *r)
{
    idx_call_query_t q = {0};
    char number[IDX_CALL_NUM_MAX] = "", detail[256];
    char *text = NULL;
    int suffix = 0, more = 0;
    const char *v;
    page_t page = {0};
    if (web_req_range(r, 0, INT64_MAX, &q.from_us, &q.to_us) != VG_OK)
        return;
    if (q.to_us == INT64_MAX)
        q.to_us = 0;
    if ((v = web_query_get(&r->target, "number"))) {
        if (call_number_query(v, number, sizeof(number), &suffix) != VG_OK) {
            web_reply_error(r, 400, "invalid_number",
                            "number takes a phone number (+7 912 345-67-89) or *DIGITS for "
                            "trailing digits");
            return;
        }
        if (suffix)
            q.number_suffix = number;
        else
            q.number = number;
    }
    q.agent = web_query_get(&r->target, "agent");
    q.queue = web_query_get(&r->target, "queue");
    q.account = web_query_get(&r->target, "account");
    q.source = web_query_get(&r->target, "source");
    if ((v = web_query_get(&r->target, "direction"))) {
        int ok = 0;
        for (size_t i = 0; directions[i] && !ok; i++)
            ok = strcmp(directions[i], v) == 0;
        if (!ok) {
            web_reply_error(r, 400, "invalid_direction", "direction is in, out or internal");
            return;
        }
        q.direction = v;
    }
    if (((v = web_query_get(&r->target, "min_seconds")) && parse_seconds(v, &q.min_us) != VG_OK) ||
        ((v = web_query_get(&r->target, "max_seconds")) && parse_seconds(v, &q.max_us) != VG_OK)) {
        web_reply_error(r, 400, "invalid_seconds",
                        "min_seconds and max_seconds take a number of seconds");
        return;
    }
    if ((v = web_query_get(&r->target, "max_seconds")) && q.max_us == 0)
        q.max_us = 1; /* "max_seconds=0": calls of no length only, not "any" */
    q.limit = SEARCH_DEFAULT_LIMIT;
    if ((v = web_query_get(&r->target, "limit"))) {
        int64_t l = 0;
        if (parse_id(v, &l) != VG_OK || l > SEARCH_MAX_LIMIT) {
            web_reply_error(r, 400, "invalid_limit", "limit is 1 to %d", SEARCH_MAX_LIMIT);
            return;
        }
        q.limit = (size_t)l;
    }
    if ((v = web_query_get(&r->target, "after")) &&
        parse_cursor(v, &q.after_start_us, &q.after_id) != VG_OK) {
        web_reply_error(r, 400, "invalid_cursor", "after takes the next cursor of a page");
        return;
    }
    if ((v = web_query_get(&r->target, "text"))) {
        if (strlen(v) > 256) {
            web_reply_error(r, 400, "invalid_text", "text is at most 256 bytes");
            return;
        }
        if (!(text = fts_query(v))) {
            web_reply_error(r, 400, "invalid_text", "text needs at least one word");
            return;
        }
        q.text = text;
    }
    q.sources = r->who.all_sources ? NULL : r->who.sources;
    page.arr = json_array();
    int rc = idx_call_search(r->idx, &q, on_call, &page, &more);
    free(text);
    if (rc == VG_EINVAL) {
        json_decref(page.arr);
        web_reply_error(r, 400, "invalid_text", "the text search cannot be run");
        return;
    }
    if (rc != VG_OK) {
        json_decref(page.arr);
        web_reply_error(r, rc == VG_EBUSY ? 503 : 500, "internal", "cannot search calls");
        return;
    }
    json_t *next = json_null();
    if (more) {
        char cur[48];
        snprintf(cur, sizeof(cur), "%" PRId64 ".%" PRId64, page.last_start, page.last_id);
        next = json_string(cur);
    }
    /* The filters, as asked (the raw target's query), in the row. */
    const char *qs = strchr(r->raw_uri, '?');
    snprintf(detail, sizeof(detail), "%zu call(s); %.200s", json_array_size(page.arr),
             qs ? qs + 1 : "");
    web_audit(r, "call.search", "calls", q.from_us, q.to_us, "ok", detail);
    web_reply_json(r, 200, json_pack("{so so}", "calls", page.arr, "next", next));
}

/* ---- one call ---- */

/* The cameras of the desks whose lines include source. */
static json_t *desk_cameras(web_req_t *r, const char *source)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < r->cfg->n_desks; i++) {
        const vg_desk_config_t *d = &r->cfg->desks[i];
        int has = 0;
        for (size_t k = 0; k < d->n_lines && !has; k++)
            has = strcmp(d->lines[k], source) == 0;
        for (size_t k = 0; has && k < d->n_cameras; k++) {
            if (web_source_visible(&r->who, d->cameras[k], "video"))
                json_array_append_new(arr, json_pack("{ss ss}", "source", d->cameras[k], "desk",
                                                     d->name));
        }
    }
    return arr;
}

/* The call's interval; an open call runs to now. Its times come from the
 * PBX or a CDR file (a lost hang-up leaves a call open for days), so what
 * is read of it is capped like any audio range ([playback]
 * wav_max_seconds, from its start): one request never decodes or loads
 * more than that. */
static void call_interval(web_req_t *r, const idx_call_t *c, int64_t *from, int64_t *to)
{
    int64_t max = (int64_t)r->cfg->playback.wav_max_seconds * 1000000;
    *from = c->start_us;
    *to = c->end_us ? c->end_us : r->now_us;
    if (*to <= *from)
        *to = *from + 1;
    if (max > 0 && *to - *from > max)
        *to = *from + max;
}

void web_h_call(web_req_t *r)
{
    idx_call_t *c = vg_malloc(sizeof(*c));
    idx_segment_t *segs = NULL;
    size_t n = 0;
    int64_t from, to;
    char object[48];
    if (!visible_call(r, "call.view", c, 1) || !web_access_reason(r))
        goto cleanup;
    call_interval(r, c, &from, &to);
    if (idx_segments_in_range(r->idx, c->source, from, to, &segs, &n) != VG_OK)
        n = 0; /* a line removed from the config keeps its calls */
    json_t *o = call_json(c);
    json_t *arr = json_array();
    for (size_t i = 0; i < n && i < CALL_SEGMENTS_MAX; i++)
        json_array_append_new(arr, json_pack("{sI so so sI ss ss}", "id", (json_int_t)segs[i].id,
                                             "start", web_time_json(segs[i].start_us), "end",
                                             web_time_json(segs[i].end_us), "bytes",
                                             (json_int_t)segs[i].bytes, "sha256", segs[i].sha256,
                                             "codecs", segs[i].codecs));
    json_object_set_new(o, "segments", arr);
    json_object_set_new(o, "cameras", desk_cameras(r, c->source));
    snprintf(object, sizeof(object), "call:%" PRId64, c->id);
    web_audit(r, "call.view", object, from, to, "ok", c->source);
    web_reply_json(r, 200, o);

cleanup:
    free(segs);
    free(c);
}

void web_h_call_audio(web_req_t *r)
{
    idx_call_t *c = vg_malloc(sizeof(*c));
    int64_t from, to;
    char object[48];
    if (!visible_call(r, "call.listen", c, 1) || !web_access_reason(r))
        goto cleanup;
    call_interval(r, c, &from, &to);
    snprintf(object, sizeof(object), "call:%" PRId64, c->id);
    snprintf(r->stream_sources, sizeof(r->stream_sources), "%s", c->source);
    snprintf(r->stream_object, sizeof(r->stream_object), "%s", object);
    /* One row per listen: the request for the WAV's first bytes writes
     * call.listen; Range continuations a player sends while seeking are
     * counted into the minute's aggregated row instead. */
    web_wav_serve(r, c->source, from, to, "call.listen", object, 0);

cleanup:
    free(c);
}

void web_h_call_peaks(web_req_t *r)
{
    idx_call_t *c = vg_malloc(sizeof(*c));
    int64_t from, to;
    if (!visible_call(r, "call.peaks", c, 1) || !web_access_reason(r))
        goto cleanup;
    call_interval(r, c, &from, &to);
    web_peaks_serve(r, c->source, from, to, "call.peaks");

cleanup:
    free(c);
}

/* ---- desks and a camera's calls ---- */

static json_t *names_json(char **names, size_t n, web_req_t *r, const char *kind)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (web_source_visible(&r->who, names[i], kind))
            json_array_append_new(arr, json_string(names[i]));
    }
    return arr;
}

void web_h_desks(web_req_t *r)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < r->cfg->n_desks; i++) {
        const vg_desk_config_t *d = &r->cfg->desks[i];
        json_array_append_new(arr, json_pack("{ss so so}", "name", d->name, "lines",
                                             names_json(d->lines, d->n_lines, r, "audio"),
                                             "cameras",
                                             names_json(d->cameras, d->n_cameras, r, "video")));
    }
    web_reply_json(r, 200, json_pack("{so}", "desks", arr));
}

typedef struct {
    json_t *arr;
    size_t n;
} marks_t;

static void on_mark(void *ctx, const idx_call_t *c)
{
    marks_t *m = ctx;
    if (m->n++ >= RANGE_MAX_CALLS)
        return;
    json_array_append_new(m->arr,
                          json_pack("{sI ss so so so so so so}", "id", (json_int_t)c->id, "line",
                                    c->source, "start", web_time_json(c->start_us), "end",
                                    web_time_json(c->end_us), "direction", opt_text(c->direction),
                                    "caller", opt_text(c->caller), "callee", opt_text(c->callee),
                                    "agent", opt_text(c->agent)));
}

/* GET /sources/{name}/calls: the calls of the lines of every desk this
 * camera belongs to (a line's own calls when name is a line), as timeline
 * markers. */
void web_h_source_calls(web_req_t *r)
{
    char kind[8], object[96];
    int64_t from, to;
    const char *name = r->params[0];
    const char *k = web_source_kind(r->cfg, r->idx, name, kind, sizeof(kind));
    if (!k || !web_source_visible(&r->who, name, k)) {
        web_reply_error(r, 404, "not_found", "no such source");
        return;
    }
    if (web_req_range(r, r->now_us - 86400LL * 1000000, r->now_us, &from, &to) != VG_OK)
        return;
    marks_t m = {json_array(), 0};
    const char *lines[IDX_LIST_MAX];
    size_t n_lines = 0;
    if (strcmp(k, "audio") == 0)
        lines[n_lines++] = name;
    for (size_t i = 0; i < r->cfg->n_desks; i++) {
        const vg_desk_config_t *d = &r->cfg->desks[i];
        int has = 0;
        for (size_t c = 0; c < d->n_cameras && !has; c++)
            has = strcmp(d->cameras[c], name) == 0;
        for (size_t l = 0; has && l < d->n_lines && n_lines < IDX_LIST_MAX; l++) {
            int dup = 0;
            for (size_t j = 0; j < n_lines && !dup; j++)
                dup = strcmp(lines[j], d->lines[l]) == 0;
            if (!dup)
                lines[n_lines++] = d->lines[l];
        }
    }
    for (size_t i = 0; i < n_lines; i++) {
        if (!line_visible(r, lines[i]))
            continue;
        if (idx_call_in_range(r->idx, lines[i], from, to, RANGE_MAX_CALLS, on_mark, &m) != VG_OK) {
            json_decref(m.arr);
            web_reply_error(r, 500, "internal", "cannot read the calls");
            return;
        }
    }
    snprintf(object, sizeof(object), "source:%s", name);
    char detail[48];
    snprintf(detail, sizeof(detail), "%zu call(s)", json_array_size(m.arr));
    web_audit(r, "call.search", object, from, to, "ok", detail);
    web_reply_json(r, 200, json_pack("{ss so so so}", "source", name, "from", web_time_json(from),
                                     "to", web_time_json(to), "calls", m.arr));
}

/* ---- the CDR import ---- */

/* The import's query and Content-Type: VG_OK with *as_utc, or answered. */
static int import_params(web_req_t *r, int *as_utc)
{
    const char *ct = web_req_header(r, "Content-Type");
    const char *utc = web_query_get(&r->target, "utc");
    if (!ct || (strncmp(ct, "text/csv", 8) != 0 && strncmp(ct, "text/plain", 10) != 0)) {
        web_reply_error(r, 415, "unsupported_media_type", "send Master.csv as text/csv");
        return VG_EINVAL;
    }
    if (utc && strcmp(utc, "1") != 0 && strcmp(utc, "0") != 0 && strcmp(utc, "true") != 0 &&
        strcmp(utc, "false") != 0) {
        web_reply_error(r, 400, "invalid_query", "utc takes 1, 0, true or false");
        return VG_EINVAL;
    }
    *as_utc = utc && (strcmp(utc, "1") == 0 || strcmp(utc, "true") == 0);
    const char *format = web_query_get(&r->target, "format");
    if (format && strcmp(format, "asterisk-csv") != 0) {
        web_reply_error(r, 400, "invalid_format", "format takes asterisk-csv");
        return VG_EINVAL;
    }
    return VG_OK;
}

static void import_failed(web_req_t *r, int rc)
{
    web_audit(r, "calls.import", "calls", 0, 0, "error", "the index refused the import");
    web_reply_error(r, rc == VG_EBUSY ? 503 : 500, "internal",
                    "the import stopped: the index failed (rows already committed stay; "
                    "importing the file again merges them)");
}

void web_call_import_start(web_req_t *r)
{
    int as_utc = 0;
    if (import_params(r, &as_utc) != VG_OK)
        return;
    int rc = web_import_open(r, as_utc, &r->import);
    if (rc != VG_OK)
        import_failed(r, rc);
}

/* The body has been imported by its worker (import.c) while it arrived;
 * a request without a body (or one given whole, web_dispatch) is
 * imported here. */
void web_h_call_import(web_req_t *r)
{
    call_import_t *im = NULL;
    call_import_report_t *rep = vg_calloc(1, sizeof(*rep));
    char detail[160];
    int as_utc = 0, rc = VG_OK;
    if (r->import) {
        rc = web_import_result(r->import, rep);
        /* Done: its thread and connection go, and the next import may
         * start, before this answer leaves (a client that waits for it
         * can start another at once). */
        web_import_free(r->import);
        r->import = NULL;
        web_csv_release(r);
    } else if (import_params(r, &as_utc) != VG_OK) {
        goto cleanup;
    } else {
        rc = call_import_begin(r->idx, r->cfg, as_utc, r->cfg->http.timezone, r->now_us, &im);
        if (rc == VG_OK) {
            idx_audit_t row;
            web_audit_row(r, &row, NULL, "calls.import", "calls", 0, 0, "ok", "");
            call_import_audit(im, &row);
            rc = call_import_feed(im, r->body ? r->body : "", r->body_len);
        }
        if (rc == VG_OK) {
            rc = call_import_end(im, rep);
            im = NULL;
        }
    }
    if (rc != VG_OK) {
        import_failed(r, rc);
        goto cleanup;
    }
    snprintf(detail, sizeof(detail),
             "imported=%" PRId64 " merged=%" PRId64 " unmatched=%" PRId64 " bad=%" PRId64,
             rep->imported, rep->merged, rep->unmatched, rep->bad);
    web_audit(r, "calls.import", "calls", 0, 0, "ok", detail);
    char *text = call_import_report_json(rep);
    web_reply_text(r, 200, "application/json", text, strlen(text));
cleanup:
    call_import_abort(im);
    free(rep);
}

/* ---- subject-access requests ---- */

typedef struct {
    idx_export_t *e;
} subject_add_t;

static int do_subject_add(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    subject_add_t *s = arg;
    (void)n;
    int rc = idx_export_add(idx, s->e);
    if (rc == VG_OK)
        snprintf(rows[0].detail + strlen(rows[0].detail),
                 sizeof(rows[0].detail) - strlen(rows[0].detail), " export=%" PRId64, s->e->id);
    return rc;
}

typedef struct {
    char list[IDX_LIST_TEXT_MAX];
    size_t n;
} lines_t;

static void on_subject_call(void *ctx, const idx_call_t *c)
{
    lines_t *l = ctx;
    l->n++;
    size_t k = strlen(c->source), len = strlen(l->list);
    for (const char *p = l->list; *p;) {
        size_t m = strcspn(p, ",");
        if (m == k && strncmp(p, c->source, k) == 0)
            return;
        p += m + (p[m] == ',');
    }
    if (len + k + 2 < sizeof(l->list))
        snprintf(l->list + len, sizeof(l->list) - len, "%s%s", len ? "," : "", c->source);
}

/* POST /subject-requests {"number","from","to","reason"}: an export job
 * (playback/exporter.c) whose bundle is every call of the number, built
 * when it runs (calls/subject.c). Admin, or the officer role (audit). */
void web_h_subject_request(web_req_t *r)
{
    static const web_field_t fields[] = {
        {"number", WEB_F_STRING, 1, 0}, {"from", WEB_F_TIME, 1, 0},
        {"to", WEB_F_TIME, 1, 0},       {"reason", WEB_F_STRING, 1, 0},
        {NULL, 0, 0, 0}};
    pb_exporter_t *x = r->w->cfg.exporter;
    json_t *body = NULL;
    idx_export_t *e = vg_calloc(1, sizeof(*e));
    lines_t *lines = vg_calloc(1, sizeof(*lines));
    char number[IDX_CALL_NUM_MAX], object[96], detail[256];
    int suffix = 0, reserved = 0;
    if (!x) {
        web_reply_error(r, 503, "unavailable", "exports are not available on this server");
        goto cleanup;
    }
    if (!(body = web_req_body(r, fields)))
        goto cleanup;
    const char *num = json_string_value(json_object_get(body, "number"));
    if (call_number_query(num, number, sizeof(number), &suffix) != VG_OK || suffix) {
        web_reply_error(r, 400, "invalid_number", "number takes a phone number such as "
                                                  "+7 912 345-67-89");
        goto cleanup;
    }
    web_json_time(json_object_get(body, "from"), &e->from_us);
    web_json_time(json_object_get(body, "to"), &e->to_us);
    if (e->from_us >= e->to_us) {
        web_reply_error(r, 400, "invalid_range", "from must be before to");
        goto cleanup;
    }
    if (take_text(r, body, "reason", e->reason, sizeof(e->reason), NULL) != VG_OK)
        goto cleanup;
    if (!e->reason[0]) {
        web_reply_error(r, 400, "invalid_field", "reason must not be empty");
        goto cleanup;
    }
    /* The lines involved now, for the job's listing (the bundle itself is
     * searched again when it runs). */
    idx_call_query_t q = {.from_us = e->from_us, .to_us = e->to_us, .number = number,
                          .limit = 1000};
    if (idx_call_search(r->idx, &q, on_subject_call, lines, NULL) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot search the calls");
        goto cleanup;
    }
    if (pb_exporter_reserve(x) != VG_OK) {
        snprintf(r->retry_after, sizeof(r->retry_after), "30");
        web_reply_error(r, 503, "busy", "too many exports are queued; try again later");
        goto cleanup;
    }
    reserved = 1;
    snprintf(e->owner, sizeof(e->owner), "%s", r->who.actor);
    snprintf(e->sources, sizeof(e->sources), "%s", lines->list);
    snprintf(e->case_no, sizeof(e->case_no), "subject-access %s", number);
    snprintf(e->subject, sizeof(e->subject), "%s", number);
    e->created_us = r->now_us;
    snprintf(object, sizeof(object), "number:%s", number);
    snprintf(detail, sizeof(detail), "reason=%.150s calls=%zu", e->reason, lines->n);
    idx_audit_t row;
    web_audit_row(r, &row, NULL, "subject.request", object, e->from_us, e->to_us, "ok", detail);
    subject_add_t change = {e};
    int rc = web_change(r, do_subject_add, &change, &row);
    if (rc == VG_EAUDIT)
        goto cleanup;
    if (rc != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot queue the request");
        goto cleanup;
    }
    pb_exporter_submit(x, e->id);
    reserved = 0;
    web_reply_json(r, 202, json_pack("{sI ss ss sI so}", "id", (json_int_t)e->id, "state",
                                     "queued", "number", number, "calls", (json_int_t)lines->n,
                                     "export", json_sprintf("/api/v1/exports/%" PRId64, e->id)));

cleanup:
    if (reserved)
        pb_exporter_unreserve(x);
    json_decref(body);
    free(lines);
    free(e);
}
