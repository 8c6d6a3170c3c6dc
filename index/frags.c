/* What playback reads from the index: segments with their fragment tables
 * (table segment_frag, schema v13; the blob is opaque here, archive/frags.c
 * owns its format), one segment by id for the media route, and the
 * sources' kinds for the timeline (its spans are index/spans.c's). */
#include "index/index_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/util.h"

enum {
    F_PUT = IDX_LAZY_FRAGS,
    F_RANGE,
    F_GET,
    F_KINDS,
    F_END
};

_Static_assert(F_END <= IDX_LAZY_CALLS, "frags.c lazy slots overlap calls.c's");

static const char *const lazy_sql[F_END - IDX_LAZY_FRAGS] = {
#define SQL(slot) [(slot) - IDX_LAZY_FRAGS]
    /* Only for a live row: a table never outlives its segment. */
    SQL(F_PUT) = "INSERT OR REPLACE INTO segment_frag(segment_id, data)"
                 " SELECT id, ?2 FROM segment WHERE id = ?1 AND deleting = 0",
    /* The range statement of index.c (see max_len_us there) with the table. */
    SQL(F_RANGE) = "SELECT " IDX_SEG_COLUMNS ", f.data FROM source s"
                   " JOIN segment g ON g.source_id = s.id"
                   " LEFT JOIN segment_frag f ON f.segment_id = g.id"
                   " WHERE s.name = ?1 AND g.start_us < ?3"
                   " AND g.start_us >= ?2 - s.max_len_us AND g.end_us > ?2"
                   " AND g.deleting = 0"
                   " ORDER BY g.start_us, g.id",
    SQL(F_GET) = "SELECT " IDX_SEG_COLUMNS ", f.data FROM segment g"
                 " JOIN source s ON s.id = g.source_id"
                 " LEFT JOIN segment_frag f ON f.segment_id = g.id"
                 " WHERE g.id = ?1 AND g.deleting = 0",
    SQL(F_KINDS) = "SELECT name, kind FROM source ORDER BY name",
#undef SQL
};

static sqlite3_stmt *lazy(idx_t *idx, int slot)
{
    return idx_priv_lazy(idx, slot, lazy_sql[slot - IDX_LAZY_FRAGS]);
}

static int put(idx_t *idx, int64_t segment_id, const uint8_t *blob, size_t len)
{
    sqlite3_stmt *st = lazy(idx, F_PUT);
    if (!st)
        return VG_EDB;
    int ret = idx_priv_bind_i64(idx, st, 1, segment_id);
    if (ret == VG_OK && sqlite3_bind_blob(st, 2, blob, (int)len, SQLITE_STATIC) != SQLITE_OK)
        ret = idx_priv_db_fail(idx, SQLITE_ERROR, "bind fragment table");
    if (ret == VG_OK) {
        int rc = sqlite3_step(st);
        if (rc != SQLITE_DONE)
            ret = idx_priv_db_fail(idx, rc, "store fragment table");
        else if (sqlite3_changes(idx->db) == 0)
            ret = VG_ENOTFOUND;
    }
    idx_priv_stmt_done(st);
    return ret;
}

int idx_frags_put(idx_t *idx, int64_t segment_id, const uint8_t *blob, size_t len)
{
    if (!idx || !blob || len == 0 || len > IDX_FRAGS_MAX_BLOB)
        return VG_EINVAL;
    return put(idx, segment_id, blob, len);
}

int idx_segment_insert_frags(idx_t *idx, idx_segment_t *seg, const uint8_t *blob, size_t len)
{
    if (!blob || len == 0 || len > IDX_FRAGS_MAX_BLOB)
        return idx_segment_insert(idx, seg);
    int owned = 0;
    int ret = idx_priv_begin(idx, &owned);
    if (ret != VG_OK)
        return ret;
    ret = idx_segment_insert(idx, seg);
    if (ret == VG_OK)
        ret = put(idx, seg->id, blob, len);
    return idx_priv_end(idx, owned, ret);
}

/* Reads a row of SEG_COLUMNS + f.data into item. */
static int row_to_item(idx_t *idx, sqlite3_stmt *st, idx_segment_frags_t *item)
{
    memset(item, 0, sizeof(*item));
    int ret = idx_priv_row_to_segment(idx, st, &item->seg);
    if (ret != VG_OK)
        return ret;
    int len = sqlite3_column_bytes(st, 11);
    const void *data = sqlite3_column_blob(st, 11);
    if (data && len > 0) {
        item->frags = vg_malloc((size_t)len);
        memcpy(item->frags, data, (size_t)len);
        item->frags_len = (size_t)len;
    }
    return VG_OK;
}

void idx_segment_frags_free(idx_segment_frags_t *items, size_t n)
{
    for (size_t i = 0; items && i < n; i++)
        free(items[i].frags);
    free(items);
}

int idx_segments_frags_in_range(idx_t *idx, const char *source, int64_t from_us, int64_t to_us,
                                size_t limit, idx_segment_frags_t **out, size_t *n)
{
    if (!idx || !source || !out || !n || limit == 0)
        return VG_EINVAL;
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = lazy(idx, F_RANGE);
    if (!st)
        return VG_EDB;
    idx_segment_frags_t *arr = NULL;
    size_t len = 0, cap = 0;
    int ret, rc = SQLITE_DONE;
    if ((ret = idx_priv_bind_text(idx, st, 1, source)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 2, from_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 3, to_us)) != VG_OK)
        goto cleanup;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == limit) {
            ret = VG_EINVAL; /* more than the caller takes in one answer */
            goto cleanup;
        }
        if (len == cap) {
            cap = cap ? cap * 2 : 16;
            arr = vg_realloc(arr, cap * sizeof(*arr));
        }
        if ((ret = row_to_item(idx, st, &arr[len])) != VG_OK)
            goto cleanup;
        len++;
    }
    if (rc != SQLITE_DONE) {
        ret = idx_priv_db_fail(idx, rc, "range query with fragments");
        goto cleanup;
    }
    *out = arr;
    *n = len;
    arr = NULL;
    len = 0;

cleanup:
    idx_priv_stmt_done(st);
    idx_segment_frags_free(arr, len);
    return ret;
}

int idx_segment_get(idx_t *idx, int64_t id, idx_segment_frags_t *out)
{
    if (!idx || !out)
        return VG_EINVAL;
    memset(out, 0, sizeof(*out));
    sqlite3_stmt *st = lazy(idx, F_GET);
    if (!st)
        return VG_EDB;
    int ret = idx_priv_bind_i64(idx, st, 1, id);
    if (ret == VG_OK) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            ret = row_to_item(idx, st, out);
        else if (rc == SQLITE_DONE)
            ret = VG_ENOTFOUND;
        else
            ret = idx_priv_db_fail(idx, rc, "read segment");
    }
    idx_priv_stmt_done(st);
    return ret;
}

int idx_source_kinds(idx_t *idx, idx_source_kind_t **out, size_t *n)
{
    if (!idx || !out || !n)
        return VG_EINVAL;
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = lazy(idx, F_KINDS);
    if (!st)
        return VG_EDB;
    idx_source_kind_t *arr = NULL;
    size_t len = 0, cap = 0;
    int rc, ret = VG_OK;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap ? cap * 2 : 32;
            arr = vg_realloc(arr, cap * sizeof(*arr));
        }
        const unsigned char *name = sqlite3_column_text(st, 0), *kind = sqlite3_column_text(st, 1);
        snprintf(arr[len].name, sizeof(arr[len].name), "%s", name ? (const char *)name : "");
        snprintf(arr[len].kind, sizeof(arr[len].kind), "%s", kind ? (const char *)kind : "");
        len++;
    }
    if (rc != SQLITE_DONE) {
        ret = idx_priv_db_fail(idx, rc, "list source kinds");
        free(arr);
        arr = NULL;
        len = 0;
    }
    idx_priv_stmt_done(st);
    *out = arr;
    *n = len;
    return ret;
}
