/* Request targets and routing: the raw target as it came off the wire is
 * decoded here, not by libmicrohttpd, so every path trick is seen and refused
 * in one place (and fuzzed: tests/fuzz/fuzz_router.c). Pure functions: no
 * I/O, no globals but the route table. */
#include "web/web_private.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/util.h"

static int fail(web_error_t *err, int status, const char *code, const char *msg)
{
    err->status = status;
    err->code = code;
    snprintf(err->message, sizeof(err->message), "%s", msg);
    return VG_EINVAL;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes src[0..len) into dst (NUL-terminated); plus_space for
 * query strings. Refuses bad escapes and any control character, NUL
 * included, after decoding. Returns the decoded length or -1. */
static long decode(const char *src, size_t len, char *dst, int plus_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = hexval(src[i + 1]);
            int lo = hexval(src[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_space) {
            c = ' ';
        }
        if (c < 0x20 || c == 0x7f)
            return -1;
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return (long)o;
}

static int parse_path(const char *path, size_t len, web_target_t *t, char **out,
                      web_error_t *err)
{
    if (len == 0 || path[0] != '/')
        return fail(err, 400, "bad_path", "the request target must start with '/'");
    size_t i = 1;
    while (i <= len) {
        size_t j = i;
        while (j < len && path[j] != '/')
            j++;
        if (j == i && j == len && t->n_seg == 0)
            break; /* "/" alone */
        if (j == i)
            return fail(err, 400, "bad_path", "empty path segment");
        if (t->n_seg == WEB_MAX_SEGMENTS)
            return fail(err, 404, "not_found", "no such route");
        long n = decode(path + i, j - i, *out, 0);
        if (n < 0)
            return fail(err, 400, "bad_path", "bad escape or control character in the path");
        /* After decoding, so %2e%2e and %2F are caught as well. */
        if (strcmp(*out, ".") == 0 || strcmp(*out, "..") == 0 || memchr(*out, '/', (size_t)n) ||
            memchr(*out, '\\', (size_t)n))
            return fail(err, 400, "bad_path", "'.', '..', '/' or '\\' in a path segment");
        t->seg[t->n_seg++] = *out;
        *out += n + 1;
        i = j + 1;
    }
    return VG_OK;
}

static int parse_query(const char *q, size_t len, web_target_t *t, char **out, web_error_t *err)
{
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && q[j] != '&')
            j++;
        if (j > i) {
            const char *eq = memchr(q + i, '=', j - i);
            size_t klen = eq ? (size_t)(eq - (q + i)) : j - i;
            if (t->n_query == WEB_MAX_QUERY)
                return fail(err, 400, "invalid_query", "too many query parameters");
            web_kv_t *kv = &t->query[t->n_query];
            kv->key = *out;
            long n = decode(q + i, klen, *out, 1);
            if (n <= 0)
                return fail(err, 400, "invalid_query", "bad query parameter name");
            *out += n + 1;
            kv->value = *out;
            n = eq ? decode(eq + 1, (size_t)(q + j - eq - 1), *out, 1) : decode("", 0, *out, 1);
            if (n < 0)
                return fail(err, 400, "invalid_query", "bad escape in a query value");
            *out += n + 1;
            if (web_query_get(t, kv->key))
                return fail(err, 400, "invalid_query", "a query parameter appears twice");
            t->n_query++;
        }
        i = j + 1;
    }
    return VG_OK;
}

int web_target_parse(const char *raw, size_t len, web_target_t *t, web_error_t *err)
{
    memset(t, 0, sizeof(*t));
    if (len > WEB_MAX_URI)
        return fail(err, 414, "uri_too_long", "the request target is too long");
    if (memchr(raw, '\0', len))
        return fail(err, 400, "bad_path", "NUL in the request target");
    const char *qmark = memchr(raw, '?', len);
    size_t plen = qmark ? (size_t)(qmark - raw) : len;
    const char *hash = memchr(raw, '#', len);
    if (hash)
        return fail(err, 400, "bad_path", "a fragment in the request target");
    /* Decoded text is never longer than its source; one buffer holds all
     * strings with their terminators. */
    t->buf = vg_malloc(len * 2 + 2);
    char *out = t->buf;
    int rc = parse_path(raw, plen, t, &out, err);
    if (rc == VG_OK && qmark)
        rc = parse_query(qmark + 1, len - plen - 1, t, &out, err);
    if (rc != VG_OK)
        web_target_free(t);
    return rc;
}

void web_target_free(web_target_t *t)
{
    free(t->buf);
    memset(t, 0, sizeof(*t));
}

const char *web_query_get(const web_target_t *t, const char *key)
{
    for (size_t i = 0; i < t->n_query; i++) {
        if (strcmp(t->query[i].key, key) == 0)
            return t->query[i].value;
    }
    return NULL;
}

/* Matches pattern against t's segments, collecting {} parameters. */
static int path_matches(const char *pattern, const web_target_t *t,
                        const char *params[WEB_MAX_PARAMS])
{
    size_t k = 0, np = 0;
    const char *p = pattern;
    while (*p == '/') {
        p++;
        size_t n = strcspn(p, "/");
        if (k == t->n_seg)
            return 0;
        if (n == 2 && p[0] == '{' && p[1] == '}') {
            if (np == WEB_MAX_PARAMS)
                return 0;
            params[np++] = t->seg[k];
        } else if (strlen(t->seg[k]) != n || strncmp(t->seg[k], p, n) != 0) {
            return 0;
        }
        k++;
        p += n;
    }
    return k == t->n_seg;
}

/* How many segments each route's pattern has: a path is matched only
 * against the patterns of its length (every request scans the table, for
 * the Allow header too). */
static size_t *route_segs;
static pthread_once_t route_segs_once = PTHREAD_ONCE_INIT;

static void count_route_segs(void)
{
    route_segs = vg_calloc(web_n_routes ? web_n_routes : 1, sizeof(*route_segs));
    for (size_t i = 0; i < web_n_routes; i++) {
        for (const char *c = web_routes[i].pattern; *c; c++)
            route_segs[i] += *c == '/';
    }
}

const web_route_t *web_route_find(const char *method, const web_target_t *t, int *path_known,
                                  char *allow, size_t allow_size,
                                  const char *params[WEB_MAX_PARAMS])
{
    const web_route_t *found = NULL;
    const char *p[WEB_MAX_PARAMS] = {0};
    size_t used = 0;
    *path_known = 0;
    if (allow_size)
        allow[0] = '\0';
    pthread_once(&route_segs_once, count_route_segs);
    for (size_t i = 0; i < web_n_routes; i++) {
        const web_route_t *r = &web_routes[i];
        if (route_segs[i] != t->n_seg || !path_matches(r->pattern, t, p))
            continue;
        *path_known = 1;
        /* HEAD is GET without the body (RFC 9110 9.3.2): libmicrohttpd
         * sends the same headers and drops the body. */
        int get = strcmp(r->method, "GET") == 0;
        if (used < allow_size) {
            int n = snprintf(allow + used, allow_size - used, "%s%s%s", used ? ", " : "",
                             r->method, get ? ", HEAD" : "");
            used = n > 0 ? used + (size_t)n : used;
        }
        if (!found && (strcmp(r->method, method) == 0 || (get && strcmp(method, "HEAD") == 0))) {
            found = r;
            memcpy(params, p, sizeof(p));
        }
    }
    return found;
}

int web_route_check_query(const web_route_t *route, const web_target_t *t, web_error_t *err)
{
    for (size_t i = 0; i < t->n_query; i++) {
        int ok = 0;
        for (const char *const *k = route->query_keys; k && *k && !ok; k++)
            ok = strcmp(*k, t->query[i].key) == 0;
        if (!ok) {
            err->status = 400;
            err->code = "invalid_query";
            snprintf(err->message, sizeof(err->message), "unknown query parameter '%.64s'",
                     t->query[i].key);
            return VG_EINVAL;
        }
    }
    return VG_OK;
}
