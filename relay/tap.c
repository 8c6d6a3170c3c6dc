/* The RTSP side of a feed: a media factory whose media is shared by every
 * client of one feed generation ("tap": appsrc ! payloader per stream).
 *
 * One shared media rather than a pipeline per client: a pipeline per client
 * costs a payloader, an RTP session and a handful of threads for every
 * client, and their hand-offs dominated the relay's CPU. Shared, a client
 * costs a send now and then (fanout.c: TCP clients get their packets from
 * there, starting on the cached GOP; UDP clients get the stream's own
 * packets and start at the next keyframe).
 *
 * The tap is fed the feed's units (whole access units, with the feed's
 * cached GOP first) through appsrc; a tap that falls too far behind skips
 * to the next keyframe, so a stalled pipeline never holds up the feed. */
#include "relay/relay_private.h"

#include <gst/app/gstappsrc.h>
#include <stdio.h>
#include <string.h>

#include "core/errors.h"
#include "core/util.h"

#define TAP_MAX_BYTES (4u * 1024 * 1024)
#define TCP_PAYLOAD_MTU 8192
/* A media without viewers this long is let go (rly_taps_release_idle). */
#define IDLE_RELEASE_US (10 * 1000000LL)
#define UDP_PAYLOAD_MTU 1400
/* Shared media a feed may have at once. One is current; older ones live on
 * only while a client that described or set one up (without playing) keeps
 * it, after an idle release or a change of parameters. The capture thread
 * hands every unit to each, so their number is bounded whatever clients do. */
#define MAX_TAPS_PER_FEED 8

struct rly_tap {
    atomic_int refs;
    rly_feed_t *feed;   /* a reference */
    GWeakRef media;
    GstElement *src[RLY_MAX_STREAMS];
    unsigned n_src;
    unsigned gen;       /* the feed generation its pipeline was built for */
    unsigned epoch;     /* the feed epoch it was built in (factory_gen_key) */
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
    rly_fan_t *fan[RLY_MAX_STREAMS]; /* each stream's TCP clients (fanout.c) */
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
static GQuark epoch_quark;
static GQuark tap_quark;
static GQuark played_quark; /* on a GstRTSPSessionMedia that had its first PLAY */

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
    for (unsigned k = 0; k < t->n_src; k++)
        rly_fan_leave(t->fan[k], sessmedia, client);
}

rly_feed_t *rly_media_feed(GstRTSPMedia *media)
{
    rly_tap_t *t = tap_of(media);
    return t ? t->feed : NULL;
}

void rly_tap_join(GstRTSPClient *client, GstRTSPSessionMedia *sm)
{
    GstRTSPMedia *media = sm ? gst_rtsp_session_media_get_media(sm) : NULL;
    rly_tap_t *t = tap_of(media);
    if (!t)
        return;
    guint n = MIN(gst_rtsp_media_n_streams(media), t->n_src);
    tap_leave(t, sm, NULL); /* PLAY again without PAUSE: start over */
    /* A session that played before (PLAY after PAUSE) has had packets up to
     * some point: replaying the cached GOP would step its sequence numbers
     * back, so it resumes at the next keyframe instead. */
    int resumed = g_object_get_qdata(G_OBJECT(sm), played_quark) != NULL;
    g_object_set_qdata(G_OBJECT(sm), played_quark, GINT_TO_POINTER(1));
    for (guint k = 0; k < n; k++) {
        GstRTSPStreamTransport *tr = gst_rtsp_session_media_get_transport(sm, k);
        const GstRTSPTransport *tt = tr ? gst_rtsp_stream_transport_get_transport(tr) : NULL;
        if (tt && tt->lower_transport == GST_RTSP_LOWER_TRANS_TCP)
            rly_fan_join(t->fan[k], tr, sm, client, !resumed);
    }
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
        rly_fan_free(t->fan[i]);
    }
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

int rly_taps_full(rly_feed_t *f)
{
    unsigned epoch = atomic_load(&f->epoch);
    int current = 0;
    pthread_mutex_lock(&f->lock);
    for (size_t i = 0; i < f->n_taps && !current; i++)
        current = f->taps[i]->gen == f->gen && f->taps[i]->epoch == epoch;
    int full = !current && f->n_taps >= MAX_TAPS_PER_FEED;
    pthread_mutex_unlock(&f->lock);
    return full;
}

/* ---- signals of the shared media ---- */

/* Puts t on the feed's list, to get units from its start (the cached GOP
 * first). 0 when t belongs to an older generation, or when the feed has
 * MAX_TAPS_PER_FEED already (rly_taps_full refuses that before a media is
 * built; this is for two clients racing past it): the epoch moves on then,
 * so that the refused media is not handed to the next client. */
static int tap_list(rly_feed_t *f, rly_tap_t *t)
{
    pthread_mutex_lock(&f->lock);
    int room = f->n_taps < MAX_TAPS_PER_FEED;
    int ok = !f->closed && t->gen == f->gen && t->n_src == f->n_streams && room;
    if (!room)
        atomic_fetch_add(&f->epoch, 1);
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
    for (unsigned k = 0; k < t->n_src; k++)
        rly_fan_clear(t->fan[k]);
    /* Each appsrc's callbacks hold a reference to t, and t holds the
     * appsrcs: neither would ever reach zero (a tap, its appsrcs and a feed
     * reference lost per media). The pipeline is stopped by now and a media
     * is never prepared again, so the callbacks go, and their references
     * with them; the media's own references to t go with the media. */
    GstAppSrcCallbacks none = {0};
    for (unsigned k = 0; k < t->n_src; k++)
        gst_app_src_set_callbacks(GST_APP_SRC(t->src[k]), &none, NULL, NULL);
    if (was_listed)
        tap_unref(t);
}

/* The fan-out of stream k, on payK's way in and out. f->lock held. */
static void tap_fan_init(rly_tap_t *t, GstBin *bin, unsigned k)
{
    rly_feed_t *f = t->feed;
    t->fan[k] = rly_fan_new(rly_codec_is_video(f->codec[k]),
                            (int64_t)f->srv->cfg->relay.send_interval_ms * 1000, &f->dropped_gops);
    char name[16];
    snprintf(name, sizeof(name), "pay%u", k);
    GstElement *pay = gst_bin_get_by_name(bin, name);
    if (pay) {
        rly_fan_attach(t->fan[k], pay);
        gst_object_unref(pay);
    }
}

static rly_tap_t *tap_new(rly_feed_t *f, GstRTSPMedia *media)
{
    rly_tap_t *t = g_new0(rly_tap_t, 1);
    atomic_init(&t->refs, 1);
    rly_feed_ref(f);
    t->feed = f;
    g_weak_ref_init(&t->media, media);
    GstElement *bin = gst_rtsp_media_get_element(media);
    t->gen = GPOINTER_TO_UINT(g_object_get_qdata(G_OBJECT(bin), gen_quark));
    t->epoch = GPOINTER_TO_UINT(g_object_get_qdata(G_OBJECT(bin), epoch_quark));
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
        rly_fan_drop_stream_tcp(GST_ELEMENT(pipe));
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
    g_object_set_qdata(G_OBJECT(bin), epoch_quark, GUINT_TO_POINTER(atomic_load(&f->epoch)));
    return bin;
}

/* Shared media are cached by this key: one media per source at a time,
 * whatever path under the mount a client names (the URL is left out: with
 * it, every new path built a pipeline of its own). A new generation (new
 * stream parameters) gets a media of its own while the old one closes; so
 * does a new epoch (rly_taps_release_idle lets an unwatched media go): the
 * old one is being torn down then, and a client handed it would get 503. */
static gchar *factory_gen_key(GstRTSPMediaFactory *factory, const GstRTSPUrl *url)
{
    (void)url;
    rly_feed_t *f = ((RlyFactory *)factory)->feed;
    pthread_mutex_lock(&f->lock);
    unsigned gen = f->gen;
    pthread_mutex_unlock(&f->lock);
    return g_strdup_printf("%u.%u", gen, (unsigned)atomic_load(&f->epoch));
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
    epoch_quark = g_quark_from_static_string("vigil-relay-epoch");
    tap_quark = g_quark_from_static_string("vigil-relay-tap");
    played_quark = g_quark_from_static_string("vigil-relay-played");
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
