/* Shared by the files of playback/ only: the module's state. */
#ifndef VG_PLAYBACK_PRIVATE_H
#define VG_PLAYBACK_PRIVATE_H

#include <pthread.h>
#include <stdint.h>

#include "archive/archive.h"
#include "playback/playback.h"

struct hls_cache;

/* A list in order of use, most recent first, for the byte-bounded caches
 * (peaks here, playlist lines in hls.c): each entry starts with its node,
 * so a node is its entry. The caller holds the cache's lock. */
typedef struct pb_lru_node {
    struct pb_lru_node *prev, *next;
} pb_lru_node_t;

typedef struct {
    pb_lru_node_t *head, *tail;
} pb_lru_t;

void pb_lru_unlink(pb_lru_t *l, pb_lru_node_t *n);
void pb_lru_front(pb_lru_t *l, pb_lru_node_t *n);

/* What a snapshot request already resolved to: (segment, time, width) ->
 * the frame's pts, so a repeated request opens the cached file without
 * demuxing. Direct-mapped, overwritten on collision. */
typedef struct {
    int64_t seg_id;
    char sha8[9];
    int64_t at_us;
    int width;
    int64_t pts;
    int file_width;  /* the width in the cached file's name (0: as recorded) */
    int used;
} pb_snap_memo_t;

#define PB_SNAP_MEMO 4096

struct pb {
    pb_config_t cfg;
    char *data_dir;
    pthread_mutex_t lock;        /* everything below */
    pb_lru_t peaks;              /* of peaks_entry_t (playback.c) */
    size_t peaks_bytes;
    int snap_running;            /* decodes in progress */
    int64_t snap_bytes;          /* size of the snapshot cache on disk */
    char *snap_dir;              /* data_dir/cache/snapshots */
    pb_snap_memo_t *memo;
    int transcode_running;       /* H.264 transcodes in progress */
    struct hls_cache *hls;       /* playlist text per segment (hls.c; own lock) */
    pthread_mutex_t media_lock;  /* media */
    void *media;                 /* segment rows of the media route (hls.c) */
};

/* One of the snapshot_workers decode slots (snapshots and peaks share
 * them): 1 when taken, 0 when all are busy. */
int pb_slot_take(pb_t *pb);
void pb_slot_give(pb_t *pb);

void pb_snap_init(pb_t *pb);
/* The fragment table of a live segment: from its stored blob, else read
 * from the file (and stored). *f malloc'd. */
int pb_segment_frags(idx_t *idx, const char *data_dir, int64_t segment_id, arc_frag_t **f,
                     size_t *n);
void pb_snap_free(pb_t *pb);

/* The playlist text cache (hls.c), made and freed with pb. */
void pb_hls_cache_init(pb_t *pb);
void pb_hls_cache_free(pb_t *pb);
/* The media route's segment rows (hls.c), made and freed with pb. */
void pb_media_memo_init(pb_t *pb);
void pb_media_memo_free(pb_t *pb);

/* A decoded frame as the snapshot route's JPEG (snapshot.c: mjpeg at q=3,
 * full range, scaled to out_w x out_h), into a malloc'd *jpeg; VG_OK or
 * VG_EMEDIA. bench/snapfloor.c times the same call. */
struct AVFrame;
int pb_jpeg_encode(const struct AVFrame *src, int out_w, int out_h, int threads,
                   uint8_t **jpeg, size_t *len);

#endif
