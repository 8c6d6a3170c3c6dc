/* System clock and the drift rule; see clock.h. */
#include "clock.h"

#include <time.h>

static int64_t read_clock(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t system_wall(void *ctx)
{
    (void)ctx;
    return read_clock(CLOCK_REALTIME);
}

static int64_t system_mono(void *ctx)
{
    (void)ctx;
    return read_clock(CLOCK_MONOTONIC);
}

const vg_clock_t vg_system_clock = {system_wall, system_mono, NULL};

void vg_timeline_observe(vg_timeline_t *tl, const vg_clock_t *clock)
{
    int64_t offset = vg_clock_wall(clock) - vg_clock_mono(clock);
    if (tl->have_offset) {
        int64_t moved = offset - tl->offset_us;
        /* Slews between two readings stay far below the threshold and are
         * left to the drift rule; only a jump counts. */
        if (moved > VG_CLOCK_STEP_US || moved < -VG_CLOCK_STEP_US)
            tl->step_us += moved;
    }
    tl->have_offset = 1;
    tl->offset_us = offset;
}

void vg_timeline_start(vg_timeline_t *tl, int64_t first_frame_wall_us)
{
    tl->started = 1;
    tl->next_start_us = first_frame_wall_us;
    tl->step_us = 0;
}

void vg_timeline_close(vg_timeline_t *tl, int64_t media_us, int64_t received_end_wall_us,
                       int64_t *start_us, int64_t *end_us)
{
    if (media_us < 0)
        media_us = 0;
    int64_t start = tl->next_start_us;
    if (tl->step_us != 0) {
        *start_us = start;
        *end_us = start + media_us;
        tl->next_start_us = *end_us + tl->step_us;
        tl->step_us = 0;
        return;
    }
    int64_t ideal_end = start + media_us;
    /* Network delay only ever makes frames arrive late, so the error is noisy;
     * the bound keeps one bad reading from bending a segment by more than a
     * fraction of a frame while a steady drift is still followed. */
    int64_t error = received_end_wall_us - ideal_end;
    int64_t limit = media_us * VG_DRIFT_MAX_PPM / 1000000;
    if (error > limit)
        error = limit;
    if (error < -limit)
        error = -limit;
    *start_us = start;
    *end_us = ideal_end + error;
    tl->next_start_us = *end_us;
}
