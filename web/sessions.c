/* The sessions the cookie check has read, kept while the index has not
 * changed since (index/watch.c): a player asks for a fragment every second
 * or two per viewer, and reading the session row was a third of vigild's
 * CPU time per media request (a SQLite read transaction's locks, not the
 * lookup). Any commit anywhere (a logout, a password changed by vigilctl, a
 * deleted account, but also a recorded segment) moves the watch's count and
 * so drops every entry; an entry is also never older than SESSION_TTL_US,
 * a bound for what the count cannot show (a wal-index removed by hand).
 * Direct-mapped by the session hash, overwritten on collision. */
#include "web/web_private.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/util.h"

#define SLOTS 256
#define SESSION_TTL_US 1000000LL

typedef struct {
    char hash[65];
    uint64_t gen;  /* 0: empty */
    int64_t at_us; /* the system's monotonic clock when read */
    idx_session_t s;
} slot_t;

struct web_sessions {
    pthread_mutex_t lock;
    slot_t slots[SLOTS];
};

static slot_t *slot_of(web_sessions_t *c, const char *hash)
{
    /* the hash is sha256 hex: its first two digits are uniform */
    unsigned h = 0;
    for (int i = 0; i < 2 && hash[i]; i++)
        h = h * 16 + (unsigned)(hash[i] <= '9' ? hash[i] - '0' : (hash[i] | 0x20) - 'a' + 10);
    return &c->slots[h % SLOTS];
}

web_sessions_t *web_sessions_new(void)
{
    web_sessions_t *c = vg_calloc(1, sizeof(*c));
    pthread_mutex_init(&c->lock, NULL);
    return c;
}

void web_sessions_free(web_sessions_t *c)
{
    if (!c)
        return;
    pthread_mutex_destroy(&c->lock);
    free(c);
}

int web_sessions_get(web_sessions_t *c, const char *hash, uint64_t gen, idx_session_t *out)
{
    if (!c || !gen)
        return 0;
    int hit = 0;
    int64_t now = vg_clock_mono(&vg_system_clock);
    pthread_mutex_lock(&c->lock);
    slot_t *e = slot_of(c, hash);
    if (e->gen == gen && now - e->at_us < SESSION_TTL_US && strcmp(e->hash, hash) == 0) {
        *out = e->s;
        hit = 1;
    }
    pthread_mutex_unlock(&c->lock);
    return hit;
}

void web_sessions_put(web_sessions_t *c, const char *hash, uint64_t gen, const idx_session_t *s)
{
    if (!c || !gen)
        return;
    int64_t now = vg_clock_mono(&vg_system_clock);
    pthread_mutex_lock(&c->lock);
    slot_t *e = slot_of(c, hash);
    snprintf(e->hash, sizeof(e->hash), "%s", hash);
    e->gen = gen;
    e->at_us = now;
    e->s = *s;
    /* the cookie check never needs it: not kept */
    memset(e->s.account.pwhash, 0, sizeof(e->s.account.pwhash));
    pthread_mutex_unlock(&c->lock);
}

uint64_t web_index_gen(web_req_t *r)
{
    if (!r->gen_read) {
        r->gen = idx_watch_gen(r->w->watch);
        r->gen_read = 1;
    }
    return r->gen;
}
