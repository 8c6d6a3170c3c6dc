/* Reading WAV files into 8 kHz mono 16-bit PCM for the announcement check:
 * the reference announcement an admin installs (whatever rate and format it
 * was recorded in) and call audio exported as WAV. G.711 is decoded with
 * playback's exact tables, the same ones the archive's WAV route uses. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "calls/announce.h"
#include "calls/dsp.h"
#include "core/errors.h"
#include "core/util.h"
#include "playback/playback.h"

enum { FMT_PCM = 1, FMT_FLOAT = 3, FMT_ALAW = 6, FMT_MULAW = 7, FMT_EXTENSIBLE = 0xfffe };

static uint32_t le32(const uint8_t *p)
{
    return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

/* One sample of frame i, channel c, as a float in 16-bit units. */
static float sample_at(const uint8_t *d, int fmt, int bits, int ch, size_t i, int c)
{
    size_t bytes = (size_t)bits / 8;
    const uint8_t *p = d + (i * (size_t)ch + (size_t)c) * bytes;
    switch (fmt) {
    case FMT_ALAW:
        return pb_alaw_linear(*p);
    case FMT_MULAW:
        return pb_ulaw_linear(*p);
    case FMT_FLOAT: {
        float f;
        uint32_t u = le32(p);
        memcpy(&f, &u, sizeof f);
        return isfinite(f) ? f * 32767.0f : 0.0f;
    }
    default:
        if (bits == 8)
            return ((int)p[0] - 128) * 256.0f;
        return (float)(int16_t)le16(p);
    }
}

int call_wav_load(const char *path, int16_t **pcm, size_t *n, char *err, size_t err_size)
{
    int rc = VG_EINVAL;
    FILE *f = NULL;
    uint8_t *buf = NULL;
    float *mono = NULL, *resampled = NULL;
    int16_t *outp = NULL;
    struct stat st;

    *pcm = NULL;
    *n = 0;
    f = fopen(path, "rb");
    if (!f) {
        rc = errno == ENOENT ? VG_ENOTFOUND : VG_EIO;
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
        goto cleanup;
    }
    if (fstat(fileno(f), &st) != 0 || st.st_size < 44 || st.st_size > (off_t)CALL_WAV_MAX_BYTES) {
        snprintf(err, err_size, "%s: not a WAV file of 44 bytes to %u MiB", path,
                 CALL_WAV_MAX_BYTES >> 20);
        goto cleanup;
    }
    size_t size = (size_t)st.st_size;
    buf = vg_malloc(size);
    if (fread(buf, 1, size, f) != size) {
        rc = VG_EIO;
        snprintf(err, err_size, "%s: short read", path);
        goto cleanup;
    }
    if (memcmp(buf, "RIFF", 4) != 0 || memcmp(buf + 8, "WAVE", 4) != 0) {
        snprintf(err, err_size, "%s: not a RIFF/WAVE file", path);
        goto cleanup;
    }
    /* Walk the chunks: fmt first, then data (other chunks skipped). */
    int fmt = 0, ch = 0, bits = 0;
    uint32_t rate = 0;
    const uint8_t *data = NULL;
    size_t data_len = 0;
    for (size_t pos = 12; pos + 8 <= size;) {
        uint32_t len = le32(buf + pos + 4);
        const uint8_t *body = buf + pos + 8;
        size_t avail = size - pos - 8;
        if (memcmp(buf + pos, "fmt ", 4) == 0 && len >= 16 && len <= avail) {
            fmt = le16(body);
            ch = le16(body + 2);
            rate = le32(body + 4);
            bits = le16(body + 14);
            if (fmt == FMT_EXTENSIBLE && len >= 26)
                fmt = le16(body + 24); /* the sub-format GUID starts with the tag */
        } else if (memcmp(buf + pos, "data", 4) == 0) {
            data = body;
            data_len = len < avail ? len : avail; /* a truncated file keeps what it has */
            break;
        }
        if (len > avail)
            break;
        pos += 8 + (size_t)len + (len & 1);
    }
    if (!fmt || !data) {
        snprintf(err, err_size, "%s: no fmt or data chunk", path);
        goto cleanup;
    }
    int ok = ch >= 1 && ch <= 8 && rate >= 4000 && rate <= 192000 &&
             ((fmt == FMT_PCM && (bits == 8 || bits == 16)) || (fmt == FMT_FLOAT && bits == 32) ||
              ((fmt == FMT_ALAW || fmt == FMT_MULAW) && bits == 8));
    if (!ok) {
        snprintf(err, err_size,
                 "%s: unsupported WAV format %d (%d bits, %d channels, %u Hz): use PCM 8/16-bit, "
                 "float, A-law or mu-law",
                 path, fmt, bits, ch, rate);
        goto cleanup;
    }
    size_t frames = data_len / ((size_t)ch * (size_t)bits / 8);
    mono = vg_malloc((frames ? frames : 1) * sizeof(float));
    for (size_t i = 0; i < frames; i++) {
        float s = 0.0f;
        for (int c = 0; c < ch; c++)
            s += sample_at(data, fmt, bits, ch, i, c);
        mono[i] = s / (float)ch;
    }
    size_t n_out;
    call_dsp_resample(mono, frames, (int)rate, CALL_DSP_RATE, &resampled, &n_out);
    outp = vg_malloc((n_out ? n_out : 1) * sizeof(int16_t));
    for (size_t i = 0; i < n_out; i++) {
        float v = resampled[i];
        outp[i] = (int16_t)(v > 32767.0f ? 32767 : v < -32768.0f ? -32768 : lrintf(v));
    }
    *pcm = outp;
    *n = n_out;
    outp = NULL;
    rc = VG_OK;
cleanup:
    if (f)
        fclose(f);
    free(buf);
    free(mono);
    free(resampled);
    free(outp);
    return rc;
}
