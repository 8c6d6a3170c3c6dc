/* Shared by the files of relay/ only. */
#ifndef RLY_RELAY_PRIVATE_H
#define RLY_RELAY_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <gst/gst.h>
#include <gst/rtsp-server/rtsp-server.h>

#include "core/log.h"
#include "core/rebase.h"
#include "index/index.h"
#include "relay/relay.h"

#define RLY_MAX_STREAMS 4

/* ---- codec.c: pure helpers ---- */

typedef enum { RLY_C_NONE, RLY_C_H264, RLY_C_H265, RLY_C_PCMA, RLY_C_PCMU, RLY_C_AAC, RLY_C_OPUS } rly_codec_t;

rly_codec_t rly_codec_of(enum AVCodecID id);
int rly_codec_is_video(rly_codec_t c);
/* 1 when data starts with an Annex-B start code. */
int rly_is_annexb(const uint8_t *data, size_t size);
/* 1 when an Annex-B access unit has an SPS before its first slice. */
int rly_au_has_params(rly_codec_t c, const uint8_t *data, size_t size);

/* url with credentials and query masked, for logs. */
void rly_url_for_log(const char *url, char *out, size_t size);

/* ---- creds.c: who an RTSP client is ---- */

typedef struct {
    char actor[96];     /* user:NAME | token:ID, as in the audit trail */
    unsigned perms;     /* WEB_PERM_* */
    int all_sources;
    char sources[IDX_LIST_TEXT_MAX]; /* comma-separated when !all_sources */
    /* What the credential was checked against, so a live session can be
     * re-checked without the secret: the token's id, or the account's name
     * and the password hash it had (a new password changes the hash). */
    int64_t token_id;   /* 0: an account */
    char user[64];
    char pwhash[128];
    int64_t gen;        /* the accounts generation it was checked at */
} rly_principal_t;

typedef struct rly_creds rly_creds_t;

int rly_creds_open(const char *db_path, const vg_clock_t *clock, rly_creds_t **out);
void rly_creds_close(rly_creds_t *c);
/* Checks an Authorization header value: "Basic base64(user:password)",
 * where the password may instead be an API token (any user name), or
 * "Bearer token". VG_OK fills who; VG_ENOTFOUND: no or wrong credentials;
 * VG_EBUSY: too many failures from this user or address lately. */
int rly_creds_check(rly_creds_t *c, const char *authorization, const char *ip,
                    rly_principal_t *who);
/* Reads the accounts generation (index.h); *changed is 1 when it moved
 * since the last call, and remembered logins are then forgotten, so the
 * next request of every client is checked against the index again. */
int rly_creds_poll(rly_creds_t *c, int *changed);
/* Re-checks a principal of a live session against the index, without its
 * secret: VG_OK fills now with what the credential allows today;
 * VG_ENOTFOUND when the token was revoked, the account deleted or its
 * password changed. */
int rly_creds_recheck(rly_creds_t *c, const rly_principal_t *who, rly_principal_t *now);
/* Whether who was checked at the accounts generation last polled: when not,
 * a revocation may have come since, and rly_creds_recheck says. */
int rly_creds_current(rly_creds_t *c, const rly_principal_t *who);
/* Whether who may watch this source live: `live` on a source it can see,
 * and for a call line (audio) also `calls`, as in the HTTP API. */
int rly_may_watch(const rly_principal_t *who, const char *source, vg_source_kind_t kind);
typedef struct {
    const char *actor, *ip, *action, *source, *result, *detail;
    int64_t from_us, to_us; /* the stretch of live media watched; 0 when none */
} rly_audit_t;

/* Appends one audit row (DESIGN.md invariant 6); returns once it is durable. */
int rly_creds_audit(rly_creds_t *c, const rly_audit_t *a);
/* Counts a refused request (action relay.access, result denied) into the
 * minute's aggregated row for its address, actor and reason (index/denials.c). */
void rly_creds_denied(rly_creds_t *c, const char *ip, const char *actor, const char *source,
                      const char *why);

/* ---- push.c: one source to the central point ---- */

typedef struct rly_push rly_push_t;

int rly_push_start(const char *source, const char *url, rly_push_t **out);
/* A connection's streams (relayed ones only, in relay stream order). */
void rly_push_streams(rly_push_t *p, AVCodecParameters *const *par, unsigned n);
/* A packet on the relay timeline (ns). Never blocks. */
void rly_push_packet(rly_push_t *p, const AVPacket *pkt, unsigned stream, int64_t pts_ns,
                     int64_t dts_ns, int video_key);
void rly_push_status(rly_push_t *p, rly_status_t *out);
void rly_push_stop(rly_push_t *p);

/* ---- server.c ---- */

struct rly_server {
    const vg_config_t *cfg;
    const vg_clock_t *clock;
    rly_creds_t *creds;
    int rtsp;                 /* the RTSP server runs */
    int port;
    int tls;
    GMainContext *ctx;        /* the relay thread's main context */
    GMainLoop *loop;
    pthread_t thread;
    int thread_started;
    GstRTSPServer *server;
    GstRTSPMountPoints *mounts;
    GstRTSPAuth *auth;
    guint attach_id;          /* the listening socket's source on ctx */
    int recheck_pending;      /* relay thread: a re-check of live sessions must run again */

    pthread_mutex_t lock;     /* everything below */
    rly_feed_t **feeds;       /* mounted feeds, by name */
    size_t n_feeds;
    struct rly_peer *peers;   /* connections per address */
    size_t n_peers;
    int n_clients;
};

/* Serves f at /<name>, taking the path over from an older feed. */
void rly_server_mount(rly_server_t *s, rly_feed_t *f);
/* Removes the mount if f still holds it. */
void rly_server_unmount(rly_server_t *s, rly_feed_t *f);
/* The mounted feed serving name, with a reference (rly_feed_unref), or NULL. */
rly_feed_t *rly_server_find_feed(rly_server_t *s, const char *name);
/* Closes, on the relay thread, the client sessions playing any of medias,
 * then drops the tap's hold on each of release (GPtrArrays of GstRTSPMedia
 * references, taken over). */
void rly_server_close_medias(rly_server_t *s, GPtrArray *medias, GPtrArray *release);

/* ---- feed.c / tap.c ---- */

/* One relayed packet: the camera's bytes (a reference to the capture's
 * AVPacket, never copied) on the relay timeline. */
typedef struct {
    GstMemory *mem;
    GstMemory *prefix;  /* parameter sets to put before a keyframe, or NULL */
    unsigned stream;    /* relay stream index */
    int64_t pts_ns, dts_ns;
    int key;            /* a video keyframe (or any audio packet of an audio-only feed) */
} rly_unit_t;

typedef struct rly_tap rly_tap_t;

struct rly_feed {
    atomic_int refs;
    rly_server_t *srv;
    char name[64];
    vg_source_kind_t kind;
    GstRTSPMediaFactory *factory; /* NULL when not mounted */
    rly_push_t *push;

    pthread_mutex_t lock;      /* everything below */
    int closed;
    unsigned gen;              /* bumped when the streams change: old clients are closed */
    unsigned n_streams;        /* relayed streams of the current connection */
    rly_codec_t codec[RLY_MAX_STREAMS];
    AVRational tb[RLY_MAX_STREAMS];
    GstCaps *caps[RLY_MAX_STREAMS];
    GstMemory *params;         /* Annex-B parameter sets of the video stream, or NULL */
    int video;                 /* relay index of the video stream, -1 if none */
    int map[RLY_MAX_STREAMS * 4]; /* capture stream index -> relay stream, -1: not relayed */
    unsigned n_map;
    char signature[512];       /* what the streams are; equal means clients may continue */
    int live;                  /* a connection is up */
    vg_rebase_t timeline;
    int64_t last_dts[RLY_MAX_STREAMS];
    rly_unit_t *gop;           /* since the last keyframe: what a new client starts with */
    size_t n_gop, cap_gop, gop_bytes;
    int gop_valid;             /* 0 while waiting for a keyframe (start, overflow) */
    rly_tap_t **taps;
    size_t n_taps;
    atomic_llong dropped_gops;   /* GOPs skipped for slow clients (or a stalled pipeline) */
    atomic_int watching;         /* relay sessions playing this feed */
    atomic_uint epoch;           /* bumped when a media is let go: the next client gets a new one */
};

void rly_feed_ref(rly_feed_t *f);
void rly_feed_unref(rly_feed_t *f);
/* Whether a new client can start now (streams known, a keyframe cached). */
int rly_feed_ready(rly_feed_t *f);

/* fanout.c: one stream of a tap to its TCP clients, starting each on the
 * RTP packets since the last keyframe. Every function locks the fan itself;
 * a caller may hold the feed's lock, never the other way round. */
typedef struct rly_fan rly_fan_t;
/* dropped_gops: where GOPs skipped for slow clients are counted; must
 * outlive the fan. */
rly_fan_t *rly_fan_new(int video, int64_t send_interval_us, atomic_llong *dropped_gops);
void rly_fan_free(rly_fan_t *fn);
/* Watches the payloader's input (keyframes) and output (the packets). */
void rly_fan_attach(rly_fan_t *fn, GstElement *payloader);
/* A client's PLAY over TCP: it gets the cached GOP (when from_gop), then
 * the live packets; without from_gop a video stream starts at the next
 * keyframe. */
void rly_fan_join(rly_fan_t *fn, GstRTSPStreamTransport *tr, const void *sessmedia,
                  const void *client, int from_gop);
/* The viewers of sessmedia (when not NULL) or of client get nothing more. */
void rly_fan_leave(rly_fan_t *fn, const void *sessmedia, const void *client);
/* The media is torn down: no viewers, no GOP. */
void rly_fan_clear(rly_fan_t *fn);
/* gst-rtsp-server's own RTP for TCP clients in pipeline is dropped (the
 * fans send it); RTCP passes. */
void rly_fan_drop_stream_tcp(GstElement *pipeline);

/* tap.c: the media factory and the per-client pipelines ("taps"). */
GstRTSPMediaFactory *rly_factory_new(rly_feed_t *f);
/* The feed behind a factory of ours, or NULL. No reference taken. */
rly_feed_t *rly_factory_feed(GstRTSPMediaFactory *factory);
/* Builds the pipeline description (caps) of the current streams. Called
 * with f->lock held. */
GstCaps *rly_caps_for(rly_codec_t c, const AVCodecParameters *par);
/* Feeds one unit to every tap of the current generation. f->lock held. */
void rly_taps_push(rly_feed_t *f, const rly_unit_t *u);
/* Closes the clients of taps older than f->gen (all when closing). */
void rly_taps_close_stale(rly_feed_t *f);
/* Adds to release (GstRTSPMedia references) the media of f whose hold is
 * due: idle for long enough, or any when all; the caller unprepares them on
 * the relay thread. */
void rly_taps_release_idle(rly_feed_t *f, int64_t now_us, int all, GPtrArray *release);
/* Whether f has as many shared media as it may have and none of them is
 * the current one (a new client would need another): it is then refused. */
int rly_taps_full(rly_feed_t *f);
/* A new camera connection: every tap resumes at its first keyframe. f->lock held. */
void rly_taps_resync(rly_feed_t *f);
/* A client chose its transport for one stream of media (SETUP). */
void rly_tap_transport_chosen(GstRTSPMedia *media, GstRTSPStream *stream,
                              const GstRTSPTransport *transport);
/* The feed a media of ours relays (no reference taken), or NULL. */
rly_feed_t *rly_media_feed(GstRTSPMedia *media);
/* A client's PLAY was answered: its TCP streams get the cached GOP, then
 * the live packets. */
void rly_tap_join(GstRTSPClient *client, GstRTSPSessionMedia *sm);
/* PAUSE or TEARDOWN: the session's TCP streams get nothing more. */
void rly_tap_leave(GstRTSPSessionMedia *sm);
/* A connection closed: nothing more to its TCP streams of f. */
void rly_taps_leave_client(rly_feed_t *f, const GstRTSPClient *client);
/* Frees a unit's references. */
void rly_unit_clear(rly_unit_t *u);

#endif
