/* roster.c - rosters in memory (RFC 6121 section 2): get with versioning, set and remove
 * with validation, pushes to interested resources, write-through to the store on the
 * writer thread; and the subscription stanzas (section 3) applied through sub.h's table. */
#include "im/internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"

static bool eq(const char *a, const char *b)
{
    return a && b && !strcmp(a, b);
}

/* ---- items ------------------------------------------------------------------------------- */

struct im_item *fg_im__item(struct im_user *u, const char *contact, size_t len)
{
    return fg_hash_get(&u->items, contact, len);
}

void fg_im__item_free(struct im_item *it)
{
    if (!it)
        return;
    fg_free(it->jid);
    fg_free(it->name);
    fg_strv_free(it->groups);
    fg_free(it);
}

static struct im_item *item_new(struct im_user *u, const char *contact, size_t len)
{
    struct im_item *it = fg_calloc(1, sizeof *it);
    it->jid = fg_strndup(contact, len);
    it->jid_len = len;
    fg_hash_put(&u->items, it->jid, len, it);
    return it;
}

static void item_remove(struct im_user *u, struct im_item *it)
{
    fg_hash_remove(&u->items, it->jid, it->jid_len);
    if (it->listed)
        u->nlisted--;
    fg_im__item_free(it);
}

/* ---- write-through ------------------------------------------------------------------------ */

struct roster_job {
    char *owner;
    struct fg_roster_item item;
    int64_t version;
    bool del;
    char err[256];
};

static int roster_write(struct fg_store *st, void *arg)
{
    struct roster_job *j = arg;
    if (!j->del)
        return fg_store_roster_put(st, j->owner, &j->item, j->version);
    int rc = fg_store_roster_delete(st, j->owner, j->item.contact, j->version);
    return rc == FG_ENOTFOUND ? FG_OK : rc; /* gone already: what we wanted */
}

static int roster_run(struct fg_store *st, void *arg)
{
    struct roster_job *j = arg;
    int rc = fg_store_in_tx(st, roster_write, j);
    if (rc != 0)
        snprintf(j->err, sizeof j->err, "%s", fg_store_error(st));
    return rc;
}

static void roster_done(void *arg, int rc)
{
    struct roster_job *j = arg;
    if (rc != 0)
        fg_log(FG_LOG_ERROR, "roster-write-failed", "jid", j->owner, "contact", j->item.contact,
               "reason", j->err, "fix",
               "check the store; the change is live in memory and is written again with the "
               "item's next change",
               NULL);
    fg_free(j->owner);
    fg_roster_item_clear(&j->item);
    fg_free(j);
}

static void persist(struct fg_im *im, struct im_user *u, const struct im_item *it, bool del)
{
    if (!im->writer)
        return;
    struct roster_job *j = fg_calloc(1, sizeof *j);
    j->owner = fg_strdup(u->jid);
    j->item.contact = fg_strdup(it->jid);
    j->item.name = it->name ? fg_strdup(it->name) : NULL;
    j->item.groups = it->groups ? fg_strv_dup(it->groups) : NULL;
    j->item.sub = fg_im_sub_roster(it->state);
    j->item.ask = fg_im_sub_ask(it->state);
    j->item.pending_in = fg_im_sub_pending_in(it->state);
    j->item.approved = it->approved;
    j->item.listed = it->listed;
    j->version = u->ver;
    j->del = del;
    fg_store_async_submit(im->writer, roster_run, roster_done, j);
}

/* ---- XML ------------------------------------------------------------------------------------ */

static const char *const sub_text[] = {"none", "to", "from", "both"};

static void item_xml(struct fg_arena *a, struct fg_xml_node *q, const struct im_item *it,
                     bool removed)
{
    struct fg_xml_node *x = fg_xml_add_child(a, q, "item", NULL);
    fg_xml_set_attr(a, x, "jid", it->jid);
    if (removed) {
        fg_xml_set_attr(a, x, "subscription", "remove");
        return;
    }
    if (it->name)
        fg_xml_set_attr(a, x, "name", it->name);
    fg_xml_set_attr(a, x, "subscription", sub_text[fg_im_sub_roster(it->state)]);
    if (fg_im_sub_ask(it->state))
        fg_xml_set_attr(a, x, "ask", "subscribe");
    if (it->approved)
        fg_xml_set_attr(a, x, "approved", "true");
    for (size_t i = 0; it->groups && it->groups[i]; i++) {
        struct fg_xml_node *g = fg_xml_add_child(a, x, "group", NULL);
        fg_xml_add_text(a, g, it->groups[i], strlen(it->groups[i]));
    }
}

static void ver_text(const struct im_user *u, char *buf, size_t len)
{
    snprintf(buf, len, "%" PRId64, u->ver);
}

/* RFC 6121 2.1.6: the item to every interested resource, serialized once. */
static void push(struct fg_im *im, struct im_user *u, const struct im_item *it, bool removed)
{
    bool any = false;
    for (struct fg_im_session *s = u->sessions; s; s = s->next)
        any |= s->interested;
    if (!any)
        return;
    char ver[24], id[32];
    struct fg_arena *a = fg_arena_new(1024);
    struct fg_xml_node *iq = fg_xml_element_new(a, "iq", FG_XML_NS_CLIENT);
    snprintf(id, sizeof id, "push%" PRIu64, ++im->serial);
    fg_xml_set_attr(a, iq, "type", "set");
    fg_xml_set_attr(a, iq, "id", id);
    struct fg_xml_node *q = fg_xml_add_child(a, iq, "query", NS_ROSTER);
    ver_text(u, ver, sizeof ver);
    fg_xml_set_attr(a, q, "ver", ver);
    item_xml(a, q, it, removed);
    struct fg_buf *b = fg_im__buf(im);
    size_t ins = fg_im__serialize(b, iq);
    for (struct fg_im_session *s = u->sessions; s; s = s->next)
        if (s->interested)
            fg_im__send(im, s, b, ins, s->full);
    fg_im__buf_done(im);
    fg_arena_free(a);
}

/* ---- roster get and set --------------------------------------------------------------------- */

static void roster_get(struct fg_im *im, struct fg_im_session *s, struct fg_xml_node *st,
                       struct fg_arena *arena, const struct fg_xml_node *q)
{
    struct im_user *u = s->user;
    const char *ver = fg_xml_attr(q, "ver");
    char cur[24];
    ver_text(u, cur, sizeof cur);
    s->interested = true;
    s->rosterver = ver != NULL;
    struct fg_xml_node *r = fg_im__iq_result(arena, st);
    /* RFC 6121 2.6.3: an unchanged roster is an empty result; otherwise the whole roster
     * (no incremental pushes: the other allowed answer). */
    if (!ver || strcmp(ver, cur)) {
        struct fg_xml_node *rq = fg_xml_add_child(arena, r, "query", NS_ROSTER);
        if (ver)
            fg_xml_set_attr(arena, rq, "ver", cur);
        size_t pos = 0;
        void *v;
        while (fg_hash_next(&u->items, &pos, NULL, &v))
            if (((struct im_item *)v)->listed)
                item_xml(arena, rq, v, false);
    }
    fg_im__route(im, r, arena);
}

/* RFC 6121 2.5: removal cancels both directions, then the item goes. */
static void roster_remove(struct fg_im *im, struct fg_im_session *s, struct fg_xml_node *st,
                          struct fg_arena *arena, const struct fg_im_jid *cj)
{
    struct im_user *u = s->user;
    struct im_item *it = fg_im__item(u, cj->s, cj->bare_len);
    if (!it || !it->listed) {
        fg_im__bounce(im, st, arena, "item-not-found", NULL);
        return;
    }
    char contact[FG_IM_JID_MAX + 1];
    memcpy(contact, it->jid, it->jid_len + 1);
    enum fg_im_sub_state state = it->state;

    u->ver++;
    push(im, u, it, true);
    persist(im, u, it, true);
    item_remove(u, it);
    fg_im__route(im, fg_im__iq_result(arena, st), arena);

    if (fg_im_sub_has_to(state) || fg_im_sub_ask(state))
        fg_im__send_presence(im, u->jid, contact, "unsubscribe");
    if (fg_im_sub_has_from(state) || fg_im_sub_pending_in(state))
        fg_im__send_presence(im, u->jid, contact, "unsubscribed");
    if (fg_im_sub_has_from(state))
        fg_im__presence_to(im, u, contact, true);
}

/* Checks the groups of a roster set item (RFC 6121 2.1.2.4, 2.3.3): returns a condition, or
 * NULL when fine, with the groups in *out (arena strings, NULL-terminated). */
static const char *read_groups(struct fg_arena *a, const struct fg_xml_node *item,
                               const char ***out, const char **why)
{
    size_t n = 0;
    for (struct fg_xml_node *g = fg_xml_child(item, "group", NS_ROSTER); g;
         g = fg_xml_next(g, "group", NS_ROSTER))
        n++;
    if (n > FG_IM_GROUPS_MAX) {
        *why = "too many groups";
        return "not-acceptable";
    }
    const char **v = fg_arena_zalloc(a, (n + 1) * sizeof *v);
    size_t k = 0;
    for (struct fg_xml_node *g = fg_xml_child(item, "group", NS_ROSTER); g;
         g = fg_xml_next(g, "group", NS_ROSTER)) {
        size_t len;
        const char *t = fg_xml_text(g, &len);
        if (len == 0) {
            *why = "empty group name";
            return "not-acceptable";
        }
        if (len > FG_IM_NAME_MAX) {
            *why = "group name too long";
            return "not-acceptable";
        }
        for (size_t i = 0; i < k; i++) {
            if (!strcmp(v[i], t)) {
                *why = "the same group twice";
                return "bad-request";
            }
        }
        v[k++] = t;
    }
    *out = v;
    return NULL;
}

static void roster_set(struct fg_im *im, struct fg_im_session *s, struct fg_xml_node *st,
                       struct fg_arena *arena, const struct fg_xml_node *q)
{
    struct im_user *u = s->user;
    const char *cond = NULL, *why = NULL;
    struct fg_xml_node *item = fg_xml_child(q, "item", NS_ROSTER);
    struct fg_im_jid cj;
    const char **groups = NULL;

    /* RFC 6121 2.3.3: exactly one item, with a valid bare JID. */
    if (!item || fg_xml_next(item, "item", NS_ROSTER)) {
        cond = "bad-request";
        why = "a roster set carries exactly one item";
        goto fail;
    }
    const char *jid = fg_xml_attr(item, "jid");
    if (!jid || fg_im_jid_parse(arena, jid, &cj) != 0 || cj.resource) {
        cond = "bad-request";
        why = "the item needs a valid bare JID";
        goto fail;
    }
    if (eq(fg_xml_attr(item, "subscription"), "remove")) {
        roster_remove(im, s, st, arena, &cj);
        return;
    }
    /* Any other subscription, ask or approved value is the server's to set: ignored. */
    const char *name = fg_xml_attr(item, "name");
    if (name && strlen(name) > FG_IM_NAME_MAX) {
        cond = "not-acceptable";
        why = "name too long";
        goto fail;
    }
    cond = read_groups(arena, item, &groups, &why);
    if (cond)
        goto fail;
    struct im_item *it = fg_im__item(u, cj.s, cj.bare_len);
    if ((!it || !it->listed) && u->nlisted >= FG_IM_ROSTER_MAX) {
        cond = "not-allowed";
        why = "the roster is full";
        goto fail;
    }
    if (!it)
        it = item_new(u, cj.s, cj.bare_len);
    if (!it->listed) {
        it->listed = true;
        u->nlisted++;
    }
    fg_free(it->name);
    it->name = name && *name ? fg_strdup(name) : NULL; /* "" removes the name */
    fg_strv_free(it->groups);
    it->groups = NULL;
    for (size_t i = 0; groups[i]; i++)
        fg_strv_push(&it->groups, groups[i]);
    u->ver++;
    persist(im, u, it, false);
    push(im, u, it, false);
    fg_im__route(im, fg_im__iq_result(arena, st), arena);
    return;
fail:
    fg_im__bounce(im, st, arena, cond, why);
}

void fg_im__roster_iq(struct fg_im *im, struct fg_im_session *s, struct fg_xml_node *st,
                      struct fg_arena *arena, struct fg_xml_node *query)
{
    if (eq(fg_xml_attr(st, "type"), "get"))
        roster_get(im, s, st, arena, query);
    else
        roster_set(im, s, st, arena, query);
}

/* ---- subscriptions --------------------------------------------------------------------------- */

/* Applies a transition to the item of contact in u's roster: creates, lists, stores,
 * pushes or forgets it. list: the stanza puts the contact in the roster (RFC 6121 3.1.2,
 * 3.1.5, 3.4). Returns nothing: the item may be gone. */
static void apply(struct fg_im *im, struct im_user *u, const char *contact, size_t len,
                  const struct fg_im_sub_result *r, bool list)
{
    struct im_item *it = fg_im__item(u, contact, len);
    if (!it) {
        if (r->state == FG_SUB_NONE && !r->approved && !list)
            return; /* nothing to remember */
        it = item_new(u, contact, len);
    }
    bool newly_listed = list && !it->listed;
    bool changed = newly_listed || it->state != r->state || it->approved != r->approved;
    if (!changed)
        return;
    it->state = r->state;
    it->approved = r->approved;
    if (newly_listed) {
        it->listed = true;
        u->nlisted++;
    }
    if (!it->listed && it->state == FG_SUB_NONE && !it->approved) {
        persist(im, u, it, true);
        item_remove(u, it);
        return;
    }
    bool visible = it->listed && (r->push || newly_listed);
    if (visible)
        u->ver++;
    persist(im, u, it, false);
    if (visible)
        push(im, u, it, false);
}

void fg_im__sub_out(struct fg_im *im, struct fg_im_session *s, const struct fg_im_jid *cj,
                    struct fg_xml_node *st, struct fg_arena *arena, enum fg_im_sub_event ev)
{
    struct im_user *u = s->user;
    char contact[FG_IM_JID_MAX + 1];
    memcpy(contact, cj->s, cj->bare_len);
    contact[cj->bare_len] = '\0';
    if (!strcmp(contact, u->jid)) {
        fg_arena_free(arena); /* a subscription to oneself means nothing */
        return;
    }
    struct im_item *it = fg_im__item(u, contact, cj->bare_len);
    enum fg_im_sub_state old = it ? it->state : FG_SUB_NONE;
    struct fg_im_sub_result r = fg_im_sub_next(old, it && it->approved, ev);
    bool list =
        ev == FG_SUB_OUT_SUBSCRIBE || (ev == FG_SUB_OUT_SUBSCRIBED && (r.forward || r.approved));
    apply(im, u, contact, cj->bare_len, &r, list);
    if (!r.forward) {
        fg_arena_free(arena);
        return;
    }
    /* RFC 6121 3.1.2 etc.: stamped with the bare JIDs on both sides. */
    fg_xml_set_attr(arena, st, "from", u->jid);
    fg_xml_set_attr(arena, st, "to", fg_arena_strdup(arena, contact));
    fg_im__route(im, st, arena);
    if (ev == FG_SUB_OUT_SUBSCRIBED)
        fg_im__presence_to(im, u, contact, false); /* 3.1.5: the new subscriber's view */
    else if (ev == FG_SUB_OUT_UNSUBSCRIBED && fg_im_sub_has_from(old))
        fg_im__presence_to(im, u, contact, true); /* 3.2.2 */
}

void fg_im__sub_in(struct fg_im *im, struct im_user *u, const char *from_bare,
                   struct fg_xml_node *st, struct fg_arena *arena, enum fg_im_sub_event ev,
                   bool auto_approve)
{
    char contact[FG_IM_JID_MAX + 1];
    size_t len = strlen(from_bare);
    memcpy(contact, from_bare, len + 1);
    struct im_item *it = fg_im__item(u, contact, len);
    if (!it && ev == FG_SUB_IN_SUBSCRIBE && !auto_approve &&
        fg_hash_count(&u->items) >= 2 * FG_IM_ROSTER_MAX) {
        /* Requests from strangers are remembered up to a bound, or anyone could fill
         * the memory and the store with them. */
        fg_log(FG_LOG_WARN, "subscription-dropped", "jid", u->jid, "from", contact, "reason",
               "too many roster items and pending requests", "fix",
               "the user should answer or remove some", NULL);
        fg_arena_free(arena);
        fg_im__user_maybe_free(im, u);
        return;
    }
    enum fg_im_sub_state old = it ? it->state : FG_SUB_NONE;
    bool approved = (it && it->approved) || (auto_approve && ev == FG_SUB_IN_SUBSCRIBE);
    struct fg_im_sub_result r = fg_im_sub_next(old, approved, ev);
    if (auto_approve && ev == FG_SUB_IN_SUBSCRIBE && fg_im_sub_pending_in(old)) {
        /* A request already waiting is approved as if the user had answered it. */
        r = fg_im_sub_next(old, false, FG_SUB_OUT_SUBSCRIBED);
        r.forward = false;
        r.autoreply = true;
    }
    /* An approval on the user's behalf shows in the roster (SPEC 4, RFC 6121 3.4). */
    bool list = ev == FG_SUB_IN_SUBSCRIBE && r.autoreply && !fg_im_sub_has_from(old);
    apply(im, u, contact, len, &r, list);
    if (r.forward) {
        /* To every available resource; none: a request stays pending (redelivered at the
         * next initial presence), the other types are dropped (the state is kept). */
        fg_xml_set_attr(arena, st, "from", contact);
        fg_xml_set_attr(arena, st, "to", u->jid);
        struct fg_buf *b = fg_im__buf(im);
        size_t ins = fg_im__serialize(b, st);
        fg_im__to_available(im, u, b, ins, NULL, INT32_MIN);
        fg_im__buf_done(im);
    }
    fg_arena_free(arena);
    if (r.autoreply) {
        fg_im__send_presence(im, u->jid, contact, "subscribed");
        fg_im__presence_to(im, u, contact, false);
    }
    if (ev == FG_SUB_IN_UNSUBSCRIBE && fg_im_sub_has_from(old) && !fg_im_sub_has_from(r.state))
        fg_im__presence_to(im, u, contact, true); /* 3.3.3 */
    fg_im__user_maybe_free(im, u);
}

void fg_im__pending_in(struct fg_im *im, struct fg_im_session *s)
{
    struct im_user *u = s->user;
    size_t pos = 0;
    void *v;
    while (fg_hash_next(&u->items, &pos, NULL, &v)) {
        struct im_item *it = v;
        if (!fg_im_sub_pending_in(it->state))
            continue;
        struct fg_arena *a;
        struct fg_xml_node *p = fg_im__presence(&a, it->jid, u->jid, "subscribe");
        struct fg_buf *b = fg_im__buf(im);
        fg_im__serialize(b, p);
        fg_im__send(im, s, b, 0, NULL);
        fg_im__buf_done(im);
        fg_arena_free(a);
    }
}

/* ---- loading ----------------------------------------------------------------------------------
 */

static int load_owner(void *ctx, const char *owner, int64_t version,
                      const struct fg_roster_item *items, size_t n)
{
    struct fg_im *im = ctx;
    struct im_user *u = fg_im__user_get(im, owner, strlen(owner), true);
    u->ver = version;
    for (size_t i = 0; i < n; i++) {
        const struct fg_roster_item *ri = &items[i];
        struct im_item *it = item_new(u, ri->contact, strlen(ri->contact));
        it->name = ri->name ? fg_strdup(ri->name) : NULL;
        it->groups = ri->groups ? fg_strv_dup(ri->groups) : NULL;
        it->state = fg_im_sub_from_parts(ri->sub, ri->ask, ri->pending_in);
        it->approved = ri->approved;
        it->listed = ri->listed;
        u->nlisted += ri->listed;
    }
    fg_im__user_maybe_free(im, u);
    return 0;
}

int fg_im__roster_load(struct fg_im *im, struct fg_store *st)
{
    return fg_store_roster_each(st, load_owner, im);
}
