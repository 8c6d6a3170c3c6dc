/* vigilctl: the admin tool. Reads the same config as vigild and works on the
 * index and archive directly (safe while vigild runs: WAL readers, and files
 * being written are recognised by their lock).
 * Exit codes: 0 ok, 1 a problem was found or an operation failed, 2 usage or
 * bad input (unknown source, inverted range, bad time). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "archive/archive.h"
#include "capture/capture.h"
#include "core/config.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"
#include "index/index.h"

#define EXIT_PROBLEM 1
#define EXIT_USAGE 2

typedef struct {
    vg_config_t cfg;
    idx_t *idx;
    int json;
    int deep;
    const char *from, *to, *out;
} ctl_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: vigilctl -c CONFIG COMMAND [ARGS]\n"
            "commands:\n"
            "  segments SOURCE [--from T] [--to T] [--json]   list recorded segments\n"
            "  check [--deep]                                 index and disk agree? (--deep re-hashes)\n"
            "  export SOURCE --from T --to T -o FILE          one clip, remuxed without re-encoding\n"
            "T is RFC 3339 (2026-11-27T10:00:00Z) or unix seconds.\n");
}

static int open_index(ctl_t *c)
{
    char *db = vg_asprintf("%s/index.db", c->cfg.data_dir);
    int rc = idx_open(db, 1, &c->idx);
    if (rc != VG_OK)
        fprintf(stderr, "vigilctl: cannot open the index %s (has vigild run yet?)\n", db);
    free(db);
    return rc;
}

static int parse_time_arg(const char *name, const char *text, int64_t fallback, int64_t *out)
{
    if (!text) {
        *out = fallback;
        return VG_OK;
    }
    if (vg_time_parse(text, out) != VG_OK) {
        fprintf(stderr, "vigilctl: bad %s time '%s' (use RFC 3339 or unix seconds)\n", name, text);
        return VG_EINVAL;
    }
    return VG_OK;
}

/* Resolves --from/--to; an inverted or empty range is bad input. */
static int parse_range(const ctl_t *c, int64_t *from, int64_t *to)
{
    if (parse_time_arg("--from", c->from, 0, from) != VG_OK ||
        parse_time_arg("--to", c->to, INT64_MAX, to) != VG_OK)
        return VG_EINVAL;
    if (*from >= *to) {
        fprintf(stderr, "vigilctl: --from must be before --to\n");
        return VG_EINVAL;
    }
    return VG_OK;
}

static int check_source(ctl_t *c, const char *source)
{
    int found = 0;
    if (!vg_source_name_valid(source) || idx_source_exists(c->idx, source, &found) != VG_OK ||
        !found) {
        fprintf(stderr, "vigilctl: unknown source '%s'\n", source);
        return VG_ENOTFOUND;
    }
    return VG_OK;
}

static json_t *segment_json(const idx_segment_t *s)
{
    char start[VG_TIME_TEXT_MAX], end[VG_TIME_TEXT_MAX];
    vg_time_format(s->start_us, start);
    vg_time_format(s->end_us, end);
    return json_pack("{sI ss ss ss sI ss ss}", "id", (json_int_t)s->id, "source", s->source,
                     "start", start, "end", end, "bytes", (json_int_t)s->bytes, "sha256",
                     s->sha256, "path", s->path);
}

static void print_segments(const idx_segment_t *segs, size_t n, int json)
{
    if (json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, segment_json(&segs[i]));
        json_dumpf(arr, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
        json_decref(arr);
        return;
    }
    printf("%-8s %-24s %-24s %10s  %s\n", "ID", "START", "END", "BYTES", "PATH");
    for (size_t i = 0; i < n; i++) {
        char start[VG_TIME_TEXT_MAX], end[VG_TIME_TEXT_MAX];
        vg_time_format(segs[i].start_us, start);
        vg_time_format(segs[i].end_us, end);
        printf("%-8lld %-24s %-24s %10lld  %s\n", (long long)segs[i].id, start, end,
               (long long)segs[i].bytes, segs[i].path);
    }
}

static int cmd_segments(ctl_t *c, const char *source)
{
    int64_t from, to;
    if (parse_range(c, &from, &to) != VG_OK || check_source(c, source) != VG_OK)
        return EXIT_USAGE;
    idx_segment_t *segs = NULL;
    size_t n = 0;
    if (idx_segments_in_range(c->idx, source, from, to, &segs, &n) != VG_OK)
        return EXIT_PROBLEM;
    print_segments(segs, n, c->json);
    free(segs);
    return 0;
}

static void report_problem(void *ctx, arc_problem_t problem, const char *path, const char *detail)
{
    static const char *names[] = {"row-without-file", "size-mismatch", "hash-mismatch",
                                  "file-without-row"};
    (void)ctx;
    printf("%s %s: %s\n", names[problem], path, detail);
}

static int cmd_check(ctl_t *c)
{
    arc_reconcile_opts_t opts = {.deep = c->deep, .report = report_problem};
    int problems = 0;
    int rc = arc_reconcile(c->cfg.data_dir, c->idx, &opts, &problems);
    if (rc != VG_OK) {
        fprintf(stderr, "vigilctl: check failed: %s\n", vg_strerror(rc));
        return EXIT_PROBLEM;
    }
    if (problems) {
        printf("%d problem(s) found\n", problems);
        return EXIT_PROBLEM;
    }
    printf("ok: index and disk agree%s\n", c->deep ? " (every file re-hashed)" : "");
    return 0;
}

static int cmd_export(ctl_t *c, const char *source)
{
    int64_t from, to;
    if (!c->from || !c->to || !c->out) {
        fprintf(stderr, "vigilctl: export needs --from, --to and -o\n");
        return EXIT_USAGE;
    }
    if (parse_range(c, &from, &to) != VG_OK || check_source(c, source) != VG_OK)
        return EXIT_USAGE;
    idx_segment_t *segs = NULL;
    size_t n = 0;
    if (idx_segments_in_range(c->idx, source, from, to, &segs, &n) != VG_OK)
        return EXIT_PROBLEM;
    char err[256];
    int rc = arc_export(c->cfg.data_dir, segs, n, from, to, c->out, err, sizeof(err));
    free(segs);
    if (rc != VG_OK) {
        fprintf(stderr, "vigilctl: export failed: %s\n", err);
        return rc == VG_ENOTFOUND || rc == VG_EINVAL ? EXIT_USAGE : EXIT_PROBLEM;
    }
    printf("%s\n", c->out);
    return 0;
}

static int dispatch(ctl_t *c, int argc, char **argv)
{
    const char *cmd = argv[0];
    if (strcmp(cmd, "segments") == 0 && argc == 2)
        return cmd_segments(c, argv[1]);
    if (strcmp(cmd, "check") == 0 && argc == 1)
        return cmd_check(c);
    if (strcmp(cmd, "export") == 0 && argc == 2)
        return cmd_export(c, argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'}, {"deep", no_argument, NULL, 'd'},
        {"from", required_argument, NULL, 'f'}, {"to", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    ctl_t c = {0};
    const char *config_path = NULL;
    int opt;
    /* GNU getopt moves operands after the options, so options may come
     * before or after the command. */
    while ((opt = getopt_long(argc, argv, "c:o:h", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_path = optarg; break;
        case 'o': c.out = optarg; break;
        case 'j': c.json = 1; break;
        case 'd': c.deep = 1; break;
        case 'f': c.from = optarg; break;
        case 't': c.to = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (!config_path || optind >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    char err[512];
    if (vg_config_load(config_path, &c.cfg, err, sizeof(err)) != VG_OK) {
        fprintf(stderr, "vigilctl: %s\n", err);
        return EXIT_USAGE;
    }
    vg_log_set_level(VG_LOG_WARNING);
    cap_route_libav_log(AV_LOG_ERROR);
    int rc = open_index(&c) == VG_OK ? 0 : EXIT_PROBLEM;
    if (rc == 0) {
        rc = dispatch(&c, argc - optind, argv + optind);
    }
    idx_close(c.idx);
    vg_config_free(&c.cfg);
    return rc;
}
