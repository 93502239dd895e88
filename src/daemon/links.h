/* links.h - server-to-server links of fedgated: the s2s and s2s_tls listeners, outbound
 * links per (local domain, partner) with DNS, TLS and a bounded queue, dialback
 * verification streams, and the link status document (SPEC section 7). Loop thread only. */
#ifndef FG_LINKS_H
#define FG_LINKS_H

#include <stddef.h>
#include <uv.h>

#include "im/im.h"
#include "policy/policy.h"

struct fg_config;
struct fg_store;
struct fg_links;

/* Reads the dialback secret from st (blocking: call before the loop runs), starts the
 * listeners the configuration enables and the resolver. partners/gateway are borrowed
 * until the next fg_links_set_policy. NULL with err on failure. */
struct fg_links *fg_links_start(uv_loop_t *loop, const struct fg_config *cfg, struct fg_store *st,
                                const struct fg_partner *partners, size_t npartners,
                                const struct fg_gateway *gateway, char *err, size_t errlen);
/* The IM layer stanzas from remote domains go to (set once, before traffic). */
void fg_links_set_im(struct fg_links *l, struct fg_im *im);
/* env->remote hook of the IM layer: ud is the struct fg_links. */
int fg_links_remote(void *ud, struct fg_xml_node *stanza, struct fg_arena *arena);
/* env->inbound hook of the IM layer (SPEC section 4): the partner type of the sender's
 * domain, read at each stanza, decides; refusals are logged (without the body) and
 * counted in the partner's refused_stanzas. ud is the struct fg_links. */
enum fg_im_verdict fg_links_inbound(void *ud, const struct fg_im_remote_info *info,
                                    struct fg_xml_node *stanza);
/* A new partner list and gateway settings (borrowed): every stream is rechecked. */
void fg_links_set_policy(struct fg_links *l, const struct fg_partner *partners, size_t n,
                         const struct fg_gateway *gateway);
/* The link status document (JSON text, fg_free) when it changed since the last call or
 * every few seconds, else NULL. For the store worker (meta "status.links"). */
char *fg_links_status_take(struct fg_links *l);
/* Closes listeners and every stream with <system-shutdown/>; done(ud) once all closed. */
void fg_links_stop(struct fg_links *l, void (*done)(void *ud), void *ud);

#endif
