/* c2s.h - the client-to-server stream state machine (RFC 6120), sans I/O: plaintext bytes
 * in, callbacks out (bytes to send, start TLS, close, user lookup, resource binding,
 * stanzas of the bound client). No socket, clock or store: time comes from fg_c2s_tick.
 *
 * Negotiation: stream header checks -> STARTTLS (required when require_tls) -> SASL
 * (SCRAM-SHA-256/-1 with -PLUS when the TLS layer gives channel-binding data, PLAIN over
 * TLS only) -> stream restart -> resource binding (plus the legacy session iq) -> stanzas,
 * each with its 'from' stamped to the full JID. Decisions where RFC 6120 leaves room:
 *
 *   what arrives                                   answer
 *   header: content namespace not jabber:client    <invalid-namespace/> (4.9.3.10)
 *   header: 'to' missing, not a domain, not hosted <host-unknown/> (4.9.3.6)
 *   header: 'version' missing, malformed or < 1.0  <unsupported-version/> (4.9.3.25)
 *   restart after SASL naming another domain       <host-unknown/>
 *   message/presence/iq before authentication      <not-authorized/> (4.9.3.12), also
 *                                                  while STARTTLS is still required
 *   <auth/> while STARTTLS is required             SASL <encryption-required/> (6.5.4)
 *   PLAIN on a stream without TLS                  SASL <encryption-required/> (6.5.4)
 *   a mechanism not offered on this stream         SASL <invalid-mechanism/> (6.5.5)
 *   bad base64 in <auth/> or <response/>           SASL <incorrect-encoding/> (6.5.2)
 *   <response/> with no exchange running, or an
 *   <auth/> while one runs                         SASL <malformed-request/> (6.5.8)
 *   <abort/>                                       SASL <aborted/> (6.5.1)
 *   wrong password, unknown user (same answer)     SASL <not-authorized/> with a <text/>
 *   the auth_attempts-th failed SASL exchange      its <failure/>, then the stream error
 *     (aborts and malformed ones count)            <policy-violation/> (6.4.5)
 *   <starttls/> when not offered (TLS already on,  TLS <failure/> and the stream closes
 *     after SASL, or no start_tls callback)        (5.4.2.2)
 *   message/presence before resource binding       <not-authorized/>
 *   iq before binding other than bind/session      <not-authorized/>
 *   any other first-level element                  <unsupported-stanza-type/> (4.9.3.23)
 *   the client's own <stream:error/>               logged; we close the stream
 *   parser errors                                  the parser's condition (xml/parser.h)
 *
 * STARTTLS is offered (optional) alongside SASL when require_tls is false and the glue
 * gave a start_tls callback. Bytes that follow <starttls/> in the same fg_c2s_feed call
 * are dropped, never read as part of the secure stream (RFC 6120 5.4.3.3: what came
 * before TLS is discarded; the STARTTLS command injection class of bugs).
 *
 * Resource binding: one bind per stream; a later bind iq gets <not-allowed/>. io->bind
 * errors map to bind iq errors: FG_EINVAL -> <bad-request/> (modify), FG_EEXISTS ->
 * <conflict/> (cancel), FG_ELIMIT -> <resource-constraint/> (wait), FG_EREFUSED ->
 * <not-allowed/> (cancel), anything else -> <internal-server-error/> (wait). A resource
 * longer than 1023 bytes gets <bad-request/> here; the rest of RFC 7622 is the glue's.
 *
 * Idle handling (XEP-0199), driven by fg_c2s_tick: a bound session that received nothing
 * for idle_timeout_s gets a ping iq from the server; if nothing at all arrives within the
 * grace period, min(30 s, idle_timeout_s), the stream ends with <connection-timeout/>.
 * A stream not yet bound gets no ping: idle_timeout_s of silence ends it the same way.
 * Our ping's answer is consumed here; a client's ping to the server is an ordinary iq
 * for the IM layer. idle_timeout_s <= 0 disables all of this.
 *
 * Re-entrancy: callbacks are called from fg_c2s_feed, _tls_ready, _close and _tick.
 * A callback may call fg_c2s_close (e.g. the stanza callback closing with <conflict/>);
 * it must not call fg_c2s_free or fg_c2s_feed on the same stream (defer them). After
 * io->close the stream ignores everything but fg_c2s_free. */
#ifndef FG_C2S_H
#define FG_C2S_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"
#include "xml/arena.h"
#include "xml/stanza.h"

struct fg_c2s_config {
    char *const *domains; /* hosted, A-labels, NULL-terminated; must outlive the streams */
    bool require_tls;
    int auth_attempts;      /* failed SASL exchanges before <policy-violation/>; <= 0: 3 */
    size_t max_stanza_size; /* 0: the parser's default */
    int max_depth;          /* <= 0: the parser's default */
    int idle_timeout_s;     /* <= 0: no idle handling */
};

/* What the TLS layer knows once the handshake is done. The bytes are copied. */
struct fg_c2s_tls {
    const char *version;               /* "TLSv1.3", for logs; may be NULL */
    const unsigned char *tls_exporter; /* RFC 9266 (TLS 1.3): 32 bytes; NULL = none */
    size_t tls_exporter_len;
    const unsigned char *tls_unique; /* RFC 5929 (TLS 1.2 Finished); NULL = none */
    size_t tls_unique_len;
};

struct fg_c2s_io {
    void *ud;
    void (*send)(void *ud, const char *data, size_t len);
    void (*start_tls)(void *ud); /* after <proceed/> has been passed to send(): TLS starts now */
    void (*close)(void *ud);     /* the stream is finished: flush and close the connection */
    int (*get_user)(void *ud, const char *bare_jid, struct fg_user *out); /* 0 or FG_ENOTFOUND */
    /* resource binding: the glue asks the IM layer; resource NULL = generate one. Returns 0
     * and the full JID, or a negative code (the state machine answers a bind error). */
    int (*bind)(void *ud, const char *bare_jid, const char *resource, char *full_jid, size_t len);
    /* a stanza from the bound client; the tree lives in arena, whose ownership passes to
     * the callee */
    void (*stanza)(void *ud, struct fg_xml_node *stanza, struct fg_arena *arena);
    /* appends further stream features offered after authentication, next to <bind/>
     * (roster versioning, pre-approval: the IM layer's); may be NULL */
    void (*features)(void *ud, struct fg_buf *b);
};

struct fg_c2s;

/* cfg and io are copied (cfg->domains is borrowed). direct_tls: the connection is TLS
 * from its first byte (XEP-0368); the glue then calls fg_c2s_tls_ready before feeding.
 * peer_addr is for logs ("192.0.2.1:50000"); NULL allowed. */
struct fg_c2s *fg_c2s_new(const struct fg_c2s_config *cfg, const struct fg_c2s_io *io,
                          bool direct_tls, const char *peer_addr);
/* Not from inside one of its callbacks. NULL allowed. */
void fg_c2s_free(struct fg_c2s *c);

/* Plaintext received from the client, split anywhere. */
void fg_c2s_feed(struct fg_c2s *c, const char *data, size_t len);
/* The TLS handshake finished (after io->start_tls, or at once for direct TLS): the
 * stream restarts under TLS; channel-binding data enables the -PLUS mechanisms. */
void fg_c2s_tls_ready(struct fg_c2s *c, const struct fg_c2s_tls *info);
/* NULL = normal </stream:stream>; else a stream error with that condition ("conflict",
 * "system-shutdown", "policy-violation", ...) then the close. Ends with io->close. */
void fg_c2s_close(struct fg_c2s *c, const char *condition);
/* Called every few seconds by the glue with a monotonic clock: idle handling. */
void fg_c2s_tick(struct fg_c2s *c, uint64_t now_ms);

/* The full JID once bound, else NULL. */
const char *fg_c2s_jid(const struct fg_c2s *c);
/* True once SASL succeeded. */
bool fg_c2s_authenticated(const struct fg_c2s *c);
/* Bytes held by the stream (state, parser, buffers), not stanzas handed over. */
size_t fg_c2s_memory(const struct fg_c2s *c);

#endif
