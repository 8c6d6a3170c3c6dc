/* libav's log messages, brought into our log format. libav may print a URL
 * it is working on, and camera URLs carry passwords: mask them. */
#include "capture.h"

#include <stdatomic.h>
#include <string.h>

#include "core/log.h"

static atomic_int max_level = AV_LOG_ERROR;

/* Replaces the "user:pass@" after "scheme://" with "***@", in place. */
static void mask_credentials(char *line)
{
    char *p = line;
    while ((p = strstr(p, "://")) != NULL) {
        char *auth = p + 3;
        size_t host_len = strcspn(auth, "/ \t?#");
        char *at = memchr(auth, '@', host_len);
        if (at) {
            memmove(auth + 3, at, strlen(at) + 1);
            memcpy(auth, "***", 3);
        }
        p = auth;
    }
}

static void libav_callback(void *avcl, int level, const char *fmt, va_list vl)
{
    if (level > atomic_load(&max_level))
        return;
    char line[1024];
    int print_prefix = 1;
    av_log_format_line2(avcl, level, fmt, vl, line, sizeof(line), &print_prefix);
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = '\0';
    if (!len)
        return;
    mask_credentials(line);
    vg_log(level <= AV_LOG_ERROR ? VG_LOG_ERR : level <= AV_LOG_WARNING ? VG_LOG_WARNING
                                                                         : VG_LOG_DEBUG,
           "libav: %s", line);
}

void cap_route_libav_log(int max_av_level)
{
    atomic_store(&max_level, max_av_level);
    av_log_set_callback(libav_callback);
}
