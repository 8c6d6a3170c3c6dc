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
 * the zone, the browser's language, the UI version, the retention floor,
 * whether H.265 is transcoded for browsers. */
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
    json_t *ui = json_pack("{ss ss ss si so}", "timezone", tz, "language",
                           web_ui_language(accept), "version", r->w->ui_version, "min_days",
                           r->cfg->retention.min_days, "rtsp", rtsp);
    /* The player asks for playlist.m3u8?video=h264 where the browser
     * cannot decode H.265 and the server transcodes. */
    if (ui)
        json_object_set_new(ui, "transcode_hevc", json_boolean(r->cfg->playback.transcode_hevc));
    web_reply_json(r, 200, ui);
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

/* A preference key: [a-z0-9_.-]{1,32}, so it can be logged and named in
 * an error as it is. */
static int pref_key(web_req_t *r)
{
    const char *k = r->params[0];
    size_t n = strlen(k);
    int ok = n >= 1 && n <= 32 && strspn(k, "abcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
    if (!ok)
        web_reply_error(r, 400, "invalid_key", "a preference key is 1 to 32 of a-z 0-9 _ . -");
    return ok;
}

/* GET /api/v1/me/prefs/{key}: {"key": k, "value": the stored JSON value,
 * or null when the account has none}. */
void web_h_pref(web_req_t *r)
{
    char *text = NULL;
    json_t *v = NULL;
    if (!user_only(r) || !pref_key(r))
        return;
    int rc = idx_pref_get(r->idx, r->who.name, r->params[0], &text);
    if (rc != VG_OK && rc != VG_ENOTFOUND) {
        web_reply_error(r, 500, "internal", "cannot read the preference");
        return;
    }
    /* stored only after it parsed (web_h_pref_set); null if it somehow does not */
    if (text)
        v = json_loads(text, JSON_DECODE_ANY, NULL);
    free(text);
    web_reply_json(r, 200, json_pack("{ss so}", "key", r->params[0], "value", v ? v : json_null()));
}

/* PUT /api/v1/me/prefs/{key} with the value as the JSON body (any JSON
 * value of at most WEB_PREF_MAX bytes). Stored compact, as re-serialized
 * by jansson, so what is read back is always valid JSON. Not audited: a
 * layout or a setting of one's own UI touches no media or personal data. */
void web_h_pref_set(web_req_t *r)
{
    json_error_t jerr;
    json_t *v = NULL;
    char *text = NULL;
    if (!user_only(r) || !pref_key(r))
        return;
    const char *ct = web_req_header(r, "Content-Type");
    if (ct && strncmp(ct, "application/json", 16) != 0) {
        web_reply_error(r, 415, "unsupported_media_type", "send the value as application/json");
        return;
    }
    if (r->body_too_big || r->body_len > WEB_PREF_MAX) {
        web_reply_error(r, 413, "body_too_large", "a preference is at most 4096 bytes of JSON");
        return;
    }
    v = json_loadb(r->body ? r->body : "", r->body_len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
                   &jerr);
    if (!v) {
        web_reply_error(r, 400, "invalid_json", "the body is not valid JSON");
        return;
    }
    text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    if (!text) {
        web_reply_error(r, 400, "invalid_json", "the value cannot be stored as JSON");
        goto cleanup;
    }
    int rc = idx_pref_set(r->idx, r->who.name, r->params[0], text);
    if (rc == VG_EINVAL) {
        web_reply_error(r, 409, "too_many_prefs", "an account keeps at most 32 preferences");
        goto cleanup;
    }
    if (rc != VG_OK) {
        web_reply_error(r, 500, "internal", "cannot store the preference");
        goto cleanup;
    }
    web_reply_json(r, 200, json_pack("{ss sO}", "key", r->params[0], "value", v));

cleanup:
    free(text);
    json_decref(v);
}
