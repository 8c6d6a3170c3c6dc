/* Check suite for web/: the server runs in-process on 127.0.0.1 (port 0)
 * against a temp index, with an injected clock, and is driven over real
 * sockets by a tiny HTTP/1.1 client. Covers the route table for every role,
 * the audit row each call leaves, the hash chain and tamper detection,
 * session expiry, CSRF, login throttling, token scopes and revocation, and
 * bad input. TLS and load are in tests/integration_web.py. */
#include "web/web.h"
#include "web/web_private.h"
#include "core/errors.h"
#include "core/util.h"
#include "index/index.h"

#include <arpa/inet.h>
#include <check.h>
#include <jansson.h>
#include <pthread.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MIN_US (60LL * 1000000)
#define T0 (1795000000LL * 1000000) /* 2026-11-18 */
#define PW "correct-horse-1"

static int64_t fake_now;
static int64_t fake_wall(void *ctx) { (void)ctx; return fake_now; }
static int64_t fake_mono(void *ctx) { (void)ctx; return fake_now; }
static const vg_clock_t fake_clock = {fake_wall, fake_mono, NULL};

static char dir[64];
static char db_path[128];
static vg_config_t cfg;
static web_t *web;
static int port;
static idx_t *idx; /* the test's own connection */

typedef struct {
    int status;
    char *raw;
    const char *body;
    json_t *json;
    char cookie[128];
    char retry_after[16];
} resp_t;

static void resp_free(resp_t *r)
{
    json_decref(r->json);
    free(r->raw);
    memset(r, 0, sizeof(*r));
}

static void header_value(const char *head, const char *name, char *out, size_t size)
{
    out[0] = '\0';
    size_t n = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':') {
            const char *v = p + 3 + n;
            while (*v == ' ')
                v++;
            size_t k = strcspn(v, ";\r");
            snprintf(out, size, "%.*s", (int)(k < size ? k : size - 1), v);
            return;
        }
    }
}

/* Sends a whole request on a fresh connection and reads the answer. */
static void http_raw(const char *req, size_t req_len, resp_t *out)
{
    memset(out, 0, sizeof(*out));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(vg_write_all(fd, req, req_len), VG_OK);
    size_t len = 0, cap = 4096;
    char *buf = vg_malloc(cap);
    ssize_t k;
    while ((k = read(fd, buf + len, cap - len - 1)) > 0) {
        len += (size_t)k;
        if (cap - len < 2048)
            buf = vg_realloc(buf, cap *= 2);
    }
    close(fd);
    buf[len] = '\0';
    out->raw = buf;
    ck_assert_msg(sscanf(buf, "HTTP/1.1 %d", &out->status) == 1, "no status line: %s", buf);
    char *sep = strstr(buf, "\r\n\r\n");
    ck_assert_ptr_nonnull(sep);
    *sep = '\0';
    out->body = sep + 4;
    header_value(buf, "Set-Cookie", out->cookie, sizeof(out->cookie));
    header_value(buf, "Retry-After", out->retry_after, sizeof(out->retry_after));
    out->json = json_loads(out->body, 0, NULL);
}

/* One request. extra: more header lines ("A: b\r\n"). */
static void http(const char *method, const char *path, const char *extra, const char *body,
                 resp_t *out)
{
    char *req = vg_asprintf("%s %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s%s"
                            "Content-Length: %zu\r\n\r\n%s",
                            method, path, extra ? extra : "",
                            body ? "Content-Type: application/json\r\n" : "",
                            body ? strlen(body) : 0, body ? body : "");
    http_raw(req, strlen(req), out);
    free(req);
}

/* Asks as a principal: "" anonymous, "tok:SECRET", or a session cookie. */
static int ask(const char *who, const char *method, const char *path, const char *body,
               resp_t *out)
{
    char extra[512] = "";
    if (strncmp(who, "tok:", 4) == 0)
        snprintf(extra, sizeof(extra), "Authorization: Bearer %s\r\n", who + 4);
    else if (*who)
        snprintf(extra, sizeof(extra), "Cookie: %s\r\nX-Requested-With: vigil\r\n", who);
    http(method, path, extra, body, out);
    return out->status;
}

static int status_of(const char *who, const char *method, const char *path, const char *body)
{
    resp_t r;
    int s = ask(who, method, path, body, &r);
    resp_free(&r);
    return s;
}

static const char *error_code(const resp_t *r)
{
    json_t *e = json_object_get(r->json, "error");
    return e ? json_string_value(json_object_get(e, "code")) : "";
}

static void add_user(const char *name, const char *role, const char *sources)
{
    idx_account_t a = {0};
    snprintf(a.name, sizeof(a.name), "%s", name);
    snprintf(a.role, sizeof(a.role), "%s", role);
    ck_assert_int_eq(web_password_hash(PW, a.pwhash), VG_OK);
    a.all_sources = sources == NULL;
    const char *list[1] = {sources};
    ck_assert_int_eq(idx_account_add(idx, &a, list, sources ? 1 : 0), VG_OK);
}

/* Logs in; the cookie ("vigil_session=...") goes into out. */
static void login(const char *name, char *out, size_t size)
{
    char body[128];
    resp_t r;
    snprintf(body, sizeof(body), "{\"user\":\"%s\",\"password\":\"" PW "\"}", name);
    http("POST", "/api/v1/login", NULL, body, &r);
    ck_assert_msg(r.status == 200, "login %s: %d %s", name, r.status, r.body);
    snprintf(out, size, "%s", r.cookie);
    resp_free(&r);
}

static void add_segment(const char *source, int64_t start, int64_t len)
{
    idx_segment_t s = {0};
    snprintf(s.source, sizeof(s.source), "%s", source);
    s.start_us = start;
    s.end_us = start + len;
    s.media_us = len;
    s.bytes = 1000;
    memset(s.sha256, 'a', 64);
    snprintf(s.codecs, sizeof(s.codecs), "h264");
    snprintf(s.path, sizeof(s.path), "%s/%lld.mp4", source, (long long)start);
    ck_assert_int_eq(idx_segment_insert(idx, &s), VG_OK);
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/vigil-test-web-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char *conf = vg_asprintf("%s/vigil.conf", dir);
    FILE *f = fopen(conf, "w");
    fprintf(f, "[server]\ndata_dir = %s\n[source cam1]\nurl = rtsp://x/1\n"
               "[source cam2]\nurl = rtsp://x/2\n[source line1]\nurl = rtsp://x/3\nkind = audio\n",
            dir);
    fclose(f);
    char err[256];
    ck_assert_int_eq(vg_config_load(conf, &cfg, err, sizeof(err)), VG_OK);
    free(conf);
    snprintf(db_path, sizeof(db_path), "%s/index.db", dir);
    ck_assert_int_eq(idx_open(db_path, 0, &idx), VG_OK);
    ck_assert_int_eq(idx_source_register(idx, "cam1", "video"), VG_OK);
    ck_assert_int_eq(idx_source_register(idx, "cam2", "video"), VG_OK);
    ck_assert_int_eq(idx_source_register(idx, "line1", "audio"), VG_OK);
    fake_now = T0;
    for (int i = 0; i < 5; i++) {
        add_segment("cam1", T0 - 3600 * 1000000LL + i * MIN_US, MIN_US);
        add_segment("cam2", T0 - 3600 * 1000000LL + i * MIN_US, MIN_US);
        add_segment("line1", T0 - 3600 * 1000000LL + i * 2 * MIN_US, MIN_US); /* gaps */
    }
    web_config_t wc = {.cfg = &cfg, .data_dir = dir, .clock = &fake_clock,
                       .listen = "127.0.0.1:0"};
    ck_assert_int_eq(web_start(&wc, &web), VG_OK);
    port = web_bound_port(web);
    ck_assert_int_gt(port, 0);
}

static void teardown(void)
{
    web_stop(web);
    web = NULL;
    idx_close(idx);
    idx = NULL;
    vg_config_free(&cfg);
    char *cmd = vg_asprintf("rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(cmd);
}

static int64_t audit_max_id(void)
{
    idx_audit_filter_t f = {.from_us = 0, .to_us = INT64_MAX};
    idx_audit_t *rows = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_audit_list(idx, &f, &rows, &n), VG_OK);
    int64_t id = n ? rows[n - 1].id : 0;
    free(rows);
    return id;
}

/* The rows written after id: exactly one is expected per audited call. */
static int audit_rows_after(int64_t after, idx_audit_t *last)
{
    /* Refused requests are counted per minute; close it now, as at stop. */
    ck_assert_int_eq(idx_denials_flush(web->denials, 1), VG_OK);
    idx_audit_filter_t f = {.from_us = 0, .to_us = INT64_MAX, .after_id = after};
    idx_audit_t *rows = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_audit_list(idx, &f, &rows, &n), VG_OK);
    if (n)
        *last = rows[n - 1];
    free(rows);
    return (int)n;
}

/* ---- the route table ---- */

enum { P_ANON, P_SEC, P_AUD, P_INV, P_LIM, P_OFF, P_ADMIN, P_N };

typedef struct {
    const char *method, *path, *body;
    int status[P_N];
    const char *action; /* audit action on success; NULL: none */
} route_case_t;

#define RANGE "?from=2026-11-18T07:00:00Z&to=1795000000"
static const route_case_t cases[] = {
    {"GET", "/healthz", NULL, {200, 200, 200, 200, 200, 200, 200}, NULL},
    {"GET", "/api/v1/me", NULL, {401, 200, 200, 200, 200, 200, 200}, NULL},
    /* loopback callers may read metrics (metrics_access = loopback); no provider here */
    {"GET", "/metrics", NULL, {404, 404, 404, 404, 404, 404, 404}, NULL},
    {"GET", "/api/v1/sources", NULL, {401, 200, 200, 200, 200, 403, 200}, NULL},
    {"GET", "/api/v1/sources/cam2", NULL, {401, 200, 200, 200, 404, 403, 200}, NULL},
    {"GET", "/api/v1/sources/cam2/segments" RANGE, NULL, {401, 200, 200, 200, 404, 403, 200},
     "segments.read"},
    {"GET", "/api/v1/sources/line1/timeline" RANGE, NULL, {401, 404, 200, 200, 404, 403, 200},
     "timeline.read"},
    {"PATCH", "/api/v1/sources/cam1", "{\"keep_days\":90}", {401, 403, 403, 403, 403, 403, 200},
     "source.update"},
    {"GET", "/api/v1/storage", NULL, {401, 403, 403, 403, 403, 403, 200}, NULL},
    {"GET", "/api/v1/holds", NULL, {401, 403, 403, 200, 200, 403, 200}, NULL},
    {"POST", "/api/v1/holds",
     "{\"case\":\"C-1\",\"reason\":\"complaint\",\"sources\":[\"cam1\"],"
     "\"from\":\"2026-11-18T07:00:00Z\",\"to\":1795000000}",
     {401, 403, 403, 201, 201, 403, 201}, "hold.create"},
    {"POST", "/api/v1/holds/1/release", "{\"reason\":\"closed\"}",
     {401, 403, 403, 200, 409, 403, 409}, "hold.release"},
    {"GET", "/api/v1/destruction-log", NULL, {401, 403, 403, 403, 403, 200, 200}, NULL},
    {"GET", "/api/v1/users", NULL, {401, 403, 403, 403, 403, 403, 200}, NULL},
    {"POST", "/api/v1/users",
     "{\"name\":\"newbie\",\"role\":\"auditor\",\"password\":\"0123456789\",\"sources\":[\"cam2\"]}",
     {401, 403, 403, 403, 403, 403, 201}, "user.create"},
    {"PATCH", "/api/v1/users/newbie", "{\"sources\":null,\"role\":\"security\"}",
     {401, 403, 403, 403, 403, 403, 200}, "user.update"},
    {"DELETE", "/api/v1/users/newbie", NULL, {401, 403, 403, 403, 403, 403, 200}, "user.delete"},
    {"GET", "/api/v1/tokens", NULL, {401, 403, 403, 403, 403, 403, 200}, NULL},
    {"POST", "/api/v1/tokens", "{\"name\":\"pbx\",\"permissions\":[\"calls\"]}",
     {401, 403, 403, 403, 403, 403, 201}, "token.create"},
    {"DELETE", "/api/v1/tokens/1", NULL, {401, 403, 403, 403, 403, 403, 200}, "token.revoke"},
    {"GET", "/api/v1/audit?action=login&format=csv", NULL, {401, 403, 403, 403, 403, 200, 200},
     "audit.read"},
    {"GET", "/api/v1/audit/verify", NULL, {401, 403, 403, 403, 403, 200, 200}, "audit.verify"},
    {"GET", "/api/v1/audit/checkpoints?after=0", NULL, {401, 403, 403, 403, 403, 200, 200},
     "audit.checkpoints"},
};

static void check_audit(const route_case_t *c, int p, int status, int64_t before)
{
    idx_audit_t last;
    int n = audit_rows_after(before, &last);
    if (status == 401 || status == 403) {
        ck_assert_msg(n == 1 && strcmp(last.result, "denied") == 0,
                      "%s %s as %d: %d -> %d audit rows", c->method, c->path, p, status, n);
    } else if (status == 404 && strstr(c->path, "/sources/")) {
        /* a source hidden from the account: its denial is on record */
        ck_assert_msg(n == 1 && strcmp(last.result, "denied") == 0 &&
                          strcmp(last.action, c->action ? c->action : "source.read") == 0,
                      "%s %s as %d: no denial row", c->method, c->path, p);
    } else if (status < 300 && c->action) {
        ck_assert_msg(n == 1 && strcmp(last.action, c->action) == 0 &&
                          strcmp(last.result, "ok") == 0 && strcmp(last.actor, "anonymous") != 0,
                      "%s %s as %d: expected one '%s' row, got %d", c->method, c->path, p,
                      c->action, n);
    } else if (status < 300) {
        ck_assert_msg(n == 0, "%s %s as %d: unexpected audit row", c->method, c->path, p);
    }
}

START_TEST(test_route_table)
{
    char who[P_N][160] = {""};
    add_user("sec", "security", NULL);
    add_user("aud", "auditor", NULL);
    add_user("inv", "investigator", NULL);
    add_user("lim", "investigator", "cam1");
    add_user("off", "officer", NULL);
    add_user("adm", "admin", NULL);
    const char *names[P_N] = {NULL, "sec", "aud", "inv", "lim", "off", "adm"};
    for (int p = P_SEC; p < P_N; p++)
        login(names[p], who[p], sizeof(who[p]));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (int p = 0; p < P_N; p++) {
            const route_case_t *c = &cases[i];
            int64_t before = audit_max_id();
            resp_t r;
            if (p == P_ANON)
                fake_now += 1000000; /* refused requests from one address are rate-limited */
            int s = ask(who[p], c->method, c->path, c->body, &r);
            ck_assert_msg(s == c->status[p], "%s %s as %s: %d, expected %d: %s", c->method,
                          c->path, names[p] ? names[p] : "anonymous", s, c->status[p], r.body);
            if (s == 200 && strstr(c->path, "format=csv"))
                ck_assert_msg(strncmp(r.body, "\"id\",\"ts\"", 9) == 0, "csv: %s", r.body);
            else
                ck_assert_msg(r.json != NULL, "%s %s: not JSON: %s", c->method, c->path, r.body);
            if (s >= 400)
                ck_assert_str_ne(error_code(&r), "");
            resp_free(&r);
            check_audit(c, p, s, before);
        }
    }
    /* what a restricted account sees */
    resp_t r;
    ck_assert_int_eq(ask(who[P_LIM], "GET", "/api/v1/sources", NULL, &r), 200);
    ck_assert_int_eq(json_array_size(json_object_get(r.json, "sources")), 1);
    resp_free(&r);
    ck_assert_int_eq(ask(who[P_SEC], "GET", "/api/v1/sources", NULL, &r), 200);
    ck_assert_int_eq(json_array_size(json_object_get(r.json, "sources")), 2); /* no audio */
    resp_free(&r);
    /* the override persists and wins over the config */
    int days = 0;
    ck_assert_int_eq(idx_keep_days_override(idx, "cam1", &days), VG_OK);
    ck_assert_int_eq(days, 90);
    ck_assert_int_eq(ask(who[P_ADMIN], "GET", "/api/v1/sources/cam1", NULL, &r), 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "keep_days_from")), "override");
    resp_free(&r);
    /* timeline: line1 has gaps, so five spans */
    ck_assert_int_eq(ask(who[P_AUD], "GET", "/api/v1/sources/line1/timeline" RANGE, NULL, &r),
                     200);
    ck_assert_int_eq(json_array_size(json_object_get(r.json, "spans")), 5);
    resp_free(&r);
    ck_assert_int_eq(ask(who[P_AUD], "GET", "/api/v1/sources/cam2/timeline" RANGE, NULL, &r), 200);
    ck_assert_int_eq(json_array_size(json_object_get(r.json, "spans")), 1);
    resp_free(&r);
}
END_TEST

static size_t listed(const char *who, const char *route)
{
    char path[160];
    resp_t r;
    snprintf(path, sizeof(path), "/api/v1/sources/cam2/%s" RANGE, route);
    ck_assert_int_eq(ask(who, "GET", path, NULL, &r), 200);
    size_t n = json_array_size(json_object_get(r.json, strcmp(route, "timeline") == 0 ? "spans"
                                                                                     : "segments"));
    resp_free(&r);
    return n;
}

/* Answers come from the cache only while the source is unchanged; every
 * request is still checked and audited. */
START_TEST(test_cached_answers_follow_the_index)
{
    add_user("inv", "investigator", NULL);
    add_user("lim", "investigator", "cam1");
    char c[160], lim[160];
    login("inv", c, sizeof(c));
    login("lim", lim, sizeof(lim));
    ck_assert_uint_eq(listed(c, "segments"), 5);
    int64_t before = audit_max_id();
    ck_assert_uint_eq(listed(c, "segments"), 5); /* the cached answer */
    ck_assert_int_eq(audit_max_id(), before + 1);
    ck_assert_int_eq(status_of(lim, "GET", "/api/v1/sources/cam2/segments" RANGE, NULL), 404);
    /* a new row, then a gap-making one: both listings change */
    add_segment("cam2", T0 - 3600 * 1000000LL + 5 * MIN_US, MIN_US);
    ck_assert_uint_eq(listed(c, "segments"), 6);
    ck_assert_uint_eq(listed(c, "timeline"), 1);
    add_segment("cam2", T0 - 3600 * 1000000LL + 8 * MIN_US, MIN_US);
    ck_assert_uint_eq(listed(c, "timeline"), 2);
    /* rows marked for deletion leave the listing at once */
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(db, "UPDATE segment SET deleting = 1 WHERE source_id ="
                                      " (SELECT id FROM source WHERE name = 'cam2')"
                                      " AND start_us >= 1794996520000000", /* all but the first two */
                                  0, 0, 0),
                     SQLITE_OK);
    sqlite3_close(db);
    ck_assert_uint_eq(listed(c, "segments"), 2);
    ck_assert_uint_eq(listed(c, "timeline"), 1);
}
END_TEST

START_TEST(test_chain_and_tamper)
{
    add_user("adm", "admin", NULL);
    char c[160];
    login("adm", c, sizeof(c));
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(status_of(c, "GET", "/api/v1/sources/cam1/segments", NULL), 200);
    int64_t checked = 0, bad = -1;
    ck_assert_int_eq(idx_audit_verify(idx, &checked, &bad), VG_OK);
    ck_assert_int_eq(bad, 0);
    ck_assert_int_eq(checked, 6); /* login + 5 reads */
    /* No API or trigger lets a row change ... */
    sqlite3 *db;
    ck_assert_int_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    ck_assert_int_ne(sqlite3_exec(db, "UPDATE audit SET detail = 'x' WHERE id = 3", 0, 0, 0),
                     SQLITE_OK);
    ck_assert_int_ne(sqlite3_exec(db, "DELETE FROM audit WHERE id = 3", 0, 0, 0), SQLITE_OK);
    /* ... and an edit behind SQLite's back shows at that row. */
    ck_assert_int_eq(sqlite3_exec(db, "DROP TRIGGER audit_no_update;"
                                      "UPDATE audit SET detail = 'x' WHERE id = 4", 0, 0, 0),
                     SQLITE_OK);
    sqlite3_close(db);
    ck_assert_int_eq(idx_audit_verify(idx, &checked, &bad), VG_OK);
    ck_assert_int_eq(bad, 4);
    resp_t r;
    ck_assert_int_eq(ask(c, "GET", "/api/v1/audit/verify", NULL, &r), 200);
    ck_assert(json_is_false(json_object_get(r.json, "ok")));
    ck_assert_int_eq(json_integer_value(json_object_get(r.json, "first_bad_id")), 4);
    resp_free(&r);
}
END_TEST

START_TEST(test_session_expiry)
{
    add_user("sec", "security", NULL);
    char c[160];
    login("sec", c, sizeof(c));
    fake_now += 29 * MIN_US;
    ck_assert_int_eq(status_of(c, "GET", "/api/v1/me", NULL), 200);
    fake_now += 29 * MIN_US; /* 58 min after login, 29 after last use */
    ck_assert_int_eq(status_of(c, "GET", "/api/v1/me", NULL), 200);
    fake_now += 31 * MIN_US;
    ck_assert_int_eq(status_of(c, "GET", "/api/v1/me", NULL), 401);
    /* absolute limit: used every 25 minutes, still ends after 12 h */
    login("sec", c, sizeof(c));
    int64_t start = fake_now;
    while (fake_now - start + 25 * MIN_US <= 12 * 60 * MIN_US) {
        fake_now += 25 * MIN_US;
        ck_assert_int_eq(status_of(c, "GET", "/api/v1/me", NULL), 200);
    }
    fake_now = start + 12 * 60 * MIN_US + 1;
    ck_assert_int_eq(status_of(c, "GET", "/api/v1/me", NULL), 401);
    /* logout ends a session at once */
    login("sec", c, sizeof(c));
    ck_assert_int_eq(status_of(c, "POST", "/api/v1/logout", NULL), 200);
    ck_assert_int_eq(status_of(c, "GET", "/api/v1/me", NULL), 401);
}
END_TEST

START_TEST(test_login_cookie_and_csrf)
{
    add_user("adm", "admin", NULL);
    resp_t r;
    http("POST", "/api/v1/login", NULL, "{\"user\":\"adm\",\"password\":\"" PW "\"}", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.raw, "HttpOnly"));
    ck_assert_ptr_nonnull(strstr(r.raw, "SameSite=Strict"));
    ck_assert_ptr_null(strstr(r.raw, "Secure")); /* plain HTTP here */
    ck_assert_int_eq(strlen(r.cookie), strlen("vigil_session=") + 64);
    char cookie[160];
    snprintf(cookie, sizeof(cookie), "Cookie: %s\r\n", r.cookie);
    resp_free(&r);
    /* a state change over the cookie without the header: 403, audited */
    int64_t before = audit_max_id();
    http("POST", "/api/v1/tokens", cookie, "{\"name\":\"x\",\"permissions\":[\"live\"]}", &r);
    ck_assert_int_eq(r.status, 403);
    ck_assert_str_eq(error_code(&r), "csrf");
    resp_free(&r);
    idx_audit_t last;
    ck_assert_int_eq(audit_rows_after(before, &last), 1);
    ck_assert_str_eq(last.result, "denied");
    /* reads need no header */
    http("GET", "/api/v1/me", cookie, NULL, &r);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    /* a token needs none either: no browser sends it by itself */
    char secret[WEB_TOKEN_TEXT_MAX], tok[128];
    int64_t id;
    ck_assert_int_eq(web_token_create(idx, "ops", WEB_PERM_ADMIN, "test", T0, secret, &id), VG_OK);
    snprintf(tok, sizeof(tok), "tok:%s", secret);
    ck_assert_int_eq(status_of(tok, "POST", "/api/v1/tokens",
                               "{\"name\":\"y\",\"permissions\":[\"live\"]}"), 201);
}
END_TEST

START_TEST(test_login_throttling)
{
    add_user("sec", "security", NULL);
    add_user("aud", "auditor", NULL);
    resp_t r;
    for (int i = 0; i < 5; i++) {
        http("POST", "/api/v1/login", NULL, "{\"user\":\"sec\",\"password\":\"wrong-pass-1\"}", &r);
        ck_assert_int_eq(r.status, 401);
        ck_assert_str_eq(error_code(&r), "invalid_credentials");
        resp_free(&r);
        fake_now += MIN_US;
    }
    /* even the right password now waits */
    http("POST", "/api/v1/login", NULL, "{\"user\":\"sec\",\"password\":\"" PW "\"}", &r);
    ck_assert_int_eq(r.status, 429);
    ck_assert_int_gt(atoi(r.retry_after), 0);
    ck_assert_int_le(atoi(r.retry_after), 15 * 60);
    resp_free(&r);
    /* the same IP is throttled for other users too */
    http("POST", "/api/v1/login", NULL, "{\"user\":\"aud\",\"password\":\"" PW "\"}", &r);
    ck_assert_int_eq(r.status, 429);
    resp_free(&r);
    fake_now += 15 * MIN_US;
    char c[160];
    login("sec", c, sizeof(c));
    /* an unknown user counts as a failure, the same way */
    http("POST", "/api/v1/login", NULL, "{\"user\":\"nobody\",\"password\":\"whatever-1\"}", &r);
    ck_assert_int_eq(r.status, 401);
    resp_free(&r);
}
END_TEST

START_TEST(test_token_scopes_and_revocation)
{
    char secret[WEB_TOKEN_TEXT_MAX], tok[128];
    int64_t id;
    ck_assert_int_eq(web_token_create(idx, "pbx", WEB_PERM_CALLS, "test", T0, secret, &id), VG_OK);
    snprintf(tok, sizeof(tok), "tok:%s", secret);
    ck_assert_int_eq(status_of(tok, "GET", "/api/v1/sources/line1/segments", NULL), 200);
    ck_assert_int_eq(status_of(tok, "GET", "/api/v1/sources/cam1/segments", NULL), 404);
    ck_assert_int_eq(status_of(tok, "GET", "/api/v1/users", NULL), 403);
    ck_assert_int_eq(status_of(tok, "GET", "/api/v1/audit", NULL), 403);
    resp_t r;
    ck_assert_int_eq(ask(tok, "GET", "/api/v1/me", NULL, &r), 200);
    ck_assert_str_eq(json_string_value(json_object_get(r.json, "token")), "pbx");
    resp_free(&r);
    /* the secret itself is nowhere in the index */
    char *cmd = vg_asprintf("grep -qa %s %s/index.db*", secret + 4, dir);
    ck_assert_int_ne(system(cmd), 0);
    free(cmd);
    ck_assert_int_eq(idx_token_revoke(idx, id, T0), VG_OK);
    ck_assert_int_eq(status_of(tok, "GET", "/api/v1/sources/line1/segments", NULL), 401);
    ck_assert_int_eq(status_of("tok:vgt_nonsense", "GET", "/api/v1/me", NULL), 401);
    ck_assert_int_eq(status_of("tok:", "GET", "/api/v1/me", NULL), 401);
}
END_TEST

typedef struct {
    const char *method, *path, *body;
    int status;
    const char *code;
} bad_case_t;

static const bad_case_t bad_cases[] = {
    {"POST", "/api/v1/users", "{\"name\":", 400, "invalid_json"},
    {"POST", "/api/v1/users", "[1,2]", 400, "invalid_json"},
    {"POST", "/api/v1/users", "{\"name\":1,\"role\":\"admin\",\"password\":\"0123456789\"}", 400,
     "invalid_field"},
    {"POST", "/api/v1/users",
     "{\"name\":\"a\",\"role\":\"admin\",\"password\":\"0123456789\",\"x\":1}", 400,
     "unknown_field"},
    {"POST", "/api/v1/users", "{\"name\":\"a\",\"role\":\"admin\"}", 400, "missing_field"},
    {"POST", "/api/v1/users", "{\"name\":\"a\",\"role\":\"king\",\"password\":\"0123456789\"}",
     400, "invalid_field"},
    {"POST", "/api/v1/users", "{\"name\":\"a\",\"role\":\"admin\",\"password\":\"short\"}", 400,
     "weak_password"},
    {"POST", "/api/v1/users", "{\"name\":\"a\\u0000b\",\"role\":\"admin\",\"password\":\"0123456789\"}",
     400, "invalid_json"},
    {"POST", "/api/v1/users",
     "{\"name\":\"a\",\"role\":\"admin\",\"password\":\"0123456789\",\"sources\":[\"nope\"]}", 400,
     "unknown_source"},
    {"PATCH", "/api/v1/sources/cam1", "{\"keep_days\":59}", 400, "invalid_field"},
    {"PATCH", "/api/v1/sources/cam1", "{\"keep_days\":\"90\"}", 400, "invalid_field"},
    {"POST", "/api/v1/holds",
     "{\"case\":\"c\",\"reason\":\"r\",\"sources\":[\"cam1\"],\"from\":\"yesterday\",\"to\":1}",
     400, "invalid_time"},
    {"POST", "/api/v1/holds",
     "{\"case\":\"c\",\"reason\":\"r\",\"sources\":[\"cam1\"],\"from\":20,\"to\":10}", 400,
     "invalid_range"},
    {"GET", "/api/v1/sources/cam1/segments?from=noon", NULL, 400, "invalid_time"},
    {"GET", "/api/v1/sources/cam1/segments?from=2000&to=1000", NULL, 400, "invalid_range"},
    {"GET", "/api/v1/sources/cam1/segments?from=1&from=2", NULL, 400, "invalid_query"},
    {"GET", "/api/v1/sources/cam1/segments?limit=1", NULL, 400, "invalid_query"},
    {"GET", "/api/v1/sources/cam1/segments?from=%zz", NULL, 400, "invalid_query"},
    {"GET", "/api/v1/nothing", NULL, 404, "not_found"},
    {"GET", "/api/v1/sources/nope/segments", NULL, 404, "not_found"},
    {"DELETE", "/api/v1/sources", NULL, 405, "method_not_allowed"},
    {"GET", "/api/v1/sources/../users", NULL, 400, "bad_path"},
    {"GET", "/api/v1/sources/%2e%2e/users", NULL, 400, "bad_path"},
    {"GET", "/api/v1/sources/cam1%2fsegments", NULL, 400, "bad_path"},
    {"GET", "/api/v1/sources/cam1%00/segments", NULL, 400, "bad_path"},
    {"GET", "/api/v1//sources", NULL, 400, "bad_path"},
    {"GET", "/api/v1/users", "{}", 400, "unexpected_body"},
};

START_TEST(test_bad_input)
{
    add_user("adm", "admin", NULL);
    char c[160];
    login("adm", c, sizeof(c));
    int64_t before = audit_max_id();
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const bad_case_t *b = &bad_cases[i];
        resp_t r;
        ask(c, b->method, b->path, b->body, &r);
        ck_assert_msg(r.status == b->status && strcmp(error_code(&r), b->code) == 0,
                      "%s %s %s: %d %s", b->method, b->path, b->body ? b->body : "", r.status,
                      r.body);
        resp_free(&r);
    }
    /* an overlong target, and bodies over 1 MiB (declared or chunked) */
    char *path = vg_malloc(5000);
    memset(path, 'a', 4999);
    path[0] = '/';
    path[4999] = '\0';
    resp_t r;
    ask(c, "GET", path, NULL, &r);
    ck_assert_int_eq(r.status, 414);
    resp_free(&r);
    free(path);
    char extra[256];
    snprintf(extra, sizeof(extra), "Cookie: %s\r\nX-Requested-With: vigil\r\n"
                                   "Content-Length: 2000000\r\n", c);
    http("POST", "/api/v1/users", extra, NULL, &r);
    ck_assert_int_eq(r.status, 413);
    ck_assert_str_eq(error_code(&r), "body_too_large");
    resp_free(&r);
    /* chunked, so the size is only known while reading: read, then 413 */
    size_t big = 1024 * 1024 + 10;
    char *head = vg_asprintf("POST /api/v1/users HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                             "Cookie: %s\r\nX-Requested-With: vigil\r\n"
                             "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
                             "\r\n%zx\r\n", c, big);
    size_t hlen = strlen(head);
    char *req = vg_malloc(hlen + big + 16);
    memcpy(req, head, hlen);
    memset(req + hlen, ' ', big);
    req[hlen] = '{';
    req[hlen + big - 1] = '}';
    memcpy(req + hlen + big, "\r\n0\r\n\r\n", 7);
    http_raw(req, hlen + big + 7, &r);
    ck_assert_int_eq(r.status, 413);
    resp_free(&r);
    free(req);
    free(head);
    /* nothing was written: no audit row, no user */
    idx_audit_t last;
    ck_assert_int_eq(audit_rows_after(before, &last), 0);
    idx_account_t a;
    ck_assert_int_eq(idx_account_get(idx, "a", &a), VG_ENOTFOUND);
    int days = 0;
    ck_assert_int_eq(idx_keep_days_override(idx, "cam1", &days), VG_OK);
    ck_assert_int_eq(days, 0);
}
END_TEST

START_TEST(test_rules)
{
    unsigned p = 0;
    char text[128];
    ck_assert_int_eq(web_perms_parse("live,audit", &p), VG_OK);
    ck_assert_uint_eq(p, WEB_PERM_LIVE | WEB_PERM_AUDIT);
    web_perms_format(p, text, sizeof(text));
    ck_assert_str_eq(text, "live,audit");
    ck_assert_int_eq(web_perms_parse("live,,audit", &p), VG_EINVAL);
    ck_assert_int_eq(web_perms_parse("root", &p), VG_EINVAL);
    ck_assert_int_eq(web_role_perms("investigator", &p), VG_OK);
    ck_assert_uint_eq(p, WEB_PERM_PLAYBACK | WEB_PERM_CALLS | WEB_PERM_EXPORT | WEB_PERM_HOLD);
    ck_assert_int_eq(web_role_perms("officer", &p), VG_OK);
    ck_assert_uint_eq(p, WEB_PERM_AUDIT); /* reads the trail, sees no recordings */
    ck_assert_int_eq(web_role_perms("root", &p), VG_EINVAL);
    ck_assert(web_user_name_valid("ops.team-1"));
    ck_assert(!web_user_name_valid("Ops"));
    ck_assert(!web_user_name_valid("../x"));
    char hash[128];
    ck_assert_int_eq(web_password_hash("123456789", hash), VG_EINVAL);
    /* the fast time writer of the segment lists says what vg_time_format says */
    int64_t t = -86400LL * 365 * 1000000 - 123456;
    for (int i = 0; i < 200000; i++, t += 7919LL * 1000003 + i) {
        char ref[VG_TIME_TEXT_MAX + 2];
        web_buf_t b = {0};
        web_buf_json_time(&b, t);
        vg_time_format(t, ref + 1);
        ref[0] = '"';
        strcat(ref, "\"");
        ck_assert_msg(t == 0 || strcmp(b.p, ref) == 0, "%lld: %s vs %s", (long long)t, b.p, ref);
        free(b.p);
    }
    /* which listen addresses draw the warning about HTTP without TLS */
    static const struct { const char *ip; int loopback; } addrs[] = {
        {"127.0.0.1", 1}, {"127.45.6.7", 1}, {"::1", 1}, {"::ffff:127.0.0.1", 1},
        {"0.0.0.0", 0}, {"10.0.0.5", 0}, {"128.0.0.1", 0}, {"::", 0}, {"::ffff:10.0.0.1", 0},
        {"fe80::1", 0},
    };
    for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
        struct sockaddr_storage ss = {0};
        if (strchr(addrs[i].ip, ':')) {
            struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
            a6->sin6_family = AF_INET6;
            ck_assert_int_eq(inet_pton(AF_INET6, addrs[i].ip, &a6->sin6_addr), 1);
        } else {
            struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
            a4->sin_family = AF_INET;
            ck_assert_int_eq(inet_pton(AF_INET, addrs[i].ip, &a4->sin_addr), 1);
        }
        ck_assert_msg(web_addr_loopback((struct sockaddr *)&ss) == addrs[i].loopback, "%s",
                      addrs[i].ip);
    }
    web_buf_t b = {0};
    web_buf_json_time(&b, 951782400LL * 1000000 + 999999); /* 2000-02-29 */
    web_buf_i64(&b, -42);
    web_buf_json_str(&b, "a\"\\\x01");
    ck_assert_str_eq(b.p, "\"2000-02-29T00:00:00.999Z\"-42\"a\\\"\\\\\\u0001\"");
    free(b.p);
}
END_TEST

/* Rows whose action is action and detail starts with reason, and the sum
 * of their count=N. */
static int64_t denial_rows(int64_t after, const char *action, const char *reason, int *rows)
{
    idx_audit_filter_t f = {.from_us = 0, .to_us = INT64_MAX, .after_id = after};
    idx_audit_t *list = NULL;
    size_t n = 0;
    int64_t sum = 0;
    *rows = 0;
    ck_assert_int_eq(idx_audit_list(idx, &f, &list, &n), VG_OK);
    for (size_t i = 0; i < n; i++) {
        const char *c = strstr(list[i].detail, "count=");
        if (strcmp(list[i].action, action) == 0 &&
            strncmp(list[i].detail, reason, strlen(reason)) == 0 && c) {
            (*rows)++;
            sum += atoll(c + 6);
        }
    }
    free(list);
    return sum;
}

START_TEST(test_flood_aggregated_and_limited)
{
    char secret[WEB_TOKEN_TEXT_MAX], tok[128];
    int64_t id;
    ck_assert_int_eq(web_token_create(idx, "ops", WEB_PERM_ADMIN, "test", T0, secret, &id), VG_OK);
    snprintf(tok, sizeof(tok), "tok:%s", secret);
    int64_t before = audit_max_id();
    int n401 = 0, n429 = 0;
    for (int i = 0; i < 300; i++) {
        resp_t r;
        int s = ask(i % 2 ? "tok:vgt_not-a-token" : "", "GET", "/api/v1/sources", NULL, &r);
        if (s == 429) {
            n429++;
            ck_assert_str_eq(error_code(&r), "rate_limited");
            ck_assert_int_ge(atoi(r.retry_after), 1);
        } else {
            ck_assert_int_eq(s, 401);
            n401++;
        }
        resp_free(&r);
        /* a caller with valid credentials from the same address is not held up */
        if (i % 50 == 0)
            ck_assert_int_eq(status_of(tok, "GET", "/api/v1/me", NULL), 200);
    }
    ck_assert_int_eq(n401, (int)WEB_LIMIT_BURST);
    ck_assert_int_eq(n429, 300 - (int)WEB_LIMIT_BURST);
    /* nothing written while the minute is open */
    ck_assert_int_eq(audit_max_id(), before);
    /* once it closes (the writer thread, on the injected clock), a row per
     * address, actor and reason carries the count */
    fake_now += MIN_US;
    for (int tries = 0; audit_max_id() == before && tries < 500; tries++)
        usleep(10 * 1000);
    int rows = 0;
    ck_assert_int_eq(denial_rows(before, "access", "unauthenticated", &rows), WEB_LIMIT_BURST);
    ck_assert_int_le(rows, 2);
    ck_assert_int_eq(denial_rows(before, "access", "rate_limited", &rows), 300 - WEB_LIMIT_BURST);
    ck_assert_int_le(rows, 2);
    int64_t checked = 0, bad = 0;
    ck_assert_int_eq(idx_audit_verify(idx, &checked, &bad), VG_OK);
    ck_assert_int_eq(bad, 0);
    /* the refill lets the address try again */
    fake_now += 10 * 1000000;
    ck_assert_int_eq(status_of("", "GET", "/api/v1/sources", NULL), 401);
}
END_TEST

/* X-Forwarded-For counts only from a trusted proxy; addresses past the
 * aggregator's bound share one "other" row. */
START_TEST(test_forwarded_for_and_bound)
{
    char extra[128];
    resp_t r;
    int64_t before = audit_max_id();
    /* not trusted: the header is ignored, the peer is the address */
    for (int i = 0; i < 3; i++) {
        snprintf(extra, sizeof(extra), "X-Forwarded-For: 10.9.0.%d\r\n", i + 1);
        http("GET", "/api/v1/sources", extra, NULL, &r);
        ck_assert_int_eq(r.status, 401);
        resp_free(&r);
    }
    idx_audit_t last;
    ck_assert_int_eq(audit_rows_after(before, &last), 1);
    ck_assert_str_eq(last.ip, "127.0.0.1");
    ck_assert_ptr_nonnull(strstr(last.detail, "count=3"));
    /* trusted: each forwarded address has its own bucket and row */
    cfg.http.trusted_proxies = vg_strdup("127.0.0.1");
    before = audit_max_id();
    int n = IDX_DENIALS_MAX + 40;
    for (int i = 0; i < n; i++) {
        /* what the client itself wrote in front is not believed */
        snprintf(extra, sizeof(extra), "X-Forwarded-For: 1.2.3.4, 10.8.%d.%d\r\n", i / 200,
                 i % 200 + 1);
        http("GET", "/api/v1/sources", extra, NULL, &r);
        ck_assert_int_eq(r.status, 401);
        resp_free(&r);
    }
    idx_audit_filter_t f = {.from_us = 0, .to_us = INT64_MAX, .after_id = before};
    idx_audit_t *list = NULL;
    size_t k = 0;
    ck_assert_int_eq(idx_denials_flush(web->denials, 1), VG_OK);
    ck_assert_int_eq(idx_audit_list(idx, &f, &list, &k), VG_OK);
    ck_assert_uint_eq(k, IDX_DENIALS_MAX + 1);
    ck_assert_str_eq(list[0].ip, "10.8.0.1");
    ck_assert_str_eq(list[k - 1].ip, "other");
    ck_assert_ptr_nonnull(strstr(list[k - 1].detail, "count=40"));
    for (size_t i = 0; i < k; i++)
        ck_assert_ptr_null(strstr(list[i].ip, "1.2.3.4"));
    free(list);
    free(cfg.http.trusted_proxies);
    cfg.http.trusted_proxies = NULL;
}
END_TEST

/* Reads an answer with a deadline: VG_OK and its status, or VG_EIO. */
static int read_status(int fd, int timeout_ms, int *status)
{
    char buf[512];
    size_t len = 0;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (len < 13) {
        ssize_t k = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (k <= 0)
            return VG_EIO;
        len += (size_t)k;
    }
    buf[len] = '\0';
    return sscanf(buf, "HTTP/1.1 %d", status) == 1 ? VG_OK : VG_EINVAL;
}

START_TEST(test_no_body_before_auth)
{
    /* Headers announce 900 KB, none of it is sent: a caller without
     * credentials is answered at once, not after its body. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    const char *head = "POST /api/v1/users HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                       "Content-Length: 900000\r\n\r\n{\"name\":";
    ck_assert_int_eq(vg_write_all(fd, head, strlen(head)), VG_OK);
    int status = 0;
    ck_assert_int_eq(read_status(fd, 5000, &status), VG_OK);
    ck_assert_int_eq(status, 401);
    close(fd);
    /* with credentials, the body is read and the handler answers */
    add_user("adm", "admin", NULL);
    char c[160];
    login("adm", c, sizeof(c));
    resp_t r;
    ask(c, "POST", "/api/v1/users",
        "{\"name\":\"newbie\",\"role\":\"auditor\",\"password\":\"0123456789\"}", &r);
    ck_assert_int_eq(r.status, 201);
    resp_free(&r);
}
END_TEST

START_TEST(test_audit_paging)
{
    add_user("adm", "admin", NULL);
    char c[160];
    login("adm", c, sizeof(c));
    resp_t r;
    ck_assert_int_eq(ask(c, "GET", "/api/v1/audit?limit=10001", NULL, &r), 400);
    resp_free(&r);
    for (int i = 0; i < 6; i++) /* a row each */
        ck_assert_int_eq(status_of(c, "GET", "/api/v1/audit/verify", NULL), 200);
    /* pages of 2 rows walk the whole trail, each naming the next */
    int64_t after = 0, seen = 0, last_id = 0;
    int pages = 0;
    for (int page = 0; page < 100; page++, pages++) {
        char path[96];
        if (after)
            snprintf(path, sizeof(path), "/api/v1/audit?limit=2&after=%lld", (long long)after);
        else
            snprintf(path, sizeof(path), "/api/v1/audit?limit=2");
        ck_assert_int_eq(ask(c, "GET", path, NULL, &r), 200);
        json_t *rows = json_object_get(r.json, "rows"), *next = json_object_get(r.json, "next");
        size_t i;
        json_t *row;
        json_array_foreach(rows, i, row) {
            int64_t id = json_integer_value(json_object_get(row, "id"));
            ck_assert_int_gt(id, last_id);
            last_id = id;
            seen++;
        }
        ck_assert(json_is_null(next) || json_is_integer(next));
        after = json_is_integer(next) ? json_integer_value(next) : 0;
        resp_free(&r);
        if (!after)
            break;
    }
    ck_assert_int_ge(seen, 7); /* the login, the verifications, the pages read so far */
    ck_assert_int_ge(pages, 3);
}
END_TEST

static int has_alarm(const char *kind)
{
    idx_alarm_t *a = NULL;
    size_t n = 0;
    int found = 0;
    ck_assert_int_eq(idx_alarms_active(idx, &a, &n), VG_OK);
    for (size_t i = 0; i < n; i++)
        found |= strcmp(a[i].kind, kind) == 0;
    free(a);
    return found;
}

#define PARALLEL_LOGINS 24

static void *wrong_login(void *arg)
{
    resp_t r;
    http("POST", "/api/v1/login", NULL, "{\"user\":\"sec\",\"password\":\"wrong-pass-1\"}", &r);
    *(int *)arg = r.status;
    resp_free(&r);
    return NULL;
}

/* Many wrong passwords at once: the count is decided before each password
 * check, in one transaction, so no more than the limit reach the check. */
START_TEST(test_parallel_logins_counted_atomically)
{
    add_user("sec", "security", NULL);
    pthread_t t[PARALLEL_LOGINS];
    int status[PARALLEL_LOGINS];
    for (int i = 0; i < PARALLEL_LOGINS; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, wrong_login, &status[i]), 0);
    int checked = 0, refused = 0;
    for (int i = 0; i < PARALLEL_LOGINS; i++) {
        pthread_join(t[i], NULL);
        checked += status[i] == 401; /* invalid_credentials: the password was checked */
        refused += status[i] == 429;
    }
    ck_assert_int_eq(checked + refused, PARALLEL_LOGINS);
    ck_assert_int_le(checked, 5);
    /* an address that keeps trying past its limit raises login_attack */
    ck_assert(has_alarm("login_attack"));
    /* once its failures are past the window, and a login happens, it clears */
    fake_now += 16 * MIN_US;
    char c[160];
    login("sec", c, sizeof(c));
    ck_assert(!has_alarm("login_attack"));
}
END_TEST

static int login_from(const char *ip, const char *pw, char *retry, size_t size)
{
    char extra[96], body[128];
    resp_t r;
    snprintf(extra, sizeof(extra), "X-Forwarded-For: %s\r\n", ip);
    snprintf(body, sizeof(body), "{\"user\":\"sec\",\"password\":\"%s\"}", pw);
    http("POST", "/api/v1/login", extra, body, &r);
    int s = r.status;
    if (retry)
        snprintf(retry, size, "%s", r.retry_after);
    resp_free(&r);
    return s;
}

/* Failures from many addresses slow the account down (a growing delay), they
 * never lock it: the right password gets in once the delay has passed. */
START_TEST(test_account_delay_not_lock)
{
    add_user("sec", "security", NULL);
    cfg.http.trusted_proxies = vg_strdup("127.0.0.1");
    char ip[32], retry[16];
    int n = 0;
    for (; n < 5; n++) {
        snprintf(ip, sizeof(ip), "10.7.0.%d", n + 1);
        ck_assert_int_eq(login_from(ip, "wrong-pass-1", NULL, 0), 401);
    }
    /* the sixth, from yet another address: wait a second */
    ck_assert_int_eq(login_from("10.7.1.1", "wrong-pass-1", retry, sizeof(retry)), 429);
    ck_assert_int_eq(atoi(retry), 1);
    fake_now += 1000000;
    ck_assert_int_eq(login_from("10.7.1.1", "wrong-pass-1", NULL, 0), 401);
    /* then two */
    ck_assert_int_eq(login_from("10.7.1.2", PW, retry, sizeof(retry)), 429);
    ck_assert_int_eq(atoi(retry), 2);
    ck_assert(!has_alarm("login_attack"));
    for (int delay = 2; n < 9; n++, delay *= 2) {
        fake_now += delay * 1000000LL;
        snprintf(ip, sizeof(ip), "10.7.2.%d", n);
        ck_assert_int_eq(login_from(ip, "wrong-pass-1", NULL, 0), 401);
    }
    /* ten failures for one account: the alarm */
    ck_assert(has_alarm("login_attack"));
    /* still no lock: after the delay, the right password works */
    ck_assert_int_eq(login_from("10.7.3.1", PW, retry, sizeof(retry)), 429);
    fake_now += atoi(retry) * 1000000LL;
    ck_assert_int_eq(login_from("10.7.3.1", PW, NULL, 0), 200);
    /* without trusted_proxies the header is ignored: 127.0.0.1 is the
     * address, and it has its own 5 tries */
    free(cfg.http.trusted_proxies);
    cfg.http.trusted_proxies = NULL;
    fake_now += 16 * MIN_US;
    for (int i = 0; i < 5; i++) {
        snprintf(ip, sizeof(ip), "10.6.0.%d", i + 1);
        fake_now += 61 * 1000000LL;
        ck_assert_int_eq(login_from(ip, "wrong-pass-1", NULL, 0), 401);
    }
    fake_now += 61 * 1000000LL;
    ck_assert_int_eq(login_from("10.6.9.9", PW, NULL, 0), 429);
}
END_TEST

/* ---- text that is not UTF-8 (DESIGN.md invariant 8) ---- */

#define FFFD VG_UTF8_REPLACEMENT

/* A value jansson refuses, or cannot dump, answers a fixed 500 with a JSON
 * body instead of aborting the daemon; an error message quoting a client's
 * bytes is made valid first. */
START_TEST(test_reply_fallback)
{
    web_req_t r;
    const char *cases[] = {"null", "pack", "dump"};
    for (size_t i = 0; i < 3; i++) {
        memset(&r, 0, sizeof(r));
        snprintf(r.set_cookie, sizeof(r.set_cookie), "vigil_session=abc");
        json_t *v = NULL;
        if (i == 1)
            v = json_pack("{ss}", "message", "\xff"); /* NULL: jansson refuses it */
        if (i == 2)
            v = json_pack("{so}", "message", json_string_nocheck("cut \xe2\x82"));
        web_reply_json(&r, 200, v);
        ck_assert_msg(r.status == 500, "%s: %d", cases[i], r.status);
        ck_assert_str_eq(r.content_type, "application/json");
        ck_assert_str_eq(r.set_cookie, "");
        json_t *j = json_loadb(r.payload, r.payload_len, 0, NULL);
        ck_assert_ptr_nonnull(j);
        ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                         "internal");
        json_decref(j);
        free(r.payload);
    }
    memset(&r, 0, sizeof(r));
    web_reply_error(&r, 400, "invalid_query", "unknown query parameter '%.5s'",
                    "\xff\xc0\xaf\xe2\x82\xac");
    ck_assert_int_eq(r.status, 400);
    json_t *j = json_loadb(r.payload, r.payload_len, 0, NULL);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "error"), "message")),
                     "unknown query parameter '" FFFD FFFD FFFD FFFD FFFD "'");
    json_decref(j);
    free(r.payload);
    web_buf_t b = {0};
    web_buf_json_str(&b, "a\xff" "b\xed\xa0\x80");
    ck_assert_str_eq(b.p, "\"a" FFFD "b" FFFD FFFD FFFD "\"");
    free(b.p);
    j = web_json_text("\xf4\x90\x80\x80ok");
    ck_assert_str_eq(json_string_value(j), FFFD FFFD FFFD FFFD "ok");
    json_decref(j);
}
END_TEST

typedef struct {
    const char *who; /* "" anonymous, "C" the admin's cookie */
    const char *method, *path, *body;
    int status;
} utf8_case_t;

static const utf8_case_t utf8_cases[] = {
    {"", "GET", "/healthz?%ff", NULL, 400},
    {"", "GET", "/healthz?%c0%af=1", NULL, 400},
    {"", "GET", "/healthz?\xff\xfe", NULL, 400},
    {"", "GET", "/api/v1/sources?%ed%a0%80", NULL, 400},
    {"", "GET", "/api/v1/sources/\xe2\x82", NULL, 401},
    {"C", "GET", "/api/v1/sources/%f4%90%80%80", NULL, 404},
    {"C", "GET", "/api/v1/sources/cam1/segments?%e2%82=1", NULL, 400},
    {"C", "GET", "/api/v1/sources/cam1/segments?from=%ff", NULL, 400},
    {"C", "GET", "/api/v1/\xc0\xaf", NULL, 404},
    {"C", "DELETE", "/api/v1/users/%ff", NULL, 404},
    {"C", "PATCH", "/api/v1/sources/cam1", "{\"a\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
     "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
     "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
     "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\":1}", 400}, /* the message cuts at 64 bytes */
    {"C", "POST", "/api/v1/users", "{\"name\":\"\xff\",\"role\":\"admin\",\"password\":\"x\"}", 400},
    {"C", "POST", "/api/v1/holds", "{\"case\":\"\xed\xa0\x80\",\"reason\":\"r\",\"sources\":[\"cam1\"],"
     "\"from\":1,\"to\":2}", 400},
};

/* Requests carrying what is not UTF-8 (raw bytes, escapes of them,
 * overlong forms, surrogates, cut sequences) in the path, the query and
 * JSON bodies are answered with valid JSON; the audit rows they leave are
 * valid UTF-8 and GET /audit lists every row, also one stored by an older
 * version with invalid bytes. Before: the server aborted. */
START_TEST(test_bad_utf8_answers)
{
    add_user("adm", "admin", NULL);
    char c[160];
    login("adm", c, sizeof(c));
    for (size_t i = 0; i < sizeof(utf8_cases) / sizeof(utf8_cases[0]); i++) {
        const utf8_case_t *u = &utf8_cases[i];
        resp_t r;
        ask(*u->who ? c : "", u->method, u->path, u->body, &r);
        ck_assert_msg(r.status == u->status && r.json, "case %zu: %d %s", i, r.status, r.body);
        resp_free(&r);
    }
    /* a case number cut inside a character in the audit row's detail */
    char body[512], cs[128] = "";
    for (int i = 0; i < 33; i++)
        strcat(cs, "\xd0\x96"); /* 66 bytes of Ж, plus 33 more below: cut at 100 */
    for (int i = 0; i < 11; i++)
        strcat(cs, "\xe2\x82\xac");
    snprintf(body, sizeof(body), "{\"case\":\"%s\",\"reason\":\"r\",\"sources\":[\"cam1\"],"
                                 "\"from\":1,\"to\":2}", cs);
    ck_assert_int_eq(status_of(c, "POST", "/api/v1/holds", body), 201);
    /* a row as an older version could have stored it */
    idx_audit_t legacy = {.ts_us = T0, .from_us = 0, .to_us = 0};
    snprintf(legacy.actor, sizeof(legacy.actor), "anonymous");
    snprintf(legacy.ip, sizeof(legacy.ip), "127.0.0.1");
    snprintf(legacy.action, sizeof(legacy.action), "access");
    snprintf(legacy.object, sizeof(legacy.object), "/healthz?\xff\xc0\xaf");
    snprintf(legacy.result, sizeof(legacy.result), "denied");
    ck_assert_int_eq(idx_audit_append(idx, &legacy, 1), VG_OK);
    int64_t rows = audit_max_id();
    resp_t r;
    ck_assert_int_eq(ask(c, "GET", "/api/v1/audit?limit=10000", NULL, &r), 200);
    ck_assert_ptr_nonnull(r.json);
    json_t *arr = json_object_get(r.json, "rows");
    ck_assert_int_eq((int64_t)json_array_size(arr), rows);
    int saw_legacy = 0, saw_hold = 0;
    size_t i;
    json_t *row;
    json_array_foreach(arr, i, row) {
        const char *object = json_string_value(json_object_get(row, "object"));
        const char *detail = json_string_value(json_object_get(row, "detail"));
        saw_legacy |= strcmp(object, "/healthz?" FFFD FFFD FFFD) == 0;
        saw_hold |= strncmp(detail, "case=\xd0\x96", 7) == 0;
    }
    ck_assert(saw_legacy && saw_hold);
    resp_free(&r);
    /* the rows written since the fix are valid UTF-8 as stored */
    idx_audit_filter_t f = {.from_us = 0, .to_us = INT64_MAX};
    idx_audit_t *all = NULL;
    size_t n = 0;
    ck_assert_int_eq(idx_audit_list(idx, &f, &all, &n), VG_OK);
    for (size_t k = 0; k < n; k++) {
        const idx_audit_t *a = &all[k];
        if (a->id == legacy.id)
            continue;
        ck_assert_msg(vg_utf8_valid(a->object, strlen(a->object)) &&
                          vg_utf8_valid(a->detail, strlen(a->detail)),
                      "row %lld: %s / %s", (long long)a->id, a->object, a->detail);
    }
    free(all);
    ck_assert_int_eq(ask(c, "GET", "/api/v1/audit?format=csv&limit=10000", NULL, &r), 200);
    ck_assert(vg_utf8_valid(r.body, strlen(r.body)));
    resp_free(&r);
}
END_TEST

/* Range headers as players and attackers send them. */
START_TEST(test_range_parse)
{
    uint64_t a = 99, b = 99;
    ck_assert_int_eq(web_range_parse(NULL, 100, &a, &b), 0);
    ck_assert_int_eq(web_range_parse("bytes=0-", 100, &a, &b), 1);
    ck_assert(a == 0 && b == 99);
    ck_assert_int_eq(web_range_parse("bytes=10-19", 100, &a, &b), 1);
    ck_assert(a == 10 && b == 19);
    ck_assert_int_eq(web_range_parse("bytes = 90-200", 100, &a, &b), 1); /* clamped */
    ck_assert(a == 90 && b == 99);
    ck_assert_int_eq(web_range_parse("bytes=-10", 100, &a, &b), 1); /* suffix */
    ck_assert(a == 90 && b == 99);
    ck_assert_int_eq(web_range_parse("bytes=-1000", 100, &a, &b), 1);
    ck_assert(a == 0 && b == 99);
    ck_assert_int_eq(web_range_parse("bytes=100-", 100, &a, &b), -1);
    ck_assert_int_eq(web_range_parse("bytes=-0", 100, &a, &b), -1);
    ck_assert_int_eq(web_range_parse("bytes=0-0", 0, &a, &b), -1);
    ck_assert_int_eq(web_range_parse("bytes=5-4", 100, &a, &b), 0); /* invalid: ignored */
    ck_assert_int_eq(web_range_parse("bytes=0-1,5-6", 100, &a, &b), 0); /* several: whole */
    ck_assert_int_eq(web_range_parse("items=0-1", 100, &a, &b), 0);
    ck_assert_int_eq(web_range_parse("bytes=-", 100, &a, &b), 0);
    ck_assert_int_eq(web_range_parse("bytes=+1-2", 100, &a, &b), 0);
    ck_assert_int_eq(web_range_parse("bytes=99999999999999999999-", 100, &a, &b), 0);
    ck_assert_int_eq(web_range_parse("bytes=1-2x", 100, &a, &b), 0);
    ck_assert_int_eq(web_range_parse("bytes=18446744073709551615-", UINT64_MAX, &a, &b), -1);
}
END_TEST

/* The rules a streaming answer is re-checked by (server.c's guard): the
 * credential, the route's permissions and every source it carries. */
START_TEST(test_grant_rules)
{
    char cookie[160], secret[WEB_TOKEN_TEXT_MAX];
    int64_t tid;
    add_user("gina", "auditor", "line1");
    login("gina", cookie, sizeof(cookie));
    const char *value = strchr(cookie, '=') + 1;
    web_grant_t g = {.kind = 'u', .perms_any = WEB_PERM_PLAYBACK | WEB_PERM_CALLS};
    web_sha256_hex(value, strlen(value), g.session_hash);
    snprintf(g.sources, sizeof(g.sources), "line1");
    ck_assert_int_eq(web_grant_check(web, idx, &g), VG_OK);
    /* a source outside the account's list, one of several (an export) */
    snprintf(g.sources, sizeof(g.sources), "line1,cam2");
    ck_assert_int_eq(web_grant_check(web, idx, &g), VG_ENOTFOUND);
    snprintf(g.sources, sizeof(g.sources), "line1");
    /* the route's permission lost */
    g.perms_any = WEB_PERM_EXPORT;
    ck_assert_int_eq(web_grant_check(web, idx, &g), VG_ENOTFOUND);
    g.perms_any = WEB_PERM_PLAYBACK | WEB_PERM_CALLS;
    /* a role without calls no longer reads a call line it still lists */
    ck_assert_int_eq(idx_account_update(idx, "gina", "security", NULL, IDX_SOURCES_KEEP, NULL, 0),
                     VG_OK);
    ck_assert_int_eq(web_grant_check(web, idx, &g), VG_ENOTFOUND);
    ck_assert_int_eq(idx_account_update(idx, "gina", "auditor", NULL, IDX_SOURCES_KEEP, NULL, 0),
                     VG_OK);
    ck_assert_int_eq(web_grant_check(web, idx, &g), VG_OK);
    /* the session ended (logout, new password, account deleted) */
    ck_assert_int_eq(idx_session_delete(idx, g.session_hash), VG_OK);
    ck_assert_int_eq(web_grant_check(web, idx, &g), VG_ENOTFOUND);
    /* tokens: every source, their permissions, until revoked */
    ck_assert_int_eq(web_token_create(idx, "pbx", WEB_PERM_CALLS, "test", T0, secret, &tid),
                     VG_OK);
    web_grant_t t = {.kind = 't', .token_id = tid, .perms_any = WEB_PERM_PLAYBACK | WEB_PERM_CALLS};
    snprintf(t.sources, sizeof(t.sources), "line1");
    ck_assert_int_eq(web_grant_check(web, idx, &t), VG_OK);
    snprintf(t.sources, sizeof(t.sources), "cam1"); /* video needs playback */
    ck_assert_int_eq(web_grant_check(web, idx, &t), VG_ENOTFOUND);
    snprintf(t.sources, sizeof(t.sources), "line1");
    ck_assert_int_eq(idx_token_revoke(idx, tid, T0), VG_OK);
    ck_assert_int_eq(web_grant_check(web, idx, &t), VG_ENOTFOUND);
    t.token_id = tid + 100; /* gone from the index */
    ck_assert_int_eq(web_grant_check(web, idx, &t), VG_ENOTFOUND);
    web_grant_t none = {0};
    ck_assert_int_eq(web_grant_check(web, idx, &none), VG_ENOTFOUND);
}
END_TEST

static Suite *web_suite(void)
{
    Suite *s = suite_create("web");
    TCase *tc = tcase_create("web");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_route_table);
    tcase_add_test(tc, test_chain_and_tamper);
    tcase_add_test(tc, test_cached_answers_follow_the_index);
    tcase_add_test(tc, test_session_expiry);
    tcase_add_test(tc, test_login_cookie_and_csrf);
    tcase_add_test(tc, test_login_throttling);
    tcase_add_test(tc, test_token_scopes_and_revocation);
    tcase_add_test(tc, test_bad_input);
    tcase_add_test(tc, test_rules);
    tcase_add_test(tc, test_flood_aggregated_and_limited);
    tcase_add_test(tc, test_forwarded_for_and_bound);
    tcase_add_test(tc, test_no_body_before_auth);
    tcase_add_test(tc, test_audit_paging);
    tcase_add_test(tc, test_parallel_logins_counted_atomically);
    tcase_add_test(tc, test_account_delay_not_lock);
    tcase_add_test(tc, test_reply_fallback);
    tcase_add_test(tc, test_bad_utf8_answers);
    tcase_add_test(tc, test_range_parse);
    tcase_add_test(tc, test_grant_rules);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    SRunner *sr = srunner_create(web_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
