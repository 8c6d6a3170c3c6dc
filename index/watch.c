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
 * may read no newer row than it. The header is read through a read-only
 * shared mapping, as SQLite's readers do: no system call per request.
 *
 * The writer writes the second copy, then the first; a reader reads the
 * first, then the second, and trusts them only when they agree (SQLite's own
 * rule). A header that never agrees, or is not initialised, makes the count 0
 * for that call: nothing cached is trusted. Callers still bound their entries'
 * age, for what no header shows (the -shm file removed by hand: SQLite keeps
 * using the one it mapped, as does this). */
#include "index/index.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

enum {
    HDR_WORDS = 12,             /* one copy: 48 bytes */
    HDR_BYTES = 2 * HDR_WORDS * 4,
    HDR_VERSION = 3007000,      /* iVersion of every SQLite since WAL mode began */
    HDR_TRIES = 64,
};

/* The words of a copy (native byte order): 0 iVersion, 2 iChange,
 * 3 isInit|bigEndCksum|szPage, 4 mxFrame, 5 nPage, 8-9 the salts. */
struct idx_watch {
    const uint32_t *hdr; /* the mapping: copy 0 at [0], copy 1 at [12] */
    size_t map_len;
    pthread_mutex_t lock; /* last, gen */
    uint32_t last[4];     /* iChange, mxFrame, salt 1, salt 2 of the last read */
    uint64_t gen;
    int warned;
};

int idx_watch_open(const char *db_path, idx_watch_t **out)
{
    if (!db_path || !out)
        return VG_EINVAL;
    *out = NULL;
    /* SQLite resolves symbolic links to name the -shm after the real file */
    char *real = realpath(db_path, NULL);
    char *shm = vg_asprintf("%s-shm", real ? real : db_path);
    free(real);
    int fd = open(shm, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < HDR_BYTES) {
        vg_warn("index: cannot watch %s (%s); rows are read for every request", shm,
                fd < 0 ? strerror(errno) : "not a wal-index");
        if (fd >= 0)
            close(fd);
        free(shm);
        return VG_EIO;
    }
    /* One page: it lies within the file, which SQLite never shrinks while
     * a connection (this process holds one) has it open. */
    size_t len = (size_t)sysconf(_SC_PAGESIZE);
    void *map = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) {
        vg_warn("index: cannot map %s (%s); rows are read for every request", shm,
                strerror(errno));
        free(shm);
        return VG_EIO;
    }
    free(shm);
    idx_watch_t *w = vg_calloc(1, sizeof(*w));
    w->hdr = map;
    w->map_len = len;
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
    } else if (!w->warned) {
        w->warned = 1;
        vg_warn("index: the wal-index header cannot be read; rows are read again until it can");
    }
    pthread_mutex_unlock(&w->lock);
    return gen;
}

void idx_watch_close(idx_watch_t *w)
{
    if (!w)
        return;
    munmap((void *)w->hdr, w->map_len);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
