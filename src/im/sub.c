/* sub.c - the subscription tables of RFC 6121 Appendix A (A.2 outbound, A.3 inbound) and
 * the pre-approval rules of section 3.4, as data. Pure: no roster, no stanzas. */
#include "im/sub.h"

#include <string.h>

#define N FG_SUB_NONE
#define NPO FG_SUB_NONE_PO
#define NPI FG_SUB_NONE_PI
#define NPOPI FG_SUB_NONE_PO_PI
#define T FG_SUB_TO
#define TPI FG_SUB_TO_PI
#define F FG_SUB_FROM
#define FPO FG_SUB_FROM_PO
#define B FG_SUB_BOTH

struct cell {
    unsigned char next;
    bool forward;
};

/* Rows: events; columns: the states in enum order (None, None+PO, None+PI, None+PO+PI, To,
 * To+PI, From, From+PO, Both). Pre-approval is applied on top (see fg_im_sub_next). */
static const struct cell table[FG_SUB_NEVENTS][FG_SUB_NSTATES] = {
    /* A.2.1 outbound subscribe: always routed */
    [FG_SUB_OUT_SUBSCRIBE] =
        {{NPO, 1}, {NPO, 1}, {NPOPI, 1}, {NPOPI, 1}, {T, 1}, {TPI, 1}, {FPO, 1}, {FPO, 1}, {B, 1}},
    /* A.2.3 outbound subscribed: routed only when it answers a pending request */
    [FG_SUB_OUT_SUBSCRIBED] =
        {{N, 0}, {NPO, 0}, {F, 1}, {FPO, 1}, {T, 0}, {B, 1}, {F, 0}, {FPO, 0}, {B, 0}},
    /* A.2.2 outbound unsubscribe: always routed */
    [FG_SUB_OUT_UNSUBSCRIBE] =
        {{N, 1}, {N, 1}, {NPI, 1}, {NPI, 1}, {N, 1}, {NPI, 1}, {F, 1}, {F, 1}, {F, 1}},
    /* A.2.4 outbound unsubscribed: routed when it denies a request or cancels 'from' */
    [FG_SUB_OUT_UNSUBSCRIBED] =
        {{N, 0}, {NPO, 0}, {N, 1}, {NPO, 1}, {T, 0}, {T, 1}, {N, 1}, {NPO, 1}, {T, 1}},
    /* A.3.1 inbound subscribe: delivered when it is news to the user */
    [FG_SUB_IN_SUBSCRIBE] =
        {{NPI, 1}, {NPOPI, 1}, {NPI, 0}, {NPOPI, 0}, {TPI, 1}, {TPI, 0}, {F, 0}, {FPO, 0}, {B, 0}},
    /* A.3.3 inbound subscribed: delivered when it answers the user's pending request */
    [FG_SUB_IN_SUBSCRIBED] =
        {{N, 0}, {T, 1}, {NPI, 0}, {TPI, 1}, {T, 0}, {TPI, 0}, {F, 0}, {B, 1}, {B, 0}},
    /* A.3.2 inbound unsubscribe: delivered when the contact had or asked for 'from' */
    [FG_SUB_IN_UNSUBSCRIBE] =
        {{N, 0}, {NPO, 0}, {N, 1}, {NPO, 1}, {T, 0}, {T, 1}, {N, 1}, {NPO, 1}, {T, 1}},
    /* A.3.4 inbound unsubscribed: delivered when the user had or asked for 'to' */
    [FG_SUB_IN_UNSUBSCRIBED] =
        {{N, 0}, {N, 1}, {NPI, 0}, {NPI, 1}, {N, 1}, {NPI, 1}, {F, 0}, {F, 1}, {F, 1}},
};

static const char *const state_names[FG_SUB_NSTATES] = {
    "None",
    "None + Pending Out",
    "None + Pending In",
    "None + Pending Out + Pending In",
    "To",
    "To + Pending In",
    "From",
    "From + Pending Out",
    "Both",
};

static const char *const event_names[FG_SUB_NEVENTS] = {
    "out subscribe", "out subscribed", "out unsubscribe", "out unsubscribed",
    "in subscribe",  "in subscribed",  "in unsubscribe",  "in unsubscribed",
};

enum fg_roster_sub fg_im_sub_roster(enum fg_im_sub_state s)
{
    switch (s) {
    case T:
    case TPI:
        return FG_ROSTER_TO;
    case F:
    case FPO:
        return FG_ROSTER_FROM;
    case B:
        return FG_ROSTER_BOTH;
    default:
        return FG_ROSTER_NONE;
    }
}

bool fg_im_sub_ask(enum fg_im_sub_state s)
{
    return s == NPO || s == NPOPI || s == FPO;
}

bool fg_im_sub_pending_in(enum fg_im_sub_state s)
{
    return s == NPI || s == NPOPI || s == TPI;
}

bool fg_im_sub_has_from(enum fg_im_sub_state s)
{
    return s == F || s == FPO || s == B;
}

bool fg_im_sub_has_to(enum fg_im_sub_state s)
{
    return s == T || s == TPI || s == B;
}

enum fg_im_sub_state fg_im_sub_from_parts(enum fg_roster_sub sub, bool ask, bool pending_in)
{
    /* Combinations the state machine cannot reach (Both + ask) keep the stronger fact. */
    switch (sub) {
    case FG_ROSTER_TO:
        return pending_in ? TPI : T;
    case FG_ROSTER_FROM:
        return ask ? FPO : F;
    case FG_ROSTER_BOTH:
        return B;
    default:
        return ask ? (pending_in ? NPOPI : NPO) : (pending_in ? NPI : N);
    }
}

/* Pre-approval can only exist where a 'subscribed' would not answer a pending request and
 * the contact is not subscribed yet. */
static bool approvable(enum fg_im_sub_state s)
{
    return s == N || s == NPO || s == T;
}

struct fg_im_sub_result fg_im_sub_next(enum fg_im_sub_state state, bool approved,
                                       enum fg_im_sub_event event)
{
    struct fg_im_sub_result r = {state, approved, false, false, false};
    if ((unsigned)state >= FG_SUB_NSTATES || (unsigned)event >= FG_SUB_NEVENTS)
        return r;
    approved = approved && approvable(state);
    const struct cell *c = &table[event][state];
    r.state = (enum fg_im_sub_state)c->next;
    r.forward = c->forward;
    r.approved = approved;

    switch (event) {
    case FG_SUB_OUT_SUBSCRIBED:
        /* 3.4: 'subscribed' with no request to answer records a pre-approval instead of
         * being routed. */
        if (approvable(state))
            r.approved = true;
        break;
    case FG_SUB_OUT_UNSUBSCRIBED:
        r.approved = false; /* 3.4: cancels a pre-approval */
        break;
    case FG_SUB_IN_SUBSCRIBE:
        if (approved) {
            /* 3.4: approved at once, not shown to the user, answered by the server. */
            r.state = state == N ? F : state == NPO ? FPO : B;
            r.approved = false;
            r.forward = false;
            r.autoreply = true;
        } else if (fg_im_sub_has_from(state)) {
            r.autoreply = true; /* 3.1.3: already subscribed: the server answers */
        }
        break;
    default:
        break;
    }
    if (!approvable(r.state))
        r.approved = false;
    r.push = fg_im_sub_roster(r.state) != fg_im_sub_roster(state) ||
             fg_im_sub_ask(r.state) != fg_im_sub_ask(state) || r.approved != approved;
    return r;
}

const char *fg_im_sub_state_name(enum fg_im_sub_state s)
{
    return (unsigned)s < FG_SUB_NSTATES ? state_names[s] : "?";
}

const char *fg_im_sub_event_name(enum fg_im_sub_event e)
{
    return (unsigned)e < FG_SUB_NEVENTS ? event_names[e] : "?";
}

int fg_im_sub_event_for(const char *type, bool outbound)
{
    static const char *const types[] = {"subscribe", "subscribed", "unsubscribe", "unsubscribed"};
    if (!type)
        return -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(type, types[i]))
            return (outbound ? FG_SUB_OUT_SUBSCRIBE : FG_SUB_IN_SUBSCRIBE) + i;
    return -1;
}
