/* vigilctl status: the running daemon's live view (from its status socket)
 * with the archive's alarms (from the index). */
#include "cmd/ctl_status.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/errors.h"
#include "core/util.h"
#include "retention/retention.h"

/* Reads the daemon's one-line JSON answer. */
static json_t *read_daemon_status(const char *data_dir)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    char *path = vg_asprintf("%s/vigild.sock", data_dir);
    json_t *status = NULL;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (strlen(path) < sizeof(addr.sun_path) && fd >= 0) {
        memcpy(addr.sun_path, path, strlen(path) + 1);
        struct timeval tv = {5, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0) {
            FILE *in = fdopen(fd, "r");
            json_error_t jerr;
            if (in) {
                status = json_loadf(in, JSON_DISABLE_EOF_CHECK, &jerr);
                fclose(in);
                fd = -1;
            }
        } else {
            fprintf(stderr, "vigilctl: vigild is not running on %s (%s)\n", data_dir,
                    strerror(errno));
        }
    }
    if (fd >= 0)
        close(fd);
    free(path);
    return status;
}

static json_t *alarms_json(const vg_config_t *cfg, idx_t *idx)
{
    json_t *arr = json_array();
    ret_disk_t disk;
    ret_storage_t st;
    int64_t now = vg_clock_wall(&vg_system_clock);
    if (ret_disk_read(cfg, idx, 0, &disk) != VG_OK || ret_storage(idx, cfg, now, &disk, &st) != VG_OK)
        return arr;
    for (size_t i = 0; i < st.n_alarms; i++) {
        char raised[VG_TIME_TEXT_MAX];
        vg_time_format(st.alarms[i].raised_us, raised);
        /* an alarm may quote what an attacker sent: jansson takes UTF-8 only */
        vg_utf8_fix(st.alarms[i].sources, sizeof(st.alarms[i].sources));
        vg_utf8_fix(st.alarms[i].message, sizeof(st.alarms[i].message));
        json_array_append_new(arr, json_pack("{ss ss ss ss ss}", "kind", st.alarms[i].kind,
                                             "severity", st.alarms[i].severity, "sources",
                                             st.alarms[i].sources, "message",
                                             st.alarms[i].message, "raised", raised));
    }
    ret_storage_free(&st);
    return arr;
}

static void print_age(json_t *v)
{
    if (json_is_number(v))
        printf(" %9.1f", json_number_value(v));
    else
        printf(" %9s", "-");
}

static void print_table(json_t *status)
{
    printf("%-16s %-11s %10s %9s %9s %10s  %s\n", "SOURCE", "STATE", "KBIT/S", "SEG_AGE",
           "PKT_AGE", "RECONNECTS", "LAST ERROR");
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(status, "sources"), i, s) {
        printf("%-16s %-11s %10lld", json_string_value(json_object_get(s, "source")),
               json_string_value(json_object_get(s, "state")),
               (long long)json_integer_value(json_object_get(s, "bitrate_bps")) / 1000);
        print_age(json_object_get(s, "last_segment_age_s"));
        print_age(json_object_get(s, "last_packet_age_s"));
        printf(" %10lld  %s\n", (long long)json_integer_value(json_object_get(s, "reconnects")),
               json_string_value(json_object_get(s, "last_error")));
    }
    json_t *a;
    json_array_foreach(json_object_get(status, "alarms"), i, a) {
        printf("ALARM %s %s sources=%s: %s\n", json_string_value(json_object_get(a, "severity")),
               json_string_value(json_object_get(a, "kind")),
               json_string_value(json_object_get(a, "sources")),
               json_string_value(json_object_get(a, "message")));
    }
    if (json_object_get(status, "recording_paused") == json_true())
        printf("RECORDING PAUSED: the disk is full and nothing may be deleted\n");
}

int ctl_status(const vg_config_t *cfg, idx_t *idx, int json)
{
    json_t *status = read_daemon_status(cfg->data_dir);
    if (!status)
        return 1;
    /* The index's alarms, and the daemon's in-memory ones the index could
     * not record (it may be what fails). */
    json_t *alarms = alarms_json(cfg, idx);
    size_t i, k;
    json_t *a, *b;
    json_array_foreach(json_object_get(status, "alarms"), i, a) {
        int dup = 0;
        json_array_foreach(alarms, k, b)
            dup |= json_equal(json_object_get(a, "kind"), json_object_get(b, "kind"));
        if (!dup)
            json_array_append(alarms, a);
    }
    json_object_set_new(status, "alarms", alarms);
    if (json) {
        json_dumpf(status, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
        fputc('\n', stdout);
    } else {
        print_table(status);
    }
    json_decref(status);
    return 0;
}
