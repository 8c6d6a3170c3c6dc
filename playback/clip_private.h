/* Between clip.c (the MP4/MOV layout) and clip_mkv.c (Matroska by remuxing
 * that layout on demand). Not part of the module's interface. */
#ifndef VG_PLAYBACK_CLIP_PRIVATE_H
#define VG_PLAYBACK_CLIP_PRIVATE_H

#include "playback/playback.h"

typedef struct pb_mkv_run pb_mkv_run_t;

/* Muxes the whole of inner (a MOV clip) into Matroska, counting: *size. */
int pb_mkv_measure(pb_clip_t *inner, int64_t duration_us, uint64_t *size);
/* Bytes of the Matroska clip at pos, muxing on demand; *run (NULL at first)
 * keeps the muxer between calls. -1 on error. */
long pb_mkv_read(pb_mkv_run_t **run, pb_clip_t *inner, int64_t duration_us, uint64_t pos,
                 char *buf, size_t max);
void pb_mkv_free(pb_mkv_run_t *run);

#endif
