/* Check suite for playback/audio.c: the G.711 tables (known values and
 * every code against libavcodec's pcm_alaw / pcm_mulaw decoders), the WAV
 * header, the arithmetic that maps bytes, samples and wall time, and the
 * WAV of segments whose audio overlaps where one window of decoding ends. */
#include "core/errors.h"
#include "playback/playback.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

static char g_dir[64];

START_TEST(test_alaw_known)
{
    ck_assert_int_eq(pb_alaw_linear(0xd5), 8);
    ck_assert_int_eq(pb_alaw_linear(0x55), -8);
    ck_assert_int_eq(pb_alaw_linear(0xaa), 32256);
    ck_assert_int_eq(pb_alaw_linear(0x2a), -32256);
    ck_assert_int_eq(pb_alaw_linear(0x80), 5504);
    for (int a = 0; a < 256; a++)
        ck_assert_int_eq(pb_alaw_linear((uint8_t)(a ^ 0x80)), -pb_alaw_linear((uint8_t)a));
}
END_TEST

START_TEST(test_ulaw_known)
{
    ck_assert_int_eq(pb_ulaw_linear(0xff), 0);
    ck_assert_int_eq(pb_ulaw_linear(0x7f), 0);
    ck_assert_int_eq(pb_ulaw_linear(0x80), 32124);
    ck_assert_int_eq(pb_ulaw_linear(0x00), -32124);
    ck_assert_int_eq(pb_ulaw_linear(0xfe), 8);
    ck_assert_int_eq(pb_ulaw_linear(0x7e), -8);
    for (int u = 0; u < 256; u++)
        ck_assert_int_eq(pb_ulaw_linear((uint8_t)(u ^ 0x80)), -pb_ulaw_linear((uint8_t)u));
}
END_TEST

/* All 256 codes through libavcodec's decoder, one packet. */
static void decode_all(enum AVCodecID id, int16_t out[256])
{
    const AVCodec *codec = avcodec_find_decoder(id);
    ck_assert_ptr_nonnull(codec);
    AVCodecContext *c = avcodec_alloc_context3(codec);
    c->sample_rate = 8000;
    av_channel_layout_default(&c->ch_layout, 1);
    ck_assert_int_ge(avcodec_open2(c, codec, NULL), 0);
    AVPacket *pkt = av_packet_alloc();
    ck_assert_int_eq(av_new_packet(pkt, 256), 0);
    for (int i = 0; i < 256; i++)
        pkt->data[i] = (uint8_t)i;
    AVFrame *f = av_frame_alloc();
    ck_assert_int_eq(avcodec_send_packet(c, pkt), 0);
    ck_assert_int_eq(avcodec_receive_frame(c, f), 0);
    ck_assert_int_eq(f->nb_samples, 256);
    ck_assert_int_eq(f->format, AV_SAMPLE_FMT_S16);
    memcpy(out, f->data[0], 256 * sizeof(int16_t));
    av_frame_free(&f);
    av_packet_free(&pkt);
    avcodec_free_context(&c);
}

START_TEST(test_g711_bit_exact_vs_libavcodec)
{
    int16_t a[256], u[256];
    decode_all(AV_CODEC_ID_PCM_ALAW, a);
    decode_all(AV_CODEC_ID_PCM_MULAW, u);
    for (int i = 0; i < 256; i++) {
        ck_assert_int_eq(pb_alaw_linear((uint8_t)i), a[i]);
        ck_assert_int_eq(pb_ulaw_linear((uint8_t)i), u[i]);
    }
}
END_TEST

START_TEST(test_wav_header)
{
    static const uint8_t want[PB_WAV_HEADER] = {
        'R', 'I', 'F', 'F', 0x44, 0x00, 0x00, 0x00, 'W', 'A', 'V', 'E', 'f', 'm', 't', ' ',
        0x10, 0, 0, 0, 0x01, 0x00, 0x01, 0x00, 0x40, 0x1f, 0x00, 0x00, 0x80, 0x3e, 0x00, 0x00,
        0x02, 0x00, 0x10, 0x00, 'd', 'a', 't', 'a', 0x20, 0x00, 0x00, 0x00};
    uint8_t h[PB_WAV_HEADER];
    pb_wav_header(h, 8000, 16);
    ck_assert_mem_eq(h, want, sizeof(want));
    pb_wav_header(h, 48000, 48000 * 3600);
    /* RIFF size = 36 + data; data = 2 bytes a sample */
    ck_assert_uint_eq(h[40] | h[41] << 8 | h[42] << 16 | (uint32_t)h[43] << 24,
                      2u * 48000 * 3600);
    ck_assert_uint_eq(h[4] | h[5] << 8 | h[6] << 16 | (uint32_t)h[7] << 24,
                      36u + 2u * 48000 * 3600);
    ck_assert_uint_eq(h[28] | h[29] << 8 | h[30] << 16, 96000);
}
END_TEST

/* Sample n of a WAV of [from, to) is at from + n / rate; its bytes are at
 * 44 + 2n. */
START_TEST(test_range_arithmetic)
{
    const int64_t s = 1000000;
    ck_assert_int_eq(pb_wav_samples(0, 4 * 3600 * s, 8000), 4LL * 3600 * 8000);
    ck_assert_int_eq(pb_wav_samples(10 * s, 10 * s + 125, 8000), 1);   /* one sample: 125 µs */
    ck_assert_int_eq(pb_wav_samples(10 * s, 10 * s + 124, 8000), 0);
    ck_assert_int_eq(pb_wav_samples(10 * s, 9 * s, 8000), 0);          /* inverted: empty */
    ck_assert_int_eq(pb_wav_samples(0, s, 48000), 48000);
    /* placement: to the nearest sample, floor for halves below zero too */
    ck_assert_int_eq(pb_sample_at(0, 0, 8000), 0);
    ck_assert_int_eq(pb_sample_at(0, 62, 8000), 0);
    ck_assert_int_eq(pb_sample_at(0, 63, 8000), 1);     /* 0.504 of a sample */
    ck_assert_int_eq(pb_sample_at(0, 3250000, 8000), 26000);
    ck_assert_int_eq(pb_sample_at(5 * s, 2 * s, 8000), -24000);
    ck_assert_int_eq(pb_sample_at(0, -63, 8000), -1);
    ck_assert_int_eq(pb_sample_at(0, -62, 8000), 0);
    /* a range that starts at a later wall time starts at the same sample
     * as the earlier range's sample of that time */
    for (int64_t off = 0; off < 3 * s; off += 125 * 7) {
        int64_t n = pb_sample_at(0, off, 8000);
        ck_assert_int_eq(pb_sample_at(0, 100 * s + off, 8000) - pb_sample_at(0, 100 * s, 8000), n);
    }
}
END_TEST

START_TEST(test_codecs)
{
    ck_assert(pb_codecs_have_audio("h264,pcm_alaw"));
    ck_assert(pb_codecs_have_audio("pcm_mulaw"));
    ck_assert(pb_codecs_have_audio("opus"));
    ck_assert(pb_codecs_have_audio("aac"));
    ck_assert(!pb_codecs_have_audio("h264"));
    ck_assert(!pb_codecs_have_audio("hevc"));
    ck_assert(!pb_codecs_have_audio("pcm_alawx"));
    ck_assert(!pb_codecs_have_audio(""));
    ck_assert(pb_codecs_have_video("h264,pcm_alaw"));
    ck_assert(pb_codecs_have_video("hevc"));
    ck_assert(!pb_codecs_have_video("pcm_alaw"));
}
END_TEST

/* No segments, or no readable file: a clear refusal, never a WAV. */
START_TEST(test_open_nothing)
{
    pb_wav_t *w = NULL;
    char err[192];
    ck_assert_int_eq(pb_wav_open("/nonexistent", NULL, 0, 0, 1000000, &w, err, sizeof(err)),
                     VG_ENOTFOUND);
    ck_assert_ptr_null(w);
    ck_assert_str_eq(err, "nothing recorded in that range");
    idx_segment_t seg = {.id = 1, .start_us = 0, .end_us = 1000000};
    snprintf(seg.codecs, sizeof(seg.codecs), "h264");
    snprintf(seg.path, sizeof(seg.path), "media/x.mp4");
    ck_assert_int_eq(pb_wav_open("/nonexistent", &seg, 1, 0, 1000000, &w, err, sizeof(err)),
                     VG_ENOTFOUND);
    snprintf(seg.codecs, sizeof(seg.codecs), "pcm_alaw");
    ck_assert_int_eq(pb_wav_open("/nonexistent", &seg, 1, 0, 1000000, &w, err, sizeof(err)),
                     VG_EMEDIA);
    ck_assert_ptr_null(w);
}
END_TEST

/* The A-law byte of sample n (segment-relative) of test segment k: every
 * segment and sample distinguishable. */
static uint8_t seg_byte(int k, int64_t n)
{
    return (uint8_t)((n * 7 + k * 101) & 0xff);
}

/* Writes a MOV file of 8 kHz A-law: packets of 160 samples from sample
 * first to sample last (segment-relative, 1/8000 time base). */
static void write_alaw_mov(const char *path, int k, int64_t first, int64_t last)
{
    AVFormatContext *oc = NULL;
    ck_assert_int_ge(avformat_alloc_output_context2(&oc, NULL, "mov", path), 0);
    AVStream *st = avformat_new_stream(oc, NULL);
    st->codecpar->codec_type = AVMEDIA_TYPE_AUDIO;
    st->codecpar->codec_id = AV_CODEC_ID_PCM_ALAW;
    st->codecpar->sample_rate = 8000;
    av_channel_layout_default(&st->codecpar->ch_layout, 1);
    st->time_base = (AVRational){1, 8000};
    ck_assert_int_ge(avio_open(&oc->pb, path, AVIO_FLAG_WRITE), 0);
    ck_assert_int_ge(avformat_write_header(oc, NULL), 0);
    AVPacket *pkt = av_packet_alloc();
    for (int64_t at = first; at < last; at += 160) {
        ck_assert_int_eq(av_new_packet(pkt, 160), 0);
        for (int i = 0; i < 160; i++)
            pkt->data[i] = seg_byte(k, at + i);
        pkt->pts = pkt->dts = av_rescale_q(at, (AVRational){1, 8000}, st->time_base);
        pkt->duration = av_rescale_q(160, (AVRational){1, 8000}, st->time_base);
        pkt->stream_index = 0;
        ck_assert_int_ge(av_write_frame(oc, pkt), 0);
        av_packet_unref(pkt);
    }
    ck_assert_int_ge(av_write_trailer(oc), 0);
    av_packet_free(&pkt);
    avio_closep(&oc->pb);
    avformat_free_context(oc);
}

/* Segment A's audio runs 20 ms past its row's end, into B (a camera's
 * audio track is cut a packet after the video that ends the segment), and
 * B's first packet starts at B's start. Where they overlap the later
 * segment wins, whether the overlap is inside a window of decoding, at
 * the WAV's end, or across the end of the first 65536-sample window; a
 * Range read from any sample gives the same samples as the whole file. */
START_TEST(test_overlap_at_window_end)
{
    const int64_t s = 1000000, a_end = 8190000, b_end = 16000000;
    idx_segment_t segs[2] = {{.id = 1, .start_us = 0, .end_us = a_end},
                             {.id = 2, .start_us = a_end, .end_us = b_end}};
    for (int k = 0; k < 2; k++) {
        snprintf(segs[k].codecs, sizeof(segs[k].codecs), "h264,pcm_alaw");
        snprintf(segs[k].path, sizeof(segs[k].path), "seg%d.mov", k);
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", g_dir, segs[k].path);
        int64_t len = (segs[k].end_us - segs[k].start_us) * 8000 / s;
        write_alaw_mov(path, k, 0, len + 160); /* one packet past the end */
    }
    const int64_t b_at = a_end * 8000 / s; /* 65520: the window ends at 65536 */
    /* to: the whole of both; inside the overlap (the WAV's end there); inside
     * A's last packets only */
    const int64_t tos[] = {b_end, a_end + 5000, a_end - 5000};
    for (size_t t = 0; t < sizeof(tos) / sizeof(tos[0]); t++) {
        pb_wav_t *w = NULL;
        char err[192];
        ck_assert_int_eq(pb_wav_open(g_dir, segs, 2, 0, tos[t], &w, err, sizeof(err)), VG_OK);
        int64_t n = pb_wav_samples(0, tos[t], 8000);
        int16_t *got = malloc((size_t)n * sizeof(*got));
        ck_assert_int_eq(pb_wav_samples_at(w, 0, got, (size_t)n), VG_OK);
        for (int64_t i = 0; i < n; i++) {
            int16_t want = i < b_at ? pb_alaw_linear(seg_byte(0, i))
                                    : pb_alaw_linear(seg_byte(1, i - b_at));
            if (got[i] != want)
                ck_abort_msg("to %lld: sample %lld is %d, not %d", (long long)tos[t],
                             (long long)i, got[i], want);
        }
        /* the same samples read from places on both sides of the overlap */
        const int64_t from[] = {b_at - 1, b_at, b_at + 10, 65535, 65536, 65600, 100};
        for (size_t f = 0; f < sizeof(from) / sizeof(from[0]); f++) {
            if (from[f] >= n)
                continue;
            pb_wav_t *r = NULL;
            ck_assert_int_eq(pb_wav_open(g_dir, segs, 2, 0, tos[t], &r, err, sizeof(err)),
                             VG_OK);
            int64_t k = n - from[f] < 2000 ? n - from[f] : 2000;
            int16_t part[2000];
            ck_assert_int_eq(pb_wav_samples_at(r, from[f], part, (size_t)k), VG_OK);
            ck_assert_mem_eq(part, got + from[f], (size_t)k * sizeof(*part));
            pb_wav_close(r);
        }
        free(got);
        pb_wav_close(w);
    }
}
END_TEST

static Suite *audio_suite(void)
{
    Suite *s = suite_create("playback_audio");
    TCase *tc = tcase_create("audio");
    tcase_add_test(tc, test_alaw_known);
    tcase_add_test(tc, test_ulaw_known);
    tcase_add_test(tc, test_g711_bit_exact_vs_libavcodec);
    tcase_add_test(tc, test_wav_header);
    tcase_add_test(tc, test_range_arithmetic);
    tcase_add_test(tc, test_codecs);
    tcase_add_test(tc, test_open_nothing);
    tcase_add_test(tc, test_overlap_at_window_end);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/vigil-test-audio-XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(audio_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    char cmd[96];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", g_dir);
    return failed ? 1 : 0;
}
