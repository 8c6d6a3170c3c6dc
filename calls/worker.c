/* The calls worker (calls/worker.h). Why one thread that polls the index:
 * a call ends in three places (a PBX PATCH on a web thread, an import, the
 * VAD on a capture thread), and a call's first seconds are often still in
 * the open segment when it ends, so a check may have to wait anyway. The
 * index keeps "ended and not checked" as a small partial index
 * (call_unchecked), so looking every 2 s costs nothing, finds calls of any
 * origin, and after a restart finds what was left unchecked. Capture only
 * queues VAD calls here (bounded, never blocking); SQLite writes and the
 * decode happen on this thread. With no reference configured at all the
 * check is off and calls stay unchecked (installing one checks them then);
 * when some lines or queues have one, a call whose queue and line have
 * none (and no [calls] one) is marked unknown (the check cannot tell), so it does not stay at the head of the
 * unchecked list; vigilctl calls recheck clears checks when a reference
 * changes. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "calls/dsp.h"
#include "calls/worker.h"
#include "core/clock.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"
#include "playback/playback.h"

#define REFS_MAX 16
#define UNCHECKED_BATCH 200
#define PREROLL_US 1000000

typedef struct {
    char source[64];
    int64_t start_us, end_us;
} vad_item_t;

typedef struct {
    char *path;
    struct timespec mtime;
    off_t size;
    call_announce_ref_t *ref; /* NULL: the file could not be used (logged once) */
} ref_slot_t;

struct call_worker {
    call_worker_cfg_fn cfg;
    void *cfg_ctx;
    idx_t *idx; /* the thread's own connection */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop;
    vad_item_t queue[CALL_WORKER_QUEUE];
    size_t q_head, q_len;
    ref_slot_t refs[REFS_MAX];
    size_t n_refs;
    atomic_llong vad_stored, vad_dropped, checked, deferred;
};

void call_worker_vad_call(call_worker_t *w, const char *source, int64_t start_us, int64_t end_us)
{
    pthread_mutex_lock(&w->lock);
    if (w->q_len == CALL_WORKER_QUEUE) {
        pthread_mutex_unlock(&w->lock);
        /* aggregated: the first and then every 100th */
        if (atomic_fetch_add(&w->vad_dropped, 1) % 100 == 0)
            vg_err("source=%s vad call dropped: the calls queue is full", source);
        return;
    }
    vad_item_t *it = &w->queue[(w->q_head + w->q_len++) % CALL_WORKER_QUEUE];
    snprintf(it->source, sizeof it->source, "%s", source);
    it->start_us = start_us;
    it->end_us = end_us;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
}

void call_worker_stats(call_worker_t *w, call_worker_stats_t *out)
{
    out->vad_stored = atomic_load(&w->vad_stored);
    out->vad_dropped = atomic_load(&w->vad_dropped);
    out->checked = atomic_load(&w->checked);
    out->deferred = atomic_load(&w->deferred);
}

/* The reference at path, loaded once and again when the file changes. */
static const call_announce_ref_t *ref_get(call_worker_t *w, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        st.st_mtim.tv_sec = 0;
        st.st_mtim.tv_nsec = 0;
        st.st_size = -1;
    }
    ref_slot_t *slot = NULL;
    for (size_t i = 0; i < w->n_refs && !slot; i++)
        if (strcmp(w->refs[i].path, path) == 0)
            slot = &w->refs[i];
    if (slot && slot->mtime.tv_sec == st.st_mtim.tv_sec &&
        slot->mtime.tv_nsec == st.st_mtim.tv_nsec && slot->size == st.st_size)
        return slot->ref;
    if (!slot) {
        if (w->n_refs == REFS_MAX) {
            vg_err("announcement: more than %d reference files; '%s' is not used", REFS_MAX, path);
            return NULL;
        }
        slot = &w->refs[w->n_refs++];
        memset(slot, 0, sizeof *slot);
        slot->path = vg_strdup(path);
    }
    call_announce_ref_free(slot->ref);
    slot->ref = NULL;
    slot->mtime = st.st_mtim;
    slot->size = st.st_size;
    char err[512];
    if (call_announce_ref_load(path, &slot->ref, err, sizeof err) != VG_OK)
        vg_err("announcement reference unusable, calls are not checked against it: %s", err);
    else
        vg_notice("announcement reference %s loaded (%.1f s)", path,
                  call_announce_ref_seconds(slot->ref));
    return slot->ref;
}

int call_announce_check_stored(idx_t *idx, const char *data_dir, const char *source,
                               int64_t start_us, int64_t end_us, const call_announce_ref_t *ref,
                               double window_s, int64_t now_us, int64_t wait_us, int *ready,
                               call_announce_result_t *res)
{
    idx_segment_t *segs = NULL;
    size_t n = 0;
    pb_wav_t *wav = NULL;
    int16_t *pcm = NULL;
    float *fl = NULL, *rs = NULL;
    int16_t *pcm8 = NULL;
    char err[256];
    int rc;

    memset(res, 0, sizeof *res);
    res->state = CALL_ANN_UNKNOWN;
    *ready = 1;
    /* A call's start is only as exact as whoever reported it (a voice
     * detector opens a call a few frames into a soft onset, a PBX clock may
     * be off): the search starts PREROLL_US before it. */
    int64_t want_us = (int64_t)call_announce_samples_wanted(ref, window_s) * 1000000 / CALL_DSP_RATE;
    if (end_us <= start_us)
        return VG_OK;
    int64_t from = start_us - PREROLL_US;
    int64_t to = end_us < start_us + want_us ? end_us : start_us + want_us;
    rc = idx_segments_in_range(idx, source, from, to, &segs, &n);
    if (rc == VG_ENOTFOUND) {
        rc = VG_OK; /* a source no longer known: its audio is missing */
        goto cleanup;
    }
    if (rc != VG_OK)
        goto cleanup;
    /* Is all of [from, to) that will ever be indexed indexed? Yes when the
     * rows reach `to`, or a later segment of the source exists (what is
     * missing is a hole), or waiting any longer is pointless. */
    int64_t newest = 0;
    idx_source_newest_start(idx, source, &newest);
    if (!((n > 0 && segs[n - 1].end_us >= to - 200000) || newest >= to || now_us - end_us > wait_us)) {
        *ready = 0;
        goto cleanup;
    }
    if (n == 0)
        goto cleanup; /* audio missing: unknown */
    rc = pb_wav_open(data_dir, segs, n, from, to, &wav, err, sizeof err);
    if (rc == VG_ENOTFOUND) {
        rc = VG_OK; /* no audio track */
        goto cleanup;
    }
    if (rc != VG_OK) {
        vg_warn("source=%s announcement check: %s", source, err);
        rc = VG_OK; /* unreadable audio: unknown, the media stays as it is */
        goto cleanup;
    }
    int rate = pb_wav_rate(wav);
    int64_t count = pb_wav_samples(from, to, rate);
    if (rate <= 0 || count <= 0)
        goto cleanup;
    pcm = vg_malloc((size_t)count * sizeof(int16_t));
    if (pb_wav_samples_at(wav, 0, pcm, (size_t)count) != VG_OK) {
        vg_warn("source=%s announcement check: a segment could not be decoded", source);
        goto cleanup;
    }
    /* Audio cut short by a read error reads as silence: checked, it would
     * say the announcement was missing. Unknown is the truth. */
    if (pb_wav_read_failed(wav)) {
        vg_warn("source=%s announcement check: a segment could not be read whole: unknown",
                source);
        goto cleanup;
    }
    size_t n8 = (size_t)count;
    const int16_t *x = pcm;
    if (rate != CALL_DSP_RATE) {
        fl = vg_malloc((size_t)count * sizeof(float));
        for (int64_t i = 0; i < count; i++)
            fl[i] = pcm[i];
        call_dsp_resample(fl, (size_t)count, rate, CALL_DSP_RATE, &rs, &n8);
        pcm8 = vg_malloc((n8 ? n8 : 1) * sizeof(int16_t));
        for (size_t i = 0; i < n8; i++)
            pcm8[i] = (int16_t)(rs[i] > 32767.0f ? 32767 : rs[i] < -32768.0f ? -32768 : rs[i]);
        x = pcm8;
    }
    /* a call shorter than the announcement is unknown, whatever the pre-roll holds */
    if ((double)(end_us - start_us) < call_announce_ref_seconds(ref) * 0.97 * 1e6)
        goto cleanup;
    rc = call_announce_check(ref, x, n8, window_s + PREROLL_US / 1e6, res);
    res->offset_s = res->offset_s > PREROLL_US / 1e6 ? res->offset_s - PREROLL_US / 1e6 : 0.0;
cleanup:
    if (wav)
        pb_wav_close(wav);
    free(segs);
    free(pcm);
    free(fl);
    free(rs);
    free(pcm8);
    return rc;
}

typedef struct {
    idx_call_t *calls;
    size_t n;
} call_list_t;

static void collect(void *ctx, const idx_call_t *c)
{
    call_list_t *l = ctx;
    l->calls = vg_realloc(l->calls, (l->n + 1) * sizeof(idx_call_t));
    l->calls[l->n++] = *c;
}

static int stopping(call_worker_t *w)
{
    pthread_mutex_lock(&w->lock);
    int s = w->stop;
    pthread_mutex_unlock(&w->lock);
    return s;
}

static void check_pending(call_worker_t *w, const vg_config_t *cfg)
{
    call_list_t l = {0};
    /* No reference anywhere: the check is off and calls stay unchecked (a
     * reference installed later checks them then). */
    int any = cfg->calls.announcement != NULL || cfg->n_queues > 0;
    for (size_t i = 0; i < cfg->n_sources && !any; i++)
        any = cfg->sources[i].announcement != NULL;
    if (!any)
        return;
    if (idx_call_list_ended_unchecked(w->idx, UNCHECKED_BATCH, collect, &l) != VG_OK) {
        vg_err("announcement: cannot list unchecked calls; will retry");
        return;
    }
    for (size_t i = 0; i < l.n && !stopping(w); i++) {
        const idx_call_t *c = &l.calls[i];
        /* the most specific reference: the call's queue, its line, [calls] */
        const vg_source_config_t *src = vg_config_find_source(cfg, c->source);
        const vg_queue_config_t *q = c->queue[0] ? vg_config_find_queue(cfg, c->queue) : NULL;
        const char *path = q ? q->announcement
                           : src && src->announcement ? src->announcement
                                                      : cfg->calls.announcement;
        const call_announce_ref_t *ref = path ? ref_get(w, path) : NULL;
        int64_t now = vg_clock_wall(&vg_system_clock);
        call_announce_result_t res = {.state = CALL_ANN_UNKNOWN};
        int ready = 1;
        if (ref) {
            int64_t wait = (2 * (int64_t)cfg->segment_seconds + 30) * 1000000;
            if (call_announce_check_stored(w->idx, cfg->data_dir, c->source, c->start_us, c->end_us,
                                           ref, cfg->calls.announcement_window, now, wait, &ready,
                                           &res) != VG_OK) {
                vg_err("source=%s call %lld: announcement check failed; will retry", c->source,
                       (long long)c->id);
                continue;
            }
            if (!ready) {
                atomic_fetch_add(&w->deferred, 1);
                continue;
            }
        }
        int has_offset = res.state == CALL_ANN_PRESENT || res.state == CALL_ANN_PARTIAL;
        double score = ref && res.state != CALL_ANN_UNKNOWN ? (res.score < 0 ? 0 : res.score) : -1;
        int rc = idx_call_set_announcement(w->idx, c->id, call_announce_state_name(res.state),
                                           has_offset ? (int64_t)(res.offset_s * 1e6) : -1, score, now);
        if (rc != VG_OK && rc != VG_ENOTFOUND) {
            vg_err("call %lld: announcement result not stored (%s); will retry", (long long)c->id,
                   vg_strerror(rc));
            continue;
        }
        atomic_fetch_add(&w->checked, 1);
        vg_info("source=%s call %lld announcement %s score %.2f offset %.1f s%s", c->source,
                (long long)c->id, call_announce_state_name(res.state), res.score, res.offset_s,
                ref ? "" : " (no reference announcement for this line)");
    }
    free(l.calls);
}

static void store_vad(call_worker_t *w, const vad_item_t *it)
{
    idx_call_t c;
    idx_call_init(&c);
    snprintf(c.source, sizeof c.source, "%s", it->source);
    c.start_us = it->start_us;
    c.end_us = it->end_us;
    snprintf(c.origin, sizeof c.origin, "vad");
    c.created_us = c.updated_us = vg_clock_wall(&vg_system_clock);
    int64_t id = 0;
    int created = 0;
    int rc = idx_call_upsert(w->idx, &c, &id, &created);
    if (rc == VG_OK) {
        atomic_fetch_add(&w->vad_stored, 1);
        vg_info("source=%s vad call %lld: %.1f s", it->source, (long long)id,
                (it->end_us - it->start_us) / 1e6);
        return;
    }
    if (rc == VG_EBUSY || rc == VG_EDB) {
        /* back in the queue (if there is room) for the next round */
        pthread_mutex_lock(&w->lock);
        int room = w->q_len < CALL_WORKER_QUEUE;
        if (room)
            w->queue[(w->q_head + w->q_len++) % CALL_WORKER_QUEUE] = *it;
        pthread_mutex_unlock(&w->lock);
        if (room)
            return;
    }
    atomic_fetch_add(&w->vad_dropped, 1);
    vg_err("source=%s vad call not stored: %s", it->source, vg_strerror(rc));
}

static void *worker_main(void *arg)
{
    call_worker_t *w = arg;
    pthread_setname_np(pthread_self(), "calls");
    pthread_mutex_lock(&w->lock);
    while (!w->stop) {
        vad_item_t batch[CALL_WORKER_QUEUE];
        size_t nb = w->q_len;
        for (size_t i = 0; i < nb; i++)
            batch[i] = w->queue[(w->q_head + i) % CALL_WORKER_QUEUE];
        w->q_head = (w->q_head + nb) % CALL_WORKER_QUEUE;
        w->q_len = 0;
        pthread_mutex_unlock(&w->lock);

        for (size_t i = 0; i < nb; i++)
            store_vad(w, &batch[i]);
        check_pending(w, w->cfg(w->cfg_ctx));

        pthread_mutex_lock(&w->lock);
        if (w->stop || w->q_len)
            continue;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += CALL_WORKER_POLL_MS / 1000;
        until.tv_nsec += (CALL_WORKER_POLL_MS % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->wake, &w->lock, &until);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

int call_worker_start(const char *db_path, call_worker_cfg_fn cfg, void *ctx, call_worker_t **out)
{
    call_worker_t *w = vg_calloc(1, sizeof *w);
    w->cfg = cfg;
    w->cfg_ctx = ctx;
    *out = NULL;
    int rc = idx_open(db_path, 0, &w->idx);
    if (rc != VG_OK) {
        free(w);
        return rc;
    }
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->wake, NULL);
    /* signals stay with the main thread (DESIGN.md convention 6) */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&w->thread, NULL, worker_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        idx_close(w->idx);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->wake);
        free(w);
        vg_err("calls worker: cannot start its thread: %s", strerror(err));
        return VG_EIO;
    }
    *out = w;
    return VG_OK;
}

void call_worker_stop(call_worker_t *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    /* VAD calls still queued are stored before the connection closes */
    for (size_t i = 0; i < w->q_len; i++)
        store_vad(w, &w->queue[(w->q_head + i) % CALL_WORKER_QUEUE]);
    idx_close(w->idx);
    for (size_t i = 0; i < w->n_refs; i++) {
        free(w->refs[i].path);
        call_announce_ref_free(w->refs[i].ref);
    }
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    free(w);
}
