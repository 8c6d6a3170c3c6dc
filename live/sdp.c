/* WHEP offers: a bounded parser of the SDP a browser sends (RFC 8866 lines,
 * rtpmap and fmtp attributes per m-section) and the choice of the payload
 * type to answer with for a source's codec. Pure code, no GStreamer, so the
 * unit suite (and a hostile offer) can reach every branch. */
#include "live/live_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/errors.h"

static void say(char *why, size_t size, const char *text)
{
    if (why && size)
        snprintf(why, size, "%s", text);
}

/* A non-negative decimal of at most 9 digits spanning [p, end); -1 if not. */
static long number(const char *p, const char *end)
{
    long v = 0;
    if (p == end || end - p > 9)
        return -1;
    for (; p < end; p++) {
        if (!isdigit((unsigned char)*p))
            return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

static live_sdp_fmt_t *fmt_of(live_sdp_media_t *m, long pt)
{
    for (int i = 0; i < m->n_fmt; i++) {
        if (m->fmt[i].pt == pt)
            return &m->fmt[i];
    }
    return NULL;
}

/* "m=video 9 UDP/TLS/RTP/SAVPF 96 97 98" */
static int parse_m(const char *l, const char *end, live_sdp_media_t *m)
{
    const char *p = l + 2, *sp = memchr(p, ' ', (size_t)(end - p));
    if (!sp)
        return VG_EINVAL;
    size_t kl = (size_t)(sp - p);
    snprintf(m->kind, sizeof(m->kind), "%.*s", kl < sizeof(m->kind) ? (int)kl : 0, p);
    if (!m->kind[0])
        snprintf(m->kind, sizeof(m->kind), "other");
    p = sp + 1;
    if (!(sp = memchr(p, ' ', (size_t)(end - p))))
        return VG_EINVAL;
    const char *slash = memchr(p, '/', (size_t)(sp - p)); /* "port/count" */
    m->port = (int)number(p, slash ? slash : sp);
    if (m->port < 0 || m->port > 65535)
        return VG_EINVAL;
    p = sp + 1;
    if (!(sp = memchr(p, ' ', (size_t)(end - p))))
        return VG_EINVAL;
    m->rtp = (size_t)(sp - p) >= 3 && memmem(p, (size_t)(sp - p), "RTP", 3) != NULL;
    p = sp + 1;
    while (p < end) {
        sp = memchr(p, ' ', (size_t)(end - p));
        const char *e = sp ? sp : end;
        long pt = number(p, e);
        if (m->rtp && (pt < 0 || pt > 127))
            return VG_EINVAL;
        if (m->rtp && m->n_fmt < LIVE_SDP_MAX_FMTS && !fmt_of(m, pt)) {
            live_sdp_fmt_t *f = &m->fmt[m->n_fmt++];
            memset(f, 0, sizeof(*f));
            f->pt = (int)pt;
            /* Static types may come without an rtpmap (RFC 3551). */
            if (pt == 0 || pt == 8) {
                snprintf(f->name, sizeof(f->name), "%s", pt ? "PCMA" : "PCMU");
                f->clock = 8000;
                f->channels = 1;
            }
        }
        p = sp ? sp + 1 : end;
    }
    return VG_OK;
}

/* "a=rtpmap:96 H264/90000" or "a=rtpmap:111 opus/48000/2" */
static void parse_rtpmap(const char *v, const char *end, live_sdp_media_t *m)
{
    const char *sp = memchr(v, ' ', (size_t)(end - v));
    live_sdp_fmt_t *f = sp ? fmt_of(m, number(v, sp)) : NULL;
    if (!f)
        return; /* a type the m-line does not list: ignored */
    const char *name = sp + 1, *s1 = memchr(name, '/', (size_t)(end - name));
    if (!s1 || s1 == name || (size_t)(s1 - name) >= sizeof(f->name))
        return;
    snprintf(f->name, sizeof(f->name), "%.*s", (int)(s1 - name), name);
    const char *s2 = memchr(s1 + 1, '/', (size_t)(end - s1 - 1));
    long clock = number(s1 + 1, s2 ? s2 : end);
    long ch = s2 ? number(s2 + 1, end) : 1;
    f->clock = clock > 0 ? (int)clock : 0;
    f->channels = ch > 0 && ch < 256 ? (int)ch : 0;
}

static void parse_fmtp(const char *v, const char *end, live_sdp_media_t *m)
{
    const char *sp = memchr(v, ' ', (size_t)(end - v));
    live_sdp_fmt_t *f = sp ? fmt_of(m, number(v, sp)) : NULL;
    if (!f)
        return;
    size_t n = (size_t)(end - sp - 1);
    if (n >= sizeof(f->fmtp))
        n = sizeof(f->fmtp) - 1; /* longer parameter lists are cut, never overrun */
    memcpy(f->fmtp, sp + 1, n);
    f->fmtp[n] = '\0';
}

static void parse_a(const char *l, const char *end, live_sdp_offer_t *o, live_sdp_media_t *m)
{
    const char *a = l + 2;
    size_t n = (size_t)(end - a);
#define ATTR(s) (n >= sizeof(s) - 1 && memcmp(a, s, sizeof(s) - 1) == 0)
    if (ATTR("fingerprint:"))
        o->has_fingerprint = 1;
    else if (ATTR("ice-ufrag:"))
        o->has_ice = 1;
    if (!m)
        return;
    if (ATTR("rtpmap:"))
        parse_rtpmap(a + 7, end, m);
    else if (ATTR("fmtp:"))
        parse_fmtp(a + 5, end, m);
    else if (ATTR("mid:"))
        snprintf(m->mid, sizeof(m->mid), "%.*s",
                 n - 4 < sizeof(m->mid) ? (int)(n - 4) : (int)sizeof(m->mid) - 1, a + 4);
    else if (n == 8 && memcmp(a, "recvonly", 8) == 0)
        m->dir = LIVE_DIR_RECVONLY;
    else if (n == 8 && memcmp(a, "sendrecv", 8) == 0)
        m->dir = LIVE_DIR_SENDRECV;
    else if (n == 8 && memcmp(a, "sendonly", 8) == 0)
        m->dir = LIVE_DIR_SENDONLY;
    else if (n == 8 && memcmp(a, "inactive", 8) == 0)
        m->dir = LIVE_DIR_INACTIVE;
#undef ATTR
}

int live_sdp_parse(const char *text, size_t len, live_sdp_offer_t *o, char *why, size_t why_size)
{
    memset(o, 0, sizeof(*o));
    if (!text || len == 0) {
        say(why, why_size, "the offer is empty");
        return VG_EINVAL;
    }
    if (len > LIVE_SDP_MAX) {
        say(why, why_size, "the offer is larger than 64 KiB");
        return VG_EINVAL;
    }
    /* SDP is text: a byte outside printable ASCII, UTF-8, tab and line ends
     * means this is not an offer (and is never echoed back). */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 && c != '\r' && c != '\n' && c != '\t') {
            say(why, why_size, "the offer has control characters");
            return VG_EINVAL;
        }
    }
    if (len < 4 || memcmp(text, "v=0", 3) != 0) {
        say(why, why_size, "the offer does not start with v=0");
        return VG_EINVAL;
    }
    live_sdp_media_t *m = NULL;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (le > p && le[-1] == '\r')
            le--;
        if (le - p >= 2 && p[1] == '=') {
            if (p[0] == 'm') {
                if (o->n_media == LIVE_SDP_MAX_MEDIA) {
                    say(why, why_size, "the offer has too many m-lines");
                    return VG_EINVAL;
                }
                m = &o->media[o->n_media++];
                m->dir = LIVE_DIR_SENDRECV;
                if (parse_m(p, le, m) != VG_OK) {
                    say(why, why_size, "the offer has a malformed m-line");
                    return VG_EINVAL;
                }
            } else if (p[0] == 'a') {
                parse_a(p, le, o, m);
            }
        } else if (le > p) {
            say(why, why_size, "the offer has a line that is not type=value");
            return VG_EINVAL;
        }
        p = nl ? nl + 1 : end;
    }
    if (o->n_media == 0) {
        say(why, why_size, "the offer has no m-line");
        return VG_EINVAL;
    }
    if (!o->has_fingerprint || !o->has_ice) {
        say(why, why_size, "the offer lacks a DTLS fingerprint or ICE credentials");
        return VG_EINVAL;
    }
    return VG_OK;
}

/* The value of key in "a=1;b=2" fmtp text into out, or "" (0). */
int live_sdp_fmtp_get(const char *fmtp, const char *key, char *out, size_t size)
{
    size_t kl = strlen(key);
    const char *p = fmtp;
    out[0] = '\0';
    while (p && *p) {
        p += strspn(p, " ;");
        size_t n = strcspn(p, ";");
        if (n > kl && strncasecmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t v = n - kl - 1;
            if (v >= size)
                return 0;
            memcpy(out, p + kl + 1, v);
            out[v] = '\0';
            return 1;
        }
        p += n;
    }
    return 0;
}

static int hex6(const char *s, unsigned *v)
{
    if (strlen(s) != 6)
        return 0;
    for (int i = 0; i < 6; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return 0;
    }
    *v = (unsigned)strtoul(s, NULL, 16);
    return 1;
}

/* How well an offered H.264 profile-level-id suits a stream of profile
 * profile_idc: the stream's own profile best; then profiles whose decoders
 * also take it in practice (browsers decode by the SPS, not the label),
 * higher first. 0: unusable. */
static int h264_score(unsigned plid, int profile_idc, int constrained)
{
    unsigned idc = plid >> 16, flags = (plid >> 8) & 0xff;
    int cb = idc == 66 && (flags & 0x40);
    if ((int)idc == profile_idc && (idc != 66 || cb == constrained || !constrained))
        return 100 + (cb == constrained);
    switch (idc) {
    case 100: return 40;
    case 77: return 30;
    case 66: return cb ? 20 : 10;
    default: return 0; /* High 4:4:4 and others: never as a label for ours */
    }
}

int live_sdp_pick(const live_sdp_media_t *m, live_codec_t c, int profile_idc, int constrained,
                  char *plid_out, size_t plid_size)
{
    int best = -1, best_score = 0;
    if (plid_out && plid_size)
        plid_out[0] = '\0';
    if (!m->rtp || m->port == 0 || m->dir == LIVE_DIR_SENDONLY || m->dir == LIVE_DIR_INACTIVE)
        return -1;
    for (int i = 0; i < m->n_fmt; i++) {
        const live_sdp_fmt_t *f = &m->fmt[i];
        int score = 0;
        char v[32];
        unsigned plid = 0;
        switch (c) {
        case LIVE_C_H264:
            if (strcasecmp(f->name, "H264") != 0 || f->clock != 90000)
                break;
            /* Single NAL mode (0, the default) cannot carry FU-A fragments. */
            if (!live_sdp_fmtp_get(f->fmtp, "packetization-mode", v, sizeof(v)) ||
                strcmp(v, "1") != 0)
                break;
            if (!live_sdp_fmtp_get(f->fmtp, "profile-level-id", v, sizeof(v)) ||
                !hex6(v, &plid))
                break;
            score = h264_score(plid, profile_idc, constrained);
            break;
        case LIVE_C_PCMA:
            score = strcasecmp(f->name, "PCMA") == 0 && f->clock == 8000 ? 1 : 0;
            break;
        case LIVE_C_PCMU:
            score = strcasecmp(f->name, "PCMU") == 0 && f->clock == 8000 ? 1 : 0;
            break;
        case LIVE_C_OPUS:
            score = strcasecmp(f->name, "opus") == 0 && f->clock == 48000 ? 1 : 0;
            break;
        default:
            break;
        }
        if (score > best_score) {
            best_score = score;
            best = f->pt;
            if (plid_out && c == LIVE_C_H264)
                live_sdp_fmtp_get(f->fmtp, "profile-level-id", plid_out, plid_size);
        }
    }
    return best;
}

live_codec_t live_codec_of(enum AVCodecID id)
{
    switch (id) {
    case AV_CODEC_ID_H264: return LIVE_C_H264;
    case AV_CODEC_ID_HEVC: return LIVE_C_H265;
    case AV_CODEC_ID_PCM_ALAW: return LIVE_C_PCMA;
    case AV_CODEC_ID_PCM_MULAW: return LIVE_C_PCMU;
    case AV_CODEC_ID_OPUS: return LIVE_C_OPUS;
    case AV_CODEC_ID_AAC: return LIVE_C_AAC;
    default: return LIVE_C_NONE;
    }
}

const char *live_codec_name(live_codec_t c)
{
    switch (c) {
    case LIVE_C_H264: return "H264";
    case LIVE_C_H265: return "H265";
    case LIVE_C_PCMA: return "PCMA";
    case LIVE_C_PCMU: return "PCMU";
    case LIVE_C_OPUS: return "opus";
    case LIVE_C_AAC: return "AAC";
    default: return "none";
    }
}

/* ---- H.264 bitstream facts (pure) ---- */

static size_t start_code(const uint8_t *p, size_t left)
{
    if (left >= 3 && p[0] == 0 && p[1] == 0 && p[2] == 1)
        return 3;
    if (left >= 4 && p[0] == 0 && p[1] == 0 && p[2] == 0 && p[3] == 1)
        return 4;
    return 0;
}

/* Offset of the NAL unit after the next start code at or after from, or n. */
static size_t next_nal(const uint8_t *d, size_t n, size_t from)
{
    for (size_t i = from; i + 3 <= n; i++) {
        size_t sc = start_code(d + i, n - i);
        if (sc)
            return i + sc;
    }
    return n;
}

int live_h264_sps_info(const uint8_t *d, size_t n, int *profile, int *constraints, int *level)
{
    if (!d || n < 4)
        return VG_ENOTFOUND;
    if (d[0] == 1) { /* avcC: version, profile, compat, level */
        *profile = d[1];
        *constraints = d[2];
        *level = d[3];
        return VG_OK;
    }
    for (size_t at = next_nal(d, n, 0); at + 3 < n; at = next_nal(d, n, at)) {
        if ((d[at] & 0x1f) == 7) {
            *profile = d[at + 1];
            *constraints = d[at + 2];
            *level = d[at + 3];
            return VG_OK;
        }
    }
    return VG_ENOTFOUND;
}

int live_au_has_sps(const uint8_t *d, size_t n)
{
    for (size_t at = next_nal(d, n, 0); at < n; at = next_nal(d, n, at)) {
        int type = d[at] & 0x1f;
        if (type == 7)
            return 1;
        if (type >= 1 && type <= 5)
            return 0; /* a slice: parameter sets come before it or not at all */
    }
    return 0;
}
