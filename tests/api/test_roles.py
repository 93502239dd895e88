"""Roles enforced by the server on every route (SPEC section 6): server-admin may do
everything; administrator changes partners, users and gateway settings; viewer reads
everything and changes nothing. Each role is tried with a session and with a token; a
refused request leaves the store as it was."""
import pytest

from conftest import make_gate

IP = "127.0.0.45"

SA, AD, VI = "server-admin", "administrator", "viewer"
WHO = {SA: "boss", AD: "adm", VI: "vic"}


@pytest.fixture(scope="module")
def gate(tmp_path_factory):
    g = make_gate(tmp_path_factory, IP)
    boss = g.client("boss")
    # objects the routes below work on, one set per (role, auth) pair
    for role in (SA, AD, VI):
        for auth in ("session", "token"):
            k = f"{role[:2]}{auth[0]}"
            assert boss.post("/partners", {"domain": f"p-{k}.test"}).status == 201
            assert boss.post("/users", {"jid": f"u-{k}@home.test", "password": "pw"}).status == 201
            assert boss.post("/admins", {"name": f"a-{k}", "role": "viewer",
                                         "password": "pw-123"}).status == 201
    yield g
    g.stop()


def routes(k):
    """(method, path, body, minimum role, success status) for every route of SPEC 7."""
    return [
        ("GET", "/session", None, VI, 200),
        ("GET", "/partners", None, VI, 200),
        ("POST", "/partners", {"domain": f"n-{k}.test"}, AD, 201),
        ("GET", f"/partners/p-{k}.test", None, VI, 200),
        ("PUT", f"/partners/p-{k}.test", {"description": "put"}, AD, 200),
        ("PATCH", f"/partners/p-{k}.test", {"description": "patch"}, AD, 200),
        ("GET", f"/partners/p-{k}.test/status", None, VI, 200),
        ("DELETE", f"/partners/p-{k}.test", None, AD, 204),
        ("GET", "/status", None, VI, 200),
        ("GET", "/gateway", None, VI, 200),
        ("PATCH", "/gateway", {"keepalive_interval": 120}, AD, 200),
        ("GET", "/users", None, VI, 200),
        ("POST", "/users", {"jid": f"n-{k}@home.test", "password": "pw"}, AD, 201),
        ("PUT", f"/users/u-{k}@home.test", {"password": "pw2"}, AD, 200),
        ("DELETE", f"/users/u-{k}@home.test", None, AD, 204),
        ("GET", "/admins", None, VI, 200),
        ("POST", "/admins", {"name": f"n-{k}", "role": "viewer", "password": "pw-123"}, SA, 201),
        ("PATCH", f"/admins/a-{k}", {"role": "administrator"}, SA, 200),
        ("DELETE", f"/admins/a-{k}", None, SA, 204),
        ("GET", "/tokens", None, VI, 200),
        ("POST", "/tokens", {"role": "viewer"}, SA, 201),
        ("GET", "/audit", None, VI, 200),
        ("GET", "/metrics", None, VI, 200),
    ]


RANK = {SA: 0, AD: 1, VI: 2}


@pytest.mark.parametrize("auth", ["session", "token"])
@pytest.mark.parametrize("role", [SA, AD, VI])
def test_every_route_every_role(gate, role, auth):
    k = f"{role[:2]}{auth[0]}"
    c = gate.client(WHO[role]) if auth == "session" else \
        gate.client(token=gate.token(WHO[role])["secret"])
    for method, path, body, minimum, ok in routes(k):
        prefix = "" if path == "/metrics" else "/api/v1"
        allowed = RANK[role] <= RANK[minimum]
        before = None if allowed else gate.snapshot()
        r = c.req(method, path, body, prefix=prefix)
        if allowed:
            assert r.status == ok, (role, auth, method, path, r)
        else:
            assert r.status == 403, (role, auth, method, path, r)
            r.error("forbidden")
            assert gate.snapshot() == before, (method, path)


def test_token_delete_is_server_admin_only(gate):
    t = gate.token("vic")
    for who in ("adm", "vic"):
        r = gate.client(who).delete(f"/tokens/{t['id']}")
        assert r.status == 403
    assert gate.client("boss").delete(f"/tokens/{t['id']}").status == 204


def test_metrics_readable_by_a_viewer_token(gate):
    c = gate.client(token=gate.token("vic", role="viewer")["secret"])
    r = c.get("/metrics", prefix="")
    assert r.status == 200
    assert r.header("Content-Type").startswith("text/plain")
    names = {l.split()[0].split("{")[0] for l in r.text.splitlines()
             if l and not l.startswith("#")}
    base = {"fedgate_partners", "fedgate_admin_sessions", "fedgate_auth_failures_total",
            "fedgate_config_revision", "fedgate_c2s_connections", "fedgate_c2s_sessions",
            "fedgate_c2s_logins_total", "fedgate_c2s_auth_failures_total",
            "fedgate_stanzas_routed_total"}
    assert base <= names <= base | {"fedgate_s2s_streams", "fedgate_stanzas_refused_total",
                                    "fedgate_s2s_stanzas_routed_total"}
    for l in r.text.splitlines():
        if l.startswith("# TYPE"):
            assert l.split()[3] in ("gauge", "counter")
    n = len(gate.client("boss").get("/partners").json["partners"])
    assert f"fedgate_partners {n}" in r.text.splitlines()


def test_metrics_per_partner_series(gate):
    boss = gate.client("boss")
    assert boss.post("/partners", {"domain": "metrics-partner.test"}).status == 201
    c = gate.client(token=gate.token("vic", role="viewer")["secret"])
    lines = c.get("/metrics", prefix="").text.splitlines()
    for state in ("connecting", "negotiating", "established", "closing"):
        assert f'fedgate_s2s_streams{{partner="metrics-partner.test",state="{state}"}} 0' in lines
    assert 'fedgate_stanzas_refused_total{partner="metrics-partner.test"} 0' in lines
    assert 'fedgate_s2s_stanzas_routed_total{partner="metrics-partner.test"} 0' in lines
