/* accounts.c - users, administrators and API tokens through the API. Passwords are turned
 * into SCRAM keys or argon2id hashes (core/crypto) before the store lock is taken and
 * never leave this file; token secrets are shown once and stored only as SHA-256. */
#include "accounts.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"
#include "settings.h"
#include "store/store.h"

#include <microhttpd.h>
#include <stdio.h>
#include <string.h>

#define PASSWORD_MAX 1023  /* octets */
#define SCRAM_ITERATIONS 4096
#define TOKEN_DAYS_MAX 3650

static const char *const jid_field[] = {"jid", NULL};
static const char *const name_field[] = {"name", NULL};
static const char *const role_field[] = {"role", NULL};
static const char *const password_field[] = {"password", NULL};

/* A password from the body: required, 1..PASSWORD_MAX octets. */
static bool get_password(struct fg_admin_req *r, bool required, const char **pw)
{
    int rc = fg_admin_json_string(r, "password", PASSWORD_MAX, pw);
    if (rc < 0)
        return false;
    if (rc == 0 && !required)
        return true;
    if (rc == 0 || !**pw) {
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, password_field,
                             "the password is empty");
        return false;
    }
    return true;
}

/* Prepares a bare JID with the policy module's rule (shared with fedgatectl). */
static bool jid_prepare(struct fg_admin_ctx *c, struct fg_admin_req *r, const char *in, char *out,
                        size_t outlen)
{
    const char *why = NULL;
    if (fg_user_jid_prepare(in, c->hosted, out, outlen, &why) == FG_OK)
        return true;
    fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, jid_field,
                         "invalid JID '%.200s': %s", in, why);
    return false;
}

static bool derive(struct fg_admin_req *r, const char *pw, struct fg_user *u)
{
    if (fg_scram_derive(pw, "SHA-256", SCRAM_ITERATIONS, &u->sha256) == FG_OK &&
        fg_scram_derive(pw, "SHA-1", SCRAM_ITERATIONS, &u->sha1) == FG_OK)
        return true;
    fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, password_field,
                         "the password cannot be prepared for SCRAM (SASLprep refused it)");
    return false;
}

/* Runs one write with its audit record in a transaction, lock held by the caller. */
static int commit_change(struct fg_admin_ctx *c, int rc)
{
    if (rc == FG_OK)
        rc = fg_store_commit(c->st);
    if (rc != FG_OK)
        fg_store_rollback(c->st);
    return rc;
}

static json_t *jid_json(const char *jid)
{
    return json_pack("{s:s}", "jid", jid);
}

void fg_admin_users_list(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    char **jids = NULL;
    fg_admin_lock(c);
    int rc = fg_store_user_list(c->st, &jids);
    fg_admin_unlock(c);
    if (rc != FG_OK) {
        fg_admin_reply_store_error(c, r, rc, "user list");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; jids && jids[i]; i++)
        json_array_append_new(arr, jid_json(jids[i]));
    fg_strv_free(jids);
    fg_admin_reply_json(r, MHD_HTTP_OK, json_pack("{s:o}", "users", arr));
}

void fg_admin_user_add(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    static const char *const keys[] = {"jid", "password", NULL};
    const char *jid, *pw;
    struct fg_user *u = fg_calloc(1, sizeof *u);
    int j;
    if (!fg_admin_json_known_keys(r, keys) ||
        (j = fg_admin_json_string(r, "jid", sizeof u->jid, &jid)) < 0)
        goto out;
    if (j == 0) {
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, jid_field,
                             "jid is required");
        goto out;
    }
    if (!jid_prepare(c, r, jid, u->jid, sizeof u->jid) || !get_password(r, true, &pw) ||
        !derive(r, pw, u))
        goto out;
    char *obj = fg_asprintf("user:%s", u->jid);
    fg_admin_lock(c);
    int rc = fg_store_begin(c->st);
    if (rc == FG_OK) {
        rc = fg_store_user_add(c->st, u);
        if (rc == FG_OK)
            rc = fg_admin_audit(c, r, "user.add", obj, NULL, jid_json(u->jid));
        rc = commit_change(c, rc);
    }
    fg_admin_unlock(c);
    if (rc == FG_OK)
        fg_admin_reply_json(r, MHD_HTTP_CREATED, json_pack("{s:o}", "user", jid_json(u->jid)));
    else
        fg_admin_reply_store_error(c, r, rc, obj);
    fg_free(obj);
out:
    memset(u, 0, sizeof *u);
    fg_free(u);
}

void fg_admin_user_passwd(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    static const char *const keys[] = {"password", NULL};
    const char *pw;
    struct fg_user *u = fg_calloc(1, sizeof *u), *old = fg_calloc(1, sizeof *old);
    if (!jid_prepare(c, r, r->params[0], u->jid, sizeof u->jid) ||
        !fg_admin_json_known_keys(r, keys) || !get_password(r, true, &pw) || !derive(r, pw, u))
        goto out;
    char *obj = fg_asprintf("user:%s", u->jid);
    fg_admin_lock(c);
    int rc = fg_store_begin(c->st);
    if (rc == FG_OK) {
        rc = fg_store_user_get(c->st, u->jid, old);
        if (rc == FG_OK)
            rc = fg_store_user_set_creds(c->st, u);
        if (rc == FG_OK)
            rc = fg_admin_audit(c, r, "user.passwd", obj, jid_json(u->jid), jid_json(u->jid));
        rc = commit_change(c, rc);
    }
    fg_admin_unlock(c);
    if (rc == FG_OK)
        fg_admin_reply_json(r, MHD_HTTP_OK, json_pack("{s:o}", "user", jid_json(u->jid)));
    else
        fg_admin_reply_store_error(c, r, rc, obj);
    fg_free(obj);
out:
    memset(u, 0, sizeof *u);
    memset(old, 0, sizeof *old);
    fg_free(u);
    fg_free(old);
}

void fg_admin_user_delete(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    struct fg_user *u = fg_calloc(1, sizeof *u), *old = fg_calloc(1, sizeof *old);
    if (!jid_prepare(c, r, r->params[0], u->jid, sizeof u->jid))
        goto out;
    char *obj = fg_asprintf("user:%s", u->jid);
    fg_admin_lock(c);
    int rc = fg_store_begin(c->st);
    if (rc == FG_OK) {
        rc = fg_store_user_get(c->st, u->jid, old);
        if (rc == FG_OK)
            rc = fg_store_user_delete(c->st, u->jid);
        if (rc == FG_OK)
            rc = fg_admin_audit(c, r, "user.remove", obj, jid_json(u->jid), NULL);
        rc = commit_change(c, rc);
    }
    fg_admin_unlock(c);
    if (rc == FG_OK)
        fg_admin_reply_empty(r, MHD_HTTP_NO_CONTENT);
    else
        fg_admin_reply_store_error(c, r, rc, obj);
    fg_free(obj);
out:
    memset(old, 0, sizeof *old);
    fg_free(u);
    fg_free(old);
}

bool fg_admin_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n < 1 || n > FG_ADMIN_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

static json_t *admin_json(const char *name, enum fg_role role)
{
    return json_pack("{s:s,s:s}", "name", name, "role", fg_role_name(role));
}

/* The administrator name from the path or body; answers 400 when invalid. */
static bool check_name(struct fg_admin_req *r, const char *name)
{
    if (fg_admin_name_valid(name))
        return true;
    fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, name_field,
                         "invalid administrator name: 1 to 64 characters from A-Za-z0-9._-");
    return false;
}

/* A role from the body: 1 given (in *role), 0 absent, -1 invalid (400 set). */
static int get_role(struct fg_admin_req *r, enum fg_role *role)
{
    const char *s;
    int rc = fg_admin_json_string(r, "role", 32, &s);
    if (rc <= 0)
        return rc;
    int v = fg_role_parse(s);
    if (v < 0) {
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, role_field,
                             "invalid role: server-admin, administrator or viewer");
        return -1;
    }
    *role = (enum fg_role)v;
    return 1;
}

void fg_admin_admins_list(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    struct fg_admin *all = NULL;
    size_t n = 0;
    fg_admin_lock(c);
    int rc = fg_store_admin_list(c->st, &all, &n);
    fg_admin_unlock(c);
    if (rc != FG_OK) {
        fg_admin_reply_store_error(c, r, rc, "administrator list");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, admin_json(all[i].name, all[i].role));
    memset(all, 0, n * sizeof *all);
    fg_free(all);
    fg_admin_reply_json(r, MHD_HTTP_OK, json_pack("{s:o}", "admins", arr));
}

void fg_admin_admin_add(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    static const char *const keys[] = {"name", "role", "password", NULL};
    const char *name, *pw;
    struct fg_admin a;
    memset(&a, 0, sizeof a);
    int rc;
    if (!fg_admin_json_known_keys(r, keys) ||
        (rc = fg_admin_json_string(r, "name", FG_ADMIN_NAME_MAX + 1, &name)) < 0)
        return;
    if (rc == 0 || !check_name(r, name)) {
        if (rc == 0)
            fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, name_field,
                                 "name is required");
        return;
    }
    if ((rc = get_role(r, &a.role)) < 0)
        return;
    if (rc == 0) {
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, role_field,
                             "role is required: server-admin, administrator or viewer");
        return;
    }
    if (!get_password(r, true, &pw))
        return;
    snprintf(a.name, sizeof a.name, "%s", name);
    if (fg_password_hash(pw, a.hash, sizeof a.hash) != FG_OK) {
        fg_admin_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "io", NULL, NULL,
                             "cannot hash the password");
        return;
    }
    char *obj = fg_asprintf("admin:%s", a.name);
    fg_admin_lock(c);
    rc = fg_store_begin(c->st);
    if (rc == FG_OK) {
        rc = fg_store_admin_add(c->st, &a);
        if (rc == FG_OK)
            rc = fg_admin_audit(c, r, "admin.add", obj, NULL, admin_json(a.name, a.role));
        rc = commit_change(c, rc);
    }
    fg_admin_unlock(c);
    if (rc == FG_OK)
        fg_admin_reply_json(r, MHD_HTTP_CREATED,
                            json_pack("{s:o}", "admin", admin_json(a.name, a.role)));
    else
        fg_admin_reply_store_error(c, r, rc, obj);
    fg_free(obj);
    memset(&a, 0, sizeof a);
}

/* A1 inside the transaction: would the change leave no server-admin? 422 when so. */
static bool keeps_a_server_admin(struct fg_admin_ctx *c, struct fg_admin_req *r, int *rc)
{
    int n = 0;
    struct fg_verdict v;
    *rc = fg_store_admin_count_role(c->st, FG_ROLE_SERVER_ADMIN, &n);
    if (*rc != FG_OK)
        return false;
    if (fg_policy_check_admins(n - 1, &v) == FG_OK)
        return true;
    fg_admin_reply_error(r, MHD_HTTP_UNPROCESSABLE_CONTENT, "refused", v.rule, v.fields, "%s",
                         v.message);
    return false;
}

void fg_admin_admin_patch(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    static const char *const keys[] = {"role", "password", NULL};
    const char *pw = NULL;
    enum fg_role role = FG_ROLE_VIEWER;
    int has_role;
    struct fg_admin old, a;
    memset(&a, 0, sizeof a);
    if (!check_name(r, r->params[0]) || !fg_admin_json_known_keys(r, keys) ||
        (has_role = get_role(r, &role)) < 0 || !get_password(r, false, &pw))
        return;
    if (!has_role && !pw) {
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "usage", NULL, NULL,
                             "nothing to change: give role, password or both");
        return;
    }
    if (pw && fg_password_hash(pw, a.hash, sizeof a.hash) != FG_OK) {
        fg_admin_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "io", NULL, NULL,
                             "cannot hash the password");
        return;
    }
    char *obj = fg_asprintf("admin:%s", r->params[0]);
    fg_admin_lock(c);
    int rc = fg_store_begin(c->st);
    if (rc != FG_OK)
        goto fail;
    rc = fg_store_admin_get(c->st, r->params[0], &old);
    if (rc != FG_OK)
        goto rollback;
    bool demoted = has_role && old.role == FG_ROLE_SERVER_ADMIN && role != old.role;
    if (demoted && !keeps_a_server_admin(c, r, &rc)) {
        if (rc == FG_OK) {
            fg_store_rollback(c->st);
            goto out; /* refused by A1, answered */
        }
        goto rollback;
    }
    snprintf(a.name, sizeof a.name, "%s", old.name);
    a.role = has_role ? role : old.role;
    if (!pw)
        memcpy(a.hash, old.hash, sizeof a.hash);
    rc = fg_store_admin_update(c->st, &a);
    if (rc == FG_OK && a.role != old.role)
        rc = fg_admin_audit(c, r, "admin.update", obj, admin_json(old.name, old.role),
                            admin_json(a.name, a.role));
    if (rc == FG_OK && pw)
        rc = fg_admin_audit(c, r, "admin.passwd", obj, admin_json(a.name, a.role),
                            admin_json(a.name, a.role));
    rc = commit_change(c, rc);
    if (rc != FG_OK)
        goto fail;
    fg_admin_unlock(c);
    /* a new password ends the account's other sessions */
    if (pw)
        fg_admin_session_drop_user(a.name, r->who.by_session ? r->who.sid : NULL);
    fg_admin_reply_json(r, MHD_HTTP_OK, json_pack("{s:o}", "admin", admin_json(a.name, a.role)));
    goto done;
rollback:
    fg_store_rollback(c->st);
fail:
    fg_admin_reply_store_error(c, r, rc, obj);
out:
    fg_admin_unlock(c);
done:
    fg_free(obj);
    memset(&a, 0, sizeof a);
    memset(&old, 0, sizeof old);
}

static json_t *token_json(const struct fg_token *t)
{
    char cs[32], es[32];
    return json_pack(
        "{s:s,s:s,s:s,s:s,s:o}", "id", t->id, "admin", t->admin, "role", fg_role_name(t->role),
        "created", fg_time_rfc3339(t->created, cs, sizeof cs), "expires",
        t->expires ? json_string(fg_time_rfc3339(t->expires, es, sizeof es)) : json_null());
}

/* The audit shape of a token: {"id", "admin", "role", "expires"}. */
static json_t *token_audit_json(const struct fg_token *t)
{
    json_t *j = token_json(t);
    json_object_del(j, "created");
    return j;
}

void fg_admin_admin_delete(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    if (!check_name(r, r->params[0]))
        return;
    struct fg_admin old;
    struct fg_token *toks = NULL;
    size_t nt = 0;
    memset(&old, 0, sizeof old);
    char *obj = fg_asprintf("admin:%s", r->params[0]);
    fg_admin_lock(c);
    int rc = fg_store_begin(c->st);
    if (rc != FG_OK)
        goto fail;
    rc = fg_store_admin_get(c->st, r->params[0], &old);
    if (rc != FG_OK)
        goto rollback;
    if (old.role == FG_ROLE_SERVER_ADMIN && !keeps_a_server_admin(c, r, &rc)) {
        if (rc == FG_OK) {
            fg_store_rollback(c->st);
            goto out;
        }
        goto rollback;
    }
    /* the account's tokens go with it: a later account of the same name must not
     * inherit them */
    rc = fg_store_token_list(c->st, &toks, &nt);
    for (size_t i = 0; rc == FG_OK && i < nt; i++) {
        if (strcmp(toks[i].admin, old.name) != 0)
            continue;
        char *tobj = fg_asprintf("token:%s", toks[i].id);
        rc = fg_store_token_delete(c->st, toks[i].id);
        if (rc == FG_OK)
            rc = fg_admin_audit(c, r, "token.delete", tobj, token_audit_json(&toks[i]), NULL);
        fg_free(tobj);
    }
    if (rc == FG_OK)
        rc = fg_store_admin_delete(c->st, old.name);
    if (rc == FG_OK)
        rc = fg_admin_audit(c, r, "admin.remove", obj, admin_json(old.name, old.role), NULL);
    rc = commit_change(c, rc);
    if (rc != FG_OK)
        goto fail;
    fg_admin_unlock(c);
    fg_admin_session_drop_user(old.name, NULL);
    fg_admin_reply_empty(r, MHD_HTTP_NO_CONTENT);
    goto done;
rollback:
    fg_store_rollback(c->st);
fail:
    fg_admin_reply_store_error(c, r, rc, obj);
out:
    fg_admin_unlock(c);
done:
    fg_free(obj);
    fg_free(toks);
    memset(&old, 0, sizeof old);
}

void fg_admin_tokens_list(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    struct fg_token *all = NULL;
    size_t n = 0;
    fg_admin_lock(c);
    int rc = fg_store_token_list(c->st, &all, &n);
    fg_admin_unlock(c);
    if (rc != FG_OK) {
        fg_admin_reply_store_error(c, r, rc, "token list");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, token_json(&all[i]));
    fg_free(all);
    fg_admin_reply_json(r, MHD_HTTP_OK, json_pack("{s:o}", "tokens", arr));
}

/* POST /tokens {"name"?, "role"?, "expires_days"?}: the secret is in the answer, once. */
void fg_admin_token_create(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    static const char *const keys[] = {"name", "role", "expires_days", NULL};
    const char *name;
    enum fg_role role = FG_ROLE_VIEWER;
    int has_name, has_role;
    long long days = 0;
    if (!fg_admin_json_known_keys(r, keys) ||
        (has_name = fg_admin_json_string(r, "name", FG_ADMIN_NAME_MAX + 1, &name)) < 0 ||
        (has_role = get_role(r, &role)) < 0)
        return;
    if (!has_name)
        name = r->who.user;
    else if (!check_name(r, name))
        return;
    json_t *jd = r->json ? json_object_get(r->json, "expires_days") : NULL;
    if (jd && !json_is_null(jd)) {
        days = json_is_integer(jd) ? json_integer_value(jd) : -1;
        if (days < 1 || days > TOKEN_DAYS_MAX) {
            static const char *const f[] = {"expires_days", NULL};
            fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, f,
                                 "expires_days: an integer from 1 to %d, or null for no expiry",
                                 TOKEN_DAYS_MAX);
            return;
        }
    }
    struct fg_token t;
    char rnd[65], secret[128];
    memset(&t, 0, sizeof t);
    if (fg_random_hex(t.id, 8) != FG_OK || fg_random_hex(rnd, 32) != FG_OK) {
        fg_admin_reply_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "io", NULL, NULL,
                             "no randomness available");
        return;
    }
    /* the same shape as `fedgatectl admin token` prints */
    snprintf(secret, sizeof secret, "fgt_%s_%s", t.id, rnd);
    memset(rnd, 0, sizeof rnd);
    fg_sha256_hex(secret, strlen(secret), t.hash);
    t.created = fg_time_now();
    t.expires = days ? t.created + days * 86400 : 0;
    char *obj = fg_asprintf("token:%s", t.id);
    struct fg_admin a;
    fg_admin_lock(c);
    int rc = fg_store_begin(c->st);
    if (rc != FG_OK)
        goto fail;
    rc = fg_store_admin_get(c->st, name, &a);
    if (rc == FG_ENOTFOUND) {
        fg_store_rollback(c->st);
        fg_admin_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, name_field,
                             "not found: administrator %s", name);
        goto out;
    }
    if (rc != FG_OK)
        goto rollback;
    if (has_role && role < a.role) {
        fg_store_rollback(c->st);
        fg_admin_reply_error(r, MHD_HTTP_BAD_REQUEST, "invalid_value", NULL, role_field,
                             "a token's role may not exceed its administrator's (%s)",
                             fg_role_name(a.role));
        goto out;
    }
    snprintf(t.admin, sizeof t.admin, "%s", a.name);
    t.role = has_role ? role : a.role;
    rc = fg_store_token_add(c->st, &t);
    if (rc == FG_OK)
        rc = fg_admin_audit(c, r, "token.create", obj, NULL, token_audit_json(&t));
    rc = commit_change(c, rc);
    if (rc != FG_OK)
        goto fail;
    json_t *doc = token_audit_json(&t);
    json_object_set_new(doc, "secret", json_string(secret));
    fg_admin_reply_json(r, MHD_HTTP_CREATED, json_pack("{s:o}", "token", doc));
    goto out;
rollback:
    fg_store_rollback(c->st);
fail:
    fg_admin_reply_store_error(c, r, rc, obj);
out:
    fg_admin_unlock(c);
    fg_free(obj);
    memset(secret, 0, sizeof secret);
    memset(&a, 0, sizeof a);
}

void fg_admin_token_delete(struct fg_admin_ctx *c, struct fg_admin_req *r)
{
    const char *id = r->params[0];
    struct fg_token *all = NULL;
    size_t n = 0;
    if (strlen(id) >= sizeof all->id) {
        fg_admin_reply_error(r, MHD_HTTP_NOT_FOUND, "not_found", NULL, NULL, "not found: token");
        return;
    }
    char *obj = fg_asprintf("token:%s", id);
    fg_admin_lock(c);
    int rc = fg_store_begin(c->st);
    if (rc == FG_OK) {
        rc = fg_store_token_list(c->st, &all, &n);
        const struct fg_token *t = NULL;
        for (size_t i = 0; rc == FG_OK && i < n && !t; i++)
            if (strcmp(all[i].id, id) == 0)
                t = &all[i];
        if (rc == FG_OK && !t)
            rc = FG_ENOTFOUND;
        if (rc == FG_OK)
            rc = fg_store_token_delete(c->st, id);
        if (rc == FG_OK)
            rc = fg_admin_audit(c, r, "token.delete", obj, token_audit_json(t), NULL);
        rc = commit_change(c, rc);
    }
    fg_admin_unlock(c);
    if (rc == FG_OK)
        fg_admin_reply_empty(r, MHD_HTTP_NO_CONTENT);
    else
        fg_admin_reply_store_error(c, r, rc, obj);
    fg_free(obj);
    fg_free(all);
}
