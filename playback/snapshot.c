/* Snapshots: the frame at or before a time as a JPEG, for the player's
 * still and the timeline's hover thumbnails.
 *
 * The segment's packets are read from the keyframe at or before the time
 * (libav's seek, then forward) up to the time, decoded with libavcodec
 * (snapshot_threads frame threads: a 1080p GOP decodes ~1.5x faster on
 * two; recording reads sockets and does not decode, so what a decode takes
 * is bounded by snapshot_workers x snapshot_threads, not taken from it), the
 * last frame at or before the time is scaled with libswscale and encoded
 * with libavcodec's mjpeg encoder (slice threads).
 *
 * Results are cached under data_dir/cache/snapshots, named by segment id,
 * the first 8 digits of its sha256 (an id reused for another file never
 * matches), the frame's pts and the width: never counted as recording,
 * bounded in size (oldest removed first). Entries of deleted segments are
 * never served, since a request finds its segment through the index first,
 * and are removed with their segment (pb_snapshots_forget, called by
 * retention once the files are gone); one a request was still writing then
 * is removed by that request when it finds the file gone. At most snapshot_workers decodes run at
 * once; beyond that the caller answers 503. */
#include "playback/playback.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libswscale/swscale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"
#include "playback/playback_private.h"

#define MAX_GOP_PACKETS 2048 /* packets from a keyframe to the time: bounds memory */
#define MIN_WIDTH 16

typedef struct {
    char *name;
    time_t mtime;
    off_t size;
} cache_file_t;

static int by_mtime(const void *a, const void *b)
{
    const cache_file_t *x = a, *y = b;
    return x->mtime < y->mtime ? -1 : x->mtime > y->mtime ? 1 : strcmp(x->name, y->name);
}

/* Lists the cache's files (removing leftover .part files when clean_parts)
 * into *out; returns their total size. Called with pb->lock held. */
static int64_t cache_scan(pb_t *pb, cache_file_t **out, size_t *n, int clean_parts)
{
    int64_t total = 0;
    size_t cap = 0;
    *out = NULL;
    *n = 0;
    DIR *d = opendir(pb->snap_dir);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        struct stat st;
        if (e->d_name[0] == '.' || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode))
            continue;
        if (len > 5 && strcmp(e->d_name + len - 5, ".part") == 0) {
            if (clean_parts)
                unlinkat(dirfd(d), e->d_name, 0);
            continue;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            *out = vg_realloc(*out, cap * sizeof(**out));
        }
        (*out)[(*n)++] = (cache_file_t){vg_strdup(e->d_name), st.st_mtime, st.st_size};
        total += st.st_size;
    }
    closedir(d);
    return total;
}

static void cache_files_free(cache_file_t *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(f[i].name);
    free(f);
}

void pb_snap_init(pb_t *pb)
{
    pb->snap_dir = vg_asprintf("%s/cache/snapshots", pb->data_dir);
    if (vg_mkdir_p(pb->snap_dir) != VG_OK)
        vg_warn("snapshots: cannot create %s: snapshots will not be cached", pb->snap_dir);
    pb->memo = vg_calloc(PB_SNAP_MEMO, sizeof(*pb->memo));
    cache_file_t *files;
    size_t n;
    pb->snap_bytes = cache_scan(pb, &files, &n, 1);
    cache_files_free(files, n);
}

void pb_snap_free(pb_t *pb)
{
    free(pb->memo);
    free(pb->snap_dir);
}

static int by_id(const void *a, const void *b)
{
    const idx_segment_t *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

size_t pb_snapshots_forget(const char *data_dir, const idx_segment_t *segs, size_t n)
{
    size_t removed = 0;
    if (n == 0)
        return 0;
    char *dir = vg_asprintf("%s/cache/snapshots", data_dir);
    DIR *d = opendir(dir);
    if (!d) {
        free(dir);
        return 0; /* no cache yet */
    }
    idx_segment_t *sorted = vg_malloc(n * sizeof(*sorted));
    memcpy(sorted, segs, n * sizeof(*sorted));
    qsort(sorted, n, sizeof(*sorted), by_id);
    struct dirent *e;
    while ((e = readdir(d))) {
        /* ID-SHA8-PTS-WIDTH.jpg (snap_name) */
        char *end = NULL;
        errno = 0;
        long long id = strtoll(e->d_name, &end, 10);
        if (errno || end == e->d_name || *end != '-')
            continue;
        idx_segment_t key = {.id = id};
        const idx_segment_t *seg = bsearch(&key, sorted, n, sizeof(*sorted), by_id);
        if (!seg || strncmp(end + 1, seg->sha256, 8) != 0 || end[9] != '-')
            continue;
        char *path = vg_asprintf("%s/%s", dir, e->d_name);
        if (unlink(path) == 0)
            removed++;
        else if (errno != ENOENT)
            vg_warn("playback: cannot remove the snapshot %s of a deleted segment: %s", path,
                    strerror(errno));
        free(path);
    }
    closedir(d);
    free(sorted);
    free(dir);
    return removed;
}

/* Removes the oldest files until the cache is at 90 % of its bound. */
static void cache_evict(pb_t *pb)
{
    cache_file_t *files;
    size_t n;
    pthread_mutex_lock(&pb->lock);
    if (pb->snap_bytes <= pb->cfg.snapshot_cache_bytes) {
        pthread_mutex_unlock(&pb->lock);
        return;
    }
    int64_t total = cache_scan(pb, &files, &n, 0);
    qsort(files, n, sizeof(*files), by_mtime);
    int64_t goal = pb->cfg.snapshot_cache_bytes / 10 * 9;
    for (size_t i = 0; i < n && total > goal; i++) {
        char *path = vg_asprintf("%s/%s", pb->snap_dir, files[i].name);
        if (unlink(path) == 0)
            total -= files[i].size;
        free(path);
    }
    pb->snap_bytes = total;
    pthread_mutex_unlock(&pb->lock);
    cache_files_free(files, n);
}

/* The memo keys a keyframe request as its own width: bit 30 set (widths
 * stay below 2^15). */
#define MEMO_KEYFRAME (1 << 30)

static unsigned memo_slot(int64_t seg_id, int64_t at_us, int width)
{
    uint64_t h = (uint64_t)seg_id * 0x9e3779b97f4a7c15ULL ^ (uint64_t)at_us * 0xff51afd7ed558ccdULL ^
                 (uint64_t)width;
    h ^= h >> 29;
    return (unsigned)(h % PB_SNAP_MEMO);
}

static char *snap_name(pb_t *pb, const idx_segment_t *seg, int64_t pts, int width)
{
    return vg_asprintf("%s/%" PRId64 "-%.8s-%" PRId64 "-%d.jpg", pb->snap_dir, seg->id,
                       seg->sha256, pts, width);
}

/* Opens the cached file for (seg, pts, width): VG_OK with out filled. */
static int cache_open(pb_t *pb, const idx_segment_t *seg, int64_t pts, int width,
                      pb_snapshot_t *out)
{
    char *path = snap_name(pb, seg, pts, width);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    unsigned char eoi[2];
    if (fd < 0) {
        free(path);
        return VG_ENOTFOUND;
    }
    /* The cache is written without fsync: after a power cut a renamed file
     * can hold less than was written. One that does not end with the JPEG's
     * end-of-image marker goes, and is made again. */
    if (fstat(fd, &st) != 0 || st.st_size < 4 ||
        pread(fd, eoi, 2, st.st_size - 2) != 2 || eoi[0] != 0xff || eoi[1] != 0xd9) {
        close(fd);
        if (unlink(path) == 0)
            vg_warn("snapshots: %s was cut short (a power cut?): made again", path);
        free(path);
        return VG_ENOTFOUND;
    }
    free(path);
    out->fd = fd;
    out->size = (uint64_t)st.st_size;
    snprintf(out->etag, sizeof(out->etag), "\"%" PRId64 "-%.8s-%" PRId64 "-%d\"", seg->id,
             seg->sha256, pts, width);
    return VG_OK;
}

/* width: the request's (with MEMO_KEYFRAME), file_width: the file's name's
 * (a width over the source's is stored as recorded, 0). */
static void memo_put(pb_t *pb, const idx_segment_t *seg, int64_t at_us, int width, int64_t pts,
                     int file_width)
{
    pthread_mutex_lock(&pb->lock);
    pb_snap_memo_t *m = &pb->memo[memo_slot(seg->id, at_us, width)];
    *m = (pb_snap_memo_t){.seg_id = seg->id, .at_us = at_us, .width = width, .pts = pts,
                          .file_width = file_width, .used = 1};
    snprintf(m->sha8, sizeof(m->sha8), "%.8s", seg->sha256);
    pthread_mutex_unlock(&pb->lock);
}

static int memo_get(pb_t *pb, const idx_segment_t *seg, int64_t at_us, int width, int64_t *pts,
                    int *file_width)
{
    int found = 0;
    pthread_mutex_lock(&pb->lock);
    const pb_snap_memo_t *m = &pb->memo[memo_slot(seg->id, at_us, width)];
    if (m->used && m->seg_id == seg->id && m->at_us == at_us && m->width == width &&
        strncmp(m->sha8, seg->sha256, 8) == 0) {
        *pts = m->pts;
        *file_width = m->file_width;
        found = 1;
    }
    pthread_mutex_unlock(&pb->lock);
    return found;
}

/* Writes the JPEG beside its final name and renames it in place: a reader
 * never sees half a file. Durability does not matter (a cache). */
static int cache_store(pb_t *pb, const char *final, const uint8_t *data, size_t len)
{
    unsigned char r[6];
    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return VG_EIO;
    char *tmp = vg_asprintf("%s.%02x%02x%02x%02x%02x%02x.part", final, r[0], r[1], r[2], r[3],
                            r[4], r[5]);
    int rc = VG_EIO;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
    if (fd >= 0) {
        rc = vg_write_all(fd, data, len);
        if (close(fd) != 0)
            rc = VG_EIO;
        if (rc == VG_OK && rename(tmp, final) != 0)
            rc = VG_EIO;
        if (rc != VG_OK)
            unlink(tmp);
    }
    free(tmp);
    if (rc == VG_OK) {
        pthread_mutex_lock(&pb->lock);
        pb->snap_bytes += (int64_t)len;
        pthread_mutex_unlock(&pb->lock);
        cache_evict(pb);
    }
    return rc;
}

/* The frame as a JPEG of out_w x out_h into a malloc'd buffer. */
int pb_jpeg_encode(const AVFrame *src, int out_w, int out_h, int threads, uint8_t **jpeg,
                   size_t *len)
{
    int rc = VG_EMEDIA;
    struct SwsContext *sws = NULL;
    AVFrame *dst = av_frame_alloc();
    AVPacket *pkt = av_packet_alloc();
    AVCodecContext *enc = NULL;
    const AVCodec *codec = avcodec_find_encoder(AV_CODEC_ID_MJPEG);
    if (!codec || !(enc = avcodec_alloc_context3(codec)))
        goto cleanup;
    dst->format = AV_PIX_FMT_YUVJ420P;
    dst->width = out_w;
    dst->height = out_h;
    if (av_frame_get_buffer(dst, 0) < 0)
        goto cleanup;
    /* At the recorded size only the range changes: no filter to run. */
    int same = out_w == src->width && out_h == src->height;
    sws = sws_getContext(src->width, src->height, src->format, out_w, out_h, AV_PIX_FMT_YUVJ420P,
                         same ? SWS_POINT : SWS_BICUBIC, NULL, NULL, NULL);
    if (!sws)
        goto cleanup;
    sws_scale(sws, (const uint8_t *const *)src->data, src->linesize, 0, src->height, dst->data,
              dst->linesize);
    enc->width = out_w;
    enc->height = out_h;
    enc->pix_fmt = AV_PIX_FMT_YUVJ420P;
    enc->time_base = (AVRational){1, 25};
    enc->flags |= AV_CODEC_FLAG_QSCALE;
    enc->global_quality = FF_QP2LAMBDA * 3;
    enc->thread_count = threads;
    if (avcodec_open2(enc, codec, NULL) < 0)
        goto cleanup;
    dst->pts = 0;
    dst->quality = enc->global_quality;
    if (avcodec_send_frame(enc, dst) < 0 || avcodec_send_frame(enc, NULL) < 0 ||
        avcodec_receive_packet(enc, pkt) < 0)
        goto cleanup;
    *jpeg = vg_malloc((size_t)pkt->size);
    memcpy(*jpeg, pkt->data, (size_t)pkt->size);
    *len = (size_t)pkt->size;
    rc = VG_OK;

cleanup:
    sws_freeContext(sws);
    avcodec_free_context(&enc);
    av_packet_free(&pkt);
    av_frame_free(&dst);
    return rc;
}

typedef struct {
    const char *path;
    AVFormatContext *ic;
    AVCodecContext *dec;
    AVPacket *pkts[MAX_GOP_PACKETS];
    size_t n;
    AVFrame *best, *frame;
} snap_work_t;

static void gop_clear(snap_work_t *s)
{
    for (size_t i = 0; i < s->n; i++)
        av_packet_free(&s->pkts[i]);
    s->n = 0;
}

/* One pass from where reading stands: the packets of stream vs from the
 * last keyframe at or before target up to target (decode order) into
 * s->pkts; *pts: the largest pts among them at or before target (the frame
 * that will be shown). VG_ENOTFOUND when the first keyframe read is after
 * target; its dts and pts go to *key_dts, *key_pts for the next try. */
static int scan_gop(snap_work_t *s, int vs, int64_t target, int64_t *pts, int64_t *key_dts,
                    int64_t *key_pts)
{
    int have_key = 0;
    AVPacket *pkt = av_packet_alloc();
    gop_clear(s);
    *pts = *key_dts = *key_pts = AV_NOPTS_VALUE;
    while (av_read_frame(s->ic, pkt) >= 0) {
        if (pkt->stream_index != vs) {
            av_packet_unref(pkt);
            continue;
        }
        int64_t dts = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pkt->pts;
        int64_t p = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : dts;
        int key = (pkt->flags & AV_PKT_FLAG_KEY) != 0;
        if ((have_key && dts > target) || (!have_key && key && p > target)) {
            if (!have_key) {
                *key_dts = dts;
                *key_pts = p;
            }
            av_packet_unref(pkt);
            break;
        }
        if (key && p <= target) {
            gop_clear(s);
            have_key = 1;
            *pts = AV_NOPTS_VALUE;
        }
        if (!have_key || s->n == MAX_GOP_PACKETS) {
            av_packet_unref(pkt);
            continue;
        }
        if (p <= target && (*pts == AV_NOPTS_VALUE || p > *pts))
            *pts = p;
        s->pkts[s->n++] = av_packet_clone(pkt);
        av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
    return have_key && *pts != AV_NOPTS_VALUE ? VG_OK : VG_ENOTFOUND;
}

/* Reads the file again from its start (a new context: streams and their
 * pointers change). */
static int reopen(snap_work_t *s, int vs)
{
    avformat_close_input(&s->ic);
    if (avformat_open_input(&s->ic, s->path, NULL, NULL) < 0 || (int)s->ic->nb_streams <= vs)
        return VG_EMEDIA;
    for (unsigned k = 0; k < s->ic->nb_streams; k++) {
        if ((int)k != vs)
            s->ic->streams[k]->discard = AVDISCARD_ALL;
    }
    return VG_OK;
}

/* The GOP to decode for *target. libav's seek finds the keyframe by
 * decode time: with B-frames the keyframe it lands on may show after
 * target, so the keyframe before that one is tried next, then the file
 * from its start. A time before the segment's first shown frame (within
 * the B-frame delay of its start) gets that first frame: *target moves. */
static int read_gop(snap_work_t *s, int vs, int64_t *target, int64_t *pts)
{
    int64_t kd, kp;
    if (av_seek_frame(s->ic, vs, *target, AVSEEK_FLAG_BACKWARD) >= 0) {
        if (scan_gop(s, vs, *target, pts, &kd, &kp) == VG_OK)
            return VG_OK;
        if (kd != AV_NOPTS_VALUE && av_seek_frame(s->ic, vs, kd - 1, AVSEEK_FLAG_BACKWARD) >= 0 &&
            scan_gop(s, vs, *target, pts, &kd, &kp) == VG_OK)
            return VG_OK;
    }
    if (reopen(s, vs) != VG_OK)
        return VG_EMEDIA;
    if (scan_gop(s, vs, *target, pts, &kd, &kp) == VG_OK)
        return VG_OK;
    if (kp == AV_NOPTS_VALUE || reopen(s, vs) != VG_OK)
        return VG_ENOTFOUND;
    *target = kp;
    return scan_gop(s, vs, *target, pts, &kd, &kp);
}

static void keep_if_best(snap_work_t *s, int64_t target)
{
    int64_t p = s->frame->best_effort_timestamp;
    if (p != AV_NOPTS_VALUE && p <= target &&
        (!s->best->buf[0] || p >= s->best->best_effort_timestamp)) {
        av_frame_unref(s->best);
        av_frame_move_ref(s->best, s->frame);
    } else {
        av_frame_unref(s->frame);
    }
}

/* Decodes the GOP; frames nothing refers to are skipped except the one to
 * show (want_pts): with B-frames that is most of the work saved. */
static int decode_gop(snap_work_t *s, int vs, int64_t target, int64_t want_pts, int threads)
{
    const AVCodecParameters *par = s->ic->streams[vs]->codecpar;
    const AVCodec *codec = avcodec_find_decoder(par->codec_id);
    if (!codec || !(s->dec = avcodec_alloc_context3(codec)) ||
        avcodec_parameters_to_context(s->dec, par) < 0)
        return VG_EMEDIA;
    s->dec->thread_count = threads;
    s->dec->thread_type = FF_THREAD_FRAME | FF_THREAD_SLICE;
    s->dec->pkt_timebase = s->ic->streams[vs]->time_base;
    if (avcodec_open2(s->dec, codec, NULL) < 0)
        return VG_EMEDIA;
    for (size_t i = 0; i <= s->n; i++) {
        if (i < s->n) /* read per packet (frame threads copy it with the packet) */
            s->dec->skip_frame = s->pkts[i]->pts == want_pts ? AVDISCARD_DEFAULT : AVDISCARD_NONREF;
        if (avcodec_send_packet(s->dec, i < s->n ? s->pkts[i] : NULL) < 0 && i == s->n)
            break;
        while (avcodec_receive_frame(s->dec, s->frame) >= 0)
            keep_if_best(s, target);
    }
    return s->best->buf[0] && s->best->width > 0 && s->best->format != AV_PIX_FMT_NONE
               ? VG_OK : VG_EMEDIA;
}

static int snap_decode(pb_t *pb, const idx_segment_t *seg, int64_t at_us, int width,
                       int keyframe, pb_snapshot_t *out, char *err, size_t err_size)
{
    snap_work_t *s = vg_calloc(1, sizeof(*s));
    char *path = vg_asprintf("%s/%s", pb->data_dir, seg->path);
    char *final = NULL;
    uint8_t *jpeg = NULL;
    size_t len = 0;
    int rc = VG_EMEDIA, ret;
    s->best = av_frame_alloc();
    s->frame = av_frame_alloc();
    if ((ret = avformat_open_input(&s->ic, path, NULL, NULL)) < 0) {
        vg_warn("snapshot: cannot read segment %s: %s", seg->path, av_err2str(ret));
        snprintf(err, err_size, "the recording at that time cannot be read (segment %" PRId64 ")",
                 seg->id);
        goto cleanup;
    }
    int vs = av_find_best_stream(s->ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    if (vs < 0) {
        snprintf(err, err_size, "this source has no video");
        rc = VG_ENOTFOUND;
        goto cleanup;
    }
    for (unsigned k = 0; k < s->ic->nb_streams; k++) {
        if ((int)k != vs)
            s->ic->streams[k]->discard = AVDISCARD_ALL;
    }
    AVStream *st = s->ic->streams[vs];
    int64_t target = av_rescale_q(at_us - seg->start_us, AV_TIME_BASE_Q, st->time_base);
    int64_t pts;
    s->path = path;
    if ((rc = read_gop(s, vs, &target, &pts)) != VG_OK) {
        if (rc == VG_ENOTFOUND)
            snprintf(err, err_size, "no frame recorded at or before that time");
        else
            snprintf(err, err_size, "the recording at that time cannot be read (segment %"
                     PRId64 ")", seg->id);
        goto cleanup;
    }
    st = s->ic->streams[vs]; /* read_gop may have reopened the file */
    if (keyframe) {
        /* the GOP's first packet is the keyframe shown at or before target */
        for (size_t i = 1; i < s->n; i++)
            av_packet_free(&s->pkts[i]);
        s->n = 1;
        pts = target = s->pkts[0]->pts != AV_NOPTS_VALUE ? s->pkts[0]->pts : s->pkts[0]->dts;
    }
    int mkey = width | (keyframe ? MEMO_KEYFRAME : 0);
    if (width > st->codecpar->width && st->codecpar->width > 0)
        width = 0; /* as recorded */
    if (cache_open(pb, seg, pts, width, out) == VG_OK) {
        memo_put(pb, seg, at_us, mkey, pts, width);
        goto cleanup;
    }
    /* Nothing decoded after the frame to show is needed for it (references
     * come first in decoding order): the packets read after it (dts still
     * at or before target, with B-frames) are left out. */
    for (size_t i = s->n; i > 0; i--) {
        if (s->pkts[i - 1]->pts == pts) { /* the last of that pts, as keep_if_best shows */
            for (size_t j = i; j < s->n; j++)
                av_packet_free(&s->pkts[j]);
            s->n = i;
            break;
        }
    }
    int threads = pb->cfg.snapshot_threads > 0 ? pb->cfg.snapshot_threads : 1;
    if ((rc = decode_gop(s, vs, target, pts, threads)) != VG_OK) {
        vg_warn("snapshot: segment %s does not decode at %" PRId64, seg->path, target);
        snprintf(err, err_size, "the recording at that time cannot be decoded (segment %" PRId64
                 ")", seg->id);
        goto cleanup;
    }
    int sw = s->best->width, sh = s->best->height;
    int ow = sw, oh = sh;
    if (width > 0 && width < sw) {
        ow = width & ~1;
        oh = (int)(((int64_t)sh * ow + sw) / (2 * (int64_t)sw)) * 2;
        oh = oh < 2 ? 2 : oh;
    }
    if ((rc = pb_jpeg_encode(s->best, ow, oh, threads, &jpeg, &len)) != VG_OK) {
        snprintf(err, err_size, "the frame cannot be encoded as JPEG");
        goto cleanup;
    }
    /* keyed by the pts of the frame shown: the requested time's own frame
     * (the one read_gop predicted), whatever the decoder's ordering */
    pts = s->best->best_effort_timestamp;
    final = snap_name(pb, seg, pts, width);
    if (cache_store(pb, final, jpeg, len) != VG_OK || cache_open(pb, seg, pts, width, out) != VG_OK) {
        vg_warn("snapshot: cannot write %s", final);
        snprintf(err, err_size, "the snapshot cache cannot be written");
        rc = VG_EIO;
        goto cleanup;
    }
    /* Retention deletes the segment's file, then its cached pictures: one
     * written here after that sweep of the cache would outlive the
     * recording it copies. Looked at after the rename, either the file is
     * gone (so this picture goes too) or retention's sweep comes later and
     * finds it. */
    char *media = vg_asprintf("%s/%s", pb->data_dir, seg->path);
    struct stat mst;
    int gone = stat(media, &mst) != 0 && errno == ENOENT;
    free(media);
    if (gone) {
        close(out->fd);
        out->fd = -1;
        unlink(final);
        snprintf(err, err_size, "the recording was deleted meanwhile");
        rc = VG_ENOTFOUND;
        goto cleanup;
    }
    memo_put(pb, seg, at_us, mkey, pts, width);
    rc = VG_OK;

cleanup:
    gop_clear(s);
    avcodec_free_context(&s->dec);
    avformat_close_input(&s->ic);
    av_frame_free(&s->best);
    av_frame_free(&s->frame);
    free(s);
    free(jpeg);
    free(final);
    free(path);
    return rc;
}

int pb_snapshot(pb_t *pb, const idx_segment_t *seg, int64_t at_us, int width, int keyframe,
                pb_snapshot_t *out, char *err, size_t err_size)
{
    int64_t pts;
    int rc;
    out->fd = -1;
    err[0] = '\0';
    if (width > 0 && width < MIN_WIDTH)
        width = MIN_WIDTH;
    if (width > 0)
        width &= ~1;
    int mkey = width | (keyframe ? MEMO_KEYFRAME : 0), file_width;
    if (memo_get(pb, seg, at_us, mkey, &pts, &file_width) &&
        cache_open(pb, seg, pts, file_width, out) == VG_OK)
        return VG_OK;
    if (!pb_slot_take(pb)) {
        snprintf(err, err_size, "too many snapshots are being made; try again shortly");
        return VG_EBUSY;
    }
    rc = snap_decode(pb, seg, at_us, width, keyframe, out, err, err_size);
    pb_slot_give(pb);
    return rc;
}
