"""Gateway timers on the wire (SPEC sections 3 and 5): keep-alive of idle outbound streams
and the stream establishment timeout, against a fedgated a.test and raw sockets.

Keep-alive: with `gateway set --keepalive-interval 10` an outbound stream that sent
nothing for 10 s sends a whitespace keep-alive, plus an XEP-0199 ping when the partner's
keepalive is true. The partners here are fake servers (raw sockets at e.test's and
f.test's addresses, found through the suite's DNS) that accept a.test's dialback over TCP
(matrix row 17) and record every byte a.test sends them, with its arrival time.

Establishment: with `--stream-establishment-timeout 5` a peer that connects to a.test's
s2s port and then sends nothing, or only a stream header, is closed after about 5 s with
the stream error <connection-timeout/>."""
import re
import time

import pytest

PW = "pw-Keepalive-Secret"
INTERVAL = 10
EST = 5


@pytest.fixture(scope="module")
def a(kit, tmp_path_factory, pki, dns):
    node = kit.Node(tmp_path_factory.mktemp("ka"), "a.test", pki, dns)
    # row 17: dialback without TLS, so that the fake peers stay simple
    for dom, ka in (("e.test", "true"), ("f.test", "false")):
        node.ok("partner", "new", dom, "--type", "federated", "--tls", "not-supported",
                "--sasl", "not-supported", "--keepalive", ka)
    node.add_user("alice", PW)
    node.start()
    try:
        kit.apply(node, "gateway", "set", "--keepalive-interval", INTERVAL,
                  "--stream-establishment-timeout", EST)
        yield node
    finally:
        problems = node.stop()
        if problems:
            pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture
def xmpp(a):
    from slix import Harness
    h = Harness(a)
    yield h
    h.close()


def fake_partner(kit, domain, body, watch):
    """A receiving server for domain: accepts a.test's dialback, waits for the message
    with body, then records what arrives for watch seconds as [(seconds after the
    message, bytes)]."""
    srv = kit.RawServer(kit.HOSTS[domain], 5269)

    def run():
        try:
            c = srv.accept(30)
        finally:
            srv.close()
        try:
            assert c.read_until(b"version="), c.buf
            assert c.read_until(lambda b: b.find(b">", b.find(b"<stream:stream")) > 0)
            c.send(kit.stream_header(domain, "a.test")[:-1] + b" id='ka-" + domain.encode()
                   + b"'><stream:features><dialback xmlns='urn:xmpp:features:dialback'>"
                   b"<errors/></dialback></stream:features>")
            assert c.read_until(b"</db:result>"), c.buf
            assert re.search(rb"<db:result[^>]*from=.a\.test.[^>]*>", c.buf), c.buf
            c.send(f"<db:result from='{domain}' to='a.test' type='valid'/>")
            assert c.read_until(body.encode()), c.buf
            assert c.read_until(b"</message>"), c.buf
            t0 = time.monotonic()
            got = []
            c.sock.settimeout(0.5)
            while time.monotonic() - t0 < watch:
                try:
                    chunk = c.sock.recv(65536)
                except OSError:
                    continue
                if not chunk:
                    got.append((time.monotonic() - t0, b"<closed>"))
                    break
                got.append((time.monotonic() - t0, chunk))
            return got
        finally:
            c.close()
    return kit.Background(run)


def test_keepalive_whitespace_and_ping(kit, a, xmpp):
    """An idle outbound stream: after ~10 s a space and an XEP-0199 ping to the partner
    whose keepalive is true (e.test); only the space to the one whose keepalive is false
    (f.test). Nothing is sent before the interval has passed."""
    watch = INTERVAL + 4
    fe = fake_partner(kit, "e.test", "to e", watch)
    ff = fake_partner(kit, "f.test", "to f", watch)

    async def run():
        alice = await xmpp.login("alice", PW)
        alice.send_message(mto="bob@e.test", mbody="to e", mtype="chat")
        alice.send_message(mto="bob@f.test", mbody="to f", mtype="chat")
    xmpp.run(run(), 20)
    got_e = fe.result(watch + 30)
    got_f = ff.result(watch + 30)
    kit.wait_event(a, "s2s-auth", dir="out", remote="e.test", method="dialback")

    for dom, got in (("e.test", got_e), ("f.test", got_f)):
        assert got, f"nothing reached {dom} within {watch}s of the message"
        first_t = got[0][0]
        assert INTERVAL - 1 <= first_t <= INTERVAL + 3, \
            f"{dom}: first keep-alive after {first_t:.1f}s, not ~{INTERVAL}s: {got}"
        data = b"".join(c for _, c in got)
        assert data.startswith(b" "), f"{dom}: no whitespace keep-alive first: {data!r}"
        assert b"<closed>" not in data, f"a.test closed the idle link to {dom}: {data!r}"
    ping = b"".join(c for _, c in got_e).replace(b'"', b"'")
    m = re.search(rb"<iq[^>]*>\s*<ping xmlns='urn:xmpp:ping'\s*/>\s*</iq>", ping)
    assert m, f"no XEP-0199 ping to e.test: {ping!r}"
    iq = m.group(0)
    assert b"type='get'" in iq and b"to='e.test'" in iq and b"from='a.test'" in iq, iq
    assert re.search(rb"id='[^']+'", iq), iq
    data_f = b"".join(c for _, c in got_f)
    assert data_f.strip() == b"", f"keepalive false: only whitespace, got {data_f!r}"


def test_stream_establishment_timeout(kit, a):
    """--stream-establishment-timeout 5: a peer that sends nothing, and one that sends only
    a stream header, are closed with <connection-timeout/> after about 5 s (SPEC 5)."""
    silent = kit.Raw(a.host, 5269, bind=kit.HOSTS["c.test"])
    header = kit.Raw(a.host, 5269, bind=kit.HOSTS["c.test"])
    t0 = time.monotonic()
    try:
        header.send(kit.stream_header("e.test", "a.test"))
        assert header.read_until(b"</stream:features>"), header.buf
        ends = {}
        for name, r in (("silent", silent), ("header", header)):
            assert r.read_until(b"</stream:stream>", timeout=EST + 10), \
                f"{name}: not closed within {EST + 10}s: {r.buf!r}"
            ends[name] = time.monotonic() - t0
            assert b"<stream:error><connection-timeout" in r.buf, f"{name}: {r.buf!r}"
            assert r.wait_closed(5), f"{name}: the connection stayed open"
    finally:
        silent.close()
        header.close()
    for name, t in ends.items():
        assert EST - 0.5 <= t <= EST + 3, f"{name}: closed after {t:.1f}s, not ~{EST}s"
    assert kit.log_events(a, "s2s-stream-error", dir="in", condition="connection-timeout")
    ev = kit.wait_event(a, "s2s-refused", dir="in", remote="e.test", rule="timeout")
    assert f"{EST} s" in ev["reason"], ev["_line"]
