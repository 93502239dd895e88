/* admin.h - the admin listener: HTTP JSON API under /api/v1, /metrics and the control
 * panel from web/, served by libmicrohttpd in its own thread with its own store handle
 * (SPEC sections 6 and 7). The daemon starts and stops it; nothing else is public. */
#ifndef FG_ADMIN_H
#define FG_ADMIN_H

#include <stddef.h>

struct fg_config;

/* Starts serving on cfg->listen_admin (no-op when NULL). web_dir: the panel's assets.
 * Returns 0, or FG_EIO with err set (address in use, certificate missing for a
 * non-loopback address). */
int fg_admin_start(const struct fg_config *cfg, const char *web_dir, char *err, size_t errlen);
void fg_admin_stop(void);

#endif
