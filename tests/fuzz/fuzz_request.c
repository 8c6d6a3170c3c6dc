/* libFuzzer target for whole HTTP requests: method, target with its query,
 * headers and body go through what the server does after reading them off a
 * connection (web_dispatch): routing, authentication, body parsing, the
 * handler against a temporary index with sources, segments and accounts,
 * the audit commit and serialization. Every answer must be a status from
 * 100 to 599, and a JSON answer must be valid JSON (so valid UTF-8) and not
 * the fixed 500 that replaces an answer jansson refused.
 *
 * Input: one byte choosing the caller (0 anonymous, 1 an admin token, 2 an
 * admin session cookie, 3 a session of an account limited to cam1), then
 * "METHOD TARGET\n", header lines "Name: value\n", an empty line, the body.
 * Seeds: tests/fuzz/corpus_request. Built by `make fuzz` (clang). */
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sqlite3.h>

#include "core/config.h"
#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"
#include "index/index.h"
#include "web/web.h"
#include "web/web_private.h"

#define T0 (1795000000LL * 1000000) /* 2026-11-18 */
#define MAX_HEADERS 16

static int64_t fixed_now(void *ctx)
{
    (void)ctx;
    return T0; /* sessions never expire under the fuzzer */
}
static const vg_clock_t fixed_clock = {fixed_now, fixed_now, NULL};

static char dir[256];
static vg_config_t cfg;
static web_t *web;
static idx_t *idx; /* the harness's own connection */
static sqlite3 *raw; /* and a raw one, to forget login failures */
static int64_t account_ids[2];
static char session_hashes[2][65];
static char token_header[128];
static char admin_cookie[128], limited_cookie[128];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    web_stop(web);
    idx_close(idx);
    sqlite3_close(raw);
    vg_config_free(&cfg);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void die(const char *what)
{
    fprintf(stderr, "fuzz_request setup: %s\n", what);
    exit(1);
}

static void add_account(int k, const char *name, const char *role, const char *source,
                        char *cookie, size_t size)
{
    idx_account_t a = {0};
    snprintf(a.name, sizeof(a.name), "%s", name);
    snprintf(a.role, sizeof(a.role), "%s", role);
    if (web_password_hash("fuzz-password-1", a.pwhash) != VG_OK)
        die("hash");
    a.all_sources = source == NULL;
    const char *list[1] = {source};
    if (idx_account_add(idx, &a, list, source ? 1 : 0) != VG_OK ||
        idx_account_get(idx, name, &a) != VG_OK)
        die("account");
    /* A session whose id is known here: the cookie the harness sends. */
    char id[65], hash[65];
    for (int i = 0; i < 64; i++)
        id[i] = "0123456789abcdef"[(i * 7 + name[0]) % 16];
    id[64] = '\0';
    web_sha256_hex(id, 64, hash);
    if (idx_session_add(idx, hash, a.id, T0) != VG_OK)
        die("session");
    snprintf(cookie, size, "vigil_session=%s", id);
    account_ids[k] = a.id;
    memcpy(session_hashes[k], hash, sizeof(hash));
}

/* A logout the fuzzer sends ends a harness session: put them back, so later
 * inputs still reach the handlers behind authentication. */
/* The clock stands still under the fuzzer, so login failures never leave
 * the throttling window: every few hundred runs they are forgotten (through
 * a connection of the harness's own), or each login would count a table
 * that only grows and the run would slow down to a crawl. For the same
 * reason every few thousand runs every row the inputs added since setup
 * goes (audit rows, holds, tokens, accounts, export jobs...): the audit list
 * and its chain check read the whole table, so a run of millions of inputs
 * would otherwise slow down as it goes. The append-only trigger is lifted
 * for that moment only, on the harness's own connection. */
#define MAX_TABLES 64
static unsigned long runs;
static char tables[MAX_TABLES][64];
static int64_t table_max[MAX_TABLES];
static int n_tables;

static void note_tables(void)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(raw, "SELECT name FROM sqlite_master WHERE type = 'table' AND "
                                "sql NOT LIKE 'CREATE VIRTUAL%' AND name NOT LIKE 'sqlite_%'",
                           -1, &st, NULL) != SQLITE_OK)
        die("list tables");
    while (n_tables < MAX_TABLES && sqlite3_step(st) == SQLITE_ROW)
        snprintf(tables[n_tables++], sizeof(tables[0]), "%s", sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    for (int i = 0; i < n_tables; i++) {
        char *q = vg_asprintf("SELECT coalesce(max(rowid), 0) FROM \"%s\"", tables[i]);
        table_max[i] = -1; /* WITHOUT ROWID tables are left alone */
        if (sqlite3_prepare_v2(raw, q, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
            table_max[i] = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        st = NULL;
        free(q);
    }
}

static void forget_added_rows(void)
{
    sqlite3_exec(raw, "PRAGMA foreign_keys = OFF; BEGIN IMMEDIATE; DROP TRIGGER audit_no_delete",
                 NULL, NULL, NULL);
    for (int i = 0; i < n_tables; i++) {
        if (table_max[i] < 0)
            continue;
        char *q = vg_asprintf("DELETE FROM \"%s\" WHERE rowid > %lld", tables[i],
                              (long long)table_max[i]);
        sqlite3_exec(raw, q, NULL, NULL, NULL);
        free(q);
    }
    sqlite3_exec(raw, "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN"
                      "  SELECT RAISE(ABORT, 'audit rows are append-only'); END; COMMIT",
                 NULL, NULL, NULL);
}

static void forget_failures(void)
{
    if (++runs % 256 == 0 && raw)
        sqlite3_exec(raw, "DELETE FROM login_failure", NULL, NULL, NULL);
    if (runs % 4096 == 0 && raw)
        forget_added_rows();
}

static void restore_sessions(void)
{
    for (int k = 0; k < 2; k++) {
        idx_session_t sess;
        if (idx_session_get(idx, session_hashes[k], &sess) == VG_ENOTFOUND)
            idx_session_add(idx, session_hashes[k], account_ids[k], T0);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    vg_log_set_level(VG_LOG_ERR);
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/vigil-fuzz-request-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        die("mkdtemp");
    char *conf = vg_asprintf("%s/vigil.conf", dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        die("config");
    fprintf(f, "[server]\ndata_dir = %s\n[source cam1]\nurl = rtsp://x/1\n"
               "[source line1]\nurl = rtsp://x/2\nkind = audio\n", dir);
    fclose(f);
    char err[256];
    if (vg_config_load(conf, &cfg, err, sizeof(err)) != VG_OK)
        die(err);
    free(conf);
    char *db = vg_asprintf("%s/index.db", dir);
    if (idx_open(db, 0, &idx) != VG_OK || idx_source_register(idx, "cam1", "video") != VG_OK ||
        idx_source_register(idx, "line1", "audio") != VG_OK)
        die("index");
    if (sqlite3_open(db, &raw) != SQLITE_OK)
        die("index (harness connection)");
    sqlite3_busy_timeout(raw, 5000);
    free(db);
    for (int i = 0; i < 4; i++) {
        idx_segment_t s = {0};
        snprintf(s.source, sizeof(s.source), i % 2 ? "line1" : "cam1");
        s.start_us = T0 - 3600LL * 1000000 + i * 60LL * 1000000;
        s.end_us = s.start_us + 60LL * 1000000;
        s.media_us = 60LL * 1000000;
        s.bytes = 1000;
        memset(s.sha256, 'a', 64);
        snprintf(s.codecs, sizeof(s.codecs), "h264");
        snprintf(s.path, sizeof(s.path), "%s/%d.mp4", s.source, i);
        if (idx_segment_insert(idx, &s) != VG_OK)
            die("segment");
    }
    add_account(0, "admin", "admin", NULL, admin_cookie, sizeof(admin_cookie));
    add_account(1, "guard", "security", "cam1", limited_cookie, sizeof(limited_cookie));
    char secret[WEB_TOKEN_TEXT_MAX];
    int64_t id = 0;
    if (web_token_create(idx, "fuzz", WEB_PERM_ALL, "system:fuzz", T0, secret, &id) != VG_OK)
        die("token");
    snprintf(token_header, sizeof(token_header), "Bearer %s", secret);
    note_tables();
    web_config_t wc = {.cfg = &cfg, .data_dir = dir, .clock = &fixed_clock,
                       .listen = "127.0.0.1:0"};
    if (web_start(&wc, &web) != VG_OK)
        die("web_start");
    atexit(teardown);
    return 0;
}

/* The next line of data[*at..size) as a NUL-terminated copy in line. */
static int next_line(const uint8_t *data, size_t size, size_t *at, char *line, size_t cap)
{
    if (*at >= size)
        return 0;
    const uint8_t *nl = memchr(data + *at, '\n', size - *at);
    size_t n = nl ? (size_t)(nl - (data + *at)) : size - *at;
    size_t k = n < cap - 1 ? n : cap - 1;
    memcpy(line, data + *at, k);
    line[k] = '\0';
    *at += n + (nl != NULL);
    return 1;
}

static void check_answer(int status, const char *payload, size_t len)
{
    if (status < 100 || status > 599) {
        fprintf(stderr, "status %d\n", status);
        abort();
    }
    if (len && payload[0] == '{') {
        json_error_t e;
        json_t *j = json_loadb(payload, len, 0, &e);
        if (!j) {
            fprintf(stderr, "answer %d is not JSON (%s): %.*s\n", status, e.text, (int)len,
                    payload);
            abort();
        }
        /* The fixed 500 is a safety net: reaching it means some text went
         * unchecked toward jansson, a bug to find here. (A message quoting
         * the client is never exactly this text.) */
        const char *msg = json_string_value(json_object_get(json_object_get(j, "error"),
                                                            "message"));
        if (msg && strcmp(msg, "the answer could not be encoded") == 0) {
            fprintf(stderr, "an answer fell back to the fixed 500\n");
            abort();
        }
        json_decref(j);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    int who = data[0] % 4;
    size_t at = 1;
    char first[4200];
    char lines[MAX_HEADERS][512];
    web_header_t hdrs[MAX_HEADERS + 2];
    size_t n = 0;
    if (!next_line(data, size, &at, first, sizeof(first)))
        return 0;
    char *sp = strchr(first, ' ');
    if (!sp)
        return 0;
    *sp = '\0';
    const char *method = first, *target = sp + 1;
    while (n < MAX_HEADERS && next_line(data, size, &at, lines[n], sizeof(lines[n])) &&
           lines[n][0]) {
        char *colon = strchr(lines[n], ':');
        if (!colon)
            continue;
        *colon = '\0';
        hdrs[n].name = lines[n];
        hdrs[n].value = colon + 1 + (colon[1] == ' ');
        n++;
    }
    if (who == 1) {
        hdrs[n++] = (web_header_t){"Authorization", token_header};
    } else if (who >= 2) {
        hdrs[n++] = (web_header_t){"Cookie", who == 2 ? admin_cookie : limited_cookie};
        hdrs[n++] = (web_header_t){"X-Requested-With", "vigil"};
    }
    int status = 0;
    char *payload = NULL;
    size_t len = 0;
    web_dispatch(web, method, target, hdrs, n, "127.0.0.1", (const char *)data + at,
                 at < size ? size - at : 0, &status, &payload, &len);
    check_answer(status, payload, len);
    free(payload);
    if (who >= 2 && status == 200 && strcmp(method, "POST") == 0)
        restore_sessions();
    forget_failures();
    return 0;
}
