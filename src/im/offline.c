/* offline.c - messages for users with no available resource (XEP-0160): stamped with
 * XEP-0203 <delay/>, stored by the writer thread, delivered in order in batches at the next
 * non-negative available presence, then deleted. Counts stay in memory. */
#include "im/internal.h"

#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/clock.h"
#include "core/err.h"
#include "core/log.h"

#define NS_CHATSTATES "http://jabber.org/protocol/chatstates"
/* Messages per fetch: a full store (1000 messages of up to the stanza size limit) must not
 * land in memory and in one connection's write queue at once. */
#define OFFLINE_BATCH 50
#define NS_HINTS "urn:xmpp:hints"

/* Worth keeping: some content besides chat state notifications, and no <no-store/> hint
 * (XEP-0085 notifications are not stored; XEP-0334 <store/> forces storage). */
static bool storable(const struct fg_xml_node *st)
{
    bool content = false, force = false;
    for (struct fg_xml_node *c = fg_xml_child(st, NULL, NULL); c; c = fg_xml_next(c, NULL, NULL)) {
        if (fg_xml_ns_eq(c->ns, NS_HINTS)) {
            if (!strcmp(c->name, "no-store"))
                return false;
            force |= !strcmp(c->name, "store");
            continue;
        }
        if (fg_xml_ns_eq(c->ns, NS_CHATSTATES))
            continue;
        content = true;
    }
    return content || force;
}

/* ---- storing ---------------------------------------------------------------------------- */

struct add_job {
    struct fg_im *im;
    char *user;
    char *stanza;
    int64_t stamp;
    char err[256];
};

static int add_write(struct fg_store *st, void *arg)
{
    struct add_job *j = arg;
    return fg_store_offline_add(st, j->user, j->stamp, j->stanza, FG_IM_OFFLINE_MAX);
}

static int add_run(struct fg_store *st, void *arg)
{
    struct add_job *j = arg;
    int rc = fg_store_in_tx(st, add_write, j);
    if (rc != 0)
        snprintf(j->err, sizeof j->err, "%s", fg_store_error(st));
    return rc;
}

static void add_done(void *arg, int rc)
{
    struct add_job *j = arg;
    if (rc != 0) {
        /* The sender was told nothing: the message is lost. Rare (the count is checked
         * before), so it is logged loudly. */
        fg_log(FG_LOG_ERROR, "offline-store-failed", "jid", j->user, "reason", j->err, "fix",
               "check the store; the message could not be kept", NULL);
        struct im_user *u = fg_im__user(j->im, j->user, strlen(j->user));
        if (u && u->offline) {
            u->offline--;
            fg_im__user_maybe_free(j->im, u);
        }
    }
    fg_free(j->user);
    fg_free(j->stanza);
    fg_free(j);
}

void fg_im__offline_store(struct fg_im *im, struct im_user *u, struct fg_xml_node *st,
                          struct fg_arena *arena)
{
    if (!im->writer) {
        fg_im__bounce(im, st, arena, "service-unavailable", NULL);
        fg_im__user_maybe_free(im, u);
        return;
    }
    if (!storable(st)) {
        fg_arena_free(arena);
        fg_im__user_maybe_free(im, u);
        return;
    }
    if (u->offline >= FG_IM_OFFLINE_MAX) {
        fg_log(FG_LOG_WARN, "offline-full", "jid", u->jid, "reason",
               "the user holds the maximum number of offline messages", "fix",
               "the user receives them at the next login", NULL);
        fg_im__bounce(im, st, arena, "service-unavailable", NULL);
        return;
    }
    /* XEP-0203: when and where it was delayed, in the stored bytes themselves. */
    int64_t now = fg_time_now();
    char stamp[32];
    fg_time_rfc3339(now, stamp, sizeof stamp);
    const char *at = strchr(u->jid, '@');
    struct fg_xml_node *d = fg_xml_add_child(arena, st, "delay", NS_DELAY);
    fg_xml_set_attr(arena, d, "from", at ? at + 1 : u->jid);
    fg_xml_set_attr(arena, d, "stamp", stamp);
    fg_xml_add_text(arena, d, "Offline Storage", 15);

    struct fg_buf *b = fg_im__buf(im);
    fg_im__serialize(b, st);
    struct add_job *j = fg_calloc(1, sizeof *j);
    j->im = im;
    j->user = fg_strdup(u->jid);
    j->stanza = fg_strndup(b->data, b->len);
    j->stamp = now;
    fg_im__buf_done(im);
    fg_arena_free(arena);
    u->offline++;
    fg_store_async_submit(im->writer, add_run, add_done, j);
}

/* ---- fetching ------------------------------------------------------------------------------ */

struct fetch_job {
    struct fg_im *im;
    char *user;
    uint64_t serial; /* the session that asked, preferred for delivery */
    struct fg_offline_msg *msgs;
    size_t n;
    int64_t up_to; /* delete: the last id delivered */
    bool more;     /* a full batch: fetch again once deleted */
    char err[256];
};

static void fetch_free(struct fetch_job *j)
{
    fg_store_offline_free(j->msgs, j->n);
    fg_free(j->user);
    fg_free(j);
}

static int fetch_run(struct fg_store *st, void *arg)
{
    struct fetch_job *j = arg;
    int rc = fg_store_offline_list(st, j->user, OFFLINE_BATCH, &j->msgs, &j->n);
    if (rc != 0) {
        j->msgs = NULL;
        j->n = 0;
        snprintf(j->err, sizeof j->err, "%s", fg_store_error(st));
    }
    return rc;
}

static int delete_write(struct fg_store *st, void *arg)
{
    struct fetch_job *j = arg;
    return fg_store_offline_delete(st, j->user, j->up_to, NULL);
}

static int delete_run(struct fg_store *st, void *arg)
{
    struct fetch_job *j = arg;
    int rc = fg_store_in_tx(st, delete_write, j);
    if (rc != 0)
        snprintf(j->err, sizeof j->err, "%s", fg_store_error(st));
    return rc;
}

static void delete_done(void *arg, int rc)
{
    struct fetch_job *j = arg;
    if (rc != 0) {
        fg_log(FG_LOG_ERROR, "offline-delete-failed", "jid", j->user, "reason", j->err, "fix",
               "check the store; delivered messages may be delivered again at the next login",
               NULL);
    } else if (j->more) {
        /* The next batch, to the same resource if it is still there. */
        struct im_user *u = fg_im__user(j->im, j->user, strlen(j->user));
        struct fg_im_session *target = NULL;
        for (struct fg_im_session *s = u ? u->sessions : NULL; s; s = s->next)
            if (s->available && s->priority >= 0 && (!target || s->serial == j->serial))
                target = s;
        if (target && u->offline)
            fg_im__offline_fetch(j->im, u, target);
    }
    fetch_free(j);
}

static void fetch_done(void *arg, int rc)
{
    struct fetch_job *j = arg;
    struct fg_im *im = j->im;
    struct im_user *u = fg_im__user(im, j->user, strlen(j->user));
    if (!u) {
        fetch_free(j);
        return;
    }
    u->fetching = false;
    if (rc != 0) {
        fg_log(FG_LOG_ERROR, "offline-fetch-failed", "jid", j->user, "reason", j->err, "fix",
               "check the store; the messages stay stored for the next login", NULL);
        fetch_free(j);
        return;
    }
    /* The resource that asked, if still there and willing; else another one. */
    struct fg_im_session *target = NULL;
    for (struct fg_im_session *s = u->sessions; s; s = s->next) {
        if (!s->available || s->priority < 0)
            continue;
        if (!target || s->serial == j->serial)
            target = s;
    }
    if (!target || !j->n) {
        if (!j->n)
            u->offline = 0; /* the store holds none: trust it */
        fetch_free(j);
        fg_im__user_maybe_free(im, u);
        return;
    }
    for (size_t i = 0; i < j->n; i++)
        target->ops.send(target->ud, j->msgs[i].stanza, strlen(j->msgs[i].stanza));
    fg_log(FG_LOG_DEBUG, "offline-delivered", "jid", target->full, NULL);
    u->offline = u->offline > j->n ? u->offline - j->n : 0;
    j->up_to = j->msgs[j->n - 1].id;
    j->more = j->n == OFFLINE_BATCH;
    j->serial = target->serial;
    fg_store_offline_free(j->msgs, j->n);
    j->msgs = NULL;
    j->n = 0;
    fg_store_async_submit(im->writer, delete_run, delete_done, j);
}

void fg_im__offline_fetch(struct fg_im *im, struct im_user *u, struct fg_im_session *s)
{
    if (!im->writer || u->fetching)
        return;
    struct fetch_job *j = fg_calloc(1, sizeof *j);
    j->im = im;
    j->user = fg_strdup(u->jid);
    j->serial = s->serial;
    u->fetching = true;
    fg_store_async_submit(im->writer, fetch_run, fetch_done, j);
}

/* ---- loading ------------------------------------------------------------------------------- */

static int load_count(void *ctx, const char *recipient, size_t n)
{
    struct fg_im *im = ctx;
    struct im_user *u = fg_im__user_get(im, recipient, strlen(recipient), true);
    u->offline = n;
    return 0;
}

int fg_im__offline_load(struct fg_im *im, struct fg_store *st)
{
    return fg_store_offline_counts(st, load_count, im);
}
