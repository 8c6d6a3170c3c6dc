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

/* ---- HLS (playback/hls.c) ---- */

/* A playlist names at most this many segments (24 h of 2 s segments). */
#define PB_PLAYLIST_MAX_SEGMENTS 50000
/* and at most this many fragments (about 15 MB of playlist). */
#define PB_PLAYLIST_MAX_FRAGMENTS 200000

/* An HLS VOD playlist (EXT-X-VERSION 7) of source over [from_us, to_us):
 * per stored file an EXT-X-DISCONTINUITY (each file's timestamps start
 * anew; a gap or a codec change is always at a file boundary), EXT-X-MAP
 * over its init part, EXT-X-PROGRAM-DATE-TIME, then one byte range per
 * fragment from the keyframe at or before from_us. Media URIs are relative
 * ("media/ID"), so the playlist must be served from
 * /api/v1/sources/NAME/playlist.m3u8. A range with no recording gives a
 * valid empty playlist. *out is malloc'd. VG_ENOTFOUND: unknown source;
 * VG_EINVAL: more than PB_PLAYLIST_MAX_SEGMENTS segments or
 * PB_PLAYLIST_MAX_FRAGMENTS fragments. */
int pb_playlist(idx_t *idx, const char *data_dir, const char *source, int64_t from_us,
                int64_t to_us, char **out, size_t *len, size_t *n_segments);

/* One stored file opened for the media route. */
typedef struct {
    int fd;
    uint64_t size;
    idx_segment_t seg;
} pb_media_t;

/* Opens segment_id's file if it is a live segment of source; VG_ENOTFOUND
 * otherwise (deleted, being deleted, another source's, file gone). The
 * caller owns m->fd. */
int pb_media_open(idx_t *idx, const char *data_dir, const char *source, int64_t segment_id,
                  pb_media_t *m);
/* Where the init part's hev1 sample entry type lies, when it can be served
 * as hvc1 (parameter sets in hvcC); VG_ENOTFOUND otherwise. */
int pb_media_hvc1_at(const pb_media_t *m, uint64_t *at);
/* Reads up to max bytes at pos with the type at hvc1_at relabelled 'hvc1'
 * (same size: byte ranges still hold). Bytes read, or -1. */
long pb_media_read_hvc1(const pb_media_t *m, uint64_t hvc1_at, uint64_t pos, char *buf,
                        size_t max);

#endif
