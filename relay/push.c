/* Push of one source to the central point with libavformat, copy only:
 * rtsp:// or rtsps:// as ANNOUNCE/RECORD over TCP, srt:// as MPEG-TS.
 *
 * Independent of recording by construction: the capture thread only
 * appends to a bounded queue (never waits), and a thread of its own
 * ("push:<source>") connects, writes and reconnects with capped backoff
 * (1 s doubling to 30 s, reset after a healthy minute). When the queue is
 * full (a slow or stuck central point) the newest, incomplete GOP is
 * dropped and the following packets up to the next keyframe with it: the
 * receiver always gets whole GOPs, memory stays bounded, and every such
 * drop is counted. While disconnected only the current GOP is kept, so a
 * new connection starts on a keyframe with fresh pictures. */
#include "relay/relay_private.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/errors.h"
#include "core/util.h"

#define QUEUE_MAX_BYTES (8u * 1024 * 1024)
#define QUEUE_MAX_ITEMS 4096
#define OPEN_TIMEOUT_US (10 * 1000000LL)
#define WRITE_TIMEOUT_US (5 * 1000000LL)
#define CLOSE_TIMEOUT_US (2 * 1000000LL)
#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000
#define HEALTHY_US (60 * 1000000LL)

typedef struct {
    AVPacket *pkt;
    unsigned stream;
    int64_t pts_ns, dts_ns;
    int key;
} item_t;

struct rly_push {
    char source[64];
    char *url;
    char url_log[256];
    int srt;
    pthread_t thread;
    int started;
    atomic_int stop;
    atomic_llong deadline_us; /* of the libav call in progress */

    pthread_mutex_t lock;     /* everything below */
    pthread_cond_t wake;
    item_t q[QUEUE_MAX_ITEMS];
    size_t head, n, bytes;
    int dropping;             /* skipping to the next keyframe */
    int connected;
    AVCodecParameters *par[RLY_MAX_STREAMS];
    unsigned n_par, par_gen;
    int has_video;
    char state[16];
    char last_error[160];
    int64_t bytes_sent, dropped_gops, connects;
};

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void set_state(rly_push_t *p, const char *state, const char *error)
{
    pthread_mutex_lock(&p->lock);
    snprintf(p->state, sizeof(p->state), "%s", state);
    if (error)
        snprintf(p->last_error, sizeof(p->last_error), "%s", error);
    pthread_mutex_unlock(&p->lock);
}

/* ---- the queue (lock held) ---- */

static item_t *q_at(rly_push_t *p, size_t i)
{
    return &p->q[(p->head + i) % QUEUE_MAX_ITEMS];
}

static void q_drop_tail(rly_push_t *p)
{
    item_t *it = q_at(p, p->n - 1);
    p->bytes -= (size_t)it->pkt->size;
    av_packet_free(&it->pkt);
    p->n--;
}

static void q_clear(rly_push_t *p)
{
    while (p->n)
        q_drop_tail(p);
    p->head = 0;
}

/* Drops the newest GOP, from its keyframe on; what is left ends a GOP. */
static void q_drop_newest_gop(rly_push_t *p)
{
    while (p->n) {
        int key = q_at(p, p->n - 1)->key;
        q_drop_tail(p);
        if (key)
            break;
    }
}

static int q_full(const rly_push_t *p, int size)
{
    return p->n == QUEUE_MAX_ITEMS || p->bytes + (size_t)size > QUEUE_MAX_BYTES;
}

static void q_pop(rly_push_t *p, item_t *out)
{
    *out = p->q[p->head];
    p->head = (p->head + 1) % QUEUE_MAX_ITEMS;
    p->n--;
    p->bytes -= (size_t)out->pkt->size;
}

void rly_push_packet(rly_push_t *p, const AVPacket *pkt, unsigned stream, int64_t pts_ns,
                     int64_t dts_ns, int video_key)
{
    pthread_mutex_lock(&p->lock);
    if (stream >= p->n_par) {
        pthread_mutex_unlock(&p->lock);
        return;
    }
    int key = video_key || !p->has_video; /* audio only: any packet can start */
    if (!p->connected && key)
        q_clear(p); /* down: only the newest GOP is worth sending later */
    if (p->dropping && !key) {
        pthread_mutex_unlock(&p->lock);
        return;
    }
    p->dropping = 0;
    if (q_full(p, pkt->size)) {
        q_drop_newest_gop(p);
        if (p->connected)
            p->dropped_gops++;
        if (!key || q_full(p, pkt->size)) {
            p->dropping = 1;
            pthread_mutex_unlock(&p->lock);
            return;
        }
    }
    item_t *it = q_at(p, p->n);
    it->pkt = av_packet_clone(pkt); /* a reference, not a copy */
    if (!it->pkt)
        abort();
    it->stream = stream;
    it->pts_ns = pts_ns;
    it->dts_ns = dts_ns;
    it->key = key;
    p->n++;
    p->bytes += (size_t)pkt->size;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

static int same_par(const AVCodecParameters *a, const AVCodecParameters *b)
{
    return a->codec_id == b->codec_id && a->width == b->width && a->height == b->height &&
           a->sample_rate == b->sample_rate &&
           a->ch_layout.nb_channels == b->ch_layout.nb_channels &&
           a->extradata_size == b->extradata_size &&
           (a->extradata_size == 0 ||
            memcmp(a->extradata, b->extradata, (size_t)a->extradata_size) == 0);
}

void rly_push_streams(rly_push_t *p, AVCodecParameters *const *par, unsigned n)
{
    pthread_mutex_lock(&p->lock);
    int same = n == p->n_par;
    for (unsigned i = 0; same && i < n; i++)
        same = same_par(par[i], p->par[i]);
    if (!same) {
        for (unsigned i = 0; i < p->n_par; i++)
            avcodec_parameters_free(&p->par[i]);
        for (unsigned i = 0; i < n; i++) {
            p->par[i] = avcodec_parameters_alloc();
            if (!p->par[i] || avcodec_parameters_copy(p->par[i], par[i]) < 0)
                abort();
        }
        p->n_par = n;
        p->has_video = 0;
        for (unsigned i = 0; i < n; i++)
            p->has_video |= par[i]->codec_type == AVMEDIA_TYPE_VIDEO;
        p->par_gen++; /* the connection restarts with the new parameters */
        q_clear(p);
    }
    p->dropping = 1; /* a new camera connection: resume on its first keyframe */
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

/* ---- the connection ---- */

static int interrupt_cb(void *opaque)
{
    rly_push_t *p = opaque;
    return atomic_load(&p->stop) || mono_us() > atomic_load(&p->deadline_us);
}

static void arm(rly_push_t *p, int64_t us)
{
    atomic_store(&p->deadline_us, mono_us() + us);
}

/* MPEG-TS has no mapping for G.711 (it would go out as private data no
 * receiver decodes); RTP carries everything the relay does. */
static int carries(const rly_push_t *p, enum AVCodecID id)
{
    if (!p->srt)
        return 1;
    return id == AV_CODEC_ID_H264 || id == AV_CODEC_ID_HEVC || id == AV_CODEC_ID_AAC ||
           id == AV_CODEC_ID_OPUS;
}

typedef struct {
    AVFormatContext *oc;
    int map[RLY_MAX_STREAMS]; /* relay stream -> output stream, -1: not sent */
    int header;
    int64_t origin_ns;
    unsigned gen;
} conn_t;

static int add_streams(rly_push_t *p, conn_t *c, AVCodecParameters *const *par, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        c->map[i] = -1;
        if (!carries(p, par[i]->codec_id))
            continue;
        AVStream *st = avformat_new_stream(c->oc, NULL);
        if (!st || avcodec_parameters_copy(st->codecpar, par[i]) < 0)
            abort();
        st->codecpar->codec_tag = 0;
        st->time_base = par[i]->codec_type == AVMEDIA_TYPE_VIDEO ? (AVRational){1, 90000}
                                                                  : (AVRational){1, par[i]->sample_rate};
        c->map[i] = st->index;
    }
    return c->oc->nb_streams ? VG_OK : VG_EMEDIA;
}

static int open_output(rly_push_t *p, conn_t *c, AVCodecParameters *const *par, unsigned n,
                       char *why, size_t why_size)
{
    AVDictionary *opts = NULL;
    int ret = avformat_alloc_output_context2(&c->oc, NULL, p->srt ? "mpegts" : "rtsp", p->url);
    if (ret < 0 || !c->oc) {
        snprintf(why, why_size, "cannot set up the %s output: %s", p->srt ? "SRT" : "RTSP",
                 av_err2str(ret));
        return VG_EMEDIA;
    }
    c->oc->interrupt_callback = (AVIOInterruptCB){interrupt_cb, p};
    if (add_streams(p, c, par, n) != VG_OK) {
        snprintf(why, why_size, "no stream of this source can be carried over %s",
                 p->srt ? "MPEG-TS/SRT" : "RTSP");
        return VG_EMEDIA;
    }
    arm(p, OPEN_TIMEOUT_US);
    if (p->srt)
        ret = avio_open2(&c->oc->pb, p->url, AVIO_FLAG_WRITE, &c->oc->interrupt_callback, NULL);
    else
        av_dict_set(&opts, "rtsp_transport", "tcp", 0);
    if (ret >= 0)
        ret = avformat_write_header(c->oc, &opts);
    av_dict_free(&opts);
    if (ret < 0) {
        snprintf(why, why_size, "connect failed: %s", av_err2str(ret));
        return VG_EMEDIA;
    }
    c->header = 1;
    return VG_OK;
}

static void close_output(rly_push_t *p, conn_t *c)
{
    if (!c->oc)
        return;
    arm(p, CLOSE_TIMEOUT_US);
    if (c->header)
        av_write_trailer(c->oc);
    if (p->srt && c->oc->pb)
        avio_closep(&c->oc->pb);
    avformat_free_context(c->oc);
    c->oc = NULL;
}

static int write_item(rly_push_t *p, conn_t *c, item_t *it, char *why, size_t why_size)
{
    int k = it->stream < RLY_MAX_STREAMS ? c->map[it->stream] : -1;
    if (c->origin_ns == INT64_MIN)
        c->origin_ns = it->dts_ns;
    if (k < 0 || it->dts_ns < c->origin_ns)
        return VG_OK; /* not carried, or from before the first keyframe */
    AVRational tb = c->oc->streams[k]->time_base;
    AVPacket *pkt = it->pkt;
    pkt->stream_index = k;
    pkt->dts = av_rescale_q(it->dts_ns - c->origin_ns, (AVRational){1, 1000000000}, tb);
    pkt->pts = av_rescale_q(it->pts_ns - c->origin_ns, (AVRational){1, 1000000000}, tb);
    pkt->duration = 0;
    pkt->pos = -1;
    int size = pkt->size;
    arm(p, WRITE_TIMEOUT_US);
    int ret = av_write_frame(c->oc, pkt);
    if (ret < 0) {
        snprintf(why, why_size, "send failed: %s", ret == AVERROR_EXIT ? "central point too slow "
                 "or gone (write timeout)" : av_err2str(ret));
        return VG_EIO;
    }
    pthread_mutex_lock(&p->lock);
    p->bytes_sent += size;
    pthread_mutex_unlock(&p->lock);
    return VG_OK;
}

/* Waits for streams and a queue that starts on a keyframe; copies the
 * parameters to connect with. Returns 0 when asked to stop. */
static unsigned wait_for_start(rly_push_t *p, AVCodecParameters **par, unsigned *gen)
{
    unsigned n = 0;
    pthread_mutex_lock(&p->lock);
    while (!atomic_load(&p->stop)) {
        while (p->n && !q_at(p, 0)->key) {
            item_t it;
            q_pop(p, &it);
            av_packet_free(&it.pkt);
        }
        if (p->n_par && p->n)
            break;
        pthread_cond_wait(&p->wake, &p->lock);
    }
    if (!atomic_load(&p->stop)) {
        for (n = 0; n < p->n_par; n++) {
            par[n] = avcodec_parameters_alloc();
            if (!par[n] || avcodec_parameters_copy(par[n], p->par[n]) < 0)
                abort();
        }
        *gen = p->par_gen;
    }
    pthread_mutex_unlock(&p->lock);
    return n;
}

/* Takes the next item; 0 when stopping or when the streams changed. */
static int next_item(rly_push_t *p, conn_t *c, item_t *it)
{
    int got = 0;
    pthread_mutex_lock(&p->lock);
    while (!atomic_load(&p->stop) && p->par_gen == c->gen && p->n == 0)
        pthread_cond_wait(&p->wake, &p->lock);
    if (!atomic_load(&p->stop) && p->par_gen == c->gen) {
        q_pop(p, it);
        got = 1;
    }
    pthread_mutex_unlock(&p->lock);
    return got;
}

static void set_connected(rly_push_t *p, int connected)
{
    pthread_mutex_lock(&p->lock);
    p->connected = connected;
    if (connected) {
        p->connects++;
        snprintf(p->state, sizeof(p->state), "connected");
        p->last_error[0] = '\0';
    }
    pthread_mutex_unlock(&p->lock);
}

/* One connection, from connect to error, stop or new parameters. Returns
 * VG_OK when it ended for new parameters (reconnect at once). */
static int run_connection(rly_push_t *p)
{
    AVCodecParameters *par[RLY_MAX_STREAMS] = {0};
    conn_t c = {.origin_ns = INT64_MIN};
    char why[160] = "";
    int rc = VG_ESTOPPED;
    unsigned n = wait_for_start(p, par, &c.gen);
    if (n == 0)
        return VG_ESTOPPED;
    set_state(p, "connecting", NULL);
    rc = open_output(p, &c, par, n, why, sizeof(why));
    if (rc == VG_OK) {
        vg_notice("source=%s push: connected to %s", p->source, p->url_log);
        set_connected(p, 1);
        item_t it;
        while (rc == VG_OK && next_item(p, &c, &it)) {
            rc = write_item(p, &c, &it, why, sizeof(why));
            av_packet_free(&it.pkt);
        }
        set_connected(p, 0);
    }
    close_output(p, &c);
    for (unsigned i = 0; i < n; i++)
        avcodec_parameters_free(&par[i]);
    if (atomic_load(&p->stop))
        return VG_ESTOPPED;
    if (rc != VG_OK) {
        vg_warn("source=%s push to %s: %s", p->source, p->url_log, why);
        set_state(p, "waiting", why);
    }
    return rc;
}

static void backoff_sleep(rly_push_t *p, int ms)
{
    struct timespec until;
    vg_deadline_us(CLOCK_REALTIME, (int64_t)ms * 1000, &until);
    pthread_mutex_lock(&p->lock);
    while (!atomic_load(&p->stop) && pthread_cond_timedwait(&p->wake, &p->lock, &until) == 0) {
    }
    pthread_mutex_unlock(&p->lock);
}

static void *push_thread(void *arg)
{
    rly_push_t *p = arg;
    char name[16];
    snprintf(name, sizeof(name), "push:%.10s", p->source);
    pthread_setname_np(pthread_self(), name);
    int backoff = BACKOFF_MIN_MS;
    while (!atomic_load(&p->stop)) {
        int64_t t0 = mono_us();
        int rc = run_connection(p);
        if (rc == VG_ESTOPPED)
            break;
        if (rc == VG_OK || mono_us() - t0 >= HEALTHY_US)
            backoff = BACKOFF_MIN_MS;
        if (rc == VG_OK)
            continue;
        backoff_sleep(p, backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    return NULL;
}

int rly_push_start(const char *source, const char *url, rly_push_t **out)
{
    rly_push_t *p = vg_calloc(1, sizeof(*p));
    snprintf(p->source, sizeof(p->source), "%s", source);
    p->url = vg_strdup(url);
    p->srt = strncmp(url, "srt://", 6) == 0;
    rly_url_for_log(url, p->url_log, sizeof(p->url_log));
    snprintf(p->state, sizeof(p->state), "connecting");
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&p->thread, NULL, push_thread, p);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        vg_err("source=%s push: cannot start a thread: %s", source, strerror(e));
        rly_push_stop(p);
        return VG_EIO;
    }
    p->started = 1;
    vg_info("source=%s push to %s", source, p->url_log);
    *out = p;
    return VG_OK;
}

void rly_push_status(rly_push_t *p, rly_status_t *out)
{
    pthread_mutex_lock(&p->lock);
    out->push_configured = 1;
    snprintf(out->push_state, sizeof(out->push_state), "%s", p->state);
    snprintf(out->push_last_error, sizeof(out->push_last_error), "%s", p->last_error);
    out->push_bytes = p->bytes_sent;
    out->push_dropped_gops = p->dropped_gops;
    out->push_connects = p->connects;
    pthread_mutex_unlock(&p->lock);
}

void rly_push_stop(rly_push_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    if (p->started)
        pthread_join(p->thread, NULL);
    q_clear(p);
    for (unsigned i = 0; i < p->n_par; i++)
        avcodec_parameters_free(&p->par[i]);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->wake);
    free(p->url);
    free(p);
}
