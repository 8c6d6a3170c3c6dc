/* HLS over the stored files (DESIGN.md "Storage"): a VOD playlist whose
 * media are byte ranges of the segment files, named from the fragment
 * tables the index keeps, and the opening of one stored file for the media
 * route. A segment without a table (recovered, or indexed before schema
 * v13) has its file's box headers read once and the table stored. */
#include "playback/playback.h"

#include <fcntl.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"
#include "playback/playback_private.h"

#define MAX_INIT_READ (1024 * 1024)

typedef struct {
    char *p;
    size_t len, cap;
} buf_t;

static void bneed(buf_t *b, size_t n)
{
    if (b->len + n <= b->cap)
        return;
    while (b->len + n > b->cap)
        b->cap = b->cap ? b->cap * 2 : 64 * 1024;
    b->p = vg_realloc(b->p, b->cap);
}

__attribute__((format(printf, 2, 3))) static void bprintf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        bneed(b, (size_t)n + 1);
    }
}

/* The per-fragment lines are most of a 24 h playlist (about 40,000 of
 * them): written with these rather than vsnprintf, which parsing its
 * format and formatting a double made the larger part of the answer's
 * time. */
static void bput(buf_t *b, const char *s, size_t n)
{
    bneed(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

#define BLIT(b, s) bput((b), (s), sizeof(s) - 1)

static void bu64(buf_t *b, uint64_t v)
{
    char t[24];
    size_t i = sizeof(t);
    do {
        t[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    bput(b, t + i, sizeof(t) - i);
}

static void bi64(buf_t *b, int64_t v)
{
    if (v < 0) {
        BLIT(b, "-");
        bu64(b, (uint64_t)0 - (uint64_t)v);
        return;
    }
    bu64(b, (uint64_t)v);
}

/* Microseconds as seconds with three decimals, as EXTINF has them. Cut to
 * the millisecond, not rounded: what is written never rounds to more
 * seconds than the target duration (the longest fragment, rounded). */
static void bseconds(buf_t *b, int64_t us)
{
    if (us < 0)
        us = 0;
    uint64_t ms = (uint64_t)us / 1000;
    char frac[4] = {'.', (char)('0' + ms % 1000 / 100), (char)('0' + ms % 100 / 10),
                    (char)('0' + ms % 10)};
    bu64(b, ms / 1000);
    bput(b, frac, 4);
}

static char *abs_path(const char *data_dir, const char *rel)
{
    return vg_asprintf("%s/%s", data_dir, rel);
}

/* The fragment table of seg: from its blob, else from the file (then
 * stored for next time). */
static int segment_frags(idx_t *idx, const char *data_dir, const idx_segment_frags_t *s,
                         arc_frag_t **f, size_t *n)
{
    if (s->frags && arc_frags_decode(s->frags, s->frags_len, f, n) == VG_OK && *n > 0)
        return VG_OK;
    char *path = abs_path(data_dir, s->seg.path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0)
        return VG_ENOTFOUND;
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? arc_frags_scan(fd, st.st_size, NULL, f, n) : VG_EIO;
    close(fd);
    if (rc != VG_OK) {
        vg_warn("playback: segment %" PRId64 " (%s): cannot read its fragments (%s)", s->seg.id,
                s->seg.path, vg_strerror(rc));
        return rc;
    }
    uint8_t *blob = NULL;
    size_t len = 0;
    if (arc_frags_encode(*f, *n, &blob, &len) == VG_OK)
        idx_frags_put(idx, s->seg.id, blob, len); /* best effort: read again next time */
    free(blob);
    return VG_OK;
}

int pb_segment_frags(idx_t *idx, const char *data_dir, int64_t segment_id, arc_frag_t **f,
                     size_t *n)
{
    idx_segment_frags_t s;
    int rc = idx_segment_get(idx, segment_id, &s);
    if (rc != VG_OK)
        return rc;
    rc = segment_frags(idx, data_dir, &s, f, n);
    free(s.frags);
    return rc;
}

/* HEVC files are named through the relabelling init route: it serves hvc1
 * where the stored init says hev1 with its parameter sets in hvcC, and the
 * stored bytes otherwise, so the playlist need not open the file to know. */
static int wants_hvc1(const idx_segment_t *seg)
{
    return strstr(seg->codecs, "hevc") != NULL;
}

static void program_date_time(buf_t *b, int64_t us)
{
    time_t secs = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char day[32];
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    bprintf(b, "#EXT-X-PROGRAM-DATE-TIME:%s.%03dZ\n", day, (int)(us % 1000000 / 1000));
}

int pb_playlist(idx_t *idx, const char *data_dir, const char *source, int64_t from_us,
                int64_t to_us, unsigned wanted, char **out, size_t *len, size_t *n_segments)
{
    if (!idx || !data_dir || !source || !out || !len || to_us <= from_us)
        return VG_EINVAL;
    *out = NULL;
    *len = 0;
    if (n_segments)
        *n_segments = 0;
    idx_segment_frags_t *segs = NULL;
    size_t n = 0;
    int rc = idx_segments_frags_in_range(idx, source, from_us, to_us, PB_PLAYLIST_MAX_SEGMENTS,
                                         &segs, &n);
    if (rc != VG_OK)
        return rc;
    buf_t body = {0};
    int64_t max_dur = 0;
    int all_key = 1, listed_files = 0;
    size_t listed = 0;
    for (size_t i = 0; i < n; i++) {
        const idx_segment_frags_t *s = &segs[i];
        arc_frag_t *f = NULL;
        size_t nf = 0;
        if (segment_frags(idx, data_dir, s, &f, &nf) != VG_OK)
            continue; /* unreadable: left out, a gap */
        /* From the keyframe fragment at or before from_us, to the last one
         * starting before to_us. */
        size_t first = 0, last = nf;
        for (size_t k = 0; k < nf; k++) {
            int64_t start = s->seg.start_us + f[k].start_us;
            if (start <= from_us && f[k].key)
                first = k;
            if (start >= to_us && last == nf)
                last = k;
        }
        /* What a browser cannot play as stored is named through converted
         * URIs: one per fragment, built on request (pb_convert). */
        unsigned conv = pb_convert_for(s->seg.codecs, wanted);
        char q[32];
        pb_convert_query(conv, q, sizeof(q));
        int hvc1 = !(conv & PB_CONV_H264) && wants_hvc1(&s->seg);
        char id[24];
        size_t id_len = (size_t)snprintf(id, sizeof(id), "%" PRId64, s->seg.id);
        for (size_t k = first; k < last; k++) {
            int64_t start = s->seg.start_us + f[k].start_us;
            if (k == first) {
                /* A new file: its timestamps start anew, maybe with other
                 * codecs, maybe after a gap. */
                if (listed_files > 0)
                    bprintf(&body, "#EXT-X-DISCONTINUITY\n");
                if (conv)
                    bprintf(&body, "#EXT-X-MAP:URI=\"media/%" PRId64 "?%s\"\n", s->seg.id, q);
                else
                    bprintf(&body,
                            "#EXT-X-MAP:URI=\"media/%" PRId64 "%s\",BYTERANGE=\"%" PRId64
                            "@0\"\n",
                            s->seg.id, hvc1 ? "?init=hvc1" : "", s->seg.init_bytes);
                program_date_time(&body, start);
                listed_files++;
            }
            if (++listed > PB_PLAYLIST_MAX_FRAGMENTS) {
                free(f);
                idx_segment_frags_free(segs, n);
                free(body.p);
                return VG_EINVAL; /* the answer would be too large */
            }
            if (!f[k].key)
                all_key = 0;
            if (f[k].dur_us > max_dur)
                max_dur = f[k].dur_us;
            BLIT(&body, "#EXTINF:");
            bseconds(&body, f[k].dur_us);
            if (conv) {
                BLIT(&body, ",\nmedia/");
                bput(&body, id, id_len);
                BLIT(&body, "?");
                bput(&body, q, strlen(q));
                BLIT(&body, "&frag=");
                bi64(&body, (int64_t)k);
                BLIT(&body, "\n");
            } else {
                BLIT(&body, ",\n#EXT-X-BYTERANGE:");
                bi64(&body, f[k].size);
                BLIT(&body, "@");
                bi64(&body, f[k].offset);
                BLIT(&body, "\nmedia/");
                bput(&body, id, id_len);
                BLIT(&body, "\n");
            }
        }
        free(f);
        if (n_segments && first < last)
            (*n_segments)++;
    }
    idx_segment_frags_free(segs, n);
    /* EXTINF rounded to the nearest second must not exceed the target. */
    int64_t target = (max_dur + 500000) / 1000000;
    if (target < 1)
        target = 1;
    buf_t b = {0};
    bprintf(&b, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-PLAYLIST-TYPE:VOD\n"
                "#EXT-X-TARGETDURATION:%" PRId64 "\n#EXT-X-MEDIA-SEQUENCE:0\n",
            target);
    /* Only true when every fragment listed starts on a keyframe (a cut forced
     * by fragment_max_seconds does not). */
    if (all_key)
        bprintf(&b, "#EXT-X-INDEPENDENT-SEGMENTS\n");
    if (body.len)
        bput(&b, body.p, body.len);
    BLIT(&b, "#EXT-X-ENDLIST\n");
    free(body.p);
    *out = b.p;
    *len = b.len;
    return VG_OK;
}

int pb_media_open(idx_t *idx, const char *data_dir, const char *source, int64_t segment_id,
                  pb_media_t *m)
{
    if (!idx || !data_dir || !source || !m)
        return VG_EINVAL;
    memset(m, 0, sizeof(*m));
    m->fd = -1;
    idx_segment_frags_t s;
    int rc = idx_segment_get(idx, segment_id, &s);
    if (rc != VG_OK)
        return rc;
    free(s.frags);
    if (strcmp(s.seg.source, source) != 0)
        return VG_ENOTFOUND; /* another source's: as if it did not exist */
    char *path = abs_path(data_dir, s.seg.path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0)
        return VG_ENOTFOUND;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return VG_EIO;
    }
    m->fd = fd;
    m->size = (uint64_t)st.st_size;
    m->seg = s.seg;
    return VG_OK;
}

int pb_media_hvc1_at(const pb_media_t *m, uint64_t *at)
{
    if (!m || m->fd < 0 || !at || m->seg.init_bytes <= 0 || m->seg.init_bytes > MAX_INIT_READ ||
        (uint64_t)m->seg.init_bytes > m->size)
        return VG_ENOTFOUND;
    uint8_t *init = vg_malloc((size_t)m->seg.init_bytes);
    size_t pos = 0;
    int rc = pread(m->fd, init, (size_t)m->seg.init_bytes, 0) == (ssize_t)m->seg.init_bytes
                 ? arc_init_hev1_at(init, (size_t)m->seg.init_bytes, &pos)
                 : VG_EIO;
    free(init);
    if (rc == VG_OK)
        *at = pos;
    return rc;
}

long pb_media_read_hvc1(const pb_media_t *m, uint64_t hvc1_at, uint64_t pos, char *buf,
                        size_t max)
{
    ssize_t r = pread(m->fd, buf, max, (off_t)pos);
    if (r <= 0)
        return -1;
    /* The 4 bytes of the sample entry's type, wherever they fall in buf. */
    static const char hvc1[4] = {'h', 'v', 'c', '1'};
    for (uint64_t k = 0; k < 4; k++) {
        uint64_t at = hvc1_at + k;
        if (at >= pos && at < pos + (uint64_t)r)
            buf[at - pos] = hvc1[k];
    }
    return (long)r;
}
