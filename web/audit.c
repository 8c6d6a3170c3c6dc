/* Group commit of audit rows. An access is answered only once its audit row
 * is durable (DESIGN.md invariant 6): a crash may lose an answer, never the
 * record of one. Committing each row alone would cost a WAL fsync per
 * request, so requests queue their rows (their connections suspended, so no
 * HTTP thread waits) and one writer thread commits everything queued in a
 * single transaction: under load many requests share one fsync.
 *
 * A ticket may also carry a change (web_change_queued: the PBX events): it
 * runs in that transaction in a savepoint of its own with its audit rows
 * after it, so thousands of durable changes a second share fsyncs too. */
#include "web/web_private.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

typedef web_ticket_t ticket_t;

/* Commit the batch, then let another thread checkpoint: SQLite would
 * otherwise run the checkpoint inside the commit that crosses the WAL limit,
 * and every request waiting on that commit would wait for it too. */
#define CHECKPOINT_EVERY_ROWS 2000
/* Past this many WAL pages (4 KiB each: 32 MiB), a checkpoint makes sure
 * the WAL starts over even while requests keep reading (index/audit.c). */
#define WAL_RESTART_PAGES 8192
#define LINGER_US 300
#define LINGER_ENOUGH 32

struct web_auditor {
    idx_t *idx;
    pthread_t thread;
    int started;
    /* the checkpointer: its own connection, woken by the writer */
    idx_t *ckpt_idx;
    pthread_t ckpt_thread;
    int ckpt_started;
    pthread_cond_t ckpt_wake;
    size_t rows_since_ckpt;
    pthread_mutex_t lock;
    pthread_cond_t work;  /* writer: something queued or stop */
    ticket_t *head, *tail;
    size_t n_queued;
    int busy_last;  /* the last batch had company: requests are arriving together */
    int lingering;  /* the writer waits for the batch to fill: wake it when full */
    int stop;
};

/* Writes one ticket inside the batch's transaction: its change (if any) in
 * a savepoint of its own, then its other rows. Returns the ticket's own code
 * in t_rc (a change that failed is only its request's failure) and VG_OK, or
 * an error that fails the whole batch. */
static int write_ticket(web_auditor_t *a, ticket_t *t, int *t_rc)
{
    *t_rc = VG_OK;
    if (t->change) {
        *t_rc = idx_audited_step(a->idx, t->change, t->change_arg, t->change_rows, t->n_change);
        if (!idx_in_transaction(a->idx))
            return *t_rc != VG_OK ? *t_rc : VG_EDB; /* SQLite dropped the batch */
    }
    int rc = t->n ? idx_audit_append(a->idx, t->rows, t->n) : VG_OK;
    if (rc == VG_OK && *t_rc == VG_OK)
        *t_rc = t->change ? VG_OK : rc;
    return rc;
}

/* Commits one batch in one transaction, tickets in queue order (so the
 * chain is in commit order and a later change sees an earlier one: two
 * events of one call in a batch). A failed change costs only its request;
 * a failed row or commit fails every ticket, changes included. */
static void commit_batch(web_auditor_t *a, ticket_t *batch)
{
    size_t total = 0, n_tickets = 0;
    for (ticket_t *t = batch; t; t = t->next) {
        total += t->n + t->n_change;
        n_tickets++;
    }
    int *rcs = vg_calloc(n_tickets ? n_tickets : 1, sizeof(*rcs));
    int rc = idx_begin(a->idx);
    size_t i = 0;
    for (ticket_t *t = batch; rc == VG_OK && t; t = t->next, i++)
        rc = write_ticket(a, t, &rcs[i]);
    if (rc == VG_OK)
        rc = idx_commit(a->idx);
    else
        idx_rollback(a->idx);
    if (rc != VG_OK)
        vg_err("web: cannot write %zu audit row(s): %s; the requests fail", total,
               vg_strerror(rc));
    pthread_mutex_lock(&a->lock);
    a->rows_since_ckpt += total;
    if (a->rows_since_ckpt >= CHECKPOINT_EVERY_ROWS)
        pthread_cond_signal(&a->ckpt_wake);
    pthread_mutex_unlock(&a->lock);
    /* Wake each request (ids and hashes are in its rows). done() may end
     * the request and free its ticket: read next first. */
    i = 0;
    for (ticket_t *t = batch, *next; t; t = next, i++) {
        next = t->next;
        t->done(t->arg, rc != VG_OK ? rc : rcs[i]);
    }
    free(rcs);
}

/* Lets a small batch grow for up to LINGER_US while requests keep coming
 * (the last batch had several): under load one fsync then covers many more
 * rows (each flush costs the disk, and this VM's kernel a good deal of CPU),
 * at the price of at most that much latency. Alone, a request never waits.
 * lock held. */
static void linger(web_auditor_t *a)
{
    if (a->n_queued >= LINGER_ENOUGH || a->stop || !a->busy_last)
        return;
    struct timespec until;
    vg_deadline_us(CLOCK_MONOTONIC, LINGER_US, &until);
    a->lingering = 1;
    while (a->n_queued < LINGER_ENOUGH && !a->stop &&
           pthread_cond_timedwait(&a->work, &a->lock, &until) != ETIMEDOUT)
        ;
    a->lingering = 0;
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
        linger(a);
        ticket_t *batch = a->head;
        a->busy_last = batch->next != NULL;
        a->head = a->tail = NULL;
        a->n_queued = 0;
        pthread_mutex_unlock(&a->lock);
        commit_batch(a, batch);
        pthread_mutex_lock(&a->lock);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

static void *checkpointer(void *arg)
{
    web_auditor_t *a = arg;
    pthread_setname_np(pthread_self(), "web-ckpt");
    pthread_mutex_lock(&a->lock);
    while (!a->stop) {
        if (a->rows_since_ckpt < CHECKPOINT_EVERY_ROWS) {
            pthread_cond_wait(&a->ckpt_wake, &a->lock);
            continue;
        }
        a->rows_since_ckpt = 0;
        pthread_mutex_unlock(&a->lock);
        idx_wal_checkpoint(a->ckpt_idx, WAL_RESTART_PAGES, NULL);
        pthread_mutex_lock(&a->lock);
    }
    pthread_mutex_unlock(&a->lock);
    return NULL;
}

static int start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0)
        vg_err("web: cannot start the audit writer: %s", strerror(err));
    return err == 0 ? VG_OK : VG_EIO;
}

int web_auditor_start(const char *db_path, web_auditor_t **out)
{
    web_auditor_t *a = vg_calloc(1, sizeof(*a));
    pthread_mutex_init(&a->lock, NULL);
    pthread_condattr_t mono;
    pthread_condattr_init(&mono);
    pthread_condattr_setclock(&mono, CLOCK_MONOTONIC); /* linger's deadline */
    pthread_cond_init(&a->work, &mono);
    pthread_condattr_destroy(&mono);
    pthread_cond_init(&a->ckpt_wake, NULL);
    int rc = idx_open(db_path, 0, &a->idx);
    if (rc == VG_OK)
        rc = idx_open(db_path, 0, &a->ckpt_idx);
    if (rc == VG_OK)
        rc = idx_wal_autocheckpoint(a->idx, 0);
    if (rc == VG_OK && (rc = start_thread(&a->thread, writer, a)) == VG_OK)
        a->started = 1;
    if (rc == VG_OK && (rc = start_thread(&a->ckpt_thread, checkpointer, a)) == VG_OK)
        a->ckpt_started = 1;
    if (rc != VG_OK) {
        web_auditor_stop(a);
        return rc;
    }
    *out = a;
    return VG_OK;
}

void web_auditor_submit(web_auditor_t *a, web_ticket_t *t)
{
    t->next = NULL;
    pthread_mutex_lock(&a->lock);
    if (a->stop) {
        pthread_mutex_unlock(&a->lock);
        t->done(t->arg, VG_ESTOPPED);
        return;
    }
    if (a->tail)
        a->tail->next = t;
    else
        a->head = t;
    a->tail = t;
    a->n_queued++;
    if (!a->lingering || a->n_queued >= LINGER_ENOUGH)
        pthread_cond_signal(&a->work);
    pthread_mutex_unlock(&a->lock);
}

/* A row queued on its own, nobody waiting for it. */
typedef struct {
    web_ticket_t ticket;
    idx_audit_t row;
} detached_t;

static void detached_done(void *arg, int rc)
{
    detached_t *d = arg;
    if (rc != VG_OK)
        vg_err("web: the %s row of %s on %s could not be recorded: %s", d->row.action,
               d->row.actor, d->row.object, vg_strerror(rc));
    free(d);
}

void web_audit_detached(struct web *w, const idx_audit_t *row)
{
    detached_t *d = vg_calloc(1, sizeof(*d));
    d->row = *row;
    d->ticket = (web_ticket_t){.rows = &d->row, .n = 1, .done = detached_done, .arg = d};
    web_auditor_submit(w->auditor, &d->ticket);
}

void web_auditor_stop(web_auditor_t *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    a->stop = 1;
    pthread_cond_signal(&a->work);
    pthread_cond_signal(&a->ckpt_wake);
    pthread_mutex_unlock(&a->lock);
    if (a->started)
        pthread_join(a->thread, NULL);
    if (a->ckpt_started)
        pthread_join(a->ckpt_thread, NULL);
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->work);
    pthread_cond_destroy(&a->ckpt_wake);
    idx_close(a->ckpt_idx);
    idx_close(a->idx);
    free(a);
}
