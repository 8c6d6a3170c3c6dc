/* Check suite for playback/'s clips (mp4.c, clip.c): the MP4 box reader against well-formed and
 * hostile bytes (truncated boxes, sizes 0/1/huge, boxes larger than their
 * parent, nested boxes, sample counts that overflow, data past the end,
 * random damage), and the clip planner over files written here (exact size,
 * reads equal to the layout, a file shortened after planning, a codec
 * change, G.711 refused in MP4). */
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"
#include "playback/playback.h"

#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- a small box writer for test files ---- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
    size_t open[16];
    int depth;
} buf_t;

static void put(buf_t *b, const void *p, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = vg_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
}

static void be32(buf_t *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    put(b, x, 4);
}

static void be64(buf_t *b, uint64_t v)
{
    be32(b, (uint32_t)(v >> 32));
    be32(b, (uint32_t)v);
}

static void zero(buf_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put(b, "", 1);
}

static void open_box(buf_t *b, const char *type)
{
    b->open[b->depth++] = b->len;
    be32(b, 0);
    put(b, type, 4);
}

static void close_box(buf_t *b)
{
    size_t at = b->open[--b->depth];
    uint32_t n = (uint32_t)(b->len - at);
    uint8_t x[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    memcpy(b->p + at, x, 4);
}

static void trak(buf_t *b, uint32_t id, const char *handler, uint32_t timescale,
                 const char *codec)
{
    open_box(b, "trak");
    open_box(b, "tkhd");
    be32(b, 3);
    zero(b, 8);
    be32(b, id);
    zero(b, 4 + 4 + 8 + 2 + 2);
    be32(b, 0x01000000); /* volume + reserved */
    zero(b, 36);
    be32(b, 320 << 16);
    be32(b, 240 << 16);
    close_box(b);
    open_box(b, "mdia");
    open_box(b, "mdhd");
    be32(b, 0);
    zero(b, 8);
    be32(b, timescale);
    be32(b, 0);
    be32(b, 0x55c40000);
    close_box(b);
    open_box(b, "hdlr");
    be32(b, 0);
    be32(b, 0);
    put(b, handler, 4);
    zero(b, 12);
    put(b, "x", 2);
    close_box(b);
    open_box(b, "minf");
    open_box(b, "stbl");
    open_box(b, "stsd");
    be32(b, 0);
    be32(b, 1);
    open_box(b, codec);
    zero(b, 16);
    close_box(b);
    close_box(b);
    close_box(b);
    close_box(b);
    close_box(b);
    close_box(b);
}

/* A fragmented file: track 1 video (90 kHz), track 2 audio (8 kHz, codec
 * `audio`); n_frag fragments of 3 video samples (the first a keyframe, cts
 * offsets) and 2 audio samples (tfhd defaults), each traf's data one
 * chunk in the mdat after its moof. */
static buf_t make_file(int n_frag, const char *video, const char *audio)
{
    buf_t b = {0};
    open_box(&b, "ftyp");
    put(&b, "isom", 4);
    be32(&b, 0x200);
    put(&b, "isom", 4);
    close_box(&b);
    open_box(&b, "moov");
    open_box(&b, "mvhd");
    zero(&b, 100);
    close_box(&b);
    trak(&b, 1, "vide", 90000, video);
    trak(&b, 2, "soun", 8000, audio);
    open_box(&b, "mvex");
    for (uint32_t id = 1; id <= 2; id++) {
        open_box(&b, "trex");
        be32(&b, 0);
        be32(&b, id);
        be32(&b, 1);
        be32(&b, 0);
        be32(&b, 0);
        be32(&b, 0);
        close_box(&b);
    }
    close_box(&b);
    close_box(&b);
    for (int f = 0; f < n_frag; f++) {
        size_t moof = b.len;
        open_box(&b, "moof");
        open_box(&b, "mfhd");
        be32(&b, 0);
        be32(&b, (uint32_t)f + 1);
        close_box(&b);
        open_box(&b, "traf");
        open_box(&b, "tfhd");
        be32(&b, 0x20000);
        be32(&b, 1);
        close_box(&b);
        open_box(&b, "tfdt");
        be32(&b, 0x01000000);
        be64(&b, (uint64_t)f * 3 * 3600);
        close_box(&b);
        open_box(&b, "trun");
        be32(&b, 0x1 | 0x100 | 0x200 | 0x400 | 0x800);
        be32(&b, 3);
        size_t vdo = b.len;
        be32(&b, 0); /* data offset, patched */
        for (int i = 0; i < 3; i++) {
            be32(&b, 3600);
            be32(&b, 100 + (uint32_t)i);
            be32(&b, i == 0 ? 0x02000000 : 0x01010000);
            be32(&b, 7200);
        }
        close_box(&b);
        close_box(&b);
        open_box(&b, "traf");
        open_box(&b, "tfhd");
        be32(&b, 0x20000 | 0x8 | 0x10);
        be32(&b, 2);
        be32(&b, 160);
        be32(&b, 160);
        close_box(&b);
        open_box(&b, "tfdt");
        be32(&b, 0);
        be32(&b, (uint32_t)f * 320);
        close_box(&b);
        open_box(&b, "trun");
        be32(&b, 0x1);
        be32(&b, 2);
        size_t ado = b.len;
        be32(&b, 0);
        close_box(&b);
        close_box(&b);
        close_box(&b);
        open_box(&b, "mdat");
        uint32_t v = (uint32_t)(b.len - moof), a = v + 100 + 101 + 102;
        uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
        memcpy(b.p + vdo, x, 4);
        uint8_t y[4] = {(uint8_t)(a >> 24), (uint8_t)(a >> 16), (uint8_t)(a >> 8), (uint8_t)a};
        memcpy(b.p + ado, y, 4);
        for (int i = 0; i < 100 + 101 + 102 + 320; i++) {
            uint8_t c = (uint8_t)(f * 31 + i);
            put(&b, &c, 1);
        }
        close_box(&b);
    }
    return b;
}

/* ---- the box reader ---- */

START_TEST(test_scan_valid)
{
    buf_t b = make_file(2, "avc1", "mp4a");
    pb_mp4_file_t f;
    ck_assert_int_eq(pb_mp4_scan_mem(b.p, b.len, &f), VG_OK);
    ck_assert_uint_eq(f.n_tracks, 2);
    ck_assert_uint_eq(f.tracks[0].timescale, 90000);
    ck_assert_uint_eq(f.tracks[1].timescale, 8000);
    ck_assert_uint_eq(f.tracks[0].width, 320u << 16);
    ck_assert_uint_eq(f.n_samples, 10);
    const pb_mp4_sample_t *s = f.samples;
    ck_assert(s[0].sync && !s[1].sync && !s[2].sync);
    ck_assert_int_eq(s[0].cts, 7200);
    ck_assert_uint_eq(s[1].dts, 3600);
    ck_assert_uint_eq(s[3].track, 1);
    ck_assert_uint_eq(s[3].size, 160);
    ck_assert(s[3].sync); /* audio is always a sync sample */
    ck_assert_uint_eq(s[3].offset, s[2].offset + s[2].size);
    ck_assert_uint_eq(s[5].dts, 3 * 3600);  /* tfdt of the second fragment */
    ck_assert_uint_eq(s[8].dts, 320);
    /* the bytes the table points at are the ones written */
    ck_assert_uint_eq(b.p[s[5].offset], (uint8_t)31);
    pb_mp4_file_free(&f);
    free(b.p);
}
END_TEST

START_TEST(test_scan_every_truncation)
{
    buf_t b = make_file(3, "avc1", "mp4a");
    size_t prev = 0;
    for (size_t len = 0; len <= b.len; len++) {
        pb_mp4_file_t f;
        int rc = pb_mp4_scan_mem(b.p, len, &f);
        ck_assert(rc == VG_OK || rc == VG_ECORRUPT);
        if (rc == VG_OK) {
            /* a cut file keeps whole fragments only, more as it grows */
            ck_assert(f.n_samples % 5 == 0);
            ck_assert_uint_ge(f.n_samples, prev);
            prev = f.n_samples;
            for (size_t i = 0; i < f.n_samples; i++)
                ck_assert_uint_le(f.samples[i].offset + f.samples[i].size, len);
            pb_mp4_file_free(&f);
        }
    }
    ck_assert_uint_eq(prev, 15);
    free(b.p);
}
END_TEST

static uint8_t *find(buf_t *b, const char *type)
{
    for (size_t i = 4; i + 4 <= b->len; i++) {
        if (memcmp(b->p + i, type, 4) == 0)
            return b->p + i - 4;
    }
    ck_abort_msg("no %s", type);
    return NULL;
}

static void set32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static int scan_rc(buf_t *b, size_t *n)
{
    pb_mp4_file_t f;
    int rc = pb_mp4_scan_mem(b->p, b->len, &f);
    *n = rc == VG_OK ? f.n_samples : 0;
    if (rc == VG_OK)
        pb_mp4_file_free(&f);
    return rc;
}

START_TEST(test_scan_box_sizes)
{
    size_t n;
    /* a box smaller than its header */
    buf_t b = make_file(1, "avc1", "mp4a");
    set32(find(&b, "moov"), 4);
    ck_assert_int_eq(scan_rc(&b, &n), VG_ECORRUPT);
    free(b.p);
    /* a child larger than its parent */
    b = make_file(1, "avc1", "mp4a");
    set32(find(&b, "tkhd"), 0x7fffffff);
    ck_assert_int_eq(scan_rc(&b, &n), VG_ECORRUPT);
    free(b.p);
    /* size 1 with a 64-bit size past the end: the file ends there */
    b = make_file(1, "avc1", "mp4a");
    uint8_t *moof = find(&b, "moof");
    set32(moof, 1);
    ck_assert_int_eq(scan_rc(&b, &n), VG_OK);
    ck_assert_uint_eq(n, 0);
    free(b.p);
    /* size 1 with a 64-bit size that wraps an offset */
    b = make_file(1, "avc1", "mp4a");
    moof = find(&b, "moof");
    set32(moof, 1);
    set32(moof + 8, 0xffffffff);
    set32(moof + 12, 0xfffffff0);
    ck_assert_int_eq(scan_rc(&b, &n), VG_OK);
    ck_assert_uint_eq(n, 0);
    free(b.p);
    /* size 0: to the end of the file (here: the moof swallows the mdat) */
    b = make_file(1, "avc1", "mp4a");
    set32(find(&b, "moof"), 0);
    ck_assert(scan_rc(&b, &n) == VG_OK || scan_rc(&b, &n) == VG_ECORRUPT);
    free(b.p);
    /* a moof before any moov */
    b = make_file(1, "avc1", "mp4a");
    memcpy(find(&b, "moov") + 4, "moof", 4);
    ck_assert_int_eq(scan_rc(&b, &n), VG_ECORRUPT);
    free(b.p);
    /* no moov at all */
    b = make_file(0, "avc1", "mp4a");
    memcpy(find(&b, "moov") + 4, "free", 4);
    ck_assert_int_eq(scan_rc(&b, &n), VG_ECORRUPT);
    free(b.p);
}
END_TEST

START_TEST(test_scan_sample_counts)
{
    size_t n;
    /* a count whose entries cannot fit the trun */
    buf_t b = make_file(1, "avc1", "mp4a");
    set32(find(&b, "trun") + 12, 0xffffffff);
    ck_assert_int_eq(scan_rc(&b, &n), VG_ECORRUPT);
    free(b.p);
    /* a count that would overflow count * entry size in 32 bits */
    b = make_file(1, "avc1", "mp4a");
    set32(find(&b, "trun") + 12, 0x40000001);
    ck_assert_int_eq(scan_rc(&b, &n), VG_ECORRUPT);
    free(b.p);
    /* the audio trun has no per-sample fields: a huge count is bounded */
    b = make_file(1, "avc1", "mp4a");
    uint8_t *v = find(&b, "trun");
    buf_t rest = {v + 8, b.len - (size_t)(v + 8 - b.p), 0, {0}, 0};
    uint8_t *a = find(&rest, "trun");
    set32(a + 12, 0xffffffff);
    ck_assert_int_eq(scan_rc(&b, &n), VG_ECORRUPT);
    /* within the bound, its data runs past the end: the fragment is dropped */
    set32(a + 12, 1000);
    ck_assert_int_eq(scan_rc(&b, &n), VG_OK);
    ck_assert_uint_eq(n, 0);
    free(b.p);
    /* a data offset before the start of the file */
    b = make_file(1, "avc1", "mp4a");
    set32(find(&b, "trun") + 16, 0x80000000);
    ck_assert_int_eq(scan_rc(&b, &n), VG_ECORRUPT);
    free(b.p);
    /* a tfhd naming a track the moov does not have */
    b = make_file(1, "avc1", "mp4a");
    set32(find(&b, "tfhd") + 12, 9);
    ck_assert_int_eq(scan_rc(&b, &n), VG_ECORRUPT);
    free(b.p);
}
END_TEST

START_TEST(test_scan_nesting)
{
    /* a moov inside a trak inside the moov: only the fixed path is walked,
     * the inner one is never entered */
    buf_t b = {0};
    open_box(&b, "moov");
    open_box(&b, "trak");
    for (int i = 0; i < 12; i++)
        open_box(&b, i % 2 ? "moov" : "trak");
    for (int i = 0; i < 12; i++)
        close_box(&b);
    close_box(&b);
    close_box(&b);
    size_t n;
    ck_assert_int_eq(scan_rc(&b, &n), VG_ECORRUPT);
    free(b.p);
    /* many tracks: bounded */
    b = (buf_t){0};
    open_box(&b, "moov");
    for (uint32_t i = 1; i <= PB_MP4_MAX_TRACKS + 2; i++)
        trak(&b, i, "vide", 90000, "avc1");
    close_box(&b);
    ck_assert_int_eq(scan_rc(&b, &n), VG_ECORRUPT);
    free(b.p);
    /* a duplicate track id */
    b = (buf_t){0};
    open_box(&b, "moov");
    trak(&b, 1, "vide", 90000, "avc1");
    trak(&b, 1, "soun", 8000, "mp4a");
    close_box(&b);
    ck_assert_int_eq(scan_rc(&b, &n), VG_ECORRUPT);
    free(b.p);
    /* a zero timescale */
    b = (buf_t){0};
    open_box(&b, "moov");
    trak(&b, 1, "vide", 0, "avc1");
    close_box(&b);
    ck_assert_int_eq(scan_rc(&b, &n), VG_ECORRUPT);
    free(b.p);
}
END_TEST

START_TEST(test_scan_random_damage)
{
    buf_t b = make_file(3, "avc1", "mp4a");
    uint8_t *copy = vg_malloc(b.len);
    unsigned seed = 12345;
    for (int round = 0; round < 3000; round++) {
        memcpy(copy, b.p, b.len);
        int flips = 1 + round % 8;
        for (int i = 0; i < flips; i++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % b.len;
            seed = seed * 1103515245u + 12345u;
            copy[at] = (uint8_t)(seed >> 16);
        }
        pb_mp4_file_t f;
        int rc = pb_mp4_scan_mem(copy, b.len, &f);
        ck_assert(rc == VG_OK || rc == VG_ECORRUPT);
        if (rc == VG_OK) {
            for (size_t i = 0; i < f.n_samples; i++) {
                ck_assert_uint_le(f.samples[i].offset, b.len);
                ck_assert_uint_le(f.samples[i].size, b.len - f.samples[i].offset);
                ck_assert_uint_lt(f.samples[i].track, f.n_tracks);
            }
            pb_mp4_file_free(&f);
        }
    }
    free(copy);
    free(b.p);
}
END_TEST

/* ---- the clip planner ---- */

static char dir[256];

static void clip_setup(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/vigil-test-clip-XXXXXX", tmp && *tmp ? tmp : P_tmpdir);
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void clip_teardown(void)
{
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void write_seg(idx_segment_t *seg, const char *name, int64_t start_us, int n_frag,
                      const char *video, const char *audio)
{
    buf_t b = make_file(n_frag, video, audio);
    char *path = vg_asprintf("%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(vg_write_all(fd, b.p, b.len), VG_OK);
    close(fd);
    memset(seg, 0, sizeof(*seg));
    snprintf(seg->path, sizeof(seg->path), "%s", name);
    snprintf(seg->sha256, sizeof(seg->sha256), "%064d", 0);
    seg->start_us = start_us;
    seg->end_us = start_us + (int64_t)n_frag * 120000;
    seg->id = start_us;
    free(path);
    free(b.p);
}

static uint8_t *read_all(pb_clip_t *c, size_t chunk)
{
    uint64_t size = pb_clip_size(c);
    uint8_t *out = vg_malloc((size_t)size);
    for (uint64_t pos = 0; pos < size;) {
        long n = pb_clip_read(c, pos, (char *)out + pos,
                              (size_t)(size - pos < chunk ? size - pos : chunk));
        ck_assert_int_gt(n, 0);
        pos += (uint64_t)n;
    }
    return out;
}

START_TEST(test_clip_layout)
{
    idx_segment_t segs[2];
    char err[256];
    write_seg(&segs[0], "a.mp4", 1000000000, 4, "avc1", "mp4a");
    /* the second starts 1 s after the first ends: a gap */
    write_seg(&segs[1], "b.mp4", 1000000000 + 480000 + 1000000, 4, "avc1", "mp4a");
    pb_clip_t *c = NULL;
    ck_assert_int_eq(pb_clip_plan(dir, segs, 2, 1000000000 + 130000, 1000000000 + 1700000,
                                  PB_CLIP_MP4, &c, err, sizeof(err)), VG_OK);
    int64_t from, to;
    pb_clip_span(c, &from, &to);
    ck_assert_int_eq(from, 1000000000 + 130000);
    ck_assert_int_eq(to, 1000000000 + 1700000);
    uint64_t size = pb_clip_size(c);
    uint8_t *whole = read_all(c, 1 << 20);
    /* ftyp, moov, mdat, and nothing else: the size is the layout's */
    uint64_t off = 0;
    const char *want[] = {"ftyp", "moov", "mdat"};
    for (int i = 0; i < 3; i++) {
        ck_assert(off + 8 <= size);
        ck_assert(memcmp(whole + off + 4, want[i], 4) == 0);
        off += ((uint64_t)whole[off] << 24) | ((uint64_t)whole[off + 1] << 16) |
               ((uint64_t)whole[off + 2] << 8) | whole[off + 3];
    }
    ck_assert_uint_eq(off, size);
    /* reads of any size at any position give the same bytes */
    uint8_t *small = read_all(c, 7);
    ck_assert(memcmp(small, whole, (size_t)size) == 0);
    char buf[333];
    for (uint64_t pos = 0; pos < size; pos += 97) {
        long n = pb_clip_read(c, pos, buf, sizeof(buf));
        ck_assert_int_gt(n, 0);
        ck_assert(memcmp(buf, whole + pos, (size_t)n) == 0);
    }
    /* the file is shortened after planning: the read fails, no crash */
    char *path = vg_asprintf("%s/b.mp4", dir);
    ck_assert_int_eq(truncate(path, 100), 0);
    ck_assert_int_eq(pb_clip_read(c, size - 10, buf, 10), -1);
    /* and gone */
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(pb_clip_read(c, size - 10, buf, 10), -1);
    free(path);
    free(small);
    free(whole);
    pb_clip_free(c);
}
END_TEST

START_TEST(test_clip_refusals)
{
    idx_segment_t segs[2];
    char err[256];
    pb_clip_t *c = NULL;
    write_seg(&segs[0], "a.mp4", 1000000000, 2, "avc1", "mp4a");
    write_seg(&segs[1], "b.mp4", 1000000000 + 240000, 2, "hvc1", "mp4a");
    ck_assert_int_eq(pb_clip_plan(dir, segs, 2, 1000000000, 1000000000 + 480000, PB_CLIP_MP4,
                                  &c, err, sizeof(err)), VG_EEXIST);
    ck_assert_ptr_null(c);
    ck_assert_ptr_nonnull(strstr(err, "codec changes at"));
    /* each side alone */
    ck_assert_int_eq(pb_clip_plan(dir, segs, 1, 1000000000, 1000000000 + 240000, PB_CLIP_MP4,
                                  &c, err, sizeof(err)), VG_OK);
    pb_clip_free(c);
    /* G.711 in MP4: refused with a pointer to .mov; .mov takes it */
    write_seg(&segs[0], "g.mov", 1000000000, 2, "avc1", "alaw");
    ck_assert_int_eq(pb_clip_plan(dir, segs, 1, 1000000000, 1000000000 + 240000, PB_CLIP_MP4,
                                  &c, err, sizeof(err)), VG_EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "clip.mov"));
    ck_assert_int_eq(pb_clip_plan(dir, segs, 1, 1000000000, 1000000000 + 240000, PB_CLIP_MOV,
                                  &c, err, sizeof(err)), VG_OK);
    pb_clip_free(c);
    /* nothing in range, an inverted range, a damaged file */
    ck_assert_int_eq(pb_clip_plan(dir, segs, 1, 2000000000, 2000000001, PB_CLIP_MP4, &c, err,
                                  sizeof(err)), VG_ENOTFOUND);
    ck_assert_int_eq(pb_clip_plan(dir, segs, 1, 1000000100, 1000000000, PB_CLIP_MOV, &c, err,
                                  sizeof(err)), VG_EINVAL);
    char *path = vg_asprintf("%s/g.mov", dir);
    ck_assert_int_eq(truncate(path, 20), 0);
    ck_assert_int_eq(pb_clip_plan(dir, segs, 1, 1000000000, 1000000000 + 240000, PB_CLIP_MOV,
                                  &c, err, sizeof(err)), VG_ECORRUPT);
    ck_assert_int_eq(unlink(path), 0);
    ck_assert_int_eq(pb_clip_plan(dir, segs, 1, 1000000000, 1000000000 + 240000, PB_CLIP_MOV,
                                  &c, err, sizeof(err)), VG_EIO);
    free(path);
}
END_TEST

static Suite *clip_suite(void)
{
    Suite *s = suite_create("clip");
    TCase *tc = tcase_create("mp4");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_scan_valid);
    tcase_add_test(tc, test_scan_every_truncation);
    tcase_add_test(tc, test_scan_box_sizes);
    tcase_add_test(tc, test_scan_sample_counts);
    tcase_add_test(tc, test_scan_nesting);
    tcase_add_test(tc, test_scan_random_damage);
    suite_add_tcase(s, tc);

    tc = tcase_create("clip");
    tcase_add_checked_fixture(tc, clip_setup, clip_teardown);
    tcase_add_test(tc, test_clip_layout);
    tcase_add_test(tc, test_clip_refusals);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    vg_log_set_level(VG_LOG_ERR);
    SRunner *sr = srunner_create(clip_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
