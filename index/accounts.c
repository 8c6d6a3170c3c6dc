/* Accounts SQL: users and the sources they may see, sessions, API tokens,
 * failed-login bookkeeping for throttling, and keep_days overrides set over
 * the API. Secrets never reach this file in clear text. */
#include "index/index.h"
#include "index/index_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define ACCOUNT_COLUMNS                                                              \
    "a.id, a.name, a.role, a.pwhash, a.all_sources, a.created_us,"                  \
    " COALESCE((SELECT group_concat(source, ',') FROM (SELECT source FROM account_source" \
    "   WHERE account_id = a.id ORDER BY source)), '')"

enum {
    A_ADD = IDX_LAZY_ACCOUNTS,
    A_ADD_SOURCE,
    A_GET,
    A_LIST,
    A_SET_ROLE,
    A_SET_PW,
    A_SET_ALL,
    A_CLEAR_SOURCES,
    A_DELETE,
    A_COUNT_ROLE,
    A_END_SESSIONS,
    S_ADD,
    S_GET,
    S_TOUCH,
    S_DELETE,
    T_ADD,
    T_BY_HASH,
    T_GET,
    T_LIST,
    T_REVOKE,
    F_ADD,
    F_FORGET,
    F_COUNT,
    F_CLEAR,
    F_LAST_USER,
    F_HOT,
    O_GET,
    O_SET,
    O_CLEAR,
    G_GET,
    A_END
};

_Static_assert(A_END <= IDX_LAZY_AUDIT, "accounts.c lazy slots overlap audit.c's");

static const char *const lazy_sql[A_END - IDX_LAZY_ACCOUNTS] = {
#define SQL(slot) [(slot) - IDX_LAZY_ACCOUNTS]
    SQL(A_ADD) = "INSERT INTO account(name, role, pwhash, all_sources, created_us)"
                 " VALUES (?1, ?2, ?3, ?4, ?5)",
    SQL(A_ADD_SOURCE) = "INSERT OR IGNORE INTO account_source(account_id, source) VALUES (?1, ?2)",
    SQL(A_GET) = "SELECT " ACCOUNT_COLUMNS " FROM account a WHERE a.name = ?1",
    SQL(A_LIST) = "SELECT " ACCOUNT_COLUMNS " FROM account a ORDER BY a.name",
    SQL(A_SET_ROLE) = "UPDATE account SET role = ?2 WHERE id = ?1",
    SQL(A_SET_PW) = "UPDATE account SET pwhash = ?2 WHERE id = ?1",
    SQL(A_SET_ALL) = "UPDATE account SET all_sources = ?2 WHERE id = ?1",
    SQL(A_CLEAR_SOURCES) = "DELETE FROM account_source WHERE account_id = ?1",
    SQL(A_DELETE) = "DELETE FROM account WHERE name = ?1",
    SQL(A_COUNT_ROLE) = "SELECT COUNT(*) FROM account WHERE role = ?1",
    SQL(A_END_SESSIONS) = "DELETE FROM session WHERE account_id = ?1",
    SQL(S_ADD) = "INSERT INTO session(hash, account_id, created_us, last_us) VALUES (?1, ?2, ?3, ?3)",
    SQL(S_GET) = "SELECT " ACCOUNT_COLUMNS ", s.created_us, s.last_us"
                 " FROM session s JOIN account a ON a.id = s.account_id WHERE s.hash = ?1",
    SQL(S_TOUCH) = "UPDATE session SET last_us = ?2 WHERE hash = ?1 AND last_us < ?2",
    SQL(S_DELETE) = "DELETE FROM session WHERE hash = ?1",
    SQL(T_ADD) = "INSERT INTO token(name, hash, perms, created_by, created_us)"
                 " VALUES (?1, ?2, ?3, ?4, ?5)",
    SQL(T_BY_HASH) = "SELECT id, name, perms, created_by, created_us, COALESCE(revoked_us, 0)"
                     " FROM token WHERE hash = ?1",
    SQL(T_GET) = "SELECT id, name, perms, created_by, created_us, COALESCE(revoked_us, 0)"
                 " FROM token WHERE id = ?1",
    SQL(T_LIST) = "SELECT id, name, perms, created_by, created_us, COALESCE(revoked_us, 0)"
                  " FROM token ORDER BY id",
    SQL(T_REVOKE) = "UPDATE token SET revoked_us = ?2 WHERE id = ?1 AND revoked_us IS NULL",
    SQL(F_ADD) = "INSERT INTO login_failure(user, ip, at_us) VALUES (?1, ?2, ?3)",
    SQL(F_FORGET) = "DELETE FROM login_failure WHERE at_us < ?1",
    SQL(F_COUNT) = "SELECT (SELECT COUNT(*) FROM login_failure WHERE user = ?1 AND at_us >= ?3),"
                   " (SELECT COALESCE(MIN(at_us), 0) FROM login_failure WHERE user = ?1"
                   "   AND at_us >= ?3),"
                   " (SELECT COUNT(*) FROM login_failure WHERE ip = ?2 AND at_us >= ?3),"
                   " (SELECT COALESCE(MIN(at_us), 0) FROM login_failure WHERE ip = ?2"
                   "   AND at_us >= ?3)",
    SQL(F_CLEAR) = "DELETE FROM login_failure WHERE user = ?1",
    SQL(F_LAST_USER) = "SELECT COALESCE(MAX(at_us), 0) FROM login_failure WHERE user = ?1"
                       " AND at_us >= ?2",
    /* Accounts at or over ?2 failures, plus addresses at or over ?3, since ?1. */
    SQL(F_HOT) = "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM login_failure WHERE at_us >= ?1"
                 "   GROUP BY user HAVING COUNT(*) >= ?2))"
                 " + (SELECT COUNT(*) FROM (SELECT 1 FROM login_failure WHERE at_us >= ?1"
                 "   GROUP BY ip HAVING COUNT(*) >= ?3))",
    SQL(O_GET) = "SELECT keep_days FROM source_override WHERE source = ?1",
    SQL(O_SET) = "INSERT INTO source_override(source, keep_days, set_by, set_us)"
                 " VALUES (?1, ?2, ?3, ?4) ON CONFLICT(source) DO UPDATE SET"
                 " keep_days = excluded.keep_days, set_by = excluded.set_by,"
                 " set_us = excluded.set_us",
    SQL(O_CLEAR) = "DELETE FROM source_override WHERE source = ?1",
    SQL(G_GET) = "SELECT gen FROM accounts_generation WHERE id = 1",
#undef SQL
};

static sqlite3_stmt *stmt(idx_t *idx, int slot)
{
    return idx_priv_lazy(idx, slot, lazy_sql[slot - IDX_LAZY_ACCOUNTS]);
}

/* Steps a statement that returns no rows; *changes gets the count. */
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

/* Columns of ACCOUNT_COLUMNS, starting at col 0. */
static void row_to_account(sqlite3_stmt *st, void *item)
{
    idx_account_t *a = item;
    memset(a, 0, sizeof(*a));
    a->id = sqlite3_column_int64(st, 0);
    copy_text(st, 1, a->name, sizeof(a->name));
    copy_text(st, 2, a->role, sizeof(a->role));
    copy_text(st, 3, a->pwhash, sizeof(a->pwhash));
    a->all_sources = sqlite3_column_int(st, 4);
    a->created_us = sqlite3_column_int64(st, 5);
    /* Never cut (index.h): a list that cannot be held whole grants nothing. */
    const unsigned char *list = sqlite3_column_text(st, 6);
    if (list && strlen((const char *)list) >= sizeof(a->sources)) {
        vg_err("index: the source list of account %s is too long to hold: it sees no source",
               a->name);
        a->all_sources = 0;
    } else {
        copy_text(st, 6, a->sources, sizeof(a->sources));
    }
}

/* Binds ?1 text and runs a one-row-or-none query through fill. */
static int get_one(idx_t *idx, int slot, const char *key, const char *what,
                   void (*fill)(sqlite3_stmt *, void *), void *out)
{
    sqlite3_stmt *st = stmt(idx, slot);
    if (!st)
        return VG_EDB;
    int ret = idx_priv_bind_text(idx, st, 1, key);
    if (ret == VG_OK) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            fill(st, out);
        else
            ret = rc == SQLITE_DONE ? VG_ENOTFOUND : idx_priv_db_fail(idx, rc, what);
    }
    idx_priv_stmt_done(st);
    return ret;
}

static int exec_id_text(idx_t *idx, int slot, int64_t id, const char *text, const char *what,
                        int *changes)
{
    sqlite3_stmt *st = stmt(idx, slot);
    if (!st)
        return VG_EDB;
    int ret = idx_priv_bind_i64(idx, st, 1, id);
    if (ret == VG_OK && text)
        ret = idx_priv_bind_text(idx, st, 2, text);
    if (ret != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    return run(idx, st, what, changes);
}

static int exec_id_i64(idx_t *idx, int slot, int64_t id, int64_t v, const char *what,
                       int *changes)
{
    sqlite3_stmt *st = stmt(idx, slot);
    if (!st)
        return VG_EDB;
    int ret = idx_priv_bind_i64(idx, st, 1, id);
    if (ret == VG_OK)
        ret = idx_priv_bind_i64(idx, st, 2, v);
    if (ret != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    return run(idx, st, what, changes);
}

/* ---- accounts ---- */

static void fill_account(sqlite3_stmt *st, void *out)
{
    row_to_account(st, out);
}

int idx_account_get(idx_t *idx, const char *name, idx_account_t *out)
{
    return get_one(idx, A_GET, name, "get account", fill_account, out);
}

static int set_sources(idx_t *idx, int64_t id, const char *const *sources, size_t n)
{
    if (n > IDX_LIST_MAX)
        return VG_EINVAL;
    int ret = exec_id_text(idx, A_CLEAR_SOURCES, id, NULL, "clear account sources", NULL);
    for (size_t i = 0; ret == VG_OK && i < n; i++)
        ret = exec_id_text(idx, A_ADD_SOURCE, id, sources[i], "add account source", NULL);
    return ret;
}

static int insert_account(idx_t *idx, idx_account_t *a)
{
    sqlite3_stmt *st = stmt(idx, A_ADD);
    if (!st)
        return VG_EDB;
    int ret;
    if ((ret = idx_priv_bind_text(idx, st, 1, a->name)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 2, a->role)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 3, a->pwhash)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 4, a->all_sources ? 1 : 0)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 5, a->created_us)) != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    ret = run(idx, st, "add account", NULL);
    a->id = (int64_t)sqlite3_last_insert_rowid(idx->db);
    return ret;
}

int idx_account_add(idx_t *idx, idx_account_t *a, const char *const *sources, size_t n)
{
    idx_account_t existing;
    int owned = 0;
    int ret = idx_priv_begin(idx, &owned);
    if (ret != VG_OK)
        return ret;
    /* Checked under the write lock, so "exists" is a clean answer rather
     * than a constraint failure logged as a database error. */
    ret = idx_account_get(idx, a->name, &existing);
    if (ret == VG_OK)
        ret = VG_EEXIST;
    else if (ret == VG_ENOTFOUND)
        ret = insert_account(idx, a);
    if (ret == VG_OK && !a->all_sources)
        ret = set_sources(idx, a->id, sources, n);
    return idx_priv_end(idx, owned, ret);
}

int idx_account_list(idx_t *idx, idx_account_t **out, size_t *n)
{
    sqlite3_stmt *st = stmt(idx, A_LIST);
    *out = NULL;
    *n = 0;
    if (!st)
        return VG_EDB;
    void *rows = NULL;
    int ret = idx_priv_collect_rows(idx, st, "list accounts", sizeof(**out), row_to_account, &rows, n);
    *out = rows;
    return ret;
}

static int apply_update(idx_t *idx, int64_t id, const char *role, const char *pwhash,
                        idx_sources_mode_t mode, const char *const *sources, size_t n)
{
    int ret = VG_OK;
    if (role)
        ret = exec_id_text(idx, A_SET_ROLE, id, role, "set role", NULL);
    if (ret == VG_OK && pwhash) {
        ret = exec_id_text(idx, A_SET_PW, id, pwhash, "set password", NULL);
        /* A new password is often a response to a leak: old sessions end. */
        if (ret == VG_OK)
            ret = exec_id_text(idx, A_END_SESSIONS, id, NULL, "end sessions", NULL);
    }
    if (ret == VG_OK && mode != IDX_SOURCES_KEEP)
        ret = exec_id_i64(idx, A_SET_ALL, id, mode == IDX_SOURCES_ALL, "set all_sources", NULL);
    if (ret == VG_OK && mode != IDX_SOURCES_KEEP)
        ret = set_sources(idx, id, sources, mode == IDX_SOURCES_LIST ? n : 0);
    return ret;
}

int idx_account_update(idx_t *idx, const char *name, const char *role, const char *pwhash,
                       idx_sources_mode_t mode, const char *const *sources, size_t n)
{
    idx_account_t a;
    int owned = 0;
    int ret = idx_priv_begin(idx, &owned);
    if (ret != VG_OK)
        return ret;
    ret = idx_account_get(idx, name, &a);
    if (ret == VG_OK)
        ret = apply_update(idx, a.id, role, pwhash, mode, sources, n);
    return idx_priv_end(idx, owned, ret);
}

int idx_account_delete(idx_t *idx, const char *name)
{
    sqlite3_stmt *st = stmt(idx, A_DELETE);
    if (!st)
        return VG_EDB;
    int ret = idx_priv_bind_text(idx, st, 1, name);
    if (ret != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    int changes = 0;
    ret = run(idx, st, "delete account", &changes);
    return ret == VG_OK && changes == 0 ? VG_ENOTFOUND : ret;
}

int idx_account_count_role(idx_t *idx, const char *role, int64_t *n)
{
    sqlite3_stmt *st = stmt(idx, A_COUNT_ROLE);
    if (!st)
        return VG_EDB;
    int ret = idx_priv_bind_text(idx, st, 1, role);
    if (ret == VG_OK) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *n = sqlite3_column_int64(st, 0);
        else
            ret = idx_priv_db_fail(idx, rc, "count accounts");
    }
    idx_priv_stmt_done(st);
    return ret;
}

int idx_account_keeps_admin(idx_t *idx, const char *name, int deleting, const char *role)
{
    idx_account_t a;
    int64_t admins = 0;
    int rc = idx_account_get(idx, name, &a);
    if (rc != VG_OK)
        return rc;
    int demoting = deleting || (role && strcmp(role, "admin") != 0);
    if (strcmp(a.role, "admin") != 0 || !demoting)
        return VG_OK;
    rc = idx_account_count_role(idx, "admin", &admins);
    if (rc == VG_OK && admins <= 1)
        return VG_EBUSY;
    return rc;
}

/* ---- sessions ---- */

int idx_session_add(idx_t *idx, const char *hash, int64_t account_id, int64_t now_us)
{
    sqlite3_stmt *st = stmt(idx, S_ADD);
    if (!st)
        return VG_EDB;
    int ret;
    if ((ret = idx_priv_bind_text(idx, st, 1, hash)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 2, account_id)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 3, now_us)) != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    return run(idx, st, "add session", NULL);
}

static void fill_session(sqlite3_stmt *st, void *out)
{
    idx_session_t *s = out;
    row_to_account(st, &s->account);
    s->created_us = sqlite3_column_int64(st, 7);
    s->last_us = sqlite3_column_int64(st, 8);
}

int idx_session_get(idx_t *idx, const char *hash, idx_session_t *out)
{
    return get_one(idx, S_GET, hash, "get session", fill_session, out);
}

int idx_session_touch(idx_t *idx, const char *hash, int64_t now_us)
{
    sqlite3_stmt *st = stmt(idx, S_TOUCH);
    if (!st)
        return VG_EDB;
    int ret;
    if ((ret = idx_priv_bind_text(idx, st, 1, hash)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 2, now_us)) != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    return run(idx, st, "touch session", NULL);
}

int idx_session_delete(idx_t *idx, const char *hash)
{
    sqlite3_stmt *st = stmt(idx, S_DELETE);
    if (!st)
        return VG_EDB;
    int ret = idx_priv_bind_text(idx, st, 1, hash);
    if (ret != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    return run(idx, st, "delete session", NULL);
}

/* ---- tokens ---- */

static void fill_token(sqlite3_stmt *st, void *out)
{
    idx_token_t *t = out;
    memset(t, 0, sizeof(*t));
    t->id = sqlite3_column_int64(st, 0);
    copy_text(st, 1, t->name, sizeof(t->name));
    copy_text(st, 2, t->perms, sizeof(t->perms));
    copy_text(st, 3, t->created_by, sizeof(t->created_by));
    t->created_us = sqlite3_column_int64(st, 4);
    t->revoked_us = sqlite3_column_int64(st, 5);
}

int idx_token_add(idx_t *idx, idx_token_t *t, const char *hash)
{
    sqlite3_stmt *st = stmt(idx, T_ADD);
    if (!st)
        return VG_EDB;
    int ret;
    if ((ret = idx_priv_bind_text(idx, st, 1, t->name)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 2, hash)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 3, t->perms)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 4, t->created_by)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 5, t->created_us)) != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    ret = run(idx, st, "add token", NULL);
    t->id = (int64_t)sqlite3_last_insert_rowid(idx->db);
    return ret;
}

int idx_token_by_hash(idx_t *idx, const char *hash, idx_token_t *out)
{
    return get_one(idx, T_BY_HASH, hash, "look up token", fill_token, out);
}

int idx_token_get(idx_t *idx, int64_t id, idx_token_t *out)
{
    sqlite3_stmt *st = stmt(idx, T_GET);
    if (!st)
        return VG_EDB;
    int ret = idx_priv_bind_i64(idx, st, 1, id);
    if (ret == VG_OK) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            fill_token(st, out);
        else
            ret = rc == SQLITE_DONE ? VG_ENOTFOUND : idx_priv_db_fail(idx, rc, "get token");
    }
    idx_priv_stmt_done(st);
    return ret;
}

int idx_token_list(idx_t *idx, idx_token_t **out, size_t *n)
{
    sqlite3_stmt *st = stmt(idx, T_LIST);
    *out = NULL;
    *n = 0;
    if (!st)
        return VG_EDB;
    void *rows = NULL;
    int ret = idx_priv_collect_rows(idx, st, "list tokens", sizeof(**out), fill_token, &rows, n);
    *out = rows;
    return ret;
}

int idx_token_revoke(idx_t *idx, int64_t id, int64_t now_us)
{
    idx_token_t t;
    int ret = idx_token_get(idx, id, &t);
    if (ret != VG_OK)
        return ret;
    if (t.revoked_us)
        return VG_EINVAL;
    int changes = 0;
    ret = exec_id_i64(idx, T_REVOKE, id, now_us, "revoke token", &changes);
    return ret == VG_OK && changes == 0 ? VG_EINVAL : ret;
}

/* ---- failed logins ---- */

int idx_login_failure_add(idx_t *idx, const char *user, const char *ip, int64_t now_us,
                          int64_t forget_before_us)
{
    sqlite3_stmt *st = stmt(idx, F_FORGET);
    if (!st)
        return VG_EDB;
    int ret = idx_priv_bind_i64(idx, st, 1, forget_before_us);
    if (ret == VG_OK)
        ret = run(idx, st, "forget old login failures", NULL);
    else
        idx_priv_stmt_done(st);
    if (ret != VG_OK)
        return ret;
    if (!(st = stmt(idx, F_ADD)))
        return VG_EDB;
    if ((ret = idx_priv_bind_text(idx, st, 1, user)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 2, ip)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 3, now_us)) != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    return run(idx, st, "record login failure", NULL);
}

int idx_login_failures(idx_t *idx, const char *user, const char *ip, int64_t since_us,
                       int64_t *n_user, int64_t *oldest_user, int64_t *n_ip, int64_t *oldest_ip)
{
    sqlite3_stmt *st = stmt(idx, F_COUNT);
    if (!st)
        return VG_EDB;
    int ret;
    if ((ret = idx_priv_bind_text(idx, st, 1, user)) == VG_OK &&
        (ret = idx_priv_bind_text(idx, st, 2, ip)) == VG_OK &&
        (ret = idx_priv_bind_i64(idx, st, 3, since_us)) == VG_OK) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *n_user = sqlite3_column_int64(st, 0);
            *oldest_user = sqlite3_column_int64(st, 1);
            *n_ip = sqlite3_column_int64(st, 2);
            *oldest_ip = sqlite3_column_int64(st, 3);
        } else {
            ret = idx_priv_db_fail(idx, rc, "count login failures");
        }
    }
    idx_priv_stmt_done(st);
    return ret;
}

int idx_login_failures_clear(idx_t *idx, const char *user)
{
    sqlite3_stmt *st = stmt(idx, F_CLEAR);
    if (!st)
        return VG_EDB;
    int ret = idx_priv_bind_text(idx, st, 1, user);
    if (ret != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    return run(idx, st, "clear login failures", NULL);
}

/* One integer from a statement whose binds are (text?1?, int64...). */
static int scalar(idx_t *idx, int slot, const char *text, const int64_t *ints, int n_ints,
                  const char *what, int64_t *out)
{
    sqlite3_stmt *st = stmt(idx, slot);
    if (!st)
        return VG_EDB;
    int ret = VG_OK, col = 1;
    if (text)
        ret = idx_priv_bind_text(idx, st, col++, text);
    for (int i = 0; ret == VG_OK && i < n_ints; i++)
        ret = idx_priv_bind_i64(idx, st, col++, ints[i]);
    if (ret == VG_OK) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *out = sqlite3_column_int64(st, 0);
        else
            ret = idx_priv_db_fail(idx, rc, what);
    }
    idx_priv_stmt_done(st);
    return ret;
}

/* Raises login_attack for this attempt, or clears it once no account and
 * no address is over its threshold within the window. Inside the attempt's
 * transaction. */
static int update_attack_alarm(idx_t *idx, const idx_login_policy_t *p, int64_t now_us,
                               const char *user, const char *ip, int ip_refused,
                               int64_t n_user)
{
    char msg[256];
    if (ip_refused || n_user >= p->alarm_account) {
        if (ip_refused)
            snprintf(msg, sizeof(msg), "address %s keeps trying after %lld failed logins",
                     ip, (long long)p->addr_max);
        else
            snprintf(msg, sizeof(msg), "%lld failed logins for account '%.64s' within %lld min",
                     (long long)n_user, user, (long long)(p->window_us / 60000000));
        return idx_alarm_raise(idx, IDX_ALARM_LOGIN_ATTACK, "warning", "", msg, now_us);
    }
    idx_alarm_t *active = NULL;
    size_t n = 0;
    int ret = idx_alarms_active(idx, &active, &n);
    int raised = 0;
    for (size_t i = 0; ret == VG_OK && i < n; i++)
        raised |= strcmp(active[i].kind, IDX_ALARM_LOGIN_ATTACK) == 0;
    free(active);
    if (ret != VG_OK || !raised)
        return ret;
    int64_t hot = 0;
    int64_t args[3] = {now_us - p->window_us, p->alarm_account, p->addr_max};
    ret = scalar(idx, F_HOT, NULL, args, 3, "count login attack sources", &hot);
    if (ret == VG_OK && hot == 0)
        ret = idx_alarm_clear(idx, IDX_ALARM_LOGIN_ATTACK, now_us, NULL);
    return ret;
}

/* Decides and counts in one write transaction, so parallel attempts see
 * each other: an admitted attempt is recorded as a failure before its
 * password is checked (and forgotten if it turns out right). */
static int attempt_locked(idx_t *idx, const char *user, const char *ip, int64_t now_us,
                          const idx_login_policy_t *p, idx_login_attempt_t *out)
{
    int64_t since = now_us - p->window_us;
    int64_t nu = 0, ou = 0, ni = 0, oi = 0, last = 0;
    int ret = idx_login_failures(idx, user, ip, since, &nu, &ou, &ni, &oi);
    if (ret == VG_OK)
        ret = scalar(idx, F_LAST_USER, user, &since, 1, "last login failure", &last);
    if (ret != VG_OK)
        return ret;
    int ip_refused = 0;
    if (ni >= p->addr_max) {
        /* This address has had its tries: back when the oldest ages out. */
        out->retry_us = oi + p->window_us - now_us;
        ip_refused = 1;
    } else if (nu >= p->account_free) {
        /* The account's delay grows with each failure: 1 s, 2 s, 4 s ...
         * up to delay_max. Never a lock: a right password gets in once the
         * delay after the last failure has passed, from anywhere. */
        int64_t shift = nu - p->account_free > 20 ? 20 : nu - p->account_free;
        int64_t delay = (1000000LL << shift) > p->delay_max_us ? p->delay_max_us
                                                               : (1000000LL << shift);
        if (now_us < last + delay)
            out->retry_us = last + delay - now_us;
    }
    if (!out->retry_us) {
        ret = idx_login_failure_add(idx, user, ip, now_us, since);
        nu++;
        ni++;
        out->admitted = 1;
    }
    out->n_user = nu;
    out->n_ip = ni;
    if (ret == VG_OK)
        ret = update_attack_alarm(idx, p, now_us, user, ip, ip_refused, nu);
    return ret;
}

int idx_login_attempt(idx_t *idx, const char *user, const char *ip, int64_t now_us,
                      const idx_login_policy_t *p, idx_login_attempt_t *out)
{
    memset(out, 0, sizeof(*out));
    int ret = idx_begin(idx);
    if (ret != VG_OK)
        return ret;
    ret = attempt_locked(idx, user, ip, now_us, p, out);
    if (ret == VG_OK)
        ret = idx_commit(idx);
    if (ret != VG_OK) {
        idx_rollback(idx);
        memset(out, 0, sizeof(*out));
    }
    return ret;
}

/* ---- keep_days overrides ---- */

static void fill_days(sqlite3_stmt *st, void *out)
{
    *(int *)out = sqlite3_column_int(st, 0);
}

int idx_keep_days_override(idx_t *idx, const char *source, int *days)
{
    *days = 0;
    int ret = get_one(idx, O_GET, source, "get keep_days override", fill_days, days);
    return ret == VG_ENOTFOUND ? VG_OK : ret;
}

int idx_keep_days_set(idx_t *idx, const char *source, int days, const char *by, int64_t now_us)
{
    sqlite3_stmt *st = stmt(idx, days > 0 ? O_SET : O_CLEAR);
    if (!st)
        return VG_EDB;
    int ret = idx_priv_bind_text(idx, st, 1, source);
    if (ret == VG_OK && days > 0 &&
        ((ret = idx_priv_bind_i64(idx, st, 2, days)) != VG_OK ||
         (ret = idx_priv_bind_text(idx, st, 3, by)) != VG_OK ||
         (ret = idx_priv_bind_i64(idx, st, 4, now_us)) != VG_OK)) {
        idx_priv_stmt_done(st);
        return ret;
    }
    if (ret != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    return run(idx, st, "set keep_days override", NULL);
}

/* ---- the accounts generation (schema v8 triggers bump it) ---- */

int idx_accounts_generation(idx_t *idx, int64_t *gen)
{
    sqlite3_stmt *st = stmt(idx, G_GET);
    if (!st)
        return VG_EDB;
    int ret = VG_OK;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *gen = sqlite3_column_int64(st, 0);
    else
        ret = idx_priv_db_fail(idx, rc, "read the accounts generation");
    idx_priv_stmt_done(st);
    return ret;
}
