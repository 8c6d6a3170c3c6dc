/* Reads vigil.conf into a vg_config_t. libinih splits "key = value" lines and
 * strips comments; this file owns what sections and keys mean, checks every
 * value, and turns the first problem into a "file:line: reason" message.
 *
 * Lines reach libinih through read_line(), not ini_parse(), because the stock
 * Debian build (INI_MAX_LINE 200, 50-byte section names, multi-line values)
 * would otherwise silently split a long line into two, cut a long source name
 * to 42 characters, and glue an indented "key = value" line onto the value of
 * the key above it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "config.h"
#include "errors.h"
#include "util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define DEFAULT_DATA_DIR "/var/lib/vigil"
#define DEFAULT_SEGMENT_SECONDS 60
#define DEFAULT_SYNC_SECONDS 5
#define DEFAULT_FRAGMENT_MAX_SECONDS 4
#define DEFAULT_FRAGMENT_MAX_MIB 16
#define MIN_SEGMENT_SECONDS 2
#define MAX_SEGMENT_SECONDS 300

/* Retention bounds: a floor of at least a day, nothing past ten years, and a
 * reserve that still leaves most of the disk for recordings. */
#define DEFAULT_DAYS 60
#define MAX_DAYS 3650
/* [exports] keep_days: finished bundles are removed after this. */
#define DEFAULT_EXPORT_DAYS 30
#define MAX_RESERVE_PERCENT 50
#define DEFAULT_RESERVE_PERCENT 5
#define DEFAULT_SWEEP_SECONDS 10
#define MAX_CAPACITY_BYTES (1LL << 60)

/* [server] HTTP: loopback by default, so a fresh install exposes nothing. */
#define DEFAULT_HTTP_LISTEN "127.0.0.1:8080"
/* Where `make install` puts the UI; the Makefile passes its PREFIX. */
#ifndef VG_UI_DIR
#define VG_UI_DIR "/usr/local/share/vigil/ui"
#endif
#define DEFAULT_SESSION_IDLE_MINUTES 30
#define DEFAULT_CONNECTIONS_PER_IP 64
#define DEFAULT_SESSION_MAX_HOURS 12

/* [relay]: off unless rtsp_listen is set, so no camera is exposed by accident.
 * The client limits keep a connection flood from exhausting threads and
 * memory (each client gets its own pipeline). */
#define DEFAULT_RELAY_MAX_CLIENTS 64
#define DEFAULT_RELAY_MAX_PER_IP 8
#define MAX_RELAY_CLIENTS 1000
#define MAX_RELAY_SEND_INTERVAL_MS 500
#define DEFAULT_RELAY_SEND_INTERVAL_MS 150

enum section_kind {
    SEC_NONE,    /* before the first [section] */
    SEC_SERVER,
    SEC_ARCHIVE,
    SEC_RETENTION,
    SEC_RELAY,
    SEC_EXPORTS,
    SEC_PLAYBACK,
    SEC_LIVE,
    SEC_SOURCE,
    SEC_DESK,    /* calls */
    SEC_CALLS,
    SEC_QUEUE,   /* calls */
    SEC_IGNORED, /* a header that was already reported as an error */
};

typedef struct {
    vg_config_t *cfg;
    FILE *fp;
    char *line;              /* getline() buffer */
    size_t line_cap;
    int lineno;              /* physical line last handed to libinih */
    int read_errno;          /* nonzero when reading the file failed */
    enum section_kind section;
    int section_line;
    size_t source_index;     /* into cfg->sources while section == SEC_SOURCE */
    size_t desk_index;       /* into cfg->desks while section == SEC_DESK */
    size_t queue_index;      /* into cfg->queues while section == SEC_QUEUE */
    unsigned seen_keys;      /* bit i set once key i of this section's table was set */
    int seen_server, seen_archive, seen_retention, seen_relay, seen_exports, seen_playback;
    int seen_calls;
    int seen_live;
    int keep_days_line, min_days_line; /* for the cross-key check at the end */
    int tls_cert_line, tls_key_line;   /* likewise for "both or neither" */
    int relay_cert_line, relay_key_line;
    char *err;
    size_t err_size;
    int failed;              /* only the first problem is reported */
    int err_line;
} parser_t;

typedef int (*key_setter_t)(parser_t *p, const char *key, const char *value);
static char *trim(char *s);

typedef struct {
    const char *name;
    key_setter_t set;
} key_spec_t;

static void report(parser_t *p, int line, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    p->failed = 1;
    p->err_line = line;
    if (!p->err || p->err_size == 0)
        return;
    if (line > 0)
        snprintf(p->err, p->err_size, "%s:%d: %s", p->cfg->path, line, msg);
    else
        snprintf(p->err, p->err_size, "%s: %s", p->cfg->path, msg);
}

/* Records a problem unless one was recorded already: libinih keeps going after
 * an error, and the first one is the one worth reading. line 0 means none. */
__attribute__((format(printf, 3, 4)))
static void fail_at(parser_t *p, int line, const char *fmt, ...)
{
    if (p->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    report(p, line, fmt, ap);
    va_end(ap);
}

/* Values are echoed in messages to help the admin, but a URL pasted under the
 * wrong key must not leak its password into a log, so everything is redacted. */
static const char *shown(const char *value, char *buf, size_t size)
{
    vg_url_redact(value, buf, size);
    return buf;
}

static void section_label(const parser_t *p, char *buf, size_t size)
{
    switch (p->section) {
    case SEC_SERVER: snprintf(buf, size, "server"); break;
    case SEC_ARCHIVE: snprintf(buf, size, "archive"); break;
    case SEC_RELAY: snprintf(buf, size, "relay"); break;
    case SEC_EXPORTS: snprintf(buf, size, "exports"); break;
    case SEC_PLAYBACK: snprintf(buf, size, "playback"); break;
    case SEC_CALLS: snprintf(buf, size, "calls"); break;
    case SEC_LIVE: snprintf(buf, size, "live"); break;
    case SEC_SOURCE:
        snprintf(buf, size, "source %s", p->cfg->sources[p->source_index].name);
        break;
    case SEC_QUEUE:
        snprintf(buf, size, "queue %s", p->cfg->queues[p->queue_index].name);
        break;
    default: snprintf(buf, size, "?"); break;
    }
}

/* ---- values ---- */

static int parse_int_range(const char *text, long min, long max, int *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE || v < min || v > max)
        return VG_EINVAL;
    *out = (int)v;
    return VG_OK;
}

static int port_ok(const char *port, const char *end)
{
    if (port == end)
        return 0;
    long v = 0;
    for (const char *c = port; c < end; c++) {
        if (!isdigit((unsigned char)*c) || (v = v * 10 + (*c - '0')) > 65535)
            return 0;
    }
    return v > 0;
}

/* Checks "host[:port]" or "[v6][:port]" between host and end. */
static const char *host_problem(const char *host, const char *end)
{
    const char *after = host;
    if (host < end && *host == '[') {
        const char *close = memchr(host, ']', (size_t)(end - host));
        if (!close || close == host + 1)
            return "has a bad IPv6 host";
        after = close + 1;
    } else {
        while (after < end && *after != ':')
            after++;
        if (after == host)
            return "has no host";
    }
    if (after == end)
        return NULL;
    if (*after != ':' || !port_ok(after + 1, end))
        return "has a bad port";
    return NULL;
}

/* Returns NULL when url looks usable, else what is wrong with it. The caller
 * must not quote url itself: it may carry a password. */
static const char *url_problem(const char *url)
{
    for (const unsigned char *c = (const unsigned char *)url; *c; c++) {
        if (*c <= ' ' || *c == 0x7f)
            return "contains whitespace or control characters";
    }
    const char *rest;
    if (strncmp(url, "rtsp://", 7) == 0)
        rest = url + 7;
    else if (strncmp(url, "rtsps://", 8) == 0)
        rest = url + 8;
    else
        return "must start with rtsp:// or rtsps://";
    const char *end = rest + strcspn(rest, "/?#");
    const char *host = rest;
    /* The password may itself contain '@'; the host starts after the last one. */
    for (const char *c = rest; c < end; c++) {
        if (*c == '@')
            host = c + 1;
    }
    return host_problem(host, end);
}

/* ---- keys ---- */

static int set_data_dir(parser_t *p, const char *key, const char *value)
{
    char buf[256];
    /* A relative data_dir would depend on whatever directory systemd or the
     * admin's shell started us in. */
    if (value[0] != '/') {
        fail_at(p, p->lineno, "%s must be an absolute path, got '%s'", key,
                shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    free(p->cfg->data_dir);
    p->cfg->data_dir = vg_strdup(value);
    return VG_OK;
}

static int set_log_level(parser_t *p, const char *key, const char *value)
{
    char buf[256];
    if (vg_log_parse_level(value, &p->cfg->log_level) != VG_OK) {
        fail_at(p, p->lineno, "%s must be error, warning, notice, info or debug, got '%s'", key,
                shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    return VG_OK;
}

static int set_segment_seconds(parser_t *p, const char *key, const char *value)
{
    char buf[256];
    if (parse_int_range(value, MIN_SEGMENT_SECONDS, MAX_SEGMENT_SECONDS,
                        &p->cfg->segment_seconds) != VG_OK) {
        fail_at(p, p->lineno, "%s must be an integer from %d to %d, got '%s'", key,
                MIN_SEGMENT_SECONDS, MAX_SEGMENT_SECONDS, shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    return VG_OK;
}

static int set_int_in(parser_t *p, const char *key, const char *value, int min, int max,
                      int *out);

/* At most 5 s: what a power cut may cost is stated in the README. */
static int set_sync_seconds(parser_t *p, const char *key, const char *value)
{
    return set_int_in(p, key, value, 1, 5, &p->cfg->sync_seconds);
}

static int set_alarm_hold_seconds(parser_t *p, const char *key, const char *value)
{
    return set_int_in(p, key, value, 1, 86400, &p->cfg->alarm_hold_seconds);
}

static int set_fragment_max_seconds(parser_t *p, const char *key, const char *value)
{
    return set_int_in(p, key, value, 1, 10, &p->cfg->fragment_max_seconds);
}

static int set_fragment_max_mib(parser_t *p, const char *key, const char *value)
{
    return set_int_in(p, key, value, 1, 64, &p->cfg->fragment_max_mib);
}

/* [playback]: a clip request is bounded (its sample tables are held in
 * memory while it is served). */
static int set_clip_max_seconds(parser_t *p, const char *key, const char *value)
{
    return set_int_in(p, key, value, 60, 86400, &p->cfg->playback.clip_max_seconds);
}

static int set_url(parser_t *p, const char *key, const char *value)
{
    vg_source_config_t *src = &p->cfg->sources[p->source_index];
    const char *why = url_problem(value);
    if (why) {
        fail_at(p, p->lineno, "%s of source '%s' %s", key, src->name, why);
        return VG_ECONFIG;
    }
    src->url = vg_strdup(value);
    return VG_OK;
}

static int set_kind(parser_t *p, const char *key, const char *value)
{
    char buf[256];
    vg_source_config_t *src = &p->cfg->sources[p->source_index];
    if (strcmp(value, "video") == 0) {
        src->kind = VG_SOURCE_VIDEO;
    } else if (strcmp(value, "audio") == 0) {
        src->kind = VG_SOURCE_AUDIO;
    } else {
        fail_at(p, p->lineno, "%s must be video or audio, got '%s'", key,
                shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    return VG_OK;
}

static int set_transport(parser_t *p, const char *key, const char *value)
{
    char buf[256];
    vg_source_config_t *src = &p->cfg->sources[p->source_index];
    if (strcmp(value, "tcp") == 0) {
        src->transport = VG_TRANSPORT_TCP;
    } else if (strcmp(value, "udp") == 0) {
        src->transport = VG_TRANSPORT_UDP;
    } else {
        fail_at(p, p->lineno, "%s must be tcp or udp, got '%s'", key,
                shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    return VG_OK;
}

static int set_days(parser_t *p, const char *key, const char *value, int *out)
{
    char buf[256];
    if (parse_int_range(value, 1, MAX_DAYS, out) != VG_OK) {
        fail_at(p, p->lineno, "%s must be a whole number of days from 1 to %d, got '%s'", key,
                MAX_DAYS, shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    return VG_OK;
}

static int set_min_days(parser_t *p, const char *key, const char *value)
{
    p->min_days_line = p->lineno;
    return set_days(p, key, value, &p->cfg->retention.min_days);
}

static int set_keep_days(parser_t *p, const char *key, const char *value)
{
    p->keep_days_line = p->lineno;
    return set_days(p, key, value, &p->cfg->retention.keep_days);
}

static int set_source_keep_days(parser_t *p, const char *key, const char *value)
{
    vg_source_config_t *src = &p->cfg->sources[p->source_index];
    src->keep_days_line = p->lineno;
    return set_days(p, key, value, &src->keep_days);
}

static int set_capacity(parser_t *p, const char *key, const char *value)
{
    char buf[256];
    char *end = NULL;
    errno = 0;
    long long v = strtoll(value, &end, 10);
    if (errno || end == value || *end != '\0' || v < 0 || v > MAX_CAPACITY_BYTES ||
        !isdigit((unsigned char)value[0])) {
        fail_at(p, p->lineno, "%s must be a byte count from 0 (the whole filesystem) to 2^60, "
                "got '%s'", key, shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    p->cfg->retention.capacity_bytes = v;
    return VG_OK;
}

static int set_reserve(parser_t *p, const char *key, const char *value)
{
    char buf[256];
    if (parse_int_range(value, 0, MAX_RESERVE_PERCENT, &p->cfg->retention.reserve_percent) !=
        VG_OK) {
        fail_at(p, p->lineno, "%s must be an integer from 0 to %d, got '%s'", key,
                MAX_RESERVE_PERCENT, shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    return VG_OK;
}

static int set_on_full(parser_t *p, const char *key, const char *value)
{
    char buf[256];
    if (strcmp(value, "overwrite") == 0) {
        p->cfg->retention.on_full = VG_ON_FULL_OVERWRITE;
    } else if (strcmp(value, "stop") == 0) {
        p->cfg->retention.on_full = VG_ON_FULL_STOP;
    } else {
        fail_at(p, p->lineno, "%s must be overwrite or stop, got '%s'", key,
                shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    return VG_OK;
}

static int set_sweep_seconds(parser_t *p, const char *key, const char *value)
{
    char buf[256];
    if (parse_int_range(value, 1, 3600, &p->cfg->retention.sweep_seconds) != VG_OK) {
        fail_at(p, p->lineno, "%s must be an integer from 1 to 3600, got '%s'", key,
                shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    return VG_OK;
}

int vg_config_split_listen(const char *text, char *host, size_t host_size, int *port)
{
    const char *colon;
    const char *h = text;
    size_t hlen;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            return VG_EINVAL;
        h = text + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        /* A bare IPv6 address would be ambiguous with its port: brackets. */
        if (!colon || memchr(text, ':', (size_t)(colon - text)))
            return VG_EINVAL;
        hlen = (size_t)(colon - text);
    }
    /* Port 0 (any free port) is for tests; the config key refuses it. */
    const char *digits = colon + 1;
    size_t plen = strlen(digits);
    if (hlen == 0 || hlen >= host_size || plen == 0 || plen > 5 ||
        strspn(digits, "0123456789") != plen || atoi(digits) > 65535)
        return VG_EINVAL;
    for (size_t i = 0; i < hlen; i++) {
        if (!isalnum((unsigned char)h[i]) && !strchr(".-:%", h[i]))
            return VG_EINVAL;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = atoi(digits);
    return VG_OK;
}

static int set_http_listen(parser_t *p, const char *key, const char *value)
{
    char buf[256], host[128];
    int port = 0;
    if (value[0] && (vg_config_split_listen(value, host, sizeof(host), &port) != VG_OK ||
                     port == 0)) {
        fail_at(p, p->lineno, "%s must be host:port or [ipv6]:port (empty: HTTP off), got '%s'",
                key, shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    free(p->cfg->http.listen);
    p->cfg->http.listen = vg_strdup(value);
    return VG_OK;
}

/* The key is read by vigild at start; checking now turns a typo into a
 * config error with a line number instead of a TLS failure later. */
static int set_tls_file(parser_t *p, const char *key, const char *value, char **out, int *line)
{
    char buf[256];
    if (access(value, R_OK) != 0) {
        fail_at(p, p->lineno, "%s '%s' is not readable: %s", key, shown(value, buf, sizeof(buf)),
                strerror(errno));
        return VG_ECONFIG;
    }
    *line = p->lineno;
    free(*out);
    *out = vg_strdup(value);
    return VG_OK;
}

static int set_tls_cert(parser_t *p, const char *key, const char *value)
{
    return set_tls_file(p, key, value, &p->cfg->http.tls_cert, &p->tls_cert_line);
}

static int set_tls_key(parser_t *p, const char *key, const char *value)
{
    return set_tls_file(p, key, value, &p->cfg->http.tls_key, &p->tls_key_line);
}

static int set_int_in(parser_t *p, const char *key, const char *value, int min, int max,
                      int *out)
{
    char buf[256];
    if (parse_int_range(value, min, max, out) != VG_OK) {
        fail_at(p, p->lineno, "%s must be an integer from %d to %d, got '%s'", key, min, max,
                shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    return VG_OK;
}

static int set_bounded(parser_t *p, const char *key, const char *value, int max, int *out)
{
    return set_int_in(p, key, value, 1, max, out);
}

static int set_session_idle(parser_t *p, const char *key, const char *value)
{
    return set_bounded(p, key, value, 24 * 60, &p->cfg->http.session_idle_minutes);
}

static int set_connections_per_ip(parser_t *p, const char *key, const char *value)
{
    return set_bounded(p, key, value, 512, &p->cfg->http.connections_per_ip);
}

static int set_metrics_access(parser_t *p, const char *key, const char *value)
{
    char buf[256];
    if (strcmp(value, "loopback") == 0 || strcmp(value, "token") == 0) {
        p->cfg->http.metrics_token = strcmp(value, "token") == 0;
        return VG_OK;
    }
    fail_at(p, p->lineno, "%s must be loopback or token, got '%s'", key,
            shown(value, buf, sizeof(buf)));
    return VG_ECONFIG;
}

/* Both parse as the same address (so "::1" and "0:0::1" match). */
static int same_address(const char *a, const char *b)
{
    unsigned char x[16], y[16];
    if (inet_pton(AF_INET, a, x) == 1)
        return inet_pton(AF_INET, b, y) == 1 && memcmp(x, y, 4) == 0;
    if (inet_pton(AF_INET6, a, x) == 1)
        return inet_pton(AF_INET6, b, y) == 1 && memcmp(x, y, 16) == 0;
    return 0;
}

static int numeric_address(const char *text)
{
    unsigned char raw[16];
    return inet_pton(AF_INET, text, raw) == 1 || inet_pton(AF_INET6, text, raw) == 1;
}

/* trusted_proxies = 10.0.0.5, 10.0.0.6: numeric addresses only, so a
 * request's address is never resolved through DNS to decide whom to trust. */
static int set_trusted_proxies(parser_t *p, const char *key, const char *value)
{
    char buf[256];
    char *list = vg_malloc(strlen(value) + 1), *out = list;
    int rc = VG_OK;
    for (const char *c = value; *c && rc == VG_OK;) {
        c += strspn(c, " \t,");
        size_t n = strcspn(c, " \t,");
        if (!n)
            break;
        char one[INET6_ADDRSTRLEN + 1];
        snprintf(one, sizeof(one), "%.*s", (int)(n < sizeof(one) ? n : sizeof(one) - 1), c);
        if (n >= sizeof(one) || !numeric_address(one)) {
            fail_at(p, p->lineno, "%s takes numeric IPv4 or IPv6 addresses separated by commas, "
                    "got '%s'", key, shown(value, buf, sizeof(buf)));
            rc = VG_ECONFIG;
            break;
        }
        out += sprintf(out, "%s%s", out == list ? "" : ",", one);
        c += n;
    }
    if (rc != VG_OK || out == list) {
        free(list);
        free(p->cfg->http.trusted_proxies);
        p->cfg->http.trusted_proxies = NULL;
        return rc;
    }
    free(p->cfg->http.trusted_proxies);
    p->cfg->http.trusted_proxies = list;
    return VG_OK;
}

int vg_config_proxy_trusted(const vg_config_t *cfg, const char *addr)
{
    const char *list = cfg ? cfg->http.trusted_proxies : NULL;
    for (const char *c = list; c && *c;) {
        size_t n = strcspn(c, ",");
        char one[INET6_ADDRSTRLEN + 1];
        snprintf(one, sizeof(one), "%.*s", (int)(n < sizeof(one) ? n : sizeof(one) - 1), c);
        if (same_address(one, addr))
            return 1;
        c += n + (c[n] == ',');
    }
    return 0;
}

static int set_audit_checkpoint(parser_t *p, const char *key, const char *value)
{
    /* At most 5 minutes: what a checkpoint does not cover yet could be cut
     * from the trail unnoticed. Shorter periods are for tests. */
    return set_bounded(p, key, value, 300, &p->cfg->audit_checkpoint_seconds);
}

/* The UI is a directory of static files; a missing one is a config error
 * now rather than a 404 for every page later. */
static int set_ui_dir(parser_t *p, const char *key, const char *value)
{
    char buf[256];
    struct stat st;
    if (!value[0] || stat(value, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fail_at(p, p->lineno, "%s '%s' is not a directory", key, shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    free(p->cfg->http.ui_dir);
    p->cfg->http.ui_dir = vg_strdup(value);
    return VG_OK;
}

/* An IANA name ("Europe/Moscow") the browser formats times in. Only the
 * name's shape and its presence in the system's zone database are checked:
 * the daemon itself keeps UTC. */
static int set_timezone(parser_t *p, const char *key, const char *value)
{
    char buf[256], path[512];
    int ok = value[0] && value[0] != '/' && strlen(value) < 64 && !strstr(value, "..");
    for (const char *c = value; ok && *c; c++)
        ok = isalnum((unsigned char)*c) || strchr("/_+-", *c);
    const char *db = getenv("TZDIR") ? getenv("TZDIR") : "/usr/share/zoneinfo";
    snprintf(path, sizeof(path), "%s/%s", db, value);
    /* a zone file, not a directory of them (Europe) or a table beside them
     * (leapseconds, zone.tab): those load, then fail at first use */
    char magic[4] = {0};
    int fd = ok ? open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) : -1;
    struct stat st;
    ok = fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
         read(fd, magic, sizeof(magic)) == (ssize_t)sizeof(magic) &&
         memcmp(magic, "TZif", 4) == 0;
    if (fd >= 0)
        close(fd);
    if (!ok) {
        fail_at(p, p->lineno, "%s must be an IANA time zone such as Europe/Moscow, got '%s'",
                key, shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    free(p->cfg->http.timezone);
    p->cfg->http.timezone = vg_strdup(value);
    return VG_OK;
}

static int set_session_max(parser_t *p, const char *key, const char *value)
{
    return set_bounded(p, key, value, 30 * 24, &p->cfg->http.session_max_hours);
}

/* ---- [relay] and per-source relay keys ---- */

static int set_relay_listen(parser_t *p, const char *key, const char *value)
{
    char buf[256], host[128];
    int port = 0;
    if (value[0] && (vg_config_split_listen(value, host, sizeof(host), &port) != VG_OK ||
                     port == 0)) {
        fail_at(p, p->lineno, "%s must be host:port or [ipv6]:port (empty: relay off), got '%s'",
                key, shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    free(p->cfg->relay.rtsp_listen);
    p->cfg->relay.rtsp_listen = vg_strdup(value);
    return VG_OK;
}

static int set_relay_tls_cert(parser_t *p, const char *key, const char *value)
{
    return set_tls_file(p, key, value, &p->cfg->relay.tls_cert, &p->relay_cert_line);
}

static int set_relay_tls_key(parser_t *p, const char *key, const char *value)
{
    return set_tls_file(p, key, value, &p->cfg->relay.tls_key, &p->relay_key_line);
}

static int set_relay_max_clients(parser_t *p, const char *key, const char *value)
{
    return set_bounded(p, key, value, MAX_RELAY_CLIENTS, &p->cfg->relay.max_clients);
}

static int set_relay_max_per_ip(parser_t *p, const char *key, const char *value)
{
    return set_bounded(p, key, value, MAX_RELAY_CLIENTS, &p->cfg->relay.max_clients_per_ip);
}

static int set_relay_send_interval(parser_t *p, const char *key, const char *value)
{
    return set_int_in(p, key, value, 0, MAX_RELAY_SEND_INTERVAL_MS,
                      &p->cfg->relay.send_interval_ms);
}

/* A push target: rtsp:// or rtsps:// (ANNOUNCE/RECORD) or srt:// (MPEG-TS).
 * "{source}" may stand anywhere after the host. */
static const char *push_url_problem(const char *url)
{
    for (const unsigned char *c = (const unsigned char *)url; *c; c++) {
        if (*c <= ' ' || *c == 0x7f)
            return "contains whitespace or control characters";
    }
    const char *rest;
    if (strncmp(url, "rtsp://", 7) == 0)
        rest = url + 7;
    else if (strncmp(url, "rtsps://", 8) == 0)
        rest = url + 8;
    else if (strncmp(url, "srt://", 6) == 0)
        rest = url + 6;
    else
        return "must start with rtsp://, rtsps:// or srt://";
    const char *end = rest + strcspn(rest, "/?#");
    const char *host = rest;
    for (const char *c = rest; c < end; c++) {
        if (*c == '@')
            host = c + 1;
    }
    if (memchr(host, '{', (size_t)(end - host)))
        return "cannot have {source} in its host";
    return host_problem(host, end);
}

static int set_relay_push(parser_t *p, const char *key, const char *value)
{
    const char *why = push_url_problem(value);
    /* One URL for every source would make them overwrite each other. */
    if (!why && !strstr(value, "{source}"))
        why = "must contain {source} (per source, set push in its [source] section)";
    if (why) {
        fail_at(p, p->lineno, "%s in [relay] %s", key, why);
        return VG_ECONFIG;
    }
    free(p->cfg->relay.push);
    p->cfg->relay.push = vg_strdup(value);
    return VG_OK;
}

/* Off by default: a password in clear text crosses only the loopback
 * interface unless the admin says the network between is trusted. */
static int set_relay_allow_plain(parser_t *p, const char *key, const char *value)
{
    char buf[256];
    if (strcmp(value, "yes") == 0) {
        p->cfg->relay.allow_plain_credentials = 1;
    } else if (strcmp(value, "no") == 0) {
        p->cfg->relay.allow_plain_credentials = 0;
    } else {
        fail_at(p, p->lineno, "%s must be yes or no, got '%s'", key,
                shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    return VG_OK;
}

/* [source] transcode = yes (default) | no: whether [playback] transcode_hevc
 * may make H.264 of this camera for browsers (a large H.265 camera can be
 * left out, its viewers get the clip and the RTSP link). */
static int set_source_transcode(parser_t *p, const char *key, const char *value)
{
    char buf[256];
    vg_source_config_t *src = &p->cfg->sources[p->source_index];
    if (strcmp(value, "yes") != 0 && strcmp(value, "no") != 0) {
        fail_at(p, p->lineno, "%s must be yes or no, got '%s'", key, shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    src->no_transcode = strcmp(value, "no") == 0;
    return VG_OK;
}

static int set_source_relay(parser_t *p, const char *key, const char *value)
{
    char buf[256];
    vg_source_config_t *src = &p->cfg->sources[p->source_index];
    if (strcmp(value, "on") == 0) {
        src->relay = 1;
    } else if (strcmp(value, "off") == 0) {
        src->relay = 0;
    } else {
        fail_at(p, p->lineno, "%s must be on or off, got '%s'", key,
                shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    return VG_OK;
}

static int set_source_push(parser_t *p, const char *key, const char *value)
{
    vg_source_config_t *src = &p->cfg->sources[p->source_index];
    const char *why = strcmp(value, "off") == 0 ? NULL : push_url_problem(value);
    if (why) {
        fail_at(p, p->lineno, "%s of source '%s' %s", key, src->name, why);
        return VG_ECONFIG;
    }
    src->push = vg_strdup(strcmp(value, "off") == 0 ? "" : value);
    return VG_OK;
}

/* [playback] */
static int set_wav_max_seconds(parser_t *p, const char *key, const char *value)
{
    return set_bounded(p, key, value, 7 * 86400, &p->cfg->playback.wav_max_seconds);
}

static int set_snapshot_workers(parser_t *p, const char *key, const char *value)
{
    return set_bounded(p, key, value, 64, &p->cfg->playback.snapshot_workers);
}

static int set_snapshot_threads(parser_t *p, const char *key, const char *value)
{
    return set_bounded(p, key, value, 16, &p->cfg->playback.snapshot_threads);
}

static int set_snapshot_cache_mib(parser_t *p, const char *key, const char *value)
{
    return set_bounded(p, key, value, 1024 * 1024, &p->cfg->playback.snapshot_cache_mib);
}

/* ---- calls: [server] require_access_reason, [retention]
 * call_metadata_days, [source] pbx_extension, [desk NAME] ---- */

static int set_require_reason(parser_t *p, const char *key, const char *value)
{
    char buf[256];
    if (strcmp(value, "yes") == 0) {
        p->cfg->http.require_access_reason = 1;
    } else if (strcmp(value, "no") == 0) {
        p->cfg->http.require_access_reason = 0;
    } else {
        fail_at(p, p->lineno, "%s must be yes or no, got '%s'", key,
                shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    return VG_OK;
}

static int set_call_metadata_days(parser_t *p, const char *key, const char *value)
{
    return set_int_in(p, key, value, 0, MAX_DAYS, &p->cfg->retention.call_metadata_days);
}

/* An extension as Asterisk names it in a channel ("SIP/101-..."): digits,
 * letters, '_', '+', '.', '*', '#'. */
static int set_pbx_extension(parser_t *p, const char *key, const char *value)
{
    char buf[256];
    vg_source_config_t *src = &p->cfg->sources[p->source_index];
    int ok = value[0] && strlen(value) < 32;
    for (const char *c = value; ok && *c; c++)
        ok = isalnum((unsigned char)*c) || strchr("_+.*#", *c);
    if (!ok) {
        fail_at(p, p->lineno, "%s of source '%s' must be an extension such as 101, got '%s'",
                key, src->name, shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    for (size_t i = 0; i < p->cfg->n_sources; i++) {
        const vg_source_config_t *o = &p->cfg->sources[i];
        if (o != src && o->pbx_extension && strcmp(o->pbx_extension, value) == 0) {
            fail_at(p, p->lineno, "%s %s is already the extension of source '%s'", key,
                    value, o->name);
            return VG_ECONFIG;
        }
    }
    free(src->pbx_extension);
    src->pbx_extension = vg_strdup(value);
    return VG_OK;
}

/* "a, b, c" -> names (each a valid source name, at most 64). The sources
 * themselves are checked once the whole file is read (check_desks). */
static int set_name_list(parser_t *p, const char *key, const char *value, char ***out,
                         size_t *n)
{
    char buf[256];
    char *copy = vg_strdup(value);
    int rc = VG_OK;
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        char *name = trim(tok);
        if (!vg_source_name_valid(name) || *n >= 64) {
            fail_at(p, p->lineno, "%s takes source names separated by commas (at most 64), "
                    "got '%s'", key, shown(value, buf, sizeof(buf)));
            rc = VG_ECONFIG;
            break;
        }
        *out = vg_realloc(*out, (*n + 1) * sizeof(**out));
        (*out)[(*n)++] = vg_strdup(name);
    }
    free(copy);
    if (rc == VG_OK && *n == 0) {
        fail_at(p, p->lineno, "%s is empty", key);
        rc = VG_ECONFIG;
    }
    return rc;
}

static int set_desk_lines(parser_t *p, const char *key, const char *value)
{
    vg_desk_config_t *d = &p->cfg->desks[p->desk_index];
    return set_name_list(p, key, value, &d->lines, &d->n_lines);
}

static int set_desk_cameras(parser_t *p, const char *key, const char *value)
{
    vg_desk_config_t *d = &p->cfg->desks[p->desk_index];
    return set_name_list(p, key, value, &d->cameras, &d->n_cameras);
}

/* [live] */
#define MAX_LIVE_VIEWERS 1000

static int set_live_enabled(parser_t *p, const char *key, const char *value)
{
    char buf[256];
    if (strcmp(value, "yes") == 0) {
        p->cfg->live.enabled = 1;
    } else if (strcmp(value, "no") == 0) {
        p->cfg->live.enabled = 0;
    } else {
        fail_at(p, p->lineno, "%s must be yes or no, got '%s'", key,
                shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    return VG_OK;
}

static int set_live_max_viewers(parser_t *p, const char *key, const char *value)
{
    return set_bounded(p, key, value, MAX_LIVE_VIEWERS, &p->cfg->live.max_viewers);
}

static int set_live_max_per_user(parser_t *p, const char *key, const char *value)
{
    return set_bounded(p, key, value, MAX_LIVE_VIEWERS, &p->cfg->live.max_viewers_per_user);
}

/* scheme://[user:pass@]host:port, as webrtcbin takes it; the host part is
 * checked like every other host:port. */
static int set_live_ice_server(parser_t *p, const char *key, const char *value,
                               const char *const *schemes, char **out)
{
    char buf[256];
    const char *rest = NULL;
    for (size_t i = 0; schemes[i] && !rest; i++) {
        size_t n = strlen(schemes[i]);
        if (strncmp(value, schemes[i], n) == 0)
            rest = value + n;
    }
    const char *host = rest;
    for (const char *c = rest; c && *c; c++) {
        if (*c == '@')
            host = c + 1;
    }
    const char *why = !rest ? "has the wrong scheme" : host_problem(host, host + strlen(host));
    if (!why && !strchr(host, ':'))
        why = "needs a port";
    if (why) {
        fail_at(p, p->lineno, "%s in [live] %s: '%s'", key, why, shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    free(*out);
    *out = vg_strdup(value);
    return VG_OK;
}

static int set_live_stun(parser_t *p, const char *key, const char *value)
{
    static const char *const schemes[] = {"stun://", NULL};
    return set_live_ice_server(p, key, value, schemes, &p->cfg->live.stun);
}

static int set_live_turn(parser_t *p, const char *key, const char *value)
{
    static const char *const schemes[] = {"turn://", "turns://", NULL};
    return set_live_ice_server(p, key, value, schemes, &p->cfg->live.turn);
}

/* ---- calls: [calls] announcement, announcement_window; [source]
 * call_detect, call_gap_seconds, call_min_seconds, announcement ---- */

/* A reference announcement: a readable regular file (its format is checked
 * when vigild loads it: a bad file stops the check, never the recording). */
static int set_announcement_path(parser_t *p, const char *key, const char *value, char **out)
{
    char buf[256];
    struct stat st;
    if (!value[0] || value[0] != '/' || stat(value, &st) != 0 || !S_ISREG(st.st_mode) ||
        access(value, R_OK) != 0) {
        fail_at(p, p->lineno, "%s '%s' is not a readable file (an absolute path to a WAV)", key,
                shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    free(*out);
    *out = vg_strdup(value);
    return VG_OK;
}

static int set_calls_announcement(parser_t *p, const char *key, const char *value)
{
    return set_announcement_path(p, key, value, &p->cfg->calls.announcement);
}

static int set_announcement_window(parser_t *p, const char *key, const char *value)
{
    return set_int_in(p, key, value, 5, 120, &p->cfg->calls.announcement_window);
}

static int set_queue_announcement(parser_t *p, const char *key, const char *value)
{
    return set_announcement_path(p, key, value, &p->cfg->queues[p->queue_index].announcement);
}

static int set_source_announcement(parser_t *p, const char *key, const char *value)
{
    return set_announcement_path(p, key, value, &p->cfg->sources[p->source_index].announcement);
}

static int set_call_detect(parser_t *p, const char *key, const char *value)
{
    char buf[256];
    vg_source_config_t *src = &p->cfg->sources[p->source_index];
    if (strcmp(value, "vad") == 0) {
        src->call_detect_vad = 1;
    } else if (strcmp(value, "off") == 0) {
        src->call_detect_vad = 0;
    } else {
        fail_at(p, p->lineno, "%s must be vad or off, got '%s'", key, shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    return VG_OK;
}

static int set_call_gap(parser_t *p, const char *key, const char *value)
{
    return set_int_in(p, key, value, 1, 600, &p->cfg->sources[p->source_index].call_gap_seconds);
}

static int set_call_min(parser_t *p, const char *key, const char *value)
{
    return set_int_in(p, key, value, 0, 600, &p->cfg->sources[p->source_index].call_min_seconds);
}

/* Each table has at most 32 keys: seen_keys is a bit per key. */
static const key_spec_t server_keys[] = {
    {"data_dir", set_data_dir},
    {"log_level", set_log_level},
    {"http_listen", set_http_listen},
    {"tls_cert", set_tls_cert},
    {"tls_key", set_tls_key},
    {"session_idle_minutes", set_session_idle},
    {"session_max_hours", set_session_max},
    {"metrics_access", set_metrics_access},
    {"trusted_proxies", set_trusted_proxies},
    {"audit_checkpoint_seconds", set_audit_checkpoint},
    {"ui_dir", set_ui_dir},
    {"timezone", set_timezone},
    {"require_access_reason", set_require_reason},
    {"http_connections_per_ip", set_connections_per_ip},
    {NULL, NULL},
};
static const key_spec_t archive_keys[] = {
    {"segment_seconds", set_segment_seconds},
    {"sync_seconds", set_sync_seconds},
    {"fragment_max_seconds", set_fragment_max_seconds},
    {"fragment_max_mib", set_fragment_max_mib},
    {"alarm_hold_seconds", set_alarm_hold_seconds},
    {NULL, NULL},
};
static const key_spec_t retention_keys[] = {
    {"min_days", set_min_days},
    {"keep_days", set_keep_days},
    {"capacity_bytes", set_capacity},
    {"reserve_percent", set_reserve},
    {"on_full", set_on_full},
    {"sweep_seconds", set_sweep_seconds},
    {"call_metadata_days", set_call_metadata_days},
    {NULL, NULL},
};
static const key_spec_t relay_keys[] = {
    {"rtsp_listen", set_relay_listen},
    {"tls_cert", set_relay_tls_cert},
    {"tls_key", set_relay_tls_key},
    {"max_clients", set_relay_max_clients},
    {"max_clients_per_ip", set_relay_max_per_ip},
    {"send_interval_ms", set_relay_send_interval},
    {"allow_plain_credentials", set_relay_allow_plain},
    {"push", set_relay_push},
    {NULL, NULL},
};
static int set_exports_keep_days(parser_t *p, const char *key, const char *value)
{
    return set_days(p, key, value, &p->cfg->exports_keep_days);
}

static const key_spec_t exports_keys[] = {
    {"keep_days", set_exports_keep_days},
    {NULL, NULL},
};
/* [calls] announcement_min_rate: the share of checked calls that must have
 * had the recording announcement, per line or queue and day, below which
 * the alarm announcement_rate_low is raised. */
static int set_announcement_min_rate(parser_t *p, const char *key, const char *value)
{
    char buf[256], *end = NULL;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || !(v >= 0.0 && v <= 1.0)) {
        fail_at(p, p->lineno, "%s must be a share from 0 to 1 (0.98 is 98 %%), got '%s'", key,
                shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    p->cfg->announcement_min_rate = v;
    return VG_OK;
}

static int set_announcement_check_seconds(parser_t *p, const char *key, const char *value)
{
    char buf[256];
    if (parse_int_range(value, 1, 86400, &p->cfg->announcement_check_seconds) != VG_OK) {
        fail_at(p, p->lineno, "%s must be whole seconds from 1 to 86400, got '%s'", key,
                shown(value, buf, sizeof(buf)));
        return VG_ECONFIG;
    }
    return VG_OK;
}

/* [playback] transcode_hevc, transcode_max */
static int set_transcode_hevc(parser_t *p, const char *key, const char *value)
{
    char buf[256];
    if (strcmp(value, "yes") == 0 || strcmp(value, "no") == 0) {
        p->cfg->playback.transcode_hevc = strcmp(value, "yes") == 0;
        return VG_OK;
    }
    fail_at(p, p->lineno, "%s must be yes or no, got '%s'", key, shown(value, buf, sizeof(buf)));
    return VG_ECONFIG;
}

static int set_transcode_max(parser_t *p, const char *key, const char *value)
{
    return set_bounded(p, key, value, 64, &p->cfg->playback.transcode_max);
}

static const key_spec_t calls_keys[] = {
    {"announcement_min_rate", set_announcement_min_rate},
    {"announcement_check_seconds", set_announcement_check_seconds},
    {"announcement", set_calls_announcement},
    {"announcement_window", set_announcement_window},
    {NULL, NULL},
};
static const key_spec_t playback_keys[] = {
    {"wav_max_seconds", set_wav_max_seconds},
    {"clip_max_seconds", set_clip_max_seconds},
    {"snapshot_workers", set_snapshot_workers},
    {"snapshot_threads", set_snapshot_threads},
    {"snapshot_cache_mib", set_snapshot_cache_mib},
    {"transcode_hevc", set_transcode_hevc},
    {"transcode_max", set_transcode_max},
    {NULL, NULL},
};
static const key_spec_t live_keys[] = {
    {"enabled", set_live_enabled},
    {"max_viewers", set_live_max_viewers},
    {"max_viewers_per_user", set_live_max_per_user},
    {"stun", set_live_stun},
    {"turn", set_live_turn},
    {NULL, NULL},
};
static const key_spec_t source_keys[] = {
    {"url", set_url},
    {"kind", set_kind},
    {"rtsp_transport", set_transport},
    {"keep_days", set_source_keep_days},
    {"relay", set_source_relay},
    {"push", set_source_push},
    {"pbx_extension", set_pbx_extension},
    {"call_detect", set_call_detect},
    {"call_gap_seconds", set_call_gap},
    {"call_min_seconds", set_call_min},
    {"announcement", set_source_announcement},
    {"transcode", set_source_transcode},
    {NULL, NULL},
};
static const key_spec_t queue_keys[] = {
    {"announcement", set_queue_announcement},
    {NULL, NULL},
};
static const key_spec_t desk_keys[] = {
    {"lines", set_desk_lines},
    {"cameras", set_desk_cameras},
    {NULL, NULL},
};

static const key_spec_t *keys_of(enum section_kind section)
{
    switch (section) {
    case SEC_SERVER: return server_keys;
    case SEC_ARCHIVE: return archive_keys;
    case SEC_RETENTION: return retention_keys;
    case SEC_RELAY: return relay_keys;
    case SEC_EXPORTS: return exports_keys;
    case SEC_PLAYBACK: return playback_keys;
    case SEC_LIVE: return live_keys;
    case SEC_SOURCE: return source_keys;
    case SEC_DESK: return desk_keys;
    case SEC_QUEUE: return queue_keys;
    case SEC_CALLS: return calls_keys;
    default: return NULL;
    }
}

/* libinih handler. The section argument is ignored: libinih cuts section
 * names to 49 bytes, so begin_section() tracks the real one. */
static int on_key(void *user, const char *section, const char *name, const char *value)
{
    (void)section;
    parser_t *p = user;
    char label[128];
    if (p->failed || p->section == SEC_IGNORED)
        return 1;
    const key_spec_t *keys = keys_of(p->section);
    if (!keys) {
        fail_at(p, p->lineno, "key '%s' is outside any [section]", name);
        return 0;
    }
    section_label(p, label, sizeof(label));
    for (unsigned i = 0; keys[i].name; i++) {
        if (strcmp(keys[i].name, name) != 0)
            continue;
        if (p->seen_keys & (1u << i)) {
            fail_at(p, p->lineno, "duplicate key '%s' in [%s]", name, label);
            return 0;
        }
        p->seen_keys |= 1u << i;
        return keys[i].set(p, name, value) == VG_OK;
    }
    fail_at(p, p->lineno, "unknown key '%s' in [%s]", name, label);
    return 0;
}

/* ---- sections ---- */

/* Called when a section ends (at the next header or end of file): checks
 * what only the whole section can tell. */
static void end_section(parser_t *p)
{
    if (p->section == SEC_SOURCE) {
        const vg_source_config_t *src = &p->cfg->sources[p->source_index];
        if (!src->url)
            fail_at(p, p->section_line, "source '%s' has no url", src->name);
        if (src->call_detect_vad && src->kind != VG_SOURCE_AUDIO)
            fail_at(p, p->section_line, "source '%s': call_detect = vad needs kind = audio",
                    src->name);
    }
    if (p->section == SEC_QUEUE && !p->cfg->queues[p->queue_index].announcement)
        fail_at(p, p->section_line, "queue '%s' has no announcement",
                p->cfg->queues[p->queue_index].name);
    p->section = SEC_NONE;
}

static void add_source(parser_t *p, const char *name)
{
    vg_config_t *cfg = p->cfg;
    if (!vg_source_name_valid(name)) {
        fail_at(p, p->lineno, "bad source name '%s' (use a-z, 0-9 and -, up to 63 characters)",
                name);
        return;
    }
    if (vg_config_find_source(cfg, name)) {
        fail_at(p, p->lineno, "duplicate section [source %s]", name);
        return;
    }
    cfg->sources = vg_realloc(cfg->sources, (cfg->n_sources + 1) * sizeof(cfg->sources[0]));
    vg_source_config_t *src = &cfg->sources[cfg->n_sources];
    src->name = vg_strdup(name);
    src->url = NULL;
    src->kind = VG_SOURCE_VIDEO;
    src->transport = VG_TRANSPORT_TCP;
    src->keep_days = 0;
    src->keep_days_line = 0;
    src->relay = 1;
    src->push = NULL;
    src->pbx_extension = NULL;
    src->call_detect_vad = 0;
    src->call_gap_seconds = 8;
    src->call_min_seconds = 2;
    src->announcement = NULL;
    src->no_transcode = 0;
    p->source_index = cfg->n_sources++;
    p->section = SEC_SOURCE;
}

static void add_desk(parser_t *p, const char *name)
{
    vg_config_t *cfg = p->cfg;
    if (!vg_source_name_valid(name)) {
        fail_at(p, p->lineno, "bad desk name '%s' (use a-z, 0-9 and -, up to 63 characters)",
                name);
        return;
    }
    if (vg_config_find_desk(cfg, name)) {
        fail_at(p, p->lineno, "duplicate section [desk %s]", name);
        return;
    }
    cfg->desks = vg_realloc(cfg->desks, (cfg->n_desks + 1) * sizeof(cfg->desks[0]));
    vg_desk_config_t *d = &cfg->desks[cfg->n_desks];
    memset(d, 0, sizeof(*d));
    d->name = vg_strdup(name);
    p->desk_index = cfg->n_desks++;
    p->section = SEC_DESK;
}

/* A queue is named as the PBX names it: any text but brackets and control
 * characters, up to 127 bytes (a call's queue is at most that long). */
static void add_queue(parser_t *p, const char *name)
{
    vg_config_t *cfg = p->cfg;
    size_t len = strlen(name);
    int ok = len > 0 && len < 128;
    for (size_t i = 0; ok && i < len; i++)
        ok = (unsigned char)name[i] >= 0x20 && name[i] != 0x7f && name[i] != '[' &&
             name[i] != ']';
    if (!ok) {
        fail_at(p, p->lineno, "bad queue name (1..127 bytes, no brackets or control characters)");
        return;
    }
    if (vg_config_find_queue(cfg, name)) {
        fail_at(p, p->lineno, "duplicate section [queue %s]", name);
        return;
    }
    cfg->queues = vg_realloc(cfg->queues, (cfg->n_queues + 1) * sizeof(cfg->queues[0]));
    vg_queue_config_t *q = &cfg->queues[cfg->n_queues];
    memset(q, 0, sizeof(*q));
    q->name = vg_strdup(name);
    p->queue_index = cfg->n_queues++;
    p->section = SEC_QUEUE;
}

/* Opens a fixed-name section once; seen is that section's flag. */
static void open_single(parser_t *p, int *seen, enum section_kind kind, const char *name)
{
    if (*seen) {
        fail_at(p, p->lineno, "duplicate section [%s]", name);
        return;
    }
    *seen = 1;
    p->section = kind;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t len = strlen(s);
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        s[--len] = '\0';
    return s;
}

/* header is a whole trimmed line starting with '['. A header without ']' is
 * left for libinih to report as a syntax error. */
static void begin_section(parser_t *p, const char *header)
{
    end_section(p);
    p->section = SEC_IGNORED;
    p->section_line = p->lineno;
    p->seen_keys = 0;
    const char *close = strchr(header, ']');
    if (!close)
        return;
    char *name = vg_strdup(header + 1);
    name[close - header - 1] = '\0';
    char *n = trim(name);
    if (strcmp(n, "server") == 0)
        open_single(p, &p->seen_server, SEC_SERVER, "server");
    else if (strcmp(n, "archive") == 0)
        open_single(p, &p->seen_archive, SEC_ARCHIVE, "archive");
    else if (strcmp(n, "retention") == 0)
        open_single(p, &p->seen_retention, SEC_RETENTION, "retention");
    else if (strcmp(n, "relay") == 0)
        open_single(p, &p->seen_relay, SEC_RELAY, "relay");
    else if (strcmp(n, "exports") == 0)
        open_single(p, &p->seen_exports, SEC_EXPORTS, "exports");
    else if (strcmp(n, "playback") == 0)
        open_single(p, &p->seen_playback, SEC_PLAYBACK, "playback");
    else if (strcmp(n, "calls") == 0)
        open_single(p, &p->seen_calls, SEC_CALLS, "calls");
    else if (strcmp(n, "live") == 0)
        open_single(p, &p->seen_live, SEC_LIVE, "live");
    else if (strncmp(n, "source", 6) == 0 && (n[6] == '\0' || isspace((unsigned char)n[6])))
        add_source(p, trim(n + 6));
    else if (strncmp(n, "desk", 4) == 0 && isspace((unsigned char)n[4]))
        add_desk(p, trim(n + 4));
    else if (strncmp(n, "queue", 5) == 0 && isspace((unsigned char)n[5]))
        add_queue(p, trim(n + 5));
    else
        fail_at(p, p->lineno, "unknown section [%s]", n);
    free(name);
}

/* ---- reading ---- */

/* libinih's fgets-style reader: hands over exactly one physical line per call
 * (so libinih's line numbers are ours), without leading whitespace (so an
 * indented key is a key, not the continuation of the previous value), and
 * refuses a line that does not fit libinih's buffer instead of splitting it. */
static char *read_line(char *buf, int size, void *user)
{
    parser_t *p = user;
    errno = 0;
    ssize_t n = getline(&p->line, &p->line_cap, p->fp);
    if (n < 0) {
        if (ferror(p->fp))
            p->read_errno = errno ? errno : EIO;
        return NULL;
    }
    p->lineno++;
    if (strlen(p->line) != (size_t)n) {
        fail_at(p, p->lineno, "line contains a NUL byte");
        return NULL;
    }
    char *text = p->line;
    if (p->lineno == 1 && strncmp(text, "\xEF\xBB\xBF", 3) == 0)
        text += 3;
    text = trim(text);
    size_t len = strlen(text);
    if (size <= 0 || len >= (size_t)size) {
        fail_at(p, p->lineno, "line is too long (at most %d characters)", size > 0 ? size - 1 : 0);
        return NULL;
    }
    if (text[0] == '[')
        begin_section(p, text);
    memcpy(buf, text, len + 1);
    return buf;
}

static void init_defaults(vg_config_t *cfg, const char *path)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->path = vg_strdup(path);
    cfg->data_dir = vg_strdup(DEFAULT_DATA_DIR);
    cfg->log_level = VG_LOG_INFO;
    cfg->segment_seconds = DEFAULT_SEGMENT_SECONDS;
    cfg->sync_seconds = DEFAULT_SYNC_SECONDS;
    cfg->fragment_max_seconds = DEFAULT_FRAGMENT_MAX_SECONDS;
    cfg->fragment_max_mib = DEFAULT_FRAGMENT_MAX_MIB;
    cfg->alarm_hold_seconds = 300;
    cfg->audit_checkpoint_seconds = 300;
    cfg->retention.min_days = DEFAULT_DAYS;
    cfg->retention.keep_days = DEFAULT_DAYS;
    cfg->exports_keep_days = DEFAULT_EXPORT_DAYS;
    cfg->announcement_min_rate = 0.98;
    cfg->announcement_check_seconds = 3600;
    cfg->retention.capacity_bytes = 0;
    cfg->retention.reserve_percent = DEFAULT_RESERVE_PERCENT;
    cfg->retention.on_full = VG_ON_FULL_OVERWRITE;
    cfg->retention.sweep_seconds = DEFAULT_SWEEP_SECONDS;
    cfg->http.listen = vg_strdup(DEFAULT_HTTP_LISTEN);
    cfg->http.session_idle_minutes = DEFAULT_SESSION_IDLE_MINUTES;
    cfg->http.connections_per_ip = DEFAULT_CONNECTIONS_PER_IP;
    cfg->http.ui_dir = vg_strdup(VG_UI_DIR);
    cfg->http.session_max_hours = DEFAULT_SESSION_MAX_HOURS;
    cfg->relay.rtsp_listen = vg_strdup("");
    cfg->relay.max_clients = DEFAULT_RELAY_MAX_CLIENTS;
    cfg->relay.max_clients_per_ip = DEFAULT_RELAY_MAX_PER_IP;
    cfg->relay.send_interval_ms = DEFAULT_RELAY_SEND_INTERVAL_MS;
    cfg->playback.wav_max_seconds = 4 * 3600;
    cfg->playback.clip_max_seconds = 6 * 3600;
    cfg->playback.snapshot_workers = 2;
    cfg->playback.snapshot_threads = 2;
    cfg->playback.snapshot_cache_mib = 256;
    cfg->playback.transcode_hevc = 0;
    cfg->playback.transcode_max = 2;
    cfg->live.enabled = 1;
    cfg->live.max_viewers = 32;
    cfg->live.max_viewers_per_user = 8;
    cfg->calls.announcement_window = 20;
}

/* A certificate without its key (or the reverse) cannot serve HTTPS, and
 * silently falling back to plain HTTP would expose sessions. */
static void check_tls(parser_t *p)
{
    const vg_http_config_t *h = &p->cfg->http;
    const vg_relay_config_t *r = &p->cfg->relay;
    if (!h->tls_cert != !h->tls_key)
        fail_at(p, h->tls_cert ? p->tls_cert_line : p->tls_key_line,
                "tls_cert and tls_key go together: set both or neither");
    if (!r->tls_cert != !r->tls_key)
        fail_at(p, r->tls_cert ? p->relay_cert_line : p->relay_key_line,
                "tls_cert and tls_key in [relay] go together: set both or neither");
}

/* The floor is a legal minimum: no keep_days anywhere may undercut it. */
static void check_retention(parser_t *p)
{
    const vg_retention_config_t *r = &p->cfg->retention;
    if (r->keep_days < r->min_days) {
        fail_at(p, p->keep_days_line ? p->keep_days_line : p->min_days_line,
                "keep_days (%d) is below min_days (%d): recordings must be kept at least "
                "min_days", r->keep_days, r->min_days);
        return;
    }
    for (size_t i = 0; i < p->cfg->n_sources; i++) {
        const vg_source_config_t *src = &p->cfg->sources[i];
        if (src->keep_days && src->keep_days < r->min_days) {
            fail_at(p, src->keep_days_line, "keep_days (%d) of source '%s' is below min_days (%d)",
                    src->keep_days, src->name, r->min_days);
            return;
        }
    }
}

/* A desk names configured sources: its lines audio, its cameras video. */
static void check_desks(parser_t *p)
{
    for (size_t i = 0; i < p->cfg->n_desks && !p->failed; i++) {
        const vg_desk_config_t *d = &p->cfg->desks[i];
        if (!d->n_lines)
            fail_at(p, 0, "[desk %s] has no lines", d->name);
        for (size_t k = 0; k < d->n_lines && !p->failed; k++) {
            const vg_source_config_t *s = vg_config_find_source(p->cfg, d->lines[k]);
            if (!s || s->kind != VG_SOURCE_AUDIO)
                fail_at(p, 0, "[desk %s] lines: '%s' is not an audio source", d->name,
                        d->lines[k]);
        }
        for (size_t k = 0; k < d->n_cameras && !p->failed; k++) {
            const vg_source_config_t *s = vg_config_find_source(p->cfg, d->cameras[k]);
            if (!s || s->kind != VG_SOURCE_VIDEO)
                fail_at(p, 0, "[desk %s] cameras: '%s' is not a video source", d->name,
                        d->cameras[k]);
        }
    }
}

/* Runs libinih over the open file and settles which problem, if any, is the
 * first: ours, or a syntax error that only libinih saw. */
static void parse_file(parser_t *p)
{
    int rc = ini_parse_stream(read_line, p, on_key, p);
    if (p->read_errno)
        return;
    end_section(p);
    if (!p->failed && rc == 0)
        check_retention(p);
    if (!p->failed && rc == 0)
        check_tls(p);
    if (!p->failed && rc == 0)
        check_desks(p);
    if (rc > 0 && (!p->failed || rc < p->err_line)) {
        p->failed = 0;
        fail_at(p, rc, "expected '[section]' or 'key = value'");
    } else if (rc < 0) {
        fail_at(p, 0, "libinih failed (%d)", rc);
    }
}

int vg_config_load(const char *path, vg_config_t *out, char *err, size_t err_size)
{
    parser_t p = {.cfg = out, .err = err, .err_size = err ? err_size : 0};
    int rc = VG_ECONFIG;
    if (p.err_size > 0)
        err[0] = '\0';
    init_defaults(out, path);
    p.fp = fopen(path, "re");
    if (!p.fp) {
        fail_at(&p, 0, "cannot read: %s", strerror(errno));
        rc = VG_EIO;
        goto cleanup;
    }
    parse_file(&p);
    if (p.read_errno) {
        p.failed = 0;
        fail_at(&p, 0, "cannot read: %s", strerror(p.read_errno));
        rc = VG_EIO;
        goto cleanup;
    }
    if (!p.failed)
        rc = VG_OK;
cleanup:
    if (p.fp)
        fclose(p.fp);
    free(p.line);
    if (rc != VG_OK)
        vg_config_free(out);
    return rc;
}

void vg_config_free(vg_config_t *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_sources; i++) {
        free(cfg->sources[i].name);
        free(cfg->sources[i].url);
        free(cfg->sources[i].push);
        free(cfg->sources[i].pbx_extension);
        free(cfg->sources[i].announcement);
    }
    free(cfg->calls.announcement);
    free(cfg->sources);
    for (size_t i = 0; i < cfg->n_desks; i++) {
        for (size_t k = 0; k < cfg->desks[i].n_lines; k++)
            free(cfg->desks[i].lines[k]);
        for (size_t k = 0; k < cfg->desks[i].n_cameras; k++)
            free(cfg->desks[i].cameras[k]);
        free(cfg->desks[i].lines);
        free(cfg->desks[i].cameras);
        free(cfg->desks[i].name);
    }
    free(cfg->desks);
    for (size_t i = 0; i < cfg->n_queues; i++) {
        free(cfg->queues[i].name);
        free(cfg->queues[i].announcement);
    }
    free(cfg->queues);
    free(cfg->http.listen);
    free(cfg->http.tls_cert);
    free(cfg->http.tls_key);
    free(cfg->http.trusted_proxies);
    free(cfg->http.ui_dir);
    free(cfg->http.timezone);
    free(cfg->relay.rtsp_listen);
    free(cfg->relay.tls_cert);
    free(cfg->relay.tls_key);
    free(cfg->relay.push);
    free(cfg->live.stun);
    free(cfg->live.turn);
    free(cfg->data_dir);
    free(cfg->path);
    /* Zeroed so a second free, or a free after a failed load, is harmless. */
    memset(cfg, 0, sizeof(*cfg));
}

const vg_source_config_t *vg_config_find_source(const vg_config_t *cfg, const char *name)
{
    if (!cfg || !name)
        return NULL;
    for (size_t i = 0; i < cfg->n_sources; i++) {
        if (strcmp(cfg->sources[i].name, name) == 0)
            return &cfg->sources[i];
    }
    return NULL;
}

const vg_queue_config_t *vg_config_find_queue(const vg_config_t *cfg, const char *name)
{
    if (!cfg || !name)
        return NULL;
    for (size_t i = 0; i < cfg->n_queues; i++) {
        if (strcmp(cfg->queues[i].name, name) == 0)
            return &cfg->queues[i];
    }
    return NULL;
}

const vg_desk_config_t *vg_config_find_desk(const vg_config_t *cfg, const char *name)
{
    if (!cfg || !name)
        return NULL;
    for (size_t i = 0; i < cfg->n_desks; i++) {
        if (strcmp(cfg->desks[i].name, name) == 0)
            return &cfg->desks[i];
    }
    return NULL;
}

int vg_config_keep_days(const vg_config_t *cfg, const vg_source_config_t *src)
{
    return src && src->keep_days ? src->keep_days : cfg->retention.keep_days;
}

char *vg_config_push_url(const vg_config_t *cfg, const vg_source_config_t *src)
{
    const char *tpl = src->push ? src->push : cfg->relay.push;
    if (!src->relay || !tpl || !tpl[0])
        return NULL;
    /* Source names are [a-z0-9-]: safe in a URL path as they are. */
    size_t n = 0;
    for (const char *p = strstr(tpl, "{source}"); p; p = strstr(p + 8, "{source}"))
        n++;
    char *out = vg_malloc(strlen(tpl) + n * strlen(src->name) + 1);
    char *o = out;
    for (const char *p = tpl; *p;) {
        if (strncmp(p, "{source}", 8) == 0) {
            o += sprintf(o, "%s", src->name);
            p += 8;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

int vg_url_has_secret(const char *url)
{
    if (!url)
        return 0;
    const char *scheme_end = strstr(url, "://");
    const char *auth = scheme_end ? scheme_end + 3 : url;
    size_t host_len = strcspn(auth, "/?#");
    const char *at = memrchr(auth, '@', host_len);
    if (at && memchr(auth, ':', (size_t)(at - auth)))
        return 1;
    const char *q = strchr(url, '?');
    return q && (strcasestr(q, "passphrase=") || strcasestr(q, "password="));
}

void vg_config_secrets(const vg_config_t *cfg, char *out, size_t size)
{
    char what[160];
    out[0] = '\0';
    for (size_t i = 0; i < cfg->n_sources; i++) {
        const vg_source_config_t *s = &cfg->sources[i];
        if (vg_url_has_secret(s->url)) {
            snprintf(what, sizeof(what), "[source %s] url", s->name);
            vg_list_append(out, size, what);
        }
        if (vg_url_has_secret(s->push)) {
            snprintf(what, sizeof(what), "[source %s] push", s->name);
            vg_list_append(out, size, what);
        }
    }
    if (vg_url_has_secret(cfg->relay.push))
        vg_list_append(out, size, "[relay] push");
    if (vg_url_has_secret(cfg->live.turn))
        vg_list_append(out, size, "[live] turn");
}

/* Readable by "others": every account on the box, a compromised service's
 * included. */
static int world_readable(const char *path, unsigned *mode)
{
    struct stat st;
    if (!path || stat(path, &st) != 0)
        return 0;
    *mode = (unsigned)st.st_mode & 07777;
    return (st.st_mode & S_IROTH) != 0;
}

void vg_config_warn_exposed(const vg_config_t *cfg)
{
    char secrets[512];
    unsigned mode = 0;
    vg_config_secrets(cfg, secrets, sizeof(secrets));
    if (secrets[0] && world_readable(cfg->path, &mode))
        vg_warn("config %s is readable by every user of this host (mode %04o) and holds "
                "passwords (%s): chmod o-r it (make install sets root:vigil 0640)",
                cfg->path, mode, secrets);
    const char *keys[] = {cfg->http.tls_key, cfg->relay.tls_key};
    for (size_t i = 0; i < 2; i++) {
        if (world_readable(keys[i], &mode))
            vg_warn("TLS key %s is readable by every user of this host (mode %04o): "
                    "chmod o-r it", keys[i], mode);
    }
}
