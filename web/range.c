/* Conditional and range requests for media answers (RFC 9110 sections 13
 * and 14): one parser and one decision shared by every route that serves
 * stored or built bytes, so each of them answers Range, If-Range and
 * If-None-Match the same way. Only single ranges are served partially; a
 * request for several ranges gets the whole entity (allowed by the RFC, and
 * no player asks for more than one). */
#include "web/web_private.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Reads a decimal uint64 at *p (digits only; no sign, no spaces): -1 when
 * there is none or it overflows. */
static int read_u64(const char **p, uint64_t *out)
{
    const char *s = *p;
    if (!isdigit((unsigned char)*s))
        return -1;
    uint64_t v = 0;
    while (isdigit((unsigned char)*s)) {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
        s++;
    }
    *p = s;
    *out = v;
    return 0;
}

static const char *skip_ows(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

int web_range_parse(const char *value, uint64_t size, uint64_t *first, uint64_t *last)
{
    if (!value)
        return 0;
    const char *s = skip_ows(value);
    if (strncasecmp(s, "bytes", 5) != 0)
        return 0; /* another unit: ignored, the whole is served */
    s = skip_ows(s + 5);
    if (*s != '=')
        return 0;
    s = skip_ows(s + 1);
    uint64_t a = 0, b = 0;
    int has_a = 0, has_b = 0;
    if (*s != '-') {
        if (read_u64(&s, &a) != 0)
            return 0;
        has_a = 1;
    }
    if (*s != '-')
        return 0;
    s++;
    if (isdigit((unsigned char)*s)) {
        if (read_u64(&s, &b) != 0)
            return 0;
        has_b = 1;
    }
    s = skip_ows(s);
    if (*s == ',')
        return 0; /* several ranges: the whole (RFC 9110 14.2 allows it) */
    if (*s != '\0' || (!has_a && !has_b))
        return 0; /* not a range we understand: ignored */
    if (has_a && has_b && b < a)
        return 0; /* invalid range-spec: the header is ignored */
    if (!has_a) { /* suffix: the last b bytes */
        if (b == 0 || size == 0)
            return -1;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return 1;
    }
    if (a >= size)
        return -1;
    *first = a;
    *last = has_b && b < size ? b : size - 1;
    return 1;
}

/* 1 when an If-None-Match list names etag (weak comparison, as the RFC
 * wants for If-None-Match) or is "*". */
static int etag_listed(const char *list, const char *etag)
{
    size_t n = strlen(etag);
    const char *s = list;
    while (*s) {
        s = skip_ows(s);
        if (*s == '*')
            return 1;
        if (strncmp(s, "W/", 2) == 0)
            s += 2;
        if (strncmp(s, etag, n) == 0 && (s[n] == ',' || s[n] == ' ' || s[n] == '\0'))
            return 1;
        s = strchr(s, ',');
        if (!s)
            break;
        s++;
    }
    return 0;
}

int web_ranged(web_req_t *r, uint64_t size, const char *etag, uint64_t *first, uint64_t *len)
{
    if (etag && *etag)
        snprintf(r->etag, sizeof(r->etag), "%s", etag);
    r->accept_ranges = 1;
    const char *inm = web_req_header(r, "If-None-Match");
    if (inm && r->etag[0] && etag_listed(inm, r->etag)) {
        web_reply_text(r, 304, NULL, NULL, 0);
        return 0;
    }
    *first = 0;
    *len = size;
    const char *range = web_req_header(r, "Range");
    const char *if_range = web_req_header(r, "If-Range");
    /* If-Range holding another validator (or a date, which we cannot check
     * strongly): the representation may have changed, send it whole. */
    if (range && if_range && (!r->etag[0] || strcmp(skip_ows(if_range), r->etag) != 0))
        range = NULL;
    uint64_t a = 0, b = 0;
    int rc = web_range_parse(range, size, &a, &b);
    if (rc < 0) {
        snprintf(r->content_range, sizeof(r->content_range), "bytes */%llu",
                 (unsigned long long)size);
        web_reply_error(r, 416, "range_not_satisfiable",
                        "the range asked for is outside the %llu bytes of this resource",
                        (unsigned long long)size);
        return 0;
    }
    if (rc == 0)
        return 200;
    *first = a;
    *len = b - a + 1;
    snprintf(r->content_range, sizeof(r->content_range), "bytes %llu-%llu/%llu",
             (unsigned long long)a, (unsigned long long)b, (unsigned long long)size);
    return 206;
}

void web_reply_disposition(web_req_t *r, const char *filename)
{
    /* The ASCII fallback keeps letters, digits and -_.; everything else
     * becomes '_'. The UTF-8 form percent-encodes all but those. */
    char ascii[96];
    size_t o = 0;
    for (const char *p = filename; *p && o + 1 < sizeof(ascii); p++) {
        unsigned char c = (unsigned char)*p;
        ascii[o++] = (isalnum(c) || c == '-' || c == '_' || c == '.') && c < 0x80 ? (char)c : '_';
    }
    ascii[o] = '\0';
    char enc[200];
    o = 0;
    for (const unsigned char *p = (const unsigned char *)filename; *p && o + 4 < sizeof(enc);
         p++) {
        if ((isalnum(*p) && *p < 0x80) || *p == '-' || *p == '_' || *p == '.')
            enc[o++] = (char)*p;
        else
            o += (size_t)snprintf(enc + o, sizeof(enc) - o, "%%%02X", *p);
    }
    enc[o] = '\0';
    snprintf(r->disposition, sizeof(r->disposition),
             "attachment; filename=\"%s\"; filename*=UTF-8''%s", ascii, enc);
}

/* Compact ISO 8601 (basic format, UTC, whole seconds): no ':' a file system
 * or a shell would trip on, and names sort by time. */
static void file_time(int64_t us, char *out, size_t size)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    if (strftime(out, size, "%Y%m%dT%H%M%SZ", &tm) == 0)
        snprintf(out, size, "0");
}

void web_reply_clip_disposition(web_req_t *r, const char *source, int64_t from_us, int64_t to_us,
                                const char *ext)
{
    char a[24], b[24], file[160];
    file_time(from_us, a, sizeof(a));
    file_time(to_us, b, sizeof(b));
    snprintf(file, sizeof(file), "%s_%s_%s.%s", source, a, b, ext);
    web_reply_disposition(r, file);
}
