/* Live view for browsers: WHEP sessions (GStreamer webrtcbin, one per
 * viewer) fed with RTP packetized once per source from the packets capture
 * already receives, like the relay (DESIGN.md invariants 4 and 5: no second
 * camera connection, no re-encoding of video). Each source keeps its current
 * GOP so a viewer starts on a keyframe at once. Nothing here blocks or slows
 * the capture thread: a slow viewer loses whole GOPs.
 *
 * Access rules, audit rows and HTTP stay in web/: a session carries hooks
 * web/ gives it (is the access still granted, record the end). */
#ifndef LIVE_LIVE_H
#define LIVE_LIVE_H

#include <stddef.h>
#include <stdint.h>

#include <libavformat/avformat.h>

#include "core/config.h"

typedef struct live live_t;
typedef struct live_feed live_feed_t;

/* Starts the live service ([live] keys of cfg, which must outlive it): its
 * housekeeping thread. *out is NULL with [live] enabled = no (not an error). */
int live_start(const vg_config_t *cfg, live_t **out);
/* Ends every session (reason "closed") and refuses new ones (503): before
 * the HTTP side that records their ends stops. NULL is fine. */
void live_shutdown(live_t *l);
/* Stops and frees, after live_shutdown, once every feed is closed. NULL is
 * fine. */
void live_stop(live_t *l);

/* The source's feed; *out NULL when l is NULL. */
int live_feed_open(live_t *l, const vg_source_config_t *src, live_feed_t **out);
/* The capture sink trio, from the source's capture thread only; never block. */
int live_feed_begin(live_feed_t *f, AVStream *const *streams, unsigned n_streams);
int live_feed_packet(live_feed_t *f, const AVPacket *pkt, int64_t recv_wall_us);
void live_feed_end(live_feed_t *f);
/* Ends the feed's sessions (reason "error": the source went away) and frees.
 * After the capture thread was joined. NULL is fine. */
void live_feed_close(live_feed_t *f);

/* What web/ gives a session: called from live's own thread. */
typedef struct {
    void *ctx;
    /* 1 while the access that opened the session still holds (checked about
     * every second), 0 once revoked. NULL: always. */
    int (*allowed)(void *ctx);
    /* The session ended: reason closed | revoked | error | timeout. Called
     * once, then release. */
    void (*ended)(void *ctx, const char *id, const char *reason, int64_t started_us,
                  int64_t ended_us);
    void (*release)(void *ctx);
} live_hooks_t;

#define LIVE_ID_MAX 33   /* 32 hex digits + NUL */
#define LIVE_SDP_MAX (64 * 1024)

typedef struct {
    const char *source;
    const char *owner;       /* the audit actor: user:NAME | token:ID */
    const char *user;        /* shown in GET /api/v1/live */
    const char *offer;       /* SDP text, offer_len bytes (not NUL-terminated) */
    size_t offer_len;
    live_hooks_t hooks;      /* taken over whatever the result (release is called) */
} live_whep_request_t;

typedef struct {
    int status;              /* 201, or the HTTP status of the refusal */
    char code[32];           /* the error's code (not_found, codec_unsupported, ...) */
    char message[192];
    char codec[48];          /* 406: the codec the offer cannot take */
    int retry_after;         /* 503: seconds */
    char id[LIVE_ID_MAX];    /* 201 */
    char *answer;            /* 201: SDP text, malloc'd (caller frees) */
} live_whep_result_t;

/* Negotiates a WHEP session (blocks the calling thread for the offer/answer
 * and ICE gathering, about half a second). Always fills res; VG_OK only with
 * status 201. */
int live_whep_offer(live_t *l, const live_whep_request_t *req, live_whep_result_t *res);

/* Ends session id (reason "closed"). owner NULL: any (an admin).
 * VG_ENOTFOUND: no such session, or not owner's. */
int live_session_end(live_t *l, const char *id, const char *owner);

/* ---- the fMP4/MSE fallback (GET .../live.mp4) ---- */

typedef struct live_stream live_stream_t;

typedef struct {
    const char *source;
    const char *owner, *user;
    live_hooks_t hooks;      /* taken over whatever the result */
    /* Called (any thread) when bytes become readable after a read returned 0. */
    void (*wake)(void *wake_ctx);
    void *wake_ctx;
} live_stream_request_t;

/* Opens an fMP4 stream: VG_OK with *out and the MSE codecs string; else
 * res-like refusal in status/code/message (404, 503 with retry_after, 406
 * when no stream of the source can go into MP4 for a browser). */
int live_stream_open(live_t *l, const live_stream_request_t *req, live_stream_t **out,
                     char *codecs, size_t codecs_size, live_whep_result_t *res);
/* The session id of s (for the audit row). */
const char *live_stream_id(const live_stream_t *s);
/* Copies up to max bytes: > 0 bytes, 0 nothing now (wake comes later), -1
 * ended (the session is over: revoked, source gone, stopped). */
long live_stream_read(live_stream_t *s, char *buf, size_t max);
/* The HTTP side is done with it (client gone or ended): ends the session
 * (reason "closed" unless it had ended already) and frees. */
void live_stream_close(live_stream_t *s);

/* ---- status ---- */

typedef struct {
    char id[LIVE_ID_MAX];
    char source[64];
    char owner[96];
    char user[96];
    char transport[8];       /* webrtc | mse */
    char state[16];          /* connecting | connected | ending */
    int64_t started_us;
} live_session_info_t;

typedef struct {
    int viewers, max_viewers, max_viewers_per_user;
    live_session_info_t *sessions; /* malloc'd, n_sessions */
    size_t n_sessions;
} live_status_t;

/* owner NULL: every session; else that owner's only. Free with
 * live_status_free. */
void live_status(live_t *l, const char *owner, live_status_t *out);
void live_status_free(live_status_t *st);

typedef struct {
    int viewers;
    int webrtc;              /* WebRTC can carry it now */
    char reason[96];         /* why not (codec, B-frames seen, no stream yet) */
    char codecs[64];         /* MSE codecs of live.mp4, "" when unknown */
} live_source_info_t;

/* Viewers (WebRTC and MSE) of a feed now; 0 for NULL. */
int live_feed_viewers(live_feed_t *f);

/* VG_ENOTFOUND when the source has no feed. */
int live_source_info(live_t *l, const char *source, live_source_info_t *out);

#endif
