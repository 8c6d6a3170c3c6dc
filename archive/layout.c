/* Where segment files live and how they are found, hashed and recognised as
 * being written. */
#include "archive.h"
#include "archive_private.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nettle/sha2.h>

#include "core/errors.h"
#include "core/util.h"

char *arc_segment_rel_path(const char *source, int64_t start_us, const char *ext)
{
    time_t secs = (time_t)(start_us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    return vg_asprintf("media/%s/%04d-%02d-%02d/%" PRId64 ".%s", source, tm.tm_year + 1900,
                       tm.tm_mon + 1, tm.tm_mday, start_us, ext);
}

int arc_make_parent_dirs(const char *data_dir, const char *rel_path)
{
    return arc_make_parent_dirs_ex(data_dir, rel_path, 1, NULL);
}

int arc_make_parent_dirs_ex(const char *data_dir, const char *rel_path, int sync, int *created)
{
    char *path = vg_asprintf("%s/%s", data_dir, rel_path);
    size_t base = strlen(data_dir) + 1;
    int rc = VG_OK;
    if (created)
        *created = 0;
    for (char *p = path + base; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0750) == 0) {
            if (created)
                (*created)++;
            if (sync)
                rc = vg_fsync_parent(path);
        } else if (errno != EEXIST) {
            rc = VG_EIO;
        }
        *p = '/';
        if (rc != VG_OK)
            break;
    }
    free(path);
    return rc;
}

int arc_parse_segment_name(const char *file_name, int64_t *start_us)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(file_name, &end, 10);
    if (errno || end == file_name || v <= 0 || !isdigit((unsigned char)file_name[0]))
        return VG_EINVAL;
    if (strcmp(end, ".mp4") != 0 && strcmp(end, ".mov") != 0)
        return VG_EINVAL;
    *start_us = v;
    return VG_OK;
}

int arc_hash_file(const char *path, char hex[65])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? VG_ENOTFOUND : VG_EIO;
    struct sha256_ctx sha;
    sha256_init(&sha);
    unsigned char buf[64 * 1024];
    ssize_t n;
    int rc = VG_OK;
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = VG_EIO;
            break;
        }
        sha256_update(&sha, (size_t)n, buf);
    }
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_digest(&sha, sizeof(digest), digest);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    close(fd);
    return rc;
}

int arc_file_in_progress(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int busy = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
    close(fd);
    return busy;
}

/* Walks media/<source>/<day>/<file>: exactly that depth, nothing else. */
static int scan_dir(const char *data_dir, const char *rel, int depth, arc_scan_fn fn, void *ctx)
{
    char *abs = vg_asprintf("%s/%s", data_dir, rel);
    DIR *d = opendir(abs);
    free(abs);
    if (!d) /* a stray file where a directory belongs is not a segment */
        return errno == ENOENT || errno == ENOTDIR ? VG_OK : VG_EIO;
    int rc = VG_OK;
    struct dirent *e;
    while (rc == VG_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *child = vg_asprintf("%s/%s", rel, e->d_name);
        int64_t start;
        if (depth < 2)
            rc = scan_dir(data_dir, child, depth + 1, fn, ctx);
        else if (arc_parse_segment_name(e->d_name, &start) == VG_OK)
            rc = fn(ctx, child);
        free(child);
    }
    closedir(d);
    return rc;
}

int arc_scan_media(const char *data_dir, arc_scan_fn fn, void *ctx)
{
    return scan_dir(data_dir, "media", 0, fn, ctx);
}

int arc_remove_segment_file(const char *data_dir, const char *rel_path)
{
    char *abs = vg_asprintf("%s/%s", data_dir, rel_path);
    int rc = VG_OK;
    if (unlink(abs) != 0 && errno != ENOENT)
        rc = VG_EIO;
    if (rc == VG_OK)
        rc = vg_fsync_parent(abs) == VG_OK || errno == ENOENT ? VG_OK : VG_EIO; /* day dir gone */
    char *slash = strrchr(abs, '/');
    if (rc == VG_OK && slash) {
        *slash = '\0';
        if (rmdir(abs) == 0) /* fails harmlessly while the day has files */
            vg_fsync_parent(abs);
    }
    free(abs);
    return rc;
}

typedef struct {
    const char *dir;
    size_t file;
} dir_ref_t;

static int cmp_dir_ref(const void *a, const void *b)
{
    const dir_ref_t *x = a, *y = b;
    int c = strcmp(x->dir, y->dir);
    return c ? c : (x->file > y->file) - (x->file < y->file);
}

/* fsyncs each distinct directory once (a vanished one is fine: its removal
 * is what is durable), then removes the emptied ones. A directory that
 * cannot be synced leaves its files' removals unproven: they get its errno. */
static void sync_dirs(char **dirs, size_t n, int *errs)
{
    dir_ref_t *refs = vg_malloc((n ? n : 1) * sizeof(*refs));
    for (size_t i = 0; i < n; i++)
        refs[i] = (dir_ref_t){dirs[i], i};
    qsort(refs, n, sizeof(*refs), cmp_dir_ref);
    for (size_t i = 0; i < n;) {
        size_t end = i + 1;
        while (end < n && strcmp(refs[end].dir, refs[i].dir) == 0)
            end++;
        int err = vg_fsync_dir(refs[i].dir) != VG_OK && errno != ENOENT ? errno : 0;
        for (size_t k = i; err && k < end; k++) {
            if (errs[refs[k].file] == 0)
                errs[refs[k].file] = err;
        }
        if (!err && rmdir(refs[i].dir) == 0) /* fails harmlessly while the day has files */
            vg_fsync_parent(refs[i].dir);
        i = end;
    }
    free(refs);
}

int arc_remove_segment_files(const char *data_dir, const idx_segment_t *segs, size_t n,
                             int *errs)
{
    char **dirs = vg_calloc(n ? n : 1, sizeof(*dirs));
    int rc = VG_OK;
    /* One file that cannot go (EACCES, EIO, EROFS, immutable, a directory in
     * its place) is noted and passed over: the others still go (DESIGN.md
     * invariant 9). */
    for (size_t i = 0; i < n; i++) {
        dirs[i] = vg_asprintf("%s/%s", data_dir, segs[i].path);
        errs[i] = unlink(dirs[i]) != 0 && errno != ENOENT ? errno : 0;
        char *slash = strrchr(dirs[i], '/');
        if (slash)
            *slash = '\0';
    }
    sync_dirs(dirs, n, errs);
    for (size_t i = 0; i < n; i++) {
        if (errs[i])
            rc = VG_EIO;
        free(dirs[i]);
    }
    free(dirs);
    return rc;
}
