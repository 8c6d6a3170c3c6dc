/* Who is calling and what they may do: Bearer tokens, session cookies with
 * idle and absolute expiry, the CSRF header rule, per-source visibility,
 * and login with throttling. Every refusal leaves an audit row. */
#include "web/web_private.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define SESSION_COOKIE "vigil_session"

/* Failed logins, per address and per account, over 15 minutes (README
 * "Sessions and CSRF"). An address has 5 tries; an account is never locked
 * (anyone could lock anyone out from everywhere), it is slowed: past 5
 * failures each further try waits 1 s, 2 s, 4 s ... at most a minute after
 * the last one. 10 failures for one account raise login_attack. */
const idx_login_policy_t web_login_policy = {
    .window_us = 15LL * 60 * 1000000,
    .addr_max = 5,
    .account_free = 5,
    .delay_max_us = 60LL * 1000000,
    .alarm_account = 10,
};
/* A session's last use is written at most this often: idle expiry counts
 * in minutes, and a write per request would serialise readers. */
#define TOUCH_EVERY_US (30LL * 1000000)
/* Argon2id runs at once; each takes 64 MiB. */
#define MAX_HASHING 2

int web_has(const web_principal_t *who, unsigned perms_any)
{
    return (who->perms & WEB_PERM_ADMIN) || (who->perms & perms_any);
}

static int in_list(const char *csv, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = csv; *p;) {
        size_t k = strcspn(p, ",");
        if (k == n && strncmp(p, name, n) == 0)
            return 1;
        p += k;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* Audio sources are calls: they need `calls`. Video needs live or playback.
 * An account limited to some sources sees nothing else; what it may not
 * see does not exist for it (404, never 403). */
int web_source_visible(const web_principal_t *who, const char *name, const char *kind)
{
    if (!who->all_sources && !in_list(who->sources, name))
        return 0;
    if (strcmp(kind, "audio") == 0)
        return web_has(who, WEB_PERM_CALLS);
    return web_has(who, WEB_PERM_LIVE | WEB_PERM_PLAYBACK);
}

static const char *header(const web_req_t *r, const char *name)
{
    return web_req_header(r, name);
}

/* A refused request leaves no row of its own: it is counted into the
 * minute's aggregated row for its address (index/denials.c), so a flood
 * cannot grow the audit trail or cost a commit each. Failed authentication
 * also spends a token of the address's bucket; once they are gone, 429. */
static void deny(web_req_t *r, int status, const char *code, const char *msg)
{
    const char *actor = r->who.actor[0] ? r->who.actor : "anonymous";
    if (status == 401) {
        int wait_s = web_limiter_take(r->w->limiter, r->ip, r->now_us);
        if (wait_s > 0) {
            idx_denials_note(r->w->denials, r->now_us, r->ip, actor, "access", r->raw_uri,
                             "rate_limited");
            snprintf(r->retry_after, sizeof(r->retry_after), "%d", wait_s);
            web_reply_error(r, 429, "rate_limited",
                            "too many refused requests from this address; try again in %d s",
                            wait_s);
            return;
        }
    }
    /* The raw target (with its query) says what was asked for. */
    idx_denials_note(r->w->denials, r->now_us, r->ip, actor, "access", r->raw_uri, code);
    web_reply_error(r, status, code, "%s", msg);
}

static int from_token(web_req_t *r, const char *secret)
{
    char hash[65];
    idx_token_t t;
    web_sha256_hex(secret, strlen(secret), hash);
    int rc = idx_token_by_hash(r->idx, hash, &t);
    if (rc != VG_OK || t.revoked_us)
        return rc == VG_OK || rc == VG_ENOTFOUND ? VG_ENOTFOUND : rc;
    r->who.kind = 't';
    snprintf(r->who.name, sizeof(r->who.name), "%s", t.name);
    snprintf(r->who.actor, sizeof(r->who.actor), "token:%lld", (long long)t.id);
    r->who.token_id = t.id;
    if (web_perms_parse(t.perms, &r->who.perms) != VG_OK)
        r->who.perms = 0;
    r->who.all_sources = 1;
    return VG_OK;
}

static void principal_from_account(web_principal_t *who, const idx_account_t *a)
{
    who->kind = 'u';
    snprintf(who->name, sizeof(who->name), "%s", a->name);
    snprintf(who->role, sizeof(who->role), "%s", a->role);
    snprintf(who->actor, sizeof(who->actor), "user:%s", a->name);
    if (web_role_perms(a->role, &who->perms) != VG_OK)
        who->perms = 0;
    who->all_sources = a->all_sources;
    snprintf(who->sources, sizeof(who->sources), "%s", a->sources);
}

static int session_valid_text(const char *id)
{
    if (strlen(id) != 64)
        return 0;
    for (const char *c = id; *c; c++) {
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return 0;
    }
    return 1;
}

static int from_session(web_req_t *r, const char *id)
{
    const vg_http_config_t *h = &r->cfg->http;
    idx_session_t s;
    char hash[65];
    if (!session_valid_text(id))
        return VG_ENOTFOUND;
    web_sha256_hex(id, strlen(id), hash);
    int rc = VG_OK;
    uint64_t gen = web_index_gen(r); /* before the read: a later commit outdates it */
    if (!web_sessions_get(r->w->sessions, hash, gen, &s)) {
        if ((rc = idx_session_get(r->idx, hash, &s)) != VG_OK)
            return rc;
        web_sessions_put(r->w->sessions, hash, gen, &s);
    }
    if (r->now_us - s.last_us > (int64_t)h->session_idle_minutes * 60 * 1000000 ||
        r->now_us - s.created_us > (int64_t)h->session_max_hours * 3600 * 1000000) {
        idx_session_delete(r->idx, hash);
        return VG_ENOTFOUND;
    }
    if (r->now_us - s.last_us >= TOUCH_EVERY_US && (rc = idx_session_touch(r->idx, hash, r->now_us)) != VG_OK)
        return rc;
    principal_from_account(&r->who, &s.account);
    r->who.via_cookie = 1;
    memcpy(r->who.session_hash, hash, sizeof(hash));
    return VG_OK;
}

static int changes_state(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
}

int web_auth_request(web_req_t *r, const web_route_t *route)
{
    const char *auth = header(r, "Authorization");
    const char *cookie = web_req_cookie(r, SESSION_COOKIE);
    int rc;
    if (auth) {
        if (strncasecmp(auth, "Bearer ", 7) != 0 || strlen(auth + 7) > 256) {
            deny(r, 401, "unauthenticated", "use 'Authorization: Bearer TOKEN'");
            return VG_EINVAL;
        }
        rc = from_token(r, auth + 7);
    } else if (cookie) {
        rc = from_session(r, cookie);
    } else {
        deny(r, 401, "unauthenticated", "log in or send an API token");
        return VG_EINVAL;
    }
    if (rc != VG_OK) {
        if (rc != VG_ENOTFOUND) {
            web_reply_error(r, 500, "internal", "cannot check credentials");
            return rc;
        }
        deny(r, 401, "unauthenticated",
             auth ? "the token is unknown or revoked" : "the session has expired; log in again");
        return VG_EINVAL;
    }
    /* A cross-site form can make the browser send the cookie, but not a
     * custom header: state changes over a cookie need it. */
    if (r->who.via_cookie && changes_state(r->method)) {
        const char *xrw = header(r, "X-Requested-With");
        if (!xrw || strcmp(xrw, "vigil") != 0) {
            deny(r, 403, "csrf", "send the header 'X-Requested-With: vigil'");
            return VG_EINVAL;
        }
    }
    if (route->perms_any && !web_has(&r->who, route->perms_any)) {
        deny(r, 403, "forbidden", "your account lacks the permission for this");
        return VG_EINVAL;
    }
    return VG_OK;
}

/* ---- a streaming answer's grant (server.c re-checks it while it runs) ---- */

/* The principal g's credential is now: a token not revoked, a session still
 * there (a logout, a new password and a deleted account all delete it) with
 * its account as it is now. Idle expiry is not applied: the stream itself
 * is the session's use, and its last_us is not touched while it runs. */
static int grant_principal(idx_t *idx, const web_grant_t *g, web_principal_t *who)
{
    int rc;
    memset(who, 0, sizeof(*who));
    if (g->kind == 't') {
        idx_token_t t;
        if ((rc = idx_token_get(idx, g->token_id, &t)) != VG_OK)
            return rc;
        if (t.revoked_us)
            return VG_ENOTFOUND;
        who->kind = 't';
        if (web_perms_parse(t.perms, &who->perms) != VG_OK)
            who->perms = 0;
        who->all_sources = 1;
        return VG_OK;
    }
    if (g->kind != 'u')
        return VG_ENOTFOUND;
    idx_session_t s;
    if ((rc = idx_session_get(idx, g->session_hash, &s)) != VG_OK)
        return rc;
    principal_from_account(who, &s.account);
    return VG_OK;
}

int web_grant_check(struct web *w, idx_t *idx, const web_grant_t *g)
{
    web_principal_t who;
    int rc = grant_principal(idx, g, &who);
    if (rc != VG_OK)
        goto cleanup;
    if (g->perms_any && !web_has(&who, g->perms_any)) {
        rc = VG_ENOTFOUND;
        goto cleanup;
    }
    const web_config_t *c = &w->cfg;
    const vg_config_t *cfg = c->current_config ? c->current_config(c->status_ctx) : w->vcfg;
    for (const char *p = g->sources; *p && rc == VG_OK;) {
        char name[IDX_LIST_TEXT_MAX], buf[8];
        size_t k = strcspn(p, ",");
        snprintf(name, sizeof(name), "%.*s", (int)k, p);
        p += k + (p[k] == ',');
        /* The rules of the source routes: visible to the account, and its
         * recordings readable (calls for audio, playback for video). */
        const char *kind = web_source_kind(cfg, idx, name, buf, sizeof(buf));
        int audio = kind && strcmp(kind, "audio") == 0;
        /* Watching live: live, and calls for an audio line (README "Live view"). */
        unsigned need = g->live_view ? WEB_PERM_LIVE : audio ? WEB_PERM_CALLS : WEB_PERM_PLAYBACK;
        if (!kind || !web_source_visible(&who, name, kind) || !web_has(&who, need) ||
            (g->live_view && audio && !web_has(&who, WEB_PERM_CALLS)))
            rc = VG_ENOTFOUND;
    }

cleanup:
    sodium_memzero(&who, sizeof(who));
    return rc;
}

/* ---- password hashing slots ---- */

int web_hash_begin(struct web *w)
{
    pthread_mutex_lock(&w->hash_lock);
    while (w->hashing >= MAX_HASHING)
        pthread_cond_wait(&w->hash_cond, &w->hash_lock);
    w->hashing++;
    pthread_mutex_unlock(&w->hash_lock);
    return VG_OK;
}

void web_hash_end(struct web *w)
{
    pthread_mutex_lock(&w->hash_lock);
    w->hashing--;
    pthread_cond_signal(&w->hash_cond);
    pthread_mutex_unlock(&w->hash_lock);
}

/* ---- login / logout ---- */

/* Checks the password; an unknown user costs the same as a wrong password. */
static int password_matches(web_req_t *r, const idx_account_t *a, int found, const char *pw)
{
    web_hash_begin(r->w);
    int ok = crypto_pwhash_str_verify(found ? a->pwhash : r->w->dummy_hash, pw, strlen(pw)) == 0;
    web_hash_end(r->w);
    return ok && found;
}

static int start_session(web_req_t *r, const idx_account_t *a)
{
    unsigned char raw[32];
    char id[65], hash[65];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(id, sizeof(id), raw, sizeof(raw));
    sodium_memzero(raw, sizeof(raw));
    web_sha256_hex(id, strlen(id), hash);
    int rc = idx_session_add(r->idx, hash, a->id, r->now_us);
    if (rc != VG_OK)
        return rc;
    /* The browser forgets it at the absolute limit; the server enforces
     * both limits regardless. */
    snprintf(r->set_cookie, sizeof(r->set_cookie),
             SESSION_COOKIE "=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d%s", id,
             r->cfg->http.session_max_hours * 3600, r->w->tls ? "; Secure" : "");
    sodium_memzero(id, sizeof(id));
    return VG_OK;
}

/* A session starts with its login row, in one transaction. */
typedef struct {
    web_req_t *r;
    const idx_account_t *a;
    const char *user;
} login_t;

static int do_login(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    login_t *c = arg;
    (void)rows;
    (void)n;
    int rc = start_session(c->r, c->a);
    if (rc == VG_OK)
        rc = idx_login_failures_clear(idx, c->user);
    return rc;
}

void web_login(web_req_t *r)
{
    static const web_field_t fields[] = {
        {"user", WEB_F_STRING, 1, 0}, {"password", WEB_F_STRING, 1, 0}, {NULL, 0, 0, 0}};
    json_t *body = web_req_body(r, fields);
    if (!body)
        return;
    const char *user = json_string_value(json_object_get(body, "user"));
    const char *pw = json_string_value(json_object_get(body, "password"));
    idx_account_t a;
    char object[96];
    if (strlen(user) > 63 || strlen(pw) > WEB_PASSWORD_MAX) {
        web_reply_error(r, 400, "invalid_field", "user or password too long");
        goto cleanup;
    }
    snprintf(object, sizeof(object), "user:%s", user);
    /* Decided and counted before the password is checked, in one
     * transaction: parallel guesses cannot all slip under the limit. */
    idx_login_attempt_t at;
    if (idx_login_attempt(r->idx, user, r->ip, r->now_us, &web_login_policy, &at) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot check login attempts");
        goto cleanup;
    }
    if (!at.admitted) {
        long long retry = (at.retry_us + 999999) / 1000000;
        retry = retry < 1 ? 1 : retry;
        snprintf(r->retry_after, sizeof(r->retry_after), "%lld", retry);
        /* Counted, not a row each: a refused flood must not grow the trail. */
        idx_denials_note(r->w->denials, r->now_us, r->ip, "anonymous", "login", object,
                         "throttled");
        web_reply_error(r, 429, "too_many_attempts",
                        "too many failed logins; try again in %lld s", retry);
        goto cleanup;
    }
    int rc = idx_account_get(r->idx, user, &a);
    if (rc != VG_OK && rc != VG_ENOTFOUND) {
        web_reply_error(r, 500, "internal", "cannot look up the account");
        goto cleanup;
    }
    if (!password_matches(r, &a, rc == VG_OK, pw)) {
        /* Already counted by idx_login_attempt; a password check is a row. */
        web_audit_as(r, "anonymous", "login", object, 0, 0, "denied", "wrong user or password");
        web_reply_error(r, 401, "invalid_credentials", "wrong user name or password");
        goto cleanup;
    }
    principal_from_account(&r->who, &a);
    idx_audit_t row;
    web_audit_row(r, &row, NULL, "login", object, 0, 0, "ok", "");
    login_t change = {r, &a, user};
    rc = web_change(r, do_login, &change, &row);
    if (rc == VG_EAUDIT)
        goto cleanup;
    if (rc != VG_OK) {
        r->set_cookie[0] = '\0';
        web_reply_error(r, 500, "internal", "cannot start a session");
        goto cleanup;
    }
    web_reply_json(r, 200, web_me_json(&r->who));

cleanup:
    json_decref(body);
}

static int do_logout(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    (void)rows;
    (void)n;
    return idx_session_delete(idx, arg);
}

void web_logout(web_req_t *r)
{
    if (!r->who.via_cookie) {
        web_reply_error(r, 400, "not_a_session", "logout ends a cookie session; revoke tokens instead");
        return;
    }
    char object[96];
    idx_audit_t row;
    snprintf(object, sizeof(object), "user:%s", r->who.name);
    web_audit_row(r, &row, NULL, "logout", object, 0, 0, "ok", "");
    int rc = web_change(r, do_logout, r->who.session_hash, &row);
    if (rc == VG_EAUDIT)
        return;
    if (rc != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot end the session");
        return;
    }
    snprintf(r->set_cookie, sizeof(r->set_cookie),
             SESSION_COOKIE "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0%s",
             r->w->tls ? "; Secure" : "");
    web_reply_json(r, 200, json_pack("{sb}", "ok", 1));
}

json_t *web_me_json(const web_principal_t *who)
{
    json_t *plist = json_array();
    for (unsigned bit = 1; bit <= WEB_PERM_METRICS; bit <<= 1) {
        if ((who->perms & bit) || (who->perms & WEB_PERM_ADMIN))
            json_array_append_new(plist, json_string(web_perm_name(bit)));
    }
    json_t *sources = json_null();
    if (!who->all_sources) {
        sources = json_array();
        for (const char *p = who->sources; *p;) {
            size_t k = strcspn(p, ",");
            json_array_append_new(sources, json_stringn(p, k));
            p += k;
            if (*p == ',')
                p++;
        }
    }
    return json_pack("{ss ss* so so}", who->kind == 't' ? "token" : "user", who->name, "role",
                     who->kind == 'u' ? who->role : NULL, "permissions", plist, "sources",
                     sources);
}

