"""Outbound routing by DNS on the wire (issue 5; SPEC section 3 "Outbound routing", XEP-0368,
RFC 6120 3.2): fedgated nodes a.test, b.test, e.test and f.test behind a private unbound
of this module (its own records, on a port derived from the suite's DNS port):

  a.test   _xmpp-server 0 -> a.test:5269, _xmpps-server 10 -> a.test:5270 (s2s_tls on)
  b.test   _xmpp-server 0 -> down.test:5269 (nothing listens), 10 -> b.test:5269
  e.test   _xmpps-server 0 -> e.test:5270 (s2s_tls on), _xmpp-server 10 -> e.test:5269
  f.test   no records at all (NXDOMAIN); reachable only through proxy_fqdn:
           relay-f.test -> the f.test node; relay.b.test -> a fake server presenting
           b.test's certificate (which names *.b.test, so the proxy's own name matches it)

Which port and so which service a link really used is read from the kernel's table of
established TCP connections (/proc/net/tcp): fedgated records TLS and the method in
`partner status`, not whether TLS was direct or STARTTLS."""
import time

import pytest

PW = "pw-Dns-Secret"
LINK_WAIT = 25


@pytest.fixture(scope="module")
def net(kit, tmp_path_factory, pki):
    H = kit.HOSTS
    down, fake = kit.addr(79), kit.addr(78)
    records = [
        f"a.test. A {H['a.test']}",
        "_xmpp-server._tcp.a.test. SRV 0 0 5269 a.test.",
        "_xmpps-server._tcp.a.test. SRV 10 0 5270 a.test.",
        f"b.test. A {H['b.test']}",
        f"down.test. A {down}",
        "_xmpp-server._tcp.b.test. SRV 0 0 5269 down.test.",
        "_xmpp-server._tcp.b.test. SRV 10 0 5269 b.test.",
        f"e.test. A {H['e.test']}",
        "_xmpps-server._tcp.e.test. SRV 0 0 5270 e.test.",
        "_xmpp-server._tcp.e.test. SRV 10 0 5269 e.test.",
        f"relay-f.test. A {H['f.test']}",
        f"relay.b.test. A {fake}",
    ]
    dns = kit.PrivateDNS(tmp_path_factory.mktemp("dns-mod"), kit.DNS_PORT + 10, records)
    nodes = {}
    try:
        for dom in ("a.test", "b.test", "e.test", "f.test"):
            n = kit.Node(tmp_path_factory.mktemp(dom.split(".")[0] + "dns"), dom, pki,
                         dns.resolver, s2s_tls=dom in ("a.test", "e.test"))
            nodes[dom] = n
        a = nodes["a.test"]
        for dom in ("b.test", "e.test", "f.test"):
            a.ok("partner", "new", dom, "--type", "federated")
            nodes[dom].ok("partner", "new", "a.test", "--type", "federated")
        for n in nodes.values():
            for u in ("alice", "bob"):
                n.add_user(u, PW)
        for n in nodes.values():
            n.start()
        yield nodes, down, fake
    finally:
        try:
            kit.stop_all(nodes.values())
        finally:
            dns.stop()


@pytest.fixture
def xmpp(net):
    from slix import Harness
    h = Harness(None)
    yield h
    h.close()


async def login(xmpp, node, user):
    xmpp.srv = node
    return await xmpp.login(user, PW)


def deliver(xmpp, src, dst, body):
    """alice@src sends body to bob@dst; bob receives it."""
    async def run():
        alice = await login(xmpp, src, "alice")
        bob = await login(xmpp, dst, "bob")
        alice.send_message(mto=f"bob@{dst.domain}", mbody=body, mtype="chat")
        await bob.wait_message(body=body, timeout=LINK_WAIT)
    xmpp.run(run(), 60)


def out_stream(node, partner, timeout=8):
    """The established outbound stream in `partner status --json` (written every second
    or two, so polled)."""
    deadline = time.monotonic() + timeout
    while True:
        doc = node.status(partner)
        for p in doc["partners"]:
            for s in p["streams"]:
                if s["direction"] == "out" and s["state"] == "established":
                    return s
        if time.monotonic() > deadline:
            raise AssertionError(f"no established outbound stream from {node.domain} to "
                                 f"{partner}: {doc}")
        time.sleep(0.3)


def connections_to(kit, host, port):
    return [c for c in kit.tcp_established() if c[1] == (host, port)]


def test_srv_first_target_down_uses_the_second(kit, net, xmpp):
    """b.test's SRV records name down.test (priority 0, nothing listens) and b.test
    (priority 10): a.test tries the first, then reaches b.test through the second
    (RFC 6120 3.2.1: every target is tried in order)."""
    nodes, down, _ = net
    a, b = nodes["a.test"], nodes["b.test"]
    deliver(xmpp, a, b, "via the second target")
    s = out_stream(a, "b.test")
    assert s["tls"] == "TLSv1.3" and s["auth"] == "sasl-external", s
    failed = kit.log_events(a, "s2s-connect-failed", remote="b.test")
    assert failed, f"a.test never tried down.test:\n{a.log()[-3000:]}"
    # the line names the address that failed, so an administrator knows which target is down
    assert failed[0].get("address") == f"{down}:5269", failed[0]
    auth = kit.log_events(a, "s2s-auth", dir="out", remote="b.test")
    lines = a.log().splitlines()
    assert lines.index(failed[0]["_line"]) < lines.index(auth[0]["_line"])
    assert connections_to(kit, b.host, 5269), "no connection to b.test:5269"
    assert not connections_to(kit, down, 5269)


def test_mixed_srv_records_follow_priority(kit, net, xmpp):
    """XEP-0368: _xmpps-server and _xmpp-server records are one set ordered by priority.
    e.test prefers direct TLS (5270 at priority 0): a.test's link goes there, not to 5269.
    a.test prefers STARTTLS (5269 at priority 0, 5270 at 10): e.test's link goes to 5269."""
    nodes, _, _ = net
    a, e = nodes["a.test"], nodes["e.test"]
    deliver(xmpp, a, e, "direct tls please")
    s = out_stream(a, "e.test")
    assert s["tls"] == "TLSv1.3" and s["auth"] == "sasl-external", s
    assert connections_to(kit, e.host, 5270), \
        f"a.test did not use e.test's direct TLS port: {kit.tcp_established()}"
    assert not connections_to(kit, e.host, 5269), "a.test used STARTTLS on e.test:5269"
    deliver(xmpp, e, a, "starttls please")
    s = out_stream(e, "a.test")
    assert s["tls"] == "TLSv1.3" and s["auth"] == "sasl-external", s
    assert not connections_to(kit, a.host, 5270), "e.test used a.test's direct TLS port"
    assert connections_to(kit, a.host, 5269)


def test_domain_without_records_bounces_at_once(kit, net, xmpp):
    """f.test has no SRV and no address records (NXDOMAIN): the message bounces at once
    with <remote-server-not-found/> and the log says why."""
    nodes, _, _ = net
    a = nodes["a.test"]

    async def run():
        alice = await login(xmpp, a, "alice")
        t0 = time.monotonic()
        alice.send_message(mto="bob@f.test", mbody="anyone there?", mtype="chat")
        m = await alice.wait("message", lambda m: m["type"] == "error", timeout=10)
        assert time.monotonic() - t0 < 3, "the bounce did not come at once"
        assert m["error"]["condition"] == "remote-server-not-found", str(m)
        assert m["error"]["type"] == "cancel", str(m)
        assert "f.test" in m["error"]["text"], str(m)
    xmpp.run(run(), 30)
    ev = kit.wait_event(a, "s2s-refused", dir="out", remote="f.test", rule="connect")
    assert "f.test" in ev["reason"] and "records" in ev["reason"], ev["_line"]
    assert "DNS" in ev["fix"], ev["_line"]


def test_proxy_fqdn_still_checks_the_partner_domain(kit, net, xmpp, pki):
    """proxy_fqdn replaces the DNS lookup; SNI and the certificate check still use the
    partner's domain (SPEC 3). With SASL required for f.test: through relay.b.test (a
    server whose certificate names b.test and *.b.test, so the proxy's own name, not
    f.test) the link is refused; through relay-f.test (the real f.test node, whose
    certificate does not name relay-f.test) the message arrives by SASL EXTERNAL."""
    nodes, _, fake = net
    a, f = nodes["a.test"], nodes["f.test"]
    kit.apply(a, "partner", "set", "f.test", "--sasl", "required", "--dialback", "false",
              "--proxy-fqdn", "relay.b.test:5269")
    srv = kit.RawServer(fake, 5269)
    seen = {}

    def fake_server():
        c = srv.accept(LINK_WAIT)
        try:
            assert c.read_until(b"version="), c.buf
            seen["header"] = c.buf
            c.send(kit.stream_header("f.test", "a.test")[:-1] + b" id='relay1'>"
                   b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"
                   b"<required/></starttls></stream:features>")
            assert c.read_until(b"<starttls"), c.buf
            c.send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(pki / "b.test.crt"), str(pki / "b.test.key"))
            ctx.sni_callback = lambda sock, name, _ctx: seen.__setitem__("sni", name)
            c.sock = ctx.wrap_socket(c.sock, server_side=True)
            c.buf = b""
            assert c.read_until(b"version="), c.buf
            c.send(kit.stream_header("f.test", "a.test")[:-1] + b" id='relay2'>"
                   b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                   b"<mechanism>EXTERNAL</mechanism></mechanisms></stream:features>")
            c.read_until(b"</stream:stream>", timeout=15)
            return c.buf
        finally:
            c.close()
    bg = kit.Background(fake_server)
    try:
        async def refused():
            alice = await login(xmpp, a, "alice")
            alice.send_message(mto="bob@f.test", mbody="via the wrong relay", mtype="chat")
            m = await alice.wait("message", lambda m: m["type"] == "error", timeout=LINK_WAIT)
            assert m["error"]["condition"] in ("remote-server-not-found",
                                               "remote-server-timeout"), str(m)
        xmpp.run(refused(), 60)
        got = bg.result(30)
    finally:
        srv.close()
    assert b"to='f.test'" in seen["header"].replace(b'"', b"'"), seen["header"]
    assert seen.get("sni") == "f.test", f"SNI was {seen.get('sni')!r}, not the partner domain"
    assert b"<not-authorized" in got and b"<auth" not in got, got
    ev = kit.wait_event(a, "s2s-refused", dir="out", remote="f.test", rule="sasl-required")
    assert "b.test" in ev["reason"], ev["_line"]

    kit.apply(a, "partner", "set", "f.test", "--proxy-fqdn", "relay-f.test:5269")
    deliver(xmpp, a, f, "via the right relay")
    s = out_stream(a, "f.test")
    assert s["auth"] == "sasl-external" and s["tls"] == "TLSv1.3", s
    assert connections_to(kit, f.host, 5269)
