/* vigilctl user / token / audit: the same account rules as the HTTP API
 * (web/web.h), applied from the command line, which is also how the first
 * admin is created. Every change is audited as system:vigilctl. */
#include "cmd/ctl_accounts.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "core/clock.h"
#include "core/errors.h"
#include "core/util.h"
#include "web/web.h"

#define EXIT_PROBLEM 1
#define EXIT_USAGE 2
#define MAX_SOURCES IDX_LIST_MAX
#define ACTOR "system:vigilctl"

typedef struct {
    const vg_config_t *cfg;
    idx_t *idx;
    const ctl_accounts_opts_t *o;
} ctx_t;

static int is(const char *a, const char *b)
{
    return strcmp(a, b) == 0;
}

int ctl_accounts_handles(int argc, char **argv)
{
    return argc >= 2 && (is(argv[0], "user") || is(argv[0], "token") || is(argv[0], "audit"));
}

int ctl_accounts_writes(int argc, char **argv)
{
    if (argc < 2)
        return 0;
    if (is(argv[0], "user"))
        return is(argv[1], "add") || is(argv[1], "passwd") || is(argv[1], "del");
    if (is(argv[0], "token"))
        return is(argv[1], "add") || is(argv[1], "revoke");
    return 0;
}

/* Appends one audit row for a CLI change; who ran vigilctl goes in detail. */
static int audit(ctx_t *c, const char *action, const char *object, const char *detail)
{
    idx_audit_t row = {0};
    const struct passwd *pw = getpwuid(getuid());
    row.ts_us = vg_clock_wall(&vg_system_clock);
    snprintf(row.actor, sizeof(row.actor), ACTOR);
    snprintf(row.ip, sizeof(row.ip), "local");
    snprintf(row.action, sizeof(row.action), "%s", action);
    snprintf(row.object, sizeof(row.object), "%s", object);
    snprintf(row.result, sizeof(row.result), "ok");
    snprintf(row.detail, sizeof(row.detail), "%.180s%sunix user %.32s", detail,
             *detail ? "; " : "", pw ? pw->pw_name : "?");
    int rc = idx_audit_append(c->idx, &row, 1);
    if (rc != VG_OK)
        fprintf(stderr, "vigilctl: cannot write the audit row: %s\n", vg_strerror(rc));
    return rc;
}

/* One line from stdin, without its newline. */
static int read_password(char *buf, size_t size)
{
    if (isatty(STDIN_FILENO))
        fprintf(stderr, "password (at least %d characters): ", WEB_PASSWORD_MIN);
    if (!fgets(buf, (int)size, stdin)) {
        fprintf(stderr, "vigilctl: no password on stdin\n");
        return VG_EINVAL;
    }
    buf[strcspn(buf, "\r\n")] = '\0';
    if (strlen(buf) < WEB_PASSWORD_MIN) {
        fprintf(stderr, "vigilctl: the password must have at least %d characters\n",
                WEB_PASSWORD_MIN);
        return VG_EINVAL;
    }
    return VG_OK;
}

static int hash_from_stdin(char hash[128])
{
    char pw[WEB_PASSWORD_MAX + 2];
    int rc = read_password(pw, sizeof(pw));
    if (rc == VG_OK)
        rc = web_password_hash(pw, hash);
    sodium_memzero(pw, sizeof(pw));
    return rc;
}

/* Splits --sources into names that the config or the index knows. */
static int parse_sources(ctx_t *c, char *csv, const char **names, size_t *n)
{
    *n = 0;
    for (char *save = NULL, *s = strtok_r(csv, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        int found = 0;
        if (!vg_config_find_source(c->cfg, s) &&
            (!vg_source_name_valid(s) || idx_source_exists(c->idx, s, &found) != VG_OK ||
             !found)) {
            fprintf(stderr, "vigilctl: unknown source '%s'\n", s);
            return VG_EINVAL;
        }
        if (*n == MAX_SOURCES) {
            fprintf(stderr, "vigilctl: at most %d sources\n", MAX_SOURCES);
            return VG_EINVAL;
        }
        names[(*n)++] = s;
    }
    return *n ? VG_OK : VG_EINVAL;
}

static int user_add(ctx_t *c, const char *name)
{
    idx_account_t a = {0};
    unsigned perms;
    const char *names[MAX_SOURCES];
    size_t n = 0;
    char *csv = c->o->sources ? vg_strdup(c->o->sources) : NULL;
    char object[96], detail[160];
    int ret = EXIT_USAGE;
    if (!web_user_name_valid(name) || !c->o->role || web_role_perms(c->o->role, &perms) != VG_OK) {
        fprintf(stderr, "vigilctl: user add NAME --role security|auditor|investigator|admin "
                        "[--sources a,b] (NAME: [a-z0-9][a-z0-9._-]{0,62})\n");
        goto cleanup;
    }
    a.all_sources = csv == NULL;
    if ((csv && parse_sources(c, csv, names, &n) != VG_OK) || hash_from_stdin(a.pwhash) != VG_OK)
        goto cleanup;
    snprintf(a.name, sizeof(a.name), "%s", name);
    snprintf(a.role, sizeof(a.role), "%s", c->o->role);
    a.created_us = vg_clock_wall(&vg_system_clock);
    int rc = idx_account_add(c->idx, &a, names, n);
    if (rc == VG_EEXIST) {
        fprintf(stderr, "vigilctl: user '%s' exists\n", name);
        goto cleanup;
    }
    snprintf(object, sizeof(object), "user:%s", name);
    snprintf(detail, sizeof(detail), "role=%s sources=%.120s", a.role,
             c->o->sources ? c->o->sources : "all");
    ret = rc == VG_OK && audit(c, "user.create", object, detail) == VG_OK ? 0 : EXIT_PROBLEM;
    if (ret == 0)
        printf("added user %s (%s)\n", name, a.role);

cleanup:
    free(csv);
    return ret;
}

static int user_passwd(ctx_t *c, const char *name)
{
    idx_account_t a;
    char hash[128], object[96];
    if (idx_account_get(c->idx, name, &a) != VG_OK) {
        fprintf(stderr, "vigilctl: no user '%s'\n", name);
        return EXIT_USAGE;
    }
    if (hash_from_stdin(hash) != VG_OK)
        return EXIT_USAGE;
    snprintf(object, sizeof(object), "user:%s", name);
    if (idx_account_update(c->idx, name, NULL, hash, IDX_SOURCES_KEEP, NULL, 0) != VG_OK ||
        audit(c, "user.update", object, "password") != VG_OK)
        return EXIT_PROBLEM;
    printf("password of %s changed; their sessions ended\n", name);
    return 0;
}

static int user_del(ctx_t *c, const char *name)
{
    char object[96];
    int rc = idx_account_delete(c->idx, name);
    if (rc == VG_ENOTFOUND) {
        fprintf(stderr, "vigilctl: no user '%s'\n", name);
        return EXIT_USAGE;
    }
    snprintf(object, sizeof(object), "user:%s", name);
    if (rc != VG_OK || audit(c, "user.delete", object, "") != VG_OK)
        return EXIT_PROBLEM;
    printf("deleted user %s\n", name);
    return 0;
}

static void print_json(json_t *v)
{
    json_dumpf(v, stdout, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    fputc('\n', stdout);
    json_decref(v);
}

static json_t *time_json(int64_t us)
{
    char text[VG_TIME_TEXT_MAX];
    if (!us)
        return json_null();
    vg_time_format(us, text);
    return json_string(text);
}

static int user_list(ctx_t *c)
{
    idx_account_t *a = NULL;
    size_t n = 0;
    if (idx_account_list(c->idx, &a, &n) != VG_OK)
        return EXIT_PROBLEM;
    json_t *arr = c->o->json ? json_array() : NULL;
    for (size_t i = 0; i < n; i++) {
        const char *sources = a[i].all_sources ? "all" : a[i].sources;
        if (arr)
            json_array_append_new(arr, json_pack("{ss ss ss so}", "name", a[i].name, "role",
                                                 a[i].role, "sources", sources, "created",
                                                 time_json(a[i].created_us)));
        else
            printf("%-24s %-13s %s\n", a[i].name, a[i].role, sources);
    }
    free(a);
    if (arr)
        print_json(arr);
    return 0;
}

static int token_add(ctx_t *c, const char *name)
{
    unsigned perms = 0;
    char secret[WEB_TOKEN_TEXT_MAX], object[48], detail[160];
    int64_t id = 0;
    if (!web_user_name_valid(name) || !c->o->perm || web_perms_parse(c->o->perm, &perms) != VG_OK) {
        fprintf(stderr, "vigilctl: token add NAME --perm p1,p2 (live, playback, calls, export, "
                        "hold, annotate, audit, admin)\n");
        return EXIT_USAGE;
    }
    if (web_token_create(c->idx, name, perms, ACTOR, vg_clock_wall(&vg_system_clock), secret,
                         &id) != VG_OK)
        return EXIT_PROBLEM;
    snprintf(object, sizeof(object), "token:%lld", (long long)id);
    snprintf(detail, sizeof(detail), "name=%s permissions=%.100s", name, c->o->perm);
    if (audit(c, "token.create", object, detail) != VG_OK)
        return EXIT_PROBLEM;
    /* Shown once: only its hash is stored. */
    printf("%s\n", secret);
    fprintf(stderr, "token %lld created; store it now, it cannot be shown again\n",
            (long long)id);
    sodium_memzero(secret, sizeof(secret));
    return 0;
}

static int token_list(ctx_t *c)
{
    idx_token_t *t = NULL;
    size_t n = 0;
    if (idx_token_list(c->idx, &t, &n) != VG_OK)
        return EXIT_PROBLEM;
    json_t *arr = c->o->json ? json_array() : NULL;
    for (size_t i = 0; i < n; i++) {
        char at[VG_TIME_TEXT_MAX] = "-";
        if (t[i].revoked_us)
            vg_time_format(t[i].revoked_us, at);
        if (arr)
            json_array_append_new(arr, json_pack("{sI ss ss ss so so}", "id", (json_int_t)t[i].id,
                                                 "name", t[i].name, "permissions", t[i].perms,
                                                 "created_by", t[i].created_by, "created",
                                                 time_json(t[i].created_us), "revoked",
                                                 time_json(t[i].revoked_us)));
        else
            printf("%-5lld %-24s %-40s revoked=%s\n", (long long)t[i].id, t[i].name, t[i].perms,
                   at);
    }
    free(t);
    if (arr)
        print_json(arr);
    return 0;
}

static int token_revoke(ctx_t *c, const char *id_text)
{
    char *end = NULL, object[48];
    long long id = strtoll(id_text, &end, 10);
    if (!*id_text || *end || id <= 0) {
        fprintf(stderr, "vigilctl: token revoke ID\n");
        return EXIT_USAGE;
    }
    int rc = idx_token_revoke(c->idx, id, vg_clock_wall(&vg_system_clock));
    if (rc == VG_ENOTFOUND || rc == VG_EINVAL) {
        fprintf(stderr, "vigilctl: token %lld %s\n", id,
                rc == VG_ENOTFOUND ? "does not exist" : "is already revoked");
        return EXIT_USAGE;
    }
    snprintf(object, sizeof(object), "token:%lld", id);
    if (rc != VG_OK || audit(c, "token.revoke", object, "") != VG_OK)
        return EXIT_PROBLEM;
    printf("revoked token %lld\n", id);
    return 0;
}

static int audit_verify(ctx_t *c)
{
    int64_t checked = 0, bad = 0;
    if (idx_audit_verify(c->idx, &checked, &bad) != VG_OK)
        return EXIT_PROBLEM;
    if (bad) {
        printf("audit chain broken at row %lld\n", (long long)bad);
        return EXIT_PROBLEM;
    }
    printf("ok: %lld audit row(s), chain intact\n", (long long)checked);
    return 0;
}

static int audit_list(ctx_t *c)
{
    idx_audit_filter_t f = {.from_us = 0, .to_us = INT64_MAX};
    if ((c->o->from && vg_time_parse(c->o->from, &f.from_us) != VG_OK) ||
        (c->o->to && vg_time_parse(c->o->to, &f.to_us) != VG_OK) || f.from_us >= f.to_us) {
        fprintf(stderr, "vigilctl: bad --from/--to (RFC 3339 or unix seconds, from < to)\n");
        return EXIT_USAGE;
    }
    idx_audit_t *rows = NULL;
    size_t n = 0;
    if (idx_audit_list(c->idx, &f, &rows, &n) != VG_OK)
        return EXIT_PROBLEM;
    json_t *arr = c->o->json ? json_array() : NULL;
    for (size_t i = 0; i < n; i++) {
        const idx_audit_t *a = &rows[i];
        char ts[VG_TIME_TEXT_MAX];
        vg_time_format(a->ts_us, ts);
        if (arr)
            json_array_append_new(
                arr, json_pack("{sI ss ss ss ss ss so so ss ss ss ss}", "id", (json_int_t)a->id,
                               "ts", ts, "actor", a->actor, "ip", a->ip, "action", a->action,
                               "object", a->object, "from", time_json(a->from_us), "to",
                               time_json(a->to_us), "result", a->result, "detail", a->detail,
                               "prev_hash", a->prev_hash, "hash", a->hash));
        else
            printf("%-6lld %s %-22s %-15s %-16s %-28s %-6s %s\n", (long long)a->id, ts, a->actor,
                   a->ip, a->action, a->object, a->result, a->detail);
    }
    free(rows);
    if (arr)
        print_json(arr);
    return 0;
}

int ctl_accounts_dispatch(const vg_config_t *cfg, idx_t *idx, int argc, char **argv,
                          const ctl_accounts_opts_t *o)
{
    ctx_t c = {.cfg = cfg, .idx = idx, .o = o};
    const char *group = argv[0], *verb = argv[1];
    if (sodium_init() < 0)
        return EXIT_PROBLEM;
    if (is(group, "user") && argc == 3 && is(verb, "add"))
        return user_add(&c, argv[2]);
    if (is(group, "user") && argc == 3 && is(verb, "passwd"))
        return user_passwd(&c, argv[2]);
    if (is(group, "user") && argc == 3 && is(verb, "del"))
        return user_del(&c, argv[2]);
    if (is(group, "user") && argc == 2 && is(verb, "list"))
        return user_list(&c);
    if (is(group, "token") && argc == 3 && is(verb, "add"))
        return token_add(&c, argv[2]);
    if (is(group, "token") && argc == 2 && is(verb, "list"))
        return token_list(&c);
    if (is(group, "token") && argc == 3 && is(verb, "revoke"))
        return token_revoke(&c, argv[2]);
    if (is(group, "audit") && argc == 2 && is(verb, "verify"))
        return audit_verify(&c);
    if (is(group, "audit") && argc == 2 && is(verb, "list"))
        return audit_list(&c);
    fprintf(stderr, "vigilctl: unknown %s command (see vigilctl --help)\n", group);
    return EXIT_USAGE;
}
