/* tls.h - TLS contexts (OpenSSL 3) for both roles: certificates per hosted domain chosen by
 * SNI, trust store, peer-certificate verdict that never fails a handshake. No I/O here.
 * Errors: constructors return NULL with a sentence naming the file and problem in err. */
#ifndef FG_TLS_H
#define FG_TLS_H

#include <stdbool.h>
#include <stddef.h>

struct fg_tls_ctx;
struct ssl_st; /* OpenSSL's SSL */

/* Server role: one certificate per hosted domain from cert_dir/DOMAIN.crt (full chain,
 * leaf first) and cert_dir/DOMAIN.key; a ClientHello's SNI picks the domain (exact name,
 * else the hosted domain it is a subdomain of), without SNI or for an unknown name the
 * first domain serves. TLS 1.2 minimum. The peer certificate is requested, never required:
 * a missing or unverifiable one does not fail the handshake (SPEC section 3), the verdict
 * is kept (fg_conn_tls_peer_verified). ca_file NULL or "" = the system trust store.
 * ALPN "xmpp-client" / "xmpp-server" (XEP-0368) is accepted when a client offers it. */
struct fg_tls_ctx *fg_tls_server_new(const char *cert_dir, char *const *domains,
                                     const char *ca_file, char *err, size_t errlen);
/* Server role: how many TLS 1.3 session tickets each handshake sends (default 1). Servers
 * that never resume (fedgate's own s2s client) make a ticket pure cost: s2s sets 0. */
void fg_tls_server_set_tickets(struct fg_tls_ctx *t, size_t n);

/* Client role (outbound s2s): verifies the server's chain against ca_file (NULL or "" =
 * system store), records the verdict without failing the handshake (dialback may follow
 * a failed verification). With cert_dir and domains, each domain's certificate is offered
 * as client certificate (SASL EXTERNAL, XEP-0178) when that domain is the local one; both
 * NULL = no client certificate. The name check of the peer belongs to the caller (RFC
 * 9525 DNS-ID / SRV-ID / XmppAddr on fg_conn_tls_peer_cert). */
struct fg_tls_ctx *fg_tls_client_new(const char *ca_file, const char *cert_dir,
                                     char *const *domains, char *err, size_t errlen);

/* Drops the caller's reference. Connections and listeners hold their own, so a context
 * may be freed (for example replaced after a certificate reload) while they live on. */
void fg_tls_ctx_free(struct fg_tls_ctx *t);
struct fg_tls_ctx *fg_tls_ctx_ref(struct fg_tls_ctx *t);

bool fg_tls_ctx_is_server(const struct fg_tls_ctx *t);

/* For net/conn.c: a new SSL in the context's role. Server: accept state, presenting
 * local_domain's certificate (a hosted domain or a name under one; NULL or unknown = the
 * first domain) until SNI says otherwise. Client: connect state, SNI sni (NULL = none),
 * the client certificate of local_domain (NULL = the first domain), ALPN alpn (NULL =
 * none, else one protocol name such as "xmpp-server"). Returns NULL and fills err on
 * failure. The SSL holds a reference to the context until fg_tls_ssl_free. */
struct ssl_st *fg_tls_ssl_new(struct fg_tls_ctx *t, const char *sni, const char *local_domain,
                              const char *alpn, char *err, size_t errlen);
void fg_tls_ssl_free(struct ssl_st *ssl);

/* The hosted domain whose certificate a server-role SSL presents (after SNI), or the
 * local domain of a client-role SSL; NULL if none. */
const char *fg_tls_ssl_domain(const struct ssl_st *ssl);

/* Peer-certificate verdict recorded during the handshake: true only when the peer sent a
 * certificate and its chain verified against the trust store. */
bool fg_tls_ssl_peer_verified(const struct ssl_st *ssl);
/* Why it did not verify ("no certificate", "unable to get local issuer certificate");
 * NULL when it verified. */
const char *fg_tls_ssl_verify_error(const struct ssl_st *ssl);

/* The text of the most recent OpenSSL error on this thread (for logs), then clears the
 * queue; "unknown error" when there is none. */
const char *fg_tls_last_error(char *buf, size_t len);

#endif
