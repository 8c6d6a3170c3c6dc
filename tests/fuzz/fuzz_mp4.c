/* libFuzzer target for what playback/ reads from stored segment files: the
 * MP4/MOV box reader (a damaged disk or a planted file is hostile input),
 * then the clip planner and reader over the same bytes as a segment file
 * (a memfd named through /proc/self/fd), so the sample tables, the layout
 * and the byte mapping see whatever the reader accepted. Built by
 * `make fuzz` (clang). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"
#include "playback/playback.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int quiet;
    if (!quiet) {
        vg_log_set_level(VG_LOG_ERR);
        quiet = 1;
    }
    pb_mp4_file_t f;
    if (pb_mp4_scan_mem(data, size, &f) != VG_OK)
        return 0;
    pb_mp4_file_free(&f);
    int fd = memfd_create("segment", MFD_CLOEXEC);
    if (fd < 0 || vg_write_all(fd, data, size) != VG_OK) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    idx_segment_t seg = {0};
    snprintf(seg.path, sizeof(seg.path), "%d", fd);
    seg.start_us = 1000000000;
    seg.end_us = seg.start_us + 10000000;
    static const pb_clip_format_t fmts[] = {PB_CLIP_MP4, PB_CLIP_MOV};
    for (size_t i = 0; i < sizeof(fmts) / sizeof(fmts[0]); i++) {
        pb_clip_t *c = NULL;
        char err[256];
        if (pb_clip_plan("/proc/self/fd", &seg, 1, seg.start_us + 10000, seg.end_us, fmts[i],
                         &c, err, sizeof(err)) != VG_OK)
            continue;
        char buf[4096];
        uint64_t n = pb_clip_size(c);
        for (uint64_t pos = 0; pos < n;) {
            long got = pb_clip_read(c, pos, buf, sizeof(buf));
            if (got <= 0)
                break;
            pos += (uint64_t)got;
        }
        pb_clip_free(c);
    }
    close(fd);
    return 0;
}
