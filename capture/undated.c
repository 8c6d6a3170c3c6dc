/* Packets that arrive without any timestamp.
 *
 * libavformat's RTSP demuxer hands over the first packet of a connection,
 * which is the keyframe a camera starts its stream with, with neither PTS
 * nor DTS (no RTP timestamp has been mapped yet). Dropping it would lose
 * the whole first GOP (seconds on most cameras) of every connection, since
 * nothing after it decodes; so it is held, with the packets after it that
 * have a PTS but no DTS yet (B-frame streams: the demuxer guesses DTS only
 * from the fourth packet or so), until a packet with a DTS comes. They are
 * then given consecutive DTS right before it, and the undated keyframe the
 * PTS one frame before the earliest picture shown after it. */
#include "capture.h"

#include <libavutil/mathematics.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

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
    u->held = vg_calloc(n ? n : 1, sizeof(*u->held));
    u->step = vg_calloc(n ? n : 1, sizeof(*u->step));
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

static int64_t duration_of(const cap_undated_t *u, unsigned stream, const AVPacket *p)
{
    return p->duration > 0 ? p->duration : u->step[stream];
}

int cap_undated_hold(cap_undated_t *u, AVPacket *pkt, int64_t recv_wall_us)
{
    if (pkt->stream_index < 0 || (unsigned)pkt->stream_index >= u->n)
        return 0;
    cap_undated_stream_t *h = &u->held[pkt->stream_index];
    int undated = pkt->pts == AV_NOPTS_VALUE && pkt->dts == AV_NOPTS_VALUE;
    if (!undated && (h->count == 0 || pkt->dts != AV_NOPTS_VALUE))
        return 0;
    if (h->count == CAP_UNDATED_MAX) {
        if (!undated)
            return 0; /* it dates the held ones itself */
        /* The first held (a keyframe) is what makes the rest decodable:
         * a later packet without any timestamp goes. */
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

unsigned cap_undated_release(cap_undated_t *u, const AVPacket *next, AVPacket **out,
                             int64_t *recv_wall_us)
{
    if (next->stream_index < 0 || (unsigned)next->stream_index >= u->n)
        return 0;
    unsigned stream = (unsigned)next->stream_index;
    cap_undated_stream_t *h = &u->held[stream];
    unsigned k = h->count;
    if (k == 0)
        return 0;
    int64_t dts = next->dts != AV_NOPTS_VALUE ? next->dts : next->pts;
    int64_t first_shown = next->pts != AV_NOPTS_VALUE ? next->pts : dts;
    for (unsigned j = 0; j < k; j++)
        if (h->pkt[j]->pts != AV_NOPTS_VALUE && h->pkt[j]->pts < first_shown)
            first_shown = h->pkt[j]->pts;
    int64_t pts = first_shown;
    for (unsigned j = k; j-- > 0;) {
        AVPacket *p = h->pkt[j];
        int64_t d = duration_of(u, stream, p);
        dts -= d;
        p->dts = dts;
        if (p->pts == AV_NOPTS_VALUE) {
            pts -= d;
            p->pts = pts > p->dts ? pts : p->dts;
        }
        out[j] = p;
        recv_wall_us[j] = h->recv_wall_us[j];
    }
    h->count = 0;
    return k;
}
