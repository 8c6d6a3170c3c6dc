/* The MSE fallback (GET .../live.mp4): one fragmented MP4 per viewer, for
 * cameras WebRTC cannot carry (H.265, B-frames) and browsers without a
 * usable offer. Video goes in as the camera sent it (no re-encoding);
 * G.711 is decoded and encoded to FLAC, which browsers' MSE takes in MP4;
 * AAC passes through. Fragments are cut at every keyframe and at least
 * every 250 ms.
 *
 * The capture thread only queues packet references (bounded: past the
 * bound the viewer skips to the next keyframe); live's housekeeping thread
 * muxes them into the viewer's output buffer, which the HTTP side drains.
 * A viewer that does not read lets the buffer fill; then packets are
 * skipped until it has drained and a keyframe comes, so memory per viewer
 * stays bounded and the stream resumes decodable. */
#include "live/live_private.h"

#include <libavcodec/avcodec.h>
#include <libavutil/opt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/util.h"
#include "playback/playback.h"

#define QUEUE_MAX_BYTES (4u * 1024 * 1024)
#define OUT_MAX_BYTES (4u * 1024 * 1024)
#define IO_BUF 32768
#define FRAG_US 250000

struct live_mse {
    pthread_mutex_t lock;        /* queue, output, wake */
    AVPacket **q;                /* from the capture thread, on the feed timeline (ns) */
    size_t qn, qcap, qbytes;
    int q_wait_key;              /* queue overflowed: from the next keyframe */
    uint8_t *out;                /* muxed bytes for the reader */
    size_t out_len, out_off, out_cap;
    int eof;
    void (*wake)(void *ctx);
    void *wake_ctx;

    /* housekeeping thread only (and the opening request before listing) */
    int has_video;
    AVFormatContext *oc;
    int out_index[LIVE_MAX_STREAMS]; /* slot -> output stream, -1 */
    AVRational in_tb;            /* 1/1e9 */
    int64_t t0;                  /* feed time of the first keyframe: output time 0 */
    int started;
    int mux_wait_key;            /* output full: skip to the next keyframe */
    pb_flac_t *flac;             /* G.711 -> FLAC (playback/convert.c) */
    AVRational flac_tb;
};

/* ---- output ---- */

static int out_write(void *opaque, uint8_t *buf, int size)
{
    live_mse_t *m = opaque;
    pthread_mutex_lock(&m->lock);
    if (m->out_off && m->out_off == m->out_len)
        m->out_off = m->out_len = 0;
    if (m->out_len + (size_t)size > m->out_cap) {
        if (m->out_off) { /* compact first */
            memmove(m->out, m->out + m->out_off, m->out_len - m->out_off);
            m->out_len -= m->out_off;
            m->out_off = 0;
        }
        if (m->out_len + (size_t)size > m->out_cap) {
            m->out_cap = (m->out_len + (size_t)size) * 2;
            m->out = vg_realloc(m->out, m->out_cap);
        }
    }
    memcpy(m->out + m->out_len, buf, (size_t)size);
    m->out_len += (size_t)size;
    if (m->wake)
        m->wake(m->wake_ctx);
    pthread_mutex_unlock(&m->lock);
    return size;
}

static size_t out_level(live_mse_t *m)
{
    pthread_mutex_lock(&m->lock);
    size_t n = m->out_len - m->out_off;
    pthread_mutex_unlock(&m->lock);
    return n;
}

/* ---- setup ---- */

static int add_audio_transcode(live_mse_t *m, const live_stream_info_t *st, AVStream *os)
{
    AVRational tb;
    if (pb_flac_open(st->par, st->sample_rate > 0 ? st->sample_rate : 8000,
                     st->channels > 0 ? st->channels : 1, &m->flac) != VG_OK ||
        pb_flac_params(m->flac, os->codecpar, &tb) != VG_OK)
        return VG_EMEDIA;
    os->time_base = tb;
    m->flac_tb = tb;
    return VG_OK;
}

void live_mse_free(live_mse_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->qn; i++)
        av_packet_free(&m->q[i]);
    free(m->q);
    if (m->oc) {
        if (m->oc->pb) {
            av_freep(&m->oc->pb->buffer);
            avio_context_free(&m->oc->pb);
        }
        avformat_free_context(m->oc);
    }
    pb_flac_free(m->flac);
    free(m->out);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

/* The MSE codecs string of a stream ("" when none fits). */
static void codec_string(const live_stream_info_t *st, int flac, char *out, size_t size)
{
    const AVCodecParameters *p = st->par;
    if (st->codec == LIVE_C_H264)
        snprintf(out, size, "avc1.%02x%02x%02x", st->profile & 0xff, st->constraints & 0xff,
                 st->level & 0xff);
    else if (st->codec == LIVE_C_H265)
        snprintf(out, size, "hvc1.%d.%d.L%d.B0", p->profile > 0 ? p->profile : 1,
                 p->profile == 2 ? 4 : 6, p->level > 0 ? p->level : 93);
    else if (flac)
        snprintf(out, size, "flac");
    else if (st->codec == LIVE_C_AAC)
        snprintf(out, size, "mp4a.40.%d", p->profile >= 0 ? p->profile + 1 : 2);
    else
        out[0] = '\0';
}

/* Builds the muxer for the streams in st (those usable) and writes the init
 * segment into the output. f->lock held by the caller (st is the feed's). */
static int mse_new(const live_stream_info_t *st, live_mse_t **out, char *codecs, size_t size)
{
    live_mse_t *m = vg_calloc(1, sizeof(*m));
    pthread_mutex_init(&m->lock, NULL);
    m->in_tb = (AVRational){1, 1000000000};
    m->out_index[0] = m->out_index[1] = -1;
    codecs[0] = '\0';
    int rc = VG_EMEDIA;
    AVDictionary *opts = NULL;
    if (avformat_alloc_output_context2(&m->oc, NULL, "mp4", NULL) < 0 || !m->oc)
        goto cleanup;
    m->oc->strict_std_compliance = FF_COMPLIANCE_EXPERIMENTAL; /* FLAC in MP4 */
    for (int slot = 0; slot < LIVE_MAX_STREAMS; slot++) {
        const live_stream_info_t *s = &st[slot];
        int flac = s->codec == LIVE_C_PCMA || s->codec == LIVE_C_PCMU;
        if (!s->present || !(s->video || flac || s->codec == LIVE_C_AAC))
            continue;
        AVStream *os = avformat_new_stream(m->oc, NULL);
        if (!os)
            goto cleanup;
        if (flac) {
            if (add_audio_transcode(m, s, os) != VG_OK) {
                vg_warn("live: no G.711 to FLAC transcoder: live.mp4 without audio");
                pb_flac_free(m->flac);
                m->flac = NULL;
                continue; /* the stream stays, unused; harmless for video */
            }
        } else {
            if (avcodec_parameters_copy(os->codecpar, s->par) < 0)
                goto cleanup;
            os->codecpar->codec_tag = 0;
            if (s->codec == LIVE_C_H265)
                os->codecpar->codec_tag = MKTAG('h', 'v', 'c', '1');
            os->time_base = s->video ? (AVRational){1, 90000}
                                     : (AVRational){1, s->sample_rate > 0 ? s->sample_rate : 48000};
        }
        m->out_index[slot] = os->index;
        m->has_video |= s->video;
        char c[48];
        codec_string(s, flac, c, sizeof(c));
        size_t len = strlen(codecs);
        snprintf(codecs + len, size - len, "%s%s", len ? "," : "", c);
    }
    if (m->out_index[0] < 0 && m->out_index[1] < 0)
        goto cleanup;
    m->oc->pb = avio_alloc_context(av_malloc(IO_BUF), IO_BUF, 1, m, NULL, out_write, NULL);
    if (!m->oc->pb)
        goto cleanup;
    av_dict_set(&opts, "movflags", "empty_moov+default_base_moof+frag_keyframe+skip_trailer", 0);
    av_dict_set_int(&opts, "frag_duration", FRAG_US, 0);
    if (avformat_write_header(m->oc, &opts) < 0) {
        vg_warn("live: the MP4 muxer refused the streams (%s)", codecs);
        goto cleanup;
    }
    avio_flush(m->oc->pb);
    m->mux_wait_key = 1;
    rc = VG_OK;
    *out = m;
    m = NULL;

cleanup:
    av_dict_free(&opts);
    live_mse_free(m);
    return rc;
}

/* ---- packets in (capture thread) ---- */

void live_mse_packet(live_session_t *s, const AVPacket *pkt, int slot, int key)
{
    live_mse_t *m = s->mse;
    if (!m || m->out_index[slot] < 0)
        return;
    int vkey = slot == 0 ? key : !m->has_video;
    pthread_mutex_lock(&m->lock);
    if (m->q_wait_key && !vkey) {
        pthread_mutex_unlock(&m->lock);
        return;
    }
    m->q_wait_key = 0;
    if (m->qbytes + (size_t)pkt->size > QUEUE_MAX_BYTES) {
        m->q_wait_key = 1; /* the muxer fell behind: never queue without bound */
        pthread_mutex_unlock(&m->lock);
        return;
    }
    if (m->qn == m->qcap) {
        m->qcap = m->qcap ? m->qcap * 2 : 64;
        m->q = vg_realloc(m->q, m->qcap * sizeof(*m->q));
    }
    AVPacket *c = av_packet_clone(pkt);
    if (!c)
        abort();
    c->stream_index = slot;
    if (vkey)
        c->flags |= AV_PKT_FLAG_KEY;
    m->q[m->qn++] = c;
    m->qbytes += (size_t)pkt->size;
    pthread_mutex_unlock(&m->lock);
    pthread_cond_signal(&s->live->wake);
}

/* ---- muxing (housekeeping thread) ---- */

static void write_packet(live_mse_t *m, AVPacket *pkt, int slot)
{
    AVStream *os = m->oc->streams[m->out_index[slot]];
    pkt->stream_index = os->index;
    pkt->pts = av_rescale_q(pkt->pts - m->t0, m->in_tb, os->time_base);
    pkt->dts = av_rescale_q(pkt->dts - m->t0, m->in_tb, os->time_base);
    pkt->duration = 0;
    pkt->pos = -1;
    if (av_write_frame(m->oc, pkt) < 0)
        vg_debug("live: a packet the MP4 muxer refused was skipped");
}

static void flac_out(void *ctx, AVPacket *out)
{
    live_mse_t *m = ctx;
    AVStream *os = m->oc->streams[m->out_index[1]];
    av_packet_rescale_ts(out, m->flac_tb, os->time_base);
    out->stream_index = os->index;
    if (av_write_frame(m->oc, out) < 0)
        vg_debug("live: a FLAC frame the MP4 muxer refused was skipped");
}

/* G.711 -> PCM -> FLAC frames of the encoder's size (shared with the
 * converted HLS media). */
static void transcode(live_mse_t *m, AVPacket *pkt)
{
    int64_t at = av_rescale_q(pkt->pts - m->t0, m->in_tb, m->flac_tb);
    pb_flac_push(m->flac, pkt, at, flac_out, m);
}

static void mux(live_mse_t *m, AVPacket *pkt)
{
    int slot = pkt->stream_index;
    int key = (pkt->flags & AV_PKT_FLAG_KEY) != 0;
    if (m->mux_wait_key) {
        /* start (or resume after a skip) on a keyframe, once drained */
        if (!key || out_level(m) > OUT_MAX_BYTES / 2)
            return;
        m->mux_wait_key = 0;
        if (!m->started) {
            m->t0 = pkt->dts;
            m->started = 1;
        }
    } else if (out_level(m) > OUT_MAX_BYTES) {
        m->mux_wait_key = 1; /* the reader is too slow: skip to a keyframe */
        return;
    }
    if (pkt->dts < m->t0)
        return; /* audio from just before the first keyframe */
    if (m->flac && slot == 1)
        transcode(m, pkt);
    else
        write_packet(m, pkt, slot);
}

void live_mse_pump(live_t *l)
{
    pthread_mutex_lock(&l->lock);
    size_t n = 0;
    live_session_t **list = vg_calloc(l->n_sessions ? l->n_sessions : 1, sizeof(*list));
    for (size_t i = 0; i < l->n_sessions; i++) {
        if (l->sessions[i]->transport == LIVE_T_MSE)
            list[n++] = live_session_ref(l->sessions[i]);
    }
    pthread_mutex_unlock(&l->lock);
    for (size_t i = 0; i < n; i++) {
        live_mse_t *m = list[i]->mse;
        pthread_mutex_lock(&m->lock);
        AVPacket **q = m->q;
        size_t qn = m->qn;
        m->q = NULL;
        m->qn = m->qcap = m->qbytes = 0;
        pthread_mutex_unlock(&m->lock);
        for (size_t k = 0; k < qn; k++) {
            if (!atomic_load(&list[i]->ending))
                mux(m, q[k]);
            av_packet_free(&q[k]);
        }
        free(q);
        if (qn && m->oc->pb)
            avio_flush(m->oc->pb);
        live_session_unref(list[i]);
    }
    free(list);
}

void live_mse_finish(live_session_t *s)
{
    live_mse_t *m = s->mse;
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->eof = 1;
    if (m->wake)
        m->wake(m->wake_ctx);
    pthread_mutex_unlock(&m->lock);
}

/* ---- the reader side ---- */

int live_stream_open(live_t *l, const live_stream_request_t *req, live_stream_t **out,
                     char *codecs, size_t codecs_size, live_whep_result_t *res)
{
    live_hooks_t hooks = req->hooks;
    live_feed_t *f = NULL;
    live_session_t *s = NULL;
    live_mse_t *m = NULL;
    int rc = VG_EBUSY, reserved = 0;
    *out = NULL;
    codecs[0] = '\0';
    memset(res, 0, sizeof(*res));
    res->status = 503;
    if (!l) {
        snprintf(res->code, sizeof(res->code), "live_disabled");
        snprintf(res->message, sizeof(res->message), "live view is off ([live] enabled = no)");
        goto cleanup;
    }
    if (!(f = live_find_feed(l, req->source))) {
        res->status = 404;
        snprintf(res->code, sizeof(res->code), "not_found");
        snprintf(res->message, sizeof(res->message), "no such source");
        goto cleanup;
    }
    if (live_reserve(l, req->owner, res->message, sizeof(res->message)) != 0) {
        snprintf(res->code, sizeof(res->code), "too_many_viewers");
        res->retry_after = 10;
        goto cleanup;
    }
    reserved = 1;
    pthread_mutex_lock(&f->lock);
    if (!f->up) {
        pthread_mutex_unlock(&f->lock);
        snprintf(res->code, sizeof(res->code), "source_unavailable");
        snprintf(res->message, sizeof(res->message),
                 "the source is not connected; try again shortly");
        res->retry_after = 2;
        goto cleanup;
    }
    if (mse_new(f->st, &m, codecs, codecs_size) != VG_OK) {
        pthread_mutex_unlock(&f->lock);
        res->status = 406;
        snprintf(res->code, sizeof(res->code), "codec_unsupported");
        snprintf(res->codec, sizeof(res->codec), "%s",
                 live_codec_name(f->st[0].present ? f->st[0].codec : f->st[1].codec));
        snprintf(res->message, sizeof(res->message), "no stream of this source fits in MP4 "
                                                     "for a browser");
        rc = VG_EINVAL;
        goto cleanup;
    }
    s = live_session_new(l, LIVE_T_MSE, req->source, req->owner, req->user, &hooks);
    memset(&hooks, 0, sizeof(hooks));
    s->mse = m;
    m->wake = req->wake;
    m->wake_ctx = req->wake_ctx;
    live_feed_ref(f);
    s->feed = f;
    atomic_store(&s->state, LIVE_S_CONNECTED);
    /* the cached GOP first, then live: no gap, a keyframe at once */
    for (size_t i = 0; i < f->n_raw; i++) {
        const AVPacket *p = f->raw[i];
        live_mse_packet(s, p, p->stream_index,
                        p->stream_index == 0 ? (p->flags & AV_PKT_FLAG_KEY) != 0 : 0);
    }
    if (f->n_viewers == f->cap_viewers) {
        f->cap_viewers = f->cap_viewers ? f->cap_viewers * 2 : 8;
        f->viewers = vg_realloc(f->viewers, f->cap_viewers * sizeof(*f->viewers));
    }
    f->viewers[f->n_viewers++] = live_session_ref(s);
    pthread_mutex_unlock(&f->lock);
    live_session_add(l, s);
    reserved = 0;
    vg_info("source=%s live: MSE session %s for %s (%s)", req->source, s->id, req->owner,
            codecs);
    *out = (live_stream_t *)s;
    s = NULL;
    rc = VG_OK;

cleanup:
    if (reserved)
        live_unreserve(l, req->owner);
    if (hooks.release)
        hooks.release(hooks.ctx);
    live_session_unref(s);
    live_feed_unref(f);
    return rc;
}

const char *live_stream_id(const live_stream_t *st)
{
    return ((const live_session_t *)st)->id;
}

long live_stream_read(live_stream_t *st, char *buf, size_t max)
{
    live_mse_t *m = ((live_session_t *)st)->mse;
    long n = 0;
    pthread_mutex_lock(&m->lock);
    size_t have = m->out_len - m->out_off;
    if (have) {
        n = (long)(have < max ? have : max);
        memcpy(buf, m->out + m->out_off, (size_t)n);
        m->out_off += (size_t)n;
    } else if (m->eof) {
        n = -1;
    }
    pthread_mutex_unlock(&m->lock);
    return n;
}

void live_stream_close(live_stream_t *st)
{
    live_session_t *s = (live_session_t *)st;
    if (!s)
        return;
    pthread_mutex_lock(&s->mse->lock);
    s->mse->wake = NULL; /* the HTTP side is gone: nobody to wake */
    pthread_mutex_unlock(&s->mse->lock);
    live_session_request_end(s, "closed");
    live_session_end(s->live, s->id, NULL);
    live_session_unref(s);
}
