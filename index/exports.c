/* Evidence export jobs: one row per requested bundle, its state and where
 * its zip is (playback/exporter.c runs them, web/ lists them). Statements
 * are prepared per call: they run a few times per job, never per packet. */
#include "index/index.h"
#include "index/index_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"

#define EXPORT_COLUMNS                                                                 \
    "id, owner, sources, from_us, to_us, case_no, reason, hold_id, state, progress, " \
    "bytes, error, created_us, finished_us, path, sha256, subject"

static void text_col(sqlite3_stmt *st, int col, char *dst, size_t size)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    snprintf(dst, size, "%s", v ? (const char *)v : "");
}

static void fill_export(sqlite3_stmt *st, void *item)
{
    idx_export_t *e = item;
    memset(e, 0, sizeof(*e));
    e->id = sqlite3_column_int64(st, 0);
    text_col(st, 1, e->owner, sizeof(e->owner));
    text_col(st, 2, e->sources, sizeof(e->sources));
    e->from_us = sqlite3_column_int64(st, 3);
    e->to_us = sqlite3_column_int64(st, 4);
    text_col(st, 5, e->case_no, sizeof(e->case_no));
    text_col(st, 6, e->reason, sizeof(e->reason));
    e->hold_id = sqlite3_column_int64(st, 7);
    text_col(st, 8, e->state, sizeof(e->state));
    e->progress = sqlite3_column_double(st, 9);
    e->bytes = sqlite3_column_int64(st, 10);
    text_col(st, 11, e->error, sizeof(e->error));
    e->created_us = sqlite3_column_int64(st, 12);
    e->finished_us = sqlite3_column_int64(st, 13);
    text_col(st, 14, e->path, sizeof(e->path));
    text_col(st, 15, e->sha256, sizeof(e->sha256));
    text_col(st, 16, e->subject, sizeof(e->subject));
}

static int prepare(idx_t *idx, const char *sql, const char *what, sqlite3_stmt **st)
{
    int rc = sqlite3_prepare_v2(idx->db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? VG_OK : idx_priv_db_fail(idx, rc, what);
}

/* Runs a statement that returns no rows; *changes gets the rows touched. */
static int run_done(idx_t *idx, sqlite3_stmt *st, const char *what, int *changes)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return idx_priv_db_fail(idx, rc, what);
    if (changes)
        *changes = sqlite3_changes(idx->db);
    return VG_OK;
}

int idx_export_add(idx_t *idx, idx_export_t *e)
{
    sqlite3_stmt *st = NULL;
    int ret = prepare(idx,
                      "INSERT INTO export (owner, sources, from_us, to_us, case_no, reason,"
                      " hold_id, state, created_us, subject) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,"
                      " 'queued', ?8, ?9)",
                      "prepare export insert", &st);
    if (ret != VG_OK)
        return ret;
    if ((ret = idx_priv_bind_text(idx, st, 1, e->owner)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 2, e->sources)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 3, e->from_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 4, e->to_us)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 5, e->case_no)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 6, e->reason)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 7, e->hold_id)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 8, e->created_us)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 9, e->subject)) != VG_OK)
        goto cleanup;
    if ((ret = run_done(idx, st, "insert export", NULL)) == VG_OK) {
        e->id = sqlite3_last_insert_rowid(idx->db);
        snprintf(e->state, sizeof(e->state), "queued");
    }

cleanup:
    sqlite3_finalize(st);
    return ret;
}

int idx_export_get(idx_t *idx, int64_t id, idx_export_t *out)
{
    sqlite3_stmt *st = NULL;
    int ret = prepare(idx, "SELECT " EXPORT_COLUMNS " FROM export WHERE id = ?1",
                      "prepare export get", &st);
    if (ret != VG_OK)
        return ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, id)) == VG_OK) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            fill_export(st, out);
        else
            ret = rc == SQLITE_DONE ? VG_ENOTFOUND : idx_priv_db_fail(idx, rc, "get export");
    }
    sqlite3_finalize(st);
    return ret;
}

int idx_export_list(idx_t *idx, const char *owner, idx_export_t **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    void *rows = NULL;
    *out = NULL;
    *n = 0;
    int ret = prepare(idx,
                      owner ? "SELECT " EXPORT_COLUMNS " FROM export WHERE owner = ?1"
                              " ORDER BY id DESC"
                            : "SELECT " EXPORT_COLUMNS " FROM export ORDER BY id DESC",
                      "prepare export list", &st);
    if (ret != VG_OK)
        return ret;
    if (owner && (ret = idx_priv_bind_text(idx, st, 1, owner)) != VG_OK)
        goto cleanup;
    ret = idx_priv_collect_rows(idx, st, "list exports", sizeof(**out), fill_export, &rows, n);
    *out = rows;

cleanup:
    sqlite3_finalize(st);
    return ret;
}

int idx_export_update(idx_t *idx, const idx_export_t *e)
{
    sqlite3_stmt *st = NULL;
    int changes = 0;
    int ret = prepare(idx,
                      "UPDATE export SET state = ?2, progress = ?3, bytes = ?4, error = ?5,"
                      " finished_us = ?6, path = ?7, sha256 = ?8 WHERE id = ?1",
                      "prepare export update", &st);
    if (ret != VG_OK)
        return ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, e->id)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 2, e->state)) != VG_OK ||
        sqlite3_bind_double(st, 3, e->progress) != SQLITE_OK ||
        (ret = idx_priv_bind_i64(idx, st, 4, e->bytes)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 5, e->error)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 6, e->finished_us)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 7, e->path)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 8, e->sha256)) != VG_OK) {
        ret = ret == VG_OK ? VG_EDB : ret;
        goto cleanup;
    }
    if ((ret = run_done(idx, st, "update export", &changes)) == VG_OK && changes == 0)
        ret = VG_ENOTFOUND;

cleanup:
    sqlite3_finalize(st);
    return ret;
}

int idx_export_delete(idx_t *idx, int64_t id)
{
    sqlite3_stmt *st = NULL;
    int changes = 0;
    int ret = prepare(idx, "DELETE FROM export WHERE id = ?1", "prepare export delete", &st);
    if (ret != VG_OK)
        return ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, id)) == VG_OK &&
        (ret = run_done(idx, st, "delete export", &changes)) == VG_OK && changes == 0)
        ret = VG_ENOTFOUND;
    sqlite3_finalize(st);
    return ret;
}

int idx_export_interrupt_all(idx_t *idx, const char *error, int64_t now_us, int *n)
{
    sqlite3_stmt *st = NULL;
    int ret = prepare(idx,
                      "UPDATE export SET state = 'failed', error = ?1, finished_us = ?2,"
                      " path = '', sha256 = '' WHERE state IN ('queued', 'running')",
                      "prepare export interrupt", &st);
    if (ret != VG_OK)
        return ret;
    if ((ret = idx_priv_bind_text(idx, st, 1, error)) == VG_OK &&
        (ret = idx_priv_bind_i64(idx, st, 2, now_us)) == VG_OK)
        ret = run_done(idx, st, "interrupt exports", n);
    sqlite3_finalize(st);
    return ret;
}

int idx_export_expired(idx_t *idx, int64_t before_us, idx_export_t **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    void *rows = NULL;
    *out = NULL;
    *n = 0;
    int ret = prepare(idx,
                      "SELECT " EXPORT_COLUMNS " FROM export WHERE state IN ('done', 'failed')"
                      " AND created_us < ?1 ORDER BY id",
                      "prepare expired exports", &st);
    if (ret != VG_OK)
        return ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, before_us)) == VG_OK) {
        ret = idx_priv_collect_rows(idx, st, "expired exports", sizeof(**out), fill_export,
                                    &rows, n);
        *out = rows;
    }
    sqlite3_finalize(st);
    return ret;
}

int idx_export_bytes(idx_t *idx, int64_t *bytes)
{
    sqlite3_stmt *st = NULL;
    *bytes = 0;
    int ret = prepare(idx, "SELECT COALESCE(SUM(bytes), 0) FROM export WHERE state = 'done'",
                      "prepare export bytes", &st);
    if (ret != VG_OK)
        return ret;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *bytes = sqlite3_column_int64(st, 0);
    else
        ret = idx_priv_db_fail(idx, rc, "export bytes");
    sqlite3_finalize(st);
    return ret;
}
