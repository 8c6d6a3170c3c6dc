/* A feed: one source's packets as live view sees them, from the capture
 * thread (never blocking it). It maps capture's timestamps onto a timeline
 * that never goes back (a camera reconnect continues it), keeps the packets
 * since the last keyframe (for MSE viewers), and, while WebRTC viewers
 * exist, runs the source's packetizer: appsrc ! payloader ! appsink per
 * stream, so RTP is made once per source whatever the number of viewers.
 * The packetizer's RTP since the last keyframe is kept too: a viewer whose
 * DTLS just completed gets it at once and decodes without waiting for the
 * camera's next keyframe. Queues are bounded: a viewer that falls behind
 * skips to the next keyframe. */
#include "live/live_private.h"

#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/util.h"
#include "relay/relay.h"

/* A GOP larger than this is not cached: viewers then wait for a keyframe. */
#define GOP_MAX_BYTES (8u * 1024 * 1024)
/* The packetizer's input and a viewer's send queue: past this, skip to the
 * next keyframe (about 4 s of a 4 Mbit/s camera). */
#define QUEUE_MAX_BYTES (2u * 1024 * 1024)
#define RTP_MTU 1200
#define PT_H264 96
#define PT_OPUS 111

void live_feed_ref(live_feed_t *f)
{
    atomic_fetch_add(&f->refs, 1);
}

static void gop_clear(live_feed_t *f)
{
    for (size_t i = 0; i < f->n_gop; i++)
        gst_buffer_unref(f->gop[i]);
    f->n_gop = 0;
    f->gop_bytes = 0;
}

static void raw_clear(live_feed_t *f)
{
    for (size_t i = 0; i < f->n_raw; i++)
        av_packet_free(&f->raw[i]);
    f->n_raw = 0;
    f->raw_bytes = 0;
}

static void streams_clear(live_feed_t *f)
{
    for (int i = 0; i < LIVE_MAX_STREAMS; i++) {
        avcodec_parameters_free(&f->st[i].par);
        memset(&f->st[i], 0, sizeof(f->st[i]));
    }
    free(f->params);
    f->params = NULL;
    f->params_len = 0;
}

void live_feed_unref(live_feed_t *f)
{
    if (!f || atomic_fetch_sub(&f->refs, 1) != 1)
        return;
    gop_clear(f);
    raw_clear(f);
    streams_clear(f);
    if (f->pay_pipeline) {
        gst_element_set_state(f->pay_pipeline, GST_STATE_NULL);
        gst_object_unref(f->pay_pipeline);
    }
    for (int i = 0; i < LIVE_MAX_STREAMS; i++) {
        if (f->pay_src[i])
            gst_object_unref(f->pay_src[i]);
    }
    for (size_t i = 0; i < f->n_dead; i++) {
        gst_element_set_state(f->dead[i], GST_STATE_NULL);
        gst_object_unref(f->dead[i]);
    }
    free(f->dead);
    free(f->gop);
    free(f->gop_slot);
    free(f->raw);
    free(f->viewers);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

int live_feed_open(live_t *l, const vg_source_config_t *src, live_feed_t **out)
{
    *out = NULL;
    if (!l)
        return VG_OK;
    live_feed_t *f = vg_calloc(1, sizeof(*f));
    atomic_init(&f->refs, 2); /* the caller's, and the live list's */
    f->live = l;
    f->gen = 1;
    snprintf(f->name, sizeof(f->name), "%s", src->name);
    f->kind = src->kind;
    pthread_mutex_init(&f->lock, NULL);
    f->last_pts_v = INT64_MIN;
    for (int i = 0; i < LIVE_MAX_STREAMS; i++)
        f->last_ns[i] = INT64_MIN;
    pthread_mutex_lock(&l->lock);
    l->feeds = vg_realloc(l->feeds, (l->n_feeds + 1) * sizeof(*l->feeds));
    l->feeds[l->n_feeds++] = f;
    pthread_mutex_unlock(&l->lock);
    *out = f;
    return VG_OK;
}

/* Ends every viewer of f (they may reconnect at once). f->lock held. */
static void end_viewers(live_feed_t *f, const char *reason)
{
    for (size_t i = 0; i < f->n_viewers; i++)
        live_session_request_end(f->viewers[i], reason);
}

/* Hands the packetizer to the housekeeping thread: stopping a pipeline
 * waits for its streaming threads, which may be in on_rtp waiting for
 * f->lock, held here (by the capture thread, or the closing one): stopped
 * here, it would deadlock, and recording with it. However many are
 * retired before the housekeeping thread comes round, each waits its turn
 * in the list. f->lock held. */
static void pay_retire(live_feed_t *f)
{
    if (!f->pay_pipeline)
        return;
    if (f->n_dead == f->cap_dead) {
        f->cap_dead = f->cap_dead ? f->cap_dead * 2 : 2;
        f->dead = vg_realloc(f->dead, f->cap_dead * sizeof(*f->dead));
    }
    f->dead[f->n_dead++] = f->pay_pipeline;
    f->pay_pipeline = NULL;
    for (int i = 0; i < LIVE_MAX_STREAMS; i++) {
        if (f->pay_src[i])
            gst_object_unref(f->pay_src[i]);
        f->pay_src[i] = NULL;
    }
    gop_clear(f);
    f->gop_valid = 0;
    pthread_cond_signal(&f->live->wake);
}

void live_feed_reap(live_feed_t *f)
{
    pthread_mutex_lock(&f->lock);
    GstElement **dead = f->dead;
    size_t n = f->n_dead;
    f->dead = NULL;
    f->n_dead = f->cap_dead = 0;
    pthread_mutex_unlock(&f->lock);
    /* No lock held: their streaming threads may finish what they are in
     * (on_rtp drops it: the pipeline is no longer f->pay_pipeline). */
    for (size_t i = 0; i < n; i++) {
        gst_element_set_state(dead[i], GST_STATE_NULL);
        gst_object_unref(dead[i]);
    }
    free(dead);
}

/* ---- begin: what the streams are ---- */

static void set_params(live_feed_t *f, const AVCodecParameters *p)
{
    const uint8_t *d = p->extradata;
    size_t n = (size_t)p->extradata_size;
    /* RTSP gives the SDP's sprop parameter sets as Annex-B extradata. */
    if (n >= 4 && d[0] == 0 && d[1] == 0 && (d[2] == 1 || (d[2] == 0 && d[3] == 1))) {
        f->params = vg_malloc(n);
        memcpy(f->params, d, n);
        f->params_len = n;
    }
}

/* Equal signatures: viewers' decoders may carry on. */
static int same_streams(const live_feed_t *f, const live_stream_info_t *st)
{
    for (int i = 0; i < LIVE_MAX_STREAMS; i++) {
        const live_stream_info_t *a = &f->st[i], *b = &st[i];
        if (a->present != b->present || a->codec != b->codec || a->profile != b->profile ||
            a->sample_rate != b->sample_rate || a->channels != b->channels)
            return 0;
        if (a->par && b->par &&
            (a->par->extradata_size != b->par->extradata_size ||
             (a->par->extradata_size &&
              memcmp(a->par->extradata, b->par->extradata, (size_t)a->par->extradata_size))))
            return 0;
    }
    return 1;
}

int live_feed_begin(live_feed_t *f, AVStream *const *streams, unsigned n_streams)
{
    live_stream_info_t st[LIVE_MAX_STREAMS];
    int map[16] = {0};
    memset(st, 0, sizeof(st));
    unsigned n_map = n_streams < 16 ? n_streams : 16;
    for (unsigned i = 0; i < n_map; i++) {
        const AVCodecParameters *p = streams[i]->codecpar;
        live_codec_t c = live_codec_of(p->codec_id);
        int slot = c == LIVE_C_H264 || c == LIVE_C_H265 ? 0 : c != LIVE_C_NONE ? 1 : -1;
        map[i] = -1;
        if (slot < 0 || st[slot].present)
            continue;
        map[i] = slot;
        live_stream_info_t *s = &st[slot];
        s->present = 1;
        s->codec = c;
        s->video = slot == 0;
        s->tb = streams[i]->time_base;
        s->sample_rate = p->sample_rate;
        s->channels = p->ch_layout.nb_channels;
        s->par = avcodec_parameters_alloc();
        if (!s->par || avcodec_parameters_copy(s->par, p) < 0)
            abort(); /* out of memory */
        if (c == LIVE_C_H264 &&
            live_h264_sps_info(p->extradata, (size_t)p->extradata_size, &s->profile,
                               &s->constraints, &s->level) != VG_OK) {
            s->profile = p->profile > 0 ? (p->profile & 0xff) : 0;
            s->level = p->level > 0 ? p->level : 0;
        }
    }
    pthread_mutex_lock(&f->lock);
    int changed = f->gen > 1 || f->st[0].present || f->st[1].present ? !same_streams(f, st) : 0;
    if (changed) {
        /* Decoders were set up for the old streams (SDP, init segment). */
        vg_notice("source=%s live: stream parameters changed, ending live viewers", f->name);
        end_viewers(f, "error");
        pay_retire(f);
        f->gen++;
        f->bframes = 0;
    }
    streams_clear(f);
    memcpy(f->st, st, sizeof(st));
    memcpy(f->map, map, sizeof(map[0]) * n_map);
    f->n_map = n_map;
    if (st[0].present)
        set_params(f, st[0].par);
    f->up = st[0].present || st[1].present;
    vg_rebase_restart(&f->clock);
    /* The new connection's timestamps start anywhere (libav's RTSP ones near
     * 0): B-frames are told from its own packets only. A flag set by an
     * earlier connection stays while the streams are the same (the same
     * encoder settings): a camera seen reordering is not offered over
     * WebRTC in the moment before its first reordered picture. */
    f->last_pts_v = INT64_MIN;
    f->pay_wait_key = 1;
    for (size_t i = 0; i < f->n_viewers; i++)
        f->viewers[i]->wait_key = 1;
    gop_clear(f);
    f->gop_valid = 0;
    raw_clear(f);
    f->raw_valid = 0;
    pthread_mutex_unlock(&f->lock);
    return VG_OK;
}

void live_feed_end(live_feed_t *f)
{
    pthread_mutex_lock(&f->lock);
    /* Nothing follows the cached GOP now: a new viewer would stall on it. */
    f->up = 0;
    gop_clear(f);
    f->gop_valid = 0;
    raw_clear(f);
    f->raw_valid = 0;
    pthread_mutex_unlock(&f->lock);
}

void live_feed_close(live_feed_t *f)
{
    if (!f)
        return;
    live_t *l = f->live;
    pthread_mutex_lock(&f->lock);
    f->closed = 1;
    f->up = 0;
    end_viewers(f, "error");
    pay_retire(f);
    pthread_mutex_unlock(&f->lock);
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < l->n_feeds; i++) {
        if (l->feeds[i] == f) {
            l->feeds[i] = l->feeds[--l->n_feeds];
            live_feed_unref(f);
            break;
        }
    }
    pthread_mutex_unlock(&l->lock);
    live_feed_reap(f);
    live_feed_unref(f);
}

/* ---- packets ---- */

/* Capture time -> the feed's timeline (ns), which continues across camera
 * reconnects and across jumps of the camera's timestamps inside one (an
 * encoder restart with a new RTP timestamp base): pinned to its last time
 * instead, every packet after a jump back would be refused by MSE viewers'
 * muxer and sent with one RTP time over WebRTC until the camera caught up.
 * f->lock held. */
static int stamp(live_feed_t *f, const AVPacket *pkt, int slot, int64_t *pts, int64_t *dts)
{
    int64_t d = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pkt->pts;
    int64_t p = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : d;
    if (d == AV_NOPTS_VALUE)
        return VG_EINVAL;
    AVRational ns = {1, 1000000000};
    int64_t dn = av_rescale_q(d, f->st[slot].tb, ns), pn = av_rescale_q(p, f->st[slot].tb, ns);
    int64_t shift = vg_rebase_map(&f->clock, dn) - dn;
    /* Decode order must go forward per stream (the muxer, the payloaders):
     * a camera's small step back is nudged, not passed on. */
    *dts = dn + shift;
    if (f->last_ns[slot] != INT64_MIN && *dts <= f->last_ns[slot])
        *dts = f->last_ns[slot] + 1;
    *pts = pn + shift;
    if (*pts < *dts)
        *pts = *dts;
    f->last_ns[slot] = *dts;
    if (slot == 0) {
        /* A picture shown shortly before the one decoded just before it, in
         * one connection: B-frames, which browsers' WebRTC stacks do not
         * reorder. A step back of more than the clock's jump bound is a
         * jump (whichever stream's packet re-based the clock), never
         * reordering. */
        if (f->last_pts_v != INT64_MIN && pn < f->last_pts_v &&
            f->last_pts_v - pn <= VG_REBASE_BACK_NS)
            f->bframes = 1;
        f->last_pts_v = pn;
    }
    return VG_OK;
}

static void raw_keep(live_feed_t *f, const AVPacket *pkt, int key)
{
    if (key) {
        raw_clear(f);
        f->raw_valid = 1;
    }
    if (!f->raw_valid)
        return;
    if (f->raw_bytes + (size_t)pkt->size > GOP_MAX_BYTES) {
        raw_clear(f);
        f->raw_valid = 0;
        return;
    }
    if (f->n_raw == f->cap_raw) {
        f->cap_raw = f->cap_raw ? f->cap_raw * 2 : 64;
        f->raw = vg_realloc(f->raw, f->cap_raw * sizeof(*f->raw));
    }
    AVPacket *c = av_packet_clone(pkt);
    if (!c)
        abort();
    f->raw[f->n_raw++] = c;
    f->raw_bytes += (size_t)pkt->size;
}

/* One access unit (or audio packet) into the packetizer. f->lock held. */
static void pay_push(live_feed_t *f, const AVPacket *pkt, int slot, int key)
{
    GstAppSrc *src = f->pay_src[slot] ? GST_APP_SRC(f->pay_src[slot]) : NULL;
    if (!src)
        return;
    int video_key = slot == 0 && key;
    if (f->pay_wait_key && f->st[0].present) {
        if (!video_key)
            return;
        f->pay_wait_key = 0;
    } else if (gst_app_src_get_current_level_bytes(src) > QUEUE_MAX_BYTES) {
        f->pay_wait_key = 1; /* the packetizer stalled: never buffer without bound */
        return;
    }
    f->pay_wait_key = 0;
    GstBuffer *buf = gst_buffer_new();
    if (video_key && f->params && !live_au_has_sps(pkt->data, (size_t)pkt->size)) {
        /* the payloader repeats SPS/PPS only when it has seen them */
        GBytes *b = g_bytes_new(f->params, f->params_len);
        gsize n;
        gconstpointer d = g_bytes_get_data(b, &n);
        gst_buffer_append_memory(buf, gst_memory_new_wrapped(GST_MEMORY_FLAG_READONLY,
                                                             (gpointer)d, n, 0, n, b,
                                                             (GDestroyNotify)g_bytes_unref));
    }
    gst_buffer_append_memory(buf, rly_packet_memory(pkt));
    GST_BUFFER_PTS(buf) = (GstClockTime)pkt->pts;
    GST_BUFFER_DTS(buf) = (GstClockTime)pkt->dts;
    if (slot == 0 && !key)
        GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DELTA_UNIT);
    gst_app_src_push_buffer(src, buf);
}

int live_feed_packet(live_feed_t *f, const AVPacket *pkt, int64_t recv_wall_us)
{
    (void)recv_wall_us;
    int64_t pts, dts;
    pthread_mutex_lock(&f->lock);
    int slot = pkt->stream_index >= 0 && (unsigned)pkt->stream_index < f->n_map
                   ? f->map[pkt->stream_index]
                   : -1;
    if (slot < 0 || !f->up || f->closed || stamp(f, pkt, slot, &pts, &dts) != VG_OK) {
        pthread_mutex_unlock(&f->lock);
        return VG_OK;
    }
    int key = slot == 0 ? (pkt->flags & AV_PKT_FLAG_KEY) != 0 : !f->st[0].present;
    /* The packet on the feed's timeline, in ns: what MSE viewers and the
     * packetizer are given. */
    AVPacket *t = av_packet_clone(pkt);
    if (!t)
        abort();
    t->pts = pts;
    t->dts = dts;
    t->stream_index = slot;
    raw_keep(f, t, key);
    pay_push(f, t, slot, key);
    for (size_t i = 0; i < f->n_viewers; i++) {
        if (f->viewers[i]->transport == LIVE_T_MSE)
            live_mse_packet(f->viewers[i], t, slot, key);
    }
    av_packet_free(&t);
    pthread_mutex_unlock(&f->lock);
    return VG_OK;
}

/* ---- the packetizer ---- */

/* 1 when an H.264 RTP packet starts an access unit with SPS or an IDR
 * slice, i.e. where a decoder can start. */
static int rtp_key_start(const uint8_t *d, size_t n, uint32_t *ts)
{
    if (n < 13 || (d[0] >> 6) != 2)
        return 0;
    size_t off = 12 + 4u * (d[0] & 0x0f);
    if (d[0] & 0x10) { /* header extension */
        if (off + 4 > n)
            return 0;
        off += 4 + 4u * (size_t)((d[off + 2] << 8) | d[off + 3]);
    }
    *ts = (uint32_t)d[4] << 24 | (uint32_t)d[5] << 16 | (uint32_t)d[6] << 8 | d[7];
    if (off >= n)
        return 0;
    int type = d[off] & 0x1f;
    if (type == 24 && off + 3 < n) /* STAP-A: the first aggregated NAL */
        type = d[off + 3] & 0x1f;
    else if (type == 28 && off + 1 < n) /* FU-A: its start fragment */
        type = (d[off + 1] & 0x80) ? (d[off + 1] & 0x1f) : 0;
    return type == 7 ? 1 : type == 5 ? 2 : 0;
}

/* buf for one viewer: its own metadata (the viewer's appsrc stamps it with
 * the viewer pipeline's clock: the packetizer's times mean nothing there)
 * around the shared bytes, or a copy of the bytes when the viewer's
 * payload type differs. */
static GstBuffer *for_viewer(GstBuffer *buf, int src_pt, int pt)
{
    GstBuffer *c = pt == src_pt || pt < 0 ? gst_buffer_copy(buf) : gst_buffer_copy_deep(buf);
    GST_BUFFER_PTS(c) = GST_BUFFER_DTS(c) = GST_CLOCK_TIME_NONE;
    GST_BUFFER_DURATION(c) = GST_CLOCK_TIME_NONE;
    if (pt == src_pt || pt < 0)
        return c;
    GstMapInfo m;
    if (gst_buffer_map(c, &m, GST_MAP_WRITE)) {
        if (m.size > 1)
            m.data[1] = (uint8_t)((m.data[1] & 0x80) | (pt & 0x7f));
        gst_buffer_unmap(c, &m);
    }
    return c;
}

/* An RTP packet to a viewer, bounded. f->lock held. */
static void viewer_push(live_session_t *s, GstBuffer *buf, int slot, int key_start)
{
    GstAppSrc *src = s->src[slot] ? GST_APP_SRC(s->src[slot]) : NULL;
    if (!src)
        return;
    if (s->wait_key) {
        if (!key_start)
            return;
        s->wait_key = 0;
    } else if (gst_app_src_get_current_level_bytes(src) > QUEUE_MAX_BYTES) {
        s->wait_key = 1;
        return;
    }
    gst_app_src_push_buffer(src, for_viewer(buf, s->src_pt[slot], s->pt[slot]));
}

static void gop_keep(live_feed_t *f, GstBuffer *buf, int slot, int key_start)
{
    if (key_start) {
        gop_clear(f);
        f->gop_valid = 1;
    }
    gsize size = gst_buffer_get_size(buf);
    if (!f->gop_valid)
        return;
    if (f->gop_bytes + size > GOP_MAX_BYTES) {
        gop_clear(f);
        f->gop_valid = 0;
        return;
    }
    if (f->n_gop == f->cap_gop) {
        f->cap_gop = f->cap_gop ? f->cap_gop * 2 : 256;
        f->gop = vg_realloc(f->gop, f->cap_gop * sizeof(*f->gop));
        f->gop_slot = vg_realloc(f->gop_slot, f->cap_gop * sizeof(*f->gop_slot));
    }
    f->gop[f->n_gop] = gst_buffer_ref(buf);
    f->gop_slot[f->n_gop++] = slot;
    f->gop_bytes += size;
}

typedef struct {
    live_feed_t *feed;
    int slot;
    GstElement *pipeline; /* whose packets these are */
} sink_ctx_t;

static GstFlowReturn on_rtp(GstAppSink *sink, gpointer data)
{
    sink_ctx_t *c = data;
    live_feed_t *f = c->feed;
    GstSample *sample = gst_app_sink_pull_sample(sink);
    GstBuffer *buf = sample ? gst_sample_get_buffer(sample) : NULL;
    if (!buf) {
        if (sample)
            gst_sample_unref(sample);
        return GST_FLOW_OK;
    }
    int key_start = 0;
    pthread_mutex_lock(&f->lock);
    if (f->pay_pipeline != c->pipeline) { /* a retired packetizer draining */
        pthread_mutex_unlock(&f->lock);
        gst_sample_unref(sample);
        return GST_FLOW_OK;
    }
    if (c->slot == 0) {
        GstMapInfo m;
        uint32_t ts = 0;
        int k = 0;
        if (gst_buffer_map(buf, &m, GST_MAP_READ)) {
            k = rtp_key_start(m.data, m.size, &ts);
            gst_buffer_unmap(buf, &m);
        }
        /* An IDR slice right after its SPS is in the same access unit. */
        key_start = k == 1 || (k == 2 && !(f->last_rtp_ts_known && f->last_rtp_ts == ts &&
                                           f->n_gop > 0));
        if (k == 1 || k == 2) {
            f->last_rtp_ts = ts;
            f->last_rtp_ts_known = 1;
        }
    } else {
        key_start = !f->st[0].present;
    }
    if (c->slot == 0 || f->gop_valid || !f->st[0].present)
        gop_keep(f, buf, c->slot, key_start && (c->slot == 0 || !f->st[0].present));
    for (size_t i = 0; i < f->n_viewers; i++) {
        live_session_t *s = f->viewers[i];
        if (s->transport == LIVE_T_WEBRTC && s->started)
            viewer_push(s, buf, c->slot,
                        c->slot == 0 ? key_start : !f->st[0].present || !s->wait_key);
    }
    pthread_mutex_unlock(&f->lock);
    gst_sample_unref(sample);
    return GST_FLOW_OK;
}

static void sink_ctx_free(gpointer p)
{
    g_free(p);
}

/* The payloader description of a slot, or NULL. */
static char *pay_desc(const live_stream_info_t *s, int slot, int *pt, guint ssrc)
{
    switch (s->codec) {
    case LIVE_C_H264:
        *pt = PT_H264;
        return g_strdup_printf("appsrc name=src%d format=time is-live=true "
                               "caps=video/x-h264,stream-format=byte-stream,alignment=au ! "
                               "rtph264pay config-interval=-1 mtu=%d pt=%d ssrc=%u "
                               "aggregate-mode=zero-latency ! appsink name=sink%d sync=false "
                               "async=false",
                               slot, RTP_MTU, PT_H264, ssrc, slot);
    case LIVE_C_PCMA:
    case LIVE_C_PCMU:
        *pt = s->codec == LIVE_C_PCMA ? 8 : 0;
        return g_strdup_printf("appsrc name=src%d format=time is-live=true "
                               "caps=audio/x-%s,rate=%d,channels=%d ! %s pt=%d ssrc=%u ! "
                               "appsink name=sink%d sync=false async=false",
                               slot, s->codec == LIVE_C_PCMA ? "alaw" : "mulaw",
                               s->sample_rate, s->channels,
                               s->codec == LIVE_C_PCMA ? "rtppcmapay" : "rtppcmupay", *pt, ssrc,
                               slot);
    case LIVE_C_OPUS:
        *pt = PT_OPUS;
        return g_strdup_printf("appsrc name=src%d format=time is-live=true "
                               "caps=audio/x-opus,channel-mapping-family=0,channels=%d,"
                               "rate=48000 ! rtpopuspay pt=%d ssrc=%u ! appsink name=sink%d "
                               "sync=false async=false",
                               slot, s->channels, PT_OPUS, ssrc, slot);
    default:
        return NULL;
    }
}

/* A packetizer's errors, logged from the thread that posts them. */
GstBusSyncReply live_on_bus(GstBus *bus, GstMessage *msg, gpointer data)
{
    (void)bus;
    const char *name = data;
    if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR || GST_MESSAGE_TYPE(msg) == GST_MESSAGE_WARNING) {
        GError *err = NULL;
        gchar *dbg = NULL;
        if (GST_MESSAGE_TYPE(msg) == GST_MESSAGE_ERROR)
            gst_message_parse_error(msg, &err, &dbg);
        else
            gst_message_parse_warning(msg, &err, &dbg);
        vg_warn("source=%s live: %s: %s (%s)", name, GST_OBJECT_NAME(GST_MESSAGE_SRC(msg)), err ? err->message : "?",
                dbg ? dbg : "");
        g_clear_error(&err);
        g_free(dbg);
    }
    return GST_BUS_DROP;
}

/* A packetizer for streams st, built and started with no lock held (it
 * takes a few ms to tens of ms: gst_parse_launch, state changes), its
 * appsinks already pointing at f but dropping what they get until it is
 * installed (on_rtp compares f->pay_pipeline). NULL when it cannot be. */
static GstElement *pay_build(live_feed_t *f, const live_stream_info_t *st, int *pt,
                             const guint *ssrc)
{
    char *desc[LIVE_MAX_STREAMS] = {NULL, NULL};
    for (int i = 0; i < LIVE_MAX_STREAMS; i++) {
        pt[i] = -1;
        if (st[i].present)
            desc[i] = pay_desc(&st[i], i, &pt[i], ssrc[i]);
    }
    if (!desc[0] && !desc[1])
        return NULL;
    char *all = g_strdup_printf("%s %s", desc[0] ? desc[0] : "", desc[1] ? desc[1] : "");
    GError *err = NULL;
    GstElement *p = gst_parse_launch(all, &err);
    g_free(all);
    g_free(desc[0]);
    g_free(desc[1]);
    if (!p || err) {
        vg_err("source=%s live: cannot build the packetizer: %s", f->name,
               err ? err->message : "?");
        g_clear_error(&err);
        if (p)
            gst_object_unref(p);
        return NULL;
    }
    for (int i = 0; i < LIVE_MAX_STREAMS; i++) {
        char name[16];
        if (pt[i] < 0)
            continue;
        snprintf(name, sizeof(name), "sink%d", i);
        GstElement *sink = gst_bin_get_by_name(GST_BIN(p), name);
        sink_ctx_t *c = g_new0(sink_ctx_t, 1);
        c->feed = f;
        c->slot = i;
        c->pipeline = p;
        GstAppSinkCallbacks cb = {.new_sample = on_rtp};
        gst_app_sink_set_callbacks(GST_APP_SINK(sink), &cb, c, sink_ctx_free);
        gst_object_unref(sink);
    }
    GstBus *bus = gst_element_get_bus(p);
    gst_bus_set_sync_handler(bus, live_on_bus, g_strdup(f->name), g_free);
    gst_object_unref(bus);
    if (gst_element_set_state(p, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
        vg_err("source=%s live: the packetizer does not start", f->name);
        gst_element_set_state(p, GST_STATE_NULL);
        gst_object_unref(p);
        return NULL;
    }
    return p;
}

/* The first WebRTC viewer of a source builds its packetizer. Built with no
 * lock held, so the source's capture thread (live_feed_packet takes
 * f->lock) never waits for it; installed under the lock only if nothing
 * changed meanwhile: when two first viewers race, the second to finish
 * drops its own and uses the winner's; when the streams changed (a
 * reconnect), the one built for the old streams is dropped and the caller
 * told to try again. */
int live_feed_pay_ensure(live_feed_t *f)
{
    live_stream_info_t st[LIVE_MAX_STREAMS];
    guint ssrc[LIVE_MAX_STREAMS];
    int pt[LIVE_MAX_STREAMS];
    pthread_mutex_lock(&f->lock);
    int have = f->pay_pipeline != NULL, closed = f->closed;
    unsigned gen = f->gen;
    memcpy(st, f->st, sizeof(st));
    pthread_mutex_unlock(&f->lock);
    if (have)
        return VG_OK;
    if (closed)
        return VG_EBUSY;
    for (int i = 0; i < LIVE_MAX_STREAMS; i++) {
        st[i].par = NULL; /* a copy of the fields pay_desc reads, not the feed's */
        ssrc[i] = g_random_int();
    }
    GstElement *p = pay_build(f, st, pt, ssrc);
    if (!p)
        return VG_EMEDIA;
    int rc = VG_OK;
    pthread_mutex_lock(&f->lock);
    if (f->pay_pipeline) {
        /* another first viewer's is in: ours goes */
    } else if (f->gen != gen || f->closed) {
        rc = VG_EBUSY; /* built for streams that are gone */
    } else {
        for (int i = 0; i < LIVE_MAX_STREAMS; i++) {
            char name[16];
            f->pay_ssrc[i] = ssrc[i];
            if (pt[i] < 0)
                continue;
            snprintf(name, sizeof(name), "src%d", i);
            f->pay_src[i] = gst_bin_get_by_name(GST_BIN(p), name);
            f->pay_pt[i] = pt[i];
        }
        f->pay_pipeline = p;
        p = NULL;
        /* Primed with the cached GOP: the first viewer starts on it too. */
        f->pay_wait_key = 1;
        for (size_t i = 0; i < f->n_raw; i++) {
            const AVPacket *pkt = f->raw[i];
            pay_push(f, pkt, pkt->stream_index,
                     pkt->stream_index == 0 ? (pkt->flags & AV_PKT_FLAG_KEY) != 0
                                            : !f->st[0].present);
        }
    }
    pthread_mutex_unlock(&f->lock);
    if (p) { /* not installed: nobody else has it */
        gst_element_set_state(p, GST_STATE_NULL);
        gst_object_unref(p);
    }
    return rc;
}

void live_feed_add_viewer(live_feed_t *f, live_session_t *s)
{
    pthread_mutex_lock(&f->lock);
    if (f->n_viewers == f->cap_viewers) {
        f->cap_viewers = f->cap_viewers ? f->cap_viewers * 2 : 8;
        f->viewers = vg_realloc(f->viewers, f->cap_viewers * sizeof(*f->viewers));
    }
    f->viewers[f->n_viewers++] = live_session_ref(s);
    pthread_mutex_unlock(&f->lock);
}

void live_feed_remove_viewer(live_feed_t *f, live_session_t *s)
{
    live_session_t *gone = NULL;
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->n_viewers; i++) {
        if (f->viewers[i] == s) {
            gone = s;
            f->viewers[i] = f->viewers[--f->n_viewers];
            break;
        }
    }
    pthread_mutex_unlock(&f->lock);
    live_session_unref(gone);
}

void live_feed_viewer_connected(live_feed_t *f, live_session_t *s)
{
    pthread_mutex_lock(&f->lock);
    int listed = 0;
    for (size_t i = 0; i < f->n_viewers && !listed; i++)
        listed = f->viewers[i] == s;
    /* Not listed yet: live packets would not follow the GOP; the offer
     * starts it once it is. */
    if (listed && !s->started) {
        s->started = 1;
        s->wait_key = 0;
        if (f->gop_valid && f->n_gop > 0) {
            for (size_t i = 0; i < f->n_gop; i++)
                viewer_push(s, f->gop[i], f->gop_slot[i], i == 0);
        } else {
            s->wait_key = f->st[0].present; /* audio alone starts anywhere */
        }
    }
    pthread_mutex_unlock(&f->lock);
}

void live_feed_webrtc_reason(live_feed_t *f, char *why, size_t size, char *codec,
                             size_t codec_size)
{
    const live_stream_info_t *v = &f->st[0], *a = &f->st[1];
    why[0] = codec[0] = '\0';
    if (!f->up) {
        snprintf(why, size, "the source is not connected");
    } else if (v->present && v->codec != LIVE_C_H264) {
        snprintf(why, size, "%s video cannot go over WebRTC", live_codec_name(v->codec));
        snprintf(codec, codec_size, "%s", live_codec_name(v->codec));
    } else if (v->present && f->bframes) {
        snprintf(why, size, "the camera sends B-frames, which browsers do not reorder over "
                            "WebRTC");
        snprintf(codec, codec_size, "H264 (B-frames)");
    } else if (!v->present && a->present && a->codec == LIVE_C_AAC) {
        snprintf(why, size, "AAC audio cannot go over WebRTC");
        snprintf(codec, codec_size, "AAC");
    }
}
