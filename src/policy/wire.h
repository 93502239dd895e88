/* wire.h - what a partner's TLS, SASL and dialback settings allow on one server-to-server
 * stream (SPEC section 3): the methods of the matrix (SPEC section 2) applied to a stream
 * that runs TLS or not. Pure decisions for the stream engine; certificates are not
 * looked at here (the caller says whether one matched). */
#ifndef FG_POLICY_WIRE_H
#define FG_POLICY_WIRE_H

#include <stdbool.h>

#include "policy/policy.h"

/* STARTTLS may be offered to or used with p (tls required or optional). */
bool fg_policy_tls_allowed(const struct fg_partner *p);
/* Nothing but STARTTLS may happen before TLS (tls required). */
bool fg_policy_tls_required(const struct fg_partner *p);

/* SASL EXTERNAL may authenticate p on a stream whose TLS state is tls: it needs TLS
 * (which p must allow) and sasl not not-supported. The certificate check is the
 * caller's other half (XEP-0178). */
bool fg_policy_external_allowed(const struct fg_partner *p, bool tls);

/* Dialback may be the first authentication of p on a stream: dialback true, sasl not
 * required ("SASL required accepts nothing else"), and over TLS when p allows TLS, or
 * over TCP when p does not require it. */
bool fg_policy_dialback_allowed(const struct fg_partner *p, bool tls);

/* Dialback may add a domain of p to a stream that already carries an authenticated
 * domain pair (multiplexing): dialback true, TLS as for fg_policy_dialback_allowed, and
 * with sasl required only when TLS is on and the peer's certificate matches that
 * domain (XEP-0344: the certificate is the proof, no key is dialled back). */
bool fg_policy_dialback_pair_allowed(const struct fg_partner *p, bool tls, bool cert_matches);

/* Some method can be the first authentication of p on a stream with this TLS state,
 * given whether the peer's certificate matches p's domain. */
bool fg_policy_can_authenticate(const struct fg_partner *p, bool tls, bool cert_matches);

#endif
