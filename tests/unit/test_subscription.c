/* test_subscription.c - im/sub.h against RFC 6121 Appendix A written out literally (9
 * states x 8 events: new state, routed/delivered), plus pushes, auto-replies and
 * pre-approval (3.4). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "im/sub.h"

#define NONE FG_SUB_NONE
#define NPO FG_SUB_NONE_PO
#define NPI FG_SUB_NONE_PI
#define NPOPI FG_SUB_NONE_PO_PI
#define TO FG_SUB_TO
#define TPI FG_SUB_TO_PI
#define FROM FG_SUB_FROM
#define FPO FG_SUB_FROM_PO
#define BOTH FG_SUB_BOTH

struct row {
    enum fg_im_sub_event ev;
    enum fg_im_sub_state from;
    bool forward; /* ROUTE? (A.2) / DELIVER? (A.3) */
    enum fg_im_sub_state to;
};

/* RFC 6121 Appendix A, table by table, row by row. "no state change" rows repeat the
 * state. */
static const struct row rfc[] = {
    /* A.2.1 Outbound "subscribe" */
    {FG_SUB_OUT_SUBSCRIBE, NONE, true, NPO},
    {FG_SUB_OUT_SUBSCRIBE, NPO, true, NPO},
    {FG_SUB_OUT_SUBSCRIBE, NPI, true, NPOPI},
    {FG_SUB_OUT_SUBSCRIBE, NPOPI, true, NPOPI},
    {FG_SUB_OUT_SUBSCRIBE, TO, true, TO},
    {FG_SUB_OUT_SUBSCRIBE, TPI, true, TPI},
    {FG_SUB_OUT_SUBSCRIBE, FROM, true, FPO},
    {FG_SUB_OUT_SUBSCRIBE, FPO, true, FPO},
    {FG_SUB_OUT_SUBSCRIBE, BOTH, true, BOTH},
    /* A.2.2 Outbound "unsubscribe" */
    {FG_SUB_OUT_UNSUBSCRIBE, NONE, true, NONE},
    {FG_SUB_OUT_UNSUBSCRIBE, NPO, true, NONE},
    {FG_SUB_OUT_UNSUBSCRIBE, NPI, true, NPI},
    {FG_SUB_OUT_UNSUBSCRIBE, NPOPI, true, NPI},
    {FG_SUB_OUT_UNSUBSCRIBE, TO, true, NONE},
    {FG_SUB_OUT_UNSUBSCRIBE, TPI, true, NPI},
    {FG_SUB_OUT_UNSUBSCRIBE, FROM, true, FROM},
    {FG_SUB_OUT_UNSUBSCRIBE, FPO, true, FROM},
    {FG_SUB_OUT_UNSUBSCRIBE, BOTH, true, FROM},
    /* A.2.3 Outbound "subscribed" */
    {FG_SUB_OUT_SUBSCRIBED, NONE, false, NONE},
    {FG_SUB_OUT_SUBSCRIBED, NPO, false, NPO},
    {FG_SUB_OUT_SUBSCRIBED, NPI, true, FROM},
    {FG_SUB_OUT_SUBSCRIBED, NPOPI, true, FPO},
    {FG_SUB_OUT_SUBSCRIBED, TO, false, TO},
    {FG_SUB_OUT_SUBSCRIBED, TPI, true, BOTH},
    {FG_SUB_OUT_SUBSCRIBED, FROM, false, FROM},
    {FG_SUB_OUT_SUBSCRIBED, FPO, false, FPO},
    {FG_SUB_OUT_SUBSCRIBED, BOTH, false, BOTH},
    /* A.2.4 Outbound "unsubscribed" */
    {FG_SUB_OUT_UNSUBSCRIBED, NONE, false, NONE},
    {FG_SUB_OUT_UNSUBSCRIBED, NPO, false, NPO},
    {FG_SUB_OUT_UNSUBSCRIBED, NPI, true, NONE},
    {FG_SUB_OUT_UNSUBSCRIBED, NPOPI, true, NPO},
    {FG_SUB_OUT_UNSUBSCRIBED, TO, false, TO},
    {FG_SUB_OUT_UNSUBSCRIBED, TPI, true, TO},
    {FG_SUB_OUT_UNSUBSCRIBED, FROM, true, NONE},
    {FG_SUB_OUT_UNSUBSCRIBED, FPO, true, NPO},
    {FG_SUB_OUT_UNSUBSCRIBED, BOTH, true, TO},
    /* A.3.1 Inbound "subscribe" */
    {FG_SUB_IN_SUBSCRIBE, NONE, true, NPI},
    {FG_SUB_IN_SUBSCRIBE, NPO, true, NPOPI},
    {FG_SUB_IN_SUBSCRIBE, NPI, false, NPI},
    {FG_SUB_IN_SUBSCRIBE, NPOPI, false, NPOPI},
    {FG_SUB_IN_SUBSCRIBE, TO, true, TPI},
    {FG_SUB_IN_SUBSCRIBE, TPI, false, TPI},
    {FG_SUB_IN_SUBSCRIBE, FROM, false, FROM},
    {FG_SUB_IN_SUBSCRIBE, FPO, false, FPO},
    {FG_SUB_IN_SUBSCRIBE, BOTH, false, BOTH},
    /* A.3.2 Inbound "unsubscribe" */
    {FG_SUB_IN_UNSUBSCRIBE, NONE, false, NONE},
    {FG_SUB_IN_UNSUBSCRIBE, NPO, false, NPO},
    {FG_SUB_IN_UNSUBSCRIBE, NPI, true, NONE},
    {FG_SUB_IN_UNSUBSCRIBE, NPOPI, true, NPO},
    {FG_SUB_IN_UNSUBSCRIBE, TO, false, TO},
    {FG_SUB_IN_UNSUBSCRIBE, TPI, true, TO},
    {FG_SUB_IN_UNSUBSCRIBE, FROM, true, NONE},
    {FG_SUB_IN_UNSUBSCRIBE, FPO, true, NPO},
    {FG_SUB_IN_UNSUBSCRIBE, BOTH, true, TO},
    /* A.3.3 Inbound "subscribed" */
    {FG_SUB_IN_SUBSCRIBED, NONE, false, NONE},
    {FG_SUB_IN_SUBSCRIBED, NPO, true, TO},
    {FG_SUB_IN_SUBSCRIBED, NPI, false, NPI},
    {FG_SUB_IN_SUBSCRIBED, NPOPI, true, TPI},
    {FG_SUB_IN_SUBSCRIBED, TO, false, TO},
    {FG_SUB_IN_SUBSCRIBED, TPI, false, TPI},
    {FG_SUB_IN_SUBSCRIBED, FROM, false, FROM},
    {FG_SUB_IN_SUBSCRIBED, FPO, true, BOTH},
    {FG_SUB_IN_SUBSCRIBED, BOTH, false, BOTH},
    /* A.3.4 Inbound "unsubscribed" */
    {FG_SUB_IN_UNSUBSCRIBED, NONE, false, NONE},
    {FG_SUB_IN_UNSUBSCRIBED, NPO, true, NONE},
    {FG_SUB_IN_UNSUBSCRIBED, NPI, false, NPI},
    {FG_SUB_IN_UNSUBSCRIBED, NPOPI, true, NPI},
    {FG_SUB_IN_UNSUBSCRIBED, TO, true, NONE},
    {FG_SUB_IN_UNSUBSCRIBED, TPI, true, NPI},
    {FG_SUB_IN_UNSUBSCRIBED, FROM, false, FROM},
    {FG_SUB_IN_UNSUBSCRIBED, FPO, true, FROM},
    {FG_SUB_IN_UNSUBSCRIBED, BOTH, true, FROM},
};

/* The roster shows subscription and ask; a push happens exactly when they change. */
static const char *roster_view(enum fg_im_sub_state s)
{
    static const char *const v[] = {"none", "none+ask", "none",     "none+ask", "to",
                                    "to",   "from",     "from+ask", "both"};
    return v[s];
}

static void t_appendix_a(void **state)
{
    (void)state;
    bool seen[FG_SUB_NEVENTS][FG_SUB_NSTATES] = {{false}};
    size_t n = sizeof rfc / sizeof rfc[0];
    assert_int_equal(n, FG_SUB_NEVENTS * FG_SUB_NSTATES);
    for (size_t i = 0; i < n; i++) {
        const struct row *r = &rfc[i];
        struct fg_im_sub_result got = fg_im_sub_next(r->from, false, r->ev);
        if (got.state != r->to || got.forward != r->forward) {
            fail_msg("%s in %s: got %s/%s, RFC 6121 says %s/%s", fg_im_sub_event_name(r->ev),
                     fg_im_sub_state_name(r->from), fg_im_sub_state_name(got.state),
                     got.forward ? "forward" : "no", fg_im_sub_state_name(r->to),
                     r->forward ? "forward" : "no");
        }
        /* Only an outbound 'subscribed' with nothing to answer creates a pre-approval. */
        bool want_approved =
            r->ev == FG_SUB_OUT_SUBSCRIBED && (r->from == NONE || r->from == NPO || r->from == TO);
        assert_int_equal(got.approved, want_approved);
        /* approved='true' is part of what the roster shows. */
        bool want_push = strcmp(roster_view(r->from), roster_view(r->to)) != 0 || want_approved;
        if (got.push != want_push)
            fail_msg("%s in %s: push %d, expected %d", fg_im_sub_event_name(r->ev),
                     fg_im_sub_state_name(r->from), got.push, want_push);
        /* Without pre-approval the server answers only a request from a subscriber. */
        bool want_auto = r->ev == FG_SUB_IN_SUBSCRIBE && fg_im_sub_has_from(r->from);
        assert_int_equal(got.autoreply, want_auto);
        seen[r->ev][r->from] = true;
    }
    for (int e = 0; e < FG_SUB_NEVENTS; e++)
        for (int s = 0; s < FG_SUB_NSTATES; s++)
            assert_true(seen[e][s]);
}

/* RFC 6121 3.4 pre-approval, for every state. */
static void t_preapproval(void **state)
{
    (void)state;
    /* Creating one: 'subscribed' with no pending request is kept, not routed, and shown
     * (approved='true'), in exactly None, None + Pending Out and To. */
    static const struct {
        enum fg_im_sub_state s;
        bool approves;
    } create[] = {{NONE, true}, {NPO, true},   {NPI, false}, {NPOPI, false}, {TO, true},
                  {TPI, false}, {FROM, false}, {FPO, false}, {BOTH, false}};
    for (size_t i = 0; i < sizeof create / sizeof create[0]; i++) {
        struct fg_im_sub_result r = fg_im_sub_next(create[i].s, false, FG_SUB_OUT_SUBSCRIBED);
        assert_int_equal(r.approved, create[i].approves);
        if (create[i].approves) {
            assert_int_equal(r.state, create[i].s);
            assert_false(r.forward);
            assert_true(r.push);
        }
        /* Approving twice changes nothing visible. */
        if (create[i].approves) {
            r = fg_im_sub_next(create[i].s, true, FG_SUB_OUT_SUBSCRIBED);
            assert_true(r.approved);
            assert_false(r.push);
            assert_false(r.forward);
        }
    }

    /* Using one: the contact's request is approved at once by the server. */
    static const struct {
        enum fg_im_sub_state s, next;
    } use[] = {{NONE, FROM}, {NPO, FPO}, {TO, BOTH}};
    for (size_t i = 0; i < sizeof use / sizeof use[0]; i++) {
        struct fg_im_sub_result r = fg_im_sub_next(use[i].s, true, FG_SUB_IN_SUBSCRIBE);
        assert_int_equal(r.state, use[i].next);
        assert_false(r.forward); /* the user is not asked */
        assert_true(r.autoreply);
        assert_true(r.push);
        assert_false(r.approved); /* consumed */
    }

    /* Cancelling one: 'unsubscribed' clears it, is not routed, and is pushed. */
    static const enum fg_im_sub_state cancel[] = {NONE, NPO, TO};
    for (size_t i = 0; i < 3; i++) {
        struct fg_im_sub_result r = fg_im_sub_next(cancel[i], true, FG_SUB_OUT_UNSUBSCRIBED);
        assert_int_equal(r.state, cancel[i]);
        assert_false(r.approved);
        assert_false(r.forward);
        assert_true(r.push);
    }

    /* It survives the events that keep the state approvable. */
    struct fg_im_sub_result r = fg_im_sub_next(NONE, true, FG_SUB_OUT_SUBSCRIBE);
    assert_int_equal(r.state, NPO);
    assert_true(r.approved);
    r = fg_im_sub_next(NPO, true, FG_SUB_IN_SUBSCRIBED);
    assert_int_equal(r.state, TO);
    assert_true(r.approved);
    r = fg_im_sub_next(TO, true, FG_SUB_IN_UNSUBSCRIBED);
    assert_int_equal(r.state, NONE);
    assert_true(r.approved);
    /* A flag in a state where it cannot exist is ignored. */
    r = fg_im_sub_next(BOTH, true, FG_SUB_IN_SUBSCRIBE);
    assert_int_equal(r.state, BOTH);
    assert_false(r.approved);
    assert_false(r.push);
}

static void t_parts(void **state)
{
    (void)state;
    for (int s = 0; s < FG_SUB_NSTATES; s++) {
        enum fg_im_sub_state st = (enum fg_im_sub_state)s;
        assert_int_equal(
            fg_im_sub_from_parts(fg_im_sub_roster(st), fg_im_sub_ask(st), fg_im_sub_pending_in(st)),
            st);
    }
    assert_int_equal(fg_im_sub_roster(TPI), FG_ROSTER_TO);
    assert_true(fg_im_sub_ask(FPO));
    assert_true(fg_im_sub_pending_in(NPOPI));
    assert_false(fg_im_sub_pending_in(FROM));
    assert_int_equal(fg_im_sub_event_for("subscribed", true), FG_SUB_OUT_SUBSCRIBED);
    assert_int_equal(fg_im_sub_event_for("unsubscribe", false), FG_SUB_IN_UNSUBSCRIBE);
    assert_int_equal(fg_im_sub_event_for("probe", false), -1);
    assert_int_equal(fg_im_sub_event_for(NULL, false), -1);
    assert_string_equal(fg_im_sub_state_name(NPOPI), "None + Pending Out + Pending In");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_appendix_a),
        cmocka_unit_test(t_preapproval),
        cmocka_unit_test(t_parts),
    };
    return cmocka_run_group_tests_name("subscription", tests, NULL, NULL);
}
