/* types.c - the partner type decision table (SPEC section 4). */
#include "policy/types.h"

#include <string.h>

static bool eq(const char *a, const char *b)
{
    return a && strcmp(a, b) == 0;
}

enum fg_pverdict fg_policy_type_decide(enum fg_ptype t, enum fg_pkind kind, const char *type,
                                       bool in_roster, bool pre_approved)
{
    bool open = t == FG_PT_FEDERATED || t == FG_PT_PUBLIC_VERIFIED;
    switch (kind) {
    case FG_PK_SUBSCRIPTION:
        if (!eq(type, "subscribe"))
            return FG_PV_ALLOW; /* subscribed / unsubscribe / unsubscribed: RFC 6121 */
        if (open || pre_approved)
            return FG_PV_AUTO_APPROVE;
        return FG_PV_ALLOW; /* held for the local user */
    case FG_PK_MESSAGE:
        if (open || in_roster || eq(type, "error"))
            return FG_PV_ALLOW;
        return FG_PV_REFUSE;
    case FG_PK_IQ:
        if (open || in_roster || !(eq(type, "get") || eq(type, "set")))
            return FG_PV_ALLOW;
        return FG_PV_REFUSE;
    case FG_PK_PRESENCE:
    default:
        return FG_PV_ALLOW;
    }
}

bool fg_policy_type_strips_status(enum fg_ptype t)
{
    return t != FG_PT_FEDERATED;
}

const char *fg_pverdict_name(enum fg_pverdict v)
{
    switch (v) {
    case FG_PV_ALLOW:
        return "allow";
    case FG_PV_REFUSE:
        return "refuse";
    case FG_PV_AUTO_APPROVE:
        return "auto-approve";
    }
    return "?";
}
