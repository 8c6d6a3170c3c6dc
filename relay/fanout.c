/* The fan-out of one stream of a tap to its TCP clients ("viewers").
 *
 * It takes the payloader's RTP packets as they leave it, keeps those since
 * the last keyframe (a new TCP client gets them first, so its first frame is
 * a keyframe within milliseconds of PLAY) and hands them to the clients
 * itself; the copies gst-rtsp-server would send its TCP clients are dropped
 * at the door of its appsink (rly_fan_drop_stream_tcp). UDP clients get the
 * stream's own packets.
 *
 * Bounded: a client that reads too slowly skips to the next keyframe once
 * its backlog passes VIEWER_MAX_BYTES (whole GOPs are dropped, never parts of
 * one); sends never block, so one client never holds up another or the feed. */
#include "relay/relay_private.h"

#include <gst/app/gstappsink.h> /* GST_IS_APP_SINK */
#include <string.h>

#define VIEWER_MAX_BYTES (4u * 1024 * 1024)
#define RTP_GOP_MAX_BYTES (16u * 1024 * 1024)
/* Packets per send: the client's connection queues at most 100 messages
 * (gst-rtsp-server's backlog) and closes the client beyond that. */
#define SEND_BATCH 32

/* One TCP client of the stream. */
typedef struct {
    GWeakRef trans;              /* the client's GstRTSPStreamTransport */
    const void *sessmedia;       /* identity: PAUSE and TEARDOWN name it */
    const void *client;          /* identity: a closed connection names it */
    GPtrArray *pending;          /* RTP buffers not yet taken by the client */
    size_t pending_bytes;
    int wait_key;
} viewer_t;

struct rly_fan {
    pthread_mutex_t lock;         /* everything below; taken after the feed's lock, never before */
    int video;
    int64_t send_interval_us;     /* [relay] send_interval_ms */
    atomic_llong *dropped_gops;   /* the feed's count */
    int key_next;    /* the payloader's next output starts a keyframe */
    GPtrArray *gop;  /* RTP packets since the last keyframe start */
    size_t gop_bytes;
    int gop_valid;
    GPtrArray *viewers;
    int64_t sent_us; /* monotonic: when the viewers were last handed their packets */
};

/* Marks an appsink pad whose queue already drops (drop_stream_rtp). */
static GQuark seen_quark(void)
{
    static gsize quark;
    if (g_once_init_enter(&quark))
        g_once_init_leave(&quark, g_quark_from_static_string("vigil-relay-fan-seen"));
    return (GQuark)quark;
}

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
 * rest waits for the next send. A send refused means the
 * client still has data queued on this channel (or is closing). Returns 0
 * once the client is gone. fn->lock held. */
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
 * fn->lock held. */
static void fan_packet(rly_fan_t *fn, GstBuffer *b, int key_start)
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
            atomic_fetch_add(fn->dropped_gops, 1);
        }
    }
}

static void fan_flush(rly_fan_t *fn)
{
    for (guint i = 0; i < fn->viewers->len;) {
        if (viewer_flush(g_ptr_array_index(fn->viewers, i)))
            i++;
        else
            g_ptr_array_remove_index_fast(fn->viewers, i); /* the client is gone */
    }
}

static void fan_buffer_list(rly_fan_t *fn, GstBufferList *list, int key_start)
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
static int fan_due(rly_fan_t *fn)
{
    if (fn->send_interval_us <= 0)
        return 1;
    int64_t now = g_get_monotonic_time();
    if (now - fn->sent_us < fn->send_interval_us)
        return 0;
    fn->sent_us = now;
    return 1;
}

/* The payloader's output, on its way to the RTSP stream (the tap's
 * streaming thread): a copy of every packet goes to the TCP clients. */
static GstPadProbeReturn on_rtp_out(GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
    (void)pad;
    rly_fan_t *fn = data;
    pthread_mutex_lock(&fn->lock);
    int key = fn->key_next;
    fn->key_next = 0;
    if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST)
        fan_buffer_list(fn, GST_PAD_PROBE_INFO_BUFFER_LIST(info), key);
    else if (GST_PAD_PROBE_INFO_BUFFER(info))
        fan_packet(fn, GST_PAD_PROBE_INFO_BUFFER(info), key);
    if (fan_due(fn))
        fan_flush(fn);
    pthread_mutex_unlock(&fn->lock);
    return GST_PAD_PROBE_OK;
}

/* The payloader is about to packetize a unit: mark its packets when the
 * unit is a keyframe (feed units carry DELTA_UNIT otherwise). Runs on the
 * same thread as on_rtp_out, right before it. */
static GstPadProbeReturn on_tcp_unit(GstPad *pad, GstPadProbeInfo *info, gpointer data)
{
    (void)pad;
    rly_fan_t *fn = data;
    GstBuffer *b = GST_PAD_PROBE_INFO_BUFFER(info);
    if (b && !GST_BUFFER_FLAG_IS_SET(b, GST_BUFFER_FLAG_DELTA_UNIT)) {
        pthread_mutex_lock(&fn->lock);
        fn->key_next = 1;
        pthread_mutex_unlock(&fn->lock);
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
    if (!data && !g_object_get_qdata(G_OBJECT(pad), seen_quark())) {
        /* the appsink's probe, at its first RTP packet */
        g_object_set_qdata(G_OBJECT(pad), seen_quark(), GINT_TO_POINTER(1));
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

rly_fan_t *rly_fan_new(int video, int64_t send_interval_us, atomic_llong *dropped_gops)
{
    rly_fan_t *fn = g_new0(rly_fan_t, 1);
    pthread_mutex_init(&fn->lock, NULL);
    fn->video = video;
    fn->send_interval_us = send_interval_us;
    fn->dropped_gops = dropped_gops;
    fn->gop = g_ptr_array_new_with_free_func((GDestroyNotify)gst_buffer_unref);
    fn->viewers = g_ptr_array_new_with_free_func(viewer_free);
    return fn;
}

void rly_fan_free(rly_fan_t *fn)
{
    if (!fn)
        return;
    g_ptr_array_unref(fn->gop);
    g_ptr_array_unref(fn->viewers);
    pthread_mutex_destroy(&fn->lock);
    g_free(fn);
}

void rly_fan_attach(rly_fan_t *fn, GstElement *payloader)
{
    GstPad *in = gst_element_get_static_pad(payloader, "sink");
    GstPad *out = gst_element_get_static_pad(payloader, "src");
    if (in)
        gst_pad_add_probe(in, GST_PAD_PROBE_TYPE_BUFFER, on_tcp_unit, fn, NULL);
    if (out)
        gst_pad_add_probe(out, GST_PAD_PROBE_TYPE_BUFFER | GST_PAD_PROBE_TYPE_BUFFER_LIST,
                          on_rtp_out, fn, NULL);
    if (in)
        gst_object_unref(in);
    if (out)
        gst_object_unref(out);
}

void rly_fan_join(rly_fan_t *fn, GstRTSPStreamTransport *tr, const void *sessmedia,
                  const void *client, int from_gop)
{
    pthread_mutex_lock(&fn->lock);
    viewer_t *v = viewer_new(tr, sessmedia, client);
    if (from_gop && fn->video && fn->gop_valid) {
        for (guint i = 0; i < fn->gop->len; i++)
            viewer_queue(v, g_ptr_array_index(fn->gop, i));
    } else {
        v->wait_key = fn->video;
    }
    g_ptr_array_add(fn->viewers, v);
    viewer_flush(v);
    pthread_mutex_unlock(&fn->lock);
}

void rly_fan_leave(rly_fan_t *fn, const void *sessmedia, const void *client)
{
    pthread_mutex_lock(&fn->lock);
    GPtrArray *vs = fn->viewers;
    for (guint i = 0; i < vs->len;) {
        const viewer_t *v = g_ptr_array_index(vs, i);
        if (sessmedia ? v->sessmedia == sessmedia : v->client == client)
            g_ptr_array_remove_index_fast(vs, i);
        else
            i++;
    }
    pthread_mutex_unlock(&fn->lock);
}

void rly_fan_clear(rly_fan_t *fn)
{
    pthread_mutex_lock(&fn->lock);
    g_ptr_array_set_size(fn->viewers, 0);
    g_ptr_array_set_size(fn->gop, 0);
    fn->gop_bytes = 0;
    fn->gop_valid = 0;
    pthread_mutex_unlock(&fn->lock);
}

void rly_fan_drop_stream_tcp(GstElement *pipeline)
{
    g_signal_connect(pipeline, "deep-element-added", G_CALLBACK(on_element_added), NULL);
}
