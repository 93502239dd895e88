/* im.h - IM and presence for the hosted domains (RFC 6121): sessions, router, rosters,
 * subscriptions, presence, offline messages, disco and ping. No sockets: bytes leave
 * through callbacks. Loop thread only. Errors: 0 or a negative FG_E* (core/err.h). */
#ifndef FG_IM_H
#define FG_IM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "core/buf.h"
#include "store/store.h"
#include "xml/arena.h"
#include "xml/stanza.h"

/* Offline messages kept per user; the next one is answered <service-unavailable/>. */
#define FG_IM_OFFLINE_MAX 1000
/* Items per roster; a roster set beyond it is answered <not-allowed/>. Subscription
 * requests from contacts not in the roster are kept up to twice this many entries in all;
 * further requests from strangers are dropped (logged). */
#define FG_IM_ROSTER_MAX 2000
/* Bytes of a roster item name or group name; longer is <not-acceptable/>. */
#define FG_IM_NAME_MAX 1023
/* Groups per roster item. */
#define FG_IM_GROUPS_MAX 64

/* What the router knows about a stanza from another domain to a local user, for the
 * partner-type policy of SPEC section 4 (issue 6). */
enum fg_im_kind {
    FG_IM_MESSAGE,
    FG_IM_PRESENCE,     /* available, unavailable, probe, error */
    FG_IM_SUBSCRIPTION, /* subscribe, subscribed, unsubscribe, unsubscribed */
    FG_IM_IQ,
};
struct fg_im_remote_info {
    const char *remote_bare; /* the sender's bare JID */
    const char *local_bare;  /* the local user addressed */
    enum fg_im_kind kind;
    const char *type;  /* the stanza's type attribute, "" when absent */
    bool in_roster;    /* "has added": the contact is in the user's roster, any state */
    bool pre_approved; /* SPEC 4: subscription to/both, ask='subscribe', or approved */
};
enum fg_im_verdict {
    FG_IM_ALLOW = 0,
    /* Answered exactly as for a user who does not exist; the hook logs the reason. */
    FG_IM_REFUSE,
    /* subscribe only: approved on the user's behalf (subscribed sent, item pushed with
     * subscription from/both); the user is not subscribed to the contact. */
    FG_IM_AUTO_APPROVE,
};

struct fg_im_env {
    char *const *domains; /* hosted domains (A-labels), NULL-terminated; copied */
    /* Rosters and offline messages. NULL: nothing persists and offline messages are
     * refused (<service-unavailable/>). Read at fg_im_new on the calling thread (every
     * roster is loaded then); afterwards only another handle on a writer thread is used. */
    struct fg_store *store;
    /* The daemon's loop: store writes and offline fetches run on a writer thread whose
     * completions come back through it. NULL: they run synchronously on the caller's
     * thread (tools, tests), which blocks; the daemon must set it. */
    uv_loop_t *loop;
    bool (*user_exists)(void *ud, const char *bare_jid); /* the daemon's user directory */
    /* Stanzas to other domains; takes stanza and arena when it returns 0. NULL, or a
     * nonzero return: bounced with <remote-server-not-found/> (presence broadcasts and
     * errors are not bounced). The s2s layer sets it; for a later failure it calls
     * fg_im_bounce. It may edit the stanza (strip <status/> for a partner type). */
    int (*remote)(void *ud, struct fg_xml_node *stanza, struct fg_arena *arena);
    /* Optional: decides each stanza from another domain to a local user (SPEC 4). It may
     * edit the stanza. NULL: everything is allowed (RFC 6121 behaviour). */
    enum fg_im_verdict (*inbound)(void *ud, const struct fg_im_remote_info *info,
                                  struct fg_xml_node *stanza);
    void *ud;
};

struct fg_im;
struct fg_im_session;

/* Loads every roster and the offline message counts from env->store (blocking, meant for
 * start-up) and starts the writer. NULL on failure, logged with the store's message. */
struct fg_im *fg_im_new(const struct fg_im_env *env);
/* Waits for pending store work, then frees everything, sessions still bound included
 * (their callbacks are not called). With env->loop, run the loop once more afterwards
 * (the writer's handle closes). NULL is allowed. */
void fg_im_free(struct fg_im *im);

/* SPEC section 5, subscription_refresh_interval: probes again, on behalf of every user
 * with an available resource, each contact at a remote domain the user is subscribed to
 * (subscription to or both), so that presence lost with a dropped link comes back. The
 * answers reach the user's resources as any presence does. Returns the probes sent. */
size_t fg_im_refresh_probes(struct fg_im *im);

/* Blocks until every store job has finished and its completion (offline delivery,
 * error logs) has run. For shutdown and tests. */
void fg_im_flush(struct fg_im *im);

struct fg_im_session_ops {
    /* Queues bytes on the stream. It must not call back into fg_im (defer a close). */
    void (*send)(void *ud, const char *data, size_t len);
    /* Ends that stream with the stream error condition given (e.g. "conflict"). The
     * session is already out of the router; the c2s layer must still call
     * fg_im_unbind for it once, from inside kick or later. */
    void (*kick)(void *ud, const char *condition);
};

/* Binds a resource for an authenticated bare JID (prepared). resource NULL: a random one
 * is generated. A resource already bound for that bare JID: the old session is kicked
 * with "conflict" (RFC 6120 7.7.2.2) and the new one binds. full_jid gets the full JID.
 * 0, FG_EINVAL (bad JID or resource: answer <bad-request/>), FG_ELIMIT (len too small). */
int fg_im_bind(struct fg_im *im, const char *bare_jid, const char *resource,
               const struct fg_im_session_ops *ops, void *ud, struct fg_im_session **out,
               char *full_jid, size_t len);

/* A stanza from a bound client, 'from' already stamped with its full JID, in its own
 * arena which the call takes (frees or hands on). */
void fg_im_stanza(struct fg_im *im, struct fg_im_session *from, struct fg_xml_node *stanza,
                  struct fg_arena *arena);

/* The stream ended: unavailable presence to contacts, own resources and directed
 * presence recipients if it was available; then the session is freed. */
void fg_im_unbind(struct fg_im *im, struct fg_im_session *s);

/* A stanza from a remote domain (the s2s layer checked that 'from' belongs to the
 * authenticated peer and 'to' to a hosted domain). Takes the arena. */
void fg_im_deliver_remote(struct fg_im *im, struct fg_xml_node *stanza, struct fg_arena *arena);

/* Answers a stanza with a stanza error (RFC 6120 8.3) back to its sender: condition is
 * the element name ("remote-server-timeout"), the type follows from it; text may be
 * NULL. Errors and IQ results are never answered (dropped). Takes the arena. */
void fg_im_bounce(struct fg_im *im, struct fg_xml_node *stanza, struct fg_arena *arena,
                  const char *condition, const char *text);

/* Stream features for a client stream after authentication: roster versioning
 * (<ver xmlns='urn:xmpp:features:rosterver'/>) and subscription pre-approval
 * (<sub xmlns='urn:xmpp:features:pre-approval'/>). */
bool fg_im_feature_roster_versioning(void);
bool fg_im_feature_pre_approval(void);
/* Appends both elements above (those whose function says true) to b. */
void fg_im_stream_features(struct fg_buf *b);

/* Counts for tests and status pages. */
size_t fg_im_session_count(const struct fg_im *im);
size_t fg_im_offline_count(const struct fg_im *im, const char *bare_jid);

#endif
