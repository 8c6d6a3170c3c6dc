/* vigild's own wiring, shared by cmd/vigild*.c only. */
#ifndef VIGILD_H
#define VIGILD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "archive/archive.h"
#include "capture/capture.h"
#include "core/config.h"
#include "index/index.h"
#include "live/live.h"
#include "relay/relay.h"
#include "retention/retention.h"
#include "web/web.h"

typedef struct recorder {
    const vg_source_config_t *cfg; /* points into a config kept alive until exit */
    idx_t *idx;                    /* this source's own connection (its thread's) */
    arc_writer_t *writer;
    rly_feed_t *relay;             /* NULL: not relayed */
    live_feed_t *live;             /* NULL: live view off */
    cap_source_t *capture;
    /* Test-only fault: the sink blocks after this many packets (0: never). */
    long stall_after_packets;
    long packets_seen;
    const atomic_int *stopping;
} recorder_t;

typedef struct daemon {
    /* The running configuration. Replaced whole on reload; every version is
     * kept until exit so a thread holding an old pointer stays safe. */
    vg_config_t *_Atomic cfg;
    vg_config_t **configs;
    size_t n_configs;

    int lock_fd;
    idx_t *idx; /* the main thread's connection */

    /* recorders may be swapped by a reload; readers from other threads hold
     * recorders_lock. */
    pthread_mutex_t recorders_lock;
    recorder_t **recorders;
    size_t n_recorders;
    atomic_int stopping;

    /* The retention thread: sweeps every sweep_seconds on its own connection. */
    pthread_t sweeper;
    int sweeper_started;
    idx_t *sweep_idx;
    pthread_mutex_t sweep_lock;
    pthread_cond_t sweep_wake;
    int sweep_stop;
    atomic_int recording_paused;
    atomic_llong sweeps, sweep_us_total, last_sweep_us, deleted_segments;
    ret_clock_guard_t clock_guard; /* the sweeper thread's only */

    /* Metrics read the index from the web server's threads: one connection,
     * one at a time. */
    pthread_mutex_t metrics_lock;
    idx_t *metrics_idx;

    /* The relay: RTSP server and pushes (started before the recorders). */
    rly_server_t *relay;
    /* Browser live view (NULL with [live] enabled = no); its feeds are the
     * recorders', like the relay's. */
    live_t *live;

    /* Audit anchoring: the appliance key and the signed checkpoints of the
     * audit chain's head (main thread only, on idx). anchor is NULL when
     * the key could not be loaded: recording goes on regardless. */
    vg_key_t key;
    idx_anchor_t *anchor;
    int64_t next_checkpoint_us; /* monotonic */

    /* The HTTP API (NULL when http_listen is empty). */
    web_t *web;
    /* Export jobs behind the API (NULL with the API off); stopped after it. */
    pb_exporter_t *exporter;

    /* The status socket (vigilctl status). */
    pthread_t status_thread;
    int status_started;
    int status_fd;
    char *status_path;
} daemon_t;

static inline vg_config_t *daemon_config(daemon_t *d)
{
    return atomic_load(&d->cfg);
}

/* Starts a thread with every signal blocked (signals are the main thread's). */
int vigild_start_thread(pthread_t *t, void *(*fn)(void *), void *arg);

/* vigild_service.c: systemd notification, watchdog, status socket. */
void svc_notify_ready(daemon_t *d);
void svc_notify_stopping(void);
/* Called from the main loop's tick: pings the watchdog if every recorder's
 * thread made progress recently, and refreshes STATUS= now and then. */
void svc_tick(daemon_t *d);
/* The main loop's tick length: a quarter of the watchdog period, at most 1 s. */
int svc_tick_ms(void);
int svc_status_start(daemon_t *d);
void svc_status_stop(daemon_t *d);
/* The live status of every recorder as a JSON text (malloc'd). */
char *svc_status_json(daemon_t *d);
/* The writers' in-memory alarms as [{kind, severity, sources: [...]}]. */
json_t *svc_writer_alarms(daemon_t *d);

/* vigild_web.c: starts the HTTP API with a source status provider over
 * the recorders. */
int vigild_web_start(daemon_t *d);

/* vigild_metrics.c: Prometheus text (malloc'd); safe from any thread. */
char *svc_metrics_text(daemon_t *d);
/* The relay's view of one source as JSON (null when it is not relayed):
 * vigilctl status and GET /api/v1/sources show the same object. */
json_t *svc_relay_json(recorder_t *r);

#endif
