"""The 18 rows of the negotiation matrix (SPEC section 2) through `partner new` and through
`partner set`: exit status, exact warning and error texts, JSON errors and warnings, and
for every refusal a store that is unchanged byte for byte."""
import pytest

from fgcli import MSG, PARTNER_DEFAULTS, assert_error_doc, assert_partner_shape

# SPEC section 2, written out literally: (row, tls, sasl, dialback, refusal, warnings).
MATRIX = [
    (1, "required", "required", "true", None, ["W2"]),
    (2, "required", "required", "false", None, []),
    (3, "optional", "required", "true", None, ["W1", "W2"]),
    (4, "optional", "required", "false", None, ["W1"]),
    (5, "not-supported", "required", "true", "R3", []),
    (6, "not-supported", "required", "false", "R3", []),
    (7, "required", "optional", "true", None, []),
    (8, "required", "optional", "false", None, []),
    (9, "optional", "optional", "true", None, []),
    (10, "optional", "optional", "false", None, ["W1"]),
    (11, "not-supported", "optional", "true", "R3", []),
    (12, "not-supported", "optional", "false", "R3", []),
    (13, "required", "not-supported", "true", None, []),
    (14, "required", "not-supported", "false", "R2", []),
    (15, "optional", "not-supported", "true", None, []),
    (16, "optional", "not-supported", "false", "R2", []),
    (17, "not-supported", "not-supported", "true", None, []),
    (18, "not-supported", "not-supported", "false", "R2", []),
]
ROW_IDS = [f"row{r[0]}" for r in MATRIX]

# The fields each refusal is about (SPEC section 7 shows R3 with ["tls", "sasl"]).
RULE_FIELDS = {"R3": ["tls", "sasl"], "R2": ["dialback"]}


def test_matrix_table_is_complete():
    combos = {(t, s, d) for _, t, s, d, _, _ in MATRIX}
    assert len(combos) == 18
    assert sum(1 for r in MATRIX if r[4]) == 7


def warning_ids(stderr):
    return [l.split(":")[1].strip() for l in stderr.splitlines() if l.startswith("warning:")]


def check_accepted(fg, r, row, tls, sasl, db, warns, domain):
    assert r.rc == 0, f"row {row}: exit {r.rc}: {r.err}"
    for w in warns:
        assert f"warning: {w}: {MSG[w]}" in r.err.splitlines(), f"row {row}: {r.err!r}"
    assert sorted(warning_ids(r.err)) == sorted(warns), f"row {row}: {r.err!r}"
    assert "error:" not in r.err
    p = fg.partner(domain)
    assert p is not None, f"row {row}: not saved"
    assert (p["tls"], p["sasl"], p["dialback"]) == (tls, sasl, db == "true")


def check_refused(fg, r, row, rule, before):
    assert r.rc == 3, f"row {row}: exit {r.rc}: {r.err}"
    assert f"error: {rule}: {MSG[rule]}" in r.err.splitlines(), f"row {row}: {r.err!r}"
    assert "warning:" not in r.err
    assert fg.snapshot() == before, f"row {row}: store changed by a refused change"


@pytest.mark.parametrize("row,tls,sasl,db,rule,warns", MATRIX, ids=ROW_IDS)
def test_matrix_partner_new(fg, row, tls, sasl, db, rule, warns):
    fg.init_store()
    domain = f"row{row}.partner.test"
    args = ("partner", "new", domain, "--tls", tls, "--sasl", sasl, "--dialback", db)
    before = fg.snapshot()
    r = fg.run(*args)
    if rule:
        check_refused(fg, r, row, rule, before)
        assert fg.run("partner", "show", domain).rc == 4
        # the same through --json: the error object on stdout, still nothing saved
        rc, doc, _ = fg.jrun(*args)
        assert rc == 3
        e = assert_error_doc(doc, "refused", rule, RULE_FIELDS[rule])
        assert e["message"] == MSG[rule]
        assert fg.snapshot() == before
    else:
        check_accepted(fg, r, row, tls, sasl, db, warns, domain)
        # --json: the partner and the warnings array with the exact texts
        rc, doc, _ = fg.jrun(*args[:2], "j" + domain, *args[3:])
        assert rc == 0
        assert set(doc) == {"partner", "warnings"}
        assert_partner_shape(doc["partner"])
        assert doc["partner"]["domain"] == "j" + domain
        assert sorted((w["rule"], w["message"]) for w in doc["warnings"]) == \
            sorted((w, MSG[w]) for w in warns)
        assert all(set(w) == {"rule", "message"} for w in doc["warnings"])


# Every row through `partner set`, from a partner at the default (row 7) whose other fields
# are not defaults, so that the edit is seen to touch only the three fields.
@pytest.mark.parametrize("row,tls,sasl,db,rule,warns", MATRIX, ids=ROW_IDS)
def test_matrix_partner_set(fg, row, tls, sasl, db, rule, warns):
    domain = "edited.test"
    fg.ok("partner", "new", domain, "--description", "kept", "--type", "federated",
          "--additional-domains", "edited-eu.test", "--keepalive", "false")
    orig = fg.partner(domain)
    args = ("partner", "set", domain, "--tls", tls, "--sasl", sasl, "--dialback", db)
    before = fg.snapshot()
    r = fg.run(*args)
    if rule:
        check_refused(fg, r, row, rule, before)
        assert fg.partner(domain) == orig
        rc, doc, _ = fg.jrun(*args)
        assert rc == 3
        e = assert_error_doc(doc, "refused", rule, RULE_FIELDS[rule])
        assert e["message"] == MSG[rule]
        assert fg.snapshot() == before
    else:
        check_accepted(fg, r, row, tls, sasl, db, warns, domain)
        p = fg.partner(domain)
        expect = dict(orig, tls=tls, sasl=sasl, dialback=(db == "true"))
        assert p == expect
        rc, doc, _ = fg.jrun(*args)
        assert rc == 0
        assert doc["partner"] == expect
        assert sorted((w["rule"], w["message"]) for w in doc["warnings"]) == \
            sorted((w, MSG[w]) for w in warns)


def test_default_partner_is_row7_without_warnings(fg):
    r = fg.ok("partner", "new", "defaults.test")
    assert "warning:" not in r.err
    p = fg.partner("defaults.test")
    assert_partner_shape(p)
    assert {k: p[k] for k in PARTNER_DEFAULTS} == PARTNER_DEFAULTS
    assert p["domain"] == p["domain_unicode"] == "defaults.test"


@pytest.mark.parametrize("start,flags,rule", [
    # row 15 (optional/not-supported/true) + dialback false = row 16
    (("--tls", "optional", "--sasl", "not-supported"), ("--dialback", "false"), "R2"),
    # row 17 (not-supported/not-supported/true) + sasl optional = row 11
    (("--tls", "not-supported", "--sasl", "not-supported"), ("--sasl", "optional"), "R3"),
    # row 13 (required/not-supported/true) + tls not-supported = row 17 is valid; row 7 + tls
    # not-supported = row 11
    ((), ("--tls", "not-supported"), "R3"),
    # row 13 + dialback false = row 14
    (("--sasl", "not-supported"), ("--dialback", "false"), "R2"),
], ids=["15to16", "17to11", "7to11", "13to14"])
def test_set_judges_the_merged_partner(fg, start, flags, rule):
    fg.ok("partner", "new", "m.test", *start)
    orig = fg.partner("m.test")
    before = fg.snapshot()
    r = fg.run("partner", "set", "m.test", *flags)
    assert r.rc == 3, r.err
    assert f"error: {rule}: {MSG[rule]}" in r.err
    assert fg.snapshot() == before
    assert fg.partner("m.test") == orig


def test_set_warning_from_merged_partner(fg):
    # row 9 (optional/optional/true) + dialback false = row 10: saved with W1
    fg.ok("partner", "new", "w.test", "--tls", "optional")
    r = fg.ok("partner", "set", "w.test", "--dialback", "false")
    assert f"warning: W1: {MSG['W1']}" in r.err
    assert fg.partner("w.test")["dialback"] is False
    # an unrelated edit of a row-10 partner repeats the warning (the row still applies)
    r = fg.ok("partner", "set", "w.test", "--description", "again")
    assert f"warning: W1: {MSG['W1']}" in r.err
