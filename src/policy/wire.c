/* wire.c - the per-stream reading of a partner's negotiation settings (SPEC section 3).
 * The matrix verdicts (what may be saved) stay in policy.c; these say what a stored
 * partner may do on one stream, and test_s2s checks them against the matrix's methods. */
#include "policy/wire.h"

bool fg_policy_tls_allowed(const struct fg_partner *p)
{
    return p && p->tls != FG_NEG_NOT_SUPPORTED;
}

bool fg_policy_tls_required(const struct fg_partner *p)
{
    return p && p->tls == FG_NEG_REQUIRED;
}

/* TLS on the stream is acceptable for p, or its absence is. */
static bool transport_ok(const struct fg_partner *p, bool tls)
{
    return tls ? p->tls != FG_NEG_NOT_SUPPORTED : p->tls != FG_NEG_REQUIRED;
}

bool fg_policy_external_allowed(const struct fg_partner *p, bool tls)
{
    return p && tls && p->tls != FG_NEG_NOT_SUPPORTED && p->sasl != FG_NEG_NOT_SUPPORTED;
}

bool fg_policy_dialback_allowed(const struct fg_partner *p, bool tls)
{
    return p && p->dialback && p->sasl != FG_NEG_REQUIRED && transport_ok(p, tls);
}

bool fg_policy_dialback_pair_allowed(const struct fg_partner *p, bool tls, bool cert_matches)
{
    if (!p || !p->dialback || !transport_ok(p, tls))
        return false;
    return p->sasl != FG_NEG_REQUIRED || (tls && cert_matches);
}

bool fg_policy_can_authenticate(const struct fg_partner *p, bool tls, bool cert_matches)
{
    return (fg_policy_external_allowed(p, tls) && cert_matches) ||
           fg_policy_dialback_allowed(p, tls);
}
