/* Export jobs: one worker thread builds the bundles queued by the API, one
 * at a time, never in an HTTP thread; the queue is bounded (the API answers
 * 503 when it is full). Job state lives in the index (export table), so a
 * job cut by a stop is found at the next start and marked failed. The
 * worker also removes bundles older than [exports] keep_days, audited as the
 * system. Everything it writes is under data_dir/exports: finished zips are
 * "ID.zip"; every temporary name starts with '.', so whatever a crash left
 * is recognisable and removed at start. */
#include "playback/playback.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define DAY_US (86400LL * 1000000)
#define PROGRESS_EVERY_US 250000
#define EXPORTS_DIR "exports"
#define SYSTEM_ACTOR "system:exports"

struct pb_exporter {
    char *data_dir;
    char *dir;               /* data_dir/exports */
    const vg_clock_t *clock;
    int keep_days;
    int cleanup_ms;
    idx_t *idx;              /* the worker's connection (start and stop use it too) */
    vg_key_t key;
    int have_key;
    char appliance[80];
    /* calls: what a subject-access job bundles (pb_exporter_config_t) */
    int (*subject)(idx_t *idx, const idx_export_t *e, pb_bundle_piece_t **pieces, size_t *n,
                   pb_bundle_file_t **files, size_t *n_files, char *err, size_t err_size);
    /* Test-only fault: jobs of this case crawl (a pause at every progress
     * step) so a test can stop vigild in the middle of one. */
    char slow_case[128];

    pthread_t thread;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int64_t queue[PB_EXPORT_QUEUE_MAX];
    size_t n_queue, reserved;
    int64_t current;         /* the job running, 0: none */
    int stopping;
    int job_stop;            /* read by the bundle builder (atomically) */
    int cleanup_requested;
};

void pb_export_rel_path(int64_t id, char *out, size_t size)
{
    snprintf(out, size, EXPORTS_DIR "/%" PRId64 ".zip", id);
}

int pb_export_remove_file(const char *data_dir, const char *rel_path)
{
    if (!rel_path[0])
        return VG_OK;
    char *path = vg_asprintf("%s/%s", data_dir, rel_path);
    int rc = unlink(path) == 0 || errno == ENOENT ? VG_OK : VG_EIO;
    if (rc == VG_OK)
        rc = vg_fsync_parent(path);
    free(path);
    return rc;
}

/* At start: temporaries ('.'-names) of a job cut by a stop or a crash, and
 * zips whose row is gone or not done, are removed. Between jobs (the worker's
 * periodic pass, when no job of its runs): zips whose row is gone only, so a
 * bundle whose removal failed, or that a delete raced past, does not stay. */
static void remove_strays(pb_exporter_t *x, int at_start)
{
    DIR *d = opendir(x->dir);
    struct dirent *de;
    int removed = 0;
    if (!d)
        return;
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
            continue;
        int stray = at_start && n[0] == '.';
        if (n[0] != '.') {
            char *end = NULL;
            long long id = strtoll(n, &end, 10);
            idx_export_t e;
            int got = end && strcmp(end, ".zip") == 0 && id > 0
                          ? idx_export_get(x->idx, id, &e)
                          : VG_ENOTFOUND;
            /* An index error keeps the file: only what is surely stray goes. */
            stray = got == VG_ENOTFOUND ||
                    (at_start && got == VG_OK && strcmp(e.state, "done") != 0);
        }
        if (stray) {
            char *p = vg_asprintf("%s/%s", x->dir, n);
            if (unlink(p) == 0)
                removed++;
            else
                vg_warn("exports: cannot remove the leftover %s: %s", p, strerror(errno));
            free(p);
        }
    }
    closedir(d);
    if (removed) {
        vg_fsync_dir(x->dir);
        vg_notice("exports: removed %d leftover file(s) of %s", removed,
                  at_start ? "interrupted exports" : "deleted exports");
    }
}

/* An export row update, tried again for up to a minute while the index is
 * busy or failing (a long retention sweep, a full disk), so a job is not
 * left queued or running for good by one failed write. Gives up early when
 * vigild stops. VG_ENOTFOUND (the row deleted) is final at once. */
static int update_row(pb_exporter_t *x, const idx_export_t *e)
{
    int rc = VG_OK;
    int64_t until = vg_clock_mono(&vg_system_clock) + 60 * 1000000LL;
    for (int i = 0, wait_ms = 100; i == 0 || vg_clock_mono(&vg_system_clock) < until;
         i++, wait_ms = wait_ms < 3200 ? wait_ms * 2 : 3200) {
        rc = idx_export_update(x->idx, e);
        if (rc == VG_OK || rc == VG_ENOTFOUND)
            return rc;
        if (i == 0)
            vg_warn("exports: export %" PRId64 " cannot be marked %s (%s): trying again", e->id,
                    e->state, vg_strerror(rc));
        for (int t = 0; t < wait_ms / 10; t++) {
            if (__atomic_load_n(&x->stopping, __ATOMIC_RELAXED))
                return rc;
            usleep(10000);
        }
    }
    vg_err("exports: export %" PRId64 " could not be marked %s: %s", e->id, e->state,
           vg_strerror(rc));
    return rc;
}

typedef struct {
    pb_exporter_t *x;
    idx_export_t *e;
    int64_t last_mono;
} job_t;

static void job_progress(void *ctx, double fraction, int64_t bytes)
{
    job_t *j = ctx;
    if (j->x->slow_case[0] && strcmp(j->x->slow_case, j->e->case_no) == 0) {
        for (int i = 0; i < 30 && !__atomic_load_n(&j->x->job_stop, __ATOMIC_RELAXED); i++)
            usleep(10000);
    }
    int64_t now = vg_clock_mono(&vg_system_clock);
    if (fraction < 1.0 && now - j->last_mono < PROGRESS_EVERY_US)
        return;
    j->last_mono = now;
    j->e->progress = fraction;
    j->e->bytes = bytes;
    idx_export_update(j->x->idx, j->e);
}

static size_t split_sources(char *list, const char **out, size_t max)
{
    size_t n = 0;
    for (char *save = NULL, *s = strtok_r(list, ",", &save); s && n < max;
         s = strtok_r(NULL, ",", &save))
        out[n++] = s;
    return n;
}

static void run_job(pb_exporter_t *x, int64_t id)
{
    idx_export_t e;
    char sources[IDX_LIST_TEXT_MAX], err[320], rel[64], *out = NULL;
    const char *names[PB_BUNDLE_MAX_SOURCES];
    if (idx_export_get(x->idx, id, &e) != VG_OK || strcmp(e.state, "queued") != 0)
        return; /* deleted while queued */
    snprintf(e.state, sizeof(e.state), "running");
    if (update_row(x, &e) != VG_OK)
        return; /* deleted meanwhile, or the index is down: marked failed at the next start */
    snprintf(sources, sizeof(sources), "%s", e.sources);
    size_t n = split_sources(sources, names, PB_BUNDLE_MAX_SOURCES);
    pb_export_rel_path(id, rel, sizeof(rel));
    out = vg_asprintf("%s/%s", x->data_dir, rel);
    job_t job = {x, &e, 0};
    pb_bundle_opts_t o = {.data_dir = x->data_dir, .key = &x->key, .appliance_id = x->appliance,
                          .exporter = e.owner, .case_no = e.case_no, .reason = e.reason,
                          .export_id = id, .from_us = e.from_us, .to_us = e.to_us,
                          .created_us = e.created_us, .sources = names, .n_sources = n,
                          .stop = &x->job_stop, .progress = job_progress, .ctx = &job};
    pb_bundle_result_t res;
    pb_bundle_piece_t *pieces = NULL;
    pb_bundle_file_t *files = NULL;
    size_t n_pieces = 0, n_files = 0;
    int rc = VG_OK;
    if (e.subject[0]) {
        /* calls: a subject-access request bundles every call of a number,
         * found now (when the job runs), one WAV per call */
        rc = x->subject ? x->subject(x->idx, &e, &pieces, &n_pieces, &files, &n_files, err,
                                     sizeof(err))
                        : VG_EINVAL;
        if (!x->subject)
            snprintf(err, sizeof(err), "subject-access requests are not available");
        o.use_pieces = 1;
        o.pieces = pieces;
        o.n_pieces = n_pieces;
        o.files = files;
        o.n_files = n_files;
    }
    if (rc == VG_OK)
        rc = x->have_key ? pb_bundle_write(x->idx, &o, out, &res, err, sizeof(err)) : VG_EINVAL;
    if (rc == VG_OK && !x->have_key)
        rc = VG_EINVAL;
    if (!x->have_key)
        snprintf(err, sizeof(err), "the appliance key is not available");
    for (size_t i = 0; i < n_files; i++)
        free(files[i].data);
    free(files);
    free(pieces);
    e.finished_us = vg_clock_wall(x->clock);
    if (rc == VG_OK) {
        snprintf(e.state, sizeof(e.state), "done");
        e.progress = 1.0;
        e.bytes = res.bytes;
        snprintf(e.path, sizeof(e.path), "%s", rel);
        snprintf(e.sha256, sizeof(e.sha256), "%s", res.sha256);
        e.error[0] = '\0';
        vg_info("exports: export %" PRId64 " done (%" PRId64 " bytes)", id, res.bytes);
    } else {
        snprintf(e.state, sizeof(e.state), "failed");
        snprintf(e.error, sizeof(e.error), "%.250s", rc == VG_ESTOPPED ? "interrupted" : err);
        vg_warn("exports: export %" PRId64 " failed: %s", id, e.error);
        /* a failure after the zip took its name (syncing its directory,
         * reading it back) must not leave it there */
        pb_export_remove_file(x->data_dir, rel);
    }
    /* Deleted while running: nothing may stay behind. */
    int urc = update_row(x, &e);
    if (rc == VG_OK && urc == VG_ENOTFOUND)
        pb_export_remove_file(x->data_dir, rel);
    free(out);
}

typedef struct {
    int64_t id;
} expire_t;

static int do_expire(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    (void)rows;
    (void)n;
    return idx_export_delete(idx, ((expire_t *)arg)->id);
}

/* Bundles past keep_days: the row goes with its audit row, then the file. */
static void cleanup(pb_exporter_t *x)
{
    int64_t now = vg_clock_wall(x->clock);
    idx_export_t *old = NULL;
    size_t n = 0;
    if (idx_export_expired(x->idx, now - (int64_t)x->keep_days * DAY_US, &old, &n) != VG_OK)
        return;
    for (size_t i = 0; i < n; i++) {
        idx_audit_t row;
        memset(&row, 0, sizeof(row));
        row.ts_us = now;
        snprintf(row.actor, sizeof(row.actor), SYSTEM_ACTOR);
        snprintf(row.ip, sizeof(row.ip), "local");
        snprintf(row.action, sizeof(row.action), "export.delete");
        snprintf(row.object, sizeof(row.object), "export:%" PRId64, old[i].id);
        row.from_us = old[i].from_us;
        row.to_us = old[i].to_us;
        snprintf(row.result, sizeof(row.result), "ok");
        snprintf(row.detail, sizeof(row.detail), "expired after keep_days=%d case=%.100s",
                 x->keep_days, old[i].case_no);
        expire_t arg = {old[i].id};
        if (idx_audited_change(x->idx, do_expire, &arg, &row, 1) != VG_OK)
            continue;
        char rel[64];
        pb_export_rel_path(old[i].id, rel, sizeof(rel));
        if (pb_export_remove_file(x->data_dir, rel) == VG_OK)
            vg_notice("exports: removed export %" PRId64 " (older than %d days)", old[i].id,
                      x->keep_days);
        else
            vg_err("exports: export %" PRId64 " expired but its file %s cannot be removed: %s "
                   "(tried again at each cleanup)", old[i].id, rel, strerror(errno));
    }
    free(old);
    remove_strays(x, 0);
}

static void *worker(void *arg)
{
    pb_exporter_t *x = arg;
    prctl(PR_SET_NAME, "exporter");
    int64_t next_cleanup = 0;
    pthread_mutex_lock(&x->lock);
    while (!x->stopping) {
        int64_t now = vg_clock_mono(&vg_system_clock);
        if (now >= next_cleanup || x->cleanup_requested) {
            x->cleanup_requested = 0;
            pthread_mutex_unlock(&x->lock);
            cleanup(x);
            pthread_mutex_lock(&x->lock);
            next_cleanup = vg_clock_mono(&vg_system_clock) + (int64_t)x->cleanup_ms * 1000;
            continue;
        }
        if (x->n_queue == 0) {
            struct timespec until;
            vg_deadline_us(CLOCK_REALTIME, next_cleanup - now, &until);
            pthread_cond_timedwait(&x->wake, &x->lock, &until);
            continue;
        }
        int64_t id = x->queue[0];
        memmove(x->queue, x->queue + 1, (x->n_queue - 1) * sizeof(x->queue[0]));
        x->n_queue--;
        x->current = id;
        __atomic_store_n(&x->job_stop, 0, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&x->lock);
        run_job(x, id);
        pthread_mutex_lock(&x->lock);
        x->current = 0;
    }
    pthread_mutex_unlock(&x->lock);
    return NULL;
}

int pb_exporter_start(const pb_exporter_config_t *cfg, pb_exporter_t **out)
{
    pb_exporter_t *x = vg_calloc(1, sizeof(*x));
    int rc = VG_OK;
    x->data_dir = vg_strdup(cfg->data_dir);
    x->dir = vg_asprintf("%s/" EXPORTS_DIR, cfg->data_dir);
    x->clock = cfg->clock ? cfg->clock : &vg_system_clock;
    x->keep_days = cfg->keep_days > 0 ? cfg->keep_days : 30;
    x->cleanup_ms = cfg->cleanup_ms > 0 ? cfg->cleanup_ms : 60000;
    x->subject = cfg->subject;
    pthread_mutex_init(&x->lock, NULL);
    pthread_cond_init(&x->wake, NULL);
    const char *slow = getenv("VIGIL_TEST_EXPORT_SLOW_CASE");
    snprintf(x->slow_case, sizeof(x->slow_case), "%s", slow ? slow : "");
    char *db = vg_asprintf("%s/index.db", cfg->data_dir);
    rc = idx_open(db, 0, &x->idx);
    free(db);
    if (rc != VG_OK || (rc = vg_mkdir_p(x->dir)) != VG_OK)
        goto cleanup;
    int n = 0;
    if (idx_export_interrupt_all(x->idx, "interrupted", vg_clock_wall(x->clock), &n) == VG_OK &&
        n > 0)
        vg_warn("exports: %d export(s) cut by the last stop marked failed", n);
    remove_strays(x, 1);
    x->have_key = vg_key_load_or_create(cfg->data_dir, &x->key) == VG_OK;
    if (!x->have_key)
        vg_err("exports: no appliance key: exports will fail until it can be loaded");
    idx_archive_id(x->idx, x->appliance, sizeof(x->appliance));
    if (pthread_create(&x->thread, NULL, worker, x) != 0) {
        rc = VG_EIO;
        goto cleanup;
    }
    x->started = 1;

cleanup:
    if (rc != VG_OK) {
        pb_exporter_stop(x);
        x = NULL;
    }
    *out = x;
    return rc;
}

int pb_exporter_reserve(pb_exporter_t *x)
{
    pthread_mutex_lock(&x->lock);
    int rc = x->stopping || x->n_queue + x->reserved >= PB_EXPORT_QUEUE_MAX ? VG_EBUSY : VG_OK;
    if (rc == VG_OK)
        x->reserved++;
    pthread_mutex_unlock(&x->lock);
    return rc;
}

void pb_exporter_unreserve(pb_exporter_t *x)
{
    pthread_mutex_lock(&x->lock);
    if (x->reserved)
        x->reserved--;
    pthread_mutex_unlock(&x->lock);
}

void pb_exporter_submit(pb_exporter_t *x, int64_t id)
{
    pthread_mutex_lock(&x->lock);
    if (x->reserved)
        x->reserved--;
    if (x->n_queue < PB_EXPORT_QUEUE_MAX)
        x->queue[x->n_queue++] = id;
    pthread_cond_signal(&x->wake);
    pthread_mutex_unlock(&x->lock);
}

void pb_exporter_cancel(pb_exporter_t *x, int64_t id)
{
    pthread_mutex_lock(&x->lock);
    for (size_t i = 0; i < x->n_queue; i++) {
        if (x->queue[i] == id) {
            memmove(x->queue + i, x->queue + i + 1, (x->n_queue - i - 1) * sizeof(x->queue[0]));
            x->n_queue--;
            break;
        }
    }
    if (x->current == id)
        __atomic_store_n(&x->job_stop, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&x->lock);
}

void pb_exporter_cleanup_now(pb_exporter_t *x)
{
    pthread_mutex_lock(&x->lock);
    x->cleanup_requested = 1;
    pthread_cond_signal(&x->wake);
    pthread_mutex_unlock(&x->lock);
}

void pb_exporter_stop(pb_exporter_t *x)
{
    if (!x)
        return;
    pthread_mutex_lock(&x->lock);
    __atomic_store_n(&x->stopping, 1, __ATOMIC_RELAXED);
    __atomic_store_n(&x->job_stop, 1, __ATOMIC_RELAXED);
    pthread_cond_signal(&x->wake);
    pthread_mutex_unlock(&x->lock);
    if (x->started)
        pthread_join(x->thread, NULL);
    /* What was still queued will never run in this process. */
    if (x->idx)
        idx_export_interrupt_all(x->idx, "interrupted", vg_clock_wall(x->clock), NULL);
    idx_close(x->idx);
    vg_key_wipe(&x->key);
    pthread_cond_destroy(&x->wake);
    pthread_mutex_destroy(&x->lock);
    free(x->dir);
    free(x->data_dir);
    free(x);
}
