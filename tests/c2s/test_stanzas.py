"""Stanza handling seen through the raw client (RFC 6120 sections 4, 7, 8 and 10;
RFC 6121 section 8; RFC 7622): 'from' stamping, addressing and JID preparation, iq
routing between users, errors that must not loop, whitespace keepalives, closing a
stream, STARTTLS command injection, binding limits."""
import time

import pytest

import xmppraw as xr
from xmppraw import NS_BIND, NS_PING, NS_TLS, RawClient, q

ADDR = "127.0.0.67"
SETTINGS = {}
USER_POOL = 70


def raw(srv):
    return RawClient(srv.host, srv.port, srv.domain, srv.ca, timeout=10)


def login(srv, n=1, **kw):
    out = []
    for u, p in srv.new_users(n):
        out.append(xr.login(srv, u, p, **kw))
    return out


def closing(*clients):
    class _C:
        def __enter__(self):
            return clients

        def __exit__(self, *a):
            for c in clients:
                c.close()
    return _C()


def sync(c, tag="sync"):
    """A ping round trip: everything the server did for c's earlier stanzas is sent
    before the answer."""
    iid = f"{tag}-{time.monotonic_ns()}"
    c.send(f"<iq type='get' id='{iid}' to='{c.domain}'><ping xmlns='{NS_PING}'/></iq>")
    got = []
    c.wait_for(lambda e: (got.append(e) or True) and e.get("id") == iid, 10,
               what="ping answer")
    return got[:-1]  # what arrived before the answer


def is_msg(body):
    return lambda e: e.tag == q("message") and (e.findtext(q("body")) == body)


def err_cond(el):
    r = xr.stanza_error_condition(el)
    return r[1] if r else None


# ---- 'from' stamping (RFC 6120 8.1.2.1) ----------------------------------------------------------
@pytest.mark.parametrize("forged", ["other-full", "other-bare", "remote"])
def test_forged_from_is_replaced_or_refused(srv, forged):
    """A client cannot send as someone else: the server stamps the real full JID or ends
    the stream with <invalid-from/>."""
    a, b, c = login(srv, 3)
    with closing(a, b, c):
        fake = {"other-full": b.jid, "other-bare": b.jid.split("/")[0],
                "remote": "mallory@remote.example/x"}[forged]
        a.send(f"<message from='{fake}' to='{c.jid}' type='chat' id='forge'>"
               f"<body>forged</body></message>")
        try:
            got = sync(a)
        except xr.StreamError as e:
            assert e.condition == "invalid-from", e
            return
        m = c.wait_for(is_msg("forged"), 10, what="the message")
        assert m.get("from") == a.jid, f"delivered with from={m.get('from')!r}"
        assert not [e for e in got if e.get("type") == "error"], got


def test_forged_presence_from(srv):
    a, b, c = login(srv, 3)
    with closing(a, b, c):
        a.send(f"<presence from='{b.jid}' to='{c.jid}'><status>forged</status></presence>")
        try:
            sync(a)
        except xr.StreamError as e:
            assert e.condition == "invalid-from", e
            return
        p = c.wait_for(lambda e: e.tag == q("presence") and e.findtext(q("status")) == "forged",
                       10, what="the directed presence")
        assert p.get("from") == a.jid, f"delivered with from={p.get('from')!r}"


# ---- addressing and JID preparation (RFC 7622) ---------------------------------------------------
def test_login_with_uppercase_username(srv):
    """The SASL username is prepared like a localpart (case-mapped, RFC 7622 3.3)."""
    (u, p), = srv.new_users(1)
    c = raw(srv)
    with closing(c):
        jid = c.login(u.upper(), p, "SCRAM-SHA-256", resource="Res", presence=False)
        assert jid == f"{u}@{srv.domain}/Res", jid


def test_addresses_are_prepared(srv):
    """Localpart and domain are case-insensitive, so a message to U@DOMAIN reaches u."""
    a, b = login(srv, 2, resource="Phone")
    with closing(a, b):
        bare = b.jid.split("/")[0]
        local, domain = bare.split("@")
        a.send(xr.message(f"{local.upper()}@{domain.upper()}", "to upper case"))
        b.wait_for(is_msg("to upper case"), 10, what="message to the upper-case JID")
        a.send(xr.message(f"{local.upper()}@{domain.upper()}/Phone", "to upper full"))
        b.wait_for(is_msg("to upper full"), 10, what="message to the upper-case full JID")


@pytest.mark.parametrize("to", ["a@b@c2s.test", "@c2s.test", "user@", "x" * 1100 + "@c2s.test"])
def test_malformed_to_is_jid_malformed(srv, to):
    """RFC 6120 8.3.3.8: a 'to' that is not a valid JID gets <jid-malformed/>."""
    a, = login(srv)
    with closing(a):
        a.send(f"<message to='{to}' type='chat' id='mal'><body>x</body></message>")
        try:
            e = a.wait_for(lambda e: e.get("id") == "mal", 10, what="the error")
        except xr.StreamError as se:  # a stream error is also a defensible answer
            assert se.condition in ("jid-malformed", "improper-addressing"), se
            return
        assert e.get("type") == "error" and err_cond(e) == "jid-malformed", xr.ET.tostring(e)


@pytest.mark.fedgate_only("federation policy")
def test_message_to_remote_domain_bounces(srv):
    """A stanza for a domain the gateway cannot reach (here: no s2s listener, not a
    partner, unlisted domains blocked by default -- SPEC section 5) comes back as an
    error; issue 4 said <remote-server-not-found/> before federation, the gateway's
    policy answers <not-allowed/>."""
    a, = login(srv)
    with closing(a):
        a.send("<message to='someone@remote.example' type='chat' id='rem'><body>x</body></message>")
        e = a.wait_for(lambda e: e.get("id") == "rem", 15, what="the bounce")
        assert e.get("type") == "error", xr.ET.tostring(e)
        assert err_cond(e) in ("remote-server-not-found", "remote-server-timeout",
                               "not-allowed", "service-unavailable"), xr.ET.tostring(e)


# ---- iq routing ----------------------------------------------------------------------------------
def test_iq_between_users(srv):
    """An iq to another user's full JID reaches that resource; its answer comes back."""
    a, b = login(srv, 2)
    with closing(a, b):
        a.send(f"<iq type='get' id='ver1' to='{b.jid}'><query xmlns='jabber:iq:version'/></iq>")
        iq = b.wait_for(lambda e: e.tag == q("iq") and e.get("id") == "ver1", 10,
                        what="the iq at the peer")
        assert iq.get("from") == a.jid and iq.get("type") == "get"
        b.send(f"<iq type='result' id='ver1' to='{a.jid}'><query xmlns='jabber:iq:version'>"
               f"<name>raw</name><version>1</version></query></iq>")
        r = a.wait_for(lambda e: e.tag == q("iq") and e.get("id") == "ver1", 10,
                       what="the answer")
        assert r.get("type") == "result" and r.get("from") == b.jid


def test_iq_to_unconnected_resource(srv):
    """RFC 6121 8.5.3.2.1: an iq to a full JID with no such resource: service-unavailable."""
    a, b = login(srv, 2)
    with closing(a, b):
        gone = b.jid.split("/")[0] + "/not-connected"
        a.send(f"<iq type='get' id='nores' to='{gone}'><query xmlns='jabber:iq:version'/></iq>")
        r = a.wait_for(lambda e: e.get("id") == "nores", 10, what="the error")
        assert r.get("type") == "error" and err_cond(r) == "service-unavailable", \
            xr.ET.tostring(r)


def test_error_stanzas_are_not_answered_with_errors(srv):
    """RFC 6120 8.3.1 / RFC 6121 8.5.1: an error stanza to nowhere is dropped, never
    bounced (no error loops)."""
    a, = login(srv)
    with closing(a):
        nobody = f"nobody-{time.time_ns()}@{srv.domain}"
        a.send(f"<message to='{nobody}' type='error' id='e1'><error type='cancel'>"
               f"<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>")
        a.send(f"<iq to='{nobody}' type='error' id='e2'><error type='cancel'>"
               f"<item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>")
        a.send(f"<iq to='{nobody}' type='result' id='e3'/>")
        before = sync(a)
        time.sleep(0.5)
        after = sync(a, "sync2")
        bad = [xr.ET.tostring(e) for e in before + after if e.get("id") in ("e1", "e2", "e3")]
        assert not bad, f"answers to error/result stanzas: {bad}"


# ---- stream level --------------------------------------------------------------------------------
def test_whitespace_keepalives_are_fine(srv):
    """RFC 6120 4.6.1: whitespace between stanzas is a keepalive, not an error."""
    a, = login(srv)
    with closing(a):
        for _ in range(3):
            a.send(" \n\t ")
        a.send(xr.message(a.jid, "after keepalives", mid="ka"))
        a.send("\n")
        a.wait_for(is_msg("after keepalives"), 10, what="the message")
        sync(a)


def test_unknown_first_level_element(srv):
    """RFC 6120 4.9.3.23: <unsupported-stanza-type/>."""
    a, = login(srv)
    with closing(a):
        a.send("<foo xmlns='jabber:client'/>")
        cond, _ = a.expect_stream_error(10)
        assert cond == "unsupported-stanza-type", a.transcript()


def test_client_closes_stream(srv):
    """RFC 6120 4.4: the server answers </stream:stream> and closes the connection,
    without a stream error."""
    a, b = login(srv, 2)
    with closing(a, b):
        a.send(f"<presence to='{b.jid}'/>")
        b.wait_for(lambda e: e.tag == q("presence") and e.get("from") == a.jid, 10,
                   what="directed presence")
        a.send("</stream:stream>")
        try:
            while True:
                a.next(5)
        except xr.StreamClosed:
            pass
        assert a.closed_tag, f"no </stream:stream> in answer: {a.transcript()}"
        a.wait_eof(5)
        # the directed-presence recipient learns that a is gone
        b.wait_for(lambda e: e.tag == q("presence") and e.get("from") == a.jid
                   and e.get("type") == "unavailable", 10, what="unavailable presence")


def test_starttls_command_injection(srv):
    """Bytes sent after <starttls/> in the same packet are not processed as part of the
    encrypted stream (the STARTTLS command-injection class): TLS still succeeds and
    the plaintext stanza has no effect."""
    if srv.kind == "prosody":
        pytest.skip("Prosody 0.12 parses the injected bytes as a new plaintext stream")
    (u, p), = srv.new_users(1)
    b, = login(srv)
    with closing(b):
        c = raw(srv)
        with closing(c):
            c.open()
            c.send(f"<starttls xmlns='{NS_TLS}'/>"
                   f"<message to='{b.jid}' type='chat'><body>injected</body></message>")
            el = c.next()
            assert el.tag == q("proceed", NS_TLS), c.transcript()
            c._wrap_tls()
            c.open()
            c.auth(u, p, "SCRAM-SHA-1")
            c.open()
            c.bind()
            got = sync(b)
            time.sleep(0.3)
            got += sync(b, "s2")
            assert not [e for e in got if e.findtext(q("body")) == "injected"], \
                "the injected plaintext message was delivered"


def test_second_bind_is_refused(srv):
    a, = login(srv, resource="first")
    with closing(a):
        a.send(f"<iq type='set' id='bind2'><bind xmlns='{NS_BIND}'><resource>second"
               f"</resource></bind></iq>")
        r = a.wait_for(lambda e: e.get("id") == "bind2", 10, what="the answer")
        assert r.get("type") == "error", xr.ET.tostring(r)


def test_overlong_resource_is_bad_request(srv):
    """RFC 7622 3.4: a resourcepart of more than 1023 bytes."""
    (u, p), = srv.new_users(1)
    c = raw(srv)
    with closing(c):
        c.open()
        c.starttls()
        c.auth(u, p, "SCRAM-SHA-1")
        c.open()
        c.send(f"<iq type='set' id='bl'><bind xmlns='{NS_BIND}'><resource>{'r' * 1100}"
               f"</resource></bind></iq>")
        r = c.wait_for(lambda e: e.get("id") == "bl", 10, what="the answer")
        if r.get("type") == "result":  # the server may assign another resource (7.7.2.1)
            jid = r.find(f"{q('bind', NS_BIND)}/{q('jid', NS_BIND)}").text
            assert len(jid.split("/", 1)[1].encode()) <= 1023, "overlong resource bound"
        else:
            assert r.get("type") == "error" and err_cond(r) in ("bad-request", "not-allowed"), \
                xr.ET.tostring(r)


# ---- volume --------------------------------------------------------------------------------------
def test_many_offline_messages_all_delivered_in_order(srv):
    """300 messages to an offline user: all stored, all delivered at the next login, in
    the order sent, each once."""
    n = 300
    a, = login(srv)
    (bu, bp), = srv.new_users(1)
    with closing(a):
        bare = f"{bu}@{srv.domain}"
        a.send("".join(xr.message(bare, f"off {i}", mid=f"o{i}") for i in range(n)))
        errs = [e for e in sync(a) if e.get("type") == "error"]
        assert not errs, xr.ET.tostring(errs[0])
        time.sleep(0.5)
        b = xr.login(srv, bu, bp, timeout=20)
        with closing(b):
            bodies = []
            deadline = time.monotonic() + 20
            while len(bodies) < n and time.monotonic() < deadline:
                try:
                    e = b.next(max(0.1, deadline - time.monotonic()))
                except TimeoutError:
                    break
                if e.tag == q("message") and e.findtext(q("body")):
                    bodies.append(e.findtext(q("body")))
            assert bodies == [f"off {i}" for i in range(n)], (
                f"{len(bodies)} of {n} delivered; first differences: "
                f"{[(i, x) for i, x in enumerate(bodies) if x != f'off {i}'][:5]}")


def test_large_roster(srv):
    """200 roster items set one by one come back in one roster get."""
    n = 200
    a, = login(srv)
    with closing(a):
        ns = "jabber:iq:roster"
        a.send("".join(f"<iq type='set' id='rs{i}'><query xmlns='{ns}'><item "
                       f"jid='contact{i}@example.net' name='C {i}'/></query></iq>"
                       for i in range(n)))
        ok = set()
        deadline = time.monotonic() + 20
        while len(ok) < n and time.monotonic() < deadline:
            e = a.next(max(0.1, deadline - time.monotonic()))
            if e.tag == q("iq") and (e.get("id") or "").startswith("rs"):
                assert e.get("type") == "result", xr.ET.tostring(e)
                ok.add(e.get("id"))
        assert len(ok) == n, f"{len(ok)} of {n} roster sets answered"
        a.send(f"<iq type='get' id='rget'><query xmlns='{ns}'/></iq>")
        r = a.wait_for(lambda e: e.get("id") == "rget", 20, what="the roster")
        jids = {i.get("jid") for i in r.iter(f"{{{ns}}}item")}
        assert jids == {f"contact{i}@example.net" for i in range(n)}, \
            f"{len(jids)} of {n} items in the roster"


def test_many_resources_of_one_user(srv):
    """30 resources of one account at once: distinct full JIDs; a headline to the bare
    JID reaches each of them (RFC 6121 8.5.2.1.1)."""
    n = 30
    (u, p), = srv.new_users(1)
    a, = login(srv)
    cs = [xr.login(srv, u, p, resource=f"r{i}") for i in range(n)]
    with closing(a, *cs):
        assert len({c.jid for c in cs}) == n
        for c in cs:
            sync(c)  # initial presence processed
        a.send(xr.message(f"{u}@{srv.domain}", "to everyone", mtype="headline"))
        for c in cs:
            c.wait_for(is_msg("to everyone"), 10, what=f"the headline at {c.jid}")


def test_racing_logins_with_one_resource(srv):
    """Six clients bind the same resource at once: afterwards exactly one session owns
    it (each earlier one got <conflict/>), and it receives messages."""
    import threading
    (u, p), = srv.new_users(1)
    cs = [RawClient(srv.host, srv.port, srv.domain, srv.ca, timeout=15) for _ in range(6)]
    for c in cs:
        c.open()
        c.starttls()
        c.auth(u, p, "SCRAM-SHA-1")
        c.open()
    errors = []

    def bind(c):
        try:
            c.bind("same")
            c.send("<presence/>")
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
    ts = [threading.Thread(target=bind, args=(c,)) for c in cs]
    for t in ts:
        t.start()
    for t in ts:
        t.join(20)
    a, = login(srv)
    with closing(a, *cs):
        time.sleep(1.0)
        alive_ones = []
        for c in cs:
            try:
                sync(c)
                alive_ones.append(c)
            except (xr.StreamError, xr.StreamClosed, OSError) as e:
                # a replaced session: its stream ended with <conflict/>
                try:
                    c.wait_eof(3)  # read what is left (the send may have failed first)
                except AssertionError:
                    pass
                assert "conflict" in c.transcript(), f"{e!r}; received: {c.transcript()}"
        assert len(alive_ones) == 1, (f"{len(alive_ones)} sessions own {u}/same; "
                                      f"bind errors: {errors}")
        a.send(xr.message(f"{u}@{srv.domain}/same", "for the winner"))
        alive_ones[0].wait_for(is_msg("for the winner"), 10, what="the message")


def test_messages_right_after_stream_close_are_not_lost(srv):
    """Once a client has closed its stream (</stream:stream>), its session takes no more
    stanzas: messages sent to the user then -- even while the client has not hung up
    its TCP connection yet -- are stored for the next login (or bounced), never lost."""
    (u, p), = srv.new_users(1)
    a = xr.login(srv, u, p, resource="r")
    b, = login(srv)
    with closing(a, b):
        sync(a)
        a.send("</stream:stream>")
        try:
            while True:
                a.next(5)
        except xr.StreamClosed:
            pass  # the server's closing tag; our socket stays open a moment longer
        b.send(xr.message(f"{u}@{srv.domain}", "after close, bare", mid="ac1"))
        b.send(xr.message(f"{u}@{srv.domain}/r", "after close, full", mid="ac2"))
        answers = sync(b)
        time.sleep(2.5)
        a.sock.close()
        answers += sync(b, "s2")
        bounced = {e.get("id") for e in answers if e.get("type") == "error"}
        a2 = xr.login(srv, u, p, resource="again")
        with closing(a2):
            got = set()
            deadline = time.monotonic() + 5
            while len(got | bounced) < 2 and time.monotonic() < deadline:
                try:
                    e = a2.next(max(0.1, deadline - time.monotonic()))
                except TimeoutError:
                    break
                if e.tag == q("message") and e.get("id") in ("ac1", "ac2"):
                    got.add(e.get("id"))
            lost = {"ac1", "ac2"} - got - bounced
            assert not lost, (f"messages sent after the user closed the stream were lost "
                              f"(neither stored nor bounced): {sorted(lost)}")


def test_roster_items_are_prepared_and_keep_unicode(srv):
    """RFC 6121 2.1.2.3 / RFC 7622: roster item JIDs are compared prepared (case-folded
    localpart and domain); names and groups are kept as sent, Unicode included."""
    a, b = login(srv, 2)
    with closing(a, b):
        ns = "jabber:iq:roster"
        bare = b.jid.split("/")[0]
        loud = bare.upper()
        a.send(f"<iq type='get' id='g0'><query xmlns='{ns}'/></iq>")
        a.wait_for(lambda e: e.get("id") == "g0", 10, what="roster")
        a.send(f"<iq type='set' id='r1'><query xmlns='{ns}'><item jid='{loud}' "
               f"name='Zo\u00eb \U0001F600'><group>\u00dcn\u00efcode</group></item></query></iq>")
        seen = []
        r = a.wait_for(lambda e: (seen.append(e) or True) and e.get("id") == "r1", 10,
                       what="roster set result")
        assert r.get("type") == "result", xr.ET.tostring(r)
        pushes = [e for e in seen if e.tag == q("iq") and e.get("type") == "set"]
        if not pushes:
            pushes = [a.wait_for(lambda e: e.tag == q("iq") and e.get("type") == "set", 10,
                                 what="roster push")]
        item = pushes[0].find(f"{{{ns}}}query/{{{ns}}}item")
        assert item.get("jid") == bare, f"item jid not prepared: {item.get('jid')!r}"
        assert item.get("name") == "Zo\u00eb \U0001F600"
        assert [g.text for g in item.findall(f"{{{ns}}}group")] == ["\u00dcn\u00efcode"]
        # a subscription request to the upper-case JID reaches the contact, once
        a.send(f"<presence to='{loud}' type='subscribe'/>")
        s = b.wait_for(lambda e: e.tag == q("presence") and e.get("type") == "subscribe", 10,
                       what="the subscription request")
        assert s.get("from") == a.jid.split("/")[0]
        a.send(f"<iq type='get' id='g1'><query xmlns='{ns}'/></iq>")
        g = a.wait_for(lambda e: e.get("id") == "g1", 10, what="roster")
        jids = [i.get("jid") for i in g.iter(f"{{{ns}}}item")]
        assert jids == [bare], f"roster holds {jids}"
