/* test_certid.c - xmpp/certid.h: RFC 9525 / RFC 7590 identities of peer certificates built
 * at test time with OpenSSL (DNS-ID, wildcards, SRV-ID, XmppAddr, IDN, CN-only, hostile
 * encodings), and the leaves of tests/pki/make-pki. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xmpp/certid.h"

static EVP_PKEY *key;

/* subjectAltName entries: D dNSName, S SRVName (IA5), X XmppAddr (UTF8), s SRVName as
 * UTF8String, x XmppAddr as IA5String, I IPv4 address, E email, O an unknown otherName, N a
 * dNSName whose value continues after an embedded NUL ("b.test" NUL ".evil.test"). */
struct san {
    char type;
    const char *value;
};

static GENERAL_NAME *othername(const char *oid, int asn1_type, const char *value)
{
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_TYPE *t = ASN1_TYPE_new();
    ASN1_STRING *s = ASN1_STRING_type_new(asn1_type);
    assert_true(ASN1_STRING_set(s, value, -1));
    ASN1_TYPE_set(t, asn1_type, s);
    assert_true(GENERAL_NAME_set0_othername(g, OBJ_txt2obj(oid, 1), t));
    return g;
}

static GENERAL_NAME *simple(int gen_type, int asn1_type, const void *value, int len)
{
    GENERAL_NAME *g = GENERAL_NAME_new();
    ASN1_STRING *s = ASN1_STRING_type_new(asn1_type);
    assert_true(ASN1_STRING_set(s, value, len));
    GENERAL_NAME_set0_value(g, gen_type, s);
    return g;
}

static GENERAL_NAMES *names_of(const struct san *sans)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    for (size_t i = 0; sans && sans[i].type; i++) {
        const char *v = sans[i].value;
        GENERAL_NAME *g = NULL;
        switch (sans[i].type) {
        case 'D':
            g = simple(GEN_DNS, V_ASN1_IA5STRING, v, -1);
            break;
        case 'N': {
            char buf[128];
            size_t a = strlen(v), b = strlen(v + a + 1);
            memcpy(buf, v, a + 1 + b);
            g = simple(GEN_DNS, V_ASN1_IA5STRING, buf, (int)(a + 1 + b));
            break;
        }
        case 'S':
            g = othername("1.3.6.1.5.5.7.8.7", V_ASN1_IA5STRING, v);
            break;
        case 's':
            g = othername("1.3.6.1.5.5.7.8.7", V_ASN1_UTF8STRING, v);
            break;
        case 'X':
            g = othername("1.3.6.1.5.5.7.8.5", V_ASN1_UTF8STRING, v);
            break;
        case 'x':
            g = othername("1.3.6.1.5.5.7.8.5", V_ASN1_IA5STRING, v);
            break;
        case 'O':
            g = othername("1.3.6.1.4.1.99999.1", V_ASN1_UTF8STRING, v);
            break;
        case 'E':
            g = simple(GEN_EMAIL, V_ASN1_IA5STRING, v, -1);
            break;
        case 'I': {
            const unsigned char ip[4] = {127, 0, 0, 2};
            g = simple(GEN_IPADD, V_ASN1_OCTET_STRING, ip, 4);
            break;
        }
        default:
            fail_msg("unknown SAN type %c", sans[i].type);
        }
        sk_GENERAL_NAME_push(gens, g);
    }
    return gens;
}

/* A self-signed leaf with subject CN cn (NULL = none) and the given names (NULL = no
 * subjectAltName extension); a second extension when twice is set. Round-tripped through
 * DER, as a peer's certificate arrives. */
static X509 *make_cert(const char *cn, const struct san *sans, bool twice)
{
    X509 *x = X509_new();
    assert_non_null(x);
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME *name = X509_get_subject_name(x);
    if (cn)
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"fedgate tests", -1,
                               -1, 0);
    X509_set_issuer_name(x, name);
    if (sans) {
        GENERAL_NAMES *gens = names_of(sans);
        assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT),
                         1);
        if (twice)
            assert_int_equal(X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_APPEND),
                             1);
        GENERAL_NAMES_free(gens);
    }
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    assert_true(len > 0);
    X509_free(x);
    const unsigned char *p = der;
    X509 *y = d2i_X509(NULL, &p, len);
    OPENSSL_free(der);
    assert_non_null(y);
    return y;
}

/* Asserts the verdict and that why contains want (when given). */
static void expect(const X509 *cert, const char *domain, bool match, const char *want)
{
    char why[512] = "";
    bool got = fg_certid_match(cert, domain, why, sizeof why);
    if (got != match || (want && !strstr(why, want)))
        fail_msg("%s: expected %s%s%s, got %s: '%s'", domain, match ? "a match" : "no match",
                 want ? " with " : "", want ? want : "", got ? "a match" : "no match", why);
}

static int group_setup(void **state)
{
    key = EVP_EC_gen("P-256");
    return key ? 0 : -1;
}

static int group_teardown(void **state)
{
    EVP_PKEY_free(key);
    return 0;
}

/* ---------------------------------------------------------------- DNS-ID rules */

static void test_dns_id_rules(void **state)
{
    struct {
        const char *presented, *reference;
        bool match;
    } cases[] = {
        {"b.test", "b.test", true},
        {"B.Test", "b.test", true},
        {"b.test", "c.test", false},
        {"b.test", "a.b.test", false},
        {"*.b.test", "a.b.test", true},
        {"*.B.TEST", "a.b.test", true},
        {"*.b.test", "xn--bcher-kva.b.test", true}, /* a whole A-label is one label */
        {"*.b.test", "b.test", false},
        {"*.b.test", "x.a.b.test", false},
        {"*.test", "b.test", false}, /* wildcard over a top-level domain */
        {"*", "b", false},
        {"*.", "b.test", false},
        {"a.*.test", "a.b.test", false}, /* not left-most */
        {"*.*.test", "a.b.test", false},
        {"x*.b.test", "xa.b.test", false}, /* partial label */
        {"*a.b.test", "xa.b.test", false},
        {"xn--*.b.test", "xn--bcher-kva.b.test", false},
        {"xn--bcher-kva.test", "xn--bcher-kva.test", true},
        {"b\xc3\xbc"
         "cher.test",
         "xn--bcher-kva.test", false}, /* U-label in a dNSName */
        {"b.test.", "b.test", false},
        {".b.test", "b.test", false},
        {"b..test", "b..test", false},
        {"", "b.test", false},
        {"b test", "b test", false},
        {NULL, "b.test", false},
        {"b.test", NULL, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (fg_certid_dns_id_matches(cases[i].presented, cases[i].reference) != cases[i].match)
            fail_msg("'%s' vs '%s': expected %s", cases[i].presented ? cases[i].presented : "NULL",
                     cases[i].reference ? cases[i].reference : "NULL",
                     cases[i].match ? "a match" : "no match");
}

/* ---------------------------------------------------------------- certificates */

static void test_dns_id_exact_and_case(void **state)
{
    const struct san s[] = {{'D', "b.test"}, {0, NULL}};
    X509 *c = make_cert("b.test", s, false);
    expect(c, "b.test", true, "DNS-ID b.test");
    expect(c, "B.TEST", true, "DNS-ID b.test");
    expect(c, "b.test.", true, NULL);
    expect(c, "a.b.test", false, "names only b.test");
    X509_free(c);

    const struct san up[] = {{'D', "B.Test"}, {0, NULL}};
    c = make_cert(NULL, up, false);
    expect(c, "b.test", true, "DNS-ID B.Test");
    X509_free(c);
}

static void test_wildcard(void **state)
{
    const struct san s[] = {{'D', "*.b.test"}, {0, NULL}};
    X509 *c = make_cert("b.test", s, false);
    expect(c, "a.b.test", true, "DNS-ID *.b.test");
    expect(c, "conference.b.test", true, NULL);
    expect(c, "b.test", false, "certificate presented by b.test names only *.b.test");
    expect(c, "x.a.b.test", false, NULL);
    X509_free(c);

    const struct san mid[] = {
        {'D', "a.*.test"}, {'D', "x*.b.test"}, {'D', "xn--*.b.test"}, {'D', "*.test"}, {0, NULL}};
    c = make_cert("a.b.test", mid, false);
    expect(c, "a.b.test", false, "names only a.*.test, x*.b.test, xn--*.b.test, *.test");
    expect(c, "xa.b.test", false, NULL);
    expect(c, "xn--bcher-kva.b.test", false, NULL);
    expect(c, "b.test", false, NULL);
    X509_free(c);

    /* the make-pki shape: DNS:D, DNS:*.D */
    const struct san pki[] = {{'D', "b.test"}, {'D', "*.b.test"}, {0, NULL}};
    c = make_cert("b.test", pki, false);
    expect(c, "b.test", true, "DNS-ID b.test");
    expect(c, "muc.b.test", true, "DNS-ID *.b.test");
    expect(c, "c.test", false, "certificate presented by c.test names only b.test, *.b.test");
    X509_free(c);
}

static void test_cn_only_refused(void **state)
{
    X509 *c = make_cert("b.test", NULL, false);
    expect(c, "b.test", false,
           "certificate presented by b.test has no DNS, SRV or XmppAddr name in subjectAltName "
           "(its subject CN \"b.test\" is not used, RFC 9525)");
    X509_free(c);

    /* names of other types only: the CN still does not count */
    const struct san other[] = {{'I', NULL}, {'E', "admin@b.test"}, {'O', "b.test"}, {0, NULL}};
    c = make_cert("b.test", other, false);
    expect(c, "b.test", false, "has no DNS, SRV or XmppAddr name");
    X509_free(c);

    c = make_cert(NULL, NULL, false);
    char why[256];
    assert_false(fg_certid_match(c, "b.test", why, sizeof why));
    assert_string_equal(why, "certificate presented by b.test has no DNS, SRV or XmppAddr name "
                             "in subjectAltName");
    X509_free(c);
}

static void test_srv_id(void **state)
{
    const struct san s[] = {{'S', "_xmpp-server.b.test"}, {0, NULL}};
    X509 *c = make_cert("b.test", s, false);
    expect(c, "b.test", true, "SRV-ID _xmpp-server.b.test");
    expect(c, "B.test", true, NULL);
    expect(c, "c.test", false, "names only _xmpp-server.b.test (SRV-ID)");
    expect(c, "a.b.test", false, NULL);
    X509_free(c);

    const struct san wrong[] = {{'S', "_xmpp-client.b.test"},
                                {'S', "_xmpp-server.*.test"},
                                {'S', "_XMPP-SERVER.C.TEST"},
                                {0, NULL}};
    c = make_cert(NULL, wrong, false);
    expect(c, "b.test", false, NULL);
    expect(c, "c.test", true, "SRV-ID _XMPP-SERVER.C.TEST");
    X509_free(c);

    /* an SRVName must be an IA5String */
    const struct san utf8[] = {{'s', "_xmpp-server.b.test"}, {0, NULL}};
    c = make_cert(NULL, utf8, false);
    expect(c, "b.test", false, "(an unreadable SRV-ID)");
    X509_free(c);
}

static void test_xmppaddr(void **state)
{
    const struct san s[] = {{'X', "b.test"}, {0, NULL}};
    X509 *c = make_cert(NULL, s, false);
    expect(c, "b.test", true, "XmppAddr b.test");
    expect(c, "c.test", false, "names only b.test (XmppAddr)");
    X509_free(c);

    /* IDN: the UTF-8 XmppAddr and the A-label reference meet as A-labels */
    const struct san idn[] = {{'X', "b\xc3\xbc"
                                    "cher.test"},
                              {0, NULL}};
    c = make_cert(NULL, idn, false);
    expect(c, "xn--bcher-kva.test", true,
           "XmppAddr b\xc3\xbc"
           "cher.test");
    expect(c,
           "B\xc3\x9c"
           "CHER.test",
           true, NULL);
    expect(c, "bucher.test", false, NULL);
    X509_free(c);
    const struct san alabel[] = {{'D', "xn--bcher-kva.test"}, {0, NULL}};
    c = make_cert(NULL, alabel, false);
    expect(c,
           "b\xc3\xbc"
           "cher.test",
           true, "DNS-ID xn--bcher-kva.test");
    X509_free(c);

    const struct san upper[] = {{'X', "B.TEST"}, {0, NULL}};
    c = make_cert(NULL, upper, false);
    expect(c, "b.test", true, "XmppAddr B.TEST");
    X509_free(c);

    /* a user's JID, a wildcard, the wrong string type: none names the server */
    const struct san bad[] = {{'X', "user@b.test"}, {'X', "*.b.test"}, {'x', "b.test"}, {0, NULL}};
    c = make_cert(NULL, bad, false);
    expect(c, "b.test", false,
           "names only user@b.test (XmppAddr), *.b.test (XmppAddr), (an unreadable XmppAddr)");
    expect(c, "a.b.test", false, NULL);
    X509_free(c);
}

static void test_preference_and_mixed(void **state)
{
    /* several identities match: the DNS-ID is reported */
    const struct san all[] = {
        {'X', "b.test"}, {'S', "_xmpp-server.b.test"}, {'D', "b.test"}, {0, NULL}};
    X509 *c = make_cert(NULL, all, false);
    expect(c, "b.test", true, "DNS-ID b.test");
    X509_free(c);
    const struct san two[] = {{'X', "b.test"}, {'S', "_xmpp-server.b.test"}, {0, NULL}};
    c = make_cert(NULL, two, false);
    expect(c, "b.test", true, "SRV-ID _xmpp-server.b.test");
    X509_free(c);
    /* another partner's names beside ours */
    const struct san mixed[] = {{'D', "c.test"}, {'X', "b.test"}, {0, NULL}};
    c = make_cert("c.test", mixed, false);
    expect(c, "b.test", true, "XmppAddr b.test");
    expect(c, "c.test", true, "DNS-ID c.test");
    expect(c, "d.test", false, "names only c.test, b.test (XmppAddr)");
    X509_free(c);
}

static void test_wrong_name(void **state)
{
    const struct san s[] = {{'D', "c.test"}, {'D', "*.c.test"}, {0, NULL}};
    X509 *c = make_cert("b.test", s, false);
    char why[256];
    assert_false(fg_certid_match(c, "b.test", why, sizeof why));
    assert_string_equal(why, "certificate presented by b.test names only c.test, *.c.test");
    /* a short buffer truncates, never overflows; NULL is fine */
    char tiny[12];
    assert_false(fg_certid_match(c, "b.test", tiny, sizeof tiny));
    assert_string_equal(tiny, "certificate");
    assert_false(fg_certid_match(c, "b.test", NULL, 0));
    X509_free(c);
}

static void test_hostile_encodings(void **state)
{
    /* "b.test" NUL ".evil.test": the NUL hides the rest from a C comparison */
    const struct san nul[] = {{'N', "b.test\0.evil.test"}, {0, NULL}};
    X509 *c = make_cert(NULL, nul, false);
    expect(c, "b.test", false, "(an unreadable DNS-ID)");
    X509_free(c);

    /* control characters are shown as '?' */
    const struct san ctl[] = {{'X', "b.test\n\x1b[31m"}, {0, NULL}};
    c = make_cert(NULL, ctl, false);
    expect(c, "b.test", false, "names only b.test??[31m (XmppAddr)");
    X509_free(c);

    /* two subjectAltName extensions are ambiguous: refused */
    const struct san s[] = {{'D', "b.test"}, {0, NULL}};
    c = make_cert(NULL, s, true);
    expect(c, "b.test", false, "more than one subjectAltName");
    X509_free(c);

    /* many names: the message lists eight */
    const struct san many[] = {{'D', "n1.test"},  {'D', "n2.test"}, {'D', "n3.test"},
                               {'D', "n4.test"},  {'D', "n5.test"}, {'D', "n6.test"},
                               {'D', "n7.test"},  {'D', "n8.test"}, {'D', "n9.test"},
                               {'D', "n10.test"}, {'D', "b.test"},  {0, NULL}};
    c = make_cert(NULL, many, false);
    expect(c, "c.test", false, "n7.test, n8.test, and 3 more");
    expect(c, "b.test", true, "DNS-ID b.test"); /* beyond the listed ones, still checked */
    X509_free(c);
}

static void test_no_certificate_or_domain(void **state)
{
    char why[256];
    assert_false(fg_certid_match(NULL, "b.test", why, sizeof why));
    assert_string_equal(why, "b.test presented no certificate");
    const struct san s[] = {{'D', "b.test"}, {0, NULL}};
    X509 *c = make_cert(NULL, s, false);
    assert_false(fg_certid_match(c, "", why, sizeof why));
    assert_non_null(strstr(why, "is not a domain name"));
    assert_false(fg_certid_match(c, "*.b.test", why, sizeof why));
    assert_false(fg_certid_match(c, "127.0.0.1:5269", why, sizeof why));
    assert_false(fg_certid_match(c, NULL, why, sizeof why));
    X509_free(c);
}

/* The leaves of tests/pki/make-pki, which the integration tests serve. */
static void test_make_pki_leaves(void **state)
{
    const char *data = getenv("FG_TEST_DATA");
    char script[512], dir[64], cmd[1024], path[256];
    size_t dl = data ? strlen(data) : 0;
    if (dl > 10 && strcmp(data + dl - 10, "/unit/data") == 0)
        snprintf(script, sizeof script, "%.*s/pki/make-pki", (int)(dl - 10), data);
    else
        snprintf(script, sizeof script, "%s/tests/pki/make-pki", FG_SOURCE_DIR);
    if (access(script, R_OK) != 0 || system("command -v openssl >/dev/null 2>&1") != 0)
        skip();
    snprintf(dir, sizeof dir, "/tmp/fg-test-certid-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "sh '%s' '%s' b.test", script, dir);
    assert_int_equal(system(cmd), 0);

    snprintf(path, sizeof path, "%s/b.test.crt", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    X509 *c = PEM_read_X509(f, NULL, NULL, NULL); /* the leaf comes first in the chain */
    fclose(f);
    assert_non_null(c);
    expect(c, "b.test", true, "DNS-ID b.test");
    expect(c, "x.b.test", true, "DNS-ID *.b.test");
    expect(c, "c.test", false, "names only b.test, *.b.test");
    X509_free(c);

    snprintf(path, sizeof path, "%s/wrongname/b.test.crt", dir);
    f = fopen(path, "r");
    assert_non_null(f);
    c = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(c);
    expect(c, "b.test", false,
           "certificate presented by b.test names only wrongname.invalid, *.wrongname.invalid");
    X509_free(c);

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dns_id_rules),
        cmocka_unit_test(test_dns_id_exact_and_case),
        cmocka_unit_test(test_wildcard),
        cmocka_unit_test(test_cn_only_refused),
        cmocka_unit_test(test_srv_id),
        cmocka_unit_test(test_xmppaddr),
        cmocka_unit_test(test_preference_and_mixed),
        cmocka_unit_test(test_wrong_name),
        cmocka_unit_test(test_hostile_encodings),
        cmocka_unit_test(test_no_certificate_or_domain),
        cmocka_unit_test(test_make_pki_leaves),
    };
    if (getenv("FG_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FG_TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
