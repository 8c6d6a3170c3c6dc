/* The live view routes (README "Live view"): WHEP (POST an SDP offer for a
 * source, DELETE the session), the fMP4 stream for MSE, and the list of
 * live sessions. live/ does the media; here are the access rules (live, and
 * calls for an audio line; sources the account may see), the audit rows of
 * a viewing's start and end (DESIGN.md invariant 6), and the re-check that
 * ends a viewing once its access is revoked (live/ asks about every second). */
#include "web/web_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

/* ---- hooks a session carries ---- */

typedef struct {
    struct web *w;
    web_grant_t grant;
    int64_t gen;
    int gen_known;
    char actor[96], ip[64], object[96], transport[8];
} hook_ctx_t;

static int hook_allowed(void *arg)
{
    hook_ctx_t *h = arg;
    return web_grant_poll(h->w, &h->grant, &h->gen, &h->gen_known);
}

/* The viewing's end row, queued for the group commit (nobody waits on it). */
static void hook_ended(void *arg, const char *id, const char *reason, int64_t started_us,
                       int64_t ended_us)
{
    hook_ctx_t *h = arg;
    idx_audit_t row = {0}, *a = &row;
    char detail[256];
    snprintf(detail, sizeof(detail), "phase=end transport=%s session=%s duration_s=%.1f reason=%s",
             h->transport, id, (double)(ended_us - started_us) / 1e6, reason);
    a->ts_us = ended_us;
    a->from_us = started_us;
    a->to_us = ended_us;
    vg_utf8_copy(a->actor, sizeof(a->actor), h->actor);
    vg_utf8_copy(a->ip, sizeof(a->ip), h->ip);
    vg_utf8_copy(a->action, sizeof(a->action), "live.view");
    vg_utf8_copy(a->object, sizeof(a->object), h->object);
    vg_utf8_copy(a->result, sizeof(a->result), strcmp(reason, "error") == 0 ? "error" : "ok");
    vg_utf8_copy(a->detail, sizeof(a->detail), detail);
    web_audit_detached(h->w, a);
}

static void hook_release(void *arg)
{
    hook_ctx_t *h = arg;
    sodium_memzero(&h->grant, sizeof(h->grant));
    free(h);
}

static live_hooks_t hooks_for(web_req_t *r, const char *name, const char *transport)
{
    hook_ctx_t *h = vg_calloc(1, sizeof(*h));
    const web_principal_t *who = &r->who;
    h->w = r->w;
    h->grant.kind = who->kind;
    memcpy(h->grant.session_hash, who->session_hash, sizeof(h->grant.session_hash));
    h->grant.token_id = who->token_id;
    h->grant.perms_any = WEB_PERM_LIVE;
    h->grant.live_view = 1;
    snprintf(h->grant.sources, sizeof(h->grant.sources), "%s", name);
    snprintf(h->actor, sizeof(h->actor), "%s", who->actor);
    snprintf(h->ip, sizeof(h->ip), "%s", r->ip);
    snprintf(h->object, sizeof(h->object), "source:%s", name);
    snprintf(h->transport, sizeof(h->transport), "%s", transport);
    return (live_hooks_t){.ctx = h, .allowed = hook_allowed, .ended = hook_ended,
                          .release = hook_release};
}

/* ---- access ---- */

/* The named source if the caller may watch it live; else NULL, answered:
 * 404 for unknown and invisible alike (a denial row when it exists), 403
 * without live (or calls, for an audio line). */
static const char *watchable_source(web_req_t *r)
{
    char buf[8], object[96];
    const char *name = r->params[0];
    const char *kind = web_source_kind(r->cfg, r->idx, name, buf, sizeof(buf));
    snprintf(object, sizeof(object), "source:%s", name);
    if (!kind || !web_source_visible(&r->who, name, kind)) {
        if (kind)
            web_audit(r, "live.view", object, 0, 0, "denied", "source not visible to this account");
        web_reply_error(r, 404, "not_found", "no such source");
        return NULL;
    }
    int audio = strcmp(kind, "audio") == 0;
    if (!web_has(&r->who, WEB_PERM_LIVE) || (audio && !web_has(&r->who, WEB_PERM_CALLS))) {
        web_audit(r, "live.view", object, 0, 0, "denied", "forbidden");
        web_reply_error(r, 403, "forbidden", "your account may not watch this source live");
        return NULL;
    }
    if (!r->w->cfg.live) {
        snprintf(r->retry_after, sizeof(r->retry_after), "60");
        web_reply_error(r, 503, "live_unavailable", "live view is off on this appliance");
        return NULL;
    }
    return name;
}

/* The user name shown for a session: the account's, or the token's. */
static const char *who_name(const web_req_t *r)
{
    return r->who.name;
}

static void refusal(web_req_t *r, const live_whep_result_t *res, const char *name)
{
    if (res->retry_after > 0)
        snprintf(r->retry_after, sizeof(r->retry_after), "%d", res->retry_after);
    if (res->status == 406) {
        char fallback[160];
        snprintf(fallback, sizeof(fallback), "/api/v1/sources/%s/live.mp4", name);
        json_t *err = json_pack("{ss ss}", "code", res->code, "message", res->message);
        web_reply_json(r, 406, json_pack("{so so so}", "error", err, "codec",
                                         web_json_text(res->codec), "fallback",
                                         web_json_text(fallback)));
        return;
    }
    web_reply_error(r, res->status ? res->status : 500, res->code[0] ? res->code : "internal",
                    "%s", res->message[0] ? res->message : "live view failed");
}

/* ---- WHEP ---- */

/* An offer being answered: webrtcbin gathers ICE candidates before the
 * answer leaves (0.2 s usually, up to 5 s), so live_whep_offer runs off
 * libmicrohttpd's threads (web_defer) with the connection suspended. What
 * the request points at (source name, owner, offer) lives in the request,
 * which outlives the work. */
typedef struct {
    live_t *live;
    live_whep_request_t req;
    live_whep_result_t res;
    int rc, ran;
} offer_job_t;

static void offer_work(void *arg)
{
    offer_job_t *j = arg;
    j->ran = 1; /* live_whep_offer owns the hooks now, whatever it returns */
    j->rc = live_whep_offer(j->live, &j->req, &j->res);
}

static void offer_finish(web_req_t *r, void *arg)
{
    offer_job_t *j = arg;
    const char *name = j->req.source;
    if (j->rc != VG_OK) {
        refusal(r, &j->res, name);
        return;
    }
    char object[96], detail[160];
    snprintf(object, sizeof(object), "source:%s", name);
    snprintf(detail, sizeof(detail), "phase=start transport=webrtc session=%s", j->res.id);
    web_audit(r, "live.view", object, r->now_us, 0, "ok", detail);
    snprintf(r->extra_name, sizeof(r->extra_name), "Location");
    snprintf(r->extra_value, sizeof(r->extra_value), "/api/v1/whep/%s", j->res.id);
    web_reply_text(r, 201, "application/sdp", j->res.answer, strlen(j->res.answer));
    j->res.answer = NULL; /* the reply's */
}

static void offer_free(void *arg)
{
    offer_job_t *j = arg;
    if (!j->ran && j->req.hooks.release)
        j->req.hooks.release(j->req.hooks.ctx);
    free(j->res.answer);
    free(j);
}

void web_h_whep_offer(web_req_t *r)
{
    const char *ct = web_req_header(r, "Content-Type");
    const char *name = watchable_source(r);
    if (!name)
        return;
    if (!ct || strncasecmp(ct, "application/sdp", 15) != 0 ||
        (ct[15] != '\0' && ct[15] != ';' && ct[15] != ' ')) {
        web_reply_error(r, 415, "unsupported_media_type",
                        "send the offer as application/sdp");
        return;
    }
    if (r->body_len > LIVE_SDP_MAX) {
        web_reply_error(r, 413, "body_too_large", "an SDP offer is limited to 64 KiB");
        return;
    }
    offer_job_t *j = vg_calloc(1, sizeof(*j));
    j->live = r->w->cfg.live;
    j->req = (live_whep_request_t){.source = name, .owner = r->who.actor, .user = who_name(r),
                                   .offer = r->body, .offer_len = r->body_len,
                                   .hooks = hooks_for(r, name, "webrtc")};
    web_defer(r, offer_work, offer_finish, j, offer_free);
}

void web_h_whep_delete(web_req_t *r)
{
    const char *id = r->params[0];
    int admin = web_has(&r->who, WEB_PERM_ADMIN);
    if (strlen(id) >= LIVE_ID_MAX ||
        live_session_end(r->w->cfg.live, id, admin ? NULL : r->who.actor) != VG_OK) {
        web_reply_error(r, 404, "not_found", "no such live session");
        return;
    }
    web_reply_json(r, 200, json_pack("{ss ss}", "id", id, "state", "closed"));
}

/* ---- fMP4 for MSE ---- */

static long stream_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    return live_stream_read(ctx, buf, max);
}

static void stream_free(void *ctx)
{
    live_stream_close(ctx);
}

void web_h_live_mp4(web_req_t *r)
{
    const char *name = watchable_source(r);
    if (!name)
        return;
    live_stream_request_t req = {.source = name, .owner = r->who.actor, .user = who_name(r),
                                 .hooks = hooks_for(r, name, "mse")};
    live_whep_result_t res;
    live_stream_t *s = NULL;
    char codecs[96];
    /* The waker exists before the stream can call it: answer first. */
    web_waker_t *k = web_reply_stream(r, 200, "video/mp4", stream_read, NULL, stream_free);
    req.wake = web_stream_wake;
    req.wake_ctx = k;
    if (live_stream_open(r->w->cfg.live, &req, &s, codecs, sizeof(codecs), &res) != VG_OK) {
        refusal(r, &res, name);
        return;
    }
    r->body_ctx = s;
    if (strncmp(codecs, "mp4a", 4) == 0 || strcmp(codecs, "flac") == 0)
        r->content_type = "audio/mp4";
    snprintf(r->extra_name, sizeof(r->extra_name), "X-Vigil-Codecs");
    snprintf(r->extra_value, sizeof(r->extra_value), "%s", codecs);
    char object[96], detail[160];
    snprintf(object, sizeof(object), "source:%s", name);
    snprintf(detail, sizeof(detail), "phase=start transport=mse session=%s codecs=%s",
             live_stream_id(s), codecs);
    web_audit(r, "live.view", object, r->now_us, 0, "ok", detail);
}

/* ---- status ---- */

void web_h_live(web_req_t *r)
{
    live_status_t st;
    int admin = web_has(&r->who, WEB_PERM_ADMIN);
    live_status(r->w->cfg.live, admin ? NULL : r->who.actor, &st);
    json_t *arr = json_array();
    for (size_t i = 0; i < st.n_sessions; i++) {
        const live_session_info_t *s = &st.sessions[i];
        json_array_append_new(
            arr, json_pack("{ss ss so ss so ss}", "id", s->id, "source", s->source, "user",
                           web_json_text(s->user), "transport", s->transport, "started",
                           web_time_json(s->started_us), "state", s->state));
    }
    web_reply_json(r, 200, json_pack("{si si si so}", "viewers", admin ? st.viewers
                                                                       : (int)st.n_sessions,
                                     "max_viewers", st.max_viewers, "max_viewers_per_user",
                                     st.max_viewers_per_user, "sessions", arr));
    live_status_free(&st);
}

json_t *web_live_source_json(web_req_t *r, const char *name)
{
    live_source_info_t info;
    if (!r->w->cfg.live)
        return json_pack("{si sb ss}", "viewers", 0, "webrtc", 0, "reason", "live view is off");
    if (live_source_info(r->w->cfg.live, name, &info) != VG_OK)
        return json_pack("{si sb ss}", "viewers", 0, "webrtc", 0, "reason",
                         "the source is not running");
    return json_pack("{si sb so}", "viewers", info.viewers, "webrtc", info.webrtc, "reason",
                     info.reason[0] ? json_string(info.reason) : json_null());
}
