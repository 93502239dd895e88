/* c2s.c - client streams: header checks, STARTTLS, SASL (xmpp/sasl.c), binding, 'from'
 * stamping, stream errors and idle pings, on top of the XML stream parser. Answers are
 * written as text into one reused buffer; no trees are built for them. It knows nothing
 * of rosters, presence or routing: bound stanzas go to io->stanza. */
#include "xmpp/c2s.h"
#include "core/stats.h"
#include "core/alloc.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "policy/policy.h"
#include "xml/parser.h"
#include "xmpp/sasl.h"

#include <stdio.h>
#include <string.h>

#define NS_SASL_CB "urn:xmpp:sasl-cb:0" /* XEP-0440 */
#define NS_PING "urn:xmpp:ping"
#define DEFAULT_ATTEMPTS 3
#define GRACE_MS 30000
#define RESOURCE_MAX 1023
#define FULL_JID_MAX 3072
#define CB_MAX 64

enum state {
    ST_HEADER,   /* waiting for the client's stream header */
    ST_NEG,      /* features sent: STARTTLS and SASL */
    ST_WAIT_TLS, /* <proceed/> sent, waiting for fg_c2s_tls_ready */
    ST_BIND,     /* authenticated, stream restarted: waiting for the bind iq */
    ST_SESSION,  /* bound: stanzas flow */
    ST_CLOSED,
};

struct fg_c2s {
    struct fg_c2s_config cfg;
    struct fg_c2s_io io;
    struct fg_xml_parser *parser;
    struct fg_xml_scope scope;
    enum state st;
    bool tls, direct_tls, tls_info, authenticated, header_sent, plus_offered;
    bool in_parser; /* inside fg_xml_parser_feed: parser calls must be deferred */
    bool restart;   /* reset the parser when feed returns */
    bool drop_rest; /* ignore the rest of this feed (after <starttls/>) */
    bool trim_after_feed; /* just bound: most clients now go quiet, give memory back */
    bool rx;        /* bytes received since the last tick */
    bool clock, ping_out;
    uint64_t last_rx, ping_at;
    unsigned ping_seq;
    int failures;
    struct fg_sasl *sasl;
    enum fg_sasl_mech mech;
    char *peer, *bare, *jid;
    struct fg_buf out; /* what goes to io->send next */
    struct fg_buf raw; /* SASL messages before base64; freed after authentication */
    struct fg_sasl_cbind cb;
    unsigned char cb_exporter[CB_MAX], cb_unique[CB_MAX];
    char tls_version[16];
    char id[17];
    char domain[FG_DOMAIN_MAX + 1];
};

static const enum fg_sasl_mech mech_order[] = {
    FG_SASL_SCRAM_SHA_256_PLUS,
    FG_SASL_SCRAM_SHA_1_PLUS,
    FG_SASL_SCRAM_SHA_256,
    FG_SASL_SCRAM_SHA_1,
    FG_SASL_PLAIN,
};

/* ---- output ---- */

/* The buffer is taken out while io->send runs: a nested fg_c2s_close (the glue closing
 * from inside send, say on a full write queue) writes into a fresh one and never moves
 * the bytes being sent. The memory comes back for reuse afterwards. */
static void flush(struct fg_c2s *c)
{
    if (!c->out.len)
        return;
    struct fg_buf b = c->out;
    memset(&c->out, 0, sizeof c->out);
    if (c->io.send)
        c->io.send(c->io.ud, b.data, b.len);
    if (!c->out.data) {
        fg_buf_reset(&b);
        c->out = b;
    } else {
        fg_buf_free(&b);
    }
}

static void put(struct fg_c2s *c, const char *s)
{
    fg_buf_puts(&c->out, s);
}

static void put_text(struct fg_c2s *c, const char *s)
{
    fg_xml_escape_text(&c->out, s, strlen(s));
}

static void put_attr(struct fg_c2s *c, const char *s)
{
    fg_xml_escape_attr(&c->out, s, strlen(s));
}

static const char *peer(const struct fg_c2s *c)
{
    return c->peer ? c->peer : "";
}

/* A condition is written as an element name: keep it to [a-z-]. */
static bool cond_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 40)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || *s == '-'))
            return false;
    return true;
}

static void put_header(struct fg_c2s *c, const char *to)
{
    if (fg_random_hex(c->id, 8) != FG_OK) {
        static unsigned long fallback;
        snprintf(c->id, sizeof c->id, "c2s%013lx", ++fallback);
    }
    fg_xml_serialize_header(&c->out, &c->scope, true, to, c->domain[0] ? c->domain : NULL, c->id,
                            "1.0", "en");
    c->header_sent = true;
}

/* Ends the stream: our header if none was sent (RFC 6120 4.9.1.2), the stream error when
 * cond is set, </stream:stream>, then io->close. During the TLS handshake nothing can
 * be written in the clear, so the connection just closes. */
static void end_stream(struct fg_c2s *c, const char *cond, const char *text)
{
    if (c->st == ST_CLOSED)
        return;
    bool handshake = c->st == ST_WAIT_TLS;
    c->st = ST_CLOSED;
    if (cond && !cond_ok(cond))
        cond = "undefined-condition";
    if (cond)
        fg_log(FG_LOG_INFO, "c2s-stream-error", "condition", cond, "address", peer(c), "user",
               c->jid ? c->jid : c->bare, "text", text, NULL);
    if (!handshake) {
        if (!c->header_sent)
            put_header(c, NULL);
        if (cond) {
            put(c, "<stream:error><");
            put(c, cond);
            put(c, " xmlns='" FG_XML_NS_STREAM_ERRORS "'/>");
            if (text && *text) {
                put(c, "<text xmlns='" FG_XML_NS_STREAM_ERRORS "' xml:lang='en'>");
                put_text(c, text);
                put(c, "</text>");
            }
            put(c, "</stream:error>");
        }
        fg_xml_serialize_close(&c->out, &c->scope);
        flush(c);
    } else {
        fg_buf_reset(&c->out);
    }
    if (c->in_parser)
        fg_xml_parser_stop(c->parser);
    fg_sasl_free(c->sasl);
    c->sasl = NULL;
    if (c->io.close)
        c->io.close(c->io.ud);
}

/* ---- features ---- */

static bool have_cb(const struct fg_c2s *c)
{
    return c->tls && (c->cb.tls_exporter || c->cb.tls_unique);
}

static bool mech_offered(const struct fg_c2s *c, enum fg_sasl_mech m)
{
    if (c->cfg.require_tls && !c->tls)
        return false;
    if (fg_sasl_mech_is_plus(m))
        return have_cb(c);
    if (m == FG_SASL_PLAIN)
        return c->tls;
    return m != FG_SASL_MECH_NONE;
}

static void put_features(struct fg_c2s *c)
{
    put(c, "<stream:features>");
    if (c->authenticated) {
        put(c, "<bind xmlns='" FG_XML_NS_BIND "'/>"
               "<session xmlns='" FG_XML_NS_SESSION "'><optional/></session>");
        if (c->io.features)
            c->io.features(c->io.ud, &c->out);
    } else if (c->cfg.require_tls && !c->tls) {
        /* TLS is mandatory-to-negotiate: nothing else is offered (RFC 6120 5.3.1) */
        put(c, "<starttls xmlns='" FG_XML_NS_TLS "'><required/></starttls>");
    } else {
        if (!c->tls && c->io.start_tls)
            put(c, "<starttls xmlns='" FG_XML_NS_TLS "'/>");
        put(c, "<mechanisms xmlns='" FG_XML_NS_SASL "'>");
        for (size_t i = 0; i < sizeof mech_order / sizeof mech_order[0]; i++)
            if (mech_offered(c, mech_order[i])) {
                put(c, "<mechanism>");
                put(c, fg_sasl_mech_name(mech_order[i]));
                put(c, "</mechanism>");
            }
        put(c, "</mechanisms>");
        c->plus_offered = have_cb(c);
        if (c->plus_offered) {
            put(c, "<sasl-channel-binding xmlns='" NS_SASL_CB "'>");
            if (c->cb.tls_exporter)
                put(c, "<channel-binding type='tls-exporter'/>");
            if (c->cb.tls_unique)
                put(c, "<channel-binding type='tls-unique'/>");
            put(c, "</sasl-channel-binding>");
        }
    }
    put(c, "</stream:features>");
}

/* ---- stream header ---- */

static bool hosted(const struct fg_c2s *c, const char *d)
{
    for (size_t i = 0; c->cfg.domains && c->cfg.domains[i]; i++)
        if (strcmp(c->cfg.domains[i], d) == 0)
            return true;
    return false;
}

/* "major.minor" (RFC 6120 4.7.5), major >= 1; leading zeros allowed. */
static bool version_ok(const char *v)
{
    if (!v)
        return false;
    const char *p = v;
    unsigned long major = 0;
    size_t digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++)
        if (major < 1000)
            major = major * 10 + (unsigned long)(*p - '0');
    if (!digits || *p++ != '.')
        return false;
    for (digits = 0; *p >= '0' && *p <= '9'; p++)
        digits++;
    return digits && !*p && major >= 1;
}

static void on_header(void *ud, const struct fg_xml_header *h)
{
    struct fg_c2s *c = ud;
    if (c->st != ST_HEADER)
        return;
    char d[FG_DOMAIN_MAX + 1];
    bool host_ok = false;
    if (h->to) {
        if (strlen(h->to) < sizeof d && hosted(c, h->to)) {
            strcpy(d, h->to); /* the usual case: no IDNA work */
            host_ok = true;
        } else if (fg_domain_normalize(h->to, d, sizeof d, NULL) == FG_OK) {
            host_ok = hosted(c, d);
        }
    }
    if (host_ok && c->authenticated && strcmp(d, c->domain) != 0)
        host_ok = false;
    if (host_ok)
        memcpy(c->domain, d, strlen(d) + 1);

    if (!h->content_ns || strcmp(h->content_ns, FG_XML_NS_CLIENT) != 0) {
        end_stream(c, "invalid-namespace", "the content namespace must be jabber:client");
        return;
    }
    if (!host_ok) {
        if (!c->authenticated)
            c->domain[0] = '\0';
        end_stream(c, "host-unknown", "this server does not serve that domain");
        return;
    }
    if (!version_ok(h->version)) {
        end_stream(c, "unsupported-version", "version 1.0 is required");
        return;
    }
    const char *to = h->from && strlen(h->from) < FULL_JID_MAX ? h->from : NULL;
    put_header(c, to);
    put_features(c);
    flush(c);
    c->st = c->authenticated ? ST_BIND : ST_NEG;
}

/* ---- SASL ---- */

static int max_attempts(const struct fg_c2s *c)
{
    return c->cfg.auth_attempts > 0 ? c->cfg.auth_attempts : DEFAULT_ATTEMPTS;
}

static void sasl_failure_ex(struct fg_c2s *c, enum fg_sasl_cond cond, const char *text,
                            const char *mech, const char *user, const char *reason, bool counts)
{
    put(c, "<failure xmlns='" FG_XML_NS_SASL "'><");
    put(c, fg_sasl_cond_name(cond));
    put(c, "/>");
    if (text && *text) {
        put(c, "<text xml:lang='en'>");
        put_text(c, text);
        put(c, "</text>");
    }
    put(c, "</failure>");
    /* a failure that says nothing about the credentials (a channel-binding type this
     * stream lacks) is a negotiation step the client retries, not a failed login */
    if (!counts)
        fg_log(FG_LOG_INFO, "c2s-sasl-retry", "user", user, "address", peer(c), "mechanism",
               mech, "reason", reason, NULL);
    else
        fg_log(cond == FG_SASL_COND_NOT_AUTHORIZED ? FG_LOG_WARN : FG_LOG_INFO,
               "c2s-auth-failed", "user", user, "address", peer(c), "mechanism", mech, "reason",
               reason, NULL);
    fg_sasl_free(c->sasl);
    c->sasl = NULL;
    if (counts)
        fg_stats_add(&fg_stats.c2s_auth_failures, 1);
    if (counts && ++c->failures >= max_attempts(c))
        end_stream(c, "policy-violation", "too many failed authentication attempts");
}

static void sasl_failure(struct fg_c2s *c, enum fg_sasl_cond cond, const char *text,
                         const char *mech, const char *user, const char *reason)
{
    sasl_failure_ex(c, cond, text, mech, user, reason, true);
}

/* The payload of <auth/> or <response/>: none (empty element), empty ("="), or
 * base64. Returns false on bad base64. */
static bool sasl_payload(struct fg_xml_node *n, struct fg_arena *a, const char **data, size_t *len,
                         bool *has)
{
    size_t tl = 0;
    const char *t = fg_xml_text(n, &tl);
    *data = "";
    *len = 0;
    *has = tl > 0;
    if (tl == 0 || (tl == 1 && t[0] == '='))
        return true;
    size_t cap = tl / 4 * 3 + 1;
    unsigned char *buf = fg_arena_alloc_bytes(a, cap);
    if (fg_sasl_b64_decode(t, tl, buf, cap, len) != FG_OK)
        return false;
    *data = (const char *)buf;
    return true;
}

static void sasl_run(struct fg_c2s *c, const char *in, size_t len, bool has)
{
    fg_buf_reset(&c->raw);
    enum fg_sasl_status st = fg_sasl_step(c->sasl, in, len, has, &c->raw);
    const char *mech = fg_sasl_mech_name(c->mech);
    if (st == FG_SASL_FAILURE) {
        sasl_failure_ex(c, fg_sasl_cond(c->sasl), fg_sasl_text(c->sasl), mech,
                        fg_sasl_user(c->sasl), fg_sasl_reason(c->sasl),
                        fg_sasl_counts_as_attempt(c->sasl));
        return;
    }
    const char *el = st == FG_SASL_CONTINUE ? "challenge" : "success";
    put(c, "<");
    put(c, el);
    put(c, " xmlns='" FG_XML_NS_SASL "'");
    if (c->raw.len) {
        put(c, ">");
        fg_sasl_b64_encode(&c->out, c->raw.data, c->raw.len);
        put(c, "</");
        put(c, el);
        put(c, ">");
    } else {
        put(c, "/>");
    }
    if (st == FG_SASL_CONTINUE)
        return;

    /* success: the stream restarts (RFC 6120 6.4.6) */
    c->authenticated = true;
    c->bare = fg_strdup(fg_sasl_user(c->sasl));
    fg_stats_add(&fg_stats.c2s_logins, 1);
    fg_log(FG_LOG_INFO, "c2s-login", "user", c->bare, "address", peer(c), "mechanism", mech, "tls",
           c->tls ? (c->tls_version[0] ? c->tls_version : "yes") : "none", NULL);
    fg_sasl_free(c->sasl);
    c->sasl = NULL;
    fg_buf_free(&c->raw);
    c->st = ST_HEADER;
    c->header_sent = false;
    c->restart = true;
    if (c->in_parser)
        fg_xml_parser_stop(c->parser);
}

static void sasl_element(struct fg_c2s *c, const char *name, const char *mech_name,
                         struct fg_xml_node *n, struct fg_arena *a)
{
    const char *data;
    size_t len;
    bool has;
    if (strcmp(name, "abort") == 0) {
        sasl_failure(c, FG_SASL_COND_ABORTED, NULL, c->sasl ? fg_sasl_mech_name(c->mech) : NULL,
                     c->sasl ? fg_sasl_user(c->sasl) : NULL, "aborted by the client");
        return;
    }
    if (strcmp(name, "response") == 0) {
        if (!c->sasl) {
            sasl_failure(c, FG_SASL_COND_MALFORMED_REQUEST, "no authentication in progress", NULL,
                         NULL, "response without auth");
            return;
        }
        if (!sasl_payload(n, a, &data, &len, &has)) {
            sasl_failure(c, FG_SASL_COND_INCORRECT_ENCODING, NULL, fg_sasl_mech_name(c->mech),
                         fg_sasl_user(c->sasl), "bad base64");
            return;
        }
        sasl_run(c, data, len, true); /* a response always carries a message, maybe empty */
        return;
    }
    /* auth */
    char shown[41];
    snprintf(shown, sizeof shown, "%s", mech_name ? mech_name : "");
    if (c->sasl) {
        const char *user = fg_sasl_user(c->sasl);
        sasl_failure(c, FG_SASL_COND_MALFORMED_REQUEST, "authentication already in progress",
                     fg_sasl_mech_name(c->mech), user, "auth during an exchange");
        return;
    }
    if (c->cfg.require_tls && !c->tls) {
        sasl_failure(c, FG_SASL_COND_ENCRYPTION_REQUIRED, "use STARTTLS first", shown, NULL,
                     "auth before the required STARTTLS");
        return;
    }
    enum fg_sasl_mech m =
        mech_name ? fg_sasl_mech_parse(mech_name, strlen(mech_name)) : FG_SASL_MECH_NONE;
    if (m == FG_SASL_PLAIN && !c->tls) {
        sasl_failure(c, FG_SASL_COND_ENCRYPTION_REQUIRED, "PLAIN needs TLS", shown, NULL,
                     "PLAIN without TLS");
        return;
    }
    if (!mech_offered(c, m)) {
        sasl_failure(c, FG_SASL_COND_INVALID_MECHANISM, NULL, shown, NULL, "mechanism not offered");
        return;
    }
    if (!sasl_payload(n, a, &data, &len, &has)) {
        sasl_failure(c, FG_SASL_COND_INCORRECT_ENCODING, NULL, shown, NULL, "bad base64");
        return;
    }
    struct fg_sasl_params p = {
        .domain = c->domain,
        .cb = have_cb(c) ? &c->cb : NULL,
        .plus_offered = c->plus_offered,
        .get_user = c->io.get_user,
        .ud = c->io.ud,
    };
    c->sasl = fg_sasl_new(m, &p);
    c->mech = m;
    sasl_run(c, data, len, has);
}

/* ---- elements ---- */

static bool is_stanza(const struct fg_xml_node *n)
{
    return fg_xml_ns_eq(n->ns, FG_XML_NS_CLIENT) &&
           (strcmp(n->name, "message") == 0 || strcmp(n->name, "presence") == 0 ||
            strcmp(n->name, "iq") == 0);
}

static bool is_iq(const struct fg_xml_node *n)
{
    return fg_xml_ns_eq(n->ns, FG_XML_NS_CLIENT) && strcmp(n->name, "iq") == 0;
}

static bool attr_is(const struct fg_xml_node *n, const char *name, const char *value)
{
    const char *v = fg_xml_attr(n, name);
    return v && strcmp(v, value) == 0;
}

static void iq_open(struct fg_c2s *c, const char *type, const char *id)
{
    put(c, "<iq type='");
    put(c, type);
    put(c, "'");
    if (id) {
        put(c, " id='");
        put_attr(c, id);
        put(c, "'");
    }
}

static void iq_error(struct fg_c2s *c, const char *id, const char *type, const char *cond)
{
    iq_open(c, "error", id);
    put(c, "><error type='");
    put(c, type);
    put(c, "'><");
    put(c, cond);
    put(c, " xmlns='" FG_XML_NS_STANZA_ERRORS "'/></error></iq>");
}

static void iq_result(struct fg_c2s *c, const char *id)
{
    iq_open(c, "result", id);
    put(c, "/>");
}

static void do_bind(struct fg_c2s *c, struct fg_xml_node *iq, struct fg_xml_node *bind)
{
    const char *id = fg_xml_attr(iq, "id");
    if (!attr_is(iq, "type", "set")) {
        iq_error(c, id, "modify", "bad-request");
        return;
    }
    if (c->st == ST_SESSION) {
        iq_error(c, id, "cancel", "not-allowed"); /* one resource per stream */
        return;
    }
    const char *resource = NULL;
    struct fg_xml_node *r = fg_xml_child(bind, "resource", FG_XML_NS_BIND);
    if (r) {
        size_t rl = 0;
        const char *t = fg_xml_text(r, &rl);
        if (rl > RESOURCE_MAX) {
            iq_error(c, id, "modify", "bad-request");
            return;
        }
        if (rl)
            resource = t;
    }
    char full[FULL_JID_MAX];
    full[0] = '\0';
    int rc = c->io.bind ? c->io.bind(c->io.ud, c->bare, resource, full, sizeof full) : FG_EIO;
    full[sizeof full - 1] = '\0';
    if (c->st == ST_CLOSED)
        return;
    if (rc == FG_OK && !full[0])
        rc = FG_EIO;
    if (rc != FG_OK) {
        fg_log(FG_LOG_INFO, "c2s-bind-failed", "user", c->bare, "address", peer(c), "reason",
               fg_strerror(rc), NULL);
        switch (rc) {
        case FG_EINVAL:
            iq_error(c, id, "modify", "bad-request");
            break;
        case FG_EEXISTS:
            iq_error(c, id, "cancel", "conflict");
            break;
        case FG_ELIMIT:
            iq_error(c, id, "wait", "resource-constraint");
            break;
        case FG_EREFUSED:
            iq_error(c, id, "cancel", "not-allowed");
            break;
        default:
            iq_error(c, id, "wait", "internal-server-error");
            break;
        }
        return;
    }
    c->jid = fg_strdup(full);
    c->st = ST_SESSION;
    c->trim_after_feed = true;
    iq_open(c, "result", id);
    put(c, "><bind xmlns='" FG_XML_NS_BIND "'><jid>");
    put_text(c, full);
    put(c, "</jid></bind></iq>");
    fg_log(FG_LOG_DEBUG, "c2s-bind", "jid", full, "address", peer(c), NULL);
}

/* Bind and session iqs, handled here in both ST_BIND and ST_SESSION. */
static bool negotiation_iq(struct fg_c2s *c, struct fg_xml_node *n)
{
    struct fg_xml_node *b = fg_xml_child(n, "bind", FG_XML_NS_BIND);
    if (b && !attr_is(n, "type", "result") && !attr_is(n, "type", "error")) {
        do_bind(c, n, b);
        return true;
    }
    if (fg_xml_child(n, "session", FG_XML_NS_SESSION) && attr_is(n, "type", "set")) {
        iq_result(c, fg_xml_attr(n, "id")); /* RFC 3921 session: nothing left to do */
        return true;
    }
    return false;
}

static void ping_id(const struct fg_c2s *c, char *out, size_t len)
{
    snprintf(out, len, "c2s-ping-%u", c->ping_seq);
}

/* A bound client's stanza: our ping's answer and negotiation iqs stay here; the rest
 * gets its 'from' stamped (RFC 6120 8.1.2.1) and goes to io->stanza. Returns true when
 * the arena was handed over. */
static bool session_stanza(struct fg_c2s *c, struct fg_xml_node *n, struct fg_arena *a)
{
    if (is_iq(n)) {
        if (c->ping_seq && (attr_is(n, "type", "result") || attr_is(n, "type", "error"))) {
            char id[32];
            ping_id(c, id, sizeof id);
            if (attr_is(n, "id", id))
                return false;
        }
        if (negotiation_iq(c, n))
            return false;
    }
    if (!c->io.stanza)
        return false;
    fg_xml_set_attr(a, n, "from", c->jid);
    c->io.stanza(c->io.ud, n, a);
    return true;
}

static void on_stanza(void *ud, struct fg_xml_node *n, struct fg_arena *a)
{
    struct fg_c2s *c = ud;
    bool handed = false;
    if (c->st == ST_CLOSED || n->type != FG_XML_ELEMENT)
        goto done;
    if (fg_xml_ns_eq(n->ns, FG_XML_NS_STREAMS) && strcmp(n->name, "error") == 0) {
        struct fg_xml_node *cond = fg_xml_child(n, NULL, FG_XML_NS_STREAM_ERRORS);
        fg_log(FG_LOG_INFO, "c2s-peer-stream-error", "condition", cond ? cond->name : "", "address",
               peer(c), "user", c->jid ? c->jid : c->bare, NULL);
        end_stream(c, NULL, NULL);
        goto done;
    }
    switch (c->st) {
    case ST_NEG:
        if (fg_xml_ns_eq(n->ns, FG_XML_NS_TLS) && strcmp(n->name, "starttls") == 0) {
            if (c->tls || !c->io.start_tls || c->sasl) {
                put(c, "<failure xmlns='" FG_XML_NS_TLS "'/>"); /* RFC 6120 5.4.2.2 */
                end_stream(c, NULL, NULL);
                goto done;
            }
            put(c, "<proceed xmlns='" FG_XML_NS_TLS "'/>");
            flush(c);
            c->st = ST_WAIT_TLS;
            c->drop_rest = true;
            fg_xml_parser_stop(c->parser);
            c->io.start_tls(c->io.ud);
        } else if (fg_xml_ns_eq(n->ns, FG_XML_NS_SASL) &&
                   (strcmp(n->name, "auth") == 0 || strcmp(n->name, "response") == 0 ||
                    strcmp(n->name, "abort") == 0)) {
            sasl_element(c, n->name, fg_xml_attr(n, "mechanism"), n, a);
        } else if (is_stanza(n)) {
            end_stream(c, "not-authorized", "authenticate first");
        } else {
            end_stream(c, "unsupported-stanza-type", NULL);
        }
        break;
    case ST_BIND:
        if (is_iq(n) && negotiation_iq(c, n))
            break;
        if (is_stanza(n))
            end_stream(c, "not-authorized", "bind a resource first");
        else
            end_stream(c, "unsupported-stanza-type", NULL);
        break;
    case ST_SESSION:
        if (is_stanza(n))
            handed = session_stanza(c, n, a);
        else
            end_stream(c, "unsupported-stanza-type", NULL);
        break;
    default:
        break;
    }
done:
    if (c->st != ST_CLOSED)
        flush(c);
    if (!handed)
        fg_arena_free(a);
}

static void on_close(void *ud)
{
    struct fg_c2s *c = ud;
    fg_log(FG_LOG_DEBUG, "c2s-close", "address", peer(c), "user", c->jid ? c->jid : c->bare, NULL);
    end_stream(c, NULL, NULL);
}

static void on_error(void *ud, enum fg_xml_cond cond, const char *detail)
{
    end_stream(ud, fg_xml_cond_name(cond), detail);
}

static const struct fg_xml_callbacks parser_cb = {
    .header = on_header,
    .stanza = on_stanza,
    .close = on_close,
    .error = on_error,
};

/* ---- public ---- */

struct fg_c2s *fg_c2s_new(const struct fg_c2s_config *cfg, const struct fg_c2s_io *io,
                          bool direct_tls, const char *peer_addr)
{
    struct fg_c2s *c = fg_calloc(1, sizeof *c);
    c->cfg = *cfg;
    c->io = *io;
    struct fg_xml_limits lim;
    fg_xml_limits_default(&lim);
    if (cfg->max_stanza_size)
        lim.max_stanza = cfg->max_stanza_size;
    if (cfg->max_depth > 0)
        lim.max_depth = (unsigned)cfg->max_depth;
    c->parser = fg_xml_parser_new(&lim, &parser_cb, c);
    fg_xml_scope_init(&c->scope, FG_XML_NS_CLIENT);
    c->st = ST_HEADER;
    c->tls = c->direct_tls = direct_tls;
    c->peer = peer_addr ? fg_strdup(peer_addr) : NULL;
    return c;
}

void fg_c2s_free(struct fg_c2s *c)
{
    if (!c)
        return;
    fg_xml_parser_free(c->parser);
    fg_sasl_free(c->sasl);
    fg_buf_free(&c->out);
    fg_buf_free(&c->raw);
    fg_free(c->peer);
    fg_free(c->bare);
    fg_free(c->jid);
    fg_free(c);
}

void fg_c2s_feed(struct fg_c2s *c, const char *data, size_t len)
{
    if (!c || c->in_parser || c->st == ST_CLOSED || c->st == ST_WAIT_TLS)
        return;
    c->rx = true;
    while (c->st != ST_CLOSED) {
        size_t used = len;
        c->in_parser = true;
        int rc = fg_xml_parser_feed(c->parser, data, len, &used);
        c->in_parser = false;
        if (c->st == ST_CLOSED)
            return;
        if (c->drop_rest) {
            /* after <starttls/>: what follows is not ours to read in the clear */
            c->drop_rest = false;
            if (c->restart) {
                c->restart = false;
                fg_xml_parser_reset(c->parser);
            }
            return;
        }
        if (c->restart) {
            c->restart = false;
            fg_xml_parser_reset(c->parser);
            if (used >= len)
                return;
            data += used;
            len -= used;
            continue;
        }
        if (rc != FG_OK)
            end_stream(c, "internal-server-error", "the XML parser refused the data");
        break;
    }
    /* The login exchange grew the parser (expat's buffers, about 9 KB); an idle session
     * needs none of it. Rebuilding costs about 2 µs on the next stanza, once. */
    if (c->trim_after_feed && c->st == ST_SESSION) {
        c->trim_after_feed = false;
        fg_xml_parser_trim(c->parser);
    }
}

void fg_c2s_tls_ready(struct fg_c2s *c, const struct fg_c2s_tls *info)
{
    if (!c || c->st == ST_CLOSED || c->tls_info)
        return;
    bool direct_start = c->direct_tls && c->st == ST_HEADER && !c->header_sent;
    if (c->st != ST_WAIT_TLS && !direct_start)
        return;
    c->tls = true;
    c->tls_info = true;
    if (info) {
        if (info->version)
            snprintf(c->tls_version, sizeof c->tls_version, "%s", info->version);
        if (info->tls_exporter && info->tls_exporter_len && info->tls_exporter_len <= CB_MAX) {
            memcpy(c->cb_exporter, info->tls_exporter, info->tls_exporter_len);
            c->cb.tls_exporter = c->cb_exporter;
            c->cb.tls_exporter_len = info->tls_exporter_len;
        }
        if (info->tls_unique && info->tls_unique_len && info->tls_unique_len <= CB_MAX) {
            memcpy(c->cb_unique, info->tls_unique, info->tls_unique_len);
            c->cb.tls_unique = c->cb_unique;
            c->cb.tls_unique_len = info->tls_unique_len;
        }
    }
    if (c->st == ST_WAIT_TLS) {
        c->st = ST_HEADER;
        c->header_sent = false;
        c->domain[0] = '\0';
        if (c->in_parser)
            c->restart = true;
        else
            fg_xml_parser_reset(c->parser);
    }
}

void fg_c2s_close(struct fg_c2s *c, const char *condition)
{
    if (c)
        end_stream(c, condition, NULL);
}

void fg_c2s_tick(struct fg_c2s *c, uint64_t now_ms)
{
    if (!c || c->st == ST_CLOSED || c->cfg.idle_timeout_s <= 0 || c->in_parser)
        return;
    uint64_t idle = (uint64_t)c->cfg.idle_timeout_s * 1000;
    if (!c->clock || c->rx) {
        c->clock = true;
        c->rx = false;
        c->ping_out = false;
        c->last_rx = now_ms;
        return;
    }
    /* quiet since the last tick: give memory back while it waits */
    if (c->st == ST_SESSION || c->st == ST_BIND) {
        fg_xml_parser_trim(c->parser);
        fg_buf_free(&c->out);
    }
    uint64_t quiet = now_ms > c->last_rx ? now_ms - c->last_rx : 0;
    if (c->st != ST_SESSION) {
        if (quiet >= idle)
            end_stream(c, "connection-timeout", "no data received in time");
        return;
    }
    if (!c->ping_out) {
        if (quiet < idle)
            return;
        char id[32];
        c->ping_seq++;
        ping_id(c, id, sizeof id);
        iq_open(c, "get", id);
        put(c, " from='");
        put_attr(c, c->domain);
        put(c, "' to='");
        put_attr(c, c->jid);
        put(c, "'><ping xmlns='" NS_PING "'/></iq>");
        flush(c);
        c->ping_out = true;
        c->ping_at = now_ms;
        return;
    }
    uint64_t grace = idle < GRACE_MS ? idle : GRACE_MS;
    if (now_ms - c->ping_at >= grace)
        end_stream(c, "connection-timeout", "no answer to ping");
}

const char *fg_c2s_jid(const struct fg_c2s *c)
{
    return c ? c->jid : NULL;
}

bool fg_c2s_authenticated(const struct fg_c2s *c)
{
    return c && c->authenticated;
}

size_t fg_c2s_memory(const struct fg_c2s *c)
{
    size_t n = sizeof *c + fg_xml_parser_memory(c->parser) + c->out.cap + c->raw.cap;
    if (c->peer)
        n += strlen(c->peer) + 1;
    if (c->bare)
        n += strlen(c->bare) + 1;
    if (c->jid)
        n += strlen(c->jid) + 1;
    if (c->sasl)
        n += 2048;
    return n;
}
