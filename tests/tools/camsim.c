/* camsim: a camera and PBX-line simulator for vigil's tests and benchmarks.
 *
 * Serves live RTSP mounts on 127.0.0.1 with gst-rtsp-server: small generated
 * H.264 (with and without B-frames), H.265 and G.711/AAC/Opus audio, a /flaky
 * mount that SIGUSR1/SIGUSR2 take down and bring back, an /h264-jump mount
 * whose RTP timestamps go back 30 s on each SIGHUP (an encoder restart),
 * and (bench mode) N mounts replaying one pre-encoded 1080p H.264 clip in
 * real time without any encoding, so a benchmark measures vigil and not the
 * simulator. Call lines with known content for the calls tests: /line-talk
 * (A-law: 3 s of speech-like sound, then 10 s of silence, over and over)
 * and, with --line-wav NAME=FILE, /line-NAME playing FILE (8 kHz mono
 * 16-bit WAV) in a loop as A-law.
 *
 * stdout is a line protocol the tests read (each line flushed):
 *   READY port=N         server listening
 *   CLIENT open <ip>     an RTSP connection was accepted
 *   CLIENT close         an RTSP connection ended
 *   PLAY <path>          a client sent PLAY
 *   FLAKY down|up        /flaky was removed / re-added
 *   JUMP back            /h264-jump's RTP timestamps go back (SIGHUP)
 * Diagnostics go to stderr.
 */
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib-unix.h>
#include <gst/gst.h>
#include <gst/rtsp-server/rtsp-server.h>

#define FLAKY_PATH "/flaky"
#define MAX_BENCH_MOUNTS 1000
#define MAX_LINE_WAVS 8

/* How often a bench pacer looks again while its pipeline is not yet playing. */
#define PACER_IDLE_MS 10

/* The bench loader gives up after this many 100 ms polls without data. */
#define CLIP_STALL_POLLS 100

/* ---- media descriptions ------------------------------------------------ */

/* 320x240 at 25 fps keeps the encoders cheap; the ball moves, so a decoded
 * frame shows that time passes. I420 is pinned because x265enc otherwise
 * takes videotestsrc's 4:4:4 12-bit and produces a Rext stream that few
 * decoders (and no camera) use. */
#define VIDEO_SRC                                                          \
	"videotestsrc is-live=true pattern=ball ! "                        \
	"video/x-raw,format=I420,width=320,height=240,framerate=25/1 ! "

/* threads=1: frame threading would add frames of latency and CPU for
 * nothing at this size. key-int-max=25: one keyframe per second. */
#define H264_ZEROLAT                                                       \
	"x264enc tune=zerolatency speed-preset=ultrafast threads=1 "       \
	"key-int-max=25 bitrate=400 ! "                                    \
	"rtph264pay name=pay0 pt=96 config-interval=-1"

/* tune=zerolatency would force bframes=0, so it is left out here;
 * b-adapt=false makes every GOP use the fixed I/P B B pattern. The profile
 * caps matter: left free, x264enc negotiates constrained-baseline with
 * rtph264pay, and baseline has no B-frames. */
#define H264_BFRAMES                                                       \
	"x264enc speed-preset=ultrafast threads=1 bframes=2 b-adapt=false " \
	"key-int-max=25 bitrate=400 ! video/x-h264,profile=main ! "        \
	"rtph264pay name=pay0 pt=96 config-interval=-1"

#define H265_ZEROLAT                                                       \
	"x265enc tune=zerolatency speed-preset=ultrafast key-int-max=25 "  \
	"bitrate=300 option-string=\"pools=1:frame-threads=1\" ! "        \
	"video/x-h265,profile=main ! rtph265pay name=pay0 pt=96 config-interval=-1"

/* 20 ms audio buffers, like the packetisation of a real PBX gateway. */
#define AUDIO_SRC(rate, spb)                                               \
	"audiotestsrc is-live=true wave=sine freq=440 volume=0.3 "         \
	"samplesperbuffer=" spb " ! "                                      \
	"audio/x-raw,format=S16LE,rate=" rate ",channels=1 ! "
#define AUDIO_8K AUDIO_SRC("8000", "160")

typedef struct {
	const char *path;
	const char *launch;
} MountSpec;

static const MountSpec fixed_mounts[] = {
	{ "/h264", "( " VIDEO_SRC H264_ZEROLAT " )" },
	{ "/h264b", "( " VIDEO_SRC H264_BFRAMES " )" },
	{ "/h265", "( " VIDEO_SRC H265_ZEROLAT " )" },
	{ "/cam-g711", "( " VIDEO_SRC H264_ZEROLAT " " AUDIO_8K
		       "alawenc ! rtppcmapay name=pay1 pt=8 )" },
	{ "/line-pcma", "( " AUDIO_8K "alawenc ! rtppcmapay name=pay0 pt=8 )" },
	{ "/line-pcmu", "( " AUDIO_8K "mulawenc ! rtppcmupay name=pay0 pt=0 )" },
	{ "/line-opus", "( " AUDIO_SRC("48000", "960")
			"opusenc bitrate=32000 ! rtpopuspay name=pay0 pt=97 )" },
	/* the live view benchmark's camera: 720p25 H.264 (no B-frames) + PCMA,
	 * a keyframe every 2 s (50 frames: the usual default of office cameras;
	 * a viewer that waits for the next keyframe waits 1 s on average) */
	{ "/cam720-g711", "( videotestsrc is-live=true pattern=ball ! "
			  "video/x-raw,format=I420,width=1280,height=720,framerate=25/1 ! "
			  "x264enc tune=zerolatency speed-preset=ultrafast threads=1 "
			  "key-int-max=50 bitrate=2000 ! "
			  "rtph264pay name=pay0 pt=96 config-interval=-1 " AUDIO_8K
			  "alawenc ! rtppcmapay name=pay1 pt=8 )" },
};

#define FLAKY_LAUNCH "( " VIDEO_SRC H264_ZEROLAT " )"

/* /h264-longgop: a keyframe only every --key-int frames (default 250, 10 s),
 * like an intra-refresh camera or a very long GOP; scenecut=0 keeps x264
 * from adding keyframes of its own. */
#define DEFAULT_LONG_GOP_FRAMES 250
#define H264_LONG_GOP_FMT                                                  \
	"( " VIDEO_SRC "x264enc tune=zerolatency speed-preset=ultrafast "  \
	"threads=1 key-int-max=%u option-string=\"scenecut=0\" "          \
	"bitrate=400 ! rtph264pay name=pay0 pt=96 config-interval=-1 )"

/* The bench clip is pushed by a pacer (below), so the pipeline only
 * payloads: no demuxing, parsing or encoding per mount. */
#define BENCH_LAUNCH                                                       \
	"( appsrc name=src is-live=true format=time do-timestamp=false "   \
	"max-bytes=0 ! rtph264pay name=pay0 pt=96 config-interval=-1 )"

/* ---- application state ------------------------------------------------- */

typedef struct {
	GstCaps *caps;       /* avc caps with codec_data, for the appsrc */
	GPtrArray *frames;   /* GstBuffer*, one access unit each, decode order */
	GstClockTime dts0;   /* decode time of the first frame */
	GstClockTime period; /* clip length; the replay loops with this step */
} BenchClip;

typedef struct {
	GMainLoop *loop;
	GstRTSPServer *server;
	GstRTSPMountPoints *mounts;
	gboolean flaky_up;
	BenchClip *clip;
} App;

typedef struct {
	unsigned port;
	const char *bench_file;
	unsigned bench_mounts;
	unsigned key_int;    /* frames between keyframes on /h264-longgop */
	const char *line_wav[MAX_LINE_WAVS]; /* --line-wav NAME=FILE */
	unsigned n_line_wav;
} Options;

/* SIGHUPs received so far: each moves /h264-jump's RTP timestamps back
 * (g_atomic_int: read by a streaming thread). */
static gint jumps;

/* Marks every GstRTSPMedia built by a /flaky factory, so SIGUSR1 can find
 * the sessions playing it whatever URL the client used. */
static GQuark flaky_quark;

/* ---- output ------------------------------------------------------------ */

/* Client signals arrive on the server's client thread, the rest on the main
 * loop: the lock keeps each line whole, the flush lets tests see it now. */
static void say(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	flockfile(stdout);
	vfprintf(stdout, fmt, ap);
	fputc('\n', stdout);
	fflush(stdout);
	funlockfile(stdout);
	va_end(ap);
}

/* ---- client events ----------------------------------------------------- */

static void on_client_closed(GstRTSPClient *client, gpointer data)
{
	(void)client;
	(void)data;
	say("CLIENT close");
}

static void on_play_request(GstRTSPClient *client, GstRTSPContext *ctx,
			    gpointer data)
{
	(void)client;
	(void)data;
	if (ctx == NULL || ctx->uri == NULL || ctx->uri->abspath == NULL)
		return;
	/* Clients PLAY the aggregate URL, often with a trailing '/': print the
	 * mount path as it was configured. */
	gchar *path = g_strdup(ctx->uri->abspath);
	gsize n = strlen(path);
	while (n > 1 && path[n - 1] == '/')
		path[--n] = '\0';
	say("PLAY %s", path);
	g_free(path);
}

/* gst_rtsp_connection_get_ip() lives in libgstrtsp, which the Makefile's
 * camsim rule does not link (only gstreamer-1.0 and the rtsp-server). The
 * library is loaded anyway, as a dependency of libgstrtspserver, so the
 * symbol is looked up at run time instead of widening the link line. */
typedef const gchar *(*GetIpFunc)(const GstRTSPConnection *conn);

static const gchar *client_ip(GstRTSPClient *client)
{
	static GetIpFunc get_ip;
	GstRTSPConnection *conn = gst_rtsp_client_get_connection(client);

	if (get_ip == NULL)
		*(void **)&get_ip =
			dlsym(RTLD_DEFAULT, "gst_rtsp_connection_get_ip");
	if (conn == NULL || get_ip == NULL)
		return "unknown";
	const gchar *ip = get_ip(conn);
	return ip ? ip : "unknown";
}

/* 1 when every set-up sending stream of media can say its segment's rates.
 * gst-rtsp-server 1.22 answers PLAY with the media's rates and aborts the
 * process (g_assert in gst_rtsp_media_get_rates) when a complete stream has
 * none yet: a client playing a shared media before data reached its stream
 * (many clients at once, a loaded machine). */
static gboolean media_rates_ready(GstRTSPMedia *media)
{
	guint n = gst_rtsp_media_n_streams(media);

	for (guint i = 0; i < n; i++) {
		GstRTSPStream *st = gst_rtsp_media_get_stream(media, i);
		gdouble rate, applied;

		if (st != NULL && gst_rtsp_stream_is_complete(st) &&
		    gst_rtsp_stream_is_sender(st) &&
		    !gst_rtsp_stream_get_rates(st, &rate, &applied))
			return FALSE;
	}
	return TRUE;
}

/* Before PLAY: waits up to 2 s for the rates, else answers 503 (the client
 * tries again) instead of letting the library abort the simulator. */
static GstRTSPStatusCode on_pre_play_request(GstRTSPClient *client,
					     GstRTSPContext *ctx, gpointer data)
{
	(void)client;
	(void)data;
	GstRTSPMedia *media = ctx && ctx->sessmedia ?
		gst_rtsp_session_media_get_media(ctx->sessmedia) : NULL;

	if (media == NULL)
		return GST_RTSP_STS_OK;
	for (int i = 0; i < 200; i++) {
		if (media_rates_ready(media))
			return GST_RTSP_STS_OK;
		g_usleep(10000);
	}
	g_printerr("camsim: PLAY refused (503): no data reached the stream in 2 s\n");
	return GST_RTSP_STS_SERVICE_UNAVAILABLE;
}

static void on_client_connected(GstRTSPServer *server, GstRTSPClient *client,
				gpointer data)
{
	(void)server;
	(void)data;
	say("CLIENT open %s", client_ip(client));
	g_signal_connect(client, "closed", G_CALLBACK(on_client_closed), NULL);
	g_signal_connect(client, "play-request", G_CALLBACK(on_play_request),
			 NULL);
	g_signal_connect(client, "pre-play-request",
			 G_CALLBACK(on_pre_play_request), NULL);
}

/* ---- mounts ------------------------------------------------------------ */

/* Shared: every client of a mount gets the same live pipeline, as with a
 * real camera, and a mount costs one encoder however many readers it has. */
static GstRTSPMediaFactory *make_factory(const char *launch)
{
	GstRTSPMediaFactory *factory = gst_rtsp_media_factory_new();

	gst_rtsp_media_factory_set_launch(factory, launch);
	gst_rtsp_media_factory_set_shared(factory, TRUE);
	return factory;
}

static void add_mount(App *app, const char *path, const char *launch)
{
	gst_rtsp_mount_points_add_factory(app->mounts, path,
					  make_factory(launch));
}

static const char *pick_aac_encoder(void)
{
	static const char *const candidates[] = { "avenc_aac", "voaacenc" };

	for (size_t i = 0; i < G_N_ELEMENTS(candidates); i++) {
		GstElementFactory *f = gst_element_factory_find(candidates[i]);
		if (f != NULL) {
			gst_object_unref(f);
			return candidates[i];
		}
	}
	return NULL;
}

/* AAC depends on which optional GStreamer plugins are installed, so the
 * mount is built at run time and skipped (with a warning) when none is. */
static void add_aac_mount(App *app)
{
	const char *enc = pick_aac_encoder();

	if (enc == NULL) {
		fprintf(stderr, "camsim: warning: no AAC encoder "
				"(avenc_aac, voaacenc); /line-aac not served\n");
		return;
	}
	gchar *launch = g_strdup_printf(
		"( " AUDIO_8K "audioconvert ! %s bitrate=24000 ! "
		"rtpmp4gpay name=pay0 pt=96 )", enc);
	add_mount(app, "/line-aac", launch);
	g_free(launch);
}

/* ---- /flaky ------------------------------------------------------------ */

static void mark_flaky_media(GstRTSPMediaFactory *factory,
			     GstRTSPMedia *media, gpointer data)
{
	(void)factory;
	(void)data;
	g_object_set_qdata(G_OBJECT(media), flaky_quark, GINT_TO_POINTER(1));
}

static void flaky_add(App *app)
{
	/* A new factory each time, so clients get a fresh media rather than
	 * the shared one the old factory may still be tearing down. */
	GstRTSPMediaFactory *factory = make_factory(FLAKY_LAUNCH);

	g_signal_connect(factory, "media-constructed",
			 G_CALLBACK(mark_flaky_media), NULL);
	gst_rtsp_mount_points_add_factory(app->mounts, FLAKY_PATH, factory);
	app->flaky_up = TRUE;
}

/* Session filter: drop the session's /flaky media (stops its RTP, also for
 * UDP clients) and tell the caller that this session had one. */
static GstRTSPFilterResult drop_flaky_media(GstRTSPSession *sess,
					    GstRTSPSessionMedia *sm,
					    gpointer found)
{
	(void)sess;
	GstRTSPMedia *media = gst_rtsp_session_media_get_media(sm);

	if (media == NULL ||
	    g_object_get_qdata(G_OBJECT(media), flaky_quark) == NULL)
		return GST_RTSP_FILTER_KEEP;
	*(gboolean *)found = TRUE;
	return GST_RTSP_FILTER_REMOVE;
}

static GstRTSPFilterResult scan_client_session(GstRTSPClient *client,
					       GstRTSPSession *sess,
					       gpointer found)
{
	(void)client;
	g_list_free(gst_rtsp_session_filter(sess, drop_flaky_media, found));
	return GST_RTSP_FILTER_KEEP;
}

/* Server filter: REMOVE makes the server close the client's connection, so
 * a TCP reader sees EOF at once instead of waiting for an RTP timeout. */
static GstRTSPFilterResult close_flaky_client(GstRTSPServer *server,
					      GstRTSPClient *client,
					      gpointer data)
{
	(void)server;
	(void)data;
	gboolean found = FALSE;

	g_list_free(gst_rtsp_client_session_filter(client, scan_client_session,
						   &found));
	return found ? GST_RTSP_FILTER_REMOVE : GST_RTSP_FILTER_KEEP;
}

/* Sessions outlive their RTSP connection (a UDP client may have closed
 * it): drop whatever /flaky media the pool still holds. */
static GstRTSPFilterResult pool_drop_flaky(GstRTSPSessionPool *pool,
					   GstRTSPSession *sess,
					   gpointer data)
{
	(void)pool;
	(void)data;
	gboolean found = FALSE;

	g_list_free(gst_rtsp_session_filter(sess, drop_flaky_media, &found));
	return GST_RTSP_FILTER_KEEP;
}

static gboolean on_sigusr1(gpointer data)
{
	App *app = data;

	if (app->flaky_up) {
		/* Unmount first, so a client reconnecting at once gets 404. */
		gst_rtsp_mount_points_remove_factory(app->mounts, FLAKY_PATH);
		app->flaky_up = FALSE;
		g_list_free(gst_rtsp_server_client_filter(
			app->server, close_flaky_client, NULL));
		GstRTSPSessionPool *pool =
			gst_rtsp_server_get_session_pool(app->server);
		g_list_free(gst_rtsp_session_pool_filter(pool, pool_drop_flaky,
							 NULL));
		g_object_unref(pool);
	}
	say("FLAKY down");
	return G_SOURCE_CONTINUE;
}

static gboolean on_sigusr2(gpointer data)
{
	App *app = data;

	if (!app->flaky_up)
		flaky_add(app);
	say("FLAKY up");
	return G_SOURCE_CONTINUE;
}

static gboolean on_quit_signal(gpointer data)
{
	App *app = data;

	g_main_loop_quit(app->loop);
	return G_SOURCE_CONTINUE;
}

/* ---- /h264-jump ------------------------------------------------------- */

/* An encoder restarting mid-connection with a new RTP timestamp base: the
 * RTP timestamps of what the payloader sends go back 30 s on each SIGHUP
 * (the connection, SSRC and sequence numbers stay; the buffers' own times
 * are left alone, so the server sends on time). A client mapping
 * timestamps naively stays frozen for those 30 s. Not more: libavformat
 * takes a timestamp over a minute before the connection's first for a wrap
 * of the 32-bit RTP clock, i.e. a jump of hours ahead. The jump is made
 * between access units (after a packet with the marker bit). */
#define JUMP_PATH "/h264-jump"
#define JUMP_BACK_TICKS (30u * 90000u) /* 30 s of H.264's 90 kHz clock */

typedef struct {
	gint done;       /* the jumps made, of those asked for */
	guint32 offset;  /* added to every RTP timestamp */
	gboolean au_end; /* the last packet ended an access unit */
} Jump;

static gboolean jump_packet(GstBuffer **buf, guint idx, gpointer data)
{
	(void)idx;
	Jump *j = data;
	guint8 h[8];

	if (gst_buffer_extract(*buf, 0, h, sizeof(h)) != sizeof(h))
		return TRUE;
	gint asked = g_atomic_int_get(&jumps);
	if (asked != j->done && j->au_end) {
		j->offset -= JUMP_BACK_TICKS * (guint32)(asked - j->done);
		j->done = asked;
	}
	j->au_end = (h[1] & 0x80) != 0;
	guint32 ts = ((guint32)h[4] << 24 | (guint32)h[5] << 16 |
		      (guint32)h[6] << 8 | h[7]) + j->offset;
	h[4] = (guint8)(ts >> 24);
	h[5] = (guint8)(ts >> 16);
	h[6] = (guint8)(ts >> 8);
	h[7] = (guint8)ts;
	*buf = gst_buffer_make_writable(*buf);
	gst_buffer_fill(*buf, 4, h + 4, 4);
	return TRUE;
}

static GstPadProbeReturn jump_probe(GstPad *pad, GstPadProbeInfo *info,
				    gpointer data)
{
	(void)pad;
	if (info->type & GST_PAD_PROBE_TYPE_BUFFER_LIST) {
		GstBufferList *list = gst_buffer_list_make_writable(
			GST_PAD_PROBE_INFO_BUFFER_LIST(info));
		gst_buffer_list_foreach(list, jump_packet, data);
		GST_PAD_PROBE_INFO_DATA(info) = list;
	} else {
		GstBuffer *buf = GST_PAD_PROBE_INFO_BUFFER(info);
		jump_packet(&buf, 0, data);
		GST_PAD_PROBE_INFO_DATA(info) = buf;
	}
	return GST_PAD_PROBE_OK;
}

static void on_jump_media_configure(GstRTSPMediaFactory *factory,
				    GstRTSPMedia *media, gpointer data)
{
	(void)factory;
	(void)data;
	GstElement *bin = gst_rtsp_media_get_element(media);
	GstElement *pay = gst_bin_get_by_name(GST_BIN(bin), "pay0");
	GstPad *pad = pay ? gst_element_get_static_pad(pay, "src") : NULL;

	if (pad != NULL) {
		Jump *j = g_new0(Jump, 1);

		j->done = g_atomic_int_get(&jumps);
		j->au_end = TRUE;
		gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER |
				  GST_PAD_PROBE_TYPE_BUFFER_LIST, jump_probe,
				  j, g_free);
		gst_object_unref(pad);
	}
	if (pay != NULL)
		gst_object_unref(pay);
	gst_object_unref(bin);
}

static void add_jump_mount(App *app)
{
	GstRTSPMediaFactory *factory = make_factory("( " VIDEO_SRC H264_ZEROLAT " )");

	g_signal_connect(factory, "media-configure",
			 G_CALLBACK(on_jump_media_configure), NULL);
	gst_rtsp_mount_points_add_factory(app->mounts, JUMP_PATH, factory);
}

static gboolean on_sighup(gpointer data)
{
	(void)data;
	g_atomic_int_inc(&jumps);
	say("JUMP back");
	return G_SOURCE_CONTINUE;
}

/* ---- bench clip -------------------------------------------------------- */

static GstClockTime frame_dts(const GstBuffer *buf)
{
	return GST_BUFFER_DTS_IS_VALID(buf) ? GST_BUFFER_DTS(buf)
					    : GST_BUFFER_PTS(buf);
}

static void clip_free(BenchClip *clip)
{
	if (clip == NULL)
		return;
	if (clip->caps != NULL)
		gst_caps_unref(clip->caps);
	if (clip->frames != NULL)
		g_ptr_array_unref(clip->frames);
	g_free(clip);
}

/* Takes the first error the loader posted, NULL if none. */
static gchar *loader_error(GstBus *bus)
{
	GstMessage *msg = gst_bus_pop_filtered(bus, GST_MESSAGE_ERROR);
	GError *err = NULL;

	if (msg == NULL)
		return NULL;
	gst_message_parse_error(msg, &err, NULL);
	gchar *text = g_strdup(err->message);
	g_error_free(err);
	gst_message_unref(msg);
	return text;
}

static void clip_add_sample(BenchClip *clip, GstSample *sample)
{
	GstBuffer *buf = gst_sample_get_buffer(sample);
	GstCaps *caps = gst_sample_get_caps(sample);

	if (clip->caps == NULL && caps != NULL)
		clip->caps = gst_caps_ref(caps);
	if (buf != NULL && GST_CLOCK_TIME_IS_VALID(frame_dts(buf)) &&
	    GST_BUFFER_PTS_IS_VALID(buf))
		g_ptr_array_add(clip->frames, gst_buffer_ref(buf));
}

/* Pulls every access unit into memory; returns NULL or why it failed.
 * The appsink signals are used rather than gst_app_sink_* so camsim links
 * only what the Makefile gives it. Pulls are short because a file the
 * demuxer rejects posts an error but never reaches EOS. */
static gchar *clip_pull_all(GstElement *pipeline, GstElement *sink,
			    BenchClip *clip)
{
	GstBus *bus = gst_element_get_bus(pipeline);
	gchar *why = NULL;
	guint idle = 0;

	if (gst_element_set_state(pipeline, GST_STATE_PLAYING) ==
	    GST_STATE_CHANGE_FAILURE)
		why = loader_error(bus);
	while (why == NULL) {
		GstSample *sample = NULL;
		gboolean eos = FALSE;

		g_signal_emit_by_name(sink, "try-pull-sample",
				      (GstClockTime)(100 * GST_MSECOND),
				      &sample);
		if (sample != NULL) {
			clip_add_sample(clip, sample);
			gst_sample_unref(sample);
			idle = 0;
			continue;
		}
		g_object_get(sink, "eos", &eos, NULL);
		if (eos)
			break;
		why = loader_error(bus);
		if (why == NULL && ++idle == CLIP_STALL_POLLS)
			why = g_strdup("no data");
	}
	gst_object_unref(bus);
	return why;
}

/* The loop step is the span of the decode times plus one frame, so the
 * replay keeps the clip's frame rate across the wrap. */
static gboolean clip_set_period(BenchClip *clip)
{
	guint n = clip->frames->len;

	if (n < 2)
		return FALSE;
	GstBuffer *first = g_ptr_array_index(clip->frames, 0);
	GstBuffer *last = g_ptr_array_index(clip->frames, n - 1);
	clip->dts0 = frame_dts(first);
	GstClockTime span = frame_dts(last) - clip->dts0;
	GstClockTime step = GST_BUFFER_DURATION_IS_VALID(last)
				    ? GST_BUFFER_DURATION(last)
				    : span / (n - 1);
	clip->period = span + step;
	return frame_dts(last) > clip->dts0;
}

static BenchClip *clip_load(const char *file)
{
	GError *err = NULL;
	GstElement *pipeline = gst_parse_launch(
		"filesrc name=src ! qtdemux ! h264parse ! "
		"video/x-h264,stream-format=avc,alignment=au ! "
		"appsink name=sink sync=false", &err);
	if (pipeline == NULL) {
		fprintf(stderr, "camsim: bench loader: %s\n", err->message);
		g_error_free(err);
		return NULL;
	}
	GstElement *src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
	GstElement *sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
	BenchClip *clip = g_new0(BenchClip, 1);
	clip->frames = g_ptr_array_new_with_free_func(
		(GDestroyNotify)gst_buffer_unref);
	g_object_set(src, "location", file, NULL);

	gchar *why = clip_pull_all(pipeline, sink, clip);
	if (why == NULL && (clip->caps == NULL || !clip_set_period(clip)))
		why = g_strdup("no H.264 video track");
	if (why != NULL) {
		fprintf(stderr, "camsim: cannot load bench file %s: %s\n",
			file, why);
		g_free(why);
		clip_free(clip);
		clip = NULL;
	}
	gst_element_set_state(pipeline, GST_STATE_NULL);
	gst_object_unref(src);
	gst_object_unref(sink);
	gst_object_unref(pipeline);
	return clip;
}

/* ---- bench pacer ------------------------------------------------------- */

/* One pacer per bench media. It runs on the main loop (not on the client
 * thread that is blocked preparing the media) and pushes each frame when its
 * decode time comes, restamped onto the pipeline's running time: real-time
 * output, B-frame PTS/DTS kept, seamless looping, and no dependence on
 * whether the RTSP sinks sync to the clock. */
typedef struct {
	const BenchClip *clip;
	GstElement *appsrc;  /* owned ref */
	GWeakRef media;      /* tells us when the media is gone */
	GstClockTime origin; /* running time of loop 0's first frame */
	guint index;         /* next frame to push */
	guint64 loop;        /* completed passes over the clip */
} Pacer;

static void pacer_free(Pacer *p)
{
	gst_object_unref(p->appsrc);
	g_weak_ref_clear(&p->media);
	g_free(p);
}

/* A pacer stops once its media is finalized, or torn down (state back to
 * READY/NULL) after having played: unprepared media is not reused, a new
 * client gets a new media and a new pacer. PAUSED keeps it: running time
 * stands still then, so the schedule resumes where it was.
 * (gst_rtsp_media_get_status() is no use here: it blocks while preparing.) */
static gboolean pacer_done(Pacer *p)
{
	GstRTSPMedia *media = g_weak_ref_get(&p->media);

	if (media == NULL)
		return TRUE;
	g_object_unref(media);
	if (!GST_CLOCK_TIME_IS_VALID(p->origin))
		return FALSE;
	GST_OBJECT_LOCK(p->appsrc);
	GstState state = GST_STATE(p->appsrc);
	GST_OBJECT_UNLOCK(p->appsrc);
	return state < GST_STATE_PAUSED;
}

static GstClockTime pacer_due(const Pacer *p)
{
	const GstBuffer *f = g_ptr_array_index(p->clip->frames, p->index);

	return p->origin + p->loop * p->clip->period +
	       (frame_dts(f) - p->clip->dts0);
}

static void pacer_push(Pacer *p, GstClockTime dts)
{
	GstBuffer *f = g_ptr_array_index(p->clip->frames, p->index);
	/* A shallow copy: new timestamps, same (shared) memory. */
	GstBuffer *out = gst_buffer_copy(f);
	GstFlowReturn ret;

	GST_BUFFER_DTS(out) = dts;
	GST_BUFFER_PTS(out) = dts + (GST_BUFFER_PTS(f) - frame_dts(f));
	if (p->loop > 0 || p->index > 0)
		GST_BUFFER_FLAG_UNSET(out, GST_BUFFER_FLAG_DISCONT);
	g_signal_emit_by_name(p->appsrc, "push-buffer", out, &ret);
	gst_buffer_unref(out);

	if (++p->index == p->clip->frames->len) {
		p->index = 0;
		p->loop++;
	}
}

static gboolean pacer_tick(gpointer data);

static void pacer_schedule(Pacer *p, guint ms)
{
	g_timeout_add(ms, pacer_tick, p);
}

static gboolean pacer_tick(gpointer data)
{
	Pacer *p = data;

	if (pacer_done(p)) {
		pacer_free(p);
		return G_SOURCE_REMOVE;
	}
	/* NONE until the pipeline is PLAYING and has a clock. */
	GstClockTime now = gst_element_get_current_running_time(p->appsrc);
	if (!GST_CLOCK_TIME_IS_VALID(now)) {
		pacer_schedule(p, PACER_IDLE_MS);
		return G_SOURCE_REMOVE;
	}
	if (!GST_CLOCK_TIME_IS_VALID(p->origin))
		p->origin = now;

	/* Push everything due by now, at most one clip's worth, so a stalled
	 * main loop catches up without spinning. */
	GstClockTime due = pacer_due(p);
	for (guint n = 0; due <= now && n < p->clip->frames->len; n++) {
		pacer_push(p, due);
		due = pacer_due(p);
	}
	guint64 wait_ms = due > now ? (due - now) / GST_MSECOND : 0;
	pacer_schedule(p, (guint)MAX(wait_ms, 1));
	return G_SOURCE_REMOVE;
}

static void on_bench_media_configure(GstRTSPMediaFactory *factory,
				     GstRTSPMedia *media, gpointer data)
{
	(void)factory;
	const BenchClip *clip = data;
	GstElement *bin = gst_rtsp_media_get_element(media);
	GstElement *src = gst_bin_get_by_name(GST_BIN(bin), "src");

	gst_object_unref(bin);
	if (src == NULL)
		return;
	g_object_set(src, "caps", clip->caps, NULL);

	Pacer *p = g_new0(Pacer, 1);
	p->clip = clip;
	p->appsrc = src;
	p->origin = GST_CLOCK_TIME_NONE;
	g_weak_ref_init(&p->media, media);
	/* g_timeout_add attaches to the default context: the main loop's. */
	pacer_schedule(p, PACER_IDLE_MS);
}

static void add_bench_mounts(App *app, unsigned count)
{
	for (unsigned i = 0; i < count; i++) {
		gchar *path = g_strdup_printf("/bench%u", i);
		GstRTSPMediaFactory *factory = make_factory(BENCH_LAUNCH);
		g_signal_connect(factory, "media-configure",
				 G_CALLBACK(on_bench_media_configure),
				 app->clip);
		gst_rtsp_mount_points_add_factory(app->mounts, path, factory);
		g_free(path);
	}
}

/* ---- call lines with known content ------------------------------------ */

/* A loop of 8 kHz mono PCM pushed in 20 ms buffers when due by the
 * pipeline's running time (like the bench pacer), then A-law encoded: a PBX
 * line whose talk spurts the tests know. */
#define LINE_RATE 8000
#define LINE_CHUNK 160 /* 20 ms */
#define LINE_LAUNCH                                                        \
	"( appsrc name=src is-live=true format=time do-timestamp=false "   \
	"caps=audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved ! " \
	"alawenc ! rtppcmapay name=pay0 pt=8 )"

typedef struct {
	gint16 *pcm;
	gsize n;
} LineClip;

typedef struct {
	const LineClip *clip;
	GstElement *appsrc;
	GWeakRef media;
	GstClockTime origin;
	guint64 chunk; /* next 20 ms chunk to push, counted from origin */
} LinePacer;

/* /line-talk: 3 s of a speech-like sound (a harmonic series on a gliding
 * pitch, in syllables of 200 ms) then 10 s of digital silence. */
static LineClip *talk_clip(void)
{
	LineClip *c = g_new0(LineClip, 1);
	c->n = 13 * LINE_RATE;
	c->pcm = g_new0(gint16, c->n);
	for (gsize i = 0; i < 3 * LINE_RATE; i++) {
		double t = (double)i / LINE_RATE;
		double syl = fmod(t, 0.2) / 0.2; /* 0..1 within a syllable */
		double env = syl < 0.85 ? sin(G_PI * syl / 0.85) : 0.0;
		double f0 = 110.0 + 40.0 * sin(2 * G_PI * 0.7 * t);
		double v = 0.0, phase = 2 * G_PI * (110.0 * t - 40.0 / (2 * G_PI * 0.7) *
						    (cos(2 * G_PI * 0.7 * t) - 1.0));
		for (int h = 1; h * f0 < 3400; h++)
			v += sin(h * phase) / (1.0 + fabs(h * f0 - 700.0) / 300.0);
		c->pcm[i] = (gint16)(3000.0 * env * v);
	}
	return c;
}

/* A WAV of 8 kHz mono 16-bit PCM (what sox -r 8000 -c 1 -b 16 writes). */
static LineClip *wav_clip(const char *path)
{
	gchar *data = NULL;
	gsize len = 0;
	GError *err = NULL;
	if (!g_file_get_contents(path, &data, &len, &err)) {
		fprintf(stderr, "camsim: %s\n", err->message);
		g_error_free(err);
		return NULL;
	}
	LineClip *c = NULL;
	const guint8 *d = (const guint8 *)data;
	gsize pos = 12;
	int fmt_ok = 0;
	if (len < 12 || memcmp(d, "RIFF", 4) != 0 || memcmp(d + 8, "WAVE", 4) != 0)
		goto bad;
	while (pos + 8 <= len) {
		guint32 sz = d[pos + 4] | d[pos + 5] << 8 | d[pos + 6] << 16 | (guint32)d[pos + 7] << 24;
		const guint8 *body = d + pos + 8;
		if (sz > len - pos - 8)
			sz = (guint32)(len - pos - 8);
		if (memcmp(d + pos, "fmt ", 4) == 0 && sz >= 16)
			fmt_ok = body[0] == 1 && body[1] == 0 && body[2] == 1 &&
				 (body[4] | body[5] << 8) == LINE_RATE && body[14] == 16;
		if (memcmp(d + pos, "data", 4) == 0 && fmt_ok && sz >= 2 * LINE_CHUNK) {
			c = g_new0(LineClip, 1);
			c->n = sz / 2;
			c->pcm = g_new(gint16, c->n);
			for (gsize i = 0; i < c->n; i++)
				c->pcm[i] = (gint16)(body[2 * i] | body[2 * i + 1] << 8);
			break;
		}
		pos += 8 + (gsize)sz + (sz & 1);
	}
bad:
	if (c == NULL)
		fprintf(stderr, "camsim: %s is not an 8 kHz mono 16-bit WAV\n", path);
	g_free(data);
	return c;
}

static gboolean line_tick(gpointer data);

static void line_pacer_free(LinePacer *p)
{
	gst_object_unref(p->appsrc);
	g_weak_ref_clear(&p->media);
	g_free(p);
}

static gboolean line_tick(gpointer data)
{
	LinePacer *p = data;
	GstRTSPMedia *media = g_weak_ref_get(&p->media);
	if (media == NULL) {
		line_pacer_free(p);
		return G_SOURCE_REMOVE;
	}
	g_object_unref(media);
	GstClockTime now = gst_element_get_current_running_time(p->appsrc);
	if (!GST_CLOCK_TIME_IS_VALID(now)) {
		if (GST_CLOCK_TIME_IS_VALID(p->origin)) {
			GST_OBJECT_LOCK(p->appsrc);
			GstState state = GST_STATE(p->appsrc);
			GST_OBJECT_UNLOCK(p->appsrc);
			if (state < GST_STATE_PAUSED) {
				line_pacer_free(p);
				return G_SOURCE_REMOVE;
			}
		}
		g_timeout_add(PACER_IDLE_MS, line_tick, p);
		return G_SOURCE_REMOVE;
	}
	if (!GST_CLOCK_TIME_IS_VALID(p->origin))
		p->origin = now;
	/* everything due by now, at most 5 s of it (a stalled main loop) */
	for (int k = 0; k < 250; k++) {
		GstClockTime due = p->origin + p->chunk * 20 * GST_MSECOND;
		if (due > now)
			break;
		gsize at = (gsize)((p->chunk * LINE_CHUNK) % p->clip->n);
		GstBuffer *b = gst_buffer_new_allocate(NULL, 2 * LINE_CHUNK, NULL);
		GstMapInfo map;
		gst_buffer_map(b, &map, GST_MAP_WRITE);
		gint16 *out = (gint16 *)map.data;
		for (int i = 0; i < LINE_CHUNK; i++)
			out[i] = p->clip->pcm[(at + (gsize)i) % p->clip->n];
		gst_buffer_unmap(b, &map);
		GST_BUFFER_PTS(b) = due;
		GST_BUFFER_DURATION(b) = 20 * GST_MSECOND;
		GstFlowReturn ret;
		g_signal_emit_by_name(p->appsrc, "push-buffer", b, &ret);
		gst_buffer_unref(b);
		p->chunk++;
	}
	g_timeout_add(10, line_tick, p);
	return G_SOURCE_REMOVE;
}

static void on_line_media_configure(GstRTSPMediaFactory *factory, GstRTSPMedia *media,
				    gpointer data)
{
	(void)factory;
	GstElement *bin = gst_rtsp_media_get_element(media);
	GstElement *src = gst_bin_get_by_name(GST_BIN(bin), "src");
	gst_object_unref(bin);
	if (src == NULL)
		return;
	LinePacer *p = g_new0(LinePacer, 1);
	p->clip = data;
	p->appsrc = src;
	p->origin = GST_CLOCK_TIME_NONE;
	g_weak_ref_init(&p->media, media);
	g_timeout_add(PACER_IDLE_MS, line_tick, p);
}

static void add_line_mount(App *app, const char *path, LineClip *clip)
{
	GstRTSPMediaFactory *factory = make_factory(LINE_LAUNCH);
	g_signal_connect(factory, "media-configure", G_CALLBACK(on_line_media_configure), clip);
	gst_rtsp_mount_points_add_factory(app->mounts, path, factory);
}

/* Returns FALSE when a --line-wav file cannot be used. */
static gboolean add_line_mounts(App *app, const Options *opt)
{
	add_line_mount(app, "/line-talk", talk_clip());
	for (unsigned i = 0; i < opt->n_line_wav; i++) {
		const char *eq = strchr(opt->line_wav[i], '=');
		LineClip *clip = wav_clip(eq + 1);
		if (clip == NULL)
			return FALSE;
		gchar *name = g_strndup(opt->line_wav[i], (gsize)(eq - opt->line_wav[i]));
		gchar *path = g_strdup_printf("/line-%s", name);
		add_line_mount(app, path, clip);
		g_free(path);
		g_free(name);
	}
	return TRUE;
}

/* ---- setup ------------------------------------------------------------- */

static void usage(void)
{
	fprintf(stderr,
		"usage: camsim [--port N] [--key-int N] [--bench-file F --bench-mounts K]\n"
		"  --port N          listen on 127.0.0.1:N (0 = any free port)\n"
		"  --key-int N       frames between keyframes on /h264-longgop (default 250)\n"
		"  --bench-file F    MP4 with one H.264 track, replayed in a loop\n"
		"  --bench-mounts K  serve it on /bench0 .. /bench<K-1>\n"
		"  --line-wav N=F    serve /line-N playing WAV F (8 kHz mono 16-bit) in a loop\n");
}

static gboolean parse_uint(const char *s, unsigned max, unsigned *out)
{
	char *end;

	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > max)
		return FALSE;
	*out = (unsigned)v;
	return TRUE;
}

static gboolean parse_args(int argc, char **argv, Options *opt)
{
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		gboolean ok;

		if (v == NULL)
			return FALSE;
		if (strcmp(a, "--port") == 0)
			ok = parse_uint(v, 65535, &opt->port);
		else if (strcmp(a, "--key-int") == 0)
			ok = parse_uint(v, 100000, &opt->key_int) && opt->key_int > 0;
		else if (strcmp(a, "--bench-mounts") == 0)
			ok = parse_uint(v, MAX_BENCH_MOUNTS,
					&opt->bench_mounts);
		else if (strcmp(a, "--bench-file") == 0) {
			opt->bench_file = v;
			ok = v[0] != '\0';
		} else if (strcmp(a, "--line-wav") == 0) {
			const char *eq = strchr(v, '=');
			ok = opt->n_line_wav < MAX_LINE_WAVS && eq != NULL && eq != v && eq[1] != '\0';
			for (const char *c = v; ok && c < eq; c++)
				ok = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-';
			if (ok)
				opt->line_wav[opt->n_line_wav++] = v;
		} else
			ok = FALSE;
		if (!ok)
			return FALSE;
		i++;
	}
	/* The two bench options only make sense together. */
	return (opt->bench_file == NULL) == (opt->bench_mounts == 0);
}

static gboolean add_line_mounts(App *app, const Options *opt);

static gboolean add_all_mounts(App *app, const Options *opt)
{
	for (size_t i = 0; i < G_N_ELEMENTS(fixed_mounts); i++)
		add_mount(app, fixed_mounts[i].path, fixed_mounts[i].launch);
	add_aac_mount(app);
	gchar *long_gop = g_strdup_printf(H264_LONG_GOP_FMT,
		opt->key_int ? opt->key_int : DEFAULT_LONG_GOP_FRAMES);
	add_mount(app, "/h264-longgop", long_gop);
	g_free(long_gop);
	flaky_add(app);
	add_jump_mount(app);
	if (app->clip != NULL)
		add_bench_mounts(app, opt->bench_mounts);
	return add_line_mounts(app, opt);
}

/* Returns the attach source id, 0 on failure. */
static guint start_server(App *app, unsigned port)
{
	gchar *service = g_strdup_printf("%u", port);

	app->server = gst_rtsp_server_new();
	gst_rtsp_server_set_address(app->server, "127.0.0.1");
	gst_rtsp_server_set_service(app->server, service);
	g_free(service);
	app->mounts = gst_rtsp_server_get_mount_points(app->server);
	g_signal_connect(app->server, "client-connected",
			 G_CALLBACK(on_client_connected), NULL);
	return gst_rtsp_server_attach(app->server, NULL);
}

/* Runs the server until SIGINT/SIGTERM. Returns the exit status. */
static int serve(App *app, const Options *opt)
{
	guint server_id = start_server(app, opt->port);

	if (server_id == 0) {
		fprintf(stderr, "camsim: cannot listen on 127.0.0.1:%u\n",
			opt->port);
		return 1;
	}
	if (!add_all_mounts(app, opt)) {
		g_source_remove(server_id);
		return 1;
	}
	guint sig_ids[] = {
		g_unix_signal_add(SIGINT, on_quit_signal, app),
		g_unix_signal_add(SIGTERM, on_quit_signal, app),
		g_unix_signal_add(SIGUSR1, on_sigusr1, app),
		g_unix_signal_add(SIGUSR2, on_sigusr2, app),
		g_unix_signal_add(SIGHUP, on_sighup, app),
	};
	say("READY port=%d", gst_rtsp_server_get_bound_port(app->server));
	g_main_loop_run(app->loop);

	for (size_t i = 0; i < G_N_ELEMENTS(sig_ids); i++)
		g_source_remove(sig_ids[i]);
	g_source_remove(server_id);
	return 0;
}

int main(int argc, char **argv)
{
	Options opt = { 0 };
	App app = { 0 };
	int rc = 1;

	if (!parse_args(argc, argv, &opt)) {
		usage();
		return 2;
	}
	gst_init(NULL, NULL);
	flaky_quark = g_quark_from_static_string("camsim-flaky");
	app.loop = g_main_loop_new(NULL, FALSE);

	if (opt.bench_file != NULL)
		app.clip = clip_load(opt.bench_file);
	if (opt.bench_file == NULL || app.clip != NULL)
		rc = serve(&app, &opt);

	/* Pacers still scheduled keep their own refs; they die with the
	 * process, which is about to end. */
	if (app.mounts != NULL)
		g_object_unref(app.mounts);
	if (app.server != NULL)
		g_object_unref(app.server);
	clip_free(app.clip);
	g_main_loop_unref(app.loop);
	return rc;
}
