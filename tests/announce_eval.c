/* announce_eval: classifies every call of an announcement corpus (made by
 * tests/tools/announce_corpus.py) with the announcement check and compares
 * with the ground truth. Prints a table per difficulty, the accuracy, the
 * share of calls without the announcement reported present, the CPU the
 * checks took per hour of audio and calls/s; with --min-accuracy and
 * --max-false-present it exits 1 when a threshold is missed.
 *
 * usage: announce_eval --ref REF.wav --manifest corpus.tsv [--window 20]
 *        [--min-accuracy 0.99] [--max-false-present 0.005] [--markdown] [--vad] [-v]
 * --vad also runs the voice activity detector over every call's whole audio
 * and reports its CPU per hour of audio (what call_detect = vad costs). 
 * The manifest has one call a line: file<TAB>truth<TAB>difficulty, file
 * relative to the manifest's directory, truth present|absent|partial|unknown. */
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "calls/announce.h"
#include "calls/vad.h"
#include "core/errors.h"

#define MAX_DIFF 32

typedef struct {
    char name[64];
    int calls, correct, absent, false_present;
} diff_t;

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void count_call(void *ctx, int64_t start_us, int64_t end_us)
{
    (void)start_us;
    (void)end_us;
    (*(int *)ctx)++;
}

static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    const char *ref_path = NULL, *manifest = NULL;
    double window = 20.0, min_acc = -1.0, max_fp = -1.0;
    int markdown = 0, verbose = 0, vad = 0, vad_calls = 0;
    double vad_cpu = 0.0, vad_audio_s = 0.0;
    static const struct option opts[] = {
        {"ref", required_argument, 0, 'r'},
        {"manifest", required_argument, 0, 'm'},
        {"window", required_argument, 0, 'w'},
        {"min-accuracy", required_argument, 0, 'a'},
        {"max-false-present", required_argument, 0, 'f'},
        {"markdown", no_argument, 0, 'M'},
        {"verbose", no_argument, 0, 'v'},
        {"vad", no_argument, 0, 'V'},
        {0, 0, 0, 0},
    };
    int o;
    while ((o = getopt_long(argc, argv, "v", opts, NULL)) != -1) {
        switch (o) {
        case 'r': ref_path = optarg; break;
        case 'm': manifest = optarg; break;
        case 'w': window = atof(optarg); break;
        case 'a': min_acc = atof(optarg); break;
        case 'f': max_fp = atof(optarg); break;
        case 'M': markdown = 1; break;
        case 'v': verbose = 1; break;
        case 'V': vad = 1; break;
        default: return 2;
        }
    }
    if (!ref_path || !manifest) {
        fprintf(stderr, "usage: announce_eval --ref REF.wav --manifest corpus.tsv [options]\n");
        return 2;
    }
    char err[512];
    call_announce_ref_t *ref = NULL;
    if (call_announce_ref_load(ref_path, &ref, err, sizeof err) != VG_OK) {
        fprintf(stderr, "reference: %s\n", err);
        return 2;
    }
    FILE *mf = fopen(manifest, "r");
    if (!mf) {
        perror(manifest);
        return 2;
    }
    char *mcopy = strdup(manifest);
    const char *dir = dirname(mcopy);

    diff_t diffs[MAX_DIFF];
    int n_diff = 0, total = 0, correct = 0, absent = 0, false_present = 0;
    double cpu = 0.0, audio_s = 0.0, wall0 = wall_now();
    char line[1024];
    while (fgets(line, sizeof line, mf)) {
        char *file = strtok(line, "\t\n"), *truth = strtok(NULL, "\t\n"), *diff = strtok(NULL, "\t\n");
        if (!file || !truth || !diff || file[0] == '#')
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, file);
        int16_t *pcm = NULL;
        size_t n = 0;
        if (call_wav_load(path, &pcm, &n, err, sizeof err) != VG_OK) {
            fprintf(stderr, "%s\n", err);
            return 2;
        }
        call_announce_result_t res;
        double c0 = cpu_now();
        call_announce_check(ref, pcm, n, window, &res);
        cpu += cpu_now() - c0;
        if (vad) {
            call_vad_config_t vc = {.gap_s = 8.0, .min_call_s = 2.0};
            double v0 = cpu_now();
            call_vad_t *v = call_vad_new(&vc, count_call, &vad_calls);
            for (size_t i = 0; i < n; i += 160)
                call_vad_feed(v, pcm + i, n - i < 160 ? n - i : 160, 1000000 + (int64_t)i * 125);
            call_vad_flush(v);
            call_vad_free(v);
            vad_cpu += cpu_now() - v0;
            vad_audio_s += n / 8000.0;
        }
        size_t used = call_announce_samples_wanted(ref, window);
        audio_s += (double)(n < used ? n : used) / 8000.0;
        free(pcm);

        const char *got = call_announce_state_name(res.state);
        int ok = strcmp(got, truth) == 0;
        int d = 0;
        while (d < n_diff && strcmp(diffs[d].name, diff) != 0)
            d++;
        if (d == n_diff && n_diff < MAX_DIFF) {
            memset(&diffs[d], 0, sizeof diffs[d]);
            snprintf(diffs[d].name, sizeof diffs[d].name, "%s", diff);
            n_diff++;
        }
        if (d < n_diff) {
            diffs[d].calls++;
            diffs[d].correct += ok;
        }
        total++;
        correct += ok;
        if (strcmp(truth, "absent") == 0) {
            absent++;
            int fp = res.state == CALL_ANN_PRESENT;
            false_present += fp;
            if (d < n_diff) {
                diffs[d].absent++;
                diffs[d].false_present += fp;
            }
        }
        if (verbose || !ok)
            printf("%s %s truth=%s got=%s score=%.3f coverage=%.2f offset=%.2f\n", ok ? "ok  " : "MISS",
                   file, truth, got, res.score, res.coverage, res.offset_s);
    }
    fclose(mf);
    double wall = wall_now() - wall0;
    if (total == 0) {
        fprintf(stderr, "no calls in %s\n", manifest);
        return 2;
    }
    double acc = (double)correct / total;
    double fp_rate = absent ? (double)false_present / absent : 0.0;
    if (markdown)
        printf("| difficulty | calls | correct | accuracy | absent calls reported present |\n"
               "|---|---|---|---|---|\n");
    for (int d = 0; d < n_diff; d++) {
        char fp[32] = "-";
        if (diffs[d].absent)
            snprintf(fp, sizeof fp, "%d of %d", diffs[d].false_present, diffs[d].absent);
        printf(markdown ? "| %s | %d | %d | %.1f %% | %s |\n" : "%-14s calls %4d correct %4d (%5.1f %%) false present %s\n",
               diffs[d].name, diffs[d].calls, diffs[d].correct, 100.0 * diffs[d].correct / diffs[d].calls, fp);
    }
    printf(markdown ? "| **all** | %d | %d | %.2f %% | %d of %d (%.2f %%) |\n"
                    : "all            calls %4d correct %4d (%.2f %%) false present %d of %d (%.2f %%)\n",
           total, correct, 100.0 * acc, false_present, absent, 100.0 * fp_rate);
    printf("%sCPU %.3f s for %.0f s of analysed audio: %.1f s per hour of audio, %.1f ms per call, "
           "%.1f calls/s per core (CPU), %.1f calls/s (wall, including reading)\n",
           markdown ? "\n" : "", cpu, audio_s, audio_s > 0 ? cpu * 3600.0 / audio_s : 0.0,
           1000.0 * cpu / total, cpu > 0 ? total / cpu : 0.0, wall > 0 ? total / wall : 0.0);
    if (vad && vad_audio_s > 0)
        printf("%sVAD: CPU %.3f s for %.0f s of audio: %.2f s per hour of audio (%.3f %% of a core per line), %d calls found\n",
               markdown ? "\n" : "", vad_cpu, vad_audio_s, vad_cpu * 3600.0 / vad_audio_s,
               100.0 * vad_cpu / vad_audio_s, vad_calls);
    call_announce_ref_free(ref);
    free(mcopy);
    int fail = 0;
    if (min_acc >= 0 && acc < min_acc) {
        printf("FAIL: accuracy %.4f < %.4f\n", acc, min_acc);
        fail = 1;
    }
    if (max_fp >= 0 && fp_rate > max_fp) {
        printf("FAIL: false present rate %.4f > %.4f\n", fp_rate, max_fp);
        fail = 1;
    }
    return fail;
}
