/* test_s2s.c - the server-to-server stream machines fed with byte strings: every valid and
 * warning row of the matrix in both directions, the refusals of SPEC section 3, dialback
 * in its three roles (keys checked against an HMAC computed here with OpenSSL and the
 * XEP-0185/XEP-0220 examples), multiplexing, live re-checks, timeouts and keep-alive, and
 * machines wired to each other in-process for full handshakes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "policy/policy.h"
#include "policy/wire.h"
#include "xml/stanza.h"
#include "xmpp/dialback.h"
#include "xmpp/s2s.h"

#define NS_STREAM "http://etherx.jabber.org/streams"
#define HDR(attrs)                                                                                 \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='" NS_STREAM           \
    "' xmlns:db='jabber:server:dialback' " attrs " version='1.0'>"
#define IN_HDR(from) HDR("from='" from "' to='a.test'")
#define IN_HDR_NOFROM HDR("to='a.test'")
#define OUT_HDR(id) HDR("from='b.test' to='a.test' id='" id "'")
#define STARTTLS "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
#define PROCEED "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
#define F_STARTTLS "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
#define F_STARTTLS_REQ "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"
#define F_DIALBACK "<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>"
#define F_EXTERNAL                                                                                 \
    "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>EXTERNAL</mechanism>"         \
    "</mechanisms>"
#define FEATURES(x) "<stream:features>" x "</stream:features>"
#define STREAM_ERR(cond) "<stream:error><" cond " xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
#define DB_ERR(cond) "<" cond " xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
#define AUTH_EXTERNAL(b64)                                                                         \
    "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>" b64 "</auth>"
#define SUCCESS "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"
#define MSG(from, to) "<message from='" from "' to='" to "' type='chat'><body>hi</body></message>"
#define REQ FG_NEG_REQUIRED
#define OPT FG_NEG_OPTIONAL
#define NS FG_NEG_NOT_SUPPORTED

static const char secret_a[] = "secret of a.test";
static const char secret_b[] = "secret of b.test";

/* ---- keys computed here, independently of xmpp/dialback.c ---- */

static void ref_key(const char *secret, const char *recv, const char *orig, const char *id,
                    char out[65])
{
    unsigned char d[SHA256_DIGEST_LENGTH], mac[EVP_MAX_MD_SIZE];
    char hexkey[65];
    unsigned int ml = 0;
    SHA256((const unsigned char *)secret, strlen(secret), d);
    for (int i = 0; i < 32; i++)
        sprintf(hexkey + 2 * i, "%02x", d[i]);
    char msg[1024];
    int n = snprintf(msg, sizeof msg, "%s %s %s", recv, orig, id);
    HMAC(EVP_sha256(), hexkey, 64, (unsigned char *)msg, (size_t)n, mac, &ml);
    for (unsigned i = 0; i < ml; i++)
        sprintf(out + 2 * i, "%02x", mac[i]);
}

/* ---- one side of a stream, with the glue's callbacks recorded ---- */

struct side {
    struct fg_s2s *s;
    struct fg_buf out, last;
    size_t taken;
    int closed, starttls;
    struct fg_partner *parts[5];
    const char *certs[4]; /* domains the peer's certificate is valid for */
    struct fg_dialback_secret secret;
    int nauth;
    char auth_local[256], auth_remote[256];
    enum fg_s2s_auth auth_method;
    int nstanza;
    struct fg_buf stanza;
    int nrefused;
    char rule[64], refused_remote[256], reason[1100], fix[1100];
    int nverify;
    char vfrom[256], vto[256], vid[300], vkey[1100];
    bool answer_now; /* answer verify_dialback from inside the callback */
    enum fg_s2s_verdict answer;
    int npf;
    char pf_local[256], pf_remote[256], pf_cond[64], pf_reason[1100];
    int nvres;
    char vr_from[256], vr_to[256], vr_id[300];
    enum fg_s2s_verdict vres;
    size_t split; /* 0: whole; k: feed in pieces of k bytes */
    const char *admit_cond; /* what io_admit answers (NULL: admitted) */
    int nadmit;
    char admit_partner[256];
};

static void io_send(void *ud, const char *d, size_t n)
{
    struct side *h = ud;
    assert_int_equal(h->closed, 0);
    fg_buf_append(&h->out, d, n);
}

static void io_start_tls(void *ud)
{
    ((struct side *)ud)->starttls++;
}

static void io_close(void *ud)
{
    ((struct side *)ud)->closed++;
}

static bool within(const char *d, const char *parent)
{
    size_t dl = strlen(d), pl = strlen(parent);
    return dl > pl && d[dl - pl - 1] == '.' && strcmp(d + dl - pl, parent) == 0;
}

static const struct fg_partner *io_lookup(void *ud, const char *domain)
{
    struct side *h = ud;
    for (int i = 0; i < 5 && h->parts[i]; i++) {
        const struct fg_partner *p = h->parts[i];
        if (strcmp(p->domain, domain) == 0 || (p->subdomains && within(domain, p->domain)))
            return p;
        for (char **a = p->additional; *a; a++)
            if (strcmp(*a, domain) == 0 || (p->subdomains && within(domain, *a)))
                return p;
    }
    return NULL;
}

static bool io_cert(void *ud, const char *domain, const char **why)
{
    struct side *h = ud;
    for (int i = 0; i < 4 && h->certs[i]; i++)
        if (strcmp(h->certs[i], domain) == 0)
            return true;
    if (why)
        *why = "issued by an unknown CA";
    return false;
}

static int io_key(void *ud, const char *recv, const char *orig, const char *id, char *out,
                  size_t len)
{
    return fg_dialback_key(&((struct side *)ud)->secret, recv, orig, id, out, len);
}

static void io_verify(void *ud, const char *from, const char *to, const char *id, const char *key)
{
    struct side *h = ud;
    h->nverify++;
    snprintf(h->vfrom, sizeof h->vfrom, "%s", from);
    snprintf(h->vto, sizeof h->vto, "%s", to);
    snprintf(h->vid, sizeof h->vid, "%s", id);
    snprintf(h->vkey, sizeof h->vkey, "%s", key);
    if (h->answer_now)
        fg_s2s_in_dialback_result(h->s, from, to, h->answer);
}

static void io_auth(void *ud, const char *local, const char *remote, enum fg_s2s_auth m)
{
    struct side *h = ud;
    h->nauth++;
    snprintf(h->auth_local, sizeof h->auth_local, "%s", local);
    snprintf(h->auth_remote, sizeof h->auth_remote, "%s", remote);
    h->auth_method = m;
}

static void io_stanza(void *ud, struct fg_xml_node *n, struct fg_arena *a)
{
    struct side *h = ud;
    h->nstanza++;
    fg_buf_reset(&h->stanza);
    fg_xml_serialize(&h->stanza, n, NULL);
    fg_arena_free(a);
}

static void io_refused(void *ud, const char *remote, const char *rule, const char *reason,
                       const char *fix)
{
    struct side *h = ud;
    h->nrefused++;
    snprintf(h->refused_remote, sizeof h->refused_remote, "%s", remote);
    snprintf(h->rule, sizeof h->rule, "%s", rule);
    snprintf(h->reason, sizeof h->reason, "%s", reason);
    snprintf(h->fix, sizeof h->fix, "%s", fix);
}

static void io_pair_failed(void *ud, const char *local, const char *remote, const char *cond,
                           const char *reason)
{
    struct side *h = ud;
    h->npf++;
    snprintf(h->pf_local, sizeof h->pf_local, "%s", local);
    snprintf(h->pf_remote, sizeof h->pf_remote, "%s", remote);
    snprintf(h->pf_cond, sizeof h->pf_cond, "%s", cond);
    snprintf(h->pf_reason, sizeof h->pf_reason, "%s", reason);
}

static void io_verify_result(void *ud, const char *from, const char *to, const char *id,
                             enum fg_s2s_verdict v)
{
    struct side *h = ud;
    h->nvres++;
    snprintf(h->vr_from, sizeof h->vr_from, "%s", from);
    snprintf(h->vr_to, sizeof h->vr_to, "%s", to);
    snprintf(h->vr_id, sizeof h->vr_id, "%s", id);
    h->vres = v;
}

static const char *io_admit(void *ud, const struct fg_partner *p, char *reason, size_t rlen,
                            char *fix, size_t flen)
{
    struct side *h = ud;
    h->nadmit++;
    snprintf(h->admit_partner, sizeof h->admit_partner, "%s", p->domain);
    if (h->admit_cond) {
        snprintf(reason, rlen, "%s already has 1 s2s streams, its connection limit", p->domain);
        snprintf(fix, flen, "raise it");
    }
    return h->admit_cond;
}

static const struct fg_s2s_io io_tmpl = {
    .admit = io_admit,
    .send = io_send,
    .start_tls = io_start_tls,
    .close = io_close,
    .lookup_partner = io_lookup,
    .cert_matches = io_cert,
    .dialback_key = io_key,
    .verify_dialback = io_verify,
    .authenticated = io_auth,
    .stanza = io_stanza,
    .refused = io_refused,
    .pair_failed = io_pair_failed,
    .verify_result = io_verify_result,
};

static char *const hosted_a[] = {"a.test", "a2.test", NULL};
static char *const hosted_b[] = {"b.test", "b2.test", NULL};

static struct fg_s2s_config cfg_for(char *const *domains)
{
    struct fg_s2s_config c = {.domains = domains, .establishment_timeout_s = 60};
    return c;
}

/* ---- partners ---- */

static struct fg_partner *partner_new(const char *domain, enum fg_neg tls, enum fg_neg sasl,
                                      bool dialback)
{
    struct fg_partner *p = fg_calloc(1, sizeof *p);
    fg_partner_init(p, domain);
    p->tls = tls;
    p->sasl = sasl;
    p->dialback = dialback;
    return p;
}

static void partner_free(struct fg_partner *p)
{
    if (p) {
        fg_partner_clear(p);
        fg_free(p);
    }
}

/* b.test with an additional domain b2.test and its subdomains */
static struct fg_partner *partner_b(enum fg_neg tls, enum fg_neg sasl, bool dialback)
{
    struct fg_partner *p = partner_new("b.test", tls, sasl, dialback);
    fg_strv_push(&p->additional, "b2.test");
    p->subdomains = true;
    return p;
}

/* ---- harness ---- */

static void side_init(struct side *h, const char *secret)
{
    memset(h, 0, sizeof *h);
    fg_dialback_secret_init(&h->secret, secret, strlen(secret));
}

static void side_free(struct side *h)
{
    fg_s2s_free(h->s);
    h->s = NULL;
    fg_buf_free(&h->out);
    fg_buf_free(&h->last);
    fg_buf_free(&h->stanza);
    for (int i = 0; i < 5; i++)
        partner_free(h->parts[i]);
}

/* What the machine sent since the last take. */
static const char *take(struct side *h)
{
    fg_buf_reset(&h->last);
    if (h->out.len > h->taken)
        fg_buf_append(&h->last, h->out.data + h->taken, h->out.len - h->taken);
    h->taken = h->out.len;
    return fg_buf_str(&h->last);
}

static void feed(struct side *h, const char *s)
{
    size_t n = strlen(s);
    if (!h->split) {
        fg_s2s_feed(h->s, s, n);
        return;
    }
    for (size_t i = 0; i < n; i += h->split)
        fg_s2s_feed(h->s, s + i, n - i < h->split ? n - i : h->split);
}

static bool has(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) {
        print_message("missing: %s\n   in: %s\n", needle, hay);
        return false;
    }
    return true;
}

static struct fg_s2s_io io_for(struct side *h)
{
    struct fg_s2s_io io = io_tmpl;
    io.ud = h;
    return io;
}

static void in_new(struct side *h, char *const *hosted, bool direct_tls)
{
    struct fg_s2s_config c = cfg_for(hosted);
    struct fg_s2s_io io = io_for(h);
    h->s = fg_s2s_in_new(&c, &io, direct_tls, "192.0.2.7:40000");
    assert_non_null(h->s);
}

static void out_new(struct side *h, char *const *hosted, const char *local, const char *remote,
                    const struct fg_partner *p)
{
    struct fg_s2s_config c = cfg_for(hosted);
    struct fg_s2s_io io = io_for(h);
    h->s = fg_s2s_out_new(&c, &io, local, remote, p, false);
    assert_non_null(h->s);
}

static void tls_done(struct side *h, bool local_cert)
{
    struct fg_s2s_tls t = {.version = "TLSv1.3", .local_cert = local_cert};
    fg_s2s_tls_ready(h->s, &t);
}

/* Inbound: STARTTLS, the handshake, and the peer's new header. */
static void in_starttls(struct side *h, const char *hdr)
{
    feed(h, STARTTLS);
    assert_true(has(take(h), PROCEED));
    assert_int_equal(h->starttls, 1);
    tls_done(h, false);
    feed(h, hdr);
}

static void feedf(struct side *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void feedf(struct side *h, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    feed(h, buf);
}

static void db_request(struct side *h, const char *from, const char *to)
{
    feedf(h, "<db:result from='%s' to='%s'>0123456789abcdef</db:result>", from, to);
}

/* Inbound, clear stream from b.test under partner settings (tls, sasl, dialback). */
static void in_clear(struct side *h, enum fg_neg tls, enum fg_neg sasl, bool dialback)
{
    side_init(h, secret_a);
    h->parts[0] = partner_b(tls, sasl, dialback);
    in_new(h, hosted_a, false);
    feed(h, IN_HDR("b.test"));
}

/* ... and b.test authenticated by dialback on it (the key verified as valid). */
static void in_dialback_ok(struct side *h, const char *from, const char *to)
{
    int before = h->nverify, auth = h->nauth;
    db_request(h, from, to);
    assert_int_equal(h->nverify, before + 1);
    assert_string_equal(h->vfrom, from);
    assert_string_equal(h->vto, to);
    assert_string_equal(h->vid, fg_s2s_stream_id(h->s));
    assert_string_equal(h->vkey, "0123456789abcdef");
    fg_s2s_in_dialback_result(h->s, from, to, FG_S2S_VALID);
    char want[600];
    snprintf(want, sizeof want, "<db:result from='%s' to='%s' type='valid'/>", to, from);
    assert_true(has(take(h), want));
    assert_int_equal(h->nauth, auth + 1);
    assert_int_equal(h->auth_method, FG_S2S_AUTH_DIALBACK);
    assert_true(fg_s2s_has_pair(h->s, to, from));
}

/* ==== the matrix ==== */

#define E FG_S2S_AUTH_SASL_EXTERNAL
#define D FG_S2S_AUTH_DIALBACK
#define X FG_S2S_AUTH_NONE

/* What SPEC sections 2 and 3 say each valid and warning row does on the wire, written
 * out here by hand rather than derived from policy/wire.c. */
struct row {
    int n;
    enum fg_neg tls, sasl;
    bool db;
    /* inbound, clear stream whose header names b.test */
    bool c_starttls, c_required, c_dialback;
    /* inbound after TLS with a certificate matching b.test */
    bool t_external, t_ext_required, t_dialback;
    /* inbound after TLS, certificate not matching: the refusal, NULL = dialback offered */
    const char *t_nocert;
    /* outbound: the method used when the peer offers TLS, EXTERNAL and dialback ... */
    enum fg_s2s_auth o_full;
    /* ... TLS and dialback but no EXTERNAL for us ... */
    enum fg_s2s_auth o_noext;
    const char *o_noext_rule;
    /* ... no TLS, dialback only */
    enum fg_s2s_auth o_clear;
    const char *o_clear_rule;
};

static const struct row rows[] = {
    {1, REQ, REQ, true, true, true, false, true, true, false, "sasl-required", E, X,
     "sasl-required", X, "tls-required"},
    {2, REQ, REQ, false, true, true, false, true, true, false, "sasl-required", E, X,
     "sasl-required", X, "tls-required"},
    {3, OPT, REQ, true, true, false, false, true, true, false, "sasl-required", E, X,
     "sasl-required", X, "sasl-required"},
    {4, OPT, REQ, false, true, false, false, true, true, false, "sasl-required", E, X,
     "sasl-required", X, "sasl-required"},
    {7, REQ, OPT, true, true, true, false, true, false, true, NULL, E, D, NULL, X, "tls-required"},
    {8, REQ, OPT, false, true, true, false, true, false, false, "no-method", E, X,
     "dialback-disabled", X, "tls-required"},
    {9, OPT, OPT, true, true, false, true, true, false, true, NULL, E, D, NULL, D, NULL},
    {10, OPT, OPT, false, true, false, false, true, false, false, "no-method", E, X,
     "dialback-disabled", X, "dialback-disabled"},
    {13, REQ, NS, true, true, true, false, false, false, true, NULL, D, D, NULL, X, "tls-required"},
    {15, OPT, NS, true, true, false, true, false, false, true, NULL, D, D, NULL, D, NULL},
    {17, NS, NS, true, false, false, true, false, false, false, NULL, D, D, NULL, D, NULL},
};
#define NROWS (sizeof rows / sizeof rows[0])

static void test_rows_are_the_matrix(void **state)
{
    (void)state;
    /* every valid and warning row of policy's table is here, and only those */
    size_t accepted = 0;
    for (size_t i = 0; i < 18; i++)
        accepted += fg_policy_matrix[i].refusal == NULL;
    assert_int_equal(accepted, NROWS);
    for (size_t i = 0; i < NROWS; i++) {
        const struct fg_matrix_row *m = fg_policy_matrix_row(rows[i].tls, rows[i].sasl, rows[i].db);
        assert_non_null(m);
        assert_int_equal(m->number, rows[i].n);
        assert_null(m->refusal);
    }
}

/* policy/wire.c against the methods column of the matrix, for every row that can be
 * stored: the wire decisions are the matrix's, not another reading of the settings. */
static void test_wire_matches_matrix_methods(void **state)
{
    (void)state;
    for (size_t i = 0; i < 18; i++) {
        const struct fg_matrix_row *m = &fg_policy_matrix[i];
        if (m->refusal)
            continue;
        struct fg_partner p;
        fg_partner_init(&p, "b.test");
        p.tls = m->tls;
        p.sasl = m->sasl;
        p.dialback = m->dialback;
        bool ext = fg_policy_external_allowed(&p, true);
        bool db_tls = fg_policy_dialback_allowed(&p, true);
        bool db_tcp = fg_policy_dialback_allowed(&p, false);
        assert_false(fg_policy_external_allowed(&p, false)); /* SASL needs TLS */
        const char *text;
        if (ext && db_tls && db_tcp)
            text = "EXTERNAL over TLS; dialback over TLS or TCP";
        else if (ext && db_tls)
            text = "EXTERNAL or dialback, over TLS";
        else if (ext)
            text = "EXTERNAL over TLS";
        else if (db_tls && db_tcp)
            text = "dialback over TLS or TCP";
        else if (db_tls)
            text = "dialback over TLS";
        else if (db_tcp)
            text = "dialback over TCP";
        else
            text = "\u2014";
        if (strcmp(text, m->methods) != 0)
            fail_msg("row %d: wire says '%s', matrix '%s'", m->number, text, m->methods);
        /* multiplexing: with SASL required only with a matching certificate */
        if (m->sasl == FG_NEG_REQUIRED && m->dialback) {
            assert_false(fg_policy_dialback_pair_allowed(&p, true, false));
            assert_true(fg_policy_dialback_pair_allowed(&p, true, true));
            assert_false(fg_policy_dialback_pair_allowed(&p, false, true));
        }
        if (!m->dialback)
            assert_false(fg_policy_dialback_pair_allowed(&p, true, true));
        assert_int_equal(fg_policy_tls_required(&p), m->tls == FG_NEG_REQUIRED);
        assert_int_equal(fg_policy_tls_allowed(&p), m->tls != FG_NEG_NOT_SUPPORTED);
        fg_partner_clear(&p);
    }
}

static void check_features(const char *o, bool starttls, bool required, bool external,
                           bool ext_required, bool dialback, int row)
{
    if (!has(o, "<stream:features>"))
        fail_msg("row %d: no features", row);
    if ((strstr(o, "<starttls") != NULL) != starttls)
        fail_msg("row %d: starttls %s expected in %s", row, starttls ? "" : "not", o);
    if ((strstr(o, F_STARTTLS_REQ) != NULL) != required)
        fail_msg("row %d: <required/> STARTTLS %s expected", row, required ? "" : "not");
    if ((strstr(o, "<mechanism>EXTERNAL</mechanism>") != NULL) != external)
        fail_msg("row %d: EXTERNAL %s expected in %s", row, external ? "" : "not", o);
    if ((strstr(o, "</mechanism><required/></mechanisms>") != NULL) != ext_required)
        fail_msg("row %d: SASL <required/> %s expected", row, ext_required ? "" : "not");
    if ((strstr(o, F_DIALBACK) != NULL) != dialback)
        fail_msg("row %d: dialback %s expected in %s", row, dialback ? "" : "not", o);
}

/* Inbound, every row: the features offered before TLS, after TLS with and without a
 * matching certificate, and the method that then authenticates b.test. */
static void test_matrix_inbound(void **state)
{
    (void)state;
    for (size_t i = 0; i < NROWS; i++) {
        const struct row *r = &rows[i];
        struct side h;

        /* clear stream */
        in_clear(&h, r->tls, r->sasl, r->db);
        const char *o = take(&h);
        assert_true(has(o, "from='a.test'"));
        assert_true(has(o, "to='b.test'"));
        check_features(o, r->c_starttls, r->c_required, false, false, r->c_dialback, r->n);
        if (r->c_dialback) {
            in_dialback_ok(&h, "b.test", "a.test");
            feed(&h, MSG("bob@b.test/x", "alice@a.test"));
            assert_int_equal(h.nstanza, 1);
            assert_true(has(fg_buf_str(&h.stanza), "<body>hi</body>"));
            struct fg_s2s_info info;
            fg_s2s_get_info(h.s, &info);
            assert_int_equal(info.state, FG_S2S_ESTABLISHED);
            assert_int_equal(info.auth, FG_S2S_AUTH_DIALBACK);
            assert_null(info.tls_version);
        } else {
            db_request(&h, "b.test", "a.test");
            assert_true(has(take(&h), "type='error'"));
            assert_int_equal(h.nverify, 0);
            feed(&h, MSG("bob@b.test", "alice@a.test"));
            assert_true(has(take(&h), STREAM_ERR("not-authorized")));
            assert_int_equal(h.closed, 1);
            assert_int_equal(h.nstanza, 0);
        }
        side_free(&h);
        if (r->tls == FG_NEG_NOT_SUPPORTED)
            continue;

        /* after TLS, the peer's certificate valid for b.test */
        in_clear(&h, r->tls, r->sasl, r->db);
        h.certs[0] = "b.test";
        take(&h);
        in_starttls(&h, IN_HDR("b.test"));
        o = take(&h);
        check_features(o, false, false, r->t_external, r->t_ext_required, r->t_dialback, r->n);
        if (r->t_external) {
            feed(&h, AUTH_EXTERNAL("Yi50ZXN0")); /* "b.test" */
            assert_true(has(take(&h), SUCCESS));
            assert_int_equal(h.nauth, 1);
            assert_int_equal(h.auth_method, FG_S2S_AUTH_SASL_EXTERNAL);
            feed(&h, IN_HDR("b.test"));
            o = take(&h);
            assert_true(has(o, "<stream:features"));
            assert_null(strstr(o, "<mechanism"));
        } else {
            /* XEP-0344: the certificate is the proof, no key is dialled back */
            db_request(&h, "b.test", "a.test");
            assert_int_equal(h.nverify, 0);
            assert_true(has(take(&h), "<db:result from='a.test' to='b.test' type='valid'/>"));
            assert_int_equal(h.auth_method, FG_S2S_AUTH_DIALBACK);
        }
        feed(&h, MSG("bob@b.test", "alice@a.test"));
        assert_int_equal(h.nstanza, 1);
        struct fg_s2s_info info;
        fg_s2s_get_info(h.s, &info);
        assert_string_equal(info.tls_version, "TLSv1.3");
        assert_string_equal(info.local, "a.test");
        assert_string_equal(info.remote, "b.test");
        assert_int_equal(info.dir, FG_S2S_IN);
        side_free(&h);

        /* after TLS, a certificate that does not match */
        in_clear(&h, r->tls, r->sasl, r->db);
        take(&h);
        in_starttls(&h, IN_HDR("b.test"));
        o = take(&h);
        if (r->t_nocert) {
            assert_true(has(o, STREAM_ERR("not-authorized")));
            assert_int_equal(h.closed, 1);
            assert_string_equal(h.rule, r->t_nocert);
            assert_true(has(h.reason, "issued by an unknown CA"));
        } else {
            check_features(o, false, false, false, false, true, r->n);
            in_dialback_ok(&h, "b.test", "a.test");
            feed(&h, MSG("bob@b.test", "alice@a.test"));
            assert_int_equal(h.nstanza, 1);
        }
        side_free(&h);
    }
}

/* Outbound under row r against a peer that offers what it is told; returns the method
 * that authenticated the stream, or NONE with the refusal rule in rule. */
static enum fg_s2s_auth run_out(const struct row *r, bool peer_tls, bool peer_ext, char *rule,
                                bool *used_tls)
{
    struct side h;
    side_init(&h, secret_a);
    h.certs[0] = "b.test"; /* the partner's server certificate is good */
    h.parts[0] = partner_b(r->tls, r->sasl, r->db);
    out_new(&h, hosted_a, "a.test", "b.test", h.parts[0]);
    fg_s2s_start(h.s);
    const char *o = take(&h);
    assert_true(has(o, "to='b.test'"));
    assert_true(has(o, "from='a.test'"));
    assert_true(has(o, "xmlns:db='jabber:server:dialback'"));
    const char *id = "id-clear";
    feedf(&h, "%s<stream:features>%s%s</stream:features>", OUT_HDR("id-clear"),
          peer_tls ? F_STARTTLS : "", F_DIALBACK);
    *used_tls = false;
    for (int step = 0; step < 4 && !h.closed; step++) {
        o = take(&h);
        if (strstr(o, "<starttls")) {
            feed(&h, PROCEED);
            assert_int_equal(h.starttls, 1);
            tls_done(&h, true);
            *used_tls = true;
            assert_true(has(take(&h), "<stream:stream"));
            id = "id-tls";
            feedf(&h, "%s<stream:features>%s%s</stream:features>", OUT_HDR("id-tls"),
                  peer_ext ? F_EXTERNAL : "", F_DIALBACK);
        } else if (strstr(o, "<auth")) {
            assert_true(has(o, AUTH_EXTERNAL("YS50ZXN0"))); /* "a.test" */
            feed(&h, SUCCESS);
            assert_true(has(take(&h), "<stream:stream"));
            assert_int_equal(h.nauth, 0); /* not before the restarted stream is up */
            feed(&h, OUT_HDR("id-after-sasl") "<stream:features/>");
            break;
        } else if (strstr(o, "<db:result")) {
            char key[65];
            ref_key(secret_a, "b.test", "a.test", id, key);
            assert_true(has(o, key));
            assert_true(has(o, "from='a.test' to='b.test'"));
            feed(&h, "<db:result from='b.test' to='a.test' type='valid'/>");
            break;
        }
    }
    enum fg_s2s_auth got = X;
    rule[0] = '\0';
    if (h.nauth) {
        got = h.auth_method;
        assert_string_equal(h.auth_local, "a.test");
        assert_string_equal(h.auth_remote, "b.test");
        assert_int_equal(h.closed, 0);
        assert_true(fg_s2s_has_pair(h.s, "a.test", "b.test"));
        struct fg_s2s_info info;
        fg_s2s_get_info(h.s, &info);
        assert_int_equal(info.state, FG_S2S_ESTABLISHED);
        assert_int_equal(info.auth, got);
        assert_int_equal(info.dir, FG_S2S_OUT);
    } else {
        assert_int_equal(h.closed, 1);
        assert_int_equal(h.npf, 1); /* queued stanzas bounce */
        assert_string_equal(h.pf_cond, "remote-server-not-found");
        snprintf(rule, 64, "%s", h.rule);
    }
    side_free(&h);
    return got;
}

static void test_matrix_outbound(void **state)
{
    (void)state;
    char rule[64];
    bool tls;
    for (size_t i = 0; i < NROWS; i++) {
        const struct row *r = &rows[i];
        enum fg_s2s_auth got = run_out(r, true, true, rule, &tls);
        if (got != r->o_full)
            fail_msg("row %d full: got %s (%s)", r->n, fg_s2s_auth_name(got), rule);
        assert_int_equal(tls, r->tls != NS); /* never STARTTLS with not-supported */

        got = run_out(r, true, false, rule, &tls);
        if (got != r->o_noext || (r->o_noext_rule && strcmp(rule, r->o_noext_rule) != 0))
            fail_msg("row %d no EXTERNAL: got %s (%s)", r->n, fg_s2s_auth_name(got), rule);

        got = run_out(r, false, false, rule, &tls);
        if (got != r->o_clear || (r->o_clear_rule && strcmp(rule, r->o_clear_rule) != 0))
            fail_msg("row %d clear: got %s (%s)", r->n, fg_s2s_auth_name(got), rule);
        assert_false(tls);
    }
}

/* ==== inbound refusals (SPEC section 3) ==== */

static void test_unlisted_domain(void **state)
{
    (void)state;
    struct side h;
    side_init(&h, secret_a);
    h.parts[0] = partner_b(REQ, OPT, true);
    in_new(&h, hosted_a, false);
    feed(&h, IN_HDR("x.test"));
    const char *o = take(&h);
    assert_true(has(o, "<stream:stream"));
    assert_true(has(o, STREAM_ERR("policy-violation")));
    assert_true(has(o, "</stream:stream>"));
    assert_int_equal(h.closed, 1);
    assert_string_equal(h.rule, "unlisted");
    assert_string_equal(h.refused_remote, "x.test");
    assert_string_equal(h.reason, "domain is not a partner");
    assert_string_equal(h.fix, "fedgatectl partner new x.test");
    side_free(&h);
}

/* SPEC 5: a stream over the connection limit is refused with the condition the glue
 * gives, explained with rule connection-limit; the limit is asked once per stream. */
static void test_connection_limit(void **state)
{
    (void)state;
    struct side h;
    side_init(&h, secret_a);
    h.parts[0] = partner_b(REQ, OPT, true);
    h.admit_cond = "policy-violation";
    in_new(&h, hosted_a, false);
    feed(&h, IN_HDR("b2.test"));
    const char *o = take(&h);
    assert_true(has(o, STREAM_ERR("policy-violation")));
    assert_true(has(o, "b.test already has 1 s2s streams"));
    assert_false(strstr(o, "<stream:features"));
    assert_int_equal(h.closed, 1);
    assert_int_equal(h.nadmit, 1);
    assert_string_equal(h.admit_partner, "b.test");
    assert_string_equal(h.rule, "connection-limit");
    assert_string_equal(h.refused_remote, "b2.test");
    assert_string_equal(h.fix, "raise it");
    side_free(&h);

    /* admitted: asked once, not again for the header after TLS */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(REQ, OPT, true);
    in_new(&h, hosted_a, false);
    feed(&h, IN_HDR("b.test"));
    in_starttls(&h, IN_HDR("b.test"));
    assert_true(has(take(&h), "<stream:features"));
    assert_int_equal(h.nadmit, 1);
    assert_int_equal(h.nrefused, 0);
    side_free(&h);

    /* a header without 'from': the partner is first known at db:result */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(REQ, OPT, true);
    h.admit_cond = "resource-constraint";
    in_new(&h, hosted_a, false);
    feed(&h, IN_HDR_NOFROM);
    in_starttls(&h, IN_HDR_NOFROM);
    take(&h);
    assert_int_equal(h.nadmit, 0);
    db_request(&h, "b.test", "a.test");
    assert_true(has(take(&h), STREAM_ERR("resource-constraint")));
    assert_int_equal(h.nadmit, 1);
    assert_int_equal(h.nverify, 0);
    assert_int_equal(h.closed, 1);
    assert_string_equal(h.rule, "connection-limit");
    side_free(&h);
}

static void test_header_checks(void **state)
{
    (void)state;
    static const struct {
        const char *hdr, *cond;
    } cases[] = {
        {HDR("from='b.test' to='z.test'"), "host-unknown"},
        {HDR("from='b.test'"), "host-unknown"},
        {"<stream:stream xmlns='jabber:client' xmlns:stream='" NS_STREAM
         "' from='b.test' to='a.test' version='1.0'>",
         "invalid-namespace"},
        {"<stream:stream xmlns='jabber:server' xmlns:stream='" NS_STREAM
         "' from='b.test' to='a.test'>",
         "unsupported-version"},
        {HDR("from='b..test' to='a.test'"), "invalid-from"},
        {"<stream:stream xmlns='jabber:server' xmlns:stream='" NS_STREAM "' to='a.test' "
         "version='1.0'><foo/>",
         "unsupported-stanza-type"},
        {HDR("from='b.test' to='a.test'") "<message><body>&foo;</body></message>",
         "restricted-xml"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct side h;
        side_init(&h, secret_a);
        h.parts[0] = partner_b(OPT, OPT, true);
        in_new(&h, hosted_a, false);
        feed(&h, cases[i].hdr);
        char want[200];
        snprintf(want, sizeof want, STREAM_ERR("%s"), cases[i].cond);
        assert_true(has(take(&h), want));
        assert_int_equal(h.closed, 1);
        side_free(&h);
    }
}

/* No 'from' before TLS: nothing but STARTTLS, whatever the partner allows. */
static void test_no_from_only_starttls(void **state)
{
    (void)state;
    struct side h;
    side_init(&h, secret_a);
    h.parts[0] = partner_b(NS, NS, true);
    in_new(&h, hosted_a, false);
    feed(&h, IN_HDR_NOFROM);
    const char *o = take(&h);
    assert_true(has(o, FEATURES(F_STARTTLS_REQ)));
    assert_null(strstr(o, " to='")); /* nobody to address the answer to */
    /* a stanza now: not authenticated */
    feed(&h, MSG("bob@b.test", "alice@a.test"));
    assert_true(has(take(&h), STREAM_ERR("not-authorized")));
    side_free(&h);

    /* after TLS the 'from' decides */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(REQ, OPT, true);
    h.certs[0] = "b.test";
    in_new(&h, hosted_a, false);
    feed(&h, IN_HDR_NOFROM);
    take(&h);
    in_starttls(&h, IN_HDR("b.test"));
    check_features(take(&h), false, false, true, false, true, 7);
    side_free(&h);

    /* ... or, still without one, each dialback request is judged on its own domain */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(REQ, OPT, true);
    h.parts[1] = partner_new("c.test", REQ, REQ, true);
    in_new(&h, hosted_a, false);
    feed(&h, IN_HDR_NOFROM);
    take(&h);
    in_starttls(&h, IN_HDR_NOFROM);
    assert_true(has(take(&h), FEATURES(F_DIALBACK)));
    db_request(&h, "c.test", "a.test"); /* SASL required for c.test */
    assert_true(has(take(&h), DB_ERR("not-authorized")));
    assert_string_equal(h.rule, "sasl-required");
    in_dialback_ok(&h, "b.test", "a.test");
    struct fg_s2s_info info;
    fg_s2s_get_info(h.s, &info);
    assert_string_equal(info.remote, "b.test");
    side_free(&h);
}

static void test_invalid_from_after_tls(void **state)
{
    (void)state;
    struct side h;
    in_clear(&h, OPT, OPT, true);
    h.parts[1] = partner_new("c.test", OPT, OPT, true);
    take(&h);
    in_starttls(&h, IN_HDR("c.test"));
    assert_true(has(take(&h), STREAM_ERR("invalid-from")));
    assert_int_equal(h.closed, 1);
    assert_string_equal(h.rule, "invalid-from");
    side_free(&h);
}

static void test_direct_tls_not_supported(void **state)
{
    (void)state;
    struct side h;
    side_init(&h, secret_a);
    h.parts[0] = partner_b(NS, NS, true);
    in_new(&h, hosted_a, true);
    tls_done(&h, false);
    feed(&h, IN_HDR("b.test"));
    assert_true(has(take(&h), STREAM_ERR("policy-violation")));
    assert_int_equal(h.closed, 1);
    assert_string_equal(h.rule, "tls-not-supported");
    assert_string_equal(h.fix, "set --tls optional for b.test");
    side_free(&h);

    /* direct TLS for a partner that allows TLS: features as after STARTTLS */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(REQ, OPT, true);
    h.certs[0] = "b.test";
    in_new(&h, hosted_a, true);
    tls_done(&h, false);
    feed(&h, IN_HDR("b.test"));
    check_features(take(&h), false, false, true, false, true, 7);
    feed(&h, STARTTLS); /* TLS is on already */
    assert_true(has(take(&h), "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"));
    assert_int_equal(h.closed, 1);
    side_free(&h);
}

static void test_stanza_before_auth(void **state)
{
    (void)state;
    struct side h;
    in_clear(&h, OPT, OPT, true);
    take(&h);
    feed(&h, MSG("bob@b.test", "alice@a.test"));
    assert_true(has(take(&h), STREAM_ERR("not-authorized")));
    assert_int_equal(h.closed, 1);
    assert_int_equal(h.nstanza, 0);
    side_free(&h);

    /* while TLS is still required */
    in_clear(&h, REQ, OPT, true);
    take(&h);
    feed(&h, "<presence from='bob@b.test' to='alice@a.test'/>");
    assert_true(has(take(&h), STREAM_ERR("not-authorized")));
    side_free(&h);
}

static void test_dialback_before_required_tls(void **state)
{
    (void)state;
    struct side h;
    in_clear(&h, REQ, OPT, true);
    take(&h);
    db_request(&h, "b.test", "a.test");
    const char *o = take(&h);
    assert_true(has(o, "<db:result from='a.test' to='b.test' type='error'>"));
    assert_true(has(o, "<error type='modify'>" DB_ERR("policy-violation")));
    assert_int_equal(h.nverify, 0);
    assert_int_equal(h.closed, 0); /* a dialback error is not a stream error */
    assert_string_equal(h.rule, "tls-required");
    /* db:verify too */
    feed(&h, "<db:verify from='b.test' to='a.test' id='x1'>abc</db:verify>");
    assert_true(has(take(&h), "<db:verify from='a.test' to='b.test' id='x1' type='error'>"));
    side_free(&h);
}

static void test_dialback_false(void **state)
{
    (void)state;
    struct side h;
    /* row 10, clear */
    in_clear(&h, OPT, OPT, false);
    take(&h);
    db_request(&h, "b.test", "a.test");
    const char *o = take(&h);
    assert_true(has(o, "type='error'><error type='auth'>" DB_ERR("not-authorized")));
    assert_string_equal(h.rule, "dialback-disabled");
    assert_int_equal(h.nverify, 0);
    side_free(&h);

    /* row 8, after TLS with EXTERNAL offered: dialback is still refused */
    in_clear(&h, REQ, OPT, false);
    h.certs[0] = "b.test";
    take(&h);
    in_starttls(&h, IN_HDR("b.test"));
    take(&h);
    db_request(&h, "b.test", "a.test");
    assert_true(has(take(&h), DB_ERR("not-authorized")));
    assert_int_equal(h.nauth, 0);
    side_free(&h);
}

static void test_db_result_addressing(void **state)
{
    (void)state;
    struct side h;
    in_clear(&h, OPT, OPT, true);
    take(&h);
    db_request(&h, "b.test", "z.test"); /* not ours */
    assert_true(has(take(&h), "<db:result from='z.test' to='b.test' type='error'><error "
                              "type='cancel'>" DB_ERR("item-not-found")));
    db_request(&h, "x.test", "a.test"); /* unlisted */
    assert_true(has(take(&h), DB_ERR("policy-violation")));
    assert_string_equal(h.rule, "unlisted");
    db_request(&h, "b..test", "a.test");
    assert_true(has(take(&h), DB_ERR("jid-malformed")));
    assert_int_equal(h.nverify, 0);
    /* answers arriving on an inbound stream are unsolicited: ignored */
    feed(&h, "<db:result from='b.test' to='a.test' type='valid'/>");
    assert_string_equal(take(&h), "");
    assert_false(fg_s2s_has_pair(h.s, "a.test", "b.test"));
    feed(&h, "<db:result to='a.test'>k</db:result>");
    assert_true(has(take(&h), STREAM_ERR("improper-addressing")));
    side_free(&h);
}

static void test_verify_invalid(void **state)
{
    (void)state;
    struct side h;
    in_clear(&h, OPT, OPT, true);
    take(&h);
    db_request(&h, "b.test", "a.test");
    assert_int_equal(h.nverify, 1);
    fg_s2s_in_dialback_result(h.s, "b.test", "a.test", FG_S2S_INVALID);
    const char *o = take(&h);
    assert_true(has(o, "<db:result from='a.test' to='b.test' type='invalid'/>"));
    assert_true(has(o, "</stream:stream>"));
    assert_null(strstr(o, "<stream:error>"));
    assert_int_equal(h.closed, 1);
    assert_string_equal(h.rule, "dialback-invalid");
    assert_int_equal(h.nauth, 0);
    side_free(&h);

    /* another pair is valid: <forbidden/>, and the stream lives on */
    in_clear(&h, OPT, OPT, true);
    take(&h);
    in_dialback_ok(&h, "b.test", "a.test");
    db_request(&h, "b2.test", "a.test");
    assert_int_equal(h.nverify, 2);
    fg_s2s_in_dialback_result(h.s, "b2.test", "a.test", FG_S2S_INVALID);
    o = take(&h);
    assert_true(has(o, "<db:result from='a.test' to='b2.test' type='error'><error "
                       "type='auth'>" DB_ERR("forbidden")));
    assert_null(strstr(o, "type='invalid'"));
    assert_int_equal(h.closed, 0);
    feed(&h, MSG("bob@b.test", "alice@a.test"));
    assert_int_equal(h.nstanza, 1);
    feed(&h, MSG("eve@b2.test", "alice@a.test"));
    assert_true(has(take(&h), STREAM_ERR("invalid-from")));
    assert_int_equal(h.nstanza, 1);
    side_free(&h);
}

static void test_verify_error_and_timeout(void **state)
{
    (void)state;
    struct side h;
    in_clear(&h, OPT, OPT, true);
    take(&h);
    fg_s2s_tick(h.s, 1000);
    db_request(&h, "b.test", "a.test");
    fg_s2s_in_dialback_result(h.s, "b.test", "a.test", FG_S2S_ERROR);
    assert_true(has(take(&h), DB_ERR("remote-server-not-found")));
    assert_string_equal(h.rule, "dialback-error");
    /* a late or unknown answer is ignored */
    fg_s2s_in_dialback_result(h.s, "b.test", "a.test", FG_S2S_VALID);
    assert_string_equal(take(&h), "");
    in_dialback_ok(&h, "b.test", "a.test");
    /* a pending verification on an established stream times out */
    fg_s2s_tick(h.s, 2000);
    db_request(&h, "b2.test", "a.test");
    fg_s2s_tick(h.s, 3000);
    fg_s2s_tick(h.s, 61999);
    assert_string_equal(take(&h), "");
    fg_s2s_tick(h.s, 62000);
    assert_true(has(take(&h), "<error type='wait'>" DB_ERR("remote-server-timeout")));
    assert_int_equal(h.closed, 0);
    side_free(&h);
}

/* The verify callback may answer at once (the glue's cache, or the certificate). */
static void test_verify_answered_inside_callback(void **state)
{
    (void)state;
    struct side h;
    in_clear(&h, OPT, OPT, true);
    h.answer_now = true;
    h.answer = FG_S2S_VALID;
    take(&h);
    db_request(&h, "b.test", "a.test");
    assert_true(has(take(&h), "type='valid'"));
    assert_int_equal(h.nauth, 1);
    feed(&h, MSG("bob@b.test", "alice@a.test"));
    assert_int_equal(h.nstanza, 1);
    side_free(&h);
}

static void test_stanza_addressing(void **state)
{
    (void)state;
    static const struct {
        const char *stanza, *cond;
    } cases[] = {
        {MSG("bob@b.test", "alice@a2.test"), "invalid-from"}, /* a2.test is ours, not paired */
        {MSG("bob@c.test", "alice@a.test"), "invalid-from"},
        {MSG("bob@b.test", "alice@z.test"), "host-unknown"},
        {"<message to='alice@a.test'><body>x</body></message>", "improper-addressing"},
        {"<message from='bob@b.test'><body>x</body></message>", "improper-addressing"},
        {MSG("bob@", "alice@a.test"), "improper-addressing"},
        {"<foo xmlns='urn:x'/>", "unsupported-stanza-type"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct side h;
        in_clear(&h, OPT, OPT, true);
        take(&h);
        in_dialback_ok(&h, "b.test", "a.test");
        /* these pass: case and a trailing dot do not matter, resources are kept */
        feed(&h, MSG("Bob@B.Test./res", "alice@A.test"));
        feed(&h,
             "<iq type='get' id='1' from='b.test' to='a.test'><ping xmlns='urn:xmpp:ping'/></iq>");
        assert_int_equal(h.nstanza, 2);
        feed(&h, cases[i].stanza);
        char want[200];
        snprintf(want, sizeof want, STREAM_ERR("%s"), cases[i].cond);
        assert_true(has(take(&h), want));
        assert_int_equal(h.nstanza, 2);
        side_free(&h);
    }
}

/* The authoritative role: db:verify answered from the gateway's secret. */
static void test_db_verify_authoritative(void **state)
{
    (void)state;
    struct side h;
    in_clear(&h, OPT, OPT, true);
    take(&h);
    char key[65];
    ref_key(secret_a, "b.test", "a.test", "S1D", key);
    feedf(&h, "<db:verify from='b.test' to='a.test' id='S1D'>\n  %s\n</db:verify>", key);
    assert_true(has(take(&h), "<db:verify from='a.test' to='b.test' id='S1D' type='valid'/>"));
    key[0] = key[0] == '0' ? '1' : '0';
    feedf(&h, "<db:verify from='b.test' to='a.test' id='S1D'>%s</db:verify>", key);
    assert_true(has(take(&h), "<db:verify from='a.test' to='b.test' id='S1D' type='invalid'/>"));
    ref_key(secret_a, "b.test", "a.test", "S1D", key);
    feedf(&h, "<db:verify from='b.test' to='a.test' id='OTHER'>%s</db:verify>", key);
    assert_true(has(take(&h), "id='OTHER' type='invalid'/>"));
    feedf(&h, "<db:verify from='b.test' to='z.test' id='S1D'>%s</db:verify>", key);
    assert_true(has(take(&h), DB_ERR("item-not-found")));
    feedf(&h, "<db:verify from='x.test' to='a.test' id='S1D'>%s</db:verify>", key);
    assert_true(has(take(&h), DB_ERR("policy-violation")));
    feed(&h, "<db:verify from='b.test' to='a.test'>k</db:verify>");
    assert_true(has(take(&h), STREAM_ERR("improper-addressing")));
    assert_int_equal(h.nauth, 0); /* verifying is not authenticating */
    side_free(&h);
}

/* ==== SASL EXTERNAL, inbound ==== */

static void test_sasl_external_inbound(void **state)
{
    (void)state;
    struct side h;
    /* no initial response: an empty challenge, then the response */
    in_clear(&h, REQ, OPT, true);
    h.certs[0] = "b.test";
    take(&h);
    in_starttls(&h, IN_HDR("b.test"));
    take(&h);
    feed(&h, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'/>");
    assert_true(has(take(&h), "<challenge xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"));
    feed(&h, "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>=</response>");
    assert_true(has(take(&h), SUCCESS));
    /* the restart must keep 'to' and 'from' */
    feed(&h, HDR("from='b.test' to='a2.test'"));
    assert_true(has(take(&h), STREAM_ERR("host-unknown")));
    side_free(&h);

    /* authzid of another domain */
    in_clear(&h, REQ, OPT, true);
    h.certs[0] = "b.test";
    take(&h);
    in_starttls(&h, IN_HDR("b.test"));
    take(&h);
    feed(&h, AUTH_EXTERNAL("Yy50ZXN0")); /* "c.test" */
    assert_true(has(take(&h), "<invalid-authzid/>"));
    assert_int_equal(h.closed, 0); /* SASL optional: dialback may follow */
    feed(&h, AUTH_EXTERNAL("!!!"));
    assert_true(has(take(&h), STREAM_ERR("policy-violation"))); /* second failure */
    side_free(&h);

    /* SASL required: a failure closes with <not-authorized/> */
    in_clear(&h, REQ, REQ, false);
    h.certs[0] = "b.test";
    take(&h);
    in_starttls(&h, IN_HDR("b.test"));
    take(&h);
    feed(&h, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGEAYg==</auth>");
    const char *o = take(&h);
    assert_true(has(o, "<invalid-mechanism/>"));
    assert_true(has(o, STREAM_ERR("not-authorized")));
    assert_string_equal(h.rule, "sasl-required");
    side_free(&h);

    /* EXTERNAL asked for when not offered (certificate not matching, row 7) */
    in_clear(&h, REQ, OPT, true);
    take(&h);
    in_starttls(&h, IN_HDR("b.test"));
    take(&h);
    feed(&h, AUTH_EXTERNAL("="));
    assert_true(has(take(&h), "<invalid-mechanism/>"));
    assert_int_equal(h.nauth, 0);
    side_free(&h);

    /* before TLS */
    in_clear(&h, OPT, OPT, true);
    take(&h);
    feed(&h, AUTH_EXTERNAL("="));
    assert_true(has(take(&h), "<encryption-required/>"));
    side_free(&h);
}

/* ==== multiplexing (SPEC section 3) ==== */

static void test_multiplex_inbound(void **state)
{
    (void)state;
    struct side h;
    /* an additional domain and a subdomain of the partner, by dialback */
    in_clear(&h, OPT, OPT, true);
    h.parts[1] = partner_new("c.test", OPT, OPT, false);
    h.parts[2] = partner_new("d.test", OPT, OPT, true);
    take(&h);
    in_dialback_ok(&h, "b.test", "a.test");
    in_dialback_ok(&h, "b2.test", "a.test");
    in_dialback_ok(&h, "conference.b.test", "a.test");
    in_dialback_ok(&h, "b.test", "a2.test"); /* target multiplexing */
    /* a pair still being verified carries nothing */
    db_request(&h, "b2.test", "a2.test");
    assert_int_equal(h.nverify, 5);
    struct side pend;
    side_init(&pend, secret_a);
    pend.parts[0] = partner_b(OPT, OPT, true);
    in_new(&pend, hosted_a, false);
    feed(&pend, IN_HDR("b.test"));
    in_dialback_ok(&pend, "b.test", "a.test");
    db_request(&pend, "b2.test", "a.test");
    feed(&pend, MSG("bob@b2.test", "alice@a.test"));
    assert_true(has(take(&pend), STREAM_ERR("invalid-from")));
    assert_int_equal(pend.nstanza, 0);
    side_free(&pend);
    feed(&h, MSG("room@conference.b.test/nick", "alice@a.test"));
    feed(&h, MSG("bob@b2.test", "alice@a.test"));
    feed(&h, MSG("bob@b.test", "carol@a2.test"));
    assert_int_equal(h.nstanza, 3);
    /* another partner whose policy forbids it here: <policy-violation/> */
    db_request(&h, "c.test", "a.test");
    assert_true(has(take(&h), DB_ERR("policy-violation")));
    assert_string_equal(h.rule, "dialback-disabled");
    /* another partner that allows it: verified like any other */
    in_dialback_ok(&h, "d.test", "a.test");
    struct fg_s2s_info info;
    fg_s2s_get_info(h.s, &info);
    assert_int_equal(info.pairs, 5);
    assert_string_equal(info.remote, "b.test");
    side_free(&h);

    /* dialback false: each domain needs its own stream */
    in_clear(&h, REQ, OPT, false);
    h.certs[0] = "b.test";
    h.certs[1] = "b2.test";
    take(&h);
    in_starttls(&h, IN_HDR("b.test"));
    take(&h);
    feed(&h, AUTH_EXTERNAL("Yi50ZXN0"));
    feed(&h, IN_HDR("b.test"));
    assert_true(has(take(&h), "<stream:features></stream:features>"));
    db_request(&h, "b2.test", "a.test");
    assert_true(has(take(&h), DB_ERR("not-authorized")));
    side_free(&h);
}

/* SASL required (row 1): further domains only by dialback with a matching certificate. */
static void test_multiplex_sasl_required(void **state)
{
    (void)state;
    struct side h;
    in_clear(&h, REQ, REQ, true);
    h.certs[0] = "b.test";
    h.certs[1] = "b2.test";
    h.parts[1] = partner_new("c.test", REQ, REQ, true);
    take(&h);
    in_starttls(&h, IN_HDR("b.test"));
    take(&h);
    /* not as the first authentication */
    db_request(&h, "b.test", "a.test");
    assert_true(has(take(&h), DB_ERR("not-authorized")));
    assert_string_equal(h.rule, "sasl-required");
    feed(&h, AUTH_EXTERNAL("Yi50ZXN0"));
    assert_true(has(take(&h), SUCCESS));
    feed(&h, IN_HDR("b.test"));
    assert_true(has(take(&h), FEATURES(F_DIALBACK)));
    /* b2.test: the certificate names it, valid at once without dialling back */
    db_request(&h, "b2.test", "a.test");
    assert_true(has(take(&h), "<db:result from='a.test' to='b2.test' type='valid'/>"));
    assert_int_equal(h.nverify, 0);
    /* conference.b.test: not in the certificate */
    db_request(&h, "conference.b.test", "a.test");
    assert_true(has(take(&h), DB_ERR("not-authorized")));
    /* c.test, another partner with SASL required, not in the certificate */
    db_request(&h, "c.test", "a.test");
    assert_true(has(take(&h), DB_ERR("policy-violation")));
    assert_int_equal(h.nverify, 0);
    feed(&h, MSG("bob@b2.test", "alice@a.test"));
    assert_int_equal(h.nstanza, 1);
    side_free(&h);
}

/* ==== live changes ==== */

static void test_recheck(void **state)
{
    (void)state;
    struct side h;
    /* TLS now required on a clear stream */
    in_clear(&h, OPT, OPT, true);
    take(&h);
    in_dialback_ok(&h, "b.test", "a.test");
    assert_true(fg_s2s_recheck(h.s)); /* nothing changed */
    assert_string_equal(take(&h), "");
    h.parts[0]->tls = REQ;
    assert_false(fg_s2s_recheck(h.s));
    assert_true(has(take(&h), STREAM_ERR("policy-violation")));
    assert_int_equal(h.closed, 1);
    assert_string_equal(h.rule, "policy-changed");
    assert_true(has(h.reason, "TLS is now required for b.test"));
    side_free(&h);

    /* the partner removed */
    in_clear(&h, OPT, OPT, true);
    take(&h);
    in_dialback_ok(&h, "b.test", "a.test");
    partner_free(h.parts[0]);
    h.parts[0] = NULL;
    assert_false(fg_s2s_recheck(h.s));
    assert_true(has(take(&h), STREAM_ERR("policy-violation")));
    assert_true(has(h.reason, "no longer a partner"));
    side_free(&h);

    /* the method no longer allowed: EXTERNAL after SASL became not-supported */
    in_clear(&h, REQ, OPT, true);
    h.certs[0] = "b.test";
    take(&h);
    in_starttls(&h, IN_HDR("b.test"));
    feed(&h, AUTH_EXTERNAL("="));
    feed(&h, IN_HDR("b.test"));
    take(&h);
    h.parts[0]->dialback = false; /* does not touch EXTERNAL */
    assert_true(fg_s2s_recheck(h.s));
    h.parts[0]->dialback = true;
    h.parts[0]->sasl = NS;
    assert_false(fg_s2s_recheck(h.s));
    assert_true(has(h.reason, "no longer allow SASL EXTERNAL"));
    side_free(&h);

    /* dialback turned off for a multiplexed additional domain */
    in_clear(&h, OPT, OPT, true);
    h.parts[1] = partner_new("d.test", OPT, OPT, true);
    take(&h);
    in_dialback_ok(&h, "b.test", "a.test");
    in_dialback_ok(&h, "d.test", "a.test");
    h.parts[1]->sasl = REQ; /* d.test: SASL required now, no certificate on this stream */
    assert_false(fg_s2s_recheck(h.s));
    assert_string_equal(h.refused_remote, "d.test");
    side_free(&h);

    /* outbound: dialback false now */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(NS, NS, true);
    out_new(&h, hosted_a, "a.test", "b.test", h.parts[0]);
    fg_s2s_start(h.s);
    feed(&h, OUT_HDR("o1") FEATURES(F_DIALBACK));
    feed(&h, "<db:result from='b.test' to='a.test' type='valid'/>");
    assert_int_equal(h.nauth, 1);
    assert_true(fg_s2s_recheck(h.s));
    h.parts[0]->dialback = false;
    assert_false(fg_s2s_recheck(h.s));
    assert_true(has(take(&h), STREAM_ERR("policy-violation")));
    assert_int_equal(h.npf, 0); /* nothing was pending */
    side_free(&h);
}

/* ==== time ==== */

static void test_establishment_timeout(void **state)
{
    (void)state;
    struct side h;
    side_init(&h, secret_a);
    h.parts[0] = partner_b(OPT, OPT, true);
    in_new(&h, hosted_a, false);
    fg_s2s_tick(h.s, 5000);
    feed(&h, IN_HDR("b.test"));
    take(&h);
    fg_s2s_tick(h.s, 64999);
    assert_int_equal(h.closed, 0);
    fg_s2s_tick(h.s, 65000);
    assert_true(has(take(&h), STREAM_ERR("connection-timeout")));
    assert_int_equal(h.closed, 1);
    assert_string_equal(h.rule, "timeout");
    side_free(&h);

    /* outbound: queued stanzas bounce with remote-server-timeout */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(OPT, OPT, true);
    out_new(&h, hosted_a, "a.test", "b.test", h.parts[0]);
    fg_s2s_tick(h.s, 0);
    struct fg_s2s_info info;
    fg_s2s_get_info(h.s, &info);
    assert_int_equal(info.state, FG_S2S_CONNECTING);
    fg_s2s_start(h.s);
    fg_s2s_get_info(h.s, &info);
    assert_int_equal(info.state, FG_S2S_NEGOTIATING);
    fg_s2s_tick(h.s, 60000);
    assert_int_equal(h.closed, 1);
    assert_int_equal(h.npf, 1);
    assert_string_equal(h.pf_cond, "remote-server-timeout");
    assert_string_equal(h.pf_remote, "b.test");
    fg_s2s_get_info(h.s, &info);
    assert_int_equal(info.state, FG_S2S_CLOSING);
    side_free(&h);

    /* a shorter setting */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(OPT, OPT, true);
    struct fg_s2s_config c = cfg_for(hosted_a);
    c.establishment_timeout_s = 5;
    struct fg_s2s_io io = io_for(&h);
    h.s = fg_s2s_in_new(&c, &io, false, NULL);
    fg_s2s_tick(h.s, 0);
    fg_s2s_tick(h.s, 5000);
    assert_int_equal(h.closed, 1);
    side_free(&h);
}

static void test_inactivity_timeout(void **state)
{
    (void)state;
    struct side h;
    side_init(&h, secret_a);
    h.parts[0] = partner_b(OPT, OPT, true);
    struct fg_s2s_config c = cfg_for(hosted_a);
    c.inactivity_timeout_s = 30;
    struct fg_s2s_io io = io_for(&h);
    h.s = fg_s2s_in_new(&c, &io, false, NULL);
    fg_s2s_tick(h.s, 0);
    feed(&h, IN_HDR("b.test"));
    in_dialback_ok(&h, "b.test", "a.test");
    fg_s2s_tick(h.s, 1000); /* data seen: the clock restarts here */
    fg_s2s_tick(h.s, 20000);
    feed(&h, " "); /* whitespace counts as data received */
    fg_s2s_tick(h.s, 30000);
    fg_s2s_tick(h.s, 59999);
    assert_int_equal(h.closed, 0);
    fg_s2s_tick(h.s, 60000);
    assert_true(has(take(&h), STREAM_ERR("connection-timeout")));
    side_free(&h);
}

/* An established outbound stream (row 17, dialback in the clear) with keep-alive. */
static void out_established(struct side *h, bool keepalive, int interval)
{
    side_init(h, secret_a);
    h->parts[0] = partner_b(NS, NS, true);
    h->parts[0]->keepalive = keepalive;
    struct fg_s2s_config c = cfg_for(hosted_a);
    c.keepalive_interval_s = interval;
    struct fg_s2s_io io = io_for(h);
    h->s = fg_s2s_out_new(&c, &io, "a.test", "b.test", h->parts[0], false);
    fg_s2s_start(h->s);
    feed(h, OUT_HDR("ka1") FEATURES(F_DIALBACK));
    feed(h, "<db:result from='b.test' to='a.test' type='valid'/>");
    assert_int_equal(h->nauth, 1);
    take(h);
}

static struct fg_xml_node *iq_answer(struct fg_arena *a, const char *id)
{
    struct fg_xml_node *iq = fg_xml_element_new(a, "iq", FG_XML_NS_SERVER);
    fg_xml_set_attr(a, iq, "type", "result");
    fg_xml_set_attr(a, iq, "id", id);
    fg_xml_set_attr(a, iq, "from", "b.test");
    fg_xml_set_attr(a, iq, "to", "a.test");
    return iq;
}

static void test_keepalive(void **state)
{
    (void)state;
    struct side h;
    out_established(&h, true, 10);
    fg_s2s_tick(h.s, 0);
    fg_s2s_tick(h.s, 9999);
    assert_string_equal(take(&h), "");
    fg_s2s_tick(h.s, 10000);
    const char *o = take(&h);
    assert_int_equal(o[0], ' ');
    assert_true(has(o, "<iq type='get' id='s2s-ping-"));
    assert_true(has(o, "from='a.test' to='b.test'><ping xmlns='urn:xmpp:ping'/></iq>"));
    char id[64];
    const char *p = strstr(o, "id='") + 4;
    size_t n = (size_t)(strchr(p, '\'') - p);
    assert_true(n < sizeof id);
    memcpy(id, p, n);
    id[n] = '\0';
    /* the answer comes back on the partner's own stream; the glue hands it over */
    struct fg_arena *a = fg_arena_new(0);
    assert_false(fg_s2s_out_pong(h.s, iq_answer(a, "someone-else")));
    assert_true(fg_s2s_out_pong(h.s, iq_answer(a, id)));
    assert_false(fg_s2s_out_pong(h.s, iq_answer(a, id))); /* once */
    fg_s2s_tick(h.s, 15000);
    fg_s2s_tick(h.s, 20000); /* idle again: another keep-alive */
    assert_true(has(take(&h), "<ping xmlns='urn:xmpp:ping'/>"));
    fg_s2s_tick(h.s, 30000);
    assert_int_equal(h.closed, 0);
    fg_s2s_tick(h.s, 34999);
    assert_int_equal(h.closed, 0);
    fg_s2s_tick(h.s, 35000); /* nothing received for twice the interval since 15 s */
    assert_true(has(take(&h), STREAM_ERR("connection-timeout")));
    assert_int_equal(h.closed, 1);
    fg_arena_free(a);
    side_free(&h);

    /* keepalive false: whitespace only; data sent resets the idle time */
    out_established(&h, false, 10);
    fg_s2s_tick(h.s, 0);
    fg_s2s_tick(h.s, 10000);
    assert_string_equal(take(&h), " ");
    feed(&h, " "); /* the peer's own keep-alive */
    fg_s2s_tick(h.s, 15000);
    struct fg_arena *b = fg_arena_new(0);
    struct fg_xml_node *m = fg_xml_element_new(b, "message", FG_XML_NS_CLIENT);
    fg_xml_set_attr(b, m, "from", "alice@a.test/x");
    fg_xml_set_attr(b, m, "to", "bob@b.test");
    assert_int_equal(fg_s2s_out_send_stanza(h.s, m), FG_OK);
    take(&h);
    fg_s2s_tick(h.s, 16000);
    fg_s2s_tick(h.s, 25000); /* 9 s after the stanza */
    assert_string_equal(take(&h), "");
    feed(&h, " "); /* the peer's own keep-alive */
    fg_s2s_tick(h.s, 26000);
    assert_string_equal(take(&h), " ");
    fg_arena_free(b);
    side_free(&h);
}

/* ==== outbound refusals ==== */

static void test_out_no_starttls_while_required(void **state)
{
    (void)state;
    struct side h;
    side_init(&h, secret_a);
    h.parts[0] = partner_b(REQ, OPT, true);
    out_new(&h, hosted_a, "a.test", "b.test", h.parts[0]);
    fg_s2s_start(h.s);
    take(&h);
    feed(&h, OUT_HDR("n1") FEATURES(F_DIALBACK));
    const char *o = take(&h);
    assert_null(strstr(o, "<db:result"));
    assert_true(has(o, "</stream:stream>"));
    assert_int_equal(h.closed, 1);
    assert_string_equal(h.rule, "tls-required");
    assert_string_equal(h.reason, "b.test offers no STARTTLS but TLS is required for b.test");
    assert_string_equal(h.fix, "set --tls optional for b.test or enable TLS on b.test");
    assert_int_equal(h.npf, 1);
    assert_string_equal(h.pf_local, "a.test");
    assert_string_equal(h.pf_remote, "b.test");
    assert_string_equal(h.pf_reason, h.reason);
    side_free(&h);

    /* the peer requires STARTTLS and TLS is not-supported for it */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(NS, NS, true);
    out_new(&h, hosted_a, "a.test", "b.test", h.parts[0]);
    fg_s2s_start(h.s);
    feed(&h, OUT_HDR("n2") FEATURES(F_STARTTLS_REQ F_DIALBACK));
    assert_null(strstr(take(&h), "<starttls"));
    assert_string_equal(h.rule, "tls-not-supported");
    side_free(&h);

    /* the peer refuses STARTTLS */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(REQ, OPT, true);
    out_new(&h, hosted_a, "a.test", "b.test", h.parts[0]);
    fg_s2s_start(h.s);
    feed(&h, OUT_HDR("n3") FEATURES(F_STARTTLS));
    assert_true(has(take(&h), STARTTLS));
    feed(&h, "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    assert_string_equal(h.rule, "tls-failed");
    assert_int_equal(h.closed, 1);
    side_free(&h);
}

static void test_out_sasl_required(void **state)
{
    (void)state;
    struct side h;
    /* EXTERNAL not offered to us */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(REQ, REQ, true);
    h.certs[0] = "b.test";
    out_new(&h, hosted_a, "a.test", "b.test", h.parts[0]);
    fg_s2s_start(h.s);
    feed(&h, OUT_HDR("s1") FEATURES(F_STARTTLS_REQ));
    feed(&h, PROCEED);
    tls_done(&h, true);
    take(&h);
    feed(&h, OUT_HDR("s2") FEATURES(F_DIALBACK));
    const char *o = take(&h);
    assert_null(strstr(o, "<db:result"));
    assert_true(has(o, STREAM_ERR("not-authorized"))); /* SPEC 3: the same rules outbound */
    assert_string_equal(h.rule, "sasl-required");
    assert_true(has(h.reason, "the peer does not offer SASL EXTERNAL"));
    assert_true(has(h.fix, "set --sasl optional for b.test"));
    side_free(&h);

    /* the partner's certificate does not match */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(REQ, REQ, false);
    out_new(&h, hosted_a, "a.test", "b.test", h.parts[0]);
    fg_s2s_start(h.s);
    feed(&h, OUT_HDR("s3") FEATURES(F_STARTTLS_REQ));
    feed(&h, PROCEED);
    tls_done(&h, true);
    feed(&h, OUT_HDR("s4") FEATURES(F_EXTERNAL));
    assert_null(strstr(take(&h), "<auth"));
    assert_string_equal(h.rule, "sasl-required");
    assert_true(has(h.reason, "issued by an unknown CA"));
    side_free(&h);

    /* no certificate of ours was presented */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(REQ, REQ, false);
    h.certs[0] = "b.test";
    out_new(&h, hosted_a, "a.test", "b.test", h.parts[0]);
    fg_s2s_start(h.s);
    feed(&h, OUT_HDR("s5") FEATURES(F_STARTTLS_REQ));
    feed(&h, PROCEED);
    tls_done(&h, false);
    feed(&h, OUT_HDR("s6") FEATURES(F_EXTERNAL));
    assert_string_equal(h.rule, "sasl-required");
    assert_true(has(h.fix, "install a certificate for a.test"));
    side_free(&h);

    /* EXTERNAL refused by the peer: SASL optional falls back to dialback */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(REQ, OPT, true);
    out_new(&h, hosted_a, "a.test", "b.test", h.parts[0]);
    fg_s2s_start(h.s);
    feed(&h, OUT_HDR("s7") FEATURES(F_STARTTLS_REQ));
    feed(&h, PROCEED);
    tls_done(&h, true);
    feed(&h, OUT_HDR("s8") FEATURES(F_EXTERNAL F_DIALBACK));
    assert_true(has(take(&h), "<auth"));
    feed(&h, "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>");
    char key[65];
    ref_key(secret_a, "b.test", "a.test", "s8", key);
    assert_true(has(take(&h), key));
    feed(&h, "<db:result from='b.test' to='a.test' type='valid'/>");
    assert_int_equal(h.auth_method, FG_S2S_AUTH_DIALBACK);
    side_free(&h);
}

static void test_out_dialback_answers(void **state)
{
    (void)state;
    struct side h;
    /* invalid */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(OPT, OPT, true);
    out_new(&h, hosted_a, "a.test", "b.test", h.parts[0]);
    fg_s2s_start(h.s);
    feed(&h, OUT_HDR("d1") FEATURES(F_DIALBACK));
    assert_true(has(take(&h), "<db:result from='a.test' to='b.test'>"));
    /* unsolicited answers for other pairs are ignored */
    feed(&h, "<db:result from='c.test' to='a.test' type='valid'/>");
    feed(&h, "<db:result from='b.test' to='a2.test' type='valid'/>");
    assert_int_equal(h.nauth, 0);
    feed(&h, "<db:result from='b.test' to='a.test' type='invalid'/>");
    assert_int_equal(h.closed, 1);
    assert_string_equal(h.rule, "dialback-invalid");
    assert_int_equal(h.npf, 1);
    assert_string_equal(h.pf_cond, "remote-server-not-found");
    side_free(&h);

    /* a dialback error */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(OPT, OPT, true);
    out_new(&h, hosted_a, "a.test", "b.test", h.parts[0]);
    fg_s2s_start(h.s);
    feed(&h, OUT_HDR("d2") FEATURES(F_DIALBACK));
    feed(&h, "<db:result from='b.test' to='a.test' type='error'><error type='cancel'>" DB_ERR(
                 "item-not-found") "</error></db:result>");
    assert_string_equal(h.rule, "dialback-error");
    assert_true(has(h.reason, "item-not-found"));
    assert_string_equal(h.pf_cond, "remote-server-not-found"); /* a refusal is final */
    side_free(&h);

    /* a temporary dialback error: the peer could not reach our authoritative server */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(OPT, OPT, true);
    out_new(&h, hosted_a, "a.test", "b.test", h.parts[0]);
    fg_s2s_start(h.s);
    feed(&h, OUT_HDR("d3") FEATURES(F_DIALBACK));
    feed(&h, "<db:result from='b.test' to='a.test' type='error'><error type='cancel'>" DB_ERR(
                 "remote-connection-failed") "</error></db:result>");
    assert_string_equal(h.rule, "dialback-error");
    assert_string_equal(h.pf_cond, "remote-server-timeout");
    side_free(&h);

    /* the peer offers no dialback at all */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(OPT, OPT, true);
    out_new(&h, hosted_a, "a.test", "b.test", h.parts[0]);
    fg_s2s_start(h.s);
    feed(&h, "<stream:stream xmlns='jabber:server' xmlns:stream='" NS_STREAM
             "' from='b.test' id='d3' version='1.0'><stream:features/>");
    assert_string_equal(h.rule, "no-method");
    assert_true(has(h.reason, "does not offer dialback"));
    side_free(&h);

    /* ... but declaring the namespace on the header is enough (RFC 3920 servers) */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(OPT, OPT, true);
    out_new(&h, hosted_a, "a.test", "b.test", h.parts[0]);
    fg_s2s_start(h.s);
    feed(&h, OUT_HDR("d4") "<stream:features/>");
    assert_true(has(take(&h), "<db:result"));
    side_free(&h);

    /* the peer's stream error during negotiation */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(OPT, OPT, true);
    out_new(&h, hosted_a, "a.test", "b.test", h.parts[0]);
    fg_s2s_start(h.s);
    feed(&h, OUT_HDR("d5") STREAM_ERR("host-unknown") "</stream:error></stream:stream>");
    assert_string_equal(h.rule, "peer-error");
    assert_true(has(h.reason, "<host-unknown/>"));
    assert_int_equal(h.npf, 1);
    side_free(&h);
}

static struct fg_xml_node *message(struct fg_arena *a, const char *from, const char *to)
{
    struct fg_xml_node *m = fg_xml_element_new(a, "message", FG_XML_NS_CLIENT);
    fg_xml_set_attr(a, m, "from", from);
    fg_xml_set_attr(a, m, "to", to);
    fg_xml_set_attr(a, m, "type", "chat");
    struct fg_xml_node *b = fg_xml_add_child(a, m, "body", NULL);
    fg_xml_add_text(a, b, "hi <there>", 10);
    return m;
}

static void test_out_send_stanza(void **state)
{
    (void)state;
    struct side h;
    struct fg_arena *a = fg_arena_new(0);
    side_init(&h, secret_a);
    h.parts[0] = partner_b(OPT, OPT, true);
    out_new(&h, hosted_a, "a.test", "b.test", h.parts[0]);
    assert_int_equal(fg_s2s_out_send_stanza(h.s, message(a, "alice@a.test", "bob@b.test")), FG_EIO);
    fg_s2s_start(h.s);
    feed(&h, OUT_HDR("m1") FEATURES(F_DIALBACK));
    assert_int_equal(fg_s2s_out_send_stanza(h.s, message(a, "alice@a.test", "bob@b.test")),
                     FG_EIO); /* queueing until then is the glue's */
    feed(&h, "<db:result from='b.test' to='a.test' type='valid'/>");
    take(&h);
    assert_int_equal(fg_s2s_out_send_stanza(h.s, message(a, "alice@a.test/r", "bob@b.test")),
                     FG_OK);
    assert_string_equal(take(&h), "<message from='alice@a.test/r' to='bob@b.test' type='chat'>"
                                  "<body>hi &lt;there&gt;</body></message>");
    struct fg_xml_node *sv = fg_xml_element_new(a, "presence", FG_XML_NS_SERVER);
    fg_xml_set_attr(a, sv, "from", "alice@a.test");
    fg_xml_set_attr(a, sv, "to", "bob@b.test");
    assert_int_equal(fg_s2s_out_send_stanza(h.s, sv), FG_OK);
    assert_string_equal(take(&h), "<presence from='alice@a.test' to='bob@b.test'/>");
    /* pairs not authenticated */
    assert_int_equal(fg_s2s_out_send_stanza(h.s, message(a, "alice@a2.test", "bob@b.test")),
                     FG_EINVAL);
    assert_int_equal(fg_s2s_out_send_stanza(h.s, message(a, "alice@a.test", "bob@b2.test")),
                     FG_EINVAL);
    assert_int_equal(fg_s2s_out_send_stanza(h.s, message(a, "alice@a.test", "")), FG_EINVAL);
    assert_int_equal(fg_s2s_out_send_stanza(h.s, fg_xml_element_new(a, "foo", "urn:x")), FG_EINVAL);
    assert_string_equal(take(&h), "");
    fg_arena_free(a);
    side_free(&h);
}

static void test_out_multiplex(void **state)
{
    (void)state;
    struct side h;
    side_init(&h, secret_a);
    h.parts[0] = partner_b(OPT, OPT, true);
    h.parts[1] = partner_new("c.test", OPT, OPT, false);
    out_new(&h, hosted_a, "a.test", "b.test", h.parts[0]);
    assert_int_equal(fg_s2s_out_add_pair(h.s, "a2.test", "b.test"), FG_EIO);
    fg_s2s_start(h.s);
    feed(&h, OUT_HDR("mx") FEATURES(F_DIALBACK));
    feed(&h, "<db:result from='b.test' to='a.test' type='valid'/>");
    take(&h);
    /* sender multiplexing */
    assert_int_equal(fg_s2s_out_add_pair(h.s, "a2.test", "b.test"), FG_OK);
    char key[65];
    ref_key(secret_a, "b.test", "a2.test", "mx", key);
    const char *o = take(&h);
    assert_true(has(o, "<db:result from='a2.test' to='b.test'>"));
    assert_true(has(o, key));
    assert_int_equal(fg_s2s_out_add_pair(h.s, "a2.test", "b.test"), FG_EEXISTS);
    feed(&h, "<db:result from='b.test' to='a2.test' type='valid'/>");
    assert_int_equal(h.nauth, 2);
    assert_string_equal(h.auth_local, "a2.test");
    assert_true(fg_s2s_has_pair(h.s, "a2.test", "b.test"));
    /* target multiplexing (the peer advertised dialback errors) */
    assert_int_equal(fg_s2s_out_add_pair(h.s, "a.test", "b2.test"), FG_OK);
    feed(&h, "<db:result from='b2.test' to='a.test' type='error'><error type='cancel'>" DB_ERR(
                 "item-not-found") "</error></db:result>");
    assert_int_equal(h.npf, 1);
    assert_string_equal(h.pf_remote, "b2.test");
    assert_int_equal(h.closed, 0); /* not fatal for the stream */
    /* another partner whose policy does not allow it, an unlisted one, not ours */
    assert_int_equal(fg_s2s_out_add_pair(h.s, "a.test", "c.test"), FG_EREFUSED);
    assert_int_equal(fg_s2s_out_add_pair(h.s, "a.test", "x.test"), FG_EREFUSED);
    assert_int_equal(fg_s2s_out_add_pair(h.s, "z.test", "b.test"), FG_EINVAL);
    /* a pending pair times out */
    fg_s2s_tick(h.s, 1000);
    assert_int_equal(fg_s2s_out_add_pair(h.s, "a.test", "conference.b.test"), FG_OK);
    fg_s2s_tick(h.s, 2000);
    fg_s2s_tick(h.s, 61000);
    assert_int_equal(h.npf, 2);
    assert_string_equal(h.pf_cond, "remote-server-timeout");
    assert_string_equal(h.pf_remote, "conference.b.test");
    side_free(&h);

    /* a peer without dialback errors: no target multiplexing */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(OPT, OPT, true);
    out_new(&h, hosted_a, "a.test", "b.test", h.parts[0]);
    fg_s2s_start(h.s);
    feed(&h, OUT_HDR("my") "<stream:features/>");
    feed(&h, "<db:result from='b.test' to='a.test' type='valid'/>");
    assert_int_equal(fg_s2s_out_add_pair(h.s, "a.test", "b2.test"), FG_EREFUSED);
    assert_int_equal(fg_s2s_out_add_pair(h.s, "a2.test", "b.test"), FG_OK);
    side_free(&h);

    /* dialback false: each pair needs its own stream */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(REQ, OPT, false);
    h.certs[0] = "b.test";
    out_new(&h, hosted_a, "a.test", "b.test", h.parts[0]);
    fg_s2s_start(h.s);
    feed(&h, OUT_HDR("mz") FEATURES(F_STARTTLS_REQ));
    feed(&h, PROCEED);
    tls_done(&h, true);
    feed(&h, OUT_HDR("mz2") FEATURES(F_EXTERNAL F_DIALBACK));
    feed(&h, SUCCESS);
    feed(&h, OUT_HDR("mz3") FEATURES(F_DIALBACK));
    assert_int_equal(h.auth_method, FG_S2S_AUTH_SASL_EXTERNAL);
    assert_int_equal(fg_s2s_out_add_pair(h.s, "a2.test", "b.test"), FG_EREFUSED);
    side_free(&h);

    /* SASL required: only where the partner's certificate names the new domain */
    side_init(&h, secret_a);
    h.parts[0] = partner_b(REQ, REQ, true);
    h.certs[0] = "b.test";
    h.certs[1] = "b2.test";
    out_new(&h, hosted_a, "a.test", "b.test", h.parts[0]);
    fg_s2s_start(h.s);
    feed(&h, OUT_HDR("mq") FEATURES(F_STARTTLS_REQ));
    feed(&h, PROCEED);
    tls_done(&h, true);
    feed(&h, OUT_HDR("mq2") FEATURES(F_EXTERNAL));
    feed(&h, SUCCESS);
    feed(&h, OUT_HDR("mq3") FEATURES(F_DIALBACK));
    assert_int_equal(fg_s2s_out_add_pair(h.s, "a.test", "b2.test"), FG_OK);
    assert_int_equal(fg_s2s_out_add_pair(h.s, "a.test", "conference.b.test"), FG_EREFUSED);
    side_free(&h);
}

static void test_out_verify_only(void **state)
{
    (void)state;
    struct side h;
    side_init(&h, secret_b);
    h.parts[0] = partner_new("a.test", OPT, OPT, true);
    struct fg_s2s_config c = cfg_for(hosted_b);
    struct fg_s2s_io io = io_for(&h);
    h.s = fg_s2s_verify_new(&c, &io, "b.test", "a.test", h.parts[0], false);
    assert_non_null(h.s);
    /* queued before the stream is ready */
    assert_int_equal(fg_s2s_out_verify(h.s, "b.test", "a.test", "ID1", "k1"), FG_OK);
    assert_int_equal(fg_s2s_out_verify(h.s, "b.test", "a.test", "ID1", "k1"), FG_EEXISTS);
    fg_s2s_start(h.s);
    assert_null(strstr(take(&h), "<db:verify"));
    feed(&h, HDR("from='a.test' to='b.test' id='v1'") FEATURES(F_STARTTLS F_DIALBACK));
    assert_true(has(take(&h), STARTTLS));
    feed(&h, PROCEED);
    tls_done(&h, false);
    take(&h);
    feed(&h, HDR("from='a.test' to='b.test' id='v2'") FEATURES(F_DIALBACK));
    const char *o = take(&h);
    assert_true(has(o, "<db:verify from='b.test' to='a.test' id='ID1'>k1</db:verify>"));
    assert_null(strstr(o, "<db:result")); /* no authentication on this stream */
    struct fg_s2s_info info;
    fg_s2s_get_info(h.s, &info);
    assert_true(info.verify_only);
    assert_int_equal(info.state, FG_S2S_ESTABLISHED);
    assert_int_equal(info.auth, FG_S2S_AUTH_NONE);
    /* unsolicited answers are dropped */
    feed(&h, "<db:verify from='a.test' to='b.test' id='ID9' type='valid'/>");
    assert_int_equal(h.nvres, 0);
    feed(&h, "<db:verify from='a.test' to='b.test' id='ID1' type='invalid'/>");
    assert_int_equal(h.nvres, 1);
    assert_int_equal(h.vres, FG_S2S_INVALID);
    assert_string_equal(h.vr_id, "ID1");
    assert_string_equal(h.vr_from, "b.test");
    assert_string_equal(h.vr_to, "a.test");
    /* sent at once now */
    assert_int_equal(fg_s2s_out_verify(h.s, "b.test", "a.test", "ID2", "k2"), FG_OK);
    assert_true(has(take(&h), "id='ID2'>k2</db:verify>"));
    /* the stream ends first: the request counts as failed */
    fg_s2s_close(h.s, NULL);
    assert_int_equal(h.nvres, 2);
    assert_int_equal(h.vres, FG_S2S_ERROR);
    assert_int_equal(h.npf, 0);
    assert_int_equal(fg_s2s_out_verify(h.s, "b.test", "a.test", "ID3", "k"), FG_EIO);
    side_free(&h);

    /* an unanswered request times out */
    side_init(&h, secret_b);
    h.parts[0] = partner_new("a.test", NS, NS, true);
    h.s = fg_s2s_verify_new(&c, &io, "b.test", "a.test", h.parts[0], false);
    fg_s2s_tick(h.s, 0);
    fg_s2s_start(h.s);
    feed(&h, HDR("from='a.test' to='b.test' id='v3'") FEATURES(F_DIALBACK));
    assert_int_equal(fg_s2s_out_verify(h.s, "b.test", "a.test", "ID4", "k4"), FG_OK);
    assert_int_equal(fg_s2s_out_verify(h.s, "b.test", "a.test", "ID5", "k5"), FG_OK);
    fg_s2s_tick(h.s, 1000);
    fg_s2s_tick(h.s, 60999);
    assert_int_equal(h.nvres, 0);
    fg_s2s_tick(h.s, 61000);
    assert_int_equal(h.nvres, 2);
    assert_int_equal(h.vres, FG_S2S_TIMEOUT);
    assert_int_equal(h.closed, 0);
    side_free(&h);
}

/* ==== machines wired to each other ==== */

/* Moves bytes between an outbound side x and an inbound side y until both are quiet,
 * finishing TLS on both when both asked for it. */
static void pump(struct side *x, struct side *y, bool x_cert)
{
    for (int round = 0; round < 100; round++) {
        bool moved = false;
        const char *o = take(x);
        if (*o) {
            char *copy = fg_strdup(o);
            feed(y, copy);
            fg_free(copy);
            moved = true;
        }
        o = take(y);
        if (*o) {
            char *copy = fg_strdup(o);
            feed(x, copy);
            fg_free(copy);
            moved = true;
        }
        if (x->starttls == 1 && y->starttls == 1) {
            x->starttls = y->starttls = 2;
            tls_done(y, false);
            tls_done(x, x_cert);
            moved = true;
        }
        if (!moved)
            return;
    }
    fail_msg("the machines did not settle");
}

/* a.test (A) sends to b.test (B): A's outbound stream, B's inbound stream; B verifies the
 * key over its own verify-only stream to A's authoritative side (another inbound stream
 * of A). A's key is made with key_secret, A's authoritative side checks with secret_a. */
static void dialback_three_way(const char *key_secret, enum fg_s2s_verdict expect)
{
    struct side ao, bi, bv, ai;
    side_init(&ao, key_secret);
    side_init(&bi, secret_b);
    side_init(&bv, secret_b);
    side_init(&ai, secret_a);
    ao.parts[0] = partner_b(REQ, OPT, true); /* row 7 on both sides */
    bi.parts[0] = partner_new("a.test", REQ, OPT, true);
    bv.parts[0] = partner_new("a.test", REQ, OPT, true);
    ai.parts[0] = partner_b(REQ, OPT, true);
    /* no certificate is trusted anywhere: EXTERNAL is not offered, dialback runs */
    out_new(&ao, hosted_a, "a.test", "b.test", ao.parts[0]);
    in_new(&bi, hosted_b, false);
    fg_s2s_start(ao.s);
    pump(&ao, &bi, true);
    assert_int_equal(bi.nverify, 1);
    assert_string_equal(bi.vfrom, "a.test");
    assert_string_equal(bi.vto, "b.test");
    assert_int_equal(ao.nauth, 0);

    /* B's glue: a verify-only stream to a.test's authoritative server */
    struct fg_s2s_config cb = cfg_for(hosted_b);
    struct fg_s2s_io io = io_for(&bv);
    bv.s = fg_s2s_verify_new(&cb, &io, "b.test", "a.test", bv.parts[0], false);
    in_new(&ai, hosted_a, false);
    assert_int_equal(fg_s2s_out_verify(bv.s, "b.test", "a.test", bi.vid, bi.vkey), FG_OK);
    fg_s2s_start(bv.s);
    pump(&bv, &ai, false);
    assert_int_equal(bv.nvres, 1);
    assert_int_equal(bv.vres, expect);
    assert_string_equal(bv.vr_id, fg_s2s_stream_id(bi.s));
    assert_int_equal(ai.nauth, 0);
    fg_s2s_close(bv.s, NULL);
    pump(&bv, &ai, false);
    assert_int_equal(ai.closed, 1);

    fg_s2s_in_dialback_result(bi.s, bv.vr_from[0] ? "a.test" : "", "b.test", bv.vres);
    pump(&ao, &bi, true);
    if (expect == FG_S2S_VALID) {
        assert_int_equal(ao.nauth, 1);
        assert_int_equal(ao.auth_method, FG_S2S_AUTH_DIALBACK);
        assert_int_equal(bi.nauth, 1);
        assert_string_equal(bi.auth_local, "b.test");
        assert_string_equal(bi.auth_remote, "a.test");
        struct fg_arena *a = fg_arena_new(0);
        assert_int_equal(fg_s2s_out_send_stanza(ao.s, message(a, "alice@a.test/r", "bob@b.test")),
                         FG_OK);
        fg_arena_free(a);
        pump(&ao, &bi, true);
        assert_int_equal(bi.nstanza, 1);
        assert_true(has(fg_buf_str(&bi.stanza), "<body>hi &lt;there&gt;</body>"));
        struct fg_s2s_info info;
        fg_s2s_get_info(ao.s, &info);
        assert_int_equal(info.state, FG_S2S_ESTABLISHED);
        assert_string_equal(info.tls_version, "TLSv1.3");
        assert_int_equal(info.auth, FG_S2S_AUTH_DIALBACK);
        assert_string_equal(fg_s2s_state_name(info.state), "established");
        assert_string_equal(fg_s2s_auth_name(info.auth), "dialback");
        fg_s2s_get_info(bi.s, &info);
        assert_string_equal(info.local, "b.test");
        assert_string_equal(info.remote, "a.test");
        assert_string_equal(fg_s2s_dir_name(info.dir), "in");
        /* both ends close cleanly */
        fg_s2s_close(ao.s, NULL);
        pump(&ao, &bi, true);
        assert_int_equal(bi.closed, 1);
        assert_int_equal(ao.npf, 0);
    } else {
        /* spoofed: B says invalid and closes; A gives up and bounces */
        assert_int_equal(bi.closed, 1);
        assert_string_equal(bi.rule, "dialback-invalid");
        assert_int_equal(ao.closed, 1);
        assert_int_equal(ao.nauth, 0);
        assert_string_equal(ao.rule, "dialback-invalid");
        assert_int_equal(ao.npf, 1);
    }
    side_free(&ao);
    side_free(&bi);
    side_free(&bv);
    side_free(&ai);
}

static void test_inprocess_dialback(void **state)
{
    (void)state;
    dialback_three_way(secret_a, FG_S2S_VALID);
}

static void test_inprocess_dialback_spoofed(void **state)
{
    (void)state;
    dialback_three_way("not the secret of a.test", FG_S2S_INVALID);
}

/* SASL EXTERNAL both ways between two machines, fed whole and one byte at a time. */
static void test_inprocess_external(void **state)
{
    (void)state;
    for (size_t split = 0; split < 3; split++) {
        struct side ao, bi;
        side_init(&ao, secret_a);
        side_init(&bi, secret_b);
        ao.split = bi.split = split;
        ao.parts[0] = partner_b(REQ, REQ, false); /* row 2 */
        bi.parts[0] = partner_new("a.test", REQ, REQ, false);
        ao.certs[0] = "b.test";
        bi.certs[0] = "a.test";
        out_new(&ao, hosted_a, "a.test", "b.test", ao.parts[0]);
        in_new(&bi, hosted_b, false);
        fg_s2s_start(ao.s);
        pump(&ao, &bi, true);
        assert_int_equal(ao.nauth, 1);
        assert_int_equal(ao.auth_method, FG_S2S_AUTH_SASL_EXTERNAL);
        assert_int_equal(bi.nauth, 1);
        assert_int_equal(bi.auth_method, FG_S2S_AUTH_SASL_EXTERNAL);
        struct fg_arena *a = fg_arena_new(0);
        assert_int_equal(fg_s2s_out_send_stanza(ao.s, message(a, "alice@a.test", "bob@b.test")),
                         FG_OK);
        fg_arena_free(a);
        pump(&ao, &bi, true);
        assert_int_equal(bi.nstanza, 1);
        struct fg_s2s_info info;
        fg_s2s_get_info(bi.s, &info);
        assert_int_equal(info.auth, FG_S2S_AUTH_SASL_EXTERNAL);
        assert_string_equal(info.tls_version, "TLSv1.3");
        /* an idle established stream stays small (DESIGN.md: 8 KB without TLS state) */
        fg_s2s_tick(bi.s, 0);
        fg_s2s_tick(bi.s, 5000);
        assert_true(fg_s2s_memory(bi.s) < 8192);
        side_free(&ao);
        side_free(&bi);
    }
}

/* No TLS anywhere (row 17 both sides): dialback over TCP, the key checked by B through a
 * verify callback answered straight from A's secret. */
static void test_inprocess_clear(void **state)
{
    (void)state;
    struct side ao, bi;
    side_init(&ao, secret_a);
    side_init(&bi, secret_b);
    ao.parts[0] = partner_b(NS, NS, true);
    bi.parts[0] = partner_new("a.test", NS, NS, true);
    out_new(&ao, hosted_a, "a.test", "b.test", ao.parts[0]);
    in_new(&bi, hosted_b, false);
    fg_s2s_start(ao.s);
    pump(&ao, &bi, false);
    assert_int_equal(bi.nverify, 1);
    struct fg_dialback_secret sa;
    fg_dialback_secret_init(&sa, secret_a, strlen(secret_a));
    bool ok = fg_dialback_verify(&sa, bi.vto, bi.vfrom, bi.vid, bi.vkey, strlen(bi.vkey));
    fg_dialback_secret_clear(&sa);
    assert_true(ok);
    fg_s2s_in_dialback_result(bi.s, bi.vfrom, bi.vto, FG_S2S_VALID);
    pump(&ao, &bi, false);
    assert_int_equal(ao.nauth, 1);
    struct fg_s2s_info info;
    fg_s2s_get_info(ao.s, &info);
    assert_null(info.tls_version);
    assert_int_equal(ao.starttls, 0);
    assert_int_equal(bi.starttls, 0);
    side_free(&ao);
    side_free(&bi);
}

/* ==== dialback keys (XEP-0185) ==== */

static void test_dialback_keys(void **state)
{
    (void)state;
    struct fg_dialback_secret s;
    char key[FG_DIALBACK_KEY_LEN + 1];
    /* XEP-0185 section 3 */
    fg_dialback_secret_init(&s, "s3cr3tf0rd14lb4ck", 17);
    assert_string_equal(s.hex, "a7136eb1f46c9ef18c5e78c36ca257067c69b3d518285f0b18a96c33beae9acc");
    assert_int_equal(
        fg_dialback_key(&s, "xmpp.example.com", "example.org", "D60000229F", key, sizeof key),
        FG_OK);
    assert_string_equal(key, "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643");
    /* XEP-0220 section 2.1.1 */
    assert_int_equal(
        fg_dialback_key(&s, "montague.example", "capulet.example", "D60000229F", key, sizeof key),
        FG_OK);
    assert_string_equal(key, "b4835385f37fe2895af6c196b59097b16862406db80559900d96bf6fa7d23df3");
    /* XEP-0220 section 2.2.2 */
    fg_dialback_secret_init(&s, "d14lb4ck43v3r", 13);
    assert_int_equal(
        fg_dialback_key(&s, "capulet.example", "montague.example", "417GAF25", key, sizeof key),
        FG_OK);
    assert_string_equal(key, "225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d");
    assert_true(
        fg_dialback_verify(&s, "capulet.example", "montague.example", "417GAF25",
                           "\n  "
                           "225cc5aa6a071133249d25fef42ae516fc7a86c523aa1c6980a7f73e784c972d"
                           "  \n",
                           68));
    /* against the HMAC computed here, over assorted inputs */
    static const char *const ids[] = {"1", "abcdef0123456789abcdef0123456789", "x y",
                                      "ID-\xc3\xa9"};
    static const char *const recv[] = {"b.test", "xn--bcher-kva.test", "conference.b.test"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        for (size_t j = 0; j < sizeof recv / sizeof recv[0]; j++) {
            char want[65];
            fg_dialback_secret_init(&s, secret_a, strlen(secret_a));
            ref_key(secret_a, recv[j], "a.test", ids[i], want);
            assert_int_equal(fg_dialback_key(&s, recv[j], "a.test", ids[i], key, sizeof key),
                             FG_OK);
            assert_string_equal(key, want);
            assert_true(fg_dialback_verify(&s, recv[j], "a.test", ids[i], want, 64));
            /* the order of the inputs matters */
            assert_false(fg_dialback_verify(&s, "a.test", recv[j], ids[i], want, 64));
            want[63] = want[63] == 'a' ? 'b' : 'a';
            assert_false(fg_dialback_verify(&s, recv[j], "a.test", ids[i], want, 64));
            assert_false(fg_dialback_verify(&s, recv[j], "a.test", ids[i], want, 63));
        }
    /* bad inputs */
    assert_int_equal(fg_dialback_key(&s, "", "a.test", "1", key, sizeof key), FG_EINVAL);
    assert_int_equal(fg_dialback_key(&s, "b.test", "a.test", "", key, sizeof key), FG_EINVAL);
    assert_int_equal(fg_dialback_key(&s, "b.test", "a.test", "1", key, 64), FG_EINVAL);
    char longid[FG_DIALBACK_ID_MAX + 2];
    memset(longid, 'i', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    assert_int_equal(fg_dialback_key(&s, "b.test", "a.test", longid, key, sizeof key), FG_EINVAL);
    longid[FG_DIALBACK_ID_MAX] = '\0';
    assert_int_equal(fg_dialback_key(&s, "b.test", "a.test", longid, key, sizeof key), FG_OK);
    assert_false(fg_dialback_verify(&s, "b.test", "a.test", "1", NULL, 0));
    assert_false(fg_dialback_verify(&s, "b.test", "a.test", "1", "", 0));
    assert_true(fg_dialback_key_equal("abc", 3, "abc", 3));
    assert_false(fg_dialback_key_equal("abc", 3, "abd", 3));
    assert_false(fg_dialback_key_equal("abc", 3, "abcd", 4));
    fg_dialback_secret_clear(&s);
    assert_int_equal(s.hex[0], 0);
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(fg_s2s_dir_name(FG_S2S_OUT), "out");
    assert_string_equal(fg_s2s_state_name(FG_S2S_CONNECTING), "connecting");
    assert_string_equal(fg_s2s_state_name(FG_S2S_NEGOTIATING), "negotiating");
    assert_string_equal(fg_s2s_state_name(FG_S2S_CLOSING), "closing");
    assert_string_equal(fg_s2s_auth_name(FG_S2S_AUTH_NONE), "none");
    assert_string_equal(fg_s2s_auth_name(FG_S2S_AUTH_SASL_EXTERNAL), "sasl-external");
    assert_string_equal(fg_s2s_verdict_name(FG_S2S_TIMEOUT), "timeout");
    /* bad domains refuse to build a stream; NULLs are harmless */
    struct side h;
    side_init(&h, secret_a);
    h.parts[0] = partner_b(OPT, OPT, true);
    struct fg_s2s_config c = cfg_for(hosted_a);
    struct fg_s2s_io io = io_for(&h);
    assert_null(fg_s2s_out_new(&c, &io, "a.test", "not a domain", h.parts[0], false));
    assert_null(fg_s2s_out_new(&c, &io, "a.test", "b.test", NULL, false));
    fg_s2s_free(NULL);
    fg_s2s_feed(NULL, "x", 1);
    fg_s2s_tick(NULL, 0);
    fg_s2s_close(NULL, NULL);
    assert_false(fg_s2s_recheck(NULL));
    side_free(&h);
}

/* Closing from inside callbacks, and the peer's close. */
static void test_close_paths(void **state)
{
    (void)state;
    struct side h;
    in_clear(&h, OPT, OPT, true);
    take(&h);
    in_dialback_ok(&h, "b.test", "a.test");
    feed(&h, "</stream:stream>");
    assert_true(has(take(&h), "</stream:stream>"));
    assert_int_equal(h.closed, 1);
    fg_s2s_close(h.s, "system-shutdown"); /* no second close */
    assert_int_equal(h.closed, 1);
    side_free(&h);

    in_clear(&h, OPT, OPT, true);
    take(&h);
    fg_s2s_close(h.s, "system-shutdown");
    assert_true(has(take(&h), STREAM_ERR("system-shutdown") "</stream:error></stream:stream>"));
    side_free(&h);

    /* bytes after <starttls/> in the same read are never read as the secure stream */
    in_clear(&h, OPT, OPT, true);
    take(&h);
    feed(&h, STARTTLS MSG("bob@b.test", "alice@a.test"));
    assert_true(has(take(&h), PROCEED));
    tls_done(&h, false);
    feed(&h, IN_HDR("b.test"));
    assert_true(has(take(&h), "<stream:features>"));
    assert_int_equal(h.closed, 0);
    side_free(&h);
}

int main(void)
{
    fg_log_set_level(FG_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows_are_the_matrix),
        cmocka_unit_test(test_wire_matches_matrix_methods),
        cmocka_unit_test(test_matrix_inbound),
        cmocka_unit_test(test_matrix_outbound),
        cmocka_unit_test(test_unlisted_domain),
        cmocka_unit_test(test_connection_limit),
        cmocka_unit_test(test_header_checks),
        cmocka_unit_test(test_no_from_only_starttls),
        cmocka_unit_test(test_invalid_from_after_tls),
        cmocka_unit_test(test_direct_tls_not_supported),
        cmocka_unit_test(test_stanza_before_auth),
        cmocka_unit_test(test_dialback_before_required_tls),
        cmocka_unit_test(test_dialback_false),
        cmocka_unit_test(test_db_result_addressing),
        cmocka_unit_test(test_verify_invalid),
        cmocka_unit_test(test_verify_error_and_timeout),
        cmocka_unit_test(test_verify_answered_inside_callback),
        cmocka_unit_test(test_stanza_addressing),
        cmocka_unit_test(test_db_verify_authoritative),
        cmocka_unit_test(test_sasl_external_inbound),
        cmocka_unit_test(test_multiplex_inbound),
        cmocka_unit_test(test_multiplex_sasl_required),
        cmocka_unit_test(test_recheck),
        cmocka_unit_test(test_establishment_timeout),
        cmocka_unit_test(test_inactivity_timeout),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_out_no_starttls_while_required),
        cmocka_unit_test(test_out_sasl_required),
        cmocka_unit_test(test_out_dialback_answers),
        cmocka_unit_test(test_out_send_stanza),
        cmocka_unit_test(test_out_multiplex),
        cmocka_unit_test(test_out_verify_only),
        cmocka_unit_test(test_inprocess_dialback),
        cmocka_unit_test(test_inprocess_dialback_spoofed),
        cmocka_unit_test(test_inprocess_external),
        cmocka_unit_test(test_inprocess_clear),
        cmocka_unit_test(test_dialback_keys),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_close_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
