"""`fedgatectl gateway ...` (SPEC section 5) and `fedgatectl audit` (SPEC sections 6, 7):
every key with its bounds, the dialback secret that is never shown, audit records with
their actor, address, order, before/after objects, --limit and --since."""
import datetime
import time

import pytest

from fgcli import (GATEWAY_DEFAULTS, assert_audit_record, assert_error_doc, login_name)

# SPEC section 5, written out: (key, flag, min, max)
INT_KEYS = [
    ("connection_limit", "--connection-limit", 1, 1000000),
    ("partner_connection_limit", "--partner-connection-limit", 1, 65535),
    ("keepalive_interval", "--keepalive-interval", 10, 86400),
    ("stream_establishment_timeout", "--stream-establishment-timeout", 5, 600),
    ("stream_inactivity_timeout", "--stream-inactivity-timeout", 30, 86400),
    ("subscription_refresh_interval", "--subscription-refresh-interval", 600, 604800),
]


def test_gateway_show_defaults(fg):
    rc, doc, err = fg.jrun("gateway", "show")
    assert rc == 0, err
    assert doc == {"gateway": GATEWAY_DEFAULTS}
    r = fg.ok("gateway", "show")
    for k, v in GATEWAY_DEFAULTS.items():
        assert k in r.out or k.replace("_", "-") in r.out, k
    secret = fg.dialback_secret()
    if secret:
        assert secret not in r.out and secret not in fg.run("--json", "gateway", "show").out


@pytest.mark.parametrize("key,flag,lo,hi", INT_KEYS, ids=[k[0] for k in INT_KEYS])
def test_gateway_int_bounds(fg, key, flag, lo, hi):
    rc, doc, err = fg.jrun("gateway", "set", flag, str(lo))
    assert rc == 0, err
    assert doc == {"gateway": dict(GATEWAY_DEFAULTS, **{key: lo})}
    assert fg.gateway() == dict(GATEWAY_DEFAULTS, **{key: lo})
    fg.ok("gateway", "set", flag, str(hi))
    assert fg.gateway() == dict(GATEWAY_DEFAULTS, **{key: hi})
    before = fg.snapshot()
    for bad in (str(lo - 1), str(hi + 1), "abc", "", "1.5", "10s",
                "99999999999999999999999"):
        r = fg.run("gateway", "set", flag, bad)
        assert r.rc == 2, (bad, r.err)
        rc, doc, _ = fg.jrun("gateway", "set", flag, bad)
        assert rc == 2
        assert_error_doc(doc, "invalid_value", None, [key])
    assert fg.snapshot() == before


def test_gateway_bool_key(fg):
    fg.ok("gateway", "set", "--log-message-bodies", "true")
    assert fg.gateway()["log_message_bodies"] is True
    fg.ok("gateway", "set", "--log-message-bodies", "false")
    assert fg.gateway()["log_message_bodies"] is False
    before = fg.snapshot()
    rc, doc, _ = fg.jrun("gateway", "set", "--log-message-bodies", "maybe")
    assert rc == 2
    assert_error_doc(doc, "invalid_value", None, ["log_message_bodies"])
    assert fg.snapshot() == before


@pytest.mark.parametrize("value", ["block", "federated", "public-verified", "public-unverified"])
def test_gateway_unlisted_domains_values(fg, value):
    fg.ok("gateway", "set", "--unlisted-domains", "federated" if value == "block" else "block")
    fg.ok("gateway", "set", "--unlisted-domains", value)
    assert fg.gateway()["unlisted_domains"] == value


@pytest.mark.parametrize("value", ["allow", "open", "", "Federated", "none"])
def test_gateway_unlisted_domains_invalid(fg, value):
    fg.init_store()
    before = fg.snapshot()
    rc, doc, _ = fg.jrun("gateway", "set", "--unlisted-domains", value)
    assert rc == 2
    assert_error_doc(doc, "invalid_value", None, ["unlisted_domains"])
    assert fg.snapshot() == before


@pytest.mark.parametrize("flags", [("--frobnicate", "1"), ("--dialback-secret", "abcdef0123"),
                                   ("--secret", "x"), ("--keepalive-interval",),
                                   ("keepalive_interval", "100")])
def test_gateway_unknown_key_or_malformed_exit_2(fg, flags):
    fg.init_store()
    before = fg.snapshot()
    r = fg.run("gateway", "set", *flags)
    assert r.rc == 2, r.err
    rc, doc, _ = fg.jrun("gateway", "set", *flags)
    assert rc == 2
    assert doc["error"]["code"] in ("usage", "invalid_value")
    assert fg.snapshot() == before


def test_gateway_set_changes_only_given_keys_and_is_atomic(fg):
    fg.ok("gateway", "set", "--keepalive-interval", "120", "--unlisted-domains", "federated",
          "--log-message-bodies", "true")
    expect = dict(GATEWAY_DEFAULTS, keepalive_interval=120, unlisted_domains="federated",
                  log_message_bodies=True)
    assert fg.gateway() == expect
    fg.ok("gateway", "set", "--connection-limit", "5000")
    expect["connection_limit"] = 5000
    assert fg.gateway() == expect
    # one bad value among good ones: nothing is saved
    before = fg.snapshot()
    r = fg.run("gateway", "set", "--keepalive-interval", "200", "--connection-limit", "0")
    assert r.rc == 2
    assert fg.snapshot() == before
    assert fg.gateway() == expect


def test_gateway_set_audit_record(fg):
    fg.ok("gateway", "set", "--partner-connection-limit", "40")
    a = fg.audit()[0]
    assert_audit_record(a)
    assert a["action"] == "gateway.update" and a["object"] == "gateway"
    assert a["before"] == GATEWAY_DEFAULTS
    assert a["after"] == dict(GATEWAY_DEFAULTS, partner_connection_limit=40)


def test_rotate_dialback_secret(fg):
    fg.init_store()
    gw = fg.gateway()
    secret_before = fg.dialback_secret()
    rc, doc, err = fg.jrun("gateway", "rotate-dialback-secret")
    assert rc == 0, err
    assert doc == {"rotated": True}
    secret1 = fg.dialback_secret()
    fg.ok("gateway", "rotate-dialback-secret")
    secret2 = fg.dialback_secret()
    recs = fg.audit()
    assert [(a["action"], a["object"]) for a in recs] == \
        [("gateway.rotate-dialback-secret", "gateway")] * 2
    for a in recs:
        assert_audit_record(a)
        assert a["before"] is None and a["after"] is None
    assert fg.gateway() == gw
    # the secret (found in the store file) changed, and is shown nowhere
    assert secret1 and secret2, "no dialback secret found in the store after rotation"
    assert secret1 != secret2 and secret1 != secret_before
    shown = "".join(fg.run(*j, *a).out for j in ((), ("--json",))
                    for a in (("gateway", "show"), ("audit",), ("partner", "list")))
    shown += fg.run("gateway", "rotate-dialback-secret").out
    for s in (secret_before, secret1, secret2):
        if s:
            assert s not in shown
    # and never in an audit record in the store either
    for t, row in fg.db_rows():
        if "audit" in t.lower():
            for s in (secret1, secret2):
                assert s not in " ".join(str(v) for v in row.values())


def test_rotate_takes_no_arguments(fg):
    fg.init_store()
    before = fg.snapshot()
    assert fg.run("gateway", "rotate-dialback-secret", "mysecret").rc == 2
    assert fg.run("gateway", "frobnicate").rc == 2
    assert fg.snapshot() == before


# ---- audit ------------------------------------------------------------------------------------
def make_history(fg):
    fg.ok("partner", "new", "a.test", "--description", "one")
    fg.ok("partner", "set", "a.test", "--description", "two", "--type", "federated")
    fg.ok("partner", "new", "b.test")
    fg.ok("partner", "remove", "b.test")
    fg.ok("gateway", "set", "--keepalive-interval", "60")


def test_audit_records_shape_order_and_objects(fg):
    fg.ok("partner", "new", "a.test", "--description", "one")
    created = fg.partner("a.test")
    fg.ok("partner", "set", "a.test", "--description", "two", "--type", "federated")
    updated = fg.partner("a.test")
    fg.ok("partner", "new", "b.test")
    b = fg.partner("b.test")
    fg.ok("partner", "remove", "b.test")
    fg.ok("gateway", "set", "--keepalive-interval", "60")

    rc, doc, _ = fg.jrun("audit")
    assert rc == 0 and set(doc) == {"audit"}
    recs = doc["audit"]
    for r in recs:
        assert_audit_record(r)
        assert r["actor"] == "cli:" + login_name()
        assert r["address"] == "local"
    assert [(r["action"], r["object"]) for r in recs] == [
        ("gateway.update", "gateway"),
        ("partner.delete", "partner:b.test"),
        ("partner.create", "partner:b.test"),
        ("partner.update", "partner:a.test"),
        ("partner.create", "partner:a.test"),
    ]
    times = [r["time"] for r in recs]
    assert times == sorted(times, reverse=True), "newest first"
    assert recs[4]["before"] is None and recs[4]["after"] == created
    assert recs[3]["before"] == created and recs[3]["after"] == updated
    assert recs[2]["before"] is None and recs[2]["after"] == b
    assert recs[1]["before"] == b and recs[1]["after"] is None
    if "id" in recs[0]:
        ids = [r["id"] for r in recs]
        assert len(set(ids)) == len(ids)
    # recent: the newest record is from now
    newest = datetime.datetime.fromisoformat(recs[0]["time"].replace("Z", "+00:00"))
    assert abs(datetime.datetime.now(datetime.timezone.utc) - newest) < \
        datetime.timedelta(minutes=2)


def test_audit_human_output(fg):
    make_history(fg)
    r = fg.ok("audit")
    for word in ("partner.create", "partner.update", "partner.delete", "gateway.update",
                 "cli:" + login_name(), "a.test", "b.test"):
        assert word in r.out, word


def test_audit_actor_sudo_user(fg):
    fg.ok("partner", "new", "a.test", env={"SUDO_USER": "alice"})
    fg.ok("partner", "new", "b.test")
    recs = fg.audit()
    assert recs[1]["actor"] == "cli:alice"
    assert recs[0]["actor"] == "cli:" + login_name()
    assert all(r["address"] == "local" for r in recs)


def test_failed_changes_write_no_audit_record(fg):
    fg.ok("partner", "new", "a.test")
    fg.ok("admin", "add", "root", "--role", "server-admin", "--password-file",
          fg.pwfile("pw-123456"))
    n = len(fg.audit())
    for args in (("partner", "new", "a.test"),                         # exists
                 ("partner", "set", "a.test", "--tls", "not-supported"),  # refused
                 ("partner", "set", "z.test", "--description", "x"),     # not found
                 ("partner", "new", "bad_name.test"),                    # invalid
                 ("partner", "new", "home.test"),                        # D2
                 ("partner", "remove", "z.test"),
                 ("gateway", "set", "--connection-limit", "0"),
                 ("admin", "remove", "root"),                            # A1
                 ("user", "remove", "nobody@home.test")):
        assert fg.run(*args).rc != 0, args
    assert len(fg.audit()) == n


def test_audit_limit(fg):
    make_history(fg)
    full = fg.audit()
    assert len(full) == 5
    assert fg.audit("--limit", "2") == full[:2]
    assert fg.audit("--limit", "1") == full[:1]
    assert fg.audit("--limit", "100000") == full
    r = fg.ok("audit", "--limit", "1")
    assert "gateway.update" in r.out and "partner.create" not in r.out
    before = fg.snapshot()
    for bad in ("0", "-1", "100001", "abc", ""):
        rc, doc, _ = fg.jrun("audit", "--limit", bad)
        assert rc == 2, (bad, doc)
        assert doc["error"]["code"] in ("invalid_value", "usage")
    assert fg.snapshot() == before


def test_audit_since(fg):
    fg.ok("partner", "new", "old.test")
    time.sleep(1.1)
    mark = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    time.sleep(1.1)
    fg.ok("partner", "new", "new.test")
    stamp = mark.strftime("%Y-%m-%dT%H:%M:%SZ")
    recs = fg.audit("--since", stamp)
    assert [r["object"] for r in recs] == ["partner:new.test"]
    # RFC 3339 with an offset names the same instant
    east = mark.astimezone(datetime.timezone(datetime.timedelta(hours=5, minutes=30)))
    assert [r["object"] for r in fg.audit("--since", east.isoformat())] == ["partner:new.test"]
    assert len(fg.audit("--since", "2000-01-01T00:00:00Z")) == 2
    assert len(fg.audit("--since", "2000-01-01")) == 2
    future = (mark + datetime.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert fg.audit("--since", future) == []
    assert fg.audit("--since", (mark + datetime.timedelta(days=2)).strftime("%Y-%m-%d")) == []
    assert fg.audit("--since", "2000-01-01", "--limit", "1") == \
        [r for r in fg.audit() if r["object"] == "partner:new.test"]
    for bad in ("yesterday", "2026-13-01", "2026-11-26T25:00:00Z", "", "12345"):
        rc, doc, _ = fg.jrun("audit", "--since", bad)
        assert rc == 2, (bad, doc)
        assert doc["error"]["code"] in ("invalid_value", "usage")


def test_audit_empty(fg):
    rc, doc, _ = fg.jrun("audit")
    assert rc == 0 and doc == {"audit": []}
