/* What a snapshot costs libavcodec alone: for each FILE OFFSET pair, the
 * frame at or before OFFSET (seconds from the file's time 0, as vigild counts
 * a segment's times) decoded from the keyframe before it and encoded as the
 * JPEG vigild makes (its own pb_jpeg_encode), with vigild's method (frames
 * nothing refers to skipped but the one shown, frame threads) and none of its
 * serving: no HTTP, no index, no cache, the packets already in memory. Prints one line
 * per pair: "decode_ms encode_ms" (bench/bench_snapshot.py reports them
 * beside vigild's own times).
 *
 * Usage: snapfloor THREADS FILE OFFSET [FILE OFFSET ...] */
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "core/errors.h"
#include "playback/playback_private.h"

#define MAX_PACKETS 20000

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

static AVPacket *pkts[MAX_PACKETS];

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
    uint8_t *jpeg = NULL;
    size_t len = 0;
    int enc = pb_jpeg_encode(best, best->width, best->height, threads, &jpeg, &len);
    double t2 = now_ms();
    free(jpeg);
    if (enc != VG_OK || len == 0)
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
    av_log_set_level(AV_LOG_ERROR); /* as vigild routes libav's notices away */
    int threads = atoi(argv[1]);
    int rc = 0;
    for (int i = 2; i + 1 < argc; i += 2)
        rc |= one(argv[i], atof(argv[i + 1]), threads > 0 ? threads : 1);
    return rc;
}
