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

#include "core/clock.h"
#include "core/key.h"
#include "index/index.h"

/* ---- evidence export bundles (playback/bundle.c, playback/minisign.c) ----
 * A zip holding one media file per source ({source}.mp4, .mov for video with
 * G.711 audio, .wav for G.711 call lines, .mka for other audio), manifest.json
 * (who, why, when, and every hash: original segments and exported files),
 * manifest.json.minisig (a minisign signature by the appliance key),
 * vigil-appliance.pub (its public key), VERIFY.txt (how to check, in Russian
 * and English) and SHA256SUMS (for sha256sum -c). README "Evidence export". */

#define PB_BUNDLE_MAX_SOURCES 16
#define PB_BUNDLE_FORMAT "vigil-export-1"
#define PB_MANIFEST "manifest.json"
#define PB_MANIFEST_SIG "manifest.json.minisig"
#define PB_PUBKEY "vigil-appliance.pub"
#define PB_VERIFY_TXT "VERIFY.txt"
#define PB_SHA256SUMS "SHA256SUMS"

/* calls: a bundle of many intervals (a subject-access request: one WAV per
 * call) instead of one file per source over the whole range. A piece is
 * one source over [from_us, to_us), written as "{name}.{ext}". */
#define PB_BUNDLE_MAX_PIECES 400
typedef struct {
    char source[64];
    char name[64];
    int64_t from_us, to_us;
} pb_bundle_piece_t;

/* A small file added to a bundle as it is (listed and hashed in the
 * manifest's files, like VERIFY.txt): the calls' CSV and JSON, a summary. */
typedef struct {
    char name[64];
    char *data;
    size_t len;
} pb_bundle_file_t;

typedef struct {
    const char *data_dir;       /* the archive (media paths are relative to it) */
    const vg_key_t *key;        /* signs the manifest (needs the secret) */
    const char *appliance_id;   /* the archive identity (arc_claim_data_dir) */
    const char *exporter;       /* who asked (audit actor) */
    const char *case_no, *reason;
    int64_t export_id;          /* 0: an offline bundle (vigilctl) */
    int64_t from_us, to_us, created_us;
    const char *const *sources;
    size_t n_sources;
    const int *stop;            /* non-zero (read atomically): stop, VG_ESTOPPED */
    /* Progress as bytes are written (may be NULL): fraction 0..1 of the job
     * and bytes written so far. */
    void (*progress)(void *ctx, double fraction, int64_t bytes);
    void *ctx;
    /* calls: with use_pieces, pieces (n_pieces may be 0) replace sources */
    int use_pieces;
    const pb_bundle_piece_t *pieces;
    size_t n_pieces;
    const pb_bundle_file_t *files;
    size_t n_files;
} pb_bundle_opts_t;

typedef struct {
    int64_t bytes;     /* of the zip */
    char sha256[65];   /* of the zip */
} pb_bundle_result_t;

/* The media step of one source: writes [from_us, to_us) of segs into a new
 * file at out_path (its extension from pb_media_ext), remuxed without
 * re-encoding. One function so the builder behind it can change. */
const char *pb_media_ext(const idx_segment_t *segs, size_t n);

/* Builds the bundle for o into out_path: written under a temporary name
 * beside it, fsynced, renamed, the directory fsynced, so a crash never
 * leaves a zip that looks finished; temporary media files beside it are
 * removed whatever happens. VG_ENOTFOUND (err says which) when a source has
 * nothing recorded in the range. err gets a reason on failure. */
int pb_bundle_write(idx_t *idx, const pb_bundle_opts_t *o, const char *out_path,
                    pb_bundle_result_t *res, char *err, size_t err_size);

/* Checks a bundle: the signature of manifest.json (by pubkey_path's key, or
 * the bundled vigil-appliance.pub when NULL), every file's size and sha256
 * against the manifest, SHA256SUMS, and that the zip holds exactly the
 * expected files. VG_OK, or VG_ECORRUPT with the first mismatch in why;
 * VG_EIO when the zip cannot be read at all. key_id (17 bytes, may be NULL)
 * gets the signing key's number. */
int pb_bundle_verify(const char *zip_path, const char *pubkey_path, char *why, size_t why_size,
                     char *key_id);

/* minisign signatures (prehashed "ED": Ed25519 over BLAKE2b-512 of the
 * message). Returns the four-line .minisig text (malloc'd) or NULL without a
 * secret key. The comments must not hold a newline. */
char *pb_minisign_sign(const vg_key_t *key, const void *msg, size_t len,
                       const char *untrusted_comment, const char *trusted_comment);
/* Checks a .minisig text (both "ED" and legacy "Ed") against key: VG_OK, or
 * VG_ECORRUPT with the reason in why. */
int pb_minisign_verify(const vg_key_t *key, const void *msg, size_t len, const char *sig_text,
                       char *why, size_t why_size);

/* Reads a public key file's text (minisign's format, as vg_key_public_text
 * writes it): VG_OK or VG_ECORRUPT. */
int pb_minisign_parse_public(const char *text, vg_key_t *out);

/* ---- export jobs (playback/exporter.c): one worker thread ---- */

#define PB_EXPORT_QUEUE_MAX 8

typedef struct pb_exporter pb_exporter_t;

typedef struct {
    const char *data_dir;
    const vg_clock_t *clock;    /* created/finished times and keep_days */
    int keep_days;              /* finished bundles are removed after this */
    int cleanup_ms;             /* how often keep_days is applied; 0: 60 s */
    /* calls: what a subject-access job (idx_export_t.subject set) bundles:
     * fills the pieces and files (malloc'd, freed by subject_free); NULL:
     * such jobs fail. Runs on the exporter's thread with its connection. */
    int (*subject)(idx_t *idx, const idx_export_t *e, pb_bundle_piece_t **pieces, size_t *n,
                   pb_bundle_file_t **files, size_t *n_files, char *err, size_t err_size);
} pb_exporter_config_t;

/* Opens its own index connection and key, marks jobs left queued or running
 * by a previous process failed ("interrupted"), removes stray temporary
 * files under data_dir/exports, and starts the worker. */
int pb_exporter_start(const pb_exporter_config_t *cfg, pb_exporter_t **out);
/* Takes a queue slot before the job's row is written: VG_EBUSY when the
 * queue is full. Every reserved slot is then used by pb_exporter_submit or
 * given back by pb_exporter_unreserve. */
int pb_exporter_reserve(pb_exporter_t *x);
void pb_exporter_unreserve(pb_exporter_t *x);
void pb_exporter_submit(pb_exporter_t *x, int64_t id);
/* Stops job id if it is queued or running (its files are removed). */
void pb_exporter_cancel(pb_exporter_t *x, int64_t id);
/* The zip of a job relative to data_dir: "exports/ID.zip". */
void pb_export_rel_path(int64_t id, char *out, size_t size);
/* Removes a finished job's zip (durably). A missing file is fine. */
int pb_export_remove_file(const char *data_dir, const char *rel_path);
/* Runs the keep_days cleanup now (tests and the worker). */
void pb_exporter_cleanup_now(pb_exporter_t *x);
/* Stops the running job cleanly (its partial files removed, its row failed
 * "interrupted") and the worker; queued jobs become failed too. NULL ok. */
void pb_exporter_stop(pb_exporter_t *x);


/* ---- HLS (playback/hls.c) ---- */

struct pb; /* pb_t, below */

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
 * /api/v1/sources/NAME/playlist.m3u8. A segment a browser cannot play as
 * stored (G.711 audio; H.265 when wanted has PB_CONV_H264) is named through
 * converted URIs instead ("media/ID?audio=flac" for its init part,
 * "media/ID?audio=flac&frag=K" per fragment; see pb_convert). A range with no recording gives a
 * valid empty playlist. *out is malloc'd. VG_ENOTFOUND: unknown source;
 * VG_EINVAL: more than PB_PLAYLIST_MAX_SEGMENTS segments or
 * PB_PLAYLIST_MAX_FRAGMENTS fragments. With pb (may be NULL), the lines of
 * each segment listed whole are kept in its playlist cache
 * (playlist_cache_bytes) and reused while the segment's row is the same. */
int pb_playlist(struct pb *pb, idx_t *idx, const char *data_dir, const char *source,
                int64_t from_us, int64_t to_us, unsigned wanted, char **out, size_t *len,
                size_t *n_segments);

/* One stored file opened for the media route. */
typedef struct {
    int fd;
    uint64_t size;
    idx_segment_t seg;
} pb_media_t;

/* Opens segment_id's file if it is a live segment of source; VG_ENOTFOUND
 * otherwise (deleted, being deleted, another source's, file gone). The
 * caller owns m->fd. With pb and gen (idx_watch_gen's count, taken before;
 * 0: none) the row is kept in pb and reused while gen stays the same. */
int pb_media_open(struct pb *pb, uint64_t gen, idx_t *idx, const char *data_dir,
                  const char *source, int64_t segment_id, pb_media_t *m);
/* Where the init part's hev1 sample entry type lies, when it can be served
 * as hvc1 (parameter sets in hvcC); VG_ENOTFOUND otherwise. */
int pb_media_hvc1_at(const pb_media_t *m, uint64_t *at);
/* Reads up to max bytes at pos with the type at hvc1_at relabelled 'hvc1'
 * (same size: byte ranges still hold). Bytes read, or -1. */
long pb_media_read_hvc1(const pb_media_t *m, uint64_t hvc1_at, uint64_t pos, char *buf,
                        size_t max);
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
/* 1 once a read error ended a segment early (what followed it in that
 * segment was served as silence), else 0. */
int pb_wav_read_failed(const pb_wav_t *w);
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
    int snapshot_threads;           /* threads of one decode and its JPEG (0: 1) */
    int64_t snapshot_cache_bytes;   /* bound of data_dir/cache/snapshots */
    size_t peaks_cache_bytes;       /* bound of the in-memory peaks cache */
    int transcode_max;              /* H.264 transcodes at once; beyond: VG_EBUSY */
    size_t playlist_cache_bytes;    /* bound of the playlist text per segment (0: none) */
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
 * clamped to 16..source width, even), as a JPEG cached on disk. With
 * keyframe, the keyframe at or before at_us instead (at most one GOP
 * earlier; one frame to decode: the timeline's previews at coarse zoom).
 * VG_EBUSY: snapshot_workers decodes are running (answer 503);
 * VG_ENOTFOUND: no video or no frame at or before at_us; VG_EMEDIA: the
 * file cannot be decoded. */
int pb_snapshot(pb_t *pb, const idx_segment_t *seg, int64_t at_us, int width, int keyframe,
                pb_snapshot_t *out, char *err, size_t err_size);
/* Removes the cached snapshots of these segments from data_dir/cache/snapshots
 * (one pass over the directory), for the deletion that removed their files:
 * a cache of a deleted recording is a copy of it. Returns how many files
 * went; a file that cannot be removed is logged and left to the size bound. */
size_t pb_snapshots_forget(const char *data_dir, const idx_segment_t *segs, size_t n);

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

/* ---- converted media for browsers (playback/convert.c) ---- */

struct AVCodecParameters;
struct AVPacket;
struct AVRational;

/* G.711 -> FLAC, one decoder and one encoder (live.mp4 and converted HLS
 * media). Output packets' pts are in 1/sample_rate, the first decoded
 * sample placed at the `at` given with the first packet. */
typedef struct pb_flac pb_flac_t;
typedef void (*pb_flac_emit_fn)(void *ctx, struct AVPacket *pkt);
int pb_flac_open(const struct AVCodecParameters *in, int sample_rate, int channels,
                 pb_flac_t **out);
/* The encoder's parameters (with its STREAMINFO) for an output stream. */
int pb_flac_params(const pb_flac_t *f, struct AVCodecParameters *par,
                   struct AVRational *time_base);
/* Decodes one G.711 packet (at: its time in samples) and hands every
 * complete FLAC frame to emit. */
int pb_flac_push(pb_flac_t *f, const struct AVPacket *pkt, int64_t at, pb_flac_emit_fn emit,
                 void *ctx);
/* Places the first sample at `at` (samples) when nothing was pushed yet. */
void pb_flac_start(pb_flac_t *f, int64_t at);
/* n samples (interleaved 16-bit PCM) after what was pushed, bypassing the
 * decoder (the caller decoded them); pb_flac_start first. */
int pb_flac_push_pcm(pb_flac_t *f, const int16_t *pcm, int64_t n, pb_flac_emit_fn emit,
                     void *ctx);
/* Encodes what is left as a last, shorter frame, and ends the encoder. */
int pb_flac_finish(pb_flac_t *f, pb_flac_emit_fn emit, void *ctx);
void pb_flac_free(pb_flac_t *f);

/* Conversions of a stored segment for a browser. */
#define PB_CONV_FLAC 1u  /* G.711 audio -> FLAC, video copied */
#define PB_CONV_H264 2u  /* H.265 video -> H.264 ([playback] transcode_hevc) */
/* A stored fragment larger than this is not converted (VG_EMEDIA). */
#define PB_CONVERT_MAX_INPUT (32 * 1024 * 1024)

int pb_codecs_g711(const char *codecs);
int pb_codecs_hevc(const char *codecs);
/* The conversions a segment with these codecs gets when a browser asks
 * for `wanted` (PB_CONV_H264 or 0): G.711 always becomes FLAC. */
unsigned pb_convert_for(const char *codecs, unsigned wanted);
/* The media URI query naming conv ("audio=flac", "video=h264", both). */
void pb_convert_query(unsigned conv, char *out, size_t size);

/* A converted init part or fragment, built in memory. */
typedef struct {
    uint8_t *data; /* malloc'd */
    size_t len;
    idx_segment_t seg;
} pb_converted_t;

/* The init part (frag < 0) or fragment frag (of the segment's fragment
 * table) of segment_id, a live segment of source, with conv applied: an
 * init part with the video sample entry as stored (or H.264's) and a FLAC
 * (fLaC/dfLa) audio entry; a fragment (moof + mdat) whose video samples are
 * the stored ones byte for byte (or H.264 frames at the same times) and
 * whose audio is the stored G.711 as FLAC, every track starting at its
 * stored time. VG_ENOTFOUND (no such segment or fragment), VG_EINVAL (conv
 * does not apply to this segment's codecs), VG_EMEDIA / VG_EIO /
 * VG_ECORRUPT; err says why. */
int pb_convert(idx_t *idx, const char *data_dir, const char *source, int64_t segment_id,
               unsigned conv, long frag, pb_converted_t *out, char *err, size_t err_size);

/* One of the transcode_max H.264 transcode slots: 1 when taken, 0 when all
 * are busy (answer 503). */
int pb_transcode_take(pb_t *pb);
void pb_transcode_give(pb_t *pb);

#endif
