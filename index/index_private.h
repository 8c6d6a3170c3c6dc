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
#define IDX_MAX_LAZY 100

/* Each file's lazy slots start at its own base so their enums never collide:
 * retention.c uses 0.., accounts.c IDX_LAZY_ACCOUNTS.., audit.c IDX_LAZY_AUDIT.. */
#define IDX_LAZY_ACCOUNTS 24
#define IDX_LAZY_AUDIT 56
#define IDX_LAZY_FRAGS 64 /* frags.c */
#define IDX_LAZY_CALLS 72 /* calls.c: the PBX event path */
#define IDX_LAZY_SPANS 80 /* spans.c */
#define IDX_LAZY_INDEX 96 /* index.c */

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
    int busy_ms;          /* how long a statement waits for a lock (idx_priv_busy) */
    int64_t busy_since;   /* monotonic µs of the current wait's first try */
    char *path; /* for log lines */
    sqlite3_stmt *st[IDX_MAX_CORE];
    sqlite3_stmt *lazy[IDX_MAX_LAZY];
};

/* How long statements of this connection wait for a lock held by another
 * (ms > 0). Waits poll every 0.5-2 ms instead of SQLite's default back-off
 * (which sleeps up to 100 ms a try), so a writer that commits in batches
 * and leaves a few ms between them (the CDR import) lets waiting writers
 * in: with SQLite's own handler they almost never landed in the gap. */
void idx_priv_busy(idx_t *idx, int ms);
/* Logs the connection's current error with context; returns a VG_E* code. */
int idx_priv_db_fail(const idx_t *idx, int rc, const char *what);
/* Steps a prepared EXPLAIN QUERY PLAN statement into out, one detail line
 * each ending in a newline, and finalizes it. VG_EINVAL when out is too
 * small (what fits is there). */
int idx_priv_plan_text(idx_t *idx, sqlite3_stmt *st, char *out, size_t out_size,
                       const char *what);
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

/* Rebuilds the spans of every dirty source inside the open transaction
 * (the v19 migration). */
int idx_priv_spans_rebuild_dirty(idx_t *idx, int *rebuilt);

/* ---- the announcement rollup (schema v18, index/qa.c) ---- */

/* The effective announcement state of call row R: the detector's verdict
 * when it decided, else the PBX flag, else unknown. */
#define IDX_ANN_STATE(R)                                                                     \
    "(CASE WHEN " R ".ann_state IN ('present','absent','partial') THEN " R ".ann_state"      \
    " WHEN " R ".ann_pbx = 1 THEN 'present' WHEN " R ".ann_pbx = 0 THEN 'absent'"            \
    " ELSE 'unknown' END)"
/* The office day (days since 1970-01-01 in the office zone) of the time T
 * (us). Integer division truncates here as in C, where index/qa.c computes
 * the same day (ann_office_day): the two must agree to the second. */
#define IDX_ANN_DAY(T)                                                                       \
    "(((" T ") / 1000000 + coalesce((SELECT z.off_s FROM ann_zone z WHERE z.from_s <= ("   \
    T ") / 1000000 ORDER BY z.from_s DESC LIMIT 1), 0)) / 86400)"
/* Adds the call row R's counts times S to its five ann_day rows (line
 * total; queue and agent per line and for all lines); "WHERE 1" so that a
 * caller can add conditions and the upsert parses. */
#define IDX_ANN_ADD(R, S)                                                                    \
    "INSERT INTO ann_day(dim, source_id, day, value, calls, present, absent, partial,"       \
    " unknown) SELECT k.dim, k.sid, x.day, k.value, " S ", " S " * (x.a = 'present'), " S   \
    " * (x.a = 'absent'), " S " * (x.a = 'partial'), " S " * (x.a = 'unknown')"              \
    " FROM (SELECT " IDX_ANN_DAY(R ".start_us") " AS day, " IDX_ANN_STATE(R) " AS a) x,"   \
    " (SELECT 0 AS dim, " R ".source_id AS sid, '' AS value"                                 \
    " UNION ALL SELECT 1, " R ".source_id, " R ".queue UNION ALL SELECT 1, 0, " R ".queue"   \
    " UNION ALL SELECT 2, " R ".source_id, " R ".agent UNION ALL SELECT 2, 0, " R ".agent) k" \
    " WHERE 1"
#define IDX_ANN_UPSERT                                                                       \
    " ON CONFLICT (dim, source_id, day, value) DO UPDATE SET calls = calls + excluded.calls," \
    " present = present + excluded.present, absent = absent + excluded.absent,"             \
    " partial = partial + excluded.partial, unknown = unknown + excluded.unknown"
/* Drops R's rows that no call counts in any more (retention empties old
 * days: the table shrinks with the calls). */
#define IDX_ANN_DROP_ZERO(R)                                                                 \
    "DELETE FROM ann_day WHERE dim IN (0, 1, 2) AND source_id IN (" R ".source_id, 0)"      \
    " AND day = " IDX_ANN_DAY(R ".start_us") " AND value IN ('', " R ".queue, " R ".agent)" \
    " AND calls = 0"
/* Fills an empty ann_day from every ended call (the migration, and a new
 * office zone). */
#define IDX_ANN_FILL                                                                         \
    "INSERT INTO ann_day(dim, source_id, day, value, calls, present, absent, partial,"       \
    " unknown) SELECT k.dim, CASE WHEN k.per THEN x.source_id ELSE 0 END, x.day,"            \
    " CASE k.dim WHEN 0 THEN '' WHEN 1 THEN x.queue ELSE x.agent END, sum(x.n),"             \
    " sum(x.n * (x.a = 'present')), sum(x.n * (x.a = 'absent')),"                           \
    " sum(x.n * (x.a = 'partial')), sum(x.n * (x.a = 'unknown'))"                            \
    " FROM (SELECT " IDX_ANN_DAY("c.start_us") " AS day, c.source_id, c.queue, c.agent, "   \
    IDX_ANN_STATE("c") " AS a, count(*) AS n FROM call c WHERE c.end_us IS NOT NULL"         \
    " GROUP BY 1, 2, 3, 4, 5) x"                                                             \
    " CROSS JOIN (SELECT 0 AS dim, 1 AS per UNION ALL SELECT 1, 1 UNION ALL SELECT 1, 0"    \
    " UNION ALL SELECT 2, 1 UNION ALL SELECT 2, 0) k GROUP BY 1, 2, 3, 4"

#endif
