/* The timeline's recorded spans (table span, schema v19): answering a range
 * from a few span rows exactly as merging the range's segment rows would,
 * and rebuilding the spans of a source the triggers (index.c, v19) marked
 * dirty. The merge rule is here once: the rebuild and a dirty source's
 * answer (read from its rows, as before v19) both use it. */
#include "index/index_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

enum {
    S_SOURCE = IDX_LAZY_SPANS,
    S_FIRST,
    S_LAST,
    S_LIST,
    S_END_AT,
    S_ROWS,
    S_DIRTY,
    S_CLEAR,
    S_ALL_ROWS,
    S_INSERT,
    S_DONE,
    S_BEGIN,
    S_COMMIT,
    S_TABLE,
    S_CLEAN,
    S_END
};

_Static_assert(S_END <= IDX_LAZY_INDEX, "spans.c lazy slots overlap index.c's");

static const char *const lazy_sql[S_END - IDX_LAZY_SPANS] = {
#define SQL(slot) [(slot) - IDX_LAZY_SPANS]
    SQL(S_SOURCE) = "SELECT id, max_len_us, span_dirty FROM source WHERE name = ?1",
    /* The first live row overlapping [?2, ?3): rows starting before
     * ?2 - max_len end before ?2, so the walk is a few rows long. */
    SQL(S_FIRST) = "SELECT start_us, id FROM segment WHERE source_id = ?1"
                   " AND start_us >= ?2 - ?4 AND start_us < ?3 AND end_us > ?2 AND deleting = 0"
                   " ORDER BY start_us, id LIMIT 1",
    /* The last live row starting before ?2. */
    SQL(S_LAST) = "SELECT start_us, id FROM segment WHERE source_id = ?1 AND start_us < ?2"
                  " AND deleting = 0 ORDER BY start_us DESC, id DESC LIMIT 1",
    /* The spans holding the rows (?2, ?3) .. (?4, ?5): from the one that
     * holds the first, by key. */
    SQL(S_LIST) = "SELECT start_us, end_us, last_start, last_id, codecs, shadowed, first_id"
                  " FROM span WHERE source_id = ?1 AND (start_us, first_id) >="
                  " (SELECT start_us, first_id FROM span WHERE source_id = ?1"
                  "  AND (start_us, first_id) <= (?2, ?3)"
                  "  ORDER BY start_us DESC, first_id DESC LIMIT 1)"
                  " AND (start_us, first_id) <= (?4, ?5) ORDER BY start_us, first_id",
    /* The largest end of a span's rows up to (?4, ?5); rows starting more
     * than max_len (?6) before ?4 end before (?4, ?5)'s own end. */
    SQL(S_END_AT) = "SELECT max(end_us) FROM segment WHERE source_id = ?1 AND deleting = 0"
                    " AND start_us >= ?4 - ?6 AND (start_us, id) >= (?2, ?3)"
                    " AND (start_us, id) <= (?4, ?5)",
    /* A dirty source's rows over the range: the statement the timeline ran
     * before v19 (see max_len_us in index.c). */
    SQL(S_ROWS) = "SELECT g.id, g.start_us, g.end_us, g.codecs FROM segment g"
                  " WHERE g.source_id = ?1 AND g.start_us < ?3"
                  " AND g.start_us >= ?2 - ?4 AND g.end_us > ?2"
                  " AND g.deleting = 0"
                  " ORDER BY g.start_us, g.id",
    SQL(S_DIRTY) = "SELECT id FROM source WHERE span_dirty <> 0 ORDER BY id",
    SQL(S_CLEAR) = "DELETE FROM span WHERE source_id = ?1",
    SQL(S_ALL_ROWS) = "SELECT id, start_us, end_us, codecs FROM segment"
                      " WHERE source_id = ?1 AND deleting = 0 ORDER BY start_us, id",
    SQL(S_INSERT) = "INSERT INTO span(source_id, start_us, first_id, end_us, last_start, last_id,"
                    " codecs, shadowed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    SQL(S_DONE) = "UPDATE source SET span_dirty = 0 WHERE id = ?1",
    SQL(S_BEGIN) = "BEGIN DEFERRED",
    SQL(S_COMMIT) = "COMMIT",
    SQL(S_TABLE) = "SELECT start_us, first_id, end_us, last_start, last_id, codecs, shadowed"
                   " FROM span WHERE source_id = ?1 ORDER BY start_us, first_id",
    SQL(S_CLEAN) = "SELECT id, name FROM source WHERE span_dirty = 0 ORDER BY name",
#undef SQL
};

static sqlite3_stmt *lazy(idx_t *idx, int slot)
{
    return idx_priv_lazy(idx, slot, lazy_sql[slot - IDX_LAZY_SPANS]);
}

static int run_simple(idx_t *idx, int slot, const char *what)
{
    sqlite3_stmt *st = lazy(idx, slot);
    if (!st)
        return VG_EDB;
    int rc = sqlite3_step(st);
    int ret = rc == SQLITE_DONE || rc == SQLITE_ROW ? VG_OK : idx_priv_db_fail(idx, rc, what);
    idx_priv_stmt_done(st);
    return ret;
}

/* ---- the merge ---- */

typedef struct {
    int64_t start, first_id, end, last_start, last_id;
    char *codecs; /* owned */
    int shadowed;
} span_t;

typedef void (*span_close_fn)(void *ctx, const span_t *s);

typedef struct {
    int open;
    span_t cur;
    int have_max;
    int64_t max_end; /* the largest end of every row so far (for shadowed) */
    span_close_fn close;
    void *ctx;
} merger_t;

static void merge_row(merger_t *m, int64_t id, int64_t start, int64_t end, const char *codecs)
{
    span_t *c = &m->cur;
    if (m->open && start - c->end < IDX_SPAN_MERGE_US && strcmp(codecs, c->codecs) == 0) {
        if (end > c->end)
            c->end = end;
        c->last_start = start;
        c->last_id = id;
    } else {
        if (m->open)
            m->close(m->ctx, c);
        free(c->codecs);
        c->start = c->last_start = start;
        c->first_id = c->last_id = id;
        c->end = end;
        c->codecs = vg_strdup(codecs);
        c->shadowed = m->have_max && m->max_end > end;
        m->open = 1;
    }
    if (!m->have_max || end > m->max_end)
        m->max_end = end;
    m->have_max = 1;
}

static void merge_finish(merger_t *m)
{
    if (m->open)
        m->close(m->ctx, &m->cur);
    free(m->cur.codecs);
    m->cur.codecs = NULL;
    m->open = 0;
}

static const char *col_text(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? (const char *)t : "";
}

/* ---- reading ---- */

typedef struct {
    idx_span_fn fn;
    void *ctx;
} emit_t;

static void emit_span(void *ctx, const span_t *s)
{
    const emit_t *e = ctx;
    e->fn(e->ctx, s->start, s->end, s->codecs);
}

/* The answer from the rows, as before v19: for a source the triggers could
 * not keep, and for a range the span table cannot answer alone. */
static int walk_rows(idx_t *idx, int64_t source_id, int64_t max_len, int64_t from_us,
                     int64_t to_us, idx_span_fn fn, void *ctx)
{
    sqlite3_stmt *st = lazy(idx, S_ROWS);
    if (!st)
        return VG_EDB;
    emit_t e = {fn, ctx};
    merger_t m = {.close = emit_span, .ctx = &e};
    int ret, rc = SQLITE_DONE;
    if ((ret = idx_priv_bind_i64(idx, st, 1, source_id)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 2, from_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 3, to_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 4, max_len)) != VG_OK)
        goto cleanup;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        merge_row(&m, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                  sqlite3_column_int64(st, 2), col_text(st, 3));
    if (rc != SQLITE_DONE)
        ret = idx_priv_db_fail(idx, rc, "spans from rows");
    else
        merge_finish(&m);

cleanup:
    free(m.cur.codecs);
    idx_priv_stmt_done(st);
    return ret;
}

/* One row's key (start_us, id) from a one-row statement; *found 0: none. */
static int row_key(idx_t *idx, sqlite3_stmt *st, const char *what, int *found, int64_t *start,
                   int64_t *id)
{
    int rc = sqlite3_step(st);
    int ret = VG_OK;
    *found = 0;
    if (rc == SQLITE_ROW) {
        *found = 1;
        *start = sqlite3_column_int64(st, 0);
        *id = sqlite3_column_int64(st, 1);
    } else if (rc != SQLITE_DONE) {
        ret = idx_priv_db_fail(idx, rc, what);
    }
    idx_priv_stmt_done(st);
    return ret;
}

typedef struct {
    span_t *v;
    size_t n, cap;
} span_list_t;

static void span_list_free(span_list_t *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].codecs);
    free(l->v);
}

/* The spans holding rows first .. last, by key. */
static int read_spans(idx_t *idx, int64_t source_id, int64_t f_start, int64_t f_id,
                      int64_t l_start, int64_t l_id, span_list_t *out)
{
    sqlite3_stmt *st = lazy(idx, S_LIST);
    if (!st)
        return VG_EDB;
    int ret, rc = SQLITE_DONE;
    if ((ret = idx_priv_bind_i64(idx, st, 1, source_id)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 2, f_start)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 3, f_id)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 4, l_start)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 5, l_id)) != VG_OK)
        goto cleanup;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (out->n == out->cap) {
            out->cap = out->cap ? out->cap * 2 : 16;
            out->v = vg_realloc(out->v, out->cap * sizeof(*out->v));
        }
        span_t *s = &out->v[out->n++];
        s->start = sqlite3_column_int64(st, 0);
        s->end = sqlite3_column_int64(st, 1);
        s->last_start = sqlite3_column_int64(st, 2);
        s->last_id = sqlite3_column_int64(st, 3);
        s->codecs = vg_strdup(col_text(st, 4));
        s->shadowed = sqlite3_column_int(st, 5) != 0;
        s->first_id = sqlite3_column_int64(st, 6);
    }
    if (rc != SQLITE_DONE)
        ret = idx_priv_db_fail(idx, rc, "read spans");

cleanup:
    idx_priv_stmt_done(st);
    return ret;
}

/* The largest end of span s's rows up to (start, id). */
static int end_at(idx_t *idx, int64_t source_id, int64_t max_len, const span_t *s, int64_t start,
                  int64_t id, int64_t *end)
{
    sqlite3_stmt *st = lazy(idx, S_END_AT);
    if (!st)
        return VG_EDB;
    int ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, source_id)) == VG_OK &&
        (ret = idx_priv_bind_i64(idx, st, 2, s->start)) == VG_OK &&
        (ret = idx_priv_bind_i64(idx, st, 3, s->first_id)) == VG_OK &&
        (ret = idx_priv_bind_i64(idx, st, 4, start)) == VG_OK &&
        (ret = idx_priv_bind_i64(idx, st, 5, id)) == VG_OK &&
        (ret = idx_priv_bind_i64(idx, st, 6, max_len)) == VG_OK) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
            *end = sqlite3_column_int64(st, 0);
        else if (rc == SQLITE_ROW || rc == SQLITE_DONE)
            ret = VG_ENOTFOUND; /* the span table does not describe the rows */
        else
            ret = idx_priv_db_fail(idx, rc, "span end");
    }
    idx_priv_stmt_done(st);
    return ret;
}

/* Why the span table answers exactly: the range's rows are those starting
 * before to_us (a prefix in (start, id) order) that end after from_us. Let
 * r1 be the first of them and rN the last row starting before to_us. Rows
 * before r1 all end by from_us; merging from r1 on leaves the same state as
 * the full merge (the largest end so far is r1's, the codecs r1's), so the
 * spans are the table's from r1's to rN's, the first starting at r1. A row
 * after r1 that ends by from_us is left out of the range's merge; inside a
 * span it changes nothing (it ends before the largest end so far), but one
 * that starts a span would part what the range's merge joins. Such a row
 * ends before an earlier row does: its span is marked shadowed, and a range
 * reaching such a span (past its first) is read from the rows. The last
 * span ends at the largest end of its rows up to rN (rows of it after rN
 * start at or after to_us). */
static int walk_table(idx_t *idx, int64_t source_id, int64_t max_len, int64_t from_us,
                      int64_t to_us, idx_span_fn fn, void *ctx, int *fallback)
{
    int64_t f_start = 0, f_id = 0, l_start = 0, l_id = 0, last_end = 0;
    int found = 0;
    span_list_t l = {0};
    *fallback = 0;
    sqlite3_stmt *st = lazy(idx, S_FIRST);
    if (!st)
        return VG_EDB;
    int ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, source_id)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 2, from_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 3, to_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 4, max_len)) != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    if ((ret = row_key(idx, st, "first row of a range", &found, &f_start, &f_id)) != VG_OK ||
        !found)
        return ret; /* no row: no span */
    if (!(st = lazy(idx, S_LAST)))
        return VG_EDB;
    if ((ret = idx_priv_bind_i64(idx, st, 1, source_id)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 2, to_us)) != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    if ((ret = row_key(idx, st, "last row of a range", &found, &l_start, &l_id)) != VG_OK)
        return ret;
    if (!found) {
        *fallback = 1;
        return VG_OK;
    }
    if ((ret = read_spans(idx, source_id, f_start, f_id, l_start, l_id, &l)) != VG_OK)
        goto cleanup;
    /* None, or rN past the last span's rows: the table does not describe
     * the rows (it should); a shadowed span past the first: see above. */
    span_t *last = l.n ? &l.v[l.n - 1] : NULL;
    if (!last || last->last_start < l_start ||
        (last->last_start == l_start && last->last_id < l_id)) {
        *fallback = 1;
        goto cleanup;
    }
    for (size_t i = 1; i < l.n; i++) {
        if (l.v[i].shadowed) {
            *fallback = 1;
            goto cleanup;
        }
    }
    if (last->last_start == l_start && last->last_id == l_id) {
        last_end = last->end;
    } else if ((ret = end_at(idx, source_id, max_len, last, l_start, l_id, &last_end)) != VG_OK) {
        if (ret == VG_ENOTFOUND) {
            *fallback = 1;
            ret = VG_OK;
        }
        goto cleanup;
    }
    for (size_t i = 0; i < l.n; i++)
        fn(ctx, i == 0 ? f_start : l.v[i].start, i + 1 == l.n ? last_end : l.v[i].end,
           l.v[i].codecs);

cleanup:
    span_list_free(&l);
    return ret;
}

int idx_spans_walk(idx_t *idx, const char *source, int64_t from_us, int64_t to_us,
                   idx_span_fn fn, void *ctx)
{
    if (!idx || !source || !fn)
        return VG_EINVAL;
    sqlite3_stmt *st = lazy(idx, S_SOURCE);
    if (!st)
        return VG_EDB;
    int64_t source_id = 0, max_len = 0;
    int dirty = 0;
    int ret = idx_priv_bind_text(idx, st, 1, source);
    if (ret == VG_OK) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            source_id = sqlite3_column_int64(st, 0);
            max_len = sqlite3_column_int64(st, 1);
            dirty = sqlite3_column_int(st, 2) != 0;
        } else if (rc != SQLITE_DONE) {
            ret = idx_priv_db_fail(idx, rc, "spans: source");
        }
    }
    idx_priv_stmt_done(st);
    if (ret != VG_OK || source_id == 0)
        return ret;

    /* One snapshot for the several reads (a writer may commit between
     * them); inside the caller's transaction that one is it. */
    int owned = 0;
    if (sqlite3_get_autocommit(idx->db)) {
        if ((ret = run_simple(idx, S_BEGIN, "spans: begin")) != VG_OK)
            return ret;
        owned = 1;
    }
    int fallback = dirty;
    if (!dirty)
        ret = walk_table(idx, source_id, max_len, from_us, to_us, fn, ctx, &fallback);
    if (ret == VG_OK && fallback)
        ret = walk_rows(idx, source_id, max_len, from_us, to_us, fn, ctx);
    if (owned) {
        int c = run_simple(idx, S_COMMIT, "spans: end");
        if (ret == VG_OK)
            ret = c;
    }
    return ret;
}

/* ---- rebuilding ---- */

typedef struct {
    idx_t *idx;
    int64_t source_id;
    int ret;
    int64_t n;
} store_t;

static void store_span(void *ctx, const span_t *s)
{
    store_t *w = ctx;
    if (w->ret != VG_OK)
        return;
    sqlite3_stmt *st = lazy(w->idx, S_INSERT);
    if (!st) {
        w->ret = VG_EDB;
        return;
    }
    int ret;
    if ((ret = idx_priv_bind_i64(w->idx, st, 1, w->source_id)) == VG_OK &&
        (ret = idx_priv_bind_i64(w->idx, st, 2, s->start)) == VG_OK &&
        (ret = idx_priv_bind_i64(w->idx, st, 3, s->first_id)) == VG_OK &&
        (ret = idx_priv_bind_i64(w->idx, st, 4, s->end)) == VG_OK &&
        (ret = idx_priv_bind_i64(w->idx, st, 5, s->last_start)) == VG_OK &&
        (ret = idx_priv_bind_i64(w->idx, st, 6, s->last_id)) == VG_OK &&
        (ret = idx_priv_bind_text(w->idx, st, 7, s->codecs)) == VG_OK &&
        (ret = idx_priv_bind_i64(w->idx, st, 8, s->shadowed)) == VG_OK) {
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
            ret = idx_priv_db_fail(w->idx, rc, "store span");
    }
    idx_priv_stmt_done(st);
    w->ret = ret;
    w->n++;
}

static int exec_id(idx_t *idx, int slot, int64_t id, const char *what)
{
    sqlite3_stmt *st = lazy(idx, slot);
    if (!st)
        return VG_EDB;
    int ret = idx_priv_bind_i64(idx, st, 1, id);
    if (ret == VG_OK) {
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
            ret = idx_priv_db_fail(idx, rc, what);
    }
    idx_priv_stmt_done(st);
    return ret;
}

/* One pass over the source's live rows in order, inside the caller's
 * transaction. */
static int rebuild(idx_t *idx, int64_t source_id)
{
    int ret = exec_id(idx, S_CLEAR, source_id, "clear spans");
    if (ret != VG_OK)
        return ret;
    sqlite3_stmt *st = lazy(idx, S_ALL_ROWS);
    if (!st)
        return VG_EDB;
    store_t w = {.idx = idx, .source_id = source_id, .ret = VG_OK};
    merger_t m = {.close = store_span, .ctx = &w};
    int rc = SQLITE_DONE;
    if ((ret = idx_priv_bind_i64(idx, st, 1, source_id)) != VG_OK)
        goto cleanup;
    while (w.ret == VG_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        merge_row(&m, sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                  sqlite3_column_int64(st, 2), col_text(st, 3));
    if (w.ret != VG_OK) {
        ret = w.ret;
        goto cleanup;
    }
    if (rc != SQLITE_DONE) {
        ret = idx_priv_db_fail(idx, rc, "read rows for spans");
        goto cleanup;
    }
    merge_finish(&m);
    if ((ret = w.ret) == VG_OK)
        ret = exec_id(idx, S_DONE, source_id, "spans rebuilt");

cleanup:
    free(m.cur.codecs);
    idx_priv_stmt_done(st);
    return ret;
}

static int dirty_sources(idx_t *idx, int64_t **ids, size_t *n)
{
    sqlite3_stmt *st = lazy(idx, S_DIRTY);
    *ids = NULL;
    *n = 0;
    if (!st)
        return VG_EDB;
    size_t cap = 0;
    int rc, ret = VG_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *ids = vg_realloc(*ids, cap * sizeof(**ids));
        }
        (*ids)[(*n)++] = sqlite3_column_int64(st, 0);
    }
    if (rc != SQLITE_DONE) {
        ret = idx_priv_db_fail(idx, rc, "list dirty spans");
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    idx_priv_stmt_done(st);
    return ret;
}

/* own: a transaction per source (none is open); else all in the caller's. */
static int repair(idx_t *idx, int own, int *rebuilt)
{
    int64_t *ids = NULL;
    size_t n = 0;
    int done = 0;
    if (rebuilt)
        *rebuilt = 0;
    int ret = dirty_sources(idx, &ids, &n);
    for (size_t i = 0; ret == VG_OK && i < n; i++) {
        int owned = 0;
        if (own && (ret = idx_priv_begin(idx, &owned)) != VG_OK)
            break;
        ret = rebuild(idx, ids[i]);
        if (own)
            ret = idx_priv_end(idx, owned, ret);
        if (ret == VG_OK)
            done++;
    }
    free(ids);
    if (rebuilt)
        *rebuilt = done;
    return ret;
}

int idx_priv_spans_rebuild_dirty(idx_t *idx, int *rebuilt)
{
    return repair(idx, 0, rebuilt);
}

int idx_spans_repair(idx_t *idx, int *rebuilt)
{
    if (!idx)
        return VG_EINVAL;
    return repair(idx, sqlite3_get_autocommit(idx->db), rebuilt);
}

int idx_explain_spans(idx_t *idx, char *out, size_t out_size)
{
    if (!idx || !out || out_size == 0)
        return VG_EINVAL;
    out[0] = '\0';
    char *sql = vg_asprintf("EXPLAIN QUERY PLAN %s", lazy_sql[S_ROWS - IDX_LAZY_SPANS]);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(idx->db, sql, -1, &st, NULL);
    free(sql);
    if (rc != SQLITE_OK)
        return idx_priv_db_fail(idx, rc, "explain spans");
    return idx_priv_plan_text(idx, st, out, out_size, "explain spans");
}

/* ---- verifying (vigilctl check) ---- */

typedef struct {
    idx_t *idx;
    sqlite3_stmt *table; /* the source's span rows, by key */
    int ret;
    int differ;
} verify_t;

/* shadowed may stay set after the overlap that set it went (the triggers
 * keep it conservative); every other column must be what the merge makes. */
static void verify_span(void *ctx, const span_t *s)
{
    verify_t *v = ctx;
    if (v->ret != VG_OK || v->differ)
        return;
    int rc = sqlite3_step(v->table);
    if (rc == SQLITE_ROW) {
        sqlite3_stmt *t = v->table;
        v->differ = sqlite3_column_int64(t, 0) != s->start ||
                    sqlite3_column_int64(t, 1) != s->first_id ||
                    sqlite3_column_int64(t, 2) != s->end ||
                    sqlite3_column_int64(t, 3) != s->last_start ||
                    sqlite3_column_int64(t, 4) != s->last_id ||
                    strcmp(col_text(t, 5), s->codecs) != 0 ||
                    (s->shadowed && !sqlite3_column_int(t, 6));
    } else if (rc == SQLITE_DONE) {
        v->differ = 1;
    } else {
        v->ret = idx_priv_db_fail(v->idx, rc, "read spans to verify");
    }
}

static int verify_source(idx_t *idx, int64_t source_id, int *differ)
{
    sqlite3_stmt *rows = lazy(idx, S_ALL_ROWS), *table = lazy(idx, S_TABLE);
    if (!rows || !table)
        return VG_EDB;
    verify_t v = {.idx = idx, .table = table, .ret = VG_OK};
    merger_t m = {.close = verify_span, .ctx = &v};
    int ret, rc = SQLITE_DONE;
    if ((ret = idx_priv_bind_i64(idx, rows, 1, source_id)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, table, 1, source_id)) != VG_OK)
        goto cleanup;
    while (v.ret == VG_OK && !v.differ && (rc = sqlite3_step(rows)) == SQLITE_ROW)
        merge_row(&m, sqlite3_column_int64(rows, 0), sqlite3_column_int64(rows, 1),
                  sqlite3_column_int64(rows, 2), col_text(rows, 3));
    if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
        ret = idx_priv_db_fail(idx, rc, "read rows to verify spans");
        goto cleanup;
    }
    if (v.ret == VG_OK && !v.differ) {
        merge_finish(&m);
        if (v.ret == VG_OK && !v.differ) { /* a span row the rows do not make */
            rc = sqlite3_step(table);
            if (rc == SQLITE_ROW)
                v.differ = 1;
            else if (rc != SQLITE_DONE)
                v.ret = idx_priv_db_fail(idx, rc, "read spans to verify");
        }
    }
    ret = v.ret;
    *differ = v.differ;

cleanup:
    free(m.cur.codecs);
    idx_priv_stmt_done(rows);
    idx_priv_stmt_done(table);
    return ret;
}

int idx_spans_verify(idx_t *idx, idx_spans_bad_fn bad, void *ctx, int *n_bad)
{
    if (!idx || !n_bad)
        return VG_EINVAL;
    *n_bad = 0;
    /* One snapshot: a recording vigild appends meanwhile. */
    int owned = 0, ret = VG_OK;
    if (sqlite3_get_autocommit(idx->db)) {
        if ((ret = run_simple(idx, S_BEGIN, "spans: begin")) != VG_OK)
            return ret;
        owned = 1;
    }
    sqlite3_stmt *st = lazy(idx, S_CLEAN);
    int64_t *ids = NULL;
    char (*names)[64] = NULL;
    size_t n = 0, cap = 0;
    int rc;
    if (!st) {
        ret = VG_EDB;
        goto cleanup;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            ids = vg_realloc(ids, cap * sizeof(*ids));
            names = vg_realloc(names, cap * sizeof(*names));
        }
        ids[n] = sqlite3_column_int64(st, 0);
        snprintf(names[n], sizeof(names[n]), "%s", col_text(st, 1));
        n++;
    }
    if (rc != SQLITE_DONE)
        ret = idx_priv_db_fail(idx, rc, "list sources to verify spans");
    idx_priv_stmt_done(st);
    for (size_t i = 0; ret == VG_OK && i < n; i++) {
        int differ = 0;
        ret = verify_source(idx, ids[i], &differ);
        if (ret == VG_OK && differ) {
            (*n_bad)++;
            if (bad)
                bad(ctx, names[i]);
        }
    }

cleanup:
    free(ids);
    free(names);
    if (owned) {
        int c = run_simple(idx, S_COMMIT, "spans: end");
        if (ret == VG_OK)
            ret = c;
    }
    return ret;
}
