/* Retention: the cyclic archive's rules. Age sweep by per-source keep_days,
 * disk pressure (oldest first across sources, floor-protected data last and
 * only as on_full allows), evidence holds that nothing deletes, the
 * two-phase delete with a destruction record per run, and the storage
 * figures and forecast admins watch. Time comes in as now_us, so tests drive
 * it. All SQL is in index/. */
#ifndef RET_RETENTION_H
#define RET_RETENTION_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "index/index.h"

#define RET_DAY_US (86400LL * 1000000LL)

typedef struct {
    int64_t capacity_bytes; /* what media may use */
    int64_t free_bytes;     /* free under that capacity */
    int64_t reserve_bytes;  /* reserve_percent of capacity */
    int64_t exports_bytes;  /* finished export bundles (data_dir/exports) */
} ret_disk_t;

/* Disk figures: the filesystem of data_dir, or, with capacity_bytes set, that
 * capacity minus indexed bytes minus in_progress_bytes (segments being
 * written), never more than the filesystem really has free. */
int ret_disk_read(const vg_config_t *cfg, idx_t *idx, int64_t in_progress_bytes, ret_disk_t *out);

typedef enum { RET_AGE, RET_PRESSURE, RET_OVERWRITE } ret_reason_t;
const char *ret_reason_name(ret_reason_t reason);

typedef struct {
    idx_segment_t seg;
    ret_reason_t reason;
} ret_victim_t;

typedef struct {
    ret_victim_t *victims;
    size_t n;
    int stop_recording;       /* on_full=stop hit the floor, or holds fill the disk */
    int below_floor;          /* overwrite takes data younger than min_days */
    int holds_full;           /* only held data is left and space is still short */
    char floor_sources[256];  /* sources whose young data is (or would be) taken */
    int64_t short_bytes;      /* still missing under the reserve after the plan */
    /* Segments ending after this are under the floor: execution checks it
     * again, with the holds, when it marks them (invariant 3). */
    int64_t floor_end_us;
} ret_plan_t;

/* What a sweep at now_us would delete, and why. Pure planning: nothing is
 * changed. At most max_victims entries (0: a default bound per sweep). */
int ret_plan(idx_t *idx, const vg_config_t *cfg, int64_t now_us, const ret_disk_t *disk,
             size_t max_victims, ret_plan_t *plan);
void ret_plan_free(ret_plan_t *plan);

/* Deletes the plan's segments: for each reason, phase one marks them and
 * writes the destruction record in one transaction (re-checking holds and
 * the floor there: a hold added since the plan wins); phase two unlinks the
 * files and fsyncs their directories; phase three drops the rows. A file
 * that cannot be removed keeps its row marked, is reported (alarm
 * delete_failed) and retried after RET_DELETE_RETRY_US; the rest proceed. */
int ret_execute(idx_t *idx, const char *data_dir, const ret_plan_t *plan, int64_t now_us);

/* How long a file that could not be removed waits before the next try. */
#define RET_DELETE_RETRY_US (10LL * 60 * 1000000)

/* Finishes phases two and three for marked rows: those a crash left, and
 * those whose removal failed and are due again at now_us (every one of them
 * when retry_all is set, as at startup). Files that still cannot go are
 * reported, not fatal: *finished counts the rows dropped. */
int ret_finish_pending(idx_t *idx, const char *data_dir, int64_t now_us, int retry_all,
                       size_t *finished);

typedef struct {
    size_t deleted;
    int64_t freed_bytes;
    int stop_recording;
    int age_suspended; /* a clock_jump alarm is active (see ret_clock_check) */
    int64_t calls_deleted; /* calls: metadata rows whose audio is gone (idx_call_sweep) */
} ret_sweep_result_t;

/* One sweep: plan, execute, and raise or clear the persistent alarms. While
 * a clock_jump alarm is active, nothing is deleted for age, and disk
 * pressure treats every segment as under the floor: a wall clock that ran
 * ahead cannot make young recordings look old. */
int ret_sweep(idx_t *idx, const vg_config_t *cfg, int64_t now_us, int64_t in_progress_bytes,
              ret_sweep_result_t *result);

/* ---- wall-clock jumps ---- */

/* A forward step of the wall clock past this between two sweeps (against
 * the monotonic clock) suspends age-based deletion. */
#define RET_CLOCK_JUMP_US (3600LL * 1000000)
/* Within this of the last trusted offset the clock is back in line. */
#define RET_CLOCK_SLACK_US (1000000LL)

typedef struct {
    int have;          /* offset_us holds a trusted reading */
    int raised;        /* the clock_jump alarm is (or was found) active */
    int64_t offset_us; /* wall minus monotonic at the last trusted sweep */
} ret_clock_guard_t;

/* Called before each sweep with both clocks (zeroed guard at first). A
 * forward jump of more than RET_CLOCK_JUMP_US raises the persistent alarm
 * clock_jump; it clears when the clock comes back within RET_CLOCK_SLACK_US
 * of where it was. An admin's `vigilctl clock accept` (ret_clock_accept)
 * clears it too, and the guard then trusts the new time. An alarm found
 * active at startup stays until accepted: the old offset is not known. */
int ret_clock_check(ret_clock_guard_t *g, idx_t *idx, int64_t wall_us, int64_t mono_us);
/* The admin confirms the wall clock: clears the clock_jump alarm; *cleared
 * tells whether one was active. */
int ret_clock_accept(idx_t *idx, int64_t now_us, int *cleared);

typedef struct {
    char source[64];
    char kind[8];
    int keep_days;
    int64_t segments;
    int64_t bytes;
    int64_t oldest_us, newest_us; /* 0 when nothing is recorded */
    double depth_days;            /* now - oldest */
    double bytes_per_day;         /* over the last day recorded */
    int64_t held_bytes;
    double projected_days;        /* depth the archive will settle at, at current rates */
} ret_source_figures_t;

typedef struct {
    char kind[32];
    char severity[16]; /* warning | critical */
    char sources[256];
    char message[256];
    int64_t raised_us;
} ret_alarm_t;

typedef struct {
    ret_disk_t disk;
    ret_source_figures_t *sources;
    size_t n_sources;
    ret_alarm_t *alarms;
    size_t n_alarms;
} ret_storage_t;

int ret_storage(idx_t *idx, const vg_config_t *cfg, int64_t now_us, const ret_disk_t *disk,
                ret_storage_t *out);
void ret_storage_free(ret_storage_t *st);

#endif
