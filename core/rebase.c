/* The live clock of a source; see rebase.h. */
#include "core/rebase.h"

void vg_rebase_restart(vg_rebase_t *r)
{
    r->rebase = 1;
}

int64_t vg_rebase_map(vg_rebase_t *r, int64_t src_ns)
{
    int64_t out = src_ns - r->src_base + r->out_base;
    if (r->started && !r->rebase &&
        (out < r->last_out - VG_REBASE_BACK_NS || out > r->last_out + VG_REBASE_AHEAD_NS))
        r->rebase = 1;
    if (!r->started || r->rebase) {
        r->src_base = src_ns;
        r->out_base = r->started ? r->last_out + VG_REBASE_GAP_NS : 0;
        r->started = 1;
        r->rebase = 0;
        out = r->out_base;
    }
    if (out > r->last_out)
        r->last_out = out;
    return out;
}
