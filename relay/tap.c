/* The RTSP side of a feed: a media factory whose media is shared by every
 * client of one feed generation ("tap": appsrc ! payloader per stream), and
 * the fan-out of its RTP to the TCP clients.
 *
 * One shared media rather than a pipeline per client: a pipeline per client
 * costs a payloader, an RTP session and a handful of threads for every
 * client, and their hand-offs dominated the relay's CPU. Shared, a client
 * costs one send per packet.
 *
 * Fast start over TCP: a client joining a shared stream would get P-frames
 * until the camera's next keyframe (seconds on many cameras). The tap keeps
 * the RTP packets since the last keyframe, and a new TCP client gets them
 * first, then the live packets, so its first frame is a keyframe within
 * milliseconds of PLAY. The fan-out takes the payloader's packets as they
 * leave it and sends them to the TCP clients itself; the copies the RTSP
 * stream would send them are dropped. UDP clients get the stream's own
 * packets (same SSRC, sequence and timestamps) and start at the next
 * keyframe.
 *
 * Bounded: a TCP client that reads too slowly skips to the next keyframe once
 * its backlog passes VIEWER_MAX_BYTES (whole GOPs are dropped, never parts of
 * one); sends never block, so one client never holds up another or the feed. */
#include "relay/relay_private.h"

#include <gst/app/gstappsink.h> /* GST_IS_APP_SINK */
#include <gst/app/gstappsrc.h>
#include <stdio.h>
#include <string.h>

#include "core/errors.h"
#include "core/util.h"

#define TAP_MAX_BYTES (4u * 1024 * 1024)
#define VIEWER_MAX_BYTES (4u * 1024 * 1024)
#define RTP_GOP_MAX_BYTES (16u * 1024 * 1024)
/* Packets per send: the client's connection queues at most 100 messages
 * (gst-rtsp-server's backlog) and closes the client beyond that. */
#define SEND_BATCH 32
#define TCP_PAYLOAD_MTU 8192
/* A media without viewers this long is let go (rly_taps_release_idle). */
#define IDLE_RELEASE_US (10 * 1000000LL)
#define UDP_PAYLOAD_MTU 1400

/* One TCP client of one stream. */
typedef struct {
    GWeakRef trans;              /* the client's GstRTSPStreamTransport */
    const void *sessmedia;       /* identity: PAUSE and TEARDOWN name it */
    const void *client;          /* identity: a closed connection names it */
    GPtrArray *pending;          /* RTP buffers not yet taken by the client */
    size_t pending_bytes;
    int wait_key;
} viewer_t;

/* The TCP side of one stream of the tap. */
typedef struct {
    rly_tap_t *tap;
    int video;
    int key_next;    /* the payloader's next output starts a keyframe */
    GPtrArray *gop;  /* RTP packets since the last keyframe start */
    size_t gop_bytes;
    int gop_valid;
    GPtrArray *viewers;
    int64_t sent_us; /* monotonic: when the viewers were last handed their packets */
} fan_t;

struct rly_tap {
    atomic_int refs;
    rly_feed_t *feed;   /* a reference */
    GWeakRef media;
    GstElement *src[RLY_MAX_STREAMS];
    unsigned n_src;
    unsigned gen;       /* the feed generation its pipeline was built for */
    /* Under the feed's lock: */
    int listed;         /* in feed->taps: gets units */
    int started;        /* the pipeline asked for data: the GOP went in */
    int wait_key;       /* skipping until a keyframe (start without GOP, stall) */
    int bursting;       /* the cached GOP going in: over the limit, but bounded by it */
    int discont;        /* the next buffer follows a gap */
    int has_origin;
    int64_t origin_ns;  /* relay time of the first unit: the tap's time 0 */
    int held;           /* we hold one preparation of the media (on_media_prepared) */
    int64_t idle_since; /* monotonic us since when the feed has had no viewer; 0: watched */
    int64_t send_interval_us; /* [relay] send_interval_ms */
    /* The fan-out, under fan_lock (never taken before the feed's lock): */
    pthread_mutex_t fan_lock;
    fan_t fan[RLY_MAX_STREAMS];
};

typedef struct {
    GstRTSPMediaFactory parent;
    rly_feed_t *feed;
} RlyFactory;

typedef struct {
    GstRTSPMediaFactoryClass parent_class;
} RlyFactoryClass;

static GObjectClass *factory_parent_class;

static GQuark gen_quark;
static GQuark tap_quark;

/* ---- viewers: the TCP clients ---- */

static viewer_t *viewer_new(GstRTSPStreamTransport *tr, const void *sessmedia, const void *client)
{
    viewer_t *v = g_new0(viewer_t, 1);
    g_weak_ref_init(&v->trans, tr);
    v->sessmedia = sessmedia;
    v->client = client;
    v->pending = g_ptr_array_new_with_free_func((GDestroyNotify)gst_buffer_unref);
    return v;
}

static void viewer_free(gpointer data)
{
    viewer_t *v = data;
    g_ptr_array_unref(v->pending);
    g_weak_ref_clear(&v->trans);
    g_free(v);
}

static void viewer_queue(viewer_t *v, GstBuffer *b)
{
    g_ptr_array_add(v->pending, gst_buffer_ref(b));
    v->pending_bytes += gst_buffer_get_size(b);
}

static void viewer_drop_pending(viewer_t *v)
{
    g_ptr_array_set_size(v->pending, 0);
    v->pending_bytes = 0;
}

/* Hands the client what it has room for, SEND_BATCH packets at a time; the
 * rest waits for the next packet of the stream. A send refused means the
 * client still has data queued on this channel (or is closing). Returns 0
 * once the client is gone. fan_lock held. */
static int viewer_flush(viewer_t *v)
{
    GstRTSPStreamTransport *tr = g_weak_ref_get(&v->trans);
    if (!tr)
        return 0;
    while (v->pending->len > 0) {
        guint n = MIN(v->pending->len, SEND_BATCH);
        GstBufferList *list = gst_buffer_list_new_sized(n);
        size_t bytes = 0;
        for (guint i = 0; i < n; i++) {
            GstBuffer *b = g_ptr_array_index(v->pending, i);
            bytes += gst_buffer_get_size(b);
            gst_buffer_list_add(list, gst_buffer_ref(b));
        }
        gboolean sent = gst_rtsp_stream_transport_send_rtp_list(tr, list);
        gst_buffer_list_unref(list);
        if (!sent)
            break;
        g_ptr_array_remove_range(v->pending, 0, n);
        v->pending_bytes -= bytes;
    }
    g_object_unref(tr);
    return 1;
}

/* One RTP packet of the TCP payloader to the cache and the clients.
 * fan_lock held. */
static void fan_packet(fan_t *fn, GstBuffer *b, int key_start)
{
    size_t size = gst_buffer_get_size(b);
    if (fn->video && key_start) {
        g_ptr_array_set_size(fn->gop, 0);
        fn->gop_bytes = 0;
        fn->gop_valid = 1;
    }
    if (fn->video && fn->gop_valid) {
        if (fn->gop_bytes + size > RTP_GOP_MAX_BYTES) {
            g_ptr_array_set_size(fn->gop, 0);
            fn->gop_bytes = 0;
            fn->gop_valid = 0;
        } else {
            g_ptr_array_add(fn->gop, gst_buffer_ref(b));
            fn->gop_bytes += size;
        }
    }
    for (guint i = 0; i < fn->viewers->len; i++) {
        viewer_t *v = g_ptr_array_index(fn->viewers, i);
        if (v->wait_key) {
            if (!key_start)
                continue;
            v->wait_key = 0;
        }
        viewer_queue(v, b);
        if (v->pending_bytes > VIEWER_MAX_BYTES) {
            viewer_drop_pending(v);
            v->wait_key = fn->video;
            atomic_fetch_add(&fn->tap->feed->dropped_gops, 1);
        }
    }
}

static void fan_flush(fan_t *fn)
{
    for (guint i = 0; i < fn->viewers->len;) {
        if (viewer_flush(g_ptr_array_index(fn->viewers, i)))
            i++;
        else
            g_ptr_array_remove_index_fast(fn->viewers, i); /* the client is gone */
    }
}

static void fan_buffer_list(fan_t *fn, GstBufferList *list, int key_start)
{
    guint n = gst_buffer_list_length(list);
    for (guint i = 0; i < n; i++)
        fan_packet(fn, gst_buffer_list_get(list, i), key_start && i == 0);
}

/* Whether the viewers get their packets now. Each send to a TCP client is a
 * system call that, for most of its cost, hands a segment to the network
 * and wakes the receiver, whatever its size; sending a stream's packets
 * together every send_interval_us rather than each as the payloader makes
 * it divides that cost by the packets (video: frames) per interval. A
 * packet waits at most the interval (plus the gap to the stream's next
 * packet); live viewers buffer far longer than that. */
static int fan_due(fan_t *fn)
{
    if (fn->tap->send_interval_us <= 0)
        return 1;
    int64_t now = g_get_monotonic_time();
    if (now - fn->sent_us < fn->tap->send_interval_us)
        return 0;
    fn->sent_us = now;
    return 1;
}

/* The payloader's output, on its way to the RTSP stream (the tap's
 * streaming thread): a copy of every packet goes to the TCP clients. */
static GstPadProbeReturn on_rtp_out(GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
    (void)pad;
    fan_t *fn = data;
    pthread_mutex_lock(&fn->tap->fan_lock);
    int key = fn->key_next;
    fn->key_next = 0;
    if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST)
        fan_buffer_list(fn, GST_PAD_PROBE_INFO_BUFFER_LIST(info), key);
    else if (GST_PAD_PROBE_INFO_BUFFER(info))
        fan_packet(fn, GST_PAD_PROBE_INFO_BUFFER(info), key);
    if (fan_due(fn))
        fan_flush(fn);
    pthread_mutex_unlock(&fn->tap->fan_lock);
    return GST_PAD_PROBE_OK;
}

/* The payloader is about to packetize a unit: mark its packets when the
 * unit is a keyframe (feed units carry DELTA_UNIT otherwise). Runs on the
 * same thread as on_rtp_out, right before it. */
static GstPadProbeReturn on_tcp_unit(GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
    (void)pad;
    fan_t *fn = data;
    GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER(info);
    if (b && !GST_BUFFER_FLAG_IS_SET(b, GST_BUFFER_FLAG_DELTA_UNIT)) {
        pthread_mutex_lock(&fn->tap->fan_lock);
        fn->key_next = 1;
        pthread_mutex_unlock(&fn->tap->fan_lock);
    }
    return GST_PAD_PROBE_OK;
}

/* The RTSP stream's own RTP for TCP clients: they get the fan-out's
 * instead. RTCP (sender reports) passes. */
static int is_rtcp(GstBuffer *b)
{
    guint8 hdr[2];
    return b && gst_buffer_extract(b, 0, hdr, 2) == 2 && hdr[1] >= 200 && hdr[1] <= 204;
}

static GstPadProbeReturn drop_stream_rtp(GstPad *pad, GstPadProbeInfo *info, gpointer data);

/* The appsink sits behind a queue: dropping at the queue's entrance also
 * spares the queue's thread a wake-up per packet. Installed from the
 * appsink's first packet, when the queue is linked. */
static void drop_before_queue(GstPad *sinkpad)
{
    GstPad *peer = gst_pad_get_peer(sinkpad);
    GstElement *queue = peer ? gst_pad_get_parent_element(peer) : NULL;
    if (queue && g_str_equal(G_OBJECT_TYPE_NAME(queue), "GstQueue")) {
        GstPad *in = gst_element_get_static_pad(queue, "sink");
        if (in) {
            gst_pad_add_probe(in, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
                              drop_stream_rtp, GINT_TO_POINTER(1), NULL);
            gst_object_unref(in);
        }
    }
    if (queue)
        gst_object_unref(queue);
    if (peer)
        gst_object_unref(peer);
}

static GstPadProbeReturn drop_stream_rtp(GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
    GstBuffer *b = NULL;
    if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
        GstBufferList *l = GST_PAD_PROBE_INFO_BUFFER_LIST(info);
        b = gst_buffer_list_length(l) ? gst_buffer_list_get(l, 0) : NULL;
    } else {
        b = GST_PAD_PROBE_INFO_BUFFER(info);
    }
    if (is_rtcp(b))
        return GST_PAD_PROBE_OK;
    if (!data && !g_object_get_qdata(G_OBJECT(pad), tap_quark)) {
        /* the appsink's probe, at its first RTP packet */
        g_object_set_qdata(G_OBJECT(pad), tap_quark, GINT_TO_POINTER(1));
        drop_before_queue(pad);
    }
    return GST_PAD_PROBE_DROP;
}

/* gst-rtsp-server adds an appsink per stream for TCP delivery when the
 * first TCP client sets up: the RTP it would send is dropped at its door
 * (the fan-out sends it). */
static void on_element_added(GstBin *bin, GstBin *sub, GstElement *e, gpointer data)
{
    (void)bin;
    (void)sub;
    (void)data;
    if (!GST_IS_APP_SINK(e))
        return;
    GstPad *pad = gst_element_get_static_pad(e, "sink");
    if (pad) {
        gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
                          drop_stream_rtp, NULL, NULL);
        gst_object_unref(pad);
    }
}

/* Holds one preparation of the media, so it is not torn down the moment its
 * last client leaves: a client arriving just then would be handed a media
 * being torn down, and get 503. The hold goes after IDLE_RELEASE_US without
 * viewers (rly_taps_release_idle) or with the generation (close_stale); a
 * client back within that time also finds the stream running. */
static void on_media_prepared(GstRTSPMedia *media, gpointer data)
{
    rly_tap_t *t = data;
    pthread_mutex_lock(&t->feed->lock);
    int hold = t->listed && !t->held;
    t->held |= hold;
    pthread_mutex_unlock(&t->feed->lock);
    /* Already prepared: this only counts one more user (the thread it
     * would have run on is stopped at once). */
    if (hold)
        gst_rtsp_media_prepare(media, gst_rtsp_thread_new(GST_RTSP_THREAD_TYPE_MEDIA));
}

static rly_tap_t *tap_of(GstRTSPMedia *media)
{
    return media ? g_object_get_qdata(G_OBJECT(media), tap_quark) : NULL;
}

/* Removes the viewers of sessmedia (when not NULL) or of client. */
static void tap_leave(rly_tap_t *t, const void *sessmedia, const void *client)
{
    pthread_mutex_lock(&t->fan_lock);
    for (unsigned k = 0; k < t->n_src; k++) {
        GPtrArray *vs = t->fan[k].viewers;
        for (guint i = 0; i < vs->len;) {
            const viewer_t *v = g_ptr_array_index(vs, i);
            if (sessmedia ? v->sessmedia == sessmedia : v->client == client)
                g_ptr_array_remove_index_fast(vs, i);
            else
                i++;
        }
    }
    pthread_mutex_unlock(&t->fan_lock);
}

void rly_tap_join(GstRTSPClient *client, GstRTSPSessionMedia *sm)
{
    GstRTSPMedia *media = sm ? gst_rtsp_session_media_get_media(sm) : NULL;
    rly_tap_t *t = tap_of(media);
    if (!t)
        return;
    guint n = MIN(gst_rtsp_media_n_streams(media), t->n_src);
    tap_leave(t, sm, NULL); /* PLAY again without PAUSE: start over */
    pthread_mutex_lock(&t->fan_lock);
    for (guint k = 0; k < n; k++) {
        GstRTSPStreamTransport *tr = gst_rtsp_session_media_get_transport(sm, k);
        const GstRTSPTransport *tt = tr ? gst_rtsp_stream_transport_get_transport(tr) : NULL;
        if (!tt || tt->lower_transport != GST_RTSP_LOWER_TRANS_TCP)
            continue;
        fan_t *fn = &t->fan[k];
        viewer_t *v = viewer_new(tr, sm, client);
        if (fn->video && fn->gop_valid) {
            for (guint i = 0; i < fn->gop->len; i++)
                viewer_queue(v, g_ptr_array_index(fn->gop, i));
        } else {
            v->wait_key = fn->video;
        }
        g_ptr_array_add(fn->viewers, v);
        viewer_flush(v);
    }
    pthread_mutex_unlock(&t->fan_lock);
}

void rly_tap_leave(GstRTSPSessionMedia *sm)
{
    rly_tap_t *t = sm ? tap_of(gst_rtsp_session_media_get_media(sm)) : NULL;
    if (t)
        tap_leave(t, sm, NULL);
}

void rly_taps_leave_client(rly_feed_t *f, const GstRTSPClient *client)
{
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->n_taps; i++)
        tap_leave(f->taps[i], NULL, client);
    pthread_mutex_unlock(&f->lock);
}

/* ---- taps ---- */

static rly_tap_t *tap_ref(rly_tap_t *t)
{
    atomic_fetch_add(&t->refs, 1);
    return t;
}

static void tap_unref(gpointer data)
{
    rly_tap_t *t = data;
    if (atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    for (unsigned i = 0; i < t->n_src; i++) {
        gst_object_unref(t->src[i]);
        g_ptr_array_unref(t->fan[i].gop);
        g_ptr_array_unref(t->fan[i].viewers);
    }
    pthread_mutex_destroy(&t->fan_lock);
    g_weak_ref_clear(&t->media);
    rly_feed_unref(t->feed);
    g_free(t);
}

static void tap_unref_closure(gpointer data, GClosure *closure)
{
    (void)closure;
    tap_unref(data);
}

/* One unit into the tap, with the tap's own times (from 0 at its start)
 * around the shared bytes. f->lock held. */
static void tap_feed(rly_feed_t *f, rly_tap_t *t, const rly_unit_t *u)
{
    GstAppSrc *src = GST_APP_SRC(t->src[u->stream]);
    if (t->wait_key) {
        if (!u->key || gst_app_src_get_current_level_bytes(src) > TAP_MAX_BYTES / 2)
            return;
        t->wait_key = 0;
        t->discont = 1;
    } else if (!t->bursting && gst_app_src_get_current_level_bytes(src) > TAP_MAX_BYTES) {
        t->wait_key = 1;
        atomic_fetch_add(&f->dropped_gops, 1);
        return;
    }
    if (!t->has_origin) {
        t->origin_ns = u->dts_ns;
        t->has_origin = 1;
    }
    if (u->dts_ns < t->origin_ns)
        return; /* audio from just before the keyframe the tap starts on */
    GstBuffer *buf = gst_buffer_new();
    if (u->prefix)
        gst_buffer_append_memory(buf, gst_memory_ref(u->prefix));
    gst_buffer_append_memory(buf, gst_memory_ref(u->mem));
    GST_BUFFER_DTS(buf) = (GstClockTime)(u->dts_ns - t->origin_ns);
    GST_BUFFER_PTS(buf) = (GstClockTime)(u->pts_ns - t->origin_ns);
    if (!u->key && rly_codec_is_video(f->codec[u->stream]))
        GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DELTA_UNIT);
    if (t->discont) {
        GST_BUFFER_FLAG_SET(buf, GST_BUFFER_FLAG_DISCONT);
        t->discont = 0;
    }
    gst_app_src_push_buffer(src, buf);
}

/* The pipeline is running: it starts with the cached GOP, i.e. a keyframe
 * and everything since, so the client can decode at once. f->lock held. */
static void tap_start(rly_feed_t *f, rly_tap_t *t)
{
    t->started = 1;
    t->discont = 1;
    if (!f->gop_valid || f->n_gop == 0) {
        t->wait_key = 1;
        return;
    }
    t->bursting = 1; /* a long GOP may pass the limit once; GOP_MAX_BYTES bounds it */
    for (size_t i = 0; i < f->n_gop; i++)
        tap_feed(f, t, &f->gop[i]);
    t->bursting = 0;
}

void rly_taps_resync(rly_feed_t *f)
{
    for (size_t i = 0; i < f->n_taps; i++)
        f->taps[i]->wait_key = 1;
}

void rly_taps_push(rly_feed_t *f, const rly_unit_t *u)
{
    for (size_t i = 0; i < f->n_taps; i++) {
        rly_tap_t *t = f->taps[i];
        if (t->started && t->gen == f->gen)
            tap_feed(f, t, u);
    }
}

/* Takes t off the feed's list; returns 1 if it was on it (the list's
 * reference is then the caller's). f->lock held. */
static int tap_unlist(rly_feed_t *f, rly_tap_t *t)
{
    for (size_t i = 0; i < f->n_taps; i++) {
        if (f->taps[i] == t) {
            f->taps[i] = f->taps[--f->n_taps];
            t->listed = 0;
            return 1;
        }
    }
    return 0;
}

/* No more data: a pipeline still preparing fails instead of waiting. */
static void tap_end_streams(rly_tap_t *t)
{
    for (unsigned i = 0; i < t->n_src; i++)
        gst_app_src_end_of_stream(GST_APP_SRC(t->src[i]));
}

void rly_taps_close_stale(rly_feed_t *f)
{
    GPtrArray *medias = g_ptr_array_new_with_free_func(g_object_unref);
    GPtrArray *release = g_ptr_array_new_with_free_func(g_object_unref);
    GPtrArray *stale = g_ptr_array_new_with_free_func(tap_unref);
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->n_taps;) {
        rly_tap_t *t = f->taps[i];
        if (t->gen == f->gen) {
            i++;
            continue;
        }
        tap_unlist(f, t);
        g_ptr_array_add(stale, t);
        GstRTSPMedia *m = g_weak_ref_get(&t->media);
        if (m && t->held)
            g_ptr_array_add(release, g_object_ref(m));
        t->held = 0;
        if (m)
            g_ptr_array_add(medias, m);
    }
    pthread_mutex_unlock(&f->lock);
    for (guint i = 0; i < stale->len; i++)
        tap_end_streams(g_ptr_array_index(stale, i));
    g_ptr_array_unref(stale);
    rly_server_close_medias(f->srv, medias, release);
}

void rly_taps_release_idle(rly_feed_t *f, int64_t now_us, int all, GPtrArray *release)
{
    pthread_mutex_lock(&f->lock);
    int watched = atomic_load(&f->watching) > 0 && !all;
    for (size_t i = 0; i < f->n_taps; i++) {
        rly_tap_t *t = f->taps[i];
        if (!t->held)
            continue;
        if (watched) {
            t->idle_since = 0;
            continue;
        }
        if (!all && !t->idle_since)
            t->idle_since = now_us;
        if (!all && now_us - t->idle_since < IDLE_RELEASE_US)
            continue;
        /* New clients get a new media from now on, not this one. */
        atomic_fetch_add(&f->epoch, 1);
        t->held = 0;
        t->idle_since = 0;
        GstRTSPMedia *m = g_weak_ref_get(&t->media);
        if (m)
            g_ptr_array_add(release, m);
    }
    pthread_mutex_unlock(&f->lock);
}

/* ---- signals of the shared media ---- */

/* Puts t on the feed's list, to get units from its start (the cached GOP
 * first). 0 when t belongs to an older generation. */
static int tap_list(rly_feed_t *f, rly_tap_t *t)
{
    pthread_mutex_lock(&f->lock);
    int ok = !f->closed && t->gen == f->gen && t->n_src == f->n_streams;
    if (ok) {
        f->taps = vg_realloc(f->taps, (f->n_taps + 1) * sizeof(*f->taps));
        f->taps[f->n_taps++] = tap_ref(t);
        t->listed = 1;
    }
    pthread_mutex_unlock(&f->lock);
    return ok;
}

static void on_need_data(GstAppSrc *src, guint length, gpointer data)
{
    (void)src;
    (void)length;
    rly_tap_t *t = data;
    rly_feed_t *f = t->feed;
    pthread_mutex_lock(&f->lock);
    if (t->listed && !t->started)
        tap_start(f, t);
    pthread_mutex_unlock(&f->lock);
}

static void on_unprepared(GstRTSPMedia *media, gpointer data)
{
    (void)media;
    rly_tap_t *t = data;
    pthread_mutex_lock(&t->feed->lock);
    int was_listed = tap_unlist(t->feed, t);
    pthread_mutex_unlock(&t->feed->lock);
    pthread_mutex_lock(&t->fan_lock);
    for (unsigned k = 0; k < t->n_src; k++) {
        g_ptr_array_set_size(t->fan[k].viewers, 0);
        g_ptr_array_set_size(t->fan[k].gop, 0);
    }
    pthread_mutex_unlock(&t->fan_lock);
    if (was_listed)
        tap_unref(t);
}

/* The fan-out of stream k: probes on payK's way in and out. */
static void tap_fan_init(rly_tap_t *t, GstBin *bin, unsigned k)
{
    fan_t *fn = &t->fan[k];
    fn->tap = t;
    fn->video = rly_codec_is_video(t->feed->codec[k]);
    fn->gop = g_ptr_array_new_with_free_func((GDestroyNotify)gst_buffer_unref);
    fn->viewers = g_ptr_array_new_with_free_func(viewer_free);
    char name[16];
    snprintf(name, sizeof(name), "pay%u", k);
    GstElement *pay = gst_bin_get_by_name(bin, name);
    if (!pay)
        return;
    GstPad *in = gst_element_get_static_pad(pay, "sink");
    GstPad *out = gst_element_get_static_pad(pay, "src");
    gst_pad_add_probe(in, GST_PAD_PROBE_TYPE_BUFFER, on_tcp_unit, fn, NULL);
    gst_pad_add_probe(out, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST, on_rtp_out,
                      fn, NULL);
    gst_object_unref(in);
    gst_object_unref(out);
    gst_object_unref(pay);
}

static rly_tap_t *tap_new(rly_feed_t *f, GstRTSPMedia *media)
{
    rly_tap_t *t = g_new0(rly_tap_t, 1);
    atomic_init(&t->refs, 1);
    rly_feed_ref(f);
    t->feed = f;
    t->send_interval_us = (int64_t)f->srv->cfg->relay.send_interval_ms * 1000;
    pthread_mutex_init(&t->fan_lock, NULL);
    g_weak_ref_init(&t->media, media);
    GstElement *bin = gst_rtsp_media_get_element(media);
    t->gen = GPOINTER_TO_UINT(g_object_get_qdata(G_OBJECT(bin), gen_quark));
    for (unsigned i = 0; i < RLY_MAX_STREAMS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "src%u", i);
        GstElement *src = gst_bin_get_by_name(GST_BIN(bin), name);
        if (!src)
            break;
        t->src[t->n_src++] = src;
    }
    /* codec[] of the generation the bin was built for: checked against
     * f->gen before the tap is listed. */
    pthread_mutex_lock(&f->lock);
    for (unsigned k = 0; k < t->n_src; k++)
        tap_fan_init(t, GST_BIN(bin), k);
    pthread_mutex_unlock(&f->lock);
    gst_object_unref(bin);
    GstAppSrcCallbacks cb = {.need_data = on_need_data};
    for (unsigned i = 0; i < t->n_src; i++)
        gst_app_src_set_callbacks(GST_APP_SRC(t->src[i]), &cb, tap_ref(t), tap_unref);
    return t;
}

static void on_media_configure(GstRTSPMediaFactory *factory, GstRTSPMedia *media, gpointer data)
{
    (void)data;
    rly_feed_t *f = rly_factory_feed(factory);
    rly_tap_t *t = tap_new(f, media);
    /* Without rate control the sinks send packets as they come: the cached
     * GOP the pipeline starts with goes out in one burst, not in real time. */
    for (guint i = 0; i < gst_rtsp_media_n_streams(media); i++)
        gst_rtsp_stream_set_rate_control(gst_rtsp_media_get_stream(media, i), FALSE);
    g_signal_connect_data(media, "unprepared", G_CALLBACK(on_unprepared), tap_ref(t),
                          tap_unref_closure, 0);
    GstElement *bin = gst_rtsp_media_get_element(media);
    GstObject *pipe = gst_object_get_parent(GST_OBJECT(bin));
    if (pipe) {
        g_signal_connect(pipe, "deep-element-added", G_CALLBACK(on_element_added), NULL);
        gst_object_unref(pipe);
    } else {
        vg_err("source=%s relay: the media has no pipeline; TCP clients would get every "
               "packet twice", f->name);
    }
    gst_object_unref(bin);
    g_signal_connect_data(media, "prepared", G_CALLBACK(on_media_prepared), tap_ref(t),
                          tap_unref_closure, 0);

    g_object_set_qdata_full(G_OBJECT(media), tap_quark, tap_ref(t), tap_unref);
    if (!tap_list(f, t))
        tap_end_streams(t);
    tap_unref(t);
}

/* ---- the factory ---- */

GstCaps *rly_caps_for(rly_codec_t c, const AVCodecParameters *par)
{
    int ch = par->ch_layout.nb_channels;
    switch (c) {
    case RLY_C_H264:
        return gst_caps_new_simple("video/x-h264", "stream-format", G_TYPE_STRING, "byte-stream",
                                   "alignment", G_TYPE_STRING, "au", NULL);
    case RLY_C_H265:
        return gst_caps_new_simple("video/x-h265", "stream-format", G_TYPE_STRING, "byte-stream",
                                   "alignment", G_TYPE_STRING, "au", NULL);
    case RLY_C_PCMA:
    case RLY_C_PCMU:
        return gst_caps_new_simple(c == RLY_C_PCMA ? "audio/x-alaw" : "audio/x-mulaw", "rate",
                                   G_TYPE_INT, par->sample_rate, "channels", G_TYPE_INT, ch, NULL);
    case RLY_C_OPUS:
        return gst_caps_new_simple("audio/x-opus", "rate", G_TYPE_INT, 48000, "channels",
                                   G_TYPE_INT, ch, "channel-mapping-family", G_TYPE_INT, 0, NULL);
    case RLY_C_AAC: {
        GstCaps *caps = gst_caps_new_simple("audio/mpeg", "mpegversion", G_TYPE_INT, 4,
                                            "stream-format", G_TYPE_STRING, "raw", "rate",
                                            G_TYPE_INT, par->sample_rate, "channels", G_TYPE_INT,
                                            ch, NULL);
        if (par->extradata_size > 0) {
            GstBuffer *cd = gst_buffer_new_memdup(par->extradata, (gsize)par->extradata_size);
            gst_caps_set_simple(caps, "codec_data", GST_TYPE_BUFFER, cd, NULL);
            gst_buffer_unref(cd);
        }
        return caps;
    }
    default:
        return NULL;
    }
}

static GstElement *make_payloader(rly_codec_t c, const char *name, unsigned k)
{
    static const char *const names[] = {
        [RLY_C_H264] = "rtph264pay", [RLY_C_H265] = "rtph265pay", [RLY_C_PCMA] = "rtppcmapay",
        [RLY_C_PCMU] = "rtppcmupay", [RLY_C_AAC] = "rtpmp4gpay", [RLY_C_OPUS] = "rtpopuspay",
    };
    GstElement *pay = gst_element_factory_make(names[c], name);
    if (!pay)
        return NULL;
    /* G.711 has static payload types; the others take dynamic ones. Every
     * keyframe reaches the payloader with its parameter sets (feed.c), so it
     * inserts none of its own. */
    if (c == RLY_C_PCMA || c == RLY_C_PCMU)
        g_object_set(pay, "pt", c == RLY_C_PCMA ? 8 : 0, NULL);
    else
        g_object_set(pay, "pt", 96 + k, NULL);
    return pay;
}

/* Stream k: appsrc ! payK. The payloader starts with TCP_PAYLOAD_MTU and
 * drops to the network's MTU once a client takes the stream over UDP
 * (rly_tap_transport_chosen). */
static int add_stream(rly_feed_t *f, GstBin *bin, unsigned k)
{
    char src_name[16], pay_name[16];
    snprintf(src_name, sizeof(src_name), "src%u", k);
    snprintf(pay_name, sizeof(pay_name), "pay%u", k);
    GstElement *src = gst_element_factory_make("appsrc", src_name);
    GstElement *pay = make_payloader(f->codec[k], pay_name, k);
    if (!src || !pay) {
        vg_err("source=%s relay: GStreamer element missing (appsrc or payloader)", f->name);
        if (src)
            gst_object_unref(src);
        if (pay)
            gst_object_unref(pay);
        return VG_EINVAL;
    }
    g_object_set(src, "is-live", TRUE, "format", GST_FORMAT_TIME, "do-timestamp", FALSE, "caps",
                 f->caps[k], "max-bytes", (guint64)TAP_MAX_BYTES * 2, "block", FALSE, NULL);
    g_object_set(pay, "mtu", (guint)TCP_PAYLOAD_MTU, NULL);
    gst_bin_add_many(bin, src, pay, NULL);
    gst_element_link(src, pay);
    return VG_OK;
}

/* RTP over UDP must fit the network's MTU; over TCP a larger packet means
 * fewer packets, and each costs the same in the send path whatever its size
 * (8 KiB also fits every client's receive buffer: FFmpeg's is the smallest,
 * 80 KiB). A media starts large and shrinks for good at its first UDP
 * client. */
void rly_tap_transport_chosen(GstRTSPMedia *media, GstRTSPStream *stream,
                              const GstRTSPTransport *transport)
{
    if (media && stream && transport && tap_of(media) &&
        transport->lower_transport != GST_RTSP_LOWER_TRANS_TCP &&
        gst_rtsp_stream_get_mtu(stream) > UDP_PAYLOAD_MTU)
        gst_rtsp_stream_set_mtu(stream, UDP_PAYLOAD_MTU);
}

/* The shared media's elements, for the feed's current streams. f->lock held. */
static GstElement *build_bin(rly_feed_t *f)
{
    GstElement *bin = gst_bin_new(NULL);
    for (unsigned k = 0; k < f->n_streams; k++) {
        if (add_stream(f, GST_BIN(bin), k) != VG_OK) {
            gst_object_unref(bin);
            return NULL;
        }
    }
    g_object_set_qdata(G_OBJECT(bin), gen_quark, GUINT_TO_POINTER(f->gen));
    return bin;
}

/* Shared media are cached by this key. A new generation (new stream
 * parameters) gets a media of its own while the old one closes; so does a
 * new epoch (rly_taps_release_idle lets an unwatched media go): the old one
 * is being torn down then, and a client handed it would get 503. */
static gchar *factory_gen_key(GstRTSPMediaFactory *factory, const GstRTSPUrl *url)
{
    rly_feed_t *f = ((RlyFactory *)factory)->feed;
    pthread_mutex_lock(&f->lock);
    unsigned gen = f->gen;
    pthread_mutex_unlock(&f->lock);
    return g_strdup_printf("%u.%u:%s", gen, (unsigned)atomic_load(&f->epoch),
                           url && url->abspath ? url->abspath : "");
}

static GstElement *factory_create_element(GstRTSPMediaFactory *factory, const GstRTSPUrl *url)
{
    (void)url;
    rly_feed_t *f = ((RlyFactory *)factory)->feed;
    GstElement *bin = NULL;
    pthread_mutex_lock(&f->lock);
    if (!f->closed && f->n_streams > 0)
        bin = build_bin(f);
    pthread_mutex_unlock(&f->lock);
    return bin;
}

static void factory_finalize(GObject *obj)
{
    rly_feed_unref(((RlyFactory *)obj)->feed);
    factory_parent_class->finalize(obj);
}

static void factory_class_init(gpointer klass, gpointer data)
{
    (void)data;
    factory_parent_class = g_type_class_peek_parent(klass);
    GST_RTSP_MEDIA_FACTORY_CLASS(klass)->create_element = factory_create_element;
    GST_RTSP_MEDIA_FACTORY_CLASS(klass)->gen_key = factory_gen_key;
    G_OBJECT_CLASS(klass)->finalize = factory_finalize;
    gen_quark = g_quark_from_static_string("vigil-relay-gen");
    tap_quark = g_quark_from_static_string("vigil-relay-tap");
}

/* Registered by hand rather than with G_DEFINE_TYPE, which static
 * analysers cannot expand. */
static GType factory_type(void)
{
    static gsize type;
    if (g_once_init_enter(&type)) {
        GType t = g_type_register_static_simple(GST_TYPE_RTSP_MEDIA_FACTORY,
                                                g_intern_static_string("VigilRelayFactory"),
                                                sizeof(RlyFactoryClass), factory_class_init,
                                                sizeof(RlyFactory), NULL, 0);
        g_once_init_leave(&type, t);
    }
    return type;
}

GstRTSPMediaFactory *rly_factory_new(rly_feed_t *f)
{
    RlyFactory *rf = g_object_new(factory_type(), NULL);
    GstRTSPMediaFactory *factory = GST_RTSP_MEDIA_FACTORY(rf);
    rly_feed_ref(f);
    rf->feed = f;
    gst_rtsp_media_factory_set_shared(factory, TRUE);
    GstRTSPLowerTrans trans = GST_RTSP_LOWER_TRANS_TCP;
    /* Over RTSPS, media over UDP would leave the TLS tunnel in clear. */
    if (!f->srv->tls)
        trans |= GST_RTSP_LOWER_TRANS_UDP;
    gst_rtsp_media_factory_set_protocols(factory, trans);
    g_signal_connect(factory, "media-configure", G_CALLBACK(on_media_configure), NULL);
    return factory;
}

rly_feed_t *rly_factory_feed(GstRTSPMediaFactory *factory)
{
    if (!factory || !G_TYPE_CHECK_INSTANCE_TYPE(factory, factory_type()))
        return NULL;
    return ((RlyFactory *)factory)->feed;
}
