/* parser.c - expat glue for XMPP streams: builds stanza trees in arenas, checks UTF-8,
 * limits and the XML restrictions, maps failures to stream-error conditions. It does
 * no I/O and attaches no meaning to stanzas. */

/* Two things expat does not do for us:
 * - Re-scanning. expat re-tokenizes a partial token from its start on every call, so
 *   a large tag trickled in one byte per read costs quadratic time (CVE-2023-52425;
 *   expat >= 2.6 answers with "reparse deferral", which can hold a complete stanza
 *   back until more bytes arrive, so we turn it off). Instead, when a partial token of
 *   DEFER_MIN bytes or more is pending, new bytes are scanned here (linearly) and held
 *   until they could complete the token (a '>' outside quotes for a tag, "--" in a
 *   comment, "?>" in a PI, a non-name byte in a reference) or until the pending bytes
 *   have doubled, so that a malformation this scan does not model is still found, at
 *   linear total cost. A valid token is never held back once complete.
 * - Memory. expat keeps its input buffer and name tables for the life of its parser.
 *   Between stanzas with nothing pending we can drop it and later rebuild it primed
 *   with a copy of the stream element's namespace declarations (trim/recycle). */
#include "xml/parser.h"
#include "core/alloc.h"
#include "core/err.h"

#include <expat.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SEP '\x01'          /* namespace separator: not allowed in XML 1.0 text */
#define DEFER_MIN 1024      /* partial tokens below this are simply re-parsed */
#define SLICE 4096          /* bytes per XML_Parse call: bounds expat's buffer */
#define RECYCLE (32 * 1024) /* expat bytes that trigger a rebuild between stanzas */
#define MAX_STANZA_CAP ((size_t)1 << 30)
#define NS_MEMO 4

enum lex_kind { LEX_NONE, LEX_TAG, LEX_REF, LEX_COMMENT, LEX_PI };

/* Just enough of XML's lexical structure to know when a pending token can end. */
struct lexer {
    uint8_t kind;
    uint8_t quote; /* inside an attribute value: its quote character */
    uint8_t prev;  /* last significant byte */
};

struct fg_xml_parser {
    XML_Parser xp; /* NULL while trimmed */
    struct fg_xml_limits lim;
    const struct fg_xml_callbacks *cb;
    void *ud;

    enum fg_xml_state state;
    enum fg_xml_cond err;
    char detail[192];
    bool reported; /* error callback called */
    bool halted;   /* expat told to stop: ignore callbacks that still arrive */
    bool stop_req;
    bool in_feed;
    bool parsing; /* inside XML_Parse */
    bool priming;

    unsigned depth;         /* open elements, the stream element included */
    unsigned pending_decls; /* namespace declarations of the element being started */

    /* Offsets count stream bytes since the start of this stream (reset). */
    uint64_t fed;    /* given to expat */
    int64_t off_adj; /* stream offset = expat offset + off_adj (after a rebuild) */
    uint64_t stanza_start;
    uint64_t event_end; /* end of the event that stopped or closed the stream */

    /* stanza under construction */
    struct fg_arena *arena;
    struct fg_xml_node **stack; /* [max_depth + 1]: the open element at each depth */
    const char *memo[NS_MEMO];  /* namespaces already copied into arena */
    size_t memo_len[NS_MEMO];
    unsigned nmemo;

    /* header */
    struct fg_arena *harena;
    struct fg_xml_header hdr;
    struct fg_xml_nsdecl *decls;
    unsigned ndecls, decl_cap;
    const char *prime; /* the stream element's opening tag rebuilt from decls */
    size_t prime_len;

    /* UTF-8 sequence in progress across feeds */
    uint8_t u8_need, u8_lo, u8_hi;

    /* bytes held back while a large partial token cannot complete */
    bool defer;
    struct lexer lx;
    uint64_t defer_origin;
    size_t defer_base; /* bytes of the pending token when holding began */
    struct fg_buf held;

    size_t expat_mem;
};

static const struct fg_xml_callbacks no_callbacks;

/* --- expat memory, counted per parser --- */

static _Thread_local size_t *mm_counter;

#define MM_HDR 16

static void *mm_malloc(size_t n)
{
    char *h = fg_malloc(n + MM_HDR);
    memcpy(h, &n, sizeof n);
    if (mm_counter)
        *mm_counter += n + MM_HDR;
    return h + MM_HDR;
}

static void mm_free(void *p)
{
    if (!p)
        return;
    char *h = (char *)p - MM_HDR;
    size_t n;
    memcpy(&n, h, sizeof n);
    if (mm_counter)
        *mm_counter -= n + MM_HDR;
    fg_free(h);
}

static void *mm_realloc(void *p, size_t n)
{
    if (!p)
        return mm_malloc(n);
    char *h = (char *)p - MM_HDR;
    size_t old;
    memcpy(&old, h, sizeof old);
    h = fg_realloc(h, n + MM_HDR);
    memcpy(h, &n, sizeof n);
    if (mm_counter)
        *mm_counter = *mm_counter - old + n;
    return h + MM_HDR;
}

static const XML_Memory_Handling_Suite mm_suite = {mm_malloc, mm_realloc, mm_free};

/* --- conditions --- */

const char *fg_xml_cond_name(enum fg_xml_cond c)
{
    switch (c) {
    case FG_XML_COND_NOT_WELL_FORMED:
        return "not-well-formed";
    case FG_XML_COND_BAD_FORMAT:
        return "bad-format";
    case FG_XML_COND_BAD_NAMESPACE_PREFIX:
        return "bad-namespace-prefix";
    case FG_XML_COND_INVALID_NAMESPACE:
        return "invalid-namespace";
    case FG_XML_COND_RESTRICTED_XML:
        return "restricted-xml";
    case FG_XML_COND_UNSUPPORTED_ENCODING:
        return "unsupported-encoding";
    case FG_XML_COND_POLICY_VIOLATION:
        return "policy-violation";
    case FG_XML_COND_NONE:
        break;
    }
    return "";
}

static enum fg_xml_cond map_expat_error(enum XML_Error e)
{
    switch (e) {
    case XML_ERROR_UNBOUND_PREFIX:
        return FG_XML_COND_BAD_NAMESPACE_PREFIX;
    case XML_ERROR_UNDEFINED_ENTITY:
    case XML_ERROR_RECURSIVE_ENTITY_REF:
    case XML_ERROR_PARAM_ENTITY_REF:
    case XML_ERROR_BINARY_ENTITY_REF:
    case XML_ERROR_ATTRIBUTE_EXTERNAL_ENTITY_REF:
    case XML_ERROR_EXTERNAL_ENTITY_HANDLING:
    case XML_ERROR_NOT_STANDALONE:
    case XML_ERROR_ENTITY_DECLARED_IN_PE:
    case XML_ERROR_MISPLACED_XML_PI:
        return FG_XML_COND_RESTRICTED_XML;
    case XML_ERROR_UNKNOWN_ENCODING:
    case XML_ERROR_INCORRECT_ENCODING:
        return FG_XML_COND_UNSUPPORTED_ENCODING;
    default:
        return FG_XML_COND_NOT_WELL_FORMED;
    }
}

/* --- helpers --- */

static uint64_t cur_index(const struct fg_xml_parser *p)
{
    return (uint64_t)((int64_t)XML_GetCurrentByteIndex(p->xp) + p->off_adj);
}

static uint64_t event_end(const struct fg_xml_parser *p)
{
    return cur_index(p) + (uint64_t)XML_GetCurrentByteCount(p->xp);
}

static void halt(struct fg_xml_parser *p)
{
    p->halted = true;
    if (p->parsing)
        XML_StopParser(p->xp, XML_FALSE);
}

static void fail(struct fg_xml_parser *p, enum fg_xml_cond c, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(struct fg_xml_parser *p, enum fg_xml_cond c, const char *fmt, ...)
{
    if (p->state == FG_XML_STATE_FAILED)
        return;
    p->state = FG_XML_STATE_FAILED;
    p->err = c;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->detail, sizeof p->detail, fmt, ap);
    va_end(ap);
    halt(p);
}

static void fail_size(struct fg_xml_parser *p)
{
    if (p->depth >= 2)
        fail(p, FG_XML_COND_POLICY_VIOLATION, "stanza larger than %zu bytes", p->lim.max_stanza);
    else
        fail(p, FG_XML_COND_POLICY_VIOLATION, "more than %zu bytes without a complete tag",
             p->lim.max_stanza);
}

/* "uri\1local\1prefix", "uri\1local" or "local" */
struct qname {
    const char *uri, *local, *prefix;
    size_t uri_len, local_len, prefix_len;
};

static void split_name(const char *s, struct qname *q)
{
    const char *a = strchr(s, SEP);
    if (!a) {
        q->uri = "";
        q->uri_len = 0;
        q->local = s;
        q->local_len = strlen(s);
        q->prefix = "";
        q->prefix_len = 0;
        return;
    }
    q->uri = s;
    q->uri_len = (size_t)(a - s);
    q->local = a + 1;
    const char *b = strchr(q->local, SEP);
    if (b) {
        q->local_len = (size_t)(b - q->local);
        q->prefix = b + 1;
        q->prefix_len = strlen(q->prefix);
    } else {
        q->local_len = strlen(q->local);
        q->prefix = "";
        q->prefix_len = 0;
    }
}

/* A namespace string for a node in arena a: the parent's, a static one, one already
 * copied into this stanza, or a new copy. */
static const char *intern_ns(struct fg_xml_parser *p, struct fg_arena *a,
                             const struct fg_xml_node *parent, const char *uri, size_t len)
{
    if (len == 0)
        return "";
    if (parent && strncmp(parent->ns, uri, len) == 0 && parent->ns[len] == '\0')
        return parent->ns;
    const char *st = fg_xml_ns_static(uri, len);
    if (st)
        return st;
    bool memo = a == p->arena;
    for (unsigned i = 0; memo && i < p->nmemo; i++)
        if (p->memo_len[i] == len && memcmp(p->memo[i], uri, len) == 0)
            return p->memo[i];
    char *c = fg_arena_strndup(a, uri, len);
    if (memo && p->nmemo < NS_MEMO) {
        p->memo[p->nmemo] = c;
        p->memo_len[p->nmemo++] = len;
    }
    return c;
}

static struct fg_xml_node *make_element(struct fg_xml_parser *p, struct fg_arena *a,
                                        const struct fg_xml_node *parent, const char *name,
                                        const char **atts, unsigned na)
{
    struct qname q;
    split_name(name, &q);
    struct fg_xml_node *n = fg_arena_zalloc(a, sizeof *n);
    n->type = FG_XML_ELEMENT;
    n->name = fg_arena_strndup(a, q.local, q.local_len);
    n->name_len = (uint32_t)q.local_len;
    n->ns = intern_ns(p, a, parent, q.uri, q.uri_len);
    if (na) {
        n->attrs = fg_arena_alloc(a, na * sizeof *n->attrs);
        n->nattrs = n->attr_cap = na;
        for (unsigned i = 0; i < na; i++) {
            struct fg_xml_attr *at = &n->attrs[i];
            struct qname aq;
            split_name(atts[2 * i], &aq);
            at->name = fg_arena_strndup(a, aq.local, aq.local_len);
            at->name_len = (uint32_t)aq.local_len;
            at->ns = aq.uri_len ? intern_ns(p, a, NULL, aq.uri, aq.uri_len) : NULL;
            size_t vl = strlen(atts[2 * i + 1]);
            at->value = fg_arena_strndup(a, atts[2 * i + 1], vl);
            at->value_len = (uint32_t)vl;
        }
    }
    return n;
}

/* --- the stream element --- */

static void header_arena(struct fg_xml_parser *p)
{
    if (!p->harena)
        p->harena = fg_arena_new(1024);
}

static void build_prime(struct fg_xml_parser *p)
{
    struct fg_buf b = {0};
    fg_buf_putc(&b, '<');
    if (*p->hdr.prefix) {
        fg_buf_puts(&b, p->hdr.prefix);
        fg_buf_putc(&b, ':');
    }
    fg_buf_puts(&b, "stream");
    for (unsigned i = 0; i < p->ndecls; i++) {
        fg_buf_puts(&b, " xmlns");
        if (*p->decls[i].prefix) {
            fg_buf_putc(&b, ':');
            fg_buf_puts(&b, p->decls[i].prefix);
        }
        fg_buf_puts(&b, "='");
        fg_xml_escape_attr(&b, p->decls[i].uri, strlen(p->decls[i].uri));
        fg_buf_putc(&b, '\'');
    }
    fg_buf_putc(&b, '>');
    p->prime = fg_arena_strndup(p->harena, b.data, b.len);
    p->prime_len = b.len;
    fg_buf_free(&b);
}

static void start_stream(struct fg_xml_parser *p, const char *name, const char **atts, unsigned na)
{
    if (p->priming) {
        p->depth = 1;
        return;
    }
    struct qname q;
    split_name(name, &q);
    if (q.uri_len != sizeof FG_XML_NS_STREAMS - 1 ||
        memcmp(q.uri, FG_XML_NS_STREAMS, q.uri_len) != 0) {
        fail(p, FG_XML_COND_INVALID_NAMESPACE, "root element <%.*s> in namespace '%.*s'",
             (int)(q.local_len > 64 ? 64 : q.local_len), q.local,
             (int)(q.uri_len > 96 ? 96 : q.uri_len), q.uri);
        return;
    }
    if (q.local_len != 6 || memcmp(q.local, "stream", 6) != 0) {
        fail(p, FG_XML_COND_BAD_FORMAT, "root element <%.*s> is not <stream>",
             (int)(q.local_len > 64 ? 64 : q.local_len), q.local);
        return;
    }
    header_arena(p);
    struct fg_xml_header *h = &p->hdr;
    struct fg_xml_node *n = make_element(p, p->harena, NULL, name, atts, na);
    h->node = n;
    h->prefix = fg_arena_strndup(p->harena, q.prefix, q.prefix_len);
    for (unsigned i = 0; i < n->nattrs; i++) {
        const struct fg_xml_attr *at = &n->attrs[i];
        if (!at->ns) {
            if (strcmp(at->name, "to") == 0)
                h->to = at->value;
            else if (strcmp(at->name, "from") == 0)
                h->from = at->value;
            else if (strcmp(at->name, "id") == 0)
                h->id = at->value;
            else if (strcmp(at->name, "version") == 0)
                h->version = at->value;
        } else if (strcmp(at->ns, FG_XML_NS_XML) == 0 && strcmp(at->name, "lang") == 0) {
            h->lang = at->value;
        }
    }
    for (unsigned i = 0; i < p->ndecls; i++)
        if (!*p->decls[i].prefix)
            h->content_ns = *p->decls[i].uri ? p->decls[i].uri : NULL;
    h->decls = p->decls;
    h->ndecls = p->ndecls;
    build_prime(p);

    p->depth = 1;
    p->state = FG_XML_STATE_OPEN;
    p->event_end = event_end(p);
    if (p->cb->header)
        p->cb->header(p->ud, h);
    if (p->stop_req && p->state == FG_XML_STATE_OPEN) {
        p->state = FG_XML_STATE_STOPPED;
        halt(p);
    }
}

/* --- expat callbacks --- */

static void on_nsdecl(void *ud, const XML_Char *prefix, const XML_Char *uri)
{
    struct fg_xml_parser *p = ud;
    if (p->halted)
        return;
    if (++p->pending_decls > p->lim.max_attrs) {
        fail(p, FG_XML_COND_POLICY_VIOLATION, "more than %u attributes on one element",
             p->lim.max_attrs);
        return;
    }
    if (p->depth != 0 || p->priming)
        return;
    header_arena(p);
    if (p->ndecls == p->decl_cap) {
        unsigned cap = p->decl_cap ? p->decl_cap * 2 : 4;
        struct fg_xml_nsdecl *d = fg_arena_alloc(p->harena, cap * sizeof *d);
        if (p->ndecls)
            memcpy(d, p->decls, p->ndecls * sizeof *d);
        p->decls = d;
        p->decl_cap = cap;
    }
    p->decls[p->ndecls].prefix = fg_arena_strdup(p->harena, prefix ? prefix : "");
    p->decls[p->ndecls].uri = fg_arena_strdup(p->harena, uri ? uri : "");
    p->ndecls++;
}

static void on_start(void *ud, const XML_Char *name, const XML_Char **atts)
{
    struct fg_xml_parser *p = ud;
    if (p->halted)
        return;
    unsigned d = p->depth;
    unsigned na = 0;
    while (atts[2 * na])
        na++;
    if (na + p->pending_decls > p->lim.max_attrs) {
        fail(p, FG_XML_COND_POLICY_VIOLATION, "more than %u attributes on one element",
             p->lim.max_attrs);
        return;
    }
    p->pending_decls = 0;
    if (d > p->lim.max_depth) {
        fail(p, FG_XML_COND_POLICY_VIOLATION, "elements nested deeper than %u", p->lim.max_depth);
        return;
    }
    if (d == 0) {
        if ((size_t)XML_GetCurrentByteCount(p->xp) > p->lim.max_stanza) {
            fail_size(p);
            return;
        }
        start_stream(p, name, atts, na);
        return;
    }
    struct fg_xml_node *n;
    if (d == 1) {
        p->stanza_start = cur_index(p);
        p->arena = fg_arena_new(0);
        p->nmemo = 0;
        n = make_element(p, p->arena, NULL, name, atts, na);
    } else {
        if (event_end(p) - p->stanza_start >= p->lim.max_stanza) {
            fail_size(p);
            return;
        }
        struct fg_xml_node *parent = p->stack[d - 1];
        n = make_element(p, p->arena, parent, name, atts, na);
        fg_xml_append(parent, n);
    }
    p->stack[d] = n;
    p->depth = d + 1;
}

static void on_end(void *ud, const XML_Char *name)
{
    (void)name;
    struct fg_xml_parser *p = ud;
    if (p->halted)
        return;
    unsigned d = --p->depth;
    if (d > 1 || p->priming)
        return;
    uint64_t end = event_end(p);
    if (d == 0) {
        p->event_end = end;
        p->state = FG_XML_STATE_CLOSED;
        if (p->cb->close)
            p->cb->close(p->ud);
        halt(p);
        return;
    }
    if (end - p->stanza_start > p->lim.max_stanza) {
        p->depth++; /* report it as a stanza */
        fail_size(p);
        return;
    }
    struct fg_arena *a = p->arena;
    struct fg_xml_node *n = p->stack[1];
    p->arena = NULL;
    p->stack[1] = NULL;
    p->event_end = end;
    if (p->cb->stanza)
        p->cb->stanza(p->ud, n, a);
    else
        fg_arena_free(a);
    if (p->stop_req && p->state == FG_XML_STATE_OPEN) {
        p->state = FG_XML_STATE_STOPPED;
        halt(p);
    }
}

static void on_text(void *ud, const XML_Char *s, int len)
{
    struct fg_xml_parser *p = ud;
    if (p->halted)
        return;
    if (p->depth <= 1) {
        for (int i = 0; i < len; i++) {
            char c = s[i];
            if (c != ' ' && c != '\n' && c != '\t' && c != '\r') {
                fail(p, FG_XML_COND_BAD_FORMAT, "text between stanzas");
                return;
            }
        }
        return; /* whitespace keep-alive */
    }
    if (event_end(p) - p->stanza_start >= p->lim.max_stanza) {
        fail_size(p);
        return;
    }
    fg_xml_add_text(p->arena, p->stack[p->depth - 1], s, (size_t)len);
}

static void on_xmldecl(void *ud, const XML_Char *version, const XML_Char *encoding, int standalone)
{
    (void)version;
    (void)standalone;
    struct fg_xml_parser *p = ud;
    if (p->halted)
        return;
    if ((size_t)XML_GetCurrentByteCount(p->xp) > p->lim.max_stanza)
        fail_size(p);
    else if (encoding && strcasecmp(encoding, "UTF-8") != 0)
        fail(p, FG_XML_COND_UNSUPPORTED_ENCODING,
             "encoding '%.32s' declared, only UTF-8 is allowed", encoding);
}

static void on_comment(void *ud, const XML_Char *data)
{
    (void)data;
    struct fg_xml_parser *p = ud;
    if (!p->halted)
        fail(p, FG_XML_COND_RESTRICTED_XML, "comment");
}

static void on_pi(void *ud, const XML_Char *target, const XML_Char *data)
{
    (void)data;
    struct fg_xml_parser *p = ud;
    if (!p->halted)
        fail(p, FG_XML_COND_RESTRICTED_XML, "processing instruction <?%.32s", target);
}

static void on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid, const XML_Char *pubid,
                       int has_internal_subset)
{
    (void)name;
    (void)sysid;
    (void)pubid;
    (void)has_internal_subset;
    struct fg_xml_parser *p = ud;
    if (!p->halted)
        fail(p, FG_XML_COND_RESTRICTED_XML, "document type declaration");
}

static void on_entitydecl(void *ud, const XML_Char *name, int is_param, const XML_Char *value,
                          int value_len, const XML_Char *base, const XML_Char *sysid,
                          const XML_Char *pubid, const XML_Char *notation)
{
    (void)name;
    (void)is_param;
    (void)value;
    (void)value_len;
    (void)base;
    (void)sysid;
    (void)pubid;
    (void)notation;
    struct fg_xml_parser *p = ud;
    if (!p->halted)
        fail(p, FG_XML_COND_RESTRICTED_XML, "entity declaration");
}

/* --- expat instances --- */

static XML_Parser xp_create(struct fg_xml_parser *p)
{
    static const XML_Char sep[2] = {SEP, '\0'};
    XML_Parser xp = XML_ParserCreate_MM("UTF-8", &mm_suite, sep);
    if (!xp) {
        fprintf(stderr, "fatal: cannot create an XML parser\n");
        abort();
    }
    XML_SetReturnNSTriplet(xp, XML_TRUE);
    XML_SetUserData(xp, p);
    XML_SetElementHandler(xp, on_start, on_end);
    XML_SetCharacterDataHandler(xp, on_text);
    XML_SetStartNamespaceDeclHandler(xp, on_nsdecl);
    XML_SetXmlDeclHandler(xp, on_xmldecl);
    XML_SetCommentHandler(xp, on_comment);
    XML_SetProcessingInstructionHandler(xp, on_pi);
    XML_SetStartDoctypeDeclHandler(xp, on_doctype);
    XML_SetEntityDeclHandler(xp, on_entitydecl);
    XML_SetParamEntityParsing(xp, XML_PARAM_ENTITY_PARSING_NEVER);
#if XML_MAJOR_VERSION > 2 || (XML_MAJOR_VERSION == 2 && XML_MINOR_VERSION >= 6)
    XML_SetReparseDeferralEnabled(xp, XML_FALSE);
#endif
    return xp;
}

static void xp_free(struct fg_xml_parser *p)
{
    if (p->xp)
        XML_ParserFree(p->xp);
    p->xp = NULL;
}

/* A new expat parser that has already read the stream element's opening tag (with
 * its namespace declarations), so it continues the stream at depth 1. */
static void rebuild(struct fg_xml_parser *p)
{
    p->xp = xp_create(p);
    p->priming = true;
    p->depth = 0;
    p->parsing = true;
    enum XML_Status st = XML_Parse(p->xp, p->prime, (int)p->prime_len, XML_FALSE);
    p->parsing = false;
    p->priming = false;
    p->off_adj = (int64_t)p->fed - (int64_t)p->prime_len;
    if (st != XML_STATUS_OK || p->depth != 1) {
        p->depth = 1;
        fail(p, FG_XML_COND_BAD_FORMAT, "internal: cannot restore the stream context");
    }
}

/* --- input --- */

/* Returns how many bytes of s are valid UTF-8 (RFC 3629) and allowed in XML, carrying
 * a sequence cut by the end of s over to the next call. *control tells why it stopped
 * short: a C0 control character other than TAB, LF, CR (never allowed in XML 1.0; caught
 * here because expat reports it differently depending on how the input is split at the
 * start of a stream) rather than bad UTF-8. */
static size_t scan_input(struct fg_xml_parser *p, const unsigned char *s, size_t n, bool *control)
{
    size_t i = 0;
    unsigned need = p->u8_need;
    unsigned char lo = p->u8_lo, hi = p->u8_hi;
    *control = false;
    while (i < n) {
        if (need == 0) {
            while (n - i >= 8) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                uint64_t high = w & UINT64_C(0x8080808080808080);
                uint64_t low =
                    (w - UINT64_C(0x2020202020202020)) & ~w & UINT64_C(0x8080808080808080);
                if (high | low)
                    break;
                i += 8;
            }
            if (i == n)
                break;
            unsigned char c = s[i];
            if (c < 0x80) {
                if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
                    *control = true;
                    break;
                }
                i++;
                continue;
            }
            lo = 0x80;
            hi = 0xBF;
            if (c >= 0xC2 && c <= 0xDF) {
                need = 1;
            } else if (c == 0xE0) {
                need = 2;
                lo = 0xA0;
            } else if (c == 0xED) {
                need = 2;
                hi = 0x9F; /* no UTF-16 surrogates */
            } else if (c >= 0xE1 && c <= 0xEF) {
                need = 2;
            } else if (c == 0xF0) {
                need = 3;
                lo = 0x90;
            } else if (c >= 0xF1 && c <= 0xF3) {
                need = 3;
            } else if (c == 0xF4) {
                need = 3;
                hi = 0x8F; /* nothing above U+10FFFF */
            } else {
                break;
            }
            i++;
        } else {
            unsigned char c = s[i];
            if (c < lo || c > hi)
                break;
            need--;
            lo = 0x80;
            hi = 0xBF;
            i++;
        }
    }
    p->u8_need = (uint8_t)need;
    p->u8_lo = lo;
    p->u8_hi = hi;
    return i;
}

static bool name_byte(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-' || c == ':' || c == '#' || c >= 0x80;
}

static bool ws_byte(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Scans more bytes of the pending token; true when they might complete it (or make
 * it an error), so expat must see them now. */
static bool lex_scan(struct lexer *lx, const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        switch (lx->kind) {
        case LEX_TAG:
            if (lx->quote) {
                if (c == lx->quote) {
                    lx->quote = 0;
                    lx->prev = c;
                } else if (c == '<') {
                    return true;
                }
            } else if (c == '>' || c == '<') {
                return true;
            } else if (c == '"' || c == '\'') {
                if (lx->prev != '=')
                    return true;
                lx->quote = c;
            } else if (!ws_byte(c)) {
                lx->prev = c;
            }
            break;
        case LEX_REF:
            if (!name_byte(c))
                return true;
            break;
        case LEX_COMMENT:
            if (c == '-' && lx->prev == '-')
                return true;
            lx->prev = c;
            break;
        case LEX_PI:
            if (c == '>' && lx->prev == '?')
                return true;
            lx->prev = c;
            break;
        default:
            return true;
        }
    }
    return false;
}

/* Classifies the pending token s[0..n) (n >= DEFER_MIN). True when bytes may be held. */
static bool lex_init(struct lexer *lx, const unsigned char *s, size_t n)
{
    memset(lx, 0, sizeof *lx);
    size_t i = 0, from;
    while (i < n && ws_byte(s[i]))
        i++;
    if (n - i < 4)
        return false;
    if (s[i] == '&') {
        lx->kind = LEX_REF;
        from = i + 1;
    } else if (s[i] != '<') {
        return false;
    } else if (memcmp(s + i, "<!--", 4) == 0) {
        lx->kind = LEX_COMMENT;
        from = i + 4;
    } else if (s[i + 1] == '?') {
        lx->kind = LEX_PI;
        from = i + 2;
    } else if (s[i + 1] == '/' || name_byte(s[i + 1])) {
        lx->kind = LEX_TAG;
        from = i + 1;
    } else {
        return false;
    }
    return !lex_scan(lx, s + from, n - from);
}

static void parse(struct fg_xml_parser *p, const char *s, size_t n)
{
    p->parsing = true;
    enum XML_Status st = XML_Parse(p->xp, s, (int)n, XML_FALSE);
    p->parsing = false;
    p->fed += n;
    if (st == XML_STATUS_ERROR && !p->halted) {
        enum XML_Error e = XML_GetErrorCode(p->xp);
        fail(p, map_expat_error(e), "%s at byte %llu", XML_ErrorString(e),
             (unsigned long long)cur_index(p));
    }
}

/* After expat returned: size check on what it has not finished, and whether to hold
 * the next bytes back. */
static void after_parse(struct fg_xml_parser *p)
{
    uint64_t pos = cur_index(p);
    uint64_t tail = p->fed - pos;
    uint64_t origin = p->depth >= 2 ? p->stanza_start : pos;
    if (p->fed - origin >= p->lim.max_stanza) {
        fail_size(p);
        return;
    }
    if (tail < DEFER_MIN)
        return;
    int off = 0, size = 0;
    const char *ctx = XML_GetInputContext(p->xp, &off, &size);
    if (!ctx || size < off || (uint64_t)(size - off) != tail)
        return;
    if (lex_init(&p->lx, (const unsigned char *)ctx + off, (size_t)tail)) {
        p->defer = true;
        p->defer_origin = origin;
        p->defer_base = (size_t)tail;
    }
}

static void push(struct fg_xml_parser *p, const unsigned char *s, size_t n)
{
    if (!p->xp) {
        rebuild(p);
        if (p->state >= FG_XML_STATE_STOPPED)
            return;
    }
    if (p->defer) {
        bool may_end = lex_scan(&p->lx, s, n);
        fg_buf_append(&p->held, s, n);
        /* Past doubling, expat looks anyway: a malformation the lexer cannot see is
         * then found at linear total cost. */
        if (!may_end && p->held.len < p->defer_base) {
            if (p->fed + p->held.len - p->defer_origin >= p->lim.max_stanza)
                fail_size(p);
            return;
        }
        p->defer = false;
        parse(p, p->held.data, p->held.len);
        fg_buf_reset(&p->held);
    } else {
        parse(p, (const char *)s, n);
    }
    if (p->state < FG_XML_STATE_STOPPED)
        after_parse(p);
}

/* Lets expat see bytes held back, so that an error among them is not hidden by one
 * found later in the input. */
static void flush_held(struct fg_xml_parser *p)
{
    if (!p->defer)
        return;
    p->defer = false;
    if (p->held.len)
        parse(p, p->held.data, p->held.len);
    fg_buf_reset(&p->held);
}

/* --- public --- */

void fg_xml_limits_default(struct fg_xml_limits *l)
{
    l->max_stanza = 262144;
    l->max_depth = 32;
    l->max_attrs = 64;
}

static void init_stream(struct fg_xml_parser *p)
{
    p->xp = xp_create(p);
    p->state = FG_XML_STATE_HEADER;
    p->err = FG_XML_COND_NONE;
    p->detail[0] = '\0';
    p->reported = p->halted = p->stop_req = p->priming = p->defer = false;
    p->depth = p->pending_decls = 0;
    p->fed = p->stanza_start = p->event_end = 0;
    p->off_adj = 0;
    p->u8_need = 0;
    memset(&p->hdr, 0, sizeof p->hdr);
    p->decls = NULL;
    p->ndecls = p->decl_cap = 0;
    p->prime = NULL;
    p->prime_len = 0;
}

static void drop_stream(struct fg_xml_parser *p)
{
    xp_free(p);
    fg_arena_free(p->arena);
    p->arena = NULL;
    fg_arena_free(p->harena);
    p->harena = NULL;
    fg_buf_reset(&p->held);
}

struct fg_xml_parser *fg_xml_parser_new(const struct fg_xml_limits *limits,
                                        const struct fg_xml_callbacks *cb, void *ud)
{
    struct fg_xml_parser *p = fg_calloc(1, sizeof *p);
    if (limits)
        p->lim = *limits;
    else
        fg_xml_limits_default(&p->lim);
    if (p->lim.max_stanza == 0 || p->lim.max_stanza > MAX_STANZA_CAP)
        p->lim.max_stanza = MAX_STANZA_CAP;
    if (p->lim.max_depth < 1)
        p->lim.max_depth = 1;
    if (p->lim.max_depth > 4096)
        p->lim.max_depth = 4096;
    p->cb = cb ? cb : &no_callbacks;
    p->ud = ud;
    p->stack = fg_calloc(p->lim.max_depth + 1, sizeof *p->stack);
    size_t *saved = mm_counter;
    mm_counter = &p->expat_mem;
    init_stream(p);
    mm_counter = saved;
    return p;
}

void fg_xml_parser_free(struct fg_xml_parser *p)
{
    if (!p)
        return;
    size_t *saved = mm_counter;
    mm_counter = &p->expat_mem;
    drop_stream(p);
    mm_counter = saved;
    fg_buf_free(&p->held);
    fg_free(p->stack);
    fg_free(p);
}

int fg_xml_parser_reset(struct fg_xml_parser *p)
{
    if (p->in_feed)
        return FG_EBUSY;
    size_t *saved = mm_counter;
    mm_counter = &p->expat_mem;
    drop_stream(p);
    init_stream(p);
    mm_counter = saved;
    return FG_OK;
}

void fg_xml_parser_stop(struct fg_xml_parser *p)
{
    if (p->in_feed)
        p->stop_req = true;
}

int fg_xml_parser_feed(struct fg_xml_parser *p, const void *data, size_t len, size_t *consumed)
{
    size_t dummy;
    if (!consumed)
        consumed = &dummy;
    *consumed = 0;
    if (p->in_feed)
        return FG_EBUSY;
    if (p->state >= FG_XML_STATE_STOPPED)
        return FG_EINVAL;

    size_t *saved = mm_counter;
    mm_counter = &p->expat_mem;
    p->in_feed = true;
    const unsigned char *s = data;
    uint64_t origin = p->fed + p->held.len; /* stream offset of s[0] */
    size_t off = 0;
    while (off < len && p->state < FG_XML_STATE_STOPPED) {
        size_t n = len - off < SLICE ? len - off : SLICE;
        bool control;
        size_t ok = scan_input(p, s + off, n, &control);
        if (ok)
            push(p, s + off, ok);
        if (ok < n && p->state < FG_XML_STATE_STOPPED) {
            flush_held(p);
            if (p->state < FG_XML_STATE_STOPPED && control)
                fail(p, FG_XML_COND_NOT_WELL_FORMED, "control character 0x%02x at byte %llu",
                     s[off + ok], (unsigned long long)(origin + off + ok));
            else if (p->state < FG_XML_STATE_STOPPED)
                fail(p, FG_XML_COND_UNSUPPORTED_ENCODING, "invalid UTF-8 at byte %llu",
                     (unsigned long long)(origin + off + ok));
        }
        off += n;
    }

    int rc = FG_OK;
    switch (p->state) {
    case FG_XML_STATE_FAILED:
        fg_arena_free(p->arena);
        p->arena = NULL;
        if (!p->reported) {
            p->reported = true;
            if (p->cb->error)
                p->cb->error(p->ud, p->err, p->detail);
        }
        rc = FG_EINVAL;
        break;
    case FG_XML_STATE_STOPPED:
    case FG_XML_STATE_CLOSED: {
        uint64_t c = p->event_end > origin ? p->event_end - origin : 0;
        *consumed = c < len ? (size_t)c : len;
        break;
    }
    default:
        *consumed = len;
        break;
    }
    p->in_feed = false;
    if (rc == FG_OK && p->state == FG_XML_STATE_OPEN && p->expat_mem > RECYCLE)
        (void)fg_xml_parser_trim(p);
    mm_counter = saved;
    return rc;
}

int fg_xml_parser_trim(struct fg_xml_parser *p)
{
    if (p->in_feed || p->state != FG_XML_STATE_OPEN || p->depth != 1 || p->defer)
        return FG_EBUSY;
    if (!p->xp)
        return FG_OK;
    if (cur_index(p) != p->fed)
        return FG_EBUSY;
    size_t *saved = mm_counter;
    mm_counter = &p->expat_mem;
    xp_free(p);
    mm_counter = saved;
    return FG_OK;
}

enum fg_xml_state fg_xml_parser_state(const struct fg_xml_parser *p)
{
    return p->state;
}

enum fg_xml_cond fg_xml_parser_error(const struct fg_xml_parser *p, const char **detail)
{
    if (detail)
        *detail = p->state == FG_XML_STATE_FAILED ? p->detail : NULL;
    return p->state == FG_XML_STATE_FAILED ? p->err : FG_XML_COND_NONE;
}

size_t fg_xml_parser_memory(const struct fg_xml_parser *p)
{
    size_t n = sizeof *p + (p->lim.max_depth + 1) * sizeof *p->stack + p->expat_mem + p->held.cap;
    if (p->harena)
        n += fg_arena_size(p->harena);
    if (p->arena)
        n += fg_arena_size(p->arena);
    return n;
}
