/* types.h - the partner type as a decision table (SPEC section 4): what a contact at a
 * partner of each type may do to a local user, and whether status text reaches it.
 * Pure: no I/O. The daemon maps the IM layer's facts onto these inputs (links.c). */
#ifndef FG_POLICY_TYPES_H
#define FG_POLICY_TYPES_H

#include <stdbool.h>

#include "policy/policy.h"

/* The kind of a stanza from a partner's user to a local user. */
enum fg_pkind {
    FG_PK_MESSAGE = 0,
    FG_PK_PRESENCE,     /* available, unavailable, probe, error */
    FG_PK_SUBSCRIPTION, /* subscribe, subscribed, unsubscribe, unsubscribed */
    FG_PK_IQ,
};
#define FG_PK_COUNT 4

enum fg_pverdict {
    FG_PV_ALLOW = 0,    /* delivered as RFC 6121 says (a subscribe is held for the user) */
    FG_PV_REFUSE,       /* answered exactly as for a user who does not exist; counted */
    FG_PV_AUTO_APPROVE, /* subscribe: approved on the user's behalf */
};

/* The verdict for one stanza. type: the stanza's type attribute ("" or NULL when absent).
 * in_roster: "has added"; pre_approved: subscription to/both, ask='subscribe' or approved.
 *   federated, public-verified: subscribe -> auto-approve; everything else allowed.
 *   public-unverified: subscribe -> auto-approve when pre-approved, else allowed (held);
 *     from a contact the user has not added, a message (other than type error) and an
 *     iq get/set are refused; everything else allowed. */
enum fg_pverdict fg_policy_type_decide(enum fg_ptype t, enum fg_pkind kind, const char *type,
                                       bool in_roster, bool pre_approved);

/* True when <status/> is stripped from presence sent to a partner of type t (every type
 * but federated). */
bool fg_policy_type_strips_status(enum fg_ptype t);

/* "allow" / "refuse" / "auto-approve" (logs, tests). */
const char *fg_pverdict_name(enum fg_pverdict v);

#endif
