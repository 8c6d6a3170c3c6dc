/* libav's log messages, brought into our log format. libav may print a URL
 * it is working on, and camera URLs carry passwords: mask them. */
#include "capture.h"

#include <stdatomic.h>
#include <string.h>

#include "core/log.h"

static atomic_int max_level = AV_LOG_ERROR;

/* Replaces text[0..n) by "***" in place, never growing the line: a secret
 * shorter than that becomes as many '*'. */
static char *mask_span(char *text, size_t n)
{
    if (n < 3) {
        memset(text, '*', n);
        return text + n;
    }
    memmove(text + 3, text + n, strlen(text + n) + 1);
    memcpy(text, "***", 3);
    return text + 3;
}

void cap_mask_secrets(char *line)
{
    /* "scheme://user:pass@host": the user information ends at the LAST '@'
     * of the authority, so a password holding '@' is hidden whole. */
    char *p = line;
    while ((p = strstr(p, "://")) != NULL) {
        char *auth = p + 3;
        size_t host_len = strcspn(auth, "/?# \t\"'<>");
        char *at = memrchr(auth, '@', host_len);
        p = at ? mask_span(auth, (size_t)(at - auth)) : auth;
    }
    /* Query parameters that carry a secret: SRT's passphrase (and the
     * password some cameras take in the query). */
    static const char *const keys[] = {"passphrase=", "password=", "passwd="};
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        p = line;
        while ((p = strcasestr(p, keys[k])) != NULL) {
            char *v = p + strlen(keys[k]);
            size_t n = strcspn(v, "& \t\"'<>");
            p = n && strncmp(v, "***", n) != 0 ? mask_span(v, n) : v + n;
        }
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
    cap_mask_secrets(line);
    vg_log(level <= AV_LOG_ERROR ? VG_LOG_ERR : level <= AV_LOG_WARNING ? VG_LOG_WARNING
                                                                         : VG_LOG_DEBUG,
           "libav: %s", line);
}

void cap_route_libav_log(int max_av_level)
{
    atomic_store(&max_level, max_av_level);
    av_log_set_callback(libav_callback);
}
