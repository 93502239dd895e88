/* stanza.c - arena-allocated element trees: building, lookup, copy, comparison and
 * serialization with escaping and minimal namespace declarations. No parsing here. */
#include "xml/stanza.h"
#include "core/err.h"

#include <stdio.h>
#include <string.h>

/* Frequent namespace names, shared by every tree instead of copied into each. */
static const struct {
    const char *s;
    size_t len;
} well_known[] = {
/* clang-format off */
#define NS(x) {x, sizeof(x) - 1}
    NS(FG_XML_NS_CLIENT),
    NS(FG_XML_NS_SERVER),
    NS(FG_XML_NS_STREAMS),
    NS(FG_XML_NS_XML),
    NS(FG_XML_NS_DIALBACK),
    NS(FG_XML_NS_COMPONENT),
    NS(FG_XML_NS_STREAM_ERRORS),
    NS(FG_XML_NS_STANZA_ERRORS),
    NS(FG_XML_NS_TLS),
    NS(FG_XML_NS_SASL),
    NS(FG_XML_NS_BIND),
    NS(FG_XML_NS_SESSION),
    NS("jabber:iq:roster"),
    NS("jabber:iq:version"),
    NS("jabber:iq:private"),
    NS("jabber:x:data"),
    NS("urn:xmpp:ping"),
    NS("urn:xmpp:delay"),
    NS("urn:xmpp:receipts"),
    NS("urn:xmpp:sid:0"),
    NS("urn:xmpp:hints"),
    NS("urn:xmpp:carbons:2"),
    NS("urn:xmpp:mam:2"),
    NS("urn:xmpp:sm:3"),
    NS("urn:xmpp:chat-markers:0"),
    NS("urn:xmpp:features:rosterver"),
    NS("urn:xmpp:features:pre-approval"),
    NS("http://jabber.org/protocol/chatstates"),
    NS("http://jabber.org/protocol/caps"),
    NS("http://jabber.org/protocol/disco#info"),
    NS("http://jabber.org/protocol/disco#items"),
    NS("http://jabber.org/protocol/muc"),
    NS("http://jabber.org/protocol/muc#user"),
    NS("http://jabber.org/protocol/pubsub"),
    NS("http://jabber.org/protocol/pubsub#event"),
    NS("http://jabber.org/protocol/xhtml-im"),
    NS("http://www.w3.org/1999/xhtml"),
    NS("vcard-temp"),
    NS("vcard-temp:x:update"),
    NS("eu.siacs.conversations.axolotl"),
#undef NS
    /* clang-format on */
};

bool fg_xml_ns_eq(const char *a, const char *b)
{
    if (a == b)
        return true;
    return strcmp(a ? a : "", b ? b : "") == 0;
}

const char *fg_xml_ns_static(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof well_known / sizeof well_known[0]; i++)
        if (well_known[i].len == len && memcmp(well_known[i].s, s, len) == 0)
            return well_known[i].s;
    return NULL;
}

static const char *ns_copy(struct fg_arena *a, const char *ns)
{
    if (!ns || !*ns)
        return "";
    size_t len = strlen(ns);
    const char *st = fg_xml_ns_static(ns, len);
    return st ? st : fg_arena_strndup(a, ns, len);
}

/* --- building --- */

static struct fg_xml_node *node_new(struct fg_arena *a, enum fg_xml_type type)
{
    struct fg_xml_node *n = fg_arena_zalloc(a, sizeof *n);
    n->type = (uint8_t)type;
    return n;
}

struct fg_xml_node *fg_xml_element_new(struct fg_arena *a, const char *name, const char *ns)
{
    struct fg_xml_node *n = node_new(a, FG_XML_ELEMENT);
    size_t len = strlen(name);
    n->name = fg_arena_strndup(a, name, len);
    n->name_len = (uint32_t)len;
    n->ns = ns_copy(a, ns);
    return n;
}

struct fg_xml_node *fg_xml_text_new(struct fg_arena *a, const char *s, size_t len)
{
    struct fg_xml_node *n = node_new(a, FG_XML_TEXT);
    n->text = fg_arena_strndup(a, s, len);
    n->text_len = (uint32_t)len;
    return n;
}

void fg_xml_append(struct fg_xml_node *parent, struct fg_xml_node *child)
{
    child->next = NULL;
    if (parent->last_child)
        parent->last_child->next = child;
    else
        parent->children = child;
    parent->last_child = child;
}

struct fg_xml_node *fg_xml_add_child(struct fg_arena *a, struct fg_xml_node *parent,
                                     const char *name, const char *ns)
{
    struct fg_xml_node *n;
    if (ns) {
        n = fg_xml_element_new(a, name, ns);
    } else {
        n = fg_xml_element_new(a, name, NULL);
        n->ns = parent->ns; /* same tree, same arena: share the string */
    }
    fg_xml_append(parent, n);
    return n;
}

void fg_xml_add_text(struct fg_arena *a, struct fg_xml_node *parent, const char *s, size_t len)
{
    struct fg_xml_node *last = parent->last_child;
    if (last && last->type == FG_XML_TEXT) {
        size_t old = last->text_len;
        char *t = fg_arena_grow(a, (char *)last->text, old + 1, old + len + 1);
        memcpy(t + old, s, len);
        t[old + len] = '\0';
        last->text = t;
        last->text_len = (uint32_t)(old + len);
        return;
    }
    fg_xml_append(parent, fg_xml_text_new(a, s, len));
}

static struct fg_xml_attr *attr_slot(struct fg_arena *a, struct fg_xml_node *n)
{
    if (n->nattrs == n->attr_cap) {
        uint32_t cap = n->attr_cap ? n->attr_cap * 2 : 4;
        struct fg_xml_attr *na = fg_arena_alloc(a, cap * sizeof *na);
        if (n->nattrs)
            memcpy(na, n->attrs, n->nattrs * sizeof *na);
        n->attrs = na;
        n->attr_cap = cap;
    }
    return &n->attrs[n->nattrs++];
}

void fg_xml_set_attr_ns(struct fg_arena *a, struct fg_xml_node *n, const char *ns, const char *name,
                        const char *value)
{
    struct fg_xml_attr *at = (struct fg_xml_attr *)fg_xml_attr_find(n, ns, name);
    if (!at) {
        at = attr_slot(a, n);
        size_t nl = strlen(name);
        at->name = fg_arena_strndup(a, name, nl);
        at->name_len = (uint32_t)nl;
        at->ns = ns && *ns ? ns_copy(a, ns) : NULL;
    }
    size_t vl = strlen(value);
    at->value = fg_arena_strndup(a, value, vl);
    at->value_len = (uint32_t)vl;
}

void fg_xml_set_attr(struct fg_arena *a, struct fg_xml_node *n, const char *name, const char *value)
{
    fg_xml_set_attr_ns(a, n, NULL, name, value);
}

int fg_xml_remove_attr(struct fg_xml_node *n, const char *name)
{
    for (uint32_t i = 0; i < n->nattrs; i++) {
        if (!n->attrs[i].ns && strcmp(n->attrs[i].name, name) == 0) {
            memmove(&n->attrs[i], &n->attrs[i + 1], (n->nattrs - i - 1) * sizeof n->attrs[0]);
            n->nattrs--;
            return FG_OK;
        }
    }
    return FG_ENOTFOUND;
}

struct fg_xml_node *fg_xml_copy(struct fg_arena *a, const struct fg_xml_node *n)
{
    if (n->type == FG_XML_TEXT)
        return fg_xml_text_new(a, n->text, n->text_len);
    struct fg_xml_node *c = node_new(a, FG_XML_ELEMENT);
    c->name = fg_arena_strndup(a, n->name, n->name_len);
    c->name_len = n->name_len;
    c->ns = ns_copy(a, n->ns);
    if (n->nattrs) {
        c->attrs = fg_arena_alloc(a, n->nattrs * sizeof *c->attrs);
        c->nattrs = c->attr_cap = n->nattrs;
        for (uint32_t i = 0; i < n->nattrs; i++) {
            const struct fg_xml_attr *s = &n->attrs[i];
            struct fg_xml_attr *d = &c->attrs[i];
            d->name = fg_arena_strndup(a, s->name, s->name_len);
            d->name_len = s->name_len;
            d->value = fg_arena_strndup(a, s->value, s->value_len);
            d->value_len = s->value_len;
            d->ns = s->ns && *s->ns ? ns_copy(a, s->ns) : NULL;
        }
    }
    for (const struct fg_xml_node *k = n->children; k; k = k->next) {
        struct fg_xml_node *kc = fg_xml_copy(a, k);
        if (kc->type == FG_XML_ELEMENT && fg_xml_ns_eq(k->ns, n->ns))
            kc->ns = c->ns;
        fg_xml_append(c, kc);
    }
    return c;
}

/* --- reading --- */

const struct fg_xml_attr *fg_xml_attr_find(const struct fg_xml_node *n, const char *ns,
                                           const char *name)
{
    bool qualified = ns && *ns;
    for (uint32_t i = 0; i < n->nattrs; i++) {
        const struct fg_xml_attr *at = &n->attrs[i];
        if (strcmp(at->name, name) != 0)
            continue;
        if (qualified ? (at->ns && fg_xml_ns_eq(at->ns, ns)) : !at->ns)
            return at;
    }
    return NULL;
}

const char *fg_xml_attr(const struct fg_xml_node *n, const char *name)
{
    for (uint32_t i = 0; i < n->nattrs; i++)
        if (!n->attrs[i].ns && strcmp(n->attrs[i].name, name) == 0)
            return n->attrs[i].value;
    return NULL;
}

static bool matches(const struct fg_xml_node *k, const char *name, const char *ns)
{
    return k->type == FG_XML_ELEMENT && (!name || strcmp(k->name, name) == 0) &&
           (!ns || fg_xml_ns_eq(k->ns, ns));
}

struct fg_xml_node *fg_xml_child(const struct fg_xml_node *n, const char *name, const char *ns)
{
    for (struct fg_xml_node *k = n->children; k; k = k->next)
        if (matches(k, name, ns))
            return k;
    return NULL;
}

struct fg_xml_node *fg_xml_next(const struct fg_xml_node *after, const char *name, const char *ns)
{
    for (struct fg_xml_node *k = after->next; k; k = k->next)
        if (matches(k, name, ns))
            return k;
    return NULL;
}

const char *fg_xml_text(const struct fg_xml_node *n, size_t *len)
{
    if (n->type != FG_XML_TEXT) {
        const struct fg_xml_node *k = n->children;
        while (k && k->type != FG_XML_TEXT)
            k = k->next;
        n = k;
    }
    if (len)
        *len = n ? n->text_len : 0;
    return n ? n->text : "";
}

bool fg_xml_equal(const struct fg_xml_node *a, const struct fg_xml_node *b)
{
    if (a->type != b->type)
        return false;
    if (a->type == FG_XML_TEXT)
        return a->text_len == b->text_len && memcmp(a->text, b->text, a->text_len) == 0;
    if (a->name_len != b->name_len || strcmp(a->name, b->name) != 0 ||
        !fg_xml_ns_eq(a->ns, b->ns) || a->nattrs != b->nattrs)
        return false;
    for (uint32_t i = 0; i < a->nattrs; i++) {
        const struct fg_xml_attr *x = &a->attrs[i];
        const struct fg_xml_attr *y = fg_xml_attr_find(b, x->ns, x->name);
        if (!y || y->value_len != x->value_len || memcmp(x->value, y->value, x->value_len))
            return false;
    }
    const struct fg_xml_node *x = a->children, *y = b->children;
    for (; x && y; x = x->next, y = y->next)
        if (!fg_xml_equal(x, y))
            return false;
    return !x && !y;
}

/* --- serializing --- */

void fg_xml_scope_init(struct fg_xml_scope *s, const char *default_ns)
{
    memset(s, 0, sizeof *s);
    s->default_ns = default_ns;
    s->bind[0].prefix = "stream";
    s->bind[0].uri = FG_XML_NS_STREAMS;
    s->n = 1;
}

int fg_xml_scope_bind(struct fg_xml_scope *s, const char *prefix, const char *uri)
{
    for (unsigned i = 0; i < s->n; i++)
        if (strcmp(s->bind[i].prefix, prefix) == 0)
            return FG_EEXISTS;
    if (s->n == FG_XML_SCOPE_MAX)
        return FG_ELIMIT;
    s->bind[s->n].prefix = prefix;
    s->bind[s->n].uri = uri;
    s->n++;
    return FG_OK;
}

static const char *scope_prefix(const struct fg_xml_scope *s, const char *ns)
{
    if (!s)
        return NULL;
    for (unsigned i = 0; i < s->n; i++)
        if (fg_xml_ns_eq(s->bind[i].uri, ns))
            return s->bind[i].prefix;
    return NULL;
}

static bool scope_has_prefix(const struct fg_xml_scope *s, const char *prefix)
{
    if (!s)
        return false;
    for (unsigned i = 0; i < s->n; i++)
        if (strcmp(s->bind[i].prefix, prefix) == 0)
            return true;
    return false;
}

/* 1 for bytes that need escaping in character data, 2 in attribute values, 3 both. */
static const unsigned char esc_class[256] = {
    ['&'] = 3, ['<'] = 3, ['>'] = 3, ['\r'] = 3, ['"'] = 2, ['\''] = 2, ['\t'] = 2, ['\n'] = 2,
};

static void escape(struct fg_buf *b, const char *s, size_t len, unsigned mask)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(esc_class[c] & mask))
            continue;
        if (i > start)
            fg_buf_append(b, s + start, i - start);
        start = i + 1;
        switch (c) {
        case '&':
            fg_buf_append(b, "&amp;", 5);
            break;
        case '<':
            fg_buf_append(b, "&lt;", 4);
            break;
        case '>':
            fg_buf_append(b, "&gt;", 4);
            break;
        case '"':
            fg_buf_append(b, "&quot;", 6);
            break;
        case '\'':
            fg_buf_append(b, "&apos;", 6);
            break;
        case '\t':
            fg_buf_append(b, "&#9;", 4);
            break;
        case '\n':
            fg_buf_append(b, "&#10;", 5);
            break;
        default:
            fg_buf_append(b, "&#13;", 5);
            break;
        }
    }
    if (len > start)
        fg_buf_append(b, s + start, len - start);
}

void fg_xml_escape_text(struct fg_buf *b, const char *s, size_t len)
{
    escape(b, s, len, 1);
}

void fg_xml_escape_attr(struct fg_buf *b, const char *s, size_t len)
{
    escape(b, s, len, 2);
}

static void put_attr(struct fg_buf *b, const char *prefix, const char *name, size_t name_len,
                     const char *value, size_t value_len)
{
    fg_buf_putc(b, ' ');
    if (prefix) {
        fg_buf_puts(b, prefix);
        fg_buf_putc(b, ':');
    }
    fg_buf_append(b, name, name_len);
    fg_buf_append(b, "='", 2);
    escape(b, value, value_len, 2);
    fg_buf_putc(b, '\'');
}

/* Namespaced attributes other than xml:* and the scope's get a prefix declared on
 * their element: ns0, ns1, ... (skipping names the scope uses), one per namespace. */
static void ser_attrs(struct fg_buf *b, const struct fg_xml_node *n, const struct fg_xml_scope *s)
{
    enum { MEMO = 8 };
    const char *memo_ns[MEMO];
    unsigned memo_seq[MEMO];
    unsigned nmemo = 0, seq = 0;
    for (uint32_t i = 0; i < n->nattrs; i++) {
        const struct fg_xml_attr *at = &n->attrs[i];
        const char *prefix = NULL;
        char gen[16];
        if (!at->ns || !*at->ns) {
            /* unqualified */
        } else if (fg_xml_ns_eq(at->ns, FG_XML_NS_XML)) {
            prefix = "xml";
        } else if ((prefix = scope_prefix(s, at->ns)) == NULL) {
            unsigned k = 0;
            while (k < nmemo && !fg_xml_ns_eq(memo_ns[k], at->ns))
                k++;
            if (k < nmemo) {
                snprintf(gen, sizeof gen, "ns%u", memo_seq[k]);
            } else {
                do
                    snprintf(gen, sizeof gen, "ns%u", seq++);
                while (scope_has_prefix(s, gen));
                if (nmemo < MEMO) {
                    memo_ns[nmemo] = at->ns;
                    memo_seq[nmemo++] = seq - 1;
                }
                fg_buf_append(b, " xmlns:", 7);
                fg_buf_puts(b, gen);
                fg_buf_append(b, "='", 2);
                escape(b, at->ns, strlen(at->ns), 2);
                fg_buf_putc(b, '\'');
            }
            prefix = gen;
        }
        put_attr(b, prefix, at->name, at->name_len, at->value, at->value_len);
    }
}

static void ser_node(struct fg_buf *b, const struct fg_xml_node *n, const struct fg_xml_scope *s,
                     const char *cur_default)
{
    if (n->type == FG_XML_TEXT) {
        escape(b, n->text, n->text_len, 1);
        return;
    }
    const char *ns = n->ns ? n->ns : "";
    const char *prefix = NULL;
    const char *child_default = cur_default;
    bool declare = false;
    if (fg_xml_ns_eq(ns, cur_default)) {
        /* inherited */
    } else if (*ns && (prefix = scope_prefix(s, ns)) != NULL) {
        /* spelled with a prefix the stream header declared */
    } else {
        declare = true;
        child_default = ns;
    }
    fg_buf_putc(b, '<');
    if (prefix) {
        fg_buf_puts(b, prefix);
        fg_buf_putc(b, ':');
    }
    fg_buf_append(b, n->name, n->name_len);
    if (declare) {
        fg_buf_append(b, " xmlns='", 8);
        escape(b, ns, strlen(ns), 2);
        fg_buf_putc(b, '\'');
    }
    ser_attrs(b, n, s);
    if (!n->children) {
        fg_buf_append(b, "/>", 2);
        return;
    }
    fg_buf_putc(b, '>');
    for (const struct fg_xml_node *k = n->children; k; k = k->next)
        ser_node(b, k, s, child_default);
    fg_buf_append(b, "</", 2);
    if (prefix) {
        fg_buf_puts(b, prefix);
        fg_buf_putc(b, ':');
    }
    fg_buf_append(b, n->name, n->name_len);
    fg_buf_putc(b, '>');
}

void fg_xml_serialize(struct fg_buf *b, const struct fg_xml_node *n,
                      const struct fg_xml_scope *scope)
{
    ser_node(b, n, scope, scope ? scope->default_ns : NULL);
}

static void put_opt_attr(struct fg_buf *b, const char *name, const char *value)
{
    if (value)
        put_attr(b, NULL, name, strlen(name), value, strlen(value));
}

void fg_xml_serialize_header(struct fg_buf *b, const struct fg_xml_scope *scope, bool xml_decl,
                             const char *to, const char *from, const char *id, const char *version,
                             const char *lang)
{
    const char *sp = scope_prefix(scope, FG_XML_NS_STREAMS);
    if (xml_decl)
        fg_buf_puts(b, "<?xml version='1.0'?>");
    fg_buf_putc(b, '<');
    fg_buf_puts(b, sp ? sp : "stream");
    fg_buf_append(b, ":stream", 7);
    if (scope && scope->default_ns && *scope->default_ns) {
        fg_buf_append(b, " xmlns='", 8);
        escape(b, scope->default_ns, strlen(scope->default_ns), 2);
        fg_buf_putc(b, '\'');
    }
    if (!sp)
        fg_buf_puts(b, " xmlns:stream='" FG_XML_NS_STREAMS "'");
    for (unsigned i = 0; scope && i < scope->n; i++) {
        fg_buf_append(b, " xmlns:", 7);
        fg_buf_puts(b, scope->bind[i].prefix);
        fg_buf_append(b, "='", 2);
        escape(b, scope->bind[i].uri, strlen(scope->bind[i].uri), 2);
        fg_buf_putc(b, '\'');
    }
    put_opt_attr(b, "to", to);
    put_opt_attr(b, "from", from);
    put_opt_attr(b, "id", id);
    put_opt_attr(b, "version", version);
    if (lang)
        put_attr(b, "xml", "lang", 4, lang, strlen(lang));
    fg_buf_putc(b, '>');
}

void fg_xml_serialize_close(struct fg_buf *b, const struct fg_xml_scope *scope)
{
    const char *sp = scope_prefix(scope, FG_XML_NS_STREAMS);
    fg_buf_append(b, "</", 2);
    fg_buf_puts(b, sp ? sp : "stream");
    fg_buf_append(b, ":stream>", 8);
}
