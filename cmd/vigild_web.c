/* vigild's side of the HTTP API: starts web/ and answers its questions about
 * live sources from the recorders, so web/ never sees capture internals. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/vigild.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

/* Bitrate is bytes received between two looks at a source, at least this
 * far apart: a shorter window would swing with every keyframe. */
#define RATE_WINDOW_US (5LL * 1000000)

typedef struct {
    char name[64];
    int64_t bytes, at_us; /* the sample the rate is measured from */
    int64_t bps;
} rate_t;

static pthread_mutex_t rates_lock = PTHREAD_MUTEX_INITIALIZER;
static rate_t *rates;
static size_t n_rates;

/* The source's bitrate from its byte counter; 0 until a window has passed. */
static int64_t bitrate(const char *name, int64_t bytes, int64_t now_us)
{
    pthread_mutex_lock(&rates_lock);
    rate_t *r = NULL;
    for (size_t i = 0; i < n_rates && !r; i++)
        r = strcmp(rates[i].name, name) == 0 ? &rates[i] : NULL;
    if (!r) {
        rates = vg_realloc(rates, (n_rates + 1) * sizeof(*rates));
        r = &rates[n_rates++];
        memset(r, 0, sizeof(*r));
        snprintf(r->name, sizeof(r->name), "%s", name);
        r->bytes = bytes;
        r->at_us = now_us;
    }
    if (bytes < r->bytes) { /* counter restarted (reload): measure anew */
        r->bytes = bytes;
        r->at_us = now_us;
        r->bps = 0;
    } else if (now_us - r->at_us >= RATE_WINDOW_US) {
        r->bps = (bytes - r->bytes) * 8 * 1000000 / (now_us - r->at_us);
        r->bytes = bytes;
        r->at_us = now_us;
    }
    int64_t bps = r->bps;
    pthread_mutex_unlock(&rates_lock);
    return bps;
}

static int source_status(void *ctx, const char *name, web_source_status_t *out)
{
    daemon_t *d = ctx;
    cap_status_t st;
    int found = 0;
    pthread_mutex_lock(&d->recorders_lock);
    for (size_t i = 0; i < d->n_recorders && !found; i++) {
        recorder_t *r = d->recorders[i];
        if (r && r->capture && strcmp(r->cfg->name, name) == 0) {
            cap_source_status(r->capture, &st);
            out->relay = svc_relay_json(r);
            found = 1;
        }
    }
    pthread_mutex_unlock(&d->recorders_lock);
    if (!found)
        return VG_ENOTFOUND;
    snprintf(out->state, sizeof(out->state), "%s", cap_state_name(st.state));
    snprintf(out->last_error, sizeof(out->last_error), "%s", st.last_error);
    snprintf(out->codecs, sizeof(out->codecs), "%s", st.codecs);
    out->bitrate_bps = bitrate(name, st.bytes, vg_clock_mono(&vg_system_clock));
    return VG_OK;
}

static const vg_config_t *current_config(void *ctx)
{
    return daemon_config(ctx);
}

static json_t *live_alarms(void *ctx)
{
    return svc_writer_alarms(ctx);
}

static char *metrics_text(void *ctx)
{
    return svc_metrics_text(ctx);
}

/* Tests move the exporter's wall clock forward to reach keep_days: with
 * VIGIL_TEST_EXPORT_CLOCK naming a file, its content (seconds) is added to
 * the system's wall clock at each reading. */
static int64_t offset_wall(void *ctx)
{
    long long offset_s = 0;
    FILE *f = fopen(ctx, "r");
    if (f) {
        if (fscanf(f, "%lld", &offset_s) != 1)
            offset_s = 0;
        fclose(f);
    }
    return vg_clock_wall(&vg_system_clock) + offset_s * 1000000;
}

static int64_t system_mono(void *ctx)
{
    (void)ctx;
    return vg_clock_mono(&vg_system_clock);
}

static vg_clock_t export_clock;

static int start_exporter(daemon_t *d, const vg_config_t *cfg)
{
    const char *offset_file = getenv("VIGIL_TEST_EXPORT_CLOCK");
    const char *cleanup_ms = getenv("VIGIL_TEST_EXPORT_CLEANUP_MS");
    export_clock = vg_system_clock;
    if (offset_file && *offset_file)
        export_clock = (vg_clock_t){offset_wall, system_mono, (void *)offset_file};
    pb_exporter_config_t xc = {.data_dir = cfg->data_dir,
                               .clock = &export_clock,
                               .keep_days = cfg->exports_keep_days,
                               .cleanup_ms = cleanup_ms ? atoi(cleanup_ms) : 0};
    return pb_exporter_start(&xc, &d->exporter);
}

int vigild_web_start(daemon_t *d)
{
    const vg_config_t *cfg = daemon_config(d);
    if (cfg->http.listen && cfg->http.listen[0] && start_exporter(d, cfg) != VG_OK)
        vg_err("exports: cannot start the export worker; export routes answer 503");
    web_config_t wc = {
        .cfg = cfg,
        .data_dir = cfg->data_dir,
        .clock = &vg_system_clock,
        .source_status = source_status,
        .current_config = current_config,
        .metrics_text = metrics_text,
        .live_alarms = live_alarms,
        .status_ctx = d,
        .exporter = d->exporter,
        .live = d->live,
    };
    return web_start(&wc, &d->web);
}
