/* The archive: segment files on disk. The only module that opens media files.
 *
 * Layout: DATA_DIR/media/<source>/<YYYY-MM-DD>/<start_us>.<mp4|mov>, one
 * fragmented MP4 (MOV when a codec such as G.711 has no MP4 mapping in this
 * FFmpeg) per segment, each starting on a keyframe. The wall-clock start is in
 * the file name so a file left by a crash can be indexed without its row. */
#ifndef ARC_ARCHIVE_H
#define ARC_ARCHIVE_H

#include <stddef.h>
#include <stdint.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

#include "core/clock.h"
#include "index/index.h"

typedef struct arc_writer arc_writer_t;

typedef struct {
    const char *data_dir;
    const char *source;
    int segment_seconds;
    /* Rotation stagger: the first segment of each connection is shortened by
     * a per-source fraction so sources do not all rotate and fsync together. */
    int stagger_slot;  /* 0..stagger_slots-1 */
    int stagger_slots;
    const vg_clock_t *clock;
    /* Where finished segments are committed; owned by the caller, used only
     * by the writer's committer thread from arc_writer_open to close. */
    idx_t *idx;
    int sync_seconds;         /* fdatasync the open segment this often; 0: 5 */
    int fragment_max_seconds; /* cut a fragment without a keyframe after; 0: 4 */
    int64_t fragment_max_bytes; /* or at this size; 0: 16 MiB */
    /* storage_io_error stays up at least this long after the last error, so
     * an admin sees it even when the next segment is clean; 0: 300 */
    int alarm_hold_seconds;
} arc_writer_config_t;

/* Live status of a writer, for logs and status output. */
typedef struct {
    int64_t segments_written;
    int64_t write_errors;
    int64_t bytes_written;
    int last_error; /* VG_E* of the last failure, 0 if none */
    int64_t last_segment_wall_us; /* when the last segment was committed; 0: never */
    /* Alarms held in memory (the index may be what fails). */
    int index_failing;      /* index_write_failed: rows wait for the index */
    int io_error_active;    /* storage_io_error: until a later segment finishes cleanly,
                             * at least alarm_hold_seconds after the last error */
    int64_t io_errors;      /* write/fsync/rename/dir-fsync failures reported by the disk */
    int64_t unverified_segments; /* rows committed marked unverified */
    int finish_queue;       /* closed segments not yet durable */
    int commit_queue;       /* durable segments waiting for their row */
    int64_t rows_left_to_reconcile; /* rows beyond the queue's bound: files kept */
} arc_writer_stats_t;

int arc_writer_open(const arc_writer_config_t *cfg, arc_writer_t **out);
/* Starts a new upstream connection with these streams (copied). Any open
 * segment is finalized first: a reconnect is a gap, never a broken file. */
int arc_writer_begin(arc_writer_t *w, AVStream *const *streams, unsigned n_streams);
/* Writes one packet (not taken over: the caller keeps its reference) received
 * at recv_wall_us. Rotates at the first keyframe after segment_seconds.
 * Returns 0, or an error after which the writer retries on later packets. */
int arc_writer_write(arc_writer_t *w, const AVPacket *pkt, int64_t recv_wall_us);
/* Ends the connection: finalizes the open segment, if any, and waits until
 * the finisher has made it durable and the committer has tried its row (the
 * row may still wait for a failing index; it is retried in order). */
int arc_writer_end(arc_writer_t *w);
/* Waits as arc_writer_end does, without ending anything (tests). */
void arc_writer_flush(arc_writer_t *w);
/* A consistent copy of the counters; safe from any thread. */
void arc_writer_stats(arc_writer_t *w, arc_writer_stats_t *out);
/* Retention's brake (any thread): paused, the open segment is finalized and
 * packets are dropped until resumed. */
void arc_writer_set_paused(arc_writer_t *w, int paused);
/* Bytes of the segment being written (any thread): they count as used. */
int64_t arc_writer_open_bytes(const arc_writer_t *w);
/* Finalizes and frees. Rows the index still refuses are left to reconcile at
 * the next start (their files stay). NULL is fine. */
void arc_writer_close(arc_writer_t *w);

/* Everything the index needs about a finished file, read back from disk. */
typedef struct {
    int64_t start_us; /* from the file name */
    int64_t media_us;
    int64_t bytes;
    int64_t init_bytes;
    char sha256[65];
    char codecs[64];
} arc_file_info_t;

/* Makes a file left behind by a crash whole: truncates it after its last
 * complete fragment and reads its info. Returns VG_ECORRUPT when not even one
 * fragment is complete (the caller removes it). path is absolute. */
int arc_recover_file(const char *path, arc_file_info_t *info);
/* Parses "<start_us>.<ext>" file names; returns 0 or VG_EINVAL. */
int arc_parse_segment_name(const char *file_name, int64_t *start_us);

/* SHA-256 of a file as lowercase hex. */
int arc_hash_file(const char *path, char hex[65]);
/* 1 when a writer currently holds the file (an open segment), else 0. */
int arc_file_in_progress(const char *path);

/* Calls fn for every segment-looking file under DATA_DIR/media with its path
 * relative to data_dir. Stops early when fn returns non-zero (that value is
 * returned). */
typedef int (*arc_scan_fn)(void *ctx, const char *rel_path);
int arc_scan_media(const char *data_dir, arc_scan_fn fn, void *ctx);

/* Writes one file covering [from_us, to_us) from the given segments (ordered
 * by start), remuxed without re-encoding, starting at the keyframe at or
 * before from_us. The container follows the output name (.mp4, .mov, .mkv,
 * .mka, .wav). Gaps between segments stay gaps in the timestamps. err gets a
 * reason on failure. */
int arc_export(const char *data_dir, const idx_segment_t *segs, size_t n_segs, int64_t from_us,
               int64_t to_us, const char *out_path, char *err, size_t err_size);

/* arc_export for a job that may be stopped and wants to know what it got. */
typedef struct {
    const int *stop;   /* read atomically between packets; non-zero: VG_ESTOPPED */
    int64_t first_us;  /* out: wall time of the first packet written (0: none) */
    int64_t last_us;   /* out: wall time of the end of the last packet written */
    /* out: how many of segs (from the first) the file was made from; when
     * the source's streams changed inside the range, the file ends there and
     * cut_us is the start of the first segment left out (else 0) */
    size_t segs_used;
    int64_t cut_us;
    /* Called after each segment with the bytes written so far (may be NULL). */
    void (*progress)(void *ctx, int64_t bytes);
    void *ctx;
} arc_export_opts_t;
int arc_export_ex(const char *data_dir, const idx_segment_t *segs, size_t n_segs,
                  int64_t from_us, int64_t to_us, const char *out_path, arc_export_opts_t *opts,
                  char *err, size_t err_size);



/* ---- the fragment table of a stored file (archive/frags.c) ---- */

/* One fragment: a moof and its mdat, the unit HLS addresses by byte range. */
typedef struct {
    int64_t offset, size; /* bytes of the file */
    int64_t start_us;     /* media time from the segment's start */
    int64_t dur_us;
    int key;              /* starts on a keyframe (audio: always) */
} arc_frag_t;

/* More fragments than this in one file: refused (a 60 s segment has ~30). */
#define ARC_FRAGS_MAX 100000

/* Packs a fragment table into the blob the index stores (format at the top
 * of archive/frags.c); *out is malloc'd. VG_EINVAL for overlapping or empty
 * fragments. */
int arc_frags_encode(const arc_frag_t *f, size_t n, uint8_t **out, size_t *len);
/* Unpacks a blob; VG_ECORRUPT for anything that is not one (never reads
 * past len). *out is malloc'd (NULL when *n is 0). */
int arc_frags_decode(const uint8_t *blob, size_t len, arc_frag_t **out, size_t *n);
/* Reads the fragment table of a stored file from its top-level boxes (moov,
 * then each moof's tfdt/trun and the mdat after it): a few small reads per
 * fragment. A truncated or foreign file is VG_ECORRUPT, never a crash or an
 * endless loop. *init_bytes (may be NULL) gets the size of ftyp + moov. */
int arc_frags_scan(int fd, int64_t file_size, int64_t *init_bytes, arc_frag_t **out, size_t *n);
/* In an init part (ftyp + moov), the offset of an 'hev1' sample entry's type
 * whose hvcC holds a VPS, SPS and PPS, so it may be relabelled 'hvc1' in
 * place (browsers decode only hvc1). VG_ENOTFOUND when there is none. */
int arc_init_hev1_at(const uint8_t *init, size_t len, size_t *at);

/* ---- index and disk agreement (DESIGN.md invariant 1) ---- */

typedef enum {
    ARC_ROW_WITHOUT_FILE,  /* a row points at a missing file */
    ARC_SIZE_MISMATCH,     /* file size differs from the row */
    ARC_HASH_MISMATCH,     /* deep check: content differs from the row's sha256 */
    ARC_FILE_WITHOUT_ROW,  /* a finished-looking file nobody indexed */
    ARC_UNVERIFIED,        /* its row is marked unverified (an I/O error while written) */
    ARC_UNREADABLE,        /* cannot be stat'ed, listed, opened or read (not ENOENT): kept */
} arc_problem_t;
#define ARC_PROBLEM_KINDS 6

/* What a pass looked at (figures for logs, tests and benchmarks). */
typedef struct {
    int64_t rows_checked;
    int64_t files_checked; /* files whose row was looked up (by name: no stat before) */
    int64_t recovered;     /* files without a row that became rows */
    int64_t removed;       /* files without a row and nothing playable: removed */
} arc_reconcile_counts_t;

typedef struct {
    int deep;   /* re-hash every file */
    int repair; /* vigild at startup: fix what can be fixed (see arc_reconcile) */
    /* > 0: vigild's startup scope. Per source, only rows and files starting at
     * or after (its newest row's start - recent_us); older ones are not even
     * stat'ed. 0: everything (vigilctl check). */
    int64_t recent_us;
    arc_reconcile_counts_t *counts; /* filled when not NULL */
    /* Called for each disagreement found (before any repair). */
    void (*report)(void *ctx, arc_problem_t problem, const char *rel_path, const char *detail);
    void *ctx;
} arc_reconcile_opts_t;

/* Compares the index with the files under DATA_DIR/media. With repair: rows
 * whose file is gone (ENOENT, nothing else) are dropped, and files without a
 * row are cut to their last complete fragment and indexed (or removed when
 * nothing in them plays); what cannot be read is kept, reported as
 * ARC_UNREADABLE and raises the segment_unreadable alarm (cleared by a
 * repairing pass that finds none). Files a writer is still holding are
 * skipped. Sets *problems to the number found; an error is returned only
 * when the index itself fails. */
int arc_reconcile(const char *data_dir, idx_t *idx, const arc_reconcile_opts_t *opts,
                  int *problems);

/* ---- the archive's identity (a missing disk is not an empty archive) ---- */

#define ARC_MARKER ".vigil-archive"

/* vigild at startup, before anything is written to data_dir. A missing or
 * empty data_dir is initialised (marker data_dir/.vigil-archive with a random
 * id, the same id in index.db) unless state_dir (a directory outside
 * data_dir, may be NULL) remembers an archive: then the disk is missing and
 * the start is refused. An existing archive must have its marker, with the
 * index's id (and state_dir's); one from before markers is adopted. Anything
 * else (a non-empty directory with no archive, a missing index, ids that
 * disagree) is refused: err says why and what to do. *initialised tells
 * whether a new archive was created. */
int arc_claim_data_dir(const char *data_dir, const char *state_dir, int64_t now_us, char *err,
                       size_t err_size, int *initialised);

/* Removes a segment file and makes the removal durable (directory fsync);
 * an already missing file is fine. An emptied day directory goes too. */
int arc_remove_segment_file(const char *data_dir, const char *rel_path);
/* The same for many files, with one fsync per directory instead of one per
 * file. errs[i] is 0 when file i is gone for good (or was already), else the
 * errno that kept it (its unlink, or its directory's fsync); a failure never
 * stops the others. Returns VG_EIO when any errs[i] is set. */
int arc_remove_segment_files(const char *data_dir, const idx_segment_t *segs, size_t n,
                             int *errs);

#endif
