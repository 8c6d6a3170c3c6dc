/* Small routes the browser UI needs beside the API proper: the office's time
 * zone and the language to show before anyone has logged in. Times in the
 * API stay UTC; the UI formats them in this zone. */
#include "web/web_private.h"

#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <microhttpd.h>

#include "core/errors.h"

static void copy_text(char *out, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(out, src, n);
    out[n] = '\0';
}

/* The system's zone: /etc/timezone (Debian), else the name /etc/localtime
 * links to, else UTC. */
static void system_zone(char *out, size_t size)
{
    char buf[PATH_MAX];
    FILE *f = fopen("/etc/timezone", "re");
    snprintf(out, size, "UTC");
    if (f) {
        if (fgets(buf, sizeof(buf), f)) {
            buf[strcspn(buf, " \r\n")] = '\0';
            if (buf[0])
                copy_text(out, size, buf);
        }
        fclose(f);
        if (strcmp(out, "UTC") != 0)
            return;
    }
    ssize_t n = readlink("/etc/localtime", buf, sizeof(buf) - 1);
    if (n > 0) {
        buf[n] = '\0';
        const char *z = strstr(buf, "zoneinfo/");
        if (z && z[9])
            copy_text(out, size, z + 9);
    }
}

/* "ru" or "en" from Accept-Language: the first of the two the browser
 * lists, Russian when it lists neither (the appliance's users are). */
const char *web_ui_language(const char *accept)
{
    for (const char *p = accept; p && *p;) {
        p += strspn(p, " ,");
        int whole = !isalpha((unsigned char)p[2]) || !p[2];
        if (whole && strncasecmp(p, "en", 2) == 0)
            return "en";
        if (whole && strncasecmp(p, "ru", 2) == 0)
            return "ru";
        p += strcspn(p, ",");
    }
    return "ru";
}

/* GET /api/v1/ui: public, holds nothing secret (the login page needs it):
 * the zone, the browser's language, the UI version, the retention floor. */
void web_h_ui(web_req_t *r)
{
    char zone[128];
    const char *tz = r->cfg->http.timezone;
    if (!tz) {
        system_zone(zone, sizeof(zone));
        tz = zone;
    }
    const char *accept = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "Accept-Language");
    /* The relay's RTSP port and scheme, for the player's "open in a video
     * player" link (an H.265 source the browser cannot decode); the host
     * is the one the browser already uses. */
    json_t *rtsp = json_null();
    const char *listen = r->cfg->relay.rtsp_listen;
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    if (colon && atoi(colon + 1) > 0)
        rtsp = json_pack("{si ss}", "port", atoi(colon + 1), "scheme",
                         r->cfg->relay.tls_cert ? "rtsps" : "rtsp");
    web_reply_json(r, 200, json_pack("{ss ss ss si so}", "timezone", tz, "language",
                                     web_ui_language(accept), "version", r->w->ui_version,
                                     "min_days", r->cfg->retention.min_days, "rtsp", rtsp));
}

static int user_only(web_req_t *r)
{
    if (r->who.kind == 'u')
        return 1;
    web_reply_error(r, 400, "not_a_user", "only user accounts have a UI language");
    return 0;
}

/* GET /api/v1/me/language: {"language": "ru" | "en" | null (not chosen)}. */
void web_h_language(web_req_t *r)
{
    char lang[16];
    if (!user_only(r))
        return;
    if (idx_account_language(r->idx, r->who.name, lang, sizeof(lang)) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot read the language");
        return;
    }
    web_reply_json(r, 200, json_pack("{so}", "language", lang[0] ? json_string(lang) : json_null()));
}

/* PUT /api/v1/me/language {"language": "ru" | "en"}: kept per account, so
 * the UI speaks it on any browser the user logs in from. */
void web_h_language_set(web_req_t *r)
{
    static const web_field_t fields[] = {{"language", WEB_F_STRING, 1, 0}, {NULL, 0, 0, 0}};
    char object[96];
    json_t *body = NULL;
    if (!user_only(r) || !(body = web_req_body(r, fields)))
        return;
    const char *lang = json_string_value(json_object_get(body, "language"));
    if (strcmp(lang, "ru") != 0 && strcmp(lang, "en") != 0) {
        web_reply_error(r, 400, "invalid_field", "language is ru or en");
        goto cleanup;
    }
    if (idx_account_set_language(r->idx, r->who.name, lang) != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot store the language");
        goto cleanup;
    }
    snprintf(object, sizeof(object), "user:%s", r->who.name);
    web_audit(r, "user.language", object, 0, 0, "ok", lang);
    web_reply_json(r, 200, json_pack("{ss}", "language", lang));

cleanup:
    json_decref(body);
}
