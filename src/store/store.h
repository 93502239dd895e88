/* store.h - the one store interface (partners, gateway settings, users with SCRAM keys,
 * administrators, API tokens, audit log, revision counter, daemon metadata, rosters,
 * offline messages) over two drivers: SQLite ("sqlite:PATH") and PostgreSQL
 * ("postgresql://..."). The SQL is written once here; drivers (driver.h) only run
 * statements. Every function blocks: the daemon calls them off its event loop or at start.
 * Errors: 0 ok, negative FG_E* (FG_ENOTFOUND, FG_EEXISTS, FG_EIO, FG_EBUSY); a text for
 * people is kept in the handle (fg_store_error). */
#ifndef FG_STORE_H
#define FG_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"

struct fg_store;

/* Opens the store named by url, creating it where the driver can (SQLite file), and
 * applies pending numbered migrations. relative_to: the directory relative SQLite paths
 * are resolved against (NULL = the current directory). On failure *out is NULL and err
 * says why (for example "cannot open sqlite:/x/y.db: unable to open database file"). */
int fg_store_open(const char *url, const char *relative_to, struct fg_store **out, char *err,
                  size_t errlen);
void fg_store_close(struct fg_store *st);
/* Another handle on the store st was opened on (same driver and target, schema checked),
 * for a thread of its own: a handle is never used by two threads at once. */
int fg_store_open_another(const struct fg_store *st, struct fg_store **out, char *err,
                          size_t errlen);
/* Checks the form of a store URL without opening it: 0, or FG_EINVAL with err set. */
int fg_store_url_check(const char *url, char *err, size_t errlen);
const char *fg_store_error(const struct fg_store *st);
const char *fg_store_driver_name(const struct fg_store *st); /* "sqlite", "postgresql" */
int fg_store_schema_version(struct fg_store *st, int *version);

/* Write transactions serialise all writers (SQLite BEGIN IMMEDIATE, PostgreSQL a
 * transaction-scoped advisory lock), so a read-check-write sequence between begin and
 * commit loses no update when two processes write at once. Every write function must run
 * inside one; commit bumps the configuration revision when anything was written. Reads
 * may run inside or outside. */
int fg_store_begin(struct fg_store *st);
int fg_store_commit(struct fg_store *st);
void fg_store_rollback(struct fg_store *st);
/* fn(st, arg) inside one write transaction: committed when fn returns FG_OK, else rolled
 * back. Returns fn's result, or begin's or commit's error (fg_store_error says which). */
int fg_store_in_tx(struct fg_store *st, int (*fn)(struct fg_store *st, void *arg), void *arg);

/* The configuration revision: a counter every committed write bumps. */
int fg_store_revision(struct fg_store *st, int64_t *rev);

/* Partners. List order: by primary domain. Results are owned by the caller:
 * fg_partner_clear each, fg_free the array (fg_store_partners_free does both). */
int fg_store_partner_list(struct fg_store *st, struct fg_partner **out, size_t *n);
void fg_store_partners_free(struct fg_partner *v, size_t n);
/* By primary domain only; FG_ENOTFOUND otherwise. */
int fg_store_partner_get(struct fg_store *st, const char *domain, struct fg_partner *out);
/* The primary domain of the partner owning d as primary or additional domain. */
int fg_store_partner_owner(struct fg_store *st, const char *d, char *primary, size_t len);
int fg_store_partner_insert(struct fg_store *st, const struct fg_partner *p); /* FG_EEXISTS */
int fg_store_partner_update(struct fg_store *st, const struct fg_partner *p); /* FG_ENOTFOUND */
int fg_store_partner_delete(struct fg_store *st, const char *domain);         /* FG_ENOTFOUND */

/* Gateway settings (defaults when never set) and the dialback secret. */
int fg_store_gateway_get(struct fg_store *st, struct fg_gateway *g);
int fg_store_gateway_put(struct fg_store *st, const struct fg_gateway *g);
/* FG_ENOTFOUND when no secret was generated yet. out gets a hex string. */
int fg_store_dialback_secret_get(struct fg_store *st, char *out, size_t len);
int fg_store_dialback_secret_set(struct fg_store *st, const char *secret);

/* Users: SCRAM credentials per mechanism; the password itself is never stored. */
struct fg_scram_cred {
    char salt[64]; /* base64 */
    int iterations;
    char stored_key[96]; /* base64 */
    char server_key[96]; /* base64 */
};
struct fg_user {
    char jid[3072]; /* bare JID: localpart@domain, prepared */
    struct fg_scram_cred sha256;
    struct fg_scram_cred sha1;
};
int fg_store_user_add(struct fg_store *st, const struct fg_user *u); /* FG_EEXISTS */
int fg_store_user_get(struct fg_store *st, const char *jid, struct fg_user *u);
int fg_store_user_set_creds(struct fg_store *st, const struct fg_user *u); /* FG_ENOTFOUND */
int fg_store_user_delete(struct fg_store *st, const char *jid);
/* Bare JIDs in order, NULL-terminated (fg_strv_free). */
int fg_store_user_list(struct fg_store *st, char ***jids);

/* Administrators: argon2id encoded hashes. */
struct fg_admin {
    char name[128];
    enum fg_role role;
    char hash[256]; /* argon2id encoded string */
};
int fg_store_admin_add(struct fg_store *st, const struct fg_admin *a); /* FG_EEXISTS */
int fg_store_admin_get(struct fg_store *st, const char *name, struct fg_admin *a);
int fg_store_admin_update(struct fg_store *st, const struct fg_admin *a); /* role and hash */
int fg_store_admin_delete(struct fg_store *st, const char *name);
int fg_store_admin_list(struct fg_store *st, struct fg_admin **out, size_t *n); /* fg_free */
int fg_store_admin_count_role(struct fg_store *st, enum fg_role role, int *n);

/* API tokens: only a SHA-256 hex hash of the secret is stored. */
struct fg_token {
    char id[40];       /* public identifier, shown in lists */
    char admin[128];   /* the administrator it acts for */
    enum fg_role role; /* at most the administrator's role */
    char hash[72];     /* hex SHA-256 of the secret */
    int64_t created;
    int64_t expires; /* 0 = never */
};
int fg_store_token_add(struct fg_store *st, const struct fg_token *t);
int fg_store_token_by_hash(struct fg_store *st, const char *hash, struct fg_token *t);
int fg_store_token_list(struct fg_store *st, struct fg_token **out, size_t *n); /* fg_free */
int fg_store_token_delete(struct fg_store *st, const char *id);

/* Audit log (SPEC section 6). before/after are JSON texts or NULL. */
struct fg_audit {
    int64_t id;
    int64_t time;
    char *actor;   /* "cli:root", "admin:boss", "token:ID" */
    char *address; /* client address, "" for the CLI */
    char *action;  /* "partner.create", "gateway.update", ... */
    char *object;  /* "partner:fab.test", "user:a@home.test", ... */
    char *before;
    char *after;
};
int fg_store_audit_add(struct fg_store *st, const struct fg_audit *a);
/* Newest first; since = 0 for all, limit = 0 for no limit. */
int fg_store_audit_list(struct fg_store *st, int64_t since, size_t limit, struct fg_audit **out,
                        size_t *n);
void fg_store_audits_free(struct fg_audit *v, size_t n);

/* Rosters (RFC 6121), one item per (owner, contact), both bare JIDs. The subscription
 * state of RFC 6121 Appendix A is sub + ask (pending out) + pending_in. Writes run inside
 * fg_store_begin/commit like every write, but never bump the configuration revision. */
enum fg_roster_sub { FG_ROSTER_NONE = 0, FG_ROSTER_TO = 1, FG_ROSTER_FROM = 2, FG_ROSTER_BOTH = 3 };
struct fg_roster_item {
    char *contact; /* bare JID */
    char *name;    /* NULL: none */
    char **groups; /* NULL-terminated; NULL: none */
    enum fg_roster_sub sub;
    bool ask;        /* outbound request pending (ask='subscribe') */
    bool pending_in; /* inbound request waiting for the owner's answer */
    bool approved;   /* pre-approved (RFC 6121 section 3.4) */
    bool listed;     /* in the roster the owner sees; false: subscription bookkeeping only */
};
void fg_roster_item_clear(struct fg_roster_item *it);
void fg_store_roster_items_free(struct fg_roster_item *v, size_t n);
/* Inserts or replaces the item and sets the owner's roster version, in one write. */
int fg_store_roster_put(struct fg_store *st, const char *owner, const struct fg_roster_item *it,
                        int64_t version);
/* Deletes the item (FG_ENOTFOUND when absent) and sets the owner's roster version. */
int fg_store_roster_delete(struct fg_store *st, const char *owner, const char *contact,
                           int64_t version);
/* One owner's items, by contact in byte order, and roster version (0 when never set). */
int fg_store_roster_get(struct fg_store *st, const char *owner, struct fg_roster_item **items,
                        size_t *n, int64_t *version);
/* Calls cb once per owner that has items or a version (owners in byte order, items in no
 * particular order; both valid only during the call). A nonzero return from cb stops
 * the walk and is returned. */
typedef int (*fg_store_roster_cb)(void *ctx, const char *owner, int64_t version,
                                  const struct fg_roster_item *items, size_t n);
int fg_store_roster_each(struct fg_store *st, fg_store_roster_cb cb, void *ctx);

/* Offline messages: the serialized stanza, delivered verbatim later, oldest first (by
 * id). Writes need a transaction and never bump the revision. */
struct fg_offline_msg {
    int64_t id;
    int64_t stamp; /* seconds since the epoch, when stored */
    char *stanza;
};
/* Appends a message; FG_ELIMIT when the recipient already holds limit messages (0: no
 * limit). */
int fg_store_offline_add(struct fg_store *st, const char *recipient, int64_t stamp,
                         const char *stanza, size_t limit);
/* The recipient's messages, oldest first, at most max (0: all). */
int fg_store_offline_list(struct fg_store *st, const char *recipient, size_t max,
                          struct fg_offline_msg **out, size_t *n);
void fg_store_offline_free(struct fg_offline_msg *v, size_t n);
/* Deletes the recipient's messages with id <= up_to; deleted (may be NULL) gets how many. */
int fg_store_offline_delete(struct fg_store *st, const char *recipient, int64_t up_to,
                            long *deleted);
/* cb once per recipient holding messages, with their number; nonzero stops (returned). */
typedef int (*fg_store_offline_count_cb)(void *ctx, const char *recipient, size_t n);
int fg_store_offline_counts(struct fg_store *st, fg_store_offline_count_cb cb, void *ctx);

/* Small key/value metadata (daemon heartbeat, link status documents). Not audited and
 * does not bump the revision. */
int fg_store_meta_get(struct fg_store *st, const char *key, char **value); /* fg_free */
int fg_store_meta_set(struct fg_store *st, const char *key, const char *value);

#endif
