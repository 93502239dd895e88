"""The negotiation matrix on the wire against Prosody 0.12 (issue 5, SPEC sections 2 and 3):
every valid and warning row (1, 2, 3, 4, 7, 8, 9, 10, 13, 15, 17), each with the Prosody
modes it can federate with (prosody.py: "cert" = encryption required + certificate
authentication, "dialback" = encryption required + dialback (Prosody distrusts our CA),
"optional" = encryption optional, "plain" = no encryption, dialback only; and "untrusted" =
encryption required, Prosody's certificate issued by a CA a.test does not trust).

For each (row, mode) a fresh fedgated a.test gets p.test as a federated partner with that
row's TLS/SASL/dialback (the create must report exactly the row's warnings, SPEC section
2); a message and a presence subscription go both ways between alice@a.test and a fresh
Prosody user; then the established streams in `fedgatectl --json partner status p.test`
(SPEC section 7) and the `s2s-auth` log lines must show the authentication method and TLS
state below, in both directions, and nothing may have been refused. out = a.test -> p.test
(we originate), in = p.test -> a.test (Prosody originates; without XEP-0288 each direction
has its own stream).

How the expectation follows from SPEC section 3 and the Prosody mode:
- TLS is used on a stream when our setting allows it (required/optional) and Prosody can
  (every mode but "plain"); "optional" goes on in the clear only when the peer cannot.
- out: SASL EXTERNAL when TLS is on, SASL is not not-supported and Prosody offers EXTERNAL
  (it does when it trusts our CA: every mode but "dialback"); else dialback when dialback
  is true and SASL is not required; else the link is refused.
- in: over TLS we offer EXTERNAL when SASL is not not-supported and Prosody's certificate
  verifies and names p.test (every mode but "untrusted"), and Prosody always uses an
  offered EXTERNAL; else Prosody asks for dialback, accepted when dialback is true and SASL
  is not required (by certificate, XEP-0344, when it verifies; else the key is checked
  with p.test's authoritative server).

  row  TLS            SASL           dialback  verdict   Prosody mode  out               in
  1    required       required       true      W2        cert          EXTERNAL, TLS     EXTERNAL, TLS
  2    required       required       false     valid     cert          EXTERNAL, TLS     EXTERNAL, TLS
  3    optional       required       true      W1, W2    cert          EXTERNAL, TLS     EXTERNAL, TLS
  4    optional       required       false     W1        cert          EXTERNAL, TLS     EXTERNAL, TLS
  7    required       optional       true      valid     cert          EXTERNAL, TLS     EXTERNAL, TLS
  7                                                      dialback      dialback, TLS     EXTERNAL, TLS
  7                                                      untrusted     EXTERNAL, TLS     dialback, TLS
  8    required       optional       false     valid     cert          EXTERNAL, TLS     EXTERNAL, TLS
  9    optional       optional       true      valid     cert          EXTERNAL, TLS     EXTERNAL, TLS
  9                                                      dialback      dialback, TLS     EXTERNAL, TLS
  9                                                      optional      EXTERNAL, TLS     EXTERNAL, TLS
  9                                                      plain         dialback, none    dialback, none
  10   optional       optional       false     W1        cert          EXTERNAL, TLS     EXTERNAL, TLS
  13   required       not-supported  true      valid     cert          dialback, TLS     dialback, TLS
  13                                                     dialback      dialback, TLS     dialback, TLS
  13                                                     untrusted     dialback, TLS     dialback, TLS
  15   optional       not-supported  true      valid     dialback      dialback, TLS     dialback, TLS
  15                                                     optional      dialback, TLS     dialback, TLS
  15                                                     plain         dialback, none    dialback, none
  17   not-supported  not-supported  true      valid     optional      dialback, none    dialback, none
  17                                                     plain         dialback, none    dialback, none

Pairs that cannot federate (test_matrix_refused): alice's message bounces with
<remote-server-not-found/> or <remote-server-timeout/> (SPEC section 3); a.test logs
`event=s2s-refused dir=out remote=p.test rule=RULE` (SPEC section 7) and records it as
p.test's last_error; the refused stream is closed with the stream error shown, which
Prosody's log must show it received; the other direction as shown.
  row  mode       a.test -> p.test                         p.test -> a.test
  10   plain      dialback-disabled, <policy-violation/>   refused dialback-disabled (W1 on
                  (W1: Prosody declines TLS, EXTERNAL       the wire: dialback error
                  impossible, dialback false)               <not-authorized/>)
  1    dialback   sasl-required, <not-authorized/> (W2:    EXTERNAL, TLS (delivered)
                  dialback is not used although Prosody
                  offers it)
  2    dialback   sasl-required, <not-authorized/>         EXTERNAL, TLS (delivered)
  17   dialback   tls-not-supported, <policy-violation/>   refused tls-not-supported (Prosody
                  (Prosody requires STARTTLS)              insists on STARTTLS; it bounces)
  1    untrusted  sasl-required, <not-authorized/>         refused sasl-required, closed with
                  (certificate from an unknown CA)         <not-authorized/> (SPEC 3)
SPEC section 3: with SASL required, a stream that EXTERNAL cannot authenticate is closed
with <not-authorized/>, and "outbound the same rules apply"; the other refusals by policy
close with <policy-violation/> (the same expectations as test_failures.py).

test_live_tls_optional_to_required: Prosody "optional" uses TLS whenever it is offered, so
a clear link needs our TLS not-supported first (row 17). TLS optional (row 15) keeps that
link (dialback over TCP is allowed); TLS required (row 13) closes both clear streams with
<policy-violation/> (log rule=policy-changed, and Prosody's log shows the error), and the
next messages go over TLS.

Not testable against Prosody (covered between two fedgated instances and in test_s2s.c):
inbound dialback from a peer whose certificate verifies while SASL is optional or required
(Prosody always takes the EXTERNAL we offer), so W2 on an inbound stream (dialback refused
as the first authentication with SASL required) is seen here only with a certificate that
does not verify; SASL EXTERNAL failing after it was offered (Prosody's EXTERNAL always
succeeds when offered); rows 5, 6, 11, 12, 14, 16 and 18 are refused when saved and have no
wire behaviour.

Skipped when prosody is not installed. Expectations are written out here, from the SPEC."""
import contextlib
import json
import time

import pytest

from prosody import PW, ProsodyNode, require_prosody

APW = "pw-alice-Secret"
LINK_WAIT = 25   # first stanza over a new link: DNS, TLS, SASL or dialback round trips
WAIT = 10
NS_CLIENT = "{jabber:client}"
NS_STANZAS = "{urn:ietf:params:xml:ns:xmpp-stanzas}"

# SPEC section 2: row -> TLS, SASL, dialback, warnings
ROWS = {
    1: ("required", "required", True, ["W2"]),
    2: ("required", "required", False, []),
    3: ("optional", "required", True, ["W1", "W2"]),
    4: ("optional", "required", False, ["W1"]),
    7: ("required", "optional", True, []),
    8: ("required", "optional", False, []),
    9: ("optional", "optional", True, []),
    10: ("optional", "optional", False, ["W1"]),
    13: ("required", "not-supported", True, []),
    15: ("optional", "not-supported", True, []),
    17: ("not-supported", "not-supported", True, []),
}
EXT, DB = "sasl-external", "dialback"
TLS, CLEAR = "TLSv1.3", None

# (row, Prosody mode, out (auth, tls), in (auth, tls)); the table of the docstring,
# grouped by mode so that each Prosody starts once
CASES = [
    (1, "cert", (EXT, TLS), (EXT, TLS)),
    (2, "cert", (EXT, TLS), (EXT, TLS)),
    (3, "cert", (EXT, TLS), (EXT, TLS)),
    (4, "cert", (EXT, TLS), (EXT, TLS)),
    (7, "cert", (EXT, TLS), (EXT, TLS)),
    (8, "cert", (EXT, TLS), (EXT, TLS)),
    (9, "cert", (EXT, TLS), (EXT, TLS)),
    (10, "cert", (EXT, TLS), (EXT, TLS)),
    (13, "cert", (DB, TLS), (DB, TLS)),
    (7, "dialback", (DB, TLS), (EXT, TLS)),
    (9, "dialback", (DB, TLS), (EXT, TLS)),
    (13, "dialback", (DB, TLS), (DB, TLS)),
    (15, "dialback", (DB, TLS), (DB, TLS)),
    (9, "optional", (EXT, TLS), (EXT, TLS)),
    (15, "optional", (DB, TLS), (DB, TLS)),
    (17, "optional", (DB, CLEAR), (DB, CLEAR)),
    (9, "plain", (DB, CLEAR), (DB, CLEAR)),
    (15, "plain", (DB, CLEAR), (DB, CLEAR)),
    (17, "plain", (DB, CLEAR), (DB, CLEAR)),
    (7, "untrusted", (EXT, TLS), (DB, TLS)),
    (13, "untrusted", (DB, TLS), (DB, TLS)),
]

# (row, mode, (rule of the refusal of a.test -> p.test, the stream error closing it),
#  p.test -> a.test: the (auth, tls) it gets, or the rule of a.test's refusal)
REFUSED = [
    (10, "plain", ("dialback-disabled", "policy-violation"), "dialback-disabled"),
    (1, "dialback", ("sasl-required", "not-authorized"), (EXT, TLS)),
    (2, "dialback", ("sasl-required", "not-authorized"), (EXT, TLS)),
    (17, "dialback", ("tls-not-supported", "policy-violation"), "tls-not-supported"),
    (1, "untrusted", ("sasl-required", "not-authorized"), "sasl-required"),
]
IN_REFUSAL_ERROR = {"sasl-required": "not-authorized"}  # stream errors of inbound refusals
BOUNCES = ("remote-server-not-found", "remote-server-timeout")


def case_id(c):
    return f"{c[0]}-prosody-{c[1]}"


class Prosodies:
    """One Prosody at a time on p.test's address, kept for the tests of the same mode."""

    def __init__(self, kit, tmp_path_factory, pki, dns):
        self.kit, self.tmp, self.pki, self.dns = kit, tmp_path_factory, pki, dns
        self.cur = None

    def get(self, mode):
        if self.cur is not None and self.cur.mode == mode and self.cur.proc.poll() is None:
            return self.cur
        self.close()
        p = ProsodyNode(self.kit, self.tmp.mktemp(f"prosody-{mode}"), self.pki, self.dns, mode)
        p.start()
        self.cur = p
        return p

    def close(self):
        if self.cur is not None:
            self.cur.stop()
            self.cur = None


@pytest.fixture(scope="module")
def prosodies(kit, tmp_path_factory, pki, dns):
    require_prosody()
    ps = Prosodies(kit, tmp_path_factory, pki, dns)
    try:
        yield ps
    finally:
        ps.close()


@contextlib.contextmanager
def fedgate(kit, tmp_path_factory, pki, dns, row):
    """A fresh a.test with p.test as a federated partner set to the row; alice@a.test."""
    tls, sasl, db, warnings = ROWS[row]
    a = kit.Node(tmp_path_factory.mktemp(f"a-row{row}-"), "a.test", pki, dns)
    doc = json.loads(a.ok("--json", "partner", "new", "p.test", "--type", "federated",
                          "--tls", tls, "--sasl", sasl, "--dialback", str(db).lower()))
    p = doc["partner"]
    assert (p["tls"], p["sasl"], p["dialback"]) == (tls, sasl, db), doc
    assert sorted(w["rule"] for w in doc["warnings"]) == warnings, doc
    a.add_user("alice", APW)
    a.start()
    try:
        yield a
    finally:
        problems = a.stop()
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


def harness(a):
    from slix import Harness
    return Harness(a)


def available(s):
    return s.xml.get("type") is None


def error_condition(stanza):
    e = stanza.xml.find(NS_CLIENT + "error")
    assert e is not None, str(stanza)
    for c in e:
        if c.tag.startswith(NS_STANZAS) and c.tag != NS_STANZAS + "text":
            return c.tag[len(NS_STANZAS):]
    raise AssertionError(f"no condition in {stanza}")


def exchange(h, a, p, pat, tag):
    """A message each way, then alice subscribes to pat (pat approves) and pat subscribes
    to alice (approved automatically: p.test is federated, SPEC section 4); each side then
    sees the other's presence."""
    pjid = f"{pat}@p.test"

    async def run():
        h.srv = a
        ca = await h.login("alice", APW)
        h.srv = p
        cp = await h.login(pat, PW)
        ca.send_message(mto=pjid, mbody=f"to prosody {tag}", mtype="chat")
        await cp.wait_message(body=f"to prosody {tag}", timeout=LINK_WAIT)
        cp.send_message(mto="alice@a.test", mbody=f"to fedgate {tag}", mtype="chat")
        await ca.wait_message(body=f"to fedgate {tag}", timeout=LINK_WAIT)

        ca.send_presence(pto=pjid, ptype="subscribe")
        await cp.wait_presence(frm="alice@a.test", ptype="subscribe", timeout=WAIT)
        cp.send_presence(pto="alice@a.test", ptype="subscribed")
        await ca.wait_presence(frm=pjid, ptype="subscribed", timeout=WAIT)
        await ca.wait_presence(frm=pjid, pred=available, timeout=WAIT,
                               what=f"available presence of {pjid}")

        cp.send_presence(pto="alice@a.test", ptype="subscribe")
        await cp.wait_presence(frm="alice@a.test", ptype="subscribed", timeout=WAIT)
        await cp.wait_presence(frm="alice@a.test", pred=available, timeout=WAIT,
                               what="available presence of alice@a.test")
    h.run(run(), 100)


def streams(doc):
    parts = [x for x in doc["partners"] if x["domain"] == "p.test"]
    return [s for s in parts[0]["streams"] if s["state"] == "established"] if parts else []


def wait_streams(a, dirs, timeout=10):
    """The established streams of p.test once every direction in dirs has one."""
    deadline = time.monotonic() + timeout
    while True:
        doc = a.status("p.test")
        st = streams(doc)
        if set(dirs) <= {s["direction"] for s in st}:
            return doc, st
        assert time.monotonic() < deadline, f"no established {dirs} streams: {doc}"
        time.sleep(0.3)


def check_streams(a, want, timeout=10):
    """want: direction -> (auth, tls). The established streams in `partner status` (the
    daemon writes it every second: waited for) and the s2s-auth log lines must say so."""
    def matches(st):
        for d, exp in want.items():
            got = [(s["auth"], s["tls"]) for s in st if s["direction"] == d]
            if not got or any(g != exp for g in got):
                return False
        return True

    deadline = time.monotonic() + timeout
    while True:
        doc = a.status("p.test")
        st = streams(doc)
        if matches(st) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert doc["daemon"]["running"] is True, doc
    for d, (auth, tls) in want.items():
        ds = [s for s in st if s["direction"] == d]
        got = [(s["auth"], s["tls"]) for s in ds]
        assert got and all(g == (auth, tls) for g in got), \
            f"{d}: expected {auth} over {tls or 'TCP'}, status has {got}: {doc}"
        assert all(s["local_domain"] == "a.test" and s["remote_domain"] == "p.test"
                   for s in ds), ds
        line = (f"event=s2s-auth dir={d} local=a.test remote=p.test method={auth} "
                f"tls={tls or 'none'}")
        assert line in a.log(), f"missing `{line}`:\n{a.log()[-3000:]}"
    return st


def wait_log(node, text, timeout=10, start=0):
    """Waits until node's log (from offset start) has text."""
    deadline = time.monotonic() + timeout
    while text not in node.log()[start:]:
        assert time.monotonic() < deadline, f"`{text}` not logged:\n{node.log()[start:][-3000:]}"
        time.sleep(0.2)


@pytest.mark.parametrize("row,mode,out,inn", CASES, ids=[case_id(c) for c in CASES])
def test_matrix_row(kit, tmp_path_factory, pki, dns, prosodies, row, mode, out, inn):
    p = prosodies.get(mode)
    pat = f"pat{row}{mode}"
    p.add_user(pat, PW)
    with fedgate(kit, tmp_path_factory, pki, dns, row) as a:
        h = harness(a)
        try:
            exchange(h, a, p, pat, f"row {row} {mode}")
        finally:
            h.close()
        check_streams(a, {"out": out, "in": inn})
        refused = [l for l in a.log().splitlines() if "event=s2s-refused" in l]
        assert not refused, refused


@pytest.mark.parametrize("row,mode,out_refusal,inbound", REFUSED,
                         ids=[case_id(c) for c in REFUSED])
def test_matrix_refused(kit, tmp_path_factory, pki, dns, prosodies, row, mode, out_refusal,
                        inbound):
    p = prosodies.get(mode)
    pat = f"pat{row}{mode}x"
    p.add_user(pat, PW)
    pjid = f"{pat}@p.test"
    out_rule, out_cond = out_refusal
    mark = len(p.log())
    with fedgate(kit, tmp_path_factory, pki, dns, row) as a:
        h = harness(a)
        try:
            async def run():
                h.srv = a
                ca = await h.login("alice", APW)
                h.srv = p
                cp = await h.login(pat, PW)
                ca.send_message(mto=pjid, mbody="refused out", mtype="chat")
                err = await ca.wait_message(mtype="error", timeout=LINK_WAIT)
                assert error_condition(err) in BOUNCES, str(err)
                assert err["from"].bare == pjid, str(err)
                cp.send_message(mto="alice@a.test", mbody="from prosody", mtype="chat")
                if isinstance(inbound, tuple):
                    await ca.wait_message(body="from prosody", timeout=LINK_WAIT)
                else:
                    # Prosody bounces what it cannot deliver (RFC 6120 8.3.1)
                    await cp.wait_message(mtype="error", timeout=LINK_WAIT)
                    assert not [m for m in ca.inbox["message"] if m["body"] == "from prosody"]
            h.run(run(), 100)
        finally:
            h.close()
        wait_log(a, f"event=s2s-refused dir=out remote=p.test rule={out_rule} ")
        wait_log(a, f"event=s2s-stream-error dir=out condition={out_cond} ")
        # on the wire: Prosody's end of the refused stream got that stream error
        wait_log(p, f"Session closed by remote with error: {out_cond}", start=mark)
        if isinstance(inbound, str):
            wait_log(a, f"event=s2s-refused dir=in remote=p.test rule={inbound} ")
            if inbound in IN_REFUSAL_ERROR:
                wait_log(a, "event=s2s-stream-error dir=in "
                            f"condition={IN_REFUSAL_ERROR[inbound]} ")
            if inbound == "dialback-disabled":
                # a dialback error answered Prosody's db:result (SPEC 3, dialback false)
                got = [l for l in p.log()[mark:].splitlines()
                       if "Received[s2sout_unauthed]: <result " in l
                       and "jabber:server:dialback" in l and "type='error'" in l]
                assert got, p.log()[mark:][-3000:]
        deadline = time.monotonic() + 5  # the daemon writes link status every second
        while True:
            part = a.status("p.test")["partners"][0]
            if part["last_error"] is not None or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert part["last_error"] is not None and part["last_error"]["rule"] in (
            out_rule, inbound), part
        assert part["last_error"]["message"] and part["last_error"]["fix"], part
        assert part["refused_stanzas"] >= 1, part
        assert not [s for s in part["streams"]
                    if s["direction"] == "out" and s["state"] == "established"], part
        if isinstance(inbound, tuple):
            check_streams(a, {"in": inbound})
        else:
            assert not [s for s in part["streams"] if s["state"] == "established"], part


def set_partner(a, timeout=10, **flags):
    """fedgatectl partner set p.test, then waits until the daemon has loaded it."""
    marker = "event=config-change"
    count = lambda: sum(1 for l in a.log().splitlines() if marker in l and "partner=p.test" in l)
    before = count()
    args = []
    for k, v in flags.items():
        args += [f"--{k}", v]
    a.ok("partner", "set", "p.test", *args)
    deadline = time.monotonic() + timeout
    while count() <= before:
        assert time.monotonic() < deadline, f"{flags} not loaded:\n{a.log()[-2000:]}"
        time.sleep(0.1)


def test_live_tls_optional_to_required(kit, tmp_path_factory, pki, dns, prosodies):
    """Prosody "optional" does TLS when it is offered: a clear link needs our TLS
    not-supported first (row 17). TLS optional (row 15) keeps that link (dialback over TCP
    is allowed); TLS required (row 13) closes both clear streams with <policy-violation/>
    (SPEC section 3, live changes) and the next messages go over TLS."""
    p = prosodies.get("optional")
    pat = "patlive"
    p.add_user(pat, PW)
    mark = len(p.log())
    pjid = f"{pat}@p.test"
    with fedgate(kit, tmp_path_factory, pki, dns, 17) as a:
        h = harness(a)
        try:
            async def login():
                h.srv = a
                ca = await h.login("alice", APW)
                h.srv = p
                return ca, await h.login(pat, PW)
            ca, cp = h.run(login(), 30)

            async def both_ways(tag):
                ca.send_message(mto=pjid, mbody=f"out {tag}", mtype="chat")
                await cp.wait_message(body=f"out {tag}", timeout=LINK_WAIT)
                cp.send_message(mto="alice@a.test", mbody=f"in {tag}", mtype="chat")
                await ca.wait_message(body=f"in {tag}", timeout=LINK_WAIT)

            h.run(both_ways("clear"), 60)
            clear = check_streams(a, {"out": (DB, CLEAR), "in": (DB, CLEAR)})
            before = sorted((s["direction"], s["since"]) for s in clear)

            set_partner(a, tls="optional")
            h.run(both_ways("still clear"), 60)
            _, st = wait_streams(a, ("out", "in"))
            assert sorted((s["direction"], s["since"]) for s in st) == before, st
            assert all(s["tls"] is None for s in st), st
            assert "rule=policy-changed" not in a.log()

            set_partner(a, tls="required")
            for d in ("out", "in"):
                wait_log(a, f"event=s2s-refused dir={d} remote=p.test rule=policy-changed ")
                wait_log(a, f"event=s2s-stream-error dir={d} condition=policy-violation ")
            closed = "Session closed by remote with error: policy-violation"
            deadline = time.monotonic() + 10
            while p.log()[mark:].count(closed) < 2:  # Prosody's end of both streams
                assert time.monotonic() < deadline, p.log()[mark:][-3000:]
                time.sleep(0.2)
            h.run(both_ways("tls"), 60)
        finally:
            h.close()
        st = check_streams(a, {"out": (DB, TLS), "in": (DB, TLS)})
        assert all(s["tls"] is not None for s in st), st
