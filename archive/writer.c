/* Segment writer: turns one source's packets into fragmented MP4/MOV segment
 * files and commits each finished file to the index.
 *
 * Packets are copied, never decoded (invariant 5). Each stream holds back one
 * packet so its duration can be taken from the next packet's DTS: segments
 * then last exactly from their first keyframe to the keyframe that starts the
 * next one, and a fragment is flushed right before each keyframe, so every
 * fragment starts on a keyframe and a crash loses at most the last one. */
#include "archive.h"
#include "archive_private.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <nettle/sha2.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define MAX_STREAMS 8
/* Bound on audio waiting for the cut: 5 s of 20 ms packets. */
#define MAX_PENDING 256
#define AVIO_BUFFER_SIZE (64 * 1024)
/* Audio-only sources have no keyframes to cut on: flush a fragment this often. */
#define AUDIO_FRAGMENT_US 1000000
/* A stream's DTS moving back more than this, or forward more than this, is a
 * discontinuity (camera clock reset, RTCP resync), not jitter: the stream is
 * re-based to continue where it was instead of being clamped tick by tick. */
#define JUMP_BACK_US 1000000
#define JUMP_FORWARD_US 10000000
/* After a failed segment (disk full, I/O error) wait this long before the next. */
#define RETRY_AFTER_ERROR_US (5 * 1000000)
/* Closed segments waiting for the finisher. Full, the source's thread waits:
 * nothing is dropped, and the wait is logged. */
#define FINISH_QUEUE_MAX 16
/* Rows waiting for the index keep their file's descriptor (and its lock, so
 * vigilctl check sees a file in progress, not an orphan) up to this many;
 * beyond, the file is closed and only the row waits. */
#define ROW_QUEUE_KEEP_FD 8
/* Rows kept in memory while the index fails (a row is about 600 bytes: 4096
 * are 2.4 MB per source, over two hours of 2 s segments). Past this bound a
 * row is left to reconcile at the next start, its file untouched: the bound
 * costs an index row for a while, never media. */
#define ROW_QUEUE_MAX 4096
#define ROW_RETRY_MIN_US 250000
#define ROW_RETRY_MAX_US (5 * 1000000)

/* What the finisher still owes a segment: its data, the directory entry of
 * the file, the entries of directories created for it. */
enum { SYNC_DATA = 1, SYNC_DIR = 2, SYNC_TREE = 4 };

typedef struct segment {
    AVFormatContext *oc;
    AVIOContext *pb;
    int fd;
    char *rel_path;
    char *abs_path;
    /* nettle: SHA-NI where the CPU has it, ~3.5x libavutil's SHA-256. */
    struct sha256_ctx sha;
    int64_t bytes;
    int io_error;          /* VG_E* seen by the write callback */
    int64_t init_bytes;
    int64_t base_us;       /* input DTS (µs) of the first keyframe: media time 0 */
    int64_t target_us;     /* rotate at the first keyframe at or after this */
    int64_t last_flush_us; /* media time of the last fragment flush */
    /* Smallest (receive time - connection media time) seen among this
     * segment's primary packets: network delay only ever adds, so the minimum
     * is the best estimate of when the media clock's zero passed on the wall
     * clock. INT64_MAX until a packet is seen. */
    int64_t min_offset_us;
    int provisional_start; /* this segment started the connection's timeline */
    /* Its place on the wall clock, fixed when its media ends (close_timeline). */
    int64_t row_start_us, row_end_us, media_us;

    /* Set when the segment is handed to the finisher, read there only. */
    struct segment *next;
    int fail_rc;          /* non-zero: it failed midway, salvage it */
    char codecs[64];
    char *final_rel, *final_abs; /* refine_start's new name, renamed by the finisher */
    /* Written by the finisher while the source's thread still writes: an
     * fdatasync of the open file failed. The source's thread then closes the
     * segment and goes on in a new file. */
    atomic_int io_failed;
    int unverified;       /* finisher only: a write, fsync, rename or dir fsync failed */
    int want_sync;        /* SYNC_*, under q_lock while the segment is open */
    /* The fragment table (archive/frags.c), noted as each fragment is cut:
     * file offsets before and after the flush, media times from the cuts.
     * Stored with the row, so playback never parses the file. */
    arc_frag_t *frags;
    size_t n_frags, cap_frags;
    int frags_lost;       /* more than ARC_FRAGS_MAX: no table (playback reads the file) */
    int64_t frag_offset;  /* where the next fragment starts in the file */
    int next_key;         /* the next fragment starts on a keyframe */
} segment_t;

/* A finished, durable file waiting for its index row. */
typedef struct row_job {
    struct row_job *next;
    idx_segment_t row;
    uint8_t *frags; /* the packed fragment table, or NULL */
    size_t frags_len;
    int fd; /* kept open (and locked) while it waits, or -1 */
} row_job_t;

struct arc_writer {
    char *data_dir;
    char *source;
    int segment_seconds;
    int stagger_slot, stagger_slots;
    const vg_clock_t *clock;
    idx_t *idx;

    /* The current connection's streams. out_index[i] < 0: stream i not kept. */
    unsigned n_in;
    int out_index[MAX_STREAMS];
    AVCodecParameters *par[MAX_STREAMS];
    AVRational tb[MAX_STREAMS];
    int n_out;
    int primary;          /* input index of the stream segments are cut on */
    int primary_is_video;
    const char *format;   /* "mp4" or "mov" */
    char codecs[64];
    int connected;
    int first_segment;    /* the next segment is the connection's first */
    vg_timeline_t timeline;
    int64_t conn_zero_us; /* primary DTS (µs) of the connection's first packet */

    /* DTS repair state per input stream, in the stream's time base. */
    int64_t last_dts[MAX_STREAMS];
    int64_t last_duration[MAX_STREAMS];
    int64_t ts_offset[MAX_STREAMS]; /* added to incoming timestamps after a jump */
    AVPacket *held[MAX_STREAMS];
    int repaired_warned;
    int64_t conn_packets; /* packets since the connection began */

    segment_t *seg;
    /* The previous segment, kept open after a cut until every other stream
     * has passed the cut: audio travels separately from video over RTSP and
     * its last packets before the cut arrive after the cutting keyframe. */
    segment_t *closing;
    /* Audio that arrives ahead of the video: packets past the segment's
     * target length wait here until the cutting keyframe says which side of
     * the cut they belong to. */
    AVPacket *pending[MAX_PENDING];
    int n_pending;
    int64_t retry_after_mono_us;
    arc_writer_stats_t stats; /* written by the writer's thread under stats_lock */
    pthread_mutex_t stats_lock;

    /* Set from the retention thread; read by the writer's own thread. */
    atomic_int paused;
    atomic_llong open_bytes; /* size of the segment being written */

    int64_t sync_us;            /* fdatasync the open segment at least this often */
    int64_t last_sync_mono_us;  /* when the last sync was asked for */
    int64_t last_flush_mono_us; /* when the last fragment was cut */
    int64_t alarm_hold_us;      /* storage_io_error's least life */
    int64_t io_error_mono_us;   /* when the disk last reported an error (stats_lock) */
    int64_t fragment_max_us;    /* cut a fragment this long after the last */
    int64_t fragment_max_bytes; /* or once this much waits in the muxer */
    int64_t fragment_bytes;     /* packet bytes since the last fragment cut */

    /* Finisher and committer (see the top of the file), under q_lock. */
    pthread_mutex_t q_lock;
    pthread_cond_t fin_wake, fin_space, row_wake, drained;
    segment_t *fin_head, *fin_tail;
    int fin_len;
    int fin_busy;             /* the finisher is working on a job */
    segment_t *sync_target;   /* the open segment, for periodic syncs */
    int fin_stop, row_stop;
    row_job_t *row_head, *row_tail;
    int row_len;
    int row_attempted;        /* the head row was tried at least once */
    int64_t rows_dropped;     /* left to reconcile: the queue was full */
    pthread_t finisher, committer;
    int threads_started;
};

static void start_thread(pthread_t *t, void *(*fn)(void *), arc_writer_t *w, const char *what);
static void *finisher_main(void *arg);
static void *committer_main(void *arg);

static int64_t to_us(int64_t ts, AVRational tb)
{
    return av_rescale_q(ts, tb, AV_TIME_BASE_Q);
}

static int64_t from_us(int64_t us, AVRational tb)
{
    return av_rescale_q(us, AV_TIME_BASE_Q, tb);
}

int arc_writer_open(const arc_writer_config_t *cfg, arc_writer_t **out)
{
    if (cfg->segment_seconds < 1 || !cfg->idx || !cfg->clock)
        return VG_EINVAL;
    arc_writer_t *w = vg_calloc(1, sizeof(*w));
    w->data_dir = vg_strdup(cfg->data_dir);
    w->source = vg_strdup(cfg->source);
    w->segment_seconds = cfg->segment_seconds;
    w->stagger_slots = cfg->stagger_slots > 0 ? cfg->stagger_slots : 1;
    w->stagger_slot = cfg->stagger_slot % w->stagger_slots;
    w->clock = cfg->clock;
    w->idx = cfg->idx;
    w->primary = -1;
    w->sync_us = (int64_t)(cfg->sync_seconds > 0 ? cfg->sync_seconds : 5) * 1000000;
    w->alarm_hold_us = (int64_t)(cfg->alarm_hold_seconds > 0 ? cfg->alarm_hold_seconds : 300) *
                       1000000;
    w->fragment_max_us =
        (int64_t)(cfg->fragment_max_seconds > 0 ? cfg->fragment_max_seconds : 4) * 1000000;
    w->fragment_max_bytes =
        cfg->fragment_max_bytes > 0 ? cfg->fragment_max_bytes : 16 * 1024 * 1024;
    pthread_mutex_init(&w->stats_lock, NULL);
    pthread_mutex_init(&w->q_lock, NULL);
    pthread_cond_init(&w->fin_wake, NULL);
    pthread_cond_init(&w->fin_space, NULL);
    pthread_cond_init(&w->row_wake, NULL);
    pthread_cond_init(&w->drained, NULL);
    start_thread(&w->finisher, finisher_main, w, "fin");
    start_thread(&w->committer, committer_main, w, "idx");
    w->threads_started = 1;
    *out = w;
    return VG_OK;
}

/* ---- choosing streams and container ---- */

static int container_takes_all(const char *format, AVCodecParameters *const *par, unsigned n,
                               const int *keep)
{
    const AVOutputFormat *fmt = av_guess_format(format, NULL, NULL);
    for (unsigned i = 0; i < n; i++) {
        if (keep[i] >= 0 && avformat_query_codec(fmt, par[i]->codec_id, FF_COMPLIANCE_NORMAL) != 1)
            return 0;
    }
    return 1;
}

static void forget_streams(arc_writer_t *w)
{
    for (unsigned i = 0; i < MAX_STREAMS; i++) {
        avcodec_parameters_free(&w->par[i]);
        av_packet_free(&w->held[i]);
    }
    w->n_in = 0;
    w->n_out = 0;
    w->primary = -1;
    w->connected = 0;
}

/* Keeps audio and video streams; picks the first video stream (else the first
 * audio one) as the stream segments are cut on. */
static int pick_streams(arc_writer_t *w)
{
    w->primary = -1;
    w->n_out = 0;
    w->codecs[0] = '\0';
    for (unsigned i = 0; i < w->n_in; i++) {
        enum AVMediaType type = w->par[i]->codec_type;
        w->out_index[i] = -1;
        if (type != AVMEDIA_TYPE_VIDEO && type != AVMEDIA_TYPE_AUDIO)
            continue;
        w->out_index[i] = w->n_out++;
        if (type == AVMEDIA_TYPE_VIDEO && (w->primary < 0 || !w->primary_is_video)) {
            if (w->primary < 0 || w->par[w->primary]->codec_type != AVMEDIA_TYPE_VIDEO)
                w->primary = (int)i;
        } else if (w->primary < 0) {
            w->primary = (int)i;
        }
        vg_list_append(w->codecs, sizeof(w->codecs), avcodec_get_name(w->par[i]->codec_id));
    }
    if (w->primary < 0)
        return VG_EMEDIA;
    w->primary_is_video = w->par[w->primary]->codec_type == AVMEDIA_TYPE_VIDEO;
    if (container_takes_all("mp4", w->par, w->n_in, w->out_index))
        w->format = "mp4";
    else if (container_takes_all("mov", w->par, w->n_in, w->out_index))
        w->format = "mov";
    else
        return VG_EMEDIA;
    return VG_OK;
}

int arc_writer_begin(arc_writer_t *w, AVStream *const *streams, unsigned n_streams)
{
    arc_writer_end(w);
    forget_streams(w);
    if (n_streams == 0 || n_streams > MAX_STREAMS) {
        vg_err("source=%s unsupported stream count %u", w->source, n_streams);
        return VG_EMEDIA;
    }
    w->n_in = n_streams;
    for (unsigned i = 0; i < n_streams; i++) {
        w->par[i] = avcodec_parameters_alloc();
        if (!w->par[i] || avcodec_parameters_copy(w->par[i], streams[i]->codecpar) < 0)
            abort(); /* allocation failure: see DESIGN.md convention 4 */
        w->tb[i] = streams[i]->time_base;
        w->last_dts[i] = AV_NOPTS_VALUE;
        w->last_duration[i] = 0;
        w->ts_offset[i] = 0;
    }
    int rc = pick_streams(w);
    if (rc != VG_OK) {
        vg_err("source=%s codecs '%s' cannot be stored (need a video or audio stream that MP4 "
               "or MOV can hold)", w->source, w->codecs);
        forget_streams(w);
        return rc;
    }
    w->connected = 1;
    w->first_segment = 1;
    w->timeline.started = 0;
    w->conn_zero_us = AV_NOPTS_VALUE;
    w->repaired_warned = 0;
    w->conn_packets = 0;
    vg_info("source=%s streams=%s container=%s", w->source, w->codecs, w->format);
    return VG_OK;
}

/* ---- the output file ---- */

/* AVIO write callback: every byte goes through the hash on its way to disk. */
static int segment_write(void *opaque, uint8_t *buf, int size)
{
    segment_t *s = opaque;
    if (s->io_error)
        return AVERROR(EIO);
    int rc = vg_write_all(s->fd, buf, (size_t)size);
    if (rc != VG_OK) {
        s->io_error = rc;
        return AVERROR(rc == VG_ENOSPC ? ENOSPC : EIO);
    }
    sha256_update(&s->sha, (size_t)size, buf);
    s->bytes += size;
    return size;
}

static void segment_free(segment_t *s)
{
    if (!s)
        return;
    if (s->oc)
        avformat_free_context(s->oc);
    if (s->pb) {
        av_freep(&s->pb->buffer);
        avio_context_free(&s->pb);
    }
    if (s->fd >= 0)
        close(s->fd);
    free(s->rel_path);
    free(s->abs_path);
    free(s->final_rel);
    free(s->final_abs);
    free(s->frags);
    free(s);
}

static int create_segment_file(arc_writer_t *w, segment_t *s, int64_t start_us)
{
    s->rel_path = arc_segment_rel_path(w->source, start_us, w->format);
    s->abs_path = vg_asprintf("%s/%s", w->data_dir, s->rel_path);
    /* Directories made here are synced by the finisher (SYNC_TREE). */
    int created = 0;
    int rc = arc_make_parent_dirs_ex(w->data_dir, s->rel_path, 0, &created);
    s->want_sync = created ? SYNC_TREE : 0;
    if (rc != VG_OK) {
        vg_err("source=%s cannot create directory for %s: %s", w->source, s->rel_path,
               strerror(errno));
        return rc;
    }
    s->fd = open(s->abs_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (s->fd < 0) {
        vg_err("source=%s cannot create %s: %s", w->source, s->rel_path, strerror(errno));
        return errno == ENOSPC ? VG_ENOSPC : VG_EIO;
    }
    /* The lock tells vigilctl check this file is being written, not orphaned;
     * the kernel drops it if we die, which is exactly when it becomes orphaned. */
    if (flock(s->fd, LOCK_EX | LOCK_NB) != 0)
        vg_warn("source=%s cannot lock %s: %s", w->source, s->rel_path, strerror(errno));
    return VG_OK;
}

static int add_output_streams(arc_writer_t *w, segment_t *s)
{
    for (unsigned i = 0; i < w->n_in; i++) {
        if (w->out_index[i] < 0)
            continue;
        AVStream *st = avformat_new_stream(s->oc, NULL);
        if (!st || avcodec_parameters_copy(st->codecpar, w->par[i]) < 0)
            abort();
        st->codecpar->codec_tag = 0;
        st->time_base = w->tb[i];
    }
    return VG_OK;
}

static int start_muxer(arc_writer_t *w, segment_t *s)
{
    int ret = avformat_alloc_output_context2(&s->oc, NULL, w->format, NULL);
    if (ret < 0)
        return VG_EMEDIA;
    unsigned char *buf = av_malloc(AVIO_BUFFER_SIZE);
    s->pb = avio_alloc_context(buf, AVIO_BUFFER_SIZE, 1, s, NULL, segment_write, NULL);
    if (!buf || !s->pb)
        abort();
    s->oc->pb = s->pb;
    /* No FLUSH_PACKETS: fragments are cut and flushed explicitly. */
    s->oc->flags |= AVFMT_FLAG_CUSTOM_IO;
    add_output_streams(w, s);
    AVDictionary *opts = NULL;
    /* frag_custom: we cut fragments ourselves, right before each keyframe.
     * A track's first packet keeps its time: the audio of a segment starts
     * a few ms after the keyframe at 0, and without edit lists (none in
     * fragmented files) the muxer would otherwise either move that packet
     * to 0 and lengthen it (avoid_negative_ts make_zero, its default here)
     * or shift the whole track. frag_discont makes the first fragment's
     * tfdt the packet's own DTS; timestamps are never negative here
     * (write_packet rebases on the first keyframe and drops what precedes
     * it), so no shift is needed either. */
    av_dict_set(&opts, "movflags", "+frag_custom+empty_moov+default_base_moof+frag_discont", 0);
    av_dict_set(&opts, "use_editlist", "0", 0);
    s->oc->avoid_negative_ts = AVFMT_AVOID_NEG_TS_MAKE_NON_NEGATIVE;
    ret = avformat_write_header(s->oc, &opts);
    av_dict_free(&opts);
    if (ret < 0) {
        vg_err("source=%s cannot start %s segment: %s", w->source, w->format, av_err2str(ret));
        return s->io_error ? s->io_error : VG_EMEDIA;
    }
    avio_flush(s->pb);
    if (s->io_error)
        return s->io_error;
    s->init_bytes = s->bytes; /* ftyp + moov: HLS addresses the rest by byte range */
    s->frag_offset = s->init_bytes;
    s->next_key = 1; /* a segment starts on a keyframe */
    return VG_OK;
}

static int64_t first_segment_target_us(const arc_writer_t *w)
{
    int64_t full = (int64_t)w->segment_seconds * 1000000;
    if (!w->first_segment)
        return full;
    /* Spread rotations of different sources over the segment length. */
    return full - full * w->stagger_slot / w->stagger_slots;
}

static int segment_open(arc_writer_t *w, int64_t base_us, int64_t recv_wall_us)
{
    segment_t *s = vg_calloc(1, sizeof(*s));
    s->fd = -1;
    s->min_offset_us = INT64_MAX;
    if (!w->timeline.started) {
        /* Provisional: packets buffered while the stream was probed arrive
         * in a burst and look late; the start is refined when the segment
         * ends (see refine_start). */
        vg_timeline_observe(&w->timeline, w->clock);
        vg_timeline_start(&w->timeline, recv_wall_us);
        s->provisional_start = 1;
    }
    sha256_init(&s->sha);
    s->base_us = base_us;
    s->target_us = first_segment_target_us(w);
    int rc = create_segment_file(w, s, w->timeline.next_start_us);
    if (rc == VG_OK)
        rc = start_muxer(w, s);
    if (rc != VG_OK) {
        /* Not even a header in it: no media is lost by removing it. */
        if (s->fd >= 0)
            unlink(s->abs_path);
        segment_free(s);
        return rc;
    }
    w->first_segment = 0;
    w->seg = s;
    w->fragment_bytes = 0;
    w->last_sync_mono_us = w->last_flush_mono_us = vg_clock_mono(w->clock);
    /* Its directory entry is made durable now, by the finisher (issue 12,
     * item 6): a power cut must not lose a file whose data was synced. */
    pthread_mutex_lock(&w->q_lock);
    w->sync_target = s;
    s->want_sync |= SYNC_DIR;
    pthread_cond_signal(&w->fin_wake);
    pthread_mutex_unlock(&w->q_lock);
    return VG_OK;
}

/* ---- packets ---- */

/* Writes a held packet into the open segment, rebased so the file starts at 0. */
static void discard_segment(arc_writer_t *w, segment_t *s, int rc);

/* Writes a held packet into the segment whose time span holds it (the open
 * one, or the closing one for late audio), rebased so each file starts at 0. */
static int write_packet(arc_writer_t *w, AVPacket *pkt)
{
    segment_t *s = w->seg;
    int in = pkt->stream_index;
    if (pkt->dts < from_us(s->base_us, w->tb[in])) {
        if (!w->closing)
            return VG_OK; /* before the first keyframe of a connection: no home */
        s = w->closing;
    }
    int64_t base = from_us(s->base_us, w->tb[in]);
    if (pkt->dts < base)
        return VG_OK;
    AVStream *st = s->oc->streams[w->out_index[in]];
    pkt->pts -= base;
    pkt->dts -= base;
    av_packet_rescale_ts(pkt, w->tb[in], st->time_base);
    pkt->stream_index = w->out_index[in];
    pkt->pos = -1;
    /* Interleaved: the MOV muxer derives fragment timing from the order of
     * packets across tracks, and misplaces a track's first samples if audio
     * runs ahead of the held-back video. */
    int ret = av_interleaved_write_frame(s->oc, pkt);
    if (ret < 0) {
        vg_err("source=%s write failed in %s: %s", w->source, s->rel_path, av_err2str(ret));
        int rc = s->io_error ? s->io_error : VG_EMEDIA;
        if (s != w->closing)
            return rc;
        w->closing = NULL; /* only the closing file is lost; the open one goes on */
        discard_segment(w, s, rc);
    }
    return VG_OK;
}

static int write_pending(arc_writer_t *w, int64_t before_us);

/* Other streams' packets past the target wait for the cut (see pending). */
static int park_or_write(arc_writer_t *w, AVPacket **held)
{
    AVPacket *pkt = *held;
    int i = pkt->stream_index;
    if (i != w->primary && w->seg &&
        to_us(pkt->dts, w->tb[i]) - w->seg->base_us >= w->seg->target_us) {
        if (w->n_pending == MAX_PENDING)
            write_pending(w, INT64_MAX); /* no cut for 5 s: stop waiting */
        w->pending[w->n_pending++] = pkt;
        *held = NULL;
        return VG_OK;
    }
    return w->seg ? write_packet(w, pkt) : VG_OK;
}

/* Writes waiting packets earlier than before_us (all: INT64_MAX) in order. */
static int write_pending(arc_writer_t *w, int64_t before_us)
{
    int rc = VG_OK, kept = 0;
    for (int k = 0; k < w->n_pending; k++) {
        AVPacket *pkt = w->pending[k];
        if (to_us(pkt->dts, w->tb[pkt->stream_index]) >= before_us) {
            w->pending[kept++] = pkt;
            continue;
        }
        int r = w->seg ? write_packet(w, pkt) : VG_OK;
        if (r != VG_OK && rc == VG_OK)
            rc = r;
        av_packet_free(&pkt);
    }
    w->n_pending = kept;
    return rc;
}

/* Releases the held packet of stream i. next_dts (stream time base) is where
 * the following packet starts, or AV_NOPTS_VALUE to reuse the last duration. */
static int release_held(arc_writer_t *w, unsigned i, int64_t next_dts)
{
    AVPacket *held = w->held[i];
    if (!held)
        return VG_OK;
    w->held[i] = NULL;
    int64_t duration = w->last_duration[i];
    if (next_dts != AV_NOPTS_VALUE && next_dts > held->dts)
        duration = next_dts - held->dts;
    if (duration <= 0)
        duration = held->duration > 0 ? held->duration : 1;
    held->duration = duration;
    w->last_duration[i] = duration;
    int rc = park_or_write(w, &held);
    av_packet_free(&held);
    return rc;
}

/* Releases every held packet; the primary's lasts until primary_next_dts. */
static int release_all(arc_writer_t *w, int64_t primary_next_dts)
{
    int rc = VG_OK;
    for (unsigned i = 0; i < w->n_in; i++) {
        int r = release_held(w, i, (int)i == w->primary ? primary_next_dts : AV_NOPTS_VALUE);
        if (r != VG_OK && rc == VG_OK)
            rc = r;
    }
    return rc;
}

/* Re-bases stream i when its DTS jumps; returns the (possibly moved) DTS. */
static int64_t follow_jumps(arc_writer_t *w, int i, int64_t dts)
{
    int64_t last = w->last_dts[i];
    if (last == AV_NOPTS_VALUE)
        return dts;
    int64_t delta_us = to_us(dts - last, w->tb[i]);
    if (delta_us >= -JUMP_BACK_US && delta_us <= JUMP_FORWARD_US)
        return dts;
    int64_t step = w->last_duration[i] > 0 ? w->last_duration[i] : 1;
    w->ts_offset[i] += last + step - dts;
    vg_notice("source=%s stream %d: timestamps jumped by %.3f s; continuing the timeline",
              w->source, i, (double)delta_us / 1e6);
    return last + step;
}

/* Makes DTS strictly increasing and PTS >= DTS, whatever the camera sent. */
static int repair_timestamps(arc_writer_t *w, AVPacket *pkt)
{
    int i = pkt->stream_index;
    if (pkt->dts == AV_NOPTS_VALUE)
        pkt->dts = pkt->pts;
    if (pkt->dts == AV_NOPTS_VALUE)
        return VG_EINVAL;
    int64_t offset = w->ts_offset[i];
    pkt->dts += offset;
    if (pkt->pts != AV_NOPTS_VALUE)
        pkt->pts += offset;
    int64_t moved = follow_jumps(w, i, pkt->dts);
    if (moved != pkt->dts) {
        if (pkt->pts != AV_NOPTS_VALUE)
            pkt->pts += moved - pkt->dts;
        pkt->dts = moved;
    }
    w->conn_packets++;
    if (w->last_dts[i] != AV_NOPTS_VALUE && pkt->dts <= w->last_dts[i]) {
        if (!w->repaired_warned) {
            /* A stream with B-frames starts with a few guessed DTS over RTSP
             * (RTP carries only PTS): expected, so not worth a warning. */
            vg_log(w->conn_packets < 16 ? VG_LOG_DEBUG : VG_LOG_WARNING,
                   "source=%s stream %d: non-monotonic DTS %" PRId64 " after %" PRId64
                   ", repairing", w->source, i, pkt->dts, w->last_dts[i]);
            w->repaired_warned = w->conn_packets >= 16;
        }
        pkt->dts = w->last_dts[i] + 1;
    }
    if (pkt->pts == AV_NOPTS_VALUE || pkt->pts < pkt->dts)
        pkt->pts = pkt->dts;
    w->last_dts[i] = pkt->dts;
    return VG_OK;
}

/* Notes the fragment just flushed: the bytes since the last one, media from
 * the last cut to end_us. The muxer keeps a fragment in memory until the
 * flush writes moof + mdat at once, so the file's size before and after the
 * flush bounds it exactly. next_key: whether the next one starts on a
 * keyframe (a cut forced by fragment_max_* does not). */
static void note_fragment(segment_t *s, int64_t end_us, int next_key)
{
    int64_t end = s->bytes;
    if (end > s->frag_offset && !s->frags_lost) {
        if (s->n_frags == ARC_FRAGS_MAX) {
            s->frags_lost = 1;
        } else {
            if (s->n_frags == s->cap_frags) {
                s->cap_frags = s->cap_frags ? s->cap_frags * 2 : 32;
                s->frags = vg_realloc(s->frags, s->cap_frags * sizeof(*s->frags));
            }
            arc_frag_t *f = &s->frags[s->n_frags++];
            f->offset = s->frag_offset;
            f->size = end - s->frag_offset;
            f->start_us = s->last_flush_us;
            f->dur_us = end_us > s->last_flush_us ? end_us - s->last_flush_us : 0;
            f->key = s->next_key;
        }
    }
    s->frag_offset = end;
    s->next_key = next_key;
}

/* Cuts the fragment that ends at media time pos_us. */
static int flush_fragment(arc_writer_t *w, int64_t pos_us, int next_key)
{
    segment_t *s = w->seg;
    int ret = av_interleaved_write_frame(s->oc, NULL); /* drain the interleaving queue */
    if (ret >= 0)
        ret = av_write_frame(s->oc, NULL); /* then cut the fragment */
    avio_flush(s->pb);
    if (ret < 0 || s->io_error) {
        vg_err("source=%s fragment flush failed in %s", w->source, s->rel_path);
        return s->io_error ? s->io_error : VG_EMEDIA;
    }
    note_fragment(s, pos_us, next_key);
    w->fragment_bytes = 0;
    /* The fragment is in the page cache. The finisher makes it durable now if
     * waiting for the next fragment (as far off as the last one was) would
     * leave data unsynced longer than sync_seconds: the README's power-cut
     * bound. */
    int64_t now = vg_clock_mono(w->clock);
    int64_t interval = now - w->last_flush_mono_us;
    w->last_flush_mono_us = now;
    if (now + interval > w->last_sync_mono_us + w->sync_us) {
        w->last_sync_mono_us = now;
        pthread_mutex_lock(&w->q_lock);
        s->want_sync |= SYNC_DATA;
        pthread_cond_signal(&w->fin_wake);
        pthread_mutex_unlock(&w->q_lock);
    }
    return VG_OK;
}

/* ---- finishing a segment (DESIGN.md invariants 1 and 9) ---- */

static void hex_digest(struct sha256_ctx *sha, char hex[65])
{
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_digest(sha, sizeof(digest), digest);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++)
        snprintf(hex + 2 * i, 3, "%02x", digest[i]);
}

static void count_error(arc_writer_t *w, int rc)
{
    pthread_mutex_lock(&w->stats_lock);
    w->stats.write_errors++;
    w->stats.last_error = rc;
    pthread_mutex_unlock(&w->stats_lock);
}

/* An I/O error the disk reported (not a full disk): the storage_io_error
 * alarm is up until a later segment of this source is finished cleanly, and
 * for at least alarm_hold_us: an alarm that lived one segment's time would be
 * gone before anyone looked at the storage page. */
static void note_io_error(arc_writer_t *w, const segment_t *s, const char *what, int err)
{
    vg_err("source=%s %s failed on %s: %s; its bytes are kept but marked unverified, "
           "recording goes on in a new file", w->source, what, s->rel_path, strerror(err));
    pthread_mutex_lock(&w->stats_lock);
    w->stats.io_errors++;
    w->stats.io_error_active = 1;
    w->io_error_mono_us = vg_clock_mono(w->clock);
    pthread_mutex_unlock(&w->stats_lock);
}

static int errno_rc(int err)
{
    return err == ENOSPC || err == EDQUOT ? VG_ENOSPC : VG_EIO;
}

/* Hands a durable file's row to the committer (finisher thread). The row is
 * the commit point of invariant 1; until it is in, the file is left alone. */
static void queue_row(arc_writer_t *w, const idx_segment_t *row, int *fd, uint8_t *frags,
                      size_t frags_len)
{
    row_job_t *j = vg_calloc(1, sizeof(*j));
    j->row = *row;
    j->fd = -1;
    j->frags = frags; /* taken */
    j->frags_len = frags_len;
    pthread_mutex_lock(&w->q_lock);
    if (w->row_len >= ROW_QUEUE_MAX) {
        w->rows_dropped++;
        pthread_mutex_unlock(&w->q_lock);
        vg_err("source=%s %d rows already wait for the index: %s is kept on disk without a "
               "row; reconcile indexes it at the next start", w->source, ROW_QUEUE_MAX,
               row->path);
        free(j->frags);
        free(j);
        return;
    }
    if (w->row_len < ROW_QUEUE_KEEP_FD) {
        j->fd = *fd;
        *fd = -1;
    }
    if (w->row_tail)
        w->row_tail->next = j;
    else
        w->row_head = j;
    w->row_tail = j;
    w->row_len++;
    pthread_cond_signal(&w->row_wake);
    pthread_mutex_unlock(&w->q_lock);
}

static void row_from_segment(const arc_writer_t *w, segment_t *s, idx_segment_t *row)
{
    memset(row, 0, sizeof(*row));
    snprintf(row->source, sizeof(row->source), "%s", w->source);
    row->start_us = s->row_start_us;
    row->end_us = s->row_end_us;
    row->media_us = s->media_us;
    row->bytes = s->bytes;
    hex_digest(&s->sha, row->sha256);
    snprintf(row->codecs, sizeof(row->codecs), "%s", s->codecs);
    row->init_bytes = s->init_bytes;
    snprintf(row->path, sizeof(row->path), "%s", s->rel_path);
    row->unverified = s->unverified;
}

/* A segment that failed midway is made whole the way crash recovery does it:
 * cut after its last complete fragment and indexed. Only a file with not even
 * one complete fragment (no media at all) is removed; any other trouble
 * keeps the file, for the next start's reconcile. Finisher thread. */
static void salvage_segment(arc_writer_t *w, segment_t *s)
{
    /* Disk full leaves what was written intact; any other write error leaves
     * nothing to vouch for the bytes. */
    if (s->fail_rc == VG_EIO && !s->unverified) {
        s->unverified = 1;
        note_io_error(w, s, "a write", EIO);
    }
    arc_file_info_t info;
    int rc = arc_recover_file(s->abs_path, &info);
    if (rc == VG_ECORRUPT) {
        if (unlink(s->abs_path) == 0)
            vg_fsync_parent(s->abs_path);
        vg_warn("source=%s removed %s: not one complete fragment in it", w->source,
                s->rel_path);
        return;
    }
    if (rc != VG_OK) {
        vg_err("source=%s cannot read back %s (%s): kept for reconcile at the next start",
               w->source, s->rel_path, vg_strerror(rc));
        return;
    }
    if (fsync(s->fd) != 0) {
        if (!s->unverified)
            note_io_error(w, s, "fsync", errno);
        s->unverified = 1;
    }
    if (vg_fsync_parent(s->abs_path) != VG_OK) {
        if (!s->unverified)
            note_io_error(w, s, "directory fsync", errno);
        s->unverified = 1;
    }
    idx_segment_t row = {0};
    snprintf(row.source, sizeof(row.source), "%s", w->source);
    row.start_us = info.start_us;
    row.end_us = info.start_us + info.media_us;
    row.media_us = info.media_us;
    row.bytes = info.bytes;
    memcpy(row.sha256, info.sha256, sizeof(row.sha256));
    snprintf(row.codecs, sizeof(row.codecs), "%s", info.codecs);
    row.init_bytes = info.init_bytes;
    snprintf(row.path, sizeof(row.path), "%s", s->rel_path);
    row.unverified = s->unverified;
    vg_notice("source=%s kept the complete part of %s (%.3f s)%s", w->source, s->rel_path,
              (double)info.media_us / 1e6, s->unverified ? ", unverified" : "");
    queue_row(w, &row, &s->fd, NULL, 0); /* playback reads its fragments from the file */
}

/* refine_start chose a new name: rename now, off the source's thread. A
 * failed rename keeps the old name (the row follows the file) and, like any
 * failed metadata write, marks the segment unverified. */
static void apply_rename(arc_writer_t *w, segment_t *s)
{
    if (!s->final_rel)
        return;
    int rc = arc_make_parent_dirs(w->data_dir, s->final_rel);
    if (rc == VG_OK && rename(s->abs_path, s->final_abs) == 0) {
        char *old_abs = s->abs_path;
        free(s->rel_path);
        s->rel_path = s->final_rel;
        s->abs_path = s->final_abs;
        s->final_rel = s->final_abs = NULL;
        if (vg_fsync_parent(old_abs) != VG_OK) {
            if (!s->unverified)
                note_io_error(w, s, "directory fsync after rename", errno);
            s->unverified = 1;
        }
        free(old_abs);
        return;
    }
    int err = errno;
    if (!s->unverified)
        note_io_error(w, s, "rename", err);
    s->unverified = 1;
}

static void sync_open_segment(arc_writer_t *w, segment_t *s, int what);

/* Finishes a closed segment (finisher thread): trailer, fsync, rename,
 * directory fsync, then its row goes to the committer. A failed fsync is
 * never retried as if it could succeed (after one, the page cache may not
 * match the disk): the row is marked unverified instead. */
static void finish_job(arc_writer_t *w, segment_t *s)
{
    if (s->want_sync & SYNC_TREE)
        sync_open_segment(w, s, SYNC_TREE); /* new directories, before any row */
    if (s->fail_rc) {
        salvage_segment(w, s);
        segment_free(s);
        return;
    }
    /* The last fragment is cut on its own before the trailer (which then
     * adds only the mfra index), so its bytes are known like the others'. */
    int ret = av_interleaved_write_frame(s->oc, NULL);
    if (ret >= 0)
        ret = av_write_frame(s->oc, NULL);
    avio_flush(s->pb);
    if (ret >= 0 && !s->io_error)
        note_fragment(s, s->media_us, 0);
    if (ret >= 0 && !s->io_error)
        ret = av_write_trailer(s->oc);
    avio_flush(s->pb);
    if (ret < 0 || s->io_error) {
        s->fail_rc = s->io_error ? s->io_error : VG_EMEDIA;
        count_error(w, s->fail_rc);
        vg_err("source=%s cannot finish %s: %s", w->source, s->rel_path,
               s->io_error ? vg_strerror(s->io_error) : av_err2str(ret));
        salvage_segment(w, s);
        segment_free(s);
        return;
    }
    if (fsync(s->fd) != 0) {
        int err = errno;
        if (!s->unverified)
            note_io_error(w, s, "fsync", err);
        s->unverified = 1;
        count_error(w, errno_rc(err));
    }
    apply_rename(w, s);
    if (vg_fsync_parent(s->abs_path) != VG_OK) {
        int err = errno;
        if (!s->unverified)
            note_io_error(w, s, "directory fsync", err);
        s->unverified = 1;
        count_error(w, errno_rc(err));
    }
    idx_segment_t row;
    row_from_segment(w, s, &row);
    if (!s->unverified) {
        int64_t now = vg_clock_mono(w->clock);
        pthread_mutex_lock(&w->stats_lock);
        if (now - w->io_error_mono_us >= w->alarm_hold_us)
            w->stats.io_error_active = 0; /* this source writes cleanly again */
        pthread_mutex_unlock(&w->stats_lock);
    }
    uint8_t *blob = NULL;
    size_t blob_len = 0;
    if (!s->frags_lost && s->n_frags &&
        arc_frags_encode(s->frags, s->n_frags, &blob, &blob_len) != VG_OK)
        vg_warn("source=%s no fragment table for %s: playback reads it from the file",
                w->source, s->rel_path);
    queue_row(w, &row, &s->fd, blob, blob_len);
    segment_free(s);
}

/* Between jobs: makes the open segment's data durable (item 6 of issue 12),
 * and the directory entry of a newly created file. */
/* fsyncs every directory from data_dir down to the file's (new ones were
 * made for it: each one's entry in its parent must last). */
static int sync_dir_chain(const arc_writer_t *w, const segment_t *s)
{
    char *dir = vg_asprintf("%s/%s", w->data_dir, s->rel_path);
    size_t base = strlen(w->data_dir);
    int rc = VG_OK;
    for (;;) {
        char *slash = strrchr(dir, '/');
        if (!slash || (size_t)(slash - dir) < base)
            break;
        *slash = '\0';
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fsync(fd) != 0)
            rc = VG_EIO;
        if (fd >= 0)
            close(fd);
        if (rc != VG_OK)
            break;
    }
    free(dir);
    return rc;
}

static void sync_open_segment(arc_writer_t *w, segment_t *s, int what)
{
    if ((what & SYNC_TREE) && sync_dir_chain(w, s) != VG_OK) {
        int err = errno;
        if (!s->unverified)
            note_io_error(w, s, "directory fsync", err);
        s->unverified = 1;
        atomic_store(&s->io_failed, 1);
    }
    if ((what & SYNC_DIR) && !(what & SYNC_TREE) && vg_fsync_parent(s->abs_path) != VG_OK) {
        int err = errno;
        if (!s->unverified)
            note_io_error(w, s, "directory fsync", err);
        s->unverified = 1;
        atomic_store(&s->io_failed, 1);
    }
    if ((what & SYNC_DATA) && fdatasync(s->fd) != 0) {
        int err = errno;
        if (!s->unverified)
            note_io_error(w, s, "fdatasync", err);
        s->unverified = 1;
        count_error(w, errno_rc(err));
        atomic_store(&s->io_failed, 1);
    }
}

static void *finisher_main(void *arg)
{
    arc_writer_t *w = arg;
    pthread_mutex_lock(&w->q_lock);
    for (;;) {
        while (!w->fin_head && !(w->sync_target && w->sync_target->want_sync) && !w->fin_stop)
            pthread_cond_wait(&w->fin_wake, &w->q_lock);
        if (w->fin_head) {
            segment_t *s = w->fin_head;
            w->fin_head = s->next;
            if (!w->fin_head)
                w->fin_tail = NULL;
            w->fin_len--;
            w->fin_busy = 1;
            pthread_cond_signal(&w->fin_space);
            pthread_mutex_unlock(&w->q_lock);
            finish_job(w, s);
            pthread_mutex_lock(&w->q_lock);
            w->fin_busy = 0;
            pthread_cond_broadcast(&w->drained);
            continue;
        }
        if (w->sync_target && w->sync_target->want_sync) {
            /* The source's thread may hand this segment over meanwhile, but
             * only this thread frees it, after this sync. */
            segment_t *s = w->sync_target;
            int what = s->want_sync;
            s->want_sync = 0;
            pthread_mutex_unlock(&w->q_lock);
            sync_open_segment(w, s, what);
            pthread_mutex_lock(&w->q_lock);
            continue;
        }
        break; /* stop, nothing left */
    }
    pthread_mutex_unlock(&w->q_lock);
    return NULL;
}

/* Errors a retry cannot fix: a bad row (duplicate path) or an unknown source.
 * The file stays; reconcile looks at it at the next start. */
static int row_error_is_final(int rc)
{
    return rc == VG_EINVAL || rc == VG_ENOTFOUND || rc == VG_EEXIST;
}

static void drop_row_job(arc_writer_t *w)
{
    row_job_t *j = w->row_head;
    w->row_head = j->next;
    if (!w->row_head)
        w->row_tail = NULL;
    w->row_len--;
    w->row_attempted = 0;
    if (j->fd >= 0)
        close(j->fd);
    free(j->frags);
    free(j);
}

static void set_index_failing(arc_writer_t *w, int failing, int rc)
{
    pthread_mutex_lock(&w->stats_lock);
    int was = w->stats.index_failing;
    w->stats.index_failing = failing;
    pthread_mutex_unlock(&w->stats_lock);
    if (failing && !was)
        vg_err("source=%s alarm index_write_failed: a segment row cannot be written (%s); "
               "files are kept and their rows retried in order", w->source, vg_strerror(rc));
    else if (!failing && was)
        vg_notice("source=%s index_write_failed cleared: the waiting rows are in", w->source);
}

/* The commit queue: rows in order, each retried with backoff until the index
 * takes it. Never deletes a file: an index failure is not the media's fault
 * (DESIGN.md invariant 9). */
static void *committer_main(void *arg)
{
    arc_writer_t *w = arg;
    int64_t backoff = ROW_RETRY_MIN_US;
    pthread_mutex_lock(&w->q_lock);
    for (;;) {
        while (!w->row_head && !w->row_stop)
            pthread_cond_wait(&w->row_wake, &w->q_lock);
        if (!w->row_head)
            break;
        row_job_t *j = w->row_head;
        pthread_mutex_unlock(&w->q_lock);
        int rc = idx_segment_insert_frags(w->idx, &j->row, j->frags, j->frags_len);
        pthread_mutex_lock(&w->q_lock);
        w->row_attempted = 1;
        if (rc == VG_OK || row_error_is_final(rc)) {
            if (rc == VG_OK) {
                pthread_mutex_lock(&w->stats_lock);
                w->stats.segments_written++;
                w->stats.bytes_written += j->row.bytes;
                if (j->row.unverified)
                    w->stats.unverified_segments++;
                w->stats.last_segment_wall_us = vg_clock_wall(w->clock);
                pthread_mutex_unlock(&w->stats_lock);
                vg_debug("source=%s segment %s media=%" PRId64 "us bytes=%" PRId64, w->source,
                         j->row.path, j->row.media_us, j->row.bytes);
            } else {
                vg_err("source=%s row for %s refused (%s): the file is kept for reconcile",
                       w->source, j->row.path, vg_strerror(rc));
            }
            drop_row_job(w);
            backoff = ROW_RETRY_MIN_US;
            if (!w->row_head) {
                pthread_mutex_unlock(&w->q_lock);
                set_index_failing(w, 0, VG_OK);
                pthread_mutex_lock(&w->q_lock);
            }
            pthread_cond_broadcast(&w->drained);
            continue;
        }
        pthread_mutex_unlock(&w->q_lock);
        set_index_failing(w, 1, rc);
        pthread_mutex_lock(&w->q_lock);
        pthread_cond_broadcast(&w->drained);
        if (w->row_stop) {
            /* Shutting down with the index still failing: the files stay,
             * with their lock released; reconcile indexes them at start. */
            while (w->row_head) {
                vg_err("source=%s exiting with %s still without a row: reconcile indexes it "
                       "at the next start", w->source, w->row_head->row.path);
                drop_row_job(w);
            }
            break;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        int64_t ns = until.tv_nsec + (backoff % 1000000) * 1000;
        until.tv_sec += backoff / 1000000 + ns / 1000000000;
        until.tv_nsec = ns % 1000000000;
        pthread_cond_timedwait(&w->row_wake, &w->q_lock, &until);
        backoff = backoff * 2 > ROW_RETRY_MAX_US ? ROW_RETRY_MAX_US : backoff * 2;
    }
    pthread_mutex_unlock(&w->q_lock);
    return NULL;
}

static void start_thread(pthread_t *t, void *(*fn)(void *), arc_writer_t *w, const char *what)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old); /* signals are the main thread's */
    if (pthread_create(t, NULL, fn, w) != 0)
        abort(); /* like an allocation failure: see DESIGN.md convention 4 */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    char name[16];
    snprintf(name, sizeof(name), "%s-%s", what, w->source);
    pthread_setname_np(*t, name);
}

/* Hands a closed segment to the finisher (source's thread). Waits while the
 * queue is full: a disk this slow loses nothing, it only holds the reader. */
static void hand_over(arc_writer_t *w, segment_t *s)
{
    pthread_mutex_lock(&w->q_lock);
    if (w->sync_target == s)
        w->sync_target = NULL;
    s->want_sync &= SYNC_TREE; /* the finish syncs data and the file's entry anyway */
    if (w->fin_len >= FINISH_QUEUE_MAX) {
        vg_warn("source=%s %d segments wait for the disk: waiting", w->source, w->fin_len);
        while (w->fin_len >= FINISH_QUEUE_MAX)
            pthread_cond_wait(&w->fin_space, &w->q_lock);
    }
    s->next = NULL;
    if (w->fin_tail)
        w->fin_tail->next = s;
    else
        w->fin_head = s;
    w->fin_tail = s;
    w->fin_len++;
    pthread_cond_signal(&w->fin_wake);
    pthread_mutex_unlock(&w->q_lock);
}

/* Waits until the finisher is idle and the committer has tried every row
 * (they may still wait for a failing index: that never blocks a caller). */
static void wait_drained(arc_writer_t *w)
{
    pthread_mutex_lock(&w->q_lock);
    while (w->fin_head || w->fin_busy || (w->row_head && !w->row_attempted))
        pthread_cond_wait(&w->drained, &w->q_lock);
    pthread_mutex_unlock(&w->q_lock);
}

static void discard_segment(arc_writer_t *w, segment_t *s, int rc)
{
    count_error(w, rc);
    vg_err("source=%s segment %s failed: %s", w->source, s->rel_path, vg_strerror(rc));
    s->fail_rc = rc;
    hand_over(w, s);
}

/* The open segment failed: salvage it and pause before trying again, unless
 * the disk only reported an I/O error: recording goes on in a new file at
 * the next keyframe. */
static void segment_fail(arc_writer_t *w, int rc)
{
    segment_t *s = w->seg;
    w->seg = NULL;
    discard_segment(w, s, rc);
    w->timeline.started = 0; /* what follows is a gap */
    if (rc == VG_ENOSPC) {
        vg_notice("source=%s retrying in %d s", w->source, RETRY_AFTER_ERROR_US / 1000000);
        w->retry_after_mono_us = vg_clock_mono(w->clock) + RETRY_AFTER_ERROR_US;
    }
}

/* A segment could not even be created (directory, file or header failed). */
static void segment_fail_open(arc_writer_t *w, int rc)
{
    count_error(w, rc);
    w->timeline.started = 0;
    w->retry_after_mono_us = vg_clock_mono(w->clock) + RETRY_AFTER_ERROR_US;
    vg_err("source=%s cannot start a segment: %s; retrying in %d s", w->source, vg_strerror(rc),
           RETRY_AFTER_ERROR_US / 1000000);
}

/* Wall time at which media time media_us of this segment passed, by the
 * segment's best (least delayed) packet; fallback when none was seen. */
static int64_t estimated_wall(const arc_writer_t *w, const segment_t *s, int64_t media_us,
                              int64_t fallback)
{
    if (s->min_offset_us == INT64_MAX || w->conn_zero_us == AV_NOPTS_VALUE)
        return fallback;
    return s->min_offset_us + (s->base_us + media_us - w->conn_zero_us);
}

/* The first segment of a connection was named after the receive time of its
 * first keyframe, which may have waited in the probe buffer. Now that live
 * packets have shown the true offset, move the start (and the file name, which
 * carries it) to the estimate; the finisher renames the file. A crash between
 * rename and row leaves a file that recovery indexes under its new name. */
static void refine_start(arc_writer_t *w, segment_t *s)
{
    int64_t refined = estimated_wall(w, s, 0, w->timeline.next_start_us);
    if (!s->provisional_start || refined == w->timeline.next_start_us)
        return;
    vg_debug("source=%s start refined by %" PRId64 " us", w->source,
             refined - w->timeline.next_start_us);
    w->timeline.next_start_us = refined;
    s->final_rel = arc_segment_rel_path(w->source, refined, w->format);
    s->final_abs = vg_asprintf("%s/%s", w->data_dir, s->final_rel);
}

/* Fixes a segment's place on the wall clock once its media end is known;
 * the next segment's start follows from it, so this runs at the cut. */
static void close_timeline(arc_writer_t *w, segment_t *s, int64_t media_us,
                           int64_t recv_end_wall_us)
{
    refine_start(w, s);
    int64_t end_wall = estimated_wall(w, s, media_us, recv_end_wall_us);
    vg_timeline_observe(&w->timeline, w->clock); /* a wall-clock step re-anchors */
    vg_timeline_close(&w->timeline, media_us, end_wall, &s->row_start_us, &s->row_end_us);
    s->media_us = media_us;
}

/* Hands a detached segment whose timeline is closed to the finisher
 * (invariant 1: file complete and fsynced, directory fsynced, then the row). */
static int segment_finish(arc_writer_t *w, segment_t *s)
{
    snprintf(s->codecs, sizeof(s->codecs), "%s", w->codecs);
    hand_over(w, s);
    return VG_OK;
}

static void finish_closing(arc_writer_t *w)
{
    segment_t *s = w->closing;
    w->closing = NULL;
    if (s)
        segment_finish(w, s);
}

/* The closing segment is done once every other stream has reached the cut,
 * or two seconds after it (a stream that went quiet must not hold it open). */
static void maybe_finish_closing(arc_writer_t *w)
{
    if (!w->closing)
        return;
    if (w->seg) {
        int64_t cut = w->seg->base_us;
        int waiting = 0;
        for (unsigned i = 0; i < w->n_in; i++) {
            if ((int)i == w->primary || w->out_index[i] < 0)
                continue;
            if (w->last_dts[i] == AV_NOPTS_VALUE || to_us(w->last_dts[i], w->tb[i]) < cut)
                waiting = 1;
        }
        int64_t primary_now = w->last_dts[w->primary] == AV_NOPTS_VALUE
                                  ? cut
                                  : to_us(w->last_dts[w->primary], w->tb[w->primary]);
        if (waiting && primary_now - cut < 2000000)
            return;
    }
    finish_closing(w);
}

/* Cuts at a keyframe: the old segment's timeline closes now; its file is
 * finished when late audio is in (at once for a single stream). */
static int rotate(arc_writer_t *w, int64_t pos, int64_t cut_us, int64_t recv_wall_us)
{
    finish_closing(w);
    write_pending(w, cut_us); /* what precedes the cut stays in the old file */
    segment_t *old = w->seg;
    w->seg = NULL;
    close_timeline(w, old, pos, recv_wall_us);
    if (w->n_out > 1)
        w->closing = old;
    else
        segment_finish(w, old);
    int rc = segment_open(w, cut_us, recv_wall_us);
    if (rc != VG_OK)
        segment_fail_open(w, rc);
    int r = write_pending(w, INT64_MAX); /* the rest opens the new one */
    return rc != VG_OK ? rc : r;
}

/* ---- the per-packet state machine ---- */

static int close_segment(arc_writer_t *w);

static int64_t media_pos_us(const arc_writer_t *w, const AVPacket *pkt)
{
    return to_us(pkt->dts, w->tb[pkt->stream_index]) - w->seg->base_us;
}

/* A primary packet that may start a segment or cut a fragment. */
static int on_primary_boundary(arc_writer_t *w, const AVPacket *pkt, int64_t recv_wall_us)
{
    int64_t pos = media_pos_us(w, pkt);
    int rc = release_all(w, pkt->dts);
    if (rc == VG_OK && pos >= w->seg->target_us)
        return rotate(w, pos, to_us(pkt->dts, w->tb[pkt->stream_index]), recv_wall_us);
    if (rc == VG_OK)
        rc = flush_fragment(w, pos, 1);
    if (rc == VG_OK)
        w->seg->last_flush_us = pos;
    else
        segment_fail(w, rc);
    return rc;
}

static int is_boundary(const arc_writer_t *w, const AVPacket *pkt)
{
    if (pkt->stream_index != w->primary)
        return 0;
    if (w->primary_is_video)
        return (pkt->flags & AV_PKT_FLAG_KEY) != 0;
    return media_pos_us(w, pkt) - w->seg->last_flush_us >= AUDIO_FRAGMENT_US;
}

/* With no keyframe for fragment_max_seconds (intra-refresh cameras, very long
 * GOPs), or fragment_max_bytes waiting in the muxer, a fragment is cut
 * anyway: memory stays bounded and the data reaches the disk. The segment
 * itself still starts on a keyframe, so it plays from its first frame. */
static int fragment_overdue(const arc_writer_t *w, const AVPacket *pkt)
{
    if (pkt->stream_index != w->primary || !w->primary_is_video)
        return 0;
    return media_pos_us(w, pkt) - w->seg->last_flush_us >= w->fragment_max_us ||
           w->fragment_bytes >= w->fragment_max_bytes;
}

static int cut_fragment(arc_writer_t *w, const AVPacket *pkt)
{
    int64_t pos = media_pos_us(w, pkt);
    int rc = release_all(w, pkt->dts);
    if (rc == VG_OK)
        rc = flush_fragment(w, pos, 0);
    if (rc == VG_OK)
        w->seg->last_flush_us = pos;
    else
        segment_fail(w, rc);
    return rc;
}

static int can_start_segment(arc_writer_t *w, const AVPacket *pkt)
{
    if (pkt->stream_index != w->primary)
        return 0;
    if (w->primary_is_video && !(pkt->flags & AV_PKT_FLAG_KEY))
        return 0;
    return vg_clock_mono(w->clock) >= w->retry_after_mono_us;
}

static void track_offset(arc_writer_t *w, const AVPacket *pkt, int64_t recv_wall_us)
{
    if (pkt->stream_index != w->primary)
        return;
    int64_t dts_us = to_us(pkt->dts, w->tb[w->primary]);
    if (w->conn_zero_us == AV_NOPTS_VALUE)
        w->conn_zero_us = dts_us;
    int64_t offset = recv_wall_us - (dts_us - w->conn_zero_us);
    if (offset < w->seg->min_offset_us)
        w->seg->min_offset_us = offset;
}

void arc_writer_set_paused(arc_writer_t *w, int paused)
{
    if (atomic_exchange(&w->paused, paused ? 1 : 0) != (paused ? 1 : 0))
        vg_notice("source=%s recording %s", w->source, paused ? "paused" : "resumed");
}

int64_t arc_writer_open_bytes(const arc_writer_t *w)
{
    return atomic_load(&((arc_writer_t *)w)->open_bytes);
}

/* Paused: finish what is open (it stays a valid segment) and drop packets;
 * the next segment starts at a keyframe once resumed, after a gap. */
static void pause_now(arc_writer_t *w)
{
    if (w->seg)
        arc_writer_end(w);
    atomic_store(&w->open_bytes, 0);
}

int arc_writer_write(arc_writer_t *w, const AVPacket *in, int64_t recv_wall_us)
{
    if (atomic_load(&w->paused)) {
        pause_now(w);
        return VG_OK;
    }
    if (w->seg && atomic_load(&w->seg->io_failed)) {
        /* A sync of the open file failed: close it (its row is marked
         * unverified) and record on in a new file from the next keyframe. */
        close_segment(w);
    }
    if (!w->connected || in->stream_index < 0 || (unsigned)in->stream_index >= w->n_in ||
        w->out_index[in->stream_index] < 0)
        return VG_OK;
    AVPacket *pkt = av_packet_clone(in);
    if (!pkt)
        abort();
    int rc = repair_timestamps(w, pkt);
    if (rc != VG_OK) {
        av_packet_free(&pkt);
        return VG_OK; /* no timestamp at all: nothing sensible to store */
    }
    if (!w->seg) {
        if (!can_start_segment(w, pkt)) {
            av_packet_free(&pkt);
            return VG_OK;
        }
        rc = segment_open(w, to_us(pkt->dts, w->tb[pkt->stream_index]), recv_wall_us);
        if (rc != VG_OK) {
            segment_fail_open(w, rc);
            av_packet_free(&pkt);
            return rc;
        }
    } else if (is_boundary(w, pkt)) {
        rc = on_primary_boundary(w, pkt, recv_wall_us);
        if (rc != VG_OK || !w->seg) {
            av_packet_free(&pkt);
            return rc;
        }
    } else if (fragment_overdue(w, pkt)) {
        rc = cut_fragment(w, pkt);
        if (rc != VG_OK || !w->seg) {
            av_packet_free(&pkt);
            return rc;
        }
    }
    w->fragment_bytes += pkt->size;
    track_offset(w, pkt, recv_wall_us);
    unsigned i = (unsigned)pkt->stream_index;
    rc = release_held(w, i, pkt->dts);
    w->held[i] = pkt;
    if (rc != VG_OK && w->seg)
        segment_fail(w, rc);
    maybe_finish_closing(w);
    atomic_store(&w->open_bytes, w->seg ? w->seg->bytes : 0);
    return rc;
}

/* 1 when an Annex-B H.264/H.265 packet holds a coded picture (a VCL NAL).
 * Other codecs and length-prefixed data count as pictures. */
static int has_picture(enum AVCodecID codec, const uint8_t *p, int size)
{
    if (codec != AV_CODEC_ID_H264 && codec != AV_CODEC_ID_HEVC)
        return 1;
    int start_codes = 0;
    for (int i = 0; i + 3 < size; i++) {
        if (p[i] != 0 || p[i + 1] != 0 || p[i + 2] != 1)
            continue;
        start_codes++;
        int type = codec == AV_CODEC_ID_H264 ? p[i + 3] & 0x1f : (p[i + 3] >> 1) & 0x3f;
        if (codec == AV_CODEC_ID_H264 ? (type >= 1 && type <= 5) : type <= 31)
            return 1;
    }
    return start_codes == 0;
}

/* When a stream is cut off, libav can hand over the start of the next access
 * unit (a delimiter, no picture) as a packet of its own; a file ending in it
 * fails to decode cleanly, so it is dropped. */
static void drop_trailing_non_picture(arc_writer_t *w)
{
    AVPacket *last = w->held[w->primary];
    if (last && w->primary_is_video &&
        !has_picture(w->par[w->primary]->codec_id, last->data, last->size))
        av_packet_free(&w->held[w->primary]);
}

/* Finalizes the open segment and forgets what was held for it; the
 * connection stays, the next segment starts at a keyframe. */
static int close_segment(arc_writer_t *w)
{
    int rc = VG_OK;
    if (w->seg) {
        int64_t end_dts = AV_NOPTS_VALUE;
        drop_trailing_non_picture(w);
        AVPacket *last = w->held[w->primary];
        if (last)
            end_dts = last->dts + (w->last_duration[w->primary] > 0 ? w->last_duration[w->primary]
                                                                     : 1);
        rc = release_all(w, end_dts);
        int r = write_pending(w, INT64_MAX);
        rc = rc != VG_OK ? rc : r;
        finish_closing(w);
        if (rc == VG_OK) {
            int64_t media = end_dts != AV_NOPTS_VALUE
                                ? to_us(end_dts, w->tb[w->primary]) - w->seg->base_us
                                : 0;
            segment_t *s = w->seg;
            w->seg = NULL;
            /* The receive clock at the end is "now": the stream just stopped. */
            close_timeline(w, s, media, vg_clock_wall(w->clock));
            rc = segment_finish(w, s);
        } else {
            segment_fail(w, rc);
        }
    }
    finish_closing(w);
    for (int k = 0; k < w->n_pending; k++)
        av_packet_free(&w->pending[k]);
    w->n_pending = 0;
    for (unsigned i = 0; i < MAX_STREAMS; i++)
        av_packet_free(&w->held[i]);
    w->timeline.started = 0;
    atomic_store(&w->open_bytes, 0);
    return rc;
}

int arc_writer_end(arc_writer_t *w)
{
    int rc = close_segment(w);
    /* The connection is over: its segments are finished before the next one
     * starts (rows may still wait for a failing index, in order). */
    wait_drained(w);
    return rc;
}

void arc_writer_flush(arc_writer_t *w)
{
    wait_drained(w);
}

void arc_writer_stats(arc_writer_t *w, arc_writer_stats_t *out)
{
    pthread_mutex_lock(&w->stats_lock);
    *out = w->stats;
    pthread_mutex_unlock(&w->stats_lock);
    pthread_mutex_lock(&w->q_lock);
    out->finish_queue = w->fin_len + w->fin_busy;
    out->commit_queue = w->row_len;
    out->rows_left_to_reconcile = w->rows_dropped;
    pthread_mutex_unlock(&w->q_lock);
}

void arc_writer_close(arc_writer_t *w)
{
    if (!w)
        return;
    arc_writer_end(w);
    forget_streams(w);
    if (w->threads_started) {
        pthread_mutex_lock(&w->q_lock);
        w->fin_stop = 1;
        pthread_cond_signal(&w->fin_wake);
        pthread_mutex_unlock(&w->q_lock);
        pthread_join(w->finisher, NULL);
        pthread_mutex_lock(&w->q_lock);
        w->row_stop = 1; /* after the finisher: every row is queued by now */
        pthread_cond_signal(&w->row_wake);
        pthread_mutex_unlock(&w->q_lock);
        pthread_join(w->committer, NULL);
    }
    pthread_cond_destroy(&w->fin_wake);
    pthread_cond_destroy(&w->fin_space);
    pthread_cond_destroy(&w->row_wake);
    pthread_cond_destroy(&w->drained);
    pthread_mutex_destroy(&w->q_lock);
    pthread_mutex_destroy(&w->stats_lock);
    free(w->data_dir);
    free(w->source);
    free(w);
}
