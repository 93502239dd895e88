"""Partner types (SPEC section 4, issue 6) between two fedgated instances: a.test sets the
type of its partner b.test; b.test treats a.test as federated, so whatever differs is a.test's
doing. For each type: a subscription request from b's user to a's user (approved
automatically, or held until a's user approves, unless pre-approved), a message from b's
user whom a's user has not added (delivered, or answered with <service-unavailable/>
exactly as for a nonexistent user, logged without the body and counted), status text in
presence from a's user to b's user (sent, or stripped with the rest kept), and a type changed
with fedgatectl while the link is up (the next stanza follows it, the link stays).

Expectations are SPEC section 4 written out below."""
import time

import pytest
from slixmpp.xmlstream import ET

TYPES = ("federated", "public-verified", "public-unverified")
SHORT = {"federated": "f", "public-verified": "v", "public-unverified": "u"}
# per type: s = subscriptions, m = messages, t = status text; p/q: pre-approval (unverified)
USERS = [f"{k}{s}" for k in ("s", "m", "t") for s in SHORT.values()] + ["p", "q", "chg", "ul"]
PW = "pw-Types-Secret"
NS_CLIENT = "{jabber:client}"
NS_ROSTER = "{jabber:iq:roster}"
LINK_WAIT = 20  # first stanza over a new link: DNS, TLS, SASL EXTERNAL
QUIET = 3       # how long "nothing arrives" is watched


@pytest.fixture(scope="module")
def nodes(kit, tmp_path_factory, pki, dns):
    """Overrides the conftest pair: same two daemons, more users."""
    a = kit.Node(tmp_path_factory.mktemp("ta"), "a.test", pki, dns)
    b = kit.Node(tmp_path_factory.mktemp("tb"), "b.test", pki, dns)
    a.ok("partner", "new", "b.test", "--type", "federated")
    b.ok("partner", "new", "a.test", "--type", "federated")
    for n in (a, b):
        for u in USERS:
            n.add_user(u, PW)
    a.start()
    b.start()
    a.current_type = "federated"
    yield a, b
    kit.stop_all((a, b))


def set_type(a, t, timeout=10):
    """Sets a.test's type for b.test and waits until the daemon has loaded it."""
    if a.current_type == t:
        return
    marker = "event=config-change"
    before = sum(1 for l in a.log().splitlines() if marker in l and "partner=b.test" in l)
    a.ok("partner", "set", "b.test", "--type", t)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = sum(1 for l in a.log().splitlines() if marker in l and "partner=b.test" in l)
        if n > before:
            a.current_type = t
            return
        time.sleep(0.1)
    raise AssertionError(f"a.test did not load --type {t} within {timeout}s:\n{a.log()[-2000:]}")


async def login(xmpp, node, user, **kw):
    xmpp.srv = node
    return await xmpp.login(user, PW, **kw)


def roster_item(jid, **want):
    def pred(iq):
        for it in iq.xml.iter(NS_ROSTER + "item"):
            if it.get("jid") == jid and all(it.get(k, "none" if k == "subscription" else None)
                                            == v for k, v in want.items()):
                return True
        return False
    return pred


def error_element(st):
    err = st.xml.find(NS_CLIENT + "error")
    assert err is not None, f"no <error/> in {st}"
    return ET.tostring(err)


def refused_count(a):
    doc = a.status("b.test")
    return doc["partners"][0]["refused_stanzas"]


def established(a):
    """(direction, since) of a.test's established streams with b.test."""
    doc = a.status("b.test")
    return sorted((s["direction"], s["since"]) for s in doc["partners"][0]["streams"]
                  if s["state"] == "established")


async def quiet(xmpp_client, kind, pred, seconds=QUIET):
    """Asserts that nothing matching pred arrives within seconds."""
    try:
        s = await xmpp_client.wait(kind, pred, timeout=seconds)
    except AssertionError:
        return
    raise AssertionError(f"{xmpp_client.boundjid}: unexpected {kind}: {s}")


# ---- subscriptions ---------------------------------------------------------------------

@pytest.mark.parametrize("ptype", TYPES)
def test_subscription_request(nodes, xmpp, ptype):
    """SPEC 4 row 1: approved automatically (subscribed answered, item pushed with 'from',
    the local user not subscribed back), or held for the local user."""
    a, b = nodes
    set_type(a, ptype)
    u = "s" + SHORT[ptype]
    A, B = f"{u}@a.test", f"{u}@b.test"

    async def run():
        ca = await login(xmpp, a, u)
        cb = await login(xmpp, b, u)
        cb.send_presence(pto=A, ptype="subscribe")
        if ptype != "public-unverified":
            await cb.wait_presence(frm=A, ptype="subscribed", timeout=LINK_WAIT,
                                   what="automatic 'subscribed'")
            await ca.wait("roster_push", roster_item(B, subscription="from"),
                          what=f"push {B} from")
            # a's available presence follows the approval (RFC 6121 3.1.5)
            await cb.wait_presence(frm=A, pred=lambda s: s.xml.get("type") in (None, ""))
            # the user was not asked, and not subscribed back
            await quiet(ca, "presence", lambda s: s["type"] == "subscribe", 1)
            await quiet(cb, "presence", lambda s: s["type"] == "subscribe", 1)
        else:
            await ca.wait_presence(frm=B, ptype="subscribe", timeout=LINK_WAIT,
                                   what="the held request")
            await quiet(cb, "presence", lambda s: s["type"] == "subscribed")
            ca.send_presence(pto=B, ptype="subscribed")
            await cb.wait_presence(frm=A, ptype="subscribed", timeout=10)
            await ca.wait("roster_push", roster_item(B, subscription="from"),
                          what=f"push {B} from")
    xmpp.run(run(), 90)


def test_subscription_pre_approved_public_unverified(nodes, xmpp):
    """public-unverified, pre-approved (RFC 6121 3.4 'approved', and a subscription 'to'
    of the local user): approved without asking."""
    a, b = nodes
    set_type(a, "public-unverified")

    async def run():
        ca = await login(xmpp, a, "p")
        cb = await login(xmpp, b, "p")
        # RFC 6121 3.4 pre-approval
        ca.send_presence(pto="p@b.test", ptype="subscribed")
        await ca.wait("roster_push", roster_item("p@b.test", approved="true"),
                      what="push approved")
        cb.send_presence(pto="p@a.test", ptype="subscribe")
        await cb.wait_presence(frm="p@a.test", ptype="subscribed", timeout=LINK_WAIT)
        await ca.wait("roster_push", roster_item("p@b.test", subscription="from"),
                      what="push from")
        await quiet(ca, "presence", lambda s: s["type"] == "subscribe", 1)

        # the local user's own subscription ('to'): b.test (federated for a.test) approves
        cq = await login(xmpp, a, "q")
        cbq = await login(xmpp, b, "q")
        cq.send_presence(pto="q@b.test", ptype="subscribe")
        await cq.wait_presence(frm="q@b.test", ptype="subscribed", timeout=LINK_WAIT)
        await cq.wait("roster_push", roster_item("q@b.test", subscription="to"), what="push to")
        cbq.send_presence(pto="q@a.test", ptype="subscribe")
        await cbq.wait_presence(frm="q@a.test", ptype="subscribed", timeout=10)
        await cq.wait("roster_push", roster_item("q@b.test", subscription="both"),
                      what="push both")
        await quiet(cq, "presence", lambda s: s["type"] == "subscribe", 1)
    xmpp.run(run(), 90)


# ---- messages from contacts the local user has not added ------------------------------

@pytest.mark.parametrize("ptype", TYPES)
def test_message_from_contact_not_added(nodes, xmpp, ptype):
    a, b = nodes
    set_type(a, ptype)
    u = "m" + SHORT[ptype]
    A, B = f"{u}@a.test", f"{u}@b.test"
    body = f"secret body {ptype} 7f3a"

    async def run():
        ca = await login(xmpp, a, u)
        cb = await login(xmpp, b, u)
        refused_before = refused_count(a)
        cb.send_message(mto=A, mbody=body, mtype="chat")
        if ptype != "public-unverified":
            m = await ca.wait_message(body=body, frm=None, timeout=LINK_WAIT)
            assert m["from"].bare == B
            await quiet(cb, "message", lambda s: s["type"] == "error", 1)
            return
        e1 = await cb.wait_message(mtype="error", timeout=LINK_WAIT)
        # the same message to a user that does not exist at a.test
        cb.send_message(mto="nobody-here@a.test", mbody=body, mtype="chat")
        e2 = await cb.wait_message(mtype="error", timeout=10)
        assert error_element(e1) == error_element(e2), (str(e1), str(e2))
        err = e1.xml.find(NS_CLIENT + "error")
        assert err.get("type") == "cancel"
        conds = [c.tag for c in err]
        assert conds == ["{urn:ietf:params:xml:ns:xmpp-stanzas}service-unavailable"], conds
        assert str(e1["from"]) == A and str(e2["from"]) == "nobody-here@a.test"
        # the same stanza shape otherwise
        strip = lambda s: sorted((k, v) for k, v in s.xml.attrib.items()
                                 if k not in ("from", "id"))
        assert strip(e1) == strip(e2)
        assert [c.tag for c in e1.xml] == [c.tag for c in e2.xml]
        await quiet(ca, "message", lambda s: True, 1)
        # the real reason in the log, without the body; counted for the partner
        line = next((l for l in a.log().splitlines() if "event=s2s-refused-stanza" in l
                     and f"from={B}" in l), None)
        assert line, a.log()[-3000:]
        assert "partner=b.test" in line and "rule=partner-type" in line, line
        assert f"to={A}" in line, line
        assert body not in a.log() and "7f3a" not in a.log()
        deadline = time.monotonic() + 10
        while refused_count(a) < refused_before + 1 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert refused_count(a) == refused_before + 1
        # once a's user has added the contact, messages are delivered
        ca.send_presence(pto=B, ptype="subscribe")
        await ca.wait("roster_push", roster_item(B, ask="subscribe"), what="push ask")
        cb.send_message(mto=A, mbody="now added", mtype="chat")
        await ca.wait_message(body="now added", timeout=10)
    xmpp.run(run(), 90)


# ---- status text --------------------------------------------------------------------

@pytest.mark.parametrize("ptype", TYPES)
def test_status_text(nodes, xmpp, ptype):
    """Status text reaches federated partners only; show and priority are kept. Directed
    presence, and the answer to a probe after a subscription."""
    a, b = nodes
    set_type(a, ptype)
    u = "t" + SHORT[ptype]
    A, B = f"{u}@a.test", f"{u}@b.test"
    text = f"in a meeting ({ptype})"
    keep = ptype == "federated"

    def check(p):
        st = p.xml.findall(NS_CLIENT + "status")
        if keep:
            assert [s.text for s in st] == [text], str(p)
        else:
            assert st == [], f"status text leaked to a {ptype} partner: {p}"
        assert p.xml.findtext(NS_CLIENT + "show") == "away", str(p)
        assert p.xml.findtext(NS_CLIENT + "priority") == "3", str(p)

    async def run():
        ca = await login(xmpp, a, u, presence=False)
        cb = await login(xmpp, b, u)
        # directed presence
        ca.send_presence(pto=B, pshow="away", pstatus=text, ppriority=3)
        p = await cb.wait_presence(frm=A, pred=lambda s: s.xml.get("type") is None,
                                   timeout=LINK_WAIT)
        check(p)
        # initial presence (b's user is no contact yet), then b's user subscribes; a's user
        # approves when the type holds the request
        ca.send_presence(pshow="away", pstatus=text, ppriority=3)
        await ca.wait_presence(frm=f"{A}/{ca.boundjid.resource}", timeout=10,
                               what="own presence")
        cb.send_presence(pto=A, ptype="subscribe")
        if ptype == "public-unverified":
            await ca.wait_presence(frm=B, ptype="subscribe", timeout=10)
            ca.send_presence(pto=B, ptype="subscribed")
        await cb.wait_presence(frm=A, ptype="subscribed", timeout=10)
        # a's available presence after the approval (RFC 6121 3.1.5)
        p = await cb.wait_presence(frm=A, pred=lambda s: s.xml.get("type") is None, timeout=10,
                                   what="presence after the approval")
        check(p)
        # a new resource of b's user probes: the answer
        cb2 = await login(xmpp, b, u, resource="second")
        p = await cb2.wait_presence(frm=A, pred=lambda s: s.xml.get("type") is None,
                                    timeout=10, what="the probe's answer")
        check(p)
    xmpp.run(run(), 90)


# ---- a type change while the link is up -------------------------------------------------

def test_type_change_applies_to_the_next_stanza(nodes, xmpp):
    a, b = nodes
    set_type(a, "federated")
    A, B = "chg@a.test", "chg@b.test"

    async def run():
        ca = await login(xmpp, a, "chg")
        cb = await login(xmpp, b, "chg")
        cb.send_message(mto=A, mbody="one", mtype="chat")
        await ca.wait_message(body="one", timeout=LINK_WAIT)
        ca.send_presence(pto=B, pstatus="first")
        p = await cb.wait_presence(frm=A, pred=lambda s: s.xml.get("type") is None,
                                   timeout=LINK_WAIT)
        assert p["status"] == "first"
        deadline = time.monotonic() + 10
        links = established(a)
        while {d for d, _ in links} != {"in", "out"} and time.monotonic() < deadline:
            time.sleep(0.5)
            links = established(a)
        assert {d for d, _ in links} == {"in", "out"}, a.status("b.test")

        set_type(a, "public-unverified")
        cb.send_message(mto=A, mbody="two", mtype="chat")
        e = await cb.wait_message(mtype="error", timeout=10)
        assert "service-unavailable" in str(e)
        ca.send_presence(pto=B, pstatus="second")
        p = await cb.wait_presence(frm=A, pred=lambda s: s.xml.get("type") is None, timeout=10)
        assert p.xml.find(NS_CLIENT + "status") is None, str(p)

        set_type(a, "public-verified")
        cb.send_message(mto=A, mbody="three", mtype="chat")
        await ca.wait_message(body="three", timeout=10)
        ca.send_presence(pto=B, pstatus="third")
        p = await cb.wait_presence(frm=A, pred=lambda s: s.xml.get("type") is None, timeout=10)
        assert p.xml.find(NS_CLIENT + "status") is None, str(p)

        set_type(a, "federated")
        ca.send_presence(pto=B, pstatus="fourth")
        p = await cb.wait_presence(frm=A, pred=lambda s: s.xml.get("type") is None, timeout=10)
        assert p["status"] == "fourth"
        assert not [m for m in ca.inbox["message"] if m["body"] == "two"]
        # the same streams, established since before the changes
        assert established(a) == links, (links, a.status("b.test"))
    xmpp.run(run(), 100)


# ---- unlisted domains -------------------------------------------------------------------

def wait_loaded(a, marker, timeout=10):
    deadline = time.monotonic() + timeout
    while marker not in a.log():
        assert time.monotonic() < deadline, f"not loaded: {marker}\n{a.log()[-2000:]}"
        time.sleep(0.1)


def test_unlisted_domain_gets_the_rules_of_its_type(nodes, xmpp):
    """SPEC 5: with unlisted_domains = public-unverified, a domain that is not a partner
    federates under that type: a message from a contact the local user has not added is
    answered as for a nonexistent user, and status text is stripped. Runs last: it
    removes the partner b.test from a.test."""
    a, b = nodes
    a.ok("gateway", "set", "--unlisted-domains", "public-unverified")
    wait_loaded(a, "gateway=unlisted_domains value=public-unverified")
    a.ok("partner", "remove", "b.test")
    wait_loaded(a, "partner=b.test change=removed")
    A, B = "ul@a.test", "ul@b.test"

    async def run():
        ca = await login(xmpp, a, "ul")
        cb = await login(xmpp, b, "ul")
        cb.send_message(mto=A, mbody="from an unlisted domain", mtype="chat")
        e1 = await cb.wait_message(mtype="error", timeout=LINK_WAIT)
        cb.send_message(mto="nobody-here@a.test", mbody="x", mtype="chat")
        e2 = await cb.wait_message(mtype="error", timeout=10)
        assert error_element(e1) == error_element(e2), (str(e1), str(e2))
        assert [c.tag for c in e1.xml.find(NS_CLIENT + "error")] == \
            ["{urn:ietf:params:xml:ns:xmpp-stanzas}service-unavailable"]
        await quiet(ca, "message", lambda s: True, 1)
        line = next((l for l in a.log().splitlines() if "event=s2s-refused-stanza" in l
                     and f"from={B}" in l), None)
        assert line and "partner_type=public-unverified" in line, a.log()[-3000:]
        # local users may always subscribe (b.test, to which a.test is federated, approves
        # automatically)
        ca.send_presence(pto=B, ptype="subscribe")
        await ca.wait("roster_push", roster_item(B, subscription="to"), what="push to",
                      timeout=LINK_WAIT)
        # now that she has added him, his messages arrive
        cb.send_message(mto=A, mbody="now added", mtype="chat")
        await ca.wait_message(body="now added", timeout=10)
        # her presence with status text reaches him without the text, the rest kept
        ca.send_presence(pstatus="in a meeting 51c2", pshow="dnd", pto=B)
        p = await cb.wait("presence", lambda s: s["from"].bare == A and s["show"] == "dnd",
                          timeout=10)
        assert p.xml.find(NS_CLIENT + "status") is None, str(p)
    xmpp.run(run(), 90)
