/* The SQLite index: the only module that speaks SQL. One idx_t per thread
 * (SQLite connections are not shared between threads); WAL mode lets vigilctl
 * read while vigild writes. Schema versioned with PRAGMA user_version. */
#ifndef IDX_INDEX_H
#define IDX_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "core/clock.h"
#include "core/key.h"

typedef struct idx idx_t;

/* Source lists (an account's, a hold's) hold at most IDX_LIST_MAX names of a
 * source name's full length (63), and their comma-separated text always
 * fits IDX_LIST_TEXT_MAX: a list is kept whole or refused, never cut, since
 * a cut list can grant a name it never held ("...,cam-12" cut to "cam-1"). */
#define IDX_LIST_MAX 64
#define IDX_LIST_TEXT_MAX (IDX_LIST_MAX * 64)

typedef struct {
    int64_t id;
    char source[64];
    int64_t start_us;   /* wall-clock UTC µs of the first frame */
    int64_t end_us;     /* start_us + media duration (drift-corrected, bounded) */
    int64_t media_us;   /* duration read from the stream timestamps */
    int64_t bytes;
    char sha256[65];    /* lowercase hex */
    char codecs[64];    /* e.g. "h264,pcm_alaw" */
    int64_t init_bytes; /* size of the init part (ftyp+moov), for HLS byte ranges */
    char path[256];     /* relative to data_dir */
    /* 1: a write, fsync, rename or directory fsync failed while the file was
     * written; its bytes are kept but nothing vouches they reached the disk
     * (listed by vigilctl check, re-hashed by check --deep). */
    int unverified;
} idx_segment_t;

/* Opens (creating if needed) the index at path and migrates it to the current
 * schema. readonly opens without creating or migrating (vigilctl queries). */
int idx_open(const char *path, int readonly, idx_t **out);
void idx_close(idx_t *idx);
/* How long a statement waits for a lock before VG_EBUSY: ms > 0, or 0 for
 * the default. For callers that must not hold their thread for long (a
 * check made while an HTTP answer streams). */
void idx_busy_timeout(idx_t *idx, int ms);
/* Current schema version (PRAGMA user_version). */
int idx_schema_version(idx_t *idx);
/* The version this code migrates to. */
int idx_code_version(void);

/* Inserts a completed segment; fills seg->id. Caller guarantees the file is
 * complete and durable (DESIGN.md invariant 1). */
int idx_segment_insert(idx_t *idx, idx_segment_t *seg);
/* Segments of source overlapping [from_us, to_us), ordered by start. *out is
 * malloc'd (free it); *n may be 0. */
/* A number that changes whenever the source's segment listing may have
 * (rows added, removed, changed, marked for deletion); VG_ENOTFOUND for an
 * unknown source. Read it before the listing it validates. */
int idx_source_version(idx_t *idx, const char *source, int64_t *version);
int idx_segments_in_range(idx_t *idx, const char *source, int64_t from_us, int64_t to_us,
                          idx_segment_t **out, size_t *n);
/* Every segment row (for check and recovery), ordered by source, start. */
int idx_segments_all(idx_t *idx, idx_segment_t **out, size_t *n);
/* At most limit rows with id > after_id, by id (rows being deleted left
 * out): the full check pages through the index instead of loading it. */
int idx_segments_page(idx_t *idx, int64_t after_id, size_t limit, idx_segment_t **out,
                      size_t *n);
/* Start of the source's newest segment row (marked ones included); 0 when
 * it has none or is unknown. */
int idx_source_newest_start(idx_t *idx, const char *source, int64_t *start_us);
/* Returns VG_OK with *found = 1 when a row has this relative path. */
int idx_segment_path_exists(idx_t *idx, const char *path, int *found);
int idx_segment_delete(idx_t *idx, int64_t id);
/* Whether the source has ever been known to the index (sources are registered
 * when vigild starts with them in its config). */
int idx_source_register(idx_t *idx, const char *source, const char *kind);
int idx_source_exists(idx_t *idx, const char *source, int *found);

/* Added with index.c. Explicit transactions: idx_begin takes the write lock
 * at once (BEGIN IMMEDIATE; a plain snapshot on a read-only idx_t), no
 * nesting (VG_EINVAL). Every idx_ call between begin and commit joins the
 * transaction. idx_rollback is a no-op outside a transaction, so cleanup
 * paths may call it unconditionally. */
int idx_begin(idx_t *idx);
int idx_commit(idx_t *idx);
int idx_rollback(idx_t *idx);
/* Notes on the functions above: idx_segments_in_range returns VG_ENOTFOUND
 * (with *n = 0) when the source was never registered; it and
 * idx_segments_all skip rows marked for deletion (two-phase delete), while
 * idx_segment_path_exists still sees them. idx_segment_insert returns
 * VG_EINVAL for a bad row (empty/unterminated strings, sha256 not 64 lowercase
 * hex, end < start, duplicate path). SQLite busy maps to VG_EBUSY, disk full
 * to VG_ENOSPC, anything else to VG_EDB. idx_segment_delete returns
 * VG_ENOTFOUND for an unknown id. */
/* Writes the EXPLAIN QUERY PLAN of the statement idx_segments_in_range runs
 * (one detail line per row) into out; for tests and benchmarks. */
int idx_explain_range(idx_t *idx, char *out, size_t out_size);

/* ---- playback (index/frags.c) ---- */

/* A fragment table blob larger than this is refused (it would describe
 * ARC_FRAGS_MAX fragments many times over). */
#define IDX_FRAGS_MAX_BLOB (4 * 1024 * 1024)

/* A segment with its fragment table blob (NULL when none is stored). */
typedef struct {
    idx_segment_t seg;
    uint8_t *frags;
    size_t frags_len;
} idx_segment_frags_t;

/* Inserts a segment and its fragment table in one transaction (or the
 * caller's); blob NULL inserts the row alone. Codes as idx_segment_insert. */
int idx_segment_insert_frags(idx_t *idx, idx_segment_t *seg, const uint8_t *blob, size_t len);
/* Stores (replaces) the table of a live segment; VG_ENOTFOUND when the
 * segment is gone or being deleted. */
int idx_frags_put(idx_t *idx, int64_t segment_id, const uint8_t *blob, size_t len);
/* Segments of source overlapping [from_us, to_us) with their tables, by
 * start (rows being deleted left out). More than limit rows: VG_EINVAL.
 * Free with idx_segment_frags_free. */
int idx_segments_frags_in_range(idx_t *idx, const char *source, int64_t from_us, int64_t to_us,
                                size_t limit, idx_segment_frags_t **out, size_t *n);
void idx_segment_frags_free(idx_segment_frags_t *items, size_t n);
/* One live segment by id with its table (free out->frags); VG_ENOTFOUND
 * when there is none or it is being deleted. */
int idx_segment_get(idx_t *idx, int64_t id, idx_segment_frags_t *out);
/* Every registered source with its kind, by name (cheap: no figures). */
typedef struct {
    char name[64];
    char kind[8];
} idx_source_kind_t;
int idx_source_kinds(idx_t *idx, idx_source_kind_t **out, size_t *n);

/* ---- recorded spans (index/spans.c, schema v19) ---- */

/* Segments of a source closer than this (start after the largest end so
 * far), with the same codecs, are drawn as one recorded span. A plain
 * literal: the schema's triggers carry it as text. */
#define IDX_SPAN_MERGE_US 1500000
/* Calls fn, by start, for each recorded span of source over [from_us,
 * to_us): what merging the live segments overlapping the range (start <
 * to_us, end > from_us) by start, id would give, runs of the same codecs
 * each starting less than IDX_SPAN_MERGE_US after the largest end before
 * it; the first span starts at its first such segment's start and the last
 * ends at the largest end among such segments. Read from the span table
 * (a few rows per source), or from the segment rows while the source waits
 * for idx_spans_repair. An unknown source has none. */
typedef void (*idx_span_fn)(void *ctx, int64_t start_us, int64_t end_us, const char *codecs);
int idx_spans_walk(idx_t *idx, const char *source, int64_t from_us, int64_t to_us,
                   idx_span_fn fn, void *ctx);
/* Rebuilds the span table of every source whose spans the triggers could
 * not keep (source.span_dirty), each in its own transaction (or the
 * caller's); *rebuilt (may be NULL) gets how many. */
int idx_spans_repair(idx_t *idx, int *rebuilt);
/* Compares every kept (not dirty) source's spans with its rows, in one
 * snapshot; bad (may be NULL) gets each source that disagrees, *n_bad how
 * many (vigilctl check). */
typedef void (*idx_spans_bad_fn)(void *ctx, const char *source);
int idx_spans_verify(idx_t *idx, idx_spans_bad_fn bad, void *ctx, int *n_bad);
/* EXPLAIN QUERY PLAN of the statement that reads a dirty source's rows,
 * for tests. */
int idx_explain_spans(idx_t *idx, char *out, size_t out_size);

/* ---- retention (index/retention.c) ---- */

typedef struct {
    int64_t id;
    char case_no[128];
    char reason[256];
    char created_by[64];
    int64_t created_us;
    int64_t from_us, to_us;
    int64_t until_us;    /* 0: no expiry */
    int64_t released_us; /* 0: not released */
    char released_by[64];
    char release_reason[256];
    char sources[IDX_LIST_TEXT_MAX]; /* comma-separated names */
} idx_hold_t;

typedef struct {
    char source[64];
    char kind[8];
    int64_t segments;
    int64_t bytes;
    int64_t oldest_us;     /* start of the oldest segment; 0 when none */
    int64_t newest_us;     /* end of the newest segment; 0 when none */
    int64_t recent_bytes;  /* bytes of segments starting in the recent window */
    int64_t recent_us;     /* recorded time of those segments */
    int64_t held_bytes;    /* bytes of segments under an active hold */
} idx_source_stats_t;

typedef struct {
    int64_t run_id;
    int64_t at_us;
    char reason[32];
    char source[64];
    int64_t segments;
    int64_t bytes;
    int64_t from_us, to_us;
} idx_destruction_row_t;

typedef struct {
    int64_t segment_id;
    char source[64];
    int64_t start_us, end_us, bytes;
    char sha256[65];
} idx_destroyed_segment_t;

typedef struct {
    int64_t id;
    char kind[32];
    char severity[16];
    char sources[256];
    char message[256];
    int64_t raised_us;
} idx_alarm_t;

/* Segments of source whose end is at or before cutoff_us, not under a hold
 * active at now_us, oldest first, at most limit. */
int idx_expired_segments(idx_t *idx, const char *source, int64_t cutoff_us, int64_t now_us,
                         size_t limit, idx_segment_t **out, size_t *n);
/* Oldest segments of all sources not under a hold active at now_us, ordered by
 * (start, id) strictly after (after_start_us, after_id), at most limit. */
int idx_oldest_unheld(idx_t *idx, int64_t now_us, int64_t after_start_us, int64_t after_id,
                      size_t limit, idx_segment_t **out, size_t *n);
/* Phase one of the two-phase delete (DESIGN.md invariant 2), in one
 * transaction: marks the segments as being deleted and writes the destruction
 * record (reason, per-segment id and sha256). The decision is checked again
 * inside that transaction (invariant 3): a segment under a hold active at
 * at_us (one added after the plan was made) or ending after floor_end_us
 * (INT64_MAX: no floor, for overwrite below it) is left alone, as is one
 * already marked. marked[i] (when not NULL) tells which were marked; only
 * those may be unlinked. *run_id is 0 when nothing was marked. */
int idx_record_destruction(idx_t *idx, int64_t at_us, const char *reason,
                           const idx_segment_t *segs, size_t n, int64_t floor_end_us,
                           unsigned char *marked, int64_t *run_id);
/* Rows marked by phase one whose files may still exist and which are due:
 * never tried, or their retry time (after a failed removal) is at or before
 * due_us. */
int idx_deleting_segments(idx_t *idx, int64_t due_us, idx_segment_t **out, size_t *n);
/* Phase three: drops marked rows (one transaction). */
int idx_drop_deleted(idx_t *idx, const idx_segment_t *segs, size_t n);

typedef struct {
    idx_segment_t seg;
    char error[128];  /* why the file could not be removed */
    int64_t retry_us; /* not tried again before then */
} idx_delete_failure_t;

/* A marked row whose file could not be removed keeps its row (invariant 2)
 * with the reason and the time of the next attempt. */
int idx_delete_failed(idx_t *idx, int64_t segment_id, const char *error, int64_t retry_us);
/* Marked rows whose removal failed, by id. */
int idx_delete_failures(idx_t *idx, idx_delete_failure_t **out, size_t *n);

/* Adds a hold over sources[0..n) (all must be registered, else VG_ENOTFOUND;
 * 1 to IDX_LIST_MAX of them, else VG_EINVAL). */
int idx_hold_add(idx_t *idx, idx_hold_t *hold, const char *const *sources, size_t n);
/* Holds, newest first; released and expired ones too when all is set. */
int idx_hold_list(idx_t *idx, int all, int64_t now_us, idx_hold_t **out, size_t *n);
int idx_hold_get(idx_t *idx, int64_t id, idx_hold_t *out);
/* Releases an active hold: VG_ENOTFOUND if none such, VG_EINVAL if released. */
int idx_hold_release(idx_t *idx, int64_t id, const char *by, const char *reason, int64_t at_us);

/* Figures per registered source, by name. window_us: the recent-rate window. */
int idx_source_stats(idx_t *idx, int64_t now_us, int64_t window_us, idx_source_stats_t **out,
                     size_t *n);
/* Bytes of every indexed segment (kept by triggers: no scan). */
int idx_total_bytes(idx_t *idx, int64_t *bytes);

/* Destruction runs in [from_us, to_us), one row per run and source. */
int idx_destruction_log(idx_t *idx, int64_t from_us, int64_t to_us, idx_destruction_row_t **out,
                        size_t *n);
int idx_destruction_segments(idx_t *idx, int64_t run_id, idx_destroyed_segment_t **out,
                             size_t *n);

/* Raises (or refreshes the text of) the active alarm of this kind. */
int idx_alarm_raise(idx_t *idx, const char *kind, const char *severity, const char *sources,
                    const char *message, int64_t now_us);
/* Clears the active alarm of this kind, if any; *cleared tells. */
int idx_alarm_clear(idx_t *idx, const char *kind, int64_t now_us, int *cleared);
int idx_alarms_active(idx_t *idx, idx_alarm_t **out, size_t *n);

/* The archive's identity (see arc_claim_data_dir): "" when none is stored.
 * idx_archive_id_set stores one only where none is. */
int idx_archive_id(idx_t *idx, char *out, size_t size);
int idx_archive_id_set(idx_t *idx, const char *id, int64_t now_us);

/* Every registered source name, sorted; *out is one malloc'd block. */
int idx_source_names(idx_t *idx, char (**out)[64], size_t *n);

/* ---- accounts (index/accounts.c) ----
 * Users, their sessions, API tokens, failed logins and per-source keep_days
 * overrides. Only hashes of secrets reach this layer: Argon2id strings for
 * passwords, SHA-256 hex of session ids and tokens. */

typedef struct {
    int64_t id;
    char name[64];
    char role[16];
    char pwhash[128];   /* crypto_pwhash_str output */
    int all_sources;    /* 1: every source; else only those in sources */
    char sources[IDX_LIST_TEXT_MAX]; /* comma-separated names when !all_sources */
    int64_t created_us;
} idx_account_t;

typedef enum { IDX_SOURCES_KEEP, IDX_SOURCES_ALL, IDX_SOURCES_LIST } idx_sources_mode_t;

/* Adds an account; a->all_sources decides whether sources[0..n) apply.
 * VG_EEXIST when the name is taken; VG_EINVAL for more than IDX_LIST_MAX
 * sources. Fills a->id. */
int idx_account_add(idx_t *idx, idx_account_t *a, const char *const *sources, size_t n);
/* VG_ENOTFOUND when there is no such account. */
int idx_account_get(idx_t *idx, const char *name, idx_account_t *out);
int idx_account_list(idx_t *idx, idx_account_t **out, size_t *n);
/* Changes what is non-NULL (role, pwhash) and the source list per mode, in
 * one transaction. A password change ends the account's sessions. */
int idx_account_update(idx_t *idx, const char *name, const char *role, const char *pwhash,
                       idx_sources_mode_t mode, const char *const *sources, size_t n);
/* Deletes the account and (cascade) its sessions and source list. */
int idx_account_delete(idx_t *idx, const char *name);
int idx_account_count_role(idx_t *idx, const char *role, int64_t *n);
/* The last-admin rule, for the transaction of the change it guards (so two
 * admins demoting each other at once cannot both see the other still
 * there): VG_EBUSY when name is an admin and deleting it (deleting) or
 * giving it another role (role non-NULL) would leave no admin account;
 * VG_ENOTFOUND when there is no such account; VG_OK otherwise. The HTTP API
 * and vigilctl both apply it. */
int idx_account_keeps_admin(idx_t *idx, const char *name, int deleting, const char *role);
/* The UI language an account picked ("" when none) into out (>= 8 bytes);
 * VG_ENOTFOUND for an unknown account (index/prefs.c). */
int idx_account_language(idx_t *idx, const char *name, char *out, size_t size);
int idx_account_set_language(idx_t *idx, const char *name, const char *language);
/* Per-account UI preferences (index/prefs.c): one text value per key; the
 * caller checks key and value. At most IDX_PREFS_MAX keys per account. */
#define IDX_PREFS_MAX 32
/* *value (malloc'd, free it) is the stored text; VG_ENOTFOUND when the
 * account or the key is unknown. */
int idx_pref_get(idx_t *idx, const char *account, const char *key, char **value);
/* Stores or replaces key's value. VG_ENOTFOUND for an unknown account,
 * VG_EINVAL when it already has IDX_PREFS_MAX other keys. */
int idx_pref_set(idx_t *idx, const char *account, const char *key, const char *value);

typedef struct {
    idx_account_t account;
    int64_t created_us, last_us;
} idx_session_t;

int idx_session_add(idx_t *idx, const char *hash, int64_t account_id, int64_t now_us);
/* The session and its account; VG_ENOTFOUND when unknown. */
int idx_session_get(idx_t *idx, const char *hash, idx_session_t *out);
int idx_session_touch(idx_t *idx, const char *hash, int64_t now_us);
int idx_session_delete(idx_t *idx, const char *hash);

typedef struct {
    int64_t id;
    char name[64];
    char perms[128];      /* comma-separated permission names */
    char created_by[96];
    int64_t created_us;
    int64_t revoked_us;   /* 0: active */
} idx_token_t;

/* Stores a token by the SHA-256 hex of its secret; fills t->id. */
int idx_token_add(idx_t *idx, idx_token_t *t, const char *hash);
/* Active or revoked; VG_ENOTFOUND when no token has this hash. */
int idx_token_by_hash(idx_t *idx, const char *hash, idx_token_t *out);
int idx_token_get(idx_t *idx, int64_t id, idx_token_t *out);
int idx_token_list(idx_t *idx, idx_token_t **out, size_t *n);
/* VG_ENOTFOUND: no such token; VG_EINVAL: already revoked. */
int idx_token_revoke(idx_t *idx, int64_t id, int64_t now_us);

/* Records a failed login and forgets failures older than forget_before_us. */
int idx_login_failure_add(idx_t *idx, const char *user, const char *ip, int64_t now_us,
                          int64_t forget_before_us);
/* Failures since since_us for this user and for this ip, with the oldest of
 * each (0 when none), for throttling and its Retry-After. */
int idx_login_failures(idx_t *idx, const char *user, const char *ip, int64_t since_us,
                       int64_t *n_user, int64_t *oldest_user, int64_t *n_ip, int64_t *oldest_ip);
int idx_login_failures_clear(idx_t *idx, const char *user);

/* Login throttling shared by the API and the relay. */
typedef struct {
    int64_t window_us;     /* failures are counted over this long */
    int64_t addr_max;      /* failures from one address in the window; then refused */
    int64_t account_free;  /* failures of one account before its delay starts */
    int64_t delay_max_us;  /* the account's delay doubles per failure up to this */
    int64_t alarm_account; /* failures of one account that raise login_attack */
} idx_login_policy_t;

typedef struct {
    int admitted;          /* 1: check the password (a failure is already counted) */
    int64_t retry_us;      /* refused: how long until it may be tried again */
    int64_t n_user, n_ip;  /* failures in the window, this attempt included */
} idx_login_attempt_t;

#define IDX_ALARM_LOGIN_ATTACK "login_attack"

/* Whether user may try a password from ip now, decided and counted in one
 * write transaction so parallel attempts cannot all slip under the limit:
 * an admitted attempt is counted as a failure at once, and a right
 * password then calls idx_login_failures_clear. Raises the alarm
 * login_attack when an account reaches alarm_account failures or a refused
 * address keeps trying; clears it once neither holds within the window. */
int idx_login_attempt(idx_t *idx, const char *user, const char *ip, int64_t now_us,
                      const idx_login_policy_t *p, idx_login_attempt_t *out);

/* A number that changes with every change of accounts, their source lists,
 * tokens and ended sessions, by this process or another (vigilctl): who
 * holds live sessions re-checks them when it moves. */
int idx_accounts_generation(idx_t *idx, int64_t *gen);

/* keep_days set over the API; *days = 0 when the source has no override. */
int idx_keep_days_override(idx_t *idx, const char *source, int *days);
/* Sets (days > 0) or removes (days == 0) a source's override. */
int idx_keep_days_set(idx_t *idx, const char *source, int days, const char *by, int64_t now_us);

/* WAL checkpoints (index/audit.c). A connection that commits often can
 * leave checkpoints to another (pages 0: never checkpoint on commit), which
 * then copies the WAL into the database without blocking writers. */
int idx_wal_autocheckpoint(idx_t *idx, int pages);
/* A PASSIVE checkpoint, then, when the WAL is still longer than
 * restart_above_pages (0: never), a RESTART one that holds new writers up
 * for at most 100 ms so the WAL can start over. *wal_pages (may be NULL)
 * gets the WAL's size in pages. */
int idx_wal_checkpoint(idx_t *idx, int restart_above_pages, int *wal_pages);

/* ---- audit trail (index/audit.c) ----
 * Append-only and hash-chained (DESIGN.md invariant 6): each row's hash is
 * SHA-256 over the previous row's hash and a canonical serialisation of its
 * own fields. Nothing here updates or deletes a row. */

#define IDX_AUDIT_HASH_HEX 65

typedef struct {
    int64_t id;
    int64_t ts_us;
    char actor[96];       /* user:NAME | token:ID | system:NAME | anonymous */
    char ip[64];
    char action[48];      /* e.g. login, segments.read, user.create */
    char object[192];     /* e.g. source:hall-1, user:bob */
    int64_t from_us, to_us; /* the time range touched; 0 when none */
    char result[8];       /* ok | denied | error | started (a CDR import) */
    char detail[256];
    char prev_hash[IDX_AUDIT_HASH_HEX];
    char hash[IDX_AUDIT_HASH_HEX];
} idx_audit_t;

/* Appends rows[0..n) in order, in one transaction (or the caller's, when
 * one is open), filling id, prev_hash and hash. */
int idx_audit_append(idx_t *idx, idx_audit_t *rows, size_t n);

/* A change and its audit rows commit together or not at all (DESIGN.md
 * invariant 6): change(idx, arg, rows, n) runs inside one write transaction
 * (every idx_ call it makes joins it) and may fill the rows from what it did
 * (a new id); then the rows are chained and appended and all of it commits.
 * Returns the change's own code when it fails, VG_EAUDIT when the rows
 * cannot be written (nothing was changed), or the commit's error. */
typedef int (*idx_change_fn)(idx_t *idx, void *arg, idx_audit_t *rows, size_t n);
int idx_audited_change(idx_t *idx, idx_change_fn change, void *arg, idx_audit_t *rows, size_t n);
/* The same inside a transaction the caller holds (idx_begin), so many
 * changes share one commit (the web's group commit): change and rows run in
 * a SAVEPOINT of their own; when either fails only they are rolled back and
 * the transaction goes on. Returns as idx_audited_change; when SQLite has
 * rolled back the whole transaction by itself (an I/O error), the caller
 * sees it in idx_in_transaction() == 0 and every earlier step is lost. */
int idx_audited_step(idx_t *idx, idx_change_fn change, void *arg, idx_audit_t *rows, size_t n);
/* 1 while a transaction is open on idx. */
int idx_in_transaction(idx_t *idx);

typedef struct {
    int64_t from_us, to_us; /* ts range [from, to) */
    const char *actor;      /* NULL: any */
    const char *action;     /* NULL: any */
    int64_t after_id;       /* paging: rows with a larger id */
    size_t limit;           /* 0: no limit */
} idx_audit_filter_t;

/* Rows matching f, oldest first. */
int idx_audit_list(idx_t *idx, const idx_audit_filter_t *f, idx_audit_t **out, size_t *n);
/* Recomputes the chain from the first row. *first_bad_id is 0 when every
 * row verifies, else the id of the first row whose hash or link is wrong. */
int idx_audit_verify(idx_t *idx, int64_t *checked, int64_t *first_bad_id);
/* The chain's head: last row id and hash (0 and 64 zeros when empty). */
int idx_audit_head(idx_t *idx, int64_t *id, char hash[IDX_AUDIT_HASH_HEX]);
/* The stored hash of row id; VG_ENOTFOUND when there is no such row. */
int idx_audit_hash_of(idx_t *idx, int64_t id, char hash[IDX_AUDIT_HASH_HEX]);

/* ---- audit anchoring (index/anchor.c) ----
 * The chain shows an edit made around SQLite, but not a cut at its end, an
 * older copy of index.db put back, or rows edited and re-hashed from the
 * edit on. Checkpoints anchor it: the head (last row id and hash) and the
 * time, signed with the appliance key (core/key.h), appended one JSON line
 * each to data_dir/audit-checkpoints.jsonl (outside index.db, so restoring
 * the index does not restore them) and logged, so copies leave the box. The
 * signed message is the text
 *   "vigil-audit-checkpoint-v1 seq=SEQ row=ROW hash=HASH ts_us=TS"
 * and the line {"seq","row","hash","ts","ts_us","key_id","sig"} (sig: the
 * Ed25519 signature in base64). */

#define IDX_CHECKPOINT_FILE "audit-checkpoints.jsonl"
#define IDX_CHECKPOINT_SIG_B64 89

typedef struct {
    int64_t seq;      /* 1, 2, ... in file order */
    int64_t row_id;   /* the head it signs (0: the trail was empty) */
    char hash[IDX_AUDIT_HASH_HEX];
    int64_t ts_us;
    char key_id[17];
    char sig[IDX_CHECKPOINT_SIG_B64];
} idx_checkpoint_t;

typedef struct idx_anchor idx_anchor_t;

/* Starts checkpointing for the index of data_dir with key (which must stay
 * valid): reads the last checkpoint and logs an error when the trail no
 * longer reaches it or differs from it (cut, restored or rewritten). */
int idx_anchor_open(idx_t *idx, const char *data_dir, const vg_key_t *key, idx_anchor_t **out);
/* Signs the head when it moved since the last checkpoint, or always with
 * force; appends the line (fsynced) and logs it at info. *written (may be
 * NULL) tells whether a checkpoint was made. */
int idx_anchor_checkpoint(idx_anchor_t *a, idx_t *idx, int64_t now_us, int force, int *written);
void idx_anchor_close(idx_anchor_t *a);

/* The checkpoints of data_dir with seq > after_seq, at most limit (0: all),
 * in file order. A line that does not parse is skipped and counted in
 * *malformed (may be NULL). VG_ENOTFOUND when there is no file. */
int idx_checkpoints_read(const char *data_dir, int64_t after_seq, size_t limit,
                         idx_checkpoint_t **out, size_t *n, size_t *malformed);

/* Checks every checkpoint of data_dir (or of copy, a file of checkpoints
 * kept elsewhere: API answers' lines or journal lines, starting at any seq)
 * against the public key and the trail: signatures, the sequence, and that
 * each signed head is still in the trail with the same hash. report(ctx,
 * text) is called once per problem found (a sentence naming what is
 * wrong); *problems counts them. */
int idx_anchor_verify(idx_t *idx, const char *data_dir, const char *copy, const vg_key_t *key,
                      void (*report)(void *ctx, const char *text), void *ctx, size_t *checked,
                      int *problems);

/* ---- evidence export jobs (index/exports.c) ---- */

typedef struct {
    int64_t id;
    char owner[96];          /* the actor who asked (user:NAME, token:ID, system:...) */
    char sources[IDX_LIST_TEXT_MAX]; /* comma-separated */
    int64_t from_us, to_us;
    char case_no[128];
    char reason[256];
    int64_t hold_id;         /* 0: none */
    char state[12];          /* queued | running | done | failed */
    double progress;         /* 0..1 */
    int64_t bytes;
    char error[256];
    int64_t created_us, finished_us;
    char path[128];          /* relative to data_dir; "" until done */
    char sha256[65];         /* of the zip; "" until done */
    char subject[64];        /* calls: a subject-access request's number; "" otherwise */
} idx_export_t;

/* Inserts e (state queued); fills e->id. */
int idx_export_add(idx_t *idx, idx_export_t *e);
/* VG_ENOTFOUND when there is no such job. */
int idx_export_get(idx_t *idx, int64_t id, idx_export_t *out);
/* Jobs of owner (NULL: everyone's), newest first. */
int idx_export_list(idx_t *idx, const char *owner, idx_export_t **out, size_t *n);
/* Writes the job's state, progress, bytes, error, finished_us, path and
 * sha256; VG_ENOTFOUND when the row is gone (deleted meanwhile). */
int idx_export_update(idx_t *idx, const idx_export_t *e);
int idx_export_delete(idx_t *idx, int64_t id);
/* Jobs left queued or running by a stopped process become failed with this
 * error; *n (may be NULL) gets how many. */
int idx_export_interrupt_all(idx_t *idx, const char *error, int64_t now_us, int *n);
/* Finished (done or failed) jobs created before before_us, oldest first. */
int idx_export_expired(idx_t *idx, int64_t before_us, idx_export_t **out, size_t *n);
/* Bytes of the finished zips (they count against capacity). */
int idx_export_bytes(idx_t *idx, int64_t *bytes);

/* ---- the writer of rows aggregated by the minute (index/minutes.c) ----
 * A thread of its own (named thread_name, signals blocked) with its own
 * index connection calls flush(ctx, idx, 0) every second, to write the
 * buckets of minutes that closed, and flush(ctx, idx, 1) once at stop, to
 * write everything still counted. flush keeps what it failed to write for
 * the next call. Used by the denials below and web/aggregate.c. */
typedef struct idx_minutes idx_minutes_t;
typedef int (*idx_minutes_flush_fn)(void *ctx, idx_t *idx, int all);
int idx_minutes_start(const char *db_path, const char *thread_name, idx_minutes_flush_fn flush,
                      void *ctx, idx_minutes_t **out);
/* The writer's connection, for a flush asked for out of turn. */
idx_t *idx_minutes_index(idx_minutes_t *m);
/* Joins the thread, then the last flush. NULL is fine. */
void idx_minutes_stop(idx_minutes_t *m);

/* ---- aggregated denials (index/denials.c) ----
 * Refused requests (no or wrong credentials, missing permission, rate
 * limits) are counted, not committed one by one: one chained audit row per
 * address, actor, action and reason per minute, with detail
 * "REASON count=N last=TIME", written once the minute closes (a thread of
 * its own, with its own connection) and at close. At most IDX_DENIALS_MAX
 * address buckets are kept; more addresses in one minute share an "other"
 * bucket (ip "other"). */

#define IDX_DENIALS_MAX 256

typedef struct idx_denials idx_denials_t;
int idx_denials_open(const char *db_path, const vg_clock_t *clock, idx_denials_t **out);
/* Counts one refused request at ts_us (no I/O; d may be NULL: nothing). */
void idx_denials_note(idx_denials_t *d, int64_t ts_us, const char *ip, const char *actor,
                      const char *action, const char *object, const char *reason);
/* Writes the buckets of closed minutes now (all: every bucket). A failed
 * write keeps the counts for the next try. */
int idx_denials_flush(idx_denials_t *d, int all);
/* Denials counted since open. */
int64_t idx_denials_noted(idx_denials_t *d);
/* Stops the writer and writes everything still counted. */
void idx_denials_close(idx_denials_t *d);

/* ---- change watch (index/watch.c) ----
 * A counter that moves with every commit to the index, by this process or
 * another (read from SQLite's wal-index header, no system call): a cache of
 * rows keeps an entry only while the counter is the one it was read under.
 * 0 means the header could not be read and nothing cached can be trusted.
 * open fails (VG_EIO, logged) where there is no wal-index to read (the index
 * not open in WAL mode): callers then read every time. */
typedef struct idx_watch idx_watch_t;
int idx_watch_open(const char *db_path, idx_watch_t **out);
/* The count as of every commit finished so far (w NULL: 0). */
uint64_t idx_watch_gen(idx_watch_t *w);
void idx_watch_close(idx_watch_t *w);

/* ---- calls (index/calls.c) ----
 * A call is an interval of one audio source plus metadata from the PBX
 * (HTTP events), a CDR import or voice detection. Numbers are stored
 * normalized (E.164 where they can be, calls/calls.h) beside the raw text;
 * the index keeps their digits reversed too, for trailing-digit search.
 * Text limits below are the index's: longer values are VG_EINVAL, never cut. */

#define IDX_CALL_ID_MAX 128     /* call_id (the PBX's id) */
#define IDX_CALL_NUM_MAX 64     /* caller, callee, raw and normalized */
#define IDX_CALL_NAME_MAX 128   /* agent, queue, account */
#define IDX_CALL_DISP_MAX 64    /* disposition */
#define IDX_CALL_TAGS_MAX 2048  /* tags: a JSON array of strings, as text */
#define IDX_CALL_NOTES_MAX 8192 /* notes */

typedef struct {
    int64_t id;                        /* vigil's id */
    char call_id[IDX_CALL_ID_MAX];     /* "" : none (vad calls) */
    char source[64];
    int64_t start_us;
    int64_t end_us;                    /* 0: still open */
    char direction[12];                /* in | out | internal | "" */
    char caller[IDX_CALL_NUM_MAX], caller_raw[IDX_CALL_NUM_MAX];
    char callee[IDX_CALL_NUM_MAX], callee_raw[IDX_CALL_NUM_MAX];
    char agent[IDX_CALL_NAME_MAX], queue[IDX_CALL_NAME_MAX], account[IDX_CALL_NAME_MAX];
    char disposition[IDX_CALL_DISP_MAX];
    char tags[IDX_CALL_TAGS_MAX];      /* JSON array text; "" reads as "[]" */
    char notes[IDX_CALL_NOTES_MAX];
    char origin[8];                    /* pbx | import | vad */
    /* the announcement check (calls/announce.c); ann_state "" = not checked */
    char ann_state[12];                /* present | absent | partial | unknown */
    int64_t ann_offset_us;             /* -1: none */
    double ann_score;                  /* < 0: none */
    int64_t ann_checked_us;            /* 0: not checked */
    int ann_pbx;                       /* what the PBX said: -1 nothing, 0 no, 1 yes */
    int64_t created_us, updated_us;
} idx_call_t;

/* Clears c to "nothing known": ids 0, texts "", ann_* none, ann_pbx -1. */
void idx_call_init(idx_call_t *c);

/* Adds a call, or merges into the call with the same non-empty call_id
 * (idempotent: the same event twice is one call). A merge fills only what
 * the stored call lacks (an end, empty texts, the PBX flag): the first
 * word on a field wins; PATCH (idx_call_update) changes fields outright.
 * c->source must be registered (VG_ENOTFOUND) and of kind audio
 * (VG_EINVAL); end_us, when set, not before start_us (VG_EINVAL, also
 * against a stored start on merge). *id gets the call's id, *created 1
 * when a row was added. c->created_us is the time of the change. Joins the
 * caller's transaction if one is open. */
int idx_call_upsert(idx_t *idx, const idx_call_t *c, int64_t *id, int *created);
/* VG_ENOTFOUND when there is no such call. */
int idx_call_get(idx_t *idx, int64_t id, idx_call_t *out);
int idx_call_get_by_call_id(idx_t *idx, const char *call_id, idx_call_t *out);

/* Fields idx_call_update writes (others are left as stored). */
enum {
    IDX_CALL_F_END = 1u << 0,
    IDX_CALL_F_DIRECTION = 1u << 1,
    IDX_CALL_F_CALLER = 1u << 2,   /* caller and caller_raw */
    IDX_CALL_F_CALLEE = 1u << 3,   /* callee and callee_raw */
    IDX_CALL_F_AGENT = 1u << 4,
    IDX_CALL_F_QUEUE = 1u << 5,
    IDX_CALL_F_ACCOUNT = 1u << 6,
    IDX_CALL_F_DISPOSITION = 1u << 7,
    IDX_CALL_F_TAGS = 1u << 8,
    IDX_CALL_F_NOTES = 1u << 9,
    IDX_CALL_F_ANN_PBX = 1u << 10,
    IDX_CALL_F_START = 1u << 11,
};
/* Writes the fields of c named in mask into call id (c->updated_us is the
 * time); VG_ENOTFOUND for no such call, VG_EINVAL for a bad value or an
 * end before the start. */
int idx_call_update(idx_t *idx, int64_t id, const idx_call_t *c, unsigned mask);

/* A search (GET /api/v1/calls). Empty strings and zeros are "any". */
typedef struct {
    int64_t from_us, to_us;      /* calls starting in [from, to); 0: open */
    const char *number;          /* normalized number (caller or callee), or */
    const char *number_suffix;   /* trailing digits (caller or callee) */
    const char *agent, *queue, *account, *direction, *source;
    int64_t min_us, max_us;      /* duration bounds (open calls have none: left out) */
    const char *text;            /* an FTS5 query (callers quote users' words) */
    /* the sources the caller may see, comma-separated; NULL: all */
    const char *sources;
    size_t limit;                /* 1..1000 */
    /* cursor: rows strictly after (start, id) in newest-first order; 0: first page */
    int64_t after_start_us, after_id;
} idx_call_query_t;

/* Calls fn for each call matching q, newest first (start, then id), at
 * most q->limit. *more (may be NULL) tells whether another page follows.
 * VG_EINVAL for a query FTS5 refuses. */
typedef void (*idx_call_fn)(void *ctx, const idx_call_t *c);
int idx_call_search(idx_t *idx, const idx_call_query_t *q, idx_call_fn fn, void *ctx, int *more);
/* Calls of source overlapping [from_us, to_us), by start (at most limit). */
int idx_call_in_range(idx_t *idx, const char *source, int64_t from_us, int64_t to_us,
                      size_t limit, idx_call_fn fn, void *ctx);

/* Stores the announcement check's answer (state as in idx_call_t;
 * offset_us -1 and score < 0 for none). VG_ENOTFOUND, VG_EINVAL. */
int idx_call_set_announcement(idx_t *idx, int64_t id, const char *state, int64_t offset_us,
                              double score, int64_t checked_us);
/* Ended calls not yet checked, oldest end first, at most limit. */
int idx_call_list_ended_unchecked(idx_t *idx, size_t limit, idx_call_fn fn, void *ctx);
/* Forgets a call's check, so it is checked again (a new reference). */
int idx_call_clear_announcement(idx_t *idx, int64_t from_us, int64_t to_us, int64_t *n);

/* Holds made for calls: records which calls a hold covers (the hold's own
 * hold_source rows keep their media). Joins the caller's transaction. */
int idx_hold_call_add(idx_t *idx, int64_t hold_id, const int64_t *call_ids, size_t n);
/* The ids of the calls of hold_id, ascending; *out malloc'd. */
int idx_hold_calls(idx_t *idx, int64_t hold_id, int64_t **out, size_t *n);

/* Metadata retention: deletes (at most limit a run) calls retention has
 * taken the audio of: ended at or before the start of their source's
 * oldest live segment (or, for a source with no segment left, before
 * nosegs_cutoff_us), ended before meta_cutoff_us ([retention]
 * call_metadata_days keeps metadata longer; pass now_us when unset), and
 * not named by a hold active at now_us. *deleted gets how many. */
int idx_call_sweep(idx_t *idx, int64_t meta_cutoff_us, int64_t nosegs_cutoff_us, int64_t now_us,
                   size_t limit, int64_t *deleted);
/* EXPLAIN QUERY PLAN of the search q would run, for tests and benchmarks. */
int idx_call_explain(idx_t *idx, const idx_call_query_t *q, char *out, size_t out_size);
/* ---- QA forms, evaluations and the call-quality reports (index/qa.c) ----
 * Forms and evaluations hold JSON text that calls/qa.c validates and
 * scores; the index only stores it. The announcement reports read the call
 * table's ann_* columns. */

#define IDX_QA_KEY_MAX 64
#define IDX_QA_TITLE_MAX 256
#define IDX_QA_NAME_MAX 128 /* auditor, agent, queue */

typedef struct {
    int64_t id;
    char key[IDX_QA_KEY_MAX];
    int version;
    char title[IDX_QA_TITLE_MAX];
    char *definition; /* JSON text, malloc'd (idx_qa_forms_free) */
    char created_by[96];
    int64_t created_us;
    int used;         /* an evaluation used this version: frozen */
} idx_qa_form_t;

void idx_qa_forms_free(idx_qa_form_t *f, size_t n);
/* Stores a form under f->key: a new key gets version 1; when the newest
 * version is unused it is replaced in place, else version + 1 is added.
 * fills f->id, f->version; *added tells whether a version was added.
 * must_be_new: VG_EEXIST when the key exists (POST); must_exist:
 * VG_ENOTFOUND when it does not (PUT). */
int idx_qa_form_put(idx_t *idx, idx_qa_form_t *f, int must_be_new, int must_exist, int *added);
/* One version by id (VG_ENOTFOUND). */
int idx_qa_form_get(idx_t *idx, int64_t id, idx_qa_form_t *out);
/* The newest version of key (VG_ENOTFOUND). */
int idx_qa_form_latest(idx_t *idx, const char *key, idx_qa_form_t *out);
/* Every version of key, newest first (definitions included). */
int idx_qa_form_versions(idx_t *idx, const char *key, idx_qa_form_t **out, size_t *n);
/* The newest version of every key, by key (definitions left NULL). */
int idx_qa_form_list(idx_t *idx, idx_qa_form_t **out, size_t *n);

typedef struct {
    int64_t id, form_id;
    char form_key[IDX_QA_KEY_MAX];
    int form_version;
    int64_t call_id;   /* 0: a source range */
    char source[64];   /* "" when the source row is unknown */
    int64_t from_us, to_us;
    char auditor[96];
    char agent[IDX_QA_NAME_MAX], queue[IDX_QA_NAME_MAX];
    char *answers;     /* JSON text, malloc'd */
    char *comments;    /* JSON text, malloc'd */
    double score;
    int critical_failed;
    int version;
    int64_t supersedes;    /* 0: the first version */
    int64_t superseded_by; /* read only; 0: the current version */
    int64_t created_us;
} idx_qa_eval_t;

void idx_qa_evals_free(idx_qa_eval_t *e, size_t n);
/* Stores an evaluation and marks its form version used, in one
 * transaction. With e->supersedes set the row is its next version:
 * VG_ENOTFOUND when that row does not exist, VG_EEXIST when it already
 * has a correction (correct the newest). Fills id and version. */
int idx_qa_eval_add(idx_t *idx, idx_qa_eval_t *e);
int idx_qa_eval_get(idx_t *idx, int64_t id, idx_qa_eval_t *out);
/* Every version of the evaluation id belongs to, oldest first. */
int idx_qa_eval_history(idx_t *idx, int64_t id, idx_qa_eval_t **out, size_t *n);

typedef struct {
    int64_t call_id;      /* 0: any */
    const char *source;   /* NULL: any */
    int64_t from_us, to_us; /* overlapping [from, to) */
    const char *auditor, *agent; /* NULL: any */
    int64_t before_id;    /* cursor: ids below (0: from the newest) */
    size_t limit;
} idx_qa_eval_filter_t;
/* Current versions (not superseded) matching f, newest first. */
int idx_qa_eval_list(idx_t *idx, const idx_qa_eval_filter_t *f, idx_qa_eval_t **out, size_t *n);

/* A call's interval, source, agent and queue (the call table);
 * VG_ENOTFOUND for an unknown or still open call. */
int idx_qa_call_info(idx_t *idx, int64_t call_id, char source[64], int64_t *from_us,
                     int64_t *to_us, char agent[IDX_QA_NAME_MAX], char queue[IDX_QA_NAME_MAX]);

/* Score buckets of the QA report: [0,0.2), [0.2,0.4) ... [0.8,1]. */
#define IDX_QA_BUCKETS 5
/* Groups a report returns at most (the rest are cut, *cut set). */
#define IDX_REPORT_GROUPS_MAX 2000

typedef struct {
    char group[IDX_QA_NAME_MAX];
    int64_t count;
    double mean;
    int64_t buckets[IDX_QA_BUCKETS];
    int64_t critical_failed;
} idx_qa_report_row_t;
/* Current evaluations starting in [from, to) grouped by "agent", "queue",
 * "form" (its key) or "auditor"; sources (comma-separated names) limits
 * them to those lines and cameras, NULL: all. */
int idx_qa_report(idx_t *idx, int64_t from_us, int64_t to_us, const char *group,
                  const char *sources, idx_qa_report_row_t **out, size_t *n, int *cut);

typedef struct {
    char group[IDX_QA_NAME_MAX];
    int64_t calls, present, absent, partial, unknown;
} idx_ann_report_row_t;
/* Ended calls starting in [from, to) grouped by "source", "queue", "agent"
 * or "day" (the office day, see idx_ann_zone_set), of the lines in sources
 * (comma-separated; NULL: all). A call's state is the detector's when it
 * decided (present, absent, partial), else the PBX flag's, else unknown.
 * Whole office days come from the daily rollup, the edges from the calls;
 * VG_EINVAL for another group. */
int idx_ann_report(idx_t *idx, int64_t from_us, int64_t to_us, const char *group,
                   const char *sources, idx_ann_report_row_t **out, size_t *n, int *cut);
/* The same answer from the calls alone (what the rollup must equal). */
int idx_ann_report_scan(idx_t *idx, int64_t from_us, int64_t to_us, const char *group,
                        const char *sources, idx_ann_report_row_t **out, size_t *n, int *cut);
/* on: idx_ann_report scans the calls, in the whole process (the "before"
 * of bench/bench_reports.py). */
void idx_ann_report_set_scan(int on);
/* The office zone the rollup's days are in: its UTC offset (s) before the
 * first transition, and from each at[i] (UTC s, ascending) on, off[i].
 * name identifies it (zone name and version): when it differs from the
 * stored one, the offsets are stored and the rollup is rebuilt from the
 * calls (*rebuilt = 1), in one transaction. VG_EINVAL for offsets beyond
 * +-26 h or unordered transitions. */
int idx_ann_zone_set(idx_t *idx, const char *name, int32_t first_off, const int64_t *at,
                     const int32_t *off, size_t n, int *rebuilt);
/* The start (UTC us) of the office day days_back days before t_us's. */
int idx_ann_day_start(idx_t *idx, int64_t t_us, int days_back, int64_t *out_us);

typedef struct {
    int64_t id;
    char call_id[128];
    char source[64];
    int64_t start_us, end_us;
    char agent[IDX_QA_NAME_MAX], queue[IDX_QA_NAME_MAX];
    char state[16];   /* effective: present, absent, partial, unknown */
    char detected[16]; /* the detector's ("" when unchecked) */
    int pbx;          /* -1: no PBX flag, 0 absent, 1 present */
    double score;
    int64_t offset_us; /* -1: none */
} idx_ann_call_t;
/* Calls starting in [from, to), newest first, before_id as a cursor:
 * which = 'm' those whose announcement is missing (absent or partial),
 * 'd' those where the detector and the PBX flag disagree. */
int idx_ann_calls(idx_t *idx, char which, int64_t from_us, int64_t to_us, int64_t before_id,
                  size_t limit, idx_ann_call_t **out, size_t *n);

#endif
