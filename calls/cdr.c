/* The Asterisk CDR import: Master.csv (cdr_csv) rows into calls. A row is
 * a call of the line whose [source] pbx_extension its channel (the
 * caller's leg) or dstchannel (the called leg) names; its uniqueid is the
 * call_id, so importing a file twice, or a file overlapping the HTTP
 * events, merges instead of duplicating. Times are the office's local
 * time unless the file is UTC; they are converted with the zone's TZif
 * file (RFC 8536), read here rather than through setenv("TZ"), which is
 * not safe while vigild's other threads format times.
 *
 * Columns (cdr_csv, loguniqueid and loguserfield on): accountcode, src,
 * dst, dcontext, clid, channel, dstchannel, lastapp, lastdata, start,
 * answer, end, duration, billsec, disposition, amaflags, uniqueid,
 * userfield. The last two are optional (16 columns without them). */
#include "calls/calls.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define COLS_MIN 16
#define COLS_MAX 24
#define FIELD_MAX 512        /* a longer field makes the row bad */
#define LINE_MAX_BYTES 8192  /* a longer row is bad (and skipped to its end) */
#define BATCH_ROWS 2000      /* rows per transaction, at most */
#define BATCH_US 50000       /* and at most this long holding the write lock */
#define GAP_US 5000          /* between two: other writers' waits poll every 2 ms */
#define TZIF_MAX (256 * 1024)

enum {
    C_ACCOUNT, C_SRC, C_DST, C_DCONTEXT, C_CLID, C_CHANNEL, C_DSTCHANNEL, C_LASTAPP, C_LASTDATA,
    C_START, C_ANSWER, C_END, C_DURATION, C_BILLSEC, C_DISPOSITION, C_AMAFLAGS, C_UNIQUEID,
    C_USERFIELD
};

/* ---- time zones (TZif) ---- */

typedef struct {
    int64_t *at;     /* transition times (UTC s), ascending */
    int32_t *off;    /* the UTC offset (s) from each transition on */
    size_t n;
    int32_t first;   /* the offset before the first transition */
} zone_t;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* Reads the zone's transitions: the 64-bit block of a v2+ file, else the
 * v1 block. Times after the last transition keep its offset (the footer's
 * rule is not evaluated: right for zones without daylight saving, such as
 * Russia's since 2014). */
static int zone_load(const char *name, zone_t *z)
{
    char path[512];
    unsigned char *buf = NULL;
    int fd = -1, ret = VG_EINVAL;
    memset(z, 0, sizeof(*z));
    const char *db = getenv("TZDIR") ? getenv("TZDIR") : "/usr/share/zoneinfo";
    if (!name || !*name || name[0] == '/' || strstr(name, ".."))
        return VG_EINVAL;
    snprintf(path, sizeof(path), "%s/%s", db, name);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return VG_ENOTFOUND;
    buf = vg_malloc(TZIF_MAX);
    ssize_t len = read(fd, buf, TZIF_MAX);
    if (len < 44 || memcmp(buf, "TZif", 4) != 0)
        goto cleanup;
    const unsigned char *h = buf;
    int tsize = 4;
    size_t hdr_at = 0;
    for (int pass = 0; pass < 2; pass++) {
        h = buf + hdr_at;
        if ((size_t)len < hdr_at + 44 || memcmp(h, "TZif", 4) != 0)
            goto cleanup;
        uint32_t isut = be32(h + 20), isstd = be32(h + 24), leap = be32(h + 28);
        uint32_t timecnt = be32(h + 32), typecnt = be32(h + 36), charcnt = be32(h + 40);
        if (timecnt > 4000 || typecnt == 0 || typecnt > 256 || charcnt > 4096 || leap > 1000 ||
            isut > 256 || isstd > 256)
            goto cleanup;
        size_t data = (size_t)timecnt * (size_t)tsize + timecnt + typecnt * 6u + charcnt +
                      leap * (size_t)(tsize + 4) + isstd + isut;
        if ((size_t)len < hdr_at + 44 + data)
            goto cleanup;
        if (pass == 0 && h[4] >= '2') {
            hdr_at += 44 + data; /* skip the v1 block: the v2 one has 64-bit times */
            tsize = 8;
            continue;
        }
        const unsigned char *t = h + 44;
        const unsigned char *idx = t + (size_t)timecnt * (size_t)tsize;
        const unsigned char *types = idx + timecnt;
        z->at = vg_calloc(timecnt + 1, sizeof(*z->at));
        z->off = vg_calloc(timecnt + 1, sizeof(*z->off));
        for (uint32_t i = 0; i < timecnt; i++) {
            if (idx[i] >= typecnt)
                goto cleanup;
            z->at[i] = tsize == 8 ? be64(t + (size_t)i * 8) : (int32_t)be32(t + (size_t)i * 4);
            z->off[i] = (int32_t)be32(types + idx[i] * 6u);
        }
        z->n = timecnt;
        /* Before the first transition: the first non-DST type (RFC 8536 3.2). */
        z->first = (int32_t)be32(types);
        for (uint32_t i = 0; i < typecnt; i++) {
            if (!types[i * 6 + 4]) {
                z->first = (int32_t)be32(types + i * 6);
                break;
            }
        }
        ret = VG_OK;
        break;
    }

cleanup:
    if (ret != VG_OK) {
        free(z->at);
        free(z->off);
        memset(z, 0, sizeof(*z));
    }
    free(buf);
    if (fd >= 0)
        close(fd);
    return ret;
}

static void zone_free(zone_t *z)
{
    free(z->at);
    free(z->off);
    memset(z, 0, sizeof(*z));
}

static int32_t zone_offset_at(const zone_t *z, int64_t utc)
{
    int32_t off = z->first;
    /* binary search for the last transition at or before utc */
    size_t lo = 0, hi = z->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (z->at[mid] <= utc)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0)
        off = z->off[lo - 1];
    return off;
}

/* Local wall time (as if UTC) to UTC: two rounds settle every instant but
 * those a change of offset skips or repeats, which take the earlier
 * reading. */
static int64_t zone_to_utc(const zone_t *z, int64_t local)
{
    int64_t guess = local - zone_offset_at(z, local);
    return local - zone_offset_at(z, guess);
}

/* ---- the office zone of the announcement rollup ---- */

int call_ann_zone_apply(idx_t *idx, const char *tz)
{
    zone_t z;
    char name[160];
    int rebuilt = 0;
    /* unset: the system's zone (Debian links zoneinfo/localtime to it) */
    const char *zname = tz && *tz ? tz : "localtime";
    int rc = zone_load(zname, &z);
    if (rc != VG_OK) {
        vg_warn("time zone %s unreadable: announcement report days are UTC days", zname);
        zname = "UTC";
        memset(&z, 0, sizeof(z));
    }
    /* The name carries a hash of the transitions, so new tzdata (or a new
     * /etc/localtime) also rebuilds the days. */
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < z.n; i++)
        h = (h ^ (uint64_t)z.at[i] ^ ((uint64_t)(uint32_t)z.off[i] << 17)) * 1099511628211ULL;
    snprintf(name, sizeof(name), "%.100s/%d/%zu/%016llx", zname, (int)z.first, z.n,
             (unsigned long long)h);
    rc = idx_ann_zone_set(idx, name, z.first, z.at, z.off, z.n, &rebuilt);
    if (rc == VG_OK && rebuilt)
        vg_notice("announcement report: daily counts rebuilt for the office zone %s", zname);
    else if (rc != VG_OK)
        vg_err("announcement report: office zone %s not applied: %s", zname, vg_strerror(rc));
    zone_free(&z);
    return rc;
}

/* ---- parsing ---- */

/* "YYYY-MM-DD HH:MM:SS" as seconds, read as UTC. */
static int parse_cdr_time(const char *s, int64_t *out)
{
    int y, mo, d, h, mi, se;
    char tail;
    if (strlen(s) != 19 || sscanf(s, "%4d-%2d-%2d %2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &se,
                                  &tail) != 6)
        return VG_EINVAL;
    if (y < 1971 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
        se > 60 || h < 0 || mi < 0 || se < 0)
        return VG_EINVAL;
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h,
                    .tm_min = mi, .tm_sec = se};
    time_t t = timegm(&tm);
    /* timegm normalizes 31 February into March: refuse what it changed */
    struct tm back;
    gmtime_r(&t, &back);
    if (back.tm_mday != d || back.tm_mon != mo - 1)
        return VG_EINVAL;
    *out = (int64_t)t;
    return VG_OK;
}

struct call_import {
    idx_t *idx;
    idx_audit_t audit;   /* call_import_audit's row */
    int have_audit;
    int started;         /* the "started" row is in a batch being written */
    int on_record;       /* ... and committed */
    int finished;        /* call_import_end ran: no abandonment row */
    int64_t batch_since; /* monotonic µs the open batch began */
    const vg_config_t *cfg;
    int utc;
    zone_t zone;
    int have_zone;
    int64_t now_us;
    char *line;           /* the row being assembled (may span feeds) */
    size_t len;
    int too_long;
    int64_t lineno;       /* physical lines seen */
    int64_t row_line;     /* where the current row started */
    int in_tx;
    size_t batch;
    call_import_report_t rep;
    idx_call_t call;
};

static void reason(call_import_t *im, int64_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void reason(call_import_t *im, int64_t line, const char *fmt, ...)
{
    call_import_report_t *r = &im->rep;
    if (r->n_reasons >= CALL_IMPORT_REASONS)
        return;
    va_list ap;
    va_start(ap, fmt);
    r->reasons[r->n_reasons].line = line;
    vsnprintf(r->reasons[r->n_reasons].reason, sizeof(r->reasons[0].reason), fmt, ap);
    va_end(ap);
    r->n_reasons++;
}

/* Splits one CSV row (RFC 4180: quoted fields, "" inside quotes) into at
 * most COLS_MAX fields, in place. Returns the count, or -1 when malformed
 * or a field is too long. */
static int split_row(char *row, char **f)
{
    int n = 0;
    char *p = row;
    for (;;) {
        if (n == COLS_MAX)
            return -1;
        char *out = p, *start = p;
        if (*p == '"') {
            p++;
            for (;;) {
                if (!*p)
                    return -1;
                if (*p == '"' && p[1] == '"') {
                    *out++ = '"';
                    p += 2;
                } else if (*p == '"') {
                    p++;
                    break;
                } else {
                    *out++ = *p++;
                }
            }
            if (*p && *p != ',')
                return -1;
        } else {
            while (*p && *p != ',') {
                if (*p == '"')
                    return -1;
                out++;
                p++;
            }
        }
        char sep = *p;
        *out = '\0';
        if (strlen(start) > FIELD_MAX)
            return -1;
        f[n++] = start;
        if (!sep)
            return n;
        p++;
    }
}

/* "PJSIP/101-0000002a" names extension 101 of a line, or NULL. */
static const vg_source_config_t *line_of(call_import_t *im, const char *channel)
{
    return channel[0] ? call_line_of_channel(im->cfg, channel) : NULL;
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Commits the batch. An import of a large file holds the index's write lock
 * batch after batch; vigild's other writers (the audit trail's group
 * commit, segment rows, PBX events) must get in between, or their waits
 * time out and every audited request fails for the import's whole run. So a
 * batch is bounded in time too, and a short gap follows it. */
static int flush_batch(call_import_t *im, int final)
{
    int ret = VG_OK;
    if (im->in_tx && !final && im->have_audit && !im->on_record) {
        /* Rows committed before the import's end are committed with the
         * import on record. (A one-batch import has only its final row.) */
        idx_audit_t row = im->audit;
        row.ts_us = vg_clock_wall(&vg_system_clock);
        snprintf(row.result, sizeof(row.result), "started");
        snprintf(row.detail, sizeof(row.detail),
                 "rows are committed in batches; a row with the counts follows");
        if ((ret = idx_audit_append(im->idx, &row, 1)) != VG_OK) {
            idx_rollback(im->idx);
            im->in_tx = 0;
            im->batch = 0;
            return ret;
        }
        im->started = 1;
    }
    if (im->in_tx) {
        ret = idx_commit(im->idx);
        if (ret != VG_OK)
            idx_rollback(im->idx);
        else if (im->started)
            im->on_record = 1;
        im->started = 0;
        im->in_tx = 0;
        usleep(GAP_US);
    }
    im->batch = 0;
    return ret;
}

/* One complete row. Returns VG_OK (whatever happened to the row) unless
 * the index failed. */
static int take_row(call_import_t *im, char *row)
{
    char *f[COLS_MAX];
    int64_t line = im->row_line;
    size_t len = strlen(row);
    while (len && (row[len - 1] == '\r' || row[len - 1] == '\n'))
        row[--len] = '\0';
    if (!len)
        return VG_OK; /* blank line */
    if (im->too_long) {
        im->rep.bad++;
        reason(im, line, "the row is longer than %d bytes", LINE_MAX_BYTES);
        return VG_OK;
    }
    /* Every field ends up in JSON answers, CSV files and signed bundles:
     * a file in another encoding (CP1251 from an older PBX) is refused row
     * by row with the way out, rather than stored as bytes nothing can show. */
    if (!vg_utf8_valid(row, len)) {
        im->rep.bad++;
        reason(im, line, "not UTF-8 text (convert the file first, e.g. iconv -f cp1251 -t utf-8)");
        return VG_OK;
    }
    int n = split_row(row, f);
    if (n < 0 || n < COLS_MIN) {
        im->rep.bad++;
        if (n < 0)
            reason(im, line, "not a CSV row (quotes) or a field over %d bytes", FIELD_MAX);
        else
            reason(im, line, "%d columns; Master.csv rows have 16 to 18", n);
        return VG_OK;
    }
    if (strcmp(f[C_START], "start") == 0)
        return VG_OK; /* a header line someone added */
    idx_call_t *c = &im->call;
    idx_call_init(c);
    int64_t start = 0, end = 0;
    if (parse_cdr_time(f[C_START], &start) != VG_OK || parse_cdr_time(f[C_END], &end) != VG_OK) {
        im->rep.bad++;
        reason(im, line, "start or end is not a time (YYYY-MM-DD HH:MM:SS)");
        return VG_OK;
    }
    if (!im->utc) {
        if (im->have_zone) {
            start = zone_to_utc(&im->zone, start);
            end = zone_to_utc(&im->zone, end);
        } else {
            /* the system's zone: mktime is safe with the process's own TZ */
            struct tm tm;
            time_t t = (time_t)start;
            gmtime_r(&t, &tm);
            tm.tm_isdst = -1;
            start = (int64_t)mktime(&tm);
            t = (time_t)end;
            gmtime_r(&t, &tm);
            tm.tm_isdst = -1;
            end = (int64_t)mktime(&tm);
        }
    }
    if (end < start) {
        im->rep.bad++;
        reason(im, line, "end is before start");
        return VG_OK;
    }
    const vg_source_config_t *from = line_of(im, f[C_CHANNEL]);
    const vg_source_config_t *to = line_of(im, f[C_DSTCHANNEL]);
    const vg_source_config_t *src = from ? from : to;
    if (!src) {
        im->rep.unmatched++;
        reason(im, line, "no line has the extension of channel '%.40s' or dstchannel '%.40s'",
               f[C_CHANNEL], f[C_DSTCHANNEL]);
        return VG_OK;
    }
    snprintf(c->source, sizeof(c->source), "%s", src->name);
    snprintf(c->direction, sizeof(c->direction), "%s",
             from && to ? "internal" : from ? "out" : "in");
    c->start_us = start * 1000000;
    c->end_us = end * 1000000;
    if (c->end_us == c->start_us)
        c->end_us = c->start_us + 1; /* a zero-length CDR is still ended */
    if (n > C_UNIQUEID && f[C_UNIQUEID][0])
        vg_utf8_copy(c->call_id, sizeof(c->call_id), f[C_UNIQUEID]);
    else { /* without loguniqueid: the leg and its start name the call */
        char leg[61]; /* cut before a whole character: the id stays UTF-8 */
        vg_utf8_copy(leg, sizeof(leg), f[C_CHANNEL]);
        snprintf(c->call_id, sizeof(c->call_id), "cdr:%s@%" PRId64, leg, start);
    }
    const char *caller = f[C_SRC];
    /* fields longer than their column are cut before a whole character */
    vg_utf8_copy(c->caller_raw, sizeof(c->caller_raw), caller);
    vg_utf8_copy(c->callee_raw, sizeof(c->callee_raw), f[C_DST]);
    call_number_normalize(c->caller_raw, c->caller, sizeof(c->caller));
    call_number_normalize(c->callee_raw, c->callee, sizeof(c->callee));
    vg_utf8_copy(c->account, sizeof(c->account), f[C_ACCOUNT]);
    vg_utf8_copy(c->disposition, sizeof(c->disposition), f[C_DISPOSITION]);
    if (strcmp(f[C_LASTAPP], "Queue") == 0) {
        f[C_LASTDATA][strcspn(f[C_LASTDATA], ",")] = '\0';
        vg_utf8_copy(c->queue, sizeof(c->queue), f[C_LASTDATA]);
    }
    snprintf(c->origin, sizeof(c->origin), "import");
    c->created_us = c->updated_us = im->now_us;
    if (!im->in_tx) {
        int rc = idx_begin(im->idx);
        if (rc != VG_OK)
            return rc;
        im->in_tx = 1;
        im->batch_since = mono_us();
    }
    int64_t id = 0;
    int created = 0;
    int rc = idx_call_upsert(im->idx, c, &id, &created);
    if (rc == VG_OK) {
        if (created)
            im->rep.imported++;
        else
            im->rep.merged++;
    } else if (rc == VG_EINVAL || rc == VG_EEXIST || rc == VG_ENOTFOUND) {
        /* the row's fault (a call_id of another line, a line not yet
         * registered): counted, the rest go on */
        im->rep.bad++;
        reason(im, line, "%s", rc == VG_EEXIST ? "uniqueid is a call of another line"
                               : rc == VG_ENOTFOUND ? "the line has not been registered yet"
                                                    : "the row does not fit the stored call");
    } else {
        return rc;
    }
    if (++im->batch >= BATCH_ROWS || mono_us() - im->batch_since >= BATCH_US)
        return flush_batch(im, 0);
    return VG_OK;
}

int call_import_begin(idx_t *idx, const vg_config_t *cfg, int utc, const char *tz, int64_t now_us,
                      call_import_t **out)
{
    call_import_t *im = vg_calloc(1, sizeof(*im));
    im->idx = idx;
    im->cfg = cfg;
    im->utc = utc;
    im->now_us = now_us;
    im->line = vg_malloc(LINE_MAX_BYTES + 1);
    im->row_line = 1;
    if (!utc && tz && *tz) {
        if (zone_load(tz, &im->zone) != VG_OK) {
            vg_err("calls import: cannot read time zone %s", tz);
            call_import_abort(im);
            return VG_ECONFIG;
        }
        im->have_zone = 1;
    }
    *out = im;
    return VG_OK;
}

int call_import_feed(call_import_t *im, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char ch = data[i];
        /* One physical line is one row: cdr_csv writes no line breaks
         * inside fields, and a broken quote must not swallow the rows
         * after it (RFC 4180's quoted line breaks are not taken). */
        if (ch == '\n') {
            im->lineno++;
            im->line[im->len] = '\0';
            int rc = take_row(im, im->line);
            im->len = 0;
            im->too_long = 0;
            im->row_line = im->lineno + 1;
            if (rc != VG_OK)
                return rc;
            continue;
        }
        if (ch == '\0') {
            im->too_long = 1; /* a NUL cannot be in a row: treat as bad */
            continue;
        }
        if (im->len < LINE_MAX_BYTES)
            im->line[im->len++] = ch;
        else
            im->too_long = 1;
    }
    return VG_OK;
}

int call_import_commit(call_import_t *im)
{
    return flush_batch(im, 0);
}

int call_import_end(call_import_t *im, call_import_report_t *report)
{
    int rc = VG_OK;
    if (im->len || im->too_long) {
        im->line[im->len] = '\0';
        rc = take_row(im, im->line);
    }
    if (rc == VG_OK)
        rc = flush_batch(im, 1);
    if (rc == VG_OK) {
        *report = im->rep;
        im->finished = 1;
    }
    call_import_abort(im);
    return rc;
}

void call_import_audit(call_import_t *im, const idx_audit_t *row)
{
    im->audit = *row;
    im->have_audit = 1;
}

void call_import_abort(call_import_t *im)
{
    if (!im)
        return;
    if (im->in_tx)
        idx_rollback(im->idx);
    if (im->on_record && !im->finished) {
        /* committed rows stay: the trail says how many, and that it stopped
         * (the counts include the batch rolled back just now, if any) */
        idx_audit_t row = im->audit;
        row.ts_us = vg_clock_wall(&vg_system_clock);
        snprintf(row.result, sizeof(row.result), "error");
        snprintf(row.detail, sizeof(row.detail),
                 "stopped before its end; rows committed so far stay (at most imported=%" PRId64
                 " merged=%" PRId64 " unmatched=%" PRId64 " bad=%" PRId64 ")",
                 im->rep.imported, im->rep.merged, im->rep.unmatched, im->rep.bad);
        if (idx_audit_append(im->idx, &row, 1) != VG_OK)
            vg_err("calls import: stopped, and its audit row cannot be written");
    }
    zone_free(&im->zone);
    free(im->line);
    free(im);
}

char *call_import_report_json(const call_import_report_t *r)
{
    size_t cap = 256 + r->n_reasons * 300, len = 0;
    char *out = vg_malloc(cap);
    len += (size_t)snprintf(out + len, cap - len,
                            "{\"imported\":%" PRId64 ",\"merged\":%" PRId64
                            ",\"unmatched\":%" PRId64 ",\"bad\":%" PRId64 ",\"reasons\":[",
                            r->imported, r->merged, r->unmatched, r->bad);
    for (size_t i = 0; i < r->n_reasons; i++) {
        len += (size_t)snprintf(out + len, cap - len, "%s{\"line\":%" PRId64 ",\"reason\":\"",
                                i ? "," : "", r->reasons[i].line);
        /* reasons quote the file's bytes: escape for JSON, keep ASCII only */
        for (const unsigned char *p = (const unsigned char *)r->reasons[i].reason; *p; p++) {
            if (*p == '"' || *p == '\\')
                len += (size_t)snprintf(out + len, cap - len, "\\%c", *p);
            else if (*p < 0x20 || *p >= 0x7f)
                len += (size_t)snprintf(out + len, cap - len, "?");
            else
                out[len++] = (char)*p;
        }
        len += (size_t)snprintf(out + len, cap - len, "\"}");
    }
    snprintf(out + len, cap - len, "]}");
    return out;
}
