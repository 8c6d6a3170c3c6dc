/* Check suite for live/: WHEP offer parsing and codec choice (the H.264
 * profile-level-id the answer must repeat, PCMA/PCMU/Opus payload types,
 * static types without rtpmap), hostile offers (no m-line, binary, huge,
 * missing fmtp, malformed lines), the H.264 bitstream facts used for the
 * MSE codecs string, the [live] config keys, and a source's first WebRTC
 * viewers racing to start its packetizer. */
#include "live/live_private.h"

#include <check.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/errors.h"
#include "core/util.h"

/* The shape of chromium's recvonly offer (trimmed). */
static const char OFFER[] =
    "v=0\r\n"
    "o=- 46117 2 IN IP4 127.0.0.1\r\n"
    "s=-\r\n"
    "t=0 0\r\n"
    "a=group:BUNDLE 0 1\r\n"
    "a=fingerprint:sha-256 AA:BB\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103 108 109 112 113 127\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=ice-ufrag:abcd\r\n"
    "a=ice-pwd:efghefghefghefghefghefgh\r\n"
    "a=mid:0\r\n"
    "a=recvonly\r\n"
    "a=rtpmap:96 VP8/90000\r\n"
    "a=rtpmap:97 rtx/90000\r\n"
    "a=fmtp:97 apt=96\r\n"
    "a=rtpmap:102 H264/90000\r\n"
    "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n"
    "a=rtpmap:103 H264/90000\r\n"
    "a=fmtp:103 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42001f\r\n"
    "a=rtpmap:108 H264/90000\r\n"
    "a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
    "a=rtpmap:109 H264/90000\r\n"
    "a=fmtp:109 level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f\r\n"
    "a=rtpmap:112 H264/90000\r\n"
    "a=fmtp:112 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r\n"
    "a=rtpmap:113 H264/90000\r\n"
    "a=fmtp:113 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=f4001f\r\n"
    "a=rtpmap:127 H264/90000\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13\r\n"
    "c=IN IP4 0.0.0.0\r\n"
    "a=mid:1\r\n"
    "a=recvonly\r\n"
    "a=rtpmap:111 opus/48000/2\r\n"
    "a=fmtp:111 minptime=10;useinbandfec=1\r\n"
    "a=rtpmap:63 red/48000/2\r\n"
    "a=rtpmap:9 G722/8000\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:13 CN/8000\r\n";

static live_sdp_offer_t offer;

static int parse(const char *text)
{
    char why[128];
    return live_sdp_parse(text, strlen(text), &offer, why, sizeof(why));
}

START_TEST(test_parse_chromium_offer)
{
    ck_assert_int_eq(parse(OFFER), VG_OK);
    ck_assert_int_eq(offer.n_media, 2);
    ck_assert_str_eq(offer.media[0].kind, "video");
    ck_assert_str_eq(offer.media[0].mid, "0");
    ck_assert_int_eq(offer.media[0].dir, LIVE_DIR_RECVONLY);
    ck_assert_int_eq(offer.media[0].n_fmt, 9);
    ck_assert_str_eq(offer.media[1].kind, "audio");
    ck_assert_int_eq(offer.media[1].n_fmt, 6);
}
END_TEST

START_TEST(test_pick_h264_profile)
{
    char plid[16];
    ck_assert_int_eq(parse(OFFER), VG_OK);
    const live_sdp_media_t *v = &offer.media[0];
    /* constrained baseline: the offer's 42e01f, packetization-mode 1 */
    ck_assert_int_eq(live_sdp_pick(v, LIVE_C_H264, 66, 1, plid, sizeof(plid)), 108);
    ck_assert_str_eq(plid, "42e01f");
    /* baseline without the constraint flag: 42001f */
    ck_assert_int_eq(live_sdp_pick(v, LIVE_C_H264, 66, 0, plid, sizeof(plid)), 102);
    ck_assert_str_eq(plid, "42001f");
    /* main */
    ck_assert_int_eq(live_sdp_pick(v, LIVE_C_H264, 77, 0, plid, sizeof(plid)), 112);
    ck_assert_str_eq(plid, "4d001f");
    /* High, not offered: labelled main (browsers decode by the SPS); never
     * as High 4:4:4 (f4) */
    ck_assert_int_eq(live_sdp_pick(v, LIVE_C_H264, 100, 0, plid, sizeof(plid)), 112);
    ck_assert_str_eq(plid, "4d001f");
}
END_TEST

START_TEST(test_pick_audio)
{
    ck_assert_int_eq(parse(OFFER), VG_OK);
    const live_sdp_media_t *a = &offer.media[1];
    ck_assert_int_eq(live_sdp_pick(a, LIVE_C_PCMA, 0, 0, NULL, 0), 8);
    ck_assert_int_eq(live_sdp_pick(a, LIVE_C_PCMU, 0, 0, NULL, 0), 0);
    ck_assert_int_eq(live_sdp_pick(a, LIVE_C_OPUS, 0, 0, NULL, 0), 111);
    ck_assert_int_eq(live_sdp_pick(a, LIVE_C_AAC, 0, 0, NULL, 0), -1);
    /* audio codecs are not looked for in a video section, and back */
    ck_assert_int_eq(live_sdp_pick(&offer.media[0], LIVE_C_PCMA, 0, 0, NULL, 0), -1);
    ck_assert_int_eq(live_sdp_pick(a, LIVE_C_H264, 66, 1, NULL, 0), -1);
}
END_TEST

START_TEST(test_static_types_without_rtpmap)
{
    static const char o[] = "v=0\r\na=fingerprint:x\r\na=ice-ufrag:u\r\n"
                            "m=audio 9 UDP/TLS/RTP/SAVPF 0 8\r\n";
    ck_assert_int_eq(parse(o), VG_OK);
    ck_assert_int_eq(live_sdp_pick(&offer.media[0], LIVE_C_PCMA, 0, 0, NULL, 0), 8);
    ck_assert_int_eq(live_sdp_pick(&offer.media[0], LIVE_C_PCMU, 0, 0, NULL, 0), 0);
}
END_TEST

START_TEST(test_unusable_sections)
{
    char plid[16];
    /* H.264 without fmtp (packetization-mode 0 by default), sendonly, a
     * rejected section (port 0) */
    static const char nofmtp[] = "v=0\na=fingerprint:x\na=ice-ufrag:u\n"
                                 "m=video 9 UDP/TLS/RTP/SAVPF 102\na=rtpmap:102 H264/90000\n";
    ck_assert_int_eq(parse(nofmtp), VG_OK);
    ck_assert_int_eq(live_sdp_pick(&offer.media[0], LIVE_C_H264, 66, 1, plid, sizeof(plid)), -1);
    static const char sendonly[] =
        "v=0\na=fingerprint:x\na=ice-ufrag:u\nm=audio 9 RTP/SAVPF 8\na=sendonly\n";
    ck_assert_int_eq(parse(sendonly), VG_OK);
    ck_assert_int_eq(live_sdp_pick(&offer.media[0], LIVE_C_PCMA, 0, 0, NULL, 0), -1);
    static const char rejected[] = "v=0\na=fingerprint:x\na=ice-ufrag:u\nm=audio 0 RTP/SAVPF 8\n";
    ck_assert_int_eq(parse(rejected), VG_OK);
    ck_assert_int_eq(live_sdp_pick(&offer.media[0], LIVE_C_PCMA, 0, 0, NULL, 0), -1);
    /* a bad profile-level-id is no match, not a crash */
    static const char badplid[] =
        "v=0\na=fingerprint:x\na=ice-ufrag:u\nm=video 9 RTP/SAVPF 102\n"
        "a=rtpmap:102 H264/90000\na=fmtp:102 packetization-mode=1;profile-level-id=zz\n";
    ck_assert_int_eq(parse(badplid), VG_OK);
    ck_assert_int_eq(live_sdp_pick(&offer.media[0], LIVE_C_H264, 66, 1, plid, sizeof(plid)), -1);
}
END_TEST

static const char *const hostile[] = {
    "",
    "hello",
    "v=0\r\ns=-\r\nt=0 0\r\n",                                   /* no m-line */
    "v=0\r\nm=video 9 RTP/SAVPF 96\r\n",                           /* no fingerprint, no ICE */
    "v=0\r\na=fingerprint:x\r\na=ice-ufrag:u\r\nm=video\r\n",      /* malformed m-line */
    "v=0\r\na=fingerprint:x\r\na=ice-ufrag:u\r\nm=video 99999 RTP/SAVPF 96\r\n",
    "v=0\r\na=fingerprint:x\r\na=ice-ufrag:u\r\nm=video 9 RTP/SAVPF 300\r\n",
    "v=0\r\na=fingerprint:x\r\na=ice-ufrag:u\r\nm=video 9 RTP/SAVPF abc\r\n",
    "v=0\r\nnot a line\r\n",
    "v=0\r\n\x01\x02\x03",                                          /* binary */
};

START_TEST(test_hostile_offers)
{
    char why[128] = "";
    const char *t = hostile[_i];
    ck_assert_int_eq(live_sdp_parse(t, strlen(t), &offer, why, sizeof(why)), VG_EINVAL);
    ck_assert_msg(why[0] != '\0', "a reason for %s", t);
}
END_TEST

START_TEST(test_huge_and_many)
{
    char why[128];
    /* larger than 64 KiB */
    size_t n = LIVE_SDP_MAX + 10;
    char *big = vg_malloc(n + 1);
    memset(big, 'a', n);
    memcpy(big, "v=0\r\n", 5);
    big[n] = '\0';
    ck_assert_int_eq(live_sdp_parse(big, n, &offer, why, sizeof(why)), VG_EINVAL);
    free(big);
    /* more m-lines than we keep */
    char many[4096] = "v=0\r\na=fingerprint:x\r\na=ice-ufrag:u\r\n";
    for (int i = 0; i < LIVE_SDP_MAX_MEDIA + 2; i++)
        strcat(many, "m=video 9 RTP/SAVPF 96\r\n");
    ck_assert_int_eq(live_sdp_parse(many, strlen(many), &offer, why, sizeof(why)), VG_EINVAL);
    /* more payload types and longer attributes than we keep: cut, not overrun */
    char wide[16384] = "v=0\r\na=fingerprint:x\r\na=ice-ufrag:u\r\nm=video 9 RTP/SAVPF";
    for (int i = 0; i < 128; i++)
        snprintf(wide + strlen(wide), sizeof(wide) - strlen(wide), " %d", i);
    strcat(wide, "\r\na=fmtp:5 ");
    for (int i = 0; i < 1000; i++)
        strcat(wide, "x");
    strcat(wide, "\r\na=rtpmap:6 ");
    for (int i = 0; i < 100; i++)
        strcat(wide, "Y");
    strcat(wide, "/90000\r\na=mid:");
    for (int i = 0; i < 100; i++)
        strcat(wide, "m");
    strcat(wide, "\r\n");
    ck_assert_int_eq(live_sdp_parse(wide, strlen(wide), &offer, why, sizeof(why)), VG_OK);
    ck_assert_int_eq(offer.media[0].n_fmt, LIVE_SDP_MAX_FMTS);
    ck_assert_uint_lt(strlen(offer.media[0].fmt[5].fmtp), sizeof(offer.media[0].fmt[5].fmtp));
    ck_assert_str_eq(offer.media[0].fmt[6].name, ""); /* too long a name: ignored */
}
END_TEST

START_TEST(test_fmtp_get)
{
    char v[16];
    ck_assert_int_eq(live_sdp_fmtp_get("a=1;profile-level-id=42e01f; b=2", "profile-level-id", v,
                                       sizeof(v)), 1);
    ck_assert_str_eq(v, "42e01f");
    ck_assert_int_eq(live_sdp_fmtp_get("a=1; b=2", "b", v, sizeof(v)), 1);
    ck_assert_str_eq(v, "2");
    ck_assert_int_eq(live_sdp_fmtp_get("a=1", "b", v, sizeof(v)), 0);
    ck_assert_int_eq(live_sdp_fmtp_get("b=0123456789abcdefXYZ", "b", v, sizeof(v)), 0);
}
END_TEST

START_TEST(test_h264_facts)
{
    static const uint8_t annexb[] = {0, 0, 0, 1, 0x67, 0x4d, 0x40, 0x1f, 0xaa,
                                     0, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0x88};
    static const uint8_t avcc[] = {1, 0x42, 0xc0, 0x0d, 0xff};
    static const uint8_t idr_only[] = {0, 0, 1, 0x65, 0x88, 0, 0, 1, 0x67, 0x42};
    int p = 0, c = 0, l = 0;
    ck_assert_int_eq(live_h264_sps_info(annexb, sizeof(annexb), &p, &c, &l), VG_OK);
    ck_assert_int_eq(p, 0x4d);
    ck_assert_int_eq(c, 0x40);
    ck_assert_int_eq(l, 0x1f);
    ck_assert_int_eq(live_h264_sps_info(avcc, sizeof(avcc), &p, &c, &l), VG_OK);
    ck_assert_int_eq(p, 0x42);
    ck_assert_int_eq(live_h264_sps_info(annexb, 3, &p, &c, &l), VG_ENOTFOUND);
    ck_assert_int_eq(live_h264_sps_info(NULL, 0, &p, &c, &l), VG_ENOTFOUND);
    ck_assert_int_eq(live_au_has_sps(annexb, sizeof(annexb)), 1);
    ck_assert_int_eq(live_au_has_sps(idr_only, sizeof(idr_only)), 0);
}
END_TEST

/* ---- [live] config ---- */

static int load(const char *text, vg_config_t *cfg, char *err, size_t size)
{
    char path[] = "/tmp/vigil-live-test-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    int rc = vg_config_load(path, cfg, err, size);
    unlink(path);
    return rc;
}

START_TEST(test_config)
{
    vg_config_t cfg;
    char err[512];
    ck_assert_int_eq(load("[server]\ndata_dir = /x\n", &cfg, err, sizeof(err)), VG_OK);
    ck_assert_int_eq(cfg.live.enabled, 1);
    ck_assert_int_eq(cfg.live.max_viewers, 32);
    ck_assert_int_eq(cfg.live.max_viewers_per_user, 8);
    ck_assert_ptr_null(cfg.live.stun);
    vg_config_free(&cfg);
    ck_assert_int_eq(load("[server]\ndata_dir = /x\n[live]\nenabled = no\nmax_viewers = 4\n"
                          "max_viewers_per_user = 2\nstun = stun://stun.example:3478\n"
                          "turn = turn://u:p@turn.example:3478\n",
                          &cfg, err, sizeof(err)), VG_OK);
    ck_assert_int_eq(cfg.live.enabled, 0);
    ck_assert_int_eq(cfg.live.max_viewers, 4);
    ck_assert_int_eq(cfg.live.max_viewers_per_user, 2);
    ck_assert_str_eq(cfg.live.stun, "stun://stun.example:3478");
    ck_assert_str_eq(cfg.live.turn, "turn://u:p@turn.example:3478");
    vg_config_free(&cfg);
    static const char *const bad[] = {"enabled = maybe", "max_viewers = 0",
                                      "max_viewers_per_user = -1", "stun = http://x:1",
                                      "stun = stun://host", "turn = turn://u:p@:3478",
                                      "unknown = 1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[256];
        snprintf(text, sizeof(text), "[server]\ndata_dir = /x\n[live]\n%s\n", bad[i]);
        ck_assert_msg(load(text, &cfg, err, sizeof(err)) == VG_ECONFIG, "accepted: %s", bad[i]);
        ck_assert_msg(strstr(err, ":4:") != NULL, "%s: %s", bad[i], err);
        vg_config_free(&cfg);
    }
}
END_TEST

static void *ensure_packetizer(void *arg)
{
    return (void *)(intptr_t)live_feed_pay_ensure(arg);
}

/* Several first viewers at once: each builds a packetizer outside the feed
 * lock, one is installed, every caller is told the feed can serve WebRTC,
 * and the losers' pipelines are dropped (ASan sees a leak otherwise). */
START_TEST(test_packetizer_first_viewers_race)
{
    vg_config_t cfg;
    char err[512];
    live_t *l = NULL;
    live_feed_t *f = NULL;
    ck_assert_int_eq(load("[server]\ndata_dir = /x\n", &cfg, err, sizeof(err)), VG_OK);
    ck_assert_int_eq(live_start(&cfg, &l), VG_OK);
    ck_assert_ptr_nonnull(l);
    vg_source_config_t src = {.name = "line", .kind = VG_SOURCE_AUDIO};
    ck_assert_int_eq(live_feed_open(l, &src, &f), VG_OK);
    AVFormatContext *fc = avformat_alloc_context();
    AVStream *st = avformat_new_stream(fc, NULL);
    st->codecpar->codec_type = AVMEDIA_TYPE_AUDIO;
    st->codecpar->codec_id = AV_CODEC_ID_PCM_ALAW;
    st->codecpar->sample_rate = 8000;
    av_channel_layout_default(&st->codecpar->ch_layout, 1);
    st->time_base = (AVRational){1, 8000};
    ck_assert_int_eq(live_feed_begin(f, fc->streams, 1), VG_OK);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, ensure_packetizer, f), 0);
    for (int i = 0; i < 4; i++) {
        void *rc = NULL;
        pthread_join(t[i], &rc);
        ck_assert_int_eq((int)(intptr_t)rc, VG_OK);
    }
    pthread_mutex_lock(&f->lock);
    GstElement *installed = f->pay_pipeline;
    ck_assert_ptr_nonnull(installed);
    ck_assert_ptr_nonnull(f->pay_src[1]);
    ck_assert_int_eq(f->pay_pt[1], 8); /* PCMA */
    pthread_mutex_unlock(&f->lock);
    /* once there, it stays: a later viewer gets the same one */
    ck_assert_int_eq(live_feed_pay_ensure(f), VG_OK);
    ck_assert_ptr_eq(f->pay_pipeline, installed);
    live_feed_end(f);
    live_feed_close(f);
    live_stop(l);
    avformat_free_context(fc);
    vg_config_free(&cfg);
}
END_TEST

static Suite *live_suite(void)
{
    Suite *s = suite_create("live");
    TCase *tc = tcase_create("sdp");
    tcase_add_test(tc, test_parse_chromium_offer);
    tcase_add_test(tc, test_pick_h264_profile);
    tcase_add_test(tc, test_pick_audio);
    tcase_add_test(tc, test_static_types_without_rtpmap);
    tcase_add_test(tc, test_unusable_sections);
    tcase_add_loop_test(tc, test_hostile_offers, 0, sizeof(hostile) / sizeof(hostile[0]));
    tcase_add_test(tc, test_huge_and_many);
    tcase_add_test(tc, test_fmtp_get);
    tcase_add_test(tc, test_h264_facts);
    tcase_add_test(tc, test_config);
    suite_add_tcase(s, tc);
    tc = tcase_create("packetizer");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_packetizer_first_viewers_race);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(live_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
