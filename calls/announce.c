/* The recording-announcement check (issue 17 req. 1): is the reference
 * announcement in the first window seconds of a call?
 *
 * Method: a log-spectral fingerprint matched by normalized correlation.
 * - Both signals become 8 kHz mono, cut into 32 ms frames (256 samples, Hann)
 *   every 16 ms; each frame gives the energy of 18 mel-spaced bands between
 *   250 and 3500 Hz (the telephone band) in dB, floored 40 dB under the
 *   signal's loudest band so pauses do not weigh by their noise.
 * - The reference is cut in ten chunks of equal length. Each chunk has each
 *   band's mean removed (so a level difference, a different line gain or a
 *   fixed tilt of the channel cancels out) and is compared with the call's
 *   frames at every lag by a Pearson correlation over the chunk's cells, the
 *   call side also band-mean-removed over the same frames. A-law/mu-law
 *   quantization and noise at 10 dB SNR lower the correlation of a true match
 *   (about 0.8 clean, 0.5 noisy) but leave unrelated speech, even the same
 *   voice saying similar words, near 0.
 * - Speed: a PBX whose clock runs 3 % fast plays the announcement 3 % shorter
 *   and 3 % higher. The reference is resampled at nine speeds from 0.97 to
 *   1.03 (steps of 0.75 %, so the worst residual drift over a 6 s
 *   announcement is about 20 ms, near one hop) and each is searched.
 * - Decision: for the best (speed, lag), the covered part is the longest
 *   prefix of chunks whose mean correlation stays above 0.6 and whose first
 *   and last chunks match by themselves (> 0.35): another prompt sharing a
 *   phrase with the announcement, but not its opening, is no match. Chunks
 *   of the reference that are silence carry no information and are skipped. Present when the prefix
 *   covers >= 80 % of the announcement, partial from 30 % to 80 %, absent
 *   below. Unknown when the call is shorter than the announcement.
 * Cost: one 256-point FFT per 16 ms of call, then per lag and speed one dot
 * product over the reference's cells: about 70 ms of CPU per call for a
 * 7 s announcement in a 20 s window, 10 s per hour of analysed audio
 * (bench/RESULTS.md has the measured figures). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calls/announce.h"
#include "calls/dsp.h"
#include "core/errors.h"
#include "core/util.h"

#define FRAME 256
#define HOP 128
#define BANDS 18
#define CHUNKS 10
#define N_SPEED 9
#define SPEED_MIN 0.97
#define SPEED_STEP 0.0075
#define RANGE_DB 40.0
#define F_LO 250.0
#define F_HI 3500.0
/* A chunk whose cells vary less than this (dB^2) is a pause: no information. */
#define INFORMATIVE_VAR 4.0
#define TH_MEAN 0.6
#define TH_CHUNK 0.35
#define COVER_PRESENT 0.8
#define COVER_PARTIAL 0.3

typedef struct {
    double speed;
    int frames;
    float *feat; /* frames x BANDS, each chunk band-mean-removed */
    int start[CHUNKS + 1];
    double r2[CHUNKS];
    int informative[CHUNKS];
} variant_t;

struct call_announce_ref {
    size_t samples;
    variant_t var[N_SPEED];
};

static double mel(double f)
{
    return 2595.0 * log10(1.0 + f / 700.0);
}

static double mel_inv(double m)
{
    return 700.0 * (pow(10.0, m / 2595.0) - 1.0);
}

static void band_bins(int lo[BANDS], int hi[BANDS])
{
    const double bin_hz = (double)CALL_DSP_RATE / FRAME;
    double m0 = mel(F_LO), m1 = mel(F_HI);
    for (int b = 0; b < BANDS; b++) {
        lo[b] = (int)lround(mel_inv(m0 + (m1 - m0) * b / BANDS) / bin_hz);
        hi[b] = (int)lround(mel_inv(m0 + (m1 - m0) * (b + 1) / BANDS) / bin_hz);
        if (hi[b] <= lo[b])
            hi[b] = lo[b] + 1;
    }
}

/* Log band energies of x (n samples): *frames rows of BANDS, malloc'd. */
static float *features(const float *x, size_t n, int *frames)
{
    int lo[BANDS], hi[BANDS];
    float win[FRAME], power[FRAME / 2 + 1];
    band_bins(lo, hi);
    call_dsp_hann(win, FRAME);
    int nf = n >= FRAME ? (int)((n - FRAME) / HOP + 1) : 0;
    float *e = vg_malloc((size_t)(nf ? nf : 1) * BANDS * sizeof(float));
    float peak = 0.0f;
    for (int t = 0; t < nf; t++) {
        call_dsp_power(x + (size_t)t * HOP, win, FRAME, power);
        for (int b = 0; b < BANDS; b++) {
            float s = 0.0f;
            for (int k = lo[b]; k < hi[b]; k++)
                s += power[k];
            s /= (float)(hi[b] - lo[b]);
            e[t * BANDS + b] = s;
            if (s > peak)
                peak = s;
        }
    }
    /* the floor: 40 dB under the loudest band, and above digital silence */
    float floor_e = peak * (float)pow(10.0, -RANGE_DB / 10.0);
    if (floor_e < 1.0f)
        floor_e = 1.0f;
    for (int t = 0; t < nf; t++) {
        float *row = e + (size_t)t * BANDS, mean = 0.0f;
        for (int b = 0; b < BANDS; b++) {
            row[b] = 10.0f * log10f(row[b] > floor_e ? row[b] : floor_e);
            mean += row[b];
        }
        mean /= BANDS;
        for (int b = 0; b < BANDS; b++)
            row[b] -= mean;
    }
    *frames = nf;
    return e;
}

static void variant_free(variant_t *v)
{
    free(v->feat);
    v->feat = NULL;
}

/* The reference played at `speed` (1.03 = 3 % fast): linear-interpolation
 * resampling is enough at this ratio for band energies. */
static void variant_make(variant_t *v, const float *ref, size_t n, double speed)
{
    size_t m = (size_t)((double)(n - 1) / speed);
    float *x = vg_malloc((m ? m : 1) * sizeof(float));
    for (size_t i = 0; i < m; i++) {
        double p = i * speed;
        size_t k = (size_t)p;
        double f = p - (double)k;
        x[i] = (float)(ref[k] * (1.0 - f) + (k + 1 < n ? ref[k + 1] : ref[k]) * f);
    }
    v->speed = speed;
    v->feat = features(x, m, &v->frames);
    free(x);
    for (int c = 0; c <= CHUNKS; c++)
        v->start[c] = v->frames * c / CHUNKS;
    for (int c = 0; c < CHUNKS; c++) {
        int t0 = v->start[c], t1 = v->start[c + 1], nt = t1 - t0;
        double r2 = 0.0;
        for (int b = 0; b < BANDS; b++) {
            double mean = 0.0;
            for (int t = t0; t < t1; t++)
                mean += v->feat[t * BANDS + b];
            mean /= nt > 0 ? nt : 1;
            for (int t = t0; t < t1; t++) {
                float d = (float)(v->feat[t * BANDS + b] - mean);
                v->feat[t * BANDS + b] = d;
                r2 += (double)d * d;
            }
        }
        v->r2[c] = r2;
        v->informative[c] = nt > 0 && r2 / ((double)nt * BANDS) >= INFORMATIVE_VAR;
    }
}

int call_announce_ref_from_pcm(const int16_t *pcm, size_t n, call_announce_ref_t **out,
                               char *err, size_t err_size)
{
    *out = NULL;
    if ((double)n < CALL_ANN_REF_MIN_S * CALL_DSP_RATE || (double)n > CALL_ANN_REF_MAX_S * CALL_DSP_RATE) {
        snprintf(err, err_size, "the announcement lasts %.1f s: it must last %.0f to %.0f s",
                 (double)n / CALL_DSP_RATE, CALL_ANN_REF_MIN_S, CALL_ANN_REF_MAX_S);
        return VG_EINVAL;
    }
    float *x = vg_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = pcm[i];
    call_announce_ref_t *ref = vg_calloc(1, sizeof *ref);
    ref->samples = n;
    int informative = 0;
    for (int s = 0; s < N_SPEED; s++) {
        variant_make(&ref->var[s], x, n, SPEED_MIN + SPEED_STEP * s);
        for (int c = 0; c < CHUNKS; c++)
            informative += ref->var[s].informative[c];
    }
    free(x);
    /* fewer than 3 chunks with sound in any speed: silence or a tone */
    if (informative < 3 * N_SPEED) {
        call_announce_ref_free(ref);
        snprintf(err, err_size, "the announcement is (nearly) silent or has no spectral detail");
        return VG_EINVAL;
    }
    *out = ref;
    return VG_OK;
}

int call_announce_ref_load(const char *path, call_announce_ref_t **out, char *err,
                           size_t err_size)
{
    int16_t *pcm = NULL;
    size_t n = 0;
    *out = NULL;
    int rc = call_wav_load(path, &pcm, &n, err, err_size);
    if (rc == VG_OK)
        rc = call_announce_ref_from_pcm(pcm, n, out, err, err_size);
    free(pcm);
    return rc;
}

void call_announce_ref_free(call_announce_ref_t *ref)
{
    if (!ref)
        return;
    for (int s = 0; s < N_SPEED; s++)
        variant_free(&ref->var[s]);
    free(ref);
}

double call_announce_ref_seconds(const call_announce_ref_t *ref)
{
    return (double)ref->samples / CALL_DSP_RATE;
}

size_t call_announce_samples_wanted(const call_announce_ref_t *ref, double window_s)
{
    if (!(window_s > 0.0))
        window_s = 0.0;
    return (size_t)(window_s * CALL_DSP_RATE) + (size_t)((double)ref->samples / SPEED_MIN) + FRAME;
}

const char *call_announce_state_name(call_ann_state_t state)
{
    switch (state) {
    case CALL_ANN_PRESENT:
        return "present";
    case CALL_ANN_ABSENT:
        return "absent";
    case CALL_ANN_PARTIAL:
        return "partial";
    default:
        return "unknown";
    }
}

/* The call's features with prefix sums for band means and energies. */
typedef struct {
    int frames;
    float *feat;
    double *s1; /* (frames + 1) x BANDS: sums of feat per band */
    double *s2; /* frames + 1: sums of squares over all bands */
} call_feat_t;

/* Correlation of chunk c of variant v with the call's frames at lag. */
static double chunk_corr(const variant_t *v, const call_feat_t *w, int lag, int c)
{
    int t0 = v->start[c], t1 = v->start[c + 1], nt = t1 - t0;
    if (nt <= 0 || lag + t1 > w->frames || v->r2[c] <= 0.0)
        return 0.0;
    const float *a = v->feat + (size_t)t0 * BANDS;
    const float *b = w->feat + (size_t)(lag + t0) * BANDS;
    float num = 0.0f;
    for (int i = 0; i < nt * BANDS; i++)
        num += a[i] * b[i];
    const double *lo = w->s1 + (size_t)(lag + t0) * BANDS, *hi = w->s1 + (size_t)(lag + t1) * BANDS;
    double sq = w->s2[lag + t1] - w->s2[lag + t0], means = 0.0;
    for (int k = 0; k < BANDS; k++) {
        double m = (hi[k] - lo[k]) / nt;
        means += m * m;
    }
    double w2 = sq - nt * means;
    if (w2 <= 1e-6)
        return 0.0;
    return num / sqrt(v->r2[c] * w2);
}

int call_announce_check(const call_announce_ref_t *ref, const int16_t *pcm, size_t n,
                        double window_s, call_announce_result_t *res)
{
    call_feat_t w = {0};
    float *x = NULL;
    memset(res, 0, sizeof *res);
    res->state = CALL_ANN_UNKNOWN;
    if (!pcm || (double)n < (double)ref->samples / (SPEED_MIN + SPEED_STEP * (N_SPEED - 1)))
        return VG_OK;
    if (!(window_s > 0.0))
        window_s = 0.0;
    size_t want = call_announce_samples_wanted(ref, window_s);
    if (n > want)
        n = want;
    x = vg_malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        x[i] = pcm[i];
    w.feat = features(x, n, &w.frames);
    w.s1 = vg_calloc((size_t)(w.frames + 1) * BANDS, sizeof(double));
    w.s2 = vg_calloc((size_t)w.frames + 1, sizeof(double));
    for (int t = 0; t < w.frames; t++) {
        double sq = 0.0;
        for (int b = 0; b < BANDS; b++) {
            double f = w.feat[t * BANDS + b];
            w.s1[(t + 1) * BANDS + b] = w.s1[t * BANDS + b] + f;
            sq += f * f;
        }
        w.s2[t + 1] = w.s2[t] + sq;
    }

    int max_lag = (int)(window_s * CALL_DSP_RATE / HOP);
    double best_cover = 0.0, best_score = -1.0, best_full = -1.0;
    int best_lag = 0, best_full_lag = 0;
    for (int s = 0; s < N_SPEED; s++) {
        const variant_t *v = &ref->var[s];
        /* at least the first 30 % must be inside the audio we have */
        int last = w.frames - v->start[3];
        if (last > max_lag)
            last = max_lag;
        for (int lag = 0; lag <= last; lag++) {
            double sum = 0.0, sum_all = 0.0, cover = 0.0, score = -1.0;
            int used = 0, used_all = 0, opening = 1;
            for (int c = 0; c < CHUNKS; c++) {
                if (!v->informative[c])
                    continue;
                double r = chunk_corr(v, &w, lag, c);
                if (used == 0 && r < TH_CHUNK)
                    opening = 0; /* a match must begin with the announcement's opening */
                sum += r;
                used++;
                sum_all += r;
                used_all++;
                if (opening && r >= TH_CHUNK && sum / used >= TH_MEAN) {
                    cover = (double)v->start[c + 1] / v->frames;
                    score = sum / used;
                }
            }
            double full = used_all ? sum_all / used_all : 0.0;
            if (full > best_full) {
                best_full = full;
                best_full_lag = lag;
            }
            if (cover > best_cover || (cover == best_cover && cover > 0.0 && score > best_score)) {
                best_cover = cover;
                best_score = score;
                best_lag = lag;
            }
        }
    }
    res->coverage = best_cover;
    if (best_cover >= COVER_PRESENT - 1e-9) {
        res->state = CALL_ANN_PRESENT;
    } else if (best_cover >= COVER_PARTIAL - 1e-9) {
        res->state = CALL_ANN_PARTIAL;
    } else {
        res->state = CALL_ANN_ABSENT;
    }
    if (res->state == CALL_ANN_ABSENT) {
        res->score = best_full;
        res->offset_s = 0.0;
        (void)best_full_lag;
    } else {
        res->score = best_score;
        res->offset_s = (double)best_lag * HOP / CALL_DSP_RATE;
    }
    free(x);
    free(w.feat);
    free(w.s1);
    free(w.s2);
    return VG_OK;
}
