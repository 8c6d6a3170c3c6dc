/* The SQLite index: schema, migrations (PRAGMA user_version) and every SQL
 * statement vigil runs. One idx_t wraps one connection and is used by one
 * thread at a time; WAL lets readers (vigilctl, web) run beside the writer.
 * The hot statements are prepared once in idx_open and reused. */
#include "index/index.h"
#include "index/index_private.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

/* The span table's trigger text (schema v19, see there). Every connection
 * keeps the parsed schema (vigild has one per recorder), so the text is
 * written once and kept short. */
#define SPAN_STR_(x) #x
#define SPAN_STR(x) SPAN_STR_(x)
#define SPAN_MERGE SPAN_STR(IDX_SPAN_MERGE_US)
/* The spans of source SID are exact (not waiting for a rebuild). */
#define SPAN_CLEAN(SID) "(SELECT span_dirty FROM source WHERE id = " SID ") = 0"
/* The source's last span, by key. */
#define SPAN_LAST(COLS, SID)                                                                  \
    "(SELECT " COLS " FROM span WHERE source_id = " SID                                      \
    " ORDER BY start_us DESC, first_id DESC LIMIT 1)"
/* The largest end of the live rows from (A_S, A_ID) to (B_S, B_ID) of one
 * span of source NEW.source_id: rows starting more than max_len_us before
 * B_S end before B's end, so only those after that are read. */
#define SPAN_MAX_END(A_S, A_ID, B_S, B_ID)                                                    \
    "(SELECT max(g.end_us) FROM segment g WHERE g.source_id = NEW.source_id"                 \
    " AND g.deleting = 0 AND g.start_us >= " B_S " - (SELECT max_len_us FROM source"          \
    " WHERE id = NEW.source_id) AND (g.start_us, g.id) >= (" A_S ", " A_ID ")"                \
    " AND (g.start_us, g.id) <= (" B_S ", " B_ID "))"
/* Row O of source NEW.source_id (NEW.o_start, NEW.o_id, NEW.o_end) left the
 * live set; span_work holds the facts, so that each change reads the state
 * from before any of them. With p and n the live rows before and after O
 * in its span S (p missing: O was S's first; n missing: its last):
 *  - O alone: S goes. The spans around it stay apart unless the next one
 *    would now join the previous one (same codecs, close): rebuild.
 *  - O first: S starts at n. Exact when O ended no later than n (else n's
 *    end no longer carries O's, and later rows may part from it: rebuild).
 *  - O last: S ends at the largest end up to p.
 *  - O inside: when n starts IDX_SPAN_MERGE_US or more after the largest end
 *    up to p, S splits into ..p and n..; exact when O ended no later than n.
 *    Otherwise S stays as it is, exact when O's end was not the largest so
 *    far at n.
 * sh: n, S's new first row, ends before an earlier row (shadowed). ok: the
 * change is exact; else the source is marked for a rebuild. */
#define SPAN_REMOVE                                                                           \
    "UPDATE span_work SET (s_start, s_first, s_end, s_last_start, s_last_id, codecs) ="      \
    " (SELECT start_us, first_id, end_us, last_start, last_id, codecs FROM span"              \
    " WHERE source_id = NEW.source_id AND (start_us, first_id) <= (NEW.o_start, NEW.o_id)"    \
    " ORDER BY start_us DESC, first_id DESC LIMIT 1)"                                         \
    " WHERE " SPAN_CLEAN("NEW.source_id") ";"                                                 \
    "UPDATE span_work SET (p_start, p_id) = (SELECT g.start_us, g.id FROM segment g"          \
    " WHERE g.source_id = NEW.source_id AND g.deleting = 0"                                   \
    " AND (g.start_us, g.id) < (NEW.o_start, NEW.o_id)"                                       \
    " ORDER BY g.start_us DESC, g.id DESC LIMIT 1) WHERE (o_start, o_id) <> (s_start, s_first);" \
    "UPDATE span_work SET (n_start, n_id, n_end) = (SELECT g.start_us, g.id, g.end_us"        \
    " FROM segment g WHERE g.source_id = NEW.source_id AND g.deleting = 0"                    \
    " AND (g.start_us, g.id) > (NEW.o_start, NEW.o_id) ORDER BY g.start_us, g.id LIMIT 1)"    \
    " WHERE (o_start, o_id) <> (s_last_start, s_last_id);"                                    \
    "UPDATE span_work SET e_p = " SPAN_MAX_END("s_start", "s_first", "p_start", "p_id")       \
    " WHERE p_id IS NOT NULL;"                                                                \
    "UPDATE span_work SET e_n = " SPAN_MAX_END("n_start", "n_id", "s_last_start", "s_last_id") \
    ", sh = EXISTS (SELECT 1 FROM segment x WHERE x.source_id = NEW.source_id"                \
    " AND x.deleting = 0 AND x.start_us >= n_end - (SELECT max_len_us FROM source"            \
    " WHERE id = NEW.source_id) AND (x.start_us, x.id) < (n_start, n_id) AND x.end_us > n_end)" \
    " WHERE n_id IS NOT NULL AND (p_id IS NULL OR n_start - e_p >= " SPAN_MERGE ");"          \
    "UPDATE span_work SET (v_end, v_codecs) = (SELECT end_us, codecs FROM span"               \
    " WHERE source_id = NEW.source_id AND (start_us, first_id) < (s_start, s_first)"          \
    " ORDER BY start_us DESC, first_id DESC LIMIT 1), (q_start, q_codecs) ="                  \
    " (SELECT start_us, codecs FROM span WHERE source_id = NEW.source_id"                     \
    " AND (start_us, first_id) > (s_start, s_first) ORDER BY start_us, first_id LIMIT 1)"     \
    " WHERE p_id IS NULL AND n_id IS NULL;"                                                   \
    "UPDATE span_work SET ok = s_start IS NOT NULL"                                           \
    " AND (o_start, o_id) <= (s_last_start, s_last_id)"                                       \
    " AND ((o_start, o_id) = (s_start, s_first)) = (p_id IS NULL)"                            \
    " AND ((o_start, o_id) = (s_last_start, s_last_id)) = (n_id IS NULL)"                     \
    " AND NOT coalesce(CASE WHEN p_id IS NULL AND n_id IS NULL"                               \
    "  THEN q_codecs = v_codecs AND q_start - v_end < " SPAN_MERGE                            \
    "  WHEN p_id IS NULL THEN o_end > n_end"                                                  \
    "  ELSE o_end > CASE WHEN n_start - e_p >= " SPAN_MERGE " THEN n_end"                     \
    "  ELSE max(e_p, n_end) END END, 0);"                                                     \
    "UPDATE source SET span_dirty = 1 WHERE id = NEW.source_id AND span_dirty = 0"            \
    " AND (SELECT NOT ok FROM span_work);"                                                    \
    "DELETE FROM span WHERE source_id = NEW.source_id AND (start_us, first_id) ="             \
    " (SELECT s_start, s_first FROM span_work WHERE ok AND p_id IS NULL AND n_id IS NULL);"   \
    "UPDATE span SET (start_us, first_id, shadowed) = (SELECT n_start, n_id, sh FROM span_work)" \
    " WHERE source_id = NEW.source_id AND (start_us, first_id) = (SELECT s_start, s_first"    \
    " FROM span_work WHERE ok AND p_id IS NULL AND n_id IS NOT NULL);"                        \
    "UPDATE span SET (end_us, last_start, last_id) = (SELECT e_p, p_start, p_id FROM span_work)" \
    " WHERE source_id = NEW.source_id AND (start_us, first_id) = (SELECT s_start, s_first"    \
    " FROM span_work WHERE ok AND p_id IS NOT NULL AND (n_id IS NULL"                         \
    " OR n_start - e_p >= " SPAN_MERGE "));"                                                  \
    "INSERT INTO span(source_id, start_us, first_id, end_us, last_start, last_id, codecs,"    \
    " shadowed) SELECT source_id, n_start, n_id, e_n, s_last_start, s_last_id, codecs, sh"    \
    " FROM span_work WHERE ok AND p_id IS NOT NULL AND n_id IS NOT NULL"                      \
    " AND n_start - e_p >= " SPAN_MERGE ";"                                                   \
    "DELETE FROM span_work;"
/* Hands row O's removal to SPAN_REMOVE (one copy of it in the schema). */
#define SPAN_REMOVED(O)                                                                       \
    "INSERT INTO span_work(source_id, o_start, o_id, o_end) VALUES (" O ".source_id, " O     \
    ".start_us, " O ".id, " O ".end_us);"

/* Each entry migrates version i to i+1 inside one transaction. Append new
 * versions; never edit a released one (databases in the field already ran it).
 *
 * source.max_len_us is the longest segment ever indexed for the source (kept
 * by triggers, never shrunk: an over-estimate is always safe). It turns the
 * overlap test "start < to AND end > from" into a range bounded on both sides
 * on (source_id, start_us): start_us in [from - max_len, to). Without it the
 * lower bound would be open and a one-hour query deep in a 60-day archive
 * would walk every later segment of the source. */
/* v20's text key (see there): 2^52 us, and the statement giving NEW's row
 * the next free key of its microsecond (RAISE when all 2048 are taken). */
#define IDX_FTS_START_MAX "4503599627370496"
#define IDX_FTS_GROUP_MAX                                                               \
    "(SELECT max(fts_key) FROM call WHERE fts_key >= NEW.start_us * 2048"             \
    " AND fts_key < NEW.start_us * 2048 + 2048)"
#define IDX_FTS_KEY_SET(cond)                                                           \
    "SELECT RAISE(ABORT, 'too many calls with notes start in one microsecond')"       \
    " WHERE " IDX_FTS_GROUP_MAX " = NEW.start_us * 2048 + 2047" cond ";"               \
    "UPDATE call SET fts_key = COALESCE(" IDX_FTS_GROUP_MAX " + 1, NEW.start_us * 2048)" \
    " WHERE id = NEW.id" cond ";"

static const char *const migrations[] = {
    /* v1 */
    "CREATE TABLE source ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  kind TEXT NOT NULL,"
    "  max_len_us INTEGER NOT NULL DEFAULT 0"
    ");"
    "CREATE TABLE segment ("
    "  id INTEGER PRIMARY KEY,"
    "  source_id INTEGER NOT NULL REFERENCES source(id),"
    "  start_us INTEGER NOT NULL,"
    "  end_us INTEGER NOT NULL,"
    "  media_us INTEGER NOT NULL,"
    "  bytes INTEGER NOT NULL,"
    "  sha256 TEXT NOT NULL,"
    "  codecs TEXT NOT NULL,"
    "  init_bytes INTEGER NOT NULL,"
    "  path TEXT NOT NULL UNIQUE,"
    /* Set by phase one of the two-phase delete (DESIGN.md invariant 2). */
    "  deleting INTEGER NOT NULL DEFAULT 0,"
    "  CHECK (end_us >= start_us)"
    ");"
    /* Range queries per source; also serves the foreign key's child lookup. */
    "CREATE INDEX segment_source_start ON segment(source_id, start_us);"
    /* Oldest-first across all sources (retention sweep). */
    "CREATE INDEX segment_start ON segment(start_us);"
    "CREATE TRIGGER segment_max_len_ins AFTER INSERT ON segment BEGIN"
    "  UPDATE source SET max_len_us = NEW.end_us - NEW.start_us"
    "   WHERE id = NEW.source_id AND max_len_us < NEW.end_us - NEW.start_us;"
    " END;"
    "CREATE TRIGGER segment_max_len_upd AFTER UPDATE OF start_us, end_us, source_id ON segment BEGIN"
    "  UPDATE source SET max_len_us = NEW.end_us - NEW.start_us"
    "   WHERE id = NEW.source_id AND max_len_us < NEW.end_us - NEW.start_us;"
    " END;",
    /* v2: retention. source.bytes is the live total of a source's segments,
     * kept by triggers, so capacity checks never SUM millions of rows.
     * Destruction records are never deleted by anything in vigil. */
    "ALTER TABLE source ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;"
    "UPDATE source SET bytes = (SELECT COALESCE(SUM(bytes), 0) FROM segment"
    "  WHERE source_id = source.id);"
    "CREATE TRIGGER segment_bytes_ins AFTER INSERT ON segment BEGIN"
    "  UPDATE source SET bytes = bytes + NEW.bytes WHERE id = NEW.source_id;"
    " END;"
    "CREATE TRIGGER segment_bytes_del AFTER DELETE ON segment BEGIN"
    "  UPDATE source SET bytes = bytes - OLD.bytes WHERE id = OLD.source_id;"
    " END;"
    "CREATE INDEX segment_deleting ON segment(deleting) WHERE deleting <> 0;"
    "CREATE TABLE hold ("
    "  id INTEGER PRIMARY KEY,"
    "  case_no TEXT NOT NULL CHECK (case_no <> ''),"
    "  reason TEXT NOT NULL CHECK (reason <> ''),"
    "  created_by TEXT NOT NULL,"
    "  created_us INTEGER NOT NULL,"
    "  from_us INTEGER NOT NULL,"
    "  to_us INTEGER NOT NULL,"
    "  until_us INTEGER,"
    "  released_us INTEGER,"
    "  released_by TEXT,"
    "  release_reason TEXT,"
    "  CHECK (to_us > from_us)"
    ");"
    "CREATE TABLE hold_source ("
    "  hold_id INTEGER NOT NULL REFERENCES hold(id),"
    "  source_id INTEGER NOT NULL REFERENCES source(id),"
    "  PRIMARY KEY (source_id, hold_id)"
    ") WITHOUT ROWID;"
    "CREATE TABLE destruction ("
    "  id INTEGER PRIMARY KEY,"
    "  at_us INTEGER NOT NULL,"
    "  reason TEXT NOT NULL,"
    "  segments INTEGER NOT NULL,"
    "  bytes INTEGER NOT NULL,"
    "  from_us INTEGER NOT NULL,"
    "  to_us INTEGER NOT NULL"
    ");"
    "CREATE INDEX destruction_at ON destruction(at_us);"
    "CREATE TABLE destruction_segment ("
    "  destruction_id INTEGER NOT NULL REFERENCES destruction(id),"
    "  segment_id INTEGER NOT NULL,"
    "  source TEXT NOT NULL,"
    "  start_us INTEGER NOT NULL,"
    "  end_us INTEGER NOT NULL,"
    "  bytes INTEGER NOT NULL,"
    "  sha256 TEXT NOT NULL,"
    "  path TEXT NOT NULL"
    ");"
    "CREATE INDEX destruction_segment_run ON destruction_segment(destruction_id);"
    "CREATE TABLE alarm ("
    "  id INTEGER PRIMARY KEY,"
    "  kind TEXT NOT NULL,"
    "  severity TEXT NOT NULL,"
    "  sources TEXT NOT NULL,"
    "  message TEXT NOT NULL,"
    "  raised_us INTEGER NOT NULL,"
    "  cleared_us INTEGER"
    ");"
    "CREATE UNIQUE INDEX alarm_active ON alarm(kind) WHERE cleared_us IS NULL;",
    /* v3: accounts, sessions, API tokens, login throttling, keep_days
     * overrides and the audit trail. Secrets are stored only as SHA-256
     * (sessions, tokens) or Argon2id (passwords). The audit table is
     * append-only (DESIGN.md invariant 6): triggers refuse UPDATE and
     * DELETE, and each row's hash chains to the previous one, so an edit
     * made behind SQLite's back still shows in verification. */
    "CREATE TABLE account ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL UNIQUE,"
    "  role TEXT NOT NULL,"
    "  pwhash TEXT NOT NULL,"
    "  all_sources INTEGER NOT NULL DEFAULT 1,"
    "  created_us INTEGER NOT NULL"
    ");"
    "CREATE TABLE account_source ("
    "  account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    "  source TEXT NOT NULL,"
    "  PRIMARY KEY (account_id, source)"
    ") WITHOUT ROWID;"
    "CREATE TABLE session ("
    "  hash TEXT PRIMARY KEY,"
    "  account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    "  created_us INTEGER NOT NULL,"
    "  last_us INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE INDEX session_account ON session(account_id);"
    "CREATE TABLE token ("
    "  id INTEGER PRIMARY KEY,"
    "  name TEXT NOT NULL,"
    "  hash TEXT NOT NULL UNIQUE,"
    "  perms TEXT NOT NULL,"
    "  created_by TEXT NOT NULL,"
    "  created_us INTEGER NOT NULL,"
    "  revoked_us INTEGER"
    ");"
    "CREATE TABLE login_failure ("
    "  id INTEGER PRIMARY KEY,"
    "  user TEXT NOT NULL,"
    "  ip TEXT NOT NULL,"
    "  at_us INTEGER NOT NULL"
    ");"
    "CREATE INDEX login_failure_user ON login_failure(user, at_us);"
    "CREATE INDEX login_failure_ip ON login_failure(ip, at_us);"
    "CREATE INDEX login_failure_at ON login_failure(at_us);"
    "CREATE TABLE source_override ("
    "  source TEXT PRIMARY KEY,"
    "  keep_days INTEGER NOT NULL CHECK (keep_days > 0),"
    "  set_by TEXT NOT NULL,"
    "  set_us INTEGER NOT NULL"
    ");"
    "CREATE TABLE audit ("
    "  id INTEGER PRIMARY KEY,"
    "  ts_us INTEGER NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  ip TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  object TEXT NOT NULL,"
    "  from_us INTEGER NOT NULL,"
    "  to_us INTEGER NOT NULL,"
    "  result TEXT NOT NULL,"
    "  detail TEXT NOT NULL,"
    "  prev_hash TEXT NOT NULL,"
    "  hash TEXT NOT NULL"
    ");"
    "CREATE INDEX audit_ts ON audit(ts_us);"
    "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN"
    "  SELECT RAISE(ABORT, 'audit rows are append-only');"
    " END;"
    "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN"
    "  SELECT RAISE(ABORT, 'audit rows are append-only');"
    " END;",
    /* v4: source.segments, the live count beside source.bytes, so storage
     * figures never COUNT 86 400 rows per source. One trigger per event
     * updates both. */
    "ALTER TABLE source ADD COLUMN segments INTEGER NOT NULL DEFAULT 0;"
    "UPDATE source SET segments = (SELECT COUNT(*) FROM segment WHERE source_id = source.id);"
    "DROP TRIGGER segment_bytes_ins;"
    "DROP TRIGGER segment_bytes_del;"
    "CREATE TRIGGER segment_totals_ins AFTER INSERT ON segment BEGIN"
    "  UPDATE source SET bytes = bytes + NEW.bytes, segments = segments + 1"
    "   WHERE id = NEW.source_id;"
    " END;"
    "CREATE TRIGGER segment_totals_del AFTER DELETE ON segment BEGIN"
    "  UPDATE source SET bytes = bytes - OLD.bytes, segments = segments - 1"
    "   WHERE id = OLD.source_id;"
    " END;",
    /* v5: bytes and recorded time per source and hour, so the recent rate
     * behind the forecast sums 24 small rows instead of a day of segments
     * (1440 row lookups per source at 60 s segments). */
    "CREATE TABLE source_hour ("
    "  source_id INTEGER NOT NULL,"
    "  hour INTEGER NOT NULL,"
    "  bytes INTEGER NOT NULL,"
    "  media_us INTEGER NOT NULL,"
    "  PRIMARY KEY (source_id, hour)"
    ") WITHOUT ROWID;"
    "INSERT INTO source_hour SELECT source_id, start_us / 3600000000, SUM(bytes),"
    "  SUM(end_us - start_us) FROM segment GROUP BY 1, 2;"
    "CREATE TRIGGER segment_hour_ins AFTER INSERT ON segment BEGIN"
    "  INSERT INTO source_hour VALUES (NEW.source_id, NEW.start_us / 3600000000, NEW.bytes,"
    "   NEW.end_us - NEW.start_us)"
    "  ON CONFLICT (source_id, hour) DO UPDATE SET bytes = bytes + excluded.bytes,"
    "   media_us = media_us + excluded.media_us;"
    " END;"
    "CREATE TRIGGER segment_hour_del AFTER DELETE ON segment BEGIN"
    "  UPDATE source_hour SET bytes = bytes - OLD.bytes,"
    "   media_us = media_us - (OLD.end_us - OLD.start_us)"
    "   WHERE source_id = OLD.source_id AND hour = OLD.start_us / 3600000000;"
    " END;",
    /* v6: source.seg_version changes whenever the source's listing could:
     * a row added, removed, or changed in what a listing shows (the HTTP
     * API caches answers per version). Added to the totals triggers rather
     * than beside them: one UPDATE per row, as before. */
    "ALTER TABLE source ADD COLUMN seg_version INTEGER NOT NULL DEFAULT 0;"
    "DROP TRIGGER segment_totals_ins;"
    "DROP TRIGGER segment_totals_del;"
    "CREATE TRIGGER segment_totals_ins AFTER INSERT ON segment BEGIN"
    "  UPDATE source SET bytes = bytes + NEW.bytes, segments = segments + 1,"
    "   seg_version = seg_version + 1 WHERE id = NEW.source_id;"
    " END;"
    "CREATE TRIGGER segment_totals_del AFTER DELETE ON segment BEGIN"
    "  UPDATE source SET bytes = bytes - OLD.bytes, segments = segments - 1,"
    "   seg_version = seg_version + 1 WHERE id = OLD.source_id;"
    " END;"
    "CREATE TRIGGER segment_version_upd AFTER UPDATE OF source_id, start_us, end_us, bytes,"
    "  sha256, codecs, deleting ON segment BEGIN"
    "  UPDATE source SET seg_version = seg_version + 1"
    "   WHERE id IN (OLD.source_id, NEW.source_id);"
    " END;",
    /* v7: an hour whose last segment is deleted loses its source_hour row
     * (every segment has bytes, so bytes <= 0 means none is left); before,
     * the rows of deleted hours stayed forever, 24 a day per source. */
    "DROP TRIGGER segment_hour_del;"
    "CREATE TRIGGER segment_hour_del AFTER DELETE ON segment BEGIN"
    "  UPDATE source_hour SET bytes = bytes - OLD.bytes,"
    "   media_us = media_us - (OLD.end_us - OLD.start_us)"
    "   WHERE source_id = OLD.source_id AND hour = OLD.start_us / 3600000000;"
    "  DELETE FROM source_hour"
    "   WHERE source_id = OLD.source_id AND hour = OLD.start_us / 3600000000 AND bytes <= 0;"
    " END;"
    "DELETE FROM source_hour WHERE bytes <= 0;",
    /* v8: a segment marked for deletion whose file could not be removed
     * (EACCES, EIO, EROFS, immutable, a directory in its place) keeps its
     * row with the error and the time of its next attempt, so it is
     * reported and retried without blocking the deletions after it. */
    "ALTER TABLE segment ADD COLUMN delete_error TEXT;"
    "ALTER TABLE segment ADD COLUMN delete_retry_us INTEGER NOT NULL DEFAULT 0;",
    /* v9: the archive's identity, also written to data_dir/.vigil-archive;
     * vigild refuses to start when the two disagree (a wrong or missing
     * disk). One row at most. */
    "CREATE TABLE archive (one INTEGER PRIMARY KEY CHECK (one = 1), id TEXT NOT NULL,"
    " created_us INTEGER NOT NULL);",
    /* v10: a segment whose write, fsync, rename or directory fsync failed is
     * kept, not deleted, but marked unverified: after a failed fsync the
     * page cache may not match the disk, so nothing vouches for its bytes
     * until `vigilctl check --deep` re-reads them. The partial index keeps
     * listing them cheap. */
    "ALTER TABLE segment ADD COLUMN unverified INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX segment_unverified ON segment(unverified) WHERE unverified <> 0;",
    /* v11: accounts_generation.gen changes whenever who may watch what could:
     * an account added, changed or deleted, its source list edited, a token
     * added or revoked, a session ended. vigilctl writes these tables from
     * another process, so the relay polls this one number to learn that it
     * must re-check the credentials of its live sessions. A session's
     * last_us, touched on every request, deliberately bumps nothing. */
    "CREATE TABLE accounts_generation ("
    "  id INTEGER PRIMARY KEY CHECK (id = 1),"
    "  gen INTEGER NOT NULL"
    ");"
    "INSERT INTO accounts_generation VALUES (1, 0);"
    "CREATE TRIGGER account_gen_ins AFTER INSERT ON account BEGIN"
    "  UPDATE accounts_generation SET gen = gen + 1 WHERE id = 1; END;"
    "CREATE TRIGGER account_gen_upd AFTER UPDATE ON account BEGIN"
    "  UPDATE accounts_generation SET gen = gen + 1 WHERE id = 1; END;"
    "CREATE TRIGGER account_gen_del AFTER DELETE ON account BEGIN"
    "  UPDATE accounts_generation SET gen = gen + 1 WHERE id = 1; END;"
    "CREATE TRIGGER account_source_gen_ins AFTER INSERT ON account_source BEGIN"
    "  UPDATE accounts_generation SET gen = gen + 1 WHERE id = 1; END;"
    "CREATE TRIGGER account_source_gen_del AFTER DELETE ON account_source BEGIN"
    "  UPDATE accounts_generation SET gen = gen + 1 WHERE id = 1; END;"
    "CREATE TRIGGER token_gen_ins AFTER INSERT ON token BEGIN"
    "  UPDATE accounts_generation SET gen = gen + 1 WHERE id = 1; END;"
    "CREATE TRIGGER token_gen_upd AFTER UPDATE ON token BEGIN"
    "  UPDATE accounts_generation SET gen = gen + 1 WHERE id = 1; END;"
    "CREATE TRIGGER token_gen_del AFTER DELETE ON token BEGIN"
    "  UPDATE accounts_generation SET gen = gen + 1 WHERE id = 1; END;"
    "CREATE TRIGGER session_gen_del AFTER DELETE ON session BEGIN"
    "  UPDATE accounts_generation SET gen = gen + 1 WHERE id = 1; END;",
    /* v12: the language a user picked in the browser UI ('' = the browser's). */
    "ALTER TABLE account ADD COLUMN language TEXT NOT NULL DEFAULT '';",
    /* v13: each segment's fragment table (archive/frags.c has the blob's
     * format), written with its row so playback names HLS byte ranges
     * without opening the file. One row per segment, not per fragment: 30
     * fragments x 8.64 M segments would be a quarter of a billion rows.
     * Rows from before v13 and recovered files have none until playback
     * reads the file once. The trigger drops the table with every segment
     * row, whichever path drops it. */
    "CREATE TABLE segment_frag ("
    "  segment_id INTEGER PRIMARY KEY,"
    "  data BLOB NOT NULL"
    ");"
    "CREATE TRIGGER segment_frag_del AFTER DELETE ON segment BEGIN"
    "  DELETE FROM segment_frag WHERE segment_id = OLD.id;"
    " END;",
    /* v14: evidence export jobs (playback/exporter.c). A job outlives the
     * process that ran it: a row left queued or running at start was cut
     * by a stop and is marked failed. path is relative to data_dir and
     * names the finished zip only once state is 'done'. */
    "CREATE TABLE export ("
    "  id INTEGER PRIMARY KEY,"
    "  owner TEXT NOT NULL,"
    "  sources TEXT NOT NULL,"
    "  from_us INTEGER NOT NULL,"
    "  to_us INTEGER NOT NULL,"
    "  case_no TEXT NOT NULL,"
    "  reason TEXT NOT NULL,"
    "  hold_id INTEGER NOT NULL DEFAULT 0,"
    "  state TEXT NOT NULL CHECK (state IN ('queued','running','done','failed')),"
    "  progress REAL NOT NULL DEFAULT 0,"
    "  bytes INTEGER NOT NULL DEFAULT 0,"
    "  error TEXT NOT NULL DEFAULT '',"
    "  created_us INTEGER NOT NULL,"
    "  finished_us INTEGER NOT NULL DEFAULT 0,"
    "  path TEXT NOT NULL DEFAULT '',"
    "  sha256 TEXT NOT NULL DEFAULT ''"
    ");"
    "CREATE INDEX export_owner ON export(owner, id);"
    "CREATE INDEX export_state ON export(state);",
    /* v15: calls (index/calls.c). A call is an interval of one audio source
     * plus what the PBX, a CDR import or voice detection says about it.
     * call_id is the PBX's id (UNIQUE: a repeated event finds its row; NULL
     * for vad calls, which SQLite lets repeat). caller_rev/callee_rev hold
     * the normalized numbers' digits reversed, so a trailing-digits search
     * ("*4567") is a prefix range on an index instead of a scan of 5 M rows.
     * end_us NULL: the call is still open. The FTS5 table indexes notes and
     * tags (external content: no second copy of the text), kept by triggers.
     * hold_call records which calls a hold was made for (the hold itself
     * covers their intervals through hold_source like any other hold). */
    "CREATE TABLE call ("
    "  id INTEGER PRIMARY KEY,"
    "  call_id TEXT UNIQUE,"
    "  source_id INTEGER NOT NULL REFERENCES source(id),"
    "  start_us INTEGER NOT NULL,"
    "  end_us INTEGER,"
    "  direction TEXT NOT NULL DEFAULT '' CHECK (direction IN ('','in','out','internal')),"
    "  caller TEXT NOT NULL DEFAULT '',"
    "  caller_raw TEXT NOT NULL DEFAULT '',"
    "  caller_rev TEXT NOT NULL DEFAULT '',"
    "  callee TEXT NOT NULL DEFAULT '',"
    "  callee_raw TEXT NOT NULL DEFAULT '',"
    "  callee_rev TEXT NOT NULL DEFAULT '',"
    "  agent TEXT NOT NULL DEFAULT '',"
    "  queue TEXT NOT NULL DEFAULT '',"
    "  account TEXT NOT NULL DEFAULT '',"
    "  disposition TEXT NOT NULL DEFAULT '',"
    "  tags TEXT NOT NULL DEFAULT '[]',"
    "  notes TEXT NOT NULL DEFAULT '',"
    "  origin TEXT NOT NULL CHECK (origin IN ('pbx','import','vad')),"
    "  ann_state TEXT CHECK (ann_state IN ('present','absent','partial','unknown')),"
    "  ann_offset_us INTEGER,"
    "  ann_score REAL,"
    "  ann_checked_us INTEGER,"
    "  ann_pbx INTEGER,"
    "  created_us INTEGER NOT NULL,"
    "  updated_us INTEGER NOT NULL,"
    "  CHECK (end_us IS NULL OR end_us >= start_us)"
    ");"
    "CREATE INDEX call_start ON call(start_us DESC, id DESC);"
    "CREATE INDEX call_source_start ON call(source_id, start_us);"
    "CREATE INDEX call_caller ON call(caller, start_us) WHERE caller <> '';"
    "CREATE INDEX call_callee ON call(callee, start_us) WHERE callee <> '';"
    "CREATE INDEX call_caller_rev ON call(caller_rev) WHERE caller_rev <> '';"
    "CREATE INDEX call_callee_rev ON call(callee_rev) WHERE callee_rev <> '';"
    "CREATE INDEX call_agent ON call(agent, start_us) WHERE agent <> '';"
    "CREATE INDEX call_queue ON call(queue, start_us) WHERE queue <> '';"
    "CREATE INDEX call_account ON call(account, start_us) WHERE account <> '';"
    /* Ended calls the announcement check has not seen yet: a short index. */
    "CREATE INDEX call_unchecked ON call(end_us) WHERE ann_checked_us IS NULL"
    "  AND end_us IS NOT NULL;"
    "CREATE VIRTUAL TABLE call_fts USING fts5(notes, tags, content='call',"
    "  content_rowid='id');"
    /* Only calls with notes or tags are indexed: FTS5 flushes its pending
     * terms at every statement savepoint, which a trigger opens per row, so
     * each indexed row costs a small segment write; most calls have neither. */
    "CREATE TRIGGER call_fts_ins AFTER INSERT ON call"
    "  WHEN NEW.notes <> '' OR NEW.tags <> '[]' BEGIN"
    "  INSERT INTO call_fts(rowid, notes, tags) VALUES (NEW.id, NEW.notes, NEW.tags);"
    " END;"
    "CREATE TRIGGER call_fts_del AFTER DELETE ON call"
    "  WHEN OLD.notes <> '' OR OLD.tags <> '[]' BEGIN"
    "  INSERT INTO call_fts(call_fts, rowid, notes, tags)"
    "   VALUES ('delete', OLD.id, OLD.notes, OLD.tags);"
    " END;"
    /* One trigger, the delete before the insert: the two share postings. */
    "CREATE TRIGGER call_fts_upd AFTER UPDATE OF notes, tags ON call BEGIN"
    "  INSERT INTO call_fts(call_fts, rowid, notes, tags)"
    "   SELECT 'delete', OLD.id, OLD.notes, OLD.tags WHERE OLD.notes <> '' OR OLD.tags <> '[]';"
    "  INSERT INTO call_fts(rowid, notes, tags)"
    "   SELECT NEW.id, NEW.notes, NEW.tags WHERE NEW.notes <> '' OR NEW.tags <> '[]';"
    " END;"
    "CREATE TABLE hold_call ("
    "  hold_id INTEGER NOT NULL REFERENCES hold(id),"
    "  call_id INTEGER NOT NULL,"
    "  PRIMARY KEY (hold_id, call_id)"
    ") WITHOUT ROWID;"
    "CREATE INDEX hold_call_call ON hold_call(call_id);"
    /* A subject-access request (152-FZ art. 14) is an export job whose
     * bundle is every call of one number: subject holds that number. */
    "ALTER TABLE export ADD COLUMN subject TEXT NOT NULL DEFAULT '';",
    /* v16: QA forms and evaluations (index/qa.c). A form is versioned by
     * key: once an evaluation used a version (used = 1) its text is frozen
     * by a trigger and an edit makes the next version. An evaluation is
     * never changed or deleted (triggers): a correction is a new row that
     * supersedes it, at most one per row, so a history is a chain. call_id
     * names a call (no foreign key: the call's metadata may age out while
     * the evaluation, with its own copy of interval, agent and queue, stays
     * the record of what the auditor scored). */
    "CREATE TABLE qa_form ("
    "  id INTEGER PRIMARY KEY,"
    "  key TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  title TEXT NOT NULL,"
    "  definition TEXT NOT NULL,"
    "  created_by TEXT NOT NULL,"
    "  created_us INTEGER NOT NULL,"
    "  used INTEGER NOT NULL DEFAULT 0,"
    "  UNIQUE (key, version)"
    ");"
    "CREATE TRIGGER qa_form_frozen BEFORE UPDATE OF key, version, title, definition ON qa_form"
    "  WHEN OLD.used <> 0 BEGIN SELECT RAISE(ABORT, 'qa form version is in use'); END;"
    "CREATE TRIGGER qa_form_keep BEFORE DELETE ON qa_form WHEN OLD.used <> 0"
    "  BEGIN SELECT RAISE(ABORT, 'qa form version is in use'); END;"
    "CREATE TABLE qa_evaluation ("
    "  id INTEGER PRIMARY KEY,"
    "  form_id INTEGER NOT NULL REFERENCES qa_form(id),"
    "  call_id INTEGER,"
    "  source_id INTEGER REFERENCES source(id),"
    "  from_us INTEGER NOT NULL,"
    "  to_us INTEGER NOT NULL,"
    "  auditor TEXT NOT NULL,"
    "  agent TEXT NOT NULL DEFAULT '',"
    "  queue TEXT NOT NULL DEFAULT '',"
    "  answers TEXT NOT NULL,"
    "  score REAL NOT NULL,"
    "  critical_failed INTEGER NOT NULL,"
    "  comments TEXT NOT NULL DEFAULT '[]',"
    "  version INTEGER NOT NULL DEFAULT 1,"
    "  supersedes INTEGER REFERENCES qa_evaluation(id),"
    "  created_us INTEGER NOT NULL,"
    "  CHECK (to_us > from_us)"
    ");"
    "CREATE UNIQUE INDEX qa_evaluation_supersedes ON qa_evaluation(supersedes)"
    "  WHERE supersedes IS NOT NULL;"
    "CREATE INDEX qa_evaluation_call ON qa_evaluation(call_id) WHERE call_id IS NOT NULL;"
    "CREATE INDEX qa_evaluation_from ON qa_evaluation(from_us);"
    "CREATE TRIGGER qa_evaluation_immutable BEFORE UPDATE ON qa_evaluation"
    "  BEGIN SELECT RAISE(ABORT, 'qa evaluations are immutable'); END;"
    "CREATE TRIGGER qa_evaluation_kept BEFORE DELETE ON qa_evaluation"
    "  BEGIN SELECT RAISE(ABORT, 'qa evaluations are immutable'); END;",
    /* v17: per-account preferences of the browser UI (index/prefs.c), such
     * as the live wall's layout: a small JSON value per key, gone with
     * the account. */
    "CREATE TABLE account_pref ("
    "  account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    "  key TEXT NOT NULL,"
    "  value TEXT NOT NULL,"
    "  PRIMARY KEY (account_id, key)"
    ") WITHOUT ROWID;",
    /* v18: the announcement report's daily rollup (index/qa.c). Reports
     * over weeks of a busy contact centre would otherwise read every call:
     * ann_day holds, per office-time-zone day, the ended calls' counts per
     * effective announcement state, by line (dim 0), by queue (dim 1) and by
     * agent (dim 2); queue and agent rows exist per line (for accounts
     * limited to some lines) and for all lines (source_id 0). Triggers on
     * call keep it in the same transaction as any writer (PBX events,
     * imports, the announcement check, recheck, edits, retention), so no
     * writer can forget it. The day is the office's, not UTC's, so the
     * report's day grouping can come from it: ann_zone holds the office
     * zone's UTC offsets from each transition on (filled by vigild from
     * [server] timezone, see idx_ann_zone_set; empty: UTC). */
    "CREATE TABLE ann_zone ("
    "  from_s INTEGER PRIMARY KEY,"
    "  off_s INTEGER NOT NULL"
    ");"
    "CREATE TABLE ann_zone_name ("
    "  one INTEGER PRIMARY KEY CHECK (one = 1),"
    "  name TEXT NOT NULL"
    ");"
    "INSERT INTO ann_zone_name(one, name) VALUES (1, '');"
    "CREATE TABLE ann_day ("
    "  dim INTEGER NOT NULL,"
    "  source_id INTEGER NOT NULL,"
    "  day INTEGER NOT NULL,"
    "  value TEXT NOT NULL,"
    "  calls INTEGER NOT NULL,"
    "  present INTEGER NOT NULL,"
    "  absent INTEGER NOT NULL,"
    "  partial INTEGER NOT NULL,"
    "  unknown INTEGER NOT NULL,"
    "  PRIMARY KEY (dim, source_id, day, value)"
    ") WITHOUT ROWID;"
    "CREATE TRIGGER call_ann_ins AFTER INSERT ON call WHEN NEW.end_us IS NOT NULL BEGIN "
    IDX_ANN_ADD("NEW", "1") IDX_ANN_UPSERT "; END;"
    "CREATE TRIGGER call_ann_del AFTER DELETE ON call WHEN OLD.end_us IS NOT NULL BEGIN "
    IDX_ANN_ADD("OLD", "-1") IDX_ANN_UPSERT "; " IDX_ANN_DROP_ZERO("OLD") "; END;"
    /* UPDATE OF fires for every column in the SET list, changed or not (a
     * PBX event sets them all): WHEN skips what leaves the counts alone. */
    "CREATE TRIGGER call_ann_upd AFTER UPDATE OF start_us, end_us, source_id, queue, agent,"
    "  ann_state, ann_pbx ON call"
    "  WHEN (OLD.end_us IS NULL) <> (NEW.end_us IS NULL) OR (NEW.end_us IS NOT NULL AND"
    "  (OLD.start_us <> NEW.start_us OR OLD.source_id <> NEW.source_id OR OLD.queue <> NEW.queue"
    "  OR OLD.agent <> NEW.agent OR " IDX_ANN_STATE("OLD") " <> " IDX_ANN_STATE("NEW") ")) BEGIN "
    IDX_ANN_ADD("OLD", "-1") " AND OLD.end_us IS NOT NULL" IDX_ANN_UPSERT "; "
    IDX_ANN_DROP_ZERO("OLD") " AND OLD.end_us IS NOT NULL; "
    IDX_ANN_ADD("NEW", "1") " AND NEW.end_us IS NOT NULL" IDX_ANN_UPSERT "; END;"
    IDX_ANN_FILL ";",
    /* v19: the timeline's recorded spans (index/spans.c), kept by triggers
     * in the transaction of every segment write (whoever writes: vigild,
     * vigilctl, a script), so a timeline of 100 sources x 1 day reads a
     * few hundred span rows instead of 144 000 segment rows. A span is a
     * run of live segments (by start, id) that the timeline draws as one:
     * the same codecs, each starting less than IDX_SPAN_MERGE_US after the
     * largest end before it in the run; end_us is that largest end.
     * first_id/last_start/last_id name its first and last rows. shadowed:
     * the first row ends before an earlier row does (overlapping segments;
     * never after a normal recording), where the timeline of a range
     * starting inside that overlap reads the rows instead (spans.c).
     * Appending (the recorder) extends or adds the last span; removing a
     * row (retention's mark, or a delete) trims, splits or drops its span;
     * anything else (a row inserted before the newest, a row's times
     * changed, removals among overlapping rows) sets source.span_dirty, and
     * until idx_spans_repair rebuilds that source the timeline reads its
     * rows. span_work holds one removal's facts while its trigger runs.
     * The migration marks every source dirty; migrate() then builds them
     * all in the same transaction, one pass over the rows. */
    "ALTER TABLE source ADD COLUMN span_dirty INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE span ("
    "  source_id INTEGER NOT NULL,"
    "  start_us INTEGER NOT NULL,"
    "  first_id INTEGER NOT NULL,"
    "  end_us INTEGER NOT NULL,"
    "  last_start INTEGER NOT NULL,"
    "  last_id INTEGER NOT NULL,"
    "  codecs TEXT NOT NULL,"
    "  shadowed INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY (source_id, start_us, first_id)"
    ") WITHOUT ROWID;"
    "CREATE TABLE span_work ("
    "  source_id INTEGER, o_start INTEGER, o_id INTEGER, o_end INTEGER,"
    "  s_start INTEGER, s_first INTEGER, s_end INTEGER, s_last_start INTEGER,"
    "  s_last_id INTEGER, codecs TEXT, p_start INTEGER, p_id INTEGER, n_start INTEGER,"
    "  n_id INTEGER, n_end INTEGER, e_p INTEGER, e_n INTEGER, sh INTEGER,"
    "  v_end INTEGER, v_codecs TEXT, q_start INTEGER, q_codecs TEXT, ok INTEGER"
    ");"
    "CREATE TRIGGER span_work_remove AFTER INSERT ON span_work BEGIN " SPAN_REMOVE " END;"
    "CREATE TRIGGER segment_span_ins AFTER INSERT ON segment WHEN NEW.deleting = 0 BEGIN "
    /* not after the source's last live row: rebuild */
    "  UPDATE source SET span_dirty = 1 WHERE id = NEW.source_id AND span_dirty = 0"
    "   AND " SPAN_LAST("last_start, last_id", "NEW.source_id") " >= (NEW.start_us, NEW.id);"
    "  UPDATE span SET end_us = max(end_us, NEW.end_us), last_start = NEW.start_us,"
    "   last_id = NEW.id WHERE source_id = NEW.source_id AND (start_us, first_id) = "
    SPAN_LAST("start_us, first_id", "NEW.source_id")
    "   AND codecs = NEW.codecs AND NEW.start_us - end_us < " SPAN_MERGE
    "   AND " SPAN_CLEAN("NEW.source_id") ";"
    "  INSERT INTO span(source_id, start_us, first_id, end_us, last_start, last_id, codecs,"
    "   shadowed) SELECT NEW.source_id, NEW.start_us, NEW.id, NEW.end_us, NEW.start_us, NEW.id,"
    "   NEW.codecs, EXISTS (SELECT 1 FROM segment x WHERE x.source_id = NEW.source_id"
    "   AND x.deleting = 0 AND x.start_us >= NEW.end_us - (SELECT max_len_us FROM source"
    "   WHERE id = NEW.source_id) AND x.start_us <= NEW.start_us AND x.id <> NEW.id"
    "   AND x.end_us > NEW.end_us)"
    "   WHERE " SPAN_CLEAN("NEW.source_id") " AND "
    SPAN_LAST("last_id", "NEW.source_id") " IS NOT NEW.id;"
    " END;"
    "CREATE TRIGGER segment_span_mark AFTER UPDATE OF deleting ON segment"
    "  WHEN OLD.deleting = 0 AND NEW.deleting <> 0 BEGIN " SPAN_REMOVED("OLD") " END;"
    "CREATE TRIGGER segment_span_del AFTER DELETE ON segment WHEN OLD.deleting = 0 BEGIN "
    SPAN_REMOVED("OLD") " END;"
    "CREATE TRIGGER segment_span_unmark AFTER UPDATE OF deleting ON segment"
    "  WHEN OLD.deleting <> 0 AND NEW.deleting = 0 BEGIN"
    "  UPDATE source SET span_dirty = 1 WHERE id = NEW.source_id AND span_dirty = 0;"
    " END;"
    "CREATE TRIGGER segment_span_upd AFTER UPDATE OF source_id, start_us, end_us, codecs"
    "  ON segment WHEN OLD.source_id IS NOT NEW.source_id OR OLD.start_us IS NOT NEW.start_us"
    "  OR OLD.end_us IS NOT NEW.end_us OR OLD.codecs IS NOT NEW.codecs BEGIN"
    "  UPDATE source SET span_dirty = 1 WHERE id IN (OLD.source_id, NEW.source_id)"
    "   AND span_dirty = 0;"
    " END;"
    "CREATE TRIGGER source_span_del AFTER DELETE ON source BEGIN"
    "  DELETE FROM span WHERE source_id = OLD.id;"
    " END;"
    "UPDATE source SET span_dirty = 1;",
    /* v20: call search bounded by the page, not by the matches
     * (index/calls.c, the search). The text index is keyed by time:
     * call.fts_key = start_us * 2048 + a sequence among the text-bearing
     * calls of the same microsecond, so FTS5 hands its matches newest first
     * (rowid descending) and a time range is a rowid range; the search
     * stops after a page. The FTS5 table is contentless (its rowid is not
     * call.id; the triggers pass the old text for deletes). fts_key stays
     * NULL for calls without notes or tags and for starts past 2^52 us
     * (year 2112, where the key would overflow); a 2049th text-bearing call
     * in one microsecond is refused (RAISE) rather than left unsearchable.
     * Trailing digits: the first four reversed digits with the start, so
     * the newest calls of "*4567" come off the index in order (caller and
     * callee walks merged); the longer reversed number rides along for
     * longer suffixes. They replace the plain reversed-number indexes. */
    "ALTER TABLE call ADD COLUMN fts_key INTEGER;"
    "DROP TRIGGER call_fts_ins;"
    "DROP TRIGGER call_fts_del;"
    "DROP TRIGGER call_fts_upd;"
    "DROP TABLE call_fts;"
    "DROP INDEX call_caller_rev;"
    "DROP INDEX call_callee_rev;"
    "CREATE INDEX call_caller_rev4 ON call(substr(caller_rev, 1, 4), start_us, id, caller_rev)"
    "  WHERE caller_rev <> '';"
    "CREATE INDEX call_callee_rev4 ON call(substr(callee_rev, 1, 4), start_us, id, callee_rev)"
    "  WHERE callee_rev <> '';"
    "UPDATE call SET fts_key = k.key FROM (SELECT id, start_us * 2048 - 1"
    "  + row_number() OVER (PARTITION BY start_us ORDER BY id) AS key,"
    "  row_number() OVER (PARTITION BY start_us ORDER BY id) AS rn FROM call"
    "  WHERE (notes <> '' OR tags <> '[]') AND start_us < " IDX_FTS_START_MAX ") AS k"
    "  WHERE call.id = k.id AND k.rn <= 2048;"
    "CREATE UNIQUE INDEX call_fts_key ON call(fts_key) WHERE fts_key IS NOT NULL;"
    "CREATE VIRTUAL TABLE call_fts USING fts5(notes, tags, content='');"
    "INSERT INTO call_fts(rowid, notes, tags) SELECT fts_key, notes, tags FROM call"
    "  WHERE fts_key IS NOT NULL;"
    "CREATE TRIGGER call_fts_ins AFTER INSERT ON call WHEN (NEW.notes <> '' OR NEW.tags <> '[]')"
    "  AND NEW.start_us < " IDX_FTS_START_MAX " BEGIN "
    IDX_FTS_KEY_SET("")
    "  INSERT INTO call_fts(rowid, notes, tags) SELECT fts_key, notes, tags FROM call"
    "   WHERE id = NEW.id;"
    " END;"
    "CREATE TRIGGER call_fts_del AFTER DELETE ON call WHEN OLD.fts_key IS NOT NULL BEGIN"
    "  INSERT INTO call_fts(call_fts, rowid, notes, tags)"
    "   VALUES ('delete', OLD.fts_key, OLD.notes, OLD.tags);"
    " END;"
    /* A PBX event's merge names notes and tags whether or not they change:
     * WHEN leaves such rows alone. A new start moves the key. */
    "CREATE TRIGGER call_fts_upd AFTER UPDATE OF notes, tags, start_us ON call"
    "  WHEN OLD.notes <> NEW.notes OR OLD.tags <> NEW.tags OR OLD.start_us <> NEW.start_us"
    "  BEGIN"
    "  INSERT INTO call_fts(call_fts, rowid, notes, tags)"
    "   SELECT 'delete', OLD.fts_key, OLD.notes, OLD.tags WHERE OLD.fts_key IS NOT NULL;"
    "  UPDATE call SET fts_key = NULL WHERE id = NEW.id AND OLD.fts_key IS NOT NULL;"
    IDX_FTS_KEY_SET(" AND (NEW.notes <> '' OR NEW.tags <> '[]') AND NEW.start_us < "
                    IDX_FTS_START_MAX)
    "  INSERT INTO call_fts(rowid, notes, tags) SELECT fts_key, notes, tags FROM call"
    "   WHERE id = NEW.id AND fts_key IS NOT NULL;"
    " END;",
};

#define IDX_SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

#define SEG_COLUMNS IDX_SEG_COLUMNS


enum {
    ST_SEG_INSERT,
    ST_SEG_RANGE,
    ST_SEG_ALL,
    ST_SEG_PATH,
    ST_SEG_PAGE,
    ST_SRC_NEWEST,
    ST_SRC_UPSERT,
    ST_SRC_EXISTS,
    ST_SRC_VERSION,
    ST_BEGIN,
    ST_BEGIN_READ,
    ST_COMMIT,
    ST_ROLLBACK,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    /* Resolving the source inside the INSERT makes "unknown source" and the
     * insert one atomic step: no row is inserted when the name is unknown. */
    [ST_SEG_INSERT] = "INSERT INTO segment(source_id, start_us, end_us, media_us, bytes, sha256,"
                      " codecs, init_bytes, path, unverified)"
                      " SELECT id, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 FROM source WHERE name = ?1",
    /* See the note on max_len_us above: the index range is
     * start_us in [from - max_len, to); end_us > from filters the few extra. */
    [ST_SEG_RANGE] = "SELECT " SEG_COLUMNS " FROM source s JOIN segment g ON g.source_id = s.id"
                     " WHERE s.name = ?1 AND g.start_us < ?3"
                     " AND g.start_us >= ?2 - s.max_len_us AND g.end_us > ?2"
                     " AND g.deleting = 0"
                     " ORDER BY g.start_us, g.id",
    [ST_SEG_ALL] = "SELECT " SEG_COLUMNS " FROM source s JOIN segment g ON g.source_id = s.id"
                   " WHERE g.deleting = 0"
                   " ORDER BY s.name, g.start_us, g.id",
    /* Rows being deleted still own their path: include them. */
    [ST_SEG_PATH] = "SELECT 1 FROM segment WHERE path = ?1",
    /* Keyset paging by id: a full check of 8.64 M rows holds one page. */
    [ST_SEG_PAGE] = "SELECT " SEG_COLUMNS " FROM segment g JOIN source s ON g.source_id = s.id"
                    " WHERE g.id > ?1 AND g.deleting = 0 ORDER BY g.id LIMIT ?2",
    /* max() over the (source_id, start_us) index: one index probe. */
    [ST_SRC_NEWEST] = "SELECT max(start_us) FROM segment"
                      " WHERE source_id = (SELECT id FROM source WHERE name = ?1)",
    [ST_SRC_UPSERT] = "INSERT INTO source(name, kind) VALUES (?1, ?2)"
                      " ON CONFLICT(name) DO UPDATE SET kind = excluded.kind"
                      " WHERE kind <> excluded.kind",
    [ST_SRC_EXISTS] = "SELECT 1 FROM source WHERE name = ?1",
    [ST_SRC_VERSION] = "SELECT seg_version FROM source WHERE name = ?1",
    /* IMMEDIATE takes the write lock up front, so a writer never fails half
     * way through with a lock upgrade it cannot get. */
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    /* A read-only connection only needs a stable snapshot. */
    [ST_BEGIN_READ] = "BEGIN DEFERRED",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
};

_Static_assert(ST_COUNT <= IDX_MAX_CORE, "raise IDX_MAX_CORE");

/* Prepared on first use: a statement that deletes segment rows carries the
 * span table's removal triggers (schema v19) compiled in, and every
 * connection (one per recorder) would hold that copy for a delete that
 * only vigilctl and tests run. */
enum { LZ_SEG_DELETE = IDX_LAZY_INDEX, LZ_END };
_Static_assert(LZ_END <= IDX_MAX_LAZY, "raise IDX_MAX_LAZY");

/* Maps a SQLite result code to a vigil code callers can act on. */
static int map_rc(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return VG_EBUSY;
    case SQLITE_FULL:
        return VG_ENOSPC;
    case SQLITE_CONSTRAINT:
        return VG_EINVAL;
    default:
        return VG_EDB;
    }
}

/* Logs the connection's current error once, with context; returns the mapped
 * code. Call it before sqlite3_reset(), which may replace the message. */
int idx_priv_db_fail(const idx_t *idx, int rc, const char *what)
{
    vg_err("index %s: %s: %s (sqlite %d)", idx->path, what, sqlite3_errmsg(idx->db), rc);
    return map_rc(rc);
}

void idx_priv_stmt_done(sqlite3_stmt *st)
{
    /* reset's return value repeats the last step's error, already logged. */
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Runs a statement that returns no rows we need. */
static int run_simple(idx_t *idx, int which, const char *what)
{
    sqlite3_stmt *st = idx->st[which];
    int rc = sqlite3_step(st);
    int ret = VG_OK;
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        ret = idx_priv_db_fail(idx, rc, what);
    idx_priv_stmt_done(st);
    return ret;
}

/* Binds text that the schema says is NOT NULL. SQLITE_STATIC is fine: every
 * statement is stepped and reset before the caller's buffer can change. */
int idx_priv_bind_text(idx_t *idx, sqlite3_stmt *st, int col, const char *text)
{
    int rc = sqlite3_bind_text(st, col, text, -1, SQLITE_STATIC);
    if (rc != SQLITE_OK)
        return idx_priv_db_fail(idx, rc, "bind");
    return VG_OK;
}

int idx_priv_bind_i64(idx_t *idx, sqlite3_stmt *st, int col, int64_t v)
{
    int rc = sqlite3_bind_int64(st, col, (sqlite3_int64)v);
    if (rc != SQLITE_OK)
        return idx_priv_db_fail(idx, rc, "bind");
    return VG_OK;
}

/* Copies a text column into a fixed field. Insert refuses values that would
 * not fit, so a truncation here means someone else wrote the row: report it
 * rather than hand back a shortened path that names a different file. */
static int copy_col(const idx_t *idx, sqlite3_stmt *st, int col, char *dst, size_t dst_size,
                    int64_t row_id)
{
    const unsigned char *text = sqlite3_column_text(st, col);
    int n = snprintf(dst, dst_size, "%s", text ? (const char *)text : "");
    if (n < 0 || (size_t)n >= dst_size) {
        vg_err("index %s: segment %" PRId64 ": column %s is %d bytes, longer than %zu",
               idx->path, row_id, sqlite3_column_name(st, col), n, dst_size - 1);
        return VG_ECORRUPT;
    }
    return VG_OK;
}

static int row_to_segment(const idx_t *idx, sqlite3_stmt *st, idx_segment_t *seg)
{
    int rc;
    memset(seg, 0, sizeof(*seg));
    seg->id = sqlite3_column_int64(st, 0);
    if ((rc = copy_col(idx, st, 1, seg->source, sizeof(seg->source), seg->id)) != VG_OK)
        return rc;
    seg->start_us = sqlite3_column_int64(st, 2);
    seg->end_us = sqlite3_column_int64(st, 3);
    seg->media_us = sqlite3_column_int64(st, 4);
    seg->bytes = sqlite3_column_int64(st, 5);
    if ((rc = copy_col(idx, st, 6, seg->sha256, sizeof(seg->sha256), seg->id)) != VG_OK)
        return rc;
    if ((rc = copy_col(idx, st, 7, seg->codecs, sizeof(seg->codecs), seg->id)) != VG_OK)
        return rc;
    seg->init_bytes = sqlite3_column_int64(st, 8);
    /* Statements of index/retention.c select the first ten columns only. */
    if (sqlite3_column_count(st) > 10)
        seg->unverified = sqlite3_column_int(st, 10) != 0;
    return copy_col(idx, st, 9, seg->path, sizeof(seg->path), seg->id);
}

int idx_priv_row_to_segment(const idx_t *idx, sqlite3_stmt *st, idx_segment_t *seg)
{
    return row_to_segment(idx, st, seg);
}

/* Steps st to the end, collecting every row into a malloc'd array. */
int idx_priv_collect_segments(idx_t *idx, sqlite3_stmt *st, const char *what, idx_segment_t **out,
                            size_t *n)
{
    idx_segment_t *arr = NULL;
    size_t len = 0, cap = 0;
    int ret = VG_OK;
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap ? cap * 2 : 16;
            arr = vg_realloc(arr, cap * sizeof(*arr));
        }
        if ((ret = row_to_segment(idx, st, &arr[len])) != VG_OK)
            goto cleanup;
        len++;
    }
    if (rc != SQLITE_DONE) {
        ret = idx_priv_db_fail(idx, rc, what);
        goto cleanup;
    }
    *out = arr;
    *n = len;
    arr = NULL;

cleanup:
    free(arr);
    idx_priv_stmt_done(st);
    return ret;
}

/* Reads PRAGMA user_version into *version. */
static int read_user_version(idx_t *idx, int *version)
{
    sqlite3_stmt *st = NULL;
    int ret = VG_OK;
    int rc = sqlite3_prepare_v2(idx->db, "PRAGMA user_version", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        ret = idx_priv_db_fail(idx, rc, "read user_version");
        goto cleanup;
    }
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        ret = idx_priv_db_fail(idx, rc, "read user_version");
        goto cleanup;
    }
    *version = sqlite3_column_int(st, 0);

cleanup:
    sqlite3_finalize(st);
    return ret;
}

static int exec_sql(idx_t *idx, const char *sql, const char *what)
{
    char *msg = NULL;
    int rc = sqlite3_exec(idx->db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
        vg_err("index %s: %s: %s (sqlite %d)", idx->path, what,
               msg ? msg : sqlite3_errmsg(idx->db), rc);
        sqlite3_free(msg);
        return map_rc(rc);
    }
    return VG_OK;
}

static int check_version_known(const idx_t *idx, int version)
{
    if (version > IDX_SCHEMA_VERSION) {
        vg_err("index %s: schema version %d is newer than this build knows (%d); "
               "refusing to open it (upgrade vigil or restore a matching database)",
               idx->path, version, IDX_SCHEMA_VERSION);
        return VG_EDB;
    }
    if (version < 0) {
        vg_err("index %s: invalid schema version %d", idx->path, version);
        return VG_EDB;
    }
    return VG_OK;
}

/* PRAGMA name = value. A PRAGMA takes no parameters; name and value are
 * our own. */
static int set_pragma_int(idx_t *idx, const char *name, int value)
{
    char sql[96];
    snprintf(sql, sizeof(sql), "PRAGMA %s = %d", name, value);
    return exec_sql(idx, sql, sql);
}

/* Brings the schema to IDX_SCHEMA_VERSION, one transaction per version. The
 * version is re-read under the write lock so two processes opening the same
 * fresh database do not both run a migration. */
static int migrate(idx_t *idx)
{
    /* Already current: no write lock is needed, so a connection still opens
     * while another process holds the index locked (metrics, status and the
     * API keep answering while segment rows wait). */
    int current = 0;
    if (read_user_version(idx, &current) == VG_OK && current == IDX_SCHEMA_VERSION)
        return VG_OK;
    for (;;) {
        int version = 0;
        int ret;

        if ((ret = exec_sql(idx, "BEGIN IMMEDIATE", "begin migration")) != VG_OK)
            return ret;
        if ((ret = read_user_version(idx, &version)) != VG_OK)
            goto rollback;
        if ((ret = check_version_known(idx, version)) != VG_OK)
            goto rollback;
        if (version == IDX_SCHEMA_VERSION)
            return exec_sql(idx, "COMMIT", "commit (no migration)");

        if ((ret = exec_sql(idx, migrations[version], "migrate schema")) != VG_OK)
            goto rollback;
        /* v19's span table is built by C (the merge is a walk over the
         * rows in order), in the migration's transaction. */
        if (version + 1 == 19 && (ret = idx_priv_spans_rebuild_dirty(idx, NULL)) != VG_OK)
            goto rollback;
        if ((ret = set_pragma_int(idx, "user_version", version + 1)) != VG_OK)
            goto rollback;
        if ((ret = exec_sql(idx, "COMMIT", "commit migration")) != VG_OK)
            goto rollback;
        vg_info("index %s: migrated schema to version %d", idx->path, version + 1);
        continue;

    rollback:
        if (!sqlite3_get_autocommit(idx->db))
            sqlite3_exec(idx->db, "ROLLBACK", NULL, NULL, NULL);
        return ret;
    }
}

/* journal_mode answers with the mode in effect; anything but "wal" (e.g. a
 * file system without shared memory) would silently lose reader/writer
 * concurrency, so it is an error. */
static int set_wal(idx_t *idx)
{
    sqlite3_stmt *st = NULL;
    int ret = VG_OK;
    int rc = sqlite3_prepare_v2(idx->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        ret = idx_priv_db_fail(idx, rc, "set journal_mode");
        goto cleanup;
    }
    rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        ret = idx_priv_db_fail(idx, rc, "set journal_mode");
        goto cleanup;
    }
    const unsigned char *mode = sqlite3_column_text(st, 0);
    if (!mode || strcmp((const char *)mode, "wal") != 0) {
        vg_err("index %s: journal_mode is %s, WAL is required", idx->path,
               mode ? (const char *)mode : "(null)");
        ret = VG_EDB;
    }

cleanup:
    sqlite3_finalize(st);
    return ret;
}

/* Process-wide SQLite settings, before its first use. Memory statistics
 * off: they take one global mutex around every allocation, and with a
 * connection per HTTP request in flight that lock was contended on every
 * request (vigil never reads the statistics). */
static void configure_sqlite(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); /* SQLITE_MISUSE if already started: harmless */
}

int idx_open(const char *path, int readonly, idx_t **out)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    idx_t *idx = NULL;
    int ret = VG_OK;
    int rc;
    int version = 0;

    if (!path || !out)
        return VG_EINVAL;
    *out = NULL;
    pthread_once(&once, configure_sqlite);

    idx = vg_calloc(1, sizeof(*idx));
    idx->readonly = readonly ? 1 : 0;
    idx->path = vg_strdup(path);

    int flags = readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    /* One connection per thread: SQLite's per-connection mutex is not needed. */
    flags |= SQLITE_OPEN_NOMUTEX;
    rc = sqlite3_open_v2(path, &idx->db, flags, NULL);
    if (rc != SQLITE_OK) {
        if (idx->db)
            ret = idx_priv_db_fail(idx, rc, readonly ? "open read-only" : "open");
        else {
            vg_err("index %s: open: out of memory", path);
            ret = VG_EDB;
        }
        goto cleanup;
    }
    sqlite3_extended_result_codes(idx->db, 1);
    idx_priv_busy(idx, IDX_BUSY_TIMEOUT_MS);
    if ((ret = exec_sql(idx, "PRAGMA foreign_keys = ON", "enable foreign keys")) != VG_OK)
        goto cleanup;

    if (readonly) {
        /* First read of the file: also where "not a database" shows up. */
        if ((ret = read_user_version(idx, &version)) != VG_OK)
            goto cleanup;
        if (version == 0) {
            vg_err("index %s: no index here yet (schema version 0); start vigild once to "
                   "create it", path);
            ret = VG_ENOTFOUND;
            goto cleanup;
        }
        if ((ret = check_version_known(idx, version)) != VG_OK)
            goto cleanup;
    } else {
        /* Refuse a too-new database before touching it (journal_mode writes). */
        if ((ret = read_user_version(idx, &version)) != VG_OK)
            goto cleanup;
        if ((ret = check_version_known(idx, version)) != VG_OK)
            goto cleanup;
        if ((ret = set_wal(idx)) != VG_OK)
            goto cleanup;
        /* FULL syncs the WAL on every commit: a committed segment row survives
         * power loss (DESIGN.md invariant 1). */
        if ((ret = exec_sql(idx, "PRAGMA synchronous = FULL", "set synchronous")) != VG_OK)
            goto cleanup;
        if ((ret = set_pragma_int(idx, "journal_size_limit", IDX_WAL_LIMIT_BYTES)) != VG_OK)
            goto cleanup;
        if ((ret = migrate(idx)) != VG_OK)
            goto cleanup;
    }

    for (int i = 0; i < ST_COUNT; i++) {
        rc = sqlite3_prepare_v3(idx->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &idx->st[i],
                                NULL);
        if (rc != SQLITE_OK) {
            ret = idx_priv_db_fail(idx, rc, stmt_sql[i]);
            goto cleanup;
        }
    }

    *out = idx;
    idx = NULL;

cleanup:
    idx_close(idx);
    return ret;
}

void idx_close(idx_t *idx)
{
    if (!idx)
        return;
    for (int i = 0; i < ST_COUNT; i++)
        sqlite3_finalize(idx->st[i]);
    for (int i = 0; i < IDX_MAX_LAZY; i++)
        sqlite3_finalize(idx->lazy[i]);
    if (idx->db) {
        /* An open transaction at close is rolled back by SQLite; say so, since
         * it means a caller lost work. */
        if (!sqlite3_get_autocommit(idx->db))
            vg_warn("index %s: closed with a transaction open; rolled back", idx->path);
        int rc = sqlite3_close(idx->db);
        if (rc != SQLITE_OK)
            vg_err("index %s: close: %s (sqlite %d)", idx->path, sqlite3_errmsg(idx->db), rc);
    }
    free(idx->path);
    free(idx);
}

static int busy_poll(void *arg, int count)
{
    idx_t *idx = arg;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
    if (count == 0)
        idx->busy_since = now;
    if (now - idx->busy_since >= (int64_t)idx->busy_ms * 1000)
        return 0; /* SQLITE_BUSY to the caller */
    usleep(count < 8 ? 500 : 2000);
    return 1;
}

void idx_priv_busy(idx_t *idx, int ms)
{
    idx->busy_ms = ms > 0 ? ms : IDX_BUSY_TIMEOUT_MS;
    sqlite3_busy_handler(idx->db, busy_poll, idx);
}

void idx_busy_timeout(idx_t *idx, int ms)
{
    idx_priv_busy(idx, ms);
}

int idx_schema_version(idx_t *idx)
{
    int version = 0;
    int ret;
    if (!idx)
        return VG_EINVAL;
    if ((ret = read_user_version(idx, &version)) != VG_OK)
        return ret;
    return version;
}

/* 1 when s is NUL-terminated within size bytes and non-empty. */
static int field_ok(const char *s, size_t size)
{
    return s[0] != '\0' && memchr(s, '\0', size) != NULL;
}

static int sha256_ok(const char *s)
{
    size_t i;
    for (i = 0; i < 64; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    return s[i] == '\0';
}

static int segment_valid(const idx_segment_t *seg)
{
    if (!field_ok(seg->source, sizeof(seg->source))) {
        vg_err("index: segment insert: source name empty or longer than %zu bytes",
               sizeof(seg->source) - 1);
        return 0;
    }
    if (!field_ok(seg->path, sizeof(seg->path))) {
        vg_err("index: segment insert (%s): path empty or longer than %zu bytes", seg->source,
               sizeof(seg->path) - 1);
        return 0;
    }
    if (!field_ok(seg->codecs, sizeof(seg->codecs))) {
        vg_err("index: segment insert %s: codecs empty or longer than %zu bytes", seg->path,
               sizeof(seg->codecs) - 1);
        return 0;
    }
    if (!sha256_ok(seg->sha256)) {
        vg_err("index: segment insert %s: sha256 is not 64 lowercase hex digits", seg->path);
        return 0;
    }
    if (seg->end_us < seg->start_us || seg->media_us < 0 || seg->bytes < 0 ||
        seg->init_bytes < 0 || seg->init_bytes > seg->bytes) {
        vg_err("index: segment insert %s: inconsistent numbers (start %" PRId64 " end %" PRId64
               " media %" PRId64 " bytes %" PRId64 " init %" PRId64 ")",
               seg->path, seg->start_us, seg->end_us, seg->media_us, seg->bytes,
               seg->init_bytes);
        return 0;
    }
    return 1;
}

int idx_segment_insert(idx_t *idx, idx_segment_t *seg)
{
    sqlite3_stmt *st;
    int ret;
    int rc;

    if (!idx || !seg)
        return VG_EINVAL;
    if (!segment_valid(seg))
        return VG_EINVAL;

    /* Invariant 1 (DESIGN.md): this row is the commit point of a segment. The
     * caller has already made the file and its directory durable; with
     * synchronous=FULL the row is durable once this commits (here, or at the
     * caller's idx_commit when inside idx_begin). */
    st = idx->st[ST_SEG_INSERT];
    if ((ret = idx_priv_bind_text(idx, st, 1, seg->source)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 2, seg->start_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 3, seg->end_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 4, seg->media_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 5, seg->bytes)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 6, seg->sha256)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 7, seg->codecs)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 8, seg->init_bytes)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 9, seg->path)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 10, seg->unverified ? 1 : 0)) != VG_OK)
        goto cleanup;

    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        ret = idx_priv_db_fail(idx, rc, "insert segment");
        goto cleanup;
    }
    if (sqlite3_changes(idx->db) == 0) {
        vg_err("index %s: insert segment %s: source \"%s\" is not registered", idx->path,
               seg->path, seg->source);
        ret = VG_ENOTFOUND;
        goto cleanup;
    }
    seg->id = (int64_t)sqlite3_last_insert_rowid(idx->db);
    ret = VG_OK;

cleanup:
    idx_priv_stmt_done(st);
    return ret;
}

int idx_source_exists(idx_t *idx, const char *source, int *found)
{
    sqlite3_stmt *st;
    int ret;
    int rc;

    if (!idx || !source || !found)
        return VG_EINVAL;
    *found = 0;
    st = idx->st[ST_SRC_EXISTS];
    if ((ret = idx_priv_bind_text(idx, st, 1, source)) != VG_OK)
        goto cleanup;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *found = 1;
    else if (rc != SQLITE_DONE)
        ret = idx_priv_db_fail(idx, rc, "look up source");

cleanup:
    idx_priv_stmt_done(st);
    return ret;
}

int idx_source_version(idx_t *idx, const char *source, int64_t *version)
{
    if (!idx || !source || !version)
        return VG_EINVAL;
    sqlite3_stmt *st = idx->st[ST_SRC_VERSION];
    int ret = idx_priv_bind_text(idx, st, 1, source);
    if (ret == VG_OK) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *version = sqlite3_column_int64(st, 0);
        else
            ret = rc == SQLITE_DONE ? VG_ENOTFOUND : idx_priv_db_fail(idx, rc, "read source version");
    }
    idx_priv_stmt_done(st);
    return ret;
}

int idx_segments_in_range(idx_t *idx, const char *source, int64_t from_us, int64_t to_us,
                          idx_segment_t **out, size_t *n)
{
    sqlite3_stmt *st;
    int ret;
    int found = 0;

    if (!idx || !source || !out || !n)
        return VG_EINVAL;
    *out = NULL;
    *n = 0;
    if (to_us < from_us) {
        vg_err("index %s: range query for %s: end %" PRId64 " before start %" PRId64, idx->path,
               source, to_us, from_us);
        return VG_EINVAL;
    }

    /* [t, t) is empty and overlaps nothing; the SQL alone would return the
     * segment containing t. Still report an unknown source below. */
    if (to_us == from_us)
        goto check_source;

    st = idx->st[ST_SEG_RANGE];
    if ((ret = idx_priv_bind_text(idx, st, 1, source)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 2, from_us)) != VG_OK ||
        (ret = idx_priv_bind_i64(idx, st, 3, to_us)) != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    if ((ret = idx_priv_collect_segments(idx, st, "range query", out, n)) != VG_OK)
        return ret;

    /* An empty answer for a name the index never heard of is most likely a
     * typo; tell the caller (the web API maps it to 404). */
check_source:
    if (*n == 0) {
        if ((ret = idx_source_exists(idx, source, &found)) != VG_OK)
            return ret;
        if (!found)
            return VG_ENOTFOUND;
    }
    return VG_OK;
}

int idx_segments_all(idx_t *idx, idx_segment_t **out, size_t *n)
{
    if (!idx || !out || !n)
        return VG_EINVAL;
    *out = NULL;
    *n = 0;
    return idx_priv_collect_segments(idx, idx->st[ST_SEG_ALL], "list segments", out, n);
}

int idx_segments_page(idx_t *idx, int64_t after_id, size_t limit, idx_segment_t **out,
                      size_t *n)
{
    if (!idx || !out || !n || limit == 0)
        return VG_EINVAL;
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st = idx->st[ST_SEG_PAGE];
    int ret = idx_priv_bind_i64(idx, st, 1, after_id);
    if (ret == VG_OK)
        ret = idx_priv_bind_i64(idx, st, 2, (int64_t)limit);
    if (ret != VG_OK) {
        idx_priv_stmt_done(st);
        return ret;
    }
    return idx_priv_collect_segments(idx, st, "list segments (page)", out, n);
}

int idx_source_newest_start(idx_t *idx, const char *source, int64_t *start_us)
{
    if (!idx || !source || !start_us)
        return VG_EINVAL;
    *start_us = 0;
    sqlite3_stmt *st = idx->st[ST_SRC_NEWEST];
    int ret = idx_priv_bind_text(idx, st, 1, source);
    if (ret == VG_OK) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *start_us = sqlite3_column_int64(st, 0); /* NULL (no rows) reads as 0 */
        else
            ret = idx_priv_db_fail(idx, rc, "read newest segment start");
    }
    idx_priv_stmt_done(st);
    return ret;
}

int idx_segment_path_exists(idx_t *idx, const char *path, int *found)
{
    sqlite3_stmt *st;
    int ret;
    int rc;

    if (!idx || !path || !found)
        return VG_EINVAL;
    *found = 0;
    st = idx->st[ST_SEG_PATH];
    if ((ret = idx_priv_bind_text(idx, st, 1, path)) != VG_OK)
        goto cleanup;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *found = 1;
    else if (rc != SQLITE_DONE)
        ret = idx_priv_db_fail(idx, rc, "look up segment path");

cleanup:
    idx_priv_stmt_done(st);
    return ret;
}

int idx_segment_delete(idx_t *idx, int64_t id)
{
    sqlite3_stmt *st;
    int ret;
    int rc;

    if (!idx)
        return VG_EINVAL;
    if (!(st = idx_priv_lazy(idx, LZ_SEG_DELETE, "DELETE FROM segment WHERE id = ?1")))
        return VG_EDB;
    if ((ret = idx_priv_bind_i64(idx, st, 1, id)) != VG_OK)
        goto cleanup;
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE) {
        ret = idx_priv_db_fail(idx, rc, "delete segment");
        goto cleanup;
    }
    if (sqlite3_changes(idx->db) == 0)
        ret = VG_ENOTFOUND;

cleanup:
    idx_priv_stmt_done(st);
    return ret;
}

int idx_source_register(idx_t *idx, const char *source, const char *kind)
{
    sqlite3_stmt *st;
    int ret;
    int rc;

    if (!idx || !source || !kind)
        return VG_EINVAL;
    /* Names come back into idx_segment_t.source; refuse what would not fit. */
    if (source[0] == '\0' || strlen(source) >= sizeof(((idx_segment_t *)0)->source)) {
        vg_err("index %s: register source: name empty or longer than %zu bytes", idx->path,
               sizeof(((idx_segment_t *)0)->source) - 1);
        return VG_EINVAL;
    }
    if (kind[0] == '\0') {
        vg_err("index %s: register source %s: empty kind", idx->path, source);
        return VG_EINVAL;
    }

    st = idx->st[ST_SRC_UPSERT];
    if ((ret = idx_priv_bind_text(idx, st, 1, source)) != VG_OK ||
        (ret = idx_priv_bind_text(idx, st, 2, kind)) != VG_OK)
        goto cleanup;
    rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        ret = idx_priv_db_fail(idx, rc, "register source");

cleanup:
    idx_priv_stmt_done(st);
    return ret;
}

int idx_begin(idx_t *idx)
{
    if (!idx)
        return VG_EINVAL;
    if (!sqlite3_get_autocommit(idx->db)) {
        vg_err("index %s: begin: a transaction is already open (no nesting)", idx->path);
        return VG_EINVAL;
    }
    return run_simple(idx, idx->readonly ? ST_BEGIN_READ : ST_BEGIN, "begin transaction");
}

int idx_commit(idx_t *idx)
{
    if (!idx)
        return VG_EINVAL;
    if (sqlite3_get_autocommit(idx->db)) {
        vg_err("index %s: commit without idx_begin", idx->path);
        return VG_EINVAL;
    }
    return run_simple(idx, ST_COMMIT, "commit transaction");
}

int idx_rollback(idx_t *idx)
{
    if (!idx)
        return VG_EINVAL;
    /* Idempotent so cleanup paths can call it unconditionally (SQLite may
     * also have rolled back by itself after some errors). */
    if (sqlite3_get_autocommit(idx->db))
        return VG_OK;
    return run_simple(idx, ST_ROLLBACK, "roll back transaction");
}

int idx_in_transaction(idx_t *idx)
{
    return idx && !sqlite3_get_autocommit(idx->db);
}

int idx_priv_begin(idx_t *idx, int *owned)
{
    *owned = 0;
    if (!sqlite3_get_autocommit(idx->db))
        return VG_OK;
    int ret = idx_begin(idx);
    *owned = ret == VG_OK;
    return ret;
}

int idx_priv_end(idx_t *idx, int owned, int ret)
{
    if (!owned)
        return ret;
    if (ret != VG_OK) {
        idx_rollback(idx);
        return ret;
    }
    return idx_commit(idx);
}

int idx_priv_plan_text(idx_t *idx, sqlite3_stmt *st, char *out, size_t out_size,
                       const char *what)
{
    size_t used = 0;
    int rc, ret = VG_OK;
    out[0] = '\0';
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *detail = sqlite3_column_text(st, 3);
        int k = snprintf(out + used, out_size - used, "%s\n", detail ? (const char *)detail : "");
        if (k < 0 || (size_t)k >= out_size - used) {
            ret = VG_EINVAL; /* out too small; what fits is there */
            break;
        }
        used += (size_t)k;
    }
    if (ret == VG_OK && rc != SQLITE_DONE)
        ret = idx_priv_db_fail(idx, rc, what);
    sqlite3_finalize(st);
    return ret;
}

int idx_explain_range(idx_t *idx, char *out, size_t out_size)
{
    sqlite3_stmt *st = NULL;
    if (!idx || !out || out_size == 0)
        return VG_EINVAL;
    out[0] = '\0';
    /* Explain the very statement idx_segments_in_range runs, not a copy. */
    char *sql = vg_asprintf("EXPLAIN QUERY PLAN %s", sqlite3_sql(idx->st[ST_SEG_RANGE]));
    int rc = sqlite3_prepare_v2(idx->db, sql, -1, &st, NULL);
    free(sql);
    if (rc != SQLITE_OK)
        return idx_priv_db_fail(idx, rc, "explain range query");
    return idx_priv_plan_text(idx, st, out, out_size, "explain range query");
}

sqlite3_stmt *idx_priv_lazy(idx_t *idx, int slot, const char *sql)
{
    if (!idx->lazy[slot]) {
        int rc = sqlite3_prepare_v3(idx->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                    &idx->lazy[slot], NULL);
        if (rc != SQLITE_OK) {
            idx_priv_db_fail(idx, rc, "prepare");
            return NULL;
        }
    }
    return idx->lazy[slot];
}

int idx_code_version(void)
{
    return IDX_SCHEMA_VERSION;
}

int idx_priv_collect_rows(idx_t *idx, sqlite3_stmt *st, const char *what, size_t elem_size,
                          idx_row_fill_t fill, void **out, size_t *n)
{
    unsigned char *arr = NULL;
    size_t len = 0, cap = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap ? cap * 2 : 16;
            arr = vg_realloc(arr, cap * elem_size);
        }
        fill(st, arr + len++ * elem_size);
    }
    int ret = VG_OK;
    if (rc != SQLITE_DONE) {
        ret = idx_priv_db_fail(idx, rc, what);
        free(arr);
        arr = NULL;
        len = 0;
    }
    idx_priv_stmt_done(st);
    *out = arr;
    *n = len;
    return ret;
}

/* ---- the archive's identity (read and written once, at startup) ---- */

int idx_archive_id(idx_t *idx, char *out, size_t size)
{
    sqlite3_stmt *st = NULL;
    out[0] = '\0';
    int rc = sqlite3_prepare_v2(idx->db, "SELECT id FROM archive WHERE one = 1", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return idx_priv_db_fail(idx, rc, "prepare archive id");
    rc = sqlite3_step(st);
    int ret = VG_OK;
    if (rc == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(out, size, "%s", t ? (const char *)t : "");
    } else if (rc != SQLITE_DONE) {
        ret = idx_priv_db_fail(idx, rc, "read archive id");
    }
    sqlite3_finalize(st);
    return ret;
}

int idx_archive_id_set(idx_t *idx, const char *id, int64_t now_us)
{
    sqlite3_stmt *st = NULL;
    /* Only where none is set: an identity is never replaced. */
    int rc = sqlite3_prepare_v2(idx->db, "INSERT INTO archive(one, id, created_us)"
                                " VALUES (1, ?1, ?2) ON CONFLICT (one) DO NOTHING", -1, &st, NULL);
    if (rc != SQLITE_OK)
        return idx_priv_db_fail(idx, rc, "prepare archive id");
    sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 2, now_us);
    rc = sqlite3_step(st);
    int ret = rc == SQLITE_DONE ? VG_OK : idx_priv_db_fail(idx, rc, "store archive id");
    sqlite3_finalize(st);
    return ret;
}
