/* vigild's calls wiring: starts the calls worker (calls/worker.c) and feeds
 * each call_detect = vad line's audio to its voice activity detector from
 * the capture sink. The sink runs on the capture thread, so this stays
 * cheap: G.711 is decoded with playback's exact tables into a stack buffer
 * and the detector does one 256-point FFT per 20 ms frame that is loud
 * enough (bench/RESULTS.md: well under 1 % of a core per line); a call
 * found is only queued to the worker, which writes the index. */
#include <libavutil/avutil.h>
#include <libavutil/mathematics.h>
#include <stdlib.h>

#include "cmd/vigild.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"
#include "playback/playback.h"

static const vg_config_t *current_config(void *ctx)
{
    return daemon_config(ctx);
}

int vigild_calls_start(daemon_t *d)
{
    char *db = vg_asprintf("%s/index.db", daemon_config(d)->data_dir);
    int rc = call_worker_start(db, current_config, d, &d->calls);
    free(db);
    if (rc != VG_OK)
        vg_err("calls worker could not start: %s", vg_strerror(rc));
    return rc;
}

void vigild_calls_stop(daemon_t *d)
{
    call_worker_stop(d->calls);
    d->calls = NULL;
}

static void on_vad_call(void *ctx, int64_t start_us, int64_t end_us)
{
    recorder_t *r = ctx;
    call_worker_vad_call(r->calls, r->cfg->name, start_us, end_us);
}

void vigild_vad_open(daemon_t *d, recorder_t *r)
{
    r->vad_stream = -1;
    if (!r->cfg->call_detect_vad || !d->calls)
        return;
    call_vad_config_t vc = {.gap_s = r->cfg->call_gap_seconds, .min_call_s = r->cfg->call_min_seconds};
    r->calls = d->calls;
    r->vad = call_vad_new(&vc, on_vad_call, r);
}

void vigild_vad_begin(recorder_t *r, AVStream *const *streams, unsigned n)
{
    if (!r->vad)
        return;
    r->vad_stream = -1;
    r->vad_anchored = 0;
    for (unsigned i = 0; i < n; i++) {
        const AVCodecParameters *par = streams[i]->codecpar;
        int law = par->codec_id == AV_CODEC_ID_PCM_ALAW ? 1 : par->codec_id == AV_CODEC_ID_PCM_MULAW ? 2 : 0;
        if (law && par->sample_rate == 8000 && par->ch_layout.nb_channels == 1) {
            r->vad_stream = (int)i;
            r->vad_law = law;
            r->vad_tb = streams[i]->time_base;
            return;
        }
    }
    vg_warn("source=%s call_detect = vad needs G.711 mono 8 kHz audio: no call detection",
            r->cfg->name);
}

void vigild_vad_packet(recorder_t *r, const AVPacket *pkt, int64_t recv_wall_us)
{
    if (!r->vad || pkt->stream_index != r->vad_stream || pkt->size <= 0)
        return;
    /* Time from the stream's clock, anchored on the receive clock and
     * re-anchored when they part by more than 2 s (a jump, a reconnect). */
    int64_t t = recv_wall_us;
    if (pkt->pts != AV_NOPTS_VALUE) {
        if (r->vad_anchored) {
            t = r->vad_wall0 + av_rescale_q(pkt->pts - r->vad_pts0, r->vad_tb, AV_TIME_BASE_Q);
            if (llabs(t - recv_wall_us) > 2000000)
                r->vad_anchored = 0;
        }
        if (!r->vad_anchored) {
            r->vad_anchored = 1;
            r->vad_wall0 = recv_wall_us;
            r->vad_pts0 = pkt->pts;
            t = recv_wall_us;
        }
    }
    int16_t pcm[1024];
    for (int off = 0; off < pkt->size;) {
        int m = pkt->size - off < 1024 ? pkt->size - off : 1024;
        for (int i = 0; i < m; i++) {
            uint8_t b = pkt->data[off + i];
            pcm[i] = r->vad_law == 1 ? pb_alaw_linear(b) : pb_ulaw_linear(b);
        }
        call_vad_feed(r->vad, pcm, (size_t)m, t + (int64_t)off * 1000000 / 8000);
        off += m;
    }
}

void vigild_vad_end(recorder_t *r)
{
    if (r->vad)
        call_vad_flush(r->vad);
    r->vad_anchored = 0;
}

void vigild_vad_close(recorder_t *r)
{
    call_vad_free(r->vad);
    r->vad = NULL;
}
