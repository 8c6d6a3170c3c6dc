/* Shared by the files of web/ only: the parsed request target, the route
 * table, the per-request context handlers fill, and their helpers. */
#ifndef WEB_WEB_PRIVATE_H
#define WEB_WEB_PRIVATE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "calls/calls.h"
#include "index/index.h"
#include "playback/playback.h"
#include "web/web.h"

#define WEB_MAX_BODY (1024 * 1024)  /* request bodies: 1 MiB */
/* calls: a CDR import's body (POST /api/v1/calls/import). It is not held:
 * it streams through a buffer of WEB_IMPORT_BUFFER into a worker thread
 * (import.c), one import at a time, so the limit bounds an import's work
 * (about 7 M rows), not memory. */
#define WEB_MAX_CSV_BODY (1024LL * 1024 * 1024)
#define WEB_IMPORT_BUFFER (1024 * 1024)
#define WEB_CSV_ROUTE "/api/v1/calls/import"
#define WEB_MAX_URI 2048            /* longer request targets: 414 */
#define WEB_MAX_SEGMENTS 12
#define WEB_MAX_QUERY 16
#define WEB_MAX_PARAMS 3
/* GnuTLS priorities of the HTTPS listener: GnuTLS's vetted defaults, TLS 1.3
 * and 1.2 only (1.0 and 1.1 are refused at the handshake). In README. */
#define WEB_TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* ---- request target (router.c: pure, fuzzed) ---- */

typedef struct {
    char *key, *value;
} web_kv_t;

typedef struct {
    char *buf;                         /* one allocation holding every decoded string */
    char *seg[WEB_MAX_SEGMENTS];       /* decoded path segments */
    size_t n_seg;
    web_kv_t query[WEB_MAX_QUERY];
    size_t n_query;
} web_target_t;

/* An error to answer with: HTTP status, snake_case code, human text. */
typedef struct {
    int status;
    const char *code;
    char message[192];
} web_error_t;

/* Parses a raw request target ("/a/b%20c?x=1"). Rejects what could be a
 * path trick (".", "..", encoded '/', NUL or control characters), bad
 * escapes, empty segments, duplicate query keys and overlong targets. */
int web_target_parse(const char *raw, size_t len, web_target_t *t, web_error_t *err);
void web_target_free(web_target_t *t);
/* The query value of key, or NULL. */
const char *web_query_get(const web_target_t *t, const char *key);

/* ---- routes ---- */

struct web_req;
typedef void (*web_handler_t)(struct web_req *r);

enum {
    WEB_ROUTE_PUBLIC = 1, /* no credentials needed */
    WEB_ROUTE_BODY = 2,   /* takes a JSON body */
    WEB_ROUTE_CSV = 4,    /* calls: takes a CSV body of up to WEB_MAX_CSV_BODY, one at a time */
};

typedef struct {
    const char *method;
    const char *pattern;           /* "/api/v1/sources/{}/segments": {} is a parameter */
    unsigned perms_any;            /* any of these; 0: any authenticated caller */
    int flags;
    const char *const *query_keys; /* allowed query parameters (NULL: none) */
    web_handler_t handler;
} web_route_t;

extern const web_route_t web_routes[];
extern const size_t web_n_routes;

/* Finds the route for method and target. Returns the route, or NULL with
 * *path_known set when the path exists under another method (405; allow
 * gets "GET, POST"), clear when no route has this path (404). params gets
 * the {} segments. */
const web_route_t *web_route_find(const char *method, const web_target_t *t, int *path_known,
                                  char *allow, size_t allow_size,
                                  const char *params[WEB_MAX_PARAMS]);
/* VG_OK when every query key is one the route allows. */
int web_route_check_query(const web_route_t *route, const web_target_t *t, web_error_t *err);

/* ---- JSON bodies (body.c: pure, fuzzed) ---- */

typedef enum {
    WEB_F_STRING,
    WEB_F_INT,
    WEB_F_STRINGS, /* array of strings */
    WEB_F_TIME,    /* RFC 3339 string or unix seconds (number or string) */
    WEB_F_BOOL,    /* true or false */
    WEB_F_INTS,    /* array of integers (calls: ids) */
    WEB_F_ARRAY,   /* any array: the handler checks its items */
    WEB_F_OBJECT,  /* any object: the handler checks its members */
} web_field_kind_t;

typedef struct {
    const char *name;
    web_field_kind_t kind;
    int required;
    int nullable;
} web_field_t;

/* Parses body as a JSON object whose members are all among fields (NULL
 * name ends the list), of the right kinds, with every required one present.
 * *out is the object (json_decref it). */
int web_body_parse(const char *body, size_t len, const web_field_t *fields, json_t **out,
                   web_error_t *err);
/* Reads a WEB_F_TIME member already checked by web_body_parse. */
int web_json_time(const json_t *v, int64_t *us);
/* Parses a from/to query or JSON value (RFC 3339 or unix seconds), from
 * 1970-01-01T00:00:00Z to WEB_TIME_MAX_US (9999-12-31T23:59:59.999999Z). */
#define WEB_TIME_MAX_US INT64_C(253402300799999999)
int web_time_text(const char *text, int64_t *us);

/* ---- the server and a request ---- */

typedef struct web_auditor web_auditor_t;
typedef struct web_aggregator web_aggregator_t;

/* ---- cache.c: answers of the range routes, per source version ---- */

#define WEB_CACHE_KEY_MAX 160
typedef struct web_cache web_cache_t;
typedef struct web_sessions web_sessions_t;

web_cache_t *web_cache_new(void);
void web_cache_free(web_cache_t *c);
/* One cached answer, shared by the cache and the replies sending it. */
typedef struct web_cached web_cached_t;
const char *web_cached_data(const web_cached_t *a, size_t *len, size_t *n);
/* Drops a reference (the reply's release callback). */
void web_cached_unref(void *a);

/* The answer stored under key at exactly this version, with a reference
 * for the caller, or NULL. */
web_cached_t *web_cache_get(web_cache_t *c, const char *key, int64_t version);
/* Stores a copy of body (answers too large to keep are not stored) and
 * returns it with a reference for the caller, or NULL when not stored. */
web_cached_t *web_cache_put(web_cache_t *c, const char *key, int64_t version, const char *body,
                            size_t len, size_t n);

/* A request's audit rows waiting for the group commit. done runs on the
 * writer thread once they are committed (or failed: rc). With change set,
 * change(idx, change_arg, change_rows, n_change) runs first in the batch's
 * transaction (idx_audited_step) and rc is its code once committed. */
typedef struct web_ticket {
    idx_audit_t *rows;
    size_t n;
    idx_change_fn change;
    void *change_arg;
    idx_audit_t *change_rows;
    size_t n_change;
    void (*done)(void *arg, int rc);
    void *arg;
    struct web_ticket *next;
} web_ticket_t;

typedef struct {
    char kind;            /* 'u' user (session), 't' token */
    char name[64];        /* user or token name */
    char role[16];        /* users only */
    unsigned perms;
    int all_sources;
    char sources[IDX_LIST_TEXT_MAX]; /* comma-separated when !all_sources */
    char actor[96];       /* user:NAME | token:ID */
    int via_cookie;
    char session_hash[65];
    int64_t token_id;     /* tokens only */
} web_principal_t;

/* ---- a long answer's access, re-checked while it streams (server.c, auth.c) ----
 * What a body produced or read over many seconds was granted on: the
 * credential by its hash or id (never the secret), the route's permissions
 * and the sources whose media it carries. */
typedef struct {
    char kind;                         /* 'u' session, 't' token */
    char session_hash[65];
    int64_t token_id;
    unsigned perms_any;                /* the route's (0: any caller) */
    char sources[IDX_LIST_TEXT_MAX];   /* comma-separated; each must stay readable */
    int live_view;                     /* the sources are watched live: the live rule
                                        * (live, and calls for an audio line) instead
                                        * of the recordings' */
} web_grant_t;

/* Whether g still holds, by the rules web_auth_request, web_source_visible
 * and the readable-source routes apply: VG_OK; VG_ENOTFOUND once it does
 * not (session ended, token revoked, account gone, a permission or a
 * source lost); another code when the index could not say. */
int web_grant_check(struct web *w, idx_t *idx, const web_grant_t *g);

/* Whether g still holds, looked up at most when the accounts generation
 * moved since *gen (*gen_known 0: never looked); 0 once it does not, 1
 * otherwise (also when the index cannot say now: retried next time). For
 * long answers and live sessions, from any thread. */
int web_grant_poll(struct web *w, const web_grant_t *g, int64_t *gen, int *gen_known);

/* ---- limit.c: token buckets per address for failed authentication ---- */

/* Refused requests per address: a burst of WEB_LIMIT_BURST, then
 * WEB_LIMIT_RATE a second; past that, 429 with Retry-After. */
#define WEB_LIMIT_RATE 5.0
#define WEB_LIMIT_BURST 20.0

typedef struct web_limiter web_limiter_t;
web_limiter_t *web_limiter_new(double rate_per_s, double burst);
void web_limiter_free(web_limiter_t *l);
/* Takes a token from ip's bucket: 0 when there was one, else the seconds
 * until there is (for Retry-After). */
int web_limiter_take(web_limiter_t *l, const char *ip, int64_t now_us);

/* Requests counted per route and answer status, for GET /metrics. The last
 * route slot counts requests that matched no route. */
#define WEB_STATUS_SLOTS 18
#define WEB_MAX_ROUTES 128

#define WEB_PEER_SLOTS 1024
typedef struct {
    unsigned char addr[16]; /* IPv4 in the first 4 bytes, or IPv6 */
    int len;                /* 0: a free slot */
    int count;
} web_peer_t;

struct web {
    long http_counts[WEB_MAX_ROUTES + 1][WEB_STATUS_SLOTS]; /* atomic adds */
    web_config_t cfg;
    const vg_config_t *vcfg;
    char *db_path;
    struct MHD_Daemon *mhd;
    int listen_fd;            /* after MHD_quiesce_daemon: ours to close */
    int port;
    int suspended;            /* requests waiting for their audit commit or their
                               * deferred work (atomic) */
    int deferred;             /* requests whose work runs off MHD's threads (atomic) */
    int tls;
    char *tls_cert, *tls_key; /* PEM text, kept for MHD's lifetime */
    web_auditor_t *auditor;
    idx_denials_t *denials;   /* refused requests: aggregated rows, not one per request */
    web_limiter_t *limiter;   /* refused requests per address */
    web_cache_t *cache;
    web_aggregator_t *aggregator; /* aggregate.c: rows for the requests of a viewing */
    int csv_busy;             /* calls: a WEB_ROUTE_CSV body is being taken (atomic) */
    pb_t *pb;                 /* playback's caches and decode limits (routes_media.c) */
    idx_watch_t *watch;       /* moves with every index commit (NULL: not watched) */
    web_sessions_t *sessions; /* sessions.c: rows of the cookie check (NULL: none kept) */
    /* Index connections, one per request at a time (SQLite connections are
     * not shared between threads); created on demand, closed at stop. */
    pthread_mutex_t pool_lock;
    idx_t **pool;
    size_t n_pool, cap_pool;
    /* Argon2id takes 64 MiB a run: bound how many run at once. */
    pthread_mutex_t hash_lock;
    pthread_cond_t hash_cond;
    int hashing;
    char dummy_hash[128];     /* verified against for unknown users: same timing */
    char *ui_root;            /* ui.c: the UI directory, resolved; NULL: no UI */
    char ui_version[17];      /* ui.c: hash of the UI's files, in immutable URLs */
    /* server.c: open connections per client address (loopback and trusted
     * proxies are not counted), so one address cannot hold every slot. */
    pthread_mutex_t peers_lock;
    web_peer_t *peers;        /* WEB_PEER_SLOTS */
    int per_ip;               /* [server] http_connections_per_ip */
    long peers_refused;       /* connections refused over it (atomic) */
    int64_t peers_logged_us;  /* the last refusal logged (under peers_lock) */
};

#define WEB_MAX_AUDIT 4

/* A request header given by hand (web_dispatch), not read off a connection. */
typedef struct {
    const char *name, *value;
} web_header_t;

/* Wakes a streamed answer waiting for bytes (web_reply_stream). */
typedef struct web_waker web_waker_t;

/* Produces bytes of a body at pos: returns how many (> 0) or -1. */
typedef long (*web_read_fn)(void *ctx, uint64_t pos, char *buf, size_t max);

typedef struct web_req {
    struct web *w;
    struct MHD_Connection *conn;   /* NULL under web_dispatch: headers in hdrs */
    const web_header_t *hdrs;
    size_t n_hdrs;
    char cookie[128];             /* web_req_cookie's answer under web_dispatch */
    const char *method;
    char *raw_uri;
    web_target_t target;
    const char *params[WEB_MAX_PARAMS];
    const web_route_t *route; /* found (and the caller authenticated) on the first call */
    char *body;
    size_t body_len, body_cap;
    int body_too_big;
    int csv_slot;                 /* calls: holds w->csv_busy (WEB_ROUTE_CSV) */
    struct web_import *import;    /* calls: the body streaming into its import (import.c) */
    int answer_late;              /* answered on the body's first piece: send at its end */
    char ip[64];
    idx_t *idx;
    const vg_config_t *cfg;   /* in force for this request */
    int64_t now_us;
    web_principal_t who;
    /* the answer */
    int status;
    char *payload;            /* malloc'd, or shared (payload_release set) */
    size_t payload_len;
    void (*payload_release)(void *ctx); /* NULL: free(payload) */
    void *payload_ctx;
    const char *content_type;
    char set_cookie[256];
    char retry_after[24];
    char allow[64];
    const char *cache_control; /* NULL: no-store (every API answer) */
    char etag[80];
    /* a body read from a file (sendfile) or produced by a reader instead of
     * payload: web_reply_file, web_reply_reader */
    int body_kind;            /* BODY_NONE, BODY_FILE, BODY_READER (server.c) */
    int body_fd;
    uint64_t body_off, body_size;
    web_read_fn body_read;
    void *body_ctx;
    void (*body_free)(void *ctx);
    int accept_ranges;
    char content_range[96];
    char disposition[400];
    char extra_name[32], extra_value[160]; /* one more answer header (Location, ...) */
    web_waker_t *waker;       /* BODY_STREAM: its wake-up */
    /* what a long body carries, re-checked while it streams: the sources
     * (a source route's own by default) and the object its audit row names
     * when the access ends (default "source:NAME") */
    char stream_sources[IDX_LIST_TEXT_MAX];
    char stream_object[96];
    /* [server] require_access_reason: the reason given with this request
     * (web_access_reason), added to the detail of its audit rows */
    char access_reason[160];
    /* audit rows to commit before the answer leaves; while they are being
     * committed the connection is suspended, freeing its MHD thread */
    idx_audit_t audit[WEB_MAX_AUDIT];
    size_t n_audit;
    web_ticket_t ticket;
    /* a change queued with the group commit (web_change_queued) */
    idx_change_fn change;
    void *change_arg;             /* the request's: change_free(change_arg) at its end */
    void (*change_free)(void *arg);
    void (*change_done)(struct web_req *r, int rc);
    idx_audit_t change_row;
    int audit_state;          /* AUDIT_NONE, AUDIT_WAITING, AUDIT_DONE */
    int audit_rc;
    /* work deferred off MHD's threads (web_defer) */
    void (*defer_work)(void *arg);
    void (*defer_finish)(struct web_req *r, void *arg);
    void (*defer_free)(void *arg);
    void *defer_arg;
    int defer_state;          /* DEFER_NONE, DEFER_QUEUED, DEFER_RUNNING, DEFER_DONE */
    uint64_t gen;             /* web_index_gen's, once read */
    int gen_read;
    int corked_fd;            /* the socket corked for a file's answer, or -1 */
    uint64_t opening_key;     /* web_audit_ranged's row, remembered once committed */
} web_req_t;

/* ---- sessions.c: the cookie check's rows, kept while the index is unchanged ---- */
web_sessions_t *web_sessions_new(void);
void web_sessions_free(web_sessions_t *c);
/* 1 and *out when hash's row was read under gen (not 0) less than a second
 * ago; 0 otherwise. */
int web_sessions_get(web_sessions_t *c, const char *hash, uint64_t gen, idx_session_t *out);
/* Keeps s, read from the index under gen (taken before the read). */
void web_sessions_put(web_sessions_t *c, const char *hash, uint64_t gen, const idx_session_t *s);
/* The index watch's count as of this request's first call (index/watch.c);
 * 0 when nothing read from the index may be reused. */
uint64_t web_index_gen(web_req_t *r);

/* Answers: JSON (steals v; NULL or a value that cannot be serialized
 * answers a fixed 500, never aborts), text, or the error envelope (the
 * message is made valid UTF-8). */
void web_reply_json(web_req_t *r, int status, json_t *v);
void web_reply_text(web_req_t *r, int status, const char *content_type, char *text, size_t len);
/* Answers with bytes owned elsewhere (a cached answer): release(ctx) once
 * they have been sent or the request ends. */
void web_reply_shared(web_req_t *r, int status, const char *content_type, const char *data,
                      size_t len, void (*release)(void *ctx), void *ctx);
/* Media answers (files and bodies built on demand), with conditional and
 * range requests (web/range.c). */
/* Parses a Range header value against an entity of size bytes: 0 = no usable
 * range (serve whole: absent, not "bytes=", several ranges, syntax we do not
 * take), 1 = one range [*first, *last] (inclusive), -1 = unsatisfiable. */
int web_range_parse(const char *value, uint64_t size, uint64_t *first, uint64_t *last);
/* Conditional and range logic for an entity of size bytes with this strong
 * ETag (quoted, or NULL): answers 304 (If-None-Match) or 416 itself and
 * returns 0; otherwise sets ETag, Accept-Ranges and (206) Content-Range and
 * returns the status to answer (200 or 206) with the window
 * [*first, *first + *len). If-Range with another ETag serves the whole. */
int web_ranged(web_req_t *r, uint64_t size, const char *etag, uint64_t *first, uint64_t *len);
/* Answers len bytes of fd from offset with sendfile (no copy); takes the fd,
 * whatever happens. */
void web_reply_file(web_req_t *r, int status, const char *content_type, int fd, uint64_t offset,
                    uint64_t len);
/* Answers len bytes produced on demand: read(ctx, pos, buf, max) returns the
 * bytes written (> 0) or -1 on error (the connection is then cut, as the
 * length was promised); free_ctx(ctx) (may be NULL) once, at the end,
 * whatever happens. */
void web_reply_reader(web_req_t *r, int status, const char *content_type, uint64_t len,
                      web_read_fn read, void *ctx, void (*free_ctx)(void *ctx));
/* Answers a body of unknown length (chunked) produced as it comes:
 * read(ctx, pos, buf, max) returns bytes (> 0), 0 when it has none now
 * (the connection then waits, holding no thread, until web_stream_wake),
 * or -1 at the end. free_ctx(ctx) once, at the end, whatever happens;
 * after it returns nobody may call web_stream_wake with this waker. The
 * waker to give the producer is returned. */
web_waker_t *web_reply_stream(web_req_t *r, int status, const char *content_type,
                              web_read_fn read, void *ctx, void (*free_ctx)(void *ctx));
/* Bytes became readable (any thread). */
void web_stream_wake(void *waker);
/* Content-Disposition: attachment with this file name (RFC 6266: an ASCII
 * fallback and filename*=UTF-8''...). */
void web_reply_disposition(web_req_t *r, const char *filename);
/* The attachment name of a clip of a source, one style for every clip
 * route (README "Clips"): SOURCE_FROM_TO.EXT, the times UTC in compact
 * ISO 8601 (20261202T101500Z). */
void web_reply_clip_disposition(web_req_t *r, const char *source, int64_t from_us, int64_t to_us,
                                const char *ext);

__attribute__((format(printf, 4, 5)))
void web_reply_error(web_req_t *r, int status, const char *code, const char *fmt, ...);
void web_reply_err(web_req_t *r, const web_error_t *err);

/* Queues an audit row for this request (committed before the answer). */
void web_audit(web_req_t *r, const char *action, const char *object, int64_t from_us,
               int64_t to_us, const char *result, const char *detail);
/* An audit row with an explicit actor (login, before a principal exists). */
void web_audit_as(web_req_t *r, const char *actor, const char *action, const char *object,
                  int64_t from_us, int64_t to_us, const char *result, const char *detail);

struct sockaddr;
/* 1 for an address only this host reaches (127.0.0.0/8, ::1, ::ffff:127.x). */
int web_addr_loopback(const struct sockaddr *sa);

/* A request header (case-insensitive name), or NULL. */
const char *web_req_header(const web_req_t *r, const char *name);
/* The value of a cookie the request carries, or NULL. */
const char *web_req_cookie(web_req_t *r, const char *name);

/* Runs one request given whole through what follows reading it off a
 * connection: routing, authentication, body parsing, the handler, the audit
 * commit and serialization, on the server's index pool and auditor. For the
 * fuzz target (tests/fuzz/fuzz_request.c), which has no socket to speak
 * through. The answer's status and bytes go to *status, *payload (malloc'd,
 * the caller frees) and *len. */
void web_dispatch(web_t *w, const char *method, const char *uri, const web_header_t *hdrs,
                  size_t n_hdrs, const char *ip, const char *body, size_t body_len, int *status,
                  char **payload, size_t *len);

/* Fills row for this request without queueing it (actor NULL: the caller,
 * or "anonymous"). */
void web_audit_row(web_req_t *r, idx_audit_t *row, const char *actor, const char *action,
                   const char *object, int64_t from_us, int64_t to_us, const char *result,
                   const char *detail);
/* Opening a recording or a call: reads the reason (query reason= or header
 * X-Access-Reason) into r->access_reason. With [server]
 * require_access_reason = yes a missing one answers 400 reason_required;
 * one with control characters or over 150 bytes is a 400 either way.
 * Returns 1 to go on, 0 when answered. */
int web_access_reason(web_req_t *r);
/* A change (user, token, hold, keep_days, session) with its audit row in one
 * transaction (idx_audited_change): when the row cannot be written nothing
 * changes and this answers 500 audit_failed, with no Set-Cookie. Returns the
 * change's code (VG_EAUDIT: already answered); the caller answers the rest. */
int web_change(web_req_t *r, idx_change_fn change, void *arg, idx_audit_t *row);
/* web_change for routes that take many changes a second (PBX events): the
 * change and its row join the group commit (audit.c) in a savepoint of their
 * own, the connection suspended meanwhile; durable before any answer all the
 * same. Check the input before: nothing here can answer 400. The request
 * owns arg (change_free(arg) when it ends, NULL: nothing). Once committed,
 * done(r, rc) runs on the request's thread with the change's code (or the
 * commit's error) and answers; r->idx is NULL then (read what the answer
 * needs inside the change). VG_EAUDIT is answered as web_change does and
 * done is not called. The handler returns right after this call. */
void web_change_queued(web_req_t *r, idx_change_fn change, void *arg,
                       void (*change_free)(void *arg), const idx_audit_t *row,
                       void (*done)(web_req_t *r, int rc));

/* Work too slow for one of libmicrohttpd's few threads (a WHEP offer waits
 * up to 5 s for ICE gathering): the handler calls this and returns without
 * answering. work(arg) then runs on a thread of its own with the
 * connection suspended, and finish(r, arg) on a request thread answers
 * (r->idx is NULL then; audit rows it adds are committed before the answer
 * leaves, as usual). free_arg(arg) (may be NULL) once, when the request
 * ends, whether work ran or not. At most WEB_MAX_DEFERRED run at once:
 * past that this answers 503 busy itself (work and finish never run). */
#define WEB_MAX_DEFERRED 32
void web_defer(web_req_t *r, void (*work)(void *arg), void (*finish)(web_req_t *r, void *arg),
               void *arg, void (*free_arg)(void *arg));

/* Parses r's body against fields; answers 400/413/415 and returns NULL when
 * it does not fit. */
json_t *web_req_body(web_req_t *r, const web_field_t *fields);
/* from/to from the query: defaults when absent; answers 400 and returns
 * VG_EINVAL when malformed or inverted. */
int web_req_range(web_req_t *r, int64_t def_from, int64_t def_to, int64_t *from, int64_t *to);

/* ---- aggregate.c: one audit row per viewing, not per request ----
 * For requests that continue a range already audited once (the media byte
 * ranges a player fetches after its playlist, thumbnails, waveform peaks,
 * Range continuations of a download): counts the request instead of
 * writing a row. One row per (actor, source, action, minute) is written when
 * the minute closes (and at shutdown), its from/to the hull and its detail
 * "count=N ranges=FROM-TO,..." the union of the ranges (µs) and the number
 * of requests. No I/O here; memory is bounded (overflow shares an "(other)"
 * bucket per action). */
void web_audit_aggregated(web_req_t *r, const char *action, const char *source, int64_t from_us,
                          int64_t to_us);
/* The audit of one request for a byte range of a recording (a download, a
 * WAV): the opening request (first == 0) writes its own row (action, object,
 * detail), and so does a continuation (first > 0) unless the same actor's
 * opening of the same object and range is on record from the last 10
 * minutes; only then is it counted (web_audit_aggregated, as source). A
 * Range request made first must not pass with a row that lacks its object. */
void web_audit_ranged(web_req_t *r, uint64_t first, const char *action, const char *object,
                      const char *source, int64_t from_us, int64_t to_us, const char *detail);
/* Called once the request's rows are committed: remembers its opening. */
void web_audit_opened(web_req_t *r);
int web_aggregator_open(const char *db_path, const vg_clock_t *clock, web_aggregator_t **out);
/* Writes the buckets of closed minutes (all: every one) now. */
int web_aggregator_flush(web_aggregator_t *a, int all);
void web_aggregator_close(web_aggregator_t *a);

/* ---- routes_playback.c: HLS playlists, stored media, the timeline ---- */

/* The named source (r->params[0]) if the caller may see and read it; else
 * NULL with the answer set (404 for unknown and invisible alike, 403
 * without the permission for its kind), as the other source routes do. */
const char *web_readable_source(web_req_t *r, const char *action, char *kind, size_t size);
void web_h_playlist(web_req_t *r);
void web_h_media(web_req_t *r);
void web_h_timeline_all(web_req_t *r);

/* auth.c */
/* Resolves the caller from a Bearer token or session cookie. VG_OK with
 * r->who set; otherwise the 401/403 answer and audit row are in r. */
int web_auth_request(web_req_t *r, const web_route_t *route);
/* Counts one answered request (route NULL: matched none). */
void web_count_request(struct web *w, const web_route_t *route, int status);
/* Whether the caller may see this source at all (kind and account list). */
int web_source_visible(const web_principal_t *who, const char *name, const char *kind);
int web_has(const web_principal_t *who, unsigned perms_any);
void web_login(web_req_t *r);
void web_logout(web_req_t *r);
/* The body of GET /me and of a successful login. */
json_t *web_me_json(const web_principal_t *who);
int web_hash_begin(struct web *w);
void web_hash_end(struct web *w);

/* audit.c: group commit of audit rows on a dedicated connection. */
int web_auditor_start(const char *db_path, web_auditor_t **out);
/* Queues t; t->done is called once its rows are committed together with
 * whatever else is queued (at once with VG_ESTOPPED when stopping). */
void web_auditor_submit(web_auditor_t *a, web_ticket_t *t);
void web_auditor_stop(web_auditor_t *a);
/* Queues a copy of row for the group commit with nobody waiting on it (the
 * end of a viewing, an answer cut because its access ended): the row is
 * committed after whatever it records; a failure is logged. */
void web_audit_detached(struct web *w, const idx_audit_t *row);

/* A growing text buffer for answers built by hand on hot routes (no
 * per-value allocations, unlike a jansson tree). */
typedef struct {
    char *p;
    size_t len, cap;
} web_buf_t;

__attribute__((format(printf, 2, 3)))
void web_buf_printf(web_buf_t *b, const char *fmt, ...);
void web_buf_lit(web_buf_t *b, const char *text, size_t len);
#define WEB_BUF_LIT(b, s) web_buf_lit((b), (s), sizeof(s) - 1)
void web_buf_i64(web_buf_t *b, int64_t v);
/* Appends s as a JSON string, quoted and escaped. */
void web_buf_json_str(web_buf_t *b, const char *s);
/* Appends a time as a JSON string ("...Z"), or null for 0. */
void web_buf_json_time(web_buf_t *b, int64_t us);

/* JSON helpers */
json_t *web_time_json(int64_t us);
/* A JSON string of text that may not be UTF-8 (a client's bytes, a row
 * written from a command line or by an older version): invalid bytes become
 * U+FFFD where jansson would refuse the whole value. NULL: null. */
json_t *web_json_text(const char *s);
const char *web_source_kind(const vg_config_t *cfg, idx_t *idx, const char *name, char *buf,
                            size_t size);

/* ---- ui.c: the browser UI's files ---- */

/* Finds the UI directory and hashes its files into w->ui_version. A
 * missing directory is not an error: only the API is served. */
int web_ui_init(struct web *w);
void web_ui_free(struct web *w);
/* Answers a GET/HEAD outside /api with the shell or a file; 0 when the
 * target is neither (the caller answers 404). */
int web_ui_serve(web_req_t *r);

/* routes_ui.c: what the UI needs beside the API proper (README "Browser UI") */
const char *web_ui_language(const char *accept_language);
void web_h_ui(web_req_t *r);

/* routes_media.c: audio (WAV, peaks) and snapshots of a source */
void web_h_audio_wav(web_req_t *r);
void web_h_clip_wav(web_req_t *r);
void web_h_peaks(web_req_t *r);
void web_h_snapshot(web_req_t *r);
/* The WAV and the peaks of [from, to) of source name, checks made: for the
 * call routes. The WAV's first byte range writes the row (action, object),
 * its continuations and the peaks are aggregated (aggregate.c). */
void web_wav_serve(web_req_t *r, const char *name, int64_t from, int64_t to, const char *action,
                   const char *object, int attachment);
void web_peaks_serve(web_req_t *r, const char *name, int64_t from, int64_t to, const char *action);
void web_h_language(web_req_t *r);
void web_h_language_set(web_req_t *r);
/* routes_ui.c: GET/PUT /api/v1/me/prefs/{key}, the account's UI
 * preferences (a JSON value of at most WEB_PREF_MAX bytes per key) */
#define WEB_PREF_MAX 4096
void web_h_pref(web_req_t *r);
void web_h_pref_set(web_req_t *r);

/* ---- routes_admin.c: the handlers routes.c lists for storage, holds,
 * accounts, tokens and the audit trail ---- */

void web_h_storage(web_req_t *r);
void web_h_holds(web_req_t *r);
void web_h_hold_add(web_req_t *r);
void web_h_hold_release(web_req_t *r);
void web_h_destruction_log(web_req_t *r);
void web_h_users(web_req_t *r);
void web_h_user_add(web_req_t *r);
void web_h_user_patch(web_req_t *r);
void web_h_user_delete(web_req_t *r);
void web_h_tokens(web_req_t *r);
void web_h_token_add(web_req_t *r);
void web_h_token_revoke(web_req_t *r);
void web_h_audit(web_req_t *r);
void web_h_audit_verify(web_req_t *r);
void web_h_audit_checkpoints(web_req_t *r);

/* routes_clip.c: progressive clips of a range */
void web_h_clip_mp4(web_req_t *r);
void web_h_clip_mov(web_req_t *r);
void web_h_clip_mkv(web_req_t *r);
/* ---- routes_calls.c: calls, desks, CDR import, subject-access requests ---- */

void web_h_calls(web_req_t *r);
void web_h_call_add(web_req_t *r);
void web_h_call_import(web_req_t *r);
void web_h_call(web_req_t *r);
void web_h_call_patch(web_req_t *r);
void web_h_call_audio(web_req_t *r);
void web_h_call_peaks(web_req_t *r);
void web_h_desks(web_req_t *r);
void web_h_source_calls(web_req_t *r);
void web_h_subject_request(web_req_t *r);

/* ---- routes_export.c: evidence export jobs (playback/exporter.c) ---- */

void web_h_exports(web_req_t *r);
void web_h_export_add(web_req_t *r);
void web_h_export_get(web_req_t *r);
void web_h_export_download(web_req_t *r);
void web_h_export_delete(web_req_t *r);

/* ---- routes_qa.c: QA forms, evaluations, call-quality reports ---- */

void web_h_qa_forms(web_req_t *r);
void web_h_qa_form_add(web_req_t *r);
void web_h_qa_form_get(web_req_t *r);
void web_h_qa_form_put(web_req_t *r);
void web_h_qa_evals(web_req_t *r);
void web_h_qa_eval_add(web_req_t *r);
void web_h_qa_eval_get(web_req_t *r);
void web_h_qa_eval_correct(web_req_t *r);
void web_h_report_qa(web_req_t *r);
void web_h_report_qa_calibration(web_req_t *r);
void web_h_report_announcement(web_req_t *r);
void web_h_report_announcement_missing(web_req_t *r);
void web_h_report_announcement_disagreements(web_req_t *r);
/* ---- routes_live.c: browser live view (live/) ---- */

void web_h_whep_offer(web_req_t *r);
void web_h_whep_delete(web_req_t *r);
void web_h_live_mp4(web_req_t *r);
void web_h_live(web_req_t *r);
/* The "live" member of GET /api/v1/sources/{name}. */
json_t *web_live_source_json(web_req_t *r, const char *name);

/* ---- import.c: a CDR import's body streamed into a worker thread ---- */

typedef struct web_import web_import_t;
/* Starts the import of r's body (r's config, zone and clock; utc as in
 * call_import_begin) on a thread of its own with its own index connection. */
int web_import_open(web_req_t *r, int utc, web_import_t **out);
/* Takes what fits of a piece of the body and returns how much; when that
 * is not all of it, the connection is suspended until the worker makes
 * room (libmicrohttpd then offers the rest again). */
size_t web_import_push(web_import_t *k, const char *data, size_t size);
/* The body is complete: 1 when the import is finished, else 0 with the
 * connection suspended until it is. */
int web_import_finish(web_import_t *k);
/* A finished import's code, and its report when VG_OK. */
int web_import_result(web_import_t *k, call_import_report_t *rep);
/* Stops an unfinished import (its open batch rolled back) and frees it. */
void web_import_free(web_import_t *k);
/* routes_calls.c: checks the import's query and headers on its first body
 * piece and starts r->import, or answers (the rest of the body is then
 * not kept). */
void web_call_import_start(web_req_t *r);
/* server.c: lets the next WEB_ROUTE_CSV request in (r's import is over). */
void web_csv_release(web_req_t *r);

#endif
