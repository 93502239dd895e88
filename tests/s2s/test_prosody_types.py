"""Partner types (SPEC section 4, issue 6) with a real Prosody 0.12 user on the other side:
a.test sets p.test's type; pat and pam are Prosody users, alice and bob fedgate users.
Skipped when prosody is not installed."""
import contextlib
import time

import pytest

from prosody import PW, ProsodyNode, require_prosody

NS_CLIENT = "{jabber:client}"
APW = "pw-alice-Secret"


@contextlib.contextmanager
def prosody_pair(kit, tmp_path_factory, pki, dns):
    require_prosody()
    a = kit.Node(tmp_path_factory.mktemp("a"), "a.test", pki, dns)
    a.ok("partner", "new", "p.test", "--type", "public-unverified")
    for u in ("alice", "bob"):
        a.add_user(u, APW)
    p = ProsodyNode(kit, tmp_path_factory.mktemp("prosody"), pki, dns, "cert")
    p.add_user("pam", PW)
    p.start()
    a.start()
    try:
        yield a, p
    finally:
        p.stop()
        problems = a.stop()
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


def set_type(a, t, timeout=10):
    marker = "event=config-change"
    count = lambda: sum(1 for l in a.log().splitlines() if marker in l and "partner=p.test" in l)
    before = count()
    a.ok("partner", "set", "p.test", "--type", t)
    deadline = time.monotonic() + timeout
    while count() <= before:
        assert time.monotonic() < deadline, f"--type {t} not loaded:\n{a.log()[-2000:]}"
        time.sleep(0.1)


def links(a):
    deadline = time.monotonic() + 10
    while True:
        doc = a.status("p.test")
        st = sorted((s["direction"], s["since"]) for s in doc["partners"][0]["streams"]
                    if s["state"] == "established")
        if {d for d, _ in st} == {"in", "out"}:
            return st
        assert time.monotonic() < deadline, doc
        time.sleep(0.5)


def available(s):
    return s.xml.get("type") is None


def test_partner_types_with_prosody(kit, tmp_path_factory, pki, dns):
    from slix import Harness
    with prosody_pair(kit, tmp_path_factory, pki, dns) as (a, p):
        h = Harness(a)
        try:
            async def run():
                h.srv = a
                alice = await h.login("alice", APW, status="busy here")
                h.srv = p
                pat = await h.login("pat", PW)
                # public-unverified: a message from a contact alice has not added
                pat.send_message(mto="alice@a.test", mbody="psst", mtype="chat")
                e1 = await pat.wait_message(mtype="error", timeout=25)
                pat.send_message(mto="nobody@a.test", mbody="psst", mtype="chat")
                e2 = await pat.wait_message(mtype="error", timeout=10)
                import xml.etree.ElementTree as ET
                x1 = ET.tostring(e1.xml.find(NS_CLIENT + "error"))
                x2 = ET.tostring(e2.xml.find(NS_CLIENT + "error"))
                assert x1 == x2, (str(e1), str(e2))
                assert b"service-unavailable" in x1 and b'type="cancel"' in x1, x1
                assert not alice.inbox["message"], alice.inbox["message"]
                assert "event=s2s-refused-stanza" in a.log() and "psst" not in a.log()
                # the request is held for alice
                pat.send_presence(pto="alice@a.test", ptype="subscribe")
                await alice.wait_presence(frm="pat@p.test", ptype="subscribe", timeout=10)
                try:
                    s = await pat.wait_presence(frm="alice@a.test", ptype="subscribed",
                                                timeout=3)
                    raise AssertionError(f"not held: {s}")
                except AssertionError as e:
                    if "not held" in str(e):
                        raise
                alice.send_presence(pto="pat@p.test", ptype="subscribed")
                await pat.wait_presence(frm="alice@a.test", ptype="subscribed", timeout=10)
                pr = await pat.wait_presence(frm="alice@a.test", pred=available, timeout=10)
                assert pr.xml.find(NS_CLIENT + "status") is None, str(pr)
                before = links(a)

                # federated, with the link up: status text, and automatic approval
                set_type(a, "federated")
                alice.send_presence(pstatus="now federated")
                pr = await pat.wait_presence(frm="alice@a.test", pred=available, timeout=10)
                assert pr["status"] == "now federated", str(pr)
                pam = await h.login("pam", PW)
                pam.send_presence(pto="alice@a.test", ptype="subscribe")
                await pam.wait_presence(frm="alice@a.test", ptype="subscribed", timeout=10)
                pam.send_message(mto="alice@a.test", mbody="hi from pam", mtype="chat")
                await alice.wait_message(body="hi from pam", timeout=10)
                assert not [s for s in alice.inbox["presence"] if s["type"] == "subscribe"
                            and s["from"].bare == "pam@p.test"]

                # public-verified: status stripped, messages from strangers delivered
                set_type(a, "public-verified")
                alice.send_presence(pstatus="verified now")
                pr = await pat.wait_presence(frm="alice@a.test", pred=available, timeout=10)
                assert pr.xml.find(NS_CLIENT + "status") is None, str(pr)
                h.srv = a
                bob = await h.login("bob", APW)
                pat.send_message(mto="bob@a.test", mbody="hello bob", mtype="chat")
                await bob.wait_message(body="hello bob", timeout=10)
                assert links(a) == before
            h.run(run(), 110)
        finally:
            h.close()
