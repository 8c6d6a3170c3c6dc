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
} ret_plan_t;

/* What a sweep at now_us would delete, and why. Pure planning: nothing is
 * changed. At most max_victims entries (0: a default bound per sweep). */
int ret_plan(idx_t *idx, const vg_config_t *cfg, int64_t now_us, const ret_disk_t *disk,
             size_t max_victims, ret_plan_t *plan);
void ret_plan_free(ret_plan_t *plan);

/* Deletes the plan's segments: for each reason, phase one marks them and
 * writes the destruction record in one transaction; phase two unlinks the
 * files and fsyncs their directories; phase three drops the rows. */
int ret_execute(idx_t *idx, const char *data_dir, const ret_plan_t *plan, int64_t now_us);
/* Finishes phases two and three for rows a crash left marked. */
int ret_finish_pending(idx_t *idx, const char *data_dir, size_t *finished);

typedef struct {
    size_t deleted;
    int64_t freed_bytes;
    int stop_recording;
} ret_sweep_result_t;

/* One sweep: plan, execute, and raise or clear the persistent alarms. */
int ret_sweep(idx_t *idx, const vg_config_t *cfg, int64_t now_us, int64_t in_progress_bytes,
              ret_sweep_result_t *result);

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
