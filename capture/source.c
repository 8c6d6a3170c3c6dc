/* The source thread: connect, read, hand packets to the sink, reconnect. */
#include "capture.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

const cap_timing_t cap_default_timing = {
    .open_timeout_ms = 10000,
    .read_timeout_ms = 10000,
    .backoff_min_ms = 1000,
    .backoff_max_ms = 30000,
    .healthy_ms = 60000,
};

struct cap_source {
    char *name;
    char *url;
    char redacted_url[512];
    vg_source_kind_t kind;
    vg_transport_t transport;
    cap_timing_t timing;
    const vg_clock_t *clock;
    cap_sink_t sink;

    pthread_t thread;
    int thread_started;
    atomic_int stop;
    /* Deadline for the blocking libav call in progress (monotonic µs). */
    atomic_llong deadline_us;
    atomic_llong heartbeat_us;
    int64_t rate_window_start_us; /* bitrate window, thread-private */
    int64_t rate_window_bytes;

    pthread_mutex_t lock; /* guards status, and pairs with wake for sleeps */
    pthread_cond_t wake;
    cap_status_t status;
};

const char *cap_state_name(cap_state_t state)
{
    switch (state) {
    case CAP_CONNECTING: return "connecting";
    case CAP_RECORDING: return "recording";
    case CAP_ERROR: return "error";
    case CAP_STOPPED: return "stopped";
    }
    return "unknown";
}

static void set_state(cap_source_t *src, cap_state_t state, const char *error)
{
    pthread_mutex_lock(&src->lock);
    src->status.state = state;
    if (error)
        snprintf(src->status.last_error, sizeof(src->status.last_error), "%s", error);
    pthread_mutex_unlock(&src->lock);
}

/* libav calls this while blocked; non-zero aborts the call. */
/* libav polls this several times per packet. Under virtual machines a
 * precise clock read may be a system call, so the system clock is read
 * coarsely here (a few ms resolution is plenty for deadlines). */
static int64_t cheap_mono(const cap_source_t *src)
{
    if (src->clock != &vg_system_clock)
        return vg_clock_mono(src->clock);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int interrupt_cb(void *opaque)
{
    cap_source_t *src = opaque;
    if (atomic_load(&src->stop))
        return 1;
    int64_t now = cheap_mono(src);
    atomic_store(&src->heartbeat_us, now); /* blocked on the network is alive */
    return now > atomic_load(&src->deadline_us);
}

int64_t cap_source_heartbeat(cap_source_t *src)
{
    return atomic_load(&src->heartbeat_us);
}

static int64_t cheap_mono(const cap_source_t *src);

static void arm_deadline(cap_source_t *src, int ms)
{
    atomic_store(&src->deadline_us, cheap_mono(src) + (int64_t)ms * 1000);
}

static AVDictionary *open_options(const cap_source_t *src)
{
    AVDictionary *opts = NULL;
    char timeout[32];
    /* Socket I/O timeout in µs: a silent camera is noticed even if the
     * interrupt callback is not polled. */
    snprintf(timeout, sizeof(timeout), "%lld", (long long)src->timing.read_timeout_ms * 1000);
    av_dict_set(&opts, "rtsp_transport", src->transport == VG_TRANSPORT_UDP ? "udp" : "tcp", 0);
    av_dict_set(&opts, "timeout", timeout, 0);
    av_dict_set(&opts, "analyzeduration", "2000000", 0);
    if (src->transport == VG_TRANSPORT_UDP) {
        av_dict_set(&opts, "buffer_size", "2097152", 0);
        av_dict_set(&opts, "reorder_queue_size", "64", 0);
    }
    return opts;
}

static int check_kind(cap_source_t *src, AVFormatContext *ic, char *why, size_t why_size)
{
    int video = 0, audio = 0;
    for (unsigned i = 0; i < ic->nb_streams; i++) {
        video |= ic->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO;
        audio |= ic->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO;
    }
    if (src->kind == VG_SOURCE_VIDEO && !video) {
        snprintf(why, why_size, "kind=video but the stream has no video");
        return VG_EMEDIA;
    }
    if (src->kind == VG_SOURCE_AUDIO && (!audio || video)) {
        snprintf(why, why_size, "kind=audio but the stream %s",
                 video ? "has video" : "has no audio");
        return VG_EMEDIA;
    }
    return VG_OK;
}

static void describe_codecs(cap_source_t *src, AVFormatContext *ic)
{
    char codecs[64] = "";
    for (unsigned i = 0; i < ic->nb_streams; i++)
        vg_list_append(codecs, sizeof(codecs),
                       avcodec_get_name(ic->streams[i]->codecpar->codec_id));
    pthread_mutex_lock(&src->lock);
    snprintf(src->status.codecs, sizeof(src->status.codecs), "%s", codecs);
    pthread_mutex_unlock(&src->lock);
}

/* Probing a stream (avformat_find_stream_info) buffers seconds of packets
 * and opens decoders: a few MB per source. 100 sources starting together
 * would probe together and lift the daemon's peak RSS far above its steady
 * state, so at most CAP_MAX_PROBES connect and probe at a time; the others
 * wait their turn (still stoppable, still alive for the watchdog). */
#define CAP_MAX_PROBES 8

static pthread_mutex_t probe_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t probe_freed = PTHREAD_COND_INITIALIZER;
static int probes_running;

static int probe_slot_take(cap_source_t *src)
{
    int rc = VG_OK;
    pthread_mutex_lock(&probe_lock);
    while (probes_running >= CAP_MAX_PROBES) {
        if (atomic_load(&src->stop)) {
            rc = VG_ESTOPPED;
            break;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 100 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&probe_freed, &probe_lock, &until);
        atomic_store(&src->heartbeat_us, vg_clock_mono(src->clock));
    }
    if (rc == VG_OK)
        probes_running++;
    pthread_mutex_unlock(&probe_lock);
    return rc;
}

static void probe_slot_give(void)
{
    pthread_mutex_lock(&probe_lock);
    probes_running--;
    pthread_cond_signal(&probe_freed);
    pthread_mutex_unlock(&probe_lock);
}

static int probe_upstream(cap_source_t *src, AVFormatContext **out, char *why, size_t why_size)
{
    AVFormatContext *ic = avformat_alloc_context();
    if (!ic)
        abort();
    ic->interrupt_callback.callback = interrupt_cb;
    ic->interrupt_callback.opaque = src;
    AVDictionary *opts = open_options(src);
    arm_deadline(src, src->timing.open_timeout_ms);
    int ret = avformat_open_input(&ic, src->url, NULL, &opts);
    av_dict_free(&opts);
    if (ret < 0) {
        snprintf(why, why_size, "connect failed: %s", av_err2str(ret));
        return VG_EMEDIA;
    }
    ret = avformat_find_stream_info(ic, NULL);
    int rc = ret < 0 ? VG_EMEDIA : check_kind(src, ic, why, why_size);
    if (ret < 0)
        snprintf(why, why_size, "no stream info: %s", av_err2str(ret));
    if (rc != VG_OK) {
        avformat_close_input(&ic);
        return rc;
    }
    describe_codecs(src, ic);
    *out = ic;
    return VG_OK;
}

static int open_upstream(cap_source_t *src, AVFormatContext **out, char *why, size_t why_size)
{
    if (probe_slot_take(src) != VG_OK) {
        snprintf(why, why_size, "stopped");
        return VG_ESTOPPED;
    }
    int rc = probe_upstream(src, out, why, why_size);
    probe_slot_give();
    return rc;
}

#define RATE_WINDOW_US 5000000

static void count_packet(cap_source_t *src, const AVPacket *pkt, int64_t now)
{
    int64_t mono = cheap_mono(src);
    atomic_store(&src->heartbeat_us, mono);
    src->rate_window_bytes += pkt->size;
    int64_t elapsed = mono - src->rate_window_start_us;
    pthread_mutex_lock(&src->lock);
    if (elapsed >= RATE_WINDOW_US) {
        src->status.bitrate_bps = src->rate_window_bytes * 8 * 1000000 / elapsed;
        src->rate_window_bytes = 0;
        src->rate_window_start_us = mono;
    }
    src->status.packets++;
    src->status.bytes += pkt->size;
    src->status.last_packet_wall_us = now;
    pthread_mutex_unlock(&src->lock);
}

/* Reads until error, EOF or stop. Returns how long the connection was up. */
static int64_t read_loop(cap_source_t *src, AVFormatContext *ic, char *why, size_t why_size)
{
    int64_t started = vg_clock_mono(src->clock);
    AVPacket *pkt = av_packet_alloc();
    if (!pkt)
        abort();
    cap_undated_t undated;
    cap_undated_init(&undated, ic->streams, ic->nb_streams);
    for (;;) {
        arm_deadline(src, src->timing.read_timeout_ms);
        int ret = av_read_frame(ic, pkt);
        if (ret < 0) {
            if (!atomic_load(&src->stop))
                snprintf(why, why_size, "%s", ret == AVERROR_EOF ? "stream ended"
                         : ret == AVERROR_EXIT ? "no data (read timeout)" : av_err2str(ret));
            break;
        }
        int64_t now = vg_clock_wall(src->clock);
        count_packet(src, pkt, now);
        if (cap_undated_hold(&undated, pkt, now))
            continue;
        AVPacket *held[CAP_UNDATED_MAX];
        int64_t held_wall[CAP_UNDATED_MAX];
        unsigned n_held = cap_undated_release(&undated, pkt, held, held_wall);
        for (unsigned i = 0; i < n_held; i++) {
            src->sink.packet(src->sink.ctx, held[i], held_wall[i]);
            av_packet_free(&held[i]);
        }
        src->sink.packet(src->sink.ctx, pkt, now);
        av_packet_unref(pkt);
    }
    cap_undated_free(&undated);
    av_packet_free(&pkt);
    return vg_clock_mono(src->clock) - started;
}

/* One connection from open to close. Returns its healthy lifetime in µs. */
static int64_t run_connection(cap_source_t *src)
{
    char why[160] = "";
    AVFormatContext *ic = NULL;
    set_state(src, CAP_CONNECTING, NULL);
    atomic_store(&src->heartbeat_us, vg_clock_mono(src->clock));
    /* "connecting" and "closed" frame each upstream connection in the log,
     * so invariant 4 (one connection per source, also across a reload) can
     * be checked from the daemon's own order of events. */
    vg_info("source=%s connecting url=%s", src->name, src->redacted_url);
    if (open_upstream(src, &ic, why, sizeof(why)) != VG_OK) {
        if (!atomic_load(&src->stop)) {
            vg_warn("source=%s url=%s %s", src->name, src->redacted_url, why);
            set_state(src, CAP_ERROR, why);
        }
        return 0;
    }
    int64_t lifetime = 0;
    if (src->sink.begin(src->sink.ctx, ic->streams, ic->nb_streams) != 0) {
        snprintf(why, sizeof(why), "streams cannot be recorded");
    } else {
        vg_info("source=%s connected url=%s", src->name, src->redacted_url);
        set_state(src, CAP_RECORDING, "");
        lifetime = read_loop(src, ic, why, sizeof(why));
        src->sink.end(src->sink.ctx);
    }
    avformat_close_input(&ic);
    vg_info("source=%s closed url=%s", src->name, src->redacted_url);
    if (!atomic_load(&src->stop)) {
        vg_warn("source=%s disconnected: %s", src->name, why);
        set_state(src, CAP_ERROR, why);
    }
    return lifetime;
}

/* Sleeps up to ms, waking early when asked to stop. Sleeps in slices of at
 * most a second so the heartbeat shows a waiting thread is not a stuck one. */
static void backoff_slice(cap_source_t *src, int ms);

static void backoff_sleep(cap_source_t *src, int ms)
{
    while (ms > 0 && !atomic_load(&src->stop)) {
        int slice = ms > 1000 ? 1000 : ms;
        backoff_slice(src, slice);
        atomic_store(&src->heartbeat_us, vg_clock_mono(src->clock));
        ms -= slice;
    }
}

static void backoff_slice(cap_source_t *src, int ms)
{
    struct timespec until;
    vg_deadline_us(CLOCK_REALTIME, (int64_t)ms * 1000, &until);
    pthread_mutex_lock(&src->lock);
    while (!atomic_load(&src->stop)) {
        if (pthread_cond_timedwait(&src->wake, &src->lock, &until) != 0)
            break;
    }
    pthread_mutex_unlock(&src->lock);
}

static void *source_thread(void *arg)
{
    cap_source_t *src = arg;
    char thread_name[16];
    snprintf(thread_name, sizeof(thread_name), "cap:%.11s", src->name);
    pthread_setname_np(pthread_self(), thread_name);
    int backoff = src->timing.backoff_min_ms;
    while (!atomic_load(&src->stop)) {
        int64_t lifetime = run_connection(src);
        if (atomic_load(&src->stop))
            break;
        if (lifetime >= (int64_t)src->timing.healthy_ms * 1000)
            backoff = src->timing.backoff_min_ms;
        pthread_mutex_lock(&src->lock);
        src->status.reconnects++;
        pthread_mutex_unlock(&src->lock);
        vg_info("source=%s reconnecting in %d ms", src->name, backoff);
        backoff_sleep(src, backoff);
        backoff = backoff * 2 > src->timing.backoff_max_ms ? src->timing.backoff_max_ms
                                                           : backoff * 2;
    }
    set_state(src, CAP_STOPPED, NULL);
    return NULL;
}

int cap_source_start(const vg_source_config_t *cfg, const cap_timing_t *timing,
                     const vg_clock_t *clock, cap_sink_t sink, cap_source_t **out)
{
    cap_source_t *src = vg_calloc(1, sizeof(*src));
    src->name = vg_strdup(cfg->name);
    src->url = vg_strdup(cfg->url);
    vg_url_redact(cfg->url, src->redacted_url, sizeof(src->redacted_url));
    src->kind = cfg->kind;
    src->transport = cfg->transport;
    src->timing = timing ? *timing : cap_default_timing;
    src->clock = clock;
    src->sink = sink;
    atomic_store(&src->heartbeat_us, vg_clock_mono(clock));
    src->rate_window_start_us = vg_clock_mono(clock);
    pthread_mutex_init(&src->lock, NULL);
    pthread_cond_init(&src->wake, NULL);
    /* The thread inherits a mask with every signal blocked: signals are the
     * main thread's business (DESIGN.md convention 6). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int err = pthread_create(&src->thread, NULL, source_thread, src);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err != 0) {
        vg_err("source=%s cannot start thread: %s", cfg->name, strerror(err));
        cap_source_join(src);
        return VG_EIO;
    }
    src->thread_started = 1;
    *out = src;
    return VG_OK;
}

void cap_source_request_stop(cap_source_t *src)
{
    if (!src)
        return;
    pthread_mutex_lock(&src->lock);
    atomic_store(&src->stop, 1);
    pthread_cond_broadcast(&src->wake);
    pthread_mutex_unlock(&src->lock);
}

void cap_source_join(cap_source_t *src)
{
    if (!src)
        return;
    cap_source_request_stop(src);
    if (src->thread_started)
        pthread_join(src->thread, NULL);
    pthread_mutex_destroy(&src->lock);
    pthread_cond_destroy(&src->wake);
    free(src->name);
    free(src->url);
    free(src);
}

void cap_source_status(cap_source_t *src, cap_status_t *out)
{
    pthread_mutex_lock(&src->lock);
    *out = src->status;
    pthread_mutex_unlock(&src->lock);
}
