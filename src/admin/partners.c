/* partners.c - the partner routes: JSON in and out through policy/json, every rule through
 * the policy module, each read-check-write in one store write transaction (nothing lost to
 * a concurrent fedgatectl). A refused change saves nothing and writes no audit record. */
#include "partners.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "policy/json.h"
#include "settings.h"
#include "store/store.h"

#include <fnmatch.h>
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>

static const char *const domain_field[] = {"domain", NULL};

/* Normalises a domain from the path or the body; answers 400 when it is invalid. */
static bool normalize(struct fg_admin_req *r, const char *in, char out[FG_DOMAIN_MAX + 1])
{
    const char *why = NULL;
    if (fg_domain_normalize(in, out, FG_DOMAIN_MAX + 1, &why) == FG_OK)
        return true;
    fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, domain_field,
                         "invalid domain name '%.300s': %s", in, why ? why : "invalid");
    return false;
}

/* Applies the body to p (PUT: replace, PATCH: merge) and checks the field values. */
static bool apply(struct fg_admin_req *r, struct fg_partner *p, bool replace)
{
    char err[512];
    const char *field = NULL;
    if (fg_partner_apply_json(p, r->json, replace, err, sizeof err, &field) != FG_OK) {
        const char *f[] = {field, NULL};
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, field ? f : NULL, "%s",
                             err);
        return false;
    }
    if (fg_policy_check_fields(p, err, sizeof err) != FG_OK) {
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, NULL, "%s", err);
        return false;
    }
    return true;
}

/* Judges p against every other stored partner and our domains (lock and transaction
 * held). On refusal answers 422 with the rule, its exact message and the fields. */
static bool judge(struct fg_admin_ctx *c, struct fg_admin_req *r, const struct fg_partner *p,
                  struct fg_verdict *v)
{
    struct fg_partner *all = NULL;
    size_t n = 0;
    int rc = fg_store_partner_list(c->st, &all, &n);
    if (rc != FG_OK) {
        fg_admin_reply_store_error(c, r, rc, "partner list");
        return false;
    }
    const struct fg_partner **others = fg_calloc(n + 1, sizeof *others);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strcmp(all[i].domain, p->domain) != 0)
            others[k++] = &all[i];
    rc = fg_policy_check_partner(p, c->hosted, others, v);
    fg_free(others);
    fg_store_partners_free(all, n);
    if (rc == FG_OK)
        return true;
    fg_admin_reply_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "refused", v->rule, v->fields, "%s",
                         v->message);
    return false;
}

static json_t *result(const struct fg_partner *p, const struct fg_verdict *v)
{
    return json_pack("{s:o,s:o}", "partner", fg_partner_to_json(p), "warnings",
                     fg_warnings_to_json(v));
}

/* Writes p (insert when old is NULL, else update) with its audit record and commits.
 * Lock and transaction held; the transaction is over when this returns. */
static bool save(struct fg_admin_ctx *c, struct fg_admin_req *r, const struct fg_partner *old,
                 const struct fg_partner *p)
{
    int rc = old ? fg_store_partner_update(c->st, p) : fg_store_partner_insert(c->st, p);
    char *obj = fg_asprintf("partner:%s", p->domain);
    if (rc == FG_OK)
        rc = fg_admin_audit(c, r, old ? "partner.update" : "partner.create", obj,
                            old ? fg_partner_to_json(old) : NULL, fg_partner_to_json(p));
    if (rc == FG_OK)
        rc = fg_store_commit(c->st);
    fg_free(obj);
    if (rc == FG_OK)
        return true;
    fg_store_rollback(c->st);
    char what[FG_DOMAIN_MAX + 16];
    snprintf(what, sizeof what, "partner %s", p->domain);
    fg_admin_reply_store_error(c, r, rc, what);
    return false;
}

/* Begins a write transaction and loads the partner whose primary domain is d.
 * Answers 404 (additional domains too) or the store error and returns false. */
static bool begin_load(struct fg_admin_ctx *c, struct fg_admin_req *r, const char *d,
                       struct fg_partner *out)
{
    int rc = fg_store_begin(c->st);
    if (rc == FG_OK) {
        rc = fg_store_partner_get(c->st, d, out);
        if (rc != FG_OK)
            fg_store_rollback(c->st);
    }
    if (rc == FG_OK)
        return true;
    char what[FG_DOMAIN_MAX + 16];
    snprintf(what, sizeof what, "partner %s", d);
    fg_admin_reply_store_error(c, r, rc, what);
    return false;
}

/* ?filter=GLOB matches the primary domain in either form, or an additional domain. */
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

void fg_admin_partners_list(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    char glob[512];
    int q = fg_admin_query(r, "filter", glob, sizeof glob);
    if (q < 0) {
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, NULL,
                             "filter: malformed or longer than %zu bytes", sizeof glob - 1);
        return;
    }
    struct fg_partner *all = NULL;
    size_t n = 0;
    fg_admin_lock(c);
    int rc = fg_store_partner_list(c->st, &all, &n);
    fg_admin_unlock(c);
    if (rc != FG_OK) {
        fg_admin_reply_store_error(c, r, rc, "partner list");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        if (matches(&all[i], q ? glob : NULL))
            json_array_append_new(arr, fg_partner_to_json(&all[i]));
    fg_store_partners_free(all, n);
    fg_admin_reply_json(r, MHD_HTTP_OK, json_pack("{s:o}", "partners", arr));
}

void fg_admin_partner_get(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    char d[FG_DOMAIN_MAX + 1];
    if (!normalize(r, r->params[0], d))
        return;
    struct fg_partner p;
    fg_admin_lock(c);
    int rc = fg_store_partner_get(c->st, d, &p);
    fg_admin_unlock(c);
    if (rc != FG_OK) {
        char what[FG_DOMAIN_MAX + 16];
        snprintf(what, sizeof what, "partner %s", d);
        fg_admin_reply_store_error(c, r, rc, what);
        return;
    }
    fg_admin_reply_json(r, MHD_HTTP_OK, json_pack("{s:o}", "partner", fg_partner_to_json(&p)));
    fg_partner_clear(&p);
}

void fg_admin_partner_create(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    json_t *jd = json_object_get(r->json, "domain");
    if (!json_is_string(jd)) {
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, domain_field,
                             "domain is required (a string)");
        return;
    }
    char d[FG_DOMAIN_MAX + 1];
    if (json_string_length(jd) > 1024 || strlen(json_string_value(jd)) != json_string_length(jd)) {
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, domain_field,
                             "invalid domain name");
        return;
    }
    if (!normalize(r, json_string_value(jd), d))
        return;
    struct fg_partner p, old;
    struct fg_verdict v;
    fg_partner_init(&p, d);
    if (!apply(r, &p, true))
        goto out;
    fg_admin_lock(c);
    int rc = fg_store_begin(c->st);
    if (rc != FG_OK) {
        fg_admin_reply_store_error(c, r, rc, "store");
        goto unlock;
    }
    rc = fg_store_partner_get(c->st, d, &old);
    if (rc == FG_OK) {
        fg_partner_clear(&old);
        fg_store_rollback(c->st);
        fg_admin_reply_error(r, MHD_HTTP_CONFLICT, "exists", NULL, domain_field,
                             "already exists: partner %s", d);
        goto unlock;
    }
    if (rc != FG_ENOTFOUND) {
        fg_store_rollback(c->st);
        fg_admin_reply_store_error(c, r, rc, "partner");
        goto unlock;
    }
    if (!judge(c, r, &p, &v)) {
        fg_store_rollback(c->st);
        goto unlock;
    }
    if (save(c, r, NULL, &p)) {
        char *loc = fg_asprintf("/api/v1/partners/%s", p.domain);
        fg_admin_add_header(r, MHD_HTTP_HEADER_LOCATION, loc);
        fg_free(loc);
        fg_admin_reply_json(r, MHD_HTTP_CREATED, result(&p, &v));
    }
unlock:
    fg_admin_unlock(c);
out:
    fg_partner_clear(&p);
}

/* PUT (replace) and PATCH (merge): judged on the partner as it would be afterwards. */
static void change(struct fg_admin_ctx *c, struct fg_admin_req *r, bool replace)
{
    char d[FG_DOMAIN_MAX + 1];
    if (!normalize(r, r->params[0], d))
        return;
    if (!r->json) {
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "usage", NULL, NULL,
                             "a JSON object is required as the body");
        return;
    }
    struct fg_partner old, p;
    struct fg_verdict v;
    fg_admin_lock(c);
    if (!begin_load(c, r, d, &old)) {
        fg_admin_unlock(c);
        return;
    }
    if (replace)
        fg_partner_init(&p, old.domain);
    else
        fg_partner_copy(&p, &old);
    if (!apply(r, &p, replace) || !judge(c, r, &p, &v)) {
        fg_store_rollback(c->st);
    } else if (fg_partner_equal(&old, &p)) {
        fg_store_rollback(c->st); /* nothing changed: nothing to write or audit */
        fg_admin_reply_json(r, MHD_HTTP_OK, result(&p, &v));
    } else if (save(c, r, &old, &p)) {
        fg_admin_reply_json(r, MHD_HTTP_OK, result(&p, &v));
    }
    fg_admin_unlock(c);
    fg_partner_clear(&old);
    fg_partner_clear(&p);
}

void fg_admin_partner_put(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    change(c, r, true);
}

void fg_admin_partner_patch(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    change(c, r, false);
}

void fg_admin_partner_delete(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    char d[FG_DOMAIN_MAX + 1];
    if (!normalize(r, r->params[0], d))
        return;
    struct fg_partner old;
    fg_admin_lock(c);
    if (!begin_load(c, r, d, &old)) {
        fg_admin_unlock(c);
        return;
    }
    char *obj = fg_asprintf("partner:%s", d);
    int rc = fg_store_partner_delete(c->st, d);
    if (rc == FG_OK)
        rc = fg_admin_audit(c, r, "partner.delete", obj, fg_partner_to_json(&old), NULL);
    if (rc == FG_OK)
        rc = fg_store_commit(c->st);
    if (rc == FG_OK) {
        fg_admin_reply_empty(r, MHD_HTTP_NO_CONTENT);
    } else {
        fg_store_rollback(c->st);
        fg_admin_reply_store_error(c, r, rc, obj);
    }
    fg_admin_unlock(c);
    fg_free(obj);
    fg_partner_clear(&old);
}

/* The meta values the status document is built from (fg_link_status_json). Lock held. */
int fg_admin_status_meta(struct fg_admin_ctx *c, char **hb, char **links)
{
    int rc = fg_store_meta_get(c->st, "daemon.heartbeat", hb);
    if (rc == FG_ENOTFOUND)
        rc = FG_OK;
    if (rc == FG_OK && (rc = fg_store_meta_get(c->st, "status.links", links)) == FG_ENOTFOUND)
        rc = FG_OK;
    return rc;
}

void fg_admin_partner_status(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    char d[FG_DOMAIN_MAX + 1];
    if (!normalize(r, r->params[0], d))
        return;
    struct fg_partner p;
    char *hb = NULL, *links = NULL;
    fg_admin_lock(c);
    int rc = fg_store_partner_get(c->st, d, &p);
    bool have = rc == FG_OK;
    if (rc == FG_OK)
        rc = fg_admin_status_meta(c, &hb, &links);
    fg_admin_unlock(c);
    if (rc != FG_OK) {
        if (have)
            fg_partner_clear(&p);
        fg_free(hb);
        fg_free(links);
        char what[FG_DOMAIN_MAX + 16];
        snprintf(what, sizeof what, "partner %s", d);
        fg_admin_reply_store_error(c, r, rc, what);
        return;
    }
    json_t *doc = fg_link_status_json(hb, links, &p, 1, NULL, fg_time_now());
    fg_partner_clear(&p);
    fg_free(hb);
    fg_free(links);
    fg_admin_reply_json(r, MHD_HTTP_OK, doc);
}

void fg_admin_status(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    struct fg_partner *all = NULL;
    size_t n = 0;
    char *hb = NULL, *links = NULL;
    fg_admin_lock(c);
    int rc = fg_store_partner_list(c->st, &all, &n);
    if (rc == FG_OK)
        rc = fg_admin_status_meta(c, &hb, &links);
    fg_admin_unlock(c);
    if (rc != FG_OK) {
        fg_store_partners_free(all, n);
        fg_free(hb);
        fg_free(links);
        fg_admin_reply_store_error(c, r, rc, "status");
        return;
    }
    json_t *doc = fg_link_status_json(hb, links, all, n, NULL, fg_time_now());
    fg_store_partners_free(all, n);
    fg_free(hb);
    fg_free(links);
    fg_admin_reply_json(r, MHD_HTTP_OK, doc);
}
