/* vigild: wires config, index, archive writers and capture threads together,
 * recovers after a crash before recording, sweeps retention, reloads its
 * config on SIGHUP and shuts down cleanly on SIGTERM/SIGINT. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "cmd/vigild.h"
#include "calls/calls.h"
#include "calls/qa.h"
#include "core/clock.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"
#include "retention/retention.h"

/* ---- the sink: capture hands packets to the archive writer ---- */

static int sink_begin(void *ctx, AVStream *const *streams, unsigned n)
{
    recorder_t *r = ctx;
    int rc = arc_writer_begin(r->writer, streams, n) == VG_OK ? 0 : -1;
    /* The relay's results never touch recording's. */
    if (rc == 0 && r->relay)
        rly_feed_begin(r->relay, streams, n);
    if (rc == 0 && r->live)
        live_feed_begin(r->live, streams, n);
    if (rc == 0)
        vigild_vad_begin(r, streams, n);
    return rc;
}

/* Blocks like a writer stuck in the kernel would (test fault injection),
 * until the daemon stops. */
static void stall(const recorder_t *r)
{
    vg_warn("source=%s test fault: writer stalled on purpose", r->cfg->name);
    while (!atomic_load(r->stopping))
        usleep(100 * 1000);
}

static int sink_packet(void *ctx, const AVPacket *pkt, int64_t recv_wall_us)
{
    recorder_t *r = ctx;
    if (r->stall_after_packets && ++r->packets_seen == r->stall_after_packets)
        stall(r);
    if (r->relay)
        rly_feed_packet(r->relay, pkt, recv_wall_us); /* never blocks */
    if (r->live)
        live_feed_packet(r->live, pkt, recv_wall_us); /* never blocks either */
    vigild_vad_packet(r, pkt, recv_wall_us); /* never blocks */
    return arc_writer_write(r->writer, pkt, recv_wall_us);
}

static void sink_end(void *ctx)
{
    recorder_t *r = ctx;
    arc_writer_end(r->writer);
    if (r->relay)
        rly_feed_end(r->relay);
    if (r->live)
        live_feed_end(r->live);
    vigild_vad_end(r);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: vigild -c CONFIG\n"
                 "Records every source in CONFIG into DATA_DIR (see README).\n");
}

/* ---- storage, recovery ---- */

/* One daemon per data_dir: a second one would fight over the same files. */
static int lock_data_dir(daemon_t *d, const char *data_dir)
{
    char *path = vg_asprintf("%s/vigild.lock", data_dir);
    d->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    int rc = VG_OK;
    if (d->lock_fd < 0) {
        vg_err("cannot open %s: %s", path, strerror(errno));
        rc = VG_EIO;
    } else if (flock(d->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        vg_err("another vigild is running on %s", data_dir);
        rc = VG_EBUSY;
    }
    free(path);
    return rc;
}

static int register_sources(idx_t *idx, const vg_config_t *cfg)
{
    int rc = VG_OK;
    for (size_t i = 0; rc == VG_OK && i < cfg->n_sources; i++) {
        const vg_source_config_t *s = &cfg->sources[i];
        rc = idx_source_register(idx, s->name, s->kind == VG_SOURCE_VIDEO ? "video" : "audio");
    }
    return rc;
}

/* Under systemd, StateDirectory= (outside data_dir) also remembers the
 * archive, so an unmounted disk is told from a first start. */
static char *state_dir(void)
{
    const char *env = getenv("STATE_DIRECTORY");
    if (!env || !env[0])
        return NULL;
    char *dir = vg_strdup(env);
    dir[strcspn(dir, ":")] = '\0'; /* the first of several */
    return dir;
}

static int prepare_storage(daemon_t *d)
{
    const vg_config_t *cfg = daemon_config(d);
    char err[768];
    char *state = state_dir();
    int initialised = 0;
    int claim = arc_claim_data_dir(cfg->data_dir, state, vg_clock_wall(&vg_system_clock), err,
                                   sizeof(err), &initialised);
    free(state);
    if (claim != VG_OK) {
        vg_err("refusing to record: %s", err);
        return claim;
    }
    char *media = vg_asprintf("%s/media", cfg->data_dir);
    int rc = vg_mkdir_p(media);
    free(media);
    if (rc != VG_OK) {
        vg_err("cannot create %s/media: %s", cfg->data_dir, strerror(errno));
        return rc;
    }
    rc = lock_data_dir(d, cfg->data_dir);
    if (rc != VG_OK)
        return rc;
    char *db = vg_asprintf("%s/index.db", cfg->data_dir);
    rc = idx_open(db, 0, &d->idx);
    free(db);
    if (rc == VG_OK && (rc = register_sources(d->idx, cfg)) == VG_OK)
        call_ann_zone_apply(d->idx, cfg->http.timezone); /* logged; days stay as they were */
    return rc;
}

/* Crash recovery (DESIGN.md invariants 1 and 2), before anything records:
 * deletions a crash interrupted are finished first, then index and disk are
 * made to agree where a crash can have touched them: per source, from a few
 * segments before its newest row on (RECOVERY_RECENT_US plus two segment
 * lengths). That keeps startup as fast at 8.64 M rows as at 8; the whole
 * archive is checked by `vigilctl check`. */
#define RECOVERY_RECENT_US (10 * 60 * 1000000LL)

static int recover(daemon_t *d)
{
    const vg_config_t *cfg = daemon_config(d);
    arc_reconcile_counts_t counts = {0};
    arc_reconcile_opts_t opts = {
        .repair = 1,
        .recent_us = RECOVERY_RECENT_US + 2LL * cfg->segment_seconds * 1000000LL,
        .counts = &counts,
    };
    int problems = 0;
    /* Every pending deletion is tried once more; one that fails again is
     * reported (alarm delete_failed) and does not keep vigild from starting. */
    int rc = ret_finish_pending(d->idx, cfg->data_dir, vg_clock_wall(&vg_system_clock), 1, NULL);
    if (rc == VG_OK)
        rc = arc_reconcile(cfg->data_dir, d->idx, &opts, &problems);
    if (rc != VG_OK) {
        vg_err("recovery failed: %s", vg_strerror(rc));
        return rc;
    }
    vg_notice("startup check: %lld row(s) and %lld file(s) of the last minutes checked, "
              "%d disagreement(s), %lld file(s) recovered, %lld removed",
              (long long)counts.rows_checked, (long long)counts.files_checked, problems,
              (long long)counts.recovered, (long long)counts.removed);
    return VG_OK;
}

/* ---- recorders ---- */

static long stall_fault_for(const char *source)
{
    const char *who = getenv("VIGIL_TEST_STALL_SOURCE");
    const char *after = getenv("VIGIL_TEST_STALL_AFTER_PACKETS");
    if (!who || strcmp(who, source) != 0)
        return 0;
    return after ? atol(after) : 1;
}

static void recorder_free(recorder_t *r)
{
    if (!r)
        return;
    cap_source_join(r->capture); /* the thread ends its segment on the way out */
    rly_feed_close(r->relay);
    live_feed_close(r->live);
    vigild_vad_close(r);
    arc_writer_close(r->writer);
    idx_close(r->idx);
    free(r);
}

static int recorder_start(daemon_t *d, const vg_config_t *cfg, size_t slot, recorder_t **out)
{
    recorder_t *r = vg_calloc(1, sizeof(*r));
    r->cfg = &cfg->sources[slot];
    r->stall_after_packets = stall_fault_for(r->cfg->name);
    r->stopping = &d->stopping;
    char *db = vg_asprintf("%s/index.db", cfg->data_dir);
    int rc = idx_open(db, 0, &r->idx);
    free(db);
    arc_writer_config_t wc = {
        .data_dir = cfg->data_dir,
        .source = r->cfg->name,
        .segment_seconds = cfg->segment_seconds,
        .stagger_slot = (int)slot,
        .stagger_slots = (int)cfg->n_sources,
        .clock = &vg_system_clock,
        .idx = r->idx,
        .sync_seconds = cfg->sync_seconds,
        .fragment_max_seconds = cfg->fragment_max_seconds,
        .fragment_max_bytes = (int64_t)cfg->fragment_max_mib * 1024 * 1024,
        .alarm_hold_seconds = cfg->alarm_hold_seconds,
    };
    if (rc == VG_OK)
        rc = arc_writer_open(&wc, &r->writer);
    if (rc == VG_OK && atomic_load(&d->recording_paused))
        arc_writer_set_paused(r->writer, 1);
    if (rc == VG_OK && d->relay && rly_feed_open(d->relay, cfg, r->cfg, &r->relay) != VG_OK)
        vg_err("source=%s relay could not start; recording anyway", r->cfg->name);
    if (rc == VG_OK && live_feed_open(d->live, r->cfg, &r->live) != VG_OK)
        vg_err("source=%s live view could not start; recording anyway", r->cfg->name);
    if (rc == VG_OK)
        vigild_vad_open(d, r);
    cap_sink_t sink = {.ctx = r, .begin = sink_begin, .packet = sink_packet, .end = sink_end};
    if (rc == VG_OK)
        rc = cap_source_start(r->cfg, &cap_default_timing, &vg_system_clock, sink, &r->capture);
    if (rc != VG_OK) {
        recorder_free(r);
        return rc;
    }
    *out = r;
    return VG_OK;
}

static int start_recorders(daemon_t *d)
{
    const vg_config_t *cfg = daemon_config(d);
    d->recorders = vg_calloc(cfg->n_sources ? cfg->n_sources : 1, sizeof(recorder_t *));
    int rc = VG_OK;
    for (size_t i = 0; i < cfg->n_sources && rc == VG_OK; i++) {
        rc = recorder_start(d, cfg, i, &d->recorders[i]);
        if (rc == VG_OK)
            d->n_recorders = i + 1;
    }
    return rc;
}

static void stop_recorders(daemon_t *d)
{
    pthread_mutex_lock(&d->recorders_lock);
    recorder_t **list = d->recorders;
    size_t n = d->n_recorders;
    d->recorders = NULL;
    d->n_recorders = 0;
    pthread_mutex_unlock(&d->recorders_lock);
    for (size_t i = 0; i < n; i++)
        cap_source_request_stop(list[i]->capture);
    for (size_t i = 0; i < n; i++)
        recorder_free(list[i]);
    free(list);
}

/* ---- retention thread ---- */

static int64_t open_segment_bytes(daemon_t *d)
{
    int64_t total = 0;
    pthread_mutex_lock(&d->recorders_lock);
    for (size_t i = 0; i < d->n_recorders; i++)
        total += arc_writer_open_bytes(d->recorders[i]->writer);
    pthread_mutex_unlock(&d->recorders_lock);
    return total;
}

static void set_paused(daemon_t *d, int paused)
{
    atomic_store(&d->recording_paused, paused);
    pthread_mutex_lock(&d->recorders_lock);
    for (size_t i = 0; i < d->n_recorders; i++)
        arc_writer_set_paused(d->recorders[i]->writer, paused);
    pthread_mutex_unlock(&d->recorders_lock);
}

static void sweep_once(daemon_t *d)
{
    ret_sweep_result_t res;
    int64_t t0 = vg_clock_mono(&vg_system_clock);
    int64_t wall = vg_clock_wall(&vg_system_clock);
    /* A wall clock that leapt ahead must not age the archive away. */
    if (ret_clock_check(&d->clock_guard, d->sweep_idx, wall, t0) != VG_OK)
        vg_err("retention: cannot check the wall clock against the last sweep");
    int rc = ret_sweep(d->sweep_idx, daemon_config(d), wall, open_segment_bytes(d), &res);
    int64_t took = vg_clock_mono(&vg_system_clock) - t0;
    atomic_fetch_add(&d->sweeps, 1);
    atomic_fetch_add(&d->sweep_us_total, took);
    atomic_store(&d->last_sweep_us, took);
    if (rc == VG_OK)
        atomic_fetch_add(&d->deleted_segments, (long long)res.deleted);
    if (rc != VG_OK) {
        vg_err("retention sweep failed: %s", vg_strerror(rc));
        return;
    }
    /* Invariant 3: when the floor or holds leave no room, recording yields. */
    set_paused(d, res.stop_recording);
    const vg_config_t *cfg = daemon_config(d);
    call_ann_alarm_check(d->sweep_idx, cfg->announcement_min_rate, wall,
                         (int64_t)cfg->announcement_check_seconds * 1000000, &d->ann_next_us);
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
        until.tv_sec += daemon_config(d)->retention.sweep_seconds;
        while (!d->sweep_stop &&
               pthread_cond_timedwait(&d->sweep_wake, &d->sweep_lock, &until) == 0) {
        }
    }
    pthread_mutex_unlock(&d->sweep_lock);
    return NULL;
}

/* Starts a thread with every signal blocked (DESIGN.md convention 6). */
int vigild_start_thread(pthread_t *t, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(t, NULL, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0)
        vg_err("cannot start a thread: %s", strerror(err));
    return err ? VG_EIO : VG_OK;
}

static int start_sweeper(daemon_t *d)
{
    char *db = vg_asprintf("%s/index.db", daemon_config(d)->data_dir);
    int rc = idx_open(db, 0, &d->sweep_idx);
    if (rc == VG_OK)
        rc = idx_open(db, 0, &d->metrics_idx);
    free(db);
    if (rc == VG_OK)
        rc = vigild_start_thread(&d->sweeper, sweeper_thread, d);
    d->sweeper_started = rc == VG_OK;
    return rc;
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
    }
    idx_close(d->sweep_idx);
    d->sweep_idx = NULL;
    pthread_mutex_lock(&d->metrics_lock);
    idx_close(d->metrics_idx);
    d->metrics_idx = NULL;
    pthread_mutex_unlock(&d->metrics_lock);
}

/* ---- reload (SIGHUP) ---- */

static int source_changed(const vg_source_config_t *a, const vg_source_config_t *b)
{
    return strcmp(a->url, b->url) != 0 || a->kind != b->kind || a->transport != b->transport;
}

/* What a running daemon cannot take without a restart. Everything else
 * applies: segment_seconds to sources that (re)start, retention at the next
 * sweep, log_level at once. */
static const char *restart_needed(const vg_config_t *old, const vg_config_t *next)
{
    if (strcmp(old->data_dir, next->data_dir) != 0)
        return "data_dir cannot change without a restart";
    return NULL;
}

static recorder_t *take_recorder(recorder_t **list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (list[i] && strcmp(list[i]->cfg->name, name) == 0) {
            recorder_t *r = list[i];
            list[i] = NULL;
            return r;
        }
    }
    return NULL;
}

/* Sorts the running recorders against next: an untouched source carries
 * over as it is (no gap) into kept[slot]; a changed or removed one goes to
 * leaving. kept[] holds NULL where a recorder must start. */
static void sort_recorders(const vg_config_t *next, recorder_t **old, size_t n_old,
                           recorder_t **kept, recorder_t **leaving, size_t *n_leaving)
{
    *n_leaving = 0;
    for (size_t i = 0; i < next->n_sources; i++) {
        const vg_source_config_t *s = &next->sources[i];
        recorder_t *r = take_recorder(old, n_old, s->name);
        if (r && !source_changed(r->cfg, s)) {
            r->cfg = s; /* same stream; keep_days and the like come from next */
            kept[i] = r;
            continue;
        }
        vg_notice("reload: source=%s %s", s->name, r ? "changed, restarting" : "added");
        if (r)
            leaving[(*n_leaving)++] = r;
    }
    for (size_t i = 0; i < n_old; i++) {
        if (old[i]) {
            vg_notice("reload: source=%s removed, stopping", old[i]->cfg->name);
            leaving[(*n_leaving)++] = old[i];
        }
    }
}

/* The running recorders, without holes: a source that could not start has
 * no slot, so status, metrics, the watchdog and the web never meet NULL. */
static void publish_recorders(daemon_t *d, recorder_t *const *slots, size_t n_slots,
                              vg_config_t *cfg)
{
    recorder_t **list = vg_calloc(n_slots ? n_slots : 1, sizeof(*list));
    size_t n = 0;
    for (size_t i = 0; i < n_slots; i++) {
        if (slots[i])
            list[n++] = slots[i];
    }
    pthread_mutex_lock(&d->recorders_lock);
    recorder_t **old = d->recorders;
    d->recorders = list;
    d->n_recorders = n;
    if (cfg)
        atomic_store(&d->cfg, cfg);
    pthread_mutex_unlock(&d->recorders_lock);
    free(old); /* readers only walk it under the lock */
}

/* Every reload, applied or refused, is on the audit trail (invariant 6). */
static void audit_reload(daemon_t *d, const char *result, const char *detail)
{
    idx_audit_t a = {0};
    a.ts_us = vg_clock_wall(&vg_system_clock);
    snprintf(a.actor, sizeof(a.actor), "system:vigild");
    snprintf(a.ip, sizeof(a.ip), "local");
    snprintf(a.action, sizeof(a.action), "config.reload");
    snprintf(a.object, sizeof(a.object), "config");
    snprintf(a.result, sizeof(a.result), "%s", result);
    snprintf(a.detail, sizeof(a.detail), "%s", detail);
    if (idx_audit_append(d->idx, &a, 1) != VG_OK)
        vg_err("reload: cannot write the audit row");
}

static void reload(daemon_t *d, const char *config_path)
{
    vg_config_t *next = vg_calloc(1, sizeof(*next));
    char err[512];
    const char *why = NULL;
    if (vg_config_load(config_path, next, err, sizeof(err)) != VG_OK) {
        vg_err("reload rejected, keeping the running configuration: %s", err);
        audit_reload(d, "error", err);
        free(next);
        return;
    }
    vg_config_t *old = daemon_config(d);
    if ((why = restart_needed(old, next)) != NULL || register_sources(d->idx, next) != VG_OK) {
        vg_err("reload rejected, keeping the running configuration: %s",
               why ? why : "cannot register sources");
        audit_reload(d, "error", why ? why : "cannot register sources");
        vg_config_free(next);
        free(next);
        return;
    }
    vg_log_set_level(next->log_level);
    pthread_mutex_lock(&d->recorders_lock);
    size_t n_old = d->n_recorders;
    recorder_t **old_list = vg_calloc(n_old ? n_old : 1, sizeof(*old_list));
    if (n_old)
        memcpy(old_list, d->recorders, n_old * sizeof(*old_list));
    pthread_mutex_unlock(&d->recorders_lock);
    recorder_t **slots = vg_calloc(next->n_sources ? next->n_sources : 1, sizeof(*slots));
    recorder_t **leaving = vg_calloc(n_old ? n_old : 1, sizeof(*leaving));
    size_t n_leaving = 0;
    sort_recorders(next, old_list, n_old, slots, leaving, &n_leaving);
    /* Invariant 4: a changed source's old connection is closed before its
     * new one opens. The leaving recorders go out of view first, then stop
     * (each ends its segment), then the new ones start. */
    publish_recorders(d, slots, next->n_sources, NULL);
    for (size_t i = 0; i < n_leaving; i++)
        recorder_free(leaving[i]);
    size_t failed = 0;
    for (size_t i = 0; i < next->n_sources; i++) {
        if (!slots[i] && recorder_start(d, next, i, &slots[i]) != VG_OK) {
            vg_err("reload: source=%s could not start; the others run on", next->sources[i].name);
            slots[i] = NULL;
            failed++;
        }
    }
    d->configs = vg_realloc(d->configs, (d->n_configs + 1) * sizeof(*d->configs));
    d->configs[d->n_configs++] = next;
    publish_recorders(d, slots, next->n_sources, next);
    free(slots);
    free(leaving);
    free(old_list);
    if (failed) {
        char detail[64];
        snprintf(detail, sizeof(detail), "applied: %zu source(s), %zu could not start",
                 next->n_sources, failed);
        vg_notice("reload: configuration applied (%zu source(s), %zu could not start)",
                  next->n_sources, failed);
        audit_reload(d, "partial", detail);
        return;
    }
    vg_notice("reload: configuration applied (%zu source(s))", next->n_sources);
    char detail[64];
    snprintf(detail, sizeof(detail), "applied: %zu source(s)", next->n_sources);
    audit_reload(d, "ok", detail);
}

/* ---- audit anchoring ---- */

/* A checkpoint at start signs what the trail holds before this run adds to
 * it (and shows a trail that went back while vigild was stopped). */
static void anchor_start(daemon_t *d)
{
    const char *data_dir = daemon_config(d)->data_dir;
    int64_t now = vg_clock_wall(&vg_system_clock);
    if (vg_key_load_or_create(data_dir, &d->key) != VG_OK ||
        idx_anchor_open(d->idx, data_dir, &d->key, &d->anchor) != VG_OK) {
        /* Recording goes on (invariant 8); the admin is told in status. */
        vg_err("audit: no appliance key: the audit trail is not anchored by checkpoints");
        idx_alarm_raise(d->idx, "audit_unanchored", "critical", "",
                        "the appliance key cannot be read or created: no audit checkpoints",
                        now);
        return;
    }
    idx_alarm_clear(d->idx, "audit_unanchored", now, NULL);
    idx_anchor_checkpoint(d->anchor, d->idx, vg_clock_wall(&vg_system_clock), 1, NULL);
    d->next_checkpoint_us = vg_clock_mono(&vg_system_clock) +
                            (int64_t)daemon_config(d)->audit_checkpoint_seconds * 1000000;
}

/* Every audit_checkpoint_seconds, when the head moved (a failed attempt is
 * retried at the next tick). */
static void anchor_tick(daemon_t *d)
{
    int64_t now = vg_clock_mono(&vg_system_clock);
    if (!d->anchor || now < d->next_checkpoint_us)
        return;
    if (idx_anchor_checkpoint(d->anchor, d->idx, vg_clock_wall(&vg_system_clock), 0, NULL) ==
        VG_OK)
        d->next_checkpoint_us = now + (int64_t)daemon_config(d)->audit_checkpoint_seconds * 1000000;
}

/* At shutdown, once nothing else writes audit rows. */
static void anchor_stop(daemon_t *d)
{
    if (d->anchor)
        idx_anchor_checkpoint(d->anchor, d->idx, vg_clock_wall(&vg_system_clock), 1, NULL);
    idx_anchor_close(d->anchor);
    d->anchor = NULL;
    vg_key_wipe(&d->key);
}

/* ---- main loop ---- */

/* Waits for SIGTERM/SIGINT. Signals are blocked in every thread and taken
 * here synchronously, so no work happens in a signal handler. */
static void main_loop(daemon_t *d, const sigset_t *set, const char *config_path)
{
    int tick_ms = svc_tick_ms();
    for (;;) {
        struct timespec tick = {tick_ms / 1000, (long)(tick_ms % 1000) * 1000000L};
        int sig = sigtimedwait(set, NULL, &tick);
        if (sig == SIGTERM || sig == SIGINT) {
            vg_notice("signal %d: stopping", sig);
            return;
        }
        if (sig == SIGHUP)
            reload(d, config_path);
        anchor_tick(d);
        svc_tick(d);
    }
}

static int run(daemon_t *d, const sigset_t *signals, const char *config_path)
{
    int rc = prepare_storage(d);
    if (rc == VG_OK)
        rc = recover(d);
    if (rc == VG_OK)
        anchor_start(d);
    if (rc == VG_OK) {
        rly_server_config_t rc_cfg = {.cfg = daemon_config(d),
                                      .data_dir = daemon_config(d)->data_dir,
                                      .clock = &vg_system_clock};
        rc = rly_server_start(&rc_cfg, &d->relay);
    }
    /* Live view is a convenience: recording starts without it. */
    if (rc == VG_OK && live_start(daemon_config(d), &d->live) != VG_OK)
        vg_err("live view could not start; recording anyway");
    if (rc == VG_OK)
        rc = vigild_calls_start(d);
    if (rc == VG_OK)
        rc = start_recorders(d);
    /* The first sweep runs as soon as the thread starts: at startup. */
    if (rc == VG_OK)
        rc = start_sweeper(d);
    if (rc == VG_OK)
        rc = vigild_web_start(d);
    if (rc == VG_OK)
        rc = svc_status_start(d);
    if (rc == VG_OK) {
        vg_notice("recording %zu source(s) into %s", daemon_config(d)->n_sources,
                  daemon_config(d)->data_dir);
        svc_notify_ready(d);
        main_loop(d, signals, config_path);
        svc_notify_stopping();
    }
    atomic_store(&d->stopping, 1);
    live_shutdown(d->live); /* its sessions' end rows go through the web's auditor */
    web_stop(d->web);
    d->web = NULL;
    pb_exporter_stop(d->exporter);
    d->exporter = NULL;
    svc_status_stop(d);
    stop_sweeper(d);
    stop_recorders(d);
    vigild_calls_stop(d); /* after the recorders: their last VAD calls are stored */
    rly_server_stop(d->relay);
    d->relay = NULL;
    live_stop(d->live);
    d->live = NULL;
    anchor_stop(d);
    return rc;
}

static void daemon_free(daemon_t *d)
{
    idx_close(d->idx);
    if (d->lock_fd >= 0)
        close(d->lock_fd);
    for (size_t i = 0; i < d->n_configs; i++) {
        vg_config_free(d->configs[i]);
        free(d->configs[i]);
    }
    free(d->configs);
    pthread_mutex_destroy(&d->recorders_lock);
    pthread_mutex_destroy(&d->metrics_lock);
    pthread_mutex_destroy(&d->sweep_lock);
    pthread_cond_destroy(&d->sweep_wake);
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

    daemon_t d = {.lock_fd = -1, .status_fd = -1};
    pthread_mutex_init(&d.recorders_lock, NULL);
    pthread_mutex_init(&d.metrics_lock, NULL);
    pthread_mutex_init(&d.sweep_lock, NULL);
    pthread_cond_init(&d.sweep_wake, NULL);
    vg_config_t *cfg = vg_calloc(1, sizeof(*cfg));
    char err[512];
    if (vg_config_load(config_path, cfg, err, sizeof(err)) != VG_OK) {
        vg_err("refusing to start: %s", err);
        free(cfg);
        daemon_free(&d);
        return 1;
    }
    d.configs = vg_malloc(sizeof(*d.configs));
    d.configs[d.n_configs++] = cfg;
    atomic_store(&d.cfg, cfg);
    vg_log_set_level(cfg->log_level);
    vg_config_warn_exposed(cfg);
    cap_route_libav_log(AV_LOG_ERROR);
    avformat_network_init();
    int rc = run(&d, &signals, config_path);
    daemon_free(&d);
    avformat_network_deinit();
    if (rc != VG_OK) {
        vg_err("vigild exits: %s", vg_strerror(rc));
        return 1;
    }
    vg_notice("stopped cleanly");
    return 0;
}
