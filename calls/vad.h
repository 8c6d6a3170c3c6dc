/* Call detection by voice activity ([source NAME] call_detect = vad): a
 * line's audio, decoded to 8 kHz PCM, is split into calls at silences of
 * call_gap_seconds. calls/vad.c says how a frame is judged speech. */
#ifndef CALL_VAD_H
#define CALL_VAD_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    double gap_s;      /* a silence this long ends a call (default 8) */
    double min_call_s; /* shorter bursts of sound are not calls (default 2) */
} call_vad_config_t;

#define CALL_VAD_GAP_DEFAULT 8.0
#define CALL_VAD_MIN_CALL_DEFAULT 2.0

/* A call found: [start_us, end_us) from its first to its last speech. */
typedef void (*call_vad_emit_fn)(void *ctx, int64_t start_us, int64_t end_us);

typedef struct call_vad call_vad_t;

/* emit is called from call_vad_feed / call_vad_flush, on the caller's thread. */
call_vad_t *call_vad_new(const call_vad_config_t *cfg, call_vad_emit_fn emit, void *ctx);
void call_vad_free(call_vad_t *v);

/* n samples of 8 kHz mono PCM, the first at wall time t_us (UTC µs). Time
 * moving on by more than the audio given (a gap in the stream) counts as
 * silence. Cheap: about one 256-point FFT per 20 ms of audio. */
void call_vad_feed(call_vad_t *v, const int16_t *pcm, size_t n, int64_t t_us);
/* The stream ended: a call in progress ends at its last speech. */
void call_vad_flush(call_vad_t *v);

/* Whether a call is in progress and since when (0 when none): for status. */
int64_t call_vad_open_since(const call_vad_t *v);

#endif
