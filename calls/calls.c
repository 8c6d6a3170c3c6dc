/* Phone numbers and lines: normalization to E.164 for the office's country
 * (Russia, +7) and which line a PBX channel name belongs to. */
#include "calls/calls.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "core/errors.h"

#define E164_MAX_DIGITS 15
#define EXTENSION_MAX_DIGITS 6

int call_number_normalize(const char *raw, char *out, size_t size)
{
    char digits[E164_MAX_DIGITS + 1];
    size_t n = 0;
    int plus = 0, seen = 0;
    if (size)
        out[0] = '\0';
    if (!raw || size < IDX_CALL_NUM_MAX)
        return VG_EINVAL;
    for (const char *c = raw; *c; c++) {
        unsigned char ch = (unsigned char)*c;
        if (isdigit(ch)) {
            if (n == E164_MAX_DIGITS)
                return VG_EINVAL;
            digits[n++] = (char)ch;
            seen = 1;
        } else if (ch == '+' && !seen && !plus) {
            plus = 1;
        } else if (!strchr(" -.()\t", ch)) {
            return VG_EINVAL; /* letters: "Anonymous", "asterisk", a SIP URI */
        }
    }
    digits[n] = '\0';
    if (n == 0)
        return VG_EINVAL;
    if (plus) {
        snprintf(out, size, "+%s", digits);
    } else if (n == 11 && (digits[0] == '8' || digits[0] == '7')) {
        snprintf(out, size, "+7%s", digits + 1); /* 8 912 ... (trunk prefix) or 7 912 ... */
    } else if (n == 10 && digits[0] != '0' && digits[0] != '1' && digits[0] != '2') {
        /* A national number without a prefix: the area code starts 3-9. */
        snprintf(out, size, "+7%s", digits);
    } else if (n > 11 && strncmp(digits, "810", 3) == 0) {
        snprintf(out, size, "+%s", digits + 3); /* 8-10: the old international prefix */
    } else {
        snprintf(out, size, "%s", digits); /* an extension or a number we cannot place */
    }
    return VG_OK;
}

int call_number_query(const char *text, char *out, size_t size, int *suffix)
{
    *suffix = 0;
    if (size)
        out[0] = '\0';
    if (!text || size < IDX_CALL_NUM_MAX)
        return VG_EINVAL;
    if (text[0] == '*') {
        size_t n = strlen(text + 1);
        if (n == 0 || n > E164_MAX_DIGITS)
            return VG_EINVAL;
        for (size_t i = 1; text[i]; i++) {
            if (!isdigit((unsigned char)text[i]))
                return VG_EINVAL;
        }
        snprintf(out, size, "%s", text + 1);
        *suffix = 1;
        return VG_OK;
    }
    return call_number_normalize(text, out, size);
}

/* "SIP/101-0000002a" -> "101": the part after the technology and before
 * the '-' of the channel's sequence number (or '@' of a Local channel). */
const vg_source_config_t *call_line_of_channel(const vg_config_t *cfg, const char *channel)
{
    if (!cfg || !channel)
        return NULL;
    const char *slash = strchr(channel, '/');
    if (!slash)
        return NULL;
    const char *ext = slash + 1;
    size_t len = strcspn(ext, "-@;/,");
    if (len == 0)
        return NULL;
    for (size_t i = 0; i < cfg->n_sources; i++) {
        const char *e = cfg->sources[i].pbx_extension;
        if (e && strlen(e) == len && strncmp(e, ext, len) == 0 &&
            cfg->sources[i].kind == VG_SOURCE_AUDIO)
            return &cfg->sources[i];
    }
    return NULL;
}
