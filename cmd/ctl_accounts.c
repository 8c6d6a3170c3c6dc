/* vigilctl user / token / audit: the same account rules as the HTTP API
 * (web/web.h), applied from the command line, which is also how the first
 * admin is created. Every change commits with its audit row, whose actor
 * names the Unix user who ran vigilctl (ctl_actor). */
#include "cmd/ctl_accounts.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "core/clock.h"
#include "core/errors.h"
#include "core/key.h"
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
    return argc >= 2 && (is(argv[0], "user") || is(argv[0], "token") || is(argv[0], "audit") ||
                         is(argv[0], "key"));
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

static int name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
}

void ctl_actor(char *out, size_t size)
{
    uid_t uid = getuid();
    const struct passwd *pw = getpwuid(uid);
    const char *sudo = getenv("SUDO_USER");
    char via[48] = "";
    /* SUDO_USER says who used sudo to become root; it comes from the
     * environment, so it is only kept when it looks like a user name. */
    if (sudo && *sudo && strlen(sudo) <= 32) {
        int ok = 1;
        for (const char *p = sudo; *p && ok; p++)
            ok = name_char(*p);
        if (ok)
            snprintf(via, sizeof(via), " sudo=%s", sudo);
    }
    snprintf(out, size, ACTOR " uid=%lu(%.32s)%s", (unsigned long)uid, pw ? pw->pw_name : "?",
             via);
}

void ctl_audit_row(idx_audit_t *row, const char *action, const char *object, int64_t from_us,
                   int64_t to_us, const char *result, const char *detail)
{
    memset(row, 0, sizeof(*row));
    row->ts_us = vg_clock_wall(&vg_system_clock);
    ctl_actor(row->actor, sizeof(row->actor));
    snprintf(row->ip, sizeof(row->ip), "local");
    snprintf(row->action, sizeof(row->action), "%s", action);
    snprintf(row->object, sizeof(row->object), "%s", object);
    row->from_us = from_us;
    row->to_us = to_us;
    snprintf(row->result, sizeof(row->result), "%s", result);
    snprintf(row->detail, sizeof(row->detail), "%s", detail);
}

int ctl_audit(idx_t *idx, const char *action, const char *object, int64_t from_us,
              int64_t to_us, const char *result, const char *detail)
{
    idx_audit_t row;
    ctl_audit_row(&row, action, object, from_us, to_us, result, detail);
    int rc = idx_audit_append(idx, &row, 1);
    if (rc != VG_OK)
        fprintf(stderr, "vigilctl: cannot write the audit row (%s): nothing done\n",
                vg_strerror(rc));
    return rc;
}

int ctl_change(idx_t *idx, idx_change_fn change, void *arg, idx_audit_t *row)
{
    int rc = idx_audited_change(idx, change, arg, row, 1);
    if (rc == VG_EAUDIT)
        fprintf(stderr, "vigilctl: cannot write the audit row: nothing was changed\n");
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

typedef struct {
    idx_account_t *a;
    const char *const *names;
    size_t n;
    const char *pwhash; /* user passwd */
    int deleting;
} acct_change_t;

static int do_user_add(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    acct_change_t *c = arg;
    (void)rows;
    (void)n;
    return idx_account_add(idx, c->a, c->names, c->n);
}

static int do_user_change(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    acct_change_t *c = arg;
    (void)rows;
    (void)n;
    if (c->deleting) {
        /* The HTTP API's rule, inside this transaction too. */
        int rc = idx_account_keeps_admin(idx, c->a->name, 1, NULL);
        if (rc != VG_OK)
            return rc;
        return idx_account_delete(idx, c->a->name);
    }
    return idx_account_update(idx, c->a->name, NULL, c->pwhash, IDX_SOURCES_KEEP, NULL, 0);
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
        fprintf(stderr, "vigilctl: user add NAME --role security|auditor|investigator|officer|admin "
                        "[--sources a,b] (NAME: [a-z0-9][a-z0-9._-]{0,62})\n");
        goto cleanup;
    }
    a.all_sources = csv == NULL;
    if ((csv && parse_sources(c, csv, names, &n) != VG_OK) || hash_from_stdin(a.pwhash) != VG_OK)
        goto cleanup;
    snprintf(a.name, sizeof(a.name), "%s", name);
    snprintf(a.role, sizeof(a.role), "%s", c->o->role);
    a.created_us = vg_clock_wall(&vg_system_clock);
    snprintf(object, sizeof(object), "user:%s", name);
    snprintf(detail, sizeof(detail), "role=%s sources=%.120s", a.role,
             c->o->sources ? c->o->sources : "all");
    idx_audit_t row;
    ctl_audit_row(&row, "user.create", object, 0, 0, "ok", detail);
    acct_change_t change = {.a = &a, .names = names, .n = n};
    int rc = ctl_change(c->idx, do_user_add, &change, &row);
    if (rc == VG_EEXIST) {
        fprintf(stderr, "vigilctl: user '%s' exists\n", name);
        goto cleanup;
    }
    ret = rc == VG_OK ? 0 : EXIT_PROBLEM;
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
    idx_audit_t row;
    ctl_audit_row(&row, "user.update", object, 0, 0, "ok", "password");
    acct_change_t change = {.a = &a, .pwhash = hash};
    if (ctl_change(c->idx, do_user_change, &change, &row) != VG_OK)
        return EXIT_PROBLEM;
    printf("password of %s changed; their sessions ended\n", name);
    return 0;
}

static int user_del(ctx_t *c, const char *name)
{
    char object[96];
    idx_account_t a = {0};
    idx_audit_t row;
    snprintf(a.name, sizeof(a.name), "%s", name);
    snprintf(object, sizeof(object), "user:%.63s", name);
    ctl_audit_row(&row, "user.delete", object, 0, 0, "ok", "");
    acct_change_t change = {.a = &a, .deleting = 1};
    int rc = ctl_change(c->idx, do_user_change, &change, &row);
    if (rc == VG_ENOTFOUND) {
        fprintf(stderr, "vigilctl: no user '%s'\n", name);
        return EXIT_USAGE;
    }
    if (rc == VG_EBUSY) {
        fprintf(stderr, "vigilctl: '%s' is the last admin account: add another admin first\n",
                name);
        return EXIT_PROBLEM;
    }
    if (rc != VG_OK)
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

typedef struct {
    const char *name, *by;
    unsigned perms;
    char *secret;
    int64_t id;
} token_change_t;

static int do_token_add(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    token_change_t *c = arg;
    (void)n;
    int rc = web_token_create(idx, c->name, c->perms, c->by, rows[0].ts_us, c->secret, &c->id);
    if (rc == VG_OK)
        snprintf(rows[0].object, sizeof(rows[0].object), "token:%lld", (long long)c->id);
    return rc;
}

static int do_token_revoke(idx_t *idx, void *arg, idx_audit_t *rows, size_t n)
{
    token_change_t *c = arg;
    (void)n;
    return idx_token_revoke(idx, c->id, rows[0].ts_us);
}

static int token_add(ctx_t *c, const char *name)
{
    unsigned perms = 0;
    char secret[WEB_TOKEN_TEXT_MAX], detail[160];
    if (!web_user_name_valid(name) || !c->o->perm || web_perms_parse(c->o->perm, &perms) != VG_OK) {
        fprintf(stderr, "vigilctl: token add NAME --perm p1,p2 (live, playback, calls, export, "
                        "hold, annotate, audit, admin)\n");
        return EXIT_USAGE;
    }
    snprintf(detail, sizeof(detail), "name=%s permissions=%.100s", name, c->o->perm);
    idx_audit_t row;
    ctl_audit_row(&row, "token.create", "", 0, 0, "ok", detail);
    token_change_t change = {.name = name, .by = row.actor, .perms = perms, .secret = secret};
    if (ctl_change(c->idx, do_token_add, &change, &row) != VG_OK)
        return EXIT_PROBLEM;
    int64_t id = change.id;
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
    snprintf(object, sizeof(object), "token:%lld", id);
    idx_audit_t row;
    ctl_audit_row(&row, "token.revoke", object, 0, 0, "ok", "");
    token_change_t change = {.id = id};
    int rc = ctl_change(c->idx, do_token_revoke, &change, &row);
    if (rc == VG_ENOTFOUND || rc == VG_EINVAL) {
        fprintf(stderr, "vigilctl: token %lld %s\n", id,
                rc == VG_ENOTFOUND ? "does not exist" : "is already revoked");
        return EXIT_USAGE;
    }
    if (rc != VG_OK)
        return EXIT_PROBLEM;
    printf("revoked token %lld\n", id);
    return 0;
}

static void print_problem(void *ctx, const char *text)
{
    (void)ctx;
    printf("%s\n", text);
}

/* The checkpoints against the trail (index/anchor.c); *problems adds up.
 * --key and --checkpoints bring copies kept off the appliance: someone who
 * rewrote the trail, its checkpoint file and even the key cannot rewrite
 * those. */
static int verify_checkpoints(ctx_t *c, int *problems, size_t *checked)
{
    vg_key_t key;
    struct stat st;
    char *secret = vg_asprintf("%s/" VG_KEY_FILE, c->cfg->data_dir);
    char *cps = vg_asprintf("%s/" IDX_CHECKPOINT_FILE, c->cfg->data_dir);
    int has_secret = stat(secret, &st) == 0, has_cps = stat(cps, &st) == 0;
    free(secret);
    free(cps);
    *checked = 0;
    int rc = c->o->key ? vg_key_load_public_file(c->o->key, &key)
                       : vg_key_load_public(c->cfg->data_dir, &key);
    if (c->o->key && rc != VG_OK) {
        fprintf(stderr, "vigilctl: %s is not a public key (minisign format)\n", c->o->key);
        return VG_EINVAL;
    }
    if (rc == VG_ENOTFOUND && !has_secret && !has_cps && !c->o->checkpoints) {
        printf("note: no appliance key yet (vigild makes one at its first start): "
               "no checkpoints to check\n");
        return VG_OK;
    }
    if (rc != VG_OK) {
        printf("the public key " VG_KEY_PUB_FILE " is %s: checkpoints cannot be checked\n",
               rc == VG_ENOTFOUND ? "missing" : "unreadable");
        (*problems)++;
        return VG_OK;
    }
    int found = 0;
    size_t n = 0;
    rc = idx_anchor_verify(c->idx, c->cfg->data_dir, NULL, &key, print_problem, NULL, &n, &found);
    *problems += found;
    *checked += n;
    if (rc == VG_OK && c->o->checkpoints) {
        found = 0;
        rc = idx_anchor_verify(c->idx, c->cfg->data_dir, c->o->checkpoints, &key, print_problem,
                               NULL, &n, &found);
        if (rc == VG_ENOTFOUND || rc == VG_EIO) {
            fprintf(stderr, "vigilctl: cannot read %s\n", c->o->checkpoints);
            return VG_EINVAL;
        }
        *problems += found;
        *checked += n;
    }
    return rc;
}

static int audit_verify(ctx_t *c)
{
    int64_t checked = 0, bad = 0;
    size_t n_cps = 0;
    int problems = 0;
    if (idx_audit_verify(c->idx, &checked, &bad) != VG_OK)
        return EXIT_PROBLEM;
    if (bad) {
        printf("broken: the audit chain is broken at row %lld "
               "(a row edited, inserted or deleted)\n",
               (long long)bad);
        problems++;
    }
    int rc = verify_checkpoints(c, &problems, &n_cps);
    if (rc != VG_OK)
        return rc == VG_EINVAL ? EXIT_USAGE : EXIT_PROBLEM;
    if (problems) {
        printf("audit trail NOT intact: %d problem(s); %lld row(s), %zu checkpoint(s)\n",
               problems, (long long)checked, n_cps);
        return EXIT_PROBLEM;
    }
    printf("ok: %lld audit row(s), chain intact, %zu signed checkpoint(s) match\n",
           (long long)checked, n_cps);
    return 0;
}

static int key_show(ctx_t *c)
{
    vg_key_t key;
    char text[VG_KEY_PUB_TEXT_MAX];
    int rc = vg_key_load_public(c->cfg->data_dir, &key);
    if (rc != VG_OK) {
        fprintf(stderr, "vigilctl: %s %s/" VG_KEY_PUB_FILE " (vigild creates the key at its "
                        "first start)\n",
                rc == VG_ENOTFOUND ? "no public key at" : "cannot read", c->cfg->data_dir);
        return EXIT_PROBLEM;
    }
    vg_key_public_text(&key, text, sizeof(text));
    fputs(text, stdout);
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
        idx_audit_t *a = &rows[i];
        char ts[VG_TIME_TEXT_MAX];
        vg_time_format(a->ts_us, ts);
        /* Rows carry request text; jansson refuses a string that is not
         * UTF-8 and the row would vanish from the list. Display only: the
         * chain is verified over the stored bytes. */
        vg_utf8_fix(a->actor, sizeof(a->actor));
        vg_utf8_fix(a->ip, sizeof(a->ip));
        vg_utf8_fix(a->action, sizeof(a->action));
        vg_utf8_fix(a->object, sizeof(a->object));
        vg_utf8_fix(a->result, sizeof(a->result));
        vg_utf8_fix(a->detail, sizeof(a->detail));
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
    if (is(group, "key") && argc == 2 && is(verb, "show"))
        return key_show(&c);
    fprintf(stderr, "vigilctl: unknown %s command (see vigilctl --help)\n", group);
    return EXIT_USAGE;
}
