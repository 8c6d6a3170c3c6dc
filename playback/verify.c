/* Checking an evidence bundle (vigilctl verify-export): the manifest's
 * minisign signature, then every file against the signed manifest, then
 * that the zip holds exactly what the manifest names. The first mismatch
 * is reported; nothing in the zip is trusted before its hash is checked. */
#include "playback/playback.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <nettle/sha2.h>
#include <zip.h>

#include "core/errors.h"
#include "core/util.h"

#define TEXT_MAX (16 * 1024 * 1024)
#define MAX_ENTRIES 512 /* a subject-access bundle: up to 400 calls */

typedef struct {
    char *name;
    int64_t bytes;
    char sha256[65];
    char *text;       /* the small files, read whole */
    int expected;     /* named by the manifest or one of the fixed files */
} entry_t;

static int bad(char *why, size_t size, const char *fmt, const char *arg)
{
    snprintf(why, size, fmt, arg);
    return VG_ECORRUPT;
}

/* Hashes an entry, keeping its bytes when it is one of the text files. */
static int read_entry(zip_t *za, zip_uint64_t i, entry_t *e, int keep)
{
    zip_file_t *f = zip_fopen_index(za, i, 0);
    if (!f)
        return VG_EIO;
    struct sha256_ctx sha;
    uint8_t digest[SHA256_DIGEST_SIZE];
    unsigned char buf[64 * 1024];
    size_t cap = 0, len = 0;
    zip_int64_t n;
    int rc = VG_OK;
    sha256_init(&sha);
    while ((n = zip_fread(f, buf, sizeof(buf))) > 0) {
        sha256_update(&sha, (size_t)n, buf);
        if (keep) {
            if (len + (size_t)n > TEXT_MAX) {
                rc = VG_ECORRUPT;
                break;
            }
            if (len + (size_t)n + 1 > cap) {
                cap = (len + (size_t)n + 1) * 2;
                e->text = vg_realloc(e->text, cap);
            }
            memcpy(e->text + len, buf, (size_t)n);
            len += (size_t)n;
        }
        e->bytes += n;
    }
    if (n < 0)
        rc = VG_ECORRUPT; /* a damaged entry (CRC mismatch included) */
    zip_fclose(f);
    sha256_digest(&sha, sizeof(digest), digest);
    for (int k = 0; k < SHA256_DIGEST_SIZE; k++)
        snprintf(e->sha256 + 2 * k, 3, "%02x", digest[k]);
    if (keep) {
        if (!e->text)
            e->text = vg_malloc(1);
        e->text[len] = '\0';
        if (strlen(e->text) != len)
            rc = VG_ECORRUPT; /* NUL inside a text file */
    }
    return rc;
}

static int is_text(const char *name)
{
    return strcmp(name, PB_MANIFEST) == 0 || strcmp(name, PB_MANIFEST_SIG) == 0 ||
           strcmp(name, PB_PUBKEY) == 0 || strcmp(name, PB_SHA256SUMS) == 0 ||
           strcmp(name, PB_VERIFY_TXT) == 0;
}

static entry_t *find(entry_t *e, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(e[i].name, name) == 0)
            return &e[i];
    }
    return NULL;
}

/* A file the manifest names: present, same size and hash. */
static int check_file(entry_t *e, size_t n, const json_t *file, char *sums, size_t sums_cap,
                      char *why, size_t why_size)
{
    const char *name = json_string_value(json_object_get(file, "name"));
    const char *sha = json_string_value(json_object_get(file, "sha256"));
    json_t *bytes = json_object_get(file, "bytes");
    if (!name || !sha || !json_is_integer(bytes) || strchr(name, '/') || name[0] == '.')
        return bad(why, why_size, "manifest.json names a file badly%s", "");
    entry_t *x = find(e, n, name);
    if (!x)
        return bad(why, why_size, "%s is missing from the bundle", name);
    if (x->expected)
        return bad(why, why_size, "manifest.json names %s twice", name);
    x->expected = 1;
    if (x->bytes != json_integer_value(bytes) || strcmp(x->sha256, sha) != 0)
        return bad(why, why_size, "%s does not match its sha256 in the manifest", name);
    size_t len = strlen(sums);
    snprintf(sums + len, sums_cap - len, "%s  %s\n", x->sha256, name);
    return VG_OK;
}

int pb_bundle_verify(const char *zip_path, const char *pubkey_path, char *why, size_t why_size,
                     char *key_id)
{
    entry_t e[MAX_ENTRIES];
    size_t n = 0;
    int zerr = 0, rc = VG_OK;
    json_t *m = NULL;
    char *sums = NULL;
    vg_key_t key;
    memset(e, 0, sizeof(e));
    memset(&key, 0, sizeof(key));
    why[0] = '\0';
    zip_t *za = zip_open(zip_path, ZIP_RDONLY | ZIP_CHECKCONS, &zerr);
    if (!za) {
        snprintf(why, why_size, "cannot read %s as a zip", zip_path);
        return VG_EIO;
    }
    zip_int64_t count = zip_get_num_entries(za, 0);
    if (count < 0 || count > MAX_ENTRIES) {
        rc = bad(why, why_size, "the zip holds too many files%s", "");
        goto cleanup;
    }
    for (zip_int64_t i = 0; i < count; i++) {
        const char *name = zip_get_name(za, (zip_uint64_t)i, ZIP_FL_ENC_RAW);
        if (!name || !*name || strchr(name, '/') || name[0] == '.') {
            rc = bad(why, why_size, "unexpected file in the bundle: %s", name ? name : "?");
            goto cleanup;
        }
        if (find(e, n, name)) {
            rc = bad(why, why_size, "%s is in the zip twice", name);
            goto cleanup;
        }
        e[n].name = vg_strdup(name);
        if (read_entry(za, (zip_uint64_t)i, &e[n], is_text(name)) != VG_OK) {
            rc = bad(why, why_size, "%s cannot be read (damaged)", name);
            n++;
            goto cleanup;
        }
        n++;
    }
    static const char *const fixed[] = {PB_MANIFEST, PB_MANIFEST_SIG, PB_PUBKEY, PB_SHA256SUMS};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        entry_t *x = find(e, n, fixed[i]);
        if (!x) {
            rc = bad(why, why_size, "%s is missing from the bundle", fixed[i]);
            goto cleanup;
        }
        x->expected = 1;
    }
    entry_t *man = find(e, n, PB_MANIFEST);

    /* The key: the one given, else the bundled one. */
    if (pubkey_path) {
        if (vg_key_load_public_file(pubkey_path, &key) != VG_OK) {
            snprintf(why, why_size, "cannot read the public key %s", pubkey_path);
            rc = VG_EIO;
            goto cleanup;
        }
    } else {
        int ok = pb_minisign_parse_public(find(e, n, PB_PUBKEY)->text, &key) == VG_OK;
        if (!ok) {
            rc = bad(why, why_size, PB_PUBKEY " is not a minisign public key%s", "");
            goto cleanup;
        }
    }
    if (key_id)
        vg_key_id_hex(&key, key_id);
    char sig_why[160];
    if (pb_minisign_verify(&key, man->text, strlen(man->text), find(e, n, PB_MANIFEST_SIG)->text,
                           sig_why, sizeof(sig_why)) != VG_OK) {
        rc = bad(why, why_size, "signature: %s", sig_why);
        goto cleanup;
    }

    /* From here the manifest is the appliance's word. */
    if (!(m = json_loads(man->text, 0, NULL)) ||
        !json_is_array(json_object_get(m, "sources")) ||
        !json_is_array(json_object_get(m, "files"))) {
        rc = bad(why, why_size, "manifest.json is not a vigil manifest%s", "");
        goto cleanup;
    }
    size_t cap = (size_t)(n + 2) * 400;
    sums = vg_calloc(1, cap);
    json_t *v;
    size_t i;
    json_array_foreach(json_object_get(m, "sources"), i, v)
    {
        if ((rc = check_file(e, n, json_object_get(v, "file"), sums, cap, why, why_size)) != VG_OK)
            goto cleanup;
    }
    size_t len = strlen(sums);
    snprintf(sums + len, cap - len, "%s  " PB_MANIFEST "\n", man->sha256);
    json_array_foreach(json_object_get(m, "files"), i, v)
    {
        if ((rc = check_file(e, n, v, sums, cap, why, why_size)) != VG_OK)
            goto cleanup;
    }
    for (size_t k = 0; k < n; k++) {
        if (!e[k].expected) {
            rc = bad(why, why_size, "unexpected file in the bundle: %s", e[k].name);
            goto cleanup;
        }
    }
    if (strcmp(find(e, n, PB_SHA256SUMS)->text, sums) != 0)
        rc = bad(why, why_size, PB_SHA256SUMS " does not match the manifest%s", "");

cleanup:
    json_decref(m);
    free(sums);
    for (size_t k = 0; k < n; k++) {
        free(e[k].name);
        free(e[k].text);
    }
    zip_discard(za);
    return rc;
}
