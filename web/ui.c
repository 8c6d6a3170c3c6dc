/* The browser UI's static files ([server] ui_dir): every UI route answers
 * with the app shell (index.html), which routes on the client; other paths
 * are files of the directory. Files under /v/<version>/ are immutable: the
 * version is a hash of every file's name, size and mtime taken at start, and
 * the shell loads its modules through it, so a browser caches them for a
 * year and still sees a new UI after an upgrade. Everything else is
 * revalidated with its ETag. The target was decoded and checked for '.',
 * '..' and encoded '/' by router.c; here symlinks leading out of the
 * directory are refused as well, and directories are never listed. */
#include "web/web_private.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>
#include <sodium.h>

#include "core/errors.h"
#include "core/log.h"
#include "core/util.h"

#define UI_MAX_FILE (16 * 1024 * 1024) /* the largest vendored file is far below */
#define UI_MAX_DEPTH 8
#define VERSION_MARK "{{version}}"

/* First path segments the client-side router owns: each answers the shell. */
static const char *const app_routes[] = {"login", "sources", "live",    "calls", "holds", "exports",
                                         "view",  "admin",   "reports", "qa",    NULL};

static int cmp_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void hash_tree(crypto_generichash_state *h, const char *dir, const char *rel, int depth)
{
    if (depth > UI_MAX_DEPTH)
        return;
    DIR *d = opendir(dir);
    if (!d)
        return;
    /* readdir's order is the filesystem's: sort the names for a stable hash. */
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            names = vg_realloc(names, cap * sizeof(*names));
        }
        names[n++] = vg_strdup(e->d_name);
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_name);
    for (size_t i = 0; i < n; i++) {
        char *path = vg_asprintf("%s/%s", dir, names[i]);
        char *sub = vg_asprintf("%s/%s", rel, names[i]);
        struct stat st;
        if (stat(path, &st) == 0) {
            if (S_ISDIR(st.st_mode)) {
                hash_tree(h, path, sub, depth + 1);
            } else {
                char line[PATH_MAX + 64];
                int len = snprintf(line, sizeof(line), "%s %lld %lld.%09ld\n", sub,
                                   (long long)st.st_size, (long long)st.st_mtim.tv_sec,
                                   st.st_mtim.tv_nsec);
                crypto_generichash_update(h, (const unsigned char *)line, (size_t)len);
            }
        }
        free(path);
        free(sub);
        free(names[i]);
    }
    free(names);
}

int web_ui_init(struct web *w)
{
    const char *dir = w->vcfg->http.ui_dir;
    char real[PATH_MAX];
    if (!dir || !realpath(dir, real)) {
        vg_warn("web: no UI at %s (%s): only the API is served", dir ? dir : "(unset)",
                strerror(errno));
        return VG_OK;
    }
    crypto_generichash_state h;
    unsigned char sum[8];
    crypto_generichash_init(&h, NULL, 0, sizeof(sum));
    hash_tree(&h, real, "", 0);
    crypto_generichash_final(&h, sum, sizeof(sum));
    sodium_bin2hex(w->ui_version, sizeof(w->ui_version), sum, sizeof(sum));
    w->ui_root = vg_strdup(real);
    vg_info("web: UI from %s (version %s)", real, w->ui_version);
    return VG_OK;
}

void web_ui_free(struct web *w)
{
    free(w->ui_root);
    w->ui_root = NULL;
}

static const char *content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},  {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"}, {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},          {".svg", "image/svg+xml"},
        {".png", "image/png"},                  {".ico", "image/x-icon"},
        {".woff2", "font/woff2"},               {".map", "application/json"},
        {".txt", "text/plain; charset=utf-8"},  {"LICENSE", "text/plain; charset=utf-8"},
        {"MANIFEST", "text/plain; charset=utf-8"},
    };
    size_t len = strlen(path);
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        size_t n = strlen(types[i].ext);
        if (len >= n && strcmp(path + len - n, types[i].ext) == 0)
            return types[i].type;
    }
    return "application/octet-stream";
}

/* Reads root/rel when it is a regular file inside root once every symlink
 * is resolved. VG_ENOTFOUND otherwise. */
static int read_inside(const char *root, const char *rel, char **data, size_t *len,
                       struct stat *st)
{
    char *path = vg_asprintf("%s/%s", root, rel);
    char real[PATH_MAX];
    size_t rlen = strlen(root);
    int fd = -1, rc = VG_ENOTFOUND;
    char *buf = NULL;
    if (!realpath(path, real) || strncmp(real, root, rlen) != 0 || real[rlen] != '/')
        goto cleanup;
    fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 || fstat(fd, st) != 0 || !S_ISREG(st->st_mode) || st->st_size > UI_MAX_FILE)
        goto cleanup;
    buf = vg_malloc((size_t)st->st_size + 1);
    size_t got = 0;
    while (got < (size_t)st->st_size) {
        ssize_t k = read(fd, buf + got, (size_t)st->st_size - got);
        if (k <= 0) {
            rc = VG_EIO;
            goto cleanup;
        }
        got += (size_t)k;
    }
    buf[got] = '\0';
    *data = buf;
    *len = got;
    buf = NULL;
    rc = VG_OK;

cleanup:
    if (fd >= 0)
        close(fd);
    free(buf);
    free(path);
    return rc;
}

/* The shell with the version filled in, so its module URLs are immutable. */
static void serve_shell(web_req_t *r)
{
    struct web *w = r->w;
    char *data = NULL;
    size_t len = 0;
    struct stat st = {0};
    if (read_inside(w->ui_root, "index.html", &data, &len, &st) != VG_OK) {
        web_reply_error(r, 404, "not_found", "the UI is not installed");
        return;
    }
    web_buf_t b = {0};
    const char *p = data;
    for (const char *m; (m = strstr(p, VERSION_MARK));) {
        web_buf_lit(&b, p, (size_t)(m - p));
        web_buf_lit(&b, w->ui_version, strlen(w->ui_version));
        p = m + strlen(VERSION_MARK);
    }
    web_buf_lit(&b, p, strlen(p));
    free(data);
    snprintf(r->etag, sizeof(r->etag), "\"s-%s\"", w->ui_version);
    r->cache_control = "no-cache";
    web_reply_text(r, 200, "text/html; charset=utf-8", b.p, b.len);
}

static int not_modified(web_req_t *r)
{
    const char *inm = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, "If-None-Match");
    if (!inm || !r->etag[0] || strcmp(inm, r->etag) != 0)
        return 0;
    web_reply_text(r, 304, NULL, NULL, 0);
    return 1;
}

int web_ui_serve(web_req_t *r)
{
    const web_target_t *t = &r->target;
    struct web *w = r->w;
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0)
        return 0;
    if (t->n_seg > 0 && (strcmp(t->seg[0], "api") == 0 || !w->ui_root))
        return 0;
    if (!w->ui_root)
        return 0;
    int shell = t->n_seg == 0;
    for (const char *const *a = app_routes; !shell && *a; a++)
        shell = strcmp(t->seg[0], *a) == 0;
    if (shell || (t->n_seg == 1 && strcmp(t->seg[0], "index.html") == 0)) {
        serve_shell(r);
        not_modified(r);
        return 1;
    }
    size_t first = 0;
    int versioned = 0;
    if (t->n_seg >= 3 && strcmp(t->seg[0], "v") == 0) {
        first = 2;
        versioned = strcmp(t->seg[1], w->ui_version) == 0;
    }
    web_buf_t rel = {0};
    for (size_t i = first; i < t->n_seg; i++) {
        /* dot files (an editor's or git's) are not part of the UI */
        if (t->seg[i][0] == '.') {
            free(rel.p);
            return 0;
        }
        web_buf_printf(&rel, "%s%s", i > first ? "/" : "", t->seg[i]);
    }
    char *data = NULL;
    size_t len = 0;
    struct stat st = {0};
    int rc = rel.p ? read_inside(w->ui_root, rel.p, &data, &len, &st) : VG_ENOTFOUND;
    if (rc != VG_OK) {
        free(rel.p);
        return 0; /* the router's 404 */
    }
    snprintf(r->etag, sizeof(r->etag), "\"%llx-%llx-%lx\"", (unsigned long long)st.st_size,
             (unsigned long long)st.st_mtim.tv_sec, (unsigned long)st.st_mtim.tv_nsec);
    /* An old version's URL gets today's file: revalidated, never pinned. */
    r->cache_control = versioned ? "public, max-age=31536000, immutable" : "no-cache";
    web_reply_text(r, 200, content_type(rel.p), data, len);
    free(rel.p);
    not_modified(r);
    return 1;
}
