/* capture: dating the packets libavformat hands over without timestamps. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture/capture.h"

static AVFormatContext *fmt;
static cap_undated_t u;

/* Stream 0: 25 fps video at 90 kHz; 1: 8 kHz audio, no frame rate; 2: no
 * frame rate at all. */
static void setup(void)
{
    fmt = avformat_alloc_context();
    ck_assert_ptr_nonnull(fmt);
    AVStream *v = avformat_new_stream(fmt, NULL);
    v->time_base = (AVRational){1, 90000};
    v->avg_frame_rate = (AVRational){25, 1};
    AVStream *a = avformat_new_stream(fmt, NULL);
    a->time_base = (AVRational){1, 8000};
    a->codecpar->sample_rate = 8000;
    a->codecpar->frame_size = 160;
    AVStream *x = avformat_new_stream(fmt, NULL);
    x->time_base = (AVRational){1, 90000};
    cap_undated_init(&u, fmt->streams, fmt->nb_streams);
}

static void teardown(void)
{
    cap_undated_free(&u);
    avformat_free_context(fmt);
}

static AVPacket *packet(int stream, int64_t ts, int size)
{
    AVPacket *p = av_packet_alloc();
    ck_assert_int_eq(av_new_packet(p, size), 0);
    p->stream_index = stream;
    p->pts = p->dts = ts;
    return p;
}

/* Holds a packet of stream with these timestamps, received at wall. */
static void hold_ts(int stream, int64_t pts, int64_t dts, int size, int64_t wall)
{
    AVPacket *p = packet(stream, pts, size);
    p->dts = dts;
    ck_assert_int_eq(cap_undated_hold(&u, p, wall), 1);
    ck_assert_int_eq(p->size, 0); /* the data moved */
    av_packet_free(&p);
}

static void hold(int stream, int size, int64_t wall)
{
    hold_ts(stream, AV_NOPTS_VALUE, AV_NOPTS_VALUE, size, wall);
}

/* What the packets held for next's stream come out as, in order. */
typedef struct {
    int64_t pts, dts;
    int size;
    int64_t wall;
} expected_t;

static void expect_release(const AVPacket *next, const expected_t *want, unsigned n)
{
    AVPacket *out[CAP_UNDATED_MAX];
    int64_t wall[CAP_UNDATED_MAX];
    unsigned got = cap_undated_release(&u, next, out, wall);
    ck_assert_uint_eq(got, n);
    for (unsigned i = 0; i < got; i++) {
        ck_assert_int_eq(out[i]->pts, want[i].pts);
        ck_assert_int_eq(out[i]->dts, want[i].dts);
        ck_assert_int_eq(out[i]->size, want[i].size);
        ck_assert_int_eq(wall[i], want[i].wall);
        av_packet_free(&out[i]);
    }
    ck_assert_uint_eq(cap_undated_release(&u, next, out, wall), 0); /* nothing left */
}

START_TEST(test_dated_packets_pass)
{
    AVPacket *p = packet(0, 3600, 10);
    ck_assert_int_eq(cap_undated_hold(&u, p, 1), 0);
    ck_assert_int_eq(p->size, 10);
    expect_release(p, NULL, 0);
    p->pts = AV_NOPTS_VALUE; /* a DTS alone dates a packet too */
    ck_assert_int_eq(cap_undated_hold(&u, p, 1), 0);
    p->pts = 3600; /* and with nothing held, a PTS alone is let through */
    p->dts = AV_NOPTS_VALUE;
    ck_assert_int_eq(cap_undated_hold(&u, p, 1), 0);
    av_packet_free(&p);
}
END_TEST

/* What libavformat's RTSP demuxer hands over for a camera without B-frames. */
START_TEST(test_first_keyframe_dated_one_frame_early)
{
    hold(0, 1620, 111);
    AVPacket *p = packet(0, 3600, 292);
    expect_release(p, (expected_t[]){{0, 0, 1620, 111}}, 1);
    av_packet_free(&p);
}
END_TEST

/* And with B-frames: I (no timestamps), P and B with a PTS only, then the
 * first packet with a DTS. */
START_TEST(test_b_frames_wait_for_a_dts)
{
    hold(0, 1698, 1);
    hold_ts(0, 10800, AV_NOPTS_VALUE, 480, 2);
    hold_ts(0, 3600, AV_NOPTS_VALUE, 223, 3);
    AVPacket *p = packet(0, 7200, 185);
    p->dts = 3600;
    ck_assert_int_eq(cap_undated_hold(&u, p, 4), 0);
    /* consecutive DTS up to the dated one; the keyframe shown first */
    expect_release(p, (expected_t[]){{0, -7200, 1698, 1}, {10800, -3600, 480, 2},
                                     {3600, 0, 223, 3}}, 3);
    av_packet_free(&p);
}
END_TEST

START_TEST(test_duration_and_frame_size)
{
    AVPacket *a = packet(1, AV_NOPTS_VALUE, 160);
    a->duration = 240; /* its own duration wins */
    ck_assert_int_eq(cap_undated_hold(&u, a, 5), 1);
    av_packet_free(&a);
    hold(1, 160, 6); /* no duration: the codec's frame size, 160 samples */
    AVPacket *p = packet(1, 8000, 160);
    expect_release(p, (expected_t[]){{7600, 7600, 160, 5}, {7840, 7840, 160, 6}}, 2);
    av_packet_free(&p);
}
END_TEST

START_TEST(test_no_rate_steps_one_tick)
{
    hold(2, 50, 7);
    AVPacket *p = packet(2, 1000, 10);
    expect_release(p, (expected_t[]){{999, 999, 50, 7}}, 1);
    av_packet_free(&p);
}
END_TEST

START_TEST(test_streams_are_apart)
{
    hold(0, 100, 1);
    AVPacket *audio = packet(1, 8000, 160);
    audio->dts = AV_NOPTS_VALUE; /* another stream's packet is not held */
    ck_assert_int_eq(cap_undated_hold(&u, audio, 2), 0);
    expect_release(audio, NULL, 0);
    AVPacket *video = packet(0, 3600, 10);
    expect_release(video, (expected_t[]){{0, 0, 100, 1}}, 1);
    av_packet_free(&audio);
    av_packet_free(&video);
}
END_TEST

START_TEST(test_bounded_keeps_the_first)
{
    hold(0, 100, 0);
    for (int i = 1; i < CAP_UNDATED_MAX; i++)
        hold_ts(0, 3600 * i, AV_NOPTS_VALUE, 100 + i, i);
    hold(0, 999, 99); /* full: a packet without any timestamp goes */
    AVPacket *p = packet(0, 3600 * CAP_UNDATED_MAX, 10);
    p->dts = AV_NOPTS_VALUE; /* full: this one is let through and dates the rest */
    ck_assert_int_eq(cap_undated_hold(&u, p, 100), 0);
    expected_t want[CAP_UNDATED_MAX];
    for (int i = 0; i < CAP_UNDATED_MAX; i++)
        want[i] = (expected_t){3600 * i, 3600 * i, i ? 100 + i : 100, i};
    expect_release(p, want, CAP_UNDATED_MAX);
    av_packet_free(&p);
}
END_TEST

START_TEST(test_unknown_stream_and_leftovers)
{
    AVPacket *p = packet(7, AV_NOPTS_VALUE, 10);
    ck_assert_int_eq(cap_undated_hold(&u, p, 1), 0); /* not ours to keep */
    expect_release(p, NULL, 0);
    av_packet_free(&p);
    hold(0, 100, 1); /* still held at the end: freed by teardown (ASan checks) */
}
END_TEST

/* ---- masking secrets in libav's log lines ---- */

static void assert_masked(const char *in, const char *want)
{
    char line[256];
    snprintf(line, sizeof(line), "%s", in);
    cap_mask_secrets(line);
    ck_assert_str_eq(line, want);
}

START_TEST(test_mask_secrets)
{
    assert_masked("rtsp://admin:secret@10.0.0.5:554/s1 failed",
                  "rtsp://***@10.0.0.5:554/s1 failed");
    /* '@' in the password: everything up to the last '@' of the authority */
    assert_masked("Could not open rtsp://op:p@ss@w0rd@cam.local/live: 401",
                  "Could not open rtsp://***@cam.local/live: 401");
    assert_masked("rtsp://cam.local/live@1", "rtsp://cam.local/live@1");
    assert_masked("a rtsp://u:x@h/ and srt://v:yy@k:9000", "a rtsp://***@h/ and srt://***@k:9000");
    assert_masked("rtsp://a:@h/", "rtsp://**@h/"); /* never grows the line */
    /* SRT's passphrase, in any case, wherever it is in the query */
    assert_masked("srt://relay:9000?mode=caller&passphrase=0123456789abcdef&pbkeylen=16",
                  "srt://relay:9000?mode=caller&passphrase=***&pbkeylen=16");
    assert_masked("srt://relay:9000?PASSPHRASE=longsecretvalue", "srt://relay:9000?PASSPHRASE=***");
    assert_masked("x?password=ab&y=1", "x?password=**&y=1");
    assert_masked("no secrets here", "no secrets here");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("capture");
    TCase *tc = tcase_create("undated");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_dated_packets_pass);
    tcase_add_test(tc, test_first_keyframe_dated_one_frame_early);
    tcase_add_test(tc, test_b_frames_wait_for_a_dts);
    tcase_add_test(tc, test_duration_and_frame_size);
    tcase_add_test(tc, test_no_rate_steps_one_tick);
    tcase_add_test(tc, test_streams_are_apart);
    tcase_add_test(tc, test_bounded_keeps_the_first);
    tcase_add_test(tc, test_unknown_stream_and_leftovers);
    tcase_add_test(tc, test_mask_secrets);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
