/* vigild as a service: systemd readiness, status line and watchdog, and the
 * status socket vigilctl reads. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>
#include <systemd/sd-daemon.h>

#include "cmd/vigild.h"
#include "core/clock.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"
#include "retention/retention.h"

#define STATUS_EVERY_US (10 * 1000000LL)

static uint64_t watchdog_usec; /* 0: no watchdog */
static int64_t last_status_us;

int svc_tick_ms(void)
{
    if (sd_watchdog_enabled(0, &watchdog_usec) <= 0)
        watchdog_usec = 0;
    if (watchdog_usec == 0)
        return 1000;
    int ms = (int)(watchdog_usec / 4000);
    return ms < 1 ? 1 : ms > 1000 ? 1000 : ms;
}

/* The recorder count in each state and the shallowest archive. */
static void status_line(daemon_t *d, char *out, size_t size)
{
    size_t recording = 0, total = 0;
    pthread_mutex_lock(&d->recorders_lock);
    total = d->n_recorders;
    for (size_t i = 0; i < d->n_recorders; i++) {
        cap_status_t st;
        cap_source_status(d->recorders[i]->capture, &st);
        recording += st.state == CAP_RECORDING;
    }
    pthread_mutex_unlock(&d->recorders_lock);
    idx_source_stats_t *stats = NULL;
    size_t n = 0;
    double depth = -1;
    int64_t now = vg_clock_wall(&vg_system_clock);
    if (idx_source_stats(d->idx, now, RET_DAY_US, &stats, &n) == VG_OK) {
        for (size_t i = 0; i < n; i++) {
            double days = stats[i].oldest_us ? (double)(now - stats[i].oldest_us) / RET_DAY_US : 0;
            if (depth < 0 || days < depth)
                depth = days;
        }
    }
    free(stats);
    snprintf(out, size, "recording %zu/%zu sources, archive depth %.0f d%s", recording, total,
             depth < 0 ? 0 : depth, atomic_load(&d->recording_paused) ? ", PAUSED (disk)" : "");
}

void svc_notify_ready(daemon_t *d)
{
    char line[160];
    status_line(d, line, sizeof(line));
    sd_notifyf(0, "READY=1\nSTATUS=%s", line);
    last_status_us = vg_clock_mono(&vg_system_clock);
}

void svc_notify_stopping(void)
{
    sd_notify(0, "STOPPING=1\nSTATUS=stopping: finalizing open segments");
}

/* Healthy when every recorder's thread showed progress within half the
 * watchdog period: a writer stuck in write() or fsync() lets the watchdog
 * fire and systemd restart us. */
static int all_threads_alive(daemon_t *d)
{
    int64_t now = vg_clock_mono(&vg_system_clock);
    int64_t limit = (int64_t)(watchdog_usec / 2);
    int alive = 1;
    pthread_mutex_lock(&d->recorders_lock);
    for (size_t i = 0; i < d->n_recorders && alive; i++) {
        if (now - cap_source_heartbeat(d->recorders[i]->capture) > limit) {
            vg_err("source=%s thread made no progress for %.1f s: withholding the watchdog",
                   d->recorders[i]->cfg->name,
                   (double)(now - cap_source_heartbeat(d->recorders[i]->capture)) / 1e6);
            alive = 0;
        }
    }
    pthread_mutex_unlock(&d->recorders_lock);
    return alive;
}

void svc_tick(daemon_t *d)
{
    if (watchdog_usec && all_threads_alive(d))
        sd_notify(0, "WATCHDOG=1");
    int64_t now = vg_clock_mono(&vg_system_clock);
    if (now - last_status_us >= STATUS_EVERY_US) {
        char line[160];
        status_line(d, line, sizeof(line));
        sd_notifyf(0, "STATUS=%s", line);
        last_status_us = now;
    }
}

/* ---- status socket ---- */

/* The relay's view of a source (README "Central monitoring point"); null
 * when the source is not relayed. */
json_t *svc_relay_json(recorder_t *r)
{
    rly_status_t rs;
    if (!r->relay || rly_feed_status(r->relay, &rs) != VG_OK)
        return json_null();
    /* Error texts quote what a server or camera said, cut to fit: made valid
     * UTF-8 here, or jansson refuses the whole source (in /sources too). */
    vg_utf8_fix(rs.push_state, sizeof(rs.push_state));
    vg_utf8_fix(rs.push_last_error, sizeof(rs.push_last_error));
    json_t *push = rs.push_configured
                       ? json_pack("{ss ss sI sI sI}", "state", rs.push_state, "last_error",
                                   rs.push_last_error, "bytes_sent", (json_int_t)rs.push_bytes,
                                   "dropped_gops", (json_int_t)rs.push_dropped_gops, "connects",
                                   (json_int_t)rs.push_connects)
                       : json_null();
    return json_pack("{sb si sI so}", "mounted", rs.mounted, "clients", rs.clients,
                     "client_dropped_gops", (json_int_t)rs.client_dropped_gops, "push", push);
}

static json_t *recorder_json(recorder_t *r, int64_t now)
{
    cap_status_t st;
    arc_writer_stats_t ws;
    cap_source_status(r->capture, &st);
    arc_writer_stats(r->writer, &ws);
    vg_utf8_fix(st.last_error, sizeof(st.last_error));
    vg_utf8_fix(st.codecs, sizeof(st.codecs));
    json_t *o = json_pack("{ss ss ss ss sI sI sI sI sI sI sI}", "source", r->cfg->name, "state",
                          cap_state_name(st.state), "last_error", st.last_error, "codecs",
                          st.codecs, "bitrate_bps", (json_int_t)st.bitrate_bps, "packets",
                          (json_int_t)st.packets, "bytes", (json_int_t)st.bytes, "reconnects",
                          (json_int_t)st.reconnects, "segments_written",
                          (json_int_t)ws.segments_written, "write_errors",
                          (json_int_t)ws.write_errors, "open_segment_bytes",
                          (json_int_t)arc_writer_open_bytes(r->writer));
    json_object_set_new(o, "last_segment_age_s",
                        ws.last_segment_wall_us ? json_real((double)(now - ws.last_segment_wall_us) / 1e6)
                                                : json_null());
    json_object_set_new(o, "last_packet_age_s",
                        st.last_packet_wall_us ? json_real((double)(now - st.last_packet_wall_us) / 1e6)
                                               : json_null());
    json_object_set_new(o, "relay", svc_relay_json(r));
    /* Storage health the index cannot be asked about while it is what fails. */
    json_object_set_new(o, "index_write_failing", json_boolean(ws.index_failing));
    json_object_set_new(o, "commit_queue", json_integer(ws.commit_queue));
    json_object_set_new(o, "finish_queue", json_integer(ws.finish_queue));
    json_object_set_new(o, "storage_io_errors", json_integer((json_int_t)ws.io_errors));
    json_object_set_new(o, "unverified_segments",
                        json_integer((json_int_t)ws.unverified_segments));
    return o;
}

/* The writers' alarms, kept in memory because the index may be what fails
 * (the shape of vigilctl status's alarms from the index):
 * index_write_failed (rows wait for the index) and storage_io_error (the
 * disk reported a write, fsync, rename or directory fsync error; cleared once
 * a later segment of each source named finishes cleanly). Caller holds
 * recorders_lock. */
static json_t *writer_alarms_locked(daemon_t *d)
{
    static const struct {
        const char *kind, *severity, *message;
    } kinds[] = {
        {"index_write_failed", "critical",
         "segment rows cannot be written to the index; the files are kept and their rows "
         "retried in order"},
        {"storage_io_error", "critical",
         "the disk reported a write, fsync, rename or directory fsync error; the segments "
         "it hit are indexed as unverified (vigilctl check)"},
    };
    json_t *list = json_array();
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        char sources[1024] = "";
        int any = 0;
        for (size_t i = 0; i < d->n_recorders; i++) {
            arc_writer_stats_t ws;
            arc_writer_stats(d->recorders[i]->writer, &ws);
            if (k == 0 ? ws.index_failing : ws.io_error_active) {
                vg_list_append(sources, sizeof(sources), d->recorders[i]->cfg->name);
                any = 1;
            }
        }
        if (any)
            json_array_append_new(list, json_pack("{ss ss ss ss}", "kind", kinds[k].kind,
                                                  "severity", kinds[k].severity, "sources",
                                                  sources, "message", kinds[k].message));
    }
    return list;
}

json_t *svc_writer_alarms(daemon_t *d)
{
    pthread_mutex_lock(&d->recorders_lock);
    json_t *list = writer_alarms_locked(d);
    pthread_mutex_unlock(&d->recorders_lock);
    return list;
}

char *svc_status_json(daemon_t *d)
{
    int64_t now = vg_clock_wall(&vg_system_clock);
    json_t *sources = json_array();
    pthread_mutex_lock(&d->recorders_lock);
    for (size_t i = 0; i < d->n_recorders; i++)
        json_array_append_new(sources, recorder_json(d->recorders[i], now));
    json_t *alarms = writer_alarms_locked(d);
    pthread_mutex_unlock(&d->recorders_lock);
    json_t *root = json_pack("{si sb so so}", "pid", (int)getpid(), "recording_paused",
                             atomic_load(&d->recording_paused), "sources", sources, "alarms",
                             alarms);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text)
        abort();
    return text;
}

static void serve_one(daemon_t *d, int fd)
{
    char *text = svc_status_json(d);
    if (vg_write_all(fd, text, strlen(text)) != VG_OK || vg_write_all(fd, "\n", 1) != VG_OK)
        vg_debug("status client went away: %s", strerror(errno));
    free(text);
}

static void *status_thread(void *arg)
{
    daemon_t *d = arg;
    pthread_setname_np(pthread_self(), "status");
    while (!atomic_load(&d->stopping)) {
        struct pollfd p = {.fd = d->status_fd, .events = POLLIN};
        if (poll(&p, 1, 250) <= 0)
            continue;
        int fd = accept4(d->status_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        struct timeval tv = {2, 0}; /* a client that does not read cannot hold us */
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        serve_one(d, fd);
        close(fd);
    }
    return NULL;
}

static int bind_status_socket(daemon_t *d)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    d->status_path = vg_asprintf("%s/vigild.sock", daemon_config(d)->data_dir);
    if (strlen(d->status_path) >= sizeof(addr.sun_path)) {
        vg_err("status socket path too long: %s", d->status_path);
        return VG_EINVAL;
    }
    memcpy(addr.sun_path, d->status_path, strlen(d->status_path) + 1);
    unlink(d->status_path); /* a stale one from a crash; the data_dir lock is ours */
    d->status_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    /* Owner only: the status names sources and errors. Set before bind so the
     * socket never exists with wider permissions. */
    mode_t old = umask(0177);
    int ok = d->status_fd >= 0 && bind(d->status_fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 &&
             listen(d->status_fd, 8) == 0;
    umask(old);
    if (!ok) {
        vg_err("cannot open status socket %s: %s", d->status_path, strerror(errno));
        return VG_EIO;
    }
    return VG_OK;
}

int svc_status_start(daemon_t *d)
{
    int rc = bind_status_socket(d);
    if (rc != VG_OK)
        return rc;
    rc = vigild_start_thread(&d->status_thread, status_thread, d);
    d->status_started = rc == VG_OK;
    return rc;
}

void svc_status_stop(daemon_t *d)
{
    if (d->status_started) {
        pthread_join(d->status_thread, NULL);
        d->status_started = 0;
    }
    if (d->status_fd >= 0) {
        close(d->status_fd);
        d->status_fd = -1;
        unlink(d->status_path);
    }
    free(d->status_path);
    d->status_path = NULL;
}
