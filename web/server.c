/* The libmicrohttpd daemon: listening socket (IPv4 or IPv6, optional TLS),
 * connection limits and timeouts, the per-request context (created from the
 * raw request target, freed in NOTIFY_COMPLETED), body size limits, routing,
 * authentication, and the rule that a request's audit rows are committed
 * before its answer is sent. */
#include "web/web_private.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define MAX_CONNECTIONS 512
#define CONNECTION_TIMEOUT_S 30
/* Per connection: request line, headers, read buffer. Kept small because
 * libmicrohttpd clears the pool it used between requests, and at 64 KiB that
 * memset was a twentieth of the busiest route's CPU. */
#define CONNECTION_MEMORY (16 * 1024)
#define MAX_PEM (64 * 1024)
/* style-src allows one inline stylesheet by its hash: the one wavesurfer.js
 * (web/ui/vendor) puts in its waveform's shadow root, at the height the call
 * page asks for (96 px, web/ui/js/pages/call.js). Nothing else inline is
 * allowed; a wavesurfer upgrade that changes that text shows as a CSP
 * violation in the browser suite, whose message names the new hash. */
#define WEB_CSP_WAVESURFER "'sha256-Y/8t1dAKa3ay+RZEiEFEDr8dFiQhpaFvYXXUfT3p6ZU='"
#define WEB_CSP                                                                            \
    "default-src 'self'; script-src 'self'; style-src 'self' " WEB_CSP_WAVESURFER "; "     \
    "img-src 'self' data: blob:; "                                                         \
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "    \
    "form-action 'self'; frame-ancestors 'none'"

/* ---- replies ---- */

enum { BODY_NONE, BODY_FILE, BODY_READER, BODY_STREAM };

/* A long answer (a WAV or clip built on demand, a large file) keeps going
 * for minutes; access lost meanwhile must end it within 10 s (README
 * "Security"). Its reader callback reads the index's accounts generation at
 * most every GUARD_EVERY_US, on a pooled connection that waits at most
 * GUARD_BUSY_MS for a lock, and re-checks the grant when the generation
 * moved; an index that cannot answer leaves the answer running until the
 * next try. Files up to SENDFILE_MAX keep sendfile(2) (no callback per
 * block, so nothing is re-checked): one HLS fragment or segment, one
 * snapshot, whose bytes were all granted when the request was; larger ones
 * (export bundles) are read through the guarded callback. */
#define GUARD_EVERY_US (1000 * 1000LL)
#define GUARD_BUSY_MS 50
#define SENDFILE_MAX (16u << 20)
/* The callback runs when the socket has room; the kernel's autotuned send
 * buffer (megabytes) would let a slow client read for minutes without one.
 * A guarded answer's socket buffer is bounded (the kernel doubles it): a
 * client reading at real-time audio pace (16 KB/s) reaches a callback
 * every few seconds; on a LAN (1 ms) this is still > 100 MB/s, at 50 ms
 * round trip ~2.5 MB/s, five times a 1080p stream. */
#define GUARD_SNDBUF (64 * 1024)
/* A guarded answer that a client takes fast (a clip or bundle downloaded
 * on a LAN) would cost a callback (a pread, a copy, a send and a poll) per
 * GUARD_SNDBUF: most of the time of a 1 h clip. So its block grows: it
 * starts at GUARD_SNDBUF and doubles, with the send buffer, each time the
 * client took a whole block in under GUARD_FAST_US, up to GUARD_BLOCK_MAX;
 * it halves when one took longer than GUARD_SLOW_US. A client keeps being
 * checked at least every ~GUARD_SLOW_US at the pace it was reading; one
 * that slows down abruptly is checked once it has taken what it was already
 * handed (at most GUARD_BLOCK_MAX plus the send buffer), as a slow reader
 * is with the smallest block. libmicrohttpd allocates the block size given
 * at creation for the response's life, so at most GUARD_BIG_MAX answers at
 * once get the large one (the others keep GUARD_SNDBUF): the memory they
 * hold together stays bounded. */
#define GUARD_BLOCK_MAX (1024 * 1024)
#define GUARD_BIG_MAX 16
#define GUARD_FAST_US (250 * 1000LL)
#define GUARD_SLOW_US (1000 * 1000LL)
static atomic_int guard_big_answers;

/* A reader handed to libmicrohttpd, which frees it through reader_free. */
typedef struct {
    web_read_fn read;
    void *ctx;
    void (*free_ctx)(void *ctx);
    int fd;                   /* a file read with pread (read NULL), or -1 */
    uint64_t off;
    int conn_fd;              /* the connection's socket (guarded answers), or -1 */
    /* the growing block (reader answers): what one callback hands out now,
     * the largest it may become, and when the last one was asked for */
    size_t block, block_max;
    int64_t last_call;
    const vg_clock_t *clock;
    /* the guard (w NULL: none) */
    struct web *w;
    web_grant_t grant;
    char object[96], actor[96], ip[64], route[96];
    uint64_t len;
    int64_t start_wall, next_check;
    int64_t gen;
    int gen_known;
    web_waker_t *waker;       /* a stream (BODY_STREAM), or NULL */
} reader_t;

/* ---- a stream of unknown length: waits suspended, holding no thread ---- */

struct web_waker {
    pthread_mutex_t lock;
    struct MHD_Connection *conn;
    int suspended;  /* we suspended the connection: the next wake resumes it */
    int pending;    /* a wake came while not suspended: read again first */
};

void web_stream_wake(void *arg)
{
    web_waker_t *k = arg;
    pthread_mutex_lock(&k->lock);
    if (k->suspended) {
        k->suspended = 0;
        MHD_resume_connection(k->conn);
    } else {
        k->pending = 1;
    }
    pthread_mutex_unlock(&k->lock);
}

static void waker_free(web_waker_t *k)
{
    if (!k)
        return;
    pthread_mutex_destroy(&k->lock);
    free(k);
}

/* Nothing to send now: suspend until web_stream_wake (unless one came
 * since the read), returning 0 to libmicrohttpd. */
static ssize_t stream_wait(web_waker_t *k)
{
    pthread_mutex_lock(&k->lock);
    if (k->pending) {
        k->pending = 0; /* bytes arrived meanwhile: libmicrohttpd calls again */
    } else if (k->conn) {
        k->suspended = 1;
        MHD_suspend_connection(k->conn);
    }
    pthread_mutex_unlock(&k->lock);
    return 0;
}

static void body_drop(web_req_t *r)
{
    if (r->body_kind == BODY_FILE && r->body_fd >= 0)
        close(r->body_fd);
    if ((r->body_kind == BODY_READER || r->body_kind == BODY_STREAM) && r->body_free)
        r->body_free(r->body_ctx);
    if (r->body_kind == BODY_STREAM)
        waker_free(r->waker);
    r->waker = NULL;
    r->body_kind = BODY_NONE;
    r->body_fd = -1;
    r->body_read = NULL;
    r->body_ctx = NULL;
    r->body_free = NULL;
}

static void payload_drop(web_req_t *r)
{
    body_drop(r);
    if (r->payload_release)
        r->payload_release(r->payload_ctx);
    else
        free(r->payload);
    r->payload = NULL;
    r->payload_release = NULL;
    r->payload_ctx = NULL;
}

void web_reply_text(web_req_t *r, int status, const char *content_type, char *text, size_t len)
{
    payload_drop(r);
    r->status = status;
    r->content_type = content_type;
    r->payload = text;
    r->payload_len = len;
}

void web_reply_shared(web_req_t *r, int status, const char *content_type, const char *data,
                      size_t len, void (*release)(void *ctx), void *ctx)
{
    payload_drop(r);
    r->status = status;
    r->content_type = content_type;
    r->payload = (char *)data; /* never written: released through release(ctx) */
    r->payload_len = len;
    r->payload_release = release;
    r->payload_ctx = ctx;
}

void web_reply_file(web_req_t *r, int status, const char *content_type, int fd, uint64_t offset,
                    uint64_t len)
{
    payload_drop(r);
    r->status = status;
    r->content_type = content_type;
    r->body_kind = BODY_FILE;
    r->body_fd = fd;
    r->body_off = offset;
    r->body_size = len;
}

void web_reply_reader(web_req_t *r, int status, const char *content_type, uint64_t len,
                      web_read_fn read, void *ctx, void (*free_ctx)(void *ctx))
{
    payload_drop(r);
    r->status = status;
    r->content_type = content_type;
    r->body_kind = BODY_READER;
    r->body_size = len;
    r->body_read = read;
    r->body_ctx = ctx;
    r->body_free = free_ctx;
}

web_waker_t *web_reply_stream(web_req_t *r, int status, const char *content_type,
                              web_read_fn read, void *ctx, void (*free_ctx)(void *ctx))
{
    payload_drop(r);
    r->status = status;
    r->content_type = content_type;
    r->body_kind = BODY_STREAM;
    r->body_read = read;
    r->body_ctx = ctx;
    r->body_free = free_ctx;
    r->waker = vg_calloc(1, sizeof(*r->waker));
    pthread_mutex_init(&r->waker->lock, NULL);
    r->waker->conn = r->conn;
    return r->waker;
}

/* ---- the guard of a long answer ---- */

static idx_t *pool_get(struct web *w);
static void pool_put(struct web *w, idx_t *idx);

/* The row of an answer cut because its access ended, like the relay's
 * relay.stop rows. Queued for the group commit without waiting: the
 * connection is cut at once, and the writer commits the row after. */
static void guard_end_row(reader_t *rd, uint64_t pos)
{
    const vg_clock_t *clock = rd->w->cfg.clock;
    int64_t now = vg_clock_wall(clock);
    idx_audit_t row = {0}, *a = &row;
    char detail[256];
    snprintf(detail, sizeof(detail), "route=%s bytes=%" PRIu64 "/%" PRIu64
             " duration_s=%.1f reason=revoked", rd->route, pos, rd->len,
             (double)(now - rd->start_wall) / 1e6);
    a->ts_us = now;
    a->from_us = rd->start_wall;
    a->to_us = now;
    vg_utf8_copy(a->actor, sizeof(a->actor), rd->actor);
    vg_utf8_copy(a->ip, sizeof(a->ip), rd->ip);
    vg_utf8_copy(a->action, sizeof(a->action), "http.stop");
    vg_utf8_copy(a->object, sizeof(a->object), rd->object);
    vg_utf8_copy(a->result, sizeof(a->result), "ok");
    vg_utf8_copy(a->detail, sizeof(a->detail), detail);
    vg_notice("web: %s may no longer read %s: cutting its answer to %s after %" PRIu64
              " of %" PRIu64 " bytes", rd->actor, rd->object, rd->ip, pos, rd->len);
    web_audit_detached(rd->w, a);
}

int web_grant_poll(struct web *w, const web_grant_t *g, int64_t *gen_seen, int *gen_known)
{
    idx_t *idx = pool_get(w);
    if (!idx)
        return 1; /* retried at the next look */
    idx_busy_timeout(idx, GUARD_BUSY_MS);
    int64_t gen = 0;
    int rc = idx_accounts_generation(idx, &gen);
    if (rc == VG_OK && (!*gen_known || gen != *gen_seen)) {
        rc = web_grant_check(w, idx, g);
        if (rc == VG_OK) {
            *gen_seen = gen;
            *gen_known = 1;
        }
    }
    idx_busy_timeout(idx, 0);
    pool_put(w, idx);
    return rc != VG_ENOTFOUND;
}

/* 1 while the answer may go on. The first look re-checks whatever the
 * generation: access may have been lost between the request's check and
 * the generation first read here. */
static int guard_allows(reader_t *rd)
{
    int64_t now = vg_clock_mono(rd->w->cfg.clock);
    if (now < rd->next_check)
        return 1;
    rd->next_check = now + GUARD_EVERY_US;
    return web_grant_poll(rd->w, &rd->grant, &rd->gen, &rd->gen_known);
}

static ssize_t stream_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    reader_t *rd = cls;
    long n = rd->read(rd->ctx, pos, buf, max);
    if (n > 0)
        return (ssize_t)n;
    if (n < 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    return stream_wait(rd->waker);
}

/* How much of max this callback hands out: the block grows while the
 * client takes whole blocks fast and shrinks when it slows (GUARD_BLOCK_MAX
 * above); the socket's send buffer follows it. */
static size_t reader_block(reader_t *rd, size_t max)
{
    if (rd->block_max <= GUARD_SNDBUF || !rd->clock)
        return max;
    int64_t now = vg_clock_mono(rd->clock);
    if (rd->last_call) {
        size_t was = rd->block;
        if (now - rd->last_call < GUARD_FAST_US && rd->block < rd->block_max)
            rd->block *= 2;
        else if (now - rd->last_call > GUARD_SLOW_US && rd->block > GUARD_SNDBUF)
            rd->block /= 2;
        if (rd->block != was && rd->conn_fd >= 0) {
            int size = (int)rd->block;
            setsockopt(rd->conn_fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
        }
    }
    rd->last_call = now;
    return rd->block < max ? rd->block : max;
}

static ssize_t reader_cb(void *cls, uint64_t pos, char *buf, size_t max)
{
    reader_t *rd = cls;
    if (rd->w && !guard_allows(rd)) {
        guard_end_row(rd, pos);
        rd->w = NULL; /* once */
        /* Closed with a reset: what the kernel still holds for the client
         * is dropped, not delivered after the cut. */
        struct linger now = {.l_onoff = 1, .l_linger = 0};
        if (rd->conn_fd >= 0)
            setsockopt(rd->conn_fd, SOL_SOCKET, SO_LINGER, &now, sizeof(now));
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    max = reader_block(rd, max);
    long n;
    if (rd->read) {
        n = rd->read(rd->ctx, pos, buf, max);
    } else {
        size_t want = pos < rd->len ? (size_t)(rd->len - pos < max ? rd->len - pos : max) : 0;
        n = want ? (long)pread(rd->fd, buf, want, (off_t)(rd->off + pos)) : -1;
    }
    /* The length was promised: a reader that fails (a file gone, a short
     * file) cuts the connection; the client sees a short body, never a
     * wrong one. */
    return n > 0 ? (ssize_t)n : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void reader_free(void *cls)
{
    reader_t *rd = cls;
    if (rd->free_ctx)
        rd->free_ctx(rd->ctx);
    if (rd->fd >= 0)
        close(rd->fd);
    waker_free(rd->waker);
    if (rd->block_max > GUARD_SNDBUF)
        atomic_fetch_sub(&guard_big_answers, 1);
    sodium_memzero(&rd->grant, sizeof(rd->grant));
    free(rd);
}

/* Arms rd's guard with what r was granted on: its credential, its route's
 * permissions and its sources (a source route's own unless the handler
 * named them). Requests without a principal (public routes) have none. */
static void guard_arm(reader_t *rd, const web_req_t *r)
{
    const web_principal_t *who = &r->who;
    if (!r->route || (who->kind != 'u' && who->kind != 't'))
        return;
    web_grant_t *g = &rd->grant;
    g->kind = who->kind;
    memcpy(g->session_hash, who->session_hash, sizeof(g->session_hash));
    g->token_id = who->token_id;
    g->perms_any = r->route->perms_any;
    const char *source_route = "/api/v1/sources/{}";
    int of_source = strncmp(r->route->pattern, source_route, strlen(source_route)) == 0 &&
                    r->params[0];
    if (r->stream_sources[0])
        snprintf(g->sources, sizeof(g->sources), "%s", r->stream_sources);
    else if (of_source)
        snprintf(g->sources, sizeof(g->sources), "%s", r->params[0]);
    if (r->stream_object[0])
        snprintf(rd->object, sizeof(rd->object), "%s", r->stream_object);
    else if (of_source)
        snprintf(rd->object, sizeof(rd->object), "source:%s", r->params[0]);
    else
        snprintf(rd->object, sizeof(rd->object), "%s", r->raw_uri);
    snprintf(rd->actor, sizeof(rd->actor), "%s", who->actor);
    snprintf(rd->ip, sizeof(rd->ip), "%s", r->ip);
    snprintf(rd->route, sizeof(rd->route), "%s %s", r->route->method, r->route->pattern);
    rd->start_wall = vg_clock_wall(r->w->cfg.clock);
    rd->next_check = vg_clock_mono(r->w->cfg.clock) + GUARD_EVERY_US;
    rd->w = r->w;
    const union MHD_ConnectionInfo *ci =
        r->conn ? MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD) : NULL;
    if (ci) {
        int size = GUARD_SNDBUF;
        rd->conn_fd = ci->connect_fd;
        setsockopt(rd->conn_fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    }
}

/* Debian's libmicrohttpd (0.9.75) sends a file's headers with a send(2) of
 * their own, without MSG_MORE (seen with strace), before sendfile(2): two
 * packets where one would do, and on a busy server each trip through the TCP
 * stack costs more than a system call. Corked, the headers wait for the
 * file's first bytes; the cork comes off when the answer is complete
 * (on_completed). Plain connections only: under TLS the library reads the
 * file itself and corks on its own. */
static void cork(web_req_t *r)
{
    const union MHD_ConnectionInfo *ci =
        r->conn ? MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD) : NULL;
    int on = 1;
    if (ci && setsockopt(ci->connect_fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on)) == 0)
        r->corked_fd = ci->connect_fd;
}

/* The response for a file or reader body; NULL when libmicrohttpd refuses
 * (the body is released either way). */
static struct MHD_Response *body_response(web_req_t *r)
{
    struct MHD_Response *resp = NULL;
    if (r->body_kind == BODY_STREAM) {
        /* Its producer ends it when access is lost (live/ re-checks), so no
         * guard; a small send buffer so a slow client shows as one soon. */
        reader_t *rd = vg_calloc(1, sizeof(*rd));
        rd->fd = rd->conn_fd = -1;
        rd->read = r->body_read;
        rd->ctx = r->body_ctx;
        rd->free_ctx = r->body_free;
        rd->waker = r->waker;
        const union MHD_ConnectionInfo *ci =
            r->conn ? MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD) : NULL;
        if (ci) {
            int size = GUARD_SNDBUF;
            setsockopt(ci->connect_fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
        }
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, stream_cb, rd,
                                                 reader_free);
        if (resp) {
            r->body_free = NULL;
            r->waker = NULL; /* the response's now */
        } else {
            free(rd);
        }
    } else if (r->body_kind == BODY_FILE && r->body_size <= SENDFILE_MAX) {
        /* sendfile(2) on a plain connection: the bytes never pass through us. */
        resp = MHD_create_response_from_fd_at_offset64(r->body_size, r->body_fd,
                                                       r->body_off);
        if (resp)
            r->body_fd = -1; /* the response closes it */
        if (resp && !r->w->tls)
            cork(r);
    } else {
        reader_t *rd = vg_calloc(1, sizeof(*rd));
        rd->fd = -1;
        rd->conn_fd = -1;
        rd->len = r->body_size;
        if (r->body_kind == BODY_FILE) {
            rd->fd = r->body_fd;
            rd->off = r->body_off;
        } else {
            rd->read = r->body_read;
            rd->ctx = r->body_ctx;
            rd->free_ctx = r->body_free;
        }
        guard_arm(rd, r);
        rd->block = rd->block_max = GUARD_SNDBUF;
        rd->clock = r->w ? r->w->cfg.clock : NULL;
        if (r->body_size >= 4 * GUARD_BLOCK_MAX && rd->clock &&
            atomic_fetch_add(&guard_big_answers, 1) < GUARD_BIG_MAX)
            rd->block_max = GUARD_BLOCK_MAX;
        else if (r->body_size >= 4 * GUARD_BLOCK_MAX && rd->clock)
            atomic_fetch_sub(&guard_big_answers, 1);
        resp = MHD_create_response_from_callback(r->body_size, rd->block_max, reader_cb, rd,
                                                 reader_free);
        if (resp) {
            r->body_free = NULL; /* the response frees it */
            r->body_fd = -1;     /* and closes it */
        } else {
            if (rd->block_max > GUARD_SNDBUF)
                atomic_fetch_sub(&guard_big_answers, 1);
            sodium_memzero(&rd->grant, sizeof(rd->grant));
            free(rd);
        }
    }
    body_drop(r);
    return resp;
}

/* What is sent when an answer cannot be serialized: fixed text, so this path
 * cannot fail in turn. */
static const char REPLY_FALLBACK[] =
    "{\"error\":{\"code\":\"internal\",\"message\":\"the answer could not be encoded\"}}";

void web_reply_json(web_req_t *r, int status, json_t *v)
{
    /* v is NULL when json_pack refused a value (text that is not UTF-8 is
     * the usual one); json_dumps fails on such a value built without checks
     * or on out of memory. A client's bytes must never abort the daemon
     * (DESIGN.md invariant 8): a fixed 500 instead. */
    char *text = v ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(v);
    if (!text) {
        vg_err("web: an answer (status %d) could not be encoded as JSON; 500 instead", status);
        r->set_cookie[0] = '\0'; /* a session whose answer is lost is not handed out */
        web_reply_text(r, 500, "application/json", vg_strdup(REPLY_FALLBACK),
                       sizeof(REPLY_FALLBACK) - 1);
        return;
    }
    web_reply_text(r, status, "application/json", text, strlen(text));
}

void web_reply_error(web_req_t *r, int status, const char *code, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* Messages quote what the client sent ("unknown query parameter '%.64s'"):
     * its bytes, or a character the cut above split. */
    vg_utf8_fix(msg, sizeof(msg));
    web_reply_json(r, status, json_pack("{s{ss ss}}", "error", "code", code, "message", msg));
}

json_t *web_json_text(const char *s)
{
    if (!s)
        return json_null();
    size_t len = strlen(s);
    if (vg_utf8_valid(s, len))
        return json_stringn_nocheck(s, len);
    char *fixed = vg_utf8_dup(s);
    json_t *v = json_string_nocheck(fixed);
    free(fixed);
    return v;
}

void web_reply_err(web_req_t *r, const web_error_t *err)
{
    web_reply_error(r, err->status, err->code, "%s", err->message);
}

/* ---- hand-built JSON ---- */

static void buf_reserve(web_buf_t *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    b->cap = (b->len + more + 1) * 2;
    b->p = vg_realloc(b->p, b->cap);
}

void web_buf_printf(web_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        abort(); /* only a bad format string: a programming error */
    if (!b->p || (size_t)n >= b->cap - b->len) {
        buf_reserve(b, (size_t)n);
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

void web_buf_json_str(web_buf_t *b, const char *s)
{
    char *fixed = NULL;
    size_t len = strlen(s);
    if (!vg_utf8_valid(s, len))
        s = fixed = vg_utf8_dup(s); /* never send a browser text that is not UTF-8 */
    buf_reserve(b, strlen(s) * 6 + 2);
    char *o = b->p + b->len;
    *o++ = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            *o++ = '\\';
            *o++ = (char)*c;
        } else if (*c < 0x20) {
            o += sprintf(o, "\\u%04x", *c);
        } else {
            *o++ = (char)*c;
        }
    }
    *o++ = '"';
    *o = '\0';
    b->len = (size_t)(o - b->p);
    free(fixed);
}

void web_buf_lit(web_buf_t *b, const char *text, size_t len)
{
    buf_reserve(b, len);
    memcpy(b->p + b->len, text, len);
    b->len += len;
    b->p[b->len] = '\0';
}

void web_buf_i64(web_buf_t *b, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        tmp[sizeof(tmp) - 1 - n++] = '-';
    web_buf_lit(b, tmp + sizeof(tmp) - n, n);
}

static void put2(char *o, int v)
{
    o[0] = (char)('0' + v / 10);
    o[1] = (char)('0' + v % 10);
}

/* Same text as vg_time_format, without gmtime_r and printf: segment lists
 * print two times per row. Civil date from days since the epoch after
 * Howard Hinnant's days_from_civil inverse. */
void web_buf_json_time(web_buf_t *b, int64_t us)
{
    char text[VG_TIME_TEXT_MAX];
    if (!us) {
        web_buf_lit(b, "null", 4);
        return;
    }
    int64_t secs = us / 1000000, rem = us % 1000000;
    if (rem < 0) {
        rem += 1000000;
        secs -= 1;
    }
    int64_t days = secs / 86400, sod = secs % 86400;
    if (sod < 0) {
        sod += 86400;
        days -= 1;
    }
    int64_t z = days + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int day = (int)(doy - (153 * mp + 2) / 5 + 1);
    int month = (int)(mp < 10 ? mp + 3 : mp - 9);
    int64_t year = yoe + era * 400 + (month <= 2);
    if (year < 0 || year > 9999) {
        vg_time_format(us, text);
        web_buf_printf(b, "\"%s\"", text);
        return;
    }
    char *o = text;
    *o++ = '"';
    put2(o, (int)(year / 100));
    put2(o + 2, (int)(year % 100));
    o[4] = '-';
    put2(o + 5, month);
    o[7] = '-';
    put2(o + 8, day);
    o[10] = 'T';
    put2(o + 11, (int)(sod / 3600));
    o[13] = ':';
    put2(o + 14, (int)(sod / 60 % 60));
    o[16] = ':';
    put2(o + 17, (int)(sod % 60));
    o[19] = '.';
    o[20] = (char)('0' + rem / 100000);
    put2(o + 21, (int)(rem / 1000 % 100));
    o[23] = 'Z';
    o[24] = '"';
    web_buf_lit(b, text, 26);
}

/* ---- audit ---- */

void web_audit_row(web_req_t *r, idx_audit_t *a, const char *actor, const char *action,
                   const char *object, int64_t from_us, int64_t to_us, const char *result,
                   const char *detail)
{
    memset(a, 0, sizeof(*a));
    a->ts_us = r->now_us;
    /* Rows carry request text (the raw target of a denied request, a
     * case number) and become JSON in GET /audit: stored as valid UTF-8,
     * never cut inside a character. */
    vg_utf8_copy(a->actor, sizeof(a->actor),
                 actor ? actor : r->who.actor[0] ? r->who.actor : "anonymous");
    vg_utf8_copy(a->ip, sizeof(a->ip), r->ip);
    vg_utf8_copy(a->action, sizeof(a->action), action);
    vg_utf8_copy(a->object, sizeof(a->object), object ? object : "");
    a->from_us = from_us;
    a->to_us = to_us;
    vg_utf8_copy(a->result, sizeof(a->result), result);
    if (r->access_reason[0]) {
        /* The reason first: a long detail must not push it out of the row. */
        char both[sizeof(a->detail)];
        snprintf(both, sizeof(both), "reason=%s%s%s", r->access_reason,
                 detail && *detail ? "; " : "", detail ? detail : "");
        vg_utf8_copy(a->detail, sizeof(a->detail), both);
    } else {
        vg_utf8_copy(a->detail, sizeof(a->detail), detail ? detail : "");
    }
}

int web_access_reason(web_req_t *r)
{
    const char *q = web_query_get(&r->target, "reason");
    const char *h = web_req_header(r, "X-Access-Reason");
    const char *v = q && *q ? q : h;
    if (!v || !*v) {
        if (r->cfg->http.require_access_reason) {
            web_reply_error(r, 400, "reason_required",
                            "this server requires a reason to open a recording or a call: add "
                            "reason=... to the query or an X-Access-Reason header");
            return 0;
        }
        return 1;
    }
    size_t len = strlen(v);
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
            len = SIZE_MAX;
    }
    if (len > 150) {
        web_reply_error(r, 400, "invalid_reason",
                        "the reason must be up to 150 bytes without control characters");
        return 0;
    }
    vg_utf8_copy(r->access_reason, sizeof(r->access_reason), v);
    return 1;
}

void web_audit_as(web_req_t *r, const char *actor, const char *action, const char *object,
                  int64_t from_us, int64_t to_us, const char *result, const char *detail)
{
    if (r->n_audit == WEB_MAX_AUDIT) {
        vg_err("web: more than %d audit rows for one request", WEB_MAX_AUDIT);
        abort(); /* a programming error: a handler must not do this */
    }
    web_audit_row(r, &r->audit[r->n_audit++], actor, action, object, from_us, to_us, result,
                  detail);
}

void web_audit(web_req_t *r, const char *action, const char *object, int64_t from_us,
               int64_t to_us, const char *result, const char *detail)
{
    web_audit_as(r, NULL, action, object, from_us, to_us, result, detail);
}

int web_change(web_req_t *r, idx_change_fn change, void *arg, idx_audit_t *row)
{
    int rc = idx_audited_change(r->idx, change, arg, row, 1);
    if (rc == VG_EAUDIT) {
        vg_err("web: %s by %s not made: its audit row cannot be written", row->action,
               row->actor);
        r->set_cookie[0] = '\0'; /* a session that was not recorded does not exist */
        web_reply_error(r, 500, "audit_failed",
                        "the change could not be recorded, so it was not made; try again");
    }
    return rc;
}

void web_change_queued(web_req_t *r, idx_change_fn change, void *arg,
                       void (*change_free)(void *arg), const idx_audit_t *row,
                       void (*done)(web_req_t *r, int rc))
{
    if (r->change) {
        vg_err("web: two queued changes for one request");
        abort(); /* a programming error: a handler must not do this */
    }
    r->change = change;
    r->change_arg = arg;
    r->change_free = change_free;
    r->change_row = *row;
    r->change_done = done;
}

/* The request's rows, and its queued change if any, for the group commit. */
static void fill_ticket(web_req_t *r, void (*done)(void *arg, int rc), void *arg)
{
    r->ticket = (web_ticket_t){.rows = r->audit, .n = r->n_audit, .done = done, .arg = arg};
    if (r->change) {
        r->ticket.change = r->change;
        r->ticket.change_arg = r->change_arg;
        r->ticket.change_rows = &r->change_row;
        r->ticket.n_change = 1;
    }
}

/* The queued change committed (or not): its continuation answers. */
static void change_finish(web_req_t *r, int rc)
{
    if (rc == VG_EAUDIT) {
        vg_err("web: %s by %s not made: its audit row cannot be written", r->change_row.action,
               r->change_row.actor);
        r->set_cookie[0] = '\0';
        web_reply_error(r, 500, "audit_failed",
                        "the change could not be recorded, so it was not made; try again");
    } else {
        r->change_done(r, rc);
    }
    if (!r->status)
        web_reply_error(r, 500, "internal", "no answer");
}

/* ---- request helpers ---- */

const char *web_req_header(const web_req_t *r, const char *name)
{
    if (r->conn)
        return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
    for (size_t i = 0; i < r->n_hdrs; i++) {
        if (strcasecmp(r->hdrs[i].name, name) == 0)
            return r->hdrs[i].value;
    }
    return NULL;
}

const char *web_req_cookie(web_req_t *r, const char *name)
{
    if (r->conn)
        return MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, name);
    /* "a=1; b=2" as MHD splits it; a value too long to keep is answered
     * as an empty one, which no session matches, never cut to one that might. */
    const char *p = web_req_header(r, "Cookie");
    size_t n = strlen(name);
    while (p && *p) {
        p += strspn(p, " ;");
        size_t k = strcspn(p, ";");
        if (k > n && strncmp(p, name, n) == 0 && p[n] == '=') {
            size_t v = k - n - 1;
            if (v >= sizeof(r->cookie))
                v = 0;
            memcpy(r->cookie, p + n + 1, v);
            r->cookie[v] = '\0';
            return r->cookie;
        }
        p += k;
    }
    return NULL;
}

static int json_content_type(const web_req_t *r)
{
    const char *ct = web_req_header(r, "Content-Type");
    return !ct || strncmp(ct, "application/json", 16) == 0;
}

json_t *web_req_body(web_req_t *r, const web_field_t *fields)
{
    web_error_t err;
    json_t *v = NULL;
    if (!json_content_type(r)) {
        web_reply_error(r, 415, "unsupported_media_type", "send the body as application/json");
        return NULL;
    }
    if (web_body_parse(r->body, r->body_len, fields, &v, &err) != VG_OK) {
        web_reply_err(r, &err);
        return NULL;
    }
    return v;
}

int web_req_range(web_req_t *r, int64_t def_from, int64_t def_to, int64_t *from, int64_t *to)
{
    const char *f = web_query_get(&r->target, "from");
    const char *t = web_query_get(&r->target, "to");
    *from = def_from;
    *to = def_to;
    if ((f && web_time_text(f, from) != VG_OK) || (t && web_time_text(t, to) != VG_OK)) {
        web_reply_error(r, 400, "invalid_time",
                        "from and to take RFC 3339 (2026-11-27T10:00:00Z) or unix seconds");
        return VG_EINVAL;
    }
    if (*from >= *to) {
        web_reply_error(r, 400, "invalid_range", "from must be before to");
        return VG_EINVAL;
    }
    return VG_OK;
}

json_t *web_time_json(int64_t us)
{
    char text[VG_TIME_TEXT_MAX];
    if (!us)
        return json_null();
    vg_time_format(us, text);
    return json_string(text);
}

/* ---- index connection pool ---- */

static idx_t *pool_get(struct web *w)
{
    idx_t *idx = NULL;
    pthread_mutex_lock(&w->pool_lock);
    if (w->n_pool > 0)
        idx = w->pool[--w->n_pool];
    pthread_mutex_unlock(&w->pool_lock);
    if (!idx && idx_open(w->db_path, 0, &idx) != VG_OK)
        return NULL;
    return idx;
}

static void pool_put(struct web *w, idx_t *idx)
{
    if (!idx)
        return;
    pthread_mutex_lock(&w->pool_lock);
    if (w->n_pool == w->cap_pool) {
        w->cap_pool = w->cap_pool ? w->cap_pool * 2 : 16;
        w->pool = vg_realloc(w->pool, w->cap_pool * sizeof(*w->pool));
    }
    w->pool[w->n_pool++] = idx;
    pthread_mutex_unlock(&w->pool_lock);
}

/* ---- the request ---- */

/* The last address X-Forwarded-For names that is not itself a trusted
 * proxy: each proxy appends the address it got the request from, so what
 * a client wrote at the front of the header proves nothing. */
static void forwarded_ip(web_req_t *r, const vg_config_t *cfg)
{
    const char *xff = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "X-Forwarded-For");
    if (!xff || strlen(xff) > 1024)
        return;
    char list[1025];
    snprintf(list, sizeof(list), "%s", xff);
    for (;;) {
        char *comma = strrchr(list, ',');
        char *item = comma ? comma + 1 : list;
        item += strspn(item, " \t");
        item[strcspn(item, " \t")] = '\0';
        unsigned char raw[16];
        if (inet_pton(AF_INET, item, raw) != 1 && inet_pton(AF_INET6, item, raw) != 1)
            return; /* not an address: keep the last one believed */
        snprintf(r->ip, sizeof(r->ip), "%s", item);
        if (!comma || !vg_config_proxy_trusted(cfg, item))
            return;
        *comma = '\0';
    }
}

/* The peer's address; behind a trusted proxy (README "[server]
 * trusted_proxies"), the client's from X-Forwarded-For. Without the
 * setting the header is ignored: anyone can send it. */
static void client_ip(web_req_t *r, const vg_config_t *cfg)
{
    if (!r->conn) { /* web_dispatch: the caller gave the peer's address */
        if (vg_config_proxy_trusted(cfg, r->ip))
            forwarded_ip(r, cfg);
        return;
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(r->ip, sizeof(r->ip), "?");
    if (!ci || !ci->client_addr)
        return;
    socklen_t len = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                           : sizeof(struct sockaddr_in);
    getnameinfo(ci->client_addr, len, r->ip, sizeof(r->ip), NULL, 0, NI_NUMERICHOST);
    if (vg_config_proxy_trusted(cfg, r->ip))
        forwarded_ip(r, cfg);
}

/* Called by MHD with the raw request target before it decodes anything:
 * the context is born here so routing sees the bytes as sent. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    web_req_t *r = vg_calloc(1, sizeof(*r));
    r->w = cls;
    r->conn = conn;
    r->raw_uri = vg_strdup(uri ? uri : "");
    r->status = 0;
    r->corked_fd = -1;
    return r;
}

void web_csv_release(web_req_t *r)
{
    if (r->csv_slot)
        __atomic_store_n(&r->w->csv_busy, 0, __ATOMIC_RELEASE);
    r->csv_slot = 0;
}

static void req_free(web_req_t *r)
{
    web_import_free(r->import); /* before the slot: one import at a time */
    web_csv_release(r);
    web_target_free(&r->target);
    free(r->raw_uri);
    free(r->body);
    if (r->change_free)
        r->change_free(r->change_arg);
    if (r->defer_free)
        r->defer_free(r->defer_arg);
    payload_drop(r);
    free(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    web_req_t *r = *con_cls;
    if (!r)
        return;
    if (r->corked_fd >= 0) {
        int off = 0;
        setsockopt(r->corked_fd, IPPROTO_TCP, TCP_CORK, &off, sizeof(off));
    }
    req_free(r);
    *con_cls = NULL;
}

static int route_and_auth(web_req_t *r, const web_route_t **route)
{
    web_error_t err;
    int known = 0;
    if (web_target_parse(r->raw_uri, strlen(r->raw_uri), &r->target, &err) != VG_OK) {
        web_reply_err(r, &err);
        return VG_EINVAL;
    }
    *route = web_route_find(r->method, &r->target, &known, r->allow, sizeof(r->allow), r->params);
    if (!*route && !known && web_ui_serve(r))
        return VG_EEXIST; /* answered with the UI */
    if (!*route) {
        if (known)
            web_reply_error(r, 405, "method_not_allowed", "use %s", r->allow);
        else
            web_reply_error(r, 404, "not_found", "no such route");
        if (!known)
            r->allow[0] = '\0';
        return VG_EINVAL;
    }
    r->allow[0] = '\0';
    if (web_route_check_query(*route, &r->target, &err) != VG_OK) {
        web_reply_err(r, &err);
        return VG_EINVAL;
    }
    if ((*route)->flags & WEB_ROUTE_PUBLIC)
        return VG_OK;
    return web_auth_request(r, *route);
}

enum { AUDIT_NONE, AUDIT_WAITING, AUDIT_DONE };

/* The writer thread committed this request's rows: wake the connection. */
static void audit_committed(void *arg, int rc)
{
    web_req_t *r = arg;
    struct web *w = r->w; /* r may be gone once the connection is resumed */
    r->audit_rc = rc;
    r->audit_state = AUDIT_DONE; /* published by MHD_resume_connection's lock */
    MHD_resume_connection(r->conn);
    /* Counted down only now: web_stop must not stop MHD under a resume. */
    __atomic_sub_fetch(&w->suspended, 1, __ATOMIC_SEQ_CST);
}

/* Hands the rows to the group commit with the connection suspended; the
 * answer leaves when on_request runs again after the resume. */
static void start_audit(web_req_t *r)
{
    r->audit_state = AUDIT_WAITING;
    __atomic_add_fetch(&r->w->suspended, 1, __ATOMIC_SEQ_CST);
    /* Suspend first: the commit may finish before this handler returns. */
    MHD_suspend_connection(r->conn);
    fill_ticket(r, audit_committed, r);
    web_auditor_submit(r->w->auditor, &r->ticket);
}

/* ---- work deferred off MHD's threads (web_defer) ---- */

enum { DEFER_NONE, DEFER_QUEUED, DEFER_RUNNING, DEFER_DONE };

void web_defer(web_req_t *r, void (*work)(void *arg), void (*finish)(web_req_t *r, void *arg),
               void *arg, void (*free_arg)(void *arg))
{
    if (r->defer_state != DEFER_NONE || r->change) {
        vg_err("web: a request deferred twice, or deferred and queued a change");
        abort(); /* a programming error: a handler must not do this */
    }
    r->defer_arg = arg;
    r->defer_free = free_arg;
    /* Bounded: each one is a thread until its work ends. */
    if (__atomic_add_fetch(&r->w->deferred, 1, __ATOMIC_SEQ_CST) > WEB_MAX_DEFERRED) {
        __atomic_sub_fetch(&r->w->deferred, 1, __ATOMIC_SEQ_CST);
        snprintf(r->retry_after, sizeof(r->retry_after), "1");
        web_reply_error(r, 503, "busy", "too many requests are being worked on; try again");
        return;
    }
    r->defer_work = work;
    r->defer_finish = finish;
    r->defer_state = DEFER_QUEUED;
}

/* The work's thread: runs it, then wakes the connection, whose next call
 * answers (finish_defer). */
static void *defer_main(void *arg)
{
    web_req_t *r = arg;
    struct web *w = r->w; /* r may be gone once the connection is resumed */
    pthread_setname_np(pthread_self(), "web-defer");
    r->defer_work(r->defer_arg);
    __atomic_sub_fetch(&w->deferred, 1, __ATOMIC_SEQ_CST);
    r->defer_state = DEFER_DONE; /* published by MHD_resume_connection's lock */
    MHD_resume_connection(r->conn);
    /* Counted down only now: web_stop must not stop MHD under a resume. */
    __atomic_sub_fetch(&w->suspended, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* Suspends the connection (its MHD thread serves the others meanwhile) and
 * starts the work on a detached thread (it inherits the MHD thread's
 * blocked signals). */
static void start_defer(web_req_t *r)
{
    pthread_t t;
    pthread_attr_t attr;
    r->defer_state = DEFER_RUNNING;
    __atomic_add_fetch(&r->w->suspended, 1, __ATOMIC_SEQ_CST);
    /* Suspend first: the work may finish before this handler returns. */
    MHD_suspend_connection(r->conn);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &attr, defer_main, r) != 0) {
        vg_warn("web: no thread for deferred work: running it on the request's");
        defer_main(r);
    }
    pthread_attr_destroy(&attr);
}

/* The work ended: its continuation answers, on the request's thread. */
static void finish_defer(web_req_t *r)
{
    r->defer_state = DEFER_NONE;
    r->defer_finish(r, r->defer_arg);
    if (!r->status)
        web_reply_error(r, 500, "internal", "no answer");
    web_count_request(r->w, r->route, r->status);
}

static int declared_too_big(web_req_t *r);

/* First call, headers complete: route and authenticate before a byte of
 * the body is read (DESIGN.md invariant 8), so a caller without valid
 * credentials cannot make vigild buffer a megabyte. Login is a public
 * route: its body is the credentials. Sets r->route, or answers. */
static void process_headers(web_req_t *r)
{
    const web_route_t *route = NULL;
    const web_config_t *c = &r->w->cfg;
    r->now_us = vg_clock_wall(c->clock);
    r->cfg = c->current_config ? c->current_config(c->status_ctx) : r->w->vcfg;
    client_ip(r, r->cfg);
    if (declared_too_big(r)) {
        web_reply_error(r, 413, "body_too_large", "request bodies are limited to 1 MiB");
        return;
    }
    r->idx = pool_get(r->w);
    if (!r->idx) {
        web_reply_error(r, 500, "internal", "the index is not available");
        return;
    }
    if (route_and_auth(r, &route) == VG_OK)
        r->route = route;
    else if (!r->status)
        web_reply_error(r, 500, "internal", "no answer");
    if (r->route && (r->route->flags & WEB_ROUTE_CSV)) {
        /* One large body at a time bounds what imports can hold. */
        int expected = 0;
        if (__atomic_compare_exchange_n(&r->w->csv_busy, &expected, 1, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
            r->csv_slot = 1;
        } else {
            snprintf(r->retry_after, sizeof(r->retry_after), "5");
            web_reply_error(r, 503, "busy", "another import is running; try again");
        }
    }
    pool_put(r->w, r->idx);
    r->idx = NULL;
    if (r->status)
        web_count_request(r->w, route, r->status);
}

/* Last call, body complete: the handler. */
static void process(web_req_t *r)
{
    const web_route_t *route = r->route;
    if (r->body_too_big && (route->flags & WEB_ROUTE_CSV))
        web_reply_error(r, 413, "body_too_large", "CSV imports are limited to %lld MiB",
                        WEB_MAX_CSV_BODY >> 20);
    else if (r->body_too_big)
        web_reply_error(r, 413, "body_too_large", "request bodies are limited to 1 MiB");
    else if (r->body_len && !(route->flags & WEB_ROUTE_BODY))
        web_reply_error(r, 400, "unexpected_body", "this route takes no request body");
    else if (!(r->idx = pool_get(r->w)))
        web_reply_error(r, 500, "internal", "the index is not available");
    else {
        /* A request that announced a body can stall between its headers and
         * here, while commits happen: the handler takes the index watch's
         * count afresh. Without a body this call follows the headers' at
         * once, and the count taken then still holds. */
        if (web_req_header(r, "Content-Length") || web_req_header(r, "Transfer-Encoding"))
            r->gen_read = 0;
        route->handler(r);
    }
    if ((r->change || r->defer_state == DEFER_QUEUED) && r->status) {
        vg_err("web: a handler queued a change or deferred work and answered");
        abort(); /* a programming error */
    }
    pool_put(r->w, r->idx);
    r->idx = NULL;
    if (r->defer_state == DEFER_QUEUED)
        return; /* answered and counted once the work is done */
    if (r->change)
        return; /* answered and counted once the change is committed */
    if (!r->status)
        web_reply_error(r, 500, "internal", "no answer");
    web_count_request(r->w, route, r->status);
}

static void add_header(struct MHD_Response *resp, const char *name, const char *value)
{
    if (value && *value && MHD_add_response_header(resp, name, value) != MHD_YES)
        abort(); /* only fails on out of memory */
}

static enum MHD_Result send_reply(web_req_t *r)
{
    struct MHD_Response *resp =
        r->body_kind != BODY_NONE ? body_response(r)
        : r->payload_release
            ? MHD_create_response_from_buffer_with_free_callback_cls(
                  r->payload_len, r->payload, r->payload_release, r->payload_ctx)
            : MHD_create_response_from_buffer(r->payload_len, r->payload, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        return MHD_NO;
    r->payload = NULL; /* owned by the response now */
    r->payload_release = NULL;
    r->payload_ctx = NULL;
    add_header(resp, "Content-Type", r->content_type);
    add_header(resp, "Cache-Control", r->cache_control ? r->cache_control : "no-store");
    add_header(resp, "ETag", r->etag);
    if (r->accept_ranges)
        add_header(resp, "Accept-Ranges", "bytes");
    add_header(resp, "Content-Range", r->content_range);
    add_header(resp, "Content-Disposition", r->disposition);
    add_header(resp, "X-Content-Type-Options", "nosniff");
    /* On every answer, the UI's and the API's alike: no inline script, no
     * inline style but the one hashed in WEB_CSP, no framing, no referrer
     * leaking a source name or a time. */
    add_header(resp, "Content-Security-Policy", WEB_CSP);
    add_header(resp, "Referrer-Policy", "no-referrer");
    add_header(resp, "X-Frame-Options", "DENY");
    add_header(resp, "Set-Cookie", r->set_cookie);
    add_header(resp, "Retry-After", r->retry_after);
    add_header(resp, "Allow", r->allow);
    if (r->extra_name[0])
        add_header(resp, r->extra_name, r->extra_value);
    if (r->w->tls)
        add_header(resp, "Strict-Transport-Security", "max-age=31536000");
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static int declared_too_big(web_req_t *r)
{
    const char *cl = web_req_header(r, "Content-Length");
    if (!cl)
        return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(cl, &end, 10);
    /* The import route's own limit: checked before authentication too. */
    const char *u = r->raw_uri ? r->raw_uri : "";
    size_t ul = strlen(WEB_CSV_ROUTE);
    unsigned long long max = strncmp(u, WEB_CSV_ROUTE, ul) == 0 && (u[ul] == '\0' || u[ul] == '?')
                                 ? WEB_MAX_CSV_BODY
                                 : WEB_MAX_BODY;
    return errno != 0 || end == cl || n > max;
}

static void take_body(web_req_t *r, const char *data, size_t size)
{
    size_t max = r->route && (r->route->flags & WEB_ROUTE_CSV) ? WEB_MAX_CSV_BODY : WEB_MAX_BODY;
    if (r->body_too_big || r->body_len + size > max) {
        /* keep reading, answer 413 at the end; what was taken is dropped,
         * so a slow client past the limit holds no buffer */
        r->body_too_big = 1;
        free(r->body);
        r->body = NULL;
        r->body_len = r->body_cap = 0;
        return;
    }
    if (r->body_len + size + 1 > r->body_cap) {
        r->body_cap = (r->body_len + size + 1) * 2;
        if (r->body_cap > max + 1)
            r->body_cap = max + 1;
        r->body = vg_realloc(r->body, r->body_cap);
    }
    memcpy(r->body + r->body_len, data, size);
    r->body_len += size;
    r->body[r->body_len] = '\0';
}

/* A piece of a CDR import's body: into its import's buffer (import.c),
 * not into r->body, so an import of any size holds WEB_IMPORT_BUFFER. What
 * does not fit is left in *upload_data_size with the connection suspended:
 * libmicrohttpd offers it again when the worker has made room. */
static void take_csv(web_req_t *r, const char *data, size_t *size)
{
    if (r->status || r->body_too_big) {
        *size = 0; /* answered already, or too large: the rest is not kept */
        return;
    }
    if (r->body_len + *size > (size_t)WEB_MAX_CSV_BODY) {
        /* a chunked body past the limit: the import stops (rows committed
         * so far stay, as when the index fails) and the end answers 413 */
        r->body_too_big = 1;
        web_import_free(r->import);
        r->import = NULL;
        *size = 0;
        return;
    }
    if (!r->import) {
        web_call_import_start(r);
        if (r->status) {
            r->answer_late = 1;
            *size = 0;
            return;
        }
    }
    size_t took = web_import_push(r->import, data, *size);
    r->body_len += took;
    *size -= took;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    (void)cls;
    (void)url; /* already decoded by MHD: the raw target from on_uri is used */
    (void)version;
    web_req_t *r = *con_cls;
    if (!r)
        return MHD_NO;
    if (!r->method) {
        r->method = method;
        r->conn = conn;
        process_headers(r);
        if (!r->status)
            return MHD_YES; /* now the body, if any */
        /* no handler ran: nothing queued a change */
        if (r->n_audit) {
            start_audit(r);
            return MHD_YES;
        }
        return send_reply(r);
    }
    if (*upload_data_size && r->route && (r->route->flags & WEB_ROUTE_CSV)) {
        take_csv(r, upload_data, upload_data_size);
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!r->status) /* answered already: the rest is not kept */
            take_body(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->defer_state == DEFER_DONE) {
        finish_defer(r);
        if (r->n_audit) {
            start_audit(r);
            return MHD_YES;
        }
        return send_reply(r);
    }
    if (r->answer_late) {
        /* refused on the body's first piece (take_csv): the answer goes now */
        r->answer_late = 0;
        web_count_request(r->w, r->route, r->status);
        if (r->n_audit) {
            start_audit(r);
            return MHD_YES;
        }
        return send_reply(r);
    }
    if (!r->status && r->import && !web_import_finish(r->import))
        return MHD_YES; /* suspended until the import's last rows are written */
    if (r->audit_state == AUDIT_DONE) {
        r->audit_state = AUDIT_NONE;
        if (r->change) {
            change_finish(r, r->audit_rc);
            web_count_request(r->w, r->route, r->status);
            return send_reply(r);
        }
        /* An access whose record cannot be written is not answered with data. */
        if (r->audit_rc != VG_OK)
            web_reply_error(r, 500, "audit_failed", "the access could not be recorded; try again");
        else
            web_audit_opened(r);
        return send_reply(r);
    }
    if (r->status)
        return MHD_YES; /* answered on the first call */
    process(r);
    if (r->defer_state == DEFER_QUEUED) {
        start_defer(r);
        return MHD_YES;
    }
    if (r->n_audit || r->change) {
        start_audit(r);
        return MHD_YES;
    }
    return send_reply(r);
}

/* ---- a request without a connection (web_dispatch) ---- */

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int done, rc;
} dispatch_wait_t;

static void dispatch_committed(void *arg, int rc)
{
    dispatch_wait_t *d = arg;
    pthread_mutex_lock(&d->lock);
    d->rc = rc;
    d->done = 1;
    pthread_cond_signal(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

/* web_dispatch has no connection to stream through: a file or reader body
 * is read into the payload (bounded; the fuzz target never asks for much). */
static void dispatch_body(web_req_t *r)
{
    size_t cap = r->body_size < 16u << 20 ? (size_t)r->body_size : 16u << 20;
    char *buf = vg_malloc(cap + 1);
    size_t got = 0;
    while (got < cap) {
        long n;
        if (r->body_kind == BODY_FILE)
            n = (long)pread(r->body_fd, buf + got, cap - got, (off_t)(r->body_off + got));
        else
            n = r->body_read(r->body_ctx, got, buf + got, cap - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    int status = r->status;
    const char *type = r->content_type;
    web_reply_text(r, status, type, buf, got); /* drops the body source */
}

void web_dispatch(web_t *w, const char *method, const char *uri, const web_header_t *hdrs,
                  size_t n_hdrs, const char *ip, const char *body, size_t body_len, int *status,
                  char **payload, size_t *len)
{
    web_req_t *r = vg_calloc(1, sizeof(*r));
    r->w = w;
    r->raw_uri = vg_strdup(uri);
    r->corked_fd = -1;
    r->method = method;
    r->hdrs = hdrs;
    r->n_hdrs = n_hdrs;
    snprintf(r->ip, sizeof(r->ip), "%s", ip);
    /* The same two steps as a connection: route and authenticate on the
     * headers, then (only if that did not answer) the body and the handler. */
    process_headers(r);
    if (!r->status) {
        size_t max = r->route && (r->route->flags & WEB_ROUTE_CSV) ? WEB_MAX_CSV_BODY
                                                                    : WEB_MAX_BODY;
        if (body_len > max)
            r->body_too_big = 1;
        else if (body_len)
            take_body(r, body, body_len);
        process(r);
    }
    if (r->defer_state == DEFER_QUEUED) { /* no connection to suspend: run it here */
        r->defer_work(r->defer_arg);
        __atomic_sub_fetch(&w->deferred, 1, __ATOMIC_SEQ_CST);
        finish_defer(r);
    }
    if (r->n_audit || r->change) {
        /* The same group commit as a connection's, waited for here. */
        dispatch_wait_t d = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
        fill_ticket(r, dispatch_committed, &d);
        web_auditor_submit(w->auditor, &r->ticket);
        pthread_mutex_lock(&d.lock);
        while (!d.done)
            pthread_cond_wait(&d.cond, &d.lock);
        pthread_mutex_unlock(&d.lock);
        pthread_mutex_destroy(&d.lock);
        pthread_cond_destroy(&d.cond);
        if (r->change) {
            change_finish(r, d.rc);
            web_count_request(w, r->route, r->status);
        } else if (d.rc != VG_OK)
            web_reply_error(r, 500, "audit_failed", "the access could not be recorded; try again");
    }
    if (r->body_kind != BODY_NONE)
        dispatch_body(r);
    *status = r->status;
    *len = r->payload_len;
    *payload = vg_malloc(r->payload_len + 1);
    if (r->payload_len)
        memcpy(*payload, r->payload, r->payload_len);
    (*payload)[r->payload_len] = '\0';
    req_free(r);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    vg_info("http: %s", msg);
}

/* ---- start / stop ---- */

static int open_listener(const char *text, int *fd_out, int *family)
{
    char host[128], port[8];
    int p = 0;
    if (vg_config_split_listen(text, host, sizeof(host), &p) != VG_OK) {
        vg_err("web: bad listen address '%s'", text);
        return VG_ECONFIG;
    }
    snprintf(port, sizeof(port), "%d", p);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(host, port, &hints, &res);
    if (gai != 0) {
        vg_err("web: cannot resolve %s: %s", text, gai_strerror(gai));
        return VG_ECONFIG;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
    int one = 1;
    int rc = VG_OK;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (res->ai_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 256) != 0) {
        vg_err("web: cannot listen on %s: %s", text, strerror(errno));
        rc = VG_EIO;
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    *family = res->ai_family;
    freeaddrinfo(res);
    *fd_out = fd;
    return rc;
}

int web_addr_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

/* Passwords, session cookies and tokens cross the network in clear text
 * unless TLS is on: say so where an admin looks, once at start. */
static void warn_plain(const struct web *w, int fd, const char *listen_on)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (w->tls || getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
        web_addr_loopback((const struct sockaddr *)&ss))
        return;
    vg_warn("web: HTTP on %s is reachable beyond this host without TLS: passwords, session "
            "cookies and API tokens cross the network in clear text; set tls_cert and tls_key",
            listen_on);
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int read_pem(const char *path, char **out)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        vg_err("web: cannot read %s: %s", path, strerror(errno));
        return VG_EIO;
    }
    char *buf = vg_malloc(MAX_PEM + 1);
    size_t n = fread(buf, 1, MAX_PEM + 1, f);
    int bad = ferror(f) || n > MAX_PEM || n == 0;
    fclose(f);
    if (bad) {
        vg_err("web: %s is empty, unreadable or larger than %d bytes", path, MAX_PEM);
        free(buf);
        return VG_EIO;
    }
    buf[n] = '\0';
    *out = buf;
    return VG_OK;
}

static int prepare(struct web *w)
{
    if (sodium_init() < 0) {
        vg_err("web: libsodium failed to initialise");
        return VG_EIO;
    }
    /* A real Argon2id string, so an unknown user costs a full verify. */
    unsigned char junk[32];
    char pw[65];
    randombytes_buf(junk, sizeof(junk));
    sodium_bin2hex(pw, sizeof(pw), junk, sizeof(junk));
    int rc = web_password_hash(pw, w->dummy_hash);
    if (rc != VG_OK)
        return rc;
    const vg_http_config_t *h = &w->vcfg->http;
    if (h->tls_cert && h->tls_key) {
        if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
            vg_err("web: this libmicrohttpd has no TLS support");
            return VG_ECONFIG;
        }
        if ((rc = read_pem(h->tls_cert, &w->tls_cert)) != VG_OK ||
            (rc = read_pem(h->tls_key, &w->tls_key)) != VG_OK)
            return rc;
        w->tls = 1;
    }
    char *db = vg_asprintf("%s/index.db", w->cfg.data_dir);
    w->db_path = db;
    w->cache = web_cache_new();
    const vg_playback_config_t *pc = &w->vcfg->playback;
    pb_config_t pbc = {.data_dir = w->cfg.data_dir, .snapshot_workers = pc->snapshot_workers,
                       .snapshot_threads = pc->snapshot_threads,
                       .snapshot_cache_bytes = (int64_t)pc->snapshot_cache_mib << 20,
                       .peaks_cache_bytes = 16u << 20,
                       /* a day of one source's 60 s files: 2.5-5 MB of lines */
                       .playlist_cache_bytes = 64u << 20,
                       .transcode_max = pc->transcode_hevc ? pc->transcode_max : 0};
    if ((rc = pb_open(&pbc, &w->pb)) != VG_OK)
        return rc;
    w->limiter = web_limiter_new(WEB_LIMIT_RATE, WEB_LIMIT_BURST);
    pthread_mutex_init(&w->peers_lock, NULL);
    w->peers = vg_calloc(WEB_PEER_SLOTS, sizeof(*w->peers));
    w->per_ip = w->vcfg->http.connections_per_ip > 0 ? w->vcfg->http.connections_per_ip : 64;
    w->peers_logged_us = INT64_MIN / 2;
    if ((rc = idx_denials_open(db, w->cfg.clock, &w->denials)) != VG_OK)
        return rc;
    if ((rc = web_aggregator_open(db, w->cfg.clock, &w->aggregator)) != VG_OK)
        return rc;
    if ((rc = web_ui_init(w)) != VG_OK)
        return rc;
    /* The index is open (vigild opened and migrated it first), so its
     * wal-index is there to read; without the watch nothing is cached. */
    if (idx_watch_open(db, &w->watch) == VG_OK)
        w->sessions = web_sessions_new();
    return web_auditor_start(db, &w->auditor);
}

/* ---- open connections per client address ---- */

#define PEER_PROBES 8
#define PEER_LOG_US (60LL * 1000000)

/* The address to count a connection under, or 0 for one not counted:
 * loopback (the machine itself, or a reverse proxy on it) and [server]
 * trusted_proxies (every user behind them shares their address). */
static int peer_key(const struct web *w, const struct sockaddr *sa, web_peer_t *k)
{
    memset(k, 0, sizeof(*k));
    if (!sa)
        return 0;
    if (sa->sa_family == AF_INET) {
        memcpy(k->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        k->len = 4;
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            memcpy(k->addr, a->s6_addr + 12, 4);
            k->len = 4;
        } else {
            if (IN6_IS_ADDR_LOOPBACK(a))
                return 0;
            memcpy(k->addr, a->s6_addr, 16);
            k->len = 16;
        }
    } else {
        return 0;
    }
    static const unsigned char lo[4] = {127, 0, 0, 1};
    if (k->len == 4 && memcmp(k->addr, lo, 4) == 0)
        return 0;
    /* the configuration in force now: trusted_proxies may change on reload */
    const vg_config_t *cfg =
        w->cfg.current_config ? w->cfg.current_config(w->cfg.status_ctx) : w->vcfg;
    if (cfg && cfg->http.trusted_proxies) {
        char text[INET6_ADDRSTRLEN];
        if (inet_ntop(k->len == 4 ? AF_INET : AF_INET6, k->addr, text, sizeof(text)) &&
            vg_config_proxy_trusted(cfg, text))
            return 0;
    }
    return 1;
}

/* The slot of k (create: taking a free one), or NULL. Under peers_lock. */
static web_peer_t *peer_slot(struct web *w, const web_peer_t *k, int create)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < k->len; i++)
        h = (h ^ k->addr[i]) * 16777619u;
    web_peer_t *free_slot = NULL;
    for (int i = 0; i < PEER_PROBES; i++) {
        web_peer_t *p = &w->peers[(h + (uint32_t)i) % WEB_PEER_SLOTS];
        if (p->len == k->len && memcmp(p->addr, k->addr, (size_t)k->len) == 0)
            return p;
        if (!p->len && !free_slot)
            free_slot = p;
    }
    if (create && free_slot) {
        *free_slot = *k;
        free_slot->count = 0;
    }
    return create ? free_slot : NULL;
}

/* libmicrohttpd's accept policy: refuses a connection from an address that
 * has per_ip open already. (An address whose probes find no free slot is
 * not counted: the total MAX_CONNECTIONS still bounds it.) */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t len)
{
    struct web *w = cls;
    web_peer_t k;
    (void)len;
    if (!w->peers || !peer_key(w, addr, &k))
        return MHD_YES;
    pthread_mutex_lock(&w->peers_lock);
    const web_peer_t *p = peer_slot(w, &k, 0);
    int over = p && p->count >= w->per_ip;
    int64_t now = vg_clock_mono(w->cfg.clock);
    int log = over && now - w->peers_logged_us >= PEER_LOG_US;
    if (log)
        w->peers_logged_us = now;
    pthread_mutex_unlock(&w->peers_lock);
    if (!over)
        return MHD_YES;
    __atomic_add_fetch(&w->peers_refused, 1, __ATOMIC_RELAXED);
    if (log) {
        char text[INET6_ADDRSTRLEN] = "?";
        inet_ntop(k.len == 4 ? AF_INET : AF_INET6, k.addr, text, sizeof(text));
        vg_warn("http: refusing connections from %s: %d open already "
                "([server] http_connections_per_ip; logged once a minute)", text, w->per_ip);
    }
    return MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct web *w = cls;
    if (!w->peers)
        return;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        web_peer_t k;
        if (!ci || !peer_key(w, ci->client_addr, &k))
            return;
        pthread_mutex_lock(&w->peers_lock);
        web_peer_t *p = peer_slot(w, &k, 1);
        if (p) {
            p->count++;
            *socket_context = p; /* a slot is freed only at count 0: it outlives us */
        }
        pthread_mutex_unlock(&w->peers_lock);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context) {
        web_peer_t *p = *socket_context;
        pthread_mutex_lock(&w->peers_lock);
        if (--p->count <= 0)
            memset(p, 0, sizeof(*p));
        pthread_mutex_unlock(&w->peers_lock);
        *socket_context = NULL;
    }
}

/* A few event-loop threads serve every connection (epoll); a request
 * waiting for its audit commit is suspended and holds none of them. Password
 * hashing does hold one for its ~0.1 s, so there are more threads than CPUs
 * (twice: measured with one per CPU, media byte ranges were ~12% slower).
 * MHD_USE_TURBO (no epoll round trip before a read or write, no shutdown(2)
 * before close) was tried: the same CPU time per media request (43-47 us),
 * so not worth closing without shutdown. */
static struct MHD_Daemon *start_mhd(struct web *w, int fd, int family)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    intptr_t threads = cpus < 2 ? 4 : cpus > 8 ? 16 : 2 * cpus;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (w->tls)
        flags |= MHD_USE_TLS;
    struct MHD_OptionItem ops[] = {
        {MHD_OPTION_EXTERNAL_LOGGER, (intptr_t)mhd_log, w}, /* first: catches every message */
        {MHD_OPTION_LISTEN_SOCKET, fd, NULL},
        {MHD_OPTION_THREAD_POOL_SIZE, threads, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, MAX_CONNECTIONS, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, CONNECTION_TIMEOUT_S, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONNECTION_MEMORY, NULL},
        {MHD_OPTION_URI_LOG_CALLBACK, (intptr_t)on_uri, w},
        {MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, w},
        {MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, w},
        {w->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, w->tls_cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, w->tls_key},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)WEB_TLS_PRIORITIES},
        {MHD_OPTION_END, 0, NULL},
    };
    return MHD_start_daemon(flags, 0, on_accept, w, on_request, w, MHD_OPTION_ARRAY, ops,
                            MHD_OPTION_END);
}

int web_start(const web_config_t *cfg, web_t **out)
{
    const char *listen_on = cfg->listen ? cfg->listen : cfg->cfg->http.listen;
    struct web *w = NULL;
    int fd = -1, family = AF_INET;
    int rc;
    *out = NULL;
    if (!listen_on || !*listen_on) {
        vg_notice("web: http_listen is empty: HTTP API off");
        return VG_OK;
    }
    w = vg_calloc(1, sizeof(*w));
    w->listen_fd = -1;
    w->cfg = *cfg;
    w->vcfg = cfg->cfg;
    if (!w->cfg.clock)
        w->cfg.clock = &vg_system_clock;
    if (!w->cfg.data_dir)
        w->cfg.data_dir = cfg->cfg->data_dir;
    pthread_mutex_init(&w->pool_lock, NULL);
    pthread_mutex_init(&w->hash_lock, NULL);
    pthread_cond_init(&w->hash_cond, NULL);
    if ((rc = prepare(w)) != VG_OK || (rc = open_listener(listen_on, &fd, &family)) != VG_OK)
        goto cleanup;
    w->port = bound_port(fd);
    warn_plain(w, fd, listen_on);
    /* MHD's threads inherit this mask: signals stay with the main thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    w->mhd = start_mhd(w, fd, family);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!w->mhd) {
        vg_err("web: libmicrohttpd failed to start on %s", listen_on);
        rc = VG_EIO;
        goto cleanup;
    }
    fd = -1; /* MHD closes it at stop */
    vg_notice("web: listening on %s (port %d)%s", listen_on, w->port, w->tls ? " with TLS" : "");
    *out = w;
    w = NULL;
    rc = VG_OK;

cleanup:
    if (fd >= 0)
        close(fd);
    web_stop(w);
    return rc;
}

int web_bound_port(const web_t *w)
{
    return w ? w->port : 0;
}

void web_stop(web_t *w)
{
    if (!w)
        return;
    if (w->mhd) {
        /* No new connections; requests waiting for their audit commit are
         * resumed by the writer and answered before MHD stops. */
        w->listen_fd = MHD_quiesce_daemon(w->mhd);
        /* A suspended request's context is still in the writer's queue:
         * stopping MHD now would free it under the writer. The writer
         * always finishes a batch (at worst with an error after SQLite's
         * busy timeout), so this wait ends; so does deferred work (a
         * WHEP offer gives up on ICE gathering after 5 s). */
        for (int i = 1; __atomic_load_n(&w->suspended, __ATOMIC_SEQ_CST) > 0; i++) {
            if (i % 500 == 0)
                vg_warn("web: still waiting for %d audit commit(s) or deferred request(s)",
                        __atomic_load_n(&w->suspended, __ATOMIC_SEQ_CST));
            usleep(10 * 1000);
        }
        MHD_stop_daemon(w->mhd); /* joins its threads */
        if (w->listen_fd >= 0)
            close(w->listen_fd);
    }
    web_auditor_stop(w->auditor);
    idx_denials_close(w->denials); /* writes the last minute's counts */
    web_aggregator_close(w->aggregator); /* and the last minute's viewings */
    web_limiter_free(w->limiter);
    if (w->peers)
        pthread_mutex_destroy(&w->peers_lock);
    free(w->peers);
    web_cache_free(w->cache);
    web_sessions_free(w->sessions);
    idx_watch_close(w->watch);
    pb_close(w->pb);
    web_ui_free(w);
    for (size_t i = 0; i < w->n_pool; i++)
        idx_close(w->pool[i]);
    free(w->pool);
    pthread_mutex_destroy(&w->pool_lock);
    pthread_mutex_destroy(&w->hash_lock);
    pthread_cond_destroy(&w->hash_cond);
    if (w->tls_key)
        sodium_memzero(w->tls_key, strlen(w->tls_key));
    free(w->tls_key);
    free(w->tls_cert);
    free(w->db_path);
    free(w);
}
