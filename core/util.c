/* See util.h. */
#include "util.h"
#include "errors.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void out_of_memory(size_t size)
{
    fprintf(stderr, "<2>out of memory allocating %zu bytes\n", size);
    abort();
}

void *vg_malloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        out_of_memory(size);
    return p;
}

void *vg_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        out_of_memory(n * size);
    return p;
}

void *vg_realloc(void *ptr, size_t size)
{
    void *p = realloc(ptr, size ? size : 1);
    if (!p)
        out_of_memory(size);
    return p;
}

char *vg_strdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        out_of_memory(strlen(s) + 1);
    return p;
}

char *vg_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *out = NULL;
    int n = vasprintf(&out, fmt, ap);
    va_end(ap);
    if (n < 0)
        out_of_memory(0);
    return out;
}

void vg_time_format(int64_t utc_us, char *out)
{
    int64_t secs = utc_us / 1000000;
    int64_t rem = utc_us % 1000000;
    if (rem < 0) {
        rem += 1000000;
        secs -= 1;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    char text[96]; /* roomy enough that the compiler sees no truncation */
    snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(rem / 1000));
    size_t len = strnlen(text, VG_TIME_TEXT_MAX - 1);
    memcpy(out, text, len);
    out[len] = '\0';
}

/* Reads exactly n digits into *out; returns the advanced pointer or NULL. */
static const char *read_digits(const char *p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)p[i]))
            return NULL;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return p + n;
}

/* Parses ".123456" into microseconds (extra digits ignored). */
static const char *read_fraction(const char *p, int64_t *us)
{
    *us = 0;
    if (*p != '.')
        return p;
    p++;
    if (!isdigit((unsigned char)*p))
        return NULL;
    int64_t scale = 100000;
    while (isdigit((unsigned char)*p)) {
        *us += (*p - '0') * scale;
        scale /= 10;
        p++;
    }
    return p;
}

static int parse_unix_seconds(const char *text, int64_t *utc_us)
{
    const char *p = text;
    int64_t secs = 0;
    if (!isdigit((unsigned char)*p))
        return VG_EINVAL;
    while (isdigit((unsigned char)*p)) {
        if (secs > (INT64_MAX - 999999) / 10000000)
            return VG_EINVAL;
        secs = secs * 10 + (*p - '0');
        p++;
    }
    if (secs > (INT64_MAX - 999999) / 1000000)
        return VG_EINVAL;
    int64_t frac = 0;
    p = read_fraction(p, &frac);
    if (!p || *p != '\0')
        return VG_EINVAL;
    *utc_us = secs * 1000000 + frac;
    return VG_OK;
}

static int days_in_month(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

int vg_time_parse(const char *text, int64_t *utc_us)
{
    if (!text || !*text)
        return VG_EINVAL;
    if (!strchr(text, '-'))
        return parse_unix_seconds(text, utc_us);
    struct tm tm = {0};
    int year, mon, day, hour, min, sec;
    const char *p = read_digits(text, 4, &year);
    if (!p || *p++ != '-' || !(p = read_digits(p, 2, &mon)) || *p++ != '-' ||
        !(p = read_digits(p, 2, &day)) || (*p != 'T' && *p != 't' && *p != ' '))
        return VG_EINVAL;
    p++;
    if (!(p = read_digits(p, 2, &hour)) || *p++ != ':' || !(p = read_digits(p, 2, &min)) ||
        *p++ != ':' || !(p = read_digits(p, 2, &sec)))
        return VG_EINVAL;
    int64_t frac = 0;
    if (!(p = read_fraction(p, &frac)))
        return VG_EINVAL;
    if (mon < 1 || mon > 12 || day < 1 || day > days_in_month(year, mon) || hour > 23 ||
        min > 59 || sec > 60)
        return VG_EINVAL;
    int offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om;
        p++;
        if (!(p = read_digits(p, 2, &oh)) || *p++ != ':' || !(p = read_digits(p, 2, &om)) ||
            oh > 23 || om > 59)
            return VG_EINVAL;
        offset_min = sign * (oh * 60 + om);
    } else {
        return VG_EINVAL;
    }
    if (*p != '\0')
        return VG_EINVAL;
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    int64_t secs = (int64_t)timegm(&tm) - (int64_t)offset_min * 60;
    *utc_us = secs * 1000000 + frac;
    return VG_OK;
}

int vg_mkdir_p(const char *dir)
{
    char *path = vg_strdup(dir);
    int rc = VG_OK;
    for (char *p = path + 1; ; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(path, 0750) != 0 && errno != EEXIST) {
                rc = VG_EIO;
                break;
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    free(path);
    return rc;
}

int vg_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return VG_EIO;
    int rc = fsync(fd) == 0 ? VG_OK : VG_EIO;
    close(fd);
    return rc;
}

int vg_fsync_parent(const char *path)
{
    char *dir = vg_strdup(path);
    char *slash = strrchr(dir, '/');
    int rc;
    if (!slash) {
        rc = vg_fsync_dir(".");
    } else {
        if (slash == dir)
            slash[1] = '\0';
        else
            *slash = '\0';
        rc = vg_fsync_dir(dir);
    }
    free(dir);
    return rc;
}

int vg_write_all(int fd, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == ENOSPC || errno == EDQUOT ? VG_ENOSPC : VG_EIO;
        }
        p += n;
        len -= (size_t)n;
    }
    return VG_OK;
}

int vg_source_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len < 1 || len > 63)
        return 0;
    if (!(islower((unsigned char)name[0]) || isdigit((unsigned char)name[0])))
        return 0;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return 0;
    }
    return 1;
}

void vg_list_append(char *buf, size_t size, const char *item)
{
    size_t len = strnlen(buf, size);
    if (len + 1 < size)
        snprintf(buf + len, size - len, "%s%s", len ? "," : "", item);
}

void vg_deadline_us(clockid_t clock, int64_t us, struct timespec *out)
{
    clock_gettime(clock, out);
    out->tv_sec += (time_t)(us / 1000000);
    out->tv_nsec += (long)(us % 1000000) * 1000L;
    if (out->tv_nsec >= 1000000000L) {
        out->tv_sec++;
        out->tv_nsec -= 1000000000L;
    }
}

/* Length of the valid UTF-8 character at s[0..avail), or 0 when the bytes
 * there are not one (the cases are listed in util.h). The ranges of the
 * second byte are what rule out overlong forms, surrogates and code points
 * past U+10FFFF (RFC 3629, section 4). */
static size_t utf8_char(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        if (c == 0xe0)
            lo = 0xa0; /* below: overlong */
        else if (c == 0xed)
            hi = 0x9f; /* above: surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        if (c == 0xf0)
            lo = 0x90; /* below: overlong */
        else if (c == 0xf4)
            hi = 0x8f; /* above: past U+10FFFF */
    } else {
        return 0;
    }
    if (avail < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++) {
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    }
    return n;
}

int vg_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_char(p + i, len - i);
        if (!n)
            return 0;
        i += n;
    }
    return 1;
}

size_t vg_utf8_copy(char *dst, size_t size, const char *src)
{
    const unsigned char *p = (const unsigned char *)src;
    size_t len = strlen(src), i = 0, o = 0;
    while (i < len) {
        size_t n = utf8_char(p + i, len - i);
        const char *from = n ? src + i : VG_UTF8_REPLACEMENT;
        size_t out = n ? n : sizeof(VG_UTF8_REPLACEMENT) - 1;
        if (o + out + 1 > size)
            break;
        memcpy(dst + o, from, out);
        o += out;
        i += n ? n : 1;
    }
    dst[o] = '\0';
    return o;
}

void vg_utf8_fix(char *buf, size_t size)
{
    if (size == 0)
        return;
    size_t len = strnlen(buf, size);
    if (len == size) /* not terminated: the last byte goes */
        buf[--len] = '\0';
    if (vg_utf8_valid(buf, len))
        return;
    char *copy = vg_strdup(buf);
    vg_utf8_copy(buf, size, copy);
    free(copy);
}

char *vg_utf8_dup(const char *src)
{
    size_t size = strlen(src) * 3 + 1; /* each byte at most becomes U+FFFD */
    char *out = vg_malloc(size);
    vg_utf8_copy(out, size, src);
    return out;
}
