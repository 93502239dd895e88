/* internal.h - the types and the few functions that im.c, roster.c and offline.c share.
 * Nothing outside src/im includes this; names carry the fg_im__ prefix (internal, as in
 * libuv's uv__). The public interface is im.h. */
#ifndef FG_IM_INTERNAL_H
#define FG_IM_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/hash.h"
#include "im/im.h"
#include "im/jid.h"
#include "im/sub.h"
#include "store/async.h"

#define NS_ROSTER "jabber:iq:roster"
#define NS_DELAY "urn:xmpp:delay"

struct im_user;

struct fg_im_session {
    struct im_user *user; /* NULL once kicked: out of the router, waiting for unbind */
    struct fg_im_session *next;
    char *full; /* full JID */
    size_t full_len;
    const char *resource; /* inside full */
    struct fg_im_session_ops ops;
    void *ud;
    uint64_t serial;
    bool available;  /* sent available presence, no unavailable since */
    bool interested; /* asked for the roster: gets roster pushes (RFC 6121 2.1.6) */
    bool rosterver;  /* used roster versioning */
    int priority;
    /* The last available presence: the tree (in the arena it arrived in, kept) for remote
     * copies, and its bytes without 'to' (the attribute goes in at pres_ins). */
    struct fg_xml_node *pres;
    struct fg_arena *pres_arena;
    struct fg_buf pres_bytes;
    size_t pres_ins;
    /* JIDs this session sent directed available presence to (key = value = a copy):
     * they get unavailable presence when it goes away (RFC 6121 4.6). */
    struct fg_hash directed;
};

struct im_item {
    char *jid; /* the contact's bare JID */
    size_t jid_len;
    char *name;    /* NULL: none */
    char **groups; /* NULL-terminated or NULL */
    enum fg_im_sub_state state;
    bool approved;
    bool listed; /* false: only remembers a subscription state */
};

struct im_user {
    char *jid; /* bare */
    size_t jid_len;
    struct fg_im_session *sessions;
    struct fg_hash items; /* contact bare JID -> struct im_item */
    size_t nlisted;       /* items with listed set */
    int64_t ver;          /* roster version */
    size_t offline;       /* messages held in the store */
    bool fetching;        /* an offline fetch is running */
};

struct fg_im {
    struct fg_im_env env;
    char **domains;
    struct fg_hash users;          /* bare JID -> struct im_user */
    struct fg_store_async *writer; /* NULL without a store */
    size_t nsessions;
    uint64_t serial;
    /* Serialization buffers, reused (no per-stanza malloc once warm), taken LIFO; routing
     * nests a few deep (a subscription answered by the server, a push inside it). */
    struct fg_buf **bufs;
    unsigned nbufs, capbufs;
};

/* ---- im.c ---- */
struct im_user *fg_im__user(struct fg_im *im, const char *bare, size_t len);
struct im_user *fg_im__user_get(struct fg_im *im, const char *bare, size_t len, bool create);
void fg_im__user_maybe_free(struct fg_im *im, struct im_user *u);
bool fg_im__hosted(const struct fg_im *im, const char *domain, size_t len);
struct fg_buf *fg_im__buf(struct fg_im *im);
void fg_im__buf_done(struct fg_im *im);
/* Serializes n for a client stream into b; returns where a 'to' attribute would go (the
 * end of the start tag). */
size_t fg_im__serialize(struct fg_buf *b, const struct fg_xml_node *n);
/* Sends b to s, with ' to=to' inserted at ins when to is not NULL. */
void fg_im__send(struct fg_im *im, struct fg_im_session *s, const struct fg_buf *b, size_t ins,
                 const char *to);
/* Routes a stanza (its 'to' decides: local user, this server, another domain). Takes
 * the arena. */
void fg_im__route(struct fg_im *im, struct fg_xml_node *st, struct fg_arena *arena);
/* A new presence stanza from..to of the given type (NULL: available) in a new arena. */
struct fg_xml_node *fg_im__presence(struct fg_arena **arena, const char *from, const char *to,
                                    const char *type);
/* Routes a new presence stanza from..to of the given type. */
void fg_im__send_presence(struct fg_im *im, const char *from, const char *to, const char *type);
/* Sends each available session's presence of u to `to` (routed). unavailable: sends
 * type='unavailable' from each instead. */
void fg_im__presence_to(struct fg_im *im, struct im_user *u, const char *to, bool unavailable);
/* Answers st with a stanza error (RFC 6120 8.3) to its sender; takes the arena. */
void fg_im__bounce(struct fg_im *im, struct fg_xml_node *st, struct fg_arena *arena,
                   const char *cond, const char *text);
/* An empty IQ result for req (id kept, from/to swapped), in a. */
struct fg_xml_node *fg_im__iq_result(struct fg_arena *a, const struct fg_xml_node *req);
/* Delivers n (already serialized in b with its own 'to') to every available session of u
 * with priority >= min_prio (INT32_MIN: all available). Returns how many got it. */
size_t fg_im__to_available(struct fg_im *im, struct im_user *u, const struct fg_buf *b, size_t ins,
                           const char *to, int min_prio);

/* ---- roster.c ---- */
struct im_item *fg_im__item(struct im_user *u, const char *contact, size_t len);
void fg_im__roster_iq(struct fg_im *im, struct fg_im_session *s, struct fg_xml_node *st,
                      struct fg_arena *arena, struct fg_xml_node *query);
/* Outbound subscription stanza (type in st) from session s to contact. Takes the arena. */
void fg_im__sub_out(struct fg_im *im, struct fg_im_session *s, const struct fg_im_jid *contact,
                    struct fg_xml_node *st, struct fg_arena *arena, enum fg_im_sub_event ev);
/* Inbound subscription stanza for local user u from a bare JID. Takes the arena. */
void fg_im__sub_in(struct fg_im *im, struct im_user *u, const char *from_bare,
                   struct fg_xml_node *st, struct fg_arena *arena, enum fg_im_sub_event ev,
                   bool auto_approve);
/* Initial presence of s: subscription requests waiting for the user are delivered. */
void fg_im__pending_in(struct fg_im *im, struct fg_im_session *s);
/* Loads every roster from the store into memory. 0 or FG_E*. */
int fg_im__roster_load(struct fg_im *im, struct fg_store *st);
void fg_im__item_free(struct im_item *it);

/* ---- offline.c ---- */
/* Stores a message for u (offline). Takes the arena. */
void fg_im__offline_store(struct fg_im *im, struct im_user *u, struct fg_xml_node *st,
                          struct fg_arena *arena);
/* Fetches and delivers u's stored messages to s (s became available, priority >= 0). */
void fg_im__offline_fetch(struct fg_im *im, struct im_user *u, struct fg_im_session *s);
int fg_im__offline_load(struct fg_im *im, struct fg_store *st);

#endif
