/* Who an RTSP client is: HTTP Basic against the accounts of the HTTP API
 * (same Argon2id hashes, same roles, same throttling of failed logins), an
 * API token as the Basic password or as "Bearer", and the audit rows of
 * relay sessions. RTSP clients repeat their Authorization header on every
 * request, so a verified header is remembered for a minute, or until the
 * accounts change (rly_creds_poll): a session does not pay Argon2id (tens
 * of ms, 64 MiB) per request, and a new client's PLAY is not delayed by
 * it. Only index/ is spoken to; no SQL here. */
#include "relay/relay_private.h"

#include <glib.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/errors.h"
#include "core/util.h"
#include "web/web.h"

#define CACHE_TTL_US (60LL * 1000000)
#define CACHE_MAX 256
#define TOKEN_PREFIX "vgt_"

typedef struct {
    char key[65];     /* SHA-256 of the header value */
    int64_t until_us;
    rly_principal_t who;
} cache_entry_t;

struct rly_creds {
    const vg_clock_t *clock;
    pthread_mutex_t db_lock;   /* the connection is used by one thread at a time */
    idx_t *idx;
    pthread_mutex_t hash_lock; /* one Argon2id at a time: bounded memory under a flood */
    char dummy_hash[128];      /* verified for unknown users: same cost as a wrong password */
    pthread_mutex_t cache_lock;
    cache_entry_t cache[CACHE_MAX];
    size_t n_cache;
    idx_denials_t *denials;    /* refused requests: one row per address and minute */
    int64_t gen;               /* the accounts generation last seen (cache_lock) */
    int gen_known;
};

int rly_creds_open(const char *db_path, const vg_clock_t *clock, rly_creds_t **out)
{
    if (sodium_init() < 0)
        return VG_EIO;
    rly_creds_t *c = vg_calloc(1, sizeof(*c));
    c->clock = clock;
    pthread_mutex_init(&c->db_lock, NULL);
    pthread_mutex_init(&c->hash_lock, NULL);
    pthread_mutex_init(&c->cache_lock, NULL);
    int rc = idx_open(db_path, 0, &c->idx);
    if (rc == VG_OK)
        rc = idx_denials_open(db_path, clock, &c->denials);
    if (rc != VG_OK) {
        rly_creds_close(c);
        return rc;
    }
    *out = c;
    return VG_OK;
}

void rly_creds_close(rly_creds_t *c)
{
    if (!c)
        return;
    idx_denials_close(c->denials); /* writes the last minute's counts */
    idx_close(c->idx);
    sodium_memzero(c->cache, sizeof(c->cache));
    pthread_mutex_destroy(&c->db_lock);
    pthread_mutex_destroy(&c->hash_lock);
    pthread_mutex_destroy(&c->cache_lock);
    free(c);
}

/* ---- the cache ---- */

static int cache_get(rly_creds_t *c, const char *key, int64_t now, rly_principal_t *who)
{
    int found = 0;
    pthread_mutex_lock(&c->cache_lock);
    for (size_t i = 0; i < c->n_cache && !found; i++) {
        if (strcmp(c->cache[i].key, key) == 0 && c->cache[i].until_us > now) {
            *who = c->cache[i].who;
            found = 1;
        }
    }
    pthread_mutex_unlock(&c->cache_lock);
    return found;
}

/* gen: the accounts generation when the check began; a check that raced a
 * revocation seen since is not remembered. */
static void cache_put(rly_creds_t *c, const char *key, int64_t now, int64_t gen,
                      const rly_principal_t *who)
{
    pthread_mutex_lock(&c->cache_lock);
    if (gen != c->gen) {
        pthread_mutex_unlock(&c->cache_lock);
        return;
    }
    size_t kept = 0;
    for (size_t i = 0; i < c->n_cache; i++) {
        if (c->cache[i].until_us > now && strcmp(c->cache[i].key, key) != 0)
            c->cache[kept++] = c->cache[i];
    }
    c->n_cache = kept == CACHE_MAX ? 0 : kept; /* full of live entries: start over */
    cache_entry_t *e = &c->cache[c->n_cache++];
    snprintf(e->key, sizeof(e->key), "%s", key);
    e->until_us = now + CACHE_TTL_US;
    e->who = *who;
    pthread_mutex_unlock(&c->cache_lock);
}

/* ---- checks (db_lock held) ---- */

static int from_token(rly_creds_t *c, const char *secret, rly_principal_t *who)
{
    char hash[65];
    idx_token_t t;
    web_sha256_hex(secret, strlen(secret), hash);
    int rc = idx_token_by_hash(c->idx, hash, &t);
    if (rc == VG_ENOTFOUND || (rc == VG_OK && t.revoked_us))
        return VG_ENOTFOUND;
    if (rc != VG_OK)
        return rc;
    snprintf(who->actor, sizeof(who->actor), "token:%lld", (long long)t.id);
    who->token_id = t.id;
    if (web_perms_parse(t.perms, &who->perms) != VG_OK)
        who->perms = 0;
    who->all_sources = 1; /* tokens are not limited to sources, as in the API */
    return VG_OK;
}

static int password_ok(rly_creds_t *c, const idx_account_t *a, int found, const char *pw)
{
    pthread_mutex_lock(&c->hash_lock);
    if (!c->dummy_hash[0]) {
        char random_pw[33];
        unsigned char raw[16];
        randombytes_buf(raw, sizeof(raw));
        sodium_bin2hex(random_pw, sizeof(random_pw), raw, sizeof(raw));
        if (web_password_hash(random_pw, c->dummy_hash) != VG_OK)
            c->dummy_hash[0] = '\0';
    }
    const char *hash = found ? a->pwhash : c->dummy_hash;
    int ok = hash[0] && crypto_pwhash_str_verify(hash, pw, strlen(pw)) == 0;
    pthread_mutex_unlock(&c->hash_lock);
    return ok && found;
}

static void principal_of_account(const idx_account_t *a, rly_principal_t *who)
{
    snprintf(who->actor, sizeof(who->actor), "user:%s", a->name);
    if (web_role_perms(a->role, &who->perms) != VG_OK)
        who->perms = 0;
    who->all_sources = a->all_sources;
    snprintf(who->sources, sizeof(who->sources), "%s", a->sources);
    who->token_id = 0;
    snprintf(who->user, sizeof(who->user), "%s", a->name);
    snprintf(who->pwhash, sizeof(who->pwhash), "%s", a->pwhash);
}

static int from_account(rly_creds_t *c, const char *user, const char *pw, const char *ip,
                        rly_principal_t *who)
{
    int64_t now = vg_clock_wall(c->clock);
    idx_account_t a;
    idx_login_attempt_t at;
    /* The API's throttling, counted in the same table before the check. */
    int rc = idx_login_attempt(c->idx, user, ip, now, &web_login_policy, &at);
    if (rc != VG_OK)
        return rc;
    if (!at.admitted)
        return VG_EBUSY;
    rc = idx_account_get(c->idx, user, &a);
    if (rc != VG_OK && rc != VG_ENOTFOUND)
        return rc;
    if (!password_ok(c, &a, rc == VG_OK, pw))
        return VG_ENOTFOUND; /* already counted as a failure */
    idx_login_failures_clear(c->idx, user);
    principal_of_account(&a, who);
    return VG_OK;
}

/* "Basic <base64(user:password)>": a token works as the password. */
static int from_basic(rly_creds_t *c, const char *b64, const char *ip, rly_principal_t *who)
{
    gsize len = 0;
    guchar *raw = g_base64_decode(b64, &len);
    int rc = VG_ENOTFOUND;
    char *text = raw ? g_strndup((const char *)raw, len) : NULL;
    char *colon = text ? strchr(text, ':') : NULL;
    if (colon && strlen(text) == len && len <= WEB_PASSWORD_MAX + 64) {
        *colon = '\0';
        const char *pw = colon + 1;
        if (strncmp(pw, TOKEN_PREFIX, strlen(TOKEN_PREFIX)) == 0)
            rc = from_token(c, pw, who);
        else if (web_user_name_valid(text) && *pw)
            rc = from_account(c, text, pw, ip, who);
    }
    if (text)
        sodium_memzero(text, strlen(text));
    if (raw)
        sodium_memzero(raw, len);
    g_free(text);
    g_free(raw);
    return rc;
}

int rly_creds_check(rly_creds_t *c, const char *authorization, const char *ip,
                    rly_principal_t *who)
{
    char key[65];
    int64_t now = vg_clock_mono(c->clock);
    memset(who, 0, sizeof(*who));
    if (!authorization || strlen(authorization) > 4096)
        return VG_ENOTFOUND;
    web_sha256_hex(authorization, strlen(authorization), key);
    if (cache_get(c, key, now, who))
        return VG_OK;
    pthread_mutex_lock(&c->cache_lock);
    int64_t gen = c->gen;
    pthread_mutex_unlock(&c->cache_lock);
    int rc = VG_ENOTFOUND;
    pthread_mutex_lock(&c->db_lock);
    who->gen = gen;
    if (strncasecmp(authorization, "Basic ", 6) == 0)
        rc = from_basic(c, authorization + 6, ip, who);
    else if (strncasecmp(authorization, "Bearer ", 7) == 0)
        rc = from_token(c, authorization + 7, who);
    pthread_mutex_unlock(&c->db_lock);
    if (rc == VG_OK)
        cache_put(c, key, now, gen, who);
    return rc;
}

int rly_creds_poll(rly_creds_t *c, int *changed)
{
    int64_t gen = 0;
    *changed = 0;
    pthread_mutex_lock(&c->db_lock);
    int rc = idx_accounts_generation(c->idx, &gen);
    pthread_mutex_unlock(&c->db_lock);
    if (rc != VG_OK)
        return rc;
    pthread_mutex_lock(&c->cache_lock);
    if (!c->gen_known || gen != c->gen) {
        *changed = c->gen_known;
        c->gen = gen;
        c->gen_known = 1;
        /* A remembered login must not outlive a revocation. */
        if (*changed) {
            sodium_memzero(c->cache, sizeof(c->cache));
            c->n_cache = 0;
        }
    }
    pthread_mutex_unlock(&c->cache_lock);
    return VG_OK;
}

int rly_creds_current(rly_creds_t *c, const rly_principal_t *who)
{
    pthread_mutex_lock(&c->cache_lock);
    int current = who->gen == c->gen;
    pthread_mutex_unlock(&c->cache_lock);
    return current;
}

int rly_creds_recheck(rly_creds_t *c, const rly_principal_t *who, rly_principal_t *now)
{
    int rc;
    memset(now, 0, sizeof(*now));
    pthread_mutex_lock(&c->cache_lock);
    int64_t gen = c->gen; /* read first: a change after it is seen at the next poll */
    pthread_mutex_unlock(&c->cache_lock);
    pthread_mutex_lock(&c->db_lock);
    if (who->token_id) {
        idx_token_t t;
        rc = idx_token_get(c->idx, who->token_id, &t);
        if (rc == VG_OK && t.revoked_us)
            rc = VG_ENOTFOUND;
        if (rc == VG_OK) {
            *now = *who;
            if (web_perms_parse(t.perms, &now->perms) != VG_OK)
                now->perms = 0;
        }
    } else {
        idx_account_t a;
        rc = idx_account_get(c->idx, who->user, &a);
        /* The hash is compared, not the secret: a new password (even the
         * same one, salted anew) ends what the old one opened. */
        if (rc == VG_OK && strcmp(a.pwhash, who->pwhash) != 0)
            rc = VG_ENOTFOUND;
        if (rc == VG_OK)
            principal_of_account(&a, now);
    }
    pthread_mutex_unlock(&c->db_lock);
    now->gen = gen;
    return rc;
}

static int in_list(const char *csv, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = csv; *p;) {
        size_t k = strcspn(p, ",");
        if (k == n && strncmp(p, name, n) == 0)
            return 1;
        p += k + (p[k] == ',');
    }
    return 0;
}

int rly_may_watch(const rly_principal_t *who, const char *source, vg_source_kind_t kind)
{
    unsigned perms = who->perms & WEB_PERM_ADMIN ? WEB_PERM_ALL : who->perms;
    if (!(perms & WEB_PERM_LIVE))
        return 0;
    if (!who->all_sources && !in_list(who->sources, source))
        return 0;
    return kind == VG_SOURCE_VIDEO || (perms & WEB_PERM_CALLS);
}

int rly_creds_audit(rly_creds_t *c, const rly_audit_t *a)
{
    idx_audit_t row = {0};
    row.ts_us = vg_clock_wall(c->clock);
    row.from_us = a->from_us;
    row.to_us = a->to_us;
    /* The source is the name a client asked for: the row becomes JSON in
     * GET /audit, so it is stored as valid UTF-8, never cut in a character. */
    char object[sizeof(row.object) * 2];
    snprintf(object, sizeof(object), "source:%s", a->source);
    vg_utf8_copy(row.object, sizeof(row.object), object);
    vg_utf8_copy(row.actor, sizeof(row.actor), a->actor);
    vg_utf8_copy(row.ip, sizeof(row.ip), a->ip);
    vg_utf8_copy(row.action, sizeof(row.action), a->action);
    vg_utf8_copy(row.result, sizeof(row.result), a->result);
    vg_utf8_copy(row.detail, sizeof(row.detail), a->detail);
    pthread_mutex_lock(&c->db_lock);
    int rc = idx_audit_append(c->idx, &row, 1);
    pthread_mutex_unlock(&c->db_lock);
    if (rc != VG_OK)
        vg_err("relay: cannot write the audit row for %s source=%s: %s", a->action, a->source,
               vg_strerror(rc));
    return rc;
}

/* A refused RTSP request is counted, not written: RTSP clients retry, and a
 * flood of them must not add a row and a commit each (DESIGN.md invariant
 * 8). The minute's row per address, actor and reason carries the count. */
void rly_creds_denied(rly_creds_t *c, const char *ip, const char *actor, const char *source,
                      const char *why)
{
    char object[96];
    snprintf(object, sizeof(object), "source:%s", source);
    idx_denials_note(c->denials, vg_clock_wall(c->clock), ip, actor, "relay.access", object,
                     why);
}
