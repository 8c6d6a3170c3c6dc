/* The routes that serve a source's media to people (README "Playback"):
 * audio.wav and clip.wav (16-bit PCM WAV built on demand, with Range),
 * peaks (waveform min/max) and snapshot.jpg. The media work is playback/'s
 * (pb_*); this file checks the request, finds the segments in the index,
 * sets the headers and writes the audit rows. */
#include "web/web_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"
#include "playback/playback.h"

#define PEAKS_DEFAULT 1000
#define PEAKS_MAX 10000
#define SNAPSHOT_MIN_WIDTH 16
#define SNAPSHOT_MAX_WIDTH 16384

/* The one call site for the rows of a viewing's many requests (snapshots,
 * peaks). */
static void audit_viewing(web_req_t *r, const char *action, const char *name, int64_t from_us,
                          int64_t to_us)
{
    /* The many requests of one viewing (thumbnails, peaks, Range
     * continuations) are counted into one row per actor, source, action and
     * minute (web/aggregate.c), not written one by one. */
    web_audit_aggregated(r, action, name, from_us, to_us);
}

/* The source named in the path if the caller may read its recordings;
 * else answers (404 for one it may not see, 403 without the permission for
 * its kind; routes.c's rule) and returns NULL. */
static const char *media_source(web_req_t *r, const char *action)
{
    char kind[8];
    return web_readable_source(r, action, kind, sizeof(kind));
}

/* from and to, both required, at most [playback] wav_max_seconds apart. */
static int audio_range(web_req_t *r, int64_t *from, int64_t *to)
{
    if (!web_query_get(&r->target, "from") || !web_query_get(&r->target, "to")) {
        web_reply_error(r, 400, "missing_range", "from and to are required");
        return VG_EINVAL;
    }
    if (web_req_range(r, 0, 0, from, to) != VG_OK)
        return VG_EINVAL;
    int max_s = r->cfg->playback.wav_max_seconds;
    if (*to - *from > (int64_t)max_s * 1000000) {
        web_reply_error(r, 400, "range_too_long",
                        "the range is longer than %d s ([playback] wav_max_seconds)", max_s);
        return VG_EINVAL;
    }
    return VG_OK;
}

/* The segments of [from, to); answers and returns VG_E* when there are
 * none or the index fails. */
static int range_segments(web_req_t *r, const char *name, int64_t from, int64_t to,
                          idx_segment_t **segs, size_t *n)
{
    int rc = idx_segments_in_range(r->idx, name, from, to, segs, n);
    if (rc == VG_ENOTFOUND)
        web_reply_error(r, 404, "not_found", "no such source");
    else if (rc != VG_OK)
        web_reply_error(r, 500, "internal", "cannot read the index");
    else if (*n == 0) {
        web_reply_error(r, 404, "no_recording", "nothing was recorded in that range");
        rc = VG_ENOTFOUND;
    }
    if (rc != VG_OK) {
        free(*segs);
        *segs = NULL;
    }
    return rc;
}

/* A source recorded without audio gets 404 no_audio: there is no audio
 * resource to serve (a video-only camera), which is not a malformed request. */
static int need_audio(web_req_t *r, const char *name, const idx_segment_t *segs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (pb_codecs_have_audio(segs[i].codecs))
            return 1;
    }
    web_reply_error(r, 404, "no_audio", "source %s has no audio track in that range (codecs %s)",
                    name, segs[0].codecs);
    return 0;
}

static void pb_error(web_req_t *r, int rc, const char *err)
{
    if (rc == VG_EBUSY) {
        snprintf(r->retry_after, sizeof(r->retry_after), "1");
        web_reply_error(r, 503, "busy", "%s", err);
    } else if (rc == VG_ENOTFOUND) {
        web_reply_error(r, 404, "no_audio", "%s", err);
    } else if (rc == VG_EINVAL) {
        web_reply_error(r, 400, "invalid_range", "%s", err);
    } else {
        web_reply_error(r, 500, "unreadable_recording", "%s", err);
    }
}

static void wav_route(web_req_t *r, int attachment)
{
    const char *action = attachment ? "clip.read" : "audio.read";
    int64_t from, to;
    char object[96];
    const char *name = media_source(r, action);
    if (!name || audio_range(r, &from, &to) != VG_OK)
        return;
    snprintf(object, sizeof(object), "source:%s", name);
    web_wav_serve(r, name, from, to, action, object, attachment);
}

void web_wav_serve(web_req_t *r, const char *name, int64_t from, int64_t to, const char *action,
                   const char *object, int attachment)
{
    idx_segment_t *segs = NULL;
    size_t n = 0;
    pb_wav_t *wav = NULL;
    char err[192], etag[80];
    if (range_segments(r, name, from, to, &segs, &n) != VG_OK || !need_audio(r, name, segs, n))
        goto cleanup;
    int rc = pb_wav_open(r->w->cfg.data_dir, segs, n, from, to, &wav, err, sizeof(err));
    if (rc != VG_OK) {
        pb_error(r, rc, err);
        goto cleanup;
    }
    pb_range_etag("wav", segs, n, from, to, etag, sizeof(etag));
    uint64_t first = 0, len = 0;
    int status = web_ranged(r, pb_wav_size(wav), etag, &first, &len);
    if (!status)
        goto cleanup; /* 304 or 416, answered */
    char detail[64];
    snprintf(detail, sizeof(detail), "%zu segment(s), %d Hz", n, pb_wav_rate(wav));
    web_audit_ranged(r, first, action, object, name, from, to, detail);
    if (attachment) {
        web_reply_clip_disposition(r, name, from, to, "wav");
    } else {
        snprintf(r->disposition, sizeof(r->disposition), "inline");
    }
    pb_wav_window_t *ctx = vg_calloc(1, sizeof(*ctx));
    ctx->wav = wav;
    ctx->first = first;
    wav = NULL; /* the reply's now */
    web_reply_reader(r, status, "audio/wav", len, pb_wav_window_read, ctx, pb_wav_window_free);

cleanup:
    pb_wav_close(wav);
    free(segs);
}

void web_h_audio_wav(web_req_t *r)
{
    wav_route(r, 0);
}

void web_h_clip_wav(web_req_t *r)
{
    wav_route(r, 1);
}

/* A decimal integer in [min, max] (digits only, no sign or spaces). */
static int strict_int(const char *text, long min, long max, long *out)
{
    long v = 0;
    if (!text || !*text || strlen(text) > 9)
        return VG_EINVAL;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return VG_EINVAL;
        v = v * 10 + (*p - '0');
    }
    if (v < min || v > max)
        return VG_EINVAL;
    *out = v;
    return VG_OK;
}

void web_h_peaks(web_req_t *r)
{
    int64_t from, to;
    const char *name = media_source(r, "peaks.read");
    if (!name)
        return;
    const char *nq = web_query_get(&r->target, "n");
    long buckets = PEAKS_DEFAULT;
    if (nq && strict_int(nq, 1, PEAKS_MAX, &buckets) != VG_OK) {
        web_reply_error(r, 400, "invalid_n", "n must be an integer from 1 to %d", PEAKS_MAX);
        return;
    }
    if (audio_range(r, &from, &to) != VG_OK)
        return;
    web_peaks_serve(r, name, from, to, "peaks.read");
}

void web_peaks_serve(web_req_t *r, const char *name, int64_t from, int64_t to, const char *action)
{
    idx_segment_t *segs = NULL;
    size_t n = 0, len = 0;
    long buckets = PEAKS_DEFAULT;
    char err[192], *json = NULL;
    const char *nq = web_query_get(&r->target, "n");
    if (nq && strict_int(nq, 1, PEAKS_MAX, &buckets) != VG_OK) {
        web_reply_error(r, 400, "invalid_n", "n must be an integer from 1 to %d", PEAKS_MAX);
        goto cleanup;
    }
    if (range_segments(r, name, from, to, &segs, &n) != VG_OK || !need_audio(r, name, segs, n))
        goto cleanup;
    int rc = pb_peaks(r->w->pb, segs, n, from, to, (int)buckets, &json, &len, err, sizeof(err));
    if (rc != VG_OK) {
        pb_error(r, rc, err);
        goto cleanup;
    }
    audit_viewing(r, action, name, from, to);
    web_reply_text(r, 200, "application/json", json, len);
    json = NULL;

cleanup:
    free(json);
    free(segs);
}

void web_h_snapshot(web_req_t *r)
{
    idx_segment_t *segs = NULL;
    size_t n = 0;
    int64_t at;
    long width = 0;
    char err[192];
    pb_snapshot_t snap = {.fd = -1};
    const char *name = media_source(r, "snapshot.read");
    if (!name)
        goto cleanup;
    const char *aq = web_query_get(&r->target, "at");
    if (!aq || web_time_text(aq, &at) != VG_OK) {
        web_reply_error(r, 400, "invalid_time",
                        "at is required: RFC 3339 (2026-11-27T10:00:00Z) or unix seconds");
        goto cleanup;
    }
    const char *kq = web_query_get(&r->target, "keyframe");
    if (kq && strcmp(kq, "0") != 0 && strcmp(kq, "1") != 0) {
        web_reply_error(r, 400, "invalid_keyframe", "keyframe is 0 or 1");
        goto cleanup;
    }
    int keyframe = kq && strcmp(kq, "1") == 0;
    const char *wq = web_query_get(&r->target, "width");
    if (wq && strict_int(wq, SNAPSHOT_MIN_WIDTH, SNAPSHOT_MAX_WIDTH, &width) != VG_OK) {
        web_reply_error(r, 400, "invalid_width", "width must be an integer from %d to %d",
                        SNAPSHOT_MIN_WIDTH, SNAPSHOT_MAX_WIDTH);
        goto cleanup;
    }
    int rc = idx_segments_in_range(r->idx, name, at, at + 1, &segs, &n);
    if (rc != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot read the index");
        goto cleanup;
    }
    const idx_segment_t *seg = NULL;
    for (size_t i = 0; i < n; i++) {
        if (segs[i].start_us <= at && at < segs[i].end_us)
            seg = &segs[i]; /* the latest one holding at */
    }
    if (!seg) {
        web_reply_error(r, 404, "no_recording", "nothing was recorded at that time");
        goto cleanup;
    }
    if (!pb_codecs_have_video(seg->codecs)) {
        web_reply_error(r, 404, "no_video", "source %s has no video (codecs %s)", name,
                        seg->codecs);
        goto cleanup;
    }
    rc = pb_snapshot(r->w->pb, seg, at, (int)width, keyframe, &snap, err, sizeof(err));
    if (rc == VG_EBUSY) {
        snprintf(r->retry_after, sizeof(r->retry_after), "1");
        web_reply_error(r, 503, "busy", "%s", err);
        goto cleanup;
    }
    if (rc == VG_ENOTFOUND) {
        web_reply_error(r, 404, "no_recording", "%s", err);
        goto cleanup;
    }
    if (rc != VG_OK) {
        web_reply_error(r, 500, "unreadable_recording", "%s", err);
        goto cleanup;
    }
    audit_viewing(r, "snapshot.read", name, at, at);
    /* Named by segment, frame and width: the bytes never change. */
    r->cache_control = "private, max-age=31536000, immutable";
    uint64_t first = 0, len = 0;
    int status = web_ranged(r, snap.size, snap.etag, &first, &len);
    if (status) {
        web_reply_file(r, status, "image/jpeg", snap.fd, first, len);
        snap.fd = -1;
    }

cleanup:
    if (snap.fd >= 0)
        close(snap.fd);
    free(segs);
}
