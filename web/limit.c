/* Token buckets per client address for requests that fail authentication
 * (DESIGN.md invariant 8: work before authentication is bounded). A caller
 * with valid credentials never touches them, so a flood from an address
 * does not lock out the people behind the same NAT who have logged in.
 * The table is fixed in size: an address probes a few slots and takes one
 * that is free or whose bucket has refilled (nothing to remember); when all
 * are busy, it shares one overflow bucket with every other such address. */
#include "web/web_private.h"

#include <stdio.h>
#include <string.h>

#include "core/util.h"

#define SLOTS 1024
#define PROBES 8

typedef struct {
    char ip[64];
    double tokens;
    int64_t last_us;
} bucket_t;

struct web_limiter {
    pthread_mutex_t lock;
    double rate_per_s, burst;
    bucket_t slots[SLOTS];
    bucket_t overflow;
};

web_limiter_t *web_limiter_new(double rate_per_s, double burst)
{
    web_limiter_t *l = vg_calloc(1, sizeof(*l));
    pthread_mutex_init(&l->lock, NULL);
    l->rate_per_s = rate_per_s;
    l->burst = burst;
    l->overflow.tokens = burst;
    return l;
}

void web_limiter_free(web_limiter_t *l)
{
    if (!l)
        return;
    pthread_mutex_destroy(&l->lock);
    free(l);
}

static uint32_t hash_ip(const char *ip)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *c = (const unsigned char *)ip; *c; c++)
        h = (h ^ *c) * 16777619u;
    return h;
}

/* Tokens at now_us after refilling since last use. */
static double refilled(const web_limiter_t *l, const bucket_t *b, int64_t now_us)
{
    int64_t since = now_us > b->last_us ? now_us - b->last_us : 0; /* clock stepped back */
    double t = b->tokens + (double)since / 1e6 * l->rate_per_s;
    return t > l->burst ? l->burst : t;
}

static bucket_t *bucket_of(web_limiter_t *l, const char *ip, int64_t now_us)
{
    uint32_t h = hash_ip(ip);
    bucket_t *spare = NULL;
    for (int i = 0; i < PROBES; i++) {
        bucket_t *b = &l->slots[(h + (uint32_t)i) % SLOTS];
        if (b->ip[0] && strcmp(b->ip, ip) == 0)
            return b;
        if (!spare && (!b->ip[0] || refilled(l, b, now_us) >= l->burst))
            spare = b; /* free, or full again: forgetting it changes nothing */
    }
    if (!spare)
        return &l->overflow;
    snprintf(spare->ip, sizeof(spare->ip), "%s", ip);
    spare->tokens = l->burst;
    spare->last_us = now_us;
    return spare;
}

int web_limiter_take(web_limiter_t *l, const char *ip, int64_t now_us)
{
    pthread_mutex_lock(&l->lock);
    bucket_t *b = bucket_of(l, ip, now_us);
    double t = refilled(l, b, now_us);
    int wait_s = 0;
    if (t >= 1) {
        t -= 1;
    } else {
        /* Seconds until a whole token is back, at least one. */
        wait_s = (int)((1 - t) / l->rate_per_s) + 1;
    }
    b->tokens = t;
    b->last_us = now_us;
    pthread_mutex_unlock(&l->lock);
    return wait_s;
}
