/* Shared by the files of index/ only: the connection struct and the helpers
 * every statement needs. */
#ifndef IDX_INDEX_PRIVATE_H
#define IDX_INDEX_PRIVATE_H

#include <sqlite3.h>

#include "index/index.h"

/* Columns every segment-returning statement selects, in row_to_segment order. */
#define IDX_SEG_COLUMNS                                                              \
    "g.id, s.name, g.start_us, g.end_us, g.media_us, g.bytes, g.sha256, g.codecs, " \
    "g.init_bytes, g.path, g.unverified"

/* Statements of the other index/ files, prepared on first use. */
#define IDX_MAX_LAZY 80

/* Each file's lazy slots start at its own base so their enums never collide:
 * retention.c uses 0.., accounts.c IDX_LAZY_ACCOUNTS.., audit.c IDX_LAZY_AUDIT.. */
#define IDX_LAZY_ACCOUNTS 24
#define IDX_LAZY_AUDIT 56
#define IDX_LAZY_FRAGS 64 /* frags.c */
#define IDX_LAZY_CALLS 72 /* calls.c: the PBX event path */

/* How long a statement waits for another connection's lock. */
#define IDX_BUSY_TIMEOUT_MS 5000
/* A WAL that grew (a burst of writes, a long read) is cut back to this when
 * it starts over. */
#define IDX_WAL_LIMIT_BYTES (64 * 1024 * 1024)

/* Statements of index.c, prepared when the connection opens. */
#define IDX_MAX_CORE 16

struct idx {
    sqlite3 *db;
    int readonly;
    char *path; /* for log lines */
    sqlite3_stmt *st[IDX_MAX_CORE];
    sqlite3_stmt *lazy[IDX_MAX_LAZY];
};

/* Logs the connection's current error with context; returns a VG_E* code. */
int idx_priv_db_fail(const idx_t *idx, int rc, const char *what);
void idx_priv_stmt_done(sqlite3_stmt *st);
int idx_priv_bind_text(idx_t *idx, sqlite3_stmt *st, int col, const char *text);
int idx_priv_bind_i64(idx_t *idx, sqlite3_stmt *st, int col, int64_t v);
int idx_priv_collect_segments(idx_t *idx, sqlite3_stmt *st, const char *what,
                              idx_segment_t **out, size_t *n);
/* Reads the SEG_COLUMNS at the head of a row (for statements that select
 * more after them). */
int idx_priv_row_to_segment(const idx_t *idx, sqlite3_stmt *st, idx_segment_t *seg);
/* Steps st to the end, reading each row into a new elem_size item of a
 * malloc'd array with fill (which clears and fills one item). On failure the
 * array is freed: *out NULL, *n 0. st is reset either way. */
typedef void (*idx_row_fill_t)(sqlite3_stmt *st, void *item);
int idx_priv_collect_rows(idx_t *idx, sqlite3_stmt *st, const char *what, size_t elem_size,
                          idx_row_fill_t fill, void **out, size_t *n);
/* For functions that change several rows: begins a transaction, or joins
 * the caller's (idx_audited_change) when one is open; *owned tells which.
 * idx_priv_end commits or rolls back (by ret) only what it owns, and
 * returns ret or the commit's error. */
int idx_priv_begin(idx_t *idx, int *owned);
int idx_priv_end(idx_t *idx, int owned, int ret);
/* The lazily prepared statement number slot (one fixed SQL text per slot). */
sqlite3_stmt *idx_priv_lazy(idx_t *idx, int slot, const char *sql);

#endif
