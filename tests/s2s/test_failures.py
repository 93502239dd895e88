"""Failures the partner policy must cause (issue 5, SPEC sections 3, 5 and 7), on the wire
between two real fedgated instances (a.test, b.test) and raw sockets. Each case asserts

  - the sender's stanza error: a local user's message over the failing link comes back as
    a message of type 'error' with the condition SPEC section 3 names (a link that fails:
    <remote-server-not-found/> or <remote-server-timeout/>; a connection limit reached
    outbound: <resource-constraint/> type 'wait'),
  - the stream error (or dialback error) on the wire: read by a raw socket, or from the logs
    (`event=s2s-stream-error` of the side that sent it, `event=s2s-peer-stream-error` of
    the side that received it),
  - the log line `event=s2s-refused dir=... remote=... rule=... reason="..." fix="..."`
    (SPEC section 7) and the partner's last_error in `partner status --json`.

Every case starts its own pair of daemons, so that no link or back-off of one case leaks
into the next."""
import re
import time

import pytest

PW = "pw-Failures-Secret"
USERS = ("alice", "bob", "carol")
LINK_FAILED = {"remote-server-not-found": "cancel", "remote-server-timeout": "wait"}
BOUNCE_WITHIN = 20  # DNS + TCP + TLS + the refusal, on loopback


@pytest.fixture
def make_pair(kit, tmp_path_factory, pki, dns):
    """make_pair(a_flags, b_flags, b_cert=None): a.test with partner b.test (`partner new
    b.test --type federated A_FLAGS`), b.test with partner a.test (B_FLAGS); b_cert 'bad' or
    'wrongname' gives b.test that certificate variant of make-pki. Both are stopped at the
    end, even when the test fails."""
    started = []

    def make(a_flags=(), b_flags=(), b_cert=None, start_b=True):
        a = kit.Node(tmp_path_factory.mktemp("fa"), "a.test", pki, dns)
        bdir = tmp_path_factory.mktemp("fb")
        certs = kit.cert_variant(pki, b_cert, "b.test", bdir / "certs") if b_cert else None
        b = kit.Node(bdir, "b.test", pki, dns, cert_dir=certs)
        if b_cert == "bad":  # b.test's own clients trust its CA
            b.ca = bdir / "clients-ca.crt"
            b.ca.write_bytes((pki / "ca.crt").read_bytes() +
                             (pki / "other-ca" / "ca.crt").read_bytes())
        a.ok("partner", "new", "b.test", "--type", "federated", *a_flags)
        b.ok("partner", "new", "a.test", "--type", "federated", *b_flags)
        nodes = (a, b) if start_b else (a,)
        for n in nodes:
            for u in USERS:
                n.add_user(u, PW)
        for n in nodes:
            started.append(n)
            n.start()
        return a, b

    yield make
    kit.stop_all(started)


@pytest.fixture
def xmpp(make_pair):
    from slix import Harness
    h = Harness(None)
    yield h
    h.close()


async def login(xmpp, node, user):
    xmpp.srv = node
    return await xmpp.login(user, PW)


async def bounced(client, to, body, timeout=BOUNCE_WITHIN):
    """Sends a chat message and returns the error that comes back for it."""
    client.send_message(mto=to, mbody=body, mtype="chat")

    def mine(m):
        return m["type"] == "error" and m["body"] in ("", body) and m["from"].bare == to
    return await client.wait("message", mine, timeout, what=f"error for {body!r} to {to}")


def assert_link_error(m, partner):
    """SPEC section 3: a stanza the failed link cannot carry bounces with
    <remote-server-not-found/> or <remote-server-timeout/>, with a text naming the reason."""
    cond = m["error"]["condition"]
    assert cond in LINK_FAILED, f"unexpected condition {cond}: {m}"
    assert m["error"]["type"] == LINK_FAILED[cond], str(m)
    assert partner in m["error"]["text"], f"the error text does not name {partner}: {m}"


def assert_refused(node, kit, dir, remote, rule, reason_has=(), fix_has=()):
    """The s2s-refused line (SPEC section 7) with a reason and a fix for people, and the
    same in the partner's last_error."""
    ev = kit.wait_event(node, "s2s-refused", dir=dir, remote=remote, rule=rule)
    assert ev["_level"] == "warn", ev["_line"]
    assert ev.get("reason") and ev.get("fix"), ev["_line"]
    for w in reason_has:
        assert w in ev["reason"], f"reason lacks {w!r}: {ev['_line']}"
    for w in fix_has:
        assert w in ev["fix"], f"fix lacks {w!r}: {ev['_line']}"
    return ev


def assert_last_error(node, partner, rule, timeout=6):
    """partner status --json shows the refusal as the partner's last_error."""
    deadline = time.monotonic() + timeout
    while True:
        ps = node.status(partner)["partners"]
        le = ps[0]["last_error"] if ps else None
        if le and le["rule"] == rule:
            assert le["message"] and le["fix"] and le["time"].endswith("Z"), le
            return le
        assert time.monotonic() < deadline, f"{node.domain}: last_error of {partner}: {ps}"
        time.sleep(0.3)


def no_established(node, partner, direction=None):
    ps = node.status(partner)["partners"]
    return not any(s["state"] == "established" and direction in (None, s["direction"])
                   for p in ps for s in p["streams"])


# ---- (a) TLS required, the partner offers none ----

def test_tls_required_but_partner_offers_no_tls(kit, make_pair, xmpp):
    """a.test requires TLS of b.test; b.test has TLS not-supported for a.test (matrix row
    17), so it offers no STARTTLS. SPEC 3 (TLS required): outbound, abort and bounce."""
    a, b = make_pair(b_flags=("--tls", "not-supported", "--sasl", "not-supported"))

    async def run():
        alice = await login(xmpp, a, "alice")
        m = await bounced(alice, "bob@b.test", "needs tls")
        assert_link_error(m, "b.test")
        bob = await login(xmpp, b, "bob")
        # the other way round b.test refuses: a.test answers only <starttls><required/>
        m = await bounced(bob, "alice@a.test", "no tls here")
        assert_link_error(m, "a.test")
    xmpp.run(run(), 90)
    assert_refused(a, kit, "out", "b.test", "tls-required", ("STARTTLS",), ("--tls",))
    # a.test closed its stream with <policy-violation/>, which b.test received
    kit.wait_event(a, "s2s-stream-error", dir="out", condition="policy-violation",
                   remote="b.test")
    kit.wait_event(b, "s2s-peer-stream-error", dir="in", condition="policy-violation")
    assert_last_error(a, "b.test", "tls-required")
    assert_refused(b, kit, "out", "a.test", "tls-not-supported", ("STARTTLS",), ("--tls",))
    kit.wait_event(a, "s2s-peer-stream-error", dir="in", condition="policy-violation")
    assert no_established(a, "b.test")

    # inbound, on the wire: a peer claiming b.test that does not start TLS gets only
    # <starttls><required/>; its dialback gets the dialback error <policy-violation/>;
    # its stanza the stream error <not-authorized/> (SPEC 3, RFC 6120 4.9.3.12)
    r = kit.Raw(a.host, 5269, bind=kit.HOSTS["c.test"])
    try:
        r.send(kit.stream_header("b.test", "a.test"))
        assert r.read_until(b"</stream:features>"), r.buf
        feats = r.buf.split(b"<stream:features>", 1)[1]
        assert b"<required/>" in feats and b"starttls" in feats, feats
        assert b"dialback" not in feats and b"mechanisms" not in feats, feats
        r.buf = b""
        r.send("<db:result from='b.test' to='a.test'>0123456789abcdef</db:result>")
        assert r.read_until(b"</db:result>"), r.buf
        assert b"type='error'" in r.buf and b"<policy-violation" in r.buf, r.buf
        r.buf = b""
        r.send("<message from='bob@b.test/r' to='alice@a.test' type='chat'>"
               "<body>clear</body></message>")
        assert r.read_until(b"</stream:stream>"), r.buf
        assert b"<not-authorized" in r.buf and b"<stream:error>" in r.buf, r.buf
    finally:
        r.close()
    evs = kit.log_events(a, "s2s-refused", dir="in", remote="b.test", rule="tls-required")
    assert evs and "before TLS" in evs[-1]["reason"] and "--tls" in evs[-1]["fix"], evs


# ---- (b), (c) SASL required and a certificate that cannot authenticate ----

def test_sasl_required_certificate_from_unknown_ca(kit, make_pair, xmpp):
    """b.test presents a certificate with the right names issued by an unknown CA (make-pki
    'bad', from other-ca). a.test requires SASL of b.test (matrix row 2): outbound it
    refuses the stream, inbound it offers no EXTERNAL and closes the stream with
    <not-authorized/> (SPEC 3, SASL required)."""
    a, b = make_pair(a_flags=("--sasl", "required", "--dialback", "false"), b_cert="bad")

    async def run():
        alice = await login(xmpp, a, "alice")
        m = await bounced(alice, "bob@b.test", "unknown ca")
        assert_link_error(m, "b.test")
        bob = await login(xmpp, b, "bob")
        m = await bounced(bob, "alice@a.test", "from the unknown ca")
        assert_link_error(m, "a.test")
    xmpp.run(run(), 90)
    why = ("certificate", "did not verify", "SASL is required")
    out = assert_refused(a, kit, "out", "b.test", "sasl-required", why, ("ca_file", "--sasl"))
    # SPEC 3, SASL required: "the stream is closed with <not-authorized/>", both ways
    kit.wait_event(a, "s2s-stream-error", dir="out", condition="not-authorized",
                   remote="b.test")
    kit.wait_event(b, "s2s-peer-stream-error", dir="in", condition="not-authorized")
    inn = assert_refused(a, kit, "in", "b.test", "sasl-required", why, ("ca_file", "--sasl"))
    kit.wait_event(a, "s2s-stream-error", dir="in", condition="not-authorized",
                   remote="b.test")
    kit.wait_event(b, "s2s-peer-stream-error", dir="out", condition="not-authorized")
    assert out["_line"] != inn["_line"]
    assert_last_error(a, "b.test", "sasl-required")
    assert no_established(a, "b.test")
    assert not kit.log_events(a, "s2s-auth", remote="b.test")


def header_done(buf):
    i = buf.find(b"<stream:stream")
    return i >= 0 and buf.find(b">", i) > 0


def test_sasl_required_certificate_for_another_name(kit, make_pair, xmpp, pki):
    """The server at b.test's address presents a certificate of the test CA for another
    name (make-pki 'wrongname': wrongname.invalid). fedgated will not serve a certificate
    without its own name, so b.test is a fake peer here: a raw TLS server in place of
    b.test for a.test's outbound stream, and a raw client claiming b.test with that
    certificate for the inbound one. a.test requires SASL of b.test: outbound it refuses
    (stream error <not-authorized/> read by the fake), inbound it closes the stream with
    <not-authorized/>."""
    a, _ = make_pair(a_flags=("--sasl", "required", "--dialback", "false"), start_b=False)
    cert, key = pki / "wrongname" / "b.test.crt", pki / "wrongname" / "b.test.key"
    srv = kit.RawServer(kit.HOSTS["b.test"], 5269)

    def fake_b():
        c = srv.accept(BOUNCE_WITHIN)
        try:
            assert c.read_until(header_done), c.buf
            assert b"to='a.test'" not in c.buf and b"to='b.test'" in c.buf.replace(b'"', b"'")
            c.send(kit.stream_header("b.test", "a.test")[:-1] + b" id='fake1'>"
                   b"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'>"
                   b"<required/></starttls></stream:features>")
            assert c.read_until(b"<starttls"), c.buf
            c.send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
            c.starttls_server(cert, key)
            assert c.read_until(header_done), c.buf
            c.buf = b""
            c.send(kit.stream_header("b.test", "a.test")[:-1] + b" id='fake2'>"
                   b"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>"
                   b"<mechanism>EXTERNAL</mechanism></mechanisms>"
                   b"<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>"
                   b"</stream:features>")
            c.read_until(b"</stream:stream>", timeout=15)
            return c.buf
        finally:
            c.close()
    fake = kit.Background(fake_b)
    try:
        async def run():
            alice = await login(xmpp, a, "alice")
            m = await bounced(alice, "bob@b.test", "wrong name")
            assert_link_error(m, "b.test")
        xmpp.run(run(), 60)
        got = fake.result(30)
    finally:
        srv.close()
    assert b"<stream:error><not-authorized" in got, got
    assert b"<auth" not in got and b"<db:result" not in got, got
    assert_refused(a, kit, "out", "b.test", "sasl-required",
                   ("certificate", "wrongname.invalid", "SASL is required"),
                   ("ca_file", "--sasl"))

    r = kit.Raw(a.host, 5269, bind=kit.HOSTS["c.test"])
    try:
        r.send(kit.stream_header("b.test", "a.test"))
        assert r.read_until(b"</stream:features>"), r.buf
        r.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        assert r.read_until(b"<proceed"), r.buf
        r.starttls(server_hostname="a.test", ca=a.ca, cert=cert, key=key)
        r.send(kit.stream_header("b.test", "a.test"))
        assert r.read_until(b"</stream:stream>"), r.buf
        assert b"<stream:error><not-authorized" in r.buf, r.buf
        assert b"<stream:features>" not in r.buf, r.buf  # nothing offered at all
    finally:
        r.close()
    assert_refused(a, kit, "in", "b.test", "sasl-required",
                   ("certificate", "wrongname.invalid", "SASL is required"),
                   ("ca_file", "--sasl"))
    assert_last_error(a, "b.test", "sasl-required")
    assert not kit.log_events(a, "s2s-auth", remote="b.test")


# ---- (d) dialback false here, the partner can only do dialback ----

def test_dialback_false_while_partner_can_only_do_dialback(kit, make_pair, xmpp):
    """a.test: b.test with dialback false (row 8: only EXTERNAL). b.test: a.test with SASL
    not-supported (row 13: dialback over TLS only). Outbound a.test finds no EXTERNAL offer
    and may not fall back to dialback; inbound b.test's db:result gets the dialback error
    <not-authorized/> (SPEC 3, dialback false)."""
    a, b = make_pair(a_flags=("--dialback", "false"), b_flags=("--sasl", "not-supported"))

    async def run():
        alice = await login(xmpp, a, "alice")
        m = await bounced(alice, "bob@b.test", "no dialback please")
        assert_link_error(m, "b.test")
        bob = await login(xmpp, b, "bob")
        m = await bounced(bob, "alice@a.test", "dialback only")
        assert_link_error(m, "a.test")
        # a dialback refusal (not-authorized) is final: not a timeout to retry
        assert m["error"]["condition"] == "remote-server-not-found", str(m)
    xmpp.run(run(), 90)
    assert_refused(a, kit, "out", "b.test", "dialback-disabled",
                   ("dialback is false",), ("--dialback true",))
    kit.wait_event(a, "s2s-stream-error", dir="out", condition="policy-violation",
                   remote="b.test")
    kit.wait_event(b, "s2s-peer-stream-error", dir="in", condition="policy-violation")
    assert_refused(a, kit, "in", "b.test", "dialback-disabled",
                   ("dialback is false",), ("--dialback true",))
    # the dialback error, as b.test received it
    ev = assert_refused(b, kit, "out", "a.test", "dialback-error", ("not-authorized",))
    assert "a.test" in ev["reason"]
    assert_last_error(a, "b.test", "dialback-disabled")
    assert no_established(a, "b.test")


# ---- (e) a domain spoofing a partner's name in dialback ----

def spoofer(kit, a):
    """A raw socket from c.test's address claiming to be b.test, after STARTTLS without a
    client certificate (so XEP-0344 cannot vouch for it): only dialback is offered."""
    r = kit.Raw(a.host, 5269, bind=kit.HOSTS["c.test"])
    r.send(kit.stream_header("b.test", "a.test"))
    assert r.read_until(b"</stream:features>"), r.buf
    assert b"starttls" in r.buf, r.buf
    r.buf = b""
    r.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
    assert r.read_until(b"<proceed"), r.buf
    r.starttls(server_hostname="a.test", ca=a.ca)
    r.send(kit.stream_header("b.test", "a.test"))
    assert r.read_until(b"</stream:features>"), r.buf
    feats = r.buf.split(b"<stream:features>", 1)[1]
    assert b"urn:xmpp:features:dialback" in feats, feats
    assert b"EXTERNAL" not in feats, feats  # no certificate: no EXTERNAL
    r.buf = b""
    return r


MADE_UP_KEY = "6d616465207570206b6579206d616465207570206b6579206d616465207570"
SPOOFED = ("<message from='bob@b.test/x' to='alice@a.test' type='chat'>"
           "<body>{}</body></message>")


def test_spoofed_dialback_is_verified_with_the_real_partner(kit, make_pair, xmpp):
    """A raw socket from another address connects to a.test claiming to be b.test and sends
    a db:result with a made-up key. a.test must ask the authoritative server, the real
    b.test, which answers invalid; a.test answers type='invalid' and closes the stream
    (XEP-0220 2.2.1; no other pair is valid on it, so not <forbidden/>), and no stanza
    from it is delivered: neither one sent after the answer, nor one sent while the
    verification is pending (<not-authorized/>, RFC 6120 4.9.3.12)."""
    a, b = make_pair()

    async def listen():
        return await login(xmpp, a, "alice")
    alice = xmpp.run(listen(), 30)

    r = spoofer(kit, a)
    try:
        t0 = time.monotonic()
        r.send(f"<db:result from='b.test' to='a.test'>{MADE_UP_KEY}</db:result>")
        got = r.read_until(lambda buf: b"type=" in buf or b"</stream:stream>" in buf,
                           timeout=20)
        assert got, f"no answer to the spoofed db:result within 20s: {r.buf!r}"
        assert r.read_until(b"/>"), r.buf
        res = re.search(rb"<db:result[^>]*>", r.buf.replace(b'"', b"'"))
        assert res, r.buf
        assert b"type='invalid'" in res.group(0), r.buf
        assert b"from='a.test'" in res.group(0) and b"to='b.test'" in res.group(0), r.buf
        assert time.monotonic() - t0 < 20
        try:  # a stanza after the refusal: the stream is closed or ends now
            r.send(SPOOFED.format("spoofed after"))
        except OSError:
            pass
        assert r.wait_closed(10), f"a.test kept the spoofed stream open: {r.buf!r}"
    finally:
        r.close()
    kit.wait_event(b, "s2s-dialback-verify", local="b.test", remote="a.test", result="invalid")
    assert_refused(a, kit, "in", "b.test", "dialback-invalid", ("invalid", "b.test"))

    r = spoofer(kit, a)
    try:
        r.send(f"<db:result from='b.test' to='a.test'>{MADE_UP_KEY}</db:result>"
               + SPOOFED.format("spoofed pending"))
        assert r.read_until(b"</stream:stream>"), r.buf
        assert b"<stream:error><not-authorized" in r.buf, r.buf
        assert b"type='valid'" not in r.buf.replace(b'"', b"'"), r.buf
    finally:
        r.close()
    kit.wait_event(a, "s2s-refused", dir="in", remote="b.test", rule="not-authorized")

    async def nothing():
        try:
            m = await alice.wait("message", lambda m: "spoofed" in m["body"], timeout=3)
        except AssertionError:
            return
        raise AssertionError(f"a spoofed stanza was delivered: {m}")
    xmpp.run(nothing(), 10)
    assert no_established(a, "b.test", "in")
    assert not kit.log_events(a, "s2s-auth", dir="in", remote="b.test")


# ---- (f) connection limits (SPEC section 5) ----

def test_partner_connection_limit_refuses_inbound_stream(kit, make_pair, xmpp):
    """a.test's partner b.test has --connection-limit 1. alice@a.test's message opens a.test's
    outbound stream (1 stream for b.test); bob's reply needs b.test's outbound stream, the
    2nd for b.test at a.test: refused with <policy-violation/>, bob gets an error, a.test
    logs rule=connection-limit. With the limit raised to 2 the next reply arrives."""
    a, b = make_pair(a_flags=("--connection-limit", "1"))

    async def run():
        alice = await login(xmpp, a, "alice")
        bob = await login(xmpp, b, "bob")
        alice.send_message(mto="bob@b.test", mbody="limit 1", mtype="chat")
        await bob.wait_message(body="limit 1", timeout=BOUNCE_WITHIN)
        m = await bounced(bob, "alice@a.test", "reply over the limit")
        assert_link_error(m, "a.test")
        ev = assert_refused(a, kit, "in", "b.test", "connection-limit", ("b.test",),
                            ("--connection-limit",))
        assert "1" in ev["reason"], ev["_line"]
        kit.wait_event(a, "s2s-stream-error", dir="in", condition="policy-violation")
        kit.wait_event(b, "s2s-peer-stream-error", dir="out", condition="policy-violation")
        assert_last_error(a, "b.test", "connection-limit")
        kit.apply(a, "partner", "set", "b.test", "--connection-limit", "2")
        deadline = time.monotonic() + 15
        n = 0
        while True:  # b.test may still hold back its next link for a moment (back-off)
            n += 1
            bob.send_message(mto="alice@a.test", mbody=f"limit 2 #{n}", mtype="chat")
            try:
                await alice.wait_message(body=f"limit 2 #{n}", timeout=4)
                break
            except AssertionError:
                assert time.monotonic() < deadline, \
                    f"no reply through with --connection-limit 2:\n{a.log()[-2000:]}"
    xmpp.run(run(), 100)


def test_partner_connection_limit_bounces_outbound_stanza(kit, make_pair, xmpp):
    """The limit counts streams in and out: with b.test's inbound stream at a.test the only
    one allowed, alice's message needs a new outbound link and bounces at once with
    <resource-constraint/> (type wait); a.test logs dir=out rule=connection-limit."""
    a, b = make_pair(a_flags=("--connection-limit", "1"))

    async def run():
        alice = await login(xmpp, a, "alice")
        bob = await login(xmpp, b, "bob")
        bob.send_message(mto="alice@a.test", mbody="first in", mtype="chat")
        await alice.wait_message(body="first in", timeout=BOUNCE_WITHIN)
        t0 = time.monotonic()
        m = await bounced(alice, "bob@b.test", "out over the limit", timeout=10)
        assert time.monotonic() - t0 < 3, "the bounce did not come at once"
        assert m["error"]["condition"] == "resource-constraint", str(m)
        assert m["error"]["type"] == "wait", str(m)
    xmpp.run(run(), 60)
    assert_refused(a, kit, "out", "b.test", "connection-limit", ("b.test",),
                   ("--connection-limit",))
    assert_last_error(a, "b.test", "connection-limit")


def test_gateway_connection_limit_refuses_with_resource_constraint(kit, make_pair, xmpp):
    """Gateway connection_limit 1 (all s2s streams): with a.test's outbound stream up, a
    further stream claiming b.test is refused with <resource-constraint/> (read by a raw
    socket) and the log names rule=connection-limit and the gateway setting."""
    a, b = make_pair()
    kit.apply(a, "gateway", "set", "--connection-limit", "1")

    async def run():
        alice = await login(xmpp, a, "alice")
        bob = await login(xmpp, b, "bob")
        alice.send_message(mto="bob@b.test", mbody="the one stream", mtype="chat")
        await bob.wait_message(body="the one stream", timeout=BOUNCE_WITHIN)
    xmpp.run(run(), 60)
    r = kit.Raw(a.host, 5269, bind=kit.HOSTS["c.test"])
    try:
        r.send(kit.stream_header("b.test", "a.test"))
        assert r.read_until(b"</stream:stream>"), r.buf
        assert b"<resource-constraint" in r.buf and b"<stream:error>" in r.buf, r.buf
    finally:
        r.close()
    assert_refused(a, kit, "in", "b.test", "connection-limit", (), ("connection-limit",))
