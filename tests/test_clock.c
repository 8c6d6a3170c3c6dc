/* Check suite for core/clock.h: the injectable clock and the timeline rule
 * that places segments on the wall clock (DESIGN.md invariant 7). Segment
 * lengths are media durations nudged toward the receive clock by at most
 * VG_DRIFT_MAX_PPM, and a connection's segments always abut. Also
 * core/rebase.h, the live clock of a source that never goes back. */
#include "core/clock.h"
#include "core/rebase.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#define SEC INT64_C(1000000)
#define MIN_SEG (60 * SEC)
/* 2026-11-27T10:00:00Z: a realistic wall time, far from any overflow. */
#define T0 (INT64_C(1795773600) * SEC)
/* The largest nudge a 60 s segment may get. */
#define MAX_NUDGE_60S (MIN_SEG * VG_DRIFT_MAX_PPM / 1000000)

static int64_t abs64(int64_t v)
{
    return v < 0 ? -v : v;
}

/* Closes one segment and checks what must hold for every segment: it starts
 * where the timeline stood, and its length is its media duration nudged by no
 * more than the drift bound. Returns the end. */
static int64_t close_checked(vg_timeline_t *tl, int64_t media_us, int64_t recv_end_us)
{
    int64_t expect_start = tl->next_start_us;
    int64_t start = -1, end = -1;
    vg_timeline_close(tl, media_us, recv_end_us, &start, &end);
    ck_assert_int_eq(start, expect_start);
    ck_assert_int_eq(tl->next_start_us, end);
    int64_t media = media_us > 0 ? media_us : 0;
    int64_t bound = media * VG_DRIFT_MAX_PPM / 1000000;
    ck_assert_msg(abs64((end - start) - media) <= bound,
                  "segment of %lld us media is %lld us long (bound %lld)", (long long)media,
                  (long long)(end - start), (long long)bound);
    return end;
}

/* ---- the injectable clock ---- */

typedef struct {
    int64_t wall, mono;
    int wall_calls, mono_calls;
} fake_t;

static int64_t fake_wall(void *ctx)
{
    fake_t *f = ctx;
    f->wall_calls++;
    return f->wall;
}

static int64_t fake_mono(void *ctx)
{
    fake_t *f = ctx;
    f->mono_calls++;
    return f->mono;
}

START_TEST(test_injected_clock)
{
    fake_t f = {.wall = T0, .mono = 42};
    vg_clock_t c = {fake_wall, fake_mono, &f};
    ck_assert_int_eq(vg_clock_wall(&c), T0);
    ck_assert_int_eq(vg_clock_mono(&c), 42);
    /* The two readings are independent: a wall step leaves monotonic alone. */
    f.wall -= 3600 * SEC;
    f.mono += 5;
    ck_assert_int_eq(vg_clock_wall(&c), T0 - 3600 * SEC);
    ck_assert_int_eq(vg_clock_mono(&c), 47);
    ck_assert_int_eq(f.wall_calls, 2);
    ck_assert_int_eq(f.mono_calls, 2);
}
END_TEST

/* Only properties that hold on any machine: no timing. */
START_TEST(test_system_clock)
{
    ck_assert_ptr_nonnull(vg_system_clock.wall_us);
    ck_assert_ptr_nonnull(vg_system_clock.monotonic_us);
    ck_assert_int_gt(vg_clock_wall(&vg_system_clock), 0);
    int64_t a = vg_clock_mono(&vg_system_clock);
    int64_t b = vg_clock_mono(&vg_system_clock);
    ck_assert_int_ge(b, a);
}
END_TEST

/* ---- the timeline ---- */

START_TEST(test_start)
{
    vg_timeline_t tl = {0};
    vg_timeline_start(&tl, T0);
    ck_assert_int_ne(tl.started, 0);
    ck_assert_int_eq(tl.next_start_us, T0);
    /* A reconnect starts afresh at its own first frame, not where the old
     * connection ended: the gap between them stays a gap. */
    vg_timeline_start(&tl, T0 + 90 * SEC);
    ck_assert_int_eq(tl.next_start_us, T0 + 90 * SEC);
}
END_TEST

START_TEST(test_perfect_clock)
{
    vg_timeline_t tl;
    vg_timeline_start(&tl, T0);
    int64_t start = 0, end = 0;
    vg_timeline_close(&tl, MIN_SEG, T0 + MIN_SEG, &start, &end);
    ck_assert_int_eq(start, T0);
    ck_assert_int_eq(end, T0 + MIN_SEG);
    /* Odd lengths too: no rounding sneaks in. */
    vg_timeline_close(&tl, 1234567, T0 + MIN_SEG + 1234567, &start, &end);
    ck_assert_int_eq(start, T0 + MIN_SEG);
    ck_assert_int_eq(end, T0 + MIN_SEG + 1234567);
}
END_TEST

START_TEST(test_segments_abut)
{
    vg_timeline_t tl;
    vg_timeline_start(&tl, T0);
    int64_t prev_end = T0, media_total = 0;
    /* Uneven segment lengths and a jittery receive clock. */
    for (int i = 0; i < 50; i++) {
        int64_t media = MIN_SEG + (i % 7) * 40000 - 120000;
        media_total += media;
        int64_t jitter = ((i * 7919) % 80) * 1000; /* 0..79 ms of network delay */
        int64_t start = -1, end = -1;
        vg_timeline_close(&tl, media, T0 + media_total + jitter, &start, &end);
        ck_assert_int_eq(start, prev_end);
        ck_assert_int_gt(end, start);
        prev_end = end;
    }
}
END_TEST

/* The receive clock jumps 2 s ahead of the media timeline (say the first
 * frame came early or the network delay grew). Each segment is lengthened by
 * no more than 500 ppm and the gap closes step by step, never overshooting. */
START_TEST(test_receive_late)
{
    vg_timeline_t tl;
    vg_timeline_start(&tl, T0);
    int64_t late = 2 * SEC, prev_error = late, end = T0;
    int closed_at = -1;
    for (int i = 1; i <= 100; i++) {
        int64_t recv = T0 + i * MIN_SEG + late;
        int64_t start = tl.next_start_us;
        end = close_checked(&tl, MIN_SEG, recv);
        ck_assert_int_ge(end - start, MIN_SEG); /* only ever lengthened */
        int64_t error = recv - end;
        ck_assert_int_ge(error, 0); /* never overshoots */
        ck_assert_int_le(error, prev_error);
        /* While far off, the full correction is used: that is what lets the
         * timeline catch up with a real drift. */
        if (prev_error >= MAX_NUDGE_60S)
            ck_assert_int_eq(end - start, MIN_SEG + MAX_NUDGE_60S);
        if (error == 0 && closed_at < 0)
            closed_at = i;
        prev_error = error;
    }
    /* 2 s at 30 ms a segment: 67 segments. */
    ck_assert_int_eq(closed_at, (int)((late + MAX_NUDGE_60S - 1) / MAX_NUDGE_60S));
    ck_assert_int_eq(end, T0 + 100 * MIN_SEG + late);
}
END_TEST

/* The receive clock is 2 s behind the media timeline (camera clock fast):
 * segments are shortened by no more than 500 ppm until it catches up. */
START_TEST(test_receive_early)
{
    vg_timeline_t tl;
    vg_timeline_start(&tl, T0);
    int64_t early = 2 * SEC, prev_error = early;
    for (int i = 1; i <= 100; i++) {
        int64_t recv = T0 + i * MIN_SEG - early;
        int64_t start = tl.next_start_us;
        int64_t end = close_checked(&tl, MIN_SEG, recv);
        ck_assert_int_le(end - start, MIN_SEG); /* only ever shortened */
        ck_assert_int_ge(end - start, MIN_SEG - MAX_NUDGE_60S);
        int64_t error = end - recv;
        ck_assert_int_ge(error, 0);
        ck_assert_int_le(error, prev_error);
        prev_error = error;
    }
    ck_assert_int_eq(prev_error, 0);
}
END_TEST

/* A camera whose clock runs 300 ppm slow (or fast) against real time is
 * inside the bound: the timeline follows it exactly and the error never
 * accumulates, however long the connection lasts. */
static void follow_drift(int64_t ppm)
{
    vg_timeline_t tl;
    vg_timeline_start(&tl, T0);
    int64_t wall_per_seg = MIN_SEG + MIN_SEG * ppm / 1000000;
    for (int i = 1; i <= 1000; i++) {
        int64_t recv = T0 + i * wall_per_seg;
        int64_t end = close_checked(&tl, MIN_SEG, recv);
        ck_assert_msg(end == recv, "segment %d: end %lld, receive clock %lld", i,
                      (long long)end, (long long)recv);
    }
}

START_TEST(test_steady_drift_followed)
{
    follow_drift(300);
    follow_drift(-300);
    follow_drift(VG_DRIFT_MAX_PPM); /* the bound itself is still followed */
    follow_drift(-VG_DRIFT_MAX_PPM);
}
END_TEST

/* Beyond the bound the timeline keeps the bound: the index lags real time
 * rather than bending segments by more than a fraction of a frame. */
START_TEST(test_drift_beyond_bound_clamped)
{
    vg_timeline_t tl;
    vg_timeline_start(&tl, T0);
    int64_t wall_per_seg = MIN_SEG + MIN_SEG * 2000 / 1000000; /* 2000 ppm */
    for (int i = 1; i <= 20; i++) {
        int64_t start = tl.next_start_us;
        int64_t end = close_checked(&tl, MIN_SEG, T0 + i * wall_per_seg);
        ck_assert_int_eq(end - start, MIN_SEG + MAX_NUDGE_60S);
    }
}
END_TEST

/* The wall clock steps 90 s ahead (then 40 s back) in the middle of a
 * connection, the monotonic clock does not: the timeline re-anchors at the
 * next cut, so the segments after it are on the new time at once instead of
 * creeping toward it at 500 ppm for 50 hours. A slew under a second is
 * drift, left to the bound. */
START_TEST(test_wall_step_reanchors)
{
    fake_t f = {.wall = T0, .mono = 1000 * SEC};
    vg_clock_t clock = {fake_wall, fake_mono, &f};
    vg_timeline_t tl = {0};
    vg_timeline_observe(&tl, &clock);
    vg_timeline_start(&tl, T0);
    int64_t media_total = 0, step = 0;
    for (int i = 1; i <= 10; i++) {
        media_total += MIN_SEG;
        f.mono += MIN_SEG;
        if (i == 4)
            step += 90 * SEC; /* NTP fixes a clock that was 90 s behind */
        if (i == 8)
            step -= 40 * SEC; /* and an admin sets it back a little */
        f.wall = T0 + media_total + step;
        vg_timeline_observe(&tl, &clock);
        int64_t start = -1, end = -1;
        vg_timeline_close(&tl, MIN_SEG, f.wall, &start, &end);
        /* Every segment keeps its media length... */
        ck_assert_int_eq(end - start, MIN_SEG);
        /* ...and the next one starts on the clock as it is now. */
        ck_assert_msg(tl.next_start_us == T0 + media_total + step,
                      "segment %d: next start %lld, wall %lld", i,
                      (long long)tl.next_start_us, (long long)(T0 + media_total + step));
    }
    /* A 300 ms slew is drift: no step, the bounded rule follows it. */
    f.mono += MIN_SEG;
    f.wall += MIN_SEG + 300000;
    vg_timeline_observe(&tl, &clock);
    int64_t start = -1, end = -1;
    vg_timeline_close(&tl, MIN_SEG, f.wall, &start, &end);
    ck_assert_int_eq(end - start, MIN_SEG + MAX_NUDGE_60S);
    /* A new connection starts from its own receive time; an old step is
     * not applied twice. */
    f.mono += 5 * SEC;
    f.wall += 5 * SEC + 3600 * SEC;
    vg_timeline_observe(&tl, &clock);
    vg_timeline_start(&tl, f.wall);
    f.mono += MIN_SEG;
    f.wall += MIN_SEG;
    vg_timeline_observe(&tl, &clock);
    close_checked(&tl, MIN_SEG, f.wall);
    ck_assert_int_eq(tl.next_start_us, f.wall);
}
END_TEST

/* A segment with no media (a connection that died right after its first
 * keyframe) has no length, whatever the receive clock says, and a negative
 * duration (garbage timestamps) is treated as none: never end < start, which
 * the index rejects. */
START_TEST(test_zero_and_negative_media)
{
    vg_timeline_t tl;
    vg_timeline_start(&tl, T0);
    int64_t start = -1, end = -1;
    vg_timeline_close(&tl, 0, T0 + 5 * SEC, &start, &end);
    ck_assert_int_eq(start, T0);
    ck_assert_int_eq(end, T0);
    vg_timeline_close(&tl, 0, T0 - 5 * SEC, &start, &end);
    ck_assert_int_eq(end, T0);
    vg_timeline_close(&tl, -3 * SEC, T0 + 5 * SEC, &start, &end);
    ck_assert_int_eq(start, T0);
    ck_assert_int_eq(end, T0);
    vg_timeline_close(&tl, -3 * SEC, T0 - 10 * SEC, &start, &end);
    ck_assert_int_eq(end, T0);
    ck_assert_int_eq(tl.next_start_us, T0);
    /* And the timeline carries on normally afterwards. */
    vg_timeline_close(&tl, MIN_SEG, T0 + MIN_SEG, &start, &end);
    ck_assert_int_eq(start, T0);
    ck_assert_int_eq(end, T0 + MIN_SEG);
}
END_TEST

/* Short segments get a proportionally small nudge: a 2 s test segment moves
 * by at most 1 ms, a 40 ms frame-long one by at most 20 us. */
START_TEST(test_bound_scales_with_length)
{
    vg_timeline_t tl;
    vg_timeline_start(&tl, T0);
    int64_t start = -1, end = -1;
    vg_timeline_close(&tl, 2 * SEC, T0 + 12 * SEC, &start, &end);
    ck_assert_int_eq(end - start, 2 * SEC + 2 * SEC * VG_DRIFT_MAX_PPM / 1000000);
    vg_timeline_close(&tl, 40000, start, &start, &end);
    ck_assert_int_eq(end - start, 40000 - 40000 * VG_DRIFT_MAX_PPM / 1000000);
}
END_TEST

/* ---- the live clock (core/rebase.h) ---- */

#define MS 1000000LL

START_TEST(test_rebase_continues_across_reconnects_and_jumps)
{
    vg_rebase_t r = {0};
    ck_assert_int_eq(vg_rebase_map(&r, 5000 * MS), 0);
    ck_assert_int_eq(vg_rebase_map(&r, 5040 * MS), 40 * MS);
    /* reordering and steps back up to the bound are not jumps */
    ck_assert_int_eq(vg_rebase_map(&r, 5030 * MS), 30 * MS);
    ck_assert_int_eq(vg_rebase_map(&r, 5040 * MS - VG_REBASE_BACK_NS),
                     40 * MS - VG_REBASE_BACK_NS);
    /* a new connection starting anywhere continues a frame later */
    vg_rebase_restart(&r);
    ck_assert_int_eq(vg_rebase_map(&r, 123 * MS), 80 * MS);
    ck_assert_int_eq(vg_rebase_map(&r, 163 * MS), 120 * MS);
    /* a camera jumping back (an encoder restart) or far ahead is re-based:
     * the clock never goes back, nor leaps */
    ck_assert_int_eq(vg_rebase_map(&r, 100 * MS - 5000 * MS), 160 * MS);
    ck_assert_int_eq(vg_rebase_map(&r, 140 * MS - 5000 * MS), 200 * MS);
    ck_assert_int_eq(vg_rebase_map(&r, 3600000 * MS), 240 * MS);
    /* up to 10 s ahead is a gap, not a jump */
    ck_assert_int_eq(vg_rebase_map(&r, 3600000 * MS + VG_REBASE_AHEAD_NS),
                     240 * MS + VG_REBASE_AHEAD_NS);
}
END_TEST

static Suite *clock_suite(void)
{
    Suite *s = suite_create("clock");
    TCase *tc = tcase_create("clock");
    tcase_add_test(tc, test_injected_clock);
    tcase_add_test(tc, test_system_clock);
    tcase_add_test(tc, test_start);
    tcase_add_test(tc, test_perfect_clock);
    tcase_add_test(tc, test_segments_abut);
    tcase_add_test(tc, test_receive_late);
    tcase_add_test(tc, test_receive_early);
    tcase_add_test(tc, test_steady_drift_followed);
    tcase_add_test(tc, test_drift_beyond_bound_clamped);
    tcase_add_test(tc, test_wall_step_reanchors);
    tcase_add_test(tc, test_zero_and_negative_media);
    tcase_add_test(tc, test_bound_scales_with_length);
    tcase_add_test(tc, test_rebase_continues_across_reconnects_and_jumps);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(clock_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
