/* Prometheus text exposition of vigild's state (served at GET /metrics by
 * the web module). Names follow Prometheus conventions: vigil_ prefix, base
 * units (bytes, seconds), _total for counters. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/vigild.h"
#include "core/clock.h"
#include "core/errors.h"
#include "core/util.h"
#include "retention/retention.h"

typedef struct {
    char *buf;
    size_t len, cap;
} text_t;

static void add(text_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(text_t *t, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        }
        t->cap = t->cap * 2 + (size_t)(n > 0 ? n : 0) + 256;
        t->buf = vg_realloc(t->buf, t->cap);
    }
}

static void family(text_t *t, const char *name, const char *type, const char *help)
{
    add(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Source names are [a-z0-9-]: safe inside label quotes as they are. */
static void per_source(text_t *t, daemon_t *d, const char *name, const char *type,
                       const char *help, double (*value)(recorder_t *r, int64_t now))
{
    int64_t now = vg_clock_wall(&vg_system_clock);
    family(t, name, type, help);
    pthread_mutex_lock(&d->recorders_lock);
    for (size_t i = 0; i < d->n_recorders; i++)
        add(t, "%s{source=\"%s\"} %.17g\n", name, d->recorders[i]->cfg->name,
            value(d->recorders[i], now));
    pthread_mutex_unlock(&d->recorders_lock);
}

static cap_status_t cap_of(recorder_t *r)
{
    cap_status_t st;
    cap_source_status(r->capture, &st);
    return st;
}

static arc_writer_stats_t arc_of(recorder_t *r)
{
    arc_writer_stats_t st;
    arc_writer_stats(r->writer, &st);
    return st;
}

static double v_bytes(recorder_t *r, int64_t now) { (void)now; return (double)cap_of(r).bytes; }
static double v_packets(recorder_t *r, int64_t now) { (void)now; return (double)cap_of(r).packets; }
static double v_reconnects(recorder_t *r, int64_t now) { (void)now; return (double)cap_of(r).reconnects; }
static double v_recording(recorder_t *r, int64_t now) { (void)now; return cap_of(r).state == CAP_RECORDING; }
static double v_bitrate(recorder_t *r, int64_t now) { (void)now; return (double)cap_of(r).bitrate_bps; }
static double v_segments(recorder_t *r, int64_t now) { (void)now; return (double)arc_of(r).segments_written; }
static double v_write_errors(recorder_t *r, int64_t now) { (void)now; return (double)arc_of(r).write_errors; }
static double v_index_failing(recorder_t *r, int64_t now) { (void)now; return arc_of(r).index_failing; }
static double v_commit_queue(recorder_t *r, int64_t now) { (void)now; return arc_of(r).commit_queue; }
static double v_finish_queue(recorder_t *r, int64_t now) { (void)now; return arc_of(r).finish_queue; }
static double v_io_errors(recorder_t *r, int64_t now) { (void)now; return (double)arc_of(r).io_errors; }
static double v_unverified(recorder_t *r, int64_t now) { (void)now; return (double)arc_of(r).unverified_segments; }

static double v_since_packet(recorder_t *r, int64_t now)
{
    int64_t last = cap_of(r).last_packet_wall_us;
    return last ? (double)(now - last) / 1e6 : -1;
}

static rly_status_t rly_of(recorder_t *r)
{
    rly_status_t st;
    rly_feed_status(r->relay, &st); /* zeroes st for a source that is not relayed */
    return st;
}

static double v_relay_clients(recorder_t *r, int64_t now) { (void)now; return rly_of(r).clients; }
static double v_push_bytes(recorder_t *r, int64_t now) { (void)now; return (double)rly_of(r).push_bytes; }
static double v_push_dropped(recorder_t *r, int64_t now) { (void)now; return (double)rly_of(r).push_dropped_gops; }
static double v_push_up(recorder_t *r, int64_t now)
{
    (void)now;
    return strcmp(rly_of(r).push_state, "connected") == 0;
}

static void relay_metrics(text_t *t, daemon_t *d)
{
    per_source(t, d, "vigil_relay_clients", "gauge", "RTSP clients the relay feeds now.",
               v_relay_clients);
    per_source(t, d, "vigil_relay_push_up", "gauge", "1 while the push to the central point is "
               "connected.", v_push_up);
    per_source(t, d, "vigil_relay_push_bytes_total", "counter",
               "Media bytes pushed to the central point.", v_push_bytes);
    per_source(t, d, "vigil_relay_push_dropped_gops_total", "counter",
               "GOPs dropped because the central point was slow.", v_push_dropped);
}

static double v_live_viewers(recorder_t *r, int64_t now)
{
    (void)now;
    return live_feed_viewers(r->live);
}

static void live_metrics(text_t *t, daemon_t *d)
{
    per_source(t, d, "vigil_live_viewers", "gauge",
               "Browsers watching the source live now (WebRTC and MSE).", v_live_viewers);
}

static void source_metrics(text_t *t, daemon_t *d)
{
    per_source(t, d, "vigil_source_received_bytes_total", "counter",
               "Bytes of media received from the source.", v_bytes);
    per_source(t, d, "vigil_source_received_packets_total", "counter",
               "Packets received from the source.", v_packets);
    per_source(t, d, "vigil_source_reconnects_total", "counter",
               "Times the upstream connection was re-established.", v_reconnects);
    per_source(t, d, "vigil_source_up", "gauge", "1 while the source is recording.", v_recording);
    per_source(t, d, "vigil_source_bitrate_bits_per_second", "gauge",
               "Incoming bitrate over the last seconds.", v_bitrate);
    per_source(t, d, "vigil_source_seconds_since_last_packet", "gauge",
               "Seconds since the last packet (-1: none yet).", v_since_packet);
    per_source(t, d, "vigil_segments_written_total", "counter",
               "Segments finished and indexed.", v_segments);
    per_source(t, d, "vigil_segment_write_errors_total", "counter",
               "Segments that failed while being written.", v_write_errors);
    per_source(t, d, "vigil_index_write_failing", "gauge",
               "1 while segment rows cannot be written to the index (files are kept).",
               v_index_failing);
    per_source(t, d, "vigil_segment_commit_queue", "gauge",
               "Finished segments waiting for their index row.", v_commit_queue);
    per_source(t, d, "vigil_segment_finish_queue", "gauge",
               "Closed segments waiting to be made durable.", v_finish_queue);
    per_source(t, d, "vigil_storage_io_errors_total", "counter",
               "Write, fsync, rename or directory fsync errors the disk reported.", v_io_errors);
    per_source(t, d, "vigil_segments_unverified_total", "counter",
               "Segments indexed as unverified after an I/O error.", v_unverified);
}

static void storage_metrics(text_t *t, const ret_storage_t *st)
{
    family(t, "vigil_disk_capacity_bytes", "gauge", "Capacity media may use.");
    add(t, "vigil_disk_capacity_bytes %lld\n", (long long)st->disk.capacity_bytes);
    family(t, "vigil_disk_free_bytes", "gauge", "Free space under that capacity.");
    add(t, "vigil_disk_free_bytes %lld\n", (long long)st->disk.free_bytes);
    family(t, "vigil_disk_reserve_bytes", "gauge", "Space retention keeps free.");
    add(t, "vigil_disk_reserve_bytes %lld\n", (long long)st->disk.reserve_bytes);
    family(t, "vigil_archive_bytes", "gauge", "Bytes recorded per source.");
    for (size_t i = 0; i < st->n_sources; i++)
        add(t, "vigil_archive_bytes{source=\"%s\"} %lld\n", st->sources[i].source,
            (long long)st->sources[i].bytes);
    family(t, "vigil_archive_depth_days", "gauge", "Age of the oldest recording per source.");
    for (size_t i = 0; i < st->n_sources; i++)
        add(t, "vigil_archive_depth_days{source=\"%s\"} %.6f\n", st->sources[i].source,
            st->sources[i].depth_days);
    family(t, "vigil_archive_projected_depth_days", "gauge",
           "Depth the archive settles at with current rates and capacity.");
    for (size_t i = 0; i < st->n_sources; i++)
        add(t, "vigil_archive_projected_depth_days{source=\"%s\"} %.3f\n",
            st->sources[i].source, st->sources[i].projected_days);
    family(t, "vigil_held_bytes", "gauge", "Bytes under an evidence hold per source.");
    for (size_t i = 0; i < st->n_sources; i++)
        add(t, "vigil_held_bytes{source=\"%s\"} %lld\n", st->sources[i].source,
            (long long)st->sources[i].held_bytes);
}

/* Alarms from the index (when it could be read) and the writers' in-memory
 * ones, one family. */
static void alarm_metrics(text_t *t, daemon_t *d, const ret_storage_t *st)
{
    family(t, "vigil_alarm", "gauge", "Active alarms (1 each).");
    for (size_t i = 0; st && i < st->n_alarms; i++)
        add(t, "vigil_alarm{kind=\"%s\",severity=\"%s\"} 1\n", st->alarms[i].kind,
            st->alarms[i].severity);
    json_t *mem = svc_writer_alarms(d);
    size_t i;
    json_t *a;
    json_array_foreach(mem, i, a) {
        const char *kind = json_string_value(json_object_get(a, "kind"));
        int dup = 0;
        for (size_t k = 0; st && k < st->n_alarms; k++)
            dup |= strcmp(st->alarms[k].kind, kind) == 0;
        if (!dup)
            add(t, "vigil_alarm{kind=\"%s\",severity=\"%s\"} 1\n", kind,
                json_string_value(json_object_get(a, "severity")));
    }
    json_decref(mem);
}

static void sweep_metrics(text_t *t, daemon_t *d)
{
    family(t, "vigil_retention_sweeps_total", "counter", "Retention sweeps run.");
    add(t, "vigil_retention_sweeps_total %lld\n", (long long)atomic_load(&d->sweeps));
    family(t, "vigil_retention_sweep_seconds_total", "counter", "Time spent sweeping.");
    add(t, "vigil_retention_sweep_seconds_total %.6f\n",
        (double)atomic_load(&d->sweep_us_total) / 1e6);
    family(t, "vigil_retention_last_sweep_seconds", "gauge", "Duration of the last sweep.");
    add(t, "vigil_retention_last_sweep_seconds %.6f\n", (double)atomic_load(&d->last_sweep_us) / 1e6);
    family(t, "vigil_retention_deleted_segments_total", "counter", "Segments retention deleted.");
    add(t, "vigil_retention_deleted_segments_total %lld\n",
        (long long)atomic_load(&d->deleted_segments));
    family(t, "vigil_recording_paused", "gauge", "1 while disk policy pauses recording.");
    add(t, "vigil_recording_paused %d\n", atomic_load(&d->recording_paused));
}

char *svc_metrics_text(daemon_t *d)
{
    text_t t = {vg_malloc(4096), 0, 4096};
    t.buf[0] = '\0';
    source_metrics(&t, d);
    relay_metrics(&t, d);
    live_metrics(&t, d);
    sweep_metrics(&t, d);
    pthread_mutex_lock(&d->metrics_lock);
    const vg_config_t *cfg = daemon_config(d);
    ret_disk_t disk;
    ret_storage_t st;
    if (d->metrics_idx && ret_disk_read(cfg, d->metrics_idx, 0, &disk) == VG_OK &&
        ret_storage(d->metrics_idx, cfg, vg_clock_wall(&vg_system_clock), &disk, &st) == VG_OK) {
        storage_metrics(&t, &st);
        alarm_metrics(&t, d, &st);
        ret_storage_free(&st);
    } else {
        alarm_metrics(&t, d, NULL);
    }
    pthread_mutex_unlock(&d->metrics_lock);
    return t.buf;
}
