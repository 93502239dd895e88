/* accounts.h - the account routes of the API: XMPP users (SCRAM credentials only),
 * administrators (argon2id hashes, rule A1) and API tokens (only their SHA-256 kept). */
#ifndef FG_ADMIN_ACCOUNTS_H
#define FG_ADMIN_ACCOUNTS_H

#include "http.h"

void fg_admin_users_list(struct fg_admin_ctx *c, struct fg_admin_req *r);
void fg_admin_user_add(struct fg_admin_ctx *c, struct fg_admin_req *r);
void fg_admin_user_passwd(struct fg_admin_ctx *c, struct fg_admin_req *r);
void fg_admin_user_delete(struct fg_admin_ctx *c, struct fg_admin_req *r);

void fg_admin_admins_list(struct fg_admin_ctx *c, struct fg_admin_req *r);
void fg_admin_admin_add(struct fg_admin_ctx *c, struct fg_admin_req *r);
void fg_admin_admin_patch(struct fg_admin_ctx *c, struct fg_admin_req *r);
void fg_admin_admin_delete(struct fg_admin_ctx *c, struct fg_admin_req *r);

void fg_admin_tokens_list(struct fg_admin_ctx *c, struct fg_admin_req *r);
void fg_admin_token_create(struct fg_admin_ctx *c, struct fg_admin_req *r);
void fg_admin_token_delete(struct fg_admin_ctx *c, struct fg_admin_req *r);

/* True when name is a valid administrator name: 1..64 of A-Za-z0-9._- */
bool fg_admin_name_valid(const char *name);

#endif
