/* Check suite for playback/audio.c: the G.711 tables (known values and
 * every code against libavcodec's pcm_alaw / pcm_mulaw decoders), the WAV
 * header, and the arithmetic that maps bytes, samples and wall time. */
#include "core/errors.h"
#include "playback/playback.h"

#include <check.h>
#include <stdio.h>
#include <libavcodec/avcodec.h>
#include <stdint.h>
#include <string.h>

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
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(audio_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
