/* Call search latency through the index API, for bench/bench_calls.py:
 * runs idx_call_search on an existing index with the filters one line of
 * stdin gives ("number +7...", "suffix 4567", "agent NAME", "text WORD",
 * "newest -"), each optionally followed by FROM_US TO_US (0: open), one
 * page of 50 each, and prints each query's wall time in microseconds, the
 * rows it found, its result code and its CPU time in microseconds (the
 * machine is shared: CPU time is what a query costs, wall time what it
 * waited besides). A kind prefixed "p2-" times the second page: the first
 * is run untimed for its cursor (after); what follows a '+' in a kind is a
 * label ("text+day").
 * usage: calls_query INDEX.db < queries */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/errors.h"
#include "core/log.h"
#include "index/index.h"

typedef struct {
    size_t n;
    int64_t last_start, last_id;
} seen_t;

static void count(void *ctx, const idx_call_t *c)
{
    seen_t *s = ctx;
    s->n++;
    s->last_start = c->start_us;
    s->last_id = c->id;
}

static int64_t clock_us(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
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
        int second = strncmp(kind, "p2-", 3) == 0;
        char k[16];
        snprintf(k, sizeof(k), "%s", second ? kind + 3 : kind);
        k[strcspn(k, "+")] = '\0'; /* "text+day": a label for the same kind */
        idx_call_query_t q = {.limit = 50, .from_us = from, .to_us = to};
        if (strcmp(k, "number") == 0) {
            q.number = a;
        } else if (strcmp(k, "suffix") == 0) {
            q.number_suffix = a;
        } else if (strcmp(k, "agent") == 0) {
            q.agent = a;
        } else if (strcmp(k, "text") == 0) {
            snprintf(quoted, sizeof(quoted), "\"%s\"", a); /* as the API quotes a word */
            q.text = quoted;
        }
        seen_t seen = {0};
        int more = 0, rc = VG_OK;
        if (second) {
            rc = idx_call_search(idx, &q, count, &seen, &more);
            q.after_start_us = seen.last_start;
            q.after_id = seen.last_id;
            seen = (seen_t){0};
        }
        int64_t t0 = clock_us(CLOCK_MONOTONIC), c0 = clock_us(CLOCK_THREAD_CPUTIME_ID);
        if (rc == VG_OK && (!second || more))
            rc = idx_call_search(idx, &q, count, &seen, NULL);
        int64_t took = clock_us(CLOCK_MONOTONIC) - t0;
        int64_t cpu = clock_us(CLOCK_THREAD_CPUTIME_ID) - c0;
        printf("%s %lld %zu %d %lld\n", kind, (long long)took, seen.n, rc, (long long)cpu);
    }
    idx_close(idx);
    return 0;
}
