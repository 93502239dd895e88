"""Users, administrators and API tokens through the API: shapes of doc/cli-decisions.md,
rule A1, token expiry and deletion, no secrets in answers, logs or audit records, and one
store shared with fedgatectl."""
import json
import sqlite3
import urllib.parse

import pytest

from conftest import PASSWORDS, make_gate

IP = "127.0.0.44"


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    g = make_gate(tmp_path_factory, IP)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def boss(gate):
    return gate.client("boss")


def audit(gate, obj):
    rc, doc = gate.ctl_json("audit")
    assert rc == 0
    return [a for a in doc["audit"] if a["object"] == obj]


# ---- users ------------------------------------------------------------------------------
def test_user_lifecycle(gate, boss):
    r = boss.post("/users", {"jid": "Alice@HOME.test", "password": "alice-pw"})
    assert r.status == 201, r
    assert r.json == {"user": {"jid": "alice@home.test"}}
    r = boss.post("/users", {"jid": "alice@home.test", "password": "other"})
    assert r.status == 409
    r.error("exists")
    assert boss.get("/users").json == {"users": [{"jid": "alice@home.test"}]}
    rc, doc = gate.ctl_json("user", "list")
    assert doc["users"] == [{"jid": "alice@home.test"}]
    r = boss.put("/users/alice@home.test", {"password": "new-pw"})
    assert r.status == 200 and r.json == {"user": {"jid": "alice@home.test"}}
    assert boss.put("/users/bob@home.test", {"password": "x"}).status == 404
    r = boss.delete("/users/" + urllib.parse.quote("alice@home.test"))
    assert r.status == 204
    assert boss.delete("/users/alice@home.test").status == 404
    assert boss.get("/users").json == {"users": []}
    acts = [(a["action"], a["before"], a["after"]) for a in audit(gate, "user:alice@home.test")]
    assert acts == [("user.remove", {"jid": "alice@home.test"}, None),
                    ("user.passwd", {"jid": "alice@home.test"}, {"jid": "alice@home.test"}),
                    ("user.add", None, {"jid": "alice@home.test"})]


def test_user_idn_domain_and_cli(gate, boss):
    r = boss.post("/users", {"jid": "carl@büro.test", "password": "pw"})
    assert r.status == 201
    assert r.json["user"]["jid"] == "carl@xn--bro-hoa.test"
    p = gate.ctl("user", "add", "dora@home.test", "--password-file", "-", input="pw\n")
    assert p.returncode == 0, p.stderr
    jids = [u["jid"] for u in boss.get("/users").json["users"]]
    assert "dora@home.test" in jids and "carl@xn--bro-hoa.test" in jids


@pytest.mark.parametrize("jid", ["nodomain", "@home.test", "a@other.test", "a b@home.test",
                                 "a/b@home.test", "a@home.test/res", "a:b@home.test",
                                 "a@b@home.test", "x" * 1024 + "@home.test", "a@bad..test"])
def test_user_bad_jid(gate, boss, jid):
    r = boss.post("/users", {"jid": jid, "password": "pw"})
    assert r.status == 400, r
    assert "jid" in r.error("invalid_value")["fields"]


def test_user_bad_bodies(gate, boss):
    for body in ({"jid": "e@home.test"}, {"jid": "e@home.test", "password": ""},
                 {"jid": "e@home.test", "password": 5}, {"password": "x"},
                 {"jid": "e@home.test", "password": "x", "admin": True},
                 {"jid": "e@home.test", "password": "x" * 1024}):
        assert boss.post("/users", body).status == 400, body
    assert boss.put("/users/e@home.test", {}).status == 400
    assert boss.get("/users").json["users"].count({"jid": "e@home.test"}) == 0


def test_user_keys_are_scram_only(gate, boss):
    assert boss.post("/users", {"jid": "sec@home.test", "password": "Very-secret-9"}).status == 201
    with open(gate.db, "rb") as f:
        assert b"Very-secret-9" not in f.read()
    assert "Very-secret-9" not in gate.log()


# ---- administrators --------------------------------------------------------------------------
def test_admin_lifecycle(gate, boss):
    r = boss.post("/admins", {"name": "eve", "role": "viewer", "password": "Eve-pw-123"})
    assert r.status == 201 and r.json == {"admin": {"name": "eve", "role": "viewer"}}
    assert boss.post("/admins", {"name": "eve", "role": "viewer",
                                 "password": "x"}).status == 409
    eve = gate.client()
    assert eve.login("eve", "Eve-pw-123").status == 200
    assert eve.post("/partners", {"domain": "eve.test"}).status == 403
    r = boss.patch("/admins/eve", {"role": "administrator"})
    assert r.status == 200 and r.json["admin"]["role"] == "administrator"
    # the new role applies to the live session at once
    assert eve.post("/partners", {"domain": "eve.test"}).status == 201
    r = boss.patch("/admins/eve", {"password": "Eve-pw-456"})
    assert r.status == 200
    assert eve.get("/partners").status == 401  # a new password ends other sessions
    assert gate.client().login("eve", "Eve-pw-123").status == 401
    eve2 = gate.client()
    assert eve2.login("eve", "Eve-pw-456").status == 200
    assert [a for a in boss.get("/admins").json["admins"] if a["name"] == "eve"] == \
        [{"name": "eve", "role": "administrator"}]
    rc, doc = gate.ctl_json("admin", "list")
    assert {"name": "eve", "role": "administrator"} in doc["admins"]
    assert boss.delete("/admins/eve").status == 204
    assert eve2.get("/partners").status == 401
    assert boss.delete("/admins/eve").status == 404
    assert boss.patch("/admins/eve", {"role": "viewer"}).status == 404
    acts = [(a["action"], a["before"], a["after"]) for a in audit(gate, "admin:eve")]
    assert acts == [
        ("admin.remove", {"name": "eve", "role": "administrator"}, None),
        ("admin.passwd", {"name": "eve", "role": "administrator"},
         {"name": "eve", "role": "administrator"}),
        ("admin.update", {"name": "eve", "role": "viewer"},
         {"name": "eve", "role": "administrator"}),
        ("admin.add", None, {"name": "eve", "role": "viewer"}),
    ]
    text = json.dumps(gate.ctl_json("audit")[1])
    assert "Eve-pw" not in text and "argon2" not in text
    assert "Eve-pw" not in gate.log()


def test_own_password_change_keeps_own_session(gate):
    assert gate.client("boss").post("/admins", {"name": "fay", "role": "server-admin",
                                                 "password": "Fay-pw-1"}).status == 201
    fay = gate.client()
    assert fay.login("fay", "Fay-pw-1").status == 200
    assert fay.patch("/admins/fay", {"password": "Fay-pw-2"}).status == 200
    assert fay.get("/partners").status == 200
    assert gate.client("boss").delete("/admins/fay").status == 204


@pytest.mark.parametrize("body", [
    {"name": "bad name", "role": "viewer", "password": "x"},
    {"name": "", "role": "viewer", "password": "x"},
    {"name": "n" * 65, "role": "viewer", "password": "x"},
    {"name": "ok", "role": "root", "password": "x"},
    {"name": "ok", "password": "x"},
    {"name": "ok", "role": "viewer"},
    {"name": "ok", "role": "viewer", "password": ""},
    {"role": "viewer", "password": "x"},
])
def test_admin_bad_bodies(gate, boss, body):
    assert boss.post("/admins", body).status == 400
    assert "ok" not in [a["name"] for a in boss.get("/admins").json["admins"]]


def test_admin_patch_bad_bodies(gate, boss):
    assert boss.patch("/admins/vic", {}).status == 400
    assert boss.patch("/admins/vic", {"role": "king"}).status == 400
    assert boss.patch("/admins/vic", {"name": "x"}).status == 400
    assert boss.patch("/admins/bad%20name", {"role": "viewer"}).status == 400


def test_a1_last_server_admin(gate):
    boss = gate.client("boss")
    before = gate.snapshot()
    r = boss.patch("/admins/boss", {"role": "administrator"})
    assert r.status == 422
    assert r.error("refused", "A1")
    r = boss.delete("/admins/boss")
    assert r.status == 422
    r.error("refused", "A1")
    assert gate.snapshot() == before
    # with a second server-admin, one may go
    assert boss.post("/admins", {"name": "gus", "role": "server-admin",
                                 "password": "Gus-pw-1"}).status == 201
    assert boss.patch("/admins/gus", {"role": "viewer"}).status == 200
    assert boss.patch("/admins/gus", {"role": "server-admin"}).status == 200
    assert boss.delete("/admins/gus").status == 204


# ---- tokens ------------------------------------------------------------------------------
def test_token_lifecycle(gate, boss):
    r = boss.post("/tokens", {"name": "adm", "expires_days": 30})
    assert r.status == 201, r
    t = r.json["token"]
    assert set(t) == {"id", "admin", "role", "expires", "secret"}
    assert t["admin"] == "adm" and t["role"] == "administrator" and t["expires"].endswith("Z")
    api = gate.client(token=t["secret"])
    assert api.post("/partners", {"domain": "tok.test"}).status == 201
    listed = boss.get("/tokens").json["tokens"]
    mine = [x for x in listed if x["id"] == t["id"]]
    assert len(mine) == 1 and "secret" not in mine[0] and "hash" not in mine[0]
    assert t["secret"] not in json.dumps(listed)
    rec = audit(gate, f"token:{t['id']}")
    assert rec[0]["action"] == "token.create"
    assert rec[0]["after"] == {"id": t["id"], "admin": "adm", "role": "administrator",
                               "expires": t["expires"]}
    assert t["secret"] not in json.dumps(gate.ctl_json("audit")[1]) + gate.log()
    assert boss.delete(f"/tokens/{t['id']}").status == 204
    r = api.get("/partners")
    assert r.status == 401
    r.error("unauthorized")
    assert boss.delete(f"/tokens/{t['id']}").status == 404
    assert audit(gate, f"token:{t['id']}")[0]["action"] == "token.delete"


def test_token_defaults_to_self_and_role(gate, boss):
    r = boss.post("/tokens")  # no body at all
    assert r.status == 201
    t = r.json["token"]
    assert t["admin"] == "boss" and t["role"] == "server-admin" and t["expires"] is None
    r = boss.post("/tokens", {"role": "viewer"})
    assert r.status == 201 and r.json["token"]["role"] == "viewer"
    v = gate.client(token=r.json["token"]["secret"])
    assert v.get("/partners").status == 200
    assert v.post("/partners", {"domain": "viewer-token.test"}).status == 403


def test_token_rules(gate, boss):
    r = boss.post("/tokens", {"name": "vic", "role": "administrator"})
    assert r.status == 400  # above the administrator's own role
    assert boss.post("/tokens", {"name": "ghost"}).status == 404
    for days in (0, 3651, "7", 1.5):
        assert boss.post("/tokens", {"expires_days": days}).status == 400, days
    assert boss.post("/tokens", {"other": 1}).status == 400
    assert boss.delete("/tokens/doesnotexist").status == 404


def test_expired_token(gate, boss):
    t = gate.token("adm", expires_days=1)
    api = gate.client(token=t["secret"])
    assert api.get("/partners").status == 200
    # a day later: move its expiry into the past in the store itself
    con = sqlite3.connect(gate.db, timeout=10)
    con.execute("UPDATE tokens SET expires = 1000 WHERE id = ?", (t["id"],))
    con.commit()
    con.close()
    r = api.get("/partners")
    assert r.status == 401
    r.error("unauthorized")


def test_token_acts_no_higher_than_its_admin_now(gate, boss):
    assert boss.post("/admins", {"name": "hal", "role": "administrator",
                                 "password": "Hal-pw-1"}).status == 201
    t = gate.token("hal")
    api = gate.client(token=t["secret"])
    assert api.post("/partners", {"domain": "hal.test"}).status == 201
    assert boss.patch("/admins/hal", {"role": "viewer"}).status == 200
    assert api.post("/partners", {"domain": "hal2.test"}).status == 403
    assert boss.delete("/admins/hal").status == 204
    assert api.get("/partners").status == 401  # its administrator is gone
    assert t["id"] not in [x["id"] for x in boss.get("/tokens").json["tokens"]]


def test_cli_token_works_in_the_api(gate, boss):
    p = gate.ctl("--json", "admin", "token", "vic")
    assert p.returncode == 0, p.stderr
    secret = json.loads(p.stdout)["token"]["secret"]
    api = gate.client(token=secret)
    assert api.get("/session").json["username"] == "vic"
    assert api.get("/admins").status == 200


def test_api_actor_of_a_token(gate, boss):
    t = gate.token("adm")
    api = gate.client(token=t["secret"])
    assert api.post("/partners", {"domain": "actor.test"}).status == 201
    rec = audit(gate, "partner:actor.test")[0]
    assert rec["actor"] == f"token:{t['id']}" and rec["address"] == "127.0.0.1"
