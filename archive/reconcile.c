/* Index vs disk: the check vigilctl runs and the recovery vigild runs before
 * it records anything after a crash.
 *
 * Two scopes. The full check pages through every row (bounded memory at
 * 8.64 M rows) and walks every file. The startup repair (opts->recent_us)
 * looks only at what a crash can have touched: per source, the rows and files
 * starting at or after its newest row's start minus recent_us. A crash leaves
 * its damage after the last committed row (the open segment, files whose row
 * was still queued), so older files are neither stat'ed nor opened, and
 * startup costs the same at 8.64 M rows as at 8.
 *
 * DESIGN.md invariant 9: only ENOENT means a file is gone. Any other failure
 * (EACCES, EIO, a directory where the file belongs) keeps the row and the
 * file, is reported as ARC_UNREADABLE and, when repairing, raises the
 * segment_unreadable alarm; the pass goes on with the next item. */
#include "archive.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define PAGE_ROWS 4096
#define DAY_US (86400LL * 1000000LL)
#define ALARM_UNREADABLE "segment_unreadable"

typedef struct {
    const char *data_dir;
    idx_t *idx;
    const arc_reconcile_opts_t *opts;
    int problems;
    int unreadable;
    char first_unreadable[320]; /* "path: reason", for the alarm */
    char first_unreadable_source[64];
    arc_reconcile_counts_t counts;
} reconcile_t;

/* "media/<source>/..." -> source */
static int source_of(const char *rel_path, char *out, size_t size)
{
    if (strncmp(rel_path, "media/", 6) != 0)
        return VG_EINVAL;
    const char *p = rel_path + strlen("media/");
    size_t len = strcspn(p, "/");
    if (len == 0 || len >= size)
        return VG_EINVAL;
    memcpy(out, p, len);
    out[len] = '\0';
    return vg_source_name_valid(out) ? VG_OK : VG_EINVAL;
}

static void report(reconcile_t *r, arc_problem_t p, const char *path, const char *detail)
{
    r->problems++;
    if (p == ARC_UNREADABLE && r->unreadable++ == 0) {
        snprintf(r->first_unreadable, sizeof(r->first_unreadable), "%s: %s", path, detail);
        if (source_of(path, r->first_unreadable_source, sizeof(r->first_unreadable_source)) !=
            VG_OK)
            r->first_unreadable_source[0] = '\0';
    }
    if (r->opts->report)
        r->opts->report(r->opts->ctx, p, path, detail);
}

/* An unverified segment is re-hashed from the disk, not from the page cache
 * that the failed write or fsync left behind: its clean pages are dropped
 * first (best effort: pages still dirty stay, and are then what is read). */
static void drop_cached(const char *abs)
{
    int fd = open(abs, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    close(fd);
}

static void report_unreadable(reconcile_t *r, const char *rel_path, const char *what, int err)
{
    char detail[200];
    snprintf(detail, sizeof(detail), "%s: %s; kept", what, strerror(err));
    vg_err("%s %s", rel_path, detail);
    report(r, ARC_UNREADABLE, rel_path, detail);
}

/* vigilctl check runs beside a recording vigild: retention may have marked
 * the row and unlinked its file since the row was read. Only a row that is
 * still live is a row without a file. */
static int row_still_live(reconcile_t *r, const idx_segment_t *row)
{
    idx_segment_t *rows = NULL;
    size_t n = 0;
    int live = 0;
    if (idx_segments_in_range(r->idx, row->source, row->start_us - 1, row->start_us + 1, &rows,
                              &n) == VG_OK) {
        for (size_t i = 0; i < n; i++)
            live |= rows[i].id == row->id;
    }
    free(rows);
    return live;
}

static int check_row(reconcile_t *r, const idx_segment_t *row)
{
    char *abs = vg_asprintf("%s/%s", r->data_dir, row->path);
    struct stat st;
    char detail[160];
    int rc = VG_OK;
    r->counts.rows_checked++;
    if (stat(abs, &st) != 0) {
        if (errno != ENOENT) {
            /* Unknown is not gone: the row stays (invariant 9). */
            snprintf(detail, sizeof(detail), "segment %lld: cannot stat", (long long)row->id);
            report_unreadable(r, row->path, detail, errno);
            goto cleanup;
        }
        if (!row_still_live(r, row))
            goto cleanup; /* retention took it meanwhile */
        snprintf(detail, sizeof(detail), "segment %lld: file is missing", (long long)row->id);
        report(r, ARC_ROW_WITHOUT_FILE, row->path, detail);
        if (r->opts->repair) {
            vg_warn("index row %lld points at missing %s: dropping the row", (long long)row->id,
                    row->path);
            rc = idx_segment_delete(r->idx, row->id);
        }
    } else if (!S_ISREG(st.st_mode)) {
        snprintf(detail, sizeof(detail), "segment %lld: not a regular file", (long long)row->id);
        report_unreadable(r, row->path, detail, S_ISDIR(st.st_mode) ? EISDIR : EINVAL);
    } else if (st.st_size != row->bytes) {
        snprintf(detail, sizeof(detail), "segment %lld: %lld bytes on disk, %lld in the index",
                 (long long)row->id, (long long)st.st_size, (long long)row->bytes);
        report(r, ARC_SIZE_MISMATCH, row->path, detail);
    } else if (r->opts->deep) {
        char hex[65];
        if (row->unverified)
            drop_cached(abs);
        int hrc = arc_hash_file(abs, hex);
        if (hrc == VG_OK && strcmp(hex, row->sha256) != 0) {
            snprintf(detail, sizeof(detail), "segment %lld: sha256 %s, index says %s",
                     (long long)row->id, hex, row->sha256);
            report(r, ARC_HASH_MISMATCH, row->path, detail);
        } else if (hrc == VG_OK && row->unverified) {
            snprintf(detail, sizeof(detail),
                     "segment %lld: an I/O error hit it while written; re-read from disk, "
                     "it matches its sha256", (long long)row->id);
            report(r, ARC_UNVERIFIED, row->path, detail);
        } else if (hrc == VG_EIO) {
            snprintf(detail, sizeof(detail), "segment %lld: cannot read", (long long)row->id);
            report_unreadable(r, row->path, detail, errno ? errno : EIO);
        }
    } else if (row->unverified) {
        snprintf(detail, sizeof(detail),
                 "segment %lld: an I/O error hit it while written (check --deep re-hashes it)",
                 (long long)row->id);
        report(r, ARC_UNVERIFIED, row->path, detail);
    }
cleanup:
    free(abs);
    return rc;
}

static int index_recovered(reconcile_t *r, const char *rel_path, const arc_file_info_t *info)
{
    idx_segment_t row = {0};
    if (source_of(rel_path, row.source, sizeof(row.source)) != VG_OK)
        return VG_EINVAL;
    int known = 0;
    int rc = idx_source_exists(r->idx, row.source, &known);
    if (rc == VG_OK && !known)
        rc = idx_source_register(r->idx, row.source,
                                 strstr(info->codecs, "h26") || strstr(info->codecs, "hevc")
                                     ? "video" : "audio");
    if (rc != VG_OK)
        return rc;
    row.start_us = info->start_us;
    row.media_us = info->media_us;
    row.end_us = info->start_us + info->media_us;
    row.bytes = info->bytes;
    row.init_bytes = info->init_bytes;
    memcpy(row.sha256, info->sha256, sizeof(row.sha256));
    snprintf(row.codecs, sizeof(row.codecs), "%s", info->codecs);
    snprintf(row.path, sizeof(row.path), "%s", rel_path);
    return idx_segment_insert(r->idx, &row);
}

/* A file with no row after a crash, or whose row the index refused while
 * vigild ran: a playable prefix becomes a row; a file with no complete
 * fragment goes (DESIGN.md invariant 1). Anything else (an I/O error, the
 * index refusing the row) keeps the file for the next pass: only retention
 * deletes a recording (invariant 9). */
static int recover_orphan(reconcile_t *r, const char *rel_path, const char *abs)
{
    arc_file_info_t info;
    int rc = arc_recover_file(abs, &info);
    int err = errno;
    if (rc == VG_OK) {
        rc = vg_fsync_parent(abs);
        if (rc != VG_OK) {
            report_unreadable(r, rel_path, "cannot sync its directory", errno);
            return VG_OK;
        }
        rc = index_recovered(r, rel_path, &info);
        if (rc == VG_OK) {
            vg_notice("recovered %s: %.3f s indexed", rel_path, (double)info.media_us / 1e6);
            r->counts.recovered++;
        } else {
            vg_err("recovered %s but cannot index it (%s): kept for the next start", rel_path,
                   vg_strerror(rc));
        }
        return VG_OK;
    }
    if (rc == VG_ENOTFOUND)
        return VG_OK; /* gone in the meantime */
    if (rc != VG_ECORRUPT) {
        report_unreadable(r, rel_path, "cannot recover", err ? err : EIO);
        return VG_OK;
    }
    vg_warn("removing %s: no complete fragment to keep", rel_path);
    if (unlink(abs) != 0 && errno != ENOENT) {
        report_unreadable(r, rel_path, "cannot remove", errno);
        return VG_OK;
    }
    r->counts.removed++;
    if (vg_fsync_parent(abs) != VG_OK) /* a lost unlink only repeats at the next start */
        vg_warn("cannot sync the directory of %s: %s", rel_path, strerror(errno));
    return VG_OK;
}

static int check_file(reconcile_t *r, const char *rel_path)
{
    int found = 0;
    r->counts.files_checked++;
    int rc = idx_segment_path_exists(r->idx, rel_path, &found);
    if (rc != VG_OK || found)
        return rc;
    char *abs = vg_asprintf("%s/%s", r->data_dir, rel_path);
    struct stat st;
    if (lstat(abs, &st) != 0) {
        if (errno != ENOENT)
            report_unreadable(r, rel_path, "cannot stat", errno);
    } else if (!S_ISREG(st.st_mode)) {
        report_unreadable(r, rel_path, "not a regular file", S_ISDIR(st.st_mode) ? EISDIR : EINVAL);
    } else if (!arc_file_in_progress(abs) &&
               /* A writer commits the row before it lets the lock go: a row
                * may have come between the lookup and the lock test. */
               (rc = idx_segment_path_exists(r->idx, rel_path, &found)) == VG_OK && !found) {
        report(r, ARC_FILE_WITHOUT_ROW, rel_path, "file has no index row");
        if (r->opts->repair)
            rc = recover_orphan(r, rel_path, abs);
    }
    free(abs);
    return rc;
}

/* The oldest start the pass looks at for this source. */
static int horizon_of(reconcile_t *r, const char *source, int64_t *horizon)
{
    *horizon = INT64_MIN;
    if (r->opts->recent_us <= 0)
        return VG_OK;
    int64_t newest = 0;
    int rc = idx_source_newest_start(r->idx, source, &newest);
    if (rc == VG_OK && newest > 0)
        *horizon = newest - r->opts->recent_us;
    return rc;
}

/* "YYYY-MM-DD" -> UTC start of that day; VG_EINVAL for other names. */
static int day_start(const char *name, int64_t *out)
{
    struct tm tm = {0};
    char *end = strptime(name, "%Y-%m-%d", &tm);
    if (!end || *end)
        return VG_EINVAL;
    *out = (int64_t)timegm(&tm) * 1000000LL;
    return VG_OK;
}

/* Calls fn(name) for each entry of dir (no dot entries). A directory that
 * cannot be read is reported and skipped: the rest of the archive is still
 * checked. */
typedef int (*entry_fn)(reconcile_t *r, const char *rel, const char *name, void *arg);

static int each_entry(reconcile_t *r, const char *rel, entry_fn fn, void *arg)
{
    char *abs = vg_asprintf("%s/%s", r->data_dir, rel);
    DIR *d = opendir(abs);
    free(abs);
    if (!d) {
        /* A stray file where a directory belongs is not a segment. */
        if (errno != ENOENT && errno != ENOTDIR)
            report_unreadable(r, rel, "cannot list", errno);
        return VG_OK;
    }
    int rc = VG_OK;
    struct dirent *e;
    while (rc == VG_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            rc = fn(r, rel, e->d_name, arg);
    }
    closedir(d);
    return rc;
}

static int visit_file(reconcile_t *r, const char *rel, const char *name, void *arg)
{
    const int64_t *horizon = arg;
    int64_t start;
    if (arc_parse_segment_name(name, &start) != VG_OK || start < *horizon)
        return VG_OK; /* decided by name alone: no stat, no open */
    char *child = vg_asprintf("%s/%s", rel, name);
    int rc = check_file(r, child);
    free(child);
    return rc;
}

static int visit_day(reconcile_t *r, const char *rel, const char *name, void *arg)
{
    const int64_t *horizon = arg;
    int64_t day;
    if (*horizon != INT64_MIN && day_start(name, &day) == VG_OK && day + DAY_US <= *horizon)
        return VG_OK;
    char *child = vg_asprintf("%s/%s", rel, name);
    int rc = each_entry(r, child, visit_file, arg);
    free(child);
    return rc;
}

static int visit_source(reconcile_t *r, const char *rel, const char *name, void *arg)
{
    (void)arg;
    int64_t horizon;
    int rc = horizon_of(r, name, &horizon);
    if (rc != VG_OK)
        return rc;
    char *child = vg_asprintf("%s/%s", rel, name);
    rc = each_entry(r, child, visit_day, &horizon);
    free(child);
    return rc;
}

static int check_rows_page(reconcile_t *r, const idx_segment_t *rows, size_t n)
{
    int rc = VG_OK;
    for (size_t i = 0; rc == VG_OK && i < n; i++)
        rc = check_row(r, &rows[i]);
    return rc;
}

static int check_all_rows(reconcile_t *r)
{
    int64_t after = 0;
    int rc;
    for (;;) {
        idx_segment_t *rows = NULL;
        size_t n = 0;
        rc = idx_segments_page(r->idx, after, PAGE_ROWS, &rows, &n);
        if (rc == VG_OK && n > 0) {
            after = rows[n - 1].id;
            rc = check_rows_page(r, rows, n);
        }
        free(rows);
        if (rc != VG_OK || n < PAGE_ROWS)
            return rc;
    }
}

static int check_recent_rows(reconcile_t *r)
{
    char(*names)[64] = NULL;
    size_t n_names = 0;
    int rc = idx_source_names(r->idx, &names, &n_names);
    for (size_t i = 0; rc == VG_OK && i < n_names; i++) {
        int64_t horizon;
        idx_segment_t *rows = NULL;
        size_t n = 0;
        rc = horizon_of(r, names[i], &horizon);
        if (rc == VG_OK)
            rc = idx_segments_in_range(r->idx, names[i], horizon, INT64_MAX, &rows, &n);
        if (rc == VG_ENOTFOUND)
            rc = VG_OK;
        if (rc == VG_OK)
            rc = check_rows_page(r, rows, n);
        free(rows);
    }
    free(names);
    return rc;
}

static void update_alarm(reconcile_t *r)
{
    int64_t now = vg_clock_wall(&vg_system_clock);
    if (!r->unreadable) {
        idx_alarm_clear(r->idx, ALARM_UNREADABLE, now, NULL);
        return;
    }
    char msg[400];
    snprintf(msg, sizeof(msg), "%d archive item(s) cannot be read and were kept (first: %.180s);"
             " see vigilctl check", r->unreadable, r->first_unreadable);
    if (idx_alarm_raise(r->idx, ALARM_UNREADABLE, "error", r->first_unreadable_source, msg,
                        now) != VG_OK)
        vg_err("cannot raise the %s alarm", ALARM_UNREADABLE);
}

int arc_reconcile(const char *data_dir, idx_t *idx, const arc_reconcile_opts_t *opts,
                  int *problems)
{
    reconcile_t r = {.data_dir = data_dir, .idx = idx, .opts = opts};
    int rc = opts->recent_us > 0 ? check_recent_rows(&r) : check_all_rows(&r);
    if (rc == VG_OK)
        rc = each_entry(&r, "media", visit_source, NULL);
    if (rc == VG_OK && opts->repair)
        update_alarm(&r);
    *problems = r.problems;
    if (opts->counts)
        *opts->counts = r.counts;
    return rc;
}
