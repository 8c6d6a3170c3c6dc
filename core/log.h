/* Logging to stderr, one line per event, with sd-daemon priority prefixes
 * ("<3>" error ... "<7>" debug) so journald keeps the level. Thread-safe: each
 * line is formatted first and written with one write(2). Never pass credentials
 * or personal data; use vg_url_redact() for URLs. */
#ifndef VG_LOG_H
#define VG_LOG_H

#include <stddef.h>

typedef enum {
    VG_LOG_ERR = 3,
    VG_LOG_WARNING = 4,
    VG_LOG_NOTICE = 5,
    VG_LOG_INFO = 6,
    VG_LOG_DEBUG = 7,
} vg_log_level_t;

void vg_log_set_level(vg_log_level_t level);
/* Parses "error|warning|notice|info|debug"; returns 0 or VG_EINVAL. */
int vg_log_parse_level(const char *name, vg_log_level_t *out);
void vg_log(vg_log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define vg_err(...) vg_log(VG_LOG_ERR, __VA_ARGS__)
#define vg_warn(...) vg_log(VG_LOG_WARNING, __VA_ARGS__)
#define vg_notice(...) vg_log(VG_LOG_NOTICE, __VA_ARGS__)
#define vg_info(...) vg_log(VG_LOG_INFO, __VA_ARGS__)
#define vg_debug(...) vg_log(VG_LOG_DEBUG, __VA_ARGS__)

/* Copies url into out with any "user:pass@" replaced by "***@". Always
 * NUL-terminates (truncating if out is small). */
void vg_url_redact(const char *url, char *out, size_t out_size);

#endif
