/* Check suite for index/: opening and migrating, read-only access beside a
 * writer, segment insert and range queries (edges, ordering), deletion,
 * source registration, transactions and the query plan at scale. Tests may
 * use sqlite3 directly to look at the file from outside. */
#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/clock.h"
#include "core/errors.h"
#include "core/util.h"
#include "index/index.h"

/* The schema version this build should migrate to. */
#define CURRENT_VERSION 20

/* One base dir per run (made in main), one fresh dir per test inside it. A
 * failing test's child exits before its teardown runs, so main removes the
 * base dir with whatever is left in it. */
static char g_base[64];
static char g_dir[128];
static char g_db[192];

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path); /* best effort: keep going */
    return 0;
}

static void remove_tree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
    snprintf(g_dir, sizeof(g_dir), "%s/test-XXXXXX", g_base);
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
    snprintf(g_db, sizeof(g_db), "%s/index.db", g_dir);
}

static void teardown(void)
{
    remove_tree(g_dir);
}

/* ---- helpers using sqlite3 directly, as an outside observer ---- */

static sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    ck_assert_int_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = raw_open(path);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
    sqlite3_close(db);
}

static int64_t raw_int(const char *path, const char *sql)
{
    sqlite3 *db = raw_open(path);
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void raw_text(const char *path, const char *sql, char *out, size_t out_size)
{
    sqlite3 *db = raw_open(path);
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
    const unsigned char *t = sqlite3_column_text(st, 0);
    snprintf(out, out_size, "%s", t ? (const char *)t : "");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* ---- helpers for the API under test ---- */

static idx_t *open_rw(void)
{
    idx_t *idx = NULL;
    ck_assert_int_eq(idx_open(g_db, 0, &idx), VG_OK);
    ck_assert_ptr_nonnull(idx);
    return idx;
}

static idx_segment_t make_seg(const char *source, int64_t start, int64_t end, const char *path)
{
    idx_segment_t s;
    memset(&s, 0, sizeof(s));
    snprintf(s.source, sizeof(s.source), "%s", source);
    s.start_us = start;
    s.end_us = end;
    s.media_us = end - start;
    s.bytes = 1000 + (start % 1000 + 1000) % 1000;
    s.init_bytes = 700;
    memset(s.sha256, 'a', 64);
    s.sha256[64] = '\0';
    snprintf(s.codecs, sizeof(s.codecs), "h264");
    snprintf(s.path, sizeof(s.path), "%s", path);
    return s;
}

static int64_t insert(idx_t *idx, const char *source, int64_t start, int64_t end, const char *path)
{
    idx_segment_t s = make_seg(source, start, end, path);
    ck_assert_int_eq(idx_segment_insert(idx, &s), VG_OK);
    ck_assert_int_gt(s.id, 0);
    return s.id;
}

static size_t range_count(idx_t *idx, const char *source, int64_t from, int64_t to)
{
    idx_segment_t *out = NULL;
    size_t n = 99;
    ck_assert_int_eq(idx_segments_in_range(idx, source, from, to, &out, &n), VG_OK);
    free(out);
    return n;
}

/* ---- opening, versions, modes ---- */

START_TEST(test_open_creates_wal_current)
{
    idx_t *idx = open_rw();
    ck_assert_int_eq(idx_schema_version(idx), CURRENT_VERSION);

    struct stat st;
    ck_assert_int_eq(stat(g_db, &st), 0);
    char mode[16];
    raw_text(g_db, "PRAGMA journal_mode", mode, sizeof(mode));
    ck_assert_str_eq(mode, "wal");
    ck_assert_int_eq(raw_int(g_db, "PRAGMA user_version"), CURRENT_VERSION);
    ck_assert_int_eq(raw_int(g_db, "SELECT count(*) FROM sqlite_schema WHERE name IN "
                                   "('source', 'segment', 'segment_source_start')"),
                     3);
    idx_close(idx);
    idx_close(NULL); /* no-op */
}
END_TEST

START_TEST(test_reopen_idempotent)
{
    idx_t *idx = open_rw();
    ck_assert_int_eq(idx_source_register(idx, "cam1", "video"), VG_OK);
    insert(idx, "cam1", 0, 10, "cam1/a.mp4");
    idx_close(idx);

    idx = open_rw();
    /* A second writer connection at the same time is fine too. */
    idx_t *idx2 = open_rw();
    ck_assert_int_eq(idx_schema_version(idx), CURRENT_VERSION);
    ck_assert_int_eq(idx_schema_version(idx2), CURRENT_VERSION);
    ck_assert_uint_eq(range_count(idx, "cam1", 0, 100), 1);
    ck_assert_uint_eq(range_count(idx2, "cam1", 0, 100), 1);
    idx_close(idx2);
    idx_close(idx);
    ck_assert_int_eq(raw_int(g_db, "PRAGMA user_version"), CURRENT_VERSION);
}
END_TEST

START_TEST(test_too_new_refused)
{
    raw_exec(g_db, "CREATE TABLE future(x); PRAGMA user_version = 99;");
    idx_t *idx = (idx_t *)&idx; /* must be reset to NULL */
    ck_assert_int_eq(idx_open(g_db, 0, &idx), VG_EDB);
    ck_assert_ptr_null(idx);
    idx = (idx_t *)&idx;
    ck_assert_int_eq(idx_open(g_db, 1, &idx), VG_EDB);
    ck_assert_ptr_null(idx);
    /* Refused without touching it: still version 99, still not WAL. */
    ck_assert_int_eq(raw_int(g_db, "PRAGMA user_version"), 99);
    char mode[16];
    raw_text(g_db, "PRAGMA journal_mode", mode, sizeof(mode));
    ck_assert_str_eq(mode, "delete");
}
END_TEST

START_TEST(test_not_a_database)
{
    FILE *f = fopen(g_db, "w");
    ck_assert_ptr_nonnull(f);
    fputs("this is not an SQLite database, just some text long enough to have a header\n", f);
    fclose(f);
    idx_t *idx = NULL;
    ck_assert_int_lt(idx_open(g_db, 0, &idx), 0);
    ck_assert_ptr_null(idx);
    ck_assert_int_lt(idx_open(g_db, 1, &idx), 0);
    ck_assert_ptr_null(idx);
}
END_TEST

START_TEST(test_readonly_missing_or_empty)
{
    idx_t *idx = NULL;
    /* Missing: fails and does not create the file. */
    ck_assert_int_lt(idx_open(g_db, 1, &idx), 0);
    ck_assert_ptr_null(idx);
    ck_assert_int_ne(access(g_db, F_OK), 0);

    /* Empty file: a valid (empty) SQLite database with user_version 0. */
    FILE *f = fopen(g_db, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    ck_assert_int_eq(idx_open(g_db, 1, &idx), VG_ENOTFOUND);
    ck_assert_ptr_null(idx);

    /* Some other schema, version 0: still not an index. */
    raw_exec(g_db, "CREATE TABLE other(x);");
    ck_assert_int_eq(idx_open(g_db, 1, &idx), VG_ENOTFOUND);
    ck_assert_ptr_null(idx);
}
END_TEST

START_TEST(test_readonly_beside_writer)
{
    idx_t *w = open_rw();
    ck_assert_int_eq(idx_source_register(w, "cam1", "video"), VG_OK);
    insert(w, "cam1", 0, 10, "cam1/0.mp4");

    idx_t *r = NULL;
    ck_assert_int_eq(idx_open(g_db, 1, &r), VG_OK);
    ck_assert_int_eq(idx_schema_version(r), CURRENT_VERSION);
    ck_assert_uint_eq(range_count(r, "cam1", 0, 100), 1);

    /* The writer holds the write lock with an uncommitted row: the reader
     * still reads, and sees only committed data. */
    ck_assert_int_eq(idx_begin(w), VG_OK);
    insert(w, "cam1", 10, 20, "cam1/1.mp4");
    ck_assert_uint_eq(range_count(r, "cam1", 0, 100), 1);
    ck_assert_int_eq(idx_commit(w), VG_OK);
    ck_assert_uint_eq(range_count(r, "cam1", 0, 100), 2);

    /* The reader cannot write. */
    idx_segment_t s = make_seg("cam1", 20, 30, "cam1/2.mp4");
    ck_assert_int_lt(idx_segment_insert(r, &s), 0);
    ck_assert_int_lt(idx_source_register(r, "cam2", "video"), 0);

    /* A read transaction gives a stable snapshot. */
    ck_assert_int_eq(idx_begin(r), VG_OK);
    ck_assert_uint_eq(range_count(r, "cam1", 0, 100), 2);
    insert(w, "cam1", 20, 30, "cam1/2.mp4");
    ck_assert_uint_eq(range_count(r, "cam1", 0, 100), 2);
    ck_assert_int_eq(idx_commit(r), VG_OK);
    ck_assert_uint_eq(range_count(r, "cam1", 0, 100), 3);

    idx_close(r);
    idx_close(w);

    /* No writer left (WAL checkpointed and removed): read-only still opens. */
    ck_assert_int_eq(idx_open(g_db, 1, &r), VG_OK);
    ck_assert_uint_eq(range_count(r, "cam1", 0, 100), 3);
    idx_close(r);
}
END_TEST

/* ---- segments ---- */

START_TEST(test_range_edges)
{
    idx_t *idx = open_rw();
    ck_assert_int_eq(idx_source_register(idx, "cam1", "video"), VG_OK);
    ck_assert_int_eq(idx_source_register(idx, "cam2", "video"), VG_OK);
    insert(idx, "cam1", 10, 20, "cam1/10.mp4");
    insert(idx, "cam2", 0, 100, "cam2/0.mp4");

    ck_assert_uint_eq(range_count(idx, "cam1", 19, 30), 1);
    ck_assert_uint_eq(range_count(idx, "cam1", 0, 11), 1);
    ck_assert_uint_eq(range_count(idx, "cam1", 20, 30), 0);
    ck_assert_uint_eq(range_count(idx, "cam1", 0, 10), 0);
    ck_assert_uint_eq(range_count(idx, "cam1", 10, 20), 1);
    ck_assert_uint_eq(range_count(idx, "cam1", 12, 15), 1);
    ck_assert_uint_eq(range_count(idx, "cam1", 15, 15), 0);
    ck_assert_uint_eq(range_count(idx, "cam1", INT64_MIN, INT64_MAX), 1);

    idx_segment_t *out = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_segments_in_range(idx, "cam1", 19, 30, &out, &n), VG_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(out[0].source, "cam1");
    ck_assert_str_eq(out[0].path, "cam1/10.mp4");
    ck_assert_int_eq(out[0].start_us, 10);
    ck_assert_int_eq(out[0].end_us, 20);
    free(out);

    out = (idx_segment_t *)&out;
    n = 5;
    ck_assert_int_eq(idx_segments_in_range(idx, "nope", 0, 100, &out, &n), VG_ENOTFOUND);
    ck_assert_ptr_null(out);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(idx_segments_in_range(idx, "cam1", 30, 20, &out, &n), VG_EINVAL);
    idx_close(idx);
}
END_TEST

START_TEST(test_range_order_and_long_segment)
{
    idx_t *idx = open_rw();
    ck_assert_int_eq(idx_source_register(idx, "cam1", "video"), VG_OK);
    /* Out of order on purpose. */
    insert(idx, "cam1", 30, 40, "cam1/30.mp4");
    insert(idx, "cam1", 10, 20, "cam1/10.mp4");
    insert(idx, "cam1", 20, 30, "cam1/20.mp4");
    /* One much longer segment, starting well before the query window: the
     * lower bound on start_us must account for it. */
    insert(idx, "cam1", 100, 10100, "cam1/100.mp4");
    insert(idx, "cam1", 10100, 10110, "cam1/10100.mp4");

    idx_segment_t *out = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_segments_in_range(idx, "cam1", 15, 35, &out, &n), VG_OK);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(out[0].start_us, 10);
    ck_assert_int_eq(out[1].start_us, 20);
    ck_assert_int_eq(out[2].start_us, 30);
    free(out);

    ck_assert_int_eq(idx_segments_in_range(idx, "cam1", 10000, 10105, &out, &n), VG_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(out[0].path, "cam1/100.mp4");
    ck_assert_str_eq(out[1].path, "cam1/10100.mp4");
    free(out);

    ck_assert_uint_eq(range_count(idx, "cam1", 5000, 5001), 1);
    /* From near the bottom of the int64 range: from - max_len must not wrap. */
    ck_assert_uint_eq(range_count(idx, "cam1", INT64_MIN + 1, 15), 1);
    idx_close(idx);
}
END_TEST

START_TEST(test_insert_unknown_source)
{
    idx_t *idx = open_rw();
    idx_segment_t s = make_seg("ghost", 0, 10, "ghost/0.mp4");
    ck_assert_int_eq(idx_segment_insert(idx, &s), VG_ENOTFOUND);
    ck_assert_int_eq(s.id, 0);
    idx_segment_t *out = NULL;
    size_t n = 99;
    ck_assert_int_eq(idx_segments_all(idx, &out, &n), VG_OK);
    ck_assert_uint_eq(n, 0);
    free(out);
    int found = 1;
    ck_assert_int_eq(idx_segment_path_exists(idx, "ghost/0.mp4", &found), VG_OK);
    ck_assert_int_eq(found, 0);
    idx_close(idx);
}
END_TEST

START_TEST(test_insert_invalid)
{
    idx_t *idx = open_rw();
    ck_assert_int_eq(idx_source_register(idx, "cam1", "video"), VG_OK);

    idx_segment_t s = make_seg("cam1", 0, 10, "cam1/0.mp4");
    memset(s.path, 'p', sizeof(s.path)); /* no terminator: too long */
    ck_assert_int_eq(idx_segment_insert(idx, &s), VG_EINVAL);

    s = make_seg("cam1", 0, 10, "");
    ck_assert_int_eq(idx_segment_insert(idx, &s), VG_EINVAL);

    s = make_seg("cam1", 10, 5, "cam1/0.mp4");
    ck_assert_int_eq(idx_segment_insert(idx, &s), VG_EINVAL);

    s = make_seg("cam1", 0, 10, "cam1/0.mp4");
    s.sha256[3] = 'G';
    ck_assert_int_eq(idx_segment_insert(idx, &s), VG_EINVAL);
    s = make_seg("cam1", 0, 10, "cam1/0.mp4");
    s.sha256[63] = '\0';
    ck_assert_int_eq(idx_segment_insert(idx, &s), VG_EINVAL);

    s = make_seg("cam1", 0, 10, "cam1/0.mp4");
    s.init_bytes = s.bytes + 1;
    ck_assert_int_eq(idx_segment_insert(idx, &s), VG_EINVAL);

    /* A path at the limit (255 bytes) is fine. */
    char longp[256];
    memset(longp, 'x', 255);
    longp[255] = '\0';
    insert(idx, "cam1", 0, 10, longp);
    /* The same path twice is refused. */
    s = make_seg("cam1", 10, 20, longp);
    ck_assert_int_eq(idx_segment_insert(idx, &s), VG_EINVAL);

    ck_assert_int_eq(raw_int(g_db, "SELECT count(*) FROM segment"), 1);
    idx_close(idx);
}
END_TEST

START_TEST(test_segments_all_order)
{
    idx_t *idx = open_rw();
    ck_assert_int_eq(idx_source_register(idx, "b-cam", "video"), VG_OK);
    ck_assert_int_eq(idx_source_register(idx, "a-line", "audio"), VG_OK);
    insert(idx, "b-cam", 200, 300, "b/200.mp4");
    insert(idx, "a-line", 500, 600, "a/500.mkv");
    insert(idx, "b-cam", 100, 200, "b/100.mp4");

    idx_segment_t full = make_seg("a-line", 0, 100, "a/0.mkv");
    full.media_us = 99;
    full.bytes = 123456;
    full.init_bytes = 789;
    snprintf(full.sha256, sizeof(full.sha256), "%s",
             "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    snprintf(full.codecs, sizeof(full.codecs), "pcm_alaw");
    full.unverified = 1;
    ck_assert_int_eq(idx_segment_insert(idx, &full), VG_OK);

    idx_segment_t *out = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_segments_all(idx, &out, &n), VG_OK);
    ck_assert_uint_eq(n, 4);
    ck_assert_str_eq(out[0].path, "a/0.mkv");
    ck_assert_str_eq(out[1].path, "a/500.mkv");
    ck_assert_str_eq(out[2].path, "b/100.mp4");
    ck_assert_str_eq(out[3].path, "b/200.mp4");

    /* Every field round-trips. */
    ck_assert_int_eq(out[0].id, full.id);
    ck_assert_str_eq(out[0].source, "a-line");
    ck_assert_int_eq(out[0].start_us, 0);
    ck_assert_int_eq(out[0].end_us, 100);
    ck_assert_int_eq(out[0].media_us, 99);
    ck_assert_int_eq(out[0].bytes, 123456);
    ck_assert_int_eq(out[0].init_bytes, 789);
    ck_assert_str_eq(out[0].sha256, full.sha256);
    ck_assert_str_eq(out[0].codecs, "pcm_alaw");
    ck_assert_int_eq(out[0].unverified, 1);
    ck_assert_int_eq(out[1].unverified, 0);
    free(out);
    idx_close(idx);
}
END_TEST

/* The full check pages by id: every live row once, in id order, whatever
 * the page size; rows being deleted are left out. The newest start of a
 * source is one index probe. */
START_TEST(test_segments_page_and_newest)
{
    idx_t *idx = open_rw();
    ck_assert_int_eq(idx_source_register(idx, "cam", "video"), VG_OK);
    ck_assert_int_eq(idx_source_register(idx, "line", "audio"), VG_OK);
    ck_assert_int_eq(idx_source_register(idx, "idle", "video"), VG_OK);
    int64_t ids[10];
    char path[32];
    for (int i = 0; i < 10; i++) {
        snprintf(path, sizeof(path), "%s/%d.mp4", i % 2 ? "line" : "cam", i);
        ids[i] = insert(idx, i % 2 ? "line" : "cam", 1000 + i * 10, 1010 + i * 10, path);
    }
    idx_segment_t doomed = make_seg("cam", 5000, 5010, "cam/doomed.mp4");
    ck_assert_int_eq(idx_segment_insert(idx, &doomed), VG_OK);
    int64_t run = 0;
    ck_assert_int_eq(idx_record_destruction(idx, 1, "age", &doomed, 1, INT64_MAX, NULL, &run), VG_OK);

    int64_t after = 0;
    size_t seen = 0;
    for (;;) {
        idx_segment_t *page = NULL;
        size_t n = 0;
        ck_assert_int_eq(idx_segments_page(idx, after, 3, &page, &n), VG_OK);
        ck_assert_uint_le(n, 3);
        for (size_t i = 0; i < n; i++) {
            ck_assert_uint_lt(seen, 10);
            ck_assert_int_eq(page[i].id, ids[seen]);
            ck_assert_str_eq(page[i].source, seen % 2 ? "line" : "cam");
            seen++;
        }
        if (n)
            after = page[n - 1].id;
        free(page);
        if (n < 3)
            break;
    }
    ck_assert_uint_eq(seen, 10);
    idx_segment_t *page = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_segments_page(idx, 0, 0, &page, &n), VG_EINVAL);

    int64_t newest = -1;
    ck_assert_int_eq(idx_source_newest_start(idx, "cam", &newest), VG_OK);
    ck_assert_int_eq(newest, 5000); /* marked rows count: their files may still be there */
    ck_assert_int_eq(idx_source_newest_start(idx, "line", &newest), VG_OK);
    ck_assert_int_eq(newest, 1090);
    ck_assert_int_eq(idx_source_newest_start(idx, "idle", &newest), VG_OK);
    ck_assert_int_eq(newest, 0);
    ck_assert_int_eq(idx_source_newest_start(idx, "nobody", &newest), VG_OK);
    ck_assert_int_eq(newest, 0);
    idx_close(idx);
}
END_TEST

START_TEST(test_path_exists_and_delete)
{
    idx_t *idx = open_rw();
    ck_assert_int_eq(idx_source_register(idx, "cam1", "video"), VG_OK);
    int64_t id = insert(idx, "cam1", 0, 10, "cam1/0.mp4");
    insert(idx, "cam1", 10, 20, "cam1/1.mp4");

    int found = 0;
    ck_assert_int_eq(idx_segment_path_exists(idx, "cam1/0.mp4", &found), VG_OK);
    ck_assert_int_eq(found, 1);
    ck_assert_int_eq(idx_segment_path_exists(idx, "cam1/9.mp4", &found), VG_OK);
    ck_assert_int_eq(found, 0);

    ck_assert_int_eq(idx_segment_delete(idx, id), VG_OK);
    ck_assert_int_eq(idx_segment_path_exists(idx, "cam1/0.mp4", &found), VG_OK);
    ck_assert_int_eq(found, 0);
    ck_assert_uint_eq(range_count(idx, "cam1", 0, 100), 1);
    ck_assert_int_eq(idx_segment_delete(idx, id), VG_ENOTFOUND);
    ck_assert_int_eq(idx_segment_delete(idx, 424242), VG_ENOTFOUND);
    idx_close(idx);
}
END_TEST

/* The version moves with every change a listing could show, and only the
 * changed source's. */
START_TEST(test_source_version)
{
    idx_t *idx = open_rw();
    int64_t v0 = -1, v, other0 = -1, other;
    ck_assert_int_eq(idx_source_version(idx, "cam1", &v0), VG_ENOTFOUND);
    ck_assert_int_eq(idx_source_register(idx, "cam1", "video"), VG_OK);
    ck_assert_int_eq(idx_source_register(idx, "cam2", "video"), VG_OK);
    ck_assert_int_eq(idx_source_version(idx, "cam1", &v0), VG_OK);
    ck_assert_int_eq(idx_source_version(idx, "cam2", &other0), VG_OK);

    int64_t id = insert(idx, "cam1", 0, 10, "cam1/0.mp4");
    ck_assert_int_eq(idx_source_version(idx, "cam1", &v), VG_OK);
    ck_assert_int_ne(v, v0);
    v0 = v;
    raw_exec(g_db, "UPDATE segment SET deleting = 1");
    ck_assert_int_eq(idx_source_version(idx, "cam1", &v), VG_OK);
    ck_assert_int_ne(v, v0);
    v0 = v;
    ck_assert_int_eq(idx_segment_delete(idx, id), VG_OK);
    ck_assert_int_eq(idx_source_version(idx, "cam1", &v), VG_OK);
    ck_assert_int_ne(v, v0);
    ck_assert_int_eq(idx_source_version(idx, "cam2", &other), VG_OK);
    ck_assert_int_eq(other, other0);
    idx_close(idx);
}
END_TEST

/* A reader that is always there, each read holding its snapshot about a
 * millisecond, like API requests under load. */
typedef struct {
    const char *path;
    atomic_int stop;
    atomic_int reads;
    int failed;
} steady_reader_t;

static void *steady_reader(void *arg)
{
    steady_reader_t *r = arg;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    if (sqlite3_open_v2(r->path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db, "SELECT count(*) FROM segment", -1, &st, NULL) != SQLITE_OK) {
        r->failed = 1;
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 5000);
    const struct timespec hold = {0, 1000000};
    while (!atomic_load(&r->stop)) {
        if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_ROW) {
            r->failed = 1;
            break;
        }
        sqlite3_reset(st);
        nanosleep(&hold, NULL); /* the request's work, snapshot held */
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        atomic_fetch_add(&r->reads, 1);
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return NULL;
}

/* Under steady reads a PASSIVE checkpoint never lets the WAL start over;
 * idx_wal_checkpoint's RESTART step does. */
START_TEST(test_wal_starts_over_under_steady_reads)
{
    idx_t *w = open_rw();
    idx_t *ckpt = open_rw();
    ck_assert_int_eq(idx_source_register(w, "cam1", "video"), VG_OK);
    ck_assert_int_eq(idx_wal_autocheckpoint(w, 0), VG_OK);
    steady_reader_t r = {.path = g_db};
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, steady_reader, &r), 0);
    for (int i = 0; i < 5000 && atomic_load(&r.reads) == 0 && !r.failed; i++)
        usleep(1000); /* poll: the reader is running */
    ck_assert_int_gt(atomic_load(&r.reads), 0);
    /* Each round: 10 inserts, the checkpoint, then one insert, which starts
     * the WAL over if the checkpoint let it; the shortest WAL seen then.
     * A RESTART step may miss now and then on a loaded machine (its wait
     * is bounded), so the test asks for one success in 30 rounds. */
    int pages = 0, shortest = INT32_MAX, seg = 0;
    char path[64];
    for (int round = 0; round < 30; round++) {
        for (int i = 0; i <= 10; i++, seg++) {
            snprintf(path, sizeof(path), "cam1/%d.mp4", seg);
            insert(w, "cam1", seg * 10, seg * 10 + 10, path);
            if (i == 9)
                ck_assert_int_eq(idx_wal_checkpoint(ckpt, 1, &pages), VG_OK);
        }
        ck_assert_int_eq(idx_wal_checkpoint(ckpt, 0, &pages), VG_OK); /* PASSIVE: a size */
        shortest = pages < shortest ? pages : shortest;
    }
    atomic_store(&r.stop, 1);
    pthread_join(th, NULL);
    ck_assert_int_eq(r.failed, 0);
    /* one insert's pages (PASSIVE only: the WAL never starts over, and is
     * hundreds of pages long from the second round on) */
    ck_assert_msg(shortest < 50, "the WAL never started over (shortest: %d pages)", shortest);
    idx_close(ckpt);
    idx_close(w);
}
END_TEST

/* The hourly rollup follows inserts and deletes, and an hour without
 * segments has no row left. */
START_TEST(test_source_hour_rows_go_with_their_hour)
{
    idx_t *idx = open_rw();
    const int64_t hour = 3600000000LL;
    ck_assert_int_eq(idx_source_register(idx, "cam1", "video"), VG_OK);
    int64_t a = insert(idx, "cam1", 5 * hour, 5 * hour + 60000000, "cam1/a.mp4");
    int64_t b = insert(idx, "cam1", 5 * hour + 60000000, 5 * hour + 120000000, "cam1/b.mp4");
    int64_t c = insert(idx, "cam1", 6 * hour, 6 * hour + 60000000, "cam1/c.mp4");
    ck_assert_int_eq(raw_int(g_db, "SELECT count(*) FROM source_hour"), 2);
    ck_assert_int_eq(raw_int(g_db, "SELECT media_us FROM source_hour WHERE hour = 5"), 120000000);
    ck_assert_int_eq(idx_segment_delete(idx, a), VG_OK);
    ck_assert_int_eq(raw_int(g_db, "SELECT count(*) FROM source_hour"), 2);
    ck_assert_int_eq(raw_int(g_db, "SELECT media_us FROM source_hour WHERE hour = 5"), 60000000);
    ck_assert_int_eq(idx_segment_delete(idx, b), VG_OK);
    ck_assert_int_eq(raw_int(g_db, "SELECT count(*) FROM source_hour WHERE hour = 5"), 0);
    ck_assert_int_eq(idx_segment_delete(idx, c), VG_OK);
    ck_assert_int_eq(raw_int(g_db, "SELECT count(*) FROM source_hour"), 0);
    idx_close(idx);
}
END_TEST

START_TEST(test_source_register_kind)
{
    idx_t *idx = open_rw();
    int found = 1;
    ck_assert_int_eq(idx_source_exists(idx, "cam1", &found), VG_OK);
    ck_assert_int_eq(found, 0);

    ck_assert_int_eq(idx_source_register(idx, "cam1", "video"), VG_OK);
    ck_assert_int_eq(idx_source_register(idx, "cam1", "video"), VG_OK);
    ck_assert_int_eq(idx_source_exists(idx, "cam1", &found), VG_OK);
    ck_assert_int_eq(found, 1);
    int64_t id_before = raw_int(g_db, "SELECT id FROM source WHERE name = 'cam1'");

    ck_assert_int_eq(idx_source_register(idx, "cam1", "audio"), VG_OK);
    char kind[16];
    raw_text(g_db, "SELECT kind FROM source WHERE name = 'cam1'", kind, sizeof(kind));
    ck_assert_str_eq(kind, "audio");
    ck_assert_int_eq(raw_int(g_db, "SELECT count(*) FROM source"), 1);
    ck_assert_int_eq(raw_int(g_db, "SELECT id FROM source WHERE name = 'cam1'"), id_before);

    char longname[80];
    memset(longname, 'n', 64);
    longname[64] = '\0';
    ck_assert_int_eq(idx_source_register(idx, longname, "video"), VG_EINVAL);
    ck_assert_int_eq(idx_source_register(idx, "", "video"), VG_EINVAL);
    ck_assert_int_eq(idx_source_register(idx, "cam2", ""), VG_EINVAL);
    longname[63] = '\0';
    ck_assert_int_eq(idx_source_register(idx, longname, "video"), VG_OK);
    idx_close(idx);
}
END_TEST

START_TEST(test_transactions)
{
    idx_t *idx = open_rw();
    ck_assert_int_eq(idx_source_register(idx, "cam1", "video"), VG_OK);

    ck_assert_int_eq(idx_begin(idx), VG_OK);
    ck_assert_int_eq(idx_begin(idx), VG_EINVAL); /* no nesting */
    insert(idx, "cam1", 0, 10, "cam1/0.mp4");
    ck_assert_uint_eq(range_count(idx, "cam1", 0, 100), 1);
    ck_assert_int_eq(idx_rollback(idx), VG_OK);
    ck_assert_uint_eq(range_count(idx, "cam1", 0, 100), 0);
    ck_assert_int_eq(idx_rollback(idx), VG_OK); /* idempotent */
    ck_assert_int_eq(idx_commit(idx), VG_EINVAL);

    ck_assert_int_eq(idx_begin(idx), VG_OK);
    insert(idx, "cam1", 0, 10, "cam1/0.mp4");
    insert(idx, "cam1", 10, 20, "cam1/1.mp4");
    ck_assert_int_eq(idx_commit(idx), VG_OK);
    ck_assert_int_eq(raw_int(g_db, "SELECT count(*) FROM segment"), 2);

    /* A failed insert inside a transaction does not spoil the rest. */
    ck_assert_int_eq(idx_begin(idx), VG_OK);
    idx_segment_t dup = make_seg("cam1", 20, 30, "cam1/1.mp4");
    ck_assert_int_eq(idx_segment_insert(idx, &dup), VG_EINVAL);
    insert(idx, "cam1", 20, 30, "cam1/2.mp4");
    ck_assert_int_eq(idx_commit(idx), VG_OK);
    ck_assert_int_eq(raw_int(g_db, "SELECT count(*) FROM segment"), 3);
    idx_close(idx);
}
END_TEST

/* ---- scale and plan ---- */

#define SCALE_SOURCES 10
#define SCALE_PER_SOURCE 10000
#define SEG_US INT64_C(60000000)
#define HOUR_US INT64_C(3600000000)
#define T0 INT64_C(1795000000000000)

/* ---- audit anchoring: the appliance key and signed checkpoints ---- */

static void add_audit_rows(idx_t *idx, int n)
{
    for (int i = 0; i < n; i++) {
        idx_audit_t r = {.ts_us = 1795000000000000LL + i};
        snprintf(r.actor, sizeof(r.actor), "user:bob");
        snprintf(r.action, sizeof(r.action), "segments.read");
        snprintf(r.result, sizeof(r.result), "ok");
        ck_assert_int_eq(idx_audit_append(idx, &r, 1), VG_OK);
    }
}

typedef struct {
    int n;
    char last[320];
} reports_t;

static void collect_report(void *ctx, const char *text)
{
    reports_t *r = ctx;
    r->n++;
    snprintf(r->last, sizeof(r->last), "%s", text);
}

static int verify_anchor(idx_t *idx, const vg_key_t *key, reports_t *rep, size_t *checked)
{
    int problems = -1;
    memset(rep, 0, sizeof(*rep));
    ck_assert_int_eq(idx_anchor_verify(idx, g_dir, NULL, key, collect_report, rep, checked, &problems),
                     VG_OK);
    ck_assert_int_eq(problems, rep->n);
    return problems;
}

START_TEST(test_anchor_key_and_checkpoints)
{
    vg_key_t key, again, pub;
    char path[256], text[VG_KEY_PUB_TEXT_MAX];
    struct stat st;
    ck_assert_int_eq(vg_key_load_or_create(g_dir, &key), VG_OK);
    snprintf(path, sizeof(path), "%s/" VG_KEY_FILE, g_dir);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    /* a key someone made readable is locked down again, and stays the same */
    ck_assert_int_eq(chmod(path, 0644), 0);
    ck_assert_int_eq(vg_key_load_or_create(g_dir, &again), VG_OK);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_mem_eq(again.pk, key.pk, 32);
    ck_assert_int_eq(vg_key_load_public(g_dir, &pub), VG_OK);
    ck_assert_mem_eq(pub.pk, key.pk, 32);
    ck_assert(!pub.has_secret);
    /* minisign's format: comment line, then base64 of "Ed" + id + key (42 bytes) */
    vg_key_public_text(&key, text, sizeof(text));
    ck_assert_msg(strncmp(text, "untrusted comment: minisign public key ", 39) == 0, "%s", text);
    char *second = strchr(text, '\n') + 1;
    ck_assert_int_eq(strcspn(second, "\n"), 56);
    ck_assert(strncmp(second, "RW", 2) == 0);

    idx_t *idx = NULL;
    idx_anchor_t *a = NULL;
    int written = 0;
    size_t checked = 0;
    reports_t rep;
    ck_assert_int_eq(idx_open(g_db, 0, &idx), VG_OK);
    add_audit_rows(idx, 5);
    ck_assert_int_eq(idx_anchor_open(idx, g_dir, &key, &a), VG_OK);
    ck_assert_int_eq(idx_anchor_checkpoint(a, idx, 1795000001000000LL, 1, &written), VG_OK);
    ck_assert(written);
    /* an unchanged head is not signed again unless forced */
    ck_assert_int_eq(idx_anchor_checkpoint(a, idx, 1795000002000000LL, 0, &written), VG_OK);
    ck_assert(!written);
    add_audit_rows(idx, 1);
    ck_assert_int_eq(idx_anchor_checkpoint(a, idx, 1795000003000000LL, 0, &written), VG_OK);
    ck_assert(written);
    idx_anchor_close(a);
    ck_assert_int_eq(verify_anchor(idx, &pub, &rep, &checked), 0);
    ck_assert_uint_eq(checked, 2);
    idx_checkpoint_t *cps = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_checkpoints_read(g_dir, 1, 0, &cps, &n, NULL), VG_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_int_eq(cps[0].seq, 2);
    ck_assert_int_eq(cps[0].row_id, 6);
    free(cps);

    /* the newest row cut from the trail: the chain still verifies, the
     * checkpoint does not */
    raw_exec(g_db, "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE id = 6;");
    int64_t chain_checked = 0, bad = 0;
    ck_assert_int_eq(idx_audit_verify(idx, &chain_checked, &bad), VG_OK);
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(verify_anchor(idx, &pub, &rep, &checked), 1);
    ck_assert_msg(strstr(rep.last, "truncated") && strstr(rep.last, "row 6"), "%s", rep.last);

    /* a checkpoint signed by another key */
    vg_key_t other;
    char other_dir[200];
    snprintf(other_dir, sizeof(other_dir), "%s/other", g_dir);
    ck_assert_int_eq(mkdir(other_dir, 0700), 0);
    ck_assert_int_eq(vg_key_load_or_create(other_dir, &other), VG_OK);
    ck_assert_int_eq(verify_anchor(idx, &other, &rep, &checked), 2);
    ck_assert_msg(strstr(rep.last, "forged"), "%s", rep.last);
    idx_close(idx);
}
END_TEST

/* ---- a change and its audit row: one transaction ---- */

static int add_account_change(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    idx_account_t *a = arg;
    (void)n;
    int rc = idx_account_add(idx, a, NULL, 0);
    snprintf(rows[0].object, sizeof(rows[0].object), "user:%s", a->name);
    return rc;
}

START_TEST(test_audited_change_all_or_nothing)
{
    idx_t *idx = NULL;
    idx_account_t a = {.all_sources = 1}, got;
    idx_audit_t row = {.ts_us = 1};
    snprintf(a.name, sizeof(a.name), "bob");
    snprintf(a.role, sizeof(a.role), "admin");
    snprintf(a.pwhash, sizeof(a.pwhash), "x");
    snprintf(row.actor, sizeof(row.actor), "user:root");
    snprintf(row.action, sizeof(row.action), "user.create");
    snprintf(row.result, sizeof(row.result), "ok");
    ck_assert_int_eq(idx_open(g_db, 0, &idx), VG_OK);
    /* the audit row cannot be written: the account is not added either */
    raw_exec(g_db, "CREATE TRIGGER inject BEFORE INSERT ON audit BEGIN"
                   " SELECT RAISE(ABORT, 'injected'); END;");
    ck_assert_int_eq(idx_audited_change(idx, add_account_change, &a, &row, 1), VG_EAUDIT);
    ck_assert_int_eq(idx_account_get(idx, "bob", &got), VG_ENOTFOUND);
    ck_assert_int_eq(raw_int(g_db, "SELECT COUNT(*) FROM audit"), 0);
    raw_exec(g_db, "DROP TRIGGER inject;");
    ck_assert_int_eq(idx_audited_change(idx, add_account_change, &a, &row, 1), VG_OK);
    ck_assert_int_eq(idx_account_get(idx, "bob", &got), VG_OK);
    ck_assert_int_eq(raw_int(g_db, "SELECT COUNT(*) FROM audit WHERE object = 'user:bob'"), 1);
    /* the change's own failure comes back as is, with no row */
    ck_assert_int_eq(idx_audited_change(idx, add_account_change, &a, &row, 1), VG_EEXIST);
    ck_assert_int_eq(raw_int(g_db, "SELECT COUNT(*) FROM audit"), 1);
    int64_t checked = 0, bad = 0;
    ck_assert_int_eq(idx_audit_verify(idx, &checked, &bad), VG_OK);
    ck_assert_int_eq(bad, 0);
    idx_close(idx);
}
END_TEST

static int add_then_fail_change(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    (void)rows;
    (void)n;
    ck_assert_int_eq(idx_account_add(idx, arg, NULL, 0), VG_OK);
    return VG_EEXIST; /* written, then refused: the savepoint must undo it */
}

/* Many changes in one transaction (the web's group commit): each in its own
 * savepoint; a failed one (its own error, or its audit row refused) leaves
 * no trace and the others commit, their rows chained in order; a later
 * change sees an earlier one. */
START_TEST(test_audited_steps_share_a_transaction)
{
    idx_t *idx = NULL;
    idx_account_t a[5] = {{.all_sources = 1}};
    idx_audit_t row[5];
    const char *names[5] = {"ann", "bea", "ann", "cat", "dan"};
    for (int i = 0; i < 5; i++) {
        a[i].all_sources = 1;
        snprintf(a[i].name, sizeof(a[i].name), "%s", names[i]);
        snprintf(a[i].role, sizeof(a[i].role), "auditor");
        snprintf(a[i].pwhash, sizeof(a[i].pwhash), "x");
        memset(&row[i], 0, sizeof(row[i]));
        row[i].ts_us = 1 + i;
        snprintf(row[i].actor, sizeof(row[i].actor), "user:root");
        snprintf(row[i].action, sizeof(row[i].action), "user.create");
        snprintf(row[i].result, sizeof(row[i].result), "ok");
    }
    ck_assert_int_eq(idx_open(g_db, 0, &idx), VG_OK);
    raw_exec(g_db, "CREATE TRIGGER inject BEFORE INSERT ON audit WHEN NEW.object = 'user:cat'"
                   " BEGIN SELECT RAISE(ABORT, 'injected'); END;");
    ck_assert_int_eq(idx_audited_step(idx, add_account_change, &a[0], &row[0], 1), VG_EINVAL);
    ck_assert_int_eq(idx_begin(idx), VG_OK);
    ck_assert_int_eq(idx_audited_step(idx, add_account_change, &a[0], &row[0], 1), VG_OK);
    ck_assert_int_eq(idx_audited_step(idx, add_then_fail_change, &a[1], &row[1], 1), VG_EEXIST);
    ck_assert_int_eq(idx_audited_step(idx, add_account_change, &a[2], &row[2], 1), VG_EEXIST);
    ck_assert_int_eq(idx_audited_step(idx, add_account_change, &a[3], &row[3], 1), VG_EAUDIT);
    ck_assert_int_eq(idx_in_transaction(idx), 1);
    ck_assert_int_eq(idx_audited_step(idx, add_account_change, &a[4], &row[4], 1), VG_OK);
    ck_assert_int_eq(idx_commit(idx), VG_OK);
    raw_exec(g_db, "DROP TRIGGER inject;");
    idx_account_t got;
    ck_assert_int_eq(idx_account_get(idx, "ann", &got), VG_OK);
    ck_assert_int_eq(idx_account_get(idx, "bea", &got), VG_ENOTFOUND);
    ck_assert_int_eq(idx_account_get(idx, "cat", &got), VG_ENOTFOUND);
    ck_assert_int_eq(idx_account_get(idx, "dan", &got), VG_OK);
    ck_assert_int_eq(raw_int(g_db, "SELECT COUNT(*) FROM audit"), 2);
    ck_assert_int_eq(row[4].id, row[0].id + 1);
    ck_assert_str_eq(row[4].prev_hash, row[0].hash);
    int64_t checked = 0, bad = 0;
    ck_assert_int_eq(idx_audit_verify(idx, &checked, &bad), VG_OK);
    ck_assert_int_eq(bad, 0);
    idx_close(idx);
}
END_TEST

static int64_t accounts_gen(idx_t *idx)
{
    int64_t gen = -1;
    ck_assert_int_eq(idx_accounts_generation(idx, &gen), VG_OK);
    return gen;
}

/* The accounts generation moves with every change that can end a live
 * session, made by this connection or another (vigilctl), and not with the
 * touch of a session on every request. */
/* The watch moves with every commit, another process's too, and not with
 * reads; without a wal-index to read it refuses. The other process is
 * forked before this one opens the index (a child must not inherit SQLite's
 * state of open files) and waits on a pipe for its turn. */
START_TEST(test_watch_sees_every_commit)
{
    int go[2];
    ck_assert_int_eq(pipe(go), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        char c;
        close(go[1]);
        if (read(go[0], &c, 1) != 1)
            _exit(2);
        /* as vigilctl user passwd does: the session goes */
        idx_t *other = NULL;
        int ok = idx_open(g_db, 0, &other) == VG_OK && idx_session_delete(other, "s1") == VG_OK;
        idx_close(other);
        _exit(ok ? 0 : 1);
    }
    close(go[0]);
    idx_watch_t *w = NULL;
    ck_assert_int_eq(idx_watch_open(g_db, &w), VG_EIO); /* no index yet */
    ck_assert_uint_eq(idx_watch_gen(NULL), 0);
    idx_t *idx = open_rw();
    ck_assert_int_eq(idx_watch_open(g_db, &w), VG_OK);
    uint64_t g = idx_watch_gen(w);
    ck_assert_uint_gt(g, 0);
    idx_account_t a = {0};
    snprintf(a.name, sizeof(a.name), "guard");
    snprintf(a.role, sizeof(a.role), "security");
    snprintf(a.pwhash, sizeof(a.pwhash), "$argon2id$x");
    ck_assert_int_eq(idx_account_add(idx, &a, NULL, 0), VG_OK);
    uint64_t g2 = idx_watch_gen(w);
    ck_assert_uint_gt(g2, g);
    ck_assert_uint_eq(idx_watch_gen(w), g2); /* nothing new */
    idx_session_t s;
    ck_assert_int_eq(idx_session_add(idx, "s1", a.id, 10), VG_OK);
    g = idx_watch_gen(w);
    ck_assert_int_eq(idx_session_get(idx, "s1", &s), VG_OK); /* a read */
    ck_assert_uint_eq(idx_watch_gen(w), g);
    ck_assert_int_eq(write(go[1], "x", 1), 1);
    close(go[1]);
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* seen at once: the write was queued before the child exited */
    ck_assert_uint_gt(idx_watch_gen(w), g);
    ck_assert_int_eq(idx_session_get(idx, "s1", &s), VG_ENOTFOUND);
    idx_watch_close(w);
    idx_close(idx);
}
END_TEST

/* index.db a symbolic link, and a stale file where its wal-index would be:
 * SQLite keeps it beside the real file, and the watch must read that one. */
START_TEST(test_watch_follows_a_symlink)
{
    char real_dir[600], real_db[700], stale[700];
    snprintf(real_dir, sizeof(real_dir), "%s/real", g_dir);
    ck_assert_int_eq(mkdir(real_dir, 0700), 0);
    snprintf(real_db, sizeof(real_db), "%s/index.db", real_dir);
    ck_assert_int_eq(symlink(real_db, g_db), 0);
    snprintf(stale, sizeof(stale), "%s-shm", g_db);
    FILE *f = fopen(stale, "w");
    ck_assert_ptr_nonnull(f);
    static const char zeros[32768];
    ck_assert_uint_eq(fwrite(zeros, 1, sizeof(zeros), f), sizeof(zeros));
    fclose(f);
    idx_t *idx = open_rw(); /* through the link */
    idx_watch_t *w = NULL;
    ck_assert_int_eq(idx_watch_open(g_db, &w), VG_OK);
    uint64_t g = idx_watch_gen(w);
    idx_account_t a = {0};
    snprintf(a.name, sizeof(a.name), "guard");
    snprintf(a.role, sizeof(a.role), "security");
    snprintf(a.pwhash, sizeof(a.pwhash), "$argon2id$x");
    ck_assert_int_eq(idx_account_add(idx, &a, NULL, 0), VG_OK);
    ck_assert_uint_gt(idx_watch_gen(w), g);
    idx_watch_close(w);
    idx_close(idx);
}
END_TEST

/* A checkpoint that restarts the WAL starts its frames again from 1: a
 * commit after it must still move the count (the salts change). */
START_TEST(test_watch_across_wal_restarts)
{
    idx_t *idx = open_rw();
    idx_watch_t *w = NULL;
    ck_assert_int_eq(idx_watch_open(g_db, &w), VG_OK);
    idx_account_t a = {0};
    snprintf(a.role, sizeof(a.role), "security");
    snprintf(a.pwhash, sizeof(a.pwhash), "$argon2id$x");
    for (int i = 0; i < 3; i++) {
        snprintf(a.name, sizeof(a.name), "guard%d", i);
        uint64_t g = idx_watch_gen(w);
        ck_assert_uint_gt(g, 0);
        ck_assert_int_eq(idx_account_add(idx, &a, NULL, 0), VG_OK);
        ck_assert_uint_gt(idx_watch_gen(w), g);
        int pages = -1;
        ck_assert_int_eq(idx_wal_checkpoint(idx, 0, &pages), VG_OK);
        g = idx_watch_gen(w);
        ck_assert_uint_gt(g, 0);
        idx_session_t s;
        char sid[16];
        snprintf(sid, sizeof(sid), "s%d", i);
        ck_assert_int_eq(idx_session_add(idx, sid, a.id, 10), VG_OK);
        ck_assert_uint_gt(idx_watch_gen(w), g);
        ck_assert_int_eq(idx_session_get(idx, sid, &s), VG_OK);
    }
    idx_watch_close(w);
    idx_close(idx);
}
END_TEST

/* SQLite holds a shared lock on the wal-index's "DMS" byte (128) while this
 * process has the index open; without it, the next process to open the index
 * resets the file under every mapping of it. Opening and closing the watch
 * must leave that lock alone (a descriptor of the file closed by this process
 * would drop it). Another process is the one that can see the lock. */
static int dms_locked_by_other(const char *db)
{
    char shm[800];
    snprintf(shm, sizeof(shm), "%s-shm", db);
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(shm, O_RDWR);
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 128, .l_len = 1};
        _exit(fd >= 0 && fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type == F_RDLCK ? 0 : 1);
    }
    int status = 0;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

START_TEST(test_watch_keeps_sqlites_locks)
{
    idx_t *idx = open_rw();
    idx_session_t s;
    ck_assert_int_eq(idx_session_get(idx, "none", &s), VG_ENOTFOUND); /* maps the wal-index */
    ck_assert(dms_locked_by_other(g_db));
    idx_watch_t *w = NULL;
    ck_assert_int_eq(idx_watch_open(g_db, &w), VG_OK);
    ck_assert(dms_locked_by_other(g_db));
    ck_assert_uint_gt(idx_watch_gen(w), 0);
    idx_watch_close(w);
    ck_assert(dms_locked_by_other(g_db));
    idx_close(idx);
}
END_TEST

START_TEST(test_accounts_generation)
{
    idx_t *idx = NULL, *other = NULL;
    ck_assert_int_eq(idx_open(g_db, 0, &idx), VG_OK);
    ck_assert_int_eq(idx_open(g_db, 0, &other), VG_OK);
    int64_t g = accounts_gen(idx);
    idx_account_t a = {0};
    snprintf(a.name, sizeof(a.name), "guard");
    snprintf(a.role, sizeof(a.role), "security");
    snprintf(a.pwhash, sizeof(a.pwhash), "$argon2id$x");
    const char *one[] = {"hall-1"};
    ck_assert_int_eq(idx_account_add(other, &a, one, 1), VG_OK);
    ck_assert_int_gt(accounts_gen(idx), g);

    ck_assert_int_eq(idx_session_add(idx, "s1", a.id, 10), VG_OK);
    g = accounts_gen(idx);
    ck_assert_int_eq(idx_session_touch(idx, "s1", 20), VG_OK);
    ck_assert_int_eq(accounts_gen(idx), g);
    ck_assert_int_eq(idx_session_delete(other, "s1"), VG_OK);
    ck_assert_int_gt(accounts_gen(idx), g);

    const char *two[] = {"hall-2"};
    g = accounts_gen(idx);
    ck_assert_int_eq(idx_account_update(other, "guard", NULL, NULL, IDX_SOURCES_LIST, two, 1),
                     VG_OK);
    ck_assert_int_gt(accounts_gen(idx), g);
    g = accounts_gen(idx);
    ck_assert_int_eq(idx_account_update(other, "guard", "auditor", NULL, IDX_SOURCES_KEEP, NULL, 0),
                     VG_OK);
    ck_assert_int_gt(accounts_gen(idx), g);
    g = accounts_gen(idx);
    ck_assert_int_eq(idx_account_update(other, "guard", NULL, "$argon2id$y", IDX_SOURCES_KEEP,
                                        NULL, 0), VG_OK);
    ck_assert_int_gt(accounts_gen(idx), g);

    idx_token_t t = {0};
    snprintf(t.name, sizeof(t.name), "central");
    snprintf(t.perms, sizeof(t.perms), "live");
    ck_assert_int_eq(idx_token_add(other, &t, "abc"), VG_OK);
    g = accounts_gen(idx);
    ck_assert_int_eq(idx_token_revoke(other, t.id, 5), VG_OK);
    ck_assert_int_gt(accounts_gen(idx), g);
    g = accounts_gen(idx);
    ck_assert_int_eq(idx_account_delete(other, "guard"), VG_OK);
    ck_assert_int_gt(accounts_gen(idx), g);
    idx_close(other);
    idx_close(idx);
}
END_TEST

/* Fills a source name up to its longest (63): prefix "x00-" and 59 more. */
#define FILL59 "00000000000000000000000000000000000000000000000000000000000"

/* A list of IDX_LIST_MAX names of 63 characters comes back whole; one more
 * name is refused rather than kept in part. */
START_TEST(test_long_source_lists_whole)
{
    idx_t *idx = NULL;
    ck_assert_int_eq(idx_open(g_db, 0, &idx), VG_OK);
    char names[IDX_LIST_MAX + 1][64];
    const char *list[IDX_LIST_MAX + 1];
    char *csv = vg_strdup("");
    for (int i = 0; i <= IDX_LIST_MAX; i++) {
        snprintf(names[i], sizeof(names[i]), "s%02u-%s", (unsigned)i % 100u, FILL59);
        ck_assert_uint_eq(strlen(names[i]), 63);
        list[i] = names[i];
        ck_assert_int_eq(idx_source_register(idx, names[i], "video"), VG_OK);
        if (i < IDX_LIST_MAX) {
            char *next = vg_asprintf("%s%s%s", csv, i ? "," : "", names[i]);
            free(csv);
            csv = next;
        }
    }
    idx_account_t a = {0}, got;
    snprintf(a.name, sizeof(a.name), "many");
    snprintf(a.role, sizeof(a.role), "security");
    snprintf(a.pwhash, sizeof(a.pwhash), "$argon2id$x");
    ck_assert_int_eq(idx_account_add(idx, &a, list, IDX_LIST_MAX), VG_OK);
    ck_assert_int_eq(idx_account_get(idx, "many", &got), VG_OK);
    ck_assert_int_eq(got.all_sources, 0);
    ck_assert_str_eq(got.sources, csv);
    ck_assert_int_eq(idx_account_update(idx, "many", NULL, NULL, IDX_SOURCES_LIST, list,
                                        IDX_LIST_MAX + 1), VG_EINVAL);
    ck_assert_int_eq(idx_account_get(idx, "many", &got), VG_OK);
    ck_assert_str_eq(got.sources, csv); /* unchanged */

    idx_hold_t h = {0}, hg;
    snprintf(h.case_no, sizeof(h.case_no), "C-1");
    snprintf(h.reason, sizeof(h.reason), "long names");
    h.from_us = 1;
    h.to_us = 2;
    ck_assert_int_eq(idx_hold_add(idx, &h, list, IDX_LIST_MAX + 1), VG_EINVAL);
    ck_assert_int_eq(idx_hold_add(idx, &h, list, IDX_LIST_MAX), VG_OK);
    ck_assert_int_eq(idx_hold_get(idx, h.id, &hg), VG_OK);
    ck_assert_str_eq(hg.sources, csv);
    free(csv);
    idx_close(idx);
}
END_TEST

START_TEST(test_scale_plan)
{
    idx_t *idx = open_rw();
    char name[16], path[64];

    ck_assert_int_eq(idx_begin(idx), VG_OK);
    for (int s = 0; s < SCALE_SOURCES; s++) {
        snprintf(name, sizeof(name), "cam-%d", s);
        ck_assert_int_eq(idx_source_register(idx, name, "video"), VG_OK);
    }
    /* Interleaved by time like the real writer, sources staggered. */
    for (int i = 0; i < SCALE_PER_SOURCE; i++) {
        for (int s = 0; s < SCALE_SOURCES; s++) {
            int64_t start = T0 + (int64_t)i * SEG_US + (int64_t)s * 1000;
            snprintf(name, sizeof(name), "cam-%d", s);
            snprintf(path, sizeof(path), "cam-%d/%d.mp4", s, i);
            idx_segment_t seg = make_seg(name, start, start + SEG_US, path);
            ck_assert_int_eq(idx_segment_insert(idx, &seg), VG_OK);
        }
    }
    ck_assert_int_eq(idx_commit(idx), VG_OK);
    ck_assert_int_eq(raw_int(g_db, "SELECT count(*) FROM segment"),
                     SCALE_SOURCES * SCALE_PER_SOURCE);

    /* cam-5 segments start at T0 + 5000 + i * 60 s. A one-hour window aligned
     * to segment starts, deep in the archive, holds exactly 60 of them. */
    int64_t from = T0 + 5000 + 4000 * SEG_US;
    ck_assert_uint_eq(range_count(idx, "cam-5", from, from + HOUR_US), 60);
    /* Shifted by 30 s it cuts one segment at each edge: 61. */
    ck_assert_uint_eq(range_count(idx, "cam-5", from + SEG_US / 2, from + SEG_US / 2 + HOUR_US),
                      61);

    idx_segment_t *out = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_segments_in_range(idx, "cam-5", from, from + HOUR_US, &out, &n), VG_OK);
    ck_assert_uint_eq(n, 60);
    for (size_t k = 0; k < n; k++) {
        ck_assert_str_eq(out[k].source, "cam-5");
        ck_assert_int_eq(out[k].start_us, from + (int64_t)k * SEG_US);
    }
    free(out);

    /* The plan: the source by its name, then an index range bounded on both
     * sides of start_us for that source; no full scan, no sort. */
    char plan[1024];
    ck_assert_int_eq(idx_explain_range(idx, plan, sizeof(plan)), VG_OK);
    fprintf(stderr, "range query plan:\n%s\n", plan);
    ck_assert_msg(strstr(plan, "USING INDEX") != NULL, "plan: %s", plan);
    ck_assert_msg(strstr(plan, "SEARCH g USING INDEX segment_source_start "
                               "(source_id=? AND start_us>? AND start_us<?)") != NULL,
                  "plan: %s", plan);
    ck_assert_msg(strstr(plan, "SCAN") == NULL, "plan: %s", plan);
    ck_assert_msg(strstr(plan, "TEMP B-TREE") == NULL, "plan: %s", plan);
    /* the timeline's statement walks the same index */
    ck_assert_int_eq(idx_explain_spans(idx, plan, sizeof(plan)), VG_OK);
    ck_assert_msg(strstr(plan, "SEARCH g USING INDEX segment_source_start "
                               "(source_id=? AND start_us>? AND start_us<?)") != NULL,
                  "spans plan: %s", plan);
    ck_assert_msg(strstr(plan, "SCAN") == NULL, "spans plan: %s", plan);
    ck_assert_msg(strstr(plan, "TEMP B-TREE") == NULL, "spans plan: %s", plan);
    idx_close(idx);
}
END_TEST

static void count_span(void *ctx, int64_t start, int64_t end, const char *codecs)
{
    (void)start;
    (void)end;
    (void)codecs;
    (*(int *)ctx)++;
}

/* ---- the span table (schema v19) against the rows ---- */

typedef struct {
    int64_t start, end;
    char codecs[64];
} tspan_t;

typedef struct {
    tspan_t v[4096];
    size_t n;
} tspans_t;

static void collect_span(void *ctx, int64_t start, int64_t end, const char *codecs)
{
    tspans_t *l = ctx;
    ck_assert_uint_lt(l->n, sizeof(l->v) / sizeof(l->v[0]));
    l->v[l->n].start = start;
    l->v[l->n].end = end;
    snprintf(l->v[l->n].codecs, sizeof(l->v[l->n].codecs), "%s", codecs);
    l->n++;
}

/* The timeline's answer before v19, kept here as the reference: every live
 * row overlapping [from, to) by start, id, merged as the timeline merges
 * them (the same codecs, starting less than 1.5 s after the largest end
 * so far). */
static void reference_spans(sqlite3 *db, const char *source, int64_t from, int64_t to,
                            tspans_t *out)
{
    sqlite3_stmt *st = NULL;
    ck_assert_int_eq(sqlite3_prepare_v2(db, "SELECT g.start_us, g.end_us, g.codecs FROM source s"
                                        " JOIN segment g ON g.source_id = s.id"
                                        " WHERE s.name = ?1 AND g.start_us < ?3"
                                        " AND g.end_us > ?2 AND g.deleting = 0"
                                        " ORDER BY g.start_us, g.id", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_bind_text(st, 1, source, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, from);
    sqlite3_bind_int64(st, 3, to);
    out->n = 0;
    int open = 0;
    tspan_t cur = {0};
    while (sqlite3_step(st) == SQLITE_ROW) {
        int64_t s = sqlite3_column_int64(st, 0), e = sqlite3_column_int64(st, 1);
        const char *c = (const char *)sqlite3_column_text(st, 2);
        if (open && s - cur.end < 1500000 && strcmp(c, cur.codecs) == 0) {
            if (e > cur.end)
                cur.end = e;
            continue;
        }
        if (open)
            collect_span(out, cur.start, cur.end, cur.codecs);
        cur.start = s;
        cur.end = e;
        snprintf(cur.codecs, sizeof(cur.codecs), "%s", c);
        open = 1;
    }
    if (open)
        collect_span(out, cur.start, cur.end, cur.codecs);
    sqlite3_finalize(st);
}

static void raw_run(sqlite3 *db, const char *sql)
{
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
}

static int64_t raw_one(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    ck_assert_msg(rc == SQLITE_OK, "%s: %s", sql, sqlite3_errmsg(db));
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

static unsigned g_seed;

static int64_t rnd(int64_t n)
{
    g_seed = g_seed * 1103515245u + 12345u;
    return (int64_t)((g_seed >> 8) % (unsigned)n);
}

static void compare_range(idx_t *idx, sqlite3 *db, const char *source, int64_t from, int64_t to,
                          int step)
{
    static tspans_t want, got;
    reference_spans(db, source, from, to, &want);
    got.n = 0;
    ck_assert_int_eq(idx_spans_walk(idx, source, from, to, collect_span, &got), VG_OK);
    int same = want.n == got.n;
    for (size_t i = 0; same && i < want.n; i++)
        same = want.v[i].start == got.v[i].start && want.v[i].end == got.v[i].end &&
               strcmp(want.v[i].codecs, got.v[i].codecs) == 0;
    if (!same) {
        fprintf(stderr, "step %d source %s range [%lld, %lld): want %zu spans, got %zu\n", step,
                source, (long long)from, (long long)to, want.n, got.n);
        for (size_t i = 0; i < want.n || i < got.n; i++)
            fprintf(stderr, "  want %lld-%lld %s | got %lld-%lld %s\n",
                    i < want.n ? (long long)want.v[i].start : 0,
                    i < want.n ? (long long)want.v[i].end : 0, i < want.n ? want.v[i].codecs : "",
                    i < got.n ? (long long)got.v[i].start : 0,
                    i < got.n ? (long long)got.v[i].end : 0, i < got.n ? got.v[i].codecs : "");
    }
    ck_assert_msg(same, "step %d: the span table's answer differs from the rows'", step);
}

/* What the triggers keep equals what a rebuild from the rows makes (shadowed
 * may stay set after the row that caused it went: a rebuild clears it). */
static void compare_table(idx_t *idx, sqlite3 *db, int step)
{
    if (raw_one(db, "SELECT count(*) FROM source WHERE span_dirty <> 0") != 0)
        return;
    int bad = -1;
    ck_assert_int_eq(idx_spans_verify(idx, NULL, NULL, &bad), VG_OK);
    ck_assert_int_eq(bad, 0);
    raw_run(db, "DROP TABLE IF EXISTS temp.kept;"
                "CREATE TEMP TABLE kept AS SELECT * FROM span;"
                "UPDATE source SET span_dirty = 1;");
    int rebuilt = 0;
    ck_assert_int_eq(idx_spans_repair(idx, &rebuilt), VG_OK);
    ck_assert_int_gt(rebuilt, 0);
    int64_t differ = raw_one(
        db, "SELECT (SELECT count(*) FROM (SELECT source_id, start_us, first_id, end_us,"
            " last_start, last_id, codecs FROM kept EXCEPT SELECT source_id, start_us, first_id,"
            " end_us, last_start, last_id, codecs FROM span)) + (SELECT count(*) FROM (SELECT"
            " source_id, start_us, first_id, end_us, last_start, last_id, codecs FROM span EXCEPT"
            " SELECT source_id, start_us, first_id, end_us, last_start, last_id, codecs FROM kept))");
    ck_assert_msg(differ == 0, "step %d: the triggers' spans differ from a rebuild's (%lld)", step,
                  (long long)differ);
    ck_assert_int_eq(raw_one(db, "SELECT count(*) FROM span s JOIN kept k USING (source_id,"
                                 " start_us, first_id) WHERE s.shadowed > k.shadowed"),
                     0);
    ck_assert_int_eq(raw_one(db, "SELECT count(*) FROM span_work"), 0);
}

/* Random appends (abutting, close, exactly 1.5 s apart, far apart,
 * overlapping, empty), codec changes, rows inserted before the newest,
 * retention's oldest-first marks and drops, deletions in the middle and at
 * the end, by the index's API and by plain SQL on the same file: after
 * every step the span table's answer for random ranges (and for ranges on
 * the rows' own edges) is the rows' answer, and the triggers' table is what
 * a rebuild makes. */
START_TEST(test_spans_match_rows)
{
    idx_t *idx = open_rw();
    sqlite3 *db = raw_open(g_db);
    const char *names[] = {"a", "b"};
    const char *codecs[] = {"h264", "h265", "h264,pcm_alaw"};
    const int64_t U = 500000; /* half a second: gaps hit 1.5 s exactly */
    int64_t last_end[2] = {1000 * U, 1000 * U};
    int codec[2] = {0, 0};
    int n_path = 0, fast = 0, dirty = 0, was_dirty = 0, dirty_appends = 0;
    for (int s = 0; s < 2; s++)
        ck_assert_int_eq(idx_source_register(idx, names[s], "video"), VG_OK);
    /* VIGIL_SPANS_SEED replays another sequence */
    g_seed = getenv("VIGIL_SPANS_SEED") ? (unsigned)atoi(getenv("VIGIL_SPANS_SEED")) : 20261203u;
    for (int step = 0; step < 800; step++) {
        int s = (int)rnd(2);
        char sql[512], path[64];
        int64_t op = rnd(100);
        if (op < 55) { /* the recorder appends */
            static const int64_t gaps[] = {0, 0, 0, 0, 1, 2, 3, 3, 4, 20, -1, -4};
            int64_t gap = gaps[rnd(sizeof(gaps) / sizeof(gaps[0]))] * U;
            if (rnd(10) == 0)
                codec[s] = (int)rnd(3);
            int64_t start = last_end[s] + gap;
            int64_t len = rnd(20) == 0 ? 0 : (1 + rnd(8)) * U;
            snprintf(path, sizeof(path), "%s/%d.mp4", names[s], n_path++);
            idx_segment_t seg = make_seg(names[s], start, start + len, path);
            snprintf(seg.codecs, sizeof(seg.codecs), "%s", codecs[codec[s]]);
            ck_assert_int_eq(idx_segment_insert(idx, &seg), VG_OK);
            if (start + len > last_end[s])
                last_end[s] = start + len;
        } else if (op < 58) { /* a row inserted before the newest (recovery, import) */
            int64_t start = 1000 * U + rnd(last_end[s] - 1000 * U + 1);
            int64_t len = rnd(6) * U;
            snprintf(sql, sizeof(sql),
                     "INSERT INTO segment(source_id, start_us, end_us, media_us, bytes, sha256,"
                     " codecs, init_bytes, path) SELECT id, %lld, %lld, %lld, 1000, '%064d', '%s',"
                     " 700, '%s/%d.mp4' FROM source WHERE name = '%s'",
                     (long long)start, (long long)(start + len), (long long)len, 0,
                     codecs[rnd(3)], names[s], n_path++, names[s]);
            raw_run(db, sql);
        } else if (op < 78) { /* retention: mark the oldest live rows, then drop them */
            snprintf(sql, sizeof(sql),
                     "UPDATE segment SET deleting = 1 WHERE id IN (SELECT g.id FROM segment g"
                     " JOIN source s ON s.id = g.source_id WHERE s.name = '%s'"
                     " AND g.deleting = 0 ORDER BY g.start_us, g.id LIMIT %d)",
                     names[s], 1 + (int)rnd(3));
            raw_run(db, sql);
            if (rnd(2))
                raw_run(db, "DELETE FROM segment WHERE deleting <> 0");
        } else if (op < 90) { /* a row in the middle goes (a disk-pressure pick past a hold) */
            int64_t n = raw_one(db, "SELECT count(*) FROM segment WHERE deleting = 0");
            if (n > 0) {
                snprintf(sql, sizeof(sql),
                         "%s WHERE id = (SELECT id FROM segment WHERE deleting = 0"
                         " ORDER BY start_us, id LIMIT 1 OFFSET %lld)",
                         rnd(2) ? "UPDATE segment SET deleting = 1" : "DELETE FROM segment",
                         (long long)rnd(n));
                raw_run(db, sql);
            }
        } else if (op < 94) { /* the newest row goes (vigilctl, by id) */
            snprintf(sql, sizeof(sql),
                     "SELECT g.id FROM segment g JOIN source s ON s.id = g.source_id"
                     " WHERE s.name = '%s' AND g.deleting = 0 ORDER BY g.start_us DESC,"
                     " g.id DESC LIMIT 1", names[s]);
            int64_t id = raw_one(db, sql);
            if (id > 0)
                ck_assert_int_eq(idx_segment_delete(idx, id), VG_OK);
        } else if (op < 95) { /* a row's times changed behind the index's back */
            raw_run(db, "UPDATE segment SET end_us = end_us + 1 WHERE id = (SELECT max(id)"
                        " FROM segment WHERE deleting = 0)");
        } else {
            int rebuilt = 0;
            ck_assert_int_eq(idx_spans_repair(idx, &rebuilt), VG_OK);
        }
        if (step % 6 == 5) { /* as the sweeper does, now and then */
            int rebuilt = 0;
            ck_assert_int_eq(idx_spans_repair(idx, &rebuilt), VG_OK);
        }
        if (raw_one(db, "SELECT count(*) FROM source WHERE span_dirty <> 0") > 0) {
            dirty++;
            if (!was_dirty && op < 55)
                dirty_appends++; /* overlapping appends */
            was_dirty = 1;
        } else {
            fast++;
            was_dirty = 0;
        }
        /* ranges: everything, random ones, ones on the rows' own edges */
        for (int k = 0; k < 2; k++) {
            compare_range(idx, db, names[k], 0, INT64_MAX / 2, step);
            for (int r = 0; r < 4; r++) {
                int64_t a = 900 * U + rnd(last_end[k] - 800 * U);
                int64_t b = a + rnd(40) * U + (rnd(2) ? 0 : rnd(U));
                compare_range(idx, db, names[k], a, b, step);
            }
            snprintf(sql, sizeof(sql),
                     "SELECT g.start_us FROM segment g JOIN source s ON s.id = g.source_id"
                     " WHERE s.name = '%s' ORDER BY random() LIMIT 1", names[k]);
            int64_t edge = raw_one(db, sql);
            if (edge >= 0) {
                compare_range(idx, db, names[k], edge, edge + rnd(30) * U, step);
                compare_range(idx, db, names[k], edge - rnd(30) * U, edge, step);
                compare_range(idx, db, names[k], edge, edge, step);
            }
        }
        if (step % 50 == 49) {
            /* sometimes a source stays dirty until the next repair: the
             * answers above were the rows' own then */
            compare_table(idx, db, step);
        }
    }
    fprintf(stderr, "spans: %d steps with every source's table kept, %d with one dirty (%d"
            " made dirty by an append)\n", fast, dirty, dirty_appends);
    ck_assert_int_gt(fast, 500); /* the table answered, not only the rows */
    compare_table(idx, db, -1);
    /* a span row edited behind SQLite's back: vigilctl check's verify sees it */
    int bad = -1;
    raw_run(db, "UPDATE span SET end_us = end_us + 1 WHERE source_id ="
                " (SELECT id FROM source WHERE name = 'b')");
    ck_assert_int_eq(idx_spans_verify(idx, NULL, NULL, &bad), VG_OK);
    ck_assert_int_eq(bad, 1);
    sqlite3_close(db);
    idx_close(idx);
}
END_TEST

/* Fragment tables (schema v13): stored with the row in one transaction,
 * read back with the range, gone with the row whichever way it goes, never
 * stored for a row being deleted. */
START_TEST(test_fragment_tables)
{
    idx_t *idx = open_rw();
    ck_assert_int_eq(idx_source_register(idx, "cam", "video"), VG_OK);
    const uint8_t blob[] = {1, 1, 0, 0x80, 0x01, 0, 10};
    idx_segment_t a = make_seg("cam", 1000, 2000, "cam/a.mp4");
    ck_assert_int_eq(idx_segment_insert_frags(idx, &a, blob, sizeof(blob)), VG_OK);
    int64_t b = insert(idx, "cam", 2000, 3000, "cam/b.mp4");
    /* a duplicate path: neither the row nor its table */
    idx_segment_t dup = make_seg("cam", 5000, 6000, "cam/a.mp4");
    ck_assert_int_eq(idx_segment_insert_frags(idx, &dup, blob, sizeof(blob)), VG_EINVAL);
    ck_assert_int_eq(raw_int(g_db, "SELECT count(*) FROM segment_frag"), 1);

    idx_segment_frags_t *items = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_segments_frags_in_range(idx, "cam", 0, 10000, 10, &items, &n), VG_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_uint_eq(items[0].frags_len, sizeof(blob));
    ck_assert_int_eq(memcmp(items[0].frags, blob, sizeof(blob)), 0);
    ck_assert_ptr_null(items[1].frags);
    idx_segment_frags_free(items, n);
    ck_assert_int_eq(idx_segments_frags_in_range(idx, "cam", 0, 10000, 1, &items, &n), VG_EINVAL);

    ck_assert_int_eq(idx_frags_put(idx, b, blob, sizeof(blob)), VG_OK);
    int spans = 0;
    ck_assert_int_eq(idx_spans_walk(idx, "cam", 0, 10000, count_span, &spans), VG_OK);
    ck_assert_int_eq(spans, 1); /* the two abut: one recorded span */

    /* marked for deletion: no new table, not served */
    idx_segment_t segs[1];
    segs[0] = a;
    unsigned char marked[1];
    int64_t run = 0;
    ck_assert_int_eq(idx_record_destruction(idx, 10000, "age", segs, 1, INT64_MAX, marked, &run),
                     VG_OK);
    ck_assert_int_eq(marked[0], 1);
    ck_assert_int_eq(idx_frags_put(idx, a.id, blob, sizeof(blob)), VG_ENOTFOUND);
    idx_segment_frags_t one;
    ck_assert_int_eq(idx_segment_get(idx, a.id, &one), VG_ENOTFOUND);
    ck_assert_int_eq(idx_drop_deleted(idx, segs, 1), VG_OK);
    ck_assert_int_eq(raw_int(g_db, "SELECT count(*) FROM segment_frag"), 1);
    ck_assert_int_eq(idx_segment_delete(idx, b), VG_OK);
    ck_assert_int_eq(raw_int(g_db, "SELECT count(*) FROM segment_frag"), 0);
    ck_assert_int_eq(idx_frags_put(idx, 424242, blob, sizeof(blob)), VG_ENOTFOUND);
    idx_close(idx);
}
END_TEST

/* ---- aggregated denials ---- */

static int64_t denial_now = T0;
static int64_t denial_clock_now(void *ctx) { (void)ctx; return denial_now; }
static const vg_clock_t denial_clock = {denial_clock_now, denial_clock_now, NULL};

static int64_t count_of(const idx_audit_t *r)
{
    const char *c = strstr(r->detail, "count=");
    return c ? atoll(c + 6) : -1;
}

/* A failed write (the index locked by another connection) keeps the counts
 * for the next try; close writes what is left; the chain holds. */
START_TEST(test_denials_survive_a_failed_write)
{
    idx_t *idx = open_rw();
    idx_denials_t *d = NULL;
    ck_assert_int_eq(idx_denials_open(g_db, &denial_clock, &d), VG_OK);
    for (int i = 0; i < 3; i++)
        idx_denials_note(d, T0 + i, "10.0.0.1", "anonymous", "access", "/api/v1/x",
                         "unauthenticated");
    for (int i = 0; i < 2; i++)
        idx_denials_note(d, T0 + i, "10.0.0.2", "anonymous", "access", "/api/v1/y",
                         "unauthenticated");
    ck_assert_int_eq(idx_denials_noted(d), 5);
    sqlite3 *lock = NULL;
    ck_assert_int_eq(sqlite3_open_v2(g_db, &lock, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(lock, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    ck_assert_int_ne(idx_denials_flush(d, 1), VG_OK); /* after the busy timeout */
    ck_assert_int_eq(sqlite3_exec(lock, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(lock);
    ck_assert_int_eq(raw_int(g_db, "SELECT count(*) FROM audit"), 0);
    ck_assert_int_eq(idx_denials_flush(d, 1), VG_OK);
    idx_audit_filter_t f = {.from_us = 0, .to_us = INT64_MAX};
    idx_audit_t *rows = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_audit_list(idx, &f, &rows, &n), VG_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(count_of(&rows[0]) + count_of(&rows[1]), 5);
    ck_assert_str_eq(rows[0].result, "denied");
    free(rows);
    /* a minute still open is written at close */
    idx_denials_note(d, T0 + 5, "10.0.0.1", "anonymous", "access", "/api/v1/x", "rate_limited");
    idx_denials_close(d);
    ck_assert_int_eq(raw_int(g_db, "SELECT count(*) FROM audit"), 3);
    int64_t checked = 0, bad = -1;
    ck_assert_int_eq(idx_audit_verify(idx, &checked, &bad), VG_OK);
    ck_assert_int_eq(checked, 3);
    ck_assert_int_eq(bad, 0);
    idx_close(idx);
}
END_TEST

/* ---- per-account UI preferences ---- */

static void add_user(idx_t *idx, const char *name)
{
    idx_account_t a = {.all_sources = 1};
    snprintf(a.name, sizeof(a.name), "%s", name);
    snprintf(a.role, sizeof(a.role), "security");
    snprintf(a.pwhash, sizeof(a.pwhash), "x");
    ck_assert_int_eq(idx_account_add(idx, &a, NULL, 0), VG_OK);
}

START_TEST(test_prefs)
{
    idx_t *idx = open_rw();
    char *v = NULL;
    add_user(idx, "ann");
    add_user(idx, "bob");
    ck_assert_int_eq(idx_pref_get(idx, "ann", "live.layout", &v), VG_ENOTFOUND);
    ck_assert_ptr_null(v);
    ck_assert_int_eq(idx_pref_set(idx, "nobody", "live.layout", "{}"), VG_ENOTFOUND);
    ck_assert_int_eq(idx_pref_set(idx, "ann", "live.layout", "{\"tiles\":4}"), VG_OK);
    ck_assert_int_eq(idx_pref_set(idx, "ann", "live.layout", "{\"tiles\":9}"), VG_OK);
    ck_assert_int_eq(idx_pref_get(idx, "ann", "live.layout", &v), VG_OK);
    ck_assert_str_eq(v, "{\"tiles\":9}");
    free(v);
    v = NULL;
    /* one account's value is not another's; a quote in a key is data */
    ck_assert_int_eq(idx_pref_get(idx, "bob", "live.layout", &v), VG_ENOTFOUND);
    ck_assert_int_eq(idx_pref_set(idx, "bob", "x'); DROP TABLE account_pref;--", "1"), VG_OK);
    ck_assert_int_eq(raw_int(g_db, "SELECT count(*) FROM account_pref"), 2);
    /* at most IDX_PREFS_MAX keys; replacing one at the cap still works */
    for (int i = 1; i < IDX_PREFS_MAX; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq(idx_pref_set(idx, "ann", key, "true"), VG_OK);
    }
    ck_assert_int_eq(idx_pref_set(idx, "ann", "one.more", "true"), VG_EINVAL);
    ck_assert_int_eq(idx_pref_set(idx, "ann", "k1", "false"), VG_OK);
    ck_assert_int_eq(raw_int(g_db, "SELECT count(*) FROM account_pref p JOIN account a"
                                   " ON a.id = p.account_id WHERE a.name = 'ann'"),
                     IDX_PREFS_MAX);
    /* they go with the account */
    ck_assert_int_eq(idx_account_delete(idx, "ann"), VG_OK);
    ck_assert_int_eq(raw_int(g_db, "SELECT count(*) FROM account_pref"), 1);
    idx_close(idx);
}
END_TEST

static Suite *index_suite(void)
{
    Suite *s = suite_create("index");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_open_creates_wal_current);
    tcase_add_test(tc, test_fragment_tables);
    tcase_add_test(tc, test_spans_match_rows);
    tcase_add_test(tc, test_reopen_idempotent);
    tcase_add_test(tc, test_too_new_refused);
    tcase_add_test(tc, test_not_a_database);
    tcase_add_test(tc, test_readonly_missing_or_empty);
    tcase_add_test(tc, test_readonly_beside_writer);
    tcase_add_test(tc, test_range_edges);
    tcase_add_test(tc, test_range_order_and_long_segment);
    tcase_add_test(tc, test_insert_unknown_source);
    tcase_add_test(tc, test_insert_invalid);
    tcase_add_test(tc, test_segments_all_order);
    tcase_add_test(tc, test_segments_page_and_newest);
    tcase_add_test(tc, test_path_exists_and_delete);
    tcase_add_test(tc, test_source_register_kind);
    tcase_add_test(tc, test_source_version);
    tcase_add_test(tc, test_transactions);
    tcase_add_test(tc, test_wal_starts_over_under_steady_reads);
    tcase_add_test(tc, test_source_hour_rows_go_with_their_hour);
    tcase_add_test(tc, test_anchor_key_and_checkpoints);
    tcase_add_test(tc, test_audited_change_all_or_nothing);
    tcase_add_test(tc, test_audited_steps_share_a_transaction);
    tcase_add_test(tc, test_accounts_generation);
    tcase_add_test(tc, test_watch_sees_every_commit);
    tcase_add_test(tc, test_watch_follows_a_symlink);
    tcase_add_test(tc, test_watch_across_wal_restarts);
    tcase_add_test(tc, test_watch_keeps_sqlites_locks);
    tcase_add_test(tc, test_long_source_lists_whole);
    tcase_add_test(tc, test_scale_plan);
    tcase_add_test(tc, test_denials_survive_a_failed_write);
    tcase_add_test(tc, test_prefs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    snprintf(g_base, sizeof(g_base), "/tmp/vigil-test-index-XXXXXX");
    if (!mkdtemp(g_base)) {
        perror("mkdtemp");
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(index_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    remove_tree(g_base);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
