/* The alarm announcement_rate_low (README "Announcement reports"): one
 * active alarm naming every line and queue whose announcement rate over
 * yesterday and today so far (office days) is under [calls]
 * announcement_min_rate. Whole office days because those the report reads
 * from its daily rollup alone (no call is scanned, however busy the
 * lines); two of them so that just after midnight the rate still rests on
 * a day's calls. Run from the retention sweeper's thread on its own index
 * connection. */
#include "calls/qa.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define DAY_US (86400LL * 1000000)
#define ALARM_KIND "announcement_rate_low"

/* Appends the groups of one report under min_rate to sources and msg. */
static int scan(idx_t *idx, const char *group, int64_t from_us, int64_t now_us, double min_rate,
                char *sources, size_t ssize, char *msg, size_t msize, int *low)
{
    idx_ann_report_row_t *rows = NULL;
    size_t n = 0;
    int cut = 0;
    int rc = idx_ann_report(idx, from_us, now_us, group, NULL, &rows, &n, &cut);
    if (rc != VG_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        int64_t decided = rows[i].present + rows[i].absent + rows[i].partial;
        if (!decided || !rows[i].group[0])
            continue;
        double rate = (double)rows[i].present / (double)decided;
        if (rate >= min_rate)
            continue;
        char item[IDX_QA_NAME_MAX + 16];
        snprintf(item, sizeof(item), "%s%s", strcmp(group, "queue") == 0 ? "queue:" : "",
                 rows[i].group);
        vg_list_append(sources, ssize, item);
        size_t len = strlen(msg);
        snprintf(msg + len, msize - len, "%s%s %.1f %% (%lld of %lld)", len ? "; " : "", item,
                 rate * 100.0, (long long)(decided - rows[i].present), (long long)decided);
        (*low)++;
    }
    free(rows);
    return VG_OK;
}

int call_ann_alarm_check(idx_t *idx, double min_rate, int64_t now_us, int64_t interval_us,
                         int64_t *next_us)
{
    char sources[256] = "", detail[200] = "", msg[256];
    int low = 0, cleared = 0;
    if (now_us < *next_us)
        return VG_OK;
    *next_us = now_us + interval_us;
    int64_t from_us = now_us - 2 * DAY_US;
    int rc = idx_ann_day_start(idx, now_us, 1, &from_us);
    if (rc == VG_OK)
        rc = scan(idx, "source", from_us, now_us, min_rate, sources, sizeof(sources), detail,
                  sizeof(detail), &low);
    if (rc == VG_OK)
        rc = scan(idx, "queue", from_us, now_us, min_rate, sources, sizeof(sources), detail,
                  sizeof(detail), &low);
    if (rc != VG_OK) {
        vg_err("announcement check: cannot read the calls: %s", vg_strerror(rc));
        return rc;
    }
    if (!low)
        return idx_alarm_clear(idx, ALARM_KIND, now_us, &cleared);
    /* Message: what was found, and the threshold it is held to. */
    snprintf(msg, sizeof(msg), "announcement rate under %.1f %% since yesterday: %.150s",
             min_rate * 100.0, detail);
    return idx_alarm_raise(idx, ALARM_KIND, "warning", sources, msg, now_us);
}
