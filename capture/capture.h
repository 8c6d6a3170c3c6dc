/* RTSP ingest: one thread and one upstream connection per source (invariant 4).
 * Packets are handed, copied never decoded, to a sink (the archive writer
 * today; the relay and live window later fan out from the same place). On any
 * error or EOF the thread reconnects with capped exponential backoff. */
#ifndef CAP_CAPTURE_H
#define CAP_CAPTURE_H

#include <stdint.h>

#include <libavformat/avformat.h>

#include "core/clock.h"
#include "core/config.h"

/* Where packets go. Called from the source's thread only. */
typedef struct {
    void *ctx;
    /* A connection is up with these streams. Non-zero: drop the connection. */
    int (*begin)(void *ctx, AVStream *const *streams, unsigned n_streams);
    /* One packet, still owned by the caller. */
    int (*packet)(void *ctx, const AVPacket *pkt, int64_t recv_wall_us);
    /* The connection ended (error, EOF or stop). */
    void (*end)(void *ctx);
} cap_sink_t;

typedef enum {
    CAP_CONNECTING,
    CAP_RECORDING,
    CAP_ERROR,   /* waiting to reconnect after a failure */
    CAP_STOPPED,
} cap_state_t;

typedef struct {
    int open_timeout_ms;  /* connect + DESCRIBE/SETUP/PLAY + stream info */
    int read_timeout_ms;  /* no packet for this long: reconnect */
    int backoff_min_ms;   /* first retry delay */
    int backoff_max_ms;   /* cap of the doubling */
    int healthy_ms;       /* a connection this old resets the backoff */
} cap_timing_t;

extern const cap_timing_t cap_default_timing;

typedef struct {
    cap_state_t state;
    char last_error[160];
    char codecs[64];
    int64_t packets;
    int64_t bytes;
    int64_t reconnects;
    int64_t last_packet_wall_us; /* 0 if none yet */
    int64_t bitrate_bps;         /* over the last few seconds */
} cap_status_t;

typedef struct cap_source cap_source_t;

/* Starts the thread for one source. cfg is copied. */
int cap_source_start(const vg_source_config_t *cfg, const cap_timing_t *timing,
                     const vg_clock_t *clock, cap_sink_t sink, cap_source_t **out);
/* Asks the thread to stop; returns at once. Blocking libav calls are
 * interrupted through their interrupt_callback. */
void cap_source_request_stop(cap_source_t *src);
/* Stops (if not yet asked), joins the thread, frees. NULL is fine. */
void cap_source_join(cap_source_t *src);
void cap_source_status(cap_source_t *src, cap_status_t *out);
/* Monotonic time (µs) the thread last showed it is alive: reading, waiting
 * on the network, or backing off. A thread stuck in its sink stops it. */
int64_t cap_source_heartbeat(cap_source_t *src);
const char *cap_state_name(cap_state_t state);

/* Packets without any timestamp (a connection's first keyframe, from
 * libavformat's RTSP demuxer), held with the packets after them that have
 * no DTS (B-frame streams) until a packet with a DTS dates them all
 * (undated.c). One per connection, used by its thread only. */
#define CAP_UNDATED_MAX 8
typedef struct {
    AVPacket *pkt[CAP_UNDATED_MAX];
    int64_t recv_wall_us[CAP_UNDATED_MAX];
    unsigned count;
} cap_undated_stream_t;

typedef struct {
    unsigned n;
    cap_undated_stream_t *held; /* per stream */
    int64_t *step;              /* per stream: one frame, in its time base */
} cap_undated_t;

void cap_undated_init(cap_undated_t *u, AVStream *const *streams, unsigned n);
void cap_undated_free(cap_undated_t *u);
/* Keeps pkt (its data moved out) and returns 1 when it has no timestamp at
 * all, or has no DTS and follows a kept packet of its stream (while there is
 * room). Otherwise returns 0, pkt untouched. */
int cap_undated_hold(cap_undated_t *u, AVPacket *pkt, int64_t recv_wall_us);
/* Called with each packet not kept, before it is handed on: moves the
 * packets kept for its stream, dated to come just before it, into out[]
 * (room for CAP_UNDATED_MAX) with when each was received; returns how many.
 * The caller frees them. */
unsigned cap_undated_release(cap_undated_t *u, const AVPacket *next, AVPacket **out,
                             int64_t *recv_wall_us);

/* Routes libav's own messages into vg_log (with priority prefixes, at most
 * one line each, secrets masked by cap_mask_secrets). Call once at startup. */
void cap_route_libav_log(int max_av_level);
/* Masks secrets in a log line, in place (it never grows): the user
 * information of every URL (user:pass@ becomes ***@, also with @ in the
 * password) and passphrase=, password=, passwd= values ("***"). */
void cap_mask_secrets(char *line);
#endif
