/* Packets that arrive without any timestamp.
 *
 * libavformat's RTSP demuxer hands over the first packet of a connection,
 * which is the keyframe a camera starts its stream with, with neither PTS
 * nor DTS (no RTP timestamp has been mapped yet). Dropping it would lose
 * the whole first GOP (seconds on most cameras) of every connection, since
 * nothing after it decodes; so it is held until the next packet of its
 * stream, whose timestamp dates it one frame earlier. */
#include "capture.h"

#include <libavutil/mathematics.h>
#include <stdlib.h>
#include <string.h>

/* The length of one frame in the stream's time base, for dating: from the
 * frame rate found by probing, else a codec's fixed frame size, else 1. */
static int64_t frame_step(const AVStream *st)
{
    AVRational rate = st->avg_frame_rate.num > 0 ? st->avg_frame_rate : st->r_frame_rate;
    const AVCodecParameters *par = st->codecpar;
    if (rate.num <= 0 && par->frame_size > 0 && par->sample_rate > 0)
        rate = (AVRational){par->sample_rate, par->frame_size};
    if (rate.num <= 0 || rate.den <= 0 || st->time_base.num <= 0)
        return 1;
    int64_t step = av_rescale_q(1, av_inv_q(rate), st->time_base);
    return step > 0 ? step : 1;
}

void cap_undated_init(cap_undated_t *u, AVStream *const *streams, unsigned n)
{
    memset(u, 0, sizeof(*u));
    u->n = n;
    u->held = calloc(n ? n : 1, sizeof(*u->held));
    u->step = calloc(n ? n : 1, sizeof(*u->step));
    if (!u->held || !u->step)
        abort();
    for (unsigned i = 0; i < n; i++)
        u->step[i] = frame_step(streams[i]);
}

void cap_undated_free(cap_undated_t *u)
{
    for (unsigned i = 0; i < u->n; i++)
        for (unsigned k = 0; k < u->held[i].count; k++)
            av_packet_free(&u->held[i].pkt[k]);
    free(u->held);
    free(u->step);
    memset(u, 0, sizeof(*u));
}

int cap_undated_hold(cap_undated_t *u, AVPacket *pkt, int64_t recv_wall_us)
{
    if (pkt->pts != AV_NOPTS_VALUE || pkt->dts != AV_NOPTS_VALUE)
        return 0;
    if (pkt->stream_index < 0 || (unsigned)pkt->stream_index >= u->n)
        return 0;
    cap_undated_stream_t *h = &u->held[pkt->stream_index];
    /* Beyond the limit the later ones go: the first (a keyframe) is the one
     * that makes the rest decodable. */
    if (h->count == CAP_UNDATED_MAX) {
        av_packet_unref(pkt);
        return 1;
    }
    AVPacket *copy = av_packet_alloc();
    if (!copy)
        abort();
    av_packet_move_ref(copy, pkt);
    h->recv_wall_us[h->count] = recv_wall_us;
    h->pkt[h->count++] = copy;
    return 1;
}

AVPacket *cap_undated_next(cap_undated_t *u, const AVPacket *dated, int64_t *recv_wall_us)
{
    if (dated->stream_index < 0 || (unsigned)dated->stream_index >= u->n)
        return NULL;
    cap_undated_stream_t *h = &u->held[dated->stream_index];
    if (h->count == 0)
        return NULL;
    int64_t ts = dated->dts != AV_NOPTS_VALUE ? dated->dts : dated->pts;
    AVPacket *out = h->pkt[0];
    *recv_wall_us = h->recv_wall_us[0];
    /* The held packets come right before the dated one, one frame apart. */
    int64_t before = 0;
    for (unsigned k = 0; k < h->count; k++)
        before += h->pkt[k]->duration > 0 ? h->pkt[k]->duration : u->step[dated->stream_index];
    out->dts = out->pts = ts - before;
    h->count--;
    memmove(&h->pkt[0], &h->pkt[1], h->count * sizeof(h->pkt[0]));
    memmove(&h->recv_wall_us[0], &h->recv_wall_us[1], h->count * sizeof(h->recv_wall_us[0]));
    return out;
}
