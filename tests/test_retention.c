/* Check suite for retention/ (and the retention half of index/): the age
 * sweep and its floor, evidence holds, disk pressure and the on_full policy,
 * the persistent alarms, the two-phase delete and its recovery after a crash
 * at each step, storage figures and the depth forecast, and the migration of
 * a v1 database (v2 added retention's byte totals). Time is always injected
 * (NOW_US); disk figures are hand-made for ret_plan/ret_storage, and ret_sweep
 * runs in capacity_bytes mode so "used" is the indexed bytes plus the
 * in-progress argument. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "archive/archive.h"
#include "core/config.h"
#include "core/errors.h"
#include "core/util.h"
#include "index/index.h"
#include "retention/retention.h"

/* 2026-11-27T00:00:00Z */
#define NOW_US (1795737600LL * 1000000LL)
#define SEC_US 1000000LL
#define MIN_US (60LL * SEC_US)
#define HOUR_US (3600LL * SEC_US)
#define DAYS(d) ((int64_t)((d) * (double)RET_DAY_US))

#define MAX_SOURCES 8

/* One base dir per run (made in main), one fresh dir per test inside it; a
 * failing test's child exits before teardown, so main removes the base. */
static char g_base[64];
static char g_dir[128];
static char g_db[192];

static vg_config_t g_cfg;
static vg_source_config_t g_srcs[MAX_SOURCES];
static char g_src_names[MAX_SOURCES][64];
static idx_t *g_idx;
static unsigned g_seq;

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void remove_tree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
    snprintf(g_dir, sizeof(g_dir), "%s/t-XXXXXX", g_base);
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
    snprintf(g_db, sizeof(g_db), "%s/index.db", g_dir);

    memset(&g_cfg, 0, sizeof(g_cfg));
    memset(g_srcs, 0, sizeof(g_srcs));
    g_cfg.data_dir = g_dir;
    g_cfg.log_level = VG_LOG_WARNING;
    g_cfg.segment_seconds = 60;
    g_cfg.retention.min_days = 60;
    g_cfg.retention.keep_days = 60;
    g_cfg.retention.capacity_bytes = 0;
    g_cfg.retention.reserve_percent = 10;
    g_cfg.retention.on_full = VG_ON_FULL_OVERWRITE;
    g_cfg.retention.sweep_seconds = 60;
    g_cfg.sources = g_srcs;
    g_cfg.n_sources = 0;
    g_seq = 0;

    g_idx = NULL;
    ck_assert_int_eq(idx_open(g_db, 0, &g_idx), VG_OK);
}

static void teardown(void)
{
    idx_close(g_idx);
    g_idx = NULL;
    remove_tree(g_dir);
}

static void reopen(void)
{
    idx_close(g_idx);
    g_idx = NULL;
    ck_assert_int_eq(idx_open(g_db, 0, &g_idx), VG_OK);
}

/* ---- fixtures: sources, segments with real files, holds ---- */

static vg_source_config_t *add_source(const char *name, vg_source_kind_t kind, int keep_days)
{
    ck_assert_uint_lt(g_cfg.n_sources, MAX_SOURCES);
    size_t i = g_cfg.n_sources++;
    snprintf(g_src_names[i], sizeof(g_src_names[i]), "%s", name);
    g_srcs[i].name = g_src_names[i];
    g_srcs[i].kind = kind;
    g_srcs[i].transport = VG_TRANSPORT_TCP;
    g_srcs[i].keep_days = keep_days;
    ck_assert_int_eq(idx_source_register(g_idx, name, kind == VG_SOURCE_AUDIO ? "audio" : "video"),
                     VG_OK);
    return &g_srcs[i];
}

static char *abs_path(const char *rel)
{
    return vg_asprintf("%s/%s", g_dir, rel);
}

/* A file of exactly bytes bytes (sparse past a short head): retention never
 * reads media, it only needs the size to agree with the row. */
static void write_file(const char *rel, int64_t bytes)
{
    char *abs = abs_path(rel);
    char *dir = vg_strdup(abs);
    *strrchr(dir, '/') = '\0';
    ck_assert_int_eq(vg_mkdir_p(dir), VG_OK);
    int fd = open(abs, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, 0640);
    ck_assert_int_ge(fd, 0);
    static const char head[] = "not really an mp4, retention does not care";
    size_t len = (size_t)bytes < sizeof(head) ? (size_t)bytes : sizeof(head);
    ck_assert_int_eq(write(fd, head, len), (ssize_t)len);
    ck_assert_int_eq(ftruncate(fd, (off_t)bytes), 0);
    close(fd);
    free(dir);
    free(abs);
}

static int file_exists(const idx_segment_t *s)
{
    char *abs = abs_path(s->path);
    struct stat st;
    int found = stat(abs, &st) == 0;
    free(abs);
    return found;
}

static void remove_file(const idx_segment_t *s)
{
    char *abs = abs_path(s->path);
    ck_assert_int_eq(unlink(abs), 0);
    free(abs);
}

/* What one completed removal step leaves: the file gone and, as
 * arc_remove_segment_file does, its day directory too once empty. */
static void remove_file_and_empty_day(const idx_segment_t *s)
{
    char *abs = abs_path(s->path);
    ck_assert_int_eq(unlink(abs), 0);
    *strrchr(abs, '/') = '\0';
    rmdir(abs); /* fails while other files are left in the day */
    free(abs);
}

static int row_exists(const idx_segment_t *s)
{
    int found = -1;
    ck_assert_int_eq(idx_segment_path_exists(g_idx, s->path, &found), VG_OK);
    return found;
}

/* Inserts a row for [start, end) of source, with its file when with_file. */
static idx_segment_t put_seg(const char *source, int64_t start, int64_t end, int64_t bytes,
                             int with_file)
{
    idx_segment_t s;
    memset(&s, 0, sizeof(s));
    snprintf(s.source, sizeof(s.source), "%s", source);
    s.start_us = start;
    s.end_us = end;
    s.media_us = end - start;
    s.bytes = bytes;
    s.init_bytes = bytes / 4;
    unsigned seq = ++g_seq;
    snprintf(s.sha256, sizeof(s.sha256), "%016llx%016llx%016llx%016llx", (unsigned long long)seq,
             (unsigned long long)start, (unsigned long long)bytes, 0xfeedULL);
    ck_assert_uint_eq(strlen(s.sha256), 64);
    snprintf(s.codecs, sizeof(s.codecs), "h264");
    time_t secs = (time_t)(start / SEC_US);
    struct tm tm;
    gmtime_r(&secs, &tm);
    snprintf(s.path, sizeof(s.path), "media/%s/%04d-%02d-%02d/%" PRId64 ".mp4", source,
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, start);
    if (with_file)
        write_file(s.path, bytes);
    ck_assert_int_eq(idx_segment_insert(g_idx, &s), VG_OK);
    ck_assert_int_gt(s.id, 0);
    return s;
}

/* A one-minute segment whose end is age_days before NOW. */
static idx_segment_t seg_aged(const char *source, double age_days, int64_t bytes)
{
    int64_t end = NOW_US - DAYS(age_days);
    return put_seg(source, end - MIN_US, end, bytes, 1);
}

static int64_t add_hold(const char *source, int64_t from, int64_t to, int64_t until)
{
    idx_hold_t h;
    memset(&h, 0, sizeof(h));
    snprintf(h.case_no, sizeof(h.case_no), "CASE-%u", ++g_seq);
    snprintf(h.reason, sizeof(h.reason), "complaint under investigation");
    snprintf(h.created_by, sizeof(h.created_by), "investigator");
    h.created_us = NOW_US - DAYS(1);
    h.from_us = from;
    h.to_us = to;
    h.until_us = until;
    const char *const srcs[] = {source};
    ck_assert_int_eq(idx_hold_add(g_idx, &h, srcs, 1), VG_OK);
    ck_assert_int_gt(h.id, 0);
    return h.id;
}

static ret_disk_t disk_roomy(void)
{
    ret_disk_t d = {.capacity_bytes = 1LL << 40, .free_bytes = 1LL << 39,
                    .reserve_bytes = 1LL << 30};
    return d;
}

/* A disk that is needed bytes short of its reserve. */
static ret_disk_t disk_short_by(int64_t needed)
{
    ret_disk_t d = {.capacity_bytes = 1LL << 30, .reserve_bytes = 1LL << 20};
    d.free_bytes = d.reserve_bytes - needed;
    return d;
}

static long plan_find(const ret_plan_t *p, int64_t id)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->victims[i].seg.id == id)
            return (long)i;
    return -1;
}

/* 1 when name is one element of the comma-separated list. */
static int list_has(const char *list, const char *name)
{
    char hay[IDX_LIST_TEXT_MAX + 2], needle[80];
    snprintf(hay, sizeof(hay), ",%s,", list);
    snprintf(needle, sizeof(needle), ",%s,", name);
    return strstr(hay, needle) != NULL;
}

/* Copies the active alarm of this kind into out (when given); 1 if found. */
static int alarm_active(const char *kind, idx_alarm_t *out)
{
    idx_alarm_t *a = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_alarms_active(g_idx, &a, &n), VG_OK);
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(a[i].kind, kind) == 0) {
            ck_assert_msg(!found, "two active %s alarms", kind);
            found = 1;
            if (out)
                *out = a[i];
        }
    }
    free(a);
    return found;
}

static void report_problem(void *ctx, arc_problem_t p, const char *rel, const char *detail)
{
    (void)ctx;
    fprintf(stderr, "reconcile problem %d: %s: %s\n", (int)p, rel, detail);
}

static void assert_reconciled(void)
{
    arc_reconcile_opts_t o = {.deep = 0, .repair = 0, .report = report_problem};
    int problems = -1;
    ck_assert_int_eq(arc_reconcile(g_dir, g_idx, &o, &problems), VG_OK);
    ck_assert_int_eq(problems, 0);
}

static size_t count_deleting(void)
{
    idx_segment_t *segs = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_deleting_segments(g_idx, INT64_MAX, &segs, &n), VG_OK);
    free(segs);
    return n;
}

static size_t count_in_range(const char *source)
{
    idx_segment_t *segs = NULL;
    size_t n = 99;
    ck_assert_int_eq(idx_segments_in_range(g_idx, source, 0, INT64_MAX, &segs, &n), VG_OK);
    free(segs);
    return n;
}

static int64_t total_bytes(void)
{
    int64_t b = -1;
    ck_assert_int_eq(idx_total_bytes(g_idx, &b), VG_OK);
    return b;
}

/* ---- the age sweep and the floor (invariant 3) ---- */

START_TEST(test_age_floor_and_override)
{
    add_source("cam-a", VG_SOURCE_VIDEO, 0);  /* inherits keep_days = 60 */
    add_source("cam-b", VG_SOURCE_VIDEO, 90); /* keeps 90 days */
    idx_segment_t a10 = seg_aged("cam-a", 10, 1000);
    idx_segment_t a599 = seg_aged("cam-a", 59.9, 1000);
    idx_segment_t a601 = seg_aged("cam-a", 60.1, 1000);
    idx_segment_t a90 = seg_aged("cam-a", 90, 1000);
    idx_segment_t b599 = seg_aged("cam-b", 59.9, 1000);
    idx_segment_t b601 = seg_aged("cam-b", 60.1, 1000);
    idx_segment_t b91 = seg_aged("cam-b", 91, 1000);

    ret_disk_t disk = disk_roomy();
    ret_plan_t plan;
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 0, &plan), VG_OK);
    ck_assert_uint_eq(plan.n, 3);
    ck_assert_int_ge(plan_find(&plan, a601.id), 0);
    ck_assert_int_ge(plan_find(&plan, a90.id), 0);
    ck_assert_int_ge(plan_find(&plan, b91.id), 0);
    ck_assert_int_lt(plan_find(&plan, a10.id), 0);
    ck_assert_int_lt(plan_find(&plan, a599.id), 0);
    ck_assert_int_lt(plan_find(&plan, b599.id), 0);
    ck_assert_int_lt(plan_find(&plan, b601.id), 0); /* the override keeps it */
    for (size_t i = 0; i < plan.n; i++) {
        ck_assert_int_eq(plan.victims[i].reason, RET_AGE);
        /* Nothing in an age plan is younger than its source's keep_days. */
        int keep = strcmp(plan.victims[i].seg.source, "cam-b") == 0 ? 90 : 60;
        ck_assert_int_le(plan.victims[i].seg.end_us, NOW_US - DAYS(keep));
    }
    /* Oldest first within a source. */
    ck_assert_int_lt(plan_find(&plan, a90.id), plan_find(&plan, a601.id));
    ck_assert_int_eq(plan.stop_recording, 0);
    ck_assert_int_eq(plan.below_floor, 0);
    ck_assert_int_eq(plan.holds_full, 0);
    ck_assert_int_eq(plan.short_bytes, 0);
    ck_assert_str_eq(plan.floor_sources, "");
    ret_plan_free(&plan);
    ck_assert_ptr_null(plan.victims);
    ck_assert_uint_eq(plan.n, 0);

    /* Planning changed nothing. */
    ck_assert_uint_eq(count_in_range("cam-a"), 4);
    ck_assert_uint_eq(count_in_range("cam-b"), 3);
    ck_assert_str_eq(ret_reason_name(RET_AGE), "age");
    ck_assert_str_eq(ret_reason_name(RET_PRESSURE), "disk_pressure");
    ck_assert_str_eq(ret_reason_name(RET_OVERWRITE), "overwrite_below_floor");

    /* Two days later the 59.9-day segments of cam-a are due, cam-b's are not. */
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US + DAYS(2), &disk, 0, &plan), VG_OK);
    ck_assert_uint_eq(plan.n, 4);
    ck_assert_int_ge(plan_find(&plan, a599.id), 0);
    ck_assert_int_lt(plan_find(&plan, b599.id), 0);
    ck_assert_int_lt(plan_find(&plan, b601.id), 0);
    ret_plan_free(&plan);
}
END_TEST

START_TEST(test_age_cutoff_edge)
{
    add_source("cam-a", VG_SOURCE_VIDEO, 0);
    int64_t cutoff = NOW_US - DAYS(60);
    idx_segment_t at = put_seg("cam-a", cutoff - MIN_US, cutoff, 1000, 1);
    idx_segment_t just = put_seg("cam-a", cutoff + 1 - MIN_US, cutoff + 1, 1000, 1);
    idx_segment_t across = put_seg("cam-a", cutoff - 30 * SEC_US, cutoff + 30 * SEC_US, 1000, 1);

    ret_disk_t disk = disk_roomy();
    ret_plan_t plan;
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 0, &plan), VG_OK);
    /* Ending exactly at the cutoff it is exactly keep_days old: due. One
     * microsecond later, or straddling the cutoff, it is younger: kept. */
    ck_assert_uint_eq(plan.n, 1);
    ck_assert_int_eq(plan.victims[0].seg.id, at.id);
    ck_assert_int_eq(plan.victims[0].reason, RET_AGE);
    ck_assert_int_lt(plan_find(&plan, just.id), 0);
    ck_assert_int_lt(plan_find(&plan, across.id), 0);
    ret_plan_free(&plan);

    /* One microsecond later the one ending at cutoff + 1 is due too. */
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US + 1, &disk, 0, &plan), VG_OK);
    ck_assert_uint_eq(plan.n, 2);
    ck_assert_int_ge(plan_find(&plan, just.id), 0);
    ret_plan_free(&plan);

    /* The floor has the same edge under disk pressure: with keep_days 90
     * nothing is due by age, and min_days 60 makes the first one ordinary
     * pressure, the next (one microsecond younger) an overwrite. */
    g_cfg.retention.keep_days = 90;
    disk = disk_short_by(2000);
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 0, &plan), VG_OK);
    ck_assert_uint_eq(plan.n, 2);
    ck_assert_int_eq(plan.victims[0].seg.id, at.id);
    ck_assert_int_eq(plan.victims[0].reason, RET_PRESSURE);
    ck_assert_int_eq(plan.victims[1].seg.id, just.id);
    ck_assert_int_eq(plan.victims[1].reason, RET_OVERWRITE);
    ck_assert_int_eq(plan.below_floor, 1);
    ck_assert_str_eq(plan.floor_sources, "cam-a");
    ret_plan_free(&plan);
}
END_TEST

/* ---- holds ---- */

START_TEST(test_hold_edges)
{
    add_source("cam-a", VG_SOURCE_VIDEO, 0);
    add_source("cam-b", VG_SOURCE_VIDEO, 0);
    int64_t base = NOW_US - DAYS(70);
    idx_segment_t a[7], b[7];
    for (int k = 0; k < 7; k++) {
        int64_t start = base + k * 10 * MIN_US;
        a[k] = put_seg("cam-a", start, start + MIN_US, 1000, 1);
        b[k] = put_seg("cam-b", start + SEC_US, start + SEC_US + MIN_US, 1000, 1);
    }
    /* a[1]: the hold ends one microsecond into the segment. */
    add_hold("cam-a", a[1].start_us - 5 * MIN_US, a[1].start_us + 1, 0);
    /* a[2]: the hold starts one microsecond before the segment ends. */
    add_hold("cam-a", a[2].end_us - 1, a[2].end_us + 5 * MIN_US, 0);
    /* a[3]: the hold lies inside the segment. */
    add_hold("cam-a", a[3].start_us + 10 * SEC_US, a[3].start_us + 20 * SEC_US, 0);
    /* a[4]: the segment lies inside the hold. */
    add_hold("cam-a", a[4].start_us - MIN_US, a[4].end_us + MIN_US, 0);
    /* a[5]: the hold ends exactly where the segment starts: no overlap. */
    add_hold("cam-a", a[5].start_us - 5 * MIN_US, a[5].start_us, 0);
    /* a[6]: the hold starts exactly where the segment ends: no overlap. */
    add_hold("cam-a", a[6].end_us, a[6].end_us + 5 * MIN_US, 0);
    /* A hold on cam-b over a[0]'s time protects cam-b only. */
    add_hold("cam-b", a[0].start_us - MIN_US, a[0].end_us + MIN_US, 0);

    ret_disk_t disk = disk_roomy();
    ret_plan_t plan;
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 0, &plan), VG_OK);
    ck_assert_int_ge(plan_find(&plan, a[0].id), 0);
    for (int k = 1; k <= 4; k++)
        ck_assert_msg(plan_find(&plan, a[k].id) < 0, "held a[%d] is in the plan", k);
    ck_assert_int_ge(plan_find(&plan, a[5].id), 0);
    ck_assert_int_ge(plan_find(&plan, a[6].id), 0);
    ck_assert_int_lt(plan_find(&plan, b[0].id), 0);
    for (int k = 1; k < 7; k++)
        ck_assert_msg(plan_find(&plan, b[k].id) >= 0, "b[%d] is not in the plan", k);
    ck_assert_uint_eq(plan.n, 3 + 6);
    ret_plan_free(&plan);

    /* Disk pressure asking for everything skips the same ones, and then
     * says that holds own the rest. */
    disk = disk_short_by(1000000);
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 0, &plan), VG_OK);
    ck_assert_uint_eq(plan.n, 9);
    for (int k = 1; k <= 4; k++)
        ck_assert_int_lt(plan_find(&plan, a[k].id), 0);
    ck_assert_int_lt(plan_find(&plan, b[0].id), 0);
    ck_assert_int_eq(plan.holds_full, 1);
    ck_assert_int_eq(plan.stop_recording, 1);
    ck_assert_int_eq(plan.short_bytes, 1000000 - 9 * 1000);
    ret_plan_free(&plan);

    /* The storage figures count exactly the held segments. */
    idx_source_stats_t *st = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_source_stats(g_idx, NOW_US, RET_DAY_US, &st, &n), VG_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(st[0].source, "cam-a");
    ck_assert_int_eq(st[0].held_bytes, 4 * 1000);
    ck_assert_str_eq(st[1].source, "cam-b");
    ck_assert_int_eq(st[1].held_bytes, 1000);
    free(st);
}
END_TEST

START_TEST(test_hold_release_and_expiry)
{
    add_source("cam-a", VG_SOURCE_VIDEO, 0);
    idx_segment_t s0 = seg_aged("cam-a", 70, 1000);
    idx_segment_t s1 = seg_aged("cam-a", 69, 1000);
    idx_segment_t s2 = seg_aged("cam-a", 68, 1000);
    idx_segment_t s3 = seg_aged("cam-a", 67, 1000);
    int64_t h0 = add_hold("cam-a", s0.start_us, s0.end_us, 0);
    add_hold("cam-a", s1.start_us, s1.end_us, NOW_US - 1);         /* expired */
    add_hold("cam-a", s2.start_us, s2.end_us, NOW_US + RET_DAY_US); /* until tomorrow */
    add_hold("cam-a", s3.start_us, s3.end_us, NOW_US);              /* expires now */

    ret_disk_t disk = disk_roomy();
    ret_plan_t plan;
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 0, &plan), VG_OK);
    ck_assert_int_lt(plan_find(&plan, s0.id), 0);
    ck_assert_int_ge(plan_find(&plan, s1.id), 0);
    ck_assert_int_lt(plan_find(&plan, s2.id), 0);
    ck_assert_int_ge(plan_find(&plan, s3.id), 0);
    ck_assert_uint_eq(plan.n, 2);
    ret_plan_free(&plan);

    idx_hold_t *holds = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_hold_list(g_idx, 0, NOW_US, &holds, &n), VG_OK);
    ck_assert_uint_eq(n, 2); /* s0's and s2's */
    free(holds);
    ck_assert_int_eq(idx_hold_list(g_idx, 1, NOW_US, &holds, &n), VG_OK);
    ck_assert_uint_eq(n, 4);
    free(holds);

    /* Released: eligible again; releasing twice or an unknown id fails. */
    ck_assert_int_eq(idx_hold_release(g_idx, h0, "supervisor", "case closed", NOW_US), VG_OK);
    ck_assert_int_eq(idx_hold_release(g_idx, h0, "supervisor", "again", NOW_US), VG_EINVAL);
    ck_assert_int_eq(idx_hold_release(g_idx, h0 + 1000, "supervisor", "x", NOW_US), VG_ENOTFOUND);
    idx_hold_t h;
    ck_assert_int_eq(idx_hold_get(g_idx, h0, &h), VG_OK);
    ck_assert_int_eq(h.released_us, NOW_US);
    ck_assert_str_eq(h.released_by, "supervisor");
    ck_assert_str_eq(h.release_reason, "case closed");
    ck_assert_str_eq(h.sources, "cam-a");

    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 0, &plan), VG_OK);
    ck_assert_int_ge(plan_find(&plan, s0.id), 0);
    ck_assert_int_lt(plan_find(&plan, s2.id), 0);
    ck_assert_uint_eq(plan.n, 3);
    ret_plan_free(&plan);

    /* After its until, the last hold stops protecting. */
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US + 2 * RET_DAY_US, &disk, 0, &plan), VG_OK);
    ck_assert_int_ge(plan_find(&plan, s2.id), 0);
    ck_assert_uint_eq(plan.n, 4);
    ret_plan_free(&plan);
}
END_TEST

START_TEST(test_hold_add_validation)
{
    add_source("cam-a", VG_SOURCE_VIDEO, 0);
    add_source("cam-b", VG_SOURCE_AUDIO, 0);
    idx_hold_t h;
    memset(&h, 0, sizeof(h));
    snprintf(h.case_no, sizeof(h.case_no), "CASE-1");
    snprintf(h.reason, sizeof(h.reason), "complaint");
    snprintf(h.created_by, sizeof(h.created_by), "investigator");
    h.created_us = NOW_US;
    h.from_us = NOW_US - HOUR_US;
    h.to_us = NOW_US;
    const char *const both[] = {"cam-a", "cam-b"};
    const char *const unknown[] = {"cam-a", "cam-nope"};

    idx_hold_t bad = h;
    bad.to_us = bad.from_us - 1; /* inverted */
    ck_assert_int_eq(idx_hold_add(g_idx, &bad, both, 2), VG_EINVAL);
    bad = h;
    bad.to_us = bad.from_us; /* empty */
    ck_assert_int_eq(idx_hold_add(g_idx, &bad, both, 2), VG_EINVAL);
    bad = h;
    bad.case_no[0] = '\0';
    ck_assert_int_eq(idx_hold_add(g_idx, &bad, both, 2), VG_EINVAL);
    bad = h;
    bad.reason[0] = '\0';
    ck_assert_int_eq(idx_hold_add(g_idx, &bad, both, 2), VG_EINVAL);
    bad = h;
    ck_assert_int_eq(idx_hold_add(g_idx, &bad, both, 0), VG_EINVAL);
    bad = h;
    ck_assert_int_eq(idx_hold_add(g_idx, &bad, unknown, 2), VG_ENOTFOUND);

    idx_hold_t *holds = NULL;
    size_t n = 99;
    ck_assert_int_eq(idx_hold_list(g_idx, 1, NOW_US, &holds, &n), VG_OK);
    ck_assert_uint_eq(n, 0);
    free(holds);

    /* The failed attempts left the connection usable and out of a transaction. */
    ck_assert_int_eq(idx_hold_add(g_idx, &h, both, 2), VG_OK);
    ck_assert_int_gt(h.id, 0);
    ck_assert_int_eq(idx_hold_list(g_idx, 1, NOW_US, &holds, &n), VG_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(holds[0].id, h.id);
    ck_assert_str_eq(holds[0].case_no, "CASE-1");
    ck_assert_int_eq(holds[0].from_us, h.from_us);
    ck_assert_int_eq(holds[0].to_us, h.to_us);
    ck_assert_int_eq(holds[0].until_us, 0);
    ck_assert_int_eq(holds[0].released_us, 0);
    ck_assert(list_has(holds[0].sources, "cam-a"));
    ck_assert(list_has(holds[0].sources, "cam-b"));
    free(holds);
    ck_assert_int_eq(idx_begin(g_idx), VG_OK);
    ck_assert_int_eq(idx_rollback(g_idx), VG_OK);
}
END_TEST

/* ---- disk pressure ---- */

static int cmp_start(const void *x, const void *y)
{
    const idx_segment_t *a = x, *b = y;
    if (a->start_us != b->start_us)
        return (a->start_us > b->start_us) - (a->start_us < b->start_us);
    return (a->id > b->id) - (a->id < b->id);
}

START_TEST(test_pressure_oldest_first_across_sources)
{
    g_cfg.retention.min_days = 30;
    g_cfg.retention.keep_days = 365;
    static const char *const names[] = {"cam-a", "cam-b", "cam-c"};
    /* Per age level, the hour offset of each source: the global order of
     * starts interleaves the sources differently at each level. */
    static const int offset[5][3] = {{0, 1, 2}, {2, 0, 1}, {1, 2, 0}, {0, 2, 1}, {2, 1, 0}};
    for (int s = 0; s < 3; s++)
        add_source(names[s], VG_SOURCE_VIDEO, 0);
    idx_segment_t old[15], young[3];
    size_t n_old = 0;
    for (int k = 0; k < 5; k++) {
        for (int s = 0; s < 3; s++) {
            int64_t start = NOW_US - DAYS(100 - 10 * k) + offset[k][s] * HOUR_US;
            old[n_old++] = put_seg(names[s], start, start + MIN_US, 1000, 1);
        }
    }
    for (int s = 0; s < 3; s++) {
        int64_t start = NOW_US - DAYS(5) + s * HOUR_US;
        young[s] = put_seg(names[s], start, start + MIN_US, 1000, 1);
    }
    /* cam-b's oldest segment is held. */
    idx_segment_t held = old[1];
    ck_assert_str_eq(held.source, "cam-b");
    add_hold("cam-b", held.start_us, held.end_us, 0);

    idx_segment_t expect[15];
    size_t n_expect = 0;
    for (size_t i = 0; i < n_old; i++)
        if (old[i].id != held.id)
            expect[n_expect++] = old[i];
    qsort(expect, n_expect, sizeof(expect[0]), cmp_start);

    /* 3500 bytes short: the four oldest unheld, in global start order. */
    ret_disk_t disk = disk_short_by(3500);
    ret_plan_t plan;
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 0, &plan), VG_OK);
    ck_assert_uint_eq(plan.n, 4);
    for (size_t i = 0; i < plan.n; i++) {
        ck_assert_int_eq(plan.victims[i].seg.id, expect[i].id);
        ck_assert_int_eq(plan.victims[i].reason, RET_PRESSURE);
        if (i > 0)
            ck_assert_int_gt(plan.victims[i].seg.start_us, plan.victims[i - 1].seg.start_us);
    }
    ck_assert_int_lt(plan_find(&plan, held.id), 0);
    /* The interleaving is real: more than one source in the first four. */
    ck_assert_str_ne(plan.victims[0].seg.source, plan.victims[1].seg.source);
    ck_assert_int_eq(plan.short_bytes, 0);
    ck_assert_int_eq(plan.below_floor, 0);
    ck_assert_int_eq(plan.stop_recording, 0);
    ck_assert_int_eq(plan.holds_full, 0);
    ret_plan_free(&plan);

    /* Exactly enough: stops on the byte. */
    disk = disk_short_by(4000);
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 0, &plan), VG_OK);
    ck_assert_uint_eq(plan.n, 4);
    ret_plan_free(&plan);

    /* More than everything past the floor: all 14 old unheld first, then the
     * oldest young ones as explicit overwrites below the floor. */
    disk = disk_short_by(14 * 1000 + 1500);
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 0, &plan), VG_OK);
    ck_assert_uint_eq(plan.n, 16);
    for (size_t i = 0; i < 14; i++) {
        ck_assert_int_eq(plan.victims[i].seg.id, expect[i].id);
        ck_assert_int_eq(plan.victims[i].reason, RET_PRESSURE);
    }
    ck_assert_int_eq(plan.victims[14].seg.id, young[0].id);
    ck_assert_int_eq(plan.victims[14].reason, RET_OVERWRITE);
    ck_assert_int_eq(plan.victims[15].seg.id, young[1].id);
    ck_assert_int_eq(plan.victims[15].reason, RET_OVERWRITE);
    ck_assert_int_lt(plan_find(&plan, held.id), 0);
    ck_assert_int_lt(plan_find(&plan, young[2].id), 0);
    ck_assert_int_eq(plan.below_floor, 1);
    ck_assert_int_eq(plan.stop_recording, 0);
    ck_assert_str_eq(plan.floor_sources, "cam-a,cam-b");
    ret_plan_free(&plan);
}
END_TEST

START_TEST(test_pressure_after_age)
{
    /* What the age step frees counts against the shortfall, and pressure
     * does not list a segment twice. */
    g_cfg.retention.min_days = 30;
    g_cfg.retention.keep_days = 60;
    add_source("cam-a", VG_SOURCE_VIDEO, 0);
    idx_segment_t e1 = seg_aged("cam-a", 62, 1000);
    idx_segment_t e2 = seg_aged("cam-a", 61, 1000);
    idx_segment_t p1 = seg_aged("cam-a", 50, 1000);
    idx_segment_t p2 = seg_aged("cam-a", 40, 1000);

    ret_disk_t disk = disk_short_by(2000); /* age alone covers it */
    ret_plan_t plan;
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 0, &plan), VG_OK);
    ck_assert_uint_eq(plan.n, 2);
    ck_assert_int_eq(plan.victims[0].seg.id, e1.id);
    ck_assert_int_eq(plan.victims[1].seg.id, e2.id);
    ret_plan_free(&plan);

    disk = disk_short_by(2500);
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 0, &plan), VG_OK);
    ck_assert_uint_eq(plan.n, 3);
    ck_assert_int_eq(plan.victims[0].reason, RET_AGE);
    ck_assert_int_eq(plan.victims[1].reason, RET_AGE);
    ck_assert_int_eq(plan.victims[2].seg.id, p1.id);
    ck_assert_int_eq(plan.victims[2].reason, RET_PRESSURE);
    ck_assert_int_lt(plan_find(&plan, p2.id), 0);
    ret_plan_free(&plan);
}
END_TEST

START_TEST(test_plan_max_victims)
{
    g_cfg.retention.min_days = 30;
    g_cfg.retention.keep_days = 90;
    add_source("cam-a", VG_SOURCE_VIDEO, 0);
    idx_segment_t s[10];
    for (int k = 0; k < 10; k++)
        s[k] = seg_aged("cam-a", 49 - k, 1000); /* oldest first */

    /* Pressure wants all ten; the bound is three. */
    ret_disk_t disk = disk_short_by(10 * 1000);
    ret_plan_t plan;
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 3, &plan), VG_OK);
    ck_assert_msg(plan.n <= 3, "max_victims 3, plan has %zu", plan.n);
    ck_assert_uint_eq(plan.n, 3);
    for (size_t i = 0; i < plan.n; i++)
        ck_assert_int_eq(plan.victims[i].seg.id, s[i].id);
    ret_plan_free(&plan);

    /* The same bound for the age step. */
    g_cfg.retention.keep_days = 30;
    disk = disk_roomy();
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 3, &plan), VG_OK);
    ck_assert_uint_eq(plan.n, 3);
    for (size_t i = 0; i < plan.n; i++) {
        ck_assert_int_eq(plan.victims[i].seg.id, s[i].id);
        ck_assert_int_eq(plan.victims[i].reason, RET_AGE);
    }
    ret_plan_free(&plan);
}
END_TEST

/* ---- on_full ---- */

/* cam-a ends 1..10 days ago, cam-b half a day earlier each: young data
 * only (min_days 30), 20 x 1000 bytes. */
static void young_only(idx_segment_t a[10], idx_segment_t b[10])
{
    add_source("cam-a", VG_SOURCE_VIDEO, 0);
    add_source("cam-b", VG_SOURCE_VIDEO, 0);
    for (int k = 1; k <= 10; k++) {
        a[k - 1] = seg_aged("cam-a", k, 1000);
        b[k - 1] = seg_aged("cam-b", k + 0.5, 1000);
    }
}

START_TEST(test_overwrite_below_floor_alarm)
{
    g_cfg.retention.min_days = 30;
    g_cfg.retention.keep_days = 90;
    g_cfg.retention.on_full = VG_ON_FULL_OVERWRITE;
    idx_segment_t a[10], b[10];
    young_only(a, b);

    ret_disk_t disk = {.capacity_bytes = 20000, .free_bytes = 0, .reserve_bytes = 2000};
    ret_plan_t plan;
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 0, &plan), VG_OK);
    ck_assert_uint_eq(plan.n, 2);
    ck_assert_int_eq(plan.victims[0].seg.id, b[9].id);
    ck_assert_int_eq(plan.victims[1].seg.id, a[9].id);
    ck_assert_int_eq(plan.victims[0].reason, RET_OVERWRITE);
    ck_assert_int_eq(plan.victims[1].reason, RET_OVERWRITE);
    ck_assert_int_eq(plan.below_floor, 1);
    ck_assert_int_eq(plan.stop_recording, 0);
    ck_assert_int_eq(plan.holds_full, 0);
    ck_assert(list_has(plan.floor_sources, "cam-a"));
    ck_assert(list_has(plan.floor_sources, "cam-b"));
    ret_plan_free(&plan);

    /* The same through a sweep: capacity 20000, reserve 10 %, all used. */
    g_cfg.retention.capacity_bytes = 20000;
    ret_sweep_result_t res;
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, NOW_US, 0, &res), VG_OK);
    ck_assert_uint_eq(res.deleted, 2);
    ck_assert_int_eq(res.freed_bytes, 2000);
    ck_assert_int_eq(res.stop_recording, 0);
    ck_assert(!file_exists(&a[9]) && !file_exists(&b[9]));
    ck_assert(!row_exists(&a[9]) && !row_exists(&b[9]));
    ck_assert(file_exists(&a[8]) && file_exists(&b[8]));
    ck_assert_int_eq(total_bytes(), 18000);
    idx_alarm_t al;
    ck_assert(alarm_active("archive_below_floor", &al));
    ck_assert_str_eq(al.severity, "critical");
    ck_assert(list_has(al.sources, "cam-a"));
    ck_assert(list_has(al.sources, "cam-b"));
    ck_assert_int_eq(al.raised_us, NOW_US);
    ck_assert(!alarm_active("recording_stopped", NULL));

    /* The destruction record says why. */
    idx_destruction_row_t *log = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_destruction_log(g_idx, NOW_US, NOW_US + 1, &log, &n), VG_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(log[0].reason, "overwrite_below_floor");
    ck_assert_str_eq(log[1].reason, "overwrite_below_floor");
    free(log);

    /* Persistent: a restart still shows it. */
    reopen();
    ck_assert(alarm_active("archive_below_floor", &al));

    /* No more pressure; cam-b's oldest is 30.1 days deep, cam-a's 29.6:
     * still below the floor. */
    int64_t t1 = NOW_US + DAYS(20.6);
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, t1, 0, &res), VG_OK);
    ck_assert_uint_eq(res.deleted, 0);
    ck_assert(alarm_active("archive_below_floor", NULL));

    /* Both 30 days deep again: cleared. */
    int64_t t2 = NOW_US + DAYS(21.5);
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, t2, 0, &res), VG_OK);
    ck_assert_uint_eq(res.deleted, 0);
    ck_assert(!alarm_active("archive_below_floor", NULL));
    ck_assert_uint_eq(count_in_range("cam-a"), 9);
    ck_assert_uint_eq(count_in_range("cam-b"), 9);
    assert_reconciled();
}
END_TEST

START_TEST(test_floor_alarm_keeps_earlier_sources)
{
    /* Two sweeps below the floor take different sources; the alarm must stay
     * until every source it was raised for is min_days deep again, not only
     * the one the latest sweep named. */
    g_cfg.retention.min_days = 30;
    g_cfg.retention.keep_days = 90;
    g_cfg.retention.capacity_bytes = 100000; /* reserve 10000 */
    add_source("cam-a", VG_SOURCE_VIDEO, 0);
    add_source("cam-b", VG_SOURCE_VIDEO, 0);
    idx_segment_t a20 = seg_aged("cam-a", 20, 1000);
    seg_aged("cam-a", 10, 1000);
    seg_aged("cam-a", 9, 1000);
    idx_segment_t b15 = seg_aged("cam-b", 15, 1000);
    seg_aged("cam-b", 14, 1000);
    seg_aged("cam-b", 5, 1000);

    /* Sweep 1: 1000 bytes short; cam-a's 20-day segment goes. */
    ret_sweep_result_t res;
    int64_t in_progress = 100000 - 6000 - 10000 + 1000;
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, NOW_US, in_progress, &res), VG_OK);
    ck_assert_uint_eq(res.deleted, 1);
    ck_assert(!row_exists(&a20));
    idx_alarm_t al;
    ck_assert(alarm_active("archive_below_floor", &al));
    ck_assert(list_has(al.sources, "cam-a"));

    /* Sweep 2: 1000 short again; now cam-b's 15-day segment is the oldest. */
    in_progress = 100000 - 5000 - 10000 + 1000;
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, NOW_US, in_progress, &res), VG_OK);
    ck_assert_uint_eq(res.deleted, 1);
    ck_assert(!row_exists(&b15));
    ck_assert(alarm_active("archive_below_floor", &al));

    /* 16.5 days on: cam-b is 30.5 days deep, cam-a only 26.5. */
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, NOW_US + DAYS(16.5), 0, &res), VG_OK);
    ck_assert_uint_eq(res.deleted, 0);
    ck_assert_msg(alarm_active("archive_below_floor", NULL),
                  "floor alarm cleared while cam-a is 26.5 days deep (min_days 30)");

    /* 21 days on: both are deep enough. */
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, NOW_US + DAYS(21), 0, &res), VG_OK);
    ck_assert(!alarm_active("archive_below_floor", NULL));
}
END_TEST

START_TEST(test_floor_alarm_source_emptied)
{
    /* Pressure overwrote the only (young) segment cam-a had: cam-a's archive
     * is now 0 days deep, so the floor alarm naming it must not clear. */
    g_cfg.retention.min_days = 30;
    g_cfg.retention.keep_days = 90;
    g_cfg.retention.capacity_bytes = 100000; /* reserve 10000 */
    add_source("cam-a", VG_SOURCE_VIDEO, 0);
    add_source("cam-b", VG_SOURCE_VIDEO, 0);
    idx_segment_t a = seg_aged("cam-a", 10, 1000);
    for (int k = 1; k <= 5; k++)
        seg_aged("cam-b", k, 1000);

    ret_sweep_result_t res;
    int64_t in_progress = 100000 - 6000 - 10000 + 1000; /* 1000 short */
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, NOW_US, in_progress, &res), VG_OK);
    ck_assert_uint_eq(res.deleted, 1);
    ck_assert(!row_exists(&a));
    idx_alarm_t al;
    ck_assert(alarm_active("archive_below_floor", &al));
    ck_assert_str_eq(al.sources, "cam-a");

    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, NOW_US + MIN_US, 0, &res), VG_OK);
    ck_assert_uint_eq(res.deleted, 0);
    ck_assert_msg(alarm_active("archive_below_floor", NULL),
                  "floor alarm cleared although cam-a has no recordings left");
}
END_TEST

START_TEST(test_stop_on_full)
{
    g_cfg.retention.min_days = 30;
    g_cfg.retention.keep_days = 90;
    g_cfg.retention.on_full = VG_ON_FULL_STOP;
    add_source("cam-a", VG_SOURCE_VIDEO, 0);
    add_source("cam-b", VG_SOURCE_VIDEO, 0);
    idx_segment_t old = seg_aged("cam-a", 40, 1000); /* past the floor */
    idx_segment_t young[19];
    size_t n_young = 0;
    for (int k = 1; k <= 9; k++)
        young[n_young++] = seg_aged("cam-a", k, 1000);
    for (int k = 1; k <= 10; k++)
        young[n_young++] = seg_aged("cam-b", k + 0.5, 1000);

    /* 2000 short: the old segment goes, then the floor stops it. */
    ret_disk_t disk = {.capacity_bytes = 20000, .free_bytes = 0, .reserve_bytes = 2000};
    ret_plan_t plan;
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 0, &plan), VG_OK);
    ck_assert_uint_eq(plan.n, 1);
    ck_assert_int_eq(plan.victims[0].seg.id, old.id);
    ck_assert_int_eq(plan.victims[0].reason, RET_PRESSURE);
    ck_assert_int_eq(plan.stop_recording, 1);
    ck_assert_int_eq(plan.below_floor, 0);
    ck_assert_int_eq(plan.holds_full, 0);
    ck_assert_int_eq(plan.short_bytes, 1000);
    ck_assert(list_has(plan.floor_sources, "cam-b"));
    ret_plan_free(&plan);

    g_cfg.retention.capacity_bytes = 20000;
    ret_sweep_result_t res;
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, NOW_US, 0, &res), VG_OK);
    ck_assert_uint_eq(res.deleted, 1);
    ck_assert_int_eq(res.freed_bytes, 1000);
    ck_assert_int_eq(res.stop_recording, 1);
    ck_assert(!file_exists(&old) && !row_exists(&old));
    for (size_t i = 0; i < n_young; i++)
        ck_assert_msg(file_exists(&young[i]) && row_exists(&young[i]), "young %zu deleted", i);
    idx_alarm_t al;
    ck_assert(alarm_active("recording_stopped", &al));
    ck_assert_str_eq(al.severity, "critical");
    ck_assert(!alarm_active("archive_below_floor", NULL));

    /* Still full: still stopped, nothing young taken. */
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, NOW_US + MIN_US, 0, &res), VG_OK);
    ck_assert_uint_eq(res.deleted, 0);
    ck_assert_int_eq(res.stop_recording, 1);
    ck_assert(alarm_active("recording_stopped", NULL));
    reopen();
    ck_assert(alarm_active("recording_stopped", NULL));

    /* More room: recording resumes and the alarm clears. */
    g_cfg.retention.capacity_bytes = 40000;
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, NOW_US + 2 * MIN_US, 0, &res), VG_OK);
    ck_assert_uint_eq(res.deleted, 0);
    ck_assert_int_eq(res.stop_recording, 0);
    ck_assert(!alarm_active("recording_stopped", NULL));
    ck_assert_uint_eq(count_in_range("cam-a") + count_in_range("cam-b"), n_young);
    assert_reconciled();
}
END_TEST

START_TEST(test_holds_fill_disk)
{
    g_cfg.retention.min_days = 30;
    g_cfg.retention.keep_days = 60;
    add_source("cam-a", VG_SOURCE_VIDEO, 0);
    add_source("cam-b", VG_SOURCE_AUDIO, 0);
    idx_segment_t s[5];
    s[0] = seg_aged("cam-a", 70, 1000); /* past keep_days */
    s[1] = seg_aged("cam-a", 40, 1000); /* past the floor */
    s[2] = seg_aged("cam-a", 5, 1000);
    s[3] = seg_aged("cam-b", 65, 1000);
    s[4] = seg_aged("cam-b", 3, 1000);
    idx_hold_t h;
    memset(&h, 0, sizeof(h));
    snprintf(h.case_no, sizeof(h.case_no), "CASE-ALL");
    snprintf(h.reason, sizeof(h.reason), "court order");
    snprintf(h.created_by, sizeof(h.created_by), "legal");
    h.created_us = NOW_US;
    h.from_us = NOW_US - DAYS(100);
    h.to_us = NOW_US + DAYS(1);
    const char *const both[] = {"cam-a", "cam-b"};
    ck_assert_int_eq(idx_hold_add(g_idx, &h, both, 2), VG_OK);

    for (int mode = 0; mode < 2; mode++) {
        g_cfg.retention.on_full = mode ? VG_ON_FULL_STOP : VG_ON_FULL_OVERWRITE;
        ret_disk_t disk = disk_short_by(500);
        ret_plan_t plan;
        ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 0, &plan), VG_OK);
        ck_assert_uint_eq(plan.n, 0);
        ck_assert_int_eq(plan.holds_full, 1);
        ck_assert_int_eq(plan.stop_recording, 1);
        ck_assert_int_eq(plan.below_floor, 0);
        ck_assert_int_eq(plan.short_bytes, 500);
        ret_plan_free(&plan);
    }

    g_cfg.retention.on_full = VG_ON_FULL_OVERWRITE;
    g_cfg.retention.capacity_bytes = 5000; /* all used, reserve 500 */
    ret_sweep_result_t res;
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, NOW_US, 0, &res), VG_OK);
    ck_assert_uint_eq(res.deleted, 0);
    ck_assert_int_eq(res.freed_bytes, 0);
    ck_assert_int_eq(res.stop_recording, 1);
    for (int i = 0; i < 5; i++)
        ck_assert(file_exists(&s[i]) && row_exists(&s[i]));
    idx_alarm_t al;
    ck_assert(alarm_active("recording_stopped", &al));
    ck_assert_msg(strstr(al.message, "held") != NULL, "message: %s", al.message);
    ck_assert(!alarm_active("archive_below_floor", NULL));

    /* Released: the age sweep takes what is past keep_days, that is room
     * enough, and recording resumes. */
    ck_assert_int_eq(idx_hold_release(g_idx, h.id, "legal", "order lifted", NOW_US), VG_OK);
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, NOW_US + MIN_US, 0, &res), VG_OK);
    ck_assert_uint_eq(res.deleted, 2);
    ck_assert_int_eq(res.stop_recording, 0);
    ck_assert(!row_exists(&s[0]) && !row_exists(&s[3]));
    ck_assert(row_exists(&s[1]) && row_exists(&s[2]) && row_exists(&s[4]));
    ck_assert(!alarm_active("recording_stopped", NULL));
    assert_reconciled();
}
END_TEST

START_TEST(test_in_progress_counts_as_used)
{
    g_cfg.retention.min_days = 30;
    g_cfg.retention.keep_days = 90;
    g_cfg.retention.capacity_bytes = 20000; /* reserve 2000 */
    add_source("cam-a", VG_SOURCE_VIDEO, 0);
    idx_segment_t s[10];
    for (int k = 0; k < 10; k++)
        s[k] = seg_aged("cam-a", 49 - k, 1000);

    ret_disk_t d;
    ck_assert_int_eq(ret_disk_read(&g_cfg, g_idx, 0, &d), VG_OK);
    ck_assert_int_eq(d.capacity_bytes, 20000);
    ck_assert_int_eq(d.free_bytes, 10000);
    ck_assert_int_eq(d.reserve_bytes, 2000);
    ck_assert_int_eq(ret_disk_read(&g_cfg, g_idx, 9500, &d), VG_OK);
    ck_assert_int_eq(d.free_bytes, 500);

    ret_sweep_result_t res;
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, NOW_US, 0, &res), VG_OK);
    ck_assert_uint_eq(res.deleted, 0);
    ck_assert_int_eq(res.stop_recording, 0);

    /* A large segment being written: 1500 short, two oldest go. */
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, NOW_US, 9500, &res), VG_OK);
    ck_assert_uint_eq(res.deleted, 2);
    ck_assert_int_eq(res.freed_bytes, 2000);
    ck_assert_int_eq(res.stop_recording, 0);
    ck_assert(!file_exists(&s[0]) && !file_exists(&s[1]));
    for (int k = 2; k < 10; k++)
        ck_assert(file_exists(&s[k]) && row_exists(&s[k]));
    ck_assert_int_eq(total_bytes(), 8000);
    assert_reconciled();
}
END_TEST

/* ---- the two-phase delete (invariant 2) ---- */

START_TEST(test_execute_two_phase)
{
    g_cfg.retention.min_days = 30;
    g_cfg.retention.keep_days = 60;
    add_source("cam-a", VG_SOURCE_VIDEO, 0);
    add_source("cam-b", VG_SOURCE_AUDIO, 0);
    idx_segment_t a62 = seg_aged("cam-a", 62, 1000);
    idx_segment_t a61 = seg_aged("cam-a", 61, 1100);
    idx_segment_t b63 = seg_aged("cam-b", 63, 1200);
    idx_segment_t a40 = seg_aged("cam-a", 40, 1300);
    idx_segment_t a1 = seg_aged("cam-a", 1, 1400);
    idx_segment_t b1 = seg_aged("cam-b", 1, 1500);
    ck_assert_int_eq(total_bytes(), 7500);

    /* Age frees 3300; 500 more are wanted: a40 goes for pressure. */
    ret_disk_t disk = disk_short_by(3300 + 500);
    ret_plan_t plan;
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 0, &plan), VG_OK);
    ck_assert_uint_eq(plan.n, 4);
    ck_assert_int_eq(ret_execute(g_idx, g_dir, &plan, NOW_US), VG_OK);
    ret_plan_free(&plan);

    const idx_segment_t *gone[] = {&a62, &a61, &b63, &a40};
    for (size_t i = 0; i < 4; i++) {
        ck_assert_msg(!file_exists(gone[i]), "%s still on disk", gone[i]->path);
        ck_assert_msg(!row_exists(gone[i]), "%s still indexed", gone[i]->path);
    }
    ck_assert(file_exists(&a1) && row_exists(&a1));
    ck_assert(file_exists(&b1) && row_exists(&b1));
    ck_assert_uint_eq(count_deleting(), 0);
    ck_assert_int_eq(total_bytes(), 1400 + 1500);

    /* One run per reason, one row per run and source. */
    idx_destruction_row_t *log = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_destruction_log(g_idx, NOW_US, NOW_US + 1, &log, &n), VG_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(log[0].reason, "age");
    ck_assert_str_eq(log[0].source, "cam-a");
    ck_assert_int_eq(log[0].segments, 2);
    ck_assert_int_eq(log[0].bytes, 2100);
    ck_assert_int_eq(log[0].from_us, a62.start_us);
    ck_assert_int_eq(log[0].to_us, a61.end_us);
    ck_assert_int_eq(log[0].at_us, NOW_US);
    ck_assert_str_eq(log[1].reason, "age");
    ck_assert_str_eq(log[1].source, "cam-b");
    ck_assert_int_eq(log[1].run_id, log[0].run_id);
    ck_assert_int_eq(log[1].segments, 1);
    ck_assert_int_eq(log[1].bytes, 1200);
    ck_assert_int_eq(log[1].from_us, b63.start_us);
    ck_assert_int_eq(log[1].to_us, b63.end_us);
    ck_assert_str_eq(log[2].reason, "disk_pressure");
    ck_assert_str_eq(log[2].source, "cam-a");
    ck_assert_int_ne(log[2].run_id, log[0].run_id);
    ck_assert_int_eq(log[2].segments, 1);
    ck_assert_int_eq(log[2].bytes, 1300);
    int64_t age_run = log[0].run_id, pressure_run = log[2].run_id;
    free(log);
    /* Outside the window: nothing. */
    ck_assert_int_eq(idx_destruction_log(g_idx, NOW_US + 1, NOW_US + 2, &log, &n), VG_OK);
    ck_assert_uint_eq(n, 0);
    free(log);

    idx_destroyed_segment_t *ds = NULL;
    ck_assert_int_eq(idx_destruction_segments(g_idx, age_run, &ds, &n), VG_OK);
    ck_assert_uint_eq(n, 3);
    const idx_segment_t *by_start[] = {&b63, &a62, &a61};
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(ds[i].segment_id, by_start[i]->id);
        ck_assert_str_eq(ds[i].source, by_start[i]->source);
        ck_assert_str_eq(ds[i].sha256, by_start[i]->sha256);
        ck_assert_int_eq(ds[i].start_us, by_start[i]->start_us);
        ck_assert_int_eq(ds[i].end_us, by_start[i]->end_us);
        ck_assert_int_eq(ds[i].bytes, by_start[i]->bytes);
    }
    free(ds);
    ck_assert_int_eq(idx_destruction_segments(g_idx, pressure_run, &ds, &n), VG_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(ds[0].segment_id, a40.id);
    ck_assert_str_eq(ds[0].sha256, a40.sha256);
    free(ds);

    /* Executing a stale plan (rows already gone) records nothing. */
    ret_plan_t stale = {0};
    stale.victims = vg_malloc(sizeof(*stale.victims));
    stale.victims[0].seg = a62;
    stale.victims[0].reason = RET_AGE;
    stale.n = 1;
    stale.floor_end_us = NOW_US - DAYS(60);
    ck_assert_int_eq(ret_execute(g_idx, g_dir, &stale, NOW_US + 5), VG_OK);
    ret_plan_free(&stale);
    ck_assert_int_eq(idx_destruction_log(g_idx, NOW_US + 5, NOW_US + 6, &log, &n), VG_OK);
    ck_assert_uint_eq(n, 0);
    free(log);

    assert_reconciled();
}
END_TEST

/* Three old segments of cam-a marked by phase one, as a crash would leave. */
static void mark_three(idx_segment_t s[3], int64_t *run_id)
{
    add_source("cam-a", VG_SOURCE_VIDEO, 0);
    seg_aged("cam-a", 1, 900); /* young, stays */
    for (int k = 0; k < 3; k++)
        s[k] = seg_aged("cam-a", 70 - k, 1000 + k);
    ck_assert_int_eq(idx_record_destruction(g_idx, NOW_US, "age", s, 3, INT64_MAX, NULL, run_id), VG_OK);
    ck_assert_int_gt(*run_id, 0);
}

START_TEST(test_interrupted_after_mark)
{
    idx_segment_t s[3];
    int64_t run = 0;
    mark_three(s, &run);

    /* Marked rows are invisible to queries but still own their paths. */
    ck_assert_uint_eq(count_in_range("cam-a"), 1);
    idx_segment_t *all = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_segments_all(g_idx, &all, &n), VG_OK);
    ck_assert_uint_eq(n, 1);
    free(all);
    for (int k = 0; k < 3; k++)
        ck_assert(file_exists(&s[k]) && row_exists(&s[k]));
    ck_assert_uint_eq(count_deleting(), 3);
    assert_reconciled();

    /* Marking them again writes no second (empty) record. */
    int64_t again = -1;
    ck_assert_int_eq(idx_record_destruction(g_idx, NOW_US + 1, "age", s, 3, INT64_MAX, NULL, &again), VG_OK);
    ck_assert_int_eq(again, 0);
    idx_destruction_row_t *log = NULL;
    ck_assert_int_eq(idx_destruction_log(g_idx, 0, INT64_MAX, &log, &n), VG_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(log[0].run_id, run);
    ck_assert_int_eq(log[0].segments, 3);
    free(log);

    /* A sweep of a restarted vigild would not plan them again. */
    reopen();
    ret_disk_t disk = disk_roomy();
    ret_plan_t plan;
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 0, &plan), VG_OK);
    ck_assert_uint_eq(plan.n, 0);
    ret_plan_free(&plan);

    size_t finished = 99;
    ck_assert_int_eq(ret_finish_pending(g_idx, g_dir, NOW_US, 1, &finished), VG_OK);
    ck_assert_uint_eq(finished, 3);
    for (int k = 0; k < 3; k++)
        ck_assert(!file_exists(&s[k]) && !row_exists(&s[k]));
    ck_assert_uint_eq(count_deleting(), 0);
    ck_assert_int_eq(total_bytes(), 900);
    assert_reconciled();

    /* The record outlives the rows. */
    idx_destroyed_segment_t *ds = NULL;
    ck_assert_int_eq(idx_destruction_segments(g_idx, run, &ds, &n), VG_OK);
    ck_assert_uint_eq(n, 3);
    free(ds);
}
END_TEST

START_TEST(test_interrupted_mid_unlink)
{
    idx_segment_t s[3];
    int64_t run = 0;
    mark_three(s, &run);
    /* The crash came after two of the three removals (each segment has its
     * own day, so those day directories went as well). */
    remove_file_and_empty_day(&s[0]);
    remove_file_and_empty_day(&s[2]);
    assert_reconciled();

    size_t finished = 99;
    ck_assert_int_eq(ret_finish_pending(g_idx, g_dir, NOW_US, 1, &finished), VG_OK);
    ck_assert_uint_eq(finished, 3);
    for (int k = 0; k < 3; k++)
        ck_assert(!file_exists(&s[k]) && !row_exists(&s[k]));
    ck_assert_uint_eq(count_deleting(), 0);
    assert_reconciled();

    /* Every file gone but the rows still there: the same. */
    idx_segment_t more[2];
    more[0] = seg_aged("cam-a", 80, 500);
    more[1] = seg_aged("cam-a", 81, 600);
    int64_t run2 = 0;
    ck_assert_int_eq(idx_record_destruction(g_idx, NOW_US, "age", more, 2, INT64_MAX, NULL, &run2), VG_OK);
    remove_file(&more[0]);
    remove_file(&more[1]);
    /* ret_sweep finishes what a crash left before planning anything. */
    g_cfg.retention.capacity_bytes = 1LL << 30;
    g_cfg.retention.keep_days = 90;
    g_cfg.retention.min_days = 90;
    ret_sweep_result_t res;
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, NOW_US, 0, &res), VG_OK);
    ck_assert_uint_eq(res.deleted, 0);
    ck_assert_uint_eq(count_deleting(), 0);
    ck_assert(!row_exists(&more[0]) && !row_exists(&more[1]));
    assert_reconciled();
}
END_TEST

START_TEST(test_finish_pending_noop)
{
    add_source("cam-a", VG_SOURCE_VIDEO, 0);
    idx_segment_t s[3];
    for (int k = 0; k < 3; k++)
        s[k] = seg_aged("cam-a", 70 - k, 1000);
    size_t finished = 99;
    ck_assert_int_eq(ret_finish_pending(g_idx, g_dir, NOW_US, 1, &finished), VG_OK);
    ck_assert_uint_eq(finished, 0);
    ck_assert_int_eq(ret_finish_pending(g_idx, g_dir, NOW_US, 1, NULL), VG_OK);
    for (int k = 0; k < 3; k++)
        ck_assert(file_exists(&s[k]) && row_exists(&s[k]));
    ck_assert_uint_eq(count_in_range("cam-a"), 3);
    idx_destruction_row_t *log = NULL;
    size_t n = 99;
    ck_assert_int_eq(idx_destruction_log(g_idx, 0, INT64_MAX, &log, &n), VG_OK);
    ck_assert_uint_eq(n, 0);
    free(log);
    assert_reconciled();
}
END_TEST

/* The failures noted on marked rows, by path. */
static int failure_of(const idx_segment_t *seg, idx_delete_failure_t *out)
{
    idx_delete_failure_t *f = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_delete_failures(g_idx, &f, &n), VG_OK);
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(f[i].seg.path, seg->path) == 0) {
            found = 1;
            if (out)
                *out = f[i];
        }
    }
    free(f);
    return found;
}

/* One file that cannot be removed (a directory stands where it should be:
 * EISDIR) is skipped and reported; the segments around it are deleted, its
 * row stays marked (invariant 2), it is not retried before its time, and
 * later sweeps and disk pressure go on past it (invariant 9). */
START_TEST(test_execute_unlink_failure_keeps_marked)
{
    add_source("cam-a", VG_SOURCE_VIDEO, 0);
    idx_segment_t s0 = seg_aged("cam-a", 70, 1000);
    idx_segment_t s1 = put_seg("cam-a", NOW_US - DAYS(69) - MIN_US, NOW_US - DAYS(69), 1000, 0);
    idx_segment_t s2 = seg_aged("cam-a", 68, 1000);
    idx_segment_t young = seg_aged("cam-a", 10, 1000);
    /* Something unlink(2) refuses stands where s1's file should be. */
    char *abs = abs_path(s1.path);
    ck_assert_int_eq(vg_mkdir_p(abs), VG_OK);
    char *inner = vg_asprintf("%s/x", abs);
    int fd = open(inner, O_CREAT | O_WRONLY | O_CLOEXEC, 0640);
    ck_assert_int_ge(fd, 0);
    close(fd);

    ret_disk_t disk = disk_roomy();
    ret_plan_t plan;
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 0, &plan), VG_OK);
    ck_assert_uint_eq(plan.n, 3);
    ck_assert_int_eq(ret_execute(g_idx, g_dir, &plan, NOW_US), VG_OK);
    ret_plan_free(&plan);
    /* The others went; the bad one keeps its row, marked, with the reason. */
    ck_assert(!row_exists(&s0) && !file_exists(&s0));
    ck_assert(!row_exists(&s2) && !file_exists(&s2));
    ck_assert(row_exists(&s1));
    ck_assert_uint_eq(count_deleting(), 1);
    ck_assert_uint_eq(count_in_range("cam-a"), 1); /* young */
    idx_delete_failure_t f;
    ck_assert(failure_of(&s1, &f));
    ck_assert_str_eq(f.error, strerror(EISDIR));
    ck_assert_int_eq(f.retry_us, NOW_US + RET_DELETE_RETRY_US);
    idx_alarm_t a;
    ck_assert(alarm_active("delete_failed", &a));
    ck_assert_ptr_nonnull(strstr(a.message, s1.path));
    ck_assert_str_eq(a.sources, "cam-a");

    /* Not due yet: a sweep passes it over without touching it, and the age
     * sweep goes on past it. */
    idx_segment_t s3 = seg_aged("cam-a", 67, 1000);
    g_cfg.retention.capacity_bytes = 1LL << 30;
    ret_sweep_result_t res;
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, NOW_US + MIN_US, 0, &res), VG_OK);
    ck_assert_uint_eq(res.deleted, 1);
    ck_assert(!row_exists(&s3) && !file_exists(&s3));
    ck_assert(row_exists(&s1) && failure_of(&s1, NULL));

    /* Disk pressure frees other files although the oldest cannot go. */
    g_cfg.retention.capacity_bytes = total_bytes() + 100;
    g_cfg.retention.reserve_percent = 50;
    g_cfg.retention.on_full = VG_ON_FULL_OVERWRITE;
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, NOW_US + 2 * MIN_US, 0, &res), VG_OK);
    ck_assert_uint_ge(res.deleted, 1);
    ck_assert(!row_exists(&young) && !file_exists(&young));
    ck_assert(row_exists(&s1));
    g_cfg.retention.capacity_bytes = 1LL << 30;
    g_cfg.retention.reserve_percent = 10;

    /* Due again, still failing: the row stays, the next try moves on. */
    size_t finished = 99;
    int64_t later = NOW_US + RET_DELETE_RETRY_US;
    ck_assert_int_eq(ret_finish_pending(g_idx, g_dir, later, 0, &finished), VG_OK);
    ck_assert_uint_eq(finished, 0);
    ck_assert(failure_of(&s1, &f));
    ck_assert_int_eq(f.retry_us, later + RET_DELETE_RETRY_US);
    ck_assert_uint_eq(count_deleting(), 1);

    /* Once the obstacle is gone the next attempt completes and the alarm
     * clears. */
    ck_assert_int_eq(unlink(inner), 0);
    ck_assert_int_eq(rmdir(abs), 0);
    ck_assert_int_eq(ret_finish_pending(g_idx, g_dir, later + 1, 0, &finished), VG_OK);
    ck_assert_uint_eq(finished, 0); /* not due before its retry time */
    ck_assert_int_eq(ret_finish_pending(g_idx, g_dir, later, 1, &finished), VG_OK);
    ck_assert_uint_eq(finished, 1); /* at startup every one is tried */
    ck_assert(!row_exists(&s1));
    ck_assert_uint_eq(count_deleting(), 0);
    ck_assert(!alarm_active("delete_failed", NULL));
    free(inner);
    free(abs);
    assert_reconciled();
}
END_TEST

/* Invariant 3 where the deletion is decided: a hold added after the plan
 * was made (through another connection, as the HTTP API would) protects
 * its segments when the plan is executed; so does the floor. */
START_TEST(test_hold_added_after_plan_wins)
{
    add_source("cam-a", VG_SOURCE_VIDEO, 0);
    idx_segment_t s0 = seg_aged("cam-a", 80, 1000);
    idx_segment_t s1 = seg_aged("cam-a", 75, 1000);
    idx_segment_t s2 = seg_aged("cam-a", 70, 1000);
    ret_disk_t disk = disk_roomy();
    ret_plan_t plan;
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 0, &plan), VG_OK);
    ck_assert_uint_eq(plan.n, 3);

    idx_t *other = NULL;
    ck_assert_int_eq(idx_open(g_db, 0, &other), VG_OK);
    idx_hold_t h;
    memset(&h, 0, sizeof(h));
    snprintf(h.case_no, sizeof(h.case_no), "CASE-RACE");
    snprintf(h.reason, sizeof(h.reason), "complaint filed while the sweep ran");
    snprintf(h.created_by, sizeof(h.created_by), "investigator");
    h.created_us = NOW_US;
    h.from_us = s1.start_us + SEC_US;
    h.to_us = s1.end_us - SEC_US;
    const char *const srcs[] = {"cam-a"};
    ck_assert_int_eq(idx_hold_add(other, &h, srcs, 1), VG_OK);
    idx_close(other);

    ck_assert_int_eq(ret_execute(g_idx, g_dir, &plan, NOW_US), VG_OK);
    ret_plan_free(&plan);
    ck_assert(!row_exists(&s0) && !row_exists(&s2));
    ck_assert(row_exists(&s1) && file_exists(&s1));
    ck_assert_uint_eq(count_deleting(), 0);
    ck_assert_uint_eq(count_in_range("cam-a"), 1);
    /* The destruction record names only what went. */
    idx_destruction_row_t *log = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_destruction_log(g_idx, 0, INT64_MAX, &log, &n), VG_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(log[0].segments, 2);
    idx_destroyed_segment_t *ds = NULL;
    size_t nd = 0;
    ck_assert_int_eq(idx_destruction_segments(g_idx, log[0].run_id, &ds, &nd), VG_OK);
    ck_assert_uint_eq(nd, 2);
    for (size_t i = 0; i < nd; i++)
        ck_assert_int_ne(ds[i].segment_id, s1.id);
    free(ds);
    free(log);

    /* A plan whose age victim is now under the floor (made with a floor
     * that has since moved): the mark refuses it. */
    idx_segment_t young = seg_aged("cam-a", 30, 1000);
    ret_plan_t stale = {0};
    stale.victims = vg_malloc(sizeof(*stale.victims));
    stale.victims[0].seg = young;
    stale.victims[0].reason = RET_AGE;
    stale.n = 1;
    stale.floor_end_us = NOW_US - DAYS(60);
    ck_assert_int_eq(ret_execute(g_idx, g_dir, &stale, NOW_US), VG_OK);
    ck_assert(row_exists(&young) && file_exists(&young));
    ck_assert_uint_eq(count_deleting(), 0);
    /* Overwrite is the one reason allowed under it. */
    stale.victims[0].reason = RET_OVERWRITE;
    ck_assert_int_eq(ret_execute(g_idx, g_dir, &stale, NOW_US), VG_OK);
    ck_assert(!row_exists(&young) && !file_exists(&young));
    ret_plan_free(&stale);
    assert_reconciled();
}
END_TEST

/* ---- wall-clock jumps ---- */

/* A forward jump of more than an hour between sweeps suspends the age
 * sweep (and pressure treats everything as under the floor) until the
 * clock is back or an admin accepts it. */
START_TEST(test_clock_jump_suspends_age)
{
    add_source("cam-a", VG_SOURCE_VIDEO, 0);
    g_cfg.retention.capacity_bytes = 1LL << 30;
    idx_segment_t young = seg_aged("cam-a", 1, 1000);
    idx_segment_t mid = seg_aged("cam-a", 59.5, 1000);
    ret_clock_guard_t g = {0};
    int64_t mono = 5 * HOUR_US;
    ck_assert_int_eq(ret_clock_check(&g, g_idx, NOW_US, mono), VG_OK);
    ret_sweep_result_t res;
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, NOW_US, 0, &res), VG_OK);
    ck_assert_uint_eq(res.deleted, 0);

    /* A minute later by the monotonic clock, a year later by the wall. */
    mono += MIN_US;
    int64_t wall = NOW_US + MIN_US + DAYS(365);
    ck_assert_int_eq(ret_clock_check(&g, g_idx, wall, mono), VG_OK);
    idx_alarm_t a;
    ck_assert(alarm_active("clock_jump", &a));
    ck_assert_ptr_nonnull(strstr(a.message, "vigilctl clock accept"));
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, wall, 0, &res), VG_OK);
    ck_assert(res.age_suspended);
    ck_assert_uint_eq(res.deleted, 0);
    ck_assert(row_exists(&young) && row_exists(&mid));
    /* A second sweep at the bad time changes nothing either, and neither
     * does a vigild restarted meanwhile (a fresh guard). */
    mono += MIN_US;
    wall += MIN_US;
    ck_assert_int_eq(ret_clock_check(&g, g_idx, wall, mono), VG_OK);
    ret_clock_guard_t fresh = {0};
    ck_assert_int_eq(ret_clock_check(&fresh, g_idx, wall, mono), VG_OK);
    ck_assert(alarm_active("clock_jump", NULL));
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, wall, 0, &res), VG_OK);
    ck_assert_uint_eq(res.deleted, 0);

    /* Disk pressure still frees space, but as overwrite below the floor:
     * under on_full=stop it stops recording instead. */
    g_cfg.retention.capacity_bytes = total_bytes() + 100;
    g_cfg.retention.reserve_percent = 50;
    g_cfg.retention.on_full = VG_ON_FULL_STOP;
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, wall, 0, &res), VG_OK);
    ck_assert_uint_eq(res.deleted, 0);
    ck_assert(res.stop_recording);
    ck_assert(row_exists(&mid));
    g_cfg.retention.capacity_bytes = 1LL << 30;
    g_cfg.retention.reserve_percent = 10;

    /* NTP puts it back: the alarm clears and the age sweep resumes. */
    mono += MIN_US;
    wall = NOW_US + 3 * MIN_US;
    ck_assert_int_eq(ret_clock_check(&g, g_idx, wall, mono), VG_OK);
    ck_assert(!alarm_active("clock_jump", NULL));
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, wall, 0, &res), VG_OK);
    ck_assert(!res.age_suspended);
    ck_assert(row_exists(&mid));

    /* Another jump, this time real (the clock had been wrong): the admin
     * accepts it and the guard trusts the new time from then on. */
    mono += MIN_US;
    wall += MIN_US + DAYS(1);
    ck_assert_int_eq(ret_clock_check(&g, g_idx, wall, mono), VG_OK);
    ck_assert(alarm_active("clock_jump", NULL));
    int cleared = 0;
    ck_assert_int_eq(ret_clock_accept(g_idx, wall, &cleared), VG_OK);
    ck_assert(cleared);
    mono += MIN_US;
    wall += MIN_US;
    ck_assert_int_eq(ret_clock_check(&g, g_idx, wall, mono), VG_OK);
    ck_assert(!alarm_active("clock_jump", NULL));
    ck_assert_int_eq(ret_sweep(g_idx, &g_cfg, wall, 0, &res), VG_OK);
    ck_assert_uint_eq(res.deleted, 1); /* mid is 60.5 days old now */
    ck_assert(!row_exists(&mid) && row_exists(&young));
    /* Slews and a backward step raise nothing. */
    mono += MIN_US;
    wall += MIN_US - 30 * MIN_US;
    ck_assert_int_eq(ret_clock_check(&g, g_idx, wall, mono), VG_OK);
    mono += MIN_US;
    wall += MIN_US + 50 * MIN_US;
    ck_assert_int_eq(ret_clock_check(&g, g_idx, wall, mono), VG_OK);
    ck_assert(!alarm_active("clock_jump", NULL));
}
END_TEST

/* ---- cost ---- */

START_TEST(test_sweep_many_segments)
{
    g_cfg.retention.min_days = 60;
    g_cfg.retention.keep_days = 60;
    static const char *const names[] = {"cam-a", "cam-b", "cam-c", "cam-d"};
    for (int s = 0; s < 4; s++)
        add_source(names[s], VG_SOURCE_VIDEO, 0);
    ck_assert_int_eq(idx_begin(g_idx), VG_OK);
    for (int k = 0; k < 5000; k++)
        for (int s = 0; s < 4; s++) {
            int64_t end = NOW_US - (int64_t)k * MIN_US - s * SEC_US;
            put_seg(names[s], end - MIN_US, end, 1000, 0);
        }
    ck_assert_int_eq(idx_commit(g_idx), VG_OK);

    ret_disk_t disk = disk_roomy();
    ret_plan_t plan;
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 0, &plan), VG_OK);
    ck_assert_uint_eq(plan.n, 0);
    ck_assert_int_eq(plan.stop_recording, 0);
    ret_plan_free(&plan);

    /* One expired row among them is found, and only it. */
    idx_segment_t old = put_seg("cam-c", NOW_US - DAYS(61) - MIN_US, NOW_US - DAYS(61), 1000, 0);
    ck_assert_int_eq(ret_plan(g_idx, &g_cfg, NOW_US, &disk, 0, &plan), VG_OK);
    ck_assert_uint_eq(plan.n, 1);
    ck_assert_int_eq(plan.victims[0].seg.id, old.id);
    ret_plan_free(&plan);
    ck_assert_int_eq(total_bytes(), 20001LL * 1000);
}
END_TEST

/* ---- figures and forecast ---- */

#define MB 1000000LL

static const ret_source_figures_t *figures_of(const ret_storage_t *st, const char *source)
{
    for (size_t i = 0; i < st->n_sources; i++)
        if (strcmp(st->sources[i].source, source) == 0)
            return &st->sources[i];
    ck_abort_msg("no figures for %s", source);
    return NULL;
}

/* The alarm of this kind naming exactly this source, or NULL. */
static const ret_alarm_t *storage_alarm(const ret_storage_t *st, const char *kind,
                                        const char *source)
{
    for (size_t i = 0; i < st->n_alarms; i++)
        if (strcmp(st->alarms[i].kind, kind) == 0 && strcmp(st->alarms[i].sources, source) == 0)
            return &st->alarms[i];
    return NULL;
}

static size_t count_alarms(const ret_storage_t *st, const char *kind)
{
    size_t n = 0;
    for (size_t i = 0; i < st->n_alarms; i++)
        n += strcmp(st->alarms[i].kind, kind) == 0;
    return n;
}

START_TEST(test_storage_figures_and_forecast)
{
    g_cfg.retention.min_days = 5;
    g_cfg.retention.keep_days = 90;
    vg_source_config_t *ca = add_source("cam-a", VG_SOURCE_VIDEO, 0);
    vg_source_config_t *cb = add_source("cam-b", VG_SOURCE_AUDIO, 0);
    add_source("cam-c", VG_SOURCE_VIDEO, 0); /* nothing recorded */

    /* The last day: four 6-hour segments of 250 kB per source, 1 MB/day. */
    for (int i = 0; i < 4; i++) {
        int64_t start = NOW_US - RET_DAY_US + i * 6 * HOUR_US;
        put_seg("cam-a", start, start + 6 * HOUR_US, 250000, 1);
        put_seg("cam-b", start, start + 6 * HOUR_US, 250000, 1);
    }
    /* Older data outside the rate window. */
    idx_segment_t a_old = put_seg("cam-a", NOW_US - DAYS(5), NOW_US - DAYS(5) + 6 * HOUR_US,
                                  400000, 1);
    idx_segment_t b_old = put_seg("cam-b", NOW_US - DAYS(3), NOW_US - DAYS(3) + 6 * HOUR_US,
                                  100000, 1);
    /* b_old is held (a hold inside it); a_old's hold has expired. */
    add_hold("cam-b", b_old.start_us + HOUR_US, b_old.start_us + 2 * HOUR_US, 0);
    add_hold("cam-a", a_old.start_us, a_old.end_us, NOW_US - 1);
    /* A persistent alarm is reported alongside the forecast. */
    ck_assert_int_eq(idx_alarm_raise(g_idx, "archive_below_floor", "critical", "cam-a",
                                     "test", NOW_US - HOUR_US),
                     VG_OK);

    /* usable = free + used - reserve - held = 60 MB */
    const int64_t used = 1400000 + 1100000, held = 100000, reserve = 50000;
    ret_disk_t disk = {.capacity_bytes = 1000 * MB, .reserve_bytes = reserve};
    disk.free_bytes = 60 * MB + reserve + held - used;

    ret_storage_t st;
    ck_assert_int_eq(ret_storage(g_idx, &g_cfg, NOW_US, &disk, &st), VG_OK);
    ck_assert_int_eq(st.disk.capacity_bytes, disk.capacity_bytes);
    ck_assert_int_eq(st.disk.free_bytes, disk.free_bytes);
    ck_assert_int_eq(st.disk.reserve_bytes, disk.reserve_bytes);
    ck_assert_uint_eq(st.n_sources, 3);
    const ret_source_figures_t *fa = figures_of(&st, "cam-a");
    const ret_source_figures_t *fb = figures_of(&st, "cam-b");
    const ret_source_figures_t *fc = figures_of(&st, "cam-c");
    ck_assert_str_eq(fa->kind, "video");
    ck_assert_str_eq(fb->kind, "audio");
    ck_assert_int_eq(fa->keep_days, 90);
    ck_assert_int_eq(fa->segments, 5);
    ck_assert_int_eq(fa->bytes, 1400000);
    ck_assert_int_eq(fa->oldest_us, a_old.start_us);
    ck_assert_int_eq(fa->newest_us, NOW_US);
    ck_assert_double_eq_tol(fa->depth_days, 5.0, 1e-9);
    ck_assert_double_eq_tol(fa->bytes_per_day, 1.0 * MB, 1e-3);
    ck_assert_int_eq(fa->held_bytes, 0);
    ck_assert_int_eq(fb->segments, 5);
    ck_assert_int_eq(fb->bytes, 1100000);
    ck_assert_int_eq(fb->oldest_us, b_old.start_us);
    ck_assert_int_eq(fb->newest_us, NOW_US);
    ck_assert_double_eq_tol(fb->depth_days, 3.0, 1e-9);
    ck_assert_double_eq_tol(fb->bytes_per_day, 1.0 * MB, 1e-3);
    ck_assert_int_eq(fb->held_bytes, 100000);
    ck_assert_int_eq(fc->segments, 0);
    ck_assert_int_eq(fc->bytes, 0);
    ck_assert_int_eq(fc->oldest_us, 0);
    ck_assert_int_eq(fc->newest_us, 0);
    ck_assert_double_eq_tol(fc->depth_days, 0, 1e-12);
    ck_assert_double_eq_tol(fc->bytes_per_day, 0, 1e-12);
    ret_storage_free(&st);
    ck_assert_ptr_null(st.sources);
    ck_assert_ptr_null(st.alarms);

    /* 1: both keep 90: one depth D with 2 MB/day * D = 60 MB: 30 days,
     * below keep_days, above the floor. */
    const double d = 30.0;
    ck_assert_int_eq(ret_storage(g_idx, &g_cfg, NOW_US, &disk, &st), VG_OK);
    fa = figures_of(&st, "cam-a");
    fb = figures_of(&st, "cam-b");
    fc = figures_of(&st, "cam-c");
    ck_assert_double_eq_tol(fa->projected_days, d, 1e-6);
    ck_assert_double_eq_tol(fb->projected_days, d, 1e-6);
    ck_assert_double_eq_tol(fc->projected_days, 90, 1e-9);
    ck_assert_ptr_nonnull(storage_alarm(&st, "forecast_below_keep", "cam-a"));
    ck_assert_ptr_nonnull(storage_alarm(&st, "forecast_below_keep", "cam-b"));
    ck_assert_str_eq(storage_alarm(&st, "forecast_below_keep", "cam-a")->severity, "warning");
    ck_assert_uint_eq(count_alarms(&st, "forecast_below_keep"), 2);
    ck_assert_uint_eq(count_alarms(&st, "forecast_below_floor"), 0);
    ck_assert_ptr_nonnull(storage_alarm(&st, "archive_below_floor", "cam-a"));
    ck_assert_uint_eq(st.n_alarms, 3);
    ret_storage_free(&st);

    /* 2: cam-a keeps 10 days: it settles at 10 (10 MB), cam-b gets the
     * other 50 MB. */
    ca->keep_days = 10;
    ck_assert_int_eq(ret_storage(g_idx, &g_cfg, NOW_US, &disk, &st), VG_OK);
    fa = figures_of(&st, "cam-a");
    fb = figures_of(&st, "cam-b");
    ck_assert_int_eq(fa->keep_days, 10);
    ck_assert_double_eq_tol(fa->projected_days, 10, 1e-6);
    ck_assert_double_eq_tol(fb->projected_days, 50, 1e-6);
    ck_assert_ptr_null(storage_alarm(&st, "forecast_below_keep", "cam-a"));
    ck_assert_ptr_nonnull(storage_alarm(&st, "forecast_below_keep", "cam-b"));
    ck_assert_uint_eq(count_alarms(&st, "forecast_below_floor"), 0);
    ret_storage_free(&st);

    /* 3: cam-b keeps 40: capped by its keep_days, not the disk. */
    cb->keep_days = 40;
    ck_assert_int_eq(ret_storage(g_idx, &g_cfg, NOW_US, &disk, &st), VG_OK);
    ck_assert_double_eq_tol(figures_of(&st, "cam-a")->projected_days, 10, 1e-6);
    ck_assert_double_eq_tol(figures_of(&st, "cam-b")->projected_days, 40, 1e-6);
    ck_assert_uint_eq(count_alarms(&st, "forecast_below_keep"), 0);
    ck_assert_uint_eq(count_alarms(&st, "forecast_below_floor"), 0);
    ret_storage_free(&st);

    /* 4: back to 90 each with a 40-day floor: below the floor, critical. */
    ca->keep_days = 0;
    cb->keep_days = 0;
    g_cfg.retention.min_days = 40;
    ck_assert_int_eq(ret_storage(g_idx, &g_cfg, NOW_US, &disk, &st), VG_OK);
    ck_assert_double_eq_tol(figures_of(&st, "cam-a")->projected_days, d, 1e-6);
    const ret_alarm_t *fl = storage_alarm(&st, "forecast_below_floor", "cam-a");
    ck_assert_ptr_nonnull(fl);
    ck_assert_str_eq(fl->severity, "critical");
    ck_assert_ptr_nonnull(storage_alarm(&st, "forecast_below_floor", "cam-b"));
    ck_assert_ptr_null(storage_alarm(&st, "forecast_below_floor", "cam-c"));
    ck_assert_uint_eq(count_alarms(&st, "forecast_below_keep"), 0);
    ret_storage_free(&st);

    /* 5: holds and the reserve take more than there is: a depth of zero,
     * not a negative one. */
    disk.free_bytes = reserve + held - used - 1 * MB;
    ck_assert_int_eq(ret_storage(g_idx, &g_cfg, NOW_US, &disk, &st), VG_OK);
    ck_assert_double_eq_tol(figures_of(&st, "cam-a")->projected_days, 0, 1e-9);
    ret_storage_free(&st);
}
END_TEST

START_TEST(test_forecast_hand_arithmetic)
{
    /* The brief's numbers: two sources at 1 GB/day on 60 GB usable settle
     * at 30 days; one keeping 10 days leaves the other 50. Sparse files
     * keep the real sizes without the disk use. */
    g_cfg.retention.min_days = 10;
    g_cfg.retention.keep_days = 90;
    const int64_t GB = 1000 * MB;
    vg_source_config_t *ca = add_source("cam-a", VG_SOURCE_VIDEO, 0);
    add_source("cam-b", VG_SOURCE_VIDEO, 0);
    for (int i = 0; i < 2; i++) {
        int64_t start = NOW_US - RET_DAY_US + i * 12 * HOUR_US;
        put_seg("cam-a", start, start + 12 * HOUR_US, GB / 2, 1);
        put_seg("cam-b", start, start + 12 * HOUR_US, GB / 2, 1);
    }
    ret_disk_t disk = {.capacity_bytes = 100 * GB, .reserve_bytes = 5 * GB};
    disk.free_bytes = 60 * GB + disk.reserve_bytes - 2 * GB; /* usable 60 GB */

    ret_storage_t st;
    ck_assert_int_eq(ret_storage(g_idx, &g_cfg, NOW_US, &disk, &st), VG_OK);
    ck_assert_double_eq_tol(figures_of(&st, "cam-a")->bytes_per_day, (double)GB, 1e-3);
    ck_assert_double_eq_tol(figures_of(&st, "cam-a")->projected_days, 30, 1e-9);
    ck_assert_double_eq_tol(figures_of(&st, "cam-b")->projected_days, 30, 1e-9);
    ck_assert_uint_eq(count_alarms(&st, "forecast_below_keep"), 2);
    ck_assert_uint_eq(count_alarms(&st, "forecast_below_floor"), 0);
    ret_storage_free(&st);

    ca->keep_days = 10;
    ck_assert_int_eq(ret_storage(g_idx, &g_cfg, NOW_US, &disk, &st), VG_OK);
    ck_assert_double_eq_tol(figures_of(&st, "cam-a")->projected_days, 10, 1e-9);
    ck_assert_double_eq_tol(figures_of(&st, "cam-b")->projected_days, 50, 1e-9);
    ck_assert_uint_eq(count_alarms(&st, "forecast_below_keep"), 1);
    ck_assert_ptr_nonnull(storage_alarm(&st, "forecast_below_keep", "cam-b"));
    ret_storage_free(&st);

    /* 40 GB usable: cam-a still 10, cam-b the remaining 30. */
    disk.free_bytes = 40 * GB + disk.reserve_bytes - 2 * GB;
    ck_assert_int_eq(ret_storage(g_idx, &g_cfg, NOW_US, &disk, &st), VG_OK);
    ck_assert_double_eq_tol(figures_of(&st, "cam-a")->projected_days, 10, 1e-9);
    ck_assert_double_eq_tol(figures_of(&st, "cam-b")->projected_days, 30, 1e-9);
    ret_storage_free(&st);
    /* Too little even for cam-a's 10 days: both share one depth. */
    disk.free_bytes = 10 * GB + disk.reserve_bytes - 2 * GB;
    ck_assert_int_eq(ret_storage(g_idx, &g_cfg, NOW_US, &disk, &st), VG_OK);
    ck_assert_double_eq_tol(figures_of(&st, "cam-a")->projected_days, 5, 1e-9);
    ck_assert_double_eq_tol(figures_of(&st, "cam-b")->projected_days, 5, 1e-9);
    ck_assert_ptr_nonnull(storage_alarm(&st, "forecast_below_floor", "cam-a"));
    ck_assert_ptr_nonnull(storage_alarm(&st, "forecast_below_floor", "cam-b"));
    ret_storage_free(&st);
}
END_TEST

/* ---- migration ---- */

/* Schema version 1 as released (index/index.c, migrations[0]). */
static const char v1_schema[] =
    "CREATE TABLE source (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
    " kind TEXT NOT NULL, max_len_us INTEGER NOT NULL DEFAULT 0);"
    "CREATE TABLE segment (id INTEGER PRIMARY KEY,"
    " source_id INTEGER NOT NULL REFERENCES source(id), start_us INTEGER NOT NULL,"
    " end_us INTEGER NOT NULL, media_us INTEGER NOT NULL, bytes INTEGER NOT NULL,"
    " sha256 TEXT NOT NULL, codecs TEXT NOT NULL, init_bytes INTEGER NOT NULL,"
    " path TEXT NOT NULL UNIQUE, deleting INTEGER NOT NULL DEFAULT 0,"
    " CHECK (end_us >= start_us));"
    "CREATE INDEX segment_source_start ON segment(source_id, start_us);"
    "CREATE INDEX segment_start ON segment(start_us);"
    "CREATE TRIGGER segment_max_len_ins AFTER INSERT ON segment BEGIN"
    " UPDATE source SET max_len_us = NEW.end_us - NEW.start_us"
    " WHERE id = NEW.source_id AND max_len_us < NEW.end_us - NEW.start_us; END;"
    "CREATE TRIGGER segment_max_len_upd AFTER UPDATE OF start_us, end_us, source_id ON segment"
    " BEGIN UPDATE source SET max_len_us = NEW.end_us - NEW.start_us"
    " WHERE id = NEW.source_id AND max_len_us < NEW.end_us - NEW.start_us; END;";

START_TEST(test_migration_from_v1)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/v1.db", g_dir);
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
    char *sql = vg_asprintf(
        "%s"
        "INSERT INTO source(id, name, kind) VALUES (1, 'cam-a', 'video'), (2, 'cam-b', 'audio'),"
        " (3, 'cam-c', 'video');"
        "INSERT INTO segment(source_id, start_us, end_us, media_us, bytes, sha256, codecs,"
        " init_bytes, path) VALUES"
        " (1, %lld, %lld, 60000000, 123456, '%064d', 'h264', 1000, 'media/cam-a/d/1.mp4'),"
        " (1, %lld, %lld, 60000000, 654321, '%064d', 'h264', 1000, 'media/cam-a/d/2.mp4'),"
        " (2, %lld, %lld, 60000000, 1000, '%064d', 'pcm_alaw', 0, 'media/cam-b/d/3.mov');"
        "PRAGMA user_version = 1;",
        v1_schema, (long long)(NOW_US - 2 * MIN_US), (long long)(NOW_US - MIN_US), 1,
        (long long)(NOW_US - MIN_US), (long long)NOW_US, 2, (long long)(NOW_US - MIN_US),
        (long long)NOW_US, 3);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "%s", msg ? msg : "?");
    free(sql);
    sqlite3_close(db);

    idx_t *idx = NULL;
    ck_assert_int_eq(idx_open(path, 0, &idx), VG_OK);
    /* Up to whatever this build knows, which includes v2 (retention). */
    ck_assert_int_ge(idx_code_version(), 2);
    ck_assert_int_eq(idx_schema_version(idx), idx_code_version());
    int64_t total = -1;
    ck_assert_int_eq(idx_total_bytes(idx, &total), VG_OK);
    ck_assert_int_eq(total, 123456 + 654321 + 1000);
    idx_source_stats_t *st = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_source_stats(idx, NOW_US, RET_DAY_US, &st, &n), VG_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(st[0].source, "cam-a");
    ck_assert_int_eq(st[0].bytes, 123456 + 654321);
    ck_assert_int_eq(st[0].segments, 2);
    ck_assert_str_eq(st[1].source, "cam-b");
    ck_assert_int_eq(st[1].bytes, 1000);
    ck_assert_str_eq(st[2].source, "cam-c");
    ck_assert_int_eq(st[2].bytes, 0);
    free(st);

    /* The totals stay right from here on (triggers). */
    idx_segment_t *segs = NULL;
    ck_assert_int_eq(idx_segments_in_range(idx, "cam-a", 0, INT64_MAX, &segs, &n), VG_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(idx_segment_delete(idx, segs[0].id), VG_OK);
    free(segs);
    ck_assert_int_eq(idx_total_bytes(idx, &total), VG_OK);
    ck_assert_int_eq(total, 654321 + 1000);
    idx_close(idx);

    /* Reopening does not migrate (or recount) again. */
    ck_assert_int_eq(idx_open(path, 0, &idx), VG_OK);
    ck_assert_int_eq(idx_schema_version(idx), idx_code_version());
    ck_assert_int_eq(idx_total_bytes(idx, &total), VG_OK);
    ck_assert_int_eq(total, 654321 + 1000);
    /* v2 tables are there and work on the migrated data. */
    idx_hold_t h;
    memset(&h, 0, sizeof(h));
    snprintf(h.case_no, sizeof(h.case_no), "C");
    snprintf(h.reason, sizeof(h.reason), "R");
    h.from_us = 0;
    h.to_us = INT64_MAX;
    const char *const src[] = {"cam-b"};
    ck_assert_int_eq(idx_hold_add(idx, &h, src, 1), VG_OK);
    ck_assert_int_eq(idx_source_stats(idx, NOW_US, RET_DAY_US, &st, &n), VG_OK);
    ck_assert_int_eq(st[1].held_bytes, 1000);
    free(st);
    idx_close(idx);
}
END_TEST

START_TEST(test_total_bytes_tracks_rows)
{
    add_source("cam-a", VG_SOURCE_VIDEO, 0);
    add_source("cam-b", VG_SOURCE_VIDEO, 0);
    ck_assert_int_eq(total_bytes(), 0);
    idx_segment_t a = seg_aged("cam-a", 3, 1234);
    seg_aged("cam-b", 3, 4321);
    ck_assert_int_eq(total_bytes(), 5555);
    ck_assert_int_eq(idx_segment_delete(g_idx, a.id), VG_OK);
    ck_assert_int_eq(total_bytes(), 4321);
    remove_file(&a);
    assert_reconciled();
}
END_TEST

static Suite *retention_suite(void)
{
    Suite *s = suite_create("retention");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_age_floor_and_override);
    tcase_add_test(tc, test_age_cutoff_edge);
    tcase_add_test(tc, test_hold_edges);
    tcase_add_test(tc, test_hold_release_and_expiry);
    tcase_add_test(tc, test_hold_add_validation);
    tcase_add_test(tc, test_pressure_oldest_first_across_sources);
    tcase_add_test(tc, test_pressure_after_age);
    tcase_add_test(tc, test_plan_max_victims);
    tcase_add_test(tc, test_overwrite_below_floor_alarm);
    tcase_add_test(tc, test_stop_on_full);
    tcase_add_test(tc, test_holds_fill_disk);
    tcase_add_test(tc, test_in_progress_counts_as_used);
    tcase_add_test(tc, test_execute_two_phase);
    tcase_add_test(tc, test_interrupted_after_mark);
    tcase_add_test(tc, test_interrupted_mid_unlink);
    tcase_add_test(tc, test_finish_pending_noop);
    tcase_add_test(tc, test_execute_unlink_failure_keeps_marked);
    tcase_add_test(tc, test_hold_added_after_plan_wins);
    tcase_add_test(tc, test_clock_jump_suspends_age);
    tcase_add_test(tc, test_sweep_many_segments);
    tcase_add_test(tc, test_storage_figures_and_forecast);
    tcase_add_test(tc, test_forecast_hand_arithmetic);
    tcase_add_test(tc, test_migration_from_v1);
    tcase_add_test(tc, test_total_bytes_tracks_rows);
    tcase_add_test(tc, test_floor_alarm_keeps_earlier_sources);
    tcase_add_test(tc, test_floor_alarm_source_emptied);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    snprintf(g_base, sizeof(g_base), "/tmp/vigil-test-retention-XXXXXX");
    if (!mkdtemp(g_base)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(retention_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    remove_tree(g_base);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
