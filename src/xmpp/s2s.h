/* s2s.h - the server-to-server stream state machines (RFC 6120, XEP-0178, XEP-0220,
 * XEP-0344), sans I/O: plaintext bytes in, callbacks out. Inbound (we receive: receiving
 * and authoritative roles) and outbound (we originate, or only verify keys) streams. No
 * socket, clock, DNS or store: the glue connects, does TLS and tells the machine.
 *
 * Every decision about a partner comes from policy/wire.h on the partner the glue's
 * lookup_partner returns (SPEC sections 2, 3 and 5). Decisions where the standards leave
 * room (inbound unless marked "out"):
 *
 *   what arrives                                   answer
 *   header: content namespace not jabber:server    <invalid-namespace/>
 *   header: 'to' missing or not hosted             <host-unknown/>; after SASL a 'to'
 *                                                  other than the first, too
 *   header: 'version' missing or < 1.0             <unsupported-version/>
 *   header: 'from' not a domain name               <invalid-from/>
 *   header: 'from' unlisted (lookup NULL)          <policy-violation/>, refused "unlisted"
 *   header: 'from' after TLS differs from before   <invalid-from/>, refused "invalid-from"
 *   header: TLS on (direct or STARTTLS) for a
 *     partner whose TLS is not-supported           <policy-violation/>, "tls-not-supported"
 *   header without 'from', no TLS yet              features: <starttls><required/></starttls>
 *   header without 'from' after TLS                features: dialback only; every request
 *                                                  is judged on its own 'from' partner
 *   TLS on, no EXTERNAL (certificate not matching)
 *     and no dialback allowed for the partner      <not-authorized/>, "sasl-required" when
 *                                                  SASL is required, else "no-method"
 *   message/presence/iq before any valid pair      <not-authorized/> (RFC 6120 4.9.3.12)
 *   stanza: 'from' or 'to' missing or malformed    <improper-addressing/> (4.9.3.7)
 *   stanza: 'to' domain not hosted                 <host-unknown/>
 *   stanza: 'from' domain not validated for 'to'   <invalid-from/> (4.9.3.9)
 *   <starttls/> not offered or TLS already on      TLS <failure/>, stream closed (5.4.2.2)
 *   <auth/> not EXTERNAL, or EXTERNAL not offered  SASL <invalid-mechanism/>, or
 *                                                  <encryption-required/> without TLS
 *   EXTERNAL authzid other than the header 'from'  SASL <invalid-authzid/> (XEP-0178)
 *   a SASL failure while SASL is required          the <failure/>, then <not-authorized/>
 *   the second SASL failure otherwise              the <failure/>, then <policy-violation/>
 *   db:result: 'from'/'to' missing                 <improper-addressing/>
 *   db:result: 'from'/'to' not a domain            dialback error <jid-malformed/>
 *   db:result: 'to' not hosted                     dialback error <item-not-found/>
 *   db:result: 'from' unlisted                     dialback error <policy-violation/>
 *   db:result: partner's dialback false            dialback error <not-authorized/>
 *   db:result before TLS the partner requires,
 *     or over TLS for a not-supported partner      dialback error <policy-violation/>
 *   db:result: partner's SASL required             <not-authorized/> as the stream's first
 *                                                  authentication; later (multiplexing) valid
 *                                                  at once when the certificate matches
 *                                                  that domain (XEP-0344), else the same
 *   db:result: any other acceptable request        valid at once when TLS is on and the
 *                                                  certificate matches (XEP-0344), else
 *                                                  io->verify_dialback (receiving role)
 *   db:result: a domain of another partner than
 *     the stream's that fails its policy           dialback error <policy-violation/>
 *   db:result: more than max_pairs pairs           dialback error <resource-constraint/>
 *   verification answered invalid                  type='invalid' and the stream closes;
 *                                                  dialback error <forbidden/> instead when
 *                                                  other pairs on the stream are valid
 *   verification failed / timed out                dialback error <remote-server-not-found/>
 *                                                  / <remote-server-timeout/>
 *   db:verify (authoritative role)                 type valid/invalid from io->dialback_key;
 *                                                  'to' not hosted: <item-not-found/>;
 *                                                  unlisted 'from' or before required TLS:
 *                                                  <policy-violation/>
 *   db:result / db:verify with a 'type'            ignored (unsolicited; XEP-0220 4.1)
 *   any other first-level element                  <unsupported-stanza-type/>
 *   the peer's <stream:error/> or </stream>        logged; our close
 *   out: no STARTTLS and TLS required              refused "tls-required", stream closed
 *   out: STARTTLS required, TLS not-supported      refused "tls-not-supported"
 *   out: SASL required and EXTERNAL impossible     refused "sasl-required" (also when the
 *     or refused, or the peer's certificate        peer's certificate does not match)
 *     does not match
 *   out: nothing left (dialback false or not
 *     offered)                                     refused "dialback-disabled"/"no-method"
 *   out: db:result invalid / error                 refused "dialback-invalid" /
 *                                                  "dialback-error", pair failed
 *   out: answers not matching a request we sent    ignored
 *   negotiation longer than the establishment
 *     timeout, or no data for the inactivity one   <connection-timeout/>, "timeout"
 *
 * Refusals (io->refused) carry a rule id from this table, a reason and a fix for people;
 * the glue logs them (event=s2s-refused) and records them in the link status. An
 * outbound stream that ends before a pair is valid reports io->pair_failed with the
 * stanza error its queued stanzas bounce with (remote-server-timeout or
 * remote-server-not-found) and the reason.
 *
 * Keep-alive (fg_s2s_tick): an established outbound stream that sent nothing for
 * keepalive_interval_s sends a space, plus an XEP-0199 ping when the partner's keepalive
 * is true; its answer comes back on the partner's own stream, so the glue hands it to
 * fg_s2s_out_pong. An outbound stream with nothing received for twice the interval, and
 * any stream with nothing received for inactivity_timeout_s, ends with
 * <connection-timeout/>.
 *
 * Re-entrancy: callbacks are called from fg_s2s_feed, _tls_ready, _start, _close, _tick,
 * _recheck, _in_dialback_result, _out_add_pair and _out_verify. A callback may call
 * fg_s2s_close, fg_s2s_in_dialback_result and the fg_s2s_out_* senders; it must not call
 * fg_s2s_free or fg_s2s_feed on the same stream (defer them). After io->close the stream
 * ignores everything but fg_s2s_free and the read-only functions.
 *
 * Errors: int functions return 0 or a negative FG_E* code (core/err.h). */
#ifndef FG_S2S_H
#define FG_S2S_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"
#include "xml/arena.h"
#include "xml/stanza.h"

enum fg_s2s_dir { FG_S2S_IN = 0, FG_S2S_OUT = 1 };
enum fg_s2s_state {
    FG_S2S_CONNECTING = 0, /* outbound, before fg_s2s_start */
    FG_S2S_NEGOTIATING,
    FG_S2S_ESTABLISHED, /* a domain pair is authenticated (verify-only: ready) */
    FG_S2S_CLOSING,     /* closed by the machine; the connection may still be flushing */
};
enum fg_s2s_auth { FG_S2S_AUTH_NONE = 0, FG_S2S_AUTH_SASL_EXTERNAL, FG_S2S_AUTH_DIALBACK };
/* A dialback verification outcome (XEP-0220). */
enum fg_s2s_verdict { FG_S2S_VALID = 0, FG_S2S_INVALID, FG_S2S_ERROR, FG_S2S_TIMEOUT };

/* "in"/"out"; "connecting"/...; "none"/"sasl-external"/"dialback"; "valid"/"invalid"/
 * "error"/"timeout" (SPEC section 7 spellings). */
const char *fg_s2s_dir_name(enum fg_s2s_dir d);
const char *fg_s2s_state_name(enum fg_s2s_state s);
const char *fg_s2s_auth_name(enum fg_s2s_auth a);
const char *fg_s2s_verdict_name(enum fg_s2s_verdict v);

struct fg_s2s_config {
    char *const *domains;        /* hosted, A-labels, NULL-terminated; outlives the streams */
    size_t max_stanza_size;      /* 0: the parser's default */
    int max_depth;               /* <= 0: the parser's default */
    int establishment_timeout_s; /* stream_establishment_timeout; <= 0: 60 */
    int inactivity_timeout_s;    /* stream_inactivity_timeout; <= 0: none */
    int keepalive_interval_s;    /* keepalive_interval; <= 0: no keep-alive */
    int max_pairs;               /* domain pairs and pending verifications; <= 0: 64 */
};

/* What the TLS layer knows once the handshake is done (net/conn.h). */
struct fg_s2s_tls {
    const char *version; /* "TLSv1.3", for the link status; may be NULL */
    bool local_cert;     /* outbound: we presented the certificate of our local domain */
};

struct fg_s2s_io {
    void *ud;
    void (*send)(void *ud, const char *data, size_t len);
    /* Inbound: <proceed/> has been passed to send(); the server handshake starts now.
     * Outbound: <proceed/> arrived; start the client handshake (SNI: the remote domain).
     * Either way the glue calls fg_s2s_tls_ready when it is done. NULL: no STARTTLS. */
    void (*start_tls)(void *ud);
    void (*close)(void *ud); /* the stream is finished: flush and close the connection */
    /* The partner that domain (an A-label) belongs to: primary, additional or accepted
     * subdomain, or a partner synthesized with the default settings when unlisted_domains
     * allows it (SPEC section 5); NULL when not allowed. Valid until the call returns:
     * the machine copies what it keeps. */
    const struct fg_partner *(*lookup_partner)(void *ud, const char *domain);
    /* The peer's certificate verified and matches domain (RFC 9525, certid); false before
     * TLS. *why (may stay NULL) says why not, for refusals ("issued by an unknown CA"). */
    bool (*cert_matches)(void *ud, const char *domain, const char **why);
    /* Our dialback key (XEP-0185, the gateway's secret; fg_dialback_key) into out. */
    int (*dialback_key)(void *ud, const char *receiving, const char *originating,
                        const char *stream_id, char *out, size_t outlen);
    /* Receiving role: ask the authoritative server of 'from' (a verify-only outbound
     * stream, or a reused one) whether key is right; answer with fg_s2s_in_dialback_result
     * now or later. 'to' is ours, stream_id this stream's. */
    void (*verify_dialback)(void *ud, const char *from, const char *to, const char *stream_id,
                            const char *key);
    /* A domain pair became valid: stanzas from remote to local (inbound) or from local to
     * remote (outbound) may now flow. */
    void (*authenticated)(void *ud, const char *local, const char *remote, enum fg_s2s_auth method);
    /* Inbound: a stanza on a valid pair ('from' and 'to' checked); the tree lives in arena,
     * whose ownership passes to the callee. */
    void (*stanza)(void *ud, struct fg_xml_node *stanza, struct fg_arena *arena);
    /* A refusal or failure explained for people: rule id (table above), reason, fix. */
    void (*refused)(void *ud, const char *remote, const char *rule, const char *reason,
                    const char *fix);
    /* Outbound: the pair will not become valid; bounce its queued stanzas with condition
     * ("remote-server-not-found", "remote-server-timeout") and reason. */
    void (*pair_failed)(void *ud, const char *local, const char *remote, const char *condition,
                        const char *reason);
    /* Outbound: the authoritative server's answer to fg_s2s_out_verify (ERROR when it sent
     * a dialback error or the stream ended first, TIMEOUT after the establishment time). */
    void (*verify_result)(void *ud, const char *from, const char *to, const char *id,
                          enum fg_s2s_verdict v);
    /* Inbound, once per stream, when its partner p is first known: may the stream count
     * against the connection limits (SPEC section 5)? NULL: yes. Else the stream error
     * condition to close it with ("policy-violation", "resource-constraint"), with reason
     * and fix written for the refusal (rule "connection-limit"). NULL callback: always. */
    const char *(*admit)(void *ud, const struct fg_partner *p, char *reason, size_t reason_len,
                         char *fix, size_t fix_len);
};

struct fg_s2s;

/* Inbound stream on an accepted connection. direct_tls: TLS from the first byte
 * (XEP-0368); the glue then calls fg_s2s_tls_ready before feeding. peer_addr is for logs;
 * NULL allowed. cfg and io are copied (cfg->domains is borrowed). */
struct fg_s2s *fg_s2s_in_new(const struct fg_s2s_config *cfg, const struct fg_s2s_io *io,
                             bool direct_tls, const char *peer_addr);
/* Outbound stream originating stanzas from local to remote (A-labels) under partner's
 * settings (copied). NULL when a domain is not a domain name. Nothing is sent before
 * fg_s2s_start. */
struct fg_s2s *fg_s2s_out_new(const struct fg_s2s_config *cfg, const struct fg_s2s_io *io,
                              const char *local, const char *remote,
                              const struct fg_partner *partner, bool direct_tls);
/* Outbound stream that only carries db:verify requests (receiving role towards the
 * authoritative server of remote): TLS as the partner says, no authentication. */
struct fg_s2s *fg_s2s_verify_new(const struct fg_s2s_config *cfg, const struct fg_s2s_io *io,
                                 const char *local, const char *remote,
                                 const struct fg_partner *partner, bool direct_tls);
/* Not from inside one of its callbacks. NULL allowed. */
void fg_s2s_free(struct fg_s2s *s);

/* Outbound: the connection is up (after fg_s2s_tls_ready for direct TLS): sends our
 * stream header. No-op inbound. */
void fg_s2s_start(struct fg_s2s *s);
/* Plaintext received, split anywhere. */
void fg_s2s_feed(struct fg_s2s *s, const char *data, size_t len);
/* The TLS handshake finished (after io->start_tls, or at once for direct TLS). */
void fg_s2s_tls_ready(struct fg_s2s *s, const struct fg_s2s_tls *info);
/* NULL = normal </stream:stream>; else a stream error with that condition
 * ("system-shutdown", "policy-violation", ...) first. Ends with io->close. */
void fg_s2s_close(struct fg_s2s *s, const char *condition);
/* Called every few seconds with a monotonic clock: timeouts and keep-alive. */
void fg_s2s_tick(struct fg_s2s *s, uint64_t now_ms);
/* A partner changed: looks up the partner of every authenticated domain again and closes
 * the stream with <policy-violation/> (refused "policy-changed") when one was removed or
 * its settings no longer allow how the pair authenticated, or TLS became required on a
 * clear stream. Returns true when the stream lives on. Looked up per pair, not given by
 * the caller, since one inbound stream may carry domains of several partners. */
bool fg_s2s_recheck(struct fg_s2s *s);

/* Inbound: the answer to io->verify_dialback for (from, to) as given there. Unknown
 * pairs are ignored (a late answer for a stream that moved on). */
void fg_s2s_in_dialback_result(struct fg_s2s *s, const char *from, const char *to,
                               enum fg_s2s_verdict v);

/* Outbound: sends a stanza (message/presence/iq, jabber:client or jabber:server) whose
 * 'from' and 'to' domains form a valid pair, in jabber:server. 0; FG_EINVAL when they do
 * not; FG_EIO when the stream is not established (queueing is the glue's job). */
int fg_s2s_out_send_stanza(struct fg_s2s *s, const struct fg_xml_node *stanza);
/* Outbound: asks for another pair on this established stream by dialback (multiplexing,
 * XEP-0220 section 3); io->authenticated or io->pair_failed follows. 0; FG_EEXISTS (known
 * pair); FG_EREFUSED (the partner of remote, per lookup_partner, does not allow it here,
 * or the peer cannot multiplex: open another stream); FG_ELIMIT; FG_EIO (not
 * established); FG_EINVAL (not domains). */
int fg_s2s_out_add_pair(struct fg_s2s *s, const char *local, const char *remote);
/* Outbound (either kind): sends <db:verify from to id>key</db:verify> once TLS is
 * settled; io->verify_result follows. 0, FG_EEXISTS, FG_ELIMIT, FG_EIO, FG_EINVAL. */
int fg_s2s_out_verify(struct fg_s2s *s, const char *from, const char *to, const char *id,
                      const char *key);
/* Outbound: iq is the answer to this stream's keep-alive ping (it arrives on the
 * partner's inbound stream); it then counts as received data. */
bool fg_s2s_out_pong(struct fg_s2s *s, const struct fg_xml_node *iq);

/* True when (local, remote) is a valid pair of this stream. */
bool fg_s2s_has_pair(const struct fg_s2s *s, const char *local, const char *remote);

/* Link status (SPEC section 7). Strings point into the stream. */
struct fg_s2s_info {
    enum fg_s2s_dir dir;
    enum fg_s2s_state state;
    const char *local, *remote; /* the first valid pair, else the header's ("" unknown) */
    const char *tls_version;    /* NULL without TLS */
    enum fg_s2s_auth auth;      /* how the first pair authenticated */
    uint64_t since_ms;          /* tick clock when established; 0 = not (yet) known */
    size_t pairs;               /* valid pairs */
    bool verify_only;
};
void fg_s2s_get_info(const struct fg_s2s *s, struct fg_s2s_info *out);
/* The stream id: inbound ours (the one dialback keys use), outbound the peer's. */
const char *fg_s2s_stream_id(const struct fg_s2s *s);
/* Bytes held by the stream (state, parser, buffers), not stanzas handed over. */
size_t fg_s2s_memory(const struct fg_s2s *s);

#endif
