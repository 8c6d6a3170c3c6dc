/* See retention.h. */
#include "retention/retention.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "archive/archive.h"
#include "playback/playback.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

/* A sweep handles at most this many segments; the next one continues. It
 * keeps one sweep's transaction and memory bounded on a huge backlog. */
#define DEFAULT_MAX_VICTIMS 20000
#define PRESSURE_BATCH 512
#define RECENT_WINDOW_US RET_DAY_US

const char *ret_reason_name(ret_reason_t reason)
{
    switch (reason) {
    case RET_AGE: return "age";
    case RET_PRESSURE: return "disk_pressure";
    case RET_OVERWRITE: return "overwrite_below_floor";
    }
    return "unknown";
}

int ret_disk_read(const vg_config_t *cfg, idx_t *idx, int64_t in_progress_bytes, ret_disk_t *out)
{
    struct statvfs vfs;
    if (statvfs(cfg->data_dir, &vfs) != 0) {
        vg_err("cannot stat the filesystem of %s: %s", cfg->data_dir, strerror(errno));
        return VG_EIO;
    }
    int64_t fs_size = (int64_t)vfs.f_blocks * (int64_t)vfs.f_frsize;
    int64_t fs_free = (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize;
    const vg_retention_config_t *r = &cfg->retention;
    /* Export bundles share the disk: they count against capacity (on a
     * whole filesystem they are already in its free figure). */
    out->exports_bytes = 0;
    if (idx_export_bytes(idx, &out->exports_bytes) != VG_OK)
        out->exports_bytes = 0;
    if (r->capacity_bytes == 0) {
        out->capacity_bytes = fs_size;
        out->free_bytes = fs_free;
    } else {
        int64_t used = 0;
        int rc = idx_total_bytes(idx, &used);
        if (rc != VG_OK)
            return rc;
        out->capacity_bytes = r->capacity_bytes;
        out->free_bytes = r->capacity_bytes - used - out->exports_bytes - in_progress_bytes;
        if (out->free_bytes > fs_free)
            out->free_bytes = fs_free; /* the disk is smaller than the setting */
    }
    out->reserve_bytes = out->capacity_bytes * r->reserve_percent / 100;
    return VG_OK;
}

/* ---- planning ---- */

static void add_victim(ret_plan_t *plan, size_t *cap, const idx_segment_t *seg,
                       ret_reason_t reason)
{
    if (plan->n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        plan->victims = vg_realloc(plan->victims, *cap * sizeof(*plan->victims));
    }
    plan->victims[plan->n].seg = *seg;
    plan->victims[plan->n].reason = reason;
    plan->n++;
}

/* An override set over the API (PATCH /sources/{name}) wins over the
 * config; it is never allowed under the floor, even if min_days was raised
 * after it was set (invariant 3). */
static int keep_days_of(idx_t *idx, const vg_config_t *cfg, const char *source)
{
    int days = 0;
    if (idx_keep_days_override(idx, source, &days) == VG_OK && days > 0)
        return days < cfg->retention.min_days ? cfg->retention.min_days : days;
    return vg_config_keep_days(cfg, vg_config_find_source(cfg, source));
}

/* Age: everything past its source's keep_days, unless held. */
static int plan_age(idx_t *idx, const vg_config_t *cfg, int64_t now_us, size_t max,
                    ret_plan_t *plan, size_t *cap, int64_t *freed)
{
    char (*names)[64] = NULL;
    size_t n_names = 0;
    int rc = idx_source_names(idx, &names, &n_names);
    for (size_t i = 0; rc == VG_OK && i < n_names && plan->n < max; i++) {
        int64_t cutoff = now_us - (int64_t)keep_days_of(idx, cfg, names[i]) * RET_DAY_US;
        idx_segment_t *segs = NULL;
        size_t n = 0;
        rc = idx_expired_segments(idx, names[i], cutoff, now_us, max - plan->n, &segs, &n);
        for (size_t j = 0; rc == VG_OK && j < n; j++) {
            add_victim(plan, cap, &segs[j], RET_AGE);
            *freed += segs[j].bytes;
        }
        free(segs);
    }
    free(names);
    return rc;
}

static int cmp_id(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void note_floor_source(ret_plan_t *plan, const char *source)
{
    char needle[70];
    snprintf(needle, sizeof(needle), ",%s,", source);
    char haystack[300];
    snprintf(haystack, sizeof(haystack), ",%s,", plan->floor_sources);
    if (strstr(haystack, needle))
        return;
    size_t len = strlen(plan->floor_sources);
    snprintf(plan->floor_sources + len, sizeof(plan->floor_sources) - len, "%s%s",
             len ? "," : "", source);
}

/* Decides what one pressure candidate costs. Returns 0 to stop planning. */
static int take_for_pressure(const vg_config_t *cfg, const idx_segment_t *seg, ret_plan_t *plan,
                             size_t *cap)
{
    if (seg->end_us <= plan->floor_end_us) {
        add_victim(plan, cap, seg, RET_PRESSURE);
        return 1;
    }
    note_floor_source(plan, seg->source);
    if (cfg->retention.on_full == VG_ON_FULL_STOP) {
        plan->stop_recording = 1; /* invariant 3: the floor wins, recording yields */
        return 0;
    }
    plan->below_floor = 1;
    add_victim(plan, cap, seg, RET_OVERWRITE);
    return 1;
}

/* Disk pressure: oldest unheld first across all sources until the reserve is
 * back. Segments the age step already took are skipped (sorted ids). */
static int plan_pressure(idx_t *idx, const vg_config_t *cfg, int64_t now_us, int64_t needed,
                         size_t max, ret_plan_t *plan, size_t *cap)
{
    size_t n_age = plan->n;
    int64_t *age_ids = vg_malloc((n_age ? n_age : 1) * sizeof(int64_t));
    for (size_t i = 0; i < n_age; i++)
        age_ids[i] = plan->victims[i].seg.id;
    qsort(age_ids, n_age, sizeof(int64_t), cmp_id);
    int64_t after_start = INT64_MIN, after_id = INT64_MIN;
    int rc = VG_OK, go_on = 1, exhausted = 0;
    while (rc == VG_OK && go_on && needed > 0 && plan->n < max) {
        idx_segment_t *segs = NULL;
        size_t n = 0;
        rc = idx_oldest_unheld(idx, now_us, after_start, after_id, PRESSURE_BATCH, &segs, &n);
        exhausted = rc == VG_OK && n == 0;
        for (size_t i = 0; rc == VG_OK && i < n && go_on && needed > 0 && plan->n < max; i++) {
            after_start = segs[i].start_us;
            after_id = segs[i].id;
            if (bsearch(&segs[i].id, age_ids, n_age, sizeof(int64_t), cmp_id))
                continue;
            go_on = take_for_pressure(cfg, &segs[i], plan, cap);
            if (go_on)
                needed -= segs[i].bytes;
        }
        free(segs);
        if (exhausted)
            break;
    }
    free(age_ids);
    if (rc == VG_OK && needed > 0) {
        plan->short_bytes = needed;
        if (exhausted) {
            /* Nothing deletable is left: holds (and the floor, under stop)
             * own the disk. Recording must yield rather than fail. */
            plan->holds_full = 1;
            plan->stop_recording = 1;
        }
    }
    return rc;
}

/* age: whether the age step runs; floor_end_us: where the floor begins. */
static int plan_with(idx_t *idx, const vg_config_t *cfg, int64_t now_us, const ret_disk_t *disk,
                     size_t max_victims, int age, int64_t floor_end_us, ret_plan_t *plan)
{
    memset(plan, 0, sizeof(*plan));
    plan->floor_end_us = floor_end_us;
    size_t cap = 0, max = max_victims ? max_victims : DEFAULT_MAX_VICTIMS;
    int64_t freed = 0;
    int rc = age ? plan_age(idx, cfg, now_us, max, plan, &cap, &freed) : VG_OK;
    int64_t needed = disk->reserve_bytes - disk->free_bytes - freed;
    if (rc == VG_OK && needed > 0)
        rc = plan_pressure(idx, cfg, now_us, needed, max, plan, &cap);
    if (rc != VG_OK)
        ret_plan_free(plan);
    return rc;
}

int ret_plan(idx_t *idx, const vg_config_t *cfg, int64_t now_us, const ret_disk_t *disk,
             size_t max_victims, ret_plan_t *plan)
{
    return plan_with(idx, cfg, now_us, disk, max_victims, 1,
                     now_us - (int64_t)cfg->retention.min_days * RET_DAY_US, plan);
}

void ret_plan_free(ret_plan_t *plan)
{
    free(plan->victims);
    plan->victims = NULL;
    plan->n = 0;
}

/* ---- deleting (DESIGN.md invariant 2) ---- */

#define ALARM_DELETE_FAILED "delete_failed"

/* Raises delete_failed naming the files that could not be removed, or
 * clears it when none is left. */
static void update_delete_alarm(idx_t *idx, int64_t now_us)
{
    idx_delete_failure_t *f = NULL;
    size_t n = 0;
    if (idx_delete_failures(idx, &f, &n) != VG_OK)
        return;
    if (n == 0) {
        int cleared = 0;
        idx_alarm_clear(idx, ALARM_DELETE_FAILED, now_us, &cleared);
        if (cleared)
            vg_notice("retention: every file that could not be deleted is gone now");
        return;
    }
    ret_plan_t names = {0}; /* only its floor_sources list, reused as a set */
    for (size_t i = 0; i < n; i++)
        note_floor_source(&names, f[i].seg.source);
    /* The path first: it is what an admin needs (alarm texts are shown
     * up to 255 bytes). */
    char msg[512];
    snprintf(msg, sizeof(msg), "cannot delete %.160s: %.40s (%zu file(s) in all, retried every"
             " %lld min)", f[0].seg.path, f[0].error, n,
             (long long)(RET_DELETE_RETRY_US / 60000000));
    idx_alarm_raise(idx, ALARM_DELETE_FAILED, "warning", names.floor_sources, msg, now_us);
    free(f);
}

/* Phases two and three for segments already marked. A file that cannot be
 * removed keeps its row marked (invariant 2: a row goes only after its file)
 * with the error and a retry time; every other one proceeds (invariant 9).
 * Only an index error fails the call. */
static int unlink_and_drop(idx_t *idx, const char *data_dir, const idx_segment_t *segs, size_t n,
                           int64_t now_us, size_t *dropped)
{
    *dropped = 0;
    if (n == 0)
        return VG_OK;
    int *errs = vg_calloc(n, sizeof(*errs));
    idx_segment_t *gone = vg_malloc(n * sizeof(*gone));
    size_t n_gone = 0;
    int rc = VG_OK;
    arc_remove_segment_files(data_dir, segs, n, errs);
    for (size_t i = 0; i < n; i++) {
        if (!errs[i]) {
            gone[n_gone++] = segs[i];
            continue;
        }
        char why[128];
        snprintf(why, sizeof(why), "%s", strerror(errs[i]));
        vg_err("retention: cannot delete %s: %s; keeping its row, next try in %lld min",
               segs[i].path, why, (long long)(RET_DELETE_RETRY_US / 60000000));
        int frc = idx_delete_failed(idx, segs[i].id, why, now_us + RET_DELETE_RETRY_US);
        if (rc == VG_OK)
            rc = frc;
    }
    int drc = idx_drop_deleted(idx, gone, n_gone);
    if (drc == VG_OK)
        *dropped = n_gone;
    else if (rc == VG_OK)
        rc = drc;
    /* Their cached snapshots are copies of them: they go too (after the
     * rows, so no request finds these segments to cache them again). */
    pb_snapshots_forget(data_dir, gone, n_gone);
    update_delete_alarm(idx, now_us);
    free(gone);
    free(errs);
    return rc;
}

static int execute_reason(idx_t *idx, const char *data_dir, const ret_plan_t *plan,
                          ret_reason_t reason, int64_t now_us)
{
    idx_segment_t *segs = vg_malloc((plan->n ? plan->n : 1) * sizeof(*segs));
    unsigned char *marked = vg_malloc(plan->n ? plan->n : 1);
    size_t n = 0;
    int64_t bytes = 0;
    for (size_t i = 0; i < plan->n; i++) {
        if (plan->victims[i].reason == reason) {
            segs[n++] = plan->victims[i].seg;
            bytes += plan->victims[i].seg.bytes;
        }
    }
    /* Overwrite is the policy that may go under the floor; the others may
     * not, whatever changed since planning. */
    int64_t floor_end = reason == RET_OVERWRITE ? INT64_MAX : plan->floor_end_us;
    int64_t run_id = 0;
    int rc = n ? idx_record_destruction(idx, now_us, ret_reason_name(reason), segs, n, floor_end,
                                        marked, &run_id)
               : VG_OK;
    if (rc == VG_OK && run_id) {
        /* Only what was marked may go: a segment a hold or the floor now
         * protects, or one another sweep took, stays out. */
        size_t k = 0;
        bytes = 0;
        for (size_t i = 0; i < n; i++) {
            if (marked[i]) {
                segs[k++] = segs[i];
                bytes += segs[i].bytes;
            }
        }
        if (k < n)
            vg_notice("retention: %zu planned segment(s) left alone: now held, under the floor"
                      " or already taken", n - k);
        vg_notice("retention: destruction run %" PRId64 ": %zu segment(s), %" PRId64
                  " bytes, reason=%s", run_id, k, bytes, ret_reason_name(reason));
        size_t dropped = 0;
        rc = unlink_and_drop(idx, data_dir, segs, k, now_us, &dropped);
    }
    free(marked);
    free(segs);
    return rc;
}

int ret_execute(idx_t *idx, const char *data_dir, const ret_plan_t *plan, int64_t now_us)
{
    static const ret_reason_t order[] = {RET_AGE, RET_PRESSURE, RET_OVERWRITE};
    int rc = VG_OK;
    for (size_t i = 0; rc == VG_OK && i < sizeof(order) / sizeof(order[0]); i++)
        rc = execute_reason(idx, data_dir, plan, order[i], now_us);
    return rc;
}

int ret_finish_pending(idx_t *idx, const char *data_dir, int64_t now_us, int retry_all,
                       size_t *finished)
{
    idx_segment_t *segs = NULL;
    size_t n = 0, dropped = 0;
    int rc = idx_deleting_segments(idx, retry_all ? INT64_MAX : now_us, &segs, &n);
    if (rc == VG_OK && n > 0) {
        vg_notice("retention: finishing %zu deletion(s) interrupted or failed earlier", n);
        rc = unlink_and_drop(idx, data_dir, segs, n, now_us, &dropped);
    }
    free(segs);
    if (finished)
        *finished = dropped;
    return rc;
}

/* ---- alarms kept in the index ---- */

#define ALARM_FLOOR "archive_below_floor"
#define ALARM_STOPPED "recording_stopped"

/* The floor alarm stays until every source it names is min_days deep again. */
static int floor_alarm_still_due(idx_t *idx, const vg_config_t *cfg, int64_t now_us,
                                 const char *sources)
{
    idx_source_stats_t *st = NULL;
    size_t n = 0;
    if (idx_source_stats(idx, now_us, RECENT_WINDOW_US, &st, &n) != VG_OK)
        return 1;
    int due = 0;
    char list[300];
    snprintf(list, sizeof(list), ",%s,", sources);
    for (size_t i = 0; i < n && !due; i++) {
        char needle[70];
        snprintf(needle, sizeof(needle), ",%s,", st[i].source);
        /* A source overwritten down to nothing is not deep either. */
        if (strstr(list, needle) && (st[i].oldest_us == 0 ||
            now_us - st[i].oldest_us < (int64_t)cfg->retention.min_days * RET_DAY_US))
            due = 1;
    }
    free(st);
    return due;
}

static void update_floor_alarm(idx_t *idx, const vg_config_t *cfg, int64_t now_us,
                               const ret_plan_t *plan)
{
    idx_alarm_t *active = NULL;
    size_t n = 0;
    if (idx_alarms_active(idx, &active, &n) != VG_OK)
        return;
    if (plan->below_floor) {
        /* Keep the sources an earlier sweep named: they are not deep yet. */
        ret_plan_t merged = {0};
        for (size_t i = 0; i < n; i++) {
            if (strcmp(active[i].kind, ALARM_FLOOR) == 0)
                snprintf(merged.floor_sources, sizeof(merged.floor_sources), "%s",
                         active[i].sources);
        }
        char copy[sizeof(plan->floor_sources)];
        snprintf(copy, sizeof(copy), "%s", plan->floor_sources);
        char *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
            note_floor_source(&merged, tok);
        char msg[256];
        snprintf(msg, sizeof(msg), "disk pressure deleted recordings younger than min_days (%d)",
                 cfg->retention.min_days);
        vg_err("retention: ALARM archive depth below floor: sources=%s", merged.floor_sources);
        idx_alarm_raise(idx, ALARM_FLOOR, "critical", merged.floor_sources, msg, now_us);
        free(active);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(active[i].kind, ALARM_FLOOR) == 0 &&
            !floor_alarm_still_due(idx, cfg, now_us, active[i].sources)) {
            idx_alarm_clear(idx, ALARM_FLOOR, now_us, NULL);
            vg_notice("retention: archive depth is back above the floor");
        }
    }
    free(active);
}

static void update_stop_alarm(idx_t *idx, int64_t now_us, const ret_plan_t *plan)
{
    if (plan->stop_recording) {
        char msg[256];
        snprintf(msg, sizeof(msg), "recording stopped: %s",
                 plan->holds_full ? "held recordings fill the disk"
                                  : "disk full and on_full=stop protects the floor");
        vg_err("retention: ALARM %s (sources=%s)", msg,
               plan->floor_sources[0] ? plan->floor_sources : "all");
        idx_alarm_raise(idx, ALARM_STOPPED, "critical",
                        plan->floor_sources[0] ? plan->floor_sources : "all", msg, now_us);
        return;
    }
    int cleared = 0;
    idx_alarm_clear(idx, ALARM_STOPPED, now_us, &cleared);
    if (cleared)
        vg_notice("retention: space is available again; recording resumes");
}

#define ALARM_CLOCK "clock_jump"

static int alarm_active(idx_t *idx, const char *kind, int *active)
{
    idx_alarm_t *a = NULL;
    size_t n = 0;
    *active = 0;
    int rc = idx_alarms_active(idx, &a, &n);
    for (size_t i = 0; rc == VG_OK && i < n; i++)
        *active |= strcmp(a[i].kind, kind) == 0;
    free(a);
    return rc;
}

/* calls: a call's metadata goes with its audio (the age sweep and disk
 * pressure delete segments oldest first, so a call older than its line's
 * oldest segment has none left), but not before min_days, and not before
 * [retention] call_metadata_days when that is longer; a call named by an
 * active hold stays. Lines without a segment left keep calls for
 * keep_days. Bounded per sweep: the rest go at the next. */
#define CALL_SWEEP_LIMIT 20000

static int sweep_calls(idx_t *idx, const vg_config_t *cfg, int64_t now_us, int64_t *deleted)
{
    /* Never younger than the floor: the age sweep deletes no audio younger
     * than min_days, so a call that young without audio never had any (a
     * CDR row for a line recorded since), and keeping it costs nothing. */
    int days = cfg->retention.call_metadata_days > cfg->retention.min_days
                   ? cfg->retention.call_metadata_days
                   : cfg->retention.min_days;
    int64_t meta = now_us - (int64_t)days * RET_DAY_US;
    int64_t nosegs = now_us - (int64_t)cfg->retention.keep_days * RET_DAY_US;
    int rc = idx_call_sweep(idx, meta, nosegs, now_us, CALL_SWEEP_LIMIT, deleted);
    if (rc == VG_OK && *deleted)
        vg_info("retention: deleted the metadata of %lld call(s) whose audio is gone",
                (long long)*deleted);
    return rc;
}

int ret_sweep(idx_t *idx, const vg_config_t *cfg, int64_t now_us, int64_t in_progress_bytes,
              ret_sweep_result_t *result)
{
    memset(result, 0, sizeof(*result));
    ret_disk_t disk;
    int suspended = 0;
    int rc = ret_finish_pending(idx, cfg->data_dir, now_us, 0, NULL);
    if (rc == VG_OK)
        rc = alarm_active(idx, ALARM_CLOCK, &suspended);
    if (rc == VG_OK)
        rc = ret_disk_read(cfg, idx, in_progress_bytes, &disk);
    /* A wall clock that jumped ahead makes every recording look older than
     * it is: no age deletion, and pressure counts everything as under the
     * floor (invariant 3) until the clock is trusted again. */
    int64_t floor_end = suspended ? INT64_MIN
                                  : now_us - (int64_t)cfg->retention.min_days * RET_DAY_US;
    ret_plan_t plan;
    if (rc == VG_OK)
        rc = plan_with(idx, cfg, now_us, &disk, 0, !suspended, floor_end, &plan);
    if (rc != VG_OK)
        return rc;
    result->age_suspended = suspended;
    rc = ret_execute(idx, cfg->data_dir, &plan, now_us);
    if (rc == VG_OK) {
        result->deleted = plan.n;
        for (size_t i = 0; i < plan.n; i++)
            result->freed_bytes += plan.victims[i].seg.bytes;
        result->stop_recording = plan.stop_recording;
        update_floor_alarm(idx, cfg, now_us, &plan);
        update_stop_alarm(idx, now_us, &plan);
    }
    ret_plan_free(&plan);
    if (rc == VG_OK && !suspended)
        rc = sweep_calls(idx, cfg, now_us, &result->calls_deleted);
    /* The timeline reads a source's rows while its spans wait for a
     * rebuild (a row inserted before the newest, times changed): rebuild
     * them here, off the recorders' path. A failure only keeps the slower
     * answer. */
    int rebuilt = 0;
    if (rc == VG_OK && idx_spans_repair(idx, &rebuilt) != VG_OK)
        vg_warn("retention: cannot rebuild the timeline's spans; the timeline reads rows");
    else if (rebuilt)
        vg_info("retention: rebuilt the timeline's spans of %d source(s)", rebuilt);
    return rc;
}

/* ---- wall-clock jumps ---- */

int ret_clock_check(ret_clock_guard_t *g, idx_t *idx, int64_t wall_us, int64_t mono_us)
{
    int active = 0;
    int rc = alarm_active(idx, ALARM_CLOCK, &active);
    if (rc != VG_OK)
        return rc;
    int64_t offset = wall_us - mono_us;
    if (g->raised && !active) {
        /* An admin accepted the clock as it is now. */
        vg_notice("retention: wall clock accepted; age-based deletion resumes");
        g->raised = 0;
        g->have = 0;
    }
    if (!g->have) {
        g->raised = active; /* found at startup: only an admin can clear it */
        g->have = !active;
        g->offset_us = offset;
        return VG_OK;
    }
    int64_t moved = offset - g->offset_us;
    if (active) {
        if (moved <= RET_CLOCK_SLACK_US && moved >= -RET_CLOCK_SLACK_US) {
            rc = idx_alarm_clear(idx, ALARM_CLOCK, wall_us, NULL);
            if (rc == VG_OK) {
                g->raised = 0;
                vg_notice("retention: wall clock is back in line; age-based deletion resumes");
            }
        }
        return rc; /* the trusted offset stays the one from before the jump */
    }
    if (moved > RET_CLOCK_JUMP_US) {
        char msg[256];
        snprintf(msg, sizeof(msg),
                 "wall clock jumped %.0f s ahead between sweeps; age-based deletion suspended"
                 " until it is back or an admin runs `vigilctl clock accept`",
                 (double)moved / 1e6);
        vg_err("retention: ALARM %s", msg);
        rc = idx_alarm_raise(idx, ALARM_CLOCK, "critical", "all", msg, wall_us);
        if (rc == VG_OK)
            g->raised = 1;
        return rc;
    }
    /* Slews and backward steps are followed: they cannot make anything look
     * older than it is. */
    g->offset_us = offset;
    return VG_OK;
}

int ret_clock_accept(idx_t *idx, int64_t now_us, int *cleared)
{
    return idx_alarm_clear(idx, ALARM_CLOCK, now_us, cleared);
}

/* ---- figures and forecast ---- */

static int cmp_keep(const void *a, const void *b)
{
    const ret_source_figures_t *x = a, *y = b;
    return (x->keep_days > y->keep_days) - (x->keep_days < y->keep_days);
}

/* Under oldest-first deletion every source settles at the same depth D,
 * except those whose keep_days is shorter. Solve
 *   sum(rate_s * min(keep_s, D)) = usable
 * by filling sources in keep_days order. */
static void project_depths(ret_source_figures_t *src, size_t n, double usable_bytes)
{
    ret_source_figures_t *sorted = vg_malloc((n ? n : 1) * sizeof(*sorted));
    memcpy(sorted, src, n * sizeof(*src));
    qsort(sorted, n, sizeof(*sorted), cmp_keep);
    double rate_left = 0, left = usable_bytes > 0 ? usable_bytes : 0;
    for (size_t i = 0; i < n; i++)
        rate_left += sorted[i].bytes_per_day;
    double depth = 0;
    size_t i = 0;
    for (; i < n; i++) {
        double need = sorted[i].bytes_per_day * sorted[i].keep_days;
        if (rate_left <= 0 || left / rate_left < sorted[i].keep_days)
            break; /* the rest are capped by the disk, not by keep_days */
        left -= need;
        rate_left -= sorted[i].bytes_per_day;
    }
    depth = rate_left > 0 ? left / rate_left : 1e9;
    for (size_t k = 0; k < n; k++) {
        double d = depth < src[k].keep_days ? depth : src[k].keep_days;
        src[k].projected_days = src[k].bytes_per_day > 0 ? d : src[k].keep_days;
    }
    free(sorted);
}

static void fill_figures(idx_t *idx, const vg_config_t *cfg, int64_t now_us,
                         const idx_source_stats_t *s, ret_source_figures_t *f)
{
    memset(f, 0, sizeof(*f));
    snprintf(f->source, sizeof(f->source), "%s", s->source);
    snprintf(f->kind, sizeof(f->kind), "%s", s->kind);
    f->keep_days = keep_days_of(idx, cfg, s->source);
    f->segments = s->segments;
    f->bytes = s->bytes;
    f->oldest_us = s->oldest_us;
    f->newest_us = s->newest_us;
    f->held_bytes = s->held_bytes;
    f->depth_days = s->oldest_us ? (double)(now_us - s->oldest_us) / RET_DAY_US : 0;
    f->bytes_per_day = s->recent_us > 0 ? (double)s->recent_bytes * RET_DAY_US / s->recent_us : 0;
}

static void add_alarm(ret_storage_t *out, size_t *cap, const char *kind, const char *severity,
                      const char *sources, const char *message, int64_t raised_us)
{
    if (out->n_alarms == *cap) {
        *cap = *cap ? *cap * 2 : 4;
        out->alarms = vg_realloc(out->alarms, *cap * sizeof(*out->alarms));
    }
    ret_alarm_t *a = &out->alarms[out->n_alarms++];
    snprintf(a->kind, sizeof(a->kind), "%s", kind);
    snprintf(a->severity, sizeof(a->severity), "%s", severity);
    snprintf(a->sources, sizeof(a->sources), "%s", sources);
    snprintf(a->message, sizeof(a->message), "%s", message);
    a->raised_us = raised_us;
}

static void forecast_alarms(const vg_config_t *cfg, int64_t now_us, ret_storage_t *out,
                            size_t *cap)
{
    for (size_t i = 0; i < out->n_sources; i++) {
        const ret_source_figures_t *f = &out->sources[i];
        char msg[256];
        if (f->projected_days < cfg->retention.min_days) {
            snprintf(msg, sizeof(msg), "projected depth %.1f d is below min_days %d",
                     f->projected_days, cfg->retention.min_days);
            add_alarm(out, cap, "forecast_below_floor", "critical", f->source, msg, now_us);
        } else if (f->projected_days < f->keep_days) {
            snprintf(msg, sizeof(msg), "projected depth %.1f d is below keep_days %d",
                     f->projected_days, f->keep_days);
            add_alarm(out, cap, "forecast_below_keep", "warning", f->source, msg, now_us);
        }
    }
}

int ret_storage(idx_t *idx, const vg_config_t *cfg, int64_t now_us, const ret_disk_t *disk,
                ret_storage_t *out)
{
    memset(out, 0, sizeof(*out));
    out->disk = *disk;
    idx_source_stats_t *stats = NULL;
    size_t n = 0;
    int rc = idx_source_stats(idx, now_us, RECENT_WINDOW_US, &stats, &n);
    if (rc != VG_OK)
        return rc;
    out->sources = vg_calloc(n ? n : 1, sizeof(*out->sources));
    out->n_sources = n;
    int64_t held = 0, used = 0;
    for (size_t i = 0; i < n; i++) {
        fill_figures(idx, cfg, now_us, &stats[i], &out->sources[i]);
        held += stats[i].held_bytes;
        used += stats[i].bytes;
    }
    free(stats);
    /* Media can grow into what is free now plus what it already uses, less
     * the reserve and what holds pin down. */
    double usable = (double)disk->free_bytes + (double)used - (double)disk->reserve_bytes -
                    (double)held;
    project_depths(out->sources, n, usable);
    size_t cap = 0;
    idx_alarm_t *active = NULL;
    size_t n_active = 0;
    rc = idx_alarms_active(idx, &active, &n_active);
    for (size_t i = 0; rc == VG_OK && i < n_active; i++)
        add_alarm(out, &cap, active[i].kind, active[i].severity, active[i].sources,
                  active[i].message, active[i].raised_us);
    free(active);
    forecast_alarms(cfg, now_us, out, &cap);
    if (rc != VG_OK)
        ret_storage_free(out);
    return rc;
}

void ret_storage_free(ret_storage_t *st)
{
    free(st->sources);
    free(st->alarms);
    st->sources = NULL;
    st->alarms = NULL;
    st->n_sources = st->n_alarms = 0;
}
