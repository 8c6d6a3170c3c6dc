/* The playback routes: a source's HLS playlist over the stored files'
 * byte ranges, the stored files themselves (sendfile, Range, ETag from the
 * segment's sha256, immutable caching), and the timeline of many sources at
 * once. The work is playback/'s and index/'s; this file checks, routes and
 * audits: one row per playlist opened, the media requests of that viewing
 * aggregated (web_audit_aggregated). */
#include "web/web_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"
#include "playback/playback.h"

#define HOUR_US (3600LL * 1000000)
#define DAY_US (24 * HOUR_US)
#define TIMELINE_MAX_US (31 * DAY_US)     /* the longest range one timeline request covers */
#define TIMELINE_MERGE_US IDX_SPAN_MERGE_US /* as the index merges spans */
#define TIMELINE_MAX_SPANS 20000          /* per source; past it "truncated" */
#define IMMUTABLE "private, max-age=31536000, immutable"

static void object_of(char *object, size_t size, const char *name)
{
    snprintf(object, size, "source:%s", name);
}

/* calls: with a reason given, the playlist's media URIs carry it, so the
 * player's requests for them are let in under require_access_reason. */
static char *with_reason(const char *text, size_t len, const char *reason, size_t *out_len)
{
    char enc[512];
    size_t e = 0;
    for (const unsigned char *p = (const unsigned char *)reason; *p && e + 4 < sizeof(enc); p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p))
            enc[e++] = (char)*p;
        else
            e += (size_t)snprintf(enc + e, sizeof(enc) - e, "%%%02X", *p);
    }
    enc[e] = '\0';
    web_buf_t b = {0};
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        const char *q = memchr(p, '"', n);
        if (n > 6 && strncmp(p, "media/", 6) == 0) {
            web_buf_lit(&b, p, n);
            web_buf_printf(&b, "%creason=%s", memchr(p, '?', n) ? '&' : '?', enc);
        } else if (strncmp(p, "#EXT-X-MAP:URI=\"", 16) == 0 && (q = memchr(p + 16, '"', n - 16))) {
            web_buf_lit(&b, p, (size_t)(q - p));
            web_buf_printf(&b, "%creason=%s", memchr(p + 16, '?', (size_t)(q - p - 16)) ? '&' : '?',
                           enc);
            web_buf_lit(&b, q, n - (size_t)(q - p));
        } else {
            web_buf_lit(&b, p, n);
        }
        if (nl)
            WEB_BUF_LIT(&b, "\n");
        p += n + (nl ? 1 : 0);
    }
    *out_len = b.len;
    return b.p;
}

/* video=h264 (the H.265 transcode), when [playback] transcode_hevc allows
 * it and the source is not left out ([source] transcode = no); answers and
 * returns VG_EINVAL otherwise. */
static int video_param(web_req_t *r, const char *name, unsigned *conv)
{
    const char *v = web_query_get(&r->target, "video");
    if (!v)
        return VG_OK;
    if (strcmp(v, "h264") != 0) {
        web_reply_error(r, 400, "invalid_parameter", "video takes h264 only");
        return VG_EINVAL;
    }
    if (!r->cfg->playback.transcode_hevc) {
        web_reply_error(r, 403, "transcode_disabled",
                        "H.265 to H.264 transcoding is off ([playback] transcode_hevc = no)");
        return VG_EINVAL;
    }
    const vg_source_config_t *src = vg_config_find_source(r->cfg, name);
    if (src && src->no_transcode) {
        web_reply_error(r, 403, "transcode_disabled",
                        "H.265 to H.264 transcoding is off for this source ([source] transcode = no)");
        return VG_EINVAL;
    }
    *conv |= PB_CONV_H264;
    return VG_OK;
}

void web_h_playlist(web_req_t *r)
{
    char kind[8], object[96], detail[64];
    int64_t from, to;
    const char *name = web_readable_source(r, "view", kind, sizeof(kind));
    if (!name || web_req_range(r, r->now_us - HOUR_US, r->now_us, &from, &to) != VG_OK)
        return;
    unsigned wanted = 0;
    if (video_param(r, name, &wanted) != VG_OK)
        return;
    char *text = NULL;
    size_t len = 0, n = 0;
    int rc = pb_playlist(r->w->pb, r->idx, r->w->cfg.data_dir, name, from, to, wanted, &text,
                         &len, &n);
    if (rc == VG_ENOTFOUND) {
        web_reply_error(r, 404, "not_found", "no such source");
        return;
    }
    if (rc == VG_EINVAL) {
        web_reply_error(r, 400, "range_too_long",
                        "the range holds more than %d segments or %d fragments: ask for a "
                        "shorter one", PB_PLAYLIST_MAX_SEGMENTS, PB_PLAYLIST_MAX_FRAGMENTS);
        return;
    }
    if (rc != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot build the playlist");
        return;
    }
    object_of(object, sizeof(object), name);
    if (n == 0) {
        /* Decided: nothing recorded in the range is a 404 with its own code,
         * not an empty playlist players would stall on. */
        free(text);
        web_audit(r, "view", object, from, to, "ok", "playlist: no recording in the range");
        web_reply_error(r, 404, "no_recording", "nothing was recorded in this range");
        return;
    }
    snprintf(detail, sizeof(detail), "playlist %zu segment(s)", n);
    web_audit(r, "view", object, from, to, "ok", detail);
    if (r->access_reason[0]) {
        size_t len2 = 0;
        char *text2 = with_reason(text, len, r->access_reason, &len2);
        free(text);
        text = text2;
        len = len2;
    }
    web_reply_text(r, 200, "application/vnd.apple.mpegurl", text, len);
}

/* A relabelled init part is served through a reader (the 4 bytes differ);
 * everything else with sendfile. */
typedef struct {
    pb_media_t m;
    uint64_t hvc1_at, first, len;
} hvc1_reader_t;

static long hvc1_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    hvc1_reader_t *h = ctx;
    if (pos >= h->len)
        return -1;
    if (max > h->len - pos)
        max = (size_t)(h->len - pos);
    return pb_media_read_hvc1(&h->m, h->hvc1_at, h->first + pos, buf, max);
}

static void hvc1_free(void *ctx)
{
    hvc1_reader_t *h = ctx;
    if (h->m.fd >= 0)
        close(h->m.fd);
    free(h);
}

/* A segment id: 1 to 18 digits. */
static int parse_id(const char *text, int64_t *id)
{
    size_t n = strlen(text);
    if (n == 0 || n > 18 || strspn(text, "0123456789") != n)
        return VG_EINVAL;
    *id = strtoll(text, NULL, 10);
    return *id > 0 ? VG_OK : VG_EINVAL;
}

/* A converted init part (no frag) or fragment: built in memory, then
 * served with Range over those bytes. Its ETag is the segment's sha256 with
 * the conversion and the fragment: the same request always gives the same
 * bytes (for one build of libavcodec). */
static void converted_media(web_req_t *r, const char *name, const char *kind, int64_t id)
{
    unsigned conv = 0;
    long frag = -1;
    char err[160], etag[128], q[32];
    const char *audio = web_query_get(&r->target, "audio");
    const char *fq = web_query_get(&r->target, "frag");
    if (audio && strcmp(audio, "flac") != 0) {
        web_reply_error(r, 400, "invalid_parameter", "audio takes flac only");
        return;
    }
    if (audio)
        conv |= PB_CONV_FLAC;
    if (video_param(r, name, &conv) != VG_OK)
        return;
    if (!conv) {
        web_reply_error(r, 400, "invalid_parameter", "frag goes with audio=flac or video=h264");
        return;
    }
    if (fq) {
        size_t n = strlen(fq);
        if (n == 0 || n > 6 || strspn(fq, "0123456789") != n) {
            web_reply_error(r, 400, "invalid_parameter",
                            "frag is a fragment number from 0 to 999999");
            return;
        }
        frag = strtol(fq, NULL, 10);
    }
    int slot = 0;
    if (conv & PB_CONV_H264) {
        if (!pb_transcode_take(r->w->pb)) {
            snprintf(r->retry_after, sizeof(r->retry_after), "2");
            web_reply_error(r, 503, "busy", "%d H.265 to H.264 transcodes are running "
                            "([playback] transcode_max); try again shortly",
                            r->cfg->playback.transcode_max);
            return;
        }
        slot = 1;
    }
    pb_converted_t c;
    int rc = pb_convert(r->idx, r->w->cfg.data_dir, name, id, conv, frag, &c, err, sizeof(err));
    if (slot)
        pb_transcode_give(r->w->pb);
    if (rc != VG_OK) {
        if (rc == VG_ENOTFOUND)
            web_reply_error(r, 404, "not_found", "%s", err);
        else if (rc == VG_EINVAL)
            web_reply_error(r, 400, "invalid_parameter", "%s", err);
        else
            web_reply_error(r, 500, "unreadable_recording", "%s", err);
        return;
    }
    pb_convert_query(conv, q, sizeof(q));
    snprintf(etag, sizeof(etag), "\"%s-%s-%s%ld\"", c.seg.sha256, q,
             frag < 0 ? "init" : "f", frag < 0 ? 0 : frag);
    uint64_t first = 0, len = 0;
    int status = web_ranged(r, c.len, etag, &first, &len);
    if (status == 0) { /* 304 or 416, answered */
        free(c.data);
        return;
    }
    r->cache_control = IMMUTABLE;
    web_audit_aggregated(r, "view.media", name, c.seg.start_us, c.seg.end_us);
    const char *type = strcmp(kind, "audio") == 0 ? "audio/mp4" : "video/mp4";
    /* The window of the built bytes, freed with them once sent. */
    web_reply_shared(r, status, type, (const char *)c.data + first, (size_t)len, free, c.data);
}

void web_h_media(web_req_t *r)
{
    char kind[8], etag[80];
    int64_t id = 0;
    const char *name = web_readable_source(r, "view.media", kind, sizeof(kind));
    if (!name)
        return;
    if (parse_id(r->params[1], &id) != VG_OK) {
        web_reply_error(r, 400, "invalid_id", "a segment id is a positive integer");
        return;
    }
    const char *init = web_query_get(&r->target, "init");
    if (init && strcmp(init, "hvc1") != 0) {
        web_reply_error(r, 400, "invalid_parameter", "init takes hvc1 only");
        return;
    }
    const char *audio = web_query_get(&r->target, "audio");
    if (audio || web_query_get(&r->target, "video") || web_query_get(&r->target, "frag")) {
        if (init) {
            web_reply_error(r, 400, "invalid_parameter", "init does not go with audio or video");
            return;
        }
        converted_media(r, name, kind, id);
        return;
    }
    pb_media_t m;
    int rc = pb_media_open(r->w->pb, web_index_gen(r), r->idx, r->w->cfg.data_dir, name, id, &m);
    if (rc == VG_ENOTFOUND) {
        web_reply_error(r, 404, "not_found", "no such segment");
        return;
    }
    if (rc != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot open the segment");
        return;
    }
    uint64_t hvc1_at = 0;
    int relabel = init && pb_media_hvc1_at(&m, &hvc1_at) == VG_OK;
    /* The variant has its own validator: its bytes differ. */
    snprintf(etag, sizeof(etag), "\"%s%s\"", m.seg.sha256, relabel ? "-hvc1" : "");
    uint64_t first = 0, len = 0;
    int status = web_ranged(r, m.size, etag, &first, &len);
    if (status == 0) { /* 304 or 416, answered */
        close(m.fd);
        return;
    }
    r->cache_control = IMMUTABLE;
    const char *type = strcmp(kind, "audio") == 0 ? "audio/mp4" : "video/mp4";
    web_audit_aggregated(r, "view.media", name, m.seg.start_us, m.seg.end_us);
    if (!relabel) {
        web_reply_file(r, status, type, m.fd, first, len);
        return;
    }
    hvc1_reader_t *h = vg_calloc(1, sizeof(*h));
    h->m = m;
    h->hvc1_at = hvc1_at;
    h->first = first;
    h->len = len;
    web_reply_reader(r, status, type, len, hvc1_read, h, hvc1_free);
}

/* ---- the timeline of many sources ---- */

typedef struct {
    web_buf_t *b;
    int64_t from, to;
    int64_t span_start, span_end; /* the open span; span_start 0: none */
    char codecs[64];
    int64_t *gaps;                /* [start, end) pairs */
    size_t n_gaps, cap_gaps;
    int64_t last_end;             /* where the last span ended (from: none yet) */
    size_t n_spans;
    int truncated;
} walk_t;

/* A gap is at least TIMELINE_MERGE_US long; shorter ones (a reconnect, the
 * range's edges cutting a segment) are drawn as recorded. */
static void add_gap(walk_t *w, int64_t start, int64_t end)
{
    if (end - start < TIMELINE_MERGE_US)
        return;
    if (w->n_gaps == w->cap_gaps) {
        w->cap_gaps = w->cap_gaps ? w->cap_gaps * 2 : 16;
        w->gaps = vg_realloc(w->gaps, w->cap_gaps * 2 * sizeof(*w->gaps));
    }
    w->gaps[2 * w->n_gaps] = start;
    w->gaps[2 * w->n_gaps + 1] = end;
    w->n_gaps++;
}

static void close_span(walk_t *w)
{
    if (!w->span_start)
        return;
    if (w->n_spans >= TIMELINE_MAX_SPANS) {
        w->truncated = 1;
    } else {
        web_buf_printf(w->b, "%s{\"start\":", w->n_spans ? "," : "");
        web_buf_json_time(w->b, w->span_start);
        WEB_BUF_LIT(w->b, ",\"end\":");
        web_buf_json_time(w->b, w->span_end);
        WEB_BUF_LIT(w->b, ",\"codecs\":");
        web_buf_json_str(w->b, w->codecs);
        WEB_BUF_LIT(w->b, "}");
        w->n_spans++;
    }
    int64_t gap_from = w->last_end > w->from ? w->last_end : w->from;
    if (!w->truncated)
        add_gap(w, gap_from, w->span_start);
    w->last_end = w->span_end;
    w->span_start = 0;
}

/* Segments of one connection abut; a gap under TIMELINE_MERGE_US (a
 * reconnect) is drawn as recorded. A codec change starts a new span. */
static void on_segment(void *ctx, int64_t start, int64_t end, const char *codecs)
{
    walk_t *w = ctx;
    if (w->span_start && start - w->span_end < TIMELINE_MERGE_US &&
        strcmp(codecs, w->codecs) == 0) {
        if (end > w->span_end)
            w->span_end = end;
        return;
    }
    close_span(w);
    w->span_start = start;
    w->span_end = end;
    snprintf(w->codecs, sizeof(w->codecs), "%s", codecs);
}

/* 1 when the comma-separated list names source. */
static int list_has(const char *list, const char *source)
{
    size_t n = strlen(source);
    for (const char *p = list; p && *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && strncmp(p, source, n) == 0)
            return 1;
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* The config's kind wins (as web_source_kind has it), else the index's. */
static int source_readable(web_req_t *r, const idx_source_kind_t *s, char *kind, size_t size)
{
    const vg_source_config_t *c = vg_config_find_source(r->cfg, s->name);
    snprintf(kind, size, "%s", c ? (c->kind == VG_SOURCE_AUDIO ? "audio" : "video") : s->kind);
    if (!web_source_visible(&r->who, s->name, kind))
        return 0;
    unsigned need = strcmp(kind, "audio") == 0 ? WEB_PERM_CALLS : WEB_PERM_PLAYBACK;
    return web_has(&r->who, need);
}

static int source_timeline(web_req_t *r, web_buf_t *b, const char *name, const char *kind,
                           int64_t from, int64_t to, const idx_hold_t *holds, size_t n_holds,
                           int first)
{
    walk_t w = {.b = b, .from = from, .to = to, .last_end = from};
    web_buf_printf(b, "%s{\"name\":", first ? "" : ",");
    web_buf_json_str(b, name);
    WEB_BUF_LIT(b, ",\"kind\":");
    web_buf_json_str(b, kind);
    WEB_BUF_LIT(b, ",\"spans\":[");
    int rc = idx_spans_walk(r->idx, name, from, to, on_segment, &w);
    close_span(&w);
    if (!w.truncated && w.last_end < to)
        add_gap(&w, w.last_end > from ? w.last_end : from, to);
    WEB_BUF_LIT(b, "],\"gaps\":[");
    for (size_t i = 0; i < w.n_gaps; i++) {
        web_buf_printf(b, "%s{\"start\":", i ? "," : "");
        web_buf_json_time(b, w.gaps[2 * i]);
        WEB_BUF_LIT(b, ",\"end\":");
        web_buf_json_time(b, w.gaps[2 * i + 1]);
        WEB_BUF_LIT(b, "}");
    }
    free(w.gaps);
    WEB_BUF_LIT(b, "],\"holds\":[");
    size_t k = 0;
    for (size_t i = 0; i < n_holds; i++) {
        const idx_hold_t *h = &holds[i];
        if (h->from_us >= to || h->to_us <= from || !list_has(h->sources, name))
            continue;
        web_buf_printf(b, "%s{\"id\":", k++ ? "," : "");
        web_buf_i64(b, h->id);
        WEB_BUF_LIT(b, ",\"from\":");
        web_buf_json_time(b, h->from_us);
        WEB_BUF_LIT(b, ",\"to\":");
        web_buf_json_time(b, h->to_us);
        WEB_BUF_LIT(b, "}");
    }
    web_buf_printf(b, "],\"truncated\":%s}", w.truncated ? "true" : "false");
    return rc;
}

void web_h_timeline_all(web_req_t *r)
{
    int64_t from, to;
    if (web_req_range(r, r->now_us - DAY_US, r->now_us, &from, &to) != VG_OK)
        return;
    if (to - from > TIMELINE_MAX_US) {
        web_reply_error(r, 400, "range_too_long", "the timeline covers at most 31 days");
        return;
    }
    const char *wanted = web_query_get(&r->target, "sources");
    if (wanted && strlen(wanted) >= IDX_LIST_TEXT_MAX) {
        web_reply_error(r, 400, "invalid_parameter", "sources names at most %d sources",
                        IDX_LIST_MAX);
        return;
    }
    idx_source_kind_t *names = NULL;
    size_t n_names = 0;
    idx_hold_t *holds = NULL;
    size_t n_holds = 0;
    web_buf_t b = {0};
    if (idx_source_kinds(r->idx, &names, &n_names) != VG_OK ||
        idx_hold_list(r->idx, 0, r->now_us, &holds, &n_holds) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot read the index");
        goto cleanup;
    }
    WEB_BUF_LIT(&b, "{\"from\":");
    web_buf_json_time(&b, from);
    WEB_BUF_LIT(&b, ",\"to\":");
    web_buf_json_time(&b, to);
    WEB_BUF_LIT(&b, ",\"sources\":[");
    size_t listed = 0;
    for (size_t i = 0; i < n_names; i++) {
        char kind[8];
        /* Unknown and invisible names are simply absent: nothing tells which. */
        if ((wanted && !list_has(wanted, names[i].name)) ||
            !source_readable(r, &names[i], kind, sizeof(kind)))
            continue;
        if (source_timeline(r, &b, names[i].name, kind, from, to, holds, n_holds, listed == 0) !=
            VG_OK) {
            free(b.p);
            b.p = NULL;
            web_reply_error(r, 500, "internal", "cannot read the index");
            goto cleanup;
        }
        listed++;
    }
    WEB_BUF_LIT(&b, "]}");
    char detail[48];
    snprintf(detail, sizeof(detail), "%zu source(s)", listed);
    web_audit(r, "timeline.read", "sources", from, to, "ok", detail);
    web_reply_text(r, 200, "application/json", b.p, b.len);
    b.p = NULL;

cleanup:
    free(b.p);
    free(names);
    free(holds);
}
