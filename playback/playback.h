/* playback: reading the archive for people (DESIGN.md "Storage", "playback").
 * HLS playlists over the stored files' byte ranges, progressive clips built
 * from stored fragments without re-encoding, WAV and waveform peaks for audio,
 * snapshots, and signed evidence export bundles. Only this module and
 * archive/ open media files; web/ only routes to the functions declared here.
 * Every public symbol is prefixed pb_. */
#ifndef VG_PLAYBACK_H
#define VG_PLAYBACK_H

#include <stddef.h>
#include <stdint.h>

#include "index/index.h"

/* ---- clip builder (mp4.c, clip.c): GET /sources/{name}/clip.{mp4,mov,mkv} ---- */

/* What the box reader keeps of one track of a stored segment. */
#define PB_MP4_MAX_TRACKS 8
/* Samples one file may hold (2 h of 60 fps video and its audio): a bound on
 * what a forged sample count can make us allocate. */
#define PB_MP4_MAX_SAMPLES (1u << 20)

typedef struct {
    uint32_t id;             /* track_ID */
    uint32_t handler;        /* 'vide', 'soun', ... */
    uint32_t timescale;      /* mdhd */
    uint16_t language;       /* mdhd, packed ISO 639-2 */
    uint16_t volume;         /* tkhd, 8.8 */
    uint32_t width, height;  /* tkhd, 16.16 */
    uint32_t codec;          /* the sample entry's format: avc1, hvc1, mp4a, alaw, ... */
    uint8_t *entry;          /* the stsd box's one sample entry (a whole box), copied as
                              * is into a clip */
    size_t entry_len;
    uint32_t trex_duration, trex_size, trex_flags;
} pb_mp4_track_t;

typedef struct {
    uint64_t dts;            /* decode time, track timescale, from the file's 0 */
    uint64_t offset;         /* of its bytes in the file */
    uint32_t size;
    uint32_t duration;
    int32_t cts;             /* composition offset */
    uint8_t track;           /* index into tracks */
    uint8_t sync;
} pb_mp4_sample_t;

typedef struct {
    uint32_t brand;          /* ftyp major brand */
    uint64_t init_bytes;     /* ftyp + moov */
    pb_mp4_track_t tracks[PB_MP4_MAX_TRACKS];
    size_t n_tracks;
    pb_mp4_sample_t *samples; /* in file order */
    size_t n_samples, cap_samples;
} pb_mp4_file_t;

/* Reads exactly len bytes at off: 0, or -1 (I/O error, short). */
typedef int (*pb_mp4_read_fn)(void *ctx, uint64_t off, void *buf, size_t len);
/* Reads a fragmented MP4/MOV file of file_size bytes: VG_OK, VG_ECORRUPT
 * (not a file we can read: no moov, malformed boxes) or VG_EIO. A file cut
 * short keeps its complete fragments. pb_mp4_file_free(f) after VG_OK. */
int pb_mp4_scan(pb_mp4_read_fn read, void *ctx, uint64_t file_size, pb_mp4_file_t *f);
int pb_mp4_scan_mem(const uint8_t *p, size_t len, pb_mp4_file_t *f);
void pb_mp4_file_free(pb_mp4_file_t *f);

typedef enum { PB_CLIP_MP4, PB_CLIP_MOV, PB_CLIP_MKV } pb_clip_format_t;
typedef struct pb_clip pb_clip_t;

/* Plans a clip of the segments (idx_segments_in_range's, in start order)
 * from from_us to to_us: reads their boxes, lays out the whole file and
 * returns it with its exact size, nothing written anywhere. Codes:
 * VG_ENOTFOUND (nothing recorded in the range), VG_EINVAL (the container
 * cannot hold the codecs: err says which container can), VG_EEXIST (the
 * codec changes within the range: err names the time), VG_ECORRUPT,
 * VG_EIO, VG_EMEDIA; err (err_size bytes) says why in words. */
int pb_clip_plan(const char *data_dir, const idx_segment_t *segs, size_t n, int64_t from_us,
                 int64_t to_us, pb_clip_format_t fmt, pb_clip_t **out, char *err,
                 size_t err_size);
uint64_t pb_clip_size(const pb_clip_t *c);
/* A strong ETag (quoted) naming the clip's bytes: segments and request. */
const char *pb_clip_etag(const pb_clip_t *c);
/* The wall-clock span the clip plays (from the first shown frame). */
void pb_clip_span(const pb_clip_t *c, int64_t *from_us, int64_t *to_us);
/* Bytes of the clip at pos: how many were written (> 0), or -1 when a
 * stored file is gone or shorter than planned (logged). */
long pb_clip_read(pb_clip_t *c, uint64_t pos, char *buf, size_t max);
void pb_clip_free(pb_clip_t *c);

#endif
