/* stderr logger with sd-daemon priority prefixes; see log.h. */
#include "log.h"
#include "errors.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static atomic_int log_level = VG_LOG_INFO;

void vg_log_set_level(vg_log_level_t level)
{
    atomic_store(&log_level, (int)level);
}

int vg_log_parse_level(const char *name, vg_log_level_t *out)
{
    static const struct { const char *name; vg_log_level_t level; } names[] = {
        {"error", VG_LOG_ERR}, {"warning", VG_LOG_WARNING}, {"notice", VG_LOG_NOTICE},
        {"info", VG_LOG_INFO}, {"debug", VG_LOG_DEBUG},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(name, names[i].name) == 0) {
            *out = names[i].level;
            return VG_OK;
        }
    }
    return VG_EINVAL;
}

void vg_log(vg_log_level_t level, const char *fmt, ...)
{
    if ((int)level > atomic_load(&log_level))
        return;
    char line[2048];
    int n = snprintf(line, sizeof(line), "<%d>", (int)level);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    /* A message must stay one line so journald and grep see one event. */
    for (size_t i = (size_t)n; i < len; i++) {
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    }
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void vg_url_redact(const char *url, char *out, size_t out_size)
{
    if (out_size == 0)
        return;
    const char *scheme_end = strstr(url, "://");
    const char *auth_start = scheme_end ? scheme_end + 3 : url;
    const char *host_end = auth_start + strcspn(auth_start, "/?#");
    const char *at = NULL;
    for (const char *p = auth_start; p < host_end; p++) {
        if (*p == '@')
            at = p;
    }
    if (!at) {
        snprintf(out, out_size, "%s", url);
        return;
    }
    snprintf(out, out_size, "%.*s***%s", (int)(auth_start - url), url, at);
}
