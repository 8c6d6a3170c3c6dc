/* The SQLite index: the only module that speaks SQL. One idx_t per thread
 * (SQLite connections are not shared between threads); WAL mode lets vigilctl
 * read while vigild writes. Schema versioned with PRAGMA user_version. */
#ifndef IDX_INDEX_H
#define IDX_INDEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct idx idx_t;

typedef struct {
    int64_t id;
    char source[64];
    int64_t start_us;   /* wall-clock UTC µs of the first frame */
    int64_t end_us;     /* start_us + media duration (drift-corrected, bounded) */
    int64_t media_us;   /* duration read from the stream timestamps */
    int64_t bytes;
    char sha256[65];    /* lowercase hex */
    char codecs[64];    /* e.g. "h264,pcm_alaw" */
    int64_t init_bytes; /* size of the init part (ftyp+moov), for HLS byte ranges */
    char path[256];     /* relative to data_dir */
} idx_segment_t;

/* Opens (creating if needed) the index at path and migrates it to the current
 * schema. readonly opens without creating or migrating (vigilctl queries). */
int idx_open(const char *path, int readonly, idx_t **out);
void idx_close(idx_t *idx);
/* Current schema version (PRAGMA user_version). */
int idx_schema_version(idx_t *idx);

/* Inserts a completed segment; fills seg->id. Caller guarantees the file is
 * complete and durable (DESIGN.md invariant 1). */
int idx_segment_insert(idx_t *idx, idx_segment_t *seg);
/* Segments of source overlapping [from_us, to_us), ordered by start. *out is
 * malloc'd (free it); *n may be 0. */
int idx_segments_in_range(idx_t *idx, const char *source, int64_t from_us, int64_t to_us,
                          idx_segment_t **out, size_t *n);
/* Every segment row (for check and recovery), ordered by source, start. */
int idx_segments_all(idx_t *idx, idx_segment_t **out, size_t *n);
/* Returns VG_OK with *found = 1 when a row has this relative path. */
int idx_segment_path_exists(idx_t *idx, const char *path, int *found);
int idx_segment_delete(idx_t *idx, int64_t id);
/* Whether the source has ever been known to the index (sources are registered
 * when vigild starts with them in its config). */
int idx_source_register(idx_t *idx, const char *source, const char *kind);
int idx_source_exists(idx_t *idx, const char *source, int *found);

/* Added with index.c. Explicit transactions: idx_begin takes the write lock
 * at once (BEGIN IMMEDIATE; a plain snapshot on a read-only idx_t), no
 * nesting (VG_EINVAL). Every idx_ call between begin and commit joins the
 * transaction. idx_rollback is a no-op outside a transaction, so cleanup
 * paths may call it unconditionally. */
int idx_begin(idx_t *idx);
int idx_commit(idx_t *idx);
int idx_rollback(idx_t *idx);
/* Notes on the functions above: idx_segments_in_range returns VG_ENOTFOUND
 * (with *n = 0) when the source was never registered; it and
 * idx_segments_all skip rows marked for deletion (two-phase delete), while
 * idx_segment_path_exists still sees them. idx_segment_insert returns
 * VG_EINVAL for a bad row (empty/unterminated strings, sha256 not 64 lowercase
 * hex, end < start, duplicate path). SQLite busy maps to VG_EBUSY, disk full
 * to VG_ENOSPC, anything else to VG_EDB. idx_segment_delete returns
 * VG_ENOTFOUND for an unknown id. */
/* Writes the EXPLAIN QUERY PLAN of the statement idx_segments_in_range runs
 * (one detail line per row) into out; for tests and benchmarks. */
int idx_explain_range(idx_t *idx, char *out, size_t out_size);

#endif
