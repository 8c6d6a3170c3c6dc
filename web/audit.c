/* Group commit of audit rows. An access is answered only once its audit row
 * is durable (DESIGN.md invariant 6): a crash may lose an answer, never the
 * record of one. Committing each row alone would cost a WAL fsync per
 * request, so request threads queue their rows and wait while one writer
 * thread commits everything queued in a single transaction: under load many
 * requests share one fsync. */
#include "web/web_private.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

typedef struct ticket {
    idx_audit_t *rows;
    size_t n;
    int done;
    int rc;
    struct ticket *next;
} ticket_t;

struct web_auditor {
    idx_t *idx;
    pthread_t thread;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t work;  /* writer: something queued or stop */
    pthread_cond_t done;  /* waiters: a batch committed */
    ticket_t *head, *tail;
    int stop;
};

/* Commits one batch; every ticket in it gets the same status. */
static void commit_batch(web_auditor_t *a, ticket_t *batch)
{
    size_t total = 0;
    for (ticket_t *t = batch; t; t = t->next)
        total += t->n;
    idx_audit_t *rows = vg_malloc((total ? total : 1) * sizeof(*rows));
    size_t k = 0;
    for (ticket_t *t = batch; t; t = t->next) {
        memcpy(rows + k, t->rows, t->n * sizeof(*rows));
        k += t->n;
    }
    int rc = idx_audit_append(a->idx, rows, total);
    if (rc != VG_OK)
        vg_err("web: cannot write %zu audit row(s): %s; the requests fail", total,
               vg_strerror(rc));
    /* Hand ids and hashes back to the requests. */
    k = 0;
    pthread_mutex_lock(&a->lock);
    for (ticket_t *t = batch; t; t = t->next) {
        memcpy(t->rows, rows + k, t->n * sizeof(*rows));
        k += t->n;
        t->rc = rc;
        t->done = 1;
    }
    pthread_cond_broadcast(&a->done);
    pthread_mutex_unlock(&a->lock);
    free(rows);
}

static void *writer(void *arg)
{
    web_auditor_t *a = arg;
    pthread_setname_np(pthread_self(), "web-audit");
    pthread_mutex_lock(&a->lock);
    for (;;) {
        while (!a->head && !a->stop)
            pthread_cond_wait(&a->work, &a->lock);
        if (!a->head)
            break; /* stop, and nothing left to write */
        ticket_t *batch = a->head;
        a->head = a->tail = NULL;
        pthread_mutex_unlock(&a->lock);
        commit_batch(a, batch);
        pthread_mutex_lock(&a->lock);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

int web_auditor_start(const char *db_path, web_auditor_t **out)
{
    web_auditor_t *a = vg_calloc(1, sizeof(*a));
    int rc = idx_open(db_path, 0, &a->idx);
    if (rc != VG_OK) {
        free(a);
        return rc;
    }
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->work, NULL);
    pthread_cond_init(&a->done, NULL);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&a->thread, NULL, writer, a);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        vg_err("web: cannot start the audit writer: %s", strerror(err));
        web_auditor_stop(a);
        return VG_EIO;
    }
    a->started = 1;
    *out = a;
    return VG_OK;
}

int web_auditor_write(web_auditor_t *a, idx_audit_t *rows, size_t n)
{
    if (n == 0)
        return VG_OK;
    /* The ticket lives on this stack until the writer marks it done. */
    ticket_t t = {.rows = rows, .n = n};
    pthread_mutex_lock(&a->lock);
    if (a->stop) {
        pthread_mutex_unlock(&a->lock);
        return VG_ESTOPPED;
    }
    if (a->tail)
        a->tail->next = &t;
    else
        a->head = &t;
    a->tail = &t;
    pthread_cond_signal(&a->work);
    while (!t.done)
        pthread_cond_wait(&a->done, &a->lock);
    pthread_mutex_unlock(&a->lock);
    return t.rc;
}

void web_auditor_stop(web_auditor_t *a)
{
    if (!a)
        return;
    if (a->started) {
        pthread_mutex_lock(&a->lock);
        a->stop = 1;
        pthread_cond_signal(&a->work);
        pthread_mutex_unlock(&a->lock);
        pthread_join(a->thread, NULL);
    }
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->work);
    pthread_cond_destroy(&a->done);
    idx_close(a->idx);
    free(a);
}
