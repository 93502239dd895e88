/* json.h - the JSON shapes of SPEC section 7 for partners, gateway settings, warnings and
 * errors, with jansson. Pure conversion, shared by fedgatectl and the HTTP API. */
#ifndef FG_POLICY_JSON_H
#define FG_POLICY_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "policy.h"

/* The PARTNER object: every key of section 1, plus domain_unicode and
 * additional_domains_unicode. New reference. */
json_t *fg_partner_to_json(const struct fg_partner *p);

/* Applies a JSON object to p. replace=true is PUT (keys not given take their default),
 * false is an RFC 7396 merge patch (null resets a key to its default). "domain" may be
 * given only if it equals p->domain (after normalisation). Read-only keys
 * (domain_unicode, additional_domains_unicode) are ignored. Returns 0 or FG_EINVAL with
 * err and *field (the JSON key at fault) set. */
int fg_partner_apply_json(struct fg_partner *p, json_t *obj, bool replace, char *err,
                          size_t errlen, const char **field);

/* {"connection_limit": 1000, ...} with the keys of section 5, without the secret. */
json_t *fg_gateway_to_json(const struct fg_gateway *g);

/* [{"rule": "W1", "message": "..."}] for the warnings of a verdict. */
json_t *fg_warnings_to_json(const struct fg_verdict *v);

/* {"error": {"code": CODE, "rule": RULE|null, "message": MSG, "fields": [...]}}.
 * fields is NULL-terminated or NULL. */
json_t *fg_error_to_json(const char *code, const char *rule, const char *message,
                         const char *const *fields);

/* The document of `partner status --json` and GET /status (SPEC section 7) from the
 * daemon's store meta values: heartbeat (RFC 3339, NULL when none) and links (the
 * "status.links" document the daemon writes, NULL when none). partners: the configured
 * ones in order; only (NULL = all) restricts to one domain. running is false when the
 * heartbeat is older than 10 s at now (seconds since the epoch); streams are then
 * empty, the last error and refused count stay. New reference. */
json_t *fg_link_status_json(const char *heartbeat, const char *links,
                            const struct fg_partner *partners, size_t n, const char *only,
                            int64_t now);

#endif
