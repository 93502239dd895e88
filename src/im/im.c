/* im.c - the router and sessions: binding, delivery rules (RFC 6121 8.5, RFC 6120 10),
 * presence, stanza errors and the server's own IQs (disco, ping). Not rosters or
 * subscriptions (roster.c), nor offline messages (offline.c). */
#include "im/internal.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"

#define NS_DISCO_INFO "http://jabber.org/protocol/disco#info"
#define NS_DISCO_ITEMS "http://jabber.org/protocol/disco#items"
#define NS_PING "urn:xmpp:ping"

enum kind { K_MESSAGE, K_PRESENCE, K_IQ };

/* Stanza errors (RFC 6120 8.3.3): the condition decides the type. */
static const struct {
    const char *cond;
    const char *type;
} error_types[] = {
    {"bad-request", "modify"},
    {"conflict", "cancel"},
    {"feature-not-implemented", "cancel"},
    {"forbidden", "auth"},
    {"gone", "cancel"},
    {"internal-server-error", "cancel"},
    {"item-not-found", "cancel"},
    {"jid-malformed", "modify"},
    {"not-acceptable", "modify"},
    {"not-allowed", "cancel"},
    {"not-authorized", "auth"},
    {"policy-violation", "modify"},
    {"recipient-unavailable", "wait"},
    {"redirect", "modify"},
    {"registration-required", "auth"},
    {"remote-server-not-found", "cancel"},
    {"remote-server-timeout", "wait"},
    {"resource-constraint", "wait"},
    {"service-unavailable", "cancel"},
    {"subscription-required", "auth"},
    {"undefined-condition", "cancel"},
    {"unexpected-request", "wait"},
};

static bool eq(const char *a, const char *b)
{
    return a && b && !strcmp(a, b);
}

static int kind_of(const struct fg_xml_node *st)
{
    if (!st || st->type != FG_XML_ELEMENT)
        return -1;
    if (!fg_xml_ns_eq(st->ns, FG_XML_NS_CLIENT) && !fg_xml_ns_eq(st->ns, FG_XML_NS_SERVER))
        return -1;
    if (!strcmp(st->name, "message"))
        return K_MESSAGE;
    if (!strcmp(st->name, "presence"))
        return K_PRESENCE;
    if (!strcmp(st->name, "iq"))
        return K_IQ;
    return -1;
}

/* ---- users, sessions, buffers ------------------------------------------------------- */

bool fg_im__hosted(const struct fg_im *im, const char *domain, size_t len)
{
    for (char **d = im->domains; d && *d; d++)
        if (strlen(*d) == len && !memcmp(*d, domain, len))
            return true;
    return false;
}

struct im_user *fg_im__user_get(struct fg_im *im, const char *bare, size_t len, bool create)
{
    struct im_user *u = fg_hash_get(&im->users, bare, len);
    if (u || !create)
        return u;
    u = fg_calloc(1, sizeof *u);
    u->jid = fg_strndup(bare, len);
    u->jid_len = len;
    fg_hash_put(&im->users, u->jid, len, u);
    return u;
}

struct im_user *fg_im__user(struct fg_im *im, const char *bare, size_t len)
{
    return fg_im__user_get(im, bare, len, false);
}

static void user_free(struct im_user *u)
{
    size_t pos = 0;
    void *v;
    while (fg_hash_next(&u->items, &pos, NULL, &v))
        fg_im__item_free(v);
    fg_hash_clear(&u->items);
    fg_free(u->jid);
    fg_free(u);
}

/* An entry with nothing to remember goes. One with a roster version stays even when the
 * roster is empty: versions must never repeat for a client's cache (RFC 6121 2.6). */
void fg_im__user_maybe_free(struct fg_im *im, struct im_user *u)
{
    if (!u || u->sessions || fg_hash_count(&u->items) || u->offline || u->fetching || u->ver)
        return;
    fg_hash_remove(&im->users, u->jid, u->jid_len);
    user_free(u);
}

struct fg_buf *fg_im__buf(struct fg_im *im)
{
    if (im->nbufs == im->capbufs) {
        /* An array of pointers: buffers in use keep their address when it grows. */
        unsigned cap = im->capbufs ? im->capbufs * 2 : 8;
        im->bufs = fg_realloc(im->bufs, cap * sizeof *im->bufs);
        for (unsigned i = im->capbufs; i < cap; i++)
            im->bufs[i] = fg_calloc(1, sizeof **im->bufs);
        im->capbufs = cap;
    }
    struct fg_buf *b = im->bufs[im->nbufs++];
    fg_buf_reset(b);
    return b;
}

void fg_im__buf_done(struct fg_im *im)
{
    struct fg_buf *b = im->bufs[--im->nbufs];
    /* One huge stanza must not pin its size for good. */
    if (b->cap > 65536)
        fg_buf_free(b);
}

size_t fg_im__serialize(struct fg_buf *b, const struct fg_xml_node *n)
{
    struct fg_xml_scope scope;
    /* The stanza's own content namespace is the default, so a jabber:server stanza from a
     * peer reaches the client without xmlns and reads as jabber:client there. */
    const char *ns = fg_xml_ns_eq(n->ns, FG_XML_NS_SERVER) ? FG_XML_NS_SERVER : FG_XML_NS_CLIENT;
    fg_xml_scope_init(&scope, ns);
    size_t start = b->len;
    fg_xml_serialize(b, n, &scope);
    /* A 'to' goes last in the start tag: its first '>' (attribute values escape theirs),
     * before the '/' of an empty element. */
    const char *gt = memchr(b->data + start, '>', b->len - start);
    size_t ins = (size_t)(gt - b->data);
    if (b->data[ins - 1] == '/')
        ins--;
    return ins;
}

static void send_bytes(struct fg_im_session *s, const char *data, size_t len)
{
    s->ops.send(s->ud, data, len);
}

/* b with " to='to'" inserted at ins, into t. */
static void with_to(struct fg_buf *t, const struct fg_buf *b, size_t ins, const char *to)
{
    fg_buf_append(t, b->data, ins);
    fg_buf_append(t, " to='", 5);
    fg_xml_escape_attr(t, to, strlen(to));
    fg_buf_putc(t, '\'');
    fg_buf_append(t, b->data + ins, b->len - ins);
}

void fg_im__send(struct fg_im *im, struct fg_im_session *s, const struct fg_buf *b, size_t ins,
                 const char *to)
{
    if (!to) {
        send_bytes(s, b->data, b->len);
        return;
    }
    struct fg_buf *t = fg_im__buf(im);
    with_to(t, b, ins, to);
    send_bytes(s, t->data, t->len);
    fg_im__buf_done(im);
}

size_t fg_im__to_available(struct fg_im *im, struct im_user *u, const struct fg_buf *b, size_t ins,
                           const char *to, int min_prio)
{
    const struct fg_buf *out = b;
    size_t n = 0;
    bool own = false;
    for (struct fg_im_session *s = u ? u->sessions : NULL; s; s = s->next) {
        if (!s->available || s->priority < min_prio)
            continue;
        if (to && !own) {
            /* The same bytes for every resource of this user: built once. */
            struct fg_buf *t = fg_im__buf(im);
            with_to(t, b, ins, to);
            out = t;
            own = true;
        }
        send_bytes(s, out->data, out->len);
        n++;
    }
    if (own)
        fg_im__buf_done(im);
    return n;
}

static struct fg_im_session *find_session(struct im_user *u, const char *res, size_t len)
{
    for (struct fg_im_session *s = u ? u->sessions : NULL; s; s = s->next)
        if (strlen(s->resource) == len && !memcmp(s->resource, res, len))
            return s;
    return NULL;
}

static bool user_exists(struct fg_im *im, const char *bare)
{
    return !im->env.user_exists || im->env.user_exists(im->env.ud, bare);
}

/* ---- building stanzas ---------------------------------------------------------------- */

struct fg_xml_node *fg_im__presence(struct fg_arena **arena, const char *from, const char *to,
                                    const char *type)
{
    *arena = fg_arena_new(512);
    struct fg_xml_node *p = fg_xml_element_new(*arena, "presence", FG_XML_NS_CLIENT);
    if (from)
        fg_xml_set_attr(*arena, p, "from", from);
    if (to)
        fg_xml_set_attr(*arena, p, "to", to);
    if (type)
        fg_xml_set_attr(*arena, p, "type", type);
    return p;
}

void fg_im__send_presence(struct fg_im *im, const char *from, const char *to, const char *type)
{
    struct fg_arena *a;
    struct fg_xml_node *p = fg_im__presence(&a, from, to, type);
    fg_im__route(im, p, a);
}

struct fg_xml_node *fg_im__iq_result(struct fg_arena *a, const struct fg_xml_node *req)
{
    struct fg_xml_node *r = fg_xml_element_new(a, "iq", FG_XML_NS_CLIENT);
    const char *id = fg_xml_attr(req, "id"), *from = fg_xml_attr(req, "from");
    const char *to = fg_xml_attr(req, "to");
    fg_xml_set_attr(a, r, "type", "result");
    if (id)
        fg_xml_set_attr(a, r, "id", id);
    if (to)
        fg_xml_set_attr(a, r, "from", to);
    if (from)
        fg_xml_set_attr(a, r, "to", from);
    return r;
}

static const char *error_type(const char *cond)
{
    for (size_t i = 0; i < sizeof error_types / sizeof error_types[0]; i++)
        if (!strcmp(error_types[i].cond, cond))
            return error_types[i].type;
    return "cancel";
}

/* RFC 6120 8.3: the stanza goes back to its sender as type='error' with the original
 * content and an <error/>. Never for an error (8.3.1) or an IQ result. */
void fg_im__bounce(struct fg_im *im, struct fg_xml_node *st, struct fg_arena *arena,
                   const char *cond, const char *text)
{
    const char *type = fg_xml_attr(st, "type");
    const char *from = fg_xml_attr(st, "from");
    int kind = kind_of(st);
    if (eq(type, "error") || (kind == K_IQ && eq(type, "result")) || !from || kind < 0) {
        fg_arena_free(arena);
        return;
    }
    const char *to = fg_xml_attr(st, "to");
    struct fg_im_jid tj;
    /* An error about a malformed 'to' comes from the server: no 'from' then. */
    char *nfrom = to && fg_im_jid_parse(arena, to, &tj) == 0 ? fg_arena_strdup(arena, to) : NULL;
    char *nto = fg_arena_strdup(arena, from);
    fg_xml_remove_attr(st, "from");
    fg_xml_remove_attr(st, "to");
    if (nfrom)
        fg_xml_set_attr(arena, st, "from", nfrom);
    fg_xml_set_attr(arena, st, "to", nto);
    fg_xml_set_attr(arena, st, "type", "error");
    struct fg_xml_node *e = fg_xml_add_child(arena, st, "error", NULL);
    fg_xml_set_attr(arena, e, "type", error_type(cond));
    fg_xml_add_child(arena, e, cond, FG_XML_NS_STANZA_ERRORS);
    if (text) {
        struct fg_xml_node *t = fg_xml_add_child(arena, e, "text", FG_XML_NS_STANZA_ERRORS);
        fg_xml_add_text(arena, t, text, strlen(text));
    }
    fg_im__route(im, st, arena);
}

void fg_im_bounce(struct fg_im *im, struct fg_xml_node *stanza, struct fg_arena *arena,
                  const char *condition, const char *text)
{
    fg_im__bounce(im, stanza, arena, condition, text);
    if (!im->env.loop && im->writer)
        fg_store_async_drain(im->writer);
}

/* ---- routing --------------------------------------------------------------------------- */

enum route_flags {
    R_REMOTE = 1,       /* arrived from another domain */
    R_AUTO_APPROVE = 2, /* the inbound policy approves a subscription request */
};

static void to_user(struct fg_im *im, struct fg_xml_node *st, struct fg_arena *arena,
                    const struct fg_im_jid *j, unsigned flags);
static void to_server(struct fg_im *im, struct fg_xml_node *st, struct fg_arena *arena,
                      const struct fg_im_jid *j);

static int remote_send(struct fg_im *im, struct fg_xml_node *st, struct fg_arena *arena)
{
    if (im->env.remote && im->env.remote(im->env.ud, st, arena) == 0)
        return 0;
    return -1;
}

static void route_jid(struct fg_im *im, struct fg_xml_node *st, struct fg_arena *arena,
                      const struct fg_im_jid *j, unsigned flags)
{
    if (!fg_im__hosted(im, j->domain, j->domain_len)) {
        if (flags & R_REMOTE) { /* a peer does not relay through us */
            fg_arena_free(arena);
            return;
        }
        if (remote_send(im, st, arena) == 0)
            return;
        fg_im__bounce(im, st, arena, "remote-server-not-found", NULL);
        return;
    }
    if (!j->local_len)
        to_server(im, st, arena, j);
    else
        to_user(im, st, arena, j, flags);
}

void fg_im__route(struct fg_im *im, struct fg_xml_node *st, struct fg_arena *arena)
{
    struct fg_im_jid j;
    const char *to = fg_xml_attr(st, "to");
    if (!to || fg_im_jid_parse(arena, to, &j) != 0) {
        fg_arena_free(arena);
        return;
    }
    route_jid(im, st, arena, &j, 0);
}

/* Sends a copy of tree with to=`to` to another domain; no bounce (presence fan-out). */
static void remote_copy(struct fg_im *im, const struct fg_xml_node *tree, const char *to)
{
    struct fg_arena *a = fg_arena_new(1024);
    struct fg_xml_node *c = fg_xml_copy(a, tree);
    fg_xml_set_attr(a, c, "to", to);
    if (remote_send(im, c, a) != 0)
        fg_arena_free(a);
}

/* A presence notification (bytes b/ins without 'to', tree for other domains) to a bare
 * JID: its available resources here, or the other domain. */
static void presence_to_bare(struct fg_im *im, const char *bare, size_t len, const struct fg_buf *b,
                             size_t ins, const struct fg_xml_node *tree)
{
    const char *at = memchr(bare, '@', len);
    const char *dom = at ? at + 1 : bare;
    if (fg_im__hosted(im, dom, len - (size_t)(dom - bare)))
        fg_im__to_available(im, fg_im__user(im, bare, len), b, ins, bare, INT_MIN);
    else
        remote_copy(im, tree, bare);
}

/* RFC 6121 4.2.2 / 4.4.2: to every contact subscribed to the user (from, both), and to the
 * user's own available resources, each copy addressed to the recipient's bare JID. */
static void broadcast(struct fg_im *im, struct im_user *u, const struct fg_buf *b, size_t ins,
                      const struct fg_xml_node *tree)
{
    size_t pos = 0;
    void *v;
    while (fg_hash_next(&u->items, &pos, NULL, &v)) {
        struct im_item *it = v;
        if (fg_im_sub_has_from(it->state))
            presence_to_bare(im, it->jid, it->jid_len, b, ins, tree);
    }
    fg_im__to_available(im, u, b, ins, u->jid, INT_MIN);
}

void fg_im__presence_to(struct fg_im *im, struct im_user *u, const char *to, bool unavailable)
{
    for (struct fg_im_session *s = u->sessions; s; s = s->next) {
        if (!s->available)
            continue;
        struct fg_arena *a;
        struct fg_xml_node *p;
        if (unavailable) {
            p = fg_im__presence(&a, s->full, to, "unavailable");
        } else {
            a = fg_arena_new(1024);
            p = fg_xml_copy(a, s->pres);
            fg_xml_set_attr(a, p, "to", to);
        }
        fg_im__route(im, p, a);
    }
}

static int parse_priority(const struct fg_xml_node *p)
{
    struct fg_xml_node *pr = fg_xml_child(p, "priority", NULL);
    if (!pr)
        return 0;
    const char *t = fg_xml_text(pr, NULL);
    char *end;
    long v = strtol(t, &end, 10);
    if (end == t || *end)
        return 0; /* RFC 6121 4.7.2.3: an integer; anything else counts as the default */
    return v < -128 ? -128 : v > 127 ? 127 : (int)v;
}

/* RFC 6121 4.3.2: the server answers a probe for a local user. */
static void answer_probe(struct fg_im *im, struct im_user *u, const char *bare, const char *prober)
{
    struct im_item *it = u ? fg_im__item(u, prober, strlen(prober)) : NULL;
    if (!it || !fg_im_sub_has_from(it->state)) {
        fg_im__send_presence(im, bare, prober, "unsubscribed");
        return;
    }
    bool any = false;
    for (struct fg_im_session *s = u->sessions; s; s = s->next)
        any |= s->available;
    if (any)
        fg_im__presence_to(im, u, prober, false);
    else
        fg_im__send_presence(im, bare, prober, "unavailable");
}

/* ---- local delivery (RFC 6121 8.5) -------------------------------------------------------- */

static void no_such_user(struct fg_im *im, struct fg_xml_node *st, struct fg_arena *arena, int kind,
                         const char *bare)
{
    const char *type = fg_xml_attr(st, "type");
    const char *from = fg_xml_attr(st, "from");
    struct fg_im_jid fj;
    if (kind == K_PRESENCE) {
        /* 8.5.1: subscribe and probe get 'unsubscribed', the rest is ignored. */
        if ((eq(type, "subscribe") || eq(type, "probe")) && from &&
            fg_im_jid_parse(arena, from, &fj) == 0) {
            char *to = fg_arena_strndup(arena, fj.s, fj.bare_len);
            struct fg_arena *a;
            struct fg_xml_node *p = fg_im__presence(&a, bare, to, "unsubscribed");
            fg_arena_free(arena);
            fg_im__route(im, p, a);
            return;
        }
        fg_arena_free(arena);
        return;
    }
    if (kind == K_IQ && !eq(type, "get") && !eq(type, "set")) {
        fg_arena_free(arena);
        return;
    }
    fg_im__bounce(im, st, arena, "service-unavailable", NULL);
}

static void deliver_one(struct fg_im *im, struct fg_im_session *s, struct fg_xml_node *st,
                        struct fg_arena *arena)
{
    struct fg_buf *b = fg_im__buf(im);
    fg_im__serialize(b, st);
    send_bytes(s, b->data, b->len);
    fg_im__buf_done(im);
    fg_arena_free(arena);
}

/* Serializes st once and sends it to u's available sessions of priority >= min_prio.
 * Takes the arena; returns how many got it. */
static size_t deliver_available(struct fg_im *im, struct im_user *u, struct fg_xml_node *st,
                                struct fg_arena *arena, int min_prio)
{
    struct fg_buf *b = fg_im__buf(im);
    size_t ins = fg_im__serialize(b, st);
    size_t n = fg_im__to_available(im, u, b, ins, NULL, min_prio);
    fg_im__buf_done(im);
    fg_arena_free(arena);
    return n;
}

/* RFC 6121 8.5.2 for messages to a bare JID (or an unknown resource). */
static void message_to_bare(struct fg_im *im, struct im_user *u, const char *bare,
                            struct fg_xml_node *st, struct fg_arena *arena)
{
    const char *type = fg_xml_attr(st, "type");
    if (eq(type, "error")) {
        fg_arena_free(arena);
        return;
    }
    if (eq(type, "groupchat")) {
        fg_im__bounce(im, st, arena, "service-unavailable", NULL);
        return;
    }
    int best = INT_MIN;
    for (struct fg_im_session *s = u ? u->sessions : NULL; s; s = s->next)
        if (s->available && s->priority >= 0 && s->priority > best)
            best = s->priority;
    if (eq(type, "headline")) {
        /* All non-negative resources; nobody there: silently ignored. */
        if (best == INT_MIN)
            fg_arena_free(arena);
        else
            deliver_available(im, u, st, arena, 0);
        return;
    }
    /* normal, chat and unknown types (treated as normal, RFC 6121 5.2.2). */
    if (best == INT_MIN) {
        fg_im__offline_store(im, fg_im__user_get(im, bare, strlen(bare), true), st, arena);
        return;
    }
    deliver_available(im, u, st, arena, best);
}

static void iq_account(struct fg_im *im, struct im_user *u, const char *bare,
                       struct fg_xml_node *st, struct fg_arena *arena,
                       struct fg_im_session *owner_session);

static void to_user(struct fg_im *im, struct fg_xml_node *st, struct fg_arena *arena,
                    const struct fg_im_jid *j, unsigned flags)
{
    int kind = kind_of(st);
    const char *type = fg_xml_attr(st, "type");
    char *bare = fg_arena_strndup(arena, j->s, j->bare_len);
    int ev = kind == K_PRESENCE ? fg_im_sub_event_for(type, false) : -1;
    bool sub_or_probe = ev >= 0 || (kind == K_PRESENCE && eq(type, "probe"));

    if (!user_exists(im, bare)) {
        no_such_user(im, st, arena, kind, bare);
        return;
    }
    struct im_user *u = fg_im__user(im, bare, j->bare_len);
    /* The sender's bare JID, for what depends on who sends: the policy of other domains,
     * subscriptions and probes (not needed on the message fast path). */
    struct fg_im_jid fj;
    char *from_bare = NULL;
    if ((flags & R_REMOTE) || sub_or_probe) {
        const char *from = fg_xml_attr(st, "from");
        if (from && fg_im_jid_parse(arena, from, &fj) == 0)
            from_bare = fg_arena_strndup(arena, fj.s, fj.bare_len);
    }

    if ((flags & R_REMOTE) && im->env.inbound && from_bare) {
        struct im_item *it = u ? fg_im__item(u, from_bare, fj.bare_len) : NULL;
        struct fg_im_remote_info info = {
            .remote_bare = from_bare,
            .local_bare = bare,
            .kind = kind == K_MESSAGE ? FG_IM_MESSAGE
                    : kind == K_IQ    ? FG_IM_IQ
                    : ev >= 0         ? FG_IM_SUBSCRIPTION
                                      : FG_IM_PRESENCE,
            .type = type ? type : "",
            .in_roster = it && it->listed,
            .pre_approved =
                it && (fg_im_sub_has_to(it->state) || fg_im_sub_ask(it->state) || it->approved),
        };
        enum fg_im_verdict v = im->env.inbound(im->env.ud, &info, st);
        if (v == FG_IM_REFUSE) {
            no_such_user(im, st, arena, kind, bare);
            return;
        }
        if (v == FG_IM_AUTO_APPROVE)
            flags |= R_AUTO_APPROVE;
    }

    if (j->resource && !sub_or_probe) {
        struct fg_im_session *s = find_session(u, j->resource, j->resource_len);
        if (s) {
            /* 8.5.3.1: a connected resource gets it, whatever the type. */
            deliver_one(im, s, st, arena);
            return;
        }
        /* 8.5.3.2: no such resource. A message goes on as if to the bare JID (where
         * groupchat and error are handled); an IQ request is answered; the rest (presence,
         * IQ results and errors) is dropped. */
        if (kind == K_IQ && (eq(type, "get") || eq(type, "set"))) {
            fg_im__bounce(im, st, arena, "service-unavailable", NULL);
            return;
        }
        if (kind != K_MESSAGE) {
            fg_arena_free(arena);
            return;
        }
    }

    switch (kind) {
    case K_MESSAGE:
        message_to_bare(im, u, bare, st, arena);
        return;
    case K_IQ:
        iq_account(im, u, bare, st, arena, NULL);
        return;
    default:
        break;
    }
    /* presence to the bare JID */
    if (ev >= 0) {
        if (!from_bare || !strcmp(from_bare, bare)) {
            fg_arena_free(arena);
            return;
        }
        fg_im__sub_in(im, fg_im__user_get(im, bare, j->bare_len, true), from_bare, st, arena,
                      (enum fg_im_sub_event)ev, (flags & R_AUTO_APPROVE) != 0);
        return;
    }
    if (eq(type, "probe")) {
        if (from_bare)
            answer_probe(im, u, bare, from_bare);
        fg_arena_free(arena);
        return;
    }
    if (type && !eq(type, "unavailable") && !eq(type, "error")) {
        fg_arena_free(arena); /* unknown presence type from elsewhere: ignored */
        return;
    }
    /* 8.5.2.1.2: available, unavailable (and errors) to every available resource. */
    if (u)
        deliver_available(im, u, st, arena, INT_MIN);
    else
        fg_arena_free(arena);
}

/* ---- what the server answers itself ---------------------------------------------------- */

/* The single child of an IQ get/set (RFC 6120 8.2.3), or NULL after a <bad-request/>. */
static struct fg_xml_node *iq_payload(struct fg_im *im, struct fg_xml_node *st,
                                      struct fg_arena *arena, bool *done)
{
    const char *type = fg_xml_attr(st, "type");
    *done = false;
    if (eq(type, "result") || eq(type, "error")) {
        fg_arena_free(arena);
        *done = true;
        return NULL;
    }
    struct fg_xml_node *child = fg_xml_child(st, NULL, NULL);
    bool ok = (eq(type, "get") || eq(type, "set")) && fg_xml_attr(st, "id") && child &&
              !fg_xml_next(child, NULL, NULL);
    if (!ok) {
        fg_im__bounce(im, st, arena, "bad-request", NULL);
        *done = true;
        return NULL;
    }
    return child;
}

static void add_feature(struct fg_arena *a, struct fg_xml_node *q, const char *var)
{
    fg_xml_set_attr(a, fg_xml_add_child(a, q, "feature", NULL), "var", var);
}

static void add_identity(struct fg_arena *a, struct fg_xml_node *q, const char *category,
                         const char *type, const char *name)
{
    struct fg_xml_node *id = fg_xml_add_child(a, q, "identity", NULL);
    fg_xml_set_attr(a, id, "category", category);
    fg_xml_set_attr(a, id, "type", type);
    if (name)
        fg_xml_set_attr(a, id, "name", name);
}

/* A result for st carrying a copy of its query element (for the node attribute). */
static struct fg_xml_node *result_query(struct fg_arena *a, struct fg_xml_node *st,
                                        const struct fg_xml_node *q)
{
    struct fg_xml_node *r = fg_im__iq_result(a, st);
    struct fg_xml_node *rq = fg_xml_add_child(a, r, q->name, q->ns);
    const char *node = fg_xml_attr(q, "node");
    if (node)
        fg_xml_set_attr(a, rq, "node", node);
    return r;
}

/* IQ handlers of the server and of accounts, as a table (RFC 6120 8.4: a namespace not in
 * it is <service-unavailable/>; a known one without a handler for the type is
 * <feature-not-implemented/>). */
struct iq_req {
    struct fg_xml_node *st, *q;
    struct fg_arena *arena;
    struct fg_im_session *owner_session; /* the account's own session, when it asked */
};

enum iq_target {
    IQ_SERVER = 1,  /* to the domain */
    IQ_OWNER = 2,   /* to an account, from its own session */
    IQ_ALLOWED = 4, /* to an account, from itself or a contact it shows its presence to */
};

static void iq_reply(struct fg_im *im, struct iq_req *r)
{
    fg_im__route(im, fg_im__iq_result(r->arena, r->st), r->arena);
}

/* XEP-0030: a node is something this server does not have. */
static struct fg_xml_node *disco_result(struct fg_im *im, struct iq_req *r)
{
    if (fg_xml_attr(r->q, "node")) {
        fg_im__bounce(im, r->st, r->arena, "item-not-found", NULL);
        return NULL;
    }
    return result_query(r->arena, r->st, r->q);
}

static void h_disco_info_server(struct fg_im *im, struct iq_req *r)
{
    static const char *const features[] = {
        NS_DISCO_INFO,
        NS_DISCO_ITEMS,
        NS_PING,
        NS_ROSTER,
        "urn:xmpp:features:rosterver",
        "urn:xmpp:features:pre-approval",
        "msgoffline",
        NS_DELAY,
    };
    struct fg_xml_node *res = disco_result(im, r);
    if (!res)
        return;
    add_identity(r->arena, res->children, "server", "im", "fedgate");
    for (size_t i = 0; i < sizeof features / sizeof features[0]; i++)
        add_feature(r->arena, res->children, features[i]);
    fg_im__route(im, res, r->arena);
}

static void h_disco_info_account(struct fg_im *im, struct iq_req *r)
{
    struct fg_xml_node *res = disco_result(im, r);
    if (!res)
        return;
    add_identity(r->arena, res->children, "account", "registered", NULL);
    add_feature(r->arena, res->children, NS_DISCO_INFO);
    fg_im__route(im, res, r->arena);
}

static void h_disco_items(struct fg_im *im, struct iq_req *r)
{
    struct fg_xml_node *res = disco_result(im, r); /* no components, no services: empty */
    if (res)
        fg_im__route(im, res, r->arena);
}

static void h_roster(struct fg_im *im, struct iq_req *r)
{
    fg_im__roster_iq(im, r->owner_session, r->st, r->arena, r->q);
}

static const struct {
    const char *ns, *name;
    unsigned targets;
    void (*get)(struct fg_im *, struct iq_req *);
    void (*set)(struct fg_im *, struct iq_req *);
} iq_handlers[] = {
    {NS_DISCO_INFO, "query", IQ_SERVER, h_disco_info_server, NULL},
    {NS_DISCO_INFO, "query", IQ_ALLOWED, h_disco_info_account, NULL},
    {NS_DISCO_ITEMS, "query", IQ_SERVER, h_disco_items, NULL},
    {NS_PING, "ping", IQ_SERVER | IQ_ALLOWED, iq_reply, NULL},
    {NS_ROSTER, "query", IQ_OWNER, h_roster, h_roster},
    /* RFC 3921 session establishment: a no-op kept for old clients. */
    {FG_XML_NS_SESSION, "session", IQ_SERVER | IQ_OWNER, NULL, iq_reply},
};

/* target: what the IQ is for and what the requester may see (IQ_* bits). */
static void iq_dispatch(struct fg_im *im, struct iq_req *r, unsigned target)
{
    bool get = eq(fg_xml_attr(r->st, "type"), "get");
    for (size_t i = 0; i < sizeof iq_handlers / sizeof iq_handlers[0]; i++) {
        if (!(iq_handlers[i].targets & target) || strcmp(iq_handlers[i].name, r->q->name) ||
            !fg_xml_ns_eq(iq_handlers[i].ns, r->q->ns))
            continue;
        void (*h)(struct fg_im *, struct iq_req *) = get ? iq_handlers[i].get : iq_handlers[i].set;
        if (h)
            h(im, r);
        else
            fg_im__bounce(im, r->st, r->arena, "feature-not-implemented", NULL);
        return;
    }
    /* Not served, or not for this requester: the same answer as for an account that
     * does not exist (RFC 6121 8.5.2.1.3), so nothing is revealed. */
    fg_im__bounce(im, r->st, r->arena, "service-unavailable", NULL);
}

/* The server itself (to = domain, or domain/resource). */
static void to_server(struct fg_im *im, struct fg_xml_node *st, struct fg_arena *arena,
                      const struct fg_im_jid *j)
{
    int kind = kind_of(st);
    const char *type = fg_xml_attr(st, "type");
    if (kind == K_PRESENCE || (kind == K_MESSAGE && (eq(type, "error") || eq(type, "headline")))) {
        fg_arena_free(arena);
        return;
    }
    if (kind == K_MESSAGE || j->resource) {
        /* no service takes messages, nor any stanza to a resource of the server */
        if (kind == K_IQ && !eq(type, "get") && !eq(type, "set"))
            fg_arena_free(arena);
        else
            fg_im__bounce(im, st, arena, "service-unavailable", NULL);
        return;
    }
    bool done;
    struct iq_req r = {st, iq_payload(im, st, arena, &done), arena, NULL};
    if (!done)
        iq_dispatch(im, &r, IQ_SERVER);
}

/* RFC 6121 8.5.2.1.3: an IQ to a user's bare JID is answered by the server on the
 * account's behalf. owner_session: the account's own session when it asked. */
static void iq_account(struct fg_im *im, struct im_user *u, const char *bare,
                       struct fg_xml_node *st, struct fg_arena *arena,
                       struct fg_im_session *owner_session)
{
    bool done;
    struct iq_req r = {st, iq_payload(im, st, arena, &done), arena, owner_session};
    if (done)
        return;
    unsigned target = 0;
    if (owner_session) {
        target = IQ_OWNER | IQ_ALLOWED;
    } else {
        const char *from = fg_xml_attr(st, "from");
        struct fg_im_jid fj;
        if (from && fg_im_jid_parse(arena, from, &fj) == 0) {
            bool self = fj.bare_len == strlen(bare) && !memcmp(fj.s, bare, fj.bare_len);
            struct im_item *it = u ? fg_im__item(u, fj.s, fj.bare_len) : NULL;
            if (self || (it && fg_im_sub_has_from(it->state)))
                target = IQ_ALLOWED;
        }
    }
    iq_dispatch(im, &r, target);
}

/* ---- presence from a client ---------------------------------------------------------- */

static void drop_presence(struct fg_im_session *s)
{
    fg_arena_free(s->pres_arena);
    s->pres_arena = NULL;
    s->pres = NULL;
    fg_buf_free(&s->pres_bytes);
    s->pres_ins = 0;
}

static void clear_directed(struct fg_im_session *s)
{
    size_t pos = 0;
    void *v;
    while (fg_hash_next(&s->directed, &pos, NULL, &v))
        fg_free(v);
    fg_hash_clear(&s->directed);
}

/* Probes at initial presence (RFC 6121 4.2.2): to every contact the user is subscribed
 * to. A local contact is answered at once, to the new resource only. */
static void initial_probes(struct fg_im *im, struct fg_im_session *s)
{
    struct im_user *u = s->user;
    size_t n = 0, pos = 0;
    void *v;
    while (fg_hash_next(&u->items, &pos, NULL, &v))
        n += fg_im_sub_has_to(((struct im_item *)v)->state);
    if (!n)
        return;
    /* Copied first: answering may change this very roster (an 'unsubscribed' reply). */
    struct fg_arena *tmp = fg_arena_new(0);
    const char **targets = fg_arena_alloc(tmp, n * sizeof *targets);
    size_t k = 0;
    pos = 0;
    while (fg_hash_next(&u->items, &pos, NULL, &v)) {
        struct im_item *it = v;
        if (fg_im_sub_has_to(it->state))
            targets[k++] = fg_arena_strdup(tmp, it->jid);
    }
    for (size_t i = 0; i < k && s->user; i++) {
        const char *c = targets[i];
        size_t clen = strlen(c);
        const char *at = strchr(c, '@');
        const char *dom = at ? at + 1 : c;
        struct fg_arena *a;
        if (!fg_im__hosted(im, dom, clen - (size_t)(dom - c))) {
            struct fg_xml_node *p = fg_im__presence(&a, u->jid, c, "probe");
            if (remote_send(im, p, a) != 0)
                fg_arena_free(a);
            continue;
        }
        if (!user_exists(im, c))
            continue;
        struct im_user *cu = fg_im__user(im, c, clen);
        struct im_item *back = cu ? fg_im__item(cu, u->jid, u->jid_len) : NULL;
        if (!back || !fg_im_sub_has_from(back->state)) {
            fg_im__send_presence(im, c, u->jid, "unsubscribed");
            continue;
        }
        for (struct fg_im_session *cs = cu->sessions; cs; cs = cs->next)
            if (cs->available)
                fg_im__send(im, s, &cs->pres_bytes, cs->pres_ins, u->jid);
    }
    fg_arena_free(tmp);
}

size_t fg_im_refresh_probes(struct fg_im *im)
{
    if (!im)
        return 0;
    /* Targets copied first: a probe refused at once bounces back into the router. */
    struct fg_arena *tmp = fg_arena_new(0);
    const char **from = NULL, **to = NULL;
    size_t n = 0, cap = 0, pos = 0;
    void *v;
    while (fg_hash_next(&im->users, &pos, NULL, &v)) {
        struct im_user *u = v;
        bool online = false;
        for (struct fg_im_session *s = u->sessions; s && !online; s = s->next)
            online = s->available;
        if (!online)
            continue;
        size_t ip = 0;
        void *iv;
        while (fg_hash_next(&u->items, &ip, NULL, &iv)) {
            struct im_item *it = iv;
            const char *at = strchr(it->jid, '@');
            const char *dom = at ? at + 1 : it->jid;
            if (!fg_im_sub_has_to(it->state) ||
                fg_im__hosted(im, dom, strlen(it->jid) - (size_t)(dom - it->jid)))
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                const char **nf = fg_arena_alloc(tmp, cap * sizeof *nf);
                const char **nt = fg_arena_alloc(tmp, cap * sizeof *nt);
                if (n) {
                    memcpy(nf, from, n * sizeof *nf);
                    memcpy(nt, to, n * sizeof *nt);
                }
                from = nf;
                to = nt;
            }
            from[n] = fg_arena_strdup(tmp, u->jid);
            to[n++] = fg_arena_strdup(tmp, it->jid);
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct fg_arena *a;
        struct fg_xml_node *p = fg_im__presence(&a, from[i], to[i], "probe");
        if (remote_send(im, p, a) != 0)
            fg_arena_free(a);
    }
    fg_arena_free(tmp);
    return n;
}

static void presence_available(struct fg_im *im, struct fg_im_session *s, struct fg_xml_node *st,
                               struct fg_arena *arena)
{
    struct im_user *u = s->user;
    bool initial = !s->available;
    s->available = true;
    s->priority = parse_priority(st);
    /* The stanza and its arena are kept as this resource's current presence. */
    fg_arena_free(s->pres_arena);
    s->pres = st;
    s->pres_arena = arena;
    fg_buf_reset(&s->pres_bytes);
    s->pres_ins = fg_im__serialize(&s->pres_bytes, st);
    broadcast(im, u, &s->pres_bytes, s->pres_ins, st);
    if (initial) {
        /* The new resource learns about the user's other resources (RFC 6121 4.2.2). */
        for (struct fg_im_session *o = u->sessions; o; o = o->next)
            if (o != s && o->available)
                fg_im__send(im, s, &o->pres_bytes, o->pres_ins, u->jid);
        initial_probes(im, s);
        if (s->user)
            fg_im__pending_in(im, s);
    }
    if (s->user && s->priority >= 0 && u->offline && !u->fetching)
        fg_im__offline_fetch(im, u, s);
}

/* Unavailable: broadcast if the resource was available, and to every directed presence
 * recipient (RFC 6121 4.5.2, 4.6.3). st NULL: the server's own (disconnect). */
static void presence_unavailable(struct fg_im *im, struct fg_im_session *s, struct fg_xml_node *st,
                                 struct fg_arena *arena)
{
    struct im_user *u = s->user;
    if (!st)
        st = fg_im__presence(&arena, s->full, NULL, "unavailable");
    struct fg_buf *b = fg_im__buf(im);
    size_t ins = fg_im__serialize(b, st);
    if (s->available) {
        s->available = false;
        broadcast(im, u, b, ins, st);
        drop_presence(s);
    }
    size_t pos = 0;
    void *v;
    while (fg_hash_next(&s->directed, &pos, NULL, &v)) {
        struct fg_arena *a = fg_arena_new(1024);
        struct fg_xml_node *c = fg_xml_copy(a, st);
        fg_xml_set_attr(a, c, "to", v);
        fg_im__route(im, c, a);
    }
    clear_directed(s);
    fg_im__buf_done(im);
    fg_arena_free(arena);
}

static void client_presence(struct fg_im *im, struct fg_im_session *s, struct fg_xml_node *st,
                            struct fg_arena *arena, const struct fg_im_jid *j)
{
    const char *type = fg_xml_attr(st, "type");
    struct im_user *u = s->user;
    if (!j) {
        if (!type)
            presence_available(im, s, st, arena);
        else if (eq(type, "unavailable"))
            presence_unavailable(im, s, st, arena);
        else if (eq(type, "error"))
            fg_arena_free(arena);
        else /* a subscription or probe needs an addressee; unknown types are wrong */
            fg_im__bounce(im, st, arena, "bad-request", NULL);
        return;
    }
    int ev = fg_im_sub_event_for(type, true);
    if (ev >= 0) {
        fg_im__sub_out(im, s, j, st, arena, (enum fg_im_sub_event)ev);
        return;
    }
    if (eq(type, "probe")) {
        /* Probes speak for the account: stamped with the bare JIDs (RFC 6121 4.3.1). */
        fg_xml_set_attr(arena, st, "from", u->jid);
        fg_xml_set_attr(arena, st, "to", fg_arena_strndup(arena, j->s, j->bare_len));
        fg_im__route(im, st, arena);
        return;
    }
    if (!type || eq(type, "unavailable")) {
        /* Directed presence (RFC 6121 4.6): remembered when the recipient is not already
         * covered by the broadcast, so that it hears when this resource goes away. */
        struct im_item *it = fg_im__item(u, j->s, j->bare_len);
        bool covered = it && fg_im_sub_has_from(it->state) && !j->resource;
        char *old = fg_hash_remove(&s->directed, j->s, j->len);
        fg_free(old);
        if (!type && !covered) {
            char *key = fg_strndup(j->s, j->len);
            fg_hash_put(&s->directed, key, j->len, key);
        }
        route_jid(im, st, arena, j, 0);
        return;
    }
    if (eq(type, "error")) {
        route_jid(im, st, arena, j, 0);
        return;
    }
    fg_im__bounce(im, st, arena, "bad-request", NULL);
}

/* ---- public interface -------------------------------------------------------------------- */

bool fg_im_feature_roster_versioning(void)
{
    return true;
}

bool fg_im_feature_pre_approval(void)
{
    return true;
}

void fg_im_stream_features(struct fg_buf *b)
{
    if (fg_im_feature_roster_versioning())
        fg_buf_puts(b, "<ver xmlns='urn:xmpp:features:rosterver'/>");
    if (fg_im_feature_pre_approval())
        fg_buf_puts(b, "<sub xmlns='urn:xmpp:features:pre-approval'/>");
}

struct fg_im *fg_im_new(const struct fg_im_env *env)
{
    struct fg_im *im = fg_calloc(1, sizeof *im);
    char err[512];
    int rc;

    im->env = *env;
    im->domains = fg_strv_dup(env->domains);
    im->env.domains = im->domains;
    if (env->store) {
        rc = fg_im__roster_load(im, env->store);
        if (rc == 0)
            rc = fg_im__offline_load(im, env->store);
        if (rc != 0) {
            fg_log(FG_LOG_ERROR, "im-load-failed", "reason", fg_store_error(env->store), "fix",
                   "check that the store is reachable and readable", NULL);
            goto fail;
        }
        rc = fg_store_async_new(env->loop, env->store, &im->writer, err, sizeof err);
        if (rc != 0) {
            fg_log(FG_LOG_ERROR, "im-writer-failed", "reason", err, NULL);
            goto fail;
        }
        if (!env->loop)
            fg_log(FG_LOG_DEBUG, "im-store-sync", "reason",
                   "no event loop given: roster and offline writes block the caller", NULL);
    }
    return im;
fail:
    fg_im_free(im);
    return NULL;
}

void fg_im_flush(struct fg_im *im)
{
    if (im->writer)
        fg_store_async_drain(im->writer);
}

void fg_im_free(struct fg_im *im)
{
    if (!im)
        return;
    fg_im_flush(im);
    fg_store_async_free(im->writer);
    size_t pos = 0;
    void *v;
    while (fg_hash_next(&im->users, &pos, NULL, &v)) {
        struct im_user *u = v;
        struct fg_im_session *s = u->sessions;
        while (s) {
            struct fg_im_session *next = s->next;
            drop_presence(s);
            clear_directed(s);
            fg_free(s->full);
            fg_free(s);
            s = next;
        }
        user_free(u);
    }
    fg_hash_clear(&im->users);
    for (unsigned i = 0; i < im->capbufs; i++) {
        fg_buf_free(im->bufs[i]);
        fg_free(im->bufs[i]);
    }
    fg_free(im->bufs);
    fg_strv_free(im->domains);
    fg_free(im);
}

/* Without a loop, store jobs ran inline: their completions run now, at the end of the
 * public call that caused them, and so do those of the jobs they submit in turn. */
static void poll_sync(struct fg_im *im)
{
    if (!im->env.loop && im->writer)
        fg_store_async_drain(im->writer);
}

/* Takes the session out of the router: unavailable presence, out of its user's list. */
static void detach(struct fg_im *im, struct fg_im_session *s)
{
    struct im_user *u = s->user;
    if (!u)
        return;
    presence_unavailable(im, s, NULL, NULL);
    struct fg_im_session **pp = &u->sessions;
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp)
        *pp = s->next;
    s->user = NULL;
    s->next = NULL;
    im->nsessions--;
    fg_im__user_maybe_free(im, u);
}

int fg_im_bind(struct fg_im *im, const char *bare_jid, const char *resource,
               const struct fg_im_session_ops *ops, void *ud, struct fg_im_session **out,
               char *full_jid, size_t len)
{
    struct fg_im_jid j;
    char gen[33];
    *out = NULL;

    char bare[FG_IM_JID_MAX + 1];
    struct fg_arena *tmp = fg_arena_new(0);
    if (fg_im_jid_parse(tmp, bare_jid, &j) != 0 || j.resource || !j.local_len) {
        fg_arena_free(tmp);
        return FG_EINVAL;
    }
    memcpy(bare, j.s, j.len + 1);
    size_t bare_len = j.len;
    fg_arena_free(tmp);
    struct im_user *u = fg_im__user_get(im, bare, bare_len, true);

    if (!resource) {
        do {
            if (fg_random_hex(gen, 8) != 0)
                return FG_EIO;
        } while (find_session(u, gen, strlen(gen)));
        resource = gen;
    }
    size_t rlen = strlen(resource);
    if (rlen == 0 || rlen > FG_IM_JID_PART_MAX)
        return FG_EINVAL;
    for (size_t i = 0; i < rlen; i++)
        if ((unsigned char)resource[i] < 0x20 || resource[i] == 0x7f)
            return FG_EINVAL;
    size_t flen = u->jid_len + 1 + rlen;
    if (flen + 1 > len)
        return FG_ELIMIT;

    /* RFC 6120 7.7.2.2: the new session wins; the old one is taken out first, so that
     * its unavailable presence goes before the new one's available presence. */
    struct fg_im_session *old = find_session(u, resource, rlen);
    if (old) {
        fg_log(FG_LOG_INFO, "session-replaced", "jid", old->full, "reason",
               "the same resource was bound by a new stream", NULL);
        detach(im, old);
        u = fg_im__user_get(im, bare, bare_len, true); /* detach may have freed it */
    }

    struct fg_im_session *s = fg_calloc(1, sizeof *s);
    s->full = fg_malloc(flen + 1);
    memcpy(s->full, u->jid, u->jid_len);
    s->full[u->jid_len] = '/';
    memcpy(s->full + u->jid_len + 1, resource, rlen + 1);
    s->full_len = flen;
    s->resource = s->full + u->jid_len + 1;
    s->ops = *ops;
    s->ud = ud;
    s->serial = ++im->serial;
    s->user = u;
    s->next = u->sessions;
    u->sessions = s;
    im->nsessions++;
    memcpy(full_jid, s->full, flen + 1);
    *out = s;

    if (old && old->ops.kick)
        old->ops.kick(old->ud, "conflict"); /* may call fg_im_unbind(old) right here */
    poll_sync(im);
    return 0;
}

void fg_im_unbind(struct fg_im *im, struct fg_im_session *s)
{
    if (!s)
        return;
    detach(im, s);
    drop_presence(s);
    clear_directed(s);
    fg_free(s->full);
    fg_free(s);
    poll_sync(im);
}

void fg_im_stanza(struct fg_im *im, struct fg_im_session *s, struct fg_xml_node *st,
                  struct fg_arena *arena)
{
    int kind = kind_of(st);
    struct im_user *u = s->user;
    if (!u || kind < 0) {
        fg_arena_free(arena);
        return;
    }
    /* The stream layer stamped 'from'; make sure of it whatever it did. */
    const char *from = fg_xml_attr(st, "from");
    if (!from || strcmp(from, s->full))
        fg_xml_set_attr(arena, st, "from", s->full);

    const char *to = fg_xml_attr(st, "to");
    struct fg_im_jid j;
    if (to && fg_im_jid_parse(arena, to, &j) != 0) {
        fg_im__bounce(im, st, arena, "jid-malformed", NULL);
        goto out;
    }
    switch (kind) {
    case K_PRESENCE:
        client_presence(im, s, st, arena, to ? &j : NULL);
        break;
    case K_MESSAGE:
        if (!to) {
            /* RFC 6120 10.3.1: as if addressed to the sender's bare JID. */
            fg_xml_set_attr(arena, st, "to", u->jid);
            fg_im_jid_parse(arena, u->jid, &j);
        }
        route_jid(im, st, arena, &j, 0);
        break;
    default: {
        const char *type = fg_xml_attr(st, "type");
        if (!eq(type, "get") && !eq(type, "set") && !eq(type, "result") && !eq(type, "error")) {
            fg_im__bounce(im, st, arena, "bad-request", NULL);
            break;
        }
        /* RFC 6120 10.3.3: no 'to' (or the account's own bare JID): the server answers
         * for the account. */
        if (!to || (!j.resource && j.bare_len == u->jid_len && !memcmp(j.s, u->jid, u->jid_len)))
            iq_account(im, u, u->jid, st, arena, s);
        else
            route_jid(im, st, arena, &j, 0);
        break;
    }
    }
out:
    poll_sync(im);
}

void fg_im_deliver_remote(struct fg_im *im, struct fg_xml_node *st, struct fg_arena *arena)
{
    struct fg_im_jid to, from;
    int kind = kind_of(st);
    const char *t = fg_xml_attr(st, "to"), *f = fg_xml_attr(st, "from");
    if (kind < 0 || !t || !f || fg_im_jid_parse(arena, t, &to) != 0 ||
        fg_im_jid_parse(arena, f, &from) != 0 || !fg_im__hosted(im, to.domain, to.domain_len) ||
        fg_im__hosted(im, from.domain, from.domain_len)) {
        /* The s2s layer checks addresses; what still gets here is dropped. */
        fg_log(FG_LOG_DEBUG, "remote-stanza-dropped", "from", f, "to", t, "reason",
               "bad or non-local addresses", NULL);
        fg_arena_free(arena);
        return;
    }
    route_jid(im, st, arena, &to, R_REMOTE);
    poll_sync(im);
}

size_t fg_im_session_count(const struct fg_im *im)
{
    return im->nsessions;
}

size_t fg_im_offline_count(const struct fg_im *im, const char *bare_jid)
{
    struct im_user *u = fg_hash_get(&im->users, bare_jid, strlen(bare_jid));
    return u ? u->offline : 0;
}
