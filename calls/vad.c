/* Voice activity detection for lines without PBX events (calls/vad.h).
 *
 * A 20 ms frame is speech when its energy stands 12 dB above the line's
 * noise floor (tracked as a running minimum that rises slowly, 1 dB/s, and
 * fast, 12.5 dB/s, while loud frames are flat, so a new hiss on the line
 * soon becomes its floor) and above -60 dBFS, and its spectrum over the
 * telephone band is not flat (spectral flatness, the geometric over the
 * arithmetic mean of the power spectrum, under 0.35: voiced speech is
 * harmonic, white noise gives about 0.56; unvoiced sounds are short and
 * covered by the hangover). Three speech
 * frames in a row open a talk spurt (a click does not), 300 ms without
 * speech close it (hangover: the pauses between words). The first spurt
 * opens a call; a silence of gap_s after the last spurt ends it, at the end
 * of that spurt's last speech frame. A call shorter than min_call_s (a
 * cough, a door) is dropped. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "calls/dsp.h"
#include "calls/vad.h"
#include "core/util.h"

#define FRAME 160        /* 20 ms at 8 kHz */
#define FFT_N 256
#define FRAME_US 20000
#define ONSET_FRAMES 3
#define HANGOVER_FRAMES 15
#define OVER_FLOOR_DB 12.0
#define ABS_MIN_DB -60.0
#define FLAT_MAX 0.35
#define FLOOR_RISE_DB 0.02 /* per frame: 1 dB/s */
#define FLOOR_FLAT_RISE_DB 0.25 /* per flat loud frame: 12.5 dB/s */
#define BIN_LO 8           /* 250 Hz */
#define BIN_HI 112         /* 3500 Hz */

struct call_vad {
    call_vad_config_t cfg;
    call_vad_emit_fn emit;
    void *ctx;
    float win[FFT_N];
    int16_t pend[FRAME];
    int n_pend;
    int64_t pend_t0;   /* time of pend[0] */
    int64_t next_t;    /* time of the next sample expected; 0: none yet */
    double floor_db;
    int have_floor;
    int run;           /* consecutive speech frames */
    int quiet;         /* consecutive non-speech frames in a spurt */
    int in_spurt;
    int64_t run_start; /* start of the current run of speech frames */
    int64_t last_speech_end;
    int64_t call_start; /* 0: no call open */
};

call_vad_t *call_vad_new(const call_vad_config_t *cfg, call_vad_emit_fn emit, void *ctx)
{
    call_vad_t *v = vg_calloc(1, sizeof(*v));
    v->cfg = *cfg;
    if (!(v->cfg.gap_s > 0.0))
        v->cfg.gap_s = CALL_VAD_GAP_DEFAULT;
    if (!(v->cfg.min_call_s >= 0.0))
        v->cfg.min_call_s = CALL_VAD_MIN_CALL_DEFAULT;
    v->emit = emit;
    v->ctx = ctx;
    /* the 160-sample frame, Hann-windowed, zero-padded to the FFT size */
    for (int i = 0; i < FRAME; i++)
        v->win[i] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * i / FRAME));
    return v;
}

void call_vad_free(call_vad_t *v)
{
    free(v);
}

int64_t call_vad_open_since(const call_vad_t *v)
{
    return v->call_start;
}

static void end_call(call_vad_t *v)
{
    if (!v->call_start)
        return;
    int64_t start = v->call_start, end = v->last_speech_end;
    v->call_start = 0;
    if (end - start >= (int64_t)(v->cfg.min_call_s * 1e6))
        v->emit(v->ctx, start, end);
}

static int frame_is_speech(call_vad_t *v, const int16_t *x)
{
    float buf[FFT_N], power[FFT_N / 2 + 1];
    double sum = 0.0;
    for (int i = 0; i < FRAME; i++) {
        buf[i] = x[i];
        sum += (double)x[i] * x[i];
    }
    memset(buf + FRAME, 0, sizeof(float) * (FFT_N - FRAME));
    double e_db = 10.0 * log10(sum / FRAME / (32768.0 * 32768.0) + 1e-12);
    if (!v->have_floor || e_db < v->floor_db) {
        v->floor_db = e_db;
        v->have_floor = 1;
    } else {
        v->floor_db += FLOOR_RISE_DB;
    }
    if (e_db < ABS_MIN_DB || e_db < v->floor_db + OVER_FLOOR_DB)
        return 0;
    call_dsp_power(buf, v->win, FFT_N, power);
    double log_sum = 0.0, lin_sum = 0.0;
    for (int k = BIN_LO; k < BIN_HI; k++) {
        double p = power[k] + 1e-3;
        log_sum += log(p);
        lin_sum += p;
    }
    int nb = BIN_HI - BIN_LO;
    double flatness = exp(log_sum / nb) / (lin_sum / nb);
    if (flatness >= FLAT_MAX) {
        /* loud but flat: a new hiss on the line becomes its floor quickly */
        v->floor_db += FLOOR_FLAT_RISE_DB;
        return 0;
    }
    return 1;
}

static void frame(call_vad_t *v, const int16_t *x, int64_t t)
{
    int speech = frame_is_speech(v, x);
    if (speech) {
        if (v->run == 0)
            v->run_start = t;
        v->run++;
        v->quiet = 0;
        if (!v->in_spurt && v->run >= ONSET_FRAMES) {
            v->in_spurt = 1;
            if (!v->call_start)
                v->call_start = v->run_start;
        }
        if (v->in_spurt)
            v->last_speech_end = t + FRAME_US;
    } else {
        v->run = 0;
        if (v->in_spurt && ++v->quiet >= HANGOVER_FRAMES)
            v->in_spurt = 0;
    }
    if (v->call_start && !v->in_spurt &&
        t + FRAME_US - v->last_speech_end >= (int64_t)(v->cfg.gap_s * 1e6))
        end_call(v);
}

void call_vad_feed(call_vad_t *v, const int16_t *pcm, size_t n, int64_t t_us)
{
    /* A jump in time (a gap in the stream, a reconnect): the partial frame
     * is dropped and framing restarts; the silence counts toward the gap. */
    if (v->next_t && llabs(t_us - v->next_t) > 100000) {
        v->n_pend = 0;
        if (v->call_start && !v->in_spurt && t_us - v->last_speech_end >= (int64_t)(v->cfg.gap_s * 1e6))
            end_call(v);
        if (t_us > v->next_t && v->in_spurt && t_us - v->next_t >= HANGOVER_FRAMES * FRAME_US) {
            v->in_spurt = 0;
            v->run = 0;
        }
    }
    if (v->n_pend == 0)
        v->pend_t0 = t_us;
    for (size_t i = 0; i < n; i++) {
        v->pend[v->n_pend++] = pcm[i];
        if (v->n_pend == FRAME) {
            frame(v, v->pend, v->pend_t0);
            v->n_pend = 0;
            v->pend_t0 = t_us + (int64_t)((i + 1) * 1000000 / CALL_DSP_RATE);
        }
    }
    v->next_t = t_us + (int64_t)(n * 1000000 / CALL_DSP_RATE);
}

void call_vad_flush(call_vad_t *v)
{
    v->in_spurt = 0;
    v->run = 0;
    v->quiet = 0;
    v->n_pend = 0;
    v->next_t = 0;
    end_call(v);
}
