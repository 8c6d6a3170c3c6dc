/* Answers of the hottest read routes (segments, timeline: the browser's
 * timeline and the PBX poll the same ranges again and again), kept per
 * route, source and range, and valid only while the source's segment
 * version (idx_source_version) is the one they were built at. Access checks
 * and the audit row happen for every request; only the index query and the
 * JSON are saved.
 *
 * Direct-mapped: a key has one slot, a newer answer replaces what is there.
 * Bounded: WEB_CACHE_SLOTS answers of at most WEB_CACHE_MAX_BODY bytes. */
#include "web/web_private.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define WEB_CACHE_SLOTS 64
#define WEB_CACHE_MAX_BODY (64u * 1024)

/* Immutable once made; freed with its last reference (the cache's or a
 * reply's), so a reply sends it without a copy. */
struct web_cached {
    atomic_int refs;
    size_t len;
    size_t n;
    char data[];
};

typedef struct {
    char key[WEB_CACHE_KEY_MAX];
    int64_t version;
    web_cached_t *answer;
} slot_t;

struct web_cache {
    pthread_mutex_t lock;
    slot_t slot[WEB_CACHE_SLOTS];
};

const char *web_cached_data(const web_cached_t *a, size_t *len, size_t *n)
{
    *len = a->len;
    *n = a->n;
    return a->data;
}

void web_cached_unref(void *p)
{
    web_cached_t *a = p;
    if (a && atomic_fetch_sub(&a->refs, 1) == 1)
        free(a);
}

web_cache_t *web_cache_new(void)
{
    web_cache_t *c = vg_calloc(1, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void web_cache_free(web_cache_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < WEB_CACHE_SLOTS; i++)
        web_cached_unref(c->slot[i].answer);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static slot_t *slot_for(web_cache_t *c, const char *key)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return &c->slot[h % WEB_CACHE_SLOTS];
}

web_cached_t *web_cache_get(web_cache_t *c, const char *key, int64_t version)
{
    web_cached_t *a = NULL;
    pthread_mutex_lock(&c->lock);
    const slot_t *s = slot_for(c, key);
    if (s->answer && s->version == version && strcmp(s->key, key) == 0) {
        a = s->answer;
        atomic_fetch_add(&a->refs, 1);
    }
    pthread_mutex_unlock(&c->lock);
    return a;
}

web_cached_t *web_cache_put(web_cache_t *c, const char *key, int64_t version, const char *body,
                            size_t len, size_t n)
{
    if (len > WEB_CACHE_MAX_BODY || strlen(key) >= WEB_CACHE_KEY_MAX)
        return NULL;
    web_cached_t *a = vg_malloc(sizeof(*a) + len);
    atomic_init(&a->refs, 2); /* the slot's and the caller's */
    a->len = len;
    a->n = n;
    memcpy(a->data, body, len);
    pthread_mutex_lock(&c->lock);
    slot_t *s = slot_for(c, key);
    web_cached_t *old = s->answer;
    snprintf(s->key, sizeof(s->key), "%s", key);
    s->version = version;
    s->answer = a;
    pthread_mutex_unlock(&c->lock);
    web_cached_unref(old);
    return a;
}
