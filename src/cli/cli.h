/* cli.h - what the fedgatectl command modules share: the invocation context, flag
 * parsing against per-command tables, and output of results, warnings and errors in
 * human or --json form with the exit codes of SPEC section 7. */
#ifndef FG_CLI_H
#define FG_CLI_H

#include <jansson.h>
#include <stdbool.h>

#include "core/config.h"
#include "policy/policy.h"
#include "store/store.h"

enum fg_exit {
    FG_EXIT_OK = 0,
    FG_EXIT_FAIL = 1,
    FG_EXIT_USAGE = 2,
    FG_EXIT_REFUSED = 3,
    FG_EXIT_NOTFOUND = 4,
    FG_EXIT_EXISTS = 5,
};

struct fg_cli {
    const char *config_path;
    bool json;
    struct fg_config cfg;
    bool cfg_loaded;
    struct fg_store *store;
    char actor[160];
};

/* One flag a command accepts. Flags are "--name VALUE", "--name=VALUE" or, for
 * takes_value = false, "--name". */
struct fg_flag_spec {
    const char *name; /* without the dashes */
    bool takes_value;
    bool repeatable;
};

struct fg_flag {
    const char *name;
    const char *value; /* NULL for switches */
};

struct fg_args {
    const char *pos[4];
    int npos;
    struct fg_flag flags[64];
    int nflags;
};

/* Splits argv into positionals and flags. Unknown flags, missing values, repeats of a
 * non-repeatable flag or a wrong number of positionals print a usage error and return
 * FG_EXIT_USAGE; otherwise 0. */
int fg_cli_parse(struct fg_cli *c, int argc, char **argv, const struct fg_flag_spec *spec,
                 int min_pos, int max_pos, const char *usage, struct fg_args *out);
/* The value of the last occurrence of flag name, or NULL. */
const char *fg_cli_flag(const struct fg_args *a, const char *name);
bool fg_cli_has(const struct fg_args *a, const char *name);

/* Loads the configuration and opens the store (once); prints the error and returns
 * FG_EXIT_FAIL on failure. */
int fg_cli_open(struct fg_cli *c);

/* Reports a failure: "error: [RULE: ]MESSAGE" on standard error, or the JSON error
 * object on standard output. code: "usage", "invalid_value", "refused", "not_found",
 * "exists", "io". Returns exit. fields: NULL-terminated or NULL. */
int fg_cli_error(struct fg_cli *c, int exit_code, const char *code, const char *rule,
                 const char *const *fields, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* Maps a store error to the right exit code and message. */
int fg_cli_store_error(struct fg_cli *c, int err, const char *what);

/* Prints a JSON document (and consumes the reference) when --json. */
void fg_cli_print_json(struct fg_cli *c, json_t *doc);
/* Prints "warning: W1: text" lines for a verdict's warnings. */
void fg_cli_print_warnings(struct fg_cli *c, const struct fg_verdict *v);

/* Writes an audit record for a committed change; before/after are consumed (NULL ok). */
int fg_cli_audit(struct fg_cli *c, const char *action, const char *object, json_t *before,
                 json_t *after);

/* Reads a password: from --password-file F (first line; "-" = standard input), else a
 * prompt with echo off on the terminal. Returns 0 or an exit code (error printed). */
int fg_cli_read_password(struct fg_cli *c, const struct fg_args *a, const char *prompt,
                         char *out, size_t outlen);

/* Command groups. argv[0] is the verb. */
int fg_cli_partner(struct fg_cli *c, int argc, char **argv);
int fg_cli_gateway(struct fg_cli *c, int argc, char **argv);
int fg_cli_user(struct fg_cli *c, int argc, char **argv);
int fg_cli_admin(struct fg_cli *c, int argc, char **argv);
int fg_cli_audit_cmd(struct fg_cli *c, int argc, char **argv);

#endif
