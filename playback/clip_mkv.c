/* clip.mkv: the clip's MOV (clip.c, read through its byte reader, nothing
 * on disk) remuxed by libavformat into Matroska on demand. libavformat is
 * used rather than a Matroska writer of our own because Matroska has no
 * sample tables to lay out in advance: its clusters are only known by
 * muxing. The output is made deterministic (AVFMT_FLAG_BITEXACT: no random
 * UIDs, no date) and written to a non-seekable sink, so the same clip always
 * gives the same bytes: one counting run learns the exact size before the
 * first byte is sent, and the run that serves a request muxes from the
 * start, dropping what lies before the window asked for (a Range request
 * costs the muxing of the bytes before it, no disk writes, memory bounded by
 * one packet and the AVIO buffers). The duration is written up front (the
 * sink cannot be seeked back to), and no Cues are written (they would need
 * that too): players seek by reading clusters. Matroska has no edit list, so
 * an .mkv starts at the keyframe at or before `from`. */
#include "playback/clip_private.h"

#include <errno.h>
#include <string.h>

#include <libavformat/avformat.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define IO_BUF 65536

struct pb_mkv_run {
    pb_clip_t *inner;
    uint64_t in_pos;          /* the demuxer's read position in the inner clip */
    uint64_t in_size;
    AVFormatContext *ic, *oc;
    AVPacket *pkt;
    uint64_t produced;        /* bytes the muxer has written so far */
    uint64_t want;            /* bytes before this position are dropped */
    uint8_t *out;             /* produced bytes from out_start, not yet read */
    size_t out_len, out_cap;
    uint64_t out_start;
    int done, failed;
};

static int in_read(void *opaque, uint8_t *buf, int size)
{
    pb_mkv_run_t *m = opaque;
    if (m->in_pos >= m->in_size)
        return AVERROR_EOF;
    long n = pb_clip_read(m->inner, m->in_pos, (char *)buf, (size_t)size);
    if (n <= 0)
        return AVERROR(EIO);
    m->in_pos += (uint64_t)n;
    return (int)n;
}

static int64_t in_seek(void *opaque, int64_t offset, int whence)
{
    pb_mkv_run_t *m = opaque;
    if (whence & AVSEEK_SIZE)
        return (int64_t)m->in_size;
    whence &= ~AVSEEK_FORCE;
    int64_t at = whence == SEEK_SET ? offset : whence == SEEK_CUR ? (int64_t)m->in_pos + offset
               : whence == SEEK_END ? (int64_t)m->in_size + offset : -1;
    if (at < 0)
        return AVERROR(EINVAL);
    m->in_pos = (uint64_t)at;
    return at;
}

/* libavformat >= 61 passes const; Debian 12 has 59. */
static int out_write(void *opaque, uint8_t *buf, int size)
{
    pb_mkv_run_t *m = opaque;
    uint64_t at = m->produced;
    m->produced += (uint64_t)size;
    if (m->produced <= m->want)
        return size; /* before the window: counted, dropped */
    size_t skip = at < m->want ? (size_t)(m->want - at) : 0;
    size_t n = (size_t)size - skip;
    if (m->out_len == 0)
        m->out_start = at + skip;
    if (m->out_len + n > m->out_cap) {
        while (m->out_len + n > m->out_cap)
            m->out_cap = m->out_cap ? m->out_cap * 2 : IO_BUF * 2;
        m->out = vg_realloc(m->out, m->out_cap);
    }
    memcpy(m->out + m->out_len, buf + skip, n);
    m->out_len += n;
    return size;
}

void pb_mkv_free(pb_mkv_run_t *m)
{
    if (!m)
        return;
    if (m->ic) {
        if (m->ic->pb) {
            av_freep(&m->ic->pb->buffer);
            avio_context_free(&m->ic->pb);
        }
        avformat_close_input(&m->ic);
    }
    if (m->oc) {
        if (m->oc->pb) {
            av_freep(&m->oc->pb->buffer);
            avio_context_free(&m->oc->pb);
        }
        avformat_free_context(m->oc);
    }
    av_packet_free(&m->pkt);
    free(m->out);
    free(m);
}

static int run_open(pb_clip_t *inner, int64_t duration_us, uint64_t want, pb_mkv_run_t **out)
{
    pb_mkv_run_t *m = vg_calloc(1, sizeof(*m));
    int ret, rc = VG_EMEDIA;
    m->inner = inner;
    m->in_size = pb_clip_size(inner);
    m->want = want;
    m->pkt = av_packet_alloc();
    m->ic = avformat_alloc_context();
    m->ic->pb = avio_alloc_context(av_malloc(IO_BUF), IO_BUF, 0, m, in_read, NULL, in_seek);
    m->ic->flags |= AVFMT_FLAG_CUSTOM_IO;
    if ((ret = avformat_open_input(&m->ic, NULL, av_find_input_format("mov"), NULL)) < 0 ||
        (ret = avformat_find_stream_info(m->ic, NULL)) < 0) {
        vg_warn("clip.mkv: cannot read the clip: %s", av_err2str(ret));
        goto cleanup;
    }
    if (avformat_alloc_output_context2(&m->oc, NULL, "matroska", NULL) < 0)
        goto cleanup;
    m->oc->flags |= AVFMT_FLAG_BITEXACT;
    m->oc->pb = avio_alloc_context(av_malloc(IO_BUF), IO_BUF, 1, m, NULL, out_write, NULL);
    m->oc->pb->seekable = 0;
    m->oc->duration = av_rescale(duration_us, AV_TIME_BASE, 1000000);
    for (unsigned i = 0; i < m->ic->nb_streams; i++) {
        AVStream *st = avformat_new_stream(m->oc, NULL);
        if (avcodec_parameters_copy(st->codecpar, m->ic->streams[i]->codecpar) < 0)
            goto cleanup;
        st->codecpar->codec_tag = 0;
        st->time_base = m->ic->streams[i]->time_base;
    }
    AVDictionary *opts = NULL;
    av_dict_set(&opts, "fflags", "+bitexact", 0);
    ret = avformat_write_header(m->oc, &opts);
    av_dict_free(&opts);
    if (ret < 0) {
        vg_warn("clip.mkv: cannot start: %s", av_err2str(ret));
        goto cleanup;
    }
    rc = VG_OK;

cleanup:
    if (rc != VG_OK) {
        /* the output's header was never written: nothing to finish */
        pb_mkv_free(m);
        m = NULL;
    }
    *out = m;
    return rc;
}

/* Muxes one more packet (or the trailer at the end). */
static int run_step(pb_mkv_run_t *m)
{
    int ret = av_read_frame(m->ic, m->pkt);
    if (ret == AVERROR_EOF) {
        ret = av_write_trailer(m->oc);
        avio_flush(m->oc->pb);
        m->done = 1;
        return ret < 0 ? VG_EMEDIA : VG_OK;
    }
    if (ret < 0)
        return ret == AVERROR(EIO) ? VG_EIO : VG_EMEDIA;
    unsigned i = (unsigned)m->pkt->stream_index;
    av_packet_rescale_ts(m->pkt, m->ic->streams[i]->time_base, m->oc->streams[i]->time_base);
    m->pkt->pos = -1;
    /* Pre-roll the demuxer marks for discarding (before the edit list's
     * start) is kept: it is what decodes the first frames. */
    m->pkt->flags &= ~AV_PKT_FLAG_DISCARD;
    ret = av_interleaved_write_frame(m->oc, m->pkt);
    av_packet_unref(m->pkt);
    avio_flush(m->oc->pb);
    return ret < 0 ? VG_EMEDIA : VG_OK;
}

int pb_mkv_measure(pb_clip_t *inner, int64_t duration_us, uint64_t *size)
{
    pb_mkv_run_t *m = NULL;
    int rc = run_open(inner, duration_us, UINT64_MAX, &m);
    while (rc == VG_OK && !m->done)
        rc = run_step(m);
    if (rc == VG_OK)
        *size = m->produced;
    pb_mkv_free(m);
    return rc;
}

long pb_mkv_read(pb_mkv_run_t **run, pb_clip_t *inner, int64_t duration_us, uint64_t pos,
                 char *buf, size_t max)
{
    pb_mkv_run_t *m = *run;
    if (m && (pos < m->out_start || m->failed)) {
        pb_mkv_free(m); /* backwards: mux again from the start */
        *run = m = NULL;
    }
    if (!m) {
        if (run_open(inner, duration_us, pos, run) != VG_OK)
            return -1;
        m = *run;
    }
    /* bytes before pos are not needed again */
    if (pos > m->want)
        m->want = pos;
    if (m->out_len && pos > m->out_start) {
        uint64_t drop = pos - m->out_start;
        if (drop >= m->out_len) {
            m->out_len = 0;
        } else {
            memmove(m->out, m->out + drop, m->out_len - (size_t)drop);
            m->out_len -= (size_t)drop;
        }
        m->out_start = pos;
    }
    while ((m->out_len == 0 || m->out_start > pos) && !m->done) {
        if (run_step(m) != VG_OK) {
            m->failed = 1;
            return -1;
        }
    }
    if (m->out_len == 0 || m->out_start != pos)
        return -1; /* shorter than measured: cannot happen unless the files changed */
    size_t n = m->out_len < max ? m->out_len : max;
    memcpy(buf, m->out, n);
    return (long)n;
}
