/* Aggregated audit rows for the many requests of one viewing (issue item 8):
 * the media byte ranges, thumbnails and peaks a player fetches while a
 * person watches a range already audited once (the playlist's row). Each
 * request is a counter bump under a mutex; once a minute closes, one chained
 * audit row per (actor, source, action, minute) carries the union of the
 * ranges asked for and how many requests there were. Written by a thread of
 * its own (its own index connection) and at shutdown. Memory is bounded:
 * past AGG_SLOTS buckets a minute's further requests share one overflow
 * bucket per action (actor and source "(other)"), so a flood of distinct
 * users or sources cannot grow it. */
#include "web/web_private.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define MINUTE_US (60LL * 1000000)
#define AGG_SLOTS 512
#define AGG_OTHER_SLOTS 8
#define AGG_RANGES 8   /* disjoint ranges kept per bucket; more are joined */

typedef struct {
    int64_t from, to;
} range_t;

typedef struct {
    int64_t minute;
    int64_t first_us;
    int64_t count;
    int other;
    char actor[96];
    char ip[64];
    char action[48];
    char source[64];
    range_t ranges[AGG_RANGES];
    int n_ranges;
} bucket_t;

/* Ranges whose opening request's own row is on record: (actor, action,
 * object, from, to) hashed, and when. A continuation of one of them is
 * counted; any other Range request writes a row of its own. A slot lost to
 * a collision costs one more row, never one less. */
#define OPEN_SLOTS 1024
#define OPEN_TTL_US (10 * MINUTE_US)

struct web_aggregator {
    const vg_clock_t *clock;
    idx_minutes_t *writer;  /* writes closed minutes (index/minutes.c) */
    pthread_mutex_t lock;
    bucket_t slots[AGG_SLOTS + AGG_OTHER_SLOTS];
    size_t n, n_named;
    struct {
        uint64_t key;
        int64_t at_us;
    } opened[OPEN_SLOTS];
};

/* Adds [from, to) to the bucket's union: merged with what it overlaps or
 * touches; when the list is full the two closest ranges are joined. */
static void add_range(bucket_t *b, int64_t from, int64_t to)
{
    if (to <= from)
        return;
    range_t nr = {from, to};
    int k = 0;
    range_t out[AGG_RANGES + 1];
    int placed = 0;
    for (int i = 0; i < b->n_ranges; i++) {
        range_t r = b->ranges[i];
        if (r.to < nr.from) {
            out[k++] = r;
        } else if (nr.to < r.from) {
            if (!placed) {
                out[k++] = nr;
                placed = 1;
            }
            out[k++] = r;
        } else {
            nr.from = r.from < nr.from ? r.from : nr.from;
            nr.to = r.to > nr.to ? r.to : nr.to;
        }
    }
    if (!placed)
        out[k++] = nr;
    /* keep sorted: nr may have grown past ranges copied after it */
    for (int i = 1; i < k; i++) {
        for (int j = i; j > 0 && out[j].from < out[j - 1].from; j--) {
            range_t t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    }
    while (k > AGG_RANGES) {
        int best = 0;
        for (int i = 1; i + 1 < k; i++) {
            if (out[i + 1].from - out[i].to < out[best + 1].from - out[best].to)
                best = i;
        }
        out[best].to = out[best + 1].to > out[best].to ? out[best + 1].to : out[best].to;
        memmove(&out[best + 1], &out[best + 2], (size_t)(k - best - 2) * sizeof(out[0]));
        k--;
    }
    memcpy(b->ranges, out, (size_t)k * sizeof(out[0]));
    b->n_ranges = k;
}

static bucket_t *find(web_aggregator_t *a, int other, int64_t minute, const char *actor,
                      const char *action, const char *source)
{
    for (size_t i = 0; i < a->n; i++) {
        bucket_t *b = &a->slots[i];
        if (b->other == other && b->minute == minute && strcmp(b->action, action) == 0 &&
            (other || (strcmp(b->actor, actor) == 0 && strcmp(b->source, source) == 0)))
            return b;
    }
    return NULL;
}

static void note_locked(web_aggregator_t *a, int64_t ts_us, const char *actor, const char *ip,
                        const char *action, const char *source, int64_t from, int64_t to,
                        int64_t count)
{
    int64_t minute = ts_us / MINUTE_US;
    int other = 0;
    bucket_t *b = find(a, 0, minute, actor, action, source);
    if (!b && a->n_named >= AGG_SLOTS) {
        other = 1;
        b = find(a, 1, minute, actor, action, source);
        if (!b && a->n == AGG_SLOTS + AGG_OTHER_SLOTS)
            b = &a->slots[a->n - 1]; /* even the reserve is full: counted there */
    }
    if (!b) {
        b = &a->slots[a->n++];
        a->n_named += !other;
        memset(b, 0, sizeof(*b));
        b->other = other;
        b->minute = minute;
        b->first_us = ts_us;
        vg_utf8_copy(b->actor, sizeof(b->actor), other ? "(other)" : actor);
        vg_utf8_copy(b->ip, sizeof(b->ip), other ? "other" : ip);
        vg_utf8_copy(b->action, sizeof(b->action), action);
        vg_utf8_copy(b->source, sizeof(b->source), other ? "(other)" : source);
    }
    b->count += count;
    add_range(b, from, to);
}

void web_audit_aggregated(web_req_t *r, const char *action, const char *source, int64_t from_us,
                          int64_t to_us)
{
    web_aggregator_t *a = r->w->aggregator;
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    note_locked(a, r->now_us, r->who.actor[0] ? r->who.actor : "anonymous", r->ip, action,
                source, from_us, to_us, 1);
    pthread_mutex_unlock(&a->lock);
}

static uint64_t opening_key(const web_req_t *r, const char *action, const char *object,
                           int64_t from_us, int64_t to_us)
{
    uint64_t h = 1469598103934665603ULL;
    const char *parts[] = {r->who.actor, "\n", action, "\n", object, "\n"};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++)
            h = (h ^ *p) * 1099511628211ULL;
    int64_t range[2] = {from_us, to_us};
    const unsigned char *p = (const unsigned char *)range;
    for (size_t i = 0; i < sizeof(range); i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h ? h : 1; /* 0 marks a free slot */
}

void web_audit_ranged(web_req_t *r, uint64_t first, const char *action, const char *object,
                      const char *source, int64_t from_us, int64_t to_us, const char *detail)
{
    web_aggregator_t *a = r->w->aggregator;
    uint64_t key = opening_key(r, action, object, from_us, to_us);
    if (first > 0 && a) {
        pthread_mutex_lock(&a->lock);
        size_t slot = key % OPEN_SLOTS;
        int seen = a->opened[slot].key == key && r->now_us - a->opened[slot].at_us < OPEN_TTL_US;
        pthread_mutex_unlock(&a->lock);
        if (seen) {
            web_audit_aggregated(r, action, source, from_us, to_us);
            return;
        }
    }
    web_audit(r, action, object, from_us, to_us, "ok", detail);
    r->opening_key = key; /* marked once the row is committed */
}

void web_audit_opened(web_req_t *r)
{
    web_aggregator_t *a = r->w->aggregator;
    /* a HEAD sent no byte: it opens nothing its continuations could lean on */
    if (!a || !r->opening_key || (r->method && strcmp(r->method, "HEAD") == 0))
        return;
    pthread_mutex_lock(&a->lock);
    size_t slot = r->opening_key % OPEN_SLOTS;
    a->opened[slot].key = r->opening_key;
    a->opened[slot].at_us = r->now_us;
    pthread_mutex_unlock(&a->lock);
}

static void to_row(const bucket_t *b, idx_audit_t *row)
{
    memset(row, 0, sizeof(*row));
    row->ts_us = b->first_us;
    snprintf(row->actor, sizeof(row->actor), "%s", b->actor);
    snprintf(row->ip, sizeof(row->ip), "%s", b->ip);
    snprintf(row->action, sizeof(row->action), "%s", b->action);
    snprintf(row->object, sizeof(row->object), "source:%s", b->source);
    snprintf(row->result, sizeof(row->result), "ok");
    if (b->n_ranges) {
        row->from_us = b->ranges[0].from;
        row->to_us = b->ranges[b->n_ranges - 1].to;
    }
    /* detail: "count=N ranges=FROM_US-TO_US,..." (the union, in µs) */
    int used = snprintf(row->detail, sizeof(row->detail), "count=%" PRId64 " ranges=", b->count);
    for (int i = 0; i < b->n_ranges && used > 0 && (size_t)used < sizeof(row->detail); i++)
        used += snprintf(row->detail + used, sizeof(row->detail) - (size_t)used,
                         "%s%" PRId64 "-%" PRId64, i ? "," : "", b->ranges[i].from,
                         b->ranges[i].to);
}

static int flush_into(void *ctx, idx_t *idx, int all)
{
    web_aggregator_t *a = ctx;
    pthread_mutex_lock(&a->lock);
    if (!a->n) {
        pthread_mutex_unlock(&a->lock);
        return VG_OK;
    }
    int64_t minute = vg_clock_wall(a->clock) / MINUTE_US;
    bucket_t *taken = vg_malloc((a->n ? a->n : 1) * sizeof(*taken));
    size_t n_taken = 0, kept = 0, kept_named = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (all || a->slots[i].minute < minute) {
            taken[n_taken++] = a->slots[i];
        } else {
            kept_named += !a->slots[i].other;
            a->slots[kept++] = a->slots[i];
        }
    }
    a->n = kept;
    a->n_named = kept_named;
    pthread_mutex_unlock(&a->lock);
    int rc = VG_OK;
    if (n_taken) {
        idx_audit_t *rows = vg_malloc(n_taken * sizeof(*rows));
        for (size_t i = 0; i < n_taken; i++)
            to_row(&taken[i], &rows[i]);
        rc = idx_audit_append(idx, rows, n_taken);
        free(rows);
    }
    if (rc != VG_OK) {
        /* Counted again, into the current minute, for the next try. */
        vg_err("web: cannot write %zu aggregated audit row(s): %s; retrying", n_taken,
               vg_strerror(rc));
        pthread_mutex_lock(&a->lock);
        for (size_t i = 0; i < n_taken; i++) {
            const bucket_t *b = &taken[i];
            for (int k = 0; k < (b->n_ranges ? b->n_ranges : 1); k++)
                note_locked(a, vg_clock_wall(a->clock), b->actor, b->ip, b->action, b->source,
                            b->n_ranges ? b->ranges[k].from : 0,
                            b->n_ranges ? b->ranges[k].to : 0, k == 0 ? b->count : 0);
        }
        pthread_mutex_unlock(&a->lock);
    }
    free(taken);
    return rc;
}

int web_aggregator_flush(web_aggregator_t *a, int all)
{
    return a ? flush_into(a, idx_minutes_index(a->writer), all) : VG_OK;
}

int web_aggregator_open(const char *db_path, const vg_clock_t *clock, web_aggregator_t **out)
{
    web_aggregator_t *a = vg_calloc(1, sizeof(*a));
    a->clock = clock ? clock : &vg_system_clock;
    pthread_mutex_init(&a->lock, NULL);
    int rc = idx_minutes_start(db_path, "audit-views", flush_into, a, &a->writer);
    if (rc != VG_OK) {
        web_aggregator_close(a);
        return rc;
    }
    *out = a;
    return VG_OK;
}

void web_aggregator_close(web_aggregator_t *a)
{
    if (!a)
        return;
    idx_minutes_stop(a->writer); /* writes what is still counted, at shutdown */
    pthread_mutex_destroy(&a->lock);
    free(a);
}
