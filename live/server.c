/* The live service: its sessions (WebRTC and MSE viewers), the limits on
 * them ([live] max_viewers, max_viewers_per_user), and a housekeeping
 * thread that ends sessions whose access was revoked (within about a
 * second of the accounts changing, well inside the 10 s README promises),
 * whose peer failed or went quiet, or that were asked to end; that stops
 * retired packetizers; and that muxes MSE viewers' fragments. Ending a
 * session always happens here or in a request thread, never on a GStreamer
 * streaming thread, which cannot stop its own pipeline. */
#include "live/live_private.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/errors.h"
#include "core/util.h"

#define TICK_MS 200
#define CHECK_EVERY_US (1000 * 1000LL)
/* A peer that has not connected this long after its answer, or lost its
 * connection this long ago, is gone. */
#define CONNECT_TIMEOUT_US (20 * 1000000LL)
#define DISCONNECT_TIMEOUT_US (10 * 1000000LL)

live_session_t *live_session_ref(live_session_t *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void live_session_unref(live_session_t *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    if (s->hooks.release)
        s->hooks.release(s->hooks.ctx);
    live_whep_teardown(s);
    live_mse_free(s->mse);
    live_feed_unref(s->feed);
    g_mutex_clear(&s->gather_lock);
    g_cond_clear(&s->gather_cond);
    free(s);
}

static void random_id(char out[LIVE_ID_MAX])
{
    unsigned char raw[16];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, raw, sizeof(raw)) != (ssize_t)sizeof(raw))
        abort(); /* no randomness: nothing safe to do */
    close(fd);
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

live_session_t *live_session_new(live_t *l, int transport, const char *source,
                                 const char *owner, const char *user, const live_hooks_t *h)
{
    live_session_t *s = vg_calloc(1, sizeof(*s));
    atomic_init(&s->refs, 1);
    s->live = l;
    s->transport = transport;
    random_id(s->id);
    snprintf(s->source, sizeof(s->source), "%s", source);
    snprintf(s->owner, sizeof(s->owner), "%s", owner ? owner : "");
    snprintf(s->user, sizeof(s->user), "%s", user ? user : "");
    s->started_wall = vg_clock_wall(&vg_system_clock);
    s->started_mono = vg_clock_mono(&vg_system_clock);
    if (h)
        s->hooks = *h;
    for (int i = 0; i < LIVE_MAX_STREAMS; i++)
        s->pt[i] = s->src_pt[i] = -1;
    g_mutex_init(&s->gather_lock);
    g_cond_init(&s->gather_cond);
    return s;
}

void live_session_request_end(live_session_t *s, const char *reason)
{
    int expected = 0;
    if (atomic_compare_exchange_strong(&s->ending, &expected, 1)) {
        s->end_reason = reason;
        pthread_cond_signal(&s->live->wake);
    }
}

/* The owner's entry among the pending reservations (NULL: none). lock held. */
static struct live_pending *pending_of(live_t *l, const char *owner)
{
    for (size_t i = 0; i < l->n_pending_by; i++) {
        if (strcmp(l->pending_by[i].owner, owner) == 0)
            return &l->pending_by[i];
    }
    return NULL;
}

/* One reservation of owner fewer. lock held. */
static void pending_drop(live_t *l, const char *owner)
{
    l->pending--;
    struct live_pending *p = pending_of(l, owner);
    if (p && --p->n <= 0)
        *p = l->pending_by[--l->n_pending_by];
}

/* Listed sessions and offers in flight of owner. lock held. */
static int count_owner(live_t *l, const char *owner)
{
    const struct live_pending *p = pending_of(l, owner);
    int n = p ? p->n : 0;
    for (size_t i = 0; i < l->n_sessions; i++)
        n += strcmp(l->sessions[i]->owner, owner) == 0;
    return n;
}

int live_reserve(live_t *l, const char *owner, char *msg, size_t size)
{
    int status = 0;
    pthread_mutex_lock(&l->lock);
    const vg_live_config_t *c = &l->cfg->live;
    if (l->closing) {
        snprintf(msg, size, "vigild is stopping");
        status = 503;
    } else if ((int)l->n_sessions + l->pending >= c->max_viewers) {
        snprintf(msg, size, "%d live viewers already (max_viewers)", c->max_viewers);
        status = 503;
    } else if (count_owner(l, owner) >= c->max_viewers_per_user) {
        snprintf(msg, size, "this account has %d live views open already "
                            "(max_viewers_per_user)", c->max_viewers_per_user);
        status = 503;
    } else {
        l->pending++;
        struct live_pending *p = pending_of(l, owner);
        if (!p) {
            /* at most max_viewers entries: each holds a reservation */
            l->pending_by = vg_realloc(l->pending_by,
                                       (l->n_pending_by + 1) * sizeof(*l->pending_by));
            p = &l->pending_by[l->n_pending_by++];
            snprintf(p->owner, sizeof(p->owner), "%s", owner);
            p->n = 0;
        }
        p->n++;
    }
    pthread_mutex_unlock(&l->lock);
    return status;
}

void live_unreserve(live_t *l, const char *owner)
{
    pthread_mutex_lock(&l->lock);
    pending_drop(l, owner);
    pthread_mutex_unlock(&l->lock);
}

void live_session_add(live_t *l, live_session_t *s)
{
    pthread_mutex_lock(&l->lock);
    pending_drop(l, s->owner);
    if (l->n_sessions == l->cap_sessions) {
        l->cap_sessions = l->cap_sessions ? l->cap_sessions * 2 : 16;
        l->sessions = vg_realloc(l->sessions, l->cap_sessions * sizeof(*l->sessions));
    }
    l->sessions[l->n_sessions++] = live_session_ref(s);
    pthread_mutex_unlock(&l->lock);
}

live_feed_t *live_find_feed(live_t *l, const char *source)
{
    live_feed_t *f = NULL;
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < l->n_feeds && !f; i++) {
        if (strcmp(l->feeds[i]->name, source) == 0) {
            f = l->feeds[i];
            live_feed_ref(f);
        }
    }
    pthread_mutex_unlock(&l->lock);
    return f;
}

/* Ends s: out of the list and its feed, pipeline stopped, the end recorded.
 * Not on a GStreamer streaming thread. */
static void end_session(live_session_t *s, const char *reason)
{
    live_t *l = s->live;
    int mine = 0;
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < l->n_sessions; i++) {
        if (l->sessions[i] == s) {
            l->sessions[i] = l->sessions[--l->n_sessions];
            mine = !s->ended;
            s->ended = 1;
            break;
        }
    }
    pthread_mutex_unlock(&l->lock);
    if (!mine)
        return;
    if (s->feed)
        live_feed_remove_viewer(s->feed, s);
    live_whep_teardown(s);
    live_mse_finish(s);
    int64_t now = vg_clock_wall(&vg_system_clock);
    vg_info("source=%s live: %s session %s of %s ended (%s) after %.1f s", s->source,
            s->transport == LIVE_T_WEBRTC ? "WebRTC" : "MSE", s->id, s->owner, reason,
            (double)(now - s->started_wall) / 1e6);
    if (s->hooks.ended)
        s->hooks.ended(s->hooks.ctx, s->id, reason, s->started_wall, now);
    live_session_unref(s); /* the list's */
}

int live_session_end(live_t *l, const char *id, const char *owner)
{
    live_session_t *s = NULL;
    if (!l)
        return VG_ENOTFOUND;
    pthread_mutex_lock(&l->lock);
    for (size_t i = 0; i < l->n_sessions && !s; i++) {
        live_session_t *c = l->sessions[i];
        if (strcmp(c->id, id) == 0 && (!owner || strcmp(c->owner, owner) == 0))
            s = live_session_ref(c);
    }
    pthread_mutex_unlock(&l->lock);
    if (!s)
        return VG_ENOTFOUND;
    end_session(s, "closed");
    live_session_unref(s);
    return VG_OK;
}

/* Why s should end now, or NULL. Housekeeping thread. */
static const char *due(live_session_t *s, int64_t now)
{
    if (atomic_load(&s->ending))
        return s->end_reason ? s->end_reason : "closed";
    if (now >= s->next_check) {
        s->next_check = now + CHECK_EVERY_US;
        if (s->hooks.allowed && !s->hooks.allowed(s->hooks.ctx))
            return "revoked";
    }
    if (s->transport != LIVE_T_WEBRTC)
        return NULL;
    int st = atomic_load(&s->state);
    if (st == LIVE_S_FAILED)
        return "error";
    if (st == LIVE_S_CONNECTING && now - s->started_mono > CONNECT_TIMEOUT_US)
        return "timeout";
    if (st == LIVE_S_DISCONNECTED) {
        if (!s->disconnected_since)
            s->disconnected_since = now;
        if (now - s->disconnected_since > DISCONNECT_TIMEOUT_US)
            return "timeout";
    } else {
        s->disconnected_since = 0;
    }
    return NULL;
}

static void housekeeping(live_t *l)
{
    pthread_mutex_lock(&l->lock);
    size_t n = l->n_sessions;
    live_session_t **list = vg_calloc(n ? n : 1, sizeof(*list));
    for (size_t i = 0; i < n; i++)
        list[i] = live_session_ref(l->sessions[i]);
    size_t nf = l->n_feeds;
    live_feed_t **feeds = vg_calloc(nf ? nf : 1, sizeof(*feeds));
    for (size_t i = 0; i < nf; i++) {
        feeds[i] = l->feeds[i];
        live_feed_ref(feeds[i]);
    }
    pthread_mutex_unlock(&l->lock);
    int64_t now = vg_clock_mono(&vg_system_clock);
    for (size_t i = 0; i < n; i++) {
        const char *why = due(list[i], now);
        if (why)
            end_session(list[i], why);
        live_session_unref(list[i]);
    }
    for (size_t i = 0; i < nf; i++) {
        live_feed_reap(feeds[i]);
        live_feed_unref(feeds[i]);
    }
    free(list);
    free(feeds);
}

/* The first viewer would otherwise pay for loading webrtcbin's plugins
 * (nice, dtls, srtp) and for the DTLS certificate, which GStreamer makes
 * once per process when a DTLS element first needs one: done here, at
 * start, off every request's path. */
static void warm_up(void)
{
    const char *names[] = {"webrtcbin", "dtlssrtpdec", "dtlssrtpenc", "rtph264pay"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        GstElement *e = gst_element_factory_make(names[i], NULL);
        if (!e)
            continue;
        gst_element_set_state(e, GST_STATE_READY);
        gst_element_set_state(e, GST_STATE_NULL);
        gst_object_unref(e);
    }
}

static void *thread_main(void *arg)
{
    live_t *l = arg;
    pthread_setname_np(pthread_self(), "live");
    warm_up();
    pthread_mutex_lock(&l->lock);
    while (!l->stop) {
        pthread_mutex_unlock(&l->lock);
        housekeeping(l);
        live_mse_pump(l);
        pthread_mutex_lock(&l->lock);
        if (l->stop)
            break;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&l->wake, &l->lock, &until);
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

int live_start(const vg_config_t *cfg, live_t **out)
{
    *out = NULL;
    if (!cfg->live.enabled) {
        vg_notice("live: [live] enabled = no: no browser live view");
        return VG_OK;
    }
    if (!gst_is_initialized())
        gst_init(NULL, NULL);
    GstElementFactory *w = gst_element_factory_find("webrtcbin");
    if (!w)
        vg_warn("live: GStreamer's webrtcbin is missing (gstreamer1.0-plugins-bad, "
                "gstreamer1.0-nice): WHEP answers 503, live.mp4 still works");
    else
        gst_object_unref(w);
    live_t *l = vg_calloc(1, sizeof(*l));
    l->cfg = cfg;
    pthread_mutex_init(&l->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&l->wake, &ca);
    pthread_condattr_destroy(&ca);
    /* signals stay with the main thread (DESIGN.md convention 6) */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&l->thread, NULL, thread_main, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        vg_err("live: cannot start its thread: %s", strerror(err));
        pthread_mutex_destroy(&l->lock);
        pthread_cond_destroy(&l->wake);
        free(l);
        return VG_EIO;
    }
    l->thread_started = 1;
    *out = l;
    return VG_OK;
}

void live_shutdown(live_t *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->lock);
    l->closing = 1;
    pthread_mutex_unlock(&l->lock);
    for (;;) {
        pthread_mutex_lock(&l->lock);
        live_session_t *s = l->n_sessions ? live_session_ref(l->sessions[0]) : NULL;
        pthread_mutex_unlock(&l->lock);
        if (!s)
            break;
        end_session(s, "closed");
        live_session_unref(s);
    }
}

void live_stop(live_t *l)
{
    if (!l)
        return;
    live_shutdown(l);
    pthread_mutex_lock(&l->lock);
    l->stop = 1;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->lock);
    if (l->thread_started)
        pthread_join(l->thread, NULL);
    for (size_t i = 0; i < l->n_feeds; i++)
        live_feed_unref(l->feeds[i]);
    free(l->feeds);
    free(l->sessions);
    free(l->pending_by);
    free(l->pem);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->wake);
    free(l);
}

static const char *state_name(const live_session_t *s)
{
    if (atomic_load(&s->ending))
        return "ending";
    switch (atomic_load(&s->state)) {
    case LIVE_S_CONNECTED: return "connected";
    case LIVE_S_DISCONNECTED: return "disconnected";
    case LIVE_S_FAILED: return "failed";
    default: return "connecting";
    }
}

void live_status(live_t *l, const char *owner, live_status_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!l)
        return;
    pthread_mutex_lock(&l->lock);
    out->viewers = (int)l->n_sessions;
    out->max_viewers = l->cfg->live.max_viewers;
    out->max_viewers_per_user = l->cfg->live.max_viewers_per_user;
    out->sessions = vg_calloc(l->n_sessions ? l->n_sessions : 1, sizeof(*out->sessions));
    for (size_t i = 0; i < l->n_sessions; i++) {
        const live_session_t *s = l->sessions[i];
        if (owner && strcmp(owner, s->owner) != 0)
            continue;
        live_session_info_t *o = &out->sessions[out->n_sessions++];
        snprintf(o->id, sizeof(o->id), "%s", s->id);
        snprintf(o->source, sizeof(o->source), "%s", s->source);
        snprintf(o->owner, sizeof(o->owner), "%s", s->owner);
        snprintf(o->user, sizeof(o->user), "%s", s->user);
        snprintf(o->transport, sizeof(o->transport), "%s",
                 s->transport == LIVE_T_WEBRTC ? "webrtc" : "mse");
        snprintf(o->state, sizeof(o->state), "%s",
                 s->transport == LIVE_T_MSE && !atomic_load(&s->ending) ? "connected"
                                                                        : state_name(s));
        o->started_us = s->started_wall;
    }
    pthread_mutex_unlock(&l->lock);
}

void live_status_free(live_status_t *st)
{
    free(st->sessions);
    st->sessions = NULL;
    st->n_sessions = 0;
}

int live_source_info(live_t *l, const char *source, live_source_info_t *out)
{
    memset(out, 0, sizeof(*out));
    live_feed_t *f = l ? live_find_feed(l, source) : NULL;
    if (!f)
        return VG_ENOTFOUND;
    char codec[48];
    pthread_mutex_lock(&f->lock);
    live_feed_webrtc_reason(f, out->reason, sizeof(out->reason), codec, sizeof(codec));
    out->webrtc = out->reason[0] == '\0';
    out->viewers = (int)f->n_viewers;
    pthread_mutex_unlock(&f->lock);
    live_feed_unref(f);
    return VG_OK;
}

int live_feed_viewers(live_feed_t *f)
{
    if (!f)
        return 0;
    pthread_mutex_lock(&f->lock);
    int n = (int)f->n_viewers;
    pthread_mutex_unlock(&f->lock);
    return n;
}
