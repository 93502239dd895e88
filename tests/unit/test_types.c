/* test_types.c - policy/types.h (the partner type, SPEC section 4) against the full table
 * written out literally: partner type x stanza kind (with its type attribute) x roster
 * state. Verdicts: A allow, R refuse (answered as for a nonexistent user), P auto-approve. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "policy/types.h"

/* Roster states, in the order of the four letters in each column below:
 *   0  not added, not pre-approved      (a stranger)
 *   1  not added, pre-approved          (cannot arise in the IM layer; decided anyway)
 *   2  added, not pre-approved          (e.g. subscription none or from)
 *   3  added and pre-approved           (to/both, ask='subscribe', or approved) */
static const struct {
    enum fg_pkind kind;
    const char *type;
    const char *federated, *verified, *unverified;
} table[] = {
    /* kind             type            federated  public-verified  public-unverified */
    {FG_PK_MESSAGE,      "",             "AAAA",    "AAAA",          "RRAA"},
    {FG_PK_MESSAGE,      "chat",         "AAAA",    "AAAA",          "RRAA"},
    {FG_PK_MESSAGE,      "normal",       "AAAA",    "AAAA",          "RRAA"},
    {FG_PK_MESSAGE,      "headline",     "AAAA",    "AAAA",          "RRAA"},
    {FG_PK_MESSAGE,      "groupchat",    "AAAA",    "AAAA",          "RRAA"},
    {FG_PK_MESSAGE,      "error",        "AAAA",    "AAAA",          "AAAA"},
    {FG_PK_MESSAGE,      "x-unknown",    "AAAA",    "AAAA",          "RRAA"},
    {FG_PK_PRESENCE,     "",             "AAAA",    "AAAA",          "AAAA"},
    {FG_PK_PRESENCE,     "unavailable",  "AAAA",    "AAAA",          "AAAA"},
    {FG_PK_PRESENCE,     "probe",        "AAAA",    "AAAA",          "AAAA"},
    {FG_PK_PRESENCE,     "error",        "AAAA",    "AAAA",          "AAAA"},
    {FG_PK_SUBSCRIPTION, "subscribe",    "PPPP",    "PPPP",          "APAP"},
    {FG_PK_SUBSCRIPTION, "subscribed",   "AAAA",    "AAAA",          "AAAA"},
    {FG_PK_SUBSCRIPTION, "unsubscribe",  "AAAA",    "AAAA",          "AAAA"},
    {FG_PK_SUBSCRIPTION, "unsubscribed", "AAAA",    "AAAA",          "AAAA"},
    {FG_PK_IQ,           "get",          "AAAA",    "AAAA",          "RRAA"},
    {FG_PK_IQ,           "set",          "AAAA",    "AAAA",          "RRAA"},
    {FG_PK_IQ,           "result",       "AAAA",    "AAAA",          "AAAA"},
    {FG_PK_IQ,           "error",        "AAAA",    "AAAA",          "AAAA"},
};

static enum fg_pverdict letter(char c)
{
    return c == 'R' ? FG_PV_REFUSE : c == 'P' ? FG_PV_AUTO_APPROVE : FG_PV_ALLOW;
}

static void test_full_table(void **state)
{
    (void)state;
    static const char *const kinds[] = {"message", "presence", "subscription", "iq"};
    unsigned checked = 0, failed = 0;
    bool seen[FG_PK_COUNT] = {0};
    for (size_t i = 0; i < sizeof table / sizeof *table; i++) {
        const char *cols[3] = {table[i].federated, table[i].verified, table[i].unverified};
        seen[table[i].kind] = true;
        for (int t = 0; t < 3; t++) {
            assert_int_equal(strlen(cols[t]), 4);
            for (int r = 0; r < 4; r++) {
                bool in_roster = r >= 2, pre = r & 1;
                enum fg_pverdict want = letter(cols[t][r]);
                enum fg_pverdict got =
                    fg_policy_type_decide((enum fg_ptype)t, table[i].kind, table[i].type,
                                          in_roster, pre);
                checked++;
                if (got != want) {
                    failed++;
                    fprintf(stderr, "%s %s type='%s' in_roster=%d pre_approved=%d: got %s, "
                            "want %s\n", fg_ptype_name((enum fg_ptype)t), kinds[table[i].kind],
                            table[i].type, in_roster, pre, fg_pverdict_name(got),
                            fg_pverdict_name(want));
                }
            }
        }
    }
    for (int k = 0; k < FG_PK_COUNT; k++)
        assert_true(seen[k]);
    assert_int_equal(checked, 19 * 3 * 4);
    assert_int_equal(failed, 0);
}

/* A NULL type is the same as an absent one (""). */
static void test_null_type(void **state)
{
    (void)state;
    for (int r = 0; r < 4; r++) {
        bool in_roster = r >= 2, pre = r & 1;
        for (int k = 0; k < FG_PK_COUNT; k++)
            for (int t = 0; t < 3; t++)
                assert_int_equal(fg_policy_type_decide((enum fg_ptype)t, (enum fg_pkind)k, NULL,
                                                       in_roster, pre),
                                 fg_policy_type_decide((enum fg_ptype)t, (enum fg_pkind)k, "",
                                                       in_roster, pre));
    }
}

/* Status text: sent to federated partners only. */
static void test_strips_status(void **state)
{
    (void)state;
    assert_false(fg_policy_type_strips_status(FG_PT_FEDERATED));
    assert_true(fg_policy_type_strips_status(FG_PT_PUBLIC_VERIFIED));
    assert_true(fg_policy_type_strips_status(FG_PT_PUBLIC_UNVERIFIED));
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(fg_pverdict_name(FG_PV_ALLOW), "allow");
    assert_string_equal(fg_pverdict_name(FG_PV_REFUSE), "refuse");
    assert_string_equal(fg_pverdict_name(FG_PV_AUTO_APPROVE), "auto-approve");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_table),
        cmocka_unit_test(test_null_type),
        cmocka_unit_test(test_strips_status),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
