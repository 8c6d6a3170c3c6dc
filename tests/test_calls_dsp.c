/* Check suite for the calls module's signal processing: the WAV reader
 * (rates, channels, G.711), the announcement check on generated speech-like
 * signals (present at an offset, absent, partial, unknown), and the voice
 * activity detector's call boundaries on known talk spurts. */
#include "calls/announce.h"
#include "calls/vad.h"
#include "core/errors.h"
#include "playback/playback.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RATE 8000

static uint32_t g_seed;

static double rnd(void)
{
    g_seed = g_seed * 1664525u + 1013904223u;
    return (g_seed >> 8) / 16777216.0;
}

/* Speech-like sound: syllables of 120-260 ms, each a harmonic series on a
 * random pitch (90-240 Hz) shaped by two random formants, with short gaps,
 * at amplitude amp. Deterministic for a seed. */
static void speechlike(int16_t *x, size_t n, uint32_t seed, double amp)
{
    g_seed = seed;
    size_t i = 0;
    while (i < n) {
        size_t syl = (size_t)((0.12 + 0.14 * rnd()) * RATE);
        double f0 = 90 + 150 * rnd(), f1 = 300 + 600 * rnd(), f2 = 900 + 1800 * rnd();
        double slope = (rnd() - 0.5) * 60.0;
        for (size_t k = 0; k < syl && i < n; k++, i++) {
            double t = (double)k / RATE, env = sin(M_PI * k / syl);
            double f = f0 + slope * t, s = 0.0;
            for (int h = 1; h * f < 3600; h++) {
                double fh = h * f;
                double g = 1.0 / (1.0 + pow((fh - f1) / 150, 2)) + 0.6 / (1.0 + pow((fh - f2) / 250, 2));
                s += g * sin(2 * M_PI * fh * t + h);
            }
            x[i] = (int16_t)(amp * env * s / 2.0);
        }
        size_t gap = (size_t)((0.02 + 0.06 * rnd()) * RATE);
        for (size_t k = 0; k < gap && i < n; k++, i++)
            x[i] = 0;
    }
}

static void add_noise(int16_t *x, size_t n, double amp, uint32_t seed)
{
    g_seed = seed;
    for (size_t i = 0; i < n; i++) {
        double v = x[i] + amp * (rnd() + rnd() + rnd() - 1.5);
        x[i] = (int16_t)(v > 32767 ? 32767 : v < -32768 ? -32768 : v);
    }
}

static void put16(FILE *f, unsigned v)
{
    fputc(v & 0xff, f);
    fputc((v >> 8) & 0xff, f);
}

static void put32(FILE *f, unsigned v)
{
    put16(f, v & 0xffff);
    put16(f, v >> 16);
}

static void write_wav(const char *path, int fmt, int ch, int rate, int bits, const void *data,
                      size_t bytes)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    fwrite("RIFF", 1, 4, f);
    put32(f, (unsigned)(36 + bytes));
    fwrite("WAVEfmt ", 1, 8, f);
    put32(f, 16);
    put16(f, (unsigned)fmt);
    put16(f, (unsigned)ch);
    put32(f, (unsigned)rate);
    put32(f, (unsigned)(rate * ch * bits / 8));
    put16(f, (unsigned)(ch * bits / 8));
    put16(f, (unsigned)bits);
    fwrite("data", 1, 4, f);
    put32(f, (unsigned)bytes);
    fwrite(data, 1, bytes, f);
    fclose(f);
}

START_TEST(test_wav_resample_stereo)
{
    /* 1 s of a 1 kHz tone at 44.1 kHz stereo (left only): 8000 mono samples
     * at half the amplitude, still 1 kHz (2000 zero crossings a second) */
    const int in_rate = 44100;
    int16_t *st = calloc(2 * (size_t)in_rate, sizeof(int16_t));
    for (int i = 0; i < in_rate; i++)
        st[2 * i] = (int16_t)(16000 * sin(2 * M_PI * 1000.0 * i / in_rate));
    char path[] = "/tmp/vigil-wav-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    write_wav(path, 1, 2, in_rate, 16, st, 4 * (size_t)in_rate);
    int16_t *pcm = NULL;
    size_t n = 0;
    char err[256];
    ck_assert_int_eq(call_wav_load(path, &pcm, &n, err, sizeof err), VG_OK);
    ck_assert_int_eq((int)n, 8000);
    int peak = 0, crossings = 0;
    for (size_t i = 400; i < n - 400; i++) {
        if (abs(pcm[i]) > peak)
            peak = abs(pcm[i]);
        crossings += (pcm[i] < 0) != (pcm[i - 1] < 0);
    }
    ck_assert_int_gt(peak, 7600);
    ck_assert_int_lt(peak, 8400);
    ck_assert_int_gt(crossings, 1780); /* 7200 samples = 0.9 s: 1800 crossings */
    ck_assert_int_lt(crossings, 1820);
    free(pcm);
    unlink(path);
    free(st);
}
END_TEST

START_TEST(test_wav_g711_exact)
{
    uint8_t codes[256];
    for (int i = 0; i < 256; i++)
        codes[i] = (uint8_t)i;
    char path[] = "/tmp/vigil-wav-XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    char err[256];
    for (int fmt = 6; fmt <= 7; fmt++) {
        write_wav(path, fmt, 1, RATE, 8, codes, sizeof codes);
        int16_t *pcm = NULL;
        size_t n = 0;
        ck_assert_int_eq(call_wav_load(path, &pcm, &n, err, sizeof err), VG_OK);
        ck_assert_int_eq((int)n, 256);
        for (int i = 0; i < 256; i++)
            ck_assert_int_eq(pcm[i], fmt == 6 ? pb_alaw_linear((uint8_t)i) : pb_ulaw_linear((uint8_t)i));
        free(pcm);
    }
    /* a WAV whose data chunk claims more than the file holds keeps what it has */
    write_wav(path, 1, 1, RATE, 16, codes, sizeof codes);
    FILE *f = fopen(path, "r+b");
    fseek(f, 40, SEEK_SET);
    put32(f, 1u << 30);
    fclose(f);
    int16_t *pcm = NULL;
    size_t n = 0;
    ck_assert_int_eq(call_wav_load(path, &pcm, &n, err, sizeof err), VG_OK);
    ck_assert_int_eq((int)n, 128);
    free(pcm);
    unlink(path);
    ck_assert_int_eq(call_wav_load(path, &pcm, &n, err, sizeof err), VG_ENOTFOUND);
}
END_TEST

static call_announce_ref_t *make_ref(int16_t *ann, size_t n)
{
    speechlike(ann, n, 42, 9000);
    call_announce_ref_t *ref = NULL;
    char err[256];
    ck_assert_int_eq(call_announce_ref_from_pcm(ann, n, &ref, err, sizeof err), VG_OK);
    return ref;
}

START_TEST(test_announce_states)
{
    const size_t an = 5 * RATE, cn = 30 * RATE;
    int16_t *ann = malloc(an * sizeof(int16_t)), *call = calloc(cn, sizeof(int16_t));
    call_announce_ref_t *ref = make_ref(ann, an);
    ck_assert(fabs(call_announce_ref_seconds(ref) - 5.0) < 1e-9);
    call_announce_result_t res;

    /* present at 7.5 s, 6 dB quieter, with noise and other speech after it */
    for (size_t i = 0; i < an; i++)
        call[(size_t)(7.5 * RATE) + i] = ann[i] / 2;
    speechlike(call + (size_t)13.0 * RATE, 15 * RATE, 7, 6000);
    add_noise(call, cn, 300, 1);
    ck_assert_int_eq(call_announce_check(ref, call, cn, 20.0, &res), VG_OK);
    ck_assert_str_eq(call_announce_state_name(res.state), "present");
    ck_assert(fabs(res.offset_s - 7.5) < 0.05);
    ck_assert(res.score > 0.6);

    /* absent: the same call without it */
    memset(call, 0, cn * sizeof(int16_t));
    speechlike(call + RATE, 28 * RATE, 99, 6000);
    add_noise(call, cn, 300, 2);
    ck_assert_int_eq(call_announce_check(ref, call, cn, 20.0, &res), VG_OK);
    ck_assert_msg(res.state == CALL_ANN_ABSENT, "%s score %.3f coverage %.2f at %.2f",
                  call_announce_state_name(res.state), res.score, res.coverage, res.offset_s);

    /* partial: its first 45 %, then other speech */
    memset(call, 0, cn * sizeof(int16_t));
    memcpy(call + RATE, ann, (size_t)(0.45 * an) * sizeof(int16_t));
    speechlike(call + RATE + (size_t)(0.45 * an) + RATE / 2, 20 * RATE, 5, 6000);
    ck_assert_int_eq(call_announce_check(ref, call, cn, 20.0, &res), VG_OK);
    ck_assert_str_eq(call_announce_state_name(res.state), "partial");
    ck_assert(res.coverage >= 0.3 && res.coverage < 0.8);

    /* starting after the window: not looked for */
    memset(call, 0, cn * sizeof(int16_t));
    memcpy(call + 22 * RATE, ann, an * sizeof(int16_t));
    ck_assert_int_eq(call_announce_check(ref, call, cn, 20.0, &res), VG_OK);
    ck_assert_str_eq(call_announce_state_name(res.state), "absent");
    ck_assert_int_eq(call_announce_check(ref, call, cn, 25.0, &res), VG_OK);
    ck_assert_str_eq(call_announce_state_name(res.state), "present");

    /* unknown: no audio, or shorter than the announcement */
    ck_assert_int_eq(call_announce_check(ref, NULL, 0, 20.0, &res), VG_OK);
    ck_assert_str_eq(call_announce_state_name(res.state), "unknown");
    ck_assert_int_eq(call_announce_check(ref, ann, an / 2, 20.0, &res), VG_OK);
    ck_assert_str_eq(call_announce_state_name(res.state), "unknown");

    /* digital silence: absent, nothing divides by zero */
    memset(call, 0, cn * sizeof(int16_t));
    ck_assert_int_eq(call_announce_check(ref, call, cn, 20.0, &res), VG_OK);
    ck_assert_str_eq(call_announce_state_name(res.state), "absent");
    ck_assert(isfinite(res.score));

    call_announce_ref_free(ref);
    free(ann);
    free(call);
}
END_TEST

START_TEST(test_announce_bad_refs)
{
    int16_t *x = calloc(40 * RATE, sizeof(int16_t));
    call_announce_ref_t *ref = NULL;
    char err[256];
    ck_assert_int_eq(call_announce_ref_from_pcm(x, RATE / 2, &ref, err, sizeof err), VG_EINVAL);
    ck_assert_ptr_null(ref);
    ck_assert_int_eq(call_announce_ref_from_pcm(x, 31 * RATE, &ref, err, sizeof err), VG_EINVAL);
    ck_assert_int_eq(call_announce_ref_from_pcm(x, 5 * RATE, &ref, err, sizeof err), VG_EINVAL);
    ck_assert(strstr(err, "silent") != NULL);
    free(x);
}
END_TEST

/* ---- VAD ---- */

typedef struct {
    int n;
    int64_t start[8], end[8];
} calls_seen_t;

static void on_call(void *ctx, int64_t start, int64_t end)
{
    calls_seen_t *c = ctx;
    if (c->n < 8) {
        c->start[c->n] = start;
        c->end[c->n] = end;
    }
    c->n++;
}

#define T0 1700000000000000LL
#define SEC 1000000LL

/* Feeds x in packets of `chunk` samples with their times, as capture does. */
static void feed_all(call_vad_t *v, const int16_t *x, size_t n, int64_t t0, size_t chunk)
{
    for (size_t i = 0; i < n; i += chunk) {
        size_t m = n - i < chunk ? n - i : chunk;
        call_vad_feed(v, x + i, m, t0 + (int64_t)i * SEC / RATE);
    }
}

static int near(int64_t a, int64_t b)
{
    return llabs(a - b) <= SEC / 2;
}

START_TEST(test_vad_boundaries)
{
    /* talk 1-4 s, silence, talk 6-10 (gap 2 s: same call), then silence to
     * 25 s, talk 25-28 s, then a 0.5 s cough at 40 s; line hiss throughout */
    const size_t n = 50 * RATE;
    int16_t *x = calloc(n, sizeof(int16_t));
    speechlike(x + 1 * RATE, 3 * RATE, 1, 8000);
    speechlike(x + 6 * RATE, 4 * RATE, 2, 3000);
    speechlike(x + 25 * RATE, 3 * RATE, 3, 12000);
    speechlike(x + 40 * RATE, RATE / 2, 4, 8000);
    add_noise(x, n, 40, 5);
    calls_seen_t seen = {0};
    call_vad_config_t cfg = {.gap_s = 8.0, .min_call_s = 2.0};
    call_vad_t *v = call_vad_new(&cfg, on_call, &seen);
    feed_all(v, x, n, T0, 160);
    call_vad_flush(v);
    ck_assert_int_eq(seen.n, 2);
    ck_assert_msg(near(seen.start[0], T0 + 1 * SEC) && near(seen.end[0], T0 + 10 * SEC),
                  "call 1: %.2f .. %.2f", (seen.start[0] - T0) / 1e6, (seen.end[0] - T0) / 1e6);
    ck_assert_msg(near(seen.start[1], T0 + 25 * SEC) && near(seen.end[1], T0 + 28 * SEC),
                  "call 2: %.2f .. %.2f", (seen.start[1] - T0) / 1e6, (seen.end[1] - T0) / 1e6);
    call_vad_free(v);

    /* a shorter gap setting splits the first call in two; odd packet sizes */
    memset(&seen, 0, sizeof seen);
    cfg.gap_s = 1.5;
    v = call_vad_new(&cfg, on_call, &seen);
    feed_all(v, x, n, T0, 77);
    call_vad_flush(v);
    ck_assert_int_eq(seen.n, 3);
    ck_assert(near(seen.end[0], T0 + 4 * SEC) && near(seen.start[1], T0 + 6 * SEC));
    call_vad_free(v);
    free(x);
}
END_TEST

START_TEST(test_vad_stream_gap_and_flush)
{
    /* talk, then the stream stops for 20 s (no packets) and comes back with
     * talk: two calls; the second is still open at the end and flush ends it */
    const size_t n = 5 * RATE;
    int16_t *x = calloc(n, sizeof(int16_t));
    speechlike(x + RATE, 3 * RATE, 9, 8000);
    calls_seen_t seen = {0};
    call_vad_config_t cfg = {.gap_s = 8.0, .min_call_s = 2.0};
    call_vad_t *v = call_vad_new(&cfg, on_call, &seen);
    feed_all(v, x, n, T0, 160);
    ck_assert_int_eq(seen.n, 0);
    ck_assert(call_vad_open_since(v) != 0);
    feed_all(v, x, n, T0 + 25 * SEC, 160);
    ck_assert_int_eq(seen.n, 1);
    ck_assert(near(seen.start[0], T0 + SEC) && near(seen.end[0], T0 + 4 * SEC));
    call_vad_flush(v);
    ck_assert_int_eq(seen.n, 2);
    ck_assert(near(seen.start[1], T0 + 26 * SEC) && near(seen.end[1], T0 + 29 * SEC));
    ck_assert(call_vad_open_since(v) == 0);
    /* steady noise alone (even loud) is no call */
    memset(&seen, 0, sizeof seen);
    int16_t *noise = calloc(30 * RATE, sizeof(int16_t));
    add_noise(noise, 30 * RATE, 2000, 3);
    feed_all(v, noise, 30 * RATE, T0 + 100 * SEC, 160);
    call_vad_flush(v);
    ck_assert_int_eq(seen.n, 0);
    call_vad_free(v);
    free(noise);
    free(x);
}
END_TEST

static Suite *calls_dsp_suite(void)
{
    Suite *s = suite_create("calls_dsp");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_wav_resample_stereo);
    tcase_add_test(tc, test_wav_g711_exact);
    tcase_add_test(tc, test_announce_states);
    tcase_add_test(tc, test_announce_bad_refs);
    tcase_add_test(tc, test_vad_boundaries);
    tcase_add_test(tc, test_vad_stream_gap_and_flush);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(calls_dsp_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
