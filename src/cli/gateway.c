/* gateway.c - fedgatectl gateway show|set|rotate-dialback-secret (SPEC section 5).
 * The keys, their ranges and flag names come from the policy module's table. The
 * dialback secret is never printed and never enters an audit record. */
#include "cli.h"
#include "core/alloc.h"
#include "core/crypto.h"
#include "core/err.h"
#include "policy/json.h"

#include <stdio.h>
#include <string.h>

static void flag_name(const char *key, char *out, size_t len)
{
    snprintf(out, len, "%s", key);
    for (char *p = out; *p; p++)
        if (*p == '_')
            *p = '-';
}

static void print_gateway(struct fg_cli *c, const struct fg_gateway *g)
{
    if (c->json) {
        fg_cli_print_json(c, json_pack("{s:o}", "gateway", fg_gateway_to_json(g)));
        return;
    }
    for (size_t i = 0; i < fg_gateway_nkeys; i++) {
        char v[64];
        fg_gateway_get_text(g, fg_gateway_keys[i].name, v, sizeof v);
        printf("%-30s %s\n", fg_gateway_keys[i].name, v);
    }
}

static bool same(const struct fg_gateway *a, const struct fg_gateway *b)
{
    for (size_t i = 0; i < fg_gateway_nkeys; i++) {
        char va[64], vb[64];
        fg_gateway_get_text(a, fg_gateway_keys[i].name, va, sizeof va);
        fg_gateway_get_text(b, fg_gateway_keys[i].name, vb, sizeof vb);
        if (strcmp(va, vb) != 0)
            return false;
    }
    return true;
}

static int cmd_show(struct fg_cli *c, int argc, char **argv)
{
    struct fg_args a;
    int rc = fg_cli_parse(c, argc, argv, NULL, 0, 0, "gateway show", &a);
    if (rc || (rc = fg_cli_open(c)))
        return rc;
    struct fg_gateway g;
    int err = fg_store_gateway_get(c->store, &g);
    if (err != FG_OK)
        return fg_cli_store_error(c, err, "gateway settings");
    print_gateway(c, &g);
    return FG_EXIT_OK;
}

static int cmd_set(struct fg_cli *c, int argc, char **argv)
{
    /* one flag per key of the table, named "--" + key with '_' turned into '-' */
    struct fg_flag_spec spec[32];
    char names[32][48];
    size_t n = fg_gateway_nkeys < 31 ? fg_gateway_nkeys : 31;
    for (size_t i = 0; i < n; i++) {
        flag_name(fg_gateway_keys[i].name, names[i], sizeof names[i]);
        spec[i] = (struct fg_flag_spec){names[i], true, false};
    }
    spec[n] = (struct fg_flag_spec){NULL, false, false};
    struct fg_args a;
    int rc = fg_cli_parse(c, argc, argv, spec, 0, 0, "gateway set [--KEY VALUE ...]", &a);
    if (rc)
        return rc;
    if (a.nflags == 0)
        return fg_cli_error(c, FG_EXIT_USAGE, "usage", NULL, NULL,
                            "nothing to set; usage: fedgatectl gateway set --KEY VALUE ...");
    /* values are checked before the store is touched */
    struct fg_gateway g;
    fg_gateway_defaults(&g);
    char err[256];
    for (size_t i = 0; i < n; i++) {
        const char *v = fg_cli_flag(&a, names[i]);
        if (v && fg_gateway_set_text(&g, fg_gateway_keys[i].name, v, err, sizeof err) != FG_OK) {
            const char *f[] = {fg_gateway_keys[i].name, NULL};
            return fg_cli_error(c, FG_EXIT_USAGE, "invalid_value", NULL, f, "%s", err);
        }
    }
    if ((rc = fg_cli_open(c)))
        return rc;
    int e = fg_store_begin(c->store);
    struct fg_gateway old;
    if (e == FG_OK)
        e = fg_store_gateway_get(c->store, &old);
    if (e != FG_OK) {
        fg_store_rollback(c->store);
        return fg_cli_store_error(c, e, "gateway settings");
    }
    g = old;
    for (size_t i = 0; i < n; i++) {
        const char *v = fg_cli_flag(&a, names[i]);
        if (v)
            fg_gateway_set_text(&g, fg_gateway_keys[i].name, v, err, sizeof err);
    }
    if (same(&g, &old)) {
        fg_store_rollback(c->store);
        print_gateway(c, &g);
        return FG_EXIT_OK;
    }
    e = fg_store_gateway_put(c->store, &g);
    if (e == FG_OK)
        e = fg_cli_audit(c, "gateway.update", "gateway", fg_gateway_to_json(&old),
                         fg_gateway_to_json(&g));
    if (e == FG_OK)
        e = fg_store_commit(c->store);
    if (e != FG_OK) {
        fg_store_rollback(c->store);
        return fg_cli_store_error(c, e, "gateway settings");
    }
    print_gateway(c, &g);
    return FG_EXIT_OK;
}

static int cmd_rotate(struct fg_cli *c, int argc, char **argv)
{
    struct fg_args a;
    int rc = fg_cli_parse(c, argc, argv, NULL, 0, 0, "gateway rotate-dialback-secret", &a);
    if (rc || (rc = fg_cli_open(c)))
        return rc;
    char secret[65];
    if (fg_random_hex(secret, 32) != FG_OK)
        return fg_cli_error(c, FG_EXIT_FAIL, "io", NULL, NULL, "no randomness available");
    int e = fg_store_begin(c->store);
    if (e == FG_OK)
        e = fg_store_dialback_secret_set(c->store, secret);
    if (e == FG_OK)
        e = fg_cli_audit(c, "gateway.rotate-dialback-secret", "gateway", NULL, NULL);
    if (e == FG_OK)
        e = fg_store_commit(c->store);
    memset(secret, 0, sizeof secret);
    if (e != FG_OK) {
        fg_store_rollback(c->store);
        return fg_cli_store_error(c, e, "dialback secret");
    }
    if (c->json)
        fg_cli_print_json(c, json_pack("{s:b}", "rotated", 1));
    else
        printf("dialback secret rotated: new dialback keys are valid from now on\n");
    return FG_EXIT_OK;
}

int fg_cli_gateway(struct fg_cli *c, int argc, char **argv)
{
    if (argc >= 2) {
        if (strcmp(argv[1], "show") == 0)
            return cmd_show(c, argc - 1, argv + 1);
        if (strcmp(argv[1], "set") == 0)
            return cmd_set(c, argc - 1, argv + 1);
        if (strcmp(argv[1], "rotate-dialback-secret") == 0)
            return cmd_rotate(c, argc - 1, argv + 1);
    }
    return fg_cli_error(c, FG_EXIT_USAGE, "usage", NULL, NULL,
                        "usage: fedgatectl gateway show|set|rotate-dialback-secret");
}
