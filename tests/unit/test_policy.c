/* test_policy.c - the negotiation matrix against the SPEC (copied here by hand, not taken
 * from the code under test), rule precedence and texts, field setters and limits, gateway
 * settings, and the partner JSON (PUT, merge patch, type errors). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/err.h"
#include "policy/json.h"
#include "policy/policy.h"

/* The exact texts of SPEC section 2. */
#define TEXT_R3                                                                                    \
    "SASL needs TLS: set TLS to required or optional, or set SASL to not-supported if this "       \
    "partner cannot do TLS."
#define TEXT_R2                                                                                    \
    "Nothing could authenticate this partner: with SASL not-supported, dialback must be "          \
    "true."
#define TEXT_W1                                                                                    \
    "With TLS optional, a partner that declines TLS cannot authenticate (SASL needs TLS "          \
    "and dialback is not allowed here): set TLS to required."
#define TEXT_W2 "Dialback is never used while SASL is required."

/* SPEC section 2, row by row, written out by hand. */
static const struct {
    int number;
    const char *tls, *sasl;
    bool dialback;
    const char *methods;
    const char *refusal; /* NULL: saved */
    const char *w1, *w2; /* expected warnings in order */
} spec[18] = {
    {1, "required", "required", true, "EXTERNAL over TLS", NULL, "W2", NULL},
    {2, "required", "required", false, "EXTERNAL over TLS", NULL, NULL, NULL},
    {3, "optional", "required", true, "EXTERNAL over TLS", NULL, "W1", "W2"},
    {4, "optional", "required", false, "EXTERNAL over TLS", NULL, "W1", NULL},
    {5, "not-supported", "required", true, "—", "R3", NULL, NULL},
    {6, "not-supported", "required", false, "—", "R3", NULL, NULL},
    {7, "required", "optional", true, "EXTERNAL or dialback, over TLS", NULL, NULL, NULL},
    {8, "required", "optional", false, "EXTERNAL over TLS", NULL, NULL, NULL},
    {9, "optional", "optional", true, "EXTERNAL over TLS; dialback over TLS or TCP", NULL, NULL,
     NULL},
    {10, "optional", "optional", false, "EXTERNAL over TLS", NULL, "W1", NULL},
    {11, "not-supported", "optional", true, "—", "R3", NULL, NULL},
    {12, "not-supported", "optional", false, "—", "R3", NULL, NULL},
    {13, "required", "not-supported", true, "dialback over TLS", NULL, NULL, NULL},
    {14, "required", "not-supported", false, "—", "R2", NULL, NULL},
    {15, "optional", "not-supported", true, "dialback over TLS or TCP", NULL, NULL, NULL},
    {16, "optional", "not-supported", false, "—", "R2", NULL, NULL},
    {17, "not-supported", "not-supported", true, "dialback over TCP", NULL, NULL, NULL},
    {18, "not-supported", "not-supported", false, "—", "R2", NULL, NULL},
};

static void assert_str_or_null(const char *got, const char *want)
{
    if (!want)
        assert_null(got);
    else {
        assert_non_null(got);
        assert_string_equal(got, want);
    }
}

static void set(struct fg_partner *p, const char *key, const char *value)
{
    char err[256] = "";
    int rc = fg_partner_set_text(p, key, value, err, sizeof err);
    if (rc)
        print_error("set %s=%s: %s\n", key, value, err);
    assert_int_equal(rc, 0);
}

static void test_defaults(void **state)
{
    struct fg_partner p;
    fg_partner_init(&p, "a.test");
    assert_string_equal(p.domain, "a.test");
    assert_string_equal(p.description, "");
    assert_non_null(p.additional);
    assert_null(p.additional[0]);
    assert_false(p.subdomains);
    assert_int_equal(p.type, FG_PT_PUBLIC_UNVERIFIED);
    assert_int_equal(p.tls, FG_NEG_REQUIRED);
    assert_int_equal(p.sasl, FG_NEG_OPTIONAL);
    assert_true(p.dialback);
    assert_true(p.keepalive);
    assert_int_equal(p.connection_limit, 0);
    assert_string_equal(p.proxy_fqdn, "");
    /* The defaults are row 7, valid without warnings. */
    struct fg_verdict v;
    assert_int_equal(fg_policy_check_partner(&p, NULL, NULL, &v), 0);
    assert_int_equal(fg_policy_matrix_row(p.tls, p.sasl, p.dialback)->number, 7);

    struct fg_partner q;
    fg_partner_copy(&q, &p);
    assert_true(fg_partner_equal(&p, &q));
    set(&q, "additional_domains", "b.test");
    assert_false(fg_partner_equal(&p, &q));
    fg_partner_clear(&q);
    fg_partner_copy(&q, &p);
    q.keepalive = false;
    assert_false(fg_partner_equal(&p, &q));
    fg_partner_clear(&q);
    fg_partner_clear(&p);
}

static void test_names(void **state)
{
    assert_int_equal(fg_neg_parse("required"), FG_NEG_REQUIRED);
    assert_int_equal(fg_neg_parse("optional"), FG_NEG_OPTIONAL);
    assert_int_equal(fg_neg_parse("not-supported"), FG_NEG_NOT_SUPPORTED);
    assert_int_equal(fg_neg_parse("maybe"), -1);
    assert_int_equal(fg_neg_parse(NULL), -1);
    assert_string_equal(fg_neg_name(FG_NEG_NOT_SUPPORTED), "not-supported");
    assert_int_equal(fg_ptype_parse("federated"), FG_PT_FEDERATED);
    assert_int_equal(fg_ptype_parse("public-verified"), FG_PT_PUBLIC_VERIFIED);
    assert_int_equal(fg_ptype_parse("public-unverified"), FG_PT_PUBLIC_UNVERIFIED);
    assert_int_equal(fg_ptype_parse("public"), -1);
    assert_string_equal(fg_ptype_name(FG_PT_PUBLIC_VERIFIED), "public-verified");
    assert_int_equal(fg_role_parse("server-admin"), FG_ROLE_SERVER_ADMIN);
    assert_int_equal(fg_role_parse("administrator"), FG_ROLE_ADMINISTRATOR);
    assert_int_equal(fg_role_parse("viewer"), FG_ROLE_VIEWER);
    assert_int_equal(fg_role_parse("root"), -1);
    assert_string_equal(fg_role_name(FG_ROLE_SERVER_ADMIN), "server-admin");
    assert_string_equal(fg_role_name(FG_ROLE_VIEWER), "viewer");
    const char *t[] = {"true", "yes", "on", "1", "TRUE"};
    const char *f[] = {"false", "no", "off", "0", "False"};
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(fg_bool_parse(t[i]), 1);
        assert_int_equal(fg_bool_parse(f[i]), 0);
    }
    assert_int_equal(fg_bool_parse("maybe"), -1);
    assert_int_equal(fg_bool_parse(""), -1);
    assert_int_equal(fg_bool_parse(NULL), -1);
}

static void test_rule_texts(void **state)
{
    assert_string_equal(fg_policy_rule_text("R3"), TEXT_R3);
    assert_string_equal(fg_policy_rule_text("R2"), TEXT_R2);
    assert_string_equal(fg_policy_rule_text("W1"), TEXT_W1);
    assert_string_equal(fg_policy_rule_text("W2"), TEXT_W2);
    assert_non_null(fg_policy_rule_text("D1"));
    assert_non_null(fg_policy_rule_text("D2"));
    assert_non_null(fg_policy_rule_text("D3"));
    assert_non_null(fg_policy_rule_text("A1"));
    assert_null(fg_policy_rule_text("R9"));
    assert_null(fg_policy_rule_text(NULL));
}

static const char *text_of(const char *rule)
{
    if (!rule)
        return "";
    if (strcmp(rule, "R2") == 0)
        return TEXT_R2;
    if (strcmp(rule, "R3") == 0)
        return TEXT_R3;
    fail_msg("no text for %s", rule);
    return "";
}

static void test_matrix(void **state)
{
    for (size_t i = 0; i < 18; i++) {
        int tls = fg_neg_parse(spec[i].tls), sasl = fg_neg_parse(spec[i].sasl);
        assert_true(tls >= 0 && sasl >= 0);

        /* The static table holds the row at its SPEC position ... */
        const struct fg_matrix_row *r = &fg_policy_matrix[i];
        assert_int_equal(r->number, spec[i].number);
        assert_int_equal(r->tls, tls);
        assert_int_equal(r->sasl, sasl);
        assert_int_equal(r->dialback, spec[i].dialback);
        assert_string_equal(r->methods, spec[i].methods);
        assert_str_or_null(r->refusal, spec[i].refusal);
        assert_str_or_null(r->warnings[0], spec[i].w1);
        assert_str_or_null(r->warnings[1], spec[i].w2);
        /* ... and the lookup finds it. */
        assert_ptr_equal(fg_policy_matrix_row(tls, sasl, spec[i].dialback), r);

        /* The verdict on a partner with these settings, set as the CLI would. */
        struct fg_partner p;
        fg_partner_init(&p, "p.test");
        set(&p, "tls", spec[i].tls);
        set(&p, "sasl", spec[i].sasl);
        set(&p, "dialback", spec[i].dialback ? "true" : "false");
        struct fg_verdict v;
        int rc = fg_policy_check_partner(&p, NULL, NULL, &v);
        if (spec[i].refusal) {
            assert_int_equal(rc, FG_EREFUSED);
            assert_string_equal(v.rule, spec[i].refusal);
            assert_string_equal(v.message, text_of(spec[i].refusal));
            assert_null(v.warnings[0]);
            if (strcmp(spec[i].refusal, "R3") == 0) {
                assert_string_equal(v.fields[0], "tls");
                assert_string_equal(v.fields[1], "sasl");
            } else {
                assert_string_equal(v.fields[0], "sasl");
                assert_string_equal(v.fields[1], "dialback");
            }
            assert_null(v.fields[2]);
        } else {
            assert_int_equal(rc, 0);
            assert_null(v.rule);
            assert_string_equal(v.message, "");
            assert_null(v.fields[0]);
            assert_str_or_null(v.warnings[0], spec[i].w1);
            assert_str_or_null(v.warnings[1], spec[i].w2);
        }
        fg_partner_clear(&p);
    }
    assert_null(fg_policy_matrix_row((enum fg_neg)3, FG_NEG_REQUIRED, true));
}

/* A partner for the domain rules; additional is "a,b" text or "". */
static void mk(struct fg_partner *p, const char *domain, const char *additional)
{
    fg_partner_init(p, domain);
    set(p, "additional_domains", additional);
}

static void test_domain_rules(void **state)
{
    struct fg_partner fab, other, p;
    mk(&fab, "fab.test", "fab-eu.test,fab-us.test");
    mk(&other, "other.test", "");
    const struct fg_partner *others[] = {&fab, &other, NULL};
    char *hosted[] = {"example.test", "example.org", NULL};
    struct fg_verdict v;

    /* Clean. */
    mk(&p, "new.test", "new-eu.test");
    assert_int_equal(fg_policy_check_partner(&p, hosted, others, &v), 0);
    fg_partner_clear(&p);

    /* D1 on an additional domain of another partner. */
    mk(&p, "new.test", "fab-eu.test");
    assert_int_equal(fg_policy_check_partner(&p, hosted, others, &v), FG_EREFUSED);
    assert_string_equal(v.rule, "D1");
    assert_string_equal(v.message, "fab-eu.test already belongs to partner fab.test: remove it "
                                   "there first, or choose another domain.");
    assert_string_equal(v.fields[0], "additional_domains");
    assert_null(v.fields[1]);
    fg_partner_clear(&p);

    /* D1 on the primary domain (another partner's additional). */
    mk(&p, "fab-us.test", "");
    assert_int_equal(fg_policy_check_partner(&p, hosted, others, &v), FG_EREFUSED);
    assert_string_equal(v.rule, "D1");
    assert_non_null(strstr(v.message, "fab-us.test"));
    assert_non_null(strstr(v.message, "fab.test"));
    assert_string_equal(v.fields[0], "domain");
    fg_partner_clear(&p);

    /* D1 against another partner's primary. */
    mk(&p, "new.test", "other.test");
    assert_int_equal(fg_policy_check_partner(&p, hosted, others, &v), FG_EREFUSED);
    assert_string_equal(v.rule, "D1");
    assert_string_equal(v.message, "other.test already belongs to partner other.test: remove "
                                   "it there first, or choose another domain.");
    fg_partner_clear(&p);

    /* D2 on the primary and on an additional domain. */
    mk(&p, "example.test", "");
    assert_int_equal(fg_policy_check_partner(&p, hosted, others, &v), FG_EREFUSED);
    assert_string_equal(v.rule, "D2");
    assert_non_null(strstr(v.message, "example.test"));
    assert_non_null(strstr(v.message, "hosted"));
    assert_string_equal(v.fields[0], "domain");
    fg_partner_clear(&p);
    mk(&p, "new.test", "x.test,example.org");
    assert_int_equal(fg_policy_check_partner(&p, hosted, others, &v), FG_EREFUSED);
    assert_string_equal(v.rule, "D2");
    assert_non_null(strstr(v.message, "example.org"));
    assert_string_equal(v.fields[0], "additional_domains");
    fg_partner_clear(&p);

    /* D3. */
    mk(&p, "new.test", "x.test,new.test");
    assert_int_equal(fg_policy_check_partner(&p, hosted, others, &v), FG_EREFUSED);
    assert_string_equal(v.rule, "D3");
    assert_non_null(strstr(v.message, "new.test"));
    assert_string_equal(v.fields[0], "additional_domains");
    fg_partner_clear(&p);

    /* Precedence R3 > R2 > D2 > D3 > D1: each case also breaks every later rule. */
    mk(&p, "example.test", "example.test,fab-eu.test");
    set(&p, "tls", "not-supported");
    set(&p, "sasl", "required");
    assert_int_equal(fg_policy_check_partner(&p, hosted, others, &v), FG_EREFUSED);
    assert_string_equal(v.rule, "R3");
    assert_string_equal(v.message, TEXT_R3);
    set(&p, "sasl", "not-supported");
    set(&p, "dialback", "false");
    assert_int_equal(fg_policy_check_partner(&p, hosted, others, &v), FG_EREFUSED);
    assert_string_equal(v.rule, "R2");
    assert_string_equal(v.message, TEXT_R2);
    set(&p, "dialback", "true");
    assert_int_equal(fg_policy_check_partner(&p, hosted, others, &v), FG_EREFUSED);
    assert_string_equal(v.rule, "D2");
    fg_partner_clear(&p);
    mk(&p, "new.test", "new.test,fab-eu.test");
    assert_int_equal(fg_policy_check_partner(&p, hosted, others, &v), FG_EREFUSED);
    assert_string_equal(v.rule, "D3");
    fg_partner_clear(&p);

    /* A refusal carries no warnings; an accepted change with row 3 carries both. */
    mk(&p, "new.test", "");
    set(&p, "tls", "optional");
    set(&p, "sasl", "required");
    assert_int_equal(fg_policy_check_partner(&p, hosted, others, &v), 0);
    assert_string_equal(v.warnings[0], "W1");
    assert_string_equal(v.warnings[1], "W2");
    set(&p, "additional_domains", "fab-us.test");
    assert_int_equal(fg_policy_check_partner(&p, hosted, others, &v), FG_EREFUSED);
    assert_null(v.warnings[0]);
    fg_partner_clear(&p);

    /* Editing a partner: "others" excludes its own old version, so its domains are free. */
    struct fg_partner fab2;
    fg_partner_copy(&fab2, &fab);
    set(&fab2, "description", "edited");
    const struct fg_partner *others2[] = {&other, NULL};
    assert_int_equal(fg_policy_check_partner(&fab2, hosted, others2, &v), 0);
    fg_partner_clear(&fab2);

    fg_partner_clear(&fab);
    fg_partner_clear(&other);
}

static void test_admins(void **state)
{
    struct fg_verdict v;
    assert_int_equal(fg_policy_check_admins(0, &v), FG_EREFUSED);
    assert_string_equal(v.rule, "A1");
    assert_string_equal(v.message, "The last server-admin cannot be removed or demoted: add "
                                   "another server-admin first.");
    assert_int_equal(fg_policy_check_admins(1, &v), 0);
    assert_null(v.rule);
    assert_string_equal(v.message, "");
    assert_int_equal(fg_policy_check_admins(3, &v), 0);
}

static void expect_set_fails(struct fg_partner *p, const char *key, const char *value, int want_rc,
                             const char *want_err)
{
    char err[512] = "";
    struct fg_partner before;
    fg_partner_copy(&before, p);
    assert_int_equal(fg_partner_set_text(p, key, value, err, sizeof err), want_rc);
    if (want_err && strcmp(err, want_err) != 0 && !strstr(err, want_err))
        fail_msg("set %s=%s: error '%s' lacks '%s'", key, value, err, want_err);
    assert_true(fg_partner_equal(&before, p)); /* nothing changed */
    fg_partner_clear(&before);
}

static void test_set_text(void **state)
{
    struct fg_partner p;
    fg_partner_init(&p, "a.test");

    set(&p, "tls", "optional");
    assert_int_equal(p.tls, FG_NEG_OPTIONAL);
    set(&p, "sasl", "not-supported");
    assert_int_equal(p.sasl, FG_NEG_NOT_SUPPORTED);
    set(&p, "dialback", "no");
    assert_false(p.dialback);
    set(&p, "dialback", "on");
    assert_true(p.dialback);
    set(&p, "keepalive", "0");
    assert_false(p.keepalive);
    set(&p, "subdomains", "true");
    assert_true(p.subdomains);
    set(&p, "partner_type", "federated");
    assert_int_equal(p.type, FG_PT_FEDERATED);
    set(&p, "connection_limit", "1");
    assert_int_equal(p.connection_limit, 1);
    set(&p, "connection_limit", "65535");
    assert_int_equal(p.connection_limit, 65535);
    set(&p, "connection_limit", "default");
    assert_int_equal(p.connection_limit, 0);
    set(&p, "description", "Fabrikam, Inc. – Zürich");
    assert_string_equal(p.description, "Fabrikam, Inc. – Zürich");
    set(&p, "proxy_fqdn", "Proxy.Fab.test:5269");
    assert_string_equal(p.proxy_fqdn, "proxy.fab.test:5269");
    set(&p, "proxy_fqdn", "proxy.fab.test.");
    assert_string_equal(p.proxy_fqdn, "proxy.fab.test");
    set(&p, "proxy_fqdn", "");
    assert_string_equal(p.proxy_fqdn, "");

    /* Lists: normalised, spaces around items ignored, repeats dropped in order. */
    set(&p, "additional_domains", "Bücher.test, B.test ,c.test.,b.test");
    assert_int_equal(fg_strv_len(p.additional), 3);
    assert_string_equal(p.additional[0], "xn--bcher-kva.test");
    assert_string_equal(p.additional[1], "b.test");
    assert_string_equal(p.additional[2], "c.test");
    set(&p, "additional_domains", "");
    assert_int_equal(fg_strv_len(p.additional), 0);
    set(&p, "additional_domains", "b.test");

    expect_set_fails(&p, "tls", "maybe", FG_EINVAL,
                     "invalid value 'maybe' for tls: expected required, optional or "
                     "not-supported");
    expect_set_fails(&p, "sasl", "Required", FG_EINVAL,
                     "invalid value 'Required' for sasl: expected required, optional or "
                     "not-supported");
    expect_set_fails(&p, "dialback", "maybe", FG_EINVAL,
                     "invalid value 'maybe' for dialback: expected true or false");
    expect_set_fails(&p, "keepalive", "", FG_EINVAL, "for keepalive");
    expect_set_fails(&p, "subdomains", "2", FG_EINVAL, "for subdomains");
    expect_set_fails(&p, "partner_type", "public", FG_EINVAL,
                     "invalid value 'public' for partner_type: expected federated, "
                     "public-verified or public-unverified");
    expect_set_fails(&p, "connection_limit", "0", FG_EINVAL,
                     "invalid value '0' for connection_limit: expected a number from 1 to "
                     "65535, or default");
    expect_set_fails(&p, "connection_limit", "65536", FG_EINVAL, "connection_limit");
    expect_set_fails(&p, "connection_limit", "-1", FG_EINVAL, "connection_limit");
    expect_set_fails(&p, "connection_limit", "12abc", FG_EINVAL, "connection_limit");
    expect_set_fails(&p, "connection_limit", "", FG_EINVAL, "connection_limit");
    expect_set_fails(&p, "connection_limit", "99999999999999999999", FG_EINVAL, "connection_limit");
    expect_set_fails(&p, "additional_domains", "c.test,a..b", FG_EINVAL,
                     "invalid domain 'a..b' in additional_domains");
    expect_set_fails(&p, "additional_domains", "c.test,", FG_EINVAL, "additional_domains");
    expect_set_fails(&p, "additional_domains", "1.2.3.4", FG_EINVAL, "IP address");
    expect_set_fails(&p, "proxy_fqdn", "proxy.test:0", FG_EINVAL, "proxy_fqdn");
    expect_set_fails(&p, "proxy_fqdn", "proxy.test:65536", FG_EINVAL, "proxy_fqdn");
    expect_set_fails(&p, "proxy_fqdn", "proxy.test:", FG_EINVAL, "proxy_fqdn");
    expect_set_fails(&p, "proxy_fqdn", "proxy.test:http", FG_EINVAL, "proxy_fqdn");
    expect_set_fails(&p, "proxy_fqdn", ":5269", FG_EINVAL, "proxy_fqdn");
    expect_set_fails(&p, "proxy_fqdn", "a b:5269", FG_EINVAL, "proxy_fqdn");
    expect_set_fails(&p, "proxy_fqdn", "[::1]:5269", FG_EINVAL, "proxy_fqdn");
    expect_set_fails(&p, "domain", "b.test", FG_EINVAL, "domain cannot be changed");
    expect_set_fails(&p, "colour", "blue", FG_ENOTFOUND, "colour");
    fg_partner_clear(&p);
}

/* n copies of the UTF-8 character c. */
static char *repeat(const char *c, size_t n)
{
    size_t l = strlen(c);
    char *s = fg_malloc(l * n + 1);
    for (size_t i = 0; i < n; i++)
        memcpy(s + i * l, c, l);
    s[l * n] = '\0';
    return s;
}

static void test_check_fields(void **state)
{
    struct fg_partner p;
    fg_partner_init(&p, "a.test");
    char err[256];
    assert_int_equal(fg_policy_check_fields(&p, err, sizeof err), 0);

    /* Characters, not bytes: 1024 of a 2-, 3- or 4-byte character is fine. */
    const char *chars[] = {"a", "é", "€", "😀"};
    for (size_t i = 0; i < 4; i++) {
        fg_free(p.description);
        p.description = repeat(chars[i], 1024);
        assert_int_equal(fg_policy_check_fields(&p, err, sizeof err), 0);
        fg_free(p.description);
        p.description = repeat(chars[i], 1025);
        assert_int_equal(fg_policy_check_fields(&p, err, sizeof err), FG_EINVAL);
        assert_non_null(strstr(err, "description"));
        assert_non_null(strstr(err, "1024"));
        /* The setter applies the same limit. */
        char *ok = repeat(chars[i], 1024);
        fg_free(p.description);
        p.description = fg_strdup("");
        assert_int_equal(fg_partner_set_text(&p, "description", ok, err, sizeof err), 0);
        fg_free(ok);
        char *bad = repeat(chars[i], 1025);
        assert_int_equal(fg_partner_set_text(&p, "description", bad, err, sizeof err), FG_EINVAL);
        fg_free(bad);
    }
    /* Invalid UTF-8: a stray byte, a truncated sequence, an overlong form, a surrogate. */
    const char *bad_utf8[] = {"ab\xff", "ab\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80"};
    for (size_t i = 0; i < 5; i++) {
        fg_free(p.description);
        p.description = fg_strdup(bad_utf8[i]);
        assert_int_equal(fg_policy_check_fields(&p, err, sizeof err), FG_EINVAL);
        assert_non_null(strstr(err, "UTF-8"));
    }
    fg_free(p.description);
    p.description = fg_strdup("");

    const int limits_ok[] = {0, 1, 20, 65535};
    const int limits_bad[] = {-1, 65536, 1000000};
    for (size_t i = 0; i < 4; i++) {
        p.connection_limit = limits_ok[i];
        assert_int_equal(fg_policy_check_fields(&p, err, sizeof err), 0);
    }
    for (size_t i = 0; i < 3; i++) {
        p.connection_limit = limits_bad[i];
        assert_int_equal(fg_policy_check_fields(&p, err, sizeof err), FG_EINVAL);
        assert_non_null(strstr(err, "connection_limit"));
    }
    p.connection_limit = 0;

    const char *proxy_ok[] = {"", "proxy.test", "proxy.test:1", "proxy.test:65535",
                              "xn--bcher-kva.test:5269"};
    const char *proxy_bad[] = {"proxy.test:0", "proxy.test:65536", "proxy.test:",  ":5269",
                               "pro xy.test",  "1.2.3.4:5269",     "a.test:52:69", "-a.test"};
    for (size_t i = 0; i < sizeof proxy_ok / sizeof *proxy_ok; i++) {
        fg_free(p.proxy_fqdn);
        p.proxy_fqdn = fg_strdup(proxy_ok[i]);
        assert_int_equal(fg_policy_check_fields(&p, err, sizeof err), 0);
    }
    for (size_t i = 0; i < sizeof proxy_bad / sizeof *proxy_bad; i++) {
        fg_free(p.proxy_fqdn);
        p.proxy_fqdn = fg_strdup(proxy_bad[i]);
        assert_int_equal(fg_policy_check_fields(&p, err, sizeof err), FG_EINVAL);
        assert_non_null(strstr(err, "proxy_fqdn"));
    }
    fg_partner_clear(&p);
}

/* SPEC section 5, by hand. */
static const struct {
    const char *key;
    long def, min, max;
} gw_spec[] = {
    {"connection_limit", 1000, 1, 1000000},
    {"partner_connection_limit", 20, 1, 65535},
    {"keepalive_interval", 300, 10, 86400},
    {"stream_establishment_timeout", 60, 5, 600},
    {"stream_inactivity_timeout", 600, 30, 86400},
    {"subscription_refresh_interval", 28800, 600, 604800},
};

static void test_gateway(void **state)
{
    struct fg_gateway g;
    fg_gateway_defaults(&g);
    assert_int_equal(g.connection_limit, 1000);
    assert_int_equal(g.partner_connection_limit, 20);
    assert_int_equal(g.keepalive_interval, 300);
    assert_int_equal(g.stream_establishment_timeout, 60);
    assert_int_equal(g.stream_inactivity_timeout, 600);
    assert_int_equal(g.subscription_refresh_interval, 28800);
    assert_false(g.log_message_bodies);
    assert_string_equal(g.unlisted_domains, "block");
    assert_int_equal(fg_gateway_nkeys, 8);

    char err[256], out[64], num[32];
    for (size_t i = 0; i < sizeof gw_spec / sizeof gw_spec[0]; i++) {
        const char *k = gw_spec[i].key;
        snprintf(num, sizeof num, "%ld", gw_spec[i].def);
        assert_int_equal(fg_gateway_get_text(&g, k, out, sizeof out), 0);
        assert_string_equal(out, num);

        const long good[] = {gw_spec[i].min, gw_spec[i].max};
        const long bad[] = {gw_spec[i].min - 1, gw_spec[i].max + 1};
        for (int j = 0; j < 2; j++) {
            snprintf(num, sizeof num, "%ld", good[j]);
            assert_int_equal(fg_gateway_set_text(&g, k, num, err, sizeof err), 0);
            assert_int_equal(fg_gateway_get_text(&g, k, out, sizeof out), 0);
            assert_string_equal(out, num);
        }
        for (int j = 0; j < 2; j++) {
            snprintf(num, sizeof num, "%ld", bad[j]);
            err[0] = '\0';
            assert_int_equal(fg_gateway_set_text(&g, k, num, err, sizeof err), FG_EINVAL);
            char want[160];
            snprintf(want, sizeof want,
                     "invalid value '%s' for %s: expected an integer from %ld to %ld", num, k,
                     gw_spec[i].min, gw_spec[i].max);
            assert_string_equal(err, want);
        }
        assert_int_equal(fg_gateway_set_text(&g, k, "ten", err, sizeof err), FG_EINVAL);
        assert_int_equal(fg_gateway_set_text(&g, k, "", err, sizeof err), FG_EINVAL);
        assert_int_equal(fg_gateway_set_text(&g, k, " 60", err, sizeof err), FG_EINVAL);
    }
    /* The table agrees with the SPEC, key by key. */
    for (size_t i = 0; i < sizeof gw_spec / sizeof gw_spec[0]; i++) {
        assert_string_equal(fg_gateway_keys[i].name, gw_spec[i].key);
        assert_int_equal(fg_gateway_keys[i].kind, FG_GW_INT);
        assert_int_equal(fg_gateway_keys[i].def, gw_spec[i].def);
        assert_int_equal(fg_gateway_keys[i].min, gw_spec[i].min);
        assert_int_equal(fg_gateway_keys[i].max, gw_spec[i].max);
    }

    assert_int_equal(fg_gateway_set_text(&g, "log_message_bodies", "true", err, sizeof err), 0);
    assert_true(g.log_message_bodies);
    assert_int_equal(fg_gateway_get_text(&g, "log_message_bodies", out, sizeof out), 0);
    assert_string_equal(out, "true");
    assert_int_equal(fg_gateway_set_text(&g, "log_message_bodies", "maybe", err, sizeof err),
                     FG_EINVAL);
    assert_non_null(strstr(err, "log_message_bodies"));

    const char *unlisted_ok[] = {"block", "federated", "public-verified", "public-unverified"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(
            fg_gateway_set_text(&g, "unlisted_domains", unlisted_ok[i], err, sizeof err), 0);
        assert_int_equal(fg_gateway_get_text(&g, "unlisted_domains", out, sizeof out), 0);
        assert_string_equal(out, unlisted_ok[i]);
    }
    assert_int_equal(fg_gateway_set_text(&g, "unlisted_domains", "allow", err, sizeof err),
                     FG_EINVAL);
    assert_string_equal(err, "invalid value 'allow' for unlisted_domains: expected block, "
                             "federated, public-verified or public-unverified");
    assert_string_equal(g.unlisted_domains, "public-unverified");

    assert_int_equal(fg_gateway_set_text(&g, "dialback_secret", "x", err, sizeof err),
                     FG_ENOTFOUND);
    assert_non_null(strstr(err, "dialback_secret"));
    assert_int_equal(fg_gateway_set_text(&g, "keepalive-interval", "60", err, sizeof err),
                     FG_ENOTFOUND);
    assert_int_equal(fg_gateway_get_text(&g, "nope", out, sizeof out), FG_ENOTFOUND);
    char tiny[3];
    assert_int_equal(fg_gateway_get_text(&g, "unlisted_domains", tiny, sizeof tiny), FG_ELIMIT);

    fg_gateway_defaults(&g);
    json_t *j = fg_gateway_to_json(&g);
    assert_int_equal(json_object_size(j), 8);
    assert_int_equal(json_integer_value(json_object_get(j, "keepalive_interval")), 300);
    assert_true(json_is_false(json_object_get(j, "log_message_bodies")));
    assert_string_equal(json_string_value(json_object_get(j, "unlisted_domains")), "block");
    assert_null(json_object_get(j, "dialback_secret"));
    json_decref(j);
}

/* ---- JSON ------------------------------------------------------------------------ */

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (!j)
        fail_msg("bad test JSON: %s", e.text);
    return j;
}

static int apply(struct fg_partner *p, const char *text, bool replace, char *err, size_t errlen,
                 const char **field)
{
    json_t *j = parse(text);
    int rc = fg_partner_apply_json(p, j, replace, err, errlen, field);
    json_decref(j);
    return rc;
}

static void test_json_out(void **state)
{
    struct fg_partner p;
    fg_partner_init(&p, "xn--bcher-kva.test");
    set(&p, "additional_domains", "xn--fa-hia.de,b.test");
    json_t *j = fg_partner_to_json(&p);
    char *s = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
    assert_string_equal(
        s, "{\"domain\":\"xn--bcher-kva.test\",\"domain_unicode\":\"b\\u00FCcher.test\","
           "\"description\":\"\",\"additional_domains\":[\"xn--fa-hia.de\",\"b.test\"],"
           "\"additional_domains_unicode\":[\"fa\\u00DF.de\",\"b.test\"],"
           "\"subdomains\":false,\"partner_type\":\"public-unverified\",\"tls\":\"required\","
           "\"sasl\":\"optional\",\"dialback\":true,\"keepalive\":true,"
           "\"connection_limit\":null,\"proxy_fqdn\":\"\"}");
    free(s);
    json_decref(j);
    p.connection_limit = 42;
    j = fg_partner_to_json(&p);
    assert_int_equal(json_integer_value(json_object_get(j, "connection_limit")), 42);
    json_decref(j);
    fg_partner_clear(&p);
}

static void test_json_round_trip(void **state)
{
    struct fg_partner p, q;
    fg_partner_init(&p, "fab.test");
    set(&p, "description", "Fabrikam «EU»");
    set(&p, "additional_domains", "fab-eu.test,bücher.test");
    set(&p, "subdomains", "true");
    set(&p, "partner_type", "federated");
    set(&p, "tls", "optional");
    set(&p, "sasl", "required");
    set(&p, "dialback", "false");
    set(&p, "keepalive", "false");
    set(&p, "connection_limit", "7");
    set(&p, "proxy_fqdn", "proxy.fab.test:5270");
    json_t *j = fg_partner_to_json(&p);
    char *text = json_dumps(j, 0);
    json_decref(j);

    char err[256];
    const char *field = "unset";
    fg_partner_init(&q, "fab.test");
    /* The output, read-only keys and domain included, is a valid PUT body. */
    assert_int_equal(apply(&q, text, true, err, sizeof err, &field), 0);
    assert_null(field);
    assert_true(fg_partner_equal(&p, &q));
    fg_partner_clear(&q);
    fg_partner_init(&q, "fab.test");
    assert_int_equal(apply(&q, text, false, err, sizeof err, &field), 0);
    assert_true(fg_partner_equal(&p, &q));
    free(text);
    fg_partner_clear(&q);
    fg_partner_clear(&p);
}

static void test_json_put_patch(void **state)
{
    struct fg_partner p, def;
    char err[256];
    const char *field;
    fg_partner_init(&def, "a.test");
    fg_partner_init(&p, "a.test");
    set(&p, "description", "old");
    set(&p, "tls", "optional");
    set(&p, "additional_domains", "b.test");
    set(&p, "connection_limit", "9");

    /* PATCH touches only what is given. */
    assert_int_equal(apply(&p, "{\"description\": \"new\", \"keepalive\": false}", false, err,
                           sizeof err, &field),
                     0);
    assert_string_equal(p.description, "new");
    assert_false(p.keepalive);
    assert_int_equal(p.tls, FG_NEG_OPTIONAL);
    assert_string_equal(p.additional[0], "b.test");
    assert_int_equal(p.connection_limit, 9);

    /* PATCH null resets to the default. */
    assert_int_equal(apply(&p,
                           "{\"tls\": null, \"additional_domains\": null, \"connection_limit\": "
                           "null, \"keepalive\": null, \"description\": null, \"proxy_fqdn\": "
                           "null, \"partner_type\": null, \"sasl\": null, \"dialback\": null, "
                           "\"subdomains\": null}",
                           false, err, sizeof err, &field),
                     0);
    assert_true(fg_partner_equal(&p, &def));

    /* PUT: everything not given takes its default. */
    set(&p, "description", "old");
    set(&p, "tls", "optional");
    set(&p, "additional_domains", "b.test");
    assert_int_equal(
        apply(&p, "{\"sasl\": \"required\", \"dialback\": false}", true, err, sizeof err, &field),
        0);
    assert_string_equal(p.description, "");
    assert_int_equal(p.tls, FG_NEG_REQUIRED);
    assert_int_equal(fg_strv_len(p.additional), 0);
    assert_int_equal(p.sasl, FG_NEG_REQUIRED);
    assert_false(p.dialback);
    assert_int_equal(apply(&p, "{}", true, err, sizeof err, &field), 0);
    assert_true(fg_partner_equal(&p, &def));

    /* Domains in a body are normalised and repeats dropped; domain may repeat itself. */
    assert_int_equal(apply(&p,
                           "{\"domain\": \"A.Test.\", \"additional_domains\": [\"Bücher.test\", "
                           "\"c.test\", \"xn--bcher-kva.test\"], \"proxy_fqdn\": "
                           "\"PROXY.test:5269\", \"connection_limit\": 65535}",
                           false, err, sizeof err, &field),
                     0);
    assert_int_equal(fg_strv_len(p.additional), 2);
    assert_string_equal(p.additional[0], "xn--bcher-kva.test");
    assert_string_equal(p.additional[1], "c.test");
    assert_string_equal(p.proxy_fqdn, "proxy.test:5269");
    assert_int_equal(p.connection_limit, 65535);

    fg_partner_clear(&p);
    fg_partner_clear(&def);
}

static void expect_json_error(const char *body, bool replace, const char *want_field,
                              const char *want_err)
{
    struct fg_partner p, before;
    fg_partner_init(&p, "a.test");
    set(&p, "description", "keep");
    fg_partner_copy(&before, &p);
    char err[256] = "";
    const char *field = NULL;
    assert_int_equal(apply(&p, body, replace, err, sizeof err, &field), FG_EINVAL);
    if (!want_field)
        assert_null(field);
    else {
        assert_non_null(field);
        assert_string_equal(field, want_field);
    }
    if (!strstr(err, want_err))
        fail_msg("%s: error '%s' lacks '%s'", body, err, want_err);
    assert_true(fg_partner_equal(&p, &before)); /* a refused body changes nothing */
    fg_partner_clear(&before);
    fg_partner_clear(&p);
}

static void test_json_errors(void **state)
{
    for (int replace = 0; replace < 2; replace++) {
        expect_json_error("{\"tls\": 5}", replace, "tls", "tls");
        expect_json_error("{\"tls\": \"sometimes\"}", replace, "tls",
                          "invalid value 'sometimes' for tls: expected required, optional or "
                          "not-supported");
        expect_json_error("{\"dialback\": \"yes\"}", replace, "dialback",
                          "dialback must be true or false");
        expect_json_error("{\"keepalive\": 1}", replace, "keepalive", "keepalive");
        expect_json_error("{\"subdomains\": []}", replace, "subdomains", "subdomains");
        expect_json_error("{\"partner_type\": \"open\"}", replace, "partner_type", "partner_type");
        expect_json_error("{\"description\": 3}", replace, "description", "description");
        expect_json_error("{\"connection_limit\": 0}", replace, "connection_limit",
                          "connection_limit");
        expect_json_error("{\"connection_limit\": 65536}", replace, "connection_limit",
                          "connection_limit");
        expect_json_error("{\"connection_limit\": \"20\"}", replace, "connection_limit",
                          "connection_limit");
        expect_json_error("{\"connection_limit\": 2.5}", replace, "connection_limit",
                          "connection_limit");
        expect_json_error("{\"additional_domains\": \"b.test\"}", replace, "additional_domains",
                          "array");
        expect_json_error("{\"additional_domains\": [\"b.test\", 7]}", replace,
                          "additional_domains", "array");
        expect_json_error("{\"additional_domains\": [\"b..test\"]}", replace, "additional_domains",
                          "invalid domain 'b..test'");
        expect_json_error("{\"proxy_fqdn\": \"p.test:0\"}", replace, "proxy_fqdn", "proxy_fqdn");
        expect_json_error("{\"domain\": \"b.test\"}", replace, "domain",
                          "domain cannot be changed");
        expect_json_error("{\"domain\": null}", replace, "domain", "domain cannot be changed");
        expect_json_error("{\"domain\": 1}", replace, "domain", "domain cannot be changed");
        expect_json_error("{\"description\": \"ok\", \"colour\": \"blue\"}", replace, "colour",
                          "unknown key 'colour'");
        /* A valid key before a bad one is not applied either. */
        expect_json_error("{\"description\": \"changed\", \"tls\": 5}", replace, "tls", "tls");
    }
    expect_json_error("[1, 2]", true, NULL, "object");

    char *long_desc = fg_malloc(2000);
    memcpy(long_desc, "{\"description\": \"", 17);
    memset(long_desc + 17, 'x', 1025);
    memcpy(long_desc + 17 + 1025, "\"}", 3);
    expect_json_error(long_desc, false, "description", "1024");
    fg_free(long_desc);
}

static void test_json_misc(void **state)
{
    struct fg_verdict v;
    struct fg_partner p;
    fg_partner_init(&p, "a.test");
    set(&p, "tls", "optional");
    set(&p, "sasl", "required");
    assert_int_equal(fg_policy_check_partner(&p, NULL, NULL, &v), 0);
    json_t *w = fg_warnings_to_json(&v);
    char *s = json_dumps(w, JSON_COMPACT);
    char want[1024];
    snprintf(want, sizeof want,
             "[{\"rule\":\"W1\",\"message\":\"%s\"},{\"rule\":\"W2\","
             "\"message\":\"%s\"}]",
             TEXT_W1, TEXT_W2);
    assert_string_equal(s, want);
    free(s);
    json_decref(w);

    set(&p, "sasl", "optional");
    set(&p, "tls", "required");
    assert_int_equal(fg_policy_check_partner(&p, NULL, NULL, &v), 0);
    w = fg_warnings_to_json(&v);
    assert_int_equal(json_array_size(w), 0);
    json_decref(w);

    set(&p, "tls", "not-supported");
    assert_int_equal(fg_policy_check_partner(&p, NULL, NULL, &v), FG_EREFUSED);
    json_t *e = fg_error_to_json("refused", v.rule, v.message, v.fields);
    s = json_dumps(e, JSON_COMPACT);
    snprintf(want, sizeof want,
             "{\"error\":{\"code\":\"refused\",\"rule\":\"R3\",\"message\":"
             "\"%s\",\"fields\":[\"tls\",\"sasl\"]}}",
             TEXT_R3);
    assert_string_equal(s, want);
    free(s);
    json_decref(e);

    e = fg_error_to_json("invalid_value", NULL, "bad \xff value", NULL);
    s = json_dumps(e, JSON_COMPACT);
    assert_string_equal(s, "{\"error\":{\"code\":\"invalid_value\",\"rule\":null,\"message\":"
                           "\"bad ? value\",\"fields\":[]}}");
    free(s);
    json_decref(e);
    fg_partner_clear(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),        cmocka_unit_test(test_names),
        cmocka_unit_test(test_rule_texts),      cmocka_unit_test(test_matrix),
        cmocka_unit_test(test_domain_rules),    cmocka_unit_test(test_admins),
        cmocka_unit_test(test_set_text),        cmocka_unit_test(test_check_fields),
        cmocka_unit_test(test_gateway),         cmocka_unit_test(test_json_out),
        cmocka_unit_test(test_json_round_trip), cmocka_unit_test(test_json_put_patch),
        cmocka_unit_test(test_json_errors),     cmocka_unit_test(test_json_misc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
