/* libFuzzer target for what the HTTP side parses from strangers: the raw
 * request target (path decoding, path-trick refusal, query string), route
 * matching, and JSON bodies against a field list. Input: the target, a
 * newline, then the body. Built by `make fuzz` (clang). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "web/web_private.h"

static const web_field_t fields[] = {
    {"name", WEB_F_STRING, 1, 0},  {"keep_days", WEB_F_INT, 0, 1},
    {"sources", WEB_F_STRINGS, 0, 1}, {"from", WEB_F_TIME, 0, 0},
    {"until", WEB_F_TIME, 0, 1},   {NULL, 0, 0, 0}};

static void route(const web_target_t *t)
{
    static const char *const methods[] = {"GET", "POST", "PATCH", "DELETE", "PUT"};
    for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
        const char *params[WEB_MAX_PARAMS];
        char allow[64];
        int known = 0;
        web_error_t err;
        const web_route_t *r = web_route_find(methods[m], t, &known, allow, sizeof(allow), params);
        if (r)
            web_route_check_query(r, t, &err);
    }
    for (size_t i = 0; i < t->n_query; i++) {
        int64_t us;
        web_time_text(t->query[i].value, &us);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t tlen = nl ? (size_t)(nl - data) : size;
    /* The server hands over a NUL-terminated copy, as MHD gives it. */
    char *target = malloc(tlen + 1);
    memcpy(target, data, tlen);
    target[tlen] = '\0';
    web_target_t t;
    web_error_t err;
    if (web_target_parse(target, strlen(target), &t, &err) == VG_OK) {
        route(&t);
        web_target_free(&t);
    }
    free(target);
    if (nl) {
        json_t *v = NULL;
        if (web_body_parse((const char *)nl + 1, size - tlen - 1, fields, &v, &err) == VG_OK)
            json_decref(v);
    }
    return 0;
}
