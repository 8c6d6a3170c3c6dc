/* Evidence export routes: POST /exports queues a job (playback/exporter.c
 * builds the bundle on its own thread), GET lists and shows jobs, download
 * serves the finished zip with Range, DELETE removes it. A job is shown to
 * its owner, and to callers with admin or audit; only the owner or an admin
 * may download or delete it. Creating, downloading and deleting are one
 * audit row each. README "Evidence export". */
#include "web/web_private.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

/* The longest range one export may cover: a day of 16 sources is already a
 * large bundle; longer cases are exported in parts. */
#define MAX_RANGE_US (24LL * 3600 * 1000000)
#define RETRY_AFTER_S 30

static json_t *list_json(const char *csv)
{
    json_t *arr = json_array();
    char buf[IDX_LIST_TEXT_MAX];
    snprintf(buf, sizeof(buf), "%s", csv);
    for (char *save = NULL, *s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save))
        json_array_append_new(arr, json_string(s));
    return arr;
}

static json_t *export_json(const idx_export_t *e)
{
    int done = strcmp(e->state, "done") == 0;
    return json_pack("{sI ss sf sI so* so so so so so so so so so* so* so* so*}", "id",
                     (json_int_t)e->id, "state", e->state, "progress", e->progress, "bytes",
                     (json_int_t)e->bytes, "error", e->error[0] ? web_json_text(e->error) : NULL,
                     "sources", list_json(e->sources), "from", web_time_json(e->from_us), "to",
                     web_time_json(e->to_us), "case", web_json_text(e->case_no), "reason",
                     web_json_text(e->reason), "owner", web_json_text(e->owner), "created",
                     web_time_json(e->created_us), "finished", web_time_json(e->finished_us),
                     "hold_id", e->hold_id ? json_integer(e->hold_id) : NULL, "sha256",
                     done ? json_string(e->sha256) : NULL, "download",
                     done ? json_sprintf("/api/v1/exports/%" PRId64 "/download", e->id) : NULL,
                     "subject", e->subject[0] ? json_string(e->subject) : NULL);
}

static int sees_all(const web_req_t *r)
{
    return web_has(&r->who, WEB_PERM_ADMIN | WEB_PERM_AUDIT);
}

static int is_owner(const web_req_t *r, const idx_export_t *e)
{
    return strcmp(e->owner, r->who.actor) == 0;
}

static pb_exporter_t *exporter(web_req_t *r)
{
    pb_exporter_t *x = r->w->cfg.exporter;
    if (!x)
        web_reply_error(r, 503, "unavailable", "exports are not available on this server");
    return x;
}

/* The job named in the path if the caller may see it; else 404 (unknown and
 * not-visible look the same). */
static int find_export(web_req_t *r, idx_export_t *e)
{
    char *end = NULL;
    errno = 0;
    long long id = strtoll(r->params[0], &end, 10);
    if (errno || !end || *end || id <= 0 || idx_export_get(r->idx, id, e) != VG_OK ||
        (!is_owner(r, e) && !sees_all(r))) {
        web_reply_error(r, 404, "not_found", "no such export");
        return VG_ENOTFOUND;
    }
    return VG_OK;
}

void web_h_exports(web_req_t *r)
{
    idx_export_t *rows = NULL;
    size_t n = 0;
    if (idx_export_list(r->idx, sees_all(r) ? NULL : r->who.actor, &rows, &n) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot list exports");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, export_json(&rows[i]));
    free(rows);
    web_reply_json(r, 200, json_pack("{so}", "exports", arr));
}

void web_h_export_get(web_req_t *r)
{
    idx_export_t e;
    if (find_export(r, &e) == VG_OK)
        web_reply_json(r, 200, export_json(&e));
}

/* ---- POST /exports ---- */

/* Case numbers and reasons go into the manifest, the audit trail and a
 * file name: printable text only. */
static int text_field(web_req_t *r, json_t *body, const char *key, char *dst, size_t size)
{
    const char *v = json_string_value(json_object_get(body, key));
    size_t len = v ? strlen(v) : 0;
    if (len == 0 || len >= size || len != json_string_length(json_object_get(body, key))) {
        web_reply_error(r, 400, "invalid_field", "%s must be 1 to %zu bytes of text", key,
                        size - 1);
        return VG_EINVAL;
    }
    for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            web_reply_error(r, 400, "invalid_field", "%s must not hold control characters", key);
            return VG_EINVAL;
        }
    }
    snprintf(dst, size, "%s", v);
    return VG_OK;
}

/* Every source visible (else 404 for the whole request, unknown or not),
 * readable by the caller's permissions, listed once, with something
 * recorded in the range (else 422). */
static int export_sources(web_req_t *r, json_t *arr, int64_t from, int64_t to, const char **names,
                          size_t *n)
{
    size_t i;
    json_t *v;
    char kind[8];
    *n = 0;
    if (json_array_size(arr) == 0 || json_array_size(arr) > PB_BUNDLE_MAX_SOURCES) {
        web_reply_error(r, 400, "invalid_field", "sources must list 1 to %d names",
                        PB_BUNDLE_MAX_SOURCES);
        return VG_EINVAL;
    }
    json_array_foreach(arr, i, v) {
        const char *s = json_string_value(v);
        const char *k = web_source_kind(r->cfg, r->idx, s, kind, sizeof(kind));
        if (!k || !web_source_visible(&r->who, s, k)) {
            if (k) {
                char object[96];
                snprintf(object, sizeof(object), "source:%.80s", s);
                web_audit(r, "export", object, from, to, "denied",
                          "source not visible to this account");
            }
            web_reply_error(r, 404, "not_found", "no such source '%.64s'", s);
            return VG_ENOTFOUND;
        }
        unsigned need = strcmp(k, "audio") == 0 ? WEB_PERM_CALLS : WEB_PERM_PLAYBACK;
        if (!web_has(&r->who, need)) {
            web_reply_error(r, 403, "forbidden", "your account may not read '%.64s'", s);
            return VG_EINVAL;
        }
        for (size_t j = 0; j < *n; j++) {
            if (strcmp(names[j], s) == 0) {
                web_reply_error(r, 400, "invalid_field", "source '%.64s' is listed twice", s);
                return VG_EINVAL;
            }
        }
        names[(*n)++] = s;
    }
    for (i = 0; i < *n; i++) {
        idx_segment_t *segs = NULL;
        size_t count = 0;
        int rc = idx_segments_in_range(r->idx, names[i], from, to, &segs, &count);
        free(segs);
        if (rc != VG_OK && rc != VG_ENOTFOUND) {
            web_reply_error(r, 500, "internal", "cannot read the index");
            return rc;
        }
        if (count == 0) {
            web_reply_error(r, 422, "no_recording", "nothing of '%.64s' is recorded in that range",
                            names[i]);
            return VG_ENOTFOUND;
        }
    }
    return VG_OK;
}

typedef struct {
    idx_export_t *e;
    idx_hold_t *hold; /* NULL: no hold */
    const char *const *names;
    size_t n;
} export_add_t;

static int do_export_add(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    export_add_t *c = arg;
    int rc = VG_OK;
    if (c->hold) {
        if ((rc = idx_hold_add(idx, c->hold, c->names, c->n)) != VG_OK)
            return rc;
        c->e->hold_id = c->hold->id;
        snprintf(rows[1].object, sizeof(rows[1].object), "hold:%" PRId64, c->hold->id);
    }
    if ((rc = idx_export_add(idx, c->e)) != VG_OK)
        return rc;
    char with_id[sizeof(rows[0].detail)];
    snprintf(with_id, sizeof(with_id), "id=%" PRId64 " %.200s", c->e->id, rows[0].detail);
    snprintf(rows[0].detail, sizeof(rows[0].detail), "%s", with_id);
    (void)n;
    return VG_OK;
}

void web_h_export_add(web_req_t *r)
{
    static const web_field_t fields[] = {
        {"sources", WEB_F_STRINGS, 1, 0}, {"from", WEB_F_TIME, 1, 0},
        {"to", WEB_F_TIME, 1, 0},         {"case", WEB_F_STRING, 1, 0},
        {"reason", WEB_F_STRING, 1, 0},   {"hold", WEB_F_BOOL, 0, 0},
        {NULL, 0, 0, 0}};
    pb_exporter_t *x = exporter(r);
    json_t *body = x ? web_req_body(r, fields) : NULL;
    idx_export_t e;
    idx_hold_t hold;
    const char *names[PB_BUNDLE_MAX_SOURCES];
    size_t n = 0;
    int reserved = 0;
    memset(&e, 0, sizeof(e));
    memset(&hold, 0, sizeof(hold));
    if (!body)
        goto cleanup;
    web_json_time(json_object_get(body, "from"), &e.from_us);
    web_json_time(json_object_get(body, "to"), &e.to_us);
    if (e.from_us >= e.to_us) {
        web_reply_error(r, 400, "invalid_range", "from must be before to");
        goto cleanup;
    }
    if (e.to_us - e.from_us > MAX_RANGE_US) {
        web_reply_error(r, 400, "invalid_range", "an export covers at most 24 hours");
        goto cleanup;
    }
    int want_hold = json_is_true(json_object_get(body, "hold"));
    if (text_field(r, body, "case", e.case_no, sizeof(e.case_no)) != VG_OK ||
        text_field(r, body, "reason", e.reason, sizeof(e.reason)) != VG_OK)
        goto cleanup;
    if (want_hold && !web_has(&r->who, WEB_PERM_HOLD)) {
        web_reply_error(r, 403, "forbidden", "your account may not put recordings on hold");
        goto cleanup;
    }
    if (export_sources(r, json_object_get(body, "sources"), e.from_us, e.to_us, names, &n) !=
        VG_OK)
        goto cleanup;
    if (pb_exporter_reserve(x) != VG_OK) {
        snprintf(r->retry_after, sizeof(r->retry_after), "%d", RETRY_AFTER_S);
        web_reply_error(r, 503, "busy", "too many exports are queued; try again later");
        goto cleanup;
    }
    reserved = 1;
    char list[IDX_LIST_TEXT_MAX] = "", object[192], detail[256];
    for (size_t i = 0; i < n; i++)
        vg_list_append(list, sizeof(list), names[i]);
    snprintf(e.owner, sizeof(e.owner), "%s", r->who.actor);
    snprintf(e.sources, sizeof(e.sources), "%s", list);
    e.created_us = r->now_us;
    idx_audit_t rows[2];
    snprintf(object, sizeof(object), "sources:%.180s", list);
    snprintf(detail, sizeof(detail), "case=%.80s reason=%.120s%s", e.case_no, e.reason,
             want_hold ? " hold" : "");
    web_audit_row(r, &rows[0], NULL, "export", object, e.from_us, e.to_us, "ok", detail);
    if (want_hold) {
        snprintf(hold.case_no, sizeof(hold.case_no), "%s", e.case_no);
        snprintf(hold.reason, sizeof(hold.reason), "%s", e.reason);
        snprintf(hold.created_by, sizeof(hold.created_by), "%.63s", r->who.actor);
        hold.created_us = r->now_us;
        hold.from_us = e.from_us;
        hold.to_us = e.to_us;
        snprintf(detail, sizeof(detail), "case=%.100s sources=%.120s", hold.case_no, list);
        web_audit_row(r, &rows[1], NULL, "hold.create", "", hold.from_us, hold.to_us, "ok",
                      detail);
    }
    export_add_t change = {&e, want_hold ? &hold : NULL, names, n};
    int rc = idx_audited_change(r->idx, do_export_add, &change, rows, want_hold ? 2 : 1);
    if (rc == VG_EAUDIT) {
        web_reply_error(r, 500, "audit_failed",
                        "the export could not be recorded, so it was not made; try again");
        goto cleanup;
    }
    if (rc != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot queue the export");
        goto cleanup;
    }
    pb_exporter_submit(x, e.id);
    reserved = 0;
    web_reply_json(r, 202, json_pack("{sI ss so*}", "id", (json_int_t)e.id, "state", "queued",
                                     "hold_id", e.hold_id ? json_integer(e.hold_id) : NULL));

cleanup:
    if (reserved)
        pb_exporter_unreserve(x);
    json_decref(body);
}

/* ---- download and delete ---- */

void web_h_export_download(web_req_t *r)
{
    idx_export_t e;
    char object[64], name[160];
    if (find_export(r, &e) != VG_OK)
        return;
    snprintf(object, sizeof(object), "export:%" PRId64, e.id);
    if (!is_owner(r, &e) && !web_has(&r->who, WEB_PERM_ADMIN)) {
        web_audit(r, "export.download", object, e.from_us, e.to_us, "denied", "not the owner");
        web_reply_error(r, 403, "forbidden", "only its owner or an admin may download an export");
        return;
    }
    if (strcmp(e.state, "done") != 0) {
        web_reply_error(r, 409, "not_ready", "the export is %s", e.state);
        return;
    }
    char *path = vg_asprintf("%s/%s", r->w->cfg.data_dir, e.path);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    free(path);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        web_reply_error(r, 410, "gone", "the export's file is gone");
        return;
    }
    char etag[72];
    uint64_t first = 0, len = 0;
    snprintf(etag, sizeof(etag), "\"%s\"", e.sha256);
    int status = web_ranged(r, (uint64_t)st.st_size, etag, &first, &len);
    if (!status) {
        close(fd);
        return;
    }
    char detail[192];
    snprintf(detail, sizeof(detail), "case=%.100s bytes=%" PRIu64 "-%" PRIu64, e.case_no, first,
             first + len);
    web_audit(r, "export.download", object, e.from_us, e.to_us, "ok", detail);
    /* The file name names the case; web_reply_disposition makes it safe. */
    snprintf(name, sizeof(name), "vigil-export-%" PRId64 "-%.60s.zip", e.id, e.case_no);
    web_reply_disposition(r, name);
    /* A large bundle streams for minutes: it ends if the caller loses a
     * source it carries (server.c's guard). */
    /* calls: a subject-access bundle belongs to who asked for it (an
     * officer sees no source): no source of it is re-checked. */
    if (!e.subject[0])
        snprintf(r->stream_sources, sizeof(r->stream_sources), "%s", e.sources);
    snprintf(r->stream_object, sizeof(r->stream_object), "%s", object);
    web_reply_file(r, status, "application/zip", fd, first, len);
}

static int do_export_delete(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    (void)rows;
    (void)n;
    return idx_export_delete(idx, *(const int64_t *)arg);
}

void web_h_export_delete(web_req_t *r)
{
    idx_export_t e;
    char object[64], detail[192];
    pb_exporter_t *x = exporter(r);
    if (!x || find_export(r, &e) != VG_OK)
        return;
    snprintf(object, sizeof(object), "export:%" PRId64, e.id);
    if (!is_owner(r, &e) && !web_has(&r->who, WEB_PERM_ADMIN)) {
        web_audit(r, "export.delete", object, e.from_us, e.to_us, "denied", "not the owner");
        web_reply_error(r, 403, "forbidden", "only its owner or an admin may delete an export");
        return;
    }
    snprintf(detail, sizeof(detail), "case=%.100s state=%s", e.case_no, e.state);
    idx_audit_t row;
    web_audit_row(r, &row, NULL, "export.delete", object, e.from_us, e.to_us, "ok", detail);
    int rc = web_change(r, do_export_delete, &e.id, &row);
    if (rc == VG_EAUDIT)
        return;
    if (rc != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot delete the export");
        return;
    }
    /* The row is gone first: a running job then removes what it wrote. The
     * file is removed by its name for the id, not the row's path, which
     * was still empty if the job finished between the read and the delete. */
    pb_exporter_cancel(x, e.id);
    char rel[64];
    pb_export_rel_path(e.id, rel, sizeof(rel));
    if (pb_export_remove_file(r->w->cfg.data_dir, rel) != VG_OK)
        vg_err("web: export %" PRId64 " deleted but its file %s could not be removed yet "
               "(tried again at the exporter's next cleanup)", e.id, rel);
    web_reply_text(r, 204, NULL, NULL, 0);
}
