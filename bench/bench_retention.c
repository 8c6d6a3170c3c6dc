/* Retention benchmark. Builds a synthetic index the size of a full appliance
 * (100 sources x 60 days x 1440 one-minute segments = 8.64 M rows), puts
 * 100 000 of those rows just past keep_days with small real files behind
 * them, and times what the sweeper and the admin page do with it:
 *
 *   1. a sweep that finds nothing to delete       (target < 5 ms)
 *   2. deleting the 100 000-segment backlog       (target >= 5 000 segments/s)
 *   3. the storage figures (ret_storage)          (target < 50 ms)
 *
 * then, on 20 000 extra rows, where the deletion time goes (plan, the three
 * phases of the two-phase delete), and, on the same files made again, what
 * plain unlinks cost (the filesystem's floor) and what a directory fsync per
 * file instead of per directory costs.
 *
 * The schema comes from idx_open and the sources from idx_source_register; the
 * segment rows are bulk-loaded with plain SQLite on the same file (one
 * transaction, synchronous=OFF and no journal during the load only). All
 * measured calls go through the library: ret_plan, ret_execute, ret_sweep,
 * ret_storage. Disk figures are handed in (roomy, no reserve) so disk
 * pressure never joins in; the full ret_sweep line reads the real disk with
 * capacity_bytes = 0 and reserve_percent = 0, which is just as roomy.
 *
 * usage: bench_retention [--dir D] [--keep] [--reuse] [--results FILE]
 *                        [--empty-runs N] [--storage-runs N] [--no-probe]
 *
 * --dir D      work directory (default: a new /tmp/vigil-bench-retention.*);
 *              an existing D must be empty or a previous run's
 * --keep       leave the work directory in place
 * --reuse      keep a pristine copy of the generated index in D and start
 *              from it next time (needs --dir); the media files are always
 *              made afresh
 * --results F  replace this program's section of F (markdown)
 * --empty-runs N, --storage-runs N
 *              measured calls per figure (50, 20), after warm-up calls; a
 *              call that takes seconds stops after 3 runs once 30 s are spent
 * --no-probe   skip the breakdown on 20 000 extra rows
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "archive/archive.h"
#include "core/config.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"
#include "index/index.h"
#include "retention/retention.h"

#define N_SOURCES 100
#define DAYS 60
#define SEGS_PER_DAY 1440
#define SEGS_PER_SOURCE (DAYS * SEGS_PER_DAY)
#define EXPIRED_PER_SOURCE 1000
#define N_ROWS ((int64_t)N_SOURCES * SEGS_PER_SOURCE)
#define N_EXPIRED ((int64_t)N_SOURCES * EXPIRED_PER_SOURCE)
#define PROBE_PER_SOURCE 200
#define N_PROBE ((int64_t)N_SOURCES * PROBE_PER_SOURCE)
#define SEG_US (60LL * 1000000LL)
#define KEEP_DAYS 60
#define FILE_BYTES 1024
#define WARMUPS 3
/* 2024-06-01T00:00:00Z: fixed, so every run builds the same index. */
#define NOW_US (1717200000LL * 1000000LL)

#define TARGET_EMPTY_MS 5.0
#define TARGET_DELETE_PER_S 5000.0
#define TARGET_STORAGE_MS 50.0

#define SECTION_TITLE "## Retention (bench/bench_retention.c)"
#define MARKER_FILE ".bench_retention"
#define PRISTINE_FILE "bench-pristine.db"

/* ---- small helpers ---- */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_retention: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void check(int rc, const char *what)
{
    if (rc != VG_OK)
        die("%s failed: %s", what, vg_strerror(rc));
}

static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void progress(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[retention] ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* A growing string for the markdown section. */
typedef struct {
    char *s;
    size_t len, cap;
} sbuf_t;

static void sb_printf(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf_t *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int k = vsnprintf(b->s ? b->s + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (k < 0)
            die("formatting failed");
        if ((size_t)k < room) {
            b->len += (size_t)k;
            return;
        }
        b->cap = (b->cap + (size_t)k + 1) * 2;
        b->s = vg_realloc(b->s, b->cap);
    }
}

/* 8640000 -> "8 640 000" (thin grouping, as the other sections use). */
static const char *grouped(int64_t v, char *out, size_t size)
{
    char digits[32];
    snprintf(digits, sizeof(digits), "%" PRId64, v < 0 ? -v : v);
    size_t n = strlen(digits), o = 0;
    if (v < 0 && o + 1 < size)
        out[o++] = '-';
    for (size_t i = 0; i < n && o + 2 < size; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            out[o++] = ' ';
        out[o++] = digits[i];
    }
    out[o] = '\0';
    return out;
}

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* 64 lowercase hex digits, deterministic in seed. */
static void fake_sha256(uint64_t seed, char hex[65])
{
    for (int i = 0; i < 4; i++)
        snprintf(hex + 16 * i, 17, "%016" PRIx64, mix64(seed * 4 + (uint64_t)i));
}

typedef struct {
    double median, p99, min, max;
    int n;
} stats_t;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median, and p99 by nearest rank (with 20 samples that is the maximum). */
static stats_t summarize(double *v, int n)
{
    stats_t s = {0};
    if (n <= 0)
        return s;
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    s.n = n;
    s.min = v[0];
    s.max = v[n - 1];
    s.median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    int rank = (int)ceil(0.99 * n);
    s.p99 = v[(rank < 1 ? 1 : rank) - 1];
    return s;
}

/* ---- the synthetic archive ---- */

static char g_names[N_SOURCES][8];

/* Start of row k (0 = oldest) of source s. The oldest EXPIRED_PER_SOURCE rows
 * lie just past keep_days (the newest of them ends exactly keep_days before
 * NOW); the other rows are contiguous and end at NOW. Sources are a few ms
 * apart, as real cameras are. */
static int64_t row_start(int s, int k)
{
    int64_t skew = (int64_t)s * 10007;
    if (k < EXPIRED_PER_SOURCE)
        return NOW_US - KEEP_DAYS * RET_DAY_US - (int64_t)(EXPIRED_PER_SOURCE - k) * SEG_US -
               skew;
    return NOW_US - (int64_t)(SEGS_PER_SOURCE - k) * SEG_US - skew;
}

/* Probe rows (the breakdown run): two days older than the oldest above. */
static int64_t probe_start(int s, int j)
{
    return NOW_US - (KEEP_DAYS + 2) * RET_DAY_US + (int64_t)j * SEG_US - (int64_t)s * 10007;
}

/* The archive's layout (archive/archive.h):
 * media/<source>/<YYYY-MM-DD>/<start_us>.mp4, the day in UTC. */
static void segment_rel_path(char *out, size_t size, int s, int64_t start_us)
{
    time_t secs = (time_t)(start_us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    int k = snprintf(out, size, "media/%s/%04d-%02d-%02d/%" PRId64 ".mp4", g_names[s],
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, start_us);
    if (k < 0 || (size_t)k >= size)
        die("segment path too long");
}

static void fill_segment(idx_segment_t *seg, int s, int64_t start_us, uint64_t seed)
{
    memset(seg, 0, sizeof(*seg));
    snprintf(seg->source, sizeof(seg->source), "%s", g_names[s]);
    seg->start_us = start_us;
    seg->end_us = start_us + SEG_US;
    seg->media_us = SEG_US;
    seg->bytes = 600000 + (int64_t)(mix64(seed) % 40000);
    fake_sha256(seed, seg->sha256);
    snprintf(seg->codecs, sizeof(seg->codecs), "h264");
    seg->init_bytes = 1200;
    segment_rel_path(seg->path, sizeof(seg->path), s, start_us);
}

static void exec_raw(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        die("%s: %s", sql, msg ? msg : sqlite3_errmsg(db));
}

/* Schema and sources through the library, then the rows in one transaction on
 * a plain connection, oldest minute first across all sources (the order a
 * running vigild inserts them in). */
static void generate_index(const char *db_path)
{
    idx_t *idx = NULL;
    check(idx_open(db_path, 0, &idx), "idx_open (schema)");
    for (int s = 0; s < N_SOURCES; s++)
        check(idx_source_register(idx, g_names[s], "video"), "idx_source_register");
    idx_close(idx);

    sqlite3 *db = NULL;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
        die("open %s: %s", db_path, db ? sqlite3_errmsg(db) : "out of memory");
    /* Load-only settings: a crash here just means generating again. idx_open
     * puts WAL and synchronous=FULL back when the benchmark opens the index. */
    exec_raw(db, "PRAGMA journal_mode = OFF");
    exec_raw(db, "PRAGMA synchronous = OFF");
    exec_raw(db, "PRAGMA cache_size = -1048576");

    int64_t ids[N_SOURCES];
    sqlite3_stmt *q = NULL;
    if (sqlite3_prepare_v2(db, "SELECT id FROM source WHERE name = ?1", -1, &q, NULL) != SQLITE_OK)
        die("prepare: %s", sqlite3_errmsg(db));
    for (int s = 0; s < N_SOURCES; s++) {
        sqlite3_bind_text(q, 1, g_names[s], -1, SQLITE_STATIC);
        if (sqlite3_step(q) != SQLITE_ROW)
            die("source %s was not registered", g_names[s]);
        ids[s] = sqlite3_column_int64(q, 0);
        sqlite3_reset(q);
    }
    sqlite3_finalize(q);

    sqlite3_stmt *ins = NULL;
    if (sqlite3_prepare_v2(db,
                           "INSERT INTO segment(source_id, start_us, end_us, media_us, bytes,"
                           " sha256, codecs, init_bytes, path)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                           -1, &ins, NULL) != SQLITE_OK)
        die("prepare insert: %s", sqlite3_errmsg(db));
    exec_raw(db, "BEGIN");
    double t0 = mono_s();
    idx_segment_t seg;
    for (int k = 0; k < SEGS_PER_SOURCE; k++) {
        for (int s = 0; s < N_SOURCES; s++) {
            fill_segment(&seg, s, row_start(s, k), (uint64_t)k * N_SOURCES + (uint64_t)s);
            sqlite3_bind_int64(ins, 1, ids[s]);
            sqlite3_bind_int64(ins, 2, seg.start_us);
            sqlite3_bind_int64(ins, 3, seg.end_us);
            sqlite3_bind_int64(ins, 4, seg.media_us);
            sqlite3_bind_int64(ins, 5, seg.bytes);
            sqlite3_bind_text(ins, 6, seg.sha256, -1, SQLITE_STATIC);
            sqlite3_bind_text(ins, 7, seg.codecs, -1, SQLITE_STATIC);
            sqlite3_bind_int64(ins, 8, seg.init_bytes);
            sqlite3_bind_text(ins, 9, seg.path, -1, SQLITE_STATIC);
            if (sqlite3_step(ins) != SQLITE_DONE)
                die("insert %s: %s", seg.path, sqlite3_errmsg(db));
            sqlite3_reset(ins);
        }
        if ((k + 1) % (SEGS_PER_SOURCE / 10) == 0)
            progress("  rows: %d%% (%.0f s)", (k + 1) * 100 / SEGS_PER_SOURCE, mono_s() - t0);
    }
    sqlite3_finalize(ins);
    exec_raw(db, "COMMIT");
    exec_raw(db, "PRAGMA synchronous = FULL");
    if (sqlite3_close(db) != SQLITE_OK)
        die("close %s", db_path);
}

static void write_file(const char *data_dir, const char *rel)
{
    static char payload[FILE_BYTES];
    static char last_dir[512];
    char *abs = vg_asprintf("%s/%s", data_dir, rel);
    char *slash = strrchr(abs, '/');
    *slash = '\0';
    if (strcmp(abs, last_dir) != 0) {
        check(vg_mkdir_p(abs), "create media directories");
        snprintf(last_dir, sizeof(last_dir), "%s", abs);
    }
    *slash = '/';
    int fd = open(abs, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        die("create %s: %s", abs, strerror(errno));
    if (vg_write_all(fd, payload, sizeof(payload)) != VG_OK)
        die("write %s: %s", abs, strerror(errno));
    close(fd);
    free(abs);
}

/* The real files behind the expired rows. */
static void make_expired_files(const char *data_dir)
{
    char rel[256];
    for (int s = 0; s < N_SOURCES; s++) {
        for (int k = 0; k < EXPIRED_PER_SOURCE; k++) {
            segment_rel_path(rel, sizeof(rel), s, row_start(s, k));
            write_file(data_dir, rel);
        }
    }
}

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)type;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT)
        fprintf(stderr, "bench_retention: cannot remove %s: %s\n", path, strerror(errno));
    return 0;
}

static void remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0)
        nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
}

static long g_counted_files;

static int count_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)path;
    (void)sb;
    (void)ftw;
    if (type == FTW_F)
        g_counted_files++;
    return 0;
}

static long count_files(const char *dir)
{
    g_counted_files = 0;
    struct stat st;
    if (lstat(dir, &st) == 0)
        nftw(dir, count_entry, 32, FTW_PHYS);
    return g_counted_files;
}

static void copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        die("open %s: %s", from, strerror(errno));
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (out < 0)
        die("create %s: %s", to, strerror(errno));
    static char buf[1 << 20];
    ssize_t k;
    while ((k = read(in, buf, sizeof(buf))) > 0) {
        if (vg_write_all(out, buf, (size_t)k) != VG_OK)
            die("write %s: %s", to, strerror(errno));
    }
    if (k < 0)
        die("read %s: %s", from, strerror(errno));
    close(in);
    close(out);
}

static void remove_index_files(const char *db_path)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        char *p = vg_asprintf("%s%s", db_path, suffixes[i]);
        if (unlink(p) != 0 && errno != ENOENT)
            die("remove %s: %s", p, strerror(errno));
        free(p);
    }
}

/* ---- the configuration ---- */

static void make_config(vg_config_t *cfg, vg_source_config_t *sources, char *data_dir)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->data_dir = data_dir;
    cfg->log_level = VG_LOG_WARNING;
    cfg->segment_seconds = 60;
    cfg->retention.min_days = KEEP_DAYS;
    cfg->retention.keep_days = KEEP_DAYS;
    cfg->retention.capacity_bytes = 0; /* the filesystem's, for the ret_sweep line */
    cfg->retention.reserve_percent = 0;
    cfg->retention.on_full = VG_ON_FULL_OVERWRITE;
    cfg->retention.sweep_seconds = 60;
    for (int s = 0; s < N_SOURCES; s++) {
        memset(&sources[s], 0, sizeof(sources[s]));
        sources[s].name = g_names[s];
        sources[s].url = "rtsp://camera.invalid/stream";
        sources[s].kind = VG_SOURCE_VIDEO;
        sources[s].transport = VG_TRANSPORT_TCP;
    }
    cfg->sources = sources;
    cfg->n_sources = N_SOURCES;
}

/* Far more room than any archive here: no disk pressure, ever. */
static ret_disk_t roomy_disk(void)
{
    ret_disk_t d = {.capacity_bytes = 1000000000000000LL,
                    .free_bytes = 1000000000000000LL,
                    .reserve_bytes = 0};
    return d;
}

/* ---- measurements ---- */

typedef enum { CALL_PLAN_EXECUTE, CALL_SWEEP, CALL_STORAGE } call_kind_t;

/* One timed call and what it answered. */
typedef struct {
    idx_t *idx;
    const vg_config_t *cfg;
    int64_t at_us;
    call_kind_t kind;
    int64_t segments; /* storage: sum over the sources' figures */
    size_t n_sources;
} call_t;

/* Runs the call once; returns its duration in ms. An empty sweep must find
 * nothing: anything else means the index is not what this benchmark built. */
static double call_once(call_t *c)
{
    ret_disk_t disk = roomy_disk();
    double t0 = mono_s(), t1 = 0;
    if (c->kind == CALL_PLAN_EXECUTE) {
        ret_plan_t plan;
        check(ret_plan(c->idx, c->cfg, c->at_us, &disk, 0, &plan), "ret_plan");
        check(ret_execute(c->idx, c->cfg->data_dir, &plan, c->at_us), "ret_execute");
        t1 = mono_s();
        if (plan.n != 0)
            die("empty sweep: the plan has %zu victims", plan.n);
        ret_plan_free(&plan);
    } else if (c->kind == CALL_SWEEP) {
        ret_sweep_result_t res;
        check(ret_sweep(c->idx, c->cfg, c->at_us, 0, &res), "ret_sweep");
        t1 = mono_s();
        if (res.deleted != 0 || res.stop_recording)
            die("empty ret_sweep deleted %zu (stop %d)", res.deleted, res.stop_recording);
    } else {
        ret_storage_t st;
        check(ret_storage(c->idx, c->cfg, c->at_us, &disk, &st), "ret_storage");
        t1 = mono_s();
        c->segments = 0;
        for (size_t k = 0; k < st.n_sources; k++)
            c->segments += st.sources[k].segments;
        c->n_sources = st.n_sources;
        ret_storage_free(&st);
    }
    return (t1 - t0) * 1e3;
}

/* WARMUPS unmeasured calls (just one when a call takes seconds), then up to
 * runs measured ones; a slow call stops after MIN_RUNS once BUDGET_S is
 * spent, so a missed target costs minutes, not hours. */
#define MIN_RUNS 3
#define BUDGET_S 30.0

static stats_t repeat(call_t *c, int runs, const char *label)
{
    double first = call_once(c);
    for (int i = 1; i < WARMUPS && first < 1000.0; i++)
        call_once(c);
    double *v = vg_malloc((size_t)runs * sizeof(double));
    double t0 = mono_s();
    int n = 0;
    while (n < runs) {
        v[n++] = call_once(c);
        if (n >= MIN_RUNS && mono_s() - t0 > BUDGET_S)
            break;
    }
    stats_t st = summarize(v, n);
    free(v);
    progress("  %s: median %.3f ms, p99 %.3f ms over %d runs%s", label, st.median, st.p99, n,
             n < runs ? " (time budget reached)" : "");
    return st;
}

typedef struct {
    stats_t plan_exec; /* ret_plan + ret_execute, ms */
    stats_t sweep;     /* full ret_sweep, ms */
} empty_result_t;

static void time_empty_sweep(idx_t *idx, const vg_config_t *cfg, int64_t at_us, int runs,
                             empty_result_t *out)
{
    call_t c = {.idx = idx, .cfg = cfg, .at_us = at_us, .kind = CALL_PLAN_EXECUTE};
    out->plan_exec = repeat(&c, runs, "ret_plan + ret_execute");
    c.kind = CALL_SWEEP;
    out->sweep = repeat(&c, runs, "ret_sweep");
}

typedef struct {
    stats_t ms;
    int64_t segments; /* sum over the sources' figures */
    size_t n_sources;
} storage_result_t;

static void time_storage(idx_t *idx, const vg_config_t *cfg, int runs, storage_result_t *out)
{
    call_t c = {.idx = idx, .cfg = cfg, .at_us = NOW_US, .kind = CALL_STORAGE};
    out->ms = repeat(&c, runs, "ret_storage");
    out->segments = c.segments;
    out->n_sources = c.n_sources;
}

typedef struct {
    int64_t deleted;
    int sweeps;
    double plan_s, exec_s;
    double exec_min_s, exec_max_s;
} delete_result_t;

/* Sweeps at NOW until the plan comes back empty, as vigild's sweeper would
 * (it handles at most a bounded number of segments per sweep). */
static void delete_backlog(idx_t *idx, const vg_config_t *cfg, delete_result_t *out)
{
    ret_disk_t disk = roomy_disk();
    memset(out, 0, sizeof(*out));
    out->exec_min_s = 1e9;
    for (;;) {
        ret_plan_t plan;
        double t0 = mono_s();
        check(ret_plan(idx, cfg, NOW_US, &disk, 0, &plan), "ret_plan");
        double t1 = mono_s();
        out->plan_s += t1 - t0;
        if (plan.n == 0) {
            ret_plan_free(&plan);
            break;
        }
        for (size_t i = 0; i < plan.n; i++) {
            if (plan.victims[i].reason != RET_AGE)
                die("victim %s: reason %s, expected age", plan.victims[i].seg.path,
                    ret_reason_name(plan.victims[i].reason));
        }
        check(ret_execute(idx, cfg->data_dir, &plan, NOW_US), "ret_execute");
        double t2 = mono_s();
        double e = t2 - t1;
        out->exec_s += e;
        out->exec_min_s = e < out->exec_min_s ? e : out->exec_min_s;
        out->exec_max_s = e > out->exec_max_s ? e : out->exec_max_s;
        out->deleted += (int64_t)plan.n;
        out->sweeps++;
        progress("  sweep %d: %zu deleted (plan %.2f s, execute %.2f s)", out->sweeps, plan.n,
                 t1 - t0, e);
        ret_plan_free(&plan);
        if (out->sweeps > 1000)
            die("the backlog does not shrink");
    }
}

typedef struct {
    long files_left;
    int64_t rows_left;
    size_t marked_left;
    int64_t logged_segments;
    int64_t logged_bytes;
    size_t logged_runs;
    int ok;
} verify_result_t;

static void verify_deleted(idx_t *idx, const char *data_dir, const delete_result_t *del,
                           verify_result_t *out)
{
    memset(out, 0, sizeof(*out));
    char *media = vg_asprintf("%s/media", data_dir);
    out->files_left = count_files(media);
    free(media);

    idx_source_stats_t *st = NULL;
    size_t n = 0;
    check(idx_source_stats(idx, NOW_US, RET_DAY_US, &st, &n), "idx_source_stats");
    int oldest_ok = 1;
    for (size_t i = 0; i < n; i++) {
        out->rows_left += st[i].segments;
        int s = atoi(st[i].source + 1);
        if (st[i].oldest_us != row_start(s, EXPIRED_PER_SOURCE))
            oldest_ok = 0;
    }
    free(st);

    idx_segment_t *marked = NULL;
    check(idx_deleting_segments(idx, INT64_MAX, &marked, &out->marked_left), "idx_deleting_segments");
    free(marked);

    idx_destruction_row_t *log = NULL;
    size_t n_log = 0;
    check(idx_destruction_log(idx, 0, INT64_MAX, &log, &n_log), "idx_destruction_log");
    int64_t last_run = 0;
    for (size_t i = 0; i < n_log; i++) {
        if (strcmp(log[i].reason, "age") != 0)
            continue;
        out->logged_segments += log[i].segments;
        out->logged_bytes += log[i].bytes;
        if (log[i].run_id != last_run)
            out->logged_runs++;
        last_run = log[i].run_id;
    }
    free(log);
    out->ok = out->files_left == 0 && out->rows_left == N_ROWS - N_EXPIRED &&
              out->marked_left == 0 && out->logged_segments == N_EXPIRED &&
              del->deleted == N_EXPIRED && oldest_ok;
}

typedef struct {
    int64_t n;
    size_t dirs;
    double plan_s, mark_s, unlink_s, drop_s;
    double plain_unlink_s; /* plain unlinks, no fsync: the filesystem's floor */
    double per_file_s;     /* arc_remove_segment_file per file: a fsync each */
    int done;
} probe_result_t;

/* One sweep's worth of extra expired rows, inserted through the library. */
static void insert_probe_rows(idx_t *idx, const char *data_dir)
{
    check(idx_begin(idx), "idx_begin");
    idx_segment_t seg;
    for (int s = 0; s < N_SOURCES; s++) {
        for (int j = 0; j < PROBE_PER_SOURCE; j++) {
            fill_segment(&seg, s, probe_start(s, j), 0xb0b0000000ULL + (uint64_t)s * 1000 + (uint64_t)j);
            check(idx_segment_insert(idx, &seg), "idx_segment_insert");
            write_file(data_dir, seg.path);
        }
    }
    check(idx_commit(idx), "idx_commit");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Makes files at scratch/<path> of segs, syncs, then times removing them:
 * with per_file, one arc_remove_segment_file each (unlink and a directory
 * fsync per file); without, plain unlinks and no fsync at all. */
static double scratch_unlinks(const char *data_dir, const idx_segment_t *segs, size_t n,
                              int per_file)
{
    char **rel = vg_malloc(n * sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        rel[i] = vg_asprintf("scratch/%s", segs[i].path);
        write_file(data_dir, rel[i]);
    }
    sync();
    double t0 = mono_s();
    for (size_t i = 0; i < n; i++) {
        if (per_file) {
            check(arc_remove_segment_file(data_dir, rel[i]), "arc_remove_segment_file");
            continue;
        }
        char *abs = vg_asprintf("%s/%s", data_dir, rel[i]);
        if (unlink(abs) != 0)
            die("unlink %s: %s", abs, strerror(errno));
        free(abs);
    }
    double took = mono_s() - t0;
    for (size_t i = 0; i < n; i++)
        free(rel[i]);
    free(rel);
    char *scratch = vg_asprintf("%s/scratch", data_dir);
    remove_tree(scratch);
    free(scratch);
    return took;
}

/* Where a sweep's time goes: ret_plan, then the three phases of ret_execute
 * called one by one through the index and archive API in the order
 * ret_execute uses. Then the same number of files, unindexed, removed with
 * plain unlinks (the floor) and with one fsync per file. */
static void probe_breakdown(idx_t *idx, const vg_config_t *cfg, probe_result_t *out)
{
    memset(out, 0, sizeof(*out));
    insert_probe_rows(idx, cfg->data_dir);
    sync();

    ret_disk_t disk = roomy_disk();
    ret_plan_t plan;
    double t0 = mono_s();
    check(ret_plan(idx, cfg, NOW_US, &disk, N_PROBE, &plan), "ret_plan");
    double t1 = mono_s();
    if ((int64_t)plan.n != N_PROBE)
        die("probe: planned %zu, expected %" PRId64, plan.n, N_PROBE);
    out->n = (int64_t)plan.n;
    out->plan_s = t1 - t0;

    idx_segment_t *segs = vg_malloc(plan.n * sizeof(*segs));
    char **dirs = vg_malloc(plan.n * sizeof(char *));
    for (size_t i = 0; i < plan.n; i++) {
        segs[i] = plan.victims[i].seg;
        dirs[i] = vg_strdup(segs[i].path);
    }
    ret_plan_free(&plan);
    int64_t run_id = 0;
    t0 = mono_s();
    check(idx_record_destruction(idx, NOW_US, "age", segs, (size_t)out->n, INT64_MAX, NULL,
                                 &run_id),
          "idx_record_destruction");
    t1 = mono_s();
    out->mark_s = t1 - t0;
    int *errs = vg_calloc((size_t)out->n ? (size_t)out->n : 1, sizeof(*errs));
    check(arc_remove_segment_files(cfg->data_dir, segs, (size_t)out->n, errs),
          "arc_remove_segment_files");
    free(errs);
    double t2 = mono_s();
    out->unlink_s = t2 - t1;
    check(idx_drop_deleted(idx, segs, (size_t)out->n), "idx_drop_deleted");
    out->drop_s = mono_s() - t2;

    /* Distinct directories of those files. */
    for (int64_t i = 0; i < out->n; i++) {
        char *slash = strrchr(dirs[i], '/');
        if (slash)
            *slash = '\0';
    }
    qsort(dirs, (size_t)out->n, sizeof(char *), cmp_str);
    for (int64_t i = 0; i < out->n; i++)
        if (i == 0 || strcmp(dirs[i], dirs[i - 1]) != 0)
            out->dirs++;
    for (int64_t i = 0; i < out->n; i++)
        free(dirs[i]);
    free(dirs);

    /* The references, on the same files made again under scratch/;
     * alternating, best of two each: the device's queue (discards, other
     * processes' writes) varies from one round to the next. */
    out->plain_unlink_s = out->per_file_s = 1e9;
    for (int round = 0; round < 2; round++) {
        double plain = scratch_unlinks(cfg->data_dir, segs, (size_t)out->n, 0);
        double per_file = scratch_unlinks(cfg->data_dir, segs, (size_t)out->n, 1);
        out->plain_unlink_s = plain < out->plain_unlink_s ? plain : out->plain_unlink_s;
        out->per_file_s = per_file < out->per_file_s ? per_file : out->per_file_s;
    }
    free(segs);
    out->done = 1;
}

/* ---- the machine ---- */

typedef struct {
    long nproc;
    char cpu[128];
    double ram_gib;
    char fs[64];
    char mount_opts[512];
    double loadavg;
    int other_bench;
} machine_t;

static void read_cpu_model(char *out, size_t size)
{
    snprintf(out, size, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10) == 0) {
            const char *colon = strchr(line, ':');
            if (colon) {
                colon++;
                while (*colon == ' ' || *colon == '\t')
                    colon++;
                snprintf(out, size, "%s", colon);
                out[strcspn(out, "\n")] = '\0';
            }
            break;
        }
    }
    fclose(f);
}

/* Type and options of the mount holding dir: the longest mount point that
 * is a prefix of its real path. */
static void mount_of(const char *dir, char *type, size_t type_size, char *opts, size_t opts_size)
{
    snprintf(type, type_size, "unknown");
    snprintf(opts, opts_size, "?");
    char *real = realpath(dir, NULL);
    FILE *f = real ? fopen("/proc/self/mounts", "r") : NULL;
    if (!f) {
        free(real);
        return;
    }
    char line[1024];
    size_t best = 0;
    while (fgets(line, sizeof(line), f)) {
        char dev[256], point[512], t[64], o[512];
        if (sscanf(line, "%255s %511s %63s %511s", dev, point, t, o) != 4)
            continue;
        size_t len = strlen(point);
        int prefix = strcmp(point, "/") == 0 ||
                     (strncmp(real, point, len) == 0 && (real[len] == '/' || real[len] == '\0'));
        if (prefix && (len > best || best == 0)) {
            best = len;
            snprintf(type, type_size, "%s", t);
            snprintf(opts, opts_size, "%s", o);
        }
    }
    fclose(f);
    free(real);
}

/* Whether another benchmark (bench/ingest.py) is running beside this one. */
static int other_bench_running(void)
{
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    int found = 0;
    const struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300];
        snprintf(path, sizeof(path), "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        char cmd[1024];
        size_t n = fread(cmd, 1, sizeof(cmd) - 1, f);
        fclose(f);
        for (size_t i = 0; i < n; i++)
            if (cmd[i] == '\0')
                cmd[i] = ' ';
        cmd[n] = '\0';
        found = strstr(cmd, "ingest.py") != NULL;
    }
    closedir(d);
    return found;
}

/* The 1-minute load average, -1 if unknown. */
static double read_loadavg(void)
{
    double v = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static void read_machine(const char *dir, machine_t *m)
{
    memset(m, 0, sizeof(*m));
    m->nproc = sysconf(_SC_NPROCESSORS_ONLN);
    read_cpu_model(m->cpu, sizeof(m->cpu));
    m->ram_gib = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE) /
                 (1024.0 * 1024.0 * 1024.0);
    mount_of(dir, m->fs, sizeof(m->fs), m->mount_opts, sizeof(m->mount_opts));
    m->loadavg = read_loadavg();
    m->other_bench = other_bench_running();
}

/* ---- results ---- */

typedef struct {
    char started[32];
    char cmdline[512];
    machine_t machine;
    int reused;
    double gen_rows_s, gen_files_s;
    double db_gib;
    empty_result_t empty_before, empty_after;
    storage_result_t storage_before, storage_after;
    delete_result_t del;
    verify_result_t verify;
    probe_result_t probe;
    int other_bench_at_end;
    double loadavg_at_end;
} report_t;

static const char *yes_no(int met)
{
    return met ? "yes" : "**no**";
}

static void build_section(const report_t *r, sbuf_t *b)
{
    char g1[32], g2[32], g3[32];
    const machine_t *m = &r->machine;
    double del_s = r->del.plan_s + r->del.exec_s;
    double rate = del_s > 0 ? (double)r->del.deleted / del_s : 0;
    double exec_rate = r->del.exec_s > 0 ? (double)r->del.deleted / r->del.exec_s : 0;
    double empty_ms = r->empty_after.plan_exec.median > r->empty_before.plan_exec.median
                          ? r->empty_after.plan_exec.median
                          : r->empty_before.plan_exec.median;
    double storage_ms = r->storage_after.ms.median > r->storage_before.ms.median
                            ? r->storage_after.ms.median
                            : r->storage_before.ms.median;

    sb_printf(b, "%s\n\n", SECTION_TITLE);
    sb_printf(b, "Run %s by `%s`.\n\n", r->started, r->cmdline);
    sb_printf(b, "- Machine: %ld CPUs, %s, %.1f GiB RAM; work directory on %s (`%s`).\n",
              m->nproc, m->cpu, m->ram_gib, m->fs, m->mount_opts);
    sb_printf(b, "- SQLite %s (the library vigil links); index in WAL mode, "
              "synchronous=FULL, no ANALYZE (vigil never runs it).\n", sqlite3_libversion());
    sb_printf(b, "- Index: %s segment rows (%d sources x %d days x %d one-minute segments, "
              "ending at a fixed NOW), %.2f GiB; %s of them (the oldest %d per source) lie "
              "just past keep_days = min_days = %d and have real %d-byte files "
              "(row bytes say ~600 KB: only row counts matter here). ",
              grouped(N_ROWS, g1, sizeof(g1)), N_SOURCES, DAYS, SEGS_PER_DAY, r->db_gib,
              grouped(N_EXPIRED, g2, sizeof(g2)), EXPIRED_PER_SOURCE, KEEP_DAYS, FILE_BYTES);
    if (r->reused)
        sb_printf(b, "Index copied from the pristine copy kept by --reuse in %.0f s; ",
                  r->gen_rows_s);
    else
        sb_printf(b, "Generated in %.0f s (bulk load, one transaction); ", r->gen_rows_s);
    sb_printf(b, "files written in %.0f s. Page cache warm (the index fits in RAM).\n",
              r->gen_files_s);
    sb_printf(b, "- Other load: bench/ingest.py %s at start, %s at end; load average %.2f "
              "at start, %.2f at end (this benchmark alone keeps it near 1).\n\n",
              m->other_bench ? "**running**" : "not running",
              r->other_bench_at_end ? "**running**" : "not running", m->loadavg,
              r->loadavg_at_end);

    sb_printf(b, "| measure | result | target | met? |\n|---|---|---|---|\n");
    sb_printf(b, "| empty sweep: ret_plan + ret_execute, 0 victims (median of %d; worse of "
              "before/after the backlog) | %.3f ms | < %.0f ms | %s |\n",
              r->empty_after.plan_exec.n, empty_ms, TARGET_EMPTY_MS,
              yes_no(empty_ms < TARGET_EMPTY_MS));
    sb_printf(b, "| deletions per second: %s age victims, ret_plan + ret_execute in %d sweeps "
              "| %.0f /s | >= %.0f /s | %s |\n",
              grouped(r->del.deleted, g1, sizeof(g1)), r->del.sweeps, rate, TARGET_DELETE_PER_S,
              yes_no(rate >= TARGET_DELETE_PER_S));
    sb_printf(b, "| storage: ret_storage at NOW, %zu sources (median of %d; worse of "
              "before/after) | %.1f ms | < %.0f ms | %s |\n\n",
              r->storage_after.n_sources, r->storage_after.ms.n, storage_ms, TARGET_STORAGE_MS,
              yes_no(storage_ms < TARGET_STORAGE_MS));

    sb_printf(b, "Details in ms (p99 by nearest rank: under 100 runs it is the maximum; a "
              "call slower than %.0f s in total stops after %d runs):\n\n", BUDGET_S, MIN_RUNS);
    sb_printf(b, "| what | runs | median | p99 | min | max |\n|---|---|---|---|---|---|\n");
    const struct {
        const char *what;
        const stats_t *s;
    } rows[] = {
        {"empty sweep before the backlog (at NOW - 1 d, 8.64 M rows): ret_plan + ret_execute",
         &r->empty_before.plan_exec},
        {"... the same through ret_sweep (finish_pending, statvfs, alarms)",
         &r->empty_before.sweep},
        {"empty sweep after the backlog (at NOW): ret_plan + ret_execute",
         &r->empty_after.plan_exec},
        {"... the same through ret_sweep", &r->empty_after.sweep},
        {"ret_storage before the backlog (8.64 M rows)", &r->storage_before.ms},
        {"ret_storage after the backlog", &r->storage_after.ms},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        sb_printf(b, "| %s | %d | %.3f | %.3f | %.3f | %.3f |\n", rows[i].what, rows[i].s->n,
                  rows[i].s->median, rows[i].s->p99, rows[i].s->min, rows[i].s->max);
    sb_printf(b, "\nAn empty plan costs %.1f us per source at the median (%d sources, "
              "after the backlog).\n\n",
              r->empty_after.plan_exec.median * 1e3 / N_SOURCES, N_SOURCES);

    sb_printf(b, "Backlog: %s segments in %.1f s: planning %.2f s, executing %.1f s "
              "(%.0f /s execute only; per sweep %.1f..%.1f s).\n",
              grouped(r->del.deleted, g1, sizeof(g1)), del_s, r->del.plan_s, r->del.exec_s,
              exec_rate, r->del.exec_min_s, r->del.exec_max_s);
    sb_printf(b, "Checked afterwards: %ld files left under media/, %s rows left (expected %s), "
              "%zu rows still marked, destruction log: %s segments in %zu age runs -> %s.\n\n",
              r->verify.files_left, grouped(r->verify.rows_left, g1, sizeof(g1)),
              grouped(N_ROWS - N_EXPIRED, g2, sizeof(g2)), r->verify.marked_left,
              grouped(r->verify.logged_segments, g3, sizeof(g3)), r->verify.logged_runs,
              r->verify.ok ? "all as expected" : "**MISMATCH**");

    if (r->probe.done) {
        const probe_result_t *p = &r->probe;
        double total = p->plan_s + p->mark_s + p->unlink_s + p->drop_s;
        sb_printf(b, "Where one sweep's time goes (%s extra expired rows, %zu directories, "
                  "the phases called one by one):\n\n",
                  grouped(p->n, g1, sizeof(g1)), p->dirs);
        sb_printf(b, "| step | seconds | share | per segment |\n|---|---|---|---|\n");
        const struct {
            const char *what;
            double s;
        } steps[] = {
            {"ret_plan", p->plan_s},
            {"phase 1: idx_record_destruction (mark + record, one transaction)", p->mark_s},
            {"phase 2: arc_remove_segment_files (unlinks, then one fsync per directory)",
             p->unlink_s},
            {"phase 3: idx_drop_deleted (one transaction)", p->drop_s},
        };
        for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
            sb_printf(b, "| %s | %.2f | %.0f%% | %.0f us |\n", steps[i].what, steps[i].s,
                      total > 0 ? 100.0 * steps[i].s / total : 0, steps[i].s * 1e6 / (double)p->n);
        sb_printf(b, "| total | %.2f | | %.0f /s |\n\n", total,
                  total > 0 ? (double)p->n / total : 0);
        double floor_s = total - p->unlink_s + p->plain_unlink_s;
        double per_file_s = total - p->unlink_s + p->per_file_s;
        sb_printf(b, "The same %s files made again and removed other ways (best of 2 "
                  "alternating rounds): plain unlinks with no fsync at all took %.2f s "
                  "(%.0f /s), the filesystem's floor; one arc_remove_segment_file per file "
                  "(unlink and a directory fsync each, %s fsyncs instead of %zu) took %.2f s. "
                  "With phase 2 at the floor a sweep would run at about %.0f segments/s; with "
                  "a fsync per file at about %.0f segments/s",
                  grouped(p->n, g1, sizeof(g1)), p->plain_unlink_s,
                  p->plain_unlink_s > 0 ? (double)p->n / p->plain_unlink_s : 0,
                  grouped(p->n, g2, sizeof(g2)), p->dirs, p->per_file_s,
                  floor_s > 0 ? (double)p->n / floor_s : 0,
                  per_file_s > 0 ? (double)p->n / per_file_s : 0);
        if (strstr(m->mount_opts, "discard"))
            sb_printf(b, " (the filesystem is mounted with online `discard`, which makes "
                      "freeing blocks wait for the device)");
        sb_printf(b, ".\n");
    }
}

static char *read_whole(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    sbuf_t b = {0};
    char buf[8192];
    size_t k;
    while ((k = fread(buf, 1, sizeof(buf), f)) > 0)
        sb_printf(&b, "%.*s", (int)k, buf);
    fclose(f);
    return b.s ? b.s : vg_strdup("");
}

/* Offset of the line starting with "## " (not "###") at or after from, or
 * the end of text. */
static size_t next_h2(const char *text, size_t from)
{
    size_t i = from;
    while (text[i]) {
        if ((i == 0 || text[i - 1] == '\n') && strncmp(text + i, "## ", 3) == 0)
            return i;
        i++;
    }
    return i;
}

static int all_blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return 0;
    return 1;
}

/* Replaces our section of path (heading to the next level-2 heading), or
 * appends it; every other section stays as it is. Read right before writing,
 * so a section another benchmark wrote meanwhile is kept. */
static void write_section(const char *path, const char *section)
{
    char *old = read_whole(path);
    sbuf_t out = {0};
    if (!old || all_blank(old)) {
        sb_printf(&out, "# vigil benchmark results\n\n%s", section);
    } else {
        size_t start = (size_t)-1;
        size_t title_len = strlen(SECTION_TITLE);
        for (size_t i = 0; old[i]; i++) {
            if ((i == 0 || old[i - 1] == '\n') && strncmp(old + i, SECTION_TITLE, title_len) == 0 &&
                (old[i + title_len] == '\n' || old[i + title_len] == ' ' ||
                 old[i + title_len] == '\t' || old[i + title_len] == '\0')) {
                start = i;
                break;
            }
        }
        if (start == (size_t)-1) {
            size_t len = strlen(old);
            while (len > 0 && old[len - 1] == '\n')
                len--;
            sb_printf(&out, "%.*s\n\n%s", (int)len, old, section);
        } else {
            size_t end = next_h2(old, start + title_len);
            const char *rest = old + end;
            sb_printf(&out, "%.*s%s", (int)start, old, section);
            if (*rest)
                sb_printf(&out, "\n%s", rest);
        }
    }
    /* Exactly one newline at the end. */
    while (out.len > 0 && out.s[out.len - 1] == '\n')
        out.s[--out.len] = '\0';
    sb_printf(&out, "\n");
    char *tmp = vg_asprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f || fwrite(out.s, 1, out.len, f) != out.len || fclose(f) != 0)
        die("write %s: %s", tmp, strerror(errno));
    if (rename(tmp, path) != 0)
        die("rename %s: %s", tmp, strerror(errno));
    free(tmp);
    free(out.s);
    free(old);
}

static void print_table(const report_t *r)
{
    double del_s = r->del.plan_s + r->del.exec_s;
    double rate = del_s > 0 ? (double)r->del.deleted / del_s : 0;
    printf("\n%-58s %14s %12s %5s\n", "measure", "result", "target", "met");
    printf("%-58s %11.3f ms %9s ms %5s\n", "empty sweep before backlog (plan+execute, median)",
           r->empty_before.plan_exec.median, "< 5",
           r->empty_before.plan_exec.median < TARGET_EMPTY_MS ? "yes" : "NO");
    printf("%-58s %11.3f ms %12s\n", "  p99", r->empty_before.plan_exec.p99, "");
    printf("%-58s %11.3f ms %12s\n", "  through ret_sweep, median", r->empty_before.sweep.median,
           "");
    printf("%-58s %11.3f ms %9s ms %5s\n", "empty sweep after backlog (plan+execute, median)",
           r->empty_after.plan_exec.median, "< 5",
           r->empty_after.plan_exec.median < TARGET_EMPTY_MS ? "yes" : "NO");
    printf("%-58s %11.3f ms %12s\n", "  p99", r->empty_after.plan_exec.p99, "");
    printf("%-58s %11.3f ms %12s\n", "  through ret_sweep, median", r->empty_after.sweep.median,
           "");
    printf("%-58s %12.0f/s %10s/s %5s\n", "deletions per second (plan+execute)", rate, ">= 5000",
           rate >= TARGET_DELETE_PER_S ? "yes" : "NO");
    printf("%-58s %12.2f s %12s\n", "  planning total", r->del.plan_s, "");
    printf("%-58s %12.2f s %12s\n", "  executing total", r->del.exec_s, "");
    printf("%-58s %11.1f ms %9s ms %5s\n", "storage before backlog (median)",
           r->storage_before.ms.median, "< 50",
           r->storage_before.ms.median < TARGET_STORAGE_MS ? "yes" : "NO");
    printf("%-58s %11.1f ms %12s\n", "  p99", r->storage_before.ms.p99, "");
    printf("%-58s %11.1f ms %9s ms %5s\n", "storage after backlog (median)",
           r->storage_after.ms.median, "< 50",
           r->storage_after.ms.median < TARGET_STORAGE_MS ? "yes" : "NO");
    printf("%-58s %11.1f ms %12s\n", "  p99", r->storage_after.ms.p99, "");
    printf("%-58s %14s\n", "verification after the backlog", r->verify.ok ? "ok" : "MISMATCH");
    if (r->probe.done) {
        const probe_result_t *p = &r->probe;
        printf("\nbreakdown of one %" PRId64 "-segment sweep (%zu directories):\n", p->n, p->dirs);
        printf("  ret_plan %.2f s, mark+record %.2f s, unlink+fsync %.2f s, drop %.2f s\n",
               p->plan_s, p->mark_s, p->unlink_s, p->drop_s);
        printf("  plain unlinks only: %.2f s; a fsync per file: %.2f s\n", p->plain_unlink_s,
               p->per_file_s);
    }
}

/* ---- main ---- */

static void usage(void)
{
    fprintf(stderr, "usage: bench_retention [--dir D] [--keep] [--reuse] [--results FILE]\n"
                    "                       [--empty-runs N] [--storage-runs N] [--no-probe]\n");
    exit(2);
}

static int dir_usable(const char *dir)
{
    char *marker = vg_asprintf("%s/%s", dir, MARKER_FILE);
    int ok = access(marker, F_OK) == 0;
    free(marker);
    if (ok)
        return 1;
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int empty = 1;
    const struct dirent *e;
    while (empty && (e = readdir(d)) != NULL)
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return empty;
}

int main(int argc, char **argv)
{
    const char *dir_arg = NULL, *results = NULL;
    int keep = 0, reuse = 0, empty_runs = 50, storage_runs = 20, probe = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir_arg = argv[++i];
        else if (strcmp(argv[i], "--results") == 0 && i + 1 < argc)
            results = argv[++i];
        else if (strcmp(argv[i], "--empty-runs") == 0 && i + 1 < argc)
            empty_runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--storage-runs") == 0 && i + 1 < argc)
            storage_runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--keep") == 0)
            keep = 1;
        else if (strcmp(argv[i], "--reuse") == 0)
            reuse = 1;
        else if (strcmp(argv[i], "--no-probe") == 0)
            probe = 0;
        else
            usage();
    }
    if (empty_runs < 1 || storage_runs < 1)
        usage();
    if (reuse && !dir_arg)
        die("--reuse needs --dir (a fresh temporary directory has nothing to reuse)");
    vg_log_set_level(VG_LOG_WARNING);

    static report_t r;
    time_t wall = time(NULL);
    struct tm tm;
    gmtime_r(&wall, &tm);
    strftime(r.started, sizeof(r.started), "%Y-%m-%d %H:%M UTC", &tm);
    size_t used = 0;
    for (int i = 0; i < argc && used + 2 < sizeof(r.cmdline); i++) {
        int k = snprintf(r.cmdline + used, sizeof(r.cmdline) - used, "%s%s", i ? " " : "",
                         argv[i]);
        if (k < 0)
            break;
        used += (size_t)k;
    }

    char *dir;
    if (dir_arg) {
        check(vg_mkdir_p(dir_arg), "create the work directory");
        if (!dir_usable(dir_arg))
            die("%s is neither empty nor a previous run's work directory", dir_arg);
        dir = vg_strdup(dir_arg);
    } else {
        dir = vg_strdup("/tmp/vigil-bench-retention.XXXXXX");
        if (!mkdtemp(dir))
            die("mkdtemp: %s", strerror(errno));
    }
    char *marker = vg_asprintf("%s/%s", dir, MARKER_FILE);
    FILE *mf = fopen(marker, "w");
    if (!mf)
        die("create %s: %s", marker, strerror(errno));
    fclose(mf);
    char *db_path = vg_asprintf("%s/index.db", dir);
    char *pristine = vg_asprintf("%s/%s", dir, PRISTINE_FILE);
    char *media = vg_asprintf("%s/media", dir);
    for (int s = 0; s < N_SOURCES; s++)
        snprintf(g_names[s], sizeof(g_names[s]), "s%03d", s);
    read_machine(dir, &r.machine);
    if (r.machine.other_bench)
        progress("note: bench/ingest.py is running too; numbers will be disturbed");

    {
        char rel[256];
        segment_rel_path(rel, sizeof(rel), 0, row_start(0, 0));
        progress("work directory %s (first expired file: %s)", dir, rel);
    }

    remove_index_files(db_path);
    remove_tree(media);
    double t0 = mono_s();
    if (reuse && access(pristine, F_OK) == 0) {
        progress("copying the pristine index kept by --reuse");
        copy_file(pristine, db_path);
        r.reused = 1;
    } else {
        progress("generating %" PRId64 " rows", N_ROWS);
        generate_index(db_path);
        if (reuse)
            copy_file(db_path, pristine);
    }
    r.gen_rows_s = mono_s() - t0;
    progress("index ready in %.1f s", r.gen_rows_s);
    t0 = mono_s();
    make_expired_files(dir);
    sync(); /* old recordings are long on disk: don't measure their writeback */
    r.gen_files_s = mono_s() - t0;
    progress("%" PRId64 " files written in %.1f s", N_EXPIRED, r.gen_files_s);
    struct stat st;
    if (stat(db_path, &st) == 0)
        r.db_gib = (double)st.st_size / (1024.0 * 1024.0 * 1024.0);

    vg_config_t cfg;
    static vg_source_config_t sources[N_SOURCES];
    make_config(&cfg, sources, dir);
    idx_t *idx = NULL;
    check(idx_open(db_path, 0, &idx), "idx_open");

    progress("empty sweep before the backlog (%d runs)", empty_runs);
    time_empty_sweep(idx, &cfg, NOW_US - RET_DAY_US, empty_runs, &r.empty_before);
    progress("storage before the backlog (%d runs)", storage_runs);
    time_storage(idx, &cfg, storage_runs, &r.storage_before);
    if (r.storage_before.segments != N_ROWS || r.storage_before.n_sources != N_SOURCES)
        die("storage figures: %zu sources, %" PRId64 " segments; expected %d, %" PRId64,
            r.storage_before.n_sources, r.storage_before.segments, N_SOURCES, N_ROWS);

    progress("deleting the backlog");
    delete_backlog(idx, &cfg, &r.del);
    verify_deleted(idx, dir, &r.del, &r.verify);
    if (!r.verify.ok)
        fprintf(stderr, "bench_retention: verification FAILED: %ld files, %" PRId64
                        " rows, %zu marked, %" PRId64 " logged, %" PRId64 " deleted\n",
                r.verify.files_left, r.verify.rows_left, r.verify.marked_left,
                r.verify.logged_segments, r.del.deleted);

    progress("empty sweep after the backlog (%d runs)", empty_runs);
    time_empty_sweep(idx, &cfg, NOW_US, empty_runs, &r.empty_after);
    progress("storage after the backlog (%d runs)", storage_runs);
    time_storage(idx, &cfg, storage_runs, &r.storage_after);

    if (probe) {
        progress("breakdown of one sweep");
        probe_breakdown(idx, &cfg, &r.probe);
    }
    idx_close(idx);
    r.other_bench_at_end = other_bench_running();
    r.loadavg_at_end = read_loadavg();

    print_table(&r);
    if (results) {
        sbuf_t section = {0};
        build_section(&r, &section);
        write_section(results, section.s);
        free(section.s);
        progress("wrote the retention section of %s", results);
    }

    if (!keep) {
        remove_tree(media);
        remove_index_files(db_path);
        char *scratch = vg_asprintf("%s/scratch", dir);
        remove_tree(scratch);
        free(scratch);
        if (!reuse) {
            unlink(pristine);
            unlink(marker);
            if (rmdir(dir) != 0)
                fprintf(stderr, "bench_retention: %s left behind: %s\n", dir, strerror(errno));
        }
    } else {
        progress("kept %s", dir);
    }
    free(marker);
    free(db_path);
    free(pristine);
    free(media);
    free(dir);
    return r.verify.ok ? 0 : 1;
}
