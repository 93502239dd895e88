/* parser.h - the XMPP stream parser, sans I/O: bytes in (any split), events out (stream
 * header, each complete stanza as an arena tree, close, or one stream error). It does
 * not judge what a header or stanza means (hosts, content namespace, stanza types). */

/* It enforces the XML restrictions and size limits of RFC 6120 sections 11 and 13.12.
 *
 * Error convention: int return, 0 ok or a negative FG_E* (core/err.h); the stream error
 * condition is reported through the error callback and fg_xml_parser_error.
 *
 * Stream errors chosen (RFC 6120 section 4.9.3):
 *   not-well-formed       XML or namespace well-formedness violated (11.3), including
 *                         characters not allowed in XML such as U+0000 or U+FFFE
 *   bad-namespace-prefix  an element or attribute prefix that is not declared (4.9.3.2)
 *   invalid-namespace     the stream element is not in http://etherx.jabber.org/streams
 *                         (4.8.1, 4.9.3.10); the content namespace is checked by the caller
 *   bad-format            the root element is not <stream> (right namespace, wrong name),
 *                         or non-whitespace text between stanzas (4.9.3.1)
 *   restricted-xml        a DOCTYPE (hence any DTD or entity declaration), a comment, a
 *                         processing instruction (an XML declaration anywhere but the very
 *                         start of a stream included), or a reference to an entity other
 *                         than the five predefined ones (11.1, 4.9.3.18)
 *   unsupported-encoding  bytes that are not UTF-8 (RFC 3629: overlongs, surrogates and
 *                         code points above U+10FFFF included), or an XML declaration
 *                         naming an encoding other than UTF-8 (11.6, 4.9.3.22, which
 *                         covers "improperly encoded the stream ... violating the rules of
 *                         UTF-8", so expat's "not well-formed" for such bytes is refined)
 *   policy-violation      a stanza larger than max_stanza, nesting deeper than max_depth,
 *                         more than max_attrs attributes on one element (4.9.3.14: "a
 *                         stanza exceeds a configured size limit"; 13.12 lets a server
 *                         limit stanza size; resource-constraint, 4.9.3.17, is about the
 *                         server's own resources, not the peer's behaviour)
 *
 * How the input is split never changes the events, and a stanza is delivered while its
 * last byte is fed. When one input holds several faults the first in stream order is
 * reported, with two exceptions where the condition can depend on the split: an
 * oversize stanza overlapping a malformation (the size limit may trip first), and text
 * between stanzas directly followed by a malformed token such as "x]]>" (expat reads
 * the two as one not-well-formed token when it gets them together, bad-format else). */
#ifndef FG_XML_PARSER_H
#define FG_XML_PARSER_H

#include <stdbool.h>
#include <stddef.h>

#include "xml/arena.h"
#include "xml/stanza.h"

enum fg_xml_cond {
    FG_XML_COND_NONE = 0,
    FG_XML_COND_NOT_WELL_FORMED,
    FG_XML_COND_BAD_FORMAT,
    FG_XML_COND_BAD_NAMESPACE_PREFIX,
    FG_XML_COND_INVALID_NAMESPACE,
    FG_XML_COND_RESTRICTED_XML,
    FG_XML_COND_UNSUPPORTED_ENCODING,
    FG_XML_COND_POLICY_VIOLATION,
};

/* The RFC 6120 element name ("not-well-formed"); "" for FG_XML_COND_NONE. */
const char *fg_xml_cond_name(enum fg_xml_cond c);

struct fg_xml_limits {
    size_t max_stanza;  /* bytes of one depth-1 element, from '<' to the final '>'; the
                         * stream header's opening tag is held to the same limit */
    unsigned max_depth; /* nesting: the stream element is depth 0, a stanza depth 1 */
    unsigned max_attrs; /* attributes plus namespace declarations on one element */
};

/* 262144 bytes, depth 32, 64 attributes (the [limits] defaults of SPEC section 7). */
void fg_xml_limits_default(struct fg_xml_limits *l);

struct fg_xml_nsdecl {
    const char *prefix; /* "" for the default namespace */
    const char *uri;
};

/* The stream header as received. Valid until fg_xml_parser_reset or _free. */
struct fg_xml_header {
    const char *to, *from, *id, *version, *lang; /* NULL when absent */
    const char *content_ns;            /* the default namespace declared on it, NULL if none
                                        * (jabber:client, jabber:server, ...: the caller checks) */
    const char *prefix;                /* the prefix of the stream element ("stream"), "" if none */
    const struct fg_xml_nsdecl *decls; /* every namespace declaration on it, in order */
    unsigned ndecls;
    const struct fg_xml_node *node; /* the stream element with all its attributes */
};

/* Called from inside fg_xml_parser_feed. A callback may call fg_xml_parser_stop; it must
 * not call _feed, _reset or _free on the same parser (defer those). */
struct fg_xml_callbacks {
    void (*header)(void *ud, const struct fg_xml_header *h);
    /* The stanza and everything in it live in arena, which now belongs to the callee:
     * release it with fg_arena_free whenever done (it may outlive the parser). The
     * callee may also allocate in it, e.g. to stamp a 'from'. */
    void (*stanza)(void *ud, struct fg_xml_node *stanza, struct fg_arena *arena);
    void (*close)(void *ud); /* </stream:stream> */
    /* Called once; the parser accepts nothing more until reset. detail is for logs and
     * the optional <text/>, e.g. "stanza larger than 262144 bytes". */
    void (*error)(void *ud, enum fg_xml_cond cond, const char *detail);
};

enum fg_xml_state {
    FG_XML_STATE_HEADER, /* waiting for the stream header */
    FG_XML_STATE_OPEN,   /* header received, stanzas flowing */
    FG_XML_STATE_STOPPED,
    FG_XML_STATE_CLOSED,
    FG_XML_STATE_FAILED,
};

struct fg_xml_parser;

/* limits NULL = fg_xml_limits_default. cb and ud are kept (not copied); any callback
 * may be NULL. */
struct fg_xml_parser *fg_xml_parser_new(const struct fg_xml_limits *limits,
                                        const struct fg_xml_callbacks *cb, void *ud);
void fg_xml_parser_free(struct fg_xml_parser *p);

/* Parses len more bytes of the stream. Returns 0, having consumed all of them, or
 * fewer when a callback called fg_xml_parser_stop or the stream closed: *consumed
 * (may be NULL) then counts the bytes up to the end of that event; the rest are not
 * XML of this stream (TLS after <starttls/>, a new stream header after SASL success,
 * or junk after the close). Returns FG_EINVAL on a stream error (after the error
 * callback) and in the STOPPED, CLOSED and FAILED states; FG_EBUSY from a callback. */
int fg_xml_parser_feed(struct fg_xml_parser *p, const void *data, size_t len, size_t *consumed);

/* From a callback: deliver nothing after the current event and return from feed. */
void fg_xml_parser_stop(struct fg_xml_parser *p);

/* Expects a new stream: a fresh expat parser, the header and any stanza in progress
 * dropped (after STARTTLS, SASL success, or to reuse the parser). FG_EBUSY from a
 * callback. */
int fg_xml_parser_reset(struct fg_xml_parser *p);

/* Gives back expat's memory (about 10 KB) while the stream sits between stanzas with
 * no partial data, e.g. when the connection has been idle; it is rebuilt on the next
 * feed. Returns 0, or FG_EBUSY when not at such a point. The parser also does this by
 * itself when expat's memory grows past 32 KB (big reads, many distinct names). */
int fg_xml_parser_trim(struct fg_xml_parser *p);

enum fg_xml_state fg_xml_parser_state(const struct fg_xml_parser *p);
/* The condition of the error in state FAILED (else NONE); detail may be NULL. */
enum fg_xml_cond fg_xml_parser_error(const struct fg_xml_parser *p, const char **detail);
/* Bytes held: the parser, expat, the header; not stanzas handed over. */
size_t fg_xml_parser_memory(const struct fg_xml_parser *p);

#endif
