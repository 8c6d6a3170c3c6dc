/* A feed: one source's packets as the relay sees them. It turns capture's
 * packets into units on a timeline that never goes back, keeps the current
 * GOP (so a new RTSP client starts on a keyframe at once), hands each unit
 * to the source's RTSP clients (tap.c) and to its push (push.c). It runs on
 * the capture thread and must never block there: everything downstream is a
 * bounded queue that drops whole GOPs when full. */
#include "relay/relay_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/util.h"

/* A GOP larger than this is not cached (a camera with a very long keyframe
 * interval): new clients then wait for the next keyframe instead. */
#define GOP_MAX_BYTES (16u * 1024 * 1024)

void rly_feed_ref(rly_feed_t *f)
{
    atomic_fetch_add(&f->refs, 1);
}

void rly_unit_clear(rly_unit_t *u)
{
    if (u->mem)
        gst_memory_unref(u->mem);
    if (u->prefix)
        gst_memory_unref(u->prefix);
    u->mem = u->prefix = NULL;
}

static void gop_clear(rly_feed_t *f)
{
    for (size_t i = 0; i < f->n_gop; i++)
        rly_unit_clear(&f->gop[i]);
    f->n_gop = 0;
    f->gop_bytes = 0;
}

static void streams_clear(rly_feed_t *f)
{
    for (unsigned i = 0; i < RLY_MAX_STREAMS; i++) {
        if (f->caps[i])
            gst_caps_unref(f->caps[i]);
        f->caps[i] = NULL;
    }
    if (f->params)
        gst_memory_unref(f->params);
    f->params = NULL;
    f->n_streams = 0;
    f->video = -1;
}

void rly_feed_unref(rly_feed_t *f)
{
    if (!f || atomic_fetch_sub(&f->refs, 1) != 1)
        return;
    gop_clear(f);
    streams_clear(f);
    free(f->gop);
    free(f->taps);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

int rly_feed_open(rly_server_t *s, const vg_config_t *cfg, const vg_source_config_t *src,
                  rly_feed_t **out)
{
    *out = NULL;
    char *push_url = vg_config_push_url(cfg, src);
    int rtsp = s->rtsp && src->relay;
    if (!rtsp && !push_url)
        return VG_OK;
    rly_feed_t *f = vg_calloc(1, sizeof(*f));
    atomic_init(&f->refs, 1);
    f->srv = s;
    snprintf(f->name, sizeof(f->name), "%s", src->name);
    f->kind = src->kind;
    f->video = -1;
    f->gen = 1;
    pthread_mutex_init(&f->lock, NULL);
    int rc = VG_OK;
    if (push_url)
        rc = rly_push_start(f->name, push_url, &f->push);
    free(push_url);
    if (rc == VG_OK && rtsp) {
        f->factory = rly_factory_new(f);
        rly_server_mount(s, f);
    }
    if (rc != VG_OK) {
        rly_feed_close(f);
        return rc;
    }
    *out = f;
    return VG_OK;
}

/* ---- begin: what the streams are ---- */

static uint64_t fnv1a(const uint8_t *d, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ d[i]) * 1099511628211ULL;
    return h;
}

/* Equal signatures mean the same decoder setup: clients may carry on. */
static void signature_add(char *sig, size_t size, const AVCodecParameters *p)
{
    size_t len = strlen(sig);
    snprintf(sig + len, size - len, "%d:%d:%d:%d:%d:%016llx;", (int)p->codec_id, p->width,
             p->height, p->sample_rate, p->ch_layout.nb_channels,
             (unsigned long long)fnv1a(p->extradata, (size_t)p->extradata_size));
}

static int relayable(rly_codec_t c, const AVCodecParameters *p)
{
    if (c == RLY_C_PCMA || c == RLY_C_PCMU)
        return p->sample_rate == 8000 && p->ch_layout.nb_channels == 1;
    if (c == RLY_C_OPUS)
        return p->ch_layout.nb_channels <= 2;
    return c != RLY_C_NONE;
}

static void set_params(rly_feed_t *f, const AVCodecParameters *p)
{
    /* RTSP gives the SDP's sprop parameter sets as Annex-B extradata. */
    if (!f->factory || !rly_is_annexb(p->extradata, (size_t)p->extradata_size))
        return;
    gsize n = (gsize)p->extradata_size;
    gpointer copy = g_memdup2(p->extradata, n);
    f->params = gst_memory_new_wrapped(GST_MEMORY_FLAG_READONLY, copy, n, 0, n, copy, g_free);
}

/* Fills the stream table from capture's streams; returns the relayed
 * parameters in par (for the push). f->lock held. */
static unsigned map_streams(rly_feed_t *f, AVStream *const *streams, unsigned n,
                            AVCodecParameters **par, char *sig, size_t sig_size)
{
    unsigned k = 0;
    f->n_map = n < RLY_MAX_STREAMS * 4 ? n : RLY_MAX_STREAMS * 4;
    for (unsigned i = 0; i < f->n_map; i++) {
        const AVCodecParameters *p = streams[i]->codecpar;
        rly_codec_t c = rly_codec_of(p->codec_id);
        f->map[i] = -1;
        if (k == RLY_MAX_STREAMS || !relayable(c, p) ||
            (rly_codec_is_video(c) && f->video >= 0))
            continue;
        f->map[i] = (int)k;
        f->codec[k] = c;
        f->tb[k] = streams[i]->time_base;
        f->last_dts[k] = INT64_MIN;
        if (f->factory)
            f->caps[k] = rly_caps_for(c, p);
        if (rly_codec_is_video(c)) {
            f->video = (int)k;
            set_params(f, p);
        }
        par[k++] = streams[i]->codecpar;
        signature_add(sig, sig_size, p);
    }
    return k;
}

int rly_feed_begin(rly_feed_t *f, AVStream *const *streams, unsigned n_streams)
{
    AVCodecParameters *par[RLY_MAX_STREAMS];
    char sig[sizeof(f->signature)] = "";
    int changed;
    pthread_mutex_lock(&f->lock);
    streams_clear(f);
    gop_clear(f);
    f->gop_valid = 0;
    unsigned k = map_streams(f, streams, n_streams, par, sig, sizeof(sig));
    f->n_streams = k;
    changed = f->signature[0] && strcmp(sig, f->signature) != 0;
    if (changed)
        f->gen++;
    snprintf(f->signature, sizeof(f->signature), "%s", sig);
    f->live = k > 0;
    vg_rebase_restart(&f->timeline);
    if (f->factory)
        rly_taps_resync(f);
    pthread_mutex_unlock(&f->lock);
    if (k == 0)
        vg_warn("source=%s relay: no stream with a codec the relay carries", f->name);
    /* Different parameters: the clients' decoders were set up for the old
     * ones (SDP), so they are closed; they may reconnect at once. */
    if (changed) {
        vg_notice("source=%s relay: stream parameters changed, closing relay clients", f->name);
        rly_taps_close_stale(f);
    }
    if (f->push)
        rly_push_streams(f->push, par, k);
    return k > 0 ? VG_OK : VG_EMEDIA;
}

/* ---- packets ---- */

static void free_packet(gpointer p)
{
    AVPacket *pkt = p;
    av_packet_free(&pkt);
}

GstMemory *rly_packet_memory(const AVPacket *pkt)
{
    AVPacket *ref = av_packet_clone(pkt);
    if (!ref)
        abort();
    return gst_memory_new_wrapped(GST_MEMORY_FLAG_READONLY, ref->data, (gsize)ref->size, 0,
                                  (gsize)ref->size, ref, free_packet);
}

static int64_t to_ns(int64_t ts, AVRational tb)
{
    return av_rescale_q(ts, tb, (AVRational){1, 1000000000});
}

/* Maps the packet's times onto the relay timeline. f->lock held. */
static int stamp(rly_feed_t *f, const AVPacket *pkt, unsigned k, int64_t *pts, int64_t *dts)
{
    int64_t d = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pkt->pts;
    int64_t p = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : d;
    if (d == AV_NOPTS_VALUE)
        return VG_EINVAL;
    int64_t dns = to_ns(d, f->tb[k]);
    *dts = vg_rebase_map(&f->timeline, dns);
    /* Decode order must go forward per stream, or payloaders and muxers
     * complain; a camera's small step back is nudged, not passed on. */
    if (f->last_dts[k] != INT64_MIN && *dts <= f->last_dts[k])
        *dts = f->last_dts[k] + 1;
    *pts = to_ns(p, f->tb[k]) + (*dts - dns);
    if (*pts < *dts)
        *pts = *dts;
    f->last_dts[k] = *dts;
    return VG_OK;
}

/* Keeps u in the GOP cache; a keyframe starts a new one. f->lock held. */
static void gop_keep(rly_feed_t *f, const rly_unit_t *u)
{
    if (u->key) {
        gop_clear(f);
        f->gop_valid = 1;
    }
    if (!f->gop_valid)
        return;
    if (f->gop_bytes + gst_memory_get_sizes(u->mem, NULL, NULL) > GOP_MAX_BYTES) {
        gop_clear(f);
        f->gop_valid = 0;
        return;
    }
    if (f->n_gop == f->cap_gop) {
        f->cap_gop = f->cap_gop ? f->cap_gop * 2 : 64;
        f->gop = vg_realloc(f->gop, f->cap_gop * sizeof(*f->gop));
    }
    rly_unit_t *c = &f->gop[f->n_gop++];
    *c = *u;
    gst_memory_ref(c->mem);
    if (c->prefix)
        gst_memory_ref(c->prefix);
    f->gop_bytes += gst_memory_get_sizes(u->mem, NULL, NULL);
}

static int is_key(const rly_feed_t *f, const AVPacket *pkt, unsigned k)
{
    if (f->video < 0)
        return 1; /* audio only: any packet is a starting point */
    return (int)k == f->video && (pkt->flags & AV_PKT_FLAG_KEY);
}

int rly_feed_packet(rly_feed_t *f, const AVPacket *pkt, int64_t recv_wall_us)
{
    (void)recv_wall_us;
    rly_unit_t u = {0};
    pthread_mutex_lock(&f->lock);
    if (pkt->stream_index < 0 || (unsigned)pkt->stream_index >= f->n_map ||
        f->map[pkt->stream_index] < 0 || !f->live || f->closed) {
        pthread_mutex_unlock(&f->lock);
        return VG_OK;
    }
    u.stream = (unsigned)f->map[pkt->stream_index];
    if (stamp(f, pkt, u.stream, &u.pts_ns, &u.dts_ns) != VG_OK) {
        pthread_mutex_unlock(&f->lock);
        return VG_EINVAL;
    }
    u.key = is_key(f, pkt, u.stream);
    if (f->factory) {
        u.mem = rly_packet_memory(pkt);
        if (u.key && f->params && (int)u.stream == f->video &&
            !rly_au_has_params(f->codec[u.stream], pkt->data, (size_t)pkt->size))
            u.prefix = gst_memory_ref(f->params);
        gop_keep(f, &u);
        rly_taps_push(f, &u);
    }
    pthread_mutex_unlock(&f->lock);
    rly_unit_clear(&u);
    if (f->push)
        rly_push_packet(f->push, pkt, u.stream, u.pts_ns, u.dts_ns,
                        u.key && (int)u.stream == f->video);
    return VG_OK;
}

void rly_feed_end(rly_feed_t *f)
{
    pthread_mutex_lock(&f->lock);
    /* Nothing follows the cached GOP now: a new client would stall on it. */
    f->live = 0;
    gop_clear(f);
    f->gop_valid = 0;
    pthread_mutex_unlock(&f->lock);
}

int rly_feed_ready(rly_feed_t *f)
{
    pthread_mutex_lock(&f->lock);
    int ready = !f->closed && f->live && f->gop_valid && f->n_gop > 0;
    pthread_mutex_unlock(&f->lock);
    return ready;
}

void rly_feed_close(rly_feed_t *f)
{
    if (!f)
        return;
    if (f->factory)
        rly_server_unmount(f->srv, f);
    pthread_mutex_lock(&f->lock);
    f->closed = 1;
    f->live = 0;
    f->gen++;
    gop_clear(f);
    pthread_mutex_unlock(&f->lock);
    if (f->factory)
        rly_taps_close_stale(f);
    rly_push_stop(f->push);
    f->push = NULL;
    if (f->factory)
        g_object_unref(f->factory);
    f->factory = NULL;
    rly_feed_unref(f);
}

int rly_feed_status(rly_feed_t *f, rly_status_t *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->push_state, sizeof(out->push_state), "off");
    if (!f)
        return VG_EINVAL;
    pthread_mutex_lock(&f->lock);
    out->mounted = f->factory != NULL && !f->closed;
    out->clients = out->mounted ? atomic_load(&f->watching) : 0;
    out->client_dropped_gops = atomic_load(&f->dropped_gops);
    pthread_mutex_unlock(&f->lock);
    if (f->push)
        rly_push_status(f->push, out);
    return VG_OK;
}
