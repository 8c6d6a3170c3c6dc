/* Account rules shared by the API and vigilctl: role and permission names,
 * account names, Argon2id password hashing and API token creation. */
#include "web/web.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "core/errors.h"
#include "core/log.h"

static const char *const perm_names[] = {"live",     "playback", "calls", "export",  "hold",
                                         "annotate", "audit",    "admin", "metrics",
                                         "pbx"};
#define N_PERMS (sizeof(perm_names) / sizeof(perm_names[0]))

typedef struct {
    const char *name;
    unsigned perms;
} role_t;

/* The role table. security sees video only: it lacks `calls`,
 * which every audio source requires (see web_source_visible). officer
 * reviews the audit trail and the destruction log and sees no recordings
 * or sources: separation of duties, so access logs are not reviewed only by
 * admins who could also change what they record. */
static const role_t roles[] = {
    {"security", WEB_PERM_LIVE | WEB_PERM_PLAYBACK},
    {"auditor", WEB_PERM_PLAYBACK | WEB_PERM_CALLS | WEB_PERM_ANNOTATE},
    {"investigator", WEB_PERM_PLAYBACK | WEB_PERM_CALLS | WEB_PERM_EXPORT | WEB_PERM_HOLD},
    {"officer", WEB_PERM_AUDIT},
    {"admin", WEB_PERM_ALL},
};

int web_role_perms(const char *role, unsigned *perms)
{
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        if (strcmp(roles[i].name, role) == 0) {
            *perms = roles[i].perms;
            return VG_OK;
        }
    }
    return VG_EINVAL;
}

const char *web_perm_name(unsigned bit)
{
    for (size_t i = 0; i < N_PERMS; i++) {
        if (bit == 1u << i)
            return perm_names[i];
    }
    return NULL;
}

static int perm_bit(const char *name, size_t len, unsigned *bit)
{
    for (size_t i = 0; i < N_PERMS; i++) {
        if (strlen(perm_names[i]) == len && strncmp(perm_names[i], name, len) == 0) {
            *bit = 1u << i;
            return VG_OK;
        }
    }
    return VG_EINVAL;
}

int web_perms_parse(const char *csv, unsigned *perms)
{
    unsigned mask = 0;
    const char *p = csv;
    if (!csv || !*csv)
        return VG_EINVAL;
    for (;;) {
        size_t n = strcspn(p, ",");
        unsigned bit = 0;
        if (perm_bit(p, n, &bit) != VG_OK)
            return VG_EINVAL;
        mask |= bit;
        if (!p[n])
            break;
        p += n + 1;
    }
    *perms = mask;
    return VG_OK;
}

void web_perms_format(unsigned perms, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < N_PERMS; i++) {
        if (!(perms & (1u << i)))
            continue;
        int n = snprintf(out + used, size - used, "%s%s", used ? "," : "", perm_names[i]);
        if (n < 0 || (size_t)n >= size - used)
            return;
        used += (size_t)n;
    }
}

int web_user_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 63 || !(islower((unsigned char)name[0]) || isdigit((unsigned char)name[0])))
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!(islower(c) || isdigit(c) || c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int web_password_hash(const char *password, char out[128])
{
    size_t n = strlen(password);
    if (n < WEB_PASSWORD_MIN || n > WEB_PASSWORD_MAX)
        return VG_EINVAL;
    if (sodium_init() < 0)
        return VG_EIO;
    _Static_assert(crypto_pwhash_STRBYTES <= 128, "pwhash string does not fit");
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    /* Fuzz builds only (make fuzz): Argon2id's interactive cost (64 MiB, tens
     * of ms) on every login the fuzzer tries would cap it at a few hundred
     * requests a second. The code paths are the same; verification reads
     * the cost from the stored hash. */
    const unsigned long long ops = crypto_pwhash_OPSLIMIT_MIN;
    const size_t mem = crypto_pwhash_MEMLIMIT_MIN;
#else
    const unsigned long long ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
    const size_t mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
#endif
    if (crypto_pwhash_str(out, password, n, ops, mem) != 0) {
        vg_err("password hashing failed (out of memory?)");
        return VG_EIO;
    }
    return VG_OK;
}

void web_sha256_hex(const char *text, size_t len, char out[65])
{
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)text, len);
    sodium_bin2hex(out, 65, digest, sizeof(digest));
}

int web_token_create(idx_t *idx, const char *name, unsigned perms, const char *created_by,
                     int64_t now_us, char *secret, int64_t *id)
{
    unsigned char raw[32];
    char hash[65];
    idx_token_t t = {0};
    if (sodium_init() < 0)
        return VG_EIO;
    if (!web_user_name_valid(name) || perms == 0 || (perms & ~(unsigned)WEB_PERM_ALL))
        return VG_EINVAL;
    /* "vgt_" marks the string as a vigil token (secret scanners, logs). */
    randombytes_buf(raw, sizeof(raw));
    memcpy(secret, "vgt_", 4);
    sodium_bin2hex(secret + 4, WEB_TOKEN_TEXT_MAX - 4, raw, sizeof(raw));
    sodium_memzero(raw, sizeof(raw));
    web_sha256_hex(secret, strlen(secret), hash);
    snprintf(t.name, sizeof(t.name), "%s", name);
    web_perms_format(perms, t.perms, sizeof(t.perms));
    snprintf(t.created_by, sizeof(t.created_by), "%s", created_by);
    t.created_us = now_us;
    int rc = idx_token_add(idx, &t, hash);
    if (rc == VG_OK)
        *id = t.id;
    return rc;
}
