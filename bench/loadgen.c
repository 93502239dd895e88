/* loadgen - XMPP client load generator for the fedgate benchmarks (issue 8).
 *
 * One process, one libuv loop, N client connections over plain TCP, STARTTLS or direct TLS
 * (--tls; OpenSSL on memory BIOs). Each client opens a
 * stream, logs in (PLAIN, SCRAM-SHA-1 or SCRAM-SHA-256), binds a resource and, in the
 * message modes, exchanges <message/> stanzas with its partner (clients 2k and 2k+1 are
 * a pair). A message body is "SEQ T" where T is the CLOCK_MONOTONIC send time in ns, so
 * the receiver measures end-to-end latency and checks the sequence (loss, reordering).
 *
 * Modes:
 *   throughput  every client keeps --window messages outstanding towards its partner
 *   rate        open loop: --rate messages per second in total, spread over the senders
 *   login       --concurrency slots each doing connect, SASL, bind, half-close, again
 *   idle        connect and log in --clients clients, measure the server's RSS, hold
 *   handshake   --concurrency slots each doing connect, a TLS handshake, close_notify and
 *               half-close, again: no XMPP at all (the bare handshake rate of a TLS server
 *               such as `openssl s_server`, the physical limit of TLS logins)
 *
 * The result is one JSON object on standard output. With --server-pid the generator reads
 * the server's utime+stime (/proc/PID/stat) at the start and end of the measured window,
 * and its VmRSS before and after the clients connect (idle mode). It reports its own CPU
 * use over the window (getrusage); a busy share above 90% of one core marks the figures
 * as a lower bound of what the server can do ("generator_saturated": true).
 *
 * Kept small on purpose: it scans the server's bytes for the few tokens it needs instead
 * of parsing XML, which is enough for the servers under test and keeps its own CPU use
 * per message well below theirs. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <uv.h>

enum mode { M_THROUGHPUT, M_RATE, M_LOGIN, M_IDLE, M_HANDSHAKE };
enum mech { MECH_PLAIN, MECH_SCRAM1, MECH_SCRAM256 };
enum tls { TLS_NONE, TLS_STARTTLS, TLS_DIRECT };
enum state { S_CONNECTING, S_FEAT1, S_STARTTLS, S_TLS, S_SASL, S_SASL_FINAL, S_FEAT2, S_BIND,
             S_READY, S_CLOSING, S_DEAD };

struct buf {
    char *p;
    size_t len, cap;
};

struct client {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_shutdown_t sreq;
    int idx;      /* slot / client number */
    int user;     /* user number (1-based) */
    enum state st;
    struct buf in;    /* received bytes (plaintext once TLS is up) not yet processed */
    struct buf out;   /* pending bytes for the wire, written at the end of the loop iteration */
    struct buf plain; /* TLS: plaintext waiting to be encrypted into out (at the same time) */
    SSL *ssl;         /* TLS over two memory BIOs: ciphertext in, ciphertext out */
    int tls_up;       /* handshake done */
    struct buf wbuf; /* bytes in the write in flight */
    int writing;
    int dirty;
    struct client *next_dirty;
    uv_write_t wreq;
    /* SASL */
    char cnonce[32];
    char client_first_bare[128];
    /* messaging */
    uint64_t sent_seq;     /* next sequence number to send */
    uint64_t recv_expect;  /* next sequence number expected from the partner */
    uint64_t received;
    uint64_t outstanding;  /* sent by this client, not yet received by the partner */
    uint64_t misordered;
};

static struct {
    const char *host;
    int port;
    const char *domain;
    const char *prefix;
    const char *password;
    int user_base;   /* first user number */
    int users;       /* size of the user pool (logins cycle through it) */
    int clients;
    enum mode mode;
    enum mech mech;
    int window;
    double rate;
    double warmup, duration;
    int concurrency;
    int server_pid;
    int presence;
    double hold;
    double settle;
    int check;       /* drain at the end and check that every message arrived */
    const char *resource;
    int body_pad;
    enum tls tls;
    int tls_min;     /* minimum protocol version (TLS1_2_VERSION or TLS1_3_VERSION) */
    int tick_us;     /* rate mode: send what is due every tick_us microseconds */
    const char *host2;   /* --host2/--domain2: odd clients log into a second server (S1) */
    const char *domain2;
    int server_pid2;
} opt = {
    .host = "127.0.0.81", .port = 5222, .domain = "bench.test", .prefix = "u",
    .password = "bench-pw", .user_base = 1, .users = 0, .clients = 20, .mode = M_THROUGHPUT,
    .mech = MECH_PLAIN, .window = 10, .rate = 10000, .warmup = 2, .duration = 5,
    .concurrency = 50, .server_pid = 0, .presence = 0, .hold = 0, .settle = 2, .check = 1,
    .resource = "lg", .body_pad = 0, .tls = TLS_NONE, .tls_min = TLS1_3_VERSION,
    .tick_us = 100,
};

static uv_loop_t *loop;
static struct client *clients;
static struct client *dirty_head;
static uv_check_t flush_check;
static uv_timer_t phase_timer, rate_timer;
static int n_ready, n_failed, n_closed;
static int phase; /* 0 setup, 1 warmup, 2 measuring, 3 draining, 4 done */
static uint64_t t_measure_start, t_measure_end;
static uint64_t srv_cpu_start, srv_cpu_end;
static uint64_t srv2_cpu_start, srv2_cpu_end; /* --server-pid2 */
static struct rusage ru_start, ru_end;
static uint64_t msgs_measured, msgs_total_sent, msgs_total_recv, msg_errors;
static uint64_t logins_measured, logins_total, login_errors, connect_errors;
static long rss_before_kb, rss_after_kb;
static uint64_t *lat;
static size_t lat_n, lat_cap;
static int next_login_user;
static uint64_t rate_sent, rate_t0;
static int rate_rr;
static char first_error[256];
static int exit_code;
static SSL_CTX *ssl_ctx;
static char tls_version_seen[32], tls_cipher_seen[64];
static char tls_rbuf[65536]; /* TLS: ciphertext read from a socket (one loop, one read at a time) */

/* modes built of slots that start a new connection when the last one closed */
static int slot_mode(void)
{
    return opt.mode == M_LOGIN || opt.mode == M_HANDSHAKE;
}

/* SCRAM client-key cache: every user is created with the same password, salt and
 * iteration count, so the 4096-round PBKDF2 is done once per distinct salt. */
struct scram_cache {
    char salt[128];
    int iter;
    enum mech mech;
    unsigned char ckey[64], skey[64];
    unsigned len;
};
static struct scram_cache scache[8];
static int n_scache;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void note_error(const char *fmt, ...)
{
    if (first_error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(first_error, sizeof first_error, fmt, ap);
    va_end(ap);
}

static void buf_reserve(struct buf *b, size_t extra)
{
    if (b->len + extra <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 512;
    while (cap < b->len + extra)
        cap *= 2;
    b->p = realloc(b->p, cap);
    if (!b->p) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(2);
    }
    b->cap = cap;
}

static void buf_put(struct buf *b, const char *s, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

static uint64_t proc_cpu_ticks(int pid)
{
    char path[64], line[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = 0;
    char *p = strrchr(line, ')');
    if (!p)
        return 0;
    /* fields after ")": state(3) ppid ... utime is field 14, stime 15 */
    unsigned long ut = 0, st = 0;
    int field = 2;
    for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
        field++;
        if (field == 14)
            ut = strtoul(tok, NULL, 10);
        else if (field == 15) {
            st = strtoul(tok, NULL, 10);
            break;
        }
    }
    return ut + st;
}

static long proc_rss_kb(int pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* ---- output --------------------------------------------------------------------------- */

static void after_write(uv_write_t *req, int status);

static void start_write(struct client *c)
{
    if (c->writing || c->out.len == 0 || c->st == S_DEAD || c->st == S_CONNECTING ||
        uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    struct buf t = c->wbuf;
    c->wbuf = c->out;
    c->out = t;
    c->out.len = 0;
    uv_buf_t b = uv_buf_init(c->wbuf.p, (unsigned)c->wbuf.len);
    /* try the cheap path first */
    int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n == (int)c->wbuf.len) {
        c->wbuf.len = 0;
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        note_error("write: %s", uv_strerror(n));
        c->wbuf.len = 0;
        return;
    }
    if (n > 0) {
        memmove(c->wbuf.p, c->wbuf.p + n, c->wbuf.len - (size_t)n);
        c->wbuf.len -= (size_t)n;
        b = uv_buf_init(c->wbuf.p, (unsigned)c->wbuf.len);
    }
    c->writing = 1;
    c->wreq.data = c;
    int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, after_write);
    if (rc) {
        c->writing = 0;
        note_error("uv_write: %s", uv_strerror(rc));
    }
}

static void after_write(uv_write_t *req, int status)
{
    struct client *c = req->data;
    c->writing = 0;
    c->wbuf.len = 0;
    if (status < 0) {
        if (c->st != S_CLOSING && c->st != S_DEAD)
            note_error("write: %s", uv_strerror(status));
        return;
    }
    start_write(c);
}

static void kick(struct client *c)
{
    if (!c->dirty) {
        c->dirty = 1;
        c->next_dirty = dirty_head;
        dirty_head = c;
    }
}

static void send_str(struct client *c, const char *s, size_t n)
{
    buf_put(c->tls_up ? &c->plain : &c->out, s, n);
    kick(c);
}

static void sendf(struct client *c, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) {
        note_error("sendf: %d bytes do not fit", n);
        return;
    }
    send_str(c, tmp, (size_t)n);
}

/* ---- TLS (memory BIOs; the socket I/O stays with libuv) --------------------------------- */

static void fail_client(struct client *c, const char *what);
static void on_tls_up(struct client *c);
static const char *client_domain(const struct client *c);

static void tls_fail(struct client *c, const char *what, int rc)
{
    char msg[200], e[120] = "";
    int err = SSL_get_error(c->ssl, rc);
    unsigned long code = ERR_get_error();
    if (code)
        ERR_error_string_n(code, e, sizeof e);
    snprintf(msg, sizeof msg, "%s: SSL error %d %s", what, err, e);
    ERR_clear_error();
    fail_client(c, msg);
}

/* ciphertext the TLS engine produced -> the wire buffer */
static void tls_drain(struct client *c)
{
    BIO *w = SSL_get_wbio(c->ssl);
    size_t pending;
    while ((pending = BIO_ctrl_pending(w)) > 0) {
        buf_reserve(&c->out, pending);
        int n = BIO_read(w, c->out.p + c->out.len, (int)pending);
        if (n <= 0)
            break;
        c->out.len += (size_t)n;
    }
}

/* plaintext queued by send_str -> TLS records in the wire buffer; one SSL_write per flush */
static void tls_encrypt(struct client *c)
{
    if (!c->ssl || !c->tls_up || c->plain.len == 0)
        return;
    int rc = SSL_write(c->ssl, c->plain.p, (int)c->plain.len);
    if (rc <= 0) {
        tls_fail(c, "SSL_write", rc);
        return;
    }
    c->plain.len = 0;
    tls_drain(c);
}

static void tls_handshake(struct client *c)
{
    int rc = SSL_do_handshake(c->ssl);
    tls_drain(c);
    kick(c);
    if (rc == 1) {
        c->tls_up = 1;
        if (!tls_version_seen[0]) {
            snprintf(tls_version_seen, sizeof tls_version_seen, "%s", SSL_get_version(c->ssl));
            snprintf(tls_cipher_seen, sizeof tls_cipher_seen, "%s",
                     SSL_CIPHER_get_name(SSL_get_current_cipher(c->ssl)));
        }
        on_tls_up(c);
        return;
    }
    int err = SSL_get_error(c->ssl, rc);
    if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
        tls_fail(c, "TLS handshake", rc);
}

static void tls_start(struct client *c)
{
    c->ssl = SSL_new(ssl_ctx);
    BIO *r = BIO_new(BIO_s_mem()), *w = BIO_new(BIO_s_mem());
    if (!c->ssl || !r || !w) {
        fprintf(stderr, "loadgen: out of memory (TLS)\n");
        exit(2);
    }
    BIO_set_mem_eof_return(r, -1); /* an empty input BIO means "wait", not end of stream */
    SSL_set_bio(c->ssl, r, w);     /* the SSL owns both BIOs now */
    SSL_set_connect_state(c->ssl);
    SSL_set_tlsext_host_name(c->ssl, client_domain(c));
    c->tls_up = 0;
    c->st = S_TLS;
    tls_handshake(c);
}

static void on_flush(uv_check_t *h)
{
    (void)h;
    struct client *c = dirty_head;
    dirty_head = NULL;
    while (c) {
        struct client *n = c->next_dirty;
        c->dirty = 0;
        if (c->ssl)
            tls_encrypt(c);
        start_write(c);
        c = n;
    }
}

/* ---- base64 and SCRAM ---------------------------------------------------------------- */

static int b64enc(const unsigned char *in, size_t n, char *out)
{
    return EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}

static int b64dec(const char *in, size_t n, unsigned char *out)
{
    int len = EVP_DecodeBlock(out, (const unsigned char *)in, (int)n);
    if (len < 0)
        return -1;
    while (n > 0 && in[n - 1] == '=') {
        len--;
        n--;
    }
    return len;
}

static const EVP_MD *mech_md(void)
{
    return opt.mech == MECH_SCRAM1 ? EVP_sha1() : EVP_sha256();
}

static const char *mech_name(void)
{
    return opt.mech == MECH_PLAIN ? "PLAIN" : opt.mech == MECH_SCRAM1 ? "SCRAM-SHA-1"
                                                                     : "SCRAM-SHA-256";
}

static void user_name(int user, char *out, size_t n)
{
    snprintf(out, n, "%s%d", opt.prefix, user);
}

/* with --domain2 (federation benchmark S1) odd clients live on the second server, so every
 * pair (2k, 2k+1) talks across the s2s link */
static const char *client_domain(const struct client *c)
{
    return opt.domain2 && (c->idx & 1) ? opt.domain2 : opt.domain;
}

static void send_header(struct client *c)
{
    sendf(c, "<?xml version='1.0'?><stream:stream to='%s' xmlns='jabber:client' "
             "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
          client_domain(c));
}

static void send_auth(struct client *c)
{
    char user[64];
    user_name(c->user, user, sizeof user);
    if (opt.mech == MECH_PLAIN) {
        char raw[256], enc[400];
        int n = snprintf(raw, sizeof raw, "%c%s%c%s", 0, user, 0, opt.password);
        b64enc((unsigned char *)raw, (size_t)n, enc);
        sendf(c, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>",
              enc);
        c->st = S_SASL_FINAL;
        return;
    }
    unsigned char rnd[12];
    RAND_bytes(rnd, sizeof rnd);
    b64enc(rnd, sizeof rnd, c->cnonce);
    snprintf(c->client_first_bare, sizeof c->client_first_bare, "n=%s,r=%s", user, c->cnonce);
    char first[200], enc[300];
    int n = snprintf(first, sizeof first, "n,,%s", c->client_first_bare);
    b64enc((unsigned char *)first, (size_t)n, enc);
    sendf(c, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='%s'>%s</auth>",
          mech_name(), enc);
    c->st = S_SASL;
}

/* server-first -> client-final; 0 on success */
static int scram_respond(struct client *c, const char *b64, size_t b64len)
{
    unsigned char sf[512];
    if (b64len > 600)
        return -1;
    int sflen = b64dec(b64, b64len, sf);
    if (sflen <= 0)
        return -1;
    sf[sflen] = 0;
    const char *r = NULL, *s = NULL, *i = NULL;
    size_t rl = 0, sl = 0;
    for (char *p = (char *)sf; p && *p;) {
        char *comma = strchr(p, ',');
        size_t l = comma ? (size_t)(comma - p) : strlen(p);
        if (l > 2 && p[1] == '=') {
            if (p[0] == 'r') {
                r = p + 2;
                rl = l - 2;
            } else if (p[0] == 's') {
                s = p + 2;
                sl = l - 2;
            } else if (p[0] == 'i')
                i = p + 2;
        }
        p = comma ? comma + 1 : NULL;
    }
    if (!r || !s || !i || rl < strlen(c->cnonce) || strncmp(r, c->cnonce, strlen(c->cnonce)))
        return -1;
    int iter = atoi(i);
    if (sl >= sizeof scache[0].salt || iter < 1)
        return -1;
    const EVP_MD *md = mech_md();
    unsigned hl = (unsigned)EVP_MD_get_size(md);
    struct scram_cache *k = NULL;
    for (int j = 0; j < n_scache; j++)
        if (scache[j].iter == iter && scache[j].mech == opt.mech &&
            strlen(scache[j].salt) == sl && memcmp(scache[j].salt, s, sl) == 0)
            k = &scache[j];
    if (!k) {
        k = &scache[n_scache < 8 ? n_scache++ : 7];
        memcpy(k->salt, s, sl);
        k->salt[sl] = 0;
        k->iter = iter;
        k->mech = opt.mech;
        k->len = hl;
        unsigned char salt[128], salted[64];
        int saltlen = b64dec(s, sl, salt);
        if (saltlen < 0)
            return -1;
        PKCS5_PBKDF2_HMAC(opt.password, (int)strlen(opt.password), salt, saltlen, iter, md,
                          (int)hl, salted);
        unsigned l = 0;
        HMAC(md, salted, (int)hl, (const unsigned char *)"Client Key", 10, k->ckey, &l);
        HMAC(md, salted, (int)hl, (const unsigned char *)"Server Key", 10, k->skey, &l);
    }
    char final_wo[256];
    int fl = snprintf(final_wo, sizeof final_wo, "c=biws,r=%.*s", (int)rl, r);
    if (fl < 0 || (size_t)fl >= sizeof final_wo)
        return -1;
    char authmsg[1024];
    int al = snprintf(authmsg, sizeof authmsg, "%s,%s,%s", c->client_first_bare, (char *)sf,
                      final_wo);
    if (al < 0 || (size_t)al >= sizeof authmsg)
        return -1;
    unsigned char stored[64], sig[64], proof[64];
    unsigned l = 0;
    EVP_Digest(k->ckey, hl, stored, NULL, md, NULL);
    HMAC(md, stored, (int)hl, (unsigned char *)authmsg, (size_t)al, sig, &l);
    for (unsigned j = 0; j < hl; j++)
        proof[j] = k->ckey[j] ^ sig[j];
    char p64[100], msg[400], enc[600];
    b64enc(proof, hl, p64);
    int ml = snprintf(msg, sizeof msg, "%.*s,p=%s", fl, final_wo, p64);
    if (ml < 0 || (size_t)ml >= sizeof msg || (size_t)ml / 3 * 4 + 4 >= sizeof enc)
        return -1;
    b64enc((unsigned char *)msg, (size_t)ml, enc);
    sendf(c, "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>%s</response>", enc);
    return 0;
}

/* ---- connection life cycle ----------------------------------------------------------- */

static void start_client(struct client *c);
static void on_logged_in(struct client *c);

static void on_closed(uv_handle_t *h)
{
    struct client *c = h->data;
    buf_free(&c->in);
    buf_free(&c->out);
    buf_free(&c->wbuf);
    buf_free(&c->plain);
    SSL_free(c->ssl); /* and its BIOs */
    c->ssl = NULL;
    c->tls_up = 0;
    c->st = S_DEAD;
    n_closed++;
    if (slot_mode() && phase < 3)
        start_client(c); /* the slot goes on with the next login */
}

static void close_client(struct client *c)
{
    if (c->st == S_DEAD || uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    c->st = S_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void fail_client(struct client *c, const char *what)
{
    if (c->st == S_CLOSING || c->st == S_DEAD)
        return;
    note_error("client %d (user %d): %s", c->idx, c->user, what);
    if (slot_mode())
        login_errors++;
    else
        n_failed++;
    close_client(c);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    close_client(req->data);
}

static void send_message(struct client *c, struct client *to, uint64_t t)
{
    char user[64], tmp[512];
    user_name(to->user, user, sizeof user);
    int n = snprintf(tmp, sizeof tmp,
                     "<message to='%s@%s/%s%d' type='chat'><body>%llu %llu%.*s</body></message>",
                     user, client_domain(to), opt.resource, to->idx, (unsigned long long)c->sent_seq,
                     (unsigned long long)t, opt.body_pad, "                                "
                                                          "                                "
                                                          "                                "
                                                          "                                ");
    if (n < 0 || (size_t)n >= sizeof tmp) {
        fprintf(stderr, "loadgen: a message does not fit (%d bytes): domain too long?\n", n);
        exit(2);
    }
    send_str(c, tmp, (size_t)n);
    c->sent_seq++;
    c->outstanding++;
    msgs_total_sent++;
}

static void fill_window(struct client *c)
{
    if (phase >= 3 || c->st != S_READY)
        return;
    struct client *to = &clients[c->idx ^ 1];
    if (to->st != S_READY)
        return;
    uint64_t t = now_ns();
    while (c->outstanding < (uint64_t)opt.window)
        send_message(c, to, t);
}

static void record_latency(uint64_t ns)
{
    if (lat_n == lat_cap) {
        lat_cap = lat_cap ? lat_cap * 2 : 1 << 20;
        lat = realloc(lat, lat_cap * sizeof *lat);
        if (!lat) {
            fprintf(stderr, "loadgen: out of memory\n");
            exit(2);
        }
    }
    lat[lat_n++] = ns;
}

static void got_message(struct client *c, const char *s, size_t n)
{
    const char *b = memmem(s, n, "<body>", 6);
    if (!b || memmem(s, n, "type='error'", 12) || memmem(s, n, "type=\"error\"", 12)) {
        msg_errors++;
        note_error("client %d got a message without body or an error: %.*s", c->idx,
                   (int)(n > 200 ? 200 : n), s);
        return;
    }
    char *end;
    unsigned long long seq = strtoull(b + 6, &end, 10);
    unsigned long long ts = strtoull(end, NULL, 10);
    uint64_t now = now_ns();
    struct client *from = &clients[c->idx ^ 1];
    if (seq != c->recv_expect)
        c->misordered++;
    c->recv_expect = seq + 1;
    c->received++;
    msgs_total_recv++;
    if (from->outstanding)
        from->outstanding--;
    if (phase == 2) {
        msgs_measured++;
        record_latency(now - ts);
    }
    if (opt.mode == M_THROUGHPUT)
        fill_window(from);
}

/* returns bytes consumed from c->in */
static size_t process(struct client *c)
{
    char *p = c->in.p;
    size_t n = c->in.len;
    size_t used = 0;
    if (!p || n == 0)
        return 0;
    for (;;) {
        char *s = p + used;
        size_t left = n - used;
        if (left == 0)
            return used;
        if (c->st == S_READY || c->st == S_CLOSING) {
            char *e = memmem(s, left, "</message>", 10);
            if (!e) {
                char *err = memmem(s, left, "<stream:error", 13);
                if (err) {
                    fail_client(c, "stream error");
                    return n;
                }
                return used;
            }
            size_t len = (size_t)(e - s) + 10;
            char *m = memmem(s, len, "<message", 8);
            if (m)
                got_message(c, m, (size_t)(e + 10 - m));
            used += len;
            continue;
        }
        if (memmem(s, left, "<stream:error", 13) || memmem(s, left, "<failure", 8)) {
            char tmp[200];
            snprintf(tmp, sizeof tmp, "refused in state %d: %.*s", c->st,
                     (int)(left > 150 ? 150 : left), s);
            fail_client(c, tmp);
            return n;
        }
        switch (c->st) {
        case S_FEAT1:
        case S_FEAT2: {
            char *e = memmem(s, left, "</stream:features>", 18);
            if (!e)
                return used;
            used += (size_t)(e - s) + 18;
            if (c->st == S_FEAT1 && opt.tls == TLS_STARTTLS && !c->ssl) {
                send_str(c, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", 51);
                c->st = S_STARTTLS;
            } else if (c->st == S_FEAT1)
                send_auth(c);
            else {
                sendf(c, "<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:"
                         "xmpp-bind'><resource>%s%d</resource></bind></iq>",
                      opt.resource, c->idx);
                c->st = S_BIND;
            }
            break;
        }
        case S_STARTTLS: {
            char *a = memmem(s, left, "<proceed", 8);
            if (!a)
                return used;
            if (!memchr(a, '>', left - (size_t)(a - s)))
                return used;
            /* nothing may follow <proceed/> before our ClientHello */
            tls_start(c);
            return n;
        }
        case S_SASL: {
            char *a = memmem(s, left, "<challenge", 10);
            if (!a)
                return used;
            char *gt = memchr(a, '>', left - (size_t)(a - s));
            char *e = memmem(a, left - (size_t)(a - s), "</challenge>", 12);
            if (!gt || !e)
                return used;
            if (gt >= e) {
                fail_client(c, "malformed SCRAM challenge");
                return n;
            }
            if (scram_respond(c, gt + 1, (size_t)(e - gt - 1))) {
                fail_client(c, "bad SCRAM challenge");
                return n;
            }
            c->st = S_SASL_FINAL;
            used = (size_t)(e - p) + 12;
            break;
        }
        case S_SASL_FINAL: {
            char *a = memmem(s, left, "<success", 8);
            if (!a)
                return used;
            char *e = memmem(a, left - (size_t)(a - s), "</success>", 10);
            char *e2 = memmem(a, left - (size_t)(a - s), "/>", 2);
            char *gt = memchr(a, '>', left - (size_t)(a - s));
            if (!gt)
                return used;
            char *stop = (gt > a && gt[-1] == '/') ? gt + 1 : (e ? e + 10 : NULL);
            (void)e2;
            if (!stop)
                return used;
            used = (size_t)(stop - p);
            send_header(c);
            c->st = S_FEAT2;
            break;
        }
        case S_BIND: {
            char *e = memmem(s, left, "</iq>", 5);
            if (!e)
                return used;
            if (!memmem(s, (size_t)(e - s), "result", 6)) {
                fail_client(c, "bind refused");
                return n;
            }
            used += (size_t)(e - s) + 5;
            on_logged_in(c);
            if (c->st != S_READY)
                return n;
            break;
        }
        default:
            return n;
        }
    }
}

static void on_alloc(uv_handle_t *h, size_t sug, uv_buf_t *b)
{
    (void)sug;
    struct client *c = h->data;
    if (c->ssl) { /* ciphertext goes through the TLS engine into c->in */
        *b = uv_buf_init(tls_rbuf, sizeof tls_rbuf);
        return;
    }
    buf_reserve(&c->in, 65536);
    *b = uv_buf_init(c->in.p + c->in.len, (unsigned)(c->in.cap - c->in.len));
}

static void on_eof(struct client *c, ssize_t nread)
{
    if (c->st == S_CLOSING || c->st == S_DEAD)
        return;
    if (opt.mode == M_LOGIN && c->st == S_READY)
        close_client(c);
    else
        fail_client(c, nread == UV_EOF ? "server closed the connection"
                                       : uv_strerror((int)nread));
}

/* ciphertext from the socket -> handshake progress, plaintext appended to c->in;
 * 0 when there may be plaintext to process */
static int tls_feed(struct client *c, const char *data, size_t n)
{
    if (BIO_write(SSL_get_rbio(c->ssl), data, (int)n) != (int)n) {
        fail_client(c, "BIO_write failed");
        return -1;
    }
    if (!c->tls_up) {
        tls_handshake(c);
        if (!c->tls_up || c->st == S_CLOSING || c->st == S_DEAD)
            return -1;
    }
    for (;;) {
        buf_reserve(&c->in, 16384);
        size_t room = c->in.cap - c->in.len;
        int r = SSL_read(c->ssl, c->in.p + c->in.len, room > INT32_MAX ? INT32_MAX : (int)room);
        if (r > 0) {
            c->in.len += (size_t)r;
            continue;
        }
        int err = SSL_get_error(c->ssl, r);
        if (err == SSL_ERROR_WANT_READ)
            break;
        if (err == SSL_ERROR_ZERO_RETURN) { /* close_notify: as end of stream */
            ERR_clear_error();
            on_eof(c, UV_EOF);
            return -1;
        }
        tls_fail(c, "SSL_read", r);
        return -1;
    }
    tls_drain(c); /* post-handshake messages may want an answer */
    if (c->out.len)
        kick(c);
    return 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct client *c = s->data;
    if (nread < 0) {
        on_eof(c, nread);
        return;
    }
    if (nread == 0)
        return;
    if (b->base == tls_rbuf) {
        if (!c->ssl || tls_feed(c, b->base, (size_t)nread))
            return;
    } else
        c->in.len += (size_t)nread;
    size_t used = process(c);
    if (c->st == S_DEAD || uv_is_closing((uv_handle_t *)&c->tcp) || c->in.len == 0)
        return;
    if (used > c->in.len)
        used = c->in.len;
    memmove(c->in.p, c->in.p + used, c->in.len - used);
    c->in.len -= used;
    /* an idle client keeps no input buffer */
    if (c->in.len == 0 && c->st == S_READY && opt.mode == M_IDLE)
        buf_free(&c->in);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct client *c = req->data;
    if (status < 0) {
        if (c->st == S_CLOSING || c->st == S_DEAD || phase >= 3)
            return;
        connect_errors++;
        note_error("connect: %s", uv_strerror(status));
        if (slot_mode())
            login_errors++;
        else
            n_failed++;
        close_client(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (opt.tls == TLS_DIRECT) { /* XEP-0368 or a bare TLS server: TLS first */
        tls_start(c);
        return;
    }
    c->st = S_FEAT1;
    send_header(c);
}

static void start_client(struct client *c)
{
    memset(&c->in, 0, sizeof c->in);
    memset(&c->out, 0, sizeof c->out);
    memset(&c->wbuf, 0, sizeof c->wbuf);
    memset(&c->plain, 0, sizeof c->plain);
    c->ssl = NULL;
    c->tls_up = 0;
    c->writing = c->dirty = 0;
    c->st = S_CONNECTING;
    if (slot_mode()) {
        c->user = opt.user_base + next_login_user;
        next_login_user = (next_login_user + 1) % opt.users;
    }
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    struct sockaddr_storage sa;
    const char *host = opt.host2 && (c->idx & 1) ? opt.host2 : opt.host;
    if (uv_ip4_addr(host, opt.port, (struct sockaddr_in *)&sa) &&
        uv_ip6_addr(host, opt.port, (struct sockaddr_in6 *)&sa)) {
        fprintf(stderr, "loadgen: bad host %s\n", host);
        exit(2);
    }
    int rc = uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&sa, on_connect);
    if (rc) {
        note_error("connect: %s", uv_strerror(rc));
        connect_errors++;
        close_client(c);
    }
}

/* ---- phases -------------------------------------------------------------------------- */

static void begin_measure(void);
static void end_measure(void);
static void start_next_setup(void);
static int setup_next; /* next client to start in setup (bounded concurrency) */
static int setup_inflight;

/* a slot's connection is done: close_notify (TLS), write what is pending, half-close,
 * and do not wait for the server's answer */
static void close_slot(struct client *c)
{
    if (c->ssl) {
        tls_encrypt(c);
        if (c->st == S_CLOSING || c->st == S_DEAD)
            return;
        SSL_shutdown(c->ssl);
        ERR_clear_error();
        tls_drain(c);
    }
    kick(c);
    on_flush(NULL);
    c->st = S_CLOSING;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown))
        close_client(c);
}

static void on_tls_up(struct client *c)
{
    if (opt.mode == M_HANDSHAKE) {
        logins_total++;
        if (phase == 2)
            logins_measured++;
        close_slot(c);
        return;
    }
    c->st = S_FEAT1; /* a new stream over TLS; its features offer SASL */
    send_header(c);
}

static void on_logged_in(struct client *c)
{
    if (opt.mode == M_LOGIN) {
        logins_total++;
        if (phase == 2)
            logins_measured++;
        send_str(c, "</stream:stream>", 16);
        close_slot(c);
        return;
    }
    c->st = S_READY;
    if (opt.presence)
        send_str(c, "<presence/>", 11);
    n_ready++;
    setup_inflight--;
    start_next_setup();
}

static double now_s(void)
{
    return (double)now_ns() / 1e9;
}

static void on_phase_timer(uv_timer_t *t);

static void start_next_setup(void)
{
    while (setup_next < opt.clients && setup_inflight < opt.concurrency) {
        setup_inflight++;
        start_client(&clients[setup_next++]);
    }
}

/* Rate mode paces its sends with a timerfd every --tick-us (100 us by default): libuv's
 * timers tick in whole milliseconds, and at 50,000 messages per second a 1 ms tick would
 * send bursts of 50 messages that queue behind each other in the server, which adds up
 * to half a millisecond of latency that no real client population produces. */
static uv_poll_t tick_poll;
static int tick_fd = -1;
static int tick_used_us; /* the pacing in effect, reported */

static void rate_send(void)
{
    if (phase >= 3)
        return;
    uint64_t now = now_ns();
    uint64_t due = (uint64_t)((double)(now - rate_t0) / 1e9 * opt.rate);
    while (rate_sent < due) {
        struct client *c = &clients[rate_rr];
        rate_rr = (rate_rr + 1) % opt.clients;
        struct client *to = &clients[c->idx ^ 1];
        if (c->st == S_READY && to->st == S_READY)
            send_message(c, to, now);
        rate_sent++;
    }
    /* write now: the check handle would run only after the next poll, up to a tick later */
    on_flush(NULL);
}

static void on_rate_timer(uv_timer_t *t)
{
    (void)t;
    rate_send();
}

static void on_tick(uv_poll_t *h, int status, int events)
{
    (void)h;
    (void)events;
    uint64_t expirations;
    if (status == 0 && read(tick_fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
        note_error("timerfd: %s", strerror(errno));
    rate_send();
}

static void on_tick_closed(uv_handle_t *h)
{
    (void)h;
    close(tick_fd);
    tick_fd = -1;
}

static void start_rate(void)
{
    rate_t0 = now_ns();
    if (opt.tick_us < 1000) {
        tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        struct itimerspec its = {{0, opt.tick_us * 1000L}, {0, opt.tick_us * 1000L}};
        if (tick_fd >= 0 && timerfd_settime(tick_fd, 0, &its, NULL) == 0 &&
            uv_poll_init(loop, &tick_poll, tick_fd) == 0) {
            uv_poll_start(&tick_poll, UV_READABLE, on_tick);
            tick_used_us = opt.tick_us;
            return;
        }
        if (tick_fd >= 0)
            close(tick_fd);
        tick_fd = -1;
        fprintf(stderr, "loadgen: no timerfd (%s); pacing with 1 ms timer ticks\n",
                strerror(errno));
    }
    uv_timer_start(&rate_timer, on_rate_timer, 1, 1);
    tick_used_us = 1000;
}

static void all_ready(void)
{
    if (opt.mode == M_IDLE) {
        phase = 1;
        uv_timer_start(&phase_timer, on_phase_timer, (uint64_t)(opt.settle * 1000), 0);
        return;
    }
    phase = 1;
    if (opt.mode == M_THROUGHPUT) {
        for (int i = 0; i < opt.clients; i++)
            fill_window(&clients[i]);
    } else if (opt.mode == M_RATE) {
        start_rate();
    }
    uv_timer_start(&phase_timer, on_phase_timer, (uint64_t)(opt.warmup * 1000), 0);
}

static uv_timer_t watch_timer;
static double setup_started;
static double drain_started;

static int all_drained(void)
{
    for (int i = 0; i < opt.clients; i++)
        if (clients[i].st == S_READY && clients[i].outstanding)
            return 0;
    return 1;
}

static void finish(void)
{
    phase = 4;
    uv_timer_stop(&watch_timer);
    uv_timer_stop(&rate_timer);
    uv_timer_stop(&phase_timer);
    for (int i = 0; i < opt.clients; i++)
        if (clients[i].st != S_DEAD)
            close_client(&clients[i]);
    uv_close((uv_handle_t *)&flush_check, NULL);
    uv_close((uv_handle_t *)&watch_timer, NULL);
    uv_close((uv_handle_t *)&rate_timer, NULL);
    uv_close((uv_handle_t *)&phase_timer, NULL);
    if (tick_fd >= 0) {
        uv_poll_stop(&tick_poll);
        uv_close((uv_handle_t *)&tick_poll, on_tick_closed);
    }
}

static void on_watch(uv_timer_t *t)
{
    (void)t;
    if (phase == 0 && !slot_mode()) {
        if (n_ready + n_failed >= opt.clients) {
            if (n_failed) {
                fprintf(stderr, "loadgen: %d of %d clients failed to log in: %s\n", n_failed,
                        opt.clients, first_error);
                exit_code = 3;
                finish();
                return;
            }
            fprintf(stderr, "loadgen: %d clients logged in in %.2f s\n", n_ready,
                    now_s() - setup_started);
            all_ready();
        } else if (now_s() - setup_started > 120) {
            fprintf(stderr, "loadgen: login timeout: %d ready, %d failed: %s\n", n_ready,
                    n_failed, first_error);
            exit_code = 3;
            finish();
        }
    }
    if (phase == 3) {
        if (all_drained() || now_s() - drain_started > (opt.check ? 10 : 1))
            finish();
    }
}

static void on_phase_timer(uv_timer_t *t)
{
    (void)t;
    if (phase == 1) {
        if (opt.mode == M_IDLE) {
            rss_after_kb = opt.server_pid ? proc_rss_kb(opt.server_pid) : -1;
            phase = 2;
            begin_measure();
            if (opt.hold > 0) {
                uv_timer_start(&phase_timer, on_phase_timer, (uint64_t)(opt.hold * 1000), 0);
                return;
            }
            end_measure();
            phase = 3;
            drain_started = now_s();
            return;
        }
        begin_measure();
        phase = 2;
        uv_timer_start(&phase_timer, on_phase_timer, (uint64_t)(opt.duration * 1000), 0);
    } else if (phase == 2) {
        end_measure();
        phase = 3;
        drain_started = now_s();
        if (slot_mode())
            finish();
    }
}

static void begin_measure(void)
{
    t_measure_start = now_ns();
    getrusage(RUSAGE_SELF, &ru_start);
    if (opt.server_pid)
        srv_cpu_start = proc_cpu_ticks(opt.server_pid);
    if (opt.server_pid2)
        srv2_cpu_start = proc_cpu_ticks(opt.server_pid2);
}

static void end_measure(void)
{
    t_measure_end = now_ns();
    getrusage(RUSAGE_SELF, &ru_end);
    if (opt.server_pid)
        srv_cpu_end = proc_cpu_ticks(opt.server_pid);
    if (opt.server_pid2)
        srv2_cpu_end = proc_cpu_ticks(opt.server_pid2);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p)
{
    if (!lat_n)
        return -1;
    size_t i = (size_t)(p / 100.0 * (double)(lat_n - 1) + 0.5);
    return (double)lat[i] / 1e6; /* ms */
}

static double tv_s(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec / 1e6;
}

static void report(void)
{
    double win = (double)(t_measure_end - t_measure_start) / 1e9;
    double self_cpu = (tv_s(ru_end.ru_utime) + tv_s(ru_end.ru_stime)) -
                      (tv_s(ru_start.ru_utime) + tv_s(ru_start.ru_stime));
    double self_share = win > 0.05 ? self_cpu / win : -1; /* idle mode has no window */
    long hz = sysconf(_SC_CLK_TCK);
    double srv_cpu = opt.server_pid ? (double)(srv_cpu_end - srv_cpu_start) / (double)hz : -1;
    if (lat_n)
        qsort(lat, lat_n, sizeof *lat, cmp_u64);
    uint64_t misordered = 0, lost = 0;
    if (opt.mode == M_THROUGHPUT || opt.mode == M_RATE)
        for (int i = 0; i < opt.clients; i++) {
            misordered += clients[i].misordered;
            lost += clients[i].outstanding;
        }
    const char *modes[] = {"throughput", "rate", "login", "idle", "handshake"};
    const char *tlsnames[] = {"none", "starttls", "direct"};
    printf("{\"mode\":\"%s\",\"mech\":\"%s\",\"clients\":%d,\"window_s\":%.3f,"
           "\"generator_cpu_s\":%.3f,\"generator_cpu_share\":%.3f,"
           "\"generator_saturated\":%s,\"tls\":\"%s\",",
           modes[opt.mode], opt.mode == M_HANDSHAKE ? "none" : mech_name(),
           slot_mode() ? opt.concurrency : opt.clients, win, self_cpu, self_share,
           (opt.mode != M_IDLE && self_share > 0.9) ? "true" : "false", tlsnames[opt.tls]);
    if (opt.tls != TLS_NONE)
        printf("\"tls_version\":\"%s\",\"tls_cipher\":\"%s\",", tls_version_seen,
               tls_cipher_seen);
    if (opt.server_pid)
        printf("\"server_cpu_s\":%.3f,\"server_cpu_share\":%.3f,", srv_cpu,
               win > 0 ? srv_cpu / win : 0);
    double srv2_cpu = opt.server_pid2 ? (double)(srv2_cpu_end - srv2_cpu_start) / (double)hz : -1;
    if (opt.server_pid2)
        printf("\"server2_cpu_s\":%.3f,\"server2_cpu_share\":%.3f,", srv2_cpu,
               win > 0 ? srv2_cpu / win : 0);
    if (opt.mode == M_THROUGHPUT || opt.mode == M_RATE) {
        double rate = win > 0 ? (double)msgs_measured / win : 0;
        if (opt.mode == M_RATE)
            printf("\"tick_us\":%d,", tick_used_us);
        else
            printf("\"window\":%d,", opt.window);
        printf("\"target_rate\":%.0f,\"messages\":%llu,\"messages_per_s\":%.0f,"
               "\"p50_ms\":%.4f,\"p99_ms\":%.4f,\"p999_ms\":%.4f,\"max_ms\":%.4f,",
               opt.mode == M_RATE ? opt.rate : 0, (unsigned long long)msgs_measured, rate,
               pct(50), pct(99), pct(99.9), lat_n ? (double)lat[lat_n - 1] / 1e6 : -1);
        if (opt.server_pid)
            printf("\"server_us_per_msg\":%.2f,",
                   msgs_measured ? srv_cpu * 1e6 / (double)msgs_measured : -1);
        if (opt.server_pid2)
            printf("\"server2_us_per_msg\":%.2f,",
                   msgs_measured ? srv2_cpu * 1e6 / (double)msgs_measured : -1);
        printf("\"generator_us_per_msg\":%.2f,",
               msgs_measured ? self_cpu * 1e6 / (double)msgs_measured : -1);
        printf("\"sent_total\":%llu,\"received_total\":%llu,\"undelivered\":%llu,"
               "\"misordered\":%llu,\"message_errors\":%llu,\"drain_checked\":%s,",
               (unsigned long long)msgs_total_sent, (unsigned long long)msgs_total_recv,
               (unsigned long long)lost, (unsigned long long)misordered,
               (unsigned long long)msg_errors, opt.check ? "true" : "false");
    } else if (slot_mode()) { /* handshake mode: a "login" is one TLS handshake */
        printf("\"logins\":%llu,\"logins_per_s\":%.0f,\"login_errors\":%llu,",
               (unsigned long long)logins_measured,
               win > 0 ? (double)logins_measured / win : 0, (unsigned long long)login_errors);
        if (opt.server_pid)
            printf("\"server_us_per_login\":%.2f,",
                   logins_measured ? srv_cpu * 1e6 / (double)logins_measured : -1);
    } else {
        printf("\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,\"kb_per_client\":%.2f,",
               rss_before_kb, rss_after_kb,
               (rss_before_kb >= 0 && rss_after_kb >= 0 && n_ready)
                   ? (double)(rss_after_kb - rss_before_kb) / n_ready
                   : -1);
    }
    printf("\"clients_failed\":%d,\"connect_errors\":%llu,\"first_error\":\"", n_failed,
           (unsigned long long)connect_errors);
    for (char *p = first_error; *p; p++)
        printf(*p == '"' || *p == '\\' ? "\\%c" : (*p < 32 ? " " : "%c"), *p);
    printf("\"}\n");
}

static void usage(void)
{
    fprintf(stderr,
            "usage: loadgen [--host A] [--port P] [--domain D] [--prefix u] [--password PW]\n"
            "  [--user-base 1] [--users N] [--clients N]\n"
            "  [--mode throughput|rate|login|idle|handshake] [--tls none|starttls|direct]\n"
            "  [--tls-min 1.2|1.3] [--tick-us 100]\n"
            "  [--mech PLAIN|SCRAM-SHA-1|SCRAM-SHA-256] [--window W] [--rate R]\n"
            "  [--warmup S] [--duration S] [--concurrency C] [--server-pid PID]\n"
            "  [--presence] [--hold S] [--settle S] [--no-check] [--body-pad N]\n"
            "  [--host2 A --domain2 D [--server-pid2 PID]]  (odd clients on a 2nd server)\n");
    exit(2);
}

int main(int argc, char **argv)
{
    static struct option lo[] = {
        {"host", 1, 0, 'h'},      {"port", 1, 0, 'p'},        {"domain", 1, 0, 'd'},
        {"prefix", 1, 0, 'x'},    {"password", 1, 0, 'P'},    {"user-base", 1, 0, 'b'},
        {"users", 1, 0, 'U'},     {"clients", 1, 0, 'n'},     {"mode", 1, 0, 'm'},
        {"mech", 1, 0, 'M'},      {"window", 1, 0, 'w'},      {"rate", 1, 0, 'r'},
        {"warmup", 1, 0, 'W'},    {"duration", 1, 0, 't'},    {"concurrency", 1, 0, 'c'},
        {"server-pid", 1, 0, 's'}, {"presence", 0, 0, 'e'},   {"hold", 1, 0, 'H'},
        {"settle", 1, 0, 'S'},    {"no-check", 0, 0, 'N'},    {"body-pad", 1, 0, 'B'},
        {"host2", 1, 0, '2'},     {"domain2", 1, 0, '3'},     {"server-pid2", 1, 0, '4'},
        {"tls", 1, 0, 'T'},       {"tls-min", 1, 0, 'V'},     {"tick-us", 1, 0, 'K'},
        {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (ch) {
        case 'h': opt.host = optarg; break;
        case 'p': opt.port = atoi(optarg); break;
        case 'd': opt.domain = optarg; break;
        case 'x': opt.prefix = optarg; break;
        case 'P': opt.password = optarg; break;
        case 'b': opt.user_base = atoi(optarg); break;
        case 'U': opt.users = atoi(optarg); break;
        case 'n': opt.clients = atoi(optarg); break;
        case 'm':
            opt.mode = !strcmp(optarg, "throughput") ? M_THROUGHPUT
                       : !strcmp(optarg, "rate")     ? M_RATE
                       : !strcmp(optarg, "login")    ? M_LOGIN
                       : !strcmp(optarg, "idle")     ? M_IDLE
                       : !strcmp(optarg, "handshake") ? M_HANDSHAKE
                                                     : (usage(), M_THROUGHPUT);
            break;
        case 'M':
            opt.mech = !strcmp(optarg, "PLAIN")           ? MECH_PLAIN
                       : !strcmp(optarg, "SCRAM-SHA-1")   ? MECH_SCRAM1
                       : !strcmp(optarg, "SCRAM-SHA-256") ? MECH_SCRAM256
                                                          : (usage(), MECH_PLAIN);
            break;
        case 'w': opt.window = atoi(optarg); break;
        case 'r': opt.rate = atof(optarg); break;
        case 'W': opt.warmup = atof(optarg); break;
        case 't': opt.duration = atof(optarg); break;
        case 'c': opt.concurrency = atoi(optarg); break;
        case 's': opt.server_pid = atoi(optarg); break;
        case 'e': opt.presence = 1; break;
        case 'H': opt.hold = atof(optarg); break;
        case 'S': opt.settle = atof(optarg); break;
        case 'N': opt.check = 0; break;
        case 'B': opt.body_pad = atoi(optarg) > 128 ? 128 : atoi(optarg); break;
        case '2': opt.host2 = optarg; break;
        case '3': opt.domain2 = optarg; break;
        case '4': opt.server_pid2 = atoi(optarg); break;
        case 'T':
            opt.tls = !strcmp(optarg, "none")       ? TLS_NONE
                      : !strcmp(optarg, "starttls") ? TLS_STARTTLS
                      : !strcmp(optarg, "direct")   ? TLS_DIRECT
                                                    : (usage(), TLS_NONE);
            break;
        case 'K':
            opt.tick_us = atoi(optarg);
            if (opt.tick_us < 10 || opt.tick_us > 1000)
                usage();
            break;
        case 'V':
            opt.tls_min = !strcmp(optarg, "1.3")   ? TLS1_3_VERSION
                          : !strcmp(optarg, "1.2") ? TLS1_2_VERSION
                                                   : (usage(), TLS1_3_VERSION);
            break;
        default: usage();
        }
    }
    if (opt.mode == M_HANDSHAKE)
        opt.tls = TLS_DIRECT; /* nothing but TLS */
    if (opt.concurrency < 1)
        opt.concurrency = 1;
    if (opt.tls != TLS_NONE) {
        ssl_ctx = SSL_CTX_new(TLS_client_method());
        if (!ssl_ctx) {
            fprintf(stderr, "loadgen: SSL_CTX_new failed\n");
            return 2;
        }
        SSL_CTX_set_min_proto_version(ssl_ctx, opt.tls_min);
        SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL); /* self-signed bench.test */
        /* every handshake is a full one, as for a new client */
        SSL_CTX_set_session_cache_mode(ssl_ctx, SSL_SESS_CACHE_OFF);
        SSL_CTX_set_options(ssl_ctx, SSL_OP_NO_TICKET);
        if (opt.mode == M_IDLE) /* keep the generator's own memory small */
            SSL_CTX_set_mode(ssl_ctx, SSL_MODE_RELEASE_BUFFERS);
    }
    if (!slot_mode() && (opt.clients < 2 || opt.clients % 2))
        opt.clients += opt.clients % 2, opt.clients = opt.clients < 2 ? 2 : opt.clients;
    if (opt.users <= 0)
        opt.users = opt.clients;
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    int nslots = slot_mode() ? opt.concurrency : opt.clients;
    clients = calloc((size_t)nslots, sizeof *clients);
    if (!clients) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 2;
    }
    for (int i = 0; i < nslots; i++) {
        clients[i].idx = i;
        clients[i].user = opt.user_base + i;
        clients[i].st = S_DEAD;
    }
    uv_check_init(loop, &flush_check);
    uv_check_start(&flush_check, on_flush);
    uv_timer_init(loop, &phase_timer);
    uv_timer_init(loop, &rate_timer);
    uv_timer_init(loop, &watch_timer);
    uv_timer_start(&watch_timer, on_watch, 50, 50);
    if (opt.server_pid)
        rss_before_kb = proc_rss_kb(opt.server_pid);
    setup_started = now_s();
    if (slot_mode()) {
        opt.clients = nslots;
        phase = 1;
        for (int i = 0; i < nslots; i++)
            start_client(&clients[i]);
        uv_timer_start(&phase_timer, on_phase_timer, (uint64_t)(opt.warmup * 1000), 0);
    } else {
        start_next_setup();
    }
    uv_run(loop, UV_RUN_DEFAULT);
    if (exit_code == 0 || t_measure_end)
        report();
    uv_loop_close(loop);
    free(clients);
    free(lat);
    SSL_CTX_free(ssl_ctx);
    return exit_code;
}
