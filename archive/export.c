/* Clip export: remuxes a time range spanning several segments into one file,
 * copying packets. Packet times are placed on the wall clock of each
 * segment's index row, so the clip keeps real gaps and real durations. */
#include "archive.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define MAX_STREAMS 8

typedef struct {
    const char *data_dir;
    int64_t from_us, to_us;
    AVFormatContext *oc;
    int n_streams;
    enum AVCodecID codec[MAX_STREAMS];
    int primary;           /* input stream index segments are cut on */
    int64_t origin_us;     /* wall time that becomes 0 in the clip */
    int64_t last_dts[MAX_STREAMS]; /* output time base, keeps DTS increasing */
    int fd;                /* the temporary output, written through this fd only */
    char *err;
    size_t err_size;
    arc_export_opts_t *opts; /* may be NULL */
} export_t;

static int fail(export_t *x, int rc, const char *fmt, const char *arg)
{
    snprintf(x->err, x->err_size, fmt, arg);
    return rc;
}

static int open_segment(export_t *x, const idx_segment_t *seg, AVFormatContext **ic)
{
    char *path = vg_asprintf("%s/%s", x->data_dir, seg->path);
    struct stat st;
    /* A file cut short (or grown) since it was indexed would still demux,
     * and what is missing would be missing from the export without a word;
     * the index's size is the file's (recovery truncates before it indexes). */
    if (stat(path, &st) == 0 && seg->bytes > 0 && st.st_size != seg->bytes) {
        snprintf(x->err, x->err_size, "segment %s is %lld bytes on disk, %lld in the index",
                 seg->path, (long long)st.st_size, (long long)seg->bytes);
        free(path);
        return VG_ECORRUPT;
    }
    int ret = avformat_open_input(ic, path, NULL, NULL);
    if (ret >= 0)
        ret = avformat_find_stream_info(*ic, NULL);
    int rc = ret < 0 ? fail(x, VG_EMEDIA, "cannot read segment %s", seg->path) : VG_OK;
    free(path);
    return rc;
}

static int pick_primary(AVFormatContext *ic)
{
    int p = av_find_best_stream(ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    return p >= 0 ? p : av_find_best_stream(ic, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
}

static int fd_write(void *opaque, uint8_t *buf, int size)
{
    const export_t *x = opaque;
    return vg_write_all(x->fd, buf, (size_t)size) == VG_OK ? size : AVERROR(EIO);
}

static int64_t fd_seek(void *opaque, int64_t offset, int whence)
{
    const export_t *x = opaque;
    struct stat st;
    if (whence & AVSEEK_SIZE)
        return fstat(x->fd, &st) == 0 ? (int64_t)st.st_size : AVERROR(errno);
    off_t at = lseek(x->fd, (off_t)offset, whence & ~AVSEEK_FORCE);
    return at < 0 ? AVERROR(errno) : (int64_t)at;
}

/* The output is a file of our own: a random name beside the target, created
 * with O_EXCL|O_NOFOLLOW, so nothing planted under a name (a symlink to a
 * file vigilctl's user may write, run as root) is ever opened or written
 * through; libav writes to its fd, never reopening a path. */
static int open_temp(const char *out_path, char **tmp_out, int *fd_out)
{
    const char *slash = strrchr(out_path, '/');
    int dir_len = slash ? (int)(slash - out_path + 1) : 0;
    for (int tries = 0; tries < 8; tries++) {
        unsigned char r[8];
        char hex[sizeof(r) * 2 + 1];
        if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
            return VG_EIO;
        for (size_t i = 0; i < sizeof(r); i++)
            snprintf(hex + 2 * i, 3, "%02x", r[i]);
        char *tmp = vg_asprintf("%.*s.%s.%s.part", dir_len, out_path, out_path + dir_len, hex);
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
        if (fd >= 0) {
            *tmp_out = tmp;
            *fd_out = fd;
            return VG_OK;
        }
        free(tmp);
        if (errno != EEXIST)
            return VG_EIO;
    }
    return VG_EIO;
}

/* The first segment decides the clip's streams; later ones must match.
 * out_path (the final name) tells the container. */
static int setup_output(export_t *x, AVFormatContext *ic, const char *out_path)
{
    const AVOutputFormat *fmt = av_guess_format(NULL, out_path, NULL);
    if (!fmt)
        return fail(x, VG_EINVAL, "cannot tell the container from '%s' (use .mp4, .mov, .mkv, "
                    ".mka or .wav)", out_path);
    if (avformat_alloc_output_context2(&x->oc, fmt, NULL, out_path) < 0)
        return fail(x, VG_EMEDIA, "cannot create %s", out_path);
    x->n_streams = (int)ic->nb_streams > MAX_STREAMS ? MAX_STREAMS : (int)ic->nb_streams;
    for (int i = 0; i < x->n_streams; i++) {
        AVCodecParameters *par = ic->streams[i]->codecpar;
        /* UNOFFICIAL: Matroska holds G.711 (as A_MS/ACM) but only admits it
         * at this level; MP4 still says no. */
        if (avformat_query_codec(fmt, par->codec_id, FF_COMPLIANCE_UNOFFICIAL) != 1)
            return fail(x, VG_EINVAL, "codec %s cannot go into this container; try .mkv",
                        avcodec_get_name(par->codec_id));
        AVStream *st = avformat_new_stream(x->oc, NULL);
        if (!st || avcodec_parameters_copy(st->codecpar, par) < 0)
            abort();
        st->codecpar->codec_tag = 0;
        st->time_base = ic->streams[i]->time_base;
        x->codec[i] = par->codec_id;
        x->last_dts[i] = AV_NOPTS_VALUE;
    }
    x->primary = pick_primary(ic);
    if (!(fmt->flags & AVFMT_NOFILE)) {
        const int size = 64 * 1024;
        unsigned char *buf = av_malloc(size);
        if (!buf || !(x->oc->pb = avio_alloc_context(buf, size, 1, x, NULL, fd_write, fd_seek)))
            abort(); /* out of memory: the allocation rule (DESIGN.md) */
    }
    if (avformat_write_header(x->oc, NULL) < 0)
        return fail(x, VG_EMEDIA, "cannot start %s", out_path);
    return VG_OK;
}

static int same_streams(const export_t *x, AVFormatContext *ic)
{
    if ((int)ic->nb_streams < x->n_streams)
        return 0;
    for (int i = 0; i < x->n_streams; i++) {
        if (ic->streams[i]->codecpar->codec_id != x->codec[i])
            return 0;
    }
    return 1;
}

/* Wall time of the last primary keyframe at or before from_us in this
 * segment (its start when none is earlier). */
static int64_t find_start_keyframe(export_t *x, AVFormatContext *ic, const idx_segment_t *seg)
{
    AVPacket *pkt = av_packet_alloc();
    int64_t best = seg->start_us;
    AVStream *st = ic->streams[x->primary];
    while (av_read_frame(ic, pkt) >= 0) {
        if (pkt->stream_index == x->primary && (pkt->flags & AV_PKT_FLAG_KEY) &&
            pkt->dts != AV_NOPTS_VALUE) {
            int64_t wall = seg->start_us + av_rescale_q(pkt->dts, st->time_base, AV_TIME_BASE_Q);
            if (wall > x->from_us) {
                av_packet_unref(pkt);
                break;
            }
            best = wall;
        }
        av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
    return best;
}

static int write_clip_packet(export_t *x, AVPacket *pkt, AVStream *in, int64_t seg_start_us)
{
    AVStream *out = x->oc->streams[pkt->stream_index];
    if (x->opts) {
        int64_t ts = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pkt->pts;
        int64_t wall = seg_start_us + av_rescale_q(ts, in->time_base, AV_TIME_BASE_Q);
        int64_t end = wall + av_rescale_q(pkt->duration, in->time_base, AV_TIME_BASE_Q);
        if (!x->opts->first_us || wall < x->opts->first_us)
            x->opts->first_us = wall;
        if (end > x->opts->last_us)
            x->opts->last_us = end;
    }
    int64_t shift = av_rescale_q(seg_start_us - x->origin_us, AV_TIME_BASE_Q, in->time_base);
    pkt->pts = pkt->pts == AV_NOPTS_VALUE ? AV_NOPTS_VALUE : pkt->pts + shift;
    pkt->dts = pkt->dts == AV_NOPTS_VALUE ? pkt->pts : pkt->dts + shift;
    av_packet_rescale_ts(pkt, in->time_base, out->time_base);
    int i = pkt->stream_index;
    /* Segment boundaries may round to the same tick; the muxer wants strictly
     * increasing DTS. */
    if (x->last_dts[i] != AV_NOPTS_VALUE && pkt->dts <= x->last_dts[i])
        pkt->dts = x->last_dts[i] + 1;
    if (pkt->pts != AV_NOPTS_VALUE && pkt->pts < pkt->dts)
        pkt->pts = pkt->dts;
    x->last_dts[i] = pkt->dts;
    pkt->pos = -1;
    return av_write_frame(x->oc, pkt) < 0 ? VG_EMEDIA : VG_OK;
}

/* Copies the packets of one segment that fall in [origin, to). Returns 1 in
 * *done once the primary stream passed to_us. */
static int copy_segment(export_t *x, AVFormatContext *ic, const idx_segment_t *seg, int *done)
{
    AVPacket *pkt = av_packet_alloc();
    int rc = VG_OK, ret = 0;
    while (rc == VG_OK && (ret = av_read_frame(ic, pkt)) >= 0) {
        if (x->opts && x->opts->stop && __atomic_load_n(x->opts->stop, __ATOMIC_RELAXED)) {
            av_packet_unref(pkt);
            av_packet_free(&pkt);
            snprintf(x->err, x->err_size, "interrupted");
            return VG_ESTOPPED;
        }
        AVStream *in = ic->streams[pkt->stream_index];
        int64_t ts = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pkt->pts;
        if (pkt->stream_index >= x->n_streams || ts == AV_NOPTS_VALUE) {
            av_packet_unref(pkt);
            continue;
        }
        int64_t wall = seg->start_us + av_rescale_q(ts, in->time_base, AV_TIME_BASE_Q);
        if (wall >= x->to_us && pkt->stream_index == x->primary) {
            *done = 1;
            av_packet_unref(pkt);
            break;
        }
        if (wall >= x->origin_us && wall < x->to_us)
            rc = write_clip_packet(x, pkt, in, seg->start_us);
        av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
    if (rc != VG_OK) {
        snprintf(x->err, x->err_size, "cannot write packets from %s", seg->path);
        return rc;
    }
    /* A read error is not the end of the segment: the rest of it would be
     * left out of the file without a word. */
    if (!*done && (ret != AVERROR_EOF || (ic->pb && ic->pb->error < 0))) {
        char why[AV_ERROR_MAX_STRING_SIZE];
        av_strerror(ret != AVERROR_EOF ? ret : ic->pb->error, why, sizeof(why));
        snprintf(x->err, x->err_size, "cannot read segment %s: %s", seg->path, why);
        return VG_EIO;
    }
    return VG_OK;
}

static int export_segments(export_t *x, const idx_segment_t *segs, size_t n, const char *out_path)
{
    int rc = VG_OK, done = 0;
    for (size_t i = 0; i < n && rc == VG_OK && !done; i++) {
        AVFormatContext *ic = NULL;
        rc = open_segment(x, &segs[i], &ic);
        if (rc == VG_OK && !x->oc) {
            rc = setup_output(x, ic, out_path);
            if (rc == VG_OK) {
                /* A second pass over the first segment: reopening is simpler
                 * and surer than seeking back in a fragmented file. */
                x->origin_us = find_start_keyframe(x, ic, &segs[i]);
                avformat_close_input(&ic);
                rc = open_segment(x, &segs[i], &ic);
            }
        } else if (rc == VG_OK && !same_streams(x, ic)) {
            vg_warn("export stops at %s: the source's streams changed", segs[i].path);
            if (x->opts)
                x->opts->cut_us = segs[i].start_us;
            done = 1;
        }
        if (rc == VG_OK && !done) {
            rc = copy_segment(x, ic, &segs[i], &done);
            if (x->opts)
                x->opts->segs_used = i + 1;
        }
        avformat_close_input(&ic);
        if (rc == VG_OK && x->opts && x->opts->progress && x->oc && x->oc->pb)
            x->opts->progress(x->opts->ctx, avio_tell(x->oc->pb));
    }
    return rc;
}

int arc_export(const char *data_dir, const idx_segment_t *segs, size_t n_segs, int64_t from_us,
               int64_t to_us, const char *out_path, char *err, size_t err_size)
{
    return arc_export_ex(data_dir, segs, n_segs, from_us, to_us, out_path, NULL, err, err_size);
}

int arc_export_ex(const char *data_dir, const idx_segment_t *segs, size_t n_segs,
                  int64_t from_us, int64_t to_us, const char *out_path, arc_export_opts_t *opts,
                  char *err, size_t err_size)
{
    export_t x = {.data_dir = data_dir, .from_us = from_us, .to_us = to_us, .primary = 0,
                  .err = err, .err_size = err_size, .opts = opts};
    if (opts) {
        opts->first_us = opts->last_us = opts->cut_us = 0;
        opts->segs_used = 0;
    }
    err[0] = '\0';
    if (n_segs == 0)
        return fail(&x, VG_ENOTFOUND, "nothing recorded in that range%s", "");
    /* Write beside the target and rename, so a failed export leaves no half
     * file; rename replaces whatever is at out_path (a symlink too) without
     * following it. */
    char *tmp = NULL;
    x.fd = -1;
    if (open_temp(out_path, &tmp, &x.fd) != VG_OK)
        return fail(&x, VG_EIO, "cannot create a file beside %s", out_path);
    int rc = export_segments(&x, segs, n_segs, out_path);
    if (rc == VG_OK && av_write_trailer(x.oc) < 0)
        rc = fail(&x, VG_EMEDIA, "cannot finish %s", out_path);
    if (x.oc && x.oc->pb) {
        avio_flush(x.oc->pb);
        if (rc == VG_OK && x.oc->pb->error < 0)
            rc = fail(&x, VG_EIO, "cannot write %s", out_path);
        av_freep(&x.oc->pb->buffer);
        avio_context_free(&x.oc->pb);
    }
    avformat_free_context(x.oc);
    if (rc == VG_OK && fsync(x.fd) != 0)
        rc = fail(&x, VG_EIO, "cannot write %s", out_path);
    close(x.fd);
    if (rc == VG_OK && rename(tmp, out_path) != 0)
        rc = fail(&x, VG_EIO, "cannot rename to %s", out_path);
    if (rc != VG_OK)
        unlink(tmp);
    free(tmp);
    return rc;
}
