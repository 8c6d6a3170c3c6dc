/* Reading finished and half-finished segment files back: the box walk that
 * finds the last complete fragment, and the probe that measures a file. */
#include "archive.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

typedef struct {
    int64_t init_end;     /* end of the moov box */
    int64_t complete_end; /* end of the last mdat that follows a moof */
} box_walk_t;

static int read_box_header(int fd, int64_t off, int64_t file_size, int64_t *size, char type[5])
{
    unsigned char h[16];
    if (pread(fd, h, 8, off) != 8)
        return VG_ECORRUPT;
    uint64_t sz = ((uint64_t)h[0] << 24) | ((uint64_t)h[1] << 16) | ((uint64_t)h[2] << 8) | h[3];
    memcpy(type, h + 4, 4);
    type[4] = '\0';
    if (sz == 1) {
        if (pread(fd, h + 8, 8, off + 8) != 8)
            return VG_ECORRUPT;
        sz = 0;
        for (int i = 8; i < 16; i++)
            sz = (sz << 8) | h[i];
    } else if (sz == 0) {
        sz = (uint64_t)(file_size - off); /* box runs to the end of the file */
    }
    if (sz < 8 || sz > (uint64_t)(file_size - off))
        return VG_ECORRUPT; /* truncated or garbage */
    *size = (int64_t)sz;
    return VG_OK;
}

/* Walks top-level boxes: ftyp, moov, then moof+mdat pairs. Stops at the first
 * box that is cut short or makes no sense. */
static int walk_boxes(int fd, int64_t file_size, box_walk_t *out)
{
    int64_t off = 0, size;
    char type[5];
    int seen_moof = 0;
    out->init_end = out->complete_end = 0;
    while (off < file_size && read_box_header(fd, off, file_size, &size, type) == VG_OK) {
        if (strcmp(type, "moov") == 0) {
            out->init_end = off + size;
            out->complete_end = off + size;
        } else if (strcmp(type, "moof") == 0) {
            seen_moof = 1;
        } else if (strcmp(type, "mdat") == 0 && seen_moof) {
            out->complete_end = off + size;
            seen_moof = 0;
        } else if (strcmp(type, "mfra") == 0 && !seen_moof) {
            out->complete_end = off + size;
        }
        off += size;
    }
    if (out->init_end == 0)
        return VG_ECORRUPT;
    return VG_OK;
}

/* Sums the primary stream's packet durations and lists the codecs. */
static int probe_file(const char *path, arc_file_info_t *info)
{
    AVFormatContext *ic = NULL;
    int ret = avformat_open_input(&ic, path, NULL, NULL);
    if (ret < 0)
        return VG_ECORRUPT;
    int rc = VG_ECORRUPT;
    int primary = av_find_best_stream(ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    if (primary < 0)
        primary = av_find_best_stream(ic, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
    if (primary < 0)
        goto cleanup;
    info->codecs[0] = '\0';
    for (unsigned i = 0; i < ic->nb_streams; i++)
        vg_list_append(info->codecs, sizeof(info->codecs),
                       avcodec_get_name(ic->streams[i]->codecpar->codec_id));
    AVPacket *pkt = av_packet_alloc();
    int64_t first = AV_NOPTS_VALUE, end = AV_NOPTS_VALUE;
    while (av_read_frame(ic, pkt) >= 0) {
        if (pkt->stream_index == primary && pkt->dts != AV_NOPTS_VALUE) {
            if (first == AV_NOPTS_VALUE)
                first = pkt->dts;
            int64_t e = pkt->dts + pkt->duration;
            if (end == AV_NOPTS_VALUE || e > end)
                end = e;
        }
        av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
    if (first != AV_NOPTS_VALUE) {
        info->media_us = av_rescale_q(end - first, ic->streams[primary]->time_base, AV_TIME_BASE_Q);
        rc = VG_OK;
    }
cleanup:
    avformat_close_input(&ic);
    return rc;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

int arc_recover_file(const char *path, arc_file_info_t *info)
{
    memset(info, 0, sizeof(*info));
    if (arc_parse_segment_name(base_name(path), &info->start_us) != VG_OK)
        return VG_EINVAL;
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? VG_ENOTFOUND : VG_EIO;
    int rc = VG_OK;
    struct stat st;
    box_walk_t walk;
    if (fstat(fd, &st) != 0) {
        rc = VG_EIO;
        goto cleanup;
    }
    rc = walk_boxes(fd, st.st_size, &walk);
    if (rc != VG_OK || walk.complete_end <= walk.init_end) {
        rc = VG_ECORRUPT; /* no complete fragment: nothing playable */
        goto cleanup;
    }
    if (walk.complete_end < st.st_size) {
        if (ftruncate(fd, walk.complete_end) != 0 || fsync(fd) != 0) {
            rc = VG_EIO;
            goto cleanup;
        }
        vg_notice("recovered %s: cut %lld bytes of an unfinished fragment", path,
                  (long long)(st.st_size - walk.complete_end));
    }
    info->bytes = walk.complete_end;
    info->init_bytes = walk.init_end;
    rc = probe_file(path, info);
    if (rc == VG_OK)
        rc = arc_hash_file(path, info->sha256);
cleanup:;
    int err = errno; /* the caller reports why an I/O error kept the file */
    close(fd);
    errno = err;
    return rc;
}
