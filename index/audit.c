/* Audit trail SQL: append (hash-chained), list and verify. DESIGN.md
 * invariant 6: rows are only ever inserted; the schema's triggers refuse
 * UPDATE and DELETE, and the chain shows any change made around them.
 *
 * A row's hash is SHA-256 over the previous row's hash (64 hex digits; 64
 * zeros for the first row) followed by the row's fields as netstrings
 * ("LEN:BYTES,") in a fixed order: id, ts_us, actor, ip, action, object,
 * from_us, to_us, result, detail. Lengths make the encoding unambiguous, and
 * the id ties each row to its place in the chain. */
#include "index/index.h"
#include "index/index_private.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define GENESIS_HASH "0000000000000000000000000000000000000000000000000000000000000000"

#define AUDIT_COLUMNS                                                                \
    "id, ts_us, actor, ip, action, object, from_us, to_us, result, detail, prev_hash, hash"

enum {
    U_LAST = IDX_LAZY_AUDIT,
    U_INSERT,
    U_LIST,
    U_ALL,
    U_HASH_OF,
    U_SAVEPOINT,
    U_ROLLBACK_TO,
    U_RELEASE,
    U_END
};

_Static_assert(U_END <= IDX_LAZY_FRAGS, "audit.c lazy slots overlap frags.c's");

static const char *const lazy_sql[U_END - IDX_LAZY_AUDIT] = {
#define SQL(slot) [(slot) - IDX_LAZY_AUDIT]
    SQL(U_LAST) = "SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1",
    SQL(U_INSERT) = "INSERT INTO audit(" AUDIT_COLUMNS ")"
                    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    /* The ts index narrows by time; actor and action filter what it finds. */
    SQL(U_LIST) = "SELECT " AUDIT_COLUMNS " FROM audit"
                  " WHERE ts_us >= ?1 AND ts_us < ?2 AND id > ?5"
                  " AND (?3 IS NULL OR actor = ?3) AND (?4 IS NULL OR action = ?4)"
                  " ORDER BY id LIMIT ?6",
    SQL(U_ALL) = "SELECT " AUDIT_COLUMNS " FROM audit ORDER BY id",
    SQL(U_HASH_OF) = "SELECT hash FROM audit WHERE id = ?1",
    SQL(U_SAVEPOINT) = "SAVEPOINT audited_step",
    SQL(U_ROLLBACK_TO) = "ROLLBACK TO audited_step",
    SQL(U_RELEASE) = "RELEASE audited_step",
#undef SQL
};

static sqlite3_stmt *stmt(idx_t *idx, int slot)
{
    return idx_priv_lazy(idx, slot, lazy_sql[slot - IDX_LAZY_AUDIT]);
}

static void copy_text(sqlite3_stmt *st, int col, char *dst, size_t size)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, size, "%s", t ? (const char *)t : "");
}

static void put_text(crypto_hash_sha256_state *h, const char *s)
{
    char len[24];
    size_t n = strlen(s);
    snprintf(len, sizeof(len), "%zu:", n);
    crypto_hash_sha256_update(h, (const unsigned char *)len, strlen(len));
    crypto_hash_sha256_update(h, (const unsigned char *)s, n);
    crypto_hash_sha256_update(h, (const unsigned char *)",", 1);
}

static void put_i64(crypto_hash_sha256_state *h, int64_t v)
{
    char text[24];
    snprintf(text, sizeof(text), "%" PRId64, v);
    put_text(h, text);
}

/* The row's hash given its prev_hash and fields (see the top of the file). */
static void row_hash(const idx_audit_t *r, char out[IDX_AUDIT_HASH_HEX])
{
    crypto_hash_sha256_state h;
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init(&h);
    crypto_hash_sha256_update(&h, (const unsigned char *)r->prev_hash, strlen(r->prev_hash));
    put_i64(&h, r->id);
    put_i64(&h, r->ts_us);
    put_text(&h, r->actor);
    put_text(&h, r->ip);
    put_text(&h, r->action);
    put_text(&h, r->object);
    put_i64(&h, r->from_us);
    put_i64(&h, r->to_us);
    put_text(&h, r->result);
    put_text(&h, r->detail);
    crypto_hash_sha256_final(&h, digest);
    sodium_bin2hex(out, IDX_AUDIT_HASH_HEX, digest, sizeof(digest));
}

static void row_from(sqlite3_stmt *st, void *item)
{
    idx_audit_t *r = item;
    memset(r, 0, sizeof(*r));
    r->id = sqlite3_column_int64(st, 0);
    r->ts_us = sqlite3_column_int64(st, 1);
    copy_text(st, 2, r->actor, sizeof(r->actor));
    copy_text(st, 3, r->ip, sizeof(r->ip));
    copy_text(st, 4, r->action, sizeof(r->action));
    copy_text(st, 5, r->object, sizeof(r->object));
    r->from_us = sqlite3_column_int64(st, 6);
    r->to_us = sqlite3_column_int64(st, 7);
    copy_text(st, 8, r->result, sizeof(r->result));
    copy_text(st, 9, r->detail, sizeof(r->detail));
    copy_text(st, 10, r->prev_hash, sizeof(r->prev_hash));
    copy_text(st, 11, r->hash, sizeof(r->hash));
}

/* The chain's tail: last id and hash (0 and the genesis hash when empty). */
static int chain_tail(idx_t *idx, int64_t *id, char hash[IDX_AUDIT_HASH_HEX])
{
    sqlite3_stmt *st = stmt(idx, U_LAST);
    if (!st)
        return VG_EDB;
    int ret = VG_OK;
    int rc = sqlite3_step(st);
    *id = 0;
    snprintf(hash, IDX_AUDIT_HASH_HEX, "%s", GENESIS_HASH);
    if (rc == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        copy_text(st, 1, hash, IDX_AUDIT_HASH_HEX);
    } else if (rc != SQLITE_DONE) {
        ret = idx_priv_db_fail(idx, rc, "read audit tail");
    }
    idx_priv_stmt_done(st);
    return ret;
}

int idx_audit_head(idx_t *idx, int64_t *id, char hash[IDX_AUDIT_HASH_HEX])
{
    return chain_tail(idx, id, hash);
}

int idx_audit_hash_of(idx_t *idx, int64_t id, char hash[IDX_AUDIT_HASH_HEX])
{
    sqlite3_stmt *st = stmt(idx, U_HASH_OF);
    if (!st)
        return VG_EDB;
    int ret = idx_priv_bind_i64(idx, st, 1, id);
    if (ret == VG_OK) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            copy_text(st, 0, hash, IDX_AUDIT_HASH_HEX);
        else
            ret = rc == SQLITE_DONE ? VG_ENOTFOUND : idx_priv_db_fail(idx, rc, "read audit row");
    }
    idx_priv_stmt_done(st);
    return ret;
}

static int insert_row(idx_t *idx, const idx_audit_t *r)
{
    sqlite3_stmt *st = stmt(idx, U_INSERT);
    if (!st)
        return VG_EDB;
    int ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, r->id)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 2, r->ts_us)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 3, r->actor)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 4, r->ip)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 5, r->action)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 6, r->object)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 7, r->from_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 8, r->to_us)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 9, r->result)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 10, r->detail)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 11, r->prev_hash)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 12, r->hash)) != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    int rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        ret = idx_priv_db_fail(idx, rc, "append audit row");
    idx_priv_stmt_done(st);
    return ret;
}

/* Links and stores the rows after the current tail. */
static int append_rows(idx_t *idx, idx_audit_t *rows, size_t n)
{
    int64_t last_id = 0;
    char prev[IDX_AUDIT_HASH_HEX];
    int ret = chain_tail(idx, &last_id, prev);
    for (size_t i = 0; ret == VG_OK && i < n; i++) {
        idx_audit_t *r = &rows[i];
        r->id = ++last_id;
        memcpy(r->prev_hash, prev, sizeof(prev));
        row_hash(r, r->hash);
        ret = insert_row(idx, r);
        memcpy(prev, r->hash, sizeof(prev));
    }
    return ret;
}

int idx_audit_append(idx_t *idx, idx_audit_t *rows, size_t n)
{
    if (!idx || (!rows && n))
        return VG_EINVAL;
    if (n == 0)
        return VG_OK;
    if (sodium_init() < 0)
        return VG_EIO;
    /* The tail is read and extended under one write lock, so appenders in
     * other processes (vigilctl, a second connection) never fork the chain. */
    if (!sqlite3_get_autocommit(idx->db))
        return append_rows(idx, rows, n);
    int ret = idx_begin(idx);
    if (ret != VG_OK)
        return ret;
    ret = append_rows(idx, rows, n);
    if (ret != VG_OK) {
        idx_rollback(idx);
        return ret;
    }
    return idx_commit(idx);
}

int idx_audited_change(idx_t *idx, idx_change_fn change, void *arg, idx_audit_t *rows, size_t n)
{
    if (!idx || !change || (!rows && n))
        return VG_EINVAL;
    if (sodium_init() < 0)
        return VG_EIO;
    /* BEGIN IMMEDIATE: the change's checks (the last admin, an already
     * released hold) read what no other writer can alter before commit. */
    int ret = idx_begin(idx);
    if (ret != VG_OK)
        return ret;
    ret = change(idx, arg, rows, n);
    if (ret == VG_OK && append_rows(idx, rows, n) != VG_OK)
        ret = VG_EAUDIT;
    if (ret != VG_OK) {
        idx_rollback(idx);
        return ret;
    }
    return idx_commit(idx);
}

static int run_stmt(idx_t *idx, int slot, const char *what)
{
    sqlite3_stmt *st = stmt(idx, slot);
    if (!st)
        return VG_EDB;
    int rc = sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? VG_OK : idx_priv_db_fail(idx, rc, what);
    idx_priv_stmt_done(st);
    return ret;
}

int idx_audited_step(idx_t *idx, idx_change_fn change, void *arg, idx_audit_t *rows, size_t n)
{
    if (!idx || !change || (!rows && n))
        return VG_EINVAL;
    if (sqlite3_get_autocommit(idx->db)) {
        vg_err("index %s: audited step outside a transaction", idx->path);
        return VG_EINVAL;
    }
    if (sodium_init() < 0)
        return VG_EIO;
    int ret = run_stmt(idx, U_SAVEPOINT, "open savepoint");
    if (ret != VG_OK)
        return ret;
    ret = change(idx, arg, rows, n);
    if (ret == VG_OK && append_rows(idx, rows, n) != VG_OK)
        ret = VG_EAUDIT;
    /* Some errors (a full disk, I/O) make SQLite roll the whole transaction
     * back by itself: then there is no savepoint left to undo or release. */
    if (sqlite3_get_autocommit(idx->db))
        return ret != VG_OK ? ret : VG_EDB;
    if (ret != VG_OK && run_stmt(idx, U_ROLLBACK_TO, "roll back to savepoint") != VG_OK)
        return ret;
    int rel = run_stmt(idx, U_RELEASE, "release savepoint");
    return ret != VG_OK ? ret : rel;
}

static int bind_filter(idx_t *idx, sqlite3_stmt *st, const idx_audit_filter_t *f)
{
    int ret;
    if ((ret = idx_priv_bind_i64(idx, st, 1, f->from_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 2, f->to_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 5, f->after_id)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 6, f->limit ? (int64_t)f->limit : -1)) != VG_OK)
        return ret;
    if (f->actor && (ret = idx_priv_bind_text(idx, st, 3, f->actor)) != VG_OK)
        return ret;
    if (f->action && (ret = idx_priv_bind_text(idx, st, 4, f->action)) != VG_OK)
        return ret;
    return VG_OK;
}

int idx_audit_list(idx_t *idx, const idx_audit_filter_t *f, idx_audit_t **out, size_t *n)
{
    sqlite3_stmt *st = stmt(idx, U_LIST);
    *out = NULL;
    *n = 0;
    if (!st)
        return VG_EDB;
    int ret = bind_filter(idx, st, f);
    if (ret != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    void *rows = NULL;
    ret = idx_priv_collect_rows(idx, st, "list audit rows", sizeof(**out), row_from, &rows, n);
    *out = rows;
    return ret;
}

/* One row against its predecessor: the link, then the hash. */
static int row_ok(const idx_audit_t *r, int64_t prev_id, const char *prev_hash)
{
    char expect[IDX_AUDIT_HASH_HEX];
    if (r->id != prev_id + 1 || strcmp(r->prev_hash, prev_hash) != 0)
        return 0;
    row_hash(r, expect);
    return strcmp(expect, r->hash) == 0;
}

int idx_audit_verify(idx_t *idx, int64_t *checked, int64_t *first_bad_id)
{
    sqlite3_stmt *st = stmt(idx, U_ALL);
    *checked = 0;
    *first_bad_id = 0;
    if (!st)
        return VG_EDB;
    if (sodium_init() < 0)
        return VG_EIO;
    char prev[IDX_AUDIT_HASH_HEX] = GENESIS_HASH;
    int64_t prev_id = 0;
    idx_audit_t r;
    int rc;
    /* A missing first row, a deleted middle row or an edited field each
     * break either the id sequence, the link or the hash of that row. */
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        row_from(st, &r);
        (*checked)++;
        if (!row_ok(&r, prev_id, prev)) {
            *first_bad_id = r.id;
            break;
        }
        prev_id = r.id;
        memcpy(prev, r.hash, sizeof(prev));
    }
    int ret = VG_OK;
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        ret = idx_priv_db_fail(idx, rc, "verify audit chain");
    idx_priv_stmt_done(st);
    return ret;
}

int idx_wal_autocheckpoint(idx_t *idx, int pages)
{
    int rc = sqlite3_wal_autocheckpoint(idx->db, pages);
    return rc == SQLITE_OK ? VG_OK : idx_priv_db_fail(idx, rc, "set wal_autocheckpoint");
}

/* How long a RESTART checkpoint may hold up writers while it waits for the
 * readers of older snapshots (API requests: milliseconds) to finish. */
#define RESTART_WAIT_MS 100

int idx_wal_checkpoint(idx_t *idx, int restart_above_pages, int *wal_pages)
{
    int log = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(idx->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done);
    /* A PASSIVE checkpoint copies what no reader still needs, but SQLite
     * starts the WAL over only when a writer finds no reader using it: under
     * steady reads and writes there always is one, and the WAL grows without
     * end. A RESTART checkpoint makes new writers wait (briefly) until the
     * readers have moved on, so the next commit starts the WAL over (and cuts
     * the file back to journal_size_limit). */
    if (rc == SQLITE_OK && restart_above_pages > 0 && log > restart_above_pages) {
        idx_priv_busy(idx, RESTART_WAIT_MS);
        rc = sqlite3_wal_checkpoint_v2(idx->db, NULL, SQLITE_CHECKPOINT_RESTART, &log, &done);
        idx_priv_busy(idx, IDX_BUSY_TIMEOUT_MS);
    }
    if (wal_pages)
        *wal_pages = log;
    /* BUSY: another checkpoint is running, or the readers did not move on
     * in time; the next checkpoint tries again. */
    if (rc == SQLITE_BUSY)
        return VG_OK;
    return rc == SQLITE_OK ? VG_OK : idx_priv_db_fail(idx, rc, "wal checkpoint");
}
