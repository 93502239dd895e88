/* partners.h - the partner routes of the API (SPEC sections 1, 2 and 7): list, show,
 * create, replace, merge-patch, delete, and the link status. Rules are the policy
 * module's; every read-check-write runs inside one store write transaction. */
#ifndef FG_ADMIN_PARTNERS_H
#define FG_ADMIN_PARTNERS_H

#include "http.h"

void fg_admin_partners_list(struct fg_admin_ctx *c, struct fg_admin_req *r);
void fg_admin_partner_get(struct fg_admin_ctx *c, struct fg_admin_req *r);
void fg_admin_partner_create(struct fg_admin_ctx *c, struct fg_admin_req *r);
void fg_admin_partner_put(struct fg_admin_ctx *c, struct fg_admin_req *r);
void fg_admin_partner_patch(struct fg_admin_ctx *c, struct fg_admin_req *r);
void fg_admin_partner_delete(struct fg_admin_ctx *c, struct fg_admin_req *r);
/* GET /partners/{domain}/status and GET /status: the shape of `partner status --json`. */
void fg_admin_partner_status(struct fg_admin_ctx *c, struct fg_admin_req *r);
void fg_admin_status(struct fg_admin_ctx *c, struct fg_admin_req *r);

/* The daemon's heartbeat and link status document from the store meta values (each set
 * to NULL when absent; fg_free them). The caller holds the store lock. */
int fg_admin_status_meta(struct fg_admin_ctx *c, char **hb, char **links);

#endif
