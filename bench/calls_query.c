/* Call search latency through the index API, for bench/bench_calls.py:
 * runs idx_call_search on an existing index with the filters one line of
 * stdin gives ("number +7...", "suffix 4567", "agent NAME FROM_US TO_US",
 * "text WORD", "newest"), one page of 50 each, and prints each query's
 * wall time in microseconds and the rows it found.
 * usage: calls_query INDEX.db < queries */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/errors.h"
#include "core/log.h"
#include "index/index.h"

static void count(void *ctx, const idx_call_t *c)
{
    (void)c;
    (*(size_t *)ctx)++;
}

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int main(int argc, char **argv)
{
    idx_t *idx = NULL;
    char line[512];
    if (argc != 2) {
        fprintf(stderr, "usage: calls_query INDEX.db < queries\n");
        return 2;
    }
    vg_log_set_level(VG_LOG_WARNING);
    if (idx_open(argv[1], 1, &idx) != VG_OK)
        return 1;
    while (fgets(line, sizeof(line), stdin)) {
        char kind[16] = "", a[256] = "", quoted[300];
        long long from = 0, to = 0;
        line[strcspn(line, "\n")] = '\0';
        if (sscanf(line, "%15s %255s %lld %lld", kind, a, &from, &to) < 1)
            continue;
        idx_call_query_t q = {.limit = 50};
        if (strcmp(kind, "number") == 0) {
            q.number = a;
        } else if (strcmp(kind, "suffix") == 0) {
            q.number_suffix = a;
        } else if (strcmp(kind, "agent") == 0) {
            q.agent = a;
            q.from_us = from;
            q.to_us = to;
        } else if (strcmp(kind, "text") == 0) {
            snprintf(quoted, sizeof(quoted), "\"%s\"", a); /* as the API quotes a word */
            q.text = quoted;
        }
        size_t n = 0;
        int64_t t0 = now_us();
        int rc = idx_call_search(idx, &q, count, &n, NULL);
        int64_t took = now_us() - t0;
        printf("%s %lld %zu %d\n", kind, (long long)took, n, rc);
    }
    idx_close(idx);
    return 0;
}
