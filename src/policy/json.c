/* json.c - partners, gateway settings, warnings and errors to and from the JSON shapes of
 * SPEC section 7 (jansson). Validation of values is policy.c's; this file only maps JSON
 * types onto it, so the CLI and the HTTP API refuse the same things with the same words. */
#include "policy/json.h"

#include "core/alloc.h"
#include "core/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* A JSON string that is never NULL: jansson refuses invalid UTF-8, and a message that
 * quotes what a person typed (possibly cut mid-character by a buffer) must still be sent,
 * so bytes that are not ASCII are replaced by '?' in that case. */
static json_t *jstr(const char *s)
{
    if (!s)
        s = "";
    json_t *j = json_string(s);
    if (j)
        return j;
    char *copy = fg_strdup(s);
    for (char *c = copy; *c; c++)
        if ((unsigned char)*c >= 0x80)
            *c = '?';
    j = json_string(copy);
    fg_free(copy);
    return j;
}

json_t *fg_partner_to_json(const struct fg_partner *p)
{
    json_t *o = json_object();
    json_t *add = json_array();
    json_t *add_u = json_array();
    for (size_t i = 0; p->additional && p->additional[i]; i++) {
        char *u = fg_domain_to_unicode(p->additional[i]);
        json_array_append_new(add, jstr(p->additional[i]));
        json_array_append_new(add_u, jstr(u));
        fg_free(u);
    }
    char *du = fg_domain_to_unicode(p->domain);
    /* Key order is the SPEC's table order; jansson keeps insertion order. */
    json_object_set_new(o, "domain", jstr(p->domain));
    json_object_set_new(o, "domain_unicode", jstr(du));
    json_object_set_new(o, "description", jstr(p->description));
    json_object_set_new(o, "additional_domains", add);
    json_object_set_new(o, "additional_domains_unicode", add_u);
    json_object_set_new(o, "subdomains", json_boolean(p->subdomains));
    json_object_set_new(o, "partner_type", jstr(fg_ptype_name(p->type)));
    json_object_set_new(o, "tls", jstr(fg_neg_name(p->tls)));
    json_object_set_new(o, "sasl", jstr(fg_neg_name(p->sasl)));
    json_object_set_new(o, "dialback", json_boolean(p->dialback));
    json_object_set_new(o, "keepalive", json_boolean(p->keepalive));
    json_object_set_new(o, "connection_limit",
                        p->connection_limit > 0 ? json_integer(p->connection_limit) : json_null());
    json_object_set_new(o, "proxy_fqdn", jstr(p->proxy_fqdn));
    fg_free(du);
    return o;
}

/* The keys apply_key knows, as static strings, so that *field outlives the request. */
static const char *const known_keys[] = {
    "domain",
    "domain_unicode",
    "description",
    "additional_domains",
    "additional_domains_unicode",
    "subdomains",
    "partner_type",
    "tls",
    "sasl",
    "dialback",
    "keepalive",
    "connection_limit",
    "proxy_fqdn",
};

static const char *known_key(const char *k)
{
    for (size_t i = 0; i < sizeof known_keys / sizeof known_keys[0]; i++)
        if (strcmp(known_keys[i], k) == 0)
            return known_keys[i];
    return NULL;
}

static int apply_additional(struct fg_partner *p, json_t *v, char *err, size_t errlen)
{
    if (!json_is_array(v)) {
        fg_errf(err, errlen, "additional_domains must be an array of domain names");
        return FG_EINVAL;
    }
    char **list = fg_calloc(1, sizeof *list);
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        char out[FG_DOMAIN_MAX + 1];
        const char *why = NULL;
        if (!json_is_string(item)) {
            fg_errf(err, errlen, "additional_domains must be an array of domain names");
            goto fail;
        }
        if (fg_domain_normalize(json_string_value(item), out, sizeof out, &why)) {
            fg_errf(err, errlen, "invalid domain '%s' in additional_domains: %s",
                    json_string_value(item), why);
            goto fail;
        }
        /* A repeat is dropped silently, keeping the first position (as on the CLI). */
        bool seen = false;
        for (size_t k = 0; list[k]; k++)
            if (strcmp(list[k], out) == 0)
                seen = true;
        if (!seen)
            fg_strv_push(&list, out);
    }
    fg_strv_free(p->additional);
    p->additional = list;
    return 0;
fail:
    fg_strv_free(list);
    return FG_EINVAL;
}

static int apply_bool(bool *dst, bool def, const char *key, json_t *v, char *err, size_t errlen)
{
    if (json_is_null(v)) {
        *dst = def;
        return 0;
    }
    if (!json_is_boolean(v)) {
        fg_errf(err, errlen, "%s must be true or false (a JSON boolean)", key);
        return FG_EINVAL;
    }
    *dst = json_is_true(v);
    return 0;
}

/* Text-valued keys go through fg_partner_set_text: one validation, one set of messages. */
static int apply_text(struct fg_partner *p, const char *key, const char *def, json_t *v, char *err,
                      size_t errlen)
{
    if (json_is_null(v))
        return fg_partner_set_text(p, key, def, err, errlen);
    if (!json_is_string(v)) {
        fg_errf(err, errlen, "%s must be a string", key);
        return FG_EINVAL;
    }
    return fg_partner_set_text(p, key, json_string_value(v), err, errlen);
}

/* Applies one member to p (a scratch copy). defaults: a partner with default values. */
static int apply_key(struct fg_partner *p, const struct fg_partner *defaults, const char *key,
                     json_t *v, char *err, size_t errlen)
{
    if (strcmp(key, "domain_unicode") == 0 || strcmp(key, "additional_domains_unicode") == 0)
        return 0; /* read-only: a client may send back what it got */
    if (strcmp(key, "domain") == 0) {
        char out[FG_DOMAIN_MAX + 1];
        if (!json_is_string(v) ||
            fg_domain_normalize(json_string_value(v), out, sizeof out, NULL) ||
            strcmp(out, p->domain) != 0) {
            fg_errf(err, errlen, "domain cannot be changed");
            return FG_EINVAL;
        }
        return 0;
    }
    if (strcmp(key, "description") == 0)
        return apply_text(p, key, defaults->description, v, err, errlen);
    if (strcmp(key, "additional_domains") == 0) {
        if (json_is_null(v)) {
            fg_strv_free(p->additional);
            p->additional = fg_strv_dup(defaults->additional);
            return 0;
        }
        return apply_additional(p, v, err, errlen);
    }
    if (strcmp(key, "subdomains") == 0)
        return apply_bool(&p->subdomains, defaults->subdomains, key, v, err, errlen);
    if (strcmp(key, "dialback") == 0)
        return apply_bool(&p->dialback, defaults->dialback, key, v, err, errlen);
    if (strcmp(key, "keepalive") == 0)
        return apply_bool(&p->keepalive, defaults->keepalive, key, v, err, errlen);
    if (strcmp(key, "partner_type") == 0)
        return apply_text(p, key, fg_ptype_name(defaults->type), v, err, errlen);
    if (strcmp(key, "tls") == 0)
        return apply_text(p, key, fg_neg_name(defaults->tls), v, err, errlen);
    if (strcmp(key, "sasl") == 0)
        return apply_text(p, key, fg_neg_name(defaults->sasl), v, err, errlen);
    if (strcmp(key, "proxy_fqdn") == 0)
        return apply_text(p, key, defaults->proxy_fqdn, v, err, errlen);
    if (strcmp(key, "connection_limit") == 0) {
        if (json_is_null(v)) {
            p->connection_limit = 0;
            return 0;
        }
        json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
        if (n < 1 || n > 65535) {
            fg_errf(err, errlen,
                    "connection_limit must be an integer from 1 to 65535, or null for the "
                    "gateway's partner_connection_limit");
            return FG_EINVAL;
        }
        p->connection_limit = (int)n;
        return 0;
    }
    fg_errf(err, errlen, "unknown key '%s' in a partner", key);
    return FG_EINVAL;
}

/* The name of an unknown key, for *field. A copy rather than a pointer into obj, so that
 * it stays valid after the caller drops the body (until the next call in this thread). */
static _Thread_local char unknown_key[128];

/* Works on a scratch partner and swaps it in only when every key applied, so a refused
 * body changes nothing. *field is a static string, or for an unknown key unknown_key. */
int fg_partner_apply_json(struct fg_partner *p, json_t *obj, bool replace, char *err, size_t errlen,
                          const char **field)
{
    const char *dummy;
    if (!field)
        field = &dummy;
    *field = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!json_is_object(obj)) {
        fg_errf(err, errlen, "a partner must be a JSON object");
        return FG_EINVAL;
    }
    struct fg_partner defaults, work;
    fg_partner_init(&defaults, p->domain);
    if (replace)
        fg_partner_init(&work, p->domain);
    else
        fg_partner_copy(&work, p);

    int rc = 0;
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        rc = apply_key(&work, &defaults, key, v, err, errlen);
        if (rc) {
            /* set_text says FG_ENOTFOUND only for keys it lacks; JSON knows them all. */
            rc = FG_EINVAL;
            const char *k = known_key(key);
            if (!k) {
                snprintf(unknown_key, sizeof unknown_key, "%s", key);
                k = unknown_key;
            }
            *field = k;
            break;
        }
    }
    fg_partner_clear(&defaults);
    if (rc) {
        fg_partner_clear(&work);
        return rc;
    }
    fg_partner_clear(p);
    *p = work;
    return 0;
}

json_t *fg_gateway_to_json(const struct fg_gateway *g)
{
    json_t *o = json_object();
    for (size_t i = 0; i < fg_gateway_nkeys; i++) {
        const struct fg_gateway_key *k = &fg_gateway_keys[i];
        const char *f = (const char *)g + k->offset;
        json_t *v = NULL;
        switch (k->kind) {
        case FG_GW_INT:
            v = json_integer(*(const long *)(const void *)f);
            break;
        case FG_GW_BOOL:
            v = json_boolean(*(const bool *)(const void *)f);
            break;
        case FG_GW_UNLISTED:
            v = jstr(f);
            break;
        }
        json_object_set_new(o, k->name, v);
    }
    return o;
}

json_t *fg_warnings_to_json(const struct fg_verdict *v)
{
    json_t *a = json_array();
    for (size_t i = 0; v && i < 2 && v->warnings[i]; i++) {
        json_t *w = json_object();
        json_object_set_new(w, "rule", jstr(v->warnings[i]));
        json_object_set_new(w, "message", jstr(fg_policy_rule_text(v->warnings[i])));
        json_array_append_new(a, w);
    }
    return a;
}

json_t *fg_error_to_json(const char *code, const char *rule, const char *message,
                         const char *const *fields)
{
    json_t *e = json_object();
    json_object_set_new(e, "code", jstr(code));
    json_object_set_new(e, "rule", rule ? jstr(rule) : json_null());
    json_object_set_new(e, "message", jstr(message));
    json_t *f = json_array();
    for (size_t i = 0; fields && fields[i]; i++)
        json_array_append_new(f, jstr(fields[i]));
    json_object_set_new(e, "fields", f);
    json_t *o = json_object();
    json_object_set_new(o, "error", e);
    return o;
}
