/* test_xml.c - unit tests of src/xml: arena, element trees and serializer, and the
 * stream parser (events at every split, errors, limits, restarts, trimming). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/err.h"
#include "xml/arena.h"
#include "xml/parser.h"
#include "xml/stanza.h"

/* ------------------------------------------------------------------ helpers */

#define HDR_CLIENT                                                                                 \
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"         \
    " to='example.com' version='1.0'>"

struct rec {
    struct fg_buf log;
    struct fg_xml_parser *p;
    struct fg_xml_scope scope;
    char content_ns[128];
    const char *stop_on; /* stop after a stanza with this local name */
    unsigned nstanza;
    size_t feed_pos; /* bytes fed before the current feed call */
    size_t at[256];  /* feed_pos when stanza i arrived */
    bool keep;       /* keep the stanza trees */
    struct fg_xml_node *kept[64];
    struct fg_arena *kept_arena[64];
    unsigned nkept;
    int reentry_feed, reentry_reset;
    unsigned nerror;
};

static void rec_header(void *ud, const struct fg_xml_header *h)
{
    struct rec *r = ud;
    fg_buf_printf(&r->log, "H to=%s from=%s id=%s version=%s lang=%s ns=%s prefix=%s decls=%u\n",
                  h->to ? h->to : "-", h->from ? h->from : "-", h->id ? h->id : "-",
                  h->version ? h->version : "-", h->lang ? h->lang : "-",
                  h->content_ns ? h->content_ns : "-", h->prefix, h->ndecls);
    snprintf(r->content_ns, sizeof r->content_ns, "%s", h->content_ns ? h->content_ns : "");
    fg_xml_scope_init(&r->scope, r->content_ns);
    for (unsigned i = 0; i < h->ndecls; i++)
        if (strcmp(h->decls[i].prefix, "db") == 0)
            fg_xml_scope_bind(&r->scope, "db", FG_XML_NS_DIALBACK);
}

static void rec_stanza(void *ud, struct fg_xml_node *n, struct fg_arena *a)
{
    struct rec *r = ud;
    if (r->nstanza < 256)
        r->at[r->nstanza] = r->feed_pos;
    r->nstanza++;
    fg_buf_puts(&r->log, "S ");
    fg_xml_serialize(&r->log, n, &r->scope);
    fg_buf_putc(&r->log, '\n');
    r->reentry_feed = fg_xml_parser_feed(r->p, "x", 1, NULL);
    r->reentry_reset = fg_xml_parser_reset(r->p);
    if (r->stop_on && strcmp(n->name, r->stop_on) == 0)
        fg_xml_parser_stop(r->p);
    if (r->keep && r->nkept < 64) {
        r->kept[r->nkept] = n;
        r->kept_arena[r->nkept++] = a;
    } else {
        fg_arena_free(a);
    }
}

static void rec_close(void *ud)
{
    struct rec *r = ud;
    fg_buf_puts(&r->log, "C\n");
}

static void rec_error(void *ud, enum fg_xml_cond c, const char *detail)
{
    struct rec *r = ud;
    assert_non_null(detail);
    r->nerror++;
    fg_buf_printf(&r->log, "E %s\n", fg_xml_cond_name(c));
}

static const struct fg_xml_callbacks rec_cb = {rec_header, rec_stanza, rec_close, rec_error};

static void rec_init(struct rec *r, const struct fg_xml_limits *lim)
{
    memset(r, 0, sizeof *r);
    r->p = fg_xml_parser_new(lim, &rec_cb, r);
    fg_xml_scope_init(&r->scope, NULL);
}

static void rec_done(struct rec *r)
{
    for (unsigned i = 0; i < r->nkept; i++)
        fg_arena_free(r->kept_arena[i]);
    fg_xml_parser_free(r->p);
    fg_buf_free(&r->log);
}

/* Feeds in[from..to); returns feed's result. */
static int rec_feed(struct rec *r, const char *in, size_t from, size_t to, size_t *consumed)
{
    r->feed_pos = from;
    return fg_xml_parser_feed(r->p, in + from, to - from, consumed);
}

/* The event log for `in` cut at the given offsets (ascending, within len). */
static char *run_cuts(const char *in, size_t len, const struct fg_xml_limits *lim,
                      const size_t *cuts, size_t ncuts)
{
    struct rec r;
    rec_init(&r, lim);
    size_t from = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t to = i < ncuts ? cuts[i] : len;
        if (to < from)
            continue;
        int rc = rec_feed(&r, in, from, to, NULL);
        from = to;
        if (rc < 0 || fg_xml_parser_state(r.p) >= FG_XML_STATE_STOPPED)
            break;
    }
    char *s = fg_buf_steal(&r.log);
    rec_done(&r);
    return s;
}

static char *run_bytes(const char *in, size_t len, const struct fg_xml_limits *lim)
{
    struct rec r;
    rec_init(&r, lim);
    for (size_t i = 0; i < len; i++) {
        int rc = rec_feed(&r, in, i, i + 1, NULL);
        if (rc < 0 || fg_xml_parser_state(r.p) >= FG_XML_STATE_STOPPED)
            break;
    }
    char *s = fg_buf_steal(&r.log);
    rec_done(&r);
    return s;
}

/* Same events for one chunk, every two-piece split, byte by byte, and a few
 * three-piece splits; returns the one-chunk log (caller frees). */
static char *check_splits(const char *in, size_t len, const struct fg_xml_limits *lim)
{
    char *whole = run_cuts(in, len, lim, NULL, 0);
    for (size_t k = 0; k <= len; k++) {
        char *s = run_cuts(in, len, lim, &k, 1);
        if (strcmp(s, whole) != 0)
            fail_msg("split at %zu of %zu:\n--- whole\n%s--- split\n%s", k, len, whole, s);
        free(s);
    }
    char *s = run_bytes(in, len, lim);
    if (strcmp(s, whole) != 0)
        fail_msg("byte by byte:\n--- whole\n%s--- bytes\n%s", whole, s);
    free(s);
    for (size_t k = 1; k + 7 < len; k += 7) {
        size_t cuts[2] = {k, k + 7};
        s = run_cuts(in, len, lim, cuts, 2);
        assert_string_equal(s, whole);
        free(s);
    }
    return whole;
}

static void expect_log(const char *in, const struct fg_xml_limits *lim, const char *want)
{
    char *got = check_splits(in, strlen(in), lim);
    assert_string_equal(got, want);
    free(got);
}

/* The last line of the log must be this error; every split must agree. */
static void expect_error(const char *in, size_t len, const struct fg_xml_limits *lim,
                         enum fg_xml_cond c)
{
    char *got = check_splits(in, len, lim);
    char want[64];
    snprintf(want, sizeof want, "E %s\n", fg_xml_cond_name(c));
    size_t gl = strlen(got), wl = strlen(want);
    if (gl < wl || strcmp(got + gl - wl, want) != 0)
        fail_msg("input %.*s\nwant %sgot\n%s", (int)len, in, want, got);
    free(got);
}

static void expect_error_s(const char *in, enum fg_xml_cond c)
{
    expect_error(in, strlen(in), NULL, c);
}

/* ------------------------------------------------------------------ arena */

static void test_arena(void **state)
{
    (void)state;
    struct fg_arena *a = fg_arena_new(0);
    size_t first = fg_arena_size(a);
    assert_true(first >= 2048);
    for (int i = 0; i < 1000; i++) {
        void *p = fg_arena_alloc(a, (size_t)(i % 13) + 1);
        assert_int_equal((uintptr_t)p % 8, 0);
        memset(p, 0xAB, (size_t)(i % 13) + 1);
        char *s = fg_arena_alloc_bytes(a, 3);
        memcpy(s, "abc", 3);
    }
    assert_true(fg_arena_size(a) > first);
    char *big = fg_arena_alloc(a, 200000);
    memset(big, 1, 200000);
    char *z = fg_arena_zalloc(a, 64);
    for (int i = 0; i < 64; i++)
        assert_int_equal(z[i], 0);
    assert_string_equal(fg_arena_strndup(a, "hello world", 5), "hello");
    assert_string_equal(fg_arena_strdup(a, "x"), "x");
    assert_string_equal(fg_arena_strndup(a, "", 0), "");

    /* grow: in place while it is the latest allocation, moved otherwise */
    char *g = fg_arena_alloc_bytes(a, 4);
    memcpy(g, "abcd", 4);
    char *g2 = fg_arena_grow(a, g, 4, 8);
    assert_ptr_equal(g, g2);
    memcpy(g2 + 4, "efgh", 4);
    (void)fg_arena_alloc_bytes(a, 1);
    char *g3 = fg_arena_grow(a, g2, 8, 12);
    assert_ptr_not_equal(g3, g2);
    assert_memory_equal(g3, "abcdefgh", 8);
    /* many grows stay linear and keep the contents */
    char *t = NULL;
    size_t tl = 0;
    for (int i = 0; i < 5000; i++) {
        t = fg_arena_grow(a, t, tl, tl + 10);
        memcpy(t + tl, "0123456789", 10);
        tl += 10;
    }
    for (size_t i = 0; i < tl; i++)
        assert_int_equal(t[i], '0' + (int)(i % 10));
    fg_arena_free(a);
    fg_arena_free(NULL);

    struct fg_arena *tiny = fg_arena_new(16);
    assert_non_null(fg_arena_alloc(tiny, 100));
    fg_arena_free(tiny);
}

/* ------------------------------------------------------------------ trees */

static void test_tree_build(void **state)
{
    (void)state;
    struct fg_arena *a = fg_arena_new(0);
    struct fg_xml_node *m = fg_xml_element_new(a, "message", FG_XML_NS_CLIENT);
    assert_ptr_equal(m->ns, fg_xml_ns_static(FG_XML_NS_CLIENT, strlen(FG_XML_NS_CLIENT)));
    fg_xml_set_attr(a, m, "to", "romeo@example.net");
    fg_xml_set_attr(a, m, "type", "chat");
    fg_xml_set_attr(a, m, "to", "juliet@example.com");
    fg_xml_set_attr_ns(a, m, FG_XML_NS_XML, "lang", "en");
    for (int i = 0; i < 10; i++) {
        char name[8];
        snprintf(name, sizeof name, "a%d", i);
        fg_xml_set_attr(a, m, name, "v");
    }
    assert_int_equal(m->nattrs, 13);
    assert_string_equal(fg_xml_attr(m, "to"), "juliet@example.com");
    assert_null(fg_xml_attr(m, "lang")); /* qualified: not found as unqualified */
    const struct fg_xml_attr *lang = fg_xml_attr_find(m, FG_XML_NS_XML, "lang");
    assert_non_null(lang);
    assert_string_equal(lang->value, "en");
    assert_int_equal(lang->value_len, 2);
    assert_int_equal(fg_xml_remove_attr(m, "type"), FG_OK);
    assert_int_equal(fg_xml_remove_attr(m, "type"), FG_ENOTFOUND);
    assert_null(fg_xml_attr(m, "type"));
    assert_string_equal(fg_xml_attr(m, "a9"), "v");

    struct fg_xml_node *body = fg_xml_add_child(a, m, "body", NULL);
    assert_true(fg_xml_ns_eq(body->ns, FG_XML_NS_CLIENT));
    fg_xml_add_text(a, body, "Hello", 5);
    fg_xml_add_text(a, body, ", ", 2);
    fg_xml_add_text(a, body, "world", 5);
    assert_ptr_equal(body->children, body->last_child); /* merged */
    size_t len;
    assert_string_equal(fg_xml_text(body, &len), "Hello, world");
    assert_int_equal(len, 12);
    struct fg_xml_node *x1 = fg_xml_add_child(a, m, "x", "jabber:x:oob");
    struct fg_xml_node *x2 = fg_xml_add_child(a, m, "x", "jabber:x:data");
    assert_ptr_equal(fg_xml_child(m, "x", NULL), x1);
    assert_ptr_equal(fg_xml_child(m, "x", "jabber:x:data"), x2);
    assert_ptr_equal(fg_xml_next(x1, "x", NULL), x2);
    assert_null(fg_xml_next(x2, NULL, NULL));
    assert_null(fg_xml_child(m, "body", "jabber:server"));
    assert_ptr_equal(fg_xml_child(m, NULL, NULL), body);
    assert_string_equal(fg_xml_text(x1, &len), "");
    assert_int_equal(len, 0);
    assert_true(fg_xml_ns_eq(NULL, ""));
    assert_false(fg_xml_ns_eq("a", NULL));

    struct fg_arena *b = fg_arena_new(0);
    struct fg_xml_node *c = fg_xml_copy(b, m);
    fg_arena_free(a); /* the copy owns its strings */
    assert_string_equal(fg_xml_attr(c, "to"), "juliet@example.com");
    assert_string_equal(fg_xml_text(fg_xml_child(c, "body", NULL), NULL), "Hello, world");
    struct fg_xml_node *d = fg_xml_copy(b, c);
    assert_true(fg_xml_equal(c, d));
    fg_xml_set_attr(b, d, "a3", "w");
    assert_false(fg_xml_equal(c, d));
    fg_arena_free(b);
}

static char *ser(const struct fg_xml_node *n, const struct fg_xml_scope *s)
{
    struct fg_buf b = {0};
    fg_xml_serialize(&b, n, s);
    return fg_buf_steal(&b);
}

static void test_serialize_escaping(void **state)
{
    (void)state;
    struct fg_arena *a = fg_arena_new(0);
    struct fg_xml_node *m = fg_xml_element_new(a, "message", FG_XML_NS_CLIENT);
    fg_xml_set_attr(a, m, "id", "a&b<c>d\"e'f\tg\nh\ri");
    struct fg_xml_node *body = fg_xml_add_child(a, m, "body", NULL);
    fg_xml_add_text(a, body, "x&y<z>\"q'\r\n]]>", 14);
    char *s = ser(m, NULL);
    assert_string_equal(s, "<message xmlns='jabber:client' id='a&amp;b&lt;c&gt;d&quot;e&apos;"
                           "f&#9;g&#10;h&#13;i'><body>x&amp;y&lt;z&gt;\"q'&#13;\n]]&gt;</body>"
                           "</message>");
    free(s);

    struct fg_buf b = {0};
    fg_xml_escape_text(&b, "", 0);
    fg_xml_escape_attr(&b, "plain", 5);
    assert_string_equal(fg_buf_str(&b), "plain");
    fg_buf_free(&b);
    fg_arena_free(a);
}

static void test_serialize_namespaces(void **state)
{
    (void)state;
    struct fg_arena *a = fg_arena_new(0);
    struct fg_xml_scope sc;
    fg_xml_scope_init(&sc, FG_XML_NS_CLIENT);
    assert_int_equal(fg_xml_scope_bind(&sc, "db", FG_XML_NS_DIALBACK), FG_OK);
    assert_int_equal(fg_xml_scope_bind(&sc, "db", FG_XML_NS_DIALBACK), FG_EEXISTS);
    assert_int_equal(fg_xml_scope_bind(&sc, "ns0", "urn:taken"), FG_OK);
    assert_int_equal(fg_xml_scope_bind(&sc, "p", "urn:p"), FG_OK);
    assert_int_equal(fg_xml_scope_bind(&sc, "q", "urn:q"), FG_ELIMIT);

    struct fg_xml_node *iq = fg_xml_element_new(a, "iq", FG_XML_NS_CLIENT);
    fg_xml_set_attr(a, iq, "type", "result");
    struct fg_xml_node *q = fg_xml_add_child(a, iq, "query", "jabber:iq:roster");
    struct fg_xml_node *it = fg_xml_add_child(a, q, "item", NULL);
    fg_xml_set_attr(a, it, "jid", "a@b");
    fg_xml_add_child(a, it, "group", NULL);
    fg_xml_add_child(a, q, "none", "");
    struct fg_xml_node *c = fg_xml_add_child(a, iq, "c", "urn:caps");
    fg_xml_set_attr_ns(a, c, "urn:caps", "hash", "sha-1");
    fg_xml_set_attr_ns(a, c, "urn:other", "x", "1");
    fg_xml_set_attr_ns(a, c, "urn:caps", "node", "n");
    fg_xml_set_attr_ns(a, c, FG_XML_NS_XML, "lang", "en");
    fg_xml_set_attr_ns(a, c, "urn:p", "y", "2");

    char *s = ser(iq, &sc);
    assert_string_equal(s, "<iq type='result'><query xmlns='jabber:iq:roster'><item jid='a@b'>"
                           "<group/></item><none xmlns=''/></query><c xmlns='urn:caps' "
                           "xmlns:ns1='urn:caps' ns1:hash='sha-1' xmlns:ns2='urn:other' "
                           "ns2:x='1' ns1:node='n' xml:lang='en' p:y='2'/></iq>");
    free(s);
    s = ser(iq, NULL);
    assert_true(strncmp(s, "<iq xmlns='jabber:client' type='result'>", 40) == 0);
    free(s);

    /* stream-level elements take the stream prefix; dialback the db prefix */
    struct fg_xml_node *f = fg_xml_element_new(a, "features", FG_XML_NS_STREAMS);
    fg_xml_add_child(a, f, "starttls", FG_XML_NS_TLS);
    fg_xml_add_child(a, fg_xml_child(f, "starttls", NULL), "required", NULL);
    s = ser(f, &sc);
    assert_string_equal(s, "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"
                           "<required/></starttls></stream:features>");
    free(s);
    s = ser(f, NULL);
    assert_string_equal(s, "<features xmlns='http://etherx.jabber.org/streams'><starttls "
                           "xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
                           "</features>");
    free(s);
    struct fg_xml_node *db = fg_xml_element_new(a, "result", FG_XML_NS_DIALBACK);
    fg_xml_set_attr(a, db, "to", "b");
    fg_xml_add_text(a, db, "key", 3);
    s = ser(db, &sc);
    assert_string_equal(s, "<db:result to='b'>key</db:result>");
    free(s);

    /* a jabber:client stanza onto a jabber:server stream */
    struct fg_xml_node *m = fg_xml_element_new(a, "message", FG_XML_NS_CLIENT);
    fg_xml_add_text(a, fg_xml_add_child(a, m, "body", NULL), "hi", 2);
    struct fg_xml_scope srv;
    fg_xml_scope_init(&srv, FG_XML_NS_SERVER);
    s = ser(m, &srv);
    assert_string_equal(s, "<message xmlns='jabber:client'><body>hi</body></message>");
    free(s);
    struct fg_xml_scope rebase = srv;
    rebase.default_ns = m->ns;
    s = ser(m, &rebase);
    assert_string_equal(s, "<message><body>hi</body></message>");
    free(s);

    /* header and close */
    struct fg_buf b = {0};
    fg_xml_serialize_header(&b, &sc, true, "example.com", NULL, "id'1", "1.0", "en");
    assert_string_equal(fg_buf_str(&b),
                        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                        "xmlns:stream='http://etherx.jabber.org/streams' "
                        "xmlns:db='jabber:server:dialback' xmlns:ns0='urn:taken' "
                        "xmlns:p='urn:p' to='example.com' id='id&apos;1' version='1.0' "
                        "xml:lang='en'>");
    fg_buf_reset(&b);
    fg_xml_serialize_close(&b, &sc);
    assert_string_equal(fg_buf_str(&b), "</stream:stream>");
    fg_buf_reset(&b);
    fg_xml_serialize_header(&b, NULL, false, NULL, NULL, NULL, NULL, NULL);
    fg_xml_serialize_close(&b, NULL);
    assert_string_equal(fg_buf_str(&b), "<stream:stream xmlns:stream='http://etherx.jabber.org/"
                                        "streams'></stream:stream>");
    fg_buf_free(&b);
    fg_arena_free(a);
}

/* ------------------------------------------------------------------ parsing */

static const char rich[] =
    "<?xml version='1.0' encoding='UTF-8'?>\n"
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
    " xmlns:db='jabber:server:dialback' to='example.com' from='juliet@example.com' id='s1'"
    " version='1.0' xml:lang='en'>\n"
    "  <message to='romeo@example.net' from='juliet@example.com/balcony' type='chat' id='m1'"
    " xml:lang='fr'><body>Art thou &amp; not &lt;Romeo&gt; &quot;&apos; &#x263A; &#9731; "
    "\xc3\xa9 \xe2\x98\xba \xf0\x9d\x84\x9e</body><thread>t1</thread></message>"
    "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'><item jid='a@b'"
    " name='A &amp; B &lt;x&gt; &quot;q&quot; &apos;s&apos; &#10;'/></query></iq>\n\t \r\n "
    "<presence><x:c xmlns:x='http://jabber.org/protocol/caps' x:hash='sha-1' node='n'"
    " ver='v'/><status><![CDATA[<not a tag> & stuff]]></status><show>away</show></presence>"
    "<db:result to='a' from='b'>key</db:result>"
    "<message><html xmlns='http://jabber.org/protocol/xhtml-im'><body"
    " xmlns='http://www.w3.org/1999/xhtml'><p>Hello <em>wor</em>ld<br/>!</p></body></html>"
    "<x xmlns=''/>line1\r\nline2\rline3</message> "
    "</stream:stream>";

static const char rich_log[] =
    "H to=example.com from=juliet@example.com id=s1 version=1.0 lang=en ns=jabber:client "
    "prefix=stream decls=3\n"
    "S <message to='romeo@example.net' from='juliet@example.com/balcony' type='chat' id='m1' "
    "xml:lang='fr'><body>Art thou &amp; not &lt;Romeo&gt; \"' \xe2\x98\xba \xe2\x98\x83 "
    "\xc3\xa9 \xe2\x98\xba \xf0\x9d\x84\x9e</body><thread>t1</thread></message>\n"
    "S <iq type='get' id='r1'><query xmlns='jabber:iq:roster'><item jid='a@b' "
    "name='A &amp; B &lt;x&gt; &quot;q&quot; &apos;s&apos; &#10;'/></query></iq>\n"
    "S <presence><c xmlns='http://jabber.org/protocol/caps' "
    "xmlns:ns0='http://jabber.org/protocol/caps' ns0:hash='sha-1' node='n' ver='v'/>"
    "<status>&lt;not a tag&gt; &amp; stuff</status><show>away</show></presence>\n"
    "S <db:result to='a' from='b'>key</db:result>\n"
    "S <message><html xmlns='http://jabber.org/protocol/xhtml-im'><body "
    "xmlns='http://www.w3.org/1999/xhtml'><p>Hello <em>wor</em>ld<br/>!</p></body></html>"
    "<x xmlns=''/>line1\nline2\nline3</message>\n"
    "C\n";

static void test_wellformed_stream(void **state)
{
    (void)state;
    expect_log(rich, NULL, rich_log);
}

static void test_tree_from_parser(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r, NULL);
    r.keep = true;
    size_t consumed = 0;
    assert_int_equal(fg_xml_parser_feed(r.p, rich, sizeof rich - 1, &consumed), FG_OK);
    assert_int_equal(consumed, sizeof rich - 1);
    assert_int_equal(fg_xml_parser_state(r.p), FG_XML_STATE_CLOSED);
    assert_int_equal(r.nkept, 5);
    assert_int_equal(r.reentry_feed, FG_EBUSY);
    assert_int_equal(r.reentry_reset, FG_EBUSY);

    struct fg_xml_node *m = r.kept[0];
    assert_string_equal(m->name, "message");
    assert_ptr_equal(m->ns, fg_xml_ns_static("jabber:client", 13));
    assert_string_equal(fg_xml_attr(m, "type"), "chat");
    assert_string_equal(fg_xml_attr_find(m, FG_XML_NS_XML, "lang")->value, "fr");
    struct fg_xml_node *body = fg_xml_child(m, "body", FG_XML_NS_CLIENT);
    assert_non_null(body);
    size_t len;
    const char *t = fg_xml_text(body, &len);
    assert_string_equal(t, "Art thou & not <Romeo> \"' \xe2\x98\xba \xe2\x98\x83 \xc3\xa9 "
                           "\xe2\x98\xba \xf0\x9d\x84\x9e");
    assert_int_equal(len, strlen(t));
    assert_ptr_equal(body->children, body->last_child); /* one text node */

    struct fg_xml_node *item =
        fg_xml_child(fg_xml_child(r.kept[1], "query", "jabber:iq:roster"), "item", NULL);
    assert_non_null(item);
    const struct fg_xml_attr *name = fg_xml_attr_find(item, NULL, "name");
    assert_string_equal(name->value, "A & B <x> \"q\" 's' \n");
    assert_int_equal(name->value_len, 19);

    struct fg_xml_node *c = fg_xml_child(r.kept[2], "c", "http://jabber.org/protocol/caps");
    assert_non_null(c);
    assert_null(fg_xml_attr(c, "hash"));
    assert_string_equal(fg_xml_attr_find(c, "http://jabber.org/protocol/caps", "hash")->value,
                        "sha-1");
    assert_string_equal(fg_xml_text(fg_xml_child(r.kept[2], "status", NULL), NULL),
                        "<not a tag> & stuff");
    assert_true(fg_xml_ns_eq(r.kept[3]->ns, FG_XML_NS_DIALBACK));
    struct fg_xml_node *x = fg_xml_child(r.kept[4], "x", "");
    assert_non_null(x);
    assert_string_equal(x->ns, "");
    rec_done(&r);
}

/* Each stanza event fires while feeding the stanza's last byte, not later. */
static void test_events_are_timely(void **state)
{
    (void)state;
    const size_t len = sizeof rich - 1;
    struct rec r;
    rec_init(&r, NULL);
    for (size_t i = 0; i < len; i++)
        assert_int_equal(rec_feed(&r, rich, i, i + 1, NULL), FG_OK);
    assert_int_equal(r.nstanza, 5);
    for (unsigned k = 0; k < r.nstanza; k++) {
        size_t b = r.at[k]; /* the byte whose feeding delivered stanza k */
        struct rec q;
        rec_init(&q, NULL);
        rec_feed(&q, rich, 0, b + 1, NULL);
        assert_int_equal(q.nstanza, k + 1);
        rec_done(&q);
        rec_init(&q, NULL);
        rec_feed(&q, rich, 0, b, NULL);
        assert_int_equal(q.nstanza, k);
        rec_done(&q);
    }
    rec_done(&r);
}

static void test_keepalive_and_close(void **state)
{
    (void)state;
    const char *in = "  \n<?xml version='1.0'?>" HDR_CLIENT " \n \t<presence/>\n\n   \n"
                     "<presence/> </stream:stream>";
    /* whitespace before the XML declaration is not allowed by XML */
    expect_error_s(in, FG_XML_COND_RESTRICTED_XML);
    in = "\n\n" HDR_CLIENT " \n \t<presence/>\n\n   \n<presence/> </stream:stream>";
    expect_log(in, NULL,
               "H to=example.com from=- id=- version=1.0 lang=- ns=jabber:client prefix=stream "
               "decls=2\nS <presence/>\nS <presence/>\nC\n");

    /* bytes after the close are left to the caller */
    char buf[512];
    snprintf(buf, sizeof buf, "%s<presence/></stream:stream>TRAILING", HDR_CLIENT);
    struct rec r;
    rec_init(&r, NULL);
    size_t consumed = 0;
    assert_int_equal(fg_xml_parser_feed(r.p, buf, strlen(buf), &consumed), FG_OK);
    assert_int_equal(consumed, strlen(buf) - 8);
    assert_int_equal(fg_xml_parser_state(r.p), FG_XML_STATE_CLOSED);
    assert_int_equal(fg_xml_parser_feed(r.p, "x", 1, &consumed), FG_EINVAL);
    assert_int_equal(consumed, 0);
    assert_int_equal(fg_xml_parser_reset(r.p), FG_OK);
    assert_int_equal(fg_xml_parser_state(r.p), FG_XML_STATE_HEADER);
    rec_done(&r);

    expect_error_s(HDR_CLIENT "<presence/> hello <presence/>", FG_XML_COND_BAD_FORMAT);
    expect_log("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'/>", NULL,
               "H to=- from=- id=- version=- lang=- ns=- prefix=stream decls=1\nC\n");
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *cases[] = {
        "<message><body>x</message>",
        "<message to='a' to='b'/>",
        "<message to=a/>",
        "<message to='<'/>",
        "< message/>",
        "<1message/>",
        "<message>\x01</message>",
        "<message>&#0;</message>",
        "<message>&#xD800;</message>",
        "<message>\xef\xbf\xbe</message>", /* U+FFFE: valid UTF-8, not an XML character */
        "<message></stream:stream>",
        "<message>]]></message>",
        "<message><![CDAT[x]]></message>",
        "<xmlns:a xmlns:xmlns='urn:x'/>",
        "<a xmlns:p=''/>",
        "</presence>",
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s%s", HDR_CLIENT, cases[i]);
        expect_error(buf, strlen(buf), NULL, FG_XML_COND_NOT_WELL_FORMED);
    }
    expect_error_s("<stream:stream xmlns:stream='http://etherx.jabber.org/streams' a='1' a='2'>",
                   FG_XML_COND_NOT_WELL_FORMED);
    expect_error_s("GET / HTTP/1.1\r\n", FG_XML_COND_NOT_WELL_FORMED);
    /* control characters are refused the same way at every split, even at the start */
    static const char nul[] = "m\0\xb8";
    expect_error(nul, sizeof nul - 1, NULL, FG_XML_COND_NOT_WELL_FORMED);
    static const char nul2[] = HDR_CLIENT "<message>\0</message>";
    expect_error(nul2, sizeof nul2 - 1, NULL, FG_XML_COND_NOT_WELL_FORMED);
}

static void test_restricted(void **state)
{
    (void)state;
    static const char *pre[] = {
        "<!DOCTYPE stream>",
        "<?xml version='1.0'?><!DOCTYPE stream:stream SYSTEM 'http://example.com/x.dtd'>",
        "<!DOCTYPE s [<!ENTITY x 'y'>]>",
        "<!DOCTYPE s [<!ENTITY % p SYSTEM 'http://example.com/p'> %p;]>",
        "<!-- hello -->",
        "<?xml version='1.0'?><!-- hello -->",
        "<?php echo 1; ?>",
    };
    for (size_t i = 0; i < sizeof pre / sizeof pre[0]; i++) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s%s", pre[i], HDR_CLIENT);
        expect_error(buf, strlen(buf), NULL, FG_XML_COND_RESTRICTED_XML);
    }
    static const char *post[] = {
        "<!-- keepalive -->",
        "<presence/><!---->",
        "<message><!-- inside --></message>",
        "<message><body>&foo;</body></message>",
        "<message to='&bar;'/>",
        "<?pi x?>",
        "<message><?pi?></message>",
        "<?xml version='1.0'?>",
    };
    for (size_t i = 0; i < sizeof post / sizeof post[0]; i++) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s%s", HDR_CLIENT, post[i]);
        expect_error(buf, strlen(buf), NULL, FG_XML_COND_RESTRICTED_XML);
    }
    /* the XML declaration itself is fine, in any case of UTF-8 */
    expect_log("<?xml version='1.0' encoding='utf-8' standalone='yes'?>"
               "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>",
               NULL, "H to=- from=- id=- version=- lang=- ns=- prefix=stream decls=1\n");
}

static void test_encoding(void **state)
{
    (void)state;
    static const char *bad[] = {
        "\xff",
        "\xc0\xaf",         /* overlong '/' */
        "\xe0\x80\xaf",     /* overlong */
        "\xed\xa0\x80",     /* surrogate U+D800 */
        "\xe2\x82\x41",     /* truncated sequence, then "A" */
        "\xf5\x80\x80\x80", /* above U+10FFFF */
        "\xf4\x90\x80\x80", /* U+110000 */
        "\x80",             /* lone continuation byte */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char buf[512];
        snprintf(buf, sizeof buf, "%s<message><body>ok %s</body></message>", HDR_CLIENT, bad[i]);
        expect_error(buf, strlen(buf), NULL, FG_XML_COND_UNSUPPORTED_ENCODING);
        snprintf(buf, sizeof buf, "%s<message to='%s'/>", HDR_CLIENT, bad[i]);
        expect_error(buf, strlen(buf), NULL, FG_XML_COND_UNSUPPORTED_ENCODING);
    }
    expect_error_s("<?xml version='1.0' encoding='ISO-8859-1'?>" HDR_CLIENT,
                   FG_XML_COND_UNSUPPORTED_ENCODING);
    expect_error_s("<?xml version='1.0' encoding='US-ASCII'?>" HDR_CLIENT,
                   FG_XML_COND_UNSUPPORTED_ENCODING);
    expect_error_s("<?xml version='1.0' encoding='UTF-16'?>" HDR_CLIENT,
                   FG_XML_COND_UNSUPPORTED_ENCODING);
    static const char utf16[] = "\xfe\xff\0<\0s";
    expect_error(utf16, sizeof utf16 - 1, NULL, FG_XML_COND_UNSUPPORTED_ENCODING);
    /* a malformation before the bad byte is reported first */
    expect_error_s(HDR_CLIENT "<a></b>\xff", FG_XML_COND_NOT_WELL_FORMED);
    /* multi-byte characters cut at every byte still parse */
    expect_log(HDR_CLIENT "<m a='\xc3\xa9\xe2\x98\xba\xf0\x9d\x84\x9e'>\xf4\x8f\xbf\xbd</m>", NULL,
               "H to=example.com from=- id=- version=1.0 lang=- ns=jabber:client prefix=stream "
               "decls=2\nS <m a='\xc3\xa9\xe2\x98\xba\xf0\x9d\x84\x9e'>\xf4\x8f\xbf\xbd</m>\n");
}

static void test_namespaces(void **state)
{
    (void)state;
    expect_error_s("<stream:stream xmlns:stream='http://etherx.jabber.org/wrong'>",
                   FG_XML_COND_INVALID_NAMESPACE);
    expect_error_s("<stream xmlns='jabber:client'>", FG_XML_COND_INVALID_NAMESPACE);
    expect_error_s("<stream>", FG_XML_COND_INVALID_NAMESPACE);
    expect_error_s("<stream:features xmlns:stream='http://etherx.jabber.org/streams'>",
                   FG_XML_COND_BAD_FORMAT);
    expect_error_s("<stream:stream xmlns='jabber:client'>", FG_XML_COND_BAD_NAMESPACE_PREFIX);
    expect_error_s(HDR_CLIENT "<x:message/>", FG_XML_COND_BAD_NAMESPACE_PREFIX);
    expect_error_s(HDR_CLIENT "<message x:a='1'/>", FG_XML_COND_BAD_NAMESPACE_PREFIX);
    /* any prefix bound to the streams namespace will do; the caller sees which */
    expect_log("<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:server'>"
               "<s:features/><message/></s:stream>",
               NULL,
               "H to=- from=- id=- version=- lang=- ns=jabber:server prefix=s decls=2\n"
               "S <stream:features/>\nS <message/>\nC\n");
    /* no prefix at all: the default namespace is the streams namespace */
    expect_log("<stream xmlns='http://etherx.jabber.org/streams'><message/></stream>", NULL,
               "H to=- from=- id=- version=- lang=- ns=http://etherx.jabber.org/streams prefix= "
               "decls=1\nS <message/>\nC\n");
}

static void test_namespace_sharing(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r, NULL);
    r.keep = true;
    static const char in[] =
        "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' "
        "xmlns:a='urn:a' xmlns:b='urn:b' xmlns:c='urn:c' xmlns:d='urn:d' xml:lang='en'>"
        "<iq><query xmlns='urn:custom:1'><a/><b xmlns='urn:custom:2'><c xmlns='urn:custom:1'/>"
        "<a:x b:y='1'/></b></query></iq>";
    assert_int_equal(fg_xml_parser_feed(r.p, in, sizeof in - 1, NULL), FG_OK);
    assert_int_equal(r.nkept, 1);
    struct fg_xml_node *q = fg_xml_child(r.kept[0], "query", "urn:custom:1");
    struct fg_xml_node *a = fg_xml_child(q, "a", NULL);
    struct fg_xml_node *b = fg_xml_child(q, "b", "urn:custom:2");
    struct fg_xml_node *c = fg_xml_child(b, "c", NULL);
    struct fg_xml_node *x = fg_xml_child(b, "x", "urn:a");
    assert_non_null(a);
    assert_non_null(c);
    assert_non_null(x);
    assert_ptr_equal(a->ns, q->ns); /* inherited: one copy */
    assert_ptr_equal(c->ns, q->ns); /* seen before in this stanza: one copy */
    assert_string_equal(fg_xml_attr_find(x, "urn:b", "y")->value, "1");
    assert_string_equal(fg_buf_str(&r.log),
                        "H to=- from=- id=- version=- lang=en ns=jabber:client prefix=stream "
                        "decls=6\nS <iq><query xmlns='urn:custom:1'><a/><b xmlns='urn:custom:2'>"
                        "<c xmlns='urn:custom:1'/><x xmlns='urn:a' xmlns:ns0='urn:b' ns0:y='1'/>"
                        "</b></query></iq>\n");
    /* the six declarations survive a rebuild */
    assert_int_equal(fg_xml_parser_trim(r.p), FG_OK);
    assert_int_equal(fg_xml_parser_feed(r.p, "<d:m/>", 6, NULL), FG_OK);
    assert_int_equal(r.nkept, 2);
    assert_string_equal(r.kept[1]->ns, "urn:d");
    rec_done(&r);
}

/* Bytes held back are checked before an encoding error that follows them. */
static void test_held_bytes_then_bad_utf8(void **state)
{
    (void)state;
    for (int bad_first = 0; bad_first < 2; bad_first++) {
        struct rec r;
        rec_init(&r, NULL);
        struct fg_buf in = {0};
        fg_buf_puts(&in, HDR_CLIENT "<message a='");
        for (int i = 0; i < 2000; i++)
            fg_buf_putc(&in, 'x');
        assert_int_equal(fg_xml_parser_feed(r.p, in.data, in.len, NULL), FG_OK);
        /* held: "'b" lacks the space between attributes, which the hold-back scan does
         * not check; expat does once it sees it */
        assert_int_equal(fg_xml_parser_feed(r.p, bad_first ? "'b" : "' b", bad_first ? 2 : 3, NULL),
                         FG_OK);
        assert_int_equal(fg_xml_parser_feed(r.p, "='1\xff", 4, NULL), FG_EINVAL);
        assert_int_equal(fg_xml_parser_error(r.p, NULL), bad_first
                                                             ? FG_XML_COND_NOT_WELL_FORMED
                                                             : FG_XML_COND_UNSUPPORTED_ENCODING);
        fg_buf_free(&in);
        rec_done(&r);
    }
}

static void make_stanza(char *out, size_t cap, size_t size)
{
    /* <message><body>xxx</body></message> of exactly `size` bytes */
    size_t fixed = strlen("<message><body></body></message>");
    assert_true(size >= fixed && size < cap);
    size_t k = size - fixed;
    strcpy(out, "<message><body>");
    memset(out + 15, 'x', k);
    strcpy(out + 15 + k, "</body></message>");
    assert_int_equal(strlen(out), size);
}

static void test_limit_stanza_size(void **state)
{
    (void)state;
    struct fg_xml_limits lim;
    fg_xml_limits_default(&lim);
    char st[400], in[800];
    make_stanza(st, sizeof st, 300);
    snprintf(in, sizeof in, "%s<presence/>%s<presence/>", HDR_CLIENT, st);

    lim.max_stanza = 300; /* exactly the size: accepted at every split */
    char *log = check_splits(in, strlen(in), &lim);
    assert_non_null(strstr(log, "S <message><body>xxx"));
    assert_null(strstr(log, "E "));
    assert_non_null(strstr(log, "S <presence/>\nS <message><body>"));
    assert_non_null(strstr(log, "</body></message>\nS <presence/>\n"));
    free(log);

    lim.max_stanza = 299; /* one byte over */
    expect_error(in, strlen(in), &lim, FG_XML_COND_POLICY_VIOLATION);
    log = run_cuts(in, strlen(in), &lim, NULL, 0);
    assert_string_equal(log, "H to=example.com from=- id=- version=1.0 lang=- ns=jabber:client "
                             "prefix=stream decls=2\nS <presence/>\nE policy-violation\n");
    free(log);

    /* an empty-element stanza, exact and one over */
    char e[400];
    snprintf(e, sizeof e, "%s<presence id='%0*d'/>", HDR_CLIENT, 100, 7);
    size_t esize = strlen("<presence id=''/>") + 100;
    lim.max_stanza = esize;
    log = check_splits(e, strlen(e), &lim);
    assert_null(strstr(log, "E "));
    assert_non_null(strstr(log, "S <presence id='"));
    free(log);
    lim.max_stanza = esize - 1;
    expect_error(e, strlen(e), &lim, FG_XML_COND_POLICY_VIOLATION);

    /* the same with a tag big enough to be held back while it trickles in */
    struct fg_buf big = {0};
    fg_buf_puts(&big, HDR_CLIENT "<presence a='");
    for (int i = 0; i < 2980; i++)
        fg_buf_putc(&big, i % 3 ? 'x' : '>');
    fg_buf_puts(&big, "'/><presence/>");
    size_t bsize = 2980 + strlen("<presence a=''/>");
    lim.max_stanza = bsize;
    log = check_splits(big.data, big.len, &lim);
    assert_null(strstr(log, "E "));
    assert_non_null(strstr(log, "'/>\nS <presence/>\n"));
    free(log);
    lim.max_stanza = bsize - 1;
    expect_error(big.data, big.len, &lim, FG_XML_COND_POLICY_VIOLATION);
    fg_buf_free(&big);

    /* a stanza that never ends is cut off as soon as it passes the limit */
    lim.max_stanza = 1000;
    struct rec r;
    rec_init(&r, &lim);
    assert_int_equal(
        fg_xml_parser_feed(r.p, HDR_CLIENT "<message><body>", 15 + strlen(HDR_CLIENT), NULL),
        FG_OK);
    int rc = FG_OK;
    size_t fed = 15;
    while (rc == FG_OK && fed < 5000) {
        rc = fg_xml_parser_feed(r.p, "yyyyyyyyyy", 10, NULL);
        fed += 10;
    }
    assert_int_equal(rc, FG_EINVAL);
    assert_true(fed >= 1000 && fed <= 1010);
    assert_int_equal(fg_xml_parser_error(r.p, NULL), FG_XML_COND_POLICY_VIOLATION);
    rec_done(&r);

    /* so is an opening tag that never ends, and the stream header itself */
    rec_init(&r, &lim);
    fg_xml_parser_feed(r.p, HDR_CLIENT "<message a='", strlen(HDR_CLIENT) + 12, NULL);
    rc = FG_OK;
    for (fed = 12; rc == FG_OK && fed < 5000; fed++)
        rc = fg_xml_parser_feed(r.p, "z", 1, NULL);
    assert_int_equal(rc, FG_EINVAL);
    assert_int_equal(fed, 1000);
    rec_done(&r);
    lim.max_stanza = 60;
    expect_error(HDR_CLIENT, strlen(HDR_CLIENT), &lim, FG_XML_COND_POLICY_VIOLATION);
}

static void test_limit_depth_attrs(void **state)
{
    (void)state;
    struct fg_xml_limits lim;
    fg_xml_limits_default(&lim);
    lim.max_depth = 3;
    expect_log(HDR_CLIENT "<message><a><b/></a></message>", &lim,
               "H to=example.com from=- id=- version=1.0 lang=- ns=jabber:client prefix=stream "
               "decls=2\nS <message><a><b/></a></message>\n");
    char in[256];
    snprintf(in, sizeof in, "%s<message><a><b><c/></b></a></message>", HDR_CLIENT);
    expect_error(in, strlen(in), &lim, FG_XML_COND_POLICY_VIOLATION);

    fg_xml_limits_default(&lim);
    lim.max_attrs = 4; /* the header has 2 declarations and 2 attributes */
    expect_log(HDR_CLIENT "<message a='1' b='2' c='3' d='4'/>", &lim,
               "H to=example.com from=- id=- version=1.0 lang=- ns=jabber:client prefix=stream "
               "decls=2\nS <message a='1' b='2' c='3' d='4'/>\n");
    snprintf(in, sizeof in, "%s<message a='1' b='2' c='3' d='4' e='5'/>", HDR_CLIENT);
    expect_error(in, strlen(in), &lim, FG_XML_COND_POLICY_VIOLATION);
    snprintf(in, sizeof in, "%s<message xmlns:p='urn:p' b='2' c='3' d='4' e='5'/>", HDR_CLIENT);
    expect_error(in, strlen(in), &lim, FG_XML_COND_POLICY_VIOLATION);
    snprintf(in, sizeof in,
             "%s<message><x xmlns='a' xmlns:a='b' xmlns:c='d' xmlns:e='f' "
             "xmlns:g='h'/></message>",
             HDR_CLIENT);
    expect_error(in, strlen(in), &lim, FG_XML_COND_POLICY_VIOLATION);
    lim.max_attrs = 3;
    snprintf(in, sizeof in, "%s", HDR_CLIENT);
    expect_error(in, strlen(in), &lim, FG_XML_COND_POLICY_VIOLATION);
}

static void test_starttls_reset(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r, NULL);
    r.stop_on = "starttls";
    /* pipelined TLS bytes after <starttls/> must not be read as XML */
    static const char in[] = HDR_CLIENT "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
                                        "\x16\x03\x01\x02\x00\x01\xff\xfe";
    size_t consumed = 0;
    assert_int_equal(fg_xml_parser_feed(r.p, in, sizeof in - 1, &consumed), FG_OK);
    assert_int_equal(consumed, sizeof in - 1 - 8);
    assert_int_equal(fg_xml_parser_state(r.p), FG_XML_STATE_STOPPED);
    assert_int_equal(fg_xml_parser_feed(r.p, "<a/>", 4, &consumed), FG_EINVAL);
    assert_int_equal(fg_xml_parser_reset(r.p), FG_OK);
    fg_buf_reset(&r.log);
    r.stop_on = NULL;
    static const char in2[] = "<?xml version='1.0'?>" HDR_CLIENT "<presence/>";
    for (size_t i = 0; i < sizeof in2 - 1; i++)
        assert_int_equal(fg_xml_parser_feed(r.p, in2 + i, 1, NULL), FG_OK);
    assert_string_equal(fg_buf_str(&r.log),
                        "H to=example.com from=- id=- version=1.0 lang=- ns=jabber:client "
                        "prefix=stream decls=2\nS <presence/>\n");
    rec_done(&r);
}

static void test_sasl_restart_pipelined(void **state)
{
    (void)state;
    static const char in[] =
        HDR_CLIENT "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                   "mechanism='PLAIN'>AGp1bGlldABy</auth>" HDR_CLIENT "<iq type='set' id='b'/>";
    for (size_t cut = 0; cut <= sizeof in - 1; cut++) {
        struct rec r;
        rec_init(&r, NULL);
        r.stop_on = "auth";
        size_t done = 0, consumed = 0;
        size_t pieces[2] = {cut, sizeof in - 1};
        for (int k = 0; k < 2; k++) {
            while (done < pieces[k]) {
                assert_int_equal(rec_feed(&r, in, done, pieces[k], &consumed), FG_OK);
                done += consumed;
                if (fg_xml_parser_state(r.p) == FG_XML_STATE_STOPPED) {
                    assert_int_equal(fg_xml_parser_reset(r.p), FG_OK);
                    r.stop_on = NULL;
                }
            }
        }
        assert_string_equal(fg_buf_str(&r.log),
                            "H to=example.com from=- id=- version=1.0 lang=- ns=jabber:client "
                            "prefix=stream decls=2\nS <auth xmlns='urn:ietf:params:xml:ns:xmpp-"
                            "sasl' mechanism='PLAIN'>AGp1bGlldABy</auth>\nH to=example.com "
                            "from=- id=- version=1.0 lang=- ns=jabber:client prefix=stream "
                            "decls=2\nS <iq type='set' id='b'/>\n");
        rec_done(&r);
    }
}

static void test_errors_once_and_no_callbacks(void **state)
{
    (void)state;
    /* error callback exactly once; state and condition kept until reset */
    struct rec r;
    rec_init(&r, NULL);
    assert_int_equal(fg_xml_parser_feed(r.p, HDR_CLIENT "<a></b>", strlen(HDR_CLIENT) + 7, NULL),
                     FG_EINVAL);
    assert_int_equal(fg_xml_parser_feed(r.p, "<c/>", 4, NULL), FG_EINVAL);
    assert_int_equal(r.nerror, 1);
    const char *detail = NULL;
    assert_int_equal(fg_xml_parser_error(r.p, &detail), FG_XML_COND_NOT_WELL_FORMED);
    assert_non_null(detail);
    assert_int_equal(fg_xml_parser_state(r.p), FG_XML_STATE_FAILED);
    assert_int_equal(fg_xml_parser_reset(r.p), FG_OK);
    assert_int_equal(fg_xml_parser_error(r.p, &detail), FG_XML_COND_NONE);
    assert_null(detail);
    assert_int_equal(fg_xml_parser_feed(r.p, HDR_CLIENT, strlen(HDR_CLIENT), NULL), FG_OK);
    assert_int_equal(fg_xml_parser_state(r.p), FG_XML_STATE_OPEN);
    rec_done(&r);

    /* no callbacks at all */
    struct fg_xml_parser *n = fg_xml_parser_new(NULL, NULL, NULL);
    assert_int_equal(fg_xml_parser_feed(n, rich, sizeof rich - 1, NULL), FG_OK);
    assert_int_equal(fg_xml_parser_state(n), FG_XML_STATE_CLOSED);
    fg_xml_parser_free(n);
    assert_string_equal(fg_xml_cond_name(FG_XML_COND_NONE), "");
}

struct stopper {
    struct fg_xml_parser *p;
    int headers;
};

static void stopper_header(void *ud, const struct fg_xml_header *h)
{
    struct stopper *s = ud;
    (void)h;
    s->headers++;
    fg_xml_parser_stop(s->p);
}

static void test_stop_in_header(void **state)
{
    (void)state;
    struct stopper s = {0};
    struct fg_xml_callbacks cb = {.header = stopper_header};
    s.p = fg_xml_parser_new(NULL, &cb, &s);
    size_t consumed = 0;
    assert_int_equal(
        fg_xml_parser_feed(s.p, HDR_CLIENT "<presence/>", strlen(HDR_CLIENT) + 11, &consumed),
        FG_OK);
    assert_int_equal(consumed, strlen(HDR_CLIENT));
    assert_int_equal(s.headers, 1);
    assert_int_equal(fg_xml_parser_state(s.p), FG_XML_STATE_STOPPED);
    fg_xml_parser_stop(s.p); /* outside a callback: no effect */
    fg_xml_parser_free(s.p);
}

/* A huge attribute trickled in byte by byte must cost linear time, not quadratic. */
static void test_trickle_is_linear(void **state)
{
    (void)state;
    struct fg_xml_limits lim;
    fg_xml_limits_default(&lim);
    lim.max_stanza = 1 << 20;
    struct rec r;
    rec_init(&r, &lim);
    r.keep = true;
    const size_t n = 300000;
    assert_int_equal(
        fg_xml_parser_feed(r.p, HDR_CLIENT "<message a='", strlen(HDR_CLIENT) + 12, NULL), FG_OK);
    clock_t t0 = clock();
    for (size_t i = 0; i < n; i++)
        assert_int_equal(fg_xml_parser_feed(r.p, i % 2 ? "x" : ">", 1, NULL), FG_OK);
    assert_int_equal(r.nstanza, 0);
    assert_int_equal(fg_xml_parser_feed(r.p, "'", 1, NULL), FG_OK);
    assert_int_equal(r.nstanza, 0);
    assert_int_equal(fg_xml_parser_feed(r.p, "/", 1, NULL), FG_OK);
    assert_int_equal(fg_xml_parser_feed(r.p, ">", 1, NULL), FG_OK);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    assert_int_equal(r.nstanza, 1);
    assert_int_equal(fg_xml_attr_find(r.kept[0], NULL, "a")->value_len, n);
    /* quadratic re-scanning would take minutes here */
    if (secs > 10)
        fail_msg("trickling %zu bytes took %.1f s", n, secs);
    rec_done(&r);

    /* the same holds for a comment and a PI: rejected once complete */
    for (int kind = 0; kind < 3; kind++) {
        rec_init(&r, &lim);
        const char *open = kind == 0 ? "<!--" : kind == 1 ? "<?pi " : "<message>&";
        fg_xml_parser_feed(r.p, HDR_CLIENT, strlen(HDR_CLIENT), NULL);
        fg_xml_parser_feed(r.p, open, strlen(open), NULL);
        int rc = FG_OK;
        for (size_t i = 0; i < 50000 && rc == FG_OK; i++)
            rc = fg_xml_parser_feed(r.p,
                                    kind == 0 && i % 2 == 0 ? "-"
                                    : kind == 0             ? "x"
                                                            : "a",
                                    1, NULL);
        assert_int_equal(rc, FG_OK);
        const char *close = kind == 0 ? "-->" : kind == 1 ? "?>" : ";";
        rc = fg_xml_parser_feed(r.p, close, strlen(close), NULL);
        assert_int_equal(rc, FG_EINVAL);
        assert_int_equal(fg_xml_parser_error(r.p, NULL), FG_XML_COND_RESTRICTED_XML);
        rec_done(&r);
    }
}

/* Large tags cut at every byte (the held-back path) give the same events. */
static void test_large_tags_every_split(void **state)
{
    (void)state;
    struct fg_buf in = {0};
    fg_buf_puts(&in, HDR_CLIENT "<message to='");
    for (int i = 0; i < 300; i++)
        fg_buf_puts(&in, "a>\"b");
    fg_buf_puts(&in, "' id=\"");
    for (int i = 0; i < 300; i++)
        fg_buf_puts(&in, "c'd<");
    in.len -= 1; /* drop the last '<' */
    fg_buf_puts(&in, "\"   >text</message  ><presence/>");
    char *log = check_splits(in.data, in.len, NULL);
    assert_non_null(strstr(log, "E not-well-formed")); /* '<' in an attribute value */
    free(log);

    fg_buf_reset(&in);
    fg_buf_puts(&in, HDR_CLIENT "<message to='");
    for (int i = 0; i < 600; i++)
        fg_buf_puts(&in, "a>\"b");
    fg_buf_puts(&in, "'\n\t>text</message  ><presence/><");
    for (int i = 0; i < 1500; i++)
        fg_buf_putc(&in, 'n');
    fg_buf_puts(&in, "/>");
    log = check_splits(in.data, in.len, NULL);
    assert_null(strstr(log, "E "));
    assert_non_null(strstr(log, "S <presence/>\nS <nnnnn"));
    free(log);
    fg_buf_free(&in);
}

static void test_trim_and_recycle(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r, NULL);
    static const char hdr[] = "<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:"
                              "dialback' xmlns:stream='http://etherx.jabber.org/streams' "
                              "xml:lang='en'>";
    assert_int_equal(fg_xml_parser_trim(r.p), FG_EBUSY); /* no header yet */
    assert_int_equal(fg_xml_parser_feed(r.p, hdr, sizeof hdr - 1, NULL), FG_OK);
    assert_int_equal(fg_xml_parser_feed(r.p, "<db:result to='a'>k</db", 23, NULL), FG_OK);
    assert_int_equal(fg_xml_parser_trim(r.p), FG_EBUSY); /* mid-stanza */
    assert_int_equal(fg_xml_parser_feed(r.p, ":result>", 8, NULL), FG_OK);
    size_t before = fg_xml_parser_memory(r.p);
    assert_int_equal(fg_xml_parser_trim(r.p), FG_OK);
    size_t after = fg_xml_parser_memory(r.p);
    assert_true(after + 4000 < before);
    assert_true(after < 4096);
    assert_int_equal(fg_xml_parser_trim(r.p), FG_OK);
    static const char more[] = "<db:verify id='1'>x</db:verify> <message xml:lang='de'><body>"
                               "Hallo</body></message></stream:stream>";
    assert_int_equal(fg_xml_parser_feed(r.p, more, sizeof more - 1, NULL), FG_OK);
    assert_string_equal(fg_buf_str(&r.log),
                        "H to=- from=- id=- version=- lang=en ns=jabber:server prefix=stream "
                        "decls=3\nS <db:result to='a'>k</db:result>\nS <db:verify id='1'>x"
                        "</db:verify>\nS <message xml:lang='de'><body>Hallo</body></message>\nC\n");
    rec_done(&r);

    /* errors after a rebuild still point at the right place and condition */
    rec_init(&r, NULL);
    fg_xml_parser_feed(r.p, HDR_CLIENT "<presence/>", strlen(HDR_CLIENT) + 11, NULL);
    assert_int_equal(fg_xml_parser_trim(r.p), FG_OK);
    assert_int_equal(fg_xml_parser_feed(r.p, "<a></b>", 7, NULL), FG_EINVAL);
    assert_int_equal(fg_xml_parser_error(r.p, NULL), FG_XML_COND_NOT_WELL_FORMED);
    rec_done(&r);

    /* many distinct names and big reads do not make the parser grow for ever */
    rec_init(&r, NULL);
    fg_xml_parser_feed(r.p, HDR_CLIENT, strlen(HDR_CLIENT), NULL);
    size_t peak = 0;
    for (int i = 0; i < 20000; i++) {
        char st[128];
        int n = snprintf(st, sizeof st, "<message><e%d a%d='1'/></message>", i, i);
        assert_int_equal(fg_xml_parser_feed(r.p, st, (size_t)n, NULL), FG_OK);
        size_t m = fg_xml_parser_memory(r.p);
        if (m > peak)
            peak = m;
    }
    assert_int_equal(r.nstanza, 20000);
    assert_true(peak < 40 * 1024);
    struct fg_buf big = {0};
    for (int i = 0; i < 2000; i++)
        fg_buf_puts(&big, "<presence/>              ");
    assert_int_equal(fg_xml_parser_feed(r.p, big.data, big.len, NULL), FG_OK);
    assert_true(fg_xml_parser_memory(r.p) < 36 * 1024);
    fg_buf_free(&big);
    rec_done(&r);
}

/* parse -> serialize -> parse gives equal trees, with and without a scope */
static void test_round_trip(void **state)
{
    (void)state;
    struct rec r;
    rec_init(&r, NULL);
    r.keep = true;
    assert_int_equal(fg_xml_parser_feed(r.p, rich, sizeof rich - 1, NULL), FG_OK);
    assert_int_equal(r.nkept, 5);
    for (int with_scope = 0; with_scope < 2; with_scope++) {
        struct fg_xml_scope sc;
        fg_xml_scope_init(&sc, FG_XML_NS_CLIENT);
        fg_xml_scope_bind(&sc, "db", FG_XML_NS_DIALBACK);
        struct fg_buf b = {0};
        if (with_scope)
            fg_xml_serialize_header(&b, &sc, true, "example.com", NULL, NULL, "1.0", NULL);
        else
            fg_buf_puts(&b, "<stream:stream xmlns:stream='http://etherx.jabber.org/streams' "
                            "xmlns='urn:unrelated'>");
        for (unsigned i = 0; i < r.nkept; i++) {
            fg_buf_puts(&b, "\n");
            fg_xml_serialize(&b, r.kept[i], with_scope ? &sc : NULL);
        }
        fg_xml_serialize_close(&b, &sc);
        struct rec r2;
        rec_init(&r2, NULL);
        r2.keep = true;
        assert_int_equal(fg_xml_parser_feed(r2.p, b.data, b.len, NULL), FG_OK);
        assert_int_equal(fg_xml_parser_state(r2.p), FG_XML_STATE_CLOSED);
        assert_int_equal(r2.nkept, r.nkept);
        for (unsigned i = 0; i < r.nkept; i++)
            if (!fg_xml_equal(r.kept[i], r2.kept[i]))
                fail_msg("stanza %u differs after a round trip:\n%s", i, b.data);
        rec_done(&r2);
        fg_buf_free(&b);
    }
    rec_done(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_tree_build),
        cmocka_unit_test(test_serialize_escaping),
        cmocka_unit_test(test_serialize_namespaces),
        cmocka_unit_test(test_wellformed_stream),
        cmocka_unit_test(test_tree_from_parser),
        cmocka_unit_test(test_events_are_timely),
        cmocka_unit_test(test_keepalive_and_close),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_restricted),
        cmocka_unit_test(test_encoding),
        cmocka_unit_test(test_namespaces),
        cmocka_unit_test(test_namespace_sharing),
        cmocka_unit_test(test_held_bytes_then_bad_utf8),
        cmocka_unit_test(test_limit_stanza_size),
        cmocka_unit_test(test_limit_depth_attrs),
        cmocka_unit_test(test_starttls_reset),
        cmocka_unit_test(test_sasl_restart_pipelined),
        cmocka_unit_test(test_errors_once_and_no_callbacks),
        cmocka_unit_test(test_stop_in_header),
        cmocka_unit_test(test_trickle_is_linear),
        cmocka_unit_test(test_large_tags_every_split),
        cmocka_unit_test(test_trim_and_recycle),
        cmocka_unit_test(test_round_trip),
    };
    return cmocka_run_group_tests_name("xml", tests, NULL, NULL);
}
