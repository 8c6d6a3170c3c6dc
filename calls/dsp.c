/* The signal-processing kit of calls/ (see calls/dsp.h): an iterative radix-2
 * FFT for the 256-point frames both detectors use, the Hann window, and a
 * windowed-sinc resampler that brings a reference recording to 8 kHz. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "calls/dsp.h"
#include "core/util.h"

void call_dsp_fft(float *re, float *im, int n)
{
    /* bit-reversal permutation */
    for (int i = 1, j = 0; i < n; i++) {
        int bit = n >> 1;
        for (; j & bit; bit >>= 1)
            j ^= bit;
        j |= bit;
        if (i < j) {
            float t = re[i];
            re[i] = re[j];
            re[j] = t;
            t = im[i];
            im[i] = im[j];
            im[j] = t;
        }
    }
    for (int len = 2; len <= n; len <<= 1) {
        double ang = -2.0 * M_PI / len;
        float wr = (float)cos(ang), wi = (float)sin(ang);
        for (int i = 0; i < n; i += len) {
            float cr = 1.0f, ci = 0.0f;
            for (int k = 0; k < len / 2; k++) {
                int a = i + k, b = i + k + len / 2;
                float tr = re[b] * cr - im[b] * ci;
                float ti = re[b] * ci + im[b] * cr;
                re[b] = re[a] - tr;
                im[b] = im[a] - ti;
                re[a] += tr;
                im[a] += ti;
                float nr = cr * wr - ci * wi;
                ci = cr * wi + ci * wr;
                cr = nr;
            }
        }
    }
}

void call_dsp_hann(float *win, int n)
{
    for (int i = 0; i < n; i++)
        win[i] = (float)(0.5 - 0.5 * cos(2.0 * M_PI * i / n));
}

void call_dsp_power(const float *x, const float *win, int n, float *power)
{
    float re[4096], im[4096];
    for (int i = 0; i < n; i++) {
        re[i] = x[i] * win[i];
        im[i] = 0.0f;
    }
    call_dsp_fft(re, im, n);
    for (int k = 0; k <= n / 2; k++)
        power[k] = re[k] * re[k] + im[k] * im[k];
}

/* Blackman-windowed sinc, `zeros` zero crossings each side of the centre. */
void call_dsp_resample(const float *in, size_t n_in, int in_rate, int out_rate, float **out,
                       size_t *n_out)
{
    size_t n = (size_t)((double)n_in * out_rate / in_rate);
    float *y = vg_malloc((n ? n : 1) * sizeof(float));
    if (in_rate == out_rate) {
        memcpy(y, in, n_in * sizeof(float));
        *out = y;
        *n_out = n_in;
        return;
    }
    const double lower = in_rate < out_rate ? in_rate : out_rate;
    const double fc = 0.45 * lower / in_rate; /* cutoff in cycles per input sample */
    const int zeros = 12;
    const double half = zeros / (2.0 * fc); /* half-width in input samples */
    for (size_t i = 0; i < n; i++) {
        double p = (double)i * in_rate / out_rate;
        long lo = (long)ceil(p - half), hi = (long)floor(p + half);
        if (lo < 0)
            lo = 0;
        if (hi > (long)n_in - 1)
            hi = (long)n_in - 1;
        double acc = 0.0;
        for (long k = lo; k <= hi; k++) {
            double d = k - p;
            double s = d == 0.0 ? 2.0 * fc : sin(2.0 * M_PI * fc * d) / (M_PI * d);
            double u = (d + half) / (2.0 * half); /* 0 .. 1 across the window */
            double w = 0.42 - 0.5 * cos(2.0 * M_PI * u) + 0.08 * cos(4.0 * M_PI * u);
            acc += in[k] * s * w;
        }
        y[i] = (float)acc;
    }
    *out = y;
    *n_out = n;
}
