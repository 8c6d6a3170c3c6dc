/* The HTTP side: a libmicrohttpd JSON API under /api/v1 with accounts, roles,
 * sessions, API tokens, TLS, and an audit row for every access to recordings
 * or personal data (DESIGN.md invariant 6). web/ calls module APIs only
 * (index/, retention/); capture state reaches it through a callback so it
 * never sees capture internals.
 *
 * Also here: the account rules vigilctl shares with the API (names, roles,
 * permissions, password and token hashing), so both apply the same checks. */
#ifndef WEB_WEB_H
#define WEB_WEB_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/clock.h"
#include "core/config.h"
#include "index/index.h"
#include "live/live.h"
#include "playback/playback.h"

/* ---- permissions and roles ---- */

enum {
    WEB_PERM_LIVE = 1u << 0,
    WEB_PERM_PLAYBACK = 1u << 1,
    WEB_PERM_CALLS = 1u << 2,
    WEB_PERM_EXPORT = 1u << 3,
    WEB_PERM_HOLD = 1u << 4,
    WEB_PERM_ANNOTATE = 1u << 5,
    WEB_PERM_AUDIT = 1u << 6,
    WEB_PERM_ADMIN = 1u << 7,
    WEB_PERM_METRICS = 1u << 8, /* for monitoring tokens: GET /metrics only */
    WEB_PERM_ALL = (1u << 9) - 1,
};

/* The permissions of a role name; VG_EINVAL for an unknown role. */
int web_role_perms(const char *role, unsigned *perms);
/* "live,playback" -> mask. VG_EINVAL for an unknown or empty name. */
int web_perms_parse(const char *csv, unsigned *perms);
/* mask -> "live,playback" into out (at least 96 bytes). */
void web_perms_format(unsigned perms, char *out, size_t size);
/* The name of one permission bit, or NULL. */
const char *web_perm_name(unsigned bit);

/* Account names: [a-z0-9][a-z0-9._-]{0,62}. */
int web_user_name_valid(const char *name);
#define WEB_PASSWORD_MIN 10
#define WEB_PASSWORD_MAX 1024

/* Login throttling (web/auth.c), shared with the relay's Basic logins so
 * both count the same failures the same way. */
extern const idx_login_policy_t web_login_policy;
/* Argon2id (crypto_pwhash_str, interactive limits) into out[128].
 * VG_EINVAL when the password is shorter than WEB_PASSWORD_MIN. */
int web_password_hash(const char *password, char out[128]);

/* Creates an API token: a random secret (returned once in secret, which must
 * hold WEB_TOKEN_TEXT_MAX bytes) whose SHA-256 alone is stored. */
#define WEB_TOKEN_TEXT_MAX 72
int web_token_create(idx_t *idx, const char *name, unsigned perms, const char *created_by,
                     int64_t now_us, char *secret, int64_t *id);

/* SHA-256 of text as 64 lowercase hex digits + NUL (sessions, tokens). */
void web_sha256_hex(const char *text, size_t len, char out[65]);

/* ---- the server ---- */

typedef struct {
    char state[16];       /* recording | connecting | error | stopped */
    char last_error[160];
    char codecs[64];
    int64_t bitrate_bps;  /* over the provider's recent window; 0 when unknown */
    json_t *relay;        /* the relay's view (clients, push), taken over; NULL: null */
} web_source_status_t;

typedef struct {
    const vg_config_t *cfg;   /* [server] http keys, retention rules, sources */
    const char *data_dir;     /* index at data_dir/index.db */
    const vg_clock_t *clock;  /* injectable: session expiry and throttling tests */
    /* "host:port" to listen on instead of cfg->http.listen; port 0 picks a
     * free one (see web_bound_port). NULL: the config's. */
    const char *listen;
    /* Live state of a configured source; non-zero return: unknown (the
     * source is reported as stopped). Called from request threads. */
    int (*source_status)(void *ctx, const char *name, web_source_status_t *out);
    /* The configuration in force now (vigild replaces it on reload, keeping
     * old versions alive); NULL: cfg above. Called once per request. */
    const vg_config_t *(*current_config)(void *ctx);
    /* Prometheus text for GET /metrics (malloc'd; NULL: 500); NULL: no
     * metrics route answers 404. */
    char *(*metrics_text)(void *ctx);
    /* Alarms the daemon keeps in memory because the index may be what fails
     * (index_write_failed, storage_io_error): a JSON array of {kind,
     * severity, sources, message}, taken over; NULL callback or answer: none.
     * Shown with the index's alarms in GET /api/v1/storage. */
    json_t *(*live_alarms)(void *ctx);
    void *status_ctx;         /* ctx of the callbacks */
    /* Runs export jobs (owned by the caller, outlives the server); NULL:
     * the export routes answer 503. */
    pb_exporter_t *exporter;
    /* Browser live view (outlives the server); NULL: the live routes answer
     * 503. */
    live_t *live;
} web_config_t;

typedef struct web web_t;

/* Starts the server. With http_listen empty (and no listen override) it
 * starts nothing and *out is NULL: that is not an error. */
int web_start(const web_config_t *cfg, web_t **out);
/* The TCP port actually bound. */
int web_bound_port(const web_t *w);
/* Stops accepting, finishes requests in flight, frees. NULL is fine. */
void web_stop(web_t *w);

#endif
