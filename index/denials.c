/* Aggregated audit rows for refused requests (DESIGN.md invariant 8: floods
 * are aggregated, not logged row by row). A refused request costs a counter
 * bump under a mutex; once a minute closes, one ordinary chained audit row
 * per (address, actor, action, reason) carries how many there were
 * ("count=N"), so a flood of thousands of requests adds a handful of rows
 * and no durable commit per request. At close everything still counted is
 * written. Memory is bounded: past IDX_DENIALS_MAX addresses' buckets, a
 * minute's further denials share an "other" bucket per actor, action and
 * reason (a few slots are kept for them).
 * Used by web/ and relay/ alike, each with its own instance. */
#include "index/index.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define MINUTE_US (60LL * 1000000)
/* Room kept for the "other" buckets, so overflow always has somewhere to go. */
#define OTHER_SLOTS 8
#define SLOTS (IDX_DENIALS_MAX + OTHER_SLOTS)

typedef struct {
    int64_t minute;    /* ts / MINUTE_US */
    int64_t first_us, last_us;
    int64_t count;
    int other;         /* an overflow bucket: ip "other" */
    char ip[64];
    char actor[96];
    char action[48];
    char object[192];  /* the first request's object, as an example */
    char reason[64];
} bucket_t;

struct idx_denials {
    const vg_clock_t *clock;
    idx_minutes_t *writer;  /* writes closed minutes (index/minutes.c) */
    pthread_mutex_t lock;
    bucket_t slots[SLOTS];
    size_t n;          /* slots[0..n) in use */
    size_t n_addr;     /* of them, address buckets (the rest are "other") */
    int64_t noted;     /* every denial counted, for tests and metrics */
};

static int same_key(const bucket_t *b, int64_t minute, const char *ip, const char *actor,
                    const char *action, const char *reason)
{
    return b->minute == minute && strcmp(b->ip, ip) == 0 && strcmp(b->actor, actor) == 0 &&
           strcmp(b->action, action) == 0 && strcmp(b->reason, reason) == 0;
}

static bucket_t *find(idx_denials_t *d, int other, int64_t minute, const char *ip,
                      const char *actor, const char *action, const char *reason)
{
    for (size_t i = 0; i < d->n; i++) {
        if (d->slots[i].other == other &&
            same_key(&d->slots[i], minute, ip, actor, action, reason))
            return &d->slots[i];
    }
    return NULL;
}

/* Adds count denials to their bucket; lock held. */
static void add_locked(idx_denials_t *d, int64_t ts_us, const char *ip, const char *actor,
                       const char *action, const char *object, const char *reason,
                       int64_t count, int64_t first_us)
{
    int64_t minute = ts_us / MINUTE_US;
    int other = 0;
    bucket_t *b = find(d, 0, minute, ip, actor, action, reason);
    if (!b && d->n_addr >= IDX_DENIALS_MAX) {
        /* Too many addresses this minute: the rest share a bucket. */
        other = 1;
        ip = "other";
        b = find(d, 1, minute, ip, actor, action, reason);
        if (!b && d->n == SLOTS) {
            /* Even the reserve is full: count it with the last "other"
             * bucket rather than lose it (n == SLOTS means there is one). */
            for (size_t i = d->n; i-- > 0 && !b;)
                b = d->slots[i].other ? &d->slots[i] : NULL;
            if (!b)
                b = &d->slots[SLOTS - 1];
            b->count += count;
            return;
        }
    }
    if (!b) {
        b = &d->slots[d->n++];
        d->n_addr += !other;
        memset(b, 0, sizeof(*b));
        b->other = other;
        b->minute = minute;
        b->first_us = first_us;
        snprintf(b->ip, sizeof(b->ip), "%s", ip);
        snprintf(b->actor, sizeof(b->actor), "%s", actor);
        snprintf(b->action, sizeof(b->action), "%s", action);
        snprintf(b->reason, sizeof(b->reason), "%s", reason);
        snprintf(b->object, sizeof(b->object), "%s", object ? object : "");
    }
    b->count += count;
    if (first_us < b->first_us)
        b->first_us = first_us;
    if (ts_us > b->last_us)
        b->last_us = ts_us;
}

void idx_denials_note(idx_denials_t *d, int64_t ts_us, const char *ip, const char *actor,
                      const char *action, const char *object, const char *reason)
{
    if (!d)
        return;
    pthread_mutex_lock(&d->lock);
    add_locked(d, ts_us, ip && *ip ? ip : "?", actor && *actor ? actor : "anonymous", action,
               object, reason, 1, ts_us);
    d->noted++;
    pthread_mutex_unlock(&d->lock);
}

int64_t idx_denials_noted(idx_denials_t *d)
{
    if (!d)
        return 0;
    pthread_mutex_lock(&d->lock);
    int64_t n = d->noted;
    pthread_mutex_unlock(&d->lock);
    return n;
}

static void to_row(const bucket_t *b, idx_audit_t *row)
{
    memset(row, 0, sizeof(*row));
    row->ts_us = b->first_us;
    snprintf(row->actor, sizeof(row->actor), "%s", b->actor);
    snprintf(row->ip, sizeof(row->ip), "%s", b->ip);
    snprintf(row->action, sizeof(row->action), "%s", b->action);
    snprintf(row->object, sizeof(row->object), "%s", b->object);
    snprintf(row->result, sizeof(row->result), "denied");
    char last[VG_TIME_TEXT_MAX];
    vg_time_format(b->last_us, last);
    snprintf(row->detail, sizeof(row->detail), "%s count=%lld last=%s", b->reason,
             (long long)b->count, last);
}

static int flush_into(void *ctx, idx_t *idx, int all)
{
    idx_denials_t *d = ctx;
    pthread_mutex_lock(&d->lock);
    if (!d->n) {
        pthread_mutex_unlock(&d->lock);
        return VG_OK;
    }
    int64_t minute = vg_clock_wall(d->clock) / MINUTE_US;
    /* Take the closed buckets out; the others stay in place. */
    bucket_t *taken = vg_malloc((d->n ? d->n : 1) * sizeof(*taken));
    size_t n_taken = 0, kept = 0, kept_addr = 0;
    for (size_t i = 0; i < d->n; i++) {
        if (all || d->slots[i].minute < minute) {
            taken[n_taken++] = d->slots[i];
        } else {
            kept_addr += !d->slots[i].other;
            d->slots[kept++] = d->slots[i];
        }
    }
    d->n = kept;
    d->n_addr = kept_addr;
    pthread_mutex_unlock(&d->lock);
    int rc = VG_OK;
    if (n_taken) {
        idx_audit_t *rows = vg_malloc(n_taken * sizeof(*rows));
        for (size_t i = 0; i < n_taken; i++)
            to_row(&taken[i], &rows[i]);
        rc = idx_audit_append(idx, rows, n_taken);
        free(rows);
    }
    if (rc != VG_OK) {
        /* Counted again, to be written with the next minute's. */
        vg_err("index: cannot write %zu aggregated denial row(s): %s; retrying", n_taken,
               vg_strerror(rc));
        pthread_mutex_lock(&d->lock);
        for (size_t i = 0; i < n_taken; i++) {
            const bucket_t *b = &taken[i];
            add_locked(d, b->last_us, b->ip, b->actor, b->action, b->object, b->reason,
                       b->count, b->first_us);
        }
        pthread_mutex_unlock(&d->lock);
    }
    free(taken);
    return rc;
}

int idx_denials_flush(idx_denials_t *d, int all)
{
    return d ? flush_into(d, idx_minutes_index(d->writer), all) : VG_OK;
}

int idx_denials_open(const char *db_path, const vg_clock_t *clock, idx_denials_t **out)
{
    idx_denials_t *d = vg_calloc(1, sizeof(*d));
    d->clock = clock ? clock : &vg_system_clock;
    pthread_mutex_init(&d->lock, NULL);
    int rc = idx_minutes_start(db_path, "audit-denials", flush_into, d, &d->writer);
    if (rc != VG_OK) {
        idx_denials_close(d);
        return rc;
    }
    *out = d;
    return VG_OK;
}

void idx_denials_close(idx_denials_t *d)
{
    if (!d)
        return;
    idx_minutes_stop(d->writer); /* writes what the last minute counted */
    pthread_mutex_destroy(&d->lock);
    free(d);
}
