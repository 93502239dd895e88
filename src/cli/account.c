/* account.c - fedgatectl user and admin commands: XMPP accounts (stored as SCRAM keys
 * only), administrators (argon2id hashes, roles, rule A1) and API tokens (SHA-256 of the
 * secret). Passwords come from a file, standard input or a no-echo prompt. */
#include "cli.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCRAM_ITERATIONS 4096
#define PASSWORD_MAX 1024

static const struct fg_flag_spec pw_spec[] = {{"password-file", true, false},
                                              {NULL, false, false}};

/* ---- users ---- */

/* Prepares a bare JID with the policy module's rule (shared with the HTTP API). */
static int parse_jid(struct fg_cli *c, const char *in, char *out, size_t outlen)
{
    int rc = c->cfg_loaded ? FG_EXIT_OK : fg_cli_open(c);
    if (rc)
        return rc;
    const char *why = NULL;
    if (fg_user_jid_prepare(in, c->cfg.domains, out, outlen, &why) == FG_OK)
        return FG_EXIT_OK;
    static const char *const f[] = {"jid", NULL};
    return fg_cli_error(c, FG_EXIT_USAGE, "invalid_value", NULL, f, "invalid JID '%s': %s", in,
                        why);
}

static int derive(struct fg_cli *c, const char *password, struct fg_user *u)
{
    if (fg_scram_derive(password, "SHA-256", SCRAM_ITERATIONS, &u->sha256) != FG_OK ||
        fg_scram_derive(password, "SHA-1", SCRAM_ITERATIONS, &u->sha1) != FG_OK)
        return fg_cli_error(c, FG_EXIT_USAGE, "invalid_value", NULL, NULL,
                            "the password cannot be prepared (SASLprep refused it)");
    return FG_EXIT_OK;
}

static int finish(struct fg_cli *c, int err, const char *what)
{
    if (err == FG_OK)
        err = fg_store_commit(c->store);
    if (err != FG_OK) {
        fg_store_rollback(c->store);
        return fg_cli_store_error(c, err, what);
    }
    return FG_EXIT_OK;
}

static int user_add_or_passwd(struct fg_cli *c, int argc, char **argv, bool add)
{
    struct fg_args a;
    int rc = fg_cli_parse(c, argc, argv, pw_spec, 1, 1,
                          add ? "user add JID [--password-file F]"
                              : "user passwd JID [--password-file F]",
                          &a);
    struct fg_user u;
    memset(&u, 0, sizeof u);
    if (rc || (rc = parse_jid(c, a.pos[0], u.jid, sizeof u.jid)) || (rc = fg_cli_open(c)))
        return rc;
    char pw[PASSWORD_MAX + 2];
    if ((rc = fg_cli_read_password(c, &a, "Password", pw, sizeof pw)))
        return rc;
    rc = derive(c, pw, &u);
    memset(pw, 0, sizeof pw);
    if (rc)
        return rc;
    char *obj = fg_asprintf("user:%s", u.jid);
    int err = fg_store_begin(c->store);
    if (err == FG_OK)
        err = add ? fg_store_user_add(c->store, &u) : fg_store_user_set_creds(c->store, &u);
    if (err == FG_OK)
        err = fg_cli_audit(c, add ? "user.add" : "user.passwd", obj,
                           add ? NULL : json_pack("{s:s}", "jid", u.jid),
                           json_pack("{s:s}", "jid", u.jid));
    fg_free(obj);
    char what[3100];
    snprintf(what, sizeof what, "user %s", u.jid);
    if ((rc = finish(c, err, what)))
        return rc;
    if (c->json)
        fg_cli_print_json(c, json_pack("{s:{s:s}}", "user", "jid", u.jid));
    else
        printf("%s %s\n", add ? "added user" : "password changed for", u.jid);
    return FG_EXIT_OK;
}

static int user_remove(struct fg_cli *c, int argc, char **argv)
{
    struct fg_args a;
    char jid[3072];
    int rc = fg_cli_parse(c, argc, argv, NULL, 1, 1, "user remove JID", &a);
    if (rc || (rc = parse_jid(c, a.pos[0], jid, sizeof jid)) || (rc = fg_cli_open(c)))
        return rc;
    char *obj = fg_asprintf("user:%s", jid);
    int err = fg_store_begin(c->store);
    if (err == FG_OK)
        err = fg_store_user_delete(c->store, jid);
    if (err == FG_OK)
        err = fg_cli_audit(c, "user.remove", obj, json_pack("{s:s}", "jid", jid), NULL);
    fg_free(obj);
    char what[3100];
    snprintf(what, sizeof what, "user %s", jid);
    if ((rc = finish(c, err, what)))
        return rc;
    if (c->json)
        fg_cli_print_json(c, json_pack("{s:s}", "removed", jid));
    else
        printf("removed user %s\n", jid);
    return FG_EXIT_OK;
}

static int user_list(struct fg_cli *c, int argc, char **argv)
{
    struct fg_args a;
    int rc = fg_cli_parse(c, argc, argv, NULL, 0, 0, "user list", &a);
    if (rc || (rc = fg_cli_open(c)))
        return rc;
    char **jids = NULL;
    int err = fg_store_user_list(c->store, &jids);
    if (err != FG_OK)
        return fg_cli_store_error(c, err, "user list");
    json_t *arr = json_array();
    for (size_t i = 0; jids && jids[i]; i++) {
        if (c->json)
            json_array_append_new(arr, json_pack("{s:s}", "jid", jids[i]));
        else
            printf("%s\n", jids[i]);
    }
    fg_cli_print_json(c, json_pack("{s:o}", "users", arr));
    fg_strv_free(jids);
    return FG_EXIT_OK;
}

int fg_cli_user(struct fg_cli *c, int argc, char **argv)
{
    if (argc >= 2) {
        if (strcmp(argv[1], "add") == 0)
            return user_add_or_passwd(c, argc - 1, argv + 1, true);
        if (strcmp(argv[1], "passwd") == 0)
            return user_add_or_passwd(c, argc - 1, argv + 1, false);
        if (strcmp(argv[1], "remove") == 0)
            return user_remove(c, argc - 1, argv + 1);
        if (strcmp(argv[1], "list") == 0)
            return user_list(c, argc - 1, argv + 1);
    }
    return fg_cli_error(c, FG_EXIT_USAGE, "usage", NULL, NULL,
                        "usage: fedgatectl user add|remove|list|passwd ...");
}

/* ---- administrators ---- */

static int check_name(struct fg_cli *c, const char *name)
{
    size_t n = strlen(name);
    bool ok = n >= 1 && n <= 64;
    for (size_t i = 0; ok && i < n; i++)
        ok = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
                    name[i]) != NULL;
    if (ok)
        return FG_EXIT_OK;
    static const char *const f[] = {"name", NULL};
    return fg_cli_error(c, FG_EXIT_USAGE, "invalid_value", NULL, f,
                        "invalid administrator name '%s': 1 to 64 characters from A-Z a-z 0-9 "
                        ". _ -",
                        name);
}

static json_t *admin_json(const struct fg_admin *a)
{
    return json_pack("{s:s,s:s}", "name", a->name, "role", fg_role_name(a->role));
}

static int parse_role(struct fg_cli *c, const char *s, enum fg_role *out)
{
    int r = fg_role_parse(s);
    if (r < 0) {
        static const char *const f[] = {"role", NULL};
        return fg_cli_error(c, FG_EXIT_USAGE, "invalid_value", NULL, f,
                            "invalid role '%s': expected server-admin, administrator or viewer",
                            s);
    }
    *out = (enum fg_role)r;
    return FG_EXIT_OK;
}

static int admin_add_or_passwd(struct fg_cli *c, int argc, char **argv, bool add)
{
    static const struct fg_flag_spec add_spec[] = {
        {"role", true, false}, {"password-file", true, false}, {NULL, false, false}};
    struct fg_args a;
    int rc = fg_cli_parse(c, argc, argv, add ? add_spec : pw_spec, 1, 1,
                          add ? "admin add NAME --role ROLE [--password-file F]"
                              : "admin passwd NAME [--password-file F]",
                          &a);
    if (rc || (rc = check_name(c, a.pos[0])))
        return rc;
    struct fg_admin ad;
    memset(&ad, 0, sizeof ad);
    snprintf(ad.name, sizeof ad.name, "%s", a.pos[0]);
    if (add) {
        if (!fg_cli_has(&a, "role"))
            return fg_cli_error(c, FG_EXIT_USAGE, "usage", NULL, NULL,
                                "--role is required: server-admin, administrator or viewer");
        if ((rc = parse_role(c, fg_cli_flag(&a, "role"), &ad.role)))
            return rc;
    }
    if ((rc = fg_cli_open(c)))
        return rc;
    char pw[PASSWORD_MAX + 2];
    if ((rc = fg_cli_read_password(c, &a, "Password", pw, sizeof pw)))
        return rc;
    int err = fg_password_hash(pw, ad.hash, sizeof ad.hash);
    memset(pw, 0, sizeof pw);
    if (err != FG_OK)
        return fg_cli_error(c, FG_EXIT_FAIL, "io", NULL, NULL, "cannot hash the password");
    char *obj = fg_asprintf("admin:%s", ad.name);
    err = fg_store_begin(c->store);
    if (err == FG_OK && !add) {
        struct fg_admin old;
        err = fg_store_admin_get(c->store, ad.name, &old);
        ad.role = old.role;
        if (err == FG_OK)
            err = fg_store_admin_update(c->store, &ad);
    } else if (err == FG_OK) {
        err = fg_store_admin_add(c->store, &ad);
    }
    if (err == FG_OK)
        err = fg_cli_audit(c, add ? "admin.add" : "admin.passwd", obj,
                           add ? NULL : admin_json(&ad), admin_json(&ad));
    fg_free(obj);
    char what[160];
    snprintf(what, sizeof what, "administrator %s", ad.name);
    if ((rc = finish(c, err, what)))
        return rc;
    if (c->json)
        fg_cli_print_json(c, json_pack("{s:o}", "admin", admin_json(&ad)));
    else
        printf("%s %s (%s)\n", add ? "added administrator" : "password changed for", ad.name,
               fg_role_name(ad.role));
    return FG_EXIT_OK;
}

static int admin_remove(struct fg_cli *c, int argc, char **argv)
{
    struct fg_args a;
    int rc = fg_cli_parse(c, argc, argv, NULL, 1, 1, "admin remove NAME", &a);
    if (rc || (rc = check_name(c, a.pos[0])) || (rc = fg_cli_open(c)))
        return rc;
    const char *name = a.pos[0];
    struct fg_admin old;
    char what[160];
    snprintf(what, sizeof what, "administrator %s", name);
    int err = fg_store_begin(c->store);
    if (err == FG_OK)
        err = fg_store_admin_get(c->store, name, &old);
    if (err != FG_OK) {
        fg_store_rollback(c->store);
        return fg_cli_store_error(c, err, what);
    }
    if (old.role == FG_ROLE_SERVER_ADMIN) {
        int n = 0;
        struct fg_verdict v;
        err = fg_store_admin_count_role(c->store, FG_ROLE_SERVER_ADMIN, &n);
        if (err != FG_OK) {
            fg_store_rollback(c->store);
            return fg_cli_store_error(c, err, what);
        }
        if (fg_policy_check_admins(n - 1, &v) != FG_OK) {
            fg_store_rollback(c->store);
            return fg_cli_error(c, FG_EXIT_REFUSED, "refused", v.rule, v.fields, "%s",
                                v.message);
        }
    }
    char *obj = fg_asprintf("admin:%s", name);
    err = fg_store_admin_delete(c->store, name);
    if (err == FG_OK)
        err = fg_cli_audit(c, "admin.remove", obj, admin_json(&old), NULL);
    fg_free(obj);
    if ((rc = finish(c, err, what)))
        return rc;
    if (c->json)
        fg_cli_print_json(c, json_pack("{s:s}", "removed", name));
    else
        printf("removed administrator %s\n", name);
    return FG_EXIT_OK;
}

static int admin_list(struct fg_cli *c, int argc, char **argv)
{
    struct fg_args a;
    int rc = fg_cli_parse(c, argc, argv, NULL, 0, 0, "admin list", &a);
    if (rc || (rc = fg_cli_open(c)))
        return rc;
    struct fg_admin *all = NULL;
    size_t n = 0;
    int err = fg_store_admin_list(c->store, &all, &n);
    if (err != FG_OK)
        return fg_cli_store_error(c, err, "admin list");
    json_t *arr = json_array();
    if (!c->json)
        printf("%-32s %s\n", "NAME", "ROLE");
    for (size_t i = 0; i < n; i++) {
        if (c->json)
            json_array_append_new(arr, admin_json(&all[i]));
        else
            printf("%-32s %s\n", all[i].name, fg_role_name(all[i].role));
    }
    fg_cli_print_json(c, json_pack("{s:o}", "admins", arr));
    fg_free(all);
    return FG_EXIT_OK;
}

static int admin_token(struct fg_cli *c, int argc, char **argv)
{
    static const struct fg_flag_spec spec[] = {
        {"role", true, false}, {"expires", true, false}, {NULL, false, false}};
    struct fg_args a;
    int rc = fg_cli_parse(c, argc, argv, spec, 1, 1,
                          "admin token NAME [--role ROLE] [--expires DAYS]", &a);
    if (rc || (rc = check_name(c, a.pos[0])))
        return rc;
    struct fg_token t;
    memset(&t, 0, sizeof t);
    bool role_given = fg_cli_has(&a, "role");
    if (role_given && (rc = parse_role(c, fg_cli_flag(&a, "role"), &t.role)))
        return rc;
    long days = 0;
    const char *ex = fg_cli_flag(&a, "expires");
    if (ex) {
        char *end;
        days = strtol(ex, &end, 10);
        if (!*ex || *end || days < 1 || days > 3650) {
            static const char *const f[] = {"expires", NULL};
            return fg_cli_error(c, FG_EXIT_USAGE, "invalid_value", NULL, f,
                                "invalid value '%s' for --expires: expected days from 1 to 3650",
                                ex);
        }
    }
    if ((rc = fg_cli_open(c)))
        return rc;
    struct fg_admin ad;
    char what[160];
    snprintf(what, sizeof what, "administrator %s", a.pos[0]);
    int err = fg_store_begin(c->store);
    if (err == FG_OK)
        err = fg_store_admin_get(c->store, a.pos[0], &ad);
    if (err != FG_OK) {
        fg_store_rollback(c->store);
        return fg_cli_store_error(c, err, what);
    }
    /* a lower number is a stronger role */
    if (role_given && t.role < ad.role) {
        fg_store_rollback(c->store);
        static const char *const f[] = {"role", NULL};
        return fg_cli_error(c, FG_EXIT_USAGE, "invalid_value", NULL, f,
                            "a token cannot have more rights than its administrator: %s is %s",
                            ad.name, fg_role_name(ad.role));
    }
    if (!role_given)
        t.role = ad.role;
    char id[17], rnd[65], secret[128];
    if (fg_random_hex(id, 8) != FG_OK || fg_random_hex(rnd, 32) != FG_OK) {
        fg_store_rollback(c->store);
        return fg_cli_error(c, FG_EXIT_FAIL, "io", NULL, NULL, "no randomness available");
    }
    snprintf(secret, sizeof secret, "fgt_%s_%s", id, rnd);
    snprintf(t.id, sizeof t.id, "%s", id);
    snprintf(t.admin, sizeof t.admin, "%s", ad.name);
    fg_sha256_hex(secret, strlen(secret), t.hash);
    t.created = fg_time_now();
    t.expires = days ? t.created + days * 86400 : 0;
    char exp[32] = "";
    if (t.expires)
        fg_time_rfc3339(t.expires, exp, sizeof exp);
    json_t *info = json_pack("{s:s,s:s,s:s,s:o}", "id", t.id, "admin", t.admin, "role",
                             fg_role_name(t.role), "expires",
                             t.expires ? json_string(exp) : json_null());
    char *obj = fg_asprintf("token:%s", t.id);
    err = fg_store_token_add(c->store, &t);
    if (err == FG_OK)
        err = fg_cli_audit(c, "token.create", obj, NULL, json_deep_copy(info));
    fg_free(obj);
    if ((rc = finish(c, err, "token"))) {
        json_decref(info);
        return rc;
    }
    if (c->json) {
        json_object_set_new(info, "secret", json_string(secret));
        fg_cli_print_json(c, json_pack("{s:o}", "token", info));
    } else {
        json_decref(info);
        printf("%s\n", secret);
        fprintf(stderr,
                "token %s for %s (%s%s%s): shown once, keep it safe; use it as "
                "\"Authorization: Bearer TOKEN\"\n",
                t.id, t.admin, fg_role_name(t.role), t.expires ? ", expires " : "", exp);
    }
    memset(secret, 0, sizeof secret);
    return FG_EXIT_OK;
}

int fg_cli_admin(struct fg_cli *c, int argc, char **argv)
{
    if (argc >= 2) {
        if (strcmp(argv[1], "add") == 0)
            return admin_add_or_passwd(c, argc - 1, argv + 1, true);
        if (strcmp(argv[1], "passwd") == 0)
            return admin_add_or_passwd(c, argc - 1, argv + 1, false);
        if (strcmp(argv[1], "remove") == 0)
            return admin_remove(c, argc - 1, argv + 1);
        if (strcmp(argv[1], "list") == 0)
            return admin_list(c, argc - 1, argv + 1);
        if (strcmp(argv[1], "token") == 0)
            return admin_token(c, argc - 1, argv + 1);
    }
    return fg_cli_error(c, FG_EXIT_USAGE, "usage", NULL, NULL,
                        "usage: fedgatectl admin add|remove|list|passwd|token ...");
}
