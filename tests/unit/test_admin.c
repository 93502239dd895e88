/* test_admin.c - the admin listener's pure parts: percent-decoding, media types, the
 * constant-time comparison, in-memory sessions (expiry, logout, per-user drop) and the
 * login rate limiter. The HTTP routes are tested against the real daemon in tests/api. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "admin/auth.h"
#include "admin/http.h"
#include "core/err.h"

static void test_pct_decode(void **state)
{
    char out[16];
    assert_int_equal(fg_admin_pct_decode("a%20b", 5, out, sizeof out), 3);
    assert_string_equal(out, "a b");
    assert_int_equal(fg_admin_pct_decode("b%C3%BCcher", 11, out, sizeof out), 7);
    assert_string_equal(out, "b\xc3\xbc"
                             "cher");
    assert_int_equal(fg_admin_pct_decode("x/y", 1, out, sizeof out), 1); /* length is the truth */
    assert_string_equal(out, "x");
    assert_int_equal(fg_admin_pct_decode("%zz", 3, out, sizeof out), -1);
    assert_int_equal(fg_admin_pct_decode("%2", 2, out, sizeof out), -1);
    assert_int_equal(fg_admin_pct_decode("%", 1, out, sizeof out), -1);
    assert_int_equal(fg_admin_pct_decode("a%00b", 5, out, sizeof out), -1);
    assert_int_equal(fg_admin_pct_decode("0123456789abcdef", 16, out, sizeof out), -1);
    assert_int_equal(fg_admin_pct_decode("", 0, out, sizeof out), 0);
}

static void test_media_type(void **state)
{
    static const char *const json[] = {"application/json", NULL};
    static const char *const patch[] = {"application/json", "application/merge-patch+json", NULL};
    assert_true(fg_admin_media_type_is("application/json", json));
    assert_true(fg_admin_media_type_is(" Application/JSON ; charset=utf-8", json));
    assert_false(fg_admin_media_type_is("application/jsonx", json));
    assert_false(fg_admin_media_type_is("text/plain", json));
    assert_false(fg_admin_media_type_is("application/merge-patch+json", json));
    assert_true(fg_admin_media_type_is("application/merge-patch+json", patch));
    assert_false(fg_admin_media_type_is(NULL, json));
    assert_false(fg_admin_media_type_is("", json));
}

static void test_secret_equal(void **state)
{
    assert_true(fg_admin_secret_equal("abc", "abc"));
    assert_false(fg_admin_secret_equal("abc", "abd"));
    assert_false(fg_admin_secret_equal("abc", "ab"));
    assert_false(fg_admin_secret_equal("", "a"));
    assert_true(fg_admin_secret_equal("", ""));
}

static void init(int64_t idle, int64_t max, int64_t window, int failures, size_t sessions)
{
    struct fg_admin_auth_limits l;
    fg_admin_auth_defaults(&l);
    l.session_idle = idle;
    l.session_max = max;
    l.login_window = window;
    l.login_failures = failures;
    l.max_sessions = sessions;
    fg_admin_auth_init(&l);
}

static void test_sessions(void **state)
{
    init(60, 60, 60, 5, 8);
    char sid[FG_ADMIN_SID_LEN + 1], sid2[FG_ADMIN_SID_LEN + 1], csrf[FG_ADMIN_CSRF_LEN + 1],
        csrf2[FG_ADMIN_CSRF_LEN + 1];
    struct fg_admin_session s;
    assert_int_equal(fg_admin_session_create("boss", sid, csrf), FG_OK);
    assert_int_equal(strlen(sid), FG_ADMIN_SID_LEN);
    assert_int_equal(fg_admin_session_create("boss", sid2, csrf2), FG_OK);
    assert_string_not_equal(sid, sid2);
    assert_string_not_equal(csrf, csrf2);
    assert_int_equal(fg_admin_session_get(sid, &s), FG_OK);
    assert_string_equal(s.user, "boss");
    assert_string_equal(s.csrf, csrf);
    assert_int_equal(fg_admin_session_count(), 2);
    assert_int_equal(fg_admin_session_get("nope", &s), FG_ENOTFOUND);
    fg_admin_session_drop(sid);
    assert_int_equal(fg_admin_session_get(sid, &s), FG_ENOTFOUND);
    assert_int_equal(fg_admin_session_get(sid2, &s), FG_OK);
    fg_admin_session_drop_user("boss", sid2); /* keeps the named one */
    assert_int_equal(fg_admin_session_get(sid2, &s), FG_OK);
    fg_admin_session_drop_user("boss", NULL);
    assert_int_equal(fg_admin_session_get(sid2, &s), FG_ENOTFOUND);
    assert_int_equal(fg_admin_session_count(), 0);
    fg_admin_auth_reset();
}

static void test_session_table_full(void **state)
{
    init(60, 60, 60, 5, 2);
    char a[FG_ADMIN_SID_LEN + 1], b[FG_ADMIN_SID_LEN + 1], c[FG_ADMIN_SID_LEN + 1];
    char csrf[FG_ADMIN_CSRF_LEN + 1];
    struct fg_admin_session s;
    assert_int_equal(fg_admin_session_create("u1", a, csrf), FG_OK);
    usleep(2000);
    assert_int_equal(fg_admin_session_create("u2", b, csrf), FG_OK);
    usleep(2000);
    assert_int_equal(fg_admin_session_get(a, &s), FG_OK); /* a is now the most recent */
    assert_int_equal(fg_admin_session_create("u3", c, csrf), FG_OK);
    assert_int_equal(fg_admin_session_get(b, &s), FG_ENOTFOUND); /* least recently used */
    assert_int_equal(fg_admin_session_get(a, &s), FG_OK);
    assert_int_equal(fg_admin_session_get(c, &s), FG_OK);
    fg_admin_auth_reset();
}

static void test_session_expiry(void **state)
{
    init(1, 2, 60, 5, 8);
    char sid[FG_ADMIN_SID_LEN + 1], csrf[FG_ADMIN_CSRF_LEN + 1];
    struct fg_admin_session s;
    assert_int_equal(fg_admin_session_create("boss", sid, csrf), FG_OK);
    usleep(600 * 1000);
    assert_int_equal(fg_admin_session_get(sid, &s), FG_OK);
    usleep(600 * 1000);
    assert_int_equal(fg_admin_session_get(sid, &s), FG_OK); /* 1.2 s old, used 0.6 s ago */
    usleep(900 * 1000);
    assert_int_equal(fg_admin_session_get(sid, &s), FG_ENOTFOUND); /* over the 2 s max */
    assert_int_equal(fg_admin_session_create("boss", sid, csrf), FG_OK);
    usleep(1100 * 1000);
    assert_int_equal(fg_admin_session_get(sid, &s), FG_ENOTFOUND); /* idle for 1.1 s */
    fg_admin_auth_reset();
}

static void test_rate_limit(void **state)
{
    init(60, 60, 1, 3, 8);
    for (int i = 0; i < 3; i++) {
        assert_false(fg_admin_login_limited("10.0.0.1", "boss"));
        fg_admin_login_failed("10.0.0.1", "boss");
    }
    assert_true(fg_admin_login_limited("10.0.0.1", "boss"));
    assert_true(fg_admin_login_limited("10.0.0.1", "other")); /* the address */
    assert_true(fg_admin_login_limited("10.0.0.2", "boss"));  /* the account */
    assert_false(fg_admin_login_limited("10.0.0.2", "other"));
    fg_admin_login_succeeded("boss"); /* clears the account, not the address */
    assert_false(fg_admin_login_limited("10.0.0.2", "boss"));
    assert_true(fg_admin_login_limited("10.0.0.1", "other"));
    usleep(1100 * 1000);
    assert_false(fg_admin_login_limited("10.0.0.1", "other")); /* the window has passed */
    fg_admin_auth_reset();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pct_decode),         cmocka_unit_test(test_media_type),
        cmocka_unit_test(test_secret_equal),       cmocka_unit_test(test_sessions),
        cmocka_unit_test(test_session_table_full), cmocka_unit_test(test_session_expiry),
        cmocka_unit_test(test_rate_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
