/* test_config.c - the configuration reader: defaults, every key, relative paths, and the
 * errors that name file, line and key; also the key=value log line format and RFC 3339
 * time parsing, which the CLI and the daemon rely on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"

static char dir[256];

static const char *write_conf(const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/fedgate.conf", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/fg-test-config-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static void test_defaults_and_relative_paths(void **state)
{
    struct fg_config c;
    char err[512];
    const char *p = write_conf("[server]\ndomains = Example.TEST., Bücher.test\n");
    assert_int_equal(fg_config_load(p, &c, err, sizeof err), FG_OK);
    assert_string_equal(c.domains[0], "example.test");
    assert_string_equal(c.domains[1], "xn--bcher-kva.test");
    assert_null(c.domains[2]);
    assert_string_equal(c.store, "sqlite:var/fedgate.db");
    char want[512];
    snprintf(want, sizeof want, "%s/var", dir);
    assert_string_equal(c.state_dir, want);
    snprintf(want, sizeof want, "%s/var/tls", dir);
    assert_string_equal(c.cert_dir, want);
    assert_string_equal(c.listen_c2s, "[::]:5222");
    assert_string_equal(c.listen_c2s_tls, "[::]:5223");
    assert_string_equal(c.listen_s2s, "[::]:5269");
    assert_string_equal(c.listen_s2s_tls, "[::]:5270");
    assert_string_equal(c.listen_admin, "127.0.0.1:5280");
    assert_null(c.ca_file);
    assert_null(c.log_file);
    assert_null(c.dns_resolver);
    assert_true(c.c2s_require_tls);
    assert_int_equal(c.c2s_idle_timeout, 600);
    assert_int_equal(c.max_stanza_size, 262144);
    assert_int_equal(c.max_xml_depth, 32);
    assert_int_equal(c.max_buffered, 1048576);
    assert_int_equal(c.auth_attempts, 3);
    assert_int_equal(c.log_level, FG_LOG_INFO);
    fg_config_free(&c);
}

static void test_every_key(void **state)
{
    struct fg_config c;
    char err[512];
    const char *p = write_conf(
        "; a comment\n[server]\ndomains = a.test\nstore = postgresql://u@h/db ; inline\n"
        "state_dir = /srv/fg\nlog_level = debug\nlog_file = fg.log\n"
        "[listen]\nc2s = off\nc2s_tls = 127.0.0.2:5223\ns2s = [::1]:5269\ns2s_tls = off\n"
        "admin = 127.0.0.1:8080\n[tls]\ncert_dir = /etc/fg/tls\nca_file = ca.pem\n"
        "[c2s]\nrequire_tls = false\nidle_timeout = 30\n"
        "[limits]\nmax_stanza_size = 4096\nmax_xml_depth = 8\nmax_buffered = 8192\n"
        "auth_attempts = 5\n[dns]\nresolver = 127.0.0.1@5353\n");
    assert_int_equal(fg_config_load(p, &c, err, sizeof err), FG_OK);
    assert_string_equal(c.store, "postgresql://u@h/db");
    assert_string_equal(c.state_dir, "/srv/fg");
    assert_int_equal(c.log_level, FG_LOG_DEBUG);
    char want[512];
    snprintf(want, sizeof want, "%s/fg.log", dir);
    assert_string_equal(c.log_file, want);
    assert_null(c.listen_c2s);
    assert_string_equal(c.listen_c2s_tls, "127.0.0.2:5223");
    assert_string_equal(c.listen_s2s, "[::1]:5269");
    assert_null(c.listen_s2s_tls);
    assert_string_equal(c.cert_dir, "/etc/fg/tls");
    snprintf(want, sizeof want, "%s/ca.pem", dir);
    assert_string_equal(c.ca_file, want);
    assert_false(c.c2s_require_tls);
    assert_int_equal(c.c2s_idle_timeout, 30);
    assert_int_equal(c.max_stanza_size, 4096);
    assert_int_equal(c.max_xml_depth, 8);
    assert_int_equal(c.max_buffered, 8192);
    assert_int_equal(c.auth_attempts, 5);
    assert_string_equal(c.dns_resolver, "127.0.0.1@5353");
    fg_config_free(&c);
}

/* Many hosted domains: libinih cuts lines at 200 characters, so the list may continue on
 * indented lines or repeat the key; both add to it (duplicates once). A line too long for
 * the parser is an error that says what to do, never a silent cut. */
static void test_long_domain_lists(void **state)
{
    struct fg_config c;
    char err[512] = "";
    const char *p = write_conf("[server]\ndomains = a.test, b.test\n    c.test, d.test\n"
                               "domains = e.test, a.test\nstore = sqlite:x.db\n");
    assert_int_equal(fg_config_load(p, &c, err, sizeof err), FG_OK);
    const char *want[] = {"a.test", "b.test", "c.test", "d.test", "e.test"};
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(c.domains[i], want[i]);
    assert_null(c.domains[5]);
    assert_string_equal(c.store, "sqlite:x.db");
    fg_config_free(&c);

    char text[2048] = "[server]\ndomains = ";
    for (int i = 0; i < 40; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%sd%02d.example.test",
                 i ? ", " : "", i);
    strcat(text, "\n");
    p = write_conf(text);
    assert_int_equal(fg_config_load(p, &c, err, sizeof err), FG_EINVAL);
    char w[600];
    snprintf(w, sizeof w, "%s:2: line longer than", p);
    if (!strstr(err, w) || !strstr(err, "continuation lines"))
        fail_msg("got '%s'", err);
}

/* Each bad file must fail with "FILE:LINE: [section] key: ..." */
static void test_errors_name_file_line_key(void **state)
{
    static const struct {
        const char *text;
        const char *expect; /* substring after the path */
    } cases[] = {
        {"[server]\ndomains = a.test\nfrobnicate = 1\n", ":3: [server] frobnicate: unknown key"},
        {"[server]\ndomains = a.test\n[bogus]\n", ":3: [bogus]: unknown section"},
        {"[server]\ndomains = a.test\n[bogus]\nx = 1\n", ":3: [bogus]: unknown section"},
        {"[server]\ndomains = a.test\nlog_level = loud\n",
         ":3: [server] log_level: invalid value 'loud'"},
        {"[server]\ndomains = a..test\n", ":2: [server] domains: invalid domain 'a..test'"},
        {"[server]\ndomains = a.test\n[c2s]\nrequire_tls = maybe\n",
         ":4: [c2s] require_tls: invalid value 'maybe': expected true or false"},
        {"[server]\ndomains = a.test\n[limits]\nmax_xml_depth = 0\n",
         ":4: [limits] max_xml_depth: invalid value '0': expected an integer from 4 to 1024"},
        {"[server]\ndomains = a.test\n[limits]\nauth_attempts = 3x\n",
         ":4: [limits] auth_attempts: invalid value '3x'"},
        {"[server]\ndomains = a.test\n[listen]\nc2s = 5222\n",
         ":4: [listen] c2s: invalid value '5222': expected host:port"},
        {"[server]\ndomains = a.test\n[listen]\nadmin = ::1:5280\n", ":4: [listen] admin:"},
        {"[server]\ndomains = a.test\n[listen]\nadmin = 127.0.0.1:70000\n", ":4: [listen] admin:"},
        {"[server]\ndomains = a.test\nstore =\n", ":3: [server] store: a value is required"},
        {"[server]\ndomains =\n", ":2: [server] domains: at least one hosted domain"},
        {"[server]\nstore = sqlite:x.db\n", ": [server] domains: at least one hosted domain"},
        {"[server]\ndomains = a.test\nthis line is not ini\n", ":3: malformed line"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct fg_config c;
        char err[512] = "";
        const char *p = write_conf(cases[i].text);
        assert_int_equal(fg_config_load(p, &c, err, sizeof err), FG_EINVAL);
        char want[600];
        snprintf(want, sizeof want, "%s%s", p, cases[i].expect);
        if (strstr(err, want) == NULL)
            fail_msg("case %zu: got '%s', want it to contain '%s'", i, err, want);
    }
}

static void test_missing_file(void **state)
{
    struct fg_config c;
    char err[512];
    assert_int_equal(fg_config_load("/nonexistent/fedgate.conf", &c, err, sizeof err), FG_EIO);
    assert_non_null(strstr(err, "/nonexistent/fedgate.conf: cannot read"));
}

static void test_locate(void **state)
{
    assert_string_equal(fg_config_locate("x.conf"), "x.conf");
    setenv("FEDGATE_CONFIG", "/env/fg.conf", 1);
    assert_string_equal(fg_config_locate(NULL), "/env/fg.conf");
    unsetenv("FEDGATE_CONFIG");
    char cwd[512];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(dir), 0);
    unlink("fedgate.conf");
    assert_string_equal(fg_config_locate(NULL), "/etc/fedgate/fedgate.conf");
    write_conf("[server]\ndomains = a.test\n");
    assert_string_equal(fg_config_locate(NULL), "fedgate.conf");
    assert_int_equal(chdir(cwd), 0);
}

static void test_parse_addr(void **state)
{
    char host[64];
    int port;
    assert_int_equal(fg_config_parse_addr("127.0.0.1:5222", host, sizeof host, &port), FG_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 5222);
    assert_int_equal(fg_config_parse_addr("[::]:5269", host, sizeof host, &port), FG_OK);
    assert_string_equal(host, "::");
    assert_int_equal(port, 5269);
    assert_int_equal(fg_config_parse_addr("::1:5269", host, sizeof host, &port), FG_EINVAL);
    assert_int_equal(fg_config_parse_addr("host:", host, sizeof host, &port), FG_EINVAL);
    assert_int_equal(fg_config_parse_addr(":80", host, sizeof host, &port), FG_EINVAL);
    assert_int_equal(fg_config_parse_addr("h:0", host, sizeof host, &port), FG_EINVAL);
    assert_int_equal(fg_config_parse_addr("h:65536", host, sizeof host, &port), FG_EINVAL);
}

static void test_log_pairs(void **state)
{
    struct fg_buf b = {0};
    fg_log_append_pair(&b, "event", "s2s-refused");
    fg_log_append_pair(&b, "reason", "domain is not a partner");
    fg_log_append_pair(&b, "q", "say \"hi\"\n");
    fg_log_append_pair(&b, "empty", "");
    assert_string_equal(fg_buf_str(&b), "event=s2s-refused reason=\"domain is not a partner\" "
                                        "q=\"say \\\"hi\\\"\\n\" empty=\"\"");
    fg_buf_free(&b);
}

static void test_time(void **state)
{
    int64_t t;
    char buf[32];
    assert_int_equal(fg_time_parse("2026-11-26T12:00:00Z", &t), FG_OK);
    assert_string_equal(fg_time_rfc3339(t, buf, sizeof buf), "2026-11-26T12:00:00Z");
    assert_int_equal(fg_time_parse("2026-11-26T13:30:00+01:30", &t), FG_OK);
    assert_string_equal(fg_time_rfc3339(t, buf, sizeof buf), "2026-11-26T12:00:00Z");
    assert_int_equal(fg_time_parse("2026-11-26T12:00:00.250Z", &t), FG_OK);
    assert_int_equal(fg_time_parse("2026-11-26", &t), FG_OK);
    assert_string_equal(fg_time_rfc3339(t, buf, sizeof buf), "2026-11-26T00:00:00Z");
    assert_int_equal(fg_time_parse("yesterday", &t), FG_EINVAL);
    assert_int_equal(fg_time_parse("2026-11-26T12:00:00", &t), FG_EINVAL);
    assert_int_equal(fg_time_parse("2026-11-26T12:00:00Zjunk", &t), FG_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_relative_paths),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_long_domain_lists),
        cmocka_unit_test(test_errors_name_file_line_key),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_locate),
        cmocka_unit_test(test_parse_addr),
        cmocka_unit_test(test_log_pairs),
        cmocka_unit_test(test_time),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
