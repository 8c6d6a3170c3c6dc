/* Calls (schema v15): the rows of PBX events, CDR imports and voice
 * detection, their search, the announcement check's results, the calls a
 * hold was made for, and the metadata sweep. Statements are prepared per
 * call: the search is assembled from the filters it is given, and the
 * others run once per event, far from per-packet rates. */
#include "index/index.h"
#include "index/index_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define CALL_COLUMNS                                                                          \
    "c.id, c.call_id, s.name, c.start_us, c.end_us, c.direction, c.caller, c.caller_raw, "  \
    "c.callee, c.callee_raw, c.agent, c.queue, c.account, c.disposition, c.tags, c.notes, " \
    "c.origin, c.ann_state, c.ann_offset_us, c.ann_score, c.ann_checked_us, c.ann_pbx, "    \
    "c.created_us, c.updated_us"

#define SEARCH_MAX_LIMIT 1000

void idx_call_init(idx_call_t *c)
{
    memset(c, 0, sizeof(*c));
    c->ann_offset_us = -1;
    c->ann_score = -1;
    c->ann_pbx = -1;
}

static void text_col(sqlite3_stmt *st, int col, char *dst, size_t size)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    snprintf(dst, size, "%s", v ? (const char *)v : "");
}

static void fill_call(sqlite3_stmt *st, idx_call_t *c)
{
    idx_call_init(c);
    c->id = sqlite3_column_int64(st, 0);
    text_col(st, 1, c->call_id, sizeof(c->call_id));
    text_col(st, 2, c->source, sizeof(c->source));
    c->start_us = sqlite3_column_int64(st, 3);
    c->end_us = sqlite3_column_int64(st, 4); /* NULL reads as 0: open */
    text_col(st, 5, c->direction, sizeof(c->direction));
    text_col(st, 6, c->caller, sizeof(c->caller));
    text_col(st, 7, c->caller_raw, sizeof(c->caller_raw));
    text_col(st, 8, c->callee, sizeof(c->callee));
    text_col(st, 9, c->callee_raw, sizeof(c->callee_raw));
    text_col(st, 10, c->agent, sizeof(c->agent));
    text_col(st, 11, c->queue, sizeof(c->queue));
    text_col(st, 12, c->account, sizeof(c->account));
    text_col(st, 13, c->disposition, sizeof(c->disposition));
    text_col(st, 14, c->tags, sizeof(c->tags));
    text_col(st, 15, c->notes, sizeof(c->notes));
    text_col(st, 16, c->origin, sizeof(c->origin));
    text_col(st, 17, c->ann_state, sizeof(c->ann_state));
    if (sqlite3_column_type(st, 18) != SQLITE_NULL)
        c->ann_offset_us = sqlite3_column_int64(st, 18);
    if (sqlite3_column_type(st, 19) != SQLITE_NULL)
        c->ann_score = sqlite3_column_double(st, 19);
    c->ann_checked_us = sqlite3_column_int64(st, 20);
    if (sqlite3_column_type(st, 21) != SQLITE_NULL)
        c->ann_pbx = sqlite3_column_int(st, 21) != 0;
    c->created_us = sqlite3_column_int64(st, 22);
    c->updated_us = sqlite3_column_int64(st, 23);
}

static int prepare(idx_t *idx, const char *sql, const char *what, sqlite3_stmt **st)
{
    int rc = sqlite3_prepare_v2(idx->db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? VG_OK : idx_priv_db_fail(idx, rc, what);
}

/* The statements of a PBX event (thousands a second): prepared once per
 * connection, since preparing an INSERT into call also codes its triggers. */
enum { C_SOURCE = IDX_LAZY_CALLS, C_INSERT, C_MERGE, C_BY_CALL_ID, C_END };
_Static_assert(C_END <= IDX_LAZY_SPANS, "calls.c lazy slots overlap spans.c's");

static int prepare_kept(idx_t *idx, int slot, const char *sql, sqlite3_stmt **st)
{
    *st = idx_priv_lazy(idx, slot, sql);
    return *st ? VG_OK : VG_EDB;
}

static void kept_done(sqlite3_stmt *st)
{
    if (st)
        idx_priv_stmt_done(st);
}

/* A fixed text field must be terminated inside its array (a caller that
 * filled it with memcpy may not have): an unterminated one is refused
 * rather than read past. */
#define TERMINATED(f) (memchr((f), '\0', sizeof(f)) != NULL)

static int one_of(const char *v, const char *const *set)
{
    for (; *set; set++) {
        if (strcmp(v, *set) == 0)
            return 1;
    }
    return 0;
}

static const char *const directions[] = {"", "in", "out", "internal", NULL};
static const char *const origins[] = {"pbx", "import", "vad", NULL};
static const char *const ann_states[] = {"present", "absent", "partial", "unknown", NULL};

static int call_valid(const idx_call_t *c)
{
    if (!TERMINATED(c->call_id) || !TERMINATED(c->source) || !TERMINATED(c->direction) ||
        !TERMINATED(c->caller) || !TERMINATED(c->caller_raw) || !TERMINATED(c->callee) ||
        !TERMINATED(c->callee_raw) || !TERMINATED(c->agent) || !TERMINATED(c->queue) ||
        !TERMINATED(c->account) || !TERMINATED(c->disposition) || !TERMINATED(c->tags) ||
        !TERMINATED(c->notes) || !TERMINATED(c->origin) || !TERMINATED(c->ann_state))
        return 0;
    if (!one_of(c->direction, directions) || (c->ann_state[0] && !one_of(c->ann_state, ann_states)))
        return 0;
    return c->start_us > 0 && (c->end_us == 0 || c->end_us >= c->start_us);
}

/* The number's digits, last first: "+79123456789" -> "98765432197". */
static void reverse_digits(const char *num, char *out, size_t size)
{
    size_t n = 0, len = strlen(num);
    for (size_t i = len; i > 0 && n + 1 < size; i--) {
        if (num[i - 1] >= '0' && num[i - 1] <= '9')
            out[n++] = num[i - 1];
    }
    out[n] = '\0';
}

static int bind_null_or_i64(idx_t *idx, sqlite3_stmt *st, int col, int64_t v, int is_null)
{
    int rc = is_null ? sqlite3_bind_null(st, col) : sqlite3_bind_int64(st, col, v);
    return rc == SQLITE_OK ? VG_OK : idx_priv_db_fail(idx, rc, "bind");
}

static int source_of(idx_t *idx, const char *name, int64_t *id, char kind[8])
{
    sqlite3_stmt *st = NULL;
    int ret = prepare_kept(idx, C_SOURCE, "SELECT id, kind FROM source WHERE name = ?1", &st);
    if (ret != VG_OK)
        return ret;
    if ((ret = idx_priv_bind_text(idx, st, 1, name)) != VG_OK)
        goto cleanup;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        text_col(st, 1, kind, 8);
    } else if (rc == SQLITE_DONE) {
        ret = VG_ENOTFOUND;
    } else {
        ret = idx_priv_db_fail(idx, rc, "call source");
    }

cleanup:
    kept_done(st);
    return ret;
}

static int insert_call(idx_t *idx, const idx_call_t *c, int64_t source_id, int64_t *id)
{
    sqlite3_stmt *st = NULL;
    char caller_rev[IDX_CALL_NUM_MAX], callee_rev[IDX_CALL_NUM_MAX];
    reverse_digits(c->caller, caller_rev, sizeof(caller_rev));
    reverse_digits(c->callee, callee_rev, sizeof(callee_rev));
    int ret = prepare_kept(idx, C_INSERT,
                      "INSERT INTO call (call_id, source_id, start_us, end_us, direction, caller,"
                      " caller_raw, caller_rev, callee, callee_raw, callee_rev, agent, queue,"
                      " account, disposition, tags, notes, origin, ann_pbx, created_us,"
                      " updated_us) VALUES (NULLIF(?1, ''), ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
                      " ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?20)",
                      &st);
    if (ret != VG_OK)
        return ret;
    if ((ret = idx_priv_bind_text(idx, st, 1, c->call_id)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 2, source_id)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 3, c->start_us)) != VG_OK ||
        (ret = bind_null_or_i64(idx, st, 4, c->end_us, c->end_us == 0)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 5, c->direction)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 6, c->caller)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 7, c->caller_raw)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 8, caller_rev)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 9, c->callee)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 10, c->callee_raw)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 11, callee_rev)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 12, c->agent)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 13, c->queue)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 14, c->account)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 15, c->disposition)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 16, c->tags[0] ? c->tags : "[]")) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 17, c->notes)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 18, c->origin)) != VG_OK ||
        (ret = bind_null_or_i64(idx, st, 19, c->ann_pbx, c->ann_pbx < 0)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 20, c->created_us)) != VG_OK)
        goto cleanup;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        ret = idx_priv_db_fail(idx, rc, "insert call");
        goto cleanup;
    }
    *id = sqlite3_last_insert_rowid(idx->db);

cleanup:
    kept_done(st);
    return ret;
}

/* A repeated event fills what the stored call lacks; the first word on a
 * field wins (PATCH changes fields outright). */
static int merge_call(idx_t *idx, const idx_call_t *c, int64_t id)
{
    sqlite3_stmt *st = NULL;
    char caller_rev[IDX_CALL_NUM_MAX], callee_rev[IDX_CALL_NUM_MAX];
    reverse_digits(c->caller, caller_rev, sizeof(caller_rev));
    reverse_digits(c->callee, callee_rev, sizeof(callee_rev));
#define FILL(col, n) col " = CASE WHEN " col " = '' THEN ?" #n " ELSE " col " END"
    int ret = prepare_kept(idx, C_MERGE,
                      "UPDATE call SET end_us = COALESCE(end_us, ?2), " FILL("direction", 3) ", "
                      "caller_rev = CASE WHEN caller = '' THEN ?6 ELSE caller_rev END, "
                      "callee_rev = CASE WHEN callee = '' THEN ?9 ELSE callee_rev END, "
                      "caller_raw = CASE WHEN caller = '' THEN ?5 ELSE caller_raw END, "
                      "callee_raw = CASE WHEN callee = '' THEN ?8 ELSE callee_raw END, "
                      FILL("caller", 4) ", " FILL("callee", 7) ", " FILL("agent", 10) ", "
                      FILL("queue", 11) ", " FILL("account", 12) ", " FILL("disposition", 13)
                      ", tags = CASE WHEN tags = '[]' THEN ?14 ELSE tags END, "
                      FILL("notes", 15) ", ann_pbx = COALESCE(ann_pbx, ?16), updated_us = ?17"
                      " WHERE id = ?1",
                      &st);
#undef FILL
    if (ret != VG_OK)
        return ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, id)) != VG_OK ||
        (ret = bind_null_or_i64(idx, st, 2, c->end_us, c->end_us == 0)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 3, c->direction)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 4, c->caller)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 5, c->caller_raw)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 6, caller_rev)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 7, c->callee)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 8, c->callee_raw)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 9, callee_rev)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 10, c->agent)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 11, c->queue)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 12, c->account)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 13, c->disposition)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 14, c->tags[0] ? c->tags : "[]")) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 15, c->notes)) != VG_OK ||
        (ret = bind_null_or_i64(idx, st, 16, c->ann_pbx, c->ann_pbx < 0)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 17, c->created_us)) != VG_OK)
        goto cleanup;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        ret = idx_priv_db_fail(idx, rc, "merge call");

cleanup:
    kept_done(st);
    return ret;
}

int idx_call_upsert(idx_t *idx, const idx_call_t *c, int64_t *id, int *created)
{
    int owned = 0, ret;
    int64_t source_id = 0;
    char kind[8] = "";
    idx_call_t *old = NULL;
    *id = 0;
    *created = 0;
    if (!call_valid(c) || !one_of(c->origin, origins))
        return VG_EINVAL;
    if ((ret = idx_priv_begin(idx, &owned)) != VG_OK)
        return ret;
    if ((ret = source_of(idx, c->source, &source_id, kind)) != VG_OK)
        goto cleanup;
    if (strcmp(kind, "audio") != 0) {
        ret = VG_EINVAL;
        goto cleanup;
    }
    if (c->call_id[0]) {
        old = vg_malloc(sizeof(*old));
        ret = idx_call_get_by_call_id(idx, c->call_id, old);
        if (ret == VG_OK) {
            if (strcmp(old->source, c->source) != 0) {
                ret = VG_EEXIST; /* the id names a call of another line */
                goto cleanup;
            }
            if (c->end_us && c->end_us < old->start_us) {
                ret = VG_EINVAL;
                goto cleanup;
            }
            if ((ret = merge_call(idx, c, old->id)) == VG_OK)
                *id = old->id;
            goto cleanup;
        }
        if (ret != VG_ENOTFOUND)
            goto cleanup;
    }
    if ((ret = insert_call(idx, c, source_id, id)) == VG_OK)
        *created = 1;

cleanup:
    free(old);
    if (ret != VG_OK)
        *id = 0;
    return idx_priv_end(idx, owned, ret);
}

static int get_one(idx_t *idx, const char *where, const char *text, int64_t num, idx_call_t *out)
{
    sqlite3_stmt *st = NULL;
    /* by call_id: every PBX event asks */
    int kept = text != NULL && strcmp(where, "c.call_id = ?1") == 0;
    int ret;
    if (kept) {
        ret = prepare_kept(idx, C_BY_CALL_ID,
                           "SELECT " CALL_COLUMNS " FROM call c JOIN source s"
                           " ON s.id = c.source_id WHERE c.call_id = ?1", &st);
    } else {
        char *sql = vg_asprintf("SELECT " CALL_COLUMNS " FROM call c JOIN source s"
                                " ON s.id = c.source_id WHERE %s", where);
        ret = prepare(idx, sql, "prepare call get", &st);
        free(sql);
    }
    if (ret != VG_OK)
        return ret;
    ret = text ? idx_priv_bind_text(idx, st, 1, text) : idx_priv_bind_i64(idx, st, 1, num);
    if (ret != VG_OK)
        goto cleanup;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        fill_call(st, out);
    else if (rc == SQLITE_DONE)
        ret = VG_ENOTFOUND;
    else
        ret = idx_priv_db_fail(idx, rc, "get call");

cleanup:
    if (kept)
        kept_done(st);
    else
        sqlite3_finalize(st);
    return ret;
}

int idx_call_get(idx_t *idx, int64_t id, idx_call_t *out)
{
    return get_one(idx, "c.id = ?1", NULL, id, out);
}

int idx_call_get_by_call_id(idx_t *idx, const char *call_id, idx_call_t *out)
{
    if (!call_id || !*call_id)
        return VG_ENOTFOUND;
    return get_one(idx, "c.call_id = ?1", call_id, 0, out);
}

/* Appends "col = ?N" for one updated field; binds are made afterwards in
 * the same order. */
typedef struct {
    char sql[1024];
    size_t len;
    int n;
} setlist_t;

static void set_add(setlist_t *s, const char *col)
{
    s->n++;
    s->len += (size_t)snprintf(s->sql + s->len, sizeof(s->sql) - s->len, "%s%s = ?%d",
                               s->n > 1 ? ", " : "", col, s->n);
}

int idx_call_update(idx_t *idx, int64_t id, const idx_call_t *c, unsigned mask)
{
    sqlite3_stmt *st = NULL;
    setlist_t s = {.len = 0};
    char caller_rev[IDX_CALL_NUM_MAX], callee_rev[IDX_CALL_NUM_MAX];
    int ret = VG_OK;
    /* call_valid checks the start and end only when they are written. */
    idx_call_t probe = *c;
    if (!(mask & IDX_CALL_F_START))
        probe.start_us = 1;
    if (!(mask & IDX_CALL_F_END) || (mask & IDX_CALL_F_START) == 0)
        probe.end_us = 0;
    if (!call_valid(&probe))
        return VG_EINVAL;
    reverse_digits(c->caller, caller_rev, sizeof(caller_rev));
    reverse_digits(c->callee, callee_rev, sizeof(callee_rev));
    if (mask & IDX_CALL_F_START)
        set_add(&s, "start_us");
    if (mask & IDX_CALL_F_END)
        set_add(&s, "end_us");
    if (mask & IDX_CALL_F_DIRECTION)
        set_add(&s, "direction");
    if (mask & IDX_CALL_F_CALLER) {
        set_add(&s, "caller");
        set_add(&s, "caller_raw");
        set_add(&s, "caller_rev");
    }
    if (mask & IDX_CALL_F_CALLEE) {
        set_add(&s, "callee");
        set_add(&s, "callee_raw");
        set_add(&s, "callee_rev");
    }
    if (mask & IDX_CALL_F_AGENT)
        set_add(&s, "agent");
    if (mask & IDX_CALL_F_QUEUE)
        set_add(&s, "queue");
    if (mask & IDX_CALL_F_ACCOUNT)
        set_add(&s, "account");
    if (mask & IDX_CALL_F_DISPOSITION)
        set_add(&s, "disposition");
    if (mask & IDX_CALL_F_TAGS)
        set_add(&s, "tags");
    if (mask & IDX_CALL_F_NOTES)
        set_add(&s, "notes");
    if (mask & IDX_CALL_F_ANN_PBX)
        set_add(&s, "ann_pbx");
    set_add(&s, "updated_us");
    char *sql = vg_asprintf("UPDATE call SET %s WHERE id = ?%d", s.sql, s.n + 1);
    ret = prepare(idx, sql, "prepare call update", &st);
    free(sql);
    if (ret != VG_OK)
        return ret;
    int k = 1;
#define BT(v) if (ret == VG_OK) ret = idx_priv_bind_text(idx, st, k++, (v))
#define BI(v, isnull) if (ret == VG_OK) ret = bind_null_or_i64(idx, st, k++, (v), (isnull))
    if (mask & IDX_CALL_F_START)
        BI(c->start_us, 0);
    if (mask & IDX_CALL_F_END)
        BI(c->end_us, c->end_us == 0);
    if (mask & IDX_CALL_F_DIRECTION)
        BT(c->direction);
    if (mask & IDX_CALL_F_CALLER) {
        BT(c->caller);
        BT(c->caller_raw);
        BT(caller_rev);
    }
    if (mask & IDX_CALL_F_CALLEE) {
        BT(c->callee);
        BT(c->callee_raw);
        BT(callee_rev);
    }
    if (mask & IDX_CALL_F_AGENT)
        BT(c->agent);
    if (mask & IDX_CALL_F_QUEUE)
        BT(c->queue);
    if (mask & IDX_CALL_F_ACCOUNT)
        BT(c->account);
    if (mask & IDX_CALL_F_DISPOSITION)
        BT(c->disposition);
    if (mask & IDX_CALL_F_TAGS)
        BT(c->tags[0] ? c->tags : "[]");
    if (mask & IDX_CALL_F_NOTES)
        BT(c->notes);
    if (mask & IDX_CALL_F_ANN_PBX)
        BI(c->ann_pbx, c->ann_pbx < 0);
    BI(c->updated_us, 0);
    BI(id, 0);
#undef BT
#undef BI
    if (ret != VG_OK)
        goto cleanup;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        ret = idx_priv_db_fail(idx, rc, "update call"); /* a CHECK: end before start */
        goto cleanup;
    }
    if (sqlite3_changes(idx->db) == 0)
        ret = VG_ENOTFOUND;

cleanup:
    sqlite3_finalize(st);
    return ret;
}

/* ---- search ---- */

/* How a search finds its page (schema v20). Each way reads about a page
 * of rows, not every match, where an index can hand the rows newest first:
 * - NUMBER: the (caller, start) and (callee, start) walks, merged by
 *   SQLite's ORDER BY on a compound select (each arm a co-routine stepped
 *   only as far as the merge needs), LIMIT a page;
 * - SUFFIX: the same over the (first four reversed digits, start) indexes,
 *   for four digits or more (a longer suffix filters on the index's copy
 *   of the reversed number);
 * - TEXT: FTS5's matches in rowid order, newest first (the rowid is
 *   fts_key, start-major), a time range a rowid range; the walk stops
 *   after a page and the calls of its last microsecond (ties are ordered
 *   by id here, not by the key);
 * - PLAIN: one statement ordered by (start, id) on call_start or a
 *   (field, start) index; a suffix of fewer than four digits is a filter
 *   over a range of the four-digit index (few numbers share it). */
enum { SEARCH_PLAIN, SEARCH_NUMBER, SEARCH_SUFFIX, SEARCH_TEXT };

#define SUFFIX_KEY_DIGITS 4
#define FTS_KEY_SCALE 2048
#define FTS_START_MAX 4503599627370496LL /* 2^52 us: see schema v20 */

static int search_kind(const idx_call_query_t *q)
{
    if (q->number && *q->number)
        return SEARCH_NUMBER;
    if (q->number_suffix && strlen(q->number_suffix) >= SUFFIX_KEY_DIGITS)
        return SEARCH_SUFFIX;
    if (q->text && *q->text)
        return SEARCH_TEXT;
    return SEARCH_PLAIN;
}

/* The filters on call c other than the one kind's index walk serves,
 * appended to where. Parameters are numbered the same whatever filters are
 * used (unused ones stay unbound: NULL). The literal "x <> ''" beside
 * "x = ?" lets SQLite use the partial indexes. One source is a subquery
 * SQLite evaluates once (its calls come off (source, start) in order); the
 * sources an account may see are a check per row, so that an account of a
 * few lines walks the newest calls rather than sorting all of theirs. */
static void search_filters(const idx_call_query_t *q, int kind, char *where, size_t size)
{
    size_t len = strlen(where);
#define W(...) len += (size_t)snprintf(where + len, size - len, __VA_ARGS__)
    if (q->from_us)
        W(" AND c.start_us >= ?1");
    if (q->to_us)
        W(" AND c.start_us < ?2");
    if (q->number_suffix && *q->number_suffix && kind != SEARCH_SUFFIX)
        W(" AND c.id IN (SELECT id FROM call WHERE substr(caller_rev, 1, 4) >= ?4"
          " AND substr(caller_rev, 1, 4) < ?5 AND caller_rev <> ''"
          " UNION ALL SELECT id FROM call WHERE substr(callee_rev, 1, 4) >= ?4"
          " AND substr(callee_rev, 1, 4) < ?5 AND callee_rev <> '')");
    if (q->agent && *q->agent)
        W(" AND c.agent = ?6 AND c.agent <> ''");
    if (q->queue && *q->queue)
        W(" AND c.queue = ?7 AND c.queue <> ''");
    if (q->account && *q->account)
        W(" AND c.account = ?8 AND c.account <> ''");
    if (q->direction && *q->direction)
        W(" AND c.direction = ?9");
    if (q->source && *q->source)
        W(" AND c.source_id = (SELECT id FROM source WHERE name = ?10)");
    if (q->min_us)
        W(" AND c.end_us IS NOT NULL AND c.end_us - c.start_us >= ?11");
    if (q->max_us)
        W(" AND c.end_us IS NOT NULL AND c.end_us - c.start_us <= ?12");
    if (q->text && *q->text && kind != SEARCH_TEXT)
        W(" AND c.fts_key IN (SELECT rowid FROM call_fts WHERE call_fts MATCH ?13)");
    if (q->after_id)
        W(" AND (c.start_us, c.id) < (?14, ?15)");
    if (q->sources)
        W(" AND instr(',' || ?17 || ',', ',' || (SELECT name FROM source"
          " WHERE id = c.source_id) || ',') > 0");
#undef W
}

/* Builds the search's SQL into a malloc'd string. */
static char *search_sql(const idx_call_query_t *q, int kind)
{
    char f[2048] = "";
    search_filters(q, kind, f, sizeof(f));
    switch (kind) {
    case SEARCH_NUMBER:
    case SEARCH_SUFFIX: {
        const char *a = kind == SEARCH_NUMBER ? "c.caller = ?3 AND c.caller <> ''"
                                              : "substr(c.caller_rev, 1, 4) = ?18 AND"
                                                " c.caller_rev <> '' AND c.caller_rev >= ?4 AND"
                                                " c.caller_rev < ?5";
        const char *b = kind == SEARCH_NUMBER ? "c.callee = ?3 AND c.callee <> ''"
                                              : "substr(c.callee_rev, 1, 4) = ?18 AND"
                                                " c.callee_rev <> '' AND c.callee_rev >= ?4 AND"
                                                " c.callee_rev < ?5";
        /* UNION: a call with the number on both sides once */
        return vg_asprintf("SELECT " CALL_COLUMNS " FROM (SELECT c.id, c.start_us FROM call c"
                           " WHERE %s%s UNION SELECT c.id, c.start_us FROM call c WHERE %s%s"
                           " ORDER BY 2 DESC, 1 DESC LIMIT ?16) AS m"
                           " JOIN call c ON c.id = m.id JOIN source s ON s.id = c.source_id"
                           " ORDER BY c.start_us DESC, c.id DESC",
                           a, f, b, f);
    }
    case SEARCH_TEXT:
        return vg_asprintf("SELECT c.id, c.start_us FROM call_fts f JOIN call c"
                           " ON c.fts_key = f.rowid WHERE call_fts MATCH ?13"
                           " AND f.rowid >= ?19 AND f.rowid <= ?20 AND c.fts_key IS NOT NULL%s"
                           " ORDER BY f.rowid DESC",
                           f);
    default:
        return vg_asprintf("SELECT " CALL_COLUMNS " FROM call c JOIN source s"
                           " ON s.id = c.source_id WHERE 1%s"
                           " ORDER BY c.start_us DESC, c.id DESC LIMIT ?16",
                           f);
    }
}

/* "*4567": the reversed digits "7654" as a prefix range ["7654", "7655"),
 * and its first four digits (the index's key). */
static void suffix_range(const char *digits, char lo[IDX_CALL_NUM_MAX], char hi[IDX_CALL_NUM_MAX],
                         char key[SUFFIX_KEY_DIGITS + 1])
{
    reverse_digits(digits, lo, IDX_CALL_NUM_MAX);
    snprintf(hi, IDX_CALL_NUM_MAX, "%s", lo);
    size_t k = 0;
    for (; k < SUFFIX_KEY_DIGITS && lo[k]; k++)
        key[k] = lo[k];
    key[k] = '\0';
    size_t n = strlen(hi);
    /* digits only: the last one + 1 never overflows past '9' + 1 = ':' */
    if (n)
        hi[n - 1] = (char)(hi[n - 1] + 1);
}

static int64_t clamp_start(int64_t v)
{
    return v < 0 ? 0 : v > FTS_START_MAX ? FTS_START_MAX : v;
}

static size_t search_limit(const idx_call_query_t *q)
{
    size_t limit = q->limit ? q->limit : 100;
    return limit > SEARCH_MAX_LIMIT ? SEARCH_MAX_LIMIT : limit;
}

static int search_prepare(idx_t *idx, const idx_call_query_t *q, int kind, const char *prefix,
                          sqlite3_stmt **out)
{
    sqlite3_stmt *st = NULL;
    char lo[IDX_CALL_NUM_MAX], hi[IDX_CALL_NUM_MAX], key[SUFFIX_KEY_DIGITS + 1];
    char *body = search_sql(q, kind);
    char *sql = vg_asprintf("%s%s", prefix, body);
    free(body);
    int rc = sqlite3_prepare_v2(idx->db, sql, -1, &st, NULL);
    free(sql);
    if (rc != SQLITE_OK) {
        /* A query FTS5 cannot parse is the caller's input, not a failure. */
        if (q->text && *q->text && rc == SQLITE_ERROR) {
            vg_debug("index %s: call text search refused: %s", idx->path, sqlite3_errmsg(idx->db));
            return VG_EINVAL;
        }
        return idx_priv_db_fail(idx, rc, "prepare call search");
    }
    int ret = VG_OK;
    int nparams = sqlite3_bind_parameter_count(st);
    if (q->number_suffix && *q->number_suffix)
        suffix_range(q->number_suffix, lo, hi, key);
    /* Only parameters the statement has (each kind uses some). */
#define BT(n, v)                                                              \
    if (ret == VG_OK && (v) && *(v) && (n) <= nparams)                         \
    ret = idx_priv_bind_text(idx, st, (n), (v))
#define BI(n, v)                                                              \
    if (ret == VG_OK && (v) && (n) <= nparams)                                 \
    ret = idx_priv_bind_i64(idx, st, (n), (v))
    BI(1, q->from_us);
    BI(2, q->to_us);
    BT(3, q->number);
    if (q->number_suffix && *q->number_suffix) {
        /* lo, hi and key live on this stack frame: SQLite keeps its own copy */
        if (sqlite3_bind_text(st, 4, lo, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
            sqlite3_bind_text(st, 5, hi, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
            (kind == SEARCH_SUFFIX &&
             sqlite3_bind_text(st, 18, key, -1, SQLITE_TRANSIENT) != SQLITE_OK))
            ret = idx_priv_db_fail(idx, SQLITE_NOMEM, "bind");
    }
    BT(6, q->agent);
    BT(7, q->queue);
    BT(8, q->account);
    BT(9, q->direction);
    BT(10, q->source);
    BI(11, q->min_us);
    BI(12, q->max_us);
    BT(13, q->text);
    if (q->after_id) {
        BI(14, q->after_start_us);
        BI(15, q->after_id);
    }
    BI(16, (int64_t)search_limit(q) + 1);
    BT(17, q->sources);
    if (kind == SEARCH_TEXT) {
        /* start in [from, min(to, after's start + 1)) as a key range */
        int64_t from = clamp_start(q->from_us), to = q->to_us ? q->to_us : FTS_START_MAX;
        if (q->after_id && q->after_start_us < to)
            to = q->after_start_us + 1;
        to = clamp_start(to);
        /* no key is at or past 2^52 * 2048 (it would overflow): a from that
         * late starts at the last microsecond, which start_us >= from drops */
        if (from == FTS_START_MAX)
            from--;
        if (ret == VG_OK)
            ret = idx_priv_bind_i64(idx, st, 19, from * FTS_KEY_SCALE);
        /* the last key of the microsecond before to */
        if (ret == VG_OK)
            ret = idx_priv_bind_i64(idx, st, 20, (to - 1) * FTS_KEY_SCALE + (FTS_KEY_SCALE - 1));
    }
#undef BT
#undef BI
    if (ret != VG_OK) {
        sqlite3_finalize(st);
        return ret;
    }
    *out = st;
    return VG_OK;
}

/* A step's error: a query FTS5 cannot parse is the caller's input. */
static int search_step_fail(idx_t *idx, const idx_call_query_t *q, int rc)
{
    if (q->text && *q->text && (rc & 0xff) == SQLITE_ERROR) {
        vg_debug("index %s: call text search refused: %s", idx->path, sqlite3_errmsg(idx->db));
        return VG_EINVAL;
    }
    return idx_priv_db_fail(idx, rc, "call search");
}

typedef struct {
    int64_t start_us, id;
} search_key_t;

static int key_newer_first(const void *a, const void *b)
{
    const search_key_t *x = a, *y = b;
    if (x->start_us != y->start_us)
        return x->start_us < y->start_us ? 1 : -1;
    return x->id < y->id ? 1 : x->id > y->id ? -1 : 0;
}

/* The TEXT kind: st yields (id, start) by start, newest first, ties in any
 * order. Reads limit + 1 rows and the rest of the last one's microsecond,
 * orders them by (start, id) and fetches the page's rows by id, all in one
 * read transaction (the rows cannot go between the walk and the fetch). */
static int search_text(idx_t *idx, const idx_call_query_t *q, sqlite3_stmt *st, idx_call_fn fn,
                       void *ctx, int *more)
{
    sqlite3_stmt *get = NULL;
    search_key_t *keys = NULL;
    idx_call_t *c = NULL;
    size_t limit = search_limit(q), n = 0, cap = 0;
    int ret = VG_OK, rc, began = 0;
    if (sqlite3_get_autocommit(idx->db)) {
        rc = sqlite3_exec(idx->db, "BEGIN", NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            return idx_priv_db_fail(idx, rc, "begin call search");
        began = 1;
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        search_key_t k = {sqlite3_column_int64(st, 1), sqlite3_column_int64(st, 0)};
        if (n > limit && k.start_us < keys[limit].start_us)
            break;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            keys = vg_realloc(keys, cap * sizeof(*keys));
        }
        keys[n++] = k;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        ret = search_step_fail(idx, q, rc);
        goto cleanup;
    }
    if (n > 1)
        qsort(keys, n, sizeof(*keys), key_newer_first);
    if (more)
        *more = n > limit;
    if (n > limit)
        n = limit;
    if (n && (ret = prepare(idx,
                            "SELECT " CALL_COLUMNS " FROM call c JOIN source s"
                            " ON s.id = c.source_id WHERE c.id = ?1",
                            "prepare call search", &get)) != VG_OK)
        goto cleanup;
    c = vg_malloc(sizeof(*c));
    for (size_t i = 0; i < n && ret == VG_OK; i++) {
        if ((ret = idx_priv_bind_i64(idx, get, 1, keys[i].id)) != VG_OK)
            break;
        rc = sqlite3_step(get);
        if (rc == SQLITE_ROW) {
            fill_call(get, c);
            fn(ctx, c);
        } else {
            ret = idx_priv_db_fail(idx, rc == SQLITE_DONE ? SQLITE_CORRUPT : rc, "call search");
        }
        sqlite3_reset(get);
    }

cleanup:
    free(c);
    free(keys);
    sqlite3_finalize(get);
    if (began)
        sqlite3_exec(idx->db, ret == VG_OK ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
    return ret;
}

int idx_call_search(idx_t *idx, const idx_call_query_t *q, idx_call_fn fn, void *ctx, int *more)
{
    sqlite3_stmt *st = NULL;
    idx_call_t *c = NULL;
    size_t limit = search_limit(q), n = 0;
    int kind = search_kind(q);
    int ret, rc;
    if (more)
        *more = 0;
    if ((ret = search_prepare(idx, q, kind, "", &st)) != VG_OK)
        return ret;
    if (kind == SEARCH_TEXT) {
        ret = search_text(idx, q, st, fn, ctx, more);
        sqlite3_finalize(st);
        return ret;
    }
    c = vg_malloc(sizeof(*c));
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == limit) {
            if (more)
                *more = 1;
            break;
        }
        fill_call(st, c);
        fn(ctx, c);
        n++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        ret = search_step_fail(idx, q, rc);
    free(c);
    sqlite3_finalize(st);
    return ret;
}

int idx_call_explain(idx_t *idx, const idx_call_query_t *q, char *out, size_t out_size)
{
    sqlite3_stmt *st = NULL;
    if (!out || !out_size)
        return VG_EINVAL;
    out[0] = '\0';
    int ret = search_prepare(idx, q, search_kind(q), "EXPLAIN QUERY PLAN ", &st);
    if (ret != VG_OK)
        return ret;
    return idx_priv_plan_text(idx, st, out, out_size, "explain call search");
}

static int walk(idx_t *idx, sqlite3_stmt *st, const char *what, idx_call_fn fn, void *ctx)
{
    idx_call_t *c = vg_malloc(sizeof(*c));
    int ret = VG_OK, rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        fill_call(st, c);
        fn(ctx, c);
    }
    if (rc != SQLITE_DONE)
        ret = idx_priv_db_fail(idx, rc, what);
    free(c);
    return ret;
}

int idx_call_in_range(idx_t *idx, const char *source, int64_t from_us, int64_t to_us,
                      size_t limit, idx_call_fn fn, void *ctx)
{
    sqlite3_stmt *st = NULL;
    /* A call is shorter than a day in practice; the lower bound keeps the
     * scan on the (source, start) index bounded on both sides. Longer
     * calls starting before from - 1 day are not shown. */
    int ret = prepare(idx,
                      "SELECT " CALL_COLUMNS " FROM call c JOIN source s ON s.id = c.source_id"
                      " WHERE s.name = ?1 AND c.start_us < ?3 AND c.start_us >= ?2 - 86400000000"
                      " AND COALESCE(c.end_us, ?3) > ?2 ORDER BY c.start_us, c.id LIMIT ?4",
                      "prepare call range", &st);
    if (ret != VG_OK)
        return ret;
    if ((ret = idx_priv_bind_text(idx, st, 1, source)) == VG_OK &&
        (ret = idx_priv_bind_i64(idx, st, 2, from_us)) == VG_OK &&
        (ret = idx_priv_bind_i64(idx, st, 3, to_us)) == VG_OK &&
        (ret = idx_priv_bind_i64(idx, st, 4, (int64_t)limit)) == VG_OK)
        ret = walk(idx, st, "call range", fn, ctx);
    sqlite3_finalize(st);
    return ret;
}

/* ---- the announcement check ---- */

int idx_call_set_announcement(idx_t *idx, int64_t id, const char *state, int64_t offset_us,
                              double score, int64_t checked_us)
{
    sqlite3_stmt *st = NULL;
    if (!state || !one_of(state, ann_states) || checked_us <= 0)
        return VG_EINVAL;
    int ret = prepare(idx,
                      "UPDATE call SET ann_state = ?2, ann_offset_us = ?3, ann_score = ?4,"
                      " ann_checked_us = ?5 WHERE id = ?1",
                      "prepare call announcement", &st);
    if (ret != VG_OK)
        return ret;
    int rc = SQLITE_OK;
    if ((ret = idx_priv_bind_i64(idx, st, 1, id)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 2, state)) != VG_OK ||
        (ret = bind_null_or_i64(idx, st, 3, offset_us, offset_us < 0)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 5, checked_us)) != VG_OK)
        goto cleanup;
    rc = score < 0 ? sqlite3_bind_null(st, 4) : sqlite3_bind_double(st, 4, score);
    if (rc != SQLITE_OK) {
        ret = idx_priv_db_fail(idx, rc, "bind");
        goto cleanup;
    }
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        ret = idx_priv_db_fail(idx, rc, "call announcement");
    else if (sqlite3_changes(idx->db) == 0)
        ret = VG_ENOTFOUND;

cleanup:
    sqlite3_finalize(st);
    return ret;
}

int idx_call_list_ended_unchecked(idx_t *idx, size_t limit, idx_call_fn fn, void *ctx)
{
    sqlite3_stmt *st = NULL;
    int ret = prepare(idx,
                      "SELECT " CALL_COLUMNS " FROM call c JOIN source s ON s.id = c.source_id"
                      " WHERE c.ann_checked_us IS NULL AND c.end_us IS NOT NULL"
                      " ORDER BY c.end_us, c.id LIMIT ?1",
                      "prepare unchecked calls", &st);
    if (ret != VG_OK)
        return ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, (int64_t)limit)) == VG_OK)
        ret = walk(idx, st, "unchecked calls", fn, ctx);
    sqlite3_finalize(st);
    return ret;
}

int idx_call_clear_announcement(idx_t *idx, int64_t from_us, int64_t to_us, int64_t *n)
{
    sqlite3_stmt *st = NULL;
    int ret = prepare(idx,
                      "UPDATE call SET ann_state = NULL, ann_offset_us = NULL, ann_score = NULL,"
                      " ann_checked_us = NULL WHERE start_us >= ?1 AND start_us < ?2",
                      "prepare call recheck", &st);
    if (ret != VG_OK)
        return ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, from_us)) == VG_OK &&
        (ret = idx_priv_bind_i64(idx, st, 2, to_us)) == VG_OK) {
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
            ret = idx_priv_db_fail(idx, rc, "call recheck");
        else if (n)
            *n = sqlite3_changes(idx->db);
    }
    sqlite3_finalize(st);
    return ret;
}

/* ---- holds and retention ---- */

int idx_hold_call_add(idx_t *idx, int64_t hold_id, const int64_t *call_ids, size_t n)
{
    sqlite3_stmt *st = NULL;
    int owned = 0;
    int ret = idx_priv_begin(idx, &owned);
    if (ret != VG_OK)
        return ret;
    if ((ret = prepare(idx, "INSERT OR IGNORE INTO hold_call (hold_id, call_id) VALUES (?1, ?2)",
                       "prepare hold call", &st)) != VG_OK)
        goto cleanup;
    for (size_t i = 0; i < n && ret == VG_OK; i++) {
        if ((ret = idx_priv_bind_i64(idx, st, 1, hold_id)) != VG_OK ||
            (ret = idx_priv_bind_i64(idx, st, 2, call_ids[i])) != VG_OK)
            break;
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
            ret = idx_priv_db_fail(idx, rc, "hold call");
        sqlite3_reset(st);
    }

cleanup:
    sqlite3_finalize(st);
    return idx_priv_end(idx, owned, ret);
}

int idx_hold_calls(idx_t *idx, int64_t hold_id, int64_t **out, size_t *n)
{
    sqlite3_stmt *st = NULL;
    int64_t *arr = NULL;
    size_t len = 0, cap = 0;
    int rc;
    *out = NULL;
    *n = 0;
    int ret = prepare(idx, "SELECT call_id FROM hold_call WHERE hold_id = ?1 ORDER BY call_id",
                      "prepare hold calls", &st);
    if (ret != VG_OK)
        return ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, hold_id)) != VG_OK)
        goto cleanup;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap ? cap * 2 : 8;
            arr = vg_realloc(arr, cap * sizeof(*arr));
        }
        arr[len++] = sqlite3_column_int64(st, 0);
    }
    if (rc != SQLITE_DONE) {
        ret = idx_priv_db_fail(idx, rc, "hold calls");
        goto cleanup;
    }
    *out = arr;
    *n = len;
    arr = NULL;

cleanup:
    free(arr);
    sqlite3_finalize(st);
    return ret;
}

int idx_call_sweep(idx_t *idx, int64_t meta_cutoff_us, int64_t nosegs_cutoff_us, int64_t now_us,
                   size_t limit, int64_t *deleted)
{
    sqlite3_stmt *st = NULL;
    *deleted = 0;
    /* Per source: the bound is the start of its oldest live segment (the
     * audio retention has left), capped by the metadata cutoff; the
     * (source, start) index visits only calls older than it. An open call
     * that old (an end that never came) counts by its start. */
    int ret = prepare(idx,
                      "WITH b(source_id, bound) AS (SELECT s.id, min(?1, COALESCE((SELECT"
                      "  g.start_us FROM segment g WHERE g.source_id = s.id AND g.deleting = 0"
                      "  ORDER BY g.start_us LIMIT 1), ?2)) FROM source s)"
                      " DELETE FROM call WHERE id IN (SELECT c.id FROM b JOIN call c"
                      "  ON c.source_id = b.source_id AND c.start_us < b.bound"
                      "  WHERE COALESCE(c.end_us, c.start_us) <= b.bound"
                      "  AND NOT EXISTS (SELECT 1 FROM hold_call hc JOIN hold h ON h.id = hc.hold_id"
                      "   WHERE hc.call_id = c.id AND h.released_us IS NULL"
                      "   AND (h.until_us IS NULL OR h.until_us > ?3))"
                      "  LIMIT ?4)",
                      "prepare call sweep", &st);
    if (ret != VG_OK)
        return ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, meta_cutoff_us)) == VG_OK &&
        (ret = idx_priv_bind_i64(idx, st, 2, nosegs_cutoff_us)) == VG_OK &&
        (ret = idx_priv_bind_i64(idx, st, 3, now_us)) == VG_OK &&
        (ret = idx_priv_bind_i64(idx, st, 4, (int64_t)limit)) == VG_OK) {
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
            ret = idx_priv_db_fail(idx, rc, "call sweep");
        else
            *deleted = sqlite3_changes(idx->db);
    }
    sqlite3_finalize(st);
    return ret;
}
