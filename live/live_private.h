/* Shared by the files of live/ only. */
#ifndef LIVE_LIVE_PRIVATE_H
#define LIVE_LIVE_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <gst/gst.h>

#include "core/log.h"
#include "core/rebase.h"
#include "live/live.h"

/* ---- sdp.c: offers (pure) ---- */

typedef enum {
    LIVE_C_NONE,
    LIVE_C_H264,
    LIVE_C_H265,
    LIVE_C_PCMA,
    LIVE_C_PCMU,
    LIVE_C_OPUS,
    LIVE_C_AAC,
} live_codec_t;

live_codec_t live_codec_of(enum AVCodecID id);
const char *live_codec_name(live_codec_t c);

#define LIVE_SDP_MAX_MEDIA 8
#define LIVE_SDP_MAX_FMTS 48

enum { LIVE_DIR_SENDRECV, LIVE_DIR_RECVONLY, LIVE_DIR_SENDONLY, LIVE_DIR_INACTIVE };

typedef struct {
    int pt;
    char name[24];     /* encoding name as offered (H264, PCMA, opus) */
    int clock, channels;
    char fmtp[256];
} live_sdp_fmt_t;

typedef struct {
    char kind[8];      /* video | audio | application | other */
    int port;          /* 0: rejected by the offerer */
    int rtp;           /* an RTP profile (not a data channel) */
    int dir;           /* LIVE_DIR_*, as the offerer sees it */
    char mid[32];
    live_sdp_fmt_t fmt[LIVE_SDP_MAX_FMTS];
    int n_fmt;
} live_sdp_media_t;

typedef struct {
    live_sdp_media_t media[LIVE_SDP_MAX_MEDIA];
    int n_media;
    int has_fingerprint, has_ice;
} live_sdp_offer_t;

/* Parses an offer of at most LIVE_SDP_MAX bytes. VG_EINVAL with a reason in
 * why for anything that is not a usable WebRTC offer. */
int live_sdp_parse(const char *text, size_t len, live_sdp_offer_t *o, char *why,
                   size_t why_size);
/* The value of key in fmtp text ("a=1;b=2"): 1 and out filled, else 0. */
int live_sdp_fmtp_get(const char *fmtp, const char *key, char *out, size_t size);
/* The payload type of m to send codec c with, or -1: for H.264 one with
 * packetization-mode=1 whose profile-level-id suits a stream of profile
 * profile_idc (constrained: constraint_set1, i.e. constrained baseline),
 * copied into plid (the answer must repeat it exactly). m must let us send. */
int live_sdp_pick(const live_sdp_media_t *m, live_codec_t c, int profile_idc, int constrained,
                  char *plid, size_t plid_size);

/* H.264 profile_idc, constraint byte and level_idc of the first SPS in
 * Annex-B or avcC extradata; VG_ENOTFOUND when there is none. */
int live_h264_sps_info(const uint8_t *d, size_t n, int *profile, int *constraints, int *level);
/* 1 when an Annex-B access unit carries an SPS before its first slice. */
int live_au_has_sps(const uint8_t *d, size_t n);

/* ---- server.c ---- */

#define LIVE_MAX_STREAMS 2 /* one video, one audio */

enum { LIVE_T_WEBRTC, LIVE_T_MSE };
enum { LIVE_S_CONNECTING, LIVE_S_CONNECTED, LIVE_S_DISCONNECTED, LIVE_S_FAILED };

typedef struct live_session live_session_t;
typedef struct live_mse live_mse_t;

struct live_session {
    atomic_int refs;
    live_t *live;
    char id[LIVE_ID_MAX];
    char source[64], owner[96], user[96];
    int transport;
    int64_t started_wall, started_mono;
    live_hooks_t hooks;
    int64_t next_check;          /* housekeeping thread only */
    int64_t disconnected_since;  /* housekeeping thread only */
    atomic_int state;            /* LIVE_S_* */
    atomic_int ending;           /* asked to end: reason in end_reason */
    const char *end_reason;
    int ended;                   /* under live->lock: out of the list, hooks called */
    live_feed_t *feed;           /* a reference */

    /* WebRTC (whep.c); pushes happen under feed->lock */
    GstElement *pipeline, *webrtc;
    GstElement *src[LIVE_MAX_STREAMS]; /* appsrc per feed stream slot, or NULL */
    int pt[LIVE_MAX_STREAMS];          /* payload type the viewer negotiated */
    int src_pt[LIVE_MAX_STREAMS];      /* payload type of the feed's packets */
    guint ssrc[LIVE_MAX_STREAMS];      /* their SSRC */
    int started;                       /* the cached GOP went in */
    int wait_key;                      /* skipping to the next keyframe */
    GMutex gather_lock;
    GCond gather_cond;
    int gathered;

    /* MSE (mse.c) */
    live_mse_t *mse;
};

struct live {
    const vg_config_t *cfg;
    pthread_mutex_t lock;        /* sessions, counts, feeds */
    pthread_cond_t wake;
    live_session_t **sessions;
    size_t n_sessions, cap_sessions;
    int pending;                 /* slots reserved by offers being negotiated */
    /* the same per owner, so one account's offers in flight count against
     * its own limit too (a reservation holds for the whole negotiation) */
    struct live_pending { char owner[96]; int n; } *pending_by;
    size_t n_pending_by;
    live_feed_t **feeds;
    size_t n_feeds;
    int stop;
    int closing;                 /* live_shutdown: no new sessions */
    pthread_t thread;
    int thread_started;
    char *pem;                   /* the DTLS certificate and key, made once */
};

/* Ref counting of sessions. */
live_session_t *live_session_ref(live_session_t *s);
void live_session_unref(live_session_t *s);
/* Asks the housekeeping thread to end s with reason (first reason wins). */
void live_session_request_end(live_session_t *s, const char *reason);
/* Reserves a viewer slot for owner: 0, or the HTTP status (503) with the
 * reason in msg. */
int live_reserve(live_t *l, const char *owner, char *msg, size_t size);
void live_unreserve(live_t *l, const char *owner);
/* Lists s (its slot reserved) as a running session. */
void live_session_add(live_t *l, live_session_t *s);
live_session_t *live_session_new(live_t *l, int transport, const char *source,
                                 const char *owner, const char *user, const live_hooks_t *h);
/* The feed of source with a reference, or NULL. */
live_feed_t *live_find_feed(live_t *l, const char *source);

/* ---- feed.c ---- */

typedef struct {
    int present;
    live_codec_t codec;
    int video;
    int profile, constraints, level; /* H.264 */
    int sample_rate, channels;
    AVRational tb;
    AVCodecParameters *par;        /* a copy, for the MP4 muxer */
} live_stream_info_t;

struct live_feed {
    atomic_int refs;
    live_t *live;
    char name[64];
    vg_source_kind_t kind;

    pthread_mutex_t lock;          /* everything below */
    int closed;
    int up;                        /* a connection is up */
    unsigned gen;                  /* bumped when the streams change */
    live_stream_info_t st[LIVE_MAX_STREAMS]; /* slot 0 video, 1 audio */
    int map[16];                   /* capture stream -> slot, -1 */
    unsigned n_map;
    int bframes;                   /* video presentation order differed from decode order */
    int64_t last_pts_v;            /* this connection's last video PTS (camera time, ns) */
    uint8_t *params;               /* Annex-B SPS/PPS from extradata */
    size_t params_len;
    vg_rebase_t clock;             /* camera time -> the feed's timeline */
    int64_t last_ns[LIVE_MAX_STREAMS]; /* the last DTS given out per slot */

    /* the packetizer (feed.c): appsrc ! payloader ! appsink per slot */
    GstElement *pay_pipeline;
    GstElement *pay_src[LIVE_MAX_STREAMS];
    int pay_pt[LIVE_MAX_STREAMS];
    guint pay_ssrc[LIVE_MAX_STREAMS]; /* told to viewers in the answer (a=ssrc) */
    int pay_wait_key;
    int pay_started;
    uint32_t last_rtp_ts;
    int last_rtp_ts_known;
    /* RTP packets since the last keyframe: what a new viewer starts with */
    GstBuffer **gop;
    int *gop_slot;
    size_t n_gop, cap_gop, gop_bytes;
    int gop_valid;
    /* raw packets since the last keyframe (for MSE viewers) */
    AVPacket **raw;
    size_t n_raw, cap_raw, raw_bytes;
    int raw_valid;

    live_session_t **viewers;      /* WebRTC and MSE sessions fed from here */
    size_t n_viewers, cap_viewers;
    /* retired packetizers, stopped by the housekeeping thread: never under
     * this lock, which their streaming threads take in on_rtp */
    GstElement **dead;
    size_t n_dead, cap_dead;
};

void live_feed_ref(live_feed_t *f);
void live_feed_unref(live_feed_t *f);
/* Starts the packetizer if needed; VG_OK when the feed can serve WebRTC
 * now, VG_EBUSY when its streams changed meanwhile (try again), VG_EMEDIA
 * when it cannot. f->lock NOT held: it is built outside, installed under. */
int live_feed_pay_ensure(live_feed_t *f);
/* Adds/removes a viewer (takes/drops a reference). */
void live_feed_add_viewer(live_feed_t *f, live_session_t *s);
void live_feed_remove_viewer(live_feed_t *f, live_session_t *s);
/* A WebRTC viewer's transport is up: it gets the cached GOP, then live. */
void live_feed_viewer_connected(live_feed_t *f, live_session_t *s);
/* Why WebRTC cannot carry the feed now ("" when it can), f->lock held. */
void live_feed_webrtc_reason(live_feed_t *f, char *why, size_t size, char *codec,
                             size_t codec_size);
/* Logs the errors and warnings of a pipeline of ours (data: the source
 * name, g_free'd with the handler). */
GstBusSyncReply live_on_bus(GstBus *bus, GstMessage *msg, gpointer data);
/* Stops the packetizers retired meanwhile (housekeeping thread, f->lock NOT
 * held). */
void live_feed_reap(live_feed_t *f);

/* ---- whep.c ---- */

/* Tears down a WebRTC session's pipeline (not on a GStreamer thread). */
void live_whep_teardown(live_session_t *s);

/* ---- mse.c ---- */

/* A packet for an MSE viewer (capture thread, f->lock held): queued, never
 * blocks. */
void live_mse_packet(live_session_t *s, const AVPacket *pkt, int slot, int key);
void live_mse_free(live_mse_t *m);
/* Muxes what is queued (the housekeeping thread). */
void live_mse_pump(live_t *l);
/* Ends the stream for the reader. */
void live_mse_finish(live_session_t *s);

#endif
