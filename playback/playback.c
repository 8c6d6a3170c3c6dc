/* The playback module's shared state (pb_t): the in-memory peaks cache, the
 * snapshot cache's bookkeeping and the bound on concurrent snapshot
 * decodes; and waveform peaks, drawn from the same decoded samples as the
 * WAV (playback/audio.c). */
#include "playback/playback.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"
#include "playback/playback_private.h"

typedef struct peaks_entry {
    pb_lru_node_t lru; /* first: the node is the entry */
    char key[160];
    char *json;
    size_t len;
} peaks_entry_t;

int pb_open(const pb_config_t *cfg, pb_t **out)
{
    pb_t *pb = vg_calloc(1, sizeof(*pb));
    pb->cfg = *cfg;
    pb->data_dir = vg_strdup(cfg->data_dir);
    if (pb->cfg.snapshot_workers < 1)
        pb->cfg.snapshot_workers = 1;
    pthread_mutex_init(&pb->lock, NULL);
    pb_snap_init(pb);
    pb_hls_cache_init(pb);
    pb_media_memo_init(pb);
    *out = pb;
    return VG_OK;
}

void pb_close(pb_t *pb)
{
    if (!pb)
        return;
    while (pb->peaks.head) {
        peaks_entry_t *e = (peaks_entry_t *)pb->peaks.head;
        pb_lru_unlink(&pb->peaks, &e->lru);
        free(e->json);
        free(e);
    }
    pb_snap_free(pb);
    pb_hls_cache_free(pb);
    pb_media_memo_free(pb);
    pthread_mutex_destroy(&pb->lock);
    free(pb->data_dir);
    free(pb);
}

int pb_slot_take(pb_t *pb)
{
    pthread_mutex_lock(&pb->lock);
    int ok = pb->snap_running < pb->cfg.snapshot_workers;
    if (ok)
        pb->snap_running++;
    pthread_mutex_unlock(&pb->lock);
    return ok;
}

void pb_slot_give(pb_t *pb)
{
    pthread_mutex_lock(&pb->lock);
    pb->snap_running--;
    pthread_mutex_unlock(&pb->lock);
}

int pb_transcode_take(pb_t *pb)
{
    pthread_mutex_lock(&pb->lock);
    int ok = pb->transcode_running < pb->cfg.transcode_max;
    if (ok)
        pb->transcode_running++;
    pthread_mutex_unlock(&pb->lock);
    return ok;
}

void pb_transcode_give(pb_t *pb)
{
    pthread_mutex_lock(&pb->lock);
    pb->transcode_running--;
    pthread_mutex_unlock(&pb->lock);
}

/* ---- peaks cache: LRU, bounded in bytes ---- */

void pb_lru_unlink(pb_lru_t *l, pb_lru_node_t *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
}

void pb_lru_front(pb_lru_t *l, pb_lru_node_t *n)
{
    n->next = l->head;
    if (l->head)
        l->head->prev = n;
    l->head = n;
    if (!l->tail)
        l->tail = n;
}

/* A copy of the cached text under key, or NULL. */
static char *peaks_get(pb_t *pb, const char *key, size_t *len)
{
    char *copy = NULL;
    pthread_mutex_lock(&pb->lock);
    for (pb_lru_node_t *n = pb->peaks.head; n; n = n->next) {
        peaks_entry_t *e = (peaks_entry_t *)n;
        if (strcmp(e->key, key) == 0) {
            pb_lru_unlink(&pb->peaks, n);
            pb_lru_front(&pb->peaks, n);
            copy = vg_malloc(e->len + 1);
            memcpy(copy, e->json, e->len + 1);
            *len = e->len;
            break;
        }
    }
    pthread_mutex_unlock(&pb->lock);
    return copy;
}

static void peaks_put(pb_t *pb, const char *key, const char *json, size_t len)
{
    if (len + sizeof(peaks_entry_t) > pb->cfg.peaks_cache_bytes)
        return;
    peaks_entry_t *e = vg_calloc(1, sizeof(*e));
    snprintf(e->key, sizeof(e->key), "%s", key);
    e->json = vg_malloc(len + 1);
    memcpy(e->json, json, len + 1);
    e->len = len;
    pthread_mutex_lock(&pb->lock);
    pb_lru_front(&pb->peaks, &e->lru);
    pb->peaks_bytes += len + sizeof(*e);
    while (pb->peaks_bytes > pb->cfg.peaks_cache_bytes && pb->peaks.tail) {
        peaks_entry_t *old = (peaks_entry_t *)pb->peaks.tail;
        pb_lru_unlink(&pb->peaks, &old->lru);
        pb->peaks_bytes -= old->len + sizeof(*old);
        free(old->json);
        free(old);
    }
    pthread_mutex_unlock(&pb->lock);
}

/* FNV-1a, 64 bits: the cache key's digest of the segments it was built from
 * (ids and content hashes), so a segment deleted or replaced never matches. */
static uint64_t fnv(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static void peaks_key(const idx_segment_t *segs, size_t n, int64_t from_us, int64_t to_us,
                      int buckets, char *key, size_t size)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h = fnv(h, &segs[i].id, sizeof(segs[i].id));
        h = fnv(h, segs[i].sha256, strlen(segs[i].sha256));
    }
    snprintf(key, size, "%s/%" PRId64 "/%" PRId64 "/%d/%zu/%016" PRIx64,
             n ? segs[0].source : "", from_us, to_us, buckets, n, h);
}

void pb_range_etag(const char *what, const idx_segment_t *segs, size_t n, int64_t from_us,
                   int64_t to_us, char *out, size_t size)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h = fnv(h, &segs[i].id, sizeof(segs[i].id));
        h = fnv(h, segs[i].sha256, strlen(segs[i].sha256));
    }
    snprintf(out, size, "\"%s-%" PRId64 "-%" PRId64 "-%016" PRIx64 "\"", what, from_us, to_us,
             h);
}

static void put_value(FILE *f, int first, int v)
{
    fprintf(f, first ? "%.6f" : ",%.6f", v / 32768.0);
}

int pb_peaks(pb_t *pb, const idx_segment_t *segs, size_t n_segs, int64_t from_us,
             int64_t to_us, int n, char **json, size_t *len, char *err, size_t err_size)
{
    char key[160];
    pb_wav_t *w = NULL;
    int16_t *lo = NULL, *hi = NULL, *buf = NULL;
    char *text = NULL;
    size_t text_len = 0;
    FILE *f = NULL;
    int rc, slot = 0;
    peaks_key(segs, n_segs, from_us, to_us, n, key, sizeof(key));
    if ((*json = peaks_get(pb, key, len)))
        return VG_OK;
    /* Decoding hours of audio takes a core for seconds: as snapshots, at
     * most snapshot_workers at once. */
    if (!pb_slot_take(pb)) {
        snprintf(err, err_size, "too many decodes are running; try again shortly");
        return VG_EBUSY;
    }
    slot = 1;
    rc = pb_wav_open(pb->data_dir, segs, n_segs, from_us, to_us, &w, err, err_size);
    if (rc != VG_OK)
        goto cleanup;
    int64_t total = pb_wav_samples(from_us, to_us, pb_wav_rate(w));
    lo = vg_calloc((size_t)n, sizeof(*lo));
    hi = vg_calloc((size_t)n, sizeof(*hi));
    enum { CHUNK = 8192 };
    buf = vg_malloc(CHUNK * sizeof(*buf));
    for (int b = 0; b < n; b++) {
        int64_t a = total * b / n, e = total * (b + 1) / n;
        int first = 1;
        for (int64_t at = a; at < e;) {
            size_t k = (size_t)(e - at < CHUNK ? e - at : CHUNK);
            if ((rc = pb_wav_samples_at(w, at, buf, k)) != VG_OK) {
                snprintf(err, err_size, "a recording of this range cannot be read");
                goto cleanup;
            }
            for (size_t i = 0; i < k; i++) {
                if (first || buf[i] < lo[b])
                    lo[b] = buf[i];
                if (first || buf[i] > hi[b])
                    hi[b] = buf[i];
                first = 0;
            }
            at += (int64_t)k;
        }
    }
    char tf[VG_TIME_TEXT_MAX], tt[VG_TIME_TEXT_MAX];
    vg_time_format(from_us, tf);
    vg_time_format(to_us, tt);
    f = open_memstream(&text, &text_len);
    fprintf(f, "{\"from\":\"%s\",\"to\":\"%s\",\"n\":%d,\"rate\":%d,\"samples\":%" PRId64
               ",\"min\":[", tf, tt, n, pb_wav_rate(w), total);
    for (int b = 0; b < n; b++)
        put_value(f, b == 0, lo[b]);
    fputs("],\"max\":[", f);
    for (int b = 0; b < n; b++)
        put_value(f, b == 0, hi[b]);
    fputs("],\"peaks\":[", f);
    for (int b = 0; b < n; b++) {
        put_value(f, b == 0, lo[b]);
        put_value(f, 0, hi[b]);
    }
    fputs("]}", f);
    fclose(f);
    f = NULL;
    peaks_put(pb, key, text, text_len);
    *json = text;
    *len = text_len;
    text = NULL;
    rc = VG_OK;

cleanup:
    if (f)
        fclose(f);
    free(text);
    free(lo);
    free(hi);
    free(buf);
    pb_wav_close(w);
    if (slot)
        pb_slot_give(pb);
    return rc;
}
