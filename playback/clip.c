/* Progressive clips (.mp4, .mov) built from stored fragments without
 * re-encoding and without a temporary copy. Planning reads the boxes of the
 * segments in range (mp4.c), picks the samples from the keyframe at or
 * before `from` to `to`, and lays out the whole file: ftyp, a moov whose
 * sample tables (stts, ctts, stss, stsz, stsc, stco/co64) describe those
 * samples, and an mdat that is the concatenation of the stored chunks. The
 * header is built in memory (its size is proportional to the sample count);
 * the mdat is never copied: pb_clip_read maps any byte position either into
 * the header or onto a (file, offset) range and preads just that, so the
 * size is exact before the first byte and a Range request costs only the
 * bytes it asks for.
 *
 * Time: every segment's samples are placed on the wall clock of its index row
 * (start_us), so a gap between segments stays a gap. It is kept by
 * stretching the duration of the last sample before it (the last frame stays
 * on screen, audio is silent), not by an empty edit in the middle of the
 * edit list: ffmpeg/ffprobe, Chromium and VLC honour a leading empty edit
 * and one media edit, but several media edits are dropped or mishandled by
 * most of them, while a long sample duration plays everywhere. The one edit
 * list per track starts the presentation at `from` (the decoding starts at
 * the keyframe before it); a track that starts later than `from` gets a
 * leading empty edit. */
#include "playback/clip_private.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavutil/mathematics.h>
#include <nettle/sha2.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define FOURCC(a, b, c, d) \
    (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (uint32_t)(d))
#define MOVIE_TIMESCALE 1000
/* Sample entries one track may switch between within a clip (resolution
 * changes); more than this is not a camera we can make one file of. */
#define MAX_DESCS 16

typedef struct {
    uint32_t size, duration;
    int32_t cts;
    uint8_t sync, desc; /* desc: 0-based sample description */
} out_sample_t;

typedef struct {
    uint64_t src_off, len, out_off;
    uint32_t seg;        /* index into the clip's files */
    uint32_t first;      /* first sample (index into its track's samples) */
    uint32_t n;
    uint8_t track, desc;
} chunk_t;

typedef struct {
    uint32_t handler, timescale, codec;
    uint16_t language, volume;
    uint32_t width, height;
    uint8_t *desc[MAX_DESCS];
    size_t desc_len[MAX_DESCS];
    size_t n_desc;
    out_sample_t *s;
    size_t n, cap;
    int64_t origin;       /* clip dts (track ts, from W0) of the first sample */
    int64_t next_dts;     /* clip dts where the last sample ends */
    int64_t seg_base;     /* clip dts of the current segment's file time 0 */
    size_t seg_at;        /* segment index seg_base belongs to */
    uint32_t *chunks;     /* indexes into the clip's chunks */
    size_t n_chunks, cap_chunks;
} track_t;

struct pb_clip {
    pb_clip_format_t fmt;
    char **paths;         /* absolute paths of the segments, opened when read */
    size_t n_paths;
    track_t tracks[PB_MP4_MAX_TRACKS];
    size_t n_tracks;
    chunk_t *chunks;
    size_t n_chunks, cap_chunks;
    uint8_t *head;        /* ftyp + moov + mdat header */
    size_t head_len;
    uint64_t size;
    int64_t from_us, to_us;
    int64_t w0_us;        /* wall time of the first (key)frame decoded */
    char etag[40];        /* quoted */
    /* .mkv: the MOV clip it is muxed from, and the muxer serving it */
    pb_clip_t *inner;
    pb_mkv_run_t *mkv;
    int fd;               /* the open segment file, or -1 */
    size_t fd_seg;
};

/* ---- a growing buffer of boxes ---- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
    size_t open[16];      /* starts of the boxes being written */
    int depth;
} bw_t;

static void bw_need(bw_t *b, size_t n)
{
    if (b->len + n <= b->cap)
        return;
    while (b->len + n > b->cap)
        b->cap = b->cap ? b->cap * 2 : 4096;
    b->p = vg_realloc(b->p, b->cap);
}

static void put(bw_t *b, const void *p, size_t n)
{
    bw_need(b, n);
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void u8(bw_t *b, unsigned v)
{
    uint8_t x = (uint8_t)v;
    put(b, &x, 1);
}

static void u16(bw_t *b, unsigned v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    put(b, x, 2);
}

static void u32(bw_t *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(b, x, 4);
}

static void u64(bw_t *b, uint64_t v)
{
    u32(b, (uint32_t)(v >> 32));
    u32(b, (uint32_t)v);
}

static void zeros(bw_t *b, size_t n)
{
    bw_need(b, n);
    memset(b->p + b->len, 0, n);
    b->len += n;
}

static void box_open(bw_t *b, uint32_t type)
{
    b->open[b->depth++] = b->len;
    u32(b, 0);
    u32(b, type);
}

/* A full box: version and flags after the header. */
static void fbox_open(bw_t *b, uint32_t type, unsigned version, uint32_t flags)
{
    box_open(b, type);
    u32(b, ((uint32_t)version << 24) | (flags & 0xffffff));
}

static void box_close(bw_t *b)
{
    size_t at = b->open[--b->depth];
    uint32_t size = (uint32_t)(b->len - at);
    uint8_t x[4] = {(uint8_t)(size >> 24), (uint8_t)(size >> 16), (uint8_t)(size >> 8),
                    (uint8_t)size};
    memcpy(b->p + at, x, 4);
}

static void matrix(bw_t *b)
{
    static const uint32_t m[9] = {0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000};
    for (int i = 0; i < 9; i++)
        u32(b, m[i]);
}

/* ---- planning ---- */

static int fail(char *err, size_t size, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t size, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, size, fmt, ap);
    va_end(ap);
    return rc;
}

static int fd_read(void *ctx, uint64_t off, void *buf, size_t len)
{
    int fd = *(const int *)ctx;
    size_t got = 0;
    while (got < len) {
        ssize_t n = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    return 0;
}

static int64_t wall_us(const idx_segment_t *seg, uint64_t dts, uint32_t timescale)
{
    return seg->start_us + av_rescale((int64_t)dts, 1000000, timescale);
}

static const char *codec_name(uint32_t c, char buf[5])
{
    for (int i = 0; i < 4; i++) {
        char ch = (char)(c >> (24 - 8 * i));
        buf[i] = ch >= 32 && ch < 127 ? ch : '?';
    }
    buf[4] = '\0';
    return buf;
}

/* Checks that file f has the clip's tracks (the first file's); adds its
 * sample entries. VG_EEXIST when a codec or the set of tracks changes. */
static int match_tracks(pb_clip_t *c, const pb_mp4_file_t *f, const idx_segment_t *seg,
                        uint8_t desc_of[PB_MP4_MAX_TRACKS], char *err, size_t err_size)
{
    char when[VG_TIME_TEXT_MAX];
    vg_time_format(seg->start_us, when);
    if (c->n_tracks == 0) {
        c->n_tracks = f->n_tracks;
        for (size_t i = 0; i < f->n_tracks; i++) {
            const pb_mp4_track_t *s = &f->tracks[i];
            track_t *t = &c->tracks[i];
            t->handler = s->handler;
            t->timescale = s->timescale;
            t->codec = s->codec;
            t->language = s->language;
            t->volume = s->volume;
            t->width = s->width;
            t->height = s->height;
        }
    }
    if (f->n_tracks != c->n_tracks)
        return fail(err, err_size, VG_EEXIST,
                    "the recording's streams change at %s: ask for a range ending or "
                    "starting there", when);
    for (size_t i = 0; i < f->n_tracks; i++) {
        const pb_mp4_track_t *s = &f->tracks[i];
        track_t *t = &c->tracks[i];
        char a[5], b[5];
        if (s->handler != t->handler || s->codec != t->codec || s->timescale != t->timescale)
            return fail(err, err_size, VG_EEXIST,
                        "the codec changes at %s (%s to %s): ask for a range ending or "
                        "starting there", when, codec_name(t->codec, a), codec_name(s->codec, b));
        size_t d = 0;
        while (d < t->n_desc &&
               (t->desc_len[d] != s->entry_len || memcmp(t->desc[d], s->entry, s->entry_len)))
            d++;
        if (d == t->n_desc) {
            if (d == MAX_DESCS)
                return fail(err, err_size, VG_EEXIST,
                            "the stream's format changes too often up to %s", when);
            t->desc[d] = vg_malloc(s->entry_len);
            memcpy(t->desc[d], s->entry, s->entry_len);
            t->desc_len[d] = s->entry_len;
            t->n_desc++;
            if (d > 0 && t->handler == FOURCC('v', 'i', 'd', 'e')) {
                t->width = s->width > t->width ? s->width : t->width;
                t->height = s->height > t->height ? s->height : t->height;
            }
        }
        desc_of[i] = (uint8_t)d;
    }
    return VG_OK;
}

static void add_chunk(pb_clip_t *c, uint32_t seg, const pb_mp4_sample_t *s, uint8_t desc)
{
    track_t *t = &c->tracks[s->track];
    chunk_t *last = t->n_chunks ? &c->chunks[t->chunks[t->n_chunks - 1]] : NULL;
    /* Consecutive samples of one track, one file and one sample entry whose
     * bytes follow each other are one chunk (a stored traf, normally). */
    if (last && c->n_chunks && last == &c->chunks[c->n_chunks - 1] && last->seg == seg &&
        last->desc == desc && last->src_off + last->len == s->offset) {
        last->len += s->size;
        last->n++;
        return;
    }
    if (c->n_chunks == c->cap_chunks) {
        c->cap_chunks = c->cap_chunks ? c->cap_chunks * 2 : 256;
        c->chunks = vg_realloc(c->chunks, c->cap_chunks * sizeof(*c->chunks));
    }
    if (t->n_chunks == t->cap_chunks) {
        t->cap_chunks = t->cap_chunks ? t->cap_chunks * 2 : 64;
        t->chunks = vg_realloc(t->chunks, t->cap_chunks * sizeof(*t->chunks));
    }
    chunk_t *k = &c->chunks[c->n_chunks];
    *k = (chunk_t){.src_off = s->offset, .len = s->size, .seg = seg, .first = (uint32_t)t->n,
                   .n = 1, .track = s->track, .desc = desc};
    t->chunks[t->n_chunks++] = (uint32_t)c->n_chunks++;
}

/* Appends sample s of segment k (at wall start_us) to its track at its
 * wall-clock place relative to w0_us. */
static int add_sample(pb_clip_t *c, size_t k, const idx_segment_t *seg, uint32_t seg_index,
                      const pb_mp4_sample_t *s, uint8_t desc, int64_t w0_us, char *err,
                      size_t err_size)
{
    track_t *t = &c->tracks[s->track];
    if (t->n == 0 || t->seg_at != k) {
        /* A new segment: its file time 0 goes where its row says, but never
         * before the end of what this track already holds. */
        int64_t base = av_rescale(seg->start_us - w0_us, t->timescale, 1000000);
        if (t->n && base + (int64_t)s->dts < t->next_dts)
            base = t->next_dts - (int64_t)s->dts;
        t->seg_base = base;
        t->seg_at = k;
    }
    int64_t dts = t->seg_base + (int64_t)s->dts;
    if (t->n == 0) {
        t->origin = dts;
    } else {
        if (dts < t->next_dts)
            dts = t->next_dts; /* a stored file's own overlap: keep decode order */
        int64_t stretched = dts - (t->next_dts - t->s[t->n - 1].duration);
        if (stretched > UINT32_MAX)
            return fail(err, err_size, VG_EINVAL, "a gap in the range is too long for one "
                        "file: ask for the parts before and after it");
        t->s[t->n - 1].duration = (uint32_t)stretched;
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 1024;
        t->s = vg_realloc(t->s, t->cap * sizeof(*t->s));
    }
    add_chunk(c, seg_index, s, desc);
    t->s[t->n++] = (out_sample_t){.size = s->size, .duration = s->duration, .cts = s->cts,
                                   .sync = s->sync, .desc = desc};
    t->next_dts = dts + s->duration;
    return VG_OK;
}

/* ---- the header ---- */

static void write_ftyp(bw_t *b, const pb_clip_t *c)
{
    box_open(b, FOURCC('f', 't', 'y', 'p'));
    if (c->fmt == PB_CLIP_MOV) {
        u32(b, FOURCC('q', 't', ' ', ' '));
        u32(b, 0x200);
        u32(b, FOURCC('q', 't', ' ', ' '));
    } else {
        u32(b, FOURCC('i', 's', 'o', 'm'));
        u32(b, 0x200);
        u32(b, FOURCC('i', 's', 'o', 'm'));
        u32(b, FOURCC('i', 's', 'o', '2'));
        u32(b, FOURCC('i', 's', 'o', '6'));
        u32(b, FOURCC('m', 'p', '4', '1'));
    }
    box_close(b);
}

static void write_hdlr(bw_t *b, const pb_clip_t *c, uint32_t kind, uint32_t type,
                       const char *name)
{
    fbox_open(b, FOURCC('h', 'd', 'l', 'r'), 0, 0);
    u32(b, c->fmt == PB_CLIP_MOV ? kind : 0);
    u32(b, type);
    zeros(b, 12);
    if (c->fmt == PB_CLIP_MOV) /* QuickTime: a counted string */
        u8(b, (unsigned)strlen(name));
    put(b, name, strlen(name) + (c->fmt == PB_CLIP_MOV ? 0 : 1));
    box_close(b);
}

typedef struct {
    int64_t lead_mt;      /* empty edit, movie timescale; 0: none */
    int64_t dur_mt;       /* the media edit */
    int64_t media_time;   /* where it starts, track timescale */
    uint64_t media_dur;   /* sum of the sample durations */
} edit_t;

static void track_edit(const pb_clip_t *c, const track_t *t, int64_t w0_us, edit_t *e)
{
    int64_t total_mt = av_rescale(c->to_us - c->from_us, MOVIE_TIMESCALE, 1000000);
    e->media_dur = 0;
    for (size_t i = 0; i < t->n; i++)
        e->media_dur += t->s[i].duration;
    int64_t cts0 = t->n ? t->s[0].cts : 0;
    int64_t m = av_rescale(c->from_us - w0_us, t->timescale, 1000000) - t->origin;
    e->lead_mt = 0;
    if (m < 0) {
        e->lead_mt = av_rescale(-m, MOVIE_TIMESCALE, t->timescale);
        if (e->lead_mt > total_mt)
            e->lead_mt = total_mt;
        m = 0;
    }
    e->media_time = m + cts0;
    int64_t left = (int64_t)e->media_dur - m;
    int64_t left_mt = left > 0 ? av_rescale(left, MOVIE_TIMESCALE, t->timescale) : 0;
    e->dur_mt = total_mt - e->lead_mt;
    if (e->dur_mt > left_mt)
        e->dur_mt = left_mt;
}

static void write_stbl(bw_t *b, const pb_clip_t *c, const track_t *t, int co64)
{
    box_open(b, FOURCC('s', 't', 'b', 'l'));
    fbox_open(b, FOURCC('s', 't', 's', 'd'), 0, 0);
    u32(b, (uint32_t)t->n_desc);
    for (size_t d = 0; d < t->n_desc; d++)
        put(b, t->desc[d], t->desc_len[d]);
    box_close(b);

    /* stts: runs of equal durations */
    fbox_open(b, FOURCC('s', 't', 't', 's'), 0, 0);
    size_t at = b->len, runs = 0;
    u32(b, 0);
    for (size_t i = 0; i < t->n;) {
        size_t j = i + 1;
        while (j < t->n && t->s[j].duration == t->s[i].duration)
            j++;
        u32(b, (uint32_t)(j - i));
        u32(b, t->s[i].duration);
        runs++;
        i = j;
    }
    b->p[at] = (uint8_t)(runs >> 24), b->p[at + 1] = (uint8_t)(runs >> 16);
    b->p[at + 2] = (uint8_t)(runs >> 8), b->p[at + 3] = (uint8_t)runs;
    box_close(b);

    int any_cts = 0, negative = 0, all_sync = 1;
    for (size_t i = 0; i < t->n; i++) {
        any_cts |= t->s[i].cts != 0;
        negative |= t->s[i].cts < 0;
        all_sync &= t->s[i].sync;
    }
    if (any_cts) {
        fbox_open(b, FOURCC('c', 't', 't', 's'), negative ? 1 : 0, 0);
        at = b->len;
        runs = 0;
        u32(b, 0);
        for (size_t i = 0; i < t->n;) {
            size_t j = i + 1;
            while (j < t->n && t->s[j].cts == t->s[i].cts)
                j++;
            u32(b, (uint32_t)(j - i));
            u32(b, (uint32_t)t->s[i].cts);
            runs++;
            i = j;
        }
        b->p[at] = (uint8_t)(runs >> 24), b->p[at + 1] = (uint8_t)(runs >> 16);
        b->p[at + 2] = (uint8_t)(runs >> 8), b->p[at + 3] = (uint8_t)runs;
        box_close(b);
    }
    if (!all_sync) {
        size_t n = 0;
        for (size_t i = 0; i < t->n; i++)
            n += t->s[i].sync;
        fbox_open(b, FOURCC('s', 't', 's', 's'), 0, 0);
        u32(b, (uint32_t)n);
        for (size_t i = 0; i < t->n; i++) {
            if (t->s[i].sync)
                u32(b, (uint32_t)(i + 1));
        }
        box_close(b);
    }
    int same = 1;
    for (size_t i = 1; i < t->n && same; i++)
        same = t->s[i].size == t->s[0].size;
    fbox_open(b, FOURCC('s', 't', 's', 'z'), 0, 0);
    u32(b, same && t->n ? t->s[0].size : 0);
    u32(b, (uint32_t)t->n);
    for (size_t i = 0; !(same && t->n) && i < t->n; i++)
        u32(b, t->s[i].size);
    box_close(b);

    /* stsc: runs of chunks with the same sample count and entry */
    fbox_open(b, FOURCC('s', 't', 's', 'c'), 0, 0);
    at = b->len;
    runs = 0;
    u32(b, 0);
    for (size_t i = 0; i < t->n_chunks; i++) {
        const chunk_t *k = &c->chunks[t->chunks[i]];
        const chunk_t *p = i ? &c->chunks[t->chunks[i - 1]] : NULL;
        if (p && p->n == k->n && p->desc == k->desc)
            continue;
        u32(b, (uint32_t)(i + 1));
        u32(b, k->n);
        u32(b, (uint32_t)k->desc + 1);
        runs++;
    }
    b->p[at] = (uint8_t)(runs >> 24), b->p[at + 1] = (uint8_t)(runs >> 16);
    b->p[at + 2] = (uint8_t)(runs >> 8), b->p[at + 3] = (uint8_t)runs;
    box_close(b);

    fbox_open(b, co64 ? FOURCC('c', 'o', '6', '4') : FOURCC('s', 't', 'c', 'o'), 0, 0);
    u32(b, (uint32_t)t->n_chunks);
    for (size_t i = 0; i < t->n_chunks; i++) {
        uint64_t off = c->chunks[t->chunks[i]].out_off;
        if (co64)
            u64(b, off);
        else
            u32(b, (uint32_t)off);
    }
    box_close(b);
    box_close(b); /* stbl */
}

static void write_trak(bw_t *b, const pb_clip_t *c, size_t ti, int64_t w0_us, int co64)
{
    const track_t *t = &c->tracks[ti];
    int video = t->handler == FOURCC('v', 'i', 'd', 'e');
    int sound = t->handler == FOURCC('s', 'o', 'u', 'n');
    edit_t e;
    track_edit(c, t, w0_us, &e);
    box_open(b, FOURCC('t', 'r', 'a', 'k'));
    fbox_open(b, FOURCC('t', 'k', 'h', 'd'), 1, 0x3); /* enabled, in movie */
    u64(b, 0);
    u64(b, 0);
    u32(b, (uint32_t)ti + 1);
    u32(b, 0);
    u64(b, (uint64_t)(e.lead_mt + e.dur_mt));
    zeros(b, 8);
    u16(b, 0);                      /* layer */
    u16(b, sound ? 1 : 0);          /* alternate group */
    u16(b, sound ? 0x100 : 0);      /* volume */
    u16(b, 0);
    matrix(b);
    u32(b, video ? t->width : 0);
    u32(b, video ? t->height : 0);
    box_close(b);

    box_open(b, FOURCC('e', 'd', 't', 's'));
    fbox_open(b, FOURCC('e', 'l', 's', 't'), 1, 0);
    u32(b, e.lead_mt ? 2 : 1);
    if (e.lead_mt) {
        u64(b, (uint64_t)e.lead_mt);
        u64(b, UINT64_MAX); /* -1: empty */
        u32(b, 0x10000);
    }
    u64(b, (uint64_t)e.dur_mt);
    u64(b, (uint64_t)e.media_time);
    u32(b, 0x10000);
    box_close(b);
    box_close(b);

    box_open(b, FOURCC('m', 'd', 'i', 'a'));
    fbox_open(b, FOURCC('m', 'd', 'h', 'd'), 1, 0);
    u64(b, 0);
    u64(b, 0);
    u32(b, t->timescale);
    u64(b, e.media_dur);
    u16(b, t->language);
    u16(b, 0);
    box_close(b);
    write_hdlr(b, c, FOURCC('m', 'h', 'l', 'r'), t->handler,
               video ? "VideoHandler" : sound ? "SoundHandler" : "DataHandler");
    box_open(b, FOURCC('m', 'i', 'n', 'f'));
    if (video) {
        fbox_open(b, FOURCC('v', 'm', 'h', 'd'), 0, 1);
        zeros(b, 8);
    } else if (sound) {
        fbox_open(b, FOURCC('s', 'm', 'h', 'd'), 0, 0);
        zeros(b, 4);
    } else {
        fbox_open(b, FOURCC('n', 'm', 'h', 'd'), 0, 0);
    }
    box_close(b);
    if (c->fmt == PB_CLIP_MOV)
        write_hdlr(b, c, FOURCC('d', 'h', 'l', 'r'), FOURCC('a', 'l', 'i', 's'), "DataHandler");
    box_open(b, FOURCC('d', 'i', 'n', 'f'));
    fbox_open(b, FOURCC('d', 'r', 'e', 'f'), 0, 0);
    u32(b, 1);
    /* flag 1: the media is in this file */
    fbox_open(b, c->fmt == PB_CLIP_MOV ? FOURCC('a', 'l', 'i', 's') : FOURCC('u', 'r', 'l', ' '),
              0, 1);
    box_close(b);
    box_close(b);
    box_close(b);
    write_stbl(b, c, t, co64);
    box_close(b); /* minf */
    box_close(b); /* mdia */
    box_close(b); /* trak */
}

/* The whole header for mdat bytes starting at data_start (chunk offsets
 * follow from it). */
static void write_head(bw_t *b, pb_clip_t *c, int64_t w0_us, uint64_t data_start, int co64,
                       int large, uint64_t payload)
{
    uint64_t off = data_start;
    for (size_t i = 0; i < c->n_chunks; i++) {
        c->chunks[i].out_off = off;
        off += c->chunks[i].len;
    }
    b->len = 0;
    write_ftyp(b, c);
    box_open(b, FOURCC('m', 'o', 'o', 'v'));
    int64_t longest = 0;
    for (size_t i = 0; i < c->n_tracks; i++) {
        edit_t e;
        track_edit(c, &c->tracks[i], w0_us, &e);
        if (e.lead_mt + e.dur_mt > longest)
            longest = e.lead_mt + e.dur_mt;
    }
    fbox_open(b, FOURCC('m', 'v', 'h', 'd'), 1, 0);
    u64(b, 0);
    u64(b, 0);
    u32(b, MOVIE_TIMESCALE);
    u64(b, (uint64_t)longest);
    u32(b, 0x10000); /* rate */
    u16(b, 0x100);   /* volume */
    zeros(b, 10);
    matrix(b);
    zeros(b, 24);
    u32(b, (uint32_t)c->n_tracks + 1);
    box_close(b);
    for (size_t i = 0; i < c->n_tracks; i++)
        write_trak(b, c, i, w0_us, co64);
    box_close(b); /* moov */
    if (large) {
        u32(b, 1);
        u32(b, FOURCC('m', 'd', 'a', 't'));
        u64(b, payload + 16);
    } else {
        u32(b, (uint32_t)(payload + 8));
        u32(b, FOURCC('m', 'd', 'a', 't'));
    }
}

static int scan_segment(const char *path, pb_mp4_file_t *f)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? VG_ENOTFOUND : VG_EIO;
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? pb_mp4_scan(fd_read, &fd, (uint64_t)st.st_size, f) : VG_EIO;
    close(fd);
    return rc;
}

static int plan_mkv(const char *data_dir, const idx_segment_t *segs, size_t n, int64_t from_us,
                    int64_t to_us, pb_clip_t **out, char *err, size_t err_size)
{
    pb_clip_t *inner = NULL;
    *out = NULL;
    int rc = pb_clip_plan(data_dir, segs, n, from_us, to_us, PB_CLIP_MOV, &inner, err, err_size);
    if (rc != VG_OK)
        return rc;
    pb_clip_t *c = vg_calloc(1, sizeof(*c));
    c->fmt = PB_CLIP_MKV;
    c->fd = -1;
    c->inner = inner;
    c->from_us = inner->w0_us; /* no edit list: it starts at the keyframe */
    c->to_us = inner->to_us;
    c->w0_us = inner->w0_us;
    snprintf(c->etag, sizeof(c->etag), "\"k%.31s", inner->etag + 1);
    rc = pb_mkv_measure(inner, c->to_us - c->w0_us, &c->size);
    if (rc != VG_OK) {
        pb_clip_free(c);
        return fail(err, err_size, rc, "cannot make Matroska of this range (%s)",
                    vg_strerror(rc));
    }
    *out = c;
    return VG_OK;
}

int pb_clip_plan(const char *data_dir, const idx_segment_t *segs, size_t n, int64_t from_us,
                 int64_t to_us, pb_clip_format_t fmt, pb_clip_t **out, char *err,
                 size_t err_size)
{
    if (fmt == PB_CLIP_MKV)
        return plan_mkv(data_dir, segs, n, from_us, to_us, out, err, err_size);
    pb_clip_t *c = vg_calloc(1, sizeof(*c));
    pb_mp4_file_t file = {0};
    int rc = VG_OK;
    c->fmt = fmt;
    c->fd = -1;
    c->paths = vg_calloc(n ? n : 1, sizeof(*c->paths));
    *out = NULL;
    if (from_us >= to_us) {
        rc = fail(err, err_size, VG_EINVAL, "from must be before to");
        goto cleanup;
    }
    /* One file at a time, freed once its samples are taken (memory: the
     * clip's tables, not every file's), from the last segment starting at
     * or before from: the keyframe at or before from is in it. */
    size_t k_first = 0, primary = 0;
    for (size_t k = 0; k < n; k++) {
        if (segs[k].start_us <= from_us)
            k_first = k;
    }
    int64_t w0 = INT64_MIN, end_us = INT64_MIN;
    for (size_t k = k_first; k < n; k++) {
        const pb_mp4_file_t *f = &file;
        c->paths[k] = vg_asprintf("%s/%s", data_dir, segs[k].path);
        c->n_paths = k + 1;
        rc = scan_segment(c->paths[k], &file);
        if (rc != VG_OK) {
            vg_warn("clip: cannot read %s: %s", segs[k].path, vg_strerror(rc));
            rc = fail(err, err_size, rc == VG_ECORRUPT ? VG_ECORRUPT : VG_EIO,
                      "a recording of the range cannot be read (%s)", vg_strerror(rc));
            goto cleanup;
        }
        if (w0 == INT64_MIN) {
            /* The primary track: the first video track, else the first
             * (later files must have the same tracks: match_tracks). */
            primary = 0;
            for (size_t i = f->n_tracks; i-- > 0;) {
                if (f->tracks[i].handler == FOURCC('v', 'i', 'd', 'e'))
                    primary = i;
            }
            /* W0: the wall time of the keyframe at or before from (the
             * first one when from is earlier than any). */
            for (size_t i = 0; i < f->n_samples; i++) {
                const pb_mp4_sample_t *s = &f->samples[i];
                if (s->track != primary || !s->sync)
                    continue;
                int64_t w = wall_us(&segs[k], s->dts, f->tracks[primary].timescale);
                if (w >= to_us || (w > from_us && w0 != INT64_MIN))
                    break;
                w0 = w;
            }
            if (w0 == INT64_MIN) {
                pb_mp4_file_free(&file);
                continue; /* no keyframe here before to */
            }
        }
        uint8_t desc_of[PB_MP4_MAX_TRACKS];
        if ((rc = match_tracks(c, f, &segs[k], desc_of, err, err_size)) != VG_OK)
            goto cleanup;
        for (size_t i = 0; i < f->n_samples; i++) {
            const pb_mp4_sample_t *s = &f->samples[i];
            int64_t w = wall_us(&segs[k], s->dts, f->tracks[s->track].timescale);
            if (w < w0 || w >= to_us)
                continue;
            if (s->track == primary && c->tracks[primary].n == 0 && !s->sync)
                continue;
            rc = add_sample(c, k, &segs[k], (uint32_t)k, s, desc_of[s->track], w0, err,
                            err_size);
            if (rc != VG_OK)
                goto cleanup;
            if (s->track == primary) {
                int64_t e = wall_us(&segs[k], s->dts + s->duration, f->tracks[primary].timescale);
                end_us = e > end_us ? e : end_us;
            }
        }
        pb_mp4_file_free(&file);
    }
    if (w0 == INT64_MIN) {
        rc = fail(err, err_size, VG_ENOTFOUND, "nothing was recorded in this range");
        goto cleanup;
    }
    c->w0_us = w0;
    c->from_us = from_us > w0 ? from_us : w0;
    c->to_us = end_us < to_us ? end_us : to_us;
    if (c->tracks[primary].n == 0 || c->to_us <= c->from_us) {
        rc = fail(err, err_size, VG_ENOTFOUND, "nothing was recorded in this range");
        goto cleanup;
    }
    if (fmt == PB_CLIP_MP4) {
        for (size_t i = 0; i < c->n_tracks; i++) {
            uint32_t cd = c->tracks[i].codec;
            if (cd == FOURCC('a', 'l', 'a', 'w') || cd == FOURCC('u', 'l', 'a', 'w')) {
                rc = fail(err, err_size, VG_EINVAL,
                          "MP4 cannot hold this source's G.711 audio: ask for clip.mov "
                          "(or clip.mkv)");
                goto cleanup;
            }
        }
    }
    /* Layout: measured once with 32-bit offsets, then fixed. */
    uint64_t payload = 0;
    for (size_t i = 0; i < c->n_chunks; i++)
        payload += c->chunks[i].len;
    int large = payload + 8 > UINT32_MAX;
    bw_t b = {0};
    write_head(&b, c, w0, 0, 0, large, payload);
    int co64 = b.len + payload > UINT32_MAX;
    if (co64)
        write_head(&b, c, w0, 0, 1, large, payload);
    write_head(&b, c, w0, b.len, co64, large, payload);
    /* The clip is a function of the segments (their hashes) and the
     * request: its strong ETag, so If-Range resumes only the same bytes. */
    struct sha256_ctx h;
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_init(&h);
    int64_t key[3] = {from_us, to_us, fmt};
    sha256_update(&h, sizeof(key), (const uint8_t *)key);
    for (size_t k = 0; k < n; k++) {
        sha256_update(&h, sizeof(segs[k].id), (const uint8_t *)&segs[k].id);
        sha256_update(&h, strlen(segs[k].sha256), (const uint8_t *)segs[k].sha256);
    }
    sha256_digest(&h, sizeof(digest), digest);
    c->etag[0] = '"';
    for (int i = 0; i < 16; i++)
        snprintf(c->etag + 1 + 2 * i, 3, "%02x", digest[i]);
    snprintf(c->etag + 33, sizeof(c->etag) - 33, "\"");
    c->head = b.p;
    c->head_len = b.len;
    c->size = b.len + payload;
    *out = c;
    c = NULL;

cleanup:
    pb_mp4_file_free(&file);
    pb_clip_free(c);
    return rc;
}

const char *pb_clip_etag(const pb_clip_t *c)
{
    return c->etag;
}

uint64_t pb_clip_size(const pb_clip_t *c)
{
    return c->size;
}

void pb_clip_span(const pb_clip_t *c, int64_t *from_us, int64_t *to_us)
{
    *from_us = c->from_us;
    *to_us = c->to_us;
}

long pb_clip_read(pb_clip_t *c, uint64_t pos, char *buf, size_t max)
{
    if (c->inner)
        return pb_mkv_read(&c->mkv, c->inner, c->to_us - c->w0_us, pos, buf, max);
    size_t done = 0;
    while (done < max && pos < c->size) {
        if (pos < c->head_len) {
            size_t n = c->head_len - (size_t)pos;
            n = n < max - done ? n : max - done;
            memcpy(buf + done, c->head + pos, n);
            done += n;
            pos += n;
            continue;
        }
        /* the chunk holding pos: the last one starting at or before it */
        size_t lo = 0, hi = c->n_chunks;
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (c->chunks[mid].out_off <= pos)
                lo = mid;
            else
                hi = mid;
        }
        const chunk_t *k = &c->chunks[lo];
        uint64_t in = pos - k->out_off;
        if (in >= k->len)
            return -1;
        size_t n = (size_t)(k->len - in < max - done ? k->len - in : max - done);
        if (c->fd < 0 || c->fd_seg != k->seg) {
            if (c->fd >= 0)
                close(c->fd);
            c->fd = open(c->paths[k->seg], O_RDONLY | O_CLOEXEC);
            c->fd_seg = k->seg;
            if (c->fd < 0) {
                vg_warn("clip: %s is gone since the clip was planned (%s): connection cut",
                        c->paths[k->seg], strerror(errno));
                return -1;
            }
        }
        if (fd_read(&c->fd, k->src_off + in, buf + done, n) != 0) {
            vg_warn("clip: %s is shorter than planned or unreadable: connection cut",
                    c->paths[k->seg]);
            return -1;
        }
        done += n;
        pos += n;
    }
    return done ? (long)done : -1;
}

void pb_clip_free(pb_clip_t *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    pb_mkv_free(c->mkv);
    pb_clip_free(c->inner);
    for (size_t i = 0; i < c->n_paths; i++)
        free(c->paths[i]);
    free(c->paths);
    for (size_t i = 0; i < c->n_tracks; i++) {
        for (size_t d = 0; d < c->tracks[i].n_desc; d++)
            free(c->tracks[i].desc[d]);
        free(c->tracks[i].s);
        free(c->tracks[i].chunks);
    }
    free(c->chunks);
    free(c->head);
    free(c);
}
