/* Per-account preferences of the browser UI (its language). Apart from
 * accounts.c so its statements need no lazy slots: they run once per page
 * load or language switch, and are prepared per call. */
#include "index/index.h"
#include "index/index_private.h"

#include <stdio.h>
#include <string.h>

#include "core/errors.h"

int idx_account_language(idx_t *idx, const char *name, char *out, size_t size)
{
    sqlite3_stmt *st = NULL;
    int ret = VG_OK;
    int rc = sqlite3_prepare_v2(idx->db, "SELECT language FROM account WHERE name = ?1", -1, &st,
                                NULL);
    if (rc != SQLITE_OK)
        return idx_priv_db_fail(idx, rc, "prepare account language");
    if ((ret = idx_priv_bind_text(idx, st, 1, name)) != VG_OK)
        goto cleanup;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        snprintf(out, size, "%s", v ? (const char *)v : "");
    } else {
        ret = rc == SQLITE_DONE ? VG_ENOTFOUND : idx_priv_db_fail(idx, rc, "account language");
    }

cleanup:
    sqlite3_finalize(st);
    return ret;
}

int idx_account_set_language(idx_t *idx, const char *name, const char *language)
{
    sqlite3_stmt *st = NULL;
    int ret = VG_OK;
    int rc = sqlite3_prepare_v2(idx->db, "UPDATE account SET language = ?2 WHERE name = ?1", -1,
                                &st, NULL);
    if (rc != SQLITE_OK)
        return idx_priv_db_fail(idx, rc, "prepare set account language");
    if ((ret = idx_priv_bind_text(idx, st, 1, name)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 2, language)) != VG_OK)
        goto cleanup;
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        ret = idx_priv_db_fail(idx, rc, "set account language");
    else if (sqlite3_changes(idx->db) == 0)
        ret = VG_ENOTFOUND;

cleanup:
    sqlite3_finalize(st);
    return ret;
}
