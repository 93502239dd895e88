/* policy.h - the partner model, the negotiation matrix, domain names and the gateway
 * settings (SPEC sections 1, 2 and 5). Pure: no I/O, no store, no clock. The CLI, the
 * API and the stream engine all call this module; none re-implements a rule.
 * Errors: int return, 0 ok, negative FG_E* code; the reason goes to a struct fg_verdict
 * or an error buffer given by the caller. */
#ifndef FG_POLICY_H
#define FG_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#define FG_DOMAIN_MAX 253          /* octets of an A-label domain, without trailing dot */
#define FG_DESCRIPTION_MAX 1024    /* characters (Unicode code points) */

enum fg_neg { FG_NEG_REQUIRED = 0, FG_NEG_OPTIONAL = 1, FG_NEG_NOT_SUPPORTED = 2 };
enum fg_ptype { FG_PT_FEDERATED = 0, FG_PT_PUBLIC_VERIFIED = 1, FG_PT_PUBLIC_UNVERIFIED = 2 };

/* "required" / "optional" / "not-supported" and back; parse returns -1 when unknown. */
int fg_neg_parse(const char *s);
const char *fg_neg_name(enum fg_neg n);
/* "federated" / "public-verified" / "public-unverified" and back. */
int fg_ptype_parse(const char *s);
const char *fg_ptype_name(enum fg_ptype t);
/* "true"/"false" (also "yes"/"no", "on"/"off", "1"/"0"); -1 when neither. */
int fg_bool_parse(const char *s);

/* One partner (SPEC section 1). Strings are owned (fg_malloc); domains are A-labels. */
struct fg_partner {
    char *domain;
    char *description;
    char **additional; /* NULL-terminated, never NULL after fg_partner_init */
    bool subdomains;
    enum fg_ptype type;
    enum fg_neg tls;
    enum fg_neg sasl;
    bool dialback;
    bool keepalive;
    int connection_limit; /* 1..65535, or 0 for "default" (JSON null) */
    char *proxy_fqdn;     /* "" for none; "host" or "host:port" */
};

/* Fills p with the defaults of SPEC section 1 and a copy of domain (already normalised). */
void fg_partner_init(struct fg_partner *p, const char *domain);
void fg_partner_copy(struct fg_partner *dst, const struct fg_partner *src);
void fg_partner_clear(struct fg_partner *p);
bool fg_partner_equal(const struct fg_partner *a, const struct fg_partner *b);

/* Domain names (SPEC section 1): UTS-46 non-transitional (libidn2), case-folded,
 * trailing dot removed, output as an A-label in out (at least FG_DOMAIN_MAX + 1 bytes).
 * Returns 0, or FG_EINVAL with a reason for people in *why (static text). */
int fg_domain_normalize(const char *in, char *out, size_t outlen, const char **why);
/* The U-label form of an A-label domain (fg_free it); a copy of the input if it has none. */
char *fg_domain_to_unicode(const char *alabel);
/* True when d equals parent or is a subdomain of it (both normalised). */
bool fg_domain_within(const char *d, const char *parent);

/* Prepares the bare JID of a local account (doc/cli-decisions.md): "local@domain", the
 * domain normalised and one of hosted, the localpart case-folded (ASCII) and free of
 * spaces, control characters and "&'/:<>@, at most 1023 octets. Returns 0 with the
 * prepared JID in out, or FG_EINVAL with a reason for people in *why (static text). */
int fg_user_jid_prepare(const char *in, char *const *hosted, char *out, size_t outlen,
                        const char **why);

/* The negotiation matrix (SPEC section 2): one row per (tls, sasl, dialback). */
struct fg_matrix_row {
    int number; /* 1..18 as in the SPEC table */
    enum fg_neg tls;
    enum fg_neg sasl;
    bool dialback;
    const char *methods;  /* "EXTERNAL over TLS", ..., "—" */
    const char *refusal;  /* "R2", "R3" or NULL */
    const char *warnings[2]; /* "W1", "W2" or NULL */
};
const struct fg_matrix_row *fg_policy_matrix_row(enum fg_neg tls, enum fg_neg sasl, bool dialback);
extern const struct fg_matrix_row fg_policy_matrix[18];
/* The exact text of rule "R2", "R3", "W1", "W2", "D1", "D2", "D3", "A1"; NULL if unknown.
 * D1..D3 and A1 texts are templates completed by fg_policy_check_partner. */
const char *fg_policy_rule_text(const char *rule);

/* The outcome of validating a change. */
struct fg_verdict {
    const char *rule;      /* refusing rule id, or NULL when accepted */
    char message[512];     /* exact text for people ("" when accepted) */
    const char *fields[4]; /* JSON keys at fault, NULL-terminated */
    const char *warnings[2]; /* warning rule ids, NULL-terminated */
};

/* Judges partner p as it would be after the change (SPEC sections 1 and 2). hosted: our
 * domains (A-labels, NULL-terminated). others: every other stored partner (not p's own
 * old version), NULL-terminated. Applies the first of R3, R2, D2, D3, D1 that fails;
 * otherwise fills the warnings. Returns 0 or FG_EREFUSED. */
int fg_policy_check_partner(const struct fg_partner *p, char *const *hosted,
                            const struct fg_partner *const *others, struct fg_verdict *v);

/* Field-level validation of values that are not matrix rules (description length,
 * connection limit range, proxy_fqdn syntax). Returns 0 or FG_EINVAL with a message. */
int fg_policy_check_fields(const struct fg_partner *p, char *err, size_t errlen);

/* Sets one field from text, as given on the command line: key is the JSON key
 * ("description", "additional_domains" as "a,b", "subdomains", "partner_type", "tls",
 * "sasl", "dialback", "keepalive", "connection_limit" as "N" or "default",
 * "proxy_fqdn"). Domains are normalised. Returns 0, FG_EINVAL (err says why) or
 * FG_ENOTFOUND for an unknown key. */
int fg_partner_set_text(struct fg_partner *p, const char *key, const char *value, char *err,
                        size_t errlen);

/* A1: refuses (FG_EREFUSED, message in v) when a change would leave no server-admin.
 * server_admins_after: how many accounts with role server-admin would remain. */
int fg_policy_check_admins(int server_admins_after, struct fg_verdict *v);

/* Administrator roles (SPEC section 6). */
enum fg_role { FG_ROLE_SERVER_ADMIN = 0, FG_ROLE_ADMINISTRATOR = 1, FG_ROLE_VIEWER = 2 };
int fg_role_parse(const char *s); /* -1 when unknown */
const char *fg_role_name(enum fg_role r);

/* Gateway-wide settings (SPEC section 5), without the dialback secret. */
struct fg_gateway {
    long connection_limit;
    long partner_connection_limit;
    long keepalive_interval;
    long stream_establishment_timeout;
    long stream_inactivity_timeout;
    long subscription_refresh_interval;
    bool log_message_bodies;
    char unlisted_domains[24]; /* "block" or a partner type name */
};

/* One settable key: its name, kind and range; the table is the single source. */
enum fg_gwkind { FG_GW_INT, FG_GW_BOOL, FG_GW_UNLISTED };
struct fg_gateway_key {
    const char *name; /* "keepalive_interval" */
    enum fg_gwkind kind;
    long min, max, def;
    size_t offset; /* into struct fg_gateway */
};
extern const struct fg_gateway_key fg_gateway_keys[];
extern const size_t fg_gateway_nkeys;

void fg_gateway_defaults(struct fg_gateway *g);
/* Sets key from text with range checks; 0, FG_EINVAL (err names the range) or
 * FG_ENOTFOUND for an unknown key. */
int fg_gateway_set_text(struct fg_gateway *g, const char *key, const char *value, char *err,
                        size_t errlen);
/* The value of key as text ("300", "true", "block") into out. */
int fg_gateway_get_text(const struct fg_gateway *g, const char *key, char *out, size_t outlen);

#endif
