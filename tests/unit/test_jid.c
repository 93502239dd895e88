/* test_jid.c - preparation of local account JIDs (fg_user_jid_prepare), the rule shared
 * by fedgatectl and the HTTP API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/err.h"
#include "policy/policy.h"

static char *hosted[] = {"home.test", "xn--bcher-kva.test", NULL};

static void test_good(void **state)
{
    (void)state;
    char out[3072];
    const char *why;
    assert_int_equal(fg_user_jid_prepare("Alice@HOME.test.", hosted, out, sizeof out, &why),
                     FG_OK);
    assert_string_equal(out, "alice@home.test");
    assert_int_equal(fg_user_jid_prepare("bob@Bücher.test", hosted, out, sizeof out, &why),
                     FG_OK);
    assert_string_equal(out, "bob@xn--bcher-kva.test");
    char big[1100];
    memset(big, 'a', 1023);
    strcpy(big + 1023, "@home.test");
    assert_int_equal(fg_user_jid_prepare(big, hosted, out, sizeof out, &why), FG_OK);
}

static void test_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "home.test",        "@home.test",      "a b@home.test",   "a:b@home.test",
        "a<b@home.test",    "a&b@home.test",   "a\"b@home.test",  "a'b@home.test",
        "a@home.test/res",  "a@other.test",    "a@bad..test",     "a@b@home.test",
        "a\x01@home.test",
    };
    char out[3072];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        if (fg_user_jid_prepare(bad[i], hosted, out, sizeof out, &why) != FG_EINVAL)
            fail_msg("accepted '%s'", bad[i]);
        assert_non_null(why);
    }
    char big[1100];
    memset(big, 'a', 1024);
    strcpy(big + 1024, "@home.test");
    const char *why = NULL;
    assert_int_equal(fg_user_jid_prepare(big, hosted, out, sizeof out, &why), FG_EINVAL);
    assert_int_equal(fg_user_jid_prepare("a@home.test", hosted, out, 5, &why), FG_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_good), cmocka_unit_test(test_bad)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
