/* admin.c - the admin listener's life and its libmicrohttpd glue: binds the address
 * (HTTPS only when it is not loopback), collects request bodies within the limit, hands
 * requests to api.c or static.c and sends what they answer. Routes live in api.c. */
#include "admin.h"
#include "api.h"
#include "auth.h"
#include "core/alloc.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"
#include "http.h"
#include "static.h"
#include "store/store.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define DISCARD_MAX (1024 * 1024) /* bytes of an oversized body read before hanging up */
#define CERT_MAX (1024 * 1024)
#define CONNECTIONS_MAX 64 /* one thread each */
#define CONNECTIONS_PER_IP 32
#define IDLE_TIMEOUT 30 /* seconds a connection may stay silent */

static struct {
    struct MHD_Daemon *daemon;
    struct fg_admin_ctx ctx;
    bool ctx_ready;
    char *root; /* real path of the panel directory, or NULL */
    char *cert, *key;
} S;

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    fg_log(FG_LOG_WARN, "admin-http", "detail", msg, NULL);
}

/* Leaves the URL and query arguments as sent: api.c and static.c decode path segments
 * themselves, so an encoded "/" cannot split a segment. */
static size_t keep_escapes(void *cls, struct MHD_Connection *c, char *s)
{
    return strlen(s);
}

static void client_address(struct MHD_Connection *conn, char *out, size_t len)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(out, len, "unknown");
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    socklen_t sl =
        sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    char host[INET6_ADDRSTRLEN + 8];
    if (getnameinfo(sa, sl, host, sizeof host, NULL, 0, NI_NUMERICHOST) != 0)
        return;
    const char *h = host;
    if (strncmp(h, "::ffff:", 7) == 0 && strchr(h + 7, '.'))
        h += 7; /* an IPv4 client of a dual-stack socket */
    snprintf(out, len, "%s", h);
}

static void free_req(struct fg_admin_req *r)
{
    for (int i = 0; i < 2; i++)
        fg_free(r->params[i]);
    for (size_t i = 0; i < r->nhdrs; i++)
        fg_free(r->hdrs[i].value);
    fg_buf_free(&r->body);
    fg_buf_free(&r->text);
    json_decref(r->json);
    json_decref(r->out);
    if (r->fd >= 0)
        close(r->fd);
    memset(&r->who, 0, sizeof r->who);
    fg_free(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    if (*con_cls)
        free_req(*con_cls);
    *con_cls = NULL;
}

static enum MHD_Result send_reply(struct fg_admin_req *r)
{
    struct MHD_Response *resp;
    bool api = r->fd < 0;
    if (r->fd >= 0) {
        resp = MHD_create_response_from_fd64(r->fd_size, r->fd);
        if (resp)
            r->fd = -1; /* MHD closes it */
    } else if (r->out) {
        char *s = json_dumps(r->out, JSON_COMPACT);
        if (!s)
            return MHD_NO;
        size_t n = strlen(s);
        s[n] = '\n';
        resp = MHD_create_response_from_buffer(n + 1, s, MHD_RESPMEM_MUST_COPY);
        free(s);
        r->text_type = "application/json";
    } else {
        resp = MHD_create_response_from_buffer(r->text.len, r->text.data ? r->text.data : "",
                                               MHD_RESPMEM_MUST_COPY);
    }
    if (!resp)
        return MHD_NO;
    if (r->text_type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->text_type);
    for (size_t i = 0; i < r->nhdrs; i++)
        MHD_add_response_header(resp, r->hdrs[i].name, r->hdrs[i].value);
    if (api)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    if (S.ctx.https)
        MHD_add_response_header(resp, "Strict-Transport-Security", "max-age=31536000");
    enum MHD_Result ret = MHD_queue_response(r->conn, r->status, resp);
    MHD_destroy_response(resp);
    if (fg_log_enabled(FG_LOG_DEBUG)) {
        char st[8];
        snprintf(st, sizeof st, "%u", r->status);
        fg_log(FG_LOG_DEBUG, "admin-request", "method", r->method, "path", r->path, "status", st,
               "address", r->address, "actor", r->who.authed ? r->who.actor : "-", NULL);
    }
    return ret;
}

/* Keeps at most FG_ADMIN_BODY_MAX bytes; past that the body is read and dropped (413
 * follows) until DISCARD_MAX, where the connection is closed. */
static bool collect(struct fg_admin_req *r, const char *data, size_t n)
{
    if (!r->too_large && r->body.len + n <= FG_ADMIN_BODY_MAX) {
        fg_buf_append(&r->body, data, n);
        return true;
    }
    if (!r->too_large) {
        r->too_large = true;
        fg_buf_free(&r->body);
    }
    r->discarded += n;
    return r->discarded <= DISCARD_MAX;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_size, void **con_cls)
{
    struct fg_admin_ctx *c = cls;
    struct fg_admin_req *r = *con_cls;
    if (!r) {
        r = fg_calloc(1, sizeof *r);
        r->fd = -1;
        r->conn = conn;
        r->method = method;
        r->path = url;
        client_address(conn, r->address, sizeof r->address);
        *con_cls = r;
        if (fg_admin_api_owns(url))
            fg_admin_api_prepare(c, r);
        else
            fg_admin_static_serve(S.root, r);
        return r->ready ? send_reply(r) : MHD_YES;
    }
    if (*upload_size) {
        bool keep = collect(r, upload_data, *upload_size);
        *upload_size = 0;
        return keep ? MHD_YES : MHD_NO;
    }
    if (!r->ready)
        fg_admin_api_run(c, r);
    return send_reply(r);
}

static char *read_file(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    struct fg_buf b = {0};
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > CERT_MAX) {
            snprintf(err, errlen, "%s: larger than %d bytes", path, CERT_MAX);
            fclose(f);
            fg_buf_free(&b);
            return NULL;
        }
        fg_buf_append(&b, chunk, n);
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad || b.len == 0) {
        snprintf(err, errlen, "%s: %s", path, bad ? "read error" : "empty file");
        fg_buf_free(&b);
        return NULL;
    }
    return fg_buf_steal(&b);
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            return true;
        return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
    }
    return false;
}

/* Seconds from the environment (tests shorten the session and login windows). */
static int64_t env_seconds(const char *name, int64_t def)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno || *end || n < 1 || n > 30LL * 86400) {
        fg_log(FG_LOG_WARN, "admin-env-ignored", "variable", name, "reason",
               "expected whole seconds from 1 to 2592000", NULL);
        return def;
    }
    return n;
}

static int make_listener(const struct addrinfo *ai, const char *shown, char *err, size_t errlen)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        snprintf(err, errlen, "admin listener %s: socket: %s", shown, strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, 64) != 0) {
        snprintf(err, errlen, "admin listener %s: cannot listen: %s", shown, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* Loads DOMAIN.crt and DOMAIN.key of the first hosted domain for HTTPS. */
static int load_tls(const struct fg_config *cfg, const char *shown, char *err, size_t errlen)
{
    char why[512];
    const char *d = cfg->domains ? cfg->domains[0] : NULL;
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        snprintf(err, errlen,
                 "admin listener %s is not a loopback address, so it must serve HTTPS, but "
                 "this libmicrohttpd has no TLS support: bind it to 127.0.0.1 instead",
                 shown);
        return FG_EIO;
    }
    if (!d || !cfg->cert_dir) {
        snprintf(err, errlen,
                 "admin listener %s is not a loopback address, so it serves HTTPS only, and "
                 "there is no hosted domain certificate to serve",
                 shown);
        return FG_EIO;
    }
    char *crt = fg_asprintf("%s/%s.crt", cfg->cert_dir, d);
    char *key = fg_asprintf("%s/%s.key", cfg->cert_dir, d);
    S.cert = read_file(crt, why, sizeof why);
    if (S.cert)
        S.key = read_file(key, why, sizeof why);
    fg_free(crt);
    fg_free(key);
    if (!S.cert || !S.key) {
        snprintf(err, errlen,
                 "admin listener %s is not a loopback address, so it serves HTTPS only, with "
                 "the certificate of %s: %s (or bind the listener to 127.0.0.1)",
                 shown, d, why);
        return FG_EIO;
    }
    return FG_OK;
}

static void release(void)
{
    if (S.ctx_ready) {
        if (S.ctx.st)
            fg_store_close(S.ctx.st);
        fg_strv_free(S.ctx.hosted);
        pthread_mutex_destroy(&S.ctx.lock);
    }
    fg_free(S.root);
    if (S.key)
        memset(S.key, 0, strlen(S.key));
    fg_free(S.cert);
    fg_free(S.key);
    fg_admin_auth_reset();
    memset(&S, 0, sizeof S);
}

int fg_admin_start(const struct fg_config *cfg, const char *web_dir, char *err, size_t errlen)
{
    if (!cfg->listen_admin)
        return FG_OK;
    if (S.daemon) {
        snprintf(err, errlen, "the admin listener is already running");
        return FG_EIO;
    }
    char host[256], portstr[16];
    int port = 0, fd = -1;
    struct addrinfo hints, *ai = NULL;
    if (fg_config_parse_addr(cfg->listen_admin, host, sizeof host, &port) != FG_OK) {
        snprintf(err, errlen, "admin listener: invalid address '%s'", cfg->listen_admin);
        return FG_EIO;
    }
    snprintf(portstr, sizeof portstr, "%d", port);
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
    int gai = getaddrinfo(host, portstr, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "admin listener %s: %s", cfg->listen_admin, gai_strerror(gai));
        return FG_EIO;
    }
    /* recursive: an error reply reads the store's error text under the lock, whether or
     * not the handler still holds it */
    pthread_mutexattr_t ma;
    pthread_mutexattr_init(&ma);
    pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&S.ctx.lock, &ma);
    pthread_mutexattr_destroy(&ma);
    S.ctx_ready = true;
    S.ctx.https = !is_loopback(ai->ai_addr);
    if (S.ctx.https && load_tls(cfg, cfg->listen_admin, err, errlen) != FG_OK)
        goto fail;

    struct fg_admin_auth_limits l;
    fg_admin_auth_defaults(&l);
    l.session_idle = env_seconds("FG_ADMIN_SESSION_IDLE", l.session_idle);
    l.session_max = env_seconds("FG_ADMIN_SESSION_MAX", l.session_max);
    l.login_window = env_seconds("FG_ADMIN_LOGIN_WINDOW", l.login_window);
    l.login_failures = (int)env_seconds("FG_ADMIN_LOGIN_FAILURES", l.login_failures);
    fg_admin_auth_init(&l);
    S.ctx.limits = l;
    if (fg_admin_api_init() != FG_OK) {
        snprintf(err, errlen, "admin listener: cannot initialise (no randomness)");
        goto fail;
    }

    char why[1024];
    if (fg_store_open(cfg->store, cfg->base_dir, &S.ctx.st, why, sizeof why) != FG_OK) {
        snprintf(err, errlen, "admin listener: %s", why);
        goto fail;
    }
    S.ctx.hosted = cfg->domains ? fg_strv_dup(cfg->domains) : fg_calloc(1, sizeof(char *));
    atomic_init(&S.ctx.auth_failures, 0);
    /* FG_ADMIN_WEB_DIR overrides where the panel is served from (tests, packagers) */
    const char *web_env = getenv("FG_ADMIN_WEB_DIR");
    if (web_env && *web_env)
        web_dir = web_env;
    if (web_dir) {
        char real[PATH_MAX];
        struct stat sb;
        if (realpath(web_dir, real) && stat(real, &sb) == 0 && S_ISDIR(sb.st_mode))
            S.root = fg_strdup(real);
    }

    fd = make_listener(ai, cfg->listen_admin, err, errlen);
    if (fd < 0)
        goto fail;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    if (S.ctx.https) {
        flags |= MHD_USE_TLS;
        S.daemon = MHD_start_daemon(
            flags, 0, NULL, NULL, on_request, &S.ctx, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
            MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTIONS_MAX,
            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)CONNECTIONS_PER_IP,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT, MHD_OPTION_NOTIFY_COMPLETED,
            on_completed, NULL, MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, NULL,
            MHD_OPTION_HTTPS_MEM_CERT, S.cert, MHD_OPTION_HTTPS_MEM_KEY, S.key,
            MHD_OPTION_HTTPS_PRIORITIES, "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2",
            MHD_OPTION_END);
    } else {
        S.daemon = MHD_start_daemon(
            flags, 0, NULL, NULL, on_request, &S.ctx, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
            MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTIONS_MAX,
            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)CONNECTIONS_PER_IP,
            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT, MHD_OPTION_NOTIFY_COMPLETED,
            on_completed, NULL, MHD_OPTION_UNESCAPE_CALLBACK, keep_escapes, NULL, MHD_OPTION_END);
    }
    if (!S.daemon) {
        snprintf(err, errlen, "admin listener %s: libmicrohttpd did not start%s", cfg->listen_admin,
                 S.ctx.https ? " (is the certificate and key valid?)" : "");
        goto fail;
    }
    freeaddrinfo(ai);
    fg_log(FG_LOG_INFO, "admin-start", "address", cfg->listen_admin, "scheme",
           S.ctx.https ? "https" : "http", "panel", S.root ? S.root : "none", NULL);
    return FG_OK;
fail:
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    release();
    return FG_EIO;
}

void fg_admin_stop(void)
{
    if (!S.daemon)
        return;
    MHD_stop_daemon(S.daemon);
    S.daemon = NULL;
    release();
    fg_log(FG_LOG_INFO, "admin-stop", NULL);
}
