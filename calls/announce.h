/* The recording-announcement check: does a call's audio begin with the
 * reference announcement ("this call is recorded")? calls/announce.c holds
 * the method and why it was chosen. */
#ifndef CALL_ANNOUNCE_H
#define CALL_ANNOUNCE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    CALL_ANN_UNKNOWN = 0, /* audio missing or shorter than the announcement */
    CALL_ANN_PRESENT,     /* at least 80 % of the announcement was heard */
    CALL_ANN_ABSENT,
    CALL_ANN_PARTIAL,     /* only its beginning (30 % to 80 %) was heard */
} call_ann_state_t;

typedef struct {
    call_ann_state_t state;
    double offset_s; /* where the best match starts in the call (0 when absent) */
    double score;    /* the best match's mean correlation, -1 .. 1 */
    double coverage; /* share of the announcement the best match covers, 0 .. 1 */
} call_announce_result_t;

typedef struct call_announce_ref call_announce_ref_t;

/* The largest WAV file read (reference or call audio): 64 MiB. */
#define CALL_WAV_MAX_BYTES (64u << 20)
/* A reference announcement lasts 1 .. 30 s. */
#define CALL_ANN_REF_MIN_S 1.0
#define CALL_ANN_REF_MAX_S 30.0

/* Reads a WAV file (PCM 8/16-bit, float 32-bit, A-law or mu-law; any rate,
 * any number of channels) into 8 kHz mono 16-bit PCM. *pcm is malloc'd.
 * VG_ENOTFOUND, VG_EIO, VG_EINVAL (not a WAV / unsupported format / too big),
 * with a reason in err. */
int call_wav_load(const char *path, int16_t **pcm, size_t *n, char *err, size_t err_size);

/* Loads the reference announcement from a WAV file (as call_wav_load) and
 * prepares its fingerprints. */
int call_announce_ref_load(const char *path, call_announce_ref_t **out, char *err,
                           size_t err_size);
/* The same from 8 kHz mono PCM. VG_EINVAL when shorter than 1 s, longer
 * than 30 s or silent. */
int call_announce_ref_from_pcm(const int16_t *pcm, size_t n, call_announce_ref_t **out,
                               char *err, size_t err_size);
void call_announce_ref_free(call_announce_ref_t *ref);
double call_announce_ref_seconds(const call_announce_ref_t *ref);

/* Samples of a call's beginning the check wants: the announcement may start
 * anywhere in the first window_s seconds, so window_s plus its length (and
 * the speed tolerance). */
size_t call_announce_samples_wanted(const call_announce_ref_t *ref, double window_s);

/* Searches the first window_s seconds of a call (8 kHz mono PCM, n samples
 * from the call's start) for the announcement. Thread-safe for a shared ref.
 * VG_OK with *res filled (state UNKNOWN when n is too short). */
int call_announce_check(const call_announce_ref_t *ref, const int16_t *pcm, size_t n,
                        double window_s, call_announce_result_t *res);

const char *call_announce_state_name(call_ann_state_t state);

#endif
