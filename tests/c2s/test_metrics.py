"""GET /metrics (issue 7) counts what the client side does: open connections, bound
sessions, logins, failed authentication attempts and routed stanzas, read with a bearer
token of a viewer, as a monitoring script would."""
import re
import urllib.request

import pytest

import xmppraw as xr

ADDR = "127.0.0.68"
ADMIN = f"{ADDR}:5280"
SETTINGS = {"listen.admin": ADMIN}
USER_POOL = 6


@pytest.fixture(scope="module")
def token(srv):
    if srv.kind != "fedgated":
        pytest.skip("fedgate's own metrics")
    pw = srv.dir / "mon.pw"
    pw.write_text("Monitor-pw-12345\n")
    p = srv.ctl("admin", "add", "mon", "--role", "viewer", "--password-file", str(pw))
    assert p.returncode == 0, p.stderr
    p = srv.ctl("admin", "token", "mon")
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def metrics(token):
    req = urllib.request.Request(f"http://{ADMIN}/metrics",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
        text = r.read().decode()
    values = {}
    for line in text.splitlines():
        m = re.match(r"^(fedgate_[a-z0-9_]+) (\d+)$", line)
        if m:
            values[m.group(1)] = int(m.group(2))
    return values


def test_metrics_follow_client_activity(srv, token):
    (a, apw), (b, bpw) = srv.new_users(2)
    before = metrics(token)
    ca = xr.login(srv, a, apw, resource="m")
    cb = xr.login(srv, b, bpw, resource="m")
    try:
        with pytest.raises(xr.AuthFailed):
            xr.login(srv, a, "wrong-password")
        ca.send(xr.message(f"{b}@{srv.domain}", "metric me"))
        cb.wait_for(lambda el: el.tag == xr.q("message"), 10)
        during = metrics(token)
        assert during["fedgate_c2s_sessions"] == before["fedgate_c2s_sessions"] + 2
        assert during["fedgate_c2s_connections"] >= before["fedgate_c2s_connections"] + 2
        assert during["fedgate_c2s_logins_total"] == before["fedgate_c2s_logins_total"] + 2
        assert during["fedgate_c2s_auth_failures_total"] == \
            before["fedgate_c2s_auth_failures_total"] + 1
        assert during["fedgate_stanzas_routed_total"] >= before["fedgate_stanzas_routed_total"] + 1
    finally:
        ca.close()
        cb.close()
