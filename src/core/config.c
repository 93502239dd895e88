/* config.c - reads the INI configuration of SPEC section 7 with libinih into struct
 * fg_config. Every key is described once in a table; unknown sections or keys and
 * malformed values stop the load with FILE:LINE and the key. Does not touch the store. */
#include "config.h"
#include "alloc.h"
#include "err.h"
#include "policy/policy.h"
#include "store/store.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum kind { K_STORE, K_STR, K_PATH, K_OPT_PATH, K_LISTEN, K_BOOL, K_LONG, K_LEVEL, K_DOMAINS, K_OPT_STR };

struct key {
    const char *section;
    const char *name;
    enum kind kind;
    size_t offset;
    long min, max; /* K_LONG only */
};

#define OFF(f) offsetof(struct fg_config, f)
static const struct key keys[] = {
    {"server", "domains", K_DOMAINS, OFF(domains), 0, 0},
    {"server", "store", K_STORE, OFF(store), 0, 0},
    {"server", "state_dir", K_PATH, OFF(state_dir), 0, 0},
    {"server", "log_level", K_LEVEL, OFF(log_level), 0, 0},
    {"server", "log_file", K_OPT_PATH, OFF(log_file), 0, 0},
    {"listen", "c2s", K_LISTEN, OFF(listen_c2s), 0, 0},
    {"listen", "c2s_tls", K_LISTEN, OFF(listen_c2s_tls), 0, 0},
    {"listen", "s2s", K_LISTEN, OFF(listen_s2s), 0, 0},
    {"listen", "s2s_tls", K_LISTEN, OFF(listen_s2s_tls), 0, 0},
    {"listen", "admin", K_LISTEN, OFF(listen_admin), 0, 0},
    {"tls", "cert_dir", K_PATH, OFF(cert_dir), 0, 0},
    {"tls", "ca_file", K_OPT_PATH, OFF(ca_file), 0, 0},
    {"c2s", "require_tls", K_BOOL, OFF(c2s_require_tls), 0, 0},
    {"c2s", "idle_timeout", K_LONG, OFF(c2s_idle_timeout), 10, 86400},
    {"limits", "max_stanza_size", K_LONG, OFF(max_stanza_size), 1024, 64L * 1024 * 1024},
    {"limits", "max_xml_depth", K_LONG, OFF(max_xml_depth), 4, 1024},
    {"limits", "max_buffered", K_LONG, OFF(max_buffered), 4096, 1024L * 1024 * 1024},
    {"limits", "auth_attempts", K_LONG, OFF(auth_attempts), 1, 100},
    {"dns", "resolver", K_OPT_STR, OFF(dns_resolver), 0, 0},
};

struct load {
    struct fg_config *cfg;
    char *err;
    size_t errlen;
    int failed;
    FILE *f;
    int line; /* libinih is built without line numbers: the reader counts them */
    bool domains_seen; /* later [server] domains lines (repeated or continued) add to it */
};

static char *read_line(char *str, int num, void *stream)
{
    struct load *l = stream;
    char *r = fgets(str, num, l->f);
    if (!r)
        return NULL;
    l->line++;
    size_t n = strlen(r);
    if (n + 1 == (size_t)num && r[n - 1] != '\n' && !feof(l->f)) {
        /* libinih's line buffer (INI_MAX_LINE) would cut it into two lines: say so */
        snprintf(l->err, l->errlen,
                 "%s:%d: line longer than %d characters: split it (a list such as [server] "
                 "domains may go on indented continuation lines, or repeat the key)",
                 l->cfg->path, l->line, num - 2);
        l->failed = 1;
        return NULL;
    }
    return r;
}

static void set_str(char **slot, const char *v)
{
    fg_free(*slot);
    *slot = v ? fg_strdup(v) : NULL;
}

char *fg_config_path(const struct fg_config *cfg, const char *p)
{
    if (p[0] == '/' || !cfg->base_dir)
        return fg_strdup(p);
    return fg_asprintf("%s/%s", cfg->base_dir, p);
}

int fg_config_parse_addr(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon;
    size_t hl;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return FG_EINVAL;
        hl = (size_t)(close - s - 1);
        s++;
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return FG_EINVAL; /* an IPv6 address must be bracketed */
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen)
        return FG_EINVAL;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || p < 1 || p > 65535)
        return FG_EINVAL;
    memcpy(host, s, hl);
    host[hl] = '\0';
    *port = (int)p;
    return FG_OK;
}

static int fail(struct load *l, int line, const char *section, const char *name, const char *what)
{
    snprintf(l->err, l->errlen, "%s:%d: [%s] %s: %s", l->cfg->path, line, section, name, what);
    l->failed = 1;
    return 0; /* stop inih */
}

static int bad(struct load *l, int line, const struct key *k, const char *v, const char *want)
{
    char what[512];
    snprintf(what, sizeof what, "invalid value '%.200s': %s", v, want);
    return fail(l, line, k->section, k->name, what);
}

static int parse_value(struct load *l, const struct key *k, const char *v, int line)
{
    struct fg_config *cfg = l->cfg;
    void *slot = (char *)cfg + k->offset;
    switch (k->kind) {
    case K_STORE: {
        char why[512];
        if (!*v)
            return fail(l, line, k->section, k->name, "a value is required");
        if (fg_store_url_check(v, why, sizeof why) != FG_OK)
            return fail(l, line, k->section, k->name, why);
        set_str(slot, v);
        break;
    }
    case K_STR:
        if (!*v)
            return fail(l, line, k->section, k->name, "a value is required");
        set_str(slot, v);
        break;
    case K_OPT_STR:
        set_str(slot, *v ? v : NULL);
        break;
    case K_PATH:
        if (!*v)
            return fail(l, line, k->section, k->name, "a path is required");
        fg_free(*(char **)slot);
        *(char **)slot = fg_config_path(cfg, v);
        break;
    case K_OPT_PATH:
        fg_free(*(char **)slot);
        *(char **)slot = *v ? fg_config_path(cfg, v) : NULL;
        break;
    case K_LISTEN: {
        if (strcmp(v, "off") == 0) {
            set_str(slot, NULL);
            break;
        }
        char host[256];
        int port;
        if (fg_config_parse_addr(v, host, sizeof host, &port) != FG_OK)
            return bad(l, line, k, v, "expected host:port, [ipv6]:port or off");
        set_str(slot, v);
        break;
    }
    case K_BOOL: {
        int b = fg_bool_parse(v);
        if (b < 0)
            return bad(l, line, k, v, "expected true or false");
        *(bool *)slot = b;
        break;
    }
    case K_LONG: {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (errno || !*v || *end || n < k->min || n > k->max) {
            char want[96];
            snprintf(want, sizeof want, "expected an integer from %ld to %ld", k->min, k->max);
            return bad(l, line, k, v, want);
        }
        *(long *)slot = n;
        break;
    }
    case K_LEVEL: {
        int lv = fg_log_level_parse(v);
        if (lv < 0)
            return bad(l, line, k, v, "expected error, warn, info or debug");
        *(enum fg_log_level *)slot = (enum fg_log_level)lv;
        break;
    }
    case K_DOMAINS: {
        char **list = NULL;
        fg_strv_push(&list, ""); /* keeps list non-NULL; removed below */
        fg_free(list[0]);
        list[0] = NULL;
        char *copy = fg_strdup(v), *save = NULL;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            while (isspace((unsigned char)*tok))
                tok++;
            char *e = tok + strlen(tok);
            while (e > tok && isspace((unsigned char)e[-1]))
                *--e = '\0';
            char norm[FG_DOMAIN_MAX + 1];
            const char *why = NULL;
            if (fg_domain_normalize(tok, norm, sizeof norm, &why) != FG_OK) {
                char msg[256];
                snprintf(msg, sizeof msg, "invalid domain '%s': %s", tok, why ? why : "invalid");
                fg_free(copy);
                fg_strv_free(list);
                return fail(l, line, k->section, k->name, msg);
            }
            fg_strv_push(&list, norm);
        }
        fg_free(copy);
        if (!list[0]) {
            fg_strv_free(list);
            return fail(l, line, k->section, k->name, "at least one hosted domain is required");
        }
        if (l->domains_seen) { /* a continuation line or the key again: one more part */
            for (size_t i = 0; list[i]; i++) {
                bool dup = false;
                for (size_t j = 0; cfg->domains[j] && !dup; j++)
                    dup = strcmp(cfg->domains[j], list[i]) == 0;
                if (!dup)
                    fg_strv_push(&cfg->domains, list[i]);
            }
            fg_strv_free(list);
        } else {
            fg_strv_free(cfg->domains);
            cfg->domains = list;
        }
        l->domains_seen = true;
        break;
    }
    }
    return 1;
}

static int on_entry(void *user, const char *section, const char *name, const char *value)
{
    struct load *l = user;
    int line = l->line;
    if (l->failed)
        return 0;
    if (!name) /* a section header alone */
        name = "";
    int known_section = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (strcmp(keys[i].section, section) != 0)
            continue;
        known_section = 1;
        if (strcmp(keys[i].name, name) == 0)
            return parse_value(l, &keys[i], value ? value : "", line);
    }
    if (!known_section)
        return fail(l, line, section, name, "unknown section");
    if (!*name)
        return 1;
    return fail(l, line, section, name, "unknown key");
}

/* libinih reports keys, not section headers, so an empty unknown section would pass
 * unnoticed; this scan catches every header. */
static int check_sections(FILE *f, struct load *l)
{
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        n++;
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (*p != '[')
            continue;
        char *close = strchr(p, ']');
        if (!close) {
            snprintf(l->err, l->errlen, "%s:%d: malformed section header", l->cfg->path, n);
            return FG_EINVAL;
        }
        *close = '\0';
        int known = 0;
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            known |= strcmp(keys[i].section, p + 1) == 0;
        if (!known) {
            snprintf(l->err, l->errlen, "%s:%d: [%s]: unknown section", l->cfg->path, n, p + 1);
            return FG_EINVAL;
        }
    }
    return FG_OK;
}

static void defaults(struct fg_config *cfg)
{
    cfg->store = fg_strdup("sqlite:var/fedgate.db");
    cfg->state_dir = fg_config_path(cfg, "var");
    cfg->log_level = FG_LOG_INFO;
    cfg->listen_c2s = fg_strdup("[::]:5222");
    cfg->listen_c2s_tls = fg_strdup("[::]:5223");
    cfg->listen_s2s = fg_strdup("[::]:5269");
    cfg->listen_s2s_tls = fg_strdup("[::]:5270");
    cfg->listen_admin = fg_strdup("127.0.0.1:5280");
    cfg->cert_dir = fg_config_path(cfg, "var/tls");
    cfg->c2s_require_tls = true;
    cfg->c2s_idle_timeout = 600;
    cfg->max_stanza_size = 262144;
    cfg->max_xml_depth = 32;
    cfg->max_buffered = 1048576;
    cfg->auth_attempts = 3;
}

const char *fg_config_locate(const char *explicit_path)
{
    if (explicit_path && *explicit_path)
        return explicit_path;
    const char *env = getenv("FEDGATE_CONFIG");
    if (env && *env)
        return env;
    if (access("fedgate.conf", F_OK) == 0)
        return "fedgate.conf";
    return "/etc/fedgate/fedgate.conf";
}

int fg_config_load(const char *path, struct fg_config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->path = fg_strdup(path);
    char abs[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        cfg->base_dir = getcwd(abs, sizeof abs) ? fg_strdup(abs) : fg_strdup(".");
    } else if (slash == path) {
        cfg->base_dir = fg_strdup("/");
    } else {
        char *dir = fg_strndup(path, (size_t)(slash - path));
        cfg->base_dir = realpath(dir, abs) ? fg_strdup(abs) : fg_strdup(dir);
        fg_free(dir);
    }
    defaults(cfg);

    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot read the configuration: %s", path, strerror(errno));
        fg_config_free(cfg);
        return FG_EIO;
    }
    struct load l = {cfg, err, errlen, 0, f, 0, false};
    if (check_sections(f, &l) != FG_OK) {
        fclose(f);
        fg_config_free(cfg);
        return FG_EINVAL;
    }
    rewind(f);
    int rc = ini_parse_stream(read_line, &l, on_entry, &l);
    fclose(f);
    if (l.failed) {
        fg_config_free(cfg);
        return FG_EINVAL;
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s:%d: malformed line (expected [section] or key = value)", path,
                 rc);
        fg_config_free(cfg);
        return FG_EINVAL;
    }
    if (!cfg->domains) {
        snprintf(err, errlen, "%s: [server] domains: at least one hosted domain is required", path);
        fg_config_free(cfg);
        return FG_EINVAL;
    }
    return FG_OK;
}

void fg_config_free(struct fg_config *cfg)
{
    char **strs[] = {&cfg->path,          &cfg->base_dir,       &cfg->store,
                     &cfg->state_dir,     &cfg->log_file,       &cfg->listen_c2s,
                     &cfg->listen_c2s_tls, &cfg->listen_s2s,    &cfg->listen_s2s_tls,
                     &cfg->listen_admin,  &cfg->cert_dir,       &cfg->ca_file,
                     &cfg->dns_resolver};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        fg_free(*strs[i]);
        *strs[i] = NULL;
    }
    fg_strv_free(cfg->domains);
    cfg->domains = NULL;
}
