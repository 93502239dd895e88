/* conn.h - TCP listeners and connections on one libuv loop, clear or TLS (STARTTLS, direct
 * TLS, both roles), write queues flushed once per loop iteration. No XML or XMPP here.
 * Errors: int returns 0 or a negative FG_E* code; constructors return NULL + err text. */
#ifndef FG_CONN_H
#define FG_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct fg_tls_ctx;
struct fg_conn;
struct fg_listener;
struct x509_st; /* OpenSSL's X509 */

/* What a connection tells its owner. Every callback runs from the loop, never from inside
 * an fg_conn_* call, so the owner may call any fg_conn_* function (close, abort, write,
 * start_tls) from any callback. A connection, its listener and its callbacks belong to
 * one loop thread. Creating the first listener or connection of a process sets SIGPIPE to
 * ignored (if it was default): a peer that resets must cost an error, not the process. */
struct fg_conn_cb {
    /* Received bytes, plaintext (after TLS); buf is valid during the call only. Not called
     * after fg_conn_close/abort. Bytes that follow a STARTTLS command in the same call must
     * be discarded by the caller: everything read after fg_conn_start_tls goes into TLS. */
    void (*data)(void *ud, const char *buf, size_t len);
    /* The TLS handshake completed (peer-certificate verdict and TLS info are now set). */
    void (*tls_ready)(void *ud);
    /* Outbound only: the TCP connection is up. A failed connect reports closed instead. */
    void (*connected)(void *ud);
    /* Exactly once per connection, whoever closed it and why; after it returns the
     * connection is freed: forget the pointer. reason is for logs ("peer closed the
     * connection", "connection reset by peer", "TLS handshake failed: ...", "closed"). */
    void (*closed)(void *ud, const char *reason);
};

/* --- listeners --- */

/* Listens on addr ("host:port", "[v6]:port" as in the configuration; port 0 = an ephemeral
 * port, see fg_listener_port). Each accepted connection is handed to on_accept, which
 * must call fg_conn_set_cb (or close the connection) before it returns. direct_tls: TLS
 * (server role, tls) starts at once (XEP-0368); otherwise tls, which may be NULL, is the
 * context fg_conn_start_tls uses. max_buffered: limit on unsent bytes per connection (SPEC
 * [limits] max_buffered; 0 = none). The listener holds a reference to tls. Returns NULL
 * with "cannot listen on ADDR: address already in use" and the like in err. */
struct fg_listener *fg_listener_new(uv_loop_t *loop, const char *addr, bool direct_tls,
                                    struct fg_tls_ctx *tls, size_t max_buffered,
                                    void (*on_accept)(void *ud, struct fg_conn *c), void *ud,
                                    char *err, size_t errlen);
/* The bound port (useful after port 0). */
int fg_listener_port(const struct fg_listener *l);
/* Replaces the context for connections accepted from now on (certificate reload). */
void fg_listener_set_tls(struct fg_listener *l, struct fg_tls_ctx *tls);
/* Stops accepting and frees the listener (deferred; call once); accepted connections live
 * on. Run the loop until it has no handles left before uv_loop_close. */
void fg_listener_close(struct fg_listener *l);

/* --- connections --- */

/* Outbound TCP connection to a numeric IPv4 or IPv6 address. Returns at once; cb->connected
 * or cb->closed reports the outcome (the caller bounds the wait with its own timer and
 * fg_conn_abort). Writes and fg_conn_start_tls_client are accepted before the connection
 * is up and go out once it is. NULL with err when ip is not an address. */
struct fg_conn *fg_conn_connect(uv_loop_t *loop, const char *ip, int port, size_t max_buffered,
                                const struct fg_conn_cb *cb, void *ud, char *err, size_t errlen);

void fg_conn_set_cb(struct fg_conn *c, const struct fg_conn_cb *cb, void *ud);

/* Queues len bytes (copied) for sending; the queue is sent once per loop iteration, all
 * pending writes in one system call where the kernel takes them. Under TLS the bytes are
 * encrypted together at that point, so many small writes make large records. Returns 0;
 * FG_ELIMIT (nothing queued) when the unsent bytes would exceed max_buffered: the caller
 * should then close the stream; FG_EIO after close/abort or a failure. */
int fg_conn_write(struct fg_conn *c, const void *buf, size_t len);
/* Unsent bytes (queued, being encrypted or in the kernel's hands through libuv). */
size_t fg_conn_pending(const struct fg_conn *c);

/* STARTTLS, server role: what is already queued (<proceed/>) goes out in the clear, then
 * the handshake runs with tls (NULL = the listener's context). Later writes are sent
 * encrypted once the handshake completes (cb->tls_ready). 0; FG_EINVAL when TLS is already
 * on or there is no server context; FG_EIO when closing or on failure (logged). */
int fg_conn_start_tls(struct fg_conn *c, struct fg_tls_ctx *tls);
/* The same, with default_domain: the hosted domain whose certificate serves when the
 * client sends no SNI (SPEC section 3: by SNI, else by the stream's 'to'; NULL = the
 * first domain, which is what fg_conn_start_tls does). */
int fg_conn_start_tls_ex(struct fg_conn *c, struct fg_tls_ctx *tls, const char *default_domain);
/* Client role (outbound s2s, STARTTLS or direct TLS): sends the ClientHello with SNI sni
 * (NULL = none), the client certificate of local_domain (NULL = the context's first
 * domain, if it has any) and ALPN alpn (NULL = none; "xmpp-server" for XEP-0368). */
int fg_conn_start_tls_client(struct fg_conn *c, struct fg_tls_ctx *tls, const char *sni,
                             const char *local_domain, const char *alpn);

/* Sends what is queued (under TLS then close_notify), half-closes, waits briefly for the
 * peer to finish, then closes; cb->closed follows. No data callbacks after this call. */
void fg_conn_close(struct fg_conn *c);
/* Closes at once, dropping what is queued; cb->closed follows. */
void fg_conn_abort(struct fg_conn *c);

/* "127.0.0.1:50000", "[::1]:50000": the remote end, for logs. */
const char *fg_conn_peer(const struct fg_conn *c);

/* --- TLS information (valid after cb->tls_ready) --- */

/* true once a TLS handshake has completed on the connection. */
bool fg_conn_is_tls(const struct fg_conn *c);
/* "TLSv1.3", "TLSv1.2"; NULL without TLS. */
const char *fg_conn_tls_version(const struct fg_conn *c);
/* The SNI name the client sent (server role) or that we sent (client role); NULL if none. */
const char *fg_conn_tls_sni(const struct fg_conn *c);
/* The hosted domain whose certificate we presented (server role) or offered (client role). */
const char *fg_conn_tls_domain(const struct fg_conn *c);
/* The ALPN protocol agreed, copied into buf (NUL-terminated); NULL if none or too long. */
const char *fg_conn_tls_alpn(const struct fg_conn *c, char *buf, size_t len);
/* true when the peer presented a certificate whose chain verified against the trust store.
 * Identity (RFC 9525 name matching) is the caller's check on fg_conn_tls_peer_cert. */
bool fg_conn_tls_peer_verified(const struct fg_conn *c);
/* Why not: "no certificate", "certificate has expired", ...; NULL when verified. */
const char *fg_conn_tls_verify_error(const struct fg_conn *c);
/* The peer's leaf certificate (borrowed: valid until cb->closed returns), NULL if none. */
struct x509_st *fg_conn_tls_peer_cert(const struct fg_conn *c);
/* Channel binding 'tls-exporter' (RFC 9266): 32 bytes into out (len must be 32). TLS 1.3,
 * or TLS 1.2 with the extended master secret; else FG_EINVAL. */
int fg_conn_tls_exporter(const struct fg_conn *c, unsigned char *out, size_t len);
/* Channel binding 'tls-unique' (RFC 5929): the first Finished message, TLS 1.2 only
 * (undefined for 1.3: FG_EINVAL). *len: capacity of out in, bytes written out (12 usually). */
int fg_conn_tls_unique(const struct fg_conn *c, unsigned char *out, size_t *len);

/* --- counters, for tests and metrics (process-wide, loop thread only) --- */

struct fg_net_stats {
    uint64_t accepted;    /* connections accepted */
    uint64_t write_calls; /* socket writes issued (uv_try_write + uv_write) */
    uint64_t bytes_out;   /* bytes handed to the kernel (uv_write counted when queued) */
    uint64_t tls_done;    /* TLS handshakes completed */
    uint64_t tls_failed;  /* TLS handshakes failed */
    uint64_t live;        /* connections not yet freed */
};
void fg_net_get_stats(struct fg_net_stats *out);

#endif
