/* minisign signature files for export manifests. The format (minisign's
 * documentation): four lines,
 *   untrusted comment: TEXT
 *   base64(algorithm[2] || key number[8] || signature[64])
 *   trusted comment: TEXT
 *   base64(global signature[64])
 * where the signature is Ed25519 over BLAKE2b-512 of the message for "ED"
 * (prehashed, what minisign writes by default) or over the message itself
 * for the legacy "Ed", and the global signature is Ed25519 over the
 * signature followed by the trusted comment's text, so the trusted comment
 * cannot be changed without the key. */
#include "playback/playback.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/errors.h"
#include "core/util.h"

#define SIG_BLOB (2 + 8 + VG_KEY_SIG_BYTES)
#define B64_LEN(n) sodium_base64_ENCODED_LEN((n), sodium_base64_VARIANT_ORIGINAL)
#define UNTRUSTED "untrusted comment: "
#define TRUSTED "trusted comment: "

static int prehash(const void *msg, size_t len, unsigned char out[crypto_generichash_BYTES_MAX])
{
    return crypto_generichash(out, crypto_generichash_BYTES_MAX, msg, len, NULL, 0) == 0
               ? VG_OK
               : VG_EIO;
}

char *pb_minisign_sign(const vg_key_t *key, const void *msg, size_t len,
                       const char *untrusted_comment, const char *trusted_comment)
{
    unsigned char hash[crypto_generichash_BYTES_MAX], blob[SIG_BLOB], global[VG_KEY_SIG_BYTES];
    char b64_sig[B64_LEN(SIG_BLOB)], b64_global[B64_LEN(VG_KEY_SIG_BYTES)];
    char *text = NULL;
    unsigned char *signed_part = NULL;
    size_t tlen = strlen(trusted_comment);
    if (!key->has_secret || sodium_init() < 0 || strpbrk(trusted_comment, "\r\n") ||
        strpbrk(untrusted_comment, "\r\n") || prehash(msg, len, hash) != VG_OK)
        return NULL;
    memcpy(blob, "ED", 2);
    memcpy(blob + 2, key->id, 8);
    if (vg_key_sign(key, hash, sizeof(hash), blob + 10) != VG_OK)
        goto cleanup;
    signed_part = vg_malloc(VG_KEY_SIG_BYTES + tlen);
    memcpy(signed_part, blob + 10, VG_KEY_SIG_BYTES);
    memcpy(signed_part + VG_KEY_SIG_BYTES, trusted_comment, tlen);
    if (vg_key_sign(key, signed_part, VG_KEY_SIG_BYTES + tlen, global) != VG_OK)
        goto cleanup;
    sodium_bin2base64(b64_sig, sizeof(b64_sig), blob, sizeof(blob),
                      sodium_base64_VARIANT_ORIGINAL);
    sodium_bin2base64(b64_global, sizeof(b64_global), global, sizeof(global),
                      sodium_base64_VARIANT_ORIGINAL);
    text = vg_asprintf(UNTRUSTED "%s\n%s\n" TRUSTED "%s\n%s\n", untrusted_comment, b64_sig,
                       trusted_comment, b64_global);

cleanup:
    free(signed_part);
    return text;
}

static int bad(char *why, size_t size, const char *text)
{
    snprintf(why, size, "%s", text);
    return VG_ECORRUPT;
}

/* The n-th line (0-based) of text into a malloc'd string without its end. */
static char *line_of(const char *text, int n)
{
    const char *p = text;
    for (int i = 0; i < n && p; i++) {
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    if (!p || !*p)
        return NULL;
    size_t len = strcspn(p, "\n");
    char *line = vg_malloc(len + 1);
    memcpy(line, p, len);
    line[len] = '\0';
    if (len && line[len - 1] == '\r')
        line[len - 1] = '\0';
    return line;
}

static int decode(const char *b64, unsigned char *out, size_t len)
{
    size_t got = 0;
    return sodium_base642bin(out, len, b64, strlen(b64), NULL, &got, NULL,
                             sodium_base64_VARIANT_ORIGINAL) == 0 &&
                   got == len
               ? VG_OK
               : VG_ECORRUPT;
}

int pb_minisign_verify(const vg_key_t *key, const void *msg, size_t len, const char *sig_text,
                       char *why, size_t why_size)
{
    unsigned char blob[SIG_BLOB], global[VG_KEY_SIG_BYTES], hash[crypto_generichash_BYTES_MAX];
    char *l[4] = {NULL, NULL, NULL, NULL};
    unsigned char *signed_part = NULL;
    int rc = VG_OK;
    for (int i = 0; i < 4; i++)
        l[i] = line_of(sig_text, i);
    if (!l[0] || !l[1] || !l[2] || !l[3] || strncmp(l[0], UNTRUSTED, strlen(UNTRUSTED)) != 0 ||
        strncmp(l[2], TRUSTED, strlen(TRUSTED)) != 0) {
        rc = bad(why, why_size, "the signature file is not in minisign's format");
        goto cleanup;
    }
    if (decode(l[1], blob, sizeof(blob)) != VG_OK || decode(l[3], global, sizeof(global)) != VG_OK) {
        rc = bad(why, why_size, "the signature file's base64 lines are malformed");
        goto cleanup;
    }
    if (memcmp(blob + 2, key->id, 8) != 0) {
        rc = bad(why, why_size, "the signature was made by another key (key number differs)");
        goto cleanup;
    }
    int prehashed = memcmp(blob, "ED", 2) == 0;
    if (!prehashed && memcmp(blob, "Ed", 2) != 0) {
        rc = bad(why, why_size, "unknown signature algorithm");
        goto cleanup;
    }
    if (prehashed && prehash(msg, len, hash) != VG_OK) {
        rc = VG_EIO;
        goto cleanup;
    }
    if (vg_key_verify(key, prehashed ? hash : msg, prehashed ? sizeof(hash) : len, blob + 10) !=
        VG_OK) {
        rc = bad(why, why_size, "manifest.json does not match its signature");
        goto cleanup;
    }
    const char *tc = l[2] + strlen(TRUSTED);
    size_t tlen = strlen(tc);
    signed_part = vg_malloc(VG_KEY_SIG_BYTES + tlen);
    memcpy(signed_part, blob + 10, VG_KEY_SIG_BYTES);
    memcpy(signed_part + VG_KEY_SIG_BYTES, tc, tlen);
    if (vg_key_verify(key, signed_part, VG_KEY_SIG_BYTES + tlen, global) != VG_OK)
        rc = bad(why, why_size, "the trusted comment does not match its global signature");

cleanup:
    free(signed_part);
    for (int i = 0; i < 4; i++)
        free(l[i]);
    return rc;
}

int pb_minisign_parse_public(const char *text, vg_key_t *out)
{
    unsigned char blob[2 + 8 + 32];
    char *l0 = line_of(text, 0), *l1 = line_of(text, 1);
    int rc = l0 && l1 && strncmp(l0, UNTRUSTED, strlen(UNTRUSTED)) == 0 &&
                     decode(l1, blob, sizeof(blob)) == VG_OK && memcmp(blob, "Ed", 2) == 0
                 ? VG_OK
                 : VG_ECORRUPT;
    memset(out, 0, sizeof(*out));
    if (rc == VG_OK) {
        memcpy(out->id, blob + 2, 8);
        memcpy(out->pk, blob + 10, 32);
    }
    free(l0);
    free(l1);
    return rc;
}
