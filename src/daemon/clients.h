/* clients.h - client connections of fedgated: the c2s and c2s_tls listeners, and for each
 * accepted connection the wiring of net/conn (bytes, TLS) to xmpp/c2s (negotiation) and
 * im (routing). Loop thread only. */
#ifndef FG_CLIENTS_H
#define FG_CLIENTS_H

#include <stddef.h>
#include <uv.h>

struct fg_config;
struct fg_im;
struct fg_userdir;
struct fg_clients;

/* Starts the listeners the configuration enables. users points at the daemon's current
 * directory pointer (swapped on reload). NULL with err on failure (address in use,
 * certificate missing). */
struct fg_clients *fg_clients_start(uv_loop_t *loop, const struct fg_config *cfg,
                                    struct fg_im *im, struct fg_userdir *const *users,
                                    char *err, size_t errlen);
/* Stops listening and ends every client stream with <system-shutdown/>; done(ud) is
 * called once the last stream has closed (at once when there is none), after which
 * nothing of c remains. */
void fg_clients_stop(struct fg_clients *c, void (*done)(void *ud), void *ud);
size_t fg_clients_count(const struct fg_clients *c);

#endif
