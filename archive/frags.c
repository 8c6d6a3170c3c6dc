/* The fragment table of a stored file: where each fragment (moof + mdat)
 * lies, when it starts and whether it starts on a keyframe. The writer
 * records it while writing and the index keeps it as one packed blob per
 * segment, so playback names HLS byte ranges without opening the file. For a
 * file with no recorded table (recovered after a crash, or indexed before
 * schema v13) arc_frags_scan reads it from the file's box headers.
 *
 * Blob format (version 1), every number an unsigned LEB128 varint, signed
 * ones zigzag-coded first:
 *   u8 version = 1
 *   count
 *   per fragment:
 *     offset - end of the previous fragment (the first: - 0)
 *     size << 1 | keyframe
 *     zigzag(start_us - end of the previous fragment's media (the first: - 0))
 *     duration_us
 * Offsets and times are relative to the file and to the segment's media
 * start. Fragments of one file abut, so a fragment costs about 7 bytes. */
#include "archive/archive.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/errors.h"
#include "core/util.h"

#define BLOB_VERSION 1
#define MAX_BOX_READ (4 * 1024 * 1024) /* a moov or moof larger than this: refused */

/* ---- the blob ---- */

static void put_varint(uint8_t **p, uint64_t v)
{
    while (v >= 0x80) {
        *(*p)++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *(*p)++ = (uint8_t)v;
}

static uint64_t zigzag(int64_t v)
{
    return v < 0 ? ((uint64_t)(-(v + 1)) << 1) | 1 : (uint64_t)v << 1;
}

static int64_t unzigzag(uint64_t v)
{
    return v & 1 ? -(int64_t)(v >> 1) - 1 : (int64_t)(v >> 1);
}

int arc_frags_encode(const arc_frag_t *f, size_t n, uint8_t **out, size_t *len)
{
    if (!out || !len || (n && !f) || n > ARC_FRAGS_MAX)
        return VG_EINVAL;
    *out = NULL;
    *len = 0;
    /* At most 10 bytes a varint, 4 a fragment, 11 for the head. */
    uint8_t *buf = vg_malloc(11 + n * 40);
    uint8_t *p = buf;
    *p++ = BLOB_VERSION;
    put_varint(&p, n);
    int64_t end = 0, media_end = 0;
    for (size_t i = 0; i < n; i++) {
        if (f[i].offset < end || f[i].size <= 0 || f[i].dur_us < 0 ||
            f[i].size > INT64_MAX / 4 || f[i].offset > INT64_MAX / 4 ||
            f[i].dur_us > INT64_MAX / 4 || f[i].start_us > INT64_MAX / 4 ||
            f[i].start_us < -(INT64_MAX / 4)) {
            free(buf);
            return VG_EINVAL;
        }
        put_varint(&p, (uint64_t)(f[i].offset - end));
        put_varint(&p, (uint64_t)f[i].size << 1 | (f[i].key ? 1 : 0));
        put_varint(&p, zigzag(f[i].start_us - media_end));
        put_varint(&p, (uint64_t)f[i].dur_us);
        end = f[i].offset + f[i].size;
        media_end = f[i].start_us + f[i].dur_us;
    }
    *out = buf;
    *len = (size_t)(p - buf);
    return VG_OK;
}

static int get_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    uint64_t x = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*p >= end)
            return -1;
        uint8_t b = *(*p)++;
        if (shift == 63 && b > 1)
            return -1; /* more than 64 bits */
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

int arc_frags_decode(const uint8_t *blob, size_t len, arc_frag_t **out, size_t *n)
{
    if (!out || !n)
        return VG_EINVAL;
    *out = NULL;
    *n = 0;
    if (!blob || len < 2 || blob[0] != BLOB_VERSION)
        return VG_ECORRUPT;
    const uint8_t *p = blob + 1, *end = blob + len;
    uint64_t count;
    /* A fragment takes at least 4 bytes: a count beyond that is a lie. */
    if (get_varint(&p, end, &count) != 0 || count > ARC_FRAGS_MAX ||
        count > (uint64_t)(end - p) / 4)
        return VG_ECORRUPT;
    arc_frag_t *f = count ? vg_calloc(count, sizeof(*f)) : NULL;
    int64_t off_end = 0, media_end = 0;
    for (uint64_t i = 0; i < count; i++) {
        uint64_t gap, sk, start, dur;
        if (get_varint(&p, end, &gap) != 0 || get_varint(&p, end, &sk) != 0 ||
            get_varint(&p, end, &start) != 0 || get_varint(&p, end, &dur) != 0)
            goto corrupt;
        uint64_t size = sk >> 1;
        int64_t ds = unzigzag(start);
        /* Everything stays well inside int64: files and times of sane size. */
        if (gap > (uint64_t)INT64_MAX / 4 || size == 0 || size > (uint64_t)INT64_MAX / 4 ||
            dur > (uint64_t)INT64_MAX / 4 || ds > INT64_MAX / 4 || ds < -(INT64_MAX / 4) ||
            off_end > INT64_MAX / 4 || media_end > INT64_MAX / 4 || media_end < -(INT64_MAX / 4))
            goto corrupt;
        f[i].offset = off_end + (int64_t)gap;
        f[i].size = (int64_t)size;
        f[i].key = (int)(sk & 1);
        f[i].start_us = media_end + ds;
        f[i].dur_us = (int64_t)dur;
        off_end = f[i].offset + f[i].size;
        media_end = f[i].start_us + f[i].dur_us;
    }
    if (p != end)
        goto corrupt;
    *out = f;
    *n = (size_t)count;
    return VG_OK;

corrupt:
    free(f);
    return VG_ECORRUPT;
}

/* ---- reading box headers ---- */

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const uint8_t *p)
{
    return (uint64_t)be32(p) << 32 | be32(p + 4);
}

/* A box inside a buffer: [*body, *body + *body_len) after its header. */
typedef struct {
    const uint8_t *p, *end;
} cursor_t;

/* The next child box of c: its type and body. 1 when one was read, 0 at the
 * end, -1 when the sizes do not add up. */
static int next_box(cursor_t *c, char type[5], cursor_t *body)
{
    size_t left = (size_t)(c->end - c->p);
    if (left == 0)
        return 0;
    if (left < 8)
        return -1;
    uint64_t size = be32(c->p);
    size_t head = 8;
    memcpy(type, c->p + 4, 4);
    type[4] = '\0';
    if (size == 1) {
        if (left < 16)
            return -1;
        size = be64(c->p + 8);
        head = 16;
    } else if (size == 0) {
        size = left;
    }
    if (size < head || size > left)
        return -1;
    body->p = c->p + head;
    body->end = c->p + size;
    c->p += size;
    return 1;
}

/* The first child of c of this type: 1 found, 0 not, -1 broken. */
static int find_box(cursor_t c, const char *want, cursor_t *body)
{
    char type[5];
    int rc;
    while ((rc = next_box(&c, type, body)) == 1) {
        if (memcmp(type, want, 4) == 0)
            return 1;
    }
    return rc;
}

typedef struct {
    uint32_t track_id;
    uint32_t timescale;
    int video;
    /* trex defaults */
    uint32_t def_duration, def_flags;
} track_t;

#define MAX_TRACKS 8

typedef struct {
    track_t tracks[MAX_TRACKS];
    int n_tracks;
    int primary; /* index into tracks */
} moov_info_t;

static int parse_trak(cursor_t trak, track_t *t)
{
    cursor_t tkhd, mdia, mdhd, hdlr;
    if (find_box(trak, "tkhd", &tkhd) != 1 || find_box(trak, "mdia", &mdia) != 1 ||
        find_box(mdia, "mdhd", &mdhd) != 1 || find_box(mdia, "hdlr", &hdlr) != 1)
        return -1;
    size_t n = (size_t)(tkhd.end - tkhd.p);
    if (n < 4)
        return -1;
    int v = tkhd.p[0];
    size_t id_at = v == 1 ? 4 + 16 : 4 + 8;
    if (n < id_at + 4)
        return -1;
    t->track_id = be32(tkhd.p + id_at);
    n = (size_t)(mdhd.end - mdhd.p);
    size_t ts_at = mdhd.p[0] == 1 ? 4 + 16 : 4 + 8;
    if (n < 4 || n < ts_at + 4)
        return -1;
    t->timescale = be32(mdhd.p + ts_at);
    if (t->timescale == 0)
        return -1;
    if (hdlr.end - hdlr.p < 12)
        return -1;
    t->video = memcmp(hdlr.p + 8, "vide", 4) == 0;
    return 0;
}

static int parse_moov(cursor_t moov, moov_info_t *m)
{
    memset(m, 0, sizeof(*m));
    m->primary = -1;
    cursor_t c = moov, body;
    char type[5];
    int rc;
    while ((rc = next_box(&c, type, &body)) == 1) {
        if (memcmp(type, "trak", 4) == 0 && m->n_tracks < MAX_TRACKS) {
            if (parse_trak(body, &m->tracks[m->n_tracks]) != 0)
                return -1;
            m->n_tracks++;
        }
    }
    if (rc < 0 || m->n_tracks == 0)
        return -1;
    cursor_t mvex, trex;
    if (find_box(moov, "mvex", &mvex) == 1) {
        cursor_t cc = mvex;
        while (next_box(&cc, type, &trex) == 1) {
            if (memcmp(type, "trex", 4) != 0 || trex.end - trex.p < 24)
                continue;
            uint32_t id = be32(trex.p + 4);
            for (int i = 0; i < m->n_tracks; i++) {
                if (m->tracks[i].track_id == id) {
                    m->tracks[i].def_duration = be32(trex.p + 12);
                    m->tracks[i].def_flags = be32(trex.p + 20);
                }
            }
        }
    }
    /* Segments are cut on the video track when there is one. */
    for (int i = 0; i < m->n_tracks && m->primary < 0; i++) {
        if (m->tracks[i].video)
            m->primary = i;
    }
    if (m->primary < 0)
        m->primary = 0;
    return 0;
}

/* The primary track's fragment in a moof: its decode time, total duration
 * (in the track's timescale) and whether its first sample is a sync sample.
 * 0 found, 1 when the moof holds no sample of that track (late audio after
 * the last video of a segment), -1 broken. */
static int parse_moof(cursor_t moof, const track_t *t, uint64_t *tfdt_out, uint64_t *dur_out,
                      int *key)
{
    cursor_t c = moof, traf;
    char type[5];
    int rc;
    while ((rc = next_box(&c, type, &traf)) == 1) {
        if (memcmp(type, "traf", 4) != 0)
            continue;
        cursor_t tfhd, tfdt;
        if (find_box(traf, "tfhd", &tfhd) != 1 || tfhd.end - tfhd.p < 8)
            return -1;
        uint32_t tf_flags = be32(tfhd.p) & 0xffffff;
        if (be32(tfhd.p + 4) != t->track_id)
            continue;
        const uint8_t *q = tfhd.p + 8;
        size_t need = 8 + ((tf_flags & 0x1) ? 8 : 0) + ((tf_flags & 0x2) ? 4 : 0) +
                      ((tf_flags & 0x8) ? 4 : 0) + ((tf_flags & 0x10) ? 4 : 0) +
                      ((tf_flags & 0x20) ? 4 : 0);
        if ((size_t)(tfhd.end - tfhd.p) < need)
            return -1;
        uint32_t def_dur = t->def_duration, def_flags = t->def_flags;
        if (tf_flags & 0x1)
            q += 8;
        if (tf_flags & 0x2)
            q += 4;
        if (tf_flags & 0x8) {
            def_dur = be32(q);
            q += 4;
        }
        if (tf_flags & 0x10)
            q += 4;
        if (tf_flags & 0x20)
            def_flags = be32(q);
        if (find_box(traf, "tfdt", &tfdt) != 1 || tfdt.end - tfdt.p < 8)
            return -1;
        if (tfdt.p[0] == 1) {
            if (tfdt.end - tfdt.p < 12)
                return -1;
            *tfdt_out = be64(tfdt.p + 4);
        } else {
            *tfdt_out = be32(tfdt.p + 4);
        }
        /* Every trun of the traf adds its samples. */
        uint64_t dur = 0;
        int first = 1;
        *key = !t->video || !(def_flags & 0x10000);
        cursor_t tc = traf, trun;
        while ((rc = next_box(&tc, type, &trun)) == 1) {
            if (memcmp(type, "trun", 4) != 0)
                continue;
            size_t len = (size_t)(trun.end - trun.p);
            if (len < 8)
                return -1;
            uint32_t fl = be32(trun.p) & 0xffffff;
            uint32_t count = be32(trun.p + 4);
            const uint8_t *s = trun.p + 8;
            size_t fixed = 8 + ((fl & 0x1) ? 4 : 0) + ((fl & 0x4) ? 4 : 0);
            size_t per = ((fl & 0x100) ? 4 : 0) + ((fl & 0x200) ? 4 : 0) +
                         ((fl & 0x400) ? 4 : 0) + ((fl & 0x800) ? 4 : 0);
            if (len < fixed || (per && count > (len - fixed) / per))
                return -1;
            if (fl & 0x1)
                s += 4;
            uint32_t first_flags = 0;
            int has_first = 0;
            if (fl & 0x4) {
                first_flags = be32(s);
                has_first = 1;
                s += 4;
            }
            for (uint32_t i = 0; i < count; i++) {
                uint32_t d = def_dur, f = def_flags;
                if (fl & 0x100) {
                    d = be32(s);
                    s += 4;
                }
                if (fl & 0x200)
                    s += 4;
                if (fl & 0x400) {
                    f = be32(s);
                    s += 4;
                }
                if (fl & 0x800)
                    s += 4;
                if (first && i == 0 && t->video)
                    *key = !((has_first ? first_flags : f) & 0x10000);
                dur += d;
                if (!per && count > 1) { /* all samples alike: no need to walk them */
                    dur += (uint64_t)d * (count - 1);
                    break;
                }
            }
            if (count)
                first = 0;
        }
        if (rc < 0)
            return -1;
        *dur_out = dur;
        return 0;
    }
    return rc < 0 ? -1 : 1;
}

/* Reads len bytes at off; 0 when all were read. */
static int read_at(int fd, uint8_t *buf, size_t len, int64_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = pread(fd, buf + done, len - done, (off_t)(off + (int64_t)done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        done += (size_t)r;
    }
    return 0;
}

/* Reads a top-level box header at off: type, total size, header size. */
static int top_box(int fd, int64_t off, int64_t file_size, char type[5], int64_t *size,
                   int *head)
{
    uint8_t h[16];
    if (file_size - off < 8 || read_at(fd, h, 8, off) != 0)
        return -1;
    memcpy(type, h + 4, 4);
    type[4] = '\0';
    uint64_t s = be32(h);
    *head = 8;
    if (s == 1) {
        if (file_size - off < 16 || read_at(fd, h + 8, 8, off + 8) != 0)
            return -1;
        s = be64(h + 8);
        *head = 16;
    } else if (s == 0) {
        s = (uint64_t)(file_size - off);
    }
    if (s < (uint64_t)*head || s > (uint64_t)(file_size - off))
        return -1;
    *size = (int64_t)s;
    return 0;
}

static int read_box(int fd, int64_t off, int64_t size, uint8_t **buf)
{
    if (size > MAX_BOX_READ)
        return -1;
    *buf = vg_malloc(size ? (size_t)size : 1);
    if (read_at(fd, *buf, (size_t)size, off) != 0) {
        free(*buf);
        *buf = NULL;
        return -1;
    }
    return 0;
}

int arc_frags_scan(int fd, int64_t file_size, int64_t *init_bytes, arc_frag_t **out, size_t *n)
{
    if (fd < 0 || !out || !n || file_size < 0)
        return VG_EINVAL;
    *out = NULL;
    *n = 0;
    moov_info_t m;
    int have_moov = 0;
    int64_t off = 0, init = 0;
    uint8_t *buf = NULL;
    arc_frag_t *f = NULL;
    size_t nf = 0, cap = 0;
    int ret = VG_ECORRUPT;
    uint64_t first_tfdt = 0;
    const track_t *t = NULL;
    while (off < file_size) {
        char type[5];
        int64_t size;
        int head;
        if (top_box(fd, off, file_size, type, &size, &head) != 0)
            goto cleanup;
        if (memcmp(type, "moov", 4) == 0) {
            if (have_moov || read_box(fd, off + head, size - head, &buf) != 0)
                goto cleanup;
            cursor_t c = {buf, buf + (size - head)};
            int rc = parse_moov(c, &m);
            free(buf);
            buf = NULL;
            if (rc != 0)
                goto cleanup;
            have_moov = 1;
            t = &m.tracks[m.primary];
            init = off + size;
        } else if (memcmp(type, "moof", 4) == 0) {
            if (!have_moov || nf >= ARC_FRAGS_MAX)
                goto cleanup;
            char mtype[5];
            int64_t msize;
            int mhead;
            /* The mdat follows its moof: the pair is one HLS media segment. */
            if (top_box(fd, off + size, file_size, mtype, &msize, &mhead) != 0 ||
                memcmp(mtype, "mdat", 4) != 0)
                goto cleanup;
            if (read_box(fd, off + head, size - head, &buf) != 0)
                goto cleanup;
            cursor_t c = {buf, buf + (size - head)};
            uint64_t tfdt = 0, dur = 0;
            int key = 0;
            int rc = parse_moof(c, t, &tfdt, &dur, &key);
            free(buf);
            buf = NULL;
            if (rc < 0)
                goto cleanup;
            if (rc == 1 && nf > 0 && f[nf - 1].offset + f[nf - 1].size == off) {
                /* Nothing of the primary track: played with the fragment before. */
                f[nf - 1].size += size + msize;
                off += size + msize;
                continue;
            }
            if (rc == 1)
                goto cleanup; /* a file starting without its primary track */
            if (nf == 0)
                first_tfdt = tfdt;
            if (nf == cap) {
                cap = cap ? cap * 2 : 64;
                f = vg_realloc(f, cap * sizeof(*f));
            }
            uint64_t rel = tfdt >= first_tfdt ? tfdt - first_tfdt : 0;
            /* Split to keep the products inside 64 bits for any timescale. */
            f[nf].offset = off;
            f[nf].size = size + msize;
            f[nf].start_us = (int64_t)(rel / t->timescale * 1000000 +
                                       rel % t->timescale * 1000000 / t->timescale);
            f[nf].dur_us = (int64_t)(dur / t->timescale * 1000000 +
                                     dur % t->timescale * 1000000 / t->timescale);
            f[nf].key = key;
            nf++;
            size += msize;
        } else if (!have_moov && memcmp(type, "ftyp", 4) != 0 && memcmp(type, "free", 4) != 0 &&
                   memcmp(type, "wide", 4) != 0) {
            goto cleanup; /* media before the init part: not one of ours */
        }
        off += size;
    }
    if (!have_moov || nf == 0)
        goto cleanup;
    if (init_bytes)
        *init_bytes = init;
    *out = f;
    *n = nf;
    f = NULL;
    ret = VG_OK;

cleanup:
    free(buf);
    free(f);
    return ret;
}

int arc_init_hev1_at(const uint8_t *init, size_t len, size_t *at)
{
    if (!init || !at)
        return VG_ENOTFOUND;
    cursor_t top = {init, init + len}, moov, trak, mdia, minf, stbl, stsd;
    if (find_box(top, "moov", &moov) != 1)
        return VG_ENOTFOUND;
    cursor_t c = moov;
    char type[5];
    while (next_box(&c, type, &trak) == 1) {
        if (memcmp(type, "trak", 4) != 0)
            continue;
        if (find_box(trak, "mdia", &mdia) != 1 || find_box(mdia, "minf", &minf) != 1 ||
            find_box(minf, "stbl", &stbl) != 1 || find_box(stbl, "stsd", &stsd) != 1 ||
            stsd.end - stsd.p < 8)
            continue;
        cursor_t entries = {stsd.p + 8, stsd.end}, entry;
        const uint8_t *entry_at = entries.p;
        if (next_box(&entries, type, &entry) != 1 || memcmp(type, "hev1", 4) != 0)
            continue;
        /* hvc1 promises every parameter set is in hvcC: check there is one
         * of each of VPS, SPS and PPS (NAL types 32, 33, 34). The sample
         * entry's fixed part is 78 bytes before its child boxes. */
        if (entry.end - entry.p < 78)
            return VG_ENOTFOUND;
        cursor_t kids = {entry.p + 78, entry.end}, hvcc;
        if (find_box(kids, "hvcC", &hvcc) != 1 || hvcc.end - hvcc.p < 23)
            return VG_ENOTFOUND;
        const uint8_t *q = hvcc.p + 22;
        unsigned arrays = *q++, seen = 0;
        for (unsigned i = 0; i < arrays; i++) {
            if (hvcc.end - q < 3)
                return VG_ENOTFOUND;
            unsigned nal = q[0] & 0x3f, count = (unsigned)q[1] << 8 | q[2];
            q += 3;
            for (unsigned k = 0; k < count; k++) {
                if (hvcc.end - q < 2)
                    return VG_ENOTFOUND;
                size_t l = (size_t)q[0] << 8 | q[1];
                if ((size_t)(hvcc.end - q - 2) < l)
                    return VG_ENOTFOUND;
                q += 2 + l;
                if (nal >= 32 && nal <= 34)
                    seen |= 1u << (nal - 32);
            }
        }
        if (seen != 7)
            return VG_ENOTFOUND;
        *at = (size_t)(entry_at - init) + 4; /* the type follows the 32-bit size */
        return VG_OK;
    }
    return VG_ENOTFOUND;
}
