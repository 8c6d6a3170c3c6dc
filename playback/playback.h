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

/* ---- audio: WAV and peaks (playback/audio.c, playback/peaks.c) ---- */

#define PB_WAV_HEADER 44

/* G.711 to 16-bit linear, by the algorithm of ITU-T G.711 (the same values
 * as FFmpeg's pcm_alaw / pcm_mulaw decoders). */
int16_t pb_alaw_linear(uint8_t a);
int16_t pb_ulaw_linear(uint8_t u);
/* The 44-byte header of a mono 16-bit PCM WAV of n_samples at rate. */
void pb_wav_header(uint8_t out[PB_WAV_HEADER], uint32_t rate, uint32_t n_samples);
/* Number of samples of [from_us, to_us) at rate (sample n sits at
 * from + n / rate): the length a WAV of that range promises. */
int64_t pb_wav_samples(int64_t from_us, int64_t to_us, int rate);
/* The sample of a WAV starting at from that wall time at_us falls on
 * (rounded to the nearest; negative before from). */
int64_t pb_sample_at(int64_t from_us, int64_t at_us, int rate);

/* A WAV of one source's range, produced on demand: the segments' first
 * audio track decoded to mono 16-bit PCM at its own rate, each packet placed
 * by its wall time (segment start + its timestamp), gaps silent. */
typedef struct pb_wav pb_wav_t;

/* Opens the WAV of [from_us, to_us) over segs[0..n) (copied; ordered by
 * start, as idx_segments_in_range gives them). Reads the first segment
 * with audio for the rate. VG_ENOTFOUND: none of them has an audio track
 * (err says so); VG_EMEDIA: a segment could not be read. */
int pb_wav_open(const char *data_dir, const idx_segment_t *segs, size_t n, int64_t from_us,
                int64_t to_us, pb_wav_t **out, char *err, size_t err_size);
uint64_t pb_wav_size(const pb_wav_t *w);
int pb_wav_rate(const pb_wav_t *w);
/* The bytes at pos of the WAV (header included) into buf: count (> 0), or
 * -1 when a segment that must be decoded cannot be read. Sequential reads
 * continue decoding where the last stopped; a jump seeks. */
long pb_wav_read(pb_wav_t *w, uint64_t pos, char *buf, size_t max);
/* Samples [at, at + n) of the WAV's audio (not its bytes): VG_OK or VG_EMEDIA. */
int pb_wav_samples_at(pb_wav_t *w, int64_t at, int16_t *out, size_t n);
void pb_wav_close(pb_wav_t *w);
/* web_read_fn / free_ctx shaped wrappers for a reply reader whose window
 * starts at first within the WAV. */
typedef struct {
    pb_wav_t *wav;
    uint64_t first;
} pb_wav_window_t;
long pb_wav_window_read(void *ctx, uint64_t pos, char *buf, size_t max);
void pb_wav_window_free(void *ctx);

/* Whether a segment's codecs list ("h264,pcm_alaw") names an audio / a
 * video codec. */
int pb_codecs_have_audio(const char *codecs);
int pb_codecs_have_video(const char *codecs);

/* A strong ETag (quoted, into out[80]) for what is built from these
 * segments (their ids and sha256) over [from_us, to_us); what tells the
 * kinds of answer apart. */
void pb_range_etag(const char *what, const idx_segment_t *segs, size_t n, int64_t from_us,
                   int64_t to_us, char *out, size_t size);

/* ---- shared state: caches and the decode limit (playback/playback.c) ---- */

typedef struct {
    const char *data_dir;
    int snapshot_workers;           /* decodes at once; beyond: VG_EBUSY */
    int64_t snapshot_cache_bytes;   /* bound of data_dir/cache/snapshots */
    size_t peaks_cache_bytes;       /* bound of the in-memory peaks cache */
} pb_config_t;

typedef struct pb pb_t;

int pb_open(const pb_config_t *cfg, pb_t **out);
void pb_close(pb_t *pb);

/* Waveform peaks of [from_us, to_us) in n buckets: JSON text (malloc'd)
 * {"from","to","n","rate","min":[..],"max":[..],"peaks":[min0,max0,...]},
 * values in [-1, 1]; a bucket of silence (or a gap) is 0. Bucket i holds
 * samples [i*N/n, (i+1)*N/n) of the range's WAV (N samples). Cached by
 * the segments' ids and hashes, range and n. Errors as pb_wav_open, and
 * VG_EBUSY when snapshot_workers decodes are running (answer 503). */
int pb_peaks(pb_t *pb, const idx_segment_t *segs, size_t n_segs, int64_t from_us,
             int64_t to_us, int n, char **json, size_t *len, char *err, size_t err_size);

/* A snapshot: the JPEG file of the frame at or before at_us in seg. */
typedef struct {
    int fd;            /* open on the cached JPEG, the caller's */
    uint64_t size;
    char etag[80];     /* quoted: segment id and hash, frame pts and width */
} pb_snapshot_t;

/* The frame of seg at or before at_us, scaled to width (0: as recorded;
 * clamped to 16..source width, even), as a JPEG cached on disk. VG_EBUSY:
 * snapshot_workers decodes are running (answer 503); VG_ENOTFOUND: no video
 * or no frame at or before at_us; VG_EMEDIA: the file cannot be decoded. */
int pb_snapshot(pb_t *pb, const idx_segment_t *seg, int64_t at_us, int width,
                pb_snapshot_t *out, char *err, size_t err_size);

#endif
