/* Anchoring the audit trail: signed checkpoints of the chain head, kept
 * outside index.db in an append-only file, and their verification against
 * the trail (see index.h). A checkpoint is only ever appended; nothing here
 * rewrites or truncates the file. */
#include "index/index.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define MSG_MAX 192
#define REPORT_MAX 320

struct idx_anchor {
    char *path;
    const vg_key_t *key;
    char key_id[VG_KEY_ID_HEX];
    int64_t last_seq;
    int64_t last_row;
    char last_hash[IDX_AUDIT_HASH_HEX];
    int have_last;
};

static char *file_path(const char *data_dir)
{
    return vg_asprintf("%s/" IDX_CHECKPOINT_FILE, data_dir);
}

static void message(const idx_checkpoint_t *c, char out[MSG_MAX])
{
    snprintf(out, MSG_MAX, "vigil-audit-checkpoint-v1 seq=%" PRId64 " row=%" PRId64
                           " hash=%s ts_us=%" PRId64,
             c->seq, c->row_id, c->hash, c->ts_us);
}

static int hex64(const char *s)
{
    if (strlen(s) != 64)
        return 0;
    for (; *s; s++) {
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return 0;
    }
    return 1;
}

/* One line of the file into c; VG_EINVAL when it is not a checkpoint. A
 * copy taken from the journal has the log line's prefix before the JSON. */
static int parse_line(const char *line, idx_checkpoint_t *c)
{
    json_error_t jerr;
    const char *brace = strchr(line, '{');
    json_t *v = brace ? json_loads(brace, JSON_REJECT_DUPLICATES, &jerr) : NULL;
    json_int_t seq = 0, row = -1, ts = 0;
    const char *hash = NULL, *key_id = NULL, *sig = NULL;
    int ok = v && json_unpack(v, "{sI sI ss sI ss ss}", "seq", &seq, "row", &row, "hash", &hash,
                              "ts_us", &ts, "key_id", &key_id, "sig", &sig) == 0 &&
             seq > 0 && row >= 0 && hex64(hash) && strlen(key_id) < sizeof(c->key_id) &&
             strlen(sig) < sizeof(c->sig);
    if (ok) {
        memset(c, 0, sizeof(*c));
        c->seq = seq;
        c->row_id = row;
        c->ts_us = ts;
        snprintf(c->hash, sizeof(c->hash), "%s", hash);
        snprintf(c->key_id, sizeof(c->key_id), "%s", key_id);
        snprintf(c->sig, sizeof(c->sig), "%s", sig);
    }
    json_decref(v);
    return ok ? VG_OK : VG_EINVAL;
}

/* Calls fn for each line of the file at path, in order; stops when fn
 * returns non-zero. */
static int each_line_at(const char *path, int (*fn)(void *ctx, const char *line, size_t lineno),
                        void *ctx)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return errno == ENOENT ? VG_ENOTFOUND : VG_EIO;
    char *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        if (fn(ctx, line, lineno))
            break;
    }
    int rc = ferror(f) ? VG_EIO : VG_OK;
    free(line);
    fclose(f);
    return rc;
}

/* The same over data_dir's checkpoint file. */
static int each_line(const char *data_dir, int (*fn)(void *ctx, const char *line, size_t lineno),
                     void *ctx)
{
    char *path = file_path(data_dir);
    int rc = each_line_at(path, fn, ctx);
    free(path);
    return rc;
}

/* ---- reading ---- */

typedef struct {
    int64_t after;
    size_t limit;
    idx_checkpoint_t *items;
    size_t n, cap, malformed;
} collect_t;

static int collect(void *ctx, const char *line, size_t lineno)
{
    collect_t *c = ctx;
    idx_checkpoint_t cp;
    (void)lineno;
    if (parse_line(line, &cp) != VG_OK) {
        c->malformed++;
        return 0;
    }
    if (cp.seq <= c->after)
        return 0;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->items = vg_realloc(c->items, c->cap * sizeof(*c->items));
    }
    c->items[c->n++] = cp;
    return c->limit && c->n >= c->limit;
}

int idx_checkpoints_read(const char *data_dir, int64_t after_seq, size_t limit,
                         idx_checkpoint_t **out, size_t *n, size_t *malformed)
{
    collect_t c = {.after = after_seq, .limit = limit};
    int rc = each_line(data_dir, collect, &c);
    if (rc != VG_OK) {
        free(c.items);
        c.items = NULL;
        c.n = 0;
    }
    *out = c.items;
    *n = c.n;
    if (malformed)
        *malformed = c.malformed;
    return rc;
}

/* ---- writing ---- */

static int last_line(void *ctx, const char *line, size_t lineno)
{
    idx_anchor_t *a = ctx;
    idx_checkpoint_t cp;
    (void)lineno;
    if (parse_line(line, &cp) == VG_OK && cp.seq > a->last_seq) {
        a->last_seq = cp.seq;
        a->last_row = cp.row_id;
        memcpy(a->last_hash, cp.hash, sizeof(a->last_hash));
        a->have_last = 1;
    }
    return 0;
}

int idx_anchor_open(idx_t *idx, const char *data_dir, const vg_key_t *key, idx_anchor_t **out)
{
    idx_anchor_t *a = vg_calloc(1, sizeof(*a));
    char hash[IDX_AUDIT_HASH_HEX];
    a->path = file_path(data_dir);
    a->key = key;
    vg_key_id_hex(key, a->key_id);
    int rc = each_line(data_dir, last_line, a);
    if (rc == VG_ENOTFOUND)
        rc = VG_OK;
    if (rc != VG_OK) {
        vg_err("audit: cannot read %s", a->path);
        idx_anchor_close(a);
        return rc;
    }
    /* Someone cut the trail, put an older index.db back or rewrote rows
     * while vigild was stopped: say so loudly before adding to it (the
     * checkpoint made next shows the step back to anyone who verifies). */
    if (a->have_last && a->last_row > 0) {
        int found = idx_audit_hash_of(idx, a->last_row, hash);
        if (found == VG_ENOTFOUND)
            vg_err("audit: the trail no longer reaches row %" PRId64 " of checkpoint #%" PRId64
                   ": rows were deleted or an older index.db was restored",
                   a->last_row, a->last_seq);
        else if (found == VG_OK && strcmp(hash, a->last_hash) != 0)
            vg_err("audit: row %" PRId64 " differs from checkpoint #%" PRId64
                   ": rows were rewritten or an older index.db was restored",
                   a->last_row, a->last_seq);
    }
    *out = a;
    return VG_OK;
}

static int append_line(const char *path, const char *line)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    int rc = VG_OK;
    if (fd < 0)
        return VG_EIO;
    off_t end = lseek(fd, 0, SEEK_END);
    if (vg_write_all(fd, line, strlen(line)) != VG_OK || fsync(fd) != 0)
        rc = VG_EIO;
    /* A checkpoint half written (disk full) would spoil the line after it. */
    if (rc != VG_OK && end >= 0 && ftruncate(fd, end) != 0)
        vg_err("audit: cannot cut a partial checkpoint from %s", path);
    close(fd);
    if (rc == VG_OK && end == 0)
        rc = vg_fsync_parent(path); /* the file is new: make its name durable */
    return rc;
}

int idx_anchor_checkpoint(idx_anchor_t *a, idx_t *idx, int64_t now_us, int force, int *written)
{
    idx_checkpoint_t c = {0};
    unsigned char sig[VG_KEY_SIG_BYTES];
    char msg[MSG_MAX], ts[VG_TIME_TEXT_MAX];
    if (written)
        *written = 0;
    int rc = idx_audit_head(idx, &c.row_id, c.hash);
    if (rc != VG_OK)
        return rc;
    if (!force && a->have_last && c.row_id == a->last_row && strcmp(c.hash, a->last_hash) == 0)
        return VG_OK;
    c.seq = a->last_seq + 1;
    c.ts_us = now_us;
    message(&c, msg);
    if ((rc = vg_key_sign(a->key, msg, strlen(msg), sig)) != VG_OK)
        return rc;
    sodium_bin2base64(c.sig, sizeof(c.sig), sig, sizeof(sig), sodium_base64_VARIANT_ORIGINAL);
    vg_time_format(now_us, ts);
    char *line = vg_asprintf("{\"seq\":%" PRId64 ",\"row\":%" PRId64 ",\"hash\":\"%s\","
                             "\"ts\":\"%s\",\"ts_us\":%" PRId64 ",\"key_id\":\"%s\","
                             "\"sig\":\"%s\"}\n",
                             c.seq, c.row_id, c.hash, ts, c.ts_us, a->key_id, c.sig);
    rc = append_line(a->path, line);
    if (rc == VG_OK) {
        a->last_seq = c.seq;
        a->last_row = c.row_id;
        memcpy(a->last_hash, c.hash, sizeof(a->last_hash));
        a->have_last = 1;
        line[strlen(line) - 1] = '\0';
        /* The journal is a second copy, off the index's disk when journald
         * forwards it: collect it centrally. */
        vg_info("audit: checkpoint %s", line);
        if (written)
            *written = 1;
    } else {
        vg_err("audit: cannot append checkpoint #%" PRId64 " to %s: %s", c.seq, a->path,
               strerror(errno));
    }
    free(line);
    return rc;
}

void idx_anchor_close(idx_anchor_t *a)
{
    if (!a)
        return;
    free(a->path);
    free(a);
}

/* ---- verification ---- */

typedef struct {
    idx_t *idx;
    const vg_key_t *key;
    char key_id[VG_KEY_ID_HEX];
    void (*report)(void *ctx, const char *text);
    void *ctx;
    size_t checked;
    int problems;
    int64_t prev_seq, prev_row;
    int64_t trail_head;
    int partial; /* a copy kept elsewhere may start at any seq */
    int rc;
} verify_t;

__attribute__((format(printf, 2, 3)))
static void problem(verify_t *v, const char *fmt, ...)
{
    char text[REPORT_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    v->problems++;
    v->report(v->ctx, text);
}

static int signature_ok(const verify_t *v, const idx_checkpoint_t *c)
{
    unsigned char sig[VG_KEY_SIG_BYTES];
    char msg[MSG_MAX];
    size_t got = 0;
    if (strcmp(c->key_id, v->key_id) != 0 ||
        sodium_base642bin(sig, sizeof(sig), c->sig, strlen(c->sig), NULL, &got, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        got != sizeof(sig))
        return 0;
    message(c, msg);
    return vg_key_verify(v->key, msg, strlen(msg), sig) == VG_OK;
}

/* The trail against one checkpoint's head. */
static void check_head(verify_t *v, const idx_checkpoint_t *c, const char *when)
{
    char hash[IDX_AUDIT_HASH_HEX];
    if (c->row_id == 0)
        return;
    int rc = idx_audit_hash_of(v->idx, c->row_id, hash);
    if (rc == VG_ENOTFOUND) {
        problem(v, "truncated: checkpoint #%" PRId64 " (%s) signed row %" PRId64
                   " but the trail ends at row %" PRId64
                   " (rows deleted from its end, or an older index.db restored)",
                c->seq, when, c->row_id, v->trail_head);
    } else if (rc != VG_OK) {
        v->rc = rc;
    } else if (strcmp(hash, c->hash) != 0) {
        problem(v, "rewritten: row %" PRId64 " differs from checkpoint #%" PRId64
                   " (%s): rows were edited and re-hashed, or an older index.db was restored",
                c->row_id, c->seq, when);
    }
}

static int verify_line(void *ctx, const char *line, size_t lineno)
{
    verify_t *v = ctx;
    idx_checkpoint_t c;
    char when[VG_TIME_TEXT_MAX];
    if (parse_line(line, &c) != VG_OK) {
        problem(v, "checkpoint file line %zu is not a checkpoint", lineno);
        return 0;
    }
    v->checked++;
    vg_time_format(c.ts_us, when);
    if (!signature_ok(v, &c)) {
        problem(v, "forged: checkpoint #%" PRId64 " (%s) is not signed by this appliance's key %s",
                c.seq, when, v->key_id);
        return 0;
    }
    if (v->partial && v->checked == 1)
        v->prev_seq = c.seq - 1;
    if (c.seq != v->prev_seq + 1)
        problem(v, "checkpoint #%" PRId64 " follows #%" PRId64 ": checkpoints are missing",
                c.seq, v->prev_seq);
    if (c.row_id < v->prev_row)
        problem(v, "rolled back: checkpoint #%" PRId64 " (%s) signed row %" PRId64
                   ", an earlier one row %" PRId64 " (the trail went back in between)",
                c.seq, when, c.row_id, v->prev_row);
    check_head(v, &c, when);
    v->prev_seq = c.seq;
    if (c.row_id > v->prev_row)
        v->prev_row = c.row_id;
    return v->rc != VG_OK;
}

int idx_anchor_verify(idx_t *idx, const char *data_dir, const char *copy, const vg_key_t *key,
                      void (*report)(void *ctx, const char *text), void *ctx, size_t *checked,
                      int *problems)
{
    verify_t v = {.idx = idx, .key = key, .report = report, .ctx = ctx, .partial = copy != NULL};
    char hash[IDX_AUDIT_HASH_HEX];
    vg_key_id_hex(key, v.key_id);
    int rc = idx_audit_head(idx, &v.trail_head, hash);
    if (rc == VG_OK) {
        rc = copy ? each_line_at(copy, verify_line, &v) : each_line(data_dir, verify_line, &v);
        if (rc == VG_ENOTFOUND && !copy) {
            /* vigild writes one at every start: with a key there are some. */
            problem(&v, "the checkpoint file " IDX_CHECKPOINT_FILE " is missing");
            rc = VG_OK;
        }
    }
    if (rc == VG_OK)
        rc = v.rc;
    *checked = v.checked;
    *problems = v.problems;
    return rc;
}
