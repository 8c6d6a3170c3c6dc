/* WHEP sessions: one webrtcbin per viewer, fed with the feed's RTP (made
 * once per source by the packetizer, feed.c), so a viewer costs DTLS/SRTP
 * and ICE but no payloader. The offer is answered without trickle: ICE
 * candidates are gathered before the answer leaves (host candidates, and
 * the [live] stun/turn servers when set).
 *
 * webrtcbin (GStreamer 1.22) needs, for a sendonly answer: sink pads
 * requested with their RTP caps and transceivers set to sendonly with
 * codec preferences before the remote description is set; the H.264
 * profile-level-id the offer used, repeated exactly; media linked only
 * after the local description is set (else the answer says inactive); and
 * nothing sent before DTLS completes (it would be lost), so a viewer's
 * packets start at its "connected" with the cached GOP. */
/* webrtcbin's library is "unstable API" in 1.22: we use what 1.22 has. */
#define GST_USE_UNSTABLE_API
#include "live/live_private.h"

#include <gst/app/gstappsrc.h>
#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/util.h"

#define GATHER_TIMEOUT_US (5 * 1000000LL)
#define PROMISE_TIMEOUT_US (5 * 1000000LL)

static void refuse(live_whep_result_t *res, int status, const char *code, const char *codec,
                   const char *fmt, const char *arg)
{
    res->status = status;
    snprintf(res->code, sizeof(res->code), "%s", code);
    snprintf(res->codec, sizeof(res->codec), "%s", codec ? codec : "");
    snprintf(res->message, sizeof(res->message), fmt, arg ? arg : "");
}

/* ---- webrtcbin callbacks (its own threads) ---- */

static void on_gathering(GstElement *webrtc, GParamSpec *pspec, gpointer data)
{
    (void)pspec;
    live_session_t *s = data;
    GstWebRTCICEGatheringState st;
    g_object_get(webrtc, "ice-gathering-state", &st, NULL);
    if (st == GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE) {
        g_mutex_lock(&s->gather_lock);
        s->gathered = 1;
        g_cond_broadcast(&s->gather_cond);
        g_mutex_unlock(&s->gather_lock);
    }
}

static void on_connection(GstElement *webrtc, GParamSpec *pspec, gpointer data)
{
    (void)pspec;
    live_session_t *s = data;
    GstWebRTCPeerConnectionState st;
    g_object_get(webrtc, "connection-state", &st, NULL);
    switch (st) {
    case GST_WEBRTC_PEER_CONNECTION_STATE_CONNECTED:
        if (atomic_exchange(&s->state, LIVE_S_CONNECTED) != LIVE_S_CONNECTED &&
            !atomic_load(&s->ending))
            live_feed_viewer_connected(s->feed, s);
        break;
    case GST_WEBRTC_PEER_CONNECTION_STATE_DISCONNECTED:
        atomic_store(&s->state, LIVE_S_DISCONNECTED);
        break;
    case GST_WEBRTC_PEER_CONNECTION_STATE_FAILED:
        atomic_store(&s->state, LIVE_S_FAILED);
        pthread_cond_signal(&s->live->wake);
        break;
    default:
        break;
    }
}

/* ---- negotiation ---- */

/* Runs a webrtcbin action with a promise and waits for its reply (NULL on
 * failure or timeout; the caller frees with gst_promise_unref of *p). */
static const GstStructure *await(GstPromise *p)
{
    GstPromiseResult r = gst_promise_wait(p);
    return r == GST_PROMISE_RESULT_REPLIED ? gst_promise_get_reply(p) : NULL;
}

static int set_remote(live_session_t *s, const char *sdp_text)
{
    GstSDPMessage *msg = NULL;
    if (gst_sdp_message_new_from_text(sdp_text, &msg) != GST_SDP_OK)
        return VG_EINVAL;
    GstWebRTCSessionDescription *offer =
        gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_OFFER, msg);
    GstPromise *p = gst_promise_new();
    g_signal_emit_by_name(s->webrtc, "set-remote-description", offer, p);
    const GstStructure *reply = await(p);
    GError *err = NULL;
    int rc = VG_OK;
    if (reply && gst_structure_has_field(reply, "error")) {
        gst_structure_get(reply, "error", G_TYPE_ERROR, &err, NULL);
        vg_info("live: the offer was refused: %s", err ? err->message : "?");
        g_clear_error(&err);
        rc = VG_EINVAL;
    }
    gst_promise_unref(p);
    gst_webrtc_session_description_free(offer);
    return rc;
}

static int make_answer(live_session_t *s)
{
    GstPromise *p = gst_promise_new();
    g_signal_emit_by_name(s->webrtc, "create-answer", NULL, p);
    const GstStructure *reply = await(p);
    GstWebRTCSessionDescription *answer = NULL;
    if (reply)
        gst_structure_get(reply, "answer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &answer, NULL);
    gst_promise_unref(p);
    if (!answer)
        return VG_EMEDIA;
    p = gst_promise_new();
    g_signal_emit_by_name(s->webrtc, "set-local-description", answer, p);
    await(p);
    gst_promise_unref(p);
    gst_webrtc_session_description_free(answer);
    return VG_OK;
}

static void wait_gathered(live_session_t *s)
{
    gint64 until = g_get_monotonic_time() + GATHER_TIMEOUT_US;
    g_mutex_lock(&s->gather_lock);
    while (!s->gathered) {
        if (!g_cond_wait_until(&s->gather_cond, &s->gather_lock, until))
            break; /* answer with the candidates found so far */
    }
    g_mutex_unlock(&s->gather_lock);
}

static char *local_sdp(live_session_t *s)
{
    GstWebRTCSessionDescription *d = NULL;
    g_object_get(s->webrtc, "local-description", &d, NULL);
    if (!d)
        return NULL;
    gchar *text = gst_sdp_message_as_text(d->sdp);
    gst_webrtc_session_description_free(d);
    char *out = vg_strdup(text);
    g_free(text);
    return out;
}

static GstCaps *rtp_caps(const live_stream_info_t *st, int pt, const char *plid, guint ssrc)
{
    GstCaps *c = NULL;
    switch (st->codec) {
    case LIVE_C_H264:
        c = gst_caps_new_simple("application/x-rtp", "media", G_TYPE_STRING, "video",
                                "encoding-name", G_TYPE_STRING, "H264", "payload", G_TYPE_INT,
                                pt, "clock-rate", G_TYPE_INT, 90000, "packetization-mode",
                                G_TYPE_STRING, "1", "profile-level-id", G_TYPE_STRING, plid,
                                NULL);
        break;
    case LIVE_C_PCMA:
    case LIVE_C_PCMU:
        c = gst_caps_new_simple("application/x-rtp", "media", G_TYPE_STRING, "audio",
                                "encoding-name", G_TYPE_STRING,
                                st->codec == LIVE_C_PCMA ? "PCMA" : "PCMU", "payload",
                                G_TYPE_INT, pt, "clock-rate", G_TYPE_INT, 8000, NULL);
        break;
    case LIVE_C_OPUS:
        c = gst_caps_new_simple("application/x-rtp", "media", G_TYPE_STRING, "audio",
                                "encoding-name", G_TYPE_STRING, "OPUS", "payload", G_TYPE_INT,
                                pt, "clock-rate", G_TYPE_INT, 48000, "encoding-params",
                                G_TYPE_STRING, "2", NULL);
        break;
    default:
        return NULL;
    }
    /* The SSRC the packetizer uses: webrtcbin announces it (a=ssrc), which
     * browsers need to route packets without a MID header extension. */
    gst_caps_set_simple(c, "ssrc", G_TYPE_UINT, ssrc, NULL);
    return c;
}

typedef struct {
    int mline;          /* the offer's m-line for this slot, -1: not sent */
    int pt;
    char plid[16];
    GstCaps *caps;
    GstPad *pad;
} plan_t;

/* Requests webrtcbin's sink pad for each m-line we send, in m-line order,
 * each transceiver sendonly with its codec. */
static int add_transceivers(live_session_t *s, plan_t *plan)
{
    GstPadTemplate *tmpl =
        gst_element_class_get_pad_template(GST_ELEMENT_GET_CLASS(s->webrtc), "sink_%u");
    int order[LIVE_MAX_STREAMS] = {0, 1};
    if (plan[1].mline >= 0 && (plan[0].mline < 0 || plan[1].mline < plan[0].mline)) {
        order[0] = 1;
        order[1] = 0;
    }
    for (int k = 0; k < LIVE_MAX_STREAMS; k++) {
        plan_t *p = &plan[order[k]];
        if (p->mline < 0)
            continue;
        char name[16];
        snprintf(name, sizeof(name), "sink_%d", p->mline);
        p->pad = gst_element_request_pad(s->webrtc, tmpl, name, p->caps);
        if (!p->pad)
            return VG_EMEDIA;
        GstWebRTCRTPTransceiver *t = NULL;
        g_object_get(p->pad, "transceiver", &t, NULL);
        if (!t)
            return VG_EMEDIA;
        g_object_set(t, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY,
                     "codec-preferences", p->caps, NULL);
        gst_object_unref(t);
    }
    return VG_OK;
}

/* After the local description: each slot's appsrc, linked to its pad. */
static int link_sources(live_session_t *s, plan_t *plan)
{
    for (int i = 0; i < LIVE_MAX_STREAMS; i++) {
        if (plan[i].mline < 0)
            continue;
        GstElement *src = gst_element_factory_make("appsrc", NULL);
        if (!src)
            return VG_EMEDIA;
        g_object_set(src, "is-live", TRUE, "format", GST_FORMAT_TIME, "do-timestamp", TRUE,
                     "caps", plan[i].caps, NULL);
        gst_bin_add(GST_BIN(s->pipeline), src);
        GstPad *out = gst_element_get_static_pad(src, "src");
        GstPadLinkReturn lr = gst_pad_link(out, plan[i].pad);
        gst_object_unref(out);
        if (lr != GST_PAD_LINK_OK)
            return VG_EMEDIA;
        gst_element_sync_state_with_parent(src);
        s->src[i] = gst_object_ref(src);
        s->pt[i] = plan[i].pt;
    }
    return VG_OK;
}

void live_whep_teardown(live_session_t *s)
{
    GstElement *p = s->pipeline;
    if (!p)
        return;
    s->pipeline = NULL;
    gst_element_set_state(p, GST_STATE_NULL);
    for (int i = 0; i < LIVE_MAX_STREAMS; i++) {
        if (s->src[i])
            gst_object_unref(s->src[i]);
        s->src[i] = NULL;
    }
    if (s->webrtc)
        gst_object_unref(s->webrtc);
    s->webrtc = NULL;
    gst_object_unref(p);
}

/* Which offer m-line carries each of the feed's streams, with what payload
 * type; 406 when the offer cannot take the source. f->lock held. The caps
 * come after, with the packetizer (plan_packetizer). */
static int plan_streams(live_feed_t *f, const live_sdp_offer_t *o, plan_t *plan,
                        live_whep_result_t *res)
{
    char why[96], codec[48];
    live_feed_webrtc_reason(f, why, sizeof(why), codec, sizeof(codec));
    if (!f->up) {
        refuse(res, 503, "source_unavailable", NULL, "%s; try again shortly", why);
        res->retry_after = 2;
        return VG_EBUSY;
    }
    if (why[0]) {
        refuse(res, 406, "codec_unsupported", codec, "%s: use the MSE fallback", why);
        return VG_EINVAL;
    }
    int used[LIVE_SDP_MAX_MEDIA] = {0};
    for (int slot = 0; slot < LIVE_MAX_STREAMS; slot++) {
        const live_stream_info_t *st = &f->st[slot];
        plan[slot].mline = -1;
        if (!st->present || st->codec == LIVE_C_AAC)
            continue;
        const char *kind = slot == 0 ? "video" : "audio";
        for (int m = 0; m < o->n_media && plan[slot].mline < 0; m++) {
            if (used[m] || strcmp(o->media[m].kind, kind) != 0)
                continue;
            used[m] = 1; /* the first m-line of the kind is ours, usable or not */
            int pt = live_sdp_pick(&o->media[m], st->codec, st->profile,
                                   (st->constraints & 0x40) != 0, plan[slot].plid,
                                   sizeof(plan[slot].plid));
            if (pt >= 0) {
                plan[slot].mline = m;
                plan[slot].pt = pt;
            }
        }
        if (plan[slot].mline < 0 && (slot == 0 || !f->st[0].present)) {
            char c[48];
            if (st->codec == LIVE_C_H264)
                snprintf(c, sizeof(c), "H264 profile %02x%02x%02x, packetization-mode=1",
                         st->profile, st->constraints, st->level);
            else
                snprintf(c, sizeof(c), "%s", live_codec_name(st->codec));
            refuse(res, 406, "codec_unsupported", c, "the offer has no %s we can send", c);
            return VG_EINVAL;
        }
    }
    return VG_OK;
}

/* The source's packetizer, started if this is its first viewer (outside
 * f->lock: the capture thread never waits for it), then each planned
 * slot's caps with the packetizer's SSRC. VG_OK with f->lock held (the
 * caller unlocks); otherwise refused, f->lock not held. */
static int plan_packetizer(live_feed_t *f, unsigned gen, plan_t *plan, live_whep_result_t *res)
{
    int rc = live_feed_pay_ensure(f);
    if (rc == VG_OK) {
        pthread_mutex_lock(&f->lock);
        if (f->gen != gen || !f->pay_pipeline) {
            pthread_mutex_unlock(&f->lock);
            rc = VG_EBUSY; /* a reconnect meanwhile: planned against streams that are gone */
        }
    }
    if (rc == VG_EBUSY) {
        refuse(res, 503, "source_unavailable", NULL, "the source reconnected; try again%s", "");
        res->retry_after = 1;
        return rc;
    }
    if (rc != VG_OK) {
        refuse(res, 503, "live_unavailable", NULL, "the source's packetizer does not run%s",
               "");
        res->retry_after = 5;
        return rc;
    }
    for (int slot = 0; slot < LIVE_MAX_STREAMS; slot++) {
        if (plan[slot].mline >= 0)
            plan[slot].caps = rtp_caps(&f->st[slot], plan[slot].pt, plan[slot].plid,
                                       f->pay_ssrc[slot]);
    }
    return VG_OK;
}

static void plan_free(plan_t *plan)
{
    for (int i = 0; i < LIVE_MAX_STREAMS; i++) {
        if (plan[i].caps)
            gst_caps_unref(plan[i].caps);
        if (plan[i].pad)
            gst_object_unref(plan[i].pad);
    }
}

static int build(live_t *l, live_session_t *s, plan_t *plan, const char *offer)
{
    s->pipeline = gst_pipeline_new(NULL);
    s->webrtc = gst_element_factory_make("webrtcbin", NULL);
    if (!s->pipeline || !s->webrtc)
        return VG_EMEDIA;
    gst_object_ref(s->webrtc);
    gst_bin_add(GST_BIN(s->pipeline), s->webrtc);
    GstBus *bus = gst_element_get_bus(s->pipeline);
    gst_bus_set_sync_handler(bus, live_on_bus, g_strdup(s->source), g_free);
    gst_object_unref(bus);
    g_object_set(s->webrtc, "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_BUNDLE, NULL);
    if (l->cfg->live.stun)
        g_object_set(s->webrtc, "stun-server", l->cfg->live.stun, NULL);
    if (l->cfg->live.turn)
        g_object_set(s->webrtc, "turn-server", l->cfg->live.turn, NULL);
    g_signal_connect(s->webrtc, "notify::ice-gathering-state", G_CALLBACK(on_gathering), s);
    g_signal_connect(s->webrtc, "notify::connection-state", G_CALLBACK(on_connection), s);
    if (gst_element_set_state(s->pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE)
        return VG_EMEDIA;
    int rc = add_transceivers(s, plan);
    if (rc == VG_OK)
        rc = set_remote(s, offer);
    if (rc == VG_OK)
        rc = make_answer(s);
    if (rc == VG_OK)
        rc = link_sources(s, plan);
    if (rc == VG_OK)
        wait_gathered(s);
    return rc;
}

int live_whep_offer(live_t *l, const live_whep_request_t *req, live_whep_result_t *res)
{
    live_sdp_offer_t *o = vg_calloc(1, sizeof(*o));
    plan_t plan[LIVE_MAX_STREAMS];
    memset(plan, 0, sizeof(plan));
    char why[128], *text = NULL;
    live_feed_t *f = NULL;
    live_session_t *s = NULL;
    int reserved = 0, rc = VG_EINVAL;
    memset(res, 0, sizeof(*res));
    live_hooks_t hooks = req->hooks;
    if (!l) {
        refuse(res, 503, "live_disabled", NULL, "live view is off ([live] enabled = no)%s", "");
        goto cleanup;
    }
    if (live_sdp_parse(req->offer, req->offer_len, o, why, sizeof(why)) != VG_OK) {
        refuse(res, 400, "invalid_offer", NULL, "%s", why);
        goto cleanup;
    }
    if (!(f = live_find_feed(l, req->source))) {
        refuse(res, 404, "not_found", NULL, "no such source%s", "");
        goto cleanup;
    }
    pthread_mutex_lock(&f->lock);
    rc = plan_streams(f, o, plan, res);
    unsigned gen = f->gen;
    pthread_mutex_unlock(&f->lock);
    if (rc != VG_OK || (rc = plan_packetizer(f, gen, plan, res)) != VG_OK)
        goto cleanup;
    int src_pt[LIVE_MAX_STREAMS] = {f->pay_pt[0], f->pay_pt[1]};
    pthread_mutex_unlock(&f->lock);
    if (live_reserve(l, req->owner, res->message, sizeof(res->message)) != 0) {
        res->status = 503;
        snprintf(res->code, sizeof(res->code), "too_many_viewers");
        res->retry_after = 10;
        rc = VG_EBUSY;
        goto cleanup;
    }
    reserved = 1;
    s = live_session_new(l, LIVE_T_WEBRTC, req->source, req->owner, req->user, &hooks);
    memset(&hooks, 0, sizeof(hooks)); /* the session's now */
    live_feed_ref(f);
    s->feed = f;
    for (int i = 0; i < LIVE_MAX_STREAMS; i++)
        s->src_pt[i] = src_pt[i];
    text = vg_malloc(req->offer_len + 1);
    memcpy(text, req->offer, req->offer_len);
    text[req->offer_len] = '\0';
    if ((rc = build(l, s, plan, text)) != VG_OK) {
        refuse(res, 400, "negotiation_failed", NULL,
               "the offer could not be answered (webrtcbin refused it)%s", "");
        goto cleanup;
    }
    res->answer = local_sdp(s);
    if (!res->answer) {
        refuse(res, 500, "internal", NULL, "no answer was made%s", "");
        rc = VG_EMEDIA;
        goto cleanup;
    }
    pthread_mutex_lock(&f->lock);
    int stale = f->gen != gen || f->closed;
    pthread_mutex_unlock(&f->lock);
    if (stale) {
        refuse(res, 503, "source_unavailable", NULL, "the source reconnected; try again%s", "");
        res->retry_after = 1;
        rc = VG_EBUSY;
        goto cleanup;
    }
    live_feed_add_viewer(f, s);
    live_session_add(l, s);
    reserved = 0;
    /* connected before it was listed: start it now */
    if (atomic_load(&s->state) == LIVE_S_CONNECTED)
        live_feed_viewer_connected(f, s);
    snprintf(res->id, sizeof(res->id), "%s", s->id);
    res->status = 201;
    vg_info("source=%s live: WebRTC session %s for %s", req->source, s->id, req->owner);
    rc = VG_OK;

cleanup:
    if (rc != VG_OK) {
        free(res->answer);
        res->answer = NULL;
    }
    if (reserved)
        live_unreserve(l, req->owner);
    if (hooks.release)
        hooks.release(hooks.ctx);
    plan_free(plan);
    live_session_unref(s);
    live_feed_unref(f);
    free(text);
    free(o);
    return rc;
}
