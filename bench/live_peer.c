/* live_peer: the straightforward WebRTC live view that bench/bench_live.py
 * measures vigil's live module against: one complete GStreamer pipeline per
 * viewer, "rtspsrc ! depay ! pay ! webrtcbin", each with its own camera
 * connection, behind the same WHEP routes as vigild, so the same clients
 * drive both.
 *
 *   live_peer RTSP-URL     POST /api/v1/sources/{any}/whep, DELETE /api/v1/whep/{id}
 *
 * Non-trickle: the answer is sent once ICE gathering is complete. Prints
 * "READY port=N" once listening. Not part of vigil: a bench tool, built by
 * bench_live.py. */
#define GST_USE_UNSTABLE_API
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <glib-unix.h>
#include <gst/gst.h>
#include <gst/sdp/sdp.h>
#include <gst/webrtc/webrtc.h>
#include <microhttpd.h>

#define MAX_OFFER 65536
#define MAX_VIEWERS 256

typedef struct {
	int id;
	GstElement *pipe, *webrtc;
	GMutex lock;
	GCond cond;
	int done;         /* answer set and ICE gathering complete */
	char *answer;     /* SDP text, owned */
	int video_pt, audio_pt;
	char profile[16]; /* H.264 profile-level-id the offer takes */
} viewer_t;

static const char *g_url;
static viewer_t *g_viewers[MAX_VIEWERS];
static GMutex g_lock;
static int g_next_id = 1;

/* The offer's payload type for H.264 (packetization-mode=1, preferring
 * constrained baseline 42e01f, the profile a camera without B-frames
 * sends) and for PCMA. The answer must repeat the offer's profile-level-id
 * exactly or Chromium refuses the m-line. */
static void pick_codecs(GstSDPMessage *sdp, viewer_t *v)
{
	v->video_pt = v->audio_pt = -1;
	for (guint i = 0; i < gst_sdp_message_medias_len(sdp); i++) {
		const GstSDPMedia *m = gst_sdp_message_get_media(sdp, i);
		const char *a;
		/* GStreamer's caps from the SDP turn profile-level-id into
		 * profile/level fields; the fmtp line has it as offered */
		for (guint k = 0; (a = gst_sdp_media_get_attribute_val_n(m, "rtpmap", k)); k++) {
			int pt = atoi(a);
			if (strstr(a, " PCMA/8000") && v->audio_pt < 0)
				v->audio_pt = pt;
			if (!strstr(a, " H264/90000"))
				continue;
			const char *f;
			for (guint n = 0; (f = gst_sdp_media_get_attribute_val_n(m, "fmtp", n)); n++) {
				const char *pl = strstr(f, "profile-level-id=");
				if (atoi(f) != pt || !strstr(f, "packetization-mode=1") || !pl)
					continue;
				if (v->video_pt < 0 || g_ascii_strncasecmp(pl + 17, "42e01f", 6) == 0) {
					v->video_pt = pt;
					g_strlcpy(v->profile, pl + 17, 7);
				}
			}
		}
	}
}

static void on_gathering(GstElement *webrtc, GParamSpec *ps, viewer_t *v)
{
	(void)ps;
	GstWebRTCICEGatheringState st;
	g_object_get(webrtc, "ice-gathering-state", &st, NULL);
	if (st != GST_WEBRTC_ICE_GATHERING_STATE_COMPLETE)
		return;
	GstWebRTCSessionDescription *local = NULL;
	g_object_get(webrtc, "local-description", &local, NULL);
	g_mutex_lock(&v->lock);
	if (local && !v->done) {
		v->answer = gst_sdp_message_as_text(local->sdp);
		v->done = 1;
		g_cond_broadcast(&v->cond);
	}
	g_mutex_unlock(&v->lock);
	if (local)
		gst_webrtc_session_description_free(local);
}

/* rtspsrc's pads appear once the camera answered: video and audio each to
 * their depay ! pay chain, already linked to webrtcbin. */
static void on_rtsp_pad(GstElement *src, GstPad *pad, viewer_t *v)
{
	(void)src;
	GstCaps *caps = gst_pad_get_current_caps(pad);
	if (!caps)
		return;
	const char *media = gst_structure_get_string(gst_caps_get_structure(caps, 0), "media");
	const char *name = media && strcmp(media, "video") == 0 ? "vdepay" : "adepay";
	GstElement *depay = gst_bin_get_by_name(GST_BIN(v->pipe), name);
	if (depay) {
		GstPad *sink = gst_element_get_static_pad(depay, "sink");
		if (!gst_pad_is_linked(sink))
			gst_pad_link(pad, sink);
		gst_object_unref(sink);
		gst_object_unref(depay);
	}
	gst_caps_unref(caps);
}

static void on_answer(GstPromise *p, gpointer data)
{
	viewer_t *v = data;
	const GstStructure *r = gst_promise_get_reply(p);
	GstWebRTCSessionDescription *answer = NULL;
	if (r)
		gst_structure_get(r, "answer", GST_TYPE_WEBRTC_SESSION_DESCRIPTION, &answer, NULL);
	gst_promise_unref(p);
	if (!answer) {
		g_mutex_lock(&v->lock);
		v->done = -1;
		g_cond_broadcast(&v->cond);
		g_mutex_unlock(&v->lock);
		return;
	}
	g_signal_emit_by_name(v->webrtc, "set-local-description", answer, NULL);
	gst_webrtc_session_description_free(answer);
	/* media only now: linked earlier, the answer would say inactive */
	GstElement *q = gst_bin_get_by_name(GST_BIN(v->pipe), "vq");
	gst_element_link_pads(q, "src", v->webrtc, "sink_0");
	gst_object_unref(q);
	if ((q = gst_bin_get_by_name(GST_BIN(v->pipe), "aq"))) {
		gst_element_link_pads(q, "src", v->webrtc, "sink_1");
		gst_object_unref(q);
	}
	gst_element_set_state(v->pipe, GST_STATE_PLAYING);
}

static void on_remote_set(GstPromise *p, gpointer data)
{
	viewer_t *v = data;
	gst_promise_unref(p);
	g_signal_emit_by_name(v->webrtc, "create-answer", NULL,
			      gst_promise_new_with_change_func(on_answer, v, NULL));
}

static void add_transceiver(viewer_t *v, const char *caps_text, const char *pad_name)
{
	GstCaps *caps = gst_caps_from_string(caps_text);
	GstPad *pad = gst_element_request_pad_simple(v->webrtc, pad_name);
	GstWebRTCRTPTransceiver *tr = NULL;
	g_object_get(pad, "transceiver", &tr, NULL);
	g_object_set(tr, "direction", GST_WEBRTC_RTP_TRANSCEIVER_DIRECTION_SENDONLY,
		     "codec-preferences", caps, NULL);
	gst_object_unref(tr);
	gst_object_unref(pad);
	gst_caps_unref(caps);
}

static void viewer_free(viewer_t *v)
{
	if (!v)
		return;
	if (v->pipe) {
		gst_element_set_state(v->pipe, GST_STATE_NULL);
		gst_object_unref(v->pipe);
	}
	g_free(v->answer);
	g_mutex_clear(&v->lock);
	g_cond_clear(&v->cond);
	g_free(v);
}

/* Builds the viewer's pipeline for the offer; returns the answer (or NULL). */
static viewer_t *viewer_new(const char *offer_text)
{
	GstSDPMessage *sdp = NULL;
	viewer_t *v = g_new0(viewer_t, 1);
	g_mutex_init(&v->lock);
	g_cond_init(&v->cond);
	if (gst_sdp_message_new(&sdp) != GST_SDP_OK ||
	    gst_sdp_message_parse_buffer((const guint8 *)offer_text, strlen(offer_text), sdp) !=
		    GST_SDP_OK) {
		fprintf(stderr, "live_peer: the offer is not SDP\n");
		goto fail;
	}
	pick_codecs(sdp, v);
	if (v->video_pt < 0) {
		fprintf(stderr, "live_peer: the offer has no H.264 with packetization-mode 1\n");
		goto fail;
	}
	v->pipe = gst_pipeline_new(NULL);
	v->webrtc = gst_element_factory_make("webrtcbin", "w");
	g_object_set(v->webrtc, "bundle-policy", GST_WEBRTC_BUNDLE_POLICY_MAX_BUNDLE, NULL);
	gst_bin_add(GST_BIN(v->pipe), v->webrtc);
	char caps[256];
	snprintf(caps, sizeof(caps),
		 "application/x-rtp,media=video,encoding-name=H264,clock-rate=90000,payload=%d,"
		 "packetization-mode=(string)1,profile-level-id=(string)%s",
		 v->video_pt, v->profile);
	add_transceiver(v, caps, "sink_0");
	if (v->audio_pt >= 0) {
		snprintf(caps, sizeof(caps),
			 "application/x-rtp,media=audio,encoding-name=PCMA,clock-rate=8000,payload=%d",
			 v->audio_pt);
		add_transceiver(v, caps, "sink_1");
	}
	/* the media branch: built now, linked to webrtcbin once the answer is
	 * set (on_answer) */
	GstElement *src = gst_element_factory_make("rtspsrc", "src");
	g_object_set(src, "location", g_url, "protocols", 4 /* tcp */, "latency", 0, NULL);
	GstElement *vdepay = gst_element_factory_make("rtph264depay", "vdepay");
	GstElement *parse = gst_element_factory_make("h264parse", NULL);
	GstElement *vpay = gst_element_factory_make("rtph264pay", NULL);
	GstElement *vset = gst_element_factory_make("capssetter", NULL);
	GstElement *vq = gst_element_factory_make("queue", "vq");
	g_object_set(parse, "config-interval", -1, NULL);
	g_object_set(vpay, "pt", v->video_pt, "config-interval", -1, NULL);
	/* the payloader labels the stream with the SPS's profile (x264's
	 * constrained baseline is 42c01f); the answer must carry the offer's */
	snprintf(caps, sizeof(caps), "application/x-rtp,profile-level-id=(string)%s", v->profile);
	GstCaps *label = gst_caps_from_string(caps);
	g_object_set(vset, "caps", label, NULL);
	gst_caps_unref(label);
	gst_bin_add_many(GST_BIN(v->pipe), src, vdepay, parse, vpay, vset, vq, NULL);
	gst_element_link_many(vdepay, parse, vpay, vset, vq, NULL);
	if (v->audio_pt >= 0) {
		GstElement *adepay = gst_element_factory_make("rtppcmadepay", "adepay");
		GstElement *apay = gst_element_factory_make("rtppcmapay", NULL);
		GstElement *aq = gst_element_factory_make("queue", "aq");
		g_object_set(apay, "pt", v->audio_pt, NULL);
		gst_bin_add_many(GST_BIN(v->pipe), adepay, apay, aq, NULL);
		gst_element_link_many(adepay, apay, aq, NULL);
	}
	g_signal_connect(src, "pad-added", G_CALLBACK(on_rtsp_pad), v);
	g_signal_connect(v->webrtc, "notify::ice-gathering-state", G_CALLBACK(on_gathering), v);
	gst_element_set_state(v->pipe, GST_STATE_READY);
	GstWebRTCSessionDescription *offer =
		gst_webrtc_session_description_new(GST_WEBRTC_SDP_TYPE_OFFER, sdp);
	sdp = NULL; /* the description owns it */
	g_signal_emit_by_name(v->webrtc, "set-remote-description", offer,
			      gst_promise_new_with_change_func(on_remote_set, v, NULL));
	gst_webrtc_session_description_free(offer);
	gint64 until = g_get_monotonic_time() + 30 * G_TIME_SPAN_SECOND; /* a loaded machine */
	g_mutex_lock(&v->lock);
	while (!v->done && g_cond_wait_until(&v->cond, &v->lock, until))
		;
	int ok = v->done == 1;
	g_mutex_unlock(&v->lock);
	if (!ok) {
		fprintf(stderr, "live_peer: no answer (%s)\n", v->done ? "refused" : "timeout");
		goto fail;
	}
	return v;

fail:
	if (sdp)
		gst_sdp_message_free(sdp);
	viewer_free(v);
	return NULL;
}

typedef struct {
	char *body;
	size_t len;
} req_t;

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
			     const char *text, const char *location)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(r, "Content-Type", type);
	if (location)
		MHD_add_response_header(r, "Location", location);
	enum MHD_Result ret = MHD_queue_response(c, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *data,
				  size_t *size, void **ctx)
{
	(void)cls;
	(void)version;
	req_t *rq = *ctx;
	if (!rq) {
		*ctx = g_new0(req_t, 1);
		return MHD_YES;
	}
	if (*size) {
		if (rq->len + *size > MAX_OFFER)
			return MHD_NO;
		rq->body = g_realloc(rq->body, rq->len + *size + 1);
		memcpy(rq->body + rq->len, data, *size);
		rq->len += *size;
		rq->body[rq->len] = '\0';
		*size = 0;
		return MHD_YES;
	}
	if (strcmp(method, "POST") == 0 && g_str_has_suffix(url, "/whep") && rq->body) {
		viewer_t *v = viewer_new(rq->body);
		if (!v)
			return reply(c, 406, "application/json", "{\"error\":\"cannot answer\"}", NULL);
		g_mutex_lock(&g_lock);
		int slot = -1;
		for (int i = 0; i < MAX_VIEWERS && slot < 0; i++)
			if (!g_viewers[i])
				slot = i;
		if (slot >= 0) {
			v->id = g_next_id++;
			g_viewers[slot] = v;
		}
		g_mutex_unlock(&g_lock);
		if (slot < 0) {
			viewer_free(v);
			return reply(c, 503, "application/json", "{\"error\":\"full\"}", NULL);
		}
		char loc[64];
		snprintf(loc, sizeof(loc), "/api/v1/whep/%d", v->id);
		return reply(c, 201, "application/sdp", v->answer, loc);
	}
	if (strcmp(method, "DELETE") == 0 && g_str_has_prefix(url, "/api/v1/whep/")) {
		int id = atoi(url + 13);
		viewer_t *v = NULL;
		g_mutex_lock(&g_lock);
		for (int i = 0; i < MAX_VIEWERS; i++) {
			if (g_viewers[i] && g_viewers[i]->id == id) {
				v = g_viewers[i];
				g_viewers[i] = NULL;
			}
		}
		g_mutex_unlock(&g_lock);
		viewer_free(v);
		return reply(c, v ? 204 : 404, "application/json", "", NULL);
	}
	return reply(c, 404, "application/json", "{\"error\":\"not found\"}", NULL);
}

static void on_done(void *cls, struct MHD_Connection *c, void **ctx,
		    enum MHD_RequestTerminationCode code)
{
	(void)cls;
	(void)c;
	(void)code;
	req_t *rq = *ctx;
	if (rq) {
		g_free(rq->body);
		g_free(rq);
	}
}

static gboolean on_quit(gpointer loop)
{
	g_main_loop_quit(loop);
	return G_SOURCE_CONTINUE;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: live_peer RTSP-URL\n");
		return 2;
	}
	g_url = argv[1];
	gst_init(NULL, NULL);
	GMainLoop *loop = g_main_loop_new(NULL, FALSE);
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct MHD_Daemon *d = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
		on_request, NULL, MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_NOTIFY_COMPLETED, on_done,
		NULL, MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "live_peer: cannot listen\n");
		return 1;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	g_unix_signal_add(SIGINT, on_quit, loop);
	g_unix_signal_add(SIGTERM, on_quit, loop);
	printf("READY port=%u\n", info ? info->port : 0);
	fflush(stdout);
	g_main_loop_run(loop);
	MHD_stop_daemon(d);
	for (int i = 0; i < MAX_VIEWERS; i++)
		viewer_free(g_viewers[i]);
	g_main_loop_unref(loop);
	return 0;
}
