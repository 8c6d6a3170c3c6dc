/* vigild: wires config, index, archive writers and capture threads together,
 * recovers after a crash before recording, and shuts down cleanly on
 * SIGTERM/SIGINT. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "archive/archive.h"
#include "capture/capture.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"
#include "index/index.h"
#include "retention/retention.h"

typedef struct {
    const vg_source_config_t *cfg;
    idx_t *idx;           /* this source's own connection (used by its thread) */
    arc_writer_t *writer;
    cap_source_t *capture;
} recorder_t;

typedef struct {
    vg_config_t cfg;
    int lock_fd;
    idx_t *idx;
    recorder_t *recorders;
    size_t n_recorders;

    /* The retention thread: sweeps every sweep_seconds on its own connection. */
    pthread_t sweeper;
    int sweeper_started;
    idx_t *sweep_idx;
    pthread_mutex_t sweep_lock;
    pthread_cond_t sweep_wake;
    int sweep_stop;
} daemon_t;

static int sink_begin(void *ctx, AVStream *const *streams, unsigned n)
{
    return arc_writer_begin(ctx, streams, n) == VG_OK ? 0 : -1;
}

static int sink_packet(void *ctx, const AVPacket *pkt, int64_t recv_wall_us)
{
    return arc_writer_write(ctx, pkt, recv_wall_us);
}

static void sink_end(void *ctx)
{
    arc_writer_end(ctx);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: vigild -c CONFIG\n"
                 "Records every source in CONFIG into DATA_DIR (see README).\n");
}

/* One daemon per data_dir: a second one would fight over the same files. */
static int lock_data_dir(daemon_t *d)
{
    char *path = vg_asprintf("%s/vigild.lock", d->cfg.data_dir);
    d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    int rc = VG_OK;
    if (d->lock_fd < 0) {
        vg_err("cannot open %s: %s", path, strerror(errno));
        rc = VG_EIO;
    } else if (flock(d->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        vg_err("another vigild is running on %s", d->cfg.data_dir);
        rc = VG_EBUSY;
    }
    free(path);
    return rc;
}

static int prepare_storage(daemon_t *d)
{
    char *media = vg_asprintf("%s/media", d->cfg.data_dir);
    int rc = vg_mkdir_p(media);
    free(media);
    if (rc != VG_OK) {
        vg_err("cannot create %s/media: %s", d->cfg.data_dir, strerror(errno));
        return rc;
    }
    rc = lock_data_dir(d);
    if (rc != VG_OK)
        return rc;
    char *db = vg_asprintf("%s/index.db", d->cfg.data_dir);
    rc = idx_open(db, 0, &d->idx);
    free(db);
    for (size_t i = 0; rc == VG_OK && i < d->cfg.n_sources; i++) {
        const vg_source_config_t *s = &d->cfg.sources[i];
        rc = idx_source_register(d->idx, s->name, s->kind == VG_SOURCE_VIDEO ? "video" : "audio");
    }
    return rc;
}

/* Crash recovery (DESIGN.md invariants 1 and 2), before anything records:
 * deletions a crash interrupted are finished first, then index and disk are
 * made to agree. */
static int recover(daemon_t *d)
{
    arc_reconcile_opts_t opts = {.repair = 1};
    int problems = 0;
    int rc = ret_finish_pending(d->idx, d->cfg.data_dir, NULL);
    if (rc == VG_OK)
        rc = arc_reconcile(d->cfg.data_dir, d->idx, &opts, &problems);
    if (rc != VG_OK)
        vg_err("recovery failed: %s", vg_strerror(rc));
    else if (problems)
        vg_notice("recovery: %d disagreement(s) between index and disk repaired", problems);
    return rc;
}

static int start_recorder(daemon_t *d, size_t i)
{
    recorder_t *r = &d->recorders[i];
    r->cfg = &d->cfg.sources[i];
    char *db = vg_asprintf("%s/index.db", d->cfg.data_dir);
    int rc = idx_open(db, 0, &r->idx);
    free(db);
    if (rc != VG_OK)
        return rc;
    arc_writer_config_t wc = {
        .data_dir = d->cfg.data_dir,
        .source = r->cfg->name,
        .segment_seconds = d->cfg.segment_seconds,
        .stagger_slot = (int)i,
        .stagger_slots = (int)d->cfg.n_sources,
        .clock = &vg_system_clock,
        .idx = r->idx,
    };
    rc = arc_writer_open(&wc, &r->writer);
    if (rc != VG_OK)
        return rc;
    cap_sink_t sink = {.ctx = r->writer, .begin = sink_begin, .packet = sink_packet,
                       .end = sink_end};
    return cap_source_start(r->cfg, &cap_default_timing, &vg_system_clock, sink, &r->capture);
}

static int64_t open_segment_bytes(daemon_t *d)
{
    int64_t total = 0;
    for (size_t i = 0; i < d->n_recorders; i++)
        total += d->recorders[i].writer ? arc_writer_open_bytes(d->recorders[i].writer) : 0;
    return total;
}

static void sweep_once(daemon_t *d)
{
    ret_sweep_result_t res;
    int rc = ret_sweep(d->sweep_idx, &d->cfg, vg_clock_wall(&vg_system_clock),
                       open_segment_bytes(d), &res);
    if (rc != VG_OK) {
        vg_err("retention sweep failed: %s", vg_strerror(rc));
        return;
    }
    /* Invariant 3: when the floor or holds leave no room, recording yields. */
    for (size_t i = 0; i < d->n_recorders; i++) {
        if (d->recorders[i].writer)
            arc_writer_set_paused(d->recorders[i].writer, res.stop_recording);
    }
}

static void *sweeper_thread(void *arg)
{
    daemon_t *d = arg;
    pthread_setname_np(pthread_self(), "retention");
    pthread_mutex_lock(&d->sweep_lock);
    while (!d->sweep_stop) {
        pthread_mutex_unlock(&d->sweep_lock);
        sweep_once(d);
        pthread_mutex_lock(&d->sweep_lock);
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += d->cfg.retention.sweep_seconds;
        while (!d->sweep_stop &&
               pthread_cond_timedwait(&d->sweep_wake, &d->sweep_lock, &until) == 0) {
        }
    }
    pthread_mutex_unlock(&d->sweep_lock);
    return NULL;
}

static int start_sweeper(daemon_t *d)
{
    char *db = vg_asprintf("%s/index.db", d->cfg.data_dir);
    int rc = idx_open(db, 0, &d->sweep_idx);
    free(db);
    if (rc != VG_OK)
        return rc;
    pthread_mutex_init(&d->sweep_lock, NULL);
    pthread_cond_init(&d->sweep_wake, NULL);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&d->sweeper, NULL, sweeper_thread, d);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        vg_err("cannot start the retention thread: %s", strerror(err));
        return VG_EIO;
    }
    d->sweeper_started = 1;
    return VG_OK;
}

static void stop_sweeper(daemon_t *d)
{
    if (d->sweeper_started) {
        pthread_mutex_lock(&d->sweep_lock);
        d->sweep_stop = 1;
        pthread_cond_broadcast(&d->sweep_wake);
        pthread_mutex_unlock(&d->sweep_lock);
        pthread_join(d->sweeper, NULL);
        d->sweeper_started = 0;
        pthread_mutex_destroy(&d->sweep_lock);
        pthread_cond_destroy(&d->sweep_wake);
    }
    idx_close(d->sweep_idx);
    d->sweep_idx = NULL;
}

static void stop_recorders(daemon_t *d)
{
    for (size_t i = 0; i < d->n_recorders; i++)
        cap_source_request_stop(d->recorders[i].capture);
    for (size_t i = 0; i < d->n_recorders; i++) {
        recorder_t *r = &d->recorders[i];
        cap_source_join(r->capture); /* the thread ends its segment on the way out */
        arc_writer_close(r->writer);
        idx_close(r->idx);
    }
    free(d->recorders);
    d->recorders = NULL;
    d->n_recorders = 0;
}

/* Waits for SIGTERM/SIGINT. Signals are blocked in every thread and taken
 * here synchronously, so no work happens in a signal handler. */
static void wait_for_stop(const sigset_t *set)
{
    for (;;) {
        struct timespec tick = {1, 0};
        int sig = sigtimedwait(set, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            vg_notice("signal %d: stopping", sig);
            return;
        }
        if (sig == SIGHUP)
            vg_notice("SIGHUP: reload is not supported yet; ignoring");
    }
}

static int run(daemon_t *d, const sigset_t *signals)
{
    int rc = prepare_storage(d);
    if (rc == VG_OK)
        rc = recover(d);
    if (rc != VG_OK)
        return rc;
    d->recorders = vg_calloc(d->cfg.n_sources, sizeof(recorder_t));
    for (size_t i = 0; i < d->cfg.n_sources && rc == VG_OK; i++) {
        rc = start_recorder(d, i);
        d->n_recorders = i + 1;
    }
    /* The first sweep runs as soon as the thread starts: at startup. */
    if (rc == VG_OK)
        rc = start_sweeper(d);
    if (rc == VG_OK) {
        vg_notice("recording %zu source(s) into %s", d->cfg.n_sources, d->cfg.data_dir);
        wait_for_stop(signals);
    }
    stop_sweeper(d);
    stop_recorders(d);
    return rc;
}

int main(int argc, char **argv)
{
    const char *config_path = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "c:h")) != -1) {
        if (opt == 'c') {
            config_path = optarg;
        } else {
            usage(opt == 'h' ? stdout : stderr);
            return opt == 'h' ? 0 : 2;
        }
    }
    if (!config_path || optind != argc) {
        usage(stderr);
        return 2;
    }
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    daemon_t d = {.lock_fd = -1};
    char err[512];
    int rc = vg_config_load(config_path, &d.cfg, err, sizeof(err));
    if (rc != VG_OK) {
        vg_err("refusing to start: %s", err);
        return 1;
    }
    vg_log_set_level(d.cfg.log_level);
    cap_route_libav_log(AV_LOG_ERROR);
    avformat_network_init();
    rc = run(&d, &signals);
    idx_close(d.idx);
    if (d.lock_fd >= 0)
        close(d.lock_fd);
    vg_config_free(&d.cfg);
    avformat_network_deinit();
    if (rc != VG_OK) {
        vg_err("vigild exits: %s", vg_strerror(rc));
        return 1;
    }
    vg_notice("stopped cleanly");
    return 0;
}
