"""[c2s] require_tls = false (RFC 6120 5.3.1, 6.4; issue 4): STARTTLS becomes optional,
SCRAM works over plain TCP, PLAIN stays refused without TLS."""
import pytest

import xmppraw as xr
from xmppraw import NS_SASL, NS_TLS, RawClient, q

ADDR = "127.0.0.66"
SETTINGS = {"c2s.require_tls": False}
USER_POOL = 10


def raw(srv):
    return RawClient(srv.host, srv.port, srv.domain, srv.ca, timeout=10)


def test_starttls_optional_and_no_plain_without_tls(srv, alive):
    c = raw(srv)
    try:
        f = c.open()
        st = f.find(q("starttls", NS_TLS))
        assert st is not None, f"STARTTLS not offered: {c.transcript()}"
        assert st.find(q("required", NS_TLS)) is None, "STARTTLS still required"
        mechs = c.mechanisms()
        assert "SCRAM-SHA-1" in mechs and "SCRAM-SHA-256" in mechs, mechs
        assert "PLAIN" not in mechs, f"PLAIN offered without TLS: {mechs}"
    finally:
        c.close()


def test_plain_refused_without_tls(srv, alive):
    """RFC 6120 6.5.4 <encryption-required/> (or <invalid-mechanism/>, 6.5.5, since it
    was not offered); never <success/>."""
    (u, p), = srv.new_users(1)
    c = raw(srv)
    try:
        c.open()
        with pytest.raises(xr.AuthFailed) as ei:
            c.auth(u, p, "PLAIN")
        assert ei.value.condition in ("encryption-required", "invalid-mechanism"), ei.value
    finally:
        c.close()


@pytest.mark.parametrize("mech", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
def test_scram_over_plain_tcp_and_chat(srv, mech, alive):
    (au, ap), (bu, bp) = srv.new_users(2)
    a = xr.login(srv, au, ap, mech=mech, starttls=False, resource="a")
    b = xr.login(srv, bu, bp, mech=mech, starttls=False, resource="b")
    try:
        assert not a.tls and not b.tls
        a.send(xr.message(b.jid, "over plain tcp", mid="p1"))
        m = b.wait_for(lambda e: e.tag == q("message") and e.get("id") == "p1",
                       what="the message")
        assert m.get("from") == a.jid
    finally:
        a.close()
        b.close()


def test_starttls_still_works_then_plain(srv, alive):
    (u, p), = srv.new_users(1)
    c = raw(srv)
    try:
        assert c.login(u, p, mech="PLAIN", resource="tls") == f"{u}@{srv.domain}/tls"
        assert c.tls
    finally:
        c.close()


def test_malformed_xml_over_plain_tcp(srv, alive):
    (u, p), = srv.new_users(1)
    c = raw(srv)
    try:
        c.login(u, p, starttls=False)
        c.send("<message><body>x</bodyy></message>")
        cond, _ = c.expect_stream_error(10)
        assert cond == "not-well-formed", c.transcript()
        assert c.closed_tag
    finally:
        c.close()
