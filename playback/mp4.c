/* MP4/MOV box reader for stored segments: the init part (ftyp + moov: per
 * track its id, handler, timescale, the stsd box bytes and the mvex/trex
 * defaults) and every movie fragment (moof: tfhd, tfdt, trun) into one flat
 * table of samples (file offset, size, decode time, duration, composition
 * offset, sync flag). The clip builder (clip.c) makes a progressive file from
 * these tables without touching the media bytes.
 *
 * The bytes are treated as hostile (a damaged disk, a file planted in the
 * archive): every size is checked against its parent and the file, sample
 * counts against the bytes that would hold their entries and a global
 * bound, offsets and sums against overflow; the hierarchy is walked by
 * fixed paths, never by open recursion, so no nesting can loop. A box cut by
 * the end of the file ends the walk: what came before it is kept (a
 * recording cut by a crash keeps its complete fragments). */
#include "playback/playback.h"

#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/util.h"

#define FOURCC(a, b, c, d) \
    (((uint32_t)(a) << 24) | ((uint32_t)(b) << 16) | ((uint32_t)(c) << 8) | (uint32_t)(d))

/* A moov larger than this is not something our writer made. */
#define MOOV_MAX (4u << 20)
/* Neither is a moof larger than this (a 4 s fragment of 25 fps has ~100
 * entries of 16 bytes). */
#define MOOF_MAX (8u << 20)

typedef struct {
    const uint8_t *p;
    size_t len;
} span_t;

static uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static uint64_t rd64(const uint8_t *p)
{
    return ((uint64_t)rd32(p) << 32) | rd32(p + 4);
}

/* The next child box of *in: its type and body; advances *in. 0 at the end,
 * -1 when the box does not fit its parent. */
static int next_box(span_t *in, uint32_t *type, span_t *body)
{
    if (in->len == 0)
        return 0;
    if (in->len < 8)
        return -1;
    uint64_t size = rd32(in->p);
    size_t head = 8;
    *type = rd32(in->p + 4);
    if (size == 1) {
        if (in->len < 16)
            return -1;
        size = rd64(in->p + 8);
        head = 16;
    } else if (size == 0) {
        size = in->len; /* to the end of the parent */
    }
    if (size < head || size > in->len)
        return -1;
    body->p = in->p + head;
    body->len = (size_t)size - head;
    in->p += size;
    in->len -= (size_t)size;
    return 1;
}

/* The first child of type in parent; 0 when absent or malformed. */
static int find_box(span_t parent, uint32_t want, span_t *body)
{
    uint32_t type;
    span_t b;
    int rc;
    while ((rc = next_box(&parent, &type, &b)) > 0) {
        if (type == want) {
            *body = b;
            return 1;
        }
    }
    return 0;
}

static int parse_tkhd(span_t b, pb_mp4_track_t *t)
{
    if (b.len < 4)
        return -1;
    int v1 = b.p[0] == 1;
    size_t need = v1 ? 4 + 8 + 8 + 4 + 4 + 8 : 4 + 4 + 4 + 4 + 4 + 4; /* up to duration */
    need += 8 + 2 + 2 + 2 + 2 + 36 + 4 + 4; /* reserved, layer, group, volume, matrix, w, h */
    if (b.len < need)
        return -1;
    const uint8_t *p = b.p + 4;
    t->id = rd32(p + (v1 ? 16 : 8));
    p += v1 ? 32 : 20;
    p += 8 + 2 + 2;
    t->volume = (uint16_t)((p[0] << 8) | p[1]);
    p += 4 + 36;
    t->width = rd32(p);
    t->height = rd32(p + 4);
    return 0;
}

static int parse_mdhd(span_t b, pb_mp4_track_t *t)
{
    if (b.len < 4)
        return -1;
    int v1 = b.p[0] == 1;
    size_t need = v1 ? 4 + 8 + 8 + 4 + 8 + 4 : 4 + 4 + 4 + 4 + 4 + 4;
    if (b.len < need)
        return -1;
    t->timescale = rd32(b.p + (v1 ? 20 : 12));
    t->language = (uint16_t)((b.p[need - 4] << 8) | b.p[need - 3]);
    return t->timescale ? 0 : -1;
}

static int parse_trak(span_t trak, pb_mp4_track_t *t)
{
    span_t tkhd, mdia, mdhd, hdlr, minf, stbl, stsd;
    if (!find_box(trak, FOURCC('t', 'k', 'h', 'd'), &tkhd) || parse_tkhd(tkhd, t) != 0)
        return -1;
    if (!find_box(trak, FOURCC('m', 'd', 'i', 'a'), &mdia) ||
        !find_box(mdia, FOURCC('m', 'd', 'h', 'd'), &mdhd) || parse_mdhd(mdhd, t) != 0 ||
        !find_box(mdia, FOURCC('h', 'd', 'l', 'r'), &hdlr) || hdlr.len < 12)
        return -1;
    t->handler = rd32(hdlr.p + 8);
    if (!find_box(mdia, FOURCC('m', 'i', 'n', 'f'), &minf) ||
        !find_box(minf, FOURCC('s', 't', 'b', 'l'), &stbl) ||
        !find_box(stbl, FOURCC('s', 't', 's', 'd'), &stsd))
        return -1;
    /* version/flags, entry_count, then exactly one sample entry (box): our
     * writer makes one, and samples never name another. */
    span_t entries = {stsd.p + 8, stsd.len - 8}, entry;
    uint32_t fmt;
    if (stsd.len < 8 + 8 || rd32(stsd.p + 4) != 1 || next_box(&entries, &fmt, &entry) != 1 ||
        entries.len != 0)
        return -1;
    t->codec = fmt;
    t->entry = vg_malloc(stsd.len - 8);
    memcpy(t->entry, stsd.p + 8, stsd.len - 8);
    t->entry_len = stsd.len - 8;
    return 0;
}

static int parse_moov(span_t moov, pb_mp4_file_t *f)
{
    span_t in = moov, b, mvex;
    uint32_t type;
    int rc;
    while ((rc = next_box(&in, &type, &b)) > 0) {
        if (type != FOURCC('t', 'r', 'a', 'k'))
            continue;
        if (f->n_tracks == PB_MP4_MAX_TRACKS)
            return -1;
        pb_mp4_track_t *t = &f->tracks[f->n_tracks++];
        memset(t, 0, sizeof(*t));
        if (parse_trak(b, t) != 0)
            return -1;
        for (size_t i = 0; i + 1 < f->n_tracks; i++) {
            if (f->tracks[i].id == t->id)
                return -1;
        }
    }
    if (rc < 0 || f->n_tracks == 0)
        return -1;
    if (find_box(moov, FOURCC('m', 'v', 'e', 'x'), &mvex)) {
        in = mvex;
        while ((rc = next_box(&in, &type, &b)) > 0) {
            if (type != FOURCC('t', 'r', 'e', 'x') || b.len < 24)
                continue;
            for (size_t i = 0; i < f->n_tracks; i++) {
                if (f->tracks[i].id == rd32(b.p + 4)) {
                    f->tracks[i].trex_duration = rd32(b.p + 12);
                    f->tracks[i].trex_size = rd32(b.p + 16);
                    f->tracks[i].trex_flags = rd32(b.p + 20);
                }
            }
        }
    }
    return 0;
}

static int add_sample(pb_mp4_file_t *f, const pb_mp4_sample_t *s)
{
    if (f->n_samples == PB_MP4_MAX_SAMPLES)
        return -1;
    if (f->n_samples == f->cap_samples) {
        f->cap_samples = f->cap_samples ? f->cap_samples * 2 : 1024;
        f->samples = vg_realloc(f->samples, f->cap_samples * sizeof(*f->samples));
    }
    f->samples[f->n_samples++] = *s;
    return 0;
}

/* One traf of the moof starting at moof_off. *next_base: where the previous
 * traf's data ended (the base of a traf naming none, ISO 14496-12 8.8.7). */
static int parse_traf(span_t traf, uint64_t moof_off, uint64_t file_size, pb_mp4_file_t *f,
                      uint64_t *next_base, uint64_t *track_end)
{
    span_t tfhd, in = traf, b;
    uint32_t type;
    int rc;
    if (!find_box(traf, FOURCC('t', 'f', 'h', 'd'), &tfhd) || tfhd.len < 8)
        return -1;
    uint32_t flags = rd32(tfhd.p) & 0xffffff;
    uint32_t id = rd32(tfhd.p + 4);
    size_t ti = f->n_tracks;
    for (size_t i = 0; i < f->n_tracks; i++) {
        if (f->tracks[i].id == id)
            ti = i;
    }
    if (ti == f->n_tracks)
        return -1;
    const pb_mp4_track_t *t = &f->tracks[ti];
    uint32_t def_dur = t->trex_duration, def_size = t->trex_size, def_flags = t->trex_flags;
    uint64_t base = *next_base;
    const uint8_t *p = tfhd.p + 8;
    size_t left = tfhd.len - 8;
    if (flags & 0x1) {
        if (left < 8)
            return -1;
        base = rd64(p);
        p += 8;
        left -= 8;
    } else if (flags & 0x20000) {
        base = moof_off;
    }
    if (flags & 0x2) {
        if (left < 4 || rd32(p) != 1)
            return -1; /* one sample entry */
        p += 4;
        left -= 4;
    }
    uint32_t *defs[3] = {&def_dur, &def_size, &def_flags};
    for (int k = 0; k < 3; k++) {
        if (flags & (0x8u << k)) {
            if (left < 4)
                return -1;
            *defs[k] = rd32(p);
            p += 4;
            left -= 4;
        }
    }
    uint64_t dts = track_end[ti];
    span_t tfdt;
    if (find_box(traf, FOURCC('t', 'f', 'd', 't'), &tfdt)) {
        if (tfdt.len < 8 || (tfdt.p[0] == 1 && tfdt.len < 12))
            return -1;
        dts = tfdt.p[0] == 1 ? rd64(tfdt.p + 4) : rd32(tfdt.p + 4);
    }
    uint64_t data = base;
    while ((rc = next_box(&in, &type, &b)) > 0) {
        if (type != FOURCC('t', 'r', 'u', 'n'))
            continue;
        if (b.len < 8)
            return -1;
        uint32_t tf = rd32(b.p) & 0xffffff;
        int v1 = b.p[0] == 1;
        uint32_t count = rd32(b.p + 4);
        const uint8_t *q = b.p + 8;
        size_t ql = b.len - 8;
        uint32_t first_flags = 0;
        int has_first = 0;
        if (tf & 0x1) {
            if (ql < 4)
                return -1;
            int32_t off = (int32_t)rd32(q);
            if (off < 0 && (uint64_t)(-(int64_t)off) > base)
                return -1;
            data = base + (uint64_t)(int64_t)off;
            q += 4;
            ql -= 4;
        }
        if (tf & 0x4) {
            if (ql < 4)
                return -1;
            first_flags = rd32(q);
            has_first = 1;
            q += 4;
            ql -= 4;
        }
        size_t per = 4 * (size_t)(!!(tf & 0x100) + !!(tf & 0x200) + !!(tf & 0x400) +
                                  !!(tf & 0x800));
        /* The count is checked against the bytes that hold its entries, so a
         * forged count cannot make us loop or allocate past the box. */
        if (per ? (uint64_t)count * per > ql : count > PB_MP4_MAX_SAMPLES)
            return -1;
        for (uint32_t i = 0; i < count; i++) {
            pb_mp4_sample_t s = {0};
            s.duration = def_dur;
            s.size = def_size;
            uint32_t sflags = i == 0 && has_first ? first_flags : def_flags;
            if (tf & 0x100) {
                s.duration = rd32(q);
                q += 4;
            }
            if (tf & 0x200) {
                s.size = rd32(q);
                q += 4;
            }
            if (tf & 0x400) {
                sflags = rd32(q);
                q += 4;
            }
            if (tf & 0x800) {
                s.cts = (int32_t)rd32(q);
                if (!v1 && s.cts < 0)
                    return -1; /* version 0 offsets are unsigned: too large to keep */
                q += 4;
            }
            s.track = (uint8_t)ti;
            s.sync = t->handler != FOURCC('v', 'i', 'd', 'e') || !(sflags & 0x10000);
            s.dts = dts;
            s.offset = data;
            if (data > file_size || s.size > file_size - data)
                return 1; /* data past the end: the file was cut here */
            if (dts > UINT64_MAX / 2 - s.duration)
                return -1;
            if (add_sample(f, &s) != 0)
                return -1;
            dts += s.duration;
            data += s.size;
        }
    }
    if (rc < 0)
        return -1;
    *next_base = data;
    track_end[ti] = dts;
    return 0;
}

static int parse_moof(span_t moof, uint64_t moof_off, uint64_t file_size, pb_mp4_file_t *f,
                      uint64_t *track_end)
{
    span_t in = moof, b;
    uint32_t type;
    int rc;
    uint64_t next_base = moof_off;
    size_t before = f->n_samples;
    while ((rc = next_box(&in, &type, &b)) > 0) {
        if (type != FOURCC('t', 'r', 'a', 'f'))
            continue;
        int r = parse_traf(b, moof_off, file_size, f, &next_base, track_end);
        if (r != 0) {
            f->n_samples = before; /* a fragment is whole or not at all */
            return r;
        }
    }
    return rc < 0 ? -1 : 0;
}

void pb_mp4_file_free(pb_mp4_file_t *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < f->n_tracks; i++)
        free(f->tracks[i].entry);
    free(f->samples);
    memset(f, 0, sizeof(*f));
}

int pb_mp4_scan(pb_mp4_read_fn read, void *ctx, uint64_t file_size, pb_mp4_file_t *f)
{
    uint64_t off = 0;
    uint8_t head[16];
    uint8_t *buf = NULL;
    uint64_t track_end[PB_MP4_MAX_TRACKS] = {0};
    int have_moov = 0, rc = VG_ECORRUPT;
    memset(f, 0, sizeof(*f));
    while (off < file_size) {
        uint64_t left = file_size - off;
        if (left < 8 || read(ctx, off, head, 8) != 0)
            break; /* a cut header: the end */
        uint64_t size = rd32(head);
        uint32_t type = rd32(head + 4);
        size_t hl = 8;
        if (size == 1) {
            if (left < 16 || read(ctx, off + 8, head + 8, 8) != 0)
                break;
            size = rd64(head + 8);
            hl = 16;
        } else if (size == 0) {
            size = left;
        }
        if (size < hl)
            goto cleanup;
        if (size > left)
            break; /* cut by the end of the file */
        if (type == FOURCC('f', 't', 'y', 'p') && size >= hl + 4 && off == 0) {
            if (read(ctx, off + hl, head, 4) != 0)
                goto cleanup;
            f->brand = rd32(head);
        } else if (type == FOURCC('m', 'o', 'o', 'v') || type == FOURCC('m', 'o', 'o', 'f')) {
            uint64_t max = type == FOURCC('m', 'o', 'o', 'v') ? MOOV_MAX : MOOF_MAX;
            if (size - hl > max || (type == FOURCC('m', 'o', 'o', 'v')) == have_moov)
                goto cleanup; /* one moov, before every moof */
            buf = vg_realloc(buf, (size_t)(size - hl) + 1);
            if (read(ctx, off + hl, buf, (size_t)(size - hl)) != 0) {
                rc = VG_EIO;
                goto cleanup;
            }
            span_t body = {buf, (size_t)(size - hl)};
            if (type == FOURCC('m', 'o', 'o', 'v')) {
                if (parse_moov(body, f) != 0)
                    goto cleanup;
                have_moov = 1;
                f->init_bytes = off + size;
            } else {
                int r = parse_moof(body, off, file_size, f, track_end);
                if (r < 0)
                    goto cleanup;
                if (r > 0)
                    break;
            }
        }
        off += size;
    }
    rc = have_moov ? VG_OK : VG_ECORRUPT;

cleanup:
    free(buf);
    if (rc != VG_OK)
        pb_mp4_file_free(f);
    return rc;
}

typedef struct {
    const uint8_t *p;
    size_t len;
} mem_src_t;

static int mem_read(void *ctx, uint64_t off, void *buf, size_t len)
{
    const mem_src_t *m = ctx;
    if (off > m->len || len > m->len - off)
        return -1;
    memcpy(buf, m->p + off, len);
    return 0;
}

int pb_mp4_scan_mem(const uint8_t *p, size_t len, pb_mp4_file_t *f)
{
    mem_src_t m = {p, len};
    return pb_mp4_scan(mem_read, &m, len, f);
}
