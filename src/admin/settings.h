/* settings.h - the gateway settings routes (SPEC section 5; the dialback secret is never
 * read or written here) and the audit log: listing with filters, and writing the record
 * of every change the API makes, in the shape doc/cli-decisions.md gives. */
#ifndef FG_ADMIN_SETTINGS_H
#define FG_ADMIN_SETTINGS_H

#include <jansson.h>

#include "http.h"

void fg_admin_gateway_get(struct fg_admin_ctx *c, struct fg_admin_req *r);
void fg_admin_gateway_patch(struct fg_admin_ctx *c, struct fg_admin_req *r);
void fg_admin_audit_list(struct fg_admin_ctx *c, struct fg_admin_req *r);

/* Writes the audit record of a change inside the caller's store transaction (lock held):
 * actor and address from r; before/after are consumed (NULL for null). 0 or FG_E*. */
int fg_admin_audit(struct fg_admin_ctx *c, struct fg_admin_req *r, const char *action,
                   const char *object, json_t *before, json_t *after);

#endif
