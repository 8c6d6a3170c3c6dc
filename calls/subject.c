/* Subject-access requests (152-FZ art. 14: a customer asks what is kept
 * about them): the contents of the export job's signed bundle, found when
 * the job runs. Every call whose caller or callee is the number, in the
 * requested range, on any line: a WAV of each call that has audio, and
 * their metadata as CSV and JSON, with a summary. The bundle itself is
 * playback/'s (signed manifest, hashes, VERIFY.txt). */
#include "calls/calls.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/util.h"

typedef struct {
    idx_call_t *calls;
    size_t n, cap;
    int64_t last_start, last_id;
    size_t page;
} found_t;

static void on_found(void *ctx, const idx_call_t *c)
{
    found_t *f = ctx;
    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 16;
        f->calls = vg_realloc(f->calls, f->cap * sizeof(*f->calls));
    }
    f->calls[f->n++] = *c;
    f->last_start = c->start_us;
    f->last_id = c->id;
    f->page++;
}

/* A CSV field: always quoted, quotes doubled (RFC 4180), and a leading
 * = + - @ TAB or CR (a formula to a spreadsheet: a PBX note or a caller's
 * text "=HYPERLINK(...)" would run on the recipient's desk) kept text with
 * a leading ', as the audit and QA exports do. */
static void csv_field(char **buf, size_t *len, size_t *cap, const char *v, int last)
{
    size_t need = *len + 2 * strlen(v) + 5;
    if (need > *cap) {
        *cap = need * 2;
        *buf = vg_realloc(*buf, *cap);
    }
    char *o = *buf + *len;
    *o++ = '"';
    if (*v && strchr("=+-@\t\r", *v))
        *o++ = '\'';
    for (const char *p = v; *p; p++) {
        if (*p == '"')
            *o++ = '"';
        *o++ = *p;
    }
    *o++ = '"';
    *o++ = last ? '\n' : ',';
    *len = (size_t)(o - *buf);
}

static void time_text(int64_t us, char *out)
{
    if (us)
        vg_time_format(us, out);
    else
        out[0] = '\0';
}

static json_t *call_object(const idx_call_t *c, const char *audio)
{
    char start[VG_TIME_TEXT_MAX], end[VG_TIME_TEXT_MAX];
    time_text(c->start_us, start);
    time_text(c->end_us, end);
    json_t *tags = json_loads(c->tags[0] ? c->tags : "[]", 0, NULL);
    return json_pack("{sI ss ss ss so ss ss ss ss ss ss ss ss ss so ss ss so}", "id",
                     (json_int_t)c->id, "call_id", c->call_id, "source", c->source, "start", start,
                     "end", c->end_us ? json_string(end) : json_null(), "direction", c->direction,
                     "caller", c->caller, "caller_raw", c->caller_raw, "callee", c->callee,
                     "callee_raw", c->callee_raw, "agent", c->agent, "queue", c->queue,
                     "account", c->account, "disposition", c->disposition, "tags",
                     tags ? tags : json_array(), "notes", c->notes, "origin", c->origin, "audio",
                     audio ? json_string(audio) : json_null());
}

int call_subject_prepare(idx_t *idx, const idx_export_t *e, pb_bundle_piece_t **pieces,
                         size_t *n, pb_bundle_file_t **files, size_t *n_files, char *err,
                         size_t err_size)
{
    found_t f = {0};
    pb_bundle_piece_t *pc = NULL;
    pb_bundle_file_t *fl = NULL;
    char *csv = NULL;
    json_t *arr = NULL;
    size_t np = 0, csv_len = 0, csv_cap = 0;
    int rc = VG_OK;
    *pieces = NULL;
    *files = NULL;
    *n = *n_files = 0;
    idx_call_query_t q = {.from_us = e->from_us, .to_us = e->to_us, .number = e->subject,
                          .limit = 1000};
    do {
        f.page = 0;
        rc = idx_call_search(idx, &q, on_found, &f, NULL);
        q.after_start_us = f.last_start;
        q.after_id = f.last_id;
    } while (rc == VG_OK && f.page == q.limit && f.n <= PB_BUNDLE_MAX_PIECES);
    if (rc != VG_OK) {
        snprintf(err, err_size, "cannot search the calls");
        goto cleanup;
    }
    if (f.n > PB_BUNDLE_MAX_PIECES) {
        snprintf(err, err_size, "more than %d calls of %s in the range: ask for shorter ranges",
                 PB_BUNDLE_MAX_PIECES, e->subject);
        rc = VG_EINVAL;
        goto cleanup;
    }
    pc = vg_calloc(f.n ? f.n : 1, sizeof(*pc));
    arr = json_array();
    csv_field(&csv, &csv_len, &csv_cap, "id", 0);
    static const char *const head[] = {"call_id", "source", "start", "end", "direction",
                                       "caller", "caller_raw", "callee", "callee_raw", "agent",
                                       "queue", "account", "disposition", "tags", "notes",
                                       "origin", "audio"};
    for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
        csv_field(&csv, &csv_len, &csv_cap, head[i], i + 1 == sizeof(head) / sizeof(head[0]));
    size_t with_audio = 0;
    for (size_t i = f.n; i-- > 0;) { /* oldest first */
        const idx_call_t *c = &f.calls[i];
        char name[64], file[80], id[24], start[VG_TIME_TEXT_MAX], end[VG_TIME_TEXT_MAX];
        idx_segment_t *segs = NULL;
        size_t ns = 0;
        int has = 0;
        if (c->end_us > c->start_us &&
            idx_segments_in_range(idx, c->source, c->start_us, c->end_us, &segs, &ns) == VG_OK) {
            for (size_t k = 0; k < ns && !has; k++)
                has = pb_codecs_have_audio(segs[k].codecs);
        }
        free(segs);
        snprintf(name, sizeof(name), "call-%" PRId64, c->id);
        /* the bundle names each file {name}.{ext}; a G.711 line gives .wav */
        snprintf(file, sizeof(file), "%s.%s", name, "wav");
        if (has) {
            snprintf(pc[np].source, sizeof(pc[np].source), "%s", c->source);
            snprintf(pc[np].name, sizeof(pc[np].name), "%s", name);
            pc[np].from_us = c->start_us;
            pc[np].to_us = c->end_us;
            np++;
            with_audio++;
        }
        json_array_append_new(arr, call_object(c, has ? file : NULL));
        snprintf(id, sizeof(id), "%" PRId64, c->id);
        time_text(c->start_us, start);
        time_text(c->end_us, end);
        const char *vals[] = {c->call_id, c->source, start, end, c->direction, c->caller,
                              c->caller_raw, c->callee, c->callee_raw, c->agent, c->queue,
                              c->account, c->disposition, c->tags, c->notes, c->origin,
                              has ? file : ""};
        csv_field(&csv, &csv_len, &csv_cap, id, 0);
        for (size_t k = 0; k < sizeof(vals) / sizeof(vals[0]); k++)
            csv_field(&csv, &csv_len, &csv_cap, vals[k], k + 1 == sizeof(vals) / sizeof(vals[0]));
    }
    fl = vg_calloc(3, sizeof(*fl));
    snprintf(fl[0].name, sizeof(fl[0].name), "calls.csv");
    fl[0].data = csv;
    fl[0].len = csv_len;
    csv = NULL;
    snprintf(fl[1].name, sizeof(fl[1].name), "calls.json");
    fl[1].data = json_dumps(arr, JSON_INDENT(2));
    if (!fl[1].data)
        abort(); /* only fails on out of memory */
    fl[1].len = strlen(fl[1].data);
    char from[VG_TIME_TEXT_MAX], to[VG_TIME_TEXT_MAX];
    time_text(e->from_us, from);
    time_text(e->to_us, to);
    snprintf(fl[2].name, sizeof(fl[2].name), "summary.txt");
    fl[2].data = vg_asprintf(
        "Запрос субъекта персональных данных (152-ФЗ, ст. 14)\n"
        "Subject-access request (152-FZ art. 14)\n\n"
        "number: %s\nfrom: %s\nto: %s\nreason: %s\nrequested by: %s\n\n"
        "calls found: %zu\ncalls with audio (call-ID.wav): %zu\n"
        "metadata of every call: calls.csv, calls.json\n",
        e->subject, from, to, e->reason, e->owner, f.n, with_audio);
    fl[2].len = strlen(fl[2].data);
    *pieces = pc;
    *n = np;
    *files = fl;
    *n_files = 3;
    pc = NULL;
    fl = NULL;

cleanup:
    json_decref(arr);
    free(csv);
    free(pc);
    free(fl);
    free(f.calls);
    return rc;
}
