/* stanza.h - arena-allocated XML element trees: building, lookup, copy, comparison and
 * the serializer (escaping, namespace declarations, stream header). No parsing here
 * (xml/parser.h), and no XMPP semantics beyond well-known namespace names. */

/* Strings in a tree are NUL-terminated UTF-8 without NUL inside, and their lengths
 * travel with them. Namespaces are resolved: a node holds its namespace name, never a
 * prefix; the serializer chooses how to spell it. Functions that cannot fail return
 * void or a pointer (out of memory aborts); the rest return 0 or a negative FG_E*. */
#ifndef FG_XML_STANZA_H
#define FG_XML_STANZA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "xml/arena.h"

#define FG_XML_NS_STREAMS "http://etherx.jabber.org/streams"
#define FG_XML_NS_CLIENT "jabber:client"
#define FG_XML_NS_SERVER "jabber:server"
#define FG_XML_NS_COMPONENT "jabber:component:accept"
#define FG_XML_NS_DIALBACK "jabber:server:dialback"
#define FG_XML_NS_XML "http://www.w3.org/XML/1998/namespace"
#define FG_XML_NS_STREAM_ERRORS "urn:ietf:params:xml:ns:xmpp-streams"
#define FG_XML_NS_STANZA_ERRORS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define FG_XML_NS_TLS "urn:ietf:params:xml:ns:xmpp-tls"
#define FG_XML_NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define FG_XML_NS_BIND "urn:ietf:params:xml:ns:xmpp-bind"
#define FG_XML_NS_SESSION "urn:ietf:params:xml:ns:xmpp-session"

enum fg_xml_type {
    FG_XML_ELEMENT = 0,
    FG_XML_TEXT = 1,
};

struct fg_xml_attr {
    const char *name;  /* local name */
    const char *ns;    /* NULL for an unqualified attribute (the usual case); xml:lang
                        * has FG_XML_NS_XML */
    const char *value; /* unescaped */
    uint32_t name_len;
    uint32_t value_len;
};

struct fg_xml_node {
    struct fg_xml_node *next;     /* next sibling */
    struct fg_xml_node *children; /* first child, element or text, in document order */
    struct fg_xml_node *last_child;
    union {
        const char *name; /* element: local name */
        const char *text; /* text node: the characters, unescaped */
    };
    const char *ns;            /* element: namespace name, "" for none; text node: NULL */
    struct fg_xml_attr *attrs; /* element: nattrs attributes in document order */
    union {
        uint32_t name_len;
        uint32_t text_len;
    };
    uint32_t nattrs;
    uint32_t attr_cap;
    uint8_t type; /* enum fg_xml_type */
};

/* --- namespaces --- */

/* Equal namespace names; NULL and "" both mean "no namespace". */
bool fg_xml_ns_eq(const char *a, const char *b);

/* The static copy of a well-known namespace name (the FG_XML_NS_* above and other
 * frequent ones), or NULL. Trees point at these instead of copying them. */
const char *fg_xml_ns_static(const char *s, size_t len);

/* --- building; every string is copied into the arena --- */

/* An element named `name` in namespace ns (NULL or "" = none). */
struct fg_xml_node *fg_xml_element_new(struct fg_arena *a, const char *name, const char *ns);
/* A text node holding s[0..len). */
struct fg_xml_node *fg_xml_text_new(struct fg_arena *a, const char *s, size_t len);
/* Appends child (with its subtree) as the last child of parent. */
void fg_xml_append(struct fg_xml_node *parent, struct fg_xml_node *child);
/* New element appended to parent; ns NULL = the parent's namespace. */
struct fg_xml_node *fg_xml_add_child(struct fg_arena *a, struct fg_xml_node *parent,
                                     const char *name, const char *ns);
/* Appends text, merged into the last child when that is already text. */
void fg_xml_add_text(struct fg_arena *a, struct fg_xml_node *parent, const char *s, size_t len);
/* Sets (replaces or adds) attribute name in namespace ns (NULL = unqualified). */
void fg_xml_set_attr_ns(struct fg_arena *a, struct fg_xml_node *n, const char *ns, const char *name,
                        const char *value);
void fg_xml_set_attr(struct fg_arena *a, struct fg_xml_node *n, const char *name,
                     const char *value);
/* Removes an unqualified attribute; returns 0, or FG_ENOTFOUND. */
int fg_xml_remove_attr(struct fg_xml_node *n, const char *name);
/* Deep copy of n (its siblings excluded) into arena a. */
struct fg_xml_node *fg_xml_copy(struct fg_arena *a, const struct fg_xml_node *n);

/* --- reading --- */

/* The value of the unqualified attribute `name`, or NULL. */
const char *fg_xml_attr(const struct fg_xml_node *n, const char *name);
/* The attribute (ns NULL = unqualified), with its lengths, or NULL. */
const struct fg_xml_attr *fg_xml_attr_find(const struct fg_xml_node *n, const char *ns,
                                           const char *name);
/* The first child element named `name` (NULL = any) in namespace ns (NULL = any). */
struct fg_xml_node *fg_xml_child(const struct fg_xml_node *n, const char *name, const char *ns);
/* The next sibling element after `after` matching name and ns, as in fg_xml_child. */
struct fg_xml_node *fg_xml_next(const struct fg_xml_node *after, const char *name, const char *ns);
/* The text of element n: its first text child ("" when it has none). Parsed trees
 * hold each run of character data in one text node, so for an element without child
 * elements (<body>, <status>) this is its whole text. len may be NULL. */
const char *fg_xml_text(const struct fg_xml_node *n, size_t *len);
/* Same name, namespace, attributes (as a set of name, namespace and value) and
 * children, recursively. */
bool fg_xml_equal(const struct fg_xml_node *a, const struct fg_xml_node *b);

/* --- serializing --- */

#define FG_XML_SCOPE_MAX 4

/* What the receiving side already has in scope: the stream's default (content)
 * namespace and the prefixes declared on the stream header we sent. */
struct fg_xml_scope {
    const char *default_ns; /* NULL = none */
    unsigned n;
    struct {
        const char *prefix;
        const char *uri;
    } bind[FG_XML_SCOPE_MAX];
};

/* default_ns as given (not copied); binds "stream" to FG_XML_NS_STREAMS. */
void fg_xml_scope_init(struct fg_xml_scope *s, const char *default_ns);
/* Adds a prefix binding (strings not copied), e.g. "db" -> FG_XML_NS_DIALBACK.
 * Returns 0, FG_EEXISTS when the prefix is bound already, FG_ELIMIT when full. */
int fg_xml_scope_bind(struct fg_xml_scope *s, const char *prefix, const char *uri);

/* Appends n (element or text) to b. scope NULL means nothing is in scope (a
 * standalone document). An element whose namespace is the default in scope gets no
 * xmlns; one whose namespace is bound to a scope prefix is written with that prefix
 * (stream:features, db:result); otherwise xmlns='...' is written on it, and only where
 * it differs from the parent's. Namespaced attributes other than xml:* get a prefix
 * declared on their element. To turn a jabber:client stanza into jabber:server, pass a
 * scope whose default_ns is the stanza's own namespace: nothing is declared and the
 * receiver reads the content namespace of its stream. */
void fg_xml_serialize(struct fg_buf *b, const struct fg_xml_node *n,
                      const struct fg_xml_scope *scope);

/* Appends "<?xml version='1.0'?>" (when xml_decl) and the opening stream tag with the
 * scope's declarations and the given attributes (NULL = omitted). */
void fg_xml_serialize_header(struct fg_buf *b, const struct fg_xml_scope *scope, bool xml_decl,
                             const char *to, const char *from, const char *id, const char *version,
                             const char *lang);
/* Appends the closing stream tag, spelled with the scope's stream prefix. */
void fg_xml_serialize_close(struct fg_buf *b, const struct fg_xml_scope *scope);

/* Escaped character data: & < > (and CR, which a parser would turn into LF). */
void fg_xml_escape_text(struct fg_buf *b, const char *s, size_t len);
/* Escaped attribute value for either quote: & < > " ' and TAB, LF, CR (which a parser
 * would normalise to spaces). */
void fg_xml_escape_attr(struct fg_buf *b, const char *s, size_t len);

#endif
