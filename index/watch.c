/* Whether the index may have changed: a counter bumped by every write to
 * its write-ahead log, by this process or any other (vigilctl, a repair
 * tool), seen through inotify. Every commit appends to the WAL before
 * readers can see it, so a change committed before a request arrived has
 * bumped the counter by the time the request asks (idx_watch_gen drains the
 * queue itself rather than leaving it to a thread that might not have run
 * yet). Caches of rows that must never be served stale (a session after a
 * password change, a segment being deleted) keep an entry only while the
 * counter is the one they read it under.
 *
 * One race is left: a reader that drains the event of a commit whose WAL
 * write has happened but which readers cannot see yet (it is being synced)
 * reads the old row under the new count. Callers bound that with a short
 * age limit on their entries. */
#include "index/index.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

struct idx_watch {
    int fd;
    pthread_mutex_t lock; /* the drain and the count */
    uint64_t gen;         /* 0 once the watch is lost: nothing can be trusted */
};

int idx_watch_open(const char *db_path, idx_watch_t **out)
{
    if (!db_path || !out)
        return VG_EINVAL;
    *out = NULL;
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        vg_warn("index: cannot watch %s-wal (inotify: %s); rows are read for every request",
                db_path, strerror(errno));
        return VG_EIO;
    }
    /* SQLite resolves symbolic links to name the WAL after the real file */
    char *real = realpath(db_path, NULL);
    char *wal = vg_asprintf("%s-wal", real ? real : db_path);
    free(real);
    /* IN_MODIFY: every append and truncation; the others end the watch. */
    int wd = inotify_add_watch(fd, wal, IN_MODIFY | IN_DELETE_SELF | IN_MOVE_SELF);
    if (wd < 0) {
        vg_warn("index: cannot watch %s (%s); rows are read for every request", wal,
                strerror(errno));
        free(wal);
        close(fd);
        return VG_EIO;
    }
    free(wal);
    idx_watch_t *w = vg_calloc(1, sizeof(*w));
    w->fd = fd;
    w->gen = 1;
    pthread_mutex_init(&w->lock, NULL);
    *out = w;
    return VG_OK;
}

uint64_t idx_watch_gen(idx_watch_t *w)
{
    if (!w)
        return 0;
    /* Events carry no name here (the watch is on the file itself). */
    _Alignas(struct inotify_event) char buf[64 * sizeof(struct inotify_event)];
    pthread_mutex_lock(&w->lock);
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN && w->gen) {
                vg_warn("index: the WAL watch failed (%s); rows are read for every request",
                        strerror(errno));
                w->gen = 0;
            }
            break;
        }
        for (ssize_t at = 0; at + (ssize_t)sizeof(struct inotify_event) <= n;) {
            const struct inotify_event *e = (const struct inotify_event *)(buf + at);
            if (e->mask & (IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
                if (w->gen)
                    vg_warn("index: the WAL watch ended (event 0x%x); rows are read for every "
                            "request", (unsigned)e->mask);
                w->gen = 0;
            }
            at += (ssize_t)sizeof(*e) + e->len;
        }
        if (w->gen)
            w->gen++;
    }
    uint64_t gen = w->gen;
    pthread_mutex_unlock(&w->lock);
    return gen;
}

void idx_watch_close(idx_watch_t *w)
{
    if (!w)
        return;
    close(w->fd);
    pthread_mutex_destroy(&w->lock);
    free(w);
}
