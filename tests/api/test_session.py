"""Logging in and out, the session cookie, CSRF, expiry, and what an anonymous caller gets
(SPEC section 7). Session lifetimes are shortened for the expiry tests with
FG_ADMIN_SESSION_IDLE / FG_ADMIN_SESSION_MAX (seconds)."""
import time

import pytest

from conftest import PASSWORDS, make_gate

IP = "127.0.0.41"

# Every route that needs a login: (method, path, body)
PROTECTED = [
    ("GET", "/session", None), ("DELETE", "/session", None),
    ("GET", "/partners", None), ("POST", "/partners", {"domain": "anon.test"}),
    ("GET", "/partners/a.test", None), ("PUT", "/partners/a.test", {}),
    ("PATCH", "/partners/a.test", {}), ("DELETE", "/partners/a.test", None),
    ("GET", "/partners/a.test/status", None), ("GET", "/status", None),
    ("GET", "/gateway", None), ("PATCH", "/gateway", {}),
    ("GET", "/users", None), ("POST", "/users", {"jid": "a@home.test", "password": "x"}),
    ("PUT", "/users/a@home.test", {"password": "x"}), ("DELETE", "/users/a@home.test", None),
    ("GET", "/admins", None), ("POST", "/admins", {"name": "x", "role": "viewer", "password": "x"}),
    ("PATCH", "/admins/boss", {"role": "viewer"}), ("DELETE", "/admins/boss", None),
    ("GET", "/tokens", None), ("POST", "/tokens", {}), ("DELETE", "/tokens/abc", None),
    ("GET", "/audit", None),
]


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    g = make_gate(tmp_path_factory, IP)
    yield g
    g.stop()


@pytest.fixture(scope="module")
def short(tmp_path_factory):
    """A second daemon whose sessions end after 2 s idle or 5 s in all."""
    g = make_gate(tmp_path_factory, IP, port=5281,
                  env={"FG_ADMIN_SESSION_IDLE": "2", "FG_ADMIN_SESSION_MAX": "5"})
    yield g
    g.stop()


def test_health_needs_no_login(gate):
    r = gate.client().get("/health")
    assert r.status == 200 and r.json == {"status": "ok"}
    assert r.header("Content-Type") == "application/json"


@pytest.mark.parametrize("method,path,body", PROTECTED)
def test_anonymous_is_401(gate, method, path, body):
    r = gate.client().req(method, path, body)
    assert r.status == 401, r
    r.error("unauthorized")
    r = gate.client().req(method, path, body, headers={"Cookie": "fedgate_session=" + "a" * 64})
    assert r.status == 401, r


def test_metrics_needs_login(gate):
    r = gate.client().get("/metrics", prefix="")
    assert r.status == 401


def test_login_ok_sets_a_safe_cookie(gate):
    c = gate.client()
    r = c.login("boss")
    assert r.status == 200
    assert set(r.json) == {"username", "role", "csrf_token"}
    assert r.json["username"] == "boss" and r.json["role"] == "server-admin"
    assert len(r.json["csrf_token"]) >= 32
    cookie = [v for v in r.all_headers("Set-Cookie") if v.startswith("fedgate_session=")][0]
    attrs = [a.strip().lower() for a in cookie.split(";")[1:]]
    assert "httponly" in attrs and "samesite=strict" in attrs and "path=/" in attrs
    assert "secure" not in attrs  # plain HTTP on loopback
    assert len(c.cookie) >= 43  # 32 random bytes
    me = c.get("/session")
    assert me.status == 200
    assert me.json == {"username": "boss", "role": "server-admin", "csrf_token": c.csrf}
    assert PASSWORDS["boss"] not in gate.log()


def test_each_login_is_a_new_session(gate):
    a, b = gate.client("adm"), gate.client("adm")
    assert a.cookie != b.cookie and a.csrf != b.csrf
    assert a.get("/partners").status == 200 and b.get("/partners").status == 200


def test_bad_logins(gate):
    c = gate.client()
    r = c.login("boss", "wrong")
    assert r.status == 401
    r.error("unauthorized")
    assert not r.all_headers("Set-Cookie")
    assert c.login("nobody", "whatever").status == 401
    for body in ({"username": "boss"}, {"password": "x"}, {"username": "", "password": "x"},
                 {"username": 1, "password": "x"}, {"username": "boss", "password": "x", "y": 1},
                 {"username": "b" * 65, "password": "x"}):
        r = c.req("POST", "/session", body, csrf=False)
        assert r.status == 400, (body, r)
    r = c.req("POST", "/session", raw=b"username=boss&password=x",
              ctype="application/x-www-form-urlencoded")
    assert r.status == 415
    log = gate.log()
    assert "event=admin-login-failed user=boss" in log and 'reason="bad password"' in log
    assert "wrong" not in log.replace("wrong user name", "")


def test_logout_ends_the_session_on_the_server(gate):
    c = gate.client("boss")
    cookie = c.cookie
    r = c.delete("/session")
    assert r.status == 204
    cleared = [v for v in r.all_headers("Set-Cookie") if v.startswith("fedgate_session=")]
    assert cleared and "max-age=0" in cleared[0].lower()
    replay = gate.client()
    replay.cookie = cookie
    assert replay.get("/partners").status == 401
    assert replay.get("/session").status == 401


def test_logout_needs_csrf(gate):
    c = gate.client("vic")
    r = c.delete("/session", csrf=False)
    assert r.status == 403
    r.error("csrf")
    assert c.get("/session").status == 200


@pytest.mark.parametrize("csrf", [False, "", "0" * 64, "not-the-token"])
def test_changes_with_the_cookie_need_the_csrf_token(gate, csrf):
    c = gate.client("boss")
    dom = f"csrf{len(str(csrf))}.test"
    for method, path, body in (("POST", "/partners", {"domain": dom}),
                               ("PATCH", "/gateway", {"keepalive_interval": 100}),
                               ("POST", "/users", {"jid": "c@home.test", "password": "pw"}),
                               ("POST", "/tokens", {}),
                               ("DELETE", "/admins/vic", None)):
        r = c.req(method, path, body, csrf=csrf)
        assert r.status == 403, (method, path, r)
        r.error("csrf")
    assert c.get(f"/partners/{dom}").status == 404
    assert c.get("/gateway").json["gateway"]["keepalive_interval"] == 300
    assert c.get("/users").json["users"] == []
    assert "vic" in [a["name"] for a in c.get("/admins").json["admins"]]
    # reading needs no CSRF token, changing with the right one works
    assert c.get("/partners", csrf=False).status == 200
    assert c.post("/partners", {"domain": dom}).status == 201


def test_csrf_token_of_another_session_is_refused(gate):
    a, b = gate.client("boss"), gate.client("boss")
    r = a.post("/partners", {"domain": "cross.test"}, csrf=b.csrf)
    assert r.status == 403
    r.error("csrf")


def test_bearer_needs_no_csrf(gate):
    t = gate.token("adm")
    c = gate.client(token=t["secret"])
    r = c.post("/partners", {"domain": "bearer.test"})
    assert r.status == 201
    me = c.get("/session")
    assert me.json == {"username": "adm", "role": "administrator", "token": t["id"]}
    r = c.delete("/session")
    assert r.status == 400


def test_malformed_authorization(gate):
    c = gate.client()
    for h in ("Basic Ym9zczpwdw==", "Bearer", "Bearer ", "Bearer " + "x" * 300, "Bearer nope"):
        r = c.get("/partners", headers={"Authorization": h})
        assert r.status == 401, h
        r.error("unauthorized")


def test_unknown_routes_and_methods(gate):
    c = gate.client("boss")
    r = c.get("/nothing")
    assert r.status == 404
    r.error("not_found")
    assert c.get("/partners/a.test/other").status == 404
    assert c.get("/partners/").status == 404
    r = c.req("POST", "/health")
    assert r.status == 405 and "GET" in r.header("Allow")
    r = c.req("PUT", "/gateway", {})
    assert r.status == 405 and "PATCH" in r.header("Allow")
    assert gate.client().get("/nothing").status == 404


def test_session_idle_expiry(short):
    c = short.client("boss")
    assert c.get("/partners").status == 200
    time.sleep(1)
    assert c.get("/partners").status == 200  # use keeps it alive
    time.sleep(2.5)
    r = c.get("/partners")
    assert r.status == 401
    r.error("unauthorized")
    assert c.post("/partners", {"domain": "late.test"}).status == 401


def test_session_absolute_expiry(short):
    c = short.client("boss")
    deadline = time.monotonic() + 4.5
    while time.monotonic() < deadline:  # used every second: never idle
        assert c.get("/partners").status == 200
        time.sleep(1)
    time.sleep(1.5)
    assert c.get("/partners").status == 401
    assert c.login("boss").status == 200
    assert c.get("/partners").status == 200
