/* Converted media for browsers (README "Playback", "Converted media"): the
 * init part and the fragments of a stored segment re-muxed one fragment at
 * a time, for what a browser cannot play as stored. A camera's G.711 track
 * becomes FLAC (video samples copied byte for byte, every timestamp kept);
 * with [playback] transcode_hevc, an H.265 track becomes H.264. Stored
 * files are only read. Also the G.711 -> FLAC encoder (pb_flac_*) that
 * live/mse.c uses for live.mp4, so both paths make the same FLAC.
 *
 * A request works on one fragment in memory (its stored bytes, bounded by
 * PB_CONVERT_MAX_INPUT, plus the init part), never on the whole file. */
#include "playback/playback.h"

#include <fcntl.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/audio_fifo.h>
#include <libavutil/opt.h>
#include <libswscale/swscale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"
#include "playback/playback_private.h"

#define IO_BUF 32768
/* A converted answer larger than this is refused (a stored fragment is at
 * most PB_CONVERT_MAX_INPUT; FLAC and H.264 at the settings used are
 * smaller than their sources' bounds). */
#define MAX_OUTPUT (3 * PB_CONVERT_MAX_INPUT)
/* A transcode decodes from the keyframe fragment at or before the one
 * asked; it walks back over at most this many fragments. */
#define MAX_WALK_BACK 8
/* A converted fragment's audio covers at most this long. */
#define MAX_WINDOW_SECONDS 120
/* Durations of the transcoded frames awaiting their packets. */
#define DUR_RING 64

/* ---- G.711 -> FLAC (shared with live/mse.c) ---- */

struct pb_flac {
    AVCodecContext *dec, *enc;
    AVAudioFifo *fifo;
    AVFrame *in_frame, *out_frame;
    AVPacket *out;
    int64_t next;  /* samples given to the encoder */
    int64_t base;  /* output pts (samples) of the first decoded sample */
    int based;
};

void pb_flac_free(pb_flac_t *f)
{
    if (!f)
        return;
    avcodec_free_context(&f->dec);
    avcodec_free_context(&f->enc);
    if (f->fifo)
        av_audio_fifo_free(f->fifo);
    av_frame_free(&f->in_frame);
    av_frame_free(&f->out_frame);
    av_packet_free(&f->out);
    free(f);
}

int pb_flac_open(const AVCodecParameters *in, int sample_rate, int channels, pb_flac_t **out)
{
    *out = NULL;
    const AVCodec *dc = avcodec_find_decoder(in->codec_id);
    const AVCodec *ec = avcodec_find_encoder(AV_CODEC_ID_FLAC);
    if (!dc || !ec)
        return VG_EMEDIA;
    pb_flac_t *f = vg_calloc(1, sizeof(*f));
    int rc = VG_EMEDIA;
    f->dec = avcodec_alloc_context3(dc);
    f->enc = avcodec_alloc_context3(ec);
    if (!f->dec || !f->enc || avcodec_parameters_to_context(f->dec, in) < 0)
        goto cleanup;
    if (f->dec->sample_rate <= 0)
        f->dec->sample_rate = sample_rate > 0 ? sample_rate : 8000;
    if (f->dec->ch_layout.nb_channels <= 0)
        av_channel_layout_default(&f->dec->ch_layout, channels > 0 ? channels : 1);
    if (avcodec_open2(f->dec, dc, NULL) < 0)
        goto cleanup;
    f->enc->sample_fmt = AV_SAMPLE_FMT_S16;
    f->enc->sample_rate = sample_rate > 0 ? sample_rate : 8000;
    av_channel_layout_default(&f->enc->ch_layout, channels > 0 ? channels : 1);
    f->enc->time_base = (AVRational){1, f->enc->sample_rate};
    if (avcodec_open2(f->enc, ec, NULL) < 0)
        goto cleanup;
    f->fifo = av_audio_fifo_alloc(AV_SAMPLE_FMT_S16, f->enc->ch_layout.nb_channels,
                                  f->enc->frame_size * 4);
    f->in_frame = av_frame_alloc();
    f->out_frame = av_frame_alloc();
    f->out = av_packet_alloc();
    if (!f->fifo || !f->in_frame || !f->out_frame || !f->out)
        goto cleanup;
    rc = VG_OK;
    *out = f;
    f = NULL;

cleanup:
    pb_flac_free(f);
    return rc;
}

int pb_flac_params(const pb_flac_t *f, AVCodecParameters *par, AVRational *time_base)
{
    if (avcodec_parameters_from_context(par, f->enc) < 0)
        return VG_EMEDIA;
    *time_base = f->enc->time_base;
    return VG_OK;
}

/* Sends one frame (NULL: the end) and hands out what the encoder gives. */
static int encode(pb_flac_t *f, AVFrame *frame, pb_flac_emit_fn emit, void *ctx)
{
    if (avcodec_send_frame(f->enc, frame) < 0)
        return VG_EMEDIA;
    while (avcodec_receive_packet(f->enc, f->out) == 0) {
        if (f->out->size > 0) /* the end's packet carries only new extradata */
            emit(ctx, f->out);
        av_packet_unref(f->out);
    }
    return VG_OK;
}

/* Encodes the fifo's samples in frames of the encoder's size; with all,
 * the remainder too as a last, shorter frame. */
static int drain(pb_flac_t *f, int all, pb_flac_emit_fn emit, void *ctx)
{
    int fs = f->enc->frame_size > 0 ? f->enc->frame_size : 1152;
    for (;;) {
        int have = av_audio_fifo_size(f->fifo);
        int n = have >= fs ? fs : (all ? have : 0);
        if (n <= 0)
            return VG_OK;
        AVFrame *fr = f->out_frame;
        fr->nb_samples = n;
        fr->format = AV_SAMPLE_FMT_S16;
        fr->sample_rate = f->enc->sample_rate;
        av_channel_layout_copy(&fr->ch_layout, &f->enc->ch_layout);
        if (av_frame_get_buffer(fr, 0) < 0)
            return VG_EMEDIA;
        av_audio_fifo_read(f->fifo, (void **)fr->data, n);
        fr->pts = f->base + f->next;
        f->next += n;
        int rc = encode(f, fr, emit, ctx);
        av_frame_unref(fr);
        if (rc != VG_OK || n < fs)
            return rc; /* a short frame is the encoder's last */
    }
}

int pb_flac_push(pb_flac_t *f, const AVPacket *pkt, int64_t at, pb_flac_emit_fn emit, void *ctx)
{
    if (avcodec_send_packet(f->dec, pkt) < 0)
        return VG_EMEDIA;
    while (avcodec_receive_frame(f->dec, f->in_frame) == 0) {
        if (!f->based) {
            f->base = at > 0 ? at : 0;
            f->based = 1;
        }
        av_audio_fifo_write(f->fifo, (void **)f->in_frame->data, f->in_frame->nb_samples);
        av_frame_unref(f->in_frame);
    }
    return drain(f, 0, emit, ctx);
}

void pb_flac_start(pb_flac_t *f, int64_t at)
{
    if (!f->based) {
        f->base = at > 0 ? at : 0;
        f->based = 1;
    }
}

int pb_flac_push_pcm(pb_flac_t *f, const int16_t *pcm, int64_t n, pb_flac_emit_fn emit,
                     void *ctx)
{
    int ch = f->enc->ch_layout.nb_channels;
    while (n > 0) {
        int k = (int)(n < 4096 ? n : 4096);
        void *planes[1] = {(void *)pcm};
        if (av_audio_fifo_write(f->fifo, planes, k) < k)
            return VG_EMEDIA;
        pcm += (size_t)k * (size_t)ch;
        n -= k;
        int rc = drain(f, 0, emit, ctx);
        if (rc != VG_OK)
            return rc;
    }
    return VG_OK;
}

int pb_flac_finish(pb_flac_t *f, pb_flac_emit_fn emit, void *ctx)
{
    int rc = drain(f, 1, emit, ctx);
    if (rc == VG_OK)
        rc = encode(f, NULL, emit, ctx);
    return rc;
}

/* ---- what a segment needs ---- */

int pb_codecs_g711(const char *codecs)
{
    return codecs && (strstr(codecs, "pcm_alaw") || strstr(codecs, "pcm_mulaw"));
}

int pb_codecs_hevc(const char *codecs)
{
    return codecs && strstr(codecs, "hevc") != NULL;
}

unsigned pb_convert_for(const char *codecs, unsigned wanted)
{
    unsigned c = 0;
    if (pb_codecs_g711(codecs))
        c |= PB_CONV_FLAC; /* never sent to a browser as G.711 */
    if ((wanted & PB_CONV_H264) && pb_codecs_hevc(codecs))
        c |= PB_CONV_H264;
    return c;
}

void pb_convert_query(unsigned conv, char *out, size_t size)
{
    snprintf(out, size, "%s%s%s", (conv & PB_CONV_FLAC) ? "audio=flac" : "",
             (conv & PB_CONV_FLAC) && (conv & PB_CONV_H264) ? "&" : "",
             (conv & PB_CONV_H264) ? "video=h264" : "");
}

/* ---- memory I/O ---- */

typedef struct {
    const uint8_t *p;
    size_t len, pos;
} rbuf_t;

static int mem_read(void *opaque, uint8_t *buf, int size)
{
    rbuf_t *b = opaque;
    size_t left = b->len - b->pos;
    if (left == 0)
        return AVERROR_EOF;
    size_t n = (size_t)size < left ? (size_t)size : left;
    memcpy(buf, b->p + b->pos, n);
    b->pos += n;
    return (int)n;
}

static int64_t mem_seek(void *opaque, int64_t offset, int whence)
{
    rbuf_t *b = opaque;
    if (whence & AVSEEK_SIZE)
        return (int64_t)b->len;
    int64_t at = offset;
    if ((whence & ~AVSEEK_FORCE) == SEEK_CUR)
        at = (int64_t)b->pos + offset;
    else if ((whence & ~AVSEEK_FORCE) == SEEK_END)
        at = (int64_t)b->len + offset;
    if (at < 0 || at > (int64_t)b->len)
        return AVERROR(EINVAL);
    b->pos = (size_t)at;
    return at;
}

typedef struct {
    uint8_t *p;
    size_t len, cap;
    int over; /* MAX_OUTPUT passed: the answer is refused */
} wbuf_t;

static int mem_write(void *opaque, uint8_t *buf, int size)
{
    wbuf_t *b = opaque;
    if (b->len + (size_t)size > MAX_OUTPUT) {
        b->over = 1;
        return size; /* dropped; reported after the muxer is done */
    }
    if (b->len + (size_t)size > b->cap) {
        b->cap = (b->len + (size_t)size) * 2;
        b->p = vg_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, buf, (size_t)size);
    b->len += (size_t)size;
    return size;
}

/* ---- one conversion ---- */

typedef struct {
    unsigned conv;
    AVFormatContext *ic, *oc;
    AVIOContext *in_io, *out_io;
    rbuf_t in;
    wbuf_t out;
    int vi, ai;                 /* input stream indexes, -1 */
    int vo, ao;                 /* output stream indexes, -1 */
    pb_flac_t *flac;
    AVRational flac_tb;
    AVCodecContext *vdec, *venc; /* H.265 -> H.264 */
    struct SwsContext *sws;
    AVFrame *frame, *yuv;
    AVPacket *pkt;
    int64_t keep_from, keep_to; /* the input bytes of the fragment asked */
    int64_t target_pts;         /* first video pts of the fragment asked (INT64_MIN: not yet) */
    int64_t dur_pts[DUR_RING], dur_val[DUR_RING]; /* stored frame durations by pts */
    size_t dur_next;
    int write_failed;
    char *err;
    size_t err_size;
} conv_t;

static void conv_free(conv_t *c)
{
    if (c->ic)
        avformat_close_input(&c->ic);
    if (c->in_io) {
        av_freep(&c->in_io->buffer);
        avio_context_free(&c->in_io);
    }
    if (c->oc)
        avformat_free_context(c->oc);
    if (c->out_io) {
        av_freep(&c->out_io->buffer);
        avio_context_free(&c->out_io);
    }
    pb_flac_free(c->flac);
    avcodec_free_context(&c->vdec);
    avcodec_free_context(&c->venc);
    sws_freeContext(c->sws);
    av_frame_free(&c->frame);
    av_frame_free(&c->yuv);
    av_packet_free(&c->pkt);
    free(c->out.p);
}

static int fail(conv_t *c, int rc, const char *what)
{
    snprintf(c->err, c->err_size, "%s", what);
    return rc;
}

static int open_input(conv_t *c)
{
    c->ic = avformat_alloc_context();
    c->in_io = avio_alloc_context(av_malloc(IO_BUF), IO_BUF, 0, &c->in, mem_read, NULL, mem_seek);
    if (!c->ic || !c->in_io)
        abort();
    c->ic->pb = c->in_io;
    c->ic->flags |= AVFMT_FLAG_CUSTOM_IO;
    const AVInputFormat *mov = av_find_input_format("mov");
    if (avformat_open_input(&c->ic, NULL, mov, NULL) < 0) {
        c->ic = NULL; /* freed by avformat_open_input */
        return fail(c, VG_EMEDIA, "the stored segment cannot be read");
    }
    c->vi = av_find_best_stream(c->ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    c->ai = av_find_best_stream(c->ic, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
    if (c->vi < 0)
        c->vi = -1;
    if (c->ai < 0)
        c->ai = -1;
    return VG_OK;
}

/* The H.264 encoder for what the H.265 stream of st decodes to. Its
 * settings depend only on the stored stream's size and time base, so the
 * init part and every fragment get the same SPS and PPS. */
static int open_h264(conv_t *c, const AVStream *st)
{
    const AVCodec *ec = avcodec_find_encoder_by_name("libx264");
    if (!ec)
        return fail(c, VG_EMEDIA, "this build of libavcodec has no libx264 encoder");
    if (st->codecpar->width <= 0 || st->codecpar->height <= 0)
        return fail(c, VG_EMEDIA, "the stored video has no size");
    c->venc = avcodec_alloc_context3(ec);
    if (!c->venc)
        abort();
    c->venc->width = st->codecpar->width;
    c->venc->height = st->codecpar->height;
    c->venc->pix_fmt = AV_PIX_FMT_YUV420P;
    c->venc->time_base = st->time_base;
    c->venc->gop_size = 600;   /* one IDR per fragment: the first frame */
    c->venc->max_b_frames = 0; /* pts == dts: the stored timing kept */
    c->venc->thread_count = 1; /* transcode_max bounds the cores used */
    c->venc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    av_opt_set(c->venc->priv_data, "preset", "veryfast", 0);
    av_opt_set(c->venc->priv_data, "tune", "zerolatency", 0);
    av_opt_set(c->venc->priv_data, "crf", "23", 0);
    if (avcodec_open2(c->venc, ec, NULL) < 0)
        return fail(c, VG_EMEDIA, "the H.264 encoder refused the stream");
    return VG_OK;
}

static int open_output(conv_t *c)
{
    if (avformat_alloc_output_context2(&c->oc, NULL, "mp4", NULL) < 0 || !c->oc)
        return fail(c, VG_EMEDIA, "no MP4 muxer");
    c->oc->strict_std_compliance = FF_COMPLIANCE_EXPERIMENTAL; /* FLAC in MP4 */
    c->vo = c->ao = -1;
    if (c->vi >= 0) {
        AVStream *is = c->ic->streams[c->vi];
        AVStream *os = avformat_new_stream(c->oc, NULL);
        if (!os)
            abort();
        if ((c->conv & PB_CONV_H264) && is->codecpar->codec_id == AV_CODEC_ID_HEVC) {
            int rc = open_h264(c, is);
            if (rc != VG_OK)
                return rc;
            if (avcodec_parameters_from_context(os->codecpar, c->venc) < 0)
                return fail(c, VG_EMEDIA, "the H.264 encoder gave no parameters");
        } else {
            c->conv &= ~PB_CONV_H264;
            if (avcodec_parameters_copy(os->codecpar, is->codecpar) < 0)
                abort();
            os->codecpar->codec_tag = 0;
            if (is->codecpar->codec_id == AV_CODEC_ID_HEVC)
                os->codecpar->codec_tag = MKTAG('h', 'v', 'c', '1');
        }
        os->time_base = is->time_base;
        c->vo = os->index;
    }
    if (c->ai >= 0) {
        AVStream *is = c->ic->streams[c->ai];
        enum AVCodecID id = is->codecpar->codec_id;
        int g711 = id == AV_CODEC_ID_PCM_ALAW || id == AV_CODEC_ID_PCM_MULAW;
        AVStream *os = avformat_new_stream(c->oc, NULL);
        if (!os)
            abort();
        if (g711) {
            if (pb_flac_open(is->codecpar, is->codecpar->sample_rate,
                             is->codecpar->ch_layout.nb_channels, &c->flac) != VG_OK ||
                pb_flac_params(c->flac, os->codecpar, &c->flac_tb) != VG_OK)
                return fail(c, VG_EMEDIA, "no G.711 to FLAC transcoder");
            os->time_base = c->flac_tb;
        } else {
            if (avcodec_parameters_copy(os->codecpar, is->codecpar) < 0)
                abort();
            os->codecpar->codec_tag = 0;
            os->time_base = is->time_base;
        }
        c->ao = os->index;
    }
    if (c->vo < 0 && c->ao < 0)
        return fail(c, VG_EMEDIA, "the stored segment has no stream");
    c->out_io = avio_alloc_context(av_malloc(IO_BUF), IO_BUF, 1, &c->out, NULL, mem_write, NULL);
    if (!c->out_io)
        abort();
    c->oc->pb = c->out_io;
    c->oc->flags |= AVFMT_FLAG_CUSTOM_IO;
    /* As the segment writer does (archive/writer.c): fragments cut by us;
     * frag_discont makes each track's tfdt its first packet's DTS, so a
     * converted fragment keeps the stored times; no edit lists, no shift. */
    AVDictionary *opts = NULL;
    av_dict_set(&opts, "movflags",
                "+frag_custom+empty_moov+default_base_moof+frag_discont+skip_trailer", 0);
    av_dict_set(&opts, "use_editlist", "0", 0);
    c->oc->avoid_negative_ts = AVFMT_AVOID_NEG_TS_MAKE_NON_NEGATIVE;
    int ret = avformat_write_header(c->oc, &opts);
    av_dict_free(&opts);
    if (ret < 0)
        return fail(c, VG_EMEDIA, "the MP4 muxer refused the converted streams");
    avio_flush(c->out_io);
    return VG_OK;
}

static void write_out(conv_t *c, AVPacket *pkt, int os_index, AVRational from_tb)
{
    AVStream *os = c->oc->streams[os_index];
    av_packet_rescale_ts(pkt, from_tb, os->time_base);
    pkt->stream_index = os_index;
    pkt->pos = -1;
    if (av_write_frame(c->oc, pkt) < 0)
        c->write_failed = 1;
}

static void flac_emit(void *ctx, AVPacket *pkt)
{
    conv_t *c = ctx;
    write_out(c, pkt, c->ao, c->flac_tb);
}

/* The encoder gives packets without durations; each takes its stored
 * frame's, so the fragment lasts exactly as long as the stored one. */
static void note_duration(conv_t *c, int64_t pts, int64_t dur)
{
    c->dur_pts[c->dur_next % DUR_RING] = pts;
    c->dur_val[c->dur_next % DUR_RING] = dur;
    c->dur_next++;
}

static int64_t noted_duration(const conv_t *c, int64_t pts)
{
    for (size_t i = 0; i < DUR_RING; i++) {
        if (c->dur_pts[i] == pts && c->dur_val[i] > 0)
            return c->dur_val[i];
    }
    return 0;
}

static int encode_video(conv_t *c, AVFrame *frame)
{
    if (avcodec_send_frame(c->venc, frame) < 0)
        return fail(c, VG_EMEDIA, "the H.264 encoder failed");
    while (avcodec_receive_packet(c->venc, c->pkt) == 0) {
        if (c->pkt->duration <= 0)
            c->pkt->duration = noted_duration(c, c->pkt->pts);
        write_out(c, c->pkt, c->vo, c->venc->time_base);
        av_packet_unref(c->pkt);
    }
    return VG_OK;
}

/* Decoded frames at or after the fragment's first pts are encoded; those
 * before it only built the decoder's references. */
static int transcode_frames(conv_t *c)
{
    while (avcodec_receive_frame(c->vdec, c->frame) == 0) {
        int64_t pts = c->frame->best_effort_timestamp;
        if (c->target_pts == INT64_MIN || pts < c->target_pts) {
            av_frame_unref(c->frame);
            continue;
        }
        AVFrame *in = c->frame;
        if (c->frame->format != AV_PIX_FMT_YUV420P || c->frame->width != c->venc->width ||
            c->frame->height != c->venc->height) {
            c->sws = sws_getCachedContext(c->sws, c->frame->width, c->frame->height,
                                          c->frame->format, c->venc->width, c->venc->height,
                                          AV_PIX_FMT_YUV420P, SWS_BILINEAR, NULL, NULL, NULL);
            if (!c->sws) {
                av_frame_unref(c->frame);
                return fail(c, VG_EMEDIA, "cannot convert the decoded pictures");
            }
            av_frame_unref(c->yuv);
            c->yuv->format = AV_PIX_FMT_YUV420P;
            c->yuv->width = c->venc->width;
            c->yuv->height = c->venc->height;
            if (av_frame_get_buffer(c->yuv, 0) < 0)
                abort();
            sws_scale(c->sws, (const uint8_t *const *)c->frame->data, c->frame->linesize, 0,
                      c->frame->height, c->yuv->data, c->yuv->linesize);
            in = c->yuv;
        }
        in->pts = pts;
        in->pict_type = AV_PICTURE_TYPE_NONE;
        int rc = encode_video(c, in);
        av_frame_unref(c->frame);
        if (rc != VG_OK)
            return rc;
    }
    return VG_OK;
}

static int open_hevc_decoder(conv_t *c)
{
    const AVStream *is = c->ic->streams[c->vi];
    const AVCodec *dc = avcodec_find_decoder(is->codecpar->codec_id);
    if (!dc)
        return fail(c, VG_EMEDIA, "no H.265 decoder");
    c->vdec = avcodec_alloc_context3(dc);
    if (!c->vdec)
        abort();
    c->vdec->thread_count = 1;
    c->vdec->pkt_timebase = is->time_base;
    if (avcodec_parameters_to_context(c->vdec, is->codecpar) < 0 ||
        avcodec_open2(c->vdec, dc, NULL) < 0)
        return fail(c, VG_EMEDIA, "the H.265 decoder refused the stream");
    c->frame = av_frame_alloc();
    c->yuv = av_frame_alloc();
    if (!c->frame || !c->yuv)
        abort();
    return VG_OK;
}

/* The G.711 of the input laid on the window [w0, w1) (samples): each
 * sample at its stored time, silence where none was stored, samples outside
 * dropped. Then FLAC from w0. */
static int flac_window(conv_t *c, AVPacket **pk, size_t n, int64_t w0, int64_t w1)
{
    AVStream *is = c->ic->streams[c->ai];
    int ch = is->codecpar->ch_layout.nb_channels > 0 ? is->codecpar->ch_layout.nb_channels : 1;
    int alaw = is->codecpar->codec_id == AV_CODEC_ID_PCM_ALAW;
    int64_t len = w1 - w0;
    if (len <= 0)
        return VG_OK;
    if (len > MAX_WINDOW_SECONDS * (int64_t)c->flac_tb.den)
        return fail(c, VG_EMEDIA, "the fragment is too long to convert");
    int16_t *pcm = vg_calloc((size_t)len * (size_t)ch, sizeof(*pcm));
    for (size_t i = 0; i < n; i++) {
        if (pk[i]->stream_index != c->ai)
            continue;
        int64_t at = av_rescale_q(pk[i]->pts, is->time_base, c->flac_tb);
        for (int b = 0; b < pk[i]->size; b++) {
            int64_t t = at + b / ch - w0;
            if (t >= 0 && t < len)
                pcm[t * ch + b % ch] = alaw ? pb_alaw_linear(pk[i]->data[b])
                                            : pb_ulaw_linear(pk[i]->data[b]);
        }
    }
    pb_flac_start(c->flac, w0);
    int rc = pb_flac_push_pcm(c->flac, pcm, len, flac_emit, c);
    free(pcm);
    if (rc == VG_OK)
        rc = pb_flac_finish(c->flac, flac_emit, c);
    return rc == VG_OK ? VG_OK : fail(c, VG_EMEDIA, "the FLAC encoder failed");
}

/* Reads every packet of the input; writes the video of the fragment asked
 * (copied, or transcoded) and its audio window, and cuts one fragment at
 * the end. The input holds the fragments either side too: a camera's audio
 * arrives a little after its video, so the samples that play with a
 * fragment's video are partly stored in the next one. The converted
 * fragment's audio covers exactly its video's time, [first frame, end of
 * the last), each sample at its stored time: audio and video of every
 * fragment start together, and a player finds no hole between fragments or
 * files (what lies before a file's first sample is silence). An audio-only
 * file's window is its fragment's own audio. */
static int convert_media(conv_t *c)
{
    int rc = VG_OK;
    AVPacket **pk = NULL;
    size_t n = 0, cap = 0;
    c->target_pts = INT64_MIN;
    if ((c->conv & PB_CONV_H264) && (rc = open_hevc_decoder(c)) != VG_OK)
        return rc;
    /* Only what the fragment asked produces output: the header's bytes go. */
    c->out.len = 0;
    for (;;) {
        AVPacket *p = av_packet_alloc();
        if (!p)
            abort();
        if (av_read_frame(c->ic, p) < 0) {
            av_packet_free(&p);
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            pk = vg_realloc(pk, cap * sizeof(*pk));
        }
        pk[n++] = p;
    }
    /* The audio window, in samples. */
    int64_t w0 = INT64_MAX, w1 = INT64_MIN;
    int by_video = c->vi >= 0;
    int64_t next_v = INT64_MAX; /* the next fragment's first frame: where this one ends */
    for (size_t i = 0; c->flac && i < n; i++) {
        const AVPacket *p = pk[i];
        int mine = p->pos >= c->keep_from && p->pos < c->keep_to;
        if (by_video && p->stream_index == c->vi && p->pos >= c->keep_to) {
            int64_t a = av_rescale_q(p->pts, c->ic->streams[c->vi]->time_base, c->flac_tb);
            if (a < next_v)
                next_v = a;
        }
        if (!mine || p->stream_index != (by_video ? c->vi : c->ai))
            continue;
        AVRational tb = c->ic->streams[p->stream_index]->time_base;
        int64_t end = by_video ? p->pts + p->duration
                               : p->pts + av_rescale_q(p->size, c->flac_tb, tb);
        int64_t a = av_rescale_q(p->pts, tb, c->flac_tb), b = av_rescale_q(end, tb, c->flac_tb);
        if (a < w0)
            w0 = a;
        if (b > w1)
            w1 = b;
    }
    for (size_t i = 0; rc == VG_OK && i < n; i++) {
        AVPacket *p = pk[i];
        AVStream *is = c->ic->streams[p->stream_index];
        int mine = p->pos >= c->keep_from && p->pos < c->keep_to;
        if (p->stream_index == c->vi && c->vo >= 0) {
            if (c->conv & PB_CONV_H264) {
                if (mine && c->target_pts == INT64_MIN)
                    c->target_pts = p->pts;
                if (mine)
                    note_duration(c, p->pts, p->duration);
                if (p->pos < c->keep_to && avcodec_send_packet(c->vdec, p) == 0)
                    rc = transcode_frames(c);
            } else if (mine) {
                write_out(c, p, c->vo, is->time_base);
            }
        } else if (p->stream_index == c->ai && c->ao >= 0 && mine && !c->flac) {
            write_out(c, p, c->ao, is->time_base);
        }
    }
    if (next_v != INT64_MAX && next_v > w0)
        w1 = next_v;
    if (rc == VG_OK && c->flac && w0 != INT64_MAX)
        rc = flac_window(c, pk, n, w0, w1);
    for (size_t i = 0; i < n; i++)
        av_packet_free(&pk[i]);
    free(pk);
    if (rc == VG_OK && c->vdec) {
        avcodec_send_packet(c->vdec, NULL);
        rc = transcode_frames(c);
        if (rc == VG_OK)
            rc = encode_video(c, NULL);
    }
    if (rc != VG_OK)
        return rc;
    if (av_write_frame(c->oc, NULL) < 0 || c->write_failed)
        return fail(c, VG_EMEDIA, "the MP4 muxer refused a converted packet");
    avio_flush(c->out_io);
    return VG_OK;
}

/* ---- the init part keeps the stored video sample entry ---- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The child box of type within [from, to) of p: its offset, or -1. */
static long child(const uint8_t *p, size_t from, size_t to, const char *type)
{
    for (size_t o = from; o + 8 <= to;) {
        uint32_t size = be32(p + o);
        if (size < 8 || o + size > to)
            return -1;
        if (memcmp(p + o + 4, type, 4) == 0)
            return (long)o;
        o += size;
    }
    return -1;
}

/* Where the video track's one sample entry lies in an init part, and the
 * offsets of the boxes holding it (moov trak mdia minf stbl stsd), whose
 * sizes change with it. VG_OK or VG_ENOTFOUND. */
static int video_entry(const uint8_t *p, size_t len, size_t path[6], size_t *at, size_t *size)
{
    long moov = child(p, 0, len, "moov");
    if (moov < 0)
        return VG_ENOTFOUND;
    size_t moov_end = (size_t)moov + be32(p + moov);
    for (size_t o = (size_t)moov + 8; o + 8 <= moov_end;) {
        long trak = child(p, o, moov_end, "trak");
        if (trak < 0)
            return VG_ENOTFOUND;
        size_t t_end = (size_t)trak + be32(p + trak);
        o = t_end;
        long mdia = child(p, (size_t)trak + 8, t_end, "mdia");
        if (mdia < 0)
            continue;
        size_t m_end = (size_t)mdia + be32(p + mdia);
        long hdlr = child(p, (size_t)mdia + 8, m_end, "hdlr");
        long minf = child(p, (size_t)mdia + 8, m_end, "minf");
        if (hdlr < 0 || minf < 0 || be32(p + hdlr) < 20 || memcmp(p + hdlr + 16, "vide", 4) != 0)
            continue;
        size_t mi_end = (size_t)minf + be32(p + minf);
        long stbl = child(p, (size_t)minf + 8, mi_end, "stbl");
        if (stbl < 0)
            return VG_ENOTFOUND;
        size_t sb_end = (size_t)stbl + be32(p + stbl);
        long stsd = child(p, (size_t)stbl + 8, sb_end, "stsd");
        if (stsd < 0 || be32(p + stsd) < 16 + 8)
            return VG_ENOTFOUND;
        size_t sd_end = (size_t)stsd + be32(p + stsd);
        size_t e = (size_t)stsd + 16;
        uint32_t es = be32(p + e);
        if (es < 8 || e + es > sd_end)
            return VG_ENOTFOUND;
        size_t boxes[6] = {(size_t)moov, (size_t)trak, (size_t)mdia, (size_t)minf, (size_t)stbl,
                           (size_t)stsd};
        memcpy(path, boxes, sizeof(boxes));
        *at = e;
        *size = es;
        return VG_OK;
    }
    return VG_ENOTFOUND;
}

/* Puts the stored init's video sample entry, byte for byte, in place of
 * the one the muxer wrote (same codec): the copied samples keep the
 * description they were recorded with. Left as the muxer wrote it when
 * either cannot be found. */
static void keep_stored_entry(wbuf_t *out, const uint8_t *stored, size_t stored_len)
{
    size_t gp[6], sp[6], g_at, g_size, s_at, s_size;
    if (video_entry(out->p, out->len, gp, &g_at, &g_size) != VG_OK ||
        video_entry(stored, stored_len, sp, &s_at, &s_size) != VG_OK ||
        memcmp(out->p + g_at + 4, stored + s_at + 4, 4) != 0)
        return;
    size_t len = out->len - g_size + s_size;
    uint8_t *p = vg_malloc(len);
    memcpy(p, out->p, g_at);
    memcpy(p + g_at, stored + s_at, s_size);
    memcpy(p + g_at + s_size, out->p + g_at + g_size, out->len - g_at - g_size);
    int64_t delta = (int64_t)s_size - (int64_t)g_size;
    for (int i = 0; i < 6; i++) {
        uint32_t v = (uint32_t)((int64_t)be32(p + gp[i]) + delta);
        p[gp[i]] = (uint8_t)(v >> 24);
        p[gp[i] + 1] = (uint8_t)(v >> 16);
        p[gp[i] + 2] = (uint8_t)(v >> 8);
        p[gp[i] + 3] = (uint8_t)v;
    }
    free(out->p);
    out->p = p;
    out->len = out->cap = len;
}

/* ---- the media route's entry ---- */

static int read_at(int fd, int64_t off, uint8_t *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, buf + done, len - done, (off_t)(off + (int64_t)done));
        if (r <= 0)
            return VG_EIO;
        done += (size_t)r;
    }
    return VG_OK;
}

int pb_convert(idx_t *idx, const char *data_dir, const char *source, int64_t segment_id,
               unsigned conv, long frag, pb_converted_t *out, char *err, size_t err_size)
{
    memset(out, 0, sizeof(*out));
    conv_t c = {.conv = conv, .vi = -1, .ai = -1, .vo = -1, .ao = -1,
                .err = err, .err_size = err_size};
    arc_frag_t *f = NULL;
    size_t nf = 0;
    uint8_t *in = NULL;
    pb_media_t m = {.fd = -1};
    err[0] = '\0';
    int rc = pb_media_open(NULL, 0, idx, data_dir, source, segment_id, &m);
    if (rc != VG_OK) {
        snprintf(err, err_size, "no such segment");
        goto cleanup;
    }
    out->seg = m.seg;
    unsigned need = pb_convert_for(m.seg.codecs, conv);
    if ((conv & PB_CONV_FLAC) && !(need & PB_CONV_FLAC)) {
        rc = fail(&c, VG_EINVAL, "audio=flac converts G.711 audio only");
        goto cleanup;
    }
    if ((conv & PB_CONV_H264) && !(need & PB_CONV_H264)) {
        rc = fail(&c, VG_EINVAL, "video=h264 converts H.265 video only");
        goto cleanup;
    }
    if (m.seg.init_bytes <= 0 || (uint64_t)m.seg.init_bytes > m.size ||
        m.seg.init_bytes > PB_CONVERT_MAX_INPUT) {
        rc = fail(&c, VG_EMEDIA, "the stored segment has no usable init part");
        goto cleanup;
    }
    int64_t first = 0, end = 0;
    if (frag >= 0) {
        rc = pb_segment_frags(idx, data_dir, segment_id, &f, &nf);
        if (rc != VG_OK) {
            fail(&c, rc, "the segment's fragments cannot be read");
            goto cleanup;
        }
        if ((size_t)frag >= nf) {
            rc = fail(&c, VG_ENOTFOUND, "no such fragment in the segment");
            goto cleanup;
        }
        size_t k = (size_t)frag, last = (size_t)frag;
        /* A transcode decodes from the keyframe fragment at or before; the
         * audio window takes samples stored in the fragments either side. */
        if (conv & PB_CONV_H264) {
            for (size_t back = 0; back < MAX_WALK_BACK && k > 0 && !f[k].key; back++)
                k--;
        }
        if (need & PB_CONV_FLAC) {
            if (k == (size_t)frag && k > 0)
                k--;
            if (last + 1 < nf)
                last++;
        }
        first = f[k].offset;
        end = f[last].offset + f[last].size;
        if (first < m.seg.init_bytes || end > (int64_t)m.size || end <= first) {
            rc = fail(&c, VG_ECORRUPT, "the fragment table does not fit the file");
            goto cleanup;
        }
        if (end - first > PB_CONVERT_MAX_INPUT) {
            rc = fail(&c, VG_EMEDIA, "the stored fragment is too large to convert");
            goto cleanup;
        }
        c.keep_from = m.seg.init_bytes + (f[frag].offset - first);
        c.keep_to = c.keep_from + f[frag].size;
    }
    size_t init_len = (size_t)m.seg.init_bytes, body = (size_t)(end - first);
    in = vg_malloc(init_len + body);
    if (read_at(m.fd, 0, in, init_len) != VG_OK ||
        (body && read_at(m.fd, first, in + init_len, body) != VG_OK)) {
        rc = fail(&c, VG_EIO, "the stored segment cannot be read");
        goto cleanup;
    }
    c.in.p = in;
    c.in.len = init_len + body;
    c.pkt = av_packet_alloc();
    if (!c.pkt)
        abort();
    if ((rc = open_input(&c)) != VG_OK || (rc = open_output(&c)) != VG_OK)
        goto cleanup;
    if (frag >= 0 && (rc = convert_media(&c)) != VG_OK)
        goto cleanup;
    if (c.out.over) {
        rc = fail(&c, VG_EMEDIA, "the converted fragment is too large");
        goto cleanup;
    }
    if (frag < 0 && !(c.conv & PB_CONV_H264))
        keep_stored_entry(&c.out, in, init_len);
    out->data = c.out.p;
    out->len = c.out.len;
    c.out.p = NULL;
    rc = VG_OK;

cleanup:
    conv_free(&c);
    free(in);
    free(f);
    if (m.fd >= 0)
        close(m.fd);
    return rc;
}
