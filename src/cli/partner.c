/* partner.c - fedgatectl partner list|show|new|set|remove. Validation is the policy
 * module's; this file maps flags to fields, runs the read-check-write inside one store
 * write transaction, and reports verdicts with the texts and exit codes of SPEC 2 and 7. */
#include "cli.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/err.h"
#include "policy/json.h"

#include <fnmatch.h>
#include <stdio.h>
#include <string.h>

static const char usage_new[] = "partner new DOMAIN [FIELD FLAGS]";
static const char usage_set[] = "partner set DOMAIN [FIELD FLAGS]";

/* Field flags in the order they are applied; key = JSON key of SPEC section 1. */
static const struct {
    const char *flag;
    const char *key;
} field_flags[] = {
    {"description", "description"},
    {"subdomains", "subdomains"},
    {"type", "partner_type"},
    {"tls", "tls"},
    {"sasl", "sasl"},
    {"dialback", "dialback"},
    {"keepalive", "keepalive"},
    {"connection-limit", "connection_limit"},
    {"proxy-fqdn", "proxy_fqdn"},
};

static const struct fg_flag_spec field_spec[] = {
    {"description", true, false},
    {"additional-domains", true, false},
    {"add-domain", true, true},
    {"remove-domain", true, true},
    {"clear-domains", false, false},
    {"subdomains", true, false},
    {"type", true, false},
    {"tls", true, false},
    {"sasl", true, false},
    {"dialback", true, false},
    {"keepalive", true, false},
    {"connection-limit", true, false},
    {"proxy-fqdn", true, false},
    {NULL, false, false},
};

/* field: the JSON key the domain was given for ("domain", "additional_domains"). */
static int normalize_arg(struct fg_cli *c, const char *in, const char *field, char *out,
                         size_t outlen)
{
    const char *why = NULL;
    if (fg_domain_normalize(in, out, outlen, &why) != FG_OK) {
        const char *f[] = {field, NULL};
        return fg_cli_error(c, FG_EXIT_USAGE, "invalid_value", NULL, f,
                            "invalid domain name '%s' for %s: %s", in, field,
                            why ? why : "invalid");
    }
    return FG_EXIT_OK;
}

static bool has_domain(char *const *v, const char *d)
{
    for (size_t i = 0; v && v[i]; i++)
        if (strcmp(v[i], d) == 0)
            return true;
    return false;
}

/* Applies the field flags of a to p: --additional-domains replaces the list, or
 * --clear-domains, --add-domain and --remove-domain edit it, then the other fields. */
static int apply_flags(struct fg_cli *c, const struct fg_args *a, struct fg_partner *p)
{
    char err[512];
    bool replace = fg_cli_has(a, "additional-domains");
    bool edit = fg_cli_has(a, "add-domain") || fg_cli_has(a, "remove-domain") ||
                fg_cli_has(a, "clear-domains");
    if (replace && edit)
        return fg_cli_error(c, FG_EXIT_USAGE, "usage", NULL, NULL,
                            "--additional-domains replaces the list: do not combine it with "
                            "--add-domain, --remove-domain or --clear-domains");
    if (replace &&
        fg_partner_set_text(p, "additional_domains", fg_cli_flag(a, "additional-domains"), err,
                            sizeof err) != FG_OK) {
        static const char *const f[] = {"additional_domains", NULL};
        return fg_cli_error(c, FG_EXIT_USAGE, "invalid_value", NULL, f, "%s", err);
    }
    if (fg_cli_has(a, "clear-domains")) {
        fg_strv_free(p->additional);
        p->additional = fg_calloc(1, sizeof *p->additional);
    }
    for (int i = 0; i < a->nflags; i++) {
        const struct fg_flag *f = &a->flags[i];
        bool add = strcmp(f->name, "add-domain") == 0;
        if (!add && strcmp(f->name, "remove-domain") != 0)
            continue;
        char d[FG_DOMAIN_MAX + 1];
        int rc = normalize_arg(c, f->value, "additional_domains", d, sizeof d);
        if (rc)
            return rc;
        if (add) {
            if (!has_domain(p->additional, d))
                fg_strv_push(&p->additional, d);
            continue;
        }
        if (!has_domain(p->additional, d))
            return fg_cli_error(c, FG_EXIT_NOTFOUND, "not_found", NULL, NULL,
                                "not found: partner %s has no additional domain %s", p->domain,
                                d);
        size_t n = fg_strv_len(p->additional), k = 0;
        for (size_t j = 0; j < n; j++) {
            if (strcmp(p->additional[j], d) == 0)
                fg_free(p->additional[j]);
            else
                p->additional[k++] = p->additional[j];
        }
        p->additional[k] = NULL;
    }
    for (size_t i = 0; i < sizeof field_flags / sizeof field_flags[0]; i++) {
        const char *v = fg_cli_flag(a, field_flags[i].flag);
        if (!v)
            continue;
        if (fg_partner_set_text(p, field_flags[i].key, v, err, sizeof err) != FG_OK) {
            const char *f[] = {field_flags[i].key, NULL};
            return fg_cli_error(c, FG_EXIT_USAGE, "invalid_value", NULL, f, "%s", err);
        }
    }
    if (fg_policy_check_fields(p, err, sizeof err) != FG_OK)
        return fg_cli_error(c, FG_EXIT_USAGE, "invalid_value", NULL, NULL, "%s", err);
    return FG_EXIT_OK;
}

/* Runs the rules on p against every other stored partner; prints the refusal. */
static int judge(struct fg_cli *c, const struct fg_partner *p, struct fg_verdict *v)
{
    struct fg_partner *all = NULL;
    size_t n = 0;
    int rc = fg_store_partner_list(c->store, &all, &n);
    if (rc != FG_OK)
        return fg_cli_store_error(c, rc, "partner list");
    const struct fg_partner **others = fg_calloc(n + 1, sizeof *others);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(all[i].domain, p->domain) != 0)
            others[k++] = &all[i];
    rc = fg_policy_check_partner(p, c->cfg.domains, others, v);
    fg_free(others);
    fg_store_partners_free(all, n);
    if (rc == FG_OK)
        return FG_EXIT_OK;
    return fg_cli_error(c, FG_EXIT_REFUSED, "refused", v->rule, v->fields, "%s", v->message);
}

static void print_partner(const struct fg_partner *p)
{
    char *u = fg_domain_to_unicode(p->domain);
    printf("domain:             %s", p->domain);
    if (strcmp(u, p->domain) != 0)
        printf(" (%s)", u);
    fg_free(u);
    printf("\ndescription:        %s\n", p->description);
    printf("additional domains: ");
    for (size_t i = 0; p->additional[i]; i++)
        printf("%s%s", i ? ", " : "", p->additional[i]);
    printf("\nsubdomains:         %s\n", p->subdomains ? "true" : "false");
    printf("partner type:       %s\n", fg_ptype_name(p->type));
    printf("tls:                %s\n", fg_neg_name(p->tls));
    printf("sasl:               %s\n", fg_neg_name(p->sasl));
    printf("dialback:           %s\n", p->dialback ? "true" : "false");
    printf("keepalive:          %s\n", p->keepalive ? "true" : "false");
    if (p->connection_limit)
        printf("connection limit:   %d\n", p->connection_limit);
    else
        printf("connection limit:   default\n");
    printf("proxy fqdn:         %s\n", p->proxy_fqdn);
}

static void print_result(struct fg_cli *c, const struct fg_partner *p, const struct fg_verdict *v)
{
    fg_cli_print_warnings(c, v);
    if (c->json) {
        json_t *doc = json_pack("{s:o,s:o}", "partner", fg_partner_to_json(p), "warnings",
                                fg_warnings_to_json(v));
        fg_cli_print_json(c, doc);
    } else {
        print_partner(p);
    }
}

static char *object_name(const char *domain)
{
    return fg_asprintf("partner:%s", domain);
}

/* Commits a checked change: insert (old == NULL), update, or delete (p == NULL), with its
 * audit record, in the transaction the caller began. Prints the result. */
static int save(struct fg_cli *c, const struct fg_partner *old, const struct fg_partner *p,
                const struct fg_verdict *v)
{
    const char *domain = p ? p->domain : old->domain;
    const char *action = !old ? "partner.create" : p ? "partner.update" : "partner.delete";
    int err = !old ? fg_store_partner_insert(c->store, p)
              : p  ? fg_store_partner_update(c->store, p)
                   : fg_store_partner_delete(c->store, old->domain);
    char *obj = object_name(domain);
    if (err == FG_OK)
        err = fg_cli_audit(c, action, obj, old ? fg_partner_to_json(old) : NULL,
                           p ? fg_partner_to_json(p) : NULL);
    if (err == FG_OK)
        err = fg_store_commit(c->store);
    fg_free(obj);
    if (err != FG_OK) {
        fg_store_rollback(c->store);
        return fg_cli_store_error(c, err, domain);
    }
    if (p) {
        print_result(c, p, v);
    } else if (c->json) {
        fg_cli_print_json(c, json_pack("{s:s}", "removed", domain));
    } else {
        printf("removed partner %s\n", domain);
    }
    return FG_EXIT_OK;
}

static int begin(struct fg_cli *c)
{
    int rc = fg_cli_open(c);
    if (rc)
        return rc;
    int err = fg_store_begin(c->store);
    return err == FG_OK ? FG_EXIT_OK : fg_cli_store_error(c, err, "store");
}

/* Loads the partner whose PRIMARY domain is d; additional domains answer not-found. */
static int load(struct fg_cli *c, const char *d, struct fg_partner *out)
{
    int err = fg_store_partner_get(c->store, d, out);
    if (err == FG_OK)
        return FG_EXIT_OK;
    if (err == FG_ENOTFOUND)
        return fg_cli_error(c, FG_EXIT_NOTFOUND, "not_found", NULL, NULL,
                            "not found: partner %s", d);
    return fg_cli_store_error(c, err, d);
}

static int cmd_new(struct fg_cli *c, int argc, char **argv)
{
    struct fg_args a;
    int rc = fg_cli_parse(c, argc, argv, field_spec, 1, 1, usage_new, &a);
    if (rc)
        return rc;
    char d[FG_DOMAIN_MAX + 1];
    if ((rc = normalize_arg(c, a.pos[0], "domain", d, sizeof d)))
        return rc;
    struct fg_partner p, old;
    fg_partner_init(&p, d);
    if ((rc = apply_flags(c, &a, &p)) || (rc = begin(c)))
        goto out;
    if (fg_store_partner_get(c->store, d, &old) == FG_OK) {
        fg_partner_clear(&old);
        static const char *const f[] = {"domain", NULL};
        rc = fg_cli_error(c, FG_EXIT_EXISTS, "exists", NULL, f, "already exists: partner %s", d);
        fg_store_rollback(c->store);
        goto out;
    }
    struct fg_verdict v;
    if ((rc = judge(c, &p, &v))) {
        fg_store_rollback(c->store);
        goto out;
    }
    rc = save(c, NULL, &p, &v);
out:
    fg_partner_clear(&p);
    return rc;
}

static int cmd_set(struct fg_cli *c, int argc, char **argv)
{
    struct fg_args a;
    int rc = fg_cli_parse(c, argc, argv, field_spec, 1, 1, usage_set, &a);
    if (rc)
        return rc;
    char d[FG_DOMAIN_MAX + 1];
    if ((rc = normalize_arg(c, a.pos[0], "domain", d, sizeof d)) || (rc = begin(c)))
        return rc;
    struct fg_partner old, p;
    if ((rc = load(c, d, &old))) {
        fg_store_rollback(c->store);
        return rc;
    }
    fg_partner_copy(&p, &old);
    struct fg_verdict v;
    if ((rc = apply_flags(c, &a, &p)) || (rc = judge(c, &p, &v))) {
        fg_store_rollback(c->store);
    } else if (fg_partner_equal(&old, &p)) {
        fg_store_rollback(c->store); /* nothing changed: nothing to write or audit */
        print_result(c, &p, &v);
    } else {
        rc = save(c, &old, &p, &v);
    }
    fg_partner_clear(&old);
    fg_partner_clear(&p);
    return rc;
}

static int cmd_remove(struct fg_cli *c, int argc, char **argv)
{
    struct fg_args a;
    int rc = fg_cli_parse(c, argc, argv, NULL, 1, 1, "partner remove DOMAIN", &a);
    if (rc)
        return rc;
    char d[FG_DOMAIN_MAX + 1];
    if ((rc = normalize_arg(c, a.pos[0], "domain", d, sizeof d)) || (rc = begin(c)))
        return rc;
    struct fg_partner old;
    if ((rc = load(c, d, &old))) {
        fg_store_rollback(c->store);
        return rc;
    }
    rc = save(c, &old, NULL, NULL);
    fg_partner_clear(&old);
    return rc;
}

static int cmd_show(struct fg_cli *c, int argc, char **argv)
{
    struct fg_args a;
    int rc = fg_cli_parse(c, argc, argv, NULL, 1, 1, "partner show DOMAIN", &a);
    if (rc)
        return rc;
    char d[FG_DOMAIN_MAX + 1];
    if ((rc = normalize_arg(c, a.pos[0], "domain", d, sizeof d)) || (rc = fg_cli_open(c)))
        return rc;
    struct fg_partner p;
    if ((rc = load(c, d, &p)))
        return rc;
    if (c->json)
        fg_cli_print_json(c, json_pack("{s:o}", "partner", fg_partner_to_json(&p)));
    else
        print_partner(&p);
    fg_partner_clear(&p);
    return FG_EXIT_OK;
}

/* --filter GLOB matches the primary domain in either form, or an additional domain. */
static bool matches(const struct fg_partner *p, const char *glob)
{
    if (!glob)
        return true;
    char *u = fg_domain_to_unicode(p->domain);
    bool m = fnmatch(glob, p->domain, FNM_CASEFOLD) == 0 || fnmatch(glob, u, FNM_CASEFOLD) == 0;
    fg_free(u);
    for (size_t i = 0; !m && p->additional[i]; i++)
        m = fnmatch(glob, p->additional[i], FNM_CASEFOLD) == 0;
    return m;
}

static int cmd_list(struct fg_cli *c, int argc, char **argv)
{
    static const struct fg_flag_spec spec[] = {{"filter", true, false}, {NULL, false, false}};
    struct fg_args a;
    int rc = fg_cli_parse(c, argc, argv, spec, 0, 0, "partner list [--filter GLOB]", &a);
    if (rc || (rc = fg_cli_open(c)))
        return rc;
    struct fg_partner *all = NULL;
    size_t n = 0;
    int err = fg_store_partner_list(c->store, &all, &n);
    if (err != FG_OK)
        return fg_cli_store_error(c, err, "partner list");
    const char *glob = fg_cli_flag(&a, "filter");
    if (c->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            if (matches(&all[i], glob))
                json_array_append_new(arr, fg_partner_to_json(&all[i]));
        fg_cli_print_json(c, json_pack("{s:o}", "partners", arr));
    } else {
        printf("%-32s %-18s %-14s %-14s %-8s %-24s %s\n", "DOMAIN", "TYPE", "TLS", "SASL",
               "DIALBACK", "ADDITIONAL DOMAINS", "DESCRIPTION");
        for (size_t i = 0; i < n; i++) {
            const struct fg_partner *p = &all[i];
            if (!matches(p, glob))
                continue;
            struct fg_buf extra = {0};
            for (size_t j = 0; p->additional[j]; j++) {
                if (j)
                    fg_buf_putc(&extra, ',');
                fg_buf_puts(&extra, p->additional[j]);
            }
            char *u = fg_domain_to_unicode(p->domain);
            printf("%-32s %-18s %-14s %-14s %-8s %-24s %s\n", u, fg_ptype_name(p->type),
                   fg_neg_name(p->tls), fg_neg_name(p->sasl), p->dialback ? "true" : "false",
                   extra.len ? fg_buf_str(&extra) : "-", p->description);
            fg_free(u);
            fg_buf_free(&extra);
        }
    }
    fg_store_partners_free(all, n);
    return FG_EXIT_OK;
}

static const char *jstr(json_t *o, const char *k, const char *dflt)
{
    const char *v = json_string_value(json_object_get(o, k));
    return v ? v : dflt;
}

/* partner status [DOMAIN]: the link status the daemon keeps in store meta (SPEC 7). */
static int cmd_status(struct fg_cli *c, int argc, char **argv)
{
    struct fg_args a;
    int rc = fg_cli_parse(c, argc, argv, NULL, 0, 1, "partner status [DOMAIN]", &a);
    if (rc)
        return rc;
    char d[FG_DOMAIN_MAX + 1];
    bool one = a.npos == 1;
    if (one && (rc = normalize_arg(c, a.pos[0], "domain", d, sizeof d)))
        return rc;
    if ((rc = fg_cli_open(c)))
        return rc;
    struct fg_partner *all = NULL;
    size_t n = 0;
    char *hb = NULL, *links = NULL;
    int err = fg_store_partner_list(c->store, &all, &n);
    if (err == FG_OK && (err = fg_store_meta_get(c->store, "daemon.heartbeat", &hb)) ==
                            FG_ENOTFOUND)
        err = FG_OK;
    if (err == FG_OK && (err = fg_store_meta_get(c->store, "status.links", &links)) ==
                            FG_ENOTFOUND)
        err = FG_OK;
    if (err != FG_OK) {
        fg_store_partners_free(all, n);
        fg_free(hb);
        fg_free(links);
        return fg_cli_store_error(c, err, "status");
    }
    bool found = !one;
    for (size_t i = 0; one && i < n; i++)
        found = found || strcmp(all[i].domain, d) == 0;
    json_t *doc = found ? fg_link_status_json(hb, links, all, n, one ? d : NULL, fg_time_now())
                        : NULL;
    fg_store_partners_free(all, n);
    fg_free(hb);
    fg_free(links);
    if (!found)
        return fg_cli_error(c, FG_EXIT_NOTFOUND, "not_found", NULL, NULL,
                            "not found: partner %s", d);
    if (c->json) {
        fg_cli_print_json(c, doc);
        return FG_EXIT_OK;
    }
    json_t *dm = json_object_get(doc, "daemon");
    printf("daemon: %s (heartbeat %s)\n",
           json_is_true(json_object_get(dm, "running")) ? "running" : "not running",
           jstr(dm, "heartbeat", "never"));
    printf("%-28s %-4s %-12s %-24s %-24s %-8s %-14s %s\n", "PARTNER", "DIR", "STATE", "LOCAL",
           "REMOTE", "TLS", "AUTH", "SINCE");
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(doc, "partners"), i, p)
    {
        const char *dom = jstr(p, "domain", "");
        json_t *streams = json_object_get(p, "streams");
        if (json_array_size(streams) == 0)
            printf("%-28s %-4s %-12s %-24s %-24s %-8s %-14s %s\n", dom, "-", "no streams", "-",
                   "-", "-", "-", "-");
        size_t j;
        json_t *st;
        json_array_foreach(streams, j, st)
        {
            printf("%-28s %-4s %-12s %-24s %-24s %-8s %-14s %s\n", dom,
                   jstr(st, "direction", "-"), jstr(st, "state", "-"),
                   jstr(st, "local_domain", "-"), jstr(st, "remote_domain", "-"),
                   jstr(st, "tls", "none"), jstr(st, "auth", "-"), jstr(st, "since", "-"));
        }
        json_t *le = json_object_get(p, "last_error");
        if (json_is_object(le))
            printf("  last error %s: %s%s%s (fix: %s)\n", jstr(le, "time", "?"),
                   jstr(le, "rule", ""), json_is_string(json_object_get(le, "rule")) ? ": " : "",
                   jstr(le, "message", ""), jstr(le, "fix", ""));
        json_int_t r = json_integer_value(json_object_get(p, "refused_stanzas"));
        if (r)
            printf("  refused stanzas: %lld\n", (long long)r);
    }
    json_decref(doc);
    return FG_EXIT_OK;
}

static const struct {
    const char *verb;
    int (*run)(struct fg_cli *c, int argc, char **argv);
} verbs[] = {
    {"list", cmd_list}, {"show", cmd_show},     {"new", cmd_new},
    {"set", cmd_set},   {"remove", cmd_remove}, {"status", cmd_status},
};

int fg_cli_partner(struct fg_cli *c, int argc, char **argv)
{
    if (argc >= 2)
        for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
            if (strcmp(argv[1], verbs[i].verb) == 0)
                return verbs[i].run(c, argc - 1, argv + 1);
    return fg_cli_error(c, FG_EXIT_USAGE, "usage", NULL, NULL,
                        "usage: fedgatectl partner list|show|new|set|remove|status ...");
}
