/* test_c2s.c - the client stream state machine fed with byte strings: STARTTLS, SASL
 * (SCRAM computed by a small client written here with OpenSSL, not by the code under
 * test; PLAIN), binding, 'from' stamping, stream errors, idle pings, splits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <gsasl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/crypto.h"
#include "core/err.h"
#include "core/log.h"
#include "store/store.h"
#include "xml/stanza.h"
#include "xmpp/c2s.h"
#include "xmpp/sasl.h"

#define DOMAIN "example.test"
#define HDR                                                                                        \
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "                                   \
    "xmlns:stream='http://etherx.jabber.org/streams' to='" DOMAIN "' version='1.0'>"
#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define STARTTLS "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
#define PROCEED "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
#define STREAM_ERR(cond) "<stream:error><" cond " xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
#define BIND_IQ(id, res)                                                                           \
    "<iq type='set' id='" id "'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>" res     \
    "</resource></bind></iq>"

/* ---- users (derived once) ---- */

static struct fg_user alice, bob, carol;

static int group_setup(void **state)
{
    (void)state;
    memset(&alice, 0, sizeof alice);
    memset(&bob, 0, sizeof bob);
    memset(&carol, 0, sizeof carol);
    snprintf(alice.jid, sizeof alice.jid, "alice@" DOMAIN);
    snprintf(bob.jid, sizeof bob.jid, "bob@" DOMAIN);
    snprintf(carol.jid, sizeof carol.jid, "carol@" DOMAIN);
    if (fg_scram_derive("pencil", "SHA-256", 4096, &alice.sha256) ||
        fg_scram_derive("pencil", "SHA-1", 4096, &alice.sha1) ||
        fg_scram_derive("hunter2", "SHA-256", 4096, &bob.sha256) ||
        /* SASLprep maps U+00AD SOFT HYPHEN to nothing: "I\u00ADX" is "IX" */
        fg_scram_derive("IX", "SHA-256", 4096, &carol.sha256))
        return -1;
    fg_log_set_level(FG_LOG_DEBUG);
    return 0;
}

/* ---- harness ---- */

struct h {
    struct fg_c2s *c;
    struct fg_c2s_config cfg;
    struct fg_buf out;
    size_t mark;
    int closed, starttls, binds, lookups;
    int bind_rc;
    bool bind_res_null;
    char bind_res[1100];
    int nstanzas;
    struct fg_buf stanza;
    const char *close_in_stanza;
    const char *close_in_send; /* the glue closing from inside send (write queue full) */
    size_t split;              /* 0: whole messages; k: every message split at byte k */
    bool bytewise;             /* every message fed one byte at a time */
};

static char *const domains[] = {DOMAIN, "other.example", NULL};

static void io_send(void *ud, const char *d, size_t n)
{
    struct h *h = ud;
    assert_false(h->closed); /* nothing after close */
    fg_buf_append(&h->out, d, n);
    if (h->close_in_send) {
        const char *cond = h->close_in_send;
        h->close_in_send = NULL;
        fg_c2s_close(h->c, cond);
    }
}

static void io_start_tls(void *ud)
{
    ((struct h *)ud)->starttls++;
}

static void io_close(void *ud)
{
    ((struct h *)ud)->closed++;
}

static int io_get_user(void *ud, const char *bare, struct fg_user *out)
{
    struct h *h = ud;
    h->lookups++;
    const struct fg_user *all[] = {&alice, &bob, &carol};
    for (size_t i = 0; i < 3; i++)
        if (strcmp(all[i]->jid, bare) == 0) {
            *out = *all[i];
            return 0;
        }
    return FG_ENOTFOUND;
}

static int io_bind(void *ud, const char *bare, const char *res, char *full, size_t len)
{
    struct h *h = ud;
    h->binds++;
    h->bind_res_null = res == NULL;
    snprintf(h->bind_res, sizeof h->bind_res, "%s", res ? res : "");
    if (h->bind_rc)
        return h->bind_rc;
    snprintf(full, len, "%s/%s", bare, res ? res : "gen-7f3a");
    return 0;
}

static void io_stanza(void *ud, struct fg_xml_node *n, struct fg_arena *a)
{
    struct h *h = ud;
    h->nstanzas++;
    fg_buf_reset(&h->stanza);
    fg_xml_serialize(&h->stanza, n, NULL);
    fg_arena_free(a);
    if (h->close_in_stanza)
        fg_c2s_close(h->c, h->close_in_stanza);
}

static void io_features(void *ud, struct fg_buf *b)
{
    (void)ud;
    fg_buf_puts(b, "<ver xmlns='urn:xmpp:features:rosterver'/>");
}

static const struct fg_c2s_io io_tmpl = {
    .send = io_send,
    .start_tls = io_start_tls,
    .close = io_close,
    .get_user = io_get_user,
    .bind = io_bind,
    .stanza = io_stanza,
    .features = io_features,
};

static void h_init(struct h *h, bool require_tls, bool direct_tls)
{
    memset(h, 0, sizeof *h);
    h->cfg.domains = domains;
    h->cfg.require_tls = require_tls;
    h->cfg.auth_attempts = 3;
    h->cfg.max_stanza_size = 65536;
    h->cfg.max_depth = 32;
    h->cfg.idle_timeout_s = 60;
    struct fg_c2s_io io = io_tmpl;
    io.ud = h;
    h->c = fg_c2s_new(&h->cfg, &io, direct_tls, "192.0.2.1:5000");
}

/* A new state machine with the current h->cfg. */
static void h_recreate(struct h *h, bool with_start_tls)
{
    fg_c2s_free(h->c);
    struct fg_c2s_io io = io_tmpl;
    io.ud = h;
    if (!with_start_tls)
        io.start_tls = NULL;
    h->c = fg_c2s_new(&h->cfg, &io, false, "192.0.2.1:5000");
}

static void h_free(struct h *h)
{
    fg_c2s_free(h->c);
    fg_buf_free(&h->out);
    fg_buf_free(&h->stanza);
}

/* What the server sent since the last call. */
static const char *recv_new(struct h *h)
{
    const char *s = fg_buf_str(&h->out) + h->mark;
    h->mark = h->out.len;
    return s;
}

static void feed(struct h *h, const char *s)
{
    size_t n = strlen(s);
    if (h->bytewise) {
        for (size_t i = 0; i < n; i++)
            fg_c2s_feed(h->c, s + i, 1);
    } else if (h->split && h->split < n) {
        fg_c2s_feed(h->c, s, h->split);
        fg_c2s_feed(h->c, s + h->split, n - h->split);
    } else {
        fg_c2s_feed(h->c, s, n);
    }
}

static struct fg_c2s_tls tls13;
static const unsigned char exporter[32] = "0123456789abcdef0123456789ABCDEF";
static const unsigned char unique12[12] = "finished-12b";

static void tls_setup(void)
{
    tls13.version = "TLSv1.3";
    tls13.tls_exporter = exporter;
    tls13.tls_exporter_len = sizeof exporter;
}

/* Header and features; returns the features text. */
static const char *open_stream(struct h *h)
{
    feed(h, HDR);
    const char *r = recv_new(h);
    assert_non_null(strstr(r, "<stream:stream xmlns='jabber:client' "
                              "xmlns:stream='http://etherx.jabber.org/streams'"));
    assert_non_null(strstr(r, " from='" DOMAIN "'"));
    assert_non_null(strstr(r, " version='1.0'"));
    assert_non_null(strstr(r, " id='"));
    const char *f = strstr(r, "<stream:features>");
    assert_non_null(f);
    assert_non_null(strstr(f, "</stream:features>"));
    return f;
}

static void do_starttls(struct h *h, const struct fg_c2s_tls *info)
{
    const char *f = open_stream(h);
    assert_non_null(strstr(f, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'"));
    feed(h, STARTTLS);
    assert_string_equal(recv_new(h), PROCEED);
    assert_int_equal(h->starttls, 1);
    fg_c2s_tls_ready(h->c, info);
}

/* ---- a client-side SCRAM, written from RFC 5802 ---- */

static void b64enc(const void *in, size_t n, char *out)
{
    EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

static size_t b64dec(const char *in, unsigned char *out)
{
    size_t l = strlen(in);
    int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)l);
    assert_true(n >= 0);
    if (l >= 1 && in[l - 1] == '=')
        n--;
    if (l >= 2 && in[l - 2] == '=')
        n--;
    out[n] = '\0';
    return (size_t)n;
}

struct scram {
    const EVP_MD *md;
    char gs2[64];
    char cfb[512];
    char cnonce[40];
    char verifier[128];
};

/* client-first-message for user with the given GS2 header ("n,,", "p=tls-exporter,,") */
static void scram_first(struct scram *s, const EVP_MD *md, const char *gs2, const char *user,
                        char *msg, size_t cap)
{
    memset(s, 0, sizeof *s);
    s->md = md;
    snprintf(s->gs2, sizeof s->gs2, "%s", gs2);
    snprintf(s->cnonce, sizeof s->cnonce, "rOprNGfwEbeRWgbNEkqO%04d", rand() % 10000);
    snprintf(s->cfb, sizeof s->cfb, "n=%s,r=%s", user, s->cnonce);
    snprintf(msg, cap, "%s%s", s->gs2, s->cfb);
}

/* SaltedPassword, cached: the split tests log in hundreds of times. */
static void salted_password(const EVP_MD *md, const char *pass, const unsigned char *salt,
                            size_t sl, int iter, unsigned char *out)
{
    static struct {
        const EVP_MD *md;
        char pass[64];
        unsigned char salt[64];
        size_t sl;
        int iter;
        unsigned char sp[64];
    } cache[8];
    static int ncache;
    for (int i = 0; i < ncache; i++)
        if (cache[i].md == md && strcmp(cache[i].pass, pass) == 0 && cache[i].sl == sl &&
            memcmp(cache[i].salt, salt, sl) == 0 && cache[i].iter == iter) {
            memcpy(out, cache[i].sp, (size_t)EVP_MD_get_size(md));
            return;
        }
    assert_int_equal(PKCS5_PBKDF2_HMAC(pass, (int)strlen(pass), salt, (int)sl, iter, md,
                                       EVP_MD_get_size(md), out),
                     1);
    int i = ncache < 8 ? ncache++ : 0;
    cache[i].md = md;
    snprintf(cache[i].pass, sizeof cache[i].pass, "%s", pass);
    memcpy(cache[i].salt, salt, sl);
    cache[i].sl = sl;
    cache[i].iter = iter;
    memcpy(cache[i].sp, out, (size_t)EVP_MD_get_size(md));
}

/* client-final-message for server-first sf; remembers the expected verifier. */
static void scram_final(struct scram *s, const char *sf, const char *pass, const unsigned char *cb,
                        size_t cbl, char *msg, size_t cap)
{
    char nonce[256], salt_b64[128];
    int iter = 0;
    const char *r = strstr(sf, "r="), *sa = strstr(sf, ",s="), *it = strstr(sf, ",i=");
    assert_true(r == sf && sa && it);
    snprintf(nonce, sizeof nonce, "%.*s", (int)(sa - r - 2), r + 2);
    snprintf(salt_b64, sizeof salt_b64, "%.*s", (int)(it - sa - 3), sa + 3);
    iter = atoi(it + 3);
    assert_true(strncmp(nonce, s->cnonce, strlen(s->cnonce)) == 0);
    assert_true(strlen(nonce) > strlen(s->cnonce));
    unsigned char salt[128], sp[64], ck[64], sk[64], svk[64], cs[64], proof[64], ss[64];
    size_t sl = b64dec(salt_b64, salt);
    unsigned hl = (unsigned)EVP_MD_get_size(s->md), l = 0;
    salted_password(s->md, pass, salt, sl, iter, sp);
    HMAC(s->md, sp, (int)hl, (const unsigned char *)"Client Key", 10, ck, &l);
    EVP_Digest(ck, hl, sk, NULL, s->md, NULL);
    HMAC(s->md, sp, (int)hl, (const unsigned char *)"Server Key", 10, svk, &l);
    unsigned char cbin[256];
    size_t gl = strlen(s->gs2);
    memcpy(cbin, s->gs2, gl);
    if (cb)
        memcpy(cbin + gl, cb, cbl);
    char cbind[512], cfwp[1024], am[2048], pb64[128], vb64[96];
    b64enc(cbin, gl + (cb ? cbl : 0), cbind);
    snprintf(cfwp, sizeof cfwp, "c=%s,r=%s", cbind, nonce);
    snprintf(am, sizeof am, "%s,%s,%s", s->cfb, sf, cfwp);
    HMAC(s->md, sk, (int)hl, (const unsigned char *)am, strlen(am), cs, &l);
    for (unsigned i = 0; i < hl; i++)
        proof[i] = ck[i] ^ cs[i];
    b64enc(proof, hl, pb64);
    snprintf(msg, cap, "%s,p=%s", cfwp, pb64);
    HMAC(s->md, svk, (int)hl, (const unsigned char *)am, strlen(am), ss, &l);
    b64enc(ss, hl, vb64);
    snprintf(s->verifier, sizeof s->verifier, "v=%s", vb64);
}

/* The base64 payload of <el xmlns=sasl>...</el> in r, decoded into out; false if absent. */
static bool sasl_el(const char *r, const char *el, char *out, size_t cap)
{
    char open[128], close[32];
    snprintf(open, sizeof open, "<%s xmlns='" NS_SASL "'>", el);
    snprintf(close, sizeof close, "</%s>", el);
    const char *a = strstr(r, open);
    if (!a)
        return false;
    a += strlen(open);
    const char *b = strstr(a, close);
    assert_non_null(b);
    char tmp[2048];
    assert_true((size_t)(b - a) < sizeof tmp && (size_t)(b - a) * 3 / 4 < cap);
    snprintf(tmp, sizeof tmp, "%.*s", (int)(b - a), a);
    b64dec(tmp, (unsigned char *)out);
    return true;
}

static void send_sasl(struct h *h, const char *el, const char *mech, const char *msg, size_t len)
{
    char b64[2048], xml[2300];
    b64enc(msg, len, b64);
    if (mech)
        snprintf(xml, sizeof xml, "<%s xmlns='" NS_SASL "' mechanism='%s'>%s</%s>", el, mech,
                 len ? b64 : "=", el);
    else
        snprintf(xml, sizeof xml, "<%s xmlns='" NS_SASL "'>%s</%s>", el, b64, el);
    feed(h, xml);
}

/* A SCRAM exchange; returns the server's last answer (success or failure text). */
static const char *scram_login(struct h *h, const char *mech, const char *gs2, const char *user,
                               const char *pass, const unsigned char *cb, size_t cbl)
{
    const EVP_MD *md = strstr(mech, "SHA-256") ? EVP_sha256() : EVP_sha1();
    struct scram s;
    char m1[600], sf[600], m2[1200], v[200];
    scram_first(&s, md, gs2, user, m1, sizeof m1);
    send_sasl(h, "auth", mech, m1, strlen(m1));
    const char *r = recv_new(h);
    if (!sasl_el(r, "challenge", sf, sizeof sf))
        return r;
    scram_final(&s, sf, pass, cb, cbl, m2, sizeof m2);
    send_sasl(h, "response", NULL, m2, strlen(m2));
    r = recv_new(h);
    if (sasl_el(r, "success", v, sizeof v))
        assert_string_equal(v, s.verifier); /* the server proved it knows ServerKey */
    return r;
}

static bool is_success(const char *r)
{
    return strncmp(r, "<success xmlns='" NS_SASL "'", 16 + strlen(NS_SASL)) == 0;
}

/* After SASL success: restart, bind, session. */
static void restart_and_bind(struct h *h, const char *resource, const char *full)
{
    feed(h, HDR);
    const char *r = recv_new(h);
    assert_non_null(strstr(r, "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>"
                              "<session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/>"
                              "</session><ver xmlns='urn:xmpp:features:rosterver'/>"
                              "</stream:features>"));
    char iq[1300], want[1300];
    if (resource)
        snprintf(iq, sizeof iq,
                 "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
                 "<resource>%s</resource></bind></iq>",
                 resource);
    else
        snprintf(iq, sizeof iq,
                 "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>");
    feed(h, iq);
    snprintf(want, sizeof want,
             "<iq type='result' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
             "<jid>%s</jid></bind></iq>",
             full);
    assert_string_equal(recv_new(h), want);
    assert_string_equal(fg_c2s_jid(h->c), full);
    feed(h, "<iq type='set' id='s1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>");
    assert_string_equal(recv_new(h), "<iq type='result' id='s1'/>");
}

/* ---- tests ---- */

static void full_tls_login(struct h *h, const char *mech, const char *gs2, const unsigned char *cb,
                           size_t cbl)
{
    do_starttls(h, &tls13);
    const char *f = open_stream(h);
    assert_null(strstr(f, "starttls")); /* never again after TLS (RFC 6120 5.4.3.3) */
    assert_non_null(strstr(f, "<mechanisms xmlns='" NS_SASL "'>"
                              "<mechanism>SCRAM-SHA-256-PLUS</mechanism>"
                              "<mechanism>SCRAM-SHA-1-PLUS</mechanism>"
                              "<mechanism>SCRAM-SHA-256</mechanism>"
                              "<mechanism>SCRAM-SHA-1</mechanism>"
                              "<mechanism>PLAIN</mechanism></mechanisms>"));
    assert_non_null(strstr(f, "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>"
                              "<channel-binding type='tls-exporter'/></sasl-channel-binding>"));
    const char *r = scram_login(h, mech, gs2, "alice", "pencil", cb, cbl);
    assert_true(is_success(r));
    assert_true(fg_c2s_authenticated(h->c));
    restart_and_bind(h, "phone", "alice@" DOMAIN "/phone");
    /* from is stamped, whatever the client wrote */
    feed(h, "<message to='bob@example.test' from='mallory@evil.test/x' type='chat'>"
            "<body>hi</body></message>");
    assert_int_equal(h->nstanzas, 1);
    assert_non_null(strstr(fg_buf_str(&h->stanza), "from='alice@example.test/phone'"));
    assert_null(strstr(fg_buf_str(&h->stanza), "mallory"));
    feed(h, "<presence/>");
    assert_int_equal(h->nstanzas, 2);
    assert_non_null(strstr(fg_buf_str(&h->stanza), "from='alice@example.test/phone'"));
    feed(h, "</stream:stream>");
    assert_string_equal(recv_new(h), "</stream:stream>");
    assert_int_equal(h->closed, 1);
}

static void test_scram_sha256_tls(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, true, false);
    full_tls_login(&h, "SCRAM-SHA-256", "n,,", NULL, 0);
    h_free(&h);
}

static void test_scram_sha1_tls(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, true, false);
    full_tls_login(&h, "SCRAM-SHA-1", "n,,", NULL, 0);
    h_free(&h);
}

static void test_scram_sha256_plus(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, true, false);
    full_tls_login(&h, "SCRAM-SHA-256-PLUS", "p=tls-exporter,,", exporter, sizeof exporter);
    h_free(&h);
    h_init(&h, true, false);
    full_tls_login(&h, "SCRAM-SHA-1-PLUS", "p=tls-exporter,,", exporter, sizeof exporter);
    h_free(&h);
}

/* TLS 1.2: tls-unique only. */
static void test_scram_plus_tls_unique(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, true, false);
    struct fg_c2s_tls t12 = {
        .version = "TLSv1.2", .tls_unique = unique12, .tls_unique_len = sizeof unique12};
    do_starttls(&h, &t12);
    const char *f = open_stream(&h);
    assert_non_null(strstr(f, "<channel-binding type='tls-unique'/>"));
    assert_null(strstr(f, "tls-exporter"));
    /* tls-exporter is not available on this stream; such a failure says nothing about the
     * password and does not count towards auth_attempts (3 here) */
    const char *r;
    for (int i = 0; i < 3; i++) {
        r = scram_login(&h, "SCRAM-SHA-256-PLUS", "p=tls-exporter,,", "alice", "pencil",
                        exporter, sizeof exporter);
        assert_non_null(strstr(r, "<failure xmlns='" NS_SASL "'><not-authorized/>"));
    }
    /* 'y' while tls-unique is on offer: someone removed -PLUS on the way */
    r = scram_login(&h, "SCRAM-SHA-256", "y,,", "alice", "pencil", NULL, 0);
    assert_non_null(strstr(r, "<not-authorized/><text xml:lang='en'>channel binding downgrade"));
    r = scram_login(&h, "SCRAM-SHA-256-PLUS", "p=tls-unique,,", "alice", "pencil", unique12,
                    sizeof unique12);
    assert_true(is_success(r));
    h_free(&h);
}

static void test_scram_plus_mismatch(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, true, false);
    do_starttls(&h, &tls13);
    open_stream(&h);
    /* a man in the middle would see another exporter value */
    static const unsigned char other[32] = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";
    const char *r = scram_login(&h, "SCRAM-SHA-256-PLUS", "p=tls-exporter,,", "alice", "pencil",
                                other, sizeof other);
    assert_string_equal(r, "<failure xmlns='" NS_SASL "'><not-authorized/>"
                           "<text xml:lang='en'>channel binding mismatch</text></failure>");
    assert_false(fg_c2s_authenticated(h.c));
    /* 'y' under TLS 1.3, where only tls-exporter is offered: a client that knows only
     * tls-unique (slixmpp, many others) says 'y' in good faith, and is let in */
    r = scram_login(&h, "SCRAM-SHA-256", "y,,", "alice", "pencil", NULL, 0);
    assert_true(is_success(r));
    h_free(&h);
}

static void test_scram_no_initial_response(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, true, false);
    do_starttls(&h, &tls13);
    open_stream(&h);
    feed(&h, "<auth xmlns='" NS_SASL "' mechanism='SCRAM-SHA-256'/>");
    assert_string_equal(recv_new(&h), "<challenge xmlns='" NS_SASL "'/>");
    struct scram s;
    char m1[600], sf[600], m2[1200], v[200];
    scram_first(&s, EVP_sha256(), "n,,", "Alice", m1, sizeof m1); /* case-folded */
    send_sasl(&h, "response", NULL, m1, strlen(m1));
    assert_true(sasl_el(recv_new(&h), "challenge", sf, sizeof sf));
    scram_final(&s, sf, "pencil", NULL, 0, m2, sizeof m2);
    send_sasl(&h, "response", NULL, m2, strlen(m2));
    assert_true(sasl_el(recv_new(&h), "success", v, sizeof v));
    assert_string_equal(v, s.verifier);
    restart_and_bind(&h, "x", "alice@" DOMAIN "/x");
    h_free(&h);
}

static void plain_auth(struct h *h, const char *authzid, const char *user, const char *pass)
{
    char msg[512];
    size_t n = 0;
    n += (size_t)snprintf(msg + n, sizeof msg - n, "%s", authzid);
    msg[n++] = '\0';
    n += (size_t)snprintf(msg + n, sizeof msg - n, "%s", user);
    msg[n++] = '\0';
    n += (size_t)snprintf(msg + n, sizeof msg - n, "%s", pass);
    send_sasl(h, "auth", "PLAIN", msg, n);
}

static void test_plain_tls(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, true, false);
    do_starttls(&h, &tls13);
    open_stream(&h);
    plain_auth(&h, "", "alice", "pencil");
    assert_string_equal(recv_new(&h), "<success xmlns='" NS_SASL "'/>");
    restart_and_bind(&h, NULL, "alice@" DOMAIN "/gen-7f3a");
    assert_true(h.bind_res_null); /* no resource: the IM layer generates one */
    h_free(&h);

    /* authzid equal to the user, user given as a bare JID */
    h_init(&h, true, false);
    do_starttls(&h, &tls13);
    open_stream(&h);
    plain_auth(&h, "alice@example.test", "ALICE@example.test", "pencil");
    assert_string_equal(recv_new(&h), "<success xmlns='" NS_SASL "'/>");
    h_free(&h);

    /* another authzid */
    h_init(&h, true, false);
    do_starttls(&h, &tls13);
    open_stream(&h);
    plain_auth(&h, "bob@example.test", "alice", "pencil");
    assert_non_null(strstr(recv_new(&h), "<failure xmlns='" NS_SASL "'><invalid-authzid/>"));
    h_free(&h);

    /* SASLprep of the password (RFC 4013) */
    h_init(&h, true, false);
    do_starttls(&h, &tls13);
    open_stream(&h);
    plain_auth(&h, "", "carol", "I\xC2\xADX");
    assert_string_equal(recv_new(&h), "<success xmlns='" NS_SASL "'/>");
    h_free(&h);
}

static void test_plain_refused_without_tls(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, false, false);
    const char *f = open_stream(&h);
    assert_non_null(strstr(f, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"));
    assert_null(strstr(f, "<required/>"));
    assert_null(strstr(f, "PLAIN"));
    assert_null(strstr(f, "PLUS"));
    plain_auth(&h, "", "alice", "pencil");
    assert_string_equal(recv_new(&h), "<failure xmlns='" NS_SASL "'><encryption-required/>"
                                      "<text xml:lang='en'>PLAIN needs TLS</text></failure>");
    assert_false(fg_c2s_authenticated(h.c));
    assert_int_equal(h.closed, 0);
    h_free(&h);
}

/* require_tls = false: SCRAM over the clear stream. */
static void test_no_tls_required(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, false, false);
    const char *f = open_stream(&h);
    assert_non_null(strstr(f, "<mechanism>SCRAM-SHA-256</mechanism>"
                              "<mechanism>SCRAM-SHA-1</mechanism></mechanisms>"));
    const char *r = scram_login(&h, "SCRAM-SHA-256", "n,,", "alice", "pencil", NULL, 0);
    assert_true(is_success(r));
    restart_and_bind(&h, "desk", "alice@" DOMAIN "/desk");
    h_free(&h);

    /* without a start_tls callback STARTTLS is not offered, and refused when asked */
    h_init(&h, false, false);
    h_recreate(&h, false);
    f = open_stream(&h);
    assert_null(strstr(f, "starttls"));
    feed(&h, STARTTLS);
    assert_string_equal(recv_new(&h),
                        "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>");
    assert_int_equal(h.closed, 1);
    h_free(&h);
}

static void test_wrong_password_unknown_user(void **state)
{
    (void)state;
    FILE *logf = tmpfile();
    assert_non_null(logf);
    fg_log_set_file(logf);
    struct h h;
    h_init(&h, true, false);
    do_starttls(&h, &tls13);
    open_stream(&h);
    char wrong[512], unknown[512];
    const char *r = scram_login(&h, "SCRAM-SHA-256", "n,,", "alice", "pencil-wrong", NULL, 0);
    snprintf(wrong, sizeof wrong, "%s", r);
    /* an unknown user sees a plausible salt and the same failure */
    struct scram s;
    char m1[600], sf1[600], sf2[600];
    scram_first(&s, EVP_sha256(), "n,,", "nobody", m1, sizeof m1);
    send_sasl(&h, "auth", "SCRAM-SHA-256", m1, strlen(m1));
    assert_true(sasl_el(recv_new(&h), "challenge", sf1, sizeof sf1));
    assert_non_null(strstr(sf1, ",i=4096"));
    assert_int_equal(strstr(sf1, ",i=") - strstr(sf1, ",s="), 3 + 24);
    feed(&h, "<abort xmlns='" NS_SASL "'/>");
    assert_string_equal(recv_new(&h), "<failure xmlns='" NS_SASL "'><aborted/></failure>");
    h_free(&h);

    h_init(&h, true, false);
    do_starttls(&h, &tls13);
    open_stream(&h);
    /* the same fake salt the second time: nothing to compare */
    scram_first(&s, EVP_sha256(), "n,,", "nobody", m1, sizeof m1);
    send_sasl(&h, "auth", "SCRAM-SHA-256", m1, strlen(m1));
    assert_true(sasl_el(recv_new(&h), "challenge", sf2, sizeof sf2));
    assert_string_equal(strstr(sf1, ",s="), strstr(sf2, ",s="));
    feed(&h, "<abort xmlns='" NS_SASL "'/>");
    recv_new(&h);
    r = scram_login(&h, "SCRAM-SHA-256", "n,,", "nobody", "pencil", NULL, 0);
    snprintf(unknown, sizeof unknown, "%s", r);
    assert_string_equal(wrong, unknown);
    assert_string_equal(wrong, "<failure xmlns='" NS_SASL "'><not-authorized/>"
                               "<text xml:lang='en'>wrong user name or password</text></failure>");
    /* PLAIN: same answer too */
    plain_auth(&h, "", "nobody", "pencil");
    assert_string_equal(
        recv_new(&h),
        "<failure xmlns='" NS_SASL "'><not-authorized/>"
        "<text xml:lang='en'>wrong user name or password</text>"
        "</failure>" STREAM_ERR(
            "policy-violation") "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' "
                                "xml:lang='en'>too many failed authentication attempts"
                                "</text></stream:error></stream:stream>");
    h_free(&h);

    fflush(logf);
    rewind(logf);
    char log[8192];
    size_t n = fread(log, 1, sizeof log - 1, logf);
    log[n] = '\0';
    fg_log_set_file(NULL);
    fclose(logf);
    assert_non_null(strstr(log, "warn event=c2s-auth-failed user=alice@example.test "
                                "address=192.0.2.1:5000 mechanism=SCRAM-SHA-256 "
                                "reason=\"wrong password\""));
    assert_non_null(strstr(log, "event=c2s-auth-failed user=nobody@example.test "
                                "address=192.0.2.1:5000 mechanism=SCRAM-SHA-256 "
                                "reason=\"unknown user\""));
    assert_non_null(strstr(log, "event=c2s-auth-failed user=nobody@example.test "
                                "address=192.0.2.1:5000 mechanism=PLAIN reason=\"unknown user\""));
    assert_non_null(strstr(log, "event=c2s-stream-error condition=policy-violation "
                                "address=192.0.2.1:5000"));
    assert_null(strstr(log, "pencil"));
}

static void test_attempts_limit(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, true, false);
    do_starttls(&h, &tls13);
    open_stream(&h);
    for (int i = 1; i <= 3; i++) {
        const char *r = scram_login(&h, "SCRAM-SHA-1", "n,,", "alice", "nope", NULL, 0);
        assert_non_null(strstr(r, "<not-authorized/>"));
        if (i < 3) {
            assert_null(strstr(r, "stream:error"));
            assert_int_equal(h.closed, 0);
        } else {
            assert_non_null(strstr(r, STREAM_ERR("policy-violation")));
            assert_int_equal(h.closed, 1);
        }
    }
    /* nothing more is read */
    feed(&h, "<presence/>");
    assert_string_equal(recv_new(&h), "");
    h_free(&h);

    /* other failures count too, and the right password still works before the limit */
    h_init(&h, true, false);
    do_starttls(&h, &tls13);
    open_stream(&h);
    feed(&h, "<auth xmlns='" NS_SASL "' mechanism='DIGEST-MD5'/>");
    assert_string_equal(recv_new(&h),
                        "<failure xmlns='" NS_SASL "'><invalid-mechanism/></failure>");
    feed(&h, "<auth xmlns='" NS_SASL "' mechanism='SCRAM-SHA-256'>!!!!</auth>");
    assert_string_equal(recv_new(&h),
                        "<failure xmlns='" NS_SASL "'><incorrect-encoding/></failure>");
    assert_true(is_success(scram_login(&h, "SCRAM-SHA-256", "n,,", "alice", "pencil", NULL, 0)));
    h_free(&h);
}

static void test_sasl_protocol_errors(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, true, false);
    h.cfg.auth_attempts = 5;
    h_recreate(&h, true);
    do_starttls(&h, &tls13);
    open_stream(&h);
    feed(&h, "<response xmlns='" NS_SASL "'>bj1h</response>");
    assert_non_null(strstr(recv_new(&h), "<malformed-request/>"));
    send_sasl(&h, "auth", "SCRAM-SHA-256", "x,,n=alice,r=abc", 16);
    assert_non_null(strstr(recv_new(&h), "<malformed-request/>"));
    send_sasl(&h, "auth", "SCRAM-SHA-256", "n,,m=ext,n=alice,r=abc", 22);
    assert_non_null(strstr(recv_new(&h), "<malformed-request/>"));
    send_sasl(&h, "auth", "SCRAM-SHA-256", "n,,n=al=ice,r=abc", 17);
    assert_non_null(strstr(recv_new(&h), "<malformed-request/>"));
    /* 'p' with a non-PLUS mechanism */
    send_sasl(&h, "auth", "SCRAM-SHA-256", "p=tls-exporter,,n=alice,r=abc", 29);
    assert_non_null(strstr(recv_new(&h), "<not-authorized/>"));
    assert_int_equal(h.closed, 1); /* the fifth failure */
    h_free(&h);

    h_init(&h, true, false);
    do_starttls(&h, &tls13);
    open_stream(&h);
    /* PLAIN, not enough fields */
    send_sasl(&h, "auth", "PLAIN", "alice", 5);
    assert_non_null(strstr(recv_new(&h), "<malformed-request/>"));
    /* a second auth while one runs */
    struct scram s;
    char m1[600];
    scram_first(&s, EVP_sha256(), "n,,", "alice", m1, sizeof m1);
    send_sasl(&h, "auth", "SCRAM-SHA-256", m1, strlen(m1));
    assert_non_null(strstr(recv_new(&h), "<challenge"));
    send_sasl(&h, "auth", "SCRAM-SHA-256", m1, strlen(m1));
    assert_non_null(strstr(recv_new(&h), "<malformed-request/>"));
    assert_int_equal(h.closed, 0);
    h_free(&h);
}

static void test_host_unknown(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, true, false);
    feed(&h, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
             "xmlns:stream='http://etherx.jabber.org/streams' to='elsewhere.test' "
             "version='1.0'>");
    const char *r = recv_new(&h);
    assert_non_null(strstr(r, "<stream:stream "));
    assert_null(strstr(r, "from="));
    assert_non_null(strstr(r, STREAM_ERR("host-unknown")));
    assert_non_null(strstr(r, "</stream:error></stream:stream>"));
    assert_null(strstr(r, "features"));
    assert_int_equal(h.closed, 1);
    h_free(&h);

    /* no 'to' */
    h_init(&h, true, false);
    feed(&h, "<stream:stream xmlns='jabber:client' "
             "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>");
    assert_non_null(strstr(recv_new(&h), STREAM_ERR("host-unknown")));
    h_free(&h);

    /* a hosted domain written in upper case is normalised */
    h_init(&h, true, false);
    feed(&h, "<stream:stream xmlns='jabber:client' "
             "xmlns:stream='http://etherx.jabber.org/streams' to='Example.TEST.' version='1.0'>");
    r = recv_new(&h);
    assert_non_null(strstr(r, "from='example.test'"));
    assert_non_null(strstr(r, "<starttls"));
    h_free(&h);
}

static void test_bad_namespace_version(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, true, false);
    feed(&h, "<stream:stream xmlns='jabber:server' "
             "xmlns:stream='http://etherx.jabber.org/streams' to='example.test' version='1.0'>");
    const char *r = recv_new(&h);
    assert_non_null(strstr(r, STREAM_ERR("invalid-namespace")));
    assert_non_null(strstr(r, "from='example.test'"));
    assert_int_equal(h.closed, 1);
    h_free(&h);

    h_init(&h, true, false);
    feed(&h, "<stream:stream xmlns='jabber:client' "
             "xmlns:stream='http://etherx.jabber.org/streams' to='example.test'>");
    assert_non_null(strstr(recv_new(&h), STREAM_ERR("unsupported-version")));
    h_free(&h);

    h_init(&h, true, false);
    feed(&h, "<stream:stream xmlns='jabber:client' "
             "xmlns:stream='http://etherx.jabber.org/streams' to='example.test' version='0.9'>");
    assert_non_null(strstr(recv_new(&h), STREAM_ERR("unsupported-version")));
    h_free(&h);

    /* a higher minor version is fine: we answer 1.0 */
    h_init(&h, true, false);
    feed(&h, "<stream:stream xmlns='jabber:client' "
             "xmlns:stream='http://etherx.jabber.org/streams' to='example.test' version='1.1'>");
    assert_non_null(strstr(recv_new(&h), "version='1.0'"));
    assert_int_equal(h.closed, 0);
    h_free(&h);

    /* the stream element itself in the wrong namespace: the parser's condition */
    h_init(&h, true, false);
    feed(&h, "<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong' "
             "to='example.test' version='1.0'>");
    assert_non_null(strstr(recv_new(&h), STREAM_ERR("invalid-namespace")));
    h_free(&h);
}

static void test_starttls_required(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, true, false);
    const char *f = open_stream(&h);
    assert_string_equal(f, "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"
                           "<required/></starttls></stream:features>");
    feed(&h, "<auth xmlns='" NS_SASL "' mechanism='SCRAM-SHA-256'>biwsbj1hbGljZSxyPWFiYw==</auth>");
    assert_string_equal(recv_new(&h), "<failure xmlns='" NS_SASL "'><encryption-required/>"
                                      "<text xml:lang='en'>use STARTTLS first</text></failure>");
    feed(&h, "<message to='bob@example.test'><body>x</body></message>");
    const char *r = recv_new(&h);
    assert_non_null(strstr(r, STREAM_ERR("not-authorized")));
    assert_int_equal(h.closed, 1);
    assert_int_equal(h.nstanzas, 0);
    h_free(&h);

    h_init(&h, true, false);
    open_stream(&h);
    feed(&h, "<compress xmlns='http://jabber.org/protocol/compress'/>");
    assert_non_null(strstr(recv_new(&h), STREAM_ERR("unsupported-stanza-type")));
    h_free(&h);

    /* bytes after <starttls/> in the same read are dropped (command injection) */
    h_init(&h, true, false);
    open_stream(&h);
    feed(&h, STARTTLS "<message to='bob@example.test'/>");
    assert_string_equal(recv_new(&h), PROCEED);
    assert_int_equal(h.starttls, 1);
    feed(&h, "junk"); /* before tls_ready: ignored */
    fg_c2s_tls_ready(h.c, &tls13);
    f = open_stream(&h);
    assert_non_null(strstr(f, "SCRAM-SHA-256-PLUS"));
    assert_int_equal(h.closed, 0);
    h_free(&h);
}

static void test_direct_tls(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, true, true);
    fg_c2s_tls_ready(h.c, &tls13);
    const char *f = open_stream(&h);
    assert_null(strstr(f, "starttls"));
    assert_non_null(strstr(f, "<mechanism>PLAIN</mechanism>"));
    assert_true(is_success(scram_login(&h, "SCRAM-SHA-256-PLUS", "p=tls-exporter,,", "alice",
                                       "pencil", exporter, sizeof exporter)));
    h_free(&h);
}

static void test_bind(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, false, false);
    open_stream(&h);
    assert_true(is_success(scram_login(&h, "SCRAM-SHA-256", "n,,", "alice", "pencil", NULL, 0)));
    feed(&h, HDR);
    recv_new(&h);
    /* a stanza before bind */
    h.bind_rc = 0;
    feed(&h, "<message to='bob@example.test'><body>x</body></message>");
    assert_non_null(strstr(recv_new(&h), STREAM_ERR("not-authorized")));
    assert_int_equal(h.nstanzas, 0);
    assert_int_equal(h.closed, 1);
    h_free(&h);

    /* bind failures */
    static const struct {
        int rc;
        const char *err;
    } cases[] = {
        {FG_EEXISTS, "<error type='cancel'><conflict "},
        {FG_EINVAL, "<error type='modify'><bad-request "},
        {FG_ELIMIT, "<error type='wait'><resource-constraint "},
        {FG_EREFUSED, "<error type='cancel'><not-allowed "},
        {FG_EIO, "<error type='wait'><internal-server-error "},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        h_init(&h, false, false);
        open_stream(&h);
        assert_true(
            is_success(scram_login(&h, "SCRAM-SHA-256", "n,,", "alice", "pencil", NULL, 0)));
        feed(&h, HDR);
        recv_new(&h);
        h.bind_rc = cases[i].rc;
        feed(&h, BIND_IQ("b&amp;1", "phone"));
        const char *r = recv_new(&h);
        assert_non_null(strstr(r, "<iq type='error' id='b&amp;1'>"));
        assert_non_null(strstr(r, cases[i].err));
        assert_string_equal(h.bind_res, "phone");
        assert_null(fg_c2s_jid(h.c));
        /* then a successful bind */
        h.bind_rc = 0;
        feed(&h, BIND_IQ("b2", "tablet"));
        assert_non_null(strstr(recv_new(&h), "<jid>alice@example.test/tablet</jid>"));
        /* a second bind is refused; the session continues */
        feed(&h, BIND_IQ("b3", "more"));
        assert_string_equal(recv_new(&h),
                            "<iq type='error' id='b3'><error type='cancel'><not-allowed "
                            "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>");
        assert_int_equal(h.binds, 2);
        h_free(&h);
    }

    /* an oversized resource */
    h_init(&h, false, false);
    open_stream(&h);
    assert_true(is_success(scram_login(&h, "SCRAM-SHA-256", "n,,", "alice", "pencil", NULL, 0)));
    feed(&h, HDR);
    recv_new(&h);
    char big[1200 + 200];
    char res[1100];
    memset(res, 'r', 1024);
    res[1024] = '\0';
    snprintf(big, sizeof big,
             "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>"
             "<resource>%s</resource></bind></iq>",
             res);
    feed(&h, big);
    assert_non_null(strstr(recv_new(&h), "<bad-request "));
    assert_int_equal(h.binds, 0);
    h_free(&h);
}

static void test_stream_close(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, false, false);
    open_stream(&h);
    fg_c2s_close(h.c, NULL);
    assert_string_equal(recv_new(&h), "</stream:stream>");
    assert_int_equal(h.closed, 1);
    fg_c2s_close(h.c, "conflict"); /* once only */
    fg_c2s_feed(h.c, "<presence/>", 11);
    assert_string_equal(recv_new(&h), "");
    assert_int_equal(h.closed, 1);
    h_free(&h);

    /* close before any header: ours comes first */
    h_init(&h, false, false);
    fg_c2s_close(h.c, "system-shutdown");
    const char *r = recv_new(&h);
    assert_true(strncmp(r, "<?xml version='1.0'?><stream:stream ", 36) == 0);
    assert_non_null(strstr(r, STREAM_ERR("system-shutdown") "</stream:error></stream:stream>"));
    h_free(&h);

    /* closed from inside the stanza callback (e.g. <conflict/>), then more input */
    h_init(&h, false, false);
    open_stream(&h);
    assert_true(is_success(scram_login(&h, "SCRAM-SHA-256", "n,,", "alice", "pencil", NULL, 0)));
    restart_and_bind(&h, "phone", "alice@" DOMAIN "/phone");
    h.close_in_stanza = "conflict";
    feed(&h, "<presence/><presence/><message/>");
    assert_int_equal(h.nstanzas, 1);
    assert_string_equal(recv_new(&h), STREAM_ERR("conflict") "</stream:error></stream:stream>");
    assert_int_equal(h.closed, 1);
    h_free(&h);

    /* closed from inside send: the bytes in flight stay intact, the error follows */
    h_init(&h, false, false);
    open_stream(&h);
    assert_true(is_success(scram_login(&h, "SCRAM-SHA-256", "n,,", "alice", "pencil", NULL, 0)));
    restart_and_bind(&h, "phone", "alice@" DOMAIN "/phone");
    h.close_in_send = "policy-violation";
    feed(&h, "<iq type='set' id='s2'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>"
             "<presence/>");
    assert_string_equal(recv_new(&h), "<iq type='result' id='s2'/>" STREAM_ERR(
                                          "policy-violation") "</stream:error></stream:stream>");
    assert_int_equal(h.closed, 1);
    assert_int_equal(h.nstanzas, 0);
    h_free(&h);

    /* the client's stream error */
    h_init(&h, false, false);
    open_stream(&h);
    feed(&h, "<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
             "</stream:error>");
    assert_string_equal(recv_new(&h), "</stream:stream>");
    assert_int_equal(h.closed, 1);
    h_free(&h);
}

static void test_idle(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, false, false);
    open_stream(&h);
    assert_true(is_success(scram_login(&h, "SCRAM-SHA-256", "n,,", "alice", "pencil", NULL, 0)));
    restart_and_bind(&h, "phone", "alice@" DOMAIN "/phone");
    uint64_t t = 1000000;
    fg_c2s_tick(h.c, t);
    fg_c2s_tick(h.c, t + 59000);
    assert_string_equal(recv_new(&h), "");
    fg_c2s_tick(h.c, t + 60000);
    assert_string_equal(recv_new(&h), "<iq type='get' id='c2s-ping-1' from='example.test' "
                                      "to='alice@example.test/phone'><ping "
                                      "xmlns='urn:xmpp:ping'/></iq>");
    fg_c2s_tick(h.c, t + 70000); /* one ping only */
    assert_string_equal(recv_new(&h), "");
    feed(&h, "<iq type='result' id='c2s-ping-1' to='example.test'/>");
    assert_int_equal(h.nstanzas, 0); /* consumed here */
    fg_c2s_tick(h.c, t + 75000);
    fg_c2s_tick(h.c, t + 134000);
    assert_string_equal(recv_new(&h), "");
    fg_c2s_tick(h.c, t + 135000);
    assert_non_null(strstr(recv_new(&h), "id='c2s-ping-2'"));
    /* a client ping to the server is the IM layer's */
    feed(&h, "<iq type='get' id='p1' to='example.test'><ping xmlns='urn:xmpp:ping'/></iq>");
    assert_int_equal(h.nstanzas, 1);
    fg_c2s_tick(h.c, t + 136000);
    fg_c2s_tick(h.c, t + 196000);
    assert_non_null(strstr(recv_new(&h), "id='c2s-ping-3'"));
    fg_c2s_tick(h.c, t + 225000);
    assert_int_equal(h.closed, 0);
    fg_c2s_tick(h.c, t + 226000); /* 30 s grace */
    assert_string_equal(
        recv_new(&h),
        STREAM_ERR(
            "connection-timeout") "<text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>"
                                  "no answer to ping</text></stream:error></stream:stream>");
    assert_int_equal(h.closed, 1);
    h_free(&h);

    /* not bound yet: no ping, just the timeout (half a stream header, then silence) */
    h_init(&h, false, false);
    feed(&h, "<stream:stream xmlns='jabber:client' xmlns:str");
    fg_c2s_tick(h.c, 5000);
    fg_c2s_tick(h.c, 64000);
    assert_int_equal(h.closed, 0);
    fg_c2s_tick(h.c, 65000);
    const char *r = recv_new(&h);
    assert_non_null(strstr(r, "<stream:stream "));
    assert_non_null(strstr(r, STREAM_ERR("connection-timeout")));
    assert_int_equal(h.closed, 1);
    h_free(&h);
}

static void test_malformed(void **state)
{
    (void)state;
    struct h h;
    h_init(&h, false, false);
    open_stream(&h);
    feed(&h, "<message><body>x</message>");
    assert_non_null(strstr(recv_new(&h), STREAM_ERR("not-well-formed")));
    assert_int_equal(h.closed, 1);
    h_free(&h);

    /* before any header: ours first, then the error */
    h_init(&h, false, false);
    feed(&h, "<<<");
    const char *r = recv_new(&h);
    assert_true(strncmp(r, "<?xml version='1.0'?><stream:stream ", 36) == 0);
    assert_non_null(strstr(r, STREAM_ERR("not-well-formed")));
    h_free(&h);

    /* limits are the parser's: an oversized stanza */
    h_init(&h, false, false);
    h.cfg.max_stanza_size = 1024;
    h_recreate(&h, true);
    open_stream(&h);
    char big[3000];
    memset(big, 'a', sizeof big);
    memcpy(big, "<message><body>", 15);
    big[sizeof big - 1] = '\0';
    feed(&h, big);
    assert_non_null(strstr(recv_new(&h), STREAM_ERR("policy-violation")));
    h_free(&h);

    /* a DTD */
    h_init(&h, false, false);
    feed(&h, "<?xml version='1.0'?><!DOCTYPE foo [<!ENTITY x 'y'>]>");
    assert_non_null(strstr(recv_new(&h), STREAM_ERR("restricted-xml")));
    h_free(&h);
}

/* The whole login with every client message split at byte k, for every k; and once
 * one byte at a time. */
static void login_split(struct h *h)
{
    do_starttls(h, &tls13);
    open_stream(h);
    assert_true(is_success(scram_login(h, "SCRAM-SHA-256-PLUS", "p=tls-exporter,,", "alice",
                                       "pencil", exporter, sizeof exporter)));
    restart_and_bind(h, "phone", "alice@" DOMAIN "/phone");
    feed(h, "<message to='bob@example.test' from='x@y'><body>a&amp;b</body></message>");
    assert_int_equal(h->nstanzas, 1);
    assert_non_null(strstr(fg_buf_str(&h->stanza), "from='alice@example.test/phone'"));
    assert_non_null(strstr(fg_buf_str(&h->stanza), "<body>a&amp;b</body>"));
    feed(h, "</stream:stream>");
    assert_string_equal(recv_new(h), "</stream:stream>");
    assert_int_equal(h->closed, 1);
}

static void test_split_every_byte(void **state)
{
    (void)state;
    for (size_t k = 1; k < 400; k++) {
        struct h h;
        h_init(&h, true, false);
        h.split = k;
        login_split(&h);
        h_free(&h);
    }
    struct h h;
    h_init(&h, true, false);
    h.bytewise = true;
    login_split(&h);
    h_free(&h);
}

/* Interoperability: GNU SASL's client against our server. */
static int gsasl_cb(Gsasl *ctx, Gsasl_session *s, Gsasl_property prop)
{
    (void)ctx;
    (void)s;
    (void)prop;
    return GSASL_NO_CALLBACK;
}

static void gsasl_login(const char *mech, bool plus)
{
    Gsasl *ctx = NULL;
    Gsasl_session *sess = NULL;
    assert_int_equal(gsasl_init(&ctx), GSASL_OK);
    gsasl_callback_set(ctx, gsasl_cb);
    assert_int_equal(gsasl_client_start(ctx, mech, &sess), GSASL_OK);
    gsasl_property_set(sess, GSASL_AUTHID, "alice");
    gsasl_property_set(sess, GSASL_PASSWORD, "pencil");
    if (plus) {
        char cb[64];
        b64enc(exporter, sizeof exporter, cb);
        gsasl_property_set(sess, GSASL_CB_TLS_EXPORTER, cb);
    }
    struct h h;
    h_init(&h, true, false);
    do_starttls(&h, &tls13);
    open_stream(&h);
    char *out = NULL;
    assert_int_equal(gsasl_step64(sess, "", &out), GSASL_NEEDS_MORE);
    char xml[4096];
    snprintf(xml, sizeof xml, "<auth xmlns='" NS_SASL "' mechanism='%s'>%s</auth>", mech, out);
    gsasl_free(out);
    feed(&h, xml);
    const char *r = recv_new(&h);
    const char *a = strchr(r, '>') + 1, *b = strstr(r, "</challenge>");
    assert_non_null(b);
    char ch[2048];
    snprintf(ch, sizeof ch, "%.*s", (int)(b - a), a);
    assert_int_equal(gsasl_step64(sess, ch, &out), GSASL_NEEDS_MORE);
    snprintf(xml, sizeof xml, "<response xmlns='" NS_SASL "'>%s</response>", out);
    gsasl_free(out);
    feed(&h, xml);
    r = recv_new(&h);
    assert_true(is_success(r));
    a = strchr(r, '>') + 1;
    b = strstr(r, "</success>");
    snprintf(ch, sizeof ch, "%.*s", (int)(b - a), a);
    assert_int_equal(gsasl_step64(sess, ch, &out), GSASL_OK); /* it checked our verifier */
    gsasl_free(out);
    gsasl_finish(sess);
    gsasl_done(ctx);
    h_free(&h);
}

static void test_gsasl_client(void **state)
{
    (void)state;
    gsasl_login("SCRAM-SHA-256", false);
    gsasl_login("SCRAM-SHA-1", false);
    gsasl_login("SCRAM-SHA-256-PLUS", true);
}

/* Unit checks of the SASL helpers. */
static void test_sasl_helpers(void **state)
{
    (void)state;
    unsigned char out[16];
    size_t n;
    assert_int_equal(fg_sasl_b64_decode("Zm9vYg==", 8, out, sizeof out, &n), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "foob", 4);
    assert_int_equal(fg_sasl_b64_decode("Zm9vYh==", 8, out, sizeof out, &n), FG_EINVAL);
    assert_int_equal(fg_sasl_b64_decode("Zm9v YQ=", 8, out, sizeof out, &n), FG_EINVAL);
    assert_int_equal(fg_sasl_b64_decode("Zg=a", 4, out, sizeof out, &n), FG_EINVAL);
    assert_int_equal(fg_sasl_b64_decode("Zm9", 3, out, sizeof out, &n), FG_EINVAL);
    assert_int_equal(fg_sasl_b64_decode("Zm9vYmFy", 8, out, 5, &n), FG_ELIMIT);
    struct fg_buf b = {0};
    fg_sasl_b64_encode(&b, "foob", 4);
    assert_string_equal(fg_buf_str(&b), "Zm9vYg==");
    fg_buf_free(&b);
    char jid[2048];
    assert_int_equal(fg_sasl_prep_user("AlIce", 5, DOMAIN, jid, sizeof jid), 0);
    assert_string_equal(jid, "alice@" DOMAIN);
    assert_int_equal(fg_sasl_prep_user("a@EXAMPLE.test", 14, DOMAIN, jid, sizeof jid), 0);
    assert_string_equal(jid, "a@" DOMAIN);
    assert_int_equal(fg_sasl_prep_user("a@other.test", 12, DOMAIN, jid, sizeof jid), FG_EINVAL);
    assert_int_equal(fg_sasl_prep_user("a b", 3, DOMAIN, jid, sizeof jid), FG_EINVAL);
    assert_int_equal(fg_sasl_prep_user("", 0, DOMAIN, jid, sizeof jid), FG_EINVAL);
    assert_int_equal(fg_sasl_mech_parse("PLAIN", 5), FG_SASL_PLAIN);
    assert_int_equal(fg_sasl_mech_parse("plain", 5), FG_SASL_MECH_NONE);
    assert_string_equal(fg_sasl_cond_name(FG_SASL_COND_NOT_AUTHORIZED), "not-authorized");
}

/* The cost of a login and the memory of an idle session; printed, not asserted beyond
 * a loose bound (sanitizer builds are slow). */
static void test_cost(void **state)
{
    (void)state;
    struct timespec a, b;
    const int rounds = 200;
    double total = 0;
    for (int i = 0; i < rounds; i++) {
        struct h h;
        h_init(&h, false, false);
        struct scram s;
        char m1[600], sf[600], m2[1200];
        scram_first(&s, EVP_sha256(), "n,,", "alice", m1, sizeof m1);
        /* precompute the client's side, then time the server alone */
        char b64[1024], auth[1200];
        b64enc(m1, strlen(m1), b64);
        snprintf(auth, sizeof auth, "<auth xmlns='" NS_SASL "' mechanism='SCRAM-SHA-256'>%s</auth>",
                 b64);
        clock_gettime(CLOCK_MONOTONIC, &a);
        fg_c2s_feed(h.c, HDR, strlen(HDR));
        fg_c2s_feed(h.c, auth, strlen(auth));
        clock_gettime(CLOCK_MONOTONIC, &b);
        total += (double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_nsec - a.tv_nsec) / 1e3;
        const char *r = recv_new(&h);
        assert_true(sasl_el(r, "challenge", sf, sizeof sf));
        scram_final(&s, sf, "pencil", NULL, 0, m2, sizeof m2);
        char resp[2048];
        b64enc(m2, strlen(m2), b64);
        snprintf(resp, sizeof resp, "<response xmlns='" NS_SASL "'>%s</response>", b64);
        const char *rest = HDR "<iq type='set' id='b'><bind "
                               "xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>";
        clock_gettime(CLOCK_MONOTONIC, &a);
        fg_c2s_feed(h.c, resp, strlen(resp));
        fg_c2s_feed(h.c, rest, strlen(rest));
        clock_gettime(CLOCK_MONOTONIC, &b);
        total += (double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_nsec - a.tv_nsec) / 1e3;
        assert_non_null(fg_c2s_jid(h.c));
        if (i == rounds - 1) {
            fg_c2s_tick(h.c, 1000);
            fg_c2s_tick(h.c, 6000); /* quiet: the parser gives its memory back */
            size_t mem = fg_c2s_memory(h.c);
            printf("c2s: SCRAM-SHA-256 login (server side, plain TCP) %.1f us; idle bound "
                   "session %zu bytes\n",
                   total / rounds, mem);
            assert_true(mem < 8192);
        }
        h_free(&h);
    }
    assert_true(total / rounds < 5000);
}

int main(void)
{
    tls_setup();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sasl_helpers),
        cmocka_unit_test(test_scram_sha256_tls),
        cmocka_unit_test(test_scram_sha1_tls),
        cmocka_unit_test(test_scram_sha256_plus),
        cmocka_unit_test(test_scram_plus_tls_unique),
        cmocka_unit_test(test_scram_plus_mismatch),
        cmocka_unit_test(test_scram_no_initial_response),
        cmocka_unit_test(test_plain_tls),
        cmocka_unit_test(test_plain_refused_without_tls),
        cmocka_unit_test(test_no_tls_required),
        cmocka_unit_test(test_wrong_password_unknown_user),
        cmocka_unit_test(test_attempts_limit),
        cmocka_unit_test(test_sasl_protocol_errors),
        cmocka_unit_test(test_host_unknown),
        cmocka_unit_test(test_bad_namespace_version),
        cmocka_unit_test(test_starttls_required),
        cmocka_unit_test(test_direct_tls),
        cmocka_unit_test(test_bind),
        cmocka_unit_test(test_stream_close),
        cmocka_unit_test(test_idle),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_split_every_byte),
        cmocka_unit_test(test_gsasl_client),
        cmocka_unit_test(test_cost),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
