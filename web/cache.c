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

#include <stdlib.h>
#include <string.h>

#include "core/util.h"

#define WEB_CACHE_SLOTS 64
#define WEB_CACHE_MAX_BODY (64u * 1024)

typedef struct {
    char key[WEB_CACHE_KEY_MAX];
    int64_t version;
    char *body;
    size_t len;
    size_t n;
} slot_t;

struct web_cache {
    pthread_mutex_t lock;
    slot_t slot[WEB_CACHE_SLOTS];
};

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
        free(c->slot[i].body);
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

char *web_cache_get(web_cache_t *c, const char *key, int64_t version, size_t *len, size_t *n)
{
    char *copy = NULL;
    pthread_mutex_lock(&c->lock);
    const slot_t *s = slot_for(c, key);
    if (s->body && s->version == version && strcmp(s->key, key) == 0) {
        copy = vg_malloc(s->len ? s->len : 1);
        memcpy(copy, s->body, s->len);
        *len = s->len;
        *n = s->n;
    }
    pthread_mutex_unlock(&c->lock);
    return copy;
}

void web_cache_put(web_cache_t *c, const char *key, int64_t version, const char *body, size_t len,
                   size_t n)
{
    if (len > WEB_CACHE_MAX_BODY || strlen(key) >= WEB_CACHE_KEY_MAX)
        return;
    char *copy = vg_malloc(len ? len : 1);
    memcpy(copy, body, len);
    pthread_mutex_lock(&c->lock);
    slot_t *s = slot_for(c, key);
    free(s->body);
    snprintf(s->key, sizeof(s->key), "%s", key);
    s->version = version;
    s->body = copy;
    s->len = len;
    s->n = n;
    pthread_mutex_unlock(&c->lock);
}
