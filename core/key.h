/* The appliance key: one Ed25519 key pair (libsodium) per appliance, created
 * at vigild's first start in data_dir. It signs the audit trail's
 * checkpoints (and, later, export bundles, minisign-compatibly).
 *
 * data_dir/appliance.key holds the secret key, mode 0600: readable by vigild
 * alone. data_dir/appliance.pub holds the public key in minisign's public key
 * format (an "untrusted comment" line, then base64 of "Ed", the 8-byte key
 * number and the 32-byte key), readable by anyone who verifies. */
#ifndef VG_KEY_H
#define VG_KEY_H

#include <stddef.h>

#define VG_KEY_FILE "appliance.key"
#define VG_KEY_PUB_FILE "appliance.pub"
#define VG_KEY_SIG_BYTES 64
#define VG_KEY_ID_HEX 17        /* 16 hex digits + NUL */
#define VG_KEY_PUB_TEXT_MAX 160 /* the two lines of the public key file */

typedef struct {
    unsigned char id[8];   /* minisign's key number: random, little-endian when shown */
    unsigned char pk[32];
    unsigned char sk[64];  /* libsodium's secret key (seed + public key) */
    int has_secret;        /* 0 when loaded from the public key file */
} vg_key_t;

/* Loads data_dir's key, creating it (and the public key file) when there is
 * none. A key file readable by others is made 0600 again, with a warning. */
int vg_key_load_or_create(const char *data_dir, vg_key_t *out);
/* Loads only the public key (appliance.pub): VG_ENOTFOUND when absent. */
int vg_key_load_public(const char *data_dir, vg_key_t *out);
/* The same from a public key file anywhere (a copy kept off the box). */
int vg_key_load_public_file(const char *path, vg_key_t *out);
/* The key number as minisign shows it (uppercase hex). */
void vg_key_id_hex(const vg_key_t *k, char out[VG_KEY_ID_HEX]);
/* The public key file's text (two lines, each ending in '\n'). */
void vg_key_public_text(const vg_key_t *k, char *out, size_t size);
/* Ed25519 signature of msg; VG_EINVAL without the secret key. */
int vg_key_sign(const vg_key_t *k, const void *msg, size_t len,
                unsigned char sig[VG_KEY_SIG_BYTES]);
/* VG_OK when sig is k's signature of msg, VG_ECORRUPT when not. */
int vg_key_verify(const vg_key_t *k, const void *msg, size_t len,
                  const unsigned char sig[VG_KEY_SIG_BYTES]);
/* Clears the secret from memory. */
void vg_key_wipe(vg_key_t *k);

#endif
