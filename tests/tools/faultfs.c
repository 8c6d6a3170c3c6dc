/* faultfs: an LD_PRELOAD shim that makes file-system calls fail or stall on
 * demand, so tests can drive the storage error paths of a real vigild.
 *
 * VIGIL_FAULTS_FILE=PATH names a rules file, re-read whenever its mtime or
 * size changes (looked at no more than every 50 ms), so a test can switch
 * faults on and off while the process runs. One rule a line:
 *
 *     OP PATH_SUBSTRING ACTION [count=N]
 *
 * OP: open write pwrite fsync fdatasync rename unlink unlinkat stat mkdir
 *     ftruncate close syncfs read (read and pread), or * for any of them.
 * PATH_SUBSTRING: matched against the path the call names; for calls on a
 *     descriptor, the path it was opened with (else /proc/self/fd). * = any.
 *     For rename, either the old or the new name.
 * ACTION: an errno name (EIO ENOSPC EACCES EROFS EPERM EDQUOT), the call then
 *     fails with it without touching the file; or delay=MS, the call then
 *     runs after sleeping MS milliseconds.
 * count=N: the rule fires N times, then it is spent (until the file changes).
 * skip=N: the first N calls the rule matches run untouched (so a read can
 *     fail in the middle of a file rather than at its first byte).
 * Lines starting with # and blank lines are ignored; the first matching,
 * unspent rule wins.
 *
 * VIGIL_FAULTS_LOG=PATH (optional) gets a line "OP ACTION PATH" each time a
 * rule fires, so a test can tell that its fault was hit.
 *
 * The shim is a test tool, built without sanitizers; it never allocates on
 * the intercepted paths except to remember a descriptor's path at open. */
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
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

enum op {
    OP_OPEN, OP_WRITE, OP_PWRITE, OP_FSYNC, OP_FDATASYNC, OP_RENAME, OP_UNLINK, OP_UNLINKAT,
    OP_STAT, OP_MKDIR, OP_FTRUNCATE, OP_CLOSE, OP_SYNCFS, OP_READ, OP_COUNT, OP_ANY = -1
};

static const char *const op_names[OP_COUNT] = {
    "open", "write", "pwrite", "fsync", "fdatasync", "rename", "unlink", "unlinkat",
    "stat", "mkdir", "ftruncate", "close", "syncfs", "read",
};

static const struct {
    const char *name;
    int value;
} errnos[] = {
    {"EIO", EIO}, {"ENOSPC", ENOSPC}, {"EACCES", EACCES}, {"EROFS", EROFS},
    {"EPERM", EPERM}, {"EDQUOT", EDQUOT},
};

#define MAX_RULES 64
#define PATH_MATCH_MAX 256
#define RELOAD_CHECK_NS (50 * 1000000LL)
#define MAX_TRACKED_FDS 65536

typedef struct {
    int op;               /* enum op or OP_ANY */
    char path[PATH_MATCH_MAX]; /* "" = any */
    int err;              /* errno to fail with, or 0 */
    int delay_ms;         /* when err == 0 */
    long remaining;       /* < 0: unlimited */
    long skip;            /* matching calls still let through before it fires */
} rule_t;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static rule_t rules[MAX_RULES];
static int n_rules;
static const char *rules_file;
static const char *log_file;
static long long next_check_ns;
static struct timespec rules_mtime;
static off_t rules_size = -1;
static char *fd_paths[MAX_TRACKED_FDS];

/* Set while the shim itself does I/O, so its own calls pass straight through. */
static __thread int in_shim;

/* ---- the real functions ---- */

#define REAL(name) real_##name
#define DECLARE_REAL(ret, name, ...) static ret (*real_##name)(__VA_ARGS__)
DECLARE_REAL(int, open, const char *, int, ...);
DECLARE_REAL(int, open64, const char *, int, ...);
DECLARE_REAL(int, openat, int, const char *, int, ...);
DECLARE_REAL(int, openat64, int, const char *, int, ...);
DECLARE_REAL(int, __open_2, const char *, int);
DECLARE_REAL(int, __open64_2, const char *, int);
DECLARE_REAL(int, __openat_2, int, const char *, int);
DECLARE_REAL(int, __openat64_2, int, const char *, int);
DECLARE_REAL(int, creat, const char *, mode_t);
DECLARE_REAL(int, creat64, const char *, mode_t);
DECLARE_REAL(ssize_t, write, int, const void *, size_t);
DECLARE_REAL(ssize_t, pwrite, int, const void *, size_t, off_t);
DECLARE_REAL(ssize_t, pwrite64, int, const void *, size_t, off_t);
DECLARE_REAL(int, fsync, int);
DECLARE_REAL(int, fdatasync, int);
DECLARE_REAL(int, syncfs, int);
DECLARE_REAL(int, rename, const char *, const char *);
DECLARE_REAL(int, renameat, int, const char *, int, const char *);
DECLARE_REAL(int, renameat2, int, const char *, int, const char *, unsigned);
DECLARE_REAL(int, unlink, const char *);
DECLARE_REAL(int, unlinkat, int, const char *, int);
DECLARE_REAL(int, mkdir, const char *, mode_t);
DECLARE_REAL(int, mkdirat, int, const char *, mode_t);
DECLARE_REAL(int, ftruncate, int, off_t);
DECLARE_REAL(int, ftruncate64, int, off_t);
DECLARE_REAL(int, close, int);
DECLARE_REAL(int, stat, const char *, struct stat *);
DECLARE_REAL(int, stat64, const char *, struct stat64 *);
DECLARE_REAL(int, lstat, const char *, struct stat *);
DECLARE_REAL(int, lstat64, const char *, struct stat64 *);
DECLARE_REAL(ssize_t, read, int, void *, size_t);
DECLARE_REAL(ssize_t, pread, int, void *, size_t, off_t);
DECLARE_REAL(ssize_t, pread64, int, void *, size_t, off_t);
DECLARE_REAL(int, fstat, int, struct stat *);
DECLARE_REAL(int, fstat64, int, struct stat64 *);
DECLARE_REAL(int, fstatat, int, const char *, struct stat *, int);
DECLARE_REAL(int, fstatat64, int, const char *, struct stat64 *, int);

#define RESOLVE(name)                                                  \
    do {                                                               \
        if (!real_##name)                                              \
            *(void **)&real_##name = dlsym(RTLD_NEXT, #name);          \
    } while (0)

/* ---- rules ---- */

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int parse_op(const char *word)
{
    if (strcmp(word, "*") == 0)
        return OP_ANY;
    for (int i = 0; i < OP_COUNT; i++)
        if (strcmp(word, op_names[i]) == 0)
            return i;
    return -2;
}

static int parse_rule(char *line, rule_t *r)
{
    char *save = NULL;
    char *op = strtok_r(line, " \t\r\n", &save);
    char *path = strtok_r(NULL, " \t\r\n", &save);
    char *action = strtok_r(NULL, " \t\r\n", &save);
    if (!op || op[0] == '#')
        return 0;
    memset(r, 0, sizeof(*r));
    r->remaining = -1;
    r->op = parse_op(op);
    if (r->op == -2 || !path || !action)
        return -1;
    if (strcmp(path, "*") != 0)
        snprintf(r->path, sizeof(r->path), "%s", path);
    if (strncmp(action, "delay=", 6) == 0) {
        r->delay_ms = atoi(action + 6);
    } else {
        for (size_t i = 0; i < sizeof(errnos) / sizeof(errnos[0]); i++)
            if (strcmp(action, errnos[i].name) == 0)
                r->err = errnos[i].value;
        if (!r->err)
            return -1;
    }
    for (char *extra; (extra = strtok_r(NULL, " \t\r\n", &save)) != NULL;) {
        if (strncmp(extra, "count=", 6) == 0)
            r->remaining = atol(extra + 6);
        else if (strncmp(extra, "skip=", 5) == 0)
            r->skip = atol(extra + 5);
        else
            return -1;
    }
    return 1;
}

static void load_rules(void)
{
    n_rules = 0;
    FILE *f = fopen(rules_file, "re");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f) && n_rules < MAX_RULES) {
        char copy[512];
        snprintf(copy, sizeof(copy), "%s", line);
        int rc = parse_rule(line, &rules[n_rules]);
        if (rc > 0)
            n_rules++;
        else if (rc < 0)
            fprintf(stderr, "faultfs: ignoring bad rule: %s", copy);
    }
    fclose(f);
}

/* VIGIL_FAULTS_LOADED=PATH (optional) is rewritten with "SIZE MTIME_NS" of
 * the rules file each time it is loaded, so a test can wait until its new
 * rules are in force instead of racing the 50 ms look. */
static void note_loaded(const struct stat *st)
{
    const char *path = getenv("VIGIL_FAULTS_LOADED");
    if (!path || !*path)
        return;
    char line[64];
    int n = snprintf(line, sizeof(line), "%lld %lld\n", (long long)st->st_size,
                     (long long)st->st_mtim.tv_sec * 1000000000LL + st->st_mtim.tv_nsec);
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                          0644);
    if (fd < 0)
        return;
    if (syscall(SYS_write, fd, line, (size_t)n) < 0) {
        /* nothing to do: the test times out waiting and says so */
    }
    syscall(SYS_close, fd);
}

/* Called with lock held. */
static void maybe_reload(void)
{
    long long now = now_ns();
    if (now < next_check_ns)
        return;
    next_check_ns = now + RELOAD_CHECK_NS;
    struct stat st;
    if (syscall(SYS_newfstatat, AT_FDCWD, rules_file, &st, 0) != 0) {
        st.st_size = -1;
        st.st_mtim.tv_sec = 0;
        st.st_mtim.tv_nsec = 0;
    }
    if (st.st_size == rules_size && st.st_mtim.tv_sec == rules_mtime.tv_sec &&
        st.st_mtim.tv_nsec == rules_mtime.tv_nsec)
        return;
    rules_size = st.st_size;
    rules_mtime = st.st_mtim;
    load_rules();
    note_loaded(&st);
}

static void log_fired(int op, const rule_t *r, const char *path)
{
    if (!log_file)
        return;
    char line[PATH_MAX + 64];
    int n;
    if (r->err)
        n = snprintf(line, sizeof(line), "%s %s %s\n", op_names[op], strerrorname_np(r->err),
                     path ? path : "?");
    else
        n = snprintf(line, sizeof(line), "%s delay=%d %s\n", op_names[op], r->delay_ms,
                     path ? path : "?");
    if (n < 0)
        return;
    if (n >= (int)sizeof(line))
        n = (int)sizeof(line) - 1;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, log_file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                          0644);
    if (fd < 0)
        return;
    ssize_t ignored = syscall(SYS_write, fd, line, (size_t)n);
    (void)ignored;
    syscall(SYS_close, fd);
}

static const char *fd_path(int fd, char *buf, size_t size)
{
    const char *p = NULL;
    if (fd >= 0 && fd < MAX_TRACKED_FDS && fd_paths[fd]) {
        snprintf(buf, size, "%s", fd_paths[fd]);
        p = buf;
    } else if (fd >= 0) {
        char link[64];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t n = syscall(SYS_readlinkat, AT_FDCWD, link, buf, size - 1);
        if (n > 0) {
            buf[n] = '\0';
            p = buf;
        }
    }
    return p;
}

/* Decides the fate of one call: 0 = run it, else the errno to fail with.
 * path2 is rename's second name; fd >= 0 names the path by descriptor. */
static int check(int op, const char *path, const char *path2, int fd)
{
    if (!rules_file || in_shim)
        return 0;
    in_shim = 1;
    int err = 0, delay_ms = 0;
    char buf[PATH_MAX];
    pthread_mutex_lock(&lock);
    maybe_reload();
    for (int i = 0; i < n_rules; i++) {
        rule_t *r = &rules[i];
        if (r->remaining == 0 || (r->op != OP_ANY && r->op != op))
            continue;
        if (!path && fd >= 0 && r->path[0])
            path = fd_path(fd, buf, sizeof(buf));
        if (r->path[0] && !(path && strstr(path, r->path)) && !(path2 && strstr(path2, r->path)))
            continue;
        if (r->skip > 0) {
            r->skip--;
            break;
        }
        if (r->remaining > 0)
            r->remaining--;
        err = r->err;
        delay_ms = r->err ? 0 : r->delay_ms;
        if (!path && fd >= 0)
            path = fd_path(fd, buf, sizeof(buf));
        log_fired(op, r, path);
        break;
    }
    pthread_mutex_unlock(&lock);
    if (delay_ms > 0) {
        struct timespec ts = {delay_ms / 1000, (long)(delay_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
    in_shim = 0;
    return err;
}

/* ---- remembering which path a descriptor was opened with ---- */

static void remember_fd(int fd, int dirfd, const char *path)
{
    if (fd < 0 || fd >= MAX_TRACKED_FDS || !rules_file || in_shim)
        return;
    in_shim = 1;
    char *full = NULL;
    pthread_mutex_lock(&lock);
    if (path[0] == '/') {
        full = strdup(path);
    } else {
        char base[PATH_MAX];
        const char *dir = NULL;
        if (dirfd == AT_FDCWD)
            dir = getcwd(base, sizeof(base));
        else
            dir = fd_path(dirfd, base, sizeof(base));
        if (dir && asprintf(&full, "%s/%s", dir, path) < 0)
            full = NULL;
    }
    free(fd_paths[fd]);
    fd_paths[fd] = full;
    pthread_mutex_unlock(&lock);
    in_shim = 0;
}

static void forget_fd(int fd)
{
    if (fd < 0 || fd >= MAX_TRACKED_FDS || !rules_file)
        return;
    pthread_mutex_lock(&lock);
    free(fd_paths[fd]);
    fd_paths[fd] = NULL;
    pthread_mutex_unlock(&lock);
}

__attribute__((constructor)) static void faultfs_init(void)
{
    const char *f = getenv("VIGIL_FAULTS_FILE");
    if (f && *f)
        rules_file = strdup(f);
    const char *l = getenv("VIGIL_FAULTS_LOG");
    if (l && *l)
        log_file = strdup(l);
}

#define FAIL_IF(expr)                \
    do {                             \
        int fail_errno_ = (expr);    \
        if (fail_errno_) {           \
            errno = fail_errno_;     \
            return -1;               \
        }                            \
    } while (0)

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & (O_CREAT | __O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

/* A path relative to dirfd, made absolute enough for substring rules. */
static const char *at_path(int dirfd, const char *path, char *buf, size_t size)
{
    if (!path || path[0] == '/' || dirfd == AT_FDCWD || !rules_file || in_shim)
        return path;
    char dir[PATH_MAX];
    pthread_mutex_lock(&lock);
    const char *d = fd_path(dirfd, dir, sizeof(dir));
    if (d)
        snprintf(buf, size, "%s/%s", d, path);
    pthread_mutex_unlock(&lock);
    return d ? buf : path;
}

/* ---- open ---- */

#define OPEN_BODY(name)                                   \
    RESOLVE(name);                                        \
    va_list ap;                                           \
    va_start(ap, flags);                                  \
    mode_t mode = mode_arg(flags, ap);                    \
    va_end(ap);                                           \
    FAIL_IF(check(OP_OPEN, path, NULL, -1));              \
    int fd = REAL(name)(path, flags, mode);               \
    remember_fd(fd, AT_FDCWD, path);                      \
    return fd

int open(const char *path, int flags, ...) { OPEN_BODY(open); }
int open64(const char *path, int flags, ...) { OPEN_BODY(open64); }

#define OPENAT_BODY(name)                                            \
    RESOLVE(name);                                                   \
    va_list ap;                                                      \
    va_start(ap, flags);                                             \
    mode_t mode = mode_arg(flags, ap);                               \
    va_end(ap);                                                      \
    char buf[PATH_MAX];                                              \
    FAIL_IF(check(OP_OPEN, at_path(dirfd, path, buf, sizeof(buf)), NULL, -1)); \
    int fd = REAL(name)(dirfd, path, flags, mode);                   \
    remember_fd(fd, dirfd, path);                                    \
    return fd

int openat(int dirfd, const char *path, int flags, ...) { OPENAT_BODY(openat); }
int openat64(int dirfd, const char *path, int flags, ...) { OPENAT_BODY(openat64); }

int __open_2(const char *path, int flags)
{
    RESOLVE(__open_2);
    FAIL_IF(check(OP_OPEN, path, NULL, -1));
    int fd = REAL(__open_2)(path, flags);
    remember_fd(fd, AT_FDCWD, path);
    return fd;
}

int __open64_2(const char *path, int flags)
{
    RESOLVE(__open64_2);
    FAIL_IF(check(OP_OPEN, path, NULL, -1));
    int fd = REAL(__open64_2)(path, flags);
    remember_fd(fd, AT_FDCWD, path);
    return fd;
}

int __openat_2(int dirfd, const char *path, int flags)
{
    RESOLVE(__openat_2);
    char buf[PATH_MAX];
    FAIL_IF(check(OP_OPEN, at_path(dirfd, path, buf, sizeof(buf)), NULL, -1));
    int fd = REAL(__openat_2)(dirfd, path, flags);
    remember_fd(fd, dirfd, path);
    return fd;
}

int __openat64_2(int dirfd, const char *path, int flags)
{
    RESOLVE(__openat64_2);
    char buf[PATH_MAX];
    FAIL_IF(check(OP_OPEN, at_path(dirfd, path, buf, sizeof(buf)), NULL, -1));
    int fd = REAL(__openat64_2)(dirfd, path, flags);
    remember_fd(fd, dirfd, path);
    return fd;
}

int creat(const char *path, mode_t mode)
{
    RESOLVE(creat);
    FAIL_IF(check(OP_OPEN, path, NULL, -1));
    int fd = REAL(creat)(path, mode);
    remember_fd(fd, AT_FDCWD, path);
    return fd;
}

int creat64(const char *path, mode_t mode)
{
    RESOLVE(creat64);
    FAIL_IF(check(OP_OPEN, path, NULL, -1));
    int fd = REAL(creat64)(path, mode);
    remember_fd(fd, AT_FDCWD, path);
    return fd;
}

/* ---- descriptor calls ---- */

ssize_t write(int fd, const void *buf, size_t n)
{
    RESOLVE(write);
    FAIL_IF(check(OP_WRITE, NULL, NULL, fd));
    return REAL(write)(fd, buf, n);
}

ssize_t read(int fd, void *buf, size_t n)
{
    RESOLVE(read);
    FAIL_IF(check(OP_READ, NULL, NULL, fd));
    return REAL(read)(fd, buf, n);
}

ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
    RESOLVE(pread);
    FAIL_IF(check(OP_READ, NULL, NULL, fd));
    return REAL(pread)(fd, buf, n, off);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t off)
{
    RESOLVE(pread64);
    FAIL_IF(check(OP_READ, NULL, NULL, fd));
    return REAL(pread64)(fd, buf, n, off);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    RESOLVE(pwrite);
    FAIL_IF(check(OP_PWRITE, NULL, NULL, fd));
    return REAL(pwrite)(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
    RESOLVE(pwrite64);
    FAIL_IF(check(OP_PWRITE, NULL, NULL, fd));
    return REAL(pwrite64)(fd, buf, n, off);
}

int fsync(int fd)
{
    RESOLVE(fsync);
    FAIL_IF(check(OP_FSYNC, NULL, NULL, fd));
    return REAL(fsync)(fd);
}

int fdatasync(int fd)
{
    RESOLVE(fdatasync);
    FAIL_IF(check(OP_FDATASYNC, NULL, NULL, fd));
    return REAL(fdatasync)(fd);
}

int syncfs(int fd)
{
    RESOLVE(syncfs);
    FAIL_IF(check(OP_SYNCFS, NULL, NULL, fd));
    return REAL(syncfs)(fd);
}

int ftruncate(int fd, off_t len)
{
    RESOLVE(ftruncate);
    FAIL_IF(check(OP_FTRUNCATE, NULL, NULL, fd));
    return REAL(ftruncate)(fd, len);
}

int ftruncate64(int fd, off_t len)
{
    RESOLVE(ftruncate64);
    FAIL_IF(check(OP_FTRUNCATE, NULL, NULL, fd));
    return REAL(ftruncate64)(fd, len);
}

/* A close that "fails" still releases the descriptor, as Linux does. */
int close(int fd)
{
    RESOLVE(close);
    int err = check(OP_CLOSE, NULL, NULL, fd);
    forget_fd(fd);
    int rc = REAL(close)(fd);
    FAIL_IF(err);
    return rc;
}

/* ---- path calls ---- */

int rename(const char *from, const char *to)
{
    RESOLVE(rename);
    FAIL_IF(check(OP_RENAME, from, to, -1));
    return REAL(rename)(from, to);
}

int renameat(int fromfd, const char *from, int tofd, const char *to)
{
    RESOLVE(renameat);
    char b1[PATH_MAX], b2[PATH_MAX];
    FAIL_IF(check(OP_RENAME, at_path(fromfd, from, b1, sizeof(b1)),
                  at_path(tofd, to, b2, sizeof(b2)), -1));
    return REAL(renameat)(fromfd, from, tofd, to);
}

int renameat2(int fromfd, const char *from, int tofd, const char *to, unsigned flags)
{
    RESOLVE(renameat2);
    char b1[PATH_MAX], b2[PATH_MAX];
    FAIL_IF(check(OP_RENAME, at_path(fromfd, from, b1, sizeof(b1)),
                  at_path(tofd, to, b2, sizeof(b2)), -1));
    return REAL(renameat2)(fromfd, from, tofd, to, flags);
}

int unlink(const char *path)
{
    RESOLVE(unlink);
    FAIL_IF(check(OP_UNLINK, path, NULL, -1));
    return REAL(unlink)(path);
}

int unlinkat(int dirfd, const char *path, int flags)
{
    RESOLVE(unlinkat);
    char buf[PATH_MAX];
    FAIL_IF(check(OP_UNLINKAT, at_path(dirfd, path, buf, sizeof(buf)), NULL, -1));
    return REAL(unlinkat)(dirfd, path, flags);
}

int mkdir(const char *path, mode_t mode)
{
    RESOLVE(mkdir);
    FAIL_IF(check(OP_MKDIR, path, NULL, -1));
    return REAL(mkdir)(path, mode);
}

int mkdirat(int dirfd, const char *path, mode_t mode)
{
    RESOLVE(mkdirat);
    char buf[PATH_MAX];
    FAIL_IF(check(OP_MKDIR, at_path(dirfd, path, buf, sizeof(buf)), NULL, -1));
    return REAL(mkdirat)(dirfd, path, mode);
}

/* ---- stat ---- */

#define STAT_PATH(name, type)                           \
    int name(const char *path, type *st)                \
    {                                                   \
        RESOLVE(name);                                  \
        FAIL_IF(check(OP_STAT, path, NULL, -1));        \
        return REAL(name)(path, st);                    \
    }
STAT_PATH(stat, struct stat)
STAT_PATH(stat64, struct stat64)
STAT_PATH(lstat, struct stat)
STAT_PATH(lstat64, struct stat64)

#define STAT_FD(name, type)                             \
    int name(int fd, type *st)                          \
    {                                                   \
        RESOLVE(name);                                  \
        FAIL_IF(check(OP_STAT, NULL, NULL, fd));        \
        return REAL(name)(fd, st);                      \
    }
STAT_FD(fstat, struct stat)
STAT_FD(fstat64, struct stat64)

#define STAT_AT(name, type)                                                  \
    int name(int dirfd, const char *path, type *st, int flags)               \
    {                                                                        \
        RESOLVE(name);                                                       \
        char buf[PATH_MAX];                                                  \
        const char *p = at_path(dirfd, path, buf, sizeof(buf));              \
        FAIL_IF(check(OP_STAT, p && *p ? p : NULL, NULL,                     \
                      p && *p ? -1 : dirfd));                                \
        return REAL(name)(dirfd, path, st, flags);                           \
    }
STAT_AT(fstatat, struct stat)
STAT_AT(fstatat64, struct stat64)
