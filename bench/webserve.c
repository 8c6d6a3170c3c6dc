/* The HTTP API alone, for bench/bench_web.py: serves an existing data_dir's
 * index without vigild's start-up recovery (which would drop the synthetic
 * rows, since they have no files) and without capture threads. Like vigild
 * it gives the index the office zone of the announcement rollup first.
 * WEBSERVE_ANN_SCAN=1 makes announcement reports scan the calls (the
 * "before" of bench/bench_reports.py).
 * usage: webserve CONFIG HOST:PORT   (prints "READY port=N", stops on SIGTERM) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calls/calls.h"
#include "core/config.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"
#include "web/web.h"

int main(int argc, char **argv)
{
    vg_config_t cfg;
    char err[512];
    web_t *web = NULL;
    if (argc != 3) {
        fprintf(stderr, "usage: webserve CONFIG HOST:PORT\n");
        return 2;
    }
    if (vg_config_load(argv[1], &cfg, err, sizeof(err)) != VG_OK) {
        fprintf(stderr, "webserve: %s\n", err);
        return 2;
    }
    vg_log_set_level(VG_LOG_WARNING);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    const char *scan = getenv("WEBSERVE_ANN_SCAN");
    idx_ann_report_set_scan(scan && strcmp(scan, "1") == 0);
    char *db = vg_asprintf("%s/index.db", cfg.data_dir);
    idx_t *idx = NULL;
    if (idx_open(db, 0, &idx) == VG_OK)
        call_ann_zone_apply(idx, cfg.http.timezone);
    idx_close(idx);
    free(db);
    web_config_t wc = {.cfg = &cfg, .data_dir = cfg.data_dir, .listen = argv[2]};
    int rc = web_start(&wc, &web);
    if (rc == VG_OK && web) {
        printf("READY port=%d\n", web_bound_port(web));
        fflush(stdout);
        int sig = 0;
        sigwait(&set, &sig);
    }
    web_stop(web);
    vg_config_free(&cfg);
    return rc == VG_OK ? 0 : 1;
}
