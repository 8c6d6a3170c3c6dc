/* Private to calls/: the small signal-processing kit the announcement check
 * and the voice-activity detector share (a radix-2 FFT, WAV reading into
 * 8 kHz mono PCM, resampling). Not part of the module's public API. */
#ifndef CALL_DSP_H
#define CALL_DSP_H

#include <stddef.h>
#include <stdint.h>

#define CALL_DSP_RATE 8000

/* In-place complex FFT of n points (n a power of two, <= 4096). */
void call_dsp_fft(float *re, float *im, int n);

/* Power spectrum |X[k]|^2, k = 0 .. n/2, of n real samples after a Hann
 * window (win: n coefficients from call_dsp_hann). */
void call_dsp_power(const float *x, const float *win, int n, float *power);
void call_dsp_hann(float *win, int n);

/* Resamples mono PCM from in_rate to out_rate with a windowed-sinc low-pass
 * at 0.45 of the lower rate: *out is malloc'd, *n_out its length. */
void call_dsp_resample(const float *in, size_t n_in, int in_rate, int out_rate, float **out,
                       size_t *n_out);

#endif
