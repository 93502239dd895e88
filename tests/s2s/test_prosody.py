"""Interop with Prosody 0.12 as a partner (issue 5): fedgated's a.test and Prosody's p.test
exchange messages both ways over SASL EXTERNAL (XEP-0178), both certificates issued by the
test CA; and over dialback with TLS when Prosody does not trust our CA (TESTING.md: the
realistic self-signed partner). Skipped when prosody is not installed."""
import contextlib
import time

import pytest

from prosody import PW, ProsodyNode, require_prosody


@contextlib.contextmanager
def pair(kit, tmp_path_factory, pki, dns, mode):
    require_prosody()
    a = kit.Node(tmp_path_factory.mktemp("a"), "a.test", pki, dns)
    a.ok("partner", "new", "p.test", "--type", "federated")
    a.add_user("alice", "pw-alice-Secret")
    p = ProsodyNode(kit, tmp_path_factory.mktemp("prosody"), pki, dns, mode)
    p.start()
    a.start()
    try:
        yield a, p
    finally:
        p.stop()
        problems = a.stop()
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


def exchange(a, p):
    from slix import Harness
    h = Harness(a)
    try:
        async def run():
            h.srv = a
            ca = await h.login("alice", "pw-alice-Secret")
            h.srv = p
            cp = await h.login("pat", PW)
            ca.send_message(mto="pat@p.test", mbody="hello prosody", mtype="chat")
            await cp.wait_message(body="hello prosody", timeout=25)
            cp.send_message(mto="alice@a.test", mbody="hello fedgate", mtype="chat")
            await ca.wait_message(body="hello fedgate", timeout=25)
        h.run(run(), 80)
    finally:
        h.close()


def established(a):
    deadline = time.monotonic() + 10
    while True:
        doc = a.status("p.test")
        st = [s for s in doc["partners"][0]["streams"] if s["state"] == "established"]
        if {s["direction"] for s in st} == {"in", "out"}:
            break
        assert time.monotonic() < deadline, doc
        time.sleep(0.5)
    return st


def test_messages_with_prosody_over_sasl_external(kit, tmp_path_factory, pki, dns):
    with pair(kit, tmp_path_factory, pki, dns, "cert") as (a, p):
        exchange(a, p)
        st = established(a)
        assert all(s["auth"] == "sasl-external" and s["tls"] == "TLSv1.3" for s in st), st


def test_messages_with_prosody_over_dialback(kit, tmp_path_factory, pki, dns):
    """Prosody trusts another CA: it offers us no EXTERNAL and we dial back; a.test still
    trusts Prosody's certificate."""
    with pair(kit, tmp_path_factory, pki, dns, "dialback") as (a, p):
        exchange(a, p)
        st = established(a)
        out = [s for s in st if s["direction"] == "out"]
        assert out and all(s["auth"] == "dialback" and s["tls"] == "TLSv1.3" for s in out), st
        assert "event=s2s-auth dir=out local=a.test remote=p.test method=dialback " \
               "tls=TLSv1.3" in a.log()
