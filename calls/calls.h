/* Calls: the contact centre's call records on top of the recording (README
 * "Contact centre"). This module owns what is not SQL (index/calls.c) and
 * not HTTP (web/routes_calls.c): phone number normalization, the Asterisk
 * CDR (Master.csv) reader, and which desk's cameras see a line. */
#ifndef CALL_CALLS_H
#define CALL_CALLS_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "index/index.h"
#include "playback/playback.h"

/* ---- numbers ---- */

/* Normalizes a phone number as the office dials it (Russia): to E.164
 * ("+79123456789") from "8 (912) 345-67-89", "+7 912 345 67 89",
 * "9123456789", "79123456789" or "810 44 20 7946 0000" (8-10, the old
 * international prefix); any "+..." keeps its digits; a short internal
 * extension (up to 6 digits) and any other digit string stay as they are
 * (digits only). Spaces, dashes, dots and brackets are ignored. VG_EINVAL
 * for text that is not a number (letters, no digits, more than 15 digits);
 * out (>= IDX_CALL_NUM_MAX) gets "" then. */
int call_number_normalize(const char *raw, char *out, size_t size);

/* A search's number parameter: "*4567" (trailing digits: *suffix = 1, out
 * the digits) or a number (normalized). VG_EINVAL when neither. */
int call_number_query(const char *text, char *out, size_t size, int *suffix);

/* ---- the Asterisk CDR import ---- */

typedef struct {
    int64_t imported; /* new calls */
    int64_t merged;   /* rows that completed or repeated a known call */
    int64_t unmatched; /* rows whose channels name no line's pbx_extension */
    int64_t bad;      /* rows that do not parse */
    /* the first CALL_IMPORT_REASONS problems: line number and why */
    size_t n_reasons;
    struct {
        int64_t line;
        char reason[128];
    } reasons[100];
} call_import_report_t;

#define CALL_IMPORT_REASONS 100

typedef struct call_import call_import_t;

/* The office zone ([server] timezone; NULL or "": the system's) of the
 * announcement report's days, given to the index (idx_ann_zone_set), which
 * rebuilds its daily rollup when the zone or its rules changed. An
 * unreadable zone is logged and UTC is used. */
int call_ann_zone_apply(idx_t *idx, const char *tz);

/* An import of Master.csv text given in pieces (an HTTP body or a file
 * read in blocks): rows are parsed as they complete and written through
 * idx in transactions of a few thousand rows (each row's upsert is
 * idempotent on uniqueid, so a repeated import merges). utc: the CDR's
 * times are UTC, else local time in tz (NULL: the system's). now_us stamps
 * the rows. A bad row is counted and reported; the rest go on. */
int call_import_begin(idx_t *idx, const vg_config_t *cfg, int utc, const char *tz, int64_t now_us,
                      call_import_t **out);
/* The audit row of the import (actor, ip, action, object; its result and
 * detail are set here): an import whose rows are committed in batches is on
 * record from its first commit, not only once it ends. The first batch
 * commits with the row's copy marked "started"; an import abandoned after
 * a commit (the client gone, a body too large, the index failing) writes
 * the copy again as "error" with the counts so far. The caller still writes
 * the final row of a finished import. */
void call_import_audit(call_import_t *im, const idx_audit_t *row);
/* Feeds len bytes. VG_EDB etc. when the index fails (the import stops). */
int call_import_feed(call_import_t *im, const char *data, size_t len);
/* Commits the rows taken so far (the open batch), so that no write
 * transaction stays open while the caller waits for more text (a client
 * sending slowly must not hold the index's write lock). */
int call_import_commit(call_import_t *im);
/* Parses what is left, commits, fills the report and frees im. */
int call_import_end(call_import_t *im, call_import_report_t *report);
/* Frees an import that is abandoned (rolls back its open transaction). */
void call_import_abort(call_import_t *im);

/* The report as JSON text {imported, merged, unmatched, bad, reasons:[{line,
 * reason}]} (malloc'd). */
char *call_import_report_json(const call_import_report_t *r);

/* ---- subject-access requests (152-FZ art. 14) ---- */

/* What the export job e (e->subject: a normalized number) bundles: one
 * WAV piece per call of that number in [e->from_us, e->to_us) that has
 * audio, and calls.csv, calls.json and summary.txt about all of them.
 * Matches pb_exporter_config_t.subject; VG_EINVAL (err says) for more
 * than PB_BUNDLE_MAX_PIECES calls. */
int call_subject_prepare(idx_t *idx, const idx_export_t *e, pb_bundle_piece_t **pieces,
                         size_t *n, pb_bundle_file_t **files, size_t *n_files, char *err,
                         size_t err_size);

/* ---- desks ---- */

/* The audio source (line) the channel names: "SIP/101-0000002a",
 * "PJSIP/101-00000003", "IAX2/101-1", "Local/101@ctx-..." matched against
 * [source NAME] pbx_extension. NULL when none. */
const vg_source_config_t *call_line_of_channel(const vg_config_t *cfg, const char *channel);

#endif
