/* common.c - fedgatectl plumbing shared by every command: flag parsing, opening the
 * configuration and store, error and JSON output, audit records, password input. */
#include "cli.h"
#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "policy/json.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static const struct fg_flag_spec *find_spec(const struct fg_flag_spec *spec, const char *name,
                                            size_t len)
{
    for (; spec && spec->name; spec++)
        if (strlen(spec->name) == len && strncmp(spec->name, name, len) == 0)
            return spec;
    return NULL;
}

int fg_cli_parse(struct fg_cli *c, int argc, char **argv, const struct fg_flag_spec *spec,
                 int min_pos, int max_pos, const char *usage, struct fg_args *out)
{
    memset(out, 0, sizeof *out);
    bool only_pos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = true;
            continue;
        }
        if (only_pos || strncmp(a, "--", 2) != 0) {
            if (out->npos >= max_pos || out->npos >= 4)
                return fg_cli_error(c, FG_EXIT_USAGE, "usage", NULL, NULL,
                                    "unexpected argument '%s'; usage: fedgatectl %s", a, usage);
            out->pos[out->npos++] = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct fg_flag_spec *s = find_spec(spec, name, nlen);
        if (!s)
            return fg_cli_error(c, FG_EXIT_USAGE, "usage", NULL, NULL,
                                "unknown flag '--%.*s'; usage: fedgatectl %s", (int)nlen, name,
                                usage);
        const char *value = NULL;
        if (s->takes_value) {
            if (eq)
                value = eq + 1;
            else if (i + 1 < argc)
                value = argv[++i];
            else
                return fg_cli_error(c, FG_EXIT_USAGE, "usage", NULL, NULL,
                                    "flag --%s needs a value; usage: fedgatectl %s", s->name,
                                    usage);
        } else if (eq) {
            return fg_cli_error(c, FG_EXIT_USAGE, "usage", NULL, NULL,
                                "flag --%s takes no value", s->name);
        }
        if (!s->repeatable && fg_cli_has(out, s->name))
            return fg_cli_error(c, FG_EXIT_USAGE, "usage", NULL, NULL,
                                "flag --%s given twice", s->name);
        if (out->nflags >= (int)(sizeof out->flags / sizeof out->flags[0]))
            return fg_cli_error(c, FG_EXIT_USAGE, "usage", NULL, NULL, "too many flags");
        out->flags[out->nflags].name = s->name;
        out->flags[out->nflags].value = value;
        out->nflags++;
    }
    if (out->npos < min_pos)
        return fg_cli_error(c, FG_EXIT_USAGE, "usage", NULL, NULL,
                            "missing argument; usage: fedgatectl %s", usage);
    return FG_EXIT_OK;
}

const char *fg_cli_flag(const struct fg_args *a, const char *name)
{
    const char *v = NULL;
    for (int i = 0; i < a->nflags; i++)
        if (strcmp(a->flags[i].name, name) == 0)
            v = a->flags[i].value;
    return v;
}

bool fg_cli_has(const struct fg_args *a, const char *name)
{
    for (int i = 0; i < a->nflags; i++)
        if (strcmp(a->flags[i].name, name) == 0)
            return true;
    return false;
}

int fg_cli_open(struct fg_cli *c)
{
    char err[1024];
    if (c->store)
        return FG_EXIT_OK;
    if (!c->cfg_loaded) {
        const char *path = fg_config_locate(c->config_path);
        if (fg_config_load(path, &c->cfg, err, sizeof err) != FG_OK)
            return fg_cli_error(c, FG_EXIT_FAIL, "io", NULL, NULL, "%s", err);
        c->cfg_loaded = true;
    }
    if (fg_store_open(c->cfg.store, c->cfg.base_dir, &c->store, err, sizeof err) != FG_OK)
        return fg_cli_error(c, FG_EXIT_FAIL, "io", NULL, NULL, "%s", err);
    return FG_EXIT_OK;
}

int fg_cli_error(struct fg_cli *c, int exit_code, const char *code, const char *rule,
                 const char *const *fields, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->json) {
        fg_cli_print_json(c, fg_error_to_json(code, rule, msg, fields));
        /* people reading a terminal still get the reason */
        if (isatty(STDERR_FILENO))
            fprintf(stderr, "error: %s%s%s\n", rule ? rule : "", rule ? ": " : "", msg);
    } else {
        fprintf(stderr, "error: %s%s%s\n", rule ? rule : "", rule ? ": " : "", msg);
    }
    return exit_code;
}

int fg_cli_store_error(struct fg_cli *c, int err, const char *what)
{
    const char *detail = c->store ? fg_store_error(c->store) : "";
    switch (err) {
    case FG_ENOTFOUND:
        return fg_cli_error(c, FG_EXIT_NOTFOUND, "not_found", NULL, NULL, "not found: %s", what);
    case FG_EEXISTS:
        return fg_cli_error(c, FG_EXIT_EXISTS, "exists", NULL, NULL, "already exists: %s", what);
    default:
        return fg_cli_error(c, FG_EXIT_FAIL, "io", NULL, NULL, "store failure on %s: %s", what,
                            detail && *detail ? detail : fg_strerror(err));
    }
}

void fg_cli_print_json(struct fg_cli *c, json_t *doc)
{
    if (!doc)
        return;
    if (c->json) {
        char *s = json_dumps(doc, JSON_INDENT(2));
        if (s) {
            fputs(s, stdout);
            fputc('\n', stdout);
            free(s);
        }
    }
    json_decref(doc);
}

void fg_cli_print_warnings(struct fg_cli *c, const struct fg_verdict *v)
{
    for (int i = 0; i < 2 && v->warnings[i]; i++)
        fprintf(stderr, "warning: %s: %s\n", v->warnings[i],
                fg_policy_rule_text(v->warnings[i]));
}

static char *dump_or_null(json_t *j)
{
    if (!j)
        return NULL;
    char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return s;
}

int fg_cli_audit(struct fg_cli *c, const char *action, const char *object, json_t *before,
                 json_t *after)
{
    struct fg_audit a = {0};
    a.time = fg_time_now();
    a.actor = c->actor;
    a.address = "local";
    a.action = (char *)action;
    a.object = (char *)object;
    a.before = dump_or_null(before);
    a.after = dump_or_null(after);
    int rc = fg_store_audit_add(c->store, &a);
    free(a.before);
    free(a.after);
    return rc;
}

static int read_line(FILE *f, char *out, size_t outlen)
{
    if (!fgets(out, (int)outlen, f))
        return -1;
    size_t n = strlen(out);
    if (n == outlen - 1 && out[n - 1] != '\n' && !feof(f))
        return -2; /* longer than we accept */
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        out[--n] = '\0';
    return 0;
}

int fg_cli_read_password(struct fg_cli *c, const struct fg_args *a, const char *prompt,
                         char *out, size_t outlen)
{
    const char *file = fg_cli_flag(a, "password-file");
    int rc;
    if (file) {
        FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
        if (!f)
            return fg_cli_error(c, FG_EXIT_FAIL, "io", NULL, NULL, "cannot read %s: %s", file,
                                strerror(errno));
        rc = read_line(f, out, outlen);
        if (f != stdin)
            fclose(f);
        if (rc == -1)
            out[0] = '\0';
    } else {
        FILE *tty = fopen("/dev/tty", "r+");
        if (!tty)
            return fg_cli_error(c, FG_EXIT_USAGE, "usage", NULL, NULL,
                                "no terminal to ask for the password: use --password-file FILE "
                                "or --password-file - (standard input)");
        struct termios old, quiet;
        tcgetattr(fileno(tty), &old);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
        fprintf(tty, "%s: ", prompt);
        fflush(tty);
        rc = read_line(tty, out, outlen);
        tcsetattr(fileno(tty), TCSAFLUSH, &old);
        fputc('\n', tty);
        fclose(tty);
        if (rc == -1)
            out[0] = '\0';
    }
    if (rc == -2)
        return fg_cli_error(c, FG_EXIT_USAGE, "invalid_value", NULL, NULL,
                            "the password is longer than %zu bytes", outlen - 2);
    if (!out[0])
        return fg_cli_error(c, FG_EXIT_USAGE, "invalid_value", NULL, NULL,
                            "the password is empty");
    return FG_EXIT_OK;
}
