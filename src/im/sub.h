/* sub.h - the subscription state machine of RFC 6121 section 3 / Appendix A with
 * pre-approval (3.4), pure: state x event -> new state, forward?, push?, auto-reply?
 * No roster, no stanzas. */
#ifndef FG_IM_SUB_H
#define FG_IM_SUB_H

#include <stdbool.h>

#include "store/store.h"

/* The nine states of RFC 6121 A.1, from the local user's side: "Out" is the user's own
 * request to see the contact, "In" the contact's request to see the user. */
enum fg_im_sub_state {
    FG_SUB_NONE = 0,
    FG_SUB_NONE_PO,    /* None + Pending Out */
    FG_SUB_NONE_PI,    /* None + Pending In */
    FG_SUB_NONE_PO_PI, /* None + Pending Out + Pending In */
    FG_SUB_TO,
    FG_SUB_TO_PI, /* To + Pending In */
    FG_SUB_FROM,
    FG_SUB_FROM_PO, /* From + Pending Out */
    FG_SUB_BOTH,
    FG_SUB_NSTATES,
};

/* Out: sent by the local user (RFC 6121 A.2); In: received for the local user (A.3). */
enum fg_im_sub_event {
    FG_SUB_OUT_SUBSCRIBE = 0,
    FG_SUB_OUT_SUBSCRIBED,
    FG_SUB_OUT_UNSUBSCRIBE,
    FG_SUB_OUT_UNSUBSCRIBED,
    FG_SUB_IN_SUBSCRIBE,
    FG_SUB_IN_SUBSCRIBED,
    FG_SUB_IN_UNSUBSCRIBE,
    FG_SUB_IN_UNSUBSCRIBED,
    FG_SUB_NEVENTS,
};

struct fg_im_sub_result {
    enum fg_im_sub_state state; /* the new state */
    bool approved;              /* the new pre-approval flag */
    bool forward;               /* outbound: route to the contact; inbound: deliver to the user */
    bool push;                  /* the roster item as the user sees it changed: push it */
    bool autoreply;             /* inbound subscribe: answer 'subscribed' on the user's behalf */
};

/* The transition for (state, pre-approved, event). approved is only meaningful without
 * a pending inbound request and without 'from' (None, None + Pending Out, To). */
struct fg_im_sub_result fg_im_sub_next(enum fg_im_sub_state state, bool approved,
                                       enum fg_im_sub_event event);

/* Names: "None + Pending Out", "subscribe" (events: "out subscribe", "in subscribed"). */
const char *fg_im_sub_state_name(enum fg_im_sub_state s);
const char *fg_im_sub_event_name(enum fg_im_sub_event e);

/* The event for a presence type ("subscribe"...) in a direction; -1 for other types. */
int fg_im_sub_event_for(const char *type, bool outbound);

/* Roster attributes of a state: subscription='none|to|from|both', ask='subscribe', and
 * the pending inbound request that the roster does not show. */
enum fg_roster_sub fg_im_sub_roster(enum fg_im_sub_state s);
bool fg_im_sub_ask(enum fg_im_sub_state s);
bool fg_im_sub_pending_in(enum fg_im_sub_state s);
/* The state from the stored triple. */
enum fg_im_sub_state fg_im_sub_from_parts(enum fg_roster_sub sub, bool ask, bool pending_in);
/* The contact receives the user's presence (From, From + Pending Out, Both). */
bool fg_im_sub_has_from(enum fg_im_sub_state s);
/* The user receives the contact's presence (To, To + Pending In, Both). */
bool fg_im_sub_has_to(enum fg_im_sub_state s);

#endif
