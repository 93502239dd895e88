/* api.h - the routes of the admin listener (SPEC section 7) as one table of method, path
 * pattern, minimum role, body kind and handler. Before a handler runs, api.c has matched
 * the route, authenticated the caller (session cookie plus CSRF token, or bearer token),
 * checked the role and the body's media type and size, and parsed the body. */
#ifndef FG_ADMIN_API_H
#define FG_ADMIN_API_H

#include <stdbool.h>

#include "http.h"

enum fg_admin_body {
    FG_ADMIN_BODY_NONE,     /* any body is ignored */
    FG_ADMIN_BODY_JSON,     /* application/json, required */
    FG_ADMIN_BODY_OPTIONAL, /* application/json, may be empty */
    FG_ADMIN_BODY_PATCH,    /* application/json or application/merge-patch+json */
};

typedef void (*fg_admin_handler)(struct fg_admin_ctx *c, struct fg_admin_req *r);

struct fg_admin_route {
    const char *method;
    const char *pattern; /* "/api/v1/partners/{}": {} matches one non-empty path segment */
    bool public_route;   /* no login needed */
    enum fg_role min_role;
    enum fg_admin_body body;
    fg_admin_handler fn;
};

/* True when path is the API's (under /api/v1/, or /metrics) rather than a panel file. */
bool fg_admin_api_owns(const char *path);
/* Headers known: matches the route, authenticates, checks role, CSRF, media type and
 * declared length. Leaves a response in r (r->ready) when the request ends here. */
void fg_admin_api_prepare(struct fg_admin_ctx *c, struct fg_admin_req *r);
/* Body complete: refuses it when too large, parses it and runs the handler. */
void fg_admin_api_run(struct fg_admin_ctx *c, struct fg_admin_req *r);

/* Computes the dummy password hash that unknown accounts are checked against, so that a
 * failed login takes as long for a missing account as for a wrong password. */
int fg_admin_api_init(void);

#endif
