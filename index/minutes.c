/* The writer behind rows aggregated by the minute (index/denials.c for
 * refused requests, web/aggregate.c for the requests of a viewing): an
 * index connection of its own and a named thread, signals blocked, that
 * asks its owner to write what closed every second, and one last write of
 * everything at stop. The owners keep their buckets and their rows; this is
 * the part they had in common. */
#include "index/index.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

/* How often the writer asks whether a minute has closed. */
#define TICK_US (1000LL * 1000)

struct idx_minutes {
    idx_t *idx;
    idx_minutes_flush_fn flush;
    void *ctx;
    char name[16];
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t thread;
    int started, stop;
};

static void *writer(void *arg)
{
    idx_minutes_t *m = arg;
    pthread_setname_np(pthread_self(), m->name);
    pthread_mutex_lock(&m->lock);
    while (!m->stop) {
        struct timespec until;
        vg_deadline_us(CLOCK_MONOTONIC, TICK_US, &until);
        while (!m->stop && pthread_cond_timedwait(&m->wake, &m->lock, &until) != ETIMEDOUT)
            ;
        if (m->stop)
            break;
        pthread_mutex_unlock(&m->lock);
        m->flush(m->ctx, m->idx, 0); /* a failure keeps the counts: logged by the owner */
        pthread_mutex_lock(&m->lock);
    }
    pthread_mutex_unlock(&m->lock);
    return NULL;
}

int idx_minutes_start(const char *db_path, const char *thread_name, idx_minutes_flush_fn flush,
                      void *ctx, idx_minutes_t **out)
{
    idx_minutes_t *m = vg_calloc(1, sizeof(*m));
    m->flush = flush;
    m->ctx = ctx;
    snprintf(m->name, sizeof(m->name), "%s", thread_name);
    pthread_mutex_init(&m->lock, NULL);
    pthread_condattr_t mono;
    pthread_condattr_init(&mono);
    pthread_condattr_setclock(&mono, CLOCK_MONOTONIC);
    pthread_cond_init(&m->wake, &mono);
    pthread_condattr_destroy(&mono);
    int rc = idx_open(db_path, 0, &m->idx);
    if (rc == VG_OK) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int e = pthread_create(&m->thread, NULL, writer, m);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (e != 0) {
            vg_err("index: cannot start the %s writer: %s", m->name, strerror(e));
            rc = VG_EIO;
        } else {
            m->started = 1;
        }
    }
    if (rc != VG_OK) {
        m->flush = NULL; /* nothing to write at this stop */
        idx_minutes_stop(m);
        return rc;
    }
    *out = m;
    return VG_OK;
}

idx_t *idx_minutes_index(idx_minutes_t *m)
{
    return m ? m->idx : NULL;
}

void idx_minutes_stop(idx_minutes_t *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->stop = 1;
    pthread_cond_signal(&m->wake);
    pthread_mutex_unlock(&m->lock);
    if (m->started)
        pthread_join(m->thread, NULL);
    /* What the last minute counted is written now (at shutdown). */
    if (m->idx && m->flush)
        m->flush(m->ctx, m->idx, 1);
    idx_close(m->idx);
    pthread_mutex_destroy(&m->lock);
    pthread_cond_destroy(&m->wake);
    free(m);
}
