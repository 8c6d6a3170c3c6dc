/* vigilctl: the admin tool. Reads the same config as vigild and works on the
 * index and archive directly (safe while vigild runs: WAL readers, and files
 * being written are recognised by their lock).
 * Exit codes: 0 ok, 1 a problem was found or an operation failed, 2 usage or
 * bad input (unknown source, inverted range, bad time). */
#include <getopt.h>
#include <pwd.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "archive/archive.h"
#include "cmd/ctl_accounts.h"
#include "cmd/ctl_calls.h"
#include "cmd/ctl_status.h"
#include "capture/capture.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"
#include "index/index.h"
#include "playback/playback.h"
#include "retention/retention.h"

#define EXIT_PROBLEM 1
#define EXIT_USAGE 2

#define MAX_HOLD_SOURCES IDX_LIST_MAX

typedef struct {
    vg_config_t cfg;
    idx_t *idx;
    int json;
    int deep;
    int dry_run;
    int all;
    int bundle;
    const char *pubkey;
    const char *from, *to, *out;
    const char *as_of, *until, *case_no, *reason;
    const char *hold_sources[MAX_HOLD_SOURCES];
    size_t n_hold_sources;
    ctl_accounts_opts_t acct; /* --role, --sources, --perm */
    const char *format;       /* calls import --format */
    int utc;                  /* calls import --utc */
} ctl_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vigilctl -c CONFIG COMMAND [ARGS]\n"
            "commands:\n"
            "  segments SOURCE [--from T] [--to T] [--json]   list recorded segments\n"
            "  check [--deep]                                 index and disk agree? (--deep re-hashes)\n"
            "  export SOURCE --from T --to T -o FILE          one clip, remuxed without re-encoding\n"
            "  export --bundle --case C --reason R SOURCE... --from T --to T -o FILE.zip\n"
            "                                                 a signed evidence bundle (README \"Evidence export\")\n"
            "  verify-export FILE.zip [--pubkey FILE]         check a bundle's signature and every hash\n"
            "  sweep [--dry-run] [--as-of T] [--json]         run retention now, or show what it would delete\n"
            "  hold add --case C --reason R --source S [--source S2 ...] --from T --to T [--until T]\n"
            "  hold list [--all] [--json]                     active holds (--all: released and expired too)\n"
            "  hold release ID --reason R\n"
            "  storage [--json]                               capacity, depth, forecast and alarms\n"
            "  clock accept                                   the wall clock is right: resume age deletion\n"
            "  destruction-log [--from T] [--to T] [--json]   what retention deleted, when and why\n"
            "  status [--json]                                the running vigild: sources, errors, alarms\n"
            "  user add NAME --role R [--sources a,b]         password from stdin; user passwd NAME | list | del NAME\n"
            "  token add NAME --perm p1,p2                    prints the token once; token list | revoke ID\n"
            "  audit verify [--checkpoints FILE] [--key FILE] | audit list [--from T] [--to T] [--json]\n"
            "  calls recheck --from T --to T                  check again the announcement of calls\n"
            "                                                 starting in the range (a new reference)\n"
            "  key show                                       the appliance's public key (minisign format)\n"
            "  calls import --format asterisk-csv [--utc] FILE  Asterisk Master.csv into calls\n"
            "T is RFC 3339 (2026-11-27T10:00:00Z) or unix seconds.\n");
}

enum { OPEN_READ, OPEN_WRITE, OPEN_AUDITED_READ };

/* Commands that change the index open it read-write (which also creates or
 * migrates it); queries open it read-only, except reads of recordings,
 * which write their audit row but never create an index. */
static int open_index(ctl_t *c, int mode)
{
    char *db = vg_asprintf("%s/index.db", c->cfg.data_dir);
    int writable = mode != OPEN_READ;
    int rc = mode == OPEN_AUDITED_READ && access(db, F_OK) != 0 ? VG_ENOTFOUND
                                                                : idx_open(db, !writable, &c->idx);
    if (rc == VG_OK && !writable && idx_schema_version(c->idx) < idx_code_version()) {
        /* An index from an older vigil: migrate it before reading. */
        idx_close(c->idx);
        c->idx = NULL;
        rc = idx_open(db, 0, &c->idx);
    }
    if (rc != VG_OK)
        fprintf(stderr, "vigilctl: cannot open the index %s (has vigild run yet?)\n", db);
    free(db);
    return rc;
}

static int parse_time_arg(const char *name, const char *text, int64_t fallback, int64_t *out)
{
    if (!text) {
        *out = fallback;
        return VG_OK;
    }
    if (vg_time_parse(text, out) != VG_OK) {
        fprintf(stderr, "vigilctl: bad %s time '%s' (use RFC 3339 or unix seconds)\n", name, text);
        return VG_EINVAL;
    }
    return VG_OK;
}

/* Resolves --from/--to; an inverted or empty range is bad input. */
static int parse_range(const ctl_t *c, int64_t *from, int64_t *to)
{
    if (parse_time_arg("--from", c->from, 0, from) != VG_OK ||
        parse_time_arg("--to", c->to, INT64_MAX, to) != VG_OK)
        return VG_EINVAL;
    if (*from >= *to) {
        fprintf(stderr, "vigilctl: --from must be before --to\n");
        return VG_EINVAL;
    }
    return VG_OK;
}

static int check_source(ctl_t *c, const char *source)
{
    int found = 0;
    if (!vg_source_name_valid(source) || idx_source_exists(c->idx, source, &found) != VG_OK ||
        !found) {
        fprintf(stderr, "vigilctl: unknown source '%s'\n", source);
        return VG_ENOTFOUND;
    }
    return VG_OK;
}

static json_t *segment_json(const idx_segment_t *s)
{
    char start[VG_TIME_TEXT_MAX], end[VG_TIME_TEXT_MAX];
    vg_time_format(s->start_us, start);
    vg_time_format(s->end_us, end);
    return json_pack("{sI ss ss ss sI ss ss}", "id", (json_int_t)s->id, "source", s->source,
                     "start", start, "end", end, "bytes", (json_int_t)s->bytes, "sha256",
                     s->sha256, "path", s->path);
}

static void print_segments(const idx_segment_t *segs, size_t n, int json)
{
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, segment_json(&segs[i]));
        json_dumpf(arr, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
        json_decref(arr);
        return;
    }
    printf("%-8s %-24s %-24s %10s  %s\n", "ID", "START", "END", "BYTES", "PATH");
    for (size_t i = 0; i < n; i++) {
        char start[VG_TIME_TEXT_MAX], end[VG_TIME_TEXT_MAX];
        vg_time_format(segs[i].start_us, start);
        vg_time_format(segs[i].end_us, end);
        printf("%-8lld %-24s %-24s %10lld  %s\n", (long long)segs[i].id, start, end,
               (long long)segs[i].bytes, segs[i].path);
    }
}

static int cmd_segments(ctl_t *c, const char *source)
{
    int64_t from, to;
    if (parse_range(c, &from, &to) != VG_OK || check_source(c, source) != VG_OK)
        return EXIT_USAGE;
    idx_segment_t *segs = NULL;
    size_t n = 0;
    char object[96], detail[48];
    if (idx_segments_in_range(c->idx, source, from, to, &segs, &n) != VG_OK)
        return EXIT_PROBLEM;
    /* Shown only once the access is on record (DESIGN.md invariant 6). */
    snprintf(object, sizeof(object), "source:%s", source);
    snprintf(detail, sizeof(detail), "%zu segment(s)", n);
    if (ctl_audit(c->idx, "segments.read", object, from, to == INT64_MAX ? 0 : to, "ok",
                  detail) != VG_OK) {
        free(segs);
        return EXIT_PROBLEM;
    }
    print_segments(segs, n, c->json);
    free(segs);
    return 0;
}

static void report_problem(void *ctx, arc_problem_t problem, const char *path, const char *detail)
{
    static const char *names[ARC_PROBLEM_KINDS] = {"row-without-file", "size-mismatch",
                                                   "hash-mismatch", "file-without-row",
                                                   "unverified", "unreadable"};
    (void)ctx;
    printf("%s %s: %s\n", names[problem], path, detail);
}

/* Files retention could not delete (their rows stay marked until they go). */
static int report_delete_failures(ctl_t *c, int *problems)
{
    idx_delete_failure_t *f = NULL;
    size_t n = 0;
    int rc = idx_delete_failures(c->idx, &f, &n);
    for (size_t i = 0; rc == VG_OK && i < n; i++) {
        char when[VG_TIME_TEXT_MAX];
        vg_time_format(f[i].retry_us, when);
        printf("delete-failed %s: %s (next try %s)\n", f[i].seg.path, f[i].error, when);
        (*problems)++;
    }
    free(f);
    return rc;
}

/* The timeline's span table (schema v19) is kept by triggers in each row's
 * transaction; a disagreement means the index was changed behind SQLite. */
static void report_bad_spans(void *ctx, const char *source)
{
    (void)ctx;
    printf("spans: the timeline's span table of %s disagrees with its segments "
           "(setting its source.span_dirty to 1 makes the next sweep rebuild it)\n", source);
}

static int cmd_check(ctl_t *c)
{
    arc_reconcile_opts_t opts = {.deep = c->deep, .report = report_problem};
    int problems = 0;
    int rc = arc_reconcile(c->cfg.data_dir, c->idx, &opts, &problems);
    if (rc == VG_OK)
        rc = report_delete_failures(c, &problems);
    int bad_spans = 0;
    if (rc == VG_OK)
        rc = idx_spans_verify(c->idx, report_bad_spans, NULL, &bad_spans);
    problems += bad_spans;
    if (rc != VG_OK) {
        fprintf(stderr, "vigilctl: check failed: %s\n", vg_strerror(rc));
        return EXIT_PROBLEM;
    }
    if (problems) {
        printf("%d problem(s) found\n", problems);
        return EXIT_PROBLEM;
    }
    printf("ok: index and disk agree%s\n", c->deep ? " (every file re-hashed)" : "");
    return 0;
}

static int cmd_export(ctl_t *c, const char *source)
{
    int64_t from, to;
    if (!c->from || !c->to || !c->out) {
        fprintf(stderr, "vigilctl: export needs --from, --to and -o\n");
        return EXIT_USAGE;
    }
    if (parse_range(c, &from, &to) != VG_OK || check_source(c, source) != VG_OK)
        return EXIT_USAGE;
    idx_segment_t *segs = NULL;
    size_t n = 0;
    char object[96], detail[256];
    if (idx_segments_in_range(c->idx, source, from, to, &segs, &n) != VG_OK)
        return EXIT_PROBLEM;
    /* The export is on record before a byte of it is written. */
    snprintf(object, sizeof(object), "source:%s", source);
    snprintf(detail, sizeof(detail), "to %.200s", c->out);
    if (ctl_audit(c->idx, "export", object, from, to, "ok", detail) != VG_OK) {
        free(segs);
        return EXIT_PROBLEM;
    }
    char err[256];
    int rc = arc_export(c->cfg.data_dir, segs, n, from, to, c->out, err, sizeof(err));
    free(segs);
    if (rc != VG_OK) {
        snprintf(detail, sizeof(detail), "failed: %.200s", err);
        ctl_audit(c->idx, "export", object, from, to, "error", detail);
        fprintf(stderr, "vigilctl: export failed: %s\n", err);
        return rc == VG_ENOTFOUND || rc == VG_EINVAL ? EXIT_USAGE : EXIT_PROBLEM;
    }
    printf("%s\n", c->out);
    return 0;
}

/* A signed evidence bundle, the same zip the API's exports make. On record
 * before a byte is written, like the single-file export. */
static int cmd_export_bundle(ctl_t *c, int n_sources, char **sources)
{
    int64_t from, to;
    if (!c->from || !c->to || !c->out || !c->case_no || !c->reason || n_sources < 1) {
        fprintf(stderr, "vigilctl: export --bundle needs --case, --reason, SOURCE..., --from, "
                        "--to and -o\n");
        return EXIT_USAGE;
    }
    if (n_sources > PB_BUNDLE_MAX_SOURCES) {
        fprintf(stderr, "vigilctl: at most %d sources in a bundle\n", PB_BUNDLE_MAX_SOURCES);
        return EXIT_USAGE;
    }
    if (parse_range(c, &from, &to) != VG_OK)
        return EXIT_USAGE;
    char list[IDX_LIST_TEXT_MAX] = "";
    for (int i = 0; i < n_sources; i++) {
        if (check_source(c, sources[i]) != VG_OK)
            return EXIT_USAGE;
        vg_list_append(list, sizeof(list), sources[i]);
    }
    vg_key_t key;
    if (vg_key_load_or_create(c->cfg.data_dir, &key) != VG_OK) {
        fprintf(stderr, "vigilctl: cannot load the appliance key (run as vigild's user)\n");
        return EXIT_PROBLEM;
    }
    char appliance[80] = "", object[192], detail[256], err[320], actor[96];
    idx_archive_id(c->idx, appliance, sizeof(appliance));
    snprintf(object, sizeof(object), "sources:%.180s", list);
    snprintf(detail, sizeof(detail), "bundle case=%.60s reason=%.80s to %.90s", c->case_no,
             c->reason, c->out);
    int rc = EXIT_PROBLEM;
    if (ctl_audit(c->idx, "export", object, from, to, "ok", detail) != VG_OK)
        goto cleanup;
    ctl_actor(actor, sizeof(actor));
    pb_bundle_opts_t o = {.data_dir = c->cfg.data_dir, .key = &key, .appliance_id = appliance,
                          .exporter = actor, .case_no = c->case_no, .reason = c->reason,
                          .from_us = from, .to_us = to,
                          .created_us = vg_clock_wall(&vg_system_clock),
                          .sources = (const char *const *)sources, .n_sources = (size_t)n_sources};
    pb_bundle_result_t res;
    int brc = pb_bundle_write(c->idx, &o, c->out, &res, err, sizeof(err));
    if (brc != VG_OK) {
        snprintf(detail, sizeof(detail), "bundle failed: %.200s", err);
        ctl_audit(c->idx, "export", object, from, to, "error", detail);
        fprintf(stderr, "vigilctl: export failed: %s\n", err);
        rc = brc == VG_ENOTFOUND || brc == VG_EINVAL ? EXIT_USAGE : EXIT_PROBLEM;
        goto cleanup;
    }
    printf("%s\n", c->out);
    rc = 0;

cleanup:
    vg_key_wipe(&key);
    return rc;
}

/* Needs no config and no index: a recipient runs it anywhere. */
static int cmd_verify_export(const char *zip, const char *pubkey)
{
    char why[320], key_id[VG_KEY_ID_HEX] = "";
    int rc = pb_bundle_verify(zip, pubkey, why, sizeof(why), key_id);
    if (rc != VG_OK) {
        printf("FAILED: %s\n", why);
        return EXIT_PROBLEM;
    }
    printf("ok: signature by key %s and every file's sha256 check out\n", key_id);
    return 0;
}

/* ---- retention commands ---- */

static json_t *time_json(int64_t us)
{
    char text[VG_TIME_TEXT_MAX];
    if (!us)
        return json_null();
    vg_time_format(us, text);
    return json_string(text);
}

static void print_json(json_t *v)
{
    json_dumpf(v, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    json_decref(v);
}

static const char *fmt_time(int64_t us, char *buf)
{
    if (!us)
        return "-";
    vg_time_format(us, buf);
    return buf;
}

static void print_plan(const ret_plan_t *plan, int json)
{
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < plan->n; i++) {
            const idx_segment_t *s = &plan->victims[i].seg;
            json_array_append_new(arr, json_pack("{sI ss so so sI ss}", "id", (json_int_t)s->id,
                                                 "source", s->source, "start",
                                                 time_json(s->start_us), "end",
                                                 time_json(s->end_us), "bytes",
                                                 (json_int_t)s->bytes, "reason",
                                                 ret_reason_name(plan->victims[i].reason)));
        }
        json_t *obj = json_pack("{so sb sb}", "delete", arr, "stop_recording",
                                plan->stop_recording, "below_floor", plan->below_floor);
        print_json(obj);
        return;
    }
    for (size_t i = 0; i < plan->n; i++) {
        const idx_segment_t *s = &plan->victims[i].seg;
        char a[VG_TIME_TEXT_MAX], b[VG_TIME_TEXT_MAX];
        printf("%-8lld %-16s %s %s %10lld %s\n", (long long)s->id, s->source,
               fmt_time(s->start_us, a), fmt_time(s->end_us, b), (long long)s->bytes,
               ret_reason_name(plan->victims[i].reason));
    }
    printf("%zu segment(s) would be deleted%s\n", plan->n,
           plan->stop_recording ? "; recording would stop (see storage)" : "");
}

static int clock_jump_active(ctl_t *c)
{
    idx_alarm_t *a = NULL;
    size_t n = 0;
    int active = 0;
    if (idx_alarms_active(c->idx, &a, &n) == VG_OK) {
        for (size_t i = 0; i < n; i++)
            active |= strcmp(a[i].kind, "clock_jump") == 0;
    }
    free(a);
    return active;
}

static int cmd_sweep(ctl_t *c)
{
    int64_t now = vg_clock_wall(&vg_system_clock);
    if (c->as_of && !c->dry_run) {
        fprintf(stderr, "vigilctl: --as-of only goes with --dry-run\n");
        return EXIT_USAGE;
    }
    if (parse_time_arg("--as-of", c->as_of, now, &now) != VG_OK)
        return EXIT_USAGE;
    /* Who asked is on record; what a real sweep deletes is in its own
     * retention.destroy row and destruction record. */
    if (ctl_audit(c->idx, c->dry_run ? "retention.plan" : "retention.sweep", "retention", 0, 0,
                  "ok", c->dry_run ? "dry run" : "") != VG_OK)
        return EXIT_PROBLEM;
    if (!c->dry_run) {
        ret_sweep_result_t res;
        if (ret_sweep(c->idx, &c->cfg, now, 0, &res) != VG_OK)
            return EXIT_PROBLEM;
        if (c->json)
            print_json(json_pack("{sI sI sb}", "deleted", (json_int_t)res.deleted, "freed_bytes",
                                 (json_int_t)res.freed_bytes, "stop_recording",
                                 res.stop_recording));
        else
            printf("deleted %zu segment(s), %lld bytes\n", res.deleted,
                   (long long)res.freed_bytes);
        return 0;
    }
    ret_disk_t disk;
    ret_plan_t plan;
    if (ret_disk_read(&c->cfg, c->idx, 0, &disk) != VG_OK ||
        ret_plan(c->idx, &c->cfg, now, &disk, 0, &plan) != VG_OK)
        return EXIT_PROBLEM;
    print_plan(&plan, c->json);
    ret_plan_free(&plan);
    if (!c->json && clock_jump_active(c))
        printf("note: a clock_jump alarm is active: a real sweep deletes nothing for age until"
               " `vigilctl clock accept`\n");
    return 0;
}

static void who_am_i(char *out, size_t size)
{
    const struct passwd *pw = getpwuid(getuid());
    snprintf(out, size, "cli:%s", pw ? pw->pw_name : "unknown");
}

typedef struct {
    idx_hold_t *h;
    const char *const *sources;
    size_t n;
    int64_t id;
    const char *reason;
} hold_change_t;

static int do_hold_add(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    hold_change_t *c = arg;
    (void)n;
    int rc = idx_hold_add(idx, c->h, c->sources, c->n);
    if (rc == VG_OK)
        snprintf(rows[0].object, sizeof(rows[0].object), "hold:%lld", (long long)c->h->id);
    return rc;
}

static int do_hold_release(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    hold_change_t *c = arg;
    (void)n;
    return idx_hold_release(idx, c->id, c->h->released_by, c->reason, rows[0].ts_us);
}

static int hold_add(ctl_t *c)
{
    idx_hold_t h = {0};
    if (!c->case_no || !*c->case_no || !c->reason || !*c->reason || c->n_hold_sources == 0 ||
        !c->from || !c->to) {
        fprintf(stderr, "vigilctl: hold add needs --case, --reason, --source, --from and --to "
                        "(case and reason not empty)\n");
        return EXIT_USAGE;
    }
    if (parse_range(c, &h.from_us, &h.to_us) != VG_OK ||
        parse_time_arg("--until", c->until, 0, &h.until_us) != VG_OK)
        return EXIT_USAGE;
    for (size_t i = 0; i < c->n_hold_sources; i++) {
        if (check_source(c, c->hold_sources[i]) != VG_OK)
            return EXIT_USAGE;
    }
    if (snprintf(h.case_no, sizeof(h.case_no), "%s", c->case_no) >= (int)sizeof(h.case_no) ||
        snprintf(h.reason, sizeof(h.reason), "%s", c->reason) >= (int)sizeof(h.reason)) {
        fprintf(stderr, "vigilctl: case or reason too long\n");
        return EXIT_USAGE;
    }
    who_am_i(h.created_by, sizeof(h.created_by));
    h.created_us = vg_clock_wall(&vg_system_clock);
    char detail[256], list[160] = "";
    for (size_t i = 0; i < c->n_hold_sources; i++)
        vg_list_append(list, sizeof(list), c->hold_sources[i]);
    snprintf(detail, sizeof(detail), "case=%.100s sources=%.120s", h.case_no, list);
    idx_audit_t row;
    ctl_audit_row(&row, "hold.create", "", h.from_us, h.to_us, "ok", detail);
    hold_change_t change = {.h = &h, .sources = c->hold_sources, .n = c->n_hold_sources};
    if (ctl_change(c->idx, do_hold_add, &change, &row) != VG_OK)
        return EXIT_PROBLEM;
    if (c->json)
        print_json(json_pack("{sI}", "id", (json_int_t)h.id));
    else
        printf("%lld\n", (long long)h.id);
    return 0;
}

static json_t *hold_json(const idx_hold_t *h)
{
    return json_pack("{sI ss ss ss so so so so so ss ss ss}", "id", (json_int_t)h->id, "case",
                     h->case_no, "reason", h->reason, "created_by", h->created_by, "created",
                     time_json(h->created_us), "from", time_json(h->from_us), "to",
                     time_json(h->to_us), "until", time_json(h->until_us), "released",
                     time_json(h->released_us), "released_by", h->released_by,
                     "release_reason", h->release_reason, "sources", h->sources);
}

static int hold_list(ctl_t *c)
{
    idx_hold_t *holds = NULL;
    size_t n = 0;
    if (idx_hold_list(c->idx, c->all, vg_clock_wall(&vg_system_clock), &holds, &n) != VG_OK)
        return EXIT_PROBLEM;
    if (c->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, hold_json(&holds[i]));
        print_json(arr);
    } else {
        for (size_t i = 0; i < n; i++) {
            char a[VG_TIME_TEXT_MAX], b[VG_TIME_TEXT_MAX], u[VG_TIME_TEXT_MAX];
            printf("%-5lld case=%s sources=%s %s .. %s until=%s by=%s%s reason: %s\n",
                   (long long)holds[i].id, holds[i].case_no, holds[i].sources,
                   fmt_time(holds[i].from_us, a), fmt_time(holds[i].to_us, b),
                   fmt_time(holds[i].until_us, u), holds[i].created_by,
                   holds[i].released_us ? " RELEASED" : "", holds[i].reason);
        }
    }
    free(holds);
    return 0;
}

static int hold_release(ctl_t *c, const char *id_text)
{
    char *end = NULL;
    long long id = strtoll(id_text, &end, 10);
    if (!*id_text || *end || id <= 0 || !c->reason || !*c->reason) {
        fprintf(stderr, "vigilctl: hold release ID --reason R\n");
        return EXIT_USAGE;
    }
    idx_hold_t h = {0};
    char object[48];
    idx_audit_t row;
    idx_hold_get(c->idx, id, &h); /* its range for the row; none: the release says so */
    who_am_i(h.released_by, sizeof(h.released_by));
    snprintf(object, sizeof(object), "hold:%lld", id);
    ctl_audit_row(&row, "hold.release", object, h.from_us, h.to_us, "ok", c->reason);
    hold_change_t change = {.h = &h, .id = id, .reason = c->reason};
    int rc = ctl_change(c->idx, do_hold_release, &change, &row);
    if (rc == VG_ENOTFOUND || rc == VG_EINVAL) {
        fprintf(stderr, "vigilctl: hold %lld %s\n", id,
                rc == VG_ENOTFOUND ? "does not exist" : "is already released");
        return EXIT_USAGE;
    }
    if (rc != VG_OK)
        return EXIT_PROBLEM;
    if (c->json)
        print_json(json_pack("{sI sb}", "id", (json_int_t)id, "released", 1));
    else
        printf("released hold %lld; its segments are eligible at the next sweep\n", id);
    return 0;
}

static int cmd_hold(ctl_t *c, int argc, char **argv)
{
    if (strcmp(argv[0], "add") == 0 && argc == 1)
        return hold_add(c);
    if (strcmp(argv[0], "list") == 0 && argc == 1)
        return hold_list(c);
    if (strcmp(argv[0], "release") == 0 && argc == 2)
        return hold_release(c, argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}

static json_t *storage_json(const ret_storage_t *st)
{
    json_t *sources = json_array(), *alarms = json_array();
    for (size_t i = 0; i < st->n_sources; i++) {
        const ret_source_figures_t *f = &st->sources[i];
        json_array_append_new(
            sources, json_pack("{ss ss si sI sI so so sf sf sI sf}", "source", f->source, "kind",
                               f->kind, "keep_days", f->keep_days, "segments",
                               (json_int_t)f->segments, "bytes", (json_int_t)f->bytes, "oldest",
                               time_json(f->oldest_us), "newest", time_json(f->newest_us),
                               "depth_days", f->depth_days, "bytes_per_day", f->bytes_per_day,
                               "held_bytes", (json_int_t)f->held_bytes, "projected_days",
                               f->projected_days));
    }
    for (size_t i = 0; i < st->n_alarms; i++) {
        const ret_alarm_t *a = &st->alarms[i];
        json_array_append_new(alarms, json_pack("{ss ss ss ss so}", "kind", a->kind, "severity",
                                                a->severity, "sources", a->sources, "message",
                                                a->message, "raised", time_json(a->raised_us)));
    }
    return json_pack("{sI sI sI so so}", "capacity_bytes", (json_int_t)st->disk.capacity_bytes,
                     "free_bytes", (json_int_t)st->disk.free_bytes, "reserve_bytes",
                     (json_int_t)st->disk.reserve_bytes, "sources", sources, "alarms", alarms);
}

static void print_storage(const ret_storage_t *st)
{
    printf("capacity %lld bytes, free %lld, reserve %lld\n", (long long)st->disk.capacity_bytes,
           (long long)st->disk.free_bytes, (long long)st->disk.reserve_bytes);
    printf("%-16s %6s %12s %8s %10s %12s %10s %5s\n", "SOURCE", "KIND", "BYTES", "DEPTH_D",
           "PROJ_D", "BYTES/DAY", "HELD", "KEEP");
    for (size_t i = 0; i < st->n_sources; i++) {
        const ret_source_figures_t *f = &st->sources[i];
        printf("%-16s %6s %12lld %8.2f %10.1f %12.0f %10lld %5d\n", f->source, f->kind,
               (long long)f->bytes, f->depth_days, f->projected_days, f->bytes_per_day,
               (long long)f->held_bytes, f->keep_days);
    }
    for (size_t i = 0; i < st->n_alarms; i++)
        printf("ALARM %s %s sources=%s: %s\n", st->alarms[i].severity, st->alarms[i].kind,
               st->alarms[i].sources, st->alarms[i].message);
    if (st->n_alarms == 0)
        printf("no alarms\n");
}

static int cmd_storage(ctl_t *c)
{
    int64_t now = vg_clock_wall(&vg_system_clock);
    ret_disk_t disk;
    ret_storage_t st;
    if (ret_disk_read(&c->cfg, c->idx, 0, &disk) != VG_OK ||
        ret_storage(c->idx, &c->cfg, now, &disk, &st) != VG_OK)
        return EXIT_PROBLEM;
    if (c->json)
        print_json(storage_json(&st));
    else
        print_storage(&st);
    ret_storage_free(&st);
    return 0;
}

static json_t *destroyed_json(idx_t *idx, int64_t run_id, const char *source)
{
    json_t *arr = json_array();
    idx_destroyed_segment_t *d = NULL;
    size_t n = 0;
    if (idx_destruction_segments(idx, run_id, &d, &n) == VG_OK) {
        for (size_t i = 0; i < n; i++) {
            if (strcmp(d[i].source, source) != 0)
                continue;
            json_array_append_new(arr, json_pack("{sI ss so so sI ss}", "id",
                                                 (json_int_t)d[i].segment_id, "source",
                                                 d[i].source, "start", time_json(d[i].start_us),
                                                 "end", time_json(d[i].end_us), "bytes",
                                                 (json_int_t)d[i].bytes, "sha256", d[i].sha256));
        }
    }
    free(d);
    return arr;
}

static int cmd_destruction_log(ctl_t *c)
{
    int64_t from, to;
    if (parse_range(c, &from, &to) != VG_OK)
        return EXIT_USAGE;
    idx_destruction_row_t *rows = NULL;
    size_t n = 0;
    if (idx_destruction_log(c->idx, from, to, &rows, &n) != VG_OK)
        return EXIT_PROBLEM;
    json_t *arr = c->json ? json_array() : NULL;
    for (size_t i = 0; i < n; i++) {
        const idx_destruction_row_t *r = &rows[i];
        char at[VG_TIME_TEXT_MAX], a[VG_TIME_TEXT_MAX], b[VG_TIME_TEXT_MAX];
        if (arr) {
            json_array_append_new(
                arr, json_pack("{sI so ss ss sI sI so so so}", "run", (json_int_t)r->run_id, "at",
                               time_json(r->at_us), "reason", r->reason, "source", r->source,
                               "segments", (json_int_t)r->segments, "bytes",
                               (json_int_t)r->bytes, "from", time_json(r->from_us), "to",
                               time_json(r->to_us), "deleted",
                               destroyed_json(c->idx, r->run_id, r->source)));
        } else {
            printf("run %lld at %s reason=%s source=%s segments=%lld bytes=%lld range %s .. %s\n",
                   (long long)r->run_id, fmt_time(r->at_us, at), r->reason, r->source,
                   (long long)r->segments, (long long)r->bytes, fmt_time(r->from_us, a),
                   fmt_time(r->to_us, b));
        }
    }
    free(rows);
    if (arr)
        print_json(arr);
    return 0;
}

/* The admin vouches for the wall clock after a clock_jump alarm: age
 * deletion resumes at the next sweep. Audited like any admin change. */
static int cmd_clock_accept(ctl_t *c)
{
    int64_t now = vg_clock_wall(&vg_system_clock);
    int cleared = 0;
    if (ret_clock_accept(c->idx, now, &cleared) != VG_OK)
        return EXIT_PROBLEM;
    if (!cleared) {
        printf("no clock_jump alarm is active; nothing to accept\n");
        return 0;
    }
    char at[VG_TIME_TEXT_MAX], detail[96];
    vg_time_format(now, at);
    snprintf(detail, sizeof(detail), "wall clock accepted at %s", at);
    if (ctl_audit(c->idx, "clock.accept", "clock", 0, 0, "ok", detail) != VG_OK)
        return EXIT_PROBLEM;
    printf("wall clock accepted (%s); age-based deletion resumes at the next sweep\n", at);
    return 0;
}

/* ---- calls recheck: forget the announcement checks of a range; the
 * running vigild's calls worker checks those calls again (calls/worker.c) */

typedef struct {
    int64_t from, to, n;
} recheck_t;

static int do_recheck(idx_t *idx, void *arg, idx_audit_t *rows, size_t n_rows)
{
    recheck_t *r = arg;
    int rc = idx_call_clear_announcement(idx, r->from, r->to, &r->n);
    if (rc == VG_OK && n_rows)
        snprintf(rows[0].detail, sizeof(rows[0].detail), "%lld call(s)", (long long)r->n);
    return rc;
}

static int cmd_calls_recheck(ctl_t *c)
{
    recheck_t r = {0};
    if (!c->from || !c->to) {
        fprintf(stderr, "vigilctl: calls recheck needs --from and --to\n");
        return EXIT_USAGE;
    }
    if (parse_range(c, &r.from, &r.to) != VG_OK)
        return EXIT_USAGE;
    idx_audit_t row;
    ctl_audit_row(&row, "calls.recheck", "calls", r.from, r.to, "ok", "");
    if (ctl_change(c->idx, do_recheck, &r, &row) != VG_OK)
        return EXIT_PROBLEM;
    printf("%lld call(s) will be checked again by vigild\n", (long long)r.n);
    return 0;
}

/* How each command opens the index (see open_index). */
static int command_open_mode(int argc, char **argv)
{
    const char *cmd = argv[0];
    if (ctl_accounts_writes(argc, argv) || (strcmp(cmd, "sweep") == 0 && argc == 1) ||
        (strcmp(cmd, "hold") == 0 && argc >= 2 && strcmp(argv[1], "list") != 0) ||
        (strcmp(cmd, "clock") == 0 && argc == 2 && strcmp(argv[1], "accept") == 0) ||
        (strcmp(cmd, "calls") == 0 && argc == 3 && strcmp(argv[1], "import") == 0) ||
        (strcmp(cmd, "calls") == 0 && argc == 2 && strcmp(argv[1], "recheck") == 0))
        return OPEN_WRITE;
    if (strcmp(cmd, "sweep") == 0 || strcmp(cmd, "segments") == 0 || strcmp(cmd, "export") == 0)
        return OPEN_AUDITED_READ;
    return OPEN_READ;
}

static int dispatch(ctl_t *c, int argc, char **argv)
{
    const char *cmd = argv[0];
    if (strcmp(cmd, "segments") == 0 && argc == 2)
        return cmd_segments(c, argv[1]);
    if (strcmp(cmd, "check") == 0 && argc == 1)
        return cmd_check(c);
    if (strcmp(cmd, "export") == 0 && c->bundle)
        return cmd_export_bundle(c, argc - 1, argv + 1);
    if (strcmp(cmd, "export") == 0 && argc == 2)
        return cmd_export(c, argv[1]);
    if (strcmp(cmd, "sweep") == 0 && argc == 1)
        return cmd_sweep(c);
    if (strcmp(cmd, "hold") == 0 && argc >= 2)
        return cmd_hold(c, argc - 1, argv + 1);
    if (strcmp(cmd, "storage") == 0 && argc == 1)
        return cmd_storage(c);
    if (strcmp(cmd, "clock") == 0 && argc == 2 && strcmp(argv[1], "accept") == 0)
        return cmd_clock_accept(c);
    if (strcmp(cmd, "destruction-log") == 0 && argc == 1)
        return cmd_destruction_log(c);
    if (strcmp(cmd, "calls") == 0 && argc == 2 && strcmp(argv[1], "recheck") == 0)
        return cmd_calls_recheck(c);
    if (ctl_accounts_handles(argc, argv)) {
        c->acct.from = c->from, c->acct.to = c->to, c->acct.json = c->json;
        return ctl_accounts_dispatch(&c->cfg, c->idx, argc, argv, &c->acct);
    }
    if (strcmp(cmd, "status") == 0 && argc == 1)
        return ctl_status(&c->cfg, c->idx, c->json);
    if (strcmp(cmd, "calls") == 0 && argc == 3 && strcmp(argv[1], "import") == 0)
        return ctl_calls_import(&c->cfg, c->idx, argv[2], c->format, c->utc);
    usage(stderr);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'}, {"deep", no_argument, NULL, 'd'},
        {"from", required_argument, NULL, 'f'}, {"to", required_argument, NULL, 't'},
        {"dry-run", no_argument, NULL, 'n'}, {"as-of", required_argument, NULL, 'a'},
        {"until", required_argument, NULL, 'u'}, {"case", required_argument, NULL, 'C'},
        {"reason", required_argument, NULL, 'r'}, {"source", required_argument, NULL, 's'},
        {"all", no_argument, NULL, 'A'}, {"role", required_argument, NULL, 'R'},
        {"sources", required_argument, NULL, 'S'}, {"perm", required_argument, NULL, 'P'},
        {"checkpoints", required_argument, NULL, 'K'}, {"key", required_argument, NULL, 'k'},
        {"bundle", no_argument, NULL, 'B'}, {"pubkey", required_argument, NULL, 'p'},
        {"format", required_argument, NULL, 'F'}, {"utc", no_argument, NULL, 'U'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    ctl_t c = {0};
    const char *config_path = NULL;
    int opt;
    /* GNU getopt moves operands after the options, so options may come
     * before or after the command. */
    while ((opt = getopt_long(argc, argv, "c:o:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'o': c.out = optarg; break;
        case 'j': c.json = 1; break;
        case 'd': c.deep = 1; break;
        case 'f': c.from = optarg; break;
        case 't': c.to = optarg; break;
        case 'n': c.dry_run = 1; break;
        case 'a': c.as_of = optarg; break;
        case 'u': c.until = optarg; break;
        case 'C': c.case_no = optarg; break;
        case 'r': c.reason = optarg; break;
        case 'A': c.all = 1; break;
        case 'B': c.bundle = 1; break;
        case 'p': c.pubkey = optarg; break;
        case 'R': c.acct.role = optarg; break;
        case 'S': c.acct.sources = optarg; break;
        case 'P': c.acct.perm = optarg; break;
        case 'K': c.acct.checkpoints = optarg; break;
        case 'k': c.acct.key = optarg; break;
        case 'F': c.format = optarg; break;
        case 'U': c.utc = 1; break;
        case 's':
            if (c.n_hold_sources == MAX_HOLD_SOURCES) {
                fprintf(stderr, "vigilctl: at most %d --source\n", MAX_HOLD_SOURCES);
                return EXIT_USAGE;
            }
            c.hold_sources[c.n_hold_sources++] = optarg;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind + 2 == argc && strcmp(argv[optind], "verify-export") == 0)
        return cmd_verify_export(argv[optind + 1], c.pubkey);
    if (!config_path || optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    char err[512];
    if (vg_config_load(config_path, &c.cfg, err, sizeof(err)) != VG_OK) {
        fprintf(stderr, "vigilctl: %s\n", err);
        return EXIT_USAGE;
    }
    vg_log_set_level(VG_LOG_WARNING);
    cap_route_libav_log(AV_LOG_ERROR);
    int rc = open_index(&c, command_open_mode(argc - optind, argv + optind)) == VG_OK ? 0
                                                                                : EXIT_PROBLEM;
    if (rc == 0) {
        rc = dispatch(&c, argc - optind, argv + optind);
    }
    idx_close(c.idx);
    vg_config_free(&c.cfg);
    return rc;
}
