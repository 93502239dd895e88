"""`fedgatectl partner ...`: the partner object of SPEC section 1, rules D1-D3 and their
precedence, domain names (IDN, invalid names), every field flag, partial edits, the
additional-domain flags, not-found / exists, JSON shapes and concurrent writers."""
import threading

import pytest

from fgcli import MSG, assert_error_doc, assert_partner_shape


def refused(fg, args, rule, field=None, mentions=None):
    """Runs a change that rule D*/R* must refuse: exit 3, `error: RULE:` on stderr, the
    JSON error, and nothing saved."""
    before = fg.snapshot()
    r = fg.run(*args)
    assert r.rc == 3, f"{args}: exit {r.rc}, {r.err!r}"
    assert any(l.startswith(f"error: {rule}: ") for l in r.err.splitlines()), r.err
    if mentions:
        assert mentions in r.err, r.err
    assert fg.snapshot() == before, f"{args}: store changed by a refused change"
    rc, doc, _ = fg.jrun(*args)
    assert rc == 3
    assert_error_doc(doc, "refused", rule, [field] if field else None)
    if rule in MSG:
        assert doc["error"]["message"] == MSG[rule]
    assert fg.snapshot() == before


# ---- JSON shapes ------------------------------------------------------------------------
def test_new_show_list_set_remove_json_shapes(fg):
    rc, doc, _ = fg.jrun("partner", "new", "a.test", "--description", "Alpha")
    assert rc == 0 and set(doc) == {"partner", "warnings"} and doc["warnings"] == []
    assert_partner_shape(doc["partner"])
    created = doc["partner"]
    assert created["domain"] == "a.test" and created["description"] == "Alpha"

    rc, doc, _ = fg.jrun("partner", "show", "a.test")
    assert rc == 0 and set(doc) == {"partner"} and doc["partner"] == created

    fg.ok("partner", "new", "c.test")
    fg.ok("partner", "new", "b.test")
    rc, doc, _ = fg.jrun("partner", "list")
    assert rc == 0 and set(doc) == {"partners"}
    for p in doc["partners"]:
        assert_partner_shape(p)
    assert sorted(p["domain"] for p in doc["partners"]) == ["a.test", "b.test", "c.test"]
    assert [p for p in doc["partners"] if p["domain"] == "a.test"] == [created]

    rc, doc, _ = fg.jrun("partner", "set", "a.test", "--description", "Beta")
    assert rc == 0 and set(doc) == {"partner", "warnings"} and doc["warnings"] == []
    assert doc["partner"] == dict(created, description="Beta")

    rc, doc, _ = fg.jrun("partner", "remove", "a.test")
    assert rc == 0 and doc == {"removed": "a.test"}
    assert fg.partner("a.test") is None
    assert sorted(p["domain"] for p in fg.partners()) == ["b.test", "c.test"]


def test_empty_list(fg):
    rc, doc, _ = fg.jrun("partner", "list")
    assert rc == 0 and doc == {"partners": []}


def test_human_output_lists_partners(fg):
    fg.ok("partner", "new", "human.test", "--type", "federated")
    r = fg.ok("partner", "list")
    assert "human.test" in r.out and "federated" in r.out
    r = fg.ok("partner", "show", "human.test")
    assert "human.test" in r.out and "required" in r.out


def test_list_filter(fg):
    for d in ("alpha.test", "alps.test", "beta.test"):
        fg.ok("partner", "new", d)
    rc, doc, _ = fg.jrun("partner", "list", "--filter", "al*")
    assert rc == 0
    assert sorted(p["domain"] for p in doc["partners"]) == ["alpha.test", "alps.test"]
    rc, doc, _ = fg.jrun("partner", "list", "--filter", "nomatch*")
    assert rc == 0 and doc == {"partners": []}


# ---- partner set changes only the given fields -----------------------------------------------
START = ["--description", "Start", "--type", "federated", "--tls", "optional", "--sasl",
         "optional", "--dialback", "true", "--keepalive", "false", "--subdomains", "true",
         "--connection-limit", "7", "--proxy-fqdn", "proxy.start.test:5270",
         "--additional-domains", "s1.test,s2.test"]

EDITS = [
    (("--description", "Changed text"), {"description": "Changed text"}),
    (("--type", "public-verified"), {"partner_type": "public-verified"}),
    (("--tls", "required"), {"tls": "required"}),
    (("--sasl", "not-supported"), {"sasl": "not-supported"}),
    (("--dialback", "false"), {"dialback": False}),  # row 10 -> W1, still saved
    (("--keepalive", "true"), {"keepalive": True}),
    (("--subdomains", "false"), {"subdomains": False}),
    (("--connection-limit", "65535"), {"connection_limit": 65535}),
    (("--connection-limit", "default"), {"connection_limit": None}),
    (("--proxy-fqdn", "other.proxy.test"), {"proxy_fqdn": "other.proxy.test"}),
    (("--proxy-fqdn", ""), {"proxy_fqdn": ""}),
    (("--additional-domains", "s3.test"),
     {"additional_domains": ["s3.test"], "additional_domains_unicode": ["s3.test"]}),
    (("--add-domain", "s3.test"),
     {"additional_domains": ["s1.test", "s2.test", "s3.test"],
      "additional_domains_unicode": ["s1.test", "s2.test", "s3.test"]}),
    (("--remove-domain", "s1.test"),
     {"additional_domains": ["s2.test"], "additional_domains_unicode": ["s2.test"]}),
    (("--clear-domains",), {"additional_domains": [], "additional_domains_unicode": []}),
]


@pytest.mark.parametrize("flags,change", EDITS, ids=[e[0][0] + "=" + (e[0][1:] or ("",))[0]
                                                      for e in EDITS])
def test_set_changes_only_given_fields(fg, flags, change):
    fg.ok("partner", "new", "p.test", *START)
    orig = fg.partner("p.test")
    assert orig["additional_domains"] == ["s1.test", "s2.test"]
    assert orig["connection_limit"] == 7 and orig["proxy_fqdn"] == "proxy.start.test:5270"
    r = fg.ok("partner", "set", "p.test", *flags)
    p = fg.partner("p.test")
    if "additional_domains" in change:
        p["additional_domains"] = sorted(p["additional_domains"])
        p["additional_domains_unicode"] = sorted(p["additional_domains_unicode"])
    assert p == dict(orig, **change)
    if change == {"dialback": False}:
        assert f"warning: W1: {MSG['W1']}" in r.err


def test_set_with_no_flags_changes_nothing(fg):
    fg.ok("partner", "new", "p.test", *START)
    orig = fg.partner("p.test")
    r = fg.run("partner", "set", "p.test")
    assert r.rc in (0, 2)
    assert fg.partner("p.test") == orig


def test_set_several_fields_at_once(fg):
    fg.ok("partner", "new", "p.test")
    fg.ok("partner", "set", "p.test", "--type", "federated", "--description", "two",
          "--connection-limit", "3")
    p = fg.partner("p.test")
    assert (p["partner_type"], p["description"], p["connection_limit"]) == \
        ("federated", "two", 3)
    assert p["tls"] == "required" and p["sasl"] == "optional"


# ---- field values ------------------------------------------------------------------------
@pytest.mark.parametrize("value,expect", [("1", 1), ("65535", 65535), ("20", 20),
                                           ("default", None)])
def test_connection_limit_valid(fg, value, expect):
    fg.ok("partner", "new", "cl.test", "--connection-limit", value)
    assert fg.partner("cl.test")["connection_limit"] == expect


@pytest.mark.parametrize("value", ["0", "65536", "abc", "", "1.5", "99999999999999999999"])
def test_connection_limit_invalid(fg, value):
    fg.init_store()
    before = fg.snapshot()
    r = fg.run("partner", "new", "cl.test", "--connection-limit", value)
    assert r.rc == 2, r.err
    assert r.err.startswith("error: ") or "error" in r.err
    assert fg.snapshot() == before
    fg.ok("partner", "new", "cl2.test")
    orig = fg.partner("cl2.test")
    before = fg.snapshot()
    rc, doc, _ = fg.jrun("partner", "set", "cl2.test", "--connection-limit", value)
    assert rc == 2
    assert_error_doc(doc, "invalid_value", None, ["connection_limit"])
    assert fg.snapshot() == before and fg.partner("cl2.test") == orig


def test_description_lengths(fg):
    fg.ok("partner", "new", "d.test", "--description", "x" * 1024)
    assert fg.partner("d.test")["description"] == "x" * 1024
    before = fg.snapshot()
    r = fg.run("partner", "new", "d2.test", "--description", "x" * 1025)
    assert r.rc == 2, r.err
    rc, doc, _ = fg.jrun("partner", "set", "d.test", "--description", "y" * 1025)
    assert rc == 2
    assert_error_doc(doc, "invalid_value", None, ["description"])
    assert fg.snapshot() == before


def test_description_counts_characters_not_bytes(fg):
    # "at most 1024 characters": 1024 two-byte characters are allowed, 1025 are not
    fg.ok("partner", "new", "d.test", "--description", "ü" * 1024)
    assert fg.partner("d.test")["description"] == "ü" * 1024
    assert fg.run("partner", "set", "d.test", "--description", "ü" * 1025).rc == 2
    assert fg.partner("d.test")["description"] == "ü" * 1024


def test_description_unicode_and_quotes_round_trip(fg):
    text = 'Fabrikam "EU" — Zürich & <Lyon>, 東京'
    fg.ok("partner", "new", "d.test", "--description", text)
    assert fg.partner("d.test")["description"] == text
    fg.ok("partner", "set", "d.test", "--description", "")
    assert fg.partner("d.test")["description"] == ""


@pytest.mark.parametrize("value", ["proxy.fab.test", "proxy.fab.test:5269", "proxy.fab.test:1",
                                   "proxy.fab.test:65535", ""])
def test_proxy_fqdn_valid(fg, value):
    fg.ok("partner", "new", "px.test", "--proxy-fqdn", value)
    assert fg.partner("px.test")["proxy_fqdn"] == value


@pytest.mark.parametrize("value", ["proxy.fab.test:0", "proxy.fab.test:65536",
                                   "proxy.fab.test:port", "bad host.test", "proxy..test",
                                   "proxy.fab.test:"])
def test_proxy_fqdn_invalid(fg, value):
    fg.init_store()
    before = fg.snapshot()
    rc, doc, _ = fg.jrun("partner", "new", "px.test", "--proxy-fqdn", value)
    assert rc == 2, doc
    assert_error_doc(doc, "invalid_value", None, ["proxy_fqdn"])
    assert fg.snapshot() == before


@pytest.mark.parametrize("flag,key", [("--subdomains", "subdomains"),
                                       ("--keepalive", "keepalive"),
                                       ("--dialback", "dialback")])
def test_bool_flags(fg, flag, key):
    fg.ok("partner", "new", "b.test", flag, "true")
    assert fg.partner("b.test")[key] is True
    fg.ok("partner", "set", "b.test", flag, "false")
    assert fg.partner("b.test")[key] is False
    fg.ok("partner", "set", "b.test", flag, "true")
    assert fg.partner("b.test")[key] is True
    before = fg.snapshot()
    rc, doc, _ = fg.jrun("partner", "set", "b.test", flag, "maybe")
    assert rc == 2
    assert_error_doc(doc, "invalid_value", None, [key])
    assert fg.snapshot() == before


@pytest.mark.parametrize("ptype", ["federated", "public-verified", "public-unverified"])
def test_partner_types(fg, ptype):
    fg.ok("partner", "new", "t.test", "--type", ptype)
    assert fg.partner("t.test")["partner_type"] == ptype


@pytest.mark.parametrize("flag,value,key", [
    ("--type", "friendly", "partner_type"), ("--type", "Federated-ish", "partner_type"),
    ("--tls", "maybe", "tls"), ("--tls", "", "tls"), ("--sasl", "always", "sasl"),
    ("--dialback", "perhaps", "dialback"), ("--subdomains", "sometimes", "subdomains"),
    ("--keepalive", "2", "keepalive")])
def test_bad_enum_and_bool_values(fg, flag, value, key):
    fg.init_store()
    before = fg.snapshot()
    r = fg.run("partner", "new", "v.test", flag, value)
    assert r.rc == 2, r.err
    assert "error" in r.err
    rc, doc, _ = fg.jrun("partner", "new", "v.test", flag, value)
    assert rc == 2
    assert_error_doc(doc, "invalid_value", None, [key])
    assert fg.snapshot() == before


# ---- malformed command lines -----------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ("partner", "new", "x.test", "--frobnicate"),
    ("partner", "new", "x.test", "--frobnicate", "1"),
    ("partner", "new", "x.test", "--tls"),                      # missing value
    ("partner", "set", "x.test", "--description"),              # missing value
    ("partner", "new"),                                         # missing domain
    ("partner", "show"),
    ("partner", "show", "a.test", "b.test"),                    # extra positional
    ("partner", "remove"),
    ("partner", "frobnicate"),                                  # unknown verb
    ("partner",),
    ("frobnicate",),                                            # unknown command
    ("frobnicate", "list"),
    (),                                                          # no command
    ("partner", "list", "--json-please"),
], ids=lambda a: " ".join(a) or "nothing")
def test_usage_errors_exit_2(fg, args):
    fg.init_store()
    before = fg.snapshot()
    r = fg.run(*args)
    assert r.rc == 2, f"{args}: {r.rc} {r.err!r}"
    assert r.err.strip(), "a usage error explains itself on standard error"
    rc, doc, _ = fg.jrun(*args)
    assert rc == 2
    assert_error_doc(doc, "usage", None)
    assert fg.snapshot() == before


def test_unknown_global_option_exit_2(fg):
    r = fg.run("--frobnicate", "partner", "list")
    assert r.rc == 2


@pytest.mark.parametrize("flags", [
    ("--additional-domains", "x.test", "--add-domain", "y.test"),
    ("--additional-domains", "x.test", "--remove-domain", "s1.test"),
    ("--additional-domains", "x.test", "--clear-domains"),
    ("--add-domain", "y.test", "--additional-domains", "x.test"),
])
def test_mixing_domain_list_flags_is_usage_error(fg, flags):
    fg.ok("partner", "new", "mix.test", "--additional-domains", "s1.test")
    before = fg.snapshot()
    r = fg.run("partner", "set", "mix.test", *flags)
    assert r.rc == 2, r.err
    rc, doc, _ = fg.jrun("partner", "set", "mix.test", *flags)
    assert rc == 2
    assert_error_doc(doc, "usage", None)
    assert fg.snapshot() == before


def test_add_and_remove_domain_repeatable(fg):
    fg.ok("partner", "new", "rep.test", "--add-domain", "r1.test", "--add-domain", "r2.test")
    assert sorted(fg.partner("rep.test")["additional_domains"]) == ["r1.test", "r2.test"]
    fg.ok("partner", "set", "rep.test", "--add-domain", "r3.test", "--add-domain", "r4.test",
          "--remove-domain", "r1.test")
    assert sorted(fg.partner("rep.test")["additional_domains"]) == \
        ["r2.test", "r3.test", "r4.test"]
    fg.ok("partner", "set", "rep.test", "--remove-domain", "r2.test", "--remove-domain",
          "R3.TEST")
    assert fg.partner("rep.test")["additional_domains"] == ["r4.test"]


def test_clear_domains_then_add(fg):
    fg.ok("partner", "new", "cd.test", "--additional-domains", "c1.test,c2.test")
    fg.ok("partner", "set", "cd.test", "--clear-domains", "--add-domain", "c3.test")
    assert fg.partner("cd.test")["additional_domains"] == ["c3.test"]


def test_additional_domains_replace_and_empty(fg):
    fg.ok("partner", "new", "ad.test", "--additional-domains", "a1.test,a2.test")
    assert sorted(fg.partner("ad.test")["additional_domains"]) == ["a1.test", "a2.test"]
    fg.ok("partner", "set", "ad.test", "--additional-domains", "a3.test")
    assert fg.partner("ad.test")["additional_domains"] == ["a3.test"]


def test_remove_domain_the_partner_lacks_is_not_found(fg):
    fg.ok("partner", "new", "rd.test", "--additional-domains", "has.test")
    fg.ok("partner", "new", "other.test", "--additional-domains", "others.test")
    for missing in ("lacks.test", "others.test", "rd.test"):
        before = fg.snapshot()
        r = fg.run("partner", "set", "rd.test", "--remove-domain", missing,
                   "--description", "must not be saved")
        assert r.rc == 4, (missing, r.err)
        rc, doc, _ = fg.jrun("partner", "set", "rd.test", "--remove-domain", missing)
        assert rc == 4
        assert_error_doc(doc, "not_found", None)
        assert fg.snapshot() == before
    assert fg.partner("rd.test")["additional_domains"] == ["has.test"]


def test_additional_domain_is_not_a_partner_name(fg):
    fg.ok("partner", "new", "fab.test", "--additional-domains", "fab-eu.test")
    before = fg.snapshot()
    for args in (("partner", "show", "fab-eu.test"),
                 ("partner", "set", "fab-eu.test", "--description", "x"),
                 ("partner", "remove", "fab-eu.test")):
        r = fg.run(*args)
        assert r.rc == 4, (args, r.err)
        rc, doc, _ = fg.jrun(*args)
        assert rc == 4
        assert_error_doc(doc, "not_found", None)
    assert fg.snapshot() == before
    assert fg.partner("fab.test")["additional_domains"] == ["fab-eu.test"]


@pytest.mark.parametrize("args", [("partner", "show", "nobody.test"),
                                  ("partner", "set", "nobody.test", "--description", "x"),
                                  ("partner", "set", "nobody.test", "--tls", "not-supported"),
                                  ("partner", "remove", "nobody.test")])
def test_not_found_exit_4(fg, args):
    fg.ok("partner", "new", "somebody.test")
    before = fg.snapshot()
    r = fg.run(*args)
    assert r.rc == 4, r.err
    assert "nobody.test" in r.err
    rc, doc, _ = fg.jrun(*args)
    assert rc == 4
    assert_error_doc(doc, "not_found", None)
    assert fg.snapshot() == before


def test_not_found_after_remove(fg):
    fg.ok("partner", "new", "gone.test")
    fg.ok("partner", "remove", "gone.test")
    assert fg.run("partner", "remove", "gone.test").rc == 4
    assert fg.run("partner", "show", "gone.test").rc == 4
    # the name is free again, and so are its additional domains after a removal
    fg.ok("partner", "new", "gone2.test", "--additional-domains", "extra.test")
    fg.ok("partner", "remove", "gone2.test")
    fg.ok("partner", "new", "extra.test")


@pytest.mark.parametrize("spelling", ["dup.test", "DUP.TEST", "dup.test.", "Dup.Test."])
def test_duplicate_exit_5(fg, spelling):
    fg.ok("partner", "new", "dup.test", "--description", "first")
    before = fg.snapshot()
    r = fg.run("partner", "new", spelling, "--description", "second")
    assert r.rc == 5, r.err
    rc, doc, _ = fg.jrun("partner", "new", spelling)
    assert rc == 5
    assert_error_doc(doc, "exists", None)
    assert fg.snapshot() == before
    assert fg.partner("dup.test")["description"] == "first"


# ---- domain names --------------------------------------------------------------------------
LONG_253 = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 56, "test"])
LONG_254 = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 57, "test"])
assert len(LONG_253) == 253 and len(LONG_254) == 254

INVALID = [
    ("empty", ""),
    ("only dot", "."),
    ("empty label", "a..b.test"),
    ("leading dot", ".lead.test"),
    ("label 64", "x" * 64 + ".test"),
    ("name 254", LONG_254),
    ("leading hyphen", "x.-lead.test"),
    ("trailing hyphen", "trail-.test"),
    ("ipv4", "192.0.2.1"),
    ("ipv4 loopback", "127.0.0.1"),
    ("ipv6", "::1"),
    ("ipv6 bracketed", "[2001:db8::1]"),
    ("space", "sp ace.test"),
    ("underscore", "under_score.test"),
    ("at sign", "user@host.test"),
    ("slash", "host.test/res"),
]


@pytest.mark.parametrize("name,bad", INVALID, ids=[i[0] for i in INVALID])
def test_invalid_primary_domain(fg, name, bad):
    fg.init_store()
    before = fg.snapshot()
    r = fg.run("partner", "new", bad)
    assert r.rc == 2, f"{bad!r}: exit {r.rc} {r.err!r}"
    rc, doc, _ = fg.jrun("partner", "new", bad)
    assert rc == 2
    assert_error_doc(doc, "invalid_value", None, ["domain"])
    assert fg.snapshot() == before


INVALID_ADDITIONAL = [("new --additional-domains",) + i for i in INVALID if i[0] != "empty"]
# the repeatable flags go through the same name check: a sample of the cases
INVALID_ADDITIONAL += [(how,) + i for how in ("new --add-domain", "set --add-domain")
                       for i in INVALID if i[0] in ("label 64", "ipv4", "underscore",
                                                    "leading hyphen")]


@pytest.mark.parametrize("how,name,bad", INVALID_ADDITIONAL,
                         ids=[f"{i[0]}-{i[1]}" for i in INVALID_ADDITIONAL])
def test_invalid_additional_domain(fg, how, name, bad):
    fg.ok("partner", "new", "ok.test")
    before = fg.snapshot()
    args = {
        "new --additional-domains": ("partner", "new", "ok2.test", "--additional-domains",
                                     "fine.test," + bad),
        "new --add-domain": ("partner", "new", "ok2.test", "--add-domain", bad),
        "set --add-domain": ("partner", "set", "ok.test", "--add-domain", "fine.test",
                             "--add-domain", bad),
    }[how]
    r = fg.run(*args)
    assert r.rc == 2, f"{bad!r}: exit {r.rc} {r.err!r}"
    rc, doc, _ = fg.jrun(*args)
    assert rc == 2, f"{bad!r}: {doc}"
    # the error is reported against the additional domains, not the primary domain
    assert_error_doc(doc, "invalid_value", None, ["additional_domains"])
    assert fg.snapshot() == before


def test_longest_valid_name_and_label(fg):
    fg.ok("partner", "new", LONG_253)
    assert fg.partner(LONG_253)["domain"] == LONG_253
    fg.ok("partner", "new", LONG_253[:-4] + "xyz.")  # a trailing dot does not count
    label63 = "y" * 63 + ".test"
    fg.ok("partner", "new", label63)
    assert fg.partner(label63)["domain"] == label63


def test_case_folding_and_trailing_dot(fg):
    fg.ok("partner", "new", "MiXeD.Example.TEST.", "--additional-domains", "UPPER.TEST.")
    p = fg.partner("mixed.example.test")
    assert p["domain"] == "mixed.example.test"
    assert p["additional_domains"] == ["upper.test"]
    assert fg.partner("MIXED.EXAMPLE.TEST") == p
    assert fg.partner("mixed.example.test.") == p
    fg.ok("partner", "set", "Mixed.Example.Test", "--description", "found")
    fg.ok("partner", "remove", "MIXED.example.test.")
    assert fg.partner("mixed.example.test") is None


def test_idn_round_trip(fg):
    rc, doc, err = fg.jrun("partner", "new", "Bücher.Test",
                           "--additional-domains", "Straße.test,xn--mnchen-3ya.test")
    assert rc == 0, err
    p = doc["partner"]
    assert p["domain"] == "xn--bcher-kva.test"
    assert p["domain_unicode"] == "bücher.test"
    # UTS-46 non-transitional: ß stays ß (xn--strae-oqa), it is not mapped to "ss"
    pairs = sorted(zip(p["additional_domains"], p["additional_domains_unicode"]))
    assert pairs == [("xn--mnchen-3ya.test", "münchen.test"),
                     ("xn--strae-oqa.test", "straße.test")]
    # found by both spellings
    assert fg.partner("xn--bcher-kva.test") == p
    assert fg.partner("bücher.test") == p
    assert fg.partner("BÜCHER.TEST") == p
    assert [q["domain"] for q in fg.partners()] == ["xn--bcher-kva.test"]
    # edit and additional-domain operations by either spelling
    fg.ok("partner", "set", "xn--bcher-kva.test", "--remove-domain", "straße.test")
    fg.ok("partner", "set", "bücher.test", "--add-domain", "xn--zrich-kva.test")
    p = fg.partner("bücher.test")
    assert sorted(p["additional_domains"]) == ["xn--mnchen-3ya.test", "xn--zrich-kva.test"]
    assert sorted(p["additional_domains_unicode"]) == ["münchen.test", "zürich.test"]
    # the additional domain is taken, by either spelling
    assert fg.run("partner", "new", "zürich.test").rc == 3
    assert fg.run("partner", "new", "xn--mnchen-3ya.test").rc == 3
    # already exists by the other spelling
    assert fg.run("partner", "new", "xn--bcher-kva.test").rc == 5
    fg.ok("partner", "remove", "Bücher.test")
    assert fg.partners() == []


def test_idn_invalid_punycode(fg):
    fg.init_store()
    before = fg.snapshot()
    assert fg.run("partner", "new", "xn--zz.test").rc == 2  # not valid Punycode
    assert fg.snapshot() == before


# ---- rules D1, D2, D3 ------------------------------------------------------------------------
@pytest.fixture
def fab(fg):
    fg.ok("partner", "new", "fab.test", "--additional-domains", "fab-eu.test,fab-us.test")
    return fg


def test_d1_primary_equal_to_other_additional(fab):
    refused(fab, ("partner", "new", "fab-eu.test"), "D1", "domain", mentions="fab-eu.test")
    refused(fab, ("partner", "new", "FAB-US.test."), "D1", "domain")


def test_d1_additional_equal_to_other_primary(fab):
    refused(fab, ("partner", "new", "o.test", "--additional-domains", "fab.test"), "D1",
            "additional_domains", mentions="fab.test")
    assert fab.partner("o.test") is None


def test_d1_additional_equal_to_other_additional(fab):
    refused(fab, ("partner", "new", "o.test", "--additional-domains", "x.test,fab-eu.test"),
            "D1", "additional_domains", mentions="fab-eu.test")
    refused(fab, ("partner", "new", "o.test", "--add-domain", "Fab-US.Test"), "D1",
            "additional_domains")


def test_d1_through_set(fab):
    fab.ok("partner", "new", "o.test", "--additional-domains", "o-1.test")
    for flags in (("--add-domain", "fab-eu.test"), ("--add-domain", "fab.test"),
                  ("--additional-domains", "o-1.test,fab-us.test"),
                  ("--add-domain", "new.test", "--add-domain", "fab-us.test"),
                  ("--clear-domains", "--add-domain", "fab.test")):
        refused(fab, ("partner", "set", "o.test", *flags), "D1", "additional_domains")
    assert fab.partner("o.test")["additional_domains"] == ["o-1.test"]


def test_d1_not_for_own_domains(fab):
    # re-listing a partner's own additional domains is no conflict with itself
    fab.ok("partner", "set", "fab.test", "--additional-domains", "fab-us.test,fab-eu.test")
    fab.ok("partner", "set", "fab.test", "--description", "still fine")


def test_d1_idn_spellings(fg):
    fg.ok("partner", "new", "köln.test")
    refused(fg, ("partner", "new", "o.test", "--additional-domains", "xn--kln-sna.test"), "D1",
            "additional_domains")
    fg.ok("partner", "new", "o2.test", "--additional-domains", "xn--dsseldorf-q9a.test")
    refused(fg, ("partner", "new", "Düsseldorf.test"), "D1", "domain")


def test_existing_primary_is_exists_not_d1(fab):
    before = fab.snapshot()
    r = fab.run("partner", "new", "fab.test", "--additional-domains", "other-x.test")
    assert r.rc == 5, r.err
    assert fab.snapshot() == before


@pytest.mark.parametrize("hosted", ["home.test", "home2.test", "HOME2.TEST", "Home.Test.",
                                    "ｈｏｍｅ２.test", "ｈｏｍｅ．ｔｅｓｔ"])
def test_d2_primary_is_hosted_domain(fg, hosted):
    fg.init_store()
    refused(fg, ("partner", "new", hosted), "D2", "domain")


@pytest.mark.parametrize("hosted", ["home.test", "home2.test", "HOME.TEST", "ｈｏｍｅ２.test"])
def test_d2_additional_is_hosted_domain(fg, hosted):
    fg.ok("partner", "new", "p.test")
    refused(fg, ("partner", "new", "q.test", "--additional-domains", "a.test," + hosted),
            "D2", "additional_domains")
    refused(fg, ("partner", "set", "p.test", "--add-domain", hosted), "D2",
            "additional_domains")
    refused(fg, ("partner", "set", "p.test", "--additional-domains", hosted), "D2",
            "additional_domains")


def test_d2_subdomain_of_hosted_is_allowed(fg):
    # D2 is about equal names: a partner may live under a hosted domain's name
    fg.ok("partner", "new", "partner.home.test")


def test_d3_additional_repeats_primary(fg):
    refused(fg, ("partner", "new", "self.test", "--additional-domains", "self.test"), "D3",
            "additional_domains")
    refused(fg, ("partner", "new", "self.test", "--additional-domains", "a.test,SELF.TEST."),
            "D3", "additional_domains")
    refused(fg, ("partner", "new", "bücher.test", "--add-domain", "xn--bcher-kva.test"), "D3",
            "additional_domains")
    fg.ok("partner", "new", "self.test")
    refused(fg, ("partner", "set", "self.test", "--add-domain", "Self.Test"), "D3",
            "additional_domains")
    refused(fg, ("partner", "set", "self.test", "--additional-domains", "self.test"), "D3",
            "additional_domains")


# ---- precedence: R3, R2, D2, D3, D1 -------------------------------------------------------
@pytest.fixture
def taken(fg):
    fg.ok("partner", "new", "taken.test", "--additional-domains", "taken-add.test")
    return fg


PRECEDENCE = [
    # (name, args, expected rule)  -- every case has several failing rules
    ("R3>D2", ("partner", "new", "home.test", "--tls", "not-supported"), "R3"),
    ("R3>D3", ("partner", "new", "s.test", "--additional-domains", "s.test",
               "--tls", "not-supported"), "R3"),
    ("R3>D1", ("partner", "new", "s.test", "--additional-domains", "taken.test",
               "--tls", "not-supported", "--sasl", "required"), "R3"),
    ("R3>all", ("partner", "new", "s.test", "--additional-domains",
                "s.test,home2.test,taken-add.test", "--tls", "not-supported"), "R3"),
    ("R2>D2", ("partner", "new", "home2.test", "--sasl", "not-supported",
               "--dialback", "false"), "R2"),
    ("R2>D3", ("partner", "new", "s.test", "--additional-domains", "s.test",
               "--sasl", "not-supported", "--dialback", "false"), "R2"),
    ("R2>D1", ("partner", "new", "taken-add.test", "--sasl", "not-supported",
               "--dialback", "false"), "R2"),
    ("R2>all", ("partner", "new", "s.test", "--additional-domains",
                "taken.test,s.test,home.test", "--tls", "optional", "--sasl", "not-supported",
                "--dialback", "false"), "R2"),
    ("D2>D3", ("partner", "new", "home.test", "--additional-domains", "home.test"), "D2"),
    ("D2>D1", ("partner", "new", "s.test", "--additional-domains", "taken.test,home.test"),
     "D2"),
    ("D2>D3>D1", ("partner", "new", "s.test", "--additional-domains",
                  "taken-add.test,s.test,home2.test"), "D2"),
    ("D3>D1", ("partner", "new", "s.test", "--additional-domains", "taken.test,s.test"), "D3"),
    ("D3>D1 primary", ("partner", "new", "taken-add.test", "--additional-domains",
                       "taken-add.test"), "D3"),
]


@pytest.mark.parametrize("name,args,rule", PRECEDENCE, ids=[p[0] for p in PRECEDENCE])
def test_rule_precedence(taken, name, args, rule):
    refused(taken, args, rule)


@pytest.mark.parametrize("flags,rule", [
    (("--tls", "not-supported", "--add-domain", "taken-add.test"), "R3"),
    (("--sasl", "not-supported", "--dialback", "false", "--add-domain", "home.test"), "R2"),
    (("--add-domain", "taken.test", "--add-domain", "home2.test", "--add-domain", "u.test"),
     "D2"),
    (("--add-domain", "taken.test", "--add-domain", "u.test"), "D3"),
], ids=["R3>D1", "R2>D2", "D2>D3>D1", "D3>D1"])
def test_rule_precedence_through_set(taken, flags, rule):
    taken.ok("partner", "new", "u.test")
    refused(taken, ("partner", "set", "u.test", *flags), rule)


# ---- two writers at once --------------------------------------------------------------------
def run_parallel(fg, jobs):
    results = [[] for _ in jobs]

    def worker(i, calls):
        for args in calls:
            results[i].append((args, fg.run(*args)))

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return [x for r in results for x in r]


def test_concurrent_creates_lose_nothing(fg):
    fg.init_store()
    jobs = [[("partner", "new", f"p{n}-{i}.test") for i in range(20)] for n in (1, 2)]
    for args, r in run_parallel(fg, jobs):
        assert r.rc == 0, f"{args}: {r.rc} {r.err!r}"
    domains = {p["domain"] for p in fg.partners()}
    assert domains == {f"p{n}-{i}.test" for n in (1, 2) for i in range(20)}
    creates = [a for a in fg.audit() if a["action"] == "partner.create"]
    assert len(creates) == 40


def test_concurrent_edits_of_one_partner_lose_nothing(fg):
    fg.ok("partner", "new", "x.test")
    jobs = [[("partner", "set", "x.test", "--add-domain", f"w{n}-{i}.test") for i in range(20)]
            for n in (1, 2)]
    for args, r in run_parallel(fg, jobs):
        assert r.rc == 0, f"{args}: {r.rc} {r.err!r}"
    assert sorted(fg.partner("x.test")["additional_domains"]) == \
        sorted(f"w{n}-{i}.test" for n in (1, 2) for i in range(20))


def test_concurrent_creates_of_the_same_domain(fg):
    # two writers racing for one name: exactly one wins, the other gets "exists"
    fg.init_store()
    jobs = [[("partner", "new", f"race{i}.test", "--description", f"by{n}") for i in range(10)]
            for n in (1, 2)]
    res = run_parallel(fg, jobs)
    for i in range(10):
        rcs = sorted(r.rc for args, r in res if args[2] == f"race{i}.test")
        assert rcs == [0, 5], (i, rcs)
    assert len(fg.partners()) == 10
