/* api.c - the route table of the admin listener and what runs before every handler:
 * route matching, authentication (session cookie + CSRF, or bearer token), roles, body
 * checks (413, 415, malformed JSON); plus the session, health and metrics routes. */
#include "api.h"
#include "accounts.h"
#include "auth.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "core/stats.h"
#include "partners.h"
#include "policy/json.h"
#include "settings.h"
#include "store/store.h"

#include <errno.h>
#include <microhttpd.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PASSWORD_MAX 1023 /* octets */
#define TOKEN_MAX 256     /* octets of a bearer token as sent */
#define PARAM_MAX 3072    /* octets of a decoded path parameter (a bare JID) */
#define COOKIE_NAME "fedgate_session"

static void session_create(struct fg_admin_ctx *c, struct fg_admin_req *r);
static void session_get(struct fg_admin_ctx *c, struct fg_admin_req *r);
static void session_delete(struct fg_admin_ctx *c, struct fg_admin_req *r);
static void health(struct fg_admin_ctx *c, struct fg_admin_req *r);
static void metrics(struct fg_admin_ctx *c, struct fg_admin_req *r);

#define SA FG_ROLE_SERVER_ADMIN
#define AD FG_ROLE_ADMINISTRATOR
#define VI FG_ROLE_VIEWER
#define NONE FG_ADMIN_BODY_NONE
#define JSON FG_ADMIN_BODY_JSON
#define OPTJ FG_ADMIN_BODY_OPTIONAL
#define PTCH FG_ADMIN_BODY_PATCH

/* Every route of SPEC section 7. Reading is open to every role (a viewer "reads
 * everything"); administrators change partners, users and gateway settings; only
 * server-admins manage administrators and tokens. */
static const struct fg_admin_route routes[] = {
    {"POST", "/api/v1/session", true, VI, JSON, session_create},
    {"GET", "/api/v1/session", false, VI, NONE, session_get},
    {"DELETE", "/api/v1/session", false, VI, NONE, session_delete},
    {"GET", "/api/v1/health", true, VI, NONE, health},
    {"GET", "/api/v1/partners", false, VI, NONE, fg_admin_partners_list},
    {"POST", "/api/v1/partners", false, AD, JSON, fg_admin_partner_create},
    {"GET", "/api/v1/partners/{}", false, VI, NONE, fg_admin_partner_get},
    {"PUT", "/api/v1/partners/{}", false, AD, JSON, fg_admin_partner_put},
    {"PATCH", "/api/v1/partners/{}", false, AD, PTCH, fg_admin_partner_patch},
    {"DELETE", "/api/v1/partners/{}", false, AD, NONE, fg_admin_partner_delete},
    {"GET", "/api/v1/partners/{}/status", false, VI, NONE, fg_admin_partner_status},
    {"GET", "/api/v1/status", false, VI, NONE, fg_admin_status},
    {"GET", "/api/v1/gateway", false, VI, NONE, fg_admin_gateway_get},
    {"PATCH", "/api/v1/gateway", false, AD, PTCH, fg_admin_gateway_patch},
    {"GET", "/api/v1/users", false, VI, NONE, fg_admin_users_list},
    {"POST", "/api/v1/users", false, AD, JSON, fg_admin_user_add},
    {"PUT", "/api/v1/users/{}", false, AD, JSON, fg_admin_user_passwd},
    {"DELETE", "/api/v1/users/{}", false, AD, NONE, fg_admin_user_delete},
    {"GET", "/api/v1/admins", false, VI, NONE, fg_admin_admins_list},
    {"POST", "/api/v1/admins", false, SA, JSON, fg_admin_admin_add},
    {"PATCH", "/api/v1/admins/{}", false, SA, PTCH, fg_admin_admin_patch},
    {"DELETE", "/api/v1/admins/{}", false, SA, NONE, fg_admin_admin_delete},
    {"GET", "/api/v1/tokens", false, VI, NONE, fg_admin_tokens_list},
    {"POST", "/api/v1/tokens", false, SA, OPTJ, fg_admin_token_create},
    {"DELETE", "/api/v1/tokens/{}", false, SA, NONE, fg_admin_token_delete},
    {"GET", "/api/v1/audit", false, VI, NONE, fg_admin_audit_list},
    {"GET", "/metrics", false, VI, NONE, metrics},
};

#undef SA
#undef AD
#undef VI
#undef NONE
#undef JSON
#undef OPTJ
#undef PTCH

/* Unknown accounts are checked against this hash, so they cost as much as known ones. */
static char dummy_hash[256];
/* argon2id takes 19 MiB per check: at most two run at once. */
static sem_t login_slots;
static bool login_slots_ready;

int fg_admin_api_init(void)
{
    if (!login_slots_ready) {
        if (sem_init(&login_slots, 0, 2) != 0)
            return FG_EIO;
        login_slots_ready = true;
    }
    if (!dummy_hash[0]) {
        char pw[33];
        if (fg_random_hex(pw, 16) != FG_OK ||
            fg_password_hash(pw, dummy_hash, sizeof dummy_hash) != FG_OK)
            return FG_EIO;
    }
    return FG_OK;
}

bool fg_admin_api_owns(const char *path)
{
    return strncmp(path, "/api/", 5) == 0 || strcmp(path, "/api") == 0 ||
           strcmp(path, "/metrics") == 0;
}

/* Matches path against pattern segment by segment; {} segments are decoded into
 * params (allocated only on a match). Returns 1 on a match, 0 when the path differs, -1
 * when a {} segment cannot be decoded. */
static int match(const char *pattern, const char *path, char *params[2])
{
    const char *p = pattern, *s = path;
    const char *seg[2];
    size_t seglen[2];
    int np = 0;
    while (*p && *s) {
        if (*p != '/' || *s != '/')
            return 0;
        p++;
        s++;
        size_t pl = strcspn(p, "/"), sl = strcspn(s, "/");
        if (pl == 2 && strncmp(p, "{}", 2) == 0) {
            if (sl == 0 || np >= 2)
                return 0;
            seg[np] = s;
            seglen[np++] = sl;
        } else if (pl != sl || strncmp(p, s, pl) != 0) {
            return 0;
        }
        p += pl;
        s += sl;
    }
    if (*p || *s)
        return 0;
    char buf[2][PARAM_MAX + 1];
    for (int i = 0; i < np; i++)
        if (fg_admin_pct_decode(seg[i], seglen[i], buf[i], sizeof buf[i]) <= 0)
            return -1;
    for (int i = 0; i < np; i++)
        params[i] = fg_strdup(buf[i]);
    return 1;
}

static bool same_method(const char *route_method, const char *method)
{
    if (strcmp(route_method, method) == 0)
        return true;
    return strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0;
}

/* Finds the route; answers 404, 405 or 400 itself when there is none. */
static const struct fg_admin_route *find_route(struct fg_admin_req *r)
{
    char allow[128] = "";
    size_t alen = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        char *params[2] = {NULL, NULL};
        int m = match(routes[i].pattern, r->path, params);
        if (m < 0) {
            fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "usage", NULL, NULL,
                                 "the path holds a malformed percent-escape");
            return NULL;
        }
        if (m == 0)
            continue;
        if (same_method(routes[i].method, r->method)) {
            r->params[0] = params[0];
            r->params[1] = params[1];
            return &routes[i];
        }
        fg_free(params[0]);
        fg_free(params[1]);
        int n =
            snprintf(allow + alen, sizeof allow - alen, "%s%s", alen ? ", " : "", routes[i].method);
        if (n > 0 && (size_t)n < sizeof allow - alen)
            alen += (size_t)n;
    }
    if (alen) {
        fg_admin_add_header(r, MHD_HTTP_HEADER_ALLOW, allow);
        fg_admin_reply_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "usage", NULL, NULL,
                             "%s is not allowed here (allowed: %s)", r->method, allow);
        return NULL;
    }
    fg_admin_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, NULL,
                         "not found: no such API resource");
    return NULL;
}

static void clear_cookie(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    fg_admin_add_header(r, MHD_HTTP_HEADER_SET_COOKIE,
                        c->https ? COOKIE_NAME "=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict; "
                                               "Secure"
                                 : COOKIE_NAME "=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict");
}

static void unauthorized(struct fg_admin_req *r, const char *why)
{
    fg_admin_add_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"fedgate\"");
    fg_admin_reply_error(r, MHD_HTTP_UNAUTHORIZED, "unauthorized", NULL, NULL, "%s", why);
}

/* The less privileged of two roles (a token never acts above its administrator). */
static enum fg_role weaker(enum fg_role a, enum fg_role b)
{
    return a > b ? a : b;
}

static bool auth_bearer(struct fg_admin_ctx *c, struct fg_admin_req *r, const char *authz)
{
    const char *t = authz + 7;
    while (*t == ' ')
        t++;
    size_t len = strlen(t);
    while (len && t[len - 1] == ' ')
        len--;
    if (len == 0 || len > TOKEN_MAX) {
        atomic_fetch_add(&c->auth_failures, 1);
        unauthorized(r, "the bearer token is missing or malformed");
        return false;
    }
    char hash[65];
    fg_sha256_hex(t, len, hash);
    struct fg_token tok;
    struct fg_admin adm;
    memset(&tok, 0, sizeof tok);
    fg_admin_lock(c);
    int rc = fg_store_token_by_hash(c->st, hash, &tok);
    if (rc == FG_OK)
        rc = fg_store_admin_get(c->st, tok.admin, &adm);
    fg_admin_unlock(c);
    const char *why = NULL;
    if (rc == FG_ENOTFOUND)
        why = tok.id[0] ? "the token's administrator no longer exists" : "unknown token";
    else if (rc != FG_OK)
        why = "the store is unavailable";
    else if (tok.expires && tok.expires <= fg_time_now())
        why = "the token has expired";
    if (why) {
        if (rc == FG_OK || rc == FG_ENOTFOUND) {
            atomic_fetch_add(&c->auth_failures, 1);
            fg_log(FG_LOG_WARN, "admin-token-refused", "address", r->address, "token",
                   tok.id[0] ? tok.id : "unknown", "reason", why, NULL);
            unauthorized(r, "invalid, expired or deleted token");
        } else {
            fg_admin_reply_store_error(c, r, rc, "token");
        }
        return false;
    }
    struct fg_admin_who *w = &r->who;
    w->authed = true;
    w->by_session = false;
    snprintf(w->user, sizeof w->user, "%s", tok.admin);
    snprintf(w->token_id, sizeof w->token_id, "%s", tok.id);
    w->role = weaker(tok.role, adm.role);
    snprintf(w->actor, sizeof w->actor, "token:%s", tok.id);
    return true;
}

static bool auth_session(struct fg_admin_ctx *c, struct fg_admin_req *r, const char *sid)
{
    struct fg_admin_session s;
    if (fg_admin_session_get(sid, &s) != FG_OK) {
        clear_cookie(c, r);
        unauthorized(r, "the session has expired or ended: log in again");
        return false;
    }
    struct fg_admin adm;
    fg_admin_lock(c);
    int rc = fg_store_admin_get(c->st, s.user, &adm);
    fg_admin_unlock(c);
    if (rc == FG_ENOTFOUND) {
        fg_admin_session_drop(sid);
        clear_cookie(c, r);
        unauthorized(r, "the account no longer exists");
        return false;
    }
    if (rc != FG_OK) {
        fg_admin_reply_store_error(c, r, rc, "administrator");
        return false;
    }
    struct fg_admin_who *w = &r->who;
    w->authed = true;
    w->by_session = true;
    snprintf(w->sid, sizeof w->sid, "%s", sid);
    snprintf(w->user, sizeof w->user, "%s", s.user);
    memcpy(w->csrf, s.csrf, sizeof w->csrf);
    w->role = adm.role; /* the current role: a demotion applies at once */
    snprintf(w->actor, sizeof w->actor, "admin:%s", s.user);
    return true;
}

/* Bearer token first (scripts), else the session cookie. */
static bool authenticate(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    const char *authz = fg_admin_header(r, MHD_HTTP_HEADER_AUTHORIZATION);
    if (authz) {
        if (strncasecmp(authz, "Bearer ", 7) != 0) {
            unauthorized(r, "unsupported authorization: use \"Authorization: Bearer TOKEN\"");
            return false;
        }
        return auth_bearer(c, r, authz);
    }
    const char *sid = fg_admin_cookie(r, COOKIE_NAME);
    if (!sid || !*sid) {
        unauthorized(r, "not logged in: POST /api/v1/session or send a bearer token");
        return false;
    }
    return auth_session(c, r, sid);
}

static bool is_safe_method(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
}

static const char *const json_types[] = {"application/json", NULL};
static const char *const patch_types[] = {"application/json", "application/merge-patch+json", NULL};

void fg_admin_api_prepare(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    const struct fg_admin_route *rt = find_route(r);
    if (!rt)
        return;
    r->route = rt;
    if (!rt->public_route) {
        if (!authenticate(c, r))
            return;
        if (r->who.role > rt->min_role) {
            fg_admin_reply_error(r, MHD_HTTP_FORBIDDEN, "forbidden", NULL, NULL,
                                 "forbidden: the role %s may not do this (it needs %s)",
                                 fg_role_name(r->who.role), fg_role_name(rt->min_role));
            return;
        }
        if (r->who.by_session && !is_safe_method(r->method)) {
            const char *t = fg_admin_header(r, "X-CSRF-Token");
            if (!t || !fg_admin_secret_equal(t, r->who.csrf)) {
                fg_log(FG_LOG_WARN, "admin-csrf-refused", "user", r->who.user, "address",
                       r->address, "reason", t ? "wrong token" : "no token", NULL);
                fg_admin_reply_error(r, MHD_HTTP_FORBIDDEN, "csrf", NULL, NULL,
                                     "the X-CSRF-Token header is %s: send the csrf_token "
                                     "given at login",
                                     t ? "wrong" : "missing");
                return;
            }
        }
    }
    if (rt->body == FG_ADMIN_BODY_NONE)
        return;
    const char *ct = fg_admin_header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (ct &&
        !fg_admin_media_type_is(ct, rt->body == FG_ADMIN_BODY_PATCH ? patch_types : json_types)) {
        fg_admin_reply_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", NULL,
                             NULL, "the body must be %s",
                             rt->body == FG_ADMIN_BODY_PATCH
                                 ? "application/json or application/merge-patch+json"
                                 : "application/json");
        return;
    }
    const char *cl = fg_admin_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        errno = 0;
        char *end;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || end == cl || n > FG_ADMIN_BODY_MAX) {
            fg_admin_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", NULL, NULL,
                                 "the body is larger than %d bytes", FG_ADMIN_BODY_MAX);
            return;
        }
    }
}

void fg_admin_api_run(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    const struct fg_admin_route *rt = r->route;
    if (r->too_large) {
        fg_admin_reply_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "too_large", NULL, NULL,
                             "the body is larger than %d bytes", FG_ADMIN_BODY_MAX);
        return;
    }
    if (rt->body != FG_ADMIN_BODY_NONE) {
        if (r->body.len == 0 && rt->body != FG_ADMIN_BODY_OPTIONAL) {
            fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "usage", NULL, NULL,
                                 "a JSON object is required as the body");
            return;
        }
        if (r->body.len && !fg_admin_header(r, MHD_HTTP_HEADER_CONTENT_TYPE)) {
            fg_admin_reply_error(r, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", NULL,
                                 NULL, "the body needs Content-Type: application/json");
            return;
        }
        if (r->body.len) {
            json_error_t jerr;
            r->json = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &jerr);
            if (!r->json) {
                fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "usage", NULL, NULL,
                                     "malformed JSON at line %d, column %d: %s", jerr.line,
                                     jerr.column, jerr.text);
                return;
            }
            if (!json_is_object(r->json)) {
                fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "usage", NULL, NULL,
                                     "the body must be a JSON object");
                return;
            }
        }
    }
    rt->fn(c, r);
    if (!r->ready)
        fg_admin_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "io", NULL, NULL,
                             "internal error: no answer");
}

/* POST /session: {"username", "password"} -> the session cookie and a CSRF token. */
static void session_create(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    static const char *const keys[] = {"username", "password", NULL};
    const char *user, *pw;
    int u, p;
    if (!fg_admin_json_known_keys(r, keys) ||
        (u = fg_admin_json_string(r, "username", FG_ADMIN_NAME_MAX, &user)) < 0 ||
        (p = fg_admin_json_string(r, "password", PASSWORD_MAX, &pw)) < 0)
        return;
    if (!u || !p || !*user || !*pw) {
        static const char *const f[] = {"username", "password", NULL};
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "usage", NULL, f,
                             "username and password are required");
        return;
    }
    if (fg_admin_login_limited(r->address, user)) {
        char retry[32];
        snprintf(retry, sizeof retry, "%lld", (long long)c->limits.login_window);
        fg_admin_add_header(r, MHD_HTTP_HEADER_RETRY_AFTER, retry);
        fg_log(FG_LOG_WARN, "admin-login-refused", "user", user, "address", r->address, "reason",
               "too many failed logins", NULL);
        fg_admin_reply_error(r, MHD_HTTP_TOO_MANY_REQUESTS, "rate_limited", NULL, NULL,
                             "too many failed logins from this address or for this account: "
                             "wait a few minutes");
        return;
    }
    struct fg_admin adm;
    fg_admin_lock(c);
    int rc = fg_store_admin_get(c->st, user, &adm);
    fg_admin_unlock(c);
    if (rc != FG_OK && rc != FG_ENOTFOUND) {
        fg_admin_reply_store_error(c, r, rc, "administrator");
        return;
    }
    sem_wait(&login_slots);
    bool ok = fg_password_verify(pw, rc == FG_OK ? adm.hash : dummy_hash) && rc == FG_OK;
    sem_post(&login_slots);
    if (!ok) {
        fg_admin_login_failed(r->address, user);
        atomic_fetch_add(&c->auth_failures, 1);
        fg_log(FG_LOG_WARN, "admin-login-failed", "user", user, "address", r->address, "reason",
               rc == FG_OK ? "bad password" : "unknown user", NULL);
        fg_admin_reply_error(r, MHD_HTTP_UNAUTHORIZED, "unauthorized", NULL, NULL,
                             "wrong user name or password");
        return;
    }
    fg_admin_login_succeeded(user);
    char sid[FG_ADMIN_SID_LEN + 1], csrf[FG_ADMIN_CSRF_LEN + 1];
    if (fg_admin_session_create(adm.name, sid, csrf) != FG_OK) {
        fg_admin_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "io", NULL, NULL,
                             "cannot create a session");
        return;
    }
    char cookie[256];
    snprintf(cookie, sizeof cookie, COOKIE_NAME "=%s; Path=/; HttpOnly; SameSite=Strict%s", sid,
             c->https ? "; Secure" : "");
    fg_admin_add_header(r, MHD_HTTP_HEADER_SET_COOKIE, cookie);
    fg_log(FG_LOG_INFO, "admin-login", "user", adm.name, "role", fg_role_name(adm.role), "address",
           r->address, NULL);
    fg_admin_reply_json(r, MHD_HTTP_OK,
                        json_pack("{s:s,s:s,s:s}", "username", adm.name, "role",
                                  fg_role_name(adm.role), "csrf_token", csrf));
    memset(sid, 0, sizeof sid);
}

/* GET /session: who is calling; the CSRF token again for a reloaded page. */
static void session_get(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    json_t *doc =
        json_pack("{s:s,s:s}", "username", r->who.user, "role", fg_role_name(r->who.role));
    if (r->who.by_session)
        json_object_set_new(doc, "csrf_token", json_string(r->who.csrf));
    else
        json_object_set_new(doc, "token", json_string(r->who.token_id));
    fg_admin_reply_json(r, MHD_HTTP_OK, doc);
}

/* DELETE /session: logout; the session is gone on the server too. */
static void session_delete(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    if (!r->who.by_session) {
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "usage", NULL, NULL,
                             "no session to end: a bearer token ends with DELETE "
                             "/api/v1/tokens/{id}");
        return;
    }
    fg_admin_session_drop(r->who.sid);
    clear_cookie(c, r);
    fg_log(FG_LOG_INFO, "admin-logout", "user", r->who.user, "address", r->address, NULL);
    fg_admin_reply_empty(r, MHD_HTTP_NO_CONTENT);
}

static void health(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    fg_admin_reply_json(r, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
}

static void metric(struct fg_buf *b, const char *name, const char *type, const char *help,
                   unsigned long long v)
{
    fg_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name, v);
}

/* Per-partner series from the link status document: streams by state, refused stanzas.
 * Partner domains are A-labels (LDH), safe as label values without escaping. */
static void partner_metrics(struct fg_buf *b, json_t *doc, json_t *raw)
{
    static const char *const states[] = {"connecting", "negotiating", "established", "closing"};
    json_t *partners = json_object_get(doc, "partners"), *p;
    size_t i;
    fg_buf_puts(b, "# HELP fedgate_s2s_streams Server-to-server streams per partner and state.\n"
                   "# TYPE fedgate_s2s_streams gauge\n");
    json_array_foreach(partners, i, p) {
        const char *d = json_string_value(json_object_get(p, "domain"));
        json_t *streams = json_object_get(p, "streams"), *st;
        for (size_t k = 0; d && k < sizeof states / sizeof states[0]; k++) {
            size_t j, count = 0;
            json_array_foreach(streams, j, st) {
                const char *s = json_string_value(json_object_get(st, "state"));
                count += s && strcmp(s, states[k]) == 0;
            }
            fg_buf_printf(b, "fedgate_s2s_streams{partner=\"%s\",state=\"%s\"} %zu\n", d,
                          states[k], count);
        }
    }
    /* routed counts live only in the daemon's stored document, keyed by partner */
    json_t *counts = json_object_get(raw, "partners");
    fg_buf_puts(b, "# HELP fedgate_s2s_stanzas_routed_total Stanzas carried to or from a "
                   "partner over its links.\n# TYPE fedgate_s2s_stanzas_routed_total counter\n");
    json_array_foreach(partners, i, p) {
        const char *d = json_string_value(json_object_get(p, "domain"));
        json_t *e = d ? json_object_get(counts, d) : NULL;
        json_int_t n = json_integer_value(json_object_get(e, "routed_stanzas"));
        if (d)
            fg_buf_printf(b, "fedgate_s2s_stanzas_routed_total{partner=\"%s\"} %lld\n", d,
                          (long long)n);
    }
    fg_buf_puts(b, "# HELP fedgate_stanzas_refused_total Stanzas to or from a partner that were "
                   "refused or bounced.\n# TYPE fedgate_stanzas_refused_total counter\n");
    json_array_foreach(partners, i, p) {
        const char *d = json_string_value(json_object_get(p, "domain"));
        json_int_t n = json_integer_value(json_object_get(p, "refused_stanzas"));
        if (d)
            fg_buf_printf(b, "fedgate_stanzas_refused_total{partner=\"%s\"} %lld\n", d,
                          (long long)n);
    }
}

/* GET /metrics: Prometheus text format; only numbers this process really knows. */
static void metrics(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    struct fg_partner *all = NULL;
    size_t n = 0;
    int64_t rev = 0;
    char *hb = NULL, *links = NULL;
    fg_admin_lock(c);
    int rc = fg_store_partner_list(c->st, &all, &n);
    if (rc == FG_OK)
        rc = fg_store_revision(c->st, &rev);
    if (rc == FG_OK)
        rc = fg_admin_status_meta(c, &hb, &links);
    fg_admin_unlock(c);
    json_t *doc = rc == FG_OK ? fg_link_status_json(hb, links, all, n, NULL, fg_time_now()) : NULL;
    json_t *raw = links ? json_loads(links, 0, NULL) : NULL;
    fg_store_partners_free(all, n);
    fg_free(hb);
    fg_free(links);
    if (rc != FG_OK) {
        json_decref(raw);
        fg_admin_reply_store_error(c, r, rc, "metrics");
        return;
    }
    fg_buf_reset(&r->text);
    metric(&r->text, "fedgate_partners", "gauge", "Partners configured in the store.", n);
    metric(&r->text, "fedgate_admin_sessions", "gauge", "Live control panel sessions.",
           fg_admin_session_count());
    metric(&r->text, "fedgate_auth_failures_total", "counter",
           "Failed administrator logins and refused API tokens since the daemon started.",
           (unsigned long long)atomic_load(&c->auth_failures));
    metric(&r->text, "fedgate_c2s_connections", "gauge", "Open client connections.",
           fg_stats_get(&fg_stats.c2s_connections));
    metric(&r->text, "fedgate_c2s_sessions", "gauge", "Bound client sessions.",
           fg_stats_get(&fg_stats.c2s_sessions));
    metric(&r->text, "fedgate_c2s_logins_total", "counter",
           "Successful client logins since the daemon started.",
           fg_stats_get(&fg_stats.c2s_logins));
    metric(&r->text, "fedgate_c2s_auth_failures_total", "counter",
           "Failed client authentication attempts since the daemon started.",
           fg_stats_get(&fg_stats.c2s_auth_failures));
    metric(&r->text, "fedgate_stanzas_routed_total", "counter",
           "Stanzas from local clients handed to the router since the daemon started.",
           fg_stats_get(&fg_stats.stanzas_routed));
    metric(&r->text, "fedgate_config_revision", "gauge",
           "Configuration revision of the store (bumped by every committed change).",
           (unsigned long long)(rev < 0 ? 0 : rev));
    partner_metrics(&r->text, doc, raw);
    json_decref(doc);
    json_decref(raw);
    r->text_type = "text/plain; version=0.0.4; charset=utf-8";
    r->status = MHD_HTTP_OK;
    r->ready = true;
}
