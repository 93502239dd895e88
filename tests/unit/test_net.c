/* test_net.c - the network layer (net/conn.h, net/tls.h) on 127.0.0.1 with ephemeral ports:
 * clear and TLS connections served by one libuv loop in this thread, driven by blocking
 * OpenSSL clients in a helper thread (or a forked child for the memory test) or by our own
 * outbound connections. Certificates come from tests/pki/make-pki in a temporary dir. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "core/alloc.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/log.h"
#include "net/conn.h"
#include "net/tls.h"

static char pki[256];
static char ca_file[300];
static char *domains[] = {"a.test", "b.test", NULL};
static struct fg_tls_ctx *srv_tls;
static uv_loop_t loop;
static uint64_t live_before;

/* ---------------------------------------------------------------- server side */

enum mode { M_ECHO, M_STARTTLS, M_COALESCE, M_LIMIT, M_BIG, M_FLOOD, M_ABORT, M_BYE };

#define BIG_SIZE (4u << 20)
#define SMALL_WRITES 1000
#define FLOOD_CHUNK 65536
#define FLOOD_LIMIT (1u << 20)

struct srv {
    enum mode mode;
    const char *starttls_domain; /* M_STARTTLS: the certificate without SNI (the 'to') */
    struct fg_listener *l;
    int port;
    struct fg_conn *c; /* the last accepted connection, until closed */
    int accepted, closed, tls_ready;
    char reason[256];
    char version[32], sni[64], domain[64], alpn[32], verify_error[128], peer[64];
    bool verified, had_cert, is_tls_at_data;
    int exporter_rc, unique_rc;
    unsigned char exporter[32], unique[64];
    size_t unique_len;
    struct fg_buf in;
    int limit_rc[3];
    uint64_t writes_before, writes_after;
    /* M_FLOOD */
    uv_timer_t flood;
    size_t flood_accepted, flood_max_pending;
    atomic_int flood_limited;
};

/* The pattern a flood writes: byte i of the stream is i * 7 mod 251. */
static char flood_byte(size_t i)
{
    return (char)(i * 7 % 251);
}

static void flood_tick(uv_timer_t *t)
{
    struct srv *s = t->data;
    static char chunk[FLOOD_CHUNK];
    if (!s->c)
        return;
    for (size_t i = 0; i < FLOOD_CHUNK; i++)
        chunk[i] = flood_byte(s->flood_accepted + i);
    int rc = fg_conn_write(s->c, chunk, FLOOD_CHUNK);
    size_t p = fg_conn_pending(s->c);
    if (p > s->flood_max_pending)
        s->flood_max_pending = p;
    if (rc == FG_OK) {
        s->flood_accepted += FLOOD_CHUNK;
        return;
    }
    assert_int_equal(rc, FG_ELIMIT);
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
    atomic_store(&s->flood_limited, 1);
    fg_conn_close(s->c);
}

static void srv_tls_ready(void *ud)
{
    struct srv *s = ud;
    char buf[32];
    s->tls_ready++;
    snprintf(s->version, sizeof s->version, "%s", fg_conn_tls_version(s->c));
    const char *sni = fg_conn_tls_sni(s->c);
    snprintf(s->sni, sizeof s->sni, "%s", sni ? sni : "");
    snprintf(s->domain, sizeof s->domain, "%s", fg_conn_tls_domain(s->c));
    const char *alpn = fg_conn_tls_alpn(s->c, buf, sizeof buf);
    snprintf(s->alpn, sizeof s->alpn, "%s", alpn ? alpn : "");
    s->verified = fg_conn_tls_peer_verified(s->c);
    s->had_cert = fg_conn_tls_peer_cert(s->c) != NULL;
    const char *ve = fg_conn_tls_verify_error(s->c);
    snprintf(s->verify_error, sizeof s->verify_error, "%s", ve ? ve : "");
    s->exporter_rc = fg_conn_tls_exporter(s->c, s->exporter, sizeof s->exporter);
    s->unique_len = sizeof s->unique;
    s->unique_rc = fg_conn_tls_unique(s->c, s->unique, &s->unique_len);
}

static void srv_data(void *ud, const char *buf, size_t len)
{
    struct srv *s = ud;
    fg_buf_append(&s->in, buf, len);
    s->is_tls_at_data = fg_conn_is_tls(s->c);
    switch (s->mode) {
    case M_ECHO:
        assert_int_equal(fg_conn_write(s->c, buf, len), FG_OK);
        break;
    case M_STARTTLS:
        if (!fg_conn_is_tls(s->c) && strstr(fg_buf_str(&s->in), "<starttls/>")) {
            assert_int_equal(fg_conn_write(s->c, "<proceed/>", 10), FG_OK);
            if (s->starttls_domain)
                assert_int_equal(fg_conn_start_tls_ex(s->c, NULL, s->starttls_domain), FG_OK);
            else
                assert_int_equal(fg_conn_start_tls(s->c, NULL), FG_OK);
            assert_int_equal(fg_conn_start_tls(s->c, srv_tls), FG_EINVAL);
            fg_buf_reset(&s->in);
        } else if (fg_conn_is_tls(s->c)) {
            assert_int_equal(fg_conn_write(s->c, buf, len), FG_OK);
        }
        break;
    case M_COALESCE: {
        struct fg_net_stats st;
        fg_net_get_stats(&st);
        s->writes_before = st.write_calls;
        for (int i = 0; i < SMALL_WRITES; i++)
            assert_int_equal(fg_conn_write(s->c, "0123456789", 10), FG_OK);
        fg_conn_close(s->c);
        break;
    }
    case M_LIMIT: {
        static char block[3000];
        memset(block, 'x', sizeof block);
        s->limit_rc[0] = fg_conn_write(s->c, block, sizeof block);
        s->limit_rc[1] = fg_conn_write(s->c, block, 2000); /* 5000 > 4096 */
        s->limit_rc[2] = fg_conn_write(s->c, "ok", 2);
        fg_conn_close(s->c);
        break;
    }
    case M_FLOOD:
        uv_timer_init(&loop, &s->flood);
        s->flood.data = s;
        uv_timer_start(&s->flood, flood_tick, 1, 1);
        break;
    case M_ABORT:
        fg_conn_abort(s->c);
        assert_int_equal(fg_conn_write(s->c, "x", 1), FG_EIO);
        fg_conn_close(s->c); /* harmless after abort */
        break;
    case M_BYE:
        break;
    case M_BIG: {
        char *big = fg_malloc(BIG_SIZE);
        for (size_t i = 0; i < BIG_SIZE; i++)
            big[i] = (char)('a' + i % 26);
        assert_int_equal(fg_conn_write(s->c, big, BIG_SIZE), FG_OK);
        fg_free(big);
        fg_conn_close(s->c);
        /* closing: nothing more is accepted */
        assert_int_equal(fg_conn_write(s->c, "x", 1), FG_EIO);
        break;
    }
    }
}

static void srv_closed(void *ud, const char *reason)
{
    struct srv *s = ud;
    s->closed++;
    snprintf(s->reason, sizeof s->reason, "%s", reason);
    s->c = NULL;
}

static const struct fg_conn_cb srv_cb = {
    .data = srv_data, .tls_ready = srv_tls_ready, .closed = srv_closed};

static void srv_accept(void *ud, struct fg_conn *c)
{
    struct srv *s = ud;
    s->accepted++;
    s->c = c;
    snprintf(s->peer, sizeof s->peer, "%s", fg_conn_peer(c));
    fg_conn_set_cb(c, &srv_cb, s);
    if (s->mode == M_BYE) {
        assert_int_equal(fg_conn_write(c, "bye", 3), FG_OK);
        fg_conn_close(c);
    }
}

static void srv_start(struct srv *s, enum mode mode, bool direct_tls, size_t max_buffered)
{
    char err[256];
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->l = fg_listener_new(&loop, "127.0.0.1:0", direct_tls, srv_tls, max_buffered, srv_accept, s,
                           err, sizeof err);
    if (!s->l)
        fail_msg("listener: %s", err);
    s->port = fg_listener_port(s->l);
    assert_true(s->port > 0);
}

static void srv_stop(struct srv *s)
{
    fg_listener_close(s->l);
    fg_buf_free(&s->in);
}

/* Runs the loop until cond holds (checked at least every 5 ms), for at most 20 s. */
static void tick_cb(uv_timer_t *t) {}

#define RUN_UNTIL(cond)                                                                            \
    do {                                                                                           \
        uv_timer_t tick_;                                                                          \
        uv_timer_init(&loop, &tick_);                                                              \
        uv_timer_start(&tick_, tick_cb, 5, 5);                                                     \
        uint64_t end_ = uv_now(&loop) + 20000;                                                     \
        while (!(cond) && uv_now(&loop) < end_)                                                    \
            uv_run(&loop, UV_RUN_ONCE);                                                            \
        uv_close((uv_handle_t *)&tick_, NULL);                                                     \
        uv_run(&loop, UV_RUN_NOWAIT);                                                              \
        if (!(cond))                                                                               \
            fail_msg("timed out waiting for %s", #cond);                                           \
    } while (0)

/* ---------------------------------------------------------------- blocking clients */

enum kind {
    K_PLAIN,
    K_COALESCE,
    K_TLS,
    K_STARTTLS,
    K_PARTIAL,
    K_GARBAGE,
    K_LIMIT,
    K_BIG,
    K_FLOOD,
    K_RESET,
    K_SLOW_CLOSE,
    K_TLS_GARBAGE
};

struct client {
    enum kind kind;
    int port;
    bool tls; /* K_BIG: over direct TLS */
    const char *sni;
    const char *cert; /* "a.test" or "bad/a.test" (under pki), NULL = none */
    int min_version, max_version;
    atomic_int *wait_for; /* K_FLOOD: read only once the server set this */
    /* results */
    atomic_int done;
    bool ok;
    char error[256];
    char peer_cn[64];
    char version[32];
    size_t received;
    bool got_close_notify;
    unsigned char exporter[32];
    unsigned char unique[64];
    size_t unique_len;
    pthread_t thread;
};

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool read_exact(int fd, char *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = read(fd, buf + got, len - got);
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    return true;
}

static SSL_CTX *client_ctx(const struct client *cl)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (cl->min_version)
        SSL_CTX_set_min_proto_version(ctx, cl->min_version);
    if (cl->max_version)
        SSL_CTX_set_max_proto_version(ctx, cl->max_version);
    if (cl->max_version && cl->max_version < TLS1_2_VERSION) {
        /* OpenSSL 3 allows TLS 1.1 only at security level 0 */
        SSL_CTX_set_security_level(ctx, 0);
        SSL_CTX_set_cipher_list(ctx, "DEFAULT:@SECLEVEL=0");
    }
    SSL_CTX_load_verify_locations(ctx, ca_file, NULL);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (cl->cert) {
        char crt[400], key[400];
        snprintf(crt, sizeof crt, "%s/%s.crt", pki, cl->cert);
        snprintf(key, sizeof key, "%s/%s.key", pki, cl->cert);
        if (SSL_CTX_use_certificate_chain_file(ctx, crt) != 1 ||
            SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
            SSL_CTX_free(ctx);
            return NULL;
        }
    }
    return ctx;
}

/* TLS on fd: handshake, "ping" echoed, channel bindings, clean shutdown. */
static void client_tls(struct client *cl, int fd)
{
    SSL_CTX *ctx = client_ctx(cl);
    SSL *ssl = NULL;
    if (!ctx) {
        snprintf(cl->error, sizeof cl->error, "client certificate");
        return;
    }
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (cl->sni)
        SSL_set_tlsext_host_name(ssl, cl->sni);
    if (SSL_connect(ssl) != 1) {
        snprintf(cl->error, sizeof cl->error, "handshake: %s",
                 ERR_reason_error_string(ERR_peek_last_error()));
        goto out;
    }
    snprintf(cl->version, sizeof cl->version, "%s", SSL_get_version(ssl));
    if (cl->kind == K_TLS_GARBAGE) {
        /* clear bytes where records belong: the server must drop the connection */
        char b[64];
        cl->ok = write(fd, "this is not a TLS record\n", 25) == 25;
        while (read(fd, b, sizeof b) > 0)
            ;
        goto out;
    }
    X509 *peer = SSL_get0_peer_certificate(ssl);
    if (peer)
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cl->peer_cn,
                                  sizeof cl->peer_cn);
    if (SSL_get_verify_result(ssl) != X509_V_OK) {
        snprintf(cl->error, sizeof cl->error, "server certificate did not verify");
        goto out;
    }
    SSL_export_keying_material(ssl, cl->exporter, 32, "EXPORTER-Channel-Binding", 24,
                               (const unsigned char *)"", 0, 1);
    cl->unique_len = SSL_get_finished(ssl, cl->unique, sizeof cl->unique);
    char buf[8];
    if (SSL_write(ssl, "ping", 4) != 4 || SSL_read(ssl, buf, 4) != 4 || memcmp(buf, "ping", 4)) {
        snprintf(cl->error, sizeof cl->error, "echo over TLS");
        goto out;
    }
    SSL_shutdown(ssl);
    cl->ok = true;
out:
    SSL_free(ssl);
    SSL_CTX_free(ctx);
}

static void *client_main(void *arg)
{
    struct client *cl = arg;
    char buf[65536];
    int fd = tcp_connect(cl->port);
    if (fd < 0) {
        snprintf(cl->error, sizeof cl->error, "connect: %s", strerror(errno));
        goto done;
    }
    switch (cl->kind) {
    case K_PLAIN:
        if (write(fd, "hello", 5) == 5 && read_exact(fd, buf, 5) && !memcmp(buf, "hello", 5))
            cl->ok = true;
        break;
    case K_COALESCE:
    case K_LIMIT:
    case K_GARBAGE: {
        const char *msg = cl->kind == K_GARBAGE ? "GET / HTTP/1.0\r\n\r\n" : "go";
        if (write(fd, msg, strlen(msg)) != (ssize_t)strlen(msg))
            break;
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0)
            cl->received += (size_t)n;
        cl->ok = n == 0; /* a clean end of stream */
        break;
    }
    case K_BIG: {
        if (!cl->tls) {
            if (write(fd, "go", 2) != 2)
                break;
            ssize_t n;
            while ((n = read(fd, buf, sizeof buf)) > 0) {
                for (ssize_t i = 0; i < n; i++)
                    if (buf[i] != (char)('a' + (cl->received + (size_t)i) % 26))
                        goto done_close;
                cl->received += (size_t)n;
            }
            cl->ok = n == 0;
            break;
        }
        /* TLS variant */
        SSL_CTX *ctx = client_ctx(cl);
        SSL *ssl = SSL_new(ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_connect(ssl) == 1 && SSL_write(ssl, "go", 2) == 2) {
            int n;
            while ((n = SSL_read(ssl, buf, sizeof buf)) > 0)
                cl->received += (size_t)n;
            cl->got_close_notify = SSL_get_error(ssl, n) == SSL_ERROR_ZERO_RETURN;
            cl->ok = true;
        }
        SSL_free(ssl);
        SSL_CTX_free(ctx);
        break;
    }
    case K_FLOOD: {
        if (write(fd, "go", 2) != 2)
            break;
        while (!atomic_load(cl->wait_for))
            usleep(1000);
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0) {
            for (ssize_t i = 0; i < n; i++)
                if (buf[i] != flood_byte(cl->received + (size_t)i))
                    goto done_close;
            cl->received += (size_t)n;
        }
        cl->ok = n == 0;
        break;
    }
    case K_RESET: {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        cl->ok = write(fd, "hello", 5) == 5;
        usleep(20000);
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        break;
    }
    case K_SLOW_CLOSE: {
        /* reads the server's goodbye, then keeps the socket open past the linger time */
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0)
            cl->received += (size_t)n;
        cl->ok = n == 0;
        usleep(2800 * 1000);
        break;
    }
    case K_TLS:
    case K_TLS_GARBAGE:
        client_tls(cl, fd);
        break;
    case K_STARTTLS:
        if (write(fd, "<starttls/>", 11) != 11 || !read_exact(fd, buf, 10) ||
            memcmp(buf, "<proceed/>", 10)) {
            snprintf(cl->error, sizeof cl->error, "no <proceed/> in the clear");
            break;
        }
        client_tls(cl, fd);
        break;
    case K_PARTIAL: {
        /* the first bytes of a TLS 1.2 ClientHello record, then gone */
        static const unsigned char hello[] = {0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00};
        cl->ok = write(fd, hello, sizeof hello) == (ssize_t)sizeof hello;
        break;
    }
    }
done_close:
    close(fd);
done:
    ERR_clear_error();
    OPENSSL_thread_stop();
    atomic_store(&cl->done, 1);
    return NULL;
}

static void client_start(struct client *cl, enum kind kind, int port)
{
    cl->kind = kind;
    cl->port = port;
    atomic_init(&cl->done, 0);
    assert_int_equal(pthread_create(&cl->thread, NULL, client_main, cl), 0);
}

static void client_join(struct client *cl)
{
    pthread_join(cl->thread, NULL);
}

/* ---------------------------------------------------------------- fixtures */

static int group_setup(void **state)
{
    char cmd[1024], err[512];
    /* FG_TEST_DATA = SRC/tests/unit/data (which need not exist, so no ".." through it) */
    const char *data = getenv("FG_TEST_DATA");
    char script[512];
    size_t dl = data ? strlen(data) : 0;
    if (dl > 10 && strcmp(data + dl - 10, "/unit/data") == 0)
        snprintf(script, sizeof script, "%.*s/pki/make-pki", (int)(dl - 10), data);
    else
        snprintf(script, sizeof script, "%s/tests/pki/make-pki", FG_SOURCE_DIR);
    snprintf(pki, sizeof pki, "/tmp/fg-test-net-XXXXXX");
    if (!mkdtemp(pki))
        return -1;
    snprintf(cmd, sizeof cmd, "sh '%s' '%s' a.test b.test", script, pki);
    if (system(cmd) != 0) {
        fprintf(stderr, "make-pki failed: %s\n", cmd);
        return -1;
    }
    snprintf(ca_file, sizeof ca_file, "%s/ca.crt", pki);
    srv_tls = fg_tls_server_new(pki, domains, ca_file, err, sizeof err);
    if (!srv_tls) {
        fprintf(stderr, "fg_tls_server_new: %s\n", err);
        return -1;
    }
    fg_log_set_level(FG_LOG_WARN);
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[300];
    fg_tls_ctx_free(srv_tls);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", pki);
    return system(cmd) == 0 ? 0 : -1;
}

static int setup(void **state)
{
    struct fg_net_stats st;
    fg_net_get_stats(&st);
    live_before = st.live;
    return uv_loop_init(&loop);
}

static void close_any(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Every handle closed, every connection freed, within 10 s (lingering closes take 2 s);
 * after a failed test whatever is left is closed by force so the next test can run. */
static int teardown(void **state)
{
    uint64_t end = uv_now(&loop) + 10000;
    while (uv_loop_alive(&loop) && uv_now(&loop) < end) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(1000);
        uv_update_time(&loop);
    }
    if (uv_loop_alive(&loop)) {
        fprintf(stderr, "handles still open after the test\n");
        uv_walk(&loop, close_any, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return -1;
    }
    struct fg_net_stats st;
    fg_net_get_stats(&st);
    if (st.live != live_before) {
        fprintf(stderr, "%llu connections not freed\n",
                (unsigned long long)(st.live - live_before));
        return -1;
    }
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- tests */

static void test_plain_echo(void **state)
{
    struct srv s;
    struct client cl = {0};
    srv_start(&s, M_ECHO, false, 0);
    client_start(&cl, K_PLAIN, s.port);
    RUN_UNTIL(atomic_load(&cl.done) && s.closed == 1);
    client_join(&cl);
    assert_true(cl.ok);
    assert_int_equal(s.accepted, 1);
    assert_string_equal(fg_buf_str(&s.in), "hello");
    assert_false(s.is_tls_at_data);
    assert_string_equal(s.reason, "peer closed the connection");
    assert_int_equal(strncmp(s.peer, "127.0.0.1:", 10), 0);
    srv_stop(&s);
}

static void test_small_writes_coalesced(void **state)
{
    struct srv s;
    struct client cl = {0};
    srv_start(&s, M_COALESCE, false, 0);
    client_start(&cl, K_COALESCE, s.port);
    RUN_UNTIL(atomic_load(&cl.done) && s.closed == 1);
    client_join(&cl);
    assert_true(cl.ok);
    assert_int_equal(cl.received, SMALL_WRITES * 10);
    struct fg_net_stats st;
    fg_net_get_stats(&st);
    /* 1000 writes, one system call (two if the kernel had taken only part of it) */
    assert_true(st.write_calls - s.writes_before <= 2);
    assert_string_equal(s.reason, "closed");
    srv_stop(&s);
}

static void test_starttls(void **state)
{
    struct srv s;
    struct client cl = {.sni = "a.test"};
    srv_start(&s, M_STARTTLS, false, 0);
    client_start(&cl, K_STARTTLS, s.port);
    RUN_UNTIL(atomic_load(&cl.done) && s.closed == 1);
    client_join(&cl);
    if (!cl.ok)
        fail_msg("client: %s", cl.error);
    assert_int_equal(s.tls_ready, 1);
    assert_string_equal(s.version, "TLSv1.3");
    assert_string_equal(s.sni, "a.test");
    assert_string_equal(s.domain, "a.test");
    assert_string_equal(cl.peer_cn, "a.test");
    assert_true(s.is_tls_at_data);
    assert_string_equal(fg_buf_str(&s.in), "ping");
    assert_false(s.verified); /* no client certificate */
    assert_false(s.had_cert);
    assert_string_equal(s.verify_error, "no certificate");
    /* tls-exporter agrees; tls-unique is not defined for TLS 1.3 */
    assert_int_equal(s.exporter_rc, FG_OK);
    assert_memory_equal(s.exporter, cl.exporter, 32);
    assert_int_equal(s.unique_rc, FG_EINVAL);
    srv_stop(&s);
}

/* Without SNI, STARTTLS serves the domain the stream header named; SNI wins over it. */
static void test_starttls_default_domain(void **state)
{
    static const struct {
        const char *sni, *want;
    } cases[] = {{NULL, "b.test"}, {"a.test", "a.test"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct srv s;
        struct client cl = {.sni = cases[i].sni};
        srv_start(&s, M_STARTTLS, false, 0);
        s.starttls_domain = "b.test";
        client_start(&cl, K_STARTTLS, s.port);
        RUN_UNTIL(atomic_load(&cl.done) && s.closed == 1);
        client_join(&cl);
        if (!cl.ok)
            fail_msg("client: %s", cl.error);
        assert_string_equal(s.domain, cases[i].want);
        assert_string_equal(cl.peer_cn, cases[i].want);
        srv_stop(&s);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
}

static void test_direct_tls_and_sni(void **state)
{
    static const struct {
        const char *sni, *want;
    } cases[] = {{"b.test", "b.test"},
                 {"a.test", "a.test"},
                 {NULL, "a.test"},
                 {"conference.b.test", "b.test"},
                 {"unknown.test", "a.test"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct srv s;
        struct client cl = {.sni = cases[i].sni};
        srv_start(&s, M_ECHO, true, 0);
        client_start(&cl, K_TLS, s.port);
        RUN_UNTIL(atomic_load(&cl.done) && s.closed == 1);
        client_join(&cl);
        if (!cl.ok)
            fail_msg("client (sni %s): %s", cases[i].sni, cl.error);
        /* an unknown name gets the first domain's certificate, not an alert */
        assert_string_equal(s.domain, cases[i].want);
        assert_string_equal(cl.peer_cn, cases[i].want);
        assert_string_equal(s.sni, cases[i].sni ? cases[i].sni : "");
        assert_string_equal(fg_buf_str(&s.in), "ping");
        srv_stop(&s);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
}

static void test_tls11_refused(void **state)
{
    struct srv s;
    struct client cl = {.max_version = TLS1_1_VERSION, .min_version = TLS1_VERSION};
    srv_start(&s, M_ECHO, true, 0);
    client_start(&cl, K_TLS, s.port);
    RUN_UNTIL(atomic_load(&cl.done) && s.closed == 1);
    client_join(&cl);
    assert_false(cl.ok);
    assert_int_equal(s.tls_ready, 0);
    assert_non_null(strstr(s.reason, "TLS handshake failed"));
    srv_stop(&s);
}

static void test_tls12_channel_bindings(void **state)
{
    struct srv s;
    struct client cl = {.max_version = TLS1_2_VERSION};
    srv_start(&s, M_ECHO, true, 0);
    client_start(&cl, K_TLS, s.port);
    RUN_UNTIL(atomic_load(&cl.done) && s.closed == 1);
    client_join(&cl);
    if (!cl.ok)
        fail_msg("client: %s", cl.error);
    assert_string_equal(s.version, "TLSv1.2");
    assert_string_equal(cl.version, "TLSv1.2");
    /* tls-unique: the client's Finished of a full handshake, seen from both ends */
    assert_int_equal(s.unique_rc, FG_OK);
    assert_int_equal(s.unique_len, 12);
    assert_int_equal(cl.unique_len, 12);
    assert_memory_equal(s.unique, cl.unique, 12);
    /* OpenSSL negotiates the extended master secret, so tls-exporter is allowed */
    assert_int_equal(s.exporter_rc, FG_OK);
    assert_memory_equal(s.exporter, cl.exporter, 32);
    srv_stop(&s);
}

static void test_client_certificates(void **state)
{
    static const struct {
        const char *cert;
        bool verified;
        const char *error;
    } cases[] = {{NULL, false, "no certificate"},
                 {"a.test", true, ""},
                 {"bad/a.test", false, "unable to get local issuer certificate"},
                 {"wrongname/b.test", true, ""}}; /* the chain verifies; names are not ours */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int starttls = 0; starttls < 2; starttls++) {
            struct srv s;
            struct client cl = {.cert = cases[i].cert, .sni = "a.test"};
            srv_start(&s, starttls ? M_STARTTLS : M_ECHO, !starttls, 0);
            client_start(&cl, starttls ? K_STARTTLS : K_TLS, s.port);
            RUN_UNTIL(atomic_load(&cl.done) && s.closed == 1);
            client_join(&cl);
            if (!cl.ok)
                fail_msg("client (%s): %s", cases[i].cert, cl.error);
            assert_int_equal(s.tls_ready, 1);
            assert_int_equal(s.verified, cases[i].verified);
            assert_int_equal(s.had_cert, cases[i].cert != NULL);
            assert_string_equal(s.verify_error, cases[i].error);
            srv_stop(&s);
            uv_run(&loop, UV_RUN_NOWAIT);
        }
    }
}

static void test_max_buffered(void **state)
{
    struct srv s;
    struct client cl = {0};
    srv_start(&s, M_LIMIT, false, 4096);
    client_start(&cl, K_LIMIT, s.port);
    RUN_UNTIL(atomic_load(&cl.done) && s.closed == 1);
    client_join(&cl);
    assert_int_equal(s.limit_rc[0], FG_OK);
    assert_int_equal(s.limit_rc[1], FG_ELIMIT);
    assert_int_equal(s.limit_rc[2], FG_OK);
    assert_true(cl.ok);
    assert_int_equal(cl.received, 3002);
    srv_stop(&s);
}

/* A peer that does not read: writes queue up to max_buffered, then FG_ELIMIT; what was
 * accepted arrives intact once it reads. */
static void test_backpressure(void **state)
{
    struct srv s;
    struct client cl = {0};
    srv_start(&s, M_FLOOD, false, FLOOD_LIMIT);
    atomic_init(&s.flood_limited, 0);
    cl.wait_for = &s.flood_limited;
    client_start(&cl, K_FLOOD, s.port);
    RUN_UNTIL(atomic_load(&cl.done) && s.closed == 1);
    client_join(&cl);
    assert_true(atomic_load(&s.flood_limited));
    assert_true(s.flood_max_pending <= FLOOD_LIMIT);
    assert_true(s.flood_max_pending > FLOOD_LIMIT - FLOOD_CHUNK);
    assert_true(cl.ok);
    assert_int_equal(cl.received, s.flood_accepted);
    assert_string_equal(s.reason, "closed");
    srv_stop(&s);
}

static void test_abort_and_reset(void **state)
{
    struct srv s;
    struct client cl = {0};
    srv_start(&s, M_ABORT, false, 0);
    client_start(&cl, K_PLAIN, s.port);
    RUN_UNTIL(atomic_load(&cl.done) && s.closed == 1);
    client_join(&cl);
    assert_false(cl.ok); /* no echo: the server aborted */
    assert_string_equal(s.reason, "aborted");
    srv_stop(&s);

    struct client c2 = {0};
    srv_start(&s, M_ECHO, false, 0);
    client_start(&c2, K_RESET, s.port);
    RUN_UNTIL(atomic_load(&c2.done) && s.closed == 1);
    client_join(&c2);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(s.closed, 1);
    assert_true(strstr(s.reason, "reset") || strstr(s.reason, "broken pipe"));
    srv_stop(&s);
}

/* A peer that never closes its side: we give up after the linger time, once. */
static void test_linger_timeout(void **state)
{
    struct srv s;
    struct client cl = {0};
    srv_start(&s, M_BYE, false, 0);
    client_start(&cl, K_SLOW_CLOSE, s.port);
    RUN_UNTIL(s.closed == 1);
    assert_false(atomic_load(&cl.done));
    RUN_UNTIL(atomic_load(&cl.done));
    client_join(&cl);
    assert_true(cl.ok);
    assert_int_equal(cl.received, 3);
    assert_int_equal(s.closed, 1);
    assert_string_equal(s.reason, "closed");
    srv_stop(&s);
}

static void test_close_flushes_big_queue(void **state)
{
    for (int tls = 0; tls < 2; tls++) {
        struct srv s;
        struct client cl = {.tls = tls, .sni = "a.test"};
        srv_start(&s, M_BIG, tls, 0);
        client_start(&cl, K_BIG, s.port);
        RUN_UNTIL(atomic_load(&cl.done) && s.closed == 1);
        client_join(&cl);
        assert_true(cl.ok);
        assert_int_equal(cl.received, BIG_SIZE);
        if (tls)
            assert_true(cl.got_close_notify);
        assert_string_equal(s.reason, "closed");
        srv_stop(&s);
        uv_run(&loop, UV_RUN_NOWAIT);
    }
}

static void test_peer_gone_mid_handshake(void **state)
{
    struct srv s;
    struct client cl = {0};
    srv_start(&s, M_ECHO, true, 0);
    client_start(&cl, K_PARTIAL, s.port);
    RUN_UNTIL(atomic_load(&cl.done) && s.closed == 1);
    client_join(&cl);
    assert_true(cl.ok);
    assert_int_equal(s.tls_ready, 0);
    assert_string_equal(s.reason, "peer closed the connection during the TLS handshake");
    srv_stop(&s);
    /* and a peer that talks HTTP to the TLS port: alert, close, closed once */
    struct client c2 = {0};
    srv_start(&s, M_ECHO, true, 0);
    client_start(&c2, K_GARBAGE, s.port);
    RUN_UNTIL(atomic_load(&c2.done) && s.closed == 1);
    client_join(&c2);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(s.closed, 1);
    assert_non_null(strstr(s.reason, "TLS handshake failed"));
    srv_stop(&s);
    /* and one that breaks the record layer after the handshake */
    struct client c3 = {.sni = "a.test"};
    srv_start(&s, M_ECHO, true, 0);
    client_start(&c3, K_TLS_GARBAGE, s.port);
    RUN_UNTIL(atomic_load(&c3.done) && s.closed == 1);
    client_join(&c3);
    assert_true(c3.ok);
    assert_int_equal(s.tls_ready, 1);
    assert_non_null(strstr(s.reason, "TLS error"));
    srv_stop(&s);
}

static void test_listen_errors(void **state)
{
    struct srv s;
    char err[256], addr[64];
    srv_start(&s, M_ECHO, false, 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", s.port);
    assert_null(fg_listener_new(&loop, addr, false, NULL, 0, srv_accept, &s, err, sizeof err));
    assert_non_null(strstr(err, "address already in use"));
    assert_non_null(strstr(err, addr));
    assert_null(
        fg_listener_new(&loop, "nonsense", false, NULL, 0, srv_accept, &s, err, sizeof err));
    assert_null(
        fg_listener_new(&loop, "127.0.0.1:0", true, NULL, 0, srv_accept, &s, err, sizeof err));
    /* IPv6 notation with an ephemeral port */
    struct fg_listener *l6 =
        fg_listener_new(&loop, "[::1]:0", false, NULL, 0, srv_accept, &s, err, sizeof err);
    if (l6) {
        assert_true(fg_listener_port(l6) > 0);
        fg_listener_close(l6);
    }
    srv_stop(&s);
}

static void test_tls_ctx_errors(void **state)
{
    char err[512];
    char *missing[] = {"c.test", NULL};
    assert_null(fg_tls_server_new(pki, missing, ca_file, err, sizeof err));
    assert_non_null(strstr(err, "c.test.crt"));
    assert_null(fg_tls_server_new(pki, domains, "/nonexistent/ca.crt", err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/ca.crt"));
    /* the system store is a valid choice */
    struct fg_tls_ctx *t = fg_tls_server_new(pki, domains, NULL, err, sizeof err);
    assert_non_null(t);
    fg_tls_ctx_free(t);
}

/* ---- our own outbound connections (the s2s client side) ---- */

struct out {
    struct fg_conn *c;
    struct fg_tls_ctx *tls;
    const char *sni;
    bool starttls; /* speak "<starttls/>" first */
    bool early;    /* the first bytes were written before the handshake */
    int connected, tls_ready, closed;
    bool verified;
    char verify_error[128], domain[64], alpn[32], reason[256], version[32];
    unsigned char exporter[32];
    struct fg_buf in;
};

static void out_tls_ready(void *ud)
{
    struct out *o = ud;
    char buf[32];
    o->tls_ready++;
    o->verified = fg_conn_tls_peer_verified(o->c);
    const char *ve = fg_conn_tls_verify_error(o->c);
    snprintf(o->verify_error, sizeof o->verify_error, "%s", ve ? ve : "");
    snprintf(o->domain, sizeof o->domain, "%s", fg_conn_tls_domain(o->c));
    const char *alpn = fg_conn_tls_alpn(o->c, buf, sizeof buf);
    snprintf(o->alpn, sizeof o->alpn, "%s", alpn ? alpn : "");
    snprintf(o->version, sizeof o->version, "%s", fg_conn_tls_version(o->c));
    assert_int_equal(fg_conn_tls_exporter(o->c, o->exporter, 32), FG_OK);
    if (!o->early)
        assert_int_equal(fg_conn_write(o->c, "hel", 3), FG_OK);
    assert_int_equal(fg_conn_write(o->c, "lo", 2), FG_OK);
}

static void out_connected(void *ud)
{
    struct out *o = ud;
    o->connected++;
}

static void out_data(void *ud, const char *buf, size_t len)
{
    struct out *o = ud;
    fg_buf_append(&o->in, buf, len);
    if (o->starttls && !o->tls_ready && strcmp(fg_buf_str(&o->in), "<proceed/>") == 0) {
        fg_buf_reset(&o->in);
        assert_int_equal(fg_conn_start_tls_client(o->c, o->tls, o->sni, "a.test", NULL), FG_OK);
    } else if (o->tls_ready && strcmp(fg_buf_str(&o->in), "hello") == 0) {
        fg_conn_close(o->c);
    }
}

static void out_closed(void *ud, const char *reason)
{
    struct out *o = ud;
    o->closed++;
    snprintf(o->reason, sizeof o->reason, "%s", reason);
    o->c = NULL;
}

static const struct fg_conn_cb out_cb = {
    .data = out_data, .tls_ready = out_tls_ready, .connected = out_connected, .closed = out_closed};

static void test_outbound_direct_tls(void **state)
{
    char err[512];
    struct srv s;
    struct out o = {.sni = "b.test"};
    o.tls = fg_tls_client_new(ca_file, pki, domains, err, sizeof err);
    if (!o.tls)
        fail_msg("client ctx: %s", err);
    srv_start(&s, M_ECHO, true, 0);
    o.c = fg_conn_connect(&loop, "127.0.0.1", s.port, 0, &out_cb, &o, err, sizeof err);
    assert_non_null(o.c);
    /* XEP-0368: TLS from the first byte; the ClientHello waits for the connection */
    assert_int_equal(fg_conn_start_tls_client(o.c, o.tls, "b.test", "a.test", "xmpp-server"),
                     FG_OK);
    o.early = true; /* "hel" now, waiting for the handshake; "lo" from tls_ready */
    assert_int_equal(fg_conn_write(o.c, "hel", 3), FG_OK);
    assert_int_equal(fg_conn_start_tls_ex(o.c, srv_tls, NULL), FG_EINVAL);
    RUN_UNTIL(o.closed == 1 && s.closed == 1);
    assert_int_equal(o.connected, 1);
    assert_int_equal(o.tls_ready, 1);
    assert_string_equal(fg_buf_str(&o.in), "hello");
    assert_string_equal(fg_buf_str(&s.in), "hello");
    /* both certificates verify; SNI chose b.test; our client certificate was a.test's */
    assert_true(o.verified);
    assert_true(s.verified);
    assert_string_equal(s.domain, "b.test");
    assert_string_equal(o.domain, "a.test");
    assert_string_equal(s.alpn, "xmpp-server");
    assert_string_equal(o.alpn, "xmpp-server");
    assert_memory_equal(o.exporter, s.exporter, 32);
    assert_string_equal(o.reason, "closed");
    srv_stop(&s);
    fg_buf_free(&o.in);
    fg_tls_ctx_free(o.tls);
}

static void out_starttls_connected(void *ud)
{
    struct out *o = ud;
    o->connected++;
    assert_int_equal(fg_conn_write(o->c, "<starttls/>", 11), FG_OK);
}

static void test_outbound_starttls_untrusted(void **state)
{
    char err[512];
    char other[300];
    struct srv s;
    struct out o = {.sni = "a.test", .starttls = true};
    struct fg_conn_cb cb = out_cb;
    cb.connected = out_starttls_connected;
    /* we trust another CA: TLS still completes, the verdict says no (dialback may follow) */
    snprintf(other, sizeof other, "%s/other-ca/ca.crt", pki);
    o.tls = fg_tls_client_new(other, pki, domains, err, sizeof err);
    assert_non_null(o.tls);
    srv_start(&s, M_STARTTLS, false, 0);
    o.c = fg_conn_connect(&loop, "127.0.0.1", s.port, 0, &cb, &o, err, sizeof err);
    assert_non_null(o.c);
    RUN_UNTIL(o.closed == 1 && s.closed == 1);
    assert_int_equal(o.tls_ready, 1);
    assert_false(o.verified);
    assert_string_equal(o.verify_error, "unable to get local issuer certificate");
    assert_true(s.verified); /* our client certificate is fine for the server */
    assert_string_equal(fg_buf_str(&s.in), "hello");
    srv_stop(&s);
    fg_buf_free(&o.in);
    fg_tls_ctx_free(o.tls);
}

/* IPv6 listener and outbound connection, clear; skipped where ::1 is unavailable. */
static void test_ipv6(void **state)
{
    char err[256];
    struct srv s;
    struct out o = {0};
    memset(&s, 0, sizeof s);
    s.mode = M_ECHO;
    s.l = fg_listener_new(&loop, "[::1]:0", false, NULL, 0, srv_accept, &s, err, sizeof err);
    if (!s.l) {
        uv_run(&loop, UV_RUN_NOWAIT);
        skip();
    }
    o.c = fg_conn_connect(&loop, "::1", fg_listener_port(s.l), 0, &out_cb, &o, err, sizeof err);
    assert_non_null(o.c);
    assert_int_equal(strncmp(fg_conn_peer(o.c), "[::1]:", 6), 0);
    assert_int_equal(fg_conn_write(o.c, "v6", 2), FG_OK);
    RUN_UNTIL(o.connected == 1 && strcmp(fg_buf_str(&o.in), "v6") == 0);
    assert_int_equal(strncmp(s.peer, "[::1]:", 6), 0);
    fg_conn_close(o.c);
    RUN_UNTIL(o.closed == 1 && s.closed == 1);
    srv_stop(&s);
    fg_buf_free(&o.in);
}

static void test_outbound_refused(void **state)
{
    char err[256];
    struct srv s;
    struct out o = {0};
    /* a port that was just free */
    srv_start(&s, M_ECHO, false, 0);
    int port = s.port;
    srv_stop(&s);
    uv_run(&loop, UV_RUN_NOWAIT);
    o.c = fg_conn_connect(&loop, "127.0.0.1", port, 0, &out_cb, &o, err, sizeof err);
    assert_non_null(o.c);
    assert_int_equal(fg_conn_write(o.c, "queued", 6), FG_OK);
    RUN_UNTIL(o.closed == 1);
    assert_int_equal(o.connected, 0);
    assert_non_null(strstr(o.reason, "cannot connect"));
    assert_null(fg_conn_connect(&loop, "not-an-ip", 5269, 0, &out_cb, &o, err, sizeof err));
    assert_non_null(strstr(err, "not an IP address"));
}

/* ---- memory per idle connection ---- */

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

struct mem_srv {
    int accepted, ready, closed;
};

static void mem_ready(void *ud)
{
    ((struct mem_srv *)ud)->ready++;
}

static void mem_closed(void *ud, const char *reason)
{
    ((struct mem_srv *)ud)->closed++;
}

static const struct fg_conn_cb mem_cb = {.tls_ready = mem_ready, .closed = mem_closed};

static void mem_accept(void *ud, struct fg_conn *c)
{
    ((struct mem_srv *)ud)->accepted++;
    fg_conn_set_cb(c, &mem_cb, ud);
}

/* Child: n1 connections, wait for the parent's go, n2 more, wait until told to exit. */
static void mem_child(int port, bool tls, int n1, int n2, int go_fd)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    char b;
    for (int i = 0; i < n1 + n2; i++) {
        if (i == n1 && read(go_fd, &b, 1) != 1)
            _exit(1);
        int fd = tcp_connect(port);
        if (fd < 0)
            _exit(2);
        if (tls) {
            SSL *ssl = SSL_new(ctx);
            SSL_set_fd(ssl, fd);
            SSL_set_tlsext_host_name(ssl, "a.test");
            if (SSL_connect(ssl) != 1)
                _exit(3);
            /* the SSL is leaked on purpose: the socket stays open until we exit */
        }
    }
    while (read(go_fd, &b, 1) == 1)
        ;
    _exit(0);
}

static double measure_idle(bool tls)
{
    enum { N1 = 20, N2 = 200 };
    char err[256];
    struct mem_srv ms = {0};
    int go[2];
    struct fg_listener *l =
        fg_listener_new(&loop, "127.0.0.1:0", tls, srv_tls, 0, mem_accept, &ms, err, sizeof err);
    assert_non_null(l);
    assert_int_equal(pipe(go), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(go[1]);
        mem_child(fg_listener_port(l), tls, N1, N2, go[0]);
    }
    close(go[0]);
#define READY(n) (tls ? ms.ready >= (n) : ms.accepted >= (n))
    RUN_UNTIL(READY(N1));
    size_t before = heap_in_use();
    assert_int_equal(write(go[1], "g", 1), 1);
    RUN_UNTIL(READY(N1 + N2));
    /* let the last handshakes' buffers go */
    uv_run(&loop, UV_RUN_NOWAIT);
    size_t after = heap_in_use();
    close(go[1]);
    RUN_UNTIL(ms.closed == N1 + N2);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    fg_listener_close(l);
#undef READY
    return ((double)after - (double)before) / N2;
}

static void test_idle_memory(void **state)
{
    double plain = measure_idle(false);
    double tls = measure_idle(true);
#if defined(__SANITIZE_ADDRESS__)
    /* the sanitizer's allocator does not report through mallinfo2: exercised, not measured */
    (void)plain;
    (void)tls;
#else
    printf("[ info     ] idle connection, server heap: %.0f bytes clear, %.0f bytes TLS\n", plain,
           tls);
    assert_true(plain <= 8192); /* DESIGN.md performance budget */
    assert_true(tls <= 24576);
#endif
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_plain_echo, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_writes_coalesced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_starttls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_starttls_default_domain, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_tls_and_sni, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls11_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls12_channel_bindings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_certificates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_buffered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_flushes_big_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort_and_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_linger_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_gone_mid_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_listen_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_ctx_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbound_direct_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbound_starttls_untrusted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_outbound_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_memory, setup, teardown),
    };
    if (getenv("FG_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FG_TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
