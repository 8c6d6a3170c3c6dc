/* The appliance's Ed25519 key: creation (once, atomically), loading, the
 * minisign public key text, signing and verifying. See key.h for the files. */
#include "core/key.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

/* minisign's signature algorithm id for plain Ed25519 */
#define ALG "Ed"
#define SECRET_BLOB (2 + 8 + 64)
#define PUBLIC_BLOB (2 + 8 + 32)
#define MAX_FILE 1024

static uint64_t key_number(const vg_key_t *k)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | k->id[i];
    return v;
}

void vg_key_id_hex(const vg_key_t *k, char out[VG_KEY_ID_HEX])
{
    snprintf(out, VG_KEY_ID_HEX, "%016" PRIX64, key_number(k));
}

void vg_key_public_text(const vg_key_t *k, char *out, size_t size)
{
    unsigned char blob[PUBLIC_BLOB];
    char id[VG_KEY_ID_HEX], b64[sodium_base64_ENCODED_LEN(PUBLIC_BLOB,
                                                          sodium_base64_VARIANT_ORIGINAL)];
    memcpy(blob, ALG, 2);
    memcpy(blob + 2, k->id, 8);
    memcpy(blob + 10, k->pk, 32);
    sodium_bin2base64(b64, sizeof(b64), blob, sizeof(blob), sodium_base64_VARIANT_ORIGINAL);
    vg_key_id_hex(k, id);
    snprintf(out, size, "untrusted comment: minisign public key %s\n%s\n", id, b64);
}

/* The second line of a key file, base64-decoded into blob (exactly len).
 * The files in data_dir are never followed through a symlink. */
static int read_blob(const char *path, int follow, unsigned char *blob, size_t len)
{
    char text[MAX_FILE + 1];
    int fd = open(path, O_RDONLY | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
    if (fd < 0)
        return errno == ENOENT ? VG_ENOTFOUND : VG_EIO;
    ssize_t n = read(fd, text, MAX_FILE);
    close(fd);
    if (n <= 0)
        return VG_ECORRUPT;
    text[n] = '\0';
    char *line = strchr(text, '\n');
    if (!line)
        return VG_ECORRUPT;
    line++;
    line[strcspn(line, "\r\n")] = '\0';
    size_t got = 0;
    if (sodium_base642bin(blob, len, line, strlen(line), NULL, &got, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        got != len || memcmp(blob, ALG, 2) != 0)
        return VG_ECORRUPT;
    return VG_OK;
}

/* Writes text to dir/name through a temporary file and a rename, so a crash
 * leaves the old file or the new one, never half of one. */
static int write_file(const char *dir, const char *name, const char *text, mode_t mode)
{
    char *path = vg_asprintf("%s/%s", dir, name);
    char *tmp = vg_asprintf("%s/.%s.tmp", dir, name);
    int rc = VG_OK;
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0 || fchmod(fd, mode) != 0 || vg_write_all(fd, text, strlen(text)) != VG_OK ||
        fsync(fd) != 0) {
        vg_err("key: cannot write %s: %s", tmp, strerror(errno));
        rc = VG_EIO;
    }
    if (fd >= 0)
        close(fd);
    if (rc == VG_OK && (rename(tmp, path) != 0 || vg_fsync_dir(dir) != VG_OK)) {
        vg_err("key: cannot install %s: %s", path, strerror(errno));
        rc = VG_EIO;
    }
    if (rc != VG_OK)
        unlink(tmp);
    free(tmp);
    free(path);
    return rc;
}

static int create_key(const char *data_dir, vg_key_t *k)
{
    unsigned char blob[SECRET_BLOB];
    char b64[sodium_base64_ENCODED_LEN(SECRET_BLOB, sodium_base64_VARIANT_ORIGINAL)];
    char id[VG_KEY_ID_HEX], text[sizeof(b64) + 128];
    memset(k, 0, sizeof(*k));
    randombytes_buf(k->id, sizeof(k->id));
    crypto_sign_keypair(k->pk, k->sk);
    k->has_secret = 1;
    memcpy(blob, ALG, 2);
    memcpy(blob + 2, k->id, 8);
    memcpy(blob + 10, k->sk, 64);
    sodium_bin2base64(b64, sizeof(b64), blob, sizeof(blob), sodium_base64_VARIANT_ORIGINAL);
    vg_key_id_hex(k, id);
    snprintf(text, sizeof(text), "vigil appliance secret key %s (Ed25519); never share it\n%s\n",
             id, b64);
    int rc = write_file(data_dir, VG_KEY_FILE, text, 0600);
    sodium_memzero(blob, sizeof(blob));
    sodium_memzero(b64, sizeof(b64));
    sodium_memzero(text, sizeof(text));
    if (rc == VG_OK)
        vg_notice("key: created the appliance key %s in %s/" VG_KEY_FILE, id, data_dir);
    return rc;
}

/* The public key file always matches the secret key: rewritten if not. */
static int ensure_public(const char *data_dir, const vg_key_t *k)
{
    vg_key_t pub;
    char text[VG_KEY_PUB_TEXT_MAX];
    if (vg_key_load_public(data_dir, &pub) == VG_OK && memcmp(pub.pk, k->pk, 32) == 0 &&
        memcmp(pub.id, k->id, 8) == 0)
        return VG_OK;
    vg_key_public_text(k, text, sizeof(text));
    return write_file(data_dir, VG_KEY_PUB_FILE, text, 0644);
}

int vg_key_load_or_create(const char *data_dir, vg_key_t *out)
{
    unsigned char blob[SECRET_BLOB];
    char *path = vg_asprintf("%s/" VG_KEY_FILE, data_dir);
    struct stat st;
    int rc;
    if (sodium_init() < 0) {
        free(path);
        return VG_EIO;
    }
    memset(out, 0, sizeof(*out));
    rc = read_blob(path, 0, blob, sizeof(blob));
    if (rc == VG_ENOTFOUND) {
        rc = create_key(data_dir, out);
    } else if (rc == VG_OK) {
        memcpy(out->id, blob + 2, 8);
        memcpy(out->sk, blob + 10, 64);
        crypto_sign_ed25519_sk_to_pk(out->pk, out->sk);
        out->has_secret = 1;
        /* The key is what makes checkpoints worth anything: nobody but
         * vigild may read it. */
        if (stat(path, &st) == 0 && (st.st_mode & 077)) {
            vg_warn("key: %s was readable by others (mode %03o); made it 0600", path,
                    (unsigned)(st.st_mode & 0777));
            chmod(path, 0600);
        }
    } else {
        vg_err("key: %s is unreadable or not a vigil key: %s", path, vg_strerror(rc));
    }
    sodium_memzero(blob, sizeof(blob));
    if (rc == VG_OK)
        rc = ensure_public(data_dir, out);
    if (rc != VG_OK)
        vg_key_wipe(out);
    free(path);
    return rc;
}

static int load_public(const char *path, int follow, vg_key_t *out)
{
    unsigned char blob[PUBLIC_BLOB];
    memset(out, 0, sizeof(*out));
    int rc = read_blob(path, follow, blob, sizeof(blob));
    if (rc != VG_OK)
        return rc;
    memcpy(out->id, blob + 2, 8);
    memcpy(out->pk, blob + 10, 32);
    return VG_OK;
}

int vg_key_load_public_file(const char *path, vg_key_t *out)
{
    return load_public(path, 1, out);
}

int vg_key_load_public(const char *data_dir, vg_key_t *out)
{
    char *path = vg_asprintf("%s/" VG_KEY_PUB_FILE, data_dir);
    int rc = load_public(path, 0, out);
    free(path);
    return rc;
}

int vg_key_sign(const vg_key_t *k, const void *msg, size_t len,
                unsigned char sig[VG_KEY_SIG_BYTES])
{
    if (!k->has_secret)
        return VG_EINVAL;
    return crypto_sign_detached(sig, NULL, msg, len, k->sk) == 0 ? VG_OK : VG_EIO;
}

int vg_key_verify(const vg_key_t *k, const void *msg, size_t len,
                  const unsigned char sig[VG_KEY_SIG_BYTES])
{
    if (sodium_init() < 0)
        return VG_EIO;
    return crypto_sign_verify_detached(sig, msg, len, k->pk) == 0 ? VG_OK : VG_ECORRUPT;
}

void vg_key_wipe(vg_key_t *k)
{
    sodium_memzero(k, sizeof(*k));
}
