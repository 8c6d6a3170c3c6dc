/* crash-recorder.so: an LD_PRELOAD shim that logs every operation that
 * changes files under CRASH_ROOT (open with O_CREAT/O_TRUNC, write, pwrite,
 * ftruncate, fsync, fdatasync, rename, unlink, mkdir, rmdir, and the fsync of
 * a directory) with its data, in call order, to CRASH_LOG. The crash
 * harness (tests/crash/harness.py) replays the log to build every disk state
 * a power cut could leave. SQLite's own I/O goes through these calls, so the
 * index is covered like the media files.
 *
 * Record: struct crash_rec, then path, path2 and len data bytes (writes
 * only). Each record is appended with one writev on an O_APPEND file, so
 * the records of several threads and processes interleave whole. Inode
 * numbers identify files across renames and unlinks (an open segment file is
 * renamed and written on).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define CRASH_MAGIC 0x52435256u /* "VRCR" */
#define MAX_FDS 65536

enum {
    OP_CREATE = 1, /* open with O_CREAT: off = 1 when O_TRUNC too */
    OP_TRUNC_OPEN, /* open with O_TRUNC of an existing file */
    OP_WRITE,      /* off, len, data */
    OP_TRUNCATE,   /* len = new size */
    OP_FSYNC,
    OP_FDATASYNC,
    OP_RENAME,     /* path -> path2 */
    OP_UNLINK,
    OP_MKDIR,
    OP_RMDIR,
};

struct crash_rec {
    uint32_t magic;
    uint32_t op;
    int64_t t_us; /* wall clock */
    int32_t pid;
    int32_t is_dir;
    int64_t ino;
    int64_t off;
    int64_t len;
    uint32_t path_len;
    uint32_t path2_len;
};

static char root[PATH_MAX];
static size_t root_len;
static int log_fd = -1;
static char *fd_path[MAX_FDS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_pwrite64)(int, const void *, size_t, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_ftruncate)(int, off_t);
static int (*real_ftruncate64)(int, off_t);
static int (*real_rename)(const char *, const char *);
static int (*real_renameat)(int, const char *, int, const char *);
static int (*real_unlink)(const char *);
static int (*real_unlinkat)(int, const char *, int);
static int (*real_mkdir)(const char *, mode_t);
static int (*real_mkdirat)(int, const char *, mode_t);
static int (*real_rmdir)(const char *);

#define RESOLVE(name) real_##name = dlsym(RTLD_NEXT, #name)

__attribute__((constructor)) static void recorder_init(void)
{
    RESOLVE(open);
    RESOLVE(open64);
    RESOLVE(openat);
    RESOLVE(openat64);
    RESOLVE(close);
    RESOLVE(write);
    RESOLVE(pwrite);
    RESOLVE(pwrite64);
    RESOLVE(fsync);
    RESOLVE(fdatasync);
    RESOLVE(ftruncate);
    RESOLVE(ftruncate64);
    RESOLVE(rename);
    RESOLVE(renameat);
    RESOLVE(unlink);
    RESOLVE(unlinkat);
    RESOLVE(mkdir);
    RESOLVE(mkdirat);
    RESOLVE(rmdir);
    const char *r = getenv("CRASH_ROOT");
    const char *l = getenv("CRASH_LOG");
    if (!r || !l || !realpath(r, root))
        return;
    root_len = strlen(root);
    log_fd = real_open(l, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
}

/* Absolute, with "//", "/./" and "/x/.." folded; 0 when not under root.
 * out gets the path relative to root ("." for root itself). */
static int rel_of(int dirfd, const char *path, char *out, size_t size)
{
    char abs[PATH_MAX * 2];
    if (log_fd < 0 || !path)
        return 0;
    if (path[0] == '/') {
        snprintf(abs, sizeof(abs), "%s", path);
    } else if (dirfd == AT_FDCWD) {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof(cwd)))
            return 0;
        snprintf(abs, sizeof(abs), "%s/%s", cwd, path);
    } else {
        pthread_mutex_lock(&lock);
        const char *base = dirfd >= 0 && dirfd < MAX_FDS ? fd_path[dirfd] : NULL;
        if (base)
            snprintf(abs, sizeof(abs), "%s/%s/%s", root, base, path);
        pthread_mutex_unlock(&lock);
        if (!base)
            return 0;
    }
    /* fold the path in place, component by component */
    char norm[PATH_MAX * 2];
    size_t n = 0;
    for (const char *p = abs; *p;) {
        while (*p == '/')
            p++;
        const char *e = p;
        while (*e && *e != '/')
            e++;
        size_t len = (size_t)(e - p);
        if (len == 0)
            break;
        if (len == 1 && p[0] == '.') {
        } else if (len == 2 && p[0] == '.' && p[1] == '.') {
            while (n > 0 && norm[n - 1] != '/')
                n--;
            if (n > 0)
                n--;
        } else if (n + len + 2 < sizeof(norm)) {
            norm[n++] = '/';
            memcpy(norm + n, p, len);
            n += len;
        }
        p = e;
    }
    norm[n] = '\0';
    if (strcmp(norm, root) == 0) {
        snprintf(out, size, ".");
        return 1;
    }
    if (strncmp(norm, root, root_len) != 0 || norm[root_len] != '/')
        return 0;
    snprintf(out, size, "%s", norm + root_len + 1);
    return 1;
}

static void emit(uint32_t op, const char *path, const char *path2, int64_t ino, int is_dir,
                 int64_t off, int64_t len, const void *data)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct crash_rec rec = {
        .magic = CRASH_MAGIC,
        .op = op,
        .t_us = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000,
        .pid = (int32_t)getpid(),
        .is_dir = is_dir,
        .ino = ino,
        .off = off,
        .len = len,
        .path_len = (uint32_t)strlen(path),
        .path2_len = path2 ? (uint32_t)strlen(path2) : 0,
    };
    struct iovec iov[4] = {
        {&rec, sizeof(rec)},
        {(void *)path, rec.path_len},
        {(void *)(path2 ? path2 : ""), rec.path2_len},
        {(void *)data, data ? (size_t)len : 0},
    };
    int saved = errno;
    (void)writev(log_fd, iov, 4);
    errno = saved;
}

static int64_t ino_of_fd(int fd, int *is_dir)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -1;
    *is_dir = S_ISDIR(st.st_mode);
    return (int64_t)st.st_ino;
}

static int64_t ino_of_path(const char *path, int *is_dir)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return -1;
    *is_dir = S_ISDIR(st.st_mode);
    return (int64_t)st.st_ino;
}

/* Copies the fd's relative path out (under the lock); 0 when not ours. */
static int path_of_fd(int fd, char *out, size_t size)
{
    int found = 0;
    if (log_fd < 0 || fd < 0 || fd >= MAX_FDS)
        return 0;
    pthread_mutex_lock(&lock);
    if (fd_path[fd]) {
        snprintf(out, size, "%s", fd_path[fd]);
        found = 1;
    }
    pthread_mutex_unlock(&lock);
    return found;
}

static void opened(int fd, int dirfd, const char *path, int flags, int existed)
{
    char rel[PATH_MAX];
    if (fd < 0 || fd >= MAX_FDS || !rel_of(dirfd, path, rel, sizeof(rel)))
        return;
    pthread_mutex_lock(&lock);
    free(fd_path[fd]);
    fd_path[fd] = strdup(rel);
    pthread_mutex_unlock(&lock);
    int is_dir = 0;
    int64_t ino = ino_of_fd(fd, &is_dir);
    if ((flags & O_CREAT) && !existed)
        emit(OP_CREATE, rel, NULL, ino, is_dir, (flags & O_TRUNC) ? 1 : 0, 0, NULL);
    else if (flags & O_TRUNC)
        emit(OP_TRUNC_OPEN, rel, NULL, ino, is_dir, 0, 0, NULL);
}

static int exists_at(int dirfd, const char *path)
{
    struct stat st;
    return fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

#define OPEN_BODY(call, dirfd)                                                                \
    mode_t mode = 0;                                                                          \
    if (flags & (O_CREAT | O_TMPFILE)) {                                                      \
        va_list ap;                                                                           \
        va_start(ap, flags);                                                                  \
        mode = va_arg(ap, mode_t);                                                            \
        va_end(ap);                                                                           \
    }                                                                                         \
    int existed = log_fd >= 0 && (flags & O_CREAT) ? exists_at(dirfd, path) : 1;              \
    int fd = call;                                                                            \
    if (fd >= 0 && log_fd >= 0)                                                               \
        opened(fd, dirfd, path, flags, existed);                                              \
    return fd;

int open(const char *path, int flags, ...)
{
    OPEN_BODY(real_open(path, flags, mode), AT_FDCWD)
}

int open64(const char *path, int flags, ...)
{
    OPEN_BODY(real_open64(path, flags, mode), AT_FDCWD)
}

int openat(int dirfd, const char *path, int flags, ...)
{
    OPEN_BODY(real_openat(dirfd, path, flags, mode), dirfd)
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    OPEN_BODY(real_openat64(dirfd, path, flags, mode), dirfd)
}

int close(int fd)
{
    if (fd >= 0 && fd < MAX_FDS && log_fd >= 0) {
        pthread_mutex_lock(&lock);
        free(fd_path[fd]);
        fd_path[fd] = NULL;
        pthread_mutex_unlock(&lock);
    }
    return real_close(fd);
}

static void wrote(int fd, const void *buf, ssize_t n, off_t off)
{
    char rel[PATH_MAX];
    if (n <= 0 || !path_of_fd(fd, rel, sizeof(rel)))
        return;
    int is_dir = 0;
    emit(OP_WRITE, rel, NULL, ino_of_fd(fd, &is_dir), 0, (int64_t)off, (int64_t)n, buf);
}

ssize_t write(int fd, const void *buf, size_t count)
{
    off_t off = log_fd >= 0 && fd >= 0 && fd < MAX_FDS && fd_path[fd] ? lseek(fd, 0, SEEK_CUR)
                                                                      : -1;
    ssize_t n = real_write(fd, buf, count);
    if (off >= 0)
        wrote(fd, buf, n, off);
    return n;
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t off)
{
    ssize_t n = real_pwrite(fd, buf, count, off);
    wrote(fd, buf, n, off);
    return n;
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off_t off)
{
    ssize_t n = real_pwrite64(fd, buf, count, off);
    wrote(fd, buf, n, off);
    return n;
}

static void synced(int fd, uint32_t op)
{
    char rel[PATH_MAX];
    if (!path_of_fd(fd, rel, sizeof(rel)))
        return;
    int is_dir = 0;
    int64_t ino = ino_of_fd(fd, &is_dir);
    emit(op, rel, NULL, ino, is_dir, 0, 0, NULL);
}

int fsync(int fd)
{
    int rc = real_fsync(fd);
    if (rc == 0)
        synced(fd, OP_FSYNC);
    return rc;
}

int fdatasync(int fd)
{
    int rc = real_fdatasync(fd);
    if (rc == 0)
        synced(fd, OP_FDATASYNC);
    return rc;
}

static void truncated(int fd, off_t len)
{
    char rel[PATH_MAX];
    if (!path_of_fd(fd, rel, sizeof(rel)))
        return;
    int is_dir = 0;
    emit(OP_TRUNCATE, rel, NULL, ino_of_fd(fd, &is_dir), 0, 0, (int64_t)len, NULL);
}

int ftruncate(int fd, off_t len)
{
    int rc = real_ftruncate(fd, len);
    if (rc == 0)
        truncated(fd, len);
    return rc;
}

int ftruncate64(int fd, off_t len)
{
    int rc = real_ftruncate64(fd, len);
    if (rc == 0)
        truncated(fd, len);
    return rc;
}

static void renamed(int olddirfd, const char *from, int newdirfd, const char *to)
{
    char a[PATH_MAX], b[PATH_MAX];
    int ra = rel_of(olddirfd, from, a, sizeof(a)), rb = rel_of(newdirfd, to, b, sizeof(b));
    if (!ra && !rb)
        return;
    int is_dir = 0;
    char abs[PATH_MAX * 2];
    if (rb) {
        snprintf(abs, sizeof(abs), "%s/%s", root, b);
    }
    int64_t ino = rb ? ino_of_path(abs, &is_dir) : -1;
    /* Open fds follow the file to its new name. */
    pthread_mutex_lock(&lock);
    for (int fd = 0; ra && rb && fd < MAX_FDS; fd++) {
        if (fd_path[fd] && strcmp(fd_path[fd], a) == 0) {
            free(fd_path[fd]);
            fd_path[fd] = strdup(b);
        }
    }
    pthread_mutex_unlock(&lock);
    if (ra && rb)
        emit(OP_RENAME, a, b, ino, is_dir, 0, 0, NULL);
    else if (ra)
        emit(OP_UNLINK, a, NULL, -1, is_dir, 0, 0, NULL); /* moved out of the root */
    else
        emit(OP_CREATE, b, NULL, ino, is_dir, 0, 0, NULL); /* moved in: not replayable */
}

int rename(const char *from, const char *to)
{
    int rc = real_rename(from, to);
    if (rc == 0 && log_fd >= 0)
        renamed(AT_FDCWD, from, AT_FDCWD, to);
    return rc;
}

int renameat(int olddirfd, const char *from, int newdirfd, const char *to)
{
    int rc = real_renameat(olddirfd, from, newdirfd, to);
    if (rc == 0 && log_fd >= 0)
        renamed(olddirfd, from, newdirfd, to);
    return rc;
}

static int removed(int dirfd, const char *path, int rc, uint32_t op)
{
    char rel[PATH_MAX];
    if (rc == 0 && rel_of(dirfd, path, rel, sizeof(rel)))
        emit(op, rel, NULL, -1, op == OP_RMDIR, 0, 0, NULL);
    return rc;
}

int unlink(const char *path)
{
    return removed(AT_FDCWD, path, real_unlink(path), OP_UNLINK);
}

int unlinkat(int dirfd, const char *path, int flags)
{
    return removed(dirfd, path, real_unlinkat(dirfd, path, flags),
                   (flags & AT_REMOVEDIR) ? OP_RMDIR : OP_UNLINK);
}

int rmdir(const char *path)
{
    return removed(AT_FDCWD, path, real_rmdir(path), OP_RMDIR);
}

static int made_dir(int dirfd, const char *path, int rc)
{
    char rel[PATH_MAX];
    if (rc == 0 && rel_of(dirfd, path, rel, sizeof(rel))) {
        char abs[PATH_MAX * 2];
        snprintf(abs, sizeof(abs), "%s/%s", root, rel);
        int is_dir = 1;
        emit(OP_MKDIR, rel, NULL, ino_of_path(abs, &is_dir), 1, 0, 0, NULL);
    }
    return rc;
}

int mkdir(const char *path, mode_t mode)
{
    return made_dir(AT_FDCWD, path, real_mkdir(path, mode));
}

int mkdirat(int dirfd, const char *path, mode_t mode)
{
    return made_dir(dirfd, path, real_mkdirat(dirfd, path, mode));
}
