/* Whether the index may have changed: a counter that moves with every commit
 * to the index, by this process or any other (vigilctl, a repair tool).
 *
 * It reads SQLite's own commit mark. In WAL mode every connection shares the
 * wal-index in "index.db-shm"; its header (documented in SQLite's "WAL-mode
 * file format", two 48-byte copies at offset 0) holds a change counter
 * (iChange, moved by every commit), the last committed frame (mxFrame) and
 * the WAL's salts (new with every WAL restart). A commit writes the header
 * after its frames are in the WAL (and synced): writing it is what makes the
 * commit visible. So a commit finished before a request arrived has changed
 * the header when the request reads it, and a reader that sees the old header
 * may read no newer row than it. The header is read where SQLite's readers
 * read it, in SQLite's own mapping of the file (its VFS's xShmMap, through a
 * connection the watch keeps open): no system call per request. The file is
 * never opened here: closing a descriptor of it would drop every POSIX lock
 * this process holds on it, SQLite's among them.
 *
 * The writer writes the second copy, then the first; a reader reads the
 * first, then the second, and trusts them only when they agree, are
 * initialised and of the known version (SQLite's readers also check a
 * checksum, which guards their use of the whole header; the count needs only
 * a consistent copy). A header that does not agree within a few tries (a
 * writer between its two copies) makes the count 0 for that call: nothing
 * cached is trusted. Callers still bound their entries'
 * age, for what no header shows (the -shm file removed by hand: SQLite keeps
 * using the one it mapped, as does this). */
#include "index/index.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

enum {
    HDR_WORDS = 12,             /* one copy: 48 bytes */
    HDR_VERSION = 3007000,      /* iVersion of every SQLite since WAL mode began */
    HDR_TRIES = 64,
    SHM_REGION = 32768,         /* SQLite maps the wal-index in regions of this size */
    WARN_AFTER = 1000,
};

/* The words of a copy (native byte order): 0 iVersion, 2 iChange,
 * 3 isInit|bigEndCksum|szPage, 4 mxFrame, 5 nPage, 8-9 the salts. */
struct idx_watch {
    sqlite3 *db;             /* keeps SQLite's mapping (and its lock on the file) */
    const uint32_t *hdr;     /* region 0: copy 0 at [0], copy 1 at [12] */
    pthread_mutex_t lock;    /* last, gen */
    uint32_t last[4];        /* iChange, mxFrame, salt 1, salt 2 of the last read */
    uint64_t gen;
    unsigned fails;          /* consecutive reads that found no consistent header */
};

static int refuse(const char *db_path, const char *why, sqlite3 *db)
{
    vg_warn("index: cannot watch %s for changes (%s); rows are read for every request",
            db_path, why);
    sqlite3_close(db);
    return VG_EIO;
}

int idx_watch_open(const char *db_path, idx_watch_t **out)
{
    if (!db_path || !out)
        return VG_EINVAL;
    *out = NULL;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK)
        return refuse(db_path, db ? sqlite3_errmsg(db) : "cannot open", db);
    sqlite3_busy_timeout(db, 5000);
    /* A read maps the wal-index; the journal mode says whether there is one. */
    sqlite3_stmt *st = NULL;
    int wal = sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK &&
              sqlite3_step(st) == SQLITE_ROW &&
              sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
    sqlite3_finalize(st);
    if (!wal)
        return refuse(db_path, "not in WAL mode", db);
    if (sqlite3_exec(db, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL) != SQLITE_OK)
        return refuse(db_path, sqlite3_errmsg(db), db);
    sqlite3_file *f = NULL;
    volatile void *region = NULL;
    if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK || !f ||
        !f->pMethods || f->pMethods->iVersion < 2 || !f->pMethods->xShmMap ||
        f->pMethods->xShmMap(f, 0, SHM_REGION, 0, &region) != SQLITE_OK || !region)
        return refuse(db_path, "no wal-index mapped", db);
    idx_watch_t *w = vg_calloc(1, sizeof(*w));
    w->db = db;
    w->hdr = (const uint32_t *)region;
    w->gen = 1;
    pthread_mutex_init(&w->lock, NULL);
    *out = w;
    return VG_OK;
}

/* One consistent copy of the header into h, or 0. */
static int read_header(const uint32_t *map, uint32_t h[HDR_WORDS])
{
    for (int t = 0; t < HDR_TRIES; t++) {
        uint32_t h2[HDR_WORDS];
        for (int i = 0; i < HDR_WORDS; i++)
            h[i] = __atomic_load_n(&map[i], __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        for (int i = 0; i < HDR_WORDS; i++)
            h2[i] = __atomic_load_n(&map[HDR_WORDS + i], __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (memcmp(h, h2, sizeof(h2)) == 0)
            return h[0] == HDR_VERSION && ((const unsigned char *)h)[12] != 0; /* isInit */
    }
    return 0;
}

uint64_t idx_watch_gen(idx_watch_t *w)
{
    if (!w)
        return 0;
    uint32_t h[HDR_WORDS];
    int ok = read_header(w->hdr, h);
    pthread_mutex_lock(&w->lock);
    uint64_t gen = 0;
    if (ok) {
        const uint32_t now[4] = {h[2], h[4], h[8], h[9]};
        if (memcmp(now, w->last, sizeof(now)) != 0) {
            memcpy(w->last, now, sizeof(now));
            w->gen++;
        }
        gen = w->gen;
        w->fails = 0;
    } else if (++w->fails == WARN_AFTER) {
        /* one failed read is a writer caught between its two copies; this
         * many in a row is not */
        vg_warn("index: the wal-index header has not been readable for %u requests; rows are "
                "read again until it is", (unsigned)WARN_AFTER);
    }
    pthread_mutex_unlock(&w->lock);
    return gen;
}

void idx_watch_close(idx_watch_t *w)
{
    if (!w)
        return;
    sqlite3_close(w->db);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
