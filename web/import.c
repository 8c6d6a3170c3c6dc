/* The CDR import's body (POST /api/v1/calls/import) streamed into a worker
 * thread: libmicrohttpd hands the body over in pieces to a bounded buffer,
 * and the worker feeds them to the importer (calls/cdr.c) and writes the
 * rows, so no HTTP thread does an import's work and no import holds more
 * than WEB_IMPORT_BUFFER of its body, whatever the file's size. While the
 * buffer is full, and at the end of the body while the last rows are
 * written, the connection is suspended (it holds no thread); the worker
 * resumes it. One import runs at a time (w->csv_busy). */
#include "web/web_private.h"

#include <microhttpd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "calls/calls.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

/* The importer takes the buffer in pieces of this much, so an abandoned
 * import (the client went away) stops within a few rows' work. */
#define FEED_PIECE (16 * 1024)

struct web_import {
    struct web *w;
    struct MHD_Connection *conn;
    pthread_t thread;
    int started;
    idx_t *idx;               /* the worker's own connection */
    call_import_t *im;
    pthread_mutex_t lock;
    pthread_cond_t wake;      /* worker: bytes, the end, or abandoned */
    char *buf;                /* ring of WEB_IMPORT_BUFFER bytes */
    size_t head, len;         /* first unread byte, bytes unread */
    int eof;                  /* the whole body is in buf */
    int abandoned;            /* the request ended: stop */
    int done;                 /* the worker finished: rc and rep are final */
    int suspended;            /* the connection is suspended: the worker resumes it */
    int rc;
    call_import_report_t rep;
};

/* lock held. The connection waits, holding no thread, until the worker
 * calls resume(). */
static void suspend(web_import_t *k)
{
    k->suspended = 1;
    __atomic_add_fetch(&k->w->suspended, 1, __ATOMIC_SEQ_CST);
    MHD_suspend_connection(k->conn);
}

/* lock held */
static void resume(web_import_t *k)
{
    if (!k->suspended)
        return;
    k->suspended = 0;
    MHD_resume_connection(k->conn);
    /* Counted down only now: web_stop must not stop MHD under a resume. */
    __atomic_sub_fetch(&k->w->suspended, 1, __ATOMIC_SEQ_CST);
}

static void *worker(void *arg)
{
    web_import_t *k = arg;
    char *piece = vg_malloc(FEED_PIECE);
    int rc = VG_OK;
    pthread_setname_np(pthread_self(), "web-import");
    pthread_mutex_lock(&k->lock);
    for (;;) {
        if (!k->len && !k->eof && !k->abandoned) {
            /* Nothing to read: the buffer is empty, so the connection must
             * be reading (never left suspended while this waits), and the
             * rows taken so far are committed first, so a client that
             * sends slowly holds no write lock on the index meanwhile. */
            resume(k);
            pthread_mutex_unlock(&k->lock);
            rc = call_import_commit(k->im);
            pthread_mutex_lock(&k->lock);
            while (rc == VG_OK && !k->len && !k->eof && !k->abandoned)
                pthread_cond_wait(&k->wake, &k->lock);
        }
        if (k->abandoned || (!k->len && k->eof) || rc != VG_OK)
            break;
        size_t n = k->len < FEED_PIECE ? k->len : FEED_PIECE;
        if (n > WEB_IMPORT_BUFFER - k->head)
            n = WEB_IMPORT_BUFFER - k->head; /* up to the ring's end */
        memcpy(piece, k->buf + k->head, n);
        k->head = (k->head + n) % WEB_IMPORT_BUFFER;
        k->len -= n;
        /* Room again: let the body come in while this piece is written. */
        if (k->len <= WEB_IMPORT_BUFFER / 2)
            resume(k);
        pthread_mutex_unlock(&k->lock);
        rc = call_import_feed(k->im, piece, n);
        pthread_mutex_lock(&k->lock);
    }
    int abandoned = k->abandoned;
    pthread_mutex_unlock(&k->lock);
    if (abandoned || rc != VG_OK) {
        call_import_abort(k->im);
    } else {
        rc = call_import_end(k->im, &k->rep);
    }
    k->im = NULL;
    free(piece);
    pthread_mutex_lock(&k->lock);
    k->rc = rc;
    k->done = 1;
    resume(k); /* the end of the body waits for this */
    pthread_mutex_unlock(&k->lock);
    return NULL;
}

int web_import_open(web_req_t *r, int utc, web_import_t **out)
{
    web_import_t *k = vg_calloc(1, sizeof(*k));
    int rc = VG_OK;
    k->w = r->w;
    k->conn = r->conn;
    pthread_mutex_init(&k->lock, NULL);
    pthread_cond_init(&k->wake, NULL);
    k->buf = vg_malloc(WEB_IMPORT_BUFFER);
    /* Its own connection: an import's transactions last seconds, and the
     * pool's connections serve one request at a time. */
    rc = idx_open(r->w->db_path, 0, &k->idx);
    if (rc == VG_OK)
        rc = call_import_begin(k->idx, r->cfg, utc, r->cfg->http.timezone, r->now_us, &k->im);
    if (rc == VG_OK) {
        idx_audit_t row;
        web_audit_row(r, &row, NULL, "calls.import", "calls", 0, 0, "ok", "");
        call_import_audit(k->im, &row);
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        int err = pthread_create(&k->thread, NULL, worker, k);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (err != 0) {
            vg_err("web: cannot start an import thread: %s", strerror(err));
            rc = VG_EIO;
        } else {
            k->started = 1;
        }
    }
    if (rc != VG_OK) {
        web_import_free(k);
        return rc;
    }
    *out = k;
    return VG_OK;
}

size_t web_import_push(web_import_t *k, const char *data, size_t size)
{
    size_t took = 0;
    pthread_mutex_lock(&k->lock);
    while (took < size && k->len < WEB_IMPORT_BUFFER && !k->done) {
        size_t tail = (k->head + k->len) % WEB_IMPORT_BUFFER;
        size_t room = WEB_IMPORT_BUFFER - k->len;
        if (room > WEB_IMPORT_BUFFER - tail)
            room = WEB_IMPORT_BUFFER - tail; /* up to the ring's end */
        size_t n = size - took < room ? size - took : room;
        memcpy(k->buf + tail, data + took, n);
        k->len += n;
        took += n;
    }
    if (k->done)
        took = size; /* the import stopped (the index failed): the rest is dropped */
    else if (took < size)
        suspend(k); /* full: wait for the worker to make room */
    pthread_cond_signal(&k->wake);
    pthread_mutex_unlock(&k->lock);
    return took;
}

int web_import_finish(web_import_t *k)
{
    pthread_mutex_lock(&k->lock);
    int done = k->done;
    if (!done) {
        k->eof = 1;
        pthread_cond_signal(&k->wake);
        suspend(k); /* until the last rows are written */
    }
    pthread_mutex_unlock(&k->lock);
    return done;
}

int web_import_result(web_import_t *k, call_import_report_t *rep)
{
    pthread_mutex_lock(&k->lock);
    int rc = k->done ? k->rc : VG_EINVAL;
    if (rc == VG_OK)
        *rep = k->rep;
    pthread_mutex_unlock(&k->lock);
    return rc;
}

void web_import_free(web_import_t *k)
{
    if (!k)
        return;
    if (k->started) {
        pthread_mutex_lock(&k->lock);
        k->abandoned = 1;
        pthread_cond_signal(&k->wake);
        pthread_mutex_unlock(&k->lock);
        /* one piece's rows, a rollback, the abandonment's audit row */
        pthread_join(k->thread, NULL);
    }
    call_import_abort(k->im);
    idx_close(k->idx);
    pthread_mutex_destroy(&k->lock);
    pthread_cond_destroy(&k->wake);
    free(k->buf);
    free(k);
}
