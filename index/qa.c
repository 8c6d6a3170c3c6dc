/* The SQL of call quality: QA forms (versioned by key), evaluations
 * (immutable rows chained by supersedes), the QA report, and the
 * announcement reports over the call table's ann_* columns. Statements are
 * prepared per call: these routes run on a person's click, not per packet,
 * so they take no lazy slots. The announcement report reads whole office
 * days from the rollup ann_day (schema v18, kept by triggers) and only the
 * partial days at the edges from the calls. What a form or an answer means is calls/qa.c's
 * business; here they are JSON text. */
#include "index/index.h"
#include "index/index_private.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/util.h"

#define FORM_COLUMNS "id, key, version, title, created_by, created_us, used, definition"
#define EVAL_COLUMNS                                                                         \
    "e.id, e.form_id, f.key, f.version, e.call_id, s.name, e.from_us, e.to_us, e.auditor, " \
    "e.agent, e.queue, e.answers, e.comments, e.score, e.critical_failed, e.version, "      \
    "e.supersedes, (SELECT x.id FROM qa_evaluation x WHERE x.supersedes = e.id), e.created_us"
#define EVAL_FROM                                                                       \
    " FROM qa_evaluation e JOIN qa_form f ON f.id = e.form_id"                           \
    " LEFT JOIN source s ON s.id = e.source_id"

static int prepare(idx_t *idx, const char *sql, sqlite3_stmt **st, const char *what)
{
    int rc = sqlite3_prepare_v2(idx->db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? VG_OK : idx_priv_db_fail(idx, rc, what);
}

static int exec(idx_t *idx, const char *sql, const char *what)
{
    int rc = sqlite3_exec(idx->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? VG_OK : idx_priv_db_fail(idx, rc, what);
}

static void col_text(sqlite3_stmt *st, int col, char *dst, size_t size)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    snprintf(dst, size, "%s", v ? (const char *)v : "");
}

static char *col_dup(sqlite3_stmt *st, int col)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    return vg_strdup(v ? (const char *)v : "");
}

/* ---- forms ---- */

void idx_qa_forms_free(idx_qa_form_t *f, size_t n)
{
    for (size_t i = 0; f && i < n; i++)
        free(f[i].definition);
    free(f);
}

/* Reads FORM_COLUMNS; the definition only when the statement selects it. */
static void fill_form(sqlite3_stmt *st, void *item)
{
    idx_qa_form_t *f = item;
    memset(f, 0, sizeof(*f));
    f->id = sqlite3_column_int64(st, 0);
    col_text(st, 1, f->key, sizeof(f->key));
    f->version = sqlite3_column_int(st, 2);
    col_text(st, 3, f->title, sizeof(f->title));
    col_text(st, 4, f->created_by, sizeof(f->created_by));
    f->created_us = sqlite3_column_int64(st, 5);
    f->used = sqlite3_column_int(st, 6);
    if (sqlite3_column_count(st) > 7)
        f->definition = col_dup(st, 7);
}

/* One form row of a statement with its parameters bound, or VG_ENOTFOUND. */
static int one_form(idx_t *idx, sqlite3_stmt *st, idx_qa_form_t *out)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        fill_form(st, out);
        return VG_OK;
    }
    return rc == SQLITE_DONE ? VG_ENOTFOUND : idx_priv_db_fail(idx, rc, "read qa form");
}

int idx_qa_form_get(idx_t *idx, int64_t id, idx_qa_form_t *out)
{
    sqlite3_stmt *st = NULL;
    int ret = prepare(idx, "SELECT " FORM_COLUMNS " FROM qa_form WHERE id = ?1", &st,
                      "prepare qa form");
    if (ret == VG_OK && (ret = idx_priv_bind_i64(idx, st, 1, id)) == VG_OK)
        ret = one_form(idx, st, out);
    sqlite3_finalize(st);
    return ret;
}

int idx_qa_form_latest(idx_t *idx, const char *key, idx_qa_form_t *out)
{
    sqlite3_stmt *st = NULL;
    int ret = prepare(idx,
                      "SELECT " FORM_COLUMNS " FROM qa_form WHERE key = ?1"
                      " ORDER BY version DESC LIMIT 1",
                      &st, "prepare qa form latest");
    if (ret == VG_OK && (ret = idx_priv_bind_text(idx, st, 1, key)) == VG_OK)
        ret = one_form(idx, st, out);
    sqlite3_finalize(st);
    return ret;
}

int idx_qa_form_versions(idx_t *idx, const char *key, idx_qa_form_t **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    *out = NULL;
    *n = 0;
    int ret = prepare(idx,
                      "SELECT " FORM_COLUMNS " FROM qa_form WHERE key = ?1 ORDER BY version DESC",
                      &st, "prepare qa form versions");
    if (ret == VG_OK && (ret = idx_priv_bind_text(idx, st, 1, key)) == VG_OK)
        ret = idx_priv_collect_rows(idx, st, "qa form versions", sizeof(**out), fill_form,
                                    (void **)out, n);
    sqlite3_finalize(st);
    return ret;
}

int idx_qa_form_list(idx_t *idx, idx_qa_form_t **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    *out = NULL;
    *n = 0;
    /* The definition is left out: a list of many forms stays small. */
    int ret = prepare(idx,
                      "SELECT id, key, version, title, created_by, created_us, used FROM qa_form f"
                      " WHERE version = (SELECT max(version) FROM qa_form g WHERE g.key = f.key)"
                      " ORDER BY key",
                      &st, "prepare qa form list");
    if (ret == VG_OK)
        ret = idx_priv_collect_rows(idx, st, "qa form list", sizeof(**out), fill_form,
                                    (void **)out, n);
    sqlite3_finalize(st);
    return ret;
}

static int form_write(idx_t *idx, const idx_qa_form_t *f, int64_t replace_id, int version,
                      int64_t *id)
{
    sqlite3_stmt *st = NULL;
    int ret = replace_id
                  ? prepare(idx,
                            "UPDATE qa_form SET title = ?2, definition = ?3, created_by = ?4,"
                            " created_us = ?5 WHERE id = ?1 AND used = 0",
                            &st, "prepare qa form update")
                  : prepare(idx,
                            "INSERT INTO qa_form(key, title, definition, created_by, created_us,"
                            " version) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                            &st, "prepare qa form insert");
    if (ret != VG_OK)
        return ret;
    if ((replace_id ? (ret = idx_priv_bind_i64(idx, st, 1, replace_id))
                    : (ret = idx_priv_bind_text(idx, st, 1, f->key))) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 2, f->title)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 3, f->definition)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 4, f->created_by)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 5, f->created_us)) != VG_OK ||
        (!replace_id && (ret = idx_priv_bind_i64(idx, st, 6, version)) != VG_OK))
        goto cleanup;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        ret = idx_priv_db_fail(idx, rc, "store qa form");
    else if (replace_id && sqlite3_changes(idx->db) != 1)
        ret = VG_EBUSY; /* used meanwhile: cannot happen inside the transaction */
    else
        *id = replace_id ? replace_id : sqlite3_last_insert_rowid(idx->db);

cleanup:
    sqlite3_finalize(st);
    return ret;
}

int idx_qa_form_put(idx_t *idx, idx_qa_form_t *f, int must_be_new, int must_exist, int *added)
{
    int owned = 0;
    idx_qa_form_t last = {0};
    int ret = idx_priv_begin(idx, &owned);
    *added = 0;
    if (ret != VG_OK)
        return ret;
    /* Read and written in one transaction: two editors at once cannot both
     * replace an unused version or both add the same next one. */
    ret = idx_qa_form_latest(idx, f->key, &last);
    if (ret == VG_ENOTFOUND) {
        if (must_exist)
            goto cleanup;
        f->version = 1;
        *added = 1;
        ret = form_write(idx, f, 0, 1, &f->id);
    } else if (ret == VG_OK) {
        if (must_be_new) {
            ret = VG_EEXIST;
            goto cleanup;
        }
        if (last.used) {
            f->version = last.version + 1;
            *added = 1;
            ret = form_write(idx, f, 0, f->version, &f->id);
        } else {
            f->version = last.version;
            ret = form_write(idx, f, last.id, last.version, &f->id);
        }
    }

cleanup:
    free(last.definition);
    return idx_priv_end(idx, owned, ret);
}

/* ---- evaluations ---- */

void idx_qa_evals_free(idx_qa_eval_t *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++) {
        free(e[i].answers);
        free(e[i].comments);
    }
    free(e);
}

static void fill_eval(sqlite3_stmt *st, void *item)
{
    idx_qa_eval_t *e = item;
    memset(e, 0, sizeof(*e));
    e->id = sqlite3_column_int64(st, 0);
    e->form_id = sqlite3_column_int64(st, 1);
    col_text(st, 2, e->form_key, sizeof(e->form_key));
    e->form_version = sqlite3_column_int(st, 3);
    e->call_id = sqlite3_column_int64(st, 4);
    col_text(st, 5, e->source, sizeof(e->source));
    e->from_us = sqlite3_column_int64(st, 6);
    e->to_us = sqlite3_column_int64(st, 7);
    col_text(st, 8, e->auditor, sizeof(e->auditor));
    col_text(st, 9, e->agent, sizeof(e->agent));
    col_text(st, 10, e->queue, sizeof(e->queue));
    e->answers = col_dup(st, 11);
    e->comments = col_dup(st, 12);
    e->score = sqlite3_column_double(st, 13);
    e->critical_failed = sqlite3_column_int(st, 14);
    e->version = sqlite3_column_int(st, 15);
    e->supersedes = sqlite3_column_int64(st, 16);
    e->superseded_by = sqlite3_column_int64(st, 17);
    e->created_us = sqlite3_column_int64(st, 18);
}

int idx_qa_eval_get(idx_t *idx, int64_t id, idx_qa_eval_t *out)
{
    sqlite3_stmt *st = NULL;
    int ret = prepare(idx, "SELECT " EVAL_COLUMNS EVAL_FROM " WHERE e.id = ?1", &st,
                      "prepare qa evaluation");
    if (ret != VG_OK)
        return ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, id)) == VG_OK) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            fill_eval(st, out);
        else
            ret = rc == SQLITE_DONE ? VG_ENOTFOUND
                                    : idx_priv_db_fail(idx, rc, "read qa evaluation");
    }
    sqlite3_finalize(st);
    return ret;
}

/* Runs a statement that changes one row; VG_ENOTFOUND when it changed none. */
static int change_one(idx_t *idx, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        return idx_priv_db_fail(idx, rc, what);
    return sqlite3_changes(idx->db) == 1 ? VG_OK : VG_ENOTFOUND;
}

int idx_qa_eval_add(idx_t *idx, idx_qa_eval_t *e)
{
    sqlite3_stmt *st = NULL, *mark = NULL;
    idx_qa_eval_t prev = {0};
    int owned = 0;
    int ret = idx_priv_begin(idx, &owned);
    if (ret != VG_OK)
        return ret;
    e->version = 1;
    if (e->supersedes) {
        if ((ret = idx_qa_eval_get(idx, e->supersedes, &prev)) != VG_OK)
            goto cleanup;
        if (prev.superseded_by) {
            ret = VG_EEXIST;
            goto cleanup;
        }
        e->version = prev.version + 1;
    }
    if ((ret = prepare(idx,
                       "INSERT INTO qa_evaluation(form_id, call_id, source_id, from_us, to_us,"
                       " auditor, agent, queue, answers, score, critical_failed, comments,"
                       " version, supersedes, created_us) VALUES (?1, NULLIF(?2, 0),"
                       " (SELECT id FROM source WHERE name = ?3), ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
                       " ?11, ?12, ?13, NULLIF(?14, 0), ?15)",
                       &st, "prepare qa evaluation insert")) != VG_OK ||
        (ret = prepare(idx, "UPDATE qa_form SET used = 1 WHERE id = ?1", &mark,
                       "prepare qa form used")) != VG_OK)
        goto cleanup;
    if ((ret = idx_priv_bind_i64(idx, st, 1, e->form_id)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 2, e->call_id)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 3, e->source)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 4, e->from_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 5, e->to_us)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 6, e->auditor)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 7, e->agent)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 8, e->queue)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 9, e->answers)) != VG_OK ||
        sqlite3_bind_double(st, 10, e->score) != SQLITE_OK ||
        (ret = idx_priv_bind_i64(idx, st, 11, e->critical_failed)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 12, e->comments)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 13, e->version)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 14, e->supersedes)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 15, e->created_us)) != VG_OK) {
        if (ret == VG_OK)
            ret = VG_EDB;
        goto cleanup;
    }
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        /* The unique index on supersedes: another correction won the race. */
        ret = rc == SQLITE_CONSTRAINT ? VG_EEXIST
                                      : idx_priv_db_fail(idx, rc, "insert qa evaluation");
        goto cleanup;
    }
    e->id = sqlite3_last_insert_rowid(idx->db);
    if ((ret = idx_priv_bind_i64(idx, mark, 1, e->form_id)) == VG_OK)
        ret = change_one(idx, mark, "mark qa form used");

cleanup:
    free(prev.answers);
    free(prev.comments);
    sqlite3_finalize(st);
    sqlite3_finalize(mark);
    return idx_priv_end(idx, owned, ret);
}

int idx_qa_eval_history(idx_t *idx, int64_t id, idx_qa_eval_t **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    *out = NULL;
    *n = 0;
    /* Back to the first version, then forward along supersedes: a chain, as
     * the unique index on supersedes allows one correction per row. */
    int ret = prepare(idx,
                      "WITH RECURSIVE back(id, sup) AS ("
                      "  SELECT id, supersedes FROM qa_evaluation WHERE id = ?1"
                      "  UNION ALL SELECT q.id, q.supersedes FROM qa_evaluation q"
                      "  JOIN back b ON q.id = b.sup),"
                      " root(id) AS (SELECT id FROM back WHERE sup IS NULL),"
                      " fwd(id) AS (SELECT id FROM root"
                      "  UNION ALL SELECT q.id FROM qa_evaluation q JOIN fwd ON q.supersedes = fwd.id)"
                      " SELECT " EVAL_COLUMNS EVAL_FROM " WHERE e.id IN (SELECT id FROM fwd)"
                      " ORDER BY e.version",
                      &st, "prepare qa evaluation history");
    if (ret == VG_OK && (ret = idx_priv_bind_i64(idx, st, 1, id)) == VG_OK)
        ret = idx_priv_collect_rows(idx, st, "qa evaluation history", sizeof(**out), fill_eval,
                                    (void **)out, n);
    sqlite3_finalize(st);
    if (ret == VG_OK && *n == 0)
        ret = VG_ENOTFOUND;
    return ret;
}

int idx_qa_eval_list(idx_t *idx, const idx_qa_eval_filter_t *f, idx_qa_eval_t **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    *out = NULL;
    *n = 0;
    /* Unset filters are bound as NULL and drop out of the condition. */
    int ret = prepare(idx,
                      "SELECT " EVAL_COLUMNS EVAL_FROM
                      " WHERE NOT EXISTS (SELECT 1 FROM qa_evaluation x WHERE x.supersedes = e.id)"
                      " AND (?1 = 0 OR e.call_id = ?1)"
                      " AND (?2 IS NULL OR s.name = ?2)"
                      " AND e.from_us < ?4 AND e.to_us > ?3"
                      " AND (?5 IS NULL OR e.auditor = ?5)"
                      " AND (?6 IS NULL OR e.agent = ?6)"
                      " AND (?7 = 0 OR e.id < ?7)"
                      " ORDER BY e.id DESC LIMIT ?8",
                      &st, "prepare qa evaluation list");
    if (ret != VG_OK)
        return ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, f->call_id)) != VG_OK ||
        (f->source && (ret = idx_priv_bind_text(idx, st, 2, f->source)) != VG_OK) ||
        (ret = idx_priv_bind_i64(idx, st, 3, f->from_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 4, f->to_us)) != VG_OK ||
        (f->auditor && (ret = idx_priv_bind_text(idx, st, 5, f->auditor)) != VG_OK) ||
        (f->agent && (ret = idx_priv_bind_text(idx, st, 6, f->agent)) != VG_OK) ||
        (ret = idx_priv_bind_i64(idx, st, 7, f->before_id)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 8, (int64_t)f->limit)) != VG_OK)
        goto cleanup;
    ret = idx_priv_collect_rows(idx, st, "qa evaluation list", sizeof(**out), fill_eval,
                                (void **)out, n);

cleanup:
    sqlite3_finalize(st);
    return ret;
}

int idx_qa_call_info(idx_t *idx, int64_t call_id, char source[64], int64_t *from_us,
                     int64_t *to_us, char agent[IDX_QA_NAME_MAX], char queue[IDX_QA_NAME_MAX])
{
    sqlite3_stmt *st = NULL;
    int ret = prepare(idx,
                      "SELECT s.name, c.start_us, c.end_us, c.agent, c.queue FROM call c"
                      " JOIN source s ON s.id = c.source_id"
                      " WHERE c.id = ?1 AND c.end_us IS NOT NULL",
                      &st, "prepare qa call");
    if (ret != VG_OK)
        return ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, call_id)) == VG_OK) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            col_text(st, 0, source, 64);
            *from_us = sqlite3_column_int64(st, 1);
            *to_us = sqlite3_column_int64(st, 2);
            col_text(st, 3, agent, IDX_QA_NAME_MAX);
            col_text(st, 4, queue, IDX_QA_NAME_MAX);
        } else {
            ret = rc == SQLITE_DONE ? VG_ENOTFOUND : idx_priv_db_fail(idx, rc, "read qa call");
        }
    }
    sqlite3_finalize(st);
    return ret;
}

/* ---- reports ---- */

static void fill_qa_row(sqlite3_stmt *st, void *item)
{
    idx_qa_report_row_t *r = item;
    memset(r, 0, sizeof(*r));
    col_text(st, 0, r->group, sizeof(r->group));
    r->count = sqlite3_column_int64(st, 1);
    r->mean = sqlite3_column_double(st, 2);
    for (int i = 0; i < IDX_QA_BUCKETS; i++)
        r->buckets[i] = sqlite3_column_int64(st, 3 + i);
    r->critical_failed = sqlite3_column_int64(st, 3 + IDX_QA_BUCKETS);
}

/* The steps every report shares: prepares sql, binds ?1 from, ?2 to, ?3
 * the group, ?4 the row limit, ?5 the sources (NULL: all) and ?6.. the
 * n_extra integers of extra, and collects at most IDX_REPORT_GROUPS_MAX
 * rows (the statement is asked for one more, so *cut tells when there were
 * more). */
static int run_report(idx_t *idx, const char *sql, const char *what, int64_t from_us,
                      int64_t to_us, const char *group, const char *sources,
                      const int64_t *extra, int n_extra, size_t size, idx_row_fill_t fill,
                      void **out, size_t *n, int *cut)
{
    sqlite3_stmt *st = NULL;
    *out = NULL;
    *n = 0;
    *cut = 0;
    int ret = prepare(idx, sql, &st, what);
    if (ret != VG_OK)
        return ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, from_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 2, to_us)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 3, group)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 4, IDX_REPORT_GROUPS_MAX + 1)) != VG_OK ||
        (sources && (ret = idx_priv_bind_text(idx, st, 5, sources)) != VG_OK))
        goto cleanup;
    for (int i = 0; i < n_extra; i++)
        if ((ret = idx_priv_bind_i64(idx, st, 6 + i, extra[i])) != VG_OK)
            goto cleanup;
    ret = idx_priv_collect_rows(idx, st, what, size, fill, out, n);
    *cut = ret == VG_OK && *n > IDX_REPORT_GROUPS_MAX;
    if (*cut)
        *n = IDX_REPORT_GROUPS_MAX;

cleanup:
    sqlite3_finalize(st);
    return ret;
}

int idx_qa_report(idx_t *idx, int64_t from_us, int64_t to_us, const char *group,
                  const char *sources, idx_qa_report_row_t **out, size_t *n, int *cut)
{
    /* The group names a fixed expression (no SQL built from input); scores
     * are shares, so a bucket is floor(score * 5) with 1.0 in the top one. */
    return run_report(idx,
                      "SELECT CASE ?3 WHEN 'agent' THEN e.agent WHEN 'queue' THEN e.queue"
                      "  WHEN 'form' THEN f.key ELSE e.auditor END AS g,"
                      " count(*), avg(e.score),"
                      " sum(e.score < 0.2), sum(e.score >= 0.2 AND e.score < 0.4),"
                      " sum(e.score >= 0.4 AND e.score < 0.6), sum(e.score >= 0.6 AND e.score < 0.8),"
                      " sum(e.score >= 0.8), sum(e.critical_failed <> 0)"
                      " FROM qa_evaluation e JOIN qa_form f ON f.id = e.form_id"
                      " LEFT JOIN source s ON s.id = e.source_id"
                      " WHERE e.from_us >= ?1 AND e.from_us < ?2"
                      " AND (?5 IS NULL OR instr(',' || ?5 || ',', ',' || s.name || ',') > 0)"
                      " AND NOT EXISTS (SELECT 1 FROM qa_evaluation x WHERE x.supersedes = e.id)"
                      " GROUP BY g ORDER BY g LIMIT ?4",
                      "qa report", from_us, to_us, group, sources, NULL, 0, sizeof(**out),
                      fill_qa_row, (void **)out, n, cut);
}

/* The effective announcement state of call c (see idx_ann_report). */
#define ANN_STATE IDX_ANN_STATE("c")

static void fill_ann_row(sqlite3_stmt *st, void *item)
{
    idx_ann_report_row_t *r = item;
    memset(r, 0, sizeof(*r));
    col_text(st, 0, r->group, sizeof(r->group));
    r->calls = sqlite3_column_int64(st, 1);
    r->present = sqlite3_column_int64(st, 2);
    r->absent = sqlite3_column_int64(st, 3);
    r->partial = sqlite3_column_int64(st, 4);
    r->unknown = sqlite3_column_int64(st, 5);
}

/* An office day's label (YYYY-MM-DD) from its number. */
#define ANN_DAY_LABEL(D) "strftime('%Y-%m-%d', (" D ") * 86400, 'unixepoch')"

/* The ended calls of [LO, HI) (parameters) as report rows: group, 1, and
 * the state as four 0/1 counts. */
#define ANN_SCAN(LO, HI)                                                                     \
    "SELECT g, 1 AS n, a = 'present' AS p, a = 'absent' AS ab, a = 'partial' AS pa,"       \
    " a = 'unknown' AS u FROM ("                                                             \
    "  SELECT CASE ?3 WHEN 'source' THEN s.name WHEN 'queue' THEN c.queue"                   \
    "   WHEN 'agent' THEN c.agent ELSE " ANN_DAY_LABEL(IDX_ANN_DAY("c.start_us")) " END AS g," \
    "  " ANN_STATE " AS a"                                                                   \
    "  FROM call c JOIN source s ON s.id = c.source_id"                                      \
    "  WHERE c.start_us >= " LO " AND c.start_us < " HI " AND c.end_us IS NOT NULL"          \
    "  AND (?5 IS NULL OR instr(',' || ?5 || ',', ',' || s.name || ',') > 0))"

/* Whole office days [?7, ?8) of dimension ?6 from ann_day, for the lines
 * in SIDS (a condition on r.source_id). */
#define ANN_ROLLUP(SIDS)                                                                     \
    "SELECT CASE ?3 WHEN 'source' THEN s.name WHEN 'day' THEN " ANN_DAY_LABEL("r.day")       \
    "  ELSE r.value END AS g, r.calls AS n, r.present AS p, r.absent AS ab,"                 \
    " r.partial AS pa, r.unknown AS u"                                                       \
    " FROM ann_day r LEFT JOIN source s ON s.id = r.source_id"                               \
    " WHERE r.dim = ?6 AND " SIDS " AND r.day >= ?7 AND r.day < ?8"

#define ANN_GROUPED(ROWS)                                                                    \
    "SELECT g, sum(n), sum(p), sum(ab), sum(pa), sum(u) FROM (" ROWS ")"                     \
    " GROUP BY g HAVING sum(n) > 0 ORDER BY g LIMIT ?4"

/* Through call_start (start_us DESC): one range scan of the period. The
 * brute-force answer the rollup must equal (tests), and the "before" of
 * bench/bench_reports.py. */
static const char ann_scan_sql[] = ANN_GROUPED(ANN_SCAN("?1", "?2"));

/* Queue or agent over all lines: the rows of source_id 0. */
static const char ann_rollup_all_sql[] =
    ANN_GROUPED(ANN_SCAN("?1", "?9") " UNION ALL " ANN_ROLLUP("r.source_id = 0")
                " UNION ALL " ANN_SCAN("?10", "?2"));
/* Per line (the source grouping and day totals, or an account's lines). */
static const char ann_rollup_lines_sql[] = ANN_GROUPED(
    ANN_SCAN("?1", "?9") " UNION ALL "
    ANN_ROLLUP("r.source_id IN (SELECT id FROM source WHERE ?5 IS NULL"
               " OR instr(',' || ?5 || ',', ',' || name || ',') > 0)")
    " UNION ALL " ANN_SCAN("?10", "?2"));

static atomic_int ann_scan_only;

void idx_ann_report_set_scan(int on)
{
    atomic_store(&ann_scan_only, on != 0);
}

/* ---- the office zone (ann_zone) ---- */

/* Offsets beyond this are not a real zone's (RFC 8536 keeps them within
 * about a day): they would break the day search below. */
#define ZONE_OFF_MAX (26 * 3600)
#define DAY_S 86400

typedef struct {
    idx_t *idx;
    sqlite3_stmt *st;
} zone_q_t;

static int zone_open(idx_t *idx, zone_q_t *z)
{
    z->idx = idx;
    z->st = NULL;
    return prepare(idx, "SELECT off_s FROM ann_zone WHERE from_s <= ?1 ORDER BY from_s DESC LIMIT 1",
                   &z->st, "prepare office zone");
}

/* The office day of t_s, as IDX_ANN_DAY computes it in SQL. */
static int office_day(zone_q_t *z, int64_t t_s, int64_t *day)
{
    int64_t off = 0;
    sqlite3_reset(z->st);
    int ret = idx_priv_bind_i64(z->idx, z->st, 1, t_s);
    if (ret != VG_OK)
        return ret;
    int rc = sqlite3_step(z->st);
    if (rc == SQLITE_ROW)
        off = sqlite3_column_int64(z->st, 0);
    else if (rc != SQLITE_DONE)
        return idx_priv_db_fail(z->idx, rc, "read office zone");
    *day = (t_s + off) / DAY_S;
    return VG_OK;
}

/* The first second of office day d: the smallest t whose day is d or
 * later. The day never goes back as t grows (a zone's clock steps back by
 * less than the hours since midnight), so a bisection over the +-3 days
 * around d's UTC midnight finds it. */
static int day_start(zone_q_t *z, int64_t d, int64_t *out)
{
    int64_t lo = d * DAY_S - 3 * DAY_S, hi = d * DAY_S + 3 * DAY_S;
    while (lo + 1 < hi) {
        int64_t mid = lo + (hi - lo) / 2, dm = 0;
        int ret = office_day(z, mid, &dm);
        if (ret != VG_OK)
            return ret;
        if (dm >= d)
            hi = mid;
        else
            lo = mid;
    }
    *out = hi;
    return VG_OK;
}

int idx_ann_day_start(idx_t *idx, int64_t t_us, int days_back, int64_t *out_us)
{
    zone_q_t z;
    int64_t d = 0, s = 0;
    int ret = zone_open(idx, &z);
    if (ret == VG_OK && (ret = office_day(&z, t_us / 1000000, &d)) == VG_OK &&
        (ret = day_start(&z, d - days_back, &s)) == VG_OK)
        *out_us = s * 1000000;
    sqlite3_finalize(z.st);
    return ret;
}

int idx_ann_zone_set(idx_t *idx, const char *name, int32_t first_off, const int64_t *at,
                     const int32_t *off, size_t n, int *rebuilt)
{
    sqlite3_stmt *st = NULL;
    int owned = 0;
    *rebuilt = 0;
    if (first_off < -ZONE_OFF_MAX || first_off > ZONE_OFF_MAX)
        return VG_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (off[i] < -ZONE_OFF_MAX || off[i] > ZONE_OFF_MAX || (i && at[i] <= at[i - 1]))
            return VG_EINVAL;
    int ret = idx_priv_begin(idx, &owned);
    if (ret != VG_OK)
        return ret;
    if ((ret = prepare(idx, "SELECT 1 FROM ann_zone_name WHERE name = ?1", &st,
                       "prepare office zone name")) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 1, name)) != VG_OK)
        goto cleanup;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        goto cleanup; /* the rollup's days are this zone's already */
    if (rc != SQLITE_DONE) {
        ret = idx_priv_db_fail(idx, rc, "read office zone name");
        goto cleanup;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((ret = exec(idx, "DELETE FROM ann_zone", "clear office zone")) != VG_OK ||
        (ret = prepare(idx, "INSERT INTO ann_zone(from_s, off_s) VALUES (?1, ?2)", &st,
                       "prepare office zone")) != VG_OK)
        goto cleanup;
    for (size_t i = 0; i <= n && ret == VG_OK; i++) {
        sqlite3_reset(st);
        if ((ret = idx_priv_bind_i64(idx, st, 1, i ? at[i - 1] : INT64_MIN)) == VG_OK &&
            (ret = idx_priv_bind_i64(idx, st, 2, i ? off[i - 1] : first_off)) == VG_OK &&
            (rc = sqlite3_step(st)) != SQLITE_DONE)
            ret = idx_priv_db_fail(idx, rc, "store office zone");
    }
    sqlite3_finalize(st);
    st = NULL;
    /* Every day boundary may have moved: the rollup is made again (a
     * minute at millions of calls, once per change of zone). */
    if (ret != VG_OK ||
        (ret = exec(idx, "DELETE FROM ann_day", "clear announcement rollup")) != VG_OK ||
        (ret = exec(idx, IDX_ANN_FILL, "fill announcement rollup")) != VG_OK ||
        (ret = prepare(idx, "UPDATE ann_zone_name SET name = ?1", &st,
                       "prepare office zone name")) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 1, name)) != VG_OK)
        goto cleanup;
    if ((rc = sqlite3_step(st)) != SQLITE_DONE)
        ret = idx_priv_db_fail(idx, rc, "store office zone name");
    else
        *rebuilt = 1;

cleanup:
    sqlite3_finalize(st);
    return idx_priv_end(idx, owned, ret);
}

/* Is there an ended call starting in [lo, hi)? */
static int any_call(idx_t *idx, int64_t lo_us, int64_t hi_us, int *any)
{
    sqlite3_stmt *st = NULL;
    *any = 0;
    if (lo_us >= hi_us)
        return VG_OK;
    int ret = prepare(idx,
                      "SELECT 1 FROM call WHERE start_us >= ?1 AND start_us < ?2"
                      " AND end_us IS NOT NULL LIMIT 1",
                      &st, "prepare announcement edge");
    if (ret == VG_OK && (ret = idx_priv_bind_i64(idx, st, 1, lo_us)) == VG_OK &&
        (ret = idx_priv_bind_i64(idx, st, 2, hi_us)) == VG_OK) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *any = 1;
        else if (rc != SQLITE_DONE)
            ret = idx_priv_db_fail(idx, rc, "read announcement edge");
    }
    sqlite3_finalize(st);
    return ret;
}

/* The split of [from, to) into whole office days [*da, *db) read from
 * ann_day and the edges [from, *a) and [*b, to) read from the calls. An
 * edge day whose part outside the period holds no call (today's, from now
 * on) is a whole day as far as the counts go: it comes from ann_day too. */
static int ann_split(idx_t *idx, int64_t from_us, int64_t to_us, int64_t *da, int64_t *db,
                     int64_t *a, int64_t *b)
{
    zone_q_t z;
    int64_t d0 = 0, d1 = 0, s0 = 0, s1 = 0, s = 0;
    int any = 0;
    *da = *db = 0;
    *a = *b = to_us;
    if (from_us < 0 || to_us <= from_us)
        return VG_OK; /* scanned: the truncating day arithmetic wants t >= 0 */
    int ret = zone_open(idx, &z);
    if (ret != VG_OK ||
        (ret = office_day(&z, from_us / 1000000, &d0)) != VG_OK ||
        (ret = day_start(&z, d0, &s0)) != VG_OK ||
        (ret = office_day(&z, to_us / 1000000, &d1)) != VG_OK ||
        (ret = day_start(&z, d1, &s1)) != VG_OK)
        goto cleanup;
    int64_t first = s0 * 1000000 >= from_us ? d0 : d0 + 1;
    /* the start edge: day d0 when nothing of it lies before from */
    if (first > d0 && (ret = any_call(idx, s0 * 1000000, from_us, &any)) == VG_OK && !any)
        first = d0;
    if (ret != VG_OK)
        goto cleanup;
    int64_t last = d1; /* exclusive; day d1 starts at s1 <= to */
    if ((ret = day_start(&z, d1 + 1, &s)) != VG_OK ||
        (s1 * 1000000 < to_us && (ret = any_call(idx, to_us, s * 1000000, &any)) != VG_OK))
        goto cleanup;
    if (s1 * 1000000 < to_us && !any)
        last = d1 + 1;
    if (first >= last)
        goto cleanup;
    *da = first;
    *db = last;
    if ((ret = day_start(&z, first, &s)) != VG_OK)
        goto cleanup;
    *a = s * 1000000 > from_us ? s * 1000000 : from_us;
    if ((ret = day_start(&z, last, &s)) != VG_OK)
        goto cleanup;
    *b = s * 1000000 < to_us ? s * 1000000 : to_us;

cleanup:
    sqlite3_finalize(z.st);
    return ret;
}

int idx_ann_report_scan(idx_t *idx, int64_t from_us, int64_t to_us, const char *group,
                        const char *sources, idx_ann_report_row_t **out, size_t *n, int *cut)
{
    return run_report(idx, ann_scan_sql, "announcement report", from_us, to_us, group, sources,
                      NULL, 0, sizeof(**out), fill_ann_row, (void **)out, n, cut);
}

int idx_ann_report(idx_t *idx, int64_t from_us, int64_t to_us, const char *group,
                   const char *sources, idx_ann_report_row_t **out, size_t *n, int *cut)
{
    int64_t da, db, a, b;
    int began = 0;
    *out = NULL;
    *n = 0;
    *cut = 0;
    if (strcmp(group, "source") && strcmp(group, "queue") && strcmp(group, "agent") &&
        strcmp(group, "day"))
        return VG_EINVAL;
    if (atomic_load(&ann_scan_only))
        return idx_ann_report_scan(idx, from_us, to_us, group, sources, out, n, cut);
    /* One read snapshot for the split and the report: a call ending
     * between the two would be counted twice or not at all. */
    if (sqlite3_get_autocommit(idx->db)) {
        int ret = exec(idx, "BEGIN", "begin announcement report");
        if (ret != VG_OK)
            return ret;
        began = 1;
    }
    int ret = ann_split(idx, from_us, to_us, &da, &db, &a, &b);
    if (ret == VG_OK) {
        int64_t dim = strcmp(group, "queue") == 0 ? 1 : strcmp(group, "agent") == 0 ? 2 : 0;
        int64_t extra[5] = {dim, da, db, a, b};
        ret = run_report(idx, dim && !sources ? ann_rollup_all_sql : ann_rollup_lines_sql,
                         "announcement report", from_us, to_us, group, sources, extra, 5,
                         sizeof(**out), fill_ann_row, (void **)out, n, cut);
    }
    if (began)
        sqlite3_exec(idx->db, "COMMIT", NULL, NULL, NULL);
    return ret;
}

static void fill_ann_call(sqlite3_stmt *st, void *item)
{
    idx_ann_call_t *c = item;
    memset(c, 0, sizeof(*c));
    c->id = sqlite3_column_int64(st, 0);
    col_text(st, 1, c->call_id, sizeof(c->call_id));
    col_text(st, 2, c->source, sizeof(c->source));
    c->start_us = sqlite3_column_int64(st, 3);
    c->end_us = sqlite3_column_int64(st, 4);
    col_text(st, 5, c->agent, sizeof(c->agent));
    col_text(st, 6, c->queue, sizeof(c->queue));
    col_text(st, 7, c->state, sizeof(c->state));
    col_text(st, 8, c->detected, sizeof(c->detected));
    c->pbx = sqlite3_column_type(st, 9) == SQLITE_NULL ? -1 : sqlite3_column_int(st, 9) != 0;
    c->score = sqlite3_column_double(st, 10);
    c->offset_us = sqlite3_column_type(st, 11) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 11);
}

int idx_ann_calls(idx_t *idx, char which, int64_t from_us, int64_t to_us, int64_t before_id,
                  size_t limit, idx_ann_call_t **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    *out = NULL;
    *n = 0;
    /* 'd': the detector decided and the PBX said otherwise; a partial
     * announcement counts as not played. */
    int ret = prepare(idx,
                      "SELECT * FROM (SELECT c.id, c.call_id, s.name, c.start_us, c.end_us,"
                      " c.agent, c.queue, " ANN_STATE " AS a, c.ann_state, c.ann_pbx,"
                      " c.ann_score, c.ann_offset_us"
                      " FROM call c JOIN source s ON s.id = c.source_id"
                      " WHERE c.start_us >= ?1 AND c.start_us < ?2 AND c.end_us IS NOT NULL"
                      " AND (?3 = 0 OR c.id < ?3)"
                      " AND (CASE ?4 WHEN 'm' THEN 1"
                      "  ELSE c.ann_state IN ('present','absent','partial') AND c.ann_pbx IS NOT NULL"
                      "  AND (c.ann_pbx <> 0) <> (c.ann_state = 'present') END))"
                      " WHERE ?4 <> 'm' OR a IN ('absent','partial')"
                      " ORDER BY id DESC LIMIT ?5",
                      &st, "prepare announcement calls");
    if (ret != VG_OK)
        return ret;
    char w[2] = {which, 0};
    if ((ret = idx_priv_bind_i64(idx, st, 1, from_us)) == VG_OK &&
        (ret = idx_priv_bind_i64(idx, st, 2, to_us)) == VG_OK &&
        (ret = idx_priv_bind_i64(idx, st, 3, before_id)) == VG_OK &&
        (ret = idx_priv_bind_text(idx, st, 4, w)) == VG_OK &&
        (ret = idx_priv_bind_i64(idx, st, 5, (int64_t)limit)) == VG_OK)
        ret = idx_priv_collect_rows(idx, st, "announcement calls", sizeof(**out), fill_ann_call,
                                    (void **)out, n);
    sqlite3_finalize(st);
    return ret;
}
