"""Instant messaging with python3-slixmpp (RFC 6121, XEP-0030, XEP-0160/0203, XEP-0199):
subscriptions and presence, messages to bare and full JIDs, offline storage, errors for
nonexistent users, roster pushes to every interested resource, resource conflicts,
service discovery and ping."""
import asyncio
import datetime
import time

import pytest

ADDR = "127.0.0.62"
SETTINGS = {}
USER_POOL = 80

NS_ROSTER = "jabber:iq:roster"
NS_DISCO_INFO = "http://jabber.org/protocol/disco#info"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"


def items(iq):
    """{jid: {subscription, ask, approved, name, groups}} of a roster iq, from its XML."""
    qe = iq.xml.find(f"{{{NS_ROSTER}}}query")
    out = {}
    for it in (qe.findall(f"{{{NS_ROSTER}}}item") if qe is not None else []):
        out[it.get("jid")] = {
            "subscription": it.get("subscription", "none"),
            "ask": it.get("ask"),
            "approved": it.get("approved"),
            "name": it.get("name"),
            "groups": sorted(g.text or "" for g in it.findall(f"{{{NS_ROSTER}}}group")),
        }
    return out


def has_item(jid, **want):
    def pred(iq):
        it = items(iq).get(jid)
        return it is not None and all(it.get(k) == v for k, v in want.items())
    return pred


def available(s):
    return s.xml.get("type") in (None, "")


def error_condition(st):
    err = st.xml.find("{jabber:client}error")
    if err is None:
        return None, None
    for c in err:
        if c.tag.startswith("{" + NS_STANZAS + "}") and not c.tag.endswith("}text"):
            return err.get("type"), c.tag.split("}", 1)[1]
    return err.get("type"), None


async def ping(c, srv):
    r = await c.iq(srv.domain, "<ping xmlns='urn:xmpp:ping'/>")
    assert r["type"] == "result", f"ping failed: {r}"


async def befriend(srv, a, b):
    """Mutual subscription between the bare JIDs of clients a and b (RFC 6121 3.1)."""
    A, B = a.boundjid.bare, b.boundjid.bare
    for x, y, X, Y in ((a, b, A, B), (b, a, B, A)):
        x.send_presence(pto=Y, ptype="subscribe")
        await y.wait_presence(frm=X, ptype="subscribe")
        y.send_presence(pto=X, ptype="subscribed")
        await x.wait_presence(frm=Y, ptype="subscribed")
    await a.wait("roster_push", has_item(B, subscription="both"), what=f"push {B} both")
    await b.wait("roster_push", has_item(A, subscription="both"), what=f"push {A} both")


# ---- subscriptions and presence ----------------------------------------------------------------
def test_mutual_subscription_and_presence(srv, xmpp, alive):
    (au, ap), (bu, bp) = srv.new_users(2, prefix="sub")
    A, B = f"{au}@{srv.domain}", f"{bu}@{srv.domain}"

    async def body():
        a = await xmpp.login(au, ap, resource="pc", status="alice is here")
        b = await xmpp.login(bu, bp, resource="phone", status="bob is here")

        # RFC 6121 3.1.2: pushed as pending out, stamped with the user's bare JID
        a.send_presence(pto=B, ptype="subscribe")
        await a.wait("roster_push", has_item(B, subscription="none", ask="subscribe"),
                     what="roster push none+ask=subscribe")
        s = await b.wait_presence(frm=A, ptype="subscribe")
        assert str(s["from"]) == A, f"subscribe not stamped with the bare JID: {s}"
        # 3.1.5: approval
        b.send_presence(pto=A, ptype="subscribed")
        await b.wait("roster_push", has_item(A, subscription="from"), what="push from")
        await a.wait_presence(frm=B, ptype="subscribed")
        await a.wait("roster_push", has_item(B, subscription="to"), what="push to")
        # 3.1.5/4.3: bob's server sends alice bob's current presence, with its status
        p = await a.wait_presence(frm=f"{B}/phone", pred=available,
                                  what="bob's available presence")
        assert p["status"] == "bob is here"

        # the other direction
        b.send_presence(pto=A, ptype="subscribe")
        await a.wait_presence(frm=B, ptype="subscribe")
        a.send_presence(pto=B, ptype="subscribed")
        await a.wait("roster_push", has_item(B, subscription="both"), what="push both")
        await b.wait("roster_push", has_item(A, subscription="both"), what="push both")
        p = await b.wait_presence(frm=f"{A}/pc", pred=available,
                                  what="alice's available presence")
        assert p["status"] == "alice is here"

        # 4.4: a presence update is broadcast to the contact, status and show included
        a.send_presence(pshow="dnd", pstatus="in a meeting")
        p = await b.wait_presence(frm=f"{A}/pc", pred=lambda s: s["status"] == "in a meeting",
                                  what="alice's updated presence")
        assert p["show"] == "dnd"

        # 4.5: unavailable on disconnect (bob's connection just drops, no unavailable sent)
        b.abort()
        await a.wait_presence(frm=f"{B}/phone", ptype="unavailable", timeout=10)

        # the roster as stored
        r = await a.iq(None, f"<query xmlns='{NS_ROSTER}'/>")
        assert items(r).get(B, {}).get("subscription") == "both", items(r)
    xmpp.run(body(), 60)


def test_presence_probe_at_login(srv, xmpp, alive):
    """RFC 6121 4.2/4.3: at initial presence the server probes the contacts and delivers
    their current presence; the contacts get the new presence."""
    (au, ap), (bu, bp) = srv.new_users(2, prefix="probe")
    A, B = f"{au}@{srv.domain}", f"{bu}@{srv.domain}"

    async def body():
        a = await xmpp.login(au, ap, resource="desk", status="alice at desk")
        b = await xmpp.login(bu, bp, resource="old")
        await befriend(srv, a, b)
        await xmpp.logout(b)
        await a.wait_presence(frm=f"{B}/old", ptype="unavailable")
        b2 = await xmpp.login(bu, bp, resource="new", status="bob is back")
        p = await b2.wait_presence(frm=f"{A}/desk", pred=available,
                                   what="alice's presence after bob's initial presence")
        assert p["status"] == "alice at desk"
        p = await a.wait_presence(frm=f"{B}/new", pred=available, what="bob's new presence")
        assert p["status"] == "bob is back"
    xmpp.run(body(), 60)


def test_directed_presence(srv, xmpp, alive):
    """RFC 6121 4.6: directed presence reaches a non-contact; when the sender goes offline
    that entity gets unavailable presence."""
    (au, ap), (du, dp) = srv.new_users(2, prefix="dir")

    async def body():
        a = await xmpp.login(au, ap, resource="r")
        d = await xmpp.login(du, dp, resource="r")
        a.send_presence(pto=d.boundjid.full, pstatus="hello dave")
        p = await d.wait_presence(frm=a.boundjid.full, pred=available)
        assert p["status"] == "hello dave"
        await xmpp.logout(a)
        await d.wait_presence(frm=a.boundjid.full, ptype="unavailable")
    xmpp.run(body(), 30)


@pytest.mark.fedgate_only("pre-approval (issue 4)")
def test_subscription_preapproval(srv, xmpp, alive):
    """RFC 6121 3.4: the user pre-approves a contact; the contact's later request is
    approved by the server without reaching the user."""
    (au, ap), (cu, cp) = srv.new_users(2, prefix="pre")
    A, C = f"{au}@{srv.domain}", f"{cu}@{srv.domain}"

    async def body():
        a = await xmpp.login(au, ap)
        c = await xmpp.login(cu, cp)
        a.send_presence(pto=C, ptype="subscribed")
        await a.wait("roster_push", has_item(C, approved="true", subscription="none"),
                     what="push approved='true'")
        c.send_presence(pto=A, ptype="subscribe")
        await c.wait_presence(frm=A, ptype="subscribed", what="automatic 'subscribed'")
        await c.wait("roster_push", has_item(A, subscription="to"), what="push to")
        await a.wait("roster_push", has_item(C, subscription="from"), what="push from")
        # sentinel: a message from c arrives after anything c's request caused
        c.send_message(mto=A, mbody="sentinel", mtype="chat")
        await a.wait_message(body="sentinel")
        leaked = [s for s in a.inbox["presence"] if s["type"] == "subscribe"]
        assert not leaked, f"pre-approved request delivered to the user: {leaked}"
    xmpp.run(body(), 30)


# ---- messages ------------------------------------------------------------------------------------
def test_message_to_bare_jid(srv, xmpp, alive):
    (au, ap), (bu, bp) = srv.new_users(2, prefix="msg")

    async def body():
        a = await xmpp.login(au, ap, resource="a")
        b = await xmpp.login(bu, bp, resource="b")
        a.send_message(mto=b.boundjid.bare, mbody="hello <bob> & \u00e9\u00e8 \U0001F600",
                       mtype="chat")
        m = await b.wait_message(body="hello <bob> & \u00e9\u00e8 \U0001F600")
        assert m["from"] == a.boundjid, f"from not stamped with the full JID: {m}"
        assert m["type"] == "chat"
        b.send_message(mto=m["from"], mbody="hi alice", mtype="chat")
        r = await a.wait_message(body="hi alice")
        assert r["from"] == b.boundjid
    xmpp.run(body(), 30)


def test_message_to_full_jid_reaches_only_that_resource(srv, xmpp, alive):
    (au, ap), (bu, bp) = srv.new_users(2, prefix="full")

    async def body():
        a = await xmpp.login(au, ap)
        b1 = await xmpp.login(bu, bp, resource="one", priority=10)
        b2 = await xmpp.login(bu, bp, resource="two", priority=0)
        a.send_message(mto=b2.boundjid.full, mbody="for two", mtype="chat")
        await b2.wait_message(body="for two", frm=a.boundjid)
        a.send_message(mto=b1.boundjid.full, mbody="for one", mtype="chat")
        await b1.wait_message(body="for one")
        assert not [m for m in b1.inbox["message"] if m["body"] == "for two"], \
            "a message to another resource's full JID reached this one"
        # a normal (non-chat) message to a full JID too
        a.send_message(mto=b2.boundjid.full, mbody="normal for two", mtype="normal")
        await b2.wait_message(body="normal for two")
    xmpp.run(body(), 30)


def test_bare_jid_message_goes_to_highest_priority(srv, xmpp, alive):
    """RFC 6121 8.5.2.1.1; issue 4: highest-priority resource delivery for bare JIDs."""
    (au, ap), (bu, bp) = srv.new_users(2, prefix="prio")

    async def body():
        a = await xmpp.login(au, ap)
        low = await xmpp.login(bu, bp, resource="low", priority=1)
        high = await xmpp.login(bu, bp, resource="high", priority=5)
        await ping(high, srv)
        a.send_message(mto=high.boundjid.bare, mbody="to the bare jid", mtype="chat")
        await high.wait_message(body="to the bare jid")
        a.send_message(mto=low.boundjid.full, mbody="sentinel", mtype="chat")
        await low.wait_message(body="sentinel")
        assert not [m for m in low.inbox["message"] if m["body"] == "to the bare jid"], \
            "the lower-priority resource got the bare-JID message too"
    xmpp.run(body(), 30)


def test_message_between_two_resources_of_one_user(srv, xmpp, alive):
    (au, ap), = srv.new_users(1, prefix="self")

    async def body():
        a1 = await xmpp.login(au, ap, resource="one")
        a2 = await xmpp.login(au, ap, resource="two")
        a1.send_message(mto=a2.boundjid.full, mbody="note to self", mtype="chat")
        m = await a2.wait_message(body="note to self")
        assert m["from"] == a1.boundjid
    xmpp.run(body(), 30)


def test_offline_message_delivered_at_next_login_with_delay(srv, xmpp, alive):
    """XEP-0160 / XEP-0203: messages to an offline user are stored and delivered, in
    order, when the user next comes online, each with a <delay/> stamp."""
    (au, ap), (cu, cp) = srv.new_users(2, prefix="off")
    C = f"{cu}@{srv.domain}"

    async def body():
        a = await xmpp.login(au, ap, resource="sender")
        t0 = datetime.datetime.now(datetime.timezone.utc)
        a.send_message(mto=C, mbody="while you were away 1", mtype="chat")
        a.send_message(mto=C, mbody="while you were away 2", mtype="normal")
        await ping(a, srv)
        await asyncio.sleep(0.3)
        assert not [m for m in a.inbox["message"] if m["type"] == "error"], \
            f"the sender got an error: {[str(m) for m in a.inbox['message']]}"
        c = await xmpp.login(cu, cp, resource="back")
        m1 = await c.wait_message(body="while you were away 1")
        m2 = await c.wait_message(body="while you were away 2")
        order = [x for k, x in c.history if k == "message"]
        assert order.index(str(m1)) < order.index(str(m2)), "offline messages out of order"
        for m in (m1, m2):
            assert m["from"] == a.boundjid, f"original sender not kept: {m}"
            d = m.xml.find("{urn:xmpp:delay}delay")
            assert d is not None, f"no XEP-0203 <delay/>: {m}"
            stamp = d.get("stamp")
            assert stamp, f"<delay/> without stamp: {m}"
            when = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
            assert when.tzinfo is not None, f"stamp not in UTC (XEP-0082): {stamp}"
            now = datetime.datetime.now(datetime.timezone.utc)
            assert t0 - datetime.timedelta(seconds=5) <= when <= now + \
                datetime.timedelta(seconds=5), f"stamp {stamp} outside [{t0}, {now}]"
            assert d.get("from") in (None, srv.domain), f"delay from={d.get('from')}"
        # delivered once: not again at the next login
        await xmpp.logout(c)
        c2 = await xmpp.login(cu, cp, resource="again")
        await ping(c2, srv)
        await asyncio.sleep(1.5)
        again = [m["body"] for m in c2.inbox["message"]]
        assert not again, f"offline messages delivered twice: {again}"
    xmpp.run(body(), 60)


def test_offline_messages_wait_for_initial_presence(srv, xmpp, alive):
    """XEP-0160 section 3: stored messages are delivered when the recipient sends
    (non-negative) available presence, not merely at binding."""
    (au, ap), (cu, cp) = srv.new_users(2, prefix="offp")

    async def body():
        a = await xmpp.login(au, ap)
        a.send_message(mto=f"{cu}@{srv.domain}", mbody="stored", mtype="chat")
        await ping(a, srv)
        c = await xmpp.login(cu, cp, presence=False, roster=False)
        await ping(c, srv)
        await asyncio.sleep(1.0)
        assert not c.inbox["message"], "offline message delivered before initial presence"
        c.send_presence()
        await c.wait_message(body="stored")
    xmpp.run(body(), 30)


def test_message_to_nonexistent_user(srv, xmpp, alive):
    """RFC 6121 8.5.1; issue 4: an error, <service-unavailable/>, with the stanza's id."""
    (au, ap), = srv.new_users(1, prefix="nx")
    nobody = f"nobody-{int(time.time())}@{srv.domain}"

    async def body():
        a = await xmpp.login(au, ap)
        m = a.make_message(mto=nobody, mbody="anyone there?", mtype="chat")
        m["id"] = "nx-1"
        m.send()
        e = await a.wait_message(mtype="error")
        assert str(e["from"]) == nobody, e
        assert e["id"] == "nx-1", e
        assert error_condition(e) == ("cancel", "service-unavailable"), str(e)
        # an iq to the nonexistent account: service-unavailable too (8.5.1)
        r = await a.iq(nobody, "<query xmlns='jabber:iq:version'/>")
        assert r["type"] == "error" and error_condition(r)[1] == "service-unavailable", str(r)
    xmpp.run(body(), 30)


def test_groupchat_to_user_is_an_error(srv, xmpp, alive):
    """RFC 6121 8.5.2.1.1: a groupchat message to a user's bare JID is not delivered; the
    sender gets an error (SHOULD be <service-unavailable/>)."""
    (au, ap), (bu, bp) = srv.new_users(2, prefix="gc")

    async def body():
        a = await xmpp.login(au, ap)
        b = await xmpp.login(bu, bp)
        a.send_message(mto=b.boundjid.bare, mbody="not a room", mtype="groupchat")
        e = await a.wait_message(mtype="error")
        assert error_condition(e)[1] == "service-unavailable", str(e)
        a.send_message(mto=b.boundjid.full, mbody="sentinel", mtype="chat")
        await b.wait_message(body="sentinel")
        assert not [m for m in b.inbox["message"] if m["body"] == "not a room"]
    xmpp.run(body(), 30)


# ---- rosters -------------------------------------------------------------------------------------
def test_roster_pushes_reach_every_resource(srv, xmpp, alive):
    """RFC 6121 2.1.6/2.3-2.5: a roster set by one resource is pushed to every interested
    resource (both have requested the roster), for add, update and remove."""
    (au, ap), (fu, _) = srv.new_users(2, prefix="ros")
    F = f"{fu}@{srv.domain}"

    async def body():
        a1 = await xmpp.login(au, ap, resource="one")
        a2 = await xmpp.login(au, ap, resource="two")
        first = await a1.iq(None, f"<query xmlns='{NS_ROSTER}'/>")
        ver = first.xml.find(f"{{{NS_ROSTER}}}query").get("ver")
        vers = []

        r = await a1.iq(None, f"<query xmlns='{NS_ROSTER}'><item jid='{F}' name='Friend'>"
                              f"<group>Pals</group></item></query>", itype="set")
        assert r["type"] == "result", str(r)
        for c in (a1, a2):
            p = await c.wait("roster_push", has_item(F, name="Friend", subscription="none",
                                                      groups=["Pals"]), what="push add")
            assert p["from"] in ("", c.boundjid.bare), f"push from a stranger: {p}"
            assert str(p["to"]) in ("", c.boundjid.full), f"push to someone else: {p}"
            if ver is not None:  # RFC 6121 2.6.3: pushes carry a version when versioning
                pv = p.xml.find(f"{{{NS_ROSTER}}}query").get("ver")
                assert pv, f"push without ver: {p}"
                vers.append(pv)

        r = await a2.iq(None, f"<query xmlns='{NS_ROSTER}'><item jid='{F}' name='Buddy'>"
                              f"<group>Pals</group><group>Work</group></item></query>",
                        itype="set")
        assert r["type"] == "result", str(r)
        for c in (a1, a2):
            p = await c.wait("roster_push", has_item(F, name="Buddy", groups=["Pals", "Work"]),
                             what="push update")
            if ver is not None:
                pv = p.xml.find(f"{{{NS_ROSTER}}}query").get("ver")
                assert pv and pv not in vers, f"update pushed with an old ver {pv} ({vers})"

        got = await a1.iq(None, f"<query xmlns='{NS_ROSTER}'/>")
        assert items(got).get(F, {}).get("name") == "Buddy", items(got)

        r = await a1.iq(None, f"<query xmlns='{NS_ROSTER}'><item jid='{F}' "
                              f"subscription='remove'/></query>", itype="set")
        assert r["type"] == "result", str(r)
        for c in (a1, a2):
            await c.wait("roster_push", has_item(F, subscription="remove"), what="push remove")
        got = await a2.iq(None, f"<query xmlns='{NS_ROSTER}'/>")
        assert F not in items(got), items(got)
    xmpp.run(body(), 30)


def test_roster_set_with_two_items_is_bad_request(srv, xmpp, alive):
    """RFC 6121 2.3.3: a roster set with more than one item is <bad-request/>."""
    (au, ap), = srv.new_users(1, prefix="bad")

    async def body():
        a = await xmpp.login(au, ap)
        r = await a.iq(None, f"<query xmlns='{NS_ROSTER}'><item jid='x@{srv.domain}'/>"
                             f"<item jid='y@{srv.domain}'/></query>", itype="set")
        assert r["type"] == "error" and error_condition(r)[1] == "bad-request", str(r)
    xmpp.run(body(), 30)


# ---- sessions ------------------------------------------------------------------------------------
def test_same_resource_replaces_old_session_with_conflict(srv, xmpp, alive):
    """RFC 6120 7.7.2.2; issue 4: the new session wins, the old one gets <conflict/>."""
    (au, ap), (bu, bp) = srv.new_users(2, prefix="cfl")

    async def body():
        old = await xmpp.login(au, ap, resource="same")
        new = await xmpp.login(au, ap, resource="same")
        e = await old.wait("stream_error", timeout=10, what="<conflict/> stream error")
        assert e["condition"] == "conflict", str(e)
        await old.wait_gone(10)
        assert new.boundjid.full == f"{au}@{srv.domain}/same"
        b = await xmpp.login(bu, bp)
        b.send_message(mto=new.boundjid.full, mbody="to the new session", mtype="chat")
        await new.wait_message(body="to the new session")
    xmpp.run(body(), 30)


# ---- service discovery and ping ------------------------------------------------------------------
def test_disco_info_server(srv, xmpp, alive):
    """XEP-0030: the server is a server/im identity and lists disco#info and ping."""
    (au, ap), = srv.new_users(1, prefix="disco")

    async def body():
        a = await xmpp.login(au, ap)
        r = await a.iq(srv.domain, f"<query xmlns='{NS_DISCO_INFO}'/>")
        assert r["type"] == "result", str(r)
        qe = r.xml.find(f"{{{NS_DISCO_INFO}}}query")
        ids = {(i.get("category"), i.get("type")) for i in qe.findall(f"{{{NS_DISCO_INFO}}}identity")}
        feats = {f.get("var") for f in qe.findall(f"{{{NS_DISCO_INFO}}}feature")}
        assert ("server", "im") in ids, ids
        assert NS_DISCO_INFO in feats, feats
        assert "urn:xmpp:ping" in feats, feats
    xmpp.run(body(), 30)


def test_disco_info_own_account(srv, xmpp, alive):
    """XEP-0030 / issue 4: an account answers disco#info (identity account/registered)."""
    (au, ap), = srv.new_users(1, prefix="dacc")

    async def body():
        a = await xmpp.login(au, ap)
        r = await a.iq(a.boundjid.bare, f"<query xmlns='{NS_DISCO_INFO}'/>")
        assert r["type"] == "result", str(r)
        qe = r.xml.find(f"{{{NS_DISCO_INFO}}}query")
        ids = {(i.get("category"), i.get("type")) for i in qe.findall(f"{{{NS_DISCO_INFO}}}identity")}
        assert ("account", "registered") in ids, ids
    xmpp.run(body(), 30)


def test_ping_server(srv, xmpp, alive):
    """XEP-0199: a ping to the server is answered with an empty result; slixmpp's own
    ping helper succeeds too."""
    (au, ap), = srv.new_users(1, prefix="ping")

    async def body():
        a = await xmpp.login(au, ap)
        r = await a.iq(srv.domain, "<ping xmlns='urn:xmpp:ping'/>")
        assert r["type"] == "result", str(r)
        assert r["from"] == srv.domain or str(r["from"]) == srv.domain
        rtt = await a["xep_0199"].ping(jid=srv.domain, timeout=5)
        assert rtt is not None
    xmpp.run(body(), 30)


def test_unknown_iq_to_server_is_service_unavailable(srv, xmpp, alive):
    """RFC 6120 8.4: an iq get with a payload nobody understands."""
    (au, ap), = srv.new_users(1, prefix="unk")

    async def body():
        a = await xmpp.login(au, ap)
        r = await a.iq(srv.domain, "<query xmlns='urn:example:nothing-here'/>")
        assert r["type"] == "error", str(r)
        assert error_condition(r)[1] == "service-unavailable", str(r)
    xmpp.run(body(), 30)


# ---- more routing and subscription rules -----------------------------------------------------------
def test_extension_elements_pass_through_intact(srv, xmpp, alive):
    """Payloads the server does not know are routed as they are (with their namespaces,
    attributes and escaped text)."""
    (au, ap), (bu, bp) = srv.new_users(2, prefix="ext")

    async def body():
        a = await xmpp.login(au, ap)
        b = await xmpp.login(bu, bp)
        m = a.make_message(mto=b.boundjid.full, mbody="with payload", mtype="chat")
        m["thread"] = "thread-1"
        from slixmpp.xmlstream import ET
        m.append(ET.fromstring("<x xmlns='urn:example:custom' a='1 &amp; &quot;2&quot;'>"
                               "<y>z &lt;tag&gt;</y><empty/></x>"))
        m.append(ET.fromstring("<active xmlns='http://jabber.org/protocol/chatstates'/>"))
        m.send()
        got = await b.wait_message(body="with payload")
        assert got["thread"] == "thread-1"
        x = got.xml.find("{urn:example:custom}x")
        assert x is not None, str(got)
        assert x.get("a") == '1 & "2"'
        assert x.findtext("{urn:example:custom}y") == "z <tag>"
        assert x.find("{urn:example:custom}empty") is not None
        assert got.xml.find("{http://jabber.org/protocol/chatstates}active") is not None
    xmpp.run(body(), 30)


def test_headline_to_bare_jid_reaches_all_nonnegative_resources(srv, xmpp, alive):
    """RFC 6121 8.5.2.1.1: a headline to the bare JID goes to every available resource
    with non-negative priority (and not to negative ones)."""
    (au, ap), (bu, bp) = srv.new_users(2, prefix="head")

    async def body():
        a = await xmpp.login(au, ap)
        r1 = await xmpp.login(bu, bp, resource="r1", priority=1)
        r2 = await xmpp.login(bu, bp, resource="r2", priority=0)
        neg = await xmpp.login(bu, bp, resource="neg", priority=-1)
        await ping(neg, srv)
        a.send_message(mto=r1.boundjid.bare, mbody="news", mtype="headline")
        await r1.wait_message(body="news")
        await r2.wait_message(body="news")
        a.send_message(mto=neg.boundjid.full, mbody="sentinel", mtype="chat")
        await neg.wait_message(body="sentinel")
        assert not [m for m in neg.inbox["message"] if m["body"] == "news"], \
            "a negative-priority resource got a bare-JID headline"
    xmpp.run(body(), 30)


def test_negative_priority_gets_no_bare_jid_chat(srv, xmpp, alive):
    """RFC 6121 8.5.2.1.1: never to a resource with negative priority. With no other
    resource the message is stored (then delivered once the priority is non-negative,
    XEP-0160) or bounced."""
    (au, ap), (bu, bp) = srv.new_users(2, prefix="neg")

    async def body():
        a = await xmpp.login(au, ap)
        b = await xmpp.login(bu, bp, resource="only", priority=-5)
        await ping(b, srv)
        a.send_message(mto=b.boundjid.bare, mbody="to the bare jid", mtype="chat")
        await ping(a, srv)
        a.send_message(mto=b.boundjid.full, mbody="sentinel", mtype="chat")
        await b.wait_message(body="sentinel")
        assert not [m for m in b.inbox["message"] if m["body"] == "to the bare jid"], \
            "a negative-priority resource got a bare-JID chat message"
        bounced = [m for m in a.inbox["message"] if m["type"] == "error"]
        if bounced:
            return
        # stored: it must reach the user when a resource is available with a
        # non-negative priority (this one after a priority change, or a new login)
        b.send_presence(ppriority=1)
        try:
            await b.wait_message(body="to the bare jid", timeout=2)
        except AssertionError:
            b2 = await xmpp.login(bu, bp, resource="second")
            await b2.wait_message(body="to the bare jid", timeout=10)
    xmpp.run(body(), 30)


def test_client_cannot_set_subscription_state(srv, xmpp, alive):
    """RFC 6121 2.1.2.5 / 2.3.2: a roster set may not change the subscription (the server
    ignores anything but 'remove'), so nobody gets presence without approval."""
    (au, ap), (bu, bp) = srv.new_users(2, prefix="forge")
    B = f"{bu}@{srv.domain}"

    async def body():
        a = await xmpp.login(au, ap)
        r = await a.iq(None, f"<query xmlns='{NS_ROSTER}'><item jid='{B}' subscription='both'/>"
                             f"</query>", itype="set")
        if r["type"] == "result":
            push = await a.wait("roster_push", has_item(B), what="the push")
            assert items(push)[B]["subscription"] == "none", str(push)
        b = await xmpp.login(bu, bp, status="secret status")
        b.send_presence(pstatus="changed status")
        b.send_message(mto=a.boundjid.full, mbody="sentinel", mtype="chat")
        await a.wait_message(body="sentinel")
        leaked = [str(p) for p in a.inbox["presence"] if p["from"].bare == B]
        assert not leaked, f"presence leaked without a subscription: {leaked}"
    xmpp.run(body(), 30)


def test_unsubscribe_and_cancel(srv, xmpp, alive):
    """RFC 6121 3.2 (cancel: 'unsubscribed') and 3.3 (unsubscribe): roster states
    follow, and the side that loses the subscription gets unavailable presence."""
    (au, ap), (bu, bp) = srv.new_users(2, prefix="unsub")
    A, B = f"{au}@{srv.domain}", f"{bu}@{srv.domain}"

    async def body():
        a = await xmpp.login(au, ap, resource="a")
        b = await xmpp.login(bu, bp, resource="b")
        await befriend(srv, a, b)
        # 3.3: alice unsubscribes from bob's presence
        a.send_presence(pto=B, ptype="unsubscribe")
        await a.wait("roster_push", has_item(B, subscription="from"), what="push from")
        await b.wait_presence(frm=A, ptype="unsubscribe")
        await b.wait("roster_push", has_item(A, subscription="to"), what="push to")
        # from now on bob's presence no longer reaches alice
        b.send_presence(pstatus="bob after unsubscribe")
        b.send_message(mto=a.boundjid.full, mbody="sentinel 1", mtype="chat")
        await a.wait_message(body="sentinel 1")
        assert not [p for p in a.inbox["presence"] if p["status"] == "bob after unsubscribe"], \
            "presence still broadcast after unsubscribe"
        # 3.2: alice cancels the subscription she granted bob; while bob is still
        # subscribed, alice's server sends him unavailable from her online resources
        a.send_presence(pto=B, ptype="unsubscribed")
        await a.wait("roster_push", has_item(B, subscription="none"), what="push none")
        await b.wait_presence(frm=A, ptype="unsubscribed")
        await b.wait("roster_push", has_item(A, subscription="none"), what="push none")
        await b.wait_presence(frm=f"{A}/a", ptype="unavailable",
                              what="unavailable from alice after the cancel")
        # no more presence between them
        a.send_presence(pstatus="after all that")
        a.send_message(mto=b.boundjid.full, mbody="sentinel", mtype="chat")
        await b.wait_message(body="sentinel")
        assert not [p for p in b.inbox["presence"] if p["status"] == "after all that"]
    xmpp.run(body(), 30)


def test_roster_versioning_unchanged(srv, xmpp, alive):
    """RFC 6121 2.6.3: a roster get carrying the current version is answered with an
    empty result (or the changes as pushes), not a full roster."""
    (au, ap), (fu, _) = srv.new_users(2, prefix="rver")

    async def body():
        a = await xmpp.login(au, ap)
        r = await a.iq(None, f"<query xmlns='{NS_ROSTER}'><item jid='{fu}@{srv.domain}'/></query>",
                       itype="set")
        assert r["type"] == "result"
        full = await a.iq(None, f"<query xmlns='{NS_ROSTER}' ver=''/>")
        ver = full.xml.find(f"{{{NS_ROSTER}}}query").get("ver")
        if ver is None:
            pytest.skip("the server does not version rosters")
        again = await a.iq(None, f"<query xmlns='{NS_ROSTER}' ver='{ver}'/>")
        assert again["type"] == "result"
        qe = again.xml.find(f"{{{NS_ROSTER}}}query")
        assert qe is None or not qe.findall(f"{{{NS_ROSTER}}}item"), \
            f"full roster sent although the version is current: {again}"
    xmpp.run(body(), 30)


def test_subscription_request_to_offline_user_is_kept(srv, xmpp, alive):
    """RFC 6121 3.1.3: a subscription request for a contact with no available resource
    is kept and delivered when the contact comes online; the approval then reaches the
    requester, whose roster says 'to'."""
    (au, ap), (cu, cp) = srv.new_users(2, prefix="offsub")
    A, C = f"{au}@{srv.domain}", f"{cu}@{srv.domain}"

    async def body():
        a = await xmpp.login(au, ap, resource="a")
        a.send_presence(pto=C, ptype="subscribe")
        await a.wait("roster_push", has_item(C, ask="subscribe"), what="pending push")
        await ping(a, srv)
        c = await xmpp.login(cu, cp, resource="c")
        await c.wait_presence(frm=A, ptype="subscribe", what="the stored request")
        c.send_presence(pto=A, ptype="subscribed")
        await a.wait_presence(frm=C, ptype="subscribed")
        await a.wait("roster_push", has_item(C, subscription="to"), what="push to")
        await a.wait_presence(frm=f"{C}/c", pred=available, what="c's presence")
    xmpp.run(body(), 30)


def test_offline_storage_keeps_chat_not_headline(srv, xmpp, alive):
    """XEP-0160 section 3: headlines are not stored offline (SHOULD NOT); chat and normal
    messages are."""
    (au, ap), (cu, cp) = srv.new_users(2, prefix="offh")

    async def body():
        a = await xmpp.login(au, ap)
        C = f"{cu}@{srv.domain}"
        a.send_message(mto=C, mbody="stored chat", mtype="chat")
        a.send_message(mto=C, mbody="headline news", mtype="headline")
        a.send_message(mto=C, mbody="stored normal", mtype="normal")
        await ping(a, srv)
        c = await xmpp.login(cu, cp)
        await c.wait_message(body="stored chat")
        await c.wait_message(body="stored normal")
        await ping(c, srv)
        await asyncio.sleep(0.5)
        assert not [m for m in c.inbox["message"] if m["body"] == "headline news"], \
            "a headline was stored offline"
    xmpp.run(body(), 30)


def test_presence_reaches_the_users_other_resources(srv, xmpp, alive):
    """RFC 6121 4.2.2 / 4.4.2: presence of one resource is broadcast to the user's other
    available resources."""
    (au, ap), = srv.new_users(1, prefix="own")

    async def body():
        a1 = await xmpp.login(au, ap, resource="one", status="first")
        a2 = await xmpp.login(au, ap, resource="two", status="second")
        p = await a1.wait_presence(frm=a2.boundjid.full, pred=available,
                                   what="the other resource's initial presence")
        assert p["status"] == "second"
        a2.send_presence(pstatus="second, updated")
        await a1.wait_presence(frm=a2.boundjid.full,
                               pred=lambda s: s["status"] == "second, updated")
        await xmpp.logout(a2)
        await a1.wait_presence(frm=a2.boundjid.full, ptype="unavailable")
    xmpp.run(body(), 30)
