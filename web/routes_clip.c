/* GET /api/v1/sources/{name}/clip.{mp4,mov,mkv}?from&to: one progressive
 * file of a range, built by playback/ from the stored fragments and sent
 * through web_reply_reader (exact Content-Length, Range, a strong ETag so a
 * download resumes with If-Range). This file only checks the request, maps
 * playback's codes to answers and audits. */
#include "web/web_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"
#include "playback/playback.h"

typedef struct {
    pb_clip_t *clip;
    uint64_t first; /* the window's first byte in the clip */
} clip_body_t;

static long clip_body_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    clip_body_t *b = ctx;
    return pb_clip_read(b->clip, b->first + pos, buf, max);
}

static void clip_body_free(void *ctx)
{
    clip_body_t *b = ctx;
    pb_clip_free(b->clip);
    free(b);
}

/* The named source when the caller may read its recordings, else NULL with
 * the answer set (routes.c's rule: 404 for unknown and invisible alike, 403
 * without the permission for its kind). */
static const char *readable_source(web_req_t *r, const char *action)
{
    char kind[8];
    return web_readable_source(r, action, kind, sizeof(kind));
}

/* "2026-12-02T10:00:00.000Z" -> "2026-12-02T10-00-00Z": a file name every
 * system takes. */
/* The one audit row of a clip. A Range continuation (first > 0) is a
 * download resuming or a player seeking in the same clip: it is counted
 * into the aggregated rows of a viewing (one per actor, source, action and
 * minute: web/aggregate.c), not written as a row of its own. */
static void clip_audit(web_req_t *r, const char *name, int64_t from, int64_t to,
                       const char *detail, uint64_t first)
{
    char object[96];
    snprintf(object, sizeof(object), "source:%s", name);
    web_audit_ranged(r, first, "clip.read", object, name, from, to, detail);
}

static void clip_route(web_req_t *r, pb_clip_format_t fmt, const char *ext,
                       const char *content_type)
{
    idx_segment_t *segs = NULL;
    size_t n = 0;
    pb_clip_t *clip = NULL;
    int64_t from = 0, to = 0;
    char err[256];
    const char *name = readable_source(r, "clip.read");
    if (!name)
        return;
    if (!web_query_get(&r->target, "from") || !web_query_get(&r->target, "to")) {
        web_reply_error(r, 400, "invalid_query", "from and to are both required");
        return;
    }
    if (web_req_range(r, 0, 0, &from, &to) != VG_OK)
        return;
    if (to <= from) {
        web_reply_error(r, 400, "invalid_query", "from must be before to");
        return;
    }
    int max_s = r->cfg->playback.clip_max_seconds;
    if (to - from > (int64_t)max_s * 1000000) {
        web_reply_error(r, 400, "range_too_long",
                        "a clip may be at most %d seconds long ([playback] clip_max_seconds); "
                        "ask for several", max_s);
        return;
    }
    int rc = idx_segments_in_range(r->idx, name, from, to, &segs, &n);
    if (rc == VG_ENOTFOUND || (rc == VG_OK && n == 0)) {
        web_reply_error(r, 404, "not_found", "nothing was recorded in this range");
        goto cleanup;
    }
    if (rc != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot read the index");
        goto cleanup;
    }
    rc = pb_clip_plan(r->cfg->data_dir, segs, n, from, to, fmt, &clip, err, sizeof(err));
    switch (rc) {
    case VG_OK: break;
    case VG_ENOTFOUND: web_reply_error(r, 404, "not_found", "%s", err); goto cleanup;
    case VG_EINVAL: web_reply_error(r, 415, "unsupported_media_type", "%s", err); goto cleanup;
    case VG_EEXIST: web_reply_error(r, 409, "conflict", "%s", err); goto cleanup;
    default:
        vg_err("clip of %s: %s", name, err);
        web_reply_error(r, 500, "internal", "%s", err);
        goto cleanup;
    }
    uint64_t first = 0, len = 0;
    int status = web_ranged(r, pb_clip_size(clip), pb_clip_etag(clip), &first, &len);
    if (status == 0)
        goto cleanup; /* 304 or 416, answered */
    char detail[96];
    web_reply_clip_disposition(r, name, from, to, ext);
    snprintf(detail, sizeof(detail), "%s, %zu segment(s)", ext, n);
    clip_audit(r, name, from, to, detail, first);
    clip_body_t *body = vg_calloc(1, sizeof(*body));
    body->clip = clip;
    body->first = first;
    clip = NULL;
    web_reply_reader(r, status, content_type, len, clip_body_read, body, clip_body_free);

cleanup:
    pb_clip_free(clip);
    free(segs);
}

void web_h_clip_mp4(web_req_t *r)
{
    clip_route(r, PB_CLIP_MP4, "mp4", "video/mp4");
}

void web_h_clip_mov(web_req_t *r)
{
    clip_route(r, PB_CLIP_MOV, "mov", "video/quicktime");
}

void web_h_clip_mkv(web_req_t *r)
{
    clip_route(r, PB_CLIP_MKV, "mkv", "video/x-matroska");
}
