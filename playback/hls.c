/* HLS over the stored files (DESIGN.md "Storage"): a VOD playlist whose
 * media are byte ranges of the segment files, named from the fragment
 * tables the index keeps, and the opening of one stored file for the media
 * route. A segment without a table (recovered, or indexed before schema
 * v13) has its file's box headers read once and the table stored. */
#include "playback/playback.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive.h"
#include "core/clock.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"
#include "playback/playback_private.h"

#define MAX_INIT_READ (1024 * 1024)

typedef struct {
    char *p;
    size_t len, cap;
} buf_t;

static void bneed(buf_t *b, size_t n)
{
    if (b->len + n <= b->cap)
        return;
    while (b->len + n > b->cap)
        b->cap = b->cap ? b->cap * 2 : 64 * 1024;
    b->p = vg_realloc(b->p, b->cap);
}

__attribute__((format(printf, 2, 3))) static void bprintf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        bneed(b, (size_t)n + 1);
    }
}

/* The per-fragment lines are most of a 24 h playlist (about 40,000 of
 * them): written with these rather than vsnprintf, which parsing its
 * format and formatting a double made the larger part of the answer's
 * time. */
static void bput(buf_t *b, const char *s, size_t n)
{
    bneed(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

#define BLIT(b, s) bput((b), (s), sizeof(s) - 1)

static void bu64(buf_t *b, uint64_t v)
{
    char t[24];
    size_t i = sizeof(t);
    do {
        t[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    bput(b, t + i, sizeof(t) - i);
}

static void bi64(buf_t *b, int64_t v)
{
    if (v < 0) {
        BLIT(b, "-");
        bu64(b, (uint64_t)0 - (uint64_t)v);
        return;
    }
    bu64(b, (uint64_t)v);
}

/* Microseconds as seconds with three decimals, as EXTINF has them. Cut to
 * the millisecond, not rounded: what is written never rounds to more
 * seconds than the target duration (the longest fragment, rounded). */
static void bseconds(buf_t *b, int64_t us)
{
    if (us < 0)
        us = 0;
    uint64_t ms = (uint64_t)us / 1000;
    char frac[4] = {'.', (char)('0' + ms % 1000 / 100), (char)('0' + ms % 100 / 10),
                    (char)('0' + ms % 10)};
    bu64(b, ms / 1000);
    bput(b, frac, 4);
}

static char *abs_path(const char *data_dir, const char *rel)
{
    return vg_asprintf("%s/%s", data_dir, rel);
}

/* The fragment table of seg: from its blob, else from the file (then
 * stored for next time). */
static int segment_frags(idx_t *idx, const char *data_dir, const idx_segment_frags_t *s,
                         arc_frag_t **f, size_t *n)
{
    if (s->frags && arc_frags_decode(s->frags, s->frags_len, f, n) == VG_OK && *n > 0)
        return VG_OK;
    char *path = abs_path(data_dir, s->seg.path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0)
        return VG_ENOTFOUND;
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? arc_frags_scan(fd, st.st_size, NULL, f, n) : VG_EIO;
    close(fd);
    if (rc != VG_OK) {
        vg_warn("playback: segment %" PRId64 " (%s): cannot read its fragments (%s)", s->seg.id,
                s->seg.path, vg_strerror(rc));
        return rc;
    }
    uint8_t *blob = NULL;
    size_t len = 0;
    if (arc_frags_encode(*f, *n, &blob, &len) == VG_OK)
        idx_frags_put(idx, s->seg.id, blob, len); /* best effort: read again next time */
    free(blob);
    return VG_OK;
}

int pb_segment_frags(idx_t *idx, const char *data_dir, int64_t segment_id, arc_frag_t **f,
                     size_t *n)
{
    idx_segment_frags_t s;
    int rc = idx_segment_get(idx, segment_id, &s);
    if (rc != VG_OK)
        return rc;
    rc = segment_frags(idx, data_dir, &s, f, n);
    free(s.frags);
    return rc;
}

/* HEVC files are named through the relabelling init route: it serves hvc1
 * where the stored init says hev1 with its parameter sets in hvcC, and the
 * stored bytes otherwise, so the playlist need not open the file to know. */
static int wants_hvc1(const idx_segment_t *seg)
{
    return strstr(seg->codecs, "hevc") != NULL;
}

static void program_date_time(buf_t *b, int64_t us)
{
    time_t secs = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char day[32];
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);
    bprintf(b, "#EXT-X-PROGRAM-DATE-TIME:%s.%03dZ\n", day, (int)(us % 1000000 / 1000));
}

/* ---- the playlist cache ----
 * A closed segment's lines never change (its row and fragment table are
 * written once; retention only deletes), and a 24 h playlist is ~86,000
 * fragments of them (5 MB): so the lines of a segment listed whole (its
 * init part, its date-time and every fragment) are kept, keyed by the row's
 * fields they come from and the conversion asked for, and a playlist is
 * mostly their concatenation, copied once into an answer of exactly its
 * size (growing a buffer of megabytes cost more than writing the lines:
 * copies and page faults). A deleted segment is no longer in the range
 * query's answer, so its text is never used again and ages out; a reused id
 * comes with another hash and start. LRU, bounded in bytes; an entry in use
 * by a playlist being assembled is freed by its last user. */

/* 64 MiB holds ~19,000 entries of 60 s files, ~200,000 of 2 s ones: chains
 * stay short either way (512 KiB of heads). */
#define HLS_BUCKETS 65536

typedef struct hls_entry {
    pb_lru_node_t lru;       /* first: the node is the entry */
    struct hls_entry *chain; /* same bucket */
    int refs;                      /* the cache's (while listed) and users' */
    int64_t seg_id, start_us, init_bytes;
    char sha256[65];
    unsigned conv;
    int hvc1;
    /* Whether the range takes the segment whole (use_whole): the earliest
     * start of a keyframe fragment other than the first (INT64_MAX: none)
     * and the latest start of any fragment, absolute */
    int64_t key2_us, last_us;
    int64_t max_dur;
    int all_key;
    size_t n_frags, len;
    char text[];
} hls_entry_t;

struct hls_cache {
    pthread_mutex_t lock;
    hls_entry_t *bucket[HLS_BUCKETS];
    pb_lru_t lru;
    size_t bytes, max;
};

void pb_hls_cache_init(pb_t *pb)
{
    if (!pb->cfg.playlist_cache_bytes)
        return;
    pb->hls = vg_calloc(1, sizeof(*pb->hls));
    pthread_mutex_init(&pb->hls->lock, NULL);
    pb->hls->max = pb->cfg.playlist_cache_bytes;
}

void pb_hls_cache_free(pb_t *pb)
{
    struct hls_cache *c = pb->hls;
    if (!c)
        return;
    for (pb_lru_node_t *n = c->lru.head, *next; n; n = next) {
        next = n->next;
        free(n);
    }
    pthread_mutex_destroy(&c->lock);
    free(c);
    pb->hls = NULL;
}

static size_t hls_bucket(int64_t seg_id, unsigned conv)
{
    uint64_t h = ((uint64_t)seg_id * 0x9E3779B97F4A7C15ULL) ^ conv;
    return (size_t)(h >> 32) % HLS_BUCKETS;
}

static int hls_same(const hls_entry_t *e, const idx_segment_t *seg, unsigned conv, int hvc1)
{
    return e->seg_id == seg->id && e->conv == conv && e->hvc1 == hvc1 &&
           e->start_us == seg->start_us && e->init_bytes == seg->init_bytes &&
           strcmp(e->sha256, seg->sha256) == 0;
}

/* Takes e out of the cache; freed now unless a playlist still uses it.
 * lock held. */
static void hls_drop(struct hls_cache *c, hls_entry_t *e)
{
    hls_entry_t **pp = &c->bucket[hls_bucket(e->seg_id, e->conv)];
    while (*pp && *pp != e)
        pp = &(*pp)->chain;
    if (*pp)
        *pp = e->chain;
    pb_lru_unlink(&c->lru, &e->lru);
    c->bytes -= sizeof(hls_entry_t) + e->len;
    if (--e->refs == 0)
        free(e);
}

/* 1 when the fragment loop of pb_playlist would list every fragment of the
 * segment: no later keyframe fragment starts at or before from_us and none
 * starts at or after to_us. */
static int use_whole(const hls_entry_t *e, int64_t from_us, int64_t to_us)
{
    return e->n_frags > 0 && e->key2_us > from_us && e->last_us < to_us;
}

/* The cached lines of seg, if there and the range takes it whole: a
 * reference the caller gives back through pieces_free. */
static hls_entry_t *hls_get(struct hls_cache *c, const idx_segment_t *seg, unsigned conv,
                            int hvc1, int64_t from_us, int64_t to_us)
{
    hls_entry_t *hit = NULL;
    pthread_mutex_lock(&c->lock);
    for (hls_entry_t *e = c->bucket[hls_bucket(seg->id, conv)]; e; e = e->chain) {
        if (!hls_same(e, seg, conv, hvc1))
            continue;
        if (use_whole(e, from_us, to_us)) {
            e->refs++;
            pb_lru_unlink(&c->lru, &e->lru);
            pb_lru_front(&c->lru, &e->lru);
            hit = e;
        }
        break;
    }
    pthread_mutex_unlock(&c->lock);
    return hit;
}

/* Keeps text with the figures of fig: the new entry, with a reference for
 * the caller, or NULL when it is too large to keep. */
static hls_entry_t *hls_put(struct hls_cache *c, const hls_entry_t *fig, const char *text,
                            size_t len)
{
    size_t cost = sizeof(hls_entry_t) + len;
    if (cost > c->max / 8)
        return NULL; /* one segment must not take the cache */
    hls_entry_t *n = vg_malloc(cost);
    *n = *fig;
    n->lru.prev = n->lru.next = NULL;
    n->chain = NULL;
    n->refs = 2;
    n->len = len;
    memcpy(n->text, text, len);
    pthread_mutex_lock(&c->lock);
    for (hls_entry_t *e = c->bucket[hls_bucket(n->seg_id, n->conv)]; e; e = e->chain) {
        if (e->seg_id == n->seg_id && e->conv == n->conv && e->hvc1 == n->hvc1) {
            /* another request made it meanwhile, or the row is not the
             * one it was made from: the newer replaces it */
            hls_drop(c, e);
            break;
        }
    }
    hls_entry_t **head = &c->bucket[hls_bucket(n->seg_id, n->conv)];
    n->chain = *head;
    *head = n;
    pb_lru_front(&c->lru, &n->lru);
    c->bytes += cost;
    while (c->bytes > c->max && c->lru.tail != &n->lru)
        hls_drop(c, (hls_entry_t *)c->lru.tail);
    pthread_mutex_unlock(&c->lock);
    return n;
}

/* The lines of fragments [first, last) of s (its init part and date-time
 * first), with the figures the playlist's head needs in fig. */
static void segment_lines(buf_t *b, const idx_segment_frags_t *s, const arc_frag_t *f,
                          size_t first, size_t last, unsigned conv, int hvc1, hls_entry_t *fig)
{
    /* What a browser cannot play as stored is named through converted
     * URIs: one per fragment, built on request (pb_convert). */
    char q[32];
    pb_convert_query(conv, q, sizeof(q));
    size_t q_len = strlen(q);
    char id[24];
    size_t id_len = (size_t)snprintf(id, sizeof(id), "%" PRId64, s->seg.id);
    if (conv)
        bprintf(b, "#EXT-X-MAP:URI=\"media/%" PRId64 "?%s\"\n", s->seg.id, q);
    else
        bprintf(b, "#EXT-X-MAP:URI=\"media/%" PRId64 "%s\",BYTERANGE=\"%" PRId64 "@0\"\n",
                s->seg.id, hvc1 ? "?init=hvc1" : "", s->seg.init_bytes);
    program_date_time(b, s->seg.start_us + f[first].start_us);
    fig->max_dur = 0;
    fig->all_key = 1;
    for (size_t k = first; k < last; k++) {
        if (!f[k].key)
            fig->all_key = 0;
        if (f[k].dur_us > fig->max_dur)
            fig->max_dur = f[k].dur_us;
        BLIT(b, "#EXTINF:");
        bseconds(b, f[k].dur_us);
        if (conv) {
            BLIT(b, ",\nmedia/");
            bput(b, id, id_len);
            BLIT(b, "?");
            bput(b, q, q_len);
            BLIT(b, "&frag=");
            bi64(b, (int64_t)k);
            BLIT(b, "\n");
        } else {
            BLIT(b, ",\n#EXT-X-BYTERANGE:");
            bi64(b, f[k].size);
            BLIT(b, "@");
            bi64(b, f[k].offset);
            BLIT(b, "\nmedia/");
            bput(b, id, id_len);
            BLIT(b, "\n");
        }
    }
    fig->n_frags = last - first;
}

/* One listed segment's lines: a cached entry's, or made for this answer. */
typedef struct {
    const char *text;
    size_t len;
    hls_entry_t *ref;
    char *own;
} piece_t;

/* The lines of s for [from_us, to_us) into *pc, with their figures in fig;
 * VG_ENOTFOUND when it lists nothing (unreadable, or no fragment in the
 * range). */
static int segment_piece(struct hls_cache *cache, idx_t *idx, const char *data_dir,
                         const idx_segment_frags_t *s, unsigned conv, int hvc1, int64_t from_us,
                         int64_t to_us, piece_t *pc, hls_entry_t *fig)
{
    /* A row without its table is read from the file and the table stored
     * (segment_frags), cached lines or not. */
    hls_entry_t *e =
        cache && s->frags ? hls_get(cache, &s->seg, conv, hvc1, from_us, to_us) : NULL;
    if (e) {
        *fig = *e;
        *pc = (piece_t){.text = e->text, .len = e->len, .ref = e};
        return VG_OK;
    }
    arc_frag_t *f = NULL;
    size_t nf = 0, first = 0, last;
    if (segment_frags(idx, data_dir, s, &f, &nf) != VG_OK)
        return VG_ENOTFOUND; /* unreadable: left out, a gap */
    /* From the keyframe fragment at or before from_us, to the last one
     * starting before to_us. */
    last = nf;
    memset(fig, 0, sizeof(*fig));
    fig->key2_us = INT64_MAX;
    for (size_t k = 0; k < nf; k++) {
        int64_t start = s->seg.start_us + f[k].start_us;
        if (start <= from_us && f[k].key)
            first = k;
        if (start >= to_us && last == nf)
            last = k;
        if (k > 0 && f[k].key && start < fig->key2_us)
            fig->key2_us = start;
        if (k == 0 || start > fig->last_us)
            fig->last_us = start;
    }
    if (first >= last) {
        free(f);
        return VG_ENOTFOUND;
    }
    buf_t b = {0};
    segment_lines(&b, s, f, first, last, conv, hvc1, fig);
    free(f);
    if (cache && first == 0 && last == nf) {
        fig->seg_id = s->seg.id;
        fig->start_us = s->seg.start_us;
        fig->init_bytes = s->seg.init_bytes;
        snprintf(fig->sha256, sizeof(fig->sha256), "%s", s->seg.sha256);
        fig->conv = conv;
        fig->hvc1 = hvc1;
        e = hls_put(cache, fig, b.p, b.len);
    }
    if (e) {
        free(b.p);
        *pc = (piece_t){.text = e->text, .len = e->len, .ref = e};
    } else {
        *pc = (piece_t){.text = b.p, .len = b.len, .own = b.p};
    }
    return VG_OK;
}

static void pieces_free(struct hls_cache *cache, piece_t *pc, size_t n)
{
    if (cache)
        pthread_mutex_lock(&cache->lock);
    for (size_t i = 0; i < n; i++) {
        if (pc[i].ref && --pc[i].ref->refs == 0)
            free(pc[i].ref);
        free(pc[i].own);
    }
    if (cache)
        pthread_mutex_unlock(&cache->lock);
    free(pc);
}

#define DISCONTINUITY "#EXT-X-DISCONTINUITY\n"
#define ENDLIST "#EXT-X-ENDLIST\n"

int pb_playlist(pb_t *pb, idx_t *idx, const char *data_dir, const char *source, int64_t from_us,
                int64_t to_us, unsigned wanted, char **out, size_t *len, size_t *n_segments)
{
    if (!idx || !data_dir || !source || !out || !len || to_us <= from_us)
        return VG_EINVAL;
    *out = NULL;
    *len = 0;
    if (n_segments)
        *n_segments = 0;
    struct hls_cache *cache = pb ? pb->hls : NULL;
    idx_segment_frags_t *segs = NULL;
    size_t n = 0;
    int rc = idx_segments_frags_in_range(idx, source, from_us, to_us, PB_PLAYLIST_MAX_SEGMENTS,
                                         &segs, &n);
    if (rc != VG_OK)
        return rc;
    piece_t *pc = vg_calloc(n ? n : 1, sizeof(*pc));
    size_t n_pc = 0, listed = 0, body_len = 0;
    int64_t max_dur = 0;
    int all_key = 1;
    for (size_t i = 0; i < n; i++) {
        const idx_segment_frags_t *s = &segs[i];
        unsigned conv = pb_convert_for(s->seg.codecs, wanted);
        int hvc1 = !(conv & PB_CONV_H264) && wants_hvc1(&s->seg);
        hls_entry_t fig;
        if (segment_piece(cache, idx, data_dir, s, conv, hvc1, from_us, to_us, &pc[n_pc],
                          &fig) != VG_OK)
            continue;
        body_len += pc[n_pc++].len;
        listed += fig.n_frags;
        if (listed > PB_PLAYLIST_MAX_FRAGMENTS) {
            rc = VG_EINVAL; /* the answer would be too large */
            break;
        }
        if (!fig.all_key)
            all_key = 0;
        if (fig.max_dur > max_dur)
            max_dur = fig.max_dur;
    }
    idx_segment_frags_free(segs, n);
    if (rc != VG_OK) {
        pieces_free(cache, pc, n_pc);
        return rc;
    }
    /* EXTINF rounded to the nearest second must not exceed the target. */
    int64_t target = (max_dur + 500000) / 1000000;
    if (target < 1)
        target = 1;
    buf_t head = {0};
    bprintf(&head, "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-PLAYLIST-TYPE:VOD\n"
                   "#EXT-X-TARGETDURATION:%" PRId64 "\n#EXT-X-MEDIA-SEQUENCE:0\n",
            target);
    /* Only true when every fragment listed starts on a keyframe (a cut forced
     * by fragment_max_seconds does not). */
    if (all_key)
        bprintf(&head, "#EXT-X-INDEPENDENT-SEGMENTS\n");
    /* Each file after the first: its timestamps start anew, maybe with
     * other codecs, maybe after a gap. */
    size_t total = head.len + body_len + (n_pc ? n_pc - 1 : 0) * (sizeof(DISCONTINUITY) - 1) +
                   sizeof(ENDLIST) - 1;
    buf_t b = {.p = vg_malloc(total), .cap = total};
    bput(&b, head.p, head.len);
    free(head.p);
    for (size_t i = 0; i < n_pc; i++) {
        if (i > 0)
            BLIT(&b, DISCONTINUITY);
        bput(&b, pc[i].text, pc[i].len);
    }
    BLIT(&b, ENDLIST);
    pieces_free(cache, pc, n_pc);
    if (n_segments)
        *n_segments = n_pc;
    *out = b.p;
    *len = b.len;
    return VG_OK;
}

/* ---- segment rows of the media route ----
 * A player asks for one fragment every second or two, many per segment;
 * the row (path, sha256, source) is read once and kept while the index has
 * not changed (idx_watch_gen: any commit, a deletion's mark included, drops
 * it) and for at most MEDIA_TTL_US. The file is opened for every request,
 * so a deleted file is a 404 at once. Direct-mapped by id. */
#define MEDIA_SLOTS 1024
#define MEDIA_TTL_US 1000000LL

typedef struct {
    uint64_t gen;  /* 0: empty */
    int64_t at_us; /* the system's monotonic clock when read */
    idx_segment_t seg;
} media_memo_t;

void pb_media_memo_init(pb_t *pb)
{
    pthread_mutex_init(&pb->media_lock, NULL);
    pb->media = vg_calloc(MEDIA_SLOTS, sizeof(media_memo_t));
}

void pb_media_memo_free(pb_t *pb)
{
    pthread_mutex_destroy(&pb->media_lock);
    free(pb->media);
}

static int media_memo_get(pb_t *pb, uint64_t gen, int64_t id, idx_segment_t *out)
{
    if (!pb || !gen)
        return 0;
    int hit = 0;
    int64_t now = vg_clock_mono(&vg_system_clock);
    pthread_mutex_lock(&pb->media_lock);
    const media_memo_t *e = (const media_memo_t *)pb->media + (uint64_t)id % MEDIA_SLOTS;
    if (e->gen == gen && e->seg.id == id && now - e->at_us < MEDIA_TTL_US) {
        *out = e->seg;
        hit = 1;
    }
    pthread_mutex_unlock(&pb->media_lock);
    return hit;
}

static void media_memo_put(pb_t *pb, uint64_t gen, const idx_segment_t *seg)
{
    if (!pb || !gen)
        return;
    int64_t now = vg_clock_mono(&vg_system_clock);
    pthread_mutex_lock(&pb->media_lock);
    media_memo_t *e = (media_memo_t *)pb->media + (uint64_t)seg->id % MEDIA_SLOTS;
    e->gen = gen;
    e->at_us = now;
    e->seg = *seg;
    pthread_mutex_unlock(&pb->media_lock);
}

int pb_media_open(pb_t *pb, uint64_t gen, idx_t *idx, const char *data_dir, const char *source,
                  int64_t segment_id, pb_media_t *m)
{
    if (!idx || !data_dir || !source || !m)
        return VG_EINVAL;
    memset(m, 0, sizeof(*m));
    m->fd = -1;
    if (!media_memo_get(pb, gen, segment_id, &m->seg)) {
        idx_segment_frags_t s;
        int rc = idx_segment_get(idx, segment_id, &s);
        if (rc != VG_OK)
            return rc;
        free(s.frags);
        m->seg = s.seg;
        media_memo_put(pb, gen, &m->seg);
    }
    if (strcmp(m->seg.source, source) != 0)
        return VG_ENOTFOUND; /* another source's: as if it did not exist */
    char *path = abs_path(data_dir, m->seg.path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0)
        return VG_ENOTFOUND;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return VG_EIO;
    }
    m->fd = fd;
    m->size = (uint64_t)st.st_size;
    return VG_OK;
}

int pb_media_hvc1_at(const pb_media_t *m, uint64_t *at)
{
    if (!m || m->fd < 0 || !at || m->seg.init_bytes <= 0 || m->seg.init_bytes > MAX_INIT_READ ||
        (uint64_t)m->seg.init_bytes > m->size)
        return VG_ENOTFOUND;
    uint8_t *init = vg_malloc((size_t)m->seg.init_bytes);
    size_t pos = 0;
    int rc = pread(m->fd, init, (size_t)m->seg.init_bytes, 0) == (ssize_t)m->seg.init_bytes
                 ? arc_init_hev1_at(init, (size_t)m->seg.init_bytes, &pos)
                 : VG_EIO;
    free(init);
    if (rc == VG_OK)
        *at = pos;
    return rc;
}

long pb_media_read_hvc1(const pb_media_t *m, uint64_t hvc1_at, uint64_t pos, char *buf,
                        size_t max)
{
    ssize_t r = pread(m->fd, buf, max, (off_t)pos);
    if (r <= 0)
        return -1;
    /* The 4 bytes of the sample entry's type, wherever they fall in buf. */
    static const char hvc1[4] = {'h', 'v', 'c', '1'};
    for (uint64_t k = 0; k < 4; k++) {
        uint64_t at = hvc1_at + k;
        if (at >= pos && at < pos + (uint64_t)r)
            buf[at - pos] = hvc1[k];
    }
    return (long)r;
}
