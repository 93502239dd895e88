/* conn.c - listeners and connections on libuv; TLS through OpenSSL with a BIO between the
 * loop's read buffer and the send queue; one uv_prepare per loop flushes dirty connections
 * before the loop sleeps. No protocol knowledge, no timers but a closing connection's linger. */
#include "conn.h"
#include "tls.h"
#include "core/alloc.h"
#include "core/config.h"
#include "core/err.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define READ_BUF_SIZE 65536
#define PLAIN_BUF_SIZE 16384 /* one TLS record of plaintext */
#define LINGER_MS 2000       /* how long a closing connection waits for the peer's FIN */
#define FIRST_QUEUE_CAP 1024

/* Per-loop state shared by all connections of that loop. */
struct fg_net_loop {
    uv_loop_t *loop;
    struct fg_net_loop *next; /* registry */
    size_t users;             /* listeners and connections on this loop */
    uv_prepare_t prepare;     /* runs the flushes, started while flush_head is non-empty */
    struct fg_conn *flush_head;
    char rbuf[READ_BUF_SIZE];  /* what libuv reads into; consumed before read_cb returns */
    char pbuf[PLAIN_BUF_SIZE]; /* decrypted plaintext, same lifetime */
};

/* A byte queue; data is NULL whenever the queue is empty (idle connections hold none). */
struct queue {
    char *data;
    size_t len, cap;
};

enum state {
    ST_OPEN,     /* connecting or connected, data flows */
    ST_CLOSING,  /* fg_conn_close or peer EOF: flushing what is queued */
    ST_SHUTDOWN, /* FIN sent, waiting briefly for the peer's */
    ST_CLOSED,   /* uv_close issued; freed when the last handle reports closed */
};

/* The parts a connection needs only once it closes. */
struct closing {
    uv_shutdown_t req;
    uv_timer_t timer;
};

struct fg_conn {
    uv_tcp_t tcp;
    struct fg_net_loop *nl;
    struct fg_conn_cb cb;
    void *ud;
    SSL *ssl;
    struct fg_tls_ctx *ltls; /* the listener's context, for STARTTLS */
    struct queue pt;         /* plaintext waiting for the handshake / the next flush (TLS) */
    struct queue out;        /* bytes for the socket */
    struct queue wr;         /* bytes handed to uv_write */
    const char *in;          /* ciphertext offered to OpenSSL during tls_input */
    size_t in_len;
    uv_write_t wreq;
    uv_connect_t *creq;
    struct closing *cl;
    struct fg_conn *fnext, **fprev; /* flush list */
    char *reason;
    size_t max_buffered;
    unsigned char state;
    unsigned char handles; /* libuv handles still open */
    bool connected : 1;
    bool flush_queued : 1;
    bool writing : 1;
    bool tls_done : 1;
    bool tls_dead : 1; /* fatal TLS error: no close_notify */
    bool notify_sent : 1;
    bool eof : 1;
    char peer[56];
};

struct fg_listener {
    uv_tcp_t tcp;
    struct fg_net_loop *nl;
    bool direct_tls;
    struct fg_tls_ctx *tls;
    size_t max_buffered;
    void (*on_accept)(void *ud, struct fg_conn *c);
    void *ud;
    char addr[128];
};

static struct fg_net_stats stats;
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct fg_net_loop *registry;

void fg_net_get_stats(struct fg_net_stats *out)
{
    *out = stats;
}

/* ---- queues ---- */

static void q_append(struct queue *q, const void *p, size_t n)
{
    if (q->len + n > q->cap) {
        size_t cap = q->cap ? q->cap : FIRST_QUEUE_CAP;
        while (cap < q->len + n)
            cap *= 2;
        q->data = fg_realloc(q->data, cap);
        q->cap = cap;
    }
    memcpy(q->data + q->len, p, n);
    q->len += n;
}

static void q_release(struct queue *q)
{
    fg_free(q->data);
    q->data = NULL;
    q->len = q->cap = 0;
}

/* ---- per-loop state ---- */

static void nl_closed(uv_handle_t *h)
{
    fg_free(h->data);
}

static struct fg_net_loop *nl_get(uv_loop_t *loop)
{
    pthread_mutex_lock(&reg_lock);
    struct fg_net_loop *nl = registry;
    while (nl && nl->loop != loop)
        nl = nl->next;
    if (!nl) {
        /* a peer that resets while we write must cost an error code, not the process */
        struct sigaction sa;
        if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
            signal(SIGPIPE, SIG_IGN);
        nl = fg_calloc(1, sizeof *nl);
        nl->loop = loop;
        uv_prepare_init(loop, &nl->prepare);
        nl->prepare.data = nl;
        nl->next = registry;
        registry = nl;
    }
    nl->users++;
    pthread_mutex_unlock(&reg_lock);
    return nl;
}

static void nl_unref(struct fg_net_loop *nl)
{
    pthread_mutex_lock(&reg_lock);
    if (--nl->users == 0) {
        struct fg_net_loop **pp = &registry;
        while (*pp != nl)
            pp = &(*pp)->next;
        *pp = nl->next;
        uv_close((uv_handle_t *)&nl->prepare, nl_closed);
    }
    pthread_mutex_unlock(&reg_lock);
}

/* ---- closing ---- */

static void set_reason(struct fg_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_reason(struct fg_conn *c, const char *fmt, ...)
{
    if (c->reason)
        return; /* the first cause is the one worth reporting */
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    c->reason = fg_strdup(buf);
}

static void unlink_flush(struct fg_conn *c)
{
    if (!c->flush_queued)
        return;
    *c->fprev = c->fnext;
    if (c->fnext)
        c->fnext->fprev = c->fprev;
    c->flush_queued = false;
}

static void conn_free(struct fg_conn *c)
{
    fg_tls_ssl_free(c->ssl);
    fg_tls_ctx_free(c->ltls);
    q_release(&c->pt);
    q_release(&c->out);
    q_release(&c->wr);
    fg_free(c->cl);
    fg_free(c->reason);
    nl_unref(c->nl);
    stats.live--;
    fg_free(c);
}

static void handle_closed(uv_handle_t *h)
{
    struct fg_conn *c = h->data;
    if (--c->handles)
        return;
    if (c->cb.closed)
        c->cb.closed(c->ud, c->reason ? c->reason : "closed");
    conn_free(c);
}

/* Closes the handles now; cb.closed follows from their close callbacks. */
static void finish(struct fg_conn *c)
{
    if (c->state == ST_CLOSED)
        return;
    c->state = ST_CLOSED;
    unlink_flush(c);
    if (c->cl && uv_is_active((uv_handle_t *)&c->cl->timer))
        uv_timer_stop(&c->cl->timer);
    if (c->cl && c->cl->timer.data)
        uv_close((uv_handle_t *)&c->cl->timer, handle_closed);
    uv_close((uv_handle_t *)&c->tcp, handle_closed);
}

static void schedule_flush(struct fg_conn *c);

/* Closes at once after an I/O error: "what: detail". */
static void fail(struct fg_conn *c, const char *what, const char *detail)
{
    set_reason(c, "%s: %s", what, detail);
    finish(c);
}

/* Graceful close: what is queued goes out, then FIN, then a short linger. */
static void begin_close(struct fg_conn *c)
{
    if (c->state != ST_OPEN)
        return;
    c->state = ST_CLOSING;
    if (!c->tls_done)
        q_release(&c->pt); /* cannot be encrypted any more */
    schedule_flush(c);
}

static void linger_done(uv_timer_t *t)
{
    finish(t->data);
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
    struct fg_conn *c = req->data;
    if (status == UV_ECANCELED || c->state == ST_CLOSED)
        return;
    if (status < 0 || c->eof) {
        finish(c);
        return;
    }
    /* Closing with unread input makes the kernel send RST, which can destroy the data
     * we just sent before the peer reads it: wait (reading and discarding) for its FIN. */
    uv_timer_init(c->nl->loop, &c->cl->timer);
    c->cl->timer.data = c;
    c->handles++;
    uv_timer_start(&c->cl->timer, linger_done, LINGER_MS, 0);
}

static void start_shutdown(struct fg_conn *c)
{
    c->state = ST_SHUTDOWN;
    c->cl = fg_calloc(1, sizeof *c->cl);
    c->cl->req.data = c;
    if (uv_shutdown(&c->cl->req, (uv_stream_t *)&c->tcp, shutdown_cb) < 0)
        finish(c);
}

/* ---- sending ---- */

static void write_cb(uv_write_t *req, int status)
{
    struct fg_conn *c = req->data;
    c->writing = false;
    q_release(&c->wr);
    if (status == UV_ECANCELED || c->state == ST_CLOSED)
        return;
    if (status < 0) {
        fail(c, "write failed", uv_strerror(status));
        return;
    }
    if (c->out.len || c->state == ST_CLOSING)
        schedule_flush(c);
}

/* Hands c->out to the kernel: uv_try_write first, the rest through one uv_write. */
static int send_out(struct fg_conn *c)
{
    uv_stream_t *s = (uv_stream_t *)&c->tcp;
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
    stats.write_calls++;
    int n = uv_try_write(s, &b, 1);
    if (n == UV_EAGAIN)
        n = 0;
    if (n < 0) {
        fail(c, "write failed", uv_strerror(n));
        return FG_EIO;
    }
    stats.bytes_out += (uint64_t)n;
    if ((size_t)n == c->out.len) {
        q_release(&c->out);
        return FG_OK;
    }
    c->wr = c->out;
    c->out = (struct queue){0};
    b = uv_buf_init(c->wr.data + n, (unsigned)(c->wr.len - (size_t)n));
    c->wreq.data = c;
    stats.write_calls++;
    int r = uv_write(&c->wreq, s, &b, 1, write_cb);
    if (r < 0) {
        q_release(&c->wr);
        fail(c, "write failed", uv_strerror(r));
        return FG_EIO;
    }
    stats.bytes_out += b.len;
    c->writing = true;
    return FG_OK;
}

static void tls_error(struct fg_conn *c, int ssl_err);

static void flush(struct fg_conn *c)
{
    if (c->state == ST_CLOSED || c->state == ST_SHUTDOWN || !c->connected)
        return;
    if (c->ssl && c->tls_done && c->pt.len && !c->tls_dead) {
        size_t off = 0;
        ERR_clear_error();
        while (off < c->pt.len) {
            size_t n = c->pt.len - off;
            int r = SSL_write(c->ssl, c->pt.data + off, n > (1u << 30) ? (1 << 30) : (int)n);
            if (r <= 0) {
                tls_error(c, SSL_get_error(c->ssl, r));
                return;
            }
            off += (size_t)r;
        }
        q_release(&c->pt);
    }
    if (c->state == ST_CLOSING && c->ssl && c->tls_done && !c->tls_dead && !c->notify_sent) {
        c->notify_sent = true;
        ERR_clear_error();
        SSL_shutdown(c->ssl); /* close_notify lands in c->out */
        ERR_clear_error();
    }
    if (c->out.len && !c->writing && send_out(c) != FG_OK)
        return;
    if (c->state == ST_CLOSING && !c->out.len)
        start_shutdown(c); /* libuv sends FIN after the write in flight */
}

static void prepare_cb(uv_prepare_t *p)
{
    struct fg_net_loop *nl = p->data;
    struct fg_conn *c;
    /* flush never calls back into the owner, so the list changes only here */
    while ((c = nl->flush_head)) {
        unlink_flush(c);
        flush(c);
    }
    uv_prepare_stop(p);
}

static void schedule_flush(struct fg_conn *c)
{
    if (c->flush_queued || c->state == ST_CLOSED)
        return;
    struct fg_net_loop *nl = c->nl;
    if (!nl->flush_head)
        uv_prepare_start(&nl->prepare, prepare_cb);
    c->fnext = nl->flush_head;
    if (c->fnext)
        c->fnext->fprev = &c->fnext;
    c->fprev = &nl->flush_head;
    nl->flush_head = c;
    c->flush_queued = true;
}

size_t fg_conn_pending(const struct fg_conn *c)
{
    size_t n = c->pt.len + c->out.len;
    if (c->writing)
        n += uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
    return n;
}

int fg_conn_write(struct fg_conn *c, const void *buf, size_t len)
{
    if (c->state != ST_OPEN)
        return FG_EIO;
    if (len == 0)
        return FG_OK;
    if (c->max_buffered && fg_conn_pending(c) + len > c->max_buffered)
        return FG_ELIMIT;
    if (c->ssl) {
        q_append(&c->pt, buf, len);
        if (!c->tls_done)
            return FG_OK; /* sent when the handshake completes */
    } else {
        q_append(&c->out, buf, len);
    }
    schedule_flush(c);
    return FG_OK;
}

/* ---- TLS ---- */

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *data, int len)
{
    struct fg_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    q_append(&c->out, data, (size_t)len);
    return len;
}

static int bio_read(BIO *b, char *buf, int len)
{
    struct fg_conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (!c->in_len) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = c->in_len < (size_t)len ? c->in_len : (size_t)len;
    memcpy(buf, c->in, n);
    c->in += n;
    c->in_len -= n;
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct fg_conn *c = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_PENDING:
        return c ? (long)c->in_len : 0;
    default:
        return 0;
    }
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static void bio_method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "fedgate");
    if (!m)
        return;
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    bio_method = m;
}

static void log_tls_failure(struct fg_conn *c, enum fg_log_level lvl, const char *why)
{
    const char *sni = c->ssl ? SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
    fg_log(lvl, "tls-failed", "peer", c->peer, "role",
           c->ssl && SSL_is_server(c->ssl) ? "server" : "client", "sni", sni, "reason", why, NULL);
}

/* A fatal TLS error: log, send the alert OpenSSL queued, close. */
static void tls_error(struct fg_conn *c, int ssl_err)
{
    char why[256];
    if (ssl_err == SSL_ERROR_SYSCALL && !ERR_peek_error())
        snprintf(why, sizeof why, "unexpected end of data");
    else
        fg_tls_last_error(why, sizeof why);
    c->tls_dead = true;
    if (!c->tls_done) {
        stats.tls_failed++;
        set_reason(c, "TLS handshake failed: %s", why);
    } else {
        set_reason(c, "TLS error: %s", why);
    }
    log_tls_failure(c, FG_LOG_WARN, why);
    q_release(&c->pt);
    if (c->state == ST_OPEN)
        begin_close(c);
    else
        schedule_flush(c);
}

/* local: client role, whose certificate to offer; server role, the domain to serve
 * without SNI. */
static int tls_attach(struct fg_conn *c, struct fg_tls_ctx *t, const char *sni, const char *local,
                      const char *alpn)
{
    char err[256];
    pthread_once(&bio_once, bio_method_init);
    if (!bio_method) {
        fg_log(FG_LOG_ERROR, "tls-failed", "peer", c->peer, "reason", "no BIO method", NULL);
        return FG_EIO;
    }
    SSL *ssl = fg_tls_ssl_new(t, sni, local, alpn, err, sizeof err);
    if (!ssl) {
        log_tls_failure(c, FG_LOG_ERROR, err);
        return FG_EIO;
    }
    BIO *bio = BIO_new(bio_method);
    if (!bio) {
        fg_tls_ssl_free(ssl);
        log_tls_failure(c, FG_LOG_ERROR, "cannot create a BIO");
        return FG_EIO;
    }
    BIO_set_data(bio, c);
    SSL_set_bio(ssl, bio, bio);
    c->ssl = ssl;
    if (!SSL_is_server(ssl)) {
        ERR_clear_error();
        int r = SSL_do_handshake(ssl); /* the ClientHello goes into c->out */
        int e = SSL_get_error(ssl, r);
        if (r != 1 && e != SSL_ERROR_WANT_READ) {
            tls_error(c, e);
            return FG_OK; /* reported through closed */
        }
        schedule_flush(c);
    }
    return FG_OK;
}

static void deliver(struct fg_conn *c, const char *buf, size_t len)
{
    if (c->cb.data)
        c->cb.data(c->ud, buf, len);
}

static void tls_input(struct fg_conn *c, const char *buf, size_t len)
{
    c->in = buf;
    c->in_len = len;
    if (!c->tls_done) {
        ERR_clear_error();
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                tls_error(c, e);
            goto out;
        }
        c->tls_done = true;
        stats.tls_done++;
        if (c->cb.tls_ready)
            c->cb.tls_ready(c->ud);
        if (c->state != ST_OPEN)
            goto out;
        if (c->pt.len)
            schedule_flush(c);
    }
    for (;;) {
        ERR_clear_error();
        int r = SSL_read(c->ssl, c->nl->pbuf, sizeof c->nl->pbuf);
        if (r > 0) {
            deliver(c, c->nl->pbuf, (size_t)r);
            if (c->state != ST_OPEN)
                break;
            continue;
        }
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            set_reason(c, "peer closed the TLS session");
            begin_close(c);
            break;
        }
        tls_error(c, e);
        break;
    }
out:
    c->in = NULL;
    c->in_len = 0;
    if (c->out.len)
        schedule_flush(c);
}

int fg_conn_start_tls_ex(struct fg_conn *c, struct fg_tls_ctx *tls, const char *default_domain)
{
    if (c->state != ST_OPEN)
        return FG_EIO;
    if (!tls)
        tls = c->ltls;
    if (c->ssl || !tls || !fg_tls_ctx_is_server(tls))
        return FG_EINVAL;
    return tls_attach(c, tls, NULL, default_domain, NULL);
}

int fg_conn_start_tls(struct fg_conn *c, struct fg_tls_ctx *tls)
{
    return fg_conn_start_tls_ex(c, tls, NULL);
}

int fg_conn_start_tls_client(struct fg_conn *c, struct fg_tls_ctx *tls, const char *sni,
                             const char *local_domain, const char *alpn)
{
    if (c->state != ST_OPEN)
        return FG_EIO;
    if (c->ssl || !tls || fg_tls_ctx_is_server(tls))
        return FG_EINVAL;
    return tls_attach(c, tls, sni, local_domain, alpn);
}

/* ---- receiving ---- */

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct fg_conn *c = h->data;
    /* one buffer per loop: read_cb consumes everything before the next read */
    *b = uv_buf_init(c->nl->rbuf, sizeof c->nl->rbuf);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct fg_conn *c = s->data;
    if (nread == 0)
        return;
    if (nread < 0) {
        uv_read_stop(s);
        if (c->state == ST_SHUTDOWN) {
            finish(c);
        } else if (c->state == ST_CLOSING) {
            c->eof = true;
        } else if (c->state == ST_OPEN && nread == UV_EOF) {
            c->eof = true;
            if (c->ssl && !c->tls_done) {
                set_reason(c, "peer closed the connection during the TLS handshake");
                log_tls_failure(c, FG_LOG_INFO, "peer closed the connection");
                stats.tls_failed++;
            }
            set_reason(c, "peer closed the connection");
            begin_close(c);
        } else if (c->state == ST_OPEN) {
            fail(c, "connection lost", uv_strerror((int)nread));
        }
        return;
    }
    if (c->state != ST_OPEN)
        return; /* closing: input is discarded */
    if (c->ssl)
        tls_input(c, buf->base, (size_t)nread);
    else
        deliver(c, buf->base, (size_t)nread);
}

/* ---- connections ---- */

static struct fg_conn *conn_new(uv_loop_t *loop, size_t max_buffered)
{
    struct fg_conn *c = fg_calloc(1, sizeof *c);
    c->nl = nl_get(loop);
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->handles = 1;
    c->max_buffered = max_buffered;
    c->state = ST_OPEN;
    stats.live++;
    return c;
}

static void format_addr(const struct sockaddr *sa, char *out, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        uv_ip4_name(s4, ip, sizeof ip);
        port = ntohs(s4->sin_port);
        snprintf(out, len, "%s:%d", ip, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        port = ntohs(s6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], ip, sizeof ip);
            snprintf(out, len, "%s:%d", ip, port);
        } else {
            uv_ip6_name(s6, ip, sizeof ip);
            snprintf(out, len, "[%s]:%d", ip, port);
        }
    } else {
        snprintf(out, len, "?");
    }
}

void fg_conn_set_cb(struct fg_conn *c, const struct fg_conn_cb *cb, void *ud)
{
    if (cb)
        c->cb = *cb;
    else
        memset(&c->cb, 0, sizeof c->cb);
    c->ud = ud;
}

static void connect_cb(uv_connect_t *req, int status)
{
    struct fg_conn *c = req->data;
    fg_free(req);
    c->creq = NULL;
    if (status == UV_ECANCELED || c->state == ST_CLOSED)
        return;
    if (status < 0) {
        fail(c, "cannot connect", uv_strerror(status));
        return;
    }
    c->connected = true;
    uv_tcp_nodelay(&c->tcp, 1);
    int r = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    if (r < 0) {
        fail(c, "cannot read", uv_strerror(r));
        return;
    }
    if (c->state == ST_OPEN && c->cb.connected)
        c->cb.connected(c->ud);
    if (c->out.len || c->state == ST_CLOSING)
        schedule_flush(c);
}

struct fg_conn *fg_conn_connect(uv_loop_t *loop, const char *ip, int port, size_t max_buffered,
                                const struct fg_conn_cb *cb, void *ud, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (port < 1 || port > 65535) {
        snprintf(err, errlen, "invalid port %d", port);
        return NULL;
    }
    if (uv_ip4_addr(ip, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&ss) != 0) {
        snprintf(err, errlen, "'%s' is not an IP address", ip);
        return NULL;
    }
    struct fg_conn *c = conn_new(loop, max_buffered);
    format_addr((struct sockaddr *)&ss, c->peer, sizeof c->peer);
    c->creq = fg_malloc(sizeof *c->creq);
    c->creq->data = c;
    int r = uv_tcp_connect(c->creq, &c->tcp, (struct sockaddr *)&ss, connect_cb);
    if (r < 0) {
        snprintf(err, errlen, "cannot connect to %s: %s", c->peer, uv_strerror(r));
        fg_free(c->creq);
        c->creq = NULL;
        finish(c); /* no callbacks set: freed quietly */
        return NULL;
    }
    fg_conn_set_cb(c, cb, ud);
    return c;
}

void fg_conn_close(struct fg_conn *c)
{
    set_reason(c, "closed");
    begin_close(c);
}

void fg_conn_abort(struct fg_conn *c)
{
    set_reason(c, "aborted");
    finish(c);
}

const char *fg_conn_peer(const struct fg_conn *c)
{
    return c->peer;
}

/* ---- TLS information ---- */

bool fg_conn_is_tls(const struct fg_conn *c)
{
    return c->ssl && c->tls_done;
}

const char *fg_conn_tls_version(const struct fg_conn *c)
{
    return fg_conn_is_tls(c) ? SSL_get_version(c->ssl) : NULL;
}

const char *fg_conn_tls_sni(const struct fg_conn *c)
{
    return c->ssl ? SSL_get_servername(c->ssl, TLSEXT_NAMETYPE_host_name) : NULL;
}

const char *fg_conn_tls_domain(const struct fg_conn *c)
{
    return c->ssl ? fg_tls_ssl_domain(c->ssl) : NULL;
}

const char *fg_conn_tls_alpn(const struct fg_conn *c, char *buf, size_t len)
{
    const unsigned char *p;
    unsigned int n;
    if (!fg_conn_is_tls(c) || len == 0)
        return NULL;
    SSL_get0_alpn_selected(c->ssl, &p, &n);
    if (!p || n == 0 || n >= len)
        return NULL;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return buf;
}

bool fg_conn_tls_peer_verified(const struct fg_conn *c)
{
    return fg_conn_is_tls(c) && fg_tls_ssl_peer_verified(c->ssl);
}

const char *fg_conn_tls_verify_error(const struct fg_conn *c)
{
    return fg_conn_is_tls(c) ? fg_tls_ssl_verify_error(c->ssl) : "no TLS";
}

struct x509_st *fg_conn_tls_peer_cert(const struct fg_conn *c)
{
    return fg_conn_is_tls(c) ? SSL_get0_peer_certificate(c->ssl) : NULL;
}

int fg_conn_tls_exporter(const struct fg_conn *c, unsigned char *out, size_t len)
{
    static const char label[] = "EXPORTER-Channel-Binding";
    if (!fg_conn_is_tls(c) || len != 32)
        return FG_EINVAL;
    /* RFC 9266: over TLS 1.2 only with the extended master secret */
    if (SSL_version(c->ssl) < TLS1_3_VERSION && SSL_get_extms_support(c->ssl) != 1)
        return FG_EINVAL;
    if (SSL_export_keying_material(c->ssl, out, len, label, sizeof label - 1,
                                   (const unsigned char *)"", 0, 1) != 1) {
        ERR_clear_error();
        return FG_EIO;
    }
    return FG_OK;
}

int fg_conn_tls_unique(const struct fg_conn *c, unsigned char *out, size_t *len)
{
    if (!fg_conn_is_tls(c) || SSL_version(c->ssl) >= TLS1_3_VERSION)
        return FG_EINVAL;
    /* the first Finished of the handshake: the client's, or the server's on resumption */
    bool peer = SSL_is_server(c->ssl) != SSL_session_reused(c->ssl);
    size_t n =
        peer ? SSL_get_peer_finished(c->ssl, out, *len) : SSL_get_finished(c->ssl, out, *len);
    if (n == 0)
        return FG_EINVAL;
    if (n > *len)
        return FG_ELIMIT;
    *len = n;
    return FG_OK;
}

/* ---- listeners ---- */

static void on_connection(uv_stream_t *server, int status)
{
    struct fg_listener *l = server->data;
    if (status < 0) {
        fg_log(FG_LOG_WARN, "accept-failed", "listener", l->addr, "reason", uv_strerror(status),
               NULL);
        return;
    }
    struct fg_conn *c = conn_new(l->tcp.loop, l->max_buffered);
    int r = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (r < 0) {
        fg_log(FG_LOG_WARN, "accept-failed", "listener", l->addr, "reason", uv_strerror(r), NULL);
        finish(c);
        return;
    }
    stats.accepted++;
    c->connected = true;
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0)
        format_addr((struct sockaddr *)&ss, c->peer, sizeof c->peer);
    else
        snprintf(c->peer, sizeof c->peer, "?");
    uv_tcp_nodelay(&c->tcp, 1);
    if (l->tls)
        c->ltls = fg_tls_ctx_ref(l->tls);
    if (l->direct_tls && (!l->tls || tls_attach(c, l->tls, NULL, NULL, NULL) != FG_OK)) {
        set_reason(c, "cannot start TLS");
        finish(c);
        return;
    }
    l->on_accept(l->ud, c);
    if (c->state == ST_CLOSED)
        return;
    r = uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
    if (r < 0)
        fail(c, "cannot read", uv_strerror(r));
}

/* fg_config_parse_addr takes ports 1-65535; port 0 (ephemeral) is for tests. */
static int parse_listen_addr(const char *s, char *host, size_t hostlen, int *port)
{
    if (fg_config_parse_addr(s, host, hostlen, port) == FG_OK)
        return FG_OK;
    size_t n = strlen(s);
    char tmp[300];
    if (n < 2 || n >= sizeof tmp || strcmp(s + n - 2, ":0") != 0)
        return FG_EINVAL;
    memcpy(tmp, s, n + 1);
    tmp[n - 1] = '1';
    if (fg_config_parse_addr(tmp, host, hostlen, port) != FG_OK)
        return FG_EINVAL;
    *port = 0;
    return FG_OK;
}

static int resolve(const char *host, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
        return FG_OK;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
        return FG_OK;
    /* a name ("localhost"): resolved once, at start */
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return FG_EINVAL;
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    freeaddrinfo(res);
    return FG_OK;
}

static void listener_closed(uv_handle_t *h)
{
    struct fg_listener *l = h->data;
    fg_tls_ctx_free(l->tls);
    nl_unref(l->nl);
    fg_free(l);
}

struct fg_listener *fg_listener_new(uv_loop_t *loop, const char *addr, bool direct_tls,
                                    struct fg_tls_ctx *tls, size_t max_buffered,
                                    void (*on_accept)(void *ud, struct fg_conn *c), void *ud,
                                    char *err, size_t errlen)
{
    char host[256];
    int port;
    struct sockaddr_storage ss;
    if (parse_listen_addr(addr, host, sizeof host, &port) != FG_OK) {
        snprintf(err, errlen, "cannot listen on '%s': expected host:port or [ipv6]:port", addr);
        return NULL;
    }
    if (resolve(host, port, &ss) != FG_OK) {
        snprintf(err, errlen, "cannot listen on %s: '%s' is not an address", addr, host);
        return NULL;
    }
    if (direct_tls && (!tls || !fg_tls_ctx_is_server(tls))) {
        snprintf(err, errlen, "cannot listen on %s: direct TLS needs a server TLS context", addr);
        return NULL;
    }
    struct fg_listener *l = fg_calloc(1, sizeof *l);
    l->nl = nl_get(loop);
    l->direct_tls = direct_tls;
    l->tls = tls ? fg_tls_ctx_ref(tls) : NULL;
    l->max_buffered = max_buffered;
    l->on_accept = on_accept;
    l->ud = ud;
    snprintf(l->addr, sizeof l->addr, "%s", addr);
    uv_tcp_init(loop, &l->tcp);
    l->tcp.data = l;
    /* libuv reports a failed bind (EADDRINUSE) only from uv_listen */
    int r = uv_tcp_bind(&l->tcp, (struct sockaddr *)&ss, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&l->tcp, SOMAXCONN, on_connection);
    if (r < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", addr, uv_strerror(r));
        uv_close((uv_handle_t *)&l->tcp, listener_closed);
        return NULL;
    }
    return l;
}

int fg_listener_port(const struct fg_listener *l)
{
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getsockname(&l->tcp, (struct sockaddr *)&ss, &sl) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

void fg_listener_set_tls(struct fg_listener *l, struct fg_tls_ctx *tls)
{
    struct fg_tls_ctx *old = l->tls;
    l->tls = tls ? fg_tls_ctx_ref(tls) : NULL;
    fg_tls_ctx_free(old);
}

void fg_listener_close(struct fg_listener *l)
{
    if (!uv_is_closing((uv_handle_t *)&l->tcp))
        uv_close((uv_handle_t *)&l->tcp, listener_closed);
}
