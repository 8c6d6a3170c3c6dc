/* Time sources and the media-vs-wall-clock drift rule (DESIGN.md invariant 7).
 * The clock is injectable so tests drive time; production uses CLOCK_REALTIME
 * for wall time and CLOCK_MONOTONIC for deadlines. */
#ifndef VG_CLOCK_H
#define VG_CLOCK_H

#include <stdint.h>

typedef struct {
    int64_t (*wall_us)(void *ctx);      /* UTC microseconds */
    int64_t (*monotonic_us)(void *ctx); /* never goes back */
    void *ctx;
} vg_clock_t;

/* The system clock. */
extern const vg_clock_t vg_system_clock;

static inline int64_t vg_clock_wall(const vg_clock_t *c) { return c->wall_us(c->ctx); }
static inline int64_t vg_clock_mono(const vg_clock_t *c) { return c->monotonic_us(c->ctx); }

/* Largest correction applied to a segment's media duration, in parts per
 * million. 500 ppm keeps a 60 s segment within 30 ms of its media duration
 * (under one frame at 25 fps) while absorbing a camera clock that runs up to
 * 0.05 % fast or slow without the index drifting away from real time. */
#define VG_DRIFT_MAX_PPM 500

/* Wall-clock timeline of one upstream connection. Segment boundaries abut:
 * each segment starts where the previous one ended; its length is its media
 * duration plus a bounded nudge toward the receive clock. */
typedef struct {
    int started;
    int64_t next_start_us; /* where the next segment begins on the wall clock */
    int have_offset;
    int64_t offset_us; /* wall minus monotonic at the last vg_timeline_observe */
    int64_t step_us;   /* wall-clock steps seen since, applied at the next close */
} vg_timeline_t;

/* A change of wall minus monotonic time larger than this between two
 * observations is a step of the wall clock (NTP, an admin), not drift. */
#define VG_CLOCK_STEP_US 1000000

/* Reads both clocks. A step found since the last reading is applied at the
 * next vg_timeline_close: the timeline is re-anchored by it at once instead of
 * absorbing it at VG_DRIFT_MAX_PPM (a one-minute step would take 33 hours,
 * every segment of them dated wrong). Call it before vg_timeline_start and
 * before each vg_timeline_close. */
void vg_timeline_observe(vg_timeline_t *tl, const vg_clock_t *clock);

/* Starts a connection's timeline at the receive time of its first frame
 * (already on the current wall clock: earlier steps are dropped). */
void vg_timeline_start(vg_timeline_t *tl, int64_t first_frame_wall_us);
/* Closes a segment of media_us duration. received_end_wall_us is the receive
 * clock at the media time where the segment ends (the arrival of the frame
 * that starts the next one). Fills the segment's wall start/end and advances.
 * After a wall-clock step the segment keeps its media length (the receive
 * clock straddles the step) and the next one starts the step later (earlier,
 * for a backward step). */
void vg_timeline_close(vg_timeline_t *tl, int64_t media_us, int64_t received_end_wall_us,
                       int64_t *start_us, int64_t *end_us);

#endif
