/* test_dns.c - net/dns.h: the pure parts (SRV rdata, XEP-0368 / RFC 2782 ordering with an
 * injected random source, host:port) and live lookups through a real libuv loop against a
 * private unbound (tests/dns/unbound-test) on 127.0.0.1 and a free port. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "core/alloc.h"
#include "core/err.h"
#include "core/log.h"
#include "net/dns.h"

/* ---------------------------------------------------------------- helpers */

static struct fg_dns_srv rec(const char *target, int prio, int weight, int port, bool tls)
{
    struct fg_dns_srv r;
    memset(&r, 0, sizeof r);
    snprintf(r.target, sizeof r.target, "%s", target);
    r.priority = (uint16_t)prio;
    r.weight = (uint16_t)weight;
    r.port = (uint16_t)port;
    r.direct_tls = tls;
    return r;
}

/* A random source that returns the values of a script in turn, then 0. */
struct script {
    const uint32_t *v;
    size_t n, i;
};

static uint32_t scripted(void *ctx)
{
    struct script *s = ctx;
    return s->i < s->n ? s->v[s->i++] : 0;
}

static uint32_t constant(void *ctx)
{
    return *(uint32_t *)ctx;
}

/* Order as a string "t1:port/tls t2:port ..." for compact assertions. */
static void order_str(const struct fg_dns_srv *v, size_t n, char *out, size_t outlen)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used < outlen; i++)
        used += (size_t)snprintf(out + used, outlen - used, "%s%s:%u%s", i ? " " : "", v[i].target,
                                 (unsigned)v[i].port, v[i].direct_tls ? "/tls" : "");
}

/* wire form of an SRV rdata with the given labels ("a", "b", NULL) */
static size_t srv_wire(unsigned char *out, int prio, int weight, int port,
                       const char *const *labels)
{
    size_t n = 0;
    out[n++] = (unsigned char)(prio >> 8);
    out[n++] = (unsigned char)prio;
    out[n++] = (unsigned char)(weight >> 8);
    out[n++] = (unsigned char)weight;
    out[n++] = (unsigned char)(port >> 8);
    out[n++] = (unsigned char)port;
    for (size_t i = 0; labels && labels[i]; i++) {
        size_t l = strlen(labels[i]);
        out[n++] = (unsigned char)l;
        memcpy(out + n, labels[i], l);
        n += l;
    }
    out[n++] = 0;
    return n;
}

/* ---------------------------------------------------------------- SRV rdata */

static void test_srv_parse(void **state)
{
    unsigned char w[600];
    struct fg_dns_srv r;
    const char *const host[] = {"Xmpp1", "B", "test", NULL};
    size_t n = srv_wire(w, 5, 10, 5269, host);
    assert_int_equal(fg_dns_srv_parse(w, n, true, &r), 0);
    assert_string_equal(r.target, "xmpp1.b.test");
    assert_int_equal(r.priority, 5);
    assert_int_equal(r.weight, 10);
    assert_int_equal(r.port, 5269);
    assert_true(r.direct_tls);

    /* "." : the root, port 0 allowed */
    n = srv_wire(w, 0, 0, 0, NULL);
    assert_int_equal(fg_dns_srv_parse(w, n, false, &r), 0);
    assert_string_equal(r.target, ".");
    assert_false(r.direct_tls);

    /* truncated anywhere */
    n = srv_wire(w, 5, 10, 5269, host);
    for (size_t cut = 0; cut < n; cut++)
        assert_int_equal(fg_dns_srv_parse(w, cut, false, &r), FG_EINVAL);
    /* trailing bytes */
    w[n] = 0;
    assert_int_equal(fg_dns_srv_parse(w, n + 1, false, &r), FG_EINVAL);
    /* compression pointer */
    unsigned char c[] = {0, 0, 0, 0, 0x14, 0x95, 0xc0, 0x0c};
    assert_int_equal(fg_dns_srv_parse(c, sizeof c, false, &r), FG_EINVAL);
    /* characters outside host names */
    const char *const bad[] = {"a b", "test", NULL};
    n = srv_wire(w, 0, 0, 5269, bad);
    assert_int_equal(fg_dns_srv_parse(w, n, false, &r), FG_EINVAL);
    const char *const dot[] = {"a.b", "test", NULL};
    n = srv_wire(w, 0, 0, 5269, dot);
    assert_int_equal(fg_dns_srv_parse(w, n, false, &r), FG_EINVAL);
    /* port 0 with a real target */
    n = srv_wire(w, 0, 0, 0, host);
    assert_int_equal(fg_dns_srv_parse(w, n, false, &r), FG_EINVAL);
    /* a 63-octet label is fine, 64 is not; 253 octets in all is fine, 255 is not */
    char l63[64], l64[65];
    memset(l63, 'a', 63);
    l63[63] = '\0';
    memset(l64, 'a', 64);
    l64[64] = '\0';
    const char *const ok63[] = {l63, "test", NULL};
    n = srv_wire(w, 0, 0, 1, ok63);
    assert_int_equal(fg_dns_srv_parse(w, n, false, &r), 0);
    const char *const bad64[] = {l64, "test", NULL};
    n = srv_wire(w, 0, 0, 1, bad64);
    assert_int_equal(fg_dns_srv_parse(w, n, false, &r), FG_EINVAL);
    const char *const len253[] = {l63, l63, l63,
                                  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                                  NULL}; /* 63*3 + 61 + 3 dots = 253 */
    n = srv_wire(w, 0, 0, 1, len253);
    assert_int_equal(fg_dns_srv_parse(w, n, false, &r), 0);
    assert_int_equal(strlen(r.target), 253);
    const char *const len255[] = {
        l63, l63, l63, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", NULL};
    n = srv_wire(w, 0, 0, 1, len255);
    assert_int_equal(fg_dns_srv_parse(w, n, false, &r), FG_EINVAL);
    assert_int_equal(fg_dns_srv_parse(NULL, 10, false, &r), FG_EINVAL);
}

/* ---------------------------------------------------------------- ordering */

static void test_order_priorities(void **state)
{
    struct fg_dns_srv v[] = {
        rec("c.test", 30, 0, 5269, false),
        rec("a.test", 10, 0, 5269, false),
        rec("b.test", 20, 0, 5269, false),
        rec("a2.test", 10, 0, 5269, false),
    };
    size_t n = 4;
    char s[256];
    uint32_t zero = 0;
    assert_int_equal(fg_dns_srv_order(v, &n, constant, &zero), FG_DNS_SRV_RECORDS);
    order_str(v, n, s, sizeof s);
    /* all weights 0: a sum of 0 always picks the first unordered record */
    assert_string_equal(s, "a.test:5269 a2.test:5269 b.test:5269 c.test:5269");
}

/* RFC 2782: each round draws r in [0, sum]; the first record (weight-0 ones first) whose
 * running sum reaches r is next. Driving every r gives the exact distribution. */
static void test_order_weights_exact(void **state)
{
    /* weights 0 and 10 in one priority: 0 goes first only when r == 0 (1 of 11) */
    int first_zero = 0, first_ten = 0;
    for (uint32_t r = 0; r <= 10; r++) {
        struct fg_dns_srv v[] = {rec("ten.test", 1, 10, 5269, false),
                                 rec("zero.test", 1, 0, 5269, false)};
        size_t n = 2;
        assert_int_equal(fg_dns_srv_order(v, &n, constant, &r), FG_DNS_SRV_RECORDS);
        assert_int_equal(n, 2);
        if (strcmp(v[0].target, "zero.test") == 0)
            first_zero++;
        else
            first_ten++;
    }
    assert_int_equal(first_zero, 1);
    assert_int_equal(first_ten, 10);

    /* weights 10, 30, 60: r in [0,100]; record i is first for r in (S(i-1), S(i)] and the
     * first one also for r = 0 */
    int count[3] = {0, 0, 0};
    for (uint32_t r = 0; r <= 100; r++) {
        struct fg_dns_srv v[] = {rec("w10.test", 0, 10, 1, false), rec("w30.test", 0, 30, 1, false),
                                 rec("w60.test", 0, 60, 1, false)};
        size_t n = 3;
        fg_dns_srv_order(v, &n, constant, &r);
        count[v[0].target[1] == '1' ? 0 : v[0].target[1] == '3' ? 1 : 2]++;
    }
    assert_int_equal(count[0], 11);
    assert_int_equal(count[1], 30);
    assert_int_equal(count[2], 60);

    /* the second round runs on the rest: after w30 (r=25) comes w10 or w60 by r in [0,70] */
    const uint32_t seq[] = {25, 70};
    struct script sc = {seq, 2, 0};
    struct fg_dns_srv v[] = {rec("w10.test", 0, 10, 1, false), rec("w30.test", 0, 30, 1, false),
                             rec("w60.test", 0, 60, 1, false)};
    size_t n = 3;
    char s[256];
    fg_dns_srv_order(v, &n, scripted, &sc);
    order_str(v, n, s, sizeof s);
    assert_string_equal(s, "w30.test:1 w60.test:1 w10.test:1");
    assert_int_equal(sc.i, 2); /* one draw per round, none for the last record */

    /* a round whose records all weigh 0 draws nothing */
    struct fg_dns_srv z[] = {rec("z1.test", 0, 0, 1, false), rec("z2.test", 0, 0, 1, false)};
    struct script none = {NULL, 0, 0};
    n = 2;
    fg_dns_srv_order(z, &n, scripted, &none);
    assert_int_equal(none.i, 0);
    assert_string_equal(z[0].target, "z1.test");
}

/* The built-in random source follows the weights too (statistically). */
static void test_order_weights_builtin(void **state)
{
    const int rounds = 20000;
    int heavy_first = 0, zero_first = 0;
    for (int i = 0; i < rounds; i++) {
        struct fg_dns_srv v[] = {rec("light.test", 0, 25, 1, false),
                                 rec("heavy.test", 0, 75, 1, false),
                                 rec("zero.test", 0, 0, 1, false)};
        size_t n = 3;
        fg_dns_srv_order(v, &n, NULL, NULL);
        if (strcmp(v[0].target, "heavy.test") == 0)
            heavy_first++;
        if (strcmp(v[0].target, "zero.test") == 0)
            zero_first++;
    }
    /* expected 75/101 and 1/101 of the rounds */
    double heavy = (double)heavy_first / rounds, zero = (double)zero_first / rounds;
    assert_true(heavy > 0.70 && heavy < 0.78);
    assert_true(zero > 0.002 && zero < 0.03);
}

static void test_order_mixed_services(void **state)
{
    /* XEP-0368: one set; a direct TLS and a STARTTLS record compete on equal terms */
    struct fg_dns_srv v[] = {
        rec("plain.c.test", 10, 0, 5269, false),
        rec("tls.c.test", 0, 0, 5270, true),
        rec("tls2.c.test", 20, 0, 5270, true),
        rec("plain.c.test", 10, 0, 5269, false), /* duplicate: dropped */
        rec("tls.c.test", 0, 0, 5269, false),    /* same host, other service: kept */
    };
    size_t n = 5;
    char s[256];
    uint32_t zero = 0;
    assert_int_equal(fg_dns_srv_order(v, &n, constant, &zero), FG_DNS_SRV_RECORDS);
    order_str(v, n, s, sizeof s);
    assert_string_equal(s, "tls.c.test:5270/tls tls.c.test:5269 plain.c.test:5269 "
                           "tls2.c.test:5270/tls");
}

static void test_order_dot(void **state)
{
    uint32_t zero = 0;
    char s[256];
    /* "." alone in the only service: decidedly not available */
    struct fg_dns_srv a[] = {rec(".", 0, 0, 0, false)};
    size_t n = 1;
    assert_int_equal(fg_dns_srv_order(a, &n, constant, &zero), FG_DNS_SRV_UNAVAILABLE);
    assert_int_equal(n, 0);
    /* "." for direct TLS, records for STARTTLS: use the records */
    struct fg_dns_srv b[] = {rec(".", 0, 0, 0, true), rec("g.test", 5, 0, 5269, false)};
    n = 2;
    assert_int_equal(fg_dns_srv_order(b, &n, constant, &zero), FG_DNS_SRV_RECORDS);
    order_str(b, n, s, sizeof s);
    assert_string_equal(s, "g.test:5269");
    /* "." in both services */
    struct fg_dns_srv c[] = {rec(".", 0, 0, 0, true), rec(".", 0, 0, 0, false)};
    n = 2;
    assert_int_equal(fg_dns_srv_order(c, &n, constant, &zero), FG_DNS_SRV_UNAVAILABLE);
    /* "." among other records of its service is not "alone": it is dropped */
    struct fg_dns_srv d[] = {rec(".", 0, 0, 0, false), rec("x.test", 1, 0, 5269, false)};
    n = 2;
    assert_int_equal(fg_dns_srv_order(d, &n, constant, &zero), FG_DNS_SRV_RECORDS);
    order_str(d, n, s, sizeof s);
    assert_string_equal(s, "x.test:5269");
    /* only "." records, twice over */
    struct fg_dns_srv e[] = {rec(".", 0, 0, 0, false), rec(".", 1, 0, 0, false)};
    n = 2;
    assert_int_equal(fg_dns_srv_order(e, &n, constant, &zero), FG_DNS_SRV_UNAVAILABLE);
    /* nothing at all */
    n = 0;
    assert_int_equal(fg_dns_srv_order(d, &n, constant, &zero), FG_DNS_SRV_NONE);
    assert_int_equal(fg_dns_srv_order(NULL, &n, constant, &zero), FG_DNS_SRV_NONE);
}

/* ---------------------------------------------------------------- host:port */

static void test_hostport(void **state)
{
    char host[FG_DNS_NAME_MAX + 1], err[256];
    uint16_t port = 0;
    struct {
        const char *in;
        const char *host;
        unsigned port;
    } ok[] = {
        {"proxy.b.test", "proxy.b.test", 5269},
        {"Proxy.B.Test.", "proxy.b.test", 5269},
        {"proxy.b.test:5270", "proxy.b.test", 5270},
        {"127.0.0.2", "127.0.0.2", 5269},
        {"127.0.0.2:1", "127.0.0.2", 1},
        {"[::1]:65535", "::1", 65535},
        {"[::1]", "::1", 5269},
        {"::1", "::1", 5269},
        {"localhost", "localhost", 5269},
        {"_xmpp.b-c.test:00080", "_xmpp.b-c.test", 80},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        err[0] = '\0';
        assert_int_equal(
            fg_dns_parse_hostport(ok[i].in, 5269, host, sizeof host, &port, err, sizeof err), 0);
        assert_string_equal(host, ok[i].host);
        assert_int_equal(port, ok[i].port);
    }
    struct {
        const char *in;
        const char *msg;
    } bad[] = {
        {"", "empty host"},
        {":5269", "the host is empty"},
        {"b.test:", "invalid port"},
        {"b.test:0", "invalid port"},
        {"b.test:65536", "invalid port"},
        {"b.test:+5", "invalid port"},
        {"b.test:52 69", "invalid port"},
        {"b..test", "expected a host name"},
        {".b.test", "expected a host name"},
        {"b test", "expected a host name"},
        {"b.test/x", "expected a host name"},
        {"[::1", "without ']'"},
        {"[::1]x", "expected [address]:port"},
        {"[127.0.0.1]:5269", "brackets are for IPv6"},
        {"[b.test]:5269", "not an IPv6 address"},
        {"::1::2", "not an IPv6 address"},
        {"b\xc3\xa4.test", "expected a host name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(
            fg_dns_parse_hostport(bad[i].in, 5269, host, sizeof host, &port, err, sizeof err),
            FG_EINVAL);
        if (!strstr(err, bad[i].msg))
            fail_msg("'%s': '%s' lacks '%s'", bad[i].in, err, bad[i].msg);
    }
    assert_int_equal(fg_dns_parse_hostport(NULL, 5269, host, sizeof host, &port, err, sizeof err),
                     FG_EINVAL);
    /* a host longer than the caller's buffer */
    char small[8];
    assert_int_equal(
        fg_dns_parse_hostport("proxy.b.test", 5269, small, sizeof small, &port, err, sizeof err),
        FG_EINVAL);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(
        fg_dns_parse_hostport(longname, 5269, host, sizeof host, &port, err, sizeof err),
        FG_EINVAL);
}

static void test_targets_copy_format(void **state)
{
    struct fg_dns_addr a1[] = {{AF_INET6, "::1"}, {AF_INET, "127.0.0.2"}};
    struct fg_dns_addr a2[] = {{AF_INET, "127.0.0.3"}};
    struct fg_dns_target v[] = {{(char *)"x.b.test", 5270, true, 2, a1},
                                {(char *)"y.b.test", 5269, false, 1, a2}};
    struct fg_dns_targets t = {(char *)"b.test", FG_DNS_SRC_SRV, 2, v};
    struct fg_dns_targets *c = fg_dns_targets_copy(&t);
    char s[256], s2[256];
    fg_dns_targets_format(&t, s, sizeof s);
    fg_dns_targets_format(c, s2, sizeof s2);
    assert_string_equal(s, "x.b.test:5270 direct-tls [::1 127.0.0.2], y.b.test:5269 starttls "
                           "[127.0.0.3]");
    assert_string_equal(s, s2);
    assert_string_equal(c->name, "b.test");
    fg_dns_targets_free(c);
    char tiny[10];
    fg_dns_targets_format(&t, tiny, sizeof tiny);
    assert_string_equal(tiny, "x.b.test:");
    fg_dns_targets_free(NULL);
    assert_null(fg_dns_targets_copy(NULL));
}

/* ---------------------------------------------------------------- live */

static char ub_dir[128];
static int ub_port;
static bool ub_running;
static char ub_script[512];

static const char *const zone[] = {
    /* b.test: two targets by priority, one with AAAA and A */
    "_xmpp-server._tcp.b.test. SRV 10 0 5269 xmpp2.b.test.",
    "_xmpp-server._tcp.b.test. SRV 5 0 5269 xmpp1.b.test.",
    "xmpp1.b.test. A 127.0.0.2",
    "xmpp1.b.test. AAAA ::1",
    "xmpp2.b.test. A 127.0.0.3",
    /* c.test: direct TLS and STARTTLS records in one order */
    "_xmpps-server._tcp.c.test. SRV 0 0 5270 c.test.",
    "_xmpps-server._tcp.c.test. SRV 20 0 5270 tls2.c.test.",
    "_xmpp-server._tcp.c.test. SRV 10 0 5269 c.test.",
    "c.test. A 127.0.0.4",
    "tls2.c.test. A 127.0.0.5",
    /* d.test: no SRV, A and AAAA */
    "d.test. A 127.0.0.6",
    "d.test. AAAA ::1",
    /* f.test: "." (and an A record that must not be used) */
    "_xmpp-server._tcp.f.test. SRV 0 0 0 .",
    "f.test. A 127.0.0.7",
    /* g.test: no direct TLS ("."), STARTTLS record */
    "_xmpps-server._tcp.g.test. SRV 0 0 0 .",
    "_xmpp-server._tcp.g.test. SRV 0 0 5269 g.test.",
    "g.test. A 127.0.0.8",
    /* h.test: the SRV target has no address */
    "_xmpp-server._tcp.h.test. SRV 0 0 5269 gone.h.test.",
    /* i.test: the first target has no address, the second has */
    "_xmpp-server._tcp.i.test. SRV 0 0 5269 missing.i.test.",
    "_xmpp-server._tcp.i.test. SRV 10 0 5269 i.test.",
    "i.test. A 127.0.0.9",
    /* e.test has nothing at all */
    NULL,
};

/* A free port for both UDP and TCP on 127.0.0.1. */
static int free_port(void)
{
    for (int attempt = 0; attempt < 20; attempt++) {
        int u = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof sa;
        if (u < 0 || bind(u, (struct sockaddr *)&sa, sizeof sa) != 0 ||
            getsockname(u, (struct sockaddr *)&sa, &len) != 0) {
            if (u >= 0)
                close(u);
            return -1;
        }
        int t = socket(AF_INET, SOCK_STREAM, 0);
        int ok = t >= 0 && bind(t, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (t >= 0)
            close(t);
        close(u);
        if (ok)
            return ntohs(sa.sin_port);
    }
    return -1;
}

static int have_unbound(void)
{
    return system("command -v unbound >/dev/null 2>&1 && command -v dig >/dev/null 2>&1") == 0;
}

static int group_setup(void **state)
{
    fg_log_set_level(FG_LOG_ERROR);
    /* FG_TEST_DATA = SRC/tests/unit/data (which need not exist) */
    const char *data = getenv("FG_TEST_DATA");
    size_t dl = data ? strlen(data) : 0;
    if (dl > 10 && strcmp(data + dl - 10, "/unit/data") == 0)
        snprintf(ub_script, sizeof ub_script, "%.*s/dns/unbound-test", (int)(dl - 10), data);
    else
        snprintf(ub_script, sizeof ub_script, "%s/tests/dns/unbound-test", FG_SOURCE_DIR);
    if (!have_unbound()) {
        fprintf(stderr, "[ note     ] unbound or dig not installed: live DNS tests skipped\n");
        return 0;
    }
    snprintf(ub_dir, sizeof ub_dir, "/tmp/fg-test-dns-XXXXXX");
    if (!mkdtemp(ub_dir))
        return -1;
    /* the server goes when this process does, even after a crash */
    char owner[32];
    snprintf(owner, sizeof owner, "%ld", (long)getpid());
    setenv("UNBOUND_TEST_OWNER", owner, 1);
    /* another process may take the free port before unbound binds it: try a few */
    for (int attempt = 0; attempt < 3; attempt++) {
        ub_port = free_port();
        if (ub_port <= 0)
            return -1;
        char cmd[4096];
        size_t used =
            (size_t)snprintf(cmd, sizeof cmd, "sh '%s' start '%s' %d", ub_script, ub_dir, ub_port);
        for (size_t i = 0; zone[i]; i++)
            used += (size_t)snprintf(cmd + used, sizeof cmd - used, " '%s'", zone[i]);
        if (used >= sizeof cmd)
            return -1;
        if (system(cmd) == 0) {
            ub_running = true;
            return 0;
        }
        fprintf(stderr, "unbound-test failed: %s\n", cmd);
    }
    return -1;
}

static int group_teardown(void **state)
{
    if (ub_running) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "sh '%s' stop '%s'; rm -rf '%s'", ub_script, ub_dir, ub_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "unbound-test stop failed\n");
    }
    return 0;
}

/* What a lookup delivered. */
struct result {
    int calls;
    bool ok;
    enum fg_dns_source source;
    char text[1024]; /* fg_dns_targets_format, or the error */
    struct fg_dns_targets *copy;
};

static void on_done(void *ud, const struct fg_dns_targets *t, const char *error)
{
    struct result *r = ud;
    r->calls++;
    r->ok = t != NULL;
    if (t) {
        assert_null(error);
        assert_true(t->n >= 1);
        r->source = t->source;
        fg_dns_targets_format(t, r->text, sizeof r->text);
        fg_dns_targets_free(r->copy);
        r->copy = fg_dns_targets_copy(t);
    } else {
        assert_non_null(error);
        snprintf(r->text, sizeof r->text, "%s", error);
    }
}

struct live {
    uv_loop_t loop;
    struct fg_dns *dns;
    uv_timer_t tick;
};

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static struct live *live_new(const char *resolver)
{
    struct live *l = fg_calloc(1, sizeof *l);
    assert_int_equal(uv_loop_init(&l->loop), 0);
    char err[256] = "";
    l->dns = fg_dns_new(&l->loop, resolver, err, sizeof err);
    if (!l->dns)
        fail_msg("fg_dns_new: %s", err);
    uv_timer_init(&l->loop, &l->tick);
    uv_timer_start(&l->tick, on_tick, 20, 20);
    return l;
}

/* Runs the loop until every result has been delivered or ms pass; returns elapsed ms. */
static uint64_t run_until(struct live *l, struct result **rs, size_t n, unsigned ms)
{
    uint64_t start = uv_now(&l->loop);
    for (;;) {
        size_t done = 0;
        for (size_t i = 0; i < n; i++)
            done += rs[i]->calls > 0;
        if (done == n || uv_now(&l->loop) - start > ms)
            break;
        uv_run(&l->loop, UV_RUN_ONCE);
    }
    return uv_now(&l->loop) - start;
}

static void live_free(struct live *l)
{
    if (l->dns)
        fg_dns_free(l->dns);
    uv_close((uv_handle_t *)&l->tick, NULL);
    uv_run(&l->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&l->loop), 0);
    fg_free(l);
}

static void result_clear(struct result *r)
{
    fg_dns_targets_free(r->copy);
    memset(r, 0, sizeof *r);
}

static char *resolver_spec(char *buf, size_t len)
{
    snprintf(buf, len, "127.0.0.1@%d", ub_port);
    return buf;
}

#define SKIP_IF_NO_UNBOUND()                                                                       \
    do {                                                                                           \
        if (!ub_running)                                                                           \
            skip();                                                                                \
    } while (0)

static void test_live_lookups(void **state)
{
    SKIP_IF_NO_UNBOUND();
    char spec[64];
    struct live *l = live_new(resolver_spec(spec, sizeof spec));
    struct {
        const char *domain;
        bool ok;
        enum fg_dns_source source;
        const char *text;
    } cases[] = {
        {"b.test", true, FG_DNS_SRC_SRV,
         "xmpp1.b.test:5269 starttls [::1 127.0.0.2], xmpp2.b.test:5269 starttls [127.0.0.3]"},
        {"c.test", true, FG_DNS_SRC_SRV,
         "c.test:5270 direct-tls [127.0.0.4], c.test:5269 starttls [127.0.0.4], "
         "tls2.c.test:5270 direct-tls [127.0.0.5]"},
        {"D.Test.", true, FG_DNS_SRC_FALLBACK, "d.test:5269 starttls [::1 127.0.0.6]"},
        {"e.test", false, 0, "no SRV or address records for e.test"},
        {"f.test", false, 0,
         "f.test offers no XMPP server-to-server service (its SRV record has the target \".\")"},
        {"g.test", true, FG_DNS_SRC_SRV, "g.test:5269 starttls [127.0.0.8]"},
        {"h.test", false, 0,
         "no address records for gone.h.test, named by the SRV records of h.test"},
        {"i.test", true, FG_DNS_SRC_SRV, "i.test:5269 starttls [127.0.0.9]"},
        /* outside test. the private unbound refuses: libunbound reports a failure */
        {"refused.example", false, 0, "DNS lookup for refused.example failed"},
    };
    enum { N = sizeof cases / sizeof cases[0] };
    struct result res[N];
    struct result *rp[N];
    memset(res, 0, sizeof res);
    /* all at once: they share the resolver and the loop */
    for (size_t i = 0; i < N; i++) {
        rp[i] = &res[i];
        int id = fg_dns_resolve_xmpp_server(l->dns, cases[i].domain, on_done, &res[i]);
        assert_true(id > 0);
    }
    assert_int_equal(fg_dns_pending(l->dns), N);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(res[i].calls, 0); /* never from inside the call */
    run_until(l, rp, N, 8000);
    for (size_t i = 0; i < N; i++) {
        if (res[i].calls != 1 || res[i].ok != cases[i].ok ||
            strncmp(res[i].text, cases[i].text, strlen(cases[i].text)) != 0)
            fail_msg("%s: calls=%d ok=%d '%s', expected '%s'", cases[i].domain, res[i].calls,
                     res[i].ok, res[i].text, cases[i].text);
        if (cases[i].ok)
            assert_int_equal(res[i].source, cases[i].source);
    }
    assert_int_equal(fg_dns_pending(l->dns), 0);
    /* a copy outlives the callback */
    assert_non_null(res[1].copy);
    assert_int_equal(res[1].copy->n, 3);
    assert_true(res[1].copy->v[0].direct_tls);
    assert_int_equal(res[1].copy->v[0].port, 5270);
    assert_string_equal(res[1].copy->v[0].addrs[0].ip, "127.0.0.4");
    assert_int_equal(res[1].copy->v[0].addrs[0].family, AF_INET);
    for (size_t i = 0; i < N; i++)
        result_clear(&res[i]);
    live_free(l);
}

static void test_live_hosts(void **state)
{
    SKIP_IF_NO_UNBOUND();
    char spec[64];
    struct live *l = live_new(resolver_spec(spec, sizeof spec));
    struct {
        const char *host;
        uint16_t port;
        bool ok;
        const char *text;
    } cases[] = {
        {"d.test", 5299, true, "d.test:5299 starttls [::1 127.0.0.6]"},
        {"XMPP2.b.test", 5269, true, "xmpp2.b.test:5269 starttls [127.0.0.3]"},
        {"127.0.0.10", 5270, true, "127.0.0.10:5270 starttls [127.0.0.10]"},
        {"::0001", 5269, true, "::0001:5269 starttls [::1]"},
        {"nohost.test", 5269, false, "no address records for nohost.test"},
    };
    enum { N = sizeof cases / sizeof cases[0] };
    struct result res[N];
    struct result *rp[N];
    memset(res, 0, sizeof res);
    for (size_t i = 0; i < N; i++) {
        rp[i] = &res[i];
        assert_true(fg_dns_resolve_host(l->dns, cases[i].host, cases[i].port, on_done, &res[i]) >
                    0);
        assert_int_equal(res[i].calls, 0);
    }
    run_until(l, rp, N, 8000);
    for (size_t i = 0; i < N; i++) {
        if (res[i].calls != 1 || res[i].ok != cases[i].ok || strcmp(res[i].text, cases[i].text))
            fail_msg("%s: calls=%d ok=%d '%s', expected '%s'", cases[i].host, res[i].calls,
                     res[i].ok, res[i].text, cases[i].text);
        if (cases[i].ok)
            assert_int_equal(res[i].source, FG_DNS_SRC_HOST);
        result_clear(&res[i]);
    }
    /* malformed input: refused at once, no callback */
    struct result r = {0};
    assert_int_equal(fg_dns_resolve_host(l->dns, "", 5269, on_done, &r), FG_EINVAL);
    assert_int_equal(fg_dns_resolve_host(l->dns, "a b", 5269, on_done, &r), FG_EINVAL);
    assert_int_equal(fg_dns_resolve_host(l->dns, "d.test", 0, on_done, &r), FG_EINVAL);
    assert_int_equal(fg_dns_resolve_xmpp_server(l->dns, "", on_done, &r), FG_EINVAL);
    assert_int_equal(fg_dns_resolve_xmpp_server(l->dns, "a..b", on_done, &r), FG_EINVAL);
    assert_int_equal(fg_dns_resolve_xmpp_server(l->dns, "b.test", NULL, &r), FG_EINVAL);
    assert_int_equal(fg_dns_resolve_xmpp_server(NULL, "b.test", on_done, &r), FG_EINVAL);
    assert_int_equal(fg_dns_pending(l->dns), 0);
    assert_int_equal(r.calls, 0);
    live_free(l);
}

/* Cancelling: the callback never runs, nothing leaks; from inside another callback too. */
struct canceller {
    struct fg_dns *dns;
    int victim;
    struct result r;
};

static void on_done_cancel(void *ud, const struct fg_dns_targets *t, const char *error)
{
    struct canceller *c = ud;
    on_done(&c->r, t, error);
    fg_dns_cancel(c->dns, c->victim);
}

static void test_live_cancel(void **state)
{
    SKIP_IF_NO_UNBOUND();
    char spec[64];
    struct live *l = live_new(resolver_spec(spec, sizeof spec));
    struct result a = {0}, b = {0}, victim = {0};
    int ida = fg_dns_resolve_xmpp_server(l->dns, "b.test", on_done, &a);
    int idb = fg_dns_resolve_host(l->dns, "127.0.0.2", 5269, on_done, &b);
    assert_true(ida > 0 && idb > 0 && ida != idb);
    fg_dns_cancel(l->dns, ida);
    fg_dns_cancel(l->dns, idb); /* answered already, not yet delivered */
    fg_dns_cancel(l->dns, ida); /* twice: ignored */
    fg_dns_cancel(l->dns, 987654);
    assert_int_equal(fg_dns_pending(l->dns), 0);

    /* the first answer to arrive cancels the other lookup */
    struct canceller c = {l->dns, 0, {0}};
    int idc = fg_dns_resolve_host(l->dns, "127.0.0.3", 5269, on_done_cancel, &c);
    c.victim = fg_dns_resolve_xmpp_server(l->dns, "c.test", on_done, &victim);
    assert_true(idc > 0 && c.victim > 0);
    struct result *rp[] = {&c.r};
    run_until(l, rp, 1, 3000);
    assert_int_equal(c.r.calls, 1);
    /* give a cancelled query's answer time to arrive: it must be dropped */
    struct result never = {0};
    struct result *np[] = {&never};
    run_until(l, np, 1, 300);
    assert_int_equal(a.calls, 0);
    assert_int_equal(b.calls, 0);
    assert_int_equal(victim.calls, 0);
    assert_int_equal(fg_dns_pending(l->dns), 0);
    result_clear(&c.r);
    live_free(l);
}

/* The owner frees the resolver from inside a callback, with other lookups pending. */
struct freer {
    struct live *l;
    struct result r;
};

static void on_done_free(void *ud, const struct fg_dns_targets *t, const char *error)
{
    struct freer *f = ud;
    on_done(&f->r, t, error);
    fg_dns_free(f->l->dns);
    f->l->dns = NULL;
}

static void test_live_free_in_callback(void **state)
{
    SKIP_IF_NO_UNBOUND();
    char spec[64];
    struct live *l = live_new(resolver_spec(spec, sizeof spec));
    struct freer f = {l, {0}};
    struct result other = {0};
    assert_true(fg_dns_resolve_host(l->dns, "::1", 5269, on_done_free, &f) > 0);
    assert_true(fg_dns_resolve_xmpp_server(l->dns, "b.test", on_done, &other) > 0);
    struct result *rp[] = {&f.r};
    run_until(l, rp, 1, 3000);
    assert_int_equal(f.r.calls, 1);
    assert_null(l->dns);
    struct result never = {0};
    struct result *np[] = {&never};
    run_until(l, np, 1, 200);
    assert_int_equal(other.calls, 0);
    result_clear(&f.r);
    live_free(l);
}

/* A resolver that never answers: a UDP socket nobody reads. */
static void test_live_timeout(void **state)
{
    SKIP_IF_NO_UNBOUND();
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    assert_true(s >= 0);
    assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &len), 0);
    char spec[64];
    snprintf(spec, sizeof spec, "127.0.0.1@%d", ntohs(sa.sin_port));
    struct live *l = live_new(spec);
    fg_dns_set_timeout(l->dns, 300);
    struct result a = {0}, b = {0}, pending = {0};
    assert_true(fg_dns_resolve_xmpp_server(l->dns, "b.test", on_done, &a) > 0);
    assert_true(fg_dns_resolve_host(l->dns, "d.test", 5269, on_done, &b) > 0);
    struct result *rp[] = {&a, &b};
    uint64_t ms = run_until(l, rp, 2, 5000);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_string_equal(a.text, "DNS timeout for b.test");
    assert_string_equal(b.text, "DNS timeout for d.test");
    /* SRV round then fallback round, 300 ms each */
    assert_true(ms >= 500 && ms < 3000);
    /* freeing with a lookup pending: no callback, no leak */
    assert_true(fg_dns_resolve_xmpp_server(l->dns, "c.test", on_done, &pending) > 0);
    uv_run(&l->loop, UV_RUN_NOWAIT);
    live_free(l);
    assert_int_equal(pending.calls, 0);
    close(s);
    result_clear(&a);
    result_clear(&b);
}

static void test_resolver_setting(void **state)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char err[256];
    const char *bad[] = {"nonsense",   "127.0.0.1@0", "127.0.0.1@99999", "1.2.3.4.5",
                         "127.0.0.1@", "@53",         "127.0.0.1#53",    " , "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_null(fg_dns_new(&loop, bad[i], err, sizeof err));
        if (!strstr(err, "[dns] resolver"))
            fail_msg("'%s': %s", bad[i], err);
    }
    const char *good[] = {"127.0.0.1@5353", "127.0.0.1@5353, ::1@5353", "::1", "", NULL};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        err[0] = '\0';
        struct fg_dns *dns = fg_dns_new(&loop, good[i], err, sizeof err);
        if (!dns)
            fail_msg("'%s': %s", good[i] ? good[i] : "(null)", err);
        assert_int_equal(fg_dns_pending(dns), 0);
        fg_dns_free(dns);
    }
    assert_null(fg_dns_new(NULL, "", err, sizeof err));
    fg_dns_free(NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The random source set on a resolver reaches the ordering (same weights, two orders). */
static void test_live_random_source(void **state)
{
    SKIP_IF_NO_UNBOUND();
    /* c.test has distinct priorities: the order cannot change; b.test neither. This test
     * only checks that a custom source is used without draws when weights are 0. */
    char spec[64];
    struct live *l = live_new(resolver_spec(spec, sizeof spec));
    struct script none = {NULL, 0, 0};
    fg_dns_set_random(l->dns, scripted, &none);
    struct result r = {0};
    struct result *rp[] = {&r};
    assert_true(fg_dns_resolve_xmpp_server(l->dns, "c.test", on_done, &r) > 0);
    run_until(l, rp, 1, 5000);
    assert_true(r.ok);
    assert_int_equal(none.i, 0);
    result_clear(&r);
    live_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_srv_parse),
        cmocka_unit_test(test_order_priorities),
        cmocka_unit_test(test_order_weights_exact),
        cmocka_unit_test(test_order_weights_builtin),
        cmocka_unit_test(test_order_mixed_services),
        cmocka_unit_test(test_order_dot),
        cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_targets_copy_format),
        cmocka_unit_test(test_resolver_setting),
        cmocka_unit_test(test_live_lookups),
        cmocka_unit_test(test_live_hosts),
        cmocka_unit_test(test_live_cancel),
        cmocka_unit_test(test_live_free_in_callback),
        cmocka_unit_test(test_live_timeout),
        cmocka_unit_test(test_live_random_source),
    };
    if (getenv("FG_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FG_TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
