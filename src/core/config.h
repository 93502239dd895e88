/* config.h - the INI configuration file of SPEC section 7, read with libinih. Holds only
 * what is needed to start; everything else lives in the store. Unknown sections or keys
 * and malformed values are errors that name the file, the line and the key. */
#ifndef FG_CONFIG_H
#define FG_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "log.h"

struct fg_config {
    char *path;      /* the file read */
    char *base_dir;  /* its directory: relative paths in it are resolved against this */
    char **domains;  /* hosted domains, normalised A-labels, NULL-terminated */
    char *store;     /* store URL, as written */
    char *state_dir; /* absolute */
    enum fg_log_level log_level;
    char *log_file; /* NULL = standard error; else absolute */
    /* Listener addresses "host:port" or "[v6]:port"; NULL when "off". */
    char *listen_c2s, *listen_c2s_tls, *listen_s2s, *listen_s2s_tls, *listen_admin;
    char *cert_dir; /* absolute */
    char *ca_file;  /* NULL = system store; else absolute */
    bool c2s_require_tls;
    long c2s_idle_timeout;
    long max_stanza_size;
    long max_xml_depth;
    long max_buffered;
    long auth_attempts;
    char *dns_resolver; /* NULL = system */
};

/* The file to read: explicit (from --config) if given, else $FEDGATE_CONFIG, else
 * ./fedgate.conf if it exists, else /etc/fedgate/fedgate.conf. Returns a static or the
 * given string. */
const char *fg_config_locate(const char *explicit_path);

/* Reads path into cfg (defaults first). Returns 0, or FG_EINVAL / FG_EIO with
 * "FILE:LINE: [section] key: what is wrong" in err. cfg is cleared on failure. */
int fg_config_load(const char *path, struct fg_config *cfg, char *err, size_t errlen);
void fg_config_free(struct fg_config *cfg);

/* Resolves a path from the file against base_dir (absolute stays). fg_free it. */
char *fg_config_path(const struct fg_config *cfg, const char *p);

/* Parses "host:port", "[v6]:port"; 0 or FG_EINVAL. host gets the bare host. */
int fg_config_parse_addr(const char *s, char *host, size_t hostlen, int *port);

#endif
