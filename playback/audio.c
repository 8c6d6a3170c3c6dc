/* Audio for people: a source's range as 16-bit mono PCM WAV built on demand
 * (audio.wav, clip.wav, and the samples peaks are drawn from).
 *
 * The WAV is wall-clock true: sample n is at from + n / rate. Every decoded
 * packet or frame is placed at the sample of its wall time (segment start +
 * its timestamp), so gaps between segments are silence and a byte offset
 * maps to a time by arithmetic alone (byte 44 + 2n is sample n). Where two
 * segments overlap by a rounding sample, the later one wins.
 *
 * G.711 is decoded here with tables (sample- and bit-exact; each packet
 * stands alone, so a Range read gives the same bytes as the whole file).
 * AAC and Opus go through libavcodec; after a seek the decoder starts
 * PREROLL_S early so its state has settled by the first sample served, and
 * frames are placed by their own timestamps (best effort: a decoder's
 * priming is what libavcodec says it is). */
#include "playback/playback.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define WIN_SAMPLES 65536 /* decoded per window: 128 KiB a request */
#define PREROLL_S 1       /* AAC/Opus decoding starts this early after a seek */
#define MAX_CHANNELS 8

/* ---- G.711 (ITU-T G.711: segment/quantization bits, sign, even-bit
 * inversion 0x55 for A-law, bias 0x84 and complement for mu-law) ---- */

int16_t pb_alaw_linear(uint8_t a)
{
    int v = a ^ 0x55;
    int mant = v & 0x0f;
    int seg = (v & 0x70) >> 4;
    int mag = seg ? ((mant << 1) + 1 + 32) << (seg + 2) : ((mant << 1) + 1) << 3;
    return (int16_t)((v & 0x80) ? mag : -mag);
}

int16_t pb_ulaw_linear(uint8_t u)
{
    int v = (uint8_t)~u;
    int mag = (((v & 0x0f) << 3) + 0x84) << ((v & 0x70) >> 4);
    return (int16_t)((v & 0x80) ? 0x84 - mag : mag - 0x84);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static void put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void pb_wav_header(uint8_t out[PB_WAV_HEADER], uint32_t rate, uint32_t n_samples)
{
    uint32_t data = n_samples * 2;
    memcpy(out, "RIFF", 4);
    put_le32(out + 4, 36 + data);
    memcpy(out + 8, "WAVEfmt ", 8);
    put_le32(out + 16, 16);       /* fmt chunk size */
    put_le16(out + 20, 1);        /* PCM */
    put_le16(out + 22, 1);        /* mono */
    put_le32(out + 24, rate);
    put_le32(out + 28, rate * 2); /* bytes a second */
    put_le16(out + 32, 2);        /* block align */
    put_le16(out + 34, 16);       /* bits a sample */
    memcpy(out + 36, "data", 4);
    put_le32(out + 40, data);
}

/* floor(a / b) for b > 0, whatever a's sign. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && a < 0) ? q - 1 : q;
}

int64_t pb_wav_samples(int64_t from_us, int64_t to_us, int rate)
{
    return to_us > from_us ? floor_div((to_us - from_us) * rate, 1000000) : 0;
}

int64_t pb_sample_at(int64_t from_us, int64_t at_us, int rate)
{
    return floor_div((at_us - from_us) * rate + 500000, 1000000);
}

static int codec_in(const char *codecs, const char *const *names)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", codecs);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        for (size_t i = 0; names[i]; i++) {
            if (strcmp(t, names[i]) == 0)
                return 1;
        }
    }
    return 0;
}

int pb_codecs_have_audio(const char *codecs)
{
    static const char *const audio[] = {"pcm_alaw", "pcm_mulaw", "aac", "opus", "mp3",
                                        "pcm_s16le", "pcm_s16be", "flac", NULL};
    return codec_in(codecs, audio);
}

int pb_codecs_have_video(const char *codecs)
{
    static const char *const video[] = {"h264", "hevc", "h265", "mjpeg", "mpeg4", "vp8",
                                        "vp9", "av1", NULL};
    return codec_in(codecs, video);
}

/* ---- the on-demand WAV ---- */

struct pb_wav {
    char *data_dir;
    idx_segment_t *segs;
    size_t n_segs;
    int64_t from_us;
    int rate;
    int64_t n_samples;
    /* the window: samples [win_at, win_at + win_n) of the WAV */
    int16_t *win;
    int64_t win_at;
    int64_t win_n;
    /* the decoding cursor */
    size_t seg;              /* the open segment (valid when ic) */
    size_t next_seg;         /* the one to open next */
    AVFormatContext *ic;
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame;
    int stream;
    int g711;                /* 0: libavcodec, 1: A-law, 2: mu-law */
    int64_t base;            /* the WAV sample of the open segment's time 0 */
    int eof;                 /* no segment left */
    int read_failed;         /* a segment ended early on a read error */
    /* decoded samples not yet (wholly) placed: [pend_at, pend_at + pend_n) */
    int16_t *pend;
    int64_t pend_at;
    int pend_n, pend_cap;
    int64_t cursor_end;      /* the window end the cursor has filled to; -1: reset */
    /* Samples read for the window after this one: [cursor_end, + carry_n),
     * zero where nothing was read (see fill_window). At most WIN_SAMPLES. */
    int16_t *carry;
    int64_t carry_n;
};

uint64_t pb_wav_size(const pb_wav_t *w)
{
    return PB_WAV_HEADER + 2 * (uint64_t)w->n_samples;
}

int pb_wav_read_failed(const pb_wav_t *w)
{
    return w->read_failed;
}

int pb_wav_rate(const pb_wav_t *w)
{
    return w->rate;
}

static void close_segment(pb_wav_t *w)
{
    avcodec_free_context(&w->dec);
    avformat_close_input(&w->ic);
    w->pend_n = 0;
}

/* Opens segs[i] and its first audio stream: VG_ENOTFOUND when it has none. */
static int open_segment(pb_wav_t *w, size_t i)
{
    close_segment(w);
    const idx_segment_t *s = &w->segs[i];
    char *path = vg_asprintf("%s/%s", w->data_dir, s->path);
    int rc = VG_EMEDIA;
    int ret = avformat_open_input(&w->ic, path, NULL, NULL);
    if (ret >= 0)
        ret = avformat_find_stream_info(w->ic, NULL);
    if (ret < 0) {
        vg_warn("audio: cannot read segment %s: %s", s->path, av_err2str(ret));
        goto cleanup;
    }
    w->stream = av_find_best_stream(w->ic, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
    if (w->stream < 0) {
        rc = VG_ENOTFOUND;
        goto cleanup;
    }
    const AVCodecParameters *par = w->ic->streams[w->stream]->codecpar;
    w->g711 = par->codec_id == AV_CODEC_ID_PCM_ALAW ? 1 : par->codec_id == AV_CODEC_ID_PCM_MULAW ? 2 : 0;
    if (!w->g711) {
        const AVCodec *codec = avcodec_find_decoder(par->codec_id);
        if (!codec || !(w->dec = avcodec_alloc_context3(codec)) ||
            avcodec_parameters_to_context(w->dec, par) < 0) {
            vg_warn("audio: no decoder for %s in %s", avcodec_get_name(par->codec_id), s->path);
            goto cleanup;
        }
        w->dec->pkt_timebase = w->ic->streams[w->stream]->time_base;
        if ((ret = avcodec_open2(w->dec, codec, NULL)) < 0) {
            vg_warn("audio: cannot open the %s decoder: %s", codec->name, av_err2str(ret));
            goto cleanup;
        }
    }
    for (unsigned k = 0; k < w->ic->nb_streams; k++) {
        if ((int)k != w->stream)
            w->ic->streams[k]->discard = AVDISCARD_ALL;
    }
    w->seg = i;
    w->base = pb_sample_at(w->from_us, s->start_us, w->rate);
    rc = VG_OK;

cleanup:
    free(path);
    if (rc != VG_OK)
        close_segment(w);
    return rc;
}

static int64_t seg_end_sample(const pb_wav_t *w, size_t i)
{
    return pb_sample_at(w->from_us, w->segs[i].end_us, w->rate);
}

static void pend_reserve(pb_wav_t *w, int n)
{
    if (n > w->pend_cap) {
        w->pend_cap = n;
        w->pend = vg_realloc(w->pend, (size_t)n * sizeof(*w->pend));
    }
}

static int16_t clip16(double v)
{
    long s = lrint(v);
    return (int16_t)(s > 32767 ? 32767 : s < -32768 ? -32768 : s);
}

/* One sample of a decoded frame (channel c, index i) as a double in the
 * int16 scale. */
static double frame_sample(const AVFrame *f, int c, int i, int channels)
{
    int planar = av_sample_fmt_is_planar(f->format);
    const uint8_t *p = planar ? f->extended_data[c] : f->extended_data[0];
    int k = planar ? i : i * channels + c;
    switch (av_get_packed_sample_fmt(f->format)) {
    case AV_SAMPLE_FMT_S16: return ((const int16_t *)p)[k];
    case AV_SAMPLE_FMT_S32: return ((const int32_t *)p)[k] / 65536.0;
    case AV_SAMPLE_FMT_FLT: {
        float v;
        memcpy(&v, p + (size_t)k * sizeof(v), sizeof(v));
        return v * 32768.0;
    }
    case AV_SAMPLE_FMT_DBL: {
        double v;
        memcpy(&v, p + (size_t)k * sizeof(v), sizeof(v));
        return v * 32768.0;
    }
    case AV_SAMPLE_FMT_U8: return (p[k] - 128) * 256.0;
    default: return 0;
    }
}

/* Decoded frame -> pend (mono: channels averaged). */
static void frame_to_pend(pb_wav_t *w, const AVFrame *f)
{
    int channels = f->ch_layout.nb_channels > 0 ? f->ch_layout.nb_channels : 1;
    if (channels > MAX_CHANNELS)
        channels = MAX_CHANNELS;
    pend_reserve(w, f->nb_samples);
    for (int i = 0; i < f->nb_samples; i++) {
        double sum = 0;
        for (int c = 0; c < channels; c++)
            sum += frame_sample(f, c, i, channels);
        w->pend[i] = clip16(sum / channels);
    }
    w->pend_n = f->nb_samples;
    int64_t ts = f->best_effort_timestamp != AV_NOPTS_VALUE ? f->best_effort_timestamp : f->pts;
    AVRational tb = w->ic->streams[w->stream]->time_base;
    w->pend_at = w->base + av_rescale_q(ts == AV_NOPTS_VALUE ? 0 : ts, tb, (AVRational){1, w->rate});
}

/* Fills pend with the next decoded samples of the open segment: 1 when it
 * did, 0 at the segment's end (a read error ends it too: what was readable
 * is served, the rest of that segment is silence). */
static int decode_next(pb_wav_t *w)
{
    AVStream *st = w->ic->streams[w->stream];
    for (;;) {
        if (w->dec) {
            int ret = avcodec_receive_frame(w->dec, w->frame);
            if (ret >= 0) {
                frame_to_pend(w, w->frame);
                av_frame_unref(w->frame);
                return 1;
            }
            if (ret == AVERROR_EOF)
                return 0;
        }
        int ret = av_read_frame(w->ic, w->pkt);
        if (ret < 0) {
            /* a failed read at a fragment's boundary ends as EOF with the
             * error left on the I/O context */
            if (ret != AVERROR_EOF || (w->ic->pb && w->ic->pb->error < 0)) {
                vg_warn("audio: reading %s stopped: %s", w->segs[w->seg].path,
                        av_err2str(ret != AVERROR_EOF ? ret : w->ic->pb->error));
                w->read_failed = 1;
            }
            if (!w->dec)
                return 0;
            avcodec_send_packet(w->dec, NULL); /* drain */
            continue;
        }
        if (w->pkt->stream_index != w->stream) {
            av_packet_unref(w->pkt);
            continue;
        }
        if (w->g711) {
            int channels = st->codecpar->ch_layout.nb_channels > 0
                               ? st->codecpar->ch_layout.nb_channels : 1;
            int n = w->pkt->size / channels;
            pend_reserve(w, n);
            for (int i = 0; i < n; i++) {
                int sum = 0;
                for (int c = 0; c < channels; c++) {
                    uint8_t b = w->pkt->data[i * channels + c];
                    sum += w->g711 == 1 ? pb_alaw_linear(b) : pb_ulaw_linear(b);
                }
                w->pend[i] = (int16_t)(sum / channels);
            }
            w->pend_n = n;
            int64_t ts = w->pkt->pts != AV_NOPTS_VALUE ? w->pkt->pts : w->pkt->dts;
            w->pend_at = w->base + av_rescale_q(ts == AV_NOPTS_VALUE ? 0 : ts, st->time_base,
                                                (AVRational){1, w->rate});
            av_packet_unref(w->pkt);
            if (n > 0)
                return 1;
            continue;
        }
        ret = avcodec_send_packet(w->dec, w->pkt);
        av_packet_unref(w->pkt);
        if (ret < 0 && ret != AVERROR(EAGAIN))
            vg_debug("audio: a packet of %s does not decode: %s", w->segs[w->seg].path,
                     av_err2str(ret));
    }
}

/* The one place that positions a segment's reading near a sample: libav's
 * seek on the audio stream (the files' fragments are indexed by the demuxer
 * as it goes), falling back to reading from the start. Decoding still
 * drops whatever lies before the target, so a seek landing early is only
 * work, never a wrong sample. */
static void seek_segment(pb_wav_t *w, int64_t sample)
{
    int64_t rel = sample - w->base - (w->g711 ? 0 : (int64_t)PREROLL_S * w->rate);
    if (rel <= 0)
        return;
    AVRational tb = w->ic->streams[w->stream]->time_base;
    int64_t ts = av_rescale_q(rel, (AVRational){1, w->rate}, tb);
    if (av_seek_frame(w->ic, w->stream, ts, AVSEEK_FLAG_BACKWARD) < 0) {
        /* read from the start instead: reopen, the position is unknown now */
        open_segment(w, w->seg);
        return;
    }
    if (w->dec)
        avcodec_flush_buffers(w->dec);
}

static void carry_clear(pb_wav_t *w)
{
    if (w->carry_n > 0)
        memset(w->carry, 0, (size_t)w->carry_n * sizeof(*w->carry));
    w->carry_n = 0;
}

/* Sets aside n samples that start at sample `at` of the window after the
 * one ending at end, over what was set aside before (read later, so it
 * wins). Beyond WIN_SAMPLES past end they are dropped: that far, the later
 * segment's own audio has taken over (segments overlap by a packet or two). */
static void carry_put(pb_wav_t *w, int64_t end, int64_t at, const int16_t *src, int64_t n)
{
    int64_t off = at - end;
    if (off >= WIN_SAMPLES)
        return;
    if (off + n > WIN_SAMPLES)
        n = WIN_SAMPLES - off;
    if (!w->carry)
        w->carry = vg_calloc(WIN_SAMPLES, sizeof(*w->carry));
    memcpy(w->carry + off, src, (size_t)n * sizeof(*src));
    if (off + n > w->carry_n)
        w->carry_n = off + n;
}

/* A segment after the open one starts before sample end: its audio may
 * begin while the open one's still runs (a segment's audio track runs a
 * packet past the video cut that ended it). */
static int later_segment_before(const pb_wav_t *w, int64_t end)
{
    return w->next_seg < w->n_segs &&
           pb_sample_at(w->from_us, w->segs[w->next_seg].start_us, w->rate) < end;
}

/* Places the cursor before sample s: in the segment before the first that
 * ends after s, since a segment's audio may run a few ms past the end its
 * row gives (the track is longer than the video that cut it), and reading
 * it from the start of the file would have put those samples there too. */
static int cursor_reset(pb_wav_t *w, int64_t s)
{
    close_segment(w);
    carry_clear(w);
    w->eof = 0;
    size_t i = 0;
    while (i < w->n_segs && seg_end_sample(w, i) <= s)
        i++;
    if (i > 0 && i < w->n_segs)
        i--;
    w->next_seg = i;
    if (i >= w->n_segs) {
        w->eof = 1;
        return VG_OK;
    }
    int rc = open_segment(w, i);
    w->next_seg = i + 1;
    if (rc == VG_ENOTFOUND)
        return VG_OK; /* no audio in this one: silence, go on */
    if (rc != VG_OK)
        return rc;
    seek_segment(w, s);
    return VG_OK;
}

/* Next pending samples from the cursor, opening segments as needed: 1, or 0
 * when no segment is left, or VG_EMEDIA. Segments starting at or after
 * stop are not opened (they cannot touch this window). */
static int cursor_next(pb_wav_t *w, int64_t stop)
{
    for (;;) {
        if (w->ic && decode_next(w))
            return 1;
        close_segment(w);
        if (w->next_seg >= w->n_segs) {
            w->eof = 1;
            return 0;
        }
        if (pb_sample_at(w->from_us, w->segs[w->next_seg].start_us, w->rate) >= stop)
            return 0;
        int rc = open_segment(w, w->next_seg++);
        if (rc == VG_ENOTFOUND)
            continue;
        if (rc != VG_OK)
            return rc;
    }
}

static int fill_window(pb_wav_t *w, int64_t s)
{
    int64_t end = s + WIN_SAMPLES < w->n_samples ? s + WIN_SAMPLES : w->n_samples;
    int rc = VG_OK;
    if (w->cursor_end != s && (rc = cursor_reset(w, s)) != VG_OK)
        goto cleanup;
    memset(w->win, 0, WIN_SAMPLES * sizeof(*w->win));
    w->win_at = s;
    w->win_n = end - s;
    /* What the last window read for this one goes first: everything read
     * from here on comes later, and the later wins. */
    if (w->carry_n > 0) {
        int64_t k = w->carry_n < w->win_n ? w->carry_n : w->win_n;
        memcpy(w->win, w->carry, (size_t)k * sizeof(*w->win));
        carry_clear(w);
    }
    for (;;) {
        if (w->pend_n == 0) {
            if (w->eof)
                break;
            int got = cursor_next(w, end);
            if (got < 0) {
                rc = got;
                goto cleanup;
            }
            if (!got)
                break;
        }
        if (w->pend_at >= end) {
            /* Wholly after the window. Kept for the next one, unless a later
             * segment starts inside this window: its samples there win over
             * this segment's, so this one is read on to its end and what it
             * has past the window is set aside for the next. */
            if (!later_segment_before(w, end))
                break;
            carry_put(w, end, w->pend_at, w->pend, w->pend_n);
            w->pend_n = 0;
            continue;
        }
        int64_t a = w->pend_at > s ? w->pend_at : s;
        int64_t b = w->pend_at + w->pend_n < end ? w->pend_at + w->pend_n : end;
        if (b > a)
            memcpy(w->win + (a - s), w->pend + (a - w->pend_at), (size_t)(b - a) * 2);
        /* Its tail belongs to the next window: set aside, and reading goes
         * on, since a later packet may still start in this window. */
        if (w->pend_at + w->pend_n > end)
            carry_put(w, end, end, w->pend + (end - w->pend_at), w->pend_at + w->pend_n - end);
        w->pend_n = 0;
    }
    w->cursor_end = end;

cleanup:
    if (rc != VG_OK) {
        w->cursor_end = -1;
        w->win_n = 0;
    }
    return rc;
}

int pb_wav_samples_at(pb_wav_t *w, int64_t at, int16_t *out, size_t n)
{
    while (n > 0) {
        if (at < 0 || at >= w->n_samples)
            return VG_EINVAL;
        if (at < w->win_at || at >= w->win_at + w->win_n) {
            int rc = fill_window(w, at);
            if (rc != VG_OK)
                return rc;
        }
        size_t k = (size_t)(w->win_at + w->win_n - at);
        k = k < n ? k : n;
        memcpy(out, w->win + (at - w->win_at), k * 2);
        out += k;
        at += (int64_t)k;
        n -= k;
    }
    return VG_OK;
}

long pb_wav_read(pb_wav_t *w, uint64_t pos, char *buf, size_t max)
{
    uint64_t size = pb_wav_size(w);
    size_t done = 0;
    if (pos >= size || max == 0)
        return -1;
    if (max > size - pos)
        max = (size_t)(size - pos);
    if (pos < PB_WAV_HEADER) {
        uint8_t h[PB_WAV_HEADER];
        pb_wav_header(h, (uint32_t)w->rate, (uint32_t)w->n_samples);
        size_t k = PB_WAV_HEADER - (size_t)pos < max ? PB_WAV_HEADER - (size_t)pos : max;
        memcpy(buf, h + pos, k);
        done = k;
    }
    while (done < max) {
        uint64_t b = pos + done - PB_WAV_HEADER;
        int64_t s = (int64_t)(b / 2);
        if (s < w->win_at || s >= w->win_at + w->win_n) {
            if (fill_window(w, s) != VG_OK)
                return done ? (long)done : -1;
        }
        /* little-endian bytes of the window from byte b on */
        uint64_t win_end = 2 * (uint64_t)(w->win_at + w->win_n);
        while (done < max && b < win_end) {
            uint16_t v = (uint16_t)w->win[(b / 2) - (uint64_t)w->win_at];
            buf[done++] = (char)((b & 1) ? v >> 8 : v & 0xff);
            b++;
        }
    }
    return (long)done;
}

int pb_wav_open(const char *data_dir, const idx_segment_t *segs, size_t n, int64_t from_us,
                int64_t to_us, pb_wav_t **out, char *err, size_t err_size)
{
    pb_wav_t *w = vg_calloc(1, sizeof(*w));
    int rc = VG_ENOTFOUND;
    w->data_dir = vg_strdup(data_dir);
    w->segs = vg_malloc((n ? n : 1) * sizeof(*segs));
    if (n)
        memcpy(w->segs, segs, n * sizeof(*segs));
    w->n_segs = n;
    w->from_us = from_us;
    w->pkt = av_packet_alloc();
    w->frame = av_frame_alloc();
    w->cursor_end = -1;
    w->rate = 8000; /* placeholder until the first audio track tells */
    snprintf(err, err_size, "nothing recorded in that range");
    /* The rate of the first segment with an audio track is the WAV's; a
     * segment of another rate later in the range is placed at this one's
     * (a source's codec is fixed in its configuration). */
    for (size_t i = 0; i < n; i++) {
        if (!pb_codecs_have_audio(segs[i].codecs)) {
            snprintf(err, err_size, "this source has no audio track in that range");
            continue;
        }
        rc = open_segment(w, i);
        if (rc == VG_ENOTFOUND)
            continue;
        if (rc != VG_OK) {
            snprintf(err, err_size, "a recording of this range cannot be read (segment %lld)",
                     (long long)segs[i].id);
            goto cleanup;
        }
        const AVCodecParameters *par = w->ic->streams[w->stream]->codecpar;
        if (par->sample_rate <= 0 || par->sample_rate > 384000) {
            snprintf(err, err_size, "the audio of segment %lld has no usable sample rate",
                     (long long)segs[i].id);
            rc = VG_EMEDIA;
            goto cleanup;
        }
        w->rate = par->sample_rate;
        break;
    }
    if (rc != VG_OK)
        goto cleanup;
    close_segment(w);
    w->n_samples = pb_wav_samples(from_us, to_us, w->rate);
    if ((uint64_t)w->n_samples * 2 > UINT32_MAX - 64) {
        snprintf(err, err_size, "the range is too long for one WAV file");
        rc = VG_EINVAL;
        goto cleanup;
    }
    w->win = vg_malloc(WIN_SAMPLES * sizeof(*w->win));
    err[0] = '\0';
    *out = w;
    return VG_OK;

cleanup:
    pb_wav_close(w);
    return rc;
}

void pb_wav_close(pb_wav_t *w)
{
    if (!w)
        return;
    close_segment(w);
    av_packet_free(&w->pkt);
    av_frame_free(&w->frame);
    free(w->pend);
    free(w->carry);
    free(w->win);
    free(w->segs);
    free(w->data_dir);
    free(w);
}

long pb_wav_window_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    pb_wav_window_t *c = ctx;
    return pb_wav_read(c->wav, c->first + pos, buf, max);
}

void pb_wav_window_free(void *ctx)
{
    pb_wav_window_t *c = ctx;
    if (!c)
        return;
    pb_wav_close(c->wav);
    free(c);
}
