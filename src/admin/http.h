/* http.h - what the admin listener's parts share: the listener state (one store handle
 * behind a mutex), one HTTP request with its response under construction, and helpers to
 * read headers and query arguments, decode paths and answer with JSON or SPEC 7 errors. */
#ifndef FG_ADMIN_HTTP_H
#define FG_ADMIN_HTTP_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "core/buf.h"
#include "policy/policy.h"

struct MHD_Connection;
struct fg_store;
struct fg_admin_route;

#define FG_ADMIN_BODY_MAX (64 * 1024) /* request bodies larger than this are refused (413) */
#define FG_ADMIN_MAX_HEADERS 6

/* The listener's state, shared by every request thread. */
struct fg_admin_ctx {
    pthread_mutex_t lock; /* serialises every use of st: MHD calls from several threads */
    struct fg_store *st;
    char **hosted; /* our domains, A-labels, NULL-terminated */
    bool https;
    struct fg_admin_auth_limits limits;
    atomic_ulong auth_failures; /* failed logins and rejected tokens since start */
};

struct fg_admin_hdr {
    const char *name;
    char *value; /* owned */
};

/* Who made a request, once authenticated. */
struct fg_admin_who {
    bool authed;
    bool by_session;                /* cookie (CSRF applies) rather than a bearer token */
    char sid[FG_ADMIN_SID_LEN + 1]; /* the session id when by_session */
    char user[128];
    enum fg_role role;
    char token_id[48]; /* when by a token */
    char actor[128];   /* audit actor: "admin:NAME" or "token:ID" */
    char csrf[FG_ADMIN_CSRF_LEN + 1];
};

struct fg_admin_req {
    struct MHD_Connection *conn;
    const char *method;
    const char *path; /* raw, not percent-decoded */
    char address[64]; /* client IP, numeric */
    const struct fg_admin_route *route;
    char *params[2]; /* decoded {…} path segments, owned */
    struct fg_admin_who who;

    /* body: collected up to FG_ADMIN_BODY_MAX, then discarded */
    struct fg_buf body;
    bool too_large;
    size_t discarded;
    json_t *json; /* parsed body (an object), or NULL when empty */

    /* response */
    bool ready; /* a response is set */
    unsigned status;
    json_t *out;        /* JSON document, or */
    struct fg_buf text; /* a text body of type text_type */
    const char *text_type;
    int fd; /* a file to send (static), -1 when none */
    uint64_t fd_size;
    struct fg_admin_hdr hdrs[FG_ADMIN_MAX_HEADERS];
    size_t nhdrs;
};

/* Responses. json: the reference is taken. */
void fg_admin_reply_json(struct fg_admin_req *r, unsigned status, json_t *doc);
void fg_admin_reply_empty(struct fg_admin_req *r, unsigned status);
/* The error object of SPEC 7 (fg_error_to_json); fields NULL-terminated or NULL. */
void fg_admin_reply_error(struct fg_admin_req *r, unsigned status, const char *code,
                          const char *rule, const char *const *fields, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Maps a store error to 404/409/503/500 and logs the store's own text. */
void fg_admin_reply_store_error(struct fg_admin_ctx *c, struct fg_admin_req *r, int err,
                                const char *what);
void fg_admin_add_header(struct fg_admin_req *r, const char *name, const char *value);

/* Request headers and query arguments (decoded); NULL when absent. */
const char *fg_admin_header(struct fg_admin_req *r, const char *name);
const char *fg_admin_cookie(struct fg_admin_req *r, const char *name);
/* The decoded query argument into out: 1 when present, 0 when absent, -1 when it cannot
 * be decoded or does not fit. */
int fg_admin_query(struct fg_admin_req *r, const char *name, char *out, size_t outlen);

/* Body members. known_keys: false (400 "usage" set) when r->json has a key outside the
 * NULL-terminated allowed list. json_string: 1 when key holds a string of at most max
 * octets, 0 when absent or null, -1 (400 "invalid_value" set) otherwise. */
bool fg_admin_json_known_keys(struct fg_admin_req *r, const char *const *allowed);
int fg_admin_json_string(struct fg_admin_req *r, const char *key, size_t max, const char **out);

/* Percent-decodes in[0..len) into out (NUL-terminated). Fails (-1) on a bad escape, an
 * encoded or raw NUL, or when out is too small; otherwise returns the decoded length. */
int fg_admin_pct_decode(const char *in, size_t len, char *out, size_t outlen);

/* True when the media type of content_type (parameters ignored, case-insensitive) is
 * one of the NULL-terminated types. */
bool fg_admin_media_type_is(const char *content_type, const char *const *types);

/* Serialises store use: every handler takes it around its store calls. */
void fg_admin_lock(struct fg_admin_ctx *c);
void fg_admin_unlock(struct fg_admin_ctx *c);

#endif
