/* http.c - request and response helpers shared by the admin listener's parts: headers,
 * cookies, query arguments, percent-decoding, media types and the SPEC 7 error body.
 * Sending the response is admin.c's; routing is api.c's. */
#include "http.h"
#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "policy/json.h"
#include "store/store.h"

#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

void fg_admin_reply_json(struct fg_admin_req *r, unsigned status, json_t *doc)
{
    if (!doc) { /* jansson refused to build it: never answer with an empty body */
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        doc = fg_error_to_json("io", NULL, "internal error: the answer could not be encoded", NULL);
    }
    json_decref(r->out);
    r->out = doc;
    r->status = status;
    r->ready = true;
}

void fg_admin_reply_empty(struct fg_admin_req *r, unsigned status)
{
    json_decref(r->out);
    r->out = NULL;
    r->status = status;
    r->ready = true;
}

/* Replaces every byte that does not start a well-formed UTF-8 sequence with '?': messages
 * quote what the client sent (and may cut it mid-character), and JSON needs UTF-8. */
static void utf8_scrub(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        size_t n = *p < 0x80             ? 1
                   : (*p & 0xe0) == 0xc0 ? 2
                   : (*p & 0xf0) == 0xe0 ? 3
                   : (*p & 0xf8) == 0xf0 ? 4
                                         : 0;
        bool ok = n > 0 && !(n == 2 && *p < 0xc2) && !(n == 4 && *p > 0xf4);
        for (size_t i = 1; ok && i < n; i++)
            ok = (p[i] & 0xc0) == 0x80;
        if (ok && n == 3) {
            unsigned cp = ((p[0] & 0x0fu) << 12) | ((p[1] & 0x3fu) << 6) | (p[2] & 0x3fu);
            ok = cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff);
        } else if (ok && n == 4) {
            unsigned cp = ((p[0] & 0x07u) << 18) | ((p[1] & 0x3fu) << 12);
            ok = cp >= 0x10000 && cp <= 0x10ffff;
        }
        if (!ok) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

void fg_admin_reply_error(struct fg_admin_req *r, unsigned status, const char *code,
                          const char *rule, const char *const *fields, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    utf8_scrub(msg);
    fg_admin_reply_json(r, status, fg_error_to_json(code, rule, msg, fields));
}

void fg_admin_reply_store_error(struct fg_admin_ctx *c, struct fg_admin_req *r, int err,
                                const char *what)
{
    switch (err) {
    case FG_ENOTFOUND:
        fg_admin_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, NULL, "not found: %s", what);
        return;
    case FG_EEXISTS:
        fg_admin_reply_error(r, MHD_HTTP_CONFLICT, "exists", NULL, NULL, "already exists: %s",
                             what);
        return;
    default:
        break;
    }
    /* the store's text may name files and servers: it goes to the log, not the client */
    fg_admin_lock(c);
    const char *detail = c->st ? fg_store_error(c->st) : NULL;
    fg_log(FG_LOG_ERROR, "admin-store-failed", "object", what, "error", fg_strerror(err), "detail",
           detail ? detail : "", NULL);
    fg_admin_unlock(c);
    if (err == FG_EBUSY)
        fg_admin_reply_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, "io", NULL, NULL,
                             "the store is busy: try again");
    else
        fg_admin_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "io", NULL, NULL,
                             "store failure on %s: see the daemon log", what);
}

void fg_admin_add_header(struct fg_admin_req *r, const char *name, const char *value)
{
    if (r->nhdrs >= FG_ADMIN_MAX_HEADERS)
        return;
    r->hdrs[r->nhdrs].name = name;
    r->hdrs[r->nhdrs].value = fg_strdup(value);
    r->nhdrs++;
}

const char *fg_admin_header(struct fg_admin_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *fg_admin_cookie(struct fg_admin_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, name);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int fg_admin_pct_decode(const char *in, size_t len, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int ch = (unsigned char)in[i];
        if (ch == '%') {
            if (i + 2 >= len)
                return -1;
            int h = hexval(in[i + 1]), l = hexval(in[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            ch = h * 16 + l;
            i += 2;
        }
        if (ch == 0 || o + 1 >= outlen)
            return -1;
        out[o++] = (char)ch;
    }
    if (o >= outlen)
        return -1;
    out[o] = '\0';
    return (int)o;
}

int fg_admin_query(struct fg_admin_req *r, const char *name, char *out, size_t outlen)
{
    const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!v)
        return 0;
    return fg_admin_pct_decode(v, strlen(v), out, outlen) < 0 ? -1 : 1;
}

bool fg_admin_media_type_is(const char *content_type, const char *const *types)
{
    if (!content_type)
        return false;
    const char *s = content_type;
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strcspn(s, ";");
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    for (; *types; types++)
        if (strlen(*types) == n && strncasecmp(s, *types, n) == 0)
            return true;
    return false;
}

bool fg_admin_json_known_keys(struct fg_admin_req *r, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(r->json, key, v)
    {
        const char *const *a = allowed;
        while (*a && strcmp(*a, key) != 0)
            a++;
        if (!*a) {
            const char *f[] = {key, NULL};
            fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "usage", NULL, f, "unknown key \"%.64s\"",
                                 key);
            return false;
        }
    }
    return true;
}

int fg_admin_json_string(struct fg_admin_req *r, const char *key, size_t max, const char **out)
{
    json_t *v = r->json ? json_object_get(r->json, key) : NULL;
    *out = NULL;
    if (!v || json_is_null(v))
        return 0;
    const char *f[] = {key, NULL};
    if (!json_is_string(v)) {
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, f,
                             "%s must be a string", key);
        return -1;
    }
    if (json_string_length(v) > max) {
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, f,
                             "%s is longer than %zu bytes", key, max);
        return -1;
    }
    *out = json_string_value(v);
    return 1;
}

void fg_admin_lock(struct fg_admin_ctx *c)
{
    pthread_mutex_lock(&c->lock);
}

void fg_admin_unlock(struct fg_admin_ctx *c)
{
    pthread_mutex_unlock(&c->lock);
}
