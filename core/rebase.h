/* One clock per source for what is served live (the relay, live view) that
 * never goes back whatever the camera does: each connection, and each jump
 * inside one (an encoder restart with a new RTP timestamp base, a camera
 * clock set), is re-based to continue a frame after where the clock stood,
 * so clients that stay through it see time go on. */
#ifndef VG_REBASE_H
#define VG_REBASE_H

#include <stdint.h>

/* A jump: decode time more than this far back from, or ahead of, the
 * latest mapped. B-frame reordering (decode order is what is mapped) and
 * the usual gaps stay well inside. */
#define VG_REBASE_BACK_NS (1000 * 1000000LL)
#define VG_REBASE_AHEAD_NS (10 * 1000000000LL)
/* Where a new stretch starts: one 25 fps frame after the latest time. */
#define VG_REBASE_GAP_NS (40 * 1000000LL)

typedef struct {
    int started, rebase;
    int64_t src_base, out_base, last_out; /* ns */
} vg_rebase_t;

/* The next vg_rebase_map starts a new stretch (a new connection). */
void vg_rebase_restart(vg_rebase_t *r);
/* Maps a source decode time (ns) onto the clock (0 at the first call); the
 * caller adds the same shift to the PTS. */
int64_t vg_rebase_map(vg_rebase_t *r, int64_t src_ns);

#endif
