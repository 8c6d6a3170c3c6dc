/* The route table and the source routes: /me, /sources, a source's
 * segments and timeline, and its keep_days override. Playback and export
 * (a later issue) slot in as /sources/{name}/... rows of the same table. */
#include "web/web_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define DAY_US (86400LL * 1000000)
#define MAX_KEEP_DAYS 3650

static void h_healthz(web_req_t *r)
{
    web_reply_json(r, 200, json_pack("{ss}", "status", "ok"));
}

static void http_metrics(struct web *w, web_buf_t *b);

static int is_loopback(const char *ip)
{
    return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0 ||
           strncmp(ip, "::ffff:127.", 11) == 0;
}

/* Figures for monitoring, no recordings or personal data. [server]
 * metrics_access says who may read them: loopback callers (a local
 * Prometheus or node exporter proxy) or a token with the metrics permission. */
static int metrics_allowed(web_req_t *r)
{
    static const web_route_t with_token = {"GET", "/metrics", WEB_PERM_METRICS, 0, NULL, NULL};
    const vg_config_t *cfg = r->w->cfg.current_config ? r->w->cfg.current_config(r->w->cfg.status_ctx)
                                                      : r->w->cfg.cfg;
    if (cfg->http.metrics_token)
        return web_auth_request(r, &with_token) == VG_OK;
    if (is_loopback(r->ip))
        return 1;
    web_reply_error(r, 403, "forbidden", "metrics are served to loopback callers only "
                                         "(metrics_access = loopback)");
    return 0;
}

static void h_metrics(web_req_t *r)
{
    const web_config_t *c = &r->w->cfg;
    char *text = NULL;
    if (!metrics_allowed(r))
        return;
    if (!c->metrics_text) {
        web_reply_error(r, 404, "not_found", "no metrics here");
        return;
    }
    if (!(text = c->metrics_text(c->status_ctx))) {
        web_reply_error(r, 500, "internal", "cannot render metrics");
        return;
    }
    web_buf_t b = {0};
    web_buf_lit(&b, text, strlen(text));
    free(text);
    http_metrics(r->w, &b);
    web_reply_text(r, 200, "text/plain; version=0.0.4", b.p, b.len);
}

static void h_me(web_req_t *r)
{
    web_reply_json(r, 200, web_me_json(&r->who));
}

/* ---- sources ---- */

/* A source's kind from the config, else from the index (a source that was
 * recorded once and later removed from the config). NULL when unknown. */
const char *web_source_kind(const vg_config_t *cfg, idx_t *idx, const char *name, char *buf,
                            size_t size)
{
    const vg_source_config_t *s = vg_config_find_source(cfg, name);
    if (s)
        return s->kind == VG_SOURCE_AUDIO ? "audio" : "video";
    idx_source_stats_t *st = NULL;
    size_t n = 0;
    const char *kind = NULL;
    if (vg_source_name_valid(name) && idx_source_stats(idx, 0, 0, &st, &n) == VG_OK) {
        for (size_t i = 0; i < n && !kind; i++) {
            if (strcmp(st[i].source, name) == 0) {
                snprintf(buf, size, "%s", st[i].kind);
                kind = buf;
            }
        }
    }
    free(st);
    return kind;
}

/* The named source if the caller may see it, else NULL after answering 404
 * (unknown and not-allowed look the same) and auditing a denial when the
 * source exists. */
static const char *visible_source(web_req_t *r, const char *action, char *kind, size_t size)
{
    const char *name = r->params[0];
    const char *k = web_source_kind(r->cfg, r->idx, name, kind, size);
    if (k && web_source_visible(&r->who, name, k)) {
        if (k != kind)
            snprintf(kind, size, "%s", k);
        return name;
    }
    if (k) {
        char object[96];
        snprintf(object, sizeof(object), "source:%s", name);
        web_audit(r, action, object, 0, 0, "denied", "source not visible to this account");
    }
    web_reply_error(r, 404, "not_found", "no such source");
    return NULL;
}

/* Whether the caller has the permission for recordings of this kind. */
static int may_read(web_req_t *r, const char *kind, const char *action, const char *name)
{
    unsigned need = strcmp(kind, "audio") == 0 ? WEB_PERM_CALLS : WEB_PERM_PLAYBACK;
    if (web_has(&r->who, need))
        return 1;
    char object[96];
    snprintf(object, sizeof(object), "source:%s", name);
    web_audit(r, action, object, 0, 0, "denied", "forbidden");
    web_reply_error(r, 403, "forbidden", "your account may not read these recordings");
    return 0;
}

/* For the playback routes (routes_playback.c): the same 404 and 403 rules. */
const char *web_readable_source(web_req_t *r, const char *action, char *kind, size_t size)
{
    const char *name = visible_source(r, action, kind, size);
    /* calls: [server] require_access_reason applies to every route that
     * opens a recording (they all come through here) */
    return name && may_read(r, kind, action, name) && web_access_reason(r) ? name : NULL;
}

static void keep_days(web_req_t *r, const char *name, int *days, const char **from)
{
    int over = 0;
    if (idx_keep_days_override(r->idx, name, &over) == VG_OK && over > 0) {
        *days = over;
        *from = "override";
        return;
    }
    *days = vg_config_keep_days(r->cfg, vg_config_find_source(r->cfg, name));
    *from = "config";
}

static json_t *source_json(web_req_t *r, const idx_source_stats_t *s)
{
    web_source_status_t st = {.state = "stopped"};
    const web_config_t *c = &r->w->cfg;
    if (!c->source_status || !vg_config_find_source(r->cfg, s->source) ||
        c->source_status(c->status_ctx, s->source, &st) != 0)
        snprintf(st.state, sizeof(st.state), "stopped");
    int days = 0;
    const char *from = "config";
    keep_days(r, s->source, &days, &from);
    double depth = s->oldest_us ? (double)(r->now_us - s->oldest_us) / (double)DAY_US : 0.0;
    /* the server's H.264 of an H.265 camera for browsers ([playback]
     * transcode_hevc, unless [source] transcode = no) */
    const vg_source_config_t *sc = vg_config_find_source(r->cfg, s->source);
    int transcode = r->cfg->playback.transcode_hevc && !(sc && sc->no_transcode);
    /* last_error quotes what a camera or libav said: not ours to trust. */
    return json_pack("{ss ss ss so* so* sI so so sf si ss so so sb}", "name", s->source, "kind", s->kind,
                     "status", st.state, "last_error",
                     st.last_error[0] ? web_json_text(st.last_error) : NULL, "codec",
                     st.codecs[0] ? web_json_text(st.codecs) : NULL, "bitrate_bps",
                     (json_int_t)st.bitrate_bps, "oldest", web_time_json(s->oldest_us), "newest",
                     web_time_json(s->newest_us), "depth_days", depth, "keep_days", days,
                     "keep_days_from", from, "relay", st.relay ? st.relay : json_null(), "live",
                     web_live_source_json(r, s->source), "transcode", transcode);
}

/* Sources the index knows (vigild registers every configured one). */
static int all_stats(web_req_t *r, idx_source_stats_t **st, size_t *n)
{
    if (idx_source_stats(r->idx, r->now_us, DAY_US, st, n) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot read source figures");
        return VG_EDB;
    }
    return VG_OK;
}

static void h_sources(web_req_t *r)
{
    idx_source_stats_t *st = NULL;
    size_t n = 0;
    if (all_stats(r, &st, &n) != VG_OK)
        return;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        if (web_source_visible(&r->who, st[i].source, st[i].kind))
            json_array_append_new(arr, source_json(r, &st[i]));
    }
    free(st);
    web_reply_json(r, 200, json_pack("{so}", "sources", arr));
}

static void h_source(web_req_t *r)
{
    char kind[8];
    idx_source_stats_t *st = NULL;
    size_t n = 0;
    const char *name = visible_source(r, "source.read", kind, sizeof(kind));
    if (!name || all_stats(r, &st, &n) != VG_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(st[i].source, name) == 0)
            web_reply_json(r, 200, source_json(r, &st[i]));
    }
    if (!r->status)
        web_reply_error(r, 404, "not_found", "no such source");
    free(st);
}

typedef struct {
    const char *name, *by;
    int days;
    int64_t now_us;
} keep_days_t;

static int do_keep_days(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    keep_days_t *c = arg;
    (void)rows;
    (void)n;
    return idx_keep_days_set(idx, c->name, c->days, c->by, c->now_us);
}

static void h_source_patch(web_req_t *r)
{
    static const web_field_t fields[] = {{"keep_days", WEB_F_INT, 1, 1}, {NULL, 0, 0, 0}};
    char kind[8], object[96], detail[96];
    const char *name = visible_source(r, "source.update", kind, sizeof(kind));
    json_t *body = name ? web_req_body(r, fields) : NULL;
    if (!body)
        return;
    json_t *v = json_object_get(body, "keep_days");
    json_int_t days = json_is_null(v) ? 0 : json_integer_value(v);
    int min = r->cfg->retention.min_days;
    if (!json_is_null(v) && (days < min || days > MAX_KEEP_DAYS)) {
        web_reply_error(r, 400, "invalid_field", "keep_days must be from min_days (%d) to %d",
                        min, MAX_KEEP_DAYS);
        goto cleanup;
    }
    snprintf(object, sizeof(object), "source:%s", name);
    if (days)
        snprintf(detail, sizeof(detail), "keep_days=%lld", (long long)days);
    else
        snprintf(detail, sizeof(detail), "keep_days=config");
    idx_audit_t row;
    web_audit_row(r, &row, NULL, "source.update", object, 0, 0, "ok", detail);
    keep_days_t change = {name, r->who.actor, (int)days, r->now_us};
    int rc = web_change(r, do_keep_days, &change, &row);
    if (rc == VG_EAUDIT)
        goto cleanup;
    if (rc != VG_OK) {
        web_audit(r, "source.update", object, 0, 0, "error", "cannot store keep_days");
        web_reply_error(r, 500, "internal", "cannot store keep_days");
        goto cleanup;
    }
    int eff = 0;
    const char *from = "config";
    keep_days(r, name, &eff, &from);
    web_reply_json(r, 200, json_pack("{ss si ss}", "name", name, "keep_days", eff,
                                     "keep_days_from", from));

cleanup:
    json_decref(body);
}

static void audit_read(web_req_t *r, const char *action, const char *name, int64_t from,
                       int64_t to, size_t n)
{
    char object[96], detail[48];
    snprintf(object, sizeof(object), "source:%s", name);
    snprintf(detail, sizeof(detail), "%zu segment(s)", n);
    web_audit(r, action, object, from, to, "ok", detail);
}

/* The answer's head: {"source":..,"from":..,"to":..,"KEY":[ */
static void range_head(web_buf_t *b, const char *name, int64_t from, int64_t to, const char *key)
{
    web_buf_printf(b, "{\"source\":");
    web_buf_json_str(b, name);
    web_buf_printf(b, ",\"from\":");
    web_buf_json_time(b, from);
    web_buf_printf(b, ",\"to\":");
    web_buf_json_time(b, to);
    web_buf_printf(b, ",\"%s\":[", key);
}

typedef void (*range_body_fn)(web_buf_t *b, const char *name, int64_t from, int64_t to,
                              const idx_segment_t *segs, size_t n);

/* Built by hand, one buffer, no per-value allocations: the hottest route. */
static void segments_body(web_buf_t *b, const char *name, int64_t from, int64_t to,
                          const idx_segment_t *segs, size_t n)
{
    range_head(b, name, from, to, "segments");
    for (size_t i = 0; i < n; i++) {
        const idx_segment_t *s = &segs[i];
        if (i)
            WEB_BUF_LIT(b, ",");
        WEB_BUF_LIT(b, "{\"id\":");
        web_buf_i64(b, s->id);
        WEB_BUF_LIT(b, ",\"start\":");
        web_buf_json_time(b, s->start_us);
        WEB_BUF_LIT(b, ",\"end\":");
        web_buf_json_time(b, s->end_us);
        WEB_BUF_LIT(b, ",\"bytes\":");
        web_buf_i64(b, s->bytes);
        WEB_BUF_LIT(b, ",\"sha256\":");
        web_buf_json_str(b, s->sha256);
        WEB_BUF_LIT(b, ",\"codecs\":");
        web_buf_json_str(b, s->codecs);
        WEB_BUF_LIT(b, "}");
    }
    web_buf_printf(b, "]}");
}

/* Segments of one connection abut exactly; any gap splits a span. */
static void timeline_body(web_buf_t *b, const char *name, int64_t from, int64_t to,
                          const idx_segment_t *segs, size_t n)
{
    range_head(b, name, from, to, "spans");
    for (size_t i = 0, k = 0; i < n; k++) {
        size_t j = i + 1;
        int64_t end = segs[i].end_us;
        while (j < n && segs[j].start_us <= end) {
            end = segs[j].end_us > end ? segs[j].end_us : end;
            j++;
        }
        web_buf_printf(b, "%s{\"start\":", k ? "," : "");
        web_buf_json_time(b, segs[i].start_us);
        web_buf_printf(b, ",\"end\":");
        web_buf_json_time(b, end);
        web_buf_printf(b, ",\"segments\":%zu}", j - i);
        i = j;
    }
    web_buf_printf(b, "]}");
}

/* Answers from the cache when the source has not changed since the answer
 * was built (web/cache.c), else from the index (and caches that). 0 on
 * error (the reply is set). *n: the segments listed, for the audit row. */
static int range_answer(web_req_t *r, const char *key, const char *name, int64_t from,
                        int64_t to, range_body_fn body, size_t *n)
{
    int64_t version = 0;
    /* Read before the listing: a change in between only costs a rebuild. */
    int cacheable = idx_source_version(r->idx, name, &version) == VG_OK;
    web_cached_t *hit = cacheable ? web_cache_get(r->w->cache, key, version) : NULL;
    if (!hit) {
        idx_segment_t *segs = NULL;
        int rc = idx_segments_in_range(r->idx, name, from, to, &segs, n);
        if (rc == VG_ENOTFOUND) {
            web_reply_error(r, 404, "not_found", "no such source");
            return 0;
        }
        if (rc != VG_OK) {
            web_reply_error(r, 500, "internal", "cannot read the index");
            return 0;
        }
        web_buf_t b = {0};
        body(&b, name, from, to, segs, *n);
        free(segs);
        hit = cacheable ? web_cache_put(r->w->cache, key, version, b.p, b.len, *n) : NULL;
        if (!hit) {
            web_reply_text(r, 200, "application/json", b.p, b.len);
            return 1;
        }
        free(b.p);
    }
    size_t len;
    const char *data = web_cached_data(hit, &len, n);
    web_reply_shared(r, 200, "application/json", data, len, web_cached_unref, hit);
    return 1;
}

/* GET .../segments and .../timeline: checks, range (default: the last day,
 * at most 31), answer, audit row. */
#define RANGE_ROUTE_MAX_US (31 * DAY_US)
static void range_route(web_req_t *r, const char *action, range_body_fn body)
{
    char kind[8], key[WEB_CACHE_KEY_MAX];
    int64_t from, to;
    const char *name = visible_source(r, action, kind, sizeof(kind));
    if (!name || !may_read(r, kind, action, name) ||
        web_req_range(r, r->now_us - DAY_US, r->now_us, &from, &to) != VG_OK)
        return;
    /* Every row of the span is read and answered at once: bounded like the
     * timeline of all sources. */
    if (to - from > RANGE_ROUTE_MAX_US) {
        web_reply_error(r, 400, "range_too_long", "one request covers at most 31 days");
        return;
    }
    snprintf(key, sizeof(key), "%s/%s/%" PRId64 "/%" PRId64, action, name, from, to);
    size_t n = 0;
    if (range_answer(r, key, name, from, to, body, &n))
        audit_read(r, action, name, from, to, n);
}

static void h_segments(web_req_t *r)
{
    range_route(r, "segments.read", segments_body);
}

static void h_timeline(web_req_t *r)
{
    range_route(r, "timeline.read", timeline_body);
}

/* ---- the table ---- */

static const char *const range_keys[] = {"from", "to", NULL};
/* the routes that open a recording take reason= ([server] require_access_reason) */
static const char *const open_keys[] = {"from", "to", "reason", NULL};
/* playback (routes_playback.c) */
static const char *const media_keys[] = {"init", "reason", "audio", "video", "frag", NULL};
static const char *const playlist_keys[] = {"from", "to", "reason", "video", NULL};
static const char *const timeline_keys[] = {"from", "to", "sources", NULL};
static const char *const peaks_keys[] = {"from", "to", "n", "reason", NULL};
static const char *const snapshot_keys[] = {"at", "width", "keyframe", "reason", NULL};
static const char *const holds_keys[] = {"all", NULL};
static const char *const checkpoint_keys[] = {"after", "limit", NULL};
static const char *const audit_keys[] = {"from", "to", "actor", "action", "format",
                                         "limit", "after", NULL};

/* calls (routes_calls.c) */
static const char *const calls_keys[] = {"from", "to", "number", "agent", "queue", "account",
                                         "direction", "min_seconds", "max_seconds", "text",
                                         "limit", "after", "source", NULL};
static const char *const import_keys[] = {"format", "utc", NULL};
static const char *const reason_keys[] = {"reason", NULL};
static const char *const call_peaks_keys[] = {"n", "reason", NULL};
/* call quality (routes_qa.c) */
static const char *const qa_eval_keys[] = {"call", "source", "from", "to", "auditor", "agent",
                                           "limit", "after", NULL};
static const char *const report_keys[] = {"from", "to", "group", "format", NULL};
static const char *const calibration_keys[] = {"call", "source", "from", "to", NULL};
static const char *const ann_list_keys[] = {"from", "to", "limit", "after", NULL};
#define QA (WEB_PERM_ANNOTATE | WEB_PERM_ADMIN)
#define ANN (WEB_PERM_CALLS | WEB_PERM_ANNOTATE | WEB_PERM_AUDIT)

#define SEE (WEB_PERM_LIVE | WEB_PERM_PLAYBACK | WEB_PERM_CALLS)
#define READ (WEB_PERM_PLAYBACK | WEB_PERM_CALLS)

const web_route_t web_routes[] = {
    {"GET", "/healthz", 0, WEB_ROUTE_PUBLIC, NULL, h_healthz},
    {"POST", "/api/v1/login", 0, WEB_ROUTE_PUBLIC | WEB_ROUTE_BODY, NULL, web_login},
    {"POST", "/api/v1/logout", 0, 0, NULL, web_logout},
    {"GET", "/api/v1/me", 0, 0, NULL, h_me},
    {"GET", "/metrics", 0, WEB_ROUTE_PUBLIC, NULL, h_metrics}, /* checks itself */
    {"GET", "/api/v1/sources", SEE, 0, NULL, h_sources},
    {"GET", "/api/v1/sources/{}", SEE, 0, NULL, h_source},
    {"PATCH", "/api/v1/sources/{}", WEB_PERM_ADMIN, WEB_ROUTE_BODY, NULL, h_source_patch},
    {"GET", "/api/v1/sources/{}/segments", READ, 0, range_keys, h_segments},
    {"GET", "/api/v1/sources/{}/timeline", READ, 0, range_keys, h_timeline},
    /* progressive clips (routes_clip.c) */
    {"GET", "/api/v1/sources/{}/clip.mp4", READ, 0, open_keys, web_h_clip_mp4},
    {"GET", "/api/v1/sources/{}/clip.mov", READ, 0, open_keys, web_h_clip_mov},
    {"GET", "/api/v1/sources/{}/clip.mkv", READ, 0, open_keys, web_h_clip_mkv},
    /* playback (routes_playback.c) */
    {"GET", "/api/v1/sources/{}/playlist.m3u8", READ, 0, playlist_keys, web_h_playlist},
    {"GET", "/api/v1/sources/{}/media/{}", READ, 0, media_keys, web_h_media},
    {"GET", "/api/v1/timeline", READ, 0, timeline_keys, web_h_timeline_all},
    /* audio and snapshots (routes_media.c) */
    {"GET", "/api/v1/sources/{}/audio.wav", READ, 0, open_keys, web_h_audio_wav},
    {"GET", "/api/v1/sources/{}/clip.wav", READ, 0, open_keys, web_h_clip_wav},
    {"GET", "/api/v1/sources/{}/peaks", READ, 0, peaks_keys, web_h_peaks},
    {"GET", "/api/v1/sources/{}/snapshot.jpg", READ, 0, snapshot_keys, web_h_snapshot},
    {"GET", "/api/v1/storage", WEB_PERM_ADMIN, 0, NULL, web_h_storage},
    {"GET", "/api/v1/holds", WEB_PERM_HOLD, 0, holds_keys, web_h_holds},
    {"POST", "/api/v1/holds", WEB_PERM_HOLD, WEB_ROUTE_BODY, NULL, web_h_hold_add},
    {"POST", "/api/v1/holds/{}/release", WEB_PERM_HOLD, WEB_ROUTE_BODY, NULL,
     web_h_hold_release},
    {"GET", "/api/v1/destruction-log", WEB_PERM_AUDIT, 0, range_keys, web_h_destruction_log},
    {"GET", "/api/v1/users", WEB_PERM_ADMIN, 0, NULL, web_h_users},
    {"POST", "/api/v1/users", WEB_PERM_ADMIN, WEB_ROUTE_BODY, NULL, web_h_user_add},
    {"PATCH", "/api/v1/users/{}", WEB_PERM_ADMIN, WEB_ROUTE_BODY, NULL, web_h_user_patch},
    {"DELETE", "/api/v1/users/{}", WEB_PERM_ADMIN, 0, NULL, web_h_user_delete},
    {"GET", "/api/v1/tokens", WEB_PERM_ADMIN, 0, NULL, web_h_tokens},
    {"POST", "/api/v1/tokens", WEB_PERM_ADMIN, WEB_ROUTE_BODY, NULL, web_h_token_add},
    {"DELETE", "/api/v1/tokens/{}", WEB_PERM_ADMIN, 0, NULL, web_h_token_revoke},
    {"GET", "/api/v1/audit", WEB_PERM_AUDIT, 0, audit_keys, web_h_audit},
    {"GET", "/api/v1/audit/verify", WEB_PERM_AUDIT, 0, NULL, web_h_audit_verify},
    {"GET", "/api/v1/audit/checkpoints", WEB_PERM_AUDIT, 0, checkpoint_keys,
     web_h_audit_checkpoints},
    /* evidence export (routes_export.c) */
    {"GET", "/api/v1/exports", WEB_PERM_EXPORT | WEB_PERM_AUDIT, 0, NULL, web_h_exports},
    {"POST", "/api/v1/exports", WEB_PERM_EXPORT, WEB_ROUTE_BODY, NULL, web_h_export_add},
    {"GET", "/api/v1/exports/{}", WEB_PERM_EXPORT | WEB_PERM_AUDIT, 0, NULL, web_h_export_get},
    /* audit: an officer downloads the subject-access bundle it asked for
     * (the handler lets only the owner or an admin download) */
    {"GET", "/api/v1/exports/{}/download", WEB_PERM_EXPORT | WEB_PERM_AUDIT, 0, NULL,
     web_h_export_download},
    {"DELETE", "/api/v1/exports/{}", WEB_PERM_EXPORT | WEB_PERM_AUDIT, 0, NULL,
     web_h_export_delete},
    /* the browser UI's own (routes_ui.c) */
    {"GET", "/api/v1/ui", 0, WEB_ROUTE_PUBLIC, NULL, web_h_ui},
    {"GET", "/api/v1/me/language", 0, 0, NULL, web_h_language},
    {"PUT", "/api/v1/me/language", 0, WEB_ROUTE_BODY, NULL, web_h_language_set},
    /* calls (routes_calls.c) */
    {"GET", "/api/v1/calls", WEB_PERM_CALLS, 0, calls_keys, web_h_calls},
    {"POST", "/api/v1/calls", WEB_PERM_PBX, WEB_ROUTE_BODY, NULL, web_h_call_add},
    {"POST", "/api/v1/calls/import", WEB_PERM_PBX | WEB_PERM_ADMIN,
     WEB_ROUTE_BODY | WEB_ROUTE_CSV, import_keys, web_h_call_import},
    /* a call of a line the caller may not see, or without `calls`, is a 404
     * like an unknown one: the handlers decide (routes_calls.c) */
    {"GET", "/api/v1/calls/{}", 0, 0, reason_keys, web_h_call},
    {"PATCH", "/api/v1/calls/{}", WEB_PERM_PBX | WEB_PERM_ANNOTATE, WEB_ROUTE_BODY, NULL,
     web_h_call_patch},
    {"GET", "/api/v1/calls/{}/audio.wav", 0, 0, reason_keys, web_h_call_audio},
    {"GET", "/api/v1/calls/{}/peaks", 0, 0, call_peaks_keys, web_h_call_peaks},
    {"GET", "/api/v1/desks", SEE, 0, NULL, web_h_desks},
    {"GET", "/api/v1/sources/{}/calls", WEB_PERM_CALLS, 0, range_keys, web_h_source_calls},
    {"POST", "/api/v1/subject-requests", WEB_PERM_ADMIN | WEB_PERM_AUDIT, WEB_ROUTE_BODY, NULL,
     web_h_subject_request},
    /* call quality: QA forms, evaluations, reports (routes_qa.c) */
    {"GET", "/api/v1/qa/forms", QA, 0, NULL, web_h_qa_forms},
    {"POST", "/api/v1/qa/forms", WEB_PERM_ADMIN, WEB_ROUTE_BODY, NULL, web_h_qa_form_add},
    {"GET", "/api/v1/qa/forms/{}", QA, 0, NULL, web_h_qa_form_get},
    {"PUT", "/api/v1/qa/forms/{}", WEB_PERM_ADMIN, WEB_ROUTE_BODY, NULL, web_h_qa_form_put},
    {"GET", "/api/v1/qa/evaluations", WEB_PERM_ANNOTATE, 0, qa_eval_keys, web_h_qa_evals},
    {"POST", "/api/v1/qa/evaluations", WEB_PERM_ANNOTATE, WEB_ROUTE_BODY, NULL,
     web_h_qa_eval_add},
    {"GET", "/api/v1/qa/evaluations/{}", WEB_PERM_ANNOTATE, 0, NULL, web_h_qa_eval_get},
    {"POST", "/api/v1/qa/evaluations/{}/versions", WEB_PERM_ANNOTATE, WEB_ROUTE_BODY, NULL,
     web_h_qa_eval_correct},
    {"GET", "/api/v1/reports/qa", QA | WEB_PERM_AUDIT, 0, report_keys, web_h_report_qa},
    {"GET", "/api/v1/reports/qa/calibration", QA | WEB_PERM_AUDIT, 0, calibration_keys,
     web_h_report_qa_calibration},
    {"GET", "/api/v1/reports/announcement", ANN, 0, report_keys, web_h_report_announcement},
    {"GET", "/api/v1/reports/announcement/missing", ANN, 0, ann_list_keys,
     web_h_report_announcement_missing},
    {"GET", "/api/v1/reports/announcement/disagreements", ANN, 0, ann_list_keys,
     web_h_report_announcement_disagreements},
    /* live view (routes_live.c); access checked per source there */
    {"POST", "/api/v1/sources/{}/whep", WEB_PERM_LIVE, WEB_ROUTE_BODY, NULL, web_h_whep_offer},
    {"DELETE", "/api/v1/whep/{}", WEB_PERM_LIVE | WEB_PERM_ADMIN, 0, NULL, web_h_whep_delete},
    {"GET", "/api/v1/sources/{}/live.mp4", WEB_PERM_LIVE, 0, NULL, web_h_live_mp4},
    {"GET", "/api/v1/live", WEB_PERM_LIVE | WEB_PERM_ADMIN, 0, NULL, web_h_live},
    /* per-account UI preferences such as the live wall layout (routes_ui.c) */
    {"GET", "/api/v1/me/prefs/{}", 0, 0, NULL, web_h_pref},
    {"PUT", "/api/v1/me/prefs/{}", 0, WEB_ROUTE_BODY, NULL, web_h_pref_set},
};

const size_t web_n_routes = sizeof(web_routes) / sizeof(web_routes[0]);
_Static_assert(sizeof(web_routes) / sizeof(web_routes[0]) <= WEB_MAX_ROUTES, "raise WEB_MAX_ROUTES");

static const int status_codes[WEB_STATUS_SLOTS] = {200, 201, 202, 204, 206, 304, 400, 401, 403,
                                                   404, 405, 409, 413, 416, 429, 500, 503, 0};

void web_count_request(struct web *w, const web_route_t *route, int status)
{
    size_t ri = route ? (size_t)(route - web_routes) : web_n_routes;
    size_t si = WEB_STATUS_SLOTS - 1; /* anything else */
    for (size_t i = 0; i + 1 < WEB_STATUS_SLOTS; i++) {
        if (status_codes[i] == status)
            si = i;
    }
    __atomic_add_fetch(&w->http_counts[ri][si], 1, __ATOMIC_RELAXED);
}

/* vigil_http_requests_total{route,status}, after the daemon's families. */
static void http_metrics(struct web *w, web_buf_t *b)
{
    web_buf_printf(b, "# HELP vigil_http_requests_total HTTP requests by route and status.\n"
                      "# TYPE vigil_http_requests_total counter\n");
    for (size_t ri = 0; ri <= web_n_routes; ri++) {
        for (size_t si = 0; si < WEB_STATUS_SLOTS; si++) {
            long n = __atomic_load_n(&w->http_counts[ri][si], __ATOMIC_RELAXED);
            if (!n)
                continue;
            char status[8];
            snprintf(status, sizeof(status), "%d", status_codes[si]);
            web_buf_printf(b, "vigil_http_requests_total{route=\"%s %s\",status=\"%s\"} %ld\n",
                           ri < web_n_routes ? web_routes[ri].method : "ANY",
                           ri < web_n_routes ? web_routes[ri].pattern : "unmatched",
                           si + 1 < WEB_STATUS_SLOTS ? status : "other", n);
        }
    }
    web_buf_printf(b, "# HELP vigil_http_deferred Requests whose work runs off the HTTP threads "
                      "now (WHEP offers gathering ICE candidates).\n"
                      "# TYPE vigil_http_deferred gauge\n"
                      "vigil_http_deferred %d\n",
                   __atomic_load_n(&w->deferred, __ATOMIC_SEQ_CST));
    web_buf_printf(b, "# HELP vigil_http_connections_refused_total Connections refused because "
                      "their address had http_connections_per_ip open.\n"
                      "# TYPE vigil_http_connections_refused_total counter\n"
                      "vigil_http_connections_refused_total %ld\n",
                   __atomic_load_n(&w->peers_refused, __ATOMIC_RELAXED));
}
