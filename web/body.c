/* JSON request bodies and time values: strict parsing against a field list
 * (unknown members, wrong types and missing required ones are 400s), so a
 * handler only ever sees input of the shape it expects. Pure functions,
 * fuzzed by tests/fuzz/fuzz_router.c. */
#include "web/web_private.h"

#include <stdio.h>
#include <string.h>

#include "core/errors.h"
#include "core/util.h"

#define MAX_STRING 4096
#define MAX_ARRAY 256

static int fail(web_error_t *err, const char *code, const char *fmt, const char *name)
{
    err->status = 400;
    err->code = code;
    snprintf(err->message, sizeof(err->message), fmt, name);
    return VG_EINVAL;
}

/* A time from a client is taken only from 1970 to the end of 9999, so the
 * difference of any two, and a day or a year added to one, fit int64: range
 * checks of the form to - from > max stay exact (a from before 1970 and a to
 * near INT64_MAX once wrapped such a check negative and let any span by). */
static int time_in_bounds(int64_t us)
{
    return us >= 0 && us <= WEB_TIME_MAX_US;
}

int web_time_text(const char *text, int64_t *us)
{
    int64_t t;
    if (!text || !*text || strlen(text) > 64 || vg_time_parse(text, &t) != VG_OK ||
        !time_in_bounds(t))
        return VG_EINVAL;
    *us = t;
    return VG_OK;
}

int web_json_time(const json_t *v, int64_t *us)
{
    if (json_is_string(v))
        return web_time_text(json_string_value(v), us);
    if (json_is_integer(v)) {
        json_int_t s = json_integer_value(v);
        if (s < 0 || s > WEB_TIME_MAX_US / 1000000)
            return VG_EINVAL;
        *us = (int64_t)s * 1000000;
        return VG_OK;
    }
    return VG_EINVAL;
}

static int string_ok(const json_t *v)
{
    return json_is_string(v) && json_string_length(v) <= MAX_STRING;
}

static int kind_ok(const web_field_t *f, const json_t *v)
{
    int64_t us;
    size_t i;
    const json_t *e;
    if (json_is_null(v))
        return f->nullable;
    switch (f->kind) {
    case WEB_F_STRING: return string_ok(v);
    case WEB_F_INT: return json_is_integer(v);
    case WEB_F_BOOL: return json_is_boolean(v);
    case WEB_F_ARRAY: return json_is_array(v);
    case WEB_F_OBJECT: return json_is_object(v);
    case WEB_F_TIME: return web_json_time(v, &us) == VG_OK;
    case WEB_F_STRINGS:
        if (!json_is_array(v) || json_array_size(v) > MAX_ARRAY)
            return 0;
        json_array_foreach(v, i, e) {
            if (!string_ok(e))
                return 0;
        }
        return 1;
    case WEB_F_INTS:
        if (!json_is_array(v) || json_array_size(v) > MAX_ARRAY)
            return 0;
        json_array_foreach(v, i, e) {
            if (!json_is_integer(e))
                return 0;
        }
        return 1;
    }
    return 0;
}

static const web_field_t *field_of(const web_field_t *fields, const char *name)
{
    for (const web_field_t *f = fields; f->name; f++) {
        if (strcmp(f->name, name) == 0)
            return f;
    }
    return NULL;
}

static int check_object(json_t *obj, const web_field_t *fields, web_error_t *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v) {
        const web_field_t *f = field_of(fields, key);
        if (!f)
            return fail(err, "unknown_field", "unknown field '%.64s'", key);
        if (!kind_ok(f, v))
            return fail(err, f->kind == WEB_F_TIME && json_is_string(v) ? "invalid_time"
                                                                          : "invalid_field",
                        "field '%.64s' has the wrong type or value", key);
    }
    for (const web_field_t *f = fields; f->name; f++) {
        if (f->required && !json_object_get(obj, f->name))
            return fail(err, "missing_field", "field '%.64s' is required", f->name);
    }
    return VG_OK;
}

int web_body_parse(const char *body, size_t len, const web_field_t *fields, json_t **out,
                   web_error_t *err)
{
    json_error_t jerr;
    *out = NULL;
    if (len > WEB_MAX_BODY) {
        err->status = 413;
        err->code = "body_too_large";
        snprintf(err->message, sizeof(err->message), "request bodies are limited to 1 MiB");
        return VG_EINVAL;
    }
    /* No JSON_ALLOW_NUL: a "\u0000" inside a string is refused by jansson.
     * JSON_REJECT_DUPLICATES: {"a":1,"a":2} is ambiguous, so an error. */
    json_t *root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return fail(err, "invalid_json", "the body is not valid JSON%s", "");
    if (!json_is_object(root)) {
        json_decref(root);
        return fail(err, "invalid_json", "the body must be a JSON object%s", "");
    }
    int rc = check_object(root, fields, err);
    if (rc != VG_OK) {
        json_decref(root);
        return rc;
    }
    *out = root;
    return VG_OK;
}
