/* test_domain.c - domain-name normalisation (SPEC section 1): valid and invalid names,
 * IDN in both directions, case, trailing dot, length limits and fg_domain_within. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/alloc.h"
#include "core/err.h"
#include "policy/policy.h"

/* Builds a name from labels of the given lengths ("aaa.bbb..."); fg_free the result. */
static char *name_of(const size_t *lens, size_t n)
{
    char *s = fg_malloc(1024);
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (i)
            s[at++] = '.';
        memset(s + at, 'a' + (int)(i % 26), lens[i]);
        at += lens[i];
    }
    s[at] = '\0';
    return s;
}

static void expect_ok(const char *in, const char *want)
{
    char out[FG_DOMAIN_MAX + 1];
    const char *why = "unset";
    int rc = fg_domain_normalize(in, out, sizeof out, &why);
    if (rc != 0)
        print_error("'%s' refused: %s\n", in, why ? why : "(null)");
    assert_int_equal(rc, 0);
    assert_string_equal(out, want);
}

static void expect_bad(const char *in, const char *why_part)
{
    char out[FG_DOMAIN_MAX + 1];
    const char *why = NULL;
    int rc = fg_domain_normalize(in, out, sizeof out, &why);
    if (rc == 0)
        print_error("'%s' accepted as '%s'\n", in ? in : "(null)", out);
    assert_int_equal(rc, FG_EINVAL);
    assert_non_null(why);
    if (why_part && !strstr(why, why_part))
        print_error("'%s': reason '%s' lacks '%s'\n", in ? in : "(null)", why, why_part);
    if (why_part)
        assert_non_null(strstr(why, why_part));
}

static void test_valid_ascii(void **state)
{
    expect_ok("example.test", "example.test");
    expect_ok("EXAMPLE.Test", "example.test");
    expect_ok("a.test.", "a.test");
    expect_ok("Conference.A-B.test.", "conference.a-b.test");
    expect_ok("localhost", "localhost");
    expect_ok("123.test", "123.test");
    expect_ok("a1-b2.c3.test", "a1-b2.c3.test");
    /* Hyphens in positions 3 and 4 of a plain ASCII label: a valid host name. */
    expect_ok("r3--sn-ab.Example.test", "r3--sn-ab.example.test");
}

static void test_valid_idn(void **state)
{
    expect_ok("Bücher.Test", "xn--bcher-kva.test");
    expect_ok("bücher.test.", "xn--bcher-kva.test");
    expect_ok("XN--BCHER-KVA.test", "xn--bcher-kva.test");
    expect_ok("xn--bcher-kva.test", "xn--bcher-kva.test");
    /* Non-transitional: sharp s stays (transitional processing would give fass.de). */
    expect_ok("faß.de", "xn--fa-hia.de");
    /* UTS-46 mapping: full-width letters and the ideographic full stop. */
    expect_ok("\xef\xbc\xa1\xef\xbc\xa2\xef\xbc\xa3.test", "abc.test");
    expect_ok("a。b.test", "a.b.test");
    expect_ok("日本語.test", "xn--wgv71a119e.test");
}

static void test_lengths(void **state)
{
    const size_t l63[] = {63, 4};
    const size_t l64[] = {64, 4};
    const size_t n253[] = {63, 63, 63, 61};
    const size_t n254[] = {63, 63, 63, 62};
    char *s = name_of(l63, 2);
    expect_ok(s, s);
    fg_free(s);
    s = name_of(l64, 2);
    expect_bad(s, "63 octets");
    fg_free(s);

    s = name_of(n253, 4);
    assert_int_equal(strlen(s), 253);
    expect_ok(s, s);
    /* A trailing dot does not count against the 253. */
    char *dotted = fg_asprintf("%s.", s);
    expect_ok(dotted, s);
    fg_free(dotted);
    fg_free(s);

    s = name_of(n254, 4);
    assert_int_equal(strlen(s), 254);
    expect_bad(s, "253 octets");
    fg_free(s);

    /* The limit applies after conversion: 63 octets as an A-label, not as typed. Here
     * 62 octets typed become "xn--" + 60 letters + "-" + the encoded u-umlaut. */
    char ulabel[256];
    memset(ulabel, 'a', 60);
    memcpy(ulabel + 60, "ü.test", sizeof "ü.test");
    assert_int_equal(strlen(ulabel), 62 + 5);
    expect_bad(ulabel, "63 octets");

    char huge[5000];
    memset(huge, 'a', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    expect_bad(huge, "253 octets");
}

static void test_invalid(void **state)
{
    expect_bad(NULL, "empty");
    expect_bad("", "empty");
    expect_bad(".", "empty");
    expect_bad("a..b.test", "empty label");
    expect_bad(".a.test", "empty label");
    expect_bad("a.test..", "empty label");
    expect_bad("-a.test", "hyphen");
    expect_bad("a-.test", "hyphen");
    expect_bad("a.-test", "hyphen");
    expect_bad("a.test-", "hyphen");
    expect_bad("1.2.3.4", "IP address");
    expect_bad("1.2.3.4.", "IP address");
    expect_bad("127.1", "IP address");
    expect_bad("0x7f.0.0.1", "IP address");
    expect_bad("::1", "IP address");
    expect_bad("[::1]", "IP address");
    expect_bad("fe80::1", "IP address");
    expect_bad("[2001:db8::1]", "IP address");
    expect_bad("a.123", "all digits");
    expect_bad("a b.test", "letters, digits");
    expect_bad("foo_bar.test", "letters, digits");
    expect_bad("a$b.test", "letters, digits");
    expect_bad("a/b.test", "letters, digits");
    expect_bad("a@b.test", "letters, digits");
    expect_bad("xn--.test", "xn--");
    expect_bad("xn--zzzzzz.test", "xn--");
    expect_bad("xn--a.test", "xn--");
    expect_bad("XN--ABC-.test", "xn--");
    /* Valid Punycode whose U-label ("g--" + U+0384) would not encode back to it. */
    expect_bad("xn--g---lsc.test", "xn--");
    expect_bad("\xe2\x98\x83.test", "not allowed"); /* snowman: IDNA2008 disallows it */
    expect_bad("\xff.test", NULL);
    expect_bad("a\xc3.test", NULL);
    expect_bad("ü-.test", NULL);
}

static void test_small_buffer(void **state)
{
    char out[8];
    const char *why = NULL;
    assert_int_equal(fg_domain_normalize("example.test", out, sizeof out, &why), FG_EINVAL);
    assert_non_null(why);
    /* why may be NULL when the caller does not want a reason. */
    char big[FG_DOMAIN_MAX + 1];
    assert_int_equal(fg_domain_normalize("a..b", big, sizeof big, NULL), FG_EINVAL);
    assert_int_equal(fg_domain_normalize("a.b", big, sizeof big, NULL), 0);
}

static void expect_unicode(const char *alabel, const char *want)
{
    char *u = fg_domain_to_unicode(alabel);
    assert_string_equal(u, want);
    fg_free(u);
}

static void test_to_unicode(void **state)
{
    expect_unicode("xn--bcher-kva.test", "bücher.test");
    expect_unicode("example.test", "example.test");
    expect_unicode("xn--fa-hia.de", "faß.de");
    expect_unicode("conference.xn--wgv71a119e.test", "conference.日本語.test");
    /* Not decodable: the input comes back unchanged. */
    expect_unicode("xn--zzzzzz.test", "xn--zzzzzz.test");
    expect_unicode("", "");

    /* Both directions agree. */
    const char *names[] = {"Bücher.Test", "faß.de", "日本語.test", "ΣΊΣΥΦΟΣ.test"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char a[FG_DOMAIN_MAX + 1], b[FG_DOMAIN_MAX + 1];
        assert_int_equal(fg_domain_normalize(names[i], a, sizeof a, NULL), 0);
        char *u = fg_domain_to_unicode(a);
        assert_int_equal(fg_domain_normalize(u, b, sizeof b, NULL), 0);
        assert_string_equal(a, b);
        fg_free(u);
    }
}

static void test_within(void **state)
{
    assert_true(fg_domain_within("a.test", "a.test"));
    assert_true(fg_domain_within("conference.a.test", "a.test"));
    assert_true(fg_domain_within("x.y.a.test", "a.test"));
    assert_false(fg_domain_within("xa.test", "a.test"));
    assert_false(fg_domain_within("a.test", "conference.a.test"));
    assert_false(fg_domain_within("b.test", "a.test"));
    assert_false(fg_domain_within("a.test", ""));
    assert_false(fg_domain_within(NULL, "a.test"));
    assert_false(fg_domain_within("a.test", NULL));
    assert_true(fg_domain_within("muc.xn--bcher-kva.test", "xn--bcher-kva.test"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_ascii),  cmocka_unit_test(test_valid_idn),
        cmocka_unit_test(test_lengths),      cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_small_buffer), cmocka_unit_test(test_to_unicode),
        cmocka_unit_test(test_within),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
