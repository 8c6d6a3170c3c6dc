/* The relay to the central monitoring point: an in-process RTSP server
 * (gst-rtsp-server) that serves every source at rtsp://HOST:PORT/<source>
 * with its original codec, and a push of each source to a central RTSP or
 * SRT server (libavformat). Both are fed from the packets capture already
 * receives: the relay never opens a connection to a camera (DESIGN.md
 * invariant 4), and nothing it does can block or slow recording. */
#ifndef RLY_RELAY_H
#define RLY_RELAY_H

#include <stdint.h>

#include <libavformat/avformat.h>

#include "core/clock.h"
#include "core/config.h"

typedef struct rly_server rly_server_t;
typedef struct rly_feed rly_feed_t;

typedef struct {
    const vg_config_t *cfg;  /* [relay] keys; must outlive the server */
    const char *data_dir;    /* accounts and the audit trail: data_dir/index.db */
    const vg_clock_t *clock;
} rly_server_config_t;

/* Starts the relay. With [relay] rtsp_listen set it runs the RTSP server in
 * its own thread (GStreamer's main loop); without, it only serves pushes.
 * Changes of [relay] keys need a restart. */
int rly_server_start(const rly_server_config_t *c, rly_server_t **out);
/* The RTSP port bound, 0 when the RTSP server is off. */
int rly_server_port(const rly_server_t *s);
/* Stops the RTSP server and frees. Every feed must be closed first. NULL is
 * fine. */
void rly_server_stop(rly_server_t *s);

/* Mounts src at /<name> (when the RTSP server runs) and starts its push
 * (when it has a push URL). *out is NULL when there is nothing to relay for
 * this source (relay = off, or neither RTSP server nor push): not an error.
 * A feed for a name already mounted takes the mount over. cfg must outlive
 * the feed. */
int rly_feed_open(rly_server_t *s, const vg_config_t *cfg, const vg_source_config_t *src,
                  rly_feed_t **out);

/* The capture sink trio, called from the source's capture thread only. None
 * of them blocks on a client or on the network: a slow or dead consumer
 * loses whole GOPs, recording loses nothing. Return values are advisory. */
int rly_feed_begin(rly_feed_t *f, AVStream *const *streams, unsigned n_streams);
int rly_feed_packet(rly_feed_t *f, const AVPacket *pkt, int64_t recv_wall_us);
void rly_feed_end(rly_feed_t *f);

/* Unmounts (closing its RTSP clients), stops the push, frees. Call after the
 * capture thread feeding it has been joined. NULL is fine. */
void rly_feed_close(rly_feed_t *f);

typedef struct {
    int mounted;              /* served over RTSP */
    int clients;              /* RTSP clients being fed now */
    int64_t client_dropped_gops; /* GOPs skipped for clients that read too slowly */
    int push_configured;
    char push_state[16];      /* off | connecting | connected | waiting (after an error) */
    char push_last_error[160];
    int64_t push_bytes;       /* media bytes handed to the push connection */
    int64_t push_dropped_gops;/* GOPs dropped because the central point was slow or down */
    int64_t push_connects;    /* successful connections so far */
} rly_status_t;

int rly_feed_status(rly_feed_t *f, rly_status_t *out);

/* The packet's bytes as GstMemory without a copy: the memory holds a
 * reference to capture's AVPacket buffer (DESIGN.md convention 5) and drops
 * it when its last user is done with it. Allocation failure aborts. For the
 * relay's feeds and live view's packetizer alike. */
struct _GstMemory *rly_packet_memory(const AVPacket *pkt);

#endif
