/* static.c - the control panel's files. The decoded path is checked segment by segment,
 * then resolved with realpath and required to stay under the panel directory, so neither
 * ".." nor a symbolic link can reach another file; only regular files are sent. */
#include "static.h"
#include "core/alloc.h"

#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *ext;
    const char *type;
} types[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".json", "application/json"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".woff2", "font/woff2"},
    {".txt", "text/plain; charset=utf-8"},
};

static const char *content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (dot && (!slash || dot > slash))
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

/* Every segment must be a plain name: not empty, not starting with '.', no backslash. */
static bool safe_path(const char *p)
{
    if (*p != '/')
        return false;
    while (*p == '/') {
        p++;
        size_t n = strcspn(p, "/");
        if (n == 0 || p[0] == '.' || memchr(p, '\\', n))
            return false;
        p += n;
    }
    return *p == '\0';
}

static void not_found(struct fg_admin_req *r)
{
    fg_admin_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, NULL, "not found");
}

void fg_admin_static_serve(const char *root, struct fg_admin_req *r)
{
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
        fg_admin_add_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
        fg_admin_reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "usage", NULL, NULL,
                             "%s is not allowed here (allowed: GET, HEAD)", r->method);
        return;
    }
    char rel[1024], full[PATH_MAX], real[PATH_MAX];
    const char *q = strchr(r->path, '?');
    size_t len = q ? (size_t)(q - r->path) : strlen(r->path);
    if (!root || fg_admin_pct_decode(r->path, len, rel, sizeof rel - 16) < 0) {
        not_found(r);
        return;
    }
    size_t rlen = strlen(rel);
    if (rlen && rel[rlen - 1] == '/')
        memcpy(rel + rlen, "index.html", sizeof "index.html"); /* room kept by the decode */
    int n = snprintf(full, sizeof full, "%s%s", root, rel);
    if (!safe_path(rel) || n < 0 || (size_t)n >= sizeof full || !realpath(full, real)) {
        not_found(r);
        return;
    }
    size_t rl = strlen(root);
    if (strncmp(real, root, rl) != 0 || real[rl] != '/') {
        not_found(r);
        return;
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        if (fd >= 0)
            close(fd);
        not_found(r);
        return;
    }
    r->fd = fd;
    r->fd_size = (uint64_t)sb.st_size;
    r->text_type = content_type(real);
    r->status = MHD_HTTP_OK;
    r->ready = true;
    fg_admin_add_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    fg_admin_add_header(r, "Content-Security-Policy",
                        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
                        "form-action 'self'");
}
