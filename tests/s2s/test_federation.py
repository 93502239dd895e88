"""Federation between two fedgated instances (issue 5): messages both ways over SASL
EXTERNAL (XEP-0178) and over dialback with TLS (XEP-0220), link status as SPEC section 7
describes it, refusals of an unlisted domain and of a domain that is not a partner
(SPEC section 3)."""
import re
import socket
import time
import urllib.request

PW = {u: f"pw-{u}-Secret" for u in ("alice", "bob", "carol")}


def wait_stream(node, partner, auth, timeout=15):
    """Polls `partner status --json` until partner has an established stream with auth."""
    deadline = time.monotonic() + timeout
    doc = None
    while time.monotonic() < deadline:
        doc = node.status(partner)
        for p in doc["partners"]:
            for s in p["streams"]:
                if s["state"] == "established" and s["auth"] == auth:
                    return doc, s
        time.sleep(0.5)
    raise AssertionError(f"no established {auth} stream to {partner} on {node.domain}: {doc}")


async def login(xmpp, node, user):
    xmpp.srv = node
    return await xmpp.login(user, PW[user])


def exchange(xmpp, a, b, user_a, user_b, tag):
    async def run():
        ca = await login(xmpp, a, user_a)
        cb = await login(xmpp, b, user_b)
        ca.send_message(mto=f"{user_b}@b.test", mbody=f"hello b {tag}", mtype="chat")
        await cb.wait_message(body=f"hello b {tag}", timeout=20)
        cb.send_message(mto=f"{user_a}@a.test", mbody=f"hello a {tag}", mtype="chat")
        await ca.wait_message(body=f"hello a {tag}", timeout=20)
    xmpp.run(run(), 60)


def test_message_both_ways_sasl_external(nodes, xmpp):
    a, b = nodes
    exchange(xmpp, a, b, "alice", "alice", "external")
    doc, s = wait_stream(a, "b.test", "sasl-external")
    assert doc["daemon"]["running"] is True
    assert doc["daemon"]["heartbeat"].endswith("Z")
    assert s["tls"] == "TLSv1.3"
    assert s["local_domain"] == "a.test" and s["remote_domain"] == "b.test"
    assert s["direction"] in ("in", "out")
    assert s["since"].endswith("Z")
    dirs = {x["direction"] for x in doc["partners"][0]["streams"]
            if x["state"] == "established"}
    assert dirs == {"in", "out"}, doc
    _, s = wait_stream(b, "a.test", "sasl-external")
    assert s["tls"] == "TLSv1.3"
    assert "event=s2s-auth dir=out local=a.test remote=b.test method=sasl-external " \
           "tls=TLSv1.3" in a.log()
    assert "event=s2s-auth dir=in local=a.test remote=b.test method=sasl-external " \
           "tls=TLSv1.3" in a.log()
    human = a.ok("partner", "status")
    assert "b.test" in human and "established" in human


def test_not_a_partner_is_not_allowed_at_once(nodes, xmpp):
    a, _ = nodes

    async def run():
        c = await login(xmpp, a, "bob")
        t0 = time.monotonic()
        c.send_message(mto="someone@nope.test", mbody="hi", mtype="chat")
        m = await c.wait("message", lambda s: s["type"] == "error", timeout=5)
        assert "not-allowed" in str(m)
        assert "nope.test" in m["error"]["text"]
        assert time.monotonic() - t0 < 3
    xmpp.run(run(), 30)


def test_unlisted_domain_refused(kit, nodes):
    a, _ = nodes
    s = socket.socket()
    s.settimeout(10)
    s.bind((kit.HOSTS["c.test"], 0))
    s.connect((a.host, 5269))
    s.sendall(b"<?xml version='1.0'?><stream:stream xmlns='jabber:server' "
              b"xmlns:stream='http://etherx.jabber.org/streams' "
              b"xmlns:db='jabber:server:dialback' from='c.test' to='a.test' version='1.0'>")
    got = b""
    deadline = time.monotonic() + 10
    while b"</stream:stream>" not in got and time.monotonic() < deadline:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    s.close()
    assert b"<policy-violation" in got, got
    deadline = time.monotonic() + 5
    while "event=s2s-refused dir=in remote=c.test rule=unlisted" not in a.log():
        assert time.monotonic() < deadline, a.log()[-2000:]
        time.sleep(0.2)


def test_dialback_over_tls(nodes, xmpp):
    a, b = nodes
    a.ok("partner", "set", "b.test", "--sasl", "not-supported")
    b.ok("partner", "set", "a.test", "--sasl", "not-supported")
    time.sleep(3)  # the daemons notice the change within about two seconds
    exchange(xmpp, a, b, "carol", "carol", "dialback")
    _, s = wait_stream(a, "b.test", "dialback")
    assert s["tls"] == "TLSv1.3"
    _, s = wait_stream(b, "a.test", "dialback")
    assert s["tls"] == "TLSv1.3"
    assert "event=s2s-auth dir=out local=a.test remote=b.test method=dialback " \
           "tls=TLSv1.3" in a.log()


def test_dialback_without_tls_asks_the_authoritative_server(nodes, xmpp):
    """TLS not-supported: no certificate can vouch (XEP-0344 does not apply), so the
    receiving server verifies the key with a verify-only stream to the originating
    domain (XEP-0220 section 2.3)."""
    a, b = nodes
    a.ok("partner", "set", "b.test", "--tls", "not-supported")
    b.ok("partner", "set", "a.test", "--tls", "not-supported")
    time.sleep(3)
    exchange(xmpp, a, b, "bob", "bob", "plain-dialback")
    _, s = wait_stream(a, "b.test", "dialback")
    assert s["tls"] is None
    _, s = wait_stream(b, "a.test", "dialback")
    assert s["tls"] is None
    assert "event=s2s-auth dir=in local=a.test remote=b.test method=dialback tls=none" \
        in a.log()
    # XEP-0220 2.3: the first receiving server had no stream to the authoritative server
    # and opened a verify-only one; the second asked over its established outbound stream
    vias = [l.split("via=")[1] for n in (a, b) for l in n.log().splitlines()
            if "event=s2s-verify-request" in l]
    assert sorted(vias) == ["outbound-stream", "verify-stream"], vias


def test_unreachable_partner_bounces_and_is_reported(nodes, xmpp):
    """d.test is a partner whose SRV target has no server: the stanza bounces with
    <remote-server-not-found/> (SPEC section 3) and the partner's last_error says why."""
    a, _ = nodes
    a.ok("partner", "new", "d.test", "--type", "federated")
    time.sleep(2.5)

    async def run():
        c = await login(xmpp, a, "alice")
        c.send_message(mto="x@d.test", mbody="anyone?", mtype="chat")
        m = await c.wait("message", lambda s: s["type"] == "error", timeout=20)
        assert "remote-server-not-found" in str(m)
    xmpp.run(run(), 40)
    deadline = time.monotonic() + 10
    while True:
        p = a.status("d.test")["partners"][0]
        if p["last_error"] is not None:
            break
        assert time.monotonic() < deadline, p
        time.sleep(0.5)
    assert p["domain"] == "d.test"
    assert p["last_error"]["time"].endswith("Z")
    assert p["last_error"]["message"] and p["last_error"]["fix"]
    assert p["refused_stanzas"] >= 1
    assert p["streams"] == []


def test_metrics_count_stanzas_per_partner(nodes, xmpp):
    """GET /metrics on a.test counts the stanzas carried to and from partner b.test."""
    a, b = nodes

    def routed():
        req = urllib.request.Request(f"http://{a.host}:5280/metrics",
                                     headers={"Authorization": f"Bearer {token}"})
        text = urllib.request.urlopen(req, timeout=10).read().decode()
        m = re.search(r'^fedgate_s2s_stanzas_routed_total\{partner="b\.test"\} (\d+)$', text,
                      re.M)
        assert m, text
        return int(m.group(1))

    a.ok("admin", "add", "mon", "--role", "viewer", "--password-file", "-",
         input="Monitor-pw-12345\n")
    token = a.ok("admin", "token", "mon").strip()
    before = routed()
    exchange(xmpp, a, b, "alice", "alice", "metrics")
    deadline = time.monotonic() + 5   # the daemon writes link status every second
    while routed() < before + 2 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert routed() >= before + 2   # one message out, one in
