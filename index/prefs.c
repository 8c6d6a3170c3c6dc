/* Per-account preferences of the browser UI (its language, the account_pref
 * key-value rows such as the live wall layout). Apart from
 * accounts.c so its statements need no lazy slots: they run once per page
 * load or language switch, and are prepared per call. */
#include "index/index.h"
#include "index/index_private.h"

#include <stdio.h>
#include <string.h>

#include "core/errors.h"
#include "core/util.h"

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

int idx_pref_get(idx_t *idx, const char *account, const char *key, char **value)
{
    sqlite3_stmt *st = NULL;
    int ret = VG_OK;
    *value = NULL;
    int rc = sqlite3_prepare_v2(idx->db,
                                "SELECT p.value FROM account_pref p JOIN account a"
                                " ON a.id = p.account_id WHERE a.name = ?1 AND p.key = ?2",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return idx_priv_db_fail(idx, rc, "prepare account pref");
    if ((ret = idx_priv_bind_text(idx, st, 1, account)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 2, key)) != VG_OK)
        goto cleanup;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const unsigned char *v = sqlite3_column_text(st, 0);
        *value = vg_strdup(v ? (const char *)v : "");
    } else {
        ret = rc == SQLITE_DONE ? VG_ENOTFOUND : idx_priv_db_fail(idx, rc, "account pref");
    }

cleanup:
    sqlite3_finalize(st);
    return ret;
}

int idx_pref_set(idx_t *idx, const char *account, const char *key, const char *value)
{
    sqlite3_stmt *st = NULL;
    int ret = VG_OK;
    /* One statement: the cap on keys (a client could otherwise fill the
     * table with made-up keys) and the upsert cannot be raced apart. */
    int rc = sqlite3_prepare_v2(
        idx->db,
        "INSERT INTO account_pref (account_id, key, value)"
        " SELECT a.id, ?2, ?3 FROM account a WHERE a.name = ?1"
        "  AND ((SELECT count(*) FROM account_pref p WHERE p.account_id = a.id) < ?4"
        "   OR EXISTS (SELECT 1 FROM account_pref p WHERE p.account_id = a.id AND p.key = ?2))"
        " ON CONFLICT (account_id, key) DO UPDATE SET value = excluded.value",
        -1, &st, NULL);
    if (rc != SQLITE_OK)
        return idx_priv_db_fail(idx, rc, "prepare set account pref");
    if ((ret = idx_priv_bind_text(idx, st, 1, account)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 2, key)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 3, value)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 4, IDX_PREFS_MAX)) != VG_OK)
        goto cleanup;
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        ret = idx_priv_db_fail(idx, rc, "set account pref");
    } else if (sqlite3_changes(idx->db) == 0) {
        /* no row: either no such account or the cap */
        idx_account_t a;
        ret = idx_account_get(idx, account, &a) == VG_OK ? VG_EINVAL : VG_ENOTFOUND;
    }

cleanup:
    sqlite3_finalize(st);
    return ret;
}
