/* Index vs disk: the check vigilctl runs and the recovery vigild runs before
 * it records anything after a crash. */
#include "archive.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

typedef struct {
    const char *data_dir;
    idx_t *idx;
    const arc_reconcile_opts_t *opts;
    int problems;
} reconcile_t;

static void report(reconcile_t *r, arc_problem_t p, const char *path, const char *detail)
{
    r->problems++;
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

static int check_row(reconcile_t *r, const idx_segment_t *row)
{
    char *abs = vg_asprintf("%s/%s", r->data_dir, row->path);
    struct stat st;
    char detail[160];
    int rc = VG_OK;
    if (stat(abs, &st) != 0) {
        snprintf(detail, sizeof(detail), "segment %lld: file is missing", (long long)row->id);
        report(r, ARC_ROW_WITHOUT_FILE, row->path, detail);
        if (r->opts->repair) {
            vg_warn("index row %lld points at missing %s: dropping the row", (long long)row->id,
                    row->path);
            rc = idx_segment_delete(r->idx, row->id);
        }
    } else if (st.st_size != row->bytes) {
        snprintf(detail, sizeof(detail), "segment %lld: %lld bytes on disk, %lld in the index",
                 (long long)row->id, (long long)st.st_size, (long long)row->bytes);
        report(r, ARC_SIZE_MISMATCH, row->path, detail);
    } else if (r->opts->deep) {
        char hex[65];
        if (row->unverified)
            drop_cached(abs);
        rc = arc_hash_file(abs, hex);
        if (rc == VG_OK && strcmp(hex, row->sha256) != 0) {
            snprintf(detail, sizeof(detail), "segment %lld: sha256 %s, index says %s",
                     (long long)row->id, hex, row->sha256);
            report(r, ARC_HASH_MISMATCH, row->path, detail);
        } else if (rc == VG_OK && row->unverified) {
            snprintf(detail, sizeof(detail),
                     "segment %lld: an I/O error hit it while written; re-read from disk, "
                     "it matches its sha256", (long long)row->id);
            report(r, ARC_UNVERIFIED, row->path, detail);
        }
    } else if (row->unverified) {
        snprintf(detail, sizeof(detail),
                 "segment %lld: an I/O error hit it while written (check --deep re-hashes it)",
                 (long long)row->id);
        report(r, ARC_UNVERIFIED, row->path, detail);
    }
    free(abs);
    return rc;
}

/* "media/<source>/..." -> source */
static int source_of(const char *rel_path, char *out, size_t size)
{
    const char *p = rel_path + strlen("media/");
    size_t len = strcspn(p, "/");
    if (len == 0 || len >= size)
        return VG_EINVAL;
    memcpy(out, p, len);
    out[len] = '\0';
    return vg_source_name_valid(out) ? VG_OK : VG_EINVAL;
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
 * vigild ran: a playable prefix becomes a row; only a file with not even one
 * complete fragment goes (DESIGN.md invariants 1 and 9). An index or disk
 * error keeps the file for the next attempt. */
static int recover_orphan(reconcile_t *r, const char *rel_path, const char *abs)
{
    arc_file_info_t info;
    int rc = arc_recover_file(abs, &info);
    if (rc == VG_OK) {
        rc = vg_fsync_parent(abs);
        if (rc == VG_OK)
            rc = index_recovered(r, rel_path, &info);
        if (rc == VG_OK)
            vg_notice("recovered %s: %.3f s indexed", rel_path, (double)info.media_us / 1e6);
        else
            vg_err("cannot index %s (%s): the file is kept", rel_path, vg_strerror(rc));
        return rc;
    }
    if (rc != VG_ECORRUPT) {
        /* One unreadable file must not stop the rest of the repair. */
        vg_err("cannot read %s (%s): the file is kept", rel_path, vg_strerror(rc));
        return VG_OK;
    }
    vg_warn("removing %s: no complete fragment to keep", rel_path);
    if (unlink(abs) != 0 && errno != ENOENT)
        return VG_EIO;
    return vg_fsync_parent(abs);
}

static int check_file(void *ctx, const char *rel_path)
{
    reconcile_t *r = ctx;
    int found = 0;
    int rc = idx_segment_path_exists(r->idx, rel_path, &found);
    if (rc != VG_OK || found)
        return rc;
    char *abs = vg_asprintf("%s/%s", r->data_dir, rel_path);
    if (!arc_file_in_progress(abs)) {
        report(r, ARC_FILE_WITHOUT_ROW, rel_path, "file has no index row");
        if (r->opts->repair)
            rc = recover_orphan(r, rel_path, abs);
    }
    free(abs);
    return rc;
}

int arc_reconcile(const char *data_dir, idx_t *idx, const arc_reconcile_opts_t *opts,
                  int *problems)
{
    reconcile_t r = {.data_dir = data_dir, .idx = idx, .opts = opts};
    idx_segment_t *rows = NULL;
    size_t n = 0;
    int rc = idx_segments_all(idx, &rows, &n);
    for (size_t i = 0; rc == VG_OK && i < n; i++)
        rc = check_row(&r, &rows[i]);
    free(rows);
    if (rc == VG_OK)
        rc = arc_scan_media(data_dir, check_file, &r);
    *problems = r.problems;
    return rc;
}
