/* Retention SQL: expiry and disk-pressure candidates, the two-phase delete's
 * bookkeeping, holds, per-source figures, destruction records and alarms. */
#include "index/index.h"
#include "index/index_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define SEG_COLUMNS                                                                  \
    "g.id, s.name, g.start_us, g.end_us, g.media_us, g.bytes, g.sha256, g.codecs, " \
    "g.init_bytes, g.path"

/* A segment is held when it overlaps an active hold on its source. */
#define HELD_AT(now)                                                                 \
    "EXISTS (SELECT 1 FROM hold_source hs JOIN hold h ON h.id = hs.hold_id"          \
    " WHERE hs.source_id = g.source_id AND h.released_us IS NULL"                    \
    " AND (h.until_us IS NULL OR h.until_us > " now ")"                              \
    " AND h.from_us < g.end_us AND h.to_us > g.start_us)"

enum {
    L_EXPIRED,
    L_OLDEST,
    L_MARK,
    L_RUN_INSERT,
    L_RUN_TOTALS,
    L_RUN_SEGMENT,
    L_DELETING,
    L_DROP,
    L_HOLD_INSERT,
    L_HOLD_SOURCE,
    L_HOLD_LIST,
    L_HOLD_GET,
    L_HOLD_RELEASE,
    L_STATS,
    L_TOTAL,
    L_DLOG,
    L_DSEGS,
    L_ALARM_UPDATE,
    L_ALARM_INSERT,
    L_ALARM_CLEAR,
    L_ALARMS,
    L_NAMES,
    L_DELETE_FAILED,
    L_FAILURES,
    L_COUNT
};

_Static_assert(L_COUNT <= IDX_LAZY_ACCOUNTS, "retention.c lazy slots overlap accounts.c's");

static const char *const lazy_sql[L_COUNT] = {
    /* Walks (source_id, start_us) from the oldest: every row it visits is
     * expired, so a sweep with nothing to delete costs one index seek. */
    [L_EXPIRED] = "SELECT " SEG_COLUMNS " FROM source s JOIN segment g ON g.source_id = s.id"
                  " WHERE s.name = ?1 AND g.start_us <= ?2 AND g.end_us <= ?2"
                  " AND g.deleting = 0 AND NOT " HELD_AT("?3")
                  " ORDER BY g.start_us, g.id LIMIT ?4",
    [L_OLDEST] = "SELECT " SEG_COLUMNS " FROM segment g JOIN source s ON s.id = g.source_id"
                 " WHERE (g.start_us, g.id) > (?2, ?3) AND g.deleting = 0"
                 " AND NOT " HELD_AT("?1") " ORDER BY g.start_us, g.id LIMIT ?4",
    /* The plan was made outside this transaction: the hold and the floor
     * are checked again here, where the deletion is decided (invariant 3). */
    [L_MARK] = "UPDATE segment AS g SET deleting = 1 WHERE g.id = ?1 AND g.deleting = 0"
               " AND g.end_us <= ?2 AND NOT " HELD_AT("?3"),
    [L_RUN_INSERT] = "INSERT INTO destruction(at_us, reason, segments, bytes, from_us, to_us)"
                     " VALUES (?1, ?2, 0, 0, 0, 0)",
    [L_RUN_TOTALS] = "UPDATE destruction SET segments = ?2, bytes = ?3, from_us = ?4, to_us = ?5"
                     " WHERE id = ?1",
    [L_RUN_SEGMENT] = "INSERT INTO destruction_segment(destruction_id, segment_id, source,"
                      " start_us, end_us, bytes, sha256, path)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    /* Every sweep runs this. The unary + keeps the planner from walking the
     * whole table in rowid order to skip a sort: with it, the partial index
     * segment_deleting yields just the marked rows (usually none) and those
     * few are sorted. Without it, one sweep read all 8.6 M rows (~1.3 s). */
    [L_DELETING] = "SELECT " SEG_COLUMNS " FROM segment g JOIN source s ON s.id = g.source_id"
                   " WHERE g.deleting <> 0 AND g.delete_retry_us <= ?1 ORDER BY +g.id",
    [L_DROP] = "DELETE FROM segment WHERE id = ?1 AND deleting <> 0",
    [L_HOLD_INSERT] = "INSERT INTO hold(case_no, reason, created_by, created_us, from_us, to_us,"
                      " until_us) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [L_HOLD_SOURCE] = "INSERT INTO hold_source(hold_id, source_id)"
                      " SELECT ?1, id FROM source WHERE name = ?2",
    [L_HOLD_LIST] = "SELECT h.id, h.case_no, h.reason, h.created_by, h.created_us, h.from_us,"
                    " h.to_us, COALESCE(h.until_us, 0), COALESCE(h.released_us, 0),"
                    " COALESCE(h.released_by, ''), COALESCE(h.release_reason, ''),"
                    " (SELECT group_concat(s.name, ',') FROM hold_source hs"
                    "   JOIN source s ON s.id = hs.source_id WHERE hs.hold_id = h.id)"
                    " FROM hold h WHERE ?1 OR (h.released_us IS NULL"
                    "  AND (h.until_us IS NULL OR h.until_us > ?2))"
                    " ORDER BY h.id DESC",
    [L_HOLD_GET] = "SELECT h.id, h.case_no, h.reason, h.created_by, h.created_us, h.from_us,"
                   " h.to_us, COALESCE(h.until_us, 0), COALESCE(h.released_us, 0),"
                   " COALESCE(h.released_by, ''), COALESCE(h.release_reason, ''),"
                   " (SELECT group_concat(s.name, ',') FROM hold_source hs"
                   "   JOIN source s ON s.id = hs.source_id WHERE hs.hold_id = h.id)"
                   " FROM hold h WHERE h.id = ?1",
    [L_HOLD_RELEASE] = "UPDATE hold SET released_us = ?2, released_by = ?3, release_reason = ?4"
                       " WHERE id = ?1 AND released_us IS NULL",
    /* Every figure comes from an index seek per source: the oldest and newest
     * rows by (source_id, start_us), the recent window as a range on it, and
     * held bytes as one range per hold. */
    [L_STATS] = "SELECT s.name, s.kind, s.bytes,"
                /* ORDER BY + LIMIT, not MIN(): with the deleting filter MIN
                 * would visit every row of the source. */
                " (SELECT start_us FROM segment WHERE source_id = s.id AND deleting = 0"
                "   ORDER BY start_us LIMIT 1),"
                " (SELECT end_us FROM segment WHERE source_id = s.id AND deleting = 0"
                "   ORDER BY start_us DESC LIMIT 1),"
                /* the recent window, by the hour (see source_hour) */
                " (SELECT COALESCE(SUM(bytes), 0) FROM source_hour WHERE source_id = s.id"
                "   AND hour >= ?2 / 3600000000),"
                " (SELECT COALESCE(SUM(media_us), 0) FROM source_hour WHERE source_id = s.id"
                "   AND hour >= ?2 / 3600000000),"
                " (SELECT COALESCE(SUM(g.bytes), 0) FROM segment g WHERE g.source_id = s.id"
                "   AND g.deleting = 0 AND " HELD_AT("?1") " AND g.start_us < (SELECT MAX(h.to_us)"
                "   FROM hold h JOIN hold_source hs ON hs.hold_id = h.id WHERE hs.source_id = s.id"
                "   AND h.released_us IS NULL) AND g.start_us >= (SELECT MIN(h.from_us)"
                "   FROM hold h JOIN hold_source hs ON hs.hold_id = h.id WHERE hs.source_id = s.id"
                "   AND h.released_us IS NULL) - s.max_len_us),"
                " s.segments"
                " FROM source s ORDER BY s.name",
    [L_TOTAL] = "SELECT COALESCE(SUM(bytes), 0) FROM source",
    [L_DLOG] = "SELECT d.id, d.at_us, d.reason, ds.source, COUNT(*), SUM(ds.bytes),"
               " MIN(ds.start_us), MAX(ds.end_us)"
               " FROM destruction d JOIN destruction_segment ds ON ds.destruction_id = d.id"
               " WHERE d.at_us >= ?1 AND d.at_us < ?2"
               " GROUP BY d.id, ds.source ORDER BY d.id, ds.source",
    [L_DSEGS] = "SELECT segment_id, source, start_us, end_us, bytes, sha256"
                " FROM destruction_segment WHERE destruction_id = ?1 ORDER BY start_us",
    [L_ALARM_UPDATE] = "UPDATE alarm SET severity = ?2, sources = ?3, message = ?4"
                       " WHERE kind = ?1 AND cleared_us IS NULL",
    [L_ALARM_INSERT] = "INSERT INTO alarm(kind, severity, sources, message, raised_us)"
                       " VALUES (?1, ?2, ?3, ?4, ?5)",
    [L_ALARM_CLEAR] = "UPDATE alarm SET cleared_us = ?2 WHERE kind = ?1 AND cleared_us IS NULL",
    [L_NAMES] = "SELECT name FROM source ORDER BY name",
    [L_DELETE_FAILED] = "UPDATE segment SET delete_error = ?2, delete_retry_us = ?3"
                        " WHERE id = ?1 AND deleting <> 0",
    /* Through the partial index segment_deleting, like L_DELETING. */
    [L_FAILURES] = "SELECT " SEG_COLUMNS ", g.delete_error, g.delete_retry_us"
                   " FROM segment g JOIN source s ON s.id = g.source_id"
                   " WHERE g.deleting <> 0 AND g.delete_error IS NOT NULL ORDER BY +g.id",
    [L_ALARMS] = "SELECT id, kind, severity, sources, message, raised_us FROM alarm"
                 " WHERE cleared_us IS NULL ORDER BY raised_us",
};

static sqlite3_stmt *stmt(idx_t *idx, int slot)
{
    return idx_priv_lazy(idx, slot, lazy_sql[slot]);
}

/* Steps a statement that returns nothing we need; *changes gets the count. */
static int run(idx_t *idx, sqlite3_stmt *st, const char *what, int *changes)
{
    int rc = sqlite3_step(st);
    int ret = VG_OK;
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        ret = idx_priv_db_fail(idx, rc, what);
    if (changes)
        *changes = sqlite3_changes(idx->db);
    idx_priv_stmt_done(st);
    return ret;
}

static void copy_text(sqlite3_stmt *st, int col, char *dst, size_t size)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, size, "%s", t ? (const char *)t : "");
}

/* Row readers for idx_priv_collect_rows. */

static void fill_stats(sqlite3_stmt *st, void *item)
{
    idx_source_stats_t *s = item;
    memset(s, 0, sizeof(*s));
    copy_text(st, 0, s->source, sizeof(s->source));
    copy_text(st, 1, s->kind, sizeof(s->kind));
    s->bytes = sqlite3_column_int64(st, 2);
    s->oldest_us = sqlite3_column_int64(st, 3);
    s->newest_us = sqlite3_column_int64(st, 4);
    s->recent_bytes = sqlite3_column_int64(st, 5);
    s->recent_us = sqlite3_column_int64(st, 6);
    s->held_bytes = sqlite3_column_int64(st, 7);
    s->segments = sqlite3_column_int64(st, 8);
}

static void fill_destruction_row(sqlite3_stmt *st, void *item)
{
    idx_destruction_row_t *r = item;
    memset(r, 0, sizeof(*r));
    r->run_id = sqlite3_column_int64(st, 0);
    r->at_us = sqlite3_column_int64(st, 1);
    copy_text(st, 2, r->reason, sizeof(r->reason));
    copy_text(st, 3, r->source, sizeof(r->source));
    r->segments = sqlite3_column_int64(st, 4);
    r->bytes = sqlite3_column_int64(st, 5);
    r->from_us = sqlite3_column_int64(st, 6);
    r->to_us = sqlite3_column_int64(st, 7);
}

static void fill_destroyed(sqlite3_stmt *st, void *item)
{
    idx_destroyed_segment_t *d = item;
    memset(d, 0, sizeof(*d));
    d->segment_id = sqlite3_column_int64(st, 0);
    copy_text(st, 1, d->source, sizeof(d->source));
    d->start_us = sqlite3_column_int64(st, 2);
    d->end_us = sqlite3_column_int64(st, 3);
    d->bytes = sqlite3_column_int64(st, 4);
    copy_text(st, 5, d->sha256, sizeof(d->sha256));
}

static void fill_alarm(sqlite3_stmt *st, void *item)
{
    idx_alarm_t *a = item;
    memset(a, 0, sizeof(*a));
    a->id = sqlite3_column_int64(st, 0);
    copy_text(st, 1, a->kind, sizeof(a->kind));
    copy_text(st, 2, a->severity, sizeof(a->severity));
    copy_text(st, 3, a->sources, sizeof(a->sources));
    copy_text(st, 4, a->message, sizeof(a->message));
    a->raised_us = sqlite3_column_int64(st, 5);
}

static void fill_name(sqlite3_stmt *st, void *item)
{
    copy_text(st, 0, item, 64);
}

/* ---- candidates ---- */

int idx_expired_segments(idx_t *idx, const char *source, int64_t cutoff_us, int64_t now_us,
                         size_t limit, idx_segment_t **out, size_t *n)
{
    sqlite3_stmt *st = stmt(idx, L_EXPIRED);
    *out = NULL;
    *n = 0;
    if (!st)
        return VG_EDB;
    int ret;
    if ((ret = idx_priv_bind_text(idx, st, 1, source)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 2, cutoff_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 3, now_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 4, (int64_t)limit)) != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    return idx_priv_collect_segments(idx, st, "expired segments", out, n);
}

int idx_oldest_unheld(idx_t *idx, int64_t now_us, int64_t after_start_us, int64_t after_id,
                      size_t limit, idx_segment_t **out, size_t *n)
{
    sqlite3_stmt *st = stmt(idx, L_OLDEST);
    *out = NULL;
    *n = 0;
    if (!st)
        return VG_EDB;
    int ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, now_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 2, after_start_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 3, after_id)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 4, (int64_t)limit)) != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    return idx_priv_collect_segments(idx, st, "oldest segments", out, n);
}

/* ---- two-phase delete ---- */

static int record_segment(idx_t *idx, int64_t run_id, const idx_segment_t *g)
{
    sqlite3_stmt *st = stmt(idx, L_RUN_SEGMENT);
    if (!st)
        return VG_EDB;
    int ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, run_id)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 2, g->id)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 3, g->source)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 4, g->start_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 5, g->end_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 6, g->bytes)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 7, g->sha256)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 8, g->path)) != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    return run(idx, st, "record destroyed segment", NULL);
}

/* Marks one segment; *marked = 0 when someone else already did, or when a
 * hold or the floor now protects it. */
static int mark_one(idx_t *idx, int64_t run_id, const idx_segment_t *g, int64_t floor_end_us,
                    int64_t at_us, int *marked)
{
    sqlite3_stmt *st = stmt(idx, L_MARK);
    if (!st)
        return VG_EDB;
    int ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, g->id)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 2, floor_end_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 3, at_us)) != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    if ((ret = run(idx, st, "mark segment deleting", marked)) != VG_OK || !*marked)
        return ret;
    return record_segment(idx, run_id, g);
}

static int start_run(idx_t *idx, int64_t at_us, const char *reason, int64_t *run_id)
{
    sqlite3_stmt *st = stmt(idx, L_RUN_INSERT);
    if (!st)
        return VG_EDB;
    int ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, at_us)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 2, reason)) != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    ret = run(idx, st, "insert destruction record", NULL);
    *run_id = (int64_t)sqlite3_last_insert_rowid(idx->db);
    return ret;
}

static int finish_run(idx_t *idx, int64_t run_id, int64_t count, int64_t bytes, int64_t from,
                      int64_t to)
{
    sqlite3_stmt *st = stmt(idx, L_RUN_TOTALS);
    if (!st)
        return VG_EDB;
    int ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, run_id)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 2, count)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 3, bytes)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 4, from)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 5, to)) != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    return run(idx, st, "update destruction record", NULL);
}

/* Each destruction run is also an audit row (DESIGN.md invariant 6),
 * written in the run's own transaction so one never exists without the
 * other. */
static int audit_run(idx_t *idx, int64_t run_id, int64_t at_us, const char *reason,
                     int64_t count, int64_t bytes, int64_t from, int64_t to)
{
    idx_audit_t a = {0};
    a.ts_us = at_us;
    snprintf(a.actor, sizeof(a.actor), "system:retention");
    snprintf(a.ip, sizeof(a.ip), "local");
    snprintf(a.action, sizeof(a.action), "retention.destroy");
    snprintf(a.object, sizeof(a.object), "destruction:%" PRId64, run_id);
    a.from_us = from;
    a.to_us = to;
    snprintf(a.result, sizeof(a.result), "ok");
    snprintf(a.detail, sizeof(a.detail), "reason=%s segments=%" PRId64 " bytes=%" PRId64, reason,
             count, bytes);
    return idx_audit_append(idx, &a, 1);
}

int idx_record_destruction(idx_t *idx, int64_t at_us, const char *reason,
                           const idx_segment_t *segs, size_t n, int64_t floor_end_us,
                           unsigned char *marked_out, int64_t *run_id)
{
    *run_id = 0;
    if (marked_out)
        memset(marked_out, 0, n);
    if (n == 0)
        return VG_OK;
    int ret = idx_begin(idx);
    if (ret != VG_OK)
        return ret;
    int64_t id = 0, count = 0, bytes = 0, from = INT64_MAX, to = INT64_MIN;
    ret = start_run(idx, at_us, reason, &id);
    for (size_t i = 0; ret == VG_OK && i < n; i++) {
        int marked = 0;
        ret = mark_one(idx, id, &segs[i], floor_end_us, at_us, &marked);
        if (marked_out)
            marked_out[i] = (unsigned char)(ret == VG_OK && marked);
        if (ret == VG_OK && marked) {
            count++;
            bytes += segs[i].bytes;
            from = segs[i].start_us < from ? segs[i].start_us : from;
            to = segs[i].end_us > to ? segs[i].end_us : to;
        }
    }
    if (ret == VG_OK && count > 0)
        ret = finish_run(idx, id, count, bytes, from, to);
    if (ret == VG_OK && count > 0)
        ret = audit_run(idx, id, at_us, reason, count, bytes, from, to);
    if (ret != VG_OK || count == 0) {
        /* Nothing marked (all taken by a concurrent sweep, or now protected):
         * no empty record. */
        idx_rollback(idx);
        if (marked_out)
            memset(marked_out, 0, n);
        return ret;
    }
    ret = idx_commit(idx);
    if (ret == VG_OK)
        *run_id = id;
    else if (marked_out)
        memset(marked_out, 0, n);
    return ret;
}

int idx_deleting_segments(idx_t *idx, int64_t due_us, idx_segment_t **out, size_t *n)
{
    sqlite3_stmt *st = stmt(idx, L_DELETING);
    *out = NULL;
    *n = 0;
    if (!st)
        return VG_EDB;
    int ret = idx_priv_bind_i64(idx, st, 1, due_us);
    if (ret != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    return idx_priv_collect_segments(idx, st, "segments being deleted", out, n);
}

int idx_delete_failed(idx_t *idx, int64_t segment_id, const char *error, int64_t retry_us)
{
    sqlite3_stmt *st = stmt(idx, L_DELETE_FAILED);
    if (!st)
        return VG_EDB;
    int ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, segment_id)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 2, error)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 3, retry_us)) != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    return run(idx, st, "note failed deletion", NULL);
}

int idx_delete_failures(idx_t *idx, idx_delete_failure_t **out, size_t *n)
{
    sqlite3_stmt *st = stmt(idx, L_FAILURES);
    *out = NULL;
    *n = 0;
    if (!st)
        return VG_EDB;
    /* The segment columns come first, so the shared reader fills seg; the
     * two extra columns are read here. */
    size_t cap = 0;
    int rc, ret = VG_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            *out = vg_realloc(*out, cap * sizeof(**out));
        }
        idx_delete_failure_t *f = &(*out)[*n];
        memset(f, 0, sizeof(*f));
        if ((ret = idx_priv_row_to_segment(idx, st, &f->seg)) != VG_OK)
            break;
        copy_text(st, 10, f->error, sizeof(f->error));
        f->retry_us = sqlite3_column_int64(st, 11);
        (*n)++;
    }
    if (ret == VG_OK && rc != SQLITE_DONE)
        ret = idx_priv_db_fail(idx, rc, "failed deletions");
    idx_priv_stmt_done(st);
    if (ret != VG_OK) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return ret;
}

int idx_drop_deleted(idx_t *idx, const idx_segment_t *segs, size_t n)
{
    if (n == 0)
        return VG_OK;
    int ret = idx_begin(idx);
    for (size_t i = 0; ret == VG_OK && i < n; i++) {
        sqlite3_stmt *st = stmt(idx, L_DROP);
        if (!st) {
            ret = VG_EDB;
            break;
        }
        if ((ret = idx_priv_bind_i64(idx, st, 1, segs[i].id)) != VG_OK) {
            idx_priv_stmt_done(st);
            break;
        }
        ret = run(idx, st, "drop deleted segment", NULL);
    }
    if (ret != VG_OK) {
        idx_rollback(idx);
        return ret;
    }
    return idx_commit(idx);
}

/* ---- holds ---- */

static int insert_hold_source(idx_t *idx, int64_t hold_id, const char *source)
{
    sqlite3_stmt *st = stmt(idx, L_HOLD_SOURCE);
    if (!st)
        return VG_EDB;
    int ret, changes = 0;
    if ((ret = idx_priv_bind_i64(idx, st, 1, hold_id)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 2, source)) != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    ret = run(idx, st, "insert hold source", &changes);
    if (ret == VG_OK && changes == 0) {
        vg_err("index %s: hold: unknown source '%s'", idx->path, source);
        return VG_ENOTFOUND;
    }
    return ret;
}

static int insert_hold(idx_t *idx, idx_hold_t *h)
{
    sqlite3_stmt *st = stmt(idx, L_HOLD_INSERT);
    if (!st)
        return VG_EDB;
    int ret;
    if ((ret = idx_priv_bind_text(idx, st, 1, h->case_no)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 2, h->reason)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 3, h->created_by)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 4, h->created_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 5, h->from_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 6, h->to_us)) != VG_OK ||
        (ret = h->until_us ? idx_priv_bind_i64(idx, st, 7, h->until_us)
                           : (sqlite3_bind_null(st, 7), VG_OK)) != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    ret = run(idx, st, "insert hold", NULL);
    h->id = (int64_t)sqlite3_last_insert_rowid(idx->db);
    return ret;
}

int idx_hold_add(idx_t *idx, idx_hold_t *hold, const char *const *sources, size_t n)
{
    if (n == 0 || n > IDX_LIST_MAX || !hold->case_no[0] || !hold->reason[0] || hold->to_us <= hold->from_us)
        return VG_EINVAL;
    int owned = 0;
    int ret = idx_priv_begin(idx, &owned);
    if (ret == VG_OK)
        ret = insert_hold(idx, hold);
    for (size_t i = 0; ret == VG_OK && i < n; i++)
        ret = insert_hold_source(idx, hold->id, sources[i]);
    return idx_priv_end(idx, owned, ret);
}

static void row_to_hold(sqlite3_stmt *st, void *item)
{
    idx_hold_t *h = item;
    memset(h, 0, sizeof(*h));
    h->id = sqlite3_column_int64(st, 0);
    copy_text(st, 1, h->case_no, sizeof(h->case_no));
    copy_text(st, 2, h->reason, sizeof(h->reason));
    copy_text(st, 3, h->created_by, sizeof(h->created_by));
    h->created_us = sqlite3_column_int64(st, 4);
    h->from_us = sqlite3_column_int64(st, 5);
    h->to_us = sqlite3_column_int64(st, 6);
    h->until_us = sqlite3_column_int64(st, 7);
    h->released_us = sqlite3_column_int64(st, 8);
    copy_text(st, 9, h->released_by, sizeof(h->released_by));
    copy_text(st, 10, h->release_reason, sizeof(h->release_reason));
    copy_text(st, 11, h->sources, sizeof(h->sources));
}

int idx_hold_list(idx_t *idx, int all, int64_t now_us, idx_hold_t **out, size_t *n)
{
    sqlite3_stmt *st = stmt(idx, L_HOLD_LIST);
    *out = NULL;
    *n = 0;
    if (!st)
        return VG_EDB;
    sqlite3_bind_int(st, 1, all ? 1 : 0);
    sqlite3_bind_int64(st, 2, now_us);
    void *rows = NULL;
    int ret = idx_priv_collect_rows(idx, st, "list holds", sizeof(**out), row_to_hold, &rows, n);
    *out = rows;
    return ret;
}

int idx_hold_get(idx_t *idx, int64_t id, idx_hold_t *out)
{
    sqlite3_stmt *st = stmt(idx, L_HOLD_GET);
    if (!st)
        return VG_EDB;
    sqlite3_bind_int64(st, 1, id);
    int rc = sqlite3_step(st);
    int ret = VG_OK;
    if (rc == SQLITE_ROW)
        row_to_hold(st, out);
    else
        ret = rc == SQLITE_DONE ? VG_ENOTFOUND : idx_priv_db_fail(idx, rc, "get hold");
    idx_priv_stmt_done(st);
    return ret;
}

int idx_hold_release(idx_t *idx, int64_t id, const char *by, const char *reason, int64_t at_us)
{
    idx_hold_t h;
    int ret = idx_hold_get(idx, id, &h);
    if (ret != VG_OK)
        return ret;
    if (h.released_us)
        return VG_EINVAL;
    sqlite3_stmt *st = stmt(idx, L_HOLD_RELEASE);
    if (!st)
        return VG_EDB;
    if ((ret = idx_priv_bind_i64(idx, st, 1, id)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 2, at_us)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 3, by)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 4, reason)) != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    return run(idx, st, "release hold", NULL);
}

/* ---- figures ---- */

int idx_source_stats(idx_t *idx, int64_t now_us, int64_t window_us, idx_source_stats_t **out,
                     size_t *n)
{
    sqlite3_stmt *st = stmt(idx, L_STATS);
    *out = NULL;
    *n = 0;
    if (!st)
        return VG_EDB;
    sqlite3_bind_int64(st, 1, now_us);
    sqlite3_bind_int64(st, 2, now_us - window_us);
    void *rows = NULL;
    int ret = idx_priv_collect_rows(idx, st, "source figures", sizeof(**out), fill_stats, &rows, n);
    *out = rows;
    return ret;
}

int idx_total_bytes(idx_t *idx, int64_t *bytes)
{
    sqlite3_stmt *st = stmt(idx, L_TOTAL);
    if (!st)
        return VG_EDB;
    int rc = sqlite3_step(st);
    int ret = VG_OK;
    if (rc == SQLITE_ROW)
        *bytes = sqlite3_column_int64(st, 0);
    else
        ret = idx_priv_db_fail(idx, rc, "total bytes");
    idx_priv_stmt_done(st);
    return ret;
}

/* ---- destruction log ---- */

int idx_destruction_log(idx_t *idx, int64_t from_us, int64_t to_us, idx_destruction_row_t **out,
                        size_t *n)
{
    sqlite3_stmt *st = stmt(idx, L_DLOG);
    *out = NULL;
    *n = 0;
    if (!st)
        return VG_EDB;
    sqlite3_bind_int64(st, 1, from_us);
    sqlite3_bind_int64(st, 2, to_us);
    void *rows = NULL;
    int ret = idx_priv_collect_rows(idx, st, "destruction log", sizeof(**out), fill_destruction_row, &rows, n);
    *out = rows;
    return ret;
}

int idx_destruction_segments(idx_t *idx, int64_t run_id, idx_destroyed_segment_t **out,
                             size_t *n)
{
    sqlite3_stmt *st = stmt(idx, L_DSEGS);
    *out = NULL;
    *n = 0;
    if (!st)
        return VG_EDB;
    sqlite3_bind_int64(st, 1, run_id);
    void *rows = NULL;
    int ret = idx_priv_collect_rows(idx, st, "destroyed segments", sizeof(**out), fill_destroyed, &rows, n);
    *out = rows;
    return ret;
}

/* ---- alarms ---- */

static int bind_alarm(idx_t *idx, sqlite3_stmt *st, const char *kind, const char *severity,
                      const char *sources, const char *message)
{
    int ret;
    if ((ret = idx_priv_bind_text(idx, st, 1, kind)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 2, severity)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 3, sources)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 4, message)) != VG_OK)
        idx_priv_stmt_done(st);
    return ret;
}

int idx_alarm_raise(idx_t *idx, const char *kind, const char *severity, const char *sources,
                    const char *message, int64_t now_us)
{
    sqlite3_stmt *st = stmt(idx, L_ALARM_UPDATE);
    if (!st)
        return VG_EDB;
    int changes = 0;
    int ret = bind_alarm(idx, st, kind, severity, sources, message);
    if (ret == VG_OK)
        ret = run(idx, st, "update alarm", &changes);
    if (ret != VG_OK || changes > 0)
        return ret;
    st = stmt(idx, L_ALARM_INSERT);
    if (!st)
        return VG_EDB;
    if ((ret = bind_alarm(idx, st, kind, severity, sources, message)) != VG_OK)
        return ret;
    sqlite3_bind_int64(st, 5, now_us);
    return run(idx, st, "raise alarm", NULL);
}

int idx_alarm_clear(idx_t *idx, const char *kind, int64_t now_us, int *cleared)
{
    sqlite3_stmt *st = stmt(idx, L_ALARM_CLEAR);
    if (!st)
        return VG_EDB;
    int ret = idx_priv_bind_text(idx, st, 1, kind);
    if (ret != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    sqlite3_bind_int64(st, 2, now_us);
    int changes = 0;
    ret = run(idx, st, "clear alarm", &changes);
    if (cleared)
        *cleared = changes > 0;
    return ret;
}

int idx_alarms_active(idx_t *idx, idx_alarm_t **out, size_t *n)
{
    sqlite3_stmt *st = stmt(idx, L_ALARMS);
    *out = NULL;
    *n = 0;
    if (!st)
        return VG_EDB;
    void *rows = NULL;
    int ret = idx_priv_collect_rows(idx, st, "active alarms", sizeof(**out), fill_alarm, &rows, n);
    *out = rows;
    return ret;
}

int idx_source_names(idx_t *idx, char (**out)[64], size_t *n)
{
    sqlite3_stmt *st = stmt(idx, L_NAMES);
    *out = NULL;
    *n = 0;
    if (!st)
        return VG_EDB;
    void *rows = NULL;
    int ret = idx_priv_collect_rows(idx, st, "source names", sizeof(**out), fill_name, &rows, n);
    *out = rows;
    return ret;
}
