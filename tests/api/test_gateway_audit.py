"""Gateway settings (SPEC section 5) and the audit log through the API: ranges, types, merge
patch with null for the default, the dialback secret never shown or set, audit filters."""
import json
import sqlite3
import time
import urllib.parse

import pytest

from conftest import make_gate

IP = "127.0.0.46"

DEFAULTS = {
    "connection_limit": 1000, "partner_connection_limit": 20, "keepalive_interval": 300,
    "stream_establishment_timeout": 60, "stream_inactivity_timeout": 600,
    "subscription_refresh_interval": 28800, "log_message_bodies": False,
    "unlisted_domains": "block",
}
RANGES = {
    "connection_limit": (1, 1000000), "partner_connection_limit": (1, 65535),
    "keepalive_interval": (10, 86400), "stream_establishment_timeout": (5, 600),
    "stream_inactivity_timeout": (30, 86400), "subscription_refresh_interval": (600, 604800),
}


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    g = make_gate(tmp_path_factory, IP)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def adm(gate):
    return gate.client("adm")


def secret_values(gate):
    con = sqlite3.connect(f"file:{gate.db}?mode=ro", uri=True, timeout=10)
    try:
        vals = []
        for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'"):
            cur = con.execute(f'SELECT * FROM "{t}"')
            cols = [c[0] for c in cur.description]
            for row in cur.fetchall():
                d = dict(zip(cols, row))
                if any(isinstance(v, str) and "dialback" in v for v in d.values()) or \
                        any("dialback" in c for c in cols):
                    vals += [v for v in d.values() if isinstance(v, str) and len(v) >= 32
                             and "dialback" not in v]
        return vals
    finally:
        con.close()


def test_gateway_get(gate, adm):
    r = adm.get("/gateway")
    assert r.status == 200
    assert r.json == {"gateway": DEFAULTS}


@pytest.mark.parametrize("key", sorted(RANGES))
def test_gateway_ranges(gate, adm, key):
    lo, hi = RANGES[key]
    for bad in (lo - 1, hi + 1):
        r = adm.patch("/gateway", {key: bad})
        assert r.status == 400, (key, bad)
        assert key in r.error("invalid_value")["fields"]
    for good in (lo, hi):
        r = adm.patch("/gateway", {key: good})
        assert r.status == 200 and r.json["gateway"][key] == good
    r = adm.patch("/gateway", {key: None}, ctype="application/merge-patch+json")
    assert r.status == 200 and r.json["gateway"][key] == DEFAULTS[key]


def test_gateway_types_and_keys(gate, adm):
    before = gate.snapshot()
    for body in ({"keepalive_interval": "120"}, {"keepalive_interval": 12.5},
                 {"keepalive_interval": True}, {"log_message_bodies": "true"},
                 {"log_message_bodies": 1}, {"unlisted_domains": "allow"},
                 {"unlisted_domains": 3}, {"no_such_key": 1},
                 {"keepalive_interval": 120, "connection_limit": 0}):
        r = adm.patch("/gateway", body)
        assert r.status == 400, (body, r)
    assert gate.snapshot() == before


def test_gateway_patch_and_audit(gate, adm):
    r = adm.patch("/gateway", {"keepalive_interval": 120, "log_message_bodies": True,
                               "unlisted_domains": "public-verified"})
    assert r.status == 200
    g = r.json["gateway"]
    assert g["keepalive_interval"] == 120 and g["log_message_bodies"] is True
    assert g["unlisted_domains"] == "public-verified"
    rc, doc = gate.ctl_json("gateway", "show")
    assert doc["gateway"] == g
    rec = [a for a in gate.ctl_json("audit")[1]["audit"] if a["action"] == "gateway.update"][0]
    assert rec["object"] == "gateway" and rec["actor"] == "admin:adm"
    assert rec["before"]["keepalive_interval"] == 300 and rec["after"] == g
    n = len(gate.ctl_json("audit")[1]["audit"])
    assert adm.patch("/gateway", {"keepalive_interval": 120}).status == 200  # no change
    assert adm.patch("/gateway", {}).status == 200
    assert len(gate.ctl_json("audit")[1]["audit"]) == n
    p = gate.ctl("gateway", "set", "--keepalive-interval", "90")
    assert p.returncode == 0
    assert adm.get("/gateway").json["gateway"]["keepalive_interval"] == 90


def test_dialback_secret_never_shown_or_set(gate, adm):
    r = adm.patch("/gateway", {"dialback_secret": "0" * 64})
    assert r.status == 400
    assert "dialback_secret" in r.error("invalid_value")["fields"]
    secrets = secret_values(gate)
    assert secrets, "the daemon should have generated a dialback secret"
    seen = ""
    for path in ("/gateway", "/audit", "/status", "/partners"):
        seen += adm.get(path).text
    seen += adm.get("/metrics", prefix="").text + gate.log()
    assert "dialback_secret" not in seen
    for s in secrets:
        assert s not in seen


def test_audit_filters(gate):
    boss = gate.client("boss")
    for d in ("f1.test", "f2.test", "f3.test"):
        assert boss.post("/partners", {"domain": d}).status == 201
    assert gate.client("adm").delete("/partners/f2.test").status == 204
    r = boss.get("/audit")
    assert r.status == 200 and set(r.json) == {"audit"}
    recs = r.json["audit"]
    ids = [a["id"] for a in recs]
    assert ids == sorted(ids, reverse=True)  # newest first
    for a in recs:
        assert {"time", "actor", "address", "action", "object", "before", "after"} <= set(a)
    assert len(boss.get("/audit?limit=2").json["audit"]) == 2
    got = boss.get("/audit?action=partner.create&limit=2").json["audit"]
    assert [a["object"] for a in got] == ["partner:f3.test", "partner:f2.test"]
    got = boss.get("/audit?actor=admin:adm&action=partner.*").json["audit"]
    assert [(a["action"], a["object"]) for a in got] == [("partner.delete", "partner:f2.test")]
    got = boss.get("/audit?object=" + urllib.parse.quote("partner:f1.test")).json["audit"]
    assert [a["action"] for a in got] == ["partner.create"]
    future = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
    assert boss.get(f"/audit?since={future}").json["audit"] == []
    assert len(boss.get("/audit?since=2000-01-01").json["audit"]) == len(recs)
    for q in ("since=yesterday", "limit=0", "limit=100001", "limit=x", "since=%zz"):
        r = boss.get(f"/audit?{q}")
        assert r.status == 400, q
        r.error("invalid_value")
    # the viewer reads the audit log too
    assert gate.client("vic").get("/audit?limit=1").status == 200
