/* s2s.c - server-to-server streams in both directions on top of the XML stream parser:
 * header checks, STARTTLS, SASL EXTERNAL, dialback in its three roles, multiplexed domain
 * pairs, stanza address checks, timeouts and keep-alive. Answers are written as text into
 * one reused buffer. Policy questions go to policy/wire.h; routing is the glue's. */
#include "xmpp/s2s.h"
#include "core/alloc.h"
#include "core/buf.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "policy/wire.h"
#include "xml/parser.h"
#include "xmpp/dialback.h"
#include "xmpp/sasl.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define NS_DB_FEATURE "urn:xmpp:features:dialback"
#define NS_PING "urn:xmpp:ping"
#define DEFAULT_EST_S 60
#define DEFAULT_MAX_PAIRS 64
#define SASL_ATTEMPTS 2
#define KEY_MAX 1024   /* bytes of a received dialback key passed on */
#define AUTHZ_MAX 1024 /* bytes of a decoded EXTERNAL authzid */
#define JID_MAX 3071
#define DOM (FG_DOMAIN_MAX + 1)
#define TEXT_MAX 1024

enum state {
    ST_CONNECTING, /* outbound, before fg_s2s_start */
    ST_HEADER,     /* waiting for the peer's stream header */
    ST_FEATURES,   /* outbound: waiting for <stream:features/> */
    ST_NEG,        /* negotiating (inbound: features sent) */
    ST_WAIT_TLS,   /* STARTTLS agreed: waiting for fg_s2s_tls_ready */
    ST_OPEN,       /* established (verify-only outbound: ready) */
    ST_CLOSED,
};

enum step { STEP_NONE, STEP_STARTTLS, STEP_SASL, STEP_DIALBACK };

enum via {
    VIA_EXTERNAL, /* SASL EXTERNAL */
    VIA_KEY,      /* dialback, the key checked by the authoritative server */
    VIA_CERT,     /* dialback, the certificate was the proof (XEP-0344) */
};

struct pair {
    char local[DOM], remote[DOM];
    bool valid;
    bool multiplexed; /* not the stream's first authentication */
    bool cert;        /* the certificate matched remote when it was accepted */
    uint8_t via;
    uint64_t t; /* tick clock when requested; 0 = stamped at the next tick */
};

struct verify {
    char from[DOM], to[DOM];
    char id[FG_DIALBACK_ID_MAX + 1];
    char *key;
    bool sent;
    uint64_t t;
};

struct fg_s2s {
    struct fg_s2s_config cfg;
    struct fg_s2s_io io;
    struct fg_xml_parser *parser;
    struct fg_xml_scope scope;
    enum fg_s2s_dir dir;
    enum state st;
    enum step step;
    bool verify_mode;
    bool tls, direct_tls, header_sent, in_parser, restart, drop_rest;
    bool sasl_done; /* EXTERNAL succeeded: the next header is the restart */
    bool starttls_offered, ext_offered, sasl_wait;
    bool have_partner;
    bool admitted; /* inbound: counted against the connection limits */
    bool local_cert;
    bool peer_dialback, peer_db_errors;
    bool tls_done; /* outbound: TLS settled, db:verify may go */
    bool clock, rx, tx, ping_out;
    bool ending; /* inside end_stream: the last bytes may still go out */
    int sasl_failures;
    unsigned ping_seq;
    uint64_t now, created, last_rx, last_tx, since;
    struct fg_partner partner;    /* inbound: of the header's 'from'; outbound: the remote's */
    char local[DOM], remote[DOM]; /* inbound: header 'to' and 'from'; outbound: main pair */
    char stream_id[FG_DIALBACK_ID_MAX + 1];
    char tls_version[16];
    char ping_id[40];
    struct pair *pairs;
    size_t npairs, cap_pairs;
    struct verify *verifies;
    size_t nverifies, cap_verifies;
    struct fg_buf out;
    char *peer;
    char fail_cond[32];
    char *fail_reason; /* why the stream failed, for io->pair_failed */
};

/* ---- names ---- */

const char *fg_s2s_dir_name(enum fg_s2s_dir d)
{
    return d == FG_S2S_OUT ? "out" : "in";
}

const char *fg_s2s_state_name(enum fg_s2s_state s)
{
    static const char *const names[] = {"connecting", "negotiating", "established", "closing"};
    return (unsigned)s < 4 ? names[s] : "closing";
}

const char *fg_s2s_auth_name(enum fg_s2s_auth a)
{
    static const char *const names[] = {"none", "sasl-external", "dialback"};
    return (unsigned)a < 3 ? names[a] : "none";
}

const char *fg_s2s_verdict_name(enum fg_s2s_verdict v)
{
    static const char *const names[] = {"valid", "invalid", "error", "timeout"};
    return (unsigned)v < 4 ? names[v] : "error";
}

/* ---- small helpers ---- */

/* Text for people; a very long domain may cut it short, which is harmless. */
static void textf(char *out, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void textf(char *out, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, n, fmt, ap);
    va_end(ap);
}

static size_t max_pairs(const struct fg_s2s *s)
{
    return s->cfg.max_pairs > 0 ? (size_t)s->cfg.max_pairs : DEFAULT_MAX_PAIRS;
}

static uint64_t est_ms(const struct fg_s2s *s)
{
    int v = s->cfg.establishment_timeout_s > 0 ? s->cfg.establishment_timeout_s : DEFAULT_EST_S;
    return (uint64_t)v * 1000;
}

static const char *peer(const struct fg_s2s *s)
{
    return s->peer ? s->peer : "";
}

/* The domain a refusal is about: the given one, else the peer's, else its address. */
static const char *who(const struct fg_s2s *s, const char *d)
{
    if (d && *d)
        return d;
    if (s->remote[0])
        return s->remote;
    return peer(s);
}

static bool hosted(const struct fg_s2s *s, const char *d)
{
    for (size_t i = 0; s->cfg.domains && s->cfg.domains[i]; i++)
        if (strcmp(s->cfg.domains[i], d) == 0)
            return true;
    return false;
}

static bool is_ldh_lower(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

/* A domain as received (attribute, header) to its A-label form in out (DOM bytes). */
static bool norm_domain(const char *in, size_t len, char *out)
{
    if (!in || !len || len > 1023)
        return false;
    bool plain = len <= FG_DOMAIN_MAX;
    for (size_t i = 0; plain && i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (!is_ldh_lower(c))
            plain = false;
        out[i] = (char)c;
    }
    if (plain) {
        /* the usual case: already an ASCII name; labels are checked by the lookups */
        if (len > 1 && out[len - 1] == '.')
            len--;
        out[len] = '\0';
        return out[0] != '.' && out[0] != '-' && strstr(out, "..") == NULL;
    }
    char tmp[1024];
    memcpy(tmp, in, len);
    tmp[len] = '\0';
    return fg_domain_normalize(tmp, out, DOM, NULL) == FG_OK;
}

static bool norm_attr(const char *v, char *out)
{
    return v && norm_domain(v, strlen(v), out);
}

/* The domainpart of a JID (RFC 7622 3.2): before the first '/', after the '@'. */
static bool jid_domain(const char *jid, char *out)
{
    if (!jid)
        return false;
    size_t n = strnlen(jid, JID_MAX + 1);
    if (n > JID_MAX)
        return false;
    const char *slash = memchr(jid, '/', n);
    if (slash)
        n = (size_t)(slash - jid);
    const char *at = memchr(jid, '@', n);
    const char *d = at ? at + 1 : jid;
    return norm_domain(d, n - (size_t)(d - jid), out);
}

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

static bool cond_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 40)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || *s == '-'))
            return false;
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The element's text without surrounding XML whitespace. */
static const char *trimmed_text(const struct fg_xml_node *n, size_t *len)
{
    size_t l = 0;
    const char *t = fg_xml_text(n, &l);
    while (l && is_space(*t)) {
        t++;
        l--;
    }
    while (l && is_space(t[l - 1]))
        l--;
    *len = l;
    return t;
}

static bool attr_is(const struct fg_xml_node *n, const char *name, const char *value)
{
    const char *v = fg_xml_attr(n, name);
    return v && strcmp(v, value) == 0;
}

static bool is_el(const struct fg_xml_node *n, const char *ns, const char *name)
{
    return fg_xml_ns_eq(n->ns, ns) && strcmp(n->name, name) == 0;
}

/* ---- output ---- */

/* The buffer is taken out while io->send runs, so a nested close writes into a fresh one
 * (as in c2s.c). */
static void flush(struct fg_s2s *s)
{
    if (!s->out.len)
        return;
    if (s->st == ST_CLOSED && !s->ending) {
        fg_buf_reset(&s->out); /* written by a path that ran on after a close */
        return;
    }
    struct fg_buf b = s->out;
    memset(&s->out, 0, sizeof s->out);
    s->tx = true;
    if (s->io.send)
        s->io.send(s->io.ud, b.data, b.len);
    if (!s->out.data) {
        fg_buf_reset(&b);
        s->out = b;
    } else {
        fg_buf_free(&b);
    }
}

static void put(struct fg_s2s *s, const char *t)
{
    fg_buf_puts(&s->out, t);
}

static void put_attr(struct fg_s2s *s, const char *name, const char *v)
{
    put(s, " ");
    put(s, name);
    put(s, "='");
    fg_xml_escape_attr(&s->out, v, strlen(v));
    put(s, "'");
}

static void put_header(struct fg_s2s *s)
{
    if (s->dir == FG_S2S_IN) {
        if (fg_random_hex(s->stream_id, 16) != FG_OK) {
            static unsigned long fallback;
            snprintf(s->stream_id, sizeof s->stream_id, "s2s%029lx", ++fallback);
        }
        fg_xml_serialize_header(&s->out, &s->scope, true, s->remote[0] ? s->remote : NULL,
                                s->local[0] ? s->local : NULL, s->stream_id, "1.0", "en");
    } else {
        fg_xml_serialize_header(&s->out, &s->scope, true, s->remote, s->local, NULL, "1.0", "en");
    }
    s->header_sent = true;
}

/* The stanza error type RFC 6120 8.3.3 recommends for a condition. */
static const char *error_type(const char *cond)
{
    static const struct {
        const char *cond, *type;
    } types[] = {
        {"forbidden", "auth"},           {"not-authorized", "auth"},
        {"jid-malformed", "modify"},     {"not-acceptable", "modify"},
        {"policy-violation", "modify"},  {"remote-server-timeout", "wait"},
        {"resource-constraint", "wait"}, {"remote-connection-failed", "wait"},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (strcmp(types[i].cond, cond) == 0)
            return types[i].type;
    return "cancel";
}

/* <db:NAME from to [id] type='error'><error><COND/></error></db:NAME> */
static void db_error(struct fg_s2s *s, const char *name, const char *from, const char *to,
                     const char *id, const char *cond)
{
    put(s, "<db:");
    put(s, name);
    put_attr(s, "from", from ? from : "");
    put_attr(s, "to", to ? to : "");
    if (id)
        put_attr(s, "id", id);
    put(s, " type='error'><error type='");
    put(s, error_type(cond));
    put(s, "'><");
    put(s, cond);
    put(s, " xmlns='" FG_XML_NS_STANZA_ERRORS "'/></error></db:");
    put(s, name);
    put(s, ">");
}

static void db_answer(struct fg_s2s *s, const char *name, const char *from, const char *to,
                      const char *id, const char *type)
{
    put(s, "<db:");
    put(s, name);
    put_attr(s, "from", from);
    put_attr(s, "to", to);
    if (id)
        put_attr(s, "id", id);
    put_attr(s, "type", type);
    put(s, "/>");
}

/* ---- pairs ---- */

static struct pair *find_pair(struct fg_s2s *s, const char *local, const char *remote)
{
    for (size_t i = 0; i < s->npairs; i++)
        if (strcmp(s->pairs[i].local, local) == 0 && strcmp(s->pairs[i].remote, remote) == 0)
            return &s->pairs[i];
    return NULL;
}

static size_t valid_pairs(const struct fg_s2s *s)
{
    size_t n = 0;
    for (size_t i = 0; i < s->npairs; i++)
        n += s->pairs[i].valid;
    return n;
}

static struct pair *add_pair(struct fg_s2s *s, const char *local, const char *remote)
{
    if (s->npairs == s->cap_pairs) {
        s->cap_pairs = s->cap_pairs ? s->cap_pairs * 2 : 2;
        s->pairs = fg_realloc(s->pairs, s->cap_pairs * sizeof *s->pairs);
    }
    struct pair *p = &s->pairs[s->npairs++];
    memset(p, 0, sizeof *p);
    snprintf(p->local, sizeof p->local, "%s", local);
    snprintf(p->remote, sizeof p->remote, "%s", remote);
    p->t = s->clock ? s->now : 0;
    return p;
}

static void remove_pair(struct fg_s2s *s, struct pair *p)
{
    size_t i = (size_t)(p - s->pairs);
    memmove(&s->pairs[i], &s->pairs[i + 1], (s->npairs - i - 1) * sizeof *s->pairs);
    s->npairs--;
}

static void remove_verify(struct fg_s2s *s, size_t i)
{
    fg_free(s->verifies[i].key);
    memmove(&s->verifies[i], &s->verifies[i + 1], (s->nverifies - i - 1) * sizeof *s->verifies);
    s->nverifies--;
}

static void set_partner(struct fg_s2s *s, const struct fg_partner *p)
{
    if (s->have_partner)
        fg_partner_clear(&s->partner);
    fg_partner_copy(&s->partner, p);
    s->have_partner = true;
}

/* ---- ending ---- */

static void refuse(struct fg_s2s *s, const char *remote, const char *rule, const char *reason,
                   const char *fix)
{
    fg_free(s->fail_reason);
    s->fail_reason = fg_strdup(reason);
    if (s->io.refused)
        s->io.refused(s->io.ud, who(s, remote), rule, reason, fix ? fix : "");
}

/* Outbound: everything still pending fails with the stream. */
static void report_pending(struct fg_s2s *s)
{
    if (s->dir != FG_S2S_OUT)
        return;
    const char *cond = s->fail_cond[0] ? s->fail_cond : "remote-server-not-found";
    char why[TEXT_MAX];
    if (s->fail_reason)
        textf(why, sizeof why, "%s", s->fail_reason);
    else
        textf(why, sizeof why, "the stream to %s ended before authentication", s->remote);
    while (s->npairs) {
        struct pair p = s->pairs[s->npairs - 1];
        s->npairs--;
        if (!p.valid && s->io.pair_failed)
            s->io.pair_failed(s->io.ud, p.local, p.remote, cond, why);
    }
    while (s->nverifies) {
        struct verify v = s->verifies[s->nverifies - 1];
        s->nverifies--;
        if (s->io.verify_result)
            s->io.verify_result(s->io.ud, v.from, v.to, v.id, FG_S2S_ERROR);
        fg_free(v.key);
    }
}

/* Ends the stream: our header if none was sent (RFC 6120 4.9.1.2), the stream error when
 * cond is set, </stream:stream>, pending outbound work reported, then io->close. */
static void end_stream(struct fg_s2s *s, const char *cond, const char *text)
{
    if (s->st == ST_CLOSED)
        return;
    bool handshake = s->st == ST_WAIT_TLS, connecting = s->st == ST_CONNECTING;
    s->st = ST_CLOSED;
    if (cond && !cond_ok(cond))
        cond = "undefined-condition";
    if (cond)
        fg_log(FG_LOG_INFO, "s2s-stream-error", "dir", fg_s2s_dir_name(s->dir), "condition", cond,
               "local", s->local, "remote", s->remote, "address", peer(s), "text", text, NULL);
    s->ending = true;
    if (!handshake && !connecting) {
        if (!s->header_sent)
            put_header(s);
        if (cond) {
            put(s, "<stream:error><");
            put(s, cond);
            put(s, " xmlns='" FG_XML_NS_STREAM_ERRORS "'/>");
            if (text && *text) {
                put(s, "<text xmlns='" FG_XML_NS_STREAM_ERRORS "' xml:lang='en'>");
                fg_xml_escape_text(&s->out, text, strlen(text));
                put(s, "</text>");
            }
            put(s, "</stream:error>");
        }
        fg_xml_serialize_close(&s->out, &s->scope);
        flush(s);
    } else {
        fg_buf_reset(&s->out);
    }
    s->ending = false;
    if (s->in_parser)
        fg_xml_parser_stop(s->parser);
    report_pending(s);
    if (s->io.close)
        s->io.close(s->io.ud);
}

/* Outbound negotiation failed: explained, its pairs bounce with bounce, the stream ends. */
static void fail_out(struct fg_s2s *s, const char *rule, const char *bounce, const char *cond,
                     const char *reason, const char *fix)
{
    snprintf(s->fail_cond, sizeof s->fail_cond, "%s", bounce);
    refuse(s, s->remote, rule, reason, fix);
    end_stream(s, cond, NULL);
}

/* Inbound: counts the stream against p's connection limits, once (io->admit); false
 * when refused, explained and the stream ended. */
static bool admit(struct fg_s2s *s, const struct fg_partner *p, const char *remote)
{
    if (s->dir != FG_S2S_IN || s->admitted || !s->io.admit) {
        s->admitted = true;
        return true;
    }
    char reason[TEXT_MAX] = "", fix[TEXT_MAX] = "";
    const char *cond = s->io.admit(s->io.ud, p, reason, sizeof reason, fix, sizeof fix);
    if (!cond) {
        s->admitted = true;
        return true;
    }
    refuse(s, remote, "connection-limit", reason, fix);
    end_stream(s, cond, reason);
    return false;
}

/* ---- construction ---- */

static void on_header(void *ud, const struct fg_xml_header *h);
static void on_stanza(void *ud, struct fg_xml_node *n, struct fg_arena *a);
static void on_close(void *ud);
static void on_error(void *ud, enum fg_xml_cond cond, const char *detail);

static const struct fg_xml_callbacks parser_cb = {
    .header = on_header,
    .stanza = on_stanza,
    .close = on_close,
    .error = on_error,
};

static struct fg_s2s *stream_new(const struct fg_s2s_config *cfg, const struct fg_s2s_io *io,
                                 enum fg_s2s_dir dir, bool direct_tls)
{
    struct fg_s2s *s = fg_calloc(1, sizeof *s);
    s->cfg = *cfg;
    s->io = *io;
    s->dir = dir;
    struct fg_xml_limits lim;
    fg_xml_limits_default(&lim);
    if (cfg->max_stanza_size)
        lim.max_stanza = cfg->max_stanza_size;
    if (cfg->max_depth > 0)
        lim.max_depth = (unsigned)cfg->max_depth;
    s->parser = fg_xml_parser_new(&lim, &parser_cb, s);
    fg_xml_scope_init(&s->scope, FG_XML_NS_SERVER);
    fg_xml_scope_bind(&s->scope, "db", FG_XML_NS_DIALBACK);
    s->tls = s->direct_tls = direct_tls;
    return s;
}

struct fg_s2s *fg_s2s_in_new(const struct fg_s2s_config *cfg, const struct fg_s2s_io *io,
                             bool direct_tls, const char *peer_addr)
{
    struct fg_s2s *s = stream_new(cfg, io, FG_S2S_IN, direct_tls);
    s->st = ST_HEADER;
    s->peer = peer_addr ? fg_strdup(peer_addr) : NULL;
    return s;
}

static struct fg_s2s *out_new(const struct fg_s2s_config *cfg, const struct fg_s2s_io *io,
                              const char *local, const char *remote,
                              const struct fg_partner *partner, bool direct_tls, bool verify)
{
    char l[DOM], r[DOM];
    if (!partner || !norm_attr(local, l) || !norm_attr(remote, r))
        return NULL;
    struct fg_s2s *s = stream_new(cfg, io, FG_S2S_OUT, direct_tls);
    s->st = ST_CONNECTING;
    s->verify_mode = verify;
    memcpy(s->local, l, sizeof l);
    memcpy(s->remote, r, sizeof r);
    set_partner(s, partner);
    if (!verify)
        add_pair(s, l, r);
    char rnd[17];
    if (fg_random_hex(rnd, 8) != FG_OK)
        snprintf(rnd, sizeof rnd, "%016lx", (unsigned long)(uintptr_t)s);
    snprintf(s->ping_id, sizeof s->ping_id, "s2s-ping-%s-", rnd);
    s->peer = fg_strdup(r);
    return s;
}

struct fg_s2s *fg_s2s_out_new(const struct fg_s2s_config *cfg, const struct fg_s2s_io *io,
                              const char *local, const char *remote,
                              const struct fg_partner *partner, bool direct_tls)
{
    return out_new(cfg, io, local, remote, partner, direct_tls, false);
}

struct fg_s2s *fg_s2s_verify_new(const struct fg_s2s_config *cfg, const struct fg_s2s_io *io,
                                 const char *local, const char *remote,
                                 const struct fg_partner *partner, bool direct_tls)
{
    return out_new(cfg, io, local, remote, partner, direct_tls, true);
}

void fg_s2s_free(struct fg_s2s *s)
{
    if (!s)
        return;
    fg_xml_parser_free(s->parser);
    if (s->have_partner)
        fg_partner_clear(&s->partner);
    for (size_t i = 0; i < s->nverifies; i++)
        fg_free(s->verifies[i].key);
    fg_free(s->verifies);
    fg_free(s->pairs);
    fg_buf_free(&s->out);
    fg_free(s->peer);
    fg_free(s->fail_reason);
    fg_free(s);
}

/* ====================================================================================
 * Inbound
 * ==================================================================================== */

static void put_db_feature(struct fg_s2s *s)
{
    put(s, "<dialback xmlns='" NS_DB_FEATURE "'><errors/></dialback>");
}

/* Features after a header (SPEC section 3, "Inbound stream set-up"). Returns false when
 * the stream was closed instead. */
static bool in_features(struct fg_s2s *s)
{
    const struct fg_partner *p = s->have_partner ? &s->partner : NULL;
    s->starttls_offered = s->ext_offered = false;
    if (s->sasl_done) {
        put(s, "<stream:features>");
        if (p && p->dialback)
            put_db_feature(s); /* further domains of the partner may multiplex */
        put(s, "</stream:features>");
        return true;
    }
    if (!s->tls) {
        if (!p || fg_policy_tls_required(p)) {
            /* identity unknown, or TLS mandatory: nothing else before TLS (RFC 6120 5.3.1) */
            if (!s->io.start_tls) {
                refuse(s, s->remote, "tls-required",
                       "TLS is required but this server cannot start TLS on this listener",
                       "configure certificates in cert_dir");
                end_stream(s, "policy-violation", NULL);
                return false;
            }
            put(s, "<stream:features><starttls xmlns='" FG_XML_NS_TLS "'><required/></starttls>"
                   "</stream:features>");
            s->starttls_offered = true;
            return true;
        }
        put(s, "<stream:features>");
        if (fg_policy_tls_allowed(p) && s->io.start_tls) {
            put(s, "<starttls xmlns='" FG_XML_NS_TLS "'/>");
            s->starttls_offered = true;
        }
        if (fg_policy_dialback_allowed(p, false))
            put_db_feature(s);
        put(s, "</stream:features>");
        return true;
    }
    if (!p) {
        /* TLS without a 'from': each dialback request is judged by its own domain */
        put(s, "<stream:features>");
        put_db_feature(s);
        put(s, "</stream:features>");
        return true;
    }
    const char *why = NULL;
    bool cert = s->io.cert_matches && s->io.cert_matches(s->io.ud, s->remote, &why);
    bool ext = fg_policy_external_allowed(p, true) && cert;
    bool db = fg_policy_dialback_allowed(p, true);
    if (!ext && !db) {
        char reason[TEXT_MAX], fix[TEXT_MAX];
        const char *cw = why ? why : "it did not verify or does not name that domain";
        if (p->sasl == FG_NEG_REQUIRED) {
            textf(reason, sizeof reason,
                  "the certificate presented by %s cannot authenticate it (%s) and SASL is "
                  "required for %s",
                  s->remote, cw, s->remote);
            textf(fix, sizeof fix,
                  "add the issuing CA of %s to ca_file or fix its certificate, or set --sasl "
                  "optional for %s",
                  s->remote, s->remote);
            refuse(s, s->remote, "sasl-required", reason, fix);
        } else {
            textf(reason, sizeof reason,
                  "the certificate presented by %s cannot authenticate it (%s) and dialback is "
                  "false for %s",
                  s->remote, cw, s->remote);
            textf(fix, sizeof fix,
                  "add the issuing CA of %s to ca_file or fix its certificate, or set "
                  "--dialback true for %s",
                  s->remote, s->remote);
            refuse(s, s->remote, "no-method", reason, fix);
        }
        end_stream(s, "not-authorized", NULL);
        return false;
    }
    put(s, "<stream:features>");
    if (ext) {
        put(s, "<mechanisms xmlns='" FG_XML_NS_SASL "'><mechanism>EXTERNAL</mechanism>");
        if (p->sasl == FG_NEG_REQUIRED)
            put(s, "<required/>");
        put(s, "</mechanisms>");
        s->ext_offered = true;
    }
    if (db)
        put_db_feature(s);
    put(s, "</stream:features>");
    return true;
}

static void in_header(struct fg_s2s *s, const struct fg_xml_header *h)
{
    char to[DOM], from[DOM];
    bool to_ok = h->to && norm_attr(h->to, to) && hosted(s, to);
    if (to_ok && s->sasl_done && strcmp(to, s->local) != 0)
        to_ok = false;
    if (to_ok)
        memcpy(s->local, to, sizeof to);

    if (!h->content_ns || strcmp(h->content_ns, FG_XML_NS_SERVER) != 0) {
        end_stream(s, "invalid-namespace", "the content namespace must be jabber:server");
        return;
    }
    if (!to_ok) {
        end_stream(s, "host-unknown", "this server does not serve that domain");
        return;
    }
    if (!version_ok(h->version)) {
        end_stream(s, "unsupported-version", "version 1.0 is required");
        return;
    }
    if (h->from) {
        if (!norm_attr(h->from, from)) {
            end_stream(s, "invalid-from", "'from' is not a domain name");
            return;
        }
        if (s->remote[0] && strcmp(from, s->remote) != 0) {
            char reason[TEXT_MAX];
            textf(reason, sizeof reason,
                  "the stream from %s named itself %s after TLS or authentication", s->remote,
                  from);
            refuse(s, s->remote, "invalid-from", reason, "the peer must use one domain per stream");
            end_stream(s, "invalid-from", NULL);
            return;
        }
        memcpy(s->remote, from, sizeof from);
    }
    if (s->remote[0]) {
        const struct fg_partner *p =
            s->io.lookup_partner ? s->io.lookup_partner(s->io.ud, s->remote) : NULL;
        if (!p) {
            char fix[TEXT_MAX];
            textf(fix, sizeof fix, "fedgatectl partner new %s", s->remote);
            refuse(s, s->remote, "unlisted", "domain is not a partner", fix);
            end_stream(s, "policy-violation", NULL);
            return;
        }
        set_partner(s, p);
        if (!admit(s, p, s->remote))
            return;
        if (s->tls && !fg_policy_tls_allowed(p)) {
            char reason[TEXT_MAX], fix[TEXT_MAX];
            textf(reason, sizeof reason, "%s connected with TLS but TLS is not-supported for %s",
                  s->remote, s->remote);
            textf(fix, sizeof fix, "set --tls optional for %s", s->remote);
            refuse(s, s->remote, "tls-not-supported", reason, fix);
            end_stream(s, "policy-violation", NULL);
            return;
        }
    }
    put_header(s);
    if (!in_features(s))
        return;
    flush(s);
    s->st = s->sasl_done ? ST_OPEN : ST_NEG;
}

/* ---- inbound SASL EXTERNAL (XEP-0178) ---- */

static void sasl_failure(struct fg_s2s *s, const char *cond, const char *why)
{
    put(s, "<failure xmlns='" FG_XML_NS_SASL "'><");
    put(s, cond);
    put(s, "/></failure>");
    s->sasl_wait = false;
    s->sasl_failures++;
    if (s->have_partner && s->partner.sasl == FG_NEG_REQUIRED) {
        char reason[TEXT_MAX], fix[TEXT_MAX];
        textf(reason, sizeof reason, "SASL EXTERNAL from %s failed (%s) and SASL is required",
              who(s, NULL), why);
        textf(fix, sizeof fix, "check the certificate of %s, or set --sasl optional for %s",
              who(s, NULL), who(s, NULL));
        refuse(s, s->remote, "sasl-required", reason, fix);
        end_stream(s, "not-authorized", NULL);
    } else if (s->sasl_failures >= SASL_ATTEMPTS) {
        end_stream(s, "policy-violation", "too many failed authentication attempts");
    }
}

static void sasl_external(struct fg_s2s *s, const struct fg_xml_node *n)
{
    size_t tl = 0;
    const char *t = trimmed_text(n, &tl);
    unsigned char buf[AUTHZ_MAX + 1];
    size_t len = 0;
    if (!(tl == 1 && t[0] == '=') && tl > 0 &&
        fg_sasl_b64_decode(t, tl, buf, AUTHZ_MAX, &len) != FG_OK) {
        sasl_failure(s, "incorrect-encoding", "bad base64");
        return;
    }
    buf[len] = '\0';
    if (len) {
        char authz[DOM];
        if (memchr(buf, '\0', len) || !norm_domain((const char *)buf, len, authz) ||
            strcmp(authz, s->remote) != 0) {
            sasl_failure(s, "invalid-authzid", "the authorization identity is another domain");
            return;
        }
    }
    /* the certificate was checked when EXTERNAL was offered on this TLS session */
    put(s, "<success xmlns='" FG_XML_NS_SASL "'/>");
    s->sasl_wait = false;
    struct pair *p = find_pair(s, s->local, s->remote);
    if (!p)
        p = add_pair(s, s->local, s->remote);
    p->valid = true;
    p->via = VIA_EXTERNAL;
    p->cert = true;
    p->multiplexed = false;
    s->sasl_done = true;
    s->since = s->now;
    s->st = ST_HEADER; /* the peer restarts the stream (RFC 6120 6.4.6) */
    s->header_sent = false;
    s->restart = true;
    if (s->in_parser)
        fg_xml_parser_stop(s->parser);
    flush(s);
    if (s->io.authenticated)
        s->io.authenticated(s->io.ud, s->local, s->remote, FG_S2S_AUTH_SASL_EXTERNAL);
}

static void in_sasl(struct fg_s2s *s, const struct fg_xml_node *n)
{
    if (strcmp(n->name, "abort") == 0) {
        sasl_failure(s, "aborted", "aborted by the peer");
        return;
    }
    if (strcmp(n->name, "response") == 0) {
        if (!s->sasl_wait) {
            sasl_failure(s, "malformed-request", "response without auth");
            return;
        }
        sasl_external(s, n);
        return;
    }
    if (strcmp(n->name, "auth") != 0) {
        end_stream(s, "unsupported-stanza-type", NULL);
        return;
    }
    if (s->sasl_wait || valid_pairs(s)) {
        sasl_failure(s, "malformed-request", "auth during an exchange or after authentication");
        return;
    }
    if (!s->tls) {
        sasl_failure(s, "encryption-required", "auth before TLS");
        return;
    }
    if (!s->ext_offered || !attr_is(n, "mechanism", "EXTERNAL")) {
        sasl_failure(s, "invalid-mechanism", "mechanism not offered");
        return;
    }
    size_t tl = 0;
    fg_xml_text(n, &tl);
    if (tl == 0) {
        /* no initial response: an empty challenge asks for it (RFC 6120 6.4.2) */
        put(s, "<challenge xmlns='" FG_XML_NS_SASL "'/>");
        s->sasl_wait = true;
        return;
    }
    sasl_external(s, n);
}

/* ---- inbound dialback (receiving and authoritative roles) ---- */

static void pair_valid(struct fg_s2s *s, struct pair *p)
{
    bool first = valid_pairs(s) == 0;
    p->valid = true;
    db_answer(s, "result", p->local, p->remote, NULL, "valid");
    char local[DOM], remote[DOM];
    memcpy(local, p->local, DOM);
    memcpy(remote, p->remote, DOM);
    if (first) {
        s->since = s->now;
        if (s->st == ST_NEG)
            s->st = ST_OPEN;
        if (!s->remote[0])
            memcpy(s->remote, remote, DOM);
    }
    if (!s->have_partner && s->io.lookup_partner) {
        const struct fg_partner *pp = s->io.lookup_partner(s->io.ud, remote);
        if (pp)
            set_partner(s, pp);
    }
    flush(s);
    if (s->io.authenticated && s->st != ST_CLOSED)
        s->io.authenticated(s->io.ud, local, remote, FG_S2S_AUTH_DIALBACK);
}

static void db_result_in(struct fg_s2s *s, const struct fg_xml_node *n)
{
    if (fg_xml_attr(n, "type"))
        return; /* an answer on our inbound stream: unsolicited (no XEP-0288 here) */
    const char *rf = fg_xml_attr(n, "from"), *rt = fg_xml_attr(n, "to");
    if (!rf || !rt || !*rf || !*rt) {
        end_stream(s, "improper-addressing", "db:result needs 'from' and 'to'");
        return;
    }
    char f[DOM], t[DOM];
    if (!norm_attr(rf, f) || !norm_attr(rt, t)) {
        db_error(s, "result", rt, rf, NULL, "jid-malformed");
        return;
    }
    if (!hosted(s, t)) {
        db_error(s, "result", rt, rf, NULL, "item-not-found");
        return;
    }
    struct pair *existing = find_pair(s, t, f);
    if (existing) {
        if (existing->valid)
            db_answer(s, "result", t, f, NULL, "valid");
        return; /* pending: the first request will be answered */
    }
    if (s->npairs >= max_pairs(s)) {
        db_error(s, "result", t, f, NULL, "resource-constraint");
        return;
    }
    const struct fg_partner *p = s->io.lookup_partner ? s->io.lookup_partner(s->io.ud, f) : NULL;
    char reason[TEXT_MAX], fix[TEXT_MAX];
    if (!p) {
        textf(fix, sizeof fix, "fedgatectl partner new %s", f);
        refuse(s, f, "unlisted", "domain is not a partner", fix);
        db_error(s, "result", t, f, NULL, "policy-violation");
        return;
    }
    if (!admit(s, p, f))
        return;
    bool other = s->have_partner && strcmp(p->domain, s->partner.domain) != 0;
    bool first = valid_pairs(s) == 0;
    const char *why = NULL;
    bool cert = s->tls && s->io.cert_matches && s->io.cert_matches(s->io.ud, f, &why);
    const char *cond = NULL, *rule = NULL;
    if (!p->dialback) {
        cond = other ? "policy-violation" : "not-authorized";
        rule = "dialback-disabled";
        textf(reason, sizeof reason, "%s asked for dialback but dialback is false for %s", f, f);
        textf(fix, sizeof fix,
              "set --dialback true for %s, or let %s authenticate with SASL EXTERNAL", f, f);
    } else if (!s->tls && fg_policy_tls_required(p)) {
        cond = "policy-violation";
        rule = "tls-required";
        textf(reason, sizeof reason, "%s asked for dialback before TLS but TLS is required for %s",
              f, f);
        textf(fix, sizeof fix, "set --tls optional for %s or enable TLS on %s", f, f);
    } else if (s->tls && !fg_policy_tls_allowed(p)) {
        cond = "policy-violation";
        rule = "tls-not-supported";
        textf(reason, sizeof reason,
              "%s asked for dialback over TLS but TLS is not-supported for %s", f, f);
        textf(fix, sizeof fix, "set --tls optional for %s", f);
    } else if (p->sasl == FG_NEG_REQUIRED && (first || !cert)) {
        cond = other ? "policy-violation" : "not-authorized";
        rule = "sasl-required";
        textf(reason, sizeof reason,
              first ? "%s asked for dialback but SASL is required for %s"
                    : "%s asked to multiplex by dialback but SASL is required for %s and its "
                      "certificate does not match",
              f, f);
        textf(fix, sizeof fix,
              "let %s authenticate with a certificate (SASL EXTERNAL), or set --sasl optional "
              "for %s",
              f, f);
    }
    if (cond) {
        refuse(s, f, rule, reason, fix);
        db_error(s, "result", t, f, NULL, cond);
        return;
    }
    struct pair *np = add_pair(s, t, f);
    np->multiplexed = !first;
    np->cert = cert;
    if (cert) {
        np->via = VIA_CERT; /* XEP-0344: the certificate proves the domain */
        pair_valid(s, np);
        return;
    }
    np->via = VIA_KEY;
    size_t kl = 0;
    const char *key = trimmed_text(n, &kl);
    if (kl > KEY_MAX) {
        remove_pair(s, np);
        db_error(s, "result", t, f, NULL, "not-acceptable");
        return;
    }
    char *k = fg_strndup(key, kl);
    char sid[sizeof s->stream_id];
    memcpy(sid, s->stream_id, sizeof sid);
    flush(s);
    if (s->io.verify_dialback)
        s->io.verify_dialback(s->io.ud, f, t, sid, k);
    else
        fg_s2s_in_dialback_result(s, f, t, FG_S2S_ERROR);
    fg_free(k);
}

static void db_verify_in(struct fg_s2s *s, const struct fg_xml_node *n)
{
    if (fg_xml_attr(n, "type"))
        return;
    const char *rf = fg_xml_attr(n, "from"), *rt = fg_xml_attr(n, "to");
    const char *id = fg_xml_attr(n, "id");
    if (!rf || !rt || !id || !*rf || !*rt || !*id) {
        end_stream(s, "improper-addressing", "db:verify needs 'from', 'to' and 'id'");
        return;
    }
    char r[DOM], o[DOM];
    if (!norm_attr(rf, r) || !norm_attr(rt, o)) {
        db_error(s, "verify", rt, rf, id, "jid-malformed");
        return;
    }
    if (!hosted(s, o)) {
        db_error(s, "verify", rt, rf, id, "item-not-found");
        return;
    }
    if (strlen(id) > FG_DIALBACK_ID_MAX) {
        db_error(s, "verify", o, r, id, "not-acceptable");
        return;
    }
    const struct fg_partner *p = s->io.lookup_partner ? s->io.lookup_partner(s->io.ud, r) : NULL;
    if (!p || (!s->tls && fg_policy_tls_required(p))) {
        char reason[TEXT_MAX], fix[TEXT_MAX];
        if (!p) {
            textf(fix, sizeof fix, "fedgatectl partner new %s", r);
            refuse(s, r, "unlisted", "domain is not a partner", fix);
        } else {
            textf(reason, sizeof reason,
                  "%s asked to verify a dialback key before TLS but TLS is required for %s", r, r);
            textf(fix, sizeof fix, "set --tls optional for %s or enable TLS on %s", r, r);
            refuse(s, r, "tls-required", reason, fix);
        }
        db_error(s, "verify", o, r, id, "policy-violation");
        return;
    }
    char want[FG_DIALBACK_KEY_LEN + 1];
    bool ok = false;
    size_t kl = 0;
    const char *key = trimmed_text(n, &kl);
    if (s->io.dialback_key && s->io.dialback_key(s->io.ud, r, o, id, want, sizeof want) == FG_OK)
        ok = fg_dialback_key_equal(want, strnlen(want, sizeof want), key, kl);
    memset(want, 0, sizeof want);
    db_answer(s, "verify", o, r, id, ok ? "valid" : "invalid");
    fg_log(FG_LOG_DEBUG, "s2s-dialback-verify", "local", o, "remote", r, "result",
           ok ? "valid" : "invalid", NULL);
}

/* ---- inbound stanzas ---- */

static bool is_stanza(const struct fg_xml_node *n)
{
    return fg_xml_ns_eq(n->ns, FG_XML_NS_SERVER) &&
           (strcmp(n->name, "message") == 0 || strcmp(n->name, "presence") == 0 ||
            strcmp(n->name, "iq") == 0);
}

/* Returns true when the arena was handed over. */
static bool stanza_in(struct fg_s2s *s, struct fg_xml_node *n, struct fg_arena *a)
{
    if (!valid_pairs(s)) {
        char reason[TEXT_MAX];
        textf(reason, sizeof reason, "%s sent a stanza before authenticating", who(s, NULL));
        refuse(s, s->remote, "not-authorized", reason,
               "the peer must finish TLS, SASL or dialback as this partner's settings say");
        end_stream(s, "not-authorized", NULL);
        return false;
    }
    char fd[DOM], td[DOM];
    const char *from = fg_xml_attr(n, "from"), *to = fg_xml_attr(n, "to");
    if (!from || !to || !jid_domain(from, fd) || !jid_domain(to, td)) {
        end_stream(s, "improper-addressing", "a stanza needs valid 'from' and 'to'");
        return false;
    }
    if (!hosted(s, td)) {
        end_stream(s, "host-unknown", "this server does not serve that domain");
        return false;
    }
    struct pair *p = find_pair(s, td, fd);
    if (!p || !p->valid) {
        end_stream(s, "invalid-from", "that sender domain is not authenticated on this stream");
        return false;
    }
    if (!s->io.stanza)
        return false;
    s->io.stanza(s->io.ud, n, a);
    return true;
}

static bool in_element(struct fg_s2s *s, struct fg_xml_node *n, struct fg_arena *a)
{
    if (fg_xml_ns_eq(n->ns, FG_XML_NS_TLS) && strcmp(n->name, "starttls") == 0) {
        if (s->st != ST_NEG || s->tls || !s->starttls_offered || !s->io.start_tls) {
            if (s->st == ST_NEG && !s->tls && s->have_partner &&
                !fg_policy_tls_allowed(&s->partner)) {
                /* a peer that insists on TLS (as a server requiring encryption does): the
                 * failed link is explained, not only closed */
                char reason[TEXT_MAX], fix[TEXT_MAX];
                textf(reason, sizeof reason,
                      "%s asked for STARTTLS but TLS is not-supported for %s", s->remote,
                      s->remote);
                textf(fix, sizeof fix, "set --tls optional for %s", s->remote);
                refuse(s, s->remote, "tls-not-supported", reason, fix);
            }
            put(s, "<failure xmlns='" FG_XML_NS_TLS "'/>"); /* RFC 6120 5.4.2.2 */
            end_stream(s, NULL, NULL);
            return false;
        }
        put(s, "<proceed xmlns='" FG_XML_NS_TLS "'/>");
        flush(s);
        s->st = ST_WAIT_TLS;
        s->drop_rest = true;
        fg_xml_parser_stop(s->parser);
        s->io.start_tls(s->io.ud);
        return false;
    }
    if (fg_xml_ns_eq(n->ns, FG_XML_NS_SASL)) {
        if (s->st != ST_NEG) {
            end_stream(s, "unsupported-stanza-type", NULL);
            return false;
        }
        in_sasl(s, n);
        return false;
    }
    if (is_el(n, FG_XML_NS_DIALBACK, "result")) {
        db_result_in(s, n);
        return false;
    }
    if (is_el(n, FG_XML_NS_DIALBACK, "verify")) {
        db_verify_in(s, n);
        return false;
    }
    if (is_stanza(n))
        return stanza_in(s, n, a);
    end_stream(s, "unsupported-stanza-type", NULL);
    return false;
}

void fg_s2s_in_dialback_result(struct fg_s2s *s, const char *from, const char *to,
                               enum fg_s2s_verdict v)
{
    if (!s || s->dir != FG_S2S_IN || s->st == ST_CLOSED || !from || !to)
        return;
    struct pair *p = find_pair(s, to, from);
    if (!p || p->valid)
        return;
    if (v == FG_S2S_VALID) {
        pair_valid(s, p);
        return;
    }
    char local[DOM], remote[DOM], reason[TEXT_MAX], fix[TEXT_MAX];
    memcpy(local, p->local, DOM);
    memcpy(remote, p->remote, DOM);
    remove_pair(s, p);
    if (v == FG_S2S_INVALID) {
        textf(reason, sizeof reason,
              "the authoritative server of %s answered that the dialback key is invalid "
              "(someone may be spoofing %s)",
              remote, remote);
        textf(fix, sizeof fix,
              "nothing if %s did not connect; else check its dialback secret and DNS", remote);
        refuse(s, remote, "dialback-invalid", reason, fix);
        if (valid_pairs(s)) {
            db_error(s, "result", local, remote, NULL, "forbidden");
            flush(s);
        } else {
            db_answer(s, "result", local, remote, NULL, "invalid");
            end_stream(s, NULL, NULL); /* XEP-0220 2.2.1: MUST close */
        }
        return;
    }
    textf(reason, sizeof reason,
          v == FG_S2S_TIMEOUT
              ? "the authoritative server of %s did not answer the dialback verification in time"
              : "the authoritative server of %s could not be reached to verify its dialback key",
          remote);
    textf(fix, sizeof fix, "check DNS and port 5269 of %s from this server", remote);
    refuse(s, remote, "dialback-error", reason, fix);
    db_error(s, "result", local, remote, NULL,
             v == FG_S2S_TIMEOUT ? "remote-server-timeout" : "remote-server-not-found");
    flush(s);
}

/* ====================================================================================
 * Outbound
 * ==================================================================================== */

static void send_verifies(struct fg_s2s *s)
{
    for (size_t i = 0; i < s->nverifies; i++) {
        struct verify *v = &s->verifies[i];
        if (v->sent)
            continue;
        put(s, "<db:verify");
        put_attr(s, "from", v->from);
        put_attr(s, "to", v->to);
        put_attr(s, "id", v->id);
        put(s, ">");
        fg_xml_escape_text(&s->out, v->key, strlen(v->key));
        put(s, "</db:verify>");
        v->sent = true;
    }
}

/* Our db:result for pair p; false when no key could be made. */
static bool send_db_result(struct fg_s2s *s, const struct pair *p)
{
    char key[FG_DIALBACK_KEY_LEN + 1];
    if (!s->stream_id[0] || !s->io.dialback_key ||
        s->io.dialback_key(s->io.ud, p->remote, p->local, s->stream_id, key, sizeof key) != FG_OK)
        return false;
    key[FG_DIALBACK_KEY_LEN] = '\0';
    put(s, "<db:result");
    put_attr(s, "from", p->local);
    put_attr(s, "to", p->remote);
    put(s, ">");
    put(s, key);
    put(s, "</db:result>");
    memset(key, 0, sizeof key);
    return true;
}

static void out_established(struct fg_s2s *s, enum fg_s2s_auth method)
{
    s->st = ST_OPEN;
    s->since = s->now;
    send_verifies(s);
    flush(s);
    if (!s->verify_mode && s->io.authenticated)
        s->io.authenticated(s->io.ud, s->local, s->remote, method);
}

/* Dialback for the main pair, or the failure that explains why not. */
static void out_dialback(struct fg_s2s *s, const char *after)
{
    const struct fg_partner *p = &s->partner;
    const char *r = s->remote;
    char reason[TEXT_MAX], fix[TEXT_MAX];
    if (fg_policy_dialback_allowed(p, s->tls) && s->peer_dialback && s->npairs) {
        s->pairs[0].via = VIA_KEY;
        if (send_db_result(s, &s->pairs[0])) {
            s->step = STEP_DIALBACK;
            s->st = ST_NEG;
            flush(s);
            return;
        }
        textf(reason, sizeof reason,
              "no dialback key could be made for %s (the stream id of %s is missing or "
              "too long)",
              r, r);
        fail_out(s, "no-method", "remote-server-not-found", "undefined-condition", reason,
                 "check the stream header that the peer sends");
        return;
    }
    if (p->dialback && fg_policy_dialback_allowed(p, s->tls)) {
        textf(reason, sizeof reason, "%s, and %s does not offer dialback", after, r);
        textf(fix, sizeof fix, "enable dialback or certificate authentication on %s", r);
        fail_out(s, "no-method", "remote-server-not-found", "policy-violation", reason, fix);
        return;
    }
    if (!p->dialback) {
        textf(reason, sizeof reason, "%s%s, and dialback is false for %s", after,
              s->tls ? "" : " and TLS was not used", r);
        textf(fix, sizeof fix,
              "set --dialback true for %s, or make SASL EXTERNAL work between the two servers "
              "(certificates%s)",
              r, s->tls ? "" : ", TLS");
        fail_out(s, "dialback-disabled", "remote-server-not-found", "policy-violation", reason,
                 fix);
        return;
    }
    textf(reason, sizeof reason, "%s, and the settings of %s allow no dialback here", after, r);
    textf(fix, sizeof fix, "review --tls, --sasl and --dialback for %s", r);
    fail_out(s, "no-method", "remote-server-not-found", "policy-violation", reason, fix);
}

/* After TLS is settled: SASL EXTERNAL, else dialback, as the partner allows. */
static void out_auth(struct fg_s2s *s, bool peer_external)
{
    const struct fg_partner *p = &s->partner;
    const char *r = s->remote, *l = s->local;
    char reason[TEXT_MAX], fix[TEXT_MAX];
    if (s->tls && p->sasl == FG_NEG_REQUIRED) {
        const char *why = NULL;
        if (!s->io.cert_matches || !s->io.cert_matches(s->io.ud, r, &why)) {
            textf(reason, sizeof reason,
                  "the certificate presented by %s cannot authenticate it (%s) and SASL is "
                  "required for %s",
                  r, why ? why : "it did not verify or does not name that domain", r);
            textf(fix, sizeof fix,
                  "add the issuing CA of %s to ca_file or fix its certificate, or set --sasl "
                  "optional for %s",
                  r, r);
            fail_out(s, "sasl-required", "remote-server-not-found", "not-authorized", reason,
                     fix);
            return;
        }
    }
    if (fg_policy_external_allowed(p, s->tls) && peer_external && s->local_cert) {
        put(s, "<auth xmlns='" FG_XML_NS_SASL "' mechanism='EXTERNAL'>");
        fg_sasl_b64_encode(&s->out, l, strlen(l));
        put(s, "</auth>");
        s->step = STEP_SASL;
        s->st = ST_NEG;
        flush(s);
        return;
    }
    const char *after;
    if (!s->tls)
        after = "TLS was not used";
    else if (!fg_policy_external_allowed(p, true))
        after = "SASL is not-supported for this partner";
    else if (!s->local_cert)
        after = "no certificate of ours was presented";
    else if (!peer_external)
        after = "the peer does not offer SASL EXTERNAL to us";
    else
        after = "SASL EXTERNAL is not possible";
    if (p->sasl == FG_NEG_REQUIRED) {
        textf(reason, sizeof reason,
              "%s cannot authenticate %s with SASL EXTERNAL (%s) and "
              "SASL is required for %s",
              l, r, after, r);
        if (!s->tls)
            textf(fix, sizeof fix, "set --tls required for %s or enable TLS on %s", r, r);
        else if (!s->local_cert)
            textf(fix, sizeof fix,
                  "install a certificate for %s in cert_dir, or set --sasl "
                  "optional for %s",
                  l, r);
        else
            textf(fix, sizeof fix,
                  "make %s trust the certificate of %s (its CA), or set "
                  "--sasl optional for %s",
                  r, l, r);
        fail_out(s, "sasl-required", "remote-server-not-found", "not-authorized", reason, fix);
        return;
    }
    char ctx[TEXT_MAX];
    textf(ctx, sizeof ctx, "%s cannot use SASL EXTERNAL with %s (%s)", l, r, after);
    out_dialback(s, ctx);
}

static void out_features(struct fg_s2s *s, const struct fg_xml_node *n)
{
    const struct fg_partner *p = &s->partner;
    const char *r = s->remote;
    char reason[TEXT_MAX], fix[TEXT_MAX];
    struct fg_xml_node *tls = fg_xml_child(n, "starttls", FG_XML_NS_TLS);
    struct fg_xml_node *mechs = fg_xml_child(n, "mechanisms", FG_XML_NS_SASL);
    struct fg_xml_node *dbf = fg_xml_child(n, "dialback", NS_DB_FEATURE);
    bool ext = false;
    for (struct fg_xml_node *m = mechs ? fg_xml_child(mechs, "mechanism", FG_XML_NS_SASL) : NULL; m;
         m = fg_xml_next(m, "mechanism", FG_XML_NS_SASL)) {
        size_t ml = 0;
        const char *mt = trimmed_text(m, &ml);
        if (ml == 8 && memcmp(mt, "EXTERNAL", 8) == 0)
            ext = true;
    }
    if (dbf) {
        s->peer_dialback = true;
        s->peer_db_errors = fg_xml_child(dbf, "errors", NS_DB_FEATURE) != NULL;
    }
    if (s->sasl_done) {
        if (s->npairs)
            s->pairs[0].valid = true;
        out_established(s, FG_S2S_AUTH_SASL_EXTERNAL);
        return;
    }
    if (!s->tls) {
        if (tls && fg_policy_tls_allowed(p) && s->io.start_tls) {
            put(s, "<starttls xmlns='" FG_XML_NS_TLS "'/>");
            s->step = STEP_STARTTLS;
            s->st = ST_NEG;
            flush(s);
            return;
        }
        if (fg_policy_tls_required(p)) {
            textf(reason, sizeof reason, "%s offers no STARTTLS but TLS is required for %s", r, r);
            textf(fix, sizeof fix, "set --tls optional for %s or enable TLS on %s", r, r);
            fail_out(s, "tls-required", "remote-server-not-found", "policy-violation", reason, fix);
            return;
        }
        if (tls && fg_xml_child(tls, "required", FG_XML_NS_TLS)) {
            textf(reason, sizeof reason, "%s requires STARTTLS but TLS is not-supported for %s", r,
                  r);
            textf(fix, sizeof fix, "set --tls optional for %s", r);
            fail_out(s, "tls-not-supported", "remote-server-not-found", "policy-violation", reason,
                     fix);
            return;
        }
    }
    s->tls_done = true;
    if (s->verify_mode) {
        out_established(s, FG_S2S_AUTH_NONE);
        return;
    }
    send_verifies(s);
    out_auth(s, ext);
}

static bool header_declares_db(const struct fg_xml_header *h)
{
    for (unsigned i = 0; i < h->ndecls; i++)
        if (h->decls[i].uri && strcmp(h->decls[i].uri, FG_XML_NS_DIALBACK) == 0)
            return true;
    return false;
}

static void out_header(struct fg_s2s *s, const struct fg_xml_header *h)
{
    if (!h->content_ns || strcmp(h->content_ns, FG_XML_NS_SERVER) != 0) {
        end_stream(s, "invalid-namespace", "the content namespace must be jabber:server");
        return;
    }
    if (!version_ok(h->version)) {
        end_stream(s, "unsupported-version", "version 1.0 is required");
        return;
    }
    s->stream_id[0] = '\0';
    if (h->id && *h->id && strlen(h->id) <= FG_DIALBACK_ID_MAX)
        snprintf(s->stream_id, sizeof s->stream_id, "%s", h->id);
    s->peer_dialback = header_declares_db(h);
    s->peer_db_errors = false;
    s->st = ST_FEATURES;
}

static void restart_out(struct fg_s2s *s)
{
    s->st = ST_HEADER;
    s->step = STEP_NONE;
    s->restart = true;
    if (s->in_parser)
        fg_xml_parser_stop(s->parser);
    put_header(s);
    flush(s);
}

static void out_sasl_answer(struct fg_s2s *s, const struct fg_xml_node *n)
{
    if (s->step != STEP_SASL)
        return;
    if (strcmp(n->name, "success") == 0) {
        s->sasl_done = true;
        struct pair *p = s->npairs ? &s->pairs[0] : NULL;
        if (p) {
            p->via = VIA_EXTERNAL; /* valid once the restarted stream is up */
            p->cert = true;
        }
        restart_out(s);
        return;
    }
    if (strcmp(n->name, "challenge") == 0) {
        put(s, "<response xmlns='" FG_XML_NS_SASL "'>");
        fg_sasl_b64_encode(&s->out, s->local, strlen(s->local));
        put(s, "</response>");
        flush(s);
        return;
    }
    /* failure */
    struct fg_xml_node *c = fg_xml_child(n, NULL, FG_XML_NS_SASL);
    char ctx[TEXT_MAX];
    textf(ctx, sizeof ctx, "%s refused SASL EXTERNAL for %s (%s)", s->remote, s->local,
          c ? c->name : "failure");
    if (s->partner.sasl == FG_NEG_REQUIRED) {
        char fix[TEXT_MAX], reason[TEXT_MAX];
        textf(reason, sizeof reason, "%s and SASL is required for %s", ctx, s->remote);
        textf(fix, sizeof fix,
              "make %s trust the certificate of %s (its CA), or set --sasl optional for %s",
              s->remote, s->local, s->remote);
        fail_out(s, "sasl-required", "remote-server-not-found", "not-authorized", reason, fix);
        return;
    }
    out_dialback(s, ctx);
}

static void out_db_result(struct fg_s2s *s, const struct fg_xml_node *n)
{
    const char *type = fg_xml_attr(n, "type");
    char f[DOM], t[DOM];
    if (!type || !norm_attr(fg_xml_attr(n, "from"), f) || !norm_attr(fg_xml_attr(n, "to"), t))
        return;
    struct pair *p = find_pair(s, t, f);
    if (!p || p->valid || !(s->st == ST_OPEN || s->step == STEP_DIALBACK))
        return; /* not a request of ours on this stream: unsolicited */
    bool main = p == &s->pairs[0] && s->st != ST_OPEN;
    char local[DOM], remote[DOM];
    memcpy(local, p->local, DOM);
    memcpy(remote, p->remote, DOM);
    if (strcmp(type, "valid") == 0) {
        p->valid = true;
        if (main) {
            out_established(s, FG_S2S_AUTH_DIALBACK);
        } else if (s->io.authenticated) {
            s->io.authenticated(s->io.ud, local, remote, FG_S2S_AUTH_DIALBACK);
        }
        return;
    }
    char reason[TEXT_MAX], fix[TEXT_MAX];
    const char *rule, *bounce;
    if (strcmp(type, "invalid") == 0) {
        rule = "dialback-invalid";
        bounce = "remote-server-not-found";
        textf(reason, sizeof reason, "%s answered that the dialback key of %s is invalid", remote,
              local);
        textf(fix, sizeof fix,
              "check that %s can reach this server for %s (DNS, port 5269) and that the "
              "dialback secret did not change meanwhile",
              remote, local);
    } else {
        struct fg_xml_node *e = fg_xml_child(n, "error", NULL);
        struct fg_xml_node *c = e ? fg_xml_child(e, NULL, FG_XML_NS_STANZA_ERRORS) : NULL;
        rule = "dialback-error";
        /* XEP-0220 2.6.2: a temporary failure (type wait, or the peer could not reach our
         * authoritative server in time) is a timeout; a refusal is final */
        const char *et = e ? fg_xml_attr(e, "type") : NULL;
        bool temporary = (et && strcmp(et, "wait") == 0) ||
                         (c && (strcmp(c->name, "remote-connection-failed") == 0 ||
                                strcmp(c->name, "remote-server-timeout") == 0));
        bounce = temporary ? "remote-server-timeout" : "remote-server-not-found";
        textf(reason, sizeof reason, "%s refused dialback for %s -> %s: %s", remote, local, remote,
              c ? c->name : "error");
        textf(fix, sizeof fix, "see the logs of %s; check that it serves %s and can reach %s",
              remote, remote, local);
    }
    if (main) {
        fail_out(s, rule, bounce, NULL, reason, fix);
        return;
    }
    remove_pair(s, p);
    refuse(s, remote, rule, reason, fix);
    if (s->io.pair_failed && s->st != ST_CLOSED)
        s->io.pair_failed(s->io.ud, local, remote, bounce, reason);
}

static void out_db_verify(struct fg_s2s *s, const struct fg_xml_node *n)
{
    const char *type = fg_xml_attr(n, "type"), *id = fg_xml_attr(n, "id");
    char f[DOM], t[DOM];
    if (!type || !id || !norm_attr(fg_xml_attr(n, "from"), f) ||
        !norm_attr(fg_xml_attr(n, "to"), t))
        return;
    for (size_t i = 0; i < s->nverifies; i++) {
        struct verify *v = &s->verifies[i];
        if (!v->sent || strcmp(v->from, t) != 0 || strcmp(v->to, f) != 0 || strcmp(v->id, id) != 0)
            continue;
        enum fg_s2s_verdict vd = strcmp(type, "valid") == 0     ? FG_S2S_VALID
                                 : strcmp(type, "invalid") == 0 ? FG_S2S_INVALID
                                                                : FG_S2S_ERROR;
        struct verify copy = *v;
        s->verifies[i].key = NULL;
        remove_verify(s, i);
        if (s->io.verify_result)
            s->io.verify_result(s->io.ud, copy.from, copy.to, copy.id, vd);
        fg_free(copy.key);
        return;
    }
}

static void out_element(struct fg_s2s *s, struct fg_xml_node *n)
{
    if (s->st == ST_FEATURES) {
        if (is_el(n, FG_XML_NS_STREAMS, "features"))
            out_features(s, n);
        else
            end_stream(s, "unsupported-stanza-type", "stream features expected");
        return;
    }
    if (fg_xml_ns_eq(n->ns, FG_XML_NS_TLS)) {
        if (s->step != STEP_STARTTLS)
            return;
        if (strcmp(n->name, "proceed") == 0) {
            s->st = ST_WAIT_TLS;
            s->drop_rest = true;
            fg_xml_parser_stop(s->parser);
            s->io.start_tls(s->io.ud);
            return;
        }
        char reason[TEXT_MAX];
        textf(reason, sizeof reason, "%s refused STARTTLS", s->remote);
        fail_out(s, "tls-failed", "remote-server-not-found", NULL, reason,
                 "see the logs of the partner's server");
        return;
    }
    if (fg_xml_ns_eq(n->ns, FG_XML_NS_SASL)) {
        out_sasl_answer(s, n);
        return;
    }
    if (is_el(n, FG_XML_NS_DIALBACK, "result")) {
        out_db_result(s, n);
        return;
    }
    if (is_el(n, FG_XML_NS_DIALBACK, "verify")) {
        out_db_verify(s, n);
        return;
    }
    if (is_el(n, FG_XML_NS_SERVER, "iq") && fg_s2s_out_pong(s, n))
        return;
    /* stanzas on our outbound stream need XEP-0288, which we do not offer: dropped */
    fg_log(FG_LOG_DEBUG, "s2s-ignored", "dir", "out", "remote", s->remote, "element", n->name,
           NULL);
}

/* ====================================================================================
 * Parser events
 * ==================================================================================== */

static void on_header(void *ud, const struct fg_xml_header *h)
{
    struct fg_s2s *s = ud;
    if (s->st != ST_HEADER)
        return;
    if (s->dir == FG_S2S_IN)
        in_header(s, h);
    else
        out_header(s, h);
}

static void on_stanza(void *ud, struct fg_xml_node *n, struct fg_arena *a)
{
    struct fg_s2s *s = ud;
    bool handed = false;
    if (s->st == ST_CLOSED || n->type != FG_XML_ELEMENT)
        goto done;
    if (is_el(n, FG_XML_NS_STREAMS, "error")) {
        struct fg_xml_node *c = fg_xml_child(n, NULL, FG_XML_NS_STREAM_ERRORS);
        const char *cn = c ? c->name : "";
        fg_log(FG_LOG_INFO, "s2s-peer-stream-error", "dir", fg_s2s_dir_name(s->dir), "condition",
               cn, "local", s->local, "remote", s->remote, "address", peer(s), NULL);
        if (s->dir == FG_S2S_OUT && s->st != ST_OPEN) {
            char reason[TEXT_MAX];
            textf(reason, sizeof reason, "%s closed the stream with <%s/>", s->remote, cn);
            fail_out(s, "peer-error", "remote-server-not-found", NULL, reason,
                     "see the logs of the partner's server");
        } else {
            end_stream(s, NULL, NULL);
        }
        goto done;
    }
    if (s->dir == FG_S2S_IN)
        handed = in_element(s, n, a);
    else
        out_element(s, n);
done:
    if (s->st != ST_CLOSED)
        flush(s);
    if (!handed)
        fg_arena_free(a);
}

static void on_close(void *ud)
{
    struct fg_s2s *s = ud;
    fg_log(FG_LOG_DEBUG, "s2s-close", "dir", fg_s2s_dir_name(s->dir), "local", s->local, "remote",
           s->remote, "address", peer(s), NULL);
    end_stream(s, NULL, NULL);
}

static void on_error(void *ud, enum fg_xml_cond cond, const char *detail)
{
    end_stream(ud, fg_xml_cond_name(cond), detail);
}

/* ====================================================================================
 * Public
 * ==================================================================================== */

void fg_s2s_start(struct fg_s2s *s)
{
    if (!s || s->dir != FG_S2S_OUT || s->st != ST_CONNECTING)
        return;
    if (s->direct_tls && !fg_policy_tls_allowed(&s->partner)) {
        char reason[TEXT_MAX], fix[TEXT_MAX];
        textf(reason, sizeof reason, "direct TLS was chosen for %s but TLS is not-supported for %s",
              s->remote, s->remote);
        textf(fix, sizeof fix, "set --tls optional for %s", s->remote);
        snprintf(s->fail_cond, sizeof s->fail_cond, "remote-server-not-found");
        refuse(s, s->remote, "tls-not-supported", reason, fix);
        s->st = ST_HEADER;
        end_stream(s, "policy-violation", NULL);
        return;
    }
    s->st = ST_HEADER;
    put_header(s);
    flush(s);
}

void fg_s2s_feed(struct fg_s2s *s, const char *data, size_t len)
{
    if (!s || s->in_parser || s->st == ST_CLOSED || s->st == ST_WAIT_TLS || s->st == ST_CONNECTING)
        return;
    s->rx = true;
    while (s->st != ST_CLOSED) {
        size_t used = len;
        s->in_parser = true;
        int rc = fg_xml_parser_feed(s->parser, data, len, &used);
        s->in_parser = false;
        if (s->st == ST_CLOSED)
            return;
        if (s->drop_rest) {
            /* after STARTTLS: what follows is not ours to read in the clear */
            s->drop_rest = false;
            if (s->restart) {
                s->restart = false; /* fg_s2s_tls_ready ran inside io->start_tls */
                fg_xml_parser_reset(s->parser);
            }
            return;
        }
        if (s->restart) {
            s->restart = false;
            fg_xml_parser_reset(s->parser);
            if (used >= len)
                return;
            data += used;
            len -= used;
            continue;
        }
        if (rc != FG_OK)
            end_stream(s, "internal-server-error", "the XML parser refused the data");
        return;
    }
}

void fg_s2s_tls_ready(struct fg_s2s *s, const struct fg_s2s_tls *info)
{
    if (!s || s->st == ST_CLOSED)
        return;
    bool direct_start =
        s->direct_tls &&
        ((s->dir == FG_S2S_IN && s->st == ST_HEADER && !s->header_sent) || s->st == ST_CONNECTING);
    if (s->st != ST_WAIT_TLS && !direct_start)
        return;
    s->tls = true;
    if (info) {
        if (info->version)
            snprintf(s->tls_version, sizeof s->tls_version, "%s", info->version);
        s->local_cert = info->local_cert;
    }
    if (s->st != ST_WAIT_TLS)
        return;
    s->st = ST_HEADER;
    s->header_sent = false;
    s->step = STEP_NONE;
    if (s->in_parser)
        s->restart = true;
    else
        fg_xml_parser_reset(s->parser);
    if (s->dir == FG_S2S_OUT) {
        put_header(s);
        flush(s);
    }
}

void fg_s2s_close(struct fg_s2s *s, const char *condition)
{
    if (s)
        end_stream(s, condition, NULL);
}

static void ping(struct fg_s2s *s)
{
    char id[sizeof s->ping_id + 12];
    s->ping_seq++;
    snprintf(id, sizeof id, "%s%u", s->ping_id, s->ping_seq);
    put(s, "<iq type='get'");
    put_attr(s, "id", id);
    put_attr(s, "from", s->local);
    put_attr(s, "to", s->remote);
    put(s, "><ping xmlns='" NS_PING "'/></iq>");
    s->ping_out = true;
}

static void timeouts(struct fg_s2s *s, uint64_t now)
{
    uint64_t est = est_ms(s);
    /* pending dialback pairs on an established stream */
    for (size_t i = 0; i < s->npairs && s->st != ST_CLOSED;) {
        struct pair *p = &s->pairs[i];
        if (p->valid || !p->t || now - p->t < est || (s->dir == FG_S2S_OUT && s->st != ST_OPEN)) {
            i++;
            continue;
        }
        char local[DOM], remote[DOM], reason[TEXT_MAX];
        memcpy(local, p->local, DOM);
        memcpy(remote, p->remote, DOM);
        if (s->dir == FG_S2S_IN) {
            fg_s2s_in_dialback_result(s, remote, local, FG_S2S_TIMEOUT);
        } else {
            remove_pair(s, p);
            textf(reason, sizeof reason, "%s did not answer dialback for %s in time", remote,
                  local);
            refuse(s, remote, "timeout", reason, "check the logs of the partner's server");
            if (s->io.pair_failed)
                s->io.pair_failed(s->io.ud, local, remote, "remote-server-timeout", reason);
        }
    }
    for (size_t i = 0; i < s->nverifies && s->st != ST_CLOSED;) {
        struct verify *v = &s->verifies[i];
        if (!v->t || now - v->t < est) {
            i++;
            continue;
        }
        struct verify copy = *v;
        s->verifies[i].key = NULL;
        remove_verify(s, i);
        if (s->io.verify_result)
            s->io.verify_result(s->io.ud, copy.from, copy.to, copy.id, FG_S2S_TIMEOUT);
        fg_free(copy.key);
    }
}

void fg_s2s_tick(struct fg_s2s *s, uint64_t now_ms)
{
    if (!s || s->st == ST_CLOSED || s->in_parser)
        return;
    s->now = now_ms;
    if (!s->clock) {
        s->clock = true;
        s->created = s->last_rx = s->last_tx = now_ms;
        s->rx = s->tx = false;
    }
    if (s->rx) {
        s->last_rx = now_ms;
        s->rx = false;
    } else if (s->st != ST_WAIT_TLS) {
        /* quiet since the last tick: give memory back while it waits (as c2s.c) */
        fg_xml_parser_trim(s->parser);
        if (!s->out.len)
            fg_buf_free(&s->out);
    }
    if (s->tx) {
        s->last_tx = now_ms;
        s->tx = false;
    }
    for (size_t i = 0; i < s->npairs; i++)
        if (!s->pairs[i].t)
            s->pairs[i].t = now_ms;
    for (size_t i = 0; i < s->nverifies; i++)
        if (!s->verifies[i].t)
            s->verifies[i].t = now_ms;
    if (s->since == 0 && s->st == ST_OPEN)
        s->since = now_ms;

    uint64_t est = est_ms(s);
    bool open = s->st == ST_OPEN || valid_pairs(s) > 0;
    if (!open && now_ms - s->created >= est) {
        char reason[TEXT_MAX];
        textf(reason, sizeof reason, "%s did not finish stream negotiation within %d s",
              who(s, NULL), (int)(est / 1000));
        snprintf(s->fail_cond, sizeof s->fail_cond, "remote-server-timeout");
        refuse(s, s->remote, "timeout", reason,
               "check that the partner's server is reachable and that its settings match");
        end_stream(s, "connection-timeout", NULL);
        return;
    }
    timeouts(s, now_ms);
    if (s->st == ST_CLOSED)
        return;
    uint64_t quiet = now_ms - s->last_rx;
    if (s->cfg.inactivity_timeout_s > 0 && quiet >= (uint64_t)s->cfg.inactivity_timeout_s * 1000) {
        end_stream(s, "connection-timeout", "no data received in time");
        return;
    }
    if (s->dir != FG_S2S_OUT || s->verify_mode || s->st != ST_OPEN ||
        s->cfg.keepalive_interval_s <= 0)
        return;
    uint64_t iv = (uint64_t)s->cfg.keepalive_interval_s * 1000;
    if (quiet >= 2 * iv) {
        end_stream(s, "connection-timeout", "no data received in twice the keep-alive interval");
        return;
    }
    if (now_ms - s->last_tx >= iv) {
        put(s, " ");
        if (s->partner.keepalive)
            ping(s);
        flush(s);
        s->last_tx = now_ms;
        s->tx = false;
    }
}

/* The pair still satisfies its partner's settings (SPEC section 3, live changes); when
 * not, reason says why. */
static bool pair_allowed(const struct fg_s2s *s, const struct pair *pr, const struct fg_partner *p,
                         char *reason, size_t rlen)
{
    if (!p) {
        snprintf(reason, rlen, "%s is no longer a partner", pr->remote);
        return false;
    }
    if (!s->tls && fg_policy_tls_required(p)) {
        snprintf(reason, rlen, "TLS is now required for %s but this stream is not encrypted",
                 pr->remote);
        return false;
    }
    bool ok;
    if (pr->via == VIA_EXTERNAL)
        ok = fg_policy_external_allowed(p, s->tls);
    else if (pr->multiplexed)
        ok = fg_policy_dialback_pair_allowed(p, s->tls, pr->cert);
    else
        ok = fg_policy_dialback_allowed(p, s->tls);
    if (!ok)
        snprintf(reason, rlen, "the settings of %s no longer allow %s on this stream", pr->remote,
                 pr->via == VIA_EXTERNAL ? "SASL EXTERNAL" : "dialback");
    return ok;
}

bool fg_s2s_recheck(struct fg_s2s *s)
{
    if (!s || s->st == ST_CLOSED)
        return false;
    char reason[TEXT_MAX];
    const char *bad = NULL;
    const struct fg_partner *(*lookup)(void *, const char *) = s->io.lookup_partner;
    /* the stream's own partner (its settings decide what comes next) */
    if (s->have_partner && lookup) {
        const char *d = s->remote[0] ? s->remote : s->partner.domain;
        const struct fg_partner *p = lookup(s->io.ud, d);
        if (!p) {
            textf(reason, sizeof reason, "%s is no longer a partner", who(s, NULL));
            bad = who(s, NULL);
        } else {
            set_partner(s, p);
        }
    }
    for (size_t i = 0; !bad && i < s->npairs; i++) {
        const struct pair *pr = &s->pairs[i];
        if (!pr->valid)
            continue;
        const struct fg_partner *p = lookup ? lookup(s->io.ud, pr->remote) : NULL;
        if (!pair_allowed(s, pr, p, reason, sizeof reason))
            bad = pr->remote;
    }
    if (!bad)
        return true;
    char remote[DOM];
    snprintf(remote, sizeof remote, "%s", bad);
    snprintf(s->fail_cond, sizeof s->fail_cond, "remote-server-not-found");
    refuse(s, remote, "policy-changed", reason,
           "none needed: the link is set up again under the new settings when next used");
    end_stream(s, "policy-violation", NULL);
    return false;
}

static bool stanza_ns_ok(const char *ns)
{
    return fg_xml_ns_eq(ns, FG_XML_NS_CLIENT) || fg_xml_ns_eq(ns, FG_XML_NS_SERVER);
}

int fg_s2s_out_send_stanza(struct fg_s2s *s, const struct fg_xml_node *n)
{
    if (!s || s->dir != FG_S2S_OUT || s->verify_mode || s->st != ST_OPEN)
        return FG_EIO;
    if (!n || n->type != FG_XML_ELEMENT || !stanza_ns_ok(n->ns) ||
        !(strcmp(n->name, "message") == 0 || strcmp(n->name, "presence") == 0 ||
          strcmp(n->name, "iq") == 0))
        return FG_EINVAL;
    char fd[DOM], td[DOM];
    if (!jid_domain(fg_xml_attr(n, "from"), fd) || !jid_domain(fg_xml_attr(n, "to"), td))
        return FG_EINVAL;
    const struct pair *p = find_pair(s, fd, td);
    if (!p || !p->valid)
        return FG_EINVAL;
    /* written in the stream's content namespace whichever of the two it carries */
    struct fg_xml_scope sc = s->scope;
    sc.default_ns = n->ns && *n->ns ? n->ns : FG_XML_NS_SERVER;
    fg_xml_serialize(&s->out, n, &sc);
    flush(s);
    return FG_OK;
}

int fg_s2s_out_add_pair(struct fg_s2s *s, const char *local, const char *remote)
{
    if (!s || s->dir != FG_S2S_OUT || s->verify_mode || s->st != ST_OPEN)
        return FG_EIO;
    char l[DOM], r[DOM];
    if (!norm_attr(local, l) || !norm_attr(remote, r) || !hosted(s, l))
        return FG_EINVAL;
    if (find_pair(s, l, r))
        return FG_EEXISTS;
    if (s->npairs >= max_pairs(s))
        return FG_ELIMIT;
    const struct fg_partner *p = s->io.lookup_partner ? s->io.lookup_partner(s->io.ud, r) : NULL;
    if (!p || !s->peer_dialback || !s->stream_id[0])
        return FG_EREFUSED;
    /* target multiplexing only towards a peer that handles dialback errors (XEP-0220 3) */
    if (strcmp(r, s->remote) != 0 && !s->peer_db_errors)
        return FG_EREFUSED;
    bool cert = false;
    if (p->sasl == FG_NEG_REQUIRED)
        cert = s->tls && s->io.cert_matches && s->io.cert_matches(s->io.ud, r, NULL);
    if (!fg_policy_dialback_pair_allowed(p, s->tls, cert))
        return FG_EREFUSED;
    struct pair *np = add_pair(s, l, r);
    np->multiplexed = true;
    np->cert = cert;
    np->via = VIA_KEY;
    if (!send_db_result(s, np)) {
        remove_pair(s, np);
        return FG_EREFUSED;
    }
    flush(s);
    return FG_OK;
}

int fg_s2s_out_verify(struct fg_s2s *s, const char *from, const char *to, const char *id,
                      const char *key)
{
    if (!s || s->dir != FG_S2S_OUT || s->st == ST_CLOSED)
        return FG_EIO;
    char f[DOM], t[DOM];
    if (!norm_attr(from, f) || !norm_attr(to, t) || !id || !*id ||
        strlen(id) > FG_DIALBACK_ID_MAX || !key || strlen(key) > KEY_MAX)
        return FG_EINVAL;
    for (size_t i = 0; i < s->nverifies; i++)
        if (strcmp(s->verifies[i].from, f) == 0 && strcmp(s->verifies[i].to, t) == 0 &&
            strcmp(s->verifies[i].id, id) == 0)
            return FG_EEXISTS;
    if (s->nverifies >= max_pairs(s))
        return FG_ELIMIT;
    if (s->nverifies == s->cap_verifies) {
        s->cap_verifies = s->cap_verifies ? s->cap_verifies * 2 : 2;
        s->verifies = fg_realloc(s->verifies, s->cap_verifies * sizeof *s->verifies);
    }
    struct verify *v = &s->verifies[s->nverifies++];
    memset(v, 0, sizeof *v);
    memcpy(v->from, f, sizeof f);
    memcpy(v->to, t, sizeof t);
    snprintf(v->id, sizeof v->id, "%s", id);
    v->key = fg_strdup(key);
    v->t = s->clock ? s->now : 0;
    if (s->tls_done && s->st != ST_WAIT_TLS) {
        send_verifies(s);
        flush(s);
    }
    return FG_OK;
}

bool fg_s2s_out_pong(struct fg_s2s *s, const struct fg_xml_node *iq)
{
    if (!s || s->dir != FG_S2S_OUT || !iq || !s->ping_seq || !s->ping_out)
        return false;
    if (!(attr_is(iq, "type", "result") || attr_is(iq, "type", "error")))
        return false;
    char id[sizeof s->ping_id + 12];
    snprintf(id, sizeof id, "%s%u", s->ping_id, s->ping_seq);
    if (!attr_is(iq, "id", id))
        return false;
    s->ping_out = false;
    s->rx = true;
    return true;
}

bool fg_s2s_has_pair(const struct fg_s2s *s, const char *local, const char *remote)
{
    if (!s || !local || !remote)
        return false;
    for (size_t i = 0; i < s->npairs; i++)
        if (s->pairs[i].valid && strcmp(s->pairs[i].local, local) == 0 &&
            strcmp(s->pairs[i].remote, remote) == 0)
            return true;
    return false;
}

void fg_s2s_get_info(const struct fg_s2s *s, struct fg_s2s_info *out)
{
    memset(out, 0, sizeof *out);
    if (!s)
        return;
    out->dir = s->dir;
    out->verify_only = s->verify_mode;
    out->pairs = valid_pairs(s);
    if (s->st == ST_CLOSED)
        out->state = FG_S2S_CLOSING;
    else if (s->st == ST_CONNECTING)
        out->state = FG_S2S_CONNECTING;
    else if (s->st == ST_OPEN || out->pairs)
        out->state = FG_S2S_ESTABLISHED;
    else
        out->state = FG_S2S_NEGOTIATING;
    out->local = s->local;
    out->remote = s->remote;
    const struct pair *first = NULL;
    for (size_t i = 0; i < s->npairs && !first; i++)
        if (s->pairs[i].valid)
            first = &s->pairs[i];
    if (first) {
        out->local = first->local;
        out->remote = first->remote;
        out->auth = first->via == VIA_EXTERNAL ? FG_S2S_AUTH_SASL_EXTERNAL : FG_S2S_AUTH_DIALBACK;
    }
    out->tls_version = s->tls ? (s->tls_version[0] ? s->tls_version : "TLS") : NULL;
    out->since_ms = out->state == FG_S2S_ESTABLISHED ? s->since : 0;
}

const char *fg_s2s_stream_id(const struct fg_s2s *s)
{
    return s ? s->stream_id : "";
}

size_t fg_s2s_memory(const struct fg_s2s *s)
{
    size_t n = sizeof *s + fg_xml_parser_memory(s->parser) + s->out.cap +
               s->cap_pairs * sizeof *s->pairs + s->cap_verifies * sizeof *s->verifies;
    if (s->peer)
        n += strlen(s->peer) + 1;
    for (size_t i = 0; i < s->nverifies; i++)
        n += strlen(s->verifies[i].key) + 1;
    return n;
}
