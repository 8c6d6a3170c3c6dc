/* What a snapshot costs libavcodec alone: for each FILE OFFSET pair, the
 * frame at or before OFFSET (seconds from the file's time 0, as vigild counts
 * a segment's times) decoded from the keyframe before it and encoded as the
 * JPEG vigild makes, with vigild's method (frames nothing refers to skipped
 * but the one shown, frame threads, mjpeg at q=3) and none of its serving:
 * no HTTP, no index, no cache, the packets already in memory. Prints one line
 * per pair: "decode_ms encode_ms" (bench/bench_snapshot.py reports them
 * beside vigild's own times).
 *
 * Usage: snapfloor THREADS FILE OFFSET [FILE OFFSET ...] */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MAX_PACKETS 20000

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static AVPacket *pkts[MAX_PACKETS];

/* The JPEG as vigild encodes it at the recorded size: the range converted
 * with no filter, mjpeg at q=3. Returns its size, or -1. */
static int encode(const AVFrame *src, int threads)
{
    int size = -1;
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
    AVCodecContext *enc = codec ? avcodec_alloc_context3(codec) : NULL;
    AVFrame *dst = av_frame_alloc();
    AVPacket *out = av_packet_alloc();
    struct SwsContext *sws = NULL;
    if (!enc || !dst || !out)
        goto cleanup;
    dst->format = AV_PIX_FMT_YUVJ420P;
    dst->width = src->width;
    dst->height = src->height;
    if (av_frame_get_buffer(dst, 0) < 0)
        goto cleanup;
    sws = sws_getContext(src->width, src->height, src->format, src->width, src->height,
                         AV_PIX_FMT_YUVJ420P, SWS_POINT, NULL, NULL, NULL);
    if (!sws)
        goto cleanup;
    sws_scale(sws, (const uint8_t *const *)src->data, src->linesize, 0, src->height, dst->data,
              dst->linesize);
    enc->width = src->width;
    enc->height = src->height;
    enc->pix_fmt = AV_PIX_FMT_YUVJ420P;
    enc->time_base = (AVRational){1, 25};
    enc->flags |= AV_CODEC_FLAG_QSCALE;
    enc->global_quality = FF_QP2LAMBDA * 3;
    enc->thread_count = threads;
    if (avcodec_open2(enc, codec, NULL) < 0)
        goto cleanup;
    dst->pts = 0;
    dst->quality = enc->global_quality;
    if (avcodec_send_frame(enc, dst) >= 0 && avcodec_send_frame(enc, NULL) >= 0 &&
        avcodec_receive_packet(enc, out) >= 0)
        size = out->size;

cleanup:
    sws_freeContext(sws);
    avcodec_free_context(&enc);
    av_packet_free(&out);
    av_frame_free(&dst);
    return size;
}

static int one(const char *path, double offset, int threads)
{
    AVFormatContext *ic = NULL;
    AVCodecContext *dec = NULL;
    AVPacket *pkt = av_packet_alloc();
    AVFrame *frame = av_frame_alloc(), *best = av_frame_alloc();
    int n = 0, rc = 1;
    if (!pkt || !frame || !best || avformat_open_input(&ic, path, NULL, NULL) < 0 ||
        avformat_find_stream_info(ic, NULL) < 0)
        goto cleanup;
    int vs = av_find_best_stream(ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    if (vs < 0)
        goto cleanup;
    AVStream *st = ic->streams[vs];
    int64_t target = av_rescale_q((int64_t)(offset * 1e6), AV_TIME_BASE_Q, st->time_base);
    while (n < MAX_PACKETS && av_read_frame(ic, pkt) >= 0) {
        if (pkt->stream_index == vs)
            pkts[n++] = av_packet_clone(pkt);
        av_packet_unref(pkt);
    }
    /* the frame to show, then the keyframe its decoding starts from */
    int want = -1, key = -1;
    for (int i = 0; i < n; i++) {
        if (pkts[i]->pts != AV_NOPTS_VALUE && pkts[i]->pts <= target &&
            (want < 0 || pkts[i]->pts > pkts[want]->pts))
            want = i;
    }
    for (int i = want; i >= 0; i--) {
        if (pkts[i]->flags & AV_PKT_FLAG_KEY) {
            key = i;
            break;
        }
    }
    if (want < 0 || key < 0)
        goto cleanup;
    double t0 = now_ms();
    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
    if (!codec || !(dec = avcodec_alloc_context3(codec)) ||
        avcodec_parameters_to_context(dec, st->codecpar) < 0)
        goto cleanup;
    dec->thread_count = threads;
    dec->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    dec->pkt_timebase = st->time_base;
    if (avcodec_open2(dec, codec, NULL) < 0)
        goto cleanup;
    for (int i = key; i <= want + 1; i++) {
        if (i <= want)
            dec->skip_frame = i == want ? AVDISCARD_DEFAULT : AVDISCARD_NONREF;
        avcodec_send_packet(dec, i <= want ? pkts[i] : NULL);
        while (avcodec_receive_frame(dec, frame) >= 0) {
            if (frame->pts == pkts[want]->pts) {
                av_frame_unref(best);
                av_frame_move_ref(best, frame);
            } else {
                av_frame_unref(frame);
            }
        }
    }
    double t1 = now_ms();
    if (!best->buf[0])
        goto cleanup;
    int size = encode(best, threads);
    double t2 = now_ms();
    if (size <= 0)
        goto cleanup;
    printf("%.2f %.2f\n", t1 - t0, t2 - t1);
    rc = 0;

cleanup:
    if (rc)
        fprintf(stderr, "snapfloor: %s at %.3f s: cannot decode\n", path, offset);
    for (int i = 0; i < n; i++)
        av_packet_free(&pkts[i]);
    avcodec_free_context(&dec);
    avformat_close_input(&ic);
    av_packet_free(&pkt);
    av_frame_free(&frame);
    av_frame_free(&best);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 4 || argc % 2 != 0) {
        fprintf(stderr, "usage: snapfloor THREADS FILE OFFSET [FILE OFFSET ...]\n");
        return 2;
    }
    int threads = atoi(argv[1]);
    int rc = 0;
    for (int i = 2; i + 1 < argc; i += 2)
        rc |= one(argv[i], atof(argv[i + 1]), threads > 0 ? threads : 1);
    return rc;
}
