/* The calls worker: one thread ("calls") that stores the calls the voice
 * activity detector finds and runs the announcement check on every call
 * once it has ended, whatever made it (PBX events, CDR import, VAD). */
#ifndef CALL_WORKER_H
#define CALL_WORKER_H

#include <stdint.h>

#include "calls/announce.h"
#include "core/config.h"
#include "index/index.h"

typedef struct call_worker call_worker_t;

/* The configuration in force (it may be replaced by a reload: the worker
 * asks again each round; a returned config must stay valid until exit). */
typedef const vg_config_t *(*call_worker_cfg_fn)(void *ctx);

/* VAD calls waiting to be stored; more are dropped (and counted, logged). */
#define CALL_WORKER_QUEUE 256
/* How often the worker looks for ended calls without a check (ms). */
#define CALL_WORKER_POLL_MS 2000

/* Opens its own index connection at db_path and starts the thread. */
int call_worker_start(const char *db_path, call_worker_cfg_fn cfg, void *ctx,
                      call_worker_t **out);
/* Stops the thread (a check in progress finishes first) and frees w. */
void call_worker_stop(call_worker_t *w);

/* A call the VAD found on source: queued, never blocks (the capture thread
 * calls it). */
void call_worker_vad_call(call_worker_t *w, const char *source, int64_t start_us, int64_t end_us);

/* Counters for status and tests. */
typedef struct {
    int64_t vad_stored, vad_dropped, checked, deferred;
} call_worker_stats_t;
void call_worker_stats(call_worker_t *w, call_worker_stats_t *out);

/* Checks the announcement of one stored call (source, [start_us, end_us))
 * from its archived audio, read with playback's WAV reader. *ready = 0 when
 * the audio the check needs is not all in the index yet (the open segment)
 * and now_us says it may still come: try again later. */
int call_announce_check_stored(idx_t *idx, const char *data_dir, const char *source,
                               int64_t start_us, int64_t end_us, const call_announce_ref_t *ref,
                               double window_s, int64_t now_us, int64_t wait_us, int *ready,
                               call_announce_result_t *res);

#endif
