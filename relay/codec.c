/* Pure helpers of the relay, kept free of GStreamer so the unit suite can
 * drive them: which codecs are relayed and how, whether an access unit
 * carries its own parameter sets, and URL text that is safe to log. */
#include "relay/relay_private.h"

#include <stdio.h>
#include <string.h>

rly_codec_t rly_codec_of(enum AVCodecID id)
{
    switch (id) {
    case AV_CODEC_ID_H264: return RLY_C_H264;
    case AV_CODEC_ID_HEVC: return RLY_C_H265;
    case AV_CODEC_ID_PCM_ALAW: return RLY_C_PCMA;
    case AV_CODEC_ID_PCM_MULAW: return RLY_C_PCMU;
    case AV_CODEC_ID_AAC: return RLY_C_AAC;
    case AV_CODEC_ID_OPUS: return RLY_C_OPUS;
    default: return RLY_C_NONE;
    }
}

int rly_codec_is_video(rly_codec_t c)
{
    return c == RLY_C_H264 || c == RLY_C_H265;
}

/* Length of the start code at p (3 or 4 bytes), 0 if none. */
static size_t start_code(const uint8_t *p, size_t left)
{
    if (left >= 3 && p[0] == 0 && p[1] == 0 && p[2] == 1)
        return 3;
    if (left >= 4 && p[0] == 0 && p[1] == 0 && p[2] == 0 && p[3] == 1)
        return 4;
    return 0;
}

int rly_is_annexb(const uint8_t *data, size_t size)
{
    return data && start_code(data, size) > 0;
}

/* Offset of the next start code at or after from, size if none. */
static size_t next_start(const uint8_t *d, size_t size, size_t from)
{
    for (size_t i = from; i + 3 <= size; i++) {
        if (d[i] == 0 && d[i + 1] == 0 && (d[i + 2] == 1 || (i + 4 <= size && d[i + 2] == 0 &&
                                                              d[i + 3] == 1)))
            return i;
    }
    return size;
}

/* Only the NAL units before the first slice are looked at: parameter sets
 * precede the picture, and a keyframe's slices are most of its bytes. */
int rly_au_has_params(rly_codec_t c, const uint8_t *d, size_t size)
{
    size_t at = next_start(d, size, 0);
    while (at < size) {
        size_t sc = start_code(d + at, size - at);
        size_t nal = at + sc;
        if (nal >= size)
            return 0;
        if (c == RLY_C_H264) {
            int type = d[nal] & 0x1f;
            if (type == 7)
                return 1;
            if (type >= 1 && type <= 5)
                return 0;
        } else {
            int type = (d[nal] >> 1) & 0x3f;
            if (type == 33)
                return 1;
            if (type <= 31)
                return 0;
        }
        at = next_start(d, size, nal + 1);
    }
    return 0;
}

/* Credentials ("user:pass@") and the query (an SRT passphrase lives there)
 * never reach a log. */
void rly_url_for_log(const char *url, char *out, size_t size)
{
    char tmp[512];
    vg_url_redact(url, tmp, sizeof(tmp));
    char *q = strchr(tmp, '?');
    if (q)
        snprintf(q, sizeof(tmp) - (size_t)(q - tmp), "?***");
    snprintf(out, size, "%s", tmp);
}
