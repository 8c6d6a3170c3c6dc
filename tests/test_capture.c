/* capture: dating the packets libavformat hands over without timestamps. */
#include <check.h>
#include <stdlib.h>

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

/* Holds an undated packet of stream, received at wall. */
static void hold(int stream, int size, int64_t wall)
{
    AVPacket *p = packet(stream, AV_NOPTS_VALUE, size);
    ck_assert_int_eq(cap_undated_hold(&u, p, wall), 1);
    ck_assert_int_eq(p->size, 0); /* the data moved */
    av_packet_free(&p);
}

/* The next held packet for dated: checks its date, size and receive time. */
static void expect_next(const AVPacket *dated, int64_t ts, int size, int64_t wall)
{
    int64_t got_wall = 0;
    AVPacket *h = cap_undated_next(&u, dated, &got_wall);
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(h->pts, ts);
    ck_assert_int_eq(h->dts, ts);
    ck_assert_int_eq(h->size, size);
    ck_assert_int_eq(got_wall, wall);
    av_packet_free(&h);
}

static void expect_none(const AVPacket *dated)
{
    int64_t wall = 0;
    ck_assert_ptr_null(cap_undated_next(&u, dated, &wall));
}

START_TEST(test_dated_packets_pass)
{
    AVPacket *p = packet(0, 3600, 10);
    ck_assert_int_eq(cap_undated_hold(&u, p, 1), 0);
    ck_assert_int_eq(p->size, 10);
    expect_none(p);
    p->pts = AV_NOPTS_VALUE; /* a DTS alone dates a packet too */
    ck_assert_int_eq(cap_undated_hold(&u, p, 1), 0);
    av_packet_free(&p);
}
END_TEST

START_TEST(test_first_keyframe_dated_one_frame_early)
{
    hold(0, 1620, 111);
    AVPacket *p = packet(0, 3600, 292);
    expect_next(p, 0, 1620, 111);
    expect_none(p);
    av_packet_free(&p);
}
END_TEST

START_TEST(test_several_held_keep_their_order)
{
    hold(0, 100, 1);
    hold(0, 200, 2);
    AVPacket *p = packet(0, 90000, 10);
    p->pts = AV_NOPTS_VALUE;
    expect_next(p, 90000 - 7200, 100, 1);
    expect_next(p, 90000 - 3600, 200, 2);
    expect_none(p);
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
    expect_next(p, 8000 - 160 - 240, 160, 5);
    expect_next(p, 8000 - 160, 160, 6);
    av_packet_free(&p);
}
END_TEST

START_TEST(test_no_rate_steps_one_tick)
{
    hold(2, 50, 7);
    AVPacket *p = packet(2, 1000, 10);
    expect_next(p, 999, 50, 7);
    av_packet_free(&p);
}
END_TEST

START_TEST(test_streams_are_apart)
{
    hold(0, 100, 1);
    AVPacket *audio = packet(1, 8000, 160);
    expect_none(audio);
    AVPacket *video = packet(0, 3600, 10);
    expect_next(video, 0, 100, 1);
    av_packet_free(&audio);
    av_packet_free(&video);
}
END_TEST

START_TEST(test_bounded_keeps_the_first)
{
    for (int i = 0; i < CAP_UNDATED_MAX + 5; i++)
        hold(0, 100 + i, i);
    AVPacket *p = packet(0, 1000000, 10);
    for (int i = 0; i < CAP_UNDATED_MAX; i++)
        expect_next(p, 1000000 - 3600 * (CAP_UNDATED_MAX - i), 100 + i, i);
    expect_none(p);
    av_packet_free(&p);
}
END_TEST

START_TEST(test_unknown_stream_and_leftovers)
{
    AVPacket *p = packet(7, AV_NOPTS_VALUE, 10);
    ck_assert_int_eq(cap_undated_hold(&u, p, 1), 0); /* not ours to keep */
    expect_none(p);
    av_packet_free(&p);
    hold(0, 100, 1); /* still held at the end: freed by teardown (ASan checks) */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("capture");
    TCase *tc = tcase_create("undated");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_dated_packets_pass);
    tcase_add_test(tc, test_first_keyframe_dated_one_frame_early);
    tcase_add_test(tc, test_several_held_keep_their_order);
    tcase_add_test(tc, test_duration_and_frame_size);
    tcase_add_test(tc, test_no_rate_steps_one_tick);
    tcase_add_test(tc, test_streams_are_apart);
    tcase_add_test(tc, test_bounded_keeps_the_first);
    tcase_add_test(tc, test_unknown_stream_and_leftovers);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
