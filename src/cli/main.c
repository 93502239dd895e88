/* main.c - fedgatectl: global options, then dispatch to a command group by table.
 * The commands themselves live in partner.c, gateway.c, account.c and audit.c. */
#include "cli.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: fedgatectl [--config FILE] [--json] COMMAND\n"
    "\n"
    "  partner list [--filter GLOB]        partner show DOMAIN\n"
    "  partner new DOMAIN [FIELD FLAGS]    partner set DOMAIN [FIELD FLAGS]\n"
    "  partner remove DOMAIN               partner status [DOMAIN]\n"
    "  gateway show                        gateway set [--KEY VALUE ...]\n"
    "  gateway rotate-dialback-secret\n"
    "  user add JID [--password-file F]    user remove JID | list | passwd JID [--password-file F]\n"
    "  admin add NAME --role ROLE [--password-file F]   admin remove NAME | list | passwd NAME\n"
    "  admin token NAME [--role ROLE] [--expires DAYS]\n"
    "  audit [--since TIME] [--limit N]\n"
    "\n"
    "Partner field flags: --description TEXT, --additional-domains A,B, --add-domain D,\n"
    "  --remove-domain D, --clear-domains, --subdomains true|false,\n"
    "  --type federated|public-verified|public-unverified,\n"
    "  --tls required|optional|not-supported, --sasl required|optional|not-supported,\n"
    "  --dialback true|false, --keepalive true|false, --connection-limit N|default,\n"
    "  --proxy-fqdn HOST[:PORT]\n"
    "\n"
    "Exit status: 0 done, 1 failure, 2 usage, 3 refused by a rule, 4 not found, 5 exists.\n";

static const struct {
    const char *name;
    int (*run)(struct fg_cli *c, int argc, char **argv);
} groups[] = {
    {"partner", fg_cli_partner}, {"gateway", fg_cli_gateway}, {"user", fg_cli_user},
    {"admin", fg_cli_admin},     {"audit", fg_cli_audit_cmd},
};

static void set_actor(struct fg_cli *c)
{
    const char *who = getenv("SUDO_USER");
    if (!who || !*who) {
        struct passwd *pw = getpwuid(getuid());
        who = pw ? pw->pw_name : NULL;
    }
    if (who)
        snprintf(c->actor, sizeof c->actor, "cli:%s", who);
    else
        snprintf(c->actor, sizeof c->actor, "cli:uid-%u", (unsigned)getuid());
}

int main(int argc, char **argv)
{
    umask(027); /* the store holds password hashes and keys: not for everyone to read */
    struct fg_cli c;
    memset(&c, 0, sizeof c);
    set_actor(&c);
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            c.json = true;
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            c.config_path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            c.config_path = argv[i] + 9;
        } else if (strcmp(argv[i], "--help") == 0) {
            fputs(usage_text, stdout);
            return FG_EXIT_OK;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("fedgatectl %s\n", FG_VERSION);
            return FG_EXIT_OK;
        } else {
            /* --json may also follow the command group; anything else is unknown */
            break;
        }
    }
    /* Accept --json anywhere: scripts put it where they like. */
    for (int j = i; j < argc; j++) {
        if (strcmp(argv[j], "--json") == 0) {
            c.json = true;
            memmove(&argv[j], &argv[j + 1], (size_t)(argc - j - 1) * sizeof *argv);
            argc--;
            j--;
        }
    }
    if (i >= argc) {
        fputs(usage_text, stderr);
        return fg_cli_error(&c, FG_EXIT_USAGE, "usage", NULL, NULL, "no command given");
    }
    int rc = -1;
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        if (strcmp(argv[i], groups[g].name) == 0) {
            rc = groups[g].run(&c, argc - i, argv + i);
            break;
        }
    }
    if (rc < 0)
        rc = fg_cli_error(&c, FG_EXIT_USAGE, "usage", NULL, NULL,
                          "unknown command '%s'; see fedgatectl --help", argv[i]);
    if (c.store)
        fg_store_close(c.store);
    if (c.cfg_loaded)
        fg_config_free(&c.cfg);
    return rc;
}
