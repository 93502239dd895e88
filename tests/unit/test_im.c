/* test_im.c - the IM layer (im/im.h) driven by fake sessions that record the bytes they
 * get, on a real SQLite store: addressing, offline, rosters, presence, subscriptions,
 * disco, ping, errors, the remote hooks. Restart tests use a loop and the writer thread. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <expat.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/err.h"
#include "im/im.h"
#include "im/jid.h"
#include "store/store.h"
#include "xml/stanza.h"

/* ---- building stanzas from text (expat, so that the test needs no other module) -------- */

struct tb {
    struct fg_arena *a;
    struct fg_xml_node *stack[64];
    int depth;
};

static void split_name(const char *qname, char *ns, size_t nslen, const char **local)
{
    const char *sep = strchr(qname, '\x01');
    if (!sep) {
        ns[0] = '\0';
        *local = qname;
        return;
    }
    snprintf(ns, nslen, "%.*s", (int)(sep - qname), qname);
    *local = sep + 1;
}

static void tb_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    struct tb *t = ud;
    char ns[256];
    const char *local;
    split_name(name, ns, sizeof ns, &local);
    struct fg_xml_node *n = fg_xml_element_new(t->a, local, ns);
    for (int i = 0; attrs[i]; i += 2) {
        char ans[256];
        const char *alocal;
        split_name(attrs[i], ans, sizeof ans, &alocal);
        fg_xml_set_attr_ns(t->a, n, ans[0] ? ans : NULL, alocal, attrs[i + 1]);
    }
    if (t->depth > 0)
        fg_xml_append(t->stack[t->depth - 1], n);
    t->stack[t->depth++] = n;
}

static void tb_end(void *ud, const XML_Char *name)
{
    struct tb *t = ud;
    (void)name;
    t->depth--;
}

static void tb_text(void *ud, const XML_Char *s, int len)
{
    struct tb *t = ud;
    if (t->depth > 1)
        fg_xml_add_text(t->a, t->stack[t->depth - 1], s, (size_t)len);
}

/* The first element of xml, parsed inside a jabber:client wrapper. */
static struct fg_xml_node *parse(struct fg_arena *a, const char *xml)
{
    struct tb t = {.a = a};
    XML_Parser p = XML_ParserCreateNS(NULL, '\x01');
    XML_SetUserData(p, &t);
    XML_SetElementHandler(p, tb_start, tb_end);
    XML_SetCharacterDataHandler(p, tb_text);
    struct fg_buf b = {0};
    fg_buf_printf(&b, "<w xmlns='jabber:client'>%s</w>", xml);
    if (XML_Parse(p, b.data, (int)b.len, 1) != XML_STATUS_OK)
        fail_msg("bad test XML: %s", xml);
    XML_ParserFree(p);
    fg_buf_free(&b);
    struct fg_xml_node *w = t.stack[0];
    return fg_xml_child(w, NULL, NULL);
}

/* ---- fixture ------------------------------------------------------------------------------ */

struct fake {
    struct fx *fx;
    struct fg_im_session *s;
    char full[256];
    struct fg_buf out;
    char kicked[64];
    bool unbind_in_kick;
};

struct fx {
    char dir[64];
    char url[128];
    struct fg_store *st;
    struct fg_im *im;
    uv_loop_t loop;
    bool with_loop;
    struct fg_buf remote; /* stanzas handed to env->remote, one per line */
    int nremote;
    bool remote_on; /* env->remote set */
    int remote_ret; /* what it returns */
    bool policy_on; /* env->inbound set */
    enum fg_im_verdict verdict;
    struct fg_im_remote_info last_info; /* strings copied below */
    char last_remote[256], last_local[256], last_type[32];
    struct fake *fakes[16];
    int nfakes;
};

static char *const domains[] = {"a.test", NULL};
static const char *const users[] = {"juliet@a.test", "romeo@a.test", "nurse@a.test",
                                    "benvolio@a.test", NULL};

static bool user_exists(void *ud, const char *bare)
{
    (void)ud;
    for (int i = 0; users[i]; i++)
        if (!strcmp(users[i], bare))
            return true;
    return false;
}

static int remote_cb(void *ud, struct fg_xml_node *st, struct fg_arena *arena)
{
    struct fx *f = ud;
    if (f->remote_ret != 0)
        return f->remote_ret;
    struct fg_xml_scope scope;
    fg_xml_scope_init(&scope, FG_XML_NS_CLIENT);
    fg_xml_serialize(&f->remote, st, &scope);
    fg_buf_putc(&f->remote, '\n');
    f->nremote++;
    fg_arena_free(arena);
    return 0;
}

static enum fg_im_verdict inbound_cb(void *ud, const struct fg_im_remote_info *info,
                                     struct fg_xml_node *st)
{
    struct fx *f = ud;
    (void)st;
    f->last_info = *info;
    snprintf(f->last_remote, sizeof f->last_remote, "%s", info->remote_bare);
    snprintf(f->last_local, sizeof f->last_local, "%s", info->local_bare);
    snprintf(f->last_type, sizeof f->last_type, "%s", info->type);
    f->last_info.remote_bare = f->last_remote;
    f->last_info.local_bare = f->last_local;
    f->last_info.type = f->last_type;
    return f->verdict;
}

static void start_im(struct fx *f)
{
    struct fg_im_env env = {
        .domains = domains,
        .store = f->st,
        .loop = f->with_loop ? &f->loop : NULL,
        .user_exists = user_exists,
        .remote = f->remote_on ? remote_cb : NULL,
        .inbound = f->policy_on ? inbound_cb : NULL,
        .ud = f,
    };
    f->im = fg_im_new(&env);
    assert_non_null(f->im);
}

static void stop_im(struct fx *f)
{
    fg_im_free(f->im);
    f->im = NULL;
    if (f->with_loop)
        uv_run(&f->loop, UV_RUN_DEFAULT);
}

static int setup_common(void **state, bool with_loop)
{
    struct fx *f = fg_calloc(1, sizeof *f);
    char err[256];
    snprintf(f->dir, sizeof f->dir, "/tmp/fg-test-im-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->url, sizeof f->url, "sqlite:%s/im.db", f->dir);
    if (fg_store_open(f->url, NULL, &f->st, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    f->with_loop = with_loop;
    if (with_loop)
        uv_loop_init(&f->loop);
    f->remote_on = true;
    start_im(f);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_common(state, false);
}

static int setup_loop(void **state)
{
    return setup_common(state, true);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    for (int i = 0; i < f->nfakes; i++) {
        if (f->fakes[i]->s)
            fg_im_unbind(f->im, f->fakes[i]->s);
        fg_buf_free(&f->fakes[i]->out);
        fg_free(f->fakes[i]);
    }
    stop_im(f);
    if (f->with_loop)
        assert_int_equal(uv_loop_close(&f->loop), 0);
    fg_store_close(f->st);
    fg_buf_free(&f->remote);
    nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    fg_free(f);
    return 0;
}

static void fake_send(void *ud, const char *data, size_t len)
{
    struct fake *k = ud;
    fg_buf_append(&k->out, data, len);
}

static void fake_kick(void *ud, const char *cond)
{
    struct fake *k = ud;
    snprintf(k->kicked, sizeof k->kicked, "%s", cond);
    if (k->unbind_in_kick) {
        fg_im_unbind(k->fx->im, k->s);
        k->s = NULL;
    }
}

static const struct fg_im_session_ops fake_ops = {fake_send, fake_kick};

static struct fake *bind_res(struct fx *f, const char *bare, const char *res)
{
    struct fake *k = fg_calloc(1, sizeof *k);
    k->fx = f;
    assert_int_equal(fg_im_bind(f->im, bare, res, &fake_ops, k, &k->s, k->full, sizeof k->full), 0);
    f->fakes[f->nfakes++] = k;
    return k;
}

static void logout(struct fx *f, struct fake *k)
{
    fg_im_unbind(f->im, k->s);
    k->s = NULL;
}

/* The session k sends the stanza (formatted), 'from' stamped as the stream layer does. */
static void sendf(struct fake *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sendf(struct fake *k, const char *fmt, ...)
{
    char xml[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(xml, sizeof xml, fmt, ap);
    va_end(ap);
    struct fg_arena *a = fg_arena_new(0);
    struct fg_xml_node *st = parse(a, xml);
    fg_xml_set_attr(a, st, "from", k->full);
    fg_im_stanza(k->fx->im, k->s, st, a);
    if (k->fx->with_loop)
        fg_im_flush(k->fx->im);
}

/* What a peer's stream gives: the content namespace is jabber:server. */
static void to_server_ns(struct fg_xml_node *n)
{
    if (n->type != FG_XML_ELEMENT || !fg_xml_ns_eq(n->ns, FG_XML_NS_CLIENT))
        return;
    n->ns = FG_XML_NS_SERVER;
    for (struct fg_xml_node *c = n->children; c; c = c->next)
        to_server_ns(c);
}

/* A stanza from another domain. */
static void remotef(struct fx *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void remotef(struct fx *f, const char *fmt, ...)
{
    char xml[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(xml, sizeof xml, fmt, ap);
    va_end(ap);
    struct fg_arena *a = fg_arena_new(0);
    struct fg_xml_node *st = parse(a, xml);
    to_server_ns(st);
    fg_im_deliver_remote(f->im, st, a);
    if (f->with_loop)
        fg_im_flush(f->im);
}

/* What k received since the last call (the buffer is emptied; the text stays valid until
 * the next call for k). */
static const char *got(struct fake *k)
{
    static char copies[4][65536];
    static int next;
    char *c = copies[next++ % 4];
    snprintf(c, sizeof copies[0], "%s", fg_buf_str(&k->out));
    fg_buf_reset(&k->out);
    return c;
}

static const char *remote_got(struct fx *f)
{
    static char copy[65536];
    snprintf(copy, sizeof copy, "%s", fg_buf_str(&f->remote));
    fg_buf_reset(&f->remote);
    f->nremote = 0;
    return copy;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

#define HAS(hay, needle)                                                                           \
    do {                                                                                           \
        const char *h_ = (hay);                                                                    \
        if (!strstr(h_, (needle)))                                                                 \
            fail_msg("expected %s\n  in: %s", (needle), h_);                                       \
    } while (0)
#define HASNT(hay, needle)                                                                         \
    do {                                                                                           \
        const char *h_ = (hay);                                                                    \
        if (strstr(h_, (needle)))                                                                  \
            fail_msg("did not expect %s\n  in: %s", (needle), h_);                                 \
    } while (0)
#define EMPTY(hay)                                                                                 \
    do {                                                                                           \
        const char *h_ = (hay);                                                                    \
        if (*h_)                                                                                   \
            fail_msg("expected nothing, got: %s", h_);                                             \
    } while (0)

/* Mutual subscription between two local users, both offline during it. */
static void befriend(struct fx *f, const char *a, const char *ra, const char *b, const char *rb)
{
    struct fake *x = bind_res(f, a, ra), *y = bind_res(f, b, rb);
    sendf(x, "<presence type='subscribe' to='%s'/>", b);
    sendf(y, "<presence type='subscribed' to='%s'/>", a);
    sendf(y, "<presence type='subscribe' to='%s'/>", a);
    sendf(x, "<presence type='subscribed' to='%s'/>", b);
    logout(f, x);
    logout(f, y);
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void t_jid(void **state)
{
    (void)state;
    struct fg_arena *a = fg_arena_new(0);
    struct fg_im_jid j;
    const char *in = "juliet@a.test/balcony";
    assert_int_equal(fg_im_jid_parse(a, in, &j), 0);
    assert_ptr_equal(j.s, in); /* canonical already: no copy */
    assert_int_equal(j.bare_len, 13);
    assert_int_equal(j.local_len, 6);
    assert_string_equal(j.resource, "balcony");
    assert_int_equal(fg_im_jid_parse(a, "Juliet@A.Test./Bal/cony", &j), 0);
    assert_string_equal(j.s, "juliet@a.test/Bal/cony"); /* resource keeps its case */
    assert_int_equal(j.domain_len, 6);
    assert_int_equal(fg_im_jid_parse(a, "a.test", &j), 0);
    assert_int_equal(j.local_len, 0);
    assert_null(j.resource);
    assert_int_equal(fg_im_jid_parse(a, "x@bücher.test", &j), 0);
    assert_string_equal(j.s, "x@xn--bcher-kva.test");
    static const char *const bad[] = {"",        "@a.test",       "a@",      "a@b/",
                                      "a b@c.d", "a\"b@c.d",      "x@-.-..", "x@a..b",
                                      "x@a_b:c", "x@a.test/\x01", NULL};
    for (int i = 0; bad[i]; i++)
        if (fg_im_jid_parse(a, bad[i], &j) == 0)
            fail_msg("accepted %s", bad[i]);
    fg_arena_free(a);
}

static void t_bind_conflict(void **state)
{
    struct fx *f = *state;
    struct fake *k1 = bind_res(f, "juliet@a.test", "balcony");
    assert_string_equal(k1->full, "juliet@a.test/balcony");
    sendf(k1, "<presence/>");
    struct fake *r = bind_res(f, "romeo@a.test", NULL);
    /* A generated resource: 16 hex digits. */
    assert_int_equal(strlen(r->full), strlen("romeo@a.test/") + 16);
    assert_int_equal(fg_im_session_count(f->im), 2);

    /* The same resource again: the old stream is kicked, the new one binds. */
    k1->unbind_in_kick = true;
    struct fake *k2 = bind_res(f, "juliet@a.test", "balcony");
    assert_string_equal(k1->kicked, "conflict");
    assert_null(k1->s);
    assert_int_equal(fg_im_session_count(f->im), 2);
    HASNT(got(k2), "<");

    /* A kicked session unbound later is fine too, and gets nothing meanwhile. */
    struct fake *k3 = bind_res(f, "juliet@a.test", "balcony");
    assert_string_equal(k2->kicked, "conflict");
    sendf(r, "<message to='juliet@a.test/balcony'><body>hi</body></message>");
    EMPTY(got(k2));
    HAS(got(k3), "<body>hi</body>");
    logout(f, k2);

    struct fg_im_session *s;
    char small[8], full[256];
    assert_int_equal(
        fg_im_bind(f->im, "juliet@a.test", "x", &fake_ops, NULL, &s, small, sizeof small),
        FG_ELIMIT);
    assert_int_equal(fg_im_bind(f->im, "not a jid", "x", &fake_ops, NULL, &s, full, sizeof full),
                     FG_EINVAL);
    assert_int_equal(
        fg_im_bind(f->im, "juliet@a.test/r", "x", &fake_ops, NULL, &s, full, sizeof full),
        FG_EINVAL);
    assert_int_equal(fg_im_bind(f->im, "juliet@a.test", "", &fake_ops, NULL, &s, full, sizeof full),
                     FG_EINVAL);
    assert_int_equal(fg_im_session_count(f->im), 2);
}

static void t_message_addressing(void **state)
{
    struct fx *f = *state;
    struct fake *r = bind_res(f, "romeo@a.test", "orchard");
    struct fake *hi = bind_res(f, "juliet@a.test", "high");
    struct fake *lo = bind_res(f, "juliet@a.test", "low");
    struct fake *neg = bind_res(f, "juliet@a.test", "neg");
    struct fake *idle = bind_res(f, "juliet@a.test", "idle"); /* no presence: not available */
    sendf(hi, "<presence><priority>5</priority></presence>");
    sendf(lo, "<presence><priority>1</priority></presence>");
    sendf(neg, "<presence><priority>-1</priority></presence>");
    got(hi), got(lo), got(neg), got(idle);

    /* Full JID: that resource only, available or not. */
    sendf(r, "<message to='juliet@a.test/low' type='chat'><body>1</body></message>");
    HAS(got(lo), "<body>1</body>");
    EMPTY(got(hi));
    sendf(r, "<message to='juliet@a.test/idle'><body>2</body></message>");
    HAS(got(idle), "<body>2</body>");

    /* Bare JID: the highest non-negative priority; the 'to' is left as sent. */
    sendf(r, "<message to='juliet@a.test' type='chat'><body>3</body></message>");
    const char *h = got(hi);
    HAS(h, "<body>3</body>");
    HAS(h, "from='romeo@a.test/orchard'");
    HAS(h, "to='juliet@a.test'");
    EMPTY(got(lo));
    EMPTY(got(neg));
    EMPTY(got(idle));
    /* Equal top priorities: both get the same bytes. */
    sendf(lo, "<presence><priority>5</priority></presence>");
    got(hi), got(lo), got(neg);
    sendf(r, "<message to='juliet@a.test'><body>4</body></message>");
    const char *a = got(hi), *b = got(lo);
    HAS(a, "<body>4</body>");
    assert_string_equal(a, b);
    /* An unknown resource counts as the bare JID (RFC 6121 8.5.3.2.1). */
    sendf(r, "<message to='juliet@a.test/gone' type='chat'><body>5</body></message>");
    HAS(got(hi), "<body>5</body>");
    HAS(got(lo), "<body>5</body>");
    /* headline: every non-negative available resource. */
    sendf(r, "<message to='juliet@a.test' type='headline'><body>6</body></message>");
    HAS(got(hi), "<body>6</body>");
    HAS(got(lo), "<body>6</body>");
    EMPTY(got(neg));
    /* groupchat to a bare JID or unknown resource: service-unavailable; to a resource: kept. */
    sendf(r, "<message to='juliet@a.test' type='groupchat' id='g1'><body>7</body></message>");
    h = got(r);
    HAS(h, "type='error'");
    HAS(h, "id='g1'");
    HAS(h, "from='juliet@a.test'");
    HAS(h, "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>");
    HAS(h, "<error type='cancel'>");
    EMPTY(got(hi));
    sendf(r, "<message to='juliet@a.test/nope' type='groupchat'><body>8</body></message>");
    HAS(got(r), "service-unavailable");
    sendf(r, "<message to='juliet@a.test/high' type='groupchat'><body>9</body></message>");
    HAS(got(hi), "<body>9</body>");
    /* An error is never answered, not even when undeliverable. */
    sendf(r, "<message to='juliet@a.test' type='error'><body>x</body></message>");
    EMPTY(got(r));
    EMPTY(got(hi));
    sendf(r, "<message to='nobody@a.test' type='error'/>");
    EMPTY(got(r));
    /* No 'to': to the sender's own bare JID (RFC 6120 10.3.1). */
    sendf(hi, "<message><body>self</body></message>");
    HAS(got(hi), "to='juliet@a.test'");
    /* A malformed 'to'. */
    sendf(r, "<message to='a@@b' id='m'><body>z</body></message>");
    HAS(got(r), "<jid-malformed xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>");
    /* Only negative-priority resources: the message is stored (as if offline). */
    logout(f, hi);
    logout(f, lo);
    got(neg);
    sendf(r, "<message to='juliet@a.test'><body>stored</body></message>");
    EMPTY(got(neg));
    assert_int_equal(fg_im_offline_count(f->im, "juliet@a.test"), 1);
}

static void t_nonexistent(void **state)
{
    struct fx *f = *state;
    struct fake *r = bind_res(f, "romeo@a.test", "orchard");
    sendf(r, "<presence/>");
    got(r);
    sendf(r, "<message to='nobody@a.test' id='n1'><body>hi</body></message>");
    const char *h = got(r);
    HAS(h, "from='nobody@a.test'");
    HAS(h, "to='romeo@a.test/orchard'");
    HAS(h, "service-unavailable");
    sendf(r, "<iq to='nobody@a.test' type='get' id='i1'><query xmlns='jabber:iq:version'/></iq>");
    HAS(got(r), "service-unavailable");
    sendf(r, "<iq to='nobody@a.test/x' type='result' id='i2'/>");
    EMPTY(got(r));
    sendf(r, "<presence to='nobody@a.test' type='subscribe'/>");
    h = got(r);
    HAS(h, "type='unsubscribed'");
    HAS(h, "from='nobody@a.test'");
    sendf(r, "<presence to='nobody@a.test'/>");
    EMPTY(got(r));
    /* Answers are the same as for an existing user who does not take the stanza. */
    sendf(r, "<iq to='juliet@a.test' type='get' id='i3'><query xmlns='jabber:iq:version'/></iq>");
    HAS(got(r), "service-unavailable");
}

static void t_offline(void **state)
{
    struct fx *f = *state;
    struct fake *r = bind_res(f, "romeo@a.test", "orchard");
    sendf(r, "<message to='juliet@a.test' type='chat' id='o1'><body>first &amp; one</body>"
             "</message>");
    sendf(r, "<message to='juliet@a.test/balcony'><body>second</body></message>");
    /* Not stored: chat states alone, a no-store hint, headline, groupchat (answered). */
    sendf(r, "<message to='juliet@a.test' type='chat'>"
             "<composing xmlns='http://jabber.org/protocol/chatstates'/></message>");
    sendf(r, "<message to='juliet@a.test'><body>x</body><no-store xmlns='urn:xmpp:hints'/>"
             "</message>");
    sendf(r, "<message to='juliet@a.test' type='headline'><body>news</body></message>");
    EMPTY(got(r));
    sendf(r, "<message to='juliet@a.test' type='groupchat'><body>g</body></message>");
    HAS(got(r), "service-unavailable");
    assert_int_equal(fg_im_offline_count(f->im, "juliet@a.test"), 2);

    /* A session with negative priority does not take them; non-negative does. */
    struct fake *j = bind_res(f, "juliet@a.test", "balcony");
    EMPTY(got(j));
    sendf(j, "<presence><priority>-5</priority></presence>");
    HASNT(got(j), "<body>");
    sendf(j, "<presence><priority>0</priority></presence>");
    const char *h = got(j);
    const char *first = strstr(h, "first &amp; one");
    const char *second = strstr(h, "<body>second</body>");
    assert_non_null(first);
    assert_non_null(second);
    assert_true(first < second); /* in order */
    HAS(h, "<delay xmlns='urn:xmpp:delay' from='a.test' stamp='");
    HAS(h, "Z'>Offline Storage</delay>");
    HAS(h, "to='juliet@a.test/balcony'");
    assert_int_equal(count(h, "<delay"), 2);
    assert_int_equal(fg_im_offline_count(f->im, "juliet@a.test"), 0);
    /* Deleted from the store once delivered. */
    struct fg_offline_msg *v;
    size_t n;
    assert_int_equal(fg_store_offline_list(f->st, "juliet@a.test", 0, &v, &n), 0);
    assert_int_equal(n, 0);
    fg_store_offline_free(v, n);
    /* And not again at the next presence. */
    sendf(j, "<presence><priority>1</priority></presence>");
    HASNT(got(j), "<body>");
}

static void t_offline_limit(void **state)
{
    struct fx *f = *state;
    struct fake *r = bind_res(f, "romeo@a.test", "orchard");
    for (int i = 0; i < FG_IM_OFFLINE_MAX; i++)
        sendf(r, "<message to='nurse@a.test'><body>%d</body></message>", i);
    EMPTY(got(r));
    assert_int_equal(fg_im_offline_count(f->im, "nurse@a.test"), FG_IM_OFFLINE_MAX);
    sendf(r, "<message to='nurse@a.test' id='over'><body>one too many</body></message>");
    const char *h = got(r);
    HAS(h, "service-unavailable");
    HAS(h, "id='over'");
    /* All of them at the next login, in order, in batches. */
    struct fake *n = bind_res(f, "nurse@a.test", "x");
    sendf(n, "<presence/>");
    h = fg_buf_str(&n->out); /* larger than got() keeps */
    assert_int_equal(count(h, "<body>"), FG_IM_OFFLINE_MAX);
    assert_true(strstr(h, "<body>0</body>") < strstr(h, "<body>1</body>"));
    assert_true(strstr(h, "<body>998</body>") < strstr(h, "<body>999</body>"));
    assert_int_equal(fg_im_offline_count(f->im, "nurse@a.test"), 0);
}

/* Offline messages survive a restart; the writer thread and the loop do the work. */
static void t_offline_restart(void **state)
{
    struct fx *f = *state;
    struct fake *r = bind_res(f, "romeo@a.test", "orchard");
    sendf(r, "<message to='juliet@a.test'><body>kept</body></message>");
    logout(f, r);
    f->nfakes = 0;
    fg_buf_free(&r->out);
    fg_free(r);
    stop_im(f);
    start_im(f);
    assert_int_equal(fg_im_offline_count(f->im, "juliet@a.test"), 1);
    struct fake *j = bind_res(f, "juliet@a.test", "balcony");
    struct fg_arena *a = fg_arena_new(0);
    struct fg_xml_node *p = parse(a, "<presence/>");
    fg_xml_set_attr(a, p, "from", j->full);
    fg_im_stanza(f->im, j->s, p, a);
    /* Delivered once the loop has run the fetch's completion. */
    for (int i = 0; i < 1000 && !strstr(fg_buf_str(&j->out), "kept"); i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    HAS(got(j), "<body>kept</body>");
    fg_im_flush(f->im);
    assert_int_equal(fg_im_offline_count(f->im, "juliet@a.test"), 0);
}

static void t_roster(void **state)
{
    struct fx *f = *state;
    struct fake *j1 = bind_res(f, "juliet@a.test", "one");
    struct fake *j2 = bind_res(f, "juliet@a.test", "two");
    struct fake *j3 = bind_res(f, "juliet@a.test", "three"); /* never asks: no pushes */

    sendf(j1, "<iq type='get' id='g1'><query xmlns='jabber:iq:roster' ver=''/></iq>");
    const char *h = got(j1);
    HAS(h, "<iq type='result' id='g1' to='juliet@a.test/one'>");
    HAS(h, "<query xmlns='jabber:iq:roster' ver='0'/>");
    sendf(j2, "<iq type='get' id='g2'><query xmlns='jabber:iq:roster'/></iq>");
    h = got(j2);
    HAS(h, "<query xmlns='jabber:iq:roster'/>"); /* no versioning asked: no ver */

    sendf(j1, "<iq type='set' id='s1'><query xmlns='jabber:iq:roster'>"
              "<item jid='Nurse@A.test' name='Nurse' subscription='both' ask='subscribe'>"
              "<group>Servants</group><group>Friends</group></item></query></iq>");
    h = got(j1);
    /* The push first, then the result. */
    const char *push = strstr(h, "<iq type='set'");
    const char *res = strstr(h, "<iq type='result' id='s1'");
    assert_non_null(push);
    assert_non_null(res);
    assert_true(push < res);
    HAS(h, "to='juliet@a.test/one'");
    HAS(h, "ver='1'");
    /* subscription and ask from the client are ignored; the JID is canonical. */
    HAS(h, "<item jid='nurse@a.test' name='Nurse' subscription='none'>"
           "<group>Servants</group><group>Friends</group></item>");
    h = got(j2);
    HAS(h, "<iq type='set'");
    HAS(h, "to='juliet@a.test/two'");
    HAS(h, "jid='nurse@a.test'");
    EMPTY(got(j3));

    /* Versioning: the current version gives an empty result, an old one the roster. */
    sendf(j1, "<iq type='get' id='g3'><query xmlns='jabber:iq:roster' ver='1'/></iq>");
    h = got(j1);
    HAS(h, "<iq type='result' id='g3' to='juliet@a.test/one'/>");
    sendf(j1, "<iq type='get' id='g4'><query xmlns='jabber:iq:roster' ver='0'/></iq>");
    HAS(got(j1), "<item jid='nurse@a.test' name='Nurse' subscription='none'>");

    /* Update: name removed, groups replaced. */
    sendf(j1, "<iq type='set' id='s2'><query xmlns='jabber:iq:roster'>"
              "<item jid='nurse@a.test' name=''/></query></iq>");
    h = got(j1);
    HAS(h, "<item jid='nurse@a.test' subscription='none'/>");
    HAS(h, "ver='2'");
    HAS(got(j2), "ver='2'");

    /* Validation (RFC 6121 2.3.3). */
    sendf(j1, "<iq type='set' id='e1'><query xmlns='jabber:iq:roster'>"
              "<item jid='a@a.test'/><item jid='b@a.test'/></query></iq>");
    HAS(got(j1), "<bad-request");
    sendf(j1, "<iq type='set' id='e2'><query xmlns='jabber:iq:roster'><item jid='@x'/>"
              "</query></iq>");
    HAS(got(j1), "<bad-request");
    sendf(j1, "<iq type='set' id='e3'><query xmlns='jabber:iq:roster'>"
              "<item jid='a@a.test/res'/></query></iq>");
    HAS(got(j1), "<bad-request");
    sendf(j1, "<iq type='set' id='e4'><query xmlns='jabber:iq:roster'>"
              "<item jid='a@a.test'><group>x</group><group>x</group></item></query></iq>");
    HAS(got(j1), "<bad-request");
    sendf(j1, "<iq type='set' id='e5'><query xmlns='jabber:iq:roster'>"
              "<item jid='a@a.test'><group/></item></query></iq>");
    HAS(got(j1), "<not-acceptable");
    char name[1100];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    sendf(j1,
          "<iq type='set' id='e6'><query xmlns='jabber:iq:roster'>"
          "<item jid='a@a.test' name='%s'/></query></iq>",
          name);
    h = got(j1);
    HAS(h, "<not-acceptable");
    HAS(h, "id='e6'");
    sendf(j1, "<iq type='set' id='e7'><query xmlns='jabber:iq:roster'/></iq>");
    HAS(got(j1), "<bad-request");
    EMPTY(got(j2)); /* no push for refused sets */

    /* Stored, and back after a restart. */
    struct fg_roster_item *v;
    size_t n;
    int64_t ver;
    assert_int_equal(fg_store_roster_get(f->st, "juliet@a.test", &v, &n, &ver), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ver, 2);
    assert_string_equal(v[0].contact, "nurse@a.test");
    assert_null(v[0].name);
    fg_store_roster_items_free(v, n);

    /* Removal: pushed with subscription='remove'; a second removal finds nothing. */
    sendf(j1, "<iq type='set' id='r1'><query xmlns='jabber:iq:roster'>"
              "<item jid='nurse@a.test' subscription='remove'/></query></iq>");
    h = got(j1);
    HAS(h, "<item jid='nurse@a.test' subscription='remove'/>");
    HAS(h, "ver='3'");
    HAS(h, "<iq type='result' id='r1'");
    HAS(got(j2), "subscription='remove'");
    sendf(j1, "<iq type='set' id='r2'><query xmlns='jabber:iq:roster'>"
              "<item jid='nurse@a.test' subscription='remove'/></query></iq>");
    HAS(got(j1), "<item-not-found");
    assert_int_equal(fg_store_roster_get(f->st, "juliet@a.test", &v, &n, &ver), 0);
    assert_int_equal(n, 0);
    assert_int_equal(ver, 3);
    fg_store_roster_items_free(v, n);

    /* Someone else's roster: not served. */
    struct fake *r = bind_res(f, "romeo@a.test", "orchard");
    sendf(r, "<iq type='get' id='x1' to='juliet@a.test'><query xmlns='jabber:iq:roster'/></iq>");
    HAS(got(r), "service-unavailable");
}

static void t_roster_restart(void **state)
{
    struct fx *f = *state;
    struct fake *j = bind_res(f, "juliet@a.test", "one");
    sendf(j, "<iq type='set' id='s1'><query xmlns='jabber:iq:roster'>"
             "<item jid='romeo@a.test' name='R'><group>G</group></item></query></iq>");
    sendf(j, "<presence type='subscribe' to='romeo@a.test'/>");
    logout(f, j);
    stop_im(f);
    start_im(f);
    j = bind_res(f, "juliet@a.test", "two");
    sendf(j, "<iq type='get' id='g'><query xmlns='jabber:iq:roster' ver='x'/></iq>");
    const char *h = got(j);
    HAS(h, "ver='2'");
    HAS(h, "<item jid='romeo@a.test' name='R' subscription='none' ask='subscribe'>"
           "<group>G</group></item>");
    /* Romeo's pending request survived too. */
    struct fake *r = bind_res(f, "romeo@a.test", "o");
    sendf(r, "<presence/>");
    HAS(got(r), "<presence from='juliet@a.test' to='romeo@a.test' type='subscribe'/>");
}

static void t_subscription_flow(void **state)
{
    struct fx *f = *state;
    struct fake *r = bind_res(f, "romeo@a.test", "orchard");
    struct fake *j = bind_res(f, "juliet@a.test", "balcony");
    sendf(r, "<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>");
    sendf(j, "<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>");
    sendf(r, "<presence><status>at the orchard</status></presence>");
    sendf(j, "<presence/>");
    got(r), got(j);

    /* Romeo asks: his roster shows ask='subscribe'; Juliet gets the request, stamped
     * with bare JIDs. */
    sendf(r, "<presence type='subscribe' to='juliet@a.test/balcony' id='sub1'>"
             "<status>me</status></presence>");
    const char *h = got(r);
    HAS(h, "<item jid='juliet@a.test' subscription='none' ask='subscribe'/>");
    h = got(j);
    HAS(h, "from='romeo@a.test'");
    HAS(h, "to='juliet@a.test'");
    HAS(h, "type='subscribe'");
    HAS(h, "<status>me</status>");
    HASNT(h, "<iq"); /* a pending request is not a roster item */

    /* Juliet approves: both rosters change, Romeo gets 'subscribed' and her presence. */
    sendf(j, "<presence type='subscribed' to='romeo@a.test'/>");
    h = got(j);
    HAS(h, "<item jid='romeo@a.test' subscription='from'/>");
    h = got(r);
    HAS(h, "<item jid='juliet@a.test' subscription='to'/>");
    HAS(h, "type='subscribed'");
    HAS(h, "<presence from='juliet@a.test/balcony' to='romeo@a.test'/>");

    /* Her presence changes: Romeo hears it, she hears it too; he is not subscribed the
     * other way, so his changes do not reach her. */
    sendf(j, "<presence><show>away</show></presence>");
    HAS(got(r), "<presence from='juliet@a.test/balcony' to='romeo@a.test'><show>away</show>");
    HAS(got(j), "<presence from='juliet@a.test/balcony' to='juliet@a.test'><show>away</show>");
    sendf(r, "<presence><show>dnd</show></presence>");
    EMPTY(got(j));
    got(r);

    /* A probe from Romeo is answered with her presence; one from the nurse is refused. */
    sendf(r, "<presence type='probe' to='juliet@a.test'/>");
    HAS(got(r), "<presence from='juliet@a.test/balcony' to='romeo@a.test'><show>away</show>");
    struct fake *n = bind_res(f, "nurse@a.test", "x");
    sendf(n, "<presence/>");
    got(n);
    sendf(n, "<presence type='probe' to='juliet@a.test'/>");
    /* The answer is 'unsubscribed', which her roster state (None) does not show her. */
    HASNT(got(n), "juliet@a.test/balcony");

    /* She goes away: Romeo gets unavailable. */
    logout(f, j);
    HAS(got(r), "<presence from='juliet@a.test/balcony' type='unavailable' to='romeo@a.test'/>");

    /* Romeo unsubscribes: both rosters go back to none. */
    j = bind_res(f, "juliet@a.test", "balcony");
    sendf(j, "<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>");
    got(j);
    sendf(r, "<presence type='unsubscribe' to='juliet@a.test'/>");
    HAS(got(r), "<item jid='juliet@a.test' subscription='none'/>");
    HAS(got(j), "<item jid='romeo@a.test' subscription='none'/>");
}

static void t_presence_initial(void **state)
{
    struct fx *f = *state;
    befriend(f, "juliet@a.test", "x", "romeo@a.test", "y");
    struct fake *r = bind_res(f, "romeo@a.test", "orchard");
    sendf(r, "<presence><status>here</status></presence>");
    HAS(got(r), "<presence from='romeo@a.test/orchard' to='romeo@a.test'><status>here");

    /* Juliet's initial presence: Romeo sees her, she learns his presence (the probe
     * answered at once), and she sees her own. */
    struct fake *j1 = bind_res(f, "juliet@a.test", "one");
    sendf(j1, "<presence/>");
    const char *h = got(j1);
    HAS(h, "<presence from='romeo@a.test/orchard' to='juliet@a.test'><status>here</status>");
    HAS(h, "<presence from='juliet@a.test/one' to='juliet@a.test'/>");
    HAS(got(r), "<presence from='juliet@a.test/one' to='romeo@a.test'/>");

    /* A second resource: it learns about the first and the first about it. */
    struct fake *j2 = bind_res(f, "juliet@a.test", "two");
    sendf(j2, "<presence><priority>3</priority></presence>");
    h = got(j2);
    HAS(h, "<presence from='juliet@a.test/one' to='juliet@a.test'/>");
    HAS(h, "from='romeo@a.test/orchard'");
    HAS(got(j1), "<presence from='juliet@a.test/two' to='juliet@a.test'><priority>3");
    HAS(got(r), "from='juliet@a.test/two'");

    /* Unavailable from the client: to contacts and her other resource, not to itself. */
    sendf(j2, "<presence type='unavailable'><status>bye</status></presence>");
    HAS(got(r), "<presence type='unavailable' from='juliet@a.test/two' to='romeo@a.test'>"
                "<status>bye</status>");
    HAS(got(j1), "from='juliet@a.test/two'");
    EMPTY(got(j2));
    /* An unavailable resource gets no bare-JID messages. */
    sendf(r, "<message to='juliet@a.test'><body>m</body></message>");
    HAS(got(j1), "<body>m</body>");
    EMPTY(got(j2));
}

static void t_directed(void **state)
{
    struct fx *f = *state;
    struct fake *n = bind_res(f, "nurse@a.test", "x");
    struct fake *j = bind_res(f, "juliet@a.test", "balcony");
    sendf(n, "<presence/>");
    got(n);
    /* Directed presence before any broadcast, to a local user and to another domain. */
    sendf(j, "<presence to='nurse@a.test'><show>chat</show></presence>");
    HAS(got(n), "<presence to='nurse@a.test' from='juliet@a.test/balcony'><show>chat</show>");
    sendf(j, "<presence to='friar@b.test/cell'/>");
    HAS(remote_got(f), "<presence to='friar@b.test/cell' from='juliet@a.test/balcony'/>");
    /* Going away: each of them hears it. */
    logout(f, j);
    HAS(got(n), "<presence from='juliet@a.test/balcony' type='unavailable' to='nurse@a.test'/>");
    HAS(remote_got(f), "type='unavailable' to='friar@b.test/cell'");

    /* A directed unavailable takes the recipient off the list. */
    j = bind_res(f, "juliet@a.test", "balcony");
    sendf(j, "<presence to='nurse@a.test'/>");
    sendf(j, "<presence to='nurse@a.test' type='unavailable'/>");
    got(n);
    logout(f, j);
    EMPTY(got(n));
}

static void t_pending_in_offline(void **state)
{
    struct fx *f = *state;
    struct fake *r = bind_res(f, "romeo@a.test", "orchard");
    sendf(r, "<presence/>");
    sendf(r, "<presence type='subscribe' to='juliet@a.test'/>");
    /* A second request changes nothing and is not delivered again. */
    sendf(r, "<presence type='subscribe' to='juliet@a.test'/>");
    struct fake *j = bind_res(f, "juliet@a.test", "balcony");
    sendf(j, "<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>");
    HASNT(got(j), "romeo"); /* pending in: not in her roster */
    sendf(j, "<presence/>");
    const char *h = got(j);
    assert_int_equal(count(h, "type='subscribe'"), 1);
    HAS(h, "<presence from='romeo@a.test' to='juliet@a.test' type='subscribe'/>");
    /* Denied: Romeo's item goes back to none, and she is asked no more. */
    sendf(j, "<presence type='unsubscribed' to='romeo@a.test'/>");
    HAS(got(r), "type='unsubscribed'");
    logout(f, j);
    j = bind_res(f, "juliet@a.test", "balcony");
    sendf(j, "<presence/>");
    HASNT(got(j), "subscribe");
}

static void t_preapproval(void **state)
{
    struct fx *f = *state;
    struct fg_buf b = {0};
    assert_true(fg_im_feature_pre_approval());
    assert_true(fg_im_feature_roster_versioning());
    fg_im_stream_features(&b);
    assert_string_equal(fg_buf_str(&b), "<ver xmlns='urn:xmpp:features:rosterver'/>"
                                        "<sub xmlns='urn:xmpp:features:pre-approval'/>");
    fg_buf_free(&b);

    struct fake *j = bind_res(f, "juliet@a.test", "balcony");
    struct fake *r = bind_res(f, "romeo@a.test", "orchard");
    sendf(j, "<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>");
    sendf(j, "<presence/>");
    sendf(r, "<presence/>");
    got(j), got(r);
    /* Juliet pre-approves Romeo: shown as approved='true', not sent to him. */
    sendf(j, "<presence type='subscribed' to='romeo@a.test'/>");
    HAS(got(j), "<item jid='romeo@a.test' subscription='none' approved='true'/>");
    EMPTY(got(r));
    /* His request is approved by the server: she is not asked. */
    sendf(r, "<presence type='subscribe' to='juliet@a.test'/>");
    const char *h = got(j);
    HAS(h, "<item jid='romeo@a.test' subscription='from'/>");
    HASNT(h, "type='subscribe'");
    h = got(r);
    HAS(h, "<presence from='juliet@a.test' to='romeo@a.test' type='subscribed'/>");
    HAS(h, "<presence from='juliet@a.test/balcony' to='romeo@a.test'/>");

    /* A pre-approval can be cancelled with 'unsubscribed'. */
    sendf(j, "<presence type='subscribed' to='nurse@a.test'/>");
    HAS(got(j), "<item jid='nurse@a.test' subscription='none' approved='true'/>");
    sendf(j, "<presence type='unsubscribed' to='nurse@a.test'/>");
    HAS(got(j), "<item jid='nurse@a.test' subscription='none'/>");
    struct fake *n = bind_res(f, "nurse@a.test", "x");
    sendf(n, "<presence type='subscribe' to='juliet@a.test'/>");
    HAS(got(j), "<presence type='subscribe' to='juliet@a.test' from='nurse@a.test'/>");
}

static void t_roster_remove_cancels(void **state)
{
    struct fx *f = *state;
    befriend(f, "juliet@a.test", "x", "romeo@a.test", "y");
    struct fake *j = bind_res(f, "juliet@a.test", "balcony");
    struct fake *r = bind_res(f, "romeo@a.test", "orchard");
    sendf(r, "<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>");
    sendf(j, "<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>");
    sendf(j, "<presence/>");
    sendf(r, "<presence/>");
    got(j), got(r);
    sendf(j, "<iq type='set' id='rm'><query xmlns='jabber:iq:roster'>"
             "<item jid='romeo@a.test' subscription='remove'/></query></iq>");
    HAS(got(j), "subscription='remove'");
    const char *h = got(r);
    /* Both directions cancelled: he loses 'to' and 'from', and sees her go. */
    HAS(h, "type='unsubscribe'");
    HAS(h, "type='unsubscribed'");
    HAS(h, "<item jid='juliet@a.test' subscription='none'/>");
    HAS(h, "<presence from='juliet@a.test/balcony' to='romeo@a.test' type='unavailable'/>");
}

static void t_disco_ping(void **state)
{
    struct fx *f = *state;
    struct fake *j = bind_res(f, "juliet@a.test", "balcony");
    struct fake *r = bind_res(f, "romeo@a.test", "orchard");

    sendf(j, "<iq type='get' id='d1' to='a.test'>"
             "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    const char *h = got(j);
    HAS(h, "<iq type='result' id='d1' from='a.test' to='juliet@a.test/balcony'>");
    HAS(h, "<identity category='server' type='im' name='fedgate'/>");
    HAS(h, "<feature var='http://jabber.org/protocol/disco#info'/>");
    HAS(h, "<feature var='urn:xmpp:ping'/>");
    HAS(h, "<feature var='urn:xmpp:features:rosterver'/>");
    HAS(h, "<feature var='urn:xmpp:features:pre-approval'/>");
    HAS(h, "<feature var='msgoffline'/>");
    sendf(j, "<iq type='get' id='d2' to='a.test'>"
             "<query xmlns='http://jabber.org/protocol/disco#info' node='x'/></iq>");
    HAS(got(j), "<item-not-found");
    sendf(j, "<iq type='get' id='d3' to='a.test'>"
             "<query xmlns='http://jabber.org/protocol/disco#items'/></iq>");
    HAS(got(j), "<query xmlns='http://jabber.org/protocol/disco#items'/>");
    sendf(j, "<iq type='set' id='d4' to='a.test'>"
             "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    HAS(got(j), "<feature-not-implemented");

    /* Ping: to the server, and with no 'to' at all. */
    sendf(j, "<iq type='get' id='p1' to='a.test'><ping xmlns='urn:xmpp:ping'/></iq>");
    HAS(got(j), "<iq type='result' id='p1' from='a.test' to='juliet@a.test/balcony'/>");
    sendf(j, "<iq type='get' id='p2'><ping xmlns='urn:xmpp:ping'/></iq>");
    HAS(got(j), "<iq type='result' id='p2' to='juliet@a.test/balcony'/>");

    /* Unknown namespaces and malformed IQs. */
    sendf(j, "<iq type='get' id='u1' to='a.test'><query xmlns='urn:example:nothing'/></iq>");
    HAS(got(j), "<service-unavailable");
    sendf(j, "<iq type='get' id='u2' to='a.test/res'><ping xmlns='urn:xmpp:ping'/></iq>");
    HAS(got(j), "<service-unavailable");
    sendf(j, "<iq type='get' id='u3' to='a.test'><ping xmlns='urn:xmpp:ping'/>"
             "<ping xmlns='urn:xmpp:ping'/></iq>");
    HAS(got(j), "<bad-request");
    sendf(j, "<iq type='get' id='u4' to='a.test'/>");
    HAS(got(j), "<bad-request");
    sendf(j, "<iq type='bogus' id='u5' to='a.test'><ping xmlns='urn:xmpp:ping'/></iq>");
    HAS(got(j), "<bad-request");
    sendf(j, "<iq type='result' id='u6' to='a.test'/>");
    sendf(j, "<iq type='error' id='u7' to='a.test'><error type='cancel'/></iq>");
    EMPTY(got(j));
    sendf(j, "<message to='a.test'><body>to the server</body></message>");
    HAS(got(j), "service-unavailable");

    /* Account disco: the user herself, and contacts she lets see her presence. */
    sendf(j, "<iq type='get' id='a1' to='juliet@a.test'>"
             "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    h = got(j);
    HAS(h, "<identity category='account' type='registered'/>");
    sendf(r, "<iq type='get' id='a2' to='juliet@a.test'>"
             "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    HAS(got(r), "<service-unavailable");
    sendf(r, "<iq type='get' id='a3' to='juliet@a.test'><ping xmlns='urn:xmpp:ping'/></iq>");
    HAS(got(r), "<service-unavailable");
    sendf(r, "<presence type='subscribe' to='juliet@a.test'/>");
    sendf(j, "<presence type='subscribed' to='romeo@a.test'/>");
    got(r);
    sendf(r, "<iq type='get' id='a4' to='juliet@a.test'>"
             "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    HAS(got(r), "<identity category='account' type='registered'/>");
    sendf(r, "<iq type='get' id='a5' to='juliet@a.test'><ping xmlns='urn:xmpp:ping'/></iq>");
    HAS(got(r), "<iq type='result' id='a5' from='juliet@a.test' to='romeo@a.test/orchard'/>");

    /* IQ to a full JID: delivered; to a resource that is not there: service-unavailable. */
    sendf(r, "<iq type='get' id='f1' to='juliet@a.test/balcony'><query xmlns='jabber:iq:version'/>"
             "</iq>");
    HAS(got(j), "id='f1'");
    sendf(r, "<iq type='get' id='f2' to='juliet@a.test/nope'><query xmlns='jabber:iq:version'/>"
             "</iq>");
    HAS(got(r), "<service-unavailable");
    sendf(r, "<iq type='result' id='f3' to='juliet@a.test/nope'/>");
    EMPTY(got(r));
}

static void t_remote(void **state)
{
    struct fx *f = *state;
    struct fake *r = bind_res(f, "romeo@a.test", "orchard");

    /* Taken by the s2s hook. */
    sendf(r, "<message to='friar@b.test' id='m1'><body>hi</body></message>");
    const char *h = remote_got(f);
    HAS(h, "<message to='friar@b.test' id='m1' from='romeo@a.test/orchard'><body>hi</body>");
    EMPTY(got(r));
    /* Not taken: bounced with remote-server-not-found. */
    f->remote_ret = -1;
    sendf(r, "<message to='friar@b.test' id='m2'><body>hi</body></message>");
    h = got(r);
    HAS(h, "from='friar@b.test'");
    HAS(h, "<remote-server-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>");
    HAS(h, "id='m2'");
    sendf(r, "<message to='friar@b.test' type='error'/>");
    EMPTY(got(r));
    sendf(r, "<iq to='friar@b.test' type='result' id='x'/>");
    EMPTY(got(r));
    f->remote_ret = 0;

    /* Without a hook at all (before federation exists): the same bounce. */
    stop_im(f);
    f->remote_on = false;
    start_im(f);
    r->s = NULL;
    struct fake *r2 = bind_res(f, "romeo@a.test", "orchard");
    sendf(r2, "<iq to='friar@b.test' type='get' id='i9'><ping xmlns='urn:xmpp:ping'/></iq>");
    HAS(got(r2), "<remote-server-not-found");
    /* fg_im_bounce for the s2s layer's later failures. */
    struct fg_arena *a = fg_arena_new(0);
    struct fg_xml_node *m = parse(a, "<message from='romeo@a.test/orchard' to='friar@b.test' "
                                     "id='late'><body>x</body></message>");
    fg_im_bounce(f->im, m, a, "remote-server-timeout", "no answer from b.test");
    h = got(r2);
    HAS(h, "<error type='wait'><remote-server-timeout");
    HAS(h, "<text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>no answer from b.test</text>");
}

static void t_remote_contacts(void **state)
{
    struct fx *f = *state;
    struct fake *j = bind_res(f, "juliet@a.test", "balcony");
    sendf(j, "<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>");
    /* Her request leaves through the hook, stamped with bare JIDs. */
    sendf(j, "<presence type='subscribe' to='Friar@B.test/cell'/>");
    HAS(remote_got(f), "<presence type='subscribe' to='friar@b.test' from='juliet@a.test'/>");
    HAS(got(j), "<item jid='friar@b.test' subscription='none' ask='subscribe'/>");
    /* His answer comes back from the peer. */
    remotef(f, "<presence from='friar@b.test' to='juliet@a.test' type='subscribed'/>");
    const char *h = got(j);
    HAS(h, "<item jid='friar@b.test' subscription='to'/>");
    /* His request: she is asked. */
    remotef(f, "<presence from='friar@b.test/cell' to='juliet@a.test' type='subscribe'/>");
    EMPTY(got(j)); /* not available yet: kept for her initial presence */
    sendf(j, "<presence/>");
    h = got(j);
    HAS(h, "<presence from='friar@b.test' to='juliet@a.test' type='subscribe'/>");
    /* Her initial presence probed him (she is subscribed to him). */
    h = remote_got(f);
    HAS(h, "<presence from='juliet@a.test' to='friar@b.test' type='probe'/>");
    /* She approves: 'subscribed' and her presence go out. */
    sendf(j, "<presence type='subscribed' to='friar@b.test'/>");
    h = remote_got(f);
    HAS(h, "type='subscribed' to='friar@b.test' from='juliet@a.test'");
    HAS(h, "<presence from='juliet@a.test/balcony' to='friar@b.test'/>");
    /* Her presence changes reach him; his reach her. */
    sendf(j, "<presence><status>up</status></presence>");
    HAS(remote_got(f), "<presence from='juliet@a.test/balcony' to='friar@b.test'><status>up");
    got(j);
    remotef(f, "<presence from='friar@b.test/cell' to='juliet@a.test'><show>xa</show></presence>");
    HAS(got(j), "<show>xa</show>");
    /* His probe is answered with her presence. */
    remotef(f, "<presence from='friar@b.test' to='juliet@a.test' type='probe'/>");
    HAS(remote_got(f), "<presence from='juliet@a.test/balcony' to='friar@b.test'><status>up");
    /* Messages and IQs from the peer. */
    remotef(f, "<message from='friar@b.test/cell' to='juliet@a.test' type='chat'>"
               "<body>news</body></message>");
    HAS(got(j), "<message from='friar@b.test/cell' to='juliet@a.test' type='chat'><body>news");
    remotef(f, "<message from='friar@b.test/cell' to='nobody@a.test' id='q'><body>?</body>"
               "</message>");
    h = remote_got(f);
    HAS(h, "from='nobody@a.test'");
    HAS(h, "<service-unavailable");
    remotef(f, "<iq from='friar@b.test/cell' to='a.test' type='get' id='dp'>"
               "<ping xmlns='urn:xmpp:ping'/></iq>");
    HAS(remote_got(f), "<iq type='result' id='dp' from='a.test' to='friar@b.test/cell'/>");
    remotef(f, "<iq from='friar@b.test/cell' to='juliet@a.test' type='get' id='dd'>"
               "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>");
    HAS(remote_got(f), "<identity category='account' type='registered'/>");
    /* Spoofed or misaddressed: dropped. */
    remotef(f, "<message from='romeo@a.test' to='juliet@a.test'><body>spoof</body></message>");
    remotef(f, "<message from='friar@b.test' to='x@c.test'><body>relay</body></message>");
    EMPTY(got(j));
    EMPTY(remote_got(f));
    /* She goes: he hears it. */
    logout(f, j);
    HAS(remote_got(f), "<presence from='juliet@a.test/balcony' type='unavailable' "
                       "to='friar@b.test'/>");
}

/* SPEC 5, subscription_refresh_interval: a probe round asks again for the presence of
 * every remote contact an online user is subscribed to, and nothing else. */
static void t_refresh_probes(void **state)
{
    struct fx *f = *state;
    struct fake *j = bind_res(f, "juliet@a.test", "balcony");
    sendf(j, "<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>");
    /* friar@b.test: she is subscribed to him (subscription 'to') */
    sendf(j, "<presence type='subscribe' to='friar@b.test'/>");
    remotef(f, "<presence from='friar@b.test' to='juliet@a.test' type='subscribed'/>");
    /* abbot@b.test: he is subscribed to her only (subscription 'from') */
    remotef(f, "<presence from='abbot@b.test' to='juliet@a.test' type='subscribe'/>");
    sendf(j, "<presence type='subscribed' to='abbot@b.test'/>");
    /* nurse@c.test: asked, not answered (subscription 'none', ask) */
    sendf(j, "<presence type='subscribe' to='nurse@c.test'/>");
    remote_got(f);
    got(j);
    /* not available yet: nothing to refresh for her */
    assert_int_equal(fg_im_refresh_probes(f->im), 0);
    EMPTY(remote_got(f));
    sendf(j, "<presence/>");
    remote_got(f);
    got(j);
    assert_int_equal(fg_im_refresh_probes(f->im), 1);
    const char *h = remote_got(f);
    HAS(h, "<presence from='juliet@a.test' to='friar@b.test' type='probe'/>");
    assert_null(strstr(h, "abbot@b.test"));
    assert_null(strstr(h, "nurse@c.test"));
    assert_int_equal(f->nremote, 0); /* remote_got reset it after one probe */
    /* his answer reaches her as any presence does */
    remotef(f, "<presence from='friar@b.test/cell' to='juliet@a.test'><show>away</show>"
               "</presence>");
    HAS(got(j), "<show>away</show>");
    /* a probe the hook does not take is dropped (the daemon's hook bounces itself) */
    f->remote_ret = -1;
    assert_int_equal(fg_im_refresh_probes(f->im), 1);
    EMPTY(remote_got(f));
    f->remote_ret = 0;
    /* once she is gone, nothing more */
    logout(f, j);
    remote_got(f);
    assert_int_equal(fg_im_refresh_probes(f->im), 0);
    EMPTY(remote_got(f));
}

static void t_policy_hook(void **state)
{
    struct fx *f = *state;
    stop_im(f);
    f->policy_on = true;
    start_im(f);
    struct fake *j = bind_res(f, "juliet@a.test", "balcony");
    sendf(j, "<iq type='get' id='g'><query xmlns='jabber:iq:roster'/></iq>");
    sendf(j, "<presence/>");
    got(j);

    /* Refused: answered as for a user who does not exist. */
    f->verdict = FG_IM_REFUSE;
    remotef(f, "<message from='eve@b.test/x' to='juliet@a.test' id='r1'><body>x</body></message>");
    EMPTY(got(j));
    static char a[65536], b[65536];
    snprintf(a, sizeof a, "%s", remote_got(f));
    HAS(a, "service-unavailable");
    assert_int_equal(f->last_info.kind, FG_IM_MESSAGE);
    assert_string_equal(f->last_info.remote_bare, "eve@b.test");
    assert_string_equal(f->last_info.local_bare, "juliet@a.test");
    assert_false(f->last_info.in_roster);
    remotef(f, "<message from='eve@b.test/x' to='nobody@a.test' id='r1'><body>x</body></message>");
    snprintf(b, sizeof b, "%s", remote_got(f));
    /* Identical but for the addressee. */
    char *p = strstr(a, "juliet");
    assert_non_null(p);
    memcpy(p, "nobody", 6);
    assert_string_equal(a, b);
    remotef(f, "<presence from='eve@b.test' to='juliet@a.test' type='subscribe'/>");
    HAS(remote_got(f), "type='unsubscribed'");
    assert_int_equal(f->last_info.kind, FG_IM_SUBSCRIPTION);
    assert_string_equal(f->last_info.type, "subscribe");

    /* Approved automatically: she sees the item, not the request. */
    f->verdict = FG_IM_AUTO_APPROVE;
    remotef(f, "<presence from='friar@b.test' to='juliet@a.test' type='subscribe'/>");
    const char *h = got(j);
    HAS(h, "<item jid='friar@b.test' subscription='from'/>");
    HASNT(h, "type='subscribe'");
    h = remote_got(f);
    HAS(h, "<presence from='juliet@a.test' to='friar@b.test' type='subscribed'/>");
    HAS(h, "<presence from='juliet@a.test/balcony' to='friar@b.test'/>");
    f->verdict = FG_IM_ALLOW;
    remotef(f, "<message from='friar@b.test/x' to='juliet@a.test'><body>ok</body></message>");
    HAS(got(j), "<body>ok</body>");
    assert_true(f->last_info.in_roster);
    assert_false(f->last_info.pre_approved);
}

static void t_no_store(void **state)
{
    (void)state;
    /* Without a store nothing persists and offline messages are refused. */
    struct fg_im_env env = {.domains = domains, .user_exists = user_exists};
    struct fg_im *im = fg_im_new(&env);
    struct fx f = {.im = im};
    struct fake *r = fg_calloc(1, sizeof *r);
    r->fx = &f;
    assert_int_equal(
        fg_im_bind(im, "romeo@a.test", "o", &fake_ops, r, &r->s, r->full, sizeof r->full), 0);
    sendf(r, "<message to='juliet@a.test' id='n'><body>x</body></message>");
    HAS(got(r), "service-unavailable");
    sendf(r, "<iq type='set' id='s'><query xmlns='jabber:iq:roster'><item jid='juliet@a.test'/>"
             "</query></iq>");
    HAS(got(r), "<iq type='result' id='s'");
    fg_im_unbind(im, r->s);
    fg_buf_free(&r->out);
    fg_free(r);
    fg_im_free(im);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_jid),
        cmocka_unit_test_setup_teardown(t_bind_conflict, setup, teardown),
        cmocka_unit_test_setup_teardown(t_message_addressing, setup, teardown),
        cmocka_unit_test_setup_teardown(t_nonexistent, setup, teardown),
        cmocka_unit_test_setup_teardown(t_offline, setup, teardown),
        cmocka_unit_test_setup_teardown(t_offline_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(t_offline_restart, setup_loop, teardown),
        cmocka_unit_test_setup_teardown(t_roster, setup, teardown),
        cmocka_unit_test_setup_teardown(t_roster_restart, setup_loop, teardown),
        cmocka_unit_test_setup_teardown(t_subscription_flow, setup, teardown),
        cmocka_unit_test_setup_teardown(t_presence_initial, setup, teardown),
        cmocka_unit_test_setup_teardown(t_directed, setup, teardown),
        cmocka_unit_test_setup_teardown(t_pending_in_offline, setup, teardown),
        cmocka_unit_test_setup_teardown(t_preapproval, setup, teardown),
        cmocka_unit_test_setup_teardown(t_roster_remove_cancels, setup, teardown),
        cmocka_unit_test_setup_teardown(t_disco_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(t_remote, setup, teardown),
        cmocka_unit_test_setup_teardown(t_remote_contacts, setup, teardown),
        cmocka_unit_test_setup_teardown(t_refresh_probes, setup, teardown),
        cmocka_unit_test_setup_teardown(t_policy_hook, setup, teardown),
        cmocka_unit_test(t_no_store),
    };
    return cmocka_run_group_tests_name("im", tests, NULL, NULL);
}
